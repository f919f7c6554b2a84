/* Error model (crun's, simplified); see runtime/ERRORS.md.
 * Fallible functions return a negative errno (or -1) and fill a pc_error;
 * callers add context with pc_error_wrap(). Library modules never print or
 * exit: only the CLI decides what the user sees. */
#ifndef PYCELL_ERROR_H
#define PYCELL_ERROR_H

#include <stddef.h>

#define PC_ERROR_MSG 512

struct pc_error {
	int errnum;		/* errno of the root cause, 0 if none */
	char msg[PC_ERROR_MSG]; /* "step: detail", already human-readable */
};

/* Sets err (if not NULL) and returns -errnum (or -1 when errnum is 0). */
int pc_error_set(struct pc_error *err, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefixes the existing message with "context: ". Returns -errnum or -1. */
int pc_error_wrap(struct pc_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "msg: strerror(errnum)" into buf; for printing. */
const char *pc_error_text(const struct pc_error *err, char *buf, size_t len);

#endif
