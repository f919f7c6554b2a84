/* Policy loading: extends, precedence (policy > system config > built-in),
 * clamping, precise errors. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy.h"

static char dir[] = "/tmp/pycell-test-policy-XXXXXX";

static const char *put(const char *name, const char *text)
{
	static char path[4][512];
	static int n;
	char *p = path[n++ % 4];
	FILE *f;

	snprintf(p, 512, "%s/%s", dir, name);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return p;
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[600];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

/* "" when it loads, else the error message. */
static const char *load(const char *path, const char *sys, struct pc_policy *p)
{
	static char out[PC_ERROR_MSG];
	struct pc_error err = { 0 };

	if (pc_policy_load(p, path, sys, &err) == 0)
		out[0] = '\0';
	else
		snprintf(out, sizeof(out), "%s", err.msg);
	return out;
}

static void test_builtin(void **state)
{
	struct pc_policy p;

	(void)state;
	assert_string_equal(load(NULL, NULL, &p), "");
	assert_int_equal(p.limits[PC_LIM_WALL_MS].def, 10000);
	assert_int_equal(p.limits[PC_LIM_WALL_MS].max, 300000);
	assert_int_equal(p.max_code_bytes, 65536);
	pc_policy_free(&p);
}

static void test_extends_and_precedence(void **state)
{
	struct pc_policy p;
	const char *sys;

	(void)state;
	put("base.json", "{\"name\":\"base\",\"limits\":{\"wall_ms\":{\"default\":2000,\"max\":4000}}}");
	put("child.json",
	    "{\"name\":\"child\",\"extends\":\"base.json\",\"limits\":{\"pids\":{\"default\":8,\"max\":16}}}");
	sys = put("sys.json", "{\"limits\":{\"wall_ms\":{\"default\":9999},\"cpu_ms\":{\"default\":1234},"
			      "\"memory_mb\":{\"default\":100000}}}");
	assert_string_equal(load(put("x.json", "{\"extends\":\"child.json\"}"), sys, &p), "");
	assert_string_equal(p.name, "child");
	assert_int_equal(p.limits[PC_LIM_WALL_MS].def, 2000); /* policy beats system config */
	assert_int_equal(p.limits[PC_LIM_CPU_MS].def, 1234);  /* system config beats built-in */
	assert_int_equal(p.limits[PC_LIM_PIDS].max, 16);
	/* a system default above the policy max is clamped to it */
	assert_int_equal(p.limits[PC_LIM_MEMORY_MB].def, p.limits[PC_LIM_MEMORY_MB].max);
	pc_policy_free(&p);
}

static void test_errors(void **state)
{
	struct pc_policy p;
	const char *f;

	(void)state;
	f = put("e1.json", "{\"nmae\":\"x\"}");
	assert_non_null(strstr(load(f, NULL, &p), "unknown key 'nmae'"));
	pc_policy_free(&p);
	f = put("e2.json", "{\"limits\":{\"wall_ms\":{\"default\":5,\"max\":1}}}");
	assert_non_null(strstr(load(f, NULL, &p), "limits.wall_ms: default 5 is above max 1"));
	pc_policy_free(&p);
	f = put("e3.json", "{\"limits\":{\"wall_ms\":{\"default\":\"5\"}}}");
	assert_non_null(strstr(load(f, NULL, &p), "limits.wall_ms.default: expected integer"));
	pc_policy_free(&p);
	f = put("e4.json", "{\"python\":{\"allowed_imports\":[\"json\",3]}}");
	assert_non_null(strstr(load(f, NULL, &p), "python.allowed_imports[1]: expected a non-empty string"));
	pc_policy_free(&p);
	f = put("e5.json", "{\"network\":\"host\"}");
	assert_non_null(strstr(load(f, NULL, &p), "network: 'host' is not supported"));
	pc_policy_free(&p);
	f = put("loop.json", "{\"extends\":\"loop.json\"}");
	assert_non_null(strstr(load(f, NULL, &p), "nests deeper than"));
	pc_policy_free(&p);
	f = put("e6.json", "{\"limits\":{\"wall_ms\":{\"default\":1}},}");
	assert_non_null(strstr(load(f, NULL, &p), "invalid JSON"));
	pc_policy_free(&p);
	f = put("e7.json", "{\"audit\":{\"path\":\"a.log\",\"include_code\":1}}");
	assert_non_null(strstr(load(f, NULL, &p), "audit.include_code: expected boolean"));
	pc_policy_free(&p);
	f = put("e8.json", "{\"limits\":{\"wall_ms\":{\"max\":100}}}");
	assert_non_null(strstr(load(put("e8s.json", "{\"limits\":{\"wall_ms\":{\"max\":100}}}"), NULL, &p), ""));
	pc_policy_free(&p);
	(void)f;
}

static void test_audit_path_relative(void **state)
{
	struct pc_policy p;
	char want[600];

	(void)state;
	assert_string_equal(
	    load(put("a.json", "{\"audit\":{\"path\":\"logs/audit.jsonl\",\"include_code\":true}}"), NULL, &p), "");
	snprintf(want, sizeof(want), "%s/logs/audit.jsonl", dir);
	assert_string_equal(p.audit_log, want);
	assert_true(p.audit_include_code);
	pc_policy_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builtin),
		cmocka_unit_test(test_extends_and_precedence),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_audit_path_relative),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
