"""gmemfs's interface constants (docs/xattr-interface.md).

Each ``NAME = value`` line is checked against the Swift constants of GmemABI by the repository's
tests, so a changed name or number cannot go unnoticed here.
"""

# ---- interface constants (checked against GmemABI) ----
P = 4096
XATTR_CREATE = 'user.gmem.create'
XATTR_SET_ATTRIBUTES = 'user.gmem.set_attributes'
XATTR_ATTRIBUTES = 'user.gmem.attributes'
XATTR_FLAGS = 'user.gmem.flags'
XATTR_STATS = 'user.gmem.stats'
XATTR_INJECT = 'user.gmem.inject'
KVM_SET_MEMORY_ATTRIBUTES2 = 0xC080AED2
GMEM_PIN_PAGES = 0x40404701
GMEM_UNPIN_PAGES = 0x40404702
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
# ---- end of interface constants ----

PAGE_SIZE = P
KVM_MEMORY_ATTRIBUTE_PRIVATE = 1 << 3
# struct kvm_memory_attributes2: 16 little-endian u64 (offset, size, attributes, flags,
# error_offset, reserved[11]); struct gmem_page_reference: 8 (offset, size, flags, reserved[5]).
MEMORY_ATTRIBUTES2_FORMAT = '<16Q'
PAGE_REFERENCE_FORMAT = '<8Q'
