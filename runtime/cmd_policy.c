/* `pycell policy show [--policy P] [--job J]`: the merged settings, and
 * with a job the effective limits it would run with.
 * `pycell policy check FILE`: load FILE the way `run` would and say
 * precisely what is wrong. Exit 0 valid, 1 invalid, 2 usage. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "job.h"
#include "jsonutil.h"
#include "result.h"
#include "seccomp.h"
#include "util.h"

enum { OPT_POLICY = 1, OPT_JOB };

static int print_json(json_object *o)
{
	int r = pc_result_print(o, 1);

	json_object_put(o);
	return r < 0 ? PC_EXIT_RUNTIME : 0;
}

/* The job layer on top of the policy: what `run` would report in limits. */
static int add_job(json_object *o, const struct pc_policy *pol, const char *path)
{
	_cleanup_free_ char *buf = NULL;
	struct pc_job job = { 0 };
	struct pc_job_error je = { 0 };
	long long lim[PC_LIM_COUNT];
	json_object *eff, *j;
	size_t len;
	int r = pc_cli_read_input(path, pol->max_job_bytes, &buf, &len);

	if (r < 0) {
		fprintf(stderr, "pycell policy show: cannot read job '%s': %s\n", path, strerror(-r));
		return PC_EXIT_USAGE;
	}
	if (pc_job_parse(buf, len, pol, &job, &je) < 0) {
		fprintf(stderr, "pycell policy show: the job is refused: %s: %s\n", je.code, je.reason);
		pc_job_free(&job);
		return PC_EXIT_USAGE;
	}
	pc_job_effective_limits(&job, pol, lim);
	eff = json_object_new_object();
	for (int i = 0; i < PC_LIM_COUNT; i++)
		json_object_object_add(eff, pc_limit_table[i].name, json_object_new_int64(lim[i]));
	json_object_object_add(o, "effective_limits", eff);
	j = json_object_new_object();
	json_object_object_add(j, "id", job.id ? json_object_new_string(job.id) : NULL);
	json_object_object_add(j, "code_sha256", json_object_new_string(job.code_sha256));
	json_object_object_add(j, "execution_mode", json_object_new_string(pc_job_execution_mode(&job)));
	json_object_object_add(o, "job", j);
	pc_job_free(&job);
	return 0;
}

static int policy_show(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "policy", required_argument, NULL, OPT_POLICY },
		{ "job", required_argument, NULL, OPT_JOB },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct pc_cli_common c = { 0 };
	const char *job = NULL, *sys;
	json_object *o;
	int opt, status;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_POLICY: c.policy_arg = optarg; break;
		case OPT_JOB: job = optarg; break;
		case 'h': puts("usage: pycell policy show [--policy FILE] [--job JOB.json|-]"); return 0;
		default: return PC_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pycell policy show: unexpected argument '%s'\n", argv[optind]);
		return PC_EXIT_USAGE;
	}
	if ((status = pc_cli_setup_policy(&c)) != 0)
		return status;
	o = pc_policy_to_json(&c.policy);
	sys = pc_cli_system_config();
	json_object_object_add(o, "system_config", access(sys, F_OK) == 0 ? json_object_new_string(sys) : NULL);
	if (job && (status = add_job(o, &c.policy, job)) != 0) {
		json_object_put(o);
		pc_cli_cleanup(&c);
		return status;
	}
	status = print_json(o);
	pc_cli_cleanup(&c);
	return status;
}

/* Loaded without the system config: the file is checked on its own. */
static int policy_check(int argc, char **argv)
{
	struct pc_policy p;
	struct pc_error err = { 0 };
	char buf[PC_ERROR_MSG + 64];

	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: pycell policy check FILE\n");
		return PC_EXIT_USAGE;
	}
	if (pc_policy_load(&p, argv[1], NULL, &err) < 0) {
		pc_policy_free(&p);
		fprintf(stderr, "pycell policy check: %s\n", pc_error_text(&err, buf, sizeof(buf)));
		return 1;
	}
	if (p.seccomp[0] && access(p.seccomp, R_OK) < 0) {
		fprintf(stderr, "pycell policy check: %s: seccomp: cannot read '%s'\n", argv[1], p.seccomp);
		pc_policy_free(&p);
		return 1;
	}
	if (p.seccomp[0] && pc_seccomp_check(p.seccomp, &err) < 0) {
		fprintf(stderr, "pycell policy check: %s: %s\n", argv[1], err.msg);
		pc_policy_free(&p);
		return 1;
	}
	printf("%s: ok (policy '%s')\n", argv[1], p.name);
	pc_policy_free(&p);
	return 0;
}

int pc_cmd_policy(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "show") == 0)
		return policy_show(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "check") == 0)
		return policy_check(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "seccomp") == 0)
		return pc_cmd_policy_seccomp(argc - 1, argv + 1);
	fprintf(stderr, "usage: pycell policy show [--policy FILE] [--job JOB.json|-]\n"
			"       pycell policy check FILE\n"
			"       pycell policy seccomp [--policy FILE]\n");
	return PC_EXIT_USAGE;
}
