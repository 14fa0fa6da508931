import Foundation
import GmemTestSupport
import Testing

/// `gmemctl tour --no-pause`: the teaching demo checks its own expectations, mounting (and
/// unmounting) its own gmemfs.
@Suite(.serialized, .enabled(if: FUSE.available))
struct TourTests {
    @Test func tourRunsUnattendedAndCleansUp() throws {
        let before = Self.tourMounts()
        let r = try run([binDirectory() + "/gmemctl", "tour", "--no-pause"], timeout: 120, environment: ["NO_COLOR": "1"])
        #expect(r.succeeded, "\(r)\n\(r.output)")
        #expect(r.output.contains("✓ all 10 steps behaved"), "\(r.output)")
        // The last step runs the example VM where KVM runs guests, and says why not elsewhere.
        if KVMGuest.canRun {
            #expect(r.output.contains("guest wrote to port 0x3f8: hunter2\nhost pread of page 0x2000: Permission denied\nhost load from its mapping of page 0x2000: SIGBUS"), "\(r.output)")
            #expect(r.output.contains("host reads through its mapping: hunter2"))
        } else {
            #expect(r.output.contains("skipped: "), "\(r.output)")
        }
        #expect(!r.output.contains("✗"))
        // Real outcomes, not just narration.
        #expect(r.output.contains("Permission denied"))
        #expect(r.output.contains("[killed by SIGBUS (Bus error)]"))
        #expect(r.output.contains(" read-refused ") && r.output.contains("became-private"), "step 8 shows the trace")
        #expect(r.output.contains("the secret"))
        #expect(!r.output.contains("\u{1B}["), "no colour when stdout is not a TTY")
        // The tour's own mount is gone, and so is its directory.
        #expect(Self.tourMounts() == before)
        let mnt = r.output.split(separator: "\n").first { $0.contains("MNT=/tmp/gmemctl-tour.") }
        let path = mnt.map { String($0.split(separator: "=")[1].split(separator: " ")[0]) }
        #expect(path != nil)
        if let path { #expect(!FileManager.default.fileExists(atPath: (path as NSString).deletingLastPathComponent)) }
    }

    /// gmemctl carries docs/examples/confidential_vm.c as text for the tour's last step.
    @Test func exampleVMSourceMatchesTheDocs() throws {
        let docs = try String(contentsOfFile: KVMGuest.exampleSource, encoding: .utf8)
        let swift = try String(contentsOfFile: CProgram.packageRoot + "/Sources/gmemctl/Tour/ExampleVM.swift", encoding: .utf8)
        let open = try #require(swift.range(of: "#\"\"\"\n")), close = try #require(swift.range(of: "\"\"\"#", options: .backwards))
        #expect(String(swift[open.upperBound..<close.lowerBound]) == docs,
                "Sources/gmemctl/Tour/ExampleVM.swift must hold docs/examples/confidential_vm.c verbatim")
    }

    @Test func tourUsesAGivenMountAndRemovesItsFile() throws {
        let m = try GmemMount(["--file", "gmem:1M:mmap", "--guest-view"])
        defer { m.unmount() }
        let r = try run([binDirectory() + "/gmemctl", "tour", "--no-pause", m.path], timeout: 120)
        #expect(r.succeeded, "\(r)\n\(r.output)")
        #expect(!FileManager.default.fileExists(atPath: m.file("demo")))
        #expect(m.isAlive)
        #expect(m.unmount() == 0)
    }

    @Test func tourRefusesAMountWithoutTheGuestView() throws {
        let m = try GmemMount(["--file", "gmem:1M:mmap"])
        defer { m.unmount() }
        let r = try run([binDirectory() + "/gmemctl", "tour", "--no-pause", m.path], timeout: 60)
        #expect(r.status != 0)
        #expect(r.stderr.contains("--guest-view"))
        #expect(m.unmount() == 0)
    }

    static func tourMounts() -> [String] {
        ((try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? "")
            .split(separator: "\n").map(String.init).filter { $0.contains("gmemctl-tour.") }
    }
}
