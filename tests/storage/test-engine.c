/*
 * The engine registry and the exec engine: config parsing and the messages for bad
 * configs, validation, secret redaction, and real backup/restore round trips through
 * /bin/sh commands (and through a pipeline into file storage and back).
 */
#include "internal.h"
#include "tap.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[PATH_MAX];

static bool contains(const char *haystack, const char *needle)
{
	return haystack && strstr(haystack, needle) != NULL;
}

static char *read_all(bop_source_t *src, size_t *len, int *ret)
{
	size_t cap = 1 << 16, n = 0, got;
	char *buf = malloc(cap + 1);

	*ret = 0;
	for (;;) {
		if (n == cap)
			buf = realloc(buf, (cap *= 2) + 1);
		*ret = bop_source_read(src, buf + n, cap - n, &got);
		if (*ret < 0 || !got)
			break;
		n += got;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

static char *slurp(const char *path, size_t *len)
{
	char *data = NULL;

	if (bop__read_file(path, &data, len, 64u << 20) < 0)
		return NULL;
	return data;
}

/* Opens exec with `config`; the engine or NULL. */
static bop_engine_t *exec_open(const char *config)
{
	bop_engine_t *e = NULL;

	if (bop_engine_open(&e, "exec", config) < 0)
		return NULL;
	return e;
}

/* ---- registry ---- */

static int fake_open(bop_engine_t **out, const char *config_json, void *payload)
{
	BOP_UNUSED(out);
	BOP_UNUSED(config_json);
	BOP_UNUSED(payload);
	return BOP_EFORMAT;     /* no message, like a third-party engine */
}

static void test_registry(void)
{
	bop_engine_t *e = NULL;

	is_int(bop_engine_open(&e, "nosuch", "{}"), BOP_ENOTFOUND, "an unknown engine is BOP_ENOTFOUND");
	ok(contains(bop_error_last(), "nosuch") && contains(bop_error_last(), "exec"),
		"the message names it and lists the known engines: %s", bop_error_last());
	is_int(bop_engine_register("fake-engine", 0, fake_open, NULL), 0, "register an engine");
	is_int(bop_engine_register("fake-engine", 0, fake_open, NULL), BOP_EEXISTS,
		"registering it twice is BOP_EEXISTS");
	is_int(bop_engine_register("exec", 0, fake_open, NULL), BOP_EEXISTS, "exec is built in");
	is_int(bop_engine_register("bad name", 0, fake_open, NULL), BOP_EINVAL, "an invalid name is refused");
	is_int(bop_engine_open(&e, "fake-engine", "{}"), BOP_EFORMAT,
		"open returns the engine's code");
	ok(contains(bop_error_last(), "fake-engine"), "with a message naming the engine: %s",
		bop_error_last());
	is_int(bop_engine_open(&e, "nosuch", "{}"), BOP_ENOTFOUND, "the listing now has it");
	ok(contains(bop_error_last(), "fake-engine"), "%s", bop_error_last());
	bop_engine_free(NULL);
}

/* ---- capabilities and the optional slots ---- */

/* A third-party engine that counts rows: `tables` tables holding `rows` rows. */
typedef struct counting_engine {
	bop_engine_t base;
	int64_t tables;
	int64_t rows;
} counting_engine_t;

static int counting_backup(bop_engine_t *e, bop_source_t **out)
{
	BOP_UNUSED(e);
	return bop_source_memory_new(out, "", 0);
}

static int counting_count(bop_engine_t *base, int64_t *tables, int64_t *rows)
{
	counting_engine_t *e = (counting_engine_t *)base;

	if (!tables)
		return e->tables == 99 ? bop_error_set(BOP_ENOTSUPPORTED, "no single database") : 0;
	*tables = e->tables;
	*rows = e->rows;
	return 0;
}

static void counting_free(bop_engine_t *e)
{
	free(e);
}

static int counting_open(bop_engine_t **out, const char *config_json, void *payload)
{
	counting_engine_t *e = calloc(1, sizeof(*e));

	BOP_UNUSED(payload);
	if (!e)
		return BOP_ENOMEM;
	e->base.version = BOP_ENGINE_VERSION;
	e->base.backup = counting_backup;
	e->base.free = counting_free;
	e->base.count_rows = counting_count;
	/* {"tables": T, "rows": R} without a JSON parser: the test writes it exactly so. */
	if (sscanf(config_json, "{\"tables\": %" SCNd64 ", \"rows\": %" SCNd64 "}", &e->tables,
			&e->rows) != 2) {
		free(e);
		return bop_error_set(BOP_EINVAL, "bad test config");
	}
	*out = &e->base;
	return 0;
}

static unsigned int caps_of(const char *name)
{
	unsigned int caps = 12345;

	if (bop_engine_capabilities(&caps, name) < 0)
		return 1000;
	return caps;
}

static char *joined_names(unsigned int capabilities)
{
	char **names = NULL, *text = calloc(1, 1024);

	if (!text || bop_engine_names(&names, capabilities) < 0) {
		free(text);
		return NULL;
	}
	for (size_t i = 0; names[i]; i++)
		snprintf(text + strlen(text), 1024 - strlen(text), "%s%s", i ? " " : "", names[i]);
	bop_free(names);
	return text;
}

typedef struct warnings_seen {
	int n;
	char text[1024];
} warnings_seen_t;

static void note_warning(const char *field, const char *message, void *payload)
{
	warnings_seen_t *w = payload;

	w->n++;
	snprintf(w->text + strlen(w->text), sizeof(w->text) - strlen(w->text), "%s|%s;", field,
		message);
}

static warnings_seen_t warnings_of(const char *name, const char *config)
{
	warnings_seen_t w = { 0, "" };
	bop_engine_t *e = NULL;

	if (bop_engine_open(&e, name, config) < 0 || bop_engine_warnings(e, note_warning, &w) < 0) {
		diag("%s %s: %s", name, config, bop_error_last());
		w.n = -1;
	}
	bop_engine_free(e);
	return w;
}

static void test_capabilities(void)
{
	bop_engine_t *e = NULL;
	unsigned int caps = 7;
	int64_t tables = 5, rows = 5;
	char *names;
	warnings_seen_t w;

	is_int(caps_of("postgres"), BOP_ENGINE_COUNTS_ROWS, "postgres counts rows");
	is_int(caps_of("mysql"), BOP_ENGINE_COUNTS_ROWS, "mysql counts rows");
	is_int(caps_of("cockroach"), BOP_ENGINE_MULTI_FILE, "cockroach backs up many files");
	is_int(caps_of("exec"), 0, "exec has no capability");
	is_int(caps_of("files"), 0, "files has no capability");
	is_int(bop_engine_capabilities(&caps, "oracle"), BOP_ENOTFOUND,
		"an unknown engine has no capabilities: BOP_ENOTFOUND");
	ok(caps == 0 && contains(bop_error_last(), "postgres"),
		"... with 0 and a message listing the known engines: %s", bop_error_last());

	is_int(bop_engine_register("counting-engine", BOP_ENGINE_COUNTS_ROWS, counting_open, NULL),
		0, "a third-party engine registers with BOP_ENGINE_COUNTS_ROWS");
	is_int(caps_of("counting-engine"), BOP_ENGINE_COUNTS_ROWS, "... and the registry tells it");
	names = joined_names(0);
	is_str(names, "cockroach counting-engine exec fake-engine files mysql postgres",
		"bop_engine_names: every engine, sorted");
	free(names);
	names = joined_names(BOP_ENGINE_COUNTS_ROWS);
	is_str(names, "counting-engine mysql postgres", "... or those that count rows");
	free(names);
	names = joined_names(BOP_ENGINE_COUNTS_ROWS | BOP_ENGINE_MULTI_FILE);
	is_str(names, "", "... none has both capabilities");
	free(names);

	ok(bop_engine_open(&e, "counting-engine", "{\"tables\": 3, \"rows\": 41}") == 0,
		"open the counting engine");
	is_int(bop_engine_count_rows(e, &tables, &rows), 0, "bop_engine_count_rows calls its slot");
	ok(tables == 3 && rows == 41, "... 3 tables, 41 rows (got %lld, %lld)", (long long)tables,
		(long long)rows);
	is_int(bop_engine_count_rows(e, NULL, NULL), 0, "the check alone passes");
	is_int(bop_engine_count_rows(e, &tables, NULL), BOP_EINVAL, "tables without rows: BOP_EINVAL");
	bop_engine_free(e);
	ok(bop_engine_open(&e, "counting-engine", "{\"tables\": 99, \"rows\": 1}") == 0 &&
		bop_engine_count_rows(e, NULL, NULL) == BOP_ENOTSUPPORTED &&
		contains(bop_error_last(), "no single database"),
		"a configuration that cannot count fails the check with the engine's reason: %s",
		bop_error_last());
	bop_engine_free(e);
	ok(bop_engine_open(&e, "counting-engine", "{\"tables\": -1, \"rows\": 1}") == 0 &&
		bop_engine_count_rows(e, &tables, &rows) == BOP_ERROR && tables == -1 && rows == -1,
		"a negative count from the engine is an error, and the outputs are -1: %s",
		bop_error_last());
	bop_engine_free(e);

	e = exec_open("{\"backupCommand\": [\"true\"]}");
	is_int(bop_engine_count_rows(e, &tables, &rows), BOP_ENOTSUPPORTED,
		"exec cannot count rows: BOP_ENOTSUPPORTED");
	ok(tables == -1 && rows == -1, "... and the outputs are -1");
	w.n = 7;
	is_int(bop_engine_warnings(e, note_warning, &w), 0, "exec has no warnings slot: 0");
	is_int(w.n, 7, "... and the callback is not called");
	bop_engine_free(e);

	/* The postgres engine's configuration alone, no server needed. */
	ok(bop_engine_open(&e, "postgres", "{\"allDatabases\": true}") == 0 &&
		bop_engine_count_rows(e, NULL, NULL) == BOP_ENOTSUPPORTED &&
		contains(bop_error_last(), "the row check needs one scratch database"),
		"postgres with allDatabases: the row check is refused: %s", bop_error_last());
	bop_engine_free(e);
	ok(bop_engine_open(&e, "postgres", "{\"database\": \"scratch\"}") == 0 &&
		bop_engine_count_rows(e, NULL, NULL) == 0, "postgres with a database: it can count");
	bop_engine_free(e);
	ok(bop_engine_open(&e, "mysql", "{\"allDatabases\": true}") == 0 &&
		bop_engine_count_rows(e, NULL, NULL) == BOP_ENOTSUPPORTED &&
		contains(bop_error_last(), "the row check needs one scratch database"),
		"mysql with allDatabases: the row check is refused");
	bop_engine_free(e);

	w = warnings_of("postgres", "{\"database\": \"x\", \"restore\": {\"clean\": true, "
		"\"singleTransaction\": false}}");
	ok(w.n == 1 && !strncmp(w.text, "restore|clean: true with singleTransaction: false cannot "
		"roll back", 66), "postgres warns that clean without one transaction cannot roll back: %s",
		w.text);
	w = warnings_of("postgres", "{\"database\": \"x\", \"restore\": {\"clean\": true}}");
	is_int(w.n, 0, "... and not about clean in one transaction");
	w = warnings_of("postgres", "{\"database\": \"x\", \"restore\": {\"singleTransaction\": false}}");
	is_int(w.n, 0, "... nor about a restore without one transaction that drops nothing");
}

/* ---- exec config ---- */

static void test_config_good(void)
{
	const char *full = "{\"backupCommand\": [\"sh\", \"-c\", \"echo hi\"],"
		" \"restoreCommand\": [\"cat\"], \"shell\": false,"
		" \"env\": {\"PGHOST\": \"db\", \"EMPTY\": \"\"}, \"workingDir\": \"/\","
		" \"timeoutSeconds\": 3600}";
	bop_engine_t *e = exec_open(full);
	char *patch = NULL;

	ok(e != NULL, "a full exec config parses");
	if (!e)
		diag("%s", bop_error_last());
	is_int(bop_engine_validate(e), 0, "and validates (sh and cat are in PATH)");
	is_int(bop_engine_pod_customize(e, &patch), 0, "pod_customize");
	is_str(patch, "{}", "the exec engine changes nothing in the pod");
	bop_free(patch);
	bop_engine_free(e);

	e = exec_open("  {}\n");
	ok(e != NULL, "an empty object parses");
	is_int(bop_engine_validate(e), BOP_EINVAL, "but does not validate");
	ok(contains(bop_error_last(), "backupCommand"), "the message says what to add: %s",
		bop_error_last());
	bop_engine_free(e);
	e = NULL;
	is_int(bop_engine_open(&e, "exec", NULL), 0, "a NULL config is an empty one");
	bop_engine_free(e);
}

typedef struct bad_config {
	const char *json;
	const char *mentions;
	const char *what;
} bad_config_t;

static void test_config_bad(void)
{
	static const bad_config_t bad[] = {
		{ "", "empty", "an empty text" },
		{ " \n", "empty", "only white space" },
		{ "{", "not valid JSON", "a truncated object" },
		{ "{\"backupCommand\": [\"a\",]}", "not valid JSON", "a trailing comma" },
		{ "{} {}", "not valid JSON", "trailing garbage" },
		{ "[\"pg_dump\"]", "JSON object", "an array" },
		{ "\"x\"", "JSON object", "a string" },
		{ "{\"backupCmd\": [\"x\"]}", "\"backupCmd\"", "an unknown field" },
		{ "{\"backupCommand\": \"pg_dump db\"}", "backupCommand", "a command as a string" },
		{ "{\"backupCommand\": []}", "backupCommand", "an empty command" },
		{ "{\"restoreCommand\": [1, 2]}", "restoreCommand", "numbers as arguments" },
		{ "{\"restoreCommand\": [\"\"]}", "restoreCommand", "an empty program" },
		{ "{\"backupCommand\": [\"a\\u0000b\"]}", "NUL", "an argument with a NUL" },
		{ "{\"shell\": \"yes\"}", "shell", "shell as a string" },
		{ "{\"shell\": 1}", "shell", "shell as a number" },
		{ "{\"env\": [\"A=b\"]}", "env", "env as an array" },
		{ "{\"env\": {\"PORT\": 5432}}", "PORT", "an env value as a number" },
		{ "{\"env\": {\"A=B\": \"c\"}}", "A=B", "an env name with '='" },
		{ "{\"env\": {\"\": \"c\"}}", "env", "an empty env name" },
		{ "{\"workingDir\": 5}", "workingDir", "workingDir as a number" },
		{ "{\"workingDir\": \"\"}", "workingDir", "an empty workingDir" },
		{ "{\"timeoutSeconds\": \"10\"}", "timeoutSeconds", "timeoutSeconds as a string" },
		{ "{\"timeoutSeconds\": -1}", "timeoutSeconds", "a negative timeout" },
		{ "{\"timeoutSeconds\": 1.5}", "timeoutSeconds", "a fractional timeout" },
		{ "{\"timeoutSeconds\": null}", "timeoutSeconds", "a null timeout" },
		{ "{\"tools\": \"/s.sock\"}", "tools", "tools as a string" },
		{ "{\"tools\": {}}", "socket", "tools without a socket" },
		{ "{\"tools\": {\"socket\": \"s.sock\"}}", "absolute", "a relative tools socket" },
		{ "{\"tools\": {\"sock\": \"/s\"}}", "sock", "an unknown tools field" },
	};

	for (size_t i = 0; i < BOP_ARRAY_SIZE(bad); i++) {
		bop_engine_t *e = NULL;

		is_int(bop_engine_open(&e, "exec", bad[i].json), BOP_EINVAL, bad[i].what);
		ok(contains(bop_error_last(), bad[i].mentions) && contains(bop_error_last(), "exec"),
			"the message says what is wrong: %s", bop_error_last());
		ok(e == NULL, "no engine is returned");
	}
}

static void test_validate(void)
{
	bop_engine_t *e;

	e = exec_open("{\"backupCommand\": [\"no-such-program-bop\"], \"restoreCommand\": [\"cat\"]}");
	is_int(bop_engine_validate(e), BOP_ENOTFOUND, "a program missing from PATH");
	ok(contains(bop_error_last(), "no-such-program-bop") && contains(bop_error_last(), "PATH"),
		"the message names the program: %s", bop_error_last());
	bop_engine_free(e);

	e = exec_open("{\"backupCommand\": [\"cat\"], \"env\": {\"PATH\": \"/nonexistent\"}}");
	is_int(bop_engine_validate(e), BOP_ENOTFOUND, "the configured PATH is the one searched");
	bop_engine_free(e);

	e = exec_open("{\"backupCommand\": [\"/no/such/tool\"]}");
	is_int(bop_engine_validate(e), BOP_ENOTFOUND, "a missing program given by path");
	ok(contains(bop_error_last(), "/no/such/tool"), "%s", bop_error_last());
	bop_engine_free(e);

	e = exec_open("{\"backupCommand\": [\"no-such-program-bop | gzip\"], \"shell\": true}");
	is_int(bop_engine_validate(e), 0, "with shell, the script is not looked up");
	bop_engine_free(e);

	e = exec_open("{\"backupCommand\": [\"cat\"], \"workingDir\": \"/no/such/dir\"}");
	is_int(bop_engine_validate(e), BOP_ENOTFOUND, "a missing workingDir");
	ok(contains(bop_error_last(), "/no/such/dir"), "%s", bop_error_last());
	bop_engine_free(e);

	/* With a tools container, program and directory are there, not here. */
	e = exec_open("{\"backupCommand\": [\"mongodump-bop\"], \"workingDir\": \"/no/such/dir\","
		" \"tools\": {\"socket\": \"/backupop-tools/agent.sock\"}}");
	is_int(bop_engine_validate(e), 0, "with tools, programs are not looked up here");
	bop_engine_free(e);
}

static void test_secrets(void)
{
	bop_engine_t *e = exec_open("{\"backupCommand\": [\"cat\"], \"env\": {"
		"\"PGPASSWORD\": \"pg-pass-1234\", \"api_token\": \"tok-abcdef\","
		" \"AWS_SECRET_ACCESS_KEY\": \"aws-sk-999\", \"MY_KEY\": \"abc\","
		" \"PGHOST\": \"db-host-name\"}}");
	char *r;

	ok(e != NULL, "a config with secrets parses");
	r = bop__redact("pg-pass-1234 tok-abcdef aws-sk-999 db-host-name");
	is_str(r, "[REDACTED] [REDACTED] [REDACTED] db-host-name",
		"values of PASSWORD/TOKEN/SECRET/KEY variables are redacted, others are not");
	free(r);
	bop__error(BOP_ERROR, "connecting with pg-pass-1234 failed");
	ok(!contains(bop_error_last(), "pg-pass-1234"), "a secret never reaches a message: %s",
		bop_error_last());
	bop_engine_free(e);
}

static void test_missing_commands(void)
{
	bop_engine_t *e = exec_open("{\"restoreCommand\": [\"cat\"]}");
	bop_source_t *src = NULL;
	bop_sink_t *sink = NULL;

	is_int(bop_engine_backup(e, &src), BOP_EINVAL, "backup without backupCommand");
	ok(contains(bop_error_last(), "backupCommand"), "the message says what to add: %s",
		bop_error_last());
	ok(src == NULL, "no source");
	bop_engine_free(e);
	e = exec_open("{\"backupCommand\": [\"cat\"]}");
	is_int(bop_engine_restore(e, &sink), BOP_EINVAL, "restore without restoreCommand");
	ok(contains(bop_error_last(), "restoreCommand"), "the message says what to add: %s",
		bop_error_last());
	bop_engine_free(e);
}

/* ---- real commands ---- */

/* Runs the backup of `config` to its end: the output, and the close result in *ret. */
static char *backup_output(const char *config, int *ret)
{
	bop_engine_t *e = exec_open(config);
	bop_source_t *src = NULL;
	char *out = NULL;
	size_t len;

	*ret = e ? bop_engine_backup(e, &src) : bop_error_last_code();
	if (*ret == 0) {
		out = read_all(src, &len, ret);
		if (*ret == 0)
			*ret = bop_source_close(src);
	}
	bop_source_free(src);
	bop_engine_free(e);
	return out;
}

static bool commands_work(void)
{
	bop_command_options_t opts = BOP_COMMAND_OPTIONS_INIT;
	const char *argv[] = { "true", NULL };
	bop_source_t *src = NULL;
	int ret;

	opts.argv = argv;
	ret = bop_source_command_new(&src, &opts);
	if (ret == 0)
		ret = bop_source_close(src);
	bop_source_free(src);
	if (ret < 0)
		diag("commands do not run here: %s", bop_error_last());
	return ret == 0;
}

static void test_backup_commands(void)
{
	char config[PATH_MAX + 256], *out;
	int ret;

	out = backup_output("{\"backupCommand\": [\"sh\", \"-c\", \"printf hello; printf ' world'\"]}", &ret);
	is_int(ret, 0, "a backup command runs");
	is_str(out, "hello world", "its stdout is the backup");
	free(out);

	out = backup_output("{\"backupCommand\": [\"sh\", \"-c\", \"printf partial; exit 3\"]}", &ret);
	is_int(ret, BOP_ECHILD, "a command that exits 3 fails the backup with BOP_ECHILD");
	free(out);

	out = backup_output("{\"backupCommand\": [\"sh\", \"-c\", \"printf %s \\\"$DB\\\"\"],"
		" \"env\": {\"DB\": \"orders\"}}", &ret);
	is_str(out, "orders", "env reaches the command");
	free(out);

	snprintf(config, sizeof(config), "{\"backupCommand\": [\"pwd\"], \"workingDir\": \"%s\"}",
		tmpdir);
	out = backup_output(config, &ret);
	ok(out && !strncmp(out, tmpdir, strlen(tmpdir)), "workingDir is the command's directory");
	free(out);

	out = backup_output("{\"backupCommand\": [\"printf abc | tr a-c x-z\"], \"shell\": true}", &ret);
	is_str(out, "xyz", "with shell, the command is a shell script");
	free(out);

	out = backup_output("{\"backupCommand\": [\"sleep\", \"10\"], \"timeoutSeconds\": 1}", &ret);
	is_int(ret, BOP_ETIMEOUT, "a command over timeoutSeconds fails with BOP_ETIMEOUT");
	free(out);
}

static void test_restore_commands(void)
{
	char config[PATH_MAX + 256], target[PATH_MAX];
	bop_engine_t *e;
	bop_sink_t *sink = NULL;
	char *data;
	size_t len = 0;

	snprintf(target, sizeof(target), "%s/restored.txt", tmpdir);
	snprintf(config, sizeof(config), "{\"restoreCommand\": [\"sh\", \"-c\", \"cat > \\\"$OUT\\\"\"],"
		" \"env\": {\"OUT\": \"%s\"}}", target);
	e = exec_open(config);
	is_int(bop_engine_restore(e, &sink), 0, "a restore command starts");
	is_int(bop_sink_write(sink, "restored data", 13), 0, "write the stream to it");
	is_int(bop_sink_commit(sink), 0, "commit waits for it to exit 0");
	bop_sink_free(sink);
	bop_engine_free(e);
	data = slurp(target, &len);
	is_str(data, "restored data", "the command received the stream on stdin");
	free(data);

	e = exec_open("{\"restoreCommand\": [\"sh\", \"-c\", \"cat >/dev/null; exit 1\"]}");
	sink = NULL;
	is_int(bop_engine_restore(e, &sink), 0, "a failing restore command starts");
	bop_sink_write(sink, "x", 1);
	is_int(bop_sink_commit(sink), BOP_ECHILD, "its exit status fails the commit");
	bop_sink_free(sink);
	bop_engine_free(e);
}

/* A stream of `n` varied bytes in a file, through exec backup → pipeline → file storage
 * → pipeline → exec restore, must arrive intact. */
static void test_pipeline_round_trip(void)
{
	enum { N = 3 * 1024 * 1024 + 17 };
	char input[PATH_MAX], output[PATH_MAX], url[PATH_MAX + 16], config[3 * PATH_MAX];
	unsigned char *data = malloc(N);
	bop_storage_t *st = NULL;
	bop_pipeline_t *p = NULL;
	bop_engine_t *e = NULL;
	bop_source_t *src = NULL;
	bop_sink_t *sink = NULL;
	char *got = NULL;
	size_t len = 0;
	FILE *f;

	for (size_t i = 0; i < N; i++)
		data[i] = (unsigned char)((i * 2654435761u) >> 13);
	snprintf(input, sizeof(input), "%s/db.bin", tmpdir);
	snprintf(output, sizeof(output), "%s/db-restored.bin", tmpdir);
	f = fopen(input, "wb");
	fwrite(data, 1, N, f);
	fclose(f);
	snprintf(url, sizeof(url), "file://%s/store", tmpdir);
	snprintf(config, sizeof(config), "{\"backupCommand\": [\"cat\", \"%s\"],"
		" \"restoreCommand\": [\"sh\", \"-c\", \"cat > \\\"$0\\\"\", \"%s\"]}", input, output);

	is_int(bop_storage_open(&st, url, NULL), 0, "open the storage");
	is_int(bop_engine_open(&e, "exec", config), 0, "open the engine");
	is_int(bop_engine_validate(e), 0, "it validates");
	bop_pipeline_new(&p, NULL);
	is_int(bop_engine_backup(e, &src), 0, "start the backup");
	bop_pipeline_set_source(p, src);
	is_int(bop_storage_put(st, &sink, "ns/db/data", NULL), 0, "put the backup object");
	bop_pipeline_set_sink(p, sink);
	is_int(bop_pipeline_run(p), 0, "the backup pipeline runs");
	is_int(bop_pipeline_bytes_in(p), N, "every byte went through");
	bop_pipeline_free(p);

	p = NULL;
	bop_pipeline_new(&p, NULL);
	is_int(bop_storage_get(st, &src, "ns/db/data", 0), 0, "get the backup object");
	bop_pipeline_set_source(p, src);
	is_int(bop_engine_restore(e, &sink), 0, "start the restore");
	bop_pipeline_set_sink(p, sink);
	is_int(bop_pipeline_run(p), 0, "the restore pipeline runs");
	bop_pipeline_free(p);

	got = slurp(output, &len);
	ok(got && len == N && memcmp(got, data, N) == 0, "the restored bytes equal the original");
	free(got);
	free(data);
	bop_engine_free(e);
	bop_storage_free(st);
}

int main(void)
{
	const char *base = getenv("TMPDIR");
	char cmd[PATH_MAX + 16];

	snprintf(tmpdir, sizeof(tmpdir), "%s/bop-engine-XXXXXX", base ? base : "/tmp");
	if (!mkdtemp(tmpdir))
		skip_all("cannot create a temporary directory: %s", strerror(errno));
	test_registry();
	test_capabilities();
	test_config_good();
	test_config_bad();
	test_validate();
	test_secrets();
	test_missing_commands();
	if (commands_work()) {
		test_backup_commands();
		test_restore_commands();
		test_pipeline_round_trip();
	} else {
		skip(1, "bop_source_command_new() cannot run a command yet");
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		diag("cannot remove %s", tmpdir);
	return done_testing();
}
