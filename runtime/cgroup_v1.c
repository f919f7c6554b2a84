/* cgroup v1 backend: one directory per controller (memory, pids, cpu,
 * cpuacct), each holding the job's group. The job is attached by pid after
 * clone, before it is released (sync 1), so it runs no code outside it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup_internal.h"
#include "util.h"

enum { MEM, PIDS, CPU, CPUACCT };

#define CFS_PERIOD_US	  100000
#define REUSE_MAX_CHARGED (16LL << 20)

static int open_hierarchy(const struct cg_backend *b, int i)
{
	char path[PATH_MAX + 16];

	/* Followed: on systemd's v1 layout "cpu" and "cpuacct" are symlinks to
	 * "cpu,cpuacct" (the host's own cgroupfs root, not a job's path). */
	snprintf(path, sizeof(path), "%s/%s", b->root, cg_v1_controllers[i]);
	return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* <root>/<controller>/<parent>, made on the first job under it. Opened
 * straight away, not through the hierarchy's root: the parent exists for
 * every job but the first. */
static int open_parent(const struct cg_backend *b, int i, struct pc_error *err)
{
	_cleanup_close_ int rootfd = -1;
	char path[2 * PATH_MAX + 16];
	int fd, r;

	snprintf(path, sizeof(path), "%s/%s/%s", b->root, cg_v1_controllers[i], b->parent);
	if ((fd = cg_open_dir(AT_FDCWD, path)) >= 0)
		return fd;
	if (errno != ENOENT)
		return pc_error_set(err, errno, "open cgroup '%s'", path);
	if ((rootfd = open_hierarchy(b, i)) < 0)
		return pc_error_set(err, errno, "open cgroup v1 hierarchy '%s/%s'", b->root, cg_v1_controllers[i]);
	if ((r = cg_mkdir_parents(rootfd, b->parent, err)) < 0)
		return r;
	if ((fd = cg_open_dir(rootfd, b->parent)) < 0)
		return pc_error_set(err, errno, "open cgroup '%s'", path);
	return fd;
}

/* The earlier controller whose hierarchy controller i shares, or -1. cpu
 * and cpuacct are often one hierarchy ("cpu,cpuacct") behind two symlinks;
 * asked only when the job group already exists there. */
static int same_hierarchy(const struct cg_backend *b, int i)
{
	struct stat a, o;

	if (fstat(b->pdir[i], &a) < 0)
		return -1;
	for (int j = 0; j < i; j++) {
		if (b->pdir[j] >= 0 && fstat(b->pdir[j], &o) == 0 && o.st_dev == a.st_dev && o.st_ino == a.st_ino)
			return j;
	}
	return -1;
}

/* Creates parent/name in controller i (or shares an earlier controller's
 * group); dir[i] gets the job group's fd, pdir[i] its parent's. */
static int make_group(struct cg_backend *b, int i, const char *name, struct pc_error *err)
{
	int r, j;

	if ((r = open_parent(b, i, err)) < 0)
		return r;
	b->pdir[i] = r;
	if (mkdirat(b->pdir[i], name, 0755) < 0) {
		int e = errno;

		if (e != EEXIST || (j = same_hierarchy(b, i)) < 0)
			return pc_error_set(err, e, "mkdir cgroup '%s/%s/%s'", cg_v1_controllers[i], b->parent, name);
		b->shared[i] = true;
		b->dir[i] = fcntl(b->dir[j], F_DUPFD_CLOEXEC, 3);
	} else {
		b->created[i] = true;
		b->dir[i] = cg_open_dir(b->pdir[i], name);
	}
	if (b->dir[i] < 0)
		return pc_error_set(err, errno, "open cgroup '%s/%s/%s'", cg_v1_controllers[i], b->parent, name);
	return 0;
}

/* A group's files stay open while the group lives: a warm handler reuses
 * its group job after job (cg_v1_reuse), and each read or write is then
 * one system call, not three. Looked up by controller and name (a string
 * literal of this file) and open mode. Returns the fd, or -errno. */
static int file_fd(struct cg_backend *b, int ctl, const char *name, int mode)
{
	int fd;

	for (int i = 0; i < b->n_open; i++) {
		if (b->open[i].ctl == ctl && b->open[i].mode == mode && strcmp(b->open[i].name, name) == 0)
			return b->open[i].fd;
	}
	fd = openat(b->dir[ctl], name, mode | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (b->n_open == CG_MAX_OPEN) {
		close(fd);
		return -EMFILE; /* never: this file opens fewer */
	}
	b->open[b->n_open].ctl = ctl, b->open[b->n_open].mode = mode, b->open[b->n_open].name = name;
	b->open[b->n_open++].fd = fd;
	return fd;
}

static int v1_write(struct cg_backend *b, int ctl, const char *name, int mode, struct pc_error *err, const char *fmt,
		    ...) __attribute__((format(printf, 6, 7)));
static int v1_write(struct cg_backend *b, int ctl, const char *name, int mode, struct pc_error *err, const char *fmt,
		    ...)
{
	int fd = file_fd(b, ctl, name, mode), r;
	va_list ap;

	if (fd < 0)
		return pc_error_set(err, -fd, "open cgroup file '%s'", name);
	va_start(ap, fmt);
	r = cg_vwrite_fd(fd, name, err, fmt, ap);
	va_end(ap);
	return r;
}

static long long v1_read_ll(struct cg_backend *b, int ctl, const char *name, int mode)
{
	char buf[64];
	int fd = file_fd(b, ctl, name, mode);

	return fd < 0 || cg_read_fd(fd, buf, sizeof(buf), true) <= 0 ? -1 : cg_parse_ll(buf);
}

static long long v1_read_key(struct cg_backend *b, int ctl, const char *name, const char *key)
{
	char buf[4096];
	int fd = file_fd(b, ctl, name, O_RDONLY);

	return fd < 0 || cg_read_fd(fd, buf, sizeof(buf), true) < 0 ? -1 : cg_parse_key(buf, key);
}

/* memsw (memory+swap) must stay >= the memory limit at every step, so memory
 * goes first when it falls or is new (both start unlimited), memsw first
 * when a reused group's limit rises. memsw == memory means no swap. Without
 * swap accounting the file is absent and swappiness 0 is the best v1 can do. */
static int write_memory(struct cg_backend *b, long long mem, long long last, struct pc_error *err)
{
	bool rise = last > 0 && mem > last;
	int r;

	if (!rise && (r = v1_write(b, MEM, "memory.limit_in_bytes", O_WRONLY, err, "%lld", mem)) < 0)
		return r;
	r = v1_write(b, MEM, "memory.memsw.limit_in_bytes", O_WRONLY, NULL, "%lld", mem);
	if (r == -ENOENT)
		(void)cg_write(b->dir[MEM], "memory.swappiness", NULL, "0");
	else if (r < 0)
		return pc_error_set(err, -r, "write '%lld' to 'memory.memsw.limit_in_bytes'", mem);
	if (rise && (r = v1_write(b, MEM, "memory.limit_in_bytes", O_WRONLY, err, "%lld", mem)) < 0)
		return r;
	return 0;
}

/* A reused group (cg_v1_reuse) already holds the last job's limits: only
 * what differs is written. */
static int write_limits(struct cg_backend *b, const long long *limits, struct pc_error *err)
{
	long long mem = limits[PC_LIM_MEMORY_MB] * 1024 * 1024, last = b->limits[PC_LIM_MEMORY_MB] * 1024 * 1024;
	long long quota = limits[PC_LIM_CPU_PERCENT] * CFS_PERIOD_US / 100;
	bool fresh = !last;
	int r;

	if (mem != last && (r = write_memory(b, mem, last, err)) < 0)
		return r;
	if ((fresh || limits[PC_LIM_PIDS] != b->limits[PC_LIM_PIDS]) &&
	    (r = v1_write(b, PIDS, "pids.max", O_WRONLY, err, "%lld", limits[PC_LIM_PIDS])) < 0)
		return r;
	if (fresh && (r = cg_write(b->dir[CPU], "cpu.cfs_period_us", err, "%d", CFS_PERIOD_US)) < 0)
		return r;
	if ((fresh || limits[PC_LIM_CPU_PERCENT] != b->limits[PC_LIM_CPU_PERCENT]) &&
	    (r = v1_write(b, CPU, "cpu.cfs_quota_us", O_WRONLY, err, "%lld", quota)) < 0)
		return r;
	memcpy(b->limits, limits, sizeof(b->limits));
	return 0;
}

int cg_v1_prepare(struct cg_backend *b, const char *name, const long long *limits, struct pc_error *err)
{
	int r;

	for (int i = 0; i < CG_V1_NCTL; i++) {
		if ((r = make_group(b, i, name, err)) < 0)
			return r;
	}
	return write_limits(b, limits, err);
}

int cg_v1_attach(struct cg_backend *b, pid_t pid, struct pc_error *err)
{
	b->empty = false;
	for (int i = 0; i < CG_V1_NCTL; i++) {
		int r;
		if (b->shared[i])
			continue;
		if ((r = v1_write(b, i, "cgroup.procs", O_WRONLY, err, "%d", (int)pid)) < 0)
			return pc_error_wrap(err, "attach to cgroup '%s'", cg_v1_controllers[i]);
	}
	return 0;
}

void cg_v1_kill(struct cg_backend *b)
{
	/* v1 has no cgroup.kill; pid 1's death takes the pid namespace down,
	 * this catches whatever is left. Every controller's group holds the
	 * same processes (all attached before the job ran), so one list does.
	 * Once it reads empty nothing can enter again (only pycell attaches,
	 * and a fork needs a living member): later calls return at once. */
	if (!b->empty && b->dir[PIDS] >= 0)
		b->empty = cg_kill_procs(b->dir[PIDS]);
}

int cg_v1_cpu_ns(struct cg_backend *b, long long *ns)
{
	long long v = v1_read_ll(b, CPUACCT, "cpuacct.usage", O_RDWR);

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
	st->peak_memory_bytes = v1_read_ll(b, MEM, "memory.max_usage_in_bytes", O_RDWR);
	/* memory.oom_control has "oom_kill N" since Linux 4.13; failcnt only
	 * says the limit was reached (reclaim may have coped). A reused group
	 * counts from its baselines (cg_v1_reuse). */
	st->oom_killed = v1_read_key(b, MEM, "memory.oom_control", "oom_kill") > b->base_oom_kill;
	st->memory_hit =
	    v1_read_ll(b, MEM, "memory.failcnt", O_RDWR) > 0 || v1_read_ll(b, MEM, "memory.memsw.failcnt", O_RDWR) > 0;
	st->pids_hit = v1_read_key(b, PIDS, "pids.events", "max") > b->base_pids_max;
}

/* A warm handler's group again, for its next job (cgroup.c says when):
 * empty since the last job (cg_v1_kill read it so, and only pycell
 * attaches) and holding little memory. The counters a job's verdict reads
 * start over: reset where the kernel allows it, else read as a baseline.
 * Memory still charged from earlier jobs (page cache of the rootfs,
 * reclaimable) stays: the peak starts from it. */
int cg_v1_reuse(struct cg_backend *b, const long long *limits, struct pc_error *err)
{
	long long used, room = limits[PC_LIM_MEMORY_MB] * 1024 * 1024 / 8;
	int r;

	if (!b->empty)
		return pc_error_set(err, EBUSY, "the group is not known to be empty");
	used = v1_read_ll(b, MEM, "memory.usage_in_bytes", O_RDONLY);
	/* The last job's tmpfs is freed as its leader exits, a moment after its
	 * answer: while that is still charged here, this job gets a fresh group. */
	if (used < 0 || used > (room < REUSE_MAX_CHARGED ? room : REUSE_MAX_CHARGED))
		return pc_error_set(err, EBUSY, "%lld bytes still charged to the group", used);
	if ((r = v1_write(b, MEM, "memory.max_usage_in_bytes", O_RDWR, err, "0")) < 0 ||
	    (r = v1_write(b, MEM, "memory.failcnt", O_RDWR, err, "0")) < 0 ||
	    (r = v1_write(b, CPUACCT, "cpuacct.usage", O_RDWR, err, "0")) < 0)
		return r;
	r = v1_write(b, MEM, "memory.memsw.failcnt", O_RDWR, NULL, "0");
	if (r < 0 && r != -ENOENT)
		return pc_error_set(err, -r, "reset 'memory.memsw.failcnt'");
	b->base_oom_kill = v1_read_key(b, MEM, "memory.oom_control", "oom_kill");
	b->base_pids_max = v1_read_key(b, PIDS, "pids.events", "max");
	if (b->base_oom_kill < 0 || b->base_pids_max < 0)
		return pc_error_set(err, EIO, "read the group's oom_kill and pids max counts");
	return write_limits(b, limits, err);
}

void cg_v1_destroy(struct cg_backend *b, const char *name)
{
	for (int i = 0; i < CG_V1_NCTL; i++) {
		if (b->created[i])
			(void)cg_remove_group(b->pdir[i], name, b->dir[i]);
		b->created[i] = false;
	}
}
