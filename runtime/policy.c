/* Policy precedence (DESIGN.md section 4), highest first: the job's limits
 * -> the policy's defaults -> the system config -> compiled-in defaults.
 * Loading applies the lower three here, in reverse order, each layer
 * overwriting what the one below set; the job layer is applied by job.c. */
#define _GNU_SOURCE
#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "jsonutil.h"
#include "util.h"

#define MAX_POLICY_BYTES  (1024 * 1024)
#define MAX_EXTENDS_DEPTH 8

static const char *const policy_keys[] = {
	"name",	       "extends", "rootfs",	     "network",	      "limits",
	"python",      "seccomp", "max_code_bytes",  "max_job_bytes", "max_result_bytes",
	"description", "audit",	  "require_cgroups", "tool_defaults"
};

static bool known_key(const char *k)
{
	for (size_t i = 0; i < ARRAY_SIZE(policy_keys); i++) {
		if (strcmp(policy_keys[i], k) == 0)
			return true;
	}
	return false;
}

static int apply_limits(struct pc_policy *p, json_object *limits, const char *file, bool defaults_only,
			struct pc_error *err)
{
	if (!json_object_is_type(limits, json_type_object))
		return pc_error_set(err, EINVAL, "%s: limits: expected object", file);
	json_object_object_foreach (limits, key, val) {
		int i = pc_limit_index(key);
		const struct pc_limit_info *info;
		const char *why;
		long long x;

		if (i < 0)
			return pc_error_set(err, EINVAL, "%s: limits: unknown limit '%s'", file, key);
		info = &pc_limit_table[i];
		if (!json_object_is_type(val, json_type_object))
			return pc_error_set(err, EINVAL, "%s: limits.%s: expected {\"default\": N, \"max\": N}", file,
					    key);
		json_object_object_foreach (val, k2, v2) {
			bool is_def = strcmp(k2, "default") == 0, is_max = strcmp(k2, "max") == 0;

			if (!is_def && !is_max)
				return pc_error_set(err, EINVAL, "%s: limits.%s: unknown key '%s'", file, key, k2);
			if (defaults_only && is_max)
				return pc_error_set(
				    err, EINVAL, "%s: limits.%s.max: the system config sets defaults only", file, key);
			if (pc_json_int(v2, info->min, info->ceiling, &x, &why) < 0)
				return pc_error_set(err, EINVAL, "%s: limits.%s.%s: %s (%lld..%lld)", file, key, k2,
						    why, info->min, info->ceiling);
			if (is_def) {
				p->limits[i].def = x;
				p->def_from_policy[i] = !defaults_only;
			} else
				p->limits[i].max = x;
		}
	}
	return 0;
}

/* "tool_defaults": {"wall_ms": 2000, ...}: plain numbers, defaults only. */
static int apply_tool_defaults(struct pc_policy *p, json_object *o, const char *file, struct pc_error *err)
{
	if (!json_object_is_type(o, json_type_object))
		return pc_error_set(err, EINVAL, "%s: tool_defaults: expected object", file);
	json_object_object_foreach (o, key, val) {
		int i = pc_limit_index(key);
		const char *why;

		if (i < 0)
			return pc_error_set(err, EINVAL, "%s: tool_defaults: unknown limit '%s'", file, key);
		if (pc_json_int(val, pc_limit_table[i].min, pc_limit_table[i].ceiling, &p->tool_def[i], &why) < 0)
			return pc_error_set(err, EINVAL, "%s: tool_defaults.%s: %s (%lld..%lld)", file, key, why,
					    pc_limit_table[i].min, pc_limit_table[i].ceiling);
		p->has_tool_def[i] = true;
	}
	return 0;
}

static int set_string(char *dst, size_t dstlen, json_object *v, const char *file, const char *key, struct pc_error *err)
{
	const char *s, *why;
	size_t len;

	if (pc_json_string(v, &s, &len, &why) < 0)
		return pc_error_set(err, EINVAL, "%s: %s: %s", file, key, why);
	if (len == 0 || len >= dstlen || strlen(s) != len)
		return pc_error_set(err, EINVAL, "%s: %s: empty, too long or contains NUL", file, key);
	memcpy(dst, s, len + 1);
	return 0;
}

static int apply_size(size_t *dst, json_object *v, const char *file, const char *key, struct pc_error *err)
{
	const char *why;
	long long x;

	if (pc_json_int(v, 1, 1LL << 30, &x, &why) < 0)
		return pc_error_set(err, EINVAL, "%s: %s: %s (1..%lld)", file, key, why, 1LL << 30);
	*dst = (size_t)x;
	return 0;
}

static int resolve_relative(char *out, size_t len, const char *file, const char *rel)
{
	char dir[PATH_MAX];

	if (rel[0] == '/')
		return snprintf(out, len, "%s", rel) >= (int)len ? -ENAMETOOLONG : 0;
	snprintf(dir, sizeof(dir), "%s", file);
	return snprintf(out, len, "%s/%s", dirname(dir), rel) >= (int)len ? -ENAMETOOLONG : 0;
}

static int check_string_array(json_object *v, const char *file, const char *key, struct pc_error *err)
{
	if (!json_object_is_type(v, json_type_array))
		return pc_error_set(err, EINVAL, "%s: %s: expected an array of strings", file, key);
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		json_object *x = json_object_array_get_idx(v, i);
		if (!json_object_is_type(x, json_type_string) || json_object_get_string_len(x) == 0)
			return pc_error_set(err, EINVAL, "%s: %s[%zu]: expected a non-empty string", file, key, i);
	}
	return 0;
}

/* The Python layer's keys belong to the shim; the ones every shim reads
 * are type-checked here so that a typo fails at load, not inside the job. */
static int check_python(json_object *py, const char *file, struct pc_error *err)
{
	static const char *const lists[] = { "allowed_imports", "grantable_imports", "denied_builtins" };
	json_object *v;
	char key[64];

	for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
		snprintf(key, sizeof(key), "python.%s", lists[i]);
		if (json_object_object_get_ex(py, lists[i], &v) && check_string_array(v, file, key, err) < 0)
			return -EINVAL;
	}
	if (json_object_object_get_ex(py, "module_attributes", &v)) {
		if (!json_object_is_type(v, json_type_object))
			return pc_error_set(err, EINVAL,
					    "%s: python.module_attributes: expected an object module -> [names]", file);
		json_object_object_foreach (v, mod, names) {
			snprintf(key, sizeof(key), "python.module_attributes.%.40s", mod);
			if (check_string_array(names, file, key, err) < 0)
				return -EINVAL;
		}
	}
	return 0;
}

static int apply_audit(struct pc_policy *p, json_object *a, const char *file, struct pc_error *err)
{
	json_object *v;
	const char *why;
	char rel[PATH_MAX];
	int r;

	if (!json_object_is_type(a, json_type_object))
		return pc_error_set(err, EINVAL, "%s: audit: expected {\"path\": FILE, \"include_code\": BOOL}", file);
	json_object_object_foreach (a, key, val) {
		(void)val;
		if (strcmp(key, "path") != 0 && strcmp(key, "include_code") != 0)
			return pc_error_set(err, EINVAL, "%s: audit: unknown key '%s'", file, key);
	}
	if (json_object_object_get_ex(a, "path", &v)) {
		if ((r = set_string(rel, sizeof(rel), v, file, "audit.path", err)) < 0)
			return r;
		if (resolve_relative(p->audit_log, sizeof(p->audit_log), file, rel) < 0)
			return pc_error_set(err, ENAMETOOLONG, "%s: audit.path: path too long", file);
	}
	if (json_object_object_get_ex(a, "include_code", &v) && pc_json_bool(v, &p->audit_include_code, &why) < 0)
		return pc_error_set(err, EINVAL, "%s: audit.include_code: %s", file, why);
	return 0;
}

static int apply_python(struct pc_policy *p, json_object *py, const char *file, struct pc_error *err)
{
	json_object *v;
	const char *why;

	if (!json_object_is_type(py, json_type_object))
		return pc_error_set(err, EINVAL, "%s: python: expected object", file);
	if (check_python(py, file, err) < 0)
		return -EINVAL;
	if (json_object_object_get_ex(py, "checks", &v) && pc_json_bool(v, &p->python_checks, &why) < 0)
		return pc_error_set(err, EINVAL, "%s: python.checks: %s", file, why);
	if (json_object_object_get_ex(py, "grantable_imports", &v)) {
		if (!json_object_is_type(v, json_type_array))
			return pc_error_set(err, EINVAL, "%s: python.grantable_imports: expected array", file);
		free(p->grantable_json);
		p->grantable_json = strdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
	}
	free(p->python_json);
	p->python_json = strdup(json_object_to_json_string_ext(py, JSON_C_TO_STRING_PLAIN));
	if (!p->python_json || (p->grantable_json == NULL && json_object_object_get_ex(py, "grantable_imports", NULL)))
		return pc_error_set(err, ENOMEM, "%s: python", file);
	return 0;
}

static int load_layer(struct pc_policy *p, const char *path, int depth, struct pc_error *err);

static int apply_object(struct pc_policy *p, json_object *root, const char *path, int depth, struct pc_error *err)
{
	json_object *v;
	int r;

	if (!json_object_is_type(root, json_type_object))
		return pc_error_set(err, EINVAL, "%s: expected a JSON object", path);
	json_object_object_foreach (root, key, val) {
		(void)val;
		if (!known_key(key))
			return pc_error_set(err, EINVAL, "%s: unknown key '%s'", path, key);
	}
	if (json_object_object_get_ex(root, "extends", &v)) {
		char base[PATH_MAX], rel[PATH_MAX];
		if ((r = set_string(rel, sizeof(rel), v, path, "extends", err)) < 0)
			return r;
		if (resolve_relative(base, sizeof(base), path, rel) < 0)
			return pc_error_set(err, ENAMETOOLONG, "%s: extends: path too long", path);
		/* Wrapped once, at the top: a chain of 8 files would otherwise push
		 * the root cause out of the message. */
		if ((r = load_layer(p, base, depth + 1, err)) < 0)
			return depth == 0 ? pc_error_wrap(err, "%s: extends", path) : r;
	}
	if (json_object_object_get_ex(root, "name", &v) &&
	    (r = set_string(p->name, sizeof(p->name), v, path, "name", err)) < 0)
		return r;
	if (json_object_object_get_ex(root, "rootfs", &v) &&
	    (r = set_string(p->rootfs, sizeof(p->rootfs), v, path, "rootfs", err)) < 0)
		return r;
	if (json_object_object_get_ex(root, "network", &v)) {
		if ((r = set_string(p->network, sizeof(p->network), v, path, "network", err)) < 0)
			return r;
		if (strcmp(p->network, "none") != 0)
			return pc_error_set(err, EINVAL,
					    "%s: network: '%s' is not supported (only \"none\": loopback only)", path,
					    p->network);
	}
	if (json_object_object_get_ex(root, "seccomp", &v)) {
		char rel[PATH_MAX];
		/* null: no seccomp list (weakened test policies; `pycell audit`
		 * reports the layer as FAIL). The exec filter still stacks. */
		if (!v)
			p->seccomp[0] = '\0';
		else if ((r = set_string(rel, sizeof(rel), v, path, "seccomp", err)) < 0)
			return r;
		else if (resolve_relative(p->seccomp, sizeof(p->seccomp), path, rel) < 0)
			return pc_error_set(err, ENAMETOOLONG, "%s: seccomp: path too long", path);
	}
	if (json_object_object_get_ex(root, "limits", &v) && (r = apply_limits(p, v, path, false, err)) < 0)
		return r;
	if (json_object_object_get_ex(root, "tool_defaults", &v) && (r = apply_tool_defaults(p, v, path, err)) < 0)
		return r;
	if (json_object_object_get_ex(root, "max_code_bytes", &v) &&
	    (r = apply_size(&p->max_code_bytes, v, path, "max_code_bytes", err)) < 0)
		return r;
	if (json_object_object_get_ex(root, "max_job_bytes", &v) &&
	    (r = apply_size(&p->max_job_bytes, v, path, "max_job_bytes", err)) < 0)
		return r;
	if (json_object_object_get_ex(root, "max_result_bytes", &v) &&
	    (r = apply_size(&p->max_result_bytes, v, path, "max_result_bytes", err)) < 0)
		return r;
	if (json_object_object_get_ex(root, "python", &v) && (r = apply_python(p, v, path, err)) < 0)
		return r;
	if (json_object_object_get_ex(root, "require_cgroups", &v)) {
		const char *why;
		if (pc_json_bool(v, &p->require_cgroups, &why) < 0)
			return pc_error_set(err, EINVAL, "%s: require_cgroups: %s", path, why);
	}
	if (json_object_object_get_ex(root, "audit", &v) && (r = apply_audit(p, v, path, err)) < 0)
		return r;
	return 0;
}

static int load_layer(struct pc_policy *p, const char *path, int depth, struct pc_error *err)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_json_ json_object *root = NULL;
	const char *why = NULL;
	size_t len;
	int r;

	if (depth > MAX_EXTENDS_DEPTH)
		return pc_error_set(err, ELOOP, "%s: 'extends' nests deeper than %d", path, MAX_EXTENDS_DEPTH);
	if ((r = pc_read_file(path, NULL, 0, MAX_POLICY_BYTES, &buf, &len, err)) < 0)
		return r;
	root = pc_json_parse(buf, len, &why);
	if (!root)
		return pc_error_set(err, EINVAL, "%s: invalid JSON: %s", path, why);
	return apply_object(p, root, path, depth, err);
}

static void set_builtin(struct pc_policy *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "builtin");
	snprintf(p->rootfs, sizeof(p->rootfs), "minimal");
	snprintf(p->network, sizeof(p->network), "none");
	for (int i = 0; i < PC_LIM_COUNT; i++)
		p->limits[i] = pc_limit_table[i].builtin;
	p->max_code_bytes = 64 * 1024;
	p->max_job_bytes = 8 * 1024 * 1024;
	p->max_result_bytes = 4 * 1024 * 1024;
	p->python_checks = true;
}

static int check_consistent(struct pc_policy *p, struct pc_error *err)
{
	for (int i = 0; i < PC_LIM_COUNT; i++) {
		/* A system-wide default above this policy's max is clamped: the
		 * policy's max is the hard ceiling whatever sits below it. */
		if (!p->def_from_policy[i] && p->limits[i].def > p->limits[i].max)
			p->limits[i].def = p->limits[i].max;
		if (p->limits[i].def > p->limits[i].max)
			return pc_error_set(err, EINVAL, "%s: limits.%s: default %lld is above max %lld",
					    p->path[0] ? p->path : p->name, pc_limit_table[i].name, p->limits[i].def,
					    p->limits[i].max);
	}
	return 0;
}

int pc_policy_load(struct pc_policy *p, const char *path, const char *system_config, struct pc_error *err)
{
	int r = 0;

	set_builtin(p);
	/* The system config sits below the policy: it may only set limit
	 * defaults, and the policy's own defaults win over it. */
	if (system_config && access(system_config, F_OK) == 0) {
		_cleanup_free_ char *buf = NULL;
		_cleanup_json_ json_object *root = NULL;
		json_object *lim;
		const char *why = NULL;
		size_t len;

		if ((r = pc_read_file(system_config, NULL, 0, MAX_POLICY_BYTES, &buf, &len, err)) < 0)
			return r;
		root = pc_json_parse(buf, len, &why);
		if (!root || !json_object_is_type(root, json_type_object))
			return pc_error_set(err, EINVAL, "%s: invalid JSON: %s", system_config,
					    why ? why : "expected object");
		json_object_object_foreach (root, key, val) {
			(void)val;
			if (strcmp(key, "limits") != 0)
				return pc_error_set(err, EINVAL, "%s: unknown key '%s' (only \"limits\")",
						    system_config, key);
		}
		if (json_object_object_get_ex(root, "limits", &lim) &&
		    (r = apply_limits(p, lim, system_config, true, err)) < 0)
			return r;
	}
	if (path) {
		snprintf(p->path, sizeof(p->path), "%s", path);
		r = load_layer(p, path, 0, err);
	}
	if (r >= 0)
		r = check_consistent(p, err);
	/* A refused policy owns nothing: callers only free a loaded one. */
	if (r < 0)
		pc_policy_free(p);
	return r;
}

void pc_policy_free(struct pc_policy *p)
{
	free(p->python_json);
	free(p->grantable_json);
	p->python_json = p->grantable_json = NULL;
}

json_object *pc_policy_to_json(const struct pc_policy *p)
{
	json_object *o = json_object_new_object(), *lim = json_object_new_object(), *a = json_object_new_object(), *py;
	const char *why;

	json_object_object_add(o, "name", json_object_new_string(p->name));
	json_object_object_add(o, "path", p->path[0] ? json_object_new_string(p->path) : NULL);
	json_object_object_add(o, "rootfs", json_object_new_string(p->rootfs));
	json_object_object_add(o, "network", json_object_new_string(p->network));
	json_object_object_add(o, "seccomp", p->seccomp[0] ? json_object_new_string(p->seccomp) : NULL);
	json_object_object_add(o, "max_code_bytes", json_object_new_int64((int64_t)p->max_code_bytes));
	json_object_object_add(o, "max_job_bytes", json_object_new_int64((int64_t)p->max_job_bytes));
	json_object_object_add(o, "max_result_bytes", json_object_new_int64((int64_t)p->max_result_bytes));
	for (int i = 0; i < PC_LIM_COUNT; i++) {
		json_object *r = json_object_new_object();
		json_object_object_add(r, "default", json_object_new_int64(p->limits[i].def));
		json_object_object_add(r, "max", json_object_new_int64(p->limits[i].max));
		json_object_object_add(lim, pc_limit_table[i].name, r);
	}
	json_object_object_add(o, "limits", lim);
	lim = json_object_new_object();
	for (int i = 0; i < PC_LIM_COUNT; i++) {
		if (p->has_tool_def[i])
			json_object_object_add(lim, pc_limit_table[i].name, json_object_new_int64(p->tool_def[i]));
	}
	json_object_object_add(o, "tool_defaults", lim);
	py = p->python_json ? pc_json_parse(p->python_json, strlen(p->python_json), &why) : NULL;
	if (!py)
		py = json_object_new_object();
	/* checks is the effective value, whichever layer set it */
	json_object_object_add(py, "checks", json_object_new_boolean(p->python_checks));
	json_object_object_add(o, "python", py);
	json_object_object_add(a, "path", p->audit_log[0] ? json_object_new_string(p->audit_log) : NULL);
	json_object_object_add(a, "include_code", json_object_new_boolean(p->audit_include_code));
	json_object_object_add(o, "audit", a);
	return o;
}
