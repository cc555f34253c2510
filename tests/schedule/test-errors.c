/*
 * Bad schedules and bad zones: the code a caller can act on and a message that names the
 * field or zone and says what is allowed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tap.h"

typedef struct error_case {
	const char *expr;
	const char *zone;
	int code;
	const char *message;            /* must appear in bop_error_last() */
} error_case_t;

static const error_case_t cases[] = {
	{ "61 * * * *", NULL, BOP_EINVAL, "minute field '61': values are 0-59" },
	{ "60 * * * * *", NULL, BOP_EINVAL, "second field '60': values are 0-59" },
	{ "* 24 * * *", NULL, BOP_EINVAL, "hour field '24': values are 0-23" },
	{ "* * 0 * *", NULL, BOP_EINVAL, "day-of-month field '0': values are 1-31" },
	{ "* * 32 * *", NULL, BOP_EINVAL, "day-of-month field '32': values are 1-31" },
	{ "* * * 13 *", NULL, BOP_EINVAL, "month field '13': values are 1-12 or JAN-DEC" },
	{ "* * * FOO *", NULL, BOP_EINVAL, "month field 'FOO': values are 1-12 or JAN-DEC" },
	{ "* * * JANUARY *", NULL, BOP_EINVAL, "month field 'JANUARY'" },
	{ "* * * * 8", NULL, BOP_EINVAL, "day-of-week field '8': values are 0-7" },
	{ "* * * * MON-XYZ", NULL, BOP_EINVAL, "day-of-week field 'MON-XYZ'" },
	{ "* * * * 1-2-3", NULL, BOP_EINVAL, "day-of-week field '1-2-3'" },
	{ "MON * * * *", NULL, BOP_EINVAL, "minute field 'MON': values are 0-59" },
	{ "-1 * * * *", NULL, BOP_EINVAL, "minute field '-1'" },
	{ "0x10 * * * *", NULL, BOP_EINVAL, "minute field '0x10'" },
	{ "99999999999999999999 * * * *", NULL, BOP_EINVAL, "minute field '9999" },
	{ "*/0 * * * *", NULL, BOP_EINVAL, "minute field '*/0': the step must be 1 to 60" },
	{ "*/61 * * * *", NULL, BOP_EINVAL, "the step must be 1 to 60" },
	{ "*/ * * * *", NULL, BOP_EINVAL, "the step must be 1 to 60" },
	{ "*/x * * * *", NULL, BOP_EINVAL, "the step after '/' must be a number" },
	{ "*/5/5 * * * *", NULL, BOP_EINVAL, "the step after '/' must be a number" },
	{ "5-1 * * * *", NULL, BOP_EINVAL, "minute field '5-1': a range must not run backwards" },
	{ "* * * * FRI-MON", NULL, BOP_EINVAL, "a range must not run backwards" },
	{ "1,,2 * * * *", NULL, BOP_EINVAL, "minute field '1,,2': empty list item" },
	{ "1, * * * *", NULL, BOP_EINVAL, "empty list item" },
	{ "? * * * *", NULL, BOP_EINVAL, "'?' is only allowed in the day fields" },
	{ "* * * *", NULL, BOP_EINVAL, "5 fields (minute hour day-of-month month day-of-week) "
		"or 6 (second first), or is a macro like @daily; this one has 4" },
	{ "* * * * * * *", NULL, BOP_EINVAL, "this one has more than 6" },
	{ "", NULL, BOP_EINVAL, "this one has 0" },
	{ "   ", NULL, BOP_EINVAL, "this one has 0" },
	{ "0 0 30 2 *", NULL, BOP_EINVAL, "never fires: no month in month field '2' has a "
		"day in day-of-month field '30'" },
	{ "0 0 31 4,6,9,11 *", NULL, BOP_EINVAL, "never fires" },
	{ "0 0 30,31 FEB *", NULL, BOP_EINVAL, "never fires" },
	{ "@often", NULL, BOP_EINVAL, "unknown macro '@often'" },
	{ "@every", NULL, BOP_EINVAL, "unknown macro" },
	{ "@every 0s", NULL, BOP_EINVAL, "@every '0s': a duration like 90s" },
	{ "@every 5x", NULL, BOP_EINVAL, "@every '5x'" },
	{ "@every 15", NULL, BOP_EINVAL, "@every '15'" },
	{ "@every 400d", NULL, BOP_EINVAL, "@every '400d'" },
	{ "@every 9000h", NULL, BOP_EINVAL, "from 1s to 366 days" },
	{ "@every 1m 2m", NULL, BOP_EINVAL, "@every takes one duration" },
	{ "@daily 0", NULL, BOP_EINVAL, "unknown macro '@daily 0'" },
	{ "0 0 * * *\x01", NULL, BOP_EINVAL, "control or non-ASCII character at position 10" },
	{ "0 0 * * *\n0 1 * * *", NULL, BOP_EINVAL, "control or non-ASCII character" },
	{ "0 0 * * \xc3\xa9", NULL, BOP_EINVAL, "control or non-ASCII character" },
	/* zones */
	{ "0 0 * * *", "Mars/Olympus", BOP_ENOTFOUND, "unknown time zone 'Mars/Olympus'" },
	{ "0 0 * * *", "Europe", BOP_ENOTFOUND, "unknown time zone 'Europe'" },
	{ "0 0 * * *", "utc", BOP_ENOTFOUND, "unknown time zone 'utc'" },
	{ "0 0 * * *", "../../../etc/passwd", BOP_EINVAL,
		"time zone '../../../etc/passwd' is not a valid zone name" },
	{ "0 0 * * *", "Europe/../../etc/passwd", BOP_EINVAL, "is not a valid zone name" },
	{ "0 0 * * *", "/etc/localtime", BOP_EINVAL, "is not a valid zone name" },
	{ "0 0 * * *", "Europe//Berlin", BOP_EINVAL, "is not a valid zone name" },
	{ "0 0 * * *", "Europe/Berlin/", BOP_EINVAL, "is not a valid zone name" },
	{ "0 0 * * *", "Europe/Berlin\n", BOP_EINVAL, "is not a valid zone name" },
	{ "0 0 * * *", "Europe/Berlin x", BOP_EINVAL, "is not a valid zone name" },
	{ "0 0 * * *", "Europe/Ber%lin", BOP_EINVAL, "is not a valid zone name" },
	{ "0 0 * * *", "Europe/Berlin.tab", BOP_EINVAL, "is not a valid zone name" },
	{ "0 0 * * *", "~root", BOP_EINVAL, "is not a valid zone name" },
	{ "CRON_TZ=Mars/Olympus 0 0 * * *", NULL, BOP_ENOTFOUND, "unknown time zone" },
	{ "CRON_TZ=../x 0 0 * * *", NULL, BOP_EINVAL, "is not a valid zone name" },
	{ "CRON_TZ=Europe/Berlin 0 0 * * *", "UTC", BOP_EINVAL,
		"names time zone 'Europe/Berlin' and the time zone 'UTC' is given too" },
	{ "CRON_TZ=Europe/Berlin", NULL, BOP_EINVAL, "this one has 0" },
};

static void check_case(const error_case_t *c)
{
	bop_schedule_t *s = (bop_schedule_t *)&s;
	int ret = bop_schedule_parse(&s, c->expr, c->zone);
	const char *msg = bop_error_last();
	char name[200];
	size_t j = 0;

	/* The test name shows the expression without its control characters. */
	for (const char *p = c->expr; *p && j < 60; p++)
		name[j++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
	name[j] = '\0';
	ok(ret == c->code && s == NULL && strstr(msg, c->message) != NULL,
		"'%s' zone %s: %s, \"%s\"", name, c->zone ? c->zone : "-", bop_strerror(c->code),
		c->message);
	if (ret != c->code || strstr(msg, c->message) == NULL)
		diag("got %d: %s", ret, msg);
	bop_schedule_free(s);
}

static void check_long(void)
{
	char *expr = malloc(2000);
	bop_schedule_t *s = NULL;
	int ret;

	memset(expr, '1', 1999);
	expr[1999] = '\0';
	ret = bop_schedule_parse(&s, expr, NULL);
	ok(ret == BOP_EINVAL && strstr(bop_error_last(), "longer than 1024 characters"),
		"a 2000-character expression is refused: %s", bop_error_last());
	bop_schedule_free(s);
	free(expr);
}

static void check_messages_name_schedule(void)
{
	bop_schedule_t *s = NULL;

	bop_schedule_parse(&s, "0 25 * * *", "UTC");
	is_str(bop_error_last(), "schedule '0 25 * * *': hour field '25': values are 0-23",
		"the whole message names the schedule and the field");
	ok(bop_schedule_parse(&s, NULL, NULL) == BOP_EINVAL, "a NULL expression is BOP_EINVAL");
}

static void check_times(void)
{
	bop_schedule_t *s = NULL;
	int64_t next = 1, run = 1;

	if (bop_schedule_parse(&s, "0 0 1 1 *", "UTC") < 0) {
		ok(0, "parse: %s", bop_error_last());
		return;
	}
	ok(bop_schedule_next(s, &next, INT64_C(253402300800)) == BOP_EINVAL && next == 0 &&
		strstr(bop_error_last(), "outside the years 1 to 9999"),
		"next() after the year 9999 is BOP_EINVAL: %s", bop_error_last());
	ok(bop_schedule_next(s, &next, INT64_MIN) == BOP_EINVAL,
		"next() at INT64_MIN is BOP_EINVAL");
	ok(bop_schedule_next(s, &next, INT64_C(253370764800)) == BOP_ENOTFOUND &&
		strstr(bop_error_last(), "does not fire again before the year 10000"),
		"yearly after 9999-01-01: BOP_ENOTFOUND: %s", bop_error_last());
	ok(bop_schedule_due(s, &run, NULL, 0, INT64_MAX, -1) == BOP_EINVAL && run == 0,
		"due() with now out of range is BOP_EINVAL");
	bop_schedule_free(s);
}

int main(void)
{
	bop_log_set_level(BOP_LOG_OFF);
	for (size_t i = 0; i < BOP_ARRAY_SIZE(cases); i++)
		check_case(&cases[i]);
	check_long();
	check_messages_name_schedule();
	check_times();
	return done_testing();
}
