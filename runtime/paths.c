#define _GNU_SOURCE
#include "paths.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool exists(const char *dir, const char *sub)
{
	char p[PATH_MAX];

	if (snprintf(p, sizeof(p), "%s/%s", dir, sub) >= (int)sizeof(p))
		return false;
	return access(p, F_OK) == 0;
}

#define SET(dst, ...) snprintf(dst, sizeof(dst), __VA_ARGS__)

/* The parent of a canonical directory, in place ("/" stays "/"). */
static void up_one(char *dir)
{
	char *slash = strrchr(dir, '/');

	if (slash == dir)
		dir[1] = '\0';
	else if (slash)
		*slash = '\0';
}

/* Installed layout: PREFIX/share/pycell and PREFIX/libexec/pycell. */
static bool try_installed(struct pc_paths *p, const char *bindir)
{
	char prefix[PATH_MAX], share[PATH_MAX];

	SET(prefix, "%s", bindir);
	up_one(prefix);
	SET(share, "%s/share/pycell", prefix);
	if (!exists(share, "policy/default.json"))
		return false;
	SET(p->datadir, "%s", share);
	SET(p->init, "%s/libexec/pycell/pycell-init", prefix);
	SET(p->shim, "%s/shim", share);
	SET(p->policy_dir, "%s/policy", share);
	SET(p->rootfs_dir, "%s/rootfs", share);
	SET(p->probe, "%s/libexec/pycell/pycell-probe", prefix);
	return true;
}

/* Build tree: the binary sits in build/bin or build/asan below the repo. */
static bool try_build_tree(struct pc_paths *p, const char *bindir)
{
	char dir[PATH_MAX];
	int up;

	SET(dir, "%s", bindir);
	for (up = 0; up < 4; up++) {
		if (exists(dir, "policy/default.json") && exists(dir, "runtime/shim")) {
			SET(p->datadir, "%s", dir);
			SET(p->init, "%s/build/bin/pycell-init", dir);
			SET(p->shim, "%s/runtime/shim", dir);
			SET(p->policy_dir, "%s/policy", dir);
			SET(p->rootfs_dir, "%s/build/rootfs", dir);
			SET(p->probe, "%s/build/bin/pycell-probe", dir);
			return true;
		}
		up_one(dir);
	}
	return false;
}

int pc_paths_discover(struct pc_paths *p, struct pc_error *err)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	memset(p, 0, sizeof(*p));
	if (n < 0)
		return pc_error_set(err, errno, "readlink /proc/self/exe");
	exe[n] = '\0';
	/* The kernel's path of our binary is canonical, so its directories
	 * are found by cutting components: no realpath() walk (~40 readlink
	 * calls per run) and no "..". */
	up_one(exe);
	if (!try_installed(p, exe) && !try_build_tree(p, exe))
		return pc_error_set(err, ENOENT,
				    "cannot find pycell's data (policy/default.json) near '%s': run 'make' "
				    "in the source tree or 'make install'",
				    exe);
	if (access(p->probe, X_OK) < 0)
		p->probe[0] = '\0';
	return 0;
}
