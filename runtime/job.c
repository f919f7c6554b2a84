#define _GNU_SOURCE
#include "job.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "jsonutil.h"
#include "util.h"

#define MAX_FILES 256
#define MAX_FILE_NAME 255
#define MAX_LIST 256
#define MAX_ID 256

static const char *const job_keys[] = { "id",      "language", "code",     "input",         "files",
					"limits",  "imports",  "packages", "output_schema", "mode" };

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
static int get_text(json_object *v, const char *key, size_t max, const char **out, size_t *len,
		    struct pc_job_error *je)
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
	json_object_object_foreach(v, name, data)
	{
		const char *s;
		size_t len;

		if (bad_file_name(name, strlen(name)) || !pc_utf8_valid(name, strlen(name)))
			return INVALID("files:bad_name");
		if (get_text(data, "files", 64 * 1024 * 1024, &s, &len, je) < 0)
			return -1;
		job->files[n].name = strdup(name);
		job->files[n].data = s; /* lives in the parsed tree, see pc_job_parse */
		job->files[n].len = len;
		if (!job->files[n].name)
			return INVALID("out_of_memory");
		job->n_files = ++n;
	}
	return 0;
}

static int parse_limits(json_object *v, struct pc_job *job, struct pc_job_error *je)
{
	if (!json_object_is_type(v, json_type_object))
		return INVALID("limits:expected_object");
	json_object_object_foreach(v, key, val)
	{
		int i = pc_limit_index(key);
		const char *why;

		if (i < 0)
			return INVALID("limits:unknown_key:%s", key);
		if (pc_json_int(val, pc_limit_table[i].min, pc_limit_table[i].ceiling, &job->limits[i], &why) < 0)
			return INVALID("limits:%s:%s", key, strcmp(why, "out of range") == 0 ? "out_of_range" : "expected_integer");
		job->has_limit[i] = true;
	}
	return 0;
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

static int parse_object(json_object *root, const struct pc_policy *pol, struct pc_job *job,
			struct pc_job_error *je)
{
	json_object *v;
	const char *s;
	size_t len;

	json_object_object_foreach(root, key, val)
	{
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
	if (json_object_object_get_ex(root, "id", &v)) {
		if (get_text(v, "id", MAX_ID, &s, &len, je) < 0)
			return -1;
		job->id = strdup(s);
	}
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
		if (!json_object_is_type(v, json_type_object))
			return INVALID("output_schema:expected_object");
		job->output_schema_json = dup_json(v);
	}
	if (json_object_object_get_ex(root, "mode", &v)) {
		if (get_text(v, "mode", 16, &s, &len, je) < 0)
			return -1;
		if (strcmp(s, "inline") != 0 && strcmp(s, "tool") != 0)
			return INVALID("mode:expected_inline_or_tool");
		job->mode = strdup(s);
	} else {
		job->mode = strdup("inline");
	}
	if (!job->code || !job->mode)
		return INVALID("out_of_memory");
	return 0;
}

/* File contents point into the parsed tree, so copy them out before the
 * tree goes. */
static int own_file_data(struct pc_job *job, struct pc_job_error *je)
{
	for (size_t i = 0; i < job->n_files; i++) {
		char *d = malloc(job->files[i].len + 1);
		if (!d)
			return INVALID("out_of_memory");
		memcpy(d, job->files[i].data, job->files[i].len);
		d[job->files[i].len] = '\0';
		job->files[i].data = d;
	}
	return 0;
}

int pc_job_parse(const char *buf, size_t len, const struct pc_policy *pol, struct pc_job *job,
		 struct pc_job_error *je)
{
	_cleanup_json_ json_object *root = NULL;
	const char *why = NULL;

	memset(job, 0, sizeof(*job));
	if (len > pol->max_job_bytes)
		return INVALID("job_too_large");
	if (len == 0)
		return INVALID("empty_job");
	if (memchr(buf, '\0', len))
		return INVALID("nul_byte");
	if (!pc_utf8_valid(buf, len))
		return INVALID("invalid_utf8");
	root = pc_json_parse(buf, len, &why);
	if (!root)
		return INVALID("malformed_json:%s", why);
	if (!json_object_is_type(root, json_type_object))
		return INVALID("not_an_object");
	if (parse_object(root, pol, job, je) < 0) {
		/* file data still points into root: drop those pointers */
		for (size_t i = 0; i < job->n_files; i++)
			job->files[i].data = NULL;
		return -1;
	}
	return own_file_data(job, je);
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

void pc_job_effective_limits(const struct pc_job *job, const struct pc_policy *pol, long long out[PC_LIM_COUNT])
{
	for (int i = 0; i < PC_LIM_COUNT; i++) {
		long long v = job->has_limit[i] ? job->limits[i] : pol->limits[i].def;
		out[i] = v > pol->limits[i].max ? pol->limits[i].max : v;
	}
}
