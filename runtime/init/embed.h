/* pycell-init's embedded interpreter: the job process (pid 2). */
#ifndef PYCELL_INIT_EMBED_H
#define PYCELL_INIT_EMBED_H

#include <stddef.h>
#include <stdint.h>

struct sock_fprog;

/* What the job process tells pid 1 on its status pipe (O_CLOEXEC) when the
 * exec or the interpreter's start-up fails; EOF alone means it worked. */
struct pc_init_status {
	int32_t errnum;
	char msg[400];
};

void pc_init_report(int status_fd, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Runs SCRIPT in an embedded, isolated interpreter. In order: the exec
 * filter (filter may be NULL: none was handed over), the C audit hook,
 * Py_InitializeFromConfig; then closes status_fd and runs the script with
 * Py_RunMain, exiting with its status (SystemExit honoured). Never returns. */
void pc_embed_job(const char *script, const struct sock_fprog *filter, int status_fd) __attribute__((noreturn));

/* Warm mode, in each job process: a fresh shared word for the audit hook's
 * once-flag, unmapping the zygote's, so no two jobs share memory. */
void pc_embed_fresh_trip_word(void);

#endif
