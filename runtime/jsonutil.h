/* Typed access to json-c objects. json_object_get_string() happily returns
 * text for non-strings, so a NULL check proves nothing: every read goes
 * through these helpers, which check the type first. */
#ifndef PYCELL_JSONUTIL_H
#define PYCELL_JSONUTIL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

static inline void cleanup_jsonp(json_object **j)
{
	if (*j)
		json_object_put(*j);
}
#define _cleanup_json_ __attribute__((cleanup(cleanup_jsonp)))

/* Each returns 0, or -1 with a short reason in why ("expected string"). */
int pc_json_string(json_object *v, const char **out, size_t *len, const char **why);
int pc_json_int(json_object *v, long long min, long long max, long long *out, const char **why);
int pc_json_bool(json_object *v, bool *out, const char **why);
/* Parses a whole buffer; rejects trailing garbage. NULL + *why on error. */
json_object *pc_json_parse(const char *buf, size_t len, const char **why);
/* true when buf is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool pc_utf8_valid(const char *buf, size_t len);

#endif
