#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int ret_of(int errnum)
{
	return errnum > 0 ? -errnum : -1;
}

int pc_error_set(struct pc_error *err, int errnum, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return ret_of(errnum);
	err->errnum = errnum;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return ret_of(errnum);
}

int pc_error_wrap(struct pc_error *err, const char *fmt, ...)
{
	char prefix[PC_ERROR_MSG], old[PC_ERROR_MSG];
	va_list ap;

	if (!err)
		return -1;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
	return ret_of(err->errnum);
}

const char *pc_error_text(const struct pc_error *err, char *buf, size_t len)
{
	if (err->errnum > 0)
		snprintf(buf, len, "%s: %s", err->msg, strerror(err->errnum));
	else
		snprintf(buf, len, "%s", err->msg);
	return buf;
}
