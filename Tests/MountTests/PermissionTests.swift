import Foundation
import GmemABI
import GmemTestSupport
import Testing

/// Guarantees G7-G8 (docs/security.md): the kernel checks mode bits (`default_permissions` is always on); conversions
/// need write permission; the guest view is unreachable for other users even with allow_other.
@Suite(.serialized, .enabled(if: FUSE.available && getuid() == 0))
struct PermissionTests {
    /// Runs `argv` as nobody (uid/gid 65534, no supplementary groups).
    static func asNobody(_ argv: [String]) throws -> CommandResult {
        try run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + argv)
    }

    static func mount(_ options: [String]) throws -> GmemMount {
        let m = try GmemMount(options)
        // mkdtemp made the parent 0700: let nobody reach the mount point.
        chmod((m.path as NSString).deletingLastPathComponent, 0o755)
        return m
    }

    @Test func otherUsersUnderAllowOther() throws {
        let m = try Self.mount(["-o", "allow_other", "--guest-view", "--file", "f:16K:mmap"])
        defer { m.unmount() }
        let f = m.file("f")
        #expect(throws: Never.self) { try Sys.setxattr(f, GmemXattr.setAttributes, "0 4096 shared") }
        #expect(try Sys.withFD(f, O_RDWR) { try Sys.pwrite($0, Array("shared!".utf8), offset: 0) } == 7)

        // New files are 0600 (as guest_memfd): even with allow_other, nobody cannot read the
        // shared pages, map the file or read its map.
        #expect((try? Sys.stat(f)).map { $0.st_mode & 0o7777 } == 0o600)
        let denied = try Self.asNobody(["dd", "if=\(f)", "bs=7", "count=1", "status=none"])
        #expect(!denied.succeeded && denied.stderr.contains("Permission denied"), "\(denied)")
        let deniedMap = try Self.asNobody(["getfattr", "--only-values", "-n", GmemXattr.attributes, f])
        #expect(!deniedMap.succeeded && deniedMap.stderr.contains("Permission denied"), "\(deniedMap)")
        let created = try run(["setfattr", "-n", GmemXattr.create, "-v", "later 4096", m.path])
        #expect(created.succeeded && (try? Sys.stat(m.file("later"))).map { $0.st_mode & 0o7777 } == 0o600)

        // chmod 0644 shares the file: nobody reads shared pages, and private pages fail as for root.
        #expect(chmod(f, 0o644) == 0)
        let head = try Self.asNobody(["dd", "if=\(f)", "bs=7", "count=1", "status=none"])
        #expect(head.output == "shared!", "\(head)")
        let priv = try Self.asNobody(["dd", "if=\(f)", "bs=4096", "skip=1", "count=1", "status=none"])
        #expect(!priv.succeeded && priv.stderr.contains("Permission denied"))
        // Reading the map needs read permission only.
        #expect(try Self.asNobody(["getfattr", "--only-values", "-n", GmemXattr.attributes, f]).output == "0-1000 shared\n1000-4000 private\n")
        // Writing and converting need write permission: EACCES from the kernel.
        let write = try Self.asNobody(["dd", "if=/dev/zero", "of=\(f)", "bs=1", "count=1", "conv=notrunc", "status=none"])
        #expect(!write.succeeded && write.stderr.contains("Permission denied"))
        let conv = try Self.asNobody(["setfattr", "-n", GmemXattr.setAttributes, "-v", "0 4096 private", f])
        #expect(!conv.succeeded && conv.stderr.contains("Permission denied"), "\(conv)")
        let create = try Self.asNobody(["setfattr", "-n", GmemXattr.create, "-v", "mine 4096", m.path])
        #expect(!create.succeeded && create.stderr.contains("Permission denied"), "\(create)")
        #expect(try run(["getfattr", "--only-values", "-n", GmemXattr.attributes, f]).output == "0-1000 shared\n1000-4000 private\n")

        // The guest view: .guest is 0700 and its files 0600, owned by the daemon's user.
        let ls = try Self.asNobody(["ls", "\(m.path)/.guest"])
        #expect(!ls.succeeded && ls.stderr.contains("Permission denied"))
        let cat = try Self.asNobody(["cat", m.guest("f")])
        #expect(!cat.succeeded && cat.stderr.contains("Permission denied"))
        // …and cannot be opened up: mode/owner changes on the guest view are refused.
        #expect(chmod("\(m.path)/.guest", 0o777) != 0 && errno == EPERM)
        #expect(chmod(m.guest("f"), 0o666) != 0 && errno == EPERM)
        #expect(chown(m.guest("f"), 65534, 65534) != 0 && errno == EPERM)
        #expect(unlink(m.guest("f")) != 0 && errno == EPERM)
        #expect((try? Sys.stat(m.guest("f"))) != nil)
        #expect(try Self.asNobody(["cat", m.guest("f")]).succeeded == false)

        // Granting write permission on the host file lets nobody convert it (mode bits decide).
        #expect(chmod(f, 0o666) == 0)
        #expect(try Self.asNobody(["setfattr", "-n", GmemXattr.setAttributes, "-v", "4096 4096 shared", f]).succeeded)
        #expect(try run(["getfattr", "--only-values", "-n", GmemXattr.attributes, f]).output == "0-2000 shared\n2000-4000 private\n")
        #expect(m.unmount() == 0)
    }

    @Test func withoutAllowOtherNobodyGetsIn() throws {
        let m = try Self.mount(["--file", "f:16K:init-shared"])
        defer { m.unmount() }
        let st = try Self.asNobody(["stat", m.file("f")])
        #expect(!st.succeeded && st.stderr.contains("Permission denied"), "\(st)")
        #expect(m.unmount() == 0)
    }
}
