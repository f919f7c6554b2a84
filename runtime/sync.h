/* The child->parent channel: fixed records on a SOCK_SEQPACKET socketpair
 * (crun's sync_socket_message_s). Shared by the host runtime and pycell-init.
 * EOF without a PC_SYNC_ERROR record means the step it guarded succeeded. */
#ifndef PYCELL_SYNC_H
#define PYCELL_SYNC_H

#include <stdint.h>

enum pc_sync_type {
	PC_SYNC_GO = 1,		/* parent -> child: maps written, start setup */
	PC_SYNC_ERROR = 2,	/* child -> parent: step failed (msg, errnum) */
	PC_SYNC_EXEC_OK = 3,	/* init -> parent: the job process is running */
	PC_SYNC_EXIT = 4,	/* init -> parent: job ended, raw wait status */
	PC_SYNC_SECCOMP_FD = 5, /* child -> parent: SCM_RIGHTS seccomp listener */
	PC_SYNC_ATTACHED = 6,	/* parent -> child: in the job's cgroups */
};

struct pc_sync_msg {
	int32_t type;
	int32_t errnum;
	int32_t status;	   /* PC_SYNC_EXIT: waitpid() status of the job process */
	char msg[512];	   /* PC_SYNC_ERROR: "step: detail" */
	int64_t forked_ns; /* PC_SYNC_EXEC_OK from a cold pid 1: CLOCK_MONOTONIC when it
			    * forked the job process (namespaces share that clock); else 0 */
};

/* The fixed descriptor layout inside the sandbox. */
enum {
	PC_FD_STDIN = 0,       /* memfd holding the job's input as JSON */
	PC_FD_STDOUT = 1,      /* pipe to the supervisor */
	PC_FD_STDERR = 2,      /* pipe to the supervisor */
	PC_FD_BOOTSTRAP = 3,   /* memfd: the shim's bootstrap document (JSON) */
	PC_FD_RESULT = 4,      /* pipe: the shim writes the job's value here */
	PC_FD_SYNC = 5,	       /* pycell-init only; closed before the job runs */
	PC_FD_EXEC_FILTER = 6, /* sealed memfd: the exec filter's BPF (exec_filter.c);
				* pycell-init reads and closes it */
	PC_FD_FIRST_FREE = 7,
};

#endif
