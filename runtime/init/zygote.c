/* pycell-init --zygote SCRIPT: the warm pool's pre-initialised interpreter
 * (DESIGN.md section 6, docs/warm.md).
 *
 * Processes, per zygote sandbox (its user, mount, pid, net... namespaces
 * were made by the supervisor exactly as for a cold job, sandbox.c):
 *   zygote  pid 1 of the zygote sandbox. Keeps CAP_SYS_ADMIN, CAP_NET_ADMIN
 *           and CAP_SETPCAP in its user namespace (ambient, raised by the
 *           sandbox child before exec: sandbox.c, pc_zygote_caps_child) and
 *           the exec filter; no policy seccomp, since it must still make
 *           namespaces and mounts. It initialises Python, imports the shim
 *           and the policy's modules (SCRIPT, pycell_warm.py), then calls
 *           _pycell_zygote.serve(), which never returns in the zygote
 *           until the supervisor closes the control socket. It never runs
 *           job code: it only reads fixed-size records and clone3()s.
 *   leader  per job: clone3(CLONE_VM|NEWPID|NEWNS|NEWNET|NEWIPC|NEWUTS)
 *           of the zygote, so pid 1 of the job's own namespaces, running
 *           in the zygote's memory on a stack of its own (rawsys.h): the
 *           zygote's page tables are copied once per job, for the job
 *           process, not twice. Plain C, never touches Python. A spare is
 *           made ahead of each job: the zygote waits while its leader
 *           forks the job process (a consistent copy of the zygote), then
 *           both run side by side, so from there on the leader makes raw
 *           system calls only (no libc errno, no globals). It drops its
 *           capabilities at once, takes the job's sync socket from its job
 *           process when a job comes, and reaps like cold pycell-init; when
 *           the job process ends it kills and reaps the rest, then
 *           reports. The memory it shares is not dumpable (pycell-init's
 *           first step, checked in pc_zygote_main), so a job cannot read
 *           or write it through /proc/1/mem or ptrace.
 *   job     pid 2, forked by its leader on the leader's stack; it returns
 *           to the zygote's stack (siglongjmp) only once it has its job.
 *           As a spare, it copies the zygote's pages jobs write
 *           (prefault.c), mounts a proc of its pid namespace (the
 *           zygote unmounted its own tmpfs once: unmount_own_tmpfs),
 *           brings lo up and sets the hostname, then
 *           waits for the request the zygote forwards to it: mounts a
 *           fresh tmpfs workdir, /tmp and /dev/shm, hands the job's sync
 *           socket to its leader, then:
 *           chdir to the fresh workdir, writes the job's files,
 *           sets its rlimits, moves the job's fds to 0..5 (sync.h) and
 *           closes the rest, sends its own pidfd (the supervisor attaches it to the
 *           job's cgroup, v1, or adopts the group it was born in, v2, and
 *           watches it as the job's life), waits for GO, roots a cgroup
 *           namespace at its group, drops every capability (bounding,
 *           ambient, securebits locked),
 *           no_new_privs, gets a fresh audit-hook word, loads the policy
 *           seccomp filter (listener to the supervisor) and returns into
 *           Python, which runs the shim's main() on fds 3 and 4.
 *
 * cgroups. v1: the supervisor makes the job's groups and attaches the job
 * process by pid at sync W. Pure v2 (runtime/cgroup_warm.c has the layout
 * and the kernel's permission rules): the zygote runs in the leaf of a tree
 * of its own, <parent>/zygote-<pid>-<hex>/zygote, whose cgroup.procs its
 * host uid owns, and its cgroup namespace is rooted at the tree (nsdelegate
 * wants source and destination of a clone under it). Every job process
 * is clone3()d by its leader with CLONE_INTO_CGROUP (fork_into) into a job
 * group of that tree that the supervisor made ahead (sibling of the leaf,
 * only its cgroup.procs the zygote uid's, the limits root's) and handed
 * over by SCM_RIGHTS: the first with PC_WARM_SECCOMP, each next one with
 * the job before it (PC_WARM_FD_CGROUP), since a spare exists before its
 * job does. The job process is born there, the leader stays in the leaf
 * (it shares the zygote's memory: an OOM kill of it would be the
 * zygote's); the supervisor finds the group from /proc/PID/cgroup at sync W
 * and writes the job's limits before sync 1. The job process roots its cgroup namespace at its group with
 * unshare(CLONE_NEWCGROUP) after sync 1, while it still holds
 * CAP_SYS_ADMIN, on v1 and v2 alike: it sees "0::/". (A leader cloned with
 * CLONE_NEWCGROUP | CLONE_INTO_CGROUP would get one rooted at its new group
 * too, not at ours, although copy_namespaces() runs first: cgroup_post_fork()
 * re-roots it; checked in the qemu lane.) No cgroupfs is mounted in the
 * zygote or a job; the group descriptor never reaches a job process (the
 * leader closes it at the fork, close_range in leader_fds()).
 *
 * Sync points (sandbox.c numbering; the job's own sync socket):
 *   sync W  job -> supervisor     PC_WARM_HELLO + its pidfd
 *   sync 1  supervisor -> job     PC_SYNC_GO: the cgroup is attached (v1),
 *                                 or adopted with its limits written (v2)
 *   sync 2  leader/job -> super.  PC_SYNC_ERROR
 *   sync 5  job -> supervisor     PC_SYNC_SECCOMP_FD
 *   sync 3  leader -> supervisor  PC_SYNC_EXEC_OK (also the zygote's "ready")
 *   sync 4  leader -> supervisor  PC_SYNC_EXIT */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <net/if.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "embed.h"
#include "landlock.h"
#include "prefault.h"
#include "rawsys.h"
#include "sync.h"
#include "zygote.h"
#include "zygote_proto.h"

#define JOB_UID	 1000 /* PC_SANDBOX_UID */
#define NS_FLAGS (CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)

static const char *const tmpfs_dirs[] = { "/workspace", "/tmp", "/dev/shm" };
static struct sock_filter policy_insns[BPF_MAXINSNS];
static struct sock_fprog policy_prog; /* .len 0: the supervisor sent none */

static void send_rec(int fd, int type, int errnum, int status, const char *msg, int pass_fd)
{
	struct pc_sync_msg m = { .type = type, .errnum = errnum, .status = status };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (msg)
		snprintf(m.msg, sizeof(m.msg), "%s", msg);
	if (pass_fd >= 0) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
	}
	while (RAWSYS(SYS_sendmsg, fd, &mh, MSG_NOSIGNAL) == -EINTR)
		;
}

static void __attribute__((noreturn)) leader_fail(int sync_fd, const char *step, int errnum)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "warm job leader: %s", step);
	/* sync 2 */
	send_rec(sync_fd, PC_SYNC_ERROR, errnum, 0, buf, -1);
	_exit(125);
}

/* The capabilities left in the bounding set, a bit each. The zygote keeps
 * only those it holds (shrink_bounding), so a job's leader and job process
 * each drop those few, not every one with a system call apiece. */
static uint64_t bounding_left = ~0ULL;

/* Once, before any spare: the zygote never execs, and the bounding set
 * only limits what an exec or capset could gain. */
static bool shrink_bounding(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = { { 0 } };
	uint64_t held, left = 0;

	if (syscall(SYS_capget, &h, d) < 0)
		return false;
	held = d[0].permitted | (uint64_t)d[1].permitted << 32;
	for (int v = 0; v < 64; v++) {
		if (held & (1ULL << v)) {
			left |= 1ULL << v;
			continue;
		}
		if (prctl(PR_CAPBSET_DROP, v, 0, 0, 0) == 0)
			continue;
		if (errno != EINVAL)
			return false;
		break; /* past the kernel's last capability */
	}
	bounding_left = left;
	return true;
}

/* Every capability, for good: what is left of the bounding set first (it
 * needs CAP_SETPCAP), securebits locked so nothing is regained (caps.c).
 * Raw system calls: a leader runs this beside the zygote (rawsys.h). */
static int drop_caps(void)
{
	const unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
				   SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
				   SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = { { 0 } };
	long r;

	for (int v = 0; v < 64; v++) {
		if ((bounding_left & (1ULL << v)) && (r = RAWSYS(SYS_prctl, PR_CAPBSET_DROP, v, 0)) < 0 && r != -EINVAL)
			return (int)r;
	}
	if ((r = RAWSYS(SYS_prctl, PR_SET_SECUREBITS, bits, 0)) < 0 ||
	    (r = RAWSYS(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0)) < 0 ||
	    (r = RAWSYS(SYS_capset, &h, d, 0)) < 0 || (r = RAWSYS(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0)) < 0)
		return (int)r;
	return 0;
}

static void leader_wait_go(int sync_fd)
{
	struct pc_sync_msg m;
	ssize_t n;
	int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);

	if (pidfd < 0)
		leader_fail(sync_fd, "pidfd_open", errno);
	/* sync W */
	send_rec(sync_fd, PC_WARM_HELLO, 0, 0, NULL, pidfd);
	close(pidfd);
	/* sync 1 */
	do
		n = recv(sync_fd, &m, sizeof(m), 0);
	while (n < 0 && errno == EINTR);
	if (n != sizeof(m) || m.type != PC_SYNC_GO)
		_exit(125); /* the supervisor gave up on this job */
}

/* pid 2: the last steps before Python runs the job. Returns only on
 * success; status_w gets a record (pid 1 reports it) otherwise. */
static void job_setup(int status_w, int landlock_abi, unsigned seccomp_insns)
{
	struct pc_landlock ll = { .enabled = landlock_abi > 0, .abi = landlock_abi };
	struct pc_error e = { 0 };
	int r, listener;

	sigprocmask(SIG_SETMASK, &(sigset_t){ { 0 } }, NULL);
	/* Fail closed: never run a job under another filter than the one its
	 * supervisor reports in the result. */
	if (policy_prog.len != seccomp_insns) {
		pc_init_report(status_w, EINVAL,
			       "warm job: the zygote holds a %u-instruction seccomp filter, the supervisor expects %u",
			       (unsigned)policy_prog.len, seccomp_insns);
		_exit(125);
	}
	leader_wait_go(PC_FD_SYNC);
	/* A cgroup namespace rooted at the job's group, now that we are in it. */
	if (unshare(CLONE_NEWCGROUP) < 0) {
		pc_init_report(status_w, errno, "warm job: unshare cgroup namespace");
		_exit(125);
	}
	if ((r = drop_caps()) < 0) {
		pc_init_report(status_w, -r, "warm job: drop capabilities");
		_exit(125);
	}
	pc_embed_fresh_trip_word();
	/* The cold ruleset over this job's own fresh mounts (needs
	 * no_new_privs, set by drop_caps). */
	if (pc_landlock_setup_child(&ll, &e) < 0) {
		pc_init_report(status_w, e.errnum, "warm job: %s", e.msg);
		_exit(125);
	}
	if (policy_prog.len) {
		listener =
		    (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &policy_prog);
		if (listener < 0) {
			pc_init_report(status_w, errno, "warm job: load seccomp filter");
			_exit(125);
		}
		/* sync 5: the supervisor keeps the only copy. */
		send_rec(PC_FD_SYNC, PC_SYNC_SECCOMP_FD, 0, 0, NULL, listener);
		close(listener);
	}
	close(PC_FD_SYNC);
	close(status_w); /* EOF: pid 1 reports the job as running */
}

static int mount_tmpfs(const char *dst, const char *mode, const struct pc_warm_req *q)
{
	char opts[160];

	snprintf(opts, sizeof(opts), "size=%llu,nr_inodes=%llu,%s", (unsigned long long)q->tmpfs_bytes,
		 (unsigned long long)q->tmpfs_inodes, mode);
	return mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts);
}

/* The fresh per-job filesystem state: over the zygote's (already
 * pivoted, read-only) root, new tmpfs for everything writable, and a proc
 * that shows this pid namespace only. */
static void leader_mounts(int sync_fd, const struct pc_warm_req *q)
{
	char uidopt[64];

	snprintf(uidopt, sizeof(uidopt), "mode=0700,uid=%d,gid=%d", JOB_UID, JOB_UID);
	if (mount_tmpfs("/workspace", uidopt, q) < 0)
		leader_fail(sync_fd, "mount tmpfs on '/workspace'", errno);
	if (mount_tmpfs("/tmp", "mode=1777", q) < 0)
		leader_fail(sync_fd, "mount tmpfs on '/tmp'", errno);
	if (mount_tmpfs("/dev/shm", "mode=1777", q) < 0)
		leader_fail(sync_fd, "mount tmpfs on '/dev/shm'", errno);
	if (chdir("/workspace") < 0)
		leader_fail(sync_fd, "chdir /workspace", errno);
}

static const char *lo_up(void)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	const char *failed = NULL;

	if (s < 0)
		return "socket for lo";
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		failed = "get lo flags";
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (!failed && ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		failed = "bring lo up";
	close(s);
	return failed;
}

/* What the job's namespaces need before any job: done by a spare's job
 * process while it waits for one. Returns the failed step (errno set), or
 * NULL. */
static const char *ns_prepare(void)
{
	const char *failed;

	/* proc stays under the new one: in a user namespace a new proc needs
	 * a visible one (mounts.c). */
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "subset=pid") < 0)
		return "mount proc (subset=pid)";
	if ((failed = lo_up()))
		return failed;
	if (sethostname("pycell", 6) < 0)
		return "sethostname";
	return NULL;
}

/* The job's files: {u32 name_len, u32 data_len, name, data}..., names
 * validated by the supervisor (no '/', no ".."), created O_EXCL|O_NOFOLLOW
 * in the fresh workdir. */
static void leader_files(int sync_fd, int files_fd)
{
	struct stat st;
	const unsigned char *p, *end;
	void *map;

	if (fstat(files_fd, &st) < 0)
		leader_fail(sync_fd, "stat job files", errno);
	if (st.st_size == 0)
		return;
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, files_fd, 0);
	if (map == MAP_FAILED)
		leader_fail(sync_fd, "map job files", errno);
	for (p = map, end = p + st.st_size; end - p >= 8;) {
		uint32_t nl, dl;
		char name[256];
		int fd;

		memcpy(&nl, p, 4), memcpy(&dl, p + 4, 4);
		p += 8;
		if (nl == 0 || nl >= sizeof(name) || (size_t)(end - p) < (size_t)nl + dl)
			leader_fail(sync_fd, "job files record", EINVAL);
		memcpy(name, p, nl), name[nl] = '\0';
		fd = openat(AT_FDCWD, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, p + nl, dl) != (ssize_t)dl)
			leader_fail(sync_fd, "create job file", errno);
		close(fd);
		p += nl + dl;
	}
	munmap(map, (size_t)st.st_size);
}

/* fds[] to 0..5 (sync.h layout; no exec filter fd: the zygote loaded it),
 * every other descriptor closed (the zygote's control socket above all). */
static void leader_fds(int *fds, int keep_as_6)
{
	int src[6] = { fds[PC_WARM_FD_STDIN],	  fds[PC_WARM_FD_STDOUT], fds[PC_WARM_FD_STDERR],
		       fds[PC_WARM_FD_BOOTSTRAP], fds[PC_WARM_FD_RESULT], fds[PC_WARM_FD_SYNC] };
	int tmp[6], i;

	for (i = 0; i < 6; i++) {
		tmp[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 100);
		if (tmp[i] < 0)
			leader_fail(fds[PC_WARM_FD_SYNC], "dup job fd", errno);
	}
	for (i = 0; i < 6; i++) {
		if (dup2(tmp[i], i) < 0)
			leader_fail(fds[PC_WARM_FD_SYNC], "dup2 job fd", errno);
	}
	if (keep_as_6 >= 0 && dup2(keep_as_6, 6) < 0)
		leader_fail(PC_FD_SYNC, "dup2 status fd", errno);
	if (syscall(SYS_close_range, keep_as_6 >= 0 ? 7 : 6, ~0U, 0) < 0)
		leader_fail(PC_FD_SYNC, "close_range", errno);
	lseek(PC_FD_STDIN, 0, SEEK_SET);
	lseek(PC_FD_BOOTSTRAP, 0, SEEK_SET);
}

/* Until the job process ends, or its supervisor does (the job's sync
 * socket hangs up): a cold job dies with its supervisor (parent-death
 * signal), so a warm one must too, or nothing would bound it any more.
 * The leader's: raw system calls only (rawsys.h). */
static void wait_job_or_supervisor(pid_t job, int sync_fd)
{
	long pidfd = RAWSYS(SYS_pidfd_open, job, 0, 0);

	if (pidfd < 0)
		return; /* wait4 alone, then */
	for (;;) {
		struct pollfd p[2] = { { .fd = (int)pidfd, .events = POLLIN }, { .fd = sync_fd, .events = POLLRDHUP } };
		long r = RAWSYS(SYS_ppoll, p, 2, NULL);

		if (r < 0 && r != -EINTR)
			break;
		if (p[0].revents & POLLIN)
			break;
		if (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
			RAWSYS(SYS_kill, -1, SIGKILL, 0);
			break;
		}
	}
	RAWSYS(SYS_close, pidfd, 0, 0);
}

static void leader_rlimits(int sync_fd, const struct pc_warm_req *q)
{
	for (uint32_t i = 0; i < q->n_rlimits && i < PC_WARM_MAX_RLIMITS; i++) {
		struct rlimit rl = { (rlim_t)q->rl[i].cur, (rlim_t)q->rl[i].max };
		if (setrlimit(q->rl[i].resource, &rl) < 0)
			leader_fail(sync_fd, "setrlimit", errno);
	}
}

/* pid 1 once the job process has its job (capabilities already dropped):
 * reports the job's start (or its set-up error), reaps, reports its end.
 * Runs beside the zygote in its memory: raw system calls only. */
static void __attribute__((noreturn)) leader_supervise(pid_t job, int status_r, int sync_fd)
{
	struct pc_init_status st;
	int status = 0;
	long n;

	do
		n = RAWSYS(SYS_read, status_r, &st, sizeof(st));
	while (n == -EINTR);
	RAWSYS(SYS_close, status_r, 0, 0);
	if (n == (long)sizeof(st)) {
		st.msg[sizeof(st.msg) - 1] = '\0';
		send_rec(sync_fd, PC_SYNC_ERROR, st.errnum, 0, st.msg, -1);
		_exit(125);
	}
	/* sync 3 */
	send_rec(sync_fd, PC_SYNC_EXEC_OK, 0, 0, NULL, -1);
	wait_job_or_supervisor(job, sync_fd);
	for (;;) {
		int s;
		long p = pc_rawsys(SYS_wait4, -1, (long)&s, 0, 0, 0);

		if (p == -EINTR)
			continue;
		if (p < 0)
			break;
		if (p == job) {
			status = s;
			/* The job's life is its process's (as cold): the rest
			 * goes with it, and is reaped before sync 4 so the
			 * supervisor finds the job's cgroup empty. */
			RAWSYS(SYS_kill, -1, SIGKILL, 0);
		}
	}
	/* sync 4 */
	send_rec(sync_fd, PC_SYNC_EXIT, 0, status, NULL, -1);
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

static int recv_req(int sock, struct pc_warm_req *q, int *fds, int *nfds);

/* cgroup v2: the job group the next spare's job process is cloned into,
 * -1: none. groups: the supervisor sends them (it does on pure v2 only).
 * tid_addr: glibc's tid word of our thread (PR_GET_TID_ADDRESS), which a
 * fork's child must have its own tid in (fork_into). */
static int next_group = -1;
static bool groups;
static uint64_t tid_addr;

static void group_used(void)
{
	if (next_group >= 0)
		close(next_group);
	next_group = -1;
}

static void group_keep(int fd)
{
	group_used();
	next_group = fd;
}

static void load_policy_filter(int fd)
{
	size_t got = 0;
	ssize_t n;

	while ((n = pread(fd, (char *)policy_insns + got, sizeof(policy_insns) - got, (off_t)got)) > 0)
		got += (size_t)n;
	if (got && got % sizeof(struct sock_filter) == 0) {
		policy_prog.len = (unsigned short)(got / sizeof(struct sock_filter));
		policy_prog.filter = policy_insns;
	}
}

static int recv_req(int sock, struct pc_warm_req *q, int *fds, int *nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * PC_WARM_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = q, .iov_len = sizeof(*q) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);

	*nfds = 0;
	if (n <= 0)
		return n < 0 ? -errno : 0;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			for (int i = 0; i < k; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				if (*nfds < PC_WARM_MAX_FDS)
					fds[(*nfds)++] = fd;
				else
					close(fd);
			}
		}
	}
	if (n != (ssize_t)sizeof(*q) || (mh.msg_flags & MSG_CTRUNC))
		q->type = 0; /* malformed: dropped */
	return 1;
}

/* The zygote's end of its spare leader's channel; -1: none. */
static int spare_fd = -1;

/* One request and its descriptors over a SEQPACKET socket. */
static bool send_req(int sock, const struct pc_warm_req *q, const int *fds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * PC_WARM_NFDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = (void *)q, .iov_len = sizeof(*q) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	ssize_t n;

	memset(u.buf, 0, sizeof(u.buf));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * PC_WARM_NFDS);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * PC_WARM_NFDS);
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(*q);
}

/* Hands the request and its descriptors to the spare; false when there is
 * none or it is gone. */
static bool forward_to_spare(const struct pc_warm_req *q, const int *fds)
{
	bool ok;

	if (spare_fd < 0)
		return false;
	ok = send_req(spare_fd, q, fds);
	close(spare_fd);
	spare_fd = -1;
	return ok;
}

/* The spare's job process, forked ahead too: takes the request its leader
 * forwards, places its files, limits and fds itself, then job_setup().
 * Returns true in it (about to run the job), false when no job came. */
static bool spare_job_process(int sp, int jc, int status_w)
{
	struct pc_warm_req q;
	int fds[PC_WARM_MAX_FDS], nfds, errnum;
	const char *failed;

	pc_prefault_run();
	/* The namespaces' own set-up, while no job waits for it. */
	failed = ns_prepare();

	errnum = errno;
	/* EOF: the zygote retired, or replaced us. */
	if (recv_req(sp, &q, fds, &nfds) <= 0 || q.type != PC_WARM_JOB || nfds != PC_WARM_NFDS)
		return false;
	close(sp);
	if (failed)
		leader_fail(fds[PC_WARM_FD_SYNC], failed, errnum);
	/* The job's fresh tmpfs mounts: we still hold the namespace's
	 * CAP_SYS_ADMIN, and share the mount namespace with our pid 1. */
	leader_mounts(fds[PC_WARM_FD_SYNC], &q);
	/* Our pid 1 reports on the job's sync socket too. */
	send_rec(jc, PC_WARM_JOB, 0, 0, NULL, fds[PC_WARM_FD_SYNC]);
	close(jc);
	if (chdir("/workspace") < 0)
		leader_fail(fds[PC_WARM_FD_SYNC], "chdir /workspace", errno);
	leader_files(fds[PC_WARM_FD_SYNC], fds[PC_WARM_FD_FILES]);
	leader_rlimits(fds[PC_WARM_FD_SYNC], &q);
	leader_fds(fds, status_w);
	job_setup(6, q.landlock_abi, q.seccomp_insns);
	return true;
}

/* A spare leader and its job process, as spawn_spare() makes them. */
struct spare {
	sigjmp_buf zygote; /* where the job process resumes as the zygote's copy */
	int sp[2];	   /* zygote <-> job process: the request */
	int ready[2];	   /* leader -> zygote: the job process exists */
	int group;	   /* cgroup v2: the job's group, -1: none */
};

/* The job process: a fork of the leader (a copy of the zygote), born in
 * its job's group on v2 (CLONE_INTO_CGROUP: never moved, no cgroup
 * threadgroup lock). The leader itself stays in the zygote's leaf: its
 * memory is the zygote's, and an OOM kill in the job's group kills every
 * process sharing the victim's memory (oom_kill.c), the zygote and all
 * leaders with it. glibc's fork() cannot take a group: this is the clone
 * its _Fork makes, with the child's tid in glibc's word (CHILD_SETTID). */
static pid_t fork_into(int group)
{
	struct clone_args a = { .flags = CLONE_INTO_CGROUP | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID,
				.child_tid = tid_addr,
				.exit_signal = SIGCHLD,
				.cgroup = (uint64_t)group };

	if (group < 0)
		return fork();
	if (!tid_addr)
		a.flags &= ~(uint64_t)(CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID);
	return (pid_t)syscall(SYS_clone3, &a, sizeof(a));
}

/* Closes every descriptor but keep[0..n-1] (ascending). */
static void close_all_but(const int *keep, int n)
{
	unsigned lo = 0;

	for (int i = 0; i < n; i++) {
		if ((unsigned)keep[i] > lo)
			close_range(lo, (unsigned)keep[i] - 1, 0);
		lo = (unsigned)keep[i] + 1;
	}
	close_range(lo, ~0U, 0);
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* The spare leader: pid 1 of the job's namespaces, running in the zygote's
 * memory on a stack of its own (CLONE_VM, spawn_spare), so the zygote's
 * page tables are copied once per job, for the job process, instead of
 * twice. Until it writes 'ready' the zygote waits, so nothing else runs in
 * this memory: it forks the job process then, a consistent copy of the
 * zygote. From 'ready' on both run, so this process calls libc for
 * nothing that writes memory (errno above all): raw system calls only
 * (rawsys.h). It drops its capabilities, takes the job's sync socket from
 * its job process and supervises it. */
static int spare_leader(void *arg)
{
	struct spare *s = arg; /* on the zygote's stack: read before 'ready' only */
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct pc_sync_msg m;
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	int sp = s->sp[1], ready = s->ready[1], group = s->group, jc[2], pfd[2], keep[7], nkeep = 6, sync_fd = -1;
	char one = 1;
	pid_t job;

	signal(SIGCHLD, SIG_DFL); /* the zygote ignores it; we reap */
	if (setsid() < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, jc) < 0 || pipe2(pfd, O_CLOEXEC) < 0)
		_exit(0); /* the zygote reads EOF: no spare */
	/* Nothing of the zygote's (its control socket, a job's descriptors
	 * it holds) reaches the job process. */
	keep[0] = sp, keep[1] = ready, keep[2] = jc[0], keep[3] = jc[1], keep[4] = pfd[0], keep[5] = pfd[1];
	if (group >= 0)
		keep[nkeep++] = group;
	qsort(keep, (size_t)nkeep, sizeof(int), cmp_int);
	close_all_but(keep, nkeep);
	job = fork_into(group);
	if (group >= 0)
		close(group);
	if (job == 0) {
		close(ready), close(jc[0]), close(pfd[0]);
		if (spare_job_process(sp, jc[1], pfd[1]))
			siglongjmp(s->zygote, 1);
		_exit(0);
	}
	if (job < 0)
		_exit(0);
	RAWSYS(SYS_write, ready, &one, 1);
	/* From here on the zygote runs beside us. */
	RAWSYS(SYS_close, ready, 0, 0), RAWSYS(SYS_close, sp, 0, 0);
	RAWSYS(SYS_close, jc[1], 0, 0), RAWSYS(SYS_close, pfd[1], 0, 0);
	if (drop_caps() < 0)
		_exit(0);
	/* EOF: no job came (our job process exited), or it failed before
	 * and reported that itself. */
	if (RAWSYS(SYS_recvmsg, jc[0], &mh, MSG_CMSG_CLOEXEC) != (long)sizeof(m) || !(c = CMSG_FIRSTHDR(&mh)) ||
	    c->cmsg_type != SCM_RIGHTS)
		_exit(0);
	memcpy(&sync_fd, CMSG_DATA(c), sizeof(int));
	RAWSYS(SYS_close, jc[0], 0, 0);
	leader_supervise(job, pfd[0], sync_fd);
}

/* Leaders' stacks, in the zygote's memory. The kernel zeroes a slot's tid
 * when its leader is gone (CLONE_CHILD_CLEARTID), and the stack is reused.
 * A zygote has at most one leader per job in flight, plus its spare. */
#define LEADER_STACK (256 << 10)
#define MAX_LEADERS  288
static struct {
	char *stack; /* LEADER_STACK bytes above a guard page */
	pid_t tid;
} leaders[MAX_LEADERS];

static int free_leader_slot(void)
{
	for (int i = 0; i < MAX_LEADERS; i++) {
		if (__atomic_load_n(&leaders[i].tid, __ATOMIC_ACQUIRE) != 0)
			continue;
		if (!leaders[i].stack) {
			char *p = mmap(NULL, LEADER_STACK + 4096, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);

			if (p == MAP_FAILED || mprotect(p, 4096, PROT_NONE) < 0)
				return -1;
			leaders[i].stack = p + 4096;
		}
		return i;
	}
	return -1;
}

/* A spare: a job's namespaces made (the leader), its job process forked
 * and preparing them, waiting for the request the zygote forwards to it.
 * Returns 1 in the job process once it has its job, 0 in the zygote. */
static int spawn_spare(void)
{
	struct spare s;
	int slot = free_leader_slot();
	struct clone_args a = { .flags = CLONE_VM | NS_FLAGS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID,
				.exit_signal = SIGCHLD,
				.stack_size = LEADER_STACK };
	char one = 0;
	long pid;

	/* On v2 a leader without its own group would run in ours. */
	if ((groups && next_group < 0) || slot < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, s.sp) < 0)
		return 0;
	if (pipe2(s.ready, O_CLOEXEC) < 0) {
		close(s.sp[0]), close(s.sp[1]);
		return 0;
	}
	a.stack = (uint64_t)(uintptr_t)leaders[slot].stack;
	a.parent_tid = a.child_tid = (uint64_t)(uintptr_t)&leaders[slot].tid;
	s.group = next_group;
	PyOS_BeforeFork();
	if (sigsetjmp(s.zygote, 0)) {
		/* The job process, with its job (spare_leader). */
		PyOS_AfterFork_Child();
		return 1;
	}
	pid = pc_clone3_run(&a, spare_leader, &s);
	close(s.sp[1]), close(s.ready[1]);
	while (pid > 0 && read(s.ready[0], &one, 1) < 0 && errno == EINTR)
		;
	close(s.ready[0]);
	group_used(); /* the leader has its own copy, until its fork */
	PyOS_AfterFork_Parent();
	if (pid > 0 && one)
		spare_fd = s.sp[0];
	else
		close(s.sp[0]);
	return 0;
}

/* The request to the spare; when that is gone (it failed, or none could be
 * made), to one made now. Returns 1 in the job process. */
static int hand_on(const struct pc_warm_req *q, const int *fds)
{
	if (forward_to_spare(q, fds))
		return 0;
	if (spawn_spare())
		return 1;
	if (!forward_to_spare(q, fds))
		send_rec(fds[PC_WARM_FD_SYNC], PC_SYNC_ERROR, EAGAIN, 0, "zygote: cannot make a job process", -1);
	return 0;
}

/* The zygote's own tmpfs (unused and empty) go once, here, so the job's
 * mount table is the cold one (its fresh ones are mounted per job) without
 * each job unmounting them in its copy of our namespace: every umount
 * waits for an expedited RCU grace period, an IPI to each CPU. */
static bool unmount_own_tmpfs(void)
{
	if (chdir("/") < 0)
		return false;
	for (size_t i = 0; i < sizeof(tmpfs_dirs) / sizeof(tmpfs_dirs[0]); i++) {
		if (umount2(tmpfs_dirs[i], MNT_DETACH) < 0)
			return false;
	}
	return true;
}

static PyObject *zy_serve(PyObject *self, PyObject *unused)
{
	(void)self, (void)unused;
	/* No "ready" without them: the supervisor reports the step. */
	if (!unmount_own_tmpfs() || !shrink_bounding()) {
		send_rec(PC_FD_SYNC, PC_SYNC_ERROR, errno, 0,
			 "zygote: unmount its own tmpfs or shrink its bounding set", -1);
		Py_RETURN_FALSE;
	}
	/* No zombies: a leader reports to the supervisor, never to us. */
	signal(SIGCHLD, SIG_IGN);
	/* sync 3: the zygote is ready */
	send_rec(PC_FD_SYNC, PC_SYNC_EXEC_OK, 0, 0, NULL, -1);
	/* The policy filter comes first, before any job process exists (a
	 * spare forked without it would run its job without it). */
	{
		struct pc_warm_req q;
		int fds[PC_WARM_MAX_FDS], nfds, r;

		do
			r = recv_req(PC_FD_SYNC, &q, fds, &nfds);
		while (r == -EINTR);
		if (r <= 0 || q.type != PC_WARM_SECCOMP || nfds < 1 || nfds > 2)
			Py_RETURN_FALSE;
		load_policy_filter(fds[0]);
		close(fds[0]);
		if (nfds == 2) { /* cgroup v2: the first spare's group */
			int *tid = NULL;

			groups = true, group_keep(fds[1]);
			if (prctl(PR_GET_TID_ADDRESS, &tid, 0, 0, 0) == 0)
				tid_addr = (uint64_t)(uintptr_t)tid;
		}
	}
	if (spawn_spare())
		Py_RETURN_TRUE;
	for (;;) {
		struct pc_warm_req q;
		int fds[PC_WARM_MAX_FDS], nfds, r = recv_req(PC_FD_SYNC, &q, fds, &nfds);

		if (r == -EINTR)
			continue;
		if (r <= 0)
			break; /* EOF: retired */
		/* cgroup v2: the next leader's group (the spare made below,
		 * or this job's own when its spare is gone). */
		if (q.type == PC_WARM_JOB && nfds > PC_WARM_NFDS)
			group_keep(fds[--nfds]);
		if (q.type == PC_WARM_JOB && nfds == PC_WARM_NFDS && hand_on(&q, fds))
			Py_RETURN_TRUE;
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		/* The next job's spare, made while this one runs. */
		if (q.type == PC_WARM_JOB && spare_fd < 0 && spawn_spare())
			Py_RETURN_TRUE;
	}
	if (spare_fd >= 0)
		close(spare_fd); /* the spare sees EOF and exits */
	/* Retired: jobs in flight finish first (our exit as pid 1 would take
	 * their namespaces down). */
	while (wait(NULL) > 0 || errno == EINTR)
		;
	Py_RETURN_FALSE;
}

static PyObject *zy_prefault(PyObject *self, PyObject *arg)
{
	char *data;
	Py_ssize_t len;

	(void)self;
	if (PyBytes_AsStringAndSize(arg, &data, &len) < 0)
		return NULL;
	if (pc_prefault_set(data, (size_t)len) < 0) {
		PyErr_SetString(PyExc_ValueError, "prefault: malformed or too many ranges");
		return NULL;
	}
	Py_RETURN_NONE;
}

static PyObject *zy_written_pages(PyObject *self, PyObject *unused)
{
	const void *r;
	size_t len;

	(void)self, (void)unused;
	if (pc_prefault_scan() < 0)
		return PyErr_SetFromErrno(PyExc_OSError);
	r = pc_prefault_ranges(&len);
	return PyBytes_FromStringAndSize(r, (Py_ssize_t)len);
}

static PyMethodDef zy_methods[] = {
	{ "prefault", zy_prefault, METH_O,
	  "The probe's pages (pairs of u64 start, length) each job process copies ahead." },
	{ "written_pages", zy_written_pages, METH_NOARGS,
	  "In the prefault probe (a fork of the zygote): the runs of pages it wrote since the fork." },
	{ "serve", zy_serve, METH_NOARGS,
	  "Serve the supervisor's job requests; True in a job process, False when retired." },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef zy_module = {
	PyModuleDef_HEAD_INIT, "_pycell_zygote", NULL, -1, zy_methods, NULL, NULL, NULL, NULL
};

static PyObject *zy_init(void)
{
	return PyModule_Create(&zy_module);
}

void pc_zygote_main(const char *script, const struct sock_fprog *filter)
{
	int pfd[2];

	/* Leaders share this process's memory (CLONE_VM) and each is pid 1
	 * of a job's namespaces: dumpability belongs to the memory, and
	 * pycell-init cleared it first thing. Never serve without that: a
	 * job must not reach the zygote through /proc/1/mem or ptrace. */
	if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0 || PyImport_AppendInittab("_pycell_zygote", zy_init) < 0)
		_exit(125);
	/* Dispositions survive fork and exec: whatever the server was started
	 * under (a shell's background job ignores SIGINT and SIGQUIT) must not
	 * reach the jobs, and Python installs its SIGINT handler only where
	 * SIGINT is not ignored. Every job then starts as a cold one does. */
	for (int sig = 1; sig < NSIG; sig++) {
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	}
	/* The exec filter needs no_new_privs (we hold CAP_SYS_ADMIN only in
	 * our own user namespace); it does not hinder unshare or mount. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || pipe2(pfd, O_CLOEXEC) < 0)
		_exit(125);
	/* pfd[0] stays open so a start-up failure report never hits SIGPIPE;
	 * the supervisor sees the missing "ready" instead. */
	pc_embed_job(script, filter, pfd[1]);
}
