/*
 * The "age-encrypt" stage: writes the age header (one X25519 stanza per recipient, or a
 * single scrypt stanza), the payload nonce, then the plaintext in 64 KiB STREAM chunks.
 * A full chunk is sealed only once more input shows it is not the last one.
 */
#include "age_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

typedef struct age_encrypt {
	bop_stage_t base;
	bop_age_stream_t stream;
	unsigned char *head;            /* header and payload nonce, not yet written */
	size_t head_len;
	size_t head_pos;
	unsigned char *plain;           /* plaintext of the chunk being collected */
	size_t plain_len;
	unsigned char *sealed;          /* a sealed chunk not yet written */
	size_t sealed_len;
	size_t sealed_pos;
	bool ended;
	int failed;
} age_encrypt_t;

/* ---- header ---- */

static int random_bytes(unsigned char *buf, size_t n, bool secret)
{
	if ((secret ? RAND_priv_bytes(buf, (int)n) : RAND_bytes(buf, (int)n)) != 1)
		return bop__error(BOP_ERROR, "the random number generator failed");
	return 0;
}

static int x25519_stanza(bop_age_buf_t *b, const unsigned char recipient[BOP_AGE_KEY_LEN],
	const unsigned char file_key[BOP_AGE_FILE_KEY_LEN])
{
	unsigned char eph[BOP_AGE_KEY_LEN], salt[2 * BOP_AGE_KEY_LEN], shared[BOP_AGE_KEY_LEN];
	unsigned char key[BOP_AGE_KEY_LEN], body[BOP_AGE_BODY_LEN];
	char share_b64[BOP_AGE_COLUMNS];
	const char *args[2] = { "X25519", share_b64 };
	int ret;

	ret = random_bytes(eph, sizeof(eph), true);
	if (ret == 0)
		ret = bop__age_x25519(salt, eph, NULL);
	if (ret == 0)
		ret = bop__age_x25519(shared, eph, recipient);
	if (ret == 1)
		ret = bop__error(BOP_EFORMAT, "a recipient is not a usable X25519 public key");
	if (ret < 0)
		goto out;
	memcpy(salt + BOP_AGE_KEY_LEN, recipient, BOP_AGE_KEY_LEN);
	ret = bop__age_hkdf(key, shared, sizeof(shared), salt, sizeof(salt), BOP_AGE_X25519_INFO);
	if (ret == 0)
		ret = bop__age_wrap(body, key, file_key);
	if (ret == 0) {
		bop__age_b64_encode(share_b64, salt, BOP_AGE_KEY_LEN);
		ret = bop__age_buf_stanza(b, args, 2, body, sizeof(body));
	}
out:
	OPENSSL_cleanse(eph, sizeof(eph));
	OPENSSL_cleanse(shared, sizeof(shared));
	OPENSSL_cleanse(key, sizeof(key));
	return ret;
}

static int scrypt_stanza(bop_age_buf_t *b, const bop_keys_t *keys,
	const unsigned char file_key[BOP_AGE_FILE_KEY_LEN])
{
	unsigned char salt[BOP_AGE_SALT_LEN], key[BOP_AGE_KEY_LEN], body[BOP_AGE_BODY_LEN];
	char salt_b64[BOP_AGE_COLUMNS], wf[16];
	const char *args[3] = { "scrypt", salt_b64, wf };
	int ret;

	ret = random_bytes(salt, sizeof(salt), false);
	if (ret == 0)
		ret = bop__age_scrypt(key, keys->passphrase, keys->passphrase_len, salt,
			keys->work_factor);
	if (ret == 0)
		ret = bop__age_wrap(body, key, file_key);
	if (ret == 0) {
		bop__age_b64_encode(salt_b64, salt, sizeof(salt));
		snprintf(wf, sizeof(wf), "%u", keys->work_factor);
		ret = bop__age_buf_stanza(b, args, 3, body, sizeof(body));
	}
	OPENSSL_cleanse(key, sizeof(key));
	return ret;
}

/* Builds the header and the payload nonce into e->head, and keys the stream. */
static int build_head(age_encrypt_t *e, const bop_keys_t *keys)
{
	unsigned char file_key[BOP_AGE_FILE_KEY_LEN], mac[BOP_AGE_MAC_LEN];
	unsigned char nonce[BOP_AGE_NONCE_LEN];
	char mac_b64[BOP_AGE_COLUMNS];
	bop_age_buf_t b = { 0 };
	int ret;

	ret = random_bytes(file_key, sizeof(file_key), true);
	if (ret == 0)
		ret = bop__age_buf_append(&b, BOP_AGE_V1_LINE "\n", sizeof(BOP_AGE_V1_LINE));
	if (ret == 0 && keys->has_passphrase)
		ret = scrypt_stanza(&b, keys, file_key);
	for (size_t i = 0; ret == 0 && !keys->has_passphrase && i < keys->nrecipients; i++)
		ret = x25519_stanza(&b, keys->recipients[i], file_key);
	if (ret == 0)
		ret = bop__age_buf_append(&b, "---", 3);
	if (ret == 0)
		ret = bop__age_header_mac(mac, file_key, b.data, b.len);
	if (ret == 0) {
		mac_b64[0] = ' ';
		bop__age_b64_encode(mac_b64 + 1, mac, sizeof(mac));
		ret = bop__age_buf_append(&b, mac_b64, strlen(mac_b64));
	}
	if (ret == 0)
		ret = bop__age_buf_append(&b, "\n", 1);
	if (ret == 0)
		ret = random_bytes(nonce, sizeof(nonce), false);
	if (ret == 0)
		ret = bop__age_buf_append(&b, nonce, sizeof(nonce));
	if (ret == 0)
		ret = bop__age_stream_init(&e->stream, file_key, nonce, true);
	if (ret == 0) {
		e->head = (unsigned char *)b.data;
		e->head_len = b.len;
		b.data = NULL;
	}
	bop__age_buf_free(&b);
	OPENSSL_cleanse(file_key, sizeof(file_key));
	return ret;
}

/* ---- stream ---- */

/* Copies pending bytes to `out`; true when nothing is left. */
static bool drain(bop_outbuf_t *out, const unsigned char *buf, size_t len, size_t *pos)
{
	size_t n = len - *pos;

	if (n > out->size - out->pos)
		n = out->size - out->pos;
	if (n) {
		memcpy((unsigned char *)out->dst + out->pos, buf + *pos, n);
		out->pos += n;
		*pos += n;
	}
	return *pos == len;
}

/* Seals a chunk straight into `out` when it fits, else into e->sealed. */
static int seal_chunk(age_encrypt_t *e, bop_outbuf_t *out, const unsigned char *src, size_t len,
	bool last)
{
	int ret;

	if (out->size - out->pos >= len + BOP_AGE_TAG_LEN) {
		ret = bop__age_stream_seal(&e->stream, (unsigned char *)out->dst + out->pos, src, len, last);
		if (ret == 0)
			out->pos += len + BOP_AGE_TAG_LEN;
		return ret;
	}
	ret = bop__age_stream_seal(&e->stream, e->sealed, src, len, last);
	e->sealed_len = ret == 0 ? len + BOP_AGE_TAG_LEN : 0;
	e->sealed_pos = 0;
	return ret;
}

/* One step of work; returns 1 to go on, 0 when done with this call, 2 when `out` is full. */
static int encrypt_step(age_encrypt_t *e, bop_outbuf_t *out, bop_inbuf_t *in,
	bop_stream_directive_t directive)
{
	size_t avail = in->size - in->pos, n;
	int ret;

	if (!drain(out, e->head, e->head_len, &e->head_pos) ||
			!drain(out, e->sealed, e->sealed_len, &e->sealed_pos))
		return 2;
	if (e->ended) {
		if (avail)
			return bop__error(BOP_EINVAL, "age-encrypt: input after the end of the stream");
		return 0;
	}
	if (avail == 0) {
		if (directive != BOP_STREAM_END)
			return 0;
		/* The final chunk; empty only when the whole payload is. */
		ret = seal_chunk(e, out, e->plain, e->plain_len, true);
		e->plain_len = 0;
		e->ended = true;
		return ret < 0 ? ret : 1;
	}
	if (e->plain_len == BOP_AGE_CHUNK) {
		ret = seal_chunk(e, out, e->plain, BOP_AGE_CHUNK, false);
		e->plain_len = 0;
		return ret < 0 ? ret : 1;
	}
	if (e->plain_len == 0 && avail > BOP_AGE_CHUNK) {
		/* A whole chunk with more behind it: seal it without collecting it first. */
		ret = seal_chunk(e, out, (const unsigned char *)in->src + in->pos, BOP_AGE_CHUNK, false);
		if (ret == 0)
			in->pos += BOP_AGE_CHUNK;
		return ret < 0 ? ret : 1;
	}
	n = BOP_AGE_CHUNK - e->plain_len;
	if (n > avail)
		n = avail;
	memcpy(e->plain + e->plain_len, (const unsigned char *)in->src + in->pos, n);
	e->plain_len += n;
	in->pos += n;
	return 1;
}

static int encrypt_process(bop_stage_t *stage, bop_outbuf_t *out, bop_inbuf_t *in,
	bop_stream_directive_t directive)
{
	age_encrypt_t *e = (age_encrypt_t *)stage;
	int ret;

	if (e->failed)
		return bop__error(e->failed, "age-encrypt: the stage failed earlier and cannot continue");
	do
		ret = encrypt_step(e, out, in, directive);
	while (ret == 1);
	if (ret < 0) {
		e->failed = ret;
		return ret;
	}
	return ret == 2 ? 1 : 0;
}

static void encrypt_free(bop_stage_t *stage)
{
	age_encrypt_t *e = (age_encrypt_t *)stage;

	if (!e)
		return;
	bop__age_stream_free(&e->stream);
	free(e->head);
	if (e->plain)
		OPENSSL_cleanse(e->plain, BOP_AGE_CHUNK);
	free(e->plain);
	free(e->sealed);
	free(e);
}

BOP_EXTERN(int) bop_stage_age_encrypt_new(bop_stage_t **out, const bop_keys_t *keys)
{
	age_encrypt_t *e;
	int ret;

	if (!out || !keys)
		return bop__error(BOP_EINVAL, "bop_stage_age_encrypt_new: NULL argument");
	*out = NULL;
	if (keys->has_passphrase && keys->nrecipients)
		return bop__error(BOP_EINVAL, "cannot encrypt to a passphrase and to recipients at "
			"once: age allows a passphrase only as the single recipient");
	if (!keys->has_passphrase && !keys->nrecipients)
		return bop__error(BOP_EINVAL, "no age recipient or passphrase to encrypt to");
	e = bop__calloc(1, sizeof(*e));
	if (!e)
		return BOP_ENOMEM;
	e->base = (bop_stage_t)BOP_STAGE_INIT(.name = "age-encrypt", .process = encrypt_process,
		.free = encrypt_free);
	e->plain = malloc(BOP_AGE_CHUNK);
	e->sealed = malloc(BOP_AGE_ENC_CHUNK);
	if (!e->plain || !e->sealed) {
		ret = bop__error_oom();
		goto fail;
	}
	ret = build_head(e, keys);
	if (ret < 0)
		goto fail;
	*out = &e->base;
	return 0;
fail:
	encrypt_free(&e->base);
	return bop__error_wrap("age-encrypt");
}
