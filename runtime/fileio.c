#define _GNU_SOURCE
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

int pc_read_file(const char *path, const char *what, int oflags, size_t max, char **out, size_t *len,
		 struct pc_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | oflags);
	_cleanup_free_ char *buf = NULL;
	const char *w = what ? what : "", *sp = what ? " " : "";
	struct stat st;
	size_t n = 0;

	if (fd < 0)
		return pc_error_set(err, errno, "open %s%s'%s'", w, sp, path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return pc_error_set(err, EINVAL, "%s%s'%s' is not a regular file", w, sp, path);
	if ((size_t)st.st_size > max)
		return pc_error_set(err, EFBIG, "%s%s'%s' is larger than %zu bytes", w, sp, path, max);
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return pc_error_set(err, ENOMEM, "read %s%s'%s'", w, sp, path);
	while (n < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return pc_error_set(err, errno, "read %s%s'%s'", w, sp, path);
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*len = n;
	*out = steal_pointer(&buf);
	return 0;
}
