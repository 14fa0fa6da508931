"""Operations on gmem files: conversions, the map, page references, fault injection, stats."""
import contextlib
import errno
import fcntl
import os
import struct

from . import abi


class ConversionError(OSError):
    """A refused KVM_SET_MEMORY_ATTRIBUTES2: ``errno`` and the kernel's ``error_offset``
    (set for EAGAIN, ENOMEM and EINTR; None otherwise)."""

    def __init__(self, code, error_offset=None):
        super().__init__(code, os.strerror(code))
        self.error_offset = error_offset


def _check_to(to):
    if to not in ('private', 'shared'):
        raise ValueError(f"to must be 'private' or 'shared', not {to!r}")


def convert(path, offset, size, to, via='xattr'):
    """Converts ``[offset, offset + size)`` of the gmem file ``path`` to ``to`` ('private' or
    'shared').

    ``via='xattr'`` sets ``user.gmem.set_attributes`` (a refusal raises OSError; EAGAIN arrives
    as EBUSY through setxattr). ``via='ioctl'`` sends KVM_SET_MEMORY_ATTRIBUTES2 on an O_RDWR
    descriptor (``path`` may be an open fd) and raises ConversionError with ``error_offset``.
    """
    _check_to(to)
    if via == 'xattr':
        os.setxattr(path, abi.XATTR_SET_ATTRIBUTES, f'{offset} {size} {to}'.encode())
        return
    if via != 'ioctl':
        raise ValueError(f"via must be 'xattr' or 'ioctl', not {via!r}")
    attributes = abi.KVM_MEMORY_ATTRIBUTE_PRIVATE if to == 'private' else 0
    buf = bytearray(struct.pack(abi.MEMORY_ATTRIBUTES2_FORMAT, offset, size, attributes, 0, 0, *([0] * 11)))
    fd = path if isinstance(path, int) else os.open(path, os.O_RDWR)
    try:
        fcntl.ioctl(fd, abi.KVM_SET_MEMORY_ATTRIBUTES2, buf, True)
    except OSError as e:
        # The struct is copied back (with error_offset) for EAGAIN, ENOMEM and EINTR.
        copied = e.errno in (errno.EAGAIN, errno.ENOMEM, errno.EINTR)
        raise ConversionError(e.errno, struct.unpack_from('<Q', buf, 32)[0] if copied else None) from None
    finally:
        if not isinstance(path, int):
            os.close(fd)


def attributes(path, start=None, end=None):
    """The map of ``path`` as ``[(start, end, 'private'|'shared'), ...]`` (byte offsets, end
    exclusive). With ``start``/``end`` only that window (``user.gmem.attributes:START-END``),
    for maps too large for one xattr value."""
    name = abi.XATTR_ATTRIBUTES
    if start is not None or end is not None:
        if start is None or end is None:
            raise ValueError('give both start and end, or neither')
        name += f':{start:x}-{end:x}'
    ranges = []
    for line in os.getxattr(path, name).decode().splitlines():
        span, attr = line.split()
        s, e = span.split('-')
        ranges.append((int(s, 16), int(e, 16), attr))
    return ranges


def attribute_at(path, offset):
    """'private' or 'shared': the attribute of the page holding ``offset``."""
    page = offset - offset % abi.P
    return attributes(path, page, page + abi.P)[0][2]


def _reference(fd, number, offset, size):
    fcntl.ioctl(fd, number, struct.pack(abi.PAGE_REFERENCE_FORMAT, offset, size, 0, *([0] * 5)))


@contextlib.contextmanager
def pin(path, offset, size):
    """Holds a page reference (GMEM_PIN_PAGES) on ``[offset, offset + size)`` for the ``with``
    block: a conversion to private of a pinned page is refused with EAGAIN (EBUSY by xattr).
    Yields the descriptor holding the reference; the reference goes when the block ends."""
    fd = os.open(path, os.O_RDONLY)
    try:
        _reference(fd, abi.GMEM_PIN_PAGES, offset, size)
        try:
            yield fd
        finally:
            _reference(fd, abi.GMEM_UNPIN_PAGES, offset, size)
    finally:
        os.close(fd)


def inject(path, spec):
    """Arms a fault on ``path`` (``user.gmem.inject``): ``'enomem [count N] [range OFF SIZE]'``,
    ``'eintr ...'``, ``'eagain OFFSET [count N]'``, or ``'clear'``."""
    os.setxattr(path, abi.XATTR_INJECT, spec.encode())


def injected(path):
    """The armed faults of ``path``, one string per fault."""
    return os.getxattr(path, abi.XATTR_INJECT).decode().splitlines()


def stats(path):
    """``user.gmem.stats`` as a dict (numbers as int, ``flags`` as a string)."""
    result = {}
    for line in os.getxattr(path, abi.XATTR_STATS).decode().splitlines():
        key, _, value = line.partition('=')
        result[key] = int(value) if value.isdigit() else value
    return result


def create(mountpoint, name, size, flags=()):
    """Creates the gmem file ``name`` of ``size`` bytes (``user.gmem.create`` on the mount
    root); ``flags`` among 'mmap', 'init-shared'. Returns its path."""
    value = f'{name} {size}' + (' ' + ','.join(flags) if flags else '')
    os.setxattr(mountpoint, abi.XATTR_CREATE, value.encode())
    return os.path.join(mountpoint, name)
