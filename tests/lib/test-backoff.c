/* util/backoff.c: the one retry delay of the Kubernetes client, its informers, leader
 * election, the work queue and S3 (issue 9 item 5: one backoff with jitter). */
#include "internal.h"
#include "util/backoff.h"
#include "tap.h"

#include <stdint.h>
#include <time.h>

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void growth_and_cap(void)
{
	const bop__backoff_t b = { .base_ms = 100, .cap_ms = 1000, .jitter = 0 };
	const int64_t want[] = { 100, 200, 400, 800, 1000, 1000 };

	for (int a = 1; a <= 6; a++)
		ok(bop__backoff_delay(&b, a, 0) == want[a - 1],
			"growth without jitter: try %d waits %lld ms (base 100 doubled, cap 1000)",
			a + 1, (long long)want[a - 1]);
	is_int(bop__backoff_delay(&b, 64, 0), 1000, "attempt 64 does not overflow past the cap");
	is_int(bop__backoff_delay(&b, 100000, 0), 1000, "attempt 100000 gives the cap");
	is_int(bop__backoff_delay(&b, 0, 0), 100, "attempt 0 counts as the first retry");
}

/* Every draw of `b` at `attempt` lies in [lo, hi], and draws spread over the range. */
static void draws(const bop__backoff_t *b, int attempt, int64_t lo, int64_t hi,
	const char *what)
{
	int64_t min = INT64_MAX, max = INT64_MIN;

	for (int i = 0; i < 4000; i++) {
		int64_t d = bop__backoff_delay(b, attempt, 0);

		min = d < min ? d : min;
		max = d > max ? d : max;
	}
	ok(min >= lo && max <= hi, "%s: 4000 delays within [%lld, %lld] (saw %lld..%lld)", what,
		(long long)lo, (long long)hi, (long long)min, (long long)max);
	ok(min < lo + (hi - lo) / 4 && max > hi - (hi - lo) / 4,
		"%s: the delays spread over the range (saw %lld..%lld)", what, (long long)min,
		(long long)max);
}

static void jitter(void)
{
	const bop__backoff_t full = { .base_ms = 200, .cap_ms = 10000, .jitter = 1.0 };
	const bop__backoff_t quarter = { .base_ms = 500, .cap_ms = 30000, .jitter = 0.25 };
	const bop__backoff_t leader = { .base_ms = 6000, .cap_ms = 6000, .jitter = 1.0 / 6 };

	is_int(bop__backoff_delay_r(&full, 3, 0, 0), 0, "full jitter: the lowest draw is 0");
	is_int(bop__backoff_delay_r(&full, 3, 0, UINT32_MAX), 800,
		"full jitter: the highest draw is the step (200 * 2^2)");
	draws(&full, 3, 0, 800, "full jitter at try 3");
	draws(&full, 20, 0, 10000, "full jitter past the cap");
	is_int(bop__backoff_delay_r(&quarter, 2, 0, 0), 750, "25% jitter: the lowest is 3/4 of the step");
	is_int(bop__backoff_delay_r(&quarter, 2, 0, UINT32_MAX), 1000,
		"25% jitter: the highest is the step");
	draws(&quarter, 2, 750, 1000, "25% jitter");
	is_int(bop__backoff_delay_r(&leader, 1, 0, 0), 5000,
		"leader retry (5 s period): never sooner than the period");
	is_int(bop__backoff_delay_r(&leader, 1, 0, UINT32_MAX), 6000,
		"leader retry (5 s period): at most 20% later");
}

static void retry_after(void)
{
	const bop__backoff_t b = { .base_ms = 100, .cap_ms = 10000, .jitter = 1.0 };
	time_t now = time(NULL);
	char date[64];
	struct tm tm;
	time_t later = now + 30;

	is_int(bop__backoff_delay_r(&b, 1, 3000, 0), 3000, "a Retry-After of 3 s wins over a 0-100 ms draw");
	is_int(bop__backoff_delay_r(&b, 7, 1000, UINT32_MAX), 1000,
		"a Retry-After shorter than the step wins too");
	is_int(bop__backoff_delay_r(&b, 1, 600000, 0), 10000, "a Retry-After of 10 min is capped");
	is_int(bop__backoff_delay_r(&b, 1, 0, UINT32_MAX), 100, "no Retry-After: the computed delay");

	is_int(bop__retry_after_ms("120", now), 120000, "Retry-After: 120 is 120 s");
	is_int(bop__retry_after_ms(" 5\r\n", now), 5000, "Retry-After: blanks around are ignored");
	is_int(bop__retry_after_ms("0", now), 0, "Retry-After: 0 means no wait");
	is_int(bop__retry_after_ms("5x", now), 0, "Retry-After: trailing garbage is not understood");
	is_int(bop__retry_after_ms("-5", now), 0, "Retry-After: a negative value is not understood");
	is_int(bop__retry_after_ms("soon", now), 0, "Retry-After: words are not understood");
	is_int(bop__retry_after_ms(NULL, now), 0, "Retry-After: absent");
	is_int(bop__retry_after_ms("99999999999999999999999", now), 86400000,
		"Retry-After: a huge value does not overflow (a day at most)");
	gmtime_r(&later, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	is_int(bop__retry_after_ms(date, now), 30000, "Retry-After: an HTTP-date 30 s ahead");
	later = now - 30;
	gmtime_r(&later, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	is_int(bop__retry_after_ms(date, now), 0, "Retry-After: an HTTP-date in the past");
}

static void wait_budget(void)
{
	const bop__backoff_t b = { .base_ms = 30, .cap_ms = 30, .jitter = 0, .max_tries = 3,
		.max_ms = 1000 };
	const bop__backoff_t tight = { .base_ms = 500, .cap_ms = 500, .jitter = 0, .max_tries = 9,
		.max_ms = 100 };
	const bop__backoff_t polite = { .base_ms = 10, .cap_ms = 10000, .jitter = 0,
		.max_tries = 5, .max_ms = 1000 };
	int64_t t0, start = bop__now_ms();

	bop__error(BOP_EIO, "test failure");
	t0 = mono_ms();
	ok(bop__backoff_wait(&b, 1, start, 0, "test"), "wait: try 2 of 3 is allowed");
	ok(mono_ms() - t0 >= 29, "wait: it slept the delay (%lld ms)", (long long)(mono_ms() - t0));
	t0 = mono_ms();
	ok(!bop__backoff_wait(&b, 3, start, 0, "test"), "wait: no try 4 of 3");
	ok(mono_ms() - t0 < 20, "wait: refusing does not sleep");
	ok(!bop__backoff_wait(&tight, 1, bop__now_ms(), 0, "test"),
		"wait: a delay past the time budget is refused");
	ok(!bop__backoff_wait(&polite, 1, bop__now_ms(), 5000, "test"),
		"wait: a Retry-After past the time budget is refused, not cut short");
}

int main(void)
{
	growth_and_cap();
	jitter();
	retry_after();
	wait_budget();
	return done_testing();
}
