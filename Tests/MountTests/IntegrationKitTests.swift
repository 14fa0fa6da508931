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

    static let environment = ["GMEMFS": binDirectory() + "/gmemfs"]

    /// No mount of the kit may stay behind (its directories are /tmp/gmemfs-test.*).
    static func kitMounts(before: Set<String>) -> [String] {
        let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
        return mounts.split(separator: "\n").map { String($0.split(separator: " ")[1]) }
            .filter { $0.hasPrefix("/tmp/gmemfs-test.") && !before.contains($0) }
    }

    static func currentMounts() -> Set<String> { Set(kitMounts(before: [])) }

    @Test func shellExample() throws {
        let before = Self.currentMounts()
        let r = try run(["/bin/bash", Self.root + "/contrib/examples/gmemfs-example.sh"], environment: Self.environment)
        #expect(r.succeeded && r.output.hasSuffix("example passed\n"), "\(r) \(r.output)")
        #expect(Self.kitMounts(before: before).isEmpty)
    }

    /// A failing check prints the daemon's log and still unmounts.
    @Test func shellKitUnmountsAndPrintsTheLogOnFailure() throws {
        let before = Self.currentMounts()
        let r = try run(["/bin/bash", "-c", """
            set -e
            . '\(Self.root)/contrib/gmemfs-test.sh'
            gmemfs_up --file f:4K
            echo "$GMEMFS_DIR"
            test -e "$GMEMFS_MNT/missing"
            """], environment: Self.environment)
        #expect(r.status == 1)
        #expect(r.stderr.contains("--- gmemfs log") && r.stderr.contains("mounted on"), "\(r)")
        let dir = r.output.trimmingCharacters(in: .newlines)
        #expect(dir.hasPrefix("/tmp/gmemfs-test.") && access(dir, F_OK) != 0, "directory \(dir) removed")
        #expect(Self.kitMounts(before: before).isEmpty)
    }

    static var pytestAvailable: Bool {
        FUSE.isCI || ((try? run(["python3", "-c", "import pytest"]))?.succeeded ?? false)
    }

    @Test(.enabled(if: pytestAvailable)) func pytestExample() throws {
        let before = Self.currentMounts()
        let r = try run(["python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", Self.root + "/contrib/pytest"],
                        timeout: 120, environment: Self.environment)
        #expect(r.succeeded && r.output.contains("3 passed"), "\(r) \(r.output)")
        #expect(Self.kitMounts(before: before).isEmpty)
    }
}
