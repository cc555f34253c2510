/*
 * Cron expressions: parsing into bit sets, and the next fire time in a time zone.
 *
 * The search runs on local wall-clock seconds ("local" = instant + UTC offset, counted
 * like unix time) and maps the matching local time back to an instant. With
 * f(L) = the first instant whose local time is >= L, every matching local time L fires
 * at f(L): that is its first occurrence when it exists twice, and the end of the gap when
 * it does not exist. f is monotonic, so the next fire time after `after` is f of the
 * first matching L above the highest local time reached up to `after`. Schedules that
 * run every hour also fire during the repeated hour when clocks go back; those second
 * occurrences are searched separately (second_pass()).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "schedule/tz.h"

#define MAX_EXPR 1024
#define MAX_STEPS 200000        /* match_from() iterations; years of search */
#define MAX_SPANS 100000        /* offset spans walked for one answer */
#define MISSED_CAP 10000
#define MIN_TIME INT64_C(-62135596800)  /* 0001-01-01T00:00:00Z */
#define MAX_TIME INT64_C(253402300799)  /* 9999-12-31T23:59:59Z */
#define DAY 86400
/* Local times differ from their instant by less than this. */
#define OFFSET_WINDOW (3 * DAY)

enum { F_SEC, F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, F_COUNT };

typedef struct field_spec {
	const char *name;
	int min, max;
	const char *allowed;
	const char *const *names;       /* for values min.. */
	int names_from;
} field_spec_t;

static const char *const month_names[] = { "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
	"AUG", "SEP", "OCT", "NOV", "DEC", NULL };
static const char *const day_names[] = { "SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT",
	NULL };

static const field_spec_t fields[F_COUNT] = {
	{ "second", 0, 59, "values are 0-59", NULL, 0 },
	{ "minute", 0, 59, "values are 0-59", NULL, 0 },
	{ "hour", 0, 23, "values are 0-23", NULL, 0 },
	{ "day-of-month", 1, 31, "values are 1-31", NULL, 0 },
	{ "month", 1, 12, "values are 1-12 or JAN-DEC", month_names, 1 },
	{ "day-of-week", 0, 7, "values are 0-7 (0 and 7 are Sunday) or SUN-SAT", day_names, 0 },
};

static const struct {
	const char *name;
	const char *fields;
} macros[] = {
	{ "@yearly", "0 0 0 1 1 *" },
	{ "@annually", "0 0 0 1 1 *" },
	{ "@monthly", "0 0 0 1 * *" },
	{ "@weekly", "0 0 0 * * 0" },
	{ "@daily", "0 0 0 * * *" },
	{ "@midnight", "0 0 0 * * *" },
	{ "@hourly", "0 0 * * * *" },
};

struct bop_schedule {
	char *expr;
	bop__tz_t *tz;
	uint64_t bits[F_COUNT];
	bool dom_star, dow_star;
	bool every_hour;
	int64_t every;                  /* @every: seconds, else 0 */
};

/* ---- parsing ---- */

static int field_error(int f, const char *text, const char *what)
{
	return bop__error(BOP_EINVAL, "%s field '%.64s': %s", fields[f].name, text, what);
}

static bool parse_value(int f, const char *s, size_t len, int *value)
{
	const field_spec_t *spec = &fields[f];
	int v = 0;

	if (len == 0)
		return false;
	if (s[0] >= '0' && s[0] <= '9') {
		if (len > 3)
			return false;
		for (size_t i = 0; i < len; i++) {
			if (s[i] < '0' || s[i] > '9')
				return false;
			v = v * 10 + (s[i] - '0');
		}
		*value = v;
		return v >= spec->min && v <= spec->max;
	}
	if (!spec->names || len != 3)
		return false;
	for (int i = 0; spec->names[i]; i++) {
		if (strncasecmp(s, spec->names[i], 3) == 0) {
			*value = spec->names_from + i;
			return true;
		}
	}
	return false;
}

/* One list item: "*", "?", "N", "N-M", each with an optional "/STEP". */
static int parse_item(int f, const char *item, size_t len, const char *text, uint64_t *bits)
{
	const field_spec_t *spec = &fields[f];
	const char *slash = memchr(item, '/', len);
	size_t range_len = slash ? (size_t)(slash - item) : len;
	const char *dash = memchr(item, '-', range_len);
	int lo, hi, step = 1;
	int size = spec->max - spec->min + 1 - (f == F_DOW);

	if (range_len == 1 && (item[0] == '*' || item[0] == '?')) {
		if (item[0] == '?' && f != F_DOM && f != F_DOW)
			return field_error(f, text, "'?' is only allowed in the day fields");
		lo = spec->min;
		hi = f == F_DOW ? 6 : spec->max;
	} else if (dash) {
		if (!parse_value(f, item, (size_t)(dash - item), &lo) ||
		    !parse_value(f, dash + 1, range_len - (size_t)(dash - item) - 1, &hi))
			return field_error(f, text, spec->allowed);
		if (lo > hi)
			return field_error(f, text, "a range must not run backwards (list the "
				"values instead)");
	} else {
		if (!parse_value(f, item, range_len, &lo))
			return field_error(f, text, spec->allowed);
		hi = slash ? (f == F_DOW ? 6 : spec->max) : lo;
		if (hi < lo)
			hi = lo;
	}
	if (slash) {
		size_t n = len - range_len - 1;

		step = 0;
		for (size_t i = 0; i < n; i++) {
			if (slash[1 + i] < '0' || slash[1 + i] > '9' || step > size)
				return field_error(f, text, "the step after '/' must be a number");
			step = step * 10 + (slash[1 + i] - '0');
		}
		if (n == 0 || step < 1 || step > size) {
			char what[64];

			snprintf(what, sizeof(what), "the step must be 1 to %d", size);
			return field_error(f, text, what);
		}
	}
	for (int v = lo; v <= hi; v += step)
		*bits |= (uint64_t)1 << (f == F_DOW && v == 7 ? 0 : v);
	return 0;
}

static int parse_field(bop_schedule_t *s, int f, const char *text)
{
	const char *p = text;
	int ret;

	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (len == 0)
			return field_error(f, text, "empty list item");
		if ((ret = parse_item(f, p, len, text, &s->bits[f])) < 0)
			return ret;
		if (!comma)
			break;
		p = comma + 1;
	}
	if (f == F_DOM)
		s->dom_star = strcmp(text, "*") == 0 || strcmp(text, "?") == 0;
	if (f == F_DOW)
		s->dow_star = strcmp(text, "*") == 0 || strcmp(text, "?") == 0;
	return 0;
}

/* A day-of-month restriction alone must name a day that some chosen month has. */
static int check_possible(const bop_schedule_t *s, const char *dom, const char *mon)
{
	if (s->dom_star || !s->dow_star)
		return 0;
	for (int m = 1; m <= 12; m++) {
		if (!(s->bits[F_MON] >> m & 1))
			continue;
		for (int d = 1; d <= bop__month_days(2000, m); d++) {
			if (s->bits[F_DOM] >> d & 1)
				return 0;
		}
	}
	return bop__error(BOP_EINVAL, "the schedule never fires: no month in month field "
		"'%.64s' has a day in day-of-month field '%.64s'", mon, dom);
}

static int parse_fields(bop_schedule_t *s, char *text)
{
	char *tok[F_COUNT + 1], *save = NULL, *p;
	int n = 0, first, ret;

	for (p = strtok_r(text, " \t", &save); p; p = strtok_r(NULL, " \t", &save)) {
		if (n == F_COUNT + 1)
			break;
		tok[n++] = p;
	}
	if (n != 5 && n != 6)
		return bop__error(BOP_EINVAL, "a cron expression has 5 fields (minute hour "
			"day-of-month month day-of-week) or 6 (second first), or is a macro "
			"like @daily; this one has %s%d", n > F_COUNT ? "more than " : "",
			n > F_COUNT ? F_COUNT : n);
	first = n == 6 ? F_SEC : F_MIN;
	if (n == 5)
		s->bits[F_SEC] = 1;
	for (int f = first; f < F_COUNT; f++) {
		if ((ret = parse_field(s, f, tok[f - first])) < 0)
			return ret;
	}
	s->every_hour = s->bits[F_HOUR] == ((uint64_t)1 << 24) - 1;
	return check_possible(s, tok[F_DOM - first], tok[F_MON - first]);
}

/* "1h30m", "90s": at least a second, at most a year. */
static int parse_every(bop_schedule_t *s, const char *text)
{
	const char *p = text;
	int64_t total = 0;

	while (*p) {
		int64_t v = 0;
		int digits = 0;

		for (; *p >= '0' && *p <= '9' && digits < 10; p++, digits++)
			v = v * 10 + (*p - '0');
		if (digits == 0 || digits == 10 || (*p != 'h' && *p != 'm' && *p != 's'))
			goto bad;
		total += v * (*p == 'h' ? 3600 : *p == 'm' ? 60 : 1);
		if (total > 366 * DAY)
			goto bad;
		p++;
	}
	if (total < 1)
		goto bad;
	s->every = total;
	s->bits[F_HOUR] = ((uint64_t)1 << 24) - 1;
	return 0;
bad:
	return bop__error(BOP_EINVAL, "@every '%.64s': a duration like 90s, 15m or 1h30m "
		"(units h, m, s) from 1s to 366 days is needed", text);
}

static int parse_macro(bop_schedule_t *s, char *text)
{
	char buf[32];

	if (strncasecmp(text, "@every", 6) == 0 && (text[6] == ' ' || text[6] == '\t')) {
		char *p = text + 7;
		size_t n;

		p += strspn(p, " \t");
		n = strcspn(p, " \t");
		if (p[n + strspn(p + n, " \t")] != '\0')
			return bop__error(BOP_EINVAL, "@every takes one duration, like @every 15m");
		p[n] = '\0';
		return parse_every(s, p);
	}
	for (size_t i = 0; i < BOP_ARRAY_SIZE(macros); i++) {
		if (strcasecmp(text, macros[i].name) == 0) {
			snprintf(buf, sizeof(buf), "%s", macros[i].fields);
			return parse_fields(s, buf);
		}
	}
	return bop__error(BOP_EINVAL, "unknown macro '%.64s': use @yearly, @annually, "
		"@monthly, @weekly, @daily, @midnight, @hourly or @every DURATION", text);
}

static int check_chars(const char *expr)
{
	size_t n = strlen(expr);

	if (n > MAX_EXPR)
		return bop__error(BOP_EINVAL, "the cron expression is longer than %d characters",
			MAX_EXPR);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)expr[i];

		if ((c < 0x20 && c != '\t') || c >= 0x7f)
			return bop__error(BOP_EINVAL, "the cron expression contains a control or "
				"non-ASCII character at position %zu", i + 1);
	}
	return 0;
}

/* Splits off a "CRON_TZ=zone " or "TZ=zone " prefix; *zone points into text. */
static char *split_zone(char *text, char **zone)
{
	size_t skip = 0;

	*zone = NULL;
	if (strncmp(text, "CRON_TZ=", 8) == 0)
		skip = 8;
	else if (strncmp(text, "TZ=", 3) == 0)
		skip = 3;
	if (!skip)
		return text;
	*zone = text + skip;
	text = *zone + strcspn(*zone, " \t");
	if (*text)
		*text++ = '\0';
	return text + strspn(text, " \t");
}

static int schedule_parse(bop_schedule_t *s, const char *expr, const char *time_zone)
{
	char *copy, *text, *zone, *end;
	int ret;

	if ((ret = check_chars(expr)) < 0)
		return ret;
	if (!(copy = bop__strdup(expr)))
		return BOP_ENOMEM;
	text = split_zone(copy + strspn(copy, " \t"), &zone);
	for (end = text + strlen(text); end > text && (end[-1] == ' ' || end[-1] == '\t'); )
		*--end = '\0';
	if (zone && time_zone && *time_zone) {
		ret = bop__error(BOP_EINVAL, "the cron expression names time zone '%.64s' and "
			"the time zone '%.64s' is given too: give it once", zone, time_zone);
		goto out;
	}
	if (!zone)
		zone = (char *)time_zone;
	if ((ret = bop__tz_load(&s->tz, zone)) < 0)
		goto out;
	if (*text == '@')
		ret = parse_macro(s, text);
	else
		ret = parse_fields(s, text);
out:
	free(copy);
	return ret;
}

BOP_EXTERN(int) bop_schedule_parse(bop_schedule_t **out, const char *expr,
	const char *time_zone)
{
	bop_schedule_t *s;
	int ret;

	*out = NULL;
	if (!expr)
		return bop__error(BOP_EINVAL, "no cron expression given");
	if (!(s = bop__calloc(1, sizeof(*s))))
		return BOP_ENOMEM;
	if (!(s->expr = bop__strdup(expr))) {
		ret = BOP_ENOMEM;
		goto fail;
	}
	if ((ret = schedule_parse(s, expr, time_zone)) < 0) {
		bop__error_wrap("schedule '%.128s'", expr);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	bop_schedule_free(s);
	return ret;
}

/* ---- matching local times ---- */

/* The lowest set bit at or above `from` (up to `to`), or -1. */
static int next_bit(uint64_t bits, int from, int to)
{
	for (int i = from; i <= to; i++) {
		if (bits >> i & 1)
			return i;
	}
	return -1;
}

static bool day_matches(const bop_schedule_t *s, int day, int64_t days)
{
	bool dom = s->bits[F_DOM] >> day & 1;
	bool dow = s->bits[F_DOW] >> bop__weekday(days) & 1;

	if (s->dom_star || s->dow_star)
		return dom && dow;
	return dom || dow;
}

/* The first matching local time >= local. */
static int match_from(const bop_schedule_t *s, int64_t local, int64_t *out)
{
	for (int i = 0; i < MAX_STEPS; i++) {
		int64_t days = bop__fdiv(local, DAY), year;
		int sod = (int)(local - days * DAY), month, day, h, m, sec, n;

		if (local > MAX_TIME + OFFSET_WINDOW)
			break;
		bop__civil_from_days(days, &year, &month, &day);
		h = sod / 3600;
		m = sod / 60 % 60;
		sec = sod % 60;
		if (!(s->bits[F_MON] >> month & 1)) {
			n = next_bit(s->bits[F_MON], month + 1, 12);
			if (n < 0)
				local = bop__days_from_civil(year + 1, next_bit(s->bits[F_MON], 1, 12), 1) * DAY;
			else
				local = bop__days_from_civil(year, n, 1) * DAY;
			continue;
		}
		if (!day_matches(s, day, days)) {
			local = (days + 1) * DAY;
			continue;
		}
		if (!(s->bits[F_HOUR] >> h & 1)) {
			n = next_bit(s->bits[F_HOUR], h + 1, 23);
			local = n < 0 ? (days + 1) * DAY : days * DAY + n * 3600;
			continue;
		}
		if (!(s->bits[F_MIN] >> m & 1)) {
			n = next_bit(s->bits[F_MIN], m + 1, 59);
			local = days * DAY + h * 3600 + (n < 0 ? 3600 : n * 60);
			continue;
		}
		if (!(s->bits[F_SEC] >> sec & 1)) {
			n = next_bit(s->bits[F_SEC], sec + 1, 59);
			local = days * DAY + h * 3600 + m * 60 + (n < 0 ? 60 : n);
			continue;
		}
		*out = local;
		return 0;
	}
	return BOP_ENOTFOUND;
}

/* ---- local times and instants ---- */

/* The highest local time of any instant <= t: the local time of t, or higher while
 * clocks repeat an hour after going back. */
static int64_t max_local_until(const bop__tz_t *tz, int64_t t)
{
	int64_t m = INT64_MIN, u = t, start, end;
	int32_t off;

	for (int i = 0; i < MAX_SPANS; i++) {
		bop__tz_span(tz, u, &start, &end, &off);
		if (u + off > m)
			m = u + off;
		if (start <= t - OFFSET_WINDOW)
			break;
		u = start - 1;
	}
	return m;
}

/* f(L): the first instant whose local time is >= local. */
static int64_t first_instant(const bop__tz_t *tz, int64_t local)
{
	int64_t u = local - BOP__TZ_MAX_OFFSET - 1, start, end, c = u;
	int32_t off;

	for (int i = 0; i < MAX_SPANS; i++) {
		bop__tz_span(tz, u, &start, &end, &off);
		c = local - off > u ? local - off : u;
		if (c < end || end == INT64_MAX)
			return c;
		u = end;
	}
	return c;
}

/* For schedules that run every hour: the first fire time in (after, limit) among the
 * local times that clocks going back repeat, or `limit`. */
static int64_t second_pass(const bop_schedule_t *s, int64_t after, int64_t limit)
{
	int64_t u = after + 1, start, end, prev_start, prev_end, best = limit;
	int32_t off, prev_off;

	for (int i = 0; i < MAX_SPANS && u < best; i++) {
		bop__tz_span(s->tz, u, &start, &end, &off);
		if (start != INT64_MIN) {
			bop__tz_span(s->tz, start - 1, &prev_start, &prev_end, &prev_off);
			if (prev_off > off) {
				int64_t r0 = start > after ? start : after + 1;
				int64_t r1 = start + (prev_off - off), local;

				if (r1 > end)
					r1 = end;
				if (r0 < r1 && match_from(s, r0 + off, &local) == 0 &&
				    local - off < r1 && local - off < best)
					best = local - off;
			}
		}
		if (end == INT64_MAX)
			break;
		u = end;
	}
	return best;
}

static int check_time(int64_t t, const char *what)
{
	if (t < MIN_TIME || t > MAX_TIME)
		return bop__error(BOP_EINVAL, "%s %lld is outside the years 1 to 9999", what,
			(long long)t);
	return 0;
}

BOP_EXTERN(int) bop_schedule_next(const bop_schedule_t *s, int64_t *next, int64_t after)
{
	int64_t local, t;
	int ret;

	*next = 0;
	if ((ret = check_time(after, "time")) < 0)
		return ret;
	if (s->every) {
		t = (bop__fdiv(after, s->every) + 1) * s->every;
	} else {
		if (match_from(s, max_local_until(s->tz, after) + 1, &local) < 0)
			goto none;
		t = first_instant(s->tz, local);
		if (s->every_hour)
			t = second_pass(s, after, t);
	}
	if (t > MAX_TIME)
		goto none;
	*next = t;
	return 0;
none:
	return bop__error(BOP_ENOTFOUND, "schedule '%.128s' does not fire again before the "
		"year 10000", s->expr);
}

/* ---- missed runs ---- */

/* The latest fire time in (lo, now], knowing there is one: binary search for the highest
 * x with next(x) <= now; then next(x) = x + 1. */
static int latest_until(const bop_schedule_t *s, int64_t lo, int64_t now, int64_t *latest)
{
	int64_t hi = now, n;
	int ret;

	while (hi - lo > 1) {
		int64_t mid = lo + (hi - lo) / 2;

		if ((ret = bop_schedule_next(s, &n, mid)) < 0 && ret != BOP_ENOTFOUND)
			return ret;
		if (ret == 0 && n <= now)
			lo = mid;
		else
			hi = mid;
	}
	bop_error_clear();
	return bop_schedule_next(s, latest, lo);
}

BOP_EXTERN(int) bop_schedule_due(const bop_schedule_t *s, int64_t *run, uint64_t *missed,
	int64_t last, int64_t now, int64_t deadline_seconds)
{
	int64_t t = last, n, latest = 0;
	uint64_t count = 0;
	int ret;

	*run = 0;
	if (missed)
		*missed = 0;
	if ((ret = check_time(last, "last run time")) < 0 ||
	    (ret = check_time(now, "current time")) < 0)
		return ret;
	while (t < now && count < MISSED_CAP) {
		if ((ret = bop_schedule_next(s, &n, t)) == BOP_ENOTFOUND)
			break;
		if (ret < 0)
			return ret;
		if (n > now)
			break;
		latest = t = n;
		count++;
	}
	bop_error_clear();
	if (count == 0)
		return 0;
	if (count == MISSED_CAP && (ret = latest_until(s, last, now, &latest)) < 0)
		return ret;
	if (missed)
		*missed = count;
	if (deadline_seconds >= 0 && now - latest > deadline_seconds)
		return 0;
	*run = latest;
	return 1;
}

/* ---- accessors ---- */

BOP_EXTERN(const char *) bop_schedule_expression(const bop_schedule_t *s)
{
	return s->expr;
}

BOP_EXTERN(const char *) bop_schedule_time_zone(const bop_schedule_t *s)
{
	return bop__tz_name(s->tz);
}

BOP_EXTERN(int) bop_schedule_format_time(const bop_schedule_t *s, char *buf, size_t size,
	int64_t t)
{
	int64_t local, days, year;
	int32_t off, aoff;
	int month, day, sod, n;

	if (check_time(t, "time") < 0)
		return BOP_EINVAL;
	off = bop__tz_offset(s->tz, t);
	local = t + off;
	days = bop__fdiv(local, DAY);
	sod = (int)(local - days * DAY);
	aoff = off < 0 ? -off : off;
	bop__civil_from_days(days, &year, &month, &day);
	if (aoff % 60)
		n = snprintf(buf, size, "%04lld-%02d-%02dT%02d:%02d:%02d%c%02d:%02d:%02d",
			(long long)year, month, day, sod / 3600, sod / 60 % 60, sod % 60,
			off < 0 ? '-' : '+', aoff / 3600, aoff / 60 % 60, aoff % 60);
	else
		n = snprintf(buf, size, "%04lld-%02d-%02dT%02d:%02d:%02d%c%02d:%02d",
			(long long)year, month, day, sod / 3600, sod / 60 % 60, sod % 60,
			off < 0 ? '-' : '+', aoff / 3600, aoff / 60 % 60);
	if (n < 0 || (size_t)n >= size)
		return bop__error(BOP_EINVAL, "a buffer of %zu bytes is too small for a time", size);
	return 0;
}

BOP_EXTERN(void) bop_schedule_free(bop_schedule_t *s)
{
	if (!s)
		return;
	free(s->expr);
	bop__tz_free(s->tz);
	free(s);
}
