/*
 * Compression: names and options, the choice of format, and the pass-through stage
 * used for BOP_COMPRESSION_NONE.
 */
#include "codec.h"

#include <stdlib.h>
#include <string.h>

#define ZSTD_DEFAULT_LEVEL 3
#define ZSTD_MAX_LEVEL 19
#define GZIP_DEFAULT_LEVEL 6
#define GZIP_MAX_LEVEL 9
/* The bounds of ZSTD_c_nbWorkers on 64-bit builds (ZSTDMT_NBWORKERS_MAX). */
#define ZSTD_MAX_THREADS 256

BOP_EXTERN(int) bop_compression_parse(bop_compression_t *out, const char *name)
{
	static const bop_compression_t all[] = {
		BOP_COMPRESSION_NONE, BOP_COMPRESSION_ZSTD, BOP_COMPRESSION_GZIP,
	};

	if (!out || !name)
		return bop__error(BOP_EINVAL, "bop_compression_parse: invalid arguments");
	for (size_t i = 0; i < BOP_ARRAY_SIZE(all); i++) {
		if (strcmp(name, bop_compression_name(all[i])) == 0) {
			*out = all[i];
			return 0;
		}
	}
	return bop__error(BOP_EINVAL, "unknown compression '%s' (use zstd, gzip or none)", name);
}

BOP_EXTERN(const char *) bop_compression_name(bop_compression_t algorithm)
{
	switch (algorithm) {
	case BOP_COMPRESSION_NONE:
		return "none";
	case BOP_COMPRESSION_ZSTD:
		return "zstd";
	case BOP_COMPRESSION_GZIP:
		return "gzip";
	}
	return "unknown";
}

BOP_EXTERN(const char *) bop_compression_suffix(bop_compression_t algorithm)
{
	switch (algorithm) {
	case BOP_COMPRESSION_NONE:
		return "";
	case BOP_COMPRESSION_ZSTD:
		return ".zst";
	case BOP_COMPRESSION_GZIP:
		return ".gz";
	}
	return "";
}

BOP_EXTERN(int) bop_compress_options_init(bop_compress_options_t *opts, unsigned int version)
{
	bop_compress_options_t defaults = BOP_COMPRESS_OPTIONS_INIT;

	if (!opts)
		return bop__error(BOP_EINVAL, "bop_compress_options_init: NULL options");
	if (BOP__VERSION_CHECK("bop_compress_options_t", NULL, version, COMPRESS_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	*opts = defaults;
	return 0;
}

/* ---- pass-through (no compression) ---- */

static int copy_process(bop_stage_t *stage, bop_outbuf_t *out, bop_inbuf_t *in,
	bop_stream_directive_t directive)
{
	size_t n = in->size - in->pos;

	BOP_UNUSED(stage);
	BOP_UNUSED(directive);
	if (n > out->size - out->pos)
		n = out->size - out->pos;
	if (n) {
		memcpy((char *)out->dst + out->pos, (const char *)in->src + in->pos, n);
		out->pos += n;
		in->pos += n;
	}
	return in->pos < in->size ? 1 : 0;
}

static void copy_free(bop_stage_t *stage)
{
	free(stage);
}

static int copy_new(bop_stage_t **out)
{
	bop_stage_t *s = bop__calloc(1, sizeof(*s));

	if (!s)
		return BOP_ENOMEM;
	*s = (bop_stage_t)BOP_STAGE_INIT(.name = "none", .process = copy_process,
		.free = copy_free);
	*out = s;
	return 0;
}

/* ---- choosing the format ---- */

static int check_level(const char *format, int level, int max)
{
	if (level < 0 || level > max)
		return bop__error(BOP_EINVAL, "%s compression level %d is out of range 1..%d",
			format, level, max);
	return 0;
}

BOP_EXTERN(int) bop_stage_compress_new(bop_stage_t **out, const bop_compress_options_t *opts)
{
	bop_compress_options_t o = BOP_COMPRESS_OPTIONS_INIT;
	int ret;

	if (!out)
		return bop__error(BOP_EINVAL, "bop_stage_compress_new: NULL out");
	*out = NULL;
	if (opts && BOP__VERSION_CHECK("bop_compress_options_t", NULL, opts->version,
	    COMPRESS_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	if (opts)
		o = *opts;
	switch (o.algorithm) {
	case BOP_COMPRESSION_NONE:
		return copy_new(out);
	case BOP_COMPRESSION_ZSTD:
		ret = check_level("zstd", o.level, ZSTD_MAX_LEVEL);
		if (ret < 0)
			return ret;
		if (o.threads < 0 || o.threads > ZSTD_MAX_THREADS)
			return bop__error(BOP_EINVAL,
				"zstd thread count %d is out of range 0..%d (0 = one per core)",
				o.threads, ZSTD_MAX_THREADS);
		return bop__zstd_compress_new(out, o.level ? o.level : ZSTD_DEFAULT_LEVEL,
			o.threads ? o.threads : bop__ncpu());
	case BOP_COMPRESSION_GZIP:
		ret = check_level("gzip", o.level, GZIP_MAX_LEVEL);
		if (ret < 0)
			return ret;
		return bop__gzip_compress_new(out, o.level ? o.level : GZIP_DEFAULT_LEVEL);
	}
	return bop__error(BOP_EINVAL, "unknown compression algorithm %d (use zstd, gzip or none)",
		(int)o.algorithm);
}

BOP_EXTERN(int) bop_stage_decompress_new(bop_stage_t **out, bop_compression_t algorithm)
{
	if (!out)
		return bop__error(BOP_EINVAL, "bop_stage_decompress_new: NULL out");
	*out = NULL;
	switch (algorithm) {
	case BOP_COMPRESSION_NONE:
		return copy_new(out);
	case BOP_COMPRESSION_ZSTD:
		return bop__zstd_decompress_new(out);
	case BOP_COMPRESSION_GZIP:
		return bop__gzip_decompress_new(out);
	}
	return bop__error(BOP_EINVAL, "unknown compression algorithm %d (use zstd, gzip or none)",
		(int)algorithm);
}

int bop__codec_kind(const bop_stage_t *stage, int *workers)
{
	int kind;

	*workers = 0;
	if (!stage || !BOP__VERSION_OK(stage->version, STAGE_VERSION))
		return 0;
	kind = bop__zstd_kind(stage, workers);
	return kind ? kind : bop__gzip_kind(stage);
}
