/*
 * White-box tests of age encryption: round trips through the encrypt and decrypt stages
 * under the stream contract (odd input pieces, tiny output buffers), tampering and
 * truncation (the right error, and no plaintext of a failing chunk released), keys and
 * key files, and the internal key queries.
 */
#include "tap.h"

#include "internal.h"
#include "crypto/age_internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#define CHUNK 65536
#define ENC_CHUNK (CHUNK + 16)
#define LOW_WF 10

/* ---- driving a stage ---- */

typedef struct feed {
	size_t in_max;          /* input pieces are 1..in_max bytes (pseudo-random) */
	size_t out_size;        /* output buffer size per call */
} feed_t;

typedef struct result {
	unsigned char *data;
	size_t len;
	size_t cap;
	int rc;
	bool contract_ok;       /* 0 only with all input consumed; progress on every 1 */
	char msg[1024];
} result_t;

static void result_append(result_t *r, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (r->len + n > r->cap) {
		r->cap = (r->len + n) * 2 + 1024;
		r->data = realloc(r->data, r->cap);
		if (!r->data)
			abort();
	}
	memcpy(r->data + r->len, p, n);
	r->len += n;
}

static void result_free(result_t *r)
{
	free(r->data);
	memset(r, 0, sizeof(*r));
}

static uint32_t lcg = 12345;

static size_t next_piece(size_t max)
{
	lcg = lcg * 1103515245u + 12345u;
	return max <= 1 ? 1 : 1 + (lcg >> 8) % max;
}

/* Runs the whole input through the stage (CONTINUE pieces, then END) and frees it. */
static void run(bop_stage_t *st, const unsigned char *in, size_t len, feed_t f, result_t *r)
{
	unsigned char *obuf = malloc(f.out_size);
	size_t off = 0;

	memset(r, 0, sizeof(*r));
	r->contract_ok = true;
	for (;;) {
		size_t n = next_piece(f.in_max);
		bop_inbuf_t ib = { in + off, 0, 0 };
		bop_stream_directive_t dir;
		int rc;

		if (n > len - off)
			n = len - off;
		ib.size = n;
		dir = off + n == len ? BOP_STREAM_END : BOP_STREAM_CONTINUE;
		do {
			bop_outbuf_t ob = { obuf, f.out_size, 0 };
			size_t before = ib.pos;

			rc = bop_stage_process(st, &ob, &ib, dir);
			result_append(r, obuf, ob.pos);
			if (rc < 0) {
				r->rc = rc;
				snprintf(r->msg, sizeof(r->msg), "%s", bop_error_last());
				goto out;
			}
			/* 0 means all input taken; 1 means the output filled up */
			if ((rc == 0 && ib.pos != ib.size) ||
					(rc == 1 && ob.pos < ob.size) ||
					(rc == 1 && ob.pos == 0 && ib.pos == before))
				r->contract_ok = false;
		} while (rc == 1 && r->contract_ok);
		off += n;
		if (dir == BOP_STREAM_END || !r->contract_ok)
			break;
	}
out:
	free(obuf);
	bop_stage_free(st);
}

static const feed_t big = { 1 << 20, 1 << 20 };
static const feed_t odd = { 9973, 4093 };
static const feed_t tiny = { 37, 7 };

static void encrypt_buf(const bop_keys_t *keys, const unsigned char *in, size_t len, feed_t f,
	result_t *r)
{
	bop_stage_t *st = NULL;
	int rc = bop_stage_age_encrypt_new(&st, keys);

	if (rc < 0) {
		memset(r, 0, sizeof(*r));
		r->rc = rc;
		snprintf(r->msg, sizeof(r->msg), "%s", bop_error_last());
		return;
	}
	run(st, in, len, f, r);
}

static void decrypt_buf(const bop_keys_t *keys, const unsigned char *in, size_t len, feed_t f,
	result_t *r)
{
	bop_stage_t *st = NULL;
	int rc = bop_stage_age_decrypt_new(&st, keys);

	if (rc < 0) {
		memset(r, 0, sizeof(*r));
		r->rc = rc;
		snprintf(r->msg, sizeof(r->msg), "%s", bop_error_last());
		return;
	}
	run(st, in, len, f, r);
}

/* ---- keys ---- */

typedef struct keypair {
	char *identity_file;    /* age-keygen text */
	char *secret;           /* the AGE-SECRET-KEY-1 line */
	char *recipient;
} keypair_t;

static void keypair_new(keypair_t *kp)
{
	char *nl;

	if (bop_age_keygen(&kp->identity_file, &kp->recipient) < 0)
		abort();
	kp->secret = strdup(strstr(kp->identity_file, "AGE-SECRET-KEY-1"));
	nl = strchr(kp->secret, '\n');
	if (nl)
		*nl = '\0';
}

static void keypair_free(keypair_t *kp)
{
	bop_free(kp->identity_file);
	bop_free(kp->recipient);
	free(kp->secret);
}

static bop_keys_t *keys_for_identity(const keypair_t *kp)
{
	bop_keys_t *k = NULL;

	if (bop_keys_new(&k) < 0 || bop_keys_add_identity(k, kp->secret) < 0)
		abort();
	return k;
}

static bop_keys_t *keys_for_recipients(const keypair_t *kps, size_t n)
{
	bop_keys_t *k = NULL;

	if (bop_keys_new(&k) < 0)
		abort();
	for (size_t i = 0; i < n; i++)
		if (bop_keys_add_recipient(k, kps[i].recipient) < 0)
			abort();
	return k;
}

static bop_keys_t *keys_for_passphrase(const char *pass, unsigned int wf)
{
	bop_keys_t *k = NULL;

	if (bop_keys_new(&k) < 0 || bop_keys_set_passphrase(k, pass, strlen(pass)) < 0 ||
			bop_keys_set_scrypt_work_factor(k, wf) < 0)
		abort();
	return k;
}

static unsigned char *random_data(size_t n)
{
	unsigned char *p = malloc(n ? n : 1);

	if (n && RAND_bytes(p, (int)n) != 1)
		abort();
	return p;
}

/* ---- round trips ---- */

static void roundtrip(const char *what, const bop_keys_t *enc, const bop_keys_t *dec,
	const unsigned char *plain, size_t len, feed_t fe, feed_t fd)
{
	result_t c, p;
	size_t chunks = len ? (len + CHUNK - 1) / CHUNK : 1;

	encrypt_buf(enc, plain, len, fe, &c);
	if (!ok(c.rc == 0 && c.contract_ok, "%s: encrypt %zu bytes", what, len)) {
		diag("%s", c.msg);
		result_free(&c);
		return;
	}
	/* The ciphertext is the header plus 16 bytes of nonce and a tag per chunk. */
	ok(c.len > len + 16 + 16 * chunks && memcmp(c.data, "age-encryption.org/v1\n", 22) == 0,
		"%s: ciphertext has the age header and %zu chunk tags", what, chunks);
	decrypt_buf(dec, c.data, c.len, fd, &p);
	ok(p.rc == 0 && p.contract_ok && p.len == len && (len == 0 || memcmp(p.data, plain, len) == 0),
		"%s: decrypt gives the same %zu bytes", what, len);
	if (p.rc)
		diag("%s", p.msg);
	result_free(&c);
	result_free(&p);
}

static void test_roundtrips(keypair_t *kps)
{
	static const size_t sizes[] = { 0, 1, 65535, 65536, 65537, 3u << 20, (3u << 20) + 1000 };
	bop_keys_t *one = keys_for_recipients(kps, 1), *three = keys_for_recipients(kps, 3);
	bop_keys_t *id0 = keys_for_identity(&kps[0]), *id2 = keys_for_identity(&kps[2]);
	bop_keys_t *pass = keys_for_passphrase("correct horse battery staple", LOW_WF);
	unsigned char *data = random_data(sizes[BOP_ARRAY_SIZE(sizes) - 1]);
	char what[128];

	for (size_t i = 0; i < BOP_ARRAY_SIZE(sizes); i++) {
		size_t n = sizes[i];
		feed_t small = n > 200000 ? odd : tiny;

		snprintf(what, sizeof(what), "1 recipient, big buffers");
		roundtrip(what, one, id0, data, n, big, big);
		snprintf(what, sizeof(what), "1 recipient, odd pieces / small output");
		roundtrip(what, one, id0, data, n, odd, small);
		snprintf(what, sizeof(what), "3 recipients, third identity, small pieces");
		roundtrip(what, three, id2, data, n, small, odd);
		snprintf(what, sizeof(what), "passphrase (work factor %d)", LOW_WF);
		roundtrip(what, pass, pass, data, n, small, big);
	}
	bop_keys_free(one);
	bop_keys_free(three);
	bop_keys_free(id0);
	bop_keys_free(id2);
	bop_keys_free(pass);
	free(data);
}

/* ---- tampering ---- */

/* Where the payload starts: after the "--- " line and the 16-byte nonce. */
static size_t payload_offset(const unsigned char *c, size_t len)
{
	const unsigned char *p = memmem(c, len, "\n--- ", 5);
	const unsigned char *lf = p ? memchr(p + 1, '\n', len - (size_t)(p + 1 - c)) : NULL;

	return lf ? (size_t)(lf + 1 - c) + 16 : 0;
}

/* The released plaintext is exactly the first `chunks` chunks of `plain`. */
static bool released_exactly(const result_t *r, const unsigned char *plain, size_t chunks)
{
	return r->len == chunks * CHUNK && (r->len == 0 || memcmp(r->data, plain, r->len) == 0);
}

static void expect_failure(const char *what, const bop_keys_t *keys, const unsigned char *c,
	size_t len, int code, const char *needle, const unsigned char *plain, size_t good_chunks)
{
	static const feed_t feeds[] = { { 1 << 20, 1 << 20 }, { 9973, 4093 }, { 70001, 100 } };

	for (size_t i = 0; i < BOP_ARRAY_SIZE(feeds); i++) {
		result_t r;

		decrypt_buf(keys, c, len, feeds[i], &r);
		if (i == 0)
			diag("%s: %s", what, r.msg);
		is_int(r.rc, code, what);
		if (needle && !ok(strstr(r.msg, needle) != NULL, "%s: message mentions '%s'", what, needle))
			diag("message: %s", r.msg);
		ok(released_exactly(&r, plain, good_chunks),
			"%s: released only the %zu authentic chunks before it (feed %zu)", what,
			good_chunks, i);
		if (!released_exactly(&r, plain, good_chunks))
			diag("released %zu bytes", r.len);
		result_free(&r);
	}
}

static void test_tampering(keypair_t *kps)
{
	size_t len = 4 * CHUNK + 1234;   /* chunks 0..3 full, chunk 4 short and final */
	unsigned char *plain = random_data(len), *bad;
	bop_keys_t *three = keys_for_recipients(kps, 3), *id0 = keys_for_identity(&kps[0]);
	bop_keys_t *other = NULL;
	keypair_t stranger;
	result_t c;
	size_t off, mac;

	encrypt_buf(three, plain, len, big, &c);
	off = payload_offset(c.data, c.len);
	ok(c.rc == 0 && off > 0 && c.len == off + 5 * 16 + len, "tamper: encrypted 5 chunks");
	bad = malloc(c.len + 100);

	/* a character of the MAC (the middle of the base64 is always canonical) */
	memcpy(bad, c.data, c.len);
	mac = (size_t)((unsigned char *)memmem(c.data, c.len, "\n--- ", 5) - c.data) + 5 + 20;
	bad[mac] = bad[mac] == 'A' ? 'B' : 'A';
	expect_failure("header MAC changed", id0, bad, c.len, BOP_EINTEGRITY, "MAC", plain, 0);

	/* the body of the second stanza: identity 0 still opens the first, the MAC catches it */
	memcpy(bad, c.data, c.len);
	{
		unsigned char *second = memmem(c.data, c.len, "\n-> X25519 ", 11);
		size_t pos;

		second = memmem(second + 1, c.len - (size_t)(second + 1 - c.data), "\n-> X25519 ", 11);
		pos = (size_t)((unsigned char *)memchr(second + 1, '\n', 200) - c.data) + 5;
		bad[pos] = bad[pos] == 'A' ? 'B' : 'A';
	}
	expect_failure("another recipient's stanza changed", id0, bad, c.len, BOP_EINTEGRITY, "MAC",
		plain, 0);

	memcpy(bad, c.data, c.len);
	bad[20] = '2';
	expect_failure("version line changed", id0, bad, c.len, BOP_EFORMAT, "version", plain, 0);

	memcpy(bad, c.data, c.len);
	bad[off - 3] ^= 1;
	expect_failure("payload nonce changed", id0, bad, c.len, BOP_EINTEGRITY, "chunk 0", plain, 0);

	memcpy(bad, c.data, c.len);
	bad[off + 2 * ENC_CHUNK + 777] ^= 0x40;
	expect_failure("middle chunk 2 changed", id0, bad, c.len, BOP_EINTEGRITY, "chunk 2", plain, 2);

	memcpy(bad, c.data, c.len);
	bad[off + 2 * ENC_CHUNK + CHUNK + 3] ^= 0x01;     /* its tag */
	expect_failure("tag of chunk 2 changed", id0, bad, c.len, BOP_EINTEGRITY, "chunk 2", plain, 2);

	memcpy(bad, c.data, c.len);
	bad[c.len - 20] ^= 0x80;
	expect_failure("last chunk changed", id0, bad, c.len, BOP_EINTEGRITY, "chunk 4", plain, 4);

	expect_failure("truncated at a chunk boundary", id0, c.data, off + 3 * ENC_CHUNK,
		BOP_EINTEGRITY, "truncated", plain, 3);
	expect_failure("truncated in the middle of chunk 2", id0, c.data, off + 3 * ENC_CHUNK - 500,
		BOP_EINTEGRITY, "chunk 2", plain, 2);
	expect_failure("truncated to the header and nonce", id0, c.data, off, BOP_EINTEGRITY,
		"chunk 0", plain, 0);
	expect_failure("truncated inside the nonce", id0, c.data, off - 5, BOP_EFORMAT, "nonce",
		plain, 0);
	expect_failure("truncated inside the header", id0, c.data, 60, BOP_EFORMAT, "header",
		plain, 0);
	expect_failure("truncated in the tag of the last chunk", id0, c.data, c.len - 1,
		BOP_EINTEGRITY, "chunk 4", plain, 4);

	memcpy(bad, c.data, c.len);
	memcpy(bad + c.len, "garbage", 7);
	expect_failure("garbage after the last chunk", id0, bad, c.len + 7, BOP_EINTEGRITY,
		"chunk 4", plain, 4);

	/* wrong identity */
	keypair_new(&stranger);
	other = keys_for_identity(&stranger);
	expect_failure("wrong identity", other, c.data, c.len, BOP_ENOKEY, "3 recipient stanzas",
		plain, 0);
	keypair_free(&stranger);
	bop_keys_free(other);
	other = keys_for_passphrase("pass", LOW_WF);
	expect_failure("passphrase for an X25519 file", other, c.data, c.len, BOP_ENOKEY,
		"give an identity", plain, 0);
	bop_keys_free(other);

	expect_failure("not an age file", id0, plain, 1000, BOP_EFORMAT, "not an age file", plain, 0);
	expect_failure("empty input", id0, plain, 0, BOP_EFORMAT, "empty", plain, 0);
	{
		static const char armored[] = "-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n"
			"-----END AGE ENCRYPTED FILE-----\n";

		expect_failure("ASCII-armored input", id0, (const unsigned char *)armored,
			sizeof(armored) - 1, BOP_EFORMAT, "ASCII-armored", plain, 0);
	}

	free(bad);
	result_free(&c);
	bop_keys_free(three);
	bop_keys_free(id0);
	free(plain);
}

/* A file whose final chunk is full: garbage after it is named as such. */
static void test_full_final_chunk(keypair_t *kps)
{
	size_t len = 2 * CHUNK;
	unsigned char *plain = random_data(len), *bad;
	bop_keys_t *one = keys_for_recipients(kps, 1), *id0 = keys_for_identity(&kps[0]);
	result_t c;
	size_t off;

	encrypt_buf(one, plain, len, odd, &c);
	off = payload_offset(c.data, c.len);
	ok(c.rc == 0 && c.len == off + 2 * ENC_CHUNK, "full final chunk: 2 full chunks, no empty one");
	bad = malloc(c.len + 1);
	memcpy(bad, c.data, c.len);
	bad[c.len] = 'x';
	/* The final chunk is authentic, so it is released before the error (as age does). */
	expect_failure("one byte after a full final chunk", id0, bad, c.len + 1, BOP_EINTEGRITY,
		"data follows", plain, 2);
	expect_failure("full file truncated before its final chunk", id0, c.data, off + ENC_CHUNK,
		BOP_EINTEGRITY, "truncated", plain, 1);
	free(bad);
	result_free(&c);
	bop_keys_free(one);
	bop_keys_free(id0);
	free(plain);
}

static void test_passphrase(void)
{
	static const unsigned char plain[] = "the passphrase protects this";
	bop_keys_t *enc = keys_for_passphrase("s3cret passphrase", 12);
	bop_keys_t *wrong = keys_for_passphrase("not it", 12);
	bop_keys_t *low = keys_for_passphrase("s3cret passphrase", 11);
	bop_keys_t *mixed = keys_for_passphrase("s3cret passphrase", 12);
	keypair_t kp;
	bop_stage_t *st = NULL;
	result_t c, r;

	encrypt_buf(enc, plain, sizeof(plain), big, &c);
	ok(c.rc == 0 && memmem(c.data, c.len, "\n-> scrypt ", 11) && memmem(c.data, c.len, " 12\n", 4),
		"passphrase: one scrypt stanza with work factor 12");
	decrypt_buf(wrong, c.data, c.len, big, &r);
	is_int(r.rc, BOP_ENOKEY, "wrong passphrase: BOP_ENOKEY");
	ok(strstr(r.msg, "passphrase is wrong") != NULL, "wrong passphrase: says so (%s)", r.msg);
	result_free(&r);
	decrypt_buf(low, c.data, c.len, big, &r);
	is_int(r.rc, BOP_EFORMAT, "work factor above the limit: BOP_EFORMAT");
	ok(strstr(r.msg, "work factor 12") && strstr(r.msg, "limit 11"), "work factor: message (%s)",
		r.msg);
	result_free(&r);
	keypair_new(&kp);
	bop_keys_free(wrong);
	wrong = keys_for_identity(&kp);
	decrypt_buf(wrong, c.data, c.len, big, &r);
	is_int(r.rc, BOP_ENOKEY, "identity for a passphrase file: BOP_ENOKEY");
	ok(strstr(r.msg, "encrypted with a passphrase") != NULL, "says a passphrase is needed (%s)",
		r.msg);
	result_free(&r);
	is_int(bop_keys_add_recipient(mixed, kp.recipient), 0, "add a recipient next to a passphrase");
	is_int(bop_stage_age_encrypt_new(&st, mixed), BOP_EINVAL,
		"encrypting to a passphrase and a recipient: BOP_EINVAL");
	ok(st == NULL, "no stage on failure");
	is_str(bop__keys_kind(mixed), "none", "kind of passphrase + recipient: none");
	is_str(bop__keys_kind(enc), "scrypt", "kind of a passphrase: scrypt");
	is_int(bop_keys_set_scrypt_work_factor(enc, 31), BOP_EINVAL, "work factor 31 refused");
	is_int(bop_keys_set_scrypt_work_factor(enc, 0), BOP_EINVAL, "work factor 0 refused");
	is_int(bop_keys_set_passphrase(enc, "", 0), BOP_EINVAL, "empty passphrase refused");
	keypair_free(&kp);
	result_free(&c);
	bop_keys_free(enc);
	bop_keys_free(wrong);
	bop_keys_free(low);
	bop_keys_free(mixed);
}

/* ---- keys ---- */

static char tmpdir[] = "/tmp/bop-age-test-XXXXXX";

static char *write_tmp(const char *name, const char *text)
{
	char *path = bop__sprintf("%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");

	if (!f)
		abort();
	fputs(text, f);
	fclose(f);
	return path;
}

static void test_keygen(void)
{
	char *identity = NULL, *recipient = NULL, *derived = NULL, *secret, *path;
	bop_keys_t *k = NULL;
	keypair_t kp;

	is_int(bop_age_keygen(&identity, &recipient), 0, "keygen");
	ok(strncmp(identity, "# created: ", 11) == 0 && identity[30] == 'Z' &&
		strncmp(identity + 31, "\n# public key: age1", 19) == 0, "keygen: age-keygen layout");
	ok(strlen(recipient) == 62 && strncmp(recipient, "age1", 4) == 0, "keygen: recipient age1 + 58");
	secret = strstr(identity, "\nAGE-SECRET-KEY-1");
	ok(secret && strlen(secret + 1) == 75 && secret[75] == '\n', "keygen: secret key line");
	ok(strstr(identity, recipient) != NULL, "keygen: the comment names the recipient");
	if (secret) {
		secret[75] = '\0';
		is_int(bop_age_identity_to_recipient(&derived, secret + 1), 0, "identity_to_recipient");
		is_str(derived, recipient, "identity_to_recipient agrees with keygen");
		secret[75] = '\n';
	}
	path = write_tmp("keygen.txt", identity);
	bop_keys_new(&k);
	is_int(bop_keys_add_identity_file(k, path), 0, "the keygen output loads as an identity file");
	is_int(bop_keys_recipient_count(k), 1, "an identity counts as one recipient");
	is_int(bop_keys_add_recipient(k, recipient), 0, "its own recipient again");
	is_int(bop_keys_recipient_count(k), 1, "duplicates are counted once");
	keypair_new(&kp);
	is_int(bop_keys_add_recipient(k, kp.recipient), 0, "another recipient");
	is_int(bop_keys_recipient_count(k), 2, "two recipients");
	is_str(bop__keys_kind(k), "x25519", "kind: x25519");
	{
		char **fps = NULL;
		unsigned char digest[32];
		unsigned int dlen;
		char hex[65], want[40];

		is_int(bop__keys_fingerprints(k, &fps), 0, "fingerprints");
		ok(fps && fps[0] && fps[1] && !fps[2], "two fingerprints");
		EVP_Digest(recipient, strlen(recipient), digest, &dlen, EVP_sha256(), NULL);
		bop__hex(hex, digest, 32);
		snprintf(want, sizeof(want), "sha256:%.16s", hex);
		if (fps)
			is_str(fps[0], want, "fingerprint = sha256: + 16 hex of SHA-256(recipient)");
		ok(fps && fps[1] && strlen(fps[1]) == 23 && strspn(fps[1] + 7, "0123456789abcdef") == 16,
			"fingerprints are sha256: and 16 hex digits");
		bop__strv_free(fps);
	}
	keypair_free(&kp);
	bop_keys_free(k);
	unlink(path);
	bop_free(path);
	bop_free(derived);
	bop_free(identity);
	bop_free(recipient);
}

static void expect_bad(int rc, const char *what, const char *needle, const char *secret)
{
	is_int(rc, BOP_EFORMAT, what);
	if (!ok(strstr(bop_error_last(), needle) != NULL, "%s: message says '%s'", what, needle))
		diag("message: %s", bop_error_last());
	if (secret)
		ok(strstr(bop_error_last(), secret + 16) == NULL, "%s: the message hides the secret",
			what);
}

static void test_bad_keys(void)
{
	bop_keys_t *k = NULL;
	keypair_t kp;
	char buf[256], *path;

	keypair_new(&kp);
	bop_keys_new(&k);
	snprintf(buf, sizeof(buf), "%s", kp.recipient);
	buf[20] = buf[20] == 'q' ? 'p' : 'q';
	expect_bad(bop_keys_add_recipient(k, buf), "recipient with a typo", "checksum", NULL);
	snprintf(buf, sizeof(buf), "%s", kp.recipient);
	for (char *p = buf + 4; *p; p++)
		if (*p >= 'a' && *p <= 'z') {
			*p = (char)(*p - 32);
			break;
		}
	expect_bad(bop_keys_add_recipient(k, buf), "recipient with mixed case", "uppercase", NULL);
	expect_bad(bop_keys_add_recipient(k, kp.secret), "identity given as recipient",
		"not a recipient", kp.secret);
	expect_bad(bop_keys_add_recipient(k, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA"),
		"SSH recipient", "SSH keys are not supported", NULL);
	expect_bad(bop_keys_add_recipient(k, "age1"), "truncated recipient", "age recipient", NULL);
	expect_bad(bop_keys_add_recipient(k, ""), "empty recipient", "age recipient", NULL);
	/* all-zero point: a valid encoding, but every shared secret would be zero */
	{
		unsigned char zero[32] = { 0 };
		char *enc = NULL;

		bop__bech32_encode(&enc, "age", zero, 32, false);
		expect_bad(bop_keys_add_recipient(k, enc), "low-order recipient", "low-order", NULL);
		free(enc);
	}
	expect_bad(bop_keys_add_identity(k, kp.recipient), "recipient given as identity",
		"not an identity", NULL);
	snprintf(buf, sizeof(buf), "%s", kp.secret);
	buf[40] = buf[40] == 'Q' ? 'P' : 'Q';
	expect_bad(bop_keys_add_identity(k, buf), "identity with a typo", "checksum", buf);
	expect_bad(bop_keys_add_identity(k, "AGE-SECRET-KEY-PQ-1HZLGZUPT4ETPKDEV8HSGFDCYZ4E522W0A7PU2"
		"LHT8EH9W6YLNC3SW78XKG"), "post-quantum identity", "post-quantum", NULL);
	is_int(bop_keys_recipient_count(k), 0, "nothing was added by the bad keys");

	snprintf(buf, sizeof(buf), "# team\n%s\n\n  # old key below\nage1notakey\n", kp.recipient);
	path = write_tmp("recipients.txt", buf);
	expect_bad(bop_keys_add_recipients_file(k, path), "recipients file with a bad line",
		"line 5", NULL);
	ok(strstr(bop_error_last(), path) != NULL, "recipients file: message names the file");
	unlink(path);
	bop_free(path);
	path = write_tmp("empty.txt", "# nothing here\n\n");
	expect_bad(bop_keys_add_identity_file(k, path), "identity file without keys", "no keys", NULL);
	unlink(path);
	bop_free(path);
	snprintf(buf, sizeof(buf), "# created: now\r\n\r\n%s\r\n%s\n", kp.secret, kp.recipient);
	path = write_tmp("mixed.txt", buf);
	expect_bad(bop_keys_add_identity_file(k, path), "identity file with a recipient line",
		"line 4", NULL);
	unlink(path);
	bop_free(path);
	snprintf(buf, sizeof(buf), "# created: now\r\n\r\n  %s  \r\n", kp.secret);
	path = write_tmp("crlf.txt", buf);
	is_int(bop_keys_add_identity_file(k, path), 0, "identity file with CRLF, blanks, indentation");
	unlink(path);
	bop_free(path);
	is_int(bop_keys_add_identity_file(k, "/nonexistent/key.txt"), BOP_ENOTFOUND,
		"missing identity file: BOP_ENOTFOUND");
	ok(strstr(bop_error_last(), "/nonexistent/key.txt") != NULL, "missing file is named (%s)",
		bop_error_last());
	path = write_tmp("pass.txt", "pass phrase\r\nsecond line\n");
	is_int(bop_keys_set_passphrase_file(k, path), 0, "passphrase file");
	ok(k->passphrase_len == 11 && memcmp(k->passphrase, "pass phrase", 11) == 0,
		"passphrase file: first line without CRLF");
	unlink(path);
	bop_free(path);
	keypair_free(&kp);
	bop_keys_free(k);
	bop_keys_new(&k);
	{
		bop_stage_t *st = NULL;

		is_int(bop_stage_age_encrypt_new(&st, k), BOP_EINVAL, "encrypt with no recipient: EINVAL");
		is_int(bop_stage_age_decrypt_new(&st, k), BOP_EINVAL, "decrypt with no identity: EINVAL");
		is_str(bop__keys_kind(k), "none", "kind of empty keys: none");
	}
	bop_keys_free(k);
}

static void test_bech32_base64(void)
{
	unsigned char data[64];
	char hrp[16], out[64];
	size_t len;
	bool good;

	/* BIP 173 test vectors */
	is_int(bop__bech32_decode("A12UEL5L", hrp, sizeof(hrp), data, sizeof(data), &len), 0,
		"bech32: A12UEL5L");
	is_int(bop__bech32_decode("a12uel5l", hrp, sizeof(hrp), data, sizeof(data), &len), 0,
		"bech32: a12uel5l");
	is_int(bop__bech32_decode("A12uEL5L", hrp, sizeof(hrp), data, sizeof(data), &len),
		BOP_EFORMAT, "bech32: mixed case refused");
	is_int(bop__bech32_decode("a12uel5m", hrp, sizeof(hrp), data, sizeof(data), &len),
		BOP_EFORMAT, "bech32: bad checksum refused");
	bop__age_b64_encode(out, (const unsigned char *)"ab", 2);
	is_str(out, "YWI", "base64: no padding");
	good = bop__age_b64_decode(data, sizeof(data), &len, "YWI", 3);
	ok(good && len == 2 && memcmp(data, "ab", 2) == 0, "base64: decodes unpadded");
	ok(!bop__age_b64_decode(data, sizeof(data), &len, "YWJ", 3), "base64: non-canonical refused");
	ok(!bop__age_b64_decode(data, sizeof(data), &len, "YWI=", 4), "base64: padding refused");
	ok(!bop__age_b64_decode(data, sizeof(data), &len, "YWI\n", 4), "base64: whitespace refused");
	ok(!bop__age_b64_decode(data, sizeof(data), &len, "Y", 1), "base64: impossible length refused");
}

static void test_stage_api(keypair_t *kps)
{
	bop_keys_t *one = keys_for_recipients(kps, 1), *id0 = keys_for_identity(&kps[0]);
	bop_stage_t *st = NULL;
	unsigned char out[200000], plain[100] = "x";
	bop_inbuf_t ib = { plain, sizeof(plain), 0 };
	bop_outbuf_t ob = { out, sizeof(out), 0 };
	result_t c;

	bop_stage_age_encrypt_new(&st, one);
	is_str(bop_stage_name(st), "age-encrypt", "encrypt stage name");
	is_int(bop_stage_process(st, &ob, &ib, BOP_STREAM_FLUSH), 0, "FLUSH returns 0");
	ok(ob.pos > 22 && ib.pos == ib.size, "FLUSH writes the header and takes the input");
	is_int(bop_stage_process(st, &ob, &ib, BOP_STREAM_END), 0, "END");
	ib.pos = 0;
	ok(bop_stage_process(st, &ob, &ib, BOP_STREAM_END) < 0, "input after END is refused");
	bop_stage_free(st);
	bop_stage_age_decrypt_new(&st, id0);
	is_str(bop_stage_name(st), "age-decrypt", "decrypt stage name");
	bop_stage_free(st);

	encrypt_buf(one, plain, sizeof(plain), big, &c);
	bop_stage_age_decrypt_new(&st, id0);
	ib = (bop_inbuf_t){ c.data, c.len, 0 };
	ob = (bop_outbuf_t){ out, sizeof(out), 0 };
	is_int(bop_stage_process(st, &ob, &ib, BOP_STREAM_CONTINUE), 0, "decrypt CONTINUE takes all");
	is_int(ob.pos, 0, "nothing released before END: the last chunk may still grow");
	is_int(bop_stage_process(st, &ob, &ib, BOP_STREAM_END), 0, "decrypt END");
	ok(ob.pos == sizeof(plain) && memcmp(out, plain, sizeof(plain)) == 0, "plaintext at END");
	bop_stage_free(st);
	result_free(&c);
	bop_keys_free(one);
	bop_keys_free(id0);
}

int main(void)
{
	keypair_t kps[3];

	if (!mkdtemp(tmpdir))
		return 1;
	for (int i = 0; i < 3; i++)
		keypair_new(&kps[i]);
	test_bech32_base64();
	test_keygen();
	test_bad_keys();
	test_stage_api(kps);
	test_roundtrips(kps);
	test_tampering(kps);
	test_full_final_chunk(kps);
	test_passphrase();
	for (int i = 0; i < 3; i++)
		keypair_free(&kps[i]);
	rmdir(tmpdir);
	return done_testing();
}
