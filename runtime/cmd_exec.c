/* `pycell exec`: the human form. Streams the job's output straight through
 * and exits with the job's own status. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "cli.h"
#include "job.h"
#include "result.h"
#include "run.h"

enum { OPT_POLICY = 1, OPT_ROOTFS, OPT_PROBE };

static const struct option exec_opts[] = {
	{ "policy", required_argument, NULL, OPT_POLICY },
	{ "rootfs", required_argument, NULL, OPT_ROOTFS },
	/* Test-only ablation mode: run the static probe instead of Python, so
	 * the kernel layers are tested without the Python layer. */
	{ "probe", no_argument, NULL, OPT_PROBE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int exit_status_of(const struct pc_run *r, json_object *res)
{
	json_object *e, *code, *msg;

	if (json_object_object_get_ex(res, "error", &e) && e && json_object_object_get_ex(e, "code", &code)) {
		const char *c = json_object_get_string(code);
		json_object_object_get_ex(e, "message", &msg);
		/* RUNTIME_ERROR already printed its traceback on stderr. */
		if (strcmp(c, "RUNTIME_ERROR") != 0 || !r->have_status)
			fprintf(stderr, "pycell: %s: %s\n", c, json_object_get_string(msg));
		if (strcmp(c, "INTERNAL_ERROR") == 0)
			return PC_EXIT_RUNTIME;
	}
	if (r->have_status && WIFEXITED(r->job_status))
		return WEXITSTATUS(r->job_status) ? WEXITSTATUS(r->job_status) : (e ? 1 : 0);
	if (r->have_status && WIFSIGNALED(r->job_status))
		return 128 + WTERMSIG(r->job_status);
	return 1;
}

int pc_cmd_exec(int argc, char **argv)
{
	static char *probe_argv[64];
	struct pc_cli_common c = { 0 };
	struct pc_job job = { 0 };
	struct pc_run r = { 0 };
	const char *code = NULL;
	char *buf = NULL;
	size_t len = 0;
	bool probe = false;
	json_object *res;
	int opt, status;

	while ((opt = getopt_long(argc, argv, "+hc:", exec_opts, NULL)) != -1) {
		switch (opt) {
		case OPT_POLICY: c.policy_arg = optarg; break;
		case OPT_ROOTFS: c.rootfs_arg = optarg; break;
		case OPT_PROBE: probe = true; break;
		case 'c': code = optarg; break;
		case 'h': puts("usage: pycell exec [--policy FILE] [--rootfs DIR] SCRIPT.py|-c CODE"); return 0;
		default: return PC_EXIT_USAGE;
		}
	}
	if (!probe && !code && optind >= argc) {
		fprintf(stderr, "pycell exec: give SCRIPT.py or -c CODE\n");
		return PC_EXIT_USAGE;
	}
	if ((status = pc_cli_setup(&c)) != 0)
		return status;
	if (probe) {
		int n = 0;
		probe_argv[n++] = PC_SANDBOX_INIT;
		probe_argv[n++] = PC_SANDBOX_PROBE;
		for (; optind < argc && n < 62; optind++)
			probe_argv[n++] = argv[optind];
		probe_argv[n] = NULL;
		if (!c.paths.probe[0]) {
			fprintf(stderr, "pycell exec: --probe needs the test probe (make tests/probe)\n");
			pc_cli_cleanup(&c);
			return PC_EXIT_USAGE;
		}
		code = "pass";
	} else if (!code) {
		int rr = pc_cli_read_input(argv[optind], c.policy.max_code_bytes, &buf, &len);
		if (rr < 0) {
			fprintf(stderr, "pycell exec: cannot read '%s': %s\n", argv[optind], strerror(-rr));
			pc_cli_cleanup(&c);
			return PC_EXIT_USAGE;
		}
		code = buf;
	}
	job.code = (char *)code;
	job.code_len = strlen(code);
	job.mode = "inline";
	r = (struct pc_run){ .job = &job,
			     .policy = &c.policy,
			     .paths = &c.paths,
			     .rootfs = c.rootfs,
			     .passthrough = true,
			     .ablation = probe,
			     .ablation_argv = probe_argv };
	pc_run_job(&r);
	res = pc_result_build(&r, &status);
	status = exit_status_of(&r, res);
	json_object_put(res);
	pc_run_free(&r);
	free(buf);
	pc_cli_cleanup(&c);
	return status;
}
