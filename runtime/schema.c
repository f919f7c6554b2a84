/* A deliberately small validator. Semantics follow JSON Schema 2020-12 for
 * the keywords it knows: "integer" is a number with no fraction, booleans
 * are never numbers, enum compares by JSON equality. */
#define _GNU_SOURCE
#include "schema.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define MAX_DEPTH 32

static const char *const type_names[] = { "object", "array", "string", "number", "integer", "boolean", "null" };
static const char *const keywords[] = { "type",	   "properties",  "required", "enum",
					"minimum", "maximum",	  "items",    "additionalProperties",
					"title",   "description", "$schema" };

static int fail(struct pc_schema_error *e, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct pc_schema_error *e, const char *path, const char *fmt, ...)
{
	va_list ap;

	snprintf(e->path, sizeof(e->path), "%s", path);
	va_start(ap, fmt);
	vsnprintf(e->reason, sizeof(e->reason), fmt, ap);
	va_end(ap);
	return -1;
}

static bool ident(const char *k)
{
	if (!*k || isdigit((unsigned char)*k))
		return false;
	for (; *k; k++) {
		if (!isalnum((unsigned char)*k) && *k != '_')
			return false;
	}
	return true;
}

/* "$.a" / "$[\"odd key\"]" / "$[3]"; truncation is harmless (paths are
 * for humans), so the buffer only has to stay terminated. */
static void child_key(char *out, size_t len, const char *path, const char *key)
{
	if (ident(key))
		snprintf(out, len, "%s.%s", path, key);
	else
		snprintf(out, len, "%s[\"%.64s\"]", path, key);
}

static bool is_number(json_object *v)
{
	return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
}

static bool is_type(json_object *v, const char *t)
{
	if (strcmp(t, "null") == 0)
		return v == NULL || json_object_is_type(v, json_type_null);
	if (!v)
		return false;
	if (strcmp(t, "object") == 0)
		return json_object_is_type(v, json_type_object);
	if (strcmp(t, "array") == 0)
		return json_object_is_type(v, json_type_array);
	if (strcmp(t, "string") == 0)
		return json_object_is_type(v, json_type_string);
	if (strcmp(t, "boolean") == 0)
		return json_object_is_type(v, json_type_boolean);
	if (strcmp(t, "number") == 0)
		return is_number(v);
	if (strcmp(t, "integer") == 0) {
		double d;
		if (json_object_is_type(v, json_type_int))
			return true;
		if (!json_object_is_type(v, json_type_double))
			return false;
		d = json_object_get_double(v);
		return isfinite(d) && d == floor(d);
	}
	return false;
}

static bool known_type(const char *t)
{
	for (size_t i = 0; i < ARRAY_SIZE(type_names); i++) {
		if (strcmp(type_names[i], t) == 0)
			return true;
	}
	return false;
}

static int check_at(json_object *s, const char *path, int depth, struct pc_schema_error *e);

static int check_type_kw(json_object *t, const char *path, struct pc_schema_error *e)
{
	if (json_object_is_type(t, json_type_string))
		return known_type(json_object_get_string(t))
			   ? 0
			   : fail(e, path, "unknown type '%.64s'", json_object_get_string(t));
	if (!json_object_is_type(t, json_type_array) || json_object_array_length(t) == 0)
		return fail(e, path, "type: expected a type name or a non-empty array of them");
	for (size_t i = 0; i < json_object_array_length(t); i++) {
		json_object *x = json_object_array_get_idx(t, i);
		if (!json_object_is_type(x, json_type_string) || !known_type(json_object_get_string(x)))
			return fail(e, path, "type[%zu]: unknown type", i);
	}
	return 0;
}

static int check_keywords(json_object *s, const char *path, struct pc_schema_error *e)
{
	json_object_object_foreach (s, key, val) {
		bool known = false;

		(void)val;
		for (size_t i = 0; i < ARRAY_SIZE(keywords); i++)
			known = known || strcmp(keywords[i], key) == 0;
		if (!known)
			return fail(e, path, "unsupported keyword '%.64s'", key);
	}
	return 0;
}

static int check_at(json_object *s, const char *path, int depth, struct pc_schema_error *e)
{
	json_object *v;
	char sub[256];

	if (depth > MAX_DEPTH)
		return fail(e, path, "schema nests deeper than %d", MAX_DEPTH);
	if (!json_object_is_type(s, json_type_object))
		return fail(e, path, "expected a schema object");
	if (check_keywords(s, path, e) < 0)
		return -1;
	if (json_object_object_get_ex(s, "type", &v) && check_type_kw(v, path, e) < 0)
		return -1;
	if (json_object_object_get_ex(s, "properties", &v)) {
		if (!json_object_is_type(v, json_type_object))
			return fail(e, path, "properties: expected object");
		json_object_object_foreach (v, key, sch) {
			child_key(sub, sizeof(sub), path, key);
			if (check_at(sch, sub, depth + 1, e) < 0)
				return -1;
		}
	}
	if (json_object_object_get_ex(s, "required", &v)) {
		if (!json_object_is_type(v, json_type_array))
			return fail(e, path, "required: expected array of strings");
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			if (!json_object_is_type(json_object_array_get_idx(v, i), json_type_string))
				return fail(e, path, "required[%zu]: expected string", i);
		}
	}
	if (json_object_object_get_ex(s, "enum", &v) && !json_object_is_type(v, json_type_array))
		return fail(e, path, "enum: expected array");
	if (json_object_object_get_ex(s, "minimum", &v) && !is_number(v))
		return fail(e, path, "minimum: expected number");
	if (json_object_object_get_ex(s, "maximum", &v) && !is_number(v))
		return fail(e, path, "maximum: expected number");
	if (json_object_object_get_ex(s, "additionalProperties", &v) && !json_object_is_type(v, json_type_boolean))
		return fail(e, path, "additionalProperties: only true or false is supported");
	if (json_object_object_get_ex(s, "items", &v)) {
		snprintf(sub, sizeof(sub), "%s[]", path);
		return check_at(v, sub, depth + 1, e);
	}
	return 0;
}

int pc_schema_check(json_object *schema, struct pc_schema_error *e)
{
	return check_at(schema, "$", 0, e);
}

static int validate_type(json_object *t, json_object *v, const char *path, struct pc_schema_error *e)
{
	char want[128] = "";

	if (json_object_is_type(t, json_type_string)) {
		if (is_type(v, json_object_get_string(t)))
			return 0;
		return fail(e, path, "expected %s", json_object_get_string(t));
	}
	for (size_t i = 0; i < json_object_array_length(t); i++) {
		const char *name = json_object_get_string(json_object_array_get_idx(t, i));
		if (is_type(v, name))
			return 0;
		snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%s", i ? " or " : "", name);
	}
	return fail(e, path, "expected %s", want);
}

static int validate_at(json_object *s, json_object *v, const char *path, struct pc_schema_error *e);

static int validate_object(json_object *s, json_object *v, const char *path, struct pc_schema_error *e)
{
	json_object *props = NULL, *req, *addl, *sub_s, *sub_v;
	char sub[256];

	json_object_object_get_ex(s, "properties", &props);
	if (json_object_object_get_ex(s, "required", &req)) {
		for (size_t i = 0; i < json_object_array_length(req); i++) {
			const char *k = json_object_get_string(json_object_array_get_idx(req, i));
			if (!json_object_object_get_ex(v, k, NULL)) {
				child_key(sub, sizeof(sub), path, k);
				return fail(e, sub, "required property is missing");
			}
		}
	}
	json_object_object_foreach (v, key, val) {
		child_key(sub, sizeof(sub), path, key);
		if (props && json_object_object_get_ex(props, key, &sub_s)) {
			sub_v = val;
			if (validate_at(sub_s, sub_v, sub, e) < 0)
				return -1;
		} else if (json_object_object_get_ex(s, "additionalProperties", &addl) &&
			   !json_object_get_boolean(addl)) {
			return fail(e, sub, "property not allowed");
		}
	}
	return 0;
}

static int validate_at(json_object *s, json_object *v, const char *path, struct pc_schema_error *e)
{
	json_object *kw;
	char sub[256];

	if (json_object_object_get_ex(s, "type", &kw) && validate_type(kw, v, path, e) < 0)
		return -1;
	if (json_object_object_get_ex(s, "enum", &kw)) {
		bool found = false;
		for (size_t i = 0; i < json_object_array_length(kw) && !found; i++)
			found = json_object_equal(json_object_array_get_idx(kw, i), v);
		if (!found)
			return fail(e, path, "not one of the enum values %.200s",
				    json_object_to_json_string_ext(kw, JSON_C_TO_STRING_PLAIN));
	}
	if (v && is_number(v) && !json_object_is_type(v, json_type_boolean)) {
		double x = json_object_get_double(v);
		if (json_object_object_get_ex(s, "minimum", &kw) && x < json_object_get_double(kw))
			return fail(e, path, "%g is below the minimum %g", x, json_object_get_double(kw));
		if (json_object_object_get_ex(s, "maximum", &kw) && x > json_object_get_double(kw))
			return fail(e, path, "%g is above the maximum %g", x, json_object_get_double(kw));
	}
	if (json_object_is_type(v, json_type_object))
		return validate_object(s, v, path, e);
	if (json_object_is_type(v, json_type_array) && json_object_object_get_ex(s, "items", &kw)) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
			if (validate_at(kw, json_object_array_get_idx(v, i), sub, e) < 0)
				return -1;
		}
	}
	return 0;
}

int pc_schema_validate(json_object *schema, json_object *value, struct pc_schema_error *e)
{
	return validate_at(schema, value, "$", e);
}
