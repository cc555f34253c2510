/*
 * gzip stages through zlib. Compression writes a real .gz (deflate with a gzip header and
 * trailer, windowBits 15 + 16); decompression reads concatenated members as gzip -d does.
 */
#include "codec.h"

#include <limits.h>
#include <stdlib.h>
#include <zlib.h>

#define GZIP_WINDOW_BITS (15 + 16)
#define GZIP_MEM_LEVEL 8

typedef struct gzip_stage {
	bop_stage_t base;
	z_stream strm;
	bool strm_ready;
	bool compress;          /* deflate, else inflate */
	bool seen_input;        /* decompression: any byte at all was given */
	bool in_member;         /* decompression: a member was started and is not complete */
	bool pending;           /* the last call filled the output: more may be waiting */
	bool ended;
} gzip_stage_t;

/* Points the z_stream at the buffers; zlib counts in uInt, so big buffers go in pieces. */
static void bind_buffers(z_stream *strm, bop_outbuf_t *out, bop_inbuf_t *in)
{
	size_t avail_in = in->size - in->pos;
	size_t avail_out = out->size - out->pos;

	strm->next_in = (Bytef *)((const unsigned char *)in->src + in->pos);
	strm->avail_in = avail_in > UINT_MAX ? UINT_MAX : (uInt)avail_in;
	strm->next_out = (Bytef *)out->dst + out->pos;
	strm->avail_out = avail_out > UINT_MAX ? UINT_MAX : (uInt)avail_out;
}

/* Advances the positions by what zlib consumed and produced; returns the bytes consumed. */
static size_t sync_buffers(const z_stream *strm, bop_outbuf_t *out, bop_inbuf_t *in)
{
	size_t consumed = (size_t)(strm->next_in - ((const unsigned char *)in->src + in->pos));

	in->pos += consumed;
	out->pos = (size_t)(strm->next_out - (Bytef *)out->dst);
	return consumed;
}

static int after_end(const char *name, const bop_inbuf_t *in)
{
	if (in->pos < in->size)
		return bop__error(BOP_EINVAL, "%s: input given after the end of the stream", name);
	return 0;
}

static void gzip_free(bop_stage_t *base)
{
	gzip_stage_t *g = (gzip_stage_t *)base;

	if (!g)
		return;
	if (g->strm_ready && g->compress)
		deflateEnd(&g->strm);
	else if (g->strm_ready)
		inflateEnd(&g->strm);
	free(g);
}

static gzip_stage_t *gzip_alloc(const char *name,
	int (*process)(bop_stage_t *, bop_outbuf_t *, bop_inbuf_t *, bop_stream_directive_t))
{
	gzip_stage_t *g = bop__calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->base = (bop_stage_t)BOP_STAGE_INIT(.name = name, .process = process, .free = gzip_free);
	return g;
}

static const char *zmsg(const z_stream *strm, int r)
{
	return strm->msg ? strm->msg : zError(r);
}

/* ---- compression ---- */

static int flush_mode(bop_stream_directive_t directive)
{
	switch (directive) {
	case BOP_STREAM_CONTINUE:
		return Z_NO_FLUSH;
	case BOP_STREAM_FLUSH:
		return Z_SYNC_FLUSH;
	case BOP_STREAM_END:
		return Z_FINISH;
	}
	return Z_NO_FLUSH;
}

static int gc_process(bop_stage_t *base, bop_outbuf_t *out, bop_inbuf_t *in,
	bop_stream_directive_t directive)
{
	gzip_stage_t *g = (gzip_stage_t *)base;
	int flush = flush_mode(directive);

	if (g->ended)
		return after_end(base->name, in);
	for (;;) {
		int r;

		if (flush == Z_NO_FLUSH && in->pos == in->size)
			return 0;
		if (out->pos == out->size)
			return 1;
		bind_buffers(&g->strm, out, in);
		r = deflate(&g->strm, flush);
		sync_buffers(&g->strm, out, in);
		if (r == Z_STREAM_END) {
			g->ended = true;
			return 0;
		}
		if (r != Z_OK && r != Z_BUF_ERROR)
			return bop__error(BOP_ERROR, "gzip compression failed: %s", zmsg(&g->strm, r));
		/* A sync flush is complete when zlib left output room unused. */
		if (flush == Z_SYNC_FLUSH && in->pos == in->size && g->strm.avail_out != 0)
			return 0;
	}
}

int bop__gzip_compress_new(bop_stage_t **out, int level)
{
	gzip_stage_t *g = gzip_alloc("gzip-compress", gc_process);
	int r;

	if (!g)
		return BOP_ENOMEM;
	g->compress = true;
	r = deflateInit2(&g->strm, level, Z_DEFLATED, GZIP_WINDOW_BITS, GZIP_MEM_LEVEL,
		Z_DEFAULT_STRATEGY);
	if (r != Z_OK) {
		gzip_free(&g->base);
		if (r == Z_MEM_ERROR)
			return bop__error_oom();
		return bop__error(BOP_ERROR, "cannot start gzip compression: %s", zError(r));
	}
	g->strm_ready = true;
	*out = &g->base;
	return 0;
}

/* ---- decompression ---- */

static int gd_finish(gzip_stage_t *g)
{
	if (!g->seen_input)
		return bop__error(BOP_EFORMAT, "the gzip stream is empty (expected a gzip header)");
	if (g->in_member)
		return bop__error(BOP_EFORMAT, "the gzip stream ended early: the data is truncated");
	g->ended = true;
	return 0;
}

static int gd_step(gzip_stage_t *g, bop_outbuf_t *out, bop_inbuf_t *in)
{
	int r;

	bind_buffers(&g->strm, out, in);
	r = inflate(&g->strm, Z_NO_FLUSH);
	if (sync_buffers(&g->strm, out, in) > 0) {
		g->seen_input = true;
		g->in_member = true;
	}
	switch (r) {
	case Z_STREAM_END:
		/* The member is complete; what follows is the next member. */
		g->in_member = false;
		g->pending = false;
		inflateReset(&g->strm);
		return 0;
	case Z_OK:
		g->pending = g->strm.avail_out == 0;
		return 0;
	case Z_BUF_ERROR:
		g->pending = false;
		return 0;
	case Z_MEM_ERROR:
		return bop__error_oom();
	case Z_NEED_DICT:
	case Z_DATA_ERROR:
		return bop__error(BOP_EFORMAT, "gzip data is corrupt: %s", zmsg(&g->strm, r));
	default:
		return bop__error(BOP_ERROR, "gzip decompression failed: %s", zmsg(&g->strm, r));
	}
}

static int gd_process(bop_stage_t *base, bop_outbuf_t *out, bop_inbuf_t *in,
	bop_stream_directive_t directive)
{
	gzip_stage_t *g = (gzip_stage_t *)base;

	if (g->ended)
		return after_end(base->name, in);
	for (;;) {
		int ret;

		if (in->pos == in->size && (directive == BOP_STREAM_CONTINUE || !g->pending)) {
			if (directive == BOP_STREAM_END)
				return gd_finish(g);
			return 0;
		}
		if (out->pos == out->size)
			return 1;
		ret = gd_step(g, out, in);
		if (ret < 0)
			return ret;
	}
}

int bop__gzip_decompress_new(bop_stage_t **out)
{
	gzip_stage_t *g = gzip_alloc("gzip-decompress", gd_process);
	int r;

	if (!g)
		return BOP_ENOMEM;
	r = inflateInit2(&g->strm, GZIP_WINDOW_BITS);
	if (r != Z_OK) {
		gzip_free(&g->base);
		if (r == Z_MEM_ERROR)
			return bop__error_oom();
		return bop__error(BOP_ERROR, "cannot start gzip decompression: %s", zError(r));
	}
	g->strm_ready = true;
	*out = &g->base;
	return 0;
}

int bop__gzip_kind(const bop_stage_t *stage)
{
	if (stage->process == gc_process)
		return 1;
	return stage->process == gd_process ? -1 : 0;
}
