/*
 * vmm_retry.c: the conversion loop a VMM needs around KVM_SET_MEMORY_ATTRIBUTES2, written only
 * from docs/xattr-interface.md and docs/semantics.md. A "device" (here: this program, through its
 * own fd) pins part of guest memory for DMA; converting it to private is refused with EAGAIN and
 * error_offset names the first pinned page; the VMM makes the device drop the pins it holds in
 * that page and retries. EINTR is retried as is; ENOMEM is reported (error_offset = start).
 *
 * It defines the uAPI it uses itself (the values of gmemfs's Sources/CGmemABI/include/gmem_abi.h,
 * as the docs print them) so that it builds alone, outside the gmemfs tree:
 *
 *   cc -o vmm_retry vmm_retry.c
 *   vmm_retry FILE OFFSET SIZE      (FILE's pages in range must be shared; the device pins
 *                                    two buffers inside [OFFSET, OFFSET+SIZE))
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/types.h>
#include <sys/ioctl.h>

struct kvm_memory_attributes2 {
	__u64 offset, size, attributes, flags, error_offset, reserved[11];
};
#define KVM_SET_MEMORY_ATTRIBUTES2 _IOWR(0xAE, 0xd2, struct kvm_memory_attributes2)
#define KVM_MEMORY_ATTRIBUTE_PRIVATE (1ULL << 3)

struct gmem_page_reference {
	__u64 offset, size, flags, reserved[5];
};
#define GMEM_PIN_PAGES   _IOW('G', 0x01, struct gmem_page_reference)
#define GMEM_UNPIN_PAGES _IOW('G', 0x02, struct gmem_page_reference)

/* The device's DMA buffers: pinned ranges, dropped on request. */
struct buffer { __u64 offset, size; int pinned; };

static int pin(int fd, struct buffer *b, unsigned long cmd)
{
	struct gmem_page_reference r = { .offset = b->offset, .size = b->size };
	return ioctl(fd, cmd, &r);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s FILE OFFSET SIZE\n", argv[0]);
		return 2;
	}
	__u64 offset = strtoull(argv[2], NULL, 0), size = strtoull(argv[3], NULL, 0);
	int vm = open(argv[1], O_RDWR);       /* the VMM's guest_memfd */
	int dev = open(argv[1], O_RDONLY);    /* the device's own descriptor */
	if (vm < 0 || dev < 0) {
		perror("open");
		return 1;
	}
	struct buffer bufs[2] = { { offset + size / 2, 4096, 0 }, { offset + size / 4, 8192, 0 } };
	for (int i = 0; i < 2; i++) {
		if (pin(dev, &bufs[i], GMEM_PIN_PAGES)) {
			perror("GMEM_PIN_PAGES");
			return 1;
		}
		bufs[i].pinned = 1;
		printf("device: pinned [0x%llx, +0x%llx)\n", bufs[i].offset, bufs[i].size);
	}

	for (int attempt = 1;; attempt++) {
		struct kvm_memory_attributes2 a;
		memset(&a, 0, sizeof(a));
		a.offset = offset;
		a.size = size;
		a.attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE;
		if (ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES2, &a) == 0) {
			printf("attempt %d: [0x%llx, +0x%llx) is private\n", attempt, offset, size);
			return 0;
		}
		int e = errno;
		if (e == EINTR) {
			printf("attempt %d: EINTR, retrying\n", attempt);
			continue;
		}
		if (e != EAGAIN) {
			printf("attempt %d: %s, error_offset 0x%llx\n", attempt, strerror(e), a.error_offset);
			return 1;
		}
		printf("attempt %d: EAGAIN, error_offset 0x%llx\n", attempt, a.error_offset);
		/* Drop whatever the device holds in that page, then try again. */
		int dropped = 0;
		for (int i = 0; i < 2; i++) {
			struct buffer *b = &bufs[i];
			if (b->pinned && a.error_offset >= b->offset && a.error_offset < b->offset + b->size) {
				if (pin(dev, b, GMEM_UNPIN_PAGES)) {
					perror("GMEM_UNPIN_PAGES");
					return 1;
				}
				b->pinned = 0;
				dropped = 1;
				printf("device: unpinned [0x%llx, +0x%llx)\n", b->offset, b->size);
			}
		}
		if (!dropped) {
			printf("someone else holds 0x%llx; giving up\n", a.error_offset);
			return 1;
		}
	}
}
