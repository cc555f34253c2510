/*
 * The primitives of age on OpenSSL 3: HKDF-SHA-256 and scrypt (EVP_KDF), HMAC-SHA-256
 * (EVP_MAC), X25519 (EVP_PKEY) and ChaCha20-Poly1305 (EVP_CIPHER), including the STREAM
 * construction of the payload.
 */
#include "age_internal.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

static int ssl_error(const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "unknown error";

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return bop__error(BOP_ERROR, "%s failed (OpenSSL: %s)", what, buf);
}

static int kdf_derive(const char *name, unsigned char *out, size_t out_len, const OSSL_PARAM *params)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, name, NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	int ret = 0;

	if (!ctx || EVP_KDF_derive(ctx, out, out_len, params) <= 0)
		ret = ssl_error(name);
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return ret;
}

int bop__age_hkdf(unsigned char out[BOP_AGE_KEY_LEN], const unsigned char *ikm, size_t ikm_len,
	const unsigned char *salt, size_t salt_len, const char *info)
{
	OSSL_PARAM params[5], *p = params;

	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
	/* An empty salt is HashLen zero bytes (RFC 5869), which is what HKDF does without one. */
	if (salt_len)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info));
	*p = OSSL_PARAM_construct_end();
	return kdf_derive("HKDF", out, BOP_AGE_KEY_LEN, params);
}

int bop__age_scrypt(unsigned char out[BOP_AGE_KEY_LEN], const char *passphrase, size_t len,
	const unsigned char salt[BOP_AGE_SALT_LEN], unsigned int log2_n)
{
	unsigned char full_salt[sizeof(BOP_AGE_SCRYPT_LABEL) - 1 + BOP_AGE_SALT_LEN];
	uint64_t n = (uint64_t)1 << log2_n;
	/* scrypt needs 128 * r * (N + p + 2) bytes; OpenSSL's default cap is 32 MiB. */
	uint64_t maxmem = 128 * 8 * (n + 3) + (1u << 20);
	uint32_t r = 8, par = 1;
	OSSL_PARAM params[7], *p = params;

	memcpy(full_salt, BOP_AGE_SCRYPT_LABEL, sizeof(BOP_AGE_SCRYPT_LABEL) - 1);
	memcpy(full_salt + sizeof(BOP_AGE_SCRYPT_LABEL) - 1, salt, BOP_AGE_SALT_LEN);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)passphrase, len);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, full_salt, sizeof(full_salt));
	*p++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
	*p++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r);
	*p++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &par);
	*p++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem);
	*p = OSSL_PARAM_construct_end();
	return kdf_derive("SCRYPT", out, BOP_AGE_KEY_LEN, params);
}

int bop__age_header_mac(unsigned char mac[BOP_AGE_MAC_LEN],
	const unsigned char file_key[BOP_AGE_FILE_KEY_LEN], const void *header, size_t len)
{
	unsigned char key[BOP_AGE_KEY_LEN];
	size_t got = 0;
	int ret;

	ret = bop__age_hkdf(key, file_key, BOP_AGE_FILE_KEY_LEN, NULL, 0, "header");
	if (ret < 0)
		return ret;
	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, sizeof(key), header, len, mac,
			BOP_AGE_MAC_LEN, &got) || got != BOP_AGE_MAC_LEN)
		ret = ssl_error("HMAC-SHA-256");
	OPENSSL_cleanse(key, sizeof(key));
	return ret;
}

int bop__age_x25519(unsigned char out[BOP_AGE_KEY_LEN], const unsigned char scalar[BOP_AGE_KEY_LEN],
	const unsigned char *point)
{
	static const unsigned char zero[BOP_AGE_KEY_LEN];
	EVP_PKEY *priv = NULL, *peer = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	size_t len = BOP_AGE_KEY_LEN;
	int ret = 0;

	priv = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, scalar, BOP_AGE_KEY_LEN);
	if (!priv) {
		ret = ssl_error("X25519 key");
		goto out;
	}
	if (!point) {
		if (EVP_PKEY_get_raw_public_key(priv, out, &len) <= 0 || len != BOP_AGE_KEY_LEN)
			ret = ssl_error("X25519 public key");
		goto out;
	}
	peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, point, BOP_AGE_KEY_LEN);
	ctx = peer ? EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL) : NULL;
	if (!ctx || EVP_PKEY_derive_init(ctx) <= 0 || EVP_PKEY_derive_set_peer_ex(ctx, peer, 0) <= 0) {
		ret = ssl_error("X25519");
		goto out;
	}
	/* OpenSSL refuses to return the all-zero shared secret of a low-order point. */
	if (EVP_PKEY_derive(ctx, out, &len) <= 0 || len != BOP_AGE_KEY_LEN ||
			CRYPTO_memcmp(out, zero, BOP_AGE_KEY_LEN) == 0) {
		ERR_clear_error();
		OPENSSL_cleanse(out, BOP_AGE_KEY_LEN);
		ret = 1;
	}
out:
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(peer);
	EVP_PKEY_free(priv);
	return ret;
}

/* One ChaCha20-Poly1305 operation on a context that already holds the key. For
 * decryption `len` excludes the tag, which is read from in[len..len + 16). */
static int aead_run(EVP_CIPHER_CTX *ctx, bool encrypt, const unsigned char nonce[12],
	unsigned char *out, const unsigned char *in, size_t len)
{
	unsigned char *tag_out = out + len;
	int n = 0, fin = 0;

	if (!EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, encrypt))
		return ssl_error("ChaCha20-Poly1305 nonce");
	if (len && (!EVP_CipherUpdate(ctx, out, &n, in, (int)len) || (size_t)n != len))
		return ssl_error("ChaCha20-Poly1305");
	if (encrypt) {
		if (!EVP_CipherFinal_ex(ctx, out + n, &fin) ||
				!EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, BOP_AGE_TAG_LEN, tag_out))
			return ssl_error("ChaCha20-Poly1305 tag");
		return 0;
	}
	if (!EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, BOP_AGE_TAG_LEN, (void *)(in + len)))
		return ssl_error("ChaCha20-Poly1305 tag");
	if (EVP_CipherFinal_ex(ctx, out + n, &fin) <= 0) {
		ERR_clear_error();
		OPENSSL_cleanse(out, len);
		return 1;
	}
	return 0;
}

static int aead_oneshot(bool encrypt, const unsigned char key[BOP_AGE_KEY_LEN],
	unsigned char *out, const unsigned char *in, size_t len)
{
	static const unsigned char zero_nonce[12];
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int ret;

	if (!ctx || !EVP_CipherInit_ex2(ctx, EVP_chacha20_poly1305(), key, NULL, encrypt, NULL)) {
		ret = ssl_error("ChaCha20-Poly1305 key");
		goto out;
	}
	ret = aead_run(ctx, encrypt, zero_nonce, out, in, len);
out:
	EVP_CIPHER_CTX_free(ctx);
	return ret;
}

int bop__age_wrap(unsigned char body[BOP_AGE_BODY_LEN], const unsigned char key[BOP_AGE_KEY_LEN],
	const unsigned char file_key[BOP_AGE_FILE_KEY_LEN])
{
	return aead_oneshot(true, key, body, file_key, BOP_AGE_FILE_KEY_LEN);
}

int bop__age_unwrap(unsigned char file_key[BOP_AGE_FILE_KEY_LEN],
	const unsigned char key[BOP_AGE_KEY_LEN], const unsigned char body[BOP_AGE_BODY_LEN])
{
	return aead_oneshot(false, key, file_key, body, BOP_AGE_FILE_KEY_LEN);
}

/* ---- STREAM ---- */

int bop__age_stream_init(bop_age_stream_t *s, const unsigned char file_key[BOP_AGE_FILE_KEY_LEN],
	const unsigned char nonce[BOP_AGE_NONCE_LEN], bool encrypt)
{
	unsigned char key[BOP_AGE_KEY_LEN];
	int ret;

	memset(s, 0, sizeof(*s));
	s->encrypt = encrypt;
	ret = bop__age_hkdf(key, file_key, BOP_AGE_FILE_KEY_LEN, nonce, BOP_AGE_NONCE_LEN, "payload");
	if (ret < 0)
		return ret;
	s->cipher = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
	s->ctx = s->cipher ? EVP_CIPHER_CTX_new() : NULL;
	if (!s->ctx || !EVP_CipherInit_ex2(s->ctx, s->cipher, key, NULL, encrypt, NULL))
		ret = ssl_error("ChaCha20-Poly1305 payload key");
	OPENSSL_cleanse(key, sizeof(key));
	return ret;
}

static int chunk_nonce(const bop_age_stream_t *s, unsigned char nonce[12], bool last)
{
	if (s->counter == UINT64_MAX)
		return bop__error(BOP_EINVAL, "age stream is too long (chunk counter overflow)");
	memset(nonce, 0, 12);
	for (int i = 0; i < 8; i++)
		nonce[10 - i] = (unsigned char)(s->counter >> (8 * i));
	nonce[11] = last ? 1 : 0;
	return 0;
}

int bop__age_stream_seal(bop_age_stream_t *s, unsigned char *out, const unsigned char *in,
	size_t len, bool last)
{
	unsigned char nonce[12];
	int ret = chunk_nonce(s, nonce, last);

	if (ret == 0)
		ret = aead_run(s->ctx, true, nonce, out, in, len);
	if (ret == 0)
		s->counter++;
	return ret;
}

int bop__age_stream_open(bop_age_stream_t *s, unsigned char *out, const unsigned char *in,
	size_t len, bool last)
{
	unsigned char nonce[12];
	int ret = chunk_nonce(s, nonce, last);

	if (ret == 0)
		ret = aead_run(s->ctx, false, nonce, out, in, len - BOP_AGE_TAG_LEN);
	if (ret == 0)
		s->counter++;
	return ret;
}

void bop__age_stream_free(bop_age_stream_t *s)
{
	EVP_CIPHER_CTX_free(s->ctx);
	EVP_CIPHER_free(s->cipher);
	memset(s, 0, sizeof(*s));
}
