/*
 * Decoding is bounded by the manifest (issue 9 finding 12): a stored object that
 * decompresses to far more than its manifest declares (a zstd bomb) stops one byte past
 * the declared size, for single-stream backups and for the files of multi-file backups
 * alike, with an integrity error; the consumer never gets more than declared + 1 bytes.
 */
#include "catalog-test.h"

#include <fcntl.h>

#define DECLARED (64u << 10)            /* what the manifest says */
#define BOMB (50u << 20)                /* what the object decompresses to */

static char *root;
static bop_storage_t *storage;

/* A sink that only counts. */
static int count_bytes(const void *buf, size_t len, void *payload)
{
	(void)buf;
	*(uint64_t *)payload += len;
	return 0;
}

/* Replaces the object at `key` with BOMB zero bytes, zstd-compressed. */
static int plant_bomb(const char *key)
{
	bop_compress_options_t copts = BOP_COMPRESS_OPTIONS_INIT;
	bop_pipeline_t *p = NULL;
	bop_source_t *src = NULL;
	bop_stage_t *zstd = NULL;
	bop_sink_t *sink = NULL;
	char *zeros = calloc(1, BOMB);
	int ret;

	copts.algorithm = BOP_COMPRESSION_ZSTD;
	if (!zeros || bop_pipeline_new(&p, NULL) < 0) {
		free(zeros);
		return -1;
	}
	if ((ret = bop_source_memory_new(&src, zeros, BOMB)) == 0)
		ret = bop_pipeline_set_source(p, src);
	if (ret == 0 && (ret = bop_stage_compress_new(&zstd, &copts)) == 0)
		ret = bop_pipeline_add_stage(p, zstd);
	if (ret == 0 && (ret = bop_storage_put(storage, &sink, key, NULL)) == 0)
		ret = bop_pipeline_set_sink(p, sink);
	if (ret == 0)
		ret = bop_pipeline_run(p);
	if (ret < 0)
		diag("planting the bomb at %s: %s", key, bop_error_last());
	bop_pipeline_free(p);
	free(zeros);
	return ret;
}

/* The decoding of a bomb (`ret`, `got` bytes out) stopped as it should, and so does its
 * verification. */
static void expect_stopped(bop_catalog_t *cat, const bop_manifest_t *m, int ret, uint64_t got,
	const char *what)
{
	is_int(ret, BOP_EINTEGRITY, "finding 12: decoding the bomb fails with BOP_EINTEGRITY");
	ok(strstr(bop_error_last(), "more than the 65536 bytes") != NULL,
		"finding 12: the message says the %s is larger than declared: %s", what,
		bop_error_last());
	ok(got <= DECLARED + 1, "finding 12: the consumer got at most declared + 1 bytes (%llu)",
		(unsigned long long)got);
	is_int(bop_catalog_verify(cat, m, NULL), BOP_EINTEGRITY,
		"finding 12: verifying the bomb fails with BOP_EINTEGRITY");
	ok(strstr(bop_error_last(), "more than") != NULL, "finding 12: and says why: %s",
		bop_error_last());
}

static void random_bytes(unsigned char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)rand();
}

static void test_single_stream(bop_catalog_t *cat)
{
	bop_backup_options_t opts = BOP_BACKUP_OPTIONS_INIT;
	static unsigned char data[DECLARED];
	bop_manifest_t *m = NULL;
	bop_source_t *src = NULL;
	bop_sink_t *sink = NULL;
	uint64_t got = 0;
	int ret;

	random_bytes(data, sizeof(data));
	opts.compression = BOP_COMPRESSION_ZSTD;
	bop_source_memory_new(&src, data, sizeof(data));
	is_int(bop_catalog_backup(cat, &m, src, &opts), 0, "a 64 KiB backup");
	if (!m)
		return;
	is_int(plant_bomb(bop_manifest_object_key(m)), 0, "its object replaced by a 50 MiB zstd bomb");
	bop_sink_callback_new(&sink, count_bytes, &got);
	ret = bop_catalog_restore(cat, m, sink, NULL);
	expect_stopped(cat, m, ret, got, "restored stream");
	bop_manifest_free(m);
}

static void test_multi_file(bop_catalog_t *cat)
{
	bop_manifest_file_t f = { BOP_MANIFEST_FILE_VERSION, NULL, NULL, 0, NULL, 0, NULL };
	bop_backup_options_t opts = BOP_BACKUP_OPTIONS_INIT;
	static unsigned char data[DECLARED];
	bop_backup_session_t *s = NULL;
	bop_manifest_t *m = NULL;
	bop_source_t *src = NULL;
	bop_sink_t *sink = NULL;
	char buf[64 << 10];
	uint64_t got = 0;
	size_t n = 0;
	int ret;

	random_bytes(data, sizeof(data));
	opts.compression = BOP_COMPRESSION_ZSTD;
	is_int(bop_catalog_backup_begin(cat, &s, &opts), 0, "a multi-file backup begins");
	if (!s)
		return;
	ret = bop_backup_session_put(s, &sink, "dir/file.sst");
	if (ret == 0)
		ret = bop_sink_write(sink, data, sizeof(data));
	if (ret == 0)
		ret = bop_sink_commit(sink);
	bop_sink_free(sink);
	if (ret == 0)
		ret = bop_backup_session_commit(s, &m);
	bop_backup_session_free(s);
	is_int(ret, 0, "a 64 KiB file stored and the backup committed");
	if (!m)
		return;
	is_int(bop_manifest_file_find(m, &f, "dir/file.sst"), 0, "the file is in the manifest");
	is_int(plant_bomb(f.object_key), 0, "its object replaced by a 50 MiB zstd bomb");
	ret = bop_catalog_read_file(cat, &src, m, "dir/file.sst", 0, NULL);
	while (ret == 0) {
		ret = bop_source_read(src, buf, sizeof(buf), &n);
		if (ret == 0 && n == 0)
			break;
		got += n;
	}
	bop_source_free(src);
	expect_stopped(cat, m, ret, got, "file read");
	bop_manifest_free(m);
}

/* Finding 16: a closed descriptor is refused, not read once something else lands on it. */
static void test_closed_fd(void)
{
	bop_source_t *src = NULL;
	bop_sink_t *sink = NULL;
	int fd = open("/dev/null", O_RDONLY);

	close(fd);
	is_int(bop_source_fd_new(&src, fd, 0), BOP_EINVAL,
		"finding 16: a source on a closed descriptor is refused");
	is_int(bop_sink_fd_new(&sink, fd, 0), BOP_EINVAL,
		"finding 16: a sink on a closed descriptor is refused");
	ok(src == NULL && sink == NULL, "finding 16: neither was made");
}

int main(void)
{
	bop_catalog_t *cat = NULL;

	storage = open_tmp_storage(&root);
	srand(9);
	is_int(bop_catalog_open(&cat, storage, "bounds"), 0, "open catalog");
	if (cat) {
		test_single_stream(cat);
		test_multi_file(cat);
	}
	test_closed_fd();
	bop_catalog_free(cat);
	bop_storage_free(storage);
	remove_tree(root);
	return done_testing();
}
