/*
 * ioctl_abi.c: drives a gmemfs file with KVM_SET_MEMORY_ATTRIBUTES2 as gmem_abi.h (the
 * interface header GmemABI imports too) defines it, and checks that definition against the
 * kernel uapi's derivation (_IOWR, the struct layout) to prove the C ABI (number, struct
 * layout, errnos). Built with -I Sources/CGmemABI/include and run by
 * Tests/MountTests/IoctlTests.swift.
 *
 * usage: ioctl_abi HOST_FILE GUEST_FILE   (a 1 MiB file created all private)
 * Prints one line per check ("ok ..." or "FAIL ..."); the exit status is the number of failures.
 * The Swift test then checks the resulting map through getxattr.
 */
#define _GNU_SOURCE /* strerrorname_np */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/types.h>
#include <stddef.h>
#include <sys/ioctl.h>

#include "gmem_abi.h" /* struct kvm_memory_attributes2, KVM_SET_MEMORY_ATTRIBUTES2, ... */

/* ---- the uapi's derivation, as include/uapi/linux/kvm.h writes it ---- */
#define KVMIO 0xAE

/* The VM ioctl of the same number (KVM_SET_MEMORY_ATTRIBUTES, v1): a different size, so a
 * different command, which gmemfs files must refuse. */
struct kvm_memory_attributes {
	__u64 address;
	__u64 size;
	__u64 attributes;
	__u64 flags;
};
#define KVM_SET_MEMORY_ATTRIBUTES _IOW(KVMIO, 0xd2, struct kvm_memory_attributes)

/* The kernel's struct, field by field (its first field is a union { address; offset; }). */
struct uapi_kvm_memory_attributes2 {
	union {
		__u64 address;
		__u64 offset;
	};
	__u64 size;
	__u64 attributes;
	__u64 flags;
	__u64 error_offset;
	__u64 reserved[11];
};
/* ---- end of uapi ---- */

_Static_assert(sizeof(struct kvm_memory_attributes2) == sizeof(struct uapi_kvm_memory_attributes2), "struct size");
_Static_assert(offsetof(struct kvm_memory_attributes2, error_offset) == offsetof(struct uapi_kvm_memory_attributes2, error_offset), "error_offset");
_Static_assert(offsetof(struct kvm_memory_attributes2, reserved) == offsetof(struct uapi_kvm_memory_attributes2, reserved), "reserved");
_Static_assert(KVM_SET_MEMORY_ATTRIBUTES2 == _IOWR(KVMIO, 0xd2, struct uapi_kvm_memory_attributes2), "ioctl number");

#define MiB (1ULL << 20)
#define FILE_SIZE MiB

static int failures;

static void check(int cond, const char *what)
{
	printf("%s %s\n", cond ? "ok" : "FAIL", what);
	if (!cond)
		failures++;
}

static struct kvm_memory_attributes2 args(__u64 offset, __u64 size, __u64 attributes)
{
	struct kvm_memory_attributes2 a;
	memset(&a, 0, sizeof(a));
	a.offset = offset;
	a.size = size;
	a.attributes = attributes;
	return a;
}

/* Issues the ioctl; returns 0 or errno. Also checks the struct came back unchanged: gmemfs,
 * like the kernel, writes error_offset back only for failures that name a page (EAGAIN, ENOMEM,
 * EINTR; see page_refs.c), and none of the calls here meets one. */
static int convert(int fd, struct kvm_memory_attributes2 a)
{
	struct kvm_memory_attributes2 before = a;
	int r = ioctl(fd, KVM_SET_MEMORY_ATTRIBUTES2, &a) == 0 ? 0 : errno;
	if (memcmp(&before, &a, sizeof(a)) != 0) {
		printf("FAIL struct changed by the call\n");
		failures++;
	}
	return r;
}

static void expect_errno(int fd, struct kvm_memory_attributes2 a, int want, const char *what)
{
	int r = convert(fd, a);
	char line[200];
	snprintf(line, sizeof(line), "%s -> %s (got %s)", what, strerrorname_np(want) ? strerrorname_np(want) : "?",
		 r ? (strerrorname_np(r) ? strerrorname_np(r) : "?") : "0");
	check(r == want, line);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s HOST_FILE GUEST_FILE\n", argv[0]);
		return 100;
	}
	int fd = open(argv[1], O_RDWR);
	int ro = open(argv[1], O_RDONLY);
	int noaccess = open(argv[1], O_ACCMODE);	/* Linux: neither read nor write (ioctl only) */
	int guest = open(argv[2], O_RDWR);
	if (fd < 0 || ro < 0 || noaccess < 0 || guest < 0) {
		perror("open");
		return 100;
	}
	char buf[8];
	struct kvm_memory_attributes2 a;

	/* Conversions that succeed. */
	check(convert(fd, args(0, 64 * 1024, 0)) == 0, "[0, 64K) -> shared");
	check(convert(fd, args(16 * 1024, 16 * 1024, KVM_MEMORY_ATTRIBUTE_PRIVATE)) == 0, "[16K, 32K) -> private");
	check(pwrite(fd, "abc", 3, 0) == 3, "pwrite to a shared page");
	check(pread(fd, buf, sizeof(buf), 16 * 1024) < 0 && errno == EACCES,
	      "pread of a private page -> EACCES");
	check(convert(fd, args(0, 4096, KVM_MEMORY_ATTRIBUTE_PRIVATE)) == 0, "[0, 4K) -> private");
	check(pread(fd, buf, 3, 0) < 0 && errno == EACCES, "pread after conversion to private -> EACCES");
	check(convert(fd, args(0, 4096, 0)) == 0, "[0, 4K) -> shared again");
	check(pread(fd, buf, 3, 0) == 3 && memcmp(buf, "abc", 3) == 0, "contents kept across private and back");
	a = args(0x40000, 4096, 0);
	a.error_offset = 0x1234; /* an input error_offset is not checked (the kernel's rule) */
	check(convert(fd, a) == 0, "[0x40000, +4K) -> shared with error_offset set");
	check(convert(guest, args(0x30000, 8192, 0)) == 0, "guest view: [0x30000, +8K) -> shared");

	/* Rejected calls: each aims at [0x20000, +4K) -> shared, which must stay private. */
	const __u64 T = 0x20000;
	a = args(T, 4096, 0); a.flags = 1;
	expect_errno(fd, a, EINVAL, "flags = 1");
	a = args(T, 4096, 0); a.flags = 1ULL << 63;
	expect_errno(fd, a, EINVAL, "flags = 1<<63");
	a = args(T, 4096, 0); a.reserved[0] = 1;
	expect_errno(fd, a, EINVAL, "reserved[0] != 0");
	a = args(T, 4096, 0); a.reserved[10] = 0xff;
	expect_errno(fd, a, EINVAL, "reserved[10] != 0");
	expect_errno(fd, args(T, 4096, 1), EINVAL, "unknown attribute bit 0");
	expect_errno(fd, args(T, 4096, KVM_MEMORY_ATTRIBUTE_PRIVATE | (1ULL << 4)), EINVAL, "PRIVATE | unknown bit 4");
	expect_errno(fd, args(T, 4096, 1ULL << 63), EINVAL, "unknown attribute bit 63");
	expect_errno(fd, args(T, 0, 0), EINVAL, "size 0");
	expect_errno(fd, args(0xFFFFFFFFFFFFF000ULL, 0x2000, 0), EINVAL, "offset + size overflows");
	expect_errno(fd, args(T + 1, 4096, 0), EINVAL, "misaligned offset");
	expect_errno(fd, args(T, 4095, 0), EINVAL, "misaligned size");
	expect_errno(fd, args(T, 4097, 0), EINVAL, "size not a page multiple");
	expect_errno(fd, args(FILE_SIZE, 4096, 0), EINVAL, "offset at EOF");
	expect_errno(fd, args(FILE_SIZE - 4096, 8192, 0), EINVAL, "range crosses EOF");
	expect_errno(fd, args(1ULL << 40, 4096, 0), EINVAL, "offset far past EOF");
	expect_errno(ro, args(T, 4096, 0), EBADF, "read-only fd");
	expect_errno(noaccess, args(T, 4096, 0), EBADF, "O_ACCMODE fd (no FMODE_WRITE)");

	/* Other ioctl numbers are not ours. */
	a = args(T, 4096, 0);
	errno = 0;
	check(ioctl(fd, _IOWR(KVMIO, 0xd3, struct kvm_memory_attributes2), &a) < 0 && errno == ENOTTY,
	      "unknown ioctl _IOWR(KVMIO, 0xd3, 128) -> ENOTTY");
	struct kvm_memory_attributes vm = { T, 4096, 0, 0 };
	errno = 0;
	check(ioctl(fd, KVM_SET_MEMORY_ATTRIBUTES, &vm) < 0 && errno == ENOTTY,
	      "the VM ioctl KVM_SET_MEMORY_ATTRIBUTES -> ENOTTY");

	close(fd);
	close(ro);
	close(guest);
	printf("%d failure(s)\n", failures);
	return failures;
}
