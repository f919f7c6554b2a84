/* cgroup front end: detection, the per-job name, shared file helpers, gc.
 * The hierarchy-specific writes live in cgroup_v1.c and cgroup_v2.c. */
#define _GNU_SOURCE
#include "cgroup.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "cgroup_internal.h"
#include "util.h"

const char *const cg_v1_controllers[CG_V1_NCTL] = { "memory", "pids", "cpu", "cpuacct" };

/* ------------------------------------------------------------ file helpers */

int cg_vwrite_fd(int fd, const char *name, struct pc_error *err, const char *fmt, va_list ap)
{
	char buf[128];
	ssize_t n;
	int len = vsnprintf(buf, sizeof(buf), fmt, ap);

	if (len < 0 || (size_t)len >= sizeof(buf))
		return pc_error_set(err, EINVAL, "cgroup value for '%s' too long", name);
	do
		n = write(fd, buf, (size_t)len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return pc_error_set(err, errno, "write '%s' to '%s'", buf, name);
	if (n != len)
		return pc_error_set(err, EIO, "short write of '%s' to '%s' (%zd of %d bytes)", buf, name, n, len);
	return 0;
}

int cg_write(int dirfd, const char *name, struct pc_error *err, const char *fmt, ...)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	va_list ap;
	int r;

	if (fd < 0)
		return pc_error_set(err, errno, "open cgroup file '%s'", name);
	va_start(ap, fmt);
	r = cg_vwrite_fd(fd, name, err, fmt, ap);
	va_end(ap);
	return r;
}

/* With `whole` set, a read that leaves room in buf ends it: a cgroup value
 * file's text is one seq_file record, which the kernel hands over in one
 * read when it fits (the EOF read would only return 0). Lists such as
 * cgroup.procs come a page at a time and are read to EOF. */
ssize_t cg_read_fd(int fd, char *buf, size_t len, bool whole)
{
	size_t got = 0;

	/* pread from 0: a file kept open (cgroup_v1.c) is read afresh each time. */
	while (got + 1 < len) {
		ssize_t n = pread(fd, buf + got, len - 1 - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
		if (whole && got + 1 < len)
			break;
	}
	buf[got] = '\0';
	return (ssize_t)got;
}

static ssize_t read_text(int dirfd, const char *name, char *buf, size_t len, bool whole)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	return fd < 0 ? -errno : cg_read_fd(fd, buf, len, whole);
}

ssize_t cg_read(int dirfd, const char *name, char *buf, size_t len)
{
	return read_text(dirfd, name, buf, len, false);
}

long long cg_parse_key(const char *buf, const char *key)
{
	size_t klen = strlen(key);

	for (const char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
			return strtoll(line + klen + 1, NULL, 10);
	}
	return -1;
}

long long cg_read_key(int dirfd, const char *name, const char *key)
{
	char buf[4096];

	return read_text(dirfd, name, buf, sizeof(buf), true) < 0 ? -1 : cg_parse_key(buf, key);
}

long long cg_parse_ll(const char *buf)
{
	char *end;
	long long v = strtoll(buf, &end, 10);

	return end == buf ? -1 : v;
}

long long cg_read_ll(int dirfd, const char *name)
{
	char buf[64];

	return read_text(dirfd, name, buf, sizeof(buf), true) <= 0 ? -1 : cg_parse_ll(buf);
}

int cg_open_dir(int atfd, const char *rel)
{
	return openat(atfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
}

int cg_mkdir_parents(int rootfd, const char *rel, struct pc_error *err)
{
	char path[PATH_MAX], *p;

	snprintf(path, sizeof(path), "%s", rel);
	for (p = path;; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (path[0] && mkdirat(rootfd, path, 0755) < 0 && errno != EEXIST)
				return pc_error_set(err, errno, "mkdir cgroup '%s'", path);
			if (c == '\0')
				return 0;
			*p = c;
		}
	}
}

/* SIGKILLs the pids listed in buf; true when any was signalled. */
static bool kill_listed(char *buf)
{
	bool any = false;

	for (char *s = buf; *s;) {
		char *end;
		long pid = strtol(s, &end, 10);
		if (end == s)
			break;
		if (pid > 0 && kill((pid_t)pid, SIGKILL) == 0)
			any = true;
		s = end;
		while (*s == '\n')
			s++;
	}
	return any;
}

bool cg_kill_procs(int dirfd)
{
	for (int round = 0; round < 100; round++) {
		char buf[8192];
		ssize_t n = cg_read(dirfd, "cgroup.procs", buf, sizeof(buf));

		if (n <= 0)
			return n == 0;
		if (!kill_listed(buf))
			return false;
		nanosleep(&(struct timespec){ 0, 2000000 }, NULL);
	}
	return false;
}

int cg_rmdir(int parentfd, const char *name)
{
	/* The group empties when its last task has fully exited, which can
	 * trail the reaping of pid 1 by a moment. */
	for (int i = 0; i < 200; i++) {
		if (unlinkat(parentfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			return -errno;
		nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
	}
	return -EBUSY;
}

int cg_remove_group(int parentfd, const char *name, int dirfd)
{
	if (unlinkat(parentfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
		return 0;
	if (errno != EBUSY)
		return -errno;
	/* A task is still in it, or still leaving: kill what is listed, then
	 * wait for the group to empty. */
	if (dirfd >= 0)
		(void)cg_kill_procs(dirfd);
	return cg_rmdir(parentfd, name);
}

int cg_remove_tree(int parentfd, const char *name)
{
	_cleanup_close_ int fd = cg_open_dir(parentfd, name);
	struct dirent *de;
	DIR *d;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	/* cgroup.kill takes every descendant too; v1 has none of these. */
	if (cg_write(fd, "cgroup.kill", NULL, "1") < 0)
		(void)cg_kill_procs(fd);
	if ((d = fdopendir(dup(fd)))) {
		while ((de = readdir(d))) {
			if (de->d_type == DT_DIR && de->d_name[0] != '.')
				(void)cg_remove_tree(fd, de->d_name);
		}
		closedir(d);
	}
	return cg_rmdir(parentfd, name);
}

/* --------------------------------------------------------------- detection */

static const char *env_or(const char *name, const char *def)
{
	const char *v = getenv(name);
	return v && *v ? v : def;
}

static int detect_version(const char *root)
{
	const char *forced = getenv("PYCELL_CGROUP_VERSION");
	char path[PATH_MAX], buf[512];
	struct statfs sfs;
	_cleanup_close_ int fd = -1;

	if (forced && *forced)
		return atoi(forced);
	if (statfs(root, &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC) {
		fd = cg_open_dir(AT_FDCWD, root);
		/* A unified hierarchy without the memory controller cannot
		 * enforce anything that matters here. */
		if (fd >= 0 && cg_read(fd, "cgroup.controllers", buf, sizeof(buf)) > 0 && strstr(buf, "memory"))
			return 2;
		return 0;
	}
	snprintf(path, sizeof(path), "%s/memory", root);
	if (statfs(path, &sfs) == 0 && sfs.f_type == CGROUP_SUPER_MAGIC)
		return 1;
	return 0;
}

static int valid_parent(const char *p)
{
	/* Relative, no "..", no empty component: it is joined under the root. */
	if (!*p || *p == '/' || strstr(p, "..") || strstr(p, "//") || p[strlen(p) - 1] == '/')
		return 0;
	for (; *p; p++) {
		if (!isalnum((unsigned char)*p) && !strchr("/-_.", *p))
			return 0;
	}
	return 1;
}

static void none_applied(struct pc_cgroup *cg)
{
	cg->version = 0;
	snprintf(cg->unapplied, sizeof(cg->unapplied), "memory,pids,cpu");
}

struct cg_backend *cg_backend_alloc(void)
{
	struct cg_backend *b = calloc(1, sizeof(*b));

	for (int i = 0; b && i < CG_V1_NCTL; i++)
		b->dir[i] = b->pdir[i] = -1;
	for (int i = 0; b && i < CG_MAX_OPEN; i++)
		b->open[i].fd = -1;
	return b;
}

/* The common start of a group: env, detection, a fresh name under the
 * parent. *out is NULL when no usable hierarchy exists (version 0). */
static int backend_new(struct pc_cgroup *cg, const char *prefix, struct cg_backend **out, struct pc_error *err)
{
	struct cg_backend *b;
	unsigned int rnd = 0;

	memset(cg, 0, sizeof(*cg));
	cg->clone_fd = -1;
	*out = NULL;
	b = cg_backend_alloc();
	if (!b)
		return pc_error_set(err, ENOMEM, "cgroup state");
	snprintf(b->root, sizeof(b->root), "%s", env_or("PYCELL_CGROUP_ROOT", "/sys/fs/cgroup"));
	snprintf(b->parent, sizeof(b->parent), "%s", env_or("PYCELL_CGROUP_PARENT", PC_CGROUP_DEFAULT_PARENT));
	if (!valid_parent(b->parent)) {
		free(b);
		return pc_error_set(
		    err, EINVAL,
		    "PYCELL_CGROUP_PARENT '%s': give a relative path such as 'pycell' (letters, digits, "
		    "'/', '-', '_', '.')",
		    b->parent);
	}
	b->version = detect_version(b->root);
	if (b->version != 1 && b->version != 2) {
		free(b);
		none_applied(cg);
		return 0;
	}
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (unsigned int)now_ns();
	snprintf(cg->name, sizeof(cg->name), "%s-%d-%08x", prefix, (int)getpid(), rnd);
	*out = b;
	return 0;
}

/* The common end: r is the backend's result. */
static int backend_done(struct pc_cgroup *cg, struct cg_backend *b, int r, struct pc_error *err)
{
	cg->backend = b;
	cg->version = b->version;
	if (r < 0) {
		bool denied = -r == EACCES || -r == EPERM || -r == EROFS;
		char where[PATH_MAX + 100];

		snprintf(where, sizeof(where), "cgroup v%d '%s/%s'", b->version, b->parent, cg->name);
		pc_cgroup_destroy(cg);
		if (denied && geteuid() != 0) {
			/* Rootless without a delegated subtree: run, but say so. */
			none_applied(cg);
			return 0;
		}
		return pc_error_wrap(err, "%s", where);
	}
	if (b->version == 2)
		cg->clone_fd = b->dir[0];
	return 0;
}

int pc_cgroup_prepare(struct pc_cgroup *cg, const long long limits[PC_LIM_COUNT], struct pc_error *err)
{
	struct cg_backend *b;
	int r = backend_new(cg, "job", &b, err);

	if (r < 0 || !b)
		return r;
	r = b->version == 2 ? cg_v2_prepare(b, cg->name, limits, err) : cg_v1_prepare(b, cg->name, limits, err);
	return backend_done(cg, b, r, err);
}

int pc_cgroup_tree_prepare(struct pc_cgroup *tree, uid_t owner, struct pc_error *err)
{
	struct cg_backend *b;
	int r = backend_new(tree, "zygote", &b, err);

	if (r < 0 || !b)
		return r;
	if (b->version != 2) {
		/* v1: each job's handler makes the job's groups and attaches. */
		tree->version = b->version;
		tree->name[0] = '\0';
		free(b);
		return 0;
	}
	b->owner = owner;
	return backend_done(tree, b, cg_v2_tree_prepare(b, tree->name, err), err);
}

int pc_cgroup_prepare_adopt(struct pc_cgroup *cg, const struct pc_cgroup *tree, const long long limits[PC_LIM_COUNT],
			    struct pc_error *err)
{
	const struct cg_backend *t = tree->backend;
	struct cg_backend *b;

	memset(cg, 0, sizeof(*cg));
	cg->clone_fd = -1;
	if (!t || !(b = cg_backend_alloc()))
		return pc_error_set(err, t ? ENOMEM : EINVAL, "cgroup state");
	b->version = 2;
	b->adopt = true;
	memcpy(b->limits, limits, sizeof(b->limits));
	snprintf(b->root, sizeof(b->root), "%s", t->root);
	snprintf(b->parent, sizeof(b->parent), "%.2048s/%.96s", t->parent, tree->name);
	cg->backend = b;
	cg->version = 2;
	return 0;
}

int pc_cgroup_tree_settle(struct pc_cgroup *tree, pid_t zygote, struct pc_error *err)
{
	return tree->backend ? cg_v2_tree_settle(tree->backend, zygote, err) : 0;
}

int pc_cgroup_tree_group(const struct pc_cgroup *tree, struct pc_error *err)
{
	unsigned int rnd = 0;
	char name[64];

	if (!tree->backend)
		return pc_error_set(err, EINVAL, "no cgroup tree");
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (unsigned int)now_ns();
	snprintf(name, sizeof(name), "job-%d-%08x", (int)getpid(), rnd);
	return cg_v2_tree_group(tree->backend, name, err);
}

int pc_cgroup_setup_parent(struct pc_cgroup *cg, pid_t pid, struct pc_error *err)
{
	struct cg_backend *b = cg->backend;

	if (!b)
		return 0;
	if (b->adopt)
		return cg_v2_adopt(b, pid, cg->name, sizeof(cg->name), err);
	return b->version == 2 ? cg_v2_attach(b, pid, err) : cg_v1_attach(b, pid, err);
}

void pc_cgroup_kill(struct pc_cgroup *cg)
{
	struct cg_backend *b = cg->backend;

	if (b)
		b->version == 2 ? cg_v2_kill(b) : cg_v1_kill(b);
}

int pc_cgroup_cpu_ns(struct pc_cgroup *cg, long long *ns)
{
	struct cg_backend *b = cg->backend;

	if (!b)
		return -ENOENT;
	return b->version == 2 ? cg_v2_cpu_ns(b, ns) : cg_v1_cpu_ns(b, ns);
}

ssize_t pc_cgroup_read_file(struct pc_cgroup *cg, const char *controller, const char *name, char *buf, size_t len)
{
	struct cg_backend *b = cg->backend;
	int i = 0;

	if (!b)
		return -ENOENT;
	if (b->version == 1) {
		for (i = 0; i < CG_V1_NCTL && strcmp(cg_v1_controllers[i], controller) != 0; i++)
			;
		if (i == CG_V1_NCTL)
			return -EINVAL;
	}
	return b->dir[i] < 0 ? -ENOENT : cg_read(b->dir[i], name, buf, len);
}

int pc_cgroup_stats(struct pc_cgroup *cg, struct pc_cgroup_stats *st, struct pc_error *err)
{
	struct cg_backend *b = cg->backend;

	memset(st, 0, sizeof(*st));
	st->peak_memory_bytes = -1;
	if (!b)
		return pc_error_set(err, ENOENT, "no cgroup");
	b->version == 2 ? cg_v2_stats(b, st) : cg_v1_stats(b, st);
	return 0;
}

bool pc_cgroup_park(struct pc_cgroup *cg, struct pc_cgroup *parked)
{
	const struct cg_backend *b = cg->backend;

	if (!b || b->version != 1 || !b->empty || parked->backend)
		return false;
	*parked = *cg;
	cg->backend = NULL;
	return true;
}

bool pc_cgroup_reuse(struct pc_cgroup *parked, struct pc_cgroup *cg, const long long limits[PC_LIM_COUNT])
{
	struct cg_backend *b = parked->backend;

	if (!b)
		return false;
	if (cg_v1_reuse(b, limits, NULL) < 0) {
		pc_cgroup_destroy(parked);
		return false;
	}
	*cg = *parked;
	parked->backend = NULL;
	b->empty = false;
	return true;
}

void pc_cgroup_destroy(struct pc_cgroup *cg)
{
	struct cg_backend *b = cg->backend;

	if (!b)
		return;
	b->version == 2 ? cg_v2_destroy(b, cg->name) : cg_v1_destroy(b, cg->name);
	for (int i = 0; i < CG_V1_NCTL; i++) {
		cleanup_closep(&b->dir[i]);
		cleanup_closep(&b->pdir[i]);
	}
	for (int i = 0; i < CG_MAX_OPEN; i++)
		cleanup_closep(&b->open[i].fd);
	free(b);
	cg->backend = NULL;
	cg->clone_fd = -1;
}

/* --------------------------------------------------------------------- gc */

/* A job group's owner is the pycell named in it; it is alive when that pid
 * exists and is a pycell (pid reuse by anything else does not count). */
static bool owner_alive(const char *name)
{
	char path[64], comm[32];
	int pid = 0;
	_cleanup_close_ int fd = -1;
	ssize_t n;

	if ((sscanf(name, "job-%d-", &pid) != 1 && sscanf(name, "zygote-%d-", &pid) != 1) || pid <= 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, comm, sizeof(comm) - 1);
	if (n <= 0)
		return false;
	comm[n] = '\0';
	return strncmp(comm, "pycell", 6) == 0;
}

/* Removes the stale job groups in one hierarchy's parent directory. */
static int gc_dir(const char *parent_path, int *removed)
{
	_cleanup_close_ int pfd = cg_open_dir(AT_FDCWD, parent_path);
	DIR *d;
	struct dirent *de;
	int failed = 0;

	if (pfd < 0)
		return errno == ENOENT ? 0 : -errno;
	d = fdopendir(dup(pfd));
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR ||
		    (strncmp(de->d_name, "job-", 4) != 0 && strncmp(de->d_name, "zygote-", 7) != 0) ||
		    owner_alive(de->d_name))
			continue;
		if (cg_remove_tree(pfd, de->d_name) == 0)
			(*removed)++;
		else
			failed++;
	}
	closedir(d);
	return failed ? -EBUSY : 0;
}

int pc_cgroup_gc(int *removed, struct pc_error *err)
{
	const char *root = env_or("PYCELL_CGROUP_ROOT", "/sys/fs/cgroup");
	const char *parent = env_or("PYCELL_CGROUP_PARENT", PC_CGROUP_DEFAULT_PARENT);
	char path[PATH_MAX * 2 + 32];
	int version = detect_version(root), r = 0, rr;

	*removed = 0;
	if (!valid_parent(parent))
		return pc_error_set(err, EINVAL, "PYCELL_CGROUP_PARENT '%s' is not a relative path", parent);
	if (version == 2) {
		snprintf(path, sizeof(path), "%s/%s", root, parent);
		r = gc_dir(path, removed);
	} else if (version == 1) {
		/* A group lives in every controller: count it once (memory). */
		for (int i = CG_V1_NCTL - 1; i >= 0; i--) {
			int n = 0;
			snprintf(path, sizeof(path), "%s/%s/%s", root, cg_v1_controllers[i], parent);
			if ((rr = gc_dir(path, &n)) < 0)
				r = rr;
			if (i == 0)
				*removed = n;
		}
	}
	if (r < 0)
		return pc_error_set(err, -r, "remove stale cgroups under '%s/.../%s'", root, parent);
	return 0;
}
