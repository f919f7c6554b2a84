#define _GNU_SOURCE
#include "job.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "jsonutil.h"
#include "schema.h"
#include "sha256.h"
#include "util.h"

#define MAX_FILES     256
#define MAX_FILE_NAME 255
#define MAX_LIST      256
#define MAX_ID	      256

static const char *const job_keys[] = { "id",	  "language", "code",	  "input",	   "files",
					"limits", "imports",  "packages", "output_schema", "mode" };

static int refuse(struct pc_job_error *je, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(struct pc_job_error *je, const char *code, const char *fmt, ...)
{
	va_list ap;

	je->code = code;
	va_start(ap, fmt);
	vsnprintf(je->reason, sizeof(je->reason), fmt, ap);
	va_end(ap);
	return -1;
}

#define INVALID(...) refuse(je, "INVALID_JOB", __VA_ARGS__)

/* A string that is valid UTF-8 without NUL, at most max bytes. */
static int get_text(json_object *v, const char *key, size_t max, const char **out, size_t *len, struct pc_job_error *je)
{
	const char *why;

	if (pc_json_string(v, out, len, &why) < 0)
		return INVALID("%s:expected_string", key);
	if (*len > max)
		return INVALID("%s_too_long", key);
	if (memchr(*out, '\0', *len))
		return INVALID("%s:nul_byte", key);
	if (!pc_utf8_valid(*out, *len))
		return INVALID("%s:invalid_utf8", key);
	return 0;
}

static char *dup_json(json_object *v)
{
	return strdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

static bool bad_file_name(const char *n, size_t len)
{
	return len == 0 || len > MAX_FILE_NAME || strchr(n, '/') || strcmp(n, ".") == 0 || strstr(n, "..") ||
	       memchr(n, '\0', len);
}

static int parse_files(json_object *v, struct pc_job *job, struct pc_job_error *je)
{
	size_t n = 0;

	if (!json_object_is_type(v, json_type_object))
		return INVALID("files:expected_object");
	if (json_object_object_length(v) > MAX_FILES)
		return INVALID("files:too_many");
	job->files = calloc((size_t)json_object_object_length(v) + 1, sizeof(*job->files));
	if (!job->files)
		return INVALID("out_of_memory");
	json_object_object_foreach (v, name, data) {
		const char *s;
		size_t len;

		if (bad_file_name(name, strlen(name)) || !pc_utf8_valid(name, strlen(name)))
			return INVALID("files:bad_name");
		if (get_text(data, "files", 64 * 1024 * 1024, &s, &len, je) < 0)
			return -1;
		/* Copied at once: nothing in the job points into the parsed tree,
		 * so every early return leaves a job pc_job_free() can release. */
		job->files[n].name = strdup(name);
		job->files[n].data = strndup(s, len);
		job->files[n].len = len;
		job->n_files = ++n;
		if (!job->files[n - 1].name || !job->files[n - 1].data)
			return INVALID("out_of_memory");
	}
	return 0;
}

static int parse_limits(json_object *v, struct pc_job *job, struct pc_job_error *je)
{
	if (!json_object_is_type(v, json_type_object))
		return INVALID("limits:expected_object");
	json_object_object_foreach (v, key, val) {
		int i = pc_limit_index(key);
		const char *why;

		if (i < 0)
			return INVALID("limits:unknown_key:%s", key);
		if (pc_json_int(val, pc_limit_table[i].min, pc_limit_table[i].ceiling, &job->limits[i], &why) < 0)
			return INVALID("limits:%s:%s", key,
				       strcmp(why, "out of range") == 0 ? "out_of_range" : "expected_integer");
		job->has_limit[i] = true;
	}
	return 0;
}

/* Module and distribution names: letters, digits, '_', '-', '.'; never a
 * path, never an option. */
static bool good_module_name(const char *s)
{
	if (s[0] == '-' || s[0] == '.')
		return false;
	for (; *s; s++) {
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') && !(*s >= '0' && *s <= '9') &&
		    !strchr("_-.", *s))
			return false;
	}
	return true;
}

static int parse_name_list(json_object *v, const char *key, char **out, struct pc_job_error *je)
{
	size_t i, n;

	if (!json_object_is_type(v, json_type_array))
		return INVALID("%s:expected_array", key);
	n = json_object_array_length(v);
	if (n > MAX_LIST)
		return INVALID("%s:too_many", key);
	for (i = 0; i < n; i++) {
		const char *s;
		size_t len;

		if (get_text(json_object_array_get_idx(v, i), key, 128, &s, &len, je) < 0)
			return -1;
		if (len == 0)
			return INVALID("%s:empty_name", key);
		if (!good_module_name(s))
			return INVALID("%s:bad_name:%.128s", key, s);
	}
	*out = dup_json(v);
	return *out ? 0 : INVALID("out_of_memory");
}

static bool known_key(const char *k)
{
	for (size_t i = 0; i < ARRAY_SIZE(job_keys); i++) {
		if (strcmp(job_keys[i], k) == 0)
			return true;
	}
	return false;
}

static int parse_object(json_object *root, const struct pc_policy *pol, struct pc_job *job, struct pc_job_error *je)
{
	json_object *v;
	const char *s;
	size_t len;

	/* The id first, so that even a refused job's result echoes it. */
	if (json_object_object_get_ex(root, "id", &v)) {
		if (get_text(v, "id", MAX_ID, &s, &len, je) < 0)
			return -1;
		if (!(job->id = strdup(s)))
			return INVALID("out_of_memory");
	}
	json_object_object_foreach (root, key, val) {
		(void)val;
		if (!known_key(key))
			return INVALID("unknown_key:%.200s", key);
	}
	if (json_object_object_get_ex(root, "language", &v)) {
		if (get_text(v, "language", 64, &s, &len, je) < 0)
			return -1;
		if (strcmp(s, "python") != 0)
			return refuse(je, "LANGUAGE_DENIED", "language_not_supported:%.64s", s);
	}
	if (!json_object_object_get_ex(root, "code", &v))
		return INVALID("missing_key:code");
	if (get_text(v, "code", pol->max_code_bytes, &s, &len, je) < 0)
		return -1;
	if (len == 0)
		return INVALID("code_empty");
	job->code = strndup(s, len);
	job->code_len = len;
	pc_sha256_hex(s, len, job->code_sha256);
	if (json_object_object_get_ex(root, "input", &v) && !(job->input_json = dup_json(v)))
		return INVALID("out_of_memory");
	if (json_object_object_get_ex(root, "files", &v) && parse_files(v, job, je) < 0)
		return -1;
	if (json_object_object_get_ex(root, "limits", &v) && parse_limits(v, job, je) < 0)
		return -1;
	if (json_object_object_get_ex(root, "imports", &v) && parse_name_list(v, "imports", &job->imports_json, je) < 0)
		return -1;
	if (json_object_object_get_ex(root, "packages", &v) &&
	    parse_name_list(v, "packages", &job->packages_json, je) < 0)
		return -1;
	if (json_object_object_get_ex(root, "output_schema", &v)) {
		struct pc_schema_error se;

		if (!json_object_is_type(v, json_type_object))
			return INVALID("output_schema:expected_object");
		if (pc_schema_check(v, &se) < 0)
			return INVALID("output_schema:%s: %s", se.path, se.reason);
		if (!(job->output_schema_json = dup_json(v)))
			return INVALID("out_of_memory");
	}
	if (json_object_object_get_ex(root, "mode", &v)) {
		if (get_text(v, "mode", 32, &s, &len, je) < 0)
			return -1;
		/* Short and long spellings; the shim sees the short one. */
		if (strcmp(s, "inline") == 0 || strcmp(s, "inline_code") == 0)
			job->mode = strdup("inline");
		else if (strcmp(s, "tool") == 0 || strcmp(s, "python_exec_tool") == 0)
			job->mode = strdup("tool");
		else
			return INVALID("mode:expected_inline_code_or_python_exec_tool");
	} else {
		job->mode = strdup("inline");
	}
	if (!job->code || !job->mode)
		return INVALID("out_of_memory");
	return 0;
}

/* json-c turns a lone UTF-16 surrogate escape ("\\ud800") into U+FFFD
 * without a word, so the check the raw bytes got (valid UTF-8) says nothing
 * about what the escapes decode to. Refuse unpaired surrogates here, and
 * "\\u0000" too: json-c cuts an object key at it ("a\\u0000/.." reads as
 * "a"), so a NUL is refused in every string of a job, not only in code.
 * Returns the refusal reason, or NULL; *has_nul says a NUL was seen (the
 * caller refuses it after parsing, so code and files keep their own reasons). */
static const char *bad_unicode_escape(const char *buf, size_t len, bool *has_nul)
{
	bool pending_high = false;

	for (size_t i = 0; i < len; i++) {
		unsigned v = 0;
		size_t k;

		if (buf[i] != '\\') {
			if (pending_high)
				return "invalid_unicode_escape";
			continue;
		}
		if (i + 1 < len && buf[i + 1] != 'u') {
			if (pending_high)
				return "invalid_unicode_escape";
			i++; /* skip the escaped character (it may be a backslash) */
			continue;
		}
		for (k = 0; k < 4 && i + 2 + k < len; k++) {
			char c = buf[i + 2 + k];
			v = v * 16 + (unsigned)(c >= '0' && c <= '9'			 ? c - '0'
						: (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10
											 : 0);
		}
		if (pending_high != (v >= 0xdc00 && v <= 0xdfff))
			return "invalid_unicode_escape"; /* high without low, or low without high */
		if (k == 4 && memcmp(buf + i + 2, "0000", 4) == 0)
			*has_nul = true;
		pending_high = v >= 0xd800 && v <= 0xdbff;
		i += 5;
	}
	return pending_high ? "invalid_unicode_escape" : NULL;
}

/* NaN and Infinity are not JSON, but json-c accepts them even in strict
 * mode; a job carrying one is refused rather than passed on to the shim. */
static bool has_non_finite(json_object *v, int depth)
{
	if (depth > 80)
		return true;
	if (json_object_is_type(v, json_type_double))
		return !isfinite(json_object_get_double(v));
	if (json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			if (has_non_finite(json_object_array_get_idx(v, i), depth + 1))
				return true;
		}
	}
	if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach (v, k, x) {
			(void)k;
			if (has_non_finite(x, depth + 1))
				return true;
		}
	}
	return false;
}

static bool starts_like_object(const char *buf, size_t len)
{
	size_t i = 0;

	while (i < len && strchr(" \t\r\n", buf[i]))
		i++;
	return i == len || buf[i] == '{';
}

int pc_job_parse(const char *buf, size_t len, const struct pc_policy *pol, struct pc_job *job, struct pc_job_error *je)
{
	_cleanup_json_ json_object *root = NULL;
	const char *why = NULL;
	bool has_nul = false;

	memset(job, 0, sizeof(*job));
	if (len > pol->max_job_bytes)
		return INVALID("job_too_large");
	if (len == 0)
		return INVALID("empty_job");
	if (memchr(buf, '\0', len))
		return INVALID("nul_byte");
	if (!pc_utf8_valid(buf, len))
		return INVALID("invalid_utf8");
	/* json-c cannot tell where a bare top-level scalar ends ("null" reads
	 * as truncated), so anything that does not open an object is told
	 * apart here, before the parser gives a misleading reason. */
	if (!starts_like_object(buf, len))
		return INVALID("not_an_object");
	if ((why = bad_unicode_escape(buf, len, &has_nul)))
		return INVALID("%s", why);
	root = pc_json_parse(buf, len, &why);
	if (!root)
		return INVALID("malformed_json:%s", why);
	if (!json_object_is_type(root, json_type_object))
		return INVALID("not_an_object");
	if (has_non_finite(root, 0))
		return INVALID("non_finite_number");
	if (parse_object(root, pol, job, je) < 0)
		return -1;
	if (has_nul)
		return INVALID("nul_byte");
	return 0;
}

void pc_job_free(struct pc_job *job)
{
	for (size_t i = 0; i < job->n_files; i++) {
		free((char *)job->files[i].name);
		free((char *)job->files[i].data);
	}
	free(job->files);
	free(job->id);
	free(job->code);
	free(job->input_json);
	free(job->imports_json);
	free(job->packages_json);
	free(job->output_schema_json);
	free(job->mode);
	memset(job, 0, sizeof(*job));
}

const char *pc_job_execution_mode(const struct pc_job *job)
{
	return job->mode && strcmp(job->mode, "tool") == 0 ? "python_exec_tool" : "inline_code";
}

void pc_job_effective_limits(const struct pc_job *job, const struct pc_policy *pol, long long out[PC_LIM_COUNT])
{
	bool tool = job->mode && strcmp(job->mode, "tool") == 0;

	for (int i = 0; i < PC_LIM_COUNT; i++) {
		long long v = job->has_limit[i]		     ? job->limits[i]
			      : tool && pol->has_tool_def[i] ? pol->tool_def[i]
							     : pol->limits[i].def;
		out[i] = v > pol->limits[i].max ? pol->limits[i].max : v;
	}
}
