/*
 * Retry delays for every client of the library (the Kubernetes client, its informers and
 * leader election, S3): an exponential step from a base, capped, with jitter so that many
 * clients do not come back in lockstep, and a server's Retry-After taking precedence.
 */
#ifndef BOP_UTIL_BACKOFF_H
#define BOP_UTIL_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

typedef struct bop__backoff {
	int64_t base_ms;        /* the step of the first retry; doubled for each retry after */
	int64_t cap_ms;         /* no step, and no Retry-After, waits longer than this */
	double jitter;          /* a delay is drawn from [step * (1 - jitter), step]:
	                         * 1 is full jitter, 0 none */
	int max_tries;          /* bop__backoff_wait(): tries in all, the first included */
	int64_t max_ms;         /* bop__backoff_wait(): time from the first try to the last */
} bop__backoff_t;

/* The delay before the retry that follows `attempt` failed tries (1 for the first retry):
 * min(cap, base * 2^(attempt-1)) with the policy's jitter. A Retry-After of
 * `retry_after_ms` > 0 wins over the computed delay (still at most the cap). */
int64_t bop__backoff_delay(const bop__backoff_t *b, int attempt, int64_t retry_after_ms);

/* bop__backoff_delay() with the random draw given: 0 gives the shortest delay of the
 * range, UINT32_MAX the longest (for tests). */
int64_t bop__backoff_delay_r(const bop__backoff_t *b, int attempt, int64_t retry_after_ms,
	uint32_t r);

/* For a retry loop whose first try began at `start_ms` (bop__now_ms()) and whose try number
 * `attempt` just failed with the current error: when max_tries and max_ms allow one more
 * try, logs "<error>; retrying in N s (try n of m)" as a warning of `component`, sleeps
 * the delay and returns true; otherwise returns false at once. */
bool bop__backoff_wait(const bop__backoff_t *b, int attempt, int64_t start_ms,
	int64_t retry_after_ms, const char *component);

/* A Retry-After header's value in milliseconds: delta-seconds ("120") or an HTTP-date
 * relative to `now`; 0 when absent (NULL), in the past or not understood. */
int64_t bop__retry_after_ms(const char *value, time_t now);

/* 32 random bits (OpenSSL's generator; the clock if that fails). */
uint32_t bop__random_u32(void);

#endif
