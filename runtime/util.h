/* Cleanup attributes and small helpers shared by every module.
 * Pattern from bubblewrap/crun: resources are released on every return path
 * by the compiler, and ownership is handed on explicitly with steal_*(). */
#ifndef PYCELL_UTIL_H
#define PYCELL_UTIL_H

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static inline void cleanup_freep(void *p)
{
	free(*(void **)p);
}

static inline void cleanup_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd); /* never retried on EINTR: Linux always frees the fd */
}

#define _cleanup_free_	__attribute__((cleanup(cleanup_freep)))
#define _cleanup_close_ __attribute__((cleanup(cleanup_closep)))

static inline void *steal_pointer_impl(void **p)
{
	void *v = *p;
	*p = NULL;
	return v;
}
#define steal_pointer(pp) steal_pointer_impl((void **)(pp))

static inline int steal_fd(int *fd)
{
	int v = *fd;
	*fd = -1;
	return v;
}

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Write all of buf, retrying on EINTR and short writes. */
int write_all(int fd, const void *buf, size_t len);
struct iovec;
/* Write all of v[0..cnt), retrying on EINTR and short writes; v is consumed. */
int writev_all(int fd, struct iovec *v, int cnt);
#define PC_MAX_PASSED_FDS 8
/* One record on a Unix socket with nfds (<= PC_MAX_PASSED_FDS) descriptors
 * (SCM_RIGHTS), MSG_NOSIGNAL, retried on EINTR. 0, or -errno (-EPIPE for
 * a short send). */
int send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds);
/* recvmsg of one record into buf with at most one passed descriptor: *fd
 * gets it (O_CLOEXEC), or -1 when none came. flags as for recvmsg(2);
 * EINTR retried. Returns the length read, or -errno. */
ssize_t recv_fd(int sock, void *buf, size_t len, int flags, int *fd);
/* Monotonic clock in nanoseconds. */
long long now_ns(void);

#endif
