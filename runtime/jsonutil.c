#include "jsonutil.h"

#include <errno.h>
#include <string.h>

int pc_json_string(json_object *v, const char **out, size_t *len, const char **why)
{
	if (!json_object_is_type(v, json_type_string)) {
		*why = "expected string";
		return -1;
	}
	*out = json_object_get_string(v);
	if (len)
		*len = (size_t)json_object_get_string_len(v);
	return 0;
}

int pc_json_int(json_object *v, long long min, long long max, long long *out, const char **why)
{
	long long x;

	if (!json_object_is_type(v, json_type_int)) {
		*why = "expected integer";
		return -1;
	}
	errno = 0;
	x = (long long)json_object_get_int64(v);
	/* json-c saturates out-of-range numbers at INT64 limits. */
	if (errno == ERANGE || x < min || x > max) {
		*why = "out of range";
		return -1;
	}
	*out = x;
	return 0;
}

int pc_json_bool(json_object *v, bool *out, const char **why)
{
	if (!json_object_is_type(v, json_type_boolean)) {
		*why = "expected boolean";
		return -1;
	}
	*out = json_object_get_boolean(v);
	return 0;
}

json_object *pc_json_parse(const char *buf, size_t len, const char **why)
{
	json_tokener *tok;
	json_object *obj;
	enum json_tokener_error jerr;
	size_t used;

	if (len > (size_t)0x7fffffff) {
		*why = "too large";
		return NULL;
	}
	tok = json_tokener_new_ex(64); /* nesting depth bound */
	if (!tok) {
		*why = "out of memory";
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	used = json_tokener_get_parse_end(tok);
	/* A bare top-level number ("1") is only complete once the tokener sees
	 * the end: feed it the terminating NUL, as json_tokener_parse() does. */
	if (!obj && jerr == json_tokener_continue && used == len) {
		obj = json_tokener_parse_ex(tok, "", 1);
		if (obj)
			jerr = json_tokener_success;
	}
	if (jerr == json_tokener_continue) {
		*why = "truncated JSON";
		json_object_put(obj);
		obj = NULL;
	} else if (jerr != json_tokener_success) {
		*why = json_tokener_error_desc(jerr);
		json_object_put(obj);
		obj = NULL;
	} else {
		while (used < len && strchr(" \t\r\n", buf[used]))
			used++;
		if (used != len) {
			*why = "trailing data after JSON value";
			json_object_put(obj);
			obj = NULL;
		}
	}
	json_tokener_free(tok);
	return obj;
}

bool pc_utf8_valid(const char *buf, size_t len)
{
	const unsigned char *s = (const unsigned char *)buf;
	size_t i = 0;

	while (i < len) {
		unsigned c = s[i];
		unsigned need, cp, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			need = 1, cp = c & 0x1f, min = 0x80;
		else if ((c & 0xf0) == 0xe0)
			need = 2, cp = c & 0x0f, min = 0x800;
		else if ((c & 0xf8) == 0xf0)
			need = 3, cp = c & 0x07, min = 0x10000;
		else
			return false;
		for (unsigned k = 1; k <= need; k++) {
			if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}
