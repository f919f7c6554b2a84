/* Warm mode, host side (docs/warm.md; the zygote's half and the sync table
 * are in runtime/init/zygote.c).
 *
 * A zygote is started like a cold sandbox (pc_sandbox_start, same user,
 * mount, pid, net, ipc, uts and cgroup namespaces, same pivoted read-only
 * root), except that its child keeps CAP_SYS_ADMIN, CAP_NET_ADMIN and
 * CAP_SETPCAP in the zygote's user namespace across the exec of
 * pycell-init --zygote, and loads no policy seccomp filter: the zygote must
 * still make namespaces and mounts for its jobs. It gets the policy filter
 * as BPF once (PC_WARM_SECCOMP) and every job process loads it.
 *
 * Per job the supervisor sends PC_WARM_JOB with the job's descriptors; the
 * job process (pid 2 of the leader's namespaces) answers on the job's own
 * sync socket with its pidfd
 * (PC_WARM_HELLO), which gives the supervisor its host pid for the
 * cgroup v1 attach (v2: for adopting the job group it was cloned into)
 * before anything of the job runs, and a pidfd that
 * pc_pump() polls and pc_sandbox_kill() signals exactly as for cold mode:
 * it is the job process's own (pid 2), so the job ends when that process
 * does, and the leader takes the rest down; the namespaces' teardown is
 * off the job's critical path.
 *
 * On pure cgroup v2 (cgroup_warm.c) the zygote sandbox lives in a tree of
 * its own, delegated to its uid, and every job process is clone3()d with
 * CLONE_INTO_CGROUP into a job group made ahead: with PC_WARM_SECCOMP the
 * zygote gets its first spare's group, with each PC_WARM_JOB the next
 * spare's (PC_WARM_FD_CGROUP). The job process's handler learns from the
 * kernel which group that is (/proc/PID/cgroup), writes the job's limits
 * there before sync 1, and removes the group after the job. */
#define _GNU_SOURCE
#include "zygote.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec_filter.h"
#include "image.h"
#include "init/zygote_proto.h"
#include "run.h"
#include "sync.h"
#include "util.h"

#define WARM_MAIN	 PC_SANDBOX_SHIM "/pycell_warm.py"
#define LEADER_TIMEOUT_S 10 /* a leader that has not answered by then: anomaly */

int pc_zygote_caps_child(struct pc_error *err)
{
	static const int keep[] = { CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SETPCAP };
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = { { 0 } };
	size_t i;

	if (syscall(SYS_capget, &h, d) < 0)
		return pc_error_set(err, errno, "capget");
	/* Ambient capabilities must be permitted and inheritable
	 * (capabilities(7), "Ambient capability set"). */
	d[0].inheritable = d[1].inheritable = 0;
	for (i = 0; i < ARRAY_SIZE(keep); i++)
		d[keep[i] / 32].inheritable |= 1U << (keep[i] % 32);
	if (syscall(SYS_capset, &h, d) < 0)
		return pc_error_set(err, errno, "capset inheritable");
	for (i = 0; i < ARRAY_SIZE(keep); i++) {
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, keep[i], 0, 0) < 0)
			return pc_error_set(err, errno, "raise ambient capability %d", keep[i]);
	}
	return 0;
}

void pc_zygote_init(struct pc_zygote *z)
{
	*z = (struct pc_zygote){ 0 };
	z->cg.clone_fd = -1;
	pc_sandbox_init(&z->sb);
	pc_lease_init(&z->lease);
}

static int memfd_of(const char *name, const void *data, size_t len, struct pc_error *err)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int r;

	if (fd < 0)
		return pc_error_set(err, errno, "memfd_create %s", name);
	if ((len && (r = write_all(fd, data, len)) < 0) ||
	    (r = fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)) < 0) {
		r = r < 0 && r != -1 ? -r : errno;
		close(fd);
		return pc_error_set(err, r, "fill memfd %s", name);
	}
	lseek(fd, 0, SEEK_SET);
	return fd;
}

_Static_assert(PC_WARM_MAX_FDS <= PC_MAX_PASSED_FDS, "send_fds carries every descriptor of a request");

/* The policy's seccomp filter, built here as for a cold job, handed over
 * once; on cgroup v2 with the group of the zygote's first spare. */
static int send_policy_filter(struct pc_zygote *z, const struct pc_policy *pol, struct pc_error *err)
{
	struct pc_warm_req q = { .type = PC_WARM_SECCOMP };
	struct pc_seccomp sc = { 0 };
	_cleanup_close_ int fd = -1, cg = -1;
	int r = 0, n = 1;

	/* Always sent, empty when there is no filter: the zygote makes no job
	 * process before it has this record. */
	if (pol->seccomp[0] && (r = pc_seccomp_prepare(&sc, pol->seccomp, err)) < 0)
		return pc_error_wrap(err, "seccomp");
	if (sc.enabled) {
		z->seccomp_insns = sc.prog.len;
		z->seccomp_cached = sc.cached;
	}
	r = fd = memfd_of("pycell-seccomp", sc.enabled ? (const void *)sc.prog.filter : "",
			  sc.enabled ? sc.prog.len * sizeof(*sc.prog.filter) : 0, err);
	if (r >= 0 && z->cg.clone_fd >= 0)
		r = cg = pc_cgroup_tree_group(&z->cg, err), n = 2;
	if (r >= 0 && (r = send_fds(z->sb.sync_fd, &q, sizeof(q), (int[]){ fd, cg }, n)) < 0)
		pc_error_set(err, -r, "hand the seccomp filter to the zygote");
	pc_seccomp_free(&sc);
	return r < 0 ? r : 0;
}

/* A zygote that died starting up: its last words (a Python traceback from
 * pycell_warm.py) go into the error. */
static void zygote_stderr(struct pc_zygote *z, struct pc_error *err)
{
	char buf[256];
	ssize_t n;

	if (z->sb.err_fd < 0)
		return;
	fcntl(z->sb.err_fd, F_SETFL, O_NONBLOCK);
	n = read(z->sb.err_fd, buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = '\0';
		pc_error_wrap(err, "zygote said '%s'", buf);
	}
}

int pc_zygote_start(struct pc_zygote *z, const struct pc_policy *pol, const struct pc_paths *paths, const char *rootfs,
		    struct pc_error *err)
{
	static char *argv[] = { PC_SANDBOX_INIT, "--zygote", WARM_MAIN, NULL };
	static const struct pc_rlimit no_core = { RLIMIT_CORE, { 0, 0 } };
	_cleanup_close_ int in_fd = -1, boot_fd = -1, filter_fd = -1;
	_cleanup_free_ char *boot = NULL;
	struct pc_sandbox_config cfg = { 0 };
	struct pc_image img;
	char img_root[64];
	int r;

	pc_image_init(&img);
	if (asprintf(&boot, "{\"python\": %s}", pol->python_json ? pol->python_json : "{}") < 0)
		return pc_error_set(err, ENOMEM, "zygote bootstrap");
	if ((r = pc_image_prepare_rootfs(&img, rootfs, err)) < 0 ||
	    (r = pc_embed_check_rootfs(pc_image_root(&img, rootfs, img_root, sizeof(img_root)), err)) < 0 ||
	    (r = in_fd = memfd_of("pycell-input", "", 0, err)) < 0 ||
	    (r = boot_fd = memfd_of("pycell-bootstrap", boot, strlen(boot), err)) < 0 ||
	    (r = filter_fd = pc_exec_filter_prepare(err)) < 0)
		goto out;
	cfg.mounts = (struct pc_mount_plan){ .rootfs = rootfs,
					     .init_path = paths->init,
					     .shim_dir = paths->shim,
					     .tmpfs_bytes = 1 << 20,
					     .tmpfs_inodes = 64,
					     .uid = PC_SANDBOX_UID,
					     .gid = PC_SANDBOX_UID };
	pc_image_plan(&img, &cfg.mounts);
	cfg.rootless = geteuid() != 0;
	cfg.host_uid = geteuid(), cfg.host_gid = getegid();
	if (!cfg.rootless) {
		/* One leased uid for the zygote's life; all its jobs share it
		 * (docs/warm.md, "What jobs share"). */
		if ((r = pc_lease_acquire(&z->lease, err)) < 0)
			goto out;
		cfg.host_uid = z->lease.uid, cfg.host_gid = (gid_t)z->lease.uid;
	}
	if ((r = pc_cgroup_tree_prepare(&z->cg, cfg.host_uid, err)) < 0)
		goto out;
	cfg.cgroup = z->cg.clone_fd >= 0 ? &z->cg : NULL;
	cfg.stdin_fd = in_fd, cfg.bootstrap_fd = boot_fd, cfg.exec_filter_fd = filter_fd;
	cfg.argv = argv;
	cfg.envp = pc_run_job_env();
	cfg.rlimits = &no_core, cfg.n_rlimits = 1;
	cfg.zygote = true;
	if ((r = pc_sandbox_start(&cfg, &z->sb, err)) < 0) {
		zygote_stderr(z, err);
		pc_error_wrap(err, "start zygote");
		goto out;
	}
	/* Nothing the zygote prints after this is read: close the pipes so it
	 * can never block on them (Python ignores SIGPIPE: EPIPE). Its jobs
	 * get their own. */
	cleanup_closep(&z->sb.out_fd), z->sb.out_fd = -1;
	cleanup_closep(&z->sb.err_fd), z->sb.err_fd = -1;
	cleanup_closep(&z->sb.result_fd), z->sb.result_fd = -1;
	if ((r = pc_cgroup_tree_settle(&z->cg, z->sb.pid, err)) < 0)
		goto out;
	r = send_policy_filter(z, pol, err);
out:
	pc_image_close(&img);
	if (r < 0)
		pc_zygote_stop(z);
	return r < 0 ? r : 0;
}

/* The job's files as one memfd: {u32 name_len, u32 data_len, name, data}... */
static int files_memfd(const struct pc_sandbox_config *cfg, struct pc_error *err)
{
	int fd = memfd_create("pycell-files", MFD_CLOEXEC);
	size_t i;

	if (fd < 0)
		return pc_error_set(err, errno, "memfd_create files");
	for (i = 0; i < cfg->n_files; i++) {
		const struct pc_file *f = &cfg->files[i];
		uint32_t hdr[2] = { (uint32_t)strlen(f->name), (uint32_t)f->len };
		int r;

		if ((r = write_all(fd, hdr, sizeof(hdr))) < 0 || (r = write_all(fd, f->name, hdr[0])) < 0 ||
		    (r = write_all(fd, f->data, f->len)) < 0) {
			close(fd);
			return pc_error_set(err, -r, "write job files");
		}
	}
	return fd;
}

/* The host pid behind a pidfd (proc(5), /proc/PID/fdinfo "Pid:"),
 * translated into our pid namespace by the kernel. */
static pid_t pidfd_pid(int pidfd)
{
	char path[64], buf[1024];
	_cleanup_close_ int fd = -1;
	ssize_t n;
	char *p;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || (n = read(fd, buf, sizeof(buf) - 1)) <= 0)
		return -1;
	buf[n] = '\0';
	p = strstr(buf, "\nPid:");
	return p ? (pid_t)atoi(p + 5) : -1;
}

bool pc_zygote_job_rlimit(int resource, bool cgroup)
{
	/* RLIMIT_NPROC counts per uid per user namespace, and all the
	 * zygote's jobs share both: one job's fork bomb would fail the
	 * forks of the others. Where the pids cgroup bounds each job,
	 * it alone does; without one, the shared count is the bound. */
	return !(resource == RLIMIT_NPROC && cgroup);
}

/* sync W, then sync 1: the leader is in the job's cgroup before it runs. */
static int leader_hello(struct pc_zygote *z, const struct pc_sandbox_config *cfg, struct pc_sandbox *sb,
			struct pc_error *err)
{
	struct pc_sync_msg m, go = { .type = PC_SYNC_GO };
	int fd, r = pc_sync_recv(sb->sync_fd, &m, &fd);
	pid_t host_pid;

	if (r <= 0 || m.type != PC_WARM_HELLO || fd < 0) {
		if (fd >= 0)
			close(fd);
		z->broken = true;
		if (r > 0 && m.type == PC_SYNC_ERROR)
			return pc_error_set(err, m.errnum, "%s", m.msg);
		return pc_error_set(err, r < 0 ? -r : EPIPE, "the zygote did not start a job leader%s",
				    r == -EAGAIN ? " in time" : "");
	}
	sb->pidfd = fd;
	if ((host_pid = pidfd_pid(fd)) <= 0)
		return pc_error_set(err, ESRCH, "job leader's pid");
	if (cfg->cgroup && (r = pc_cgroup_setup_parent(cfg->cgroup, host_pid, err)) < 0)
		return pc_error_wrap(err, "cgroup");
	/* sync 1 */
	if (send(sb->sync_fd, &go, sizeof(go), MSG_NOSIGNAL) < 0)
		return pc_error_set(err, errno, "release job leader");
	return 0;
}

static int leader_ready(struct pc_zygote *z, struct pc_sandbox *sb, struct pc_error *err)
{
	struct pc_sync_msg m;

	for (;;) {
		int fd, r = pc_sync_recv(sb->sync_fd, &m, &fd);

		/* sync 5: the job process's last set-up step (nothing after it
		 * can fail), so the job runs from here; sync 3 follows. */
		if (fd >= 0 && m.type == PC_SYNC_SECCOMP_FD && sb->notify_fd < 0) {
			sb->notify_fd = fd;
			return 0;
		}
		if (fd >= 0)
			close(fd);
		if (r <= 0) {
			z->broken = true;
			return pc_error_set(err, r < 0 ? -r : EPIPE, "warm job leader exited during setup");
		}
		if (m.type == PC_SYNC_ERROR) { /* sync 2 */
			z->broken = true;
			return pc_error_set(err, m.errnum, "%s", m.msg);
		}
		if (m.type == PC_SYNC_EXEC_OK) /* sync 3 */
			return 0;
	}
}

int pc_zygote_start_job(struct pc_zygote *z, const struct pc_sandbox_config *cfg, struct pc_sandbox *sb,
			struct pc_error *err)
{
	_cleanup_close_ int child_sync = -1, out_w = -1, err_w = -1, res_w = -1, files = -1, cg_next = -1;
	struct pc_warm_req q = { .type = PC_WARM_JOB,
				 .tmpfs_bytes = cfg->mounts.tmpfs_bytes,
				 .tmpfs_inodes = cfg->mounts.tmpfs_inodes };
	struct timeval tv = { .tv_sec = LEADER_TIMEOUT_S };
	int fds[PC_WARM_MAX_FDS], nfds = PC_WARM_NFDS, r;
	size_t i;

	if (z->sb.sync_fd < 0)
		return z->broken = true, pc_error_set(err, EPIPE, "no zygote");
	for (i = 0; i < cfg->n_rlimits && q.n_rlimits < PC_WARM_MAX_RLIMITS; i++) {
		if (!pc_zygote_job_rlimit(cfg->rlimits[i].resource, cfg->cgroup != NULL))
			continue;
		q.rl[q.n_rlimits].resource = cfg->rlimits[i].resource;
		q.rl[q.n_rlimits].cur = cfg->rlimits[i].lim.rlim_cur;
		q.rl[q.n_rlimits].max = cfg->rlimits[i].lim.rlim_max;
		q.n_rlimits++;
	}
	q.landlock_abi = cfg->landlock && cfg->landlock->enabled ? cfg->landlock->abi : 0;
	q.seccomp_insns = z->seccomp_insns;
	if ((r = pc_sandbox_channels(sb, &child_sync, &out_w, &err_w, &res_w, err)) < 0)
		return r;
	if ((files = files_memfd(cfg, err)) < 0)
		return files;
	fds[PC_WARM_FD_STDIN] = cfg->stdin_fd, fds[PC_WARM_FD_STDOUT] = out_w, fds[PC_WARM_FD_STDERR] = err_w;
	fds[PC_WARM_FD_BOOTSTRAP] = cfg->bootstrap_fd, fds[PC_WARM_FD_RESULT] = res_w;
	fds[PC_WARM_FD_SYNC] = child_sync, fds[PC_WARM_FD_FILES] = files;
	/* cgroup v2: the group of the spare the zygote makes after this job
	 * (left to the tree's removal when nobody adopts it). */
	if (z->cg.clone_fd >= 0) {
		if ((cg_next = pc_cgroup_tree_group(&z->cg, err)) < 0)
			return cg_next;
		fds[nfds++] = cg_next;
	}
	if ((r = send_fds(z->sb.sync_fd, &q, sizeof(q), fds, nfds)) < 0) {
		z->broken = true;
		return pc_error_set(err, -r, "hand the job to the zygote");
	}
	close(steal_fd(&child_sync)), close(steal_fd(&out_w)), close(steal_fd(&err_w)), close(steal_fd(&res_w));
	setsockopt(sb->sync_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	z->jobs++;
	if ((r = leader_hello(z, cfg, sb, err)) < 0 || (r = leader_ready(z, sb, err)) < 0)
		return r;
	fcntl(sb->out_fd, F_SETFL, O_NONBLOCK);
	fcntl(sb->err_fd, F_SETFL, O_NONBLOCK);
	fcntl(sb->result_fd, F_SETFL, O_NONBLOCK);
	return 0;
}

int pc_zygote_reap(struct pc_sandbox *sb, int *job_status, bool *from_init)
{
	struct pc_sync_msg m;
	int fd;

	/* The job process is gone (its pidfd said so); its leader kills and
	 * reaps the rest, then sends sync 4 (blocking, SO_RCVTIMEO bounds it).
	 * Without that record the leader itself was killed. */
	*job_status = SIGKILL;
	*from_init = false;
	while (!*from_init && pc_sync_recv(sb->sync_fd, &m, &fd) > 0) {
		if (fd >= 0)
			close(fd);
		if (m.type == PC_SYNC_EXIT) { /* sync 4 */
			*job_status = m.status;
			*from_init = true;
		}
	}
	return 0;
}

void pc_zygote_retire(struct pc_zygote *z)
{
	cleanup_closep(&z->sb.sync_fd);
	z->sb.sync_fd = -1;
}

void pc_zygote_stop(struct pc_zygote *z)
{
	pc_zygote_retire(z);
	pc_sandbox_destroy(&z->sb);
	/* Its tree, spare groups and all; then its uid owns no process. */
	pc_cgroup_destroy(&z->cg);
	pc_lease_release(&z->lease);
}
