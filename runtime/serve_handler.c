/* A `pycell serve` handler (serve_worker.c forks it): a loop over the
 * requests on its channel. Each job runs through its zygote with the cold
 * pipeline (pc_run_job with r.zygote set); the answer goes on the job's
 * result pipe as one struct outcome and the document, then the pipe is
 * closed: the server answers from that while the handler removes the
 * job's cgroup, then says on the channel that it is free. It never touches
 * the client's socket. Each job leaves nothing behind in it (no descriptor,
 * no memory: tests/integration/test_warm_http.py counts them). */
#define _GNU_SOURCE
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include "auditlog.h"
#include "job.h"
#include "result.h"
#include "run.h"
#include "serve.h"
#include "serve_internal.h"
#include "util.h"

/* The outcome, the body and a newline, in one writev where it fits the pipe. */
static void send_answer(int wfd, struct outcome *o, const char *body)
{
	size_t len = strlen(body);
	struct iovec v[3] = { { o, sizeof(*o) }, { (void *)body, len }, { "\n", 1 } };

	o->magic = OUTCOME_MAGIC;
	o->len = (uint32_t)(len + 1);
	(void)writev_all(wfd, v, 3); /* a failure: the server is gone */
}

/* Audit first (it reads the document), then answer; consumes res. */
static void answer_job(struct server *s, int wfd, int status, json_object *res, const struct pc_job *job)
{
	struct outcome o = { .http = (uint16_t)(res ? status : 500), .job = 1 };
	struct pc_error aerr = { 0 };
	json_object *st = NULL, *e = NULL, *c = NULL;

	if (res && pc_audit_append(&s->c.policy, res, job->code, job->code_len, &aerr) < 0)
		fprintf(stderr, "pycell serve: warning: audit log: %s\n", aerr.msg);
	o.ok = res && json_object_object_get_ex(res, "status", &st) && json_object_is_type(st, json_type_string) &&
	       strcmp(json_object_get_string(st), "ok") == 0;
	if (res && json_object_object_get_ex(res, "error", &e) && e)
		json_object_object_get_ex(e, "code", &c);
	snprintf(o.code, sizeof(o.code), "%s",
		 o.ok						 ? ""
		 : c && json_object_is_type(c, json_type_string) ? json_object_get_string(c)
								 : "INTERNAL_ERROR");
	send_answer(wfd, &o,
		    res ? json_object_to_json_string_ext(res, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
			: "{\"error\": {\"code\": \"HTTP_500\", \"message\": \"cannot build the result\"}}");
	json_object_put(res);
	close(wfd); /* the server answers now */
}

/* On cgroup v1 the handler's job group outlives its job: the next job's
 * (cgroup.h, pc_cgroup_park). Removed as the handler exits. */
static struct pc_cgroup parked;

static void run_job(struct server *s, struct pc_zygote *z, int wfd, const char *buf, size_t len)
{
	struct pc_job job = { 0 };
	struct pc_job_error je = { 0 };
	struct pc_trace pre[1];
	long long t0 = now_ns();
	int exit_status;

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
		answer_job(s, wfd, 400, pc_result_refused(&rf), &job);
	} else {
		struct pc_run r = { .job = &job,
				    .policy = &s->c.policy,
				    .paths = &s->c.paths,
				    .rootfs = s->c.rootfs,
				    .zygote = z,
				    .defer_release = true,
				    .cg_parked = &parked,
				    .signals_ignored = true };
		json_object *res;

		r.trace[r.n_trace++] = (struct pc_trace){ "validate", true, (double)(now_ns() - t0) / 1e6 };
		if (pc_run_job(&r) < 0)
			r.setup_failed = true;
		res = pc_result_build(&r, &exit_status);
		answer_job(s, wfd, exit_status == PC_EXIT_RUNTIME ? 500 : 200, res, &job);
		/* The job's cgroup goes after the caller has its answer. */
		pc_resources_release(&r.rc);
		pc_run_free(&r);
	}
	pc_job_free(&job);
}

/* The next request: its head, the result pipe and the body (NUL-ended).
 * 1, or 0 at EOF or on anything malformed (the server is gone or broken). */
static int next_work(int ch, struct work *q, int *wfd, char **body)
{
	ssize_t n = recv_fd(ch, q, sizeof(*q), MSG_WAITALL, wfd);

	*body = NULL;
	if (n != (ssize_t)sizeof(*q) || *wfd < 0 || q->magic != WORK_MAGIC || q->zi >= MAX_POOL ||
	    !(*body = malloc((size_t)q->len + 1)))
		goto bad;
	q->method[sizeof(q->method) - 1] = '\0';
	for (size_t off = 0; off < q->len; off += (size_t)n) {
		do
			n = read(ch, *body + off, q->len - off);
		while (n < 0 && errno == EINTR);
		if (n <= 0)
			goto bad;
	}
	(*body)[q->len] = '\0';
	return 1;
bad:
	if (*wfd >= 0)
		close(*wfd);
	free(*body);
	return 0;
}

static void do_audit(struct server *s, struct pc_zygote *z, const struct work *q, int wfd)
{
	struct outcome o = { 0 };
	int http = 500;
	_cleanup_free_ char *doc = pc_serve_audit(&s->c, z, q->method, q->len, &http);

	o.http = (uint16_t)(doc ? http : 500);
	send_answer(wfd, &o, doc ? doc : "{\"error\": {\"code\": \"HTTP_500\"}}");
	close(wfd);
}

void pc_handler_main(struct server *s, int ch)
{
	struct work q;
	char *body, done;
	int wfd;

	while (next_work(ch, &q, &wfd, &body)) {
		struct pc_zygote *z = &s->z[q.zi];

		if (q.route == R_AUDIT)
			do_audit(s, z, &q, wfd);
		else
			run_job(s, z, wfd, body, q.len);
		free(body);
		done = z->broken ? WORK_DONE_BAD : q.route == R_AUDIT ? WORK_DONE_END : WORK_DONE;
		if (write(ch, &done, 1) != 1)
			break;
	}
	pc_cgroup_destroy(&parked);
#if defined(__SANITIZE_ADDRESS__)
	__lsan_do_leak_check(); /* _exit skips it: every job's memory must be gone by now */
#endif
	_exit(0);
}
