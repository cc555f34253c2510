/* Private to the compress module: the constructors of each format's stages. */
#ifndef BOP_COMPRESS_CODEC_H
#define BOP_COMPRESS_CODEC_H

#include "internal.h"

/* `level` 1..19 and `threads` >= 1 are already validated. */
int bop__zstd_compress_new(bop_stage_t **out, int level, int threads);
int bop__zstd_decompress_new(bop_stage_t **out);

/* `level` 1..9 is already validated. */
int bop__gzip_compress_new(bop_stage_t **out, int level);
int bop__gzip_decompress_new(bop_stage_t **out);

/* 1 for a compression stage of the format (zstd: its worker threads in *workers, 0 when
 * it compresses on the caller's thread), -1 for a decompression stage, 0 otherwise. */
int bop__zstd_kind(const bop_stage_t *stage, int *workers);
int bop__gzip_kind(const bop_stage_t *stage);

#endif
