/* One job, start to finish: sandbox config from job + policy, supervision,
 * and the facts the result is made of. */
#ifndef PYCELL_RUN_H
#define PYCELL_RUN_H

#include <stdbool.h>

#include "error.h"
#include "io.h"
#include "job.h"
#include "paths.h"
#include "policy.h"
#include "resources.h"

#define PC_MAX_TRACE 8

struct pc_trace {
	const char *phase;
	bool ok;
	double ms;
};

struct pc_run {
	/* inputs */
	const struct pc_job *job;
	const struct pc_policy *policy;
	const struct pc_paths *paths;
	const char *rootfs;	    /* resolved absolute path */
	bool passthrough;	    /* exec mode: stream output through */
	bool ablation;		    /* tests only: mount the probe, no Python layer */
	char *const *ablation_argv; /* what pid 1 runs in ablation mode */
	/* `pycell audit`: called once the sandbox runs, before the pump, so
	 * the auditor reads the job's cgroup from outside while it is live. */
	void (*on_started)(struct pc_run *r, void *arg);
	void *on_started_arg;
	struct pc_zygote *zygote;    /* warm mode (zygote.h): fork from it, NULL: cold */
	bool defer_release;	     /* the caller runs pc_resources_release(&rc) itself,
				      * after answering (serve.c: rmdir is off the path) */
	struct pc_cgroup *cg_parked; /* a warm handler's group kept between its jobs (v1) */
	bool signals_ignored;	     /* a warm handler: SIGTERM/SIGINT/SIGHUP never end the job */
	/* outputs */
	long long limits[PC_LIM_COUNT];
	struct pc_stream out, err, res;
	struct pc_pump_outcome pump;
	struct pc_resources rc; /* lease, cgroup, rlimits, accounting */
	int job_status;		/* raw wait status of the job process */
	bool have_status;
	bool setup_failed;
	struct pc_error setup_error;
	unsigned seccomp_insns;	     /* BPF size of the loaded filter, 0: none */
	bool seccomp_cached;	     /* the filter came from the BPF cache */
	struct pc_landlock landlock; /* enabled, or why it was skipped */
	long long setup_ns, wall_ns;
	long long sandbox_ns; /* within setup_ns: until pid 1 forked the job process; 0 unknown */
	struct pc_trace trace[PC_MAX_TRACE];
	int n_trace;
};

void pc_run_trace(struct pc_run *r, const char *phase, bool ok, long long since_ns);
/* Returns 0 when the job ran (whatever it did), negative when the runtime
 * itself failed; r->setup_error says where. */
int pc_run_job(struct pc_run *r);
void pc_run_free(struct pc_run *r);
/* The job's environment, built from scratch (also the zygote's). */
char *const *pc_run_job_env(void);

#endif
