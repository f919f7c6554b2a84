#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "result.h"
#include "util.h"

static int resolve_rootfs(struct pc_cli_common *c, struct pc_error *err)
{
	const char *want = c->rootfs_arg ? c->rootfs_arg : c->policy.rootfs;
	char cand[PATH_MAX];

	/* A bare name is a profile under the rootfs directory. */
	if (!strchr(want, '/'))
		snprintf(cand, sizeof(cand), "%s/%s", c->paths.rootfs_dir, want);
	else
		snprintf(cand, sizeof(cand), "%s", want);
	if (!realpath(cand, c->rootfs))
		return pc_error_set(err, errno, "rootfs '%s' (build it with 'make rootfs', or pass --rootfs DIR)",
				    cand);
	return 0;
}

const char *pc_cli_system_config(void)
{
	const char *env = getenv("PYCELL_CONFIG");

	return env && env[0] ? env : PC_SYSTEM_CONFIG;
}

int pc_cli_setup_policy(struct pc_cli_common *c)
{
	struct pc_error err = { 0 };
	char policy_path[PATH_MAX], buf[PC_ERROR_MSG + 64];

	if (pc_paths_discover(&c->paths, &err) < 0) {
		fprintf(stderr, "pycell: %s\n", pc_error_text(&err, buf, sizeof(buf)));
		return PC_EXIT_RUNTIME;
	}
	if (c->policy_arg)
		snprintf(policy_path, sizeof(policy_path), "%s", c->policy_arg);
	else
		snprintf(policy_path, sizeof(policy_path), "%s/default.json", c->paths.policy_dir);
	if (pc_policy_load(&c->policy, policy_path, pc_cli_system_config(), &err) < 0) {
		fprintf(stderr, "pycell: policy: %s\n", pc_error_text(&err, buf, sizeof(buf)));
		return PC_EXIT_USAGE;
	}
	return 0;
}

int pc_cli_setup(struct pc_cli_common *c)
{
	struct pc_error err = { 0 };
	char buf[PC_ERROR_MSG + 64];
	int status;

	if ((status = pc_cli_setup_policy(c)) != 0)
		return status;
	if (resolve_rootfs(c, &err) < 0) {
		fprintf(stderr, "pycell: %s\n", pc_error_text(&err, buf, sizeof(buf)));
		return PC_EXIT_USAGE;
	}
	return 0;
}

void pc_cli_cleanup(struct pc_cli_common *c)
{
	pc_policy_free(&c->policy);
}

int pc_cli_read_input(const char *path, size_t max, char **out, size_t *len)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	size_t n = 0, cap = 65536;

	if (!path || strcmp(path, "-") == 0)
		fd = fcntl(0, F_DUPFD_CLOEXEC, 3);
	else
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	buf = malloc(cap + 1);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t r;

		if (n == cap) {
			char *nb;
			if (cap > max)
				break; /* read max + 1 bytes at most */
			cap *= 2;
			nb = realloc(buf, cap + 1);
			if (!nb)
				return -ENOMEM;
			buf = nb;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*len = n;
	*out = steal_pointer(&buf);
	return 0;
}
