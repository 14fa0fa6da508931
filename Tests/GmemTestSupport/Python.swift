import CLinuxSys
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs Python scripts for the parts of a test that must fault on a mapping (SIGBUS would kill
/// the test process itself). Every script gets ``Python/prelude`` first.
public enum Python {
    /// Helpers available to every script.
    ///
    /// - `touch(m, off, write=None)`: forks a child that reads (or writes) byte `off` of mapping
    ///   `m` and returns the byte read (0 after a write), `'SIGBUS'`, or `'SIG<n>'`. The child
    ///   inherits the MAP_SHARED mapping, so its writes are the parent's writes.
    /// - `hmap(path, npages)`: a MAP_SHARED read/write mapping of `path`.
    /// - `rawmap(path, length, flags=MAP_SHARED)`: mmap(2) via ctypes (past EOF, MAP_PRIVATE).
    /// - `punch(fd, off, length)`: fallocate PUNCH_HOLE|KEEP_SIZE, 0 or the errno.
    /// - `gopen(path)`: an O_RDWR fd (for the guest view).
    /// - `grmw(fd, pg, expect, write)`: the selftests' guest_do_rmw through the guest view.
    /// - `hrmw(m, pg, expect, write)`: the selftests' host_do_rmw through a mapping, in-process.
    /// - `test_private`/`test_shared`/`to_private`/`to_shared`: the selftest primitives
    ///   (guest_memfd_conversions_test.c), with a context `T(host, guest, m)`.
    /// - `setattr(path, off, size, attr)`: `user.gmem.set_attributes`.
    public static let prelude = #"""
        import mmap, os, sys, signal, subprocess, errno
        P = 4096
        def touch(m, off, write=None):
            pid = os.fork()
            if pid == 0:
                try:
                    if write is None:
                        v = m[off]
                    else:
                        m[off] = write
                        v = 0
                    os._exit(v)
                except BaseException:
                    os._exit(250)
            _, st = os.waitpid(pid, 0)
            if os.WIFSIGNALED(st):
                return 'SIGBUS' if os.WTERMSIG(st) == signal.SIGBUS else 'SIG%d' % os.WTERMSIG(st)
            return os.WEXITSTATUS(st)
        def hmap(path, npages):
            fd = os.open(path, os.O_RDWR)
            m = mmap.mmap(fd, npages * P, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            os.close(fd)
            return m
        def rawmap(path, length, flags=0x01):
            # mmap(2) through ctypes: Python's mmap refuses lengths past EOF and MAP_PRIVATE
            # checks. Returns an indexable byte array, or raises OSError with the errno.
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            libc.mmap.restype = ctypes.c_void_p
            libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
            fd = os.open(path, os.O_RDWR)
            addr = libc.mmap(None, length, 3, flags, fd, 0)
            e = ctypes.get_errno()
            os.close(fd)
            if addr is None or addr == ctypes.c_void_p(-1).value:
                raise OSError(e, os.strerror(e))
            return (ctypes.c_ubyte * length).from_address(addr)
        def punch(fd, off, length):
            # fallocate(PUNCH_HOLE|KEEP_SIZE): 0 or the errno.
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
            return 0 if libc.fallocate(fd, 3, off, length) == 0 else ctypes.get_errno()
        def gopen(path):
            return os.open(path, os.O_RDWR)
        def setattr(path, off, size, attr):
            os.setxattr(path, 'user.gmem.set_attributes', ('%d %d %s' % (off, size, attr)).encode())
        def check(cond, msg):
            if not cond:
                print('FAIL: ' + msg, file=sys.stderr)
                sys.exit(1)
        def hrmw(m, pg, expect, write):
            # In this process, like the kernel's host_do_rmw (a wrong SIGBUS kills the script).
            v = m[pg * P]
            check(v == expect, 'host read page %d: expected %r, got %r' % (pg, expect, v))
            m[pg * P] = write
        def grmw(fd, pg, expect, write):
            v = os.pread(fd, 1, pg * P)[0]
            check(v == expect, 'guest read page %d: expected %r, got %r' % (pg, expect, v))
            check(os.pwrite(fd, bytes([write]), pg * P) == 1, 'guest write page %d' % pg)
        class T:
            def __init__(self, host, guest, npages):
                self.host, self.guest, self.n = host, guest, npages
                self.m = hmap(host, npages)
                self.g = gopen(guest)
        def test_private(t, pg, start, w):
            r = touch(t.m, pg * P, w)
            check(r == 'SIGBUS', 'host write of private page %d: expected SIGBUS, got %r' % (pg, r))
            grmw(t.g, pg, start, w)
            r = touch(t.m, pg * P)
            check(r == 'SIGBUS', 'host read of private page %d: expected SIGBUS, got %r' % (pg, r))
        def test_shared(t, pg, start, hw, w):
            hrmw(t.m, pg, start, hw)
            grmw(t.g, pg, hw, w)
            v = t.m[pg * P]
            check(v == w, 'host read of shared page %d after guest write: expected %r, got %r' % (pg, w, v))
        def to_private(t, pg, start, w):
            setattr(t.host, pg * P, P, 'private')
            test_private(t, pg, start, w)
        def to_shared(t, pg, start, hw, w):
            setattr(t.host, pg * P, P, 'shared')
            test_shared(t, pg, start, hw, w)

        """#

    /// Runs `prelude + script` with `python3`, passing `arguments` as `sys.argv[1...]`.
    @discardableResult
    public static func run(_ script: String, _ arguments: [String] = [], timeout: TimeInterval = 60) throws -> CommandResult {
        var template = Array("/tmp/gmemfs-py.XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { throw HarnessError("mkstemp failed") }
        close(fd)
        let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        defer { unlink(path) }
        try (prelude + script).write(toFile: path, atomically: false, encoding: .utf8)
        return try GmemTestSupport.run(["python3", path] + arguments, timeout: timeout)
    }
}

extension Sys {
    /// 0 when `result` is not negative, else errno (read right after the call).
    public static func errnoOf<T: BinaryInteger>(_ result: T) -> Int32 { result < 0 ? errno : 0 }

    /// open: the fd or the errno.
    public static func openFD(_ path: String, _ flags: Int32, mode: mode_t = 0o644) -> Result<Int32, Errno> {
        let fd = Glibc.open(path, flags, mode)
        return fd < 0 ? .failure(Errno(errno)) : .success(fd)
    }

    /// lseek: the offset or the errno.
    public static func seek(_ fd: Int32, _ offset: Int, _ whence: Int32) -> Result<Int, Errno> {
        let r = Glibc.lseek(fd, off_t(offset), whence)
        return r < 0 ? .failure(Errno(errno)) : .success(Int(r))
    }

    /// stat: the struct or the errno.
    public static func stat(_ path: String) -> Result<Glibc.stat, Errno> {
        var st = Glibc.stat()
        let r = cStat(path, &st)
        return r < 0 ? .failure(Errno(errno)) : .success(st)
    }

    /// listxattr: the names or the errno.
    public static func listxattr(_ path: String) -> Result<[String], Errno> {
        var buf = [CChar](repeating: 0, count: 65536)
        let n = CLinuxSys.listxattr(path, &buf, buf.count)
        guard n >= 0 else { return .failure(Errno(errno)) }
        return .success(buf[..<n].split(separator: 0).map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) })
    }

    /// The errno of a getxattr, or 0.
    public static func getxattrErrno(_ path: String, _ name: String) -> Int32 {
        if case .failure(let e) = getxattr(path, name) { return e.code }
        return 0
    }

    /// ioctl KVM_SET_MEMORY_ATTRIBUTES2 with the 16 words of `struct kvm_memory_attributes2`;
    /// 0 or the errno, and the words as the kernel left them.
    public static func setMemoryAttributes2(_ fd: Int32, offset: UInt64, size: UInt64, attributes: UInt64,
                                            flags: UInt64 = 0, reserved: [UInt64] = Array(repeating: 0, count: 11),
                                            command: UInt = 0xC080_AED2) -> Int32 {
        var words: [UInt64] = [offset, size, attributes, flags, 0] + reserved
        return words.withUnsafeMutableBytes { clinux_ioctl_ptr(fd, command, $0.baseAddress) } < 0 ? errno : 0
    }
}

private func cStat(_ path: String, _ st: inout stat) -> Int32 { stat(path, &st) }
