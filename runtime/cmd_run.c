/* `pycell run`: one JSON job in, one JSON result out (DESIGN.md section 3).
 *
 * Exit status: 0 the job succeeded; 1 it ended in an error (result
 * printed); 2 the invocation was unusable or the job was refused (a
 * refused job still gets its result document); 125 the runtime failed
 * (result printed with INTERNAL_ERROR). */
#define _GNU_SOURCE
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditlog.h"
#include "cli.h"
#include "job.h"
#include "result.h"
#include "run.h"
#include "util.h"

enum { OPT_POLICY = 1, OPT_ROOTFS };

static const struct option run_opts[] = {
	{ "policy", required_argument, NULL, OPT_POLICY },
	{ "rootfs", required_argument, NULL, OPT_ROOTFS },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* Audit first (it reads the document), then print. An audit log that
 * cannot be written is reported on stderr but does not change the job's
 * outcome: the caller still gets the result it is owed. */
static int finish(const struct pc_policy *pol, json_object *res, const char *code, size_t code_len, int status)
{
	struct pc_error err = { 0 };
	char buf[PC_ERROR_MSG + 64];

	if (res && pc_audit_append(pol, res, code, code_len, &err) < 0)
		fprintf(stderr, "pycell: warning: %s\n", pc_error_text(&err, buf, sizeof(buf)));
	if (!res || pc_result_print(res, 1) < 0) {
		fprintf(stderr, "pycell: cannot write the result\n");
		status = PC_EXIT_RUNTIME;
	}
	json_object_put(res);
	return status;
}

static int run_parsed(struct pc_cli_common *c, const struct pc_job *job, const struct pc_trace *pre, int n_pre)
{
	struct pc_run r = { .job = job, .policy = &c->policy, .paths = &c->paths, .rootfs = c->rootfs };
	json_object *res;
	int status;

	for (int i = 0; i < n_pre; i++)
		r.trace[r.n_trace++] = pre[i];
	/* A failure after setup (the supervision loop itself) is still the
	 * runtime's failure, not the job's: INTERNAL_ERROR with the step. */
	if (pc_run_job(&r) < 0)
		r.setup_failed = true;
	res = pc_result_build(&r, &status);
	pc_run_free(&r);
	return finish(&c->policy, res, job->code, job->code_len, status);
}

int pc_cmd_run(int argc, char **argv)
{
	struct pc_cli_common c = { 0 };
	struct pc_job job = { 0 };
	struct pc_job_error je = { 0 };
	struct pc_trace pre[2];
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	long long t0 = now_ns();
	int opt, status, r;

	while ((opt = getopt_long(argc, argv, "h", run_opts, NULL)) != -1) {
		switch (opt) {
		case OPT_POLICY: c.policy_arg = optarg; break;
		case OPT_ROOTFS: c.rootfs_arg = optarg; break;
		case 'h': puts("usage: pycell run [--policy FILE] [--rootfs DIR] [JOB.json|-]"); return 0;
		default: return PC_EXIT_USAGE;
		}
	}
	if (argc - optind > 1) {
		fprintf(stderr, "pycell run: one job at a time\n");
		return PC_EXIT_USAGE;
	}
	if ((status = pc_cli_setup(&c)) != 0)
		return status;
	pre[0] = (struct pc_trace){ "policy", true, (double)(now_ns() - t0) / 1e6 };
	t0 = now_ns();
	/* Read one byte past the cap, so "too large" is told from "just fits". */
	r = pc_cli_read_input(optind < argc ? argv[optind] : NULL, c.policy.max_job_bytes, &buf, &len);
	if (r < 0) {
		fprintf(stderr, "pycell run: cannot read job '%s': %s\n", optind < argc ? argv[optind] : "-",
			strerror(-r));
		pc_cli_cleanup(&c);
		return PC_EXIT_USAGE;
	}
	if (pc_job_parse(buf, len, &c.policy, &job, &je) < 0) {
		struct pc_refusal rf = { .id = job.id,
					 .code = je.code,
					 .reason = je.reason,
					 .code_text = job.code,
					 .code_len = job.code_len,
					 .policy = &c.policy,
					 .trace = pre,
					 .n_trace = 2 };

		pre[1] = (struct pc_trace){ "validate", false, (double)(now_ns() - t0) / 1e6 };
		status = finish(&c.policy, pc_result_refused(&rf), job.code, job.code_len, PC_EXIT_USAGE);
	} else {
		pre[1] = (struct pc_trace){ "validate", true, (double)(now_ns() - t0) / 1e6 };
		/* The parse tree is freed but its pages are still ours (charged
		 * to the supervisor's cgroup for the whole job: 1.1 MiB for a
		 * 70 KB input); the job text is copied out. Give both back. */
		free(buf);
		buf = NULL;
		malloc_trim(0);
		status = run_parsed(&c, &job, pre, 2);
	}
	pc_job_free(&job);
	pc_cli_cleanup(&c);
	return status;
}
