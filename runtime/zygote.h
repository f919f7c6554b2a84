/* Warm mode, host side: one zygote sandbox (pycell-init --zygote) and the
 * per-job handshake with the job leaders it forks (docs/warm.md). */
#ifndef PYCELL_ZYGOTE_H
#define PYCELL_ZYGOTE_H

#include <stdbool.h>

#include "error.h"
#include "lease.h"
#include "paths.h"
#include "policy.h"
#include "sandbox.h"

struct pc_zygote {
	struct pc_sandbox sb; /* sb.sync_fd is the control socket */
	struct pc_lease lease;
	struct pc_cgroup cg; /* cgroup v2: its tree (cgroup_warm.c), else clone_fd -1 */
	unsigned seccomp_insns;
	bool seccomp_cached; /* its filter came from the BPF cache (once, at start) */
	int jobs;	     /* jobs dispatched to it */
	bool broken;	     /* an anomaly: replace it */
};

void pc_zygote_init(struct pc_zygote *z);
/* Starts a zygote for this policy and rootfs; returns once its interpreter
 * is up and the policy's modules are imported. */
int pc_zygote_start(struct pc_zygote *z, const struct pc_policy *pol, const struct pc_paths *paths, const char *rootfs,
		    struct pc_error *err);
/* pc_sandbox_start's warm twin: asks the zygote for a job leader, attaches
 * the job process to cfg->cgroup, returns once it runs. sb->pid stays -1
 * (not our child); sb->pidfd is the job process's. Sets
 * z->broken when the zygote did not answer as it should. */
int pc_zygote_start_job(struct pc_zygote *z, const struct pc_sandbox_config *cfg, struct pc_sandbox *sb,
			struct pc_error *err);
/* Whether a warm job gets this rlimit (cgroup: its own cgroup bounds it). */
bool pc_zygote_job_rlimit(int resource, bool cgroup);
/* pc_sandbox_reap's warm twin, once sb->pidfd reported the job process gone. */
int pc_zygote_reap(struct pc_sandbox *sb, int *job_status, bool *from_init);
/* Closes the control socket: the zygote exits once its jobs have. */
void pc_zygote_retire(struct pc_zygote *z);
/* Retire, then kill and reap it. Idempotent. */
void pc_zygote_stop(struct pc_zygote *z);
/* Sandbox child (sandbox.c) of a zygote, instead of dropping every
 * capability: keeps CAP_SYS_ADMIN, CAP_NET_ADMIN and CAP_SETPCAP as
 * ambient capabilities across the exec of pycell-init. Allocates nothing. */
int pc_zygote_caps_child(struct pc_error *err);

#endif
