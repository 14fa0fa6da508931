import Foundation
import GmemABI
import GmemTestSupport
import Testing

/// gmemctl's subcommands against a real mount, with non-TTY output (no colour).
@Suite(.serialized, .enabled(if: FUSE.available))
struct GmemctlTests {
    static var gmemctl: String { binDirectory() + "/gmemctl" }

    static func ctl(_ args: [String], environment: [String: String] = ["COLUMNS": "80"]) throws -> CommandResult {
        try run([gmemctl] + args, environment: environment)
    }

    @Test func createConvertMapStats() throws {
        let m = try GmemMount(["--file", "gmem:1M:mmap"])
        defer { m.unmount() }
        let f = m.file("demo")

        let create = try Self.ctl(["create", m.path, "demo", "64K", "--flags", "mmap"])
        #expect(create.succeeded, "\(create)")
        #expect(try Sys.getxattr(f, GmemXattr.flags) == "mmap")
        #expect(try Sys.getxattr(f, GmemXattr.attributes) == "0-10000 private\n")

        #expect(try Self.ctl(["convert", "shared", f, "0", "16K"]).succeeded)
        let viaIoctl = try Self.ctl(["convert", "shared", "--ioctl", f, "0x8000", "4096"])
        #expect(viaIoctl.succeeded, "\(viaIoctl)")
        #expect(viaIoctl.output.contains("KVM_SET_MEMORY_ATTRIBUTES2"))
        #expect(try Self.ctl(["convert", "private", f, "4K", "4K"]).succeeded)
        let expected = "0-1000 shared\n1000-2000 private\n2000-4000 shared\n4000-8000 private\n8000-9000 shared\n9000-10000 private\n"
        #expect(try Sys.getxattr(f, GmemXattr.attributes) == expected)

        // The map: 16 pages in 76 columns -> 4 cells per page, plain glyphs, table with sizes.
        let svg = FileManager.default.temporaryDirectory.appendingPathComponent("gmemctl-map-\(getpid()).svg").path
        defer { try? FileManager.default.removeItem(atPath: svg) }
        let map = try Self.ctl(["map", f, "--svg", svg])
        #expect(map.succeeded, "\(map)")
        let text = map.output
        #expect(!text.contains("\u{1B}["), "no escape sequences when stdout is not a TTY")
        let bar = "  " + ["....", "####", "........", "################", "....", "############################"].joined()
        #expect(text.contains(bar + "\n"), "\(text)")
        #expect(text.contains("64 KiB, 16 pages, 6 ranges: 16 KiB shared, 48 KiB private"))
        #expect(text.contains("  0x1000  0x2000    4 KiB  private\n"), "\(text)")
        #expect(text.contains("  0x9000  0x10000  28 KiB  private\n"), "\(text)")
        let picture = try String(contentsOfFile: svg, encoding: .utf8)
        #expect(picture.hasPrefix("<svg"))
        #expect(picture.contains("#d64545") && picture.contains("#3fa34d"))

        // NO_COLOR is honoured even when colour would be on; --color always forces it.
        let colored = try Self.ctl(["map", f, "--color", "always"])
        #expect(colored.output.contains("\u{1B}[31m"))

        let stats = try Self.ctl(["stats", f])
        #expect(stats.succeeded)
        #expect(stats.output.contains("size               64 KiB (65536 bytes), 16 pages"), "\(stats.output)")
        #expect(stats.output.contains("conversions        3"))
        #expect(stats.output.contains("references         0\n"))
        let root = try Self.ctl(["stats", m.path])
        #expect(root.succeeded)
        #expect(root.output.split(separator: "\n").contains { $0.split(separator: " ") == ["files", "2"] }, "\(root.output)")
        #expect(root.output.contains("demo: 64 KiB, 16 KiB shared, 48 KiB private, 6 ranges"))

        let watch = try Self.ctl(["watch", f, "--count", "1"])
        #expect(watch.succeeded)
        #expect(watch.output.contains(bar + "\n"))
        #expect(m.unmount() == 0)
    }

    @Test func errorsNameTheErrnoAndExitNonZero() throws {
        let m = try GmemMount(["--file", "gmem:1M:mmap"])
        defer { m.unmount() }
        let f = m.file("gmem")
        // Refused by gmemctl before sending (exit 64, see GmemctlInputTests), and by the daemon
        // (exit 1, the errno and what it means for the operation).
        let misaligned = try Self.ctl(["convert", "shared", f, "1", "4K"])
        #expect(misaligned.status == 64)
        #expect(misaligned.stderr == "gmemctl: offset 1 is not a multiple of 4096 (pages are 4 KiB)\n", "\(misaligned)")
        let ioctl = try Self.ctl(["convert", "shared", "--ioctl", f, "0", "1M+"])
        #expect(ioctl.status == 64)
        let past = try Self.ctl(["convert", "private", "--ioctl", f, "1M", "4K"])
        #expect(past.status == 64)
        #expect(past.stderr.contains("range [0x100000, 0x101000) ends past the end of \(f) (1 MiB, 0x100000)"), "\(past)")
        let exists = try Self.ctl(["create", m.path, "gmem", "4K"])
        #expect(exists.status == 1)
        #expect(exists.stderr.contains("EEXIST (File exists): a file named gmem already exists on this mount"), "\(exists)")
        let tooLarge = try Self.ctl(["create", m.path, "huge", "128T"])
        #expect(tooLarge.status == 1)
        #expect(tooLarge.stderr.contains("EFBIG (File too large): 128 TiB exceeds the largest file gmemfs serves (64 TiB)"), "\(tooLarge)")
        let missing = try Self.ctl(["map", m.file("nope")])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("ENOENT"))
        #expect(try Sys.getxattr(f, GmemXattr.attributes) == "0-100000 private\n")
        #expect(!FileManager.default.fileExists(atPath: m.file("huge")))
        #expect(m.unmount() == 0)
    }

    @Test func peekFaultsOnPrivatePagesAndReadsSharedOnes() throws {
        let m = try GmemMount(["--file", "gmem:64K:mmap", "--guest-view"])
        defer { m.unmount() }
        let f = m.file("gmem")
        #expect(try sh("printf 'guest data' | dd of=\(m.guest("gmem")) conv=notrunc status=none").succeeded)
        let denied = try Self.ctl(["peek", f, "0", "--count", "10"])
        #expect(denied.signal == SIGBUS, "\(denied)")
        #expect(!denied.stderr.contains("Backtrac"), "a plain SIGBUS, not a crash report")
        #expect(try Self.ctl(["convert", "shared", f, "0", "4K"]).succeeded)
        let shown = try Self.ctl(["peek", f, "0", "--count", "10"])
        #expect(shown.output == "guest data\n")
        #expect(m.unmount() == 0)
    }

    @Test func watchRedrawsWhenTheMapChanges() throws {
        let m = try GmemMount(["--file", "gmem:64K:mmap"])
        defer { m.unmount() }
        let f = m.file("gmem")
        // Two drawings: the initial map, then the one after the conversion.
        let r = try sh("""
            COLUMNS=40 '\(Self.gmemctl)' watch '\(f)' --interval 0.05 --count 2 > '\(m.path)/../watch.out' &
            sleep 0.5; setfattr -n \(GmemXattr.setAttributes) -v '0 32K shared' '\(f)'; wait $!; cat '\(m.path)/../watch.out'
            """, timeout: 30)
        #expect(r.succeeded, "\(r)")
        #expect(r.output.components(separatedBy: "64 KiB, 16 pages").count == 3, "\(r.output)")
        #expect(r.output.contains("1 range: 0 B shared, 64 KiB private"))
        #expect(r.output.contains("2 ranges: 32 KiB shared, 32 KiB private"))
        #expect(m.unmount() == 0)
    }

    /// A map too large for one xattr value (E2BIG) is read in windows.
    @Test func hugeMapsAreReadInWindows() throws {
        let m = try GmemMount(["--file", "big:64M:mmap"])
        defer { m.unmount() }
        let f = m.file("big")
        // 3000 alternating single pages: the full listing is well past 64 KiB.
        for i in stride(from: 0, to: 6000, by: 2) {
            #expect(throws: Never.self) { try Sys.setxattr(f, GmemXattr.setAttributes, "\(i * 4096) 4096 shared") }
        }
        #expect(throws: Errno.argListTooLong) { try Sys.getxattr(f, GmemXattr.attributes) }
        let map = try Self.ctl(["map", f, "--rows", "3"])
        #expect(map.succeeded, "\(map)")
        #expect(map.output.contains("6000 ranges: 11.7 MiB shared"), "\(map.output)")
        #expect(map.output.contains("… and 5997 more ranges"))
        #expect(m.unmount() == 0)
    }
}
