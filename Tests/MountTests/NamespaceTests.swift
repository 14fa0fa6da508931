import Foundation
import GmemTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The mount root: `user.gmem.create`, `rm`, and every other way of making or moving a name.
@Suite(.serialized, .enabled(if: FUSE.available))
struct NamespaceTests {
    func names(_ m: GmemMount) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: m.path)) ?? []).sorted()
    }

    /// Many files: each create and remove is logged, listing pages through readdir, and the
    /// daemon keeps serving (its log is far past a pipe's 64 KiB).
    @Test func thousandsOfFilesComeAndGo() throws {
        let m = try GmemMount(["--file", "keep:4K"])
        defer { m.unmount() }
        let count = 1500
        for i in 0..<count {
            #expect(Sys.setxattr(m.path, "user.gmem.create", "file-\(i)-with-a-longish-name-for-the-log 4096 init-shared") == 0)
        }
        #expect(names(m).count == count + 1)
        try Sys.withFD(m.file("file-7-with-a-longish-name-for-the-log"), O_RDWR) { fd in
            #expect(Sys.pwrite(fd, [1], offset: 0) == .success(1))
        }
        for i in stride(from: 0, to: count, by: 2) { #expect(unlink(m.file("file-\(i)-with-a-longish-name-for-the-log")) == 0) }
        #expect(names(m).count == count / 2 + 1)
        #expect(m.log.utf8.count > 65536)
        #expect(m.isAlive)
        #expect(m.unmount() == 0)
    }

    @Test func createWithSetfattrAndNumericFlags() throws {
        let m = try GmemMount(["--file", "a:4K"])
        defer { m.unmount() }
        #expect(try run(["setfattr", "-n", "user.gmem.create", "-v", "g 64K mmap,init-shared", m.path]).succeeded)
        #expect(Sys.setxattr(m.path, "user.gmem.create", "h 8192 1") == 0)
        #expect(Sys.setxattr(m.path, "user.gmem.create", "i 2M 3") == 0)
        #expect(Sys.setxattr(m.path, "user.gmem.create", "j 4096 init_shared") == 0)
        #expect(Sys.setxattr(m.path, "user.gmem.create", "k 4096 0") == 0)
        let longName = String(repeating: "n", count: 255)
        #expect(Sys.setxattr(m.path, "user.gmem.create", "\(longName) 4096") == 0)
        #expect(names(m) == ["a", "g", "h", "i", "j", "k", longName].sorted())
        let st = try #require(Sys.stat(m.file("g")).value)
        #expect(st.st_size == 65536)
        #expect(st.st_mode & S_IFMT == S_IFREG)
        #expect(Sys.stat(m.file(longName)).value?.st_size == 4096)
        #expect(Sys.getxattr(m.file("g"), "user.gmem.flags") == .success("mmap init-shared"))
        #expect(Sys.getxattr(m.file("h"), "user.gmem.flags") == .success("mmap"))
        #expect(Sys.getxattr(m.file("i"), "user.gmem.flags") == .success("mmap init-shared"))
        #expect(Sys.getxattr(m.file("j"), "user.gmem.flags") == .success("init-shared"))
        #expect(Sys.getxattr(m.file("k"), "user.gmem.flags") == .success(""))
        #expect(attributes(m.file("g")) == "0-10000 shared\n")
        #expect(attributes(m.file("h")) == "0-2000 private\n")
        #expect(Sys.stat(m.file("i")).value?.st_ino != Sys.stat(m.file("h")).value?.st_ino)
        #expect(stats(m.path)["files"] == "7")
    }

    @Test func createRejectsBadRequestsAndChangesNothing() throws {
        let m = try GmemMount(["--file", "a:4K"])
        defer { m.unmount() }
        let before = names(m)
        let invalid = [
            "b 64K bogus", "b 64K mmap,bogus", "b 64K mmap,", "b 64K 4", "b 64K 0x8", "b 64K 0x8000000000000000",
            "b 0", "b 1", "b 4095", "b 4097", "b 64K+1", "b", "b 4096 mmap extra", "", "b -4096",
            "a/b 4096", ".x 4096", ".guest 4096", "\(String(repeating: "n", count: 256)) 4096",
            "b\u{1}c 4096",
        ]
        for value in invalid {
            #expect(Sys.setxattr(m.path, "user.gmem.create", value) == EINVAL, "\(value.prefix(40).debugDescription)")
        }
        #expect(Sys.setxattr(m.path, "user.gmem.create", "a 4096") == EEXIST)
        #expect(Sys.setxattr(m.path, "user.gmem.create", "a 8192 mmap") == EEXIST)
        #expect(names(m) == before)
        #expect(stats(m.path)["files"] == "1")
        #expect(Sys.stat(m.file("a")).value?.st_size == 4096)
        let tool = try run(["setfattr", "-n", "user.gmem.create", "-v", "a 4096", m.path])
        #expect(tool.stderr.contains("File exists"))
    }

    @Test func otherWaysOfMakingNamesAreEPERM() throws {
        let m = try GmemMount(["--file", "a:64K:init-shared,mmap", "--guest-view"])
        defer { m.unmount() }
        let before = names(m)
        #expect(Sys.openFD(m.file("new"), O_CREAT | O_WRONLY).errnoCode == EPERM)
        #expect(Sys.openFD(m.file("new"), O_CREAT | O_EXCL | O_RDWR).errnoCode == EPERM)
        #expect(Sys.errnoOf(mkdir(m.file("dir"), 0o755)) == EPERM)
        #expect(Sys.errnoOf(mknod(m.file("node"), S_IFREG | 0o644, 0)) == EPERM)
        #expect(Sys.errnoOf(mkfifo(m.file("fifo"), 0o644)) == EPERM)
        #expect(Sys.errnoOf(symlink("a", m.file("sym"))) == EPERM)
        #expect(Sys.errnoOf(link(m.file("a"), m.file("hard"))) == EPERM)
        #expect(Sys.errnoOf(rename(m.file("a"), m.file("b"))) == EPERM)
        #expect(Sys.errnoOf(rmdir(m.file(".guest"))) == EPERM)
        #expect(Sys.errnoOf(unlink(m.guest("a"))) == EPERM)
        // The tools fail too.
        #expect(!(try run(["touch", m.file("t")]).succeeded))
        #expect(!(try sh("echo x > \(m.file("t"))").succeeded))
        #expect(try run(["mv", m.file("a"), m.file("b")]).stderr.contains("Operation not permitted"))
        #expect(names(m) == before)
        // Opening an existing file with O_CREAT (no O_EXCL) is an ordinary open.
        let fd = try Sys.openFD(m.file("a"), O_CREAT | O_RDWR).get()
        close(fd)
        #expect(Sys.stat(m.file("a")).value?.st_size == 65536)
    }

    @Test func truncateAndOTruncAreEINVAL() throws {
        let m = try GmemMount(["--file", "a:64K:init-shared,mmap", "--file", "d:64K:init-shared"])
        defer { m.unmount() }
        for name in ["a", "d"] {
            let f = m.file(name)
            #expect(write(f, [1, 2, 3], at: 0).value == 3)
            #expect(Sys.errnoOf(truncate(f, 4096)) == EINVAL)
            #expect(Sys.errnoOf(truncate(f, 0)) == EINVAL)
            #expect(Sys.errnoOf(truncate(f, 1 << 20)) == EINVAL)
            let fd = try Sys.openFD(f, O_RDWR).get()
            #expect(Sys.errnoOf(ftruncate(fd, 0)) == EINVAL)
            close(fd)
            #expect(Sys.openFD(f, O_RDWR | O_TRUNC).errnoCode == EINVAL)
            #expect(Sys.openFD(f, O_WRONLY | O_TRUNC).errnoCode == EINVAL)
            #expect(!(try run(["truncate", "-s", "0", f]).succeeded))
            #expect(try sh("echo x > \(f)").stderr.contains("Invalid argument"))
            #expect(Sys.stat(f).value?.st_size == 65536)
            #expect(contents(f, count: 3).value == [1, 2, 3])
        }
    }

    /// Removing a name and creating it again: the guest view and the host view show the new
    /// file at once, every cycle (guest names are never cached by the kernel; a cached one
    /// pointed at the removed inode for an hour).
    @Test func recreatedNameIsVisibleAtOnceInBothViews() throws {
        let m = try GmemMount(["--file", "keep:4K", "--guest-view"])
        defer { m.unmount() }
        var inodes: Set<UInt64> = []
        for cycle in 0..<5 {
            #expect(try run(["setfattr", "-n", "user.gmem.create", "-v", "bar 8K init-shared", m.path]).succeeded)
            let guest = try run(["stat", "-c", "%i %s", m.guest("bar")])
            let host = try run(["stat", "-c", "%i %s", m.file("bar")])
            #expect(guest.succeeded && host.succeeded, "cycle \(cycle): \(guest) \(host)")
            #expect(guest.output.hasSuffix(" 8192\n") && host.output.hasSuffix(" 8192\n"))
            for s in [guest.output, host.output] { inodes.insert(s.split(separator: " ").first.flatMap { UInt64($0) } ?? 0) }
            // Contents go through the new file in both directions.
            #expect(try sh("printf 'cycle\(cycle)' | dd of=\(m.guest("bar")) conv=notrunc status=none").succeeded)
            #expect(try run(["head", "-c", "6", m.file("bar")]).output == "cycle\(cycle)")
            #expect(try run(["head", "-c", "6", m.guest("bar")]).output == "cycle\(cycle)")
            #expect(try run(["ls", "-l", "\(m.path)/.guest"]).output.contains("-rw------- "))
            #expect(try run(["rm", m.file("bar")]).succeeded)
            #expect(try run(["stat", m.guest("bar")]).stderr.contains("No such file or directory"))
            #expect(try run(["stat", m.file("bar")]).stderr.contains("No such file or directory"))
        }
        #expect(inodes.count == 10, "every cycle has fresh inodes: \(inodes.sorted())")
    }

    @Test func rmWithAnOpenFdKeepsDataUntilClose() throws {
        let m = try GmemMount(["--file", "a:64K:init-shared,mmap", "--file", "b:64K:init-shared", "--guest-view"])
        defer { m.unmount() }
        let f = m.file("a")
        #expect(try run(["dd", "if=/dev/zero", "of=\(f)", "bs=4096", "count=4", "conv=notrunc", "status=none"]).succeeded)
        #expect(write(f, Array("still here".utf8), at: 100).value == 10)
        #expect(stats(m.path)["allocated_bytes"] == "16384")
        let fd = try Sys.openFD(f, O_RDWR).get()
        #expect(try run(["rm", f]).succeeded)
        #expect(Sys.stat(f).errnoCode == ENOENT)
        #expect(Sys.stat(m.guest("a")).errnoCode == ENOENT)
        #expect(FileManager.default.fileExists(atPath: m.file("b")))
        #expect(stats(m.path)["files"] == "1")
        // The open fd still reads and writes the memory.
        #expect(Sys.pread(fd, count: 10, offset: 100).value.map { String(decoding: $0, as: UTF8.self) } == "still here")
        #expect(Sys.pwrite(fd, [9], offset: 0).value == 1)
        #expect(Sys.pread(fd, count: 1, offset: 0).value == [9])
        var st = Glibc.stat()
        #expect(fstat(fd, &st) == 0)
        #expect(st.st_nlink == 0)
        // The name is free again.
        #expect(Sys.setxattr(m.path, "user.gmem.create", "a 4096") == 0)
        #expect(Sys.stat(f).value?.st_size == 4096)
        #expect(try run(["rm", f]).succeeded)
        #expect(Sys.errnoOf(unlink(f)) == ENOENT)
        #expect(stats(m.path)["allocated_bytes"] == "16384")   // still open
        close(fd)
        // Release is asynchronous to close(2) in FUSE; poll briefly.
        var freed = false
        for _ in 0..<200 where !freed {
            freed = stats(m.path)["allocated_bytes"] == "0"
            if !freed { usleep(10_000) }
        }
        #expect(freed)
    }

    /// Removing names already listed while a listing continues (`find -delete`) must not make the
    /// listing skip names nobody touched. Offsets used to be indices into the current list.
    @Test func removingListedNamesDoesNotSkipOthers() throws {
        let m = try GmemMount(["--guest-view", "--file", "a:4K"])
        defer { m.unmount() }
        for i in 0..<220 { #expect(Sys.setxattr(m.path, "user.gmem.create", "n\(i) 4096") == 0) }
        for (k, dir) in [m.path, "\(m.path)/.guest"].enumerated() {
            // getdents64 with a 1 KiB buffer, so the listing takes several READDIRs.
            let py = try Python.run("""
                import ctypes, struct
                getdents64 = 217 if os.uname().machine == 'x86_64' else 61
                libc = ctypes.CDLL(None, use_errno=True)
                d, root, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
                fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
                buf = ctypes.create_string_buffer(1024)
                names, first = [], True
                while True:
                    n = libc.syscall(getdents64, fd, buf, 1024)
                    if n <= 0: break
                    b, o = buf.raw[:n], 0
                    while o < n:
                        reclen = struct.unpack_from('<H', b, o + 16)[0]
                        names.append(b[o + 19:o + reclen].split(b'\\0')[0].decode()); o += reclen
                    if first:
                        first = False
                        for i in range(10 * k, 10 * k + 10): os.unlink(root + '/n%d' % i)
                missing = [x for x in ['n%d' % i for i in range(20, 220)] + ['a'] if x not in names]
                print(' '.join(missing) or 'none')
                print(len(names) == len(set(names)))
                """, [dir, m.path, String(k)])
            #expect(py.output == "none\nTrue\n", "\(dir): \(py.stderr)")
        }
    }

    /// Names are bytes, as in the kernel: canonically equivalent spellings are different names,
    /// and a name that is not UTF-8 finds nothing (it used to be repaired into U+FFFD).
    @Test func namesAreComparedAsBytes() throws {
        let m = try GmemMount(["--file", "a:4K"])
        defer { m.unmount() }
        let composed = "\u{E9}", decomposed = "e\u{301}"
        #expect(Sys.setxattr(m.path, "user.gmem.create", "\(composed) 4096") == 0)
        #expect(Sys.setxattr(m.path, "user.gmem.create", "\(decomposed) 8192") == 0)
        #expect(Sys.stat(m.file(composed)).value?.st_size == 4096)
        #expect(Sys.stat(m.file(decomposed)).value?.st_size == 8192)
        #expect(Array(names(m).map { Array($0.utf8) }).contains(Array(decomposed.utf8)))
        #expect(Sys.setxattr(m.path, "user.gmem.create", "\u{FFFD} 4096") == 0)
        var st = Glibc.stat()
        let invalid: [CChar] = Array(m.path.utf8CString.dropLast()) + [0x2F, CChar(bitPattern: 0xFF), 0]
        #expect(Sys.errnoOf(invalid.withUnsafeBufferPointer { lstat($0.baseAddress!, &st) }) == ENOENT)
        #expect(Sys.errnoOf(invalid.withUnsafeBufferPointer { Glibc.unlink($0.baseAddress!) }) == ENOENT)
        #expect(Sys.stat(m.file("\u{FFFD}")).value?.st_size == 4096)
        #expect(Sys.errnoOf(unlink(m.file(decomposed))) == 0)
        #expect(Sys.stat(m.file(composed)).value?.st_size == 4096)
    }
}
