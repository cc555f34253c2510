/*
 * The "age-decrypt" stage: reads and checks the age header, unwraps the file key with an
 * X25519 identity or the scrypt passphrase, verifies the header MAC, then opens the payload
 * one 64 KiB STREAM chunk at a time. A chunk's plaintext is released only after its
 * Poly1305 tag verified, and only the chunk flagged final may end the stream.
 */
#include "age_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

typedef enum decrypt_state {
	D_HEADER,
	D_NONCE,
	D_PAYLOAD,
	D_DONE,
} decrypt_state_t;

/* Failures found on an authentic chunk: its plaintext is released first, then they are
 * reported, as the age reference implementation and its test vectors do. */
typedef enum deferred {
	DEFER_NONE,
	DEFER_TRUNCATED,                /* a middle chunk ends the input: no final chunk */
	DEFER_TRAILING,                 /* data follows the final chunk */
} deferred_t;

typedef struct age_decrypt {
	bop_stage_t base;
	decrypt_state_t state;
	/* what we may open the file with (copies, wiped on free) */
	bop_age_identity_t *ids;
	size_t nids;
	char *pass;
	size_t pass_len;
	bool has_pass;
	unsigned int max_work_factor;
	/* header */
	char *hdr;
	size_t hdr_len;
	size_t hdr_cap;
	size_t line_start;
	unsigned char nonce[BOP_AGE_NONCE_LEN];
	size_t nonce_len;
	unsigned char file_key[BOP_AGE_FILE_KEY_LEN];
	/* payload */
	bop_age_stream_t stream;
	unsigned char *cbuf;            /* ciphertext of the chunk being collected */
	size_t clen;
	unsigned char *pbuf;            /* authenticated plaintext not yet released */
	size_t plen;
	size_t ppos;
	deferred_t deferred;            /* fail once pbuf is released */
	uint64_t deferred_chunk;
	int failed;
} age_decrypt_t;

/* ---- unwrapping the file key ---- */

typedef struct stanza_counts {
	size_t x25519;
	size_t scrypt;
	size_t other;
} stanza_counts_t;

static int check_x25519_stanza(const bop_age_stanza_t *st, size_t idx, unsigned char share[32])
{
	if (st->nargs != 2)
		return bop__error(BOP_EFORMAT, "X25519 stanza %zu must have exactly one argument "
			"(the ephemeral share), it has %zu", idx, st->nargs - 1);
	if (!bop__age_b64_decode_exact(share, BOP_AGE_KEY_LEN, st->args[1]))
		return bop__error(BOP_EFORMAT, "X25519 stanza %zu: the share is not a canonical "
			"base64 32-byte value", idx);
	if (st->body_len != BOP_AGE_BODY_LEN)
		return bop__error(BOP_EFORMAT, "X25519 stanza %zu: the wrapped file key is %zu bytes, "
			"not %d", idx, st->body_len, BOP_AGE_BODY_LEN);
	return 0;
}

static int parse_work_factor(const char *s, unsigned int *out)
{
	size_t n = strlen(s);

	*out = 0;
	if (n == 0 || n > 2 || s[0] < '1' || s[0] > '9' || (n == 2 && (s[1] < '0' || s[1] > '9')))
		return -1;
	*out = n == 2 ? (unsigned int)(s[0] - '0') * 10 + (unsigned int)(s[1] - '0') :
		(unsigned int)(s[0] - '0');
	return 0;
}

static int check_scrypt_stanza(const bop_age_stanza_t *st, size_t idx,
	unsigned char salt[BOP_AGE_SALT_LEN], unsigned int *wf)
{
	if (st->nargs != 3)
		return bop__error(BOP_EFORMAT, "scrypt stanza %zu must have two arguments (salt and "
			"work factor), it has %zu", idx, st->nargs - 1);
	if (!bop__age_b64_decode_exact(salt, BOP_AGE_SALT_LEN, st->args[1]))
		return bop__error(BOP_EFORMAT, "scrypt stanza %zu: the salt is not a canonical base64 "
			"16-byte value", idx);
	if (parse_work_factor(st->args[2], wf) < 0)
		return bop__error(BOP_EFORMAT, "scrypt stanza %zu: the work factor '%.20s' is not a "
			"decimal number without leading zeros", idx, st->args[2]);
	if (st->body_len != BOP_AGE_BODY_LEN)
		return bop__error(BOP_EFORMAT, "scrypt stanza %zu: the wrapped file key is %zu bytes, "
			"not %d", idx, st->body_len, BOP_AGE_BODY_LEN);
	return 0;
}

/* Checks every stanza we understand, even those we may not be able to open. */
static int check_stanzas(const bop_age_header_t *h, stanza_counts_t *c)
{
	unsigned char buf[BOP_AGE_KEY_LEN];
	unsigned int wf;
	int ret = 0;

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < h->nstanzas && ret == 0; i++) {
		const bop_age_stanza_t *st = &h->stanzas[i];

		if (strcmp(st->args[0], "X25519") == 0) {
			ret = check_x25519_stanza(st, i + 1, buf);
			c->x25519++;
		} else if (strcmp(st->args[0], "scrypt") == 0) {
			ret = check_scrypt_stanza(st, i + 1, buf, &wf);
			c->scrypt++;
		} else {
			c->other++;
		}
	}
	if (ret == 0 && c->scrypt && h->nstanzas > 1)
		ret = bop__error(BOP_EFORMAT, "a passphrase (scrypt) stanza must be the only stanza of "
			"the header, but there are %zu stanzas", h->nstanzas);
	return ret;
}

/* 0 and the file key when `id` opens the stanza, 1 when it does not. */
static int try_x25519(age_decrypt_t *d, const bop_age_identity_t *id, const bop_age_stanza_t *st,
	size_t idx)
{
	unsigned char salt[2 * BOP_AGE_KEY_LEN], shared[BOP_AGE_KEY_LEN], key[BOP_AGE_KEY_LEN];
	int ret;

	bop__age_b64_decode_exact(salt, BOP_AGE_KEY_LEN, st->args[1]);
	memcpy(salt + BOP_AGE_KEY_LEN, id->public, BOP_AGE_KEY_LEN);
	ret = bop__age_x25519(shared, id->secret, salt);
	if (ret == 1)
		ret = bop__error(BOP_EFORMAT, "X25519 stanza %zu: the share is a low-order point "
			"(all-zero shared secret); the header is malicious or corrupt", idx);
	if (ret == 0)
		ret = bop__age_hkdf(key, shared, sizeof(shared), salt, sizeof(salt), BOP_AGE_X25519_INFO);
	if (ret == 0)
		ret = bop__age_unwrap(d->file_key, key, st->body);
	OPENSSL_cleanse(shared, sizeof(shared));
	OPENSSL_cleanse(key, sizeof(key));
	return ret;
}

static int try_scrypt(age_decrypt_t *d, const bop_age_stanza_t *st)
{
	unsigned char salt[BOP_AGE_SALT_LEN], key[BOP_AGE_KEY_LEN];
	unsigned int wf = 0;
	int ret;

	bop__age_b64_decode_exact(salt, BOP_AGE_SALT_LEN, st->args[1]);
	parse_work_factor(st->args[2], &wf);
	if (wf > d->max_work_factor)
		return bop__error(BOP_EFORMAT, "the scrypt work factor %u of this file is above the "
			"limit %u (raise it with bop_keys_set_scrypt_work_factor if you trust the file)",
			wf, d->max_work_factor);
	ret = bop__age_scrypt(key, d->pass, d->pass_len, salt, wf);
	if (ret == 0)
		ret = bop__age_unwrap(d->file_key, key, st->body);
	OPENSSL_cleanse(key, sizeof(key));
	return ret;
}

static int no_key_error(const age_decrypt_t *d, const bop_age_header_t *h, const stanza_counts_t *c)
{
	const char *hint;
	char given[96];

	if (c->scrypt && d->has_pass)
		hint = "the passphrase is wrong";
	else if (c->scrypt)
		hint = "the file is encrypted with a passphrase, but none was given";
	else if (c->x25519 && d->nids)
		hint = "it was encrypted to other recipients; use the identity file of one of them";
	else if (c->x25519)
		hint = "the file is encrypted to X25519 recipients; give an identity, not a passphrase";
	else
		hint = "none of its stanzas is of a supported type (X25519 or scrypt)";
	if (d->nids && d->has_pass)
		snprintf(given, sizeof(given), "the %zu identit%s and the passphrase given open",
			d->nids, d->nids == 1 ? "y" : "ies");
	else if (d->nids)
		snprintf(given, sizeof(given), "the %zu identit%s given open%s", d->nids,
			d->nids == 1 ? "y" : "ies", d->nids == 1 ? "s" : "");
	else
		snprintf(given, sizeof(given), "the passphrase given opens");
	return bop__error(BOP_ENOKEY, "no identity matches: the age header has %zu recipient "
		"stanza%s (%zu X25519, %zu scrypt, %zu other) and %s none of them: %s",
		h->nstanzas, h->nstanzas == 1 ? "" : "s", c->x25519, c->scrypt, c->other, given, hint);
}

static int unwrap_file_key(age_decrypt_t *d, const bop_age_header_t *h)
{
	stanza_counts_t c;
	int ret;

	ret = check_stanzas(h, &c);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < h->nstanzas; i++) {
		const bop_age_stanza_t *st = &h->stanzas[i];

		if (strcmp(st->args[0], "X25519") == 0) {
			for (size_t j = 0; j < d->nids; j++) {
				ret = try_x25519(d, &d->ids[j], st, i + 1);
				if (ret <= 0)
					return ret;
			}
		} else if (strcmp(st->args[0], "scrypt") == 0 && d->has_pass) {
			ret = try_scrypt(d, st);
			if (ret <= 0)
				return ret;
		}
	}
	return no_key_error(d, h, &c);
}

static int open_header(age_decrypt_t *d)
{
	unsigned char mac[BOP_AGE_MAC_LEN];
	bop_age_header_t h;
	int ret;

	ret = bop__age_header_parse(&h, d->hdr, d->hdr_len);
	if (ret == 0)
		ret = unwrap_file_key(d, &h);
	if (ret == 0)
		ret = bop__age_header_mac(mac, d->file_key, d->hdr, h.mac_input_len);
	if (ret == 0 && CRYPTO_memcmp(mac, h.mac, BOP_AGE_MAC_LEN) != 0)
		ret = bop__error(BOP_EINTEGRITY, "the age header MAC does not match: the header was "
			"modified or is corrupt");
	bop__age_header_clear(&h);
	if (ret < 0)
		return ret == BOP_EFORMAT ? bop__error_wrap("bad age header") : ret;
	d->state = D_NONCE;
	return 0;
}

/* ---- collecting the header ---- */

static int check_magic(const age_decrypt_t *d)
{
	static const char magic[] = "age-encryption.org/";
	size_t n = d->hdr_len < sizeof(magic) - 1 ? d->hdr_len : sizeof(magic) - 1;

	if (memcmp(d->hdr, magic, n) == 0)
		return 0;
	if (d->hdr_len >= 10 && memcmp(d->hdr, "-----BEGIN", 10) == 0)
		return bop__error(BOP_EFORMAT, "ASCII-armored age files are not supported; "
			"decrypt with 'age -d' or remove the armor first");
	return bop__error(BOP_EFORMAT, "not an age file: it does not start with '%s'",
		BOP_AGE_V1_LINE);
}

static int grow_header(age_decrypt_t *d, size_t need)
{
	if (need > BOP_AGE_MAX_HEADER)
		return bop__error(BOP_EFORMAT, "the age header is longer than %u bytes (not an age file?)",
			BOP_AGE_MAX_HEADER);
	return bop__reserve(&d->hdr, &d->hdr_cap, need, 1, 1024);
}

/* Takes input up to the next line end; the header ends with the "---" line. */
static int header_step(age_decrypt_t *d, bop_inbuf_t *in, bop_stream_directive_t directive)
{
	const char *src = (const char *)in->src + in->pos, *lf;
	size_t avail = in->size - in->pos, n;
	int ret;

	if (avail == 0) {
		if (directive != BOP_STREAM_END)
			return 0;
		if (d->hdr_len == 0)
			return bop__error(BOP_EFORMAT, "the input is empty, not an age file");
		return bop__error(BOP_EFORMAT, "the input ends inside the age header (truncated?)");
	}
	lf = memchr(src, '\n', avail);
	n = lf ? (size_t)(lf - src) + 1 : avail;
	ret = grow_header(d, d->hdr_len + n);
	if (ret < 0)
		return ret;
	memcpy(d->hdr + d->hdr_len, src, n);
	d->hdr_len += n;
	in->pos += n;
	ret = check_magic(d);
	if (ret < 0 || !lf)
		return ret < 0 ? ret : 1;
	if (d->hdr_len - d->line_start >= 3 && memcmp(d->hdr + d->line_start, "---", 3) == 0)
		return (ret = open_header(d)) < 0 ? ret : 1;
	d->line_start = d->hdr_len;
	return 1;
}

static int nonce_step(age_decrypt_t *d, bop_inbuf_t *in, bop_stream_directive_t directive)
{
	size_t avail = in->size - in->pos, n = BOP_AGE_NONCE_LEN - d->nonce_len;
	int ret;

	if (avail == 0) {
		if (directive != BOP_STREAM_END)
			return 0;
		return bop__error(BOP_EFORMAT, "the age file ends before its 16-byte payload nonce "
			"(truncated)");
	}
	if (n > avail)
		n = avail;
	memcpy(d->nonce + d->nonce_len, (const unsigned char *)in->src + in->pos, n);
	d->nonce_len += n;
	in->pos += n;
	if (d->nonce_len < BOP_AGE_NONCE_LEN)
		return 1;
	ret = bop__age_stream_init(&d->stream, d->file_key, d->nonce, false);
	OPENSSL_cleanse(d->file_key, sizeof(d->file_key));
	if (ret < 0)
		return ret;
	d->state = D_PAYLOAD;
	return 1;
}

/* ---- payload ---- */

static int chunk_error_at(uint64_t index, const char *what)
{
	return bop__error(BOP_EINTEGRITY, "age payload chunk %llu (at plaintext offset %llu) %s",
		(unsigned long long)index, (unsigned long long)index * BOP_AGE_CHUNK, what);
}

static int chunk_error(const age_decrypt_t *d, const char *what)
{
	return chunk_error_at(d->stream.counter, what);
}

static void release(age_decrypt_t *d, size_t len, deferred_t deferred)
{
	d->plen = len;
	d->ppos = 0;
	d->deferred = deferred;
	d->deferred_chunk = d->stream.counter - 1;
}

/* Opens a full chunk that has more input behind it, so it must not be the final one. */
static int open_middle(age_decrypt_t *d, const unsigned char *src)
{
	int ret = bop__age_stream_open(&d->stream, d->pbuf, src, BOP_AGE_ENC_CHUNK, false);

	if (ret < 0)
		return ret;
	if (ret == 0) {
		release(d, BOP_AGE_CHUNK, DEFER_NONE);
		return 1;
	}
	/* A valid final chunk followed by more data: authentic, but the stream is not. */
	ret = bop__age_stream_open(&d->stream, d->pbuf, src, BOP_AGE_ENC_CHUNK, true);
	if (ret == 0) {
		release(d, BOP_AGE_CHUNK, DEFER_TRAILING);
		return 1;
	}
	return ret < 0 ? ret : chunk_error(d, "failed authentication: the file was modified or "
		"is corrupt");
}

static int deferred_error(const age_decrypt_t *d)
{
	switch (d->deferred) {
	case DEFER_TRUNCATED:
		return chunk_error_at(d->deferred_chunk + 1, "is missing: the file is truncated (it "
			"ends without a final chunk)");
	case DEFER_TRAILING:
		return chunk_error_at(d->deferred_chunk, "is the final chunk, but data follows it");
	case DEFER_NONE:
		break;
	}
	return 0;
}

/* At the end of the input: what is collected must be the final chunk. */
static int open_last(age_decrypt_t *d)
{
	uint64_t index = d->stream.counter;
	int ret;

	if (d->clen < BOP_AGE_TAG_LEN)
		return index == 0 && d->clen == 0 ?
			chunk_error(d, "is missing: the payload is empty (truncated file)") :
			chunk_error(d, "is truncated: shorter than its 16-byte tag");
	ret = bop__age_stream_open(&d->stream, d->pbuf, d->cbuf, d->clen, true);
	if (ret < 0)
		return ret;
	if (ret == 0) {
		if (d->clen == BOP_AGE_TAG_LEN && index > 0) {
			d->stream.counter--;
			return chunk_error(d, "is an empty final chunk, which only an empty file may have");
		}
		release(d, d->clen - BOP_AGE_TAG_LEN, DEFER_NONE);
		d->clen = 0;
		d->state = D_DONE;
		return 1;
	}
	if (d->clen == BOP_AGE_ENC_CHUNK &&
			bop__age_stream_open(&d->stream, d->pbuf, d->cbuf, d->clen, false) == 0) {
		/* An authentic middle chunk: release it, then report the missing end. */
		release(d, BOP_AGE_CHUNK, DEFER_TRUNCATED);
		d->clen = 0;
		return 1;
	}
	return chunk_error(d, "failed authentication: the file is truncated, was modified, "
		"or has data after its end");
}

static int payload_step(age_decrypt_t *d, bop_inbuf_t *in, bop_stream_directive_t directive)
{
	const unsigned char *src = (const unsigned char *)in->src + in->pos;
	size_t avail = in->size - in->pos, n;
	int ret;

	if (d->deferred != DEFER_NONE)
		return deferred_error(d);
	if (avail == 0)
		return directive == BOP_STREAM_END ? open_last(d) : 0;
	if (d->clen == BOP_AGE_ENC_CHUNK) {
		ret = open_middle(d, d->cbuf);
		d->clen = 0;
		return ret;
	}
	if (d->clen == 0 && avail > BOP_AGE_ENC_CHUNK) {
		ret = open_middle(d, src);
		if (ret > 0)
			in->pos += BOP_AGE_ENC_CHUNK;
		return ret;
	}
	n = BOP_AGE_ENC_CHUNK - d->clen;
	if (n > avail)
		n = avail;
	memcpy(d->cbuf + d->clen, src, n);
	d->clen += n;
	in->pos += n;
	return 1;
}

/* ---- the stage ---- */

/* One step; 1 to go on, 0 when done with this call, 2 when `out` is full. */
static int decrypt_step(age_decrypt_t *d, bop_outbuf_t *out, bop_inbuf_t *in,
	bop_stream_directive_t directive)
{
	size_t n = d->plen - d->ppos;

	if (n) {
		if (n > out->size - out->pos)
			n = out->size - out->pos;
		memcpy((unsigned char *)out->dst + out->pos, d->pbuf + d->ppos, n);
		out->pos += n;
		d->ppos += n;
		if (d->ppos < d->plen)
			return 2;
		d->plen = d->ppos = 0;
	}
	switch (d->state) {
	case D_HEADER:
		return header_step(d, in, directive);
	case D_NONCE:
		return nonce_step(d, in, directive);
	case D_PAYLOAD:
		return payload_step(d, in, directive);
	case D_DONE:
		if (in->pos < in->size)
			return bop__error(BOP_EINTEGRITY, "data after the end of the age file");
		return 0;
	}
	return bop__error(BOP_ERROR, "age-decrypt: invalid state");
}

static int decrypt_process(bop_stage_t *stage, bop_outbuf_t *out, bop_inbuf_t *in,
	bop_stream_directive_t directive)
{
	age_decrypt_t *d = (age_decrypt_t *)stage;
	int ret;

	if (d->failed)
		return bop__error(d->failed, "age-decrypt: the stage failed earlier and cannot continue");
	do
		ret = decrypt_step(d, out, in, directive);
	while (ret == 1);
	if (ret < 0) {
		d->failed = ret;
		if (d->pbuf)
			OPENSSL_cleanse(d->pbuf, BOP_AGE_CHUNK);
		d->plen = d->ppos = 0;
		return ret;
	}
	return ret == 2 ? 1 : 0;
}

static void decrypt_free(bop_stage_t *stage)
{
	age_decrypt_t *d = (age_decrypt_t *)stage;

	if (!d)
		return;
	bop__age_stream_free(&d->stream);
	bop__wipe(d->ids, d->nids * sizeof(*d->ids));
	free(d->ids);
	if (d->pass)
		bop__wipe(d->pass, d->pass_len);
	free(d->pass);
	free(d->hdr);
	free(d->cbuf);
	if (d->pbuf)
		bop__wipe(d->pbuf, BOP_AGE_CHUNK);
	free(d->pbuf);
	bop__wipe(d, sizeof(*d));
	free(d);
}

static int copy_keys(age_decrypt_t *d, const bop_keys_t *keys)
{
	if (keys->nidentities) {
		d->ids = malloc(keys->nidentities * sizeof(*d->ids));
		if (!d->ids)
			return bop__error_oom();
		memcpy(d->ids, keys->identities, keys->nidentities * sizeof(*d->ids));
		d->nids = keys->nidentities;
	}
	if (keys->has_passphrase) {
		d->pass = malloc(keys->passphrase_len + 1);
		if (!d->pass)
			return bop__error_oom();
		memcpy(d->pass, keys->passphrase, keys->passphrase_len + 1);
		d->pass_len = keys->passphrase_len;
		d->has_pass = true;
	}
	d->max_work_factor = keys->max_work_factor;
	return 0;
}

BOP_EXTERN(int) bop_stage_age_decrypt_new(bop_stage_t **out, const bop_keys_t *keys)
{
	age_decrypt_t *d;
	int ret;

	if (!out || !keys)
		return bop__error(BOP_EINVAL, "bop_stage_age_decrypt_new: NULL argument");
	*out = NULL;
	if (!keys->nidentities && !keys->has_passphrase)
		return bop__error(BOP_EINVAL, "no age identity or passphrase to decrypt with");
	d = bop__calloc(1, sizeof(*d));
	if (!d)
		return BOP_ENOMEM;
	d->base = (bop_stage_t)BOP_STAGE_INIT(.name = "age-decrypt", .process = decrypt_process,
		.free = decrypt_free);
	d->state = D_HEADER;
	d->cbuf = malloc(BOP_AGE_ENC_CHUNK);
	d->pbuf = malloc(BOP_AGE_CHUNK);
	if (!d->cbuf || !d->pbuf) {
		ret = bop__error_oom();
		goto fail;
	}
	ret = copy_keys(d, keys);
	if (ret < 0)
		goto fail;
	*out = &d->base;
	return 0;
fail:
	decrypt_free(&d->base);
	return ret;
}
