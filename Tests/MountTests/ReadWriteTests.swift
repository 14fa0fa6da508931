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

    /// An O_DIRECT write crossing into private pages, or past EOF, is a short write on every
    /// file, with `mmap` or not: the part before the boundary is stored, nothing after it, and
    /// the next write fails (EACCES, ENOSPC). (With asynchronous direct I/O the kernel turned
    /// the short reply into EIO on page-cached files.)
    @Test func directWritesCrossingABoundaryAreShort() throws {
        let m = try GmemMount(["--file", "f:512K:mmap,init-shared", "--file", "d:512K:init-shared", "--guest-view"])
        defer { m.unmount() }
        let dir = try makeTemporaryDirectory("gmemfs-dio")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let pattern = "\(dir)/pattern"
        #expect(FileManager.default.createFile(atPath: pattern, contents: Data(repeating: 0xAB, count: 8192)))
        for name in ["f", "d"] {
            let f = m.file(name)
            #expect(throws: Never.self) { try convert(f, "262144 131072 private") }
            for (seek, errno) in [(258048, "Permission denied"), (520192, "No space left on device")] {
                let dd = try run(["dd", "if=\(pattern)", "of=\(f)", "bs=8k", "count=1", "oflag=seek_bytes,direct",
                                  "seek=\(seek)", "conv=notrunc"])
                #expect(dd.status == 1, "\(name) seek=\(seek): \(dd)")
                #expect(dd.stderr.contains(errno), "\(name) seek=\(seek): \(dd.stderr)")
                #expect(dd.stderr.contains("\n4096 bytes"), "\(name) seek=\(seek): \(dd.stderr)")
                #expect(!dd.stderr.contains("Input/output error"), "\(name) seek=\(seek): \(dd.stderr)")
            }
            // Exactly the page before each boundary was stored.
            let all = try contents(m.guest(name), count: 524288)
            let written = all.indices.filter { all[$0] != 0 }
            #expect(written.count == 8192)
            #expect(written.first == 258048 && written.last == 524287)
            #expect(all[258048..<262144].allSatisfy { $0 == 0xAB } && all[520192..<524288].allSatisfy { $0 == 0xAB })
        }
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
        #expect(stats(f)[.allocatedBytes] == String(3 * 4096))
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
        // Private pages are data even when never written: the host may not read them, so a
        // sparse copy must try and fail rather than write zeros.
        let fd = try Sys.open(m.file("p"), O_RDONLY)
        defer { try? fd.close() }
        #expect((try? Sys.seek(fd, 0, CLINUX_SEEK_DATA)) == 0)
        #expect((try? Sys.seek(fd, 0, CLINUX_SEEK_HOLE)) == 65536)
    }

    /// `cp` skips what SEEK_HOLE calls a hole: a private file must make them fail
    /// with EACCES, not "succeed" with zeros; shared unwritten pages stay holes in the copy.
    @Test func copyOfPrivatePagesFailsAndSharedHolesStaySparse() throws {
        let m = try GmemMount(["--file", "p:64K:mmap", "--file", "d:64K", "--file", "s:1M:mmap,init-shared"])
        defer { m.unmount() }
        let dir = try makeTemporaryDirectory("gmemfs-cp")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for name in ["p", "d"] {
            for sparse in ["auto", "always"] {
                let cp = try run(["cp", "--sparse=\(sparse)", m.file(name), "\(dir)/\(name)"])
                #expect(!cp.succeeded, "cp --sparse=\(sparse) of private \(name) succeeded")
                #expect(cp.stderr.contains("Permission denied"), "\(cp.stderr)")
            }
            // (GNU tar 1.34's -S archives an unreadable region as a hole with exit 0 whatever
            // SEEK_DATA says; see docs/semantics.md. Without -S it fails.)
            let tar = try run(["tar", "-cf", "\(dir)/\(name).tar", "-C", m.path, name])
            #expect(!tar.succeeded, "tar of private \(name) succeeded")
            #expect(tar.stderr.contains("Permission denied"), "\(tar.stderr)")
        }
        // Partly shared: data at 8 KiB, shared holes, the last 64 KiB private. The copy stops
        // with EACCES at the private part, after copying the shared part sparsely.
        let s = m.file("s")
        #expect((try? write(s, Array(repeating: 7, count: 4096), at: 8192)) == 4096)
        #expect(throws: Never.self) { try convert(s, "983040 65536 private") }
        let cp = try run(["cp", "--sparse=always", s, "\(dir)/s"])
        #expect(!cp.succeeded)
        #expect(cp.stderr.contains("Permission denied"), "\(cp.stderr)")
        // Converted back to shared (never written): the whole file copies, sparse again.
        #expect(throws: Never.self) { try convert(s, "983040 65536 shared") }
        #expect(try run(["cp", "--sparse=always", s, "\(dir)/s2"]).succeeded)
        #expect(try run(["cmp", s, "\(dir)/s2"]).succeeded)
        let copyBlocks = blocks("\(dir)/s2")
        #expect(copyBlocks > 0 && copyBlocks <= 64, "copy uses \(copyBlocks) blocks")
    }
}
