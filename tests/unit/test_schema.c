/* output_schema subset: well-formedness and validation with paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "jsonutil.h"
#include "schema.h"

static json_object *J(const char *s)
{
	const char *why;
	json_object *o = pc_json_parse(s, strlen(s), &why);

	assert_non_null(o);
	return o;
}

/* Validates; returns the "path: reason" text, or "" when valid. */
static const char *val(const char *schema, const char *value)
{
	static char out[600];
	struct pc_schema_error e;
	char wrapped[512];
	json_object *s = J(schema), *arr, *v;

	/* json-c cannot tell where a bare top-level number ends: wrap it */
	snprintf(wrapped, sizeof(wrapped), "[%s]", value);
	arr = J(wrapped);
	v = json_object_get(json_object_array_get_idx(arr, 0));
	json_object_put(arr);

	assert_int_equal(pc_schema_check(s, &e), 0);
	if (pc_schema_validate(s, v, &e) == 0)
		out[0] = '\0';
	else
		snprintf(out, sizeof(out), "%s: %s", e.path, e.reason);
	json_object_put(s);
	json_object_put(v);
	return out;
}

static const char *chk(const char *schema)
{
	static char out[600];
	struct pc_schema_error e;
	json_object *s = J(schema);

	if (pc_schema_check(s, &e) == 0)
		out[0] = '\0';
	else
		snprintf(out, sizeof(out), "%s: %s", e.path, e.reason);
	json_object_put(s);
	return out;
}

static void test_types(void **state)
{
	(void)state;
	assert_string_equal(val("{\"type\":\"number\"}", "1.5"), "");
	assert_string_equal(val("{\"type\":\"number\"}", "3"), "");
	assert_string_equal(val("{\"type\":\"number\"}", "true"), "$: expected number");
	assert_string_equal(val("{\"type\":\"integer\"}", "2.0"), "");
	assert_string_equal(val("{\"type\":\"integer\"}", "2.5"), "$: expected integer");
	assert_string_equal(val("{\"type\":\"string\"}", "\"x\""), "");
	assert_string_equal(val("{\"type\":\"null\"}", "null"), "");
	assert_string_equal(val("{\"type\":\"object\"}", "null"), "$: expected object");
	assert_string_equal(val("{\"type\":[\"string\",\"null\"]}", "1"), "$: expected string or null");
	assert_string_equal(val("{\"type\":\"boolean\"}", "false"), "");
	assert_string_equal(val("{\"type\":\"array\"}", "{}"), "$: expected array");
}

static void test_nested_path(void **state)
{
	const char *s =
	    "{\"type\":\"object\",\"required\":[\"metrics\"],\"properties\":{\"metrics\":{\"type\":\"object\","
	    "\"properties\":{\"rate\":{\"type\":\"number\"}}}}}";

	(void)state;
	assert_string_equal(val(s, "{\"metrics\":{\"rate\":\"high\"}}"), "$.metrics.rate: expected number");
	assert_string_equal(val(s, "{\"metrics\":{\"rate\":0.5}}"), "");
	assert_string_equal(val(s, "{}"), "$.metrics: required property is missing");
	assert_string_equal(val("{\"properties\":{\"odd key\":{\"type\":\"string\"}}}", "{\"odd key\":1}"),
			    "$[\"odd key\"]: expected string");
}

static void test_enum_min_max_items(void **state)
{
	(void)state;
	assert_string_equal(val("{\"enum\":[\"P1\",\"P2\"]}", "\"P1\""), "");
	assert_string_equal(val("{\"enum\":[\"P1\",\"P2\"]}", "\"P3\""),
			    "$: not one of the enum values [\"P1\",\"P2\"]");
	assert_string_equal(val("{\"minimum\":0,\"maximum\":1}", "0.5"), "");
	assert_string_equal(val("{\"minimum\":0}", "-1"), "$: -1 is below the minimum 0");
	assert_string_equal(val("{\"maximum\":1}", "2"), "$: 2 is above the maximum 1");
	assert_string_equal(val("{\"items\":{\"type\":\"integer\"}}", "[1,2,\"x\"]"), "$[2]: expected integer");
	assert_string_equal(
	    val("{\"type\":\"object\",\"properties\":{\"a\":{}},\"additionalProperties\":false}", "{\"a\":1,\"b\":2}"),
	    "$.b: property not allowed");
}

static void test_schema_check(void **state)
{
	(void)state;
	assert_string_equal(chk("{\"type\":\"number\",\"description\":\"x\"}"), "");
	assert_string_equal(chk("{\"pattern\":\"x\"}"), "$: unsupported keyword 'pattern'");
	assert_string_equal(chk("{\"type\":\"float\"}"), "$: unknown type 'float'");
	assert_string_equal(chk("{\"properties\":{\"a\":{\"minimum\":\"0\"}}}"), "$.a: minimum: expected number");
	assert_string_equal(chk("{\"required\":[1]}"), "$: required[0]: expected string");
	assert_string_equal(chk("{\"items\":{\"type\":7}}"),
			    "$[]: type: expected a type name or a non-empty array of them");
	assert_string_equal(chk("[]"), "$: expected a schema object");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_nested_path),
		cmocka_unit_test(test_enum_min_max_items),
		cmocka_unit_test(test_schema_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
