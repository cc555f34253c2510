/* Helpers shared by the codec tests: deterministic data and a stage driver that follows
 * the stream contract of <backupop/stage.h> with odd input pieces and small outputs. */
#ifndef BOP_TESTS_CODEC_UTIL_H
#define BOP_TESTS_CODEC_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backupop.h"

#define T_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

typedef struct tbuf {
	unsigned char *data;
	size_t len;
	size_t cap;
} tbuf_t;

__attribute__((unused))
static void tbuf_append(tbuf_t *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;

		while (cap < b->len + n)
			cap *= 2;
		b->data = realloc(b->data, cap);
		if (!b->data)
			abort();
		b->cap = cap;
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
}

__attribute__((unused))
static void tbuf_free(tbuf_t *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* xorshift: the same "random" bytes on every run. */
__attribute__((unused))
static unsigned char *random_bytes(size_t n, uint64_t seed)
{
	unsigned char *p = malloc(n ? n : 1);
	uint64_t x = seed ? seed : 88172645463325252ull;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)(x >> 24);
	}
	return p;
}

/* Text-like data that compresses well but not trivially. */
__attribute__((unused))
static unsigned char *compressible_bytes(size_t n)
{
	static const char *words[] = { "backup ", "restore ", "pipeline ", "zstd ", "gzip ",
		"stream ", "manifest ", "\n", "INSERT INTO t VALUES (", "42, ", "'hello'); " };
	unsigned char *p = malloc(n ? n : 1);
	uint64_t x = 12345;
	size_t i = 0;

	while (i < n) {
		const char *w;
		size_t len;

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		w = words[(x >> 33) % (sizeof(words) / sizeof(words[0]))];
		len = strlen(w);
		if (len > n - i)
			len = n - i;
		memcpy(p + i, w, len);
		i += len;
	}
	return p;
}

/*
 * Pushes `len` bytes through `stage` in pieces taken in turn from `pieces` (0-terminated),
 * with an output buffer of `room` bytes, then ends the stream (the last piece is given with
 * END when `end_with_data`). Appends the output to `res`. Returns the first negative result,
 * or -1000 when the stage broke the contract (no progress, or 0 with input left).
 */
__attribute__((unused))
static int drive_stage(bop_stage_t *stage, const unsigned char *in, size_t len,
	const size_t *pieces, size_t room, bool end_with_data, tbuf_t *res)
{
	unsigned char *tmp = malloc(room);
	size_t off = 0, pi = 0;
	int ret = 0;

	for (;;) {
		size_t n = pieces[pi] ? pieces[pi] : len;
		bop_stream_directive_t d = BOP_STREAM_CONTINUE;
		bop_inbuf_t ib;
		unsigned idle = 0;

		if (pieces[pi] && pieces[++pi] == 0)
			pi = 0;
		if (n > len - off)
			n = len - off;
		if (end_with_data && off + n == len)
			d = BOP_STREAM_END;
		ib = (bop_inbuf_t){ in ? in + off : (const void *)"", n, 0 };
		for (;;) {
			bop_outbuf_t ob = { tmp, room, 0 };
			size_t before = ib.pos;

			ret = bop_stage_process(stage, &ob, &ib, d);
			tbuf_append(res, tmp, ob.pos);
			if (ret < 0)
				goto out;
			if (ret == 0 && ib.pos != ib.size) {
				ret = -1000;
				goto out;
			}
			if (ret == 0)
				break;
			if (ob.pos == 0 && ib.pos == before && ++idle > 1000) {
				ret = -1000;
				goto out;
			}
		}
		off += n;
		if (d == BOP_STREAM_END)
			goto out;
		if (off == len)
			break;
	}
	for (unsigned idle = 0;;) {
		bop_inbuf_t ib = { "", 0, 0 };
		bop_outbuf_t ob = { tmp, room, 0 };

		ret = bop_stage_process(stage, &ob, &ib, BOP_STREAM_END);
		tbuf_append(res, tmp, ob.pos);
		if (ret <= 0)
			break;
		if (ob.pos == 0 && ++idle > 1000) {
			ret = -1000;
			break;
		}
	}
out:
	free(tmp);
	return ret;
}

#endif
