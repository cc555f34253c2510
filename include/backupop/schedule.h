/*
 * Schedules: cron expressions evaluated in a time zone.
 *
 * Syntax. Five fields "minute hour day-of-month month day-of-week", or six with seconds
 * first "second minute hour day-of-month month day-of-week", separated by blanks. Each
 * field is a comma-separated list of items "N", "N-M" or "*", each optionally followed
 * by "/STEP" ("N/STEP" means N to the field's maximum). Ranges: second and
 * minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 0-7 or
 * SUN-SAT (0 and 7 are Sunday); names are case-insensitive; '?' means '*' in the two day
 * fields. A range must not run backwards (use "FRI,SAT,SUN" rather than "FRI-SUN").
 * When both day fields are restricted a day matches if EITHER matches ("0 0 1 * MON":
 * the 1st and every Monday); a day field counts as unrestricted only when it is exactly
 * '*' or '?', as in Kubernetes CronJobs. Quartz extensions (L, W, #) are not accepted.
 * Macros: @yearly (@annually), @monthly, @weekly (Sunday), @daily (@midnight), @hourly;
 * "@every DURATION" ("@every 90s", "@every 1h30m": units h, m, s; at least 1s) fires at
 * every multiple of the duration since 1970-01-01T00:00:00Z, whatever the time zone.
 * The expression may start with "CRON_TZ=ZONE " or "TZ=ZONE " to name the time zone.
 *
 * Time zones are tz database names ("Europe/Berlin") read from the system's zone files
 * (/usr/share/zoneinfo, package tzdata, or $TZDIR), per schedule and without touching the
 * process's TZ, so schedules in different zones can be evaluated from any thread. "UTC"
 * (also NULL or "") needs no zone file; "Local" is the system's zone (TZ, else
 * /etc/localtime, else UTC) as it was when the schedule was parsed.
 *
 * Daylight saving time. Fire times are local wall-clock times, mapped to instants so:
 *  - a local time that does not exist (skipped when clocks go forward, e.g. 02:30 on the
 *    last Sunday of March in Europe/Berlin) fires at the first instant after the gap
 *    (03:00 CEST there), once, however many of the schedule's times fall in the gap;
 *  - a local time that occurs twice (when clocks go back) fires once, at its first
 *    occurrence (01:30 EDT, not 01:30 EST, in New York);
 *  - except when the hour field covers every hour ("0,15,30,45 * * * *", "0 * * * *"): such
 *    schedules follow elapsed time and also fire during the repeated hour, so "every 15
 *    minutes" stays every 15 real minutes across both changes.
 *
 * Times are unix seconds (UTC). Supported instants lie in the years 1 to 9999.
 */
#ifndef BACKUPOP_SCHEDULE_H
#define BACKUPOP_SCHEDULE_H

#include "common.h"

BOP_BEGIN_DECL

typedef struct bop_schedule bop_schedule_t;

/* Parses a cron expression in a time zone (NULL or "" = UTC, "Local" = the system's;
 * a CRON_TZ=/TZ= prefix in the expression does the same, and giving both is an error).
 * Errors: BOP_EINVAL with the field and what it allows ("minute field '61': values are
 * 0-59"), also for a schedule that can never fire ("30 0 30 2 *": February has no 30th);
 * BOP_EINVAL for a malformed zone name; BOP_ENOTFOUND for an unknown zone;
 * BOP_EFORMAT for a corrupt zone file. Free with bop_schedule_free(). */
BOP_EXTERN(int) bop_schedule_parse(bop_schedule_t **out, const char *expr,
	const char *time_zone);

/* The first fire time strictly after `after` (unix seconds) into *next. BOP_EINVAL when
 * `after` is outside the years 1 to 9999; BOP_ENOTFOUND when the schedule does not fire
 * again before the year 10000. Pure: no clock, no global state; thread-safe on a
 * shared schedule. */
BOP_EXTERN(int) bop_schedule_next(const bop_schedule_t *s, int64_t *next, int64_t after);

/* Missed runs, like Kubernetes' startingDeadlineSeconds. The fire times in
 * (last, now] were due; `last` is the latest fire time already handled (or the time
 * scheduling started). Returns 1 and sets *run to the LATEST of them when it is not too
 * late to start it (now - *run <= deadline_seconds; a negative deadline means no
 * deadline), 0 when none is due or the latest is too late (*run = 0), or a negative
 * error (as bop_schedule_next()). *missed (may be NULL) gets how many fire times were in
 * (last, now], counting at most 10000, for a log line: all but the one run are
 * skipped. */
BOP_EXTERN(int) bop_schedule_due(const bop_schedule_t *s, int64_t *run, uint64_t *missed,
	int64_t last, int64_t now, int64_t deadline_seconds);

/* The expression as given to bop_schedule_parse(). */
BOP_EXTERN(const char *) bop_schedule_expression(const bop_schedule_t *s);

/* The time zone in effect: "UTC", "Local" or a zone name such as "Europe/Berlin". */
BOP_EXTERN(const char *) bop_schedule_time_zone(const bop_schedule_t *s);

/* Instant `t` as local time in the schedule's zone, RFC 3339 with the offset
 * ("2026-03-29T03:00:00+02:00"), into `buf` of `size` bytes (at least 32). For log lines
 * and status output. BOP_EINVAL when `t` is outside the years 1 to 9999 or buf is too
 * small. */
BOP_EXTERN(int) bop_schedule_format_time(const bop_schedule_t *s, char *buf, size_t size,
	int64_t t);

/* Accepts NULL. */
BOP_EXTERN(void) bop_schedule_free(bop_schedule_t *s);

BOP_END_DECL

#endif
