#define _GNU_SOURCE
#include "landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mounts.h"
#include "util.h"

/* Rights newer than the oldest uapi header we build against. */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LANDLOCK_SCOPE_SIGNAL		    (1ULL << 1)
#endif

/* What each ABI version can handle (landlock(7), "Previous limitations"). */
#define FS_V1 ((LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1)
#define FS_V2 (FS_V1 | LANDLOCK_ACCESS_FS_REFER)
#define FS_V3 (FS_V2 | LANDLOCK_ACCESS_FS_TRUNCATE)
#define FS_V5 (FS_V3 | LANDLOCK_ACCESS_FS_IOCTL_DEV)

#define FILE_RIGHTS                                                                                  \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE | \
	 LANDLOCK_ACCESS_FS_TRUNCATE | LANDLOCK_ACCESS_FS_IOCTL_DEV)
#define READ_RIGHTS (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define DEV_RIGHTS                                                                                    \
	(LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE | \
	 LANDLOCK_ACCESS_FS_IOCTL_DEV)

/* Version 6 (6.12) scopes signals and abstract unix sockets to the domain
 * (pycell-init and the job share one, so nothing they need is lost). */
struct ruleset_attr_v6 {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

void pc_landlock_prepare(struct pc_landlock *l)
{
	int abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);

	*l = (struct pc_landlock){ 0 };
	if (abi < 0) {
		snprintf(l->note, sizeof(l->note), "Landlock unavailable (%s): boot with lsm=...,landlock",
			 strerror(errno));
		return;
	}
	l->abi = abi;
	l->enabled = true;
	snprintf(l->note, sizeof(l->note), "Landlock ABI %d", abi);
}

static uint64_t handled_fs(int abi)
{
	return abi >= 5 ? FS_V5 : abi >= 3 ? FS_V3 : abi >= 2 ? FS_V2 : FS_V1;
}

/* optional: a path that does not exist gets no rule. */
static int allow_path(int ruleset, const char *path, uint64_t rights, uint64_t handled, bool optional,
		      struct pc_error *err)
{
	struct landlock_path_beneath_attr pb = { .allowed_access = rights & handled };
	_cleanup_close_ int fd = open(path, O_PATH | O_CLOEXEC);

	if (fd < 0 && optional && errno == ENOENT)
		return 0;
	if (fd < 0)
		return pc_error_set(err, errno, "landlock: open '%s'", path);
	pb.parent_fd = fd;
	if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0)
		return pc_error_set(err, errno, "landlock: rule for '%s'", path);
	return 0;
}

int pc_landlock_setup_child(const struct pc_landlock *l, struct pc_error *err)
{
	static const char *const devs[] = { "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom" };
	/* /dev/shm: POSIX semaphores for multiprocessing (sem_open), when
	 * mounts.c provides it. */
	static const char *const rw[] = { PC_WORKDIR, "/tmp", "/dev/shm" };
	struct ruleset_attr_v6 attr = { 0 };
	_cleanup_close_ int rs = -1;
	uint64_t h;
	size_t i;
	int r;

	if (!l || !l->enabled)
		return 0;
	h = handled_fs(l->abi);
	attr.handled_access_fs = h;
	if (l->abi >= 6)
		attr.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;
	rs = (int)syscall(SYS_landlock_create_ruleset, &attr,
			  l->abi >= 6 ? sizeof(attr) : sizeof(struct landlock_ruleset_attr), 0);
	if (rs < 0)
		return pc_error_set(err, errno, "landlock: create ruleset (ABI %d)", l->abi);
	if ((r = allow_path(rs, "/", READ_RIGHTS, h, false, err)) < 0)
		return r;
	for (i = 0; i < ARRAY_SIZE(rw); i++) {
		if ((r = allow_path(rs, rw[i], h, h, true, err)) < 0)
			return r;
	}
	for (i = 0; i < ARRAY_SIZE(devs); i++) {
		if ((r = allow_path(rs, devs[i], DEV_RIGHTS & FILE_RIGHTS, h, false, err)) < 0)
			return r;
	}
	if (syscall(SYS_landlock_restrict_self, rs, 0) < 0)
		return pc_error_set(err, errno, "landlock: restrict self");
	return 0;
}
