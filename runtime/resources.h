/* Resource control for one job: uid lease, cgroup, rlimits, the supervisor's
 * cpu_ms watch and signal handling, accounting, and the named outcomes that
 * come from resource evidence (MEMORY_LIMIT, PIDS_LIMIT, CPU_LIMIT,
 * DISK_LIMIT). run.c calls prepare before the sandbox starts, collect after
 * the pump, release on every path; result.c asks for outcomes and metrics. */
#ifndef PYCELL_RESOURCES_H
#define PYCELL_RESOURCES_H

#include <json-c/json.h>
#include <signal.h>
#include <stdbool.h>

#include "cgroup.h"
#include "error.h"
#include "lease.h"
#include "joblimits.h"
#include "sandbox.h"

struct pc_run;
struct pc_sandbox_config;

#define PC_MAX_RLIMITS 8
#define PC_CPU_POLL_MS 20 /* supervisor's cpu_ms poll; RLIMIT_CPU backs it up */

struct pc_resources {
	struct pc_lease lease;
	struct pc_cgroup cg;
	bool cg_ready;			 /* cg holds a prepared group (or version 0) */
	const struct pc_cgroup *cg_tree; /* warm on v2: the zygote's tree (cgroup_warm.c) */
	bool zygote_uid;		 /* warm: the job runs as its zygote's uid, no lease */
	struct pc_cgroup *cg_parked;	 /* warm handler on v1: its group kept between jobs */
	bool signals_ignored;		 /* warm handler: no SIGTERM/SIGINT/SIGHUP signalfd */
	struct pc_rlimit rl[PC_MAX_RLIMITS];
	size_t n_rl;
	long long cpu_limit_ns;
	struct pc_cgroup_stats stats;
	bool have_stats;     /* stats came from the cgroup */
	long long ru_cpu_ns; /* fallback accounting: getrusage(RUSAGE_CHILDREN) */
	long long ru_maxrss_bytes;
	bool cpu_killed;    /* the supervisor killed the job at cpu_ms */
	int signal_fd;	    /* SIGTERM/SIGINT/SIGHUP to pycell, -1 if none */
	int interrupted_by; /* that signal, once it came */
	sigset_t saved_mask;
	bool mask_saved;
};

struct pc_outcome {
	const char *code;
	char message[256];
	json_object *details; /* owned by the receiver */
};

void pc_resources_init(struct pc_resources *rc);
/* Lease (as root), cgroup, rlimits, signal fd; fills cfg's host ids,
 * cgroup and rlimits. */
int pc_resources_prepare(struct pc_resources *rc, const long long limits[PC_LIM_COUNT], bool require_cgroups,
			 struct pc_sandbox_config *cfg, struct pc_error *err);
/* The pump's periodic watch: 1 when the job passed cpu_ms (kill it). */
int pc_resources_watch(void *rc);
/* After the pump: stats from the cgroup (or rusage); kills stragglers. */
void pc_resources_collect(struct pc_resources *rc);
/* Removes the cgroup, drops the lease, restores the signal mask. Idempotent. */
void pc_resources_release(struct pc_resources *rc);
/* Outcomes backed by evidence; returns how many (at most max). */
int pc_resources_outcomes(const struct pc_run *r, json_object *report, struct pc_outcome *out, int max);
void pc_resources_metrics(const struct pc_run *r, json_object *metrics);
/* With PYCELL_DEBUG_FDS=1, prints "pycell: fds at WHEN: N" on stderr;
 * returns status unchanged. */
int pc_debug_fds(const char *when, int status);
/* `pycell gc`. */
int pc_cmd_gc(int argc, char **argv);

#endif
