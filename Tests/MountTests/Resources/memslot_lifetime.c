/* When a guest_memfd's memory goes under `gmemctl run` (docs/semantics.md, "Under gmemctl run"):
 * closed without a memslot, when gmemfs gets the release (the guest view gmemctl keeps is
 * O_PATH, no open file); bound, deleted and closed, not while gmemctl's mapping of the guest view
 * is in the process (the kernel: at once), which this program shows in /proc/self/maps: the
 * memory goes when the process exits. Run with ulimit -n 1024: gmemctl's kept guest views of
 * freed files do not use up its descriptors. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "guest_memfd_uapi.h"

static long allocated(void) {
	char stats[4096] = { 0 };
	if (getxattr(getenv("GMEM_RUN_MOUNT"), "user.gmem.stats", stats, sizeof stats - 1) < 0) return -1;
	char *at = strstr(stats, "allocated_bytes=");
	return at ? atol(at + strlen("allocated_bytes=")) : -1;
}

static int filled(int vm) {
	struct kvm_create_guest_memfd create = { .size = 1 << 20, .flags = GUEST_MEMFD_FLAG_MMAP };
	int fd = ioctl(vm, KVM_CREATE_GUEST_MEMFD, &create);
	if (fd < 0 || fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 1 << 20) != 0) { perror("create"); exit(1); }
	return fd;
}

int main(void) {
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int vm = kvm < 0 ? -1 : ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) { perror("KVM_CREATE_VM"); return 1; }
	int fd = filled(vm);
	printf("created: %ld\n", allocated());
	close(fd);
	long left = allocated();
	for (int i = 0; i < 500 && left != 0; i++) { usleep(10000); left = allocated(); }   /* FUSE's release is asynchronous */
	printf("closed, never bound: %ld\n", left);
	/* More files made and closed than gmemctl may hold descriptors (the test runs it with
	 * ulimit -n 1024): the guest views it keeps for them must be let go. */
	for (int i = 0; i < 1100; i++) {
		struct kvm_create_guest_memfd create = { .size = 4096, .flags = GUEST_MEMFD_FLAG_MMAP };
		int made = ioctl(vm, KVM_CREATE_GUEST_MEMFD, &create);
		if (made < 0) { perror("KVM_CREATE_GUEST_MEMFD"); return 1; }
		close(made);
	}
	fd = filled(vm);
	struct kvm_userspace_memory_region2 slot = { .slot = 0, .flags = KVM_MEM_GUEST_MEMFD, .memory_size = 1 << 20,
		.guest_memfd = (uint32_t)fd };
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &slot) != 0) { perror("bind"); return 1; }
	slot.memory_size = 0;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &slot) != 0) { perror("delete"); return 1; }
	close(fd);
	char maps[1 << 16] = { 0 };
	int m = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	ssize_t n = m < 0 ? -1 : read(m, maps, sizeof maps - 1);
	printf("bound, deleted, closed: guest view still mapped: %s\n", n > 0 && strstr(maps, "/.guest/kvm-gmem.") ? "yes" : "no");
	return 0;
}
