/* `pycell run`: one JSON job in, one JSON result out. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "job.h"
#include "result.h"
#include "run.h"

enum { OPT_POLICY = 1, OPT_ROOTFS };

static const struct option run_opts[] = {
	{ "policy", required_argument, NULL, OPT_POLICY },
	{ "rootfs", required_argument, NULL, OPT_ROOTFS },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int print_and_free(json_object *res, int status)
{
	if (!res || pc_result_print(res, 1) < 0) {
		fprintf(stderr, "pycell: cannot write the result\n");
		status = PC_EXIT_RUNTIME;
	}
	json_object_put(res);
	return status;
}

static int run_parsed(struct pc_cli_common *c, const struct pc_job *job)
{
	struct pc_run r = { .job = job, .policy = &c->policy, .paths = &c->paths, .rootfs = c->rootfs };
	int status;
	json_object *res;

	pc_run_job(&r);
	res = pc_result_build(&r, &status);
	pc_run_free(&r);
	return print_and_free(res, status);
}

int pc_cmd_run(int argc, char **argv)
{
	struct pc_cli_common c = { 0 };
	struct pc_job job;
	struct pc_job_error je = { 0 };
	char *buf = NULL;
	size_t len = 0;
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
	r = pc_cli_read_input(optind < argc ? argv[optind] : NULL, c.policy.max_job_bytes, &buf, &len);
	if (r < 0) {
		fprintf(stderr, "pycell run: cannot read job '%s': %s\n", optind < argc ? argv[optind] : "-", strerror(-r));
		pc_cli_cleanup(&c);
		return PC_EXIT_USAGE;
	}
	if (pc_job_parse(buf, len, &c.policy, &job, &je) < 0) {
		status = print_and_free(pc_result_refused(NULL, je.code, je.reason, c.policy.name), PC_EXIT_USAGE);
	} else {
		status = run_parsed(&c, &job);
	}
	pc_job_free(&job);
	free(buf);
	pc_cli_cleanup(&c);
	return status;
}
