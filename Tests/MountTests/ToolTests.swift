import Foundation
import GmemTestSupport
import GmemABI
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What standard tools report and do on a mount: `du`, `df -i`, `tar x`, flag words in any case,
/// the hint for a map too large for one xattr, and a writeback lost at the memory cap.
@Suite(.serialized, .enabled(if: FUSE.available))
struct ToolTests {
    /// The guest view shows the host file's memory again: it reports no blocks, so `du` of the
    /// mount counts each page once.
    @Test func duCountsTheGuestViewOnce() throws {
        let m = try GmemMount(["--file", "f:1M:init-shared", "--guest-view"])
        defer { m.unmount() }
        #expect((try? write(m.file("f"), Array(repeating: 1, count: 262144), at: 0)) == 262144)
        #expect((try? write(m.guest("f"), Array(repeating: 2, count: 4096), at: 524288)) == 4096)
        #expect(blocks(m.file("f")) == 65 * 8)
        #expect(blocks(m.guest("f")) == 0)
        #expect((try? Sys.stat(m.guest("f")))?.st_size == 1 << 20)
        let du = try run(["du", "-sk", m.path])
        #expect(du.output.hasPrefix("260\t"), "\(du.output)")
    }

    /// Names are not a finite resource: `df -i` shows the mount nearly empty, not 100 % used.
    @Test func statfsReportsFreeInodes() throws {
        let m = try GmemMount(["--file", "a:4K", "--file", "b:4K"])
        defer { m.unmount() }
        let st = try run(["stat", "-f", "-c", "%c %d", m.path])
        let counts = st.output.split(separator: " ").compactMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        #expect(counts.count == 2 && counts[0] >= 1 << 32 - 1 && counts[1] == counts[0] - 2, "\(st)")
        let df = try run(["df", "-i", m.path])
        #expect(df.succeeded && df.output.contains(" 1% "), "\(df.output)")
    }

    /// `tar x` over an existing file removes it (the open with O_CREAT|O_EXCL fails with EEXIST,
    /// so tar unlinks the name and creates it again, which only `user.gmem.create` may do) and
    /// `--overwrite` opens with O_TRUNC (EINVAL: the size is fixed). Documented workaround:
    /// extract to stdout into the existing file, `tar -xOf A NAME | dd of=M/NAME conv=notrunc`.
    @Test func tarExtractFailsAndTheWorkaroundWrites() throws {
        let m = try GmemMount(["--file", "f:8K:init-shared", "--file", "g:8K:mmap,init-shared"])
        defer { m.unmount() }
        let dir = try makeTemporaryDirectory("gmemfs-tar")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) })
        for name in ["f", "g"] { #expect(FileManager.default.createFile(atPath: "\(dir)/\(name)", contents: data)) }
        #expect(try run(["tar", "-cf", "\(dir)/a.tar", "-C", dir, "f", "g"]).succeeded)
        // The workaround: contents land in the existing files, sizes unchanged.
        for name in ["f", "g"] {
            #expect(try sh("tar -xOf \(dir)/a.tar \(name) | dd of=\(m.file(name)) conv=notrunc status=none").succeeded)
            #expect(try run(["cmp", m.file(name), "\(dir)/\(name)"]).succeeded)
        }
        // --overwrite: EINVAL, the file keeps its contents.
        let overwrite = try run(["tar", "-xf", "\(dir)/a.tar", "-C", m.path, "--overwrite", "f"])
        #expect(!overwrite.succeeded && overwrite.stderr.contains("Invalid argument"), "\(overwrite.stderr)")
        #expect(try run(["cmp", m.file("f"), "\(dir)/f"]).succeeded)
        // Plain tar x: the existing names are removed, and creating them again is EPERM.
        let plain = try run(["tar", "-xf", "\(dir)/a.tar", "-C", m.path])
        #expect(!plain.succeeded && plain.stderr.contains("Operation not permitted"), "\(plain.stderr)")
        #expect(!FileManager.default.fileExists(atPath: m.file("f")) && !FileManager.default.fileExists(atPath: m.file("g")))
    }

    /// Flag words are case-insensitive everywhere, as the attribute words already were.
    @Test func flagWordsAreCaseInsensitive() throws {
        let m = try GmemMount(["--file", "a:4K:MMAP,Init-Shared"])
        defer { m.unmount() }
        #expect((try? Sys.getxattr(m.file("a"), GmemXattr.flags)) == "mmap init-shared")
        #expect(throws: Never.self) { try Sys.setxattr(m.path, GmemXattr.create, "b 4K MMAP") }
        #expect((try? Sys.getxattr(m.file("b"), GmemXattr.flags)) == "mmap")
        #expect(throws: Never.self) { try Sys.setxattr(m.path, GmemXattr.create, "c 4K Init_Shared,mmap") }
        #expect((try? Sys.getxattr(m.file("c"), GmemXattr.flags)) == "mmap init-shared")
        #expect(throws: Never.self) { try convert(m.file("c"), "0 4K PRIVATE") }
        #expect(throws: Never.self) { try convert(m.file("c"), "0 4K Shared") }
        // Unknown words are still EINVAL, in any case.
        #expect(throws: Errno.invalidArgument) { try Sys.setxattr(m.path, GmemXattr.create, "d 4K MMAPX") }
        // --file: refused before mounting (an accepted spec would mount: auto_unmount and the
        // timeout clean up after such a regression).
        let dir = try makeTemporaryDirectory("gmemfs-flags")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bad = try run([binDirectory() + "/gmemfs", "-f", "-o", "auto_unmount", "--file", "e:4K:Shared", dir], timeout: 10)
        #expect(!bad.succeeded && bad.stderr.contains("unknown flag"), "\(bad)")
        #expect(!GmemMount.isMounted(dir))
    }

    /// Mapped writes past `--max-memory` are lost at writeback (nothing can fault on a dirty
    /// page after the fact); the loss is reported: `msync(MS_SYNC)` gets ENOSPC, and the daemon
    /// reports it once more on the next fsync or close, also when the writeback happened at close.
    @Test func writebackPastTheCapIsReported() throws {
        let m = try GmemMount(["--file", "f:1M:mmap,init-shared", "--file", "g:1M:mmap,init-shared", "--max-memory", "64K"])
        defer { m.unmount() }
        let py = try Python.run("""
            def attempt(what, call):
                try:
                    call(); return what + ' ok'
                except OSError as e:
                    return what + ' ' + errno.errorcode[e.errno]
            out = []
            fd = os.open(sys.argv[1], os.O_RDWR)
            mm = mmap.mmap(fd, 1 << 20, mmap.MAP_SHARED)
            for i in range(0, 1 << 20, 4096): mm[i] = 1
            out.append(attempt('msync', mm.flush))
            out.append(attempt('fsync', lambda: os.fsync(fd)))
            out.append(attempt('fsync', lambda: os.fsync(fd)))
            mm.close(); os.close(fd)
            # No msync: the writeback happens at close.
            fd = os.open(sys.argv[2], os.O_RDWR)
            mm = mmap.mmap(fd, 1 << 20, mmap.MAP_SHARED)
            for i in range(0, 1 << 20, 4096): mm[i] = 1
            mm.close()
            out.append(attempt('close', lambda: os.close(fd)))
            print(' '.join(out))
            """, [m.file("f"), m.file("g")])
        #expect(py.output == "msync ENOSPC fsync ENOSPC fsync ok close ENOSPC\n", "\(py)")
        #expect(m.log.contains("reported on the next fsync or close"))
        #expect(m.isAlive)
    }
}
