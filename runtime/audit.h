/* `pycell audit` and `pycell check` (docs/audit.md). The audit runs probe
 * jobs through pc_run_job, gathers what the job saw from inside and what the
 * supervisor saw from outside, and judges each layer PASS, FAIL or SKIP. */
#ifndef PYCELL_AUDIT_H
#define PYCELL_AUDIT_H

#include <json-c/json.h>
#include <stdbool.h>

#include "error.h"
#include "landlock.h"
#include "limits.h"
#include "sandbox.h"

#define PC_AUDIT_MAX 64
#define PC_AUDIT_NS  7

enum pc_audit_status { PC_AUDIT_PASS, PC_AUDIT_FAIL, PC_AUDIT_SKIP };

struct pc_audit_check {
	char id[48];
	enum pc_audit_status status;
	char evidence[480];
};

struct pc_audit {
	struct pc_audit_check c[PC_AUDIT_MAX];
	int n;
};

/* What the supervisor saw of the evidence job from outside. */
struct pc_audit_outside {
	char host_ns[PC_AUDIT_NS][64]; /* readlink /proc/self/ns/X of pycell */
	long long limits[PC_LIM_COUNT];
	int cg_version; /* 0: no cgroup limits applied */
	char cg_unapplied[64];
	char cg_memory[64], cg_pids[64], cg_cpu[64]; /* the job group's files, live */
	bool cg_read;
	struct pc_rlimit rl[8];
	size_t n_rl;
	int rl_by_cgroup[8]; /* warm: left out, the job's cgroup bounds them */
	size_t n_rl_by_cgroup;
	unsigned seccomp_insns;
	char seccomp_list[256]; /* basename of the policy's list, "" when none */
	struct pc_landlock landlock;
	char network[16];
};

extern const char *const pc_audit_ns_names[PC_AUDIT_NS];
extern const char pc_audit_evidence_py[]; /* runtime/audit/evidence.py */

const char *pc_audit_status_name(enum pc_audit_status s);
void pc_audit_add(struct pc_audit *a, const char *id, enum pc_audit_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Judges the evidence job's result value against the outside view. */
void pc_audit_judge(struct pc_audit *a, json_object *ev, const struct pc_audit_outside *o);
/* Sorts by id (the report is diffable). */
void pc_audit_sort(struct pc_audit *a);

struct pc_paths;
struct pc_policy;
struct pc_zygote;
/* The audit's jobs and judgement (audit_run.c): cold when pool is NULL;
 * warm otherwise (the evidence job through a one-off zygote, `import os`
 * through pool). Fills a, sorted; -1 with err set when a job could not run. */
int pc_audit_run(const struct pc_policy *pol, const struct pc_paths *paths, const char *rootfs, struct pc_zygote *pool,
		 struct pc_audit *a, struct pc_error *err);
void pc_audit_count(const struct pc_audit *a, int counts[3]);
/* The report document (`--format json`, POST /v1/audit); mode "cold" or "warm". */
json_object *pc_audit_document(const struct pc_audit *a, const char *mode, const char *policy, const char *rootfs);
/* Its checks read back (a baseline, a server's answer); -1: no "checks" array. */
int pc_audit_from_document(json_object *doc, struct pc_audit *a);
const char *pc_audit_base_name(const char *path);

int pc_cmd_audit(int argc, char **argv);
int pc_cmd_check(int argc, char **argv);

#endif
