/* The embedded interpreter's host-side half: the second, stacked seccomp
 * filter that pycell-init's job process loads before Python starts, and the
 * check that a rootfs carries the libpython pycell-init was linked against. */
#ifndef PYCELL_EXEC_FILTER_H
#define PYCELL_EXEC_FILTER_H

#include "error.h"

/* Compiles the exec filter (default allow; execve, execveat, memfd_create
 * fail with EPERM) and returns a sealed, rewound memfd holding its classic
 * BPF program (struct sock_filter[]), to become PC_FD_EXEC_FILTER. */
int pc_exec_filter_prepare(struct pc_error *err);

/* Fails with a message naming both versions when the rootfs's multiarch
 * library directory (usr/lib/x86_64-linux-gnu) holds no libpython of the
 * release pycell-init was built against. A rootfs without that directory is
 * left to the sandbox child's own step-by-step errors. */
int pc_embed_check_rootfs(const char *rootfs, struct pc_error *err);

#endif
