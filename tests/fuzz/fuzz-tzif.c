/* Arbitrary bytes as a TZif time zone file: parse, and when it parses, every offset span
 * asked for must contain the instant and have an offset in the allowed range; schedules
 * are evaluated against it through the span walk the cron code uses. */
#include <stdlib.h>
#include <string.h>

#include "fuzz-common.h"
#include "internal.h"
#include "schedule/tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_span(const bop__tz_t *tz, int64_t t)
{
	int64_t start, end;
	int32_t off;

	bop__tz_span(tz, t, &start, &end, &off);
	if (start > t || (end <= t && end != INT64_MAX) || off < BOP__TZ_MIN_OFFSET ||
	    off > BOP__TZ_MAX_OFFSET)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int64_t probes[] = { INT64_MIN, -62135596800, -1, 0, 1, 1774746000,
		4102444800, 253402300799, INT64_MAX };
	bop__tz_t *tz = NULL;

	bop_log_set_level(BOP_LOG_OFF);
	if (bop__tz_parse(&tz, data, size, "fuzz") == 0) {
		for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
			check_span(tz, probes[i]);
		/* Walk a few spans forward from 2026, as the schedule search does. */
		for (int64_t t = 1767225600, i = 0; i < 16; i++) {
			int64_t start, end;
			int32_t off;

			bop__tz_span(tz, t, &start, &end, &off);
			if (end == INT64_MAX)
				break;
			check_span(tz, end);
			t = end;
		}
	}
	bop__tz_free(tz);
	return 0;
}
