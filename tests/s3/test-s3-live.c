/*
 * The S3 backend against a real S3 server (Ceph radosgw in CI): BOP_TEST_S3_ENDPOINT,
 * BOP_TEST_S3_BUCKET, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Every run works under its
 * own prefix and removes what it wrote. Without a server the whole program is skipped.
 */
#include "tap.h"

#include "storage/s3/s3.h"

#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB (1024 * 1024)

static const char *endpoint;
static const char *bucket;
static char prefix[96];

static char *url_for(const char *bkt, const char *options)
{
	return bop__sprintf("s3://%s/%s?endpoint=%s%s%s", bkt, prefix, endpoint,
		options ? "&" : "", options ? options : "");
}

static bop_storage_t *open_with(const char *bkt, const char *options, const char *const *settings)
{
	bop_storage_options_t opts = BOP_STORAGE_OPTIONS_INIT;
	bop_storage_t *st = NULL;
	char *url = url_for(bkt, options);

	opts.settings = settings;
	if (bop_storage_open(&st, url, &opts) < 0)
		diag("cannot open %s: %s", url, bop_error_last());
	free(url);
	return st;
}

/* Writes in odd-sized chunks so part boundaries fall inside writes. */
static int put_bytes(bop_storage_t *st, const char *key, const unsigned char *data, size_t len,
	uint64_t hint)
{
	bop_put_options_t opts = BOP_PUT_OPTIONS_INIT;
	bop_sink_t *sink = NULL;
	size_t off = 0, n;
	int ret;

	opts.size_hint = hint;
	if ((ret = bop_storage_put(st, &sink, key, &opts)) < 0)
		return ret;
	while (off < len && ret == 0) {
		n = len - off < 65543 ? len - off : 65543;
		ret = bop_sink_write(sink, data + off, n);
		off += n;
	}
	if (ret == 0)
		ret = bop_sink_commit(sink);
	bop_sink_free(sink);
	return ret;
}

static int get_bytes(bop_storage_t *st, const char *key, uint64_t offset, unsigned char **out,
	size_t *len)
{
	bop_source_t *src = NULL;
	size_t cap = MIB, n = 0, got;
	unsigned char *buf = malloc(cap);
	int ret;

	*out = NULL;
	if ((ret = bop_storage_get(st, &src, key, offset)) < 0) {
		free(buf);
		return ret;
	}
	for (;;) {
		if (n == cap)
			buf = realloc(buf, cap *= 2);
		ret = bop_source_read(src, buf + n, cap - n < 100000 ? cap - n : 100000, &got);
		if (ret < 0 || got == 0)
			break;
		n += got;
	}
	if (ret == 0)
		ret = bop_source_close(src);
	bop_source_free(src);
	if (ret < 0) {
		free(buf);
		return ret;
	}
	*out = buf;
	*len = n;
	return 0;
}

static void round_trip(bop_storage_t *st, const unsigned char *data, size_t len, const char *name)
{
	bop_storage_stat_t info = { BOP_STORAGE_STAT_VERSION, 0, 0 };
	unsigned char *back = NULL;
	size_t blen = 0;
	char key[64];
	int ret;

	snprintf(key, sizeof(key), "rt/%s", name);
	ret = put_bytes(st, key, data, len, 0);
	if (!ok(ret == 0, "put %s (%zu bytes)", name, len)) {
		diag("%s", bop_error_last());
		skip(4, "not stored");
		return;
	}
	ret = bop_storage_stat(st, &info, key);
	ok(ret == 0 && info.size == len && info.mtime > 0, "stat %s: size %llu", name,
		(unsigned long long)info.size);
	ret = get_bytes(st, key, 0, &back, &blen);
	ok(ret == 0 && blen == len && (len == 0 || memcmp(back, data, len) == 0),
		"get %s: the same bytes", name);
	if (ret < 0)
		diag("%s", bop_error_last());
	free(back);
	ret = get_bytes(st, key, len / 2 + (len > 2), &back, &blen);
	ok(ret == 0 && blen == len - (len / 2 + (len > 2)) &&
		memcmp(back, data + len / 2 + (len > 2), blen) == 0, "get %s from an offset", name);
	free(back);
	ok(bop_storage_remove(st, key) == 0, "remove %s", name);
}

static void test_round_trips(bop_storage_t *st, const unsigned char *data)
{
	round_trip(st, data, 0, "empty");
	round_trip(st, data, 1, "one-byte");
	round_trip(st, data, 5 * MIB, "one-part");
	round_trip(st, data, 5 * MIB + 1, "one-part-plus-one");
	round_trip(st, data, 17 * MIB + 12345, "four-parts");
}

static void test_offsets(bop_storage_t *st, const unsigned char *data)
{
	bop_source_t *src = NULL;
	unsigned char *back = NULL;
	size_t blen = 9;
	int ret;

	put_bytes(st, "off/x", data, 1000, 1000);
	ret = get_bytes(st, "off/x", 1000, &back, &blen);
	ok(ret == 0 && blen == 0, "offset == size: empty");
	free(back);
	ret = bop_storage_get(st, &src, "off/x", 1001);
	ok(ret == BOP_EINVAL && strstr(bop_error_last(), "1000 bytes"), "offset > size → BOP_EINVAL: %s",
		bop_error_last());
	bop_source_free(src);
	ret = bop_storage_get(st, &src, "off/missing", 0);
	is_int(ret, BOP_ENOTFOUND, "get of a missing key → BOP_ENOTFOUND");
	bop_storage_remove(st, "off/x");
}

typedef struct listed {
	int n;
	int found;
	uint64_t bytes;
} listed_t;

static int count_key(const char *key, const bop_storage_stat_t *st, void *payload)
{
	listed_t *l = payload;

	l->n++;
	l->bytes += st->size;
	if (!strcmp(key, "list/a b") || !strcmp(key, "list/caf\xc3\xa9+1") ||
			!strcmp(key, "list/sub/deep") || !strcmp(key, "list/ctl\x01"))
		l->found++;
	return 0;
}

static void test_list_remove(bop_storage_t *st)
{
	const char *keys[] = { "list/a b", "list/caf\xc3\xa9+1", "list/sub/deep", "list/ctl\x01",
		"listing-not", "other/x" };
	bop_storage_stat_t info = { BOP_STORAGE_STAT_VERSION, 0, 0 };
	listed_t l = { 0 };
	int ret = 0;

	for (size_t i = 0; i < BOP_ARRAY_SIZE(keys); i++)
		ret |= put_bytes(st, keys[i], (const unsigned char *)"abc", 3, 3);
	is_int(ret, 0, "six small objects stored (spaces, UTF-8, '+', a control character)");
	ret = bop_storage_list(st, "list/", count_key, &l);
	ok(ret == 0 && l.n == 4 && l.found == 4 && l.bytes == 12,
		"list under list/: the 4 keys, decoded (%d listed, %d matched)", l.n, l.found);
	memset(&l, 0, sizeof(l));
	ret = bop_storage_list(st, "", count_key, &l);
	ok(ret == 0 && l.n == 6, "list everything under the storage prefix: 6 (%d)", l.n);
	is_int(bop_storage_remove(st, "list/a b"), 0, "remove a key with a space");
	is_int(bop_storage_stat(st, &info,
		"list/a b"), BOP_ENOTFOUND, "stat after remove → BOP_ENOTFOUND");
	is_int(bop_storage_remove(st, "list/a b"), BOP_ENOTFOUND, "remove of a missing key → BOP_ENOTFOUND");
	for (size_t i = 1; i < BOP_ARRAY_SIZE(keys); i++)
		bop_storage_remove(st, keys[i]);
}

/* More keys than one DeleteObjects request takes: two batches, and a missing key. */
static void test_remove_many(bop_storage_t *st)
{
	enum { N = 1003 };
	char **keys = calloc(N + 1, sizeof(*keys));
	listed_t l = { 0 };
	int ret = 0;

	for (int i = 0; i < N; i++)
		keys[i] = bop__sprintf("many/%04d %s", i, i % 2 ? "caf\xc3\xa9" : "x+y");
	keys[N] = bop__strdup("many/never-written");
	for (int i = 0; i < N && ret == 0; i++)
		ret = bop__storage_put_bytes(st, keys[i], "x", 1, false);
	is_int(ret, 0, "1003 small objects stored");
	is_int(bop_storage_remove_many(st, (const char *const *)keys, N + 1), 0,
		"remove_many deletes them in two DeleteObjects batches, a missing key included");
	ret = bop_storage_list(st, "many/", count_key, &l);
	ok(ret == 0 && l.n == 0, "nothing is left under many/ (%d listed)", l.n);
	for (int i = 0; i <= N; i++)
		free(keys[i]);
	free(keys);
}

static void test_exclusive(bop_storage_t *st)
{
	bop_put_options_t opts = BOP_PUT_OPTIONS_INIT;
	bop_sink_t *sink = NULL;
	int ret;

	opts.exclusive = 1;
	ret = bop_storage_put(st, &sink, "excl/x", &opts);
	if (ret == 0)
		ret = bop_sink_write(sink, "one", 3);
	if (ret == 0)
		ret = bop_sink_commit(sink);
	bop_sink_free(sink);
	if (ret == BOP_ENOTSUPPORTED) {
		skip(2, "this S3 server has no conditional PUT: %s", bop_error_last());
		return;
	}
	ok(ret == 0, "exclusive put of a new key: %s", ret ? bop_error_last() : "stored");
	sink = NULL;
	ret = bop_storage_put(st, &sink, "excl/x", &opts);
	if (ret == 0)
		ret = bop_sink_write(sink, "two", 3);
	if (ret == 0)
		ret = bop_sink_commit(sink);
	bop_sink_free(sink);
	is_int(ret, BOP_EEXISTS, "exclusive put of an existing key → BOP_EEXISTS");
	diag("%s", bop_error_last());
	bop_storage_remove(st, "excl/x");
}

static int count_upload(const char *key, const bop_storage_stat_t *st, void *payload)
{
	BOP_UNUSED(key);
	BOP_UNUSED(st);
	(*(int *)payload)++;
	return 0;
}

static int open_uploads(bop_storage_t *st)
{
	int n = 0;

	if (bop_storage_cleanup(st, "", 0, 1, count_upload, &n) < 0) {
		diag("cleanup: %s", bop_error_last());
		return -1;
	}
	return n;
}

static void test_abort(bop_storage_t *st, const unsigned char *data)
{
	bop_storage_stat_t info = { BOP_STORAGE_STAT_VERSION, 0, 0 };
	bop_sink_t *sink = NULL;
	int ret;

	ret = bop_storage_put(st, &sink, "abort/x", NULL);
	for (int i = 0; ret == 0 && i < 3; i++)
		ret = bop_sink_write(sink, data, 5 * MIB);
	ok(ret == 0, "three parts written");
	ok(open_uploads(st) == 1, "a multipart upload is open meanwhile");
	bop_sink_abort(sink);
	bop_sink_free(sink);
	is_int(bop_storage_stat(st, &info, "abort/x"), BOP_ENOTFOUND, "aborted: no object");
	is_int(open_uploads(st), 0, "aborted: no multipart upload left");

	sink = NULL;
	ret = bop_storage_put(st, &sink, "abort/y", NULL);
	for (int i = 0; ret == 0 && i < 2; i++)
		ret = bop_sink_write(sink, data, 4 * MIB);
	bop_sink_free(sink);
	is_int(bop_storage_stat(st, &info,
		"abort/y"), BOP_ENOTFOUND, "freed without commit: no object");
	is_int(open_uploads(st), 0, "freed without commit: no multipart upload left");
}

static void test_cleanup(bop_storage_t *st, const unsigned char *data)
{
	s3_storage_t *s3 = (s3_storage_t *)st;
	char *full = bop__s3_full_key(s3, "gc/stale"), *id = NULL, *etag = NULL;
	int n = 0, ret;

	ret = bop__s3_create_upload(s3, full, &id);
	if (ret == 0)
		ret = bop__s3_upload_part(s3, full, id, 1, data, 5 * MIB, &etag);
	if (!ok(ret == 0, "an upload left open (as a killed writer leaves it)")) {
		diag("%s", bop_error_last());
		skip(4, "no upload");
		goto out;
	}
	ret = bop_storage_cleanup(st, "", 3600, 0, count_upload, &n);
	ok(ret == 0 && n == 0, "cleanup of uploads older than 1 h leaves the new one");
	n = 0;
	ret = bop_storage_cleanup(st, "gc/", 0, 1, count_upload, &n);
	ok(ret == 0 && n == 1, "dry run under gc/ reports it");
	n = 0;
	ret = bop_storage_cleanup(st, "gc/", 0, 0, count_upload, &n);
	ok(ret == 0 && n == 1, "cleanup aborts it");
	is_int(open_uploads(st), 0, "no multipart upload left");
out:
	free(full);
	free(id);
	free(etag);
}

static void test_credentials(void)
{
	const char *wrong_secret[] = { "access_key_id", getenv("AWS_ACCESS_KEY_ID"),
		"secret_access_key", "definitely-the-wrong-secret", NULL };
	const char *unknown_key[] = { "access_key_id", "AKIANOSUCHKEY0000000",
		"secret_access_key", "whatever-secret", NULL };
	bop_storage_t *st;
	listed_t l = { 0 };
	int ret;

	st = open_with(bucket, NULL, wrong_secret);
	ret = st ? bop_storage_list(st, "", count_key, &l) : -1;
	ok(ret == BOP_EAUTH && strstr(bop_error_last(), "SignatureDoesNotMatch") &&
		!strstr(bop_error_last(), "definitely-the-wrong-secret"),
		"wrong secret → BOP_EAUTH: %s", bop_error_last());
	ret = st ? put_bytes(st, "never", (const unsigned char *)"x", 1, 1) : -1;
	is_int(ret, BOP_EAUTH, "a put with the wrong secret → BOP_EAUTH");
	bop_storage_free(st);

	st = open_with(bucket, NULL, unknown_key);
	ret = st ? bop_storage_list(st, "", count_key, &l) : -1;
	ok(ret == BOP_EAUTH && strstr(bop_error_last(), "AKIANOSUCHKEY0000000") &&
		strstr(bop_error_last(), "InvalidAccessKeyId"), "unknown key id → BOP_EAUTH: %s",
		bop_error_last());
	bop_storage_free(st);

	st = open_with("bop-no-such-bucket", NULL, NULL);
	ret = st ? bop_storage_list(st, "", count_key, &l) : -1;
	ok(ret == BOP_ENOTFOUND && strstr(bop_error_last(), "bucket 'bop-no-such-bucket' does not exist"),
		"missing bucket → BOP_ENOTFOUND: %s", bop_error_last());
	ret = st ? put_bytes(st, "k", (const unsigned char *)"x", 1, 1) : -1;
	is_int(ret, BOP_ENOTFOUND, "a put into a missing bucket → BOP_ENOTFOUND");
	bop_storage_free(st);
}

static void test_refused(void)
{
	bop_storage_options_t opts = BOP_STORAGE_OPTIONS_INIT;
	bop_storage_stat_t info = { BOP_STORAGE_STAT_VERSION, 0, 0 };
	bop_storage_t *st = NULL;
	int64_t t0;
	int ret;

	ret = bop_storage_open(&st, "s3://b?endpoint=http://127.0.0.1:1", &opts);
	if (ret < 0) {
		skip(2, "cannot open");
		return;
	}
	((s3_storage_t *)st)->retry_base_ms = 10;
	t0 = bop__now_ms();
	ret = bop_storage_stat(st, &info, "k");
	ok(ret == BOP_ECONNECT && strstr(bop_error_last(), "cannot connect to http://127.0.0.1:1: Connection refused"),
		"connection refused → BOP_ECONNECT (exit status 9 in the CLI): %s", bop_error_last());
	ok(bop__now_ms() - t0 < 5000, "retried a bounded number of times (%lld ms)",
		(long long)(bop__now_ms() - t0));
	bop_storage_free(st);
}

typedef struct capture {
	unsigned char *data;
	size_t len;
} capture_t;

static int capture_write(const void *buf, size_t len, void *payload)
{
	capture_t *c = payload;

	c->data = realloc(c->data, c->len + len);
	memcpy(c->data + c->len, buf, len);
	c->len += len;
	return 0;
}

static void test_catalog(bop_storage_t *st, const unsigned char *data)
{
	bop_backup_options_t bopts = BOP_BACKUP_OPTIONS_INIT;
	bop_restore_options_t ropts = BOP_RESTORE_OPTIONS_INIT;
	bop_catalog_t *cat = NULL;
	bop_manifest_t *m = NULL;
	bop_manifest_list_t *list = NULL;
	bop_source_t *src = NULL;
	bop_sink_t *sink = NULL;
	capture_t cap = { 0 };
	size_t len = 12 * MIB + 77;
	int ret;

	bopts.compression = BOP_COMPRESSION_NONE;
	ret = bop_catalog_open(&cat, st, "cat/db");
	if (ret == 0)
		ret = bop_source_memory_new(&src, data, len);
	if (ret == 0)
		ret = bop_catalog_backup(cat, &m, src, &bopts);
	if (!ok(ret == 0, "catalog backup of %zu bytes to S3", len)) {
		diag("%s", bop_error_last());
		skip(3, "no backup");
		goto out;
	}
	ret = bop_catalog_list(cat, &list);
	ok(ret == 0 && bop_manifest_list_count(list) == 1, "the catalog lists it");
	bop_sink_callback_new(&sink, capture_write, &cap);
	ret = bop_catalog_restore(cat, m, sink, &ropts);
	ok(ret == 0 && cap.len == len && memcmp(cap.data, data, len) == 0,
		"restored bytes are identical");
	if (ret < 0)
		diag("%s", bop_error_last());
	ret = bop_catalog_remove(cat, bop_manifest_id(m));
	is_int(ret, 0, "backup removed");
out:
	free(cap.data);
	bop_manifest_list_free(list);
	bop_manifest_free(m);
	bop_catalog_free(cat);
}

static int remove_all(const char *key, const bop_storage_stat_t *info, void *payload)
{
	BOP_UNUSED(info);
	bop_storage_remove(payload, key);
	return 0;
}

int main(void)
{
	unsigned char *data;
	bop_storage_t *st;

	endpoint = getenv("BOP_TEST_S3_ENDPOINT");
	bucket = getenv("BOP_TEST_S3_BUCKET");
	if (!endpoint || !*endpoint)
		skip_all("no S3 server (start one with tests/env/s3-local.sh or run tests/run)");
	if (!bucket || !*bucket)
		bucket = "test";
	bop_log_set_level(BOP_LOG_ERROR);
	snprintf(prefix, sizeof(prefix), "bop-s3-live-%d-%lld", (int)getpid(), (long long)bop__now());
	data = malloc(17 * MIB + 12345);
	RAND_bytes(data, 17 * MIB + 12345);
	st = open_with(bucket, "part_size=5MiB&concurrency=3", NULL);
	if (!st)
		skip_all("cannot open the S3 storage: %s", bop_error_last());
	test_round_trips(st, data);
	test_offsets(st, data);
	test_list_remove(st);
	test_remove_many(st);
	test_exclusive(st);
	test_abort(st, data);
	test_cleanup(st, data);
	test_credentials();
	test_refused();
	test_catalog(st, data);
	bop_storage_list(st, "", remove_all, st);
	bop_storage_cleanup(st, "", 0, 0, NULL, NULL);
	bop_storage_free(st);
	free(data);
	return done_testing();
}
