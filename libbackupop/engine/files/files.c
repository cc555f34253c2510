/*
 * The "files" engine: a directory tree as a tar stream (pax format, libarchive), restored
 * into a directory. Configured by JSON:
 *   {"path": "/data", "exclude": ["*.tmp", "cache/"], "oneFileSystem": false,
 *    "restore": {"path": "/data", "overwrite": false}}
 *
 * Exclude patterns are shell globs (fnmatch): a pattern without '/' matches the name of a
 * file or directory at any depth ("*.tmp"); a pattern with a '/' inside matches the path
 * relative to "path", anchored at it ("logs/x*.gz", "/tmp"); a trailing '/' restricts the
 * pattern to directories ("cache/"). An excluded directory is skipped with its contents.
 */
#include "engine/config.h"
#include "files.h"

#include <errno.h>
#include <fnmatch.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


typedef struct files_engine {
	bop_engine_t base;
	bop__files_config_t cfg;
} files_engine_t;

static const char *const known_fields = "path, exclude, oneFileSystem, restore";

static void config_clear(bop__files_config_t *cfg)
{
	free(cfg->path);
	bop__strv_free(cfg->exclude);
	free(cfg->restore_path);
	memset(cfg, 0, sizeof(*cfg));
}

void bop__files_config_free(bop__files_config_t *cfg)
{
	if (!cfg)
		return;
	config_clear(cfg);
	free(cfg);
}

bop__files_config_t *bop__files_config_dup(const bop__files_config_t *cfg)
{
	bop__files_config_t *c = bop__calloc(1, sizeof(*c));
	size_t n = 0;

	if (!c)
		return NULL;
	while (cfg->exclude[n])
		n++;
	c->one_file_system = cfg->one_file_system;
	c->overwrite = cfg->overwrite;
	c->path = bop__strdup(cfg->path);
	c->restore_path = bop__strdup(cfg->restore_path);
	c->exclude = bop__calloc(n + 1, sizeof(char *));
	if (!c->path || !c->restore_path || !c->exclude)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (!(c->exclude[i] = bop__strdup(cfg->exclude[i])))
			goto fail;
	return c;
fail:
	bop__files_config_free(c);
	return NULL;
}

static bool pattern_matches(const char *pattern, const char *rel, bool is_dir)
{
	size_t len = strlen(pattern);
	const char *base = strrchr(rel, '/');
	char *pat;
	bool dir_only = len > 1 && pattern[len - 1] == '/', match;

	if (dir_only && !is_dir)
		return false;
	pat = bop__strndup(pattern, dir_only ? len - 1 : len);
	if (!pat)
		return false;
	if (strchr(pat, '/'))
		match = fnmatch(pat[0] == '/' ? pat + 1 : pat, rel, FNM_PATHNAME) == 0;
	else
		match = fnmatch(pat, base ? base + 1 : rel, 0) == 0;
	free(pat);
	return match;
}

bool bop__files_excluded(const bop__files_config_t *cfg, const char *rel, bool is_dir)
{
	for (char **p = cfg->exclude; *p; p++)
		if (pattern_matches(*p, rel, is_dir))
			return true;
	return false;
}


/* An absolute path without a trailing '/' (except "/" itself). */
static int parse_path(json_object *val, const char *what, char **out)
{
	const char *s;
	size_t len;

	if (!json_object_is_type(val, json_type_string))
		return bop__error(BOP_EINVAL, "%s must be a string, e.g. \"/data\"", what);
	s = json_object_get_string(val);
	len = strlen(s);
	if (len != (size_t)json_object_get_string_len(val))
		return bop__error(BOP_EINVAL, "%s contains a NUL character", what);
	if (s[0] != '/')
		return bop__error(BOP_EINVAL, "%s must be an absolute path, e.g. \"/data\" (got \"%s\")", what, s);
	while (len > 1 && s[len - 1] == '/')
		len--;
	free(*out);
	*out = bop__strndup(s, len);
	return *out ? 0 : BOP_ENOMEM;
}

static int parse_bool(json_object *val, const char *what, bool *out)
{
	if (!json_object_is_type(val, json_type_boolean))
		return bop__error(BOP_EINVAL, "%s must be true or false", what);
	*out = json_object_get_boolean(val);
	return 0;
}

static int parse_exclude(bop__files_config_t *cfg, json_object *val)
{
	size_t n;

	if (!json_object_is_type(val, json_type_array))
		return bop__error(BOP_EINVAL, "\"exclude\" must be an array of glob patterns, e.g. [\"*.tmp\", \"cache/\"]");
	n = json_object_array_length(val);
	bop__strv_free(cfg->exclude);
	cfg->exclude = bop__calloc(n + 1, sizeof(char *));
	if (!cfg->exclude)
		return BOP_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_object *p = json_object_array_get_idx(val, i);

		if (!json_object_is_type(p, json_type_string) || !*json_object_get_string(p) ||
				strlen(json_object_get_string(p)) != (size_t)json_object_get_string_len(p))
			return bop__error(BOP_EINVAL, "\"exclude\"[%zu] must be a non-empty glob pattern string", i);
		if (!(cfg->exclude[i] = bop__strdup(json_object_get_string(p))))
			return BOP_ENOMEM;
	}
	return 0;
}

static int parse_restore_field(void *ud, const char *key, json_object *val)
{
	bop__files_config_t *cfg = ud;

	if (!strcmp(key, "path"))
		return parse_path(val, "\"restore.path\"", &cfg->restore_path);
	if (!strcmp(key, "overwrite"))
		return parse_bool(val, "\"restore.overwrite\"", &cfg->overwrite);
	return bop__engine_unknown_field("restore", key, "path, overwrite");
}

static int parse_restore(bop__files_config_t *cfg, json_object *val)
{
	int ret = bop__engine_config_object(val, "restore",
		"{\"path\": \"/data\", \"overwrite\": false}", parse_restore_field, cfg);

	if (ret < 0)
		return ret;
	if (cfg->restore_path && !strcmp(cfg->restore_path, "/"))
		return bop__error(BOP_EINVAL, "\"restore.path\" cannot be \"/\"; restore into a directory below it");
	return 0;
}

static int parse_field(void *ud, const char *key, json_object *val)
{
	bop__files_config_t *cfg = &((files_engine_t *)ud)->cfg;

	if (!strcmp(key, "path"))
		return parse_path(val, "\"path\"", &cfg->path);
	if (!strcmp(key, "exclude"))
		return parse_exclude(cfg, val);
	if (!strcmp(key, "oneFileSystem"))
		return parse_bool(val, "\"oneFileSystem\"", &cfg->one_file_system);
	if (!strcmp(key, "restore"))
		return parse_restore(cfg, val);
	return bop__engine_unknown_field(NULL, key, known_fields);
}

/* Before the fields: no exclusions. */
static int files_defaults(bop_engine_t *base)
{
	files_engine_t *e = (files_engine_t *)base;

	e->cfg.exclude = bop__calloc(1, sizeof(char *));
	return e->cfg.exclude ? 0 : BOP_ENOMEM;
}

static int files_check(bop_engine_t *base)
{
	bop__files_config_t *cfg = &((files_engine_t *)base)->cfg;

	if (!cfg->path)
		return bop__error(BOP_EINVAL, "\"path\", the directory to back up, is required, e.g. {\"path\": \"/data\"}");
	if (!cfg->restore_path) {
		if (!strcmp(cfg->path, "/"))
			return bop__error(BOP_EINVAL, "\"path\" is \"/\": give \"restore.path\", a directory to restore into");
		if (!(cfg->restore_path = bop__strdup(cfg->path)))
			return BOP_ENOMEM;
	}
	return 0;
}

/* ---- the vtable ---- */

static int files_validate(bop_engine_t *base)
{
	files_engine_t *e = (files_engine_t *)base;
	struct stat st;

	if (stat(e->cfg.path, &st) < 0)
		return bop__error_errno(BOP_ERROR, errno, "cannot back up %s", e->cfg.path);
	if (!S_ISDIR(st.st_mode))
		return bop__error(BOP_EINVAL, "\"path\" %s is not a directory", e->cfg.path);
	return 0;
}

static int files_backup(bop_engine_t *base, bop_source_t **out)
{
	return bop__files_source_new(out, &((files_engine_t *)base)->cfg);
}

static int files_restore(bop_engine_t *base, bop_sink_t **out)
{
	return bop__files_sink_new(out, &((files_engine_t *)base)->cfg);
}

static void files_free(bop_engine_t *base)
{
	files_engine_t *e = (files_engine_t *)base;

	config_clear(&e->cfg);
	free(e);
}

const bop__engine_kind_t bop__engine_files_kind = {
	.ops = BOP_ENGINE_INIT(.validate = files_validate, .backup = files_backup,
		.restore = files_restore, .free = files_free),
	.size = sizeof(files_engine_t),
	.example = "{\"path\": \"/data\"}",
	.defaults = files_defaults,
	.field = parse_field,
	.check = files_check,
};
