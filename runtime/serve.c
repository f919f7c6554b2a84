/* `pycell serve`: warm mode behind an HTTP/1.1 API on a Unix socket
 * (DESIGN.md section 6, docs/warm.md).
 *
 * Processes:
 *   server   this process: one poll loop, no threads. Owns the listening
 *            socket, the pool of zygotes (zygote.c) and a signalfd. It
 *            never reads a request: each accepted connection goes to a
 *            forked handler, up to --max-inflight at once (then 503 with
 *            Retry-After), so a slow client blocks nobody.
 *   handler  one per connection: reads one bounded request, runs the job
 *            through its zygote with the cold pipeline (pc_run_job with
 *            r.zygote set), writes one response and exits: 0, or
 *            HANDLER_ZYGOTE_BROKEN when the zygote misbehaved. Before it
 *            answers it writes one struct outcome on the report pipe: the
 *            server keeps the /metrics counters from those.
 *   zygote   pycell-init --zygote, pid 1 of its own sandbox.
 * Zygotes are replaced after --jobs-per-zygote jobs, when one dies, and when
 * a handler reports an anomaly. A retired zygote finishes its jobs first. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auditlog.h"
#include "cli.h"
#include "job.h"
#include "result.h"
#include "run.h"
#include "serve.h"
#include "util.h"
#include "zygote.h"

#define MAX_POOL	      8
#define MAX_RETIRED	      32
#define MAX_HANDLERS	      256
#define HEAD_MAX	      8192
#define IO_TIMEOUT_S	      10
#define HANDLER_ZYGOTE_BROKEN 3
#define MAX_CODES	      48 /* distinct (status, error code) pairs counted; more go to "OTHER" */
#define MAX_HTTP	      16 /* distinct HTTP statuses counted */

/* What a handler tells the server about its request, in one write on the
 * report pipe (atomic: far below PIPE_BUF), *before* it answers: a client
 * that got its answer and then scrapes /metrics sees its job counted. */
struct outcome {
	uint32_t magic;
	uint16_t http;	/* the HTTP status answered */
	uint8_t job;	/* a job was run or refused: status, code and seconds are set */
	uint8_t ok;	/* its result's status was "ok" */
	char code[32];	/* its error code, "" when ok */
	double seconds; /* from the request read to the answer */
};
#define OUTCOME_MAGIC 0x70636f31u

/* Latency buckets (seconds) of pycell_job_duration_seconds; +Inf is implicit. */
static const double bucket_le[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };
#define N_BUCKETS (sizeof(bucket_le) / sizeof(bucket_le[0]))

/* Counters kept by the server (the parent) from the handlers' outcomes. */
struct metrics {
	struct {
		bool ok;
		char code[32];
		unsigned long n;
	} jobs[MAX_CODES];
	int n_jobs;
	struct {
		int status;
		unsigned long n;
	} http[MAX_HTTP];
	int n_http;
	unsigned long bucket[N_BUCKETS]; /* not cumulative here; cumulated when written */
	unsigned long count, busy, bad_reports;
	double sum;
};

struct server {
	struct pc_cli_common c;
	const char *socket_path;
	int pool, jobs_per_zygote, max_inflight;
	struct pc_zygote z[MAX_POOL];
	unsigned gen[MAX_POOL]; /* bumped on every replacement */
	struct pc_zygote retired[MAX_RETIRED];
	struct {
		pid_t pid;
		int zi;
		unsigned gen;
	} h[MAX_HANDLERS];
	int inflight, next;
	unsigned long served, replaced;
	int report[2]; /* handlers -> server: struct outcome records (O_NONBLOCK both ends) */
	struct metrics m;
	struct stat policy_st, rootfs_st; /* what the zygotes were made from */
};

/* ------------------------------------------------------------- handler */

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

/* The report pipe's write end, in a handler (-1 in the server). */
static int report_fd = -1;

static void report_outcome(int http, bool job, bool ok, const char *code, double seconds)
{
	struct outcome o = { .magic = OUTCOME_MAGIC, .http = (uint16_t)http, .job = job, .ok = ok, .seconds = seconds };

	if (report_fd < 0)
		return;
	snprintf(o.code, sizeof(o.code), "%s", code ? code : "");
	/* Non-blocking: a full pipe (the server not reading) loses a record
	 * rather than holding a job's answer back. */
	ssize_t w = write(report_fd, &o, sizeof(o));
	(void)w;
	close(report_fd);
	report_fd = -1;
}

static void respond_type(int fd, int status, const char *type, const char *extra_headers, const char *body)
{
	char head[512];
	size_t len = strlen(body);
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "Connection: close\r\n%s\r\n",
			 status, reason(status), type, len + 1, extra_headers ? extra_headers : "");

	report_outcome(status, false, false, NULL, 0); /* no-op when a job's outcome went already */
	if (write_all(fd, head, (size_t)n) == 0 && write_all(fd, body, len) == 0)
		(void)write_all(fd, "\n", 1);
}

static void respond(int fd, int status, const char *extra_headers, const char *body)
{
	respond_type(fd, status, "application/json", extra_headers, body);
}

static void respond_error(int fd, int status, const char *message)
{
	char body[512];

	snprintf(body, sizeof(body), "{\"error\": {\"code\": \"HTTP_%d\", \"message\": \"%s\"}}", status, message);
	respond(fd, status, NULL, body);
}

/* Reads the head (request line + headers) and the body it announces.
 * Returns the HTTP status to answer with on failure, 0 on success. */
static int read_request(int fd, size_t max_body, char *method, char *target, char **body, size_t *body_len)
{
	char head[HEAD_MAX + 1], *end, *cl, *p;
	size_t got = 0, want;
	ssize_t n;

	for (;;) {
		if (got == HEAD_MAX)
			return 413;
		n = read(fd, head + got, HEAD_MAX - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 && errno == EAGAIN ? 408 : 400;
		got += (size_t)n;
		head[got] = '\0';
		if ((end = strstr(head, "\r\n\r\n")))
			break;
	}
	*end = '\0';
	if (sscanf(head, "%15s %255s HTTP/1.%*c", method, target) != 2)
		return 400;
	for (p = head; *p; p++)
		*p = (*p >= 'A' && *p <= 'Z' && p > strchr(head, '\n')) ? (char)(*p - 'A' + 'a') : *p;
	if (strstr(head, "\ntransfer-encoding:"))
		return 501; /* no chunked bodies: send Content-Length */
	cl = strstr(head, "\ncontent-length:");
	if (!cl)
		return strcmp(method, "POST") == 0 ? 411 : 0;
	want = strtoull(cl + 16, NULL, 10);
	if (want > max_body)
		return 413;
	if (!(*body = malloc(want + 1)))
		return 500;
	got -= (size_t)(end + 4 - head);
	memcpy(*body, end + 4, got < want ? got : want);
	while (got < want) {
		n = read(fd, *body + got, want - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 && errno == EAGAIN ? 408 : 400;
		got += (size_t)n;
	}
	(*body)[want] = '\0';
	*body_len = want;
	return 0;
}

/* Audit first (it reads the document), then answer; consumes res. */
static void answer(struct server *s, int fd, int status, json_object *res, const struct pc_job *job, long long t0)
{
	struct pc_error aerr = { 0 };
	json_object *st = NULL, *e = NULL, *c = NULL;
	bool ok;

	if (res && pc_audit_append(&s->c.policy, res, job->code, job->code_len, &aerr) < 0)
		fprintf(stderr, "pycell serve: warning: audit log: %s\n", aerr.msg);
	ok = res && json_object_object_get_ex(res, "status", &st) && strcmp(json_object_get_string(st), "ok") == 0;
	if (res && json_object_object_get_ex(res, "error", &e) && e)
		json_object_object_get_ex(e, "code", &c);
	report_outcome(res ? status : 500, true, ok,
		       ok  ? ""
		       : c ? json_object_get_string(c)
			   : "INTERNAL_ERROR",
		       (double)(now_ns() - t0) / 1e9);
	if (res)
		respond(fd, status, NULL,
			json_object_to_json_string_ext(res, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	else
		respond_error(fd, 500, "cannot build the result");
	json_object_put(res);
	/* The caller may close now: the connection carries nothing more. */
	shutdown(fd, SHUT_WR);
}

static int run_one(struct server *s, struct pc_zygote *z, int fd, const char *buf, size_t len)
{
	struct pc_job job = { 0 };
	struct pc_job_error je = { 0 };
	struct pc_trace pre[1];
	long long t0 = now_ns();
	json_object *res;
	int status = 200, exit_status;

	if (pc_job_parse(buf, len, &s->c.policy, &job, &je) < 0) {
		struct pc_refusal rf = { .id = job.id,
					 .code = je.code,
					 .reason = je.reason,
					 .code_text = job.code,
					 .code_len = job.code_len,
					 .policy = &s->c.policy,
					 .trace = pre,
					 .n_trace = 1 };
		pre[0] = (struct pc_trace){ "validate", false, (double)(now_ns() - t0) / 1e6 };
		res = pc_result_refused(&rf);
		status = 400;
	} else {
		struct pc_run r = { .job = &job,
				    .policy = &s->c.policy,
				    .paths = &s->c.paths,
				    .rootfs = s->c.rootfs,
				    .zygote = z,
				    .defer_release = true };
		r.trace[r.n_trace++] = (struct pc_trace){ "validate", true, (double)(now_ns() - t0) / 1e6 };
		if (pc_run_job(&r) < 0)
			r.setup_failed = true;
		res = pc_result_build(&r, &exit_status);
		if (exit_status == PC_EXIT_RUNTIME)
			status = 500;
		answer(s, fd, status, res, &job, t0);
		/* The job's cgroup goes after the caller has its answer. */
		pc_resources_release(&r.rc);
		pc_run_free(&r);
		res = NULL;
	}
	if (status == 400)
		answer(s, fd, status, res, &job, t0);
	pc_job_free(&job);
	return z->broken ? HANDLER_ZYGOTE_BROKEN : 0;
}

/* The server's state when this handler was forked: enough for probes
 * and for tests that watch zygotes being replaced. */
static void health(const struct server *s, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len,
				    "{\"status\": \"ok\", \"pool\": %d, \"policy\": \"%s\", "
				    "\"served\": %lu, \"replaced\": %lu, \"zygotes\": [",
				    s->pool, s->c.policy.name, s->served, s->replaced);

	for (int i = 0; i < s->pool && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%d", i ? ", " : "", (int)s->z[i].sb.pid);
	if (n < len)
		snprintf(buf + n, len - n, "]}");
}

/* A label value: error codes are [A-Z0-9_]; anything else becomes '_'. */
static const char *label(const char *v, char *buf, size_t len)
{
	size_t i;

	for (i = 0; v[i] && i + 1 < len; i++)
		buf[i] =
		    (char)((v[i] >= 'A' && v[i] <= 'Z') || (v[i] >= '0' && v[i] <= '9') || v[i] == '_' ? v[i] : '_');
	buf[i] = '\0';
	return buf;
}

/* Prometheus text exposition (version 0.0.4) of the server's state when
 * this handler was forked (the server drains the report pipe first).
 * Returns a malloc'd string or NULL. */
static char *metrics_text(const struct server *s)
{
	const struct metrics *m = &s->m;
	char *buf = NULL, lb[40];
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);
	unsigned long cum = 0;
	int i, ready = 0, retiring = 0;

	if (!f)
		return NULL;
	for (i = 0; i < s->pool; i++)
		ready += s->z[i].sb.pid > 0 && !s->z[i].broken;
	for (i = 0; i < MAX_RETIRED; i++)
		retiring += s->retired[i].sb.pid > 0;
	fputs("# HELP pycell_jobs_total Jobs answered (run or refused), by result status and error code.\n"
	      "# TYPE pycell_jobs_total counter\n",
	      f);
	if (!m->n_jobs)
		fputs("pycell_jobs_total{status=\"ok\",code=\"\"} 0\n", f);
	for (i = 0; i < m->n_jobs; i++)
		fprintf(f, "pycell_jobs_total{status=\"%s\",code=\"%s\"} %lu\n", m->jobs[i].ok ? "ok" : "error",
			label(m->jobs[i].code, lb, sizeof(lb)), m->jobs[i].n);
	fputs("# HELP pycell_job_duration_seconds Time from a job's request read to its answer.\n"
	      "# TYPE pycell_job_duration_seconds histogram\n",
	      f);
	for (i = 0; i < (int)N_BUCKETS; i++) {
		cum += m->bucket[i];
		fprintf(f, "pycell_job_duration_seconds_bucket{le=\"%g\"} %lu\n", bucket_le[i], cum);
	}
	fprintf(f, "pycell_job_duration_seconds_bucket{le=\"+Inf\"} %lu\n", m->count);
	fprintf(f, "pycell_job_duration_seconds_sum %.6f\npycell_job_duration_seconds_count %lu\n", m->sum, m->count);
	fputs("# HELP pycell_http_responses_total Responses by HTTP status (503s of a full server included).\n"
	      "# TYPE pycell_http_responses_total counter\n",
	      f);
	for (i = 0; i < m->n_http; i++)
		fprintf(f, "pycell_http_responses_total{code=\"%d\"} %lu\n", m->http[i].status,
			m->http[i].n + (m->http[i].status == 503 ? m->busy : 0));
	for (i = 0; i < m->n_http && m->http[i].status != 503; i++)
		;
	if (i == m->n_http && m->busy)
		fprintf(f, "pycell_http_responses_total{code=\"503\"} %lu\n", m->busy);
	fprintf(f,
		"# HELP pycell_busy_rejections_total Connections answered 503 because --max-inflight were running.\n"
		"# TYPE pycell_busy_rejections_total counter\npycell_busy_rejections_total %lu\n"
		"# HELP pycell_connections_total Connections handed to a handler.\n"
		"# TYPE pycell_connections_total counter\npycell_connections_total %lu\n"
		"# HELP pycell_zygote_replacements_total Zygotes replaced (job count, anomaly, policy change).\n"
		"# TYPE pycell_zygote_replacements_total counter\npycell_zygote_replacements_total %lu\n"
		"# HELP pycell_pool_size Zygotes the server keeps (--pool).\n"
		"# TYPE pycell_pool_size gauge\npycell_pool_size %d\n"
		"# HELP pycell_zygotes_ready Pool zygotes alive and not marked for replacement.\n"
		"# TYPE pycell_zygotes_ready gauge\npycell_zygotes_ready %d\n"
		"# HELP pycell_zygotes_retiring Replaced zygotes still finishing their jobs.\n"
		"# TYPE pycell_zygotes_retiring gauge\npycell_zygotes_retiring %d\n"
		"# HELP pycell_inflight Requests being handled (jobs and probes, this scrape excluded).\n"
		"# TYPE pycell_inflight gauge\npycell_inflight %d\n"
		"# HELP pycell_inflight_max --max-inflight: beyond it a request is answered 503 (there is no queue).\n"
		"# TYPE pycell_inflight_max gauge\npycell_inflight_max %d\n"
		"# HELP pycell_bad_reports_total Handler reports that were malformed (none expected).\n"
		"# TYPE pycell_bad_reports_total counter\npycell_bad_reports_total %lu\n",
		m->busy, s->served, s->replaced, s->pool, ready, retiring, s->inflight, s->max_inflight,
		m->bad_reports);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static int __attribute__((noreturn)) handle(struct server *s, struct pc_zygote *z, int fd)
{
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
	char method[16], target[256], body_hint[512];
	_cleanup_free_ char *body = NULL;
	size_t len = 0;
	int st, code = 0;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	st = read_request(fd, s->c.policy.max_job_bytes + 4096, method, target, &body, &len);
	if (st) {
		respond_error(fd, st,
			      st == 413	  ? "request too large"
			      : st == 411 ? "Content-Length required"
			      : st == 501 ? "chunked bodies are not supported: send Content-Length"
			      : st == 408 ? "request not received in time"
					  : "malformed request");
	} else if (strcmp(target, "/health") == 0 || strcmp(target, "/v1/health") == 0) {
		health(s, body_hint, sizeof(body_hint));
		if (strcmp(method, "GET") == 0)
			respond(fd, 200, NULL, body_hint);
		else
			respond_error(fd, 405, "use GET");
	} else if (strcmp(target, "/metrics") == 0) {
		_cleanup_free_ char *text = strcmp(method, "GET") == 0 ? metrics_text(s) : NULL;
		if (strcmp(method, "GET") != 0)
			respond_error(fd, 405, "use GET");
		else if (!text)
			respond_error(fd, 500, "cannot build the metrics");
		else
			respond_type(fd, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, text);
	} else if (strcmp(target, "/run") == 0 || strcmp(target, "/v1/jobs") == 0) {
		if (strcmp(method, "POST") == 0)
			code = run_one(s, z, fd, body ? body : "", len);
		else
			respond_error(fd, 405, "use POST with a job JSON body");
	} else if (strcmp(target, "/v1/audit") == 0) { /* serve_audit.c */
		int http = 500;
		_cleanup_free_ char *doc = pc_serve_audit(&s->c, z, method, len, &http);
		respond(fd, doc ? http : 500, NULL, doc ? doc : "{\"error\": {\"code\": \"HTTP_500\"}}");
		code = z->broken ? HANDLER_ZYGOTE_BROKEN : 0;
	} else {
		respond_error(fd, 404, "no such endpoint: POST /run, POST /v1/audit, GET /health, GET /metrics");
	}
	shutdown(fd, SHUT_WR);
	_exit(code);
}

/* -------------------------------------------------------------- server */

static int start_zygote(struct server *s, int i)
{
	struct pc_error err = { 0 };

	pc_zygote_init(&s->z[i]);
	s->gen[i]++;
	if (pc_zygote_start(&s->z[i], &s->c.policy, &s->c.paths, s->c.rootfs, &err) < 0) {
		fprintf(stderr, "pycell serve: cannot start a zygote: %s\n", err.msg);
		s->z[i].broken = true;
		return -1;
	}
	return 0;
}

/* Retired zygotes finish their jobs, then exit; reaped in reap(). */
static void replace_zygote(struct server *s, int i)
{
	int k;

	for (k = 0; k < MAX_RETIRED && s->retired[k].sb.pidfd >= 0; k++)
		;
	pc_zygote_retire(&s->z[i]);
	if (k < MAX_RETIRED && s->z[i].sb.pid > 0)
		s->retired[k] = s->z[i];
	else
		pc_zygote_stop(&s->z[i]);
	s->replaced++;
	start_zygote(s, i);
}

static void count(struct server *s, const struct outcome *o)
{
	struct metrics *m = &s->m;
	int i;

	for (i = 0; i < m->n_http && m->http[i].status != o->http; i++)
		;
	if (i < MAX_HTTP) {
		m->http[i].status = o->http;
		m->http[i].n++;
		m->n_http += i == m->n_http;
	}
	if (!o->job)
		return;
	bool ok = o->ok;
	const char *code = o->code;
again:
	for (i = 0; i < m->n_jobs && (m->jobs[i].ok != ok || strcmp(m->jobs[i].code, code)); i++)
		;
	if (i == m->n_jobs && i == MAX_CODES - 1 && strcmp(code, "OTHER")) {
		ok = false, code = "OTHER"; /* the last slot counts the rest */
		goto again;
	}
	if (i == m->n_jobs) {
		m->jobs[i].ok = ok;
		snprintf(m->jobs[i].code, sizeof(m->jobs[i].code), "%s", code);
		m->n_jobs++;
	}
	m->jobs[i].n++;
	for (i = 0; i < (int)N_BUCKETS && o->seconds > bucket_le[i]; i++)
		;
	if (i < (int)N_BUCKETS)
		m->bucket[i]++;
	m->count++;
	m->sum += o->seconds;
}

/* Every record the handlers wrote so far (the pipe is non-blocking). */
static void drain_reports(struct server *s)
{
	struct outcome o;
	ssize_t n;

	while ((n = read(s->report[0], &o, sizeof(o))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		if (n != (ssize_t)sizeof(o) || o.magic != OUTCOME_MAGIC) {
			s->m.bad_reports++;
			continue;
		}
		o.code[sizeof(o.code) - 1] = '\0';
		count(s, &o);
	}
}

static void reap(struct server *s)
{
	int st, i;
	pid_t p;

	while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
		for (i = 0; i < MAX_HANDLERS; i++) {
			if (s->h[i].pid != p)
				continue;
			s->h[i].pid = 0;
			s->inflight--;
			if (WIFEXITED(st) && WEXITSTATUS(st) == HANDLER_ZYGOTE_BROKEN &&
			    s->gen[s->h[i].zi] == s->h[i].gen)
				s->z[s->h[i].zi].broken = true;
		}
		for (i = 0; i < MAX_RETIRED; i++) {
			if (s->retired[i].sb.pid == p) {
				s->retired[i].sb.pid = -1;
				pc_zygote_stop(&s->retired[i]);
				pc_zygote_init(&s->retired[i]);
			}
		}
		for (i = 0; i < s->pool; i++) {
			if (s->z[i].sb.pid == p) { /* died on its own: an anomaly */
				s->z[i].sb.pid = -1;
				s->z[i].broken = true;
			}
		}
	}
	for (i = 0; i < s->pool; i++) {
		if (s->z[i].broken)
			replace_zygote(s, i);
	}
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static void note_sources(struct server *s)
{
	memset(&s->policy_st, 0, sizeof(s->policy_st));
	memset(&s->rootfs_st, 0, sizeof(s->rootfs_st));
	if (s->c.policy.path[0])
		stat(s->c.policy.path, &s->policy_st);
	stat(s->c.rootfs, &s->rootfs_st);
}

/* The policy file or the rootfs directory changed since the zygotes were
 * made: reload the policy and replace every zygote (in-flight jobs finish
 * on the old ones). One stat each per job. A policy that no longer loads
 * keeps the old one in force, and says so. */
static void check_sources(struct server *s)
{
	struct pc_cli_common fresh = { .policy_arg = s->c.policy_arg, .rootfs_arg = s->c.rootfs_arg };
	struct stat p = { 0 }, r = { 0 };
	int i;

	if (s->c.policy.path[0])
		stat(s->c.policy.path, &p);
	stat(s->c.rootfs, &r);
	if (same_file(&p, &s->policy_st) && same_file(&r, &s->rootfs_st))
		return;
	if (pc_cli_setup(&fresh) != 0) {
		fprintf(stderr, "pycell serve: the policy or rootfs changed but does not load; keeping the old one\n");
		pc_cli_cleanup(&fresh);
		note_sources(s);
		return;
	}
	pc_cli_cleanup(&s->c);
	s->c = fresh;
	note_sources(s);
	fprintf(stderr, "pycell serve: policy or rootfs changed: replacing %d zygote(s)\n", s->pool);
	for (i = 0; i < s->pool; i++)
		replace_zygote(s, i);
}

/* An answer given at accept, without reading the request (503): whatever
 * request bytes have arrived are read and dropped before the caller closes,
 * because closing a Unix socket with unread data resets the peer, which
 * then loses the answer (ECONNRESET) instead of reading it. Never blocks. */
static void respond_unread(int conn, int status, const char *extra_headers, const char *body)
{
	char sink[4096];
	int i;

	respond(conn, status, extra_headers, body);
	shutdown(conn, SHUT_WR);
	for (i = 0; i < 64 && recv(conn, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
		;
}

static void dispatch(struct server *s, int conn, int lfd, int sfd)
{
	int zi, k;
	pid_t pid;

	check_sources(s);
	drain_reports(s); /* the handler's snapshot (/metrics) includes every answered job */
	zi = s->next++ % s->pool;
	if (s->inflight >= s->max_inflight || s->z[zi].broken) {
		s->m.busy++;
		respond_unread(conn, 503, "Retry-After: 1\r\n",
			       "{\"error\": {\"code\": \"BUSY\", \"message\": \"all slots busy\"}}");
		return;
	}
	for (k = 0; k < MAX_HANDLERS && s->h[k].pid; k++)
		;
	pid = fork();
	if (pid == 0) {
		close(lfd), close(sfd), close(s->report[0]);
		report_fd = s->report[1];
		sigprocmask(SIG_SETMASK, &(sigset_t){ { 0 } }, NULL);
		handle(s, &s->z[zi], conn);
	}
	if (pid < 0) {
		s->m.busy++;
		respond_unread(conn, 503, "Retry-After: 1\r\n",
			       "{\"error\": {\"code\": \"BUSY\", \"message\": \"cannot fork a handler\"}}");
		return;
	}
	s->h[k].pid = pid, s->h[k].zi = zi, s->h[k].gen = s->gen[zi];
	s->inflight++;
	s->served++;
	if (s->jobs_per_zygote > 0 && ++s->z[zi].jobs >= s->jobs_per_zygote)
		replace_zygote(s, zi);
}

static int listen_on(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(a.sun_path)) {
		fprintf(stderr, "pycell serve: socket path '%s' is too long\n", path);
		return -1;
	}
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (lstat(path, &st) == 0) {
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool live = S_ISSOCK(st.st_mode) && connect(probe, (struct sockaddr *)&a, sizeof(a)) == 0;

		close(probe);
		if (!S_ISSOCK(st.st_mode) || live) {
			fprintf(stderr, "pycell serve: '%s' exists%s; remove it or choose another path\n", path,
				live ? " and a server answers on it" : " and is not a socket");
			return -1;
		}
		unlink(path); /* a stale socket of a server that died */
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* The socket's permissions decide who may submit jobs: owner only. */
	mode_t old = umask(0177);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 128) < 0) {
		umask(old);
		fprintf(stderr, "pycell serve: cannot listen on '%s': %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	umask(old);
	return fd;
}

static int serve_loop(struct server *s, int lfd, int sfd)
{
	bool stopping = false;

	while (!stopping || s->inflight > 0) {
		struct pollfd p[3] = { { .fd = stopping ? -1 : lfd, .events = POLLIN },
				       { .fd = sfd, .events = POLLIN },
				       { .fd = s->report[0], .events = POLLIN } };

		if (poll(p, 3, 1000) < 0 && errno != EINTR)
			return -1;
		if (p[2].revents & POLLIN)
			drain_reports(s);
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo != SIGCHLD && !stopping) {
				stopping = true; /* finish in-flight jobs, accept no more */
				close(lfd);
				unlink(s->socket_path);
			}
		}
		reap(s);
		if (!stopping && (p[0].revents & POLLIN)) {
			int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (conn >= 0) {
				dispatch(s, conn, lfd, sfd);
				close(conn);
			}
		}
	}
	return 0;
}

static const struct option serve_opts[] = {
	{ "socket", required_argument, NULL, 's' },
	{ "policy", required_argument, NULL, 'p' },
	{ "rootfs", required_argument, NULL, 'r' },
	{ "pool", required_argument, NULL, 'n' },
	{ "jobs-per-zygote", required_argument, NULL, 'j' },
	{ "max-inflight", required_argument, NULL, 'm' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

#define SERVE_USAGE                                                                                      \
	"usage: pycell serve --socket PATH [--policy FILE] [--rootfs DIR] [--pool N (1)]\n"              \
	"                    [--jobs-per-zygote K (1000)] [--max-inflight M (32)]\n"                     \
	"  POST /run (or /v1/jobs) with a job JSON body -> the result JSON; GET /health (/v1/health);\n" \
	"  GET /metrics (Prometheus text); POST /v1/audit (the isolation audit, run warm)\n"

int pc_cmd_serve(int argc, char **argv)
{
	static struct server s; /* large; the entry point owns it */
	sigset_t mask;
	int opt, lfd, sfd, i, rc;

	s = (struct server){ .pool = 1, .jobs_per_zygote = 1000, .max_inflight = 32 };
	while ((opt = getopt_long(argc, argv, "h", serve_opts, NULL)) != -1) {
		switch (opt) {
		case 's': s.socket_path = optarg; break;
		case 'p': s.c.policy_arg = optarg; break;
		case 'r': s.c.rootfs_arg = optarg; break;
		case 'n': s.pool = atoi(optarg); break;
		case 'j': s.jobs_per_zygote = atoi(optarg); break;
		case 'm': s.max_inflight = atoi(optarg); break;
		case 'h': fputs(SERVE_USAGE, stdout); return 0;
		default: fputs(SERVE_USAGE, stderr); return PC_EXIT_USAGE;
		}
	}
	if (!s.socket_path || optind != argc || s.pool < 1 || s.pool > MAX_POOL || s.max_inflight < 1 ||
	    s.max_inflight > MAX_HANDLERS || s.jobs_per_zygote < 0) {
		fprintf(stderr, "pycell serve: --socket is required; --pool 1..%d, --max-inflight 1..%d\n%s", MAX_POOL,
			MAX_HANDLERS, SERVE_USAGE);
		return PC_EXIT_USAGE;
	}
	if ((rc = pc_cli_setup(&s.c)) != 0)
		return rc;
	for (i = 0; i < MAX_RETIRED; i++)
		pc_zygote_init(&s.retired[i]);
	note_sources(&s);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM), sigaddset(&mask, SIGINT), sigaddset(&mask, SIGHUP), sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (pipe2(s.report, O_CLOEXEC | O_NONBLOCK) < 0) {
		fprintf(stderr, "pycell serve: pipe: %s\n", strerror(errno));
		pc_cli_cleanup(&s.c);
		return PC_EXIT_RUNTIME;
	}
	for (i = 0; i < s.pool; i++) {
		if (start_zygote(&s, i) < 0) {
			while (i >= 0)
				pc_zygote_stop(&s.z[i--]);
			pc_cli_cleanup(&s.c);
			return PC_EXIT_RUNTIME;
		}
	}
	if (sfd < 0 || (lfd = listen_on(s.socket_path)) < 0) {
		for (i = 0; i < s.pool; i++)
			pc_zygote_stop(&s.z[i]);
		pc_cli_cleanup(&s.c);
		return PC_EXIT_RUNTIME;
	}
	fprintf(stderr, "pycell serve: listening on '%s' (pool %d, policy '%s')\n", s.socket_path, s.pool,
		s.c.policy.name);
	rc = serve_loop(&s, lfd, sfd);
	for (i = 0; i < s.pool; i++)
		pc_zygote_stop(&s.z[i]);
	for (i = 0; i < MAX_RETIRED; i++)
		pc_zygote_stop(&s.retired[i]);
	close(sfd);
	close(s.report[0]), close(s.report[1]);
	fprintf(stderr, "pycell serve: stopped after %lu jobs (%lu zygote replacements)\n", s.served, s.replaced);
	pc_cli_cleanup(&s.c);
	return rc < 0 ? PC_EXIT_RUNTIME : 0;
}
