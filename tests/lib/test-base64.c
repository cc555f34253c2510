/* util/base64.c: the one base64 codec (padded for Kubernetes, unpadded canonical for age)
 * on OpenSSL, and bop_reconcile_secret_value() that the controller reads its key with
 * (issue 9 item 5: base64 through OpenSSL instead of five hand-written codecs). */
#include "internal.h"
#include "util/base64.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

/* RFC 4648 section 10 */
static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
static const char *const padded[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
static const char *const unpadded[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy" };

static void vectors(void)
{
	char out[16];

	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		unsigned char *dec = NULL, raw[16];
		size_t n = 0;
		char *enc = bop__base64_encode_alloc(plain[i], strlen(plain[i]));

		is_str(enc, padded[i], "padded encoding of an RFC 4648 vector");
		free(enc);
		is_int(bop__base64_len(strlen(plain[i]), true), strlen(padded[i]), "padded length");
		bop__base64_encode(out, plain[i], strlen(plain[i]), false);
		is_str(out, unpadded[i], "unpadded encoding of an RFC 4648 vector");
		is_int(bop__base64_len(strlen(plain[i]), false), strlen(unpadded[i]), "unpadded length");
		ok(bop__base64_decode(&dec, &n, padded[i], strlen(padded[i])) == 0 &&
			n == strlen(plain[i]) && !memcmp(dec, plain[i], n) && dec[n] == '\0',
			"padded decoding of '%s' gives '%s', NUL-terminated", padded[i], plain[i]);
		free(dec);
		ok(bop__base64_decode_unpadded(raw, sizeof(raw), &n, unpadded[i], strlen(unpadded[i])) &&
			n == strlen(plain[i]) && !memcmp(raw, plain[i], n),
			"unpadded decoding of '%s' gives '%s'", unpadded[i], plain[i]);
	}
}

static int decode(const char *text, char **out, size_t *n)
{
	return bop__base64_decode((unsigned char **)out, n, text, strlen(text));
}

static void padded_rules(void)
{
	static const char *const bad[] = {
		"Zm9", "Zm9v=", "Zg=", "Z===", "Zg==Zg==", "Zg==x", "Zm9*", "Zm9v-garbage",
		"Zm9vYmFy-", "Zm9v\x01", "Zm_v", "Zm9vYg=x=",
	};
	char *out = NULL;
	size_t n = 0;

	ok(decode("Zm9v\nYmFy\n", &out, &n) == 0 && n == 6 && !memcmp(out, "foobar", 6),
		"padded: line breaks (kubeconfig, Secrets written by hand) are ignored");
	free(out);
	ok(decode(" Zm9v YmE=\r\n\t", &out, &n) == 0 && n == 5 && !memcmp(out, "fooba", 5),
		"padded: blanks anywhere are ignored");
	free(out);
	ok(decode("AAEC", &out, &n) == 0 && n == 3 && out[0] == 0 && out[1] == 1 && out[2] == 2,
		"padded: binary with NUL bytes");
	free(out);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out = (char *)1;
		ok(decode(bad[i], &out, &n) == BOP_EFORMAT && !out && n == 0 &&
			strstr(bop_error_last(), "not valid base64"),
			"padded: '%s' is refused as not valid base64 (no trailing garbage, no misplaced "
			"padding, no foreign character)", bad[i]);
	}
}

static void unpadded_rules(void)
{
	unsigned char out[8];
	size_t n = 99;

	/* 'h' = 33 = 100001: its low 4 bits are not zero, so "Zh" is another spelling of "f" */
	ok(!bop__base64_decode_unpadded(out, sizeof(out), &n, "Zh", 2),
		"unpadded: a non-canonical last character is refused (age requires it)");
	ok(!bop__base64_decode_unpadded(out, sizeof(out), &n, "Zm9", 3),
		"unpadded: non-zero unused bits in a 3-character tail are refused");
	ok(!bop__base64_decode_unpadded(out, sizeof(out), &n, "Zg==", 4), "unpadded: padding is refused");
	ok(!bop__base64_decode_unpadded(out, sizeof(out), &n, "Zm9v\n", 5), "unpadded: a blank is refused");
	ok(!bop__base64_decode_unpadded(out, sizeof(out), &n, "Zm9vY", 5),
		"unpadded: an impossible length (4k+1) is refused");
	ok(!bop__base64_decode_unpadded(out, 5, &n, "Zm9vYmFy", 8),
		"unpadded: more bytes than the room given are refused");
	ok(!bop__base64_decode_unpadded(out, sizeof(out), &n, "Zm-v", 4),
		"unpadded: a character outside the alphabet is refused");
	memset(out, 0xAA, sizeof(out));
	ok(!bop__base64_decode_unpadded(out, sizeof(out), &n, "Zm9vZh", 6) && n == 0 &&
		out[0] == 0 && out[1] == 0 && out[2] == 0,
		"unpadded: on refusal nothing decoded is left in the buffer");
}

/* Sizes past EVP's int-sized blocks go in chunks: round trips around the chunk size. */
static void big(void)
{
	size_t sizes[] = { (3u << 20) - 1, 3u << 20, (3u << 20) + 1, (3u << 20) + 2, 7u << 20 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t len = sizes[i], n = 0;
		unsigned char *data = malloc(len), *back = NULL, *raw = malloc(len);
		char *enc, *bare = malloc(bop__base64_len(len, false) + 1);

		for (size_t k = 0; k < len; k++)
			data[k] = (unsigned char)(k * 2654435761u >> 13);
		enc = bop__base64_encode_alloc(data, len);
		bop__base64_encode(bare, data, len, false);
		ok(enc && bop__base64_decode(&back, &n, enc, strlen(enc)) == 0 && n == len &&
			!memcmp(back, data, len), "padded round trip of %zu bytes", len);
		ok(bop__base64_decode_unpadded(raw, len, &n, bare, strlen(bare)) && n == len &&
			!memcmp(raw, data, len), "unpadded round trip of %zu bytes", len);
		free(data);
		free(back);
		free(raw);
		free(enc);
		free(bare);
	}
}

static void secret_value(void)
{
	char *v = NULL;
	size_t n = 0;
	int ret;

	ret = bop_reconcile_secret_value(&v, &n, "{\"kind\":\"Secret\",\"data\":{\"key\":"
		"\"MDEyMw==\"}}", "key");
	ok(ret == 0 && n == 4 && !strcmp(v, "0123"), "Secret data.key is decoded");
	bop_free(v);
	ret = bop_reconcile_secret_value(&v, &n, "{\"kind\":\"Secret\",\"stringData\":{\"key\":"
		"\"abc\"}}", "key");
	ok(ret == 0 && n == 3 && !strcmp(v, "abc"), "Secret stringData.key is taken as it is");
	bop_free(v);
	ret = bop_reconcile_secret_value(&v, &n, "{\"kind\":\"Secret\",\"data\":{\"other\":"
		"\"YQ==\"}}", "key");
	ok(ret == BOP_ENOTFOUND && !v && strstr(bop_error_last(), "no key \"key\""),
		"a Secret without the key: BOP_ENOTFOUND naming it (%s)", bop_error_last());
	ret = bop_reconcile_secret_value(&v, &n, "{\"kind\":\"Secret\",\"data\":{\"key\":"
		"\"MDEy-x\"}}", "key");
	ok(ret == BOP_EFORMAT && !v && strstr(bop_error_last(), "not valid base64"),
		"a value with trailing garbage: BOP_EFORMAT (%s)", bop_error_last());
	ret = bop_reconcile_secret_value(&v, &n, "[1]", "key");
	ok(ret == BOP_EFORMAT && !v, "JSON that is no object: BOP_EFORMAT");
	ret = bop_reconcile_secret_value(&v, &n, "{\"data\":", "key");
	ok(ret == BOP_EFORMAT && !v, "JSON cut short: BOP_EFORMAT");
}

int main(void)
{
	vectors();
	padded_rules();
	unpadded_rules();
	big();
	secret_value();
	return done_testing();
}
