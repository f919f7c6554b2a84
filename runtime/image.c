/* Loop device + detached mount for rootfs image files; see image.h.
 * loop(4) LOOP_CONFIGURE (Linux 5.8) sets the backing file, read-only and
 * autoclear in one ioctl, so there is no window where a half-configured device
 * is visible; fsopen(2)/fsmount(2) (Linux 5.2) give a mount that no namespace
 * holds until the child moves it into its own (move_mount(2)). */
#define _GNU_SOURCE
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <linux/mount.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mounts.h"
#include "util.h"

#define EROFS_MAGIC    0xE0F5E1E2u /* at byte 1024 (fs/erofs/erofs_fs.h) */
#define SQUASHFS_MAGIC "hsqs"	   /* at byte 0, little-endian 0x73717368 */

void pc_image_init(struct pc_image *img)
{
	memset(img, 0, sizeof(*img));
	img->mount_fd = -1;
}

bool pc_image_is_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The filesystem comes from the file's magic, never from its name. */
static int detect_fstype(int fd, const char *path, char *out, size_t len, struct pc_error *err)
{
	unsigned char head[4], sb[4];
	uint32_t magic;

	if (pread(fd, head, sizeof(head), 0) != (ssize_t)sizeof(head) ||
	    pread(fd, sb, sizeof(sb), 1024) != (ssize_t)sizeof(sb))
		return pc_error_set(err, EINVAL, "image '%s' is too short to be a filesystem", path);
	memcpy(&magic, sb, sizeof(magic));
	if (magic == EROFS_MAGIC)
		snprintf(out, len, "erofs");
	else if (memcmp(head, SQUASHFS_MAGIC, 4) == 0)
		snprintf(out, len, "squashfs");
	else
		return pc_error_set(err, EINVAL,
				    "'%s' is neither an erofs nor a squashfs image (build one with "
				    "'rootfs/pycell-rootfs build --image erofs')",
				    path);
	return 0;
}

/* A free loop device bound read-only to file_fd. LOOP_CTL_GET_FREE and
 * LOOP_CONFIGURE race with other users of loop devices: EBUSY means someone
 * took it first, so ask again. */
static int loop_attach(int file_fd, const char *path, char *dev, size_t len, struct pc_error *err)
{
	_cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	struct loop_config cfg = { .fd = (unsigned)file_fd };
	int tries;

	if (ctl < 0)
		return pc_error_set(err, errno,
				    "open '/dev/loop-control' (running a rootfs image needs root and the loop module)");
	cfg.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
	snprintf((char *)cfg.info.lo_file_name, sizeof(cfg.info.lo_file_name), "pycell:%s", path);
	for (tries = 0; tries < 16; tries++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE), fd;

		if (n < 0)
			return pc_error_set(err, errno, "LOOP_CTL_GET_FREE");
		snprintf(dev, len, "/dev/loop%d", n);
		fd = open(dev, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return pc_error_set(err, errno, "open '%s'", dev);
		if (ioctl(fd, LOOP_CONFIGURE, &cfg) == 0)
			return fd;
		int e = errno;
		close(fd);
		if (e != EBUSY)
			return pc_error_set(err, e, "LOOP_CONFIGURE '%s' with '%s'", dev, path);
	}
	return pc_error_set(err, EBUSY, "no free loop device after %d tries", tries);
}

static int fs_mount(const char *fstype, const char *dev, struct pc_error *err)
{
	_cleanup_close_ int fs = (int)syscall(SYS_fsopen, fstype, FSOPEN_CLOEXEC);
	int mfd;

	if (fs < 0)
		return pc_error_set(err, errno, "fsopen '%s' (is the %s module loaded?)", fstype, fstype);
	if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "source", dev, 0) < 0)
		return pc_error_set(err, errno, "fsconfig source '%s'", dev);
	if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0)
		return pc_error_set(err, errno, "fsconfig ro");
	if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return pc_error_set(err, errno, "mount %s from '%s' (a corrupt image?)", fstype, dev);
	mfd = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
	if (mfd < 0)
		return pc_error_set(err, errno, "fsmount %s", fstype);
	return mfd;
}

int pc_image_open(struct pc_image *img, const char *path, struct pc_error *err)
{
	_cleanup_close_ int file = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	_cleanup_close_ int loop = -1;
	int r;

	if (file < 0)
		return pc_error_set(err, errno, "open image '%s'", path);
	if ((r = detect_fstype(file, path, img->fstype, sizeof(img->fstype), err)) < 0)
		return r;
	if ((loop = loop_attach(file, path, img->loop_dev, sizeof(img->loop_dev), err)) < 0)
		return loop;
	/* The superblock holds the block device open from here on; our fds on
	 * the file and the device close on return, which leaves the mount as the
	 * device's only user, so autoclear fires when the mount goes. */
	if ((r = fs_mount(img->fstype, img->loop_dev, err)) < 0)
		return r;
	img->mount_fd = r;
	return 0;
}

int pc_image_path(const struct pc_image *img, char *buf, size_t len)
{
	int n = snprintf(buf, len, "/proc/self/fd/%d", img->mount_fd);

	return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

int pc_image_attach(int mount_fd, const char *target, struct pc_error *err)
{
	/* A mount made in the initial user namespace may be moved into a mount
	 * namespace owned by the job's user namespace: move_mount only requires
	 * CAP_SYS_ADMIN over the target namespace (checked on Linux 6.18). */
	if (syscall(SYS_move_mount, mount_fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return pc_error_set(err, errno, "move_mount image onto '%s'", target);
	return 0;
}

void pc_image_close(struct pc_image *img)
{
	if (img->mount_fd >= 0)
		close(img->mount_fd);
	img->mount_fd = -1;
}

int pc_image_prepare_rootfs(struct pc_image *img, const char *rootfs, struct pc_error *err)
{
	char inside[64];
	int r;

	if (!pc_image_is_file(rootfs))
		return pc_mounts_check_rootfs(rootfs, err);
	if ((r = pc_image_open(img, rootfs, err)) < 0)
		return pc_error_wrap(err, "rootfs image");
	pc_image_path(img, inside, sizeof(inside));
	if ((r = pc_mounts_check_rootfs(inside, err)) < 0)
		return pc_error_wrap(err, "rootfs image '%s'", rootfs);
	return 0;
}

void pc_image_plan(const struct pc_image *img, struct pc_mount_plan *plan)
{
	if (img->mount_fd < 0)
		return;
	plan->from_image = true;
	plan->image_fd = img->mount_fd;
	plan->rootfs = PC_IMAGE_MOUNT_POINT;
}

const char *pc_image_root(const struct pc_image *img, const char *rootfs, char *buf, size_t len)
{
	if (img->mount_fd < 0 || pc_image_path(img, buf, len) < 0)
		return rootfs;
	return buf;
}
