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
/* The result for a job refused before it ran (INVALID_JOB and friends). */
json_object *pc_result_refused(const char *id, const char *code, const char *reason, const char *policy);
/* Writes the whole document plus newline to fd, in one piece. */
int pc_result_print(json_object *res, int fd);
/* Copies buf into a new string with invalid UTF-8 replaced by U+FFFD;
 * *replaced says whether anything was. */
char *pc_utf8_sanitize(const char *buf, size_t len, bool *replaced);

#endif
