#define _GNU_SOURCE
/* libFuzzer target: the result writer, round trip. Builds a pc_run as the
 * supervisor would leave it, with fuzzed stdout, stderr and shim-report
 * bytes (split at the first two NULs) and flags from the first byte, then
 * pc_result_build + pc_result_print. The printed document must be exactly
 * one JSON object whose "stdout"/"stderr" are valid UTF-8, equal to the
 * input when the input was valid UTF-8, and whose error.code is one of
 * DESIGN.md's codes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "job.h"
#include "jsonutil.h"
#include "policy.h"
#include "result.h"
#include "run.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pc_policy pol;
static bool pol_ready;

static const char *const codes[] = { "INVALID_JOB",     "LANGUAGE_DENIED", "SECURITY_ERROR", "TIMEOUT",
				     "CPU_LIMIT",       "MEMORY_LIMIT",    "PIDS_LIMIT",     "DISK_LIMIT",
				     "OUTPUT_LIMIT",    "RUNTIME_ERROR",   "RESULT_INVALID", "PACKAGE_UNAVAILABLE",
				     "SYNTAX_ERROR",    "INTERNAL_ERROR" };

static void stream(struct pc_stream *s, const uint8_t *p, size_t n, bool trunc)
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->passthrough = -1;
	s->limit = n;
	s->buf = n ? malloc(n) : NULL;
	if (n)
		memcpy(s->buf, p, n);
	s->len = s->cap = n;
	s->total = n + (trunc ? 1 : 0);
	s->truncated = trunc;
}

/* Splits off the next NUL-terminated piece of [*p, end). */
static size_t piece(const uint8_t **p, const uint8_t *end, const uint8_t **out)
{
	const uint8_t *nul = memchr(*p, 0, (size_t)(end - *p));
	size_t n = nul ? (size_t)(nul - *p) : (size_t)(end - *p);

	*out = *p;
	*p = nul ? nul + 1 : end;
	return n;
}

static void check_text(json_object *doc, const char *key, const uint8_t *in, size_t n, bool trunc)
{
	json_object *v;
	size_t len;
	const char *s;

	if (!json_object_object_get_ex(doc, key, &v) || !json_object_is_type(v, json_type_string))
		abort();
	s = json_object_get_string(v);
	len = (size_t)json_object_get_string_len(v);
	if (!pc_utf8_valid(s, len))
		abort();
	if (!trunc && pc_utf8_valid((const char *)in, n) && (len != n || memcmp(s, in, n) != 0))
		abort(); /* valid text must come back unchanged */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pc_error err;
	struct pc_job job;
	struct pc_run r;
	const uint8_t *p = data, *end = data + size, *o, *e, *rs;
	size_t no, ne, nr;
	uint8_t flags;
	int status = -1, fd;
	json_object *res, *back, *eo, *c;
	char *buf;
	size_t blen;
	FILE *mem;

	if (!pol_ready) {
		if (pc_policy_load(&pol, NULL, NULL, &err) < 0)
			abort();
		pol_ready = true;
	}
	if (size < 1)
		return 0;
	flags = *p++;
	no = piece(&p, end, &o);
	ne = piece(&p, end, &e);
	nr = (size_t)(end - p);
	rs = p;

	memset(&job, 0, sizeof(job));
	job.code = (char *)"print(1)";
	job.code_len = 8;
	job.id = (flags & 0x80) ? (char *)"fuzz-id" : NULL;
	if (flags & 0x40)
		job.output_schema_json = (char *)"{\"type\":\"object\",\"required\":[\"a\"],"
						 "\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":0}}}";
	memset(&r, 0, sizeof(r));
	r.job = &job;
	r.policy = &pol;
	pc_job_effective_limits(&job, &pol, r.limits);
	stream(&r.out, o, no, flags & 1);
	stream(&r.err, e, ne, flags & 2);
	stream(&r.res, rs, nr, false);
	r.pump.output_limit = (flags & 3) != 0;
	r.pump.timed_out = flags & 4;
	r.pump.result_limit = flags & 8;
	r.have_status = !(flags & 0x20);
	r.job_status = (flags & 0x10) ? SIGKILL : ((flags >> 5) & 1) << 8;
	r.wall_ns = 1234567;
	pc_run_trace(&r, "execute", true, 0);

	res = pc_result_build(&r, &status);
	if (!res || status < 0)
		abort();
	/* the printed form is what callers parse */
	fd = memfd_create("fuzz-result", MFD_CLOEXEC);
	if (fd < 0 || pc_result_print(res, fd) < 0)
		abort();
	blen = (size_t)lseek(fd, 0, SEEK_CUR);
	buf = malloc(blen + 1);
	if (pread(fd, buf, blen, 0) != (ssize_t)blen)
		abort();
	close(fd);
	if (blen < 2 || buf[blen - 1] != '\n' || memchr(buf, '\n', blen - 1))
		abort(); /* one line, one document */
	back = pc_json_parse(buf, blen - 1, NULL);
	if (!back || !json_object_is_type(back, json_type_object) || !pc_utf8_valid(buf, blen))
		abort();
	check_text(back, "stdout", o, no, flags & 1);
	check_text(back, "stderr", e, ne, flags & 2);
	if (json_object_object_get_ex(back, "error", &eo) && eo) {
		bool known = false;

		if (!json_object_object_get_ex(eo, "code", &c) || !json_object_is_type(c, json_type_string))
			abort();
		for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
			known |= strcmp(codes[i], json_object_get_string(c)) == 0;
		if (!known || status == PC_EXIT_OK)
			abort();
	}
	(void)mem;
	free(buf);
	json_object_put(back);
	json_object_put(res);
	pc_stream_free(&r.out);
	pc_stream_free(&r.err);
	pc_stream_free(&r.res);
	return 0;
}
