/* Warm mode: the supervisor <-> zygote protocol (docs/warm.md).
 *
 * The control channel is the zygote sandbox's sync socket (fd 5,
 * SOCK_SEQPACKET): one record per message, descriptors by SCM_RIGHTS.
 *   PC_WARM_SECCOMP  supervisor -> zygote, once, right after start and
 *                    before anything else: the policy's seccomp BPF as a
 *                    sealed memfd (empty: the policy has none). The zygote
 *                    reads it before it makes any job process, keeps it in
 *                    memory and never loads it itself. On cgroup v2 a
 *                    second descriptor: the first spare's job group.
 *   PC_WARM_JOB      supervisor -> zygote, per job: struct pc_warm_req plus
 *                    PC_WARM_NFDS descriptors in pc_warm_fd order; on
 *                    cgroup v2 one more, PC_WARM_FD_CGROUP. Each group
 *                    descriptor goes to exactly one leader (spare or not).
 * Per job, the zygote clone3()s the job leader into fresh namespaces; from
 * then on the job speaks on its own sync socket (the PC_WARM_FD_SYNC the
 * request carried), with the records of sync.h plus PC_WARM_HELLO. */
#ifndef PYCELL_ZYGOTE_PROTO_H
#define PYCELL_ZYGOTE_PROTO_H

#include <stdint.h>

enum {
	PC_WARM_SECCOMP = 16,
	PC_WARM_JOB = 17,
	/* leader -> supervisor on the job's sync socket: its own pidfd
	 * (SCM_RIGHTS); the supervisor reads the host pid from fdinfo,
	 * attaches it to the job's cgroup and answers PC_SYNC_GO. */
	PC_WARM_HELLO = 18,
};

enum pc_warm_fd {
	PC_WARM_FD_STDIN,
	PC_WARM_FD_STDOUT,
	PC_WARM_FD_STDERR,
	PC_WARM_FD_BOOTSTRAP,
	PC_WARM_FD_RESULT,
	PC_WARM_FD_SYNC,
	PC_WARM_FD_FILES, /* memfd: repeated {u32 name_len, u32 data_len, name, data} */
	PC_WARM_NFDS,	  /* the job's own descriptors */
	/* cgroup v2 only, after the job's: the directory of the group the
	 * zygote clones its NEXT leader into (CLONE_INTO_CGROUP). */
	PC_WARM_FD_CGROUP = PC_WARM_NFDS,
	PC_WARM_MAX_FDS,
};

#define PC_WARM_MAX_RLIMITS 8

struct pc_warm_req {
	int32_t type; /* PC_WARM_JOB or PC_WARM_SECCOMP */
	uint32_t n_rlimits;
	int32_t landlock_abi;	/* 0: no Landlock (landlock.c decides, as cold) */
	uint32_t seccomp_insns; /* the filter the job process must load (fail
				 * closed when its zygote holds another) */
	uint64_t tmpfs_bytes;
	uint64_t tmpfs_inodes;
	struct {
		int32_t resource;
		uint64_t cur, max;
	} rl[PC_WARM_MAX_RLIMITS];
};

#endif
