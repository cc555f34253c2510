/*
 * Issue 9 findings in the config loader (backupop-config(5)): deep nesting is refused
 * quickly (finding 11), duplicate keys, a second document and a null name are errors that
 * name the key and line, and file names and access key ids are not redacted (finding 17).
 */
#include "tap.h"

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *logged;

static void capture(bop_log_level_t level, const char *component, const char *msg,
	void *payload)
{
	(void)level;
	(void)component;
	(void)payload;
	free(logged);
	logged = strdup(msg);
}

/* Loads `text` from memory; returns the error message (or NULL). */
static char *load(rcfg_t *c, const char *text, size_t len)
{
	char *error = NULL;

	rcfg_init(c);
	if (rcfg_load_buffer(c, "/etc/bop/runner.yaml", text, len, &error) == 0)
		rcfg_finish(c, &error);
	return error;
}

static void expect_error(const char *doc, const char *want, const char *what)
{
	rcfg_t c;
	char *error = load(&c, doc, strlen(doc));

	ok(error && strstr(error, want), "%s: '%s' (got: %s)", what, want,
		error ? error : "no error");
	free(error);
	rcfg_clear(&c);
}

/* Depth `depth` of `open`, then as many `close`, after `head`, padded to about `size`. */
static char *nested(const char *head, char open, char close, size_t depth)
{
	size_t h = strlen(head);
	char *doc = malloc(h + 2 * depth + 2);

	if (!doc)
		abort();
	memcpy(doc, head, h);
	memset(doc + h, open, depth);
	memset(doc + h + depth, close, depth);
	doc[h + 2 * depth] = '\n';
	doc[h + 2 * depth + 1] = '\0';
	return doc;
}

static void test_nesting(void)
{
	rcfg_t c;
	char *doc, *error;

	/* about 1 MB: the whole size a config may have */
	doc = nested("tags: ", '[', ']', 500000);
	error = load(&c, doc, strlen(doc));
	ok(error && strstr(error, "runner.yaml:1: nesting deeper than 64 levels"),
		"finding 11: tags: [[[...]]] of 1 MB is refused: %s", error ? error : "loaded");
	free(error);
	rcfg_clear(&c);
	free(doc);

	doc = malloc(1000000);
	if (!doc)
		abort();
	{
		size_t n = (size_t)sprintf(doc, "engine:\n  exec:\n    backupCommand: [cat]\n"
			"    x: ");

		while (n < 999000) {
			memcpy(doc + n, "{a: ", 4);
			n += 4;
		}
		doc[n] = '\0';
	}
	error = load(&c, doc, strlen(doc));
	ok(error && strstr(error, "nesting deeper than 64 levels"),
		"finding 11: a deeply nested engine block is refused: %s", error ? error : "loaded");
	free(error);
	rcfg_clear(&c);
	free(doc);

	/* the engine's JSON, as a library user passes it */
	{
		size_t depth = 400000, h;
		bop_engine_t *engine = NULL;
		char *json = malloc(2 * depth + 64);
		int ret;

		if (!json)
			abort();
		h = (size_t)sprintf(json, "{\"backupCommand\": [\"cat\"], \"x\": ");
		memset(json + h, '[', depth);
		memset(json + h + depth, ']', depth);
		strcpy(json + h + 2 * depth, "}");
		ret = bop_engine_open(&engine, "exec", json);
		ok(ret == BOP_EINVAL && strstr(bop_error_last(), "nesting deeper than 64 levels"),
			"finding 11: engine JSON nested 400000 deep is refused: %s", bop_error_last());
		bop_engine_free(engine);
		free(json);
	}

	/* 64 levels are fine: the bound is not lower than documented */
	doc = nested("tags: ", '[', ']', 63);
	error = load(&c, doc, strlen(doc));
	ok(error && strstr(error, "tags: expected a list of non-empty strings"),
		"63 levels below the root parse (and fail as a bad tag list): %s",
		error ? error : "loaded");
	free(error);
	rcfg_clear(&c);
	free(doc);
}

static void test_documents(void)
{
	rcfg_t c;
	char *error;

	expect_error("name: a\nschedule: '@daily'\nname: b\n",
		"runner.yaml:3: name: duplicate key 'name' (first given on line 1)",
		"finding 17: a duplicate key is an error naming it and both lines");
	expect_error("storage:\n  url: file:///tmp/x\n  region: a\n  region: b\n",
		"runner.yaml:4: storage.region: duplicate key 'region'",
		"finding 17: a duplicate key in a nested mapping");
	expect_error("engine:\n  exec:\n    backupCommand: [cat]\n    env: {A: x, A: y}\n",
		"runner.yaml:4: engine.exec.env.A: duplicate key 'A'",
		"finding 17: a duplicate key in the engine block");
	expect_error("name: a\n---\nname: b\n",
		"runner.yaml:2: a second YAML document",
		"finding 17: a second document is an error naming its line");
	expect_error("name: ~\n", "runner.yaml:1: name: must be a string, not null",
		"finding 17: name: ~ is not the catalog \"~\"");
	expect_error("name: null\n", "name: must be a string, not null", "name: null too");
	expect_error("name:\n", "name: must be a string, not null", "an empty name too");
	expect_error("name: \"a\\x1b[2Jb\"\n", "runner.yaml:1: name: has control characters",
		"finding 17: a name with control characters is refused");
	expect_error("a: &x [1]\nb: *x\n", "runner.yaml:2: YAML aliases (*x) are not supported",
		"aliases are refused (they could expand a small file into a huge tree)");

	error = load(&c, "name: '~'\n", 10);
	ok(!error && c.name && !strcmp(c.name, "~"), "a quoted '~' is a string");
	free(error);
	rcfg_clear(&c);
	error = load(&c, "---\nname: one\n...\n", 18);
	ok(!error && c.name && !strcmp(c.name, "one"), "one document with --- and ... loads");
	free(error);
	rcfg_clear(&c);
}

static void test_not_secrets(void)
{
	static const char doc[] =
		"storage:\n  url: s3://bucket/p\n  accessKeyId: AKIDNOTSECRET42\n"
		"  secretAccessKey: wJalrSECRETKEY99\n"
		"engine:\n  exec:\n    backupCommand: [cat]\n"
		"    env: {DB_PASSWORD_FILE: /run/pw-file-path, DB_PASSWORD: hunter2hunter2,\n"
		"          AWS_ACCESS_KEY_ID: AKIDENVNOTSECRET7}\n";
	rcfg_t c;
	char *error;

	error = load(&c, doc, strlen(doc));
	ok(!error, "a config with an access key id loads (%s)", error ? error : "ok");
	free(error);
	bop_log_set_callback(capture, NULL);
	bop_log(BOP_LOG_WARN, "test", "id AKIDNOTSECRET42 key wJalrSECRETKEY99 pw hunter2hunter2");
	ok(logged && strstr(logged, "id AKIDNOTSECRET42 key [REDACTED] pw [REDACTED]"),
		"finding 17: the access key id is shown, the secret key and password are not: %s",
		logged ? logged : "nothing logged");
	bop_log(BOP_LOG_WARN, "test", "file /run/pw-file-path env id AKIDENVNOTSECRET7");
	ok(logged && strstr(logged, "file /run/pw-file-path env id AKIDENVNOTSECRET7"),
		"finding 17: an engine's *_FILE path and AWS_ACCESS_KEY_ID are shown: %s",
		logged ? logged : "nothing logged");
	bop_log_set_callback(NULL, NULL);
	rcfg_clear(&c);
}

/* Item 5 of issue 9: one settings model; the CLI merges its flags over the config. */
static void test_merge(void)
{
	static const char doc[] = "name: from-config\nstorage: {url: file:///c, region: r1}\n"
		"tags: [a, b]\ncompression: {level: 5}\nretention: {keepLast: 3}\n";
	rcfg_t c, flags;
	char *error = load(&c, doc, strlen(doc));

	rcfg_init(&flags);
	flags.name = strdup("from-flags");
	rcfg_strlist_add(&flags.tags, "x");
	flags.keep[RCFG_KEEP_DAILY] = 7;
	flags.scrypt_work_factor = 12;
	rcfg_merge(&c, &flags);
	ok(!error && !strcmp(c.name, "from-flags") && !strcmp(c.storage_url, "file:///c"),
		"a flag overrides the config's name, the config's storage stays");
	ok(c.tags.count == 1 && !strcmp(c.tags.items[0], "x"), "a list flag replaces the list");
	ok(c.level == 5 && c.keep[RCFG_KEEP_LAST] == 3 && c.keep[RCFG_KEEP_DAILY] == 7 &&
		c.scrypt_work_factor == 12, "numbers merge setting by setting");
	ok(c.storage_settings.count == 2 && !strcmp(c.storage_settings.items[1], "r1"),
		"storage settings from the config stay");
	ok(!flags.name && !flags.tags.items, "what was merged has left the flags");
	free(error);
	rcfg_clear(&flags);
	rcfg_clear(&c);
}

int main(void)
{
	test_merge();
	test_nesting();
	test_documents();
	test_not_secrets();
	free(logged);
	return done_testing();
}
