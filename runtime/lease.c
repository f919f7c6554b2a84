/* uid leases: see lease.h. The one subtle point is the unlink-on-release
 * race: a competitor may have opened <n>.lock just before we unlinked it
 * and then lock the orphaned inode, while a third process creates a fresh
 * file under the same name. So after flock succeeds the holder checks that
 * the path still names the inode it locked (the pattern of flock(1) users
 * and systemd's make_lock_file), and retries otherwise. */
#define _GNU_SOURCE
#include "lease.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

struct lease_conf {
	char dir[256];
	unsigned long base, count;
};

static int read_conf(struct lease_conf *c, struct pc_error *err)
{
	const char *d = getenv("PYCELL_LEASE_DIR"), *b = getenv("PYCELL_UID_BASE"), *n = getenv("PYCELL_UID_COUNT");
	char *end;

	snprintf(c->dir, sizeof(c->dir), "%s", d && *d ? d : PC_LEASE_DIR);
	c->base = PC_LEASE_UID_BASE;
	c->count = PC_LEASE_UID_COUNT;
	if (b && *b) {
		c->base = strtoul(b, &end, 0);
		if (*end || c->base == 0)
			return pc_error_set(err, EINVAL, "PYCELL_UID_BASE '%s': give a number above 0", b);
	}
	if (n && *n) {
		c->count = strtoul(n, &end, 0);
		if (*end || c->count == 0 || c->count > 1000000)
			return pc_error_set(err, EINVAL, "PYCELL_UID_COUNT '%s': give 1..1000000", n);
	}
	/* The range must stay clear of root, of -1 (the invalid id) and of
	 * the overflow id. */
	if (c->base + c->count >= 0xfffffffeUL || c->base < 1000)
		return pc_error_set(err, EINVAL, "uid lease range %lu+%lu is not usable", c->base, c->count);
	return 0;
}

static int mkdir_p(const char *dir)
{
	char path[256];

	snprintf(path, sizeof(path), "%s", dir);
	for (char *p = path + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			if (mkdir(path, 0755) < 0 && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	}
	return mkdir(path, 0700) < 0 && errno != EEXIST ? -errno : 0;
}

/* Locks dir/<i>.lock without blocking. 1: locked (fd in *out), 0: busy. */
static int try_lock(int dirfd, unsigned long i, int *out)
{
	char name[32];
	struct stat a, b;
	int fd;

	snprintf(name, sizeof(name), "%lu.lock", i);
	fd = openat(dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		close(fd);
		return e == EWOULDBLOCK ? 0 : -e;
	}
	if (fstat(fd, &a) < 0 || fstatat(dirfd, name, &b, AT_SYMLINK_NOFOLLOW) < 0 || a.st_ino != b.st_ino ||
	    a.st_dev != b.st_dev) {
		close(fd);
		return 0; /* unlinked under us: treat as busy, the caller moves on */
	}
	*out = fd;
	return 1;
}

void pc_lease_init(struct pc_lease *l)
{
	*l = (struct pc_lease){ .fd = -1 };
}

int pc_lease_acquire(struct pc_lease *l, struct pc_error *err)
{
	struct lease_conf c;
	_cleanup_close_ int dirfd = -1;
	unsigned int start = 0;
	int r;

	pc_lease_init(l);
	if ((r = read_conf(&c, err)) < 0)
		return r;
	if ((r = mkdir_p(c.dir)) < 0)
		return pc_error_set(err, -r, "create lease directory '%s'", c.dir);
	dirfd = open(c.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dirfd < 0)
		return pc_error_set(err, errno, "open lease directory '%s'", c.dir);
	/* A random start keeps parallel pycells from all racing for slot 0. */
	if (getrandom(&start, sizeof(start), 0) != sizeof(start))
		start = (unsigned int)getpid();
	for (unsigned long k = 0; k < c.count; k++) {
		unsigned long i = (start + k) % c.count;
		int fd = -1;

		r = try_lock(dirfd, i, &fd);
		if (r < 0)
			return pc_error_set(err, -r, "lock '%s/%lu.lock'", c.dir, i);
		if (r == 1) {
			l->fd = fd;
			l->index = (unsigned int)i;
			l->uid = (uid_t)(c.base + i);
			return 0;
		}
	}
	return pc_error_set(err, EAGAIN,
			    "all %lu uid leases in '%s' are taken: raise PYCELL_UID_COUNT or run fewer jobs", c.count,
			    c.dir);
}

void pc_lease_release(struct pc_lease *l)
{
	struct lease_conf c;
	char path[300];

	if (l->fd < 0)
		return;
	if (read_conf(&c, NULL) == 0) {
		snprintf(path, sizeof(path), "%s/%u.lock", c.dir, l->index);
		(void)unlink(path); /* still locked: nobody can hold this inode now */
	}
	close(l->fd);
	l->fd = -1;
}

int pc_lease_gc(int *removed, struct pc_error *err)
{
	struct lease_conf c;
	_cleanup_close_ int dirfd = -1;
	struct dirent *de;
	DIR *d;
	int r;

	*removed = 0;
	if ((r = read_conf(&c, err)) < 0)
		return r;
	dirfd = open(c.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dirfd < 0)
		return errno == ENOENT ? 0 : pc_error_set(err, errno, "open lease directory '%s'", c.dir);
	d = fdopendir(dup(dirfd));
	if (!d)
		return pc_error_set(err, errno, "read lease directory '%s'", c.dir);
	while ((de = readdir(d))) {
		char *end;
		unsigned long i = strtoul(de->d_name, &end, 10);
		int fd = -1;

		if (end == de->d_name || strcmp(end, ".lock") != 0)
			continue;
		if (try_lock(dirfd, i, &fd) == 1) {
			/* Nobody holds it: the pycell that made it is gone. */
			if (unlinkat(dirfd, de->d_name, 0) == 0)
				(*removed)++;
			close(fd);
		}
	}
	closedir(d);
	return 0;
}
