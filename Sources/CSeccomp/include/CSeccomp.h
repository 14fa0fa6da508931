/*
 * CSeccomp: what `gmemctl run` must do in C: fork a child that installs a seccomp filter
 * returning SECCOMP_RET_USER_NOTIF for the calls it supervises and execs COMMAND; the
 * notification ioctls; reading the target's memory; and the janitor process that cleans up
 * when gmemctl dies. docs/run.md describes the mechanism.
 *
 * Plain types only in this header (Swift imports it); the .c file includes the uapi headers.
 */
#ifndef CSECCOMP_H
#define CSECCOMP_H
#include <stdint.h>
#include <sys/types.h>

/* Which calls the filter hands to the supervisor. */
struct cseccomp_filter_options {
	int emulate_kvm;          /* also every ioctl of type 0xAE, and open/openat/openat2 */
	uint32_t ioctl_count;     /* ioctl commands trapped in both modes */
	uint32_t ioctls[8];
};

/* Forks a child in a new process group (given the terminal's foreground if `take_terminal`)
 * that sets PR_SET_NO_NEW_PRIVS, installs the filter with SECCOMP_FILTER_FLAG_NEW_LISTENER,
 * passes the listener to the parent and execvp(argv[0], argv). Returns the child's pid and
 * sets *listener; on failure returns -1 with errno set and nothing left running. When exec
 * fails the child exits 127 (ENOENT) or 126 and *exec_errno is set (0 when exec succeeded);
 * when the filter could not be installed, *exec_errno is minus that errno. */
pid_t cseccomp_spawn(char *const argv[], const struct cseccomp_filter_options *options, int take_terminal,
                     int *listener, int *exec_errno);

/* Forks `argv` (no filter) in a new session with stdin /dev/null and stdout/stderr on
 * `output_fd`; for the private gmemfs daemon. Returns its pid or -1 (errno set). */
pid_t cseccomp_spawn_plain(char *const argv[], int output_fd);

/* One notification, flattened from struct seccomp_notif. `pid` is the calling thread's id. */
struct cseccomp_notification {
	uint64_t id;
	uint32_t pid;
	int32_t nr;
	uint32_t arch;
	uint64_t args[6];
};

/* SECCOMP_IOCTL_NOTIF_RECV: 0 or -1 (errno: EINTR, ENOENT when the caller died meanwhile). */
int cseccomp_receive(int listener, struct cseccomp_notification *out);
/* SECCOMP_IOCTL_NOTIF_SEND: the call returns `value` (error == 0) or fails with `error`. */
int cseccomp_respond(int listener, uint64_t id, int64_t value, int error);
/* SECCOMP_IOCTL_NOTIF_SEND with SECCOMP_USER_NOTIF_FLAG_CONTINUE: the kernel runs the call. */
int cseccomp_continue(int listener, uint64_t id);
/* SECCOMP_IOCTL_NOTIF_ADDFD with SECCOMP_ADDFD_FLAG_SEND: installs `fd` in the target with
 * `fd_flags` (0 or O_CLOEXEC) and answers the call with the new number. Returns it or -1. */
int cseccomp_add_fd_and_respond(int listener, uint64_t id, int fd, uint32_t fd_flags);
/* SECCOMP_IOCTL_NOTIF_ID_VALID: 1 when the notification is still pending, 0 when not. */
int cseccomp_id_valid(int listener, uint64_t id);

/* process_vm_readv of `size` bytes at `address` of `pid`: the count read, or -1 (errno). */
ssize_t cseccomp_read_memory(pid_t pid, uint64_t address, void *buffer, size_t size);

/* A memslot on a gmemfs guest_memfd, bound in the calling thread's own address space (docs/run.md,
 * "Memslots"). The thread `tid` is waiting in notification `id` of
 * ioctl(VM, KVM_SET_USER_MEMORY_REGION2, ...). With `map_fd` >= 0 (a descriptor of the file's
 * guest view), that descriptor is installed in the thread's process (SECCOMP_IOCTL_NOTIF_ADDFD
 * without SEND), and `mmap(0, map_size, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0)` then `close(fd)`
 * are run in the thread by ptrace; *mapped gets the address. Otherwise *mapped is used as is.
 * Then the ioctl is re-run by the thread with its third argument pointing at a copy of
 * `region` (160 bytes, below the thread's stack pointer) whose userspace_addr has *mapped added
 * when `add_mapped`; the re-run's own notification is answered with CONTINUE, so the real KVM
 * binds the slot in the thread's own mm. The thread's registers and memory are restored, and
 * the ioctl returns the real KVM's answer, also stored in *result (a value or -errno).
 * Returns 0 once the thread has its answer (*result: the real KVM's, or -errno when a step
 * failed, e.g. the mmap's). Returns -errno when the thread was not stopped (ptrace refused:
 * the notification is still pending and must be answered), is gone (-ESRCH), or was found
 * elsewhere than in this ioctl's restart (-EAGAIN: left untouched; a signal withdrew the
 * notification, and the thread's re-made ioctl notifies again).
 * Notifications of other threads that arrive meanwhile are stored in `others` (at most
 * `others_capacity`, counted in *others_count; beyond that they are let through with CONTINUE).
 * x86_64 only (-ENOSYS elsewhere, before anything is done). */
int cseccomp_bind_memslot(int listener, uint64_t id, pid_t tid, int map_fd, uint64_t map_size, uint64_t *mapped,
                          const void *region, int add_mapped, int64_t *result,
                          struct cseccomp_notification *others, int others_capacity, int *others_count);

/* open(path, O_PATH | O_CLOEXEC): a descriptor that names the file without opening it. */
int cseccomp_open_path(const char *path);

/* memfd_create(name, MFD_CLOEXEC). */
int cseccomp_memfd(const char *name);

/* Forks the janitor: a process in its own session with no descriptor of ours but the read end
 * of a pipe, whose write end is returned in *pipe_out (O_CLOEXEC). The parent writes lines:
 *   "pgid N", "daemon PID", "mount PATH", "file PATH", "dir PATH", "done".
 * When the pipe reaches end-of-file without "done" (gmemctl ended on any path, SIGKILL
 * included) it SIGKILLs process group N, SIGTERMs the daemon (SIGKILL after 3 s), runs
 * `fusermount3 -u -z` on the mount, unlinks the files and removes the mount point and the
 * directories. Returns the janitor's pid or -1. */
pid_t cseccomp_janitor(int *pipe_out);

/* Whether the kernel lists `user_notif` in /proc/sys/kernel/seccomp/actions_avail. */
int cseccomp_user_notif_available(void);
#endif
