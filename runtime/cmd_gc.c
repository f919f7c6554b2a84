/* `pycell gc`: removes what a SIGKILLed pycell left behind. A live pycell
 * cleans up after itself on every path, so this only finds job cgroups whose
 * pycell is gone and lease lock files nobody holds. The sandbox itself
 * needs no collecting: pid 1 has PR_SET_PDEATHSIG(SIGKILL), and the pid and
 * mount namespaces (with their tmpfs) die with it. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "cgroup.h"
#include "lease.h"
#include "resources.h"
#include "result.h"

int pc_cmd_gc(int argc, char **argv)
{
	struct pc_error err = { 0 };
	int groups = 0, leases = 0, status = 0;
	char buf[PC_ERROR_MSG + 64];

	if (argc > 1) {
		if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
			puts("usage: pycell gc    remove stale job cgroups and uid lease files");
			return 0;
		}
		fprintf(stderr, "pycell gc: takes no arguments\n");
		return PC_EXIT_USAGE;
	}
	if (pc_cgroup_gc(&groups, &err) < 0) {
		fprintf(stderr, "pycell gc: %s\n", pc_error_text(&err, buf, sizeof(buf)));
		status = PC_EXIT_RUNTIME;
	}
	if (pc_lease_gc(&leases, &err) < 0) {
		fprintf(stderr, "pycell gc: %s\n", pc_error_text(&err, buf, sizeof(buf)));
		status = PC_EXIT_RUNTIME;
	}
	printf("{\"cgroups_removed\": %d, \"leases_removed\": %d}\n", groups, leases);
	return status;
}
