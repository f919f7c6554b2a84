/* seccomp: default-deny allowlist built in the parent (libseccomp), loaded
 * in the child as the very last step before exec. */
#ifndef PYCELL_SECCOMP_H
#define PYCELL_SECCOMP_H

#include <linux/filter.h>
#include <stdbool.h>

#include "error.h"

struct pc_seccomp {
	bool enabled;
	struct sock_fprog prog; /* exported BPF, owned */
};

/* Parent: builds the filter from the seccomp list file (policy's "seccomp"). */
int pc_seccomp_prepare(struct pc_seccomp *s, const char *list_path, struct pc_error *err);
void pc_seccomp_free(struct pc_seccomp *s);
/* Child: loads the prepared program; allocates nothing. */
int pc_seccomp_setup_child(const struct pc_seccomp *s, struct pc_error *err);

#endif
