/*
 * The textual parts of age-encryption.org/v1: unpadded canonical base64 (util/base64.c,
 * on OpenSSL's EVP_EncodeBlock/EVP_DecodeBlock) and the header (version line, recipient stanzas
 * with bodies wrapped at 64 columns, "--- MAC" line), after the ABNF of c2sp.org/age.
 */
#include "age_internal.h"
#include "util/base64.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* ---- base64 (util/base64.c) ---- */

size_t bop__age_b64_len(size_t n)
{
	return bop__base64_len(n, false);
}

void bop__age_b64_encode(char *out, const unsigned char *in, size_t n)
{
	bop__base64_encode(out, in, n, false);
}

bool bop__age_b64_decode(unsigned char *out, size_t cap, size_t *outlen, const char *in,
	size_t inlen)
{
	return bop__base64_decode_unpadded(out, cap, outlen, in, inlen);
}

bool bop__age_b64_decode_exact(unsigned char *out, size_t want, const char *in)
{
	size_t got;

	return strlen(in) == bop__age_b64_len(want) && bop__age_b64_decode(out, want, &got, in,
		strlen(in)) && got == want;
}

/* ---- header parsing ---- */

typedef struct cursor {
	const char *buf;
	size_t len;
	size_t pos;
} cursor_t;

/* The next line without its LF; false at the end or when no LF follows. */
static bool next_line(cursor_t *c, const char **line, size_t *n)
{
	const char *lf;

	if (c->pos >= c->len)
		return false;
	lf = memchr(c->buf + c->pos, '\n', c->len - c->pos);
	if (!lf)
		return false;
	*line = c->buf + c->pos;
	*n = (size_t)(lf - *line);
	c->pos += *n + 1;
	return true;
}

static bool starts_with(const char *line, size_t n, const char *prefix)
{
	size_t k = strlen(prefix);

	return n >= k && memcmp(line, prefix, k) == 0;
}

static int parse_args(bop_age_stanza_t *st, const char *line, size_t n, unsigned int idx)
{
	size_t i = 3, count = 0;

	for (size_t j = 3; j < n; j++)
		if (line[j] == ' ')
			count++;
	if (n <= 3)
		return bop__error(BOP_EFORMAT, "recipient stanza %u has no type", idx);
	st->args = calloc(count + 1, sizeof(*st->args));
	if (!st->args)
		return bop__error_oom();
	while (i <= n) {
		size_t start = i;

		while (i < n && line[i] != ' ') {
			if ((unsigned char)line[i] < 0x21 || (unsigned char)line[i] > 0x7e)
				return bop__error(BOP_EFORMAT,
					"recipient stanza %u has an invalid character in its arguments", idx);
			i++;
		}
		if (i == start)
			return bop__error(BOP_EFORMAT, "recipient stanza %u has an empty argument", idx);
		st->args[st->nargs] = bop__strndup(line + start, i - start);
		if (!st->args[st->nargs])
			return BOP_ENOMEM;
		st->nargs++;
		i++;
	}
	return 0;
}

/* Reads body lines up to and including the first one shorter than 64 columns. */
static int parse_body(bop_age_stanza_t *st, cursor_t *c, unsigned int idx)
{
	size_t start = c->pos, chars = 0, cap;
	const char *line;
	char *joined = NULL;
	size_t n;
	int ret = 0;

	for (;;) {
		if (!next_line(c, &line, &n))
			return bop__error(BOP_EFORMAT,
				"recipient stanza %u does not end with a short body line", idx);
		if (n > 0 && line[0] == '-')
			return bop__error(BOP_EFORMAT,
				"recipient stanza %u does not end with a short body line", idx);
		for (size_t i = 0; i < n; i++)
			if (!bop__base64_char(line[i]))
				return bop__error(BOP_EFORMAT,
					"recipient stanza %u: body line is not unpadded base64", idx);
		if (n > BOP_AGE_COLUMNS)
			return bop__error(BOP_EFORMAT,
				"recipient stanza %u: body line is longer than 64 columns", idx);
		chars += n;
		if (n < BOP_AGE_COLUMNS)
			break;
	}
	joined = malloc(chars + 1);
	cap = chars / 4 * 3 + 3;
	st->body = malloc(cap);
	if (!joined || !st->body) {
		ret = bop__error_oom();
		goto out;
	}
	for (size_t p = start, k = 0; k < chars; p++)
		if (c->buf[p] != '\n')
			joined[k++] = c->buf[p];
	if (!bop__age_b64_decode(st->body, cap, &st->body_len, joined, chars))
		ret = bop__error(BOP_EFORMAT,
			"recipient stanza %u: body is not canonical unpadded base64", idx);
out:
	free(joined);
	return ret;
}

static int add_stanza(bop_age_header_t *h, cursor_t *c, const char *line, size_t n)
{
	bop_age_stanza_t *grown;
	unsigned int idx = (unsigned int)h->nstanzas + 1;
	int ret;

	grown = realloc(h->stanzas, (h->nstanzas + 1) * sizeof(*grown));
	if (!grown)
		return bop__error_oom();
	h->stanzas = grown;
	memset(&h->stanzas[h->nstanzas], 0, sizeof(*grown));
	h->nstanzas++;
	ret = parse_args(&h->stanzas[h->nstanzas - 1], line, n, idx);
	if (ret < 0)
		return ret;
	return parse_body(&h->stanzas[h->nstanzas - 1], c, idx);
}

static int parse_mac(bop_age_header_t *h, cursor_t *c, const char *line, size_t n)
{
	char b64[BOP_AGE_COLUMNS];

	if (n == 3)
		return bop__error(BOP_EFORMAT, "the MAC line '---' has no MAC");
	if (line[3] != ' ')
		return bop__error(BOP_EFORMAT, "the MAC line must start with '--- '");
	if (n - 4 != bop__age_b64_len(BOP_AGE_MAC_LEN))
		return bop__error(BOP_EFORMAT, "the header MAC has the wrong length");
	memcpy(b64, line + 4, n - 4);
	b64[n - 4] = '\0';
	if (!bop__age_b64_decode_exact(h->mac, BOP_AGE_MAC_LEN, b64))
		return bop__error(BOP_EFORMAT, "the header MAC is not canonical unpadded base64");
	if (c->pos != c->len)
		return bop__error(BOP_EFORMAT, "unexpected data after the header MAC line");
	h->mac_input_len = (size_t)(line - c->buf) + 3;
	return 0;
}

int bop__age_header_parse(bop_age_header_t *h, const char *buf, size_t len)
{
	cursor_t c = { buf, len, 0 };
	const char *line;
	size_t n;
	int ret;

	memset(h, 0, sizeof(*h));
	if (!next_line(&c, &line, &n) || !starts_with(line, n, "age-encryption.org/"))
		return bop__error(BOP_EFORMAT, "not an age file (it does not start with '%s')",
			BOP_AGE_V1_LINE);
	if (memchr(line, '\r', n))
		return bop__error(BOP_EFORMAT, "the header has CRLF line ends (age uses LF only); "
			"was the file converted as text?");
	if (n != strlen(BOP_AGE_V1_LINE) || memcmp(line, BOP_AGE_V1_LINE, n) != 0)
		return bop__error(BOP_EFORMAT, "unsupported age format version '%.*s' (only %s is known)",
			(int)(n > 64 ? 64 : n), line, BOP_AGE_V1_LINE);
	for (;;) {
		if (!next_line(&c, &line, &n))
			return bop__error(BOP_EFORMAT, "the header ends without its MAC line");
		if (starts_with(line, n, "---")) {
			if (h->nstanzas == 0)
				return bop__error(BOP_EFORMAT, "the header has no recipient stanza");
			return parse_mac(h, &c, line, n);
		}
		if (starts_with(line, n, "->") && !starts_with(line, n, "-> "))
			return bop__error(BOP_EFORMAT, "recipient stanza %zu has no arguments "
				"(want '-> type ...')", h->nstanzas + 1);
		if (!starts_with(line, n, "-> "))
			return bop__error(BOP_EFORMAT,
				"unexpected line after recipient stanza %zu (want '-> ' or '--- ')",
				h->nstanzas);
		ret = add_stanza(h, &c, line, n);
		if (ret < 0)
			return ret;
	}
}

void bop__age_header_clear(bop_age_header_t *h)
{
	for (size_t i = 0; i < h->nstanzas; i++) {
		bop_age_stanza_t *st = &h->stanzas[i];

		for (size_t j = 0; j < st->nargs; j++)
			free(st->args[j]);
		free(st->args);
		if (st->body)
			OPENSSL_cleanse(st->body, st->body_len);
		free(st->body);
	}
	free(h->stanzas);
	memset(h, 0, sizeof(*h));
}

/* ---- header writing ---- */

int bop__age_buf_append(bop_age_buf_t *b, const void *data, size_t len)
{
	if (bop__reserve(&b->data, &b->cap, b->len + len, 1, 512) < 0)
		return BOP_ENOMEM;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

int bop__age_buf_stanza(bop_age_buf_t *b, const char *const *args, size_t nargs,
	const unsigned char *body, size_t body_len)
{
	size_t enc_len = bop__age_b64_len(body_len);
	char *enc = malloc(enc_len + 1);
	int ret = 0;

	if (!enc)
		return bop__error_oom();
	bop__age_b64_encode(enc, body, body_len);
	ret = bop__age_buf_append(b, "->", 2);
	for (size_t i = 0; ret == 0 && i < nargs; i++) {
		ret = bop__age_buf_append(b, " ", 1);
		if (ret == 0)
			ret = bop__age_buf_append(b, args[i], strlen(args[i]));
	}
	if (ret == 0)
		ret = bop__age_buf_append(b, "\n", 1);
	/* Full 64-column lines, then a shorter (possibly empty) final one. */
	for (size_t off = 0; ret == 0; off += BOP_AGE_COLUMNS) {
		size_t k = enc_len - off < BOP_AGE_COLUMNS ? enc_len - off : BOP_AGE_COLUMNS;

		ret = bop__age_buf_append(b, enc + off, k);
		if (ret == 0)
			ret = bop__age_buf_append(b, "\n", 1);
		if (k < BOP_AGE_COLUMNS)
			break;
	}
	free(enc);
	return ret;
}

void bop__age_buf_free(bop_age_buf_t *b)
{
	if (b->data)
		OPENSSL_cleanse(b->data, b->cap);
	free(b->data);
	memset(b, 0, sizeof(*b));
}
