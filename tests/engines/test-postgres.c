/*
 * The postgres engine against a real PostgreSQL server started for this test
 * (tests/env/pg-local.sh): round trips in custom and plain format through zstd + age on
 * file:// storage, compared table by table and sequence by sequence; dumps that fail
 * (wrong password, deadline, killed tool, server stopped) leave nothing; restores of a
 * damaged backup leave the target as it was; the password never shows in the dump tool's
 * command line, the log or error messages.
 */
#include "engine-test.h"

#define PASSWORD "S3cr3t-Pg-pass_42"

static char *tmp;
static char *cluster;
static char *script;
static int port;
static bool cluster_started;

static void stop_cluster(void)
{
	char *cmd;

	if (!cluster_started)
		return;
	cmd = xasprintf("sh '%s' stop '%s'", script, cluster);
	if (system(cmd) != 0)
		diag("stopping the cluster failed");
	free(cmd);
	cluster_started = false;
}

static void cleanup(void)
{
	stop_cluster();
	if (tmp)
		remove_tree(tmp);
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Runs SQL (from a file, so no quoting) as the superuser over the socket; the output. */
static char *sql(const char *db, const char *query)
{
	char *file = xasprintf("%s/query.sql", tmp), *cmd, *out;

	if (write_text(file, query) != 0) {
		free(file);
		return NULL;
	}
	cmd = xasprintf("psql -X -A -t -q -v ON_ERROR_STOP=1 -h '%s' -p %d -U postgres -d '%s' -f '%s'",
		cluster, port, db, file);
	out = run_output(cmd);
	free(cmd);
	free(file);
	return out;
}

static bool sql_ok(const char *db, const char *query)
{
	char *out = sql(db, query);

	free(out);
	return out != NULL;
}

static const char *const populate =
	"CREATE SCHEMA shop;\n"
	"CREATE SEQUENCE shop.order_no START 1000 INCREMENT 7;\n"
	"CREATE TABLE shop.customers (id serial PRIMARY KEY, name text NOT NULL, note text,\n"
	"  balance numeric(20,6), tags text[], prefs jsonb, raw json, photo bytea,\n"
	"  created timestamptz DEFAULT '2026-01-02 03:04:05+00');\n"
	"INSERT INTO shop.customers (name, note, balance, tags, prefs, raw, photo) VALUES\n"
	"  ('Zoë Åström', '日本語のテキスト 🎉🐘', 12345678901234.123456, ARRAY['a','b c','ü'],\n"
	"   '{\"lang\": \"sv\", \"n\": [1, 2.5, null]}', '{\"keep\":  \"spacing\" }', '\\x00ff10ab'),\n"
	"  ('Ivan Петров', E'tab\\there\\nnewline', -0.000001, '{}', '[]', 'null', ''),\n"
	"  ('Big', repeat('0123456789abcdef', 5 * 1024 * 1024 / 16), NULL, NULL, NULL, NULL,\n"
	"   decode(repeat('deadbeef', 1000), 'hex'));\n"
	"CREATE TABLE shop.audit (id bigserial PRIMARY KEY, what text);\n"
	"CREATE TABLE shop.orders (no bigint PRIMARY KEY DEFAULT nextval('shop.order_no'),\n"
	"  customer int REFERENCES shop.customers, total numeric(12,2), items int[]);\n"
	"CREATE FUNCTION shop.log_order() RETURNS trigger LANGUAGE plpgsql AS\n"
	"  $$ BEGIN INSERT INTO shop.audit (what) VALUES ('order ' || NEW.no); RETURN NEW; END $$;\n"
	"CREATE TRIGGER orders_audit AFTER INSERT ON shop.orders\n"
	"  FOR EACH ROW EXECUTE FUNCTION shop.log_order();\n"
	"INSERT INTO shop.orders (customer, total, items)\n"
	"  SELECT 1 + i % 3, i * 1.25, ARRAY[i, i + 1] FROM generate_series(1, 500) i;\n"
	"CREATE FUNCTION shop.order_count(int) RETURNS bigint LANGUAGE sql\n"
	"  AS 'SELECT count(*) FROM shop.orders WHERE customer = $1';\n"
	"CREATE VIEW shop.totals AS SELECT c.name, sum(o.total) AS total, shop.order_count(c.id) AS n\n"
	"  FROM shop.customers c JOIN shop.orders o ON o.customer = c.id GROUP BY c.name, c.id;\n"
	"CREATE TABLE public.bulk AS SELECT i, md5(i::text) || md5((i * 7)::text) AS payload\n"
	"  FROM generate_series(1, 300000) i;\n";

/* One query printing, for every user table, its row count and a hash of its rows in order,
 * then the sequences' states and what the view and function compute. */
static char *fingerprint_query;

static int build_fingerprint_query(void)
{
	char *tables = sql("src", "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
		"WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1");
	char *q, *line, *save = NULL;

	if (!tables)
		return -1;
	q = xasprintf("%s", "");
	for (line = strtok_r(tables, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *next = xasprintf("%sSELECT '%s', count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM %s t;\n",
			q, line, line);

		free(q);
		q = next;
	}
	fingerprint_query = xasprintf("%s"
		"SELECT 'seq order_no', last_value, is_called FROM shop.order_no;\n"
		"SELECT 'seq customers', last_value, is_called FROM shop.customers_id_seq;\n"
		"SELECT 'seq audit', last_value, is_called FROM shop.audit_id_seq;\n"
		"SELECT 'view', * FROM shop.totals ORDER BY 2;\n"
		"SELECT 'function', shop.order_count(2);\n"
		"SELECT 'trigger', tgname FROM pg_trigger WHERE NOT tgisinternal;\n", q);
	free(q);
	free(tables);
	return 0;
}

static char *fingerprint(const char *db)
{
	return sql(db, fingerprint_query);
}

static bool same_as_source(const char *db, const char *what)
{
	char *want = fingerprint("src"), *got = fingerprint(db);
	bool same = want && got && strcmp(want, got) == 0;

	ok(same, "%s: every table, sequence, view and function matches the source", what);
	if (!same)
		diag("source:\n%s\nrestored:\n%s", want ? want : "(failed)", got ? got : "(failed)");
	free(want);
	free(got);
	return same;
}

static char *config(const char *extra)
{
	return xasprintf("{\"host\": \"127.0.0.1\", \"port\": %d, \"user\": \"bop\", "
		"\"password\": \"%s\"%s%s}", port, PASSWORD, *extra ? ", " : "", extra);
}

/* ---- configuration ---- */

static void expect_invalid(const char *json, const char *needle, const char *what)
{
	bop_engine_t *e = NULL;
	int ret = bop_engine_open(&e, "postgres", json);

	ok(ret == BOP_EINVAL && strstr(bop_error_last(), needle), "config: %s is refused (%s)",
		what, bop_error_last());
	bop_engine_free(e);
}

static void test_config(void)
{
	bop_engine_t *e = NULL;
	char *patch = NULL, *cfg;
	int ret;

	expect_invalid("{\"database\": \"x\", \"hots\": \"db\"}", "\"hots\"", "an unknown field");
	expect_invalid("{\"database\": \"x\", \"restore\": {\"dtabase\": \"y\"}}", "restore.dtabase",
		"an unknown restore field");
	expect_invalid("{\"user\": \"x\"}", "\"database\" is required", "a missing database");
	expect_invalid("{\"database\": \"x\", \"globals\": true}", "globals", "globals with a database");
	expect_invalid("{\"allDatabases\": true, \"format\": \"custom\"}", "custom",
		"custom format of all databases");
	expect_invalid("{\"database\": \"x\", \"port\": 70000}", "port", "a bad port");
	expect_invalid("{\"database\": \"x\", \"format\": \"tar\"}", "format", "an unknown format");
	expect_invalid("{\"database\": \"x\", \"password\": \"abcd\", \"passwordFile\": \"/f\"}",
		"exclude", "password and passwordFile together");
	expect_invalid("{\"database\": \"x\", \"format\": \"plain\", \"restore\": {\"clean\": true}}",
		"custom format", "restore.clean with plain SQL");
	expect_invalid("{\"database\": \"x\", \"dumpCompression\": 10}", "from 0 to 9",
		"dumpCompression 10");
	expect_invalid("{\"database\": \"x\", \"dumpCompression\": \"6\"}", "integer",
		"dumpCompression as a string");
	expect_invalid("{\"database\": \"x\", \"format\": \"plain\", \"dumpCompression\": 6}",
		"custom format only", "dumpCompression with plain SQL");
	expect_invalid("{\"allDatabases\": true, \"dumpCompression\": 1}", "custom format only",
		"dumpCompression with pg_dumpall");

	cfg = xasprintf("{\"database\": \"src\", \"binDir\": \"%s\"}", tmp);
	ok(bop_engine_open(&e, "postgres", cfg) == 0, "config: a binDir is accepted");
	ret = bop_engine_validate(e);
	ok(ret == BOP_ENOTFOUND && strstr(bop_error_last(), "binDir"),
		"validate: tools missing from binDir are reported (%s)", bop_error_last());
	ok(bop_engine_pod_customize(e, &patch) == 0 && patch && !strcmp(patch, "{}"),
		"pod_customize returns {}");
	bop_free(patch);
	bop_engine_free(e);
	free(cfg);
}

/* ---- round trips ---- */

static void round_trip(const cat_env_t *c, const char *format, const char *target)
{
	char *extra = xasprintf("\"database\": \"src\", \"format\": \"%s\", "
		"\"restore\": {\"database\": \"%s\"}", format, target);
	char *cfg = config(extra), *create = xasprintf("CREATE DATABASE %s", target);
	bop_engine_t *e = NULL;
	bop_manifest_t *m = NULL;
	int ret;

	ok(bop_engine_open(&e, "postgres", cfg) == 0 && bop_engine_validate(e) == 0,
		"%s: validate passes (client can dump the server)", format);
	bop_engine_free(e);
	ret = engine_backup(c, format, "postgres", cfg, &m);
	ok(ret == 0, "%s: backup through the engine succeeds (%s)", format,
		ret ? bop_error_last() : "ok");
	if (ret == 0)
		ok(bop_manifest_plain_bytes(m) > 5 * 1024 * 1024 &&
			!strcmp(bop_manifest_encryption(m), "x25519"),
			"%s: the manifest records %llu plain bytes, encrypted", format,
			(unsigned long long)bop_manifest_plain_bytes(m));
	else
		skip(1, "no backup");
	ok(sql_ok("postgres", create), "%s: a fresh database %s exists", format, target);
	ret = m ? engine_restore(c, format, "postgres", cfg, m) : -1;
	ok(ret == 0, "%s: restore into the fresh database succeeds (%s)", format,
		ret ? bop_error_last() : "ok");
	same_as_source(target, format);
	bop_manifest_free(m);
	free(create);
	free(cfg);
	free(extra);
}

/* The compression pg_dump recorded in a custom-format dump's header, as pg_restore -l
 * reports it ("0" or "none" when uncompressed; PostgreSQL 16 names the method). */
static char *dump_compression(const char *dump_file)
{
	char *cmd = xasprintf("pg_restore -l '%s' | sed -n 's/^;[[:space:]]*Compression: //p'",
		dump_file);
	char *out = run_output(cmd);

	free(cmd);
	return out;
}

/* The stream the engine hands to the pipeline is an uncompressed custom dump: the pipeline
 * compresses it once, instead of zstd over pg_dump's own gzip (issue 11). */
static void test_uncompressed_stream(const cat_env_t *c)
{
	char *cfg = config("\"database\": \"src\"");
	char *file = xasprintf("%s/stream.dump", tmp), *level;
	membuf_t out;
	int ret = engine_backup_text(c, "stream", "postgres", cfg, &out);

	ok(ret == 0 && out.len > 5 * 1024 * 1024 && !memcmp(out.data, "PGDMP", 5),
		"stream: the engine's stream is a custom-format dump (%zu bytes: %s)", out.len,
		ret ? bop_error_last() : "ok");
	if (ret == 0) {
		FILE *f = fopen(file, "w");

		if (f) {
			fwrite(out.data, 1, out.len, f);
			fclose(f);
		}
	}
	level = ret == 0 ? dump_compression(file) : NULL;
	ok(level && (!strcmp(level, "0") || !strcmp(level, "none")),
		"stream: pg_dump did not compress it (the header says compression %s)",
		level ? level : "?");
	free(level);
	free(out.data);
	free(cfg);
	free(file);
}

/* Backups taken before the engine asked pg_dump for an uncompressed dump hold a gzip-
 * compressed custom dump (pg_dump's default): they still restore. */
static void test_old_compressed_backup(const cat_env_t *c)
{
	char *file = xasprintf("%s/old.dump", tmp), *level;
	char *cmd = xasprintf("pg_dump --format=custom -h 127.0.0.1 -p %d -U bop -f '%s' src",
		port, file);
	char *cfg = config("\"database\": \"src\", \"restore\": {\"database\": \"dst_old\"}");
	bop_source_t *src = NULL;
	bop_manifest_t *m = NULL;
	int ret;

	setenv("PGPASSWORD", PASSWORD, 1);
	ok(system(cmd) == 0, "old backup: pg_dump --format=custom as the engine used to run it");
	unsetenv("PGPASSWORD");
	level = dump_compression(file);
	ok(level && strcmp(level, "0") && strcmp(level, "none"),
		"old backup: that dump is compressed by pg_dump (compression %s)", level ? level : "?");
	ret = bop_source_file_new(&src, file);
	if (ret == 0)
		ret = catalog_backup(c, "old", "postgres", src, &m);
	ok(ret == 0, "old backup: stored like the engine stored it (%s)", ret ? bop_error_last() : "ok");
	ok(sql_ok("postgres", "CREATE DATABASE dst_old"), "old backup: a fresh database dst_old");
	ret = m ? engine_restore(c, "old", "postgres", cfg, m) : -1;
	ok(ret == 0, "old backup: the postgres engine restores it (%s)", ret ? bop_error_last() : "ok");
	same_as_source("dst_old", "a backup made the old way");
	bop_manifest_free(m);
	free(level);
	free(cfg);
	free(cmd);
	free(file);
}

/* The trigger and sequence work in a restored database. */
static void restored_database_works(const char *db)
{
	char *out = sql(db, "INSERT INTO shop.orders (customer, total) VALUES (1, 9.99) RETURNING no;\n"
		"SELECT count(*) FROM shop.audit WHERE what = 'order ' || currval('shop.order_no');");
	char *want = sql("src", "SELECT last_value + 7 FROM shop.order_no");
	char line[64];

	snprintf(line, sizeof(line), "%s\n1", want ? want : "?");
	ok(out && want && !strcmp(out, line),
		"restored database: the sequence continues and the trigger fires (%s)", out ? out : "failed");
	free(out);
	free(want);
}

/* ---- failures ---- */

static void expect_nothing_stored(const cat_env_t *c, const char *name)
{
	is_int(catalog_files(c, name), 0, "nothing is left in storage, no manifest");
}

static void test_wrong_password(const cat_env_t *c)
{
	char *cfg = xasprintf("{\"host\": \"127.0.0.1\", \"port\": %d, \"user\": \"bop\", "
		"\"password\": \"wrong-password\", \"database\": \"src\"}", port);
	bop_engine_t *e = NULL;
	bop_manifest_t *m = NULL;
	int ret;

	ok(bop_engine_open(&e, "postgres", cfg) == 0, "wrong password: the engine opens");
	ret = bop_engine_validate(e);
	note_error();
	ok(ret == BOP_EAUTH && strstr(bop_error_last(), "authentication"),
		"wrong password: validate fails with BOP_EAUTH (%s)", bop_error_last());
	bop_engine_free(e);
	ret = engine_backup(c, "fail-auth", "postgres", cfg, &m);
	note_error();
	ok(ret == BOP_EAUTH && strstr(bop_error_last(), "password authentication failed"),
		"wrong password: the backup fails and says why (%s)", bop_error_last());
	expect_nothing_stored(c, "fail-auth");
	bop_manifest_free(m);
	free(cfg);
}

static void test_timeout(const cat_env_t *c)
{
	char *cfg = config("\"database\": \"src\", \"timeoutSeconds\": 1");
	bg_backup_t b = { .cat = c, .name = "fail-timeout", .engine = "postgres", .config = cfg,
		.pause_us = 20000 };

	bg_backup_start(&b);
	pthread_join(b.thread, NULL);
	ok(b.ret == BOP_ETIMEOUT && strstr(b.message, "did not finish within 1000 ms"),
		"deadline: a dump slower than timeoutSeconds fails (%s)", b.message);
	expect_nothing_stored(c, "fail-timeout");
	free(cfg);
}

static void test_killed_dump(const cat_env_t *c)
{
	char *cfg = config("\"database\": \"src\"");
	bg_backup_t b = { .cat = c, .name = "fail-killed", .engine = "postgres", .config = cfg,
		.pause_us = 20000 };
	pid_t pid;
	char *cmdline;

	bg_backup_start(&b);
	pid = wait_child("pg_dump", 10000);
	ok(pid > 0, "killed dump: pg_dump runs (pid %d)", (int)pid);
	cmdline = pid > 0 ? proc_cmdline(pid) : NULL;
	ok(cmdline && strstr(cmdline, "src") && !strstr(cmdline, PASSWORD),
		"secrets: the password is not in pg_dump's command line (%s)", cmdline ? cmdline : "");
	if (pid > 0)
		kill(pid, SIGKILL);
	pthread_join(b.thread, NULL);
	ok(b.ret == BOP_ECHILD && strstr(b.message, "signal 9"),
		"killed dump: the backup fails and says the dump tool was killed (%s)", b.message);
	expect_nothing_stored(c, "fail-killed");
	free(cmdline);
	free(cfg);
}

static void test_server_stopped(const cat_env_t *c)
{
	char *cfg = config("\"database\": \"src\"");
	bop_manifest_t *m = NULL;
	int ret;

	stop_cluster();
	ret = engine_backup(c, "fail-stopped", "postgres", cfg, &m);
	note_error();
	ok(ret == BOP_ECONNECT && strstr(bop_error_last(), "cannot reach the database server 127.0.0.1:"),
		"server stopped: the backup fails with BOP_ECONNECT, the connection error (issue 9 "
		"finding 17: %s)", bop_error_last());
	expect_nothing_stored(c, "fail-stopped");
	bop_manifest_free(m);
	free(cfg);
}

/* A damaged backup restored with clean into a database holding data: all or nothing. */
static void test_damaged_restore(const cat_env_t *c)
{
	char *cfg = config("\"database\": \"src\", \"restore\": {\"database\": \"dst_custom\", \"clean\": true}");
	bop_manifest_t *m = NULL;
	char *obj;
	int ret;

	ret = engine_backup(c, "damaged", "postgres", cfg, &m);
	ok(ret == 0, "damaged: a custom backup is taken (%s)", ret ? bop_error_last() : "ok");
	if (ret) {
		free(cfg);
		return;
	}
	obj = object_path(c, m);
	ok(flip_middle_byte(obj) == 0, "damaged: one byte in the middle of the stored object flipped");
	ret = engine_restore(c, "damaged", "postgres", cfg, m);
	note_error();
	ok(ret == BOP_EINTEGRITY && strstr(bop_error_last(), "corrupt"),
		"damaged: the restore fails with an integrity error (%s)", bop_error_last());
	same_as_source("dst_custom", "damaged restore with --clean into a populated database");
	bop_manifest_free(m);
	free(obj);
	free(cfg);
}

/* A truncated plain backup restored into a fresh database leaves it empty. */
static void test_truncated_plain_restore(const cat_env_t *c)
{
	char *cfg = config("\"database\": \"src\", \"format\": \"plain\", \"restore\": {\"database\": \"dst_trunc\"}");
	bop_manifest_t *m = NULL;
	char *obj, *tables;
	struct stat st;
	int ret;

	ret = engine_backup(c, "truncated", "postgres", cfg, &m);
	ok(ret == 0 && sql_ok("postgres", "CREATE DATABASE dst_trunc"),
		"truncated: a plain backup and a fresh database");
	if (ret) {
		free(cfg);
		return;
	}
	obj = object_path(c, m);
	ok(stat(obj, &st) == 0 && truncate(obj, st.st_size / 2 + 3) == 0,
		"truncated: the stored object is cut in half");
	ret = engine_restore(c, "truncated", "postgres", cfg, m);
	note_error();
	ok(ret == BOP_EINTEGRITY && strstr(bop_error_last(), "incomplete"),
		"truncated: the restore fails (%s)", bop_error_last());
	tables = sql("dst_trunc", "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')");
	ok(tables && !strcmp(tables, "0"), "truncated: the fresh database is still empty (%s tables)",
		tables ? tables : "?");
	free(tables);
	bop_manifest_free(m);
	free(obj);
	free(cfg);
}

static void test_password_file(void)
{
	char *file = xasprintf("%s/pgpass.txt", tmp);
	char *cfg = xasprintf("{\"host\": \"127.0.0.1\", \"port\": %d, \"user\": \"bop\", "
		"\"passwordFile\": \"%s\", \"database\": \"src\"}", port, file);
	bop_engine_t *e = NULL;
	int ret = -1;

	if (write_text(file, PASSWORD "\n") == 0 && bop_engine_open(&e, "postgres", cfg) == 0)
		ret = bop_engine_validate(e);
	ok(ret == 0, "passwordFile: the first line of the file is the password (%s)",
		ret ? bop_error_last() : "ok");
	bop_engine_free(e);
	free(cfg);
	free(file);
}

/* pg_dumpall: every database with the roles, or the roles alone. */
static void test_dumpall(const cat_env_t *c)
{
	char *cfg = config("\"allDatabases\": true");
	membuf_t b;
	int ret;

	ret = engine_backup_text(c, "all", "postgres", cfg, &b);
	ok(ret == 0 && b.data && strstr(b.data, "CREATE ROLE bop;") && strstr(b.data, "\\connect src") &&
		strstr(b.data, "CREATE TABLE shop.orders"),
		"allDatabases: pg_dumpall holds the roles and every database (%s)",
		ret ? bop_error_last() : "ok");
	free(b.data);
	free(cfg);
	cfg = config("\"globals\": true");
	ret = engine_backup_text(c, "globals", "postgres", cfg, &b);
	ok(ret == 0 && b.data && strstr(b.data, "CREATE ROLE bop;") && !strstr(b.data, "\\connect src"),
		"globals: pg_dumpall --globals-only holds the roles and no database (%s)",
		ret ? bop_error_last() : "ok");
	free(b.data);
	free(cfg);
}

/* ---- the row check ---- */

/* Counts with a fresh engine of `cfg`; the engine's result. */
static int count_rows(const char *cfg, int64_t *tables, int64_t *rows)
{
	bop_engine_t *e = NULL;
	int ret = bop_engine_open(&e, "postgres", cfg);

	if (ret == 0)
		ret = bop_engine_count_rows(e, tables, rows);
	if (ret < 0)
		note_error();
	bop_engine_free(e);
	return ret;
}

/* A psql that is not the newest: it fails the way a 9.6 client fails against a server
 * that wants SCRAM. */
static void fake_old_psql(const char *root, const char *version)
{
	char *dir = xasprintf("%s/usr/lib/postgresql/%s/bin", root, version);
	char *cmd = xasprintf("mkdir -p '%s'", dir), *path = xasprintf("%s/psql", dir);
	char *text = xasprintf("#!/bin/sh\necho 'psql: error: SCRAM authentication requires "
		"libpq version 10 or above (the PostgreSQL %s client of this test)' >&2\nexit 2\n",
		version);

	if (system(cmd) != 0 || write_text(path, text) != 0 || chmod(path, 0755) != 0)
		diag("cannot write %s", path);
	free(text);
	free(path);
	free(cmd);
	free(dir);
}

/* The engine counts the tables and rows of the database its restore fills (the row check
 * of a verification), with the newest client: /usr/lib/postgresql/15/bin/psql before
 * .../10/ and .../9.6/ when none is in PATH (the runner's own lookup picked 9.6). */
static void test_count_rows(void)
{
	const char *saved_glob = bop__postgres_tool_glob;
	char *saved_path = strdup(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
	char *root = xasprintf("%s/root", tmp), *empty = xasprintf("%s/empty-path", tmp);
	char *glob = xasprintf("%s/usr/lib/postgresql/*/bin", root), *real, *cmd, *cfg;
	int64_t tables = -1, rows = -1;
	int ret;

	if (!ok(sql_ok("postgres", "CREATE DATABASE counted") && sql_ok("counted",
			"CREATE TABLE a (i int); INSERT INTO a SELECT generate_series(1, 3);"
			"CREATE SCHEMA s; CREATE TABLE s.b (i int); INSERT INTO s.b SELECT generate_series(1, 4);"
			"CREATE TABLE p (i int) PARTITION BY RANGE (i);"
			"CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100);"
			"INSERT INTO p VALUES (1), (2);"),
			"rows: a database with 3 tables (one a partition) and 9 rows")) {
		free(saved_path);
		free(root);
		free(empty);
		free(glob);
		return;
	}
	cfg = config("\"database\": \"src\", \"restore\": {\"database\": \"counted\"}");
	ret = count_rows(cfg, &tables, &rows);
	ok(ret == 0 && tables == 3 && rows == 9,
		"rows: counted in restore.database: 3 tables, 9 rows (got %lld, %lld: %s)",
		(long long)tables, (long long)rows, ret ? bop_error_last() : "ok");

	/* Clients of 9.6, 10 and 15 in the Debian layout, none in PATH. */
	real = run_output("ls -d /usr/lib/postgresql/*/bin/psql | sort -V | tail -n 1");
	fake_old_psql(root, "9.6");
	fake_old_psql(root, "10");
	cmd = xasprintf("mkdir -p '%s/usr/lib/postgresql/15/bin' '%s' && "
		"ln -s '%s' '%s/usr/lib/postgresql/15/bin/psql'", root, empty, real ? real : "/nonexistent",
		root);
	if (!real || system(cmd) != 0)
		diag("cannot link %s as the 15 client", real ? real : "(no psql found)");
	bop__postgres_tool_glob = glob;
	setenv("PATH", empty, 1);
	tables = rows = -1;
	ret = count_rows(cfg, &tables, &rows);
	ok(ret == 0 && tables == 3 && rows == 9,
		"rows: with the 9.6, 10 and 15 clients installed and none in PATH, the newest (15) "
		"counts (got %lld, %lld: %s)", (long long)tables, (long long)rows,
		ret ? bop_error_last() : "ok");
	setenv("PATH", saved_path, 1);
	bop__postgres_tool_glob = saved_glob;

	free(cfg);
	cfg = config("\"database\": \"nosuch\"");
	ret = count_rows(cfg, &tables, &rows);
	ok(ret < 0 && strstr(bop_error_last(), "counting the rows of nosuch") &&
		strstr(bop_error_last(), "nosuch\" does not exist") && tables == -1 && rows == -1,
		"rows: a database that does not exist fails the count, saying so (%s)",
		bop_error_last());
	free(cfg);
	cfg = config("\"allDatabases\": true");
	ok(count_rows(cfg, &tables, &rows) == BOP_ENOTSUPPORTED &&
		strstr(bop_error_last(), "needs one scratch database"),
		"rows: allDatabases has no one database to count in: BOP_ENOTSUPPORTED");
	free(cfg);
	free(cmd);
	free(real);
	free(glob);
	free(empty);
	free(root);
	free(saved_path);
}

static bool tools_present(void)
{
	char *found = run_output("ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null || command -v initdb");

	if (!found || !*found) {
		free(found);
		return false;
	}
	free(found);
	found = run_output("command -v pg_dump && command -v pg_restore && command -v psql");
	free(found);
	return found != NULL;
}

int main(void)
{
	const char *root = getenv("BOP_SOURCE_ROOT");
	cat_env_t c = { 0 };
	char *cmd;
	int status;

	if (!root)
		skip_all("BOP_SOURCE_ROOT is not set (run through meson test)");
	if (!tools_present())
		skip_all("PostgreSQL is not installed (apt-get install postgresql)");
	tmp = xasprintf("%s/bop-pg-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmp) || chmod(tmp, 0711) < 0)
		skip_all("cannot create a temporary directory");
	cluster = xasprintf("%s/pg", tmp);
	script = xasprintf("%s/tests/env/pg-local.sh", root);
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	log_capture_start();

	setenv("PG_LOCAL_USER", "bop", 1);
	setenv("PG_LOCAL_PASSWORD", PASSWORD, 1);
	cmd = xasprintf("sh '%s' start '%s' >&2", script, cluster);
	status = system(cmd);
	free(cmd);
	unsetenv("PG_LOCAL_PASSWORD");
	if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
		skip_all("the PostgreSQL server binaries are missing");
	if (status != 0)
		skip_all("cannot start a PostgreSQL cluster (see stderr)");
	cluster_started = true;
	cmd = xasprintf(". '%s/env' && echo $PG_PORT", cluster);
	{
		char *p = run_output(cmd);

		port = p ? atoi(p) : 0;
		free(p);
	}
	free(cmd);
	{
		char *v = run_output("psql --version");

		diag("client: %s", v ? v : "?");
		free(v);
	}
	if (!ok(port > 0 && sql_ok("postgres", "CREATE DATABASE src") && sql_ok("src", populate),
			"a source database with schemas, unicode, bytea, numeric, json, arrays, sequences, views, functions, triggers and a 5 MB value")) {
		return done_testing();
	}
	{
		char *v = sql("postgres", "SELECT version()");

		diag("server: %s", v ? v : "?");
		free(v);
	}
	if (cat_env_init(&c, tmp) < 0 || build_fingerprint_query() < 0)
		return done_testing();

	test_config();
	round_trip(&c, "custom", "dst_custom");
	test_uncompressed_stream(&c);
	test_old_compressed_backup(&c);
	round_trip(&c, "plain", "dst_plain");
	restored_database_works("dst_plain");
	test_password_file();
	test_dumpall(&c);
	test_wrong_password(&c);
	test_timeout(&c);
	test_killed_dump(&c);
	test_damaged_restore(&c);
	test_truncated_plain_restore(&c);
	test_count_rows();
	test_server_stopped(&c);

	ok(!log_contains(PASSWORD), "secrets: the password never appears in the log");
	ok(!errors_seen || !strstr(errors_seen, PASSWORD),
		"secrets: the password never appears in error messages");
	bop_log_set_callback(NULL, NULL);
	cat_env_free(&c);
	free(fingerprint_query);
	free(errors_seen);
	free(captured.text);
	free(script);
	free(cluster);
	cleanup();
	free(tmp);
	tmp = NULL;
	return done_testing();
}
