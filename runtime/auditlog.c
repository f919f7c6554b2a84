#define _GNU_SOURCE
#include "auditlog.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jsonutil.h"
#include "util.h"

const char *pc_audit_path(const struct pc_policy *pol)
{
	const char *env = getenv("PYCELL_AUDIT_LOG");

	if (env && env[0])
		return env;
	return pol->audit_log[0] ? pol->audit_log : NULL;
}

static void copy_key(json_object *dst, json_object *src, const char *key)
{
	json_object *v = NULL;

	json_object_object_get_ex(src, key, &v);
	json_object_object_add(dst, key, json_object_get(v));
}

static json_object *audit_line(json_object *res, const struct pc_policy *pol, const char *code, size_t code_len)
{
	json_object *o = json_object_new_object(), *e = NULL, *c = NULL, *d = NULL, *reason = NULL;
	struct timespec ts;
	struct tm tm;
	char when[64];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	json_object_object_add(o, "time", json_object_new_string(when));
	copy_key(o, res, "id");
	copy_key(o, res, "code_sha256");
	copy_key(o, res, "policy");
	copy_key(o, res, "limits");
	copy_key(o, res, "status");
	if (json_object_object_get_ex(res, "error", &e) && e && json_object_object_get_ex(e, "code", &c)) {
		json_object_object_add(o, "error_code", json_object_get(c));
		if (json_object_object_get_ex(e, "details", &d) && d && json_object_object_get_ex(d, "reason", &reason))
			json_object_object_add(o, "error_reason", json_object_get(reason));
	} else {
		json_object_object_add(o, "error_code", NULL);
	}
	copy_key(o, res, "metrics");
	copy_key(o, res, "execution_mode");
	if (pol->audit_include_code && code)
		json_object_object_add(o, "code", json_object_new_string_len(code, (int)code_len));
	return o;
}

int pc_audit_append(const struct pc_policy *pol, json_object *result, const char *code, size_t code_len,
		    struct pc_error *err)
{
	const char *path = pc_audit_path(pol);
	_cleanup_json_ json_object *line = NULL;
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	const char *s;
	size_t len;
	ssize_t n;

	if (!path)
		return 0;
	line = audit_line(result, pol, code, code_len);
	s = json_object_to_json_string_ext(line, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	len = strlen(s);
	if (!(buf = malloc(len + 1)))
		return pc_error_set(err, ENOMEM, "audit line");
	memcpy(buf, s, len);
	buf[len] = '\n';
	/* O_NOFOLLOW: a planted symlink at the log path is refused, not followed. */
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd < 0)
		return pc_error_set(err, errno, "open audit log '%s'", path);
	/* One write, never a loop: a retried tail could land after another
	 * job's line. A short write is reported instead. */
	n = write(fd, buf, len + 1);
	if (n < 0)
		return pc_error_set(err, errno, "write audit log '%s'", path);
	if ((size_t)n != len + 1)
		return pc_error_set(err, EIO, "short write to audit log '%s' (%zd of %zu bytes)", path, n, len + 1);
	return 0;
}
