/* A cache of compiled seccomp programs, keyed by a hash of everything that
 * goes into one: compiling the policy's list with libseccomp costs ~3 ms,
 * loading a cached program a few microseconds. */
#ifndef PYCELL_BPF_CACHE_H
#define PYCELL_BPF_CACHE_H

#include <linux/filter.h>

#include "sha256.h"

/* Finishes a key: adds what every compiled program depends on besides its
 * own inputs (libseccomp's version, the kernel release it was built for). */
void pc_bpf_cache_key(struct pc_sha256 *h, char key[PC_SHA256_HEX]);
/* The directory: PYCELL_CACHE_DIR, else /var/cache/pycell/bpf as root;
 * NULL (no cache) for other users unless PYCELL_CACHE_DIR is set. */
const char *pc_bpf_cache_dir(void);
/* 1 and prog filled (malloc'd) on a hit; 0 on a miss or an entry that is
 * not to be trusted (wrong owner, writable by others, bad size). */
int pc_bpf_cache_load(const char key[PC_SHA256_HEX], struct sock_fprog *prog);
/* Best effort: a cache that cannot be written only costs time. */
void pc_bpf_cache_store(const char key[PC_SHA256_HEX], const struct sock_fprog *prog);

#endif
