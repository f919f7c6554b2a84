/* The sandbox: parent/child choreography around clone3(). */
#ifndef PYCELL_SANDBOX_H
#define PYCELL_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "caps.h"
#include "cgroup.h"
#include "error.h"
#include "landlock.h"
#include "mounts.h"
#include "seccomp.h"

#define PC_SANDBOX_UID 1000 /* the job's uid and gid inside the namespace */
#define PC_HOSTNAME    "pycell"

struct pc_file {
	const char *name; /* validated: no '/', no "..", no NUL */
	const char *data;
	size_t len;
};

struct pc_rlimit {
	int resource;
	struct rlimit lim;
};

struct pc_sandbox_config {
	struct pc_mount_plan mounts;
	uid_t host_uid; /* unprivileged host id the job's uid maps to */
	gid_t host_gid;
	bool rootless; /* caller is not root: map own id, deny setgroups */
	const struct pc_file *files;
	size_t n_files;
	const struct pc_rlimit *rlimits;
	size_t n_rlimits;
	int stdin_fd;			    /* becomes fd 0 */
	int bootstrap_fd;		    /* becomes fd 3 */
	int exec_filter_fd;		    /* becomes fd 6: pc_exec_filter_prepare() */
	char *const *argv;		    /* run by pycell-init, inside the sandbox */
	char *const *envp;		    /* built from scratch by the caller */
	struct pc_cgroup *cgroup;	    /* NULL: none */
	const struct pc_seccomp *seccomp;   /* NULL: no filter (never in production) */
	const struct pc_landlock *landlock; /* NULL or !enabled: no Landlock */
	bool zygote;			    /* warm pool: keep the namespace caps pycell-init --zygote
					     * needs (zygote.c); no seccomp or Landlock of its own */
};

struct pc_sandbox {
	pid_t pid; /* pid 1 of the sandbox, in our namespace */
	int pidfd;
	int sync_fd;
	int out_fd; /* read ends, non-blocking */
	int err_fd;
	int result_fd;
	int notify_fd;	     /* seccomp user-notification listener, -1 if none */
	long long forked_ns; /* now_ns() clock: pid 1 forked the job process; 0 unknown */
	struct pc_caps caps;
};

void pc_sandbox_init(struct pc_sandbox *sb);
/* Clones the child, writes its id maps, lets it run; returns once the job
 * process has been exec'd (PC_SYNC_EXEC_OK) or with the child's error. */
int pc_sandbox_start(const struct pc_sandbox_config *cfg, struct pc_sandbox *sb, struct pc_error *err);
/* The supervisor's ends (sync socket, stdout/stderr/result pipes) into sb,
 * the sandbox's ends into the four out-parameters; all O_CLOEXEC. */
int pc_sandbox_channels(struct pc_sandbox *sb, int *child_sync, int *out_w, int *err_w, int *res_w,
			struct pc_error *err);
/* One sync record (sync.h) and the descriptor it may carry (SCM_RIGHTS;
 * *passed_fd is -1 when none came). 1: a record; 0: EOF or short; <0 -errno. */
struct pc_sync_msg;
int pc_sync_recv(int fd, struct pc_sync_msg *m, int *passed_fd);
/* SIGKILL to pid 1 takes down the whole pid namespace. */
void pc_sandbox_kill(struct pc_sandbox *sb);
/* Waits for pid 1; *job_status gets the job's raw wait status as reported
 * by pycell-init, or pid 1's own when it died first. */
int pc_sandbox_reap(struct pc_sandbox *sb, int *job_status, bool *from_init);
/* Kills (if still alive), reaps and closes everything. Idempotent. */
void pc_sandbox_destroy(struct pc_sandbox *sb);

#endif
