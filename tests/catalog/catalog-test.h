/* Helpers shared by the catalog tests: temp dirs, a sink that records, manifest JSON. */
#ifndef BOP_TESTS_CATALOG_TEST_H
#define BOP_TESTS_CATALOG_TEST_H

#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"

/* ---- temporary directories ---- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(path);
}

__attribute__((unused))
static char *make_tmpdir(void)
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char *dir = NULL;

	if (asprintf(&dir, "%s/bop-catalog-XXXXXX", base) < 0 || !mkdtemp(dir)) {
		perror("mkdtemp");
		exit(2);
	}
	return dir;
}

__attribute__((unused))
static void remove_tree(char *dir)
{
	if (dir)
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

/* A file storage in a new temporary directory (*root); exits when it cannot open. */
__attribute__((unused))
static bop_storage_t *open_tmp_storage(char **root)
{
	bop_storage_t *storage = NULL;

	*root = make_tmpdir();
	if (bop_storage_open(&storage, *root, NULL) < 0) {
		printf("# cannot open storage %s: %s\n", *root, bop_error_last());
		remove_tree(*root);
		exit(1);
	}
	bop_log_set_level(BOP_LOG_ERROR);
	return storage;
}

/* Regular files below `dir`, counted (temporary files included). */
static int count_files_found;

static int count_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)path; (void)sb; (void)ftw;
	if (flag == FTW_F)
		count_files_found++;
	return 0;
}

__attribute__((unused))
static int count_files(const char *dir)
{
	count_files_found = 0;
	nftw(dir, count_entry, 16, FTW_PHYS);
	return count_files_found;
}

/* ---- a sink that keeps what it gets and how it ended ---- */

typedef struct capture {
	unsigned char *data;
	size_t len;
	size_t cap;
	bool committed;
	bool aborted;
	bool freed;
} capture_t;

typedef struct capture_sink {
	bop_sink_t base;
	capture_t *cap;
} capture_sink_t;

static int capture_write(bop_sink_t *base, const void *buf, size_t len)
{
	capture_t *c = ((capture_sink_t *)base)->cap;

	if (c->len + len > c->cap) {
		size_t ncap = (c->len + len) * 2;
		unsigned char *n = realloc(c->data, ncap);

		if (!n)
			return BOP_ENOMEM;
		c->data = n;
		c->cap = ncap;
	}
	memcpy(c->data + c->len, buf, len);
	c->len += len;
	return 0;
}

static int capture_commit(bop_sink_t *base)
{
	((capture_sink_t *)base)->cap->committed = true;
	return 0;
}

static void capture_abort(bop_sink_t *base)
{
	((capture_sink_t *)base)->cap->aborted = true;
}

static void capture_free(bop_sink_t *base)
{
	capture_sink_t *s = (capture_sink_t *)base;

	if (!s->cap->committed)
		s->cap->aborted = true;
	s->cap->freed = true;
	free(s);
}

__attribute__((unused))
static bop_sink_t *capture_sink(capture_t *c)
{
	capture_sink_t *s = calloc(1, sizeof(*s));

	memset(c, 0, sizeof(*c));
	s->base = (bop_sink_t)BOP_SINK_INIT(.write = capture_write, .commit = capture_commit,
		.abort = capture_abort, .free = capture_free);
	s->cap = c;
	return &s->base;
}

__attribute__((unused))
static void capture_clear(capture_t *c)
{
	free(c->data);
	memset(c, 0, sizeof(*c));
}

/* ---- manifests ---- */

__attribute__((unused))
static int64_t utc(const char *s)
{
	struct tm tm = { 0 };

	if (!strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) {
		fprintf(stderr, "bad time %s\n", s);
		exit(2);
	}
	return (int64_t)timegm(&tm);
}

/* A valid manifest document. `tags_json` is the inside of the tags array. */
__attribute__((unused))
static char *manifest_json(const char *id, int64_t start, const char *tags_json)
{
	char st[32], en[32];
	char *json = NULL;
	time_t a = (time_t)start, b = (time_t)start + 90;
	struct tm tm;

	strftime(st, sizeof(st), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&a, &tm));
	strftime(en, sizeof(en), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&b, &tm));
	if (asprintf(&json,
		"{\n"
		"  \"format\": \"backupop.io/manifest/v1\",\n"
		"  \"id\": \"%s\",\n"
		"  \"name\": \"shop/orders-db\",\n"
		"  \"engine\": \"postgres\",\n"
		"  \"tool\": { \"name\": \"backupop\", \"version\": \"0.1.0\" },\n"
		"  \"startTime\": \"%s\",\n"
		"  \"endTime\": \"%s\",\n"
		"  \"plain\": { \"bytes\": 1048576, \"sha256\": \"%s\" },\n"
		"  \"stored\": { \"bytes\": 4242, \"sha256\": \"%s\" },\n"
		"  \"compression\": { \"algorithm\": \"zstd\", \"level\": 3 },\n"
		"  \"encryption\": { \"type\": \"x25519\", \"recipients\": [ \"sha256:0123456789abcdef\" ] },\n"
		"  \"producer\": { \"exitStatus\": 0 },\n"
		"  \"tags\": [ %s ],\n"
		"  \"object\": \"shop/orders-db/%s/data.zst.age\"\n"
		"}\n",
		id, st, en,
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		tags_json ? tags_json : "", id) < 0)
		exit(2);
	return json;
}

#endif
