/* `pycell policy seccomp [--policy FILE]`: the effective filter for
 * auditors, in libseccomp's PFC text, built by the same code the runtime
 * loads (so what is printed is what runs). */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "result.h"
#include "seccomp.h"

int pc_cmd_policy_seccomp(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "policy", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct pc_cli_common c = { 0 };
	struct pc_error err = { 0 };
	char buf[PC_ERROR_MSG + 128];
	size_t insns = 0;
	int opt, status;

	while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (opt) {
		case 'p': c.policy_arg = optarg; break;
		case 'h': puts("usage: pycell policy seccomp [--policy FILE]"); return 0;
		default: return PC_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "usage: pycell policy seccomp [--policy FILE]\n");
		return PC_EXIT_USAGE;
	}
	if ((status = pc_cli_setup(&c)) != 0)
		return status;
	if (!c.policy.seccomp[0]) {
		fprintf(stderr, "pycell policy seccomp: policy '%s' names no seccomp list: jobs run unfiltered\n",
			c.policy.name);
		pc_cli_cleanup(&c);
		return 1;
	}
	printf("# policy '%s', seccomp list '%s'\n", c.policy.name, c.policy.seccomp);
	fflush(stdout);
	if (pc_seccomp_export_pfc(c.policy.seccomp, STDOUT_FILENO, &insns, &err) < 0) {
		fprintf(stderr, "pycell policy seccomp: %s\n", pc_error_text(&err, buf, sizeof(buf)));
		pc_cli_cleanup(&c);
		return PC_EXIT_RUNTIME;
	}
	printf("# %zu BPF instructions; never-allowed calls: SCMP_ACT_NOTIFY (0x7fc00000), the job ends with "
	       "SECURITY_ERROR\n",
	       insns);
	pc_cli_cleanup(&c);
	return 0;
}
