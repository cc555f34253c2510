/* The SHA-256 tap: known digests, pass-through, byte counts and expect(). */
#include "tap.h"
#include "codec-util.h"

#include <stdio.h>
#include <unistd.h>

#include "backupop.h"
#include "internal.h"

static const size_t whole[] = { 0 };
static const size_t odd[] = { 1, 3, 1000, 7, 65536, 12345, 0 };

/* Hashes `data` through a tap; *hex gets the digest. Returns the END result. */
static int hash_bytes(const unsigned char *data, size_t len, const size_t *pieces, size_t room,
	const char *expect_hex, uint64_t expect_len, char hex[BOP_SHA256_HEX_SIZE], uint64_t *count)
{
	bop_stage_t *st = NULL;
	tbuf_t out = { 0 };
	int r;

	hex[0] = '\0';
	if (bop_stage_sha256_new(&st) < 0)
		return -1;
	if (expect_hex && bop_stage_sha256_expect(st, expect_hex, expect_len) < 0) {
		bop_stage_free(st);
		return -1;
	}
	r = drive_stage(st, data, len, pieces, room, false, &out);
	if (r == 0) {
		if (bop_stage_sha256_result(st, hex, count) < 0)
			r = -2;
		if (out.len != len || (len && memcmp(out.data, data, len) != 0))
			r = -3;
	}
	bop_stage_free(st);
	tbuf_free(&out);
	return r;
}

/* The digest `sha256sum` gives, or "" when it is not installed. */
static void sha256sum_of(const unsigned char *data, size_t len, char out[BOP_SHA256_HEX_SIZE])
{
	char path[] = "/tmp/bop-sha-XXXXXX";
	char cmd[128];
	FILE *f, *p;
	int fd = mkstemp(path);

	out[0] = '\0';
	if (fd < 0)
		return;
	f = fdopen(fd, "wb");
	fwrite(data, 1, len, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "sha256sum %s 2>/dev/null", path);
	p = popen(cmd, "r");
	if (p) {
		if (fscanf(p, "%64s", out) != 1)
			out[0] = '\0';
		pclose(p);
	}
	unlink(path);
}

/* Checks `hex` against what sha256sum gives for the data (skipped without the tool). */
static void is_sha256sum(const unsigned char *data, size_t len, const char *hex, const char *what)
{
	char tool[BOP_SHA256_HEX_SIZE], name[128];

	snprintf(name, sizeof(name), "%s matches sha256sum", what);
	sha256sum_of(data, len, tool);
	if (tool[0])
		is_str(hex, tool, name);
	else
		skip(1, "sha256sum is not installed");
}

static void test_vectors(void)
{
	char hex[BOP_SHA256_HEX_SIZE];
	unsigned char *a = malloc(1 << 20);
	uint64_t n = 99;

	memset(a, 'a', 1 << 20);
	is_int(hash_bytes(NULL, 0, whole, 4096, NULL, 0, hex, &n), 0, "empty stream");
	is_str(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"SHA-256 of nothing");
	is_int(n, 0, "byte count of nothing");
	is_int(hash_bytes((const unsigned char *)"abc", 3, odd, 1, NULL, 0, hex, &n), 0, "abc");
	is_str(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		"SHA-256 of abc (FIPS 180-2 vector)");
	is_int(n, 3, "byte count of abc");
	is_int(hash_bytes(a, 1000000, odd, 7777, NULL, 0, hex, &n), 0, "a million a");
	is_str(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
		"SHA-256 of a million 'a' (FIPS 180-2 vector)");
	is_int(hash_bytes(a, 1 << 20, whole, 1 << 20, NULL, 0, hex, &n), 0, "1 MiB of a");
	is_int(n, 1 << 20, "byte count of 1 MiB");
	is_sha256sum(a, 1 << 20, hex, "1 MiB of 'a'");
	free(a);
}

/* Many MiB in odd pieces: hashing keeps the order of the data whatever the piece sizes. */
static void test_large(void)
{
	static const size_t big[] = { 1 << 20, 0 };
	size_t len = 11 * 1024 * 1024 + 13;
	unsigned char *data = random_bytes(len, 3);
	char hex[BOP_SHA256_HEX_SIZE], hex2[BOP_SHA256_HEX_SIZE];
	uint64_t n = 0;

	is_int(hash_bytes(data, len, odd, 100000, NULL, 0, hex, &n), 0, "11 MiB in odd pieces");
	is_int(n, len, "byte count of 11 MiB");
	is_int(hash_bytes(data, len, big, 1 << 20, NULL, 0, hex2, NULL), 0, "11 MiB in 1 MiB pieces");
	is_str(hex, hex2, "the same digest whatever the pieces");
	is_sha256sum(data, len, hex, "11 MiB");
	free(data);
}

static void test_expect(void)
{
	static const char abc[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	static const char abc_upper[] = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
	static const char other[] = "ca7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	const unsigned char *p = (const unsigned char *)"abc";
	char hex[BOP_SHA256_HEX_SIZE];
	bop_stage_t *st = NULL;
	int r;

	is_int(hash_bytes(p, 3, whole, 16, abc, 3, hex, NULL), 0, "the expected digest and size pass");
	is_int(hash_bytes(p, 3, whole, 16, abc_upper, 3, hex, NULL), 0, "upper-case hex is accepted");
	r = hash_bytes(p, 3, whole, 16, other, 3, hex, NULL);
	is_int(r, BOP_EINTEGRITY, "another digest fails with BOP_EINTEGRITY at END");
	ok(strstr(bop_error_last(), "SHA-256 mismatch") && strstr(bop_error_last(), abc) &&
		strstr(bop_error_last(), other), "the message gives both digests: %s", bop_error_last());
	r = hash_bytes(p, 3, whole, 16, abc, 4, hex, NULL);
	is_int(r, BOP_EINTEGRITY, "another size fails with BOP_EINTEGRITY at END");
	ok(strstr(bop_error_last(), "3 bytes but 4 were expected") != NULL,
		"the message gives both sizes: %s", bop_error_last());

	bop_stage_sha256_new(&st);
	is_int(bop_stage_sha256_expect(st, "abc", 3), BOP_EINVAL, "a short digest is refused");
	is_int(bop_stage_sha256_expect(st, "zz7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", 3),
		BOP_EINVAL, "a digest that is not hex is refused");
	is_int(bop_stage_sha256_result(st, hex, NULL), BOP_EINVAL, "no result before END");
	bop_stage_free(st);
	bop_stage_compress_new(&st, NULL);
	is_int(bop_stage_sha256_result(st, hex, NULL), BOP_EINVAL, "no result from another stage");
	is_int(bop_stage_sha256_expect(st, abc, 3), BOP_EINVAL, "no expect on another stage");
	bop_stage_free(st);
}

/* CONTINUE only forwards; the digest is fixed at END. */
static void test_contract(void)
{
	bop_stage_t *st = NULL;
	unsigned char out[2];
	bop_inbuf_t in = { "abcde", 5, 0 };
	bop_outbuf_t ob = { out, sizeof(out), 0 };

	bop_stage_sha256_new(&st);
	is_str(bop_stage_name(st), "sha256", "stage name");
	is_int(bop_stage_process(st, &ob, &in, BOP_STREAM_CONTINUE), 1, "1 when the output is full");
	ok(in.pos == 2 && ob.pos == 2 && memcmp(out, "ab", 2) == 0, "copied what fits");
	bop_stage_free(st);
}

/* The tap hashes on a thread of its own with two cores or more (the stream is copied into
 * a 4 MiB ring): the same digests, counts and checks as in place, through the ring's wrap. */
static void test_threaded(void)
{
	static const size_t odd_big[] = { 3 << 20, 5, (1 << 22) - 1, 65537, 0 };
	size_t len = 23 * 1024 * 1024 + 7;
	unsigned char *data = random_bytes(len, 5);
	char hex[BOP_SHA256_HEX_SIZE], inplace[BOP_SHA256_HEX_SIZE];
	bop_stage_t *st = NULL;
	uint64_t n = 0;
	int r;

	bop__ncpu_override = 1;
	is_int(hash_bytes(data, len, odd, 1 << 20, NULL, 0, inplace, NULL), 0,
		"one core: 23 MiB hashed in place");
	bop_stage_sha256_new(&st);
	ok(!bop__sha256_threaded(st), "one core: no hashing thread");
	bop_stage_free(st);

	bop__ncpu_override = 2;
	bop_stage_sha256_new(&st);
	ok(bop__sha256_threaded(st), "two cores: the tap hashes on a thread of its own");
	bop__sha256_in_place(st);
	ok(!bop__sha256_threaded(st), "two cores: a tap asked to hash in place has no thread");
	bop_stage_free(st);

	bop__ncpu_override = 4;
	bop_stage_sha256_new(&st);
	ok(bop__sha256_threaded(st), "four cores: the tap hashes on a thread of its own");
	bop_stage_free(st);
	is_int(hash_bytes(data, len, odd_big, 1 << 22, NULL, 0, hex, &n), 0,
		"four cores: 23 MiB through the ring in pieces up to 4 MiB");
	is_str(hex, inplace, "the same digest as hashed in place");
	is_int(n, len, "the same byte count");
	is_sha256sum(data, len, hex, "23 MiB through the ring");
	is_int(hash_bytes(data, len, odd, 100000, inplace, len, hex, NULL), 0,
		"the expected digest and size pass through the ring");
	r = hash_bytes(data, len, odd, 100000, inplace, len - 1, hex, NULL);
	is_int(r, BOP_EINTEGRITY, "one byte more than expected fails through the ring");
	data[len / 2] ^= 1;
	r = hash_bytes(data, len, odd, 100000, inplace, len, hex, NULL);
	is_int(r, BOP_EINTEGRITY, "one changed bit fails the digest through the ring");
	ok(strstr(bop_error_last(), "SHA-256 mismatch") != NULL, "... with the mismatch named: %s",
		bop_error_last());
	/* freed before END: the thread is joined (ASan and the leak check see the rest) */
	bop_stage_sha256_new(&st);
	{
		bop_inbuf_t in = { data, 1 << 20, 0 };
		unsigned char *out = malloc(1 << 20);
		bop_outbuf_t ob = { out, 1 << 20, 0 };

		is_int(bop_stage_process(st, &ob, &in, BOP_STREAM_CONTINUE), 0,
			"1 MiB given to the thread");
		free(out);
	}
	bop_stage_free(st);
	bop__ncpu_override = 0;
	free(data);
}

/* ---- which taps of a pipeline hash on a thread of their own ---- */

typedef struct placement {
	bop_stage_t *taps[2];
	int threaded[2];        /* seen by the source's first read: 1 threaded, 0 in place */
	const tbuf_t *data;
	size_t pos;
	tbuf_t out;
} placement_t;

static int placement_read(void *buf, size_t cap, size_t *got, void *payload)
{
	placement_t *pl = payload;
	size_t n = pl->data->len - pl->pos;

	if (pl->pos == 0) {
		for (int i = 0; i < 2; i++)
			pl->threaded[i] = bop__sha256_threaded(pl->taps[i]);
	}
	if (n > cap)
		n = cap;
	memcpy(buf, pl->data->data + pl->pos, n);
	pl->pos += n;
	*got = n;
	return 0;
}

static int placement_write(const void *buf, size_t len, void *payload)
{
	tbuf_append(&((placement_t *)payload)->out, buf, len);
	return 0;
}

/* Runs `data` through tap, codec stage, tap; `codec` NULL: zstd decompression, else
 * compression with these options. Returns the pipeline's result; pl->out gets its output. */
static int run_placed(placement_t *pl, const tbuf_t *data, const bop_compress_options_t *codec)
{
	bop_pipeline_t *p = NULL;
	bop_source_t *src = NULL;
	bop_sink_t *sink = NULL;
	bop_stage_t *st = NULL;
	int r;

	*pl = (placement_t){ .threaded = { -1, -1 }, .data = data };
	bop_pipeline_new(&p, NULL);
	bop_stage_sha256_new(&pl->taps[0]);
	bop_pipeline_add_stage(p, pl->taps[0]);
	if (codec)
		bop_stage_compress_new(&st, codec);
	else
		bop_stage_decompress_new(&st, BOP_COMPRESSION_ZSTD);
	bop_pipeline_add_stage(p, st);
	bop_stage_sha256_new(&pl->taps[1]);
	bop_pipeline_add_stage(p, pl->taps[1]);
	bop_source_callback_new(&src, placement_read, pl);
	bop_sink_callback_new(&sink, placement_write, pl);
	bop_pipeline_set_source(p, src);
	bop_pipeline_set_sink(p, sink);
	r = bop_pipeline_run(p);
	bop_pipeline_free(p);
	return r;
}

/* A backup whose zstd runs a worker per core hashes in place (the workers keep every core
 * busy); otherwise the plaintext side gets a thread, and with fewer than three cores the
 * compressed side (a fraction of the size) is hashed in place. */
static void test_placement(void)
{
	unsigned char *raw = random_bytes(3 << 20, 7);
	tbuf_t data = { 0 }, packed = { 0 }, back = { 0 };
	bop_compress_options_t one = BOP_COMPRESS_OPTIONS_INIT, all = BOP_COMPRESS_OPTIONS_INIT;
	placement_t pl;

	for (size_t i = 0; i < 4; i++)     /* compressible: 12 MiB, the same 3 MiB four times */
		tbuf_append(&data, raw, 3 << 20);
	one.threads = 1;
	bop__ncpu_override = 2;
	is_int(run_placed(&pl, &data, &one), 0, "two cores, one zstd worker: backup runs");
	ok(pl.threaded[0] == 1, "... the plaintext is hashed on a thread");
	ok(pl.threaded[1] == 0, "... the compressed stream in place");
	packed = pl.out;
	is_int(run_placed(&pl, &data, &all), 0, "two cores, a zstd worker per core: backup runs");
	ok(pl.threaded[0] == 0 && pl.threaded[1] == 0, "... both streams are hashed in place");
	tbuf_free(&pl.out);
	is_int(run_placed(&pl, &packed, NULL), 0, "two cores: restore runs");
	ok(pl.threaded[0] == 0, "... the stored stream is hashed in place");
	ok(pl.threaded[1] == 1, "... the plaintext on a thread");
	ok(pl.out.len == data.len && memcmp(pl.out.data, data.data, data.len) == 0,
		"... and comes back byte for byte");
	back = pl.out;
	bop__ncpu_override = 4;
	is_int(run_placed(&pl, &packed, NULL), 0, "four cores: restore runs");
	ok(pl.threaded[0] == 1 && pl.threaded[1] == 1, "... both streams are hashed on threads");
	tbuf_free(&pl.out);
	one.threads = 2;
	is_int(run_placed(&pl, &data, &one), 0, "four cores, two zstd workers: backup runs");
	ok(pl.threaded[0] == 1 && pl.threaded[1] == 1, "... both streams are hashed on threads");
	tbuf_free(&pl.out);
	bop__ncpu_override = 0;
	tbuf_free(&back);
	tbuf_free(&packed);
	tbuf_free(&data);
	free(raw);
}

int main(void)
{
	test_vectors();
	test_large();
	test_expect();
	test_contract();
	test_threaded();
	test_placement();
	return done_testing();
}
