/* Shared between cgroup.c and its two backends; nothing else includes it. */
#ifndef PYCELL_CGROUP_INTERNAL_H
#define PYCELL_CGROUP_INTERNAL_H

#include <linux/limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/types.h>

#include "cgroup.h"

#define CG_V1_NCTL  4  /* memory, pids, cpu, cpuacct */
#define CG_MAX_OPEN 20 /* v1: a group's files kept open (cgroup_v1.c) */

struct cg_backend {
	int version;
	char root[PATH_MAX];	 /* mount root: /sys/fs/cgroup */
	char parent[PATH_MAX];	 /* relative: "pycell" */
	int dir[CG_V1_NCTL];	 /* job group per controller (v2: dir[0] only) */
	int pdir[CG_V1_NCTL];	 /* its parent, kept for the rmdir (-1: none) */
	bool shared[CG_V1_NCTL]; /* v1: same hierarchy as an earlier controller */
	bool created[CG_V1_NCTL];
	bool empty;			/* v1: cgroup.procs read empty since the attach (cg_v1_kill) */
	uid_t owner;			/* v2 zygote tree: the zygote's host uid */
	bool adopt;			/* v2 warm job: setup_parent adopts the group */
	long long limits[PC_LIM_COUNT]; /* ... and then writes these (v1: the limits written last, 0: none yet) */
	/* v1 counters that cannot be reset, as a reused group starts a job */
	long long base_oom_kill, base_pids_max;
	struct {
		int ctl, mode;
		const char *name; /* a string literal of cgroup_v1.c */
		int fd;
	} open[CG_MAX_OPEN];
	int n_open;
};

extern const char *const cg_v1_controllers[CG_V1_NCTL];

/* Writes the text to dirfd/name in one write(2); a short write is an error
 * (isolate's cg_write): cgroup files take a value in one go or not at all. */
int cg_write(int dirfd, const char *name, struct pc_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same on an open file (name: for messages). */
int cg_vwrite_fd(int fd, const char *name, struct pc_error *err, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
/* Reads an open file from its start (see read_text in cgroup.c for whole). */
ssize_t cg_read_fd(int fd, char *buf, size_t len, bool whole);
/* The value of a "key N" line in buf, or of a single-number text; -1 when absent. */
long long cg_parse_key(const char *buf, const char *key);
long long cg_parse_ll(const char *buf);
/* Reads dirfd/name into buf (NUL-terminated). Returns length or -errno. */
ssize_t cg_read(int dirfd, const char *name, char *buf, size_t len);
/* Value of "key N" lines (memory.events, pids.events, cpu.stat,
 * memory.oom_control); -1 when absent. */
long long cg_read_key(int dirfd, const char *name, const char *key);
/* A single number file; -1 when absent or unparsable. */
long long cg_read_ll(int dirfd, const char *name);
/* mkdir -p of rel under rootfd. */
int cg_mkdir_parents(int rootfd, const char *rel, struct pc_error *err);
/* SIGKILLs every pid in dirfd/cgroup.procs until it reads empty; true
 * when it did (false: unreadable, or pids listed that cannot be killed). */
bool cg_kill_procs(int dirfd);
/* rmdir with a short retry: the last exiting task may still be leaving. */
int cg_rmdir(int parentfd, const char *name);
/* rmdir of a group believed empty: one unlinkat, and only when the group
 * is busy the kill (of dirfd's pids) and the retrying rmdir. */
int cg_remove_group(int parentfd, const char *name, int dirfd);
/* A zeroed backend with every fd -1, or NULL (ENOMEM). */
struct cg_backend *cg_backend_alloc(void);
int cg_open_dir(int atfd, const char *rel);
/* Kills what is in parentfd/name, removes its child groups, then it. */
int cg_remove_tree(int parentfd, const char *name);

int cg_v1_prepare(struct cg_backend *b, const char *name, const long long *limits, struct pc_error *err);
int cg_v1_attach(struct cg_backend *b, pid_t pid, struct pc_error *err);
void cg_v1_kill(struct cg_backend *b);
int cg_v1_cpu_ns(struct cg_backend *b, long long *ns);
void cg_v1_stats(struct cg_backend *b, struct pc_cgroup_stats *st);
void cg_v1_destroy(struct cg_backend *b, const char *name);
int cg_v1_reuse(struct cg_backend *b, const long long *limits, struct pc_error *err);

int cg_v2_prepare(struct cg_backend *b, const char *name, const long long *limits, struct pc_error *err);
int cg_v2_attach(struct cg_backend *b, pid_t pid, struct pc_error *err);
void cg_v2_kill(struct cg_backend *b);
int cg_v2_cpu_ns(struct cg_backend *b, long long *ns);
void cg_v2_stats(struct cg_backend *b, struct pc_cgroup_stats *st);
void cg_v2_destroy(struct cg_backend *b, const char *name);
/* Warm mode (cgroup_warm.c). */
int cg_v2_make(struct cg_backend *b, const char *name, struct pc_error *err);
int cg_v2_enable_controllers(int rootfd, const char *parent, struct pc_error *err);
int cg_v2_enable_in(int fd, const char *where, struct pc_error *err);
int cg_v2_write_limits(int dir, const long long *limits, struct pc_error *err);
int cg_v2_tree_prepare(struct cg_backend *b, const char *name, struct pc_error *err);
int cg_v2_tree_settle(struct cg_backend *b, pid_t zygote, struct pc_error *err);
int cg_v2_tree_group(struct cg_backend *b, const char *name, struct pc_error *err);
int cg_v2_adopt(struct cg_backend *b, pid_t pid, char *name, size_t name_len, struct pc_error *err);

#endif
