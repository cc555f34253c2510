/*
 * The hold-back stage: passes a stream through but keeps its last bytes until the end.
 *
 * A restore target may commit as soon as it has read a complete-looking stream: pg_restore
 * ends its transaction after the archive's last entry, psql at end of input. Checks that
 * only conclude at the end of the stream (SHA-256 and size against the manifest, zstd's
 * frame checksum, age's final chunk) must therefore come before the target can see the
 * end. Placed after them, this stage withholds the stream's tail until every stage
 * upstream has ended without error, so a target never completes on unverified data.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct holdback {
	bop_stage_t base;
	size_t cap;             /* bytes withheld once the stream is longer than this */
	size_t len;             /* bytes in buf, the newest of the stream so far */
	unsigned char *buf;
} holdback_t;

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* Emits k of the oldest bytes (held ones first) and takes k new ones from `src`. */
static void shift_through(holdback_t *h, unsigned char *dst, const unsigned char *src, size_t k)
{
	if (k >= h->cap) {
		memcpy(dst, h->buf, h->cap);
		memcpy(dst + h->cap, src, k - h->cap);
		memcpy(h->buf, src + (k - h->cap), h->cap);
	} else {
		memcpy(dst, h->buf, k);
		memmove(h->buf, h->buf + k, h->cap - k);
		memcpy(h->buf + h->cap - k, src, k);
	}
}

static int holdback_drain(holdback_t *h, bop_outbuf_t *out)
{
	size_t k = min_size(h->len, out->size - out->pos);

	memcpy((unsigned char *)out->dst + out->pos, h->buf, k);
	memmove(h->buf, h->buf + k, h->len - k);
	h->len -= k;
	out->pos += k;
	return h->len ? 1 : 0;
}

static int holdback_process(bop_stage_t *base, bop_outbuf_t *out, bop_inbuf_t *in,
	bop_stream_directive_t directive)
{
	holdback_t *h = (holdback_t *)base;

	for (;;) {
		const unsigned char *src = (const unsigned char *)in->src + in->pos;
		size_t avail = in->size - in->pos, k;

		if (avail == 0)
			return directive == BOP_STREAM_END ? holdback_drain(h, out) : 0;
		if (h->len < h->cap) {
			k = min_size(h->cap - h->len, avail);
			memcpy(h->buf + h->len, src, k);
			h->len += k;
			in->pos += k;
			continue;
		}
		k = min_size(out->size - out->pos, avail);
		if (k == 0)
			return 1;
		shift_through(h, (unsigned char *)out->dst + out->pos, src, k);
		in->pos += k;
		out->pos += k;
	}
}

static void holdback_free(bop_stage_t *base)
{
	holdback_t *h = (holdback_t *)base;

	free(h->buf);
	free(h);
}

bool bop__holdback_is(const bop_stage_t *stage)
{
	return stage && stage->process == holdback_process;
}

int bop__holdback_pass(bop_stage_t *stage, const void *buf, size_t len,
	bop_stream_directive_t directive, bop__emit_fn emit, void *ctx)
{
	holdback_t *h = (holdback_t *)stage;
	const unsigned char *src = buf;
	size_t from_held, from_src;
	int ret;

	if (directive == BOP_STREAM_END) {
		/* Everything upstream ended without error: the rest may go. */
		if (h->len && (ret = emit(ctx, h->buf, h->len)) < 0)
			return ret;
		h->len = 0;
		return len ? emit(ctx, src, len) : 0;
	}
	if (h->len + len <= h->cap) {
		memcpy(h->buf + h->len, src, len);
		h->len += len;
		return 0;
	}
	/* The oldest bytes beyond `cap` go on: held ones first, then the start of `buf`,
	 * straight from where they are; only the new tail is copied. */
	from_held = min_size(h->len, h->len + len - h->cap);
	from_src = h->len + len - h->cap - from_held;
	if (from_held && (ret = emit(ctx, h->buf, from_held)) < 0)
		return ret;
	if (from_src && (ret = emit(ctx, src, from_src)) < 0)
		return ret;
	memmove(h->buf, h->buf + from_held, h->len - from_held);
	h->len -= from_held;
	memcpy(h->buf + h->len, src + from_src, len - from_src);
	h->len += len - from_src;
	return 0;
}

int bop__stage_holdback_new(bop_stage_t **out, size_t bytes)
{
	holdback_t *h;

	if (!out || bytes == 0)
		return bop__error(BOP_EINVAL, "bop__stage_holdback_new: invalid arguments");
	h = bop__calloc(1, sizeof(*h));
	if (!h)
		return BOP_ENOMEM;
	h->buf = malloc(bytes);
	if (!h->buf) {
		free(h);
		return bop__error_oom();
	}
	h->cap = bytes;
	h->base = (bop_stage_t)BOP_STAGE_INIT(.name = "hold-back", .process = holdback_process,
		.free = holdback_free);
	*out = &h->base;
	return 0;
}
