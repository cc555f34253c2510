/* zstd, gzip and pass-through stages: round trips, the stream contract, option
 * validation, flushing, concatenated input and corrupt or truncated input. */
#include "tap.h"
#include "codec-util.h"

#include "backupop.h"

#define MIB (1024 * 1024)

static const size_t whole[] = { 0 };
static const size_t odd[] = { 1, 3, 1000, 7, 65536, 12345, 0 };
static const size_t big[] = { 1 << 20, 0 };

static bop_stage_t *compressor(bop_compression_t alg, int level, int threads)
{
	bop_compress_options_t o;
	bop_stage_t *st = NULL;

	bop_compress_options_init(&o, BOP_COMPRESS_OPTIONS_VERSION);
	o.algorithm = alg;
	o.level = level;
	o.threads = threads;
	if (bop_stage_compress_new(&st, &o) < 0)
		diag("compress_new: %s", bop_error_last());
	return st;
}

static bop_stage_t *decompressor(bop_compression_t alg)
{
	bop_stage_t *st = NULL;

	if (bop_stage_decompress_new(&st, alg) < 0)
		diag("decompress_new: %s", bop_error_last());
	return st;
}

/* Compresses and decompresses `data`; true when the bytes come back unchanged. */
static bool round_trip(bop_compression_t alg, int threads, const unsigned char *data, size_t len,
	const size_t *pieces, size_t room, bool end_with_data, size_t *packed_len)
{
	bop_stage_t *c = compressor(alg, 0, threads), *d = decompressor(alg);
	tbuf_t packed = { 0 }, back = { 0 };
	bool good = false;
	int r;

	if (!c || !d)
		goto out;
	r = drive_stage(c, data, len, pieces, room, end_with_data, &packed);
	if (r < 0) {
		diag("compress: %d %s", r, bop_error_last());
		goto out;
	}
	r = drive_stage(d, packed.data, packed.len, pieces, room, end_with_data, &back);
	if (r < 0) {
		diag("decompress: %d %s", r, bop_error_last());
		goto out;
	}
	good = back.len == len && (len == 0 || memcmp(back.data, data, len) == 0);
	if (!good)
		diag("got %zu bytes back, want %zu", back.len, len);
	if (packed_len)
		*packed_len = packed.len;
out:
	bop_stage_free(c);
	bop_stage_free(d);
	tbuf_free(&packed);
	tbuf_free(&back);
	return good;
}

static void test_names(void)
{
	bop_compression_t alg = BOP_COMPRESSION_NONE;
	bop_compress_options_t o;

	is_int(bop_compression_parse(&alg, "zstd"), 0, "parse zstd");
	is_int(alg, BOP_COMPRESSION_ZSTD, "zstd parsed");
	is_int(bop_compression_parse(&alg, "gzip"), 0, "parse gzip");
	is_int(alg, BOP_COMPRESSION_GZIP, "gzip parsed");
	is_int(bop_compression_parse(&alg, "none"), 0, "parse none");
	is_int(alg, BOP_COMPRESSION_NONE, "none parsed");
	is_int(bop_compression_parse(&alg, "lz4"), BOP_EINVAL, "lz4 is refused");
	ok(strstr(bop_error_last(), "lz4") && strstr(bop_error_last(), "zstd, gzip or none"),
		"the error names the value and the accepted ones: %s", bop_error_last());
	is_str(bop_compression_name(BOP_COMPRESSION_GZIP), "gzip", "name of gzip");
	is_str(bop_compression_suffix(BOP_COMPRESSION_ZSTD), ".zst", "suffix of zstd");
	is_str(bop_compression_suffix(BOP_COMPRESSION_GZIP), ".gz", "suffix of gzip");
	is_str(bop_compression_suffix(BOP_COMPRESSION_NONE), "", "suffix of none");
	is_int(bop_compress_options_init(&o, 99), BOP_EVERSION, "unknown options version");
	is_int(bop_compress_options_init(&o, BOP_COMPRESS_OPTIONS_VERSION), 0, "options init");
	ok(o.algorithm == BOP_COMPRESSION_ZSTD && o.level == 0 && o.threads == 0,
		"defaults: zstd, default level, one thread per core");
}

static void expect_invalid(bop_compression_t alg, int level, int threads, const char *want,
	const char *name)
{
	bop_compress_options_t o = BOP_COMPRESS_OPTIONS_INIT;
	bop_stage_t *st = NULL;
	int r;

	o.algorithm = alg;
	o.level = level;
	o.threads = threads;
	r = bop_stage_compress_new(&st, &o);
	is_int(r, BOP_EINVAL, name);
	ok(st == NULL && strstr(bop_error_last(), want), "%s: message '%s'", name, bop_error_last());
}

static void test_options(void)
{
	bop_compress_options_t o = BOP_COMPRESS_OPTIONS_INIT;
	bop_stage_t *st = NULL;

	expect_invalid(BOP_COMPRESSION_ZSTD, 20, 0, "level 20 is out of range 1..19", "zstd level 20");
	expect_invalid(BOP_COMPRESSION_ZSTD, -1, 0, "out of range 1..19", "zstd level -1");
	expect_invalid(BOP_COMPRESSION_GZIP, 10, 0, "level 10 is out of range 1..9", "gzip level 10");
	expect_invalid(BOP_COMPRESSION_ZSTD, 3, -2, "thread count -2", "zstd threads -2");
	for (int level = 1; level <= 19; level += 9) {
		o.level = level;
		ok(bop_stage_compress_new(&st, &o) == 0, "zstd level %d accepted", level);
		bop_stage_free(st);
	}
	o.version = 7;
	is_int(bop_stage_compress_new(&st, &o), BOP_EVERSION, "options of an unknown version");
	is_int(bop_stage_decompress_new(&st, (bop_compression_t)9), BOP_EINVAL,
		"unknown algorithm for decompression");
	ok(bop_stage_compress_new(&st, NULL) == 0, "NULL options mean the defaults");
	is_str(bop_stage_name(st), "zstd-compress", "stage name");
	bop_stage_free(st);
}

static void test_round_trips(void)
{
	static const bop_compression_t algs[] = {
		BOP_COMPRESSION_ZSTD, BOP_COMPRESSION_GZIP, BOP_COMPRESSION_NONE,
	};
	static const size_t sizes[] = { 0, 1, 65535, 65536, 65537 };
	unsigned char *rnd = random_bytes(5 * MIB, 1);
	unsigned char *txt = compressible_bytes(5 * MIB);

	for (size_t a = 0; a < T_ARRAY_SIZE(algs); a++) {
		const char *name = bop_compression_name(algs[a]);
		size_t packed = 0;

		for (size_t s = 0; s < T_ARRAY_SIZE(sizes); s++) {
			ok(round_trip(algs[a], 0, rnd, sizes[s], whole, 64 * 1024, false, NULL),
				"%s: %zu random bytes in one piece", name, sizes[s]);
			ok(round_trip(algs[a], 1, txt, sizes[s], odd, 4096, false, NULL),
				"%s: %zu bytes in odd pieces, 4 KiB output", name, sizes[s]);
		}
		ok(round_trip(algs[a], 1, txt, 65537, odd, 7, false, NULL),
			"%s: 65537 bytes through a 7-byte output buffer", name);
		ok(round_trip(algs[a], 0, txt, 300000, odd, 1, true, NULL),
			"%s: 300000 bytes through a 1-byte output buffer, last piece with END", name);
		ok(round_trip(algs[a], 0, rnd, 5 * MIB, big, 1 << 20, false, &packed),
			"%s: 5 MiB random, one thread per core", name);
		ok(round_trip(algs[a], 1, rnd, 5 * MIB, odd, 65536, true, NULL),
			"%s: 5 MiB random, one thread, odd pieces", name);
		ok(round_trip(algs[a], 0, txt, 5 * MIB, big, 1 << 20, false, &packed),
			"%s: 5 MiB compressible", name);
		if (algs[a] != BOP_COMPRESSION_NONE)
			ok(packed < MIB, "%s: 5 MiB of text shrinks to %zu bytes", name, packed);
	}
	free(rnd);
	free(txt);
}

/* Two separately compressed streams, concatenated, decompress to both. */
static void test_concatenated(bop_compression_t alg)
{
	const char *name = bop_compression_name(alg);
	unsigned char *a = compressible_bytes(100000), *b = random_bytes(70000, 9);
	tbuf_t packed = { 0 }, back = { 0 }, want = { 0 };
	bop_stage_t *c1 = compressor(alg, 0, 1), *c2 = compressor(alg, 9, 1), *d = decompressor(alg);

	drive_stage(c1, a, 100000, whole, 65536, false, &packed);
	drive_stage(c2, b, 70000, whole, 65536, false, &packed);
	tbuf_append(&want, a, 100000);
	tbuf_append(&want, b, 70000);
	is_int(drive_stage(d, packed.data, packed.len, odd, 5000, false, &back), 0,
		name);
	ok(back.len == want.len && memcmp(back.data, want.data, want.len) == 0,
		"%s: concatenated streams decompress to both inputs", name);
	bop_stage_free(c1);
	bop_stage_free(c2);
	bop_stage_free(d);
	tbuf_free(&packed);
	tbuf_free(&back);
	tbuf_free(&want);
	free(a);
	free(b);
}

/* After FLUSH, what came out so far decompresses to everything given so far. */
static void test_flush(bop_compression_t alg)
{
	const char *name = bop_compression_name(alg);
	unsigned char *txt = compressible_bytes(200000);
	unsigned char out[4096];
	bop_stage_t *c = compressor(alg, 0, 0), *d = decompressor(alg);
	tbuf_t packed = { 0 }, back = { 0 };
	bop_inbuf_t in = { txt, 150000, 0 };
	int r;

	do {
		bop_outbuf_t ob = { out, sizeof(out), 0 };

		r = bop_stage_process(c, &ob, &in, BOP_STREAM_FLUSH);
		tbuf_append(&packed, out, ob.pos);
	} while (r == 1);
	is_int(r, 0, "FLUSH finishes");
	ok(in.pos == in.size, "%s: FLUSH consumed all input", name);
	{
		bop_inbuf_t pin = { packed.data, packed.len, 0 };

		do {
			bop_outbuf_t ob = { out, sizeof(out), 0 };

			r = bop_stage_process(d, &ob, &pin, BOP_STREAM_CONTINUE);
			tbuf_append(&back, out, ob.pos);
		} while (r == 1);
		/* Drain what the decompressor may still hold. */
		for (int i = 0; i < 1000 && r >= 0; i++) {
			bop_outbuf_t ob = { out, sizeof(out), 0 };
			bop_inbuf_t none = { "", 0, 0 };

			r = bop_stage_process(d, &ob, &none, BOP_STREAM_FLUSH);
			tbuf_append(&back, out, ob.pos);
			if (r == 0)
				break;
		}
	}
	ok(back.len == 150000 && memcmp(back.data, txt, 150000) == 0,
		"%s: flushed output decompresses to all 150000 bytes given (got %zu)", name, back.len);
	bop_stage_free(c);
	bop_stage_free(d);
	tbuf_free(&packed);
	tbuf_free(&back);
	free(txt);
}

static int decompress_bytes(bop_compression_t alg, const unsigned char *p, size_t n)
{
	bop_stage_t *d = decompressor(alg);
	tbuf_t back = { 0 };
	int r = drive_stage(d, p, n, odd, 65536, false, &back);

	bop_stage_free(d);
	tbuf_free(&back);
	return r;
}

static void test_bad_input(bop_compression_t alg)
{
	const char *name = bop_compression_name(alg);
	unsigned char *txt = compressible_bytes(300000);
	tbuf_t packed = { 0 };
	bop_stage_t *c = compressor(alg, 0, 1);
	const char *ended = alg == BOP_COMPRESSION_ZSTD ? "the zstd stream ended early"
		: "the gzip stream ended early";
	const char *corrupt = alg == BOP_COMPRESSION_ZSTD ? "zstd data is corrupt"
		: "gzip data is corrupt";
	int r;

	drive_stage(c, txt, 300000, whole, 65536, false, &packed);
	is_int(decompress_bytes(alg, packed.data, packed.len), 0, "intact data decompresses");
	r = decompress_bytes(alg, packed.data, packed.len / 2);
	is_int(r, BOP_EFORMAT, "truncated data fails with BOP_EFORMAT");
	ok(strstr(bop_error_last(), ended) != NULL, "%s: truncated: '%s'", name, bop_error_last());
	r = decompress_bytes(alg, packed.data, packed.len - 1);
	is_int(r, BOP_EFORMAT, "one byte missing fails with BOP_EFORMAT");
	packed.data[packed.len / 2] ^= 0x55;
	r = decompress_bytes(alg, packed.data, packed.len);
	is_int(r, BOP_EFORMAT, "a flipped byte fails with BOP_EFORMAT");
	ok(strstr(bop_error_last(), corrupt) != NULL, "%s: corrupt: '%s'", name, bop_error_last());
	r = decompress_bytes(alg, txt, 5000);
	is_int(r, BOP_EFORMAT, "data that is not compressed fails with BOP_EFORMAT");
	ok(strstr(bop_error_last(), corrupt) != NULL, "%s: not compressed: '%s'", name,
		bop_error_last());
	r = decompress_bytes(alg, NULL, 0);
	is_int(r, BOP_EFORMAT, "empty input fails with BOP_EFORMAT");
	ok(strstr(bop_error_last(), "empty") != NULL, "%s: empty: '%s'", name, bop_error_last());
	bop_stage_free(c);
	tbuf_free(&packed);
	free(txt);
}

/* A stage that ended refuses more input instead of starting a second stream silently. */
static void test_after_end(void)
{
	bop_stage_t *c = compressor(BOP_COMPRESSION_ZSTD, 0, 1);
	tbuf_t packed = { 0 };
	unsigned char out[64];
	bop_inbuf_t more = { "x", 1, 0 };
	bop_outbuf_t ob = { out, sizeof(out), 0 };

	drive_stage(c, (const unsigned char *)"abc", 3, whole, 4096, false, &packed);
	is_int(bop_stage_process(c, &ob, &more, BOP_STREAM_CONTINUE), BOP_EINVAL,
		"input after END is refused");
	bop_stage_free(c);
	tbuf_free(&packed);
}

int main(void)
{
	test_names();
	test_options();
	test_round_trips();
	test_concatenated(BOP_COMPRESSION_ZSTD);
	test_concatenated(BOP_COMPRESSION_GZIP);
	test_flush(BOP_COMPRESSION_ZSTD);
	test_flush(BOP_COMPRESSION_GZIP);
	test_bad_input(BOP_COMPRESSION_ZSTD);
	test_bad_input(BOP_COMPRESSION_GZIP);
	test_after_end();
	return done_testing();
}
