/* Mount recipe (crun's do_pivot, bubblewrap's setup_newroot):
 *   / rprivate -> bind rootfs on itself, read-only, nosuid, nodev (or, for an
 *      image file, attach the parent's detached mount at /sys: image.h)
 *   -> tmpfs /workspace and /tmp (size- and inode-capped, noexec)
 *   -> /dev tmpfs with five bound device nodes and a capped /dev/shm
 *      (POSIX semaphores for multiprocessing), read-only
 *   -> proc (subset=pid) while the old root is still attached: in a user
 *      namespace the kernel only allows a new proc where a fully visible one
 *      exists in the mount namespace (see shared/notes/cgroup2-vm.md)
 *   -> /.pycell tmpfs holding pycell-init and the shim, read-only
 *   -> pivot_root(".", ".") + umount2(MNT_DETACH): no host path remains. */
#define _GNU_SOURCE
#include "mounts.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "image.h"
#include "util.h"

static const char *const dev_nodes[] = { "null", "zero", "full", "random", "urandom" };
static const char *const required_dirs[] = { PC_WORKDIR, "/tmp", "/dev", "/proc", PC_SANDBOX_DIR };

static int path_in(char *buf, size_t len, const char *root, const char *sub)
{
	int n = snprintf(buf, len, "%s%s", root, sub);

	return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

/* A bind mount inherits flags the kernel locks in a user namespace
 * (nosuid, nodev, noexec, atime); a read-only remount must repeat them or
 * it fails with EPERM (mount_namespaces(7), "locked mount flags"). */
static unsigned long locked_flags(const char *path)
{
	struct statvfs sv;
	unsigned long f = 0;

	if (statvfs(path, &sv) < 0)
		return 0;
	if (sv.f_flag & ST_NOSUID)
		f |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		f |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		f |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME)
		f |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		f |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		f |= MS_RELATIME;
	return f;
}

static int bind_ro(const char *src, const char *dst, unsigned long extra, struct pc_error *err)
{
	if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
		return pc_error_set(err, errno, "bind '%s' on '%s'", src, dst);
	if (mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | extra | locked_flags(dst), NULL) < 0)
		return pc_error_set(err, errno, "remount '%s' read-only", dst);
	return 0;
}

static int mount_tmpfs(const char *dst, unsigned long flags, const char *opts, struct pc_error *err)
{
	if (mount("tmpfs", dst, "tmpfs", flags, opts) < 0)
		return pc_error_set(err, errno, "mount tmpfs on '%s' (%s)", dst, opts);
	return 0;
}

static int make_file(const char *path, struct pc_error *err)
{
	int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0444);

	if (fd < 0)
		return pc_error_set(err, errno, "create mount point '%s'", path);
	close(fd);
	return 0;
}

static int setup_workdirs(const struct pc_mount_plan *p, struct pc_error *err)
{
	char path[4096], opts[128];
	const unsigned long fl = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	int r;

	snprintf(opts, sizeof(opts), "size=%llu,nr_inodes=%llu,mode=0700,uid=%u,gid=%u", p->tmpfs_bytes,
		 p->tmpfs_inodes, (unsigned)p->uid, (unsigned)p->gid);
	if ((r = path_in(path, sizeof(path), p->rootfs, PC_WORKDIR)) < 0)
		return pc_error_set(err, -r, "workdir path");
	if ((r = mount_tmpfs(path, fl, opts, err)) < 0)
		return r;
	snprintf(opts, sizeof(opts), "size=%llu,nr_inodes=%llu,mode=1777", p->tmpfs_bytes, p->tmpfs_inodes);
	path_in(path, sizeof(path), p->rootfs, "/tmp");
	return mount_tmpfs(path, fl, opts, err);
}

/* /dev/shm: POSIX semaphores live there, and multiprocessing needs them.
 * Capped like the workdir, never executable. */
static int setup_dev_shm(const struct pc_mount_plan *p, const char *dev, struct pc_error *err)
{
	char dst[4200], opts[128];

	snprintf(dst, sizeof(dst), "%s/shm", dev);
	if (mkdir(dst, 0755) < 0)
		return pc_error_set(err, errno, "mkdir /dev/shm");
	snprintf(opts, sizeof(opts), "size=%llu,nr_inodes=%llu,mode=1777", p->tmpfs_bytes, p->tmpfs_inodes);
	return mount_tmpfs(dst, MS_NOSUID | MS_NODEV | MS_NOEXEC, opts, err);
}

static int setup_dev(const struct pc_mount_plan *p, struct pc_error *err)
{
	char dev[4096], dst[4200], src[64];
	size_t i;
	int r;

	path_in(dev, sizeof(dev), p->rootfs, "/dev");
	if ((r = mount_tmpfs(dev, MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755", err)) < 0)
		return r;
	for (i = 0; i < ARRAY_SIZE(dev_nodes); i++) {
		snprintf(dst, sizeof(dst), "%s/%s", dev, dev_nodes[i]);
		snprintf(src, sizeof(src), "/dev/%s", dev_nodes[i]);
		if ((r = make_file(dst, err)) < 0)
			return r;
		if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
			return pc_error_set(err, errno, "bind '%s'", src);
	}
	snprintf(dst, sizeof(dst), "%s/fd", dev);
	if (symlink("/proc/self/fd", dst) < 0)
		return pc_error_set(err, errno, "symlink /dev/fd");
	if ((r = setup_dev_shm(p, dev, err)) < 0)
		return r;
	if (mount(NULL, dev, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755") <
	    0)
		return pc_error_set(err, errno, "remount /dev read-only");
	return 0;
}

static int setup_proc(const char *root, struct pc_error *err)
{
	char path[4096];

	path_in(path, sizeof(path), root, "/proc");
	/* subset=pid (Linux 5.8): only process directories, no /proc/sys,
	 * /proc/kcore, /proc/sysrq-trigger and friends. */
	if (mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "subset=pid") < 0)
		return pc_error_set(err, errno,
				    "mount proc (subset=pid needs Linux 5.8+; in a user namespace the "
				    "host's /proc must not be partly masked)");
	return 0;
}

static int setup_pycell_dir(const struct pc_mount_plan *p, struct pc_error *err)
{
	char dir[4096], dst[4200];
	int r;

	path_in(dir, sizeof(dir), p->rootfs, PC_SANDBOX_DIR);
	if ((r = mount_tmpfs(dir, MS_NOSUID | MS_NODEV, "size=64k,nr_inodes=64,mode=0755", err)) < 0)
		return r;
	snprintf(dst, sizeof(dst), "%s/init", dir);
	if ((r = make_file(dst, err)) < 0 || (r = bind_ro(p->init_path, dst, MS_NOSUID | MS_NODEV, err)) < 0)
		return r;
	snprintf(dst, sizeof(dst), "%s/shim", dir);
	if (mkdir(dst, 0755) < 0)
		return pc_error_set(err, errno, "mkdir '%s'", dst);
	if ((r = bind_ro(p->shim_dir, dst, MS_NOSUID | MS_NODEV | MS_NOEXEC, err)) < 0)
		return r;
	if (p->probe) {
		snprintf(dst, sizeof(dst), "%s/probe", dir);
		if ((r = make_file(dst, err)) < 0 || (r = bind_ro(p->probe, dst, MS_NOSUID | MS_NODEV, err)) < 0)
			return r;
	}
	if (mount(NULL, dir, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "size=64k,nr_inodes=64,mode=0755") <
	    0)
		return pc_error_set(err, errno, "remount '%s' read-only", dir);
	return 0;
}

static int do_pivot(const char *root, struct pc_error *err)
{
	_cleanup_close_ int fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return pc_error_set(err, errno, "open new root '%s'", root);
	if (fchdir(fd) < 0)
		return pc_error_set(err, errno, "chdir new root");
	/* pivot_root(".", "."): the old root is stacked under the new one and
	 * detached right away, so no directory is needed for it. */
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return pc_error_set(err, errno, "pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		return pc_error_set(err, errno, "detach old root");
	if (chdir("/") < 0)
		return pc_error_set(err, errno, "chdir /");
	return 0;
}

int pc_mounts_setup_child(const struct pc_mount_plan *p, struct pc_error *err)
{
	int r;

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return pc_error_set(err, errno, "make / private");
	/* An image arrives as a detached mount, already ro/nosuid/nodev. */
	if (p->from_image)
		r = pc_image_attach(p->image_fd, p->rootfs, err);
	else
		r = bind_ro(p->rootfs, p->rootfs, MS_NOSUID | MS_NODEV, err);
	if (r < 0)
		return pc_error_wrap(err, "rootfs");
	if ((r = setup_workdirs(p, err)) < 0 || (r = setup_dev(p, err)) < 0 || (r = setup_proc(p->rootfs, err)) < 0 ||
	    (r = setup_pycell_dir(p, err)) < 0)
		return r;
	if ((r = do_pivot(p->rootfs, err)) < 0)
		return r;
	if (chdir(PC_WORKDIR) < 0)
		return pc_error_set(err, errno, "chdir " PC_WORKDIR);
	return 0;
}

int pc_mounts_check_rootfs(const char *rootfs, struct pc_error *err)
{
	char path[4096];
	struct stat st;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(required_dirs); i++) {
		if (path_in(path, sizeof(path), rootfs, required_dirs[i]) < 0)
			return pc_error_set(err, ENAMETOOLONG, "rootfs path '%s'", rootfs);
		if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
			return pc_error_set(err, ENOENT,
					    "rootfs '%s' has no directory '%s' (build one with 'make rootfs')", rootfs,
					    required_dirs[i]);
	}
	return 0;
}
