/*
 * Registers the example "dd" engine and runs a backup and a restore through libbackupop's
 * public pipeline API, with file:// storage in between; the restored file must equal the
 * original, and an aborted restore must leave the old file alone. Prints TAP.
 */
#include <backupop.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dd-engine.h"

#define SIZE (2 * 1024 * 1024 + 3)

static int count, failed;

static void check(int cond, const char *what)
{
	printf("%sok %d - %s\n", cond ? "" : "not ", ++count, what);
	if (!cond) {
		printf("# last error: %s\n", bop_error_last());
		failed++;
	}
}

static int write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	int ok = f && fwrite(data, 1, len, f) == len;

	if (f && fclose(f) != 0)
		ok = 0;
	return ok ? 0 : -1;
}

/* The whole file in a malloc'd buffer, or NULL. */
static unsigned char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = malloc(SIZE + 1);

	*len = f && buf ? fread(buf, 1, SIZE + 1, f) : 0;
	if (f)
		fclose(f);
	return buf;
}

static int open_dd(bop_engine_t **out, const char *path)
{
	char config[PATH_MAX + 32];

	snprintf(config, sizeof(config), "{\"path\": \"%s\"}", path);
	return bop_engine_open(out, "dd", config);
}

/* engine backup -> pipeline -> storage object `key`. */
static int backup(bop_engine_t *engine, bop_storage_t *st, const char *key)
{
	bop_pipeline_t *p = NULL;
	bop_source_t *src = NULL;
	bop_sink_t *sink = NULL;
	int ret;

	if ((ret = bop_pipeline_new(&p, NULL)) < 0)
		return ret;
	if ((ret = bop_engine_backup(engine, &src)) == 0 &&
			(ret = bop_pipeline_set_source(p, src)) == 0 &&
			(ret = bop_storage_put(st, &sink, key, NULL)) == 0 &&
			(ret = bop_pipeline_set_sink(p, sink)) == 0)
		ret = bop_pipeline_run(p);
	bop_pipeline_free(p);
	return ret;
}

/* storage object `key` -> pipeline -> engine restore. */
static int restore(bop_engine_t *engine, bop_storage_t *st, const char *key)
{
	bop_pipeline_t *p = NULL;
	bop_source_t *src = NULL;
	bop_sink_t *sink = NULL;
	int ret;

	if ((ret = bop_pipeline_new(&p, NULL)) < 0)
		return ret;
	if ((ret = bop_storage_get(st, &src, key, 0)) == 0 &&
			(ret = bop_pipeline_set_source(p, src)) == 0 &&
			(ret = bop_engine_restore(engine, &sink)) == 0 &&
			(ret = bop_pipeline_set_sink(p, sink)) == 0)
		ret = bop_pipeline_run(p);
	bop_pipeline_free(p);
	return ret;
}

static void test_configs(void)
{
	bop_engine_t *e = NULL;

	check(bop_engine_open(&e, "dd", "{}") == BOP_EINVAL, "a config without path is refused");
	check(strstr(bop_error_last(), "dd") != NULL, "the message names the engine");
	check(bop_engine_open(&e, "dd", "{\"path\": 7}") == BOP_EINVAL, "a path that is no string");
	check(bop_engine_open(&e, "dd", "{\"pth\": \"/x\"}") == BOP_EINVAL, "an unknown field");
	check(strstr(bop_error_last(), "unknown field \"pth\"") != NULL,
		"the plug-in's own message (bop_error_setf) reaches bop_error_last()");
	check(bop_engine_open(&e, "dd", "not json") == BOP_EINVAL, "text that is not JSON");
	check(bop_engine_open(&e, "dd", "{\"path\": \"/no/such/dir/f\"}") == 0 &&
		bop_engine_validate(e) == BOP_ENOTFOUND, "validate finds a missing directory");
	bop_engine_free(e);
}

static void test_round_trip(const char *dir)
{
	char original[PATH_MAX + 16], restored[PATH_MAX + 16], url[PATH_MAX + 16];
	unsigned char *data = malloc(SIZE), *got;
	bop_engine_t *src_engine = NULL, *dst_engine = NULL;
	bop_storage_t *st = NULL;
	bop_sink_t *sink = NULL;
	char *patch = NULL;
	size_t len;

	for (size_t i = 0; i < SIZE; i++)
		data[i] = (unsigned char)((i * 2654435761u) >> 11);
	snprintf(original, sizeof(original), "%s/app.db", dir);
	snprintf(restored, sizeof(restored), "%s/restored.db", dir);
	snprintf(url, sizeof(url), "file://%s/store", dir);
	check(write_file(original, data, SIZE) == 0, "write a 2 MiB file to back up");
	check(write_file(restored, "old", 3) == 0, "and an old version at the restore target");

	check(open_dd(&src_engine, original) == 0, "open dd on the original");
	check(bop_engine_validate(src_engine) == 0, "it validates");
	check(bop_engine_pod_customize(src_engine, &patch) == 0 && !strcmp(patch, "{}"),
		"it adds nothing to a runner pod");
	bop_free(patch);
	check(bop_storage_open(&st, url, NULL) == 0, "open file:// storage");
	check(backup(src_engine, st, "app/data") == 0, "backup through a pipeline into storage");

	check(open_dd(&dst_engine, restored) == 0, "open dd on the restore target");
	check(bop_engine_restore(dst_engine, &sink) == 0, "start a restore");
	check(bop_sink_write(sink, "partial", 7) == 0, "write part of it");
	bop_sink_abort(sink);
	bop_sink_free(sink);
	got = read_file(restored, &len);
	check(got && len == 3 && !memcmp(got, "old", 3), "an aborted restore leaves the old file");
	free(got);

	check(restore(dst_engine, st, "app/data") == 0, "restore through a pipeline from storage");
	got = read_file(restored, &len);
	check(got && len == SIZE && !memcmp(got, data, SIZE), "the restored file equals the original");
	free(got);

	check(bop_storage_remove(st, "app/data") == 0, "remove the backup");
	bop_storage_free(st);
	bop_engine_free(src_engine);
	bop_engine_free(dst_engine);
	free(data);
	unlink(original);
	unlink(restored);
}

int main(void)
{
	const char *base = getenv("TMPDIR");
	char dir[PATH_MAX], store[PATH_MAX + 8];

	snprintf(dir, sizeof(dir), "%s/bop-dd-XXXXXX", base ? base : "/tmp");
	if (!mkdtemp(dir)) {
		printf("1..0 # SKIP cannot create a temporary directory\n");
		return 0;
	}
	bop_log_set_level(BOP_LOG_OFF);     /* the config errors below are expected */
	check(dd_engine_register() == 0, "register the dd engine");
	check(dd_engine_register() == BOP_EEXISTS, "registering it twice is BOP_EEXISTS");
	test_configs();
	test_round_trip(dir);
	snprintf(store, sizeof(store), "%s/store", dir);
	rmdir(store);
	check(rmdir(dir) == 0, "nothing is left behind");
	printf("1..%d\n", count);
	return failed ? 1 : 0;
}
