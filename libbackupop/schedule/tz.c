/*
 * Time zones for schedules, read from the system's tz database.
 *
 * Why a TZif reader here: the C library only converts times in the single zone named by
 * the TZ environment variable, and switching it (setenv("TZ") + tzset()) changes the
 * whole process and is not thread-safe, so a multi-threaded daemon cannot evaluate one
 * schedule in Europe/Berlin and another in America/New_York with localtime_r(). None of
 * the libraries libbackupop builds on (libuv, OpenSSL, json-c, libyaml, curl, zstd, zlib)
 * offers per-call time zones either. So this file reads the zone's TZif file (RFC 8536,
 * versions 1 to 4) itself: the 64-bit section of version 2+ files, and the footer's POSIX
 * TZ string for instants after the last transition. Every count, index and offset is
 * checked before use; a malformed file is BOP_EFORMAT, never a crash or a huge
 * allocation.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"
#include "schedule/tz.h"

#define ZONEINFO_DIR "/usr/share/zoneinfo"
#define TZIF_HEADER 44
#define MAX_NAME 255
#define MAX_FOOTER 512
/* Instants are clamped to about +-34000 years before calendar arithmetic. */
#define TIME_LIMIT ((int64_t)1 << 40)

typedef enum tz_date_kind {
	TZ_DATE_JULIAN1,        /* Jn: 1..365, February 29 never counted */
	TZ_DATE_DAY0,           /* n: 0..365, February 29 counted */
	TZ_DATE_MWD,            /* Mm.w.d: day d of week w (5 = last) of month m */
} tz_date_kind_t;

typedef struct tz_date {
	tz_date_kind_t kind;
	int n, month, week, wday;
	int32_t time;           /* seconds after local midnight, may be negative (v3) */
} tz_date_t;

typedef struct tz_rule {
	int32_t std_off;        /* seconds east of UTC */
	int32_t dst_off;
	bool has_dst;
	tz_date_t start, end;   /* into DST (in standard time), out of it (in DST) */
} tz_rule_t;

struct bop__tz {
	char *name;
	size_t count;
	int64_t *at;            /* transition instants, strictly ascending */
	int32_t *off;           /* the offset from at[i] on */
	int32_t initial;        /* before the first transition: time type 0 */
	bool has_rule;          /* from the last transition on (or always, if none) */
	tz_rule_t rule;
};

/* ---- calendar ---- */

int64_t bop__fdiv(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b < 0) ? q - 1 : q;
}

int64_t bop__fmod(int64_t a, int64_t b)
{
	int64_t r = a % b;

	return r < 0 ? r + b : r;
}

/* Days since 1970-01-01 of a proleptic Gregorian date, counting in 400-year eras of
 * 146097 days with March as the first month so that leap days fall at the end. */
int64_t bop__days_from_civil(int64_t year, int month, int day)
{
	int64_t y = month <= 2 ? year - 1 : year;
	int64_t era = bop__fdiv(y, 400);
	int64_t yoe = y - era * 400;
	int64_t mp = month > 2 ? month - 3 : month + 9;
	int64_t doy = (153 * mp + 2) / 5 + day - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

void bop__civil_from_days(int64_t days, int64_t *year, int *month, int *day)
{
	int64_t z = days + 719468;
	int64_t era = bop__fdiv(z, 146097);
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int m = (int)(mp < 10 ? mp + 3 : mp - 9);

	*day = (int)(doy - (153 * mp + 2) / 5 + 1);
	*month = m;
	*year = yoe + era * 400 + (m <= 2);
}

int bop__weekday(int64_t days)
{
	return (int)bop__fmod(days + 4, 7);     /* 1970-01-01 was a Thursday */
}

bool bop__leap_year(int64_t year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int bop__month_days(int64_t year, int month)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (month == 2 && bop__leap_year(year))
		return 29;
	return days[month - 1];
}

/* ---- POSIX TZ strings (the TZif footer) ---- */

static bool posix_name(const char **s)
{
	const char *p = *s;
	size_t n = 0;

	if (*p == '<') {
		for (p++; (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		     (*p >= '0' && *p <= '9') || *p == '+' || *p == '-'; p++)
			n++;
		if (*p != '>' || n < 3)
			return false;
		*s = p + 1;
		return true;
	}
	for (; (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'); p++)
		n++;
	if (n < 3)
		return false;
	*s = p;
	return true;
}

static bool posix_number(const char **s, int max, int *value)
{
	const char *p = *s;
	int v = 0;

	if (*p < '0' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (*p - '0');
		if (v > max)
			return false;
	}
	*s = p;
	*value = v;
	return true;
}

/* [+-]hh[:mm[:ss]], hours up to max_hours. */
static bool posix_time(const char **s, int max_hours, int32_t *secs)
{
	const char *p = *s;
	int sign = 1, h, m = 0, sec = 0;

	if (*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	if (!posix_number(&p, max_hours, &h))
		return false;
	if (*p == ':') {
		p++;
		if (!posix_number(&p, 59, &m))
			return false;
		if (*p == ':') {
			p++;
			if (!posix_number(&p, 59, &sec))
				return false;
		}
	}
	*s = p;
	*secs = sign * (h * 3600 + m * 60 + sec);
	return true;
}

static bool posix_date(const char **s, tz_date_t *d)
{
	const char *p = *s;

	if (*p == 'J') {
		p++;
		d->kind = TZ_DATE_JULIAN1;
		if (!posix_number(&p, 365, &d->n) || d->n < 1)
			return false;
	} else if (*p == 'M') {
		p++;
		d->kind = TZ_DATE_MWD;
		if (!posix_number(&p, 12, &d->month) || d->month < 1 || *p++ != '.' ||
		    !posix_number(&p, 5, &d->week) || d->week < 1 || *p++ != '.' ||
		    !posix_number(&p, 6, &d->wday))
			return false;
	} else {
		d->kind = TZ_DATE_DAY0;
		if (!posix_number(&p, 365, &d->n))
			return false;
	}
	d->time = 7200;
	if (*p == '/') {
		p++;
		if (!posix_time(&p, 167, &d->time))
			return false;
	}
	*s = p;
	return true;
}

static bool offset_valid(int32_t off)
{
	return off >= BOP__TZ_MIN_OFFSET && off <= BOP__TZ_MAX_OFFSET;
}

static bool posix_parse(const char *spec, tz_rule_t *rule)
{
	const char *p = spec;
	int32_t off;

	memset(rule, 0, sizeof(*rule));
	if (!posix_name(&p) || !posix_time(&p, 24, &off))
		return false;
	rule->std_off = -off;
	if (*p == '\0')
		return offset_valid(rule->std_off);
	rule->has_dst = true;
	if (!posix_name(&p))
		return false;
	rule->dst_off = rule->std_off + 3600;
	if (*p != ',' && *p != '\0') {
		if (!posix_time(&p, 24, &off))
			return false;
		rule->dst_off = -off;
	}
	if (*p == '\0') {
		/* No rule given: the POSIX default that C libraries use (US rules). */
		rule->start = (tz_date_t){ TZ_DATE_MWD, 0, 3, 2, 0, 7200 };
		rule->end = (tz_date_t){ TZ_DATE_MWD, 0, 11, 1, 0, 7200 };
	} else if (*p++ != ',' || !posix_date(&p, &rule->start) || *p++ != ',' ||
		   !posix_date(&p, &rule->end) || *p != '\0') {
		return false;
	}
	return offset_valid(rule->std_off) && offset_valid(rule->dst_off);
}

static int64_t rule_instant(const tz_date_t *d, int64_t year, int32_t off_before)
{
	int64_t days = 0;

	switch (d->kind) {
	case TZ_DATE_JULIAN1:
		days = bop__days_from_civil(year, 1, 1) + d->n - 1 +
			(bop__leap_year(year) && d->n >= 60);
		break;
	case TZ_DATE_DAY0:
		days = bop__days_from_civil(year, 1, 1) + d->n;
		break;
	case TZ_DATE_MWD: {
		int64_t first = bop__days_from_civil(year, d->month, 1);
		int day = (d->wday - bop__weekday(first) + 7) % 7 + (d->week - 1) * 7;

		while (day >= bop__month_days(year, d->month))
			day -= 7;
		days = first + day;
		break;
	}
	}
	return days * 86400 + d->time - off_before;
}

typedef struct rule_change {
	int64_t at;
	int32_t off;
} rule_change_t;

/* The span around `t` (t >= base) under the footer rule; nothing starts before `base`,
 * the last transition of the table. */
static void rule_span(const tz_rule_t *r, int64_t t, int64_t base, int64_t *start,
	int64_t *end, int32_t *offset)
{
	rule_change_t c[6];
	int64_t year;
	int month, day, prev = -1, n = 0;

	*start = base;
	*end = INT64_MAX;
	*offset = r->std_off;
	if (!r->has_dst)
		return;
	bop__civil_from_days(bop__fdiv(t + r->std_off, 86400), &year, &month, &day);
	for (int64_t y = year - 1; y <= year + 1; y++) {
		c[n++] = (rule_change_t){ rule_instant(&r->start, y, r->std_off), r->dst_off };
		c[n++] = (rule_change_t){ rule_instant(&r->end, y, r->dst_off), r->std_off };
	}
	for (int i = 1; i < n; i++) {
		for (int j = i; j > 0 && c[j].at < c[j - 1].at; j--) {
			rule_change_t tmp = c[j];

			c[j] = c[j - 1];
			c[j - 1] = tmp;
		}
	}
	for (int i = 0; i < n; i++) {
		if (c[i].at <= t)
			prev = i;
	}
	if (prev < 0) {
		*offset = c[0].off == r->dst_off ? r->std_off : r->dst_off;
		*end = c[0].at;
		return;
	}
	*offset = c[prev].off;
	if (c[prev].at > base)
		*start = c[prev].at;
	if (prev + 1 < n)
		*end = c[prev + 1].at;
}

void bop__tz_span(const bop__tz_t *tz, int64_t t, int64_t *start, int64_t *end,
	int32_t *offset)
{
	size_t lo, hi;

	if (tz->count > 0 && t < tz->at[0]) {
		*start = INT64_MIN;
		*end = tz->at[0];
		*offset = tz->initial;
		return;
	}
	if (tz->count > 1 && t < tz->at[tz->count - 1]) {
		lo = 0;
		hi = tz->count - 1;             /* at[lo] <= t < at[hi] */
		while (hi - lo > 1) {
			size_t mid = lo + (hi - lo) / 2;

			if (tz->at[mid] <= t)
				lo = mid;
			else
				hi = mid;
		}
		*start = tz->at[lo];
		*end = tz->at[hi];
		*offset = tz->off[lo];
		return;
	}
	if (tz->has_rule) {
		int64_t base = tz->count ? tz->at[tz->count - 1] : INT64_MIN;
		int64_t c = t < -TIME_LIMIT ? -TIME_LIMIT : t > TIME_LIMIT ? TIME_LIMIT : t;

		rule_span(&tz->rule, c, base, start, end, offset);
		if (*start > t)
			*start = base;
		if (*end <= t)
			*end = INT64_MAX;
		return;
	}
	*start = tz->count ? tz->at[tz->count - 1] : INT64_MIN;
	*end = INT64_MAX;
	*offset = tz->count ? tz->off[tz->count - 1] : tz->initial;
}

int32_t bop__tz_offset(const bop__tz_t *tz, int64_t t)
{
	int64_t start, end;
	int32_t offset;

	bop__tz_span(tz, t, &start, &end, &offset);
	return offset;
}

/* ---- TZif ---- */

typedef struct tzif_counts {
	uint32_t isut, isstd, leap, time, type, chars;
} tzif_counts_t;

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static int tzif_error(const char *name, const char *what)
{
	return bop__error(BOP_EFORMAT, "time zone file for '%s' is malformed: %s "
		"(reinstall the tzdata package)", name, what);
}

static int tzif_header(const uint8_t *p, size_t len, size_t pos, const char *name,
	char *version, tzif_counts_t *c)
{
	uint32_t limit = (uint32_t)len;

	if (len - pos < TZIF_HEADER)
		return tzif_error(name, "truncated header");
	if (memcmp(p + pos, "TZif", 4) != 0)
		return tzif_error(name, "no TZif magic");
	*version = (char)p[pos + 4];
	if (*version != '\0' && *version != '2' && *version != '3' && *version != '4')
		return tzif_error(name, "unknown version");
	c->isut = be32(p + pos + 20);
	c->isstd = be32(p + pos + 24);
	c->leap = be32(p + pos + 28);
	c->time = be32(p + pos + 32);
	c->type = be32(p + pos + 36);
	c->chars = be32(p + pos + 40);
	if (c->isut > limit || c->isstd > limit || c->leap > limit || c->time > limit ||
	    c->type > limit || c->chars > limit)
		return tzif_error(name, "counts larger than the file");
	if (c->type == 0 || c->type > 256 || c->chars == 0)
		return tzif_error(name, "no local time types");
	if ((c->isut != 0 && c->isut != c->type) || (c->isstd != 0 && c->isstd != c->type))
		return tzif_error(name, "indicator counts do not match the types");
	return 0;
}

static size_t tzif_block_size(const tzif_counts_t *c, size_t tsize)
{
	return (size_t)c->time * (tsize + 1) + (size_t)c->type * 6 + c->chars +
		(size_t)c->leap * (tsize + 4) + c->isstd + c->isut;
}

/* Fills tz from one data block whose header was checked and whose bytes are there. */
static int tzif_block(bop__tz_t *tz, const uint8_t *p, const tzif_counts_t *c,
	size_t tsize, const char *name)
{
	const uint8_t *idx = p + (size_t)c->time * tsize;
	const uint8_t *types = idx + c->time;
	int32_t offs[256];

	if (c->leap != 0)
		return bop__error(BOP_ENOTSUPPORTED, "time zone '%s' counts leap seconds; "
			"use the zone of the same name without the right/ prefix", name);
	if (types[(size_t)c->type * 6 + c->chars - 1] != '\0')
		return tzif_error(name, "unterminated designation");
	for (uint32_t i = 0; i < c->type; i++) {
		const uint8_t *t = types + (size_t)i * 6;

		offs[i] = (int32_t)be32(t);
		if (!offset_valid(offs[i]) || t[4] > 1 || t[5] >= c->chars)
			return tzif_error(name, "bad local time type");
	}
	tz->initial = offs[0];
	if (c->time == 0)
		return 0;
	tz->at = calloc(c->time, sizeof(*tz->at));
	tz->off = calloc(c->time, sizeof(*tz->off));
	if (!tz->at || !tz->off)
		return bop__error_oom();
	for (uint32_t i = 0; i < c->time; i++) {
		const uint8_t *t = p + (size_t)i * tsize;
		int64_t at = tsize == 8 ? be64(t) : (int64_t)(int32_t)be32(t);

		if (i > 0 && at <= tz->at[i - 1])
			return tzif_error(name, "transitions out of order");
		if (idx[i] >= c->type)
			return tzif_error(name, "transition to an unknown type");
		tz->at[i] = at;
		tz->off[i] = offs[idx[i]];
	}
	tz->count = c->time;
	return 0;
}

static int tzif_footer(bop__tz_t *tz, const uint8_t *p, size_t len, size_t pos,
	const char *name)
{
	char spec[MAX_FOOTER];
	size_t n = 0;

	if (pos >= len || p[pos] != '\n')
		return tzif_error(name, "no footer");
	for (pos++; pos < len && p[pos] != '\n'; pos++) {
		if (n + 1 >= sizeof(spec) || p[pos] < 0x20 || p[pos] > 0x7e)
			return tzif_error(name, "bad footer");
		spec[n++] = (char)p[pos];
	}
	if (pos >= len)
		return tzif_error(name, "unterminated footer");
	spec[n] = '\0';
	if (n == 0)
		return 0;
	if (!posix_parse(spec, &tz->rule))
		return tzif_error(name, "bad TZ string in the footer");
	tz->has_rule = true;
	return 0;
}

static int tz_alloc(bop__tz_t **out, const char *name)
{
	bop__tz_t *tz = bop__calloc(1, sizeof(*tz));

	*out = NULL;
	if (!tz)
		return BOP_ENOMEM;
	tz->name = bop__strdup(name);
	if (!tz->name) {
		free(tz);
		return BOP_ENOMEM;
	}
	*out = tz;
	return 0;
}

static int tzif_parse(bop__tz_t *tz, const uint8_t *p, size_t len, const char *name)
{
	tzif_counts_t c;
	char version, version2;
	size_t pos = 0, size;
	int ret;

	if (len > BOP__TZ_MAX_FILE)
		return tzif_error(name, "too large");
	if ((ret = tzif_header(p, len, pos, name, &version, &c)) < 0)
		return ret;
	pos += TZIF_HEADER;
	size = tzif_block_size(&c, 4);
	if (size > len - pos)
		return tzif_error(name, "truncated data");
	if (version == '\0')
		return tzif_block(tz, p + pos, &c, 4, name);
	pos += size;
	if ((ret = tzif_header(p, len, pos, name, &version2, &c)) < 0)
		return ret;
	if (version2 != version)
		return tzif_error(name, "the two headers disagree");
	pos += TZIF_HEADER;
	size = tzif_block_size(&c, 8);
	if (size > len - pos)
		return tzif_error(name, "truncated data");
	if ((ret = tzif_block(tz, p + pos, &c, 8, name)) < 0)
		return ret;
	return tzif_footer(tz, p, len, pos + size, name);
}

int bop__tz_parse(bop__tz_t **out, const void *data, size_t len, const char *name)
{
	bop__tz_t *tz;
	int ret;

	if ((ret = tz_alloc(&tz, name)) < 0)
		return ret;
	if ((ret = tzif_parse(tz, data, len, name)) < 0) {
		bop__tz_free(tz);
		return ret;
	}
	*out = tz;
	return 0;
}

int bop__tz_parse_posix(bop__tz_t **out, const char *spec, const char *name)
{
	bop__tz_t *tz;
	int ret;

	*out = NULL;
	if (strlen(spec) >= MAX_FOOTER)
		return bop__error(BOP_EINVAL, "time zone '%.40s...' is too long", spec);
	if ((ret = tz_alloc(&tz, name)) < 0)
		return ret;
	if (!posix_parse(spec, &tz->rule)) {
		bop__tz_free(tz);
		return bop__error(BOP_EINVAL, "time zone '%s' is neither a zone name nor a "
			"POSIX TZ string", spec);
	}
	tz->has_rule = true;
	tz->initial = tz->rule.std_off;
	*out = tz;
	return 0;
}

/* ---- loading ---- */

static bool zone_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > MAX_NAME || name[0] == '/' || name[n - 1] == '/')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (c == '/' && name[i + 1] == '/')
			return false;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '+' || c == '-' || c == '/'))
			return false;
	}
	return true;
}

static int load_file(bop__tz_t **out, const char *path, const char *name)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int err = stat(path, &st) == 0 ? 0 : errno;
	int ret;

	if (err != 0 && err != ENOENT && err != ENOTDIR)
		return bop__error_errno(BOP_EIO, err, "cannot read time zone file %s", path);
	if (err != 0 || !S_ISREG(st.st_mode))
		return bop__error(BOP_ENOTFOUND, "unknown time zone '%s': there is no zone "
			"file %s (a tz database name like Europe/Berlin is needed; is the "
			"tzdata package installed?)", name, path);
	if ((ret = bop__read_file(path, &buf, &len, BOP__TZ_MAX_FILE)) < 0)
		return bop__error_wrap("time zone '%s'", name);
	ret = bop__tz_parse(out, buf, len, name);
	free(buf);
	return ret;
}

static int load_utc(bop__tz_t **out, const char *name)
{
	return tz_alloc(out, name);
}

static int load_zone(bop__tz_t **out, const char *name)
{
	const char *dir = getenv("TZDIR");
	char *path;
	int ret;

	if (!zone_name_valid(name))
		return bop__error(BOP_EINVAL, "time zone '%.*s' is not a valid zone name: use a tz "
			"database name like Europe/Berlin (letters, digits, '_', '+', '-', '/')",
			MAX_NAME, name);
	if (!dir || dir[0] != '/')
		dir = ZONEINFO_DIR;
	path = bop__sprintf("%s/%s", dir, name);
	if (!path)
		return BOP_ENOMEM;
	ret = load_file(out, path, name);
	free(path);
	return ret;
}

/* "Local": TZ as the C library reads it (":name", a path, a name or a POSIX string),
 * else /etc/localtime, else UTC. */
static int load_local(bop__tz_t **out)
{
	const char *env = getenv("TZ");
	int ret;

	if (!env || !*env) {
		ret = load_file(out, "/etc/localtime", "Local");
		if (ret == BOP_ENOTFOUND) {
			bop_error_clear();
			return load_utc(out, "Local");
		}
		return ret;
	}
	if (*env == ':')
		env++;
	if (*env == '/') {
		return load_file(out, env, "Local");
	}
	if (zone_name_valid(env)) {
		ret = load_zone(out, env);
		if (ret != BOP_ENOTFOUND)
			return ret;
	}
	return bop__tz_parse_posix(out, env, "Local");
}

int bop__tz_load(bop__tz_t **out, const char *name)
{
	*out = NULL;
	if (!name || !*name || strcmp(name, "UTC") == 0)
		return load_utc(out, "UTC");
	if (strcmp(name, "Local") == 0) {
		int ret = load_local(out);
		char *local;

		if (ret < 0)
			return ret;
		if (!(local = bop__strdup("Local"))) {
			bop__tz_free(*out);
			*out = NULL;
			return BOP_ENOMEM;
		}
		free((*out)->name);
		(*out)->name = local;
		return 0;
	}
	return load_zone(out, name);
}

const char *bop__tz_name(const bop__tz_t *tz)
{
	return tz->name;
}

void bop__tz_free(bop__tz_t *tz)
{
	if (!tz)
		return;
	free(tz->name);
	free(tz->at);
	free(tz->off);
	free(tz);
}
