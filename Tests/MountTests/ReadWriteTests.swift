import CLinuxSys
import Foundation
import GmemTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// read/write on the host file: shared pages work, private pages are EACCES (with the short
/// read/write rules), the size is fixed, and allocation shows in st_blocks, du and SEEK_DATA.
@Suite(.serialized, .enabled(if: FUSE.available))
struct ReadWriteTests {
    @Test func sharedPagesReadAndWriteWithTheTools() throws {
        let m = try GmemMount(["--file", "f:64K:mmap,init-shared"])
        defer { m.unmount() }
        let f = m.file("f")
        // Never-written memory reads as zeros.
        let zeros = try run(["cat", f])
        #expect(zeros.succeeded)
        #expect(zeros.stdout == Data(count: 65536))
        #expect(try sh("printf 'hello gmem' | dd of=\(f) bs=1 seek=5000 conv=notrunc status=none").succeeded)
        #expect(try run(["dd", "if=\(f)", "bs=1", "skip=5000", "count=10", "status=none"]).output == "hello gmem")
        // cmp against a regular file with the same content.
        let cat = try run(["cat", f])
        #expect(cat.stdout.count == 65536)
        #expect(cat.stdout[5000..<5010] == Data("hello gmem".utf8))
        #expect((try? Sys.stat(f))?.st_size == 65536)
    }

    @Test func writeAtOrPastEOFIsENOSPCAndSizeIsFixed() throws {
        let m = try GmemMount(["--file", "f:16K:mmap,init-shared", "--file", "d:16K:init-shared"])
        defer { m.unmount() }
        for name in ["f", "d"] {
            let f = m.file(name)
            #expect(throws: Errno.noSpace) { try write(f, [1], at: 16384) }
            #expect(throws: Errno.noSpace) { try write(f, [1], at: 1 << 20) }
            // A write crossing EOF stores what fits.
            #expect((try? write(f, [7, 7, 7, 7], at: 16382)) == 2)
            #expect((try? contents(f, count: 4, offset: 16380)) == [0, 0, 7, 7])
            let dd = try run(["dd", "if=/dev/zero", "of=\(f)", "bs=4096", "count=1", "seek=4", "conv=notrunc", "status=none"])
            #expect(dd.status == 1)
            #expect(dd.stderr.contains("No space left on device"))
            let append = try sh("printf x >> \(f)")
            #expect(append.stderr.contains("No space left on device"))
            #expect((try? Sys.stat(f))?.st_size == 16384)
            // Reads at or past EOF return 0 bytes.
            #expect((try? contents(f, count: 10, offset: 16384)) == [])
        }
    }

    @Test func privatePagesAreEACCESAndStateUnchanged() throws {
        let m = try GmemMount(["--file", "f:64K:mmap", "--file", "d:64K", "--guest-view"])
        defer { m.unmount() }
        for name in ["f", "d"] {
            let f = m.file(name)
            // Guest puts a secret in page 1 (private) and data in page 0 (to become shared).
            #expect((try? write(m.guest(name), Array(repeating: 0x53, count: 4096), at: 4096)) == 4096)
            #expect((try? write(m.guest(name), Array(repeating: 0x41, count: 4096), at: 0)) == 4096)
            #expect(throws: Errno.permissionDenied) { try contents(f, count: 1) }
            #expect(throws: Errno.permissionDenied) { try contents(f, count: 4096, offset: 4096) }
            let cat = try run(["cat", f])
            #expect(cat.status == 1)
            #expect(cat.stderr.contains("Permission denied"))
            #expect(cat.stdout.isEmpty)
            #expect(throws: Errno.permissionDenied) { try write(f, [1], at: 4096) }
            #expect(throws: Errno.permissionDenied) { try write(f, [1], at: 0) }
            #expect(throws: Never.self) { try convert(f, "0 4K shared") }
            #expect((try? contents(f, count: 4096)) == Array(repeating: 0x41, count: 4096))
            // A write crossing into the private page is short; nothing is stored past the boundary.
            #expect((try? write(f, Array(repeating: 0x42, count: 8192), at: 0)) == 4096)
            #expect((try? write(f, Array(repeating: 0x43, count: 100), at: 4096 - 10)) == 10)
            #expect((try? contents(m.guest(name), count: 4096, offset: 4096)) == Array(repeating: 0x53, count: 4096))
            #expect((try? contents(f, count: 10, offset: 4086)) == Array(repeating: 0x43, count: 10))
            #expect(attributes(f) == "0-1000 shared\n1000-10000 private\n")
        }
    }

    @Test func directIOFilesReturnShortReadsUpToAPrivatePage() throws {
        let m = try GmemMount(["--file", "d:64K:init-shared", "--file", "f:64K:mmap,init-shared"])
        defer { m.unmount() }
        let d = m.file("d")
        #expect((try? write(d, Array(repeating: 5, count: 8192), at: 0)) == 8192)
        #expect(throws: Never.self) { try convert(d, "4K 4K private") }
        let fd = try Sys.open(d, O_RDONLY)
        defer { try? fd.close() }
        #expect((try? Sys.pread(fd, count: 8192, offset: 0)) == Array(repeating: 5, count: 4096))
        #expect((try? Sys.pread(fd, count: 100, offset: 4000))?.count == 96)
        #expect(throws: Errno.permissionDenied) { try Sys.pread(fd, count: 100, offset: 4096) }
        #expect((try? Sys.pread(fd, count: 100, offset: 8192))?.count == 100)
        // dd gets the bytes before the boundary, then the error.
        let dd = try run(["dd", "if=\(d)", "bs=8192", "count=1", "status=none"])
        #expect(dd.stdout.count == 4096)
        // O_DIRECT on a buffered (mmap) file behaves the same.
        let f = m.file("f")
        #expect((try? write(f, Array(repeating: 6, count: 8192), at: 0)) == 8192)
        #expect(throws: Never.self) { try convert(f, "4K 4K private") }
        let dfd = try Sys.open(f, O_RDONLY | CLINUX_O_DIRECT)
        defer { try? dfd.close() }
        let buf = UnsafeMutableRawPointer.allocate(byteCount: 8192, alignment: 4096)
        defer { buf.deallocate() }
        #expect(Glibc.pread(dfd.rawValue, buf, 8192, 0) == 4096)
        #expect(Glibc.pread(dfd.rawValue, buf, 4096, 4096) == -1 && errno == EACCES)
    }

    @Test func bufferedReadsCrossingAPrivatePageFail() throws {
        let m = try GmemMount(["--file", "f:64K:mmap,init-shared"])
        defer { m.unmount() }
        let f = m.file("f")
        #expect((try? write(f, Array(repeating: 0x61, count: 8192), at: 0)) == 8192)
        #expect(throws: Never.self) { try convert(f, "4K 60K private") }
        // dd delivers the bytes before the boundary (the kernel retries page by page), then fails.
        let dd = try run(["dd", "if=\(f)", "bs=4096", "count=2", "status=none"])
        #expect(dd.status == 1)
        #expect(dd.stderr.contains("Permission denied"))
        #expect(dd.stdout == Data(repeating: 0x61, count: 4096))
        // A read that would return private bytes never does; st_size is not shrunk by it.
        // pread gets the shared page only: the kernel falls back to reading page by page.
        #expect((try? contents(f, count: 8192)) == Array(repeating: 0x61, count: 4096))
        #expect(throws: Errno.permissionDenied) { try contents(f, count: 10, offset: 4096) }
        #expect((try? Sys.stat(f))?.st_size == 65536)
        #expect((try? contents(f, count: 4096)) == Array(repeating: 0x61, count: 4096))
    }

    @Test func stBlocksAndDuFollowAllocation() throws {
        let m = try GmemMount(["--file", "f:1M:mmap,init-shared"])
        defer { m.unmount() }
        let f = m.file("f")
        #expect(blocks(f) == 0)
        #expect(try run(["du", "-k", f]).output.hasPrefix("0\t"))
        #expect((try? write(f, [1], at: 0)) == 1)
        #expect(blocks(f) == 8)
        #expect((try? write(f, Array(repeating: 2, count: 3 * 4096), at: 64 * 1024 + 100)) == 3 * 4096)
        #expect(blocks(f) == 8 + 4 * 8)
        #expect(try run(["du", "-k", f]).output.hasPrefix("20\t"))
        #expect(try run(["stat", "-c", "%s %b %B %o", f]).output == "1048576 40 512 4096\n")
        #expect(try run(["fallocate", "-p", "-o", "64K", "-l", "8K", f]).succeeded)
        #expect(blocks(f) == 8 + 2 * 8)
        #expect(stats(f)["allocated_bytes"] == String(3 * 4096))
        #expect(throws: Never.self) { try Sys.withFD(f, O_RDWR) { try Sys.fallocate($0, mode: Falloc.keepSize | Falloc.punchHole, offset: 0, length: 1 << 20) } }
        #expect(blocks(f) == 0)
        #expect(try run(["du", "-k", f]).output.hasPrefix("0\t"))
    }

    @Test func seekDataHoleAndSparseCopy() throws {
        let m = try GmemMount(["--file", "f:1M:mmap,init-shared", "--file", "p:64K:mmap"])
        defer { m.unmount() }
        let f = m.file("f")
        #expect((try? write(f, Array("first".utf8), at: 8192)) == 5)
        #expect((try? write(f, Array(repeating: 9, count: 8192), at: 512 * 1024)) == 8192)
        let py = try Python.run("""
            fd = os.open(sys.argv[1], os.O_RDONLY)
            out = []
            for off in (0, 8192, 8193, 12288, 512 * 1024):
                out.append('%d:%d' % (os.lseek(fd, off, os.SEEK_DATA), os.lseek(fd, off, os.SEEK_HOLE)))
            try:
                os.lseek(fd, 520 * 1024, os.SEEK_DATA); out.append('no ENXIO')
            except OSError as e:
                out.append(errno.errorcode[e.errno])
            try:
                os.lseek(fd, 1 << 20, os.SEEK_HOLE); out.append('no ENXIO')
            except OSError as e:
                out.append(errno.errorcode[e.errno])
            print(' '.join(out))
            """, [f])
        #expect(py.output == "8192:0 8192:12288 8193:12288 524288:12288 524288:532480 ENXIO ENXIO\n", "\(py.stderr)")
        // cp --sparse=always produces an identical, sparse copy.
        let dir = try makeTemporaryDirectory("gmemfs-cp")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try run(["cp", "--sparse=always", f, "\(dir)/copy"]).succeeded)
        #expect(try run(["cmp", f, "\(dir)/copy"]).succeeded)
        let copyBlocks = blocks("\(dir)/copy")
        #expect(copyBlocks >= 0 && copyBlocks <= 64, "copy uses \(copyBlocks) blocks")
        #expect((try? Sys.stat("\(dir)/copy"))?.st_size == 1 << 20)
        // SEEK_DATA on a private file follows allocation, not attributes (the guest wrote nothing).
        let fd = try Sys.open(m.file("p"), O_RDONLY)
        defer { try? fd.close() }
        #expect(throws: Errno.noSuchAddressOrDevice) { try Sys.seek(fd, 0, CLINUX_SEEK_DATA) }
        #expect((try? Sys.seek(fd, 0, CLINUX_SEEK_HOLE)) == 0)
    }
}
