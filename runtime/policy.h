/* Policies: limit defaults and maxima, the Python layer's allowlists, the
 * seccomp list, the rootfs. Loaded, merged (extends, system config) and
 * checked here; nothing else reads policy JSON. */
#ifndef PYCELL_POLICY_H
#define PYCELL_POLICY_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "error.h"
#include "joblimits.h"

#define PC_SYSTEM_CONFIG "/etc/pycell/config.json"

struct pc_policy {
	char name[64];
	char path[PATH_MAX];	/* the file it came from ("" for built-in) */
	char rootfs[PATH_MAX];	/* profile name or path, as written */
	char seccomp[PATH_MAX]; /* resolved path of the seccomp list, or "" */
	char network[16];	/* "none": loopback only */
	struct pc_limit_range limits[PC_LIM_COUNT];
	size_t max_code_bytes;
	size_t max_job_bytes;
	size_t max_result_bytes;
	bool python_checks;
	bool require_cgroups;		    /* refuse to run when cgroup limits cannot be applied */
	char *python_json;		    /* the "python" section, serialized for the shim */
	char *grantable_json;		    /* python.grantable_imports as a JSON array */
	bool def_from_policy[PC_LIM_COUNT]; /* default set by a policy file, not below */
	char audit_log[PATH_MAX];	    /* "audit": {"path"}; PYCELL_AUDIT_LOG overrides */
	bool audit_include_code;	    /* "audit": {"include_code"} */
	/* "tool_defaults": limit defaults for jobs with "mode": "tool" (the
	 * python_exec tool role), above the policy defaults, under the job's. */
	long long tool_def[PC_LIM_COUNT];
	bool has_tool_def[PC_LIM_COUNT];
};

/* Built-in defaults, then the policy file (following "extends"), then the
 * optional system config's limit defaults underneath the policy's. */
int pc_policy_load(struct pc_policy *p, const char *path, const char *system_config, struct pc_error *err);
void pc_policy_free(struct pc_policy *p);
/* The merged policy as JSON (`pycell policy show`). Caller owns it. */
json_object *pc_policy_to_json(const struct pc_policy *p);

#endif
