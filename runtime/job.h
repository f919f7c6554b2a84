/* A job: parsed, validated and bounded once, then only read. */
#ifndef PYCELL_JOB_H
#define PYCELL_JOB_H

#include <stdbool.h>
#include <stddef.h>

#include "joblimits.h"
#include "policy.h"
#include "sandbox.h"

/* Why a job was refused: the result's error.code and a precise reason
 * such as "unknown_key:timeout" or "code_too_long". */
struct pc_job_error {
	const char *code; /* "INVALID_JOB", "LANGUAGE_DENIED" */
	char reason[256];
};

struct pc_job {
	char *id; /* may be NULL */
	char *code;
	size_t code_len;
	char *input_json; /* the "input" value re-serialized; NULL if absent */
	struct pc_file *files;
	size_t n_files;
	long long limits[PC_LIM_COUNT]; /* as asked by the job */
	bool has_limit[PC_LIM_COUNT];
	char *imports_json;	  /* JSON array of strings, or NULL */
	char *packages_json;	  /* JSON array of strings, or NULL */
	char *output_schema_json; /* NULL if absent */
	char *mode;		  /* "inline" (default) or "tool" */
	char code_sha256[65];	  /* hex SHA-256 of code */
};

/* buf need not be NUL-terminated. Returns 0, or -1 with *je filled. */
int pc_job_parse(const char *buf, size_t len, const struct pc_policy *pol, struct pc_job *job, struct pc_job_error *je);
void pc_job_free(struct pc_job *job);

/* The result's execution_mode: "inline_code" or "python_exec_tool". */
const char *pc_job_execution_mode(const struct pc_job *job);

/* Effective limits: job -> policy default, clamped to the policy max. */
void pc_job_effective_limits(const struct pc_job *job, const struct pc_policy *pol, long long out[PC_LIM_COUNT]);

#endif
