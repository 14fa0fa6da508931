import Foundation
import GmemTestSupport
import GmemABI
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What standard tools report and do on a mount: `du`, `df -i`, `tar x`, flag words in any case,
/// the hint for a map too large for one xattr, and stores past the memory cap.
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

    /// `--max-memory` bites at the fault, as the kernel's guest_memfd allocates a page when it
    /// is faulted in: a store through a mapping to a page that cannot be backed gets SIGBUS at
    /// once (the child dies on page 16 of a 64 KiB cap), every earlier store is kept, and
    /// msync, fsync and close all succeed: nothing is lost after the fact. `read()` of a hole
    /// past the cap is ENOSPC after the bytes before it; punching a page frees room for one more.
    @Test func storesPastTheCapGetSIGBUSAndNothingIsLost() throws {
        let m = try GmemMount(["--file", "f:1M:mmap,init-shared", "--file", "g:1M:mmap,init-shared", "--max-memory", "64K"])
        defer { m.unmount() }
        let py = try Python.run("""
            def store_all(path, out):
                pid = os.fork()
                if pid == 0:
                    fd = os.open(path, os.O_RDWR)
                    mm = mmap.mmap(fd, 1 << 20, mmap.MAP_SHARED)
                    for i in range(256):
                        mm[i * P] = (i % 250) + 1
                        os.write(out, b'%d ' % i)
                    os._exit(0)
                _, st = os.waitpid(pid, 0)
                return 'signal %s' % signal.Signals(os.WTERMSIG(st)).name if os.WIFSIGNALED(st) else 'exit %d' % os.WEXITSTATUS(st)
            r, w = os.pipe()
            result = store_all(sys.argv[1], w)
            os.close(w)
            stored = os.read(r, 1 << 16).split()
            print(result, 'after', len(stored), 'stores')
            fd = os.open(sys.argv[1], os.O_RDWR)
            mm = mmap.mmap(fd, 1 << 20, mmap.MAP_SHARED)
            print('kept', all(mm[i * P] == (i % 250) + 1 for i in range(16)))
            mm.flush(); os.fsync(fd); os.fsync(fd); mm.close(); os.close(fd)
            print('msync fsync close ok')
            fd = os.open(sys.argv[1], os.O_RDONLY)
            data = b''
            try:
                while True:
                    chunk = os.read(fd, 1 << 16)
                    if not chunk: break
                    data += chunk
                print('read', len(data))
            except OSError as e:
                print('read', len(data), 'then', errno.errorcode[e.errno])
            os.close(fd)
            fd = os.open(sys.argv[1], os.O_RDWR)
            punch(fd, 0, P)
            mm = mmap.mmap(fd, 1 << 20, mmap.MAP_SHARED)
            mm[16 * P] = 7
            print('after a punch, page 16 stored', mm[16 * P])
            mm.close(); os.close(fd)
            """, [m.file("f")])
        #expect(py.output == """
            signal SIGBUS after 16 stores
            kept True
            msync fsync close ok
            read 65536 then ENOSPC
            after a punch, page 16 stored 7

            """, "\(py)")
        #expect(ResourceTests.stat(m.path, "allocated_bytes") == 64 << 10)
        #expect(!m.log.contains("lost"))
        #expect(m.isAlive)
    }
}
