/* Placeholder until the resource-control issue lands: no cgroup. */
#include "cgroup.h"

#include <string.h>

int pc_cgroup_prepare(struct pc_cgroup *cg, const long long limits[PC_LIM_COUNT], struct pc_error *err)
{
	(void)limits;
	(void)err;
	memset(cg, 0, sizeof(*cg));
	cg->clone_fd = -1;
	return 0;
}

int pc_cgroup_setup_parent(struct pc_cgroup *cg, pid_t pid, struct pc_error *err)
{
	(void)cg;
	(void)pid;
	(void)err;
	return 0;
}

void pc_cgroup_kill(struct pc_cgroup *cg)
{
	(void)cg;
}

int pc_cgroup_stats(struct pc_cgroup *cg, struct pc_cgroup_stats *st, struct pc_error *err)
{
	(void)cg;
	(void)err;
	memset(st, 0, sizeof(*st));
	st->peak_memory_bytes = -1;
	return 0;
}

void pc_cgroup_destroy(struct pc_cgroup *cg)
{
	(void)cg;
}
