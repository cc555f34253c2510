/*
 * The pipeline driver: pushes each chunk read from the source through the stages, depth
 * first, so that at most one buffer per stage is in flight and memory stays bounded by
 * the buffer size whatever the size of the stream.
 */
#include "internal.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_BUFFER_SIZE (1u << 20)
#define MAX_IDLE_CALLS 100000

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

static int pump(bop_pipeline_t *p)
{
	bop_inbuf_t end = { p->bufs[0], 0, 0 };
	int ret;

	for (;;) {
		size_t got = 0;
		bop_inbuf_t in;

		if (is_canceled(p))
			return bop__error(BOP_ECANCELED, "the operation was canceled");
		ret = bop_source_read(p->source, p->bufs[0], p->opts.buffer_size, &got);
		if (ret < 0)
			return ret;
		if (got == 0)
			break;
		atomic_fetch_add(&p->bytes_in, got);
		in = (bop_inbuf_t){ p->bufs[0], got, 0 };
		ret = push(p, 0, &in, BOP_STREAM_CONTINUE);
		if (ret < 0)
			return ret;
		report_progress(p, false);
	}
	return push(p, 0, &end, BOP_STREAM_END);
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
	ret = pump(p);
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
	free(p);
}
