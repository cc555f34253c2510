/*
 * The "postgres" engine: pg_dump (custom or plain format) or pg_dumpall to stdout, and
 * pg_restore or psql reading the stream back, in one transaction where PostgreSQL allows.
 *
 *   {"host": "db", "port": 5432, "database": "app", "user": "backup",
 *    "password": "..." | "passwordFile": "/run/secrets/pg", "sslMode": "verify-full",
 *    "format": "custom" | "plain", "dumpCompression": 0, "extraArgs": ["--exclude-table=log"],
 *    "restore": {"database": "app_restored", "clean": false, "create": false,
 *                "singleTransaction": true, "noOwner": false, "extraArgs": []},
 *    "timeoutSeconds": 3600, "binDir": "/usr/lib/postgresql/15/bin"}
 *
 * What is dumped:
 *   "database": "x"          pg_dump of that database (custom format by default);
 *   "allDatabases": true     pg_dumpall: every database plus roles and tablespaces (plain SQL);
 *   "globals": true          (without a database) pg_dumpall --globals-only: roles and
 *                            tablespaces only. Combined with "database" it is refused: take
 *                            the roles with a second schedule, so each backup stays
 *                            restorable on its own in one transaction.
 *
 * Restore: custom format through `pg_restore --exit-on-error --single-transaction -d DB`
 * (with "create", pg_restore creates the database itself, which PostgreSQL cannot do in a
 * transaction, so singleTransaction is then off); plain format through
 * `psql -X -q -v ON_ERROR_STOP=1 --single-transaction -d DB`. pg_dumpall output creates
 * databases, which cannot happen in a transaction: it is restored statement by statement
 * and stops at the first error.
 *
 * The password reaches the tools only through PGPASSWORD in their environment, never
 * their arguments, and is registered for redaction. -w keeps them from ever prompting.
 */
#include "engine/dbclient.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_PORT 5432
#define MAINTENANCE_DB "postgres"

/* Where Debian installs each major version's client tools, searched after PATH, newest
 * version first; tests point it at a layout of their own. */
const char *bop__postgres_tool_glob = "/usr/lib/postgresql/*/bin";

typedef enum pg_mode {
	PG_MODE_DATABASE,       /* pg_dump of one database */
	PG_MODE_ALL,            /* pg_dumpall */
	PG_MODE_GLOBALS,        /* pg_dumpall --globals-only */
} pg_mode_t;

typedef struct pg_restore_conf {
	char *database;
	bool clean;
	bool create;
	bool single_transaction;
	bool single_transaction_set;
	bool no_owner;
	char **extra_args;
} pg_restore_conf_t;

typedef struct pg_engine {
	bop_engine_t base;
	bop__db_settings_t db;
	char *ssl_mode;
	bool plain;
	bool format_set;
	int dump_compression;   /* pg_dump --compress for the custom format; 0 by default */
	bool globals;
	pg_restore_conf_t restore;
	pg_mode_t mode;
	char *env[3];           /* PGPASSWORD, PGSSLMODE; NULL-terminated */
	char *server;           /* for messages: "db:5432" */
} pg_engine_t;

static const char *const known_fields =
	"host, port, database, allDatabases, user, password, passwordFile, sslMode, format, "
	"globals, dumpCompression, extraArgs, restore, timeoutSeconds, binDir";
static const char *const known_restore_fields =
	"database, clean, create, singleTransaction, noOwner, extraArgs";

/* ---- config ---- */

static int parse_format(pg_engine_t *e, json_object *val)
{
	const char *s;

	if (!json_object_is_type(val, json_type_string))
		return bop__error(BOP_EINVAL, "\"format\" must be \"custom\" or \"plain\"");
	s = json_object_get_string(val);
	if (strcmp(s, "custom") && strcmp(s, "plain"))
		return bop__error(BOP_EINVAL, "\"format\" must be \"custom\" or \"plain\", not \"%s\"", s);
	e->plain = !strcmp(s, "plain");
	e->format_set = true;
	return 0;
}

/* pg_dump compresses a custom-format dump with gzip by default, single-threaded, and the
 * pipeline would then compress the gzip output again: slower and larger than compressing
 * the raw dump once. So the dump is uncompressed unless the user asks for a level
 * (sensible only with the pipeline's compression off). */
static int parse_dump_compression(pg_engine_t *e, json_object *val)
{
	int64_t level;

	if (!json_object_is_type(val, json_type_int))
		return bop__error(BOP_EINVAL, "\"dumpCompression\" must be an integer from 0 to 9");
	level = json_object_get_int64(val);
	if (level < 0 || level > 9)
		return bop__error(BOP_EINVAL, "\"dumpCompression\" must be from 0 to 9, not %lld",
			(long long)level);
	e->dump_compression = (int)level;
	return 0;
}

static int parse_restore_field(void *ud, const char *key, json_object *val)
{
	pg_restore_conf_t *r = ud;

	if (!strcmp(key, "database"))
		return bop__db_get_string(val, "restore.database", &r->database);
	if (!strcmp(key, "clean"))
		return bop__db_get_bool(val, "restore.clean", &r->clean);
	if (!strcmp(key, "create"))
		return bop__db_get_bool(val, "restore.create", &r->create);
	if (!strcmp(key, "noOwner"))
		return bop__db_get_bool(val, "restore.noOwner", &r->no_owner);
	if (!strcmp(key, "extraArgs"))
		return bop__db_get_strv(val, "restore.extraArgs", &r->extra_args);
	if (!strcmp(key, "singleTransaction")) {
		r->single_transaction_set = true;
		return bop__db_get_bool(val, "restore.singleTransaction", &r->single_transaction);
	}
	return bop__engine_unknown_field("restore", key, known_restore_fields);
}

static int parse_field(void *ud, const char *key, json_object *val)
{
	pg_engine_t *e = ud;
	int ret;

	if (bop__db_settings_field(&e->db, key, val, &ret) ||
			bop__db_dump_field(&e->db, key, val, &ret))
		return ret;
	if (!strcmp(key, "sslMode"))
		return bop__db_get_ssl_mode(val, key, &e->ssl_mode);
	if (!strcmp(key, "format"))
		return parse_format(e, val);
	if (!strcmp(key, "dumpCompression"))
		return parse_dump_compression(e, val);
	if (!strcmp(key, "globals"))
		return bop__db_get_bool(val, key, &e->globals);
	if (!strcmp(key, "restore"))
		return bop__engine_config_object(val, key, "{\"database\": \"app_restored\"}",
			parse_restore_field, &e->restore);
	return bop__engine_unknown_field(NULL, key, known_fields);
}

static int check_mode(pg_engine_t *e)
{
	if (e->db.database && e->db.all_databases)
		return bop__error(BOP_EINVAL, "\"database\" and \"allDatabases\" exclude each other");
	if (e->globals && e->db.database)
		return bop__error(BOP_EINVAL, "\"globals\" cannot be combined with \"database\": back up roles and tablespaces with a second configuration ({\"globals\": true} without a database) or use \"allDatabases\", which includes them");
	if (e->db.database)
		e->mode = PG_MODE_DATABASE;
	else if (e->db.all_databases)
		e->mode = PG_MODE_ALL;
	else if (e->globals)
		e->mode = PG_MODE_GLOBALS;
	else
		return bop__error(BOP_EINVAL, "\"database\" is required (or set \"allDatabases\": true, or \"globals\": true for roles and tablespaces only)");
	if (e->mode != PG_MODE_DATABASE) {
		if (e->format_set && !e->plain)
			return bop__error(BOP_EINVAL, "\"format\": \"custom\" needs a single \"database\"; pg_dumpall (allDatabases, globals) writes plain SQL");
		e->plain = true;
	}
	if (e->plain && e->dump_compression)
		return bop__error(BOP_EINVAL, "\"dumpCompression\" applies to the custom format only: plain SQL is restored by psql, which reads no compressed input");
	return 0;
}

static int check_restore(pg_engine_t *e)
{
	pg_restore_conf_t *r = &e->restore;

	if (e->plain && (r->clean || r->create))
		return bop__error(BOP_EINVAL, "\"restore.clean\" and \"restore.create\" apply to the custom format; for plain SQL add \"--clean\" or \"--create\" to \"extraArgs\" of the dump");
	if (e->plain && r->no_owner)
		return bop__error(BOP_EINVAL, "\"restore.noOwner\" applies to the custom format; for plain SQL add \"--no-owner\" to \"extraArgs\" of the dump");
	if (r->create && r->single_transaction_set && r->single_transaction)
		return bop__error(BOP_EINVAL, "\"restore.create\" cannot be used with \"restore.singleTransaction\": PostgreSQL cannot create a database inside a transaction");
	if (r->create)
		r->single_transaction = false;
	return 0;
}

static int set_env(pg_engine_t *e)
{
	size_t n = 0;
	int ret;

	if ((ret = bop__db_settings_load_password(&e->db)) < 0)
		return ret;
	if (e->db.password && !(e->env[n++] = bop__sprintf("PGPASSWORD=%s", e->db.password)))
		return BOP_ENOMEM;
	if (e->ssl_mode && !(e->env[n++] = bop__sprintf("PGSSLMODE=%s", e->ssl_mode)))
		return BOP_ENOMEM;
	return 0;
}

/* ---- commands ---- */

static void add_connection(bop__db_argv_t *a, const pg_engine_t *e)
{
	if (e->db.host) {
		bop__db_argv_add(a, "-h");
		bop__db_argv_add(a, e->db.host);
	}
	bop__db_argv_addf(a, "--port=%d", e->db.port);
	if (e->db.user) {
		bop__db_argv_add(a, "-U");
		bop__db_argv_add(a, e->db.user);
	}
	bop__db_argv_add(a, "--no-password");
}

static void add_dbname(bop__db_argv_t *a, const char *db)
{
	bop__db_argv_add(a, "-d");
	bop__db_argv_add(a, db);
}

static void command_options(const pg_engine_t *e, const bop__db_argv_t *a,
	bop_command_options_t *opts)
{
	bop_command_options_init(opts, BOP_COMMAND_OPTIONS_VERSION);
	opts->argv = (const char *const *)a->v;
	opts->env = (const char *const *)e->env;
	opts->timeout_ms = e->db.timeout_ms;
}

static const char *backup_tool(const pg_engine_t *e)
{
	return e->mode == PG_MODE_DATABASE ? "pg_dump" : "pg_dumpall";
}

static const char *restore_tool(const pg_engine_t *e)
{
	return e->plain ? "psql" : "pg_restore";
}

static int find(const pg_engine_t *e, const char *name, char **path)
{
	const char *names[] = { name, NULL };

	return bop__db_find_tool(e->db.bin_dir, names, bop__postgres_tool_glob, path);
}

static int build_backup_argv(const pg_engine_t *e, bop__db_argv_t *a)
{
	char *tool = NULL;
	int ret;

	if ((ret = find(e, backup_tool(e), &tool)) < 0)
		return ret;
	bop__db_argv_add(a, tool);
	free(tool);
	if (e->mode == PG_MODE_DATABASE)
		bop__db_argv_add(a, e->plain ? "--format=plain" : "--format=custom");
	if (e->mode == PG_MODE_DATABASE && !e->plain)
		bop__db_argv_addf(a, "--compress=%d", e->dump_compression);
	if (e->mode == PG_MODE_GLOBALS)
		bop__db_argv_add(a, "--globals-only");
	add_connection(a, e);
	bop__db_argv_add_all(a, e->db.extra_args);
	if (e->mode == PG_MODE_DATABASE)
		add_dbname(a, e->db.database);
	return a->err;
}

static const char *restore_database(const pg_engine_t *e)
{
	if (e->restore.create || e->mode != PG_MODE_DATABASE)
		return e->restore.database ? e->restore.database : MAINTENANCE_DB;
	return e->restore.database ? e->restore.database : e->db.database;
}

/* Whether a failed restore leaves the target as it was: it ran in one transaction. */
static bool restore_is_atomic(const pg_engine_t *e)
{
	return e->restore.single_transaction && e->mode == PG_MODE_DATABASE;
}

static int build_restore_argv(const pg_engine_t *e, bop__db_argv_t *a)
{
	const pg_restore_conf_t *r = &e->restore;
	bool single = restore_is_atomic(e);
	char *tool = NULL;
	int ret;

	if ((ret = find(e, restore_tool(e), &tool)) < 0)
		return ret;
	bop__db_argv_add(a, tool);
	free(tool);
	if (e->plain) {
		bop__db_argv_add(a, "-X");
		bop__db_argv_add(a, "-q");
		bop__db_argv_add(a, "-v");
		bop__db_argv_add(a, "ON_ERROR_STOP=1");
	} else {
		bop__db_argv_add(a, "--exit-on-error");
		if (r->clean) {
			bop__db_argv_add(a, "--clean");
			bop__db_argv_add(a, "--if-exists");
		}
		if (r->create)
			bop__db_argv_add(a, "--create");
		if (r->no_owner)
			bop__db_argv_add(a, "--no-owner");
	}
	if (single)
		bop__db_argv_add(a, "--single-transaction");
	add_connection(a, e);
	bop__db_argv_add_all(a, r->extra_args);
	add_dbname(a, restore_database(e));
	if (e->plain) {
		bop__db_argv_add(a, "-f");
		bop__db_argv_add(a, "-");
	}
	return a->err;
}

/* ---- validate ---- */

/* The major version in "pg_dump (PostgreSQL) 15.18 (Debian ...)": 15 (9.6 gives 9). */
static long client_major(const char *version_text)
{
	const char *p = strchr(version_text, ')');

	if (!p)
		return -1;
	p += strspn(p, ") ");
	if (*p < '0' || *p > '9')
		return -1;
	return strtol(p, NULL, 10);
}

static int client_version(const pg_engine_t *e, long *major)
{
	bop__db_argv_t a = { 0 };
	bop_command_options_t opts;
	char *tool = NULL, *out = NULL;
	int ret;

	if ((ret = find(e, backup_tool(e), &tool)) < 0)
		return ret;
	bop__db_argv_add(&a, tool);
	bop__db_argv_add(&a, "--version");
	ret = a.err;
	command_options(e, &a, &opts);
	if (ret == 0)
		ret = bop__db_run_capture(&opts, NULL, &out);
	if (ret == 0 && (*major = client_major(out)) <= 0)
		ret = bop__error(BOP_ERROR, "cannot tell the version of %s from \"%.80s\"", tool, out);
	free(out);
	free(tool);
	bop__db_argv_free(&a);
	return ret;
}

static int server_version(const pg_engine_t *e, long *num)
{
	bop__db_argv_t a = { 0 };
	bop_command_options_t opts;
	char *tool = NULL, *out = NULL, *end = NULL;
	int ret;

	if ((ret = find(e, "psql", &tool)) < 0)
		return ret;
	bop__db_argv_add(&a, tool);
	bop__db_argv_add(&a, "-XAt");
	add_connection(&a, e);
	add_dbname(&a, e->mode == PG_MODE_DATABASE ? e->db.database : MAINTENANCE_DB);
	bop__db_argv_add(&a, "-c");
	bop__db_argv_add(&a, "SHOW server_version_num");
	ret = a.err;
	command_options(e, &a, &opts);
	if (ret == 0 && (ret = bop__db_run_capture(&opts, e->server, &out)) < 0)
		bop__error_wrap("cannot connect to the PostgreSQL server");
	if (ret == 0) {
		*num = strtol(out, &end, 10);
		if (end == out || *num <= 0)
			ret = bop__error(BOP_ERROR, "the server answered \"%.40s\" when asked its version", out);
	}
	free(out);
	free(tool);
	bop__db_argv_free(&a);
	return ret;
}

static int pg_validate(bop_engine_t *base)
{
	pg_engine_t *e = (pg_engine_t *)base;
	long client = 0, server = 0, server_major;
	char *tool = NULL;
	int ret;

	if ((ret = find(e, restore_tool(e), &tool)) < 0)
		return ret;
	free(tool);
	if ((ret = client_version(e, &client)) < 0 || (ret = server_version(e, &server)) < 0)
		return ret;
	/* server_version_num: 150018 is 15.18; 90624 is 9.6.24 (older than any client 10+). */
	server_major = server / 10000;
	bop__log(BOP_LOG_DEBUG, "postgres", "%s major version %ld, server version %ld",
		backup_tool(e), client, server);
	if (server_major > client)
		return bop__error(BOP_ENOTSUPPORTED, "%s %ld cannot dump a PostgreSQL %ld server (%s:%d): install the PostgreSQL %ld client tools (Debian: postgresql-client-%ld) and set \"binDir\" to their directory if needed",
			backup_tool(e), client, server_major, e->db.host ? e->db.host : "local socket", e->db.port,
			server_major, server_major);
	return 0;
}

/* ---- backup and restore ---- */

static int pg_backup(bop_engine_t *base, bop_source_t **out)
{
	pg_engine_t *e = (pg_engine_t *)base;
	bop__db_argv_t a = { 0 };
	bop_command_options_t opts;
	int ret;

	ret = build_backup_argv(e, &a);
	if (ret == 0) {
		command_options(e, &a, &opts);
		ret = bop__db_source_new(out, &opts, e->server, NULL, NULL);
	}
	bop__db_argv_free(&a);
	return ret;
}

static int pg_restore(bop_engine_t *base, bop_sink_t **out)
{
	pg_engine_t *e = (pg_engine_t *)base;
	bop__db_argv_t a = { 0 };
	bop_command_options_t opts;
	char *note = NULL;
	int ret;

	if (!restore_is_atomic(e) && !(note = bop__sprintf("the restore was not one transaction, "
			"so the target database %s was modified and may be partly restored%s",
			restore_database(e), e->restore.clean ?
			" or empty (restore.clean dropped its objects first)" : "")))
		return BOP_ENOMEM;
	ret = build_restore_argv(e, &a);
	if (ret == 0) {
		command_options(e, &a, &opts);
		ret = bop__db_sink_new(out, &opts, e->server, note, NULL, NULL);
	}
	free(note);
	bop__db_argv_free(&a);
	return ret;
}

/* ---- the row check ---- */

/* Every ordinary table (partitions one by one, not their parents) outside the system
 * schemas, counted exactly: "tables|rows". */
static const char count_query[] =
	"SELECT count(*), coalesce(sum((xpath('/row/n/text()', query_to_xml("
	"format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')))"
	"[1]::text::bigint), 0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
	"WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
	"AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

/* The database a restore fills: with "create", pg_restore creates the dump's database
 * under its own name (restore.database is then only where it connects first). */
static const char *restored_database(const pg_engine_t *e)
{
	if (e->restore.create || !e->restore.database)
		return e->db.database;
	return e->restore.database;
}

static int pg_count_rows(bop_engine_t *base, int64_t *tables, int64_t *rows)
{
	pg_engine_t *e = (pg_engine_t *)base;
	bop__db_argv_t a = { 0 };
	bop_command_options_t opts;
	char *tool = NULL, *out = NULL;
	long long t, r;
	int ret;

	if (e->mode != PG_MODE_DATABASE)
		return bop__error(BOP_ENOTSUPPORTED, "the row check needs one scratch database "
			"(\"database\" or \"restore.database\"), not allDatabases or globals");
	if (!tables)
		return 0;
	if ((ret = find(e, "psql", &tool)) < 0)
		return ret;
	bop__db_argv_add(&a, tool);
	bop__db_argv_add(&a, "-X");
	bop__db_argv_add(&a, "-A");
	bop__db_argv_add(&a, "-t");
	bop__db_argv_add(&a, "-q");
	bop__db_argv_add(&a, "-v");
	bop__db_argv_add(&a, "ON_ERROR_STOP=1");
	add_connection(&a, e);
	add_dbname(&a, restored_database(e));
	bop__db_argv_add(&a, "-c");
	bop__db_argv_add(&a, count_query);
	ret = a.err;
	command_options(e, &a, &opts);
	if (ret == 0)
		ret = bop__db_run_query(&opts, e->server, &out);
	if (ret == 0 && (sscanf(out, "%lld|%lld", &t, &r) != 2 || t < 0 || r < 0))
		ret = bop__error(BOP_EFORMAT, "psql answered the row count with \"%.80s\"", out);
	if (ret == 0) {
		*tables = t;
		*rows = r;
	} else {
		bop__error_wrap("counting the rows of %s", restored_database(e));
	}
	free(out);
	free(tool);
	bop__db_argv_free(&a);
	return ret;
}

/* clean without one transaction: the objects are dropped first, and a restore that fails
 * later leaves them dropped. */
static int pg_warnings(bop_engine_t *base, bop_engine_warning_cb cb, void *payload)
{
	pg_engine_t *e = (pg_engine_t *)base;

	if (e->restore.clean && !restore_is_atomic(e))
		cb("restore", "clean: true with singleTransaction: false cannot roll back: a "
			"restore that fails (corrupt data, a full disk) leaves the target database "
			"partly restored or empty", payload);
	return 0;
}

static void pg_free(bop_engine_t *base)
{
	pg_engine_t *e = (pg_engine_t *)base;

	bop__db_settings_clear(&e->db);
	free(e->ssl_mode);
	free(e->restore.database);
	bop__strv_free(e->restore.extra_args);
	free(e->server);
	for (size_t i = 0; i < BOP_ARRAY_SIZE(e->env); i++)
		bop__free_wiped(e->env[i]);
	free(e);
}

static int pg_defaults(bop_engine_t *base)
{
	pg_engine_t *e = (pg_engine_t *)base;

	e->db.port = DEFAULT_PORT;
	e->restore.single_transaction = true;
	return 0;
}

static int pg_check(bop_engine_t *base)
{
	pg_engine_t *e = (pg_engine_t *)base;
	int ret;

	if ((ret = check_mode(e)) < 0 || (ret = check_restore(e)) < 0 || (ret = set_env(e)) < 0)
		return ret;
	e->server = e->db.host ? bop__sprintf("%s:%d", e->db.host, e->db.port)
		: bop__sprintf("on the local socket, port %d", e->db.port);
	return e->server ? 0 : BOP_ENOMEM;
}

const bop__engine_kind_t bop__engine_postgres_kind = {
	.ops = BOP_ENGINE_INIT(.validate = pg_validate, .backup = pg_backup, .restore = pg_restore,
		.free = pg_free, .count_rows = pg_count_rows, .warnings = pg_warnings),
	.size = sizeof(pg_engine_t),
	.example = "{\"database\": \"app\"}",
	.capabilities = BOP_ENGINE_COUNTS_ROWS,
	.defaults = pg_defaults,
	.field = parse_field,
	.check = pg_check,
};
