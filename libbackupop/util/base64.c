/* Standard base64, padded and unpadded-canonical, on OpenSSL's block codec. */
#include "internal.h"
#include "util/base64.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* EVP_EncodeBlock/EVP_DecodeBlock take an int length: larger inputs go in chunks of this
 * many groups. */
#define CHUNK_GROUPS (1u << 20)

bool bop__base64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		c == '+' || c == '/';
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

size_t bop__base64_len(size_t n, bool pad)
{
	if (pad)
		return (n + 2) / 3 * 4;
	return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

void bop__base64_encode(char *out, const void *in, size_t n, bool pad)
{
	const unsigned char *p = in;
	unsigned char *o = (unsigned char *)out;
	unsigned char tail[5];
	size_t whole = n - n % 3;

	for (size_t done = 0; done < whole;) {
		size_t chunk = whole - done < CHUNK_GROUPS * 3 ? whole - done : CHUNK_GROUPS * 3;

		EVP_EncodeBlock(o, p + done, (int)chunk);
		o += chunk / 3 * 4;
		done += chunk;
	}
	if (n % 3) {
		/* EVP_EncodeBlock always pads the last group; unpadded keeps its n % 3 + 1
		 * significant characters */
		EVP_EncodeBlock(tail, p + whole, (int)(n % 3));
		memcpy(o, tail, pad ? 4 : n % 3 + 1);
		o += pad ? 4 : n % 3 + 1;
	}
	*o = '\0';
}

char *bop__base64_encode_alloc(const void *in, size_t n)
{
	char *out;

	if (n > SIZE_MAX / 2) {
		bop__error(BOP_EINVAL, "too much data to encode");
		return NULL;
	}
	out = malloc(bop__base64_len(n, true) + 1);
	if (!out) {
		bop__error_oom();
		return NULL;
	}
	bop__base64_encode(out, in, n, true);
	return out;
}

/* Decodes n characters (a multiple of 4, alphabet or final padding only) into out; the
 * bytes written, padding counted, or -1. */
static int64_t decode_groups(unsigned char *out, const char *in, size_t n)
{
	int64_t total = 0;

	for (size_t done = 0; done < n;) {
		size_t chunk = n - done < CHUNK_GROUPS * 4 ? n - done : CHUNK_GROUPS * 4;
		int got = EVP_DecodeBlock(out + total, (const unsigned char *)in + done, (int)chunk);

		if (got != (int)(chunk / 4 * 3))
			return -1;
		total += got;
		done += chunk;
	}
	return total;
}

int bop__base64_decode(unsigned char **out, size_t *outlen, const char *text, size_t len)
{
	char *clean = malloc(len + 1);
	unsigned char *buf = NULL;
	size_t n = 0, pad = 0;
	int64_t got;
	int ret = BOP_EFORMAT;

	*out = NULL;
	*outlen = 0;
	if (!clean)
		return bop__error_oom();
	for (size_t i = 0; i < len; i++) {
		char c = text[i];

		if (is_blank(c))
			continue;
		if (c == '=')
			pad++;
		else if (pad || !bop__base64_char(c))
			goto out;
		clean[n++] = c;
	}
	if (n % 4 || pad > 2)
		goto out;
	buf = malloc(n / 4 * 3 + 1);
	if (!buf) {
		ret = bop__error_oom();
		goto out;
	}
	got = decode_groups(buf, clean, n);
	if (got < 0)
		goto out;
	*outlen = (size_t)got - pad;
	buf[*outlen] = '\0';
	*out = buf;
	buf = NULL;
	ret = 0;
out:
	if (ret == BOP_EFORMAT)
		bop__error(BOP_EFORMAT, "not valid base64");
	if (buf) {
		OPENSSL_cleanse(buf, n / 4 * 3 + 1);
		free(buf);
	}
	OPENSSL_cleanse(clean, len + 1);
	free(clean);
	return ret;
}

bool bop__base64_decode_unpadded(unsigned char *out, size_t cap, size_t *outlen,
	const char *in, size_t inlen)
{
	size_t rem = inlen % 4, whole = inlen - rem;
	size_t n = whole / 4 * 3 + (rem ? rem - 1 : 0);
	char quad[4];
	unsigned char dec[3];
	bool ok = false;

	*outlen = 0;
	if (rem == 1 || n > cap)
		return false;
	for (size_t i = 0; i < inlen; i++)
		if (!bop__base64_char(in[i]))
			return false;
	if (decode_groups(out, in, whole) < 0)
		goto out;
	if (rem) {
		/* Complete the last group with 'A' (zero bits), decode it, keep the rem - 1 bytes
		 * that were really there. Canonical: the bits of the last character beyond them
		 * are zero, i.e. the first byte not kept is 0. */
		memset(quad, 'A', sizeof(quad));
		memcpy(quad, in + whole, rem);
		if (decode_groups(dec, quad, 4) != 3 || dec[rem - 1] != 0)
			goto out;
		memcpy(out + whole / 4 * 3, dec, rem - 1);
	}
	*outlen = n;
	ok = true;
out:
	OPENSSL_cleanse(dec, sizeof(dec));
	if (!ok)
		OPENSSL_cleanse(out, n);
	return ok;
}
