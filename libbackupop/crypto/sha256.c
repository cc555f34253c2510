/*
 * The SHA-256 tap: passes the stream through unchanged while hashing and counting it, and
 * optionally checks both at the end.
 *
 * SHA-256 runs at a few hundred MB/s a core on CPUs without SHA extensions, and even with
 * them (about 1.8 GB/s) hashing the plaintext costs a restore as much CPU as zstd's
 * decompression. So with two cores or more the hashing runs on a thread of its own:
 * process() copies the data into a bounded ring and returns, and END waits for the thread
 * to catch up. The pipeline thread meanwhile decompresses or keeps zstd's workers fed.
 * Where zstd has a worker per core (a backup), those workers keep every core busy already
 * and the copy into the ring and the hand-offs only add work (files backup on 2 cores: 8%
 * more CPU): bop__sha256_in_place() hashes such a stream on the caller's thread. A restore
 * on 2 cores hashes its plaintext on the thread (files restore of /usr/share, 1.2 GB:
 * 2.15 s -> 1.97 s); its stored stream it only counts (bop__sha256_count_only), a
 * verification hashes that in place.
 */
#include "internal.h"

#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define SHA256_LEN 32
#define RING_SIZE (4u << 20)

/* Bytes waiting to be hashed: [tail, head) of an ever-growing count, modulo RING_SIZE. */
typedef struct hash_ring {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	unsigned char *data;
	uint64_t head;
	uint64_t tail;
	bool stop;
	bool failed;
} hash_ring_t;

typedef struct sha256_stage {
	bop_stage_t base;
	EVP_MD_CTX *ctx;
	hash_ring_t *ring;      /* NULL: hash in the caller's thread */
	bool count_only;        /* bop__sha256_count_only(): sizes, no digest */
	uint64_t bytes;
	bool ended;
	bool expect;
	uint64_t expect_bytes;
	char expect_hex[BOP_SHA256_HEX_SIZE];
	char hex[BOP_SHA256_HEX_SIZE];
} sha256_stage_t;

static void *ring_main(void *arg)
{
	sha256_stage_t *s = arg;
	hash_ring_t *r = s->ring;

	pthread_setname_np(pthread_self(), "bop-sha256");

	pthread_mutex_lock(&r->lock);
	for (;;) {
		size_t off, n;

		while (r->tail == r->head && !r->stop)
			pthread_cond_wait(&r->cond, &r->lock);
		if (r->tail == r->head)
			break;
		off = (size_t)(r->tail % RING_SIZE);
		n = (size_t)(r->head - r->tail);
		if (n > RING_SIZE - off)
			n = RING_SIZE - off;
		pthread_mutex_unlock(&r->lock);
		/* The producer never overwrites [tail, head), so this runs unlocked. */
		if (!EVP_DigestUpdate(s->ctx, r->data + off, n))
			r->failed = true;
		pthread_mutex_lock(&r->lock);
		r->tail += n;
		pthread_cond_signal(&r->cond);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* Queues `n` bytes for the hashing thread, waiting while the ring is full. */
static void ring_push(hash_ring_t *r, const unsigned char *p, size_t n)
{
	pthread_mutex_lock(&r->lock);
	while (n > 0) {
		size_t off = (size_t)(r->head % RING_SIZE);
		size_t room = RING_SIZE - (size_t)(r->head - r->tail);
		size_t k = n;

		if (room == 0) {
			pthread_cond_wait(&r->cond, &r->lock);
			continue;
		}
		if (k > room)
			k = room;
		if (k > RING_SIZE - off)
			k = RING_SIZE - off;
		pthread_mutex_unlock(&r->lock);
		/* [head, tail + RING_SIZE) is ours alone: the thread reads only [tail, head). */
		memcpy(r->data + off, p, k);
		pthread_mutex_lock(&r->lock);
		r->head += k;
		p += k;
		n -= k;
		pthread_cond_signal(&r->cond);
	}
	pthread_mutex_unlock(&r->lock);
}

/* Lets the thread hash what is queued, then ends it. */
static bool ring_join(hash_ring_t *r)
{
	pthread_mutex_lock(&r->lock);
	r->stop = true;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	return !r->failed;
}

static void ring_free(hash_ring_t *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r->data);
	free(r);
}

/* Starts the hashing thread; on any failure the stage simply hashes inline. */
static void ring_start(sha256_stage_t *s)
{
	hash_ring_t *r;

	if (bop__ncpu() < 2)
		return;
	r = calloc(1, sizeof(*r));
	if (!r)
		return;
	r->data = malloc(RING_SIZE);
	if (!r->data || pthread_mutex_init(&r->lock, NULL) != 0) {
		free(r->data);
		free(r);
		return;
	}
	pthread_cond_init(&r->cond, NULL);
	s->ring = r;
	if (pthread_create(&r->thread, NULL, ring_main, s) != 0) {
		s->ring = NULL;
		ring_free(r);
	}
}

static int sha256_check(const sha256_stage_t *s)
{
	if (!s->expect)
		return 0;
	if (s->bytes != s->expect_bytes)
		return bop__error(BOP_EINTEGRITY,
			"the stream has %" PRIu64 " bytes but %" PRIu64 " were expected: the data is incomplete or was changed",
			s->bytes, s->expect_bytes);
	if (!s->count_only && strcmp(s->hex, s->expect_hex) != 0)
		return bop__error(BOP_EINTEGRITY,
			"SHA-256 mismatch: the stream has sha256:%s but sha256:%s was expected: the data was changed",
			s->hex, s->expect_hex);
	return 0;
}

static int sha256_finish(sha256_stage_t *s)
{
	unsigned char digest[SHA256_LEN];
	unsigned int len = 0;
	bool hashed = true;

	if (s->ring) {
		hashed = ring_join(s->ring);
		ring_free(s->ring);
		s->ring = NULL;
	}
	s->ended = true;
	if (s->count_only)
		return sha256_check(s);
	if (!hashed || !EVP_DigestFinal_ex(s->ctx, digest, &len) || len != SHA256_LEN)
		return bop__error(BOP_ERROR, "SHA-256 could not be computed (OpenSSL error)");
	bop__hex(s->hex, digest, SHA256_LEN);
	return sha256_check(s);
}

/* Hashes and counts `n` more bytes of the stream. */
static int sha256_take(sha256_stage_t *s, const unsigned char *src, size_t n)
{
	if (s->ended) {
		if (n)
			return bop__error(BOP_EINVAL, "sha256: input given after the end of the stream");
		return 0;
	}
	/* A stream longer than expected fails before its excess goes on: a decompression
	 * bomb stops one byte past the declared size, not at its end. */
	if (s->expect && n > s->expect_bytes - s->bytes)
		return bop__error(BOP_EINTEGRITY,
			"the stream has more than the %" PRIu64 " bytes that were expected: the data was changed",
			s->expect_bytes);
	if (n) {
		/* counting only, the stage has no ring (bop__sha256_count_only) */
		if (s->ring)
			ring_push(s->ring, src, n);
		else if (!s->count_only && !EVP_DigestUpdate(s->ctx, src, n))
			return bop__error(BOP_ERROR, "SHA-256 could not be computed (OpenSSL error)");
		s->bytes += n;
	}
	return 0;
}

static int sha256_process(bop_stage_t *base, bop_outbuf_t *out, bop_inbuf_t *in,
	bop_stream_directive_t directive)
{
	sha256_stage_t *s = (sha256_stage_t *)base;
	size_t n = in->size - in->pos;
	const unsigned char *src = (const unsigned char *)in->src + in->pos;
	int ret;

	if (n > out->size - out->pos)
		n = out->size - out->pos;
	if ((ret = sha256_take(s, src, n)) < 0)
		return ret;
	if (n) {
		memcpy((unsigned char *)out->dst + out->pos, src, n);
		out->pos += n;
		in->pos += n;
	}
	if (in->pos < in->size)
		return 1;
	if (directive == BOP_STREAM_END && !s->ended)
		return sha256_finish(s);
	return 0;
}

int bop__sha256_observe(bop_stage_t *stage, const void *buf, size_t len,
	bop_stream_directive_t directive)
{
	sha256_stage_t *s = (sha256_stage_t *)stage;
	int ret;

	if ((ret = sha256_take(s, buf, len)) < 0)
		return ret;
	if (directive == BOP_STREAM_END && !s->ended)
		return sha256_finish(s);
	return 0;
}

static void sha256_free(bop_stage_t *base)
{
	sha256_stage_t *s = (sha256_stage_t *)base;

	if (!s)
		return;
	if (s->ring) {
		ring_join(s->ring);
		ring_free(s->ring);
	}
	EVP_MD_CTX_free(s->ctx);
	free(s);
}

BOP_EXTERN(int) bop_stage_sha256_new(bop_stage_t **out)
{
	sha256_stage_t *s;

	if (!out)
		return bop__error(BOP_EINVAL, "bop_stage_sha256_new: NULL out");
	*out = NULL;
	s = bop__calloc(1, sizeof(*s));
	if (!s)
		return BOP_ENOMEM;
	s->base = (bop_stage_t)BOP_STAGE_INIT(.name = "sha256", .process = sha256_process,
		.free = sha256_free);
	s->ctx = EVP_MD_CTX_new();
	if (!s->ctx || !EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL)) {
		sha256_free(&s->base);
		return bop__error(BOP_ERROR, "SHA-256 is not available (OpenSSL error)");
	}
	ring_start(s);
	*out = &s->base;
	return 0;
}

static bool is_sha256_stage(const bop_stage_t *stage)
{
	return stage && BOP__VERSION_OK(stage->version, STAGE_VERSION) &&
		stage->process == sha256_process;
}

void bop__sha256_in_place(bop_stage_t *stage)
{
	sha256_stage_t *s = (sha256_stage_t *)stage;

	if (!is_sha256_stage(stage) || !s->ring || s->bytes > 0)
		return;
	ring_join(s->ring);
	ring_free(s->ring);
	s->ring = NULL;
}

void bop__sha256_count_only(bop_stage_t *stage)
{
	sha256_stage_t *s = (sha256_stage_t *)stage;

	if (!is_sha256_stage(stage) || s->bytes > 0)
		return;
	bop__sha256_in_place(stage);
	s->count_only = true;
}

bool bop__sha256_threaded(const bop_stage_t *stage)
{
	return is_sha256_stage(stage) && ((const sha256_stage_t *)stage)->ring != NULL;
}

bool bop__sha256_is_tap(const bop_stage_t *stage)
{
	return is_sha256_stage(stage);
}

BOP_EXTERN(int) bop_stage_sha256_expect(bop_stage_t *stage, const char *hex, uint64_t bytes)
{
	sha256_stage_t *s = (sha256_stage_t *)stage;

	if (!is_sha256_stage(stage))
		return bop__error(BOP_EINVAL, "bop_stage_sha256_expect: not a SHA-256 stage");
	if (!hex || strlen(hex) != BOP_SHA256_HEX_SIZE - 1)
		return bop__error(BOP_EINVAL, "an expected SHA-256 must be 64 hex digits");
	for (size_t i = 0; i < BOP_SHA256_HEX_SIZE - 1; i++) {
		if (!isxdigit((unsigned char)hex[i]))
			return bop__error(BOP_EINVAL, "an expected SHA-256 must be 64 hex digits");
		s->expect_hex[i] = (char)tolower((unsigned char)hex[i]);
	}
	s->expect_hex[BOP_SHA256_HEX_SIZE - 1] = '\0';
	s->expect_bytes = bytes;
	s->expect = true;
	return 0;
}

BOP_EXTERN(int) bop_stage_sha256_result(const bop_stage_t *stage, char *hex, uint64_t *bytes)
{
	const sha256_stage_t *s = (const sha256_stage_t *)stage;

	if (!is_sha256_stage(stage))
		return bop__error(BOP_EINVAL, "bop_stage_sha256_result: not a SHA-256 stage");
	if (!s->ended)
		return bop__error(BOP_EINVAL, "the SHA-256 is known only after the end of the stream");
	if (s->count_only)
		return bop__error(BOP_EINVAL, "this stream was counted, not hashed");
	if (hex)
		memcpy(hex, s->hex, BOP_SHA256_HEX_SIZE);
	if (bytes)
		*bytes = s->bytes;
	return 0;
}
