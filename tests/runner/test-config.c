/*
 * The config format shared by backupop-runner and `backupop --config`: good documents
 * load into the expected settings, bad ones are refused with "FILE:LINE: path: what".
 */
#include "tap.h"

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/bop-config-XXXXXX";

static char *write_doc(const char *name, const char *text)
{
	char *path;
	FILE *fp;

	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return NULL;
	fp = fopen(path, "w");
	fputs(text, fp);
	fclose(fp);
	return path;
}

/* Loads `text`; returns the error message (or NULL) and fills *c. */
static char *load(rcfg_t *c, const char *text)
{
	char *path = write_doc("runner.yaml", text), *error = NULL;

	rcfg_init(c);
	if (rcfg_load(c, path, &error) == 0)
		rcfg_finish(c, &error);
	free(path);
	return error;
}

typedef struct bad_case {
	const char *doc;
	const char *want;       /* the message after the directory */
} bad_case_t;

static const bad_case_t bad[] = {
	{ "retention:\n  keepLast: 2\n  keepDayly: 3\n",
	  "runner.yaml:3: retention.keepDayly: unknown field" },
	{ "name: x\nstorage: {url: file:///tmp/x, accesKeyId: abcd}\n",
	  "runner.yaml:2: storage.accesKeyId: unknown field" },
	{ "compression:\n  level: high\n", "runner.yaml:2: compression.level: expected an integer" },
	{ "compression: {algorithm: lz4}\n",
	  "runner.yaml:1: compression.algorithm: expected one of: zstd|gzip|none" },
	{ "concurrencyPolicy: Allow\n",
	  "runner.yaml:1: concurrencyPolicy: expected one of: Forbid|Replace" },
	{ "mode: multi\n", "runner.yaml:1: mode: expected one of: catalog|single" },
	{ "suspend: maybe\n", "runner.yaml:1: suspend: expected true or false" },
	{ "startingDeadlineSeconds: -5\n", "runner.yaml:1: startingDeadlineSeconds: expected an integer" },
	{ "engine: {exec: {backupCommand: [cat]}, mysql: {}}\n",
	  "runner.yaml:1: engine: expected a mapping with exactly one engine" },
	{ "engine:\n  oracle: {}\n", "runner.yaml:2: engine: unknown engine 'oracle'" },
	{ "engine:\n  exec:\n    backupCommand: [cat]\n    bogus: 1\n",
	  "runner.yaml:3: engine.exec: " },
	{ "historyLimits: {successful: 3, failed: x}\n",
	  "runner.yaml:1: historyLimits.failed: expected an integer" },
	{ "deadlines:\n  backupSecs: 10\n", "runner.yaml:2: deadlines.backupSecs: unknown field" },
	{ "verification:\n  restore:\n    engine: {exec: {restoreCommand: [cat]}}\n    rows: 3\n",
	  "runner.yaml:4: verification.restore.rows: unknown field" },
	{ "verification:\n  restore:\n    engine: {exec: {restoreCommand: [cat]}}\n"
	  "    expectRows: 3\n",
	  "runner.yaml:4: verification.restore.expectRows: needs verification.restore.engine "
	  "with an engine that counts the restored rows in its scratch database (mysql or postgres)" },
	{ "verification:\n  expectRows: 3\n",
	  "runner.yaml:2: verification.expectRows: needs verification.restore.engine" },
	{ "api: {listen: ':8080', token: abc}\n",
	  "runner.yaml:1: api.token: a secret must be at least 4 characters long" },
	{ "api: {listen: ':8080', tokenFile: /nonexistent/token}\n",
	  "runner.yaml: api.tokenFile: cannot open /nonexistent/token" },
	{ "schedule: '61 * * * *'\n", "runner.yaml:1: schedule: schedule '61 * * * *': minute field '61'" },
	{ "schedule: '0 * * * *'\ntimeZone: Mars/Olympus\n", "runner.yaml:2: timeZone:" },
	{ "retention: {keepWithin: soon}\n", "runner.yaml:1: retention.keepWithin: expected a duration" },
	{ "tags: nightly\n", "runner.yaml:1: tags: expected a list of strings" },
	{ "name: [unclosed\n", "runner.yaml:2:1: " },
	{ "- a\n- b\n", "runner.yaml:1: expected a mapping" },
};

static void test_bad(void)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rcfg_t c;
		char *error = load(&c, bad[i].doc);
		const char *msg = error ? strstr(error, "runner.yaml") : NULL;

		if (!ok(msg && strstr(error, bad[i].want) == msg,
			"refused: %s", bad[i].want))
			diag("got: %s", error ? error : "(loaded)");
		free(error);
		rcfg_clear(&c);
	}
}

static void test_full(void)
{
	char *token = write_doc("token", "0123456789abcdef0123\n");
	rcfg_t c;
	char *error;

	error = load(&c,
		"namespace: shop\n"
		"scheduleName: orders-db\n"
		"schedule: '*/2 * * * * *'\n"
		"timeZone: Europe/Berlin\n"
		"suspend: false\n"
		"startingDeadlineSeconds: 300\n"
		"concurrencyPolicy: Replace\n"
		"mode: single\n"
		"engine:\n"
		"  exec:\n"
		"    backupCommand: [sh, -c, 'echo hi']\n"
		"    restoreCommand: [cat]\n"
		"    env: {DB_PASSWORD: hunter2hunter2, PORT: '5432'}\n"
		"    timeoutSeconds: 60\n"
		"storage:\n"
		"  url: s3://bucket/prefix\n"
		"  endpoint: http://127.0.0.1:9000\n"
		"  accessKeyId: AKIAEXAMPLE\n"
		"  secretAccessKey: s3cr3t-v4lue\n"
		"  caFile: ca.pem\n"
		"  forcePathStyle: true\n"
		"compression: {algorithm: gzip, level: 9}\n"
		"encryption: {recipients: [age1xyz], identityFile: key.txt}\n"
		"retention: {keepLast: 2, keepDaily: 7, keepWithin: 1w2d, keepTags: [pinned]}\n"
		"historyLimits: {successful: 5, failed: 2}\n"
		"deadlines: {backupSeconds: 3600, restoreSeconds: 7200, verifySeconds: 600}\n"
		"verification:\n"
		"  schedule: '@daily'\n"
		"  restore:\n"
		"    engine: {postgres: {host: scratch, database: scratch, user: test,\n"
		"                        restore: {clean: true}}}\n"
		"    expectRows: 10\n"
		"tags: [nightly]\n"
		"api: {listen: '127.0.0.1:0', tokenFile: token}\n"
		"metrics: {listen: ':8081'}\n");
	ok(!error, "a full document loads%s%s", error ? ": " : "", error ? error : "");
	is_str(c.name, "shop/orders-db", "name defaults to namespace/scheduleName");
	is_str(c.schedule, "*/2 * * * * *", "schedule");
	is_str(c.time_zone, "Europe/Berlin", "timeZone");
	is_int(c.suspend, 0, "suspend");
	is_int(c.starting_deadline, 300, "startingDeadlineSeconds");
	is_int(c.concurrency, RCFG_REPLACE, "concurrencyPolicy");
	is_int(c.mode, RCFG_MODE_SINGLE, "mode");
	is_str(c.engine_name, "exec", "engine name");
	ok(c.engine_json && strstr(c.engine_json, "\"backupCommand\":[\"sh\",\"-c\",\"echo hi\"]"),
		"engine block as JSON: %s", c.engine_json ? c.engine_json : "(null)");
	ok(c.engine_json && strstr(c.engine_json, "\"timeoutSeconds\":60") &&
		strstr(c.engine_json, "\"PORT\":\"5432\""),
		"plain numbers stay numbers, quoted ones strings, in the JSON");
	is_str(c.storage_url, "s3://bucket/prefix", "storage.url");
	ok(c.storage_settings.count == 10, "five storage settings (%zu strings)",
		c.storage_settings.count);
	if (c.storage_settings.count == 10) {
		is_str(c.storage_settings.items[2], "access_key_id", "accessKeyId -> access_key_id");
		is_str(c.storage_settings.items[4], "secret_access_key", "secretAccessKey mapped");
		ok(strstr(c.storage_settings.items[7], "/ca.pem") &&
			c.storage_settings.items[7][0] == '/', "caFile relative to the config");
		is_str(c.storage_settings.items[8], "path_style", "forcePathStyle -> path_style");
	}
	is_str(c.compression, "gzip", "compression.algorithm");
	is_int(c.level, 9, "compression.level");
	is_int(c.keep[RCFG_KEEP_LAST], 2, "retention.keepLast");
	is_int(c.keep_within, 9 * 86400, "retention.keepWithin");
	is_int(c.history_successful, 5, "historyLimits.successful");
	is_int(c.deadline_restore, 7200, "deadlines.restoreSeconds");
	is_str(c.verify_schedule, "@daily", "verification.schedule");
	is_str(c.verify_engine_name, "postgres", "verification.restore.engine");
	is_int(c.verify_expect_rows, 10, "verification.restore.expectRows");
	is_str(c.api_token, "0123456789abcdef0123", "api.tokenFile read");
	is_str(c.api_listen, "127.0.0.1:0", "api.listen");
	is_str(c.metrics_listen, ":8081", "metrics.listen");
	rcfg_clear(&c);
	free(error);
	free(token);
}

/* Secrets in the document are registered: they never reach an error message. */
static void test_secrets(void)
{
	rcfg_t c;
	char *error = load(&c, "storage: {url: 'file:///x', secretAccessKey: sup3r-s3cret}\n"
		"engine: {exec: {backupCommand: [cat], env: {PGPASSWORD: pa55word-xyz}}}\n");

	ok(!error, "secrets load");
	free(error);
	rcfg_clear(&c);
	bop_error_set(BOP_ERROR, "failed with sup3r-s3cret and pa55word-xyz");
	ok(!strstr(bop_error_last(), "sup3r-s3cret") && !strstr(bop_error_last(), "pa55word-xyz"),
		"redacted afterwards: %s", bop_error_last());
}

static void test_json_and_defaults(void)
{
	rcfg_t c;
	char *error = load(&c, "{\"storage\": \"file:///tmp/b\", \"name\": \"app\", "
		"\"engine\": {\"exec\": {\"backupCommand\": [\"cat\"]}}}\n");

	ok(!error, "a JSON document loads");
	is_str(c.storage_url, "file:///tmp/b", "storage as a plain URL string");
	is_str(c.name, "app", "name");
	is_int(c.mode, -1, "mode not given");
	free(error);
	rcfg_clear(&c);
	error = load(&c, "storage: file:///tmp/b\n");
	ok(!error, "a minimal document loads");
	is_str(c.name, "default", "name defaults to \"default\"");
	free(error);
	rcfg_clear(&c);
	error = load(&c, "");
	ok(!error, "an empty document loads");
	free(error);
	rcfg_clear(&c);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	test_bad();
	test_full();
	test_secrets();
	test_json_and_defaults();
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			diag("cannot remove %s", dir);
	}
	return done_testing();
}
