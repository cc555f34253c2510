/*
 * A rate-limited, de-duplicating work queue with the semantics of client-go's workqueue:
 * a key is "dirty" from add() until a worker takes it, and "processing" from get() until
 * done(); a key added while processing is queued again on done(), so no key is ever
 * handed to two workers at once and bursts of adds collapse into one. Delayed adds wait in
 * a min-heap ordered by due time; no timer thread is needed because every call moves the
 * due ones into the queue and get() sleeps at most until the earliest one is due.
 */
#include "k8s/k8s.h"
#include "util/backoff.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define F_DIRTY 1u
#define F_PROCESSING 2u
#define F_QUEUED 4u

typedef struct wq_item {
	char *key;
	struct wq_item *next;           /* hash chain */
	uint32_t hash;
	unsigned int flags;
	unsigned int failures;
	size_t heap_idx;                /* index + 1 in the heap; 0: not waiting */
	int64_t due_ms;                 /* monotonic */
} wq_item_t;

struct bop_workqueue {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* every key with state, by hash */
	wq_item_t **buckets;
	size_t nbuckets;
	size_t nitems;
	/* the queue: a ring of items */
	wq_item_t **ring;
	size_t ring_cap, ring_head, ring_len;
	/* delayed adds, a min-heap by due_ms */
	wq_item_t **heap;
	size_t heap_len, heap_cap;
	/* rate limiting */
	unsigned int base_delay_ms, max_delay_ms, qps, burst;
	double tokens;
	int64_t tokens_ms;
	bool shutdown;
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t hash_key(const char *key)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

/* ---- the key table ---- */

static wq_item_t *item_find(bop_workqueue_t *q, const char *key, uint32_t h)
{
	for (wq_item_t *it = q->buckets[h % q->nbuckets]; it; it = it->next)
		if (it->hash == h && !strcmp(it->key, key))
			return it;
	return NULL;
}

static void table_grow(bop_workqueue_t *q)
{
	size_t n = q->nbuckets * 2;
	wq_item_t **b = calloc(n, sizeof(*b));

	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < q->nbuckets; i++) {
		wq_item_t *it = q->buckets[i], *next;

		for (; it; it = next) {
			next = it->next;
			it->next = b[it->hash % n];
			b[it->hash % n] = it;
		}
	}
	free(q->buckets);
	q->buckets = b;
	q->nbuckets = n;
}

static wq_item_t *item_get(bop_workqueue_t *q, const char *key)
{
	uint32_t h = hash_key(key);
	wq_item_t *it = item_find(q, key, h);

	if (it)
		return it;
	it = bop__calloc(1, sizeof(*it));
	if (!it)
		return NULL;
	it->key = bop__strdup(key);
	if (!it->key) {
		free(it);
		return NULL;
	}
	it->hash = h;
	if (q->nitems >= q->nbuckets)
		table_grow(q);
	it->next = q->buckets[h % q->nbuckets];
	q->buckets[h % q->nbuckets] = it;
	q->nitems++;
	return it;
}

/* Frees an item that no longer carries any state. */
static void item_release(bop_workqueue_t *q, wq_item_t *it)
{
	wq_item_t **pp;

	if (it->flags || it->failures || it->heap_idx)
		return;
	for (pp = &q->buckets[it->hash % q->nbuckets]; *pp != it; pp = &(*pp)->next)
		;
	*pp = it->next;
	q->nitems--;
	free(it->key);
	free(it);
}

/* ---- the ring ---- */

static int ring_push(bop_workqueue_t *q, wq_item_t *it)
{
	if (q->ring_len == q->ring_cap) {
		size_t ncap = q->ring_cap ? q->ring_cap * 2 : 64;
		wq_item_t **r = malloc(ncap * sizeof(*r));

		if (!r)
			return bop__error_oom();
		for (size_t i = 0; i < q->ring_len; i++)
			r[i] = q->ring[(q->ring_head + i) % q->ring_cap];
		free(q->ring);
		q->ring = r;
		q->ring_cap = ncap;
		q->ring_head = 0;
	}
	q->ring[(q->ring_head + q->ring_len) % q->ring_cap] = it;
	q->ring_len++;
	it->flags |= F_QUEUED;
	return 0;
}

static wq_item_t *ring_pop(bop_workqueue_t *q)
{
	wq_item_t *it = q->ring[q->ring_head];

	q->ring_head = (q->ring_head + 1) % q->ring_cap;
	q->ring_len--;
	it->flags &= ~F_QUEUED;
	return it;
}

/* ---- the heap of delayed adds ---- */

static void heap_set(bop_workqueue_t *q, size_t i, wq_item_t *it)
{
	q->heap[i] = it;
	it->heap_idx = i + 1;
}

static void heap_up(bop_workqueue_t *q, size_t i)
{
	wq_item_t *it = q->heap[i];

	while (i > 0 && q->heap[(i - 1) / 2]->due_ms > it->due_ms) {
		heap_set(q, i, q->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(q, i, it);
}

static void heap_down(bop_workqueue_t *q, size_t i)
{
	wq_item_t *it = q->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= q->heap_len)
			break;
		if (c + 1 < q->heap_len && q->heap[c + 1]->due_ms < q->heap[c]->due_ms)
			c++;
		if (q->heap[c]->due_ms >= it->due_ms)
			break;
		heap_set(q, i, q->heap[c]);
		i = c;
	}
	heap_set(q, i, it);
}

static int heap_push(bop_workqueue_t *q, wq_item_t *it)
{
	if (q->heap_len == q->heap_cap) {
		size_t ncap = q->heap_cap ? q->heap_cap * 2 : 32;
		wq_item_t **h = realloc(q->heap, ncap * sizeof(*h));

		if (!h)
			return bop__error_oom();
		q->heap = h;
		q->heap_cap = ncap;
	}
	q->heap[q->heap_len] = it;
	heap_up(q, q->heap_len++);
	return 0;
}

static wq_item_t *heap_pop(bop_workqueue_t *q)
{
	wq_item_t *top = q->heap[0];

	top->heap_idx = 0;
	if (--q->heap_len) {
		q->heap[0] = q->heap[q->heap_len];
		heap_down(q, 0);
	}
	return top;
}

/* ---- queue operations (lock held) ---- */

static int add_locked(bop_workqueue_t *q, wq_item_t *it)
{
	if (it->flags & F_DIRTY)
		return 0;
	it->flags |= F_DIRTY;
	if (it->flags & F_PROCESSING)
		return 0;
	pthread_cond_signal(&q->cond);
	return ring_push(q, it);
}

/* Moves every delayed key that is due into the queue. */
static void promote_due(bop_workqueue_t *q, int64_t now)
{
	while (q->heap_len && q->heap[0]->due_ms <= now) {
		wq_item_t *it = heap_pop(q);

		if (add_locked(q, it) < 0)
			bop__log(BOP_LOG_ERROR, "k8s", "work queue: %s", bop_error_last());
		item_release(q, it);
	}
}

static int add_after_locked(bop_workqueue_t *q, const char *key, int64_t delay_ms)
{
	wq_item_t *it;
	int64_t due;
	int ret;

	if (q->shutdown)
		return 0;
	it = item_get(q, key);
	if (!it)
		return BOP_ENOMEM;
	if (delay_ms <= 0) {
		ret = add_locked(q, it);
		item_release(q, it);
		return ret;
	}
	due = mono_ms() + delay_ms;
	if (it->heap_idx) {
		if (due < it->due_ms) {
			it->due_ms = due;
			heap_up(q, it->heap_idx - 1);
		}
		return 0;
	}
	it->due_ms = due;
	ret = heap_push(q, it);
	if (ret < 0) {
		item_release(q, it);
		return ret;
	}
	/* a waiter may have to wake earlier now */
	pthread_cond_broadcast(&q->cond);
	return 0;
}

/* ---- API ---- */

BOP_EXTERN(int) bop_workqueue_options_init(bop_workqueue_options_t *opts, unsigned int version)
{
	const bop_workqueue_options_t defaults = BOP_WORKQUEUE_OPTIONS_INIT;

	if (!opts)
		return bop__error(BOP_EINVAL, "bop_workqueue_options_init: opts is NULL");
	if (BOP__VERSION_CHECK("bop_workqueue_options_t", NULL, version, WORKQUEUE_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	*opts = defaults;
	return 0;
}

BOP_EXTERN(int) bop_workqueue_new(bop_workqueue_t **out, const bop_workqueue_options_t *opts)
{
	const bop_workqueue_options_t defaults = BOP_WORKQUEUE_OPTIONS_INIT;
	pthread_condattr_t attr;
	bop_workqueue_t *q;

	if (!out)
		return bop__error(BOP_EINVAL, "bop_workqueue_new: out is NULL");
	*out = NULL;
	if (!opts)
		opts = &defaults;
	if (BOP__VERSION_CHECK("bop_workqueue_options_t", NULL, opts->version,
	    WORKQUEUE_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	q = bop__calloc(1, sizeof(*q));
	if (!q)
		return BOP_ENOMEM;
	q->nbuckets = 64;
	q->buckets = bop__calloc(q->nbuckets, sizeof(*q->buckets));
	if (!q->buckets) {
		free(q);
		return BOP_ENOMEM;
	}
	q->base_delay_ms = opts->base_delay_ms ? opts->base_delay_ms : 5;
	q->max_delay_ms = opts->max_delay_ms ? opts->max_delay_ms : 1000000;
	q->qps = opts->qps ? opts->qps : 10;
	q->burst = opts->burst ? opts->burst : 100;
	q->tokens = q->burst;
	q->tokens_ms = mono_ms();
	pthread_mutex_init(&q->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cond, &attr);
	pthread_condattr_destroy(&attr);
	*out = q;
	return 0;
}

BOP_EXTERN(int) bop_workqueue_add(bop_workqueue_t *q, const char *key)
{
	int ret;

	if (!q || !key)
		return bop__error(BOP_EINVAL, "bop_workqueue_add: queue and key are required");
	pthread_mutex_lock(&q->lock);
	ret = add_after_locked(q, key, 0);
	pthread_mutex_unlock(&q->lock);
	return ret;
}

BOP_EXTERN(int) bop_workqueue_add_after(bop_workqueue_t *q, const char *key, unsigned int delay_ms)
{
	int ret;

	if (!q || !key)
		return bop__error(BOP_EINVAL, "bop_workqueue_add_after: queue and key are required");
	pthread_mutex_lock(&q->lock);
	ret = add_after_locked(q, key, delay_ms);
	pthread_mutex_unlock(&q->lock);
	return ret;
}

/* The per-key backoff for the next rate-limited add (and counts the failure): base doubled
 * for each failure before, at most max, without jitter (as client-go's per-item limiter). */
static int64_t key_backoff(bop_workqueue_t *q, wq_item_t *it)
{
	const bop__backoff_t b = { .base_ms = q->base_delay_ms, .cap_ms = q->max_delay_ms };

	return bop__backoff_delay_r(&b, (int)++it->failures, 0, 0);
}

/* Takes a token from the bucket; the wait until it is there (0 when there was one). */
static int64_t bucket_delay(bop_workqueue_t *q)
{
	int64_t now = mono_ms();

	q->tokens += (double)(now - q->tokens_ms) * q->qps / 1000.0;
	if (q->tokens > q->burst)
		q->tokens = q->burst;
	q->tokens_ms = now;
	q->tokens -= 1.0;
	if (q->tokens >= 0)
		return 0;
	return (int64_t)(-q->tokens * 1000.0 / q->qps + 0.999);
}

BOP_EXTERN(int) bop_workqueue_add_rate_limited(bop_workqueue_t *q, const char *key)
{
	int64_t d, b;
	wq_item_t *it;
	int ret;

	if (!q || !key)
		return bop__error(BOP_EINVAL, "bop_workqueue_add_rate_limited: queue and key are required");
	pthread_mutex_lock(&q->lock);
	if (q->shutdown) {
		ret = 0;
		goto out;
	}
	it = item_get(q, key);
	if (!it) {
		ret = BOP_ENOMEM;
		goto out;
	}
	d = key_backoff(q, it);
	b = bucket_delay(q);
	ret = add_after_locked(q, key, d > b ? d : b);
out:
	pthread_mutex_unlock(&q->lock);
	return ret;
}

BOP_EXTERN(void) bop_workqueue_forget(bop_workqueue_t *q, const char *key)
{
	wq_item_t *it;

	if (!q || !key)
		return;
	pthread_mutex_lock(&q->lock);
	it = item_find(q, key, hash_key(key));
	if (it) {
		it->failures = 0;
		item_release(q, it);
	}
	pthread_mutex_unlock(&q->lock);
}

BOP_EXTERN(unsigned int) bop_workqueue_failures(bop_workqueue_t *q, const char *key)
{
	unsigned int n = 0;
	wq_item_t *it;

	if (!q || !key)
		return 0;
	pthread_mutex_lock(&q->lock);
	it = item_find(q, key, hash_key(key));
	if (it)
		n = it->failures;
	pthread_mutex_unlock(&q->lock);
	return n;
}

static void wait_until(bop_workqueue_t *q, int64_t until_ms)
{
	struct timespec ts;

	if (until_ms < 0) {
		pthread_cond_wait(&q->cond, &q->lock);
		return;
	}
	ts.tv_sec = until_ms / 1000;
	ts.tv_nsec = (until_ms % 1000) * 1000000;
	pthread_cond_timedwait(&q->cond, &q->lock, &ts);
}

static int get_locked(bop_workqueue_t *q, char **key, int timeout_ms)
{
	int64_t deadline = timeout_ms >= 0 ? mono_ms() + timeout_ms : -1, now, until;
	wq_item_t *it;

	for (;;) {
		if (q->shutdown)
			return bop__error(BOP_ECANCELED, "the work queue is shut down");
		now = mono_ms();
		promote_due(q, now);
		if (q->ring_len)
			break;
		if (deadline >= 0 && now >= deadline)
			return bop__error(BOP_ETIMEOUT, "no work came within %d ms", timeout_ms);
		until = deadline;
		if (q->heap_len && (until < 0 || q->heap[0]->due_ms < until))
			until = q->heap[0]->due_ms;
		wait_until(q, until);
	}
	it = ring_pop(q);
	*key = bop__strdup(it->key);
	if (!*key) {
		ring_push(q, it);
		return BOP_ENOMEM;
	}
	it->flags &= ~F_DIRTY;
	it->flags |= F_PROCESSING;
	return 0;
}

BOP_EXTERN(int) bop_workqueue_get(bop_workqueue_t *q, char **key, int timeout_ms)
{
	int ret;

	if (!q || !key)
		return bop__error(BOP_EINVAL, "bop_workqueue_get: queue and key are required");
	*key = NULL;
	pthread_mutex_lock(&q->lock);
	ret = get_locked(q, key, timeout_ms);
	pthread_mutex_unlock(&q->lock);
	return ret;
}

BOP_EXTERN(void) bop_workqueue_done(bop_workqueue_t *q, const char *key)
{
	wq_item_t *it;

	if (!q || !key)
		return;
	pthread_mutex_lock(&q->lock);
	it = item_find(q, key, hash_key(key));
	if (it && (it->flags & F_PROCESSING)) {
		it->flags &= ~F_PROCESSING;
		if ((it->flags & F_DIRTY) && !q->shutdown) {
			if (ring_push(q, it) < 0)
				bop__log(BOP_LOG_ERROR, "k8s", "work queue: %s", bop_error_last());
			pthread_cond_signal(&q->cond);
		}
		item_release(q, it);
	}
	pthread_mutex_unlock(&q->lock);
}

BOP_EXTERN(size_t) bop_workqueue_len(bop_workqueue_t *q)
{
	size_t n;

	if (!q)
		return 0;
	pthread_mutex_lock(&q->lock);
	promote_due(q, mono_ms());
	n = q->ring_len;
	pthread_mutex_unlock(&q->lock);
	return n;
}

BOP_EXTERN(void) bop_workqueue_shutdown(bop_workqueue_t *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->shutdown = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

BOP_EXTERN(void) bop_workqueue_free(bop_workqueue_t *q)
{
	if (!q)
		return;
	for (size_t i = 0; i < q->nbuckets; i++) {
		wq_item_t *it = q->buckets[i], *next;

		for (; it; it = next) {
			next = it->next;
			free(it->key);
			free(it);
		}
	}
	free(q->buckets);
	free(q->ring);
	free(q->heap);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q);
}
