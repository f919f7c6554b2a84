/* Job parsing and validation, UTF-8 validation and sanitising. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "job.h"
#include "jsonutil.h"
#include "result.h"

static struct pc_policy pol;

static int setup(void **state)
{
	struct pc_error err;

	(void)state;
	return pc_policy_load(&pol, NULL, NULL, &err);
}

static int teardown(void **state)
{
	(void)state;
	pc_policy_free(&pol);
	return 0;
}

/* "" when the job parses, else "CODE reason". */
static const char *parse_len(const char *buf, size_t len)
{
	static char out[400];
	struct pc_job job;
	struct pc_job_error je = { 0 };

	if (pc_job_parse(buf, len, &pol, &job, &je) == 0)
		out[0] = '\0';
	else
		snprintf(out, sizeof(out), "%s %s", je.code, je.reason);
	pc_job_free(&job);
	return out;
}

static const char *parse(const char *s)
{
	return parse_len(s, strlen(s));
}

static void test_valid(void **state)
{
	struct pc_job job;
	struct pc_job_error je;
	const char *s =
	    "{\"id\":\"a\",\"language\":\"python\",\"code\":\"abc\",\"input\":{\"x\":[1]},"
	    "\"files\":{\"data.csv\":\"1,2\\n\"},\"limits\":{\"wall_ms\":500},\"imports\":[\"json\"],"
	    "\"packages\":[\"numpy\"],\"output_schema\":{\"type\":\"object\"},\"mode\":\"python_exec_tool\"}";

	(void)state;
	assert_int_equal(pc_job_parse(s, strlen(s), &pol, &job, &je), 0);
	assert_string_equal(job.id, "a");
	assert_string_equal(job.code, "abc");
	assert_string_equal(job.code_sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_string_equal(job.input_json, "{\"x\":[1]}");
	assert_int_equal(job.n_files, 1);
	assert_string_equal(job.files[0].name, "data.csv");
	assert_string_equal(job.files[0].data, "1,2\n");
	assert_true(job.has_limit[PC_LIM_WALL_MS]);
	assert_int_equal(job.limits[PC_LIM_WALL_MS], 500);
	assert_string_equal(pc_job_execution_mode(&job), "python_exec_tool");
	pc_job_free(&job);
}

static void test_refusals(void **state)
{
	char big[70000];

	(void)state;
	assert_string_equal(parse("{\"code\":\"x\",\"timeout\":5}"), "INVALID_JOB unknown_key:timeout");
	assert_string_equal(parse("{\"code\":\"\"}"), "INVALID_JOB code_empty");
	assert_string_equal(parse("{}"), "INVALID_JOB missing_key:code");
	assert_string_equal(parse("{\"code\":5}"), "INVALID_JOB code:expected_string");
	assert_string_equal(parse("[1]"), "INVALID_JOB not_an_object");
	assert_string_equal(parse("{\"code\":\"x\""), "INVALID_JOB malformed_json:truncated JSON");
	assert_string_equal(parse(""), "INVALID_JOB empty_job");
	assert_string_equal(parse_len("{\"code\":\"x\0\"}", 12), "INVALID_JOB nul_byte");
	assert_string_equal(parse("{\"code\":\"\xff\"}"), "INVALID_JOB invalid_utf8");
	assert_string_equal(parse("{\"code\":\"a\\u0000b\"}"), "INVALID_JOB code:nul_byte");
	assert_string_equal(parse("{\"code\":\"x\",\"language\":\"ruby\"}"),
			    "LANGUAGE_DENIED language_not_supported:ruby");
	assert_string_equal(parse("{\"code\":\"x\",\"files\":{\"../x\":\"\"}}"), "INVALID_JOB files:bad_name");
	assert_string_equal(parse("{\"code\":\"x\",\"files\":{\"a/b\":\"\"}}"), "INVALID_JOB files:bad_name");
	assert_string_equal(parse("{\"code\":\"x\",\"files\":{\"ok\":1}}"), "INVALID_JOB files:expected_string");
	assert_string_equal(parse("{\"code\":\"x\",\"limits\":{\"wall_ms\":-1}}"),
			    "INVALID_JOB limits:wall_ms:out_of_range");
	assert_string_equal(parse("{\"code\":\"x\",\"limits\":{\"wall_ms\":1.5}}"),
			    "INVALID_JOB limits:wall_ms:expected_integer");
	assert_string_equal(parse("{\"code\":\"x\",\"limits\":{\"fast\":1}}"), "INVALID_JOB limits:unknown_key:fast");
	assert_string_equal(parse("{\"code\":\"x\",\"imports\":\"os\"}"), "INVALID_JOB imports:expected_array");
	assert_string_equal(parse("{\"code\":\"x\",\"imports\":[\"../os\"]}"), "INVALID_JOB imports:bad_name:../os");
	assert_string_equal(parse("{\"code\":\"x\",\"packages\":[1]}"), "INVALID_JOB packages:expected_string");
	assert_string_equal(parse("{\"code\":\"x\",\"output_schema\":{\"pattern\":\"a\"}}"),
			    "INVALID_JOB output_schema:$: unsupported keyword 'pattern'");
	assert_string_equal(parse("{\"code\":\"x\",\"mode\":\"fast\"}"),
			    "INVALID_JOB mode:expected_inline_code_or_python_exec_tool");
	assert_string_equal(parse("{\"code\":\"x\",\"id\":7}"), "INVALID_JOB id:expected_string");
	assert_int_equal(strncmp(parse("{\"code\":\"x\"} {}"), "INVALID_JOB malformed_json:", 27), 0);
	snprintf(big, sizeof(big), "{\"code\":\"%065537d\"}", 0);
	assert_string_equal(parse(big), "INVALID_JOB code_too_long");
}

/* A refusal late in parsing (after files were copied) frees cleanly:
 * this is the path that used to leave pointers into the freed tree. */
static void test_refusal_after_files(void **state)
{
	(void)state;
	for (int i = 0; i < 3; i++)
		assert_string_equal(parse("{\"code\":\"x\",\"files\":{\"a\":\"1\",\"b\":\"2\"},\"limits\":{\"x\":1}}"),
				    "INVALID_JOB limits:unknown_key:x");
	assert_string_equal(parse("{\"code\":\"x\",\"files\":{\"a\":\"1\",\"..\":\"2\"}}"),
			    "INVALID_JOB files:bad_name");
}

static void test_job_too_large(void **state)
{
	struct pc_policy small = pol;
	struct pc_job job;
	struct pc_job_error je;
	const char *s = "{\"code\":\"print(1)\"}";

	(void)state;
	small.max_job_bytes = 10;
	assert_int_equal(pc_job_parse(s, strlen(s), &small, &job, &je), -1);
	assert_string_equal(je.reason, "job_too_large");
	pc_job_free(&job);
}

static void test_effective_limits(void **state)
{
	struct pc_job job;
	struct pc_job_error je;
	long long lim[PC_LIM_COUNT];
	const char *s = "{\"code\":\"x\",\"limits\":{\"wall_ms\":400000,\"memory_mb\":64}}";

	(void)state;
	assert_int_equal(pc_job_parse(s, strlen(s), &pol, &job, &je), 0);
	pc_job_effective_limits(&job, &pol, lim);
	assert_int_equal(lim[PC_LIM_WALL_MS], pol.limits[PC_LIM_WALL_MS].max); /* clamped */
	assert_int_equal(lim[PC_LIM_MEMORY_MB], 64);			       /* job wins */
	assert_int_equal(lim[PC_LIM_PIDS], pol.limits[PC_LIM_PIDS].def);       /* policy default */
	pc_job_free(&job);
}

static void test_utf8(void **state)
{
	bool rep;
	char *s;

	(void)state;
	assert_true(pc_utf8_valid("h\xc3\xa9llo \xf0\x9f\x98\x80", 11));
	assert_false(pc_utf8_valid("\xc0\xaf", 2));	    /* overlong '/' */
	assert_false(pc_utf8_valid("\xed\xa0\x80", 3));	    /* surrogate */
	assert_false(pc_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
	assert_false(pc_utf8_valid("\xe2\x82", 2));	    /* truncated */
	assert_false(pc_utf8_valid("\x80", 1));		    /* lone continuation */
	s = pc_utf8_sanitize("a\xff"
			     "b\xc3\xa9",
			     5, &rep);
	assert_true(rep);
	assert_string_equal(s, "a\xef\xbf\xbd"
			       "b\xc3\xa9");
	free(s);
	s = pc_utf8_sanitize("plain", 5, &rep);
	assert_false(rep);
	assert_string_equal(s, "plain");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_refusal_after_files),
		cmocka_unit_test(test_job_too_large),
		cmocka_unit_test(test_effective_limits),
		cmocka_unit_test(test_utf8),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
