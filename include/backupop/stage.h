/*
 * The stream contract shared by every pipeline stage (compression, encryption, hashing,
 * and third-party stages from <backupop/sys/stage.h>).
 *
 * A stage reads from `in` (src[pos..size)) and writes to `out` (dst[pos..size)), advancing
 * both positions. Call bop_stage_process():
 *   - with BOP_STREAM_CONTINUE while input arrives. It returns 0 once all of `in` is
 *     consumed, or 1 when it needs more room in `out`: drain `out` and call again with the
 *     rest of `in`.
 *   - with BOP_STREAM_FLUSH to push out everything buffered so far (where the format allows),
 *     or BOP_STREAM_END at the end of the input, repeatedly, until it returns 0. After END,
 *     the stage has written its trailer and checked what it can (a decrypting stage fails
 *     here on a truncated stream).
 * Either buffer may be NULL when its size is 0.
 * A negative return is a bop_error_t; bop_error_last() says what happened. A stage never
 * writes output it has not authenticated or verified where its format carries a check.
 */
#ifndef BACKUPOP_STAGE_H
#define BACKUPOP_STAGE_H

#include "common.h"

BOP_BEGIN_DECL

typedef struct bop_inbuf {
	const void *src;
	size_t size;
	size_t pos;
} bop_inbuf_t;

typedef struct bop_outbuf {
	void *dst;
	size_t size;
	size_t pos;
} bop_outbuf_t;

typedef enum bop_stream_directive {
	BOP_STREAM_CONTINUE = 0,
	BOP_STREAM_FLUSH = 1,
	BOP_STREAM_END = 2,
} bop_stream_directive_t;

typedef struct bop_stage bop_stage_t;

/* Runs the stage once; see the contract above. */
BOP_EXTERN(int) bop_stage_process(bop_stage_t *stage, bop_outbuf_t *out, bop_inbuf_t *in,
	bop_stream_directive_t directive);

/* The stage's name for messages ("zstd-compress", "age-decrypt"). Never NULL. */
BOP_EXTERN(const char *) bop_stage_name(const bop_stage_t *stage);

/* Frees a stage that is not owned by a pipeline. Accepts NULL. */
BOP_EXTERN(void) bop_stage_free(bop_stage_t *stage);

BOP_END_DECL

#endif
