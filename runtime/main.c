/* pycell: run untrusted Python once, in a fresh locked-down sandbox. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "cli.h"
#include "resources.h"
#include "result.h"
#include "serve.h"

static void usage(FILE *f)
{
	fputs(
	    "usage: pycell COMMAND [OPTIONS]\n"
	    "\n"
	    "commands:\n"
	    "  run  [--policy FILE] [--rootfs DIR] [JOB.json|-]   run one JSON job, print one JSON result\n"
	    "  exec [--policy FILE] [--rootfs DIR] SCRIPT.py|-c CODE\n"
	    "                                                     run Python, stream its output, exit with its status\n"
	    "  policy show [--policy FILE] [--job JOB.json]       print the merged policy (and a job's limits)\n"
	    "  policy check FILE                                  validate a policy file\n"
	    "  policy seccomp [--policy FILE]                     print the effective seccomp filter (PFC)\n"
	    "  audit [--policy FILE] [--rootfs DIR] [--format text|json|markdown] [--baseline FILE]\n"
	    "                                                     prove each isolation layer from inside a job\n"
	    "  serve --socket PATH [--policy FILE] [--pool N]     warm mode: HTTP/1.1 API on a Unix socket\n"
	    "  run --server SOCKET [JOB.json|-]                   run one job on a `pycell serve`\n"
	    "  check                                              is this host ready to run jobs?\n"
	    "  gc                                                 remove cgroups and uid leases a killed pycell left\n"
	    "  help                                               this text\n"
	    "\n"
	    "exit status of run: 0 job ok, 1 job error (result printed), 2 unusable invocation,\n"
	    "125 the runtime failed (result printed with INTERNAL_ERROR where possible)\n",
	    f);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return PC_EXIT_USAGE;
	}
	/* Warm mode's client form: the job goes to a `pycell serve`. */
	if (strcmp(argv[1], "run") == 0 && argc >= 4 && argc <= 5 && strcmp(argv[2], "--server") == 0)
		return pc_cmd_run_server(argv[3], argc == 5 ? argv[4] : NULL);
	/* PYCELL_DEBUG_FDS=1: open fd counts on stderr (tests: no fd leaks). */
	if (strcmp(argv[1], "run") == 0)
		return pc_debug_fds("exit", pc_debug_fds("start", 0) + pc_cmd_run(argc - 1, argv + 1));
	if (strcmp(argv[1], "exec") == 0)
		return pc_debug_fds("exit", pc_debug_fds("start", 0) + pc_cmd_exec(argc - 1, argv + 1));
	if (strcmp(argv[1], "audit") == 0)
		return pc_cmd_audit(argc - 1, argv + 1);
	if (strcmp(argv[1], "check") == 0)
		return pc_cmd_check(argc - 1, argv + 1);
	if (strcmp(argv[1], "serve") == 0)
		return pc_cmd_serve(argc - 1, argv + 1);
	if (strcmp(argv[1], "gc") == 0)
		return pc_cmd_gc(argc - 1, argv + 1);
	if (strcmp(argv[1], "policy") == 0)
		return pc_cmd_policy(argc - 1, argv + 1);
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "pycell: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return PC_EXIT_USAGE;
}
