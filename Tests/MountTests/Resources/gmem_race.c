/*
 * gmem_race: the race test's load generator (compiled with `cc -I Sources/CGmemABI/include`
 * by RaceTests.swift: the interface's names and ioctl come from gmem_abi.h).
 *
 *   gmem_race HOST_FILE GUEST_FILE SECONDS
 *
 * The file must be a gmem file with the `mmap` flag whose pages are all shared at start.
 * Actors, all running at once for SECONDS:
 *   - converters (2, each owning half of the "dynamic" region): pick a random page range,
 *     convert it to private (xattr or ioctl, at random), write the SECRET through the guest
 *     view, wait a little, erase it (guest write of a non-secret pattern), convert back to
 *     shared. The last eighth of the file is private with a secret the whole run ("static").
 *   - pread readers (3 threads), mmap readers (3 threads, one long-lived MAP_SHARED mapping
 *     each), a writer dirtying shared pages through a MAP_SHARED mapping (so conversions
 *     launder dirty pages: writeback during invalidation) and pwrite-ing through the host fd,
 *   - 2 forked children reading through a mapping inherited from the parent and with pread,
 *   - a pinner taking page references (GMEM_PIN_PAGES) on random shared pages of the dynamic
 *     region and dropping them by unpin, by closing its fd, or by dying: every so often it
 *     forks a holder that pins and is SIGKILLed. A converter refused with EAGAIN (ioctl) or
 *     EBUSY (xattr) checks that error_offset lies in its range and that its range is still
 *     all shared (no half-applied conversion), and moves on.
 *
 * Every byte the host reads is checked: secret bytes are the only bytes >= 0x80 anywhere in
 * the file. Every access is classified against the page's state word, sampled before and
 * after the access (state + generation, bumped on every transition): a page that was
 * PRIVATE with the same generation before and after was private for the whole access, so
 * the access must have failed (EACCES or SIGBUS). An access that succeeded on it is a
 * violation; a failure on a page that was SHARED the whole time is a false denial.
 *
 * Output: key=value figures on stdout; details of the first violations on stderr.
 * Exit status: 0 if secrets, violations, integrity violations, other errors and conversion
 * errors are all 0, else 1. The converter also reads each private range back through the
 * guest view: a host write that landed after the conversion returned is an integrity violation.
 * After the run, once every holder is gone, no reference may be left (references_left, checked
 * by a whole-file conversion to private that must succeed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "gmem_abi.h"

#define PAGE ((size_t)GMEM_PAGE_SIZE)
#define ST_SHARED 0u
#define ST_TRANSITION 1u
#define ST_PRIVATE 2u
#define MAX_RANGE 32     /* pages per conversion */
#define MAX_READ 16      /* pages per pread */


/* Shared with the forked children (MAP_SHARED | MAP_ANONYMOUS). */
struct shared {
    atomic_int stop;
    atomic_uint_fast64_t pread_tried, pread_ok, pread_eacces, pread_partial;
    atomic_uint_fast64_t mmap_tried, mmap_ok, mmap_sigbus;
    atomic_uint_fast64_t write_tried, write_ok, write_sigbus, pwrite_tried, pwrite_eacces;
    atomic_uint_fast64_t private_tried;        /* accesses whose pages were private throughout */
    atomic_uint_fast64_t conversions, conversions_ioctl, conversion_errors, guest_writes;
    atomic_uint_fast64_t secrets, violations, false_denials, other_errors;
    atomic_uint_fast64_t child_accesses;
    atomic_uint_fast64_t integrity_checks, integrity_violations; /* host bytes in a private page */
    atomic_uint_fast64_t pins, pins_private, pin_errors, holders_killed;
    atomic_uint_fast64_t eagain_refusals, half_applied, references_left;
    atomic_uint state[];                       /* per page: generation << 2 | state */
};

static struct shared *S;
static const char *host_path, *guest_path;
static size_t file_size, npages, static_first; /* pages [static_first, npages) stay private */
static int host_fd, guest_fd;

static uint64_t rnd(uint64_t *s) { /* xorshift64* */
    *s ^= *s >> 12; *s ^= *s << 25; *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static void report(const char *what, size_t page, const char *detail) {
    static atomic_int shown;
    if (atomic_fetch_add(&shown, 1) < 20)
        fprintf(stderr, "%s: page %zu (offset 0x%zx): %s\n", what, page, page * PAGE, detail);
}

static void set_state(size_t first, size_t n, unsigned st) {
    for (size_t p = first; p < first + n; p++) {
        unsigned old = atomic_load(&S->state[p]);
        atomic_store(&S->state[p], (((old >> 2) + 1) << 2) | st);
    }
}

/* Counts secret bytes (the only bytes >= 0x80 in the file). */
static size_t secret_bytes(const unsigned char *b, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += b[i] >> 7;
    return k;
}

/* Secret: "GMSECRET" with the high bit set on every byte. Other patterns are ASCII. */
static void fill(unsigned char *b, size_t n, const char *word, int secret) {
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)word[i % 8] | (secret ? 0x80 : 0);
}

static int guest_write(size_t first, size_t n, const char *word, int secret) {
    static __thread unsigned char buf[MAX_RANGE * PAGE];
    fill(buf, n * PAGE, word, secret);
    ssize_t w = pwrite(guest_fd, buf, n * PAGE, first * PAGE);
    atomic_fetch_add(&S->guest_writes, 1);
    if (w != (ssize_t)(n * PAGE)) {
        char d[96]; snprintf(d, sizeof d, "guest pwrite of %zu pages -> %zd (%s)", n, w, strerror(errno));
        report("guest write failed", first, d);
        atomic_fetch_add(&S->other_errors, 1);
        return -1;
    }
    return 0;
}

static int convert(int fd, size_t first, size_t n, int to_private, uint64_t *seed) {
    int rc, ioctl_used = 0;
    uint64_t ioctl_offset = 0;
    if (rnd(seed) % 4 == 0) {
        struct kvm_memory_attributes2 a = { .offset = first * PAGE, .size = n * PAGE,
                                            .attributes = to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0 };
        rc = ioctl(fd, KVM_SET_MEMORY_ATTRIBUTES2, &a);
        ioctl_used = 1;
        ioctl_offset = a.error_offset;
        atomic_fetch_add(&S->conversions_ioctl, 1);
    } else {
        char v[96];
        int len = snprintf(v, sizeof v, "%zu %zu %s", first * PAGE, n * PAGE, to_private ? "private" : "shared");
        rc = fsetxattr(fd, GMEM_XATTR_SET_ATTRIBUTES, v, (size_t)len, 0);
    }
    if (rc != 0 && to_private && (errno == EAGAIN || errno == EBUSY)) {
        /* A pinned page: all or nothing, so the whole range must still be shared. */
        atomic_fetch_add(&S->eagain_refusals, 1);
        char name[64], map[512];
        snprintf(name, sizeof name, GMEM_XATTR_ATTRIBUTES ":%zx-%zx", first * PAGE, (first + n) * PAGE);
        ssize_t len = fgetxattr(fd, name, map, sizeof map - 1);
        char want[96];
        snprintf(want, sizeof want, "%zx-%zx shared\n", first * PAGE, (first + n) * PAGE);
        int bad = len < 0 || (size_t)len != strlen(want) || memcmp(map, want, strlen(want)) != 0;
        if (!bad && ioctl_used && (ioctl_offset < first * PAGE || ioctl_offset >= (first + n) * PAGE || ioctl_offset % PAGE)) bad = 1;
        if (bad) {
            char d[160]; snprintf(d, sizeof d, "refused conversion of %zu pages: error_offset 0x%lx, map %.*s", n,
                                  (unsigned long)ioctl_offset, len < 0 ? 0 : (int)len, map);
            report("HALF-APPLIED or bad error_offset", first, d);
            atomic_fetch_add(&S->half_applied, 1);
        }
        return -1;
    }
    if (rc != 0) {
        char d[96]; snprintf(d, sizeof d, "conversion of %zu pages to %s: %s", n, to_private ? "private" : "shared", strerror(errno));
        report("conversion failed", first, d);
        atomic_fetch_add(&S->conversion_errors, 1);
        return -1;
    }
    atomic_fetch_add(&S->conversions, 1);
    return 0;
}

/* ---- converters: own conversions and guest writes of their half, in sequence per range ---- */

struct conv_arg { size_t lo, hi; uint64_t seed; };

static void *converter(void *p) {
    struct conv_arg *a = p;
    int fd = open(host_path, O_RDWR);
    if (fd < 0) { perror("converter open"); atomic_fetch_add(&S->other_errors, 1); return NULL; }
    while (!atomic_load(&S->stop)) {
        size_t n = 1 + rnd(&a->seed) % MAX_RANGE;
        if (n > a->hi - a->lo) n = a->hi - a->lo;
        size_t first = a->lo + rnd(&a->seed) % (a->hi - a->lo - n + 1);
        set_state(first, n, ST_TRANSITION);
        if (convert(fd, first, n, 1, &a->seed) != 0) { set_state(first, n, ST_SHARED); continue; }
        set_state(first, n, ST_PRIVATE);
        guest_write(first, n, "GMSECRET", 1);
        usleep((useconds_t)(rnd(&a->seed) % 300));
        /* Integrity: once the conversion has returned, no host write (pwrite, mapping,
         * writeback of a page dirtied while shared) may land in the private pages. */
        static __thread unsigned char back[MAX_RANGE * PAGE];
        if (pread(guest_fd, back, n * PAGE, (off_t)(first * PAGE)) == (ssize_t)(n * PAGE)) {
            atomic_fetch_add(&S->integrity_checks, 1);
            for (size_t i = 0; i < n * PAGE; i++)
                if (back[i] != ((unsigned char)"GMSECRET"[i % 8] | 0x80)) {
                    char d[96]; snprintf(d, sizeof d, "byte 0x%zx is 0x%02x", first * PAGE + i, back[i]);
                    report("INTEGRITY: a host write reached a private page", first + i / PAGE, d);
                    atomic_fetch_add(&S->integrity_violations, 1);
                    break;
                }
        } else {
            report("guest read-back failed", first, strerror(errno));
            atomic_fetch_add(&S->other_errors, 1);
        }
        guest_write(first, n, "erased!!", 0);
        set_state(first, n, ST_TRANSITION);
        convert(fd, first, n, 0, &a->seed);
        set_state(first, n, ST_SHARED);
    }
    close(fd);
    return NULL;
}

/* ---- the pinner: references taken and dropped while the converters run ---- */

static int pin_call(int fd, unsigned long cmd, size_t first, size_t n) {
    struct gmem_page_reference r = { .offset = first * PAGE, .size = n * PAGE };
    return ioctl(fd, cmd, &r) == 0 ? 0 : errno;
}

static void *pinner(void *p) {
    uint64_t *seed = p;
    for (unsigned long round = 0; !atomic_load(&S->stop); round++) {
        int fd = open(host_path, O_RDONLY);
        if (fd < 0) { perror("pinner open"); atomic_fetch_add(&S->other_errors, 1); return NULL; }
        size_t first = rnd(seed) % (static_first - 4), n = 1 + rnd(seed) % 4;
        if (round % 64 == 63) {
            /* A holder that dies holding its reference. */
            pid_t kid = fork();
            if (kid == 0) {
                if (pin_call(fd, GMEM_PIN_PAGES, first, n) == 0) atomic_fetch_add(&S->pins, 1);
                for (;;) pause();
            }
            usleep(200 + (useconds_t)(rnd(seed) % 2000));
            kill(kid, SIGKILL);
            waitpid(kid, NULL, 0);
            atomic_fetch_add(&S->holders_killed, 1);
            close(fd);
            continue;
        }
        int r = pin_call(fd, GMEM_PIN_PAGES, first, n);
        if (r == EFAULT) { atomic_fetch_add(&S->pins_private, 1); close(fd); continue; }   /* a private page */
        if (r) { report("pin failed", first, strerror(r)); atomic_fetch_add(&S->pin_errors, 1); close(fd); continue; }
        atomic_fetch_add(&S->pins, 1);
        usleep((useconds_t)(rnd(seed) % 500));
        /* Drop it: by unpin (twice is ENOENT), or by closing the fd (RELEASE). */
        if (rnd(seed) % 2) {
            if (pin_call(fd, GMEM_UNPIN_PAGES, first, n) != 0 || pin_call(fd, GMEM_UNPIN_PAGES, first, n) != ENOENT) {
                report("unpin", first, "unpin failed, or a second unpin was not ENOENT");
                atomic_fetch_add(&S->pin_errors, 1);
            }
        }
        close(fd);
    }
    return NULL;
}

/* user.gmem.stats' GMEM_STATS_REFERENCES line of the file. */
static long references(void) {
    char buf[1024];
    ssize_t len = getxattr(host_path, GMEM_XATTR_STATS, buf, sizeof buf - 1);
    if (len < 0) return -1;
    buf[len] = 0;
    const char *key = "\n" GMEM_STATS_REFERENCES "=";
    const char *r = strstr(buf, key);
    return r ? atol(r + strlen(key)) : -1;
}

/* ---- readers ---- */

static void snapshot(size_t first, size_t n, unsigned *out) {
    for (size_t i = 0; i < n; i++) out[i] = atomic_load(&S->state[first + i]);
}
static int stable(unsigned before, unsigned after, unsigned st) { return before == after && (before & 3) == st; }

/* One pread at a random offset; classifies the outcome page by page. */
static void pread_once(int fd, uint64_t *seed) {
    unsigned char buf[MAX_READ * PAGE];
    unsigned before[MAX_READ + 1], after[MAX_READ + 1];
    size_t off = rnd(seed) % file_size;
    if (rnd(seed) % 2) off &= ~(PAGE - 1);
    size_t len = 1 + rnd(seed) % (MAX_READ * PAGE - PAGE);
    if (off + len > file_size) len = file_size - off;
    size_t first = off / PAGE, n = (off + len - 1) / PAGE - first + 1;
    snapshot(first, n, before);
    ssize_t r = pread(fd, buf, len, (off_t)off);
    int e = errno;
    snapshot(first, n, after);
    atomic_fetch_add(&S->pread_tried, 1);
    if (stable(before[0], after[0], ST_PRIVATE)) atomic_fetch_add(&S->private_tried, 1);
    if (r < 0) {
        if (e != EACCES) { report("pread error", first, strerror(e)); atomic_fetch_add(&S->other_errors, 1); return; }
        atomic_fetch_add(&S->pread_eacces, 1);
        if (stable(before[0], after[0], ST_SHARED) && off % PAGE == 0 && n == 1) {
            report("false denial (pread EACCES on a shared page)", first, "");
            atomic_fetch_add(&S->false_denials, 1);
        }
        return;
    }
    atomic_fetch_add(&S->pread_ok, 1);
    if ((size_t)r < len) atomic_fetch_add(&S->pread_partial, 1);
    size_t k = secret_bytes(buf, (size_t)r);
    if (k) {
        char d[96]; snprintf(d, sizeof d, "pread %zu@0x%zx returned %zu secret bytes", len, off, k);
        report("SECRET OBSERVED", first, d);
        atomic_fetch_add(&S->secrets, k);
    }
    if (r == 0) return;
    size_t last = (off + (size_t)r - 1) / PAGE;
    for (size_t p = first; p <= last; p++)
        if (stable(before[p - first], after[p - first], ST_PRIVATE)) {
            report("VIOLATION: pread returned bytes of a private page", p, "");
            atomic_fetch_add(&S->violations, 1);
        }
}

static __thread sigjmp_buf bus_jmp;
static __thread volatile int bus_armed;
static void on_sigbus(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)si; (void)uc;
    if (bus_armed) { bus_armed = 0; siglongjmp(bus_jmp, 1); }
    signal(SIGBUS, SIG_DFL);
    raise(SIGBUS);
}

/* Reads one random page of `map` into a buffer and classifies it. */
static void mmap_read_once(const unsigned char *map, uint64_t *seed) {
    unsigned char buf[PAGE];
    size_t p = rnd(seed) % npages;
    unsigned before = atomic_load(&S->state[p]);
    atomic_fetch_add(&S->mmap_tried, 1);
    if (sigsetjmp(bus_jmp, 1) == 0) {
        bus_armed = 1;
        const volatile unsigned char *src = map + p * PAGE;
        for (size_t i = 0; i < PAGE; i += 8) *(uint64_t *)(buf + i) = *(const volatile uint64_t *)(src + i);
        bus_armed = 0;
    } else {
        unsigned after = atomic_load(&S->state[p]);
        if (stable(before, after, ST_PRIVATE)) atomic_fetch_add(&S->private_tried, 1);
        atomic_fetch_add(&S->mmap_sigbus, 1);
        if (stable(before, after, ST_SHARED)) { report("false denial (SIGBUS on a shared page)", p, ""); atomic_fetch_add(&S->false_denials, 1); }
        return;
    }
    unsigned after = atomic_load(&S->state[p]);
    atomic_fetch_add(&S->mmap_ok, 1);
    size_t k = secret_bytes(buf, PAGE);
    if (k) { report("SECRET OBSERVED", p, "through a MAP_SHARED mapping"); atomic_fetch_add(&S->secrets, k); }
    if (stable(before, after, ST_PRIVATE)) {
        atomic_fetch_add(&S->private_tried, 1);
        report("VIOLATION: mapping read a private page", p, "");
        atomic_fetch_add(&S->violations, 1);
    }
}

struct reader_arg { uint64_t seed; const unsigned char *map; };

static void *pread_reader(void *p) {
    struct reader_arg *a = p;
    int fd = open(host_path, O_RDONLY);
    if (fd < 0) { perror("reader open"); atomic_fetch_add(&S->other_errors, 1); return NULL; }
    while (!atomic_load(&S->stop)) pread_once(fd, &a->seed);
    close(fd);
    return NULL;
}

static void *mmap_reader(void *p) {
    struct reader_arg *a = p;
    while (!atomic_load(&S->stop)) mmap_read_once(a->map, &a->seed);
    return NULL;
}

/* Dirties random pages through a writable MAP_SHARED mapping (ASCII bytes), and pwrites. */
static void *writer(void *p) {
    struct reader_arg *a = p;
    unsigned char *map = (unsigned char *)a->map;
    while (!atomic_load(&S->stop)) {
        size_t pg = rnd(&a->seed) % static_first;
        unsigned before = atomic_load(&S->state[pg]);
        if (rnd(&a->seed) % 4 == 0) {
            char w[64];
            memset(w, 'h', sizeof w);
            atomic_fetch_add(&S->pwrite_tried, 1);
            ssize_t r = pwrite(host_fd, w, sizeof w, (off_t)(pg * PAGE + (rnd(&a->seed) % (PAGE / 64)) * 64));
            unsigned after = atomic_load(&S->state[pg]);
            if (r < 0 && errno == EACCES) {
                atomic_fetch_add(&S->pwrite_eacces, 1);
                if (stable(before, after, ST_SHARED)) { report("false denial (pwrite EACCES on a shared page)", pg, ""); atomic_fetch_add(&S->false_denials, 1); }
            } else if (r < 0) {
                report("pwrite error", pg, strerror(errno)); atomic_fetch_add(&S->other_errors, 1);
            } else if (stable(before, after, ST_PRIVATE)) {
                report("VIOLATION: pwrite stored into a private page", pg, ""); atomic_fetch_add(&S->violations, 1);
            }
            continue;
        }
        atomic_fetch_add(&S->write_tried, 1);
        if (sigsetjmp(bus_jmp, 1) == 0) {
            bus_armed = 1;
            volatile unsigned char *dst = map + pg * PAGE + (rnd(&a->seed) % (PAGE / 64)) * 64;
            for (int i = 0; i < 64; i++) dst[i] = 'w';
            bus_armed = 0;
            unsigned after = atomic_load(&S->state[pg]);
            atomic_fetch_add(&S->write_ok, 1);
            if (stable(before, after, ST_PRIVATE)) { report("VIOLATION: mapping wrote a private page", pg, ""); atomic_fetch_add(&S->violations, 1); }
            if (rnd(&a->seed) % 64 == 0) msync(map + pg * PAGE, PAGE, MS_ASYNC);
        } else {
            unsigned after = atomic_load(&S->state[pg]);
            atomic_fetch_add(&S->write_sigbus, 1);
            if (stable(before, after, ST_SHARED)) { report("false denial (SIGBUS writing a shared page)", pg, ""); atomic_fetch_add(&S->false_denials, 1); }
        }
    }
    return NULL;
}

static void child_main(const unsigned char *inherited, uint64_t seed) {
    int fd = open(host_path, O_RDONLY);
    if (fd < 0) _exit(2);
    while (!atomic_load(&S->stop)) {
        mmap_read_once(inherited, &seed);
        pread_once(fd, &seed);
        atomic_fetch_add(&S->child_accesses, 2);
    }
    _exit(0);
}

static double now(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: gmem_race HOST_FILE GUEST_FILE SECONDS\n"); return 2; }
    host_path = argv[1]; guest_path = argv[2];
    double seconds = atof(argv[3]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    host_fd = open(host_path, O_RDWR);
    guest_fd = open(guest_path, O_RDWR);
    if (host_fd < 0 || guest_fd < 0) { perror("open"); return 2; }
    struct stat st;
    fstat(host_fd, &st);
    file_size = (size_t)st.st_size; npages = file_size / PAGE;
    if (npages < 64) { fprintf(stderr, "file too small\n"); return 2; }
    static_first = npages - npages / 8;
    S = mmap(NULL, sizeof *S + npages * sizeof(atomic_uint), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (S == MAP_FAILED) { perror("mmap state"); return 2; }

    struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO | SA_NODEFER };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);

    /* Initial contents: ASCII everywhere; the static region private with a secret. */
    for (size_t p = 0; p < npages; p += MAX_RANGE) {
        size_t n = npages - p < MAX_RANGE ? npages - p : MAX_RANGE;
        if (guest_write(p, n, "initial!", 0)) return 1;
    }
    uint64_t seed0 = 0x9E3779B97F4A7C15ULL ^ (uint64_t)getpid();
    char v[96];
    snprintf(v, sizeof v, "%zu %zu private", static_first * PAGE, (npages - static_first) * PAGE);
    if (setxattr(host_path, GMEM_XATTR_SET_ATTRIBUTES, v, strlen(v), 0)) { perror("static private"); return 1; }
    atomic_fetch_add(&S->conversions, 1);
    set_state(static_first, npages - static_first, ST_PRIVATE);
    for (size_t p = static_first; p < npages; p += MAX_RANGE) {
        size_t n = npages - p < MAX_RANGE ? npages - p : MAX_RANGE;
        if (guest_write(p, n, "GMSECRET", 1)) return 1;
    }

    /* Long-lived mappings: one per mmap reader, one writable for the writer, one inherited by children. */
    enum { NCONV = 2, NPREAD = 3, NMMAP = 3, NCHILD = 2 };
    const unsigned char *inherited = mmap(NULL, file_size, PROT_READ, MAP_SHARED, host_fd, 0);
    if (inherited == MAP_FAILED) { perror("mmap"); return 2; }
    pid_t kids[NCHILD];
    for (int i = 0; i < NCHILD; i++) {
        kids[i] = fork();
        if (kids[i] == 0) child_main(inherited, rnd(&seed0) | 1);
        if (kids[i] < 0) { perror("fork"); return 2; }
    }

    pthread_t th[NCONV + NPREAD + NMMAP + 2];
    struct conv_arg ca[NCONV];
    struct reader_arg ra[NPREAD + NMMAP + 1];
    int t = 0;
    size_t half = static_first / 2;
    for (int i = 0; i < NCONV; i++) {
        ca[i] = (struct conv_arg){ .lo = i ? half : 0, .hi = i ? static_first : half, .seed = rnd(&seed0) | 1 };
        pthread_create(&th[t++], NULL, converter, &ca[i]);
    }
    for (int i = 0; i < NPREAD + NMMAP + 1; i++) {
        ra[i].seed = rnd(&seed0) | 1;
        ra[i].map = NULL;
        if (i >= NPREAD) {
            int w = i == NPREAD + NMMAP;
            ra[i].map = mmap(NULL, file_size, w ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, host_fd, 0);
            if (ra[i].map == MAP_FAILED) { perror("mmap"); return 2; }
        }
        pthread_create(&th[t++], NULL, i < NPREAD ? pread_reader : i < NPREAD + NMMAP ? mmap_reader : writer, &ra[i]);
    }
    uint64_t pin_seed = rnd(&seed0) | 1;
    pthread_create(&th[t++], NULL, pinner, &pin_seed);

    double start = now();
    while (now() - start < seconds) usleep(100000);
    atomic_store(&S->stop, 1);
    for (int i = 0; i < t; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < NCHILD; i++) {
        int status;
        waitpid(kids[i], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "child %d ended with status 0x%x\n", i, status);
            atomic_fetch_add(&S->other_errors, 1);
        }
    }

    /* Every holder is gone: once the daemon has seen the last RELEASE (sent after close
     * returns), no reference may be left, and the whole file converts to private. */
    long left = -1;
    for (int i = 0; i < 500 && (left = references()) != 0; i++) usleep(10000);
    if (left != 0) { fprintf(stderr, "references left after every holder is gone: %ld\n", left); atomic_store(&S->references_left, left < 0 ? 1 : (uint64_t)left); }
    else {
        struct kvm_memory_attributes2 a = { .offset = 0, .size = file_size, .attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE };
        if (ioctl(host_fd, KVM_SET_MEMORY_ATTRIBUTES2, &a)) { perror("final private"); atomic_fetch_add(&S->conversion_errors, 1); }
        else atomic_fetch_add(&S->conversions, 1);
    }

    /* Final sweep: erase the static secret, make everything shared, read it all both ways. */
    for (size_t p = static_first; p < npages; p += MAX_RANGE) {
        size_t n = npages - p < MAX_RANGE ? npages - p : MAX_RANGE;
        guest_write(p, n, "erased!!", 0);
    }
    snprintf(v, sizeof v, "0 %zu shared", file_size);
    if (setxattr(host_path, GMEM_XATTR_SET_ATTRIBUTES, v, strlen(v), 0)) { perror("final shared"); atomic_fetch_add(&S->conversion_errors, 1); }
    else atomic_fetch_add(&S->conversions, 1);
    unsigned char *all = malloc(file_size);
    ssize_t r = pread(host_fd, all, file_size, 0);
    if (r != (ssize_t)file_size) { fprintf(stderr, "final pread: %zd (%s)\n", r, strerror(errno)); atomic_fetch_add(&S->other_errors, 1); }
    else atomic_fetch_add(&S->secrets, secret_bytes(all, file_size));
    memcpy(all, (const void *)ra[NPREAD].map, file_size);   /* faults every page back in */
    atomic_fetch_add(&S->secrets, secret_bytes(all, file_size));
    free(all);

    double elapsed = now() - start;
    uint64_t accesses = S->pread_tried + S->mmap_tried + S->write_tried + S->pwrite_tried;
    printf("seconds=%.1f\npages=%zu\naccesses=%lu\npread_tried=%lu\npread_ok=%lu\npread_partial=%lu\npread_eacces=%lu\n"
           "mmap_tried=%lu\nmmap_ok=%lu\nmmap_sigbus=%lu\nwrite_tried=%lu\nwrite_ok=%lu\nwrite_sigbus=%lu\n"
           "pwrite_tried=%lu\npwrite_eacces=%lu\nprivate_tried=%lu\nchild_accesses=%lu\nconversions=%lu\n"
           "conversions_ioctl=%lu\nguest_writes=%lu\nconversion_errors=%lu\nsecrets=%lu\nviolations=%lu\n"
           "false_denials=%lu\nother_errors=%lu\nintegrity_checks=%lu\nintegrity_violations=%lu\n"
           "pins=%lu\npins_private=%lu\npin_errors=%lu\nholders_killed=%lu\neagain_refusals=%lu\nhalf_applied=%lu\n"
           "references_left=%lu\n",
           elapsed, npages, (unsigned long)accesses, (unsigned long)S->pread_tried, (unsigned long)S->pread_ok,
           (unsigned long)S->pread_partial, (unsigned long)S->pread_eacces, (unsigned long)S->mmap_tried,
           (unsigned long)S->mmap_ok, (unsigned long)S->mmap_sigbus, (unsigned long)S->write_tried,
           (unsigned long)S->write_ok, (unsigned long)S->write_sigbus, (unsigned long)S->pwrite_tried,
           (unsigned long)S->pwrite_eacces, (unsigned long)S->private_tried, (unsigned long)S->child_accesses,
           (unsigned long)S->conversions, (unsigned long)S->conversions_ioctl, (unsigned long)S->guest_writes,
           (unsigned long)S->conversion_errors, (unsigned long)S->secrets, (unsigned long)S->violations,
           (unsigned long)S->false_denials, (unsigned long)S->other_errors,
           (unsigned long)S->integrity_checks, (unsigned long)S->integrity_violations,
           (unsigned long)S->pins, (unsigned long)S->pins_private, (unsigned long)S->pin_errors,
           (unsigned long)S->holders_killed, (unsigned long)S->eagain_refusals, (unsigned long)S->half_applied,
           (unsigned long)S->references_left);
    return (S->secrets || S->violations || S->other_errors || S->conversion_errors || S->integrity_violations ||
            S->pin_errors || S->half_applied || S->references_left) ? 1 : 0;
}
