/* Theory of operation.
 *
 * Three processes take part in a run:
 *   supervisor  the `pycell` process on the host. Parses the job, prepares
 *               everything that allocates (seccomp BPF, cap_t, memfds), then
 *               clone3()s the sandbox child into fresh user and pid
 *               namespaces, writes its id maps and attaches it to the job's
 *               cgroups.
 *   pid 1       the sandbox child. While the supervisor writes its maps it
 *               makes its own mount, net, ipc and uts namespaces (a net
 *               namespace alone is ~0.5 ms: off the supervisor's path, on
 *               the other core) and brings lo up; with its maps it builds
 *               the root filesystem; once attached it roots a cgroup
 *               namespace at the job's group, drops every privilege and
 *               execs pycell-init, which stays pid 1: a reaper that never
 *               runs job code.
 *   job         pid 2, forked by pycell-init: the Python interpreter.
 *
 * Descriptors crossing into the sandbox (sync.h has the fixed layout):
 *   0 input memfd, 1/2 output pipes, 3 bootstrap memfd, 4 result pipe,
 *   5 sync socket (SOCK_SEQPACKET; pycell-init closes it on the job's exec),
 *   6 exec filter BPF (sealed memfd; pycell-init reads and closes it).
 *
 * Sync points, marked with the same comment on both sides:
 *   sync 1  parent -> child   PC_SYNC_GO: uid_map/gid_map are written
 *   sync 6  parent -> child   PC_SYNC_ATTACHED: the child is in the job's
 *                             cgroups (v1: by pid, while the child mounts;
 *                             v2: at clone), so nothing of the job runs
 *                             outside them
 *   sync 2  child  -> parent  PC_SYNC_ERROR: a setup step failed (step, errno)
 *   sync 3  init   -> parent  PC_SYNC_EXEC_OK: the job process is running
 *   sync 4  init   -> parent  PC_SYNC_EXIT: the job's raw wait status
 *   sync 5  child  -> parent  PC_SYNC_SECCOMP_FD: the seccomp listener
 *                             (SCM_RIGHTS), sent right after the filter
 *                             is loaded; the child keeps no copy
 * An EOF before sync 3 without a sync 2 record means pid 1 died silently;
 * it is reported as such, never as success. */
#define _GNU_SOURCE
#include "sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "netns.h"
#include "sync.h"
#include "util.h"
#include "zygote.h"

/* At clone: the user namespace (everything else is owned by it) and the pid
 * namespace (the child must be its pid 1). The child unshares the rest. */
#define CLONE_NS_FLAGS (CLONE_NEWUSER | CLONE_NEWPID)
#define CHILD_NS_FLAGS (CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)

/* ---------------------------------------------------------------- child */

static void __attribute__((noreturn)) child_fail(int sync_fd, const struct pc_error *e)
{
	struct pc_sync_msg m = { .type = PC_SYNC_ERROR, .errnum = e->errnum };

	snprintf(m.msg, sizeof(m.msg), "%s", e->msg);
	/* sync 2 */
	send(sync_fd, &m, sizeof(m), MSG_NOSIGNAL);
	_exit(125);
}

static bool supervisor_gone(int sync_fd)
{
	struct pollfd p = { .fd = sync_fd, .events = 0 };

	return poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR));
}

static int child_ids(const struct pc_sandbox_config *cfg, struct pc_error *err)
{
	/* As root the parent wrote gid_map without denying setgroups, so the
	 * host supplementary groups of root can (and must) be dropped here. */
	if (!cfg->rootless && setgroups(0, NULL) < 0)
		return pc_error_set(err, errno, "setgroups");
	if (setresgid(PC_SANDBOX_UID, PC_SANDBOX_UID, PC_SANDBOX_UID) < 0)
		return pc_error_set(err, errno, "setresgid %d", PC_SANDBOX_UID);
	/* No uid 0 is involved, so this keeps the namespace capabilities the
	 * mount steps need; they are dropped explicitly by pc_caps_setup_child. */
	if (setresuid(PC_SANDBOX_UID, PC_SANDBOX_UID, PC_SANDBOX_UID) < 0)
		return pc_error_set(err, errno, "setresuid %d", PC_SANDBOX_UID);
	return 0;
}

static int child_files(const struct pc_sandbox_config *cfg, struct pc_error *err)
{
	size_t i;

	for (i = 0; i < cfg->n_files; i++) {
		const struct pc_file *f = &cfg->files[i];
		int fd = openat(AT_FDCWD, f->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		int r;

		if (fd < 0)
			return pc_error_set(err, errno, "create job file '%s'", f->name);
		r = write_all(fd, f->data, f->len);
		close(fd);
		if (r < 0)
			return pc_error_set(err, -r, "write job file '%s'", f->name);
	}
	return 0;
}

static int child_rlimits(const struct pc_sandbox_config *cfg, struct pc_error *err)
{
	size_t i;

	for (i = 0; i < cfg->n_rlimits; i++) {
		if (setrlimit(cfg->rlimits[i].resource, &cfg->rlimits[i].lim) < 0)
			return pc_error_set(err, errno, "setrlimit %d", cfg->rlimits[i].resource);
	}
	return 0;
}

/* Moves the job's descriptors to their fixed numbers and closes every other
 * one, so nothing of the host (a directory fd in particular: runc's
 * CVE-2024-21626) survives into the sandbox. */
static int child_fds(const struct pc_sandbox_config *cfg, int sync_fd, int out_w, int err_w, int res_w,
		     struct pc_error *err)
{
	int src[PC_FD_FIRST_FREE] = {
		cfg->stdin_fd, out_w, err_w, cfg->bootstrap_fd, res_w, sync_fd, cfg->exec_filter_fd,
	};
	int tmp[PC_FD_FIRST_FREE];
	int i;

	/* Park each source above the target range first: a source may already
	 * sit on another source's target number. */
	for (i = 0; i < PC_FD_FIRST_FREE; i++) {
		tmp[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 100);
		if (tmp[i] < 0)
			return pc_error_set(err, errno, "dup fd %d", src[i]);
	}
	for (i = 0; i < PC_FD_FIRST_FREE; i++) {
		if (dup2(tmp[i], i) < 0) /* dup2 clears FD_CLOEXEC on the copy */
			return pc_error_set(err, errno, "dup2 to fd %d", i);
	}
	if (close_range(PC_FD_FIRST_FREE, ~0U, 0) < 0)
		return pc_error_set(err, errno, "close_range");
	if (lseek(PC_FD_STDIN, 0, SEEK_SET) < 0 || lseek(PC_FD_BOOTSTRAP, 0, SEEK_SET) < 0)
		return pc_error_set(err, errno, "rewind input");
	return 0;
}

static int child_wait(int sync_fd, int type)
{
	struct pc_sync_msg m;
	ssize_t n;

	do
		n = recv(sync_fd, &m, sizeof(m), 0);
	while (n < 0 && errno == EINTR);
	return n == sizeof(m) && m.type == type ? 0 : -1;
}

/* What needs neither the id maps nor the cgroup: it runs while the
 * supervisor writes them. The namespaces made here are owned by the user
 * namespace made at clone, exactly as if clone3 had made them. */
static int child_namespaces(struct pc_error *err)
{
	int r;

	if (unshare(CHILD_NS_FLAGS) < 0)
		return pc_error_set(err, errno,
				    "unshare mount, net, ipc and uts namespaces (check the user.max_*_namespaces "
				    "sysctls)");
	if ((r = pc_net_setup_child(err)) < 0)
		return r;
	if (sethostname(PC_HOSTNAME, strlen(PC_HOSTNAME)) < 0)
		return pc_error_set(err, errno, "sethostname");
	return 0;
}

/* With the id maps: the job's ids, then the root filesystem. */
static int child_ids_mounts(const struct pc_sandbox_config *cfg, int sync_fd, struct pc_error *err)
{
	int r;

	if (setsid() < 0)
		return pc_error_set(err, errno, "setsid");
	if ((r = child_ids(cfg, err)) < 0)
		return r;
	/* A uid change clears the parent-death signal (commit_creds()), so set
	 * it again; getppid() is 0 for a pid namespace's init, so a hang-up on
	 * the sync socket is how we see a supervisor that died in between. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || supervisor_gone(sync_fd))
		_exit(125);
	return pc_mounts_setup_child(&cfg->mounts, err);
}

static void __attribute__((noreturn))
child_main(const struct pc_sandbox_config *cfg, struct pc_sandbox *sb, int sync_fd, int out_w, int err_w, int res_w)
{
	struct pc_error e = { 0 };

	/* The sandbox dies with its supervisor. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		_exit(125);
	/* The supervisor blocks SIGTERM/SIGINT/SIGHUP for its signalfd (a warm
	 * handler ignores them); mask and ignored signals survive clone and
	 * exec, the job must inherit neither. */
	signal(SIGTERM, SIG_DFL), signal(SIGINT, SIG_DFL), signal(SIGHUP, SIG_DFL), signal(SIGPIPE, SIG_DFL);
	sigprocmask(SIG_SETMASK, &(sigset_t){ 0 }, NULL);
	if (child_namespaces(&e) < 0)
		child_fail(sync_fd, &e);
	/* sync 1 */
	if (child_wait(sync_fd, PC_SYNC_GO) < 0)
		_exit(125); /* the supervisor is gone */
	if (child_ids_mounts(cfg, sync_fd, &e) < 0)
		child_fail(sync_fd, &e);
	/* sync 6: nothing below (the job's files are its memory) runs outside
	 * the job's cgroups. */
	if (child_wait(sync_fd, PC_SYNC_ATTACHED) < 0)
		_exit(125);
	/* Rooted at the job's group now (a cgroup namespace is rooted where
	 * its creator is): /proc/self/cgroup shows "/" and nothing above. */
	if (unshare(CLONE_NEWCGROUP) < 0)
		pc_error_set(&e, errno, "unshare cgroup namespace"), child_fail(sync_fd, &e);
	if (child_files(cfg, &e) < 0 || child_rlimits(cfg, &e) < 0)
		child_fail(sync_fd, &e);
	if (child_fds(cfg, sync_fd, out_w, err_w, res_w, &e) < 0)
		child_fail(sync_fd, &e);
	sync_fd = PC_FD_SYNC;
	/* A zygote makes each job's namespaces itself: it keeps the three
	 * capabilities that takes, and its jobs drop them (init/zygote.c). */
	if (cfg->zygote) {
		if (pc_zygote_caps_child(&e) < 0)
			child_fail(sync_fd, &e);
		execve(PC_SANDBOX_INIT, cfg->argv, cfg->envp);
		pc_error_set(&e, errno, "exec pycell-init '%s'", PC_SANDBOX_INIT);
		child_fail(sync_fd, &e);
	}
	if (pc_caps_setup_child(&sb->caps, &e) < 0)
		child_fail(sync_fd, &e);
	if (pc_landlock_setup_child(cfg->landlock, &e) < 0)
		child_fail(sync_fd, &e);
	/* Seccomp goes last: after it, the steps above would be refused. */
	if (cfg->seccomp && pc_seccomp_setup_child(cfg->seccomp, sync_fd, &e) < 0)
		child_fail(sync_fd, &e);
	execve(PC_SANDBOX_INIT, cfg->argv, cfg->envp);
	pc_error_set(&e, errno, "exec pycell-init '%s'", PC_SANDBOX_INIT);
	child_fail(sync_fd, &e);
}

/* --------------------------------------------------------------- parent */

static int write_proc_file(pid_t pid, const char *name, const char *text, struct pc_error *err)
{
	char path[64];
	_cleanup_close_ int fd = -1;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return pc_error_set(err, errno, "open '%s'", path);
	r = write_all(fd, text, strlen(text));
	if (r < 0)
		return pc_error_set(err, -r, "write '%s' ('%s')", path, text);
	return 0;
}

static int write_id_maps(const struct pc_sandbox_config *cfg, pid_t pid, struct pc_error *err)
{
	char map[64];
	int r;

	/* Unprivileged writers must deny setgroups before gid_map
	 * (user_namespaces(7)); root keeps it so the child can clear groups. */
	if (cfg->rootless && (r = write_proc_file(pid, "setgroups", "deny", err)) < 0)
		return r;
	snprintf(map, sizeof(map), "%d %u 1\n", PC_SANDBOX_UID, (unsigned)cfg->host_uid);
	if ((r = write_proc_file(pid, "uid_map", map, err)) < 0)
		return r;
	snprintf(map, sizeof(map), "%d %u 1\n", PC_SANDBOX_UID, (unsigned)cfg->host_gid);
	return write_proc_file(pid, "gid_map", map, err);
}

/* recvmsg, not recv: a PC_SYNC_SECCOMP_FD record carries a descriptor
 * (SCM_RIGHTS), which *passed_fd receives (-1 when none came). */
int pc_sync_recv(int fd, struct pc_sync_msg *m, int *passed_fd)
{
	ssize_t n;

	/* ECONNRESET: the peer exited with one of our records unread (a child
	 * that failed before reading go). It is reported once, ahead of the
	 * records the peer queued before exiting, which the next call reads. */
	do
		n = recv_fd(fd, m, sizeof(*m), 0, passed_fd);
	while (n == -ECONNRESET);
	if (n < 0)
		return (int)n;
	m->msg[sizeof(m->msg) - 1] = '\0';
	return n == (ssize_t)sizeof(*m) ? 1 : 0; /* 0: EOF or short record */
}

static int wait_exec(struct pc_sandbox *sb, struct pc_error *err)
{
	struct pc_sync_msg m;

	for (;;) {
		int fd, r = pc_sync_recv(sb->sync_fd, &m, &fd);

		/* sync 5 */
		if (fd >= 0 && m.type == PC_SYNC_SECCOMP_FD && sb->notify_fd < 0)
			sb->notify_fd = fd;
		else if (fd >= 0)
			close(fd);
		if (r < 0)
			return pc_error_set(err, -r, "read sandbox sync socket");
		if (r == 0)
			return pc_error_set(err, 0, "sandbox child exited during setup without reporting a step");
		if (m.type == PC_SYNC_ERROR) /* sync 2 */
			return pc_error_set(err, m.errnum, "%s", m.msg);
		if (m.type == PC_SYNC_EXEC_OK) { /* sync 3 */
			sb->forked_ns = m.forked_ns;
			return 0;
		}
	}
}

static pid_t do_clone(const struct pc_sandbox_config *cfg, int *pidfd)
{
	struct clone_args args = {
		.flags = CLONE_NS_FLAGS | CLONE_PIDFD,
		.pidfd = (uint64_t)(uintptr_t)pidfd,
		.exit_signal = SIGCHLD,
	};

	if (cfg->cgroup && cfg->cgroup->clone_fd >= 0) {
		args.flags |= CLONE_INTO_CGROUP;
		args.cgroup = (uint64_t)cfg->cgroup->clone_fd;
	}
	return (pid_t)syscall(SYS_clone3, &args, sizeof(args));
}

static const char *clone_hint(int e)
{
	if (e == EPERM || e == ENOSPC || e == EINVAL)
		return " (user namespaces may be disabled: check 'sysctl kernel.unprivileged_userns_clone' "
		       "and 'user.max_user_namespaces', and AppArmor's "
		       "'kernel.apparmor_restrict_unprivileged_userns')";
	if (e == ENOSYS)
		return " (clone3 needs Linux 5.3 or newer)";
	return "";
}

void pc_sandbox_init(struct pc_sandbox *sb)
{
	*sb = (struct pc_sandbox){
		.pid = -1, .pidfd = -1, .sync_fd = -1, .out_fd = -1, .err_fd = -1, .result_fd = -1, .notify_fd = -1
	};
}

int pc_sandbox_channels(struct pc_sandbox *sb, int *child_sync, int *out_w, int *err_w, int *res_w,
			struct pc_error *err)
{
	int sp[2], p[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return pc_error_set(err, errno, "socketpair");
	sb->sync_fd = sp[0], *child_sync = sp[1];
	if (pipe2(p, O_CLOEXEC) < 0)
		return pc_error_set(err, errno, "pipe");
	sb->out_fd = p[0], *out_w = p[1];
	if (pipe2(p, O_CLOEXEC) < 0)
		return pc_error_set(err, errno, "pipe");
	sb->err_fd = p[0], *err_w = p[1];
	if (pipe2(p, O_CLOEXEC) < 0)
		return pc_error_set(err, errno, "pipe");
	sb->result_fd = p[0], *res_w = p[1];
	return 0;
}

/* The child may have failed on its own (it unshares namespaces while we
 * write its maps): its sync 2 record, queued before it exited, says why
 * better than the write to a dead process does. */
static int child_error_first(struct pc_sandbox *sb, struct pc_error *err)
{
	struct pc_sync_msg m;
	int fd;

	fcntl(sb->sync_fd, F_SETFL, O_NONBLOCK);
	if (pc_sync_recv(sb->sync_fd, &m, &fd) > 0 && m.type == PC_SYNC_ERROR)
		pc_error_set(err, m.errnum, "%s", m.msg);
	if (fd >= 0)
		close(fd);
	return -(err->errnum ? err->errnum : EIO);
}

static int send_sync(struct pc_sandbox *sb, int type, struct pc_error *err)
{
	struct pc_sync_msg m = { .type = type };

	if (send(sb->sync_fd, &m, sizeof(m), MSG_NOSIGNAL) < 0)
		return pc_error_set(err, errno, "release sandbox child");
	return 0;
}

int pc_sandbox_start(const struct pc_sandbox_config *cfg, struct pc_sandbox *sb, struct pc_error *err)
{
	_cleanup_close_ int child_sync = -1, out_w = -1, err_w = -1, res_w = -1;
	int r;

	if ((r = pc_caps_prepare(&sb->caps, err)) < 0)
		return r;
	if ((r = pc_sandbox_channels(sb, &child_sync, &out_w, &err_w, &res_w, err)) < 0)
		return r;

	sb->pid = do_clone(cfg, &sb->pidfd);
	if (sb->pid < 0) {
		int e = errno;
		return pc_error_set(err, e, "clone3 into new namespaces%s", clone_hint(e));
	}
	if (sb->pid == 0) {
		close(sb->sync_fd), close(sb->out_fd), close(sb->err_fd), close(sb->result_fd);
		child_main(cfg, sb, child_sync, out_w, err_w, res_w);
	}
	close(steal_fd(&child_sync)), close(steal_fd(&out_w)), close(steal_fd(&err_w)), close(steal_fd(&res_w));
	if ((r = write_id_maps(cfg, sb->pid, err)) < 0) {
		pc_error_wrap(err, "user namespace id map");
		return child_error_first(sb, err);
	}
	/* sync 1: the child mounts while we attach it. */
	if ((r = send_sync(sb, PC_SYNC_GO, err)) < 0)
		return child_error_first(sb, err);
	if (cfg->cgroup && (r = pc_cgroup_setup_parent(cfg->cgroup, sb->pid, err)) < 0) {
		pc_error_wrap(err, "cgroup");
		return child_error_first(sb, err);
	}
	/* sync 6 */
	if ((r = send_sync(sb, PC_SYNC_ATTACHED, err)) < 0)
		return child_error_first(sb, err);
	fcntl(sb->out_fd, F_SETFL, O_NONBLOCK);
	fcntl(sb->err_fd, F_SETFL, O_NONBLOCK);
	fcntl(sb->result_fd, F_SETFL, O_NONBLOCK);
	return wait_exec(sb, err);
}

void pc_sandbox_kill(struct pc_sandbox *sb)
{
	if (sb->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, sb->pidfd, SIGKILL, NULL, 0);
}

int pc_sandbox_reap(struct pc_sandbox *sb, int *job_status, bool *from_init)
{
	struct pc_sync_msg m;
	int st = 0, fd;
	pid_t p;

	*from_init = false;
	if (sb->pid <= 0)
		return -ECHILD;
	do
		p = waitpid(sb->pid, &st, 0);
	while (p < 0 && errno == EINTR);
	if (p < 0)
		return -errno;
	sb->pid = -1;
	*job_status = st;
	/* sync 4: pid 1 is gone, so whatever it sent is already queued. */
	fcntl(sb->sync_fd, F_SETFL, O_NONBLOCK);
	while (pc_sync_recv(sb->sync_fd, &m, &fd) > 0) {
		if (fd >= 0)
			close(fd);
		if (m.type == PC_SYNC_EXIT) {
			*job_status = m.status;
			*from_init = true;
		}
	}
	return 0;
}

void pc_sandbox_destroy(struct pc_sandbox *sb)
{
	if (sb->pid > 0) {
		int st;
		pc_sandbox_kill(sb);
		while (waitpid(sb->pid, &st, 0) < 0 && errno == EINTR)
			;
		sb->pid = -1;
	}
	cleanup_closep(&sb->pidfd);
	cleanup_closep(&sb->sync_fd);
	cleanup_closep(&sb->out_fd);
	cleanup_closep(&sb->err_fd);
	cleanup_closep(&sb->result_fd);
	cleanup_closep(&sb->notify_fd);
	sb->pidfd = sb->sync_fd = sb->out_fd = sb->err_fd = sb->result_fd = sb->notify_fd = -1;
	pc_caps_free(&sb->caps);
}
