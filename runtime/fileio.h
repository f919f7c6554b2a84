/* Reading a small configuration file (policy, system config, seccomp list)
 * whole, bounded, and only if it is a regular file. */
#ifndef PYCELL_FILEIO_H
#define PYCELL_FILEIO_H

#include <stddef.h>

#include "error.h"

/* what names the file in messages ("seccomp list"), or NULL; oflags adds to
 * O_RDONLY|O_CLOEXEC|O_NOCTTY (e.g. O_NOFOLLOW). *out is NUL-terminated. */
int pc_read_file(const char *path, const char *what, int oflags, size_t max, char **out, size_t *len,
		 struct pc_error *err);

#endif
