/* The audit log: one JSON line per job, appended with O_APPEND in a single
 * write(2), so concurrent runs never interleave a line (for regular files
 * the kernel holds the inode lock across the append: see write(2), NOTES).
 *
 * Where: env PYCELL_AUDIT_LOG wins over the policy's "audit": {"path"};
 * neither set means no audit log. The policy's "audit": {"include_code":
 * true} adds the job's code to each line. */
#ifndef PYCELL_AUDITLOG_H
#define PYCELL_AUDITLOG_H

#include <json-c/json.h>
#include <stddef.h>

#include "error.h"
#include "policy.h"

/* The file to log to for this policy, or NULL for none. */
const char *pc_audit_path(const struct pc_policy *pol);
/* Appends the line for a finished (or refused) job, built from its result
 * document. code may be NULL. 0 when done or nothing to do. */
int pc_audit_append(const struct pc_policy *pol, json_object *result, const char *code, size_t code_len,
		    struct pc_error *err);

#endif
