/* cgroup v2 backend: one group in the unified hierarchy. The job enters it
 * at clone (CLONE_INTO_CGROUP on clone_fd), so it never runs outside it;
 * cgroup.kill ends it in one write. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup_internal.h"
#include "util.h"

#define CPU_PERIOD_US 100000

/* Enables memory, pids and cpu for the children of every directory from the
 * root down to the parent ("no internal processes": pycell's parent group
 * only holds job groups). Controllers the level does not offer are left for
 * the limit writes to report. */
int cg_v2_enable_in(int fd, const char *where, struct pc_error *err)
{
	static const char *const want[] = { "memory", "pids", "cpu" };
	char have[512];

	if (cg_read(fd, "cgroup.controllers", have, sizeof(have)) < 0)
		return pc_error_set(err, errno, "read '%s/cgroup.controllers'", where);
	for (int i = 0; i < 3; i++) {
		if (strstr(have, want[i]) && cg_write(fd, "cgroup.subtree_control", err, "+%s", want[i]) < 0)
			return pc_error_wrap(err, "enable controllers under '%s'", where);
	}
	return 0;
}

int cg_v2_enable_controllers(int rootfd, const char *parent, struct pc_error *err)
{
	char path[PATH_MAX];
	int r;

	if ((r = cg_v2_enable_in(rootfd, "/", err)) < 0)
		return r;
	snprintf(path, sizeof(path), "%s", parent);
	for (char *p = path;; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			_cleanup_close_ int fd = -1;

			*p = '\0';
			fd = cg_open_dir(rootfd, path);
			if (fd < 0)
				return pc_error_set(err, errno, "open cgroup '%s'", path);
			if ((r = cg_v2_enable_in(fd, path, err)) < 0)
				return r;
			if (c == '\0')
				return 0;
			*p = c;
		}
	}
}

int cg_v2_write_limits(int dir, const long long *limits, struct pc_error *err)
{
	int r;

	if ((r = cg_write(dir, "memory.max", err, "%lld", limits[PC_LIM_MEMORY_MB] * 1024 * 1024)) < 0)
		return r;
	/* Absent without swap accounting (no swap to limit then). */
	if (faccessat(dir, "memory.swap.max", F_OK, 0) == 0 && (r = cg_write(dir, "memory.swap.max", err, "0")) < 0)
		return r;
	/* One OOM kill takes the whole job: no half-dead sandbox. */
	(void)cg_write(dir, "memory.oom.group", NULL, "1");
	if ((r = cg_write(dir, "pids.max", err, "%lld", limits[PC_LIM_PIDS])) < 0)
		return r;
	return cg_write(dir, "cpu.max", err, "%lld %d", limits[PC_LIM_CPU_PERCENT] * CPU_PERIOD_US / 100,
			CPU_PERIOD_US);
}

/* parent/name, with the parent's levels made and their controllers on;
 * the parent stays open for the rmdir. */
int cg_v2_make(struct cg_backend *b, const char *name, struct pc_error *err)
{
	_cleanup_close_ int rootfd = cg_open_dir(AT_FDCWD, b->root);
	int r;

	if (rootfd < 0)
		return pc_error_set(err, errno, "open cgroup2 root '%s'", b->root);
	if ((r = cg_mkdir_parents(rootfd, b->parent, err)) < 0)
		return r;
	if ((r = cg_v2_enable_controllers(rootfd, b->parent, err)) < 0)
		return r;
	b->pdir[0] = cg_open_dir(rootfd, b->parent);
	if (b->pdir[0] < 0)
		return pc_error_set(err, errno, "open cgroup '%s'", b->parent);
	if (mkdirat(b->pdir[0], name, 0755) < 0)
		return pc_error_set(err, errno, "mkdir cgroup '%s/%s'", b->parent, name);
	b->created[0] = true;
	b->dir[0] = cg_open_dir(b->pdir[0], name);
	if (b->dir[0] < 0)
		return pc_error_set(err, errno, "open cgroup '%s/%s'", b->parent, name);
	return 0;
}

int cg_v2_prepare(struct cg_backend *b, const char *name, const long long *limits, struct pc_error *err)
{
	int r = cg_v2_make(b, name, err);

	return r < 0 ? r : cg_v2_write_limits(b->dir[0], limits, err);
}

int cg_v2_attach(struct cg_backend *b, pid_t pid, struct pc_error *err)
{
	/* Normally a no-op: clone3 put the child here already. Kept for
	 * kernels or callers without CLONE_INTO_CGROUP (Linux < 5.7). */
	int r = cg_write(b->dir[0], "cgroup.procs", err, "%d", (int)pid);
	return r < 0 ? pc_error_wrap(err, "attach to cgroup") : 0;
}

void cg_v2_kill(struct cg_backend *b)
{
	if (b->dir[0] < 0)
		return;
	/* cgroup.kill (Linux 5.14) kills the whole group atomically. */
	if (cg_write(b->dir[0], "cgroup.kill", NULL, "1") < 0)
		cg_kill_procs(b->dir[0]);
}

int cg_v2_cpu_ns(struct cg_backend *b, long long *ns)
{
	long long us = cg_read_key(b->dir[0], "cpu.stat", "usage_usec");

	if (us < 0)
		return -EIO;
	*ns = us * 1000;
	return 0;
}

void cg_v2_stats(struct cg_backend *b, struct pc_cgroup_stats *st)
{
	long long v;

	if (cg_v2_cpu_ns(b, &v) == 0)
		st->cpu_ns = v;
	/* memory.peak: Linux 5.19+. Older kernels: -1, the caller falls back. */
	st->peak_memory_bytes = cg_read_ll(b->dir[0], "memory.peak");
	st->oom_killed = cg_read_key(b->dir[0], "memory.events", "oom_kill") > 0;
	st->memory_hit = cg_read_key(b->dir[0], "memory.events", "max") > 0;
	st->pids_hit = cg_read_key(b->dir[0], "pids.events", "max") > 0;
}

void cg_v2_destroy(struct cg_backend *b, const char *name)
{
	if (!b->created[0])
		return;
	cg_v2_kill(b);
	/* A zygote's tree holds its leaf and job groups. */
	(void)cg_remove_tree(b->pdir[0], name);
	b->created[0] = false;
}
