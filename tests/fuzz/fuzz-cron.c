/* Arbitrary bytes as a cron expression (with an optional CRON_TZ=/TZ= zone), as a
 * BackupSchedule's spec.schedule or a runner's schedule reaches the parser. When it
 * parses, the next fire times are walked a few steps from a start time chosen by the
 * input's size, and must agree with each other: each is later than the one before,
 * asking from one second before a fire time gives that fire time again,
 * bop_schedule_due() over the walked span picks the last of them and counts them all,
 * and each formats. */
#include <stdlib.h>
#include <string.h>

#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define STEPS 6

static const int64_t starts[] = {
	1767225600,             /* 2026-01-01T00:00:00Z */
	1774744200,             /* 2026-03-29T00:30:00Z: Europe's spring change */
	1792277999,             /* 2026-10-18T00:59:59Z */
	1793494800,             /* 2026-10-25T01:00:00Z: Europe's autumn change */
	951782400,              /* 2000-02-29T00:00:00Z */
	0,
	-62135596800,           /* 0001-01-01T00:00:00Z, the first supported second */
	253402300000,           /* late in 9999 */
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bop_schedule_t *s = NULL;
	int64_t after, t, fires[STEPS], run = 0;
	uint64_t missed = 0;
	char *expr, buf[64];
	size_t n = 0;
	int ret;

	if (size > 2048)
		return 0;
	bop_log_set_level(BOP_LOG_OFF);
	/* the input's size picks the start (so the seeds are plain cron lines) */
	after = starts[size % (sizeof(starts) / sizeof(starts[0]))] + (int64_t)(size % 7) * 1799;
	expr = malloc(size + 1);
	if (!expr)
		return 0;
	memcpy(expr, data, size);
	expr[size] = '\0';
	ret = bop_schedule_parse(&s, expr, NULL);
	if ((ret == 0) != (s != NULL) || ret > 0 || (ret < 0 && !bop_error_last()))
		abort();
	if (!s) {
		free(expr);
		return 0;
	}
	if (strcmp(bop_schedule_expression(s), expr) || !bop_schedule_time_zone(s))
		abort();
	for (t = after; n < STEPS; n++) {
		int64_t again;

		ret = bop_schedule_next(s, &fires[n], t);
		if (ret == BOP_ENOTFOUND || ret == BOP_EINVAL)
			break;
		if (ret != 0 || fires[n] <= t)
			abort();
		if (bop_schedule_next(s, &again, fires[n] - 1) != 0 || again != fires[n])
			abort();
		if (bop_schedule_format_time(s, buf, sizeof(buf), fires[n]) != 0)
			abort();
		t = fires[n];
	}
	if (n > 0) {
		ret = bop_schedule_due(s, &run, &missed, after, fires[n - 1], -1);
		if (ret != 1 || run != fires[n - 1] || missed != n)
			abort();
		ret = bop_schedule_due(s, &run, &missed, after, fires[0] - 1, -1);
		if (ret != 0 || run != 0 || missed != 0)
			abort();
	}
	bop_schedule_free(s);
	free(expr);
	return 0;
}
