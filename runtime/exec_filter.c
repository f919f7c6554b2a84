/* The exec filter: a second seccomp filter stacked on the policy's allowlist
 * by the job process itself, after pycell-init (pid 1) forked it and before
 * the interpreter starts. The first filter must allow execve, since that is
 * how pid 1 becomes pycell-init; this one takes exec away from everything
 * that runs Python, so no job can run a binary (DESIGN.md section 5, layer 7).
 *
 * It is built here, in the parent, like every filter (no libseccomp, no
 * malloc in the sandbox), exported as classic BPF into a sealed memfd and
 * handed over on PC_FD_EXEC_FILTER; pycell-init reads it, closes the fd and
 * loads it with prctl(PR_SET_SECCOMP), which the first filter allows (the
 * seccomp(2) syscall it does not). Stacked filters all run and the strictest
 * verdict wins (seccomp(2), "multiple filters"), so this one can only take
 * away: its default is ALLOW.
 *
 * EPERM rather than KILL_PROCESS: an exec attempt that reaches the kernel is
 * already harmless once refused, and EPERM surfaces as a PermissionError the
 * job's own code and the shim can report (subprocess reports the child's
 * errno back to the parent). Killing would turn a refused call into a bare
 * SIGSYS with no record of what was tried; the audit hook in pycell-init
 * (and the shim's) is what makes Python-level attempts a SECURITY_ERROR. */
#define _GNU_SOURCE
#include "exec_filter.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bpf_cache.h"
#include "util.h"

#ifndef PC_PYTHON_VERSION
#error "PC_PYTHON_VERSION (e.g. \"3.11\") comes from pkg-config python3-embed via the Makefile"
#endif
#ifndef PC_MULTIARCH
#define PC_MULTIARCH "x86_64-linux-gnu"
#endif
#define PC_LIBPYTHON "libpython" PC_PYTHON_VERSION ".so.1.0"
#define PC_LIBDIR    "usr/lib/" PC_MULTIARCH

static void release_ctx(scmp_filter_ctx *c)
{
	if (*c)
		seccomp_release(*c);
}

static const struct {
	const char *name;
	const char *reason;
} denied[] = {
	{ "execve", "running any binary: the job is Python and nothing else" },
	{ "execveat", "execve by descriptor (fexecve), same reason" },
	{ "memfd_create", "an anonymous file is how fileless exec (and noexec-bypass mmap) starts" },
};

static int compile(struct sock_fprog *prog, struct pc_error *err)
{
	__attribute__((cleanup(release_ctx))) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	_cleanup_close_ int fd = -1;
	off_t size;
	int rc;

	if (!ctx)
		return pc_error_set(err, ENOMEM, "exec filter: seccomp_init");
	for (size_t i = 0; i < ARRAY_SIZE(denied); i++) {
		int nr = seccomp_syscall_resolve_name(denied[i].name);

		if (nr == __NR_SCMP_ERROR)
			return pc_error_set(err, EINVAL, "exec filter: libseccomp does not know '%s'", denied[i].name);
		if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0)) < 0)
			return pc_error_set(err, -rc, "exec filter: rule for '%s'", denied[i].name);
	}
	fd = memfd_create("pycell-exec-filter-build", MFD_CLOEXEC);
	if (fd < 0)
		return pc_error_set(err, errno, "exec filter: memfd_create");
	/* libseccomp 2.5.4 has no seccomp_export_bpf_mem(). */
	if ((rc = seccomp_export_bpf(ctx, fd)) < 0)
		return pc_error_set(err, -rc, "exec filter: export BPF");
	size = lseek(fd, 0, SEEK_END);
	if (size <= 0 || size % (off_t)sizeof(struct sock_filter) ||
	    size > BPF_MAXINSNS * (off_t)sizeof(struct sock_filter))
		return pc_error_set(err, E2BIG, "exec filter: bad program size %lld", (long long)size);
	prog->filter = malloc((size_t)size);
	if (!prog->filter || pread(fd, prog->filter, (size_t)size, 0) != size) {
		free(prog->filter);
		prog->filter = NULL;
		return pc_error_set(err, EIO, "exec filter: read back BPF");
	}
	prog->len = (unsigned short)(size / (off_t)sizeof(struct sock_filter));
	return 0;
}

int pc_exec_filter_prepare(struct pc_error *err)
{
	struct sock_fprog prog = { 0 };
	_cleanup_close_ int fd = -1;
	char key[PC_SHA256_HEX];
	struct pc_sha256 h;
	int rc;

	/* The program never changes for a given libseccomp and kernel, so it
	 * comes from the BPF cache after the first job. */
	pc_sha256_init(&h);
	pc_sha256_update(&h, "pycell-exec-filter-v1", 22);
	for (size_t i = 0; i < ARRAY_SIZE(denied); i++)
		pc_sha256_update(&h, denied[i].name, strlen(denied[i].name) + 1);
	pc_bpf_cache_key(&h, key);
	if (pc_bpf_cache_load(key, &prog) != 1) {
		if ((rc = compile(&prog, err)) < 0)
			return rc;
		pc_bpf_cache_store(key, &prog);
	}
	fd = memfd_create("pycell-exec-filter", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		free(prog.filter);
		return pc_error_set(err, errno, "exec filter: memfd_create");
	}
	rc = write_all(fd, prog.filter, (size_t)prog.len * sizeof(struct sock_filter));
	free(prog.filter);
	if (rc < 0)
		return pc_error_set(err, -rc, "exec filter: write BPF");
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
		return pc_error_set(err, errno, "exec filter: seal memfd");
	if (lseek(fd, 0, SEEK_SET) < 0)
		return pc_error_set(err, errno, "exec filter: rewind memfd");
	return steal_fd(&fd);
}

/* Names the libpython3.* the rootfs does have, for the message. */
static void other_libpython(int dirfd, char *buf, size_t len)
{
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;

	snprintf(buf, len, "none");
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "libpython3.", 11) == 0 && strstr(e->d_name, ".so.1.0")) {
			snprintf(buf, len, "'%s'", e->d_name);
			break;
		}
	}
	closedir(d);
}

int pc_embed_check_rootfs(const char *rootfs, struct pc_error *err)
{
	/* RESOLVE_IN_ROOT: the image's absolute symlinks (usrmerge's
	 * /lib -> usr/lib) resolve inside the rootfs, never on the host. */
	struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT };
	_cleanup_close_ int root = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	_cleanup_close_ int dir = -1, lib = -1;
	char found[300];

	if (root < 0)
		return pc_error_set(err, errno, "open rootfs '%s'", rootfs);
	lib = (int)syscall(SYS_openat2, root, PC_LIBDIR "/" PC_LIBPYTHON, &how, sizeof(how));
	if (lib >= 0)
		return 0;
	how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
	dir = (int)syscall(SYS_openat2, root, PC_LIBDIR, &how, sizeof(how));
	/* No multiarch library directory at all: not a Debian-layout image.
	 * Nothing here to compare; the sandbox child reports what it finds
	 * missing (exec of pycell-init, a bind) with its own step. */
	if (dir < 0)
		return 0;
	other_libpython(dir, found, sizeof(found));
	return pc_error_set(err, ENOENT,
			    "rootfs '%s' has no '/%s/%s' (libpython found there: %s): pycell-init embeds "
			    "Python %s and needs the same release in the rootfs. Add the Debian package "
			    "'libpython%s' to the profile and rebuild ('make rootfs'), or build pycell-init "
			    "against the rootfs's Python (README, 'Another Python')",
			    rootfs, PC_LIBDIR, PC_LIBPYTHON, found, PC_PYTHON_VERSION, PC_PYTHON_VERSION);
}
