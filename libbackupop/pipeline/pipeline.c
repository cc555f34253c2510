/*
 * The pipeline driver: pushes each chunk read from the source through the stages, depth
 * first, so that at most one buffer per stage is in flight and memory stays bounded by
 * the buffer size whatever the size of the stream. A decoding pipeline may read ahead: a
 * second thread reads and decrypts into a few more buffers while this one decompresses.
 */
#include "internal.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_BUFFER_SIZE (1u << 20)
#define MAX_IDLE_CALLS 100000
#define AHEAD_SLOTS 3
#define AHEAD_FILL (256u << 10)

/* Read-ahead (bop__pipeline_read_ahead): a thread reads the source and runs the stages
 * before the first decompression (the stored hash, decryption), or before the first
 * compression (the plaintext hash), and hands what comes out to the pipeline's thread
 * through AHEAD_SLOTS buffers. */
typedef struct ahead {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	unsigned char *slot[AHEAD_SLOTS];
	size_t len[AHEAD_SLOTS];
	size_t head, count;             /* the oldest full slot, how many are full */
	bool ended;                     /* the stream ended after the full slots */
	bool failed;                    /* the reading thread failed: code and message */
	int code;
	char *message;
	bool stop;                      /* the pipeline's thread failed: stop reading */
	bool direct;                    /* only taps before the hand-over: the source reads
	                                 * into the free slot, and handing it over copies nothing */
} ahead_t;

struct bop_pipeline {
	bop_pipeline_options_t opts;
	bop_source_t *source;
	bop_stage_t **stages;
	size_t nstages;
	bop_sink_t *sink;
	unsigned char **bufs;          /* one output buffer per stage, plus the read buffer */
	bool *taps;                    /* SHA-256 taps: they see the buffer that goes on */
	bool *holds;                   /* hold-back stages: they pass on most of it as it is */
	volatile sig_atomic_t canceled;
	volatile sig_atomic_t *watched;     /* an owner's cancel flag, or NULL */
	atomic_uint_fast64_t bytes_in;
	atomic_uint_fast64_t bytes_out;
	struct timespec last_progress;
	bool ran;
	bool read_ahead;               /* bop__pipeline_read_ahead() was called */
	size_t split;                  /* the stage the read-ahead thread hands to */
	ahead_t *ahead;                /* while it runs */
	int pending_error;             /* the source failed after the data just read */
	char *pending_message;
};

BOP_EXTERN(int) bop_pipeline_options_init(bop_pipeline_options_t *opts, unsigned int version)
{
	bop_pipeline_options_t defaults = BOP_PIPELINE_OPTIONS_INIT;

	if (!opts)
		return bop__error(BOP_EINVAL, "bop_pipeline_options_init: NULL options");
	if (BOP__VERSION_CHECK("bop_pipeline_options_t", NULL, version, PIPELINE_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	*opts = defaults;
	return 0;
}

BOP_EXTERN(int) bop_pipeline_new(bop_pipeline_t **out, const bop_pipeline_options_t *opts)
{
	bop_pipeline_t *p;

	if (!out)
		return bop__error(BOP_EINVAL, "bop_pipeline_new: NULL out");
	*out = NULL;
	if (opts && BOP__VERSION_CHECK("bop_pipeline_options_t", NULL, opts->version,
	    PIPELINE_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	p = bop__calloc(1, sizeof(*p));
	if (!p)
		return BOP_ENOMEM;
	if (opts)
		p->opts = *opts;
	else
		bop_pipeline_options_init(&p->opts, BOP_PIPELINE_OPTIONS_VERSION);
	if (p->opts.buffer_size == 0)
		p->opts.buffer_size = DEFAULT_BUFFER_SIZE;
	if (p->opts.buffer_size < 4096)
		p->opts.buffer_size = 4096;
	if (p->opts.progress_interval_ms == 0)
		p->opts.progress_interval_ms = 1000;
	*out = p;
	return 0;
}

BOP_EXTERN(int) bop_pipeline_set_source(bop_pipeline_t *p, bop_source_t *source)
{
	if (!p || !source || p->source || p->ran) {
		bop_source_free(source);
		return bop__error(BOP_EINVAL, "bop_pipeline_set_source: no pipeline, no source, or a source is already set");
	}
	p->source = source;
	return 0;
}

BOP_EXTERN(int) bop_pipeline_add_stage(bop_pipeline_t *p, bop_stage_t *stage)
{
	bop_stage_t **grown;

	if (!p || !stage || p->ran) {
		bop_stage_free(stage);
		return bop__error(BOP_EINVAL, "bop_pipeline_add_stage: invalid arguments");
	}
	grown = realloc(p->stages, (p->nstages + 1) * sizeof(*grown));
	if (!grown) {
		bop_stage_free(stage);
		return bop__error_oom();
	}
	p->stages = grown;
	p->stages[p->nstages++] = stage;
	return 0;
}

BOP_EXTERN(int) bop_pipeline_set_sink(bop_pipeline_t *p, bop_sink_t *sink)
{
	if (!p || !sink || p->sink || p->ran) {
		bop_sink_free(sink);
		return bop__error(BOP_EINVAL, "bop_pipeline_set_sink: no pipeline, no sink, or a sink is already set");
	}
	p->sink = sink;
	return 0;
}

static bool is_canceled(const bop_pipeline_t *p)
{
	return p->canceled || (p->watched && *p->watched);
}

void bop__pipeline_watch(bop_pipeline_t *p, volatile sig_atomic_t *flag)
{
	p->watched = flag;
}

/* The cancel flags of the pipeline running on this thread (a pipeline reads its source and
 * writes its sink on the thread that runs it), for a source or sink that can block for
 * long without data, such as a command that writes nothing yet. */
static _Thread_local const volatile sig_atomic_t *tl_cancel[2];
/* Whether this thread is a pipeline's read-ahead thread. */
static _Thread_local bool tl_ahead;

bool bop__cancel_requested(void)
{
	return (tl_cancel[0] && *tl_cancel[0]) || (tl_cancel[1] && *tl_cancel[1]);
}

bool bop__cancel_watchable(void)
{
	return tl_cancel[0] || tl_cancel[1];
}

static void report_progress(bop_pipeline_t *p, bool force)
{
	struct timespec now;
	long elapsed_ms;

	if (!p->opts.progress)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	elapsed_ms = (now.tv_sec - p->last_progress.tv_sec) * 1000 +
		(now.tv_nsec - p->last_progress.tv_nsec) / 1000000;
	if (!force && elapsed_ms < (long)p->opts.progress_interval_ms)
		return;
	p->last_progress = now;
	p->opts.progress(atomic_load(&p->bytes_in), atomic_load(&p->bytes_out), p->opts.payload);
}

static int push(bop_pipeline_t *p, size_t i, bop_inbuf_t *in, bop_stream_directive_t directive);

/* On the read-ahead thread, with a->mu held: waits for a free slot; false when the
 * pipeline's thread asked to stop instead. */
static bool ahead_wait_free(ahead_t *a)
{
	while (a->count == AHEAD_SLOTS && !a->stop)
		pthread_cond_wait(&a->cond, &a->mu);
	return !a->stop;
}

void bop__pipeline_read_ahead(bop_pipeline_t *p)
{
	p->read_ahead = true;
}

/* On the read-ahead thread: hands `in` over to the pipeline's thread, waiting for free
 * slots; BOP_STREAM_END marks the end of the stream after it. */
static int ahead_put(bop_pipeline_t *p, bop_inbuf_t *in, bop_stream_directive_t directive)
{
	ahead_t *a = p->ahead;
	int ret = 0;

	pthread_mutex_lock(&a->mu);
	while (ret == 0 && in->pos < in->size) {
		size_t n = in->size - in->pos, at;

		if (!ahead_wait_free(a)) {
			ret = bop__error(BOP_ECANCELED, "the operation was canceled");
			break;
		}
		if (n > p->opts.buffer_size)
			n = p->opts.buffer_size;
		at = (a->head + a->count) % AHEAD_SLOTS;
		if (in->src != a->slot[at] || in->pos != 0) {
			/* Copying needs no lock: the pipeline's thread does not touch a free slot. */
			pthread_mutex_unlock(&a->mu);
			memcpy(a->slot[at], (const unsigned char *)in->src + in->pos, n);
			pthread_mutex_lock(&a->mu);
		}
		a->len[at] = n;
		a->count++;
		in->pos += n;
		pthread_cond_broadcast(&a->cond);
	}
	if (ret == 0 && directive != BOP_STREAM_CONTINUE) {
		a->ended = true;
		pthread_cond_broadcast(&a->cond);
	}
	pthread_mutex_unlock(&a->mu);
	return ret;
}

/* Where a hold-back stage's output goes: on to the stage after it. */
typedef struct emit_ctx {
	bop_pipeline_t *p;
	size_t next;
} emit_ctx_t;

static int emit_next(void *ctx, const void *buf, size_t len)
{
	emit_ctx_t *e = ctx;
	bop_inbuf_t in = { buf, len, 0 };

	return push(e->p, e->next, &in, BOP_STREAM_CONTINUE);
}

static int push_holdback(bop_pipeline_t *p, size_t i, bop_inbuf_t *in,
	bop_stream_directive_t directive)
{
	emit_ctx_t ctx = { p, i + 1 };
	bop_inbuf_t empty = { NULL, 0, 0 };
	int ret = bop__holdback_pass(p->stages[i], (const unsigned char *)in->src + in->pos,
		in->size - in->pos, directive, emit_next, &ctx);

	if (ret < 0)
		return ret;
	in->pos = in->size;
	return directive == BOP_STREAM_CONTINUE ? 0 : push(p, i + 1, &empty, directive);
}

/* Feeds `in` to stage i (or to the sink after the last stage) until it has consumed it
 * and, for FLUSH/END, until the stage is done, pushing every output downstream. */
static int push(bop_pipeline_t *p, size_t i, bop_inbuf_t *in, bop_stream_directive_t directive)
{
	unsigned idle = 0;
	int ret;

	if (is_canceled(p))
		return bop__error(BOP_ECANCELED, "the operation was canceled");
	if (tl_ahead && i == p->split)
		return ahead_put(p, in, directive);
	if (i < p->nstages && p->taps[i]) {
		ret = bop__sha256_observe(p->stages[i], (const unsigned char *)in->src + in->pos,
			in->size - in->pos, directive);
		return ret < 0 ? ret : push(p, i + 1, in, directive);
	}
	if (i < p->nstages && p->holds[i])
		return push_holdback(p, i, in, directive);
	if (i == p->nstages) {
		size_t len = in->size - in->pos;

		ret = bop_sink_write(p->sink, (const char *)in->src + in->pos, len);
		if (ret < 0)
			return ret;
		in->pos = in->size;
		atomic_fetch_add(&p->bytes_out, len);
		return 0;
	}
	for (;;) {
		bop_outbuf_t out = { p->bufs[i + 1], p->opts.buffer_size, 0 };
		size_t in_before = in->pos;

		ret = bop_stage_process(p->stages[i], &out, in, directive);
		if (ret < 0) {
			if (bop_error_last_code() == BOP_OK)
				bop__error(ret, "stage %s failed", bop_stage_name(p->stages[i]));
			return ret;
		}
		if (out.pos > 0) {
			bop_inbuf_t next = { p->bufs[i + 1], out.pos, 0 };
			int r = push(p, i + 1, &next, BOP_STREAM_CONTINUE);

			if (r < 0)
				return r;
		}
		if (ret == 0 && (directive != BOP_STREAM_CONTINUE || in->pos == in->size))
			break;
		if (out.pos == 0 && in->pos == in_before && ++idle > MAX_IDLE_CALLS)
			return bop__error(BOP_ERROR, "stage %s made no progress",
				bop_stage_name(p->stages[i]));
		if (out.pos > 0 || in->pos != in_before)
			idle = 0;
	}
	if (directive != BOP_STREAM_CONTINUE) {
		bop_inbuf_t empty = { p->bufs[i + 1], 0, 0 };

		return push(p, i + 1, &empty, directive);
	}
	return 0;
}

/* Which SHA-256 taps hash on a thread of their own (see crypto/sha256.c). Where zstd runs
 * a worker per core, those workers keep every core busy and a hashing thread only adds
 * copies and hand-offs (files backup on 2 cores: 8% more CPU): all taps hash in place.
 * Otherwise, with fewer than three cores, only the taps on the plaintext side get one: a
 * stream after compression or before decompression is a fraction of the plaintext and
 * costs about as much to copy into a ring as to hash where it is. */
static void place_hashing(bop_pipeline_t *p)
{
	int ncpu = bop__ncpu(), workers;
	size_t first_pack = p->nstages, last_unpack = 0;     /* none */
	bool busy = false;

	for (size_t i = 0; i < p->nstages; i++) {
		int kind = bop__codec_kind(p->stages[i], &workers);

		if (kind > 0 && i < first_pack)
			first_pack = i;
		if (kind > 0 && workers >= ncpu)
			busy = true;
		if (kind < 0)
			last_unpack = i;
	}
	for (size_t i = 0; i < p->nstages; i++) {
		/* after a compression or before a decompression */
		bool packed = i > first_pack || i < last_unpack;

		if (p->taps[i] && (busy || (packed && ncpu < 3)))
			bop__sha256_in_place(p->stages[i]);
	}
}

static int alloc_buffers(bop_pipeline_t *p)
{
	p->bufs = bop__calloc(p->nstages + 1, sizeof(*p->bufs));
	p->taps = bop__calloc(p->nstages + 1, sizeof(*p->taps));
	p->holds = bop__calloc(p->nstages + 1, sizeof(*p->holds));
	if (!p->bufs || !p->taps || !p->holds)
		return BOP_ENOMEM;
	for (size_t i = 0; i < p->nstages; i++) {
		p->taps[i] = bop__sha256_is_tap(p->stages[i]);
		p->holds[i] = bop__holdback_is(p->stages[i]);
	}
	place_hashing(p);
	for (size_t i = 0; i <= p->nstages; i++) {
		if (i > 0 && (p->taps[i - 1] || p->holds[i - 1]))
			continue;       /* their output buffers are never used */
		p->bufs[i] = malloc(p->opts.buffer_size);
		if (!p->bufs[i])
			return bop__error_oom();
	}
	return 0;
}

/* On a read-ahead thread whose slots the source may fill (ahead_t.direct): the slot the
 * next hand-over fills, once one is free. Only this thread fills slots, so it stays free
 * until then. NULL otherwise, or when the pipeline's thread asked to stop. */
static unsigned char *ahead_free_slot(bop_pipeline_t *p)
{
	ahead_t *a = p->ahead;
	unsigned char *slot = NULL;

	if (!tl_ahead || !a->direct)
		return NULL;
	pthread_mutex_lock(&a->mu);
	if (ahead_wait_free(a))
		slot = a->slot[(a->head + a->count) % AHEAD_SLOTS];
	pthread_mutex_unlock(&a->mu);
	return slot;
}

/* Reads the next data of the source into `buf`: *got bytes, 0 at its end. On a read-ahead
 * thread, reads that come in small pieces (a command's pipe) are gathered up to
 * AHEAD_FILL bytes, so that each hand-over wakes the pipeline's thread for a fair amount
 * of work; a failure after some data returns that data first and the failure next time. */
static int pump_read(bop_pipeline_t *p, unsigned char *buf, size_t *got)
{
	size_t want = tl_ahead ? AHEAD_FILL : 1;
	int ret;

	*got = 0;
	if (p->pending_error)
		return bop__error(p->pending_error, "%s",
			p->pending_message ? p->pending_message : "out of memory");
	do {
		size_t n = 0;

		if (is_canceled(p))
			ret = bop__error(BOP_ECANCELED, "the operation was canceled");
		else
			ret = bop_source_read(p->source, buf + *got, p->opts.buffer_size - *got, &n);
		if (ret < 0 && *got > 0) {
			p->pending_error = bop_error_last_code() != BOP_OK ? bop_error_last_code() : ret;
			p->pending_message = strdup(bop_error_last());
			return 0;
		}
		if (ret < 0)
			return ret;
		if (n == 0)
			break;
		*got += n;
	} while (*got < want && *got < p->opts.buffer_size);
	return 0;
}

static int pump(bop_pipeline_t *p)
{
	bop_inbuf_t end = { p->bufs[0], 0, 0 };
	int ret;

	for (;;) {
		unsigned char *buf = ahead_free_slot(p);
		size_t got = 0;
		bop_inbuf_t in;

		if (!buf)
			buf = p->bufs[0];
		ret = pump_read(p, buf, &got);
		if (ret < 0)
			return ret;
		if (got == 0)
			break;
		atomic_fetch_add(&p->bytes_in, got);
		in = (bop_inbuf_t){ buf, got, 0 };
		ret = push(p, 0, &in, BOP_STREAM_CONTINUE);
		if (ret < 0)
			return ret;
		if (!tl_ahead)  /* the owner's callback runs on the thread that runs the pipeline */
			report_progress(p, false);
	}
	return push(p, 0, &end, BOP_STREAM_END);
}

static void *ahead_main(void *arg)
{
	bop_pipeline_t *p = arg;
	ahead_t *a = p->ahead;
	int ret;

	pthread_setname_np(pthread_self(), "bop-read");
	tl_ahead = true;
	tl_cancel[0] = &p->canceled;
	tl_cancel[1] = p->watched;
	ret = pump(p);
	pthread_mutex_lock(&a->mu);
	if (ret < 0) {
		a->failed = true;
		a->code = bop_error_last_code() != BOP_OK ? bop_error_last_code() : ret;
		a->message = strdup(bop_error_last());
	}
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

static void ahead_free(ahead_t *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < AHEAD_SLOTS; i++)
		free(a->slot[i]);
	free(a->message);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

/* The stage the read-ahead thread hands to: the first decompression (a restore: reading,
 * the stored hash and decryption on one thread, decompression on the other), else the
 * first compression (a backup: the source and the plaintext hash on one thread,
 * compression, encryption and writing on the other). 0 when the pipeline runs on one
 * thread (no read-ahead asked for, one core, no codec). */
static size_t ahead_split(const bop_pipeline_t *p)
{
	size_t first_pack = 0;
	int workers;

	if (!p->read_ahead || bop__ncpu() < 2)
		return 0;
	for (size_t i = 0; i < p->nstages; i++) {
		int kind = bop__codec_kind(p->stages[i], &workers);

		if (kind < 0)
			return i;
		if (kind > 0 && first_pack == 0)
			first_pack = i;
	}
	return first_pack;
}

/* Takes what the read-ahead thread hands over and pushes it from stage p->split on. */
static int pump_behind(bop_pipeline_t *p)
{
	ahead_t *a = p->ahead;
	int ret = 0;

	pthread_mutex_lock(&a->mu);
	for (;;) {
		if (a->count > 0) {
			bop_inbuf_t in = { a->slot[a->head], a->len[a->head], 0 };

			pthread_mutex_unlock(&a->mu);
			ret = push(p, p->split, &in, BOP_STREAM_CONTINUE);
			report_progress(p, false);
			pthread_mutex_lock(&a->mu);
			a->head = (a->head + 1) % AHEAD_SLOTS;
			a->count--;
			pthread_cond_broadcast(&a->cond);
			if (ret < 0)
				break;
		} else if (a->failed) {
			break;
		} else if (a->ended) {
			bop_inbuf_t end = { NULL, 0, 0 };

			pthread_mutex_unlock(&a->mu);
			ret = push(p, p->split, &end, BOP_STREAM_END);
			pthread_mutex_lock(&a->mu);
			break;
		} else {
			pthread_cond_wait(&a->cond, &a->mu);
		}
	}
	a->stop = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->thread, NULL);
	/* As on one thread: what was read before the reading side failed goes through the
	 * stages behind it first, and a failure there, on earlier data, is the one reported. */
	if (ret == 0 && a->failed)
		ret = bop__error(a->code, "%s", a->message ? a->message : "out of memory");
	return ret;
}

/* Runs the pipeline's stream: on this thread, or with a read-ahead thread in front. */
static int run_stream(bop_pipeline_t *p)
{
	ahead_t *a;
	int ret;

	p->split = ahead_split(p);
	if (p->split == 0)
		return pump(p);
	a = bop__calloc(1, sizeof(*a));
	if (!a)
		return BOP_ENOMEM;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cond, NULL);
	for (size_t i = 0; i < AHEAD_SLOTS; i++) {
		a->slot[i] = malloc(p->opts.buffer_size);
		if (!a->slot[i]) {
			ahead_free(a);
			return bop__error_oom();
		}
	}
	a->direct = true;
	for (size_t i = 0; i < p->split; i++)
		a->direct = a->direct && p->taps[i];
	p->ahead = a;
	if (pthread_create(&a->thread, NULL, ahead_main, p) != 0) {
		p->ahead = NULL;
		ahead_free(a);
		p->split = 0;
		return pump(p);   /* no thread to spare: on this one */
	}
	ret = pump_behind(p);
	p->ahead = NULL;
	ahead_free(a);
	return ret;
}

BOP_EXTERN(int) bop_pipeline_run(bop_pipeline_t *p)
{
	int ret;

	if (!p)
		return bop__error(BOP_EINVAL, "bop_pipeline_run: NULL pipeline");
	if (p->ran)
		return bop__error(BOP_EINVAL, "a pipeline runs only once");
	if (!p->source || !p->sink)
		return bop__error(BOP_EINVAL, "the pipeline needs a source and a sink");
	p->ran = true;
	clock_gettime(CLOCK_MONOTONIC, &p->last_progress);
	ret = alloc_buffers(p);
	if (ret < 0)
		goto fail;
	tl_cancel[0] = &p->canceled;
	tl_cancel[1] = p->watched;
	ret = run_stream(p);
	tl_cancel[0] = tl_cancel[1] = NULL;
	if (ret < 0)
		goto fail;
	/* The producer must have succeeded before the result may become visible. */
	ret = bop_source_close(p->source);
	if (ret < 0)
		goto fail;
	ret = bop_sink_commit(p->sink);
	if (ret < 0)
		goto fail;
	report_progress(p, true);
	return 0;
fail:
	bop_sink_abort(p->sink);
	return ret;
}

BOP_EXTERN(void) bop_pipeline_cancel(bop_pipeline_t *p)
{
	if (p)
		p->canceled = 1;
}

BOP_EXTERN(uint64_t) bop_pipeline_bytes_in(const bop_pipeline_t *p)
{
	return p ? atomic_load(&((bop_pipeline_t *)p)->bytes_in) : 0;
}

BOP_EXTERN(uint64_t) bop_pipeline_bytes_out(const bop_pipeline_t *p)
{
	return p ? atomic_load(&((bop_pipeline_t *)p)->bytes_out) : 0;
}

BOP_EXTERN(void) bop_pipeline_free(bop_pipeline_t *p)
{
	if (!p)
		return;
	bop_sink_free(p->sink);
	bop_source_free(p->source);
	for (size_t i = 0; i < p->nstages; i++)
		bop_stage_free(p->stages[i]);
	if (p->bufs) {
		for (size_t i = 0; i <= p->nstages; i++)
			free(p->bufs[i]);
	}
	free(p->bufs);
	free(p->taps);
	free(p->holds);
	free(p->stages);
	free(p->pending_message);
	free(p);
}
