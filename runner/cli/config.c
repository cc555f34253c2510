/*
 * The --config YAML file (backupop-config(5)), read with libyaml's document loader and
 * checked against a table of known fields: an unknown key is an error naming its path.
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#define CONFIG_MAX_BYTES (1024 * 1024)

typedef enum cfg_kind {
	CFG_STRING,
	CFG_PATH,       /* a file name, relative to the config file's directory */
	CFG_INT,        /* int, 0..max */
	CFG_COUNT,      /* long long, 0..max */
	CFG_DURATION,   /* "7d" or seconds */
	CFG_LIST,       /* a sequence of strings */
	CFG_MAP,
	CFG_STORAGE,    /* a URL string, or a map with "url" */
} cfg_kind_t;

typedef struct cfg_field {
	const char *key;
	cfg_kind_t kind;
	size_t offset;
	const struct cfg_field *children;
	long long max;
} cfg_field_t;

typedef struct cfg {
	const char *path;
	char *dir;
	yaml_document_t doc;
	cli_settings_t *settings;
} cfg_t;

#define S(field) offsetof(cli_settings_t, field)

static const cfg_field_t storage_fields[] = {
	{ "url", CFG_STRING, S(storage), NULL, 0 },
	{ NULL, CFG_STRING, 0, NULL, 0 },
};

static const cfg_field_t compression_fields[] = {
	{ "algorithm", CFG_STRING, S(compression), NULL, 0 },
	{ "level", CFG_INT, S(level), NULL, 22 },
	{ "threads", CFG_INT, S(threads), NULL, 256 },
	{ NULL, CFG_STRING, 0, NULL, 0 },
};

static const cfg_field_t encryption_fields[] = {
	{ "recipients", CFG_LIST, S(recipients), NULL, 0 },
	{ "recipientsFile", CFG_PATH, S(recipients_file), NULL, 0 },
	{ "identityFile", CFG_PATH, S(identity_file), NULL, 0 },
	{ "passphraseFile", CFG_PATH, S(passphrase_file), NULL, 0 },
	{ NULL, CFG_STRING, 0, NULL, 0 },
};

static const cfg_field_t retention_fields[] = {
	{ "keepLast", CFG_COUNT, S(keep[CLI_KEEP_LAST]), NULL, 1000000 },
	{ "keepHourly", CFG_COUNT, S(keep[CLI_KEEP_HOURLY]), NULL, 1000000 },
	{ "keepDaily", CFG_COUNT, S(keep[CLI_KEEP_DAILY]), NULL, 1000000 },
	{ "keepWeekly", CFG_COUNT, S(keep[CLI_KEEP_WEEKLY]), NULL, 1000000 },
	{ "keepMonthly", CFG_COUNT, S(keep[CLI_KEEP_MONTHLY]), NULL, 1000000 },
	{ "keepYearly", CFG_COUNT, S(keep[CLI_KEEP_YEARLY]), NULL, 1000000 },
	{ "keepWithin", CFG_DURATION, S(keep_within), NULL, 0 },
	{ "keepTags", CFG_LIST, S(keep_tags), NULL, 0 },
	{ NULL, CFG_STRING, 0, NULL, 0 },
};

static const cfg_field_t root_fields[] = {
	{ "storage", CFG_STORAGE, S(storage), storage_fields, 0 },
	{ "name", CFG_STRING, S(name), NULL, 0 },
	{ "compression", CFG_MAP, 0, compression_fields, 0 },
	{ "encryption", CFG_MAP, 0, encryption_fields, 0 },
	{ "retention", CFG_MAP, 0, retention_fields, 0 },
	{ "tags", CFG_LIST, S(tags), NULL, 0 },
	{ NULL, CFG_STRING, 0, NULL, 0 },
};

static int cfg_error(cfg_t *c, const char *key, const yaml_node_t *node, const char *what)
{
	fprintf(stderr, "backupop: error: %s: %s%s%s (line %lu)\n", c->path, key ? key : "",
		key ? ": " : "", what, node ? (unsigned long)node->start_mark.line + 1 : 0UL);
	return CLI_EXIT_USAGE;
}

static const char *scalar(const yaml_node_t *node)
{
	return node->type == YAML_SCALAR_NODE ? (const char *)node->data.scalar.value : NULL;
}

static int set_string(cfg_t *c, const char *key, const yaml_node_t *node, char **field,
	bool is_path)
{
	const char *v = scalar(node);
	char *copy;

	if (!v || !*v)
		return cfg_error(c, key, node, "expected a non-empty string");
	if (is_path && v[0] != '/' && strcmp(c->dir, ".")) {
		if (asprintf(&copy, "%s/%s", c->dir, v) < 0)
			copy = NULL;
	} else {
		copy = strdup(v);
	}
	if (!copy)
		return cfg_error(c, key, node, "out of memory");
	free(*field);
	*field = copy;
	return 0;
}

static int set_number(cfg_t *c, const char *key, const yaml_node_t *node,
	const cfg_field_t *f, void *field)
{
	char what[64];
	long long n = scalar(node) ? cli_parse_count(scalar(node), f->max) : -1;

	if (n < 0) {
		snprintf(what, sizeof(what), "expected an integer from 0 to %lld", f->max);
		return cfg_error(c, key, node, what);
	}
	if (f->kind == CFG_INT)
		*(int *)field = (int)n;
	else
		*(long long *)field = n;
	return 0;
}

static int set_duration(cfg_t *c, const char *key, const yaml_node_t *node, int64_t *field)
{
	int64_t v = scalar(node) ? cli_parse_duration(scalar(node)) : -1;

	if (v < 0)
		return cfg_error(c, key, node, "expected a duration such as 7d, 12h, 1w2d or 90m");
	*field = v;
	return 0;
}

static int set_list(cfg_t *c, const char *key, const yaml_node_t *node, cli_strlist_t *list)
{
	yaml_node_item_t *item;

	if (node->type != YAML_SEQUENCE_NODE)
		return cfg_error(c, key, node, "expected a list of strings");
	cli_strlist_clear(list);
	list->set = true;
	for (item = node->data.sequence.items.start; item < node->data.sequence.items.top; item++) {
		yaml_node_t *n = yaml_document_get_node(&c->doc, *item);
		const char *v = n ? scalar(n) : NULL;

		if (!v || !*v)
			return cfg_error(c, key, n, "expected a list of non-empty strings");
		if (cli_strlist_add(list, v) < 0)
			return cfg_error(c, key, n, "out of memory");
	}
	return 0;
}

static int walk_map(cfg_t *c, const char *prefix, const yaml_node_t *node,
	const cfg_field_t *fields);

static int set_field(cfg_t *c, const char *key, const yaml_node_t *node, const cfg_field_t *f)
{
	void *field = (char *)c->settings + f->offset;

	switch (f->kind) {
	case CFG_STRING: return set_string(c, key, node, field, false);
	case CFG_PATH: return set_string(c, key, node, field, true);
	case CFG_INT:
	case CFG_COUNT: return set_number(c, key, node, f, field);
	case CFG_DURATION: return set_duration(c, key, node, field);
	case CFG_LIST: return set_list(c, key, node, field);
	case CFG_MAP: return walk_map(c, key, node, f->children);
	case CFG_STORAGE:
		if (node->type == YAML_MAPPING_NODE)
			return walk_map(c, key, node, f->children);
		return set_string(c, key, node, field, false);
	}
	return cfg_error(c, key, node, "internal error: unknown field kind");
}

static int walk_map(cfg_t *c, const char *prefix, const yaml_node_t *node,
	const cfg_field_t *fields)
{
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
		snprintf(key, sizeof(key), "%s%s%s", prefix ? prefix : "", prefix ? "." : "", name);
		for (f = fields; f->key && strcmp(f->key, name); f++)
			;
		if (!f->key)
			return cfg_error(c, key, k, "unknown field");
		if ((ret = set_field(c, key, v, f)))
			return ret;
	}
	return 0;
}

static int load_document(cfg_t *c, FILE *fp)
{
	yaml_parser_t parser;
	int ret = 0;

	if (!yaml_parser_initialize(&parser))
		return cli_error(CLI_EXIT_FAILED, "%s: cannot initialize the YAML parser", c->path);
	yaml_parser_set_input_file(&parser, fp);
	if (!yaml_parser_load(&parser, &c->doc)) {
		fprintf(stderr, "backupop: error: %s: %s (line %lu, column %lu)\n", c->path,
			parser.problem ? parser.problem : "invalid YAML",
			(unsigned long)parser.problem_mark.line + 1,
			(unsigned long)parser.problem_mark.column + 1);
		ret = CLI_EXIT_USAGE;
	}
	yaml_parser_delete(&parser);
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

int cli_config_load(cli_settings_t *s, const char *path)
{
	cfg_t c = { .path = path, .settings = s };
	yaml_node_t *root;
	struct stat st;
	FILE *fp;
	int ret;

	fp = fopen(path, "re");
	if (!fp)
		return cli_error(errno == ENOENT ? CLI_EXIT_USAGE : CLI_EXIT_FAILED,
			"cannot open config file %s: %s", path, strerror(errno));
	if (fstat(fileno(fp), &st) == 0 && st.st_size > CONFIG_MAX_BYTES) {
		fclose(fp);
		return cli_error(CLI_EXIT_USAGE, "%s: larger than %d bytes; not a config file",
			path, CONFIG_MAX_BYTES);
	}
	c.dir = dir_of(path);
	ret = c.dir ? load_document(&c, fp) : cli_error(CLI_EXIT_FAILED, "out of memory");
	fclose(fp);
	if (ret)
		goto out;
	root = yaml_document_get_root_node(&c.doc);
	if (root && !(root->type == YAML_SCALAR_NODE && !*scalar(root)))
		ret = walk_map(&c, NULL, root, root_fields);
	yaml_document_delete(&c.doc);
out:
	free(c.dir);
	return ret;
}
