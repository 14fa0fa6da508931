import Foundation
import GmemABI
import GmemTestSupport
import Testing

/// gmemctl's contract for what it is given: paths off a gmemfs mount are refused (exit 1),
/// bad input gets one line with its reason (exit 64) and nothing is sent, and the map does not
/// rely on colour alone.
@Suite(.serialized, .enabled(if: FUSE.available))
struct GmemctlInputTests {
    static func ctl(_ args: [String], environment: [String: String] = ["COLUMNS": "80"]) throws -> CommandResult {
        try run([GmemctlTests.gmemctl] + args, timeout: 30, environment: environment)
    }

    /// Before the check, `create` on /tmp printed "created" and exited 0 leaving only an xattr,
    /// and `convert` on a plain file said "is now shared".
    @Test func pathsOffAGmemfsMountAreRefused() throws {
        let dir = try makeTemporaryDirectory("gmemctl-plain")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let plain = dir + "/plainfile"
        #expect(FileManager.default.createFile(atPath: plain, contents: Data(count: 8192)))
        let cases: [(args: [String], path: String)] = [
            (["create", dir, "zz", "4K"], dir),
            (["convert", "shared", plain, "0", "4K"], plain),
            (["convert", "shared", "--ioctl", plain, "0", "4K"], plain),
            (["map", plain], plain),
            (["stats", dir], dir),
            (["stats", plain], plain),
            (["watch", plain, "--count", "1"], plain),
            (["peek", plain, "0"], plain),
            (["tour", dir, "--no-pause"], dir),
        ]
        for (args, path) in cases {
            let r = try Self.ctl(args)
            #expect(r.status == 1 && !r.signaled, "\(args): \(r)")
            #expect(r.stderr.hasPrefix("gmemctl: \(path) is not on a gmemfs mount (it is on "), "\(args): \(r)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(args): \(r)")
            #expect(!r.output.contains("created") && !r.output.contains("is now"), "\(args): \(r.output)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/zz"))
        // Nothing was sent: no attribute landed on the directory or the file.
        #expect(throws: Errno.self) { try Sys.getxattr(dir, GmemXattr.create) }
        #expect(throws: Errno.self) { try Sys.getxattr(plain, GmemXattr.setAttributes) }
    }

    @Test func pathsOnTheMountMustBeOfTheRightKind() throws {
        let m = try GmemMount(["--file", "gmem:64K:mmap"])
        defer { m.unmount() }
        let notRoot = try Self.ctl(["create", m.file("gmem"), "x", "4K"])
        #expect(notRoot.status == 1)
        #expect(notRoot.stderr.contains("is not the root of a gmemfs mount; give the mount point "), "\(notRoot)")
        let root = try Self.ctl(["map", m.path])
        #expect(root.status == 1)
        #expect(root.stderr.contains("is not a gmem file (a mount root)"), "\(root)")
        // Paths are resolved first: a symlink from elsewhere and `MNT/.` are fine.
        let dir = try makeTemporaryDirectory("gmemctl-link")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: m.file("gmem"))
        let viaLink = try Self.ctl(["convert", "shared", dir + "/link", "0", "4K"])
        #expect(viaLink.succeeded, "\(viaLink)")
        #expect(attributes(m.file("gmem")) == "0-1000 shared\n1000-10000 private\n")
        let created = try Self.ctl(["create", m.path + "/.", "made", "8K", "--flags", "MMAP"])
        #expect(created.succeeded, "\(created)")
        #expect(try Sys.getxattr(m.file("made"), GmemXattr.flags) == "mmap")
        #expect((try? Sys.stat(m.file("made")))?.st_size == 8192)
        #expect(m.unmount() == 0)
    }

    /// Every bad input: one line naming the problem, exit status 64, no crash, nothing sent.
    @Test func badInputIsOneLineWithItsReasonAndExit64() throws {
        let m = try GmemMount(["--file", "gmem:64K:mmap"])
        defer { m.unmount() }
        let f = m.file("gmem")
        let cases: [(args: [String], reason: String)] = [
            (["convert", "shared", f, "-4K", "4K"], "'-4K' is negative: offsets, sizes and counts are ≥ 0"),
            (["convert", "shared", f, "0", "-0x1000"], "'-0x1000' is negative"),
            (["peek", f, "0", "--count", "-5"], "'-5' is negative"),
            (["peek", f, "0", "--count=-5"], "--count '-5' is negative"),
            (["map", f, "--rows", "-1"], "'-1' is negative"),
            (["peek", f, "0", "--count", "99999999999"], "--count must be 1 to 1048576 (1 MiB)"),
            (["peek", f, "0", "--count", "99999999999999999999999"], "is invalid for '--count <count>'"),
            (["peek", f, "60K", "--count", "8K"], "is invalid for '--count <count>'"),
            (["peek", f, "60K", "--count", "8192"], "--count 8192 reaches past the end of \(f): at most 4096 bytes from offset 60K"),
            (["peek", f, "64K"], "offset 64K is at or past the end of \(f) (64 KiB)"),
            (["peek", f, "0x"], "offset '0x' is not a number"),
            (["convert", "shared", f, "4K", "0"], "size must not be 0"),
            (["convert", "shared", f, "0", "6000"], "size 6000 is not a multiple of 4096"),
            (["convert", "shared", f, "100", "4K"], "offset 100 is not a multiple of 4096"),
            (["convert", "shared", f, "0", "68K"], "range [0x0, 0x11000) ends past the end of \(f) (64 KiB, 0x10000)"),
            (["convert", "shared", "--ioctl", f, "0xfffffffffffff000", "8K"], "range [0xfffffffffffff000, beyond 2^64) ends past the end"),
            (["convert", "shared", f, "99999999999999999999", "4K"], "offset '99999999999999999999' does not fit in 64 bits"),
            (["convert", "shared", f, "0", "16777216T"], "size '16777216T' does not fit in 64 bits"),
            (["convert", "shared", f, "4X", "4K"], "offset '4X' is not a number"),
            (["convert", "sideways", f, "0", "4K"], "sideways"),
            (["convert", "shared", f, "0"], "Missing expected argument '<size>'; usage: gmemctl convert"),
            (["create", m.path, "x", "0"], "size must not be 0"),
            (["create", m.path, "x", "0x1_000"], "size '0x1_000' is not a number"),
            (["create", m.path, ".x", "4K"], "name '.x' starts with '.'"),
            (["create", m.path, "a b", "4K"], "name 'a b' contains '/', a space or a control character"),
            (["create", m.path, "x", "4K", "--flags", "mmap,bogus"], "unknown flag 'bogus' (known: mmap, init-shared)"),
            (["create", m.path, "x", "4K", "--flags", "4"], "flags 4 has unknown bits"),
            (["watch", f, "--interval", "1e300"], "--interval must be more than 0 and at most 3600 seconds"),
            (["watch", f, "--interval", "0"], "--interval must be more than 0"),
        ]
        for (args, reason) in cases {
            let r = try Self.ctl(args)
            #expect(r.status == 64 && !r.signaled, "\(args): \(r)")
            #expect(r.stderr.hasPrefix("gmemctl: ") && r.stderr.contains(reason), "\(args): \(r)")
            #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(args): \(r)")
            #expect(!r.stderr.contains("Fatal") && !r.stderr.contains("Backtrace"), "\(args): \(r)")
        }
        // A huge terminal width is clamped, not allocated.
        let wide = try Self.ctl(["map", f], environment: ["COLUMNS": "99999999999"])
        #expect(wide.succeeded, "\(wide)")
        #expect(wide.output.contains("  " + String(repeating: "#", count: 1008) + "\n"), "16 pages x 63 cells: \(wide.output.prefix(300))")
        // Nothing was sent.
        #expect(attributes(f) == "0-10000 private\n")
        #expect(stats(m.path)[.files] == "1")
        #expect(stats(f)[.conversions] == "0")
        // A count within bounds reads (shared page), in one line.
        #expect(try Self.ctl(["convert", "shared", f, "0", "64K"]).succeeded)
        let peek = try Self.ctl(["peek", f, "0", "--count", "65536"])
        #expect(peek.succeeded, "\(peek)")
        #expect(peek.output == String(repeating: ".", count: 65536) + "\n")
        #expect(m.unmount() == 0)
    }

    /// A refusal by the kernel or the daemon names the errno and what it means here.
    @Test(.enabled(if: getuid() == 0)) func refusalsExplainTheErrno() throws {
        let m = try GmemMount(["-o", "allow_other", "--file", "f:16K:mmap"])
        defer { m.unmount() }
        // mkdtemp made the parent 0700: let nobody reach the mount point.
        chmod((m.path as NSString).deletingLastPathComponent, 0o755)
        let f = m.file("f")
        // Files are created 0600; share reading, as a user would with chmod.
        #expect(chmod(f, 0o644) == 0)
        func asNobody(_ args: [String]) throws -> CommandResult {
            try run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", GmemctlTests.gmemctl] + args, timeout: 30)
        }
        let conv = try asNobody(["convert", "shared", f, "0", "4K"])
        #expect(conv.status == 1)
        #expect(conv.stderr.contains("EACCES (Permission denied): converting needs write permission on the file"), "\(conv)")
        let ioctl = try asNobody(["convert", "shared", "--ioctl", f, "0", "4K"])
        #expect(ioctl.status == 1)
        #expect(ioctl.stderr.contains("open \(f) for writing: EACCES (Permission denied): converting needs write permission"), "\(ioctl)")
        #expect(attributes(f) == "0-4000 private\n")
        #expect(try asNobody(["map", f]).succeeded, "reading the map needs read permission only")
        #expect(m.unmount() == 0)
    }

    /// Help exits 0 and documents the exit statuses; errors of ArgumentParser are one line too.
    @Test func helpDocumentsExitStatuses() throws {
        for args in [["--help"], ["help"], [], ["help", "convert"], ["convert", "--help"]] {
            let r = try Self.ctl(args)
            #expect(r.succeeded && r.stderr.isEmpty, "\(args): \(r)")
            #expect(r.output.contains("OVERVIEW:"), "\(args): \(r.output)")
        }
        let help = try Self.ctl(["--help"]).output
        #expect(help.contains("Exit status:") && help.contains("64   bad input (EX_USAGE)"), "\(help)")
        let unknown = try Self.ctl(["map", "x", "--colour", "never"])
        #expect(unknown.status == 64)
        #expect(unknown.stderr == "gmemctl: Unknown option '--colour'. Did you mean '--color'?; usage: gmemctl map <file> [--svg <OUT>] [--rows <rows>] [--color <color>] [--json]\n", "\(unknown)")
    }

    /// Colour is never the only cue: with colour the glyphs differ too, and `NO_COLOR` on a
    /// terminal gives the plain glyphs.
    @Test func mapTellsAttributesApartWithoutColour() throws {
        let m = try GmemMount(["--file", "gmem:64K:mmap"])
        defer { m.unmount() }
        let f = m.file("gmem")
        #expect(throws: Never.self) { try convert(f, "0 16K shared") }
        // 16 pages in 76 columns: 4 cells per page.
        let colored = try Self.ctl(["map", f, "--color", "always"])
        #expect(colored.succeeded, "\(colored)")
        #expect(colored.output.contains("\u{1B}[31m") && colored.output.contains("\u{1B}[32m"))
        let plain = Self.stripEscapes(colored.output)
        #expect(plain.contains("  " + String(repeating: "░", count: 16) + String(repeating: "█", count: 48) + "\n"), "\(plain)")
        #expect(plain.contains("░ shared (host may read/write/mmap)"), "\(plain)")
        #expect(plain.contains("█ private (guest only)"), "\(plain)")

        // On a terminal (script(1) gives a pty): colour by default, none with NO_COLOR.
        let command = "'\(GmemctlTests.gmemctl)' map '\(f)'"
        let tty = try run(["script", "-qec", "env -u NO_COLOR " + command, "/dev/null"], timeout: 30, environment: ["COLUMNS": "80"])
        #expect(tty.succeeded, "\(tty)")
        #expect(tty.output.contains("\u{1B}[31m"), "colour on a terminal")
        let noColor = try run(["script", "-qec", command, "/dev/null"], timeout: 30, environment: ["COLUMNS": "80", "NO_COLOR": "1"])
        #expect(noColor.succeeded, "\(noColor)")
        #expect(!noColor.output.contains("\u{1B}["), "\(noColor.output)")
        #expect(noColor.output.contains("  " + String(repeating: ".", count: 16) + String(repeating: "#", count: 48)), "\(noColor.output)")
        #expect(noColor.output.contains(". shared (host may read/write/mmap)   # private (guest only)"))
        #expect(m.unmount() == 0)
    }

    /// Every legend line of the SVG lies inside the picture (the "both" entry used to run past
    /// the right edge), and the attributes differ by fill pattern, not only colour.
    @Test func svgLegendFitsThePicture() throws {
        let m = try GmemMount(["--file", "big:64M:mmap"])
        defer { m.unmount() }
        let f = m.file("big")
        for value in ["1M 4K shared", "33M 4K shared", "40M 8M shared"] { #expect(failure { try convert(f, value) } == nil) }
        let out = m.path + "/../map.svg"
        let r = try Self.ctl(["map", f, "--svg", out])
        #expect(r.succeeded, "\(r)")
        let svg = try String(contentsOfFile: out, encoding: .utf8)
        let size = Self.matches(#"<svg [^>]*width="(\d+)" height="(\d+)""#, in: svg)
        #expect(size.count == 1)
        guard let dims = size.first, let width = Int(dims[0]), let height = Int(dims[1]) else { return }
        // Left-anchored text: at most 8 px per character at 13 px (DejaVu Sans averages ~7.2).
        let texts = Self.matches(#"<text x="(\d+)" y="(\d+)" font-size="13">([^<]*)</text>"#, in: svg)
        let labels = texts.map { $0[2] }
        #expect(labels.contains { $0.hasPrefix("both") }, "\(labels)")
        #expect(labels.contains { $0.hasPrefix("shared") } && labels.contains { $0.hasPrefix("private") })
        for t in texts {
            guard let x = Int(t[0]), let y = Int(t[1]) else { Issue.record("\(t)"); continue }
            #expect(x + 8 * t[2].count <= width, "legend '\(t[2])' runs past the right edge (\(width))")
            #expect(y + 4 <= height, "legend '\(t[2])' below the bottom (\(height))")
        }
        #expect(svg.contains("fill=\"url(#shared)\"") && svg.contains("fill=\"url(#mixed)\""))
        #expect(svg.contains("fill=\"#d64545\""))
        #expect(m.unmount() == 0)
    }

    static func stripEscapes(_ s: String) -> String {
        s.replacingOccurrences(of: "\u{1B}\\[[0-9;]*m", with: "", options: .regularExpression)
    }

    /// The capture groups of every match of `pattern`.
    static func matches(_ pattern: String, in text: String) -> [[String]] {
        guard let re = try? NSRegularExpression(pattern: pattern) else { return [] }
        let ns = text as NSString
        return re.matches(in: text, range: NSRange(location: 0, length: ns.length)).map { m in
            (1..<m.numberOfRanges).map { ns.substring(with: m.range(at: $0)) }
        }
    }
}
