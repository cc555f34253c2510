/* Compression stages: zstd (multi-threaded) and gzip. */
#ifndef BACKUPOP_COMPRESS_H
#define BACKUPOP_COMPRESS_H

#include "common.h"
#include "stage.h"

BOP_BEGIN_DECL

typedef enum bop_compression {
	BOP_COMPRESSION_NONE = 0,
	BOP_COMPRESSION_ZSTD = 1,
	BOP_COMPRESSION_GZIP = 2,
} bop_compression_t;

/* "none", "zstd" or "gzip". BOP_EINVAL otherwise, naming the accepted values. */
BOP_EXTERN(int) bop_compression_parse(bop_compression_t *out, const char *name);

/* "none", "zstd", "gzip". */
BOP_EXTERN(const char *) bop_compression_name(bop_compression_t algorithm);

/* The file suffix of the format: "", ".zst", ".gz". */
BOP_EXTERN(const char *) bop_compression_suffix(bop_compression_t algorithm);

typedef struct bop_compress_options {
	unsigned int version;
	bop_compression_t algorithm;
	/* zstd 1..19 (default 3), gzip 1..9 (default 6); 0 means the default. */
	int level;
	/* zstd worker threads: 0 = one per online core (default), 1.. = that many. */
	int threads;
} bop_compress_options_t;

#define BOP_COMPRESS_OPTIONS_VERSION 1
#define BOP_COMPRESS_OPTIONS_INIT { BOP_COMPRESS_OPTIONS_VERSION, BOP_COMPRESSION_ZSTD, 0, 0 }

BOP_EXTERN(int) bop_compress_options_init(bop_compress_options_t *opts, unsigned int version);

/* A compressing stage. BOP_EINVAL for a level out of range. With BOP_COMPRESSION_NONE
 * the stage passes data through. */
BOP_EXTERN(int) bop_stage_compress_new(bop_stage_t **out, const bop_compress_options_t *opts);

/* A decompressing stage. Corrupt input fails with BOP_EFORMAT. */
BOP_EXTERN(int) bop_stage_decompress_new(bop_stage_t **out, bop_compression_t algorithm);

BOP_END_DECL

#endif
