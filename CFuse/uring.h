/*
 * CFuse: FUSE-over-io_uring for libfuse 3.14, which cannot negotiate it itself.
 *
 * The contract and the design are in docs/fuse-kernel-notes.md ("FUSE over io_uring") and
 * docs/architecture.md ("Transports"). In short:
 * - libfuse keeps reading /dev/fuse (INIT, FORGET, INTERRUPT, and every request until the
 *   rings are ready) through a custom io (`fuse_session_custom_io`) whose read notes what the
 *   kernel's INIT offered and whose writev sets FUSE_OVER_IO_URING in the INIT reply, only
 *   when offered and only once every queue's buffers exist;
 * - one ring and one thread per possible CPU (pinned when the CPU is online) REGISTERs
 *   entries (a 288-byte header and a payload of the connection's largest request) with the
 *   kernel; a ring request is rebuilt in place as `fuse_in_header | op_in | payload` and fed
 *   to `fuse_session_process_buf`, on the ring's thread;
 * - every reply passes through the custom writev: a reply whose `unique` names a ring entry is
 *   copied into it and committed with COMMIT_AND_FETCH by the entry's ring thread (replies from
 *   other threads are handed over through the ring's eventfd), anything else goes to /dev/fuse;
 * - a ring thread never blocks on the kernel: a call that may wait for the kernel to be served
 *   (an invalidation) runs on a worker while the ring thread keeps its ring going, handing new
 *   requests to workers until the call returns (`cfuse_uring_call_off_ring`);
 * - a queue never runs out of entries for parked requests: it registers more while fewer than
 *   CFUSE_URING_LOW_WATER wait in the kernel, up to CFUSE_URING_MAX_ENTS.
 *
 * Everything is `static inline` with no static data, so that each Swift object file that calls
 * in gets a private copy without a second copy of any state: all state lives in the heap
 * object `struct cfuse_uring`.
 */
#ifndef CFUSE_URING_H
#define CFUSE_URING_H

#include <fuse3/fuse_lowlevel.h>
#include <linux/io_uring.h>
#include <sys/syscall.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

/* uAPI values of include/uapi/linux/fuse.h (7.42) that Debian 12's headers predate. */
#define CFUSE_FUSE_INIT 26u
#define CFUSE_FUSE_INTERRUPT 36u
#define CFUSE_INT_REQ_BIT (1ull << 63)
#define CFUSE_INIT_EXT (1u << 30)
#define CFUSE_MAX_PAGES (1u << 22)
#define CFUSE_OVER_IO_URING_FLAGS2 (1u << 9)   /* FUSE_OVER_IO_URING, 1ULL << 41 */
#define CFUSE_IO_URING_CMD_REGISTER 1u
#define CFUSE_IO_URING_CMD_COMMIT_AND_FETCH 2u

struct cfuse_in_header { uint32_t len, opcode; uint64_t unique, nodeid; uint32_t uid, gid, pid, padding; };
struct cfuse_out_header { uint32_t len; int32_t error; uint64_t unique; };
struct cfuse_uring_ent_in_out { uint64_t flags, commit_id; uint32_t payload_sz, padding; uint64_t reserved; };
struct cfuse_uring_req_header {
    char in_out[128];                      /* fuse_in_header on fetch, fuse_out_header on commit */
    char op_in[128];                       /* the request's first argument (its per-op header) */
    struct cfuse_uring_ent_in_out ent;
};
struct cfuse_uring_cmd_req { uint64_t flags, commit_id; uint16_t qid; uint8_t padding[6]; };

/* A minimal io_uring (raw syscalls: liburing's own uAPI copy clashes with <linux/io_uring.h>,
 * which Swift's System module imports). SQE128 only; one submitting thread per ring. */
struct cfuse_ring {
    int fd;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array, sq_entries;
    unsigned sqe_head, sqe_tail;           /* local: prepared but not yet published */
    struct io_uring_sqe *sqes;             /* 128-byte slots: index * 2 */
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_cqe *cqes;
    void *sq_map, *cq_map;
    size_t sq_map_size, cq_map_size, sqes_size;
};

static inline int cfuse_ring_init(struct cfuse_ring *r, unsigned entries, unsigned cq_entries) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    memset(r, 0, sizeof *r);
    r->fd = -1;
    p.flags = IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE;
    p.cq_entries = cq_entries;
    int fd = (int)syscall(__NR_io_uring_setup, entries, &p);
    if (fd < 0) return -errno;
    r->fd = fd;
    r->sq_map_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    r->cq_map_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (p.features & IORING_FEAT_SINGLE_MMAP) {
        if (r->cq_map_size > r->sq_map_size) r->sq_map_size = r->cq_map_size;
        r->cq_map_size = r->sq_map_size;
    }
    r->sq_map = mmap(NULL, r->sq_map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    if (r->sq_map == MAP_FAILED) { r->sq_map = NULL; goto fail; }
    if (p.features & IORING_FEAT_SINGLE_MMAP) {
        r->cq_map = r->sq_map;
    } else {
        r->cq_map = mmap(NULL, r->cq_map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
        if (r->cq_map == MAP_FAILED) { r->cq_map = NULL; goto fail; }
    }
    r->sqes_size = p.sq_entries * 2 * sizeof(struct io_uring_sqe);
    r->sqes = mmap(NULL, r->sqes_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (r->sqes == MAP_FAILED) { r->sqes = NULL; goto fail; }
    char *sq = r->sq_map, *cq = r->cq_map;
    r->sq_head = (unsigned *)(sq + p.sq_off.head);
    r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    r->sq_array = (unsigned *)(sq + p.sq_off.array);
    r->sq_entries = p.sq_entries;
    r->cq_head = (unsigned *)(cq + p.cq_off.head);
    r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    r->sqe_head = r->sqe_tail = *r->sq_tail;
    return 0;
fail:;
    int err = -errno;
    if (r->sqes) munmap(r->sqes, r->sqes_size);
    if (r->cq_map && r->cq_map != r->sq_map) munmap(r->cq_map, r->cq_map_size);
    if (r->sq_map) munmap(r->sq_map, r->sq_map_size);
    close(fd);
    r->fd = -1;
    return err;
}

static inline void cfuse_ring_exit(struct cfuse_ring *r) {
    if (r->fd < 0) return;
    munmap(r->sqes, r->sqes_size);
    if (r->cq_map != r->sq_map) munmap(r->cq_map, r->cq_map_size);
    munmap(r->sq_map, r->sq_map_size);
    close(r->fd);
    r->fd = -1;
}

static inline struct io_uring_sqe *cfuse_ring_get_sqe(struct cfuse_ring *r) {
    unsigned head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
    if (r->sqe_tail - head >= r->sq_entries) return NULL;
    struct io_uring_sqe *sqe = &r->sqes[(r->sqe_tail & *r->sq_mask) * 2];
    r->sqe_tail++;
    memset(sqe, 0, 2 * sizeof *sqe);
    return sqe;
}

/* Publishes the prepared SQEs and enters the kernel, waiting for `wait_nr` completions. */
static inline int cfuse_ring_submit(struct cfuse_ring *r, unsigned wait_nr) {
    unsigned mask = *r->sq_mask;
    unsigned n = r->sqe_tail - r->sqe_head;
    for (unsigned i = r->sqe_head; i != r->sqe_tail; i++) r->sq_array[i & mask] = i & mask;
    __atomic_store_n(r->sq_tail, r->sqe_tail, __ATOMIC_RELEASE);
    r->sqe_head = r->sqe_tail;
    if (n == 0 && wait_nr == 0) return 0;
    long rc = syscall(__NR_io_uring_enter, r->fd, n, wait_nr, wait_nr ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
    return rc < 0 ? -errno : (int)rc;
}

static inline struct io_uring_cqe *cfuse_ring_peek(struct cfuse_ring *r) {
    unsigned head = *r->cq_head;
    if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE)) return NULL;
    return &r->cqes[head & *r->cq_mask];
}

static inline void cfuse_ring_seen(struct cfuse_ring *r) {
    __atomic_store_n(r->cq_head, *r->cq_head + 1, __ATOMIC_RELEASE);
}

/* Limits (docs/fuse-kernel-notes.md, "FUSE over io_uring"). */
#define CFUSE_URING_MAX_QUEUES 64      /* more possible CPUs: refused, served classically */
#define CFUSE_URING_DEPTH 16           /* entries registered per queue at start */
#define CFUSE_URING_LOW_WATER 4        /* fewer waiting in the kernel: register another */
#define CFUSE_URING_MAX_ENTS 256       /* entries per queue, at most */
#define CFUSE_URING_MAX_WORKERS 64     /* per queue, for requests and calls off the ring thread */
#define CFUSE_URING_SQ_SIZE 512        /* >= MAX_ENTS + the eventfd read */
#define CFUSE_URING_HEADER_SPACE 4096  /* the header sits at the end of this, the payload after */
#define CFUSE_URING_EFD_TAG 1ull       /* user_data of the eventfd read */
#define CFUSE_URING_REINJECT_SLOTS 64  /* interrupts waiting for their request */
#define CFUSE_URING_REINJECT_MAX 4096  /* deliveries of one interrupt before it is dropped */

struct cfuse_uring;
struct cfuse_uring_queue;

struct cfuse_uring_ent {
    struct cfuse_uring_queue *q;
    char *mem;                             /* mmap: HEADER_SPACE then the payload */
    size_t map_size;
    struct cfuse_uring_req_header *hdr;    /* mem + HEADER_SPACE - sizeof(*hdr) */
    char *payload;                         /* mem + HEADER_SPACE */
    struct iovec iov[2];
    uint64_t commit_id;                    /* ring thread only */
    _Atomic uint64_t unique;               /* nonzero while libfuse owes the request a reply */
    int dead;                              /* ring thread only: the kernel ended it */
    struct cfuse_uring_ent *next_commit;   /* under q->lock */
};

struct cfuse_uring_job {
    struct cfuse_uring_job *next;
    struct cfuse_uring_ent *ent;           /* a request to serve, or: */
    void (*fn)(void *);                    /* a call to make, then set *done and wake the ring */
    void *arg;
    _Atomic int *done;
    struct fuse_buf buf;
};

struct cfuse_uring_queue {
    struct cfuse_uring *u;
    int qid;
    pthread_t tid;
    int thread_started;
    _Atomic int serving;                   /* the thread runs its ring loop */
    struct cfuse_ring ring;
    int ring_ok;
    int efd;
    uint64_t efd_value;
    struct cfuse_uring_ent *ents[CFUSE_URING_MAX_ENTS];
    _Atomic unsigned n_ents;
    unsigned in_kernel;                    /* ring thread only */
    uint64_t served;                       /* ring thread only */
    pthread_mutex_t lock;                  /* commits, jobs, workers */
    pthread_cond_t cond;
    struct cfuse_uring_ent *commits;
    struct cfuse_uring_job *jobs, *jobs_tail;
    unsigned idle, workers;
    pthread_t worker_tids[CFUSE_URING_MAX_WORKERS];
};

struct cfuse_uring {
    struct fuse_session *se;
    int fd;
    unsigned nq;
    size_t payload;                        /* set while INIT is answered */
    struct cfuse_uring_queue *queues;
    void (*report)(void *ctx, int level, const char *msg);   /* level: 0 info, 1 fallback */
    void *report_ctx;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned ready, failed;                /* ring threads set up (or not) */
    int go;                                /* 1: register; -1: classic, exit */
    _Atomic int stopping;
    _Atomic uint64_t init_unique;
    _Atomic int offered;                   /* INIT offered FUSE_OVER_IO_URING */
    _Atomic int fell_back;
    _Atomic unsigned registered;           /* queues whose REGISTERs were all accepted */
    _Atomic uint64_t ring_requests;        /* requests served over the rings (at stop) */
    pthread_mutex_t reinject_lock;
    struct { uint64_t unique; unsigned count; } reinject[CFUSE_URING_REINJECT_SLOTS];
};

static inline void cfuse_uring_say(struct cfuse_uring *u, int level, const char *msg) {
    if (u->report) u->report(u->report_ctx, level, msg);
}

/* Reports the one fallback line (later reasons are dropped). */
static inline void cfuse_uring_fall_back(struct cfuse_uring *u, const char *why) {
    int expected = 0;
    if (!atomic_compare_exchange_strong(&u->fell_back, &expected, 1)) return;
    char line[256];
    snprintf(line, sizeof line, "io_uring not used, serving /dev/fuse classically: %s", why);
    cfuse_uring_say(u, 1, line);
}

/* The number of possible CPUs (the kernel's queue count), or -1. */
static inline int cfuse_uring_possible_cpus(void) {
    FILE *f = fopen("/sys/devices/system/cpu/possible", "re");
    if (!f) return -1;
    char text[256];
    int n = 0;
    if (!fgets(text, sizeof text, f)) { fclose(f); return -1; }
    fclose(f);
    for (char *p = text; *p && *p != '\n';) {
        char *end;
        long a = strtol(p, &end, 10), b = a;
        if (end == p) return -1;
        if (*end == '-') { p = end + 1; b = strtol(p, &end, 10); if (end == p || b < a) return -1; }
        n += (int)(b - a + 1);
        p = *end == ',' ? end + 1 : end;
        if (n > 1 << 20) return -1;
    }
    return n;
}

/* 'Y', 'N', or 0 when the kernel has no such parameter. */
static inline char cfuse_uring_parameter(void) {
    FILE *f = fopen("/sys/module/fuse/parameters/enable_uring", "re");
    if (!f) return 0;
    int c = fgetc(f);
    fclose(f);
    return c == 'Y' || c == '1' ? 'Y' : 'N';
}

static inline struct cfuse_uring_ent *cfuse_uring_ent_new(struct cfuse_uring_queue *q) {
    size_t size = CFUSE_URING_HEADER_SPACE + q->u->payload;
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return NULL;
    struct cfuse_uring_ent *e = calloc(1, sizeof *e);
    if (!e) { munmap(mem, size); return NULL; }
    e->q = q;
    e->mem = mem;
    e->map_size = size;
    e->payload = e->mem + CFUSE_URING_HEADER_SPACE;
    e->hdr = (struct cfuse_uring_req_header *)(e->payload - sizeof(struct cfuse_uring_req_header));
    e->iov[0] = (struct iovec){ e->hdr, sizeof(struct cfuse_uring_req_header) };
    e->iov[1] = (struct iovec){ e->payload, q->u->payload };
    return e;
}

/* Ring thread only: queues a REGISTER or COMMIT_AND_FETCH of `e` (submitted by the loop). */
static inline int cfuse_uring_prep(struct cfuse_uring_queue *q, struct cfuse_uring_ent *e, uint32_t op) {
    struct io_uring_sqe *sqe = cfuse_ring_get_sqe(&q->ring);
    if (!sqe) { cfuse_ring_submit(&q->ring, 0); sqe = cfuse_ring_get_sqe(&q->ring); }
    if (!sqe) return -EBUSY;
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = q->u->fd;
    sqe->cmd_op = op;
    sqe->user_data = (uint64_t)(uintptr_t)e;
    struct cfuse_uring_cmd_req *cmd = (struct cfuse_uring_cmd_req *)sqe->cmd;
    cmd->qid = (uint16_t)q->qid;
    if (op == CFUSE_IO_URING_CMD_REGISTER) {
        sqe->addr = (uint64_t)(uintptr_t)e->iov;
        sqe->len = 2;
    } else {
        cmd->commit_id = e->commit_id;
    }
    q->in_kernel++;
    return 0;
}

static inline void cfuse_uring_arm_eventfd(struct cfuse_uring_queue *q) {
    struct io_uring_sqe *sqe = cfuse_ring_get_sqe(&q->ring);
    if (!sqe) { cfuse_ring_submit(&q->ring, 0); sqe = cfuse_ring_get_sqe(&q->ring); }
    if (!sqe) return;
    sqe->opcode = IORING_OP_READ;
    sqe->fd = q->efd;
    sqe->addr = (uint64_t)(uintptr_t)&q->efd_value;
    sqe->len = sizeof q->efd_value;
    sqe->user_data = CFUSE_URING_EFD_TAG;
}

static inline void cfuse_uring_wake(struct cfuse_uring_queue *q) {
    uint64_t one = 1;
    ssize_t n = write(q->efd, &one, sizeof one);
    (void)n;
}

/* The queue whose ring thread is calling, or NULL. */
static inline struct cfuse_uring_queue *cfuse_uring_current(struct cfuse_uring *u) {
    pthread_t self = pthread_self();
    for (unsigned i = 0; i < u->nq; i++)
        if (atomic_load(&u->queues[i].serving) && pthread_equal(u->queues[i].tid, self)) return &u->queues[i];
    return NULL;
}

/* A ring thread: is the caller one? (Such a caller must not block on the kernel.) */
static inline int cfuse_uring_on_ring_thread(struct cfuse_uring *u) {
    return u && cfuse_uring_current(u) != NULL;
}

/* Hands a committed entry to its ring thread, or queues its commit when that is the caller. */
static inline void cfuse_uring_commit(struct cfuse_uring_ent *e) {
    struct cfuse_uring_queue *q = e->q;
    if (pthread_equal(pthread_self(), q->tid)) {
        if (cfuse_uring_prep(q, e, CFUSE_IO_URING_CMD_COMMIT_AND_FETCH) != 0) e->dead = 1;
        return;
    }
    pthread_mutex_lock(&q->lock);
    e->next_commit = q->commits;
    q->commits = e;
    pthread_mutex_unlock(&q->lock);
    cfuse_uring_wake(q);
}

/* Answers an entry with an error (a request that cannot be rebuilt). */
static inline void cfuse_uring_reply_error(struct cfuse_uring_ent *e, uint64_t unique, int error) {
    struct cfuse_out_header out = { sizeof out, -error, unique };
    memcpy(e->hdr->in_out, &out, sizeof out);
    e->hdr->ent.payload_sz = 0;
    cfuse_uring_commit(e);
}

static inline void *cfuse_uring_worker(void *arg);

/* Queues a job for `q`'s workers, starting one when none is idle. */
static inline void cfuse_uring_push_job(struct cfuse_uring_queue *q, struct cfuse_uring_job *job) {
    pthread_mutex_lock(&q->lock);
    job->next = NULL;
    if (q->jobs_tail) q->jobs_tail->next = job; else q->jobs = job;
    q->jobs_tail = job;
    if (q->idle == 0 && q->workers < CFUSE_URING_MAX_WORKERS) {
        pthread_t t;
        if (pthread_create(&t, NULL, cfuse_uring_worker, q) == 0) q->worker_tids[q->workers++] = t;
    }
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

/* Pins the calling thread to `cpu` (an offline CPU: it stays unpinned). */
static inline void cfuse_uring_pin(int cpu) {
    unsigned long mask[1024 / (8 * sizeof(unsigned long))];
    memset(mask, 0, sizeof mask);
    mask[cpu / (8 * sizeof(unsigned long))] |= 1ul << (cpu % (8 * sizeof(unsigned long)));
    (void)syscall(__NR_sched_setaffinity, 0, sizeof mask, mask);
}

static inline void *cfuse_uring_worker(void *arg) {
    struct cfuse_uring_queue *q = arg;
    cfuse_uring_pin(q->qid);
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (!q->jobs && !atomic_load(&q->u->stopping)) {
            q->idle++;
            pthread_cond_wait(&q->cond, &q->lock);
            q->idle--;
        }
        struct cfuse_uring_job *job = q->jobs;
        if (!job) break;
        q->jobs = job->next;
        if (!q->jobs) q->jobs_tail = NULL;
        pthread_mutex_unlock(&q->lock);
        if (job->ent) {
            fuse_session_process_buf(q->u->se, &job->buf);
            free(job);
        } else {
            job->fn(job->arg);
            atomic_store(job->done, 1);
            cfuse_uring_wake(q);
        }
        pthread_mutex_lock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

/* Rebuilds the request of `e` in place and serves it: here, or on a worker when `delegate`. */
static inline void cfuse_uring_dispatch(struct cfuse_uring_queue *q, struct cfuse_uring_ent *e, int delegate) {
    struct cfuse_in_header in;
    memcpy(&in, e->hdr->in_out, sizeof in);
    uint32_t payload = e->hdr->ent.payload_sz;
    e->commit_id = e->hdr->ent.commit_id;
    if (in.len < sizeof in || payload > q->u->payload || in.len - sizeof in < payload
        || in.len - sizeof in - payload > sizeof e->hdr->op_in) {
        cfuse_uring_reply_error(e, in.unique, EIO);
        return;
    }
    size_t op = in.len - sizeof in - payload;
    char *msg = e->payload - op - sizeof in;
    memmove(e->payload - op, e->hdr->op_in, op);   /* first: it may overlap the header's target */
    memmove(msg, &in, sizeof in);
    atomic_store(&e->unique, in.unique);
    q->served++;
    struct fuse_buf buf = { .size = in.len, .flags = 0, .mem = msg, .fd = -1, .pos = 0 };
    if (!delegate) {
        fuse_session_process_buf(q->u->se, &buf);
        return;
    }
    struct cfuse_uring_job *job = calloc(1, sizeof *job);
    if (!job) {
        atomic_store(&e->unique, 0);
        cfuse_uring_reply_error(e, in.unique, ENOMEM);
        return;
    }
    job->ent = e;
    job->buf = buf;
    cfuse_uring_push_job(q, job);
}

/* Registers one more entry when too few wait in the kernel (parked requests hold theirs). */
static inline void cfuse_uring_grow(struct cfuse_uring_queue *q) {
    unsigned n = atomic_load(&q->n_ents);
    if (q->in_kernel >= CFUSE_URING_LOW_WATER || n >= CFUSE_URING_MAX_ENTS || atomic_load(&q->u->stopping)) return;
    struct cfuse_uring_ent *e = cfuse_uring_ent_new(q);
    if (!e) return;
    if (cfuse_uring_prep(q, e, CFUSE_IO_URING_CMD_REGISTER) != 0) { munmap(e->mem, e->map_size); free(e); return; }
    q->ents[n] = e;
    atomic_store(&q->n_ents, n + 1);
}

/*
 * The ring loop: waits for completions, serves requests (inline, or through workers when
 * `delegate`), commits replies handed over by other threads, and returns when the transport
 * stops or, when `done` is given, once *done is set.
 */
static inline void cfuse_uring_loop(struct cfuse_uring_queue *q, int delegate, _Atomic int *done) {
    struct cfuse_uring *u = q->u;
    while (!atomic_load(&u->stopping)) {
        if (done && atomic_load(done)) return;
        int rc = cfuse_ring_submit(&q->ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
            char line[128];
            snprintf(line, sizeof line, "io_uring queue %d: io_uring_enter failed: %s", q->qid, strerror(-rc));
            cfuse_uring_say(u, 1, line);
            return;
        }
        struct io_uring_cqe *cqe;
        while ((cqe = cfuse_ring_peek(&q->ring)) != NULL) {
            uint64_t data = cqe->user_data;
            int res = cqe->res;
            cfuse_ring_seen(&q->ring);   /* before serving: a handler may nest this loop */
            if (data == CFUSE_URING_EFD_TAG) {
                pthread_mutex_lock(&q->lock);
                struct cfuse_uring_ent *list = q->commits;
                q->commits = NULL;
                pthread_mutex_unlock(&q->lock);
                for (; list; list = list->next_commit)
                    if (cfuse_uring_prep(q, list, CFUSE_IO_URING_CMD_COMMIT_AND_FETCH) != 0) list->dead = 1;
                cfuse_uring_arm_eventfd(q);
                continue;
            }
            struct cfuse_uring_ent *e = (struct cfuse_uring_ent *)(uintptr_t)data;
            q->in_kernel--;
            if (res == 0) {
                cfuse_uring_dispatch(q, e, delegate);
            } else if (res == -EAGAIN || res == -EINTR) {
                cfuse_uring_prep(q, e, CFUSE_IO_URING_CMD_COMMIT_AND_FETCH);
            } else {
                e->dead = 1;   /* the connection ended (ENOTCONN) or the command was refused */
            }
        }
        cfuse_uring_grow(q);
    }
}

static inline void *cfuse_uring_thread(void *arg) {
    struct cfuse_uring_queue *q = arg;
    struct cfuse_uring *u = q->u;
    cfuse_uring_pin(q->qid);
    int rc = cfuse_ring_init(&q->ring, CFUSE_URING_SQ_SIZE, 2 * CFUSE_URING_SQ_SIZE);
    q->ring_ok = rc == 0;
    q->efd = eventfd(0, EFD_CLOEXEC);
    pthread_mutex_lock(&u->lock);
    if (rc != 0 || q->efd < 0) u->failed = rc != 0 ? (unsigned)-rc : (unsigned)errno;
    u->ready++;
    pthread_cond_broadcast(&u->cond);
    while (u->go == 0) pthread_cond_wait(&u->cond, &u->lock);
    int go = u->go;
    pthread_mutex_unlock(&u->lock);
    if (go < 0 || !q->ring_ok) return NULL;

    /* INIT was answered with FUSE_OVER_IO_URING: the entries exist (made while answering). */
    unsigned n = atomic_load(&q->n_ents);
    for (unsigned i = 0; i < n; i++) cfuse_uring_prep(q, q->ents[i], CFUSE_IO_URING_CMD_REGISTER);
    cfuse_uring_arm_eventfd(q);
    cfuse_ring_submit(&q->ring, 0);
    /* A refused REGISTER completes at once; an accepted one only with its first request. */
    struct io_uring_cqe *cqe;
    int refused = 0;
    while ((cqe = cfuse_ring_peek(&q->ring)) != NULL && cqe->res < 0 && cqe->user_data != CFUSE_URING_EFD_TAG) {
        struct cfuse_uring_ent *e = (struct cfuse_uring_ent *)(uintptr_t)cqe->user_data;
        if (!refused) {
            char why[160];
            snprintf(why, sizeof why, "the kernel refused FUSE_IO_URING_CMD_REGISTER on queue %d: %s (errno %d)",
                     q->qid, strerror(-cqe->res), -cqe->res);
            cfuse_uring_fall_back(u, why);
        }
        refused = 1;
        e->dead = 1;
        q->in_kernel--;
        cfuse_ring_seen(&q->ring);
    }
    if (!refused && atomic_fetch_add(&u->registered, 1) + 1 == u->nq) {
        char line[200];
        snprintf(line, sizeof line, "io_uring: serving over %u rings (one per possible CPU), %d entries each to start, %zu KiB payload per entry",
                 u->nq, CFUSE_URING_DEPTH, u->payload / 1024);
        cfuse_uring_say(u, 0, line);
    }
    atomic_store(&q->serving, 1);
    cfuse_uring_loop(q, 0, NULL);
    atomic_fetch_add(&u->ring_requests, q->served);
    atomic_store(&q->serving, 0);
    return NULL;
}

/*
 * Runs `fn(arg)` where it may block on the kernel: directly on any thread but a ring thread;
 * on a ring thread, on a worker while this thread keeps its ring serving (new requests go to
 * workers) until `fn` returns. Returns once `fn` returned.
 */
static inline void cfuse_uring_call_off_ring(struct cfuse_uring *u, void (*fn)(void *), void *arg) {
    struct cfuse_uring_queue *q = u ? cfuse_uring_current(u) : NULL;
    if (!q) {
        fn(arg);
        return;
    }
    _Atomic int done = 0;
    struct cfuse_uring_job job;
    memset(&job, 0, sizeof job);
    job.fn = fn;
    job.arg = arg;
    job.done = &done;
    cfuse_uring_push_job(q, &job);
    cfuse_uring_loop(q, 1, &done);
    while (!atomic_load(&done)) usleep(1000);   /* stopping: the connection is gone, fn returns soon */
}

/* The custom io's read: notes what INIT offers. */
static inline ssize_t cfuse_uring_read(struct cfuse_uring *u, int fd, void *buf, size_t len) {
    ssize_t n = read(fd, buf, len);
    if (u && n >= (ssize_t)(sizeof(struct cfuse_in_header) + 16)) {
        struct cfuse_in_header in;
        memcpy(&in, buf, sizeof in);
        if (in.opcode == CFUSE_FUSE_INIT) {
            const char *arg = (const char *)buf + sizeof in;
            uint32_t flags, flags2 = 0;
            memcpy(&flags, arg + 12, 4);
            if ((flags & CFUSE_INIT_EXT) && n >= (ssize_t)(sizeof in + 20)) memcpy(&flags2, arg + 16, 4);
            atomic_store(&u->offered, (flags2 & CFUSE_OVER_IO_URING_FLAGS2) != 0);
            atomic_store(&u->init_unique, in.unique);
        }
    }
    return n;
}

static inline void cfuse_uring_release_threads(struct cfuse_uring *u, int go) {
    pthread_mutex_lock(&u->lock);
    if (u->go == 0) u->go = go;
    pthread_cond_broadcast(&u->cond);
    pthread_mutex_unlock(&u->lock);
}

/* The INIT reply: sets FUSE_OVER_IO_URING when offered and every queue's entries exist. */
static inline int cfuse_uring_answer_init(struct cfuse_uring *u, struct iovec *iov, int count) {
    struct cfuse_out_header out;
    memcpy(&out, iov[0].iov_base, sizeof out);
    if (out.error != 0 || count < 2 || iov[1].iov_len < 40) return 0;
    if (!atomic_load(&u->offered)) {
        cfuse_uring_fall_back(u, "the kernel did not offer FUSE_OVER_IO_URING in INIT (enable_uring was off when the mount started)");
        return 0;
    }
    char *arg = iov[1].iov_base;
    uint32_t flags, max_write;
    uint16_t max_pages;
    memcpy(&flags, arg + 12, 4);
    memcpy(&max_write, arg + 20, 4);
    memcpy(&max_pages, arg + 32, 2);
    size_t pages = (flags & CFUSE_MAX_PAGES) ? max_pages : 32;   /* the kernel's default */
    size_t payload = 8192;                                        /* FUSE_MIN_READ_BUFFER */
    if (max_write > payload) payload = max_write;
    if (pages * 4096 > payload) payload = pages * 4096;
    u->payload = (payload + 4095) & ~(size_t)4095;
    for (unsigned i = 0; i < u->nq; i++) {
        struct cfuse_uring_queue *q = &u->queues[i];
        for (unsigned k = 0; k < CFUSE_URING_DEPTH; k++) {
            struct cfuse_uring_ent *e = cfuse_uring_ent_new(q);
            if (!e) {
                cfuse_uring_fall_back(u, "cannot map the ring buffers (ENOMEM)");
                return 0;
            }
            q->ents[k] = e;
            atomic_store(&q->n_ents, k + 1);
        }
    }
    uint32_t flags2;
    memcpy(&flags2, arg + 36, 4);
    flags |= CFUSE_INIT_EXT;
    flags2 |= CFUSE_OVER_IO_URING_FLAGS2;
    memcpy(arg + 12, &flags, 4);
    memcpy(arg + 36, &flags2, 4);
    return 1;
}

/*
 * An interrupt libfuse answered EAGAIN: it came (on /dev/fuse) before its request (on a ring)
 * reached libfuse, and another request made libfuse give it back. The kernel requeues such an
 * interrupt only for a /dev/fuse request; for a ring request it would be lost, and a parked
 * request would wait on. So libfuse gets it again at once, to keep until its request comes,
 * at most CFUSE_URING_REINJECT_MAX times (an interrupt whose request was answered meanwhile).
 */
static inline void cfuse_uring_reinject_interrupt(struct cfuse_uring *u, uint64_t unique) {
    pthread_mutex_lock(&u->reinject_lock);
    unsigned slot = 0, count = 0;
    int found = 0;
    for (unsigned i = 0; i < CFUSE_URING_REINJECT_SLOTS; i++)
        if (u->reinject[i].unique == unique) { slot = i; found = 1; break; }
    if (!found) {
        for (unsigned i = 0; i < CFUSE_URING_REINJECT_SLOTS; i++)
            if (u->reinject[i].unique == 0 || u->reinject[i].count >= CFUSE_URING_REINJECT_MAX) { slot = i; break; }
        u->reinject[slot].unique = unique;
        u->reinject[slot].count = 0;
    }
    count = ++u->reinject[slot].count;
    pthread_mutex_unlock(&u->reinject_lock);
    if (count > CFUSE_URING_REINJECT_MAX) return;
    struct { struct cfuse_in_header in; uint64_t target; } msg;
    memset(&msg, 0, sizeof msg);
    msg.in.len = sizeof msg;
    msg.in.opcode = CFUSE_FUSE_INTERRUPT;
    msg.in.unique = unique | CFUSE_INT_REQ_BIT;
    msg.target = unique;
    struct fuse_buf buf = { .size = sizeof msg, .flags = 0, .mem = &msg, .fd = -1, .pos = 0 };
    fuse_session_process_buf(u->se, &buf);
}

/* The custom io's writev: ring replies into their entries, everything else to /dev/fuse. */
static inline ssize_t cfuse_uring_writev(struct cfuse_uring *u, int fd, struct iovec *iov, int count) {
    struct cfuse_out_header out;
    if (!u || count < 1 || iov[0].iov_len < sizeof out) return writev(fd, iov, count);
    memcpy(&out, iov[0].iov_base, sizeof out);
    if (out.unique != 0 && out.unique == atomic_load(&u->init_unique)) {
        atomic_store(&u->init_unique, 0);
        int ring = cfuse_uring_answer_init(u, iov, count);
        ssize_t n = writev(fd, iov, count);
        if (ring && n < 0) cfuse_uring_fall_back(u, "the INIT reply was refused");
        cfuse_uring_release_threads(u, ring && n >= 0 ? 1 : -1);
        return n;
    }
    if (out.unique == 0) return writev(fd, iov, count);   /* a notification */
    if ((out.unique & CFUSE_INT_REQ_BIT) && out.error == -EAGAIN && atomic_load(&u->registered) == u->nq) {
        cfuse_uring_reinject_interrupt(u, out.unique & ~CFUSE_INT_REQ_BIT);
        return (ssize_t)sizeof out;
    }
    for (unsigned i = 0; i < u->nq; i++) {
        struct cfuse_uring_queue *q = &u->queues[i];
        unsigned n = atomic_load(&q->n_ents);
        for (unsigned k = 0; k < n; k++) {
            struct cfuse_uring_ent *e = q->ents[k];
            uint64_t expected = out.unique;
            if (atomic_load(&e->unique) != expected || !atomic_compare_exchange_strong(&e->unique, &expected, 0)) continue;
            size_t total = 0;
            for (int j = 1; j < count; j++) total += iov[j].iov_len;
            if (total > u->payload) {
                out.error = -EIO;
                total = 0;
            } else {
                size_t at = 0;
                for (int j = 1; j < count; j++) {
                    memmove(e->payload + at, iov[j].iov_base, iov[j].iov_len);
                    at += iov[j].iov_len;
                }
            }
            out.len = (uint32_t)(sizeof out + total);
            memcpy(e->hdr->in_out, &out, sizeof out);
            e->hdr->ent.payload_sz = (uint32_t)total;
            cfuse_uring_commit(e);
            return (ssize_t)(sizeof out + total);
        }
    }
    return writev(fd, iov, count);   /* a /dev/fuse request (or an interrupt's reply) */
}

/*
 * Starts the ring threads (before the session loop, after any fork). Returns NULL and a
 * reason in `why` when io_uring cannot be used; the session then stays classic.
 */
static inline struct cfuse_uring *cfuse_uring_start(struct fuse_session *se,
                                                    void (*report)(void *, int, const char *), void *report_ctx,
                                                    char *why, size_t why_size) {
    char param = cfuse_uring_parameter();
    if (param == 0) { snprintf(why, why_size, "this kernel has no FUSE-over-io_uring (no /sys/module/fuse/parameters/enable_uring)"); return NULL; }
    if (param != 'Y') { snprintf(why, why_size, "/sys/module/fuse/parameters/enable_uring is N (root may set it to Y)"); return NULL; }
    int cpus = cfuse_uring_possible_cpus();
    if (cpus < 1) { snprintf(why, why_size, "cannot read /sys/devices/system/cpu/possible"); return NULL; }
    if (cpus > CFUSE_URING_MAX_QUEUES) {
        snprintf(why, why_size, "%d possible CPUs: the kernel wants one ring per possible CPU and gmemfs caps them at %d threads", cpus, CFUSE_URING_MAX_QUEUES);
        return NULL;
    }
    struct cfuse_uring *u = calloc(1, sizeof *u);
    if (!u) { snprintf(why, why_size, "out of memory"); return NULL; }
    u->queues = calloc((size_t)cpus, sizeof *u->queues);
    if (!u->queues) { free(u); snprintf(why, why_size, "out of memory"); return NULL; }
    u->se = se;
    u->fd = fuse_session_fd(se);
    u->nq = (unsigned)cpus;
    u->report = report;
    u->report_ctx = report_ctx;
    pthread_mutex_init(&u->lock, NULL);
    pthread_cond_init(&u->cond, NULL);
    pthread_mutex_init(&u->reinject_lock, NULL);
    unsigned started = 0;
    for (unsigned i = 0; i < u->nq; i++) {
        struct cfuse_uring_queue *q = &u->queues[i];
        q->u = u;
        q->qid = (int)i;
        q->efd = -1;
        pthread_mutex_init(&q->lock, NULL);
        pthread_cond_init(&q->cond, NULL);
    }
    pthread_mutex_lock(&u->lock);
    for (unsigned i = 0; i < u->nq; i++) {
        struct cfuse_uring_queue *q = &u->queues[i];
        if (pthread_create(&q->tid, NULL, cfuse_uring_thread, q) != 0) { u->failed = EAGAIN; break; }
        q->thread_started = 1;
        started++;
    }
    while (u->ready < started) pthread_cond_wait(&u->cond, &u->lock);
    unsigned failed = u->failed;
    pthread_mutex_unlock(&u->lock);
    if (failed) {
        snprintf(why, why_size, "cannot set up the rings: %s (errno %u)", strerror((int)failed), failed);
        cfuse_uring_release_threads(u, -1);
        for (unsigned i = 0; i < u->nq; i++) {
            struct cfuse_uring_queue *q = &u->queues[i];
            if (q->thread_started) pthread_join(q->tid, NULL);
            if (q->ring_ok) cfuse_ring_exit(&q->ring);
            if (q->efd >= 0) close(q->efd);
        }
        free(u->queues);
        free(u);
        return NULL;
    }
    return u;
}

/*
 * The death watcher of an io_uring session with auto_unmount. A killed daemon's rings are torn
 * down asynchronously (the kernel's io_uring exit work cancels the commands that hold
 * /dev/fuse), so the connection can outlive the daemon's other files, and fusermount3's
 * auto_unmount helper, which looks once the daemon's end of its socket closes, would find the
 * mount alive and leave it to die later. A child forked here keeps the daemon's sockets (that
 * end among them) and a pipe's read end, and nothing else. When the pipe ends without a byte
 * (the daemon died; a clean stop writes one first) it asks statfs of the mountpoint, a request
 * that fails (ECONNABORTED, or ENOTCONN; ECANCELED meanwhile: asked again) once the connection is
 * torn down (bounded by a 10 s alarm), lazily
 * unmounts the dead mount (root), and exits, closing the sockets for the helper, which then
 * finds the mount dead. Only async-signal-safe calls run in the child. Returns the pipe's
 * write end, or -1.
 */
static inline int cfuse_uring_watch_death(const char *mountpoint) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    (void)fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    pid_t pid = fork();
    if (pid < 0) { close(fds[0]); close(fds[1]); return -1; }
    if (pid == 0) {
        if (dup2(fds[0], 0) < 0) _exit(1);
        for (int fd = 1; fd < 1024; fd++) {
            struct stat st;
            if (fstat(fd, &st) == 0 && !S_ISSOCK(st.st_mode)) close(fd);
        }
        syscall(__NR_close_range, 1024u, ~0u, 0u);
        if (chdir("/") != 0) _exit(1);
        char c;
        for (;;) {
            ssize_t n = read(0, &c, 1);
            if (n > 0) _exit(0);                       /* a clean stop */
            if (n == 0 || errno != EINTR) break;       /* the daemon is gone */
        }
        alarm(10);
        /* statfs always asks the daemon (an opendir may not: no_opendir); ECONNABORTED: the
         * request was pending when the connection was torn down. */
        struct statfs sf;
        for (;;) {
            if (statfs(mountpoint, &sf) == 0) break;                     /* someone serves it */
            if (errno == ENOTCONN || errno == ECONNABORTED) { (void)umount2(mountpoint, MNT_DETACH); break; }
            if (errno != ECANCELED && errno != EINTR) break;
            /* ECANCELED: the request met a ring entry of the dead daemon; the teardown goes on. */
            struct timespec ten_ms = { 0, 10 * 1000 * 1000 };
            nanosleep(&ten_ms, NULL);
        }
        _exit(0);
    }
    close(fds[0]);
    return fds[1];
}

/* Tells the watcher the daemon stops cleanly (it then exits at once). */
static inline void cfuse_uring_watch_clean_stop(int fd) {
    char c = 1;
    ssize_t n = write(fd, &c, 1);
    (void)n;
    close(fd);
}

/* Waits, at most `timeout_ms`, until every reply handed to a ring thread from another thread
 * has been taken by it, then a little longer for the thread to submit it: replies answered
 * while the session ends (parked READs) reach the kernel before the connection closes. */
static inline void cfuse_uring_drain_commits(struct cfuse_uring *u, int timeout_ms) {
    for (int t = 0; t < timeout_ms; t++) {
        int pending = 0;
        for (unsigned i = 0; i < u->nq; i++) {
            pthread_mutex_lock(&u->queues[i].lock);
            if (u->queues[i].commits) pending = 1;
            pthread_mutex_unlock(&u->queues[i].lock);
        }
        if (!pending) { usleep(5000); return; }
        usleep(1000);
    }
}

/*
 * Stops the transport, in two steps, after the session loop returned and the file system was
 * unmounted: `begin_stop` makes ring threads leave their loops (a call off the ring then waits
 * for its worker); `finish_stop` joins the threads, closes the rings (which cancels the entries
 * still in the kernel) and frees everything. Returns the number of requests served over the
 * rings.
 */
static inline void cfuse_uring_begin_stop(struct cfuse_uring *u) {
    atomic_store(&u->stopping, 1);
    cfuse_uring_release_threads(u, -1);
    for (unsigned i = 0; i < u->nq; i++) {
        struct cfuse_uring_queue *q = &u->queues[i];
        if (q->efd >= 0) cfuse_uring_wake(q);
        pthread_mutex_lock(&q->lock);
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
    }
}

static inline uint64_t cfuse_uring_finish_stop(struct cfuse_uring *u) {
    for (unsigned i = 0; i < u->nq; i++) {
        struct cfuse_uring_queue *q = &u->queues[i];
        if (q->thread_started) pthread_join(q->tid, NULL);
        pthread_mutex_lock(&q->lock);
        unsigned workers = q->workers;
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
        for (unsigned w = 0; w < workers; w++) pthread_join(q->worker_tids[w], NULL);
        if (q->ring_ok) cfuse_ring_exit(&q->ring);
        if (q->efd >= 0) close(q->efd);
        unsigned n = atomic_load(&q->n_ents);
        for (unsigned k = 0; k < n; k++) { munmap(q->ents[k]->mem, q->ents[k]->map_size); free(q->ents[k]); }
    }
    uint64_t served = atomic_load(&u->ring_requests);
    free(u->queues);
    free(u);
    return served;
}

#endif
