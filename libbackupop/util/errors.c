/* The thread-local last error. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BOP_ERROR_MAX 2048

static _Thread_local int last_code;
static _Thread_local char last_message[BOP_ERROR_MAX];

static void set_message(const char *text)
{
	char *clean = bop__redact(text);

	snprintf(last_message, sizeof(last_message), "%s", clean ? clean : "[message withheld]");
	free(clean);
}

BOP_PRINTF(3, 0)
static int error_v(int code, const char *suffix, const char *fmt, va_list ap)
{
	char buf[BOP_ERROR_MAX];
	size_t n;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	if (suffix)
		snprintf(buf + n, sizeof(buf) - n, ": %s", suffix);
	last_code = code;
	set_message(buf);
	return code;
}

int bop__error(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_v(code, NULL, fmt, ap);
	va_end(ap);
	return code;
}

int bop__error_errno(int code, int errnum, const char *fmt, ...)
{
	va_list ap;

	if (errnum == ENOENT)
		code = BOP_ENOTFOUND;
	else if (errnum == ENOMEM)
		code = BOP_ENOMEM;
	else if (errnum == EEXIST)
		code = BOP_EEXISTS;
	va_start(ap, fmt);
	error_v(code, strerror(errnum), fmt, ap);
	va_end(ap);
	return code;
}

int bop__error_wrap(const char *fmt, ...)
{
	char prefix[BOP_ERROR_MAX];
	char buf[BOP_ERROR_MAX * 2 + 4];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	if (last_code == BOP_OK)
		last_code = BOP_ERROR;
	snprintf(buf, sizeof(buf), "%s: %s", prefix, last_message);
	set_message(buf);
	return last_code;
}

int bop__error_oom(void)
{
	last_code = BOP_ENOMEM;
	snprintf(last_message, sizeof(last_message), "out of memory");
	return BOP_ENOMEM;
}

BOP_EXTERN(int) bop_error_set(int code, const char *message)
{
	return bop__error(code, "%s", message ? message : bop_strerror(code));
}

BOP_EXTERN(int) bop_error_setf(int code, const char *format, ...)
{
	va_list ap;

	if (!format)
		return bop_error_set(code, NULL);
	va_start(ap, format);
	error_v(code, NULL, format, ap);
	va_end(ap);
	return code;
}

BOP_EXTERN(const char *) bop_error_last(void)
{
	return last_code == BOP_OK ? "no error" : last_message;
}

BOP_EXTERN(int) bop_error_last_code(void)
{
	return last_code;
}

BOP_EXTERN(void) bop_error_clear(void)
{
	last_code = BOP_OK;
	last_message[0] = '\0';
}

static const char *describe(bop_error_t code)
{
	/* No default: the compiler flags a code added to the enum but not here. */
	switch (code) {
	case BOP_OK: return "success";
	case BOP_ERROR: return "error";
	case BOP_ENOTFOUND: return "not found";
	case BOP_EEXISTS: return "already exists";
	case BOP_EINVAL: return "invalid argument";
	case BOP_EVERSION: return "unsupported structure version";
	case BOP_ENOMEM: return "out of memory";
	case BOP_EIO: return "input/output error";
	case BOP_EAUTH: return "authentication failed";
	case BOP_EINTEGRITY: return "data integrity check failed";
	case BOP_ETIMEOUT: return "timed out";
	case BOP_ECANCELED: return "canceled";
	case BOP_ECONFLICT: return "locked by someone else";
	case BOP_ECHILD: return "child process failed";
	case BOP_ENOTSUPPORTED: return "not supported";
	case BOP_EFORMAT: return "malformed data";
	case BOP_ENOKEY: return "no matching key";
	case BOP_ECONNECT: return "cannot reach the server";
	}
	return NULL;
}

BOP_EXTERN(const char *) bop_strerror(int code)
{
	const char *s = describe((bop_error_t)code);

	return s ? s : "unknown error";
}
