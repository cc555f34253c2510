/*
 * A minimal TAP producer for the C tests (meson runs them with protocol: 'tap', so each
 * check is counted). Header-only; every test program includes it once.
 *
 *   ok(cond, "what it checks %d", n);   a check
 *   is_int(got, want, "name");          with the values printed on failure
 *   is_str(got, want, "name");
 *   skip(n, "reason");                  n checks skipped
 *   skip_all("PostgreSQL is not installed");
 *   bail_out("cannot create %s", dir);   the setup failed: stop, failed
 *   return done_testing();
 */
#ifndef BOP_TESTS_TAP_H
#define BOP_TESTS_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_count;
static int tap_failed;

__attribute__((format(printf, 2, 3), unused))
static int ok(int cond, const char *fmt, ...)
{
	char text[4096];
	va_list ap;

	/* A description often quotes an error message; a line break in it would end the TAP
	 * line and leave the rest as an unknown line, so breaks are printed as " / ". */
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	printf("%sok %d - ", cond ? "" : "not ", ++tap_count);
	for (const char *p = text; *p; p++) {
		if (*p == '\n' || *p == '\r')
			fputs(" / ", stdout);
		else
			putchar(*p);
	}
	printf("\n");
	if (!cond)
		tap_failed++;
	fflush(stdout);
	return cond;
}

__attribute__((format(printf, 1, 2), unused))
static void diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

__attribute__((unused))
static int is_int_at(long long got, long long want, const char *name, const char *file, int line)
{
	int r = ok(got == want, "%s", name);

	if (!r)
		diag("%s:%d: got %lld, want %lld", file, line, got, want);
	return r;
}
#define is_int(got, want, name) is_int_at((long long)(got), (long long)(want), name, __FILE__, __LINE__)

__attribute__((unused))
static int is_str_at(const char *got, const char *want, const char *name, const char *file, int line)
{
	int r = ok(got && want && strcmp(got, want) == 0, "%s", name);

	if (!r)
		diag("%s:%d: got '%s', want '%s'", file, line, got ? got : "(null)", want ? want : "(null)");
	return r;
}
#define is_str(got, want, name) is_str_at(got, want, name, __FILE__, __LINE__)

__attribute__((format(printf, 2, 3), unused))
static void skip(int n, const char *fmt, ...)
{
	char reason[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	for (int i = 0; i < n; i++)
		printf("ok %d # SKIP %s\n", ++tap_count, reason);
	fflush(stdout);
}

/* Skips the whole program; meson counts it as skipped. */
__attribute__((format(printf, 1, 2), noreturn, unused))
static void skip_all(const char *fmt, ...)
{
	va_list ap;

	printf("1..0 # SKIP ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	exit(0);
}

/* Stops the program: what the checks need could not be set up. meson counts it failed. */
__attribute__((format(printf, 1, 2), noreturn, unused))
static void bail_out(const char *fmt, ...)
{
	va_list ap;

	printf("Bail out! ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	exit(1);
}

__attribute__((unused))
static int done_testing(void)
{
	printf("1..%d\n", tap_count);
	return tap_failed ? 1 : 0;
}

#endif
