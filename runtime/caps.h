/* Capabilities and no_new_privs: the job holds nothing, even as ns-root. */
#ifndef PYCELL_CAPS_H
#define PYCELL_CAPS_H

#include <sys/capability.h>

#include "error.h"

struct pc_caps {
	cap_t empty; /* prepared in the parent: libcap allocates */
};

int pc_caps_prepare(struct pc_caps *c, struct pc_error *err);
void pc_caps_free(struct pc_caps *c);
/* Child side, last step before seccomp: bounding, ambient, inheritable,
 * permitted and effective sets emptied, securebits locked, no_new_privs. */
int pc_caps_setup_child(const struct pc_caps *c, struct pc_error *err);

#endif
