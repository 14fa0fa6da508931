import Foundation
import GmemTestSupport
import Testing

/// The integration-test kit of docs/integration-testing.md runs as users would run it: the
/// shell example with contrib/gmemfs-test.sh, and the pytest example with its fixture.
@Suite(.serialized, .enabled(if: FUSE.available))
struct IntegrationKitTests {
    /// The repository's root (this file is Tests/MountTests/IntegrationKitTests.swift).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// Runs `argv` with the kit's variables: `GMEMFS` is the built binary, `TMPDIR` a fresh
    /// directory (the kit makes its mountpoints there), which must end up empty and unmounted.
    static func runKit(_ argv: [String], timeout: TimeInterval = 60) throws -> CommandResult {
        let tmp = try makeTemporaryDirectory("gmemfs-test")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let r = try run(argv, timeout: timeout, environment: ["GMEMFS": binDirectory() + "/gmemfs", "TMPDIR": tmp])
        let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
        let left = mounts.split(separator: "\n").map { String($0.split(separator: " ")[1]) }.filter { $0.hasPrefix(tmp + "/") }
        #expect(left.isEmpty, "the kit left mounts: \(left)")
        for m in left { _ = try? run(["fusermount3", "-u", "-z", m]) }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? []
        #expect(files.isEmpty, "the kit left files in TMPDIR: \(files)")
        return r
    }

    @Test func shellExample() throws {
        let r = try Self.runKit(["/bin/bash", Self.root + "/contrib/examples/gmemfs-example.sh"])
        #expect(r.succeeded && r.output.hasSuffix("example passed\n"), "\(r) \(r.output)")
    }

    /// A failing check prints the daemon's log and still unmounts.
    @Test func shellKitUnmountsAndPrintsTheLogOnFailure() throws {
        let r = try Self.runKit(["/bin/bash", "-c", """
            set -e
            . '\(Self.root)/contrib/gmemfs-test.sh'
            gmemfs_up --file f:4K
            echo "$GMEMFS_DIR"
            test -e "$GMEMFS_MNT/missing"
            """])
        #expect(r.status == 1)
        #expect(r.stderr.contains("--- gmemfs log") && r.stderr.contains("mounted on"), "\(r)")
        let dir = r.output.trimmingCharacters(in: .newlines)
        #expect(dir.contains("/gmemfs-test.") && access(dir, F_OK) != 0, "directory \(dir) removed")
    }

    static var pytestAvailable: Bool {
        FUSE.isCI || ((try? run(["python3", "-c", "import pytest"]))?.succeeded ?? false)
    }

    @Test(.enabled(if: pytestAvailable)) func pytestExample() throws {
        let r = try Self.runKit(["python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", Self.root + "/contrib/pytest"],
                                timeout: 120)
        #expect(r.succeeded && r.output.contains("3 passed"), "\(r) \(r.output)")
    }
}
