/* cgroups behind one small interface with a v2 and a v1 backend (crun's
 * libcrun_cgroup_manager): the caller never knows which hierarchy it runs on. */
#ifndef PYCELL_CGROUP_H
#define PYCELL_CGROUP_H

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"
#include "limits.h"

struct pc_cgroup {
	int version;   /* 0: none (rootless without delegation), 1 or 2 */
	int clone_fd;  /* v2: directory fd for CLONE_INTO_CGROUP, else -1 */
	void *backend; /* owned by cgroup.c */
};

struct pc_cgroup_stats {
	long long cpu_ns;
	long long peak_memory_bytes; /* -1 when unknown */
	bool oom_killed;
	bool pids_hit;
	bool cpu_exhausted;
};

/* Parent, before clone: creates the per-job group and writes the limits. */
int pc_cgroup_prepare(struct pc_cgroup *cg, const long long limits[PC_LIM_COUNT], struct pc_error *err);
/* Parent, after clone and before the child runs (v1: attach the pid). */
int pc_cgroup_setup_parent(struct pc_cgroup *cg, pid_t pid, struct pc_error *err);
/* Kills every process in the group. */
void pc_cgroup_kill(struct pc_cgroup *cg);
int pc_cgroup_stats(struct pc_cgroup *cg, struct pc_cgroup_stats *st, struct pc_error *err);
/* Removes the group (after the sandbox is reaped). Idempotent. */
void pc_cgroup_destroy(struct pc_cgroup *cg);

#endif
