/* Read-only rootfs image files (erofs, squashfs), mounted by the supervisor.
 *
 * Neither filesystem may be mounted from inside a user namespace (they are not
 * FS_USERNS_MOUNT), so the parent, as real root and before clone, attaches the
 * file to a loop device and builds a *detached* mount with the new mount API
 * (fsopen/fsconfig/fsmount): it exists only as an fd, is never attached in the
 * host's mount namespace, and the child moves it into its own private namespace
 * with move_mount(MOVE_MOUNT_F_EMPTY_PATH). The loop device is configured with
 * LO_FLAGS_AUTOCLEAR, so it detaches itself when the last mount of the
 * superblock goes away (the job's mount namespace dies, the parent closed its
 * fd): nothing is left behind, even if the supervisor is killed. */
#ifndef PYCELL_IMAGE_H
#define PYCELL_IMAGE_H

#include <stdbool.h>

#include "error.h"

/* Where the child attaches the image before building the root under it. /sys
 * exists on every host, and the child never needs the host's sysfs: what is
 * mounted over it is private to the job's mount namespace and goes away with
 * the old root at pivot_root. */
#define PC_IMAGE_MOUNT_POINT "/sys"

struct pc_image {
	int mount_fd;	   /* detached mount of the image's root, -1 if none */
	char fstype[16];   /* "erofs" or "squashfs" */
	char loop_dev[32]; /* e.g. "/dev/loop3", for messages */
};

void pc_image_init(struct pc_image *img);
/* True when path names a regular file (as opposed to a rootfs directory). */
bool pc_image_is_file(const char *path);
/* Parent side, before clone: loop device (read-only, autoclear) and a
 * detached read-only, nosuid, nodev mount of the image's filesystem. */
int pc_image_open(struct pc_image *img, const char *path, struct pc_error *err);
/* "/proc/self/fd/N" for the detached mount, so host-side checks can look
 * inside it without attaching it anywhere. */
int pc_image_path(const struct pc_image *img, char *buf, size_t len);
/* Child side: attach the detached mount at target in the current (private)
 * mount namespace. No allocation. */
int pc_image_attach(int mount_fd, const char *target, struct pc_error *err);
/* Drops the parent's reference; the mount lives on only in the job's
 * namespace, and the loop device clears when that goes. */
void pc_image_close(struct pc_image *img);

struct pc_mount_plan;
/* Parent side, for the run recipe: a rootfs that is a regular file is opened
 * as an image (and its mount points checked inside the detached mount), a
 * directory is checked in place. */
int pc_image_prepare_rootfs(struct pc_image *img, const char *rootfs, struct pc_error *err);
/* A host path at which the rootfs's files can be looked at: the detached
 * mount's /proc/self/fd/N for an image, else rootfs itself. */
const char *pc_image_root(const struct pc_image *img, const char *rootfs, char *buf, size_t len);
/* Points the mount plan at the image, if there is one. */
void pc_image_plan(const struct pc_image *img, struct pc_mount_plan *plan);

#endif
