/* The sandbox's filesystem view, built in the child's mount namespace. */
#ifndef PYCELL_MOUNTS_H
#define PYCELL_MOUNTS_H

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

#define PC_WORKDIR	 "/workspace"
#define PC_SANDBOX_DIR	 "/.pycell"
#define PC_SANDBOX_INIT	 PC_SANDBOX_DIR "/init"
#define PC_SANDBOX_SHIM	 PC_SANDBOX_DIR "/shim"
#define PC_SANDBOX_PROBE PC_SANDBOX_DIR "/probe"

struct pc_mount_plan {
	const char *rootfs;    /* absolute host path of the read-only root */
	const char *init_path; /* host path of pycell-init */
	const char *shim_dir;  /* host path of the shim package */
	const char *probe;     /* optional host path, bound at /.pycell/probe */
	unsigned long long tmpfs_bytes;
	unsigned long long tmpfs_inodes;
	bool from_image; /* rootfs is PC_IMAGE_MOUNT_POINT, where image_fd goes */
	int image_fd;	 /* detached mount of a rootfs image (image.h) */
	uid_t uid;	 /* in-namespace owner of the workdir */
	gid_t gid;
};

/* Child side: private propagation, new root, pivot_root, old root gone.
 * Leaves the cwd at /workspace. */
int pc_mounts_setup_child(const struct pc_mount_plan *plan, struct pc_error *err);

/* Parent side: refuses a rootfs that lacks the mount points we need. */
int pc_mounts_check_rootfs(const char *rootfs, struct pc_error *err);

#endif
