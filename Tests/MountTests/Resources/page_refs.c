/*
 * page_refs.c: page references (GMEM_PIN_PAGES / GMEM_UNPIN_PAGES) and injected faults, driven
 * from C with only the documented uAPI (docs/xattr-interface.md). Built and run by
 * Tests/MountTests/PageReferenceTests.swift.
 *
 * usage: page_refs abi FILE           FILE: 64 KiB, mmap,init-shared, fresh. Prints "ok ..." or
 *                                     "FAIL ..." per check; exit status = number of failures.
 *        page_refs hold FILE OFF SIZE  pins the range, prints "pinned", then sleeps until killed.
 *        page_refs fork FILE           pins page 0, forks; the parent closes its fd and exits 0,
 *                                     the child (still holding the shared open file) sleeps
 *                                     until killed. Prints the child's pid.
 */
#define _GNU_SOURCE /* strerrorname_np */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/types.h>
#include <sys/ioctl.h>
#include <sys/xattr.h>

/* The uAPI: names, numbers and structs from gmem_abi.h (compiled with -I). */
#include "gmem_abi.h"

/* The header writes the numbers out; they must be the _IOW/_IOWR expansions the docs give. */
_Static_assert(GMEM_PIN_PAGES == _IOW('G', 0x01, struct gmem_page_reference), "GMEM_PIN_PAGES");
_Static_assert(GMEM_UNPIN_PAGES == _IOW('G', 0x02, struct gmem_page_reference), "GMEM_UNPIN_PAGES");
_Static_assert(GMEM_PIN_PAGES == 0x40404701 && GMEM_UNPIN_PAGES == 0x40404702, "numbers");

#define P 4096ULL
#define FILE_SIZE (16 * P)
#define PRIV KVM_MEMORY_ATTRIBUTE_PRIVATE

static int failures;
static const char *path;

static void check(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static void check(int cond, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("%s ", cond ? "ok" : "FAIL");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	if (!cond)
		failures++;
}

static const char *en(int e) { return e ? (strerrorname_np(e) ? strerrorname_np(e) : "?") : "0"; }

/* Pin or unpin; returns 0 or errno. */
static int pin_req(int fd, unsigned long cmd, struct gmem_page_reference r)
{
	return ioctl(fd, cmd, &r) == 0 ? 0 : errno;
}
static int pin(int fd, __u64 off, __u64 size) { return pin_req(fd, GMEM_PIN_PAGES, (struct gmem_page_reference){ off, size, 0, {0} }); }
static int unpin(int fd, __u64 off, __u64 size) { return pin_req(fd, GMEM_UNPIN_PAGES, (struct gmem_page_reference){ off, size, 0, {0} }); }

/* Converts with the ioctl; returns 0 or errno, *a holds what came back. */
static int convert(int fd, struct kvm_memory_attributes2 *a)
{
	return ioctl(fd, KVM_SET_MEMORY_ATTRIBUTES2, a) == 0 ? 0 : errno;
}
static struct kvm_memory_attributes2 args(__u64 off, __u64 size, __u64 attrs)
{
	struct kvm_memory_attributes2 a;
	memset(&a, 0, sizeof(a));
	a.offset = off; a.size = size; a.attributes = attrs;
	a.error_offset = 0x5a5a; /* input error_offset is ignored; a failure overwrites it */
	return a;
}

/* Expects a failure with errno `want` and error_offset `off`, the rest of the struct unchanged. */
static void expect_refusal(int fd, __u64 o, __u64 s, __u64 attrs, int want, __u64 off, const char *what)
{
	struct kvm_memory_attributes2 a = args(o, s, attrs), b = a;
	int r = convert(fd, &a);
	b.error_offset = off;
	check(r == want && memcmp(&a, &b, sizeof(a)) == 0, "%s -> %s, error_offset 0x%llx (got %s, 0x%llx)",
	      what, en(want), (unsigned long long)off, en(r), (unsigned long long)a.error_offset);
}
static void expect_success(int fd, __u64 o, __u64 s, __u64 attrs, const char *what)
{
	struct kvm_memory_attributes2 a = args(o, s, attrs), b = a;
	int r = convert(fd, &a);
	check(r == 0 && memcmp(&a, &b, sizeof(a)) == 0, "%s -> 0 (got %s)", what, en(r));
}

static char value[4096];
static const char *xattr(const char *name)
{
	ssize_t n = getxattr(path, name, value, sizeof(value) - 1);
	value[n < 0 ? 0 : n] = 0;
	return value;
}
/* A number from user.gmem.stats. */
static long long stat_of(const char *key)
{
	const char *s = xattr(GMEM_XATTR_STATS);
	size_t k = strlen(key);
	for (const char *l = s; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, key, k) == 0 && l[k] == '=')
			return atoll(l + k + 1);
	return -1;
}
static int set(const char *name, const char *v) { return setxattr(path, name, v, strlen(v), 0) == 0 ? 0 : errno; }

static int abi(void)
{
	int fd = open(path, O_RDWR), ro = open(path, O_RDONLY);
	if (fd < 0 || ro < 0) { perror("open"); return 100; }
	const char *all_shared = "0-10000 shared\n";

	/* Bad pin requests: EINVAL, nothing held. */
	struct { struct gmem_page_reference r; const char *what; } bad[] = {
		{ { 0, P, 1, {0} }, "flags = 1" },
		{ { 0, P, 1ULL << 63, {0} }, "flags = 1<<63" },
		{ { 0, P, 0, {1, 0, 0, 0, 0} }, "reserved[0] != 0" },
		{ { 0, P, 0, {0, 0, 0, 0, 9} }, "reserved[4] != 0" },
		{ { 0, 0, 0, {0} }, "size 0" },
		{ { 1, P, 0, {0} }, "unaligned offset" },
		{ { 0, P + 1, 0, {0} }, "unaligned size" },
		{ { FILE_SIZE, P, 0, {0} }, "offset at EOF" },
		{ { FILE_SIZE - P, 2 * P, 0, {0} }, "range crossing EOF" },
		{ { 0xFFFFFFFFFFFFF000ULL, 2 * P, 0, {0} }, "offset + size overflows" },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = pin_req(fd, GMEM_PIN_PAGES, bad[i].r);
		check(r == EINVAL && stat_of("references") == 0, "pin %s -> EINVAL, nothing held (got %s)", bad[i].what, en(r));
		r = pin_req(fd, GMEM_UNPIN_PAGES, bad[i].r);
		check(r == EINVAL, "unpin %s -> EINVAL (got %s)", bad[i].what, en(r));
	}
	check(unpin(fd, 0, P) == ENOENT, "unpin of a page not pinned -> ENOENT");

	/* One pinned page refuses a bulk to-private conversion with its offset. */
	check(pin(fd, 2 * P, P) == 0 && stat_of("references") == 1 && stat_of("referenced_bytes") == (long long)P, "pin page 2");
	expect_refusal(fd, 0, FILE_SIZE, PRIV, EAGAIN, 2 * P, "[0, 16p) -> private with page 2 pinned");
	expect_refusal(fd, 2 * P, P, PRIV, EAGAIN, 2 * P, "[2p, 3p) -> private");
	expect_refusal(fd, P, 4 * P, PRIV, EAGAIN, 2 * P, "[p, 5p) -> private: error_offset = max(start, page)");
	check(strcmp(xattr(GMEM_XATTR_ATTRIBUTES), all_shared) == 0 && stat_of("conversions") == 0,
	      "refusals changed nothing");
	check(stat_of("eagain_refusals") == 3, "eagain_refusals = 3 (got %lld)", stat_of("eagain_refusals"));
	expect_success(fd, 3 * P, 2 * P, PRIV, "[3p, 5p) -> private (next to the pin)");
	expect_success(fd, 0, 2 * P, PRIV, "[0, 2p) -> private (before the pin)");
	expect_refusal(fd, 0, FILE_SIZE, PRIV, EAGAIN, 2 * P, "[0, 16p) -> private, pages 0, 1, 3, 4 already private");
	/* The VFS turns any EAGAIN from setxattr into EOPNOTSUPP: the xattr answers EBUSY. */
	check(set(GMEM_XATTR_SET_ATTRIBUTES, "0 65536 private") == EBUSY, "xattr conversion -> EBUSY");
	/* to-shared ignores references. */
	expect_success(fd, 0, FILE_SIZE, 0, "[0, 16p) -> shared with page 2 pinned");
	check(strcmp(xattr(GMEM_XATTR_ATTRIBUTES), all_shared) == 0, "all shared");

	/* Counts stack; unpin is all or nothing. */
	check(pin(fd, 5 * P, P) == 0 && pin(fd, 5 * P, 2 * P) == 0, "pin page 5, then pages 5-6");
	check(unpin(fd, 5 * P, 3 * P) == ENOENT && stat_of("references") == 4, "unpin 5-7 (7 not pinned) -> ENOENT, nothing dropped");
	check(unpin(fd, 5 * P, 2 * P) == 0, "unpin pages 5-6 once");
	expect_refusal(fd, 4 * P, 4 * P, PRIV, EAGAIN, 5 * P, "[4p, 8p) -> private: page 5 still pinned once");
	check(unpin(fd, 5 * P, P) == 0 && stat_of("references") == 1, "unpin page 5 again");
	expect_success(fd, 4 * P, 4 * P, PRIV, "[4p, 8p) -> private");
	check(pin(fd, 4 * P, P) == EFAULT && stat_of("references") == 1, "pin of a private page -> EFAULT, nothing held");
	expect_success(fd, 4 * P, 4 * P, 0, "[4p, 8p) -> shared");

	/* A reference belongs to the open file description: dup shares it, another open does not. */
	check(pin(ro, 8 * P, P) == 0, "pin page 8 through a read-only fd");
	int ro2 = dup(ro);
	close(ro);
	check(stat_of("references") == 2, "after dup + close of the original: still held");
	int other = open(path, O_RDONLY);
	check(unpin(other, 8 * P, P) == ENOENT, "unpin through another open file -> ENOENT");
	check(unpin(ro2, 8 * P, P) == 0 && stat_of("references") == 1, "unpin through the dup");
	close(other);
	close(ro2);

	/* Drop the last pin: the bulk conversion succeeds. */
	check(unpin(fd, 2 * P, P) == 0 && stat_of("references") == 0 && stat_of("referenced_bytes") == 0, "unpin page 2");
	expect_success(fd, 0, FILE_SIZE, PRIV, "[0, 16p) -> private");
	expect_success(fd, 0, FILE_SIZE, 0, "[0, 16p) -> shared");

	/* Injected faults. */
	check(set(GMEM_XATTR_INJECT, "enomem") == 0, "inject enomem");
	check(strcmp(xattr(GMEM_XATTR_INJECT), "enomem count 1\n") == 0, "user.gmem.inject lists it");
	expect_success(fd, 0, P, 0, "[0, p) -> shared: already shared, nothing to fail");
	expect_refusal(fd, 3 * P, 2 * P, PRIV, ENOMEM, 3 * P, "[3p, 5p) -> private: injected ENOMEM, error_offset = start");
	check(strcmp(xattr(GMEM_XATTR_INJECT), "") == 0, "the fault is used up");
	expect_success(fd, 3 * P, 2 * P, PRIV, "[3p, 5p) -> private");
	check(set(GMEM_XATTR_INJECT, "eagain 0x3000 count 2") == 0, "inject eagain 0x3000 count 2");
	expect_success(fd, 3 * P, P, 0, "[3p, 4p) -> shared: eagain hits only to-private");
	expect_refusal(fd, 0, 8 * P, PRIV, EAGAIN, 3 * P, "[0, 8p) -> private: injected EAGAIN at 0x3000");
	expect_success(fd, 4 * P, P, 0, "[4p, 5p) -> shared: request without page 3");
	check(set(GMEM_XATTR_SET_ATTRIBUTES, "0 32768 private") == EBUSY, "xattr conversion -> injected EAGAIN as EBUSY");
	expect_success(fd, 0, 8 * P, PRIV, "[0, 8p) -> private: count used up");
	check(set(GMEM_XATTR_INJECT, "eintr range 0x8000 0x1000 count 5") == 0, "inject eintr in [8p, 9p)");
	expect_success(fd, 9 * P, P, PRIV, "[9p, 10p) -> private: outside the range");
	expect_refusal(fd, 7 * P, 4 * P, PRIV, EINTR, 7 * P, "[7p, 11p) -> private: injected EINTR");
	check(set(GMEM_XATTR_INJECT, "clear") == 0 && strcmp(xattr(GMEM_XATTR_INJECT), "") == 0, "clear");
	check(set(GMEM_XATTR_INJECT, "enomem") == 0 && set(GMEM_XATTR_SET_ATTRIBUTES, "0 4096 shared") == ENOMEM,
	      "xattr conversion -> injected ENOMEM");
	check(set(GMEM_XATTR_INJECT, "eintr") == 0 && set(GMEM_XATTR_SET_ATTRIBUTES, "0 4096 shared") == EINTR,
	      "xattr conversion -> injected EINTR");
	expect_success(fd, 7 * P, 4 * P, PRIV, "[7p, 11p) -> private after clear");
	check(stat_of("injected_failures") == 6, "injected_failures = 6 (got %lld)", stat_of("injected_failures"));
	const char *bad_inject[] = { "", "enomem count 0", "eagain", "eagain 0x1001", "eagain 0x10000", "eagain 0 range 0 4096",
				     "enomem range 0 0", "enomem range 0 4097", "enomem range 0x10000 4096", "enomem count 1 count 2",
				     "enomem sometimes", "eintr count", "clear now", "ebusy" };
	for (unsigned i = 0; i < sizeof(bad_inject) / sizeof(bad_inject[0]); i++)
		check(set(GMEM_XATTR_INJECT, bad_inject[i]) == EINVAL, "inject '%s' -> EINVAL", bad_inject[i]);
	check(strcmp(xattr(GMEM_XATTR_INJECT), "") == 0, "nothing armed by a bad value");
	for (int i = 0; i < 16; i++)
		set(GMEM_XATTR_INJECT, "eintr range 0 4096");
	check(set(GMEM_XATTR_INJECT, "eintr") == ENOSPC, "a 17th armed fault -> ENOSPC");
	check(set(GMEM_XATTR_INJECT, "clear") == 0, "clear");

	close(fd);
	printf("%d failure(s)\n", failures);
	return failures;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: page_refs abi|hold|fork FILE ...\n");
		return 100;
	}
	path = argv[2];
	if (strcmp(argv[1], "abi") == 0)
		return abi();
	int fd = open(path, O_RDONLY);
	if (fd < 0) { perror("open"); return 100; }
	if (strcmp(argv[1], "hold") == 0 && argc == 5) {
		int r = pin(fd, strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0));
		if (r) { printf("pin: %s\n", en(r)); return 1; }
		printf("pinned\n");
		fflush(stdout);
		for (;;) pause();
	}
	if (strcmp(argv[1], "fork") == 0) {
		if (pin(fd, 0, P)) { perror("pin"); return 1; }
		pid_t pid = fork();
		if (pid == 0) {
			/* Keep only the pinned open file: whatever else the caller passed down (its
			 * pipes, a socket watching the parent's exec) must see the parent go. */
			int null = open("/dev/null", O_RDWR);
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
			for (int i = 3; i < 1024; i++)
				if (i != fd)
					close(i);
			for (;;) pause();
		}
		close(fd);
		printf("%d\n", pid);
		return 0;
	}
	fprintf(stderr, "bad arguments\n");
	return 100;
}
