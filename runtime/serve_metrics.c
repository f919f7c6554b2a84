/* `pycell serve`'s counters and the documents of GET /metrics (Prometheus
 * text format 0.0.4) and GET /health. The server counts each answer when it
 * hands it to libmicrohttpd, so a client that got its answer and then
 * scrapes sees it counted; a scrape does not count itself. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve_internal.h"

static const double bucket_le[N_BUCKETS] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };

static void count_http(struct metrics *m, int status)
{
	int i;

	for (i = 0; i < m->n_http && m->http[i].status != status; i++)
		;
	if (i < MAX_HTTP) {
		m->http[i].status = status;
		m->http[i].n++;
		m->n_http += i == m->n_http;
	}
}

void pc_metrics_count(struct metrics *m, const struct outcome *o)
{
	bool ok = o->ok;
	const char *code = o->code;
	int i;

	count_http(m, o->http);
	if (!o->job)
		return;
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
	for (i = 0; i < N_BUCKETS && o->seconds > bucket_le[i]; i++)
		;
	if (i < N_BUCKETS)
		m->bucket[i]++;
	m->count++;
	m->sum += o->seconds;
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

static void jobs_and_latency(FILE *f, const struct metrics *m)
{
	unsigned long cum = 0;
	char lb[40];
	int i;

	fputs("# HELP pycell_jobs_total Jobs answered (run or refused), by result status and error code.\n"
	      "# TYPE pycell_jobs_total counter\n",
	      f);
	if (!m->n_jobs)
		fputs("pycell_jobs_total{status=\"ok\",code=\"\"} 0\n", f);
	for (i = 0; i < m->n_jobs; i++)
		fprintf(f, "pycell_jobs_total{status=\"%s\",code=\"%s\"} %lu\n", m->jobs[i].ok ? "ok" : "error",
			label(m->jobs[i].code, lb, sizeof(lb)), m->jobs[i].n);
	fputs("# HELP pycell_job_duration_seconds Time from a job's request read to its answer (queue wait "
	      "included).\n# TYPE pycell_job_duration_seconds histogram\n",
	      f);
	for (i = 0; i < N_BUCKETS; i++) {
		cum += m->bucket[i];
		fprintf(f, "pycell_job_duration_seconds_bucket{le=\"%g\"} %lu\n", bucket_le[i], cum);
	}
	fprintf(f, "pycell_job_duration_seconds_bucket{le=\"+Inf\"} %lu\n", m->count);
	fprintf(f, "pycell_job_duration_seconds_sum %.6f\npycell_job_duration_seconds_count %lu\n", m->sum, m->count);
	fputs("# HELP pycell_http_responses_total Responses by HTTP status.\n"
	      "# TYPE pycell_http_responses_total counter\n",
	      f);
	for (i = 0; i < m->n_http; i++)
		fprintf(f, "pycell_http_responses_total{code=\"%d\"} %lu\n", m->http[i].status, m->http[i].n);
}

/* Returns a malloc'd string or NULL. */
char *pc_metrics_text(const struct server *s)
{
	const struct metrics *m = &s->m;
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);
	int i, ready = 0, retiring = 0;

	if (!f)
		return NULL;
	for (i = 0; i < s->pool; i++)
		ready += s->z[i].sb.pid > 0 && !s->z[i].broken;
	for (i = 0; i < MAX_RETIRED; i++)
		retiring += s->retired[i].sb.pid > 0;
	jobs_and_latency(f, m);
	fprintf(f,
		"# HELP pycell_busy_rejections_total Requests answered 503 (queue full, shutting down, no zygote).\n"
		"# TYPE pycell_busy_rejections_total counter\npycell_busy_rejections_total %lu\n"
		"# HELP pycell_queue_dropped_total Queued jobs dropped unrun because their client hung up.\n"
		"# TYPE pycell_queue_dropped_total counter\npycell_queue_dropped_total %lu\n"
		"# HELP pycell_request_timeouts_total Requests not received in full within --request-timeout.\n"
		"# TYPE pycell_request_timeouts_total counter\npycell_request_timeouts_total %lu\n"
		"# HELP pycell_connections_total Requests answered, 503s excluded (one per connection).\n"
		"# TYPE pycell_connections_total counter\npycell_connections_total %lu\n"
		"# HELP pycell_zygote_replacements_total Zygotes replaced (job count, anomaly, policy change).\n"
		"# TYPE pycell_zygote_replacements_total counter\npycell_zygote_replacements_total %lu\n"
		"# HELP pycell_pool_size Zygotes the server keeps (--pool).\n"
		"# TYPE pycell_pool_size gauge\npycell_pool_size %d\n"
		"# HELP pycell_zygotes_ready Pool zygotes alive and not marked for replacement.\n"
		"# TYPE pycell_zygotes_ready gauge\npycell_zygotes_ready %d\n"
		"# HELP pycell_zygotes_retiring Replaced zygotes still finishing their jobs.\n"
		"# TYPE pycell_zygotes_retiring gauge\npycell_zygotes_retiring %d\n"
		"# HELP pycell_inflight Jobs whose handler runs.\n"
		"# TYPE pycell_inflight gauge\npycell_inflight %d\n"
		"# HELP pycell_inflight_max --max-inflight: jobs run at once.\n"
		"# TYPE pycell_inflight_max gauge\npycell_inflight_max %d\n"
		"# HELP pycell_queue_depth Jobs waiting for a slot.\n"
		"# TYPE pycell_queue_depth gauge\npycell_queue_depth %d\n"
		"# HELP pycell_queue_max --queue: jobs that may wait; beyond, 503.\n"
		"# TYPE pycell_queue_max gauge\npycell_queue_max %d\n"
		"# HELP pycell_bad_reports_total Handlers that ended without a well-formed answer (none expected).\n"
		"# TYPE pycell_bad_reports_total counter\npycell_bad_reports_total %lu\n",
		m->busy, m->dropped, m->timeouts, s->served, s->replaced, s->pool, ready, retiring, s->inflight,
		s->max_inflight, s->qlen, s->max_queue, m->bad_reports);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

char *pc_health_json(const struct server *s)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	if (!f)
		return NULL;
	fprintf(f,
		"{\"status\": \"%s\", \"pool\": %d, \"policy\": \"%s\", \"served\": %lu, \"replaced\": %lu, "
		"\"inflight\": %d, \"queued\": %d, \"zygotes\": [",
		s->stopping ? "stopping" : "ok", s->pool, s->c.policy.name, s->served, s->replaced, s->inflight,
		s->qlen);
	for (int i = 0; i < s->pool; i++)
		fprintf(f, "%s%d", i ? ", " : "", (int)s->z[i].sb.pid);
	fputs("], \"handlers\": [", f);
	for (int i = 0, n = 0; i < MAX_HANDLERS; i++) {
		if (s->w[i].pid > 0)
			fprintf(f, "%s%d", n++ ? ", " : "", (int)s->w[i].pid);
	}
	fputs("]}\n", f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
