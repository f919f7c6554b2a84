/* bench-floor's timing half: takes a sandbox's setup steps in pycell's
 * order with nothing of pycell around them and prints each step's time per
 * round (microseconds, CLOCK_MONOTONIC) as one JSON object. C, not Python:
 * in a freshly forked Python the first ctypes call and the copy-on-write
 * faults of a large heap cost more than most of the steps measured.
 *
 *   build/bin/bench-floor-chain --runs N --rootfs DIR [--bpf FILE]
 *
 * Root only. Each round: a forked child makes a user namespace, then a pid
 * namespace and forks its pid 1, which makes the mount, net, ipc and uts
 * namespaces, brings lo up, binds the rootfs read-only with two tmpfs and
 * proc, pivots into it and lazily unmounts the old root, makes a cgroup
 * namespace and loads the BPF program (pycell's cached seccomp filter).
 * The parent then makes and removes the job's cgroups (v1: memory, pids,
 * cpu, cpuacct; else one v2 group) and times fork+exec+wait of /bin/true
 * against fork+_exit+wait. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum {
	S_USER,
	S_PID,
	S_MNT,
	S_NET,
	S_IPC,
	S_UTS,
	S_LO,
	S_MOUNTS,
	S_PIVOT,
	S_CGNS,
	S_SECCOMP,
	S_CGROUPS,
	S_EXEC,
	S_FORK,
	S_CGROUPS_RM,
	NSTEPS
};

static const char *const step_name[NSTEPS] = {
	[S_USER] = "user namespace",
	[S_PID] = "pid namespace + fork of its pid 1",
	[S_MNT] = "mount namespace",
	[S_NET] = "net namespace",
	[S_IPC] = "ipc namespace",
	[S_UTS] = "uts namespace",
	[S_LO] = "lo up",
	[S_MOUNTS] = "rootfs mounts (bind read-only, 2 tmpfs, proc)",
	[S_PIVOT] = "pivot_root + lazy unmount of the old root",
	[S_CGNS] = "cgroup namespace",
	[S_SECCOMP] = "seccomp filter",
	[S_CGROUPS] = "cgroups made",
	[S_EXEC] = "fork+exec+wait of /bin/true",
	[S_FORK] = "fork+_exit+wait",
	[S_CGROUPS_RM] = "cgroups removed (after the job)",
};

struct round {
	double us[NSTEPS];
	char error[160];
};

static const char *const v1_controllers[] = { "memory", "pids", "cpu", "cpuacct" };

static double now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int fail(struct round *r, const char *what)
{
	snprintf(r->error, sizeof(r->error), "%s: %s", what, strerror(errno));
	return -1;
}

static int lo_up(struct round *r)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;

	if (s < 0)
		return fail(r, "socket");
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		rc = fail(r, "SIOCGIFFLAGS");
	ifr.ifr_flags |= IFF_UP;
	if (rc == 0 && ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		rc = fail(r, "SIOCSIFFLAGS");
	close(s);
	return rc;
}

static int rootfs_mounts(const char *root, struct round *r)
{
	char p[4096];

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return fail(r, "make / private");
	if (mount(root, root, NULL, MS_BIND | MS_REC, NULL) < 0)
		return fail(r, "bind the rootfs");
	if (mount(NULL, root, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
		return fail(r, "remount the rootfs read-only");
	snprintf(p, sizeof(p), "%s/workspace", root);
	if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV, "size=64m") < 0)
		return fail(r, "tmpfs /workspace");
	snprintf(p, sizeof(p), "%s/tmp", root);
	if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV, "size=64m") < 0)
		return fail(r, "tmpfs /tmp");
	snprintf(p, sizeof(p), "%s/proc", root);
	if (mount("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return fail(r, "proc");
	return 0;
}

static int pivot(const char *root, struct round *r)
{
	if (chdir(root) < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
		return fail(r, "pivot_root");
	if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
		return fail(r, "unmount the old root");
	return 0;
}

static int load_filter(const struct sock_fprog *prog, struct round *r)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return fail(r, "no_new_privs");
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog) < 0)
		return fail(r, "seccomp");
	return 0;
}

#define STEP(r, i, call)                    \
	do {                                \
		double t_ = now_us();       \
		if ((call) < 0)             \
			return -1;          \
		(r)->us[i] = now_us() - t_; \
	} while (0)

/* pid 1 of the new pid namespace. */
static int in_pid1(const char *root, const struct sock_fprog *prog, struct round *r)
{
	STEP(r, S_MNT, unshare(CLONE_NEWNS) < 0 ? fail(r, "unshare mount") : 0);
	STEP(r, S_NET, unshare(CLONE_NEWNET) < 0 ? fail(r, "unshare net") : 0);
	STEP(r, S_IPC, unshare(CLONE_NEWIPC) < 0 ? fail(r, "unshare ipc") : 0);
	STEP(r, S_UTS, unshare(CLONE_NEWUTS) < 0 ? fail(r, "unshare uts") : 0);
	STEP(r, S_LO, lo_up(r));
	STEP(r, S_MOUNTS, rootfs_mounts(root, r));
	STEP(r, S_PIVOT, pivot(root, r));
	STEP(r, S_CGNS, unshare(CLONE_NEWCGROUP) < 0 ? fail(r, "unshare cgroup") : 0);
	if (prog->len)
		STEP(r, S_SECCOMP, load_filter(prog, r));
	return 0;
}

static void __attribute__((noreturn)) in_child(const char *root, const struct sock_fprog *prog, int out)
{
	struct round r = { 0 };
	double t;
	pid_t pid;
	int p[2];

	if (unshare(CLONE_NEWUSER) < 0 || pipe2(p, O_CLOEXEC) < 0) {
		fail(&r, "unshare user");
		goto done;
	}
	if (unshare(CLONE_NEWPID) < 0) {
		fail(&r, "unshare pid");
		goto done;
	}
	t = now_us();
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		r.us[S_PID] = now_us() - t;
		in_pid1(root, prog, &r);
		if (write(p[1], &r, sizeof(r)) != sizeof(r))
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	if (pid < 0 || read(p[0], &r, sizeof(r)) != sizeof(r))
		fail(&r, "pid 1 died");
	waitpid(pid, NULL, 0);
done:
	if (write(out, &r, sizeof(r)) != sizeof(r))
		_exit(1);
	_exit(0);
}

static int one_round(const char *root, const struct sock_fprog *prog, struct round *r)
{
	double user_t;
	pid_t pid;
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return fail(r, "pipe");
	pid = fork();
	if (pid == 0) {
		/* The user namespace alone, timed here so that its row does not
		 * include this process's fork. */
		user_t = now_us();
		if (unshare(CLONE_NEWUSER) < 0)
			_exit(1);
		user_t = now_us() - user_t;
		if (write(p[1], &user_t, sizeof(user_t)) != sizeof(user_t))
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	if (pid < 0 || read(p[0], &r->us[S_USER], sizeof(double)) != sizeof(double)) {
		close(p[0]);
		return fail(r, "user namespace round");
	}
	close(p[0]);
	waitpid(pid, NULL, 0);

	if (pipe2(p, O_CLOEXEC) < 0)
		return fail(r, "pipe");
	user_t = r->us[S_USER];
	pid = fork();
	if (pid == 0)
		in_child(root, prog, p[1]);
	close(p[1]);
	if (pid < 0 || read(p[0], r, sizeof(*r)) != sizeof(*r))
		fail(r, "the round died");
	close(p[0]);
	waitpid(pid, NULL, 0);
	r->us[S_USER] = user_t;
	return r->error[0] ? -1 : 0;
}

/* The job's groups: one per v1 hierarchy present, else one v2 group.
 * Found once, outside the timed span. */
struct groups {
	char path[4][256];
	int n;
	bool v1;
};

static void find_groups(struct groups *g)
{
	char procs[256];

	memset(g, 0, sizeof(*g));
	for (size_t i = 0; i < sizeof(v1_controllers) / sizeof(*v1_controllers); i++) {
		snprintf(procs, sizeof(procs), "/sys/fs/cgroup/%s/cgroup.procs", v1_controllers[i]);
		if (access(procs, F_OK) == 0)
			snprintf(g->path[g->n++], sizeof(g->path[0]), "/sys/fs/cgroup/%s/pycell-floor-%d",
				 v1_controllers[i], getpid());
	}
	g->v1 = g->n > 0;
	if (!g->v1)
		snprintf(g->path[g->n++], sizeof(g->path[0]), "/sys/fs/cgroup/pycell-floor-%d", getpid());
}

/* Makes and removes the groups; whatever was made is removed on failure. */
static int cgroups(const struct groups *g, struct round *r)
{
	double t = now_us();
	int made = 0, rc = 0;

	while (made < g->n && mkdir(g->path[made], 0755) == 0)
		made++;
	if (made < g->n)
		rc = fail(r, "mkdir cgroup");
	r->us[S_CGROUPS] = now_us() - t;
	t = now_us();
	while (made > 0) {
		if (rmdir(g->path[--made]) < 0 && rc == 0)
			rc = fail(r, "rmdir cgroup");
	}
	r->us[S_CGROUPS_RM] = now_us() - t;
	return rc;
}

/* fork+exec+wait of /bin/true and, for the difference, fork+_exit+wait. */
static int exec_cost(struct round *r)
{
	char *const argv[] = { "true", NULL };
	double t;
	pid_t pid;

	t = now_us();
	pid = fork();
	if (pid == 0) {
		execv("/bin/true", argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, NULL, 0) < 0)
		return fail(r, "exec /bin/true");
	r->us[S_EXEC] = now_us() - t;
	t = now_us();
	pid = fork();
	if (pid == 0)
		_exit(0);
	if (pid < 0 || waitpid(pid, NULL, 0) < 0)
		return fail(r, "fork");
	r->us[S_FORK] = now_us() - t;
	return 0;
}

static int read_bpf(const char *path, struct sock_fprog *prog)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size == 0 || st.st_size % 8 || st.st_size > 4096 * 8) {
		fprintf(stderr, "bench-floor-chain: '%s' is not a BPF program\n", path);
		return -1;
	}
	prog->filter = malloc((size_t)st.st_size);
	if (!prog->filter || read(fd, prog->filter, (size_t)st.st_size) != st.st_size) {
		fprintf(stderr, "bench-floor-chain: cannot read '%s'\n", path);
		return -1;
	}
	prog->len = (unsigned short)(st.st_size / 8);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct sock_fprog prog = { 0 };
	const char *root = NULL, *bpf = NULL;
	struct round *rounds;
	struct groups groups;
	int runs = 40;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--runs") == 0)
			runs = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--rootfs") == 0)
			root = argv[i + 1];
		else if (strcmp(argv[i], "--bpf") == 0)
			bpf = argv[i + 1];
	}
	if (!root || runs < 1) {
		fprintf(stderr, "usage: bench-floor-chain --runs N --rootfs DIR [--bpf FILE]\n");
		return 2;
	}
	if (bpf && read_bpf(bpf, &prog) < 0)
		return 1;
	find_groups(&groups);
	rounds = calloc((size_t)runs, sizeof(*rounds));
	if (!rounds)
		return 1;
	for (int i = 0; i < runs; i++) {
		struct round *r = &rounds[i];

		if (one_round(root, &prog, r) < 0 || cgroups(&groups, r) < 0 || exec_cost(r) < 0) {
			fprintf(stderr, "bench-floor-chain: %s\n", r->error);
			return 1;
		}
	}
	printf("{\"bpf_instructions\": %u, \"cgroups\": \"%s\", \"steps\": {", prog.len,
	       groups.v1 ? "v1: memory, pids, cpu, cpuacct" : "v2: one group");
	for (int s = 0; s < NSTEPS; s++) {
		if (s == S_SECCOMP && !prog.len)
			continue;
		printf("%s\"%s\": [", s ? ", " : "", step_name[s]);
		for (int i = 0; i < runs; i++)
			printf("%s%.1f", i ? ", " : "", rounds[i].us[s]);
		printf("]");
	}
	printf("}}\n");
	free(rounds);
	free(prog.filter);
	return 0;
}
