import Foundation
import GmemTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// fallocate(2): PUNCH_HOLE|KEEP_SIZE frees and zeroes but keeps attributes; KEEP_SIZE allocates
/// inside the file; everything else is EINVAL or EOPNOTSUPP with nothing changed.
@Suite(.serialized, .enabled(if: FUSE.available))
struct FallocateTests {
    @Test func punchHoleZeroesFreesAndKeepsAttributes() throws {
        let m = try GmemMount(["--file", "f:64K:mmap,init-shared"])
        defer { m.unmount() }
        let f = m.file("f")
        #expect((try? write(f, Array(repeating: 0xaa, count: 16384), at: 0)) == 16384)
        #expect(throws: Never.self) { try convert(f, "8K 4K private") }
        let map = attributes(f)
        let tool = try run(["fallocate", "--punch-hole", "--offset", "4096", "--length", "8192", f])
        #expect(tool.succeeded, "\(tool.stderr)")
        #expect(attributes(f) == map)
        #expect(stats(f)[.allocatedBytes] == "8192")
        #expect((try? contents(f, count: 4096)) == Array(repeating: 0xaa, count: 4096))
        #expect((try? contents(f, count: 4096, offset: 4096)) == Array(repeating: 0, count: 4096))
        #expect(throws: Errno.permissionDenied) { try contents(f, count: 4096, offset: 8192) }   // still private
        #expect(throws: Never.self) { try convert(f, "8K 4K shared") }
        #expect((try? contents(f, count: 4096, offset: 8192)) == Array(repeating: 0, count: 4096))
        #expect((try? contents(f, count: 4096, offset: 12288)) == Array(repeating: 0xaa, count: 4096))
    }

    @Test func fallocateModesAndRanges() throws {
        let m = try GmemMount(["--file", "f:16K:mmap,init-shared", "--file", "d:16K"])
        defer { m.unmount() }
        for name in ["f", "d"] {
            let f = m.file(name)
            if name == "f" { #expect((try? write(f, [1, 2, 3], at: 0)) == 3) }
            let keep = Falloc.keepSize, punch = Falloc.keepSize | Falloc.punchHole
            try Sys.withFD(f, O_RDWR) { fd in
                let cases: [(Int32, Int, Int, Int32, String)] = [
                    (punch, 1, 4096, EINVAL, "unaligned offset"),
                    (punch, 0, 100, EINVAL, "unaligned length"),
                    (punch, 16384, 4096, 0, "punch at EOF"),
                    (punch, 1 << 20, 4096, 0, "punch after EOF"),
                    (keep, 16384, 4096, EINVAL, "allocate at EOF"),
                    (keep, 12288, 8192, EINVAL, "allocate crossing EOF"),
                    (0, 0, 4096, EOPNOTSUPP, "mode 0"),
                    (Falloc.punchHole, 0, 4096, EOPNOTSUPP, "punch without KEEP_SIZE (the VFS refuses it)"),
                    (Falloc.zeroRange, 0, 4096, EOPNOTSUPP, "zero range"),
                    (Falloc.zeroRange | keep, 0, 4096, EOPNOTSUPP, "zero range keep size"),
                    (Falloc.collapseRange, 0, 4096, EOPNOTSUPP, "collapse range"),
                    (Falloc.insertRange, 0, 4096, EOPNOTSUPP, "insert range"),
                ]
                for (mode, offset, length, expected, what) in cases {
                    #expect(failure { try Sys.fallocate(fd, mode: mode, offset: offset, length: length) }?.rawValue ?? 0 == expected, "\(what)")
                }
            }
            #expect(stats(f)[.allocatedBytes] == (name == "f" ? "4096" : "0"))
            if name == "f" { #expect((try? contents(f, count: 3)) == [1, 2, 3]) }
            // KEEP_SIZE inside the file allocates (st_blocks grows), but reads still give zeros.
            #expect(try run(["fallocate", "--keep-size", "-o", "4096", "-l", "8192", f]).succeeded)
            #expect(blocks(f) == (name == "f" ? 24 : 16))
            #expect((try? Sys.stat(f))?.st_size == 16384)
            // The tool: plain fallocate (mode 0) is refused.
            let plain = try run(["fallocate", "-o", "0", "-l", "4096", f])
            #expect(!plain.succeeded)
            #expect(plain.stderr.contains("Operation not supported"))
        }
    }
}
