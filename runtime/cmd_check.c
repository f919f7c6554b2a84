/* `pycell check`: is this host ready to run jobs? Each piece PASS, FAIL
 * (pycell cannot give the isolation it promises) or SKIP (optional and
 * absent), and every miss says what to do. Read-only: creates nothing.
 *
 * The rootfs check is the C side's quick one: the directory, its
 * DIR.manifest.json, python3 inside and no group/world-writable top level.
 * The full verifier is `rootfs/pycell-rootfs verify DIR` (docs/audit.md). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/landlock.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "audit.h"
#include "cli.h"
#include "jsonutil.h"
#include "result.h"
#include "util.h"

struct fix {
	char id[48];
	char what[256];
};

struct check_ctx {
	struct pc_audit a;
	struct fix fixes[16];
	int n_fixes;
};

static void fail(struct check_ctx *c, const char *id, const char *what, const char *evidence)
{
	pc_audit_add(&c->a, id, PC_AUDIT_FAIL, "%s", evidence);
	if (c->n_fixes < 16) {
		snprintf(c->fixes[c->n_fixes].id, sizeof(c->fixes[0].id), "%s", id);
		snprintf(c->fixes[c->n_fixes++].what, sizeof(c->fixes[0].what), "%s", what);
	}
}

static long read_long(const char *path, long dflt)
{
	char buf[64];
	FILE *f = fopen(path, "re");
	long v = dflt;

	if (f && fgets(buf, sizeof(buf), f))
		v = strtol(buf, NULL, 10);
	if (f)
		fclose(f);
	return v;
}

static void check_kernel(struct check_ctx *c)
{
	struct utsname u;
	int maj = 0, min = 0;

	uname(&u);
	sscanf(u.release, "%d.%d", &maj, &min);
	/* proc subset=pid (mounts.c) needs 5.8; clone3 CLONE_INTO_CGROUP 5.7. */
	if (maj > 5 || (maj == 5 && min >= 8))
		pc_audit_add(&c->a, "kernel.version", PC_AUDIT_PASS, "Linux %s (>= 5.8)", u.release);
	else
		fail(c, "kernel.version", "upgrade to Linux 5.8 or later (proc subset=pid, clone3)", u.release);
}

static void check_userns(struct check_ctx *c)
{
	long max = read_long("/proc/sys/user/max_user_namespaces", -1);
	long deb = read_long("/proc/sys/kernel/unprivileged_userns_clone", -1);
	long aa = read_long("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", -1);
	char ev[160];

	snprintf(ev, sizeof(ev), "max_user_namespaces=%ld%s%s", max, deb == 0 ? ", unprivileged_userns_clone=0" : "",
		 aa == 1 ? ", apparmor_restrict_unprivileged_userns=1" : "");
	if (max == 0)
		fail(c, "userns", "sysctl -w user.max_user_namespaces=15000", ev);
	else if (geteuid() != 0 && deb == 0)
		fail(c, "userns", "sysctl -w kernel.unprivileged_userns_clone=1 (Debian), or run pycell as root", ev);
	else if (geteuid() != 0 && aa == 1)
		fail(c, "userns",
		     "AppArmor restricts unprivileged user namespaces: add a profile for pycell with 'userns,' or run "
		     "as root",
		     ev);
	else
		pc_audit_add(&c->a, "userns", PC_AUDIT_PASS, "%s", ev);
}

static bool is_cgroup_mount(const char *path, long magic)
{
	struct statfs s;

	return statfs(path, &s) == 0 && (long)s.f_type == magic;
}

static void check_cgroup(struct check_ctx *c)
{
	static const char *const v1[] = { "memory", "pids", "cpu" };
	char ev[320] = "", path[PATH_MAX], buf[256] = "";
	bool ok = true, writable = true;

	if (is_cgroup_mount("/sys/fs/cgroup", CGROUP2_SUPER_MAGIC)) {
		FILE *f = fopen("/sys/fs/cgroup/cgroup.controllers", "re");
		if (f && fgets(buf, sizeof(buf), f))
			buf[strcspn(buf, "\n")] = '\0';
		if (f)
			fclose(f);
		for (size_t i = 0; i < 3; i++)
			ok = ok && strstr(buf, v1[i]) != NULL;
		writable = access("/sys/fs/cgroup/cgroup.subtree_control", W_OK) == 0;
		snprintf(ev, sizeof(ev), "v2; controllers: %s; %s", buf,
			 writable ? "writable (delegated)" : "not writable");
		if (ok && writable)
			pc_audit_add(&c->a, "cgroup", PC_AUDIT_PASS, "%s", ev);
		else
			fail(c, "cgroup",
			     "run as root, or delegate a subtree (systemd-run --user -p Delegate=yes) with memory, "
			     "pids and cpu",
			     ev);
		return;
	}
	snprintf(ev, sizeof(ev), "v1:");
	for (size_t i = 0; i < 3; i++) {
		bool m, w;
		snprintf(path, sizeof(path), "/sys/fs/cgroup/%s", v1[i]);
		m = is_cgroup_mount(path, CGROUP_SUPER_MAGIC);
		w = m && access(path, W_OK) == 0;
		ok = ok && m;
		writable = writable && w;
		snprintf(ev + strlen(ev), sizeof(ev) - strlen(ev), " %s=%s", v1[i],
			 !m  ? "absent"
			 : w ? "writable"
			     : "read-only");
	}
	if (ok && writable)
		pc_audit_add(&c->a, "cgroup", PC_AUDIT_PASS, "%s", ev);
	else
		fail(c, "cgroup",
		     ok ? "run pycell as root (v1 has no safe delegation), or boot with "
			  "systemd.unified_cgroup_hierarchy=1"
			: "mount the memory, pids and cpu controllers (or switch to cgroup v2)",
		     ev);
}

/* On cgroup v1 a job's process is attached by a cgroup.procs write, which
 * takes the threadgroup rwsem; after an idle gap that waits for an RCU grace
 * period, measured here at 7-16 ms per job (tools/bench-cgroup-attach).
 * favordynmods (Linux 6.0+, a mount option of any hierarchy) makes it
 * 0.04 ms; cgroup v2 has no attach at all (CLONE_INTO_CGROUP). Advice only:
 * never a FAIL. */
static void check_cgroup_attach(struct check_ctx *c)
{
	char line[4096];
	FILE *f;

	if (is_cgroup_mount("/sys/fs/cgroup", CGROUP2_SUPER_MAGIC)) {
		pc_audit_add(&c->a, "cgroup.attach", PC_AUDIT_PASS,
			     "v2: jobs enter their cgroup at clone (CLONE_INTO_CGROUP)");
		return;
	}
	f = fopen("/proc/self/mountinfo", "re");
	while (f && fgets(line, sizeof(line), f)) {
		const char *sep = strstr(line, " - cgroup");
		if (sep && strstr(sep, "favordynmods")) {
			fclose(f);
			pc_audit_add(&c->a, "cgroup.attach", PC_AUDIT_PASS,
				     "v1 with favordynmods: attach does not stall");
			return;
		}
	}
	if (f)
		fclose(f);
	pc_audit_add(&c->a, "cgroup.attach", PC_AUDIT_SKIP,
		     "v1 without favordynmods: attaching a job can stall 7-16 ms after an idle gap; advice: keep a "
		     "hierarchy mounted with it (mkdir -p /run/pycell-fdm && mount -t cgroup -o "
		     "none,name=pycell-fdm,favordynmods none /run/pycell-fdm; Linux 6.0+), or boot with cgroup v2");
}

static void check_seccomp(struct check_ctx *c)
{
	char buf[256] = "";
	FILE *f = fopen("/proc/sys/kernel/seccomp/actions_avail", "re");

	if (f && fgets(buf, sizeof(buf), f))
		buf[strcspn(buf, "\n")] = '\0';
	if (f)
		fclose(f);
	/* PR_GET_SECCOMP: EINVAL when the kernel lacks CONFIG_SECCOMP. */
	if (prctl(PR_GET_SECCOMP) < 0 || !strstr(buf, "kill_process") || !strstr(buf, "errno"))
		fail(c, "seccomp", "build the kernel with CONFIG_SECCOMP_FILTER=y (Linux 4.14+ for kill_process)",
		     buf[0] ? buf : "no /proc/sys/kernel/seccomp/actions_avail");
	else
		pc_audit_add(&c->a, "seccomp", PC_AUDIT_PASS, "actions: %s", buf);
}

static void check_landlock(struct check_ctx *c)
{
	int abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);

	/* Optional: the mount namespace is the boundary; Landlock fences it. */
	if (abi > 0)
		pc_audit_add(&c->a, "landlock", PC_AUDIT_PASS, "ABI %d", abi);
	else
		pc_audit_add(&c->a, "landlock", PC_AUDIT_SKIP,
			     "%s (optional; enable with lsm=...,landlock on the kernel command line)",
			     errno == EOPNOTSUPP ? "disabled at boot" : "not built in");
}

static void check_rootfs(struct check_ctx *c, struct pc_cli_common *cli)
{
	char manifest[PATH_MAX + 32], py[PATH_MAX + 32], ev[PATH_MAX + 64];
	struct stat st;
	_cleanup_free_ char *buf = NULL;
	size_t len;
	const char *why = NULL;
	json_object *m = NULL;

	if (pc_cli_setup(cli) != 0) {
		fail(c, "rootfs", "build it: make rootfs (or pass --rootfs DIR)", "policy's rootfs not found");
		return;
	}
	snprintf(manifest, sizeof(manifest), "%s.manifest.json", cli->rootfs);
	snprintf(py, sizeof(py), "%s/usr/bin/python3", cli->rootfs);
	snprintf(ev, sizeof(ev), "'%s'", cli->rootfs);
	if (pc_cli_read_input(manifest, 16 << 20, &buf, &len) == 0)
		m = pc_json_parse(buf, len, &why);
	if (!m)
		fail(c, "rootfs", "rebuild with 'make rootfs' (no manifest: not built by pycell-rootfs)", ev);
	else if (stat(cli->rootfs, &st) < 0 || (st.st_mode & (S_IWGRP | S_IWOTH)))
		fail(c, "rootfs", "chmod go-w the rootfs directory, then run rootfs/pycell-rootfs verify", ev);
	else if (access(py, X_OK) < 0)
		fail(c, "rootfs", "rebuild with 'make rootfs': /usr/bin/python3 missing", ev);
	else
		pc_audit_add(&c->a, "rootfs", PC_AUDIT_PASS, "%s: manifest present, python3, not group/world-writable",
			     ev);
	json_object_put(m);
	if (access(cli->paths.init, X_OK) < 0)
		fail(c, "pycell_init", "run 'make' (or 'make install')", cli->paths.init);
	else
		pc_audit_add(&c->a, "pycell_init", PC_AUDIT_PASS, "%s", "present");
}

int pc_cmd_check(int argc, char **argv)
{
	struct pc_cli_common cli = { 0 };
	struct check_ctx *c = calloc(1, sizeof(*c));
	int fails = 0;

	if (!c)
		return PC_EXIT_RUNTIME;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--policy") == 0 && i + 1 < argc)
			cli.policy_arg = argv[++i];
		else if (strcmp(argv[i], "--rootfs") == 0 && i + 1 < argc)
			cli.rootfs_arg = argv[++i];
		else {
			fprintf(stderr, "usage: pycell check [--policy FILE] [--rootfs DIR]\n");
			free(c);
			return PC_EXIT_USAGE;
		}
	}
	check_kernel(c);
	check_userns(c);
	check_cgroup(c);
	check_cgroup_attach(c);
	check_seccomp(c);
	check_landlock(c);
	check_rootfs(c, &cli);
	pc_audit_sort(&c->a);
	printf("pycell check: %s\n", geteuid() == 0 ? "as root" : "unprivileged");
	for (int i = 0; i < c->a.n; i++) {
		printf("%s  %-12s %s\n", pc_audit_status_name(c->a.c[i].status), c->a.c[i].id, c->a.c[i].evidence);
		fails += c->a.c[i].status == PC_AUDIT_FAIL;
		for (int j = 0; j < c->n_fixes; j++)
			if (c->a.c[i].status == PC_AUDIT_FAIL && strcmp(c->fixes[j].id, c->a.c[i].id) == 0)
				printf("      fix: %s\n", c->fixes[j].what);
	}
	printf("%s\n", fails ? "not ready" : "ready");
	pc_cli_cleanup(&cli);
	free(c);
	return fails ? PC_EXIT_JOB_ERROR : PC_EXIT_OK;
}
