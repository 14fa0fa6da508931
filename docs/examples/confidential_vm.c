/* A tiny confidential VM on gmemfs memory, with the kernel's uAPI only.
 *
 * Usage: confidential_vm MOUNTPOINT NAME      (gmemfs mounted with --guest-view)
 *        confidential_vm --probe              (can KVM run a guest here? a one-instruction HLT
 *                                              guest on anonymous memory: exit 0 yes, 2 no)
 *
 * Creates NAME (64 KiB, mmap, every page private), maps MOUNTPOINT/.guest/NAME as the memslot
 * (the guest's view: it reaches every page whatever its attribute) and runs a real-mode guest
 * that stores a secret into the private page 0x2000, reads it back and writes it to port 0x3f8.
 * The host then reads that page through its own view, MOUNTPOINT/NAME: pread is EACCES and a
 * load from a MAP_SHARED mapping is SIGBUS. After an in-place conversion of the page to shared
 * (KVM_SET_MEMORY_ATTRIBUTES2 on the host fd), the host reads the same secret.
 * Exit status 0 when all of that held, 1 otherwise, 2 without a usable /dev/kvm. */
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
#include <sys/xattr.h>
#include <unistd.h>

#define MEM_SIZE 0x10000   /* guest physical 0..64 KiB */
#define CODE 0x1000        /* where the guest starts (CS = 0, IP = 0x1000) */
#define SECRET 0x2000      /* the private page the guest stores its secret in */
#define PORT 0x3f8

/* KVM_SET_MEMORY_ATTRIBUTES2 on a guest_memfd (the in-place conversion series): 128 bytes. */
struct kvm_memory_attributes2 {
	uint64_t offset, size, attributes, flags, error_offset, reserved[11];
};
#define KVM_SET_MEMORY_ATTRIBUTES2 _IOWR(KVMIO, 0xd2, struct kvm_memory_attributes2)

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

/* Runs the guest until it halts; its port writes go to out. 0 on HLT, -1 otherwise. */
static int run_guest(void *memory, char *out, size_t cap) {
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) { perror("open /dev/kvm"); exit(2); }
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) { perror("KVM_CREATE_VM"); exit(2); }
	struct kvm_userspace_memory_region slot = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE,
		.userspace_addr = (uint64_t)(uintptr_t)memory,
	};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0) die("KVM_SET_USER_MEMORY_REGION");
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0) { perror("KVM_CREATE_VCPU"); exit(2); }
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
	munmap(run, run_size); close(vcpu); close(vm); close(kvm);
	return 0;
}

int main(int argc, char **argv) {
	if (argc == 2 && strcmp(argv[1], "--probe") == 0) {
		uint8_t *anon = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (anon == MAP_FAILED) die("mmap");
		anon[CODE] = 0xf4;   /* hlt */
		char none[1];
		return run_guest(anon, none, sizeof none) == 0 ? 0 : 2;
	}
	if (argc != 3) { fprintf(stderr, "usage: %s MOUNTPOINT NAME | --probe\n", argv[0]); return 1; }
	char host_path[4096], guest_path[4096], create[512];
	snprintf(host_path, sizeof host_path, "%s/%s", argv[1], argv[2]);
	snprintf(guest_path, sizeof guest_path, "%s/.guest/%s", argv[1], argv[2]);
	/* KVM_CREATE_GUEST_MEMFD(size, GUEST_MEMFD_FLAG_MMAP): every page starts private. */
	snprintf(create, sizeof create, "%s %d 1", argv[2], MEM_SIZE);
	if (setxattr(argv[1], "user.gmem.create", create, strlen(create), 0) < 0) die("create");
	int host = open(host_path, O_RDWR), guest = open(guest_path, O_RDWR);
	if (host < 0 || guest < 0) die("open");
	uint8_t *gmem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, guest, 0);
	volatile uint8_t *hmem = mmap(NULL, MEM_SIZE, PROT_READ, MAP_SHARED, host, 0);
	if (gmem == MAP_FAILED || hmem == MAP_FAILED) die("mmap");
	memcpy(gmem + CODE, guest_code, sizeof guest_code);   /* the VMM loads the guest image */

	char said[64];
	if (run_guest(gmem, said, sizeof said) < 0) return 2;
	printf("guest wrote to port 0x%x: %s\n", PORT, said);

	char buf[8] = {0};
	ssize_t r = pread(host, buf, sizeof buf, SECRET);
	int pread_errno = r < 0 ? errno : 0;
	printf("host pread of page 0x%x: %s\n", SECRET, r < 0 ? strerror(errno) : "read (wrong)");
	signal(SIGBUS, on_sigbus);
	int sigbus = 0;
	if (sigsetjmp(fault, 1) == 0) buf[0] = hmem[SECRET]; else sigbus = 1;
	printf("host load from its mapping of page 0x%x: %s\n", SECRET, sigbus ? "SIGBUS" : "read (wrong)");

	struct kvm_memory_attributes2 shared = { .offset = SECRET, .size = 0x1000, .attributes = 0 };
	if (ioctl(host, KVM_SET_MEMORY_ATTRIBUTES2, &shared) < 0) die("KVM_SET_MEMORY_ATTRIBUTES2");
	printf("converted page 0x%x to shared in place\n", SECRET);
	char seen[64] = {0};
	for (size_t i = 0; i + 1 < sizeof seen && (seen[i] = hmem[SECRET + i]) != 0; i++) {}
	printf("host reads through its mapping: %s\n", seen);

	int ok = said[0] && pread_errno == EACCES && sigbus && strcmp(said, seen) == 0;
	printf("%s\n", ok ? "ok" : "FAILED");
	return ok ? 0 : 1;
}
