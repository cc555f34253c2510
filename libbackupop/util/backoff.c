/* Retry delays: exponential steps with a cap, jitter, and the server's Retry-After. */
#include "internal.h"
#include "util/backoff.h"

#include <curl/curl.h>
#include <openssl/rand.h>

/* Longest Retry-After taken from a server before the cap applies (a day). */
#define RETRY_AFTER_MAX_MS (86400LL * 1000)

uint32_t bop__random_u32(void)
{
	uint32_t r = 0;

	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (uint32_t)bop__now_ms();
	return r;
}

static int64_t step_ms(const bop__backoff_t *b, int attempt)
{
	int64_t cap = b->cap_ms > 0 ? b->cap_ms : 1;
	int64_t step = b->base_ms > 0 ? b->base_ms : 1;

	for (int i = 1; i < attempt && step < cap; i++)
		step *= 2;
	return step < cap ? step : cap;
}

int64_t bop__backoff_delay_r(const bop__backoff_t *b, int attempt, int64_t retry_after_ms,
	uint32_t r)
{
	int64_t cap = b->cap_ms > 0 ? b->cap_ms : 1;
	int64_t step, lo;
	double jitter = b->jitter < 0 ? 0 : b->jitter > 1 ? 1 : b->jitter;

	if (retry_after_ms > 0)
		return retry_after_ms < cap ? retry_after_ms : cap;
	step = step_ms(b, attempt);
	lo = step - (int64_t)((double)step * jitter);
	/* scale the draw onto [lo, step]: 0 -> lo, UINT32_MAX -> step */
	return lo + (int64_t)(((uint64_t)r * (uint64_t)(step - lo + 1)) >> 32);
}

int64_t bop__backoff_delay(const bop__backoff_t *b, int attempt, int64_t retry_after_ms)
{
	return bop__backoff_delay_r(b, attempt, retry_after_ms, bop__random_u32());
}

bool bop__backoff_wait(const bop__backoff_t *b, int attempt, int64_t start_ms,
	int64_t retry_after_ms, const char *component)
{
	struct timespec ts;
	int64_t delay;

	if (attempt >= b->max_tries)
		return false;
	delay = bop__backoff_delay(b, attempt, retry_after_ms);
	if (bop__now_ms() + delay - start_ms > b->max_ms)
		return false;
	bop__log(BOP_LOG_WARN, component, "%s; retrying in %.1f s (try %d of %d)",
		bop_error_last(), (double)delay / 1000.0, attempt + 1, b->max_tries);
	ts.tv_sec = (time_t)(delay / 1000);
	ts.tv_nsec = (long)(delay % 1000) * 1000000;
	while (nanosleep(&ts, &ts) < 0)
		;
	return true;
}

int64_t bop__retry_after_ms(const char *value, time_t now)
{
	int64_t ms = 0;
	const char *p = value;
	time_t when;

	if (!value)
		return 0;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p >= '0' && *p <= '9') {
		for (; *p >= '0' && *p <= '9'; p++) {
			ms = ms * 10 + (*p - '0') * 1000;
			if (ms > RETRY_AFTER_MAX_MS)
				ms = RETRY_AFTER_MAX_MS;
		}
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		return *p ? 0 : ms;
	}
	when = curl_getdate(p, NULL);
	if (when == (time_t)-1 || when <= now)
		return 0;
	ms = ((int64_t)when - (int64_t)now) * 1000;
	return ms < RETRY_AFTER_MAX_MS ? ms : RETRY_AFTER_MAX_MS;
}
