/*
 * AWS Signature Version 4 for S3, header-based, payload signed (the payload's SHA-256 is in
 * x-amz-content-sha256). Done here rather than with CURLOPT_AWS_SIGV4 because curl 7.88
 * neither encodes nor sorts the query and path it signs, nor sends the payload hash.
 */
#include "storage/s3/s3.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		c == '-' || c == '.' || c == '_' || c == '~';
}

char *bop__s3_uri_encode(const char *text, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(text), j = 0;
	char *out = malloc(n * 3 + 1);

	if (!out) {
		bop__error_oom();
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)text[i];

		if (unreserved(c) || (keep_slash && c == '/')) {
			out[j++] = (char)c;
		} else {
			out[j++] = '%';
			out[j++] = hex[c >> 4];
			out[j++] = hex[c & 15];
		}
	}
	out[j] = '\0';
	return out;
}

typedef struct encoded_param {
	char *name;
	char *value;
} encoded_param_t;

static int compare_params(const void *a, const void *b)
{
	const encoded_param_t *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

char *bop__s3_canonical_query(const s3_param_t *params, size_t n)
{
	encoded_param_t *enc = n ? bop__calloc(n, sizeof(*enc)) : NULL;
	size_t total = 1, j = 0;
	char *out = NULL;

	if (n && !enc)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		enc[i].name = bop__s3_uri_encode(params[i].name, false);
		enc[i].value = bop__s3_uri_encode(params[i].value ? params[i].value : "", false);
		if (!enc[i].name || !enc[i].value)
			goto out;
		total += strlen(enc[i].name) + strlen(enc[i].value) + 2;
	}
	if (n)
		qsort(enc, n, sizeof(*enc), compare_params);
	out = malloc(total);
	if (!out) {
		bop__error_oom();
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		j += (size_t)sprintf(out + j, "%s%s=%s", i ? "&" : "", enc[i].name, enc[i].value);
	out[j] = '\0';
out:
	for (size_t i = 0; i < n; i++) {
		free(enc[i].name);
		free(enc[i].value);
	}
	free(enc);
	return out;
}

int bop__s3_sha256_hex(char hex[65], const void *data, size_t len)
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL))
		return bop__error(BOP_ERROR, "SHA-256 failed (OpenSSL)");
	bop__hex(hex, md, 32);
	return 0;
}

void bop__s3_amz_date(char out[17], int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static int hmac(unsigned char out[32], const void *key, size_t keylen, const char *data)
{
	size_t outlen = 0;

	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, keylen,
			(const unsigned char *)data, strlen(data), out, 32, &outlen) || outlen != 32)
		return bop__error(BOP_ERROR, "HMAC-SHA256 failed (OpenSSL)");
	return 0;
}

static int compare_headers(const void *a, const void *b)
{
	const s3_header_t *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* Header values are trimmed; S3 values never hold runs of inner spaces we send. */
static char *trimmed(const char *v)
{
	size_t n;

	while (*v == ' ' || *v == '\t')
		v++;
	n = strlen(v);
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	return bop__strndup(v, n);
}

/* "name:value\n..." and "name;name" of the sorted headers. */
static int canonical_headers(const s3_sign_input_t *in, char **lines, char **names)
{
	s3_header_t *sorted = bop__calloc(in->nheaders ? in->nheaders : 1, sizeof(*sorted));
	char *l = bop__strdup(""), *s = bop__strdup(""), *next, *v;
	int ret = 0;

	if (!sorted || !l || !s)
		goto oom;
	memcpy(sorted, in->headers, in->nheaders * sizeof(*sorted));
	qsort(sorted, in->nheaders, sizeof(*sorted), compare_headers);
	for (size_t i = 0; i < in->nheaders; i++) {
		v = trimmed(sorted[i].value);
		if (!v)
			goto oom;
		next = bop__sprintf("%s%s:%s\n", l, sorted[i].name, v);
		free(v);
		free(l);
		l = next;
		next = bop__sprintf("%s%s%s", s, i ? ";" : "", sorted[i].name);
		free(s);
		s = next;
		if (!l || !s)
			goto oom;
	}
	*lines = l;
	*names = s;
	goto out;
oom:
	free(l);
	free(s);
	ret = BOP_ENOMEM;
out:
	free(sorted);
	return ret;
}

static int signing_key(unsigned char key[32], const s3_sign_input_t *in, const char *date)
{
	char *secret = bop__sprintf("AWS4%s", in->secret_access_key);
	int ret;

	if (!secret)
		return BOP_ENOMEM;
	ret = hmac(key, secret, strlen(secret), date);
	bop__wipe(secret, strlen(secret));
	free(secret);
	if (ret == 0)
		ret = hmac(key, key, 32, in->region);
	if (ret == 0)
		ret = hmac(key, key, 32, "s3");
	if (ret == 0)
		ret = hmac(key, key, 32, "aws4_request");
	return ret;
}

int bop__s3_sign(char **authorization, const s3_sign_input_t *in)
{
	char *lines = NULL, *names = NULL, *creq = NULL, *sts = NULL;
	char date[9], creq_hash[65], sig_hex[65];
	unsigned char key[32], sig[32];
	int ret;

	*authorization = NULL;
	if (strlen(in->amz_date) != 16)
		return bop__error(BOP_EINVAL, "bad x-amz-date \"%s\"", in->amz_date);
	memcpy(date, in->amz_date, 8);
	date[8] = '\0';
	ret = canonical_headers(in, &lines, &names);
	if (ret < 0)
		return ret;
	creq = bop__sprintf("%s\n%s\n%s\n%s\n%s\n%s", in->method, in->canonical_uri,
		in->canonical_query, lines, names, in->payload_sha256);
	if (!creq) {
		ret = BOP_ENOMEM;
		goto out;
	}
	if ((ret = bop__s3_sha256_hex(creq_hash, creq, strlen(creq))) < 0)
		goto out;
	sts = bop__sprintf("AWS4-HMAC-SHA256\n%s\n%s/%s/s3/aws4_request\n%s", in->amz_date, date,
		in->region, creq_hash);
	if (!sts) {
		ret = BOP_ENOMEM;
		goto out;
	}
	if ((ret = signing_key(key, in, date)) < 0 || (ret = hmac(sig, key, 32, sts)) < 0)
		goto out;
	bop__hex(sig_hex, sig, 32);
	*authorization = bop__sprintf("AWS4-HMAC-SHA256 Credential=%s/%s/%s/s3/aws4_request,SignedHeaders=%s,Signature=%s",
		in->access_key_id, date, in->region, names, sig_hex);
	if (!*authorization)
		ret = BOP_ENOMEM;
out:
	bop__wipe(key, sizeof(key));
	free(lines);
	free(names);
	free(creq);
	free(sts);
	return ret;
}
