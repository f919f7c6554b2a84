#include "util.h"

#include <sys/uio.h>
#include <time.h>

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int writev_all(int fd, struct iovec *v, int cnt)
{
	for (;;) {
		ssize_t n;

		while (cnt > 0 && v->iov_len == 0)
			v++, cnt--;
		if (cnt == 0)
			return 0;
		n = writev(fd, v, cnt);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		for (; n > 0 && (size_t)n >= v->iov_len; v++, cnt--)
			n -= (ssize_t)v->iov_len;
		if (n > 0)
			v->iov_base = (char *)v->iov_base + n, v->iov_len -= (size_t)n;
	}
}

long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
