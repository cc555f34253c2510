/*
 * The time zone reader: offsets for many zones and instants against the system's own
 * conversion (`date` with TZ set, in a child process), including the footer rules far in
 * the future and POSIX TZ strings; malformed and hostile zone files are refused cleanly;
 * "Local" and TZDIR.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "schedule/tz.h"
#include "tap.h"

#define MAX_INSTANTS 600

static char tmpdir[64];

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t next_random(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* "YYYY-MM-DDTHH:MM:SS +hh:mm:ss" as `date +%Y-%m-%dT%H:%M:%S\ %::z` prints it. */
static void format_local(char *buf, size_t size, const bop__tz_t *tz, int64_t t)
{
	int32_t off = bop__tz_offset(tz, t), a = off < 0 ? -off : off;
	int64_t local = t + off, days = bop__fdiv(local, 86400), y;
	int sod = (int)(local - days * 86400), mo, d;

	bop__civil_from_days(days, &y, &mo, &d);
	snprintf(buf, size, "%04lld-%02d-%02dT%02d:%02d:%02d %c%02d:%02d:%02d", (long long)y, mo,
		d, sod / 3600, sod / 60 % 60, sod % 60, off < 0 ? '-' : '+', a / 3600, a / 60 % 60,
		a % 60);
}

static bool have_date(void)
{
	return system("date -u -d @0 >/dev/null 2>&1") == 0;
}

/* Compares our local time of every instant with `TZ=tzenv date`; one check. */
static void cross_check(const char *label, const bop__tz_t *tz, const char *tzenv,
	const int64_t *t, size_t n)
{
	char path[128], cmd[512], line[128], want[128];
	size_t i = 0, bad = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/instants", tmpdir);
	if (!(f = fopen(path, "w"))) {
		ok(0, "%s: cannot write %s", label, path);
		return;
	}
	for (size_t k = 0; k < n; k++)
		fprintf(f, "@%lld\n", (long long)t[k]);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "TZ='%s' date -f '%s' '+%%Y-%%m-%%dT%%H:%%M:%%S %%::z'",
		tzenv, path);
	if (!(f = popen(cmd, "r"))) {
		ok(0, "%s: cannot run date", label);
		return;
	}
	while (i < n && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		/* "-00" is how tzdata says "no local time" (Antarctica/Troll before 2005). */
		if (strlen(line) > 9 && strcmp(line + strlen(line) - 9, "-00:00:00") == 0)
			line[strlen(line) - 9] = '+';
		format_local(want, sizeof(want), tz, t[i]);
		if (strcmp(line, want) != 0 && bad++ < 5)
			diag("%s @%lld: date says %s, we say %s", label, (long long)t[i], line, want);
		i++;
	}
	pclose(f);
	ok(i == n && bad == 0, "%s: %zu instants agree with `TZ=%s date`", label, n, tzenv);
}

/* Random instants from lo to 2300 plus both sides of every change of offset in 2020-2120
 * (the table's and the footer rule's). */
static size_t instants(const bop__tz_t *tz, int64_t *t, int64_t lo)
{
	int64_t hi = 10413792000, u = 1577836800, start, end;
	int32_t off;
	size_t n = 0;

	while (n < 200)
		t[n++] = lo + (int64_t)(next_random() % (uint64_t)(hi - lo));
	while (n + 2 <= MAX_INSTANTS) {
		bop__tz_span(tz, u, &start, &end, &off);
		if (end == INT64_MAX || end > 4733510400)        /* 2120 */
			break;
		t[n++] = end - 1;
		t[n++] = end;
		u = end;
	}
	return n;
}

static void check_zones(void)
{
	static const char *const zones[] = { "Europe/Berlin", "America/New_York",
		"Australia/Lord_Howe", "Asia/Kolkata", "Europe/Dublin", "America/Nuuk",
		"Pacific/Chatham", "Antarctica/Troll", "America/St_Johns", "Pacific/Kiritimati",
		"Africa/Casablanca", "America/Sao_Paulo", "Asia/Tehran", "Etc/GMT-14", "UTC" };
	int64_t t[MAX_INSTANTS];

	for (size_t i = 0; i < BOP_ARRAY_SIZE(zones); i++) {
		bop__tz_t *tz = NULL;
		int ret = bop__tz_load(&tz, zones[i]);

		if (ret == BOP_ENOTFOUND) {
			skip(1, "zone %s is not in this tzdata", zones[i]);
			continue;
		}
		if (ret < 0) {
			ok(0, "load %s: %s", zones[i], bop_error_last());
			continue;
		}
		cross_check(zones[i], tz, zones[i], t, instants(tz, t, -631152000));
		bop__tz_free(tz);
	}
}

static void check_posix(void)
{
	static const char *const specs[] = {
		"CET-1CEST,M3.5.0,M10.5.0/3",
		"IST-5:30",
		"<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
		"<-02>2<-01>,M3.5.0/-1,M10.5.0/0",              /* v3: negative times */
		"IST-1GMT0,M10.5.0,M3.5.0/1",                   /* negative DST */
		"AAA3BBB,J60/2,J300/2",                         /* Julian days without Feb 29 */
		"AAA3BBB,59/2,299/2",                           /* zero-based days */
		"<+0545>-5:45",
		"XXX-3:30:15YYY-4:30:15,M4.1.0/1:30:15,M9.5.6/23:59:59",
	};
	int64_t t[MAX_INSTANTS];
	bop__tz_t *us = NULL;

	/* glibc applies TZ strings from 1970 on, and without a rule it reads "posixrules",
	 * so the default rule is checked against known 2026 US changes instead. */
	ok(bop__tz_parse_posix(&us, "AAA5BBB", "test") == 0 &&
		bop__tz_offset(us, 1772953199) == -18000 && bop__tz_offset(us, 1772953200) == -14400 &&
		bop__tz_offset(us, 1793512799) == -14400 && bop__tz_offset(us, 1793512800) == -18000,
		"a TZ string without rules uses the US rules (2026-03-08, 2026-11-01)");
	bop__tz_free(us);
	for (size_t i = 0; i < BOP_ARRAY_SIZE(specs); i++) {
		bop__tz_t *tz = NULL;

		if (bop__tz_parse_posix(&tz, specs[i], "test") < 0) {
			ok(0, "POSIX TZ '%s' parses: %s", specs[i], bop_error_last());
			continue;
		}
		cross_check(specs[i], tz, specs[i], t, instants(tz, t, 0));
		bop__tz_free(tz);
	}
	static const char *const bad[] = { "", "AB1", "CET", "CET-25", "CET-1CEST,M13.1.0,M10.5.0",
		"CET-1CEST,M3.6.0,M10.5.0", "CET-1CEST,M3.5.7,M10.5.0", "CET-1CEST,J0,J100",
		"CET-1CEST,366,100", "CET-1CEST,M3.5.0/168,M10.5.0", "CET-1CEST,M3.5.0",
		"CET-1CEST,M3.5.0,M10.5.0,", "<AB>1", "<ABC1", "CET-1:60", "CET-1CEST-27" };
	for (size_t i = 0; i < BOP_ARRAY_SIZE(bad); i++) {
		bop__tz_t *tz = NULL;

		ok(bop__tz_parse_posix(&tz, bad[i], "test") == BOP_EINVAL && tz == NULL,
			"bad POSIX TZ '%s' is refused", bad[i]);
	}
}

static int read_zone(const char *name, char **buf, size_t *len)
{
	char path[256];

	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", name);
	return bop__read_file(path, buf, len, BOP__TZ_MAX_FILE);
}

/* Every truncation fails with BOP_EFORMAT; every single-byte change either parses into
 * a zone that answers or fails cleanly (the sanitizer build checks the "cleanly"). */
static void check_malformed(void)
{
	char *buf = NULL, *copy;
	size_t len = 0, bad_trunc = 0, parsed = 0, unclean = 0, bad_span = 0;
	bop__tz_t *tz = NULL;

	if (read_zone("Europe/Berlin", &buf, &len) < 0) {
		skip(9, "no Europe/Berlin: %s", bop_error_last());
		return;
	}
	ok(bop__tz_parse(&tz, buf, len, "Europe/Berlin") == 0, "the real file parses");
	bop__tz_free(tz);
	for (size_t n = 0; n < len; n++) {
		tz = NULL;
		if (bop__tz_parse(&tz, buf, n, "cut") != BOP_EFORMAT || tz)
			bad_trunc++;
		bop__tz_free(tz);
	}
	ok(bad_trunc == 0, "all %zu truncations are BOP_EFORMAT", len);
	copy = malloc(len);
	for (size_t i = 0; i < len; i++) {
		for (int v = 0; v < 256; v += 51) {
			static const int64_t probes[] = { 1774746000, INT64_MAX, INT64_MIN };
			int ret;

			memcpy(copy, buf, len);
			copy[i] = (char)(copy[i] ^ (v ? v : 0x80));
			tz = NULL;
			ret = bop__tz_parse(&tz, copy, len, "flipped");
			if (ret == 0 && tz) {
				parsed++;
				/* the span of an instant contains it, with an offset in range */
				for (size_t p = 0; p < sizeof(probes) / sizeof(probes[0]); p++) {
					int64_t s, e;
					int32_t o;

					bop__tz_span(tz, probes[p], &s, &e, &o);
					if (s > probes[p] || (e <= probes[p] && e != INT64_MAX) ||
					    o < BOP__TZ_MIN_OFFSET || o > BOP__TZ_MAX_OFFSET)
						bad_span++;
				}
			} else if (ret != BOP_EFORMAT || tz) {
				unclean++;
			}
			bop__tz_free(tz);
		}
	}
	is_int(unclean, 0, "single-byte changes that do not parse fail with BOP_EFORMAT and no zone");
	is_int(bad_span, 0, "zones parsed from changed files answer with spans that hold the instant");
	ok(parsed > 0 && parsed < len * 6, "%zu byte changes: %zu parse, the rest fail", len * 6,
		parsed);
	free(copy);

	memcpy(buf, "TZiX", 4);
	ok(bop__tz_parse(&tz, buf, len, "x") == BOP_EFORMAT &&
		strstr(bop_error_last(), "time zone file for 'x' is malformed: no TZif magic"),
		"bad magic: %s", bop_error_last());
	memcpy(buf, "TZif5", 5);
	ok(bop__tz_parse(&tz, buf, len, "x") == BOP_EFORMAT &&
		strstr(bop_error_last(), "unknown version"), "version 5: %s", bop_error_last());
	buf[4] = '2';
	buf[35] = (char)0xff;           /* timecnt of the v1 header */
	ok(bop__tz_parse(&tz, buf, len, "x") == BOP_EFORMAT, "huge transition count: %s",
		bop_error_last());
	free(buf);

	if (read_zone("right/UTC", &buf, &len) == 0) {
		ok(bop__tz_parse(&tz, buf, len, "right/UTC") == BOP_ENOTSUPPORTED &&
			strstr(bop_error_last(), "leap seconds"), "leap-second zones are refused: %s",
			bop_error_last());
		free(buf);
	} else {
		skip(1, "no right/UTC in this tzdata");
	}
}

/* A v1-only file built by hand: one transition to +01:00 at 1000000000. */
static void check_v1(void)
{
	static const unsigned char v1[] = {
		'T', 'Z', 'i', 'f', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 8,
		0x3b, 0x9a, 0xca, 0x00,                 /* 1000000000 */
		1,
		0, 0, 0, 0, 0, 0,                       /* UTC, std, "UTC" */
		0, 0, 0x0e, 0x10, 0, 4,                 /* +3600, std, "ONE" */
		'U', 'T', 'C', 0, 'O', 'N', 'E', 0,
	};
	bop__tz_t *tz = NULL;

	ok(bop__tz_parse(&tz, v1, sizeof(v1), "v1") == 0 &&
		bop__tz_offset(tz, 999999999) == 0 && bop__tz_offset(tz, 1000000000) == 3600 &&
		bop__tz_offset(tz, 4000000000) == 3600, "a version 1 file: %s", bop_error_last());
	bop__tz_free(tz);
}

static void check_tzdir(void)
{
	char path[128], *buf = NULL;
	bop_schedule_t *s = NULL;
	size_t len;
	int64_t next = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/Test", tmpdir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/Test/Garbage", tmpdir);
	f = fopen(path, "w");
	fputs("this is not a zone file\n", f);
	fclose(f);
	if (read_zone("Asia/Kolkata", &buf, &len) == 0) {
		snprintf(path, sizeof(path), "%s/Test/Kolkata", tmpdir);
		f = fopen(path, "w");
		fwrite(buf, 1, len, f);
		fclose(f);
		free(buf);
	}
	setenv("TZDIR", tmpdir, 1);
	ok(bop_schedule_parse(&s, "0 9 * * *", "Test/Garbage") == BOP_EFORMAT &&
		strstr(bop_error_last(), "time zone file for 'Test/Garbage' is malformed"),
		"TZDIR: a garbage zone file is BOP_EFORMAT: %s", bop_error_last());
	ok(bop_schedule_parse(&s, "0 9 * * *", "Test/Kolkata") == 0 &&
		bop_schedule_next(s, &next, 1767225600) == 0 && next == 1767238200,
		"TZDIR: a zone from TZDIR is used");
	bop_schedule_free(s);
	s = NULL;
	ok(bop_schedule_parse(&s, "0 9 * * *", "Europe/Berlin") == BOP_ENOTFOUND &&
		strstr(bop_error_last(), tmpdir), "TZDIR: only TZDIR is searched: %s",
		bop_error_last());
	unsetenv("TZDIR");
}

static void check_local(void)
{
	bop_schedule_t *s = NULL;
	int64_t next = 0;

	setenv("TZ", ":Europe/Berlin", 1);
	ok(bop_schedule_parse(&s, "0 9 * * *", "Local") == 0 &&
		bop_schedule_next(s, &next, 1767225600) == 0 && next == 1767254400 &&
		strcmp(bop_schedule_time_zone(s), "Local") == 0,
		"Local with TZ=:Europe/Berlin: %s", bop_error_last());
	bop_schedule_free(s);
	s = NULL;
	setenv("TZ", "IST-5:30", 1);
	ok(bop_schedule_parse(&s, "0 9 * * *", "Local") == 0 &&
		bop_schedule_next(s, &next, 1767225600) == 0 && next == 1767238200,
		"Local with TZ=IST-5:30 (a POSIX string)");
	bop_schedule_free(s);
	s = NULL;
	setenv("TZ", "Mars/Olympus", 1);
	ok(bop_schedule_parse(&s, "0 9 * * *", "Local") == BOP_EINVAL,
		"Local with an unknown TZ: %s", bop_error_last());
	unsetenv("TZ");
	ok(bop_schedule_parse(&s, "0 9 * * *", "Local") == 0, "Local from /etc/localtime "
		"(or UTC without it): %s", bop_error_last());
	bop_schedule_free(s);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/bop-tz-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	bop_log_set_level(BOP_LOG_OFF);
	if (have_date()) {
		check_zones();
		check_posix();
	} else {
		skip(1, "the date command is missing: no cross-check with the system");
	}
	check_malformed();
	check_v1();
	check_tzdir();
	check_local();
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			diag("cannot remove %s", tmpdir);
	}
	return done_testing();
}
