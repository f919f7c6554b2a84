#define _GNU_SOURCE
#include "result.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "jsonutil.h"
#include "schema.h"
#include "sha256.h"
#include "util.h"

/* When several fire at once, this order decides (DESIGN.md section 3). */
static const char *const precedence[] = { "SECURITY_ERROR", "MEMORY_LIMIT", "OUTPUT_LIMIT", "DISK_LIMIT",
					  "TIMEOUT",	    "CPU_LIMIT",    "PIDS_LIMIT",   "RUNTIME_ERROR" };

static int rank(const char *code)
{
	for (size_t i = 0; i < ARRAY_SIZE(precedence); i++) {
		if (strcmp(precedence[i], code) == 0)
			return (int)i;
	}
	return (int)ARRAY_SIZE(precedence); /* others only when nothing ranked fired */
}

char *pc_utf8_sanitize(const char *buf, size_t len, bool *replaced)
{
	char *out = malloc(len * 3 + 1), *w = out;
	size_t i = 0;

	*replaced = false;
	if (!out)
		return NULL;
	while (i < len) {
		size_t n = 1;
		unsigned char c = (unsigned char)buf[i];

		if (c >= 0x80) {
			n = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
			if (n == 0 || i + n > len || !pc_utf8_valid(buf + i, n)) {
				memcpy(w, "\xef\xbf\xbd", 3);
				w += 3, i++;
				*replaced = true;
				continue;
			}
		} else if (c == 0) {
			/* json-c strings are NUL-safe, but callers' parsers often are
			 * not: keep NUL as the escaped \u0000 json-c writes. */
		}
		memcpy(w, buf + i, n);
		w += n, i += n;
	}
	*w = '\0';
	return out;
}

static json_object *text(const struct pc_stream *s, bool *replaced)
{
	_cleanup_free_ char *t = pc_utf8_sanitize(s->buf ? s->buf : "", s->len, replaced);

	return t ? json_object_new_string(t) : json_object_new_string("");
}

/* Milliseconds with microsecond precision: "12.345", not 12.344999999. */
static json_object *ms_json(double ms)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%.3f", ms);
	return json_object_new_double_s(ms, buf);
}

static json_object *limits_json(const long long *limits)
{
	json_object *o = json_object_new_object();

	for (int i = 0; i < PC_LIM_COUNT; i++)
		json_object_object_add(o, pc_limit_table[i].name, json_object_new_int64(limits[i]));
	return o;
}

static json_object *trace_json(const struct pc_run *r)
{
	json_object *a = json_object_new_array();

	for (int i = 0; i < r->n_trace; i++) {
		json_object *t = json_object_new_object();
		json_object_object_add(t, "phase", json_object_new_string(r->trace[i].phase));
		json_object_object_add(t, "ok", json_object_new_boolean(r->trace[i].ok));
		json_object_object_add(t, "ms", ms_json(r->trace[i].ms));
		json_object_array_add(a, t);
	}
	return a;
}

static void trace_add(json_object *a, const char *phase, bool ok, double ms)
{
	json_object *t = json_object_new_object();

	json_object_object_add(t, "phase", json_object_new_string(phase));
	json_object_object_add(t, "ok", json_object_new_boolean(ok));
	json_object_object_add(t, "ms", ms_json(ms));
	json_object_array_add(a, t);
}

/* Which kernel layers this job ran under (issue 5: auditors read it). */
static json_object *layers_json(const struct pc_run *r)
{
	json_object *l = json_object_new_object(), *s = NULL, *ll = json_object_new_object();

	if (r->seccomp_insns) {
		s = json_object_new_object();
		json_object_object_add(s, "list", json_object_new_string(r->policy->seccomp));
		json_object_object_add(s, "bpf_instructions", json_object_new_int((int)r->seccomp_insns));
		json_object_object_add(s, "cached", json_object_new_boolean(r->seccomp_cached));
	}
	json_object_object_add(l, "seccomp", s);
	json_object_object_add(ll, "applied", json_object_new_boolean(r->landlock.enabled));
	if (r->landlock.enabled)
		json_object_object_add(ll, "abi", json_object_new_int(r->landlock.abi));
	else
		json_object_object_add(ll, "note", json_object_new_string(r->landlock.note));
	json_object_object_add(l, "landlock", ll);
	json_object_object_add(l, "capabilities", json_object_new_string("all sets empty, securebits locked"));
	json_object_object_add(l, "no_new_privs", json_object_new_boolean(true));
	json_object_object_add(l, "python_checks", json_object_new_boolean(r->policy->python_checks));
	return l;
}

static json_object *error_obj(const char *code, const char *message, json_object *details)
{
	json_object *e = json_object_new_object();

	json_object_object_add(e, "code", json_object_new_string(code));
	json_object_object_add(e, "message", json_object_new_string(message));
	json_object_object_add(e, "details", details ? details : json_object_new_object());
	return e;
}

struct verdict {
	const char *code;
	char message[512];
	json_object *details; /* owned until handed to error_obj */
};

static void consider(struct verdict *v, const char *code, const char *msg, json_object *details)
{
	if (v->code && rank(v->code) <= rank(code)) {
		json_object_put(details);
		return;
	}
	json_object_put(v->details);
	v->code = code;
	snprintf(v->message, sizeof(v->message), "%s", msg);
	v->details = details;
}

/* The shim's report on fd 4: {"ok": true, "result": ...} or
 * {"ok": false, "error": {"code", "message", "details"}}. */
static json_object *shim_report(const struct pc_run *r)
{
	const char *why;
	json_object *o;

	if (!r->res.buf || r->res.len == 0)
		return NULL;
	o = pc_json_parse(r->res.buf, r->res.len, &why);
	if (o && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		o = NULL;
	}
	return o;
}

/* The report comes from the sandbox: json-c keeps raw bytes and decodes
 * lone-surrogate escapes into invalid UTF-8, which would reach the result
 * document verbatim. Checked on the serialized form, which has both. */
static bool report_utf8_ok(json_object *report)
{
	const char *s = json_object_to_json_string_ext(report, JSON_C_TO_STRING_PLAIN);

	return s && pc_utf8_valid(s, strlen(s));
}

static const char *shim_code(const char *c)
{
	static const char *const allowed[] = { "SECURITY_ERROR", "RUNTIME_ERROR",	"RESULT_INVALID",
					       "SYNTAX_ERROR",	 "PACKAGE_UNAVAILABLE", "DISK_LIMIT" };
	for (size_t i = 0; i < ARRAY_SIZE(allowed); i++) {
		if (c && strcmp(allowed[i], c) == 0)
			return allowed[i];
	}
	return NULL; /* the sandbox does not get to invent codes */
}

static void classify(const struct pc_run *r, json_object *report, struct verdict *v)
{
	json_object *e, *c, *m, *d;
	char msg[256];

	if (report && json_object_object_get_ex(report, "error", &e) && json_object_is_type(e, json_type_object) &&
	    json_object_object_get_ex(e, "code", &c) && shim_code(json_object_get_string(c))) {
		const char *mtxt =
		    json_object_object_get_ex(e, "message", &m) && json_object_is_type(m, json_type_string)
			? json_object_get_string(m)
			: "";
		json_object *dd =
		    json_object_object_get_ex(e, "details", &d) && json_object_is_type(d, json_type_object)
			? json_object_get(d)
			: NULL;
		consider(v, shim_code(json_object_get_string(c)), mtxt, dd);
	}
	if (r->pump.seccomp_syscall[0]) {
		json_object *sd = json_object_new_object();
		json_object_object_add(sd, "syscall", json_object_new_string(r->pump.seccomp_syscall));
		json_object_object_add(sd, "layer", json_object_new_string("seccomp"));
		snprintf(msg, sizeof(msg), "the job called '%s', which the seccomp filter never allows; it was killed",
			 r->pump.seccomp_syscall);
		consider(v, "SECURITY_ERROR", msg, sd);
	}
	if (r->pump.output_limit) {
		snprintf(msg, sizeof(msg), "%s passed its cap; the job was killed at the cap",
			 r->out.truncated ? "stdout" : "stderr");
		consider(v, "OUTPUT_LIMIT", msg, NULL);
	}
	if (r->pump.result_limit)
		consider(v, "RESULT_INVALID", "the result is larger than the policy's max_result_bytes", NULL);
	if (r->pump.timed_out) {
		snprintf(msg, sizeof(msg), "wall-clock limit of %lld ms reached", r->limits[PC_LIM_WALL_MS]);
		consider(v, "TIMEOUT", msg, NULL);
	}
	/* MEMORY_LIMIT, DISK_LIMIT, CPU_LIMIT, PIDS_LIMIT from cgroup and
	 * errno evidence; an interrupted pycell (resources.c). */
	struct pc_outcome oc[6];
	for (int i = 0, n = pc_resources_outcomes(r, report, oc, 6); i < n; i++)
		consider(v, oc[i].code, oc[i].message, oc[i].details);
	if (!v->code && r->have_status && !(WIFEXITED(r->job_status) && WEXITSTATUS(r->job_status) == 0)) {
		if (WIFSIGNALED(r->job_status))
			snprintf(msg, sizeof(msg), "the job was killed by signal %d (%s)", WTERMSIG(r->job_status),
				 strsignal(WTERMSIG(r->job_status)));
		else
			snprintf(msg, sizeof(msg), "the job exited with status %d", WEXITSTATUS(r->job_status));
		consider(v, "RUNTIME_ERROR", msg, NULL);
	}
}

/* output_schema is checked here, on the host, against the value the shim
 * reported: the sandbox never gets to decide that its own result is valid. */
static void check_schema(const struct pc_run *r, json_object *val, struct verdict *v)
{
	_cleanup_json_ json_object *schema = NULL;
	struct pc_schema_error se;
	json_object *d;
	const char *why;
	char msg[600];

	if (v->code || !r->job->output_schema_json)
		return;
	schema = pc_json_parse(r->job->output_schema_json, strlen(r->job->output_schema_json), &why);
	if (!schema || pc_schema_validate(schema, val, &se) == 0)
		return;
	d = json_object_new_object();
	json_object_object_add(d, "path", json_object_new_string(se.path));
	json_object_object_add(d, "reason", json_object_new_string(se.reason));
	snprintf(msg, sizeof(msg), "the result does not match output_schema: %s: %s", se.path, se.reason);
	consider(v, "RESULT_INVALID", msg, d);
}

static json_object *sha_json(const char *code, size_t len)
{
	char hex[PC_SHA256_HEX];

	if (!code)
		return NULL;
	pc_sha256_hex(code, len, hex);
	return json_object_new_string(hex);
}

json_object *pc_result_build(const struct pc_run *r, int *exit_status)
{
	json_object *o = json_object_new_object(), *report = NULL, *val = NULL, *metrics, *trace;
	struct verdict v = { 0 };
	bool rep_out = false, rep_err = false;
	long long t0 = now_ns();

	json_object_object_add(o, "id", r->job->id ? json_object_new_string(r->job->id) : NULL);
	if (r->setup_failed) {
		char buf[PC_ERROR_MSG + 128];
		json_object *d = json_object_new_object();
		json_object_object_add(d, "errno", json_object_new_int(r->setup_error.errnum));
		consider(&v, "INTERNAL_ERROR", pc_error_text(&r->setup_error, buf, sizeof(buf)), d);
	} else {
		report = shim_report(r);
		if (report && !report_utf8_ok(report)) {
			json_object_put(report);
			report = NULL;
			consider(&v, "RESULT_INVALID", "the result is not valid UTF-8 text", NULL);
		}
		classify(r, report, &v);
		if (!v.code && report && json_object_object_get_ex(report, "result", &val))
			val = json_object_get(val);
		check_schema(r, val, &v);
		if (v.code) {
			json_object_put(val);
			val = NULL;
		}
	}
	json_object_object_add(o, "status", json_object_new_string(v.code ? "error" : "ok"));
	json_object_object_add(o, "error", v.code ? error_obj(v.code, v.message, v.details) : NULL);
	json_object_object_add(o, "result", val);
	json_object_object_add(o, "layers", layers_json(r));
	json_object_object_add(o, "stdout", text(&r->out, &rep_out));
	json_object_object_add(o, "stderr", text(&r->err, &rep_err));
	json_object_object_add(o, "stdout_truncated", json_object_new_boolean(r->out.truncated));
	json_object_object_add(o, "stderr_truncated", json_object_new_boolean(r->err.truncated));
	json_object_object_add(o, "stdout_replaced", json_object_new_boolean(rep_out));
	json_object_object_add(o, "stderr_replaced", json_object_new_boolean(rep_err));
	if (r->have_status && WIFEXITED(r->job_status))
		json_object_object_add(o, "exit_code", json_object_new_int(WEXITSTATUS(r->job_status)));
	else
		json_object_object_add(o, "exit_code", NULL);
	json_object_object_add(
	    o, "signal",
	    r->have_status && WIFSIGNALED(r->job_status) ? json_object_new_int(WTERMSIG(r->job_status)) : NULL);
	json_object_object_add(o, "timed_out", json_object_new_boolean(r->pump.timed_out));
	json_object_object_add(o, "limits", limits_json(r->limits));
	metrics = json_object_new_object();
	json_object_object_add(metrics, "wall_ms", ms_json((double)r->wall_ns / 1e6));
	/* cpu_ms and peak_memory_bytes come from the job's cgroup. */
	json_object_object_add(metrics, "cpu_ms", NULL);
	json_object_object_add(metrics, "setup_ms", ms_json((double)r->setup_ns / 1e6));
	/* Cold: the part of setup_ms before the interpreter starts. */
	if (r->sandbox_ns > 0)
		json_object_object_add(metrics, "sandbox_ms", ms_json((double)r->sandbox_ns / 1e6));
	json_object_object_add(metrics, "peak_memory_bytes", NULL);
	json_object_object_add(metrics, "stdout_bytes", json_object_new_int64((int64_t)r->out.total));
	json_object_object_add(metrics, "stderr_bytes", json_object_new_int64((int64_t)r->err.total));
	pc_resources_metrics(r, metrics); /* cpu_ms, peak_memory_bytes, cgroup_version */
	if (r->zygote)			  /* warm mode: forked from a pre-initialised zygote */
		json_object_object_add(metrics, "warm", json_object_new_boolean(1));
	json_object_object_add(o, "metrics", metrics);
	json_object_object_add(o, "code_sha256", sha_json(r->job->code, r->job->code_len));
	json_object_object_add(o, "policy", json_object_new_string(r->policy->name));
	trace = trace_json(r);
	trace_add(trace, "finalize", true, (double)(now_ns() - t0) / 1e6);
	json_object_object_add(o, "trace", trace);
	json_object_object_add(o, "execution_mode", json_object_new_string(pc_job_execution_mode(r->job)));
	json_object_put(report);
	*exit_status = !v.code				       ? PC_EXIT_OK
		       : strcmp(v.code, "INTERNAL_ERROR") == 0 ? PC_EXIT_RUNTIME
							       : PC_EXIT_JOB_ERROR;
	return o;
}

json_object *pc_result_refused(const struct pc_refusal *rf)
{
	json_object *o = json_object_new_object(), *d = json_object_new_object(), *m, *trace;
	long long lim[PC_LIM_COUNT];
	char msg[512];

	/* Same shape as a job that ran, so callers need one parser: limits are
	 * what the policy would have granted, nothing ran, nothing was output. */
	for (int i = 0; i < PC_LIM_COUNT; i++)
		lim[i] = rf->policy->limits[i].def < rf->policy->limits[i].max ? rf->policy->limits[i].def
									       : rf->policy->limits[i].max;
	json_object_object_add(o, "id", rf->id ? json_object_new_string(rf->id) : NULL);
	json_object_object_add(d, "reason", json_object_new_string(rf->reason));
	snprintf(msg, sizeof(msg), "the job was refused: %s", rf->reason);
	json_object_object_add(o, "status", json_object_new_string("error"));
	json_object_object_add(o, "error", error_obj(rf->code, msg, d));
	json_object_object_add(o, "result", NULL);
	json_object_object_add(o, "stdout", json_object_new_string(""));
	json_object_object_add(o, "stderr", json_object_new_string(""));
	json_object_object_add(o, "stdout_truncated", json_object_new_boolean(false));
	json_object_object_add(o, "stderr_truncated", json_object_new_boolean(false));
	json_object_object_add(o, "stdout_replaced", json_object_new_boolean(false));
	json_object_object_add(o, "stderr_replaced", json_object_new_boolean(false));
	json_object_object_add(o, "exit_code", NULL);
	json_object_object_add(o, "signal", NULL);
	json_object_object_add(o, "timed_out", json_object_new_boolean(false));
	json_object_object_add(o, "limits", limits_json(lim));
	m = json_object_new_object();
	json_object_object_add(m, "wall_ms", ms_json(0));
	json_object_object_add(m, "cpu_ms", NULL);
	json_object_object_add(m, "setup_ms", ms_json(0));
	json_object_object_add(m, "peak_memory_bytes", NULL);
	json_object_object_add(m, "stdout_bytes", json_object_new_int64(0));
	json_object_object_add(m, "stderr_bytes", json_object_new_int64(0));
	json_object_object_add(o, "metrics", m);
	json_object_object_add(o, "code_sha256", sha_json(rf->code_text, rf->code_len));
	json_object_object_add(o, "policy", json_object_new_string(rf->policy->name));
	trace = json_object_new_array();
	for (int i = 0; i < rf->n_trace; i++)
		trace_add(trace, rf->trace[i].phase, rf->trace[i].ok, rf->trace[i].ms);
	json_object_object_add(o, "trace", trace);
	json_object_object_add(o, "execution_mode", NULL);
	return o;
}

/* A write into a pipe only waits, and so can only be cut short by a
 * SIGKILL, when the pipe lacks room (pipe(7)): a document larger than the
 * default 64 KiB pipe was seen half-written when pycell was killed while
 * printing it. Growing an empty pipe to hold the whole document makes the
 * one write complete or not start. Best effort: without CAP_SYS_RESOURCE
 * the pipe stops at /proc/sys/fs/pipe-max-size (1 MiB by default), and a
 * larger document can still be cut by a SIGKILL (it then never parses, and
 * the exit status says SIGKILL). */
static void fit_pipe(int fd, size_t len)
{
	struct stat st;
	int cur;

	if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode) || len > INT_MAX)
		return;
	cur = fcntl(fd, F_GETPIPE_SZ);
	if (cur >= 0 && (size_t)cur < len)
		(void)fcntl(fd, F_SETPIPE_SZ, (int)len);
}

int pc_result_print(json_object *res, int fd)
{
	const char *s = json_object_to_json_string_ext(res, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t len = strlen(s);
	_cleanup_free_ char *buf = malloc(len + 2);

	if (!buf)
		return -ENOMEM;
	memcpy(buf, s, len);
	buf[len] = '\n';
	fit_pipe(fd, len + 1);
	/* One write of the whole document: a reader sees all of it or none. */
	return write_all(fd, buf, len + 1);
}
