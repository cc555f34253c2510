/*
 * The work queue: de-duplication, a key re-added while processing comes back once after
 * done() and is never handed to two workers, add_after ordering and "earlier wins",
 * rate-limited backoff that doubles and resets on forget, the token bucket, get() with a
 * timeout, shutdown waking every waiter, and many threads adding and working at once.
 */
#include "tap.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backupop.h"

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bop_workqueue_t *new_queue(unsigned int base, unsigned int max, unsigned int qps,
	unsigned int burst)
{
	bop_workqueue_options_t o = BOP_WORKQUEUE_OPTIONS_INIT;
	bop_workqueue_t *q = NULL;

	o.base_delay_ms = base;
	o.max_delay_ms = max;
	o.qps = qps;
	o.burst = burst;
	if (bop_workqueue_new(&q, &o) < 0) {
		printf("Bail out! cannot create a work queue: %s\n", bop_error_last());
		exit(1);
	}
	return q;
}

/* The next key, or "" on failure (with the code in *ret). */
static char *next(bop_workqueue_t *q, int timeout_ms, int *ret)
{
	static char buf[128];
	char *k = NULL;

	*ret = bop_workqueue_get(q, &k, timeout_ms);
	snprintf(buf, sizeof(buf), "%s", k ? k : "");
	bop_free(k);
	return buf;
}

static void test_dedup(void)
{
	bop_workqueue_t *q = new_queue(0, 0, 0, 0);
	int ret;

	bop_workqueue_add(q, "a");
	bop_workqueue_add(q, "b");
	bop_workqueue_add(q, "a");
	is_int(bop_workqueue_len(q), 2, "adding a queued key again does not queue it twice");
	is_str(next(q, 0, &ret), "a", "keys come out first in, first out");
	is_str(next(q, 0, &ret), "b", "then the next");
	is_int(bop_workqueue_get(q, &(char *){ NULL }, 0), BOP_ETIMEOUT,
		"an empty queue times out");
	bop_workqueue_done(q, "a");
	bop_workqueue_done(q, "b");
	is_int(bop_workqueue_len(q), 0, "done on keys that were not re-added queues nothing");
	bop_workqueue_free(q);
}

static void test_processing(void)
{
	bop_workqueue_t *q = new_queue(0, 0, 0, 0);
	int ret;

	bop_workqueue_add(q, "x");
	is_str(next(q, 0, &ret), "x", "a worker takes x");
	bop_workqueue_add(q, "x");
	bop_workqueue_add(q, "x");
	is_int(bop_workqueue_len(q), 0, "x added while processing is not handed out");
	next(q, 50, &ret);
	is_int(ret, BOP_ETIMEOUT, "a second worker does not get x meanwhile");
	bop_workqueue_done(q, "x");
	is_int(bop_workqueue_len(q), 1, "on done, x is queued again, once");
	is_str(next(q, 0, &ret), "x", "and handed out again");
	bop_workqueue_done(q, "x");
	is_int(bop_workqueue_len(q), 0, "then the queue is empty");
	bop_workqueue_free(q);
}

static void test_add_after(void)
{
	bop_workqueue_t *q = new_queue(0, 0, 0, 0);
	long long t0 = now_ms(), t;
	int ret;

	bop_workqueue_add_after(q, "late", 300);
	bop_workqueue_add_after(q, "early", 100);
	bop_workqueue_add_after(q, "mid", 200);
	bop_workqueue_add_after(q, "mid", 5000);
	is_int(bop_workqueue_len(q), 0, "delayed keys are not counted until due");
	is_str(next(q, 2000, &ret), "early", "the earliest due comes first");
	t = now_ms() - t0;
	ok(t >= 95 && t < 250, "after its delay (%lld ms)", t);
	is_str(next(q, 2000, &ret), "mid", "then the next (a later add_after did not delay it)");
	is_str(next(q, 2000, &ret), "late", "then the last");
	t = now_ms() - t0;
	ok(t >= 295 && t < 800, "at its time (%lld ms)", t);
	bop_workqueue_done(q, "early");
	bop_workqueue_done(q, "mid");
	bop_workqueue_done(q, "late");

	bop_workqueue_add_after(q, "k", 10000);
	bop_workqueue_add_after(q, "k", 50);
	t0 = now_ms();
	is_str(next(q, 2000, &ret), "k", "an earlier add_after of a waiting key wins");
	ok(now_ms() - t0 < 1000, "it came after the earlier delay (%lld ms)", now_ms() - t0);
	bop_workqueue_done(q, "k");
	bop_workqueue_add_after(q, "z", 0);
	is_int(bop_workqueue_len(q), 1, "a zero delay queues at once");
	bop_workqueue_free(q);
}

static void test_backoff(void)
{
	bop_workqueue_t *q = new_queue(20, 200, 1000, 1000);
	long long t0, t;
	int ret;

	for (int i = 0; i < 4; i++) {
		t0 = now_ms();
		bop_workqueue_add_rate_limited(q, "f");
		is_str(next(q, 2000, &ret), "f", "a rate-limited key comes back");
		t = now_ms() - t0;
		ok(t >= (20 << i) - 5 && t < (20 << i) + 150, "after %d ms backoff (%lld ms)",
			20 << i, t);
		bop_workqueue_done(q, "f");
	}
	is_int(bop_workqueue_failures(q, "f"), 4, "four failures are counted");
	for (int i = 0; i < 4; i++)
		bop_workqueue_add_rate_limited(q, "g");
	is_int(bop_workqueue_failures(q, "g"), 4, "failures of another key count separately");
	is_str(next(q, 2000, &ret), "g", "repeated rate-limited adds come back once");
	bop_workqueue_done(q, "g");
	bop_workqueue_forget(q, "g");
	is_int(bop_workqueue_failures(q, "f"), 4, "forget resets only its key");
	bop_workqueue_forget(q, "f");
	is_int(bop_workqueue_failures(q, "f"), 0, "forget resets the count");
	t0 = now_ms();
	bop_workqueue_add_rate_limited(q, "f");
	is_str(next(q, 2000, &ret), "f", "after forget");
	ok(now_ms() - t0 < 100, "the backoff starts again at the base (%lld ms)", now_ms() - t0);
	bop_workqueue_done(q, "f");
	for (int i = 0; i < 10; i++)
		bop_workqueue_add_rate_limited(q, "cap");
	next(q, 2000, &ret);
	bop_workqueue_done(q, "cap");
	t0 = now_ms();
	bop_workqueue_add_rate_limited(q, "cap");
	is_str(next(q, 2000, &ret), "cap", "a key with many failures");
	t = now_ms() - t0;
	ok(t >= 195 && t < 400, "waits the maximum delay, not 20 ms * 2^10 (%lld ms)", t);
	bop_workqueue_done(q, "cap");
	bop_workqueue_free(q);
}

static void test_bucket(void)
{
	bop_workqueue_t *q = new_queue(1, 1, 20, 2);
	char key[16];
	long long t0 = now_ms();
	int ret, got = 0;

	for (int i = 0; i < 6; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		bop_workqueue_add_rate_limited(q, key);
	}
	while (got < 6 && next(q, 2000, &ret)[0]) {
		got++;
		if (got == 2)
			ok(now_ms() - t0 < 60, "the burst of 2 comes at once (%lld ms)", now_ms() - t0);
	}
	is_int(got, 6, "all six rate-limited keys came");
	ok(now_ms() - t0 >= 180, "the other four waited for tokens at 20/s (%lld ms)",
		now_ms() - t0);
	bop_workqueue_free(q);
}

typedef struct waiter {
	bop_workqueue_t *q;
	int ret;
} waiter_t;

static void *wait_one(void *arg)
{
	waiter_t *w = arg;
	char *k = NULL;

	w->ret = bop_workqueue_get(w->q, &k, -1);
	bop_free(k);
	return NULL;
}

static void test_shutdown(void)
{
	bop_workqueue_t *q = new_queue(0, 0, 0, 0);
	waiter_t w[3];
	pthread_t t[3];
	long long t0;
	int ret;

	for (int i = 0; i < 3; i++) {
		w[i] = (waiter_t){ q, 1 };
		pthread_create(&t[i], NULL, wait_one, &w[i]);
	}
	usleep(100000);
	t0 = now_ms();
	bop_workqueue_shutdown(q);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	ok(now_ms() - t0 < 500, "shutdown wakes every waiter at once");
	ok(w[0].ret == BOP_ECANCELED && w[1].ret == BOP_ECANCELED && w[2].ret == BOP_ECANCELED,
		"each gets BOP_ECANCELED");
	bop_workqueue_add(q, "late");
	is_int(bop_workqueue_len(q), 0, "adds after shutdown are ignored");
	next(q, 0, &ret);
	is_int(ret, BOP_ECANCELED, "get after shutdown is BOP_ECANCELED");
	bop_workqueue_free(q);
}

#define NKEYS 50
#define NWORKERS 8

typedef struct shared {
	bop_workqueue_t *q;
	pthread_mutex_t lock;
	int busy[NKEYS];
	int processed[NKEYS];
	int overlap;
} shared_t;

static void *worker(void *arg)
{
	shared_t *s = arg;
	char *k = NULL;

	while (bop_workqueue_get(s->q, &k, -1) == 0) {
		int i = atoi(k + 1);

		pthread_mutex_lock(&s->lock);
		if (s->busy[i]++)
			s->overlap++;
		pthread_mutex_unlock(&s->lock);
		usleep(200);
		pthread_mutex_lock(&s->lock);
		s->busy[i]--;
		s->processed[i]++;
		pthread_mutex_unlock(&s->lock);
		bop_workqueue_done(s->q, k);
		bop_free(k);
	}
	return NULL;
}

static void *producer(void *arg)
{
	shared_t *s = arg;
	char key[16];

	for (int n = 0; n < 2000; n++) {
		snprintf(key, sizeof(key), "k%d", n % NKEYS);
		bop_workqueue_add(s->q, key);
		if (n % 100 == 0)
			usleep(500);
	}
	return NULL;
}

static void test_threads(void)
{
	shared_t s = { .q = new_queue(0, 0, 0, 0) };
	pthread_t w[NWORKERS], p[4];
	int all = 1, total = 0;

	pthread_mutex_init(&s.lock, NULL);
	for (int i = 0; i < NWORKERS; i++)
		pthread_create(&w[i], NULL, worker, &s);
	for (int i = 0; i < 4; i++)
		pthread_create(&p[i], NULL, producer, &s);
	for (int i = 0; i < 4; i++)
		pthread_join(p[i], NULL);
	for (int tries = 0; tries < 200 && bop_workqueue_len(s.q); tries++)
		usleep(10000);
	usleep(50000);
	bop_workqueue_shutdown(s.q);
	for (int i = 0; i < NWORKERS; i++)
		pthread_join(w[i], NULL);
	for (int i = 0; i < NKEYS; i++) {
		all &= s.processed[i] > 0;
		total += s.processed[i];
	}
	is_int(s.overlap, 0, "no key was ever handled by two workers at once");
	ok(all, "every key was processed");
	ok(total < 8000, "adds were coalesced: %d runs for 8000 adds", total);
	bop_workqueue_free(s.q);
	pthread_mutex_destroy(&s.lock);
}

int main(void)
{
	bop_workqueue_options_t bad = BOP_WORKQUEUE_OPTIONS_INIT;
	bop_workqueue_t *q = NULL;

	bad.version = 99;
	is_int(bop_workqueue_new(&q, &bad), BOP_EVERSION, "an unknown options version is refused");
	is_int(bop_workqueue_options_init(&bad, 99), BOP_EVERSION, "options_init refuses it too");
	is_int(bop_workqueue_options_init(&bad, BOP_WORKQUEUE_OPTIONS_VERSION), 0,
		"options_init fills the defaults");
	is_int(bad.version, BOP_WORKQUEUE_OPTIONS_VERSION, "with the version");
	test_dedup();
	test_processing();
	test_add_after();
	test_backoff();
	test_bucket();
	test_shutdown();
	test_threads();
	bop_workqueue_free(NULL);
	return done_testing();
}
