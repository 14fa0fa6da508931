/*
 * CLinuxSys: Linux calls and constants that Swift's Glibc module leaves out
 * (xattrs, fallocate, SEEK_DATA/SEEK_HOLE, O_DIRECT, ioctl with a pointer, pidfd).
 * Used by FuseKit (constants only), GmemFS (pidfd), gmemctl and the tests.
 *
 * No _GNU_SOURCE here: it would change glibc's struct definitions against the other Clang
 * modules Swift imports. The few GNU declarations needed are written out instead.
 */
#ifndef CLINUXSYS_H
#define CLINUXSYS_H
#include <sys/types.h>
#include <sys/xattr.h>
#include <sys/ioctl.h>
#include <linux/falloc.h>
#include <signal.h>

extern int fallocate(int fd, int mode, off_t offset, off_t len);

#define CLINUX_SEEK_DATA 3
#define CLINUX_SEEK_HOLE 4
#if defined(__x86_64__)
#define CLINUX_O_DIRECT 040000
#else
#define CLINUX_O_DIRECT 0200000
#endif

/* pidfd (glibc 2.36); PIDFD_THREAD (Linux 6.9) names a thread, not only a thread-group leader. */
extern int pidfd_open(pid_t pid, unsigned int flags);
extern int pidfd_send_signal(int pidfd, int sig, siginfo_t *info, unsigned int flags);
#define CLINUX_PIDFD_THREAD 0200

/* Starts argv[0] (searched in PATH) with the signal mask *mask and PR_SET_PDEATHSIG(SIGKILL), so
 * that the child dies with the thread that started it, even if that thread's process is
 * SIGKILLed. Returns the child's pid, or -errno when it could not be started (fork failed, or
 * exec failed: reported through a close-on-exec pipe, so the caller never waits for a child
 * that is not running the command). */
extern pid_t clinux_spawn_tied(char *const argv[], const sigset_t *mask);

/* ioctl is variadic. */
static inline int clinux_ioctl_ptr(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }
#endif
