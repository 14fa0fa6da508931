/*
 * gmem_abi.h: the literal values of gmemfs's public interface, shared by the Swift target
 * GmemABI (which imports this header) and the C test programs (compiled with -I pointing
 * here). Change a value here and both sides change; docs/xattr-interface.md describes them.
 *
 * Only #defines and structs: no functions, no includes beyond <stdint.h>/<stddef.h>.
 */
#ifndef GMEM_ABI_H
#define GMEM_ABI_H

#include <stddef.h>
#include <stdint.h>

/* ---- pages ---- */
#define GMEM_PAGE_SIZE 4096ULL
#define GMEM_PAGE_SHIFT 12ULL

/* ---- extended attributes (docs/xattr-interface.md) ---- */
#define GMEM_XATTR_PREFIX "user.gmem."
#define GMEM_XATTR_CREATE "user.gmem.create"                 /* set on the root: NAME SIZE [FLAGS] */
#define GMEM_XATTR_SET_ATTRIBUTES "user.gmem.set_attributes" /* set on a file: OFFSET SIZE ATTR */
#define GMEM_XATTR_ATTRIBUTES "user.gmem.attributes"         /* get: START-END ATTR lines */
#define GMEM_XATTR_FLAGS "user.gmem.flags"                   /* get: space-separated flag names */
#define GMEM_XATTR_STATS "user.gmem.stats"                   /* get: key=value lines */
#define GMEM_XATTR_INJECT "user.gmem.inject"                 /* set on a file: a fault or "clear"; get: armed faults */
/* The largest value the VFS passes through getxattr/setxattr (the kernel's XATTR_SIZE_MAX). */
#define GMEM_XATTR_SIZE_MAX 65536

/* ---- user.gmem.stats keys (KEY=VALUE lines, in this order) ---- */
/* On a file: */
#define GMEM_STATS_SIZE "size"
#define GMEM_STATS_ALLOCATED_BYTES "allocated_bytes"
#define GMEM_STATS_PRIVATE_BYTES "private_bytes"
#define GMEM_STATS_SHARED_BYTES "shared_bytes"
#define GMEM_STATS_RANGES "ranges"
#define GMEM_STATS_CONVERSIONS "conversions"
#define GMEM_STATS_REFERENCES "references"
#define GMEM_STATS_REFERENCED_BYTES "referenced_bytes"
#define GMEM_STATS_EAGAIN_REFUSALS "eagain_refusals"
#define GMEM_STATS_INJECTED_FAILURES "injected_failures"
#define GMEM_STATS_FLAGS "flags"
/* On the mount root (and allocated_bytes, over every file): */
#define GMEM_STATS_FILES "files"
#define GMEM_STATS_MAX_MEMORY "max_memory"   /* bytes, or "none" */
#define GMEM_STATS_POPULATE_KILLS "populate_kills"
#define GMEM_STATS_POPULATE_ZERO_ANSWERS "populate_zero_answers"
#define GMEM_STATS_POPULATE_PENDING "populate_pending"

/* ---- limits ---- */
/* The largest file: one MAP_NORESERVE mapping per file, 64 TiB (larger sizes are EFBIG). */
#define GMEM_FILE_SIZE_MAX (64ULL << 40)
/* References one open file description may hold on one page (a pin past it: ENOMEM). */
#define GMEM_REFERENCES_PER_PAGE_MAX 65536
/* Failures one file may have armed at once through user.gmem.inject (more: ENOSPC). */
#define GMEM_INJECTED_FAILURES_MAX 16

/* ---- creation flags (KVM_CREATE_GUEST_MEMFD's flags; names "mmap", "init-shared") ---- */
#define GUEST_MEMFD_FLAG_MMAP (1ULL << 0)
#define GUEST_MEMFD_FLAG_INIT_SHARED (1ULL << 1)

/* ---- memory attributes ---- */
#define KVM_MEMORY_ATTRIBUTE_PRIVATE (1ULL << 3)

/* ---- the conversion ioctl ----
 * KVM_SET_MEMORY_ATTRIBUTES2 = _IOWR(KVMIO = 0xAE, 0xd2, struct kvm_memory_attributes2):
 * direction read|write (3 << 30) | size 128 (<< 16) | type 0xAE (<< 8) | number 0xd2.
 * Written out so that Swift (which does not import function-like macros) sees the value;
 * Tests/MountTests/Resources/ioctl_abi.c checks it against the _IOWR expansion. */
#define KVM_SET_MEMORY_ATTRIBUTES2 0xC080AED2UL

/* Little-endian, 16 x u64 = 128 bytes. Byte offsets: offset 0, size 8, attributes 16,
 * flags 24, error_offset 32, reserved 40..127. The kernel's first field is a union
 * { address; offset; }: guest_memfd reads it as the file offset. */
struct kvm_memory_attributes2 {
	uint64_t offset;
	uint64_t size;
	uint64_t attributes;   /* KVM_MEMORY_ATTRIBUTE_PRIVATE or 0 */
	uint64_t flags;        /* must be 0 */
	uint64_t error_offset; /* out: written on failure only */
	uint64_t reserved[11]; /* must be 0 */
};

_Static_assert(sizeof(struct kvm_memory_attributes2) == 128, "struct kvm_memory_attributes2 is 16 x u64");
_Static_assert(offsetof(struct kvm_memory_attributes2, offset) == 0, "offset at 0");
_Static_assert(offsetof(struct kvm_memory_attributes2, size) == 8, "size at 8");
_Static_assert(offsetof(struct kvm_memory_attributes2, attributes) == 16, "attributes at 16");
_Static_assert(offsetof(struct kvm_memory_attributes2, flags) == 24, "flags at 24");
_Static_assert(offsetof(struct kvm_memory_attributes2, error_offset) == 32, "error_offset at 32");
_Static_assert(offsetof(struct kvm_memory_attributes2, reserved) == 40, "reserved at 40");

/* ---- page references (gmemfs's own ioctls, docs/xattr-interface.md) ----
 * GMEM_PIN_PAGES   = _IOW('G', 0x01, struct gmem_page_reference)
 * GMEM_UNPIN_PAGES = _IOW('G', 0x02, struct gmem_page_reference)
 * direction write (1 << 30) | size 64 (<< 16) | type 'G' = 0x47 (<< 8) | number. The type
 * differs from KVM's 0xAE and from the VFS's generic file ioctl types ('f', 'X', 0x94, 'T'),
 * which the kernel answers before a file system is asked. _IOW: the FUSE client copies the
 * 64 bytes in and nothing back. Written out for Swift; page_refs.c checks the _IOW expansion. */
#define GMEM_IOCTL_TYPE 0x47
#define GMEM_PIN_PAGES 0x40404701UL
#define GMEM_UNPIN_PAGES 0x40404702UL

/* Little-endian, 8 x u64 = 64 bytes. Byte offsets: offset 0, size 8, flags 16, reserved 24..63. */
struct gmem_page_reference {
	uint64_t offset;      /* byte offset into the file, multiple of GMEM_PAGE_SIZE */
	uint64_t size;        /* bytes, non-zero multiple of GMEM_PAGE_SIZE */
	uint64_t flags;       /* must be 0 */
	uint64_t reserved[5]; /* must be 0 */
};

_Static_assert(sizeof(struct gmem_page_reference) == 64, "struct gmem_page_reference is 8 x u64");
_Static_assert(offsetof(struct gmem_page_reference, offset) == 0, "offset at 0");
_Static_assert(offsetof(struct gmem_page_reference, size) == 8, "size at 8");
_Static_assert(offsetof(struct gmem_page_reference, flags) == 16, "flags at 16");
_Static_assert(offsetof(struct gmem_page_reference, reserved) == 24, "reserved at 24");

#endif /* GMEM_ABI_H */
