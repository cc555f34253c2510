/*
 * Private to libbackupop/schedule: time zones read from TZif files (RFC 8536) and the
 * proleptic Gregorian calendar arithmetic the schedules need.
 */
#ifndef BOP_SCHEDULE_TZ_H
#define BOP_SCHEDULE_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Offsets east of UTC must lie in this range (RFC 8536 section 3.2). */
#define BOP__TZ_MIN_OFFSET (-89999)
#define BOP__TZ_MAX_OFFSET 93599

/* A TZif file is at most this big; real ones are under 4 KiB. */
#define BOP__TZ_MAX_FILE (256 * 1024)

typedef struct bop__tz bop__tz_t;

/* Loads a zone by name: NULL, "" and "UTC" are UTC (no file needed); "Local" is the
 * zone of the TZ environment variable, else /etc/localtime, else UTC; anything else is
 * a file under $TZDIR or /usr/share/zoneinfo. A name with characters other than
 * [A-Za-z0-9_+-/], an empty component, or a leading '/' is BOP_EINVAL; a name without
 * a file is BOP_ENOTFOUND. */
int bop__tz_load(bop__tz_t **out, const char *name);

/* Parses the bytes of a TZif file (versions 1 to 4). Malformed data is BOP_EFORMAT,
 * leap-second zones ("right/...") BOP_ENOTSUPPORTED. `name` is for messages. */
int bop__tz_parse(bop__tz_t **out, const void *data, size_t len, const char *name);

/* A zone from a POSIX TZ string alone ("CET-1CEST,M3.5.0,M10.5.0/3"). */
int bop__tz_parse_posix(bop__tz_t **out, const char *spec, const char *name);

/* The zone's name as loaded. */
const char *bop__tz_name(const bop__tz_t *tz);

void bop__tz_free(bop__tz_t *tz);

/* The span of constant UTC offset that contains instant `t`: [*start, *end) with
 * *offset seconds east of UTC. INT64_MIN/INT64_MAX stand for "no end". Consecutive
 * spans may have the same offset. */
void bop__tz_span(const bop__tz_t *tz, int64_t t, int64_t *start, int64_t *end,
	int32_t *offset);

/* The offset east of UTC at instant `t`. */
int32_t bop__tz_offset(const bop__tz_t *tz, int64_t t);

/* ---- calendar (proleptic Gregorian, days since 1970-01-01) ---- */

int64_t bop__days_from_civil(int64_t year, int month, int day);
void bop__civil_from_days(int64_t days, int64_t *year, int *month, int *day);
/* 0 = Sunday. */
int bop__weekday(int64_t days);
bool bop__leap_year(int64_t year);
int bop__month_days(int64_t year, int month);

/* Floor division and modulo for a positive divisor. */
int64_t bop__fdiv(int64_t a, int64_t b);
int64_t bop__fmod(int64_t a, int64_t b);

#endif
