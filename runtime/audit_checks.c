/* Judging the audit evidence: one function per layer, each adding checks
 * with the evidence that decided them. Evidence strings hold no volatile
 * values (inode numbers, leased uids, timings) so that a report diffs
 * cleanly against an approved baseline. */
#define _GNU_SOURCE
#include "audit.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

const char *const pc_audit_ns_names[PC_AUDIT_NS] = { "cgroup", "ipc", "mnt", "net", "pid", "user", "uts" };

const char *pc_audit_status_name(enum pc_audit_status s)
{
	return s == PC_AUDIT_PASS ? "PASS" : s == PC_AUDIT_FAIL ? "FAIL" : "SKIP";
}

void pc_audit_add(struct pc_audit *a, const char *id, enum pc_audit_status st, const char *fmt, ...)
{
	struct pc_audit_check *c;
	va_list ap;

	if (a->n >= PC_AUDIT_MAX)
		return;
	c = &a->c[a->n++];
	snprintf(c->id, sizeof(c->id), "%s", id);
	c->status = st;
	va_start(ap, fmt);
	vsnprintf(c->evidence, sizeof(c->evidence), fmt, ap);
	va_end(ap);
}

static int by_id(const void *x, const void *y)
{
	return strcmp(((const struct pc_audit_check *)x)->id, ((const struct pc_audit_check *)y)->id);
}

void pc_audit_sort(struct pc_audit *a)
{
	qsort(a->c, (size_t)a->n, sizeof(a->c[0]), by_id);
}

static enum pc_audit_status pass_if(bool ok)
{
	return ok ? PC_AUDIT_PASS : PC_AUDIT_FAIL;
}

static const char *str(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return "";
	return json_object_get_string(v);
}

/* "Key:\tvalue" from /proc/self/status; "" when absent. */
static const char *status_field(const char *status, const char *key, char *buf, size_t len)
{
	size_t kl = strlen(key);
	const char *p = status;

	buf[0] = '\0';
	while (p && *p) {
		if (strncmp(p, key, kl) == 0 && p[kl] == ':') {
			p += kl + 1;
			p += strspn(p, " \t");
			snprintf(buf, len, "%.*s", (int)strcspn(p, "\n"), p);
			break;
		}
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	return buf;
}

static void judge_namespaces(struct pc_audit *a, json_object *ev, const struct pc_audit_outside *o)
{
	json_object *ns = NULL;

	json_object_object_get_ex(ev, "ns", &ns);
	for (int i = 0; i < PC_AUDIT_NS; i++) {
		const char *job = str(ns, pc_audit_ns_names[i]);
		char id[48];

		snprintf(id, sizeof(id), "namespace.%s", pc_audit_ns_names[i]);
		pc_audit_add(a, id, pass_if(job[0] && o->host_ns[i][0] && strcmp(job, o->host_ns[i]) != 0), "%s",
			     !job[0]			       ? "job's namespace unreadable"
			     : strcmp(job, o->host_ns[i]) != 0 ? "job's id differs from the host's"
							       : "job shares the host's namespace");
	}
}

/* "inside outside count" on one line, outside not 0, count 1. */
static void judge_map(struct pc_audit *a, const char *id, const char *map)
{
	long in = -1, out = -1, count = -1;
	int lines = 0;

	for (const char *p = map; *p; p++)
		lines += *p == '\n';
	sscanf(map, "%ld %ld %ld", &in, &out, &count);
	pc_audit_add(a, id, pass_if(lines == 1 && count == 1 && out > 0 && in > 0),
		     "%d line(s): job id %ld -> host id %s, %ld id(s)", lines, in,
		     out == 0  ? "0 (root)"
		     : out > 0 ? "unprivileged"
			       : "?",
		     count);
}

static void judge_status(struct pc_audit *a, const char *status, const struct pc_audit_outside *o)
{
	static const char *const caps[] = { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" };
	char ev[480] = "", v[64], mode[16], filters[16];
	bool zero = true;
	long nf;

	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		status_field(status, caps[i], v, sizeof(v));
		zero = zero && v[0] && strspn(v, "0") == strlen(v);
		snprintf(ev + strlen(ev), sizeof(ev) - strlen(ev), "%s%s=%s", i ? " " : "", caps[i], v);
	}
	pc_audit_add(a, "capabilities.sets", pass_if(zero), "%s", ev);
	status_field(status, "NoNewPrivs", v, sizeof(v));
	pc_audit_add(a, "no_new_privs", pass_if(strcmp(v, "1") == 0), "NoNewPrivs=%s", v);
	/* The policy's list plus the exec filter pycell-init stacks: two. */
	status_field(status, "Seccomp", mode, sizeof(mode));
	status_field(status, "Seccomp_filters", filters, sizeof(filters));
	nf = strtol(filters, NULL, 10);
	pc_audit_add(a, "seccomp.filter", pass_if(strcmp(mode, "2") == 0 && nf >= 2 && o->seccomp_insns > 0),
		     "Seccomp=%s Seccomp_filters=%s; policy list %s%s%s (%u BPF instructions) + exec filter", mode,
		     filters, o->seccomp_list[0] ? "'" : "", o->seccomp_list[0] ? o->seccomp_list : "none",
		     o->seccomp_list[0] ? "'" : "", o->seccomp_insns);
}

/* Attempts the seccomp list refuses with EPERM; without the list each
 * reaches the kernel and gets another answer (netlink and vsock sockets
 * open, setuid(0) is EINVAL: uid 0 is unmapped). */
static void judge_attempts(struct pc_audit *a, json_object *ev)
{
	static const char *const denied[] = { "chroot", "setuid0", "socket_netlink", "socket_vsock" };
	json_object *t = NULL;
	char buf[480] = "";
	bool ok = true;

	json_object_object_get_ex(ev, "try", &t);
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
		const char *r = str(t, denied[i]);
		ok = ok && strcmp(r, "EPERM") == 0;
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s=%s", i ? " " : "", denied[i], r);
	}
	pc_audit_add(a, "seccomp.denied_syscalls", pass_if(ok), "%s", buf);
	pc_audit_add(a, "seccomp.exec_filter", pass_if(strcmp(str(t, "exec"), "EPERM") == 0),
		     "execve('/usr/bin/true')=%s", str(t, "exec"));
	pc_audit_add(a, "network.connect_out", pass_if(strcmp(str(t, "connect_out"), "ENETUNREACH") == 0),
		     "connect(192.0.2.1:80)=%s", str(t, "connect_out"));
	pc_audit_add(a, "filesystem.rootfs_write", pass_if(strcmp(str(t, "write_rootfs"), "EROFS") == 0),
		     "open('/pycell-audit-write', 'w')=%s", str(t, "write_rootfs"));
}

/* Mount points the sandbox builds (mounts.c); anything else is a leak. */
static bool known_mount(const char *mp)
{
	static const char *const known[] = {
		"/",	     "/workspace", "/tmp",	    "/dev",	     "/dev/null",
		"/dev/zero", "/dev/full",  "/dev/random",   "/dev/urandom",  "/dev/shm",
		"/proc",     "/.pycell",   "/.pycell/init", "/.pycell/shim", "/.pycell/probe"
	};

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(mp, known[i]) == 0)
			return true;
	return false;
}

static bool has_opt(const char *opts, const char *opt)
{
	size_t l = strlen(opt);

	for (const char *p = opts; p; p = strchr(p, ',')) {
		p += *p == ',';
		if (strncmp(p, opt, l) == 0 && (p[l] == ',' || p[l] == '\0'))
			return true;
	}
	return false;
}

static void judge_mounts(struct pc_audit *a, const char *mountinfo, bool statvfs_ro)
{
	char *copy = strdup(mountinfo), *save = NULL, pts[400] = "", bad[200] = "";
	bool root_ro = false, proc_subset = false;
	int n = 0;

	for (char *line = copy ? strtok_r(copy, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
		char mp[128], opts[128], super[256];
		const char *dash = strstr(line, " - ");

		if (sscanf(line, "%*s %*s %*s %*s %127s %127s", mp, opts) != 2 || !dash ||
		    sscanf(dash + 3, "%*s %*s %255s", super) != 1)
			continue;
		n++;
		snprintf(pts + strlen(pts), sizeof(pts) - strlen(pts), "%s%s", n > 1 ? " " : "", mp);
		if (strcmp(mp, "/") == 0)
			root_ro = has_opt(opts, "ro");
		if (strcmp(mp, "/proc") == 0)
			proc_subset = has_opt(super, "subset=pid");
		/* The five device nodes are bind mounts of devtmpfs nodes (they
		 * need dev); every other mount must be nosuid, and writable
		 * ones noexec. */
		if (!known_mount(mp) || (strncmp(mp, "/dev/", 5) != 0 && !has_opt(opts, "nosuid")) ||
		    (has_opt(opts, "rw") && strcmp(mp, "/proc") != 0 && strncmp(mp, "/dev/", 5) != 0 &&
		     !has_opt(opts, "noexec")) ||
		    (strcmp(mp, "/dev/shm") == 0 && !has_opt(opts, "noexec")))
			snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad), " %s(%s)", mp, opts);
	}
	free(copy);
	pc_audit_add(a, "filesystem.rootfs_readonly", pass_if(root_ro && statvfs_ro),
		     "'/' mounted %s, statvfs ST_RDONLY=%s", root_ro ? "ro" : "rw", statvfs_ro ? "yes" : "no");
	pc_audit_add(a, "filesystem.mounts", pass_if(n > 0 && !bad[0] && proc_subset), "%d mounts: %s%s%s%s", n, pts,
		     proc_subset ? "; /proc subset=pid" : "; /proc without subset=pid", bad[0] ? "; unexpected:" : "",
		     bad);
}

static void judge_network(struct pc_audit *a, json_object *ev, const struct pc_audit_outside *o)
{
	char *dev = strdup(str(ev, "net_dev")), *v6 = strdup(str(ev, "ipv6_route")), *save = NULL;
	const char *v4 = str(ev, "route");
	char ifs[200] = "", off[200] = "";
	int lineno = 0, v4_routes = -1;
	bool only_lo = true;

	for (char *l = dev ? strtok_r(dev, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
		char name[64];
		if (++lineno <= 2 || sscanf(l, " %63[^:]:", name) != 1)
			continue;
		only_lo = only_lo && strcmp(name, "lo") == 0;
		snprintf(ifs + strlen(ifs), sizeof(ifs) - strlen(ifs), "%s%s", ifs[0] ? " " : "", name);
	}
	pc_audit_add(a, "network.interfaces", pass_if(only_lo && ifs[0]), "interfaces: %s", ifs[0] ? ifs : "none");
	for (const char *p = v4; *p; p++)
		v4_routes += *p == '\n';
	/* IPv6 keeps lo's own entries (::1, the reject default); a route out
	 * names another interface. */
	for (char *l = v6 ? strtok_r(v6, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
		const char *iface = strrchr(l, ' ');
		if (iface && strcmp(iface + 1, "lo") != 0)
			snprintf(off + strlen(off), sizeof(off) - strlen(off), " %s", iface + 1);
	}
	pc_audit_add(a, "network.routes", pass_if(v4_routes <= 0 && !off[0]), "IPv4 routes: %d; IPv6 routes off lo:%s",
		     v4_routes < 0 ? 0 : v4_routes, off[0] ? off : " none");
	pc_audit_add(a, "network.policy", pass_if(strcmp(o->network, "none") == 0), "policy network '%s'%s", o->network,
		     strcmp(o->network, "none") == 0 ? " (loopback only)" : "");
	free(dev);
	free(v6);
}

static void judge_cgroup(struct pc_audit *a, json_object *ev, const struct pc_audit_outside *o)
{
	char *inside = strdup(str(ev, "cgroup")), *save = NULL;
	long long mem = o->limits[PC_LIM_MEMORY_MB] * 1024 * 1024, pids = o->limits[PC_LIM_PIDS];
	bool rooted = inside && inside[0];

	/* Every line "N:ctl:/": the job's cgroup namespace is rooted at its group. */
	for (char *l = inside ? strtok_r(inside, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
		const char *colon = strrchr(l, ':');
		rooted = rooted && colon && strcmp(colon + 1, "/") == 0;
	}
	free(inside);
	pc_audit_add(a, "cgroup.namespace", pass_if(rooted), "inside /proc/self/cgroup: %s",
		     rooted ? "every hierarchy at '/'" : "a path above the job's group");
	if (o->cg_version == 0 || !o->cg_read) {
		const char *why =
		    o->cg_version == 0 ? "no cgroup applied (rootless without delegation?)" : "job group unreadable";
		pc_audit_add(a, "cgroup.memory", PC_AUDIT_FAIL, "%s; unapplied: %s", why, o->cg_unapplied);
		pc_audit_add(a, "cgroup.pids", PC_AUDIT_FAIL, "%s", why);
		pc_audit_add(a, "cgroup.cpu", PC_AUDIT_FAIL, "%s", why);
		return;
	}
	pc_audit_add(a, "cgroup.memory", pass_if(strtoll(o->cg_memory, NULL, 10) == mem), "v%d %s=%s (policy %lld MiB)",
		     o->cg_version, o->cg_version == 2 ? "memory.max" : "memory.limit_in_bytes", o->cg_memory,
		     o->limits[PC_LIM_MEMORY_MB]);
	pc_audit_add(a, "cgroup.pids", pass_if(strtoll(o->cg_pids, NULL, 10) == pids), "v%d pids.max=%s (policy %lld)",
		     o->cg_version, o->cg_pids, pids);
	pc_audit_add(a, "cgroup.cpu", pass_if(o->cg_cpu[0] && strncmp(o->cg_cpu, "max", 3) != 0 && o->cg_cpu[0] != '-'),
		     "v%d %s=%s (policy %lld%% of a core)", o->cg_version,
		     o->cg_version == 2 ? "cpu.max" : "cpu.cfs_quota_us", o->cg_cpu, o->limits[PC_LIM_CPU_PERCENT]);
}

static const char *rlimit_name(int res)
{
	switch (res) {
	case RLIMIT_CPU: return "cpu";
	case RLIMIT_FSIZE: return "fsize";
	case RLIMIT_NOFILE: return "nofile";
	case RLIMIT_CORE: return "core";
	case RLIMIT_STACK: return "stack";
	case RLIMIT_NPROC: return "nproc";
	default: return NULL;
	}
}

static void judge_rlimits(struct pc_audit *a, json_object *ev, const struct pc_audit_outside *o)
{
	json_object *rl = NULL, *pair;
	char buf[480] = "";
	bool ok = o->n_rl > 0;

	json_object_object_get_ex(ev, "rlimits", &rl);
	for (size_t i = 0; i < o->n_rl; i++) {
		const char *name = rlimit_name(o->rl[i].resource);
		long long soft = -2, hard = -2;

		if (!name)
			continue;
		if (rl && json_object_object_get_ex(rl, name, &pair) && json_object_is_type(pair, json_type_array) &&
		    json_object_array_length(pair) == 2) {
			soft = json_object_get_int64(json_object_array_get_idx(pair, 0));
			hard = json_object_get_int64(json_object_array_get_idx(pair, 1));
		}
		ok = ok && soft == (long long)o->rl[i].lim.rlim_cur && hard == (long long)o->rl[i].lim.rlim_max;
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s=%lld:%lld", buf[0] ? " " : "", name, soft,
			 hard);
	}
	for (size_t i = 0; i < o->n_rl_by_cgroup; i++)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s",
			 i ? "," : "; cgroup-bounded (warm): ", rlimit_name(o->rl_by_cgroup[i]) ?: "?");
	pc_audit_add(a, "rlimits", pass_if(ok), "inside (soft:hard) %s; %s the supervisor's", buf,
		     ok ? "equal to" : "differs from");
}

/* The job inherits exactly 0 input memfd, 1/2 output pipes, 4 result pipe
 * (sync.h); 3 (bootstrap) is read and closed before user code. */
static void judge_fds(struct pc_audit *a, json_object *ev)
{
	static const char *const want[][2] = {
		{ "0", "/memfd:pycell-input" }, { "1", "pipe:" }, { "2", "pipe:" }, { "4", "pipe:" }
	};
	json_object *fds = NULL;
	char buf[480] = "";
	bool ok;

	json_object_object_get_ex(ev, "fds", &fds);
	ok = fds && json_object_is_type(fds, json_type_object) &&
	     json_object_object_length(fds) == (int)(sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; ok && i < sizeof(want) / sizeof(want[0]); i++)
		ok = strcmp(str(fds, want[i][0]), want[i][1]) == 0;
	if (fds && json_object_is_type(fds, json_type_object)) {
		json_object_object_foreach (fds, k, v) {
			snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s=%s", buf[0] ? " " : "", k,
				 json_object_get_string(v));
		}
	}
	pc_audit_add(a, "fds", pass_if(ok), "open: %s", buf[0] ? buf : "none");
}

void pc_audit_judge(struct pc_audit *a, json_object *ev, const struct pc_audit_outside *o)
{
	json_object *ro = NULL;

	judge_namespaces(a, ev, o);
	judge_map(a, "ids.uid_map", str(ev, "uid_map"));
	judge_map(a, "ids.gid_map", str(ev, "gid_map"));
	judge_status(a, str(ev, "status"), o);
	judge_attempts(a, ev);
	json_object_object_get_ex(ev, "root_statvfs_ro", &ro);
	judge_mounts(a, str(ev, "mountinfo"), ro && json_object_get_boolean(ro));
	judge_network(a, ev, o);
	judge_cgroup(a, ev, o);
	judge_rlimits(a, ev, o);
	judge_fds(a, ev);
	if (o->landlock.enabled)
		pc_audit_add(a, "landlock", PC_AUDIT_PASS, "ruleset enforced, ABI %d", o->landlock.abi);
	else
		pc_audit_add(a, "landlock", PC_AUDIT_SKIP, "not applied: %s", o->landlock.note);
}
