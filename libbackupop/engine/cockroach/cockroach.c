/*
 * The "cockroach" engine: CockroachDB takes its own backup with BACKUP ... INTO an
 * http:// collection that backupop-runner serves for the duration of one run, and
 * restores it with RESTORE ... FROM LATEST IN the same kind of URL. The engine only
 * builds the statement and runs the SQL client with it on stdin; the files themselves
 * travel over the runner's endpoint (see backupop-engine-cockroach(7)).
 *
 *   {"host": "crdb-public.db", "port": 26257, "user": "backup", "database": "shop",
 *    "password": "..." | "passwordFile": "/run/secrets/crdb",
 *    "sslMode": "verify-full", "sslRootCert": "/certs/ca.crt",
 *    "client": ["cockroach", "sql"], "backupOptions": ["revision_history"],
 *    "restore": {"database": "shop", "newDatabaseName": "shop_restored",
 *                "options": ["skip_missing_foreign_keys"]},
 *    "timeoutSeconds": 3600}
 *
 * Without "database" the whole cluster is backed up (BACKUP INTO) and restored (RESTORE
 * FROM). "endpointURL" is not for users: backupop-runner sets it for each run to
 * "<api.advertiseURL>/v1/cockroach/<run token>".
 *
 * The client learns where and how to connect from its environment only: COCKROACH_URL
 * (cockroach sql) and PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE,
 * PGSSLROOTCERT (psql and other libpq clients); the statement goes to its stdin. Neither
 * the password nor the URL with its run token ever appears in an argument list. A client
 * named psql gets "-X -v ON_ERROR_STOP=1" so that a failed statement fails the run.
 *
 * The backup "stream" of this engine is empty: bop_engine_backup() returns a source that
 * runs the BACKUP statement when first read and ends when it succeeded. Likewise the
 * restore "sink" takes no data: committing it runs the RESTORE statement.
 */
#include "engine/dbclient.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_PORT 26257
#define DEFAULT_USER "root"

typedef struct crdb_restore_conf {
	char *database;
	char *new_name;
	char **options;
} crdb_restore_conf_t;

typedef struct crdb_engine {
	bop_engine_t base;
	bop__db_settings_t db;
	char *ssl_mode;
	char *ssl_root_cert;
	char **client;
	char **backup_options;
	crdb_restore_conf_t restore;
	char *endpoint;
	char *env[9];                   /* COCKROACH_URL and PG*; NULL-terminated */
	char *server;                   /* for messages: "host:port" */
} crdb_engine_t;

static const char *const known_fields =
	"host, port, user, database, password, passwordFile, sslMode, sslRootCert, client, "
	"backupOptions, restore, timeoutSeconds, endpointURL";
static const char *const known_restore_fields = "database, newDatabaseName, options";

/* ---- config ---- */

/* An option of a WITH clause: "revision_history", "encryption_passphrase = 'x'"... No
 * ';', newline or comment can end the statement early. */
static bool option_valid(const char *s)
{
	size_t quotes = 0;

	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
		return false;
	for (const char *p = s; *p; p++) {
		if (*p == ';' || *p == '\n' || *p == '\r' || *p == '\\' || (unsigned char)*p < 0x20)
			return false;
		if (*p == '\'')
			quotes++;
		if (p[0] == '-' && p[1] == '-' && quotes % 2 == 0)
			return false;
	}
	return quotes % 2 == 0;
}

static int get_options(json_object *val, const char *field, char ***out)
{
	int ret = bop__db_get_strv(val, field, out);

	for (size_t i = 0; ret == 0 && (*out)[i]; i++) {
		if (!option_valid((*out)[i]))
			return bop__error(BOP_EINVAL, "\"%s\"[%zu] is not a BACKUP/RESTORE option such as "
				"\"revision_history\" or \"new_db_name = 'x'\" (no ';', comments or line breaks)",
				field, i);
	}
	return ret;
}

static int parse_restore_field(void *ud, const char *key, json_object *val)
{
	crdb_restore_conf_t *r = ud;

	if (!strcmp(key, "database"))
		return bop__db_get_string(val, "restore.database", &r->database);
	if (!strcmp(key, "newDatabaseName"))
		return bop__db_get_string(val, "restore.newDatabaseName", &r->new_name);
	if (!strcmp(key, "options"))
		return get_options(val, "restore.options", &r->options);
	return bop__engine_unknown_field("restore", key, known_restore_fields);
}

static int parse_client(crdb_engine_t *e, json_object *val)
{
	int ret = bop__db_get_strv(val, "client", &e->client);

	if (ret == 0 && !e->client[0])
		return bop__error(BOP_EINVAL, "\"client\" must name a program, e.g. "
			"[\"cockroach\", \"sql\"] or [\"psql\"]");
	return ret;
}

static int parse_field(void *ud, const char *key, json_object *val)
{
	crdb_engine_t *e = ud;
	int ret;

	if (bop__db_settings_field(&e->db, key, val, &ret))
		return ret;
	if (!strcmp(key, "sslMode"))
		return bop__db_get_ssl_mode(val, key, &e->ssl_mode);
	if (!strcmp(key, "sslRootCert"))
		return bop__db_get_string(val, key, &e->ssl_root_cert);
	if (!strcmp(key, "client"))
		return parse_client(e, val);
	if (!strcmp(key, "backupOptions"))
		return get_options(val, key, &e->backup_options);
	if (!strcmp(key, "restore"))
		return bop__engine_config_object(val, key, "{\"newDatabaseName\": \"shop_restored\"}",
			parse_restore_field, &e->restore);
	if (!strcmp(key, "endpointURL"))
		return bop__db_get_string(val, key, &e->endpoint);
	return bop__engine_unknown_field(NULL, key, known_fields);
}

static int check_config(crdb_engine_t *e)
{
	int ret;

	if (!e->db.host)
		return bop__error(BOP_EINVAL, "\"host\" is required (the CockroachDB SQL address, "
			"e.g. \"cockroachdb-public.db.svc\")");
	if ((ret = bop__db_settings_load_password(&e->db)) < 0)
		return ret;
	if (e->restore.database && !e->db.database)
		return bop__error(BOP_EINVAL, "\"restore.database\" needs \"database\": a cluster "
			"backup is restored whole");
	if (e->restore.new_name && !e->db.database)
		return bop__error(BOP_EINVAL, "\"restore.newDatabaseName\" needs \"database\"");
	if (e->endpoint && strncmp(e->endpoint, "http://", 7) && strncmp(e->endpoint, "https://", 8))
		return bop__error(BOP_EINVAL, "\"endpointURL\" must be an http:// or https:// URL");
	if (e->endpoint && (strchr(e->endpoint, '\'') || strpbrk(e->endpoint, " \t\r\n\\")))
		return bop__error(BOP_EINVAL, "\"endpointURL\" contains a quote, a backslash or a space");
	return 0;
}

/* Percent-encodes the characters of `s` that may not appear in a URL's userinfo. */
static char *url_escape(const char *s)
{
	char *out = bop__calloc(strlen(s) * 3 + 1, 1), *p = out;

	for (; out && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~')
			*p++ = (char)c;
		else
			p += sprintf(p, "%%%02X", c);
	}
	return out;
}

static int add_env(crdb_engine_t *e, size_t *n, const char *name, const char *value)
{
	if (!value)
		return 0;
	e->env[*n] = bop__sprintf("%s=%s", name, value);
	return e->env[(*n)++] ? 0 : BOP_ENOMEM;
}

static int cockroach_url(const crdb_engine_t *e, char **out)
{
	char *user = url_escape(e->db.user), *pass = e->db.password ? url_escape(e->db.password) : NULL;
	char *db = url_escape(e->db.database ? e->db.database : "defaultdb");
	char *cert = e->ssl_root_cert ? url_escape(e->ssl_root_cert) : NULL;
	int ret = 0;

	if (!user || !db || (e->db.password && !pass) || (e->ssl_root_cert && !cert))
		ret = BOP_ENOMEM;
	else if (!(*out = bop__sprintf("postgresql://%s%s%s@%s:%d/%s?sslmode=%s%s%s", user,
			pass ? ":" : "", pass ? pass : "", e->db.host, e->db.port, db,
			e->ssl_mode ? e->ssl_mode : "verify-full", cert ? "&sslrootcert=" : "",
			cert ? cert : "")))
		ret = BOP_ENOMEM;
	if (pass)
		bop__wipe(pass, strlen(pass));
	free(user);
	free(pass);
	free(db);
	free(cert);
	return ret;
}

static int set_env(crdb_engine_t *e)
{
	char port[16], *url = NULL;
	size_t n = 0;
	int ret;

	if ((ret = cockroach_url(e, &url)) < 0)
		return ret;
	snprintf(port, sizeof(port), "%d", e->db.port);
	ret = add_env(e, &n, "COCKROACH_URL", url);
	if (url)
		bop__wipe(url, strlen(url));
	free(url);
	if (ret == 0)
		ret = add_env(e, &n, "PGHOST", e->db.host);
	if (ret == 0)
		ret = add_env(e, &n, "PGPORT", port);
	if (ret == 0)
		ret = add_env(e, &n, "PGUSER", e->db.user);
	if (ret == 0)
		ret = add_env(e, &n, "PGPASSWORD", e->db.password);
	if (ret == 0)
		ret = add_env(e, &n, "PGDATABASE", e->db.database ? e->db.database : "defaultdb");
	if (ret == 0)
		ret = add_env(e, &n, "PGSSLMODE", e->ssl_mode);
	if (ret == 0)
		ret = add_env(e, &n, "PGSSLROOTCERT", e->ssl_root_cert);
	return ret;
}

/* ---- statements ---- */

/* A growing string; the first failure sticks. */
typedef struct sbuf {
	char *s;
	int err;
} sbuf_t;

static void sb_add(sbuf_t *b, const char *text)
{
	char *next;

	if (b->err)
		return;
	next = bop__sprintf("%s%s", b->s ? b->s : "", text);
	free(b->s);
	b->s = next;
	if (!next)
		b->err = BOP_ENOMEM;
}

/* `q` doubled inside `s`, the whole between `q`s: an SQL identifier ("") or string (''). */
static void sb_quoted(sbuf_t *b, const char *s, char q)
{
	char one[2] = { q, 0 }, two[3] = { q, q, 0 };

	sb_add(b, one);
	for (const char *p = s; *p; p++) {
		char c[2] = { *p, 0 };

		sb_add(b, *p == q ? two : c);
	}
	sb_add(b, one);
}

static void sb_with(sbuf_t *b, char *const *options, const char *new_name)
{
	bool first = true;

	for (size_t i = 0; options && options[i]; i++) {
		sb_add(b, first ? " WITH " : ", ");
		sb_add(b, options[i]);
		first = false;
	}
	if (new_name) {
		sb_add(b, first ? " WITH new_db_name = " : ", new_db_name = ");
		sb_quoted(b, new_name, '\'');
	}
}

static int need_endpoint(const crdb_engine_t *e)
{
	if (e->endpoint)
		return 0;
	return bop__error(BOP_ENOTSUPPORTED, "the cockroach engine runs only in backupop-runner: "
		"CockroachDB sends its files to the runner's HTTP endpoint (set api.listen and "
		"api.advertiseURL in the runner's config)");
}

/* BACKUP [DATABASE "x"] INTO '<endpoint>' [WITH ...]; */
static int backup_statement(const crdb_engine_t *e, char **out)
{
	sbuf_t b = { NULL, 0 };

	sb_add(&b, "BACKUP ");
	if (e->db.database) {
		sb_add(&b, "DATABASE ");
		sb_quoted(&b, e->db.database, '"');
		sb_add(&b, " ");
	}
	sb_add(&b, "INTO ");
	sb_quoted(&b, e->endpoint, '\'');
	sb_with(&b, e->backup_options, NULL);
	sb_add(&b, ";\n");
	*out = b.s;
	return b.err;
}

/* RESTORE [DATABASE "x"] FROM LATEST IN '<endpoint>' [WITH ...]; */
static int restore_statement(const crdb_engine_t *e, char **out)
{
	sbuf_t b = { NULL, 0 };

	sb_add(&b, "RESTORE ");
	if (e->db.database) {
		sb_add(&b, "DATABASE ");
		sb_quoted(&b, e->restore.database ? e->restore.database : e->db.database, '"');
		sb_add(&b, " ");
	}
	sb_add(&b, "FROM LATEST IN ");
	sb_quoted(&b, e->endpoint, '\'');
	sb_with(&b, e->restore.options, e->restore.new_name);
	sb_add(&b, ";\n");
	*out = b.s;
	return b.err;
}

/* ---- the client ---- */

static bool is_psql(const char *argv0)
{
	const char *base = strrchr(argv0, '/');

	return !strcmp(base ? base + 1 : argv0, "psql");
}

static int client_argv(const crdb_engine_t *e, bop__db_argv_t *a)
{
	static char *const default_client[] = { "cockroach", "sql", NULL };
	char *const *client = e->client ? e->client : default_client;
	const char *names[] = { client[0], NULL };
	char *tool = NULL;
	int ret;

	if (strchr(client[0], '/')) {
		if (access(client[0], X_OK) != 0)
			return bop__error_errno(BOP_ENOTFOUND, errno, "the SQL client %s cannot be run",
				client[0]);
		tool = bop__strdup(client[0]);
		if (!tool)
			return BOP_ENOMEM;
	} else if ((ret = bop__db_find_tool(NULL, names, NULL, &tool)) < 0) {
		return ret;
	}
	bop__db_argv_add(a, tool);
	free(tool);
	bop__db_argv_add_all(a, client + 1);
	if (is_psql(client[0])) {
		bop__db_argv_add(a, "-X");
		bop__db_argv_add(a, "-v");
		bop__db_argv_add(a, "ON_ERROR_STOP=1");
	}
	return a->err;
}

/* Starts the client with `statement` on its stdin (not yet closed). */
static int start_client(const crdb_engine_t *e, const char *statement, bop_sink_t **out)
{
	bop__db_argv_t a = { 0 };
	bop_command_options_t opts;
	int ret;

	ret = client_argv(e, &a);
	if (ret == 0) {
		bop_command_options_init(&opts, BOP_COMMAND_OPTIONS_VERSION);
		opts.argv = (const char *const *)a.v;
		opts.env = (const char *const *)e->env;
		opts.timeout_ms = e->db.timeout_ms;
		ret = bop__db_sink_new(out, &opts, e->server, NULL, NULL, NULL);
	}
	if (ret == 0 && (ret = bop_sink_write(*out, statement, strlen(statement))) < 0) {
		bop_sink_free(*out);
		*out = NULL;
	}
	bop__db_argv_free(&a);
	return ret;
}

/* The backup source and the restore sink: the client running the statement, which is
 * all they do. The source's only "data" is running it; the sink takes no data, commit
 * runs it and abort kills the client. */
typedef struct statement {
	union {
		bop_source_t source;
		bop_sink_t sink;
	} base;                 /* first: what the caller holds */
	bop_sink_t *client;
	bool ran;               /* source: the statement ran, with this result */
	int result;
} statement_t;

/* Builds the statement with `build` and starts the client with it: *out is a zeroed
 * statement_t whose base the caller sets. `verb` and `where` are for the log line
 * ("BACKUP", "INTO"). */
static int statement_new(const crdb_engine_t *e, int (*build)(const crdb_engine_t *, char **),
	const char *verb, const char *where, statement_t **out)
{
	statement_t *s;
	char *statement = NULL;
	int ret;

	*out = NULL;
	if ((ret = need_endpoint(e)) < 0 || (ret = build(e, &statement)) < 0)
		return ret;
	s = bop__calloc(1, sizeof(*s));
	if (!s) {
		free(statement);
		return BOP_ENOMEM;
	}
	bop__log(BOP_LOG_INFO, "cockroach", "running %s%s%s %s the runner's endpoint", verb,
		e->db.database ? " DATABASE " : "", e->db.database ? e->db.database : "", where);
	ret = start_client(e, statement, &s->client);
	free(statement);
	if (ret < 0) {
		free(s);
		return ret;
	}
	*out = s;
	return 0;
}

static void statement_free(statement_t *s)
{
	bop_sink_free(s->client);
	free(s);
}

static int statement_run(statement_t *s)
{
	if (!s->ran) {
		s->ran = true;
		s->result = bop_sink_commit(s->client);
		if (s->result < 0)
			bop__error_wrap("the BACKUP statement failed");
	}
	return s->result;
}

static int statement_read(bop_source_t *base, void *buf, size_t cap, size_t *got)
{
	BOP_UNUSED(buf);
	BOP_UNUSED(cap);
	*got = 0;
	return statement_run((statement_t *)base);
}

static int statement_close(bop_source_t *base)
{
	int ret = statement_run((statement_t *)base);

	return ret < 0 ? bop__error(ret, "%s", bop_error_last()) : 0;
}

static void statement_source_free(bop_source_t *base)
{
	statement_free((statement_t *)base);
}

static int crdb_backup(bop_engine_t *base, bop_source_t **out)
{
	statement_t *s;
	int ret = statement_new((crdb_engine_t *)base, backup_statement, "BACKUP", "INTO", &s);

	if (ret < 0)
		return ret;
	s->base.source = (bop_source_t)BOP_SOURCE_INIT(.read = statement_read, .close = statement_close,
		.free = statement_source_free);
	*out = &s->base.source;
	return 0;
}

static int statement_sink_write(bop_sink_t *base, const void *buf, size_t len)
{
	BOP_UNUSED(base);
	BOP_UNUSED(buf);
	if (len == 0)
		return 0;
	return bop__error(BOP_ENOTSUPPORTED, "the cockroach engine restores from the runner's "
		"HTTP endpoint, not from a stream");
}

static int statement_sink_commit(bop_sink_t *base)
{
	int ret = bop_sink_commit(((statement_t *)base)->client);

	return ret < 0 ? bop__error_wrap("the RESTORE statement failed") : 0;
}

static void statement_sink_abort(bop_sink_t *base)
{
	bop_sink_abort(((statement_t *)base)->client);
}

static void statement_sink_free(bop_sink_t *base)
{
	statement_free((statement_t *)base);
}

static int crdb_restore(bop_engine_t *base, bop_sink_t **out)
{
	statement_t *s;
	int ret = statement_new((crdb_engine_t *)base, restore_statement, "RESTORE", "FROM", &s);

	if (ret < 0)
		return ret;
	s->base.sink = (bop_sink_t)BOP_SINK_INIT(.write = statement_sink_write,
		.commit = statement_sink_commit, .abort = statement_sink_abort, .free = statement_sink_free);
	*out = &s->base.sink;
	return 0;
}

static int crdb_validate(bop_engine_t *base)
{
	crdb_engine_t *e = (crdb_engine_t *)base;
	bop__db_argv_t a = { 0 };
	int ret = client_argv(e, &a);

	bop__db_argv_free(&a);
	return ret;
}

static void crdb_free(bop_engine_t *base)
{
	crdb_engine_t *e = (crdb_engine_t *)base;

	bop__db_settings_clear(&e->db);
	free(e->ssl_mode);
	free(e->ssl_root_cert);
	bop__strv_free(e->client);
	bop__strv_free(e->backup_options);
	free(e->restore.database);
	free(e->restore.new_name);
	bop__strv_free(e->restore.options);
	free(e->endpoint);
	for (size_t i = 0; i < BOP_ARRAY_SIZE(e->env); i++)
		bop__free_wiped(e->env[i]);
	free(e->server);
	free(e);
}

static int crdb_defaults(bop_engine_t *base)
{
	((crdb_engine_t *)base)->db.port = DEFAULT_PORT;
	return 0;
}

static int crdb_check(bop_engine_t *base)
{
	crdb_engine_t *e = (crdb_engine_t *)base;
	int ret;

	if (!e->db.user && !(e->db.user = bop__strdup(DEFAULT_USER)))
		return BOP_ENOMEM;
	if ((ret = check_config(e)) < 0 || (ret = set_env(e)) < 0)
		return ret;
	e->server = bop__sprintf("%s:%d", e->db.host, e->db.port);
	return e->server ? 0 : BOP_ENOMEM;
}

const bop__engine_kind_t bop__engine_cockroach_kind = {
	.ops = BOP_ENGINE_INIT(.validate = crdb_validate, .backup = crdb_backup,
		.restore = crdb_restore, .free = crdb_free),
	.size = sizeof(crdb_engine_t),
	.example = "{\"host\": \"cockroachdb-public\"}",
	.capabilities = BOP_ENGINE_MULTI_FILE,
	.defaults = crdb_defaults,
	.field = parse_field,
	.check = crdb_check,
};
