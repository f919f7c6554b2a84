/* cgroup v1 backend: one directory per controller (memory, pids, cpu,
 * cpuacct), each holding the job's group. The job is attached by pid after
 * clone, before it is released (sync 1), so it runs no code outside it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup_internal.h"
#include "util.h"

enum { MEM, PIDS, CPU, CPUACCT };

#define CFS_PERIOD_US 100000

static int open_hierarchy(const struct cg_backend *b, int i)
{
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/%s", b->root, cg_v1_controllers[i]);
	return cg_open_dir(AT_FDCWD, path);
}

/* Creates parent/name in controller i; dir[i] gets the job group's fd. */
static int make_group(struct cg_backend *b, int i, int rootfd, const char *name, struct pc_error *err)
{
	char rel[PATH_MAX + 100];
	int r;

	if ((r = cg_mkdir_parents(rootfd, b->parent, err)) < 0)
		return r;
	snprintf(rel, sizeof(rel), "%s/%s", b->parent, name);
	if (mkdirat(rootfd, rel, 0755) < 0)
		return pc_error_set(err, errno, "mkdir cgroup '%s/%s'", cg_v1_controllers[i], rel);
	b->created[i] = true;
	b->dir[i] = cg_open_dir(rootfd, rel);
	if (b->dir[i] < 0)
		return pc_error_set(err, errno, "open cgroup '%s/%s'", cg_v1_controllers[i], rel);
	return 0;
}

static int write_limits(struct cg_backend *b, const long long *limits, struct pc_error *err)
{
	long long mem = limits[PC_LIM_MEMORY_MB] * 1024 * 1024;
	int r;

	/* memsw (memory+swap) must stay >= the memory limit, so memory goes
	 * first; memsw == memory means no swap. Without swap accounting the
	 * file is absent and swappiness 0 is the best v1 can do. */
	if ((r = cg_write(b->dir[MEM], "memory.limit_in_bytes", err, "%lld", mem)) < 0)
		return r;
	if (faccessat(b->dir[MEM], "memory.memsw.limit_in_bytes", F_OK, 0) == 0) {
		if ((r = cg_write(b->dir[MEM], "memory.memsw.limit_in_bytes", err, "%lld", mem)) < 0)
			return r;
	} else {
		(void)cg_write(b->dir[MEM], "memory.swappiness", NULL, "0");
	}
	if ((r = cg_write(b->dir[PIDS], "pids.max", err, "%lld", limits[PC_LIM_PIDS])) < 0)
		return r;
	if ((r = cg_write(b->dir[CPU], "cpu.cfs_period_us", err, "%d", CFS_PERIOD_US)) < 0)
		return r;
	return cg_write(b->dir[CPU], "cpu.cfs_quota_us", err, "%lld", limits[PC_LIM_CPU_PERCENT] * CFS_PERIOD_US / 100);
}

int cg_v1_prepare(struct cg_backend *b, const char *name, const long long *limits, struct pc_error *err)
{
	struct stat st[CG_V1_NCTL];
	int r;

	for (int i = 0; i < CG_V1_NCTL; i++) {
		_cleanup_close_ int rootfd = open_hierarchy(b, i);

		if (rootfd < 0)
			return pc_error_set(err, errno, "open cgroup v1 hierarchy '%s/%s'", b->root,
					    cg_v1_controllers[i]);
		if (fstat(rootfd, &st[i]) < 0)
			return pc_error_set(err, errno, "stat cgroup v1 hierarchy '%s'", cg_v1_controllers[i]);
		/* cpu and cpuacct are often one hierarchy ("cpu,cpuacct") behind
		 * two symlinks: create the group once. */
		for (int j = 0; j < i; j++) {
			if (st[j].st_dev == st[i].st_dev && st[j].st_ino == st[i].st_ino) {
				b->shared[i] = true;
				b->dir[i] = fcntl(b->dir[j], F_DUPFD_CLOEXEC, 3);
				break;
			}
		}
		if (!b->shared[i] && (r = make_group(b, i, rootfd, name, err)) < 0)
			return r;
	}
	return write_limits(b, limits, err);
}

int cg_v1_attach(struct cg_backend *b, pid_t pid, struct pc_error *err)
{
	for (int i = 0; i < CG_V1_NCTL; i++) {
		int r;
		if (b->shared[i])
			continue;
		if ((r = cg_write(b->dir[i], "cgroup.procs", err, "%d", (int)pid)) < 0)
			return pc_error_wrap(err, "attach to cgroup '%s'", cg_v1_controllers[i]);
	}
	return 0;
}

void cg_v1_kill(struct cg_backend *b)
{
	/* v1 has no cgroup.kill; pid 1's death takes the pid namespace down,
	 * this catches whatever is left. */
	if (b->dir[PIDS] >= 0)
		cg_kill_procs(b->dir[PIDS]);
}

int cg_v1_cpu_ns(struct cg_backend *b, long long *ns)
{
	long long v = cg_read_ll(b->dir[CPUACCT], "cpuacct.usage");

	if (v < 0)
		return -EIO;
	*ns = v;
	return 0;
}

void cg_v1_stats(struct cg_backend *b, struct pc_cgroup_stats *st)
{
	long long v;

	if (cg_v1_cpu_ns(b, &v) == 0)
		st->cpu_ns = v;
	st->peak_memory_bytes = cg_read_ll(b->dir[MEM], "memory.max_usage_in_bytes");
	/* memory.oom_control has "oom_kill N" since Linux 4.13; failcnt only
	 * says the limit was reached (reclaim may have coped). */
	st->oom_killed = cg_read_key(b->dir[MEM], "memory.oom_control", "oom_kill") > 0;
	st->memory_hit =
	    cg_read_ll(b->dir[MEM], "memory.failcnt") > 0 || cg_read_ll(b->dir[MEM], "memory.memsw.failcnt") > 0;
	st->pids_hit = cg_read_key(b->dir[PIDS], "pids.events", "max") > 0;
}

void cg_v1_destroy(struct cg_backend *b, const char *name)
{
	for (int i = 0; i < CG_V1_NCTL; i++) {
		_cleanup_close_ int rootfd = -1, pfd = -1;

		if (!b->created[i])
			continue;
		if (b->dir[i] >= 0)
			cg_kill_procs(b->dir[i]);
		rootfd = open_hierarchy(b, i);
		pfd = rootfd >= 0 ? cg_open_dir(rootfd, b->parent) : -1;
		if (pfd >= 0)
			(void)cg_rmdir(pfd, name);
		b->created[i] = false;
	}
}
