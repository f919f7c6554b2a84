/* Host uid/gid leases for concurrent jobs run as root (isolate's box ids).
 *
 * Each running job maps its sandbox uid to its own host id from a range
 * (PYCELL_UID_BASE, default 0x70000000; PYCELL_UID_COUNT, default 65536).
 * The lease is an exclusive flock(2) on PYCELL_LEASE_DIR/<n>.lock (default
 * /run/pycell/leases), held for the job's life: the kernel drops it when
 * pycell exits, even on SIGKILL, so a lease can never be leaked; only the
 * empty lock file can, and `pycell gc` removes those. Rootless runs use the
 * caller's own id and take no lease. */
#ifndef PYCELL_LEASE_H
#define PYCELL_LEASE_H

#include <sys/types.h>

#include "error.h"

#define PC_LEASE_DIR	   "/run/pycell/leases"
#define PC_LEASE_UID_BASE  0x70000000U
#define PC_LEASE_UID_COUNT 65536U

struct pc_lease {
	int fd; /* the locked file; -1: no lease */
	unsigned int index;
	uid_t uid; /* uid == gid */
};

void pc_lease_init(struct pc_lease *l);
int pc_lease_acquire(struct pc_lease *l, struct pc_error *err);
/* Unlinks the file (while still holding the lock) and drops the lock. */
void pc_lease_release(struct pc_lease *l);
/* Removes lock files no live pycell holds. *removed counts them. */
int pc_lease_gc(int *removed, struct pc_error *err);

#endif
