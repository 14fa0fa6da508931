// gmem_oracle: runs one fixed list of cases against a file and prints one line per case,
// "GROUP/CASE: OUTCOME". The same binary drives either the kernel's guest_memfd or a gmemfs
// mount, so the two outputs can be compared line by line:
//
//   gmem_oracle kernel            fresh KVM_CREATE_GUEST_MEMFD files (needs /dev/kvm)
//   gmem_oracle gmemfs ROOT       fresh files created on the gmemfs mount ROOT (user.gmem.create)
//
// Lines starting with "# " describe the run ("# NAME: VALUE"): the kernel's release, machine and
// guest_memfd flags, and whether KVM_SET_MEMORY_ATTRIBUTES2 exists (in-place conversion; a
// kernel without it answers ENOTTY, as gmemfs --no-in-place does).
//
// Every case gets a fresh file of 4 pages (or the size it tests), so no case sees another's
// state. Outcomes: "ok", "ok=VALUE", "ERRNO-NAME", "SIGBUS"/"SIGSEGV" (a fault, caught in
// process), "killed=SIG"/"timeout" (a child that ran a populate case). Cases that may loop in
// the kernel run in a child with an alarm.
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "gmem_abi.h" /* the gmemfs interface: GMEM_XATTR_*, GUEST_MEMFD_FLAG_* */

#define KVMIO 0xAE
#define KVM_CREATE_VM _IO(KVMIO, 0x01)
#define KVM_CHECK_EXTENSION _IO(KVMIO, 0x03)
#define KVM_CAP_GUEST_MEMFD 234
#define KVM_CAP_GUEST_MEMFD_FLAGS 244
#define KVM_CAP_VM_TYPES 235
#define KVM_X86_SW_PROTECTED_VM 1
struct kvm_create_guest_memfd { uint64_t size, flags, reserved[6]; };
#define KVM_CREATE_GUEST_MEMFD _IOWR(KVMIO, 0xd4, struct kvm_create_guest_memfd)
#define FLAG_MMAP GUEST_MEMFD_FLAG_MMAP
#define FLAG_INIT_SHARED GUEST_MEMFD_FLAG_INIT_SHARED

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif

static long P;                 // page size
static int vm_fd = -1;         // kernel mode
static int private_vm_fd = -1; // kernel mode: a VM with private memory (conversions), if any
static const char *root;       // gmemfs mode
static int serial;
#define MAX_FDS 1024
static char names[MAX_FDS][4096];   // gmemfs mode: the path of each open file made by make()

static const char *errname(int e) {
	const char *n = strerrorname_np(e);
	return n ? n : "E?";
}

static void out(const char *group, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void out(const char *group, const char *name, const char *fmt, ...) {
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	printf("%s/%s: %s\n", group, name, buf);
	fflush(stdout);
}

/// "ok" / "ok=N" / errno name for a syscall's return value.
static void rc(const char *group, const char *name, long r, int show_value) {
	if (r < 0) out(group, name, "%s", errname(errno));
	else if (show_value) out(group, name, "ok=%ld", r);
	else out(group, name, "ok");
}

static int make_on(int vm, uint64_t size, uint64_t flags);

/// A fresh file; returns the fd or -errno.
static int make(uint64_t size, uint64_t flags) { return make_on(vm_fd, size, flags); }

/// A fresh file of the VM `vm` (kernel mode) or of the mount (gmemfs mode).
static int make_on(int vm, uint64_t size, uint64_t flags) {
	if (vm >= 0) {
		struct kvm_create_guest_memfd a = { .size = size, .flags = flags };
		int fd = ioctl(vm, KVM_CREATE_GUEST_MEMFD, &a);
		return fd < 0 ? -errno : fd;
	}
	char name[64], value[192], path[4096];
	snprintf(name, sizeof name, "oracle%d-%d", getpid(), ++serial);
	char fl[64] = "";
	if (flags & ~(FLAG_MMAP | FLAG_INIT_SHARED)) snprintf(fl, sizeof fl, " 0x%llx", (unsigned long long)flags);
	else if (flags) snprintf(fl, sizeof fl, " %s%s%s", flags & FLAG_MMAP ? "mmap" : "",
	                         flags == 3 ? "," : "", flags & FLAG_INIT_SHARED ? "init-shared" : "");
	snprintf(value, sizeof value, "%s %llu%s", name, (unsigned long long)size, fl);
	if (setxattr(root, GMEM_XATTR_CREATE, value, strlen(value), 0) < 0) return -errno;
	snprintf(path, sizeof path, "%s/%s", root, name);
	int fd = open(path, O_RDWR);
	int e = errno;
	if (fd < 0) { unlink(path); return -e; }
	if (fd < MAX_FDS) snprintf(names[fd], sizeof names[fd], "%s", path);
	return fd;
}

/// Closes a file made by make(); on gmemfs also removes its name (the memory goes with the
/// last close, as a guest_memfd's does).
static void done(int fd) {
	close(fd);
	if (root && fd < MAX_FDS && names[fd][0]) { unlink(names[fd]); names[fd][0] = 0; }
}

static int fresh(uint64_t flags) {
	int fd = make(4 * P, flags);
	if (fd < 0) { fprintf(stderr, "cannot create a file: %s\n", errname(-fd)); exit(2); }
	return fd;
}

// MARK: - Faults, caught in process

static sigjmp_buf jump;
static volatile int caught;
static void on_fault(int sig) { caught = sig; siglongjmp(jump, 1); }

/// Reads (write = 0) or writes one byte at p; returns "ok=XX"-style outcome text.
static const char *touch(volatile unsigned char *p, int write, int value, char *buf) {
	caught = 0;
	if (sigsetjmp(jump, 1) == 0) {
		if (write) { *p = (unsigned char)value; strcpy(buf, "ok"); }
		else snprintf(buf, 32, "ok=%02x", *p);
		return buf;
	}
	return caught == SIGBUS ? "SIGBUS" : "SIGSEGV";
}

// MARK: - Groups

static void create_cases(void) {
	const char *g = "create";
	struct { const char *name; uint64_t size; } sizes[] = {
		{"size-0", 0}, {"size-1", 1}, {"size-page-1", 4095}, {"size-page", 4096}, {"size-page+1", 4097},
		{"size-1T", 1ULL << 40}, {"size-64T", 1ULL << 46}, {"size-64T+page", (1ULL << 46) + 4096},
		{"size-2^62", 1ULL << 62}, {"size-2^63-page", (1ULL << 63) - 4096}, {"size-2^63", 1ULL << 63},
		{"size-max-page", ~4095ULL},
	};
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		int fd = make(sizes[i].size, 0);
		if (fd >= 0) { struct stat st; fstat(fd, &st); out(g, sizes[i].name, "ok size=%lld", (long long)st.st_size); done(fd); }
		else out(g, sizes[i].name, "%s", errname(-fd));
	}
	for (int bit = 0; bit < 64; bit++) {
		if (bit > 4 && bit != 63) continue;
		char name[32]; snprintf(name, sizeof name, "flag-bit%d", bit);
		int fd = make(P, 1ULL << bit);
		if (fd >= 0) { out(g, name, "ok"); done(fd); } else out(g, name, "%s", errname(-fd));
	}
	int fd = make(P, 3);
	if (fd >= 0) { out(g, "flags-mmap+init-shared", "ok"); done(fd); } else out(g, "flags-mmap+init-shared", "%s", errname(-fd));
	int a = make(P, 0), b = make(2 * P, 0);
	struct stat sa, sb;
	fstat(a, &sa); fstat(b, &sb);
	out(g, "two-files", "sizes=%lld,%lld distinct-inodes=%d", (long long)sa.st_size, (long long)sb.st_size, sa.st_ino != sb.st_ino);
	done(a); done(b);
}

static void stat_cases(uint64_t flags) {
	const char *g = "stat";
	int fd = fresh(flags);
	struct stat st;
	fstat(fd, &st);
	out(g, "size", "%lld", (long long)st.st_size);
	out(g, "blksize", "%ld", (long)st.st_blksize);
	out(g, "blocks-fresh", "%lld", (long long)st.st_blocks);
	out(g, "type", "%s", S_ISREG(st.st_mode) ? "regular" : "other");
	out(g, "mode", "%o", st.st_mode & 07777);
	out(g, "nlink", "%ld", (long)st.st_nlink);
	fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 2 * P);
	fstat(fd, &st);
	out(g, "blocks-after-allocate-2-pages", "%lld", (long long)st.st_blocks);
	int fl = fcntl(fd, F_GETFL);
	out(g, "open-flags", "%s%s", (fl & O_ACCMODE) == O_RDWR ? "O_RDWR" : "other", fl & O_LARGEFILE ? "|O_LARGEFILE" : "");
	done(fd);
}

static void setattr_cases(uint64_t flags) {
	const char *g = "setattr";
	struct { const char *name; int what; long arg; } cases[] = {
		{"ftruncate-0", 0, 0}, {"ftruncate-same", 0, -1}, {"ftruncate-grow", 0, -2}, {"ftruncate-negative", 0, -3},
		{"fchmod-0600", 1, 0600}, {"fchmod-0644", 1, 0644}, {"fchown-self", 2, 0}, {"fchown-none", 2, -1},
		{"futimens-now", 3, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		int fd = fresh(flags);
		long r = 0;
		switch (cases[i].what) {
		case 0: r = ftruncate(fd, cases[i].arg == -1 ? 4 * P : cases[i].arg == -2 ? 8 * P : cases[i].arg == -3 ? -1 : 0); break;
		case 1: r = fchmod(fd, (mode_t)cases[i].arg); break;
		case 2: r = cases[i].arg < 0 ? fchown(fd, (uid_t)-1, (gid_t)-1) : fchown(fd, getuid(), getgid()); break;
		case 3: r = futimens(fd, NULL); break;
		}
		rc(g, cases[i].name, r, 0);
		if (cases[i].what == 0) { struct stat st; fstat(fd, &st); out(g, cases[i].name, "size-after=%lld", (long long)st.st_size); }
		done(fd);
	}
}

static void sync_cases(uint64_t flags) {
	const char *g = "sync";
	int fd = fresh(flags);
	rc(g, "fsync", fsync(fd), 0);
	rc(g, "fdatasync", fdatasync(fd), 0);
	rc(g, "sync_file_range", sync_file_range(fd, 0, P, SYNC_FILE_RANGE_WRITE), 0);
	done(fd);
}

static void seek_cases(uint64_t flags) {
	const char *g = "lseek";
	struct { const char *name; off_t off; int whence; } cases[] = {
		{"set-0", 0, SEEK_SET}, {"set-page", 4096, SEEK_SET}, {"set-negative", -1, SEEK_SET}, {"cur-0", 0, SEEK_CUR},
		{"end-0", 0, SEEK_END}, {"data-0", 0, SEEK_DATA}, {"hole-0", 0, SEEK_HOLE}, {"data-past-eof", 5 * 4096, SEEK_DATA},
		{"hole-past-eof", 5 * 4096, SEEK_HOLE}, {"data-negative", -1, SEEK_DATA}, {"whence-9", 0, 9},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		int fd = fresh(flags);
		rc(g, cases[i].name, lseek(fd, cases[i].off, cases[i].whence), 1);
		done(fd);
	}
	// SEEK_DATA / SEEK_HOLE after allocating page 1.
	int fd = fresh(flags);
	fallocate(fd, FALLOC_FL_KEEP_SIZE, P, P);
	rc(g, "data-0-after-allocate-page-1", lseek(fd, 0, SEEK_DATA), 1);
	rc(g, "hole-page-1-after-allocate-page-1", lseek(fd, P, SEEK_HOLE), 1);
	done(fd);
}

static void io_cases(uint64_t flags) {
	const char *g = "io";
	char buf[64] = {0};
	struct iovec iov = { buf, sizeof buf };
	struct { const char *name; int what; } cases[] = {
		{"read-64", 0}, {"write-64", 1}, {"pread-64-at-0", 2}, {"pwrite-64-at-0", 3}, {"pread-64-at-eof", 4},
		{"pwrite-64-at-eof", 5}, {"readv-64", 6}, {"writev-64", 7}, {"read-0", 8}, {"pread-at-negative", 9},
	};
	// A read of a page that a fault already brought in (on files that can be mapped).
	if (flags & FLAG_MMAP) {
		int fd = fresh(flags);
		unsigned char *m = mmap(NULL, P, PROT_READ, MAP_SHARED, fd, 0);
		char b[32];
		touch(m, 0, 0, b);
		rc(g, "read-64-after-fault", read(fd, buf, sizeof buf), 1);
		munmap(m, P);
		done(fd);
	}
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		int fd = fresh(flags);
		long r = 0;
		switch (cases[i].what) {
		case 0: r = read(fd, buf, sizeof buf); break;
		case 1: r = write(fd, buf, sizeof buf); break;
		case 2: r = pread(fd, buf, sizeof buf, 0); break;
		case 3: r = pwrite(fd, buf, sizeof buf, 0); break;
		case 4: r = pread(fd, buf, sizeof buf, 4 * P); break;
		case 5: r = pwrite(fd, buf, sizeof buf, 4 * P); break;
		case 6: r = readv(fd, &iov, 1); break;
		case 7: r = writev(fd, &iov, 1); break;
		case 8: r = read(fd, buf, 0); break;
		case 9: r = pread(fd, buf, sizeof buf, -4096); break;
		}
		rc(g, cases[i].name, r, 1);
		done(fd);
	}
}

static void fallocate_cases(uint64_t flags) {
	const char *g = "fallocate";
	struct { const char *name; int mode; } modes[] = {
		{"none", 0}, {"keep", FALLOC_FL_KEEP_SIZE}, {"punch", FALLOC_FL_PUNCH_HOLE},
		{"punch+keep", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE}, {"zero", FALLOC_FL_ZERO_RANGE},
		{"zero+keep", FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE}, {"collapse", FALLOC_FL_COLLAPSE_RANGE},
		{"insert", FALLOC_FL_INSERT_RANGE}, {"unshare+keep", FALLOC_FL_UNSHARE_RANGE | FALLOC_FL_KEEP_SIZE},
		{"keep+bit7", FALLOC_FL_KEEP_SIZE | 0x80},
	};
	long long p = P;
	struct { const char *name; long long off, len; } ranges[] = {
		{"0+p", 0, p}, {"0+4p", 0, 4 * p}, {"p-1+p", p - 1, p}, {"p+p-1", p, p - 1}, {"p+1", p, 1},
		{"3p+2p", 3 * p, 2 * p}, {"4p+p", 4 * p, p}, {"5p+p", 5 * p, p}, {"0+0", 0, 0}, {"0+-p", 0, -p},
		{"-p+p", -p, p}, {"max-p+2p", 0x7fffffffffffffffLL - p + 1, 2 * p},
	};
	for (size_t m = 0; m < sizeof modes / sizeof *modes; m++)
		for (size_t r = 0; r < sizeof ranges / sizeof *ranges; r++) {
			int fd = fresh(flags);
			char name[64];
			snprintf(name, sizeof name, "%s/%s", modes[m].name, ranges[r].name);
			rc(g, name, fallocate(fd, modes[m].mode, ranges[r].off, ranges[r].len), 0);
			done(fd);
		}
	// The selftest's sequence on one file.
	int fd = fresh(flags);
	long long seq[][3] = {
		{FALLOC_FL_KEEP_SIZE, 0, 4 * p}, {FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, p - 1, p}, {FALLOC_FL_KEEP_SIZE, 4 * p, p},
		{FALLOC_FL_KEEP_SIZE, 5 * p, p}, {FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 4 * p, p},
		{FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 5 * p, p}, {FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, p, p - 1},
		{FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, p, p}, {FALLOC_FL_KEEP_SIZE, p, p},
	};
	for (size_t i = 0; i < sizeof seq / sizeof *seq; i++) {
		char name[32]; snprintf(name, sizeof name, "selftest-step%zu", i);
		rc(g, name, fallocate(fd, (int)seq[i][0], seq[i][1], seq[i][2]), 0);
	}
	done(fd);
}

static void lock_cases(uint64_t flags) {
	const char *g = "lock";
	int fd = fresh(flags);
	rc(g, "flock-ex", flock(fd, LOCK_EX | LOCK_NB), 0);
	rc(g, "flock-un", flock(fd, LOCK_UN), 0);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = P };
	rc(g, "fcntl-setlk-write", fcntl(fd, F_SETLK, &fl), 0);
	fl.l_type = F_UNLCK;
	rc(g, "fcntl-setlk-unlock", fcntl(fd, F_SETLK, &fl), 0);
	struct flock ofd = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	rc(g, "fcntl-ofd-setlk-read", fcntl(fd, F_OFD_SETLK, &ofd), 0);
	rc(g, "setfl-o_direct", fcntl(fd, F_SETFL, O_DIRECT), 0);
	rc(g, "setfl-o_append", fcntl(fd, F_SETFL, O_APPEND), 0);
	done(fd);
}

static void mmap_cases(uint64_t flags) {
	const char *g = "mmap";
	struct { const char *name; size_t len; int prot, type; off_t off; } cases[] = {
		{"shared-r", 4, PROT_READ, MAP_SHARED, 0}, {"shared-rw", 4, PROT_READ | PROT_WRITE, MAP_SHARED, 0},
		{"shared-rx", 4, PROT_READ | PROT_EXEC, MAP_SHARED, 0}, {"shared-none", 4, PROT_NONE, MAP_SHARED, 0},
		{"shared-validate-rw", 4, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE, 0},
		{"private-r", 4, PROT_READ, MAP_PRIVATE, 0}, {"private-rw", 4, PROT_READ | PROT_WRITE, MAP_PRIVATE, 0},
		{"shared-rw-offset-p", 1, PROT_READ | PROT_WRITE, MAP_SHARED, 4096},
		{"shared-rw-offset-1", 1, PROT_READ | PROT_WRITE, MAP_SHARED, 1},
		{"shared-rw-16p", 16, PROT_READ | PROT_WRITE, MAP_SHARED, 0},
		{"shared-rw-offset-eof", 1, PROT_READ | PROT_WRITE, MAP_SHARED, 4 * 4096},
		{"shared-rw-offset-8p", 1, PROT_READ | PROT_WRITE, MAP_SHARED, 8 * 4096},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		int fd = fresh(flags);
		void *m = mmap(NULL, cases[i].len * P, cases[i].prot, cases[i].type, fd, cases[i].off);
		if (m == MAP_FAILED) out(g, cases[i].name, "%s", errname(errno));
		else { out(g, cases[i].name, "ok"); munmap(m, cases[i].len * P); }
		done(fd);
	}
	// A read-only fd.
	int fd = fresh(flags);
	char path[64]; snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	int ro = open(path, O_RDONLY);
	if (ro < 0) { out(g, "reopen-readonly", "%s", errname(errno)); out(g, "readonly-fd-shared-rw", "not-opened"); }
	else {
		out(g, "reopen-readonly", "ok");
		void *m = mmap(NULL, P, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0);
		if (m == MAP_FAILED) out(g, "readonly-fd-shared-rw", "%s", errname(errno));
		else { out(g, "readonly-fd-shared-rw", "ok"); munmap(m, P); }
		close(ro);
	}
	done(fd);
}

/// Faults, mprotect, mremap, madvise, msync: only for files that can be mapped.
static void fault_cases(uint64_t flags) {
	const char *g = "fault";
	char b[32];
	int fd = fresh(flags);
	unsigned char *m = mmap(NULL, 8 * P, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) { out(g, "map", "%s", errname(errno)); done(fd); return; }
	for (int pg = 0; pg < 5; pg++) {
		char name[32];
		snprintf(name, sizeof name, "read-page%d", pg); out(g, name, "%s", touch(m + pg * P, 0, 0, b));
		snprintf(name, sizeof name, "write-page%d", pg); out(g, name, "%s", touch(m + pg * P + 1, 1, 0xa0 + pg, b));
		snprintf(name, sizeof name, "reread-page%d", pg); out(g, name, "%s", touch(m + pg * P + 1, 0, 0, b));
	}
	// Contents through a second mapping, and after munmap/mmap.
	munmap(m, 8 * P);
	m = mmap(NULL, 4 * P, PROT_READ, MAP_SHARED, fd, 0);
	out(g, "remap-read-page0", "%s", touch(m + 1, 0, 0, b));
	out(g, "remap-read-page3", "%s", touch(m + 3 * P + 1, 0, 0, b));
	munmap(m, 4 * P);
	// Another process sees the data.
	pid_t child = fork();
	if (child == 0) {
		unsigned char *c = mmap(NULL, P, PROT_READ, MAP_SHARED, fd, 0);
		struct sigaction sa = { .sa_handler = on_fault };
		sigaction(SIGBUS, &sa, NULL);
		char cb[32];
		printf("%s/child-read-page0: %s\n", g, touch(c + 1, 0, 0, cb));
		fflush(stdout);
		_exit(0);
	}
	int status;
	waitpid(child, &status, 0);
	// Punch page 0: it reads back zero.
	m = mmap(NULL, 4 * P, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	touch(m + 1, 0, 0, b);
	rc(g, "punch-page0", fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0, P), 0);
	out(g, "after-punch-read-page0", "%s", touch(m + 1, 0, 0, b));
	out(g, "after-punch-read-page1", "%s", touch(m + P + 1, 0, 0, b));
	rc(g, "msync-sync", msync(m, P, MS_SYNC), 0);
	rc(g, "msync-async", msync(m, P, MS_ASYNC), 0);
	rc(g, "msync-invalidate", msync(m, P, MS_INVALIDATE), 0);
	rc(g, "mprotect-r", mprotect(m, P, PROT_READ), 0);
	rc(g, "mprotect-rx", mprotect(m, P, PROT_READ | PROT_EXEC), 0);
	rc(g, "mprotect-rw", mprotect(m, P, PROT_READ | PROT_WRITE), 0);
	struct { const char *name; int advice; } adv[] = {
		{"madvise-dontneed", MADV_DONTNEED}, {"madvise-willneed", MADV_WILLNEED}, {"madvise-remove", MADV_REMOVE},
		{"madvise-hugepage", MADV_HUGEPAGE}, {"madvise-collapse", MADV_COLLAPSE}, {"madvise-cold", MADV_COLD},
		{"madvise-pageout", MADV_PAGEOUT}, {"madvise-random", MADV_RANDOM}, {"madvise-dontfork", MADV_DONTFORK},
	};
	for (size_t i = 0; i < sizeof adv / sizeof *adv; i++) rc(g, adv[i].name, madvise(m, 4 * P, adv[i].advice), 0);
	out(g, "after-madvise-read-page1", "%s", touch(m + P + 1, 0, 0, b));
	void *grown = mremap(m, 4 * P, 8 * P, MREMAP_MAYMOVE);
	if (grown == MAP_FAILED) {
		out(g, "mremap-grow", "%s", errname(errno));
		out(g, "mremap-read-page1", "not-mapped");
		out(g, "mremap-read-page5", "not-mapped");
		munmap(m, 4 * P);
	}
	else {
		out(g, "mremap-grow", "ok");
		out(g, "mremap-read-page1", "%s", touch((unsigned char *)grown + P + 1, 0, 0, b));
		out(g, "mremap-read-page5", "%s", touch((unsigned char *)grown + 5 * P, 0, 0, b));
		munmap(grown, 8 * P);
	}
	done(fd);
}

/// Calls that fault pages in through the kernel (get_user_pages): each in a child with an alarm,
/// since a fault that the kernel retries forever would otherwise hang the oracle.
static void populate_cases(uint64_t flags) {
	const char *g = "populate";
	struct { const char *name; int what; } cases[] = {
		{"madvise-populate-read", 0}, {"madvise-populate-write", 1}, {"mmap-populate", 2}, {"mmap-locked", 3},
		{"mlock", 4}, {"mlock2-onfault", 5}, {"process_vm_readv", 6}, {"pread-into-mapping", 7},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		int fd = fresh(flags);
		int pipefd[2];
		if (pipe(pipefd) < 0) exit(2);
		pid_t child = fork();
		if (child == 0) {
			alarm(5);
			long r = 0;
			int type = MAP_SHARED | (cases[i].what == 2 ? MAP_POPULATE : cases[i].what == 3 ? MAP_LOCKED : 0);
			unsigned char *m = mmap(NULL, 4 * P, PROT_READ | PROT_WRITE, type, fd, 0);
			if (m == MAP_FAILED) r = -1;
			else switch (cases[i].what) {
			case 0: r = madvise(m, 4 * P, MADV_POPULATE_READ); break;
			case 1: r = madvise(m, 4 * P, MADV_POPULATE_WRITE); break;
			case 4: r = mlock(m, 4 * P); break;
			case 5: r = syscall(SYS_mlock2, m, 4 * P, MLOCK_ONFAULT); break;
			case 6: {
				char buf[4096];
				struct iovec local = { buf, sizeof buf }, remote = { m, sizeof buf };
				r = process_vm_readv(getppid() == 0 ? getpid() : getpid(), &local, 1, &remote, 1, 0);
				break;
			}
			case 7: {
				// O_DIRECT-like: a read into the mapping from another file goes through GUP.
				int z = open("/dev/zero", O_RDONLY);
				r = read(z, m, P);
				close(z);
				break;
			}
			}
			char msg[64];
			int n = r < 0 ? snprintf(msg, sizeof msg, "%s", errname(errno)) : snprintf(msg, sizeof msg, "ok");
			if (write(pipefd[1], msg, (size_t)n) < 0) _exit(3);
			_exit(0);
		}
		close(pipefd[1]);
		char msg[64] = {0};
		ssize_t n = read(pipefd[0], msg, sizeof msg - 1);
		close(pipefd[0]);
		int status;
		waitpid(child, &status, 0);
		if (WIFSIGNALED(status)) out(g, cases[i].name, WTERMSIG(status) == SIGALRM ? "timeout" : "killed=%s", sigabbrev_np(WTERMSIG(status)));
		else out(g, cases[i].name, "%s", n > 0 ? msg : "no-answer");
		done(fd);
	}
}


/// KVM_SET_MEMORY_ATTRIBUTES2 on the file itself: the validation order, the early return, what
/// is copied back (error_offset is printed after every call: the kernel copies the struct back
/// only for failures that name a page, so an input error_offset survives success and EINVAL),
/// and the effect on faults. Kernel mode uses a VM with private memory when there is one (the
/// ioctl is EINVAL on a VM without it).
static void convert_cases(uint64_t flags) {
	const char *g = "convert";
	const uint64_t PRIV = KVM_MEMORY_ATTRIBUTE_PRIVATE, p = (uint64_t)P;
	struct { const char *name; uint64_t offset, size, attributes, flags, reserved0, error_offset; } cases[] = {
		{"to-private-0+p", 0, p, PRIV, 0, 0, 0}, {"to-shared-0+p", 0, p, 0, 0, 0, 0},
		{"to-private-0+4p", 0, 4 * p, PRIV, 0, 0, 0}, {"to-shared-0+4p", 0, 4 * p, 0, 0, 0, 0},
		{"to-private-error-offset-in", 0, p, PRIV, 0, 0, 0x1234}, {"to-shared-error-offset-in", 0, p, 0, 0, 0, 0x1234},
		{"flags-1", 0, p, 0, 1, 0, 0x1234}, {"reserved0-1", 0, p, 0, 0, 1, 0x1234},
		{"attribute-bit0", 0, p, 1, 0, 0, 0}, {"attribute-bit63", 0, p, 1ULL << 63, 0, 0, 0},
		{"size-0", 0, 0, PRIV, 0, 0, 0}, {"overflow", ~(p - 1), 2 * p, PRIV, 0, 0, 0},
		{"unaligned-offset", 1, p, PRIV, 0, 0, 0}, {"unaligned-size", 0, p + 1, PRIV, 0, 0, 0},
		{"at-eof", 4 * p, p, PRIV, 0, 0, 0}, {"crossing-eof", 3 * p, 2 * p, PRIV, 0, 0, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		int fd = make_on(private_vm_fd >= 0 ? private_vm_fd : vm_fd, 4 * P, flags);
		if (fd < 0) { out(g, cases[i].name, "create %s", errname(-fd)); continue; }
		struct kvm_memory_attributes2 a;
		memset(&a, 0, sizeof a);
		a.offset = cases[i].offset; a.size = cases[i].size; a.attributes = cases[i].attributes;
		a.flags = cases[i].flags; a.reserved[0] = cases[i].reserved0; a.error_offset = cases[i].error_offset;
		long r = ioctl(fd, KVM_SET_MEMORY_ATTRIBUTES2, &a);
		const char *e = r < 0 ? errname(errno) : "ok";
		out(g, cases[i].name, "%s error_offset=0x%llx", e, (unsigned long long)a.error_offset);
		// The page's state afterwards, through a mapping (files that can be mapped).
		if (flags & FLAG_MMAP) {
			unsigned char *m = mmap(NULL, P, PROT_READ, MAP_SHARED, fd, 0);
			char b[32];
			if (m != MAP_FAILED) { out(g, cases[i].name, "read-page0 %s", touch(m, 0, 0, b)); munmap(m, P); }
		}
		done(fd);
	}
	// Twice the same request: the second returns at once (the range already holds it).
	int fd = make_on(private_vm_fd >= 0 ? private_vm_fd : vm_fd, 4 * P, flags);
	if (fd >= 0) {
		for (int round = 0; round < 2; round++) {
			struct kvm_memory_attributes2 a;
			memset(&a, 0, sizeof a);
			a.size = 2 * p; a.attributes = PRIV;
			rc(g, round ? "to-private-again" : "to-private-first", ioctl(fd, KVM_SET_MEMORY_ATTRIBUTES2, &a), 1);
		}
		done(fd);
	}
}

/// Whether KVM_SET_MEMORY_ATTRIBUTES2 exists: a kernel without in-place conversion answers
/// ENOTTY before it reads the argument; any other answer (EINVAL for flags = 1) means it does.
static const char *in_place_conversion(void) {
	int fd = make_on(private_vm_fd >= 0 ? private_vm_fd : vm_fd, P, 0);
	if (fd < 0) return "unknown";
	struct kvm_memory_attributes2 a;
	memset(&a, 0, sizeof a);
	a.size = (uint64_t)P; a.flags = 1;
	int r = ioctl(fd, KVM_SET_MEMORY_ATTRIBUTES2, &a), e = errno;
	done(fd);
	return r < 0 && e == ENOTTY ? "no" : "yes";
}

int main(int argc, char **argv) {
	P = sysconf(_SC_PAGESIZE);
	if (argc == 2 && strcmp(argv[1], "kernel") == 0) {
		int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
		if (kvm < 0) { printf("SKIP: /dev/kvm: %s\n", strerror(errno)); return 0; }
		if (ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD) <= 0) { printf("SKIP: no KVM_CAP_GUEST_MEMFD\n"); return 0; }
		if ((ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS) & 3) != 3) { printf("SKIP: guest_memfd lacks MMAP|INIT_SHARED\n"); return 0; }
		vm_fd = ioctl(kvm, KVM_CREATE_VM, 0);
		if (vm_fd < 0) { printf("SKIP: KVM_CREATE_VM: %s\n", strerror(errno)); return 0; }
		int types = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES);
		if (types > 0 && (types & (1 << KVM_X86_SW_PROTECTED_VM))) private_vm_fd = ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
		struct utsname u;
		uname(&u);
		printf("# kernel-release: %s\n# machine: %s\n", u.release, u.machine);
		printf("# guest-memfd-flags: 0x%x\n", ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS));
		printf("# private-memory-vm: %s\n", private_vm_fd >= 0 ? "sw-protected" : "none");
	} else if (argc == 3 && strcmp(argv[1], "gmemfs") == 0) {
		root = argv[2];
	} else {
		fprintf(stderr, "usage: gmem_oracle kernel | gmem_oracle gmemfs MOUNTROOT\n");
		return 2;
	}
	// A test runner may start us with signals blocked (Foundation's Process passes on the
	// spawning thread's mask); the alarms below must fire.
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGALRM, SIG_DFL);
	struct sigaction sa = { .sa_handler = on_fault };
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);

	printf("# in-place-conversion: %s\n", in_place_conversion());
	create_cases();
	uint64_t variants[] = { 0, FLAG_MMAP, FLAG_MMAP | FLAG_INIT_SHARED };
	const char *vnames[] = { "flags=0", "flags=mmap", "flags=mmap,init-shared" };
	for (int v = 0; v < 3; v++) {
		printf("== %s\n", vnames[v]);
		stat_cases(variants[v]);
		setattr_cases(variants[v]);
		sync_cases(variants[v]);
		seek_cases(variants[v]);
		io_cases(variants[v]);
		fallocate_cases(variants[v]);
		lock_cases(variants[v]);
		mmap_cases(variants[v]);
		fault_cases(variants[v]);
		populate_cases(variants[v]);
		convert_cases(variants[v]);
	}
	return 0;
}
