/*
 * CLinuxSys: Linux calls and constants that Swift's Glibc module leaves out
 * (xattrs, fallocate, SEEK_DATA/SEEK_HOLE, O_DIRECT, ioctl with a pointer).
 * Used by FuseKit (constants only), gmemctl and the tests.
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

extern int fallocate(int fd, int mode, off_t offset, off_t len);

#define CLINUX_SEEK_DATA 3
#define CLINUX_SEEK_HOLE 4
#if defined(__x86_64__)
#define CLINUX_O_DIRECT 040000
#else
#define CLINUX_O_DIRECT 0200000
#endif

/* ioctl is variadic. */
static inline int clinux_ioctl_ptr(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }
#endif
