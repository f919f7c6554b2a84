/* cgroups behind one small interface with a v2 and a v1 backend (crun's
 * libcrun_cgroup_manager): the caller never knows which hierarchy it runs on.
 *
 * Layout: every job gets `<parent>/job-<pycell pid>-<random>`, where parent is
 * $PYCELL_CGROUP_PARENT or "pycell", relative to the hierarchy's mount root
 * (v2: /sys/fs/cgroup; v1: /sys/fs/cgroup/<controller> for memory, pids, cpu,
 * cpuacct). `pycell gc` removes job groups whose pycell is gone.
 *
 * Detection at run time: pure v2 when /sys/fs/cgroup is cgroup2fs with
 * "memory" in cgroup.controllers; v1 when /sys/fs/cgroup/memory is a cgroup
 * mount; else (or when the groups cannot be created: rootless without
 * delegation) version 0, and `unapplied` names what is not enforced.
 * PYCELL_CGROUP_VERSION=0|1|2 forces a version (0 = off; tests and
 * benchmarks) and PYCELL_CGROUP_ROOT moves the mount root (unit tests
 * against a fake directory). */
#ifndef PYCELL_CGROUP_H
#define PYCELL_CGROUP_H

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"
#include "joblimits.h"

#define PC_CGROUP_DEFAULT_PARENT "pycell"

struct pc_cgroup {
	int version;	    /* 0: none (rootless without delegation), 1 or 2 */
	int clone_fd;	    /* v2: directory fd for CLONE_INTO_CGROUP, else -1 */
	void *backend;	    /* owned by cgroup.c */
	char name[96];	    /* job-<pid>-<hex>; "" when version 0 */
	char unapplied[64]; /* "memory,pids,cpu" limits not enforced; "" when all are */
};

struct pc_cgroup_stats {
	long long cpu_ns;
	long long peak_memory_bytes; /* -1 when unknown */
	bool oom_killed;	     /* the kernel OOM-killed a process of the group */
	bool memory_hit;	     /* the memory limit was reached (v1 failcnt, v2 events max) */
	bool pids_hit;		     /* a fork failed at pids.max */
	bool cpu_exhausted;	     /* filled in by the caller from cpu_ns and cpu_ms */
};

/* Parent, before clone: creates the per-job group and writes the limits.
 * Falls back to version 0 (never fails) when no usable hierarchy exists;
 * fails when a hierarchy exists but a limit cannot be written. */
int pc_cgroup_prepare(struct pc_cgroup *cg, const long long limits[PC_LIM_COUNT], struct pc_error *err);
/* Warm mode (cgroup_warm.c; docs/warm.md): on pure v2, a zygote's tree
 * <parent>/zygote-<pid>-<hex> delegated to its host uid `owner` (clone_fd:
 * the tree, for the zygote sandbox's clone). On v1 or without cgroups it
 * stays empty (clone_fd -1, version 1 or 0): handlers do as cold mode. */
int pc_cgroup_tree_prepare(struct pc_cgroup *tree, uid_t owner, struct pc_error *err);
/* Once the zygote runs (its cgroup namespace rooted at the tree): moves it
 * to its leaf and enables the controllers for the job groups. */
int pc_cgroup_tree_settle(struct pc_cgroup *tree, pid_t zygote, struct pc_error *err);
/* A fresh job group in the tree, no limits yet, for the zygote's next
 * leader: returns its directory fd (for SCM_RIGHTS) or -errno. */
int pc_cgroup_tree_group(const struct pc_cgroup *tree, struct pc_error *err);
/* A warm job's prepare on a tree: remembers the limits; setup_parent then
 * adopts the job group the process was cloned into and writes them. */
int pc_cgroup_prepare_adopt(struct pc_cgroup *cg, const struct pc_cgroup *tree, const long long limits[PC_LIM_COUNT],
			    struct pc_error *err);
/* Parent, after clone and before the child runs (v1: attach the pid; a
 * warm job on a tree: adopt its group and write the limits). */
int pc_cgroup_setup_parent(struct pc_cgroup *cg, pid_t pid, struct pc_error *err);
/* Kills every process in the group. */
void pc_cgroup_kill(struct pc_cgroup *cg);
/* The group's cpu time so far (cheap: for the supervisor's cpu_ms poll). */
int pc_cgroup_cpu_ns(struct pc_cgroup *cg, long long *ns);
int pc_cgroup_stats(struct pc_cgroup *cg, struct pc_cgroup_stats *st, struct pc_error *err);
/* Reads one of the job group's files (controller "memory", "pids", "cpu";
 * v2 ignores it): `pycell audit` shows the limits in force from outside.
 * Returns the length read or -errno. */
ssize_t pc_cgroup_read_file(struct pc_cgroup *cg, const char *controller, const char *name, char *buf, size_t len);
/* Warm handlers on v1 (docs/warm.md): a handler keeps its job's group
 * for its next job instead of a rmdir and a mkdir per controller. park:
 * after pc_cgroup_kill found the group empty, moves it into *parked (cg is
 * left without one); false when it cannot be kept (not v1, not known
 * empty): destroy cg then. reuse: the parked group for a new job, its
 * counters started over and these limits written; false when none is
 * parked or it failed (then it is removed: make a fresh one). */
bool pc_cgroup_park(struct pc_cgroup *cg, struct pc_cgroup *parked);
bool pc_cgroup_reuse(struct pc_cgroup *parked, struct pc_cgroup *cg, const long long limits[PC_LIM_COUNT]);
/* Removes the group, a tree with its groups (after the sandbox is reaped).
 * Idempotent. */
void pc_cgroup_destroy(struct pc_cgroup *cg);
/* `pycell gc`: removes job groups and zygote trees under the parent whose
 * pycell process is gone (killing what is left in them first). *removed
 * counts groups. */
int pc_cgroup_gc(int *removed, struct pc_error *err);

#endif
