import Foundation
import GmemABI
import GmemTestSupport
import Testing

/// The kernel's KVM_SET_MEMORY_ATTRIBUTES2, from C: `Resources/ioctl_abi.c` checks gmem_abi.h's
/// definition against the uapi's derivation (as include/uapi/linux/kvm.h writes it), and drives
/// a mounted file with it.
@Suite(.serialized, .enabled(if: FUSE.available))
struct IoctlTests {
    /// Compiles ioctl_abi.c with `cc` into a temporary directory; returns the binary's path.
    static func buildProgram() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ioctl-abi-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return try CProgram.compile("ioctl_abi.c", to: dir.appendingPathComponent("ioctl_abi").path,
                                    flags: ["-std=gnu11", "-Wall", "-Wextra", "-Werror"], timeout: 60)
    }

    @Test func cProgramUsingTheKernelUAPIConvertsPages() throws {
        let binary = try Self.buildProgram()
        defer { try? FileManager.default.removeItem(atPath: (binary as NSString).deletingLastPathComponent) }
        let m = try GmemMount(["--file", "abi:1M:mmap", "--guest-view"])
        defer { m.unmount() }
        let f = m.file("abi")

        let r = try run([binary, f, m.guest("abi")])
        #expect(r.succeeded, "\(r)\n\(r.output)")
        let lines = r.output.split(separator: "\n")
        #expect(!lines.contains { $0.hasPrefix("FAIL") }, "\(r.output)")
        #expect(lines.filter { $0.hasPrefix("ok") }.count == 29)
        #expect(lines.last == "0 failure(s)")

        // The successful calls, and only them, are in the map: [0x20000, +4K), the target of
        // every rejected call, is still private.
        #expect(try Sys.getxattr(f, GmemXattr.attributes) == """
            0-4000 shared
            4000-8000 private
            8000-10000 shared
            10000-30000 private
            30000-32000 shared
            32000-40000 private
            40000-41000 shared
            41000-100000 private

            """)
        // Six conversions succeeded; no rejected call counted as one.
        let stats = try Sys.getxattr(f, GmemXattr.stats)
        #expect(stats.contains("conversions=6\n"))
        #expect(stats.contains("ranges=8\n"))
        // The content written while shared survived the round trip through private.
        let head = try run(["dd", "if=\(f)", "bs=3", "count=1", "status=none"])
        #expect(head.output == "abc")
        #expect(m.unmount() == 0)
    }
}
