/*
 * The kernel's guest_memfd uAPI, written out from include/uapi/linux/kvm.h for the test
 * programs that must know nothing of gmemfs (Debian 12's kernel headers predate guest_memfd).
 * GMEM_PIN_PAGES is gmemfs's own ioctl, spelled here as a program using it from the
 * documentation would (docs/xattr-interface.md).
 */
#ifndef GUEST_MEMFD_UAPI_H
#define GUEST_MEMFD_UAPI_H
#include <stdint.h>

#define KVMIO 0xAE
#define KVM_API_VERSION 12
#define KVM_GET_API_VERSION _IO(KVMIO, 0x00)
#define KVM_CREATE_VM _IO(KVMIO, 0x01)
#define KVM_CHECK_EXTENSION _IO(KVMIO, 0x03)
#define KVM_CREATE_VCPU _IO(KVMIO, 0x41)

#define KVM_CAP_GUEST_MEMFD 234
#define KVM_CAP_GUEST_MEMFD_FLAGS 244

struct kvm_create_guest_memfd {
	uint64_t size;
	uint64_t flags;
	uint64_t reserved[6];
};
#define KVM_CREATE_GUEST_MEMFD _IOWR(KVMIO, 0xd4, struct kvm_create_guest_memfd)
#define GUEST_MEMFD_FLAG_MMAP (1ULL << 0)
#define GUEST_MEMFD_FLAG_INIT_SHARED (1ULL << 1)

struct kvm_userspace_memory_region2 {
	uint32_t slot;
	uint32_t flags;
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
	uint64_t guest_memfd_offset;
	uint32_t guest_memfd;
	uint32_t pad1;
	uint64_t pad2[14];
};
#define KVM_SET_USER_MEMORY_REGION2 _IOW(KVMIO, 0x49, struct kvm_userspace_memory_region2)
#define KVM_MEM_GUEST_MEMFD (1UL << 2)
#define KVM_MEM_LOG_DIRTY_PAGES (1UL << 0)

#define KVM_MEMORY_ATTRIBUTE_PRIVATE (1ULL << 3)
struct kvm_memory_attributes2 {
	uint64_t offset;
	uint64_t size;
	uint64_t attributes;
	uint64_t flags;
	uint64_t error_offset;
	uint64_t reserved[11];
};
#define KVM_SET_MEMORY_ATTRIBUTES2 _IOWR(KVMIO, 0xd2, struct kvm_memory_attributes2)

struct gmem_page_reference {
	uint64_t offset;
	uint64_t size;
	uint64_t flags;
	uint64_t reserved[5];
};
#define GMEM_PIN_PAGES _IOW('G', 0x01, struct gmem_page_reference)
#define GMEM_UNPIN_PAGES _IOW('G', 0x02, struct gmem_page_reference)

_Static_assert(sizeof(struct kvm_create_guest_memfd) == 64, "64 bytes");
_Static_assert(sizeof(struct kvm_userspace_memory_region2) == 160, "160 bytes");
_Static_assert(sizeof(struct kvm_memory_attributes2) == 128, "128 bytes");
_Static_assert(sizeof(struct gmem_page_reference) == 64, "64 bytes");
#endif
