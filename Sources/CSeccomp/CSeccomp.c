#define _GNU_SOURCE
#include "CSeccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "CSeccomp: unsupported architecture"
#endif
#ifndef __NR_openat2
#define __NR_openat2 437
#endif

/* Offsets in struct seccomp_data; the low 32 bits of an argument (little-endian). */
#define DATA_NR offsetof(struct seccomp_data, nr)
#define DATA_ARCH offsetof(struct seccomp_data, arch)
#define DATA_ARG_LOW(i) (offsetof(struct seccomp_data, args) + 8 * (i))

/* ---- the filter ----
 * A forward-only program: every jump goes to the next check, to NOTIFY or to ALLOW, resolved
 * once the program is laid out. */
enum { LABEL_NONE = -1, LABEL_ALLOW = -2, LABEL_NOTIFY = -3 };
struct builder {
	struct sock_filter code[64];
	int jt[64], jf[64];      /* labels: an instruction index, or LABEL_ALLOW / LABEL_NOTIFY */
	int count;
};
static int emit(struct builder *b, uint16_t code, uint32_t k, int jt, int jf) {
	if (b->count >= 60) return -1;
	b->code[b->count] = (struct sock_filter)BPF_STMT(code, k);
	b->jt[b->count] = jt; b->jf[b->count] = jf;
	return b->count++;
}
static int build_filter(const struct cseccomp_filter_options *o, struct builder *b) {
	memset(b, 0, sizeof *b);
	/* Other ABIs (i386 through int 0x80, x32) pass untouched. */
	emit(b, BPF_LD | BPF_W | BPF_ABS, DATA_ARCH, LABEL_NONE, LABEL_NONE);
	int arch = emit(b, BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, LABEL_NONE, LABEL_ALLOW);
	(void)arch;
	emit(b, BPF_LD | BPF_W | BPF_ABS, DATA_NR, LABEL_NONE, LABEL_NONE);
	int is_ioctl = emit(b, BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, LABEL_NONE, LABEL_NONE);
	int is_mmap = emit(b, BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, LABEL_NONE, LABEL_NONE);
	if (o->emulate_kvm) {
#ifdef __NR_open
		emit(b, BPF_JMP | BPF_JEQ | BPF_K, __NR_open, LABEL_NOTIFY, LABEL_NONE);
#endif
		emit(b, BPF_JMP | BPF_JEQ | BPF_K, __NR_openat, LABEL_NOTIFY, LABEL_NONE);
		emit(b, BPF_JMP | BPF_JEQ | BPF_K, __NR_openat2, LABEL_NOTIFY, LABEL_NONE);
	}
	emit(b, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, LABEL_NONE, LABEL_NONE);
	/* ioctl: the command is an unsigned int (argument 1, low word). */
	int ioctl_start = emit(b, BPF_LD | BPF_W | BPF_ABS, DATA_ARG_LOW(1), LABEL_NONE, LABEL_NONE);
	b->jt[is_ioctl] = ioctl_start;
	for (uint32_t i = 0; i < o->ioctl_count && i < 8; i++)
		emit(b, BPF_JMP | BPF_JEQ | BPF_K, o->ioctls[i], LABEL_NOTIFY, LABEL_NONE);
	if (o->emulate_kvm) {
		emit(b, BPF_ALU | BPF_AND | BPF_K, 0xff00, LABEL_NONE, LABEL_NONE);
		emit(b, BPF_JMP | BPF_JEQ | BPF_K, 0xAE00, LABEL_NOTIFY, LABEL_NONE);
	}
	emit(b, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, LABEL_NONE, LABEL_NONE);
	/* mmap: flags (argument 3) with type MAP_PRIVATE and no MAP_ANONYMOUS. MAP_SHARED_VALIDATE
	 * (3) is a shared type, so the whole 4-bit type field is compared. */
	int mmap_start = emit(b, BPF_LD | BPF_W | BPF_ABS, DATA_ARG_LOW(3), LABEL_NONE, LABEL_NONE);
	b->jt[is_mmap] = mmap_start;
	emit(b, BPF_ALU | BPF_AND | BPF_K, MAP_TYPE | MAP_ANONYMOUS, LABEL_NONE, LABEL_NONE);
	emit(b, BPF_JMP | BPF_JEQ | BPF_K, MAP_PRIVATE, LABEL_NOTIFY, LABEL_ALLOW);
	int allow = emit(b, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, LABEL_NONE, LABEL_NONE);
	int notify = emit(b, BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF, LABEL_NONE, LABEL_NONE);
	if (notify < 0) return -1;
	for (int i = 0; i < b->count; i++) {
		if (BPF_CLASS(b->code[i].code) != BPF_JMP) continue;
		int targets[2] = { b->jt[i], b->jf[i] };
		int offsets[2];
		for (int t = 0; t < 2; t++) {
			int target = targets[t] == LABEL_ALLOW ? allow : targets[t] == LABEL_NOTIFY ? notify
			           : targets[t] == LABEL_NONE ? i + 1 : targets[t];
			offsets[t] = target - i - 1;
			if (offsets[t] < 0 || offsets[t] > 255) return -1;
		}
		b->code[i].jt = (uint8_t)offsets[0];
		b->code[i].jf = (uint8_t)offsets[1];
	}
	return 0;
}

static void write_all(int fd, const void *p, size_t n) {
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR) continue;
		if (w <= 0) return;
		c += w; n -= (size_t)w;
	}
}

static int send_fd(int socket, int fd) {
	char byte = 0;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } control;
	memset(&control, 0, sizeof control);
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS; c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(socket, &msg, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

static int receive_fd(int socket) {
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } control;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf };
	ssize_t n;
	do n = recvmsg(socket, &msg, MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
	if (n != 1) { if (n == 0) errno = ECHILD; return -1; }
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int))) { errno = EPROTO; return -1; }
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof fd);
	return fd;
}

/* The child's signal state as a shell would give it: default dispositions, nothing blocked. */
static void reset_signals(void) {
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	for (int s = 1; s < NSIG; s++) if (s != SIGKILL && s != SIGSTOP) sigaction(s, &dfl, NULL);
	sigset_t none; sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

pid_t cseccomp_spawn(char *const argv[], const struct cseccomp_filter_options *options, int take_terminal,
                     int *listener, int *exec_errno) {
	struct builder b;
	if (build_filter(options, &b) != 0) { errno = E2BIG; return -1; }
	struct sock_fprog prog = { .len = (unsigned short)b.count, .filter = b.code };
	int sockets[2], status_pipe[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sockets) != 0) return -1;
	if (pipe2(status_pipe, O_CLOEXEC) != 0) { close(sockets[0]); close(sockets[1]); return -1; }
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) { int e = errno; close(sockets[0]); close(sockets[1]); close(status_pipe[0]); close(status_pipe[1]); errno = e; return -1; }
	if (pid == 0) {
		int e = 0;
		setpgid(0, 0);
		if (take_terminal) {
			signal(SIGTTOU, SIG_IGN);
			tcsetpgrp(STDIN_FILENO, getpid());
		}
		reset_signals();
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent) _exit(127);
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) e = errno;
		int fd = e ? -1 : (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
		if (!e && fd < 0) e = errno;
		if (!e && send_fd(sockets[1], fd) != 0) e = errno;
		if (e) { e = -e; write_all(status_pipe[1], &e, sizeof e); _exit(126); }
		close(fd);
		execvp(argv[0], argv);
		e = errno;
		write_all(status_pipe[1], &e, sizeof e);
		_exit(e == ENOENT ? 127 : 126);
	}
	setpgid(pid, pid);   /* as a shell does: the group exists whichever runs first */
	close(sockets[1]);
	close(status_pipe[1]);
	*listener = receive_fd(sockets[0]);
	int receive_errno = errno;
	close(sockets[0]);
	/* End-of-file on the status pipe: exec succeeded (the write end is close-on-exec). Only
	 * then may the parent block on notifications; reading first cannot deadlock, because the
	 * child makes no trapped call before exec. */
	int e = 0;
	ssize_t n;
	do n = read(status_pipe[0], &e, sizeof e); while (n < 0 && errno == EINTR);
	close(status_pipe[0]);
	*exec_errno = n == (ssize_t)sizeof e ? e : 0;
	if (*listener < 0 && *exec_errno == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		errno = receive_errno;
		return -1;
	}
	return pid;
}

pid_t cseccomp_spawn_plain(char *const argv[], int output_fd) {
	pid_t pid = fork();
	if (pid != 0) return pid;
	setsid();
	reset_signals();
	int null = open("/dev/null", O_RDONLY);
	if (null >= 0) { dup2(null, STDIN_FILENO); if (null != STDIN_FILENO) close(null); }
	if (output_fd >= 0) { dup2(output_fd, STDOUT_FILENO); dup2(output_fd, STDERR_FILENO); }
	execv(argv[0], argv);
	_exit(127);
}

int cseccomp_receive(int listener, struct cseccomp_notification *out) {
	struct seccomp_notif n;
	memset(&n, 0, sizeof n);
	if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &n) != 0) return -1;
	out->id = n.id; out->pid = n.pid; out->nr = n.data.nr; out->arch = n.data.arch;
	for (int i = 0; i < 6; i++) out->args[i] = n.data.args[i];
	return 0;
}

int cseccomp_respond(int listener, uint64_t id, int64_t value, int error) {
	struct seccomp_notif_resp r = { .id = id, .val = error ? 0 : value, .error = error ? -error : 0, .flags = 0 };
	return ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &r);
}

int cseccomp_continue(int listener, uint64_t id) {
	struct seccomp_notif_resp r = { .id = id, .val = 0, .error = 0, .flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE };
	return ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &r);
}

int cseccomp_add_fd_and_respond(int listener, uint64_t id, int fd, uint32_t fd_flags) {
	struct seccomp_notif_addfd a = { .id = id, .flags = SECCOMP_ADDFD_FLAG_SEND, .srcfd = (uint32_t)fd, .newfd = 0, .newfd_flags = fd_flags };
	return ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &a);
}

int cseccomp_id_valid(int listener, uint64_t id) {
	return ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

ssize_t cseccomp_read_memory(pid_t pid, uint64_t address, void *buffer, size_t size) {
	struct iovec local = { .iov_base = buffer, .iov_len = size };
	struct iovec remote = { .iov_base = (void *)(uintptr_t)address, .iov_len = size };
	return process_vm_readv(pid, &local, 1, &remote, 1, 0);
}

/* ---- memslots: driving the caller with ptrace (docs/run.md, "Memslots") ---- */
#if defined(__x86_64__)
#define REGION2_SIZE 160
#define ERESTARTSYS_VALUE 512   /* the kernel's internal -ERESTARTSYS, seen by a tracer */

struct tracee { pid_t tid; int pending_signal; };

/* Waits for the next syscall-stop (SIGTRAP | 0x80), resuming through other stops: an interrupt
 * or group-stop is passed over, a signal is held back and delivered at detach. */
static int wait_syscall_stop(struct tracee *t) {
	for (;;) {
		int status;
		pid_t r = waitpid(t->tid, &status, __WALL);
		if (r < 0 && errno == EINTR) continue;
		if (r < 0) return -errno;
		if (!WIFSTOPPED(status)) return -ESRCH;   /* exited or killed */
		if (WSTOPSIG(status) == (SIGTRAP | 0x80)) return 0;
		if ((status >> 16) == 0 && WSTOPSIG(status) != SIGTRAP) t->pending_signal = WSTOPSIG(status);
		if (ptrace(PTRACE_SYSCALL, t->tid, 0, 0) != 0) return -errno;
	}
}

/* Runs one system call in the stopped thread at `syscall_at` (a `syscall` instruction) and
 * returns its result (a value or -errno) in *ret. */
static int inject(struct tracee *t, const struct user_regs_struct *base, uint64_t syscall_at, long nr,
                  uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, int64_t *ret) {
	struct user_regs_struct r = *base;
	r.rax = (unsigned long long)nr; r.orig_rax = (unsigned long long)-1; r.rip = syscall_at;
	r.rdi = a0; r.rsi = a1; r.rdx = a2; r.r10 = a3; r.r8 = a4; r.r9 = a5;
	if (ptrace(PTRACE_SETREGS, t->tid, 0, &r) != 0) return -errno;
	if (ptrace(PTRACE_SYSCALL, t->tid, 0, 0) != 0) return -errno;
	int e = wait_syscall_stop(t);                         /* entry */
	if (e) return e;
	if (ptrace(PTRACE_SYSCALL, t->tid, 0, 0) != 0) return -errno;
	if ((e = wait_syscall_stop(t))) return e;             /* exit */
	if (ptrace(PTRACE_GETREGS, t->tid, 0, &r) != 0) return -errno;
	*ret = (int64_t)r.rax;
	return 0;
}

/* The re-run ioctl's notification: answered with CONTINUE; others are kept for the caller
 * (stale ones dropped when the array is full). Meanwhile the thread may stop: a signal
 * interrupts the notification wait (the signal is held back, the ioctl restarts and notifies
 * again), or the restarted ioctl reports its syscall-entry. */
static int continue_rerun(int listener, struct tracee *t, uint64_t scratch, struct cseccomp_notification *others,
                          int capacity, int *count) {
	for (int waited = 0; waited < 6000;) {
		int status;
		pid_t w = waitpid(t->tid, &status, WNOHANG | __WALL);
		if (w == t->tid) {
			if (!WIFSTOPPED(status)) return -ESRCH;
			if ((status >> 16) == 0 && WSTOPSIG(status) != SIGTRAP && WSTOPSIG(status) != (SIGTRAP | 0x80))
				t->pending_signal = WSTOPSIG(status);
			if (ptrace(PTRACE_SYSCALL, t->tid, 0, 0) != 0) return -errno;
			continue;
		}
		struct pollfd p = { .fd = listener, .events = POLLIN };
		int n = poll(&p, 1, 10);
		if (n < 0 && errno == EINTR) continue;
		if (n == 0) { waited++; continue; }
		if (!(p.revents & POLLIN)) return -ESRCH;
		struct cseccomp_notification c;
		if (cseccomp_receive(listener, &c) != 0) continue;
		if ((pid_t)c.pid == t->tid && c.nr == __NR_ioctl && c.args[2] == scratch) {
			cseccomp_continue(listener, c.id);
			return 0;
		}
		if (*count == capacity) {
			int kept = 0;
			for (int i = 0; i < *count; i++) if (cseccomp_id_valid(listener, others[i].id)) others[kept++] = others[i];
			*count = kept;
		}
		if (*count < capacity) others[(*count)++] = c;
		else cseccomp_continue(listener, c.id);   /* as many live notifications as threads: never here in practice */
	}
	return -ETIMEDOUT;
}

int cseccomp_bind_memslot(int listener, uint64_t id, pid_t tid, int map_fd, uint64_t map_size, uint64_t *mapped,
                          const void *region, int add_mapped, int64_t *result,
                          struct cseccomp_notification *others, int others_capacity, int *others_count) {
	*others_count = 0;
	int remote_fd = -1;
	if (map_fd >= 0) {
		struct seccomp_notif_addfd a = { .id = id, .flags = 0, .srcfd = (uint32_t)map_fd, .newfd = 0, .newfd_flags = O_CLOEXEC };
		remote_fd = ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &a);
		if (remote_fd < 0) return errno == ENOENT ? -EAGAIN : -errno;   /* ENOENT: withdrawn by a signal */
	}
	struct tracee t = { .tid = tid, .pending_signal = 0 };
	if (ptrace(PTRACE_SEIZE, tid, 0, (void *)(uintptr_t)PTRACE_O_TRACESYSGOOD) != 0) return -errno;
	/* The interrupt ends the notification wait (the filter is not WAIT_KILLABLE_RECV): the
	 * ioctl is left with -ERESTARTSYS, to be restarted, and the thread stops. */
	int e = ptrace(PTRACE_INTERRUPT, tid, 0, 0) != 0 ? -errno : 0;
	int status = 0;
	while (!e) {
		pid_t r = waitpid(tid, &status, __WALL);
		if (r < 0 && errno == EINTR) continue;
		if (r < 0) e = -errno;
		else if (!WIFSTOPPED(status)) e = -ESRCH;
		break;
	}
	if (e) { ptrace(PTRACE_DETACH, tid, 0, 0); return e; }
	if ((status >> 16) == 0 && WSTOPSIG(status) != SIGTRAP) t.pending_signal = WSTOPSIG(status);
	struct user_regs_struct saved;
	if (ptrace(PTRACE_GETREGS, tid, 0, &saved) != 0) { e = -errno; ptrace(PTRACE_DETACH, tid, 0, 0); return e; }
	uint64_t syscall_at = saved.rip - 2;
	errno = 0;
	long text = ptrace(PTRACE_PEEKTEXT, tid, (void *)(uintptr_t)syscall_at, 0);
	int64_t value = -EINVAL;
	if (saved.orig_rax != __NR_ioctl || (int64_t)saved.rax != -ERESTARTSYS_VALUE || errno != 0 || (text & 0xffff) != 0x050f) {
		/* Not stopped in the ioctl's restart (a signal ended the notification first, and the
		 * thread is elsewhere): left untouched; its ioctl, when re-made, notifies again. */
		ptrace(PTRACE_DETACH, tid, 0, (void *)(uintptr_t)t.pending_signal);
		return -EAGAIN;
	}
	if (map_fd >= 0) {
		int64_t address = 0, closed = 0;
		e = inject(&t, &saved, syscall_at, __NR_mmap, 0, map_size, PROT_READ | PROT_WRITE, MAP_SHARED, (uint64_t)remote_fd, 0, &address);
		if (!e) e = inject(&t, &saved, syscall_at, __NR_close, (uint64_t)remote_fd, 0, 0, 0, 0, 0, &closed);
		if (!e && address < 0 && address >= -4095) e = (int)address;   /* the mmap's errno */
		if (e) goto finish;
		*mapped = (uint64_t)address;
	}
	/* The rewritten struct, below the red zone of the thread's stack. */
	uint8_t copy[REGION2_SIZE];
	memcpy(copy, region, sizeof copy);
	if (add_mapped) {
		uint64_t user;
		memcpy(&user, copy + 24, 8);
		user += *mapped;
		memcpy(copy + 24, &user, 8);
	}
	uint64_t scratch = (saved.rsp - 128 - REGION2_SIZE) & ~(uint64_t)15;
	struct iovec local = { .iov_base = copy, .iov_len = sizeof copy };
	struct iovec remote = { .iov_base = (void *)(uintptr_t)scratch, .iov_len = sizeof copy };
	uint8_t old[REGION2_SIZE];
	struct iovec keep = { .iov_base = old, .iov_len = sizeof old };
	if (process_vm_readv(tid, &keep, 1, &remote, 1, 0) != (ssize_t)sizeof old ||
	    process_vm_writev(tid, &local, 1, &remote, 1, 0) != (ssize_t)sizeof copy) { e = -EFAULT; goto finish; }
	struct user_regs_struct r = saved;
	r.rax = saved.orig_rax; r.orig_rax = (unsigned long long)-1; r.rip = syscall_at; r.rdx = scratch;
	if (ptrace(PTRACE_SETREGS, tid, 0, &r) != 0 || ptrace(PTRACE_SYSCALL, tid, 0, 0) != 0) { e = -errno; goto finish; }
	if ((e = wait_syscall_stop(&t))) goto finish;                       /* entry; seccomp next */
	if (ptrace(PTRACE_SYSCALL, tid, 0, 0) != 0) { e = -errno; goto finish; }
	if ((e = continue_rerun(listener, &t, scratch, others, others_capacity, others_count))) goto finish;
	if ((e = wait_syscall_stop(&t))) goto finish;                       /* exit: the real KVM's answer */
	if (ptrace(PTRACE_GETREGS, tid, 0, &r) != 0) { e = -errno; goto finish; }
	value = (int64_t)r.rax;
	process_vm_writev(tid, &keep, 1, &remote, 1, 0);
	e = 0;
finish:
	if (e == -ESRCH) return e;   /* the thread is gone */
	/* Back to the caller: its registers as at the ioctl's return, with the answer. */
	int64_t answer = e ? (int64_t)e : value;
	saved.rax = (unsigned long long)answer;
	saved.orig_rax = (unsigned long long)-1;
	if (ptrace(PTRACE_SETREGS, tid, 0, &saved) != 0) {
		/* Not stopped (a step failed while it ran): stop it first, then answer. */
		int status;
		ptrace(PTRACE_INTERRUPT, tid, 0, 0);
		while (waitpid(tid, &status, __WALL) < 0 && errno == EINTR) {}
		if (!WIFSTOPPED(status)) return -ESRCH;
		ptrace(PTRACE_SETREGS, tid, 0, &saved);
	}
	ptrace(PTRACE_DETACH, tid, 0, (void *)(uintptr_t)t.pending_signal);
	*result = answer;
	return 0;
}
#else
int cseccomp_bind_memslot(int listener, uint64_t id, pid_t tid, int map_fd, uint64_t map_size, uint64_t *mapped,
                          const void *region, int add_mapped, int64_t *result,
                          struct cseccomp_notification *others, int others_capacity, int *others_count) {
	(void)listener; (void)id; (void)tid; (void)map_fd; (void)map_size; (void)mapped; (void)region;
	(void)add_mapped; (void)result; (void)others; (void)others_capacity; (void)others_count;
	return -ENOSYS;
}
#endif

int cseccomp_open_path(const char *path) { return open(path, O_PATH | O_CLOEXEC); }

int cseccomp_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC); }

/* ---- the janitor: only async-signal-safe calls (its parent may have threads) ---- */
#define JANITOR_PATHS 8
struct janitor_state {
	pid_t pgid, daemon;
	char mount[4096];
	char files[JANITOR_PATHS][4096];
	char dirs[JANITOR_PATHS][4096];
	int file_count, dir_count;
};
static struct janitor_state janitor;

static long parse_long(const char *s) {
	long v = 0;
	if (*s < '0' || *s > '9') return 0;
	for (; *s >= '0' && *s <= '9'; s++) v = v * 10 + (*s - '0');
	return *s ? 0 : v;
}

static void janitor_line(const char *line, int *done) {
	if (!strncmp(line, "pgid ", 5)) janitor.pgid = (pid_t)parse_long(line + 5);
	else if (!strncmp(line, "daemon ", 7)) janitor.daemon = (pid_t)parse_long(line + 7);
	else if (!strncmp(line, "mount ", 6)) strncpy(janitor.mount, line + 6, sizeof janitor.mount - 1);
	else if (!strncmp(line, "file ", 5) && janitor.file_count < JANITOR_PATHS) strncpy(janitor.files[janitor.file_count++], line + 5, 4095);
	else if (!strncmp(line, "dir ", 4) && janitor.dir_count < JANITOR_PATHS) strncpy(janitor.dirs[janitor.dir_count++], line + 4, 4095);
	else if (!strcmp(line, "done")) *done = 1;
}

static void pause_ms(long ms) {
	struct timespec t = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	while (nanosleep(&t, &t) != 0 && errno == EINTR) {}
}

/* Whether `pid` exists and is not a zombie (a zombie waits for a reaper that may be slow). */
static int running(pid_t pid) {
	if (kill(pid, 0) != 0) return 0;
	char path[64] = "/proc/", digits[16], text[512];
	int d = 0;
	for (unsigned v = (unsigned)pid; v || !d; v /= 10) digits[d++] = (char)('0' + v % 10);
	size_t at = strlen(path);
	while (d) path[at++] = digits[--d];
	memcpy(path + at, "/stat", 6);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return 0;
	ssize_t n = read(fd, text, sizeof text - 1);
	close(fd);
	if (n <= 0) return 0;
	text[n] = 0;
	char *paren = strrchr(text, ')');
	return !(paren && paren[1] == ' ' && paren[2] == 'Z');
}

static void janitor_clean(void) {
	if (janitor.pgid > 1) kill(-janitor.pgid, SIGKILL);
	if (janitor.daemon > 1) {
		kill(janitor.daemon, SIGTERM);   /* the daemon unmounts on SIGTERM */
		for (int i = 0; i < 300 && running(janitor.daemon); i++) pause_ms(10);
		if (running(janitor.daemon)) kill(janitor.daemon, SIGKILL);
	}
	if (janitor.mount[0]) {
		pid_t f = fork();
		if (f == 0) {
			char *const args[] = { "fusermount3", "-u", "-z", janitor.mount, NULL };
			execv("/usr/bin/fusermount3", args);
			execv("/bin/fusermount3", args);
			_exit(127);
		}
		if (f > 0) while (waitpid(f, NULL, 0) < 0 && errno == EINTR) {}
	}
	for (int i = 0; i < janitor.file_count; i++) unlink(janitor.files[i]);
	if (janitor.mount[0]) rmdir(janitor.mount);
	for (int i = janitor.dir_count - 1; i >= 0; i--) rmdir(janitor.dirs[i]);
}

pid_t cseccomp_janitor(int *pipe_out) {
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0) return -1;
	pid_t pid = fork();
	if (pid < 0) { int e = errno; close(p[0]); close(p[1]); errno = e; return -1; }
	if (pid > 0) { close(p[0]); *pipe_out = p[1]; return pid; }
	setsid();
	reset_signals();
	signal(SIGINT, SIG_IGN); signal(SIGHUP, SIG_IGN); signal(SIGTERM, SIG_IGN); signal(SIGPIPE, SIG_IGN);
	int null = open("/dev/null", O_RDWR);
	if (null >= 0) { dup2(null, 0); dup2(null, 1); dup2(null, 2); }
	for (int fd = 3; fd < 4096; fd++) if (fd != p[0]) close(fd);
	char buffer[16384];
	size_t used = 0;
	int done = 0;
	for (;;) {
		ssize_t n = read(p[0], buffer + used, sizeof buffer - 1 - used);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) break;
		used += (size_t)n;
		char *start = buffer, *nl;
		while ((nl = memchr(start, '\n', (size_t)(buffer + used - start)))) {
			*nl = 0;
			janitor_line(start, &done);
			start = nl + 1;
		}
		used = (size_t)(buffer + used - start);
		memmove(buffer, start, used);
		if (used == sizeof buffer - 1) used = 0;   /* an overlong line: dropped */
	}
	if (!done) janitor_clean();
	_exit(0);
}

int cseccomp_user_notif_available(void) {
	int fd = open("/proc/sys/kernel/seccomp/actions_avail", O_RDONLY | O_CLOEXEC);
	if (fd < 0) return 0;
	char text[512];
	ssize_t n = read(fd, text, sizeof text - 1);
	close(fd);
	if (n <= 0) return 0;
	text[n] = 0;
	for (char *word = strtok(text, " \n"); word; word = strtok(NULL, " \n"))
		if (!strcmp(word, "user_notif")) return 1;
	return 0;
}
