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
/* Monotonic clock in nanoseconds. */
long long now_ns(void);

#endif
