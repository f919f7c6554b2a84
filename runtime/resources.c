/* Resource control for one job; see resources.h.
 *
 * Two independent bounds for each resource, so that one failing layer does
 * not leave the job unbounded:
 *   memory  cgroup limit (swap off)              -> MEMORY_LIMIT from oom_kill
 *   pids    cgroup pids.max, RLIMIT_NPROC        -> PIDS_LIMIT from pids.events
 *   cpu     supervisor polls the cgroup's usage  -> CPU_LIMIT from the usage
 *           every PC_CPU_POLL_MS; RLIMIT_CPU per process as the backstop
 *   disk    tmpfs size (mounts.c), RLIMIT_FSIZE  -> DISK_LIMIT from ENOSPC/EFBIG
 * RLIMIT_NPROC counts per uid per user namespace (ucounts, Linux 5.14+), so
 * inside the job's own namespace it counts only the job's processes. */
#define _GNU_SOURCE
#include "resources.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run.h"
#include "util.h"

#define NOFILE_LIMIT 256
#define STACK_LIMIT  (8ULL * 1024 * 1024)

void pc_resources_init(struct pc_resources *rc)
{
	memset(rc, 0, sizeof(*rc));
	pc_lease_init(&rc->lease);
	rc->cg.clone_fd = -1;
	rc->signal_fd = -1;
}

static void add_rlimit(struct pc_resources *rc, int res, unsigned long long cur, unsigned long long max)
{
	if (rc->n_rl < PC_MAX_RLIMITS)
		rc->rl[rc->n_rl++] = (struct pc_rlimit){ res, { (rlim_t)cur, (rlim_t)max } };
}

static void plan_rlimits(struct pc_resources *rc, const long long *limits)
{
	/* RLIMIT_CPU has one-second granularity: round up, so the cgroup poll
	 * (which has the exact cpu_ms) normally fires first. SIGXCPU at the
	 * soft limit, SIGKILL at the hard one. */
	unsigned long long cpu_s = (unsigned long long)(limits[PC_LIM_CPU_MS] + 999) / 1000;

	add_rlimit(rc, RLIMIT_CPU, cpu_s, cpu_s + 1);
	add_rlimit(rc, RLIMIT_FSIZE, (unsigned long long)limits[PC_LIM_FILE_BYTES],
		   (unsigned long long)limits[PC_LIM_FILE_BYTES]);
	add_rlimit(rc, RLIMIT_NOFILE, NOFILE_LIMIT, NOFILE_LIMIT);
	add_rlimit(rc, RLIMIT_CORE, 0, 0);
	add_rlimit(rc, RLIMIT_STACK, STACK_LIMIT, STACK_LIMIT);
	/* Twice the cgroup cap: pids.max fires first (and is the evidence); this
	 * bounds a fork bomb where no cgroup is available. */
	add_rlimit(rc, RLIMIT_NPROC, 2ULL * (unsigned long long)limits[PC_LIM_PIDS],
		   2ULL * (unsigned long long)limits[PC_LIM_PIDS]);
}

/* SIGTERM/SIGINT/SIGHUP end the job cleanly: blocked here and read from a
 * signalfd in the pump (no handler, no threads). The sandbox child unblocks
 * them right after clone. */
static int block_signals(struct pc_resources *rc, struct pc_error *err)
{
	sigset_t set, blocked;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	/* SIGPIPE too, but not into the signalfd: a reader that goes away
	 * (`pycell exec ... | head`) must not kill pycell mid-job, leaving its
	 * cgroup and lease behind; the write fails with EPIPE instead. */
	blocked = set;
	sigaddset(&blocked, SIGPIPE);
	if (sigprocmask(SIG_BLOCK, &blocked, NULL) < 0)
		return pc_error_set(err, errno, "block signals");
	rc->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (rc->signal_fd < 0)
		return pc_error_set(err, errno, "signalfd");
	return 0;
}

int pc_resources_prepare(struct pc_resources *rc, const long long limits[PC_LIM_COUNT], bool require_cgroups,
			 struct pc_sandbox_config *cfg, struct pc_error *err)
{
	int r;

	if (!rc->signals_ignored && (r = block_signals(rc, err)) < 0)
		return r;
	if (geteuid() == 0 && !rc->zygote_uid) {
		if ((r = pc_lease_acquire(&rc->lease, err)) < 0)
			return pc_error_wrap(err, "uid lease");
		cfg->host_uid = rc->lease.uid;
		cfg->host_gid = (gid_t)rc->lease.uid;
	}
	/* Warm on v2 the job's group was made ahead, with its spare. */
	if (rc->cg_tree)
		r = pc_cgroup_prepare_adopt(&rc->cg, rc->cg_tree, limits, err);
	else if (rc->cg_parked && pc_cgroup_reuse(rc->cg_parked, &rc->cg, limits))
		r = 0;
	else
		r = pc_cgroup_prepare(&rc->cg, limits, err);
	if (r < 0)
		return r;
	rc->cg_ready = true;
	if (require_cgroups && rc->cg.unapplied[0])
		return pc_error_set(err, EPERM,
				    "the policy requires cgroups, but these limits cannot be enforced here: %s "
				    "(run as root, or under a delegated cgroup v2 subtree)",
				    rc->cg.unapplied);
	cfg->cgroup = rc->cg.version ? &rc->cg : NULL;
	plan_rlimits(rc, limits);
	cfg->rlimits = rc->rl;
	cfg->n_rlimits = rc->n_rl;
	rc->cpu_limit_ns = limits[PC_LIM_CPU_MS] * 1000000LL;
	return 0;
}

int pc_resources_watch(void *ctx)
{
	struct pc_resources *rc = ctx;
	long long ns;

	if (!rc->cg.version || pc_cgroup_cpu_ns(&rc->cg, &ns) < 0 || ns < rc->cpu_limit_ns)
		return 0;
	rc->cpu_killed = true;
	pc_cgroup_kill(&rc->cg);
	return 1;
}

void pc_resources_collect(struct pc_resources *rc)
{
	struct rusage ru;

	/* pycell's only child is the sandbox's pid 1, which reaped the job:
	 * RUSAGE_CHILDREN covers every process of the job. ru_maxrss is the
	 * largest single process, the fallback for peak memory. */
	if (getrusage(RUSAGE_CHILDREN, &ru) == 0) {
		rc->ru_cpu_ns = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
				(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
		rc->ru_maxrss_bytes = ru.ru_maxrss * 1024LL;
	}
	if (rc->cg_ready && rc->cg.version && pc_cgroup_stats(&rc->cg, &rc->stats, NULL) == 0) {
		rc->have_stats = true;
		pc_cgroup_kill(&rc->cg);
	} else {
		rc->stats.cpu_ns = rc->ru_cpu_ns;
		rc->stats.peak_memory_bytes = rc->ru_maxrss_bytes;
	}
	rc->stats.cpu_exhausted = rc->cpu_killed || rc->stats.cpu_ns >= rc->cpu_limit_ns;
}

void pc_resources_release(struct pc_resources *rc)
{
	if (rc->cg_ready) {
		pc_cgroup_kill(&rc->cg);
		if (!rc->cg_parked || !pc_cgroup_park(&rc->cg, rc->cg_parked))
			pc_cgroup_destroy(&rc->cg);
		rc->cg_ready = false;
	}
	/* The lease goes after the cgroup: its uid owns no process by now. */
	pc_lease_release(&rc->lease);
	cleanup_closep(&rc->signal_fd);
	rc->signal_fd = -1;
	/* The signals stay blocked: pycell prints its result and exits next,
	 * and a second SIGTERM must not cut that short. */
}

/* ---------------------------------------------------------------- verdicts */

static json_object *report_details(json_object *report, const char **type)
{
	json_object *e, *d, *t;

	*type = "";
	if (!report || !json_object_object_get_ex(report, "error", &e) || !json_object_is_type(e, json_type_object) ||
	    !json_object_object_get_ex(e, "details", &d) || !json_object_is_type(d, json_type_object))
		return NULL;
	if (json_object_object_get_ex(d, "type", &t) && json_object_is_type(t, json_type_string))
		*type = json_object_get_string(t);
	return d;
}

/* ENOSPC (tmpfs full) or EFBIG (RLIMIT_FSIZE; CPython ignores SIGXFSZ) as
 * the shim reports it: details.errno, else the "[Errno N]" OSError text. */
static int disk_errno(json_object *report)
{
	json_object *e, *d, *n, *m;
	const char *type, *msg;

	d = report_details(report, &type);
	if (!d)
		return 0;
	if (json_object_object_get_ex(d, "errno", &n) && json_object_is_type(n, json_type_int)) {
		int v = json_object_get_int(n);
		return v == ENOSPC || v == EFBIG || v == EDQUOT ? v : 0;
	}
	if (!strstr(type, "Error") || !json_object_object_get_ex(report, "error", &e) ||
	    !json_object_object_get_ex(e, "message", &m) || !json_object_is_type(m, json_type_string))
		return 0;
	msg = json_object_get_string(m);
	if (strstr(msg, "[Errno 28]"))
		return ENOSPC;
	if (strstr(msg, "[Errno 27]"))
		return EFBIG;
	return 0;
}

static bool report_failed(json_object *report)
{
	json_object *ok;

	return report && json_object_object_get_ex(report, "ok", &ok) && json_object_is_type(ok, json_type_boolean) &&
	       !json_object_get_boolean(ok);
}

static void add(struct pc_outcome *out, int *n, int max, const char *code, json_object *details, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void add(struct pc_outcome *out, int *n, int max, const char *code, json_object *details, const char *fmt, ...)
{
	va_list ap;

	if (*n >= max) {
		json_object_put(details);
		return;
	}
	out[*n].code = code;
	out[*n].details = details;
	va_start(ap, fmt);
	vsnprintf(out[*n].message, sizeof(out[*n].message), fmt, ap);
	va_end(ap);
	(*n)++;
}

static json_object *evidence(const char *what)
{
	json_object *d = json_object_new_object();
	json_object_object_add(d, "evidence", json_object_new_string(what));
	return d;
}

int pc_resources_outcomes(const struct pc_run *r, json_object *report, struct pc_outcome *out, int max)
{
	const struct pc_resources *rc = &r->rc;
	const struct pc_cgroup_stats *st = &rc->stats;
	bool v2 = rc->cg.version == 2, sig = r->have_status && WIFSIGNALED(r->job_status);
	bool failed =
	    report_failed(report) || (r->have_status && !(WIFEXITED(r->job_status) && WEXITSTATUS(r->job_status) == 0));
	const char *type;
	int n = 0, de;

	report_details(report, &type);
	if (r->pump.interrupted) {
		json_object *d = json_object_new_object();
		json_object_object_add(d, "reason", json_object_new_string("interrupted"));
		json_object_object_add(d, "signal", json_object_new_int(r->pump.interrupted));
		add(out, &n, max, "INTERNAL_ERROR", d, "pycell received %s; the job was killed and cleaned up",
		    sigabbrev_np(r->pump.interrupted) ? sigabbrev_np(r->pump.interrupted) : "a signal");
	}
	if (rc->have_stats && (st->oom_killed || (st->memory_hit && failed && strcmp(type, "MemoryError") == 0)))
		add(out, &n, max, "MEMORY_LIMIT",
		    evidence(st->oom_killed ? (v2 ? "memory.events oom_kill" : "memory.oom_control oom_kill")
					    : (v2 ? "memory.events max" : "memory.failcnt")),
		    "the job passed its memory limit of %lld MB", r->limits[PC_LIM_MEMORY_MB]);
	if ((de = disk_errno(report)) != 0)
		add(out, &n, max, "DISK_LIMIT",
		    evidence(de == EFBIG    ? "EFBIG"
			     : de == ENOSPC ? "ENOSPC"
					    : "EDQUOT"),
		    de == EFBIG ? "a file passed the file size limit of %lld bytes"
				: "the workdir is full (tmpfs limit of %lld MB)",
		    de == EFBIG ? r->limits[PC_LIM_FILE_BYTES] : r->limits[PC_LIM_TMPFS_MB]);
	else if (sig && WTERMSIG(r->job_status) == SIGXFSZ)
		add(out, &n, max, "DISK_LIMIT", evidence("SIGXFSZ"), "a file passed the file size limit of %lld bytes",
		    r->limits[PC_LIM_FILE_BYTES]);
	/* rusage and RLIMIT_CPU disagree: a busy loop that got SIGXCPU at its
	 * 1 s limit showed 917-1003 ms in its parent's rusage with the CPUs
	 * contended (this VM, plain fork + setrlimit). A SIGXCPU death within
	 * 20% of cpu_ms counts (the signal alone is no evidence). */
	if (rc->cpu_killed || (failed && st->cpu_exhausted) ||
	    (sig && WTERMSIG(r->job_status) == SIGXCPU && st->cpu_ns >= rc->cpu_limit_ns / 100 * 80))
		add(out, &n, max, "CPU_LIMIT",
		    evidence(rc->cpu_killed ? (v2 ? "cpu.stat usage_usec" : "cpuacct.usage") : "cpu time (RLIMIT_CPU)"),
		    "cpu time limit of %lld ms reached", r->limits[PC_LIM_CPU_MS]);
	if (rc->have_stats && st->pids_hit && failed)
		add(out, &n, max, "PIDS_LIMIT", evidence("pids.events max"), "the job hit its process limit of %lld",
		    r->limits[PC_LIM_PIDS]);
	return n;
}

void pc_resources_metrics(const struct pc_run *r, json_object *metrics)
{
	const struct pc_resources *rc = &r->rc;
	json_object *un = json_object_new_array();
	char list[sizeof(rc->cg.unapplied)], *save = NULL;

	char ms[32];

	snprintf(ms, sizeof(ms), "%.3f", (double)rc->stats.cpu_ns / 1e6);
	json_object_object_add(metrics, "cpu_ms", json_object_new_double_s((double)rc->stats.cpu_ns / 1e6, ms));
	json_object_object_add(metrics, "peak_memory_bytes",
			       rc->stats.peak_memory_bytes >= 0 ? json_object_new_int64(rc->stats.peak_memory_bytes)
								: NULL);
	json_object_object_add(metrics, "cgroup_version", json_object_new_int(rc->cg.version));
	snprintf(list, sizeof(list), "%s", rc->cg.unapplied);
	for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
		json_object_array_add(un, json_object_new_string(t));
	json_object_object_add(metrics, "unapplied_limits", un);
}

int pc_debug_fds(const char *when, int status)
{
	const char *on = getenv("PYCELL_DEBUG_FDS");
	struct dirent *de;
	DIR *d;
	int n = -1; /* the directory's own fd */

	if (!on || strcmp(on, "1") != 0 || !(d = opendir("/proc/self/fd")))
		return status;
	while ((de = readdir(d))) {
		if (de->d_name[0] != '.')
			n++;
	}
	closedir(d);
	fprintf(stderr, "pycell: fds at %s: %d\n", when, n);
	return status;
}
