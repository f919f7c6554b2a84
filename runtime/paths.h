/* Where pycell finds its parts: the build tree after `make`, or
 * PREFIX/share/pycell and PREFIX/libexec/pycell once installed. */
#ifndef PYCELL_PATHS_H
#define PYCELL_PATHS_H

#include <limits.h>

#include "error.h"

struct pc_paths {
	char datadir[PATH_MAX]; /* holds policy/ and shim/ (or runtime/shim) */
	char init[PATH_MAX];	/* pycell-init */
	char shim[PATH_MAX];	/* the shim package directory */
	char policy_dir[PATH_MAX];
	char rootfs_dir[PATH_MAX]; /* parent of the rootfs profiles */
	char probe[PATH_MAX];	   /* test probe; empty when absent */
};

int pc_paths_discover(struct pc_paths *p, struct pc_error *err);

#endif
