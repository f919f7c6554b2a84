/* seccomp: default-deny allowlist built in the parent (libseccomp), loaded
 * in the child as the very last step before exec.
 *
 * Three outcomes for a system call:
 *   allowed     named by the list the policy names (policy/seccomp/)
 *   EPERM       everything else (clone3: ENOSYS, so libc falls back to
 *               clone, whose flags the filter can see)
 *   notify      the never-allowed families (a fixed table in seccomp.c,
 *               whatever a list says): the kernel parks the caller and
 *               hands the supervisor a seccomp user notification
 *               (seccomp_unotify(2)); the supervisor records the syscall's
 *               name and kills the sandbox while the call is still parked,
 *               so the result says SECURITY_ERROR and names the call. */
#ifndef PYCELL_SECCOMP_H
#define PYCELL_SECCOMP_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

struct pc_seccomp {
	bool enabled;
	bool cached;		/* prog came from the BPF cache */
	struct sock_fprog prog; /* exported BPF, owned */
};

/* Parent: builds the filter from the seccomp list file (policy's "seccomp"). */
int pc_seccomp_prepare(struct pc_seccomp *s, const char *list_path, struct pc_error *err);
void pc_seccomp_free(struct pc_seccomp *s);
/* Child: loads the prepared program with a user-notification listener and
 * passes the listener to the supervisor over sync_fd (a PC_SYNC_SECCOMP_FD
 * record carrying SCM_RIGHTS), then closes its own copy. Allocates nothing. */
int pc_seccomp_setup_child(const struct pc_seccomp *s, int sync_fd, struct pc_error *err);
/* Supervisor: takes one pending notification and writes the offending
 * syscall's name into name, leaving the call unanswered: the caller must
 * then be killed (it never returns to user space). Returns 1 when a call
 * was caught, 0 when the notification vanished (the caller died first),
 * negative errno. */
int pc_seccomp_notify_handle(int listener, char *name, size_t len);
/* `pycell policy check`: compiles the list (never-allowed names, unknown
 * syscalls, malformed conditions are errors) and throws the result away. */
int pc_seccomp_check(const char *list_path, struct pc_error *err);
/* `pycell policy seccomp`: the filter a list produces, in libseccomp's PFC
 * text, written to fd. Also reports the BPF size in instructions. */
int pc_seccomp_export_pfc(const char *list_path, int fd, size_t *bpf_insns, struct pc_error *err);

#endif
