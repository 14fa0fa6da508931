import Foundation
import GmemTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Populating and locking private pages (docs/semantics.md): the kernel's populate loop would
/// retry a refused READ forever; gmemfs answers that loop's READ with zeros, the call returns
/// and the task lives, and the zero page is dropped once the task has left the syscall, so the
/// private page faults with SIGBUS again and its contents never leave. Every other access path
/// fails on its own and is never answered or signalled. Each case runs in a child with a
/// deadline, so a hang fails the test instead of sticking.
@Suite(.serialized, .enabled(if: FUSE.available && getuid() == 0))
struct PopulateTests {
    /// Maps (or locks) `sys.argv[1]` whole with `sys.argv[2]`, then prints the first bytes.
    static let populate = """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
        libc.syscall.restype = ctypes.c_long
        path, how, length = sys.argv[1], sys.argv[2], int(sys.argv[3])
        fd = os.open(path, os.O_RDWR)
        flags = {'MAP_POPULATE': 0x8001, 'MAP_LOCKED': 0x2001}.get(how, 0x01)
        p = libc.mmap(None, length, 3, flags, fd, 0)
        check(p not in (None, ctypes.c_void_p(-1).value), 'mmap: errno %d' % ctypes.get_errno())
        if how == 'mlock':
            check(libc.mlock(ctypes.c_void_p(p), ctypes.c_size_t(length)) == 0, 'mlock: errno %d' % ctypes.get_errno())
        elif how == 'mlock2':
            check(libc.syscall(325, ctypes.c_void_p(p), ctypes.c_size_t(length), 0) == 0, 'mlock2')
        elif how == 'mlockall':
            check(libc.mlockall(1) == 0, 'mlockall')
        print(ctypes.string_at(p, 6).decode(), flush=True)
        """

    static let calls = ["MAP_POPULATE", "MAP_LOCKED", "mlock", "mlock2", "mlockall"]

    /// Daemon CPU time (utime + stime) in clock ticks.
    static func cpuTicks(_ pid: pid_t) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // Fields after the command: state is the 1st, utime the 12th, stime the 13th.
        return (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
    }

    /// The daemon is idle again (no READ storm going on) and still answers.
    static func expectIdleAndServing(_ m: GmemMount, _ f: String, sourceLocation: SourceLocation = #_sourceLocation) {
        usleep(100_000)
        let before = cpuTicks(m.pid)
        usleep(500_000)
        // A storm keeps a daemon thread busy (≥ 50 ticks in 0.5 s); idle is a few ticks at most.
        #expect(cpuTicks(m.pid) - before < 20, "daemon still busy", sourceLocation: sourceLocation)
        #expect(m.isAlive && stats(f)[.size] != nil, sourceLocation: sourceLocation)
    }

    /// Calls `sys.argv[2]` over `sys.argv[1]` (64 KiB), prints what it returned, waits until the
    /// daemon has dropped its zero pages (`populate_pending=0` on the mount `sys.argv[3]`), then
    /// touches page 8 from a child and prints how that ended. Touched right after the call, page
    /// 8 may still read as zeros, never as its contents.
    static let populateAndTouch = """
        import ctypes, time
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
        libc.syscall.restype = ctypes.c_long
        path, how, root = sys.argv[1], sys.argv[2], sys.argv[3]
        fd = os.open(path, os.O_RDWR)
        flags = {'MAP_POPULATE': 0x8001, 'MAP_LOCKED': 0x2001}.get(how, 0x01)
        p = libc.mmap(None, 65536, 3, flags, fd, 0)
        check(p not in (None, ctypes.c_void_p(-1).value), 'mmap: errno %d' % ctypes.get_errno())
        r = 0
        if how == 'mlock':
            r = libc.mlock(ctypes.c_void_p(p), ctypes.c_size_t(65536))
        elif how == 'mlock2':
            r = libc.syscall(325, ctypes.c_void_p(p), ctypes.c_size_t(65536), 0)
        elif how == 'mlockall':
            r = libc.mlockall(1)
        print(how, 'returned', r, flush=True)
        def touch_page8():
            pid = os.fork()
            if pid == 0:
                os._exit(0 if ctypes.string_at(p + 8 * P, 6) == bytes(6) else 3)
            _, status = os.waitpid(pid, 0)
            return signal.Signals(os.WTERMSIG(status)).name if os.WIFSIGNALED(status) else ('zeros' if os.WEXITSTATUS(status) == 0 else 'CONTENTS')
        # Right away, the zero page may still be cached: zeros or SIGBUS, never the contents.
        check(touch_page8() in ('zeros', 'SIGBUS'), 'the private page leaked')
        while 'populate_pending=0\\n' not in os.getxattr(root, XATTR_STATS).decode():
            time.sleep(0.01)
        print('page 8:', touch_page8(), flush=True)
        """

    /// Every populating call over private pages returns and the task lives (`mlock` included,
    /// where the kernel says ENOMEM: see docs/semantics.md); afterwards the private page faults
    /// with SIGBUS again, `read` refuses it, and its contents ("secret", written by the guest)
    /// never reached the host. No task is killed; the daemon is idle.
    @Test(arguments: calls)
    func populatingPrivatePagesReturnsAndTheTaskLives(call: String) throws {
        // Wholly private, and shared with one private page in the middle.
        let m = try GmemMount(["--file", "p:64K:mmap", "--file", "s:64K:mmap,init-shared", "--guest-view"])
        defer { m.unmount() }
        #expect(throws: Never.self) { try convert(m.file("s"), "32K 4K private") }
        for name in ["p", "s"] {
            #expect(try run(["dd", "of=\(m.guest(name))", "bs=1", "seek=32768", "conv=notrunc", "status=none"], input: Data("secret".utf8)).succeeded)
        }
        var answers = 0
        for name in ["p", "s"] {
            let r = try Python.run(Self.populateAndTouch, [m.file(name), call, m.path], timeout: 30)
            #expect(r.succeeded && r.output == "\(call) returned 0\npage 8: SIGBUS\n", "\(call) on \(name): \(r) \(r.output)")
            let st = stats(m.path)
            #expect(st[.populateKills] == "0" && st[.populatePending] == "0")
            let now = Int(st[.populateZeroAnswers] ?? "") ?? 0
            #expect(now > answers, "\(call) on \(name): no page was answered with zeros")
            answers = now
            Self.expectIdleAndServing(m, m.file(name))
        }
        #expect(m.log.contains("answering with zeros") && !m.log.contains("SIGKILL"))
        // Never a private byte: the page is still refused, the shared ones still readable, and
        // the guest's bytes are intact.
        #expect(throws: Errno.permissionDenied) { try contents(m.file("s"), count: 4096, offset: 32768) }
        #expect((try? contents(m.file("s"), count: 4096, offset: 0)) == [UInt8](repeating: 0, count: 4096))
        #expect((try? contents(m.guest("s"), count: 6, offset: 32768)) == Array("secret".utf8))
        #expect((try? contents(m.guest("p"), count: 6, offset: 32768)) == Array("secret".utf8))
    }

    /// The last resort stays for what zeros cannot answer: a populate loop over a page past the
    /// memory cap is ended with SIGKILL (a zero page there could take stores no memory backs).
    @Test func populatingPastTheMemoryCapEndsTheTask() throws {
        let m = try GmemMount(["--file", "f:64K:mmap,init-shared", "--max-memory", "16K"])
        defer { m.unmount() }
        let r = try Python.run(Self.populate, [m.file("f"), "MAP_POPULATE", "65536"], timeout: 10)
        #expect(r.signal == SIGKILL, "\(r)")
        #expect(stats(m.path)[.populateKills] == "1")
        #expect(m.log.contains("retrying a page past the memory cap"))
        Self.expectIdleAndServing(m, m.file("f"))
    }

    @Test(arguments: calls.filter { $0 != "mlockall" })
    func populatingSharedPagesWorksAndKeepsData(call: String) throws {
        let m = try GmemMount(["--file", "s:64K:mmap,init-shared"])
        defer { m.unmount() }
        let f = m.file("s")
        #expect(try Sys.withFD(f, O_RDWR) { try Sys.pwrite($0, Array("shared".utf8), offset: 0) } == 6)
        // Page 8 private: readahead around the first 8 pages is refused, the pages themselves are not.
        #expect(throws: Never.self) { try convert(f, "32K 4K private") }
        for length in ["32768", "4096"] {
            let r = try Python.run(Self.populate, [f, call, length], timeout: 10)
            #expect(r.succeeded && r.output == "shared\n", "\(call) \(length): \(r)")
        }
        #expect(throws: Never.self) { try convert(f, "32K 4K shared") }
        let whole = try Python.run(Self.populate, [f, call, "65536"], timeout: 10)
        #expect(whole.succeeded && whole.output == "shared\n", "\(call): \(whole)")
        #expect(stats(m.path)[.populateKills] == "0")
    }

    @Test func preadLoopOnAPrivatePageRunsToCompletion() throws {
        let m = try GmemMount(["--file", "p:64K:mmap"])
        defer { m.unmount() }
        let r = try Python.run("""
            fd = os.open(sys.argv[1], os.O_RDONLY)
            denied = 0
            for i in range(20000):
                try:
                    os.pread(fd, 4096, 0)
                except PermissionError:
                    denied += 1
            print(denied)
            """, [m.file("p")], timeout: 120)
        #expect(r.succeeded && r.output == "20000\n", "\(r)")
        #expect(stats(m.path)[.populateKills] == "0")
    }

    /// The other paths into a mapping of a private page retry once with the lock held and fail.
    @Test func otherPinningPathsFailWithoutSignals() throws {
        let m = try GmemMount(["--file", "p:64K:mmap", "--file", "d:64K:init-shared"])
        defer { m.unmount() }
        let r = try Python.run("""
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            class iovec(ctypes.Structure):
                _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]
            a = rawmap(sys.argv[1], P)
            addr = ctypes.addressof(a)
            buf = ctypes.create_string_buffer(P)
            def err(r):
                return 'ok' if r >= 0 else errno.errorcode[ctypes.get_errno()]
            out = []
            for advice in (22, 23):   # MADV_POPULATE_READ, MADV_POPULATE_WRITE
                out.append(err(libc.madvise(ctypes.c_void_p(addr), ctypes.c_size_t(P), advice)))
            local, remote = iovec(ctypes.addressof(buf), P), iovec(addr, P)
            out.append(err(libc.process_vm_readv(os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)))
            out.append(err(libc.process_vm_writev(os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)))
            mem = os.open('/proc/self/mem', os.O_RDONLY)
            try:
                os.pread(mem, P, addr); out.append('ok')
            except OSError as e:
                out.append(errno.errorcode[e.errno])
            # A direct-I/O file: its READ reply is copied straight into the (private) mapping.
            d = os.open(sys.argv[2], os.O_RDONLY)
            try:
                os.readv(d, [memoryview(a).cast('B')]); out.append('ok')
            except OSError as e:
                out.append(errno.errorcode[e.errno])
            rfd, wfd = os.pipe()
            out.append(err(libc.vmsplice(wfd, ctypes.byref(remote), 1, 0)))
            print(' '.join(out))
            """, [m.file("p"), m.file("d")], timeout: 10)
        #expect(r.succeeded && r.output == "EFAULT EFAULT EFAULT EFAULT EIO EFAULT EFAULT\n", "\(r) \(r.output)")
        #expect(stats(m.path)[.populateKills] == "0")
        Self.expectIdleAndServing(m, m.file("p"))
    }
}
