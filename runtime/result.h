/* The result document (DESIGN.md section 3): classification of what
 * happened into one error code, and the JSON the caller reads. */
#ifndef PYCELL_RESULT_H
#define PYCELL_RESULT_H

#include <json-c/json.h>

#include "run.h"

/* Exit statuses of `pycell run`. */
enum { PC_EXIT_OK = 0, PC_EXIT_JOB_ERROR = 1, PC_EXIT_USAGE = 2, PC_EXIT_RUNTIME = 125 };

/* Builds the result for a job that ran (or whose setup failed). *exit_status
 * gets the process exit status to use. The caller owns the object. */
json_object *pc_result_build(const struct pc_run *r, int *exit_status);
/* A job refused before it ran (INVALID_JOB, LANGUAGE_DENIED). */
struct pc_refusal {
	const char *id;	       /* echoed when the job had a valid one */
	const char *code;      /* error.code */
	const char *reason;    /* error.details.reason */
	const char *code_text; /* hashed into code_sha256 when known, else NULL */
	size_t code_len;
	const struct pc_policy *policy;
	const struct pc_trace *trace;
	int n_trace;
};

/* The result for a refused job: the full shape, nothing ran. */
json_object *pc_result_refused(const struct pc_refusal *rf);
/* Writes the whole document plus newline to fd, in one piece. */
int pc_result_print(json_object *res, int fd);
/* Copies buf into a new string with invalid UTF-8 replaced by U+FFFD;
 * *replaced says whether anything was. */
char *pc_utf8_sanitize(const char *buf, size_t len, bool *replaced);

#endif
