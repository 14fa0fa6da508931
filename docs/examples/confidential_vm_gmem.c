/* A tiny confidential VM in guest_memfd mode, with the kernel's uAPI only: what a VMM does on a
 * kernel with guest_memfd and in-place conversion, and what `gmemctl run` gives it on gmemfs.
 *
 * Usage: confidential_vm_gmem        (exit 0 when all held, 1 when not, 2 without a KVM with
 *                                     guest_memfd: run it as `gmemctl run -- confidential_vm_gmem`)
 *        confidential_vm_gmem --plain (the same guest on anonymous memory, a memslot without
 *                                     KVM_MEM_GUEST_MEMFD: what the guest wrote, exit 0)
 *
 * KVM_CREATE_GUEST_MEMFD (64 KiB, GUEST_MEMFD_FLAG_MMAP: every page starts private); the VMM
 * converts page 0x1000 to shared, loads the guest code through its own mapping of the
 * guest_memfd and converts the page back to private; KVM_SET_USER_MEMORY_REGION2 with
 * KVM_MEM_GUEST_MEMFD binds the whole file as guest memory. The real-mode guest stores a secret
 * into the private page 0x2000, reads it back and writes it to port 0x3f8. The VMM's load of that
 * page through its mapping is SIGBUS; after KVM_SET_MEMORY_ATTRIBUTES2 (shared) on the
 * guest_memfd, it reads the same secret. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define MEM_SIZE 0x10000   /* guest physical 0..64 KiB */
#define CODE 0x1000        /* where the guest starts (CS = 0, IP = 0x1000) */
#define SECRET 0x2000      /* the private page the guest stores its secret in */
#define PORT 0x3f8

/* The guest_memfd uAPI (include/uapi/linux/kvm.h of kernels with guest_memfd, and the in-place
 * conversion series), under names of our own: older headers lack them, newer ones have them. */
struct create_gmem { uint64_t size, flags, reserved[6]; };
#define CREATE_GUEST_MEMFD _IOWR(KVMIO, 0xd4, struct create_gmem)
#define GUEST_MEMFD_FLAG_MMAP (1ULL << 0)
struct region2 {
	uint32_t slot, flags;
	uint64_t guest_phys_addr, memory_size, userspace_addr, guest_memfd_offset;
	uint32_t guest_memfd, pad1;
	uint64_t pad2[14];
};
#define SET_USER_MEMORY_REGION2 _IOW(KVMIO, 0x49, struct region2)
#define MEM_GUEST_MEMFD (1U << 2)
struct attributes2 { uint64_t offset, size, attributes, flags, error_offset, reserved[11]; };
#define SET_MEMORY_ATTRIBUTES2 _IOWR(KVMIO, 0xd2, struct attributes2)
#define ATTRIBUTE_PRIVATE (1ULL << 3)
#define CAP_GUEST_MEMFD 234

/* mov dword [0x2000], "hunt"; mov dword [0x2004], "er2\0"; mov dx, 0x3f8; mov si, 0x2000;
 * next: lodsb; test al, al; jz done; out dx, al; jmp next; done: hlt */
static const uint8_t guest_code[] = {
	0x66, 0xc7, 0x06, 0x00, 0x20, 'h', 'u', 'n', 't',
	0x66, 0xc7, 0x06, 0x04, 0x20, 'e', 'r', '2', 0,
	0xba, 0xf8, 0x03, 0xbe, 0x00, 0x20,
	0xac, 0x84, 0xc0, 0x74, 0x03, 0xee, 0xeb, 0xf8, 0xf4,
};

static sigjmp_buf fault;
static void on_sigbus(int sig) { (void)sig; siglongjmp(fault, 1); }
static void die(const char *what) { perror(what); exit(1); }

static void set_attributes(int gmem, uint64_t offset, uint64_t attributes) {
	struct attributes2 a = { .offset = offset, .size = 0x1000, .attributes = attributes };
	if (ioctl(gmem, SET_MEMORY_ATTRIBUTES2, &a) < 0) die("KVM_SET_MEMORY_ATTRIBUTES2");
}

/* Runs the guest until it halts; its port writes go to out. 0 on HLT, -1 otherwise. */
static int run_guest(int kvm, int vm, char *out, size_t cap) {
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0) die("KVM_CREATE_VCPU");
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED) die("mmap vcpu");
	struct kvm_sregs sregs;
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) die("KVM_GET_SREGS");
	sregs.cs.base = 0; sregs.cs.selector = 0;
	sregs.ds.base = 0; sregs.ds.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) die("KVM_SET_SREGS");
	struct kvm_regs regs = { .rip = CODE, .rflags = 2 };
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");
	size_t n = 0;
	for (;;) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) die("KVM_RUN");
		if (run->exit_reason == KVM_EXIT_HLT) break;
		if (run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT && run->io.port == PORT) {
			if (n + 1 < cap) out[n++] = *((char *)run + run->io.data_offset);
			continue;
		}
		fprintf(stderr, "unexpected exit %u\n", run->exit_reason);
		return -1;
	}
	out[n] = 0;
	munmap(run, run_size);
	close(vcpu);
	return 0;
}

int main(int argc, char **argv) {
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) { perror("open /dev/kvm"); return 2; }
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) { perror("KVM_CREATE_VM"); return 2; }
	if (argc == 2 && strcmp(argv[1], "--plain") == 0) {
		uint8_t *anon = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (anon == MAP_FAILED) die("mmap");
		memcpy(anon + CODE, guest_code, sizeof guest_code);
		struct region2 plain = { .slot = 0, .memory_size = MEM_SIZE, .userspace_addr = (uint64_t)(uintptr_t)anon };
		if (ioctl(vm, SET_USER_MEMORY_REGION2, &plain) < 0) die("KVM_SET_USER_MEMORY_REGION2");
		char said[64];
		if (run_guest(kvm, vm, said, sizeof said) < 0) return 1;
		printf("guest wrote to port 0x%x: %s\n", PORT, said);
		return strcmp(said, "hunter2") == 0 ? 0 : 1;
	}
	if (ioctl(vm, KVM_CHECK_EXTENSION, CAP_GUEST_MEMFD) <= 0) {
		fprintf(stderr, "this KVM has no guest_memfd (try: gmemctl run -- %s)\n", "confidential_vm_gmem");
		return 2;
	}
	struct create_gmem create = { .size = MEM_SIZE, .flags = GUEST_MEMFD_FLAG_MMAP };
	int gmem = ioctl(vm, CREATE_GUEST_MEMFD, &create);
	if (gmem < 0) die("KVM_CREATE_GUEST_MEMFD");
	volatile uint8_t *host = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, gmem, 0);
	if (host == MAP_FAILED) die("mmap guest_memfd");

	/* Load the guest image through a shared page, then make it private. */
	set_attributes(gmem, CODE, 0);
	memcpy((void *)(host + CODE), guest_code, sizeof guest_code);
	set_attributes(gmem, CODE, ATTRIBUTE_PRIVATE);

	struct region2 slot = {
		.slot = 0, .flags = MEM_GUEST_MEMFD, .guest_phys_addr = 0, .memory_size = MEM_SIZE,
		.userspace_addr = (uint64_t)(uintptr_t)host, .guest_memfd_offset = 0, .guest_memfd = (uint32_t)gmem,
	};
	if (ioctl(vm, SET_USER_MEMORY_REGION2, &slot) < 0) die("KVM_SET_USER_MEMORY_REGION2");
	printf("memslot 0: guest_memfd, 64 KiB, every page private\n");

	char said[64];
	if (run_guest(kvm, vm, said, sizeof said) < 0) return 1;
	printf("guest wrote to port 0x%x: %s\n", PORT, said);

	signal(SIGBUS, on_sigbus);
	int sigbus = 0;
	if (sigsetjmp(fault, 1) == 0) (void)host[SECRET]; else sigbus = 1;
	printf("host load from its mapping of page 0x%x: %s\n", SECRET, sigbus ? "SIGBUS" : "read (wrong)");

	set_attributes(gmem, SECRET, 0);
	printf("converted page 0x%x to shared in place\n", SECRET);
	char seen[64] = {0};
	for (size_t i = 0; i + 1 < sizeof seen && (seen[i] = host[SECRET + i]) != 0; i++) {}
	printf("host reads through its mapping: %s\n", seen);

	int ok = said[0] && sigbus && strcmp(said, seen) == 0;
	printf("%s\n", ok ? "ok" : "FAILED");
	return ok ? 0 : 1;
}
