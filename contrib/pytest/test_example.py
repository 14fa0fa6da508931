"""Integration tests using the gmemfs fixture and helpers (python/gmemfs_testing); CI runs them."""
import errno
import os

import pytest

from gmemfs_testing import ConversionError, P, TraceReader, attributes, convert, pin


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


def test_a_pinned_page_cannot_go_private(gmemfs):
    m = gmemfs("--file", "vm:64K:init-shared")
    vm = m.file("vm")
    with TraceReader(m.path) as trace:
        with pin(vm, P, P):
            with pytest.raises(ConversionError) as e:
                convert(vm, 0, 4 * P, "private", via="ioctl")
            assert e.value.errno == errno.EAGAIN and e.value.error_offset == P
            refused = trace.wait_for("convert", file="vm", outcome="EAGAIN")
            assert refused.detail["cause"] == "references"
        convert(vm, 0, 4 * P, "private")
        assert trace.wait_for("convert", file="vm").outcome == "became-private"
    assert attributes(vm) == [(0, 4 * P, "private"), (4 * P, 16 * P, "shared")]


def test_an_injected_fault_refuses_one_conversion(gmemfs):
    m = gmemfs("--file", "vm:64K")
    m.inject("vm", "enomem count 1")
    with pytest.raises(OSError) as e:
        m.convert("vm", 0, P, "shared")
    assert e.value.errno == errno.ENOMEM
    m.convert("vm", 0, P, "shared")
    assert m.attributes("vm")[0] == (0, P, "shared")
    assert m.stats("vm")["injected_failures"] == 1
