/*
 * CFuse: the libfuse3 low-level API as Swift sees it. Shim only.
 *
 * Pins FUSE_USE_VERSION in one place and re-exposes, under a `cfuse_` prefix,
 * what Swift cannot import (variadic functions, function-like macros).
 */
#ifndef CFUSE_SHIM_H
#define CFUSE_SHIM_H

#define FUSE_USE_VERSION 312
#include <fuse3/fuse_lowlevel.h>
#include <sys/ioctl.h>
#include <linux/falloc.h>
#include <sys/xattr.h>
#include <stddef.h>
#include "uring.h"

/* fuse_log is variadic. */
static inline void cfuse_log(enum fuse_log_level level, const char *msg) {
    fuse_log(level, "%s", msg);
}

/* FUSE_ARGS_INIT is a macro. */
static inline struct fuse_args cfuse_args_init(int argc, char **argv) {
    struct fuse_args a = FUSE_ARGS_INIT(argc, argv);
    return a;
}

/* Bitfields of fuse_file_info, named so callers need not know the layout. */
static inline void cfuse_fi_set_direct_io(struct fuse_file_info *fi, int on) { fi->direct_io = on ? 1 : 0; }
static inline void cfuse_fi_set_keep_cache(struct fuse_file_info *fi, int on) { fi->keep_cache = on ? 1 : 0; }
static inline void cfuse_fi_set_nonseekable(struct fuse_file_info *fi, int on) { fi->nonseekable = on ? 1 : 0; }
static inline void cfuse_fi_set_noflush(struct fuse_file_info *fi, int on) { fi->noflush = on ? 1 : 0; }
static inline int cfuse_fi_writepage(const struct fuse_file_info *fi) { return fi->writepage; }

#endif
