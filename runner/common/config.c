/*
 * The config file (backupop-config(5)), read with libyaml's document loader and checked
 * against tables of known fields; the engine block is turned into JSON with json-c.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#define CONFIG_MAX_BYTES (1024 * 1024)
/* Deeper nesting is refused while parsing (backupop-config(5)). */
#define CONFIG_MAX_DEPTH 64

typedef enum cfg_kind {
	CFG_STRING,
	CFG_SECRET,     /* a string that is registered for redaction */
	CFG_PATH,       /* a file name, relative to the config file's directory */
	CFG_BOOL,
	CFG_INT,        /* int, 0..max */
	CFG_COUNT,      /* long long, 0..max */
	CFG_DURATION,   /* "7d" or seconds */
	CFG_LIST,       /* a sequence of strings */
	CFG_MAP,
	CFG_STORAGE,    /* a URL string, or a map with "url" and settings */
	CFG_SETTING,    /* a storage setting; `extra` is its library name */
	CFG_SETTING_SECRET,
	CFG_SETTING_PATH,
	CFG_ENUM,       /* `extra` is "A|B": the value's index goes into an int */
	CFG_ENGINE,     /* a map with one engine name; offset: name, offset2: JSON */
} cfg_kind_t;

typedef struct cfg_field {
	const char *key;
	cfg_kind_t kind;
	size_t offset;
	const struct cfg_field *children;
	long long max;
	const char *extra;
	size_t offset2;
} cfg_field_t;

typedef struct cfg {
	const char *path;
	char *dir;
	yaml_document_t doc;
	rcfg_t *c;
	char *error;
	const yaml_node_t *schedule_node;       /* where they were, for later checks */
	const yaml_node_t *verify_schedule_node;
	const yaml_node_t *time_zone_node;
	const yaml_node_t *expect_rows_node;
	char expect_rows_key[256];
} cfg_t;

#define O(field) offsetof(rcfg_t, field)
#define END { NULL, CFG_STRING, 0, NULL, 0, NULL, 0 }

static const cfg_field_t storage_fields[] = {
	{ "url", CFG_STRING, O(storage_url), NULL, 0, NULL, 0 },
	{ "endpoint", CFG_SETTING, 0, NULL, 0, "endpoint", 0 },
	{ "region", CFG_SETTING, 0, NULL, 0, "region", 0 },
	{ "forcePathStyle", CFG_SETTING, 0, NULL, 0, "path_style", 0 },
	{ "accessKeyId", CFG_SETTING, 0, NULL, 0, "access_key_id", 0 },    /* not a secret */
	{ "secretAccessKey", CFG_SETTING_SECRET, 0, NULL, 0, "secret_access_key", 0 },
	{ "sessionToken", CFG_SETTING_SECRET, 0, NULL, 0, "session_token", 0 },
	{ "accessKeyIdFile", CFG_SETTING_PATH, 0, NULL, 0, "access_key_file", 0 },
	{ "secretAccessKeyFile", CFG_SETTING_PATH, 0, NULL, 0, "secret_key_file", 0 },
	{ "caFile", CFG_SETTING_PATH, 0, NULL, 0, "ca_file", 0 },
	{ "insecure", CFG_SETTING, 0, NULL, 0, "insecure", 0 },
	{ "partSize", CFG_SETTING, 0, NULL, 0, "part_size", 0 },
	{ "concurrency", CFG_SETTING, 0, NULL, 0, "concurrency", 0 },
	{ "maxParts", CFG_SETTING, 0, NULL, 0, "max_parts", 0 },
	{ "timeoutSeconds", CFG_SETTING, 0, NULL, 0, "timeout", 0 },
	END,
};

static const cfg_field_t compression_fields[] = {
	{ "algorithm", CFG_ENUM, O(compression), NULL, 0, "zstd|gzip|none", 0 },
	{ "level", CFG_INT, O(level), NULL, 22, NULL, 0 },
	{ "threads", CFG_INT, O(threads), NULL, 256, NULL, 0 },
	END,
};

static const cfg_field_t encryption_fields[] = {
	{ "recipients", CFG_LIST, O(recipients), NULL, 0, NULL, 0 },
	{ "recipientsFile", CFG_PATH, O(recipients_file), NULL, 0, NULL, 0 },
	{ "identityFile", CFG_PATH, O(identity_file), NULL, 0, NULL, 0 },
	{ "passphraseFile", CFG_PATH, O(passphrase_file), NULL, 0, NULL, 0 },
	END,
};

static const cfg_field_t retention_fields[] = {
	{ "keepLast", CFG_COUNT, O(keep[RCFG_KEEP_LAST]), NULL, 1000000, NULL, 0 },
	{ "keepHourly", CFG_COUNT, O(keep[RCFG_KEEP_HOURLY]), NULL, 1000000, NULL, 0 },
	{ "keepDaily", CFG_COUNT, O(keep[RCFG_KEEP_DAILY]), NULL, 1000000, NULL, 0 },
	{ "keepWeekly", CFG_COUNT, O(keep[RCFG_KEEP_WEEKLY]), NULL, 1000000, NULL, 0 },
	{ "keepMonthly", CFG_COUNT, O(keep[RCFG_KEEP_MONTHLY]), NULL, 1000000, NULL, 0 },
	{ "keepYearly", CFG_COUNT, O(keep[RCFG_KEEP_YEARLY]), NULL, 1000000, NULL, 0 },
	{ "keepWithin", CFG_DURATION, O(keep_within), NULL, 0, NULL, 0 },
	{ "keepTags", CFG_LIST, O(keep_tags), NULL, 0, NULL, 0 },
	END,
};

static const cfg_field_t history_fields[] = {
	{ "successful", CFG_COUNT, O(history_successful), NULL, 100000, NULL, 0 },
	{ "failed", CFG_COUNT, O(history_failed), NULL, 100000, NULL, 0 },
	END,
};

static const cfg_field_t deadline_fields[] = {
	{ "backupSeconds", CFG_COUNT, O(deadline_backup), NULL, 100000000, NULL, 0 },
	{ "restoreSeconds", CFG_COUNT, O(deadline_restore), NULL, 100000000, NULL, 0 },
	{ "verifySeconds", CFG_COUNT, O(deadline_verify), NULL, 100000000, NULL, 0 },
	END,
};

static const cfg_field_t verify_restore_fields[] = {
	{ "engine", CFG_ENGINE, O(verify_engine_name), NULL, 0, NULL, O(verify_engine_json) },
	{ "expectRows", CFG_COUNT, O(verify_expect_rows), NULL, 1LL << 60, NULL, 0 },
	END,
};

static const cfg_field_t verification_fields[] = {
	{ "schedule", CFG_STRING, O(verify_schedule), NULL, 0, NULL, 0 },
	{ "restore", CFG_MAP, 0, verify_restore_fields, 0, NULL, 0 },
	{ "expectRows", CFG_COUNT, O(verify_expect_rows), NULL, 1LL << 60, NULL, 0 },
	END,
};

static const cfg_field_t api_fields[] = {
	{ "listen", CFG_STRING, O(api_listen), NULL, 0, NULL, 0 },
	{ "token", CFG_SECRET, O(api_token), NULL, 0, NULL, 0 },
	{ "tokenFile", CFG_PATH, O(api_token_file), NULL, 0, NULL, 0 },
	{ "advertiseURL", CFG_STRING, O(api_advertise_url), NULL, 0, NULL, 0 },
	END,
};

static const cfg_field_t metrics_fields[] = {
	{ "listen", CFG_STRING, O(metrics_listen), NULL, 0, NULL, 0 },
	END,
};

static const cfg_field_t root_fields[] = {
	{ "name", CFG_STRING, O(name), NULL, 0, NULL, 0 },
	{ "namespace", CFG_STRING, O(namespace_), NULL, 0, NULL, 0 },
	{ "scheduleName", CFG_STRING, O(schedule_name), NULL, 0, NULL, 0 },
	{ "schedule", CFG_STRING, O(schedule), NULL, 0, NULL, 0 },
	{ "timeZone", CFG_STRING, O(time_zone), NULL, 0, NULL, 0 },
	{ "suspend", CFG_BOOL, O(suspend), NULL, 0, NULL, 0 },
	{ "startingDeadlineSeconds", CFG_COUNT, O(starting_deadline), NULL, 100000000, NULL, 0 },
	{ "concurrencyPolicy", CFG_ENUM, O(concurrency), NULL, 0, "Forbid|Replace", 0 },
	{ "mode", CFG_ENUM, O(mode), NULL, 0, "catalog|single", 0 },
	{ "engine", CFG_ENGINE, O(engine_name), NULL, 0, NULL, O(engine_json) },
	{ "storage", CFG_STORAGE, O(storage_url), storage_fields, 0, NULL, 0 },
	{ "compression", CFG_MAP, 0, compression_fields, 0, NULL, 0 },
	{ "encryption", CFG_MAP, 0, encryption_fields, 0, NULL, 0 },
	{ "retention", CFG_MAP, 0, retention_fields, 0, NULL, 0 },
	{ "historyLimits", CFG_MAP, 0, history_fields, 0, NULL, 0 },
	{ "deadlines", CFG_MAP, 0, deadline_fields, 0, NULL, 0 },
	{ "verification", CFG_MAP, 0, verification_fields, 0, NULL, 0 },
	{ "tags", CFG_LIST, O(tags), NULL, 0, NULL, 0 },
	{ "api", CFG_MAP, 0, api_fields, 0, NULL, 0 },
	{ "metrics", CFG_MAP, 0, metrics_fields, 0, NULL, 0 },
	END,
};

bool rcfg_engine_can(const char *name, unsigned int flags)
{
	unsigned int caps = 0;

	return name && bop_engine_capabilities(&caps, name) == 0 && (caps & flags) == flags;
}

char *rcfg_engine_names(unsigned int flags)
{
	char **names = NULL, *text = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);

	if (fp && bop_engine_names(&names, flags) == 0) {
		for (size_t i = 0; names[i]; i++)
			fprintf(fp, "%s%s", !i ? "" : names[i + 1] ? ", " : " or ", names[i]);
	}
	bop_free(names);
	if (fp)
		fclose(fp);
	return text ? text : strdup("");
}

static int cfg_error(cfg_t *c, const char *key, const yaml_node_t *node, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int cfg_error(cfg_t *c, const char *key, const yaml_node_t *node, const char *fmt, ...)
{
	char what[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	free(c->error);
	if (asprintf(&c->error, "%s:%lu: %s%s%s", c->path,
		    node ? (unsigned long)node->start_mark.line + 1 : 1UL, key ? key : "",
		    key ? ": " : "", what) < 0)
		c->error = NULL;
	return RCFG_EINVALID;
}

static const char *scalar(const yaml_node_t *node)
{
	return node->type == YAML_SCALAR_NODE ? (const char *)node->data.scalar.value : NULL;
}

static bool has_control_chars(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	}
	return false;
}

/* A plain ~, null or nothing: YAML's null, which is not a string. */
static bool is_null(const yaml_node_t *node)
{
	const char *v = scalar(node);

	return v && node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
		(!*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
		 !strcmp(v, "NULL"));
}

/* "a.b" into `out`, cut short when too long (only used in messages and as a label). */
static void join(char *out, size_t len, const char *a, const char *b)
{
	if (snprintf(out, len, "%s.%s", a, b) >= (int)len)
		out[len - 1] = '\0';
}

static int register_secret(cfg_t *c, const char *key, const yaml_node_t *node, const char *v)
{
	if (strlen(v) < 4)
		return cfg_error(c, key, node, "a secret must be at least 4 characters long");
	bop_log_add_secret(v);
	return 0;
}

static char *resolve_path(cfg_t *c, const char *v)
{
	char *copy;

	if (v[0] == '/' || !strcmp(c->dir, "."))
		return strdup(v);
	if (asprintf(&copy, "%s/%s", c->dir, v) < 0)
		return NULL;
	return copy;
}

static int set_string(cfg_t *c, const char *key, const yaml_node_t *node, char **field,
	cfg_kind_t kind)
{
	const char *v = scalar(node);
	char *copy;

	if (v && is_null(node))
		return cfg_error(c, key, node, "must be a string, not null ('%s')", v);
	if (!v || !*v)
		return cfg_error(c, key, node, "expected a non-empty string");
	if (kind != CFG_SECRET && has_control_chars(v))
		return cfg_error(c, key, node, "has control characters (a newline, an escape)");
	if (kind == CFG_SECRET && register_secret(c, key, node, v))
		return RCFG_EINVALID;
	copy = kind == CFG_PATH ? resolve_path(c, v) : strdup(v);
	if (!copy)
		return cfg_error(c, key, node, "out of memory");
	if (field == &c->c->schedule)
		c->schedule_node = node;
	else if (field == &c->c->verify_schedule)
		c->verify_schedule_node = node;
	else if (field == &c->c->time_zone)
		c->time_zone_node = node;
	free(*field);
	*field = copy;
	return 0;
}

static int set_bool(cfg_t *c, const char *key, const yaml_node_t *node, int *field)
{
	const char *v = scalar(node);

	if (v && (!strcmp(v, "true") || !strcmp(v, "false"))) {
		*field = !strcmp(v, "true");
		return 0;
	}
	return cfg_error(c, key, node, "expected true or false");
}

static int set_enum(cfg_t *c, const char *key, const yaml_node_t *node, const cfg_field_t *f,
	void *field)
{
	const char *v = scalar(node), *p = f->extra;
	size_t len = v ? strlen(v) : 0;
	int index = 0;

	while (v && *v) {
		const char *bar = strchr(p, '|');
		size_t n = bar ? (size_t)(bar - p) : strlen(p);

		if (n == len && !strncmp(p, v, n)) {
			if (f->offset == O(compression))
				return set_string(c, key, node, field, CFG_STRING);
			*(int *)field = index;
			return 0;
		}
		if (!bar)
			break;
		p = bar + 1;
		index++;
	}
	return cfg_error(c, key, node, "expected one of: %s", f->extra);
}

static int set_number(cfg_t *c, const char *key, const yaml_node_t *node,
	const cfg_field_t *f, void *field)
{
	long long n = scalar(node) ? rcfg_parse_count(scalar(node), f->max) : -1;

	if (n < 0)
		return cfg_error(c, key, node, "expected an integer from 0 to %lld", f->max);
	if (f->kind == CFG_INT)
		*(int *)field = (int)n;
	else
		*(long long *)field = n;
	if (field == &c->c->verify_expect_rows) {
		c->expect_rows_node = node;
		snprintf(c->expect_rows_key, sizeof(c->expect_rows_key), "%s", key);
	}
	return 0;
}

static int set_duration(cfg_t *c, const char *key, const yaml_node_t *node, int64_t *field)
{
	int64_t v = scalar(node) ? rcfg_parse_duration(scalar(node)) : -1;

	if (v < 0)
		return cfg_error(c, key, node, "expected a duration such as 7d, 12h, 1w2d or 90m");
	*field = v;
	return 0;
}

static int set_list(cfg_t *c, const char *key, const yaml_node_t *node, rcfg_strlist_t *list)
{
	yaml_node_item_t *item;

	if (node->type != YAML_SEQUENCE_NODE)
		return cfg_error(c, key, node, "expected a list of strings");
	rcfg_strlist_clear(list);
	list->set = true;
	for (item = node->data.sequence.items.start; item < node->data.sequence.items.top; item++) {
		yaml_node_t *n = yaml_document_get_node(&c->doc, *item);
		const char *v = n ? scalar(n) : NULL;

		if (!v || !*v)
			return cfg_error(c, key, n, "expected a list of non-empty strings");
		if (rcfg_strlist_add(list, v) < 0)
			return cfg_error(c, key, n, "out of memory");
	}
	return 0;
}

static int set_setting(cfg_t *c, const char *key, const yaml_node_t *node, const cfg_field_t *f)
{
	const char *v = scalar(node);
	char *value = NULL;
	int ret = 0;

	if (!v || !*v)
		return cfg_error(c, key, node, "expected a non-empty value");
	if (f->kind == CFG_SETTING_SECRET && register_secret(c, key, node, v))
		return RCFG_EINVALID;
	value = f->kind == CFG_SETTING_PATH ? resolve_path(c, v) : strdup(v);
	if (!value || rcfg_strlist_add(&c->c->storage_settings, f->extra) < 0 ||
	    rcfg_strlist_add(&c->c->storage_settings, value) < 0)
		ret = cfg_error(c, key, node, "out of memory");
	free(value);
	return ret;
}

/* YAML to JSON: plain scalars that look like numbers, booleans or null keep that type;
 * quoted scalars are strings. */
static json_object *scalar_to_json(const yaml_node_t *node)
{
	const char *v = scalar(node);
	char *end;
	long long n;
	double d;

	if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return json_object_new_string(v);
	if (!strcmp(v, "true") || !strcmp(v, "false"))
		return json_object_new_boolean(!strcmp(v, "true"));
	if (!strcmp(v, "null") || !strcmp(v, "~") || !*v)
		return NULL;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (!errno && !*end && end != v)
		return json_object_new_int64(n);
	errno = 0;
	d = strtod(v, &end);
	if (!errno && !*end && end != v && (isdigit((unsigned char)v[0]) || v[0] == '-'))
		return json_object_new_double(d);
	return json_object_new_string(v);
}

/* Whether `name`, without underscores and case, ends in `suffix` (lower case). */
static bool ends_with(const char *name, const char *suffix)
{
	size_t m = strlen(suffix), n = 0;
	char tail[32];

	for (size_t i = strlen(name); i > 0 && n < m; i--) {
		if (name[i - 1] != '_')
			tail[m - ++n] = (char)tolower((unsigned char)name[i - 1]);
	}
	return n == m && !memcmp(tail, suffix, m);
}

/* Whether the value of an engine field is a secret to redact. A file name (passwordFile,
 * PASSWORD_FILE) and a key's id (accessKeyId, AWS_ACCESS_KEY_ID) are not: users need to
 * see them. */
static bool secret_name(const char *k)
{
	if (ends_with(k, "file") || ends_with(k, "path") || ends_with(k, "dir") ||
	    ends_with(k, "keyid"))
		return false;
	return strcasestr(k, "password") || strcasestr(k, "secret") || strcasestr(k, "token") ||
		strcasestr(k, "key");
}

static int to_json(cfg_t *c, const char *key, yaml_node_t *node, json_object **out, int depth)
{
	json_object *obj = NULL, *child;
	char sub[256];
	int ret = 0;

	*out = NULL;
	if (depth >= CONFIG_MAX_DEPTH)
		return cfg_error(c, key, node, "nesting deeper than %d levels", CONFIG_MAX_DEPTH);
	if (node->type == YAML_SCALAR_NODE) {
		*out = scalar_to_json(node);
		return 0;
	}
	if (node->type == YAML_SEQUENCE_NODE) {
		obj = json_object_new_array();
		for (yaml_node_item_t *i = node->data.sequence.items.start;
		     i < node->data.sequence.items.top && !ret; i++) {
			yaml_node_t *n = yaml_document_get_node(&c->doc, *i);

			if (snprintf(sub, sizeof(sub), "%s[%ld]", key,
				    (long)(i - node->data.sequence.items.start)) >= (int)sizeof(sub))
				sub[sizeof(sub) - 1] = '\0';
			ret = n ? to_json(c, sub, n, &child, depth + 1) :
				cfg_error(c, sub, node, "missing node");
			if (!ret)
				json_object_array_add(obj, child);
		}
	} else if (node->type == YAML_MAPPING_NODE) {
		obj = json_object_new_object();
		for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
		     p < node->data.mapping.pairs.top && !ret; p++) {
			yaml_node_t *k = yaml_document_get_node(&c->doc, p->key);
			yaml_node_t *v = yaml_document_get_node(&c->doc, p->value);
			const char *name = k ? scalar(k) : NULL;

			if (!name || !v) {
				ret = cfg_error(c, key, k, "keys must be plain strings");
				break;
			}
			join(sub, sizeof(sub), key, name);
			if (json_object_object_get_ex(obj, name, NULL)) {
				ret = cfg_error(c, sub, k, "duplicate key '%s'", name);
				break;
			}
			if (secret_name(name) && scalar(v) && strlen(scalar(v)) >= 4)
				bop_log_add_secret(scalar(v));
			ret = to_json(c, sub, v, &child, depth + 1);
			if (!ret)
				json_object_object_add(obj, name, child);
		}
	} else {
		return cfg_error(c, key, node, "unsupported YAML node");
	}
	if (ret) {
		json_object_put(obj);
		return ret;
	}
	*out = obj;
	return 0;
}

/* Where an engine's warnings about its block are shown: "FILE:LINE: engine.postgres". */
typedef struct engine_warning_ctx {
	const cfg_t *c;
	const char *key;
	const yaml_node_t *node;
} engine_warning_ctx_t;

static void engine_warning(const char *field, const char *message, void *payload)
{
	const engine_warning_ctx_t *w = payload;
	char *msg;

	if (asprintf(&msg, "%s:%lu: %s%s%s: %s", w->c->path,
		    (unsigned long)w->node->start_mark.line + 1, w->key, *field ? "." : "", field,
		    message) < 0)
		return;
	bop_log(BOP_LOG_WARN, "config", msg);
	free(msg);
}

/* Checks the engine block with the engine itself, so its field errors show at load, and
 * shows what it warns about (a restore that cannot roll back...). */
static int check_engine(cfg_t *c, const char *key, const yaml_node_t *node, const char *name,
	const char *json)
{
	engine_warning_ctx_t w = { c, key, node };
	bop_engine_t *engine = NULL;
	int ret = bop_engine_open(&engine, name, json);

	if (ret == 0)
		ret = bop_engine_warnings(engine, engine_warning, &w);
	bop_engine_free(engine);
	if (ret == BOP_ENOTFOUND && !strncmp(bop_error_last(), "unknown engine", 14))
		return cfg_error(c, key, node, "the %s engine is not available in this build", name);
	if (ret < 0)
		return cfg_error(c, key, node, "%s", bop_error_last());
	return 0;
}

static int set_engine(cfg_t *c, const char *key, yaml_node_t *node, const cfg_field_t *f)
{
	char **name_field = (char **)((char *)c->c + f->offset);
	char **json_field = (char **)((char *)c->c + f->offset2);
	yaml_node_t *k, *v;
	json_object *obj = NULL;
	const char *name;
	char sub[256], *known;
	unsigned int caps;
	int ret;

	if (node->type != YAML_MAPPING_NODE ||
	    node->data.mapping.pairs.top - node->data.mapping.pairs.start != 1) {
		known = rcfg_engine_names(0);
		ret = cfg_error(c, key, node, "expected a mapping with exactly one engine (%s)",
			known);
		free(known);
		return ret;
	}
	k = yaml_document_get_node(&c->doc, node->data.mapping.pairs.start->key);
	v = yaml_document_get_node(&c->doc, node->data.mapping.pairs.start->value);
	name = k ? scalar(k) : NULL;
	if (!name || !v || bop_engine_capabilities(&caps, name) < 0) {
		known = rcfg_engine_names(0);
		ret = cfg_error(c, key, k, "unknown engine '%s' (%s)", name ? name : "", known);
		free(known);
		return ret;
	}
	join(sub, sizeof(sub), key, name);
	if (v->type != YAML_MAPPING_NODE)
		return cfg_error(c, sub, v, "expected a mapping");
	ret = to_json(c, sub, v, &obj, 0);
	if (ret)
		return ret;
	free(*name_field);
	free(*json_field);
	*name_field = strdup(name);
	*json_field = strdup(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN));
	json_object_put(obj);
	if (!*name_field || !*json_field)
		return cfg_error(c, key, node, "out of memory");
	return check_engine(c, sub, v, name, *json_field);
}

static int walk_map(cfg_t *c, const char *prefix, yaml_node_t *node,
	const cfg_field_t *fields);

static int set_field(cfg_t *c, const char *key, yaml_node_t *node, const cfg_field_t *f)
{
	void *field = (char *)c->c + f->offset;

	switch (f->kind) {
	case CFG_STRING:
	case CFG_SECRET:
	case CFG_PATH: return set_string(c, key, node, field, f->kind);
	case CFG_BOOL: return set_bool(c, key, node, field);
	case CFG_ENUM: return set_enum(c, key, node, f, field);
	case CFG_INT:
	case CFG_COUNT: return set_number(c, key, node, f, field);
	case CFG_DURATION: return set_duration(c, key, node, field);
	case CFG_LIST: return set_list(c, key, node, field);
	case CFG_MAP: return walk_map(c, key, node, f->children);
	case CFG_SETTING:
	case CFG_SETTING_SECRET:
	case CFG_SETTING_PATH: return set_setting(c, key, node, f);
	case CFG_ENGINE: return set_engine(c, key, node, f);
	case CFG_STORAGE:
		if (node->type == YAML_MAPPING_NODE)
			return walk_map(c, key, node, f->children);
		return set_string(c, key, node, field, CFG_STRING);
	}
	return cfg_error(c, key, node, "internal error: unknown field kind");
}

static int walk_map(cfg_t *c, const char *prefix, yaml_node_t *node,
	const cfg_field_t *fields)
{
	unsigned long first_line[64] = { 0 };      /* where each field was given, from 1 */
	yaml_node_pair_t *pair;

	if (node->type != YAML_MAPPING_NODE)
		return cfg_error(c, prefix, node, "expected a mapping");
	for (pair = node->data.mapping.pairs.start; pair < node->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yaml_document_get_node(&c->doc, pair->key);
		yaml_node_t *v = yaml_document_get_node(&c->doc, pair->value);
		const char *name = k ? scalar(k) : NULL;
		const cfg_field_t *f;
		char key[256];
		int ret;

		if (!name || !v)
			return cfg_error(c, prefix, k, "keys must be plain strings");
		if (snprintf(key, sizeof(key), "%s%s%s", prefix ? prefix : "", prefix ? "." : "",
			    name) >= (int)sizeof(key))
			return cfg_error(c, prefix, k, "field name too long");
		for (f = fields; f->key && strcmp(f->key, name); f++)
			;
		if (!f->key)
			return cfg_error(c, key, k, "unknown field");
		if (f - fields < 64) {
			unsigned long *first = &first_line[f - fields];

			if (*first)
				return cfg_error(c, key, k, "duplicate key '%s' (first given on line "
					"%lu)", name, *first);
			*first = (unsigned long)k->start_mark.line + 1;
		}
		if ((ret = set_field(c, key, v, f)))
			return ret;
	}
	return 0;
}

/* Schedules are checked once the time zone, wherever it is in the document, is known. */
static int check_schedule(cfg_t *c, const char *key, const yaml_node_t *node,
	const char *expr)
{
	bop_schedule_t *s = NULL;
	int ret;

	if (!expr)
		return 0;
	ret = bop_schedule_parse(&s, expr, c->c->time_zone);
	bop_schedule_free(s);
	if (ret == BOP_ENOTFOUND && c->time_zone_node)
		return cfg_error(c, "timeZone", c->time_zone_node, "%s", bop_error_last());
	if (ret < 0)
		return cfg_error(c, key, node, "%s", bop_error_last());
	return 0;
}

static int load_error(cfg_t *c, const yaml_mark_t *mark, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int load_error(cfg_t *c, const yaml_mark_t *mark, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	free(c->error);
	if (asprintf(&c->error, "%s:%lu: %s", c->path, (unsigned long)mark->line + 1, what) < 0)
		c->error = NULL;
	return RCFG_EINVALID;
}

/* Hangs a new node below the open collection on top of the stack. */
static int attach(cfg_t *c, const int *stack, int *pending, int depth, int id,
	const yaml_event_t *ev)
{
	yaml_node_t *parent, *node = yaml_document_get_node(&c->doc, id);

	node->start_mark = ev->start_mark;     /* for the line numbers of messages */
	node->end_mark = ev->end_mark;
	if (depth == 0)
		return 1;       /* the root: the document's first node */
	parent = yaml_document_get_node(&c->doc, stack[depth - 1]);
	if (parent->type == YAML_SEQUENCE_NODE)
		return yaml_document_append_sequence_item(&c->doc, stack[depth - 1], id);
	if (!pending[depth - 1]) {
		pending[depth - 1] = id;
		return 1;
	}
	id = yaml_document_append_mapping_pair(&c->doc, stack[depth - 1], pending[depth - 1], id);
	pending[depth - 1] = 0;
	return id;
}

/*
 * Builds the document from the parser's events rather than with yaml_parser_load(), so that
 * nesting is bounded while parsing (libyaml's own loader takes quadratic time on deep
 * nesting), a second document is refused, and aliases, which could expand a small file
 * into a huge tree, are refused.
 */
static int load_events(cfg_t *c, yaml_parser_t *parser)
{
	int stack[CONFIG_MAX_DEPTH], pending[CONFIG_MAX_DEPTH];
	int depth = 0, documents = 0, ret = 0;
	bool done = false;

	while (!done && !ret) {
		yaml_event_t ev;
		int id = 0;

		if (!yaml_parser_parse(parser, &ev)) {
			if (asprintf(&c->error, "%s:%lu:%lu: %s", c->path,
				    (unsigned long)parser->problem_mark.line + 1,
				    (unsigned long)parser->problem_mark.column + 1,
				    parser->problem ? parser->problem : "invalid YAML") < 0)
				c->error = NULL;
			return RCFG_EINVALID;
		}
		switch (ev.type) {
		case YAML_DOCUMENT_START_EVENT:
			if (documents++)
				ret = load_error(c, &ev.start_mark, "a second YAML document ('---'); "
					"a config file holds exactly one");
			break;
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_ALIAS_EVENT:
			ret = load_error(c, &ev.start_mark, "YAML aliases (*%s) are not supported",
				(const char *)ev.data.alias.anchor);
			break;
		case YAML_SCALAR_EVENT:
			id = yaml_document_add_scalar(&c->doc, NULL, ev.data.scalar.value,
				(int)ev.data.scalar.length, ev.data.scalar.style);
			if (!id || !attach(c, stack, pending, depth, id, &ev))
				ret = load_error(c, &ev.start_mark, "out of memory");
			break;
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if (depth >= CONFIG_MAX_DEPTH) {
				ret = load_error(c, &ev.start_mark, "nesting deeper than %d levels",
					CONFIG_MAX_DEPTH);
				break;
			}
			id = ev.type == YAML_SEQUENCE_START_EVENT ?
				yaml_document_add_sequence(&c->doc, NULL,
					ev.data.sequence_start.style) :
				yaml_document_add_mapping(&c->doc, NULL, ev.data.mapping_start.style);
			if (!id || !attach(c, stack, pending, depth, id, &ev)) {
				ret = load_error(c, &ev.start_mark, "out of memory");
				break;
			}
			pending[depth] = 0;
			stack[depth++] = id;
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			depth--;
			break;
		case YAML_NO_EVENT:
		case YAML_STREAM_START_EVENT:
		case YAML_DOCUMENT_END_EVENT:
			break;
		}
		yaml_event_delete(&ev);
	}
	return ret;
}

static int load_document(cfg_t *c, const char *buf, size_t len)
{
	yaml_parser_t parser;
	int ret;

	if (!yaml_document_initialize(&c->doc, NULL, NULL, NULL, 1, 1)) {
		c->error = strdup("out of memory");
		return RCFG_EIO;
	}
	if (!yaml_parser_initialize(&parser)) {
		yaml_document_delete(&c->doc);
		c->error = strdup("cannot initialize the YAML parser");
		return RCFG_EIO;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	ret = load_events(c, &parser);
	yaml_parser_delete(&parser);
	if (ret)
		yaml_document_delete(&c->doc);
	return ret;
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

/* Reads the whole file, at most CONFIG_MAX_BYTES. */
static int read_config(cfg_t *c, char **buf, size_t *len)
{
	FILE *fp = fopen(c->path, "re");
	size_t n;
	int err;

	*buf = NULL;
	if (!fp) {
		err = errno;
		if (asprintf(&c->error, "cannot open config file %s: %s", c->path,
			    strerror(err)) < 0)
			c->error = NULL;
		return err == ENOENT ? RCFG_EINVALID : RCFG_EIO;
	}
	*buf = malloc(CONFIG_MAX_BYTES + 1);
	if (!*buf) {
		fclose(fp);
		return RCFG_EIO;
	}
	n = fread(*buf, 1, CONFIG_MAX_BYTES + 1, fp);
	err = ferror(fp) ? errno : 0;
	fclose(fp);
	if (err) {
		if (asprintf(&c->error, "cannot read config file %s: %s", c->path,
			    strerror(err)) < 0)
			c->error = NULL;
		return RCFG_EIO;
	}
	if (n > CONFIG_MAX_BYTES) {
		if (asprintf(&c->error, "%s: larger than %d bytes; not a config file", c->path,
			    CONFIG_MAX_BYTES) < 0)
			c->error = NULL;
		return RCFG_EINVALID;
	}
	*len = n;
	return 0;
}

static int load_buffer(cfg_t *c, rcfg_t *rc, const char *buf, size_t len)
{
	yaml_node_t *root;
	int ret;

	if (len > CONFIG_MAX_BYTES) {
		if (asprintf(&c->error, "%s: larger than %d bytes; not a config file", c->path,
			    CONFIG_MAX_BYTES) < 0)
			c->error = NULL;
		return RCFG_EINVALID;
	}
	ret = load_document(c, buf, len);
	if (ret)
		return ret;
	root = yaml_document_get_root_node(&c->doc);
	if (root && !(root->type == YAML_SCALAR_NODE && !*scalar(root)))
		ret = walk_map(c, NULL, root, root_fields);
	if (!ret)
		ret = check_schedule(c, "schedule", c->schedule_node, rc->schedule);
	if (!ret)
		ret = check_schedule(c, "verification.schedule", c->verify_schedule_node,
			rc->verify_schedule);
	if (!ret && rc->verify_expect_rows >= 0 &&
	    !rcfg_engine_can(rc->verify_engine_name, BOP_ENGINE_COUNTS_ROWS)) {
		char *counting = rcfg_engine_names(BOP_ENGINE_COUNTS_ROWS);

		ret = cfg_error(c, c->expect_rows_key, c->expect_rows_node, "needs "
			"verification.restore.engine with an engine that counts the restored rows in "
			"its scratch database (%s)", counting);
		free(counting);
	}
	yaml_document_delete(&c->doc);
	if (!ret && !rc->path && !(rc->path = strdup(c->path)))
		ret = RCFG_EIO;
	return ret;
}

int rcfg_load_buffer(rcfg_t *rc, const char *name, const char *buf, size_t len, char **error)
{
	cfg_t c = { .path = name, .c = rc };
	int ret;

	*error = NULL;
	c.dir = dir_of(name);
	ret = c.dir ? load_buffer(&c, rc, buf, len) : RCFG_EIO;
	free(c.dir);
	if (ret && !c.error)
		c.error = strdup("out of memory");
	*error = c.error;
	return ret;
}

int rcfg_load(rcfg_t *rc, const char *path, char **error)
{
	cfg_t c = { .path = path, .c = rc };
	char *buf = NULL;
	size_t len = 0;
	int ret;

	*error = NULL;
	ret = read_config(&c, &buf, &len);
	if (!ret) {
		ret = rcfg_load_buffer(rc, path, buf, len, error);
		free(buf);
		return ret;
	}
	free(buf);
	if (!c.error)
		c.error = strdup("out of memory");
	*error = c.error;
	return ret;
}
