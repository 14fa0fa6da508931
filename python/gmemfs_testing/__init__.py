"""Helpers for tests that use gmemfs: standard library only (pytest only for the plugin).

- ``abi``: the interface constants (xattr names, ioctl numbers, struct layouts);
- ``convert()``, ``attributes()``, ``pin()``, ``inject()``, ``stats()``, ``create()``;
- ``TraceReader``: reads ``MOUNTPOINT/.trace`` and waits for an event;
- the pytest plugin (``gmemfs_testing.pytest_plugin``, registered as a ``pytest11`` entry
  point): the ``gmemfs`` mount fixture.

See docs/integration-testing.md in the gmemfs repository.
"""
from . import abi
from .abi import P, PAGE_SIZE
from .ops import ConversionError, attribute_at, attributes, convert, create, inject, injected, pin, stats
from .trace import TraceEvent, TraceReader

__all__ = ['abi', 'P', 'PAGE_SIZE', 'ConversionError', 'attribute_at', 'attributes', 'convert', 'create',
           'inject', 'injected', 'pin', 'stats', 'TraceEvent', 'TraceReader']
