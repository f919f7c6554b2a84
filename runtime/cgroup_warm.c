/* Warm mode on cgroup v2 (docs/warm.md, "cgroup v2"): each job process is
 * clone3()d by its (unprivileged) leader straight into the job's own group
 * (CLONE_INTO_CGROUP), so no job process is ever moved.
 *
 *   <parent>/zygote-<pid>-<hex>/          the zygote's tree; only its
 *                                         cgroup.procs is the zygote's uid's
 *   <parent>/zygote-<pid>-<hex>/zygote    the zygote and its leaders (all
 *                                         root's)
 *   <parent>/zygote-<pid>-<hex>/job-...   one per job process, made ahead
 *                                         for the spare; only cgroup.procs
 *                                         is the zygote's uid's, the limits
 *                                         root's
 *
 * Why this shape (kernel/cgroup/cgroup.c): clone3(CLONE_INTO_CGROUP) checks
 * cgroup_may_write() on the destination's cgroup.procs and
 * cgroup_procs_write_permission() on the common ancestor of source and
 * destination (the tree), with the caller's credentials: the zygote's host
 * uid (its leader's), which owns exactly those two files. With nsdelegate both groups must
 * also lie under the caller's cgroup namespace root, so the zygote's is
 * rooted at the tree: its sandbox child is cloned into the tree and
 * unshares a cgroup namespace there (sandbox.c), then the supervisor moves
 * it into the leaf (the tree hands controllers to its children, so it can
 * hold no process of its own). The zygote cannot write any limit, make
 * groups or enable controllers; its jobs see no cgroupfs at all. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup_internal.h"
#include "util.h"

#define ZYGOTE_LEAF "zygote"

static int delegate(int dir, uid_t owner, const char *what, struct pc_error *err)
{
	if (fchownat(dir, "cgroup.procs", owner, (gid_t)-1, AT_SYMLINK_NOFOLLOW) < 0)
		return pc_error_set(err, errno, "chown '%s/cgroup.procs' to uid %u", what, (unsigned)owner);
	return 0;
}

int cg_v2_tree_prepare(struct cg_backend *b, const char *name, struct pc_error *err)
{
	int r = cg_v2_make(b, name, err);

	return r < 0 ? r : delegate(b->dir[0], b->owner, name, err);
}

/* The zygote's cgroup namespace is rooted at the tree now (it unshared it
 * there before exec); it goes to its leaf, then the tree's children get
 * memory, pids and cpu. */
int cg_v2_tree_settle(struct cg_backend *b, pid_t zygote, struct pc_error *err)
{
	_cleanup_close_ int leaf = -1;
	int r;

	if (mkdirat(b->dir[0], ZYGOTE_LEAF, 0755) < 0)
		return pc_error_set(err, errno, "mkdir the zygote's cgroup leaf");
	if ((leaf = cg_open_dir(b->dir[0], ZYGOTE_LEAF)) < 0)
		return pc_error_set(err, errno, "open the zygote's cgroup leaf");
	if ((r = cg_write(leaf, "cgroup.procs", err, "%d", (int)zygote)) < 0)
		return pc_error_wrap(err, "move the zygote to its cgroup leaf");
	return cg_v2_enable_in(b->dir[0], "zygote tree", err);
}

int cg_v2_tree_group(struct cg_backend *b, const char *name, struct pc_error *err)
{
	int fd, r;

	if (mkdirat(b->dir[0], name, 0755) < 0)
		return pc_error_set(err, errno, "mkdir cgroup '%s'", name);
	fd = cg_open_dir(b->dir[0], name);
	r = fd < 0 ? pc_error_set(err, errno, "open cgroup '%s'", name) : delegate(fd, b->owner, name, err);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		(void)unlinkat(b->dir[0], name, AT_REMOVEDIR);
		return r;
	}
	return fd;
}

/* The group the job process was cloned into, from the kernel
 * (/proc/PID/cgroup, "0::/path" in our cgroup namespace); it must be a job
 * group of this zygote's tree. Then the job's limits, before sync 1. */
int cg_v2_adopt(struct cg_backend *b, pid_t pid, char *name, size_t name_len, struct pc_error *err)
{
	char path[64], buf[PATH_MAX + 8], want[PATH_MAX + 16];
	_cleanup_close_ int fd = -1, rootfd = -1;
	const char *rel;
	size_t wl;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || (n = read(fd, buf, sizeof(buf) - 1)) <= 0)
		return pc_error_set(err, errno, "read '%s'", path);
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	wl = (size_t)snprintf(want, sizeof(want), "0::/%s/", b->parent);
	rel = strncmp(buf, want, wl) == 0 ? buf + wl : "";
	if (strncmp(rel, "job-", 4) != 0 || strchr(rel, '/') || strlen(rel) >= name_len)
		return pc_error_set(err, EPERM, "the job process is in cgroup '%s', not a job group of its zygote",
				    buf);
	if ((rootfd = cg_open_dir(AT_FDCWD, b->root)) < 0 || (b->pdir[0] = cg_open_dir(rootfd, b->parent)) < 0 ||
	    (b->dir[0] = cg_open_dir(b->pdir[0], rel)) < 0)
		return pc_error_set(err, errno, "open cgroup '%s'", buf + 4);
	snprintf(name, name_len, "%s", rel);
	b->created[0] = true; /* ours to remove from here on */
	b->adopt = false;
	return cg_v2_write_limits(b->dir[0], b->limits, err);
}
