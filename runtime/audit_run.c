/* The audit's two jobs, cold (`pycell audit`) or warm (`pycell serve`'s
 * POST /v1/audit), and its report document (docs/audit.md).
 *
 * Both jobs go through pc_run_job with the audited policy and rootfs:
 *   1. the evidence job (runtime/audit/evidence.py) under the policy's
 *      kernel layers, with python.checks off for this job only: the shim's
 *      allowlist would refuse the `os` it needs to look around. The C audit
 *      hook and the exec filter stay on, as for every job. While it runs,
 *      the supervisor reads the job's cgroup files (run.h on_started).
 *      Warm, it is the first job of a one-off zygote made from that same
 *      policy (the pool's zygotes load python.checks at start), stopped
 *      right after, so the pool is never touched.
 *   2. `import os` under the policy as it is (warm: through the pool's own
 *      zygote): the Python layer must refuse it with SECURITY_ERROR
 *      import_not_allowed:os (SKIP when the policy switches it off). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "result.h"
#include "run.h"
#include "util.h"
#include "zygote.h"

static void chomp(char *s)
{
	s[strcspn(s, "\n")] = '\0';
}

/* run.h on_started: the job is live in its group; read the limits in force. */
static void read_cgroup_live(struct pc_run *r, void *arg)
{
	struct pc_audit_outside *o = arg;
	struct pc_cgroup *cg = &r->rc.cg;
	bool v2 = cg->version == 2;

	o->cg_version = cg->version;
	snprintf(o->cg_unapplied, sizeof(o->cg_unapplied), "%s", cg->unapplied[0] ? cg->unapplied : "none");
	if (cg->version == 0)
		return;
	o->cg_read =
	    pc_cgroup_read_file(cg, "memory", v2 ? "memory.max" : "memory.limit_in_bytes", o->cg_memory,
				sizeof(o->cg_memory)) > 0 &&
	    pc_cgroup_read_file(cg, "pids", "pids.max", o->cg_pids, sizeof(o->cg_pids)) > 0 &&
	    pc_cgroup_read_file(cg, "cpu", v2 ? "cpu.max" : "cpu.cfs_quota_us", o->cg_cpu, sizeof(o->cg_cpu)) > 0;
	chomp(o->cg_memory);
	chomp(o->cg_pids);
	chomp(o->cg_cpu);
}

static void read_host_ns(struct pc_audit_outside *o)
{
	for (int i = 0; i < PC_AUDIT_NS; i++) {
		char path[64];
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/ns/%s", pc_audit_ns_names[i]);
		n = readlink(path, o->host_ns[i], sizeof(o->host_ns[i]) - 1);
		o->host_ns[i][n > 0 ? n : 0] = '\0';
	}
}

const char *pc_audit_base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

/* The rlimits the supervisor gave the job: warm, the zygote leaves out
 * those a per-job cgroup bounds instead (zygote.c). */
static void copy_rlimits(struct pc_audit_outside *o, const struct pc_run *r)
{
	o->n_rl = o->n_rl_by_cgroup = 0;
	for (size_t i = 0; i < r->rc.n_rl && o->n_rl < 8; i++) {
		if (r->zygote && !pc_zygote_job_rlimit(r->rc.rl[i].resource, r->rc.cg.version != 0))
			o->rl_by_cgroup[o->n_rl_by_cgroup++] = r->rc.rl[i].resource;
		else
			o->rl[o->n_rl++] = r->rc.rl[i];
	}
}

struct audit_ctx {
	const struct pc_paths *paths;
	const char *rootfs;
	struct pc_error *err;
};

/* One job through pc_run_job (z NULL: cold); returns its result document,
 * NULL with err set when the runtime could not run it. */
static json_object *run_one(const struct audit_ctx *x, const struct pc_policy *pol, struct pc_zygote *z,
			    const char *code, struct pc_audit_outside *o)
{
	struct pc_job job = { .code = (char *)code, .code_len = strlen(code), .mode = "inline" };
	struct pc_run r = { .job = &job, .policy = pol, .paths = x->paths, .rootfs = x->rootfs, .zygote = z };
	json_object *res;
	int status;

	if (o) {
		r.on_started = read_cgroup_live;
		r.on_started_arg = o;
	}
	if (pc_run_job(&r) < 0 && r.setup_failed) {
		*x->err = r.setup_error;
		pc_run_free(&r);
		return NULL;
	}
	if (o) {
		memcpy(o->limits, r.limits, sizeof(o->limits));
		copy_rlimits(o, &r);
		o->seccomp_insns = r.seccomp_insns;
		o->landlock = r.landlock;
	}
	res = pc_result_build(&r, &status);
	pc_run_free(&r);
	return res;
}

static json_object *member(json_object *o, const char *key)
{
	json_object *v = NULL;

	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static void python_layer(struct pc_audit *a, const struct pc_policy *pol, json_object *res)
{
	json_object *err = member(res, "error"), *viol = member(member(err, "details"), "violations");
	const char *code = err ? json_object_get_string(member(err, "code")) : "none";
	bool refused = false;

	if (!pol->python_checks) {
		pc_audit_add(a, "python.import_refused", PC_AUDIT_SKIP, "policy sets python.checks false");
		return;
	}
	for (size_t i = 0; viol && json_object_is_type(viol, json_type_array) && i < json_object_array_length(viol);
	     i++)
		refused = refused || strcmp(json_object_get_string(json_object_array_get_idx(viol, i)),
					    "import_not_allowed:os") == 0;
	pc_audit_add(a, "python.import_refused",
		     refused && code && strcmp(code, "SECURITY_ERROR") == 0 ? PC_AUDIT_PASS : PC_AUDIT_FAIL,
		     "`import os` -> %s%s", code ? code : "?", refused ? " import_not_allowed:os" : "");
}

/* Job 1, cold or through a one-off zygote of probe_pol. */
static int evidence(const struct audit_ctx *x, const struct pc_policy *probe_pol, bool warm, struct pc_audit *a,
		    struct pc_audit_outside *o)
{
	struct pc_zygote oneoff;
	json_object *res = NULL, *ev;
	int ret = -1;

	pc_zygote_init(&oneoff);
	if (warm && pc_zygote_start(&oneoff, probe_pol, x->paths, x->rootfs, x->err) < 0) {
		pc_error_wrap(x->err, "the evidence job's zygote could not start");
		goto out;
	}
	if (!(res = run_one(x, probe_pol, warm ? &oneoff : NULL, pc_audit_evidence_py, o))) {
		pc_error_wrap(x->err, "the evidence job could not run");
		goto out;
	}
	ev = member(res, "result");
	if (!ev || !json_object_is_type(ev, json_type_object)) {
		json_object *e = member(res, "error");
		pc_error_set(x->err, 0, "the evidence job failed: %s", e ? json_object_to_json_string(e) : "no result");
		goto out;
	}
	pc_audit_judge(a, ev, o);
	ret = 0;
out:
	pc_zygote_stop(&oneoff);
	json_object_put(res);
	return ret;
}

int pc_audit_run(const struct pc_policy *pol, const struct pc_paths *paths, const char *rootfs, struct pc_zygote *pool,
		 struct pc_audit *a, struct pc_error *err)
{
	const struct audit_ctx x = { paths, rootfs, err };
	struct pc_audit_outside o = { 0 };
	struct pc_policy probe_pol = *pol; /* shallow: only python_checks differs */
	json_object *res;

	read_host_ns(&o);
	snprintf(o.network, sizeof(o.network), "%s", pol->network);
	snprintf(o.seccomp_list, sizeof(o.seccomp_list), "%s", pol->seccomp[0] ? pc_audit_base_name(pol->seccomp) : "");
	probe_pol.python_checks = false;
	if (evidence(&x, &probe_pol, pool != NULL, a, &o) < 0)
		return -1;
	if (!(res = run_one(&x, pol, pool, "import os\n", NULL)))
		return pc_error_wrap(err, "the Python-layer job could not run");
	python_layer(a, pol, res);
	json_object_put(res);
	pc_audit_sort(a);
	return 0;
}

void pc_audit_count(const struct pc_audit *a, int counts[3])
{
	counts[0] = counts[1] = counts[2] = 0;
	for (int i = 0; i < a->n; i++)
		counts[a->c[i].status]++;
}

json_object *pc_audit_document(const struct pc_audit *a, const char *mode, const char *policy, const char *rootfs)
{
	json_object *o = json_object_new_object(), *arr = json_object_new_array(), *sum = json_object_new_object();
	int counts[3];

	pc_audit_count(a, counts);
	json_object_object_add(o, "mode", json_object_new_string(mode));
	json_object_object_add(o, "policy", json_object_new_string(policy));
	json_object_object_add(o, "rootfs", json_object_new_string(rootfs));
	for (int i = 0; i < a->n; i++) {
		json_object *c = json_object_new_object();
		json_object_object_add(c, "id", json_object_new_string(a->c[i].id));
		json_object_object_add(c, "status", json_object_new_string(pc_audit_status_name(a->c[i].status)));
		json_object_object_add(c, "evidence", json_object_new_string(a->c[i].evidence));
		json_object_array_add(arr, c);
	}
	json_object_object_add(o, "checks", arr);
	json_object_object_add(sum, "pass", json_object_new_int(counts[PC_AUDIT_PASS]));
	json_object_object_add(sum, "fail", json_object_new_int(counts[PC_AUDIT_FAIL]));
	json_object_object_add(sum, "skip", json_object_new_int(counts[PC_AUDIT_SKIP]));
	json_object_object_add(o, "summary", sum);
	json_object_object_add(o, "ok", json_object_new_boolean(counts[PC_AUDIT_FAIL] == 0));
	return o;
}

int pc_audit_from_document(json_object *doc, struct pc_audit *a)
{
	json_object *arr = member(doc, "checks");

	if (!arr || !json_object_is_type(arr, json_type_array))
		return -1;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *c = json_object_array_get_idx(arr, i);
		const char *st = json_object_get_string(member(c, "status"));
		pc_audit_add(a, json_object_get_string(member(c, "id")) ?: "",
			     st && strcmp(st, "PASS") == 0   ? PC_AUDIT_PASS
			     : st && strcmp(st, "SKIP") == 0 ? PC_AUDIT_SKIP
							     : PC_AUDIT_FAIL,
			     "%s", json_object_get_string(member(c, "evidence")) ?: "");
	}
	return a->n;
}
