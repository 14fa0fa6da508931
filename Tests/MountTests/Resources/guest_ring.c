/* A shared ring between a real KVM guest and its VMM, without conversions.
 *
 * Usage: guest_ring MOUNTPOINT NAME     (gmemfs with --guest-view; NAME is created mmap|init-shared)
 *
 * The memslot is a MAP_SHARED mapping of MOUNTPOINT/.guest/NAME (the guest's view); the VMM
 * reads and writes the ring page 0x3000 through its own MAP_SHARED mapping of MOUNTPOINT/NAME
 * (the host view), which it has already read, so that page is cached in both views. The protocol
 * is the one docs/semantics.md states ("Shared pages between conversions"): the side that stored
 * calls msync(MS_SYNC) on its own mapping before the other side loads.
 *   1. the guest stores 'G' at 0x3000 and writes port 0x10;
 *   2. the VMM msyncs the guest mapping's ring page, reads 0x3000 through the host view, stores
 *      'H' at 0x3001 through the host view and msyncs it;
 *   3. the guest loads 0x3001 and writes it to port 0x11, then halts.
 * Prints "host saw X, guest saw Y"; exit 0 when X = 'G' and Y = 'H'. */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/xattr.h>
#include <unistd.h>

#define MEM_SIZE 0x10000
#define CODE 0x1000
#define RING 0x3000

/* mov byte [0x3000], 'G'; out 0x10, al; mov al, [0x3001]; out 0x11, al; hlt */
static const uint8_t code[] = { 0xc6, 0x06, 0x00, 0x30, 'G', 0xe6, 0x10, 0xa0, 0x01, 0x30, 0xe6, 0x11, 0xf4 };

static void die(const char *what) { perror(what); exit(1); }

int main(int argc, char **argv) {
	if (argc != 3) { fprintf(stderr, "usage: %s MOUNTPOINT NAME\n", argv[0]); return 1; }
	char host_path[4096], guest_path[4096], create[512];
	snprintf(host_path, sizeof host_path, "%s/%s", argv[1], argv[2]);
	snprintf(guest_path, sizeof guest_path, "%s/.guest/%s", argv[1], argv[2]);
	snprintf(create, sizeof create, "%s %d 3", argv[2], MEM_SIZE);   /* mmap | init-shared */
	if (setxattr(argv[1], "user.gmem.create", create, strlen(create), 0) < 0) die("create");
	int host = open(host_path, O_RDWR), guest = open(guest_path, O_RDWR);
	if (host < 0 || guest < 0) die("open");
	uint8_t *gmem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, guest, 0);
	volatile uint8_t *hmem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, host, 0);
	if (gmem == MAP_FAILED || hmem == MAP_FAILED) die("mmap");
	memcpy(gmem + CODE, code, sizeof code);
	if (hmem[RING] != 0 || hmem[RING + 1] != 0) { fprintf(stderr, "ring not zero\n"); return 1; }

	int kvm = open("/dev/kvm", O_RDWR), vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) die("KVM_CREATE_VM");
	struct kvm_userspace_memory_region slot = { .memory_size = MEM_SIZE, .userspace_addr = (uintptr_t)gmem };
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0) die("KVM_SET_USER_MEMORY_REGION");
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0) die("KVM_CREATE_VCPU");
	struct kvm_run *run = mmap(NULL, ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0), PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED) die("mmap vcpu");
	struct kvm_sregs sregs;
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) die("KVM_GET_SREGS");
	sregs.cs.base = 0; sregs.cs.selector = 0; sregs.ds.base = 0; sregs.ds.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) die("KVM_SET_SREGS");
	struct kvm_regs regs = { .rip = CODE, .rflags = 2 };
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");

	int host_saw = '?', guest_saw = '?';
	for (;;) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) die("KVM_RUN");
		if (run->exit_reason == KVM_EXIT_HLT) break;
		if (run->exit_reason != KVM_EXIT_IO || run->io.direction != KVM_EXIT_IO_OUT) {
			fprintf(stderr, "unexpected exit %u\n", run->exit_reason);
			return 1;
		}
		if (run->io.port == 0x10) {
			if (msync(gmem + RING, 4096, MS_SYNC) < 0) die("msync guest view");
			host_saw = hmem[RING];
			hmem[RING + 1] = 'H';
			if (msync((void *)(hmem + RING), 4096, MS_SYNC) < 0) die("msync host view");
		} else if (run->io.port == 0x11) {
			guest_saw = *((uint8_t *)run + run->io.data_offset);
		}
	}
	printf("host saw %c, guest saw %c\n", host_saw, guest_saw);
	return host_saw == 'G' && guest_saw == 'H' ? 0 : 1;
}
