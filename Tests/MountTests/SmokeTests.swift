import Foundation
import GmemABI
import GmemTestSupport
import Testing

/// The README's 30-second example, end to end through the real tools.
@Suite(.serialized, .enabled(if: FUSE.available))
struct SmokeTests {
    @Test func readmeTranscript() throws {
        let m = try GmemMount(["--file", "gmem:1M:mmap"])
        defer { m.unmount() }
        let f = m.file("gmem")
        // Memory starts private: the host cannot read it.
        let cat = try run(["cat", f])
        #expect(cat.status == 1)
        #expect(cat.stderr.contains("Permission denied"))
        // Convert the first 64 KiB to shared, write and read it back.
        #expect(try run(["setfattr", "-n", GmemXattr.setAttributes, "-v", "0 64K shared", f]).succeeded)
        #expect(try sh("printf hello | dd of=\(f) conv=notrunc status=none").succeeded)
        let head = try run(["dd", "if=\(f)", "bs=5", "count=1", "status=none"])
        #expect(head.output == "hello")
        let map = try run(["getfattr", "--only-values", "-n", GmemXattr.attributes, f])
        #expect(map.output == "0-10000 shared\n10000-100000 private\n")
        // An mmap fault on a private page kills the toucher with SIGBUS.
        let py = try run(["python3", "-c", "import mmap,os; m=mmap.mmap(os.open('\(f)',os.O_RDWR),1<<20); m[65536]"])
        #expect(py.signal == SIGBUS)
        #expect(m.unmount() == 0)
        #expect(!GmemMount.isMounted(m.path))
    }
}
