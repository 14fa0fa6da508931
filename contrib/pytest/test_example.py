"""An integration test using the gmemfs fixture of conftest.py; CI runs it."""
import errno
import mmap
import os

import pytest


def test_shared_memory_reads_back(gmemfs):
    m = gmemfs("--file", "vm:1M:mmap,init-shared")
    with open(m.file("vm"), "r+b") as f:
        f.write(b"hello")
        f.flush()
        f.seek(0)
        assert f.read(5) == b"hello"
    assert os.path.ismount(m.path) and m.pid > 0


def test_private_memory_is_out_of_reach(gmemfs):
    m = gmemfs("--file", "vm:64K:mmap,init-shared")
    os.setxattr(m.file("vm"), "user.gmem.set_attributes", b"0 4096 private")
    fd = os.open(m.file("vm"), os.O_RDONLY)
    try:
        with pytest.raises(OSError) as e:
            os.pread(fd, 1, 0)
        assert e.value.errno == errno.EACCES
        assert os.pread(fd, 1, 4096) == b"\0"
    finally:
        os.close(fd)
    assert os.getxattr(m.file("vm"), "user.gmem.attributes") == b"0-1000 private\n1000-10000 shared\n"


def test_two_mounts_are_independent(gmemfs):
    a = gmemfs("--file", "f:8K:init-shared")
    b = gmemfs("--file", "f:8K")
    with open(a.file("f"), "r+b") as f:
        f.write(b"a")
    with pytest.raises(PermissionError):
        open(b.file("f"), "rb").read(1)
