/* Shared pieces of the subcommands. */
#ifndef PYCELL_CLI_H
#define PYCELL_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "paths.h"
#include "policy.h"

struct pc_cli_common {
	const char *policy_arg; /* --policy */
	const char *rootfs_arg; /* --rootfs */
	struct pc_paths paths;
	struct pc_policy policy;
	char rootfs[PATH_MAX];
};

/* Finds the data dir, loads the policy, resolves the rootfs. Prints the
 * error and returns an exit status (2 or 125) on failure, 0 on success. */
int pc_cli_setup(struct pc_cli_common *c);
/* The first half of pc_cli_setup: data dir and policy, no rootfs. */
int pc_cli_setup_policy(struct pc_cli_common *c);
/* PYCELL_CONFIG, else /etc/pycell/config.json (absent is fine). */
const char *pc_cli_system_config(void);
void pc_cli_cleanup(struct pc_cli_common *c);
/* Reads a whole file (or stdin for "-"/NULL), at most max bytes + 1 so the
 * caller can tell "too large". */
int pc_cli_read_input(const char *path, size_t max, char **buf, size_t *len);

int pc_cmd_run(int argc, char **argv);
int pc_cmd_exec(int argc, char **argv);
int pc_cmd_policy(int argc, char **argv);
int pc_cmd_policy_seccomp(int argc, char **argv);

#endif
