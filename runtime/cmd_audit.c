/* `pycell audit`: prove each isolation layer from inside a real job.
 *
 * Two jobs, both through pc_run_job with the audited policy and rootfs:
 *   1. the evidence job (runtime/audit/evidence.py) under the policy's
 *      kernel layers, with python.checks off for this job only: the shim's
 *      allowlist would refuse the `os` it needs to look around. The C audit
 *      hook and the exec filter stay on, as for every job. While it runs,
 *      the supervisor reads the job's cgroup files (run.h on_started).
 *   2. `import os` under the policy as it is: the Python layer must refuse
 *      it with SECURITY_ERROR import_not_allowed:os (SKIP when the policy
 *      itself switches the Python layer off).
 * Exit 0 only when no check FAILs (and, with --baseline, nothing regressed);
 * 1 otherwise; 2 unusable invocation; 125 a job could not run. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "cli.h"
#include "jsonutil.h"
#include "result.h"
#include "run.h"
#include "util.h"

enum { OPT_POLICY = 1, OPT_ROOTFS, OPT_FORMAT, OPT_BASELINE };
enum fmt { FMT_TEXT, FMT_JSON, FMT_MARKDOWN };

static const struct option audit_opts[] = {
	{ "policy", required_argument, NULL, OPT_POLICY },
	{ "rootfs", required_argument, NULL, OPT_ROOTFS },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "baseline", required_argument, NULL, OPT_BASELINE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

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

/* One job through pc_run_job; returns its result document (NULL and the
 * reason in why when the runtime could not run it). */
static json_object *run_one(struct pc_cli_common *c, const struct pc_policy *pol, const char *code,
			    struct pc_audit_outside *o, char *why, size_t why_len)
{
	struct pc_job job = { .code = (char *)code, .code_len = strlen(code), .mode = "inline" };
	struct pc_run r = { .job = &job, .policy = pol, .paths = &c->paths, .rootfs = c->rootfs };
	json_object *res;
	int status;

	if (o) {
		r.on_started = read_cgroup_live;
		r.on_started_arg = o;
	}
	if (pc_run_job(&r) < 0 && r.setup_failed) {
		pc_error_text(&r.setup_error, why, why_len);
		pc_run_free(&r);
		return NULL;
	}
	if (o) {
		memcpy(o->limits, r.limits, sizeof(o->limits));
		o->n_rl = r.rc.n_rl < 8 ? r.rc.n_rl : 8;
		memcpy(o->rl, r.rc.rl, o->n_rl * sizeof(o->rl[0]));
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

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

static void print_report(const struct pc_audit *a, enum fmt f, const char *policy, const char *rootfs, int counts[3])
{
	if (f == FMT_JSON) {
		_cleanup_json_ json_object *o = json_object_new_object();
		json_object *arr = json_object_new_array(), *sum = json_object_new_object();

		json_object_object_add(o, "policy", json_object_new_string(policy));
		json_object_object_add(o, "rootfs", json_object_new_string(rootfs));
		for (int i = 0; i < a->n; i++) {
			json_object *c = json_object_new_object();
			json_object_object_add(c, "id", json_object_new_string(a->c[i].id));
			json_object_object_add(c, "status",
					       json_object_new_string(pc_audit_status_name(a->c[i].status)));
			json_object_object_add(c, "evidence", json_object_new_string(a->c[i].evidence));
			json_object_array_add(arr, c);
		}
		json_object_object_add(o, "checks", arr);
		json_object_object_add(sum, "pass", json_object_new_int(counts[PC_AUDIT_PASS]));
		json_object_object_add(sum, "fail", json_object_new_int(counts[PC_AUDIT_FAIL]));
		json_object_object_add(sum, "skip", json_object_new_int(counts[PC_AUDIT_SKIP]));
		json_object_object_add(o, "summary", sum);
		json_object_object_add(o, "ok", json_object_new_boolean(counts[PC_AUDIT_FAIL] == 0));
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
							   JSON_C_TO_STRING_NOSLASHESCAPE));
		return;
	}
	if (f == FMT_MARKDOWN)
		printf("### pycell audit: policy `%s`, rootfs `%s`\n\n| check | status | evidence |\n|---|---|---|\n",
		       policy, rootfs);
	else
		printf("pycell audit: policy '%s', rootfs '%s'\n", policy, rootfs);
	for (int i = 0; i < a->n; i++) {
		if (f == FMT_MARKDOWN)
			printf("| `%s` | %s | %s |\n", a->c[i].id, pc_audit_status_name(a->c[i].status),
			       a->c[i].evidence);
		else
			printf("%s  %-28s %s\n", pc_audit_status_name(a->c[i].status), a->c[i].id, a->c[i].evidence);
	}
	printf("%s%d PASS, %d FAIL, %d SKIP\n", f == FMT_MARKDOWN ? "\n" : "summary: ", counts[PC_AUDIT_PASS],
	       counts[PC_AUDIT_FAIL], counts[PC_AUDIT_SKIP]);
}

/* A baseline is a JSON report (--format json) or a text one: lines
 * "STATUS  id  evidence". Returns how many checks it holds, -1 unreadable. */
static int load_baseline(const char *path, struct pc_audit *b)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;

	if (pc_cli_read_input(path, 4 << 20, &buf, &len) < 0)
		return -1;
	if (buf[strspn(buf, " \t\r\n")] == '{') {
		const char *why;
		_cleanup_json_ json_object *o = pc_json_parse(buf, len, &why);
		json_object *arr = member(o, "checks");

		if (!arr || !json_object_is_type(arr, json_type_array))
			return -1;
		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			json_object *c = json_object_array_get_idx(arr, i);
			const char *st = json_object_get_string(member(c, "status"));
			pc_audit_add(b, json_object_get_string(member(c, "id")) ?: "",
				     st && strcmp(st, "PASS") == 0   ? PC_AUDIT_PASS
				     : st && strcmp(st, "SKIP") == 0 ? PC_AUDIT_SKIP
								     : PC_AUDIT_FAIL,
				     "%s", json_object_get_string(member(c, "evidence")) ?: "");
		}
		return b->n;
	}
	for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char st[8], id[48];
		int off = 0;

		if (sscanf(l, "%7s %47s %n", st, id, &off) < 2 ||
		    (strcmp(st, "PASS") && strcmp(st, "FAIL") && strcmp(st, "SKIP")))
			continue;
		pc_audit_add(b, id,
			     !strcmp(st, "PASS")   ? PC_AUDIT_PASS
			     : !strcmp(st, "SKIP") ? PC_AUDIT_SKIP
						   : PC_AUDIT_FAIL,
			     "%s", l + off);
	}
	return b->n;
}

/* Regressions: a check the baseline passed that now does not (or is gone).
 * Evidence that changed under a still-passing check is named, not fatal. */
static int diff_baseline(const struct pc_audit *a, const struct pc_audit *b)
{
	int regressions = 0;

	for (int i = 0; i < b->n; i++) {
		const struct pc_audit_check *now = NULL;

		for (int j = 0; j < a->n && !now; j++)
			if (strcmp(a->c[j].id, b->c[i].id) == 0)
				now = &a->c[j];
		if (!now && b->c[i].status == PC_AUDIT_PASS) {
			printf("REGRESSION %s: PASS -> missing\n", b->c[i].id);
			regressions++;
		} else if (now && b->c[i].status == PC_AUDIT_PASS && now->status != PC_AUDIT_PASS) {
			printf("REGRESSION %s: PASS -> %s: %s\n", now->id, pc_audit_status_name(now->status),
			       now->evidence);
			regressions++;
		} else if (now && strcmp(now->evidence, b->c[i].evidence) != 0) {
			printf("CHANGED %s: '%s' -> '%s'\n", now->id, b->c[i].evidence, now->evidence);
		}
	}
	printf("baseline: %d regression(s)\n", regressions);
	return regressions;
}

static int parse_format(const char *s, enum fmt *f)
{
	if (strcmp(s, "text") == 0)
		*f = FMT_TEXT;
	else if (strcmp(s, "json") == 0)
		*f = FMT_JSON;
	else if (strcmp(s, "markdown") == 0)
		*f = FMT_MARKDOWN;
	else
		return -1;
	return 0;
}

static int audit_jobs(struct pc_cli_common *c, struct pc_audit *a)
{
	struct pc_audit_outside o = { 0 };
	struct pc_policy probe_pol = c->policy; /* shallow: only python_checks differs */
	json_object *ev;
	char why[PC_ERROR_MSG + 64];
	json_object *res;

	read_host_ns(&o);
	snprintf(o.network, sizeof(o.network), "%s", c->policy.network);
	snprintf(o.seccomp_list, sizeof(o.seccomp_list), "%s",
		 c->policy.seccomp[0] ? base_name(c->policy.seccomp) : "");
	probe_pol.python_checks = false;
	if (!(res = run_one(c, &probe_pol, pc_audit_evidence_py, &o, why, sizeof(why)))) {
		fprintf(stderr, "pycell audit: the evidence job could not run: %s\n", why);
		return PC_EXIT_RUNTIME;
	}
	ev = member(res, "result");
	if (!ev || !json_object_is_type(ev, json_type_object)) {
		json_object *e = member(res, "error");
		fprintf(stderr, "pycell audit: the evidence job failed: %s\n",
			e ? json_object_to_json_string(e) : "no result");
		json_object_put(res);
		return PC_EXIT_RUNTIME;
	}
	pc_audit_judge(a, ev, &o);
	json_object_put(res);
	if (!(res = run_one(c, &c->policy, "import os\n", NULL, why, sizeof(why)))) {
		fprintf(stderr, "pycell audit: the Python-layer job could not run: %s\n", why);
		return PC_EXIT_RUNTIME;
	}
	python_layer(a, &c->policy, res);
	json_object_put(res);
	return 0;
}

int pc_cmd_audit(int argc, char **argv)
{
	struct pc_cli_common c = { 0 };
	struct pc_audit a = { 0 }, b = { 0 };
	const char *baseline = NULL;
	enum fmt f = FMT_TEXT;
	int opt, status, counts[3] = { 0 };

	while ((opt = getopt_long(argc, argv, "+h", audit_opts, NULL)) != -1) {
		switch (opt) {
		case OPT_POLICY: c.policy_arg = optarg; break;
		case OPT_ROOTFS: c.rootfs_arg = optarg; break;
		case OPT_BASELINE: baseline = optarg; break;
		case OPT_FORMAT:
			if (parse_format(optarg, &f) < 0) {
				fprintf(stderr, "pycell audit: --format: '%s' (text, json or markdown)\n", optarg);
				return PC_EXIT_USAGE;
			}
			break;
		case 'h':
			puts("usage: pycell audit [--policy FILE] [--rootfs DIR] [--format text|json|markdown] "
			     "[--baseline FILE]");
			return 0;
		default: return PC_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pycell audit: unexpected argument '%s'\n", argv[optind]);
		return PC_EXIT_USAGE;
	}
	if (baseline && load_baseline(baseline, &b) <= 0) {
		fprintf(stderr,
			"pycell audit: baseline '%s': unreadable or holds no checks (write one with --format json)\n",
			baseline);
		return PC_EXIT_USAGE;
	}
	if ((status = pc_cli_setup(&c)) != 0)
		return status;
	if ((status = audit_jobs(&c, &a)) == 0) {
		pc_audit_sort(&a);
		for (int i = 0; i < a.n; i++)
			counts[a.c[i].status]++;
		print_report(&a, f, c.policy.name, base_name(c.rootfs), counts);
		status = counts[PC_AUDIT_FAIL] ? PC_EXIT_JOB_ERROR : PC_EXIT_OK;
		if (baseline && diff_baseline(&a, &b) > 0)
			status = PC_EXIT_JOB_ERROR;
	}
	pc_cli_cleanup(&c);
	return status;
}
