/*
 * Runs the C2SP age conformance vectors (cctv-age, written into a directory by
 * fetch-vectors.sh) through the age-decrypt stage: one TAP line per vector.
 *
 * A vector file is a few "key: value" lines (expect, payload, file key, identity,
 * passphrase, armored, compressed, comment), a blank line, then the age file. We check the
 * outcome (success, no match, HMAC failure, header failure, payload failure) and, for
 * success and payload failure, that the SHA-256 of what the stage released is `payload`.
 * Vectors we cannot run are SKIPs with the reason: ASCII armor, and identities other than
 * X25519 (post-quantum hybrid).
 */
#include "tap.h"

#include "internal.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <zlib.h>

#define MAX_KEYS 8

typedef struct vector {
	char name[256];
	char expect[64];
	char payload[65];
	char *identities[MAX_KEYS];
	size_t nidentities;
	char *passphrases[MAX_KEYS];
	size_t npassphrases;
	bool armored;
	bool zlib;
	unsigned char *body;
	size_t body_len;
} vector_t;

static struct {
	size_t ran;
	size_t skip_armor;
	size_t skip_identity;
} counts;

static void vector_free(vector_t *v)
{
	for (size_t i = 0; i < v->nidentities; i++)
		free(v->identities[i]);
	for (size_t i = 0; i < v->npassphrases; i++)
		free(v->passphrases[i]);
	free(v->body);
	memset(v, 0, sizeof(*v));
}

static int inflate_all(const unsigned char *in, size_t len, unsigned char **out, size_t *out_len)
{
	z_stream z;
	size_t cap = len * 8 + 1024, used = 0;
	unsigned char *buf = malloc(cap);
	int rc;

	memset(&z, 0, sizeof(z));
	if (!buf || inflateInit(&z) != Z_OK)
		return -1;
	z.next_in = (unsigned char *)in;
	z.avail_in = (uInt)len;
	do {
		if (cap - used < 65536) {
			cap *= 2;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
		z.next_out = buf + used;
		z.avail_out = (uInt)(cap - used);
		rc = inflate(&z, Z_NO_FLUSH);
		used = cap - z.avail_out;
	} while (rc == Z_OK);
	inflateEnd(&z);
	if (rc != Z_STREAM_END) {
		free(buf);
		return -1;
	}
	*out = buf;
	*out_len = used;
	return 0;
}

static char *value_of(const char *line, size_t n, const char *key)
{
	size_t k = strlen(key);

	if (n < k + 2 || memcmp(line, key, k) != 0 || line[k] != ':' || line[k + 1] != ' ')
		return NULL;
	return bop__strndup(line + k + 2, n - k - 2);
}

static void parse_field(vector_t *v, const char *line, size_t n)
{
	char *val;

	if ((val = value_of(line, n, "expect"))) {
		snprintf(v->expect, sizeof(v->expect), "%s", val);
		free(val);
	} else if ((val = value_of(line, n, "payload"))) {
		snprintf(v->payload, sizeof(v->payload), "%s", val);
		free(val);
	} else if ((val = value_of(line, n, "identity")) && v->nidentities < MAX_KEYS) {
		v->identities[v->nidentities++] = val;
	} else if ((val = value_of(line, n, "passphrase")) && v->npassphrases < MAX_KEYS) {
		v->passphrases[v->npassphrases++] = val;
	} else if ((val = value_of(line, n, "armored"))) {
		v->armored = strcmp(val, "yes") == 0;
		free(val);
	} else if ((val = value_of(line, n, "compressed"))) {
		v->zlib = strcmp(val, "zlib") == 0;
		free(val);
	} else {
		free(val);
	}
}

static int load_vector(vector_t *v, const char *dir, const char *name)
{
	char *path = bop__sprintf("%s/%s", dir, name), *text = NULL;
	size_t len = 0, pos = 0;
	int rc;

	memset(v, 0, sizeof(*v));
	snprintf(v->name, sizeof(v->name), "%s", name);
	rc = bop__read_file(path, &text, &len, 64u << 20);
	free(path);
	if (rc < 0)
		return rc;
	while (pos < len) {
		char *lf = memchr(text + pos, '\n', len - pos);
		size_t n = lf ? (size_t)(lf - (text + pos)) : len - pos;

		if (n == 0) {
			pos++;
			break;
		}
		parse_field(v, text + pos, n);
		pos += n + 1;
	}
	if (v->zlib) {
		rc = inflate_all((unsigned char *)text + pos, len - pos, &v->body, &v->body_len);
	} else {
		v->body = malloc(len - pos + 1);
		memcpy(v->body, text + pos, len - pos);
		v->body_len = len - pos;
	}
	free(text);
	return rc;
}

static int expected_code(const char *expect)
{
	if (strcmp(expect, "success") == 0)
		return 0;
	if (strcmp(expect, "no match") == 0)
		return BOP_ENOKEY;
	if (strcmp(expect, "HMAC failure") == 0 || strcmp(expect, "payload failure") == 0)
		return BOP_EINTEGRITY;
	if (strcmp(expect, "header failure") == 0)
		return BOP_EFORMAT;
	return 1;
}

/* Decrypts in odd-sized pieces; the released bytes are hashed. */
static int decrypt(bop_keys_t *keys, const vector_t *v, char hex[65], char *msg, size_t msg_size)
{
	static unsigned char out[20000];
	unsigned char digest[32];
	unsigned int dlen = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	bop_stage_t *st = NULL;
	size_t off = 0;
	int rc;

	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	rc = bop_stage_age_decrypt_new(&st, keys);
	while (rc >= 0) {
		size_t n = v->body_len - off < 7919 ? v->body_len - off : 7919;
		bop_inbuf_t in = { v->body + off, n, 0 };
		bop_stream_directive_t dir = off + n == v->body_len ? BOP_STREAM_END : BOP_STREAM_CONTINUE;

		do {
			bop_outbuf_t o = { out, sizeof(out), 0 };

			rc = bop_stage_process(st, &o, &in, dir);
			EVP_DigestUpdate(md, out, o.pos);
		} while (rc == 1);
		off += n;
		if (dir == BOP_STREAM_END)
			break;
	}
	snprintf(msg, msg_size, "%s", rc < 0 ? bop_error_last() : "ok");
	EVP_DigestFinal_ex(md, digest, &dlen);
	bop__hex(hex, digest, 32);
	EVP_MD_CTX_free(md);
	bop_stage_free(st);
	return rc < 0 ? rc : 0;
}

static bool is_x25519_identity(const char *s)
{
	return strncmp(s, "AGE-SECRET-KEY-1", 16) == 0;
}

static int add_unrelated_identity(bop_keys_t *keys)
{
	char *identity = NULL, *recipient = NULL, *line;
	int rc = bop_age_keygen(&identity, &recipient);

	if (rc == 0) {
		line = strstr(identity, "AGE-SECRET-KEY-1");
		line[strcspn(line, "\n")] = '\0';
		rc = bop_keys_add_identity(keys, line);
	}
	bop_free(identity);
	bop_free(recipient);
	return rc;
}

static void run_vector(const vector_t *v)
{
	bop_keys_t *keys = NULL;
	char hex[65], msg[1024];
	int want = expected_code(v->expect), rc = 0;

	if (v->armored || strcmp(v->expect, "armor failure") == 0) {
		counts.skip_armor++;
		skip(1, "%s: ASCII-armored age files are not supported", v->name);
		return;
	}
	for (size_t i = 0; i < v->nidentities; i++) {
		if (!is_x25519_identity(v->identities[i])) {
			counts.skip_identity++;
			skip(1, "%s: identity type %.18s... (post-quantum hybrid) is not supported",
				v->name, v->identities[i]);
			return;
		}
	}
	counts.ran++;
	bop_keys_new(&keys);
	for (size_t i = 0; i < v->nidentities && rc == 0; i++)
		rc = bop_keys_add_identity(keys, v->identities[i]);
	/* A vector without keys ("empty") is about the header; any identity will do. */
	if (rc == 0 && !v->nidentities && !v->npassphrases)
		rc = add_unrelated_identity(keys);
	/* One passphrase at a time is all a key set holds; the vectors with two fail anyway. */
	if (rc == 0 && v->npassphrases)
		rc = bop_keys_set_passphrase(keys, v->passphrases[0], strlen(v->passphrases[0]));
	if (rc < 0) {
		ok(0, "%s: loading its keys", v->name);
		diag("%s", bop_error_last());
		bop_keys_free(keys);
		return;
	}
	rc = decrypt(keys, v, hex, msg, sizeof(msg));
	if (want == 0 || want == BOP_EINTEGRITY) {
		bool hash_ok = strcmp(v->expect, "HMAC failure") == 0 || strcmp(hex, v->payload) == 0;

		ok(rc == want && hash_ok, "%s: %s (%s)", v->name, v->expect, msg);
		if (!hash_ok)
			diag("released plaintext SHA-256 %s, want %s", hex, v->payload);
	} else {
		ok(rc == want, "%s: %s (%s)", v->name, v->expect, msg);
	}
	if (rc != want)
		diag("got %s (%d), want %s", bop_strerror(rc), rc, v->expect);
	bop_keys_free(keys);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int only_files(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

int main(int argc, char **argv)
{
	struct dirent **names = NULL;
	int n;

	if (argc != 2)
		skip_all("usage: test-vectors DIR (run through vectors.sh)");
	n = scandir(argv[1], &names, only_files, by_name);
	if (n <= 0)
		skip_all("no vectors in %s", argv[1]);
	for (int i = 0; i < n; i++) {
		vector_t v;

		if (load_vector(&v, argv[1], names[i]->d_name) < 0)
			ok(0, "%s: cannot load the vector: %s", names[i]->d_name, bop_error_last());
		else
			run_vector(&v);
		vector_free(&v);
		free(names[i]);
	}
	free(names);
	diag("%d vectors: %zu run, %zu skipped (%zu ASCII armor, %zu post-quantum identity)", n,
		counts.ran, counts.skip_armor + counts.skip_identity, counts.skip_armor,
		counts.skip_identity);
	return done_testing();
}
