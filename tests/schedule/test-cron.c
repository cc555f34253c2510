/*
 * Cron schedules, table-driven: an expression, a zone and an instant "after"; the next
 * fire time must be exactly the expected instant and read as the expected local
 * wall-clock time. Covers every field type, names, steps, lists, the day-of-month /
 * day-of-week OR rule, seconds, macros, month lengths, leap years, year rollover, and
 * daylight saving changes in Europe/Berlin, America/New_York and Australia/Lord_Howe.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "schedule/tz.h"
#include "tap.h"

typedef struct next_case {
	const char *what;
	const char *expr;
	const char *zone;
	const char *after;              /* UTC */
	const char *want_utc;
	const char *want_local;         /* RFC 3339 in the zone */
} next_case_t;

#define BER "Europe/Berlin"
#define NYC "America/New_York"
#define LHI "Australia/Lord_Howe"

static const next_case_t cases[] = {
	/* fields, names, steps, lists */
	{ "every minute", "* * * * *", "UTC", "2026-05-10T10:20:30Z",
		"2026-05-10T10:21:00Z", "2026-05-10T10:21:00+00:00" },
	{ "minute list and ranges with a step", "5,10-12,50-59/3 * * * *", "UTC",
		"2026-05-10T10:12:00Z", "2026-05-10T10:50:00Z", "2026-05-10T10:50:00+00:00" },
	{ "minute N/STEP runs to 59", "50/4 * * * *", "UTC", "2026-05-10T10:58:00Z",
		"2026-05-10T11:50:00Z", "2026-05-10T11:50:00+00:00" },
	{ "hour range with a step", "0 8-18/4 * * *", "UTC", "2026-05-10T12:00:00Z",
		"2026-05-10T16:00:00Z", "2026-05-10T16:00:00+00:00" },
	{ "hour range with a step wraps to the next day", "0 8-18/4 * * *", "UTC",
		"2026-05-10T16:00:00Z", "2026-05-11T08:00:00Z", "2026-05-11T08:00:00+00:00" },
	{ "day-of-month list", "0 0 1,15 * *", "UTC", "2026-05-01T00:00:00Z",
		"2026-05-15T00:00:00Z", "2026-05-15T00:00:00+00:00" },
	{ "month names, case-insensitive", "0 0 1 jan,Jul *", "UTC", "2026-02-01T00:00:00Z",
		"2026-07-01T00:00:00Z", "2026-07-01T00:00:00+00:00" },
	{ "month number range", "0 0 1 10-12 *", "UTC", "2026-12-01T00:00:00Z",
		"2027-10-01T00:00:00Z", "2027-10-01T00:00:00+00:00" },
	{ "weekday range by name (Fri -> Mon)", "0 12 * * MON-FRI", "UTC",
		"2026-05-08T12:00:00Z", "2026-05-11T12:00:00Z", "2026-05-11T12:00:00+00:00" },
	{ "7 is Sunday", "0 0 * * 7", "UTC", "2026-05-10T00:00:00Z",
		"2026-05-17T00:00:00Z", "2026-05-17T00:00:00+00:00" },
	{ "0 is Sunday", "0 0 * * 0", "UTC", "2026-05-11T00:00:00Z",
		"2026-05-17T00:00:00Z", "2026-05-17T00:00:00+00:00" },
	{ "range 5-7 is Fri, Sat, Sun", "0 0 * * 5-7", "UTC", "2026-05-10T00:00:00Z",
		"2026-05-15T00:00:00Z", "2026-05-15T00:00:00+00:00" },
	{ "weekday names lower case, list", "0 0 * * sun,wed", "UTC", "2026-05-10T00:00:00Z",
		"2026-05-13T00:00:00Z", "2026-05-13T00:00:00+00:00" },
	{ "day-of-week step", "0 0 * * */2", "UTC", "2026-05-10T00:00:00Z",
		"2026-05-12T00:00:00Z", "2026-05-12T00:00:00+00:00" },
	{ "'?' in day-of-month", "0 0 ? * MON", "UTC", "2026-05-10T00:00:00Z",
		"2026-05-11T00:00:00Z", "2026-05-11T00:00:00+00:00" },
	/* the OR rule */
	{ "dom and dow restricted: Friday the 2nd comes first", "0 0 13 * FRI", "UTC",
		"2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-02T00:00:00+00:00" },
	{ "dom and dow restricted: the 13th (a Tuesday) fires", "0 0 13 * FRI", "UTC",
		"2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z", "2026-01-13T00:00:00+00:00" },
	{ "dom restricted, dow '*': only the 13th", "0 0 13 * *", "UTC",
		"2026-01-01T00:00:00Z", "2026-01-13T00:00:00Z", "2026-01-13T00:00:00+00:00" },
	{ "dow restricted, dom '*': only Fridays", "0 0 * * FRI", "UTC",
		"2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z", "2026-01-09T00:00:00+00:00" },
	{ "dom '*/10' counts as restricted: OR with Monday", "0 0 */10 * MON", "UTC",
		"2026-05-01T00:00:00Z", "2026-05-04T00:00:00Z", "2026-05-04T00:00:00+00:00" },
	{ "dom '*/10' OR Monday: the 11th", "0 0 */10 * MON", "UTC",
		"2026-05-04T00:00:00Z", "2026-05-11T00:00:00Z", "2026-05-11T00:00:00+00:00" },
	/* seconds */
	{ "6 fields: every 10 seconds", "*/10 * * * * *", "UTC", "2026-05-10T10:20:31Z",
		"2026-05-10T10:20:40Z", "2026-05-10T10:20:40+00:00" },
	{ "6 fields: second 30 of every minute", "30 * * * * *", "UTC", "2026-05-10T10:20:30Z",
		"2026-05-10T10:21:30Z", "2026-05-10T10:21:30+00:00" },
	{ "6 fields: second list rolls into the next hour", "15,45 59 * * * *", "UTC",
		"2026-05-10T10:59:45Z", "2026-05-10T11:59:15Z", "2026-05-10T11:59:15+00:00" },
	{ "strictly after: a fire time is not its own next", "0 12 * * *", "UTC",
		"2026-05-10T12:00:00Z", "2026-05-11T12:00:00Z", "2026-05-11T12:00:00+00:00" },
	{ "one second before fires", "0 12 * * *", "UTC", "2026-05-10T11:59:59Z",
		"2026-05-10T12:00:00Z", "2026-05-10T12:00:00+00:00" },
	/* macros */
	{ "@yearly", "@yearly", "UTC", "2026-05-10T10:00:00Z",
		"2027-01-01T00:00:00Z", "2027-01-01T00:00:00+00:00" },
	{ "@annually", "@annually", "UTC", "2026-05-10T10:00:00Z",
		"2027-01-01T00:00:00Z", "2027-01-01T00:00:00+00:00" },
	{ "@monthly", "@monthly", "UTC", "2026-05-10T10:00:00Z",
		"2026-06-01T00:00:00Z", "2026-06-01T00:00:00+00:00" },
	{ "@weekly is Sunday midnight", "@weekly", "UTC", "2026-05-10T10:00:00Z",
		"2026-05-17T00:00:00Z", "2026-05-17T00:00:00+00:00" },
	{ "@daily", "@daily", "UTC", "2026-05-10T10:00:00Z",
		"2026-05-11T00:00:00Z", "2026-05-11T00:00:00+00:00" },
	{ "@midnight in Berlin", "@midnight", BER, "2026-05-10T10:00:00Z",
		"2026-05-10T22:00:00Z", "2026-05-11T00:00:00+02:00" },
	{ "@hourly", "@HOURLY", "UTC", "2026-05-10T10:00:00Z",
		"2026-05-10T11:00:00Z", "2026-05-10T11:00:00+00:00" },
	{ "@every 15m is aligned to the epoch", "@every 15m", "UTC", "2026-05-10T10:07:00Z",
		"2026-05-10T10:15:00Z", "2026-05-10T10:15:00+00:00" },
	{ "@every 1h30m", "@every 1h30m", "UTC", "2026-05-10T10:00:00Z",
		"2026-05-10T10:30:00Z", "2026-05-10T10:30:00+00:00" },
	{ "@every 7s", "@every 7s", "UTC", "1970-01-01T00:00:13Z",
		"1970-01-01T00:00:14Z", "1970-01-01T00:00:14+00:00" },
	/* month lengths, leap years, rollover */
	{ "the 31st skips 30-day months", "0 0 31 * *", "UTC", "2026-03-31T00:00:00Z",
		"2026-05-31T00:00:00Z", "2026-05-31T00:00:00+00:00" },
	{ "29 February: next leap year", "0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z",
		"2028-02-29T00:00:00Z", "2028-02-29T00:00:00+00:00" },
	{ "29 February: 2100 is not a leap year", "0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z",
		"2104-02-29T00:00:00Z", "2104-02-29T00:00:00+00:00" },
	{ "29 February: 2000 is a leap year", "0 0 29 2 *", "UTC", "1997-01-01T00:00:00Z",
		"2000-02-29T00:00:00Z", "2000-02-29T00:00:00+00:00" },
	{ "30th of every month skips February", "0 0 30 * *", "UTC", "2026-01-30T00:00:00Z",
		"2026-03-30T00:00:00Z", "2026-03-30T00:00:00+00:00" },
	{ "year rollover", "0 0 1 1 *", "UTC", "2026-12-31T23:59:59Z",
		"2027-01-01T00:00:00Z", "2027-01-01T00:00:00+00:00" },
	{ "last minute of the year", "59 23 31 12 *", "UTC", "2026-12-31T23:59:00Z",
		"2027-12-31T23:59:00Z", "2027-12-31T23:59:00+00:00" },
	{ "before 1970", "0 0 1 1 *", "UTC", "1969-06-01T00:00:00Z",
		"1970-01-01T00:00:00Z", "1970-01-01T00:00:00+00:00" },
	/* zones without DST */
	{ "Asia/Kolkata +05:30", "0 9 * * *", "Asia/Kolkata", "2026-01-01T00:00:00Z",
		"2026-01-01T03:30:00Z", "2026-01-01T09:00:00+05:30" },
	{ "Asia/Kolkata hourly at :00 local is :30 UTC", "0 * * * *", "Asia/Kolkata",
		"2026-07-01T10:00:00Z", "2026-07-01T10:30:00Z", "2026-07-01T16:00:00+05:30" },
	{ "CRON_TZ= prefix", "CRON_TZ=Asia/Kolkata 0 9 * * *", NULL, "2026-01-01T00:00:00Z",
		"2026-01-01T03:30:00Z", "2026-01-01T09:00:00+05:30" },
	{ "TZ= prefix", "TZ=America/New_York 0 9 * * *", "", "2026-01-01T00:00:00Z",
		"2026-01-01T14:00:00Z", "2026-01-01T09:00:00-05:00" },
	{ "Etc/GMT+5 is UTC-5", "0 9 * * *", "Etc/GMT+5", "2026-01-01T00:00:00Z",
		"2026-01-01T14:00:00Z", "2026-01-01T09:00:00-05:00" },

	/* Europe/Berlin, spring forward 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z) */
	{ "BER spring: daily 02:30 (missing) fires at 03:00 CEST", "30 2 * * *", BER,
		"2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T03:00:00+02:00" },
	{ "BER spring: daily 02:30, 6 fields", "0 30 2 * * *", BER,
		"2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T03:00:00+02:00" },
	{ "BER spring: daily 02:30 the day after is 02:30 CEST", "30 2 * * *", BER,
		"2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z", "2026-03-30T02:30:00+02:00" },
	{ "BER spring: daily 03:00 coincides with the gap's end", "0 3 * * *", BER,
		"2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T03:00:00+02:00" },
	{ "BER spring: daily 01:59 is before the gap", "59 1 * * *", BER,
		"2026-03-28T12:00:00Z", "2026-03-29T00:59:00Z", "2026-03-29T01:59:00+01:00" },
	{ "BER spring: hourly 01:00 CET -> 03:00 CEST", "0 * * * *", BER,
		"2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T03:00:00+02:00" },
	{ "BER spring: hourly 03:00 -> 04:00 CEST", "0 * * * *", BER,
		"2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z", "2026-03-29T04:00:00+02:00" },
	{ "BER spring: every 15 min 01:45 CET -> 03:00 CEST", "*/15 * * * *", BER,
		"2026-03-29T00:45:00Z", "2026-03-29T01:00:00Z", "2026-03-29T03:00:00+02:00" },
	{ "BER spring: every 15 min 03:00 -> 03:15 CEST", "*/15 * * * *", BER,
		"2026-03-29T01:00:00Z", "2026-03-29T01:15:00Z", "2026-03-29T03:15:00+02:00" },
	{ "BER spring: 02:00-02:59 every 10 min fires once at 03:00", "*/10 2 * * *", BER,
		"2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T03:00:00+02:00" },
	{ "BER spring: ... and then not again that day", "*/10 2 * * *", BER,
		"2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z", "2026-03-30T02:00:00+02:00" },
	/* Europe/Berlin, fall back 2026-10-25 03:00 CEST -> 02:00 CET (01:00Z) */
	{ "BER fall: daily 02:30 fires at 02:30 CEST", "30 2 * * *", BER,
		"2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T02:30:00+02:00" },
	{ "BER fall: daily 02:30 not again at 02:30 CET", "30 2 * * *", BER,
		"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", "2026-10-26T02:30:00+01:00" },
	{ "BER fall: daily 02:30, asked during the repeated hour", "30 2 * * *", BER,
		"2026-10-25T01:10:00Z", "2026-10-26T01:30:00Z", "2026-10-26T02:30:00+01:00" },
	{ "BER fall: daily 02:00 once", "0 2 * * *", BER,
		"2026-10-25T00:00:00Z", "2026-10-26T01:00:00Z", "2026-10-26T02:00:00+01:00" },
	{ "BER fall: daily 03:00 after the repeat", "0 3 * * *", BER,
		"2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00+01:00" },
	{ "BER fall: hourly 02:00 CEST -> 02:00 CET", "0 * * * *", BER,
		"2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00+01:00" },
	{ "BER fall: hourly 02:00 CET -> 03:00 CET", "0 * * * *", BER,
		"2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00+01:00" },
	{ "BER fall: every 15 min 02:45 CEST -> 02:00 CET", "*/15 * * * *", BER,
		"2026-10-25T00:45:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00+01:00" },
	{ "BER fall: every 15 min 02:00 CET -> 02:15 CET", "*/15 * * * *", BER,
		"2026-10-25T01:00:00Z", "2026-10-25T01:15:00Z", "2026-10-25T02:15:00+01:00" },
	{ "BER fall: every 15 min mid-repeat 02:20 CET -> 02:30 CET", "*/15 * * * *", BER,
		"2026-10-25T01:20:00Z", "2026-10-25T01:30:00Z", "2026-10-25T02:30:00+01:00" },
	{ "BER fall: 6-field every 20 s at 02:59:40 CEST", "*/20 * * * * *", BER,
		"2026-10-25T00:59:40Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00+01:00" },
	{ "BER fall: */10 in hour 2 does not repeat", "*/10 2 * * *", BER,
		"2026-10-25T00:50:00Z", "2026-10-26T01:00:00Z", "2026-10-26T02:00:00+01:00" },
	/* after the last transition of the table: the footer rule (2100) */
	{ "BER 2100 spring: daily 02:30 fires at 03:00 CEST", "30 2 * * *", BER,
		"2100-03-27T12:00:00Z", "2100-03-28T01:00:00Z", "2100-03-28T03:00:00+02:00" },
	{ "BER 2100 summer", "0 12 * * *", BER, "2100-07-01T00:00:00Z",
		"2100-07-01T10:00:00Z", "2100-07-01T12:00:00+02:00" },
	{ "BER 2100 fall: hourly through the repeat", "0 * * * *", BER,
		"2100-10-31T00:00:00Z", "2100-10-31T01:00:00Z", "2100-10-31T02:00:00+01:00" },
	{ "BER 2100 fall: daily 02:30 once", "30 2 * * *", BER,
		"2100-10-31T00:30:00Z", "2100-11-01T01:30:00Z", "2100-11-01T02:30:00+01:00" },
	{ "BER 9999: the last supported year", "0 0 31 12 *", BER,
		"9999-06-01T00:00:00Z", "9999-12-30T23:00:00Z", "9999-12-31T00:00:00+01:00" },

	/* America/New_York, spring forward 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z) */
	{ "NYC spring: daily 02:30 (missing) fires at 03:00 EDT", "30 2 * * *", NYC,
		"2026-03-08T05:00:00Z", "2026-03-08T07:00:00Z", "2026-03-08T03:00:00-04:00" },
	{ "NYC spring: hourly 01:00 EST -> 03:00 EDT", "0 * * * *", NYC,
		"2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z", "2026-03-08T03:00:00-04:00" },
	{ "NYC spring: every 15 min 01:45 EST -> 03:00 EDT", "*/15 * * * *", NYC,
		"2026-03-08T06:45:00Z", "2026-03-08T07:00:00Z", "2026-03-08T03:00:00-04:00" },
	{ "NYC spring: every 15 min 03:00 -> 03:15 EDT", "*/15 * * * *", NYC,
		"2026-03-08T07:00:00Z", "2026-03-08T07:15:00Z", "2026-03-08T03:15:00-04:00" },
	/* America/New_York, fall back 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z) */
	{ "NYC fall: daily 01:30 fires at 01:30 EDT", "30 1 * * *", NYC,
		"2026-11-01T04:00:00Z", "2026-11-01T05:30:00Z", "2026-11-01T01:30:00-04:00" },
	{ "NYC fall: daily 01:30 not again at 01:30 EST", "30 1 * * *", NYC,
		"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z", "2026-11-02T01:30:00-05:00" },
	{ "NYC fall: daily 01:30 asked at 01:00 EST (repeat)", "30 1 * * *", NYC,
		"2026-11-01T06:00:00Z", "2026-11-02T06:30:00Z", "2026-11-02T01:30:00-05:00" },
	{ "NYC fall: hourly 01:00 EDT -> 01:00 EST", "0 * * * *", NYC,
		"2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T01:00:00-05:00" },
	{ "NYC fall: hourly 01:00 EST -> 02:00 EST", "0 * * * *", NYC,
		"2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z", "2026-11-01T02:00:00-05:00" },
	{ "NYC fall: every 15 min 01:45 EDT -> 01:00 EST", "*/15 * * * *", NYC,
		"2026-11-01T05:45:00Z", "2026-11-01T06:00:00Z", "2026-11-01T01:00:00-05:00" },
	{ "NYC fall: every 15 min 01:45 EST -> 02:00 EST", "*/15 * * * *", NYC,
		"2026-11-01T06:45:00Z", "2026-11-01T07:00:00Z", "2026-11-01T02:00:00-05:00" },

	/* Australia/Lord_Howe: 30-minute DST. Spring 2026-10-04 02:00 -> 02:30 (15:30Z Oct 3),
	 * fall 2026-04-05 02:00 -> 01:30 (15:00Z Apr 4) */
	{ "LHI spring: daily 02:15 (missing) fires at 02:30 +11", "15 2 * * *", LHI,
		"2026-10-03T12:00:00Z", "2026-10-03T15:30:00Z", "2026-10-04T02:30:00+11:00" },
	{ "LHI spring: every 15 min 01:45 -> 02:30 +11", "*/15 * * * *", LHI,
		"2026-10-03T15:15:00Z", "2026-10-03T15:30:00Z", "2026-10-04T02:30:00+11:00" },
	{ "LHI spring: every 15 min 02:30 -> 02:45 +11", "*/15 * * * *", LHI,
		"2026-10-03T15:30:00Z", "2026-10-03T15:45:00Z", "2026-10-04T02:45:00+11:00" },
	{ "LHI fall: daily 01:45 fires at 01:45 +11", "45 1 * * *", LHI,
		"2026-04-04T12:00:00Z", "2026-04-04T14:45:00Z", "2026-04-05T01:45:00+11:00" },
	{ "LHI fall: daily 01:45 not again at 01:45 +10:30", "45 1 * * *", LHI,
		"2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z", "2026-04-06T01:45:00+10:30" },
	{ "LHI fall: every 15 min 01:45 +11 -> 01:30 +10:30", "*/15 * * * *", LHI,
		"2026-04-04T14:45:00Z", "2026-04-04T15:00:00Z", "2026-04-05T01:30:00+10:30" },
	{ "LHI fall: every 15 min 01:45 +10:30 -> 02:00 +10:30", "*/15 * * * *", LHI,
		"2026-04-04T15:15:00Z", "2026-04-04T15:30:00Z", "2026-04-05T02:00:00+10:30" },
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

static void format_utc(char *buf, size_t size, int64_t t)
{
	int64_t days = bop__fdiv(t, 86400), y;
	int sod = (int)(t - days * 86400), mo, d;

	bop__civil_from_days(days, &y, &mo, &d);
	snprintf(buf, size, "%04lld-%02d-%02dT%02d:%02d:%02dZ", (long long)y, mo, d,
		sod / 3600, sod / 60 % 60, sod % 60);
}

static bool zone_exists(const char *zone)
{
	char path[256];
	FILE *f;

	if (!zone || !*zone || strcmp(zone, "UTC") == 0)
		return true;
	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", zone);
	if (!(f = fopen(path, "rb")))
		return false;
	fclose(f);
	return true;
}

static void run_case(const next_case_t *c)
{
	bop_schedule_t *s = NULL;
	char got_utc[40], got_local[40];
	int64_t next = 0;
	int ret;

	if (!zone_exists(c->zone)) {
		skip(1, "%s: zone %s is not in this tzdata", c->what, c->zone);
		return;
	}
	ret = bop_schedule_parse(&s, c->expr, c->zone);
	if (ret == 0)
		ret = bop_schedule_next(s, &next, utc(c->after));
	if (ret < 0) {
		ok(0, "%s: '%s' in %s after %s", c->what, c->expr, c->zone ? c->zone : "(null)",
			c->after);
		diag("error %d: %s", ret, bop_error_last());
		bop_schedule_free(s);
		return;
	}
	format_utc(got_utc, sizeof(got_utc), next);
	bop_schedule_format_time(s, got_local, sizeof(got_local), next);
	ok(next == utc(c->want_utc) && strcmp(got_local, c->want_local) == 0,
		"%s: '%s' after %s -> %s = %s", c->what, c->expr, c->after, c->want_utc,
		c->want_local);
	if (next != utc(c->want_utc) || strcmp(got_local, c->want_local) != 0)
		diag("got %s = %s", got_utc, got_local);
	bop_schedule_free(s);
}

/* Walks a whole DST day (local midnight to midnight, both excluded) and counts the fire
 * times: nothing twice, nothing skipped. */
static void walk_day(const char *expr, const char *zone, const char *from, const char *to,
	int want_count, int64_t want_gap)
{
	bop_schedule_t *s = NULL;
	int64_t t = utc(from), end = utc(to), n, prev = 0, max_gap = 0;
	int count = 0, ret;

	if (bop_schedule_parse(&s, expr, zone) < 0) {
		ok(0, "parse '%s': %s", expr, bop_error_last());
		return;
	}
	while ((ret = bop_schedule_next(s, &n, t)) == 0 && n < end) {
		if (prev && n - prev > max_gap)
			max_gap = n - prev;
		if (n <= t)
			break;
		prev = t = n;
		count++;
	}
	ok(count == want_count && max_gap == want_gap,
		"'%s' in %s from %s to %s: %d fire times, at most %llds apart", expr, zone, from,
		to, want_count, (long long)want_gap);
	if (count != want_count || max_gap != want_gap)
		diag("got %d fire times, largest gap %llds", count, (long long)max_gap);
	bop_schedule_free(s);
}

/* ---- an independent oracle over every minute of a DST weekend ---- */

typedef struct oracle_sched {
	const char *expr;
	uint64_t minutes;               /* bit m: minute m matches */
	uint32_t hours;
	bool every_hour;
} oracle_sched_t;

#define ALL_HOURS 0xffffffu
#define QUARTERS ((1ull << 0) | (1ull << 15) | (1ull << 30) | (1ull << 45))
#define TENS ((1ull << 0) | (1ull << 10) | (1ull << 20) | (1ull << 30) | (1ull << 40) | (1ull << 50))

static const oracle_sched_t oracle_scheds[] = {
	{ "*/15 * * * *", QUARTERS, ALL_HOURS, true },
	{ "0 * * * *", 1, ALL_HOURS, true },
	{ "30 2 * * *", 1ull << 30, 1u << 2, false },
	{ "45 1 * * *", 1ull << 45, 1u << 1, false },
	{ "0,30 1-3 * * *", 1 | (1ull << 30), 0xe, false },
	{ "*/10 2 * * *", TENS, 1u << 2, false },
	{ "15 0-5 * * *", 1ull << 15, 0x3f, false },
};

static bool oracle_match(const oracle_sched_t *o, int64_t local)
{
	int64_t sod = bop__fmod(local, 86400);

	return (o->hours >> (sod / 3600) & 1) && (o->minutes >> (sod / 60 % 60) & 1) &&
		sod % 60 == 0;
}

/* Does the instant u (a whole minute) fire, by the documented rules, checked the slow
 * way: its local time matches and it is the first instant with that local time (or the
 * schedule runs every hour), or clocks jump forward at u over a matching local time. */
static bool oracle_fires(const oracle_sched_t *o, const bop__tz_t *tz, int64_t u)
{
	int32_t off = bop__tz_offset(tz, u), before = bop__tz_offset(tz, u - 1);
	int64_t local = u + off;

	if (oracle_match(o, local)) {
		bool repeat = false;

		for (int64_t e = u - 60; e >= u - 2 * 3600 && !repeat; e -= 60)
			repeat = e + bop__tz_offset(tz, e) == local;
		if (!repeat || o->every_hour)
			return true;
	}
	if (off > before) {
		for (int64_t l = u - 1 + before + 1; l < local; l++) {
			if (oracle_match(o, l))
				return true;
		}
	}
	return false;
}

static void oracle_window(const char *zone, const char *from)
{
	bop__tz_t *tz = NULL;
	int64_t start = utc(from), end = start + 2 * 86400;

	if (bop__tz_load(&tz, zone) < 0) {
		skip(1, "zone %s: %s", zone, bop_error_last());
		return;
	}
	for (size_t i = 0; i < BOP_ARRAY_SIZE(oracle_scheds); i++) {
		const oracle_sched_t *o = &oracle_scheds[i];
		bop_schedule_t *s = NULL;
		int64_t t = start, n = 0, u = start;
		int fires = 0, wrong = 0;

		if (bop_schedule_parse(&s, o->expr, zone) < 0) {
			ok(0, "parse '%s': %s", o->expr, bop_error_last());
			continue;
		}
		while (bop_schedule_next(s, &n, t) == 0 && n < end) {
			/* every minute between two answers must not fire; the answer must */
			for (u = (t / 60 + 1) * 60; u < n; u += 60) {
				if (oracle_fires(o, tz, u) && wrong++ < 3)
					diag("'%s' %s: next() skipped %lld", o->expr, zone, (long long)u);
			}
			if (!oracle_fires(o, tz, n) && wrong++ < 3)
				diag("'%s' %s: next() gave %lld, which should not fire", o->expr, zone,
					(long long)n);
			fires++;
			t = n;
		}
		for (u = (t / 60 + 1) * 60; u < end; u += 60) {
			if (oracle_fires(o, tz, u) && wrong++ < 3)
				diag("'%s' %s: next() skipped %lld", o->expr, zone, (long long)u);
		}
		ok(wrong == 0, "'%s' in %s for 48 h from %s: all %d fire times agree with a "
			"minute-by-minute check", o->expr, zone, from, fires);
		bop_schedule_free(s);
	}
	bop__tz_free(tz);
}

/* Random schedules and instants: next() is strictly later, and asking again from any
 * instant before the answer gives the same answer (nothing in between is skipped). */
static void check_consistency(void)
{
	static const char *const exprs[] = { "*/7 3-5 * * *", "0 0 29 2 *", "13 13 13 * FRI",
		"0 30 1 * * SUN", "*/20 * * * * *", "0 2 L * *", "5 4 * * 1-5", "0 0 1 */3 *",
		"@weekly", "30 2 * * *", "*/15 * * * *", "59 23 31 12 *" };
	static const char *const zones[] = { "UTC", BER, NYC, LHI, "Asia/Kolkata" };
	uint64_t x = 88172645463325252ull;
	int checks = 0, bad = 0;

	for (int i = 0; i < 400; i++) {
		bop_schedule_t *s = NULL;
		int64_t after, n = 0, m = 0;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		if (bop_schedule_parse(&s, exprs[x % BOP_ARRAY_SIZE(exprs)],
			zones[(x >> 8) % BOP_ARRAY_SIZE(zones)]) < 0)
			continue;       /* "0 2 L * *" is refused: L is not supported */
		after = (int64_t)((x >> 16) % 7258118400ull);  /* 1970-2200 */
		if (bop_schedule_next(s, &n, after) < 0 || n <= after) {
			bad++;
		} else {
			for (int k = 0; k < 8; k++) {
				int64_t t = k == 0 ? n - 1 : after + (int64_t)((x >> k) % (uint64_t)(n - after));

				checks++;
				if (bop_schedule_next(s, &m, t) < 0 || m != n) {
					if (bad++ < 5)
						diag("'%s' in %s: next(%lld) = %lld but next(%lld) = %lld",
							bop_schedule_expression(s), bop_schedule_time_zone(s),
							(long long)after, (long long)n, (long long)t, (long long)m);
				}
			}
		}
		bop_schedule_free(s);
	}
	ok(bad == 0 && checks > 2000, "%d random re-asks give the same next time", checks);
}

int main(void)
{
	for (size_t i = 0; i < BOP_ARRAY_SIZE(cases); i++)
		run_case(&cases[i]);

	/* Whole days across each change: every 15 minutes stays every 15 real minutes. */
	walk_day("*/15 * * * *", BER, "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z", 91, 900);
	walk_day("*/15 * * * *", BER, "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z", 99, 900);
	walk_day("0 * * * *", NYC, "2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z", 22, 3600);
	walk_day("0 * * * *", NYC, "2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z", 24, 3600);
	walk_day("*/15 * * * *", LHI, "2026-10-03T13:30:00Z", "2026-10-04T13:00:00Z", 93, 900);
	walk_day("*/15 * * * *", LHI, "2026-04-04T13:00:00Z", "2026-04-05T13:30:00Z", 97, 900);
	/* ... and a daily job fires exactly once on each change day. */
	walk_day("30 2 * * *", BER, "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z", 1, 0);
	walk_day("30 2 * * *", BER, "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z", 1, 0);
	walk_day("30 1 * * *", NYC, "2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z", 1, 0);

	oracle_window(BER, "2026-03-28T00:00:00Z");
	oracle_window(BER, "2026-10-24T00:00:00Z");
	oracle_window(BER, "2100-03-27T00:00:00Z");
	oracle_window(BER, "2100-10-30T00:00:00Z");
	oracle_window(NYC, "2026-03-07T12:00:00Z");
	oracle_window(NYC, "2026-10-31T12:00:00Z");
	oracle_window(LHI, "2026-10-02T12:00:00Z");
	oracle_window(LHI, "2026-04-03T12:00:00Z");
	check_consistency();
	return done_testing();
}
