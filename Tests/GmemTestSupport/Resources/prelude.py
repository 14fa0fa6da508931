# The prelude every Python test script starts with (GmemTestSupport's Python.run puts it in
# front of the script). Scripts do what must fault on a mapping (SIGBUS would kill the Swift
# test process itself).
#
# Helpers:
# - touch(m, off, write=None): forks a child that reads (or writes) byte `off` of mapping `m`
#   and returns the byte read (0 after a write), 'SIGBUS', or 'SIG<n>'. The child inherits the
#   MAP_SHARED mapping, so its writes are the parent's writes.
# - hmap(path, npages): a MAP_SHARED read/write mapping of `path`.
# - rawmap(path, length, flags=MAP_SHARED): mmap(2) via ctypes (past EOF, MAP_PRIVATE).
# - punch(fd, off, length): fallocate PUNCH_HOLE|KEEP_SIZE, 0 or the errno.
# - gopen(path): an O_RDWR|O_DIRECT fd for the guest view: reads and writes reach the store itself,
#   as the guest's stage-2 access does, not the guest view's page cache (docs/semantics.md).
# - grmw(fd, pg, expect, write): the kernel selftests' guest_do_rmw through the guest view.
# - hrmw(m, pg, expect, write): the selftests' host_do_rmw through a mapping, in-process.
# - test_private/test_shared/to_private/to_shared: the selftest primitives
#   (guest_memfd_conversions_test.c), with a context T(host, guest, npages).
# - setattr(path, off, size, attr): sets XATTR_SET_ATTRIBUTES.
#
# The interface constants come from the Python package of the repository (one copy for the
# tests and for users); the loader checks each of its `NAME = value` lines against the Swift
# constant before any script runs, so a renamed xattr fails every Python test at once.
import mmap, os, sys, signal, subprocess, errno

# ---- interface constants: the installable package's (python/gmemfs_testing/abi.py, on the
# PYTHONPATH Python.run sets), which the loader checks against GmemABI ----
from gmemfs_testing.abi import (P, XATTR_CREATE, XATTR_SET_ATTRIBUTES, XATTR_ATTRIBUTES, XATTR_FLAGS,
                                XATTR_STATS, XATTR_INJECT, KVM_SET_MEMORY_ATTRIBUTES2, GMEM_PIN_PAGES,
                                GMEM_UNPIN_PAGES, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE)

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
    return 0 if libc.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, length) == 0 else ctypes.get_errno()
def gopen(path):
    return os.open(path, os.O_RDWR | os.O_DIRECT)
def setattr(path, off, size, attr):
    os.setxattr(path, XATTR_SET_ATTRIBUTES, ('%d %d %s' % (off, size, attr)).encode())
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
