import Foundation
import GmemABI
import GmemTestSupport
import SystemPackage
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `MOUNTPOINT/.maps/NAME`, the attribute map as a file of any length (docs/trace.md).
@Suite(.serialized, .enabled(if: FUSE.available))
struct MapsTests {
    /// 10,001 ranges (200 KiB of text, three times the xattr limit): `wc -l`, `grep` and `cat`
    /// work, and the text is exactly the naive model's. (400,000 ranges take minutes to build
    /// against a debug daemon, which checks the whole tree after every conversion; the
    /// release-build measurement is in docs/trace.md.)
    @Test func mapOfAnySize() throws {
        let m = try GmemMount(["--file", "f:64M:init-shared"])
        defer { m.unmount() }
        let f = m.file("f"), map = "\(m.path)/.maps/f"
        let n = 5000
        let py = try Python.run("""
            f, n = sys.argv[1], int(sys.argv[2])
            for i in range(n):
                os.setxattr(f, 'user.gmem.set_attributes', b'%d 4096 private' % ((2 * i + 1) * 4096))
            """, [f, String(n)], timeout: 120)
        #expect(py.succeeded, "\(py)")
        var model = ""
        for i in 0..<n {
            model += "\(String(2 * i * page, radix: 16))-\(String((2 * i + 1) * page, radix: 16)) shared\n"
            model += "\(String((2 * i + 1) * page, radix: 16))-\(String((2 * i + 2) * page, radix: 16)) private\n"
        }
        model += "\(String(2 * n * page, radix: 16))-4000000 shared\n"
        #expect(throws: Errno.argListTooLong) { try Sys.getxattr(f, GmemXattr.attributes) }
        #expect(try sh("wc -l < \(map)").output == "\(2 * n + 1)\n")
        #expect(try sh("grep -c private \(map)").output == "\(n)\n")
        let cat = try run(["cat", map])
        #expect(cat.succeeded && cat.output == model)
        // The same lines as the xattr's windows.
        #expect(try Sys.getxattr(f, GmemXattr.window(start: 0, end: 0x8000)) == String(model.split(separator: "\n").prefix(8).joined(separator: "\n") + "\n"))
        #expect(m.unmount() == 0)
    }

    /// Each open reads one snapshot, taken at open: conversions go ahead while it is read (the
    /// file lock is not held) and show up at the next open.
    @Test func eachOpenReadsOneSnapshot() throws {
        let m = try GmemMount(["--file", "f:16K:init-shared"])
        defer { m.unmount() }
        let f = m.file("f"), map = "\(m.path)/.maps/f"
        try Sys.withFD(map, O_RDONLY) { fd in
            #expect(String(decoding: try Sys.pread(fd, count: 3, offset: 0), as: UTF8.self) == "0-4")
            try convert(f, "4096 4096 private")     // while the map is open
            #expect(String(decoding: try Sys.pread(fd, count: 100, offset: 3), as: UTF8.self) == "000 shared\n")
            #expect(try Sys.pread(fd, count: 100, offset: 14) == [])
        }
        #expect(try run(["cat", map]).output == "0-1000 shared\n1000-2000 private\n2000-4000 shared\n")
        #expect(try run(["cat", map]).output == attributes(f))
        #expect(m.unmount() == 0)
    }

    @Test func directoryAndNames() throws {
        let m = try GmemMount(["--file", "a:4K", "--file", "b:8K:init-shared"])
        defer { m.unmount() }
        #expect(try run(["ls", "-a", "\(m.path)/.maps"]).output == ".\n..\na\nb\n")
        // The special names are reachable but not listed in the root.
        #expect(try run(["ls", "-a", m.path]).output == ".\n..\na\nb\n")
        #expect(throws: Errno.noSuchFileOrDirectory) { try Sys.stat("\(m.path)/.maps/c") }
        try Sys.setxattr(m.path, "user.gmem.create", "c 4096")
        #expect(try run(["cat", "\(m.path)/.maps/c"]).output == "0-1000 private\n")
        #expect(unlink(m.file("c")) == 0)
        #expect(throws: Errno.noSuchFileOrDirectory) { try Sys.stat("\(m.path)/.maps/c") }
        // Read-only, even for root; no names can be made in .maps.
        #expect(throws: Errno.permissionDenied) { try Sys.open("\(m.path)/.maps/a", O_RDWR) }
        #expect(throws: Errno.notPermitted) { try Sys.open("\(m.path)/.maps/x", O_RDWR | O_CREAT) }
        #expect(unlink("\(m.path)/.maps/a") != 0)
        #expect(m.unmount() == 0)
    }

    /// A map may be read by whoever may read its file's `user.gmem.attributes`: the file's
    /// owner and the read bits of its mode.
    @Test(.enabled(if: getuid() == 0)) func mapsFollowTheFilesReadPermission() throws {
        let m = try PermissionTests.mount(["-o", "allow_other", "--file", "f:16K"])
        defer { m.unmount() }
        let map = "\(m.path)/.maps/f"
        func mode() -> String? { (try? Sys.stat(map)).map { String($0.st_mode & 0o7777, radix: 8) } }
        #expect(mode() == "400")
        let denied = try PermissionTests.asNobody(["cat", map])
        #expect(!denied.succeeded && denied.stderr.contains("Permission denied"), "\(denied)")
        #expect(chmod(m.file("f"), 0o644) == 0)
        #expect(mode() == "444")
        #expect(try PermissionTests.asNobody(["cat", map]).output == "0-4000 private\n")
        #expect(chmod(map, 0o666) != 0 && errno == EPERM)
        #expect(m.unmount() == 0)
    }
}
