/*
 * Example engine: "dd", the backup of one file. Config: {"path": "/var/lib/app/data.db"}.
 *
 * Built only against libbackupop's public headers, as an engine outside the library would
 * be. An engine does not move bytes itself: backup() hands out a source that yields the
 * backup stream and restore() a sink that consumes it; libbackupop's pipeline compresses,
 * encrypts, hashes and stores in between.
 *
 * The restore sink is bop_sink_file_new(): it writes a temporary file beside the target
 * and renames it into place on commit, so a failed or canceled restore (the sink is then
 * aborted) leaves the old file untouched — what <backupop/engine.h> asks of engines
 * "where the database allows it".
 *
 * The config is parsed with json-c, a real JSON parser; unknown fields are refused so that
 * a typo does not silently back up the wrong thing. Failures are explained with
 * bop_error_setf(), which the user reads from bop_error_last() as for the built-in
 * engines.
 */
#include <backupop.h>
#include <backupop/sys/engine.h>

#include <json-c/json.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dd-engine.h"

#define NAME "dd"

typedef struct dd_engine {
	bop_engine_t base;      /* first member: libbackupop calls through it */
	char *path;
} dd_engine_t;

/* The directory that will hold the file must exist; the file itself only for a backup. */
static int dd_validate(bop_engine_t *base)
{
	dd_engine_t *dd = (dd_engine_t *)base;
	char *copy = strdup(dd->path);
	struct stat st;
	int ok;

	if (!copy)
		return BOP_ENOMEM;
	ok = stat(dirname(copy), &st) == 0 && S_ISDIR(st.st_mode);
	free(copy);
	return ok ? 0 : bop_error_setf(BOP_ENOTFOUND, "the directory of %s does not exist", dd->path);
}

static int dd_backup(bop_engine_t *base, bop_source_t **out)
{
	return bop_source_file_new(out, ((dd_engine_t *)base)->path);
}

static int dd_restore(bop_engine_t *base, bop_sink_t **out)
{
	return bop_sink_file_new(out, ((dd_engine_t *)base)->path);
}

static void dd_free(bop_engine_t *base)
{
	dd_engine_t *dd = (dd_engine_t *)base;

	free(dd->path);
	free(dd);
}

/* The value of "path", the only field; NULL (after logging why) if the config is bad. */
static const char *config_path(json_object *config)
{
	const char *path = NULL;

	if (!json_object_is_type(config, json_type_object)) {
		bop_error_setf(BOP_EINVAL, "the %s engine config must be a JSON object", NAME);
		return NULL;
	}
	json_object_object_foreach(config, key, val) {
		if (strcmp(key, "path") != 0) {
			bop_error_setf(BOP_EINVAL, "unknown field \"%s\" in the dd engine config (known: path)", key);
			return NULL;
		}
		if (!json_object_is_type(val, json_type_string) || !*json_object_get_string(val)) {
			bop_error_setf(BOP_EINVAL, "\"path\" must be a non-empty string");
			return NULL;
		}
		path = json_object_get_string(val);
	}
	if (!path)
		bop_error_setf(BOP_EINVAL, "the dd engine needs \"path\", the file to back up");
	return path;
}

static int dd_open(bop_engine_t **out, const char *config_json, void *payload)
{
	json_object *config = json_tokener_parse(config_json);
	const char *path = config_path(config);
	dd_engine_t *dd = NULL;
	int ret = BOP_EINVAL;

	(void)payload;
	if (!path)
		goto out;
	ret = BOP_ENOMEM;
	dd = calloc(1, sizeof(*dd));
	if (!dd || !(dd->path = strdup(path))) {
		free(dd);
		goto out;
	}
	/* pod_customize stays NULL: nothing to add, libbackupop answers "{}" */
	dd->base = (bop_engine_t)BOP_ENGINE_INIT(.validate = dd_validate, .backup = dd_backup,
		.restore = dd_restore, .free = dd_free);
	*out = &dd->base;
	ret = 0;
out:
	json_object_put(config);
	return ret;
}

int dd_engine_register(void)
{
	/* A file holds no tables to count and is one stream: no capabilities. */
	return bop_engine_register(NAME, 0, dd_open, NULL);
}
