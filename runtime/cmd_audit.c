/* `pycell audit`: prove each isolation layer from inside a real job.
 *
 * The jobs and the judgement are audit_run.c's: run here (cold), or by a
 * `pycell serve` on --server SOCKET (warm: POST /v1/audit, serve_audit.c),
 * whose answer is the same report document. This file prints the report
 * and compares it with a baseline.
 * Exit 0 only when no check FAILs (and, with --baseline, nothing regressed);
 * 1 otherwise; 2 unusable invocation; 125 a job could not run, or the
 * server could not be reached or could not run the audit. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "cli.h"
#include "jsonutil.h"
#include "result.h"
#include "serve.h"
#include "util.h"

enum { OPT_POLICY = 1, OPT_ROOTFS, OPT_FORMAT, OPT_BASELINE, OPT_SERVER };
enum fmt { FMT_TEXT, FMT_JSON, FMT_MARKDOWN };

static const struct option audit_opts[] = {
	{ "policy", required_argument, NULL, OPT_POLICY },
	{ "rootfs", required_argument, NULL, OPT_ROOTFS },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "baseline", required_argument, NULL, OPT_BASELINE },
	{ "server", required_argument, NULL, OPT_SERVER },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* Where the report comes from: its header and the document's identity. */
struct source {
	const char *server; /* NULL: cold, run here */
	const char *policy, *rootfs;
};

static void print_report(const struct pc_audit *a, enum fmt f, const struct source *src)
{
	char where[PATH_MAX + 32] = "cold";
	int counts[3];

	if (f == FMT_JSON) {
		_cleanup_json_ json_object *o =
		    pc_audit_document(a, src->server ? "warm" : "cold", src->policy, src->rootfs);
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
							   JSON_C_TO_STRING_NOSLASHESCAPE));
		return;
	}
	pc_audit_count(a, counts);
	if (src->server)
		snprintf(where, sizeof(where), "warm, server '%s'", src->server);
	if (f == FMT_MARKDOWN)
		printf(
		    "### pycell audit (%s): policy `%s`, rootfs `%s`\n\n| check | status | evidence |\n|---|---|---|\n",
		    where, src->policy, src->rootfs);
	else
		printf("pycell audit (%s): policy '%s', rootfs '%s'\n", where, src->policy, src->rootfs);
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

		return pc_audit_from_document(o, b);
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

/* Cold: the jobs run here. */
static int audit_cold(struct pc_cli_common *c, struct pc_audit *a, struct source *src)
{
	struct pc_error err = { 0 };
	char why[PC_ERROR_MSG + 64];
	int status;

	if ((status = pc_cli_setup(c)) != 0)
		return status;
	src->policy = c->policy.name;
	src->rootfs = pc_audit_base_name(c->rootfs);
	if (pc_audit_run(&c->policy, &c->paths, c->rootfs, NULL, a, &err) < 0) {
		fprintf(stderr, "pycell audit: %s\n", pc_error_text(&err, why, sizeof(why)));
		return PC_EXIT_RUNTIME;
	}
	return 0;
}

static const char *doc_string(json_object *doc, const char *key, char *buf, size_t len)
{
	json_object *v = NULL;

	snprintf(buf, len, "%s",
		 json_object_object_get_ex(doc, key, &v) && json_object_is_type(v, json_type_string)
		     ? json_object_get_string(v)
		     : "?");
	return buf;
}

/* Warm: the server on src->server runs the jobs (POST /v1/audit). */
static int audit_warm(struct pc_audit *a, struct source *src, char *policy, char *rootfs, size_t len /* each */)
{
	_cleanup_free_ char *resp = NULL;
	_cleanup_json_ json_object *doc = NULL;
	const char *why = NULL;
	char *body;
	int r, http = 0;

	if ((r = pc_serve_request(src->server, "/v1/audit", "", 0, &http, &resp, &body)) < 0) {
		if (r == -EBADMSG)
			fprintf(stderr, "pycell audit: no answer from the server on '%s'\n", src->server);
		else
			fprintf(stderr,
				"pycell audit: cannot reach the server on '%s': %s (is `pycell serve --socket %s` "
				"running?)\n",
				src->server, strerror(-r), src->server);
		return PC_EXIT_RUNTIME;
	}
	doc = pc_json_parse(body, strlen(body), &why);
	if (http != 200 || !doc || pc_audit_from_document(doc, a) <= 0) {
		json_object *e = NULL;
		char msg[PC_ERROR_MSG + 64];

		if (doc && json_object_object_get_ex(doc, "error", &e) && json_object_is_type(e, json_type_object))
			doc_string(e, "message", msg, sizeof(msg));
		else
			snprintf(msg, sizeof(msg), "%s", body);
		fprintf(stderr, "pycell audit: the server on '%s' could not run the audit (HTTP %d): %s\n", src->server,
			http, msg);
		return PC_EXIT_RUNTIME;
	}
	src->policy = doc_string(doc, "policy", policy, len);
	src->rootfs = doc_string(doc, "rootfs", rootfs, len);
	return 0;
}

int pc_cmd_audit(int argc, char **argv)
{
	struct pc_cli_common c = { 0 };
	struct pc_audit a = { 0 }, b = { 0 };
	struct source src = { 0 };
	const char *baseline = NULL;
	char policy[256], rootfs[256]; /* the document's names */
	enum fmt f = FMT_TEXT;
	int opt, status;

	while ((opt = getopt_long(argc, argv, "+h", audit_opts, NULL)) != -1) {
		switch (opt) {
		case OPT_POLICY: c.policy_arg = optarg; break;
		case OPT_ROOTFS: c.rootfs_arg = optarg; break;
		case OPT_BASELINE: baseline = optarg; break;
		case OPT_SERVER: src.server = optarg; break;
		case OPT_FORMAT:
			if (parse_format(optarg, &f) < 0) {
				fprintf(stderr, "pycell audit: --format: '%s' (text, json or markdown)\n", optarg);
				return PC_EXIT_USAGE;
			}
			break;
		case 'h':
			puts("usage: pycell audit [--policy FILE] [--rootfs DIR] [--format text|json|markdown] "
			     "[--baseline FILE]\n"
			     "       pycell audit --server SOCKET [--format text|json|markdown] [--baseline FILE]");
			return 0;
		default: return PC_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pycell audit: unexpected argument '%s'\n", argv[optind]);
		return PC_EXIT_USAGE;
	}
	if (src.server && (c.policy_arg || c.rootfs_arg)) {
		fprintf(stderr, "pycell audit: --server audits the server's own policy and rootfs: drop --policy and "
				"--rootfs\n");
		return PC_EXIT_USAGE;
	}
	if (baseline && load_baseline(baseline, &b) <= 0) {
		fprintf(stderr,
			"pycell audit: baseline '%s': unreadable or holds no checks (write one with --format json)\n",
			baseline);
		return PC_EXIT_USAGE;
	}
	status = src.server ? audit_warm(&a, &src, policy, rootfs, sizeof(policy)) : audit_cold(&c, &a, &src);
	if (status == 0) {
		int counts[3];

		pc_audit_count(&a, counts);
		print_report(&a, f, &src);
		status = counts[PC_AUDIT_FAIL] ? PC_EXIT_JOB_ERROR : PC_EXIT_OK;
		if (baseline && diff_baseline(&a, &b) > 0)
			status = PC_EXIT_JOB_ERROR;
	}
	pc_cli_cleanup(&c);
	return status;
}
