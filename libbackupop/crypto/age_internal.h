/*
 * Private declarations shared by the age files of libbackupop/crypto (age-encryption.org/v1,
 * c2sp.org/age): the key set, bech32, unpadded base64, the header, and thin wrappers around
 * the OpenSSL primitives that age is built from.
 */
#ifndef BOP_CRYPTO_AGE_INTERNAL_H
#define BOP_CRYPTO_AGE_INTERNAL_H

#include "internal.h"

#include <openssl/evp.h>

#define BOP_AGE_KEY_LEN 32              /* X25519 scalars and points, derived keys */
#define BOP_AGE_FILE_KEY_LEN 16
#define BOP_AGE_TAG_LEN 16              /* Poly1305 */
#define BOP_AGE_NONCE_LEN 16            /* payload nonce after the header */
#define BOP_AGE_SALT_LEN 16             /* scrypt stanza salt */
#define BOP_AGE_MAC_LEN 32              /* HMAC-SHA-256 of the header */
#define BOP_AGE_CHUNK 65536             /* plaintext bytes per STREAM chunk */
#define BOP_AGE_ENC_CHUNK (BOP_AGE_CHUNK + BOP_AGE_TAG_LEN)
#define BOP_AGE_BODY_LEN (BOP_AGE_FILE_KEY_LEN + BOP_AGE_TAG_LEN)   /* wrapped file key */
#define BOP_AGE_MAX_HEADER (1u << 20)   /* a header is a few hundred bytes per stanza */
#define BOP_AGE_COLUMNS 64              /* stanza body lines */

#define BOP_AGE_V1_LINE "age-encryption.org/v1"
#define BOP_AGE_SCRYPT_LABEL "age-encryption.org/v1/scrypt"
#define BOP_AGE_X25519_INFO "age-encryption.org/v1/X25519"
#define BOP_AGE_DEFAULT_WORK_FACTOR 18
#define BOP_AGE_DEFAULT_MAX_WORK_FACTOR 22
#define BOP_AGE_MAX_WORK_FACTOR 30

typedef struct bop_age_identity {
	unsigned char secret[BOP_AGE_KEY_LEN];
	unsigned char public[BOP_AGE_KEY_LEN];
} bop_age_identity_t;

struct bop_keys {
	unsigned char (*recipients)[BOP_AGE_KEY_LEN];  /* X25519 public keys, no duplicates */
	size_t nrecipients;
	bop_age_identity_t *identities;
	size_t nidentities;
	char *passphrase;                       /* NUL-terminated copy, may contain NULs */
	size_t passphrase_len;
	bool has_passphrase;
	unsigned int work_factor;               /* log2(N) to encrypt */
	unsigned int max_work_factor;           /* the most a decryption accepts */
};

/* ---- bech32.c (BIP 173 without the 90-character limit) ---- */

/* Encodes `data` under `hrp` (given lowercase); with `upper` the whole string is
 * uppercased, as age writes identities. *out is malloc'd. */
int bop__bech32_encode(char **out, const char *hrp, const unsigned char *data, size_t len,
	bool upper);

/* Decodes `s` (all lowercase or all uppercase). On success `hrp` holds the lowercased
 * human-readable part and data[0..*len) the payload. Returns 0, or BOP_EFORMAT with the
 * reason in the message. */
int bop__bech32_decode(const char *s, char *hrp, size_t hrp_size, unsigned char *data,
	size_t data_size, size_t *len);

/* ---- age_format.c: base64 without padding, the header ---- */

/* Characters of the unpadded base64 encoding of n bytes. */
size_t bop__age_b64_len(size_t n);

/* Writes bop__age_b64_len(n) characters and a NUL into `out`. */
void bop__age_b64_encode(char *out, const unsigned char *in, size_t n);

/* Decodes canonical unpadded base64 into out[0..*outlen). false when `in` has a character
 * outside the alphabet, padding, an impossible length, non-zero trailing bits, or more
 * than `cap` bytes. */
bool bop__age_b64_decode(unsigned char *out, size_t cap, size_t *outlen, const char *in,
	size_t inlen);

/* Like bop__age_b64_decode() but requires exactly `want` bytes. */
bool bop__age_b64_decode_exact(unsigned char *out, size_t want, const char *in);

typedef struct bop_age_stanza {
	char **args;            /* args[0] is the type ("X25519", "scrypt", ...) */
	size_t nargs;
	unsigned char *body;
	size_t body_len;
} bop_age_stanza_t;

typedef struct bop_age_header {
	bop_age_stanza_t *stanzas;
	size_t nstanzas;
	size_t mac_input_len;   /* bytes covered by the MAC: through "---" */
	unsigned char mac[BOP_AGE_MAC_LEN];
} bop_age_header_t;

/* Parses a complete header: `buf` ends right after the LF of the "--- " line. BOP_EFORMAT
 * says what is wrong. Clear `h` with bop__age_header_clear() in every case. */
int bop__age_header_parse(bop_age_header_t *h, const char *buf, size_t len);
void bop__age_header_clear(bop_age_header_t *h);

/* A growing byte buffer for writing the header. */
typedef struct bop_age_buf {
	char *data;
	size_t len;
	size_t cap;
} bop_age_buf_t;

int bop__age_buf_append(bop_age_buf_t *b, const void *data, size_t len);

/* Appends a stanza "-> arg arg\n" and its body wrapped at 64 columns. */
int bop__age_buf_stanza(bop_age_buf_t *b, const char *const *args, size_t nargs,
	const unsigned char *body, size_t body_len);

void bop__age_buf_free(bop_age_buf_t *b);

/* ---- age_crypto.c: the primitives, on OpenSSL 3 ---- */

/* HKDF-SHA-256 with 32 bytes of output; `salt` may be empty. */
int bop__age_hkdf(unsigned char out[BOP_AGE_KEY_LEN], const unsigned char *ikm, size_t ikm_len,
	const unsigned char *salt, size_t salt_len, const char *info);

/* HMAC-SHA-256 of the header under HKDF(file key, "", "header"). */
int bop__age_header_mac(unsigned char mac[BOP_AGE_MAC_LEN],
	const unsigned char file_key[BOP_AGE_FILE_KEY_LEN], const void *header, size_t len);

/* X25519(scalar, point); point NULL means the base point. Returns 1 (not an error code)
 * when the result is all zeros, i.e. `point` has low order. */
int bop__age_x25519(unsigned char out[BOP_AGE_KEY_LEN], const unsigned char scalar[BOP_AGE_KEY_LEN],
	const unsigned char *point);

/* scrypt(N = 2^log2_n, r = 8, p = 1) with salt "age-encryption.org/v1/scrypt" || salt. */
int bop__age_scrypt(unsigned char out[BOP_AGE_KEY_LEN], const char *passphrase, size_t len,
	const unsigned char salt[BOP_AGE_SALT_LEN], unsigned int log2_n);

/* Wraps a file key with ChaCha20-Poly1305 under `key` and the all-zero nonce. */
int bop__age_wrap(unsigned char body[BOP_AGE_BODY_LEN], const unsigned char key[BOP_AGE_KEY_LEN],
	const unsigned char file_key[BOP_AGE_FILE_KEY_LEN]);

/* Unwraps; returns 1 (not an error code) when the tag does not verify. */
int bop__age_unwrap(unsigned char file_key[BOP_AGE_FILE_KEY_LEN],
	const unsigned char key[BOP_AGE_KEY_LEN], const unsigned char body[BOP_AGE_BODY_LEN]);

/* The STREAM construction: ChaCha20-Poly1305 under the payload key, one cipher context
 * reused for every chunk, nonce = 11-byte big-endian counter || last flag. */
typedef struct bop_age_stream {
	EVP_CIPHER *cipher;
	EVP_CIPHER_CTX *ctx;
	uint64_t counter;       /* index of the next chunk */
	bool encrypt;
} bop_age_stream_t;

int bop__age_stream_init(bop_age_stream_t *s, const unsigned char file_key[BOP_AGE_FILE_KEY_LEN],
	const unsigned char nonce[BOP_AGE_NONCE_LEN], bool encrypt);

/* Encrypts len (<= 64 KiB) bytes into out[0..len + 16) and advances the counter. */
int bop__age_stream_seal(bop_age_stream_t *s, unsigned char *out, const unsigned char *in,
	size_t len, bool last);

/* Decrypts a chunk of `len` bytes (tag included, 16 <= len <= 64 KiB + 16) into
 * out[0..len - 16). 0 when it verifies (the counter advances), 1 when it does not (out is
 * wiped, the counter stays), <0 on an internal error. */
int bop__age_stream_open(bop_age_stream_t *s, unsigned char *out, const unsigned char *in,
	size_t len, bool last);

void bop__age_stream_free(bop_age_stream_t *s);

/* ---- age_keys.c ---- */

/* Parses "age1..." into its X25519 public key. */
int bop__age_parse_recipient(unsigned char pub[BOP_AGE_KEY_LEN], const char *s);

/* Parses "AGE-SECRET-KEY-1..." and computes its public key. */
int bop__age_parse_identity(bop_age_identity_t *id, const char *s);

/* The "age1..." encoding of a public key; malloc'd. */
int bop__age_encode_recipient(char **out, const unsigned char pub[BOP_AGE_KEY_LEN]);

#endif
