/*
 * transport-bench: request round trips on a mounted file, for Scripts/transport-compare.sh.
 *
 *   transport-bench MODE PATH CLIENTS SECONDS
 *
 * MODE:
 *   conv-xattr  4 KiB conversions by setxattr user.gmem.set_attributes, alternating private
 *               and shared on pages i/2 mod 256 (the file needs 256 pages)
 *   conv-ioctl  the same through KVM_SET_MEMORY_ATTRIBUTES2 on an O_RDWR descriptor
 *   getxattr    getxattr of user.gmem.flags (the C baseline answers ENODATA: same round trip)
 *   dread       4 KiB O_DIRECT preads at random pages
 *   bread       4 KiB sequential buffered preads, the file's page cache dropped before each pass
 *
 * CLIENTS threads run for SECONDS each (unpinned). Prints one line:
 *   MODE clients=N ops_per_s=.. mean_us=.. p50_us=.. [to_private_us=.. to_shared_us=..] [mib_per_s=..]
 * Latencies are per call; means of the conversion directions are reported separately.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include "gmem_abi.h"

static const char *mode, *path;
static double seconds;
static off_t file_size;

struct result { uint64_t ops; double sum_us, sum_priv_us, sum_shared_us; uint64_t n_priv, n_shared; double *lat; size_t nlat, cap; };

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void record(struct result *r, double us) {
    r->ops++;
    r->sum_us += us;
    if (r->nlat == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 65536;
        r->lat = realloc(r->lat, r->cap * sizeof *r->lat);
        if (!r->lat) { perror("realloc"); exit(1); }
    }
    r->lat[r->nlat++] = us;
}

static void die(const char *what) { fprintf(stderr, "transport-bench %s %s: %s: %s\n", mode, path, what, strerror(errno)); exit(1); }

static void *client(void *arg) {
    struct result *r = arg;
    unsigned seed = (unsigned)(uintptr_t)arg;
    int fd = -1;
    char *buf = NULL;
    if (posix_memalign((void **)&buf, 4096, 4096)) die("posix_memalign");
    if (!strcmp(mode, "conv-ioctl")) { fd = open(path, O_RDWR); if (fd < 0) die("open"); }
    if (!strcmp(mode, "dread")) { fd = open(path, O_RDONLY | O_DIRECT); if (fd < 0) die("open O_DIRECT"); }
    if (!strcmp(mode, "bread")) { fd = open(path, O_RDONLY); if (fd < 0) die("open"); }
    off_t pages = file_size / 4096, next = 0;
    double end = now_us() + seconds * 1e6;
    for (uint64_t i = 0; now_us() < end; i++) {
        int to_private = i % 2 == 0;
        off_t page = (off_t)(i / 2 % 256);
        double t = now_us();
        if (!strcmp(mode, "conv-xattr")) {
            char v[64];
            int n = snprintf(v, sizeof v, "%lld 4096 %s", (long long)page * 4096, to_private ? "private" : "shared");
            if (setxattr(path, GMEM_XATTR_SET_ATTRIBUTES, v, (size_t)n, 0) != 0) die("setxattr");
        } else if (!strcmp(mode, "conv-ioctl")) {
            struct kvm_memory_attributes2 a;
            memset(&a, 0, sizeof a);
            a.offset = (uint64_t)page * 4096;
            a.size = 4096;
            a.attributes = to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
            if (ioctl(fd, KVM_SET_MEMORY_ATTRIBUTES2, &a) != 0) die("ioctl");
        } else if (!strcmp(mode, "getxattr")) {
            char v[256];
            if (getxattr(path, GMEM_XATTR_FLAGS, v, sizeof v) < 0 && errno != ENODATA) die("getxattr");
        } else if (!strcmp(mode, "dread")) {
            off_t p = (off_t)(rand_r(&seed) % (unsigned)pages);
            if (pread(fd, buf, 4096, p * 4096) != 4096) die("pread");
        } else if (!strcmp(mode, "bread")) {
            if (next == 0) {
                posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
                t = now_us();
            }
            if (pread(fd, buf, 4096, next * 4096) != 4096) die("pread");
            next = (next + 1) % pages;
        } else {
            fprintf(stderr, "transport-bench: unknown mode %s\n", mode);
            exit(2);
        }
        double us = now_us() - t;
        record(r, us);
        if (!strncmp(mode, "conv", 4)) {
            if (to_private) { r->sum_priv_us += us; r->n_priv++; } else { r->sum_shared_us += us; r->n_shared++; }
        }
    }
    if (fd >= 0) close(fd);
    free(buf);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: transport-bench MODE PATH CLIENTS SECONDS\n"); return 2; }
    mode = argv[1];
    path = argv[2];
    int clients = atoi(argv[3]);
    seconds = atof(argv[4]);
    if (clients < 1 || clients > 64 || seconds <= 0) { fprintf(stderr, "transport-bench: bad CLIENTS or SECONDS\n"); return 2; }
    struct stat st;
    if (stat(path, &st) != 0) die("stat");
    file_size = st.st_size;
    if (file_size < 256 * 4096) { fprintf(stderr, "transport-bench: %s needs at least 256 pages\n", path); return 2; }
    struct result *r = calloc((size_t)clients, sizeof *r);
    pthread_t *t = calloc((size_t)clients, sizeof *t);
    for (int i = 0; i < clients; i++) pthread_create(&t[i], NULL, client, &r[i]);
    struct result all = { 0 };
    size_t n = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(t[i], NULL);
        all.ops += r[i].ops; all.sum_us += r[i].sum_us;
        all.sum_priv_us += r[i].sum_priv_us; all.n_priv += r[i].n_priv;
        all.sum_shared_us += r[i].sum_shared_us; all.n_shared += r[i].n_shared;
        n += r[i].nlat;
    }
    double *lat = malloc((n ? n : 1) * sizeof *lat);
    size_t k = 0;
    for (int i = 0; i < clients; i++) { memcpy(lat + k, r[i].lat, r[i].nlat * sizeof *lat); k += r[i].nlat; }
    qsort(lat, n, sizeof *lat, cmp);
    printf("%s clients=%d ops_per_s=%.0f mean_us=%.2f p50_us=%.2f", mode, clients, all.ops / seconds,
           all.ops ? all.sum_us / all.ops : 0, n ? lat[n / 2] : 0);
    if (all.n_priv) printf(" to_private_us=%.2f to_shared_us=%.2f", all.sum_priv_us / all.n_priv, all.sum_shared_us / (all.n_shared ? all.n_shared : 1));
    if (!strcmp(mode, "bread") || !strcmp(mode, "dread")) printf(" mib_per_s=%.1f", all.ops * 4096.0 / seconds / 1048576.0);
    printf("\n");
    return 0;
}
