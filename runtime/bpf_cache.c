/* Trust model: an entry is used only when it and its directory belong to
 * our euid and nobody else can write them, the same trust we give the
 * pycell binary itself. Entries are written to a temporary name and
 * renamed, so a reader never sees half a program. */
#define _GNU_SOURCE
#include "bpf_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <seccomp.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "util.h"

#define DEFAULT_DIR "/var/cache/pycell/bpf"

const char *pc_bpf_cache_dir(void)
{
	const char *d = getenv("PYCELL_CACHE_DIR");

	if (d && d[0] == '/')
		return d;
	return geteuid() == 0 ? DEFAULT_DIR : NULL;
}

void pc_bpf_cache_key(struct pc_sha256 *h, char key[PC_SHA256_HEX])
{
	const struct scmp_version *v = seccomp_version();
	unsigned char d[PC_SHA256_LEN];
	struct utsname u;
	char meta[sizeof(u.release) + 64];

	if (uname(&u) < 0)
		snprintf(u.release, sizeof(u.release), "?");
	snprintf(meta, sizeof(meta), "libseccomp %u.%u.%u kernel %s", v->major, v->minor, v->micro, u.release);
	pc_sha256_update(h, meta, strlen(meta) + 1);
	pc_sha256_final(h, d);
	for (int i = 0; i < PC_SHA256_LEN; i++)
		snprintf(key + 2 * i, 3, "%02x", d[i]);
}

static bool trusted(const struct stat *st)
{
	return st->st_uid == geteuid() && !(st->st_mode & (S_IWGRP | S_IWOTH));
}

static int open_dir(bool create)
{
	const char *dir = pc_bpf_cache_dir();
	struct stat st;
	int fd;

	if (!dir)
		return -1;
	if (create) {
		/* mkdir -p, each level private to us */
		char path[4096], *p;
		snprintf(path, sizeof(path), "%s", dir);
		for (p = path + 1; (p = strchr(p, '/')); p++) {
			*p = '\0';
			mkdir(path, 0755);
			*p = '/';
		}
		mkdir(path, 0700);
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !trusted(&st)) {
		close(fd);
		return -1;
	}
	return fd;
}

int pc_bpf_cache_load(const char key[PC_SHA256_HEX], struct sock_fprog *prog)
{
	_cleanup_close_ int dfd = open_dir(false), fd = -1;
	struct stat st;
	void *buf;

	if (dfd < 0)
		return 0;
	fd = openat(dfd, key, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || !trusted(&st))
		return 0;
	if (st.st_size == 0 || st.st_size % (off_t)sizeof(struct sock_filter) ||
	    st.st_size > BPF_MAXINSNS * (off_t)sizeof(struct sock_filter))
		return 0;
	buf = malloc((size_t)st.st_size);
	if (!buf)
		return 0;
	if (pread(fd, buf, (size_t)st.st_size, 0) != st.st_size) {
		free(buf);
		return 0;
	}
	prog->filter = buf;
	prog->len = (unsigned short)(st.st_size / (off_t)sizeof(struct sock_filter));
	return 1;
}

void pc_bpf_cache_store(const char key[PC_SHA256_HEX], const struct sock_fprog *prog)
{
	_cleanup_close_ int dfd = open_dir(true), fd = -1;
	char tmp[PC_SHA256_HEX + 32];
	size_t len = (size_t)prog->len * sizeof(struct sock_filter);

	if (dfd < 0)
		return;
	snprintf(tmp, sizeof(tmp), ".%s.%d", key, (int)getpid());
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return;
	if (write_all(fd, prog->filter, len) < 0 || fsync(fd) < 0 || renameat(dfd, tmp, dfd, key) < 0)
		unlinkat(dfd, tmp, 0);
}
