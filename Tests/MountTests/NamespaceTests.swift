import Foundation
import GmemABI
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
            #expect(throws: Never.self) { try Sys.setxattr(m.path, GmemXattr.create, "file-\(i)-with-a-longish-name-for-the-log 4096 init-shared") }
        }
        #expect(names(m).count == count + 1)
        try Sys.withFD(m.file("file-7-with-a-longish-name-for-the-log"), O_RDWR) { fd in
            #expect((try? Sys.pwrite(fd, [1], offset: 0)) == 1)
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
        #expect(try run(["setfattr", "-n", GmemXattr.create, "-v", "g 64K mmap,init-shared", m.path]).succeeded)
        #expect(throws: Never.self) { try Sys.setxattr(m.path, GmemXattr.create, "h 8192 1") }
        #expect(throws: Never.self) { try Sys.setxattr(m.path, GmemXattr.create, "i 2M 3") }
        #expect(throws: Never.self) { try Sys.setxattr(m.path, GmemXattr.create, "j 4096 init_shared") }
        #expect(throws: Never.self) { try Sys.setxattr(m.path, GmemXattr.create, "k 4096 0") }
        let longName = String(repeating: "n", count: 255)
        #expect(throws: Never.self) { try Sys.setxattr(m.path, GmemXattr.create, "\(longName) 4096") }
        #expect(names(m) == ["a", "g", "h", "i", "j", "k", longName].sorted())
        let st = try #require((try? Sys.stat(m.file("g"))))
        #expect(st.st_size == 65536)
        #expect(st.st_mode & S_IFMT == S_IFREG)
        #expect((try? Sys.stat(m.file(longName)))?.st_size == 4096)
        #expect((try? Sys.getxattr(m.file("g"), GmemXattr.flags)) == "mmap init-shared")
        #expect((try? Sys.getxattr(m.file("h"), GmemXattr.flags)) == "mmap")
        #expect((try? Sys.getxattr(m.file("i"), GmemXattr.flags)) == "mmap init-shared")
        #expect((try? Sys.getxattr(m.file("j"), GmemXattr.flags)) == "init-shared")
        #expect((try? Sys.getxattr(m.file("k"), GmemXattr.flags)) == "")
        #expect(attributes(m.file("g")) == "0-10000 shared\n")
        #expect(attributes(m.file("h")) == "0-2000 private\n")
        #expect((try? Sys.stat(m.file("i")))?.st_ino != (try? Sys.stat(m.file("h")))?.st_ino)
        #expect(stats(m.path)[.files] == "7")
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
            #expect(throws: Errno.invalidArgument, "\(value.prefix(40).debugDescription)") { try Sys.setxattr(m.path, GmemXattr.create, value) }
        }
        #expect(throws: Errno.fileExists) { try Sys.setxattr(m.path, GmemXattr.create, "a 4096") }
        #expect(throws: Errno.fileExists) { try Sys.setxattr(m.path, GmemXattr.create, "a 8192 mmap") }
        #expect(names(m) == before)
        #expect(stats(m.path)[.files] == "1")
        #expect((try? Sys.stat(m.file("a")))?.st_size == 4096)
        let tool = try run(["setfattr", "-n", GmemXattr.create, "-v", "a 4096", m.path])
        #expect(tool.stderr.contains("File exists"))
    }

    @Test func otherWaysOfMakingNamesAreEPERM() throws {
        let m = try GmemMount(["--file", "a:64K:init-shared,mmap", "--guest-view"])
        defer { m.unmount() }
        let before = names(m)
        #expect(throws: Errno.notPermitted) { try Sys.open(m.file("new"), O_CREAT | O_WRONLY) }
        #expect(throws: Errno.notPermitted) { try Sys.open(m.file("new"), O_CREAT | O_EXCL | O_RDWR) }
        #expect(throws: Errno.notPermitted) { try Sys.checked(mkdir(m.file("dir"), 0o755)) }
        #expect(throws: Errno.notPermitted) { try Sys.checked(mknod(m.file("node"), S_IFREG | 0o644, 0)) }
        #expect(throws: Errno.notPermitted) { try Sys.checked(mkfifo(m.file("fifo"), 0o644)) }
        #expect(throws: Errno.notPermitted) { try Sys.checked(symlink("a", m.file("sym"))) }
        #expect(throws: Errno.notPermitted) { try Sys.checked(link(m.file("a"), m.file("hard"))) }
        #expect(throws: Errno.notPermitted) { try Sys.checked(rename(m.file("a"), m.file("b"))) }
        #expect(throws: Errno.notPermitted) { try Sys.checked(rmdir(m.file(".guest"))) }
        #expect(throws: Errno.notPermitted) { try Sys.checked(unlink(m.guest("a"))) }
        // The tools fail too.
        #expect(!(try run(["touch", m.file("t")]).succeeded))
        #expect(!(try sh("echo x > \(m.file("t"))").succeeded))
        #expect(try run(["mv", m.file("a"), m.file("b")]).stderr.contains("Operation not permitted"))
        #expect(names(m) == before)
        // Opening an existing file with O_CREAT (no O_EXCL) is an ordinary open.
        let fd = try Sys.open(m.file("a"), O_CREAT | O_RDWR)
        try? fd.close()
        #expect((try? Sys.stat(m.file("a")))?.st_size == 65536)
    }

    @Test func truncateAndOTruncAreEINVAL() throws {
        let m = try GmemMount(["--file", "a:64K:init-shared,mmap", "--file", "d:64K:init-shared"])
        defer { m.unmount() }
        for name in ["a", "d"] {
            let f = m.file(name)
            #expect((try? write(f, [1, 2, 3], at: 0)) == 3)
            #expect(throws: Errno.invalidArgument) { try Sys.checked(truncate(f, 4096)) }
            #expect(throws: Errno.invalidArgument) { try Sys.checked(truncate(f, 0)) }
            #expect(throws: Errno.invalidArgument) { try Sys.checked(truncate(f, 1 << 20)) }
            let fd = try Sys.open(f, O_RDWR)
            #expect(throws: Errno.invalidArgument) { try Sys.checked(ftruncate(fd.rawValue, 0)) }
            try? fd.close()
            #expect(throws: Errno.invalidArgument) { try Sys.open(f, O_RDWR | O_TRUNC) }
            #expect(throws: Errno.invalidArgument) { try Sys.open(f, O_WRONLY | O_TRUNC) }
            #expect(!(try run(["truncate", "-s", "0", f]).succeeded))
            #expect(try sh("echo x > \(f)").stderr.contains("Invalid argument"))
            #expect((try? Sys.stat(f))?.st_size == 65536)
            #expect((try? contents(f, count: 3)) == [1, 2, 3])
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
        #expect((try? write(f, Array("still here".utf8), at: 100)) == 10)
        #expect(stats(m.path)[.allocatedBytes] == "16384")
        let fd = try Sys.open(f, O_RDWR)
        #expect(try run(["rm", f]).succeeded)
        #expect(throws: Errno.noSuchFileOrDirectory) { try Sys.stat(f) }
        #expect(throws: Errno.noSuchFileOrDirectory) { try Sys.stat(m.guest("a")) }
        #expect(FileManager.default.fileExists(atPath: m.file("b")))
        #expect(stats(m.path)[.files] == "1")
        // The open fd still reads and writes the memory.
        #expect((try? Sys.pread(fd, count: 10, offset: 100)).map { String(decoding: $0, as: UTF8.self) } == "still here")
        #expect((try? Sys.pwrite(fd, [9], offset: 0)) == 1)
        #expect((try? Sys.pread(fd, count: 1, offset: 0)) == [9])
        var st = Glibc.stat()
        #expect(fstat(fd.rawValue, &st) == 0)
        #expect(st.st_nlink == 0)
        // The name is free again.
        #expect(throws: Never.self) { try Sys.setxattr(m.path, GmemXattr.create, "a 4096") }
        #expect((try? Sys.stat(f))?.st_size == 4096)
        #expect(try run(["rm", f]).succeeded)
        #expect(throws: Errno.noSuchFileOrDirectory) { try Sys.checked(unlink(f)) }
        #expect(stats(m.path)[.allocatedBytes] == "16384")   // still open
        try? fd.close()
        // Release is asynchronous to close(2) in FUSE; poll briefly.
        var freed = false
        for _ in 0..<200 where !freed {
            freed = stats(m.path)[.allocatedBytes] == "0"
            if !freed { usleep(10_000) }
        }
        #expect(freed)
    }

    /// Removing names already listed while a listing continues (`find -delete`) must not make the
    /// listing skip names nobody touched. Offsets used to be indices into the current list.
    @Test func removingListedNamesDoesNotSkipOthers() throws {
        let m = try GmemMount(["--guest-view", "--file", "a:4K"])
        defer { m.unmount() }
        for i in 0..<220 { #expect(throws: Never.self) { try Sys.setxattr(m.path, GmemXattr.create, "n\(i) 4096") } }
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
        #expect(throws: Never.self) { try Sys.setxattr(m.path, GmemXattr.create, "\(composed) 4096") }
        #expect(throws: Never.self) { try Sys.setxattr(m.path, GmemXattr.create, "\(decomposed) 8192") }
        #expect((try? Sys.stat(m.file(composed)))?.st_size == 4096)
        #expect((try? Sys.stat(m.file(decomposed)))?.st_size == 8192)
        #expect(Array(names(m).map { Array($0.utf8) }).contains(Array(decomposed.utf8)))
        #expect(throws: Never.self) { try Sys.setxattr(m.path, GmemXattr.create, "\u{FFFD} 4096") }
        var st = Glibc.stat()
        let invalid: [CChar] = Array(m.path.utf8CString.dropLast()) + [0x2F, CChar(bitPattern: 0xFF), 0]
        #expect(failure { try Sys.checked(invalid.withUnsafeBufferPointer { lstat($0.baseAddress!, &st) }) } == .noSuchFileOrDirectory)
        #expect(failure { try Sys.checked(invalid.withUnsafeBufferPointer { Glibc.unlink($0.baseAddress!) }) } == .noSuchFileOrDirectory)
        #expect((try? Sys.stat(m.file("\u{FFFD}")))?.st_size == 4096)
        #expect(throws: Never.self) { try Sys.checked(unlink(m.file(decomposed))) }
        #expect((try? Sys.stat(m.file(composed)))?.st_size == 4096)
    }
}
