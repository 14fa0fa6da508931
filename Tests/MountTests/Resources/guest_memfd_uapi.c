/*
 * A guest_memfd user that knows only the kernel's uAPI (guest_memfd_uapi.h): the file-level
 * steps of the kernel's guest_memfd selftest, run under `gmemctl run`. Prints one line per
 * failed check and a summary `checks=N failures=M`; exits 0 when nothing failed.
 *
 * usage: guest_memfd_uapi [--emulated] [--in-place-cap N]
 *   --emulated: /dev/kvm is gmemctl's stand-in (vCPUs refused with ENOTTY).
 *   --no-guest-view: the mount (gmemctl run --mount) has no guest view: memslots on the file EINVAL.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/falloc.h>
#include "guest_memfd_uapi.h"

static long checks, failures;
#define CHECK(cond, ...) do { checks++; if (!(cond)) { failures++; printf("FAIL line %d: ", __LINE__); printf(__VA_ARGS__); printf(" (errno %d %s)\n", errno, strerror(errno)); } } while (0)

static const size_t page = 4096;
static int vm;

static int create(uint64_t size, uint64_t flags) {
	struct kvm_create_guest_memfd args = { .size = size, .flags = flags };
	return ioctl(vm, KVM_CREATE_GUEST_MEMFD, &args);
}

static int set_attributes(int fd, uint64_t offset, uint64_t size, uint64_t attributes, uint64_t *error_offset) {
	struct kvm_memory_attributes2 a = { .offset = offset, .size = size, .attributes = attributes };
	int r = ioctl(fd, KVM_SET_MEMORY_ATTRIBUTES2, &a);
	if (error_offset) *error_offset = a.error_offset;
	return r;
}

static sigjmp_buf fault_jump;
static void on_sigbus(int sig) { (void)sig; siglongjmp(fault_jump, 1); }
/* Whether reading *p raises SIGBUS. */
static int faults(volatile char *p) {
	if (sigsetjmp(fault_jump, 1)) return 1;
	(void)*p;
	return 0;
}

static void *thread_create(void *arg) {
	(void)arg;
	long fd = create(page, 0);
	return (void *)fd;
}

int main(int argc, char **argv) {
	int emulated = 0, no_guest_view = 0;
	unsigned long in_place_cap = 250;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--emulated")) emulated = 1;
		else if (!strcmp(argv[i], "--no-guest-view")) no_guest_view = 1;
		else if (!strcmp(argv[i], "--in-place-cap") && i + 1 < argc) in_place_cap = strtoul(argv[++i], NULL, 0);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct sigaction sa = { .sa_handler = on_sigbus };
	sigaction(SIGBUS, &sa, NULL);

	/* ---- capabilities ---- */
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	CHECK(kvm >= 0, "open /dev/kvm");
	if (kvm < 0) return 1;
	CHECK(ioctl(kvm, KVM_GET_API_VERSION, 0) == KVM_API_VERSION, "KVM_GET_API_VERSION");
	CHECK(ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD) == 1, "KVM_CAP_GUEST_MEMFD on /dev/kvm");
	CHECK(ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS) == 3, "KVM_CAP_GUEST_MEMFD_FLAGS on /dev/kvm");
	CHECK(ioctl(kvm, KVM_CHECK_EXTENSION, in_place_cap) == (int)KVM_MEMORY_ATTRIBUTE_PRIVATE, "in-place conversion cap %lu", in_place_cap);
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	CHECK(vm >= 0, "KVM_CREATE_VM");
	if (vm < 0) return 1;
	CHECK(fcntl(vm, F_GETFD) == FD_CLOEXEC, "a VM fd is close-on-exec");
	CHECK(ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD) == 1, "KVM_CAP_GUEST_MEMFD on the VM");
	CHECK(ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS) == 3, "KVM_CAP_GUEST_MEMFD_FLAGS on the VM");

	/* ---- creation errors: every size 1..4095, every unsupported flag bit ---- */
	for (uint64_t size = 1; size < page; size++) {
		errno = 0;
		int fd = create(size, 0);
		CHECK(fd == -1 && errno == EINVAL, "create size %lu", (unsigned long)size);
		if (fd >= 0) close(fd);
	}
	errno = 0;
	CHECK(create(0, 0) == -1 && errno == EINVAL, "create size 0");
	errno = 0;
	CHECK(create(1ULL << 63, 0) == -1 && errno == EINVAL, "create size 2^63 (negative loff_t)");
	errno = 0;
	CHECK(create(page + 1, 1ULL << 5) == -1 && errno == EINVAL, "bad flags and bad size: EINVAL");
	for (int bit = 0; bit < 64; bit++) {
		uint64_t flag = 1ULL << bit;
		errno = 0;
		int fd = create(page, flag);
		if (flag & (GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED))
			CHECK(fd >= 0, "create flag bit %d", bit);
		else
			CHECK(fd == -1 && errno == EINVAL, "create flag bit %d", bit);
		if (fd >= 0) close(fd);
	}
	errno = 0;
	CHECK(ioctl(vm, KVM_CREATE_GUEST_MEMFD, (void *)8) == -1 && errno == EFAULT, "create with a bad pointer: EFAULT");

	/* ---- the file: size, descriptor flags, read/write refused, MAP_PRIVATE refused ---- */
	const size_t total = 16 * page;
	int fd = create(total, GUEST_MEMFD_FLAG_MMAP);
	CHECK(fd >= 0, "create 64K mmap");
	if (fd < 0) return 1;
	struct stat st;
	CHECK(fstat(fd, &st) == 0 && st.st_size == (off_t)total, "fstat size %ld", (long)st.st_size);
	CHECK(st.st_blksize == (blksize_t)page, "st_blksize %ld", (long)st.st_blksize);
	CHECK(S_ISREG(st.st_mode), "a regular file (mode 0%o)", (unsigned)st.st_mode);
	CHECK(fcntl(fd, F_GETFD) == 0, "installed without close-on-exec");
	CHECK((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR, "open read-write");
	char buffer[4096] = { 0 };
	errno = 0;
	CHECK(read(fd, buffer, sizeof buffer) == -1 && errno == EINVAL, "read: EINVAL");
	errno = 0;
	CHECK(write(fd, buffer, sizeof buffer) == -1 && errno == EINVAL, "write: EINVAL");
	errno = 0;
	CHECK(mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0) == MAP_FAILED && errno == EINVAL, "MAP_PRIVATE: EINVAL");

	int plain = create(page, 0);
	CHECK(plain >= 0, "create without MMAP");
	errno = 0;
	CHECK(mmap(NULL, page, PROT_READ, MAP_PRIVATE, plain, 0) == MAP_FAILED && errno == ENODEV, "no MMAP, MAP_PRIVATE: ENODEV first");
	errno = 0;
	CHECK(mmap(NULL, page, PROT_READ, MAP_SHARED, plain, 0) == MAP_FAILED && errno == ENODEV, "no MMAP, MAP_SHARED: ENODEV");
	if (plain >= 0) close(plain);

	/* ---- mmap: private pages fault, conversions, faults past EOF ---- */
	char *mem = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(mem != MAP_FAILED, "MAP_SHARED");
	if (mem == MAP_FAILED) return 1;
	CHECK(faults(mem), "a private page raises SIGBUS");
	CHECK(set_attributes(fd, 0, total, 0, NULL) == 0, "convert all to shared");
	CHECK(!faults(mem) && !faults(mem + total - 1), "shared pages map");
	memset(mem, 0xab, total);
	CHECK(mem[page] == (char)0xab, "written through the mapping");
	CHECK(set_attributes(fd, page, page, KVM_MEMORY_ATTRIBUTE_PRIVATE, NULL) == 0, "page 1 to private");
	CHECK(faults(mem + page) && !faults(mem), "page 1 faults, page 0 does not");
	CHECK(set_attributes(fd, page, page, 0, NULL) == 0, "page 1 back to shared");
	CHECK(mem[page] == (char)0xab, "in-place conversion keeps contents");
	uint64_t error_offset = 0;
	errno = 0;
	CHECK(set_attributes(fd, 1, page, 0, NULL) == -1 && errno == EINVAL, "unaligned offset: EINVAL");
	errno = 0;
	CHECK(set_attributes(fd, 0, total + page, 0, NULL) == -1 && errno == EINVAL, "past the end: EINVAL");
	errno = 0;
	CHECK(set_attributes(fd, 0, page, 1, NULL) == -1 && errno == EINVAL, "unknown attribute: EINVAL");
	char *beyond = mmap(NULL, 2 * total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(beyond != MAP_FAILED, "map twice the size");
	if (beyond != MAP_FAILED) {
		CHECK(!faults(beyond + total - 1) && faults(beyond + total), "SIGBUS past EOF");
		munmap(beyond, 2 * total);
	}

	/* ---- GMEM_PIN_PAGES: a referenced page refuses to become private, error_offset set ---- */
	struct gmem_page_reference ref = { .offset = 2 * page, .size = page };
	CHECK(ioctl(fd, GMEM_PIN_PAGES, &ref) == 0, "GMEM_PIN_PAGES");
	errno = 0;
	CHECK(set_attributes(fd, 0, 4 * page, KVM_MEMORY_ATTRIBUTE_PRIVATE, &error_offset) == -1 && errno == EAGAIN, "pinned page: EAGAIN");
	CHECK(error_offset == 2 * page, "error_offset %lu", (unsigned long)error_offset);
	CHECK(ioctl(fd, GMEM_UNPIN_PAGES, &ref) == 0, "GMEM_UNPIN_PAGES");
	CHECK(set_attributes(fd, 0, 4 * page, KVM_MEMORY_ATTRIBUTE_PRIVATE, NULL) == 0, "unpinned: converts");
	CHECK(set_attributes(fd, 0, 4 * page, 0, NULL) == 0, "back to shared");

	/* ---- fallocate and punch hole ---- */
	CHECK(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, total) == 0, "fallocate the whole file");
	errno = 0;
	CHECK(fallocate(fd, FALLOC_FL_KEEP_SIZE, page - 1, page) == -1 && errno == EINVAL, "fallocate unaligned offset");
	CHECK(fallocate(fd, FALLOC_FL_KEEP_SIZE, total, page) == -1, "fallocate at the size fails");
	CHECK(fallocate(fd, FALLOC_FL_KEEP_SIZE, total + page, page) == -1, "fallocate past the size fails");
	CHECK(fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, total, page) == 0, "punch at the size");
	CHECK(fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, page, page - 1) == -1, "punch unaligned size fails");
	errno = 0;
	CHECK(fallocate(fd, FALLOC_FL_PUNCH_HOLE, page, page) == -1 && errno == EOPNOTSUPP, "punch without KEEP_SIZE: EOPNOTSUPP");
	CHECK(fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, page, page) == 0, "punch page 1");
	CHECK(mem[page] == 0 && mem[0] == (char)0xab, "a punched page reads zero");
	CHECK(fstat(fd, &st) == 0 && st.st_size == (off_t)total, "size unchanged");
	munmap(mem, total);

	/* ---- memslots on the guest_memfd: bound by the real KVM; the stand-in refuses ---- */
	struct kvm_userspace_memory_region2 region = { .slot = 0, .flags = KVM_MEM_GUEST_MEMFD, .guest_phys_addr = 0,
		.memory_size = total, .userspace_addr = 0, .guest_memfd_offset = 0, .guest_memfd = (uint32_t)fd };
	errno = 0;
	if (emulated) {
		CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &region) == -1 && errno == ENOTTY, "memslot on the stand-in: ENOTTY");
	} else if (no_guest_view) {
		CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &region) == -1 && errno == EINVAL, "memslot on a mount without guest view: EINVAL");
	} else {
		struct kvm_userspace_memory_region2 bad = region, before;
		bad.guest_memfd_offset = 1;
		CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &bad) == -1 && errno == EINVAL, "memslot: unaligned guest_memfd_offset EINVAL");
		bad = region; bad.guest_memfd_offset = page;
		CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &bad) == -1 && errno == EINVAL, "memslot: offset + size past the file EINVAL");
		bad = region; bad.guest_memfd_offset = ~0ULL & ~(uint64_t)(page - 1);
		CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &bad) == -1 && errno == EINVAL, "memslot: offset + size overflows EINVAL");
		bad = region; bad.flags |= KVM_MEM_LOG_DIRTY_PAGES;
		CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &bad) == -1 && errno == EINVAL, "memslot: guest_memfd with dirty logging EINVAL");
		bad = region; bad.memory_size = page + 1;
		CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &bad) == -1 && errno == EINVAL, "memslot: unaligned size EINVAL");
		before = region;
		CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &region) == 0, "memslot on the guest_memfd bound");
		CHECK(memcmp(&before, &region, sizeof region) == 0, "the caller's struct is left as it was");
		/* Divergences (docs/semantics.md): rules that need the set of bound slots are the real
		 * KVM's, which sees ordinary memslots. The kernel answers each of these EINVAL. */
		CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &region) == 0, "divergence: re-setting a guest_memfd slot succeeds");
		struct kvm_userspace_memory_region2 overlap = region;
		overlap.slot = 4; overlap.guest_phys_addr = 0x400000; overlap.memory_size = page;
		CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &overlap) == 0, "divergence: a second slot over a bound range succeeds");
		overlap.memory_size = 0;
		CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &overlap) == 0, "the overlapping slot deleted");
		int other_vm = ioctl(kvm, KVM_CREATE_VM, 0);
		CHECK(other_vm >= 0 && ioctl(other_vm, KVM_SET_USER_MEMORY_REGION2, &region) == 0, "divergence: another VM binds the guest_memfd");
		if (other_vm >= 0) close(other_vm);
		struct kvm_userspace_memory_region2 second = region;
		second.slot = 1; second.guest_phys_addr = 0x100000; second.memory_size = page; second.guest_memfd_offset = page;
		CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &second) == 0, "a second memslot on another range of the file");
		second.memory_size = 0;
		CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &second) == 0, "the second memslot deleted");
		region.memory_size = 0;
		CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &region) == 0, "memslot deleted");
		/* A memslot without KVM_MEM_GUEST_MEMFD goes to the real KVM unchanged. */
		void *anon = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		struct kvm_userspace_memory_region2 plain = { .slot = 2, .guest_phys_addr = 0x200000, .memory_size = page,
			.userspace_addr = (uint64_t)(uintptr_t)anon };
		CHECK(anon != MAP_FAILED && ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &plain) == 0, "plain memslot");
		plain.userspace_addr += 1;
		CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &plain) == -1 && errno == EINVAL, "plain memslot: the real KVM's EINVAL");
		/* A divergence (docs/semantics.md): a guest_memfd without MMAP cannot be bound under run. */
		int unmappable = create(page, 0);
		struct kvm_userspace_memory_region2 no_mmap = { .slot = 3, .flags = KVM_MEM_GUEST_MEMFD, .guest_phys_addr = 0x300000,
			.memory_size = page, .guest_memfd = (uint32_t)unmappable };
		errno = 0;
		CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &no_mmap) == -1 && errno == EINVAL, "memslot on a guest_memfd without MMAP: EINVAL under run");
		close(unmappable);
	}
	if (emulated) {
		errno = 0;
		CHECK(ioctl(vm, KVM_CREATE_VCPU, 0) == -1 && errno == ENOTTY, "KVM_CREATE_VCPU: ENOTTY");
	}

	/* ---- threads and children are supervised too ---- */
	void *result;
	pthread_t thread;
	CHECK(pthread_create(&thread, NULL, thread_create, NULL) == 0 && pthread_join(thread, &result) == 0 && (long)result >= 0,
	      "create from a second thread");
	if ((long)result >= 0) close((int)(long)result);
	pid_t child = fork();
	if (child == 0) {
		int child_fd = create(page, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
		char *p = child_fd >= 0 ? mmap(NULL, page, PROT_READ, MAP_PRIVATE, child_fd, 0) : NULL;
		_exit(child_fd >= 0 && p == MAP_FAILED && errno == EINVAL ? 0 : 1);
	}
	int status = 0;
	CHECK(child > 0 && waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "a forked child creates and is refused MAP_PRIVATE");

	close(fd);
	close(vm);
	close(kvm);
	printf("checks=%ld failures=%ld\n", checks, failures);
	return failures ? 1 : 0;
}
