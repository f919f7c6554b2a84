/* Landlock (landlock(7)): a filesystem fence under the mount namespace.
 * The job may read and execute beneath '/', read and write its workdir and
 * /tmp, and read/write the five device nodes; nothing else. Applied in the
 * child after pivot_root, so the paths are the sandbox's own. */
#ifndef PYCELL_LANDLOCK_H
#define PYCELL_LANDLOCK_H

#include <stdbool.h>

#include "error.h"

struct pc_landlock {
	bool enabled; /* false: the kernel lacks Landlock (note says why) */
	int abi;      /* LANDLOCK_CREATE_RULESET_VERSION, 0 when absent */
	char note[128];
};

/* Parent: asks the kernel which Landlock ABI it offers. Never fails: a
 * kernel without Landlock is recorded in note and the layer is skipped. */
void pc_landlock_prepare(struct pc_landlock *l);
/* Child: builds and enforces the ruleset; allocates nothing. Needs
 * no_new_privs (set by caps.c). */
int pc_landlock_setup_child(const struct pc_landlock *l, struct pc_error *err);

#endif
