/*
 * The "mysql" engine (MariaDB and MySQL): mariadb-dump (or mysqldump) to stdout, and the
 * mariadb (or mysql) client reading the stream back.
 *
 *   {"host": "db", "port": 3306, "socket": "/run/mysqld/mysqld.sock",
 *    "database": "shop" | "allDatabases": true, "user": "backup",
 *    "password": "..." | "passwordFile": "/run/secrets/db", "extraArgs": [],
 *    "restore": {"database": "shop_restored", "extraArgs": []},
 *    "timeoutSeconds": 3600, "binDir": "/usr/bin"}
 *
 * The dump is consistent (--single-transaction: one InnoDB snapshot) and complete
 * (--routines --triggers --events --hex-blob, utf8mb4). A single database is dumped
 * without CREATE DATABASE/USE, so it can be restored into any database: "restore.database"
 * (default: the same name), which must exist. With "allDatabases" the dump creates and
 * selects each database itself.
 *
 * What a failed restore leaves: MariaDB and MySQL cannot roll back DDL, and the dump
 * replaces each table (DROP TABLE, CREATE TABLE, INSERTs) as it goes. When the stream
 * fails (damaged or truncated backup, canceled run), the client is killed before it sees
 * the end of its input, so the statement in flight is never completed and nothing after
 * the point of failure reaches the server; tables the backup does not contain are never
 * touched. Tables before that point have been replaced. Restore into a new, empty database
 * and switch over when it succeeded if a partial restore must never be visible.
 *
 * Credentials reach the tools only through a 0600 option file in a private 0700 directory,
 * passed as --defaults-extra-file and removed when the tool has exited.
 */
#include "engine/dbclient.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_PORT 3306

typedef struct my_engine {
	bop_engine_t base;
	bop__db_settings_t db;
	char *socket;
	char *restore_database;
	char **restore_extra_args;
	char *server;           /* for messages: "db:3306" or the socket */
} my_engine_t;

/* A credentials file that lives as long as one command. */
typedef struct my_creds {
	char *dir;
	char *path;
} my_creds_t;

static const char *const known_fields =
	"host, port, socket, database, allDatabases, user, password, passwordFile, extraArgs, "
	"restore, timeoutSeconds, binDir";

static const char *const dump_tools[] = { "mariadb-dump", "mysqldump", NULL };
static const char *const client_tools[] = { "mariadb", "mysql", NULL };

/* ---- config ---- */

static int parse_restore_field(void *ud, const char *key, json_object *val)
{
	my_engine_t *e = ud;

	if (!strcmp(key, "database"))
		return bop__db_get_string(val, "restore.database", &e->restore_database);
	if (!strcmp(key, "extraArgs"))
		return bop__db_get_strv(val, "restore.extraArgs", &e->restore_extra_args);
	return bop__engine_unknown_field("restore", key, "database, extraArgs");
}

static int parse_field(void *ud, const char *key, json_object *val)
{
	my_engine_t *e = ud;
	int ret;

	if (bop__db_settings_field(&e->db, key, val, &ret) ||
			bop__db_dump_field(&e->db, key, val, &ret))
		return ret;
	if (!strcmp(key, "socket"))
		return bop__db_get_string(val, key, &e->socket);
	if (!strcmp(key, "restore"))
		return bop__engine_config_object(val, key, "{\"database\": \"shop_restored\"}",
			parse_restore_field, e);
	return bop__engine_unknown_field(NULL, key, known_fields);
}

static int check_config(my_engine_t *e)
{
	if (e->db.database && e->db.all_databases)
		return bop__error(BOP_EINVAL, "\"database\" and \"allDatabases\" exclude each other");
	if (!e->db.database && !e->db.all_databases)
		return bop__error(BOP_EINVAL, "\"database\" is required (or set \"allDatabases\": true)");
	if (e->db.all_databases && e->restore_database)
		return bop__error(BOP_EINVAL, "\"restore.database\" needs a single \"database\": a dump of all databases recreates each one under its own name");
	if (e->socket && (e->db.host || e->db.port_set))
		return bop__error(BOP_EINVAL, "\"socket\" excludes \"host\" and \"port\"");
	return bop__db_settings_load_password(&e->db);
}

/* ---- the option file ---- */

/* `value` quoted for an option file: "...", with \ " and line ends escaped. */
static char *option_value(const char *value)
{
	char *out = bop__calloc(strlen(value) * 2 + 3, 1), *p = out;

	if (!out)
		return NULL;
	*p++ = '"';
	for (const char *s = value; *s; s++) {
		switch (*s) {
		case '\\': *p++ = '\\'; *p++ = '\\'; break;
		case '"': *p++ = '\\'; *p++ = '"'; break;
		case '\n': *p++ = '\\'; *p++ = 'n'; break;
		case '\r': *p++ = '\\'; *p++ = 'r'; break;
		case '\t': *p++ = '\\'; *p++ = 't'; break;
		default: *p++ = *s; break;
		}
	}
	*p++ = '"';
	return out;
}

static char *option_file_text(const my_engine_t *e)
{
	char *user = e->db.user ? option_value(e->db.user) : NULL;
	char *pass = e->db.password ? option_value(e->db.password) : NULL;
	char *text = NULL;

	if ((!e->db.user || user) && (!e->db.password || pass))
		text = bop__sprintf("[client]\n%s%s%s%s%s%s", user ? "user=" : "", user ? user : "",
			user ? "\n" : "", pass ? "password=" : "", pass ? pass : "", pass ? "\n" : "");
	if (pass) {
		bop__wipe(pass, strlen(pass));
		free(pass);
	}
	free(user);
	return text;
}

static void creds_free(void *payload)
{
	my_creds_t *c = payload;

	if (!c)
		return;
	bop__db_secret_file_remove(c->dir, c->path);
	free(c);
}

static int creds_new(const my_engine_t *e, my_creds_t **out)
{
	my_creds_t *c;
	char *text;
	int ret;

	*out = NULL;
	c = bop__calloc(1, sizeof(*c));
	if (!c)
		return BOP_ENOMEM;
	text = option_file_text(e);
	if (!text) {
		free(c);
		return BOP_ENOMEM;
	}
	ret = bop__db_secret_file_new("backupop-mysql", "client.cnf", text, &c->dir, &c->path);
	bop__wipe(text, strlen(text));
	free(text);
	if (ret < 0) {
		free(c);
		return ret;
	}
	*out = c;
	return 0;
}

/* ---- commands ---- */

/* tool --defaults-extra-file=F (it must come first) and the connection. */
static int start_argv(const my_engine_t *e, const char *const *tools, const my_creds_t *c,
	bop__db_argv_t *a)
{
	char *tool = NULL;
	int ret;

	if ((ret = bop__db_find_tool(e->db.bin_dir, tools, NULL, &tool)) < 0)
		return ret;
	bop__db_argv_add(a, tool);
	free(tool);
	bop__db_argv_addf(a, "--defaults-extra-file=%s", c->path);
	bop__db_argv_add(a, "--default-character-set=utf8mb4");
	if (e->socket) {
		bop__db_argv_addf(a, "--socket=%s", e->socket);
	} else {
		if (e->db.host)
			bop__db_argv_addf(a, "--host=%s", e->db.host);
		bop__db_argv_addf(a, "--port=%d", e->db.port);
	}
	return a->err;
}

static int build_backup_argv(const my_engine_t *e, const my_creds_t *c, bop__db_argv_t *a)
{
	static const char *const options[] = {
		"--single-transaction", "--routines", "--triggers", "--events", "--hex-blob", NULL,
	};
	int ret;

	if ((ret = start_argv(e, dump_tools, c, a)) < 0)
		return ret;
	bop__db_argv_add_all(a, (char *const *)options);
	bop__db_argv_add_all(a, e->db.extra_args);
	if (e->db.all_databases) {
		bop__db_argv_add(a, "--all-databases");
	} else {
		bop__db_argv_add(a, "--");
		bop__db_argv_add(a, e->db.database);
	}
	return a->err;
}

static int build_restore_argv(const my_engine_t *e, const my_creds_t *c, bop__db_argv_t *a)
{
	int ret;

	if ((ret = start_argv(e, client_tools, c, a)) < 0)
		return ret;
	bop__db_argv_add(a, "--batch");
	bop__db_argv_add_all(a, e->restore_extra_args);
	if (!e->db.all_databases)
		bop__db_argv_addf(a, "--database=%s", e->restore_database ? e->restore_database
			: e->db.database);
	return a->err;
}

static void command_options(const my_engine_t *e, const bop__db_argv_t *a,
	bop_command_options_t *opts)
{
	bop_command_options_init(opts, BOP_COMMAND_OPTIONS_VERSION);
	opts->argv = (const char *const *)a->v;
	opts->timeout_ms = e->db.timeout_ms;
}

typedef int (*build_fn)(const my_engine_t *e, const my_creds_t *c, bop__db_argv_t *a);

/* Creates the credentials file and the arguments; on failure nothing is left. */
static int prepare(const my_engine_t *e, build_fn build, my_creds_t **creds, bop__db_argv_t *a)
{
	int ret;

	if ((ret = creds_new(e, creds)) < 0)
		return ret;
	if ((ret = build(e, *creds, a)) < 0) {
		creds_free(*creds);
		*creds = NULL;
		bop__db_argv_free(a);
	}
	return ret;
}

/* ---- validate ---- */

static int build_version_argv(const my_engine_t *e, const my_creds_t *c, bop__db_argv_t *a)
{
	int ret;

	if ((ret = start_argv(e, client_tools, c, a)) < 0)
		return ret;
	bop__db_argv_add(a, "--batch");
	bop__db_argv_add(a, "--skip-column-names");
	bop__db_argv_add(a, "--execute=SELECT VERSION()");
	return a->err;
}

static int my_validate(bop_engine_t *base)
{
	my_engine_t *e = (my_engine_t *)base;
	bop__db_argv_t a = { 0 };
	bop_command_options_t opts;
	my_creds_t *creds = NULL;
	char *tool = NULL, *out = NULL;
	int ret;

	if ((ret = bop__db_find_tool(e->db.bin_dir, dump_tools, NULL, &tool)) < 0)
		return ret;
	free(tool);
	if ((ret = prepare(e, build_version_argv, &creds, &a)) < 0)
		return ret;
	command_options(e, &a, &opts);
	ret = bop__db_run_capture(&opts, e->server, &out);
	if (ret < 0)
		bop__error_wrap("cannot connect to the MySQL/MariaDB server");
	else
		bop__log(BOP_LOG_DEBUG, "mysql", "server version %.*s", (int)strcspn(out, "\n"), out);
	free(out);
	bop__db_argv_free(&a);
	creds_free(creds);
	return ret;
}

/* ---- the row check ---- */

#define COUNT_CHUNK 200         /* tables counted per client call */

static const char *restored_database(const my_engine_t *e)
{
	return e->restore_database ? e->restore_database : e->db.database;
}

/* Runs `query` in the restored database with the client; its output. */
static int run_query(const my_engine_t *e, const my_creds_t *creds, const char *query,
	char **out)
{
	bop__db_argv_t a = { 0 };
	bop_command_options_t opts;
	int ret;

	if ((ret = start_argv(e, client_tools, creds, &a)) == 0) {
		bop__db_argv_add(&a, "--batch");
		bop__db_argv_add(&a, "--raw");
		bop__db_argv_add(&a, "--skip-column-names");
		bop__db_argv_addf(&a, "--database=%s", restored_database(e));
		bop__db_argv_addf(&a, "--execute=%s", query);
		ret = a.err;
	}
	command_options(e, &a, &opts);
	if (ret == 0)
		ret = bop__db_run_query(&opts, e->server, out);
	bop__db_argv_free(&a);
	return ret;
}

/* SELECT (SELECT COUNT(*) FROM `a`)+(SELECT COUNT(*) FROM `b`)... with backticks in the
 * names doubled. */
static char *count_query(char *const *names, size_t n)
{
	size_t len = 8;
	char *query, *p;

	for (size_t i = 0; i < n; i++)
		len += 2 * strlen(names[i]) + 32;
	query = malloc(len);
	if (!query)
		return NULL;
	p = stpcpy(query, "SELECT ");
	for (size_t i = 0; i < n; i++) {
		p = stpcpy(p, i ? "+(SELECT COUNT(*) FROM `" : "(SELECT COUNT(*) FROM `");
		for (const char *c = names[i]; *c; c++) {
			if (*c == '`')
				*p++ = '`';
			*p++ = *c;
		}
		p = stpcpy(p, "`)");
	}
	return query;
}

static int count_chunk(const my_engine_t *e, const my_creds_t *creds, char *const *names,
	size_t n, long long *rows)
{
	char *query = count_query(names, n), *out = NULL;
	long long v;
	int ret = query ? run_query(e, creds, query, &out) : bop__error_oom();

	if (ret == 0 && (sscanf(out, "%lld", &v) != 1 || v < 0))
		ret = bop__error(BOP_EFORMAT, "the client answered the row count with \"%.80s\"", out);
	if (ret == 0)
		*rows += v;
	free(out);
	free(query);
	return ret;
}

/* The base tables of the database, one name per line, then their rows chunk by chunk. */
static int count_tables(const my_engine_t *e, const my_creds_t *creds, int64_t *tables,
	int64_t *rows)
{
	static const char list_query[] = "SELECT table_name FROM information_schema.tables "
		"WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1";
	char *out = NULL, **names = NULL, *save = NULL;
	size_t n = 0;
	long long sum = 0;
	int ret = run_query(e, creds, list_query, &out);

	for (char *line = ret == 0 ? strtok_r(out, "\n", &save) : NULL; line && ret == 0;
			line = strtok_r(NULL, "\n", &save)) {
		char **grown = realloc(names, (n + 1) * sizeof(*names));

		if (!grown) {
			ret = bop__error_oom();
			break;
		}
		names = grown;
		names[n++] = line;
	}
	for (size_t i = 0; ret == 0 && i < n; i += COUNT_CHUNK)
		ret = count_chunk(e, creds, names + i, n - i < COUNT_CHUNK ? n - i : COUNT_CHUNK,
			&sum);
	if (ret == 0) {
		*tables = (int64_t)n;
		*rows = sum;
	}
	free(names);
	free(out);
	return ret;
}

static int my_count_rows(bop_engine_t *base, int64_t *tables, int64_t *rows)
{
	my_engine_t *e = (my_engine_t *)base;
	my_creds_t *creds = NULL;
	int ret;

	if (e->db.all_databases)
		return bop__error(BOP_ENOTSUPPORTED, "the row check needs one scratch database "
			"(\"database\" or \"restore.database\"), not allDatabases");
	if (!tables)
		return 0;
	if ((ret = creds_new(e, &creds)) == 0)
		ret = count_tables(e, creds, tables, rows);
	if (ret < 0)
		bop__error_wrap("counting the rows of %s", restored_database(e));
	creds_free(creds);
	return ret;
}

/* ---- backup and restore ---- */

static int my_backup(bop_engine_t *base, bop_source_t **out)
{
	my_engine_t *e = (my_engine_t *)base;
	bop__db_argv_t a = { 0 };
	bop_command_options_t opts;
	my_creds_t *creds = NULL;
	int ret;

	if ((ret = prepare(e, build_backup_argv, &creds, &a)) < 0)
		return ret;
	command_options(e, &a, &opts);
	ret = bop__db_source_new(out, &opts, e->server, creds_free, creds);
	bop__db_argv_free(&a);
	return ret;
}

static int my_restore(bop_engine_t *base, bop_sink_t **out)
{
	my_engine_t *e = (my_engine_t *)base;
	bop__db_argv_t a = { 0 };
	bop_command_options_t opts;
	my_creds_t *creds = NULL;
	/* A dump runs statement by statement (DROP TABLE, CREATE, INSERT): nothing rolls a
	 * failure back. */
	char *note = e->db.all_databases ? bop__strdup("the restore was not one transaction, "
			"so the databases of the dump were modified and may be partly restored") :
		bop__sprintf("the restore was not one transaction, so the target database %s "
			"was modified and may be partly restored",
			e->restore_database ? e->restore_database : e->db.database);
	int ret = note ? prepare(e, build_restore_argv, &creds, &a) : BOP_ENOMEM;

	if (ret == 0) {
		command_options(e, &a, &opts);
		ret = bop__db_sink_new(out, &opts, e->server, note, creds_free, creds);
	}
	free(note);
	bop__db_argv_free(&a);
	return ret;
}

static void my_free(bop_engine_t *base)
{
	my_engine_t *e = (my_engine_t *)base;

	bop__db_settings_clear(&e->db);
	free(e->socket);
	free(e->restore_database);
	bop__strv_free(e->restore_extra_args);
	free(e->server);
	free(e);
}

static int my_defaults(bop_engine_t *base)
{
	((my_engine_t *)base)->db.port = DEFAULT_PORT;
	return 0;
}

static int my_check(bop_engine_t *base)
{
	my_engine_t *e = (my_engine_t *)base;
	int ret;

	if ((ret = check_config(e)) < 0)
		return ret;
	e->server = e->socket ? bop__strdup(e->socket)
		: bop__sprintf("%s:%d", e->db.host ? e->db.host : "localhost", e->db.port);
	return e->server ? 0 : BOP_ENOMEM;
}

const bop__engine_kind_t bop__engine_mysql_kind = {
	.ops = BOP_ENGINE_INIT(.validate = my_validate, .backup = my_backup, .restore = my_restore,
		.free = my_free, .count_rows = my_count_rows),
	.size = sizeof(my_engine_t),
	.example = "{\"database\": \"app\"}",
	.capabilities = BOP_ENGINE_COUNTS_ROWS,
	.defaults = my_defaults,
	.field = parse_field,
	.check = my_check,
};
