/*
 * Missed runs (startingDeadlineSeconds): given the last handled fire time and "now", at
 * most one run - the latest missed one - starts, and only if it is not too late; the
 * count of missed fire times is reported.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "schedule/tz.h"
#include "tap.h"

typedef struct due_case {
	const char *what;
	const char *expr;
	const char *zone;
	const char *last;
	const char *now;
	int64_t deadline;
	int want_ret;
	const char *want_run;           /* NULL: none */
	uint64_t want_missed;
} due_case_t;

static const due_case_t cases[] = {
	{ "nothing due yet", "0 * * * *", "UTC", "2026-05-10T10:00:00Z", "2026-05-10T10:30:00Z",
		-1, 0, NULL, 0 },
	{ "now before last", "0 * * * *", "UTC", "2026-05-10T10:00:00Z", "2026-05-10T09:30:00Z",
		-1, 0, NULL, 0 },
	{ "exactly on time", "0 * * * *", "UTC", "2026-05-10T10:00:00Z", "2026-05-10T11:00:00Z",
		-1, 1, "2026-05-10T11:00:00Z", 1 },
	{ "three missed, no deadline: the latest runs", "0 * * * *", "UTC",
		"2026-05-10T10:00:00Z", "2026-05-10T13:20:00Z", -1, 1, "2026-05-10T13:00:00Z", 3 },
	{ "three missed, deadline 600 s: too late", "0 * * * *", "UTC",
		"2026-05-10T10:00:00Z", "2026-05-10T13:20:00Z", 600, 0, NULL, 3 },
	{ "deadline exactly reached still runs", "0 * * * *", "UTC",
		"2026-05-10T10:00:00Z", "2026-05-10T13:20:00Z", 1200, 1, "2026-05-10T13:00:00Z", 3 },
	{ "one second past the deadline", "0 * * * *", "UTC",
		"2026-05-10T10:00:00Z", "2026-05-10T13:20:00Z", 1199, 0, NULL, 3 },
	{ "deadline 0 runs only at the very second", "0 * * * *", "UTC",
		"2026-05-10T10:00:00Z", "2026-05-10T11:00:00Z", 0, 1, "2026-05-10T11:00:00Z", 1 },
	{ "deadline 0, one second late", "0 * * * *", "UTC",
		"2026-05-10T10:00:00Z", "2026-05-10T11:00:01Z", 0, 0, NULL, 1 },
	{ "down for a week, daily job, deadline 1 h", "0 2 * * *", "UTC",
		"2026-05-01T02:00:00Z", "2026-05-08T02:30:00Z", 3600, 1, "2026-05-08T02:00:00Z", 7 },
	{ "down for a week, daily job, restarted late", "0 2 * * *", "UTC",
		"2026-05-01T02:00:00Z", "2026-05-08T04:00:00Z", 3600, 0, NULL, 7 },
	{ "last is not on the schedule (creation time)", "0 2 * * *", "UTC",
		"2026-05-01T11:11:11Z", "2026-05-02T02:00:05Z", 60, 1, "2026-05-02T02:00:00Z", 1 },
	{ "Berlin: the missing 02:30 is due at 03:00 CEST", "30 2 * * *", "Europe/Berlin",
		"2026-03-28T01:30:00Z", "2026-03-29T01:00:30Z", 60, 1, "2026-03-29T01:00:00Z", 1 },
	{ "New York: 01:30 during the repeated hour is not due again", "30 1 * * *",
		"America/New_York", "2026-11-01T05:30:00Z", "2026-11-01T06:45:00Z", -1, 0, NULL, 0 },
	{ "every second for more than the count limit", "* * * * * *", "UTC",
		"2026-05-10T00:00:00Z", "2026-05-11T00:00:00Z", 5, 1, "2026-05-11T00:00:00Z", 10000 },
	{ "sparse latest after many: every second in January", "* * * * 1 *", "UTC",
		"2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z", -1, 1, "2026-01-31T23:59:59Z", 10000 },
	{ "sparse latest after many, too late", "* * * * 1 *", "UTC",
		"2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z", 86400, 0, NULL, 10000 },
};

static int64_t utc(const char *s)
{
	int y, mo, d, h, mi, sec;

	if (sscanf(s, "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &sec) != 6) {
		diag("bad time in the table: %s", s);
		exit(1);
	}
	return bop__days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
}

static void run_case(const due_case_t *c)
{
	bop_schedule_t *s = NULL;
	int64_t run = -1, want_run = c->want_run ? utc(c->want_run) : 0;
	uint64_t missed = 99;
	int ret;

	if (bop_schedule_parse(&s, c->expr, c->zone) < 0) {
		ok(0, "%s: parse: %s", c->what, bop_error_last());
		return;
	}
	ret = bop_schedule_due(s, &run, &missed, utc(c->last), utc(c->now), c->deadline);
	ok(ret == c->want_ret && run == want_run && missed == c->want_missed,
		"%s: '%s' last %s now %s deadline %lld -> %s, %llu missed", c->what, c->expr,
		c->last, c->now, (long long)c->deadline, c->want_run ? c->want_run : "none",
		(unsigned long long)c->want_missed);
	if (ret != c->want_ret || run != want_run || missed != c->want_missed)
		diag("got ret %d run %lld (want %lld) missed %llu: %s", ret, (long long)run,
			(long long)want_run, (unsigned long long)missed, bop_error_last());
	bop_schedule_free(s);
}

int main(void)
{
	bop_schedule_t *s = NULL;
	int64_t run = 0;

	for (size_t i = 0; i < BOP_ARRAY_SIZE(cases); i++)
		run_case(&cases[i]);

	if (bop_schedule_parse(&s, "0 * * * *", NULL) == 0) {
		ok(bop_schedule_due(s, &run, NULL, utc("2026-05-10T10:00:00Z"),
			utc("2026-05-10T12:00:00Z"), -1) == 1 && run == utc("2026-05-10T12:00:00Z"),
			"missed may be NULL");
		is_str(bop_schedule_expression(s), "0 * * * *", "the expression is kept as given");
		is_str(bop_schedule_time_zone(s), "UTC", "NULL zone is UTC");
	}
	bop_schedule_free(s);
	{
		/* in a child, so a crash is a failed check and not a lost test */
		pid_t pid = fork();
		int status = -1;

		if (pid == 0) {
			bop_schedule_free(NULL);
			_exit(0);
		}
		if (pid > 0 && waitpid(pid, &status, 0) != pid)
			status = -1;
		ok(pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
			"bop_schedule_free(NULL) returns (wait status %d)", status);
	}
	return done_testing();
}
