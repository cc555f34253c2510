/*
 * The row check of a verification (backupop-runner(8)): after the test restore into the
 * scratch database of verification.restore.engine, the rows of its user tables are
 * counted with the engine's own client (psql, or mariadb/mysql) and compared with
 * verification.restore.expectRows by the caller.
 *
 * Credentials are handled as the engines handle them: the postgres password reaches psql
 * only through PGPASSWORD in its environment, the mysql one only through a 0600 option
 * file in a private 0700 directory (--defaults-extra-file), removed when the client has
 * exited. Never through argv.
 */
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CAPTURE_MAX (1u << 20)
#define DEFAULT_TIMEOUT_MS (600 * 1000)
#define MYSQL_CHUNK 200         /* tables counted per client call */

typedef struct db_conn {
	bool mysql;
	char *host;
	int port;                       /* 0: the client's default */
	char *socket;
	char *user;
	char *password;
	char *ssl_mode;
	char *database;                 /* restore.database, else database */
	char *bin_dir;
	int64_t timeout_ms;
} db_conn_t;

static int rows_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int rows_error(int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return bop_error_set(code, msg);
}

static void wipe_free(char *s)
{
	if (s)
		explicit_bzero(s, strlen(s));
	free(s);
}

static void conn_clear(db_conn_t *c)
{
	free(c->host);
	free(c->socket);
	free(c->user);
	wipe_free(c->password);
	free(c->ssl_mode);
	free(c->database);
	free(c->bin_dir);
	memset(c, 0, sizeof(*c));
}

static char *get_string(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return strdup(json_object_get_string(v));
}

static bool get_true(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) &&
		json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

static int read_password_file(db_conn_t *c, const char *path)
{
	char line[4096];
	FILE *fp = fopen(path, "re");

	if (!fp)
		return rows_error(BOP_EIO, "cannot open the passwordFile %s: %s", path,
			strerror(errno));
	if (!fgets(line, sizeof(line), fp))
		line[0] = '\0';
	fclose(fp);
	line[strcspn(line, "\r\n")] = '\0';
	c->password = strdup(line);
	explicit_bzero(line, sizeof(line));
	if (!c->password)
		return BOP_ENOMEM;
	if (strlen(c->password) >= 4)
		bop_log_add_secret(c->password);
	return 0;
}

/* The connection of the scratch engine's block: where its restore went. */
static int conn_parse(db_conn_t *c, const char *engine, const char *json)
{
	json_object *o = json ? json_tokener_parse(json) : NULL, *v, *restore = NULL;
	char *password_file = NULL;
	int ret = 0;

	memset(c, 0, sizeof(*c));
	c->mysql = !strcmp(engine, "mysql");
	if (!o || !json_object_is_type(o, json_type_object)) {
		ret = rows_error(BOP_EINVAL, "the engine block is not a JSON object");
		goto out;
	}
	if (get_true(o, "allDatabases") || get_true(o, "globals")) {
		ret = rows_error(BOP_ENOTSUPPORTED, "the row check needs one scratch database "
			"(\"database\" or \"restore.database\"), not allDatabases or globals");
		goto out;
	}
	c->host = get_string(o, "host");
	c->socket = get_string(o, "socket");
	c->user = get_string(o, "user");
	c->password = get_string(o, "password");
	c->ssl_mode = get_string(o, "sslMode");
	c->bin_dir = get_string(o, "binDir");
	password_file = get_string(o, "passwordFile");
	if (json_object_object_get_ex(o, "port", &v) && json_object_is_type(v, json_type_int))
		c->port = json_object_get_int(v);
	c->timeout_ms = DEFAULT_TIMEOUT_MS;
	if (json_object_object_get_ex(o, "timeoutSeconds", &v) &&
	    json_object_is_type(v, json_type_int) && json_object_get_int64(v) > 0)
		c->timeout_ms = json_object_get_int64(v) * 1000;
	if (json_object_object_get_ex(o, "restore", &restore))
		c->database = get_string(restore, "database");
	if (!c->database)
		c->database = get_string(o, "database");
	if (!c->database)
		ret = rows_error(BOP_ENOTSUPPORTED, "the row check needs the scratch database's "
			"name (\"database\" or \"restore.database\")");
	else if (password_file && !c->password)
		ret = read_password_file(c, password_file);
out:
	free(password_file);
	json_object_put(o);
	if (ret)
		conn_clear(c);
	return ret;
}

static bool executable(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

static char *in_dir(const char *dir, const char *name)
{
	char *path;

	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return NULL;
	if (executable(path))
		return path;
	free(path);
	return NULL;
}

static char *in_path(const char *name)
{
	const char *path = getenv("PATH");
	char *copy = strdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin"), *save = NULL;
	char *found = NULL;

	for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d && !found;
	     d = strtok_r(NULL, ":", &save))
		found = in_dir(d, name);
	free(copy);
	return found;
}

static char *in_glob(const char *pattern, const char *name)
{
	glob_t g;
	char *found = NULL;

	if (glob(pattern, GLOB_ONLYDIR, NULL, &g) != 0)
		return NULL;
	/* Highest version first: "/usr/lib/postgresql/15/bin" after ".../9.6/bin"... */
	for (size_t i = g.gl_pathc; i-- > 0 && !found;)
		found = in_dir(g.gl_pathv[i], name);
	globfree(&g);
	return found;
}

/* The client: in binDir when given, else in PATH, else in `fallback` (a glob). */
static int find_client(const db_conn_t *c, const char *const *names, const char *fallback,
	char **out)
{
	*out = NULL;
	for (size_t i = 0; names[i] && !*out; i++) {
		if (c->bin_dir)
			*out = in_dir(c->bin_dir, names[i]);
		else
			*out = in_path(names[i]);
		if (!*out && !c->bin_dir && fallback)
			*out = in_glob(fallback, names[i]);
	}
	if (*out)
		return 0;
	return rows_error(BOP_ENOTFOUND, "%s not found in %s; install %s to count rows",
		names[0], c->bin_dir ? c->bin_dir : "PATH",
		c->mysql ? "mariadb-client" : "postgresql-client");
}

/* Runs the client and returns its stdout (NUL-terminated). Its stderr goes to the log,
 * and its last line into the error when it fails. */
static int capture(char *const *argv, char *const *env, int64_t timeout_ms, char **out)
{
	bop_command_options_t opts;
	bop_source_t *src = NULL;
	size_t len = 0, got;
	char *buf = malloc(CAPTURE_MAX + 1);
	int ret;

	*out = NULL;
	if (!buf)
		return BOP_ENOMEM;
	bop_command_options_init(&opts, BOP_COMMAND_OPTIONS_VERSION);
	opts.argv = (const char *const *)argv;
	opts.env = (const char *const *)env;
	opts.timeout_ms = timeout_ms;
	ret = bop_source_command_new(&src, &opts);
	while (ret == 0) {
		if (len == CAPTURE_MAX) {
			ret = rows_error(BOP_EFORMAT, "%s printed more than %u bytes", argv[0],
				CAPTURE_MAX);
			break;
		}
		ret = bop_source_read(src, buf + len, CAPTURE_MAX - len, &got);
		if (ret == 0 && got == 0)
			break;
		len += got;
	}
	if (ret == 0)
		ret = bop_source_close(src);
	bop_source_free(src);
	if (ret < 0) {
		free(buf);
		return ret;
	}
	buf[len] = '\0';
	*out = buf;
	return 0;
}

/* ---- postgres ---- */

/* Every ordinary table (partitions one by one, not their parents) outside the system
 * schemas, counted exactly: "tables|rows". */
static const char pg_count_query[] =
	"SELECT count(*), coalesce(sum((xpath('/row/n/text()', query_to_xml("
	"format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')))"
	"[1]::text::bigint), 0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
	"WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
	"AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

static int pg_count(const db_conn_t *c, rows_result_t *res)
{
	static const char *const names[] = { "psql", NULL };
	char *tool = NULL, *port = NULL, *out = NULL, *env[4] = { NULL, NULL, NULL, NULL };
	char *argv[20];
	long long tables, rows;
	int n = 0, ret, e = 0;

	if ((ret = find_client(c, names, "/usr/lib/postgresql/*/bin", &tool)) < 0)
		return ret;
	argv[n++] = tool;
	argv[n++] = (char *)"-X";
	argv[n++] = (char *)"-A";
	argv[n++] = (char *)"-t";
	argv[n++] = (char *)"-q";
	argv[n++] = (char *)"--no-password";
	argv[n++] = (char *)"-v";
	argv[n++] = (char *)"ON_ERROR_STOP=1";
	if (c->host) {
		argv[n++] = (char *)"-h";
		argv[n++] = c->host;
	}
	if (c->port > 0 && asprintf(&port, "--port=%d", c->port) > 0)
		argv[n++] = port;
	if (c->user) {
		argv[n++] = (char *)"-U";
		argv[n++] = c->user;
	}
	argv[n++] = (char *)"-d";
	argv[n++] = c->database;
	argv[n++] = (char *)"-c";
	argv[n++] = (char *)pg_count_query;
	argv[n] = NULL;
	if (c->password && asprintf(&env[e++], "PGPASSWORD=%s", c->password) < 0)
		env[--e] = NULL;
	if (c->ssl_mode && asprintf(&env[e++], "PGSSLMODE=%s", c->ssl_mode) < 0)
		env[--e] = NULL;
	ret = capture(argv, env, c->timeout_ms, &out);
	if (ret == 0 && sscanf(out, "%lld|%lld", &tables, &rows) != 2)
		ret = rows_error(BOP_EFORMAT, "psql answered the row count with '%.80s'", out);
	if (ret == 0) {
		res->tables = tables;
		res->rows = rows;
	}
	free(out);
	for (int i = 0; i < e; i++)
		wipe_free(env[i]);
	free(port);
	free(tool);
	return ret;
}

/* ---- mysql ---- */

typedef struct my_client {
	char *dir;
	char *file;
	char *tool;
	char *args[12];                 /* tool, options..., then -e QUERY DB */
	int n;
} my_client_t;

/* An option file value in double quotes, with \ " and line ends escaped. */
static void put_value(FILE *fp, const char *v)
{
	fputc('"', fp);
	for (; *v; v++) {
		switch (*v) {
		case '\\': fputs("\\\\", fp); break;
		case '"': fputs("\\\"", fp); break;
		case '\n': fputs("\\n", fp); break;
		case '\r': fputs("\\r", fp); break;
		case '\t': fputs("\\t", fp); break;
		default: fputc(*v, fp); break;
		}
	}
	fputs("\"\n", fp);
}

static int write_option_file(my_client_t *m, const db_conn_t *c)
{
	const char *tmp = getenv("TMPDIR");
	FILE *fp;
	int fd, ret = 0;

	if (asprintf(&m->dir, "%s/bop-rows.XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0) {
		m->dir = NULL;
		return BOP_ENOMEM;
	}
	if (!mkdtemp(m->dir)) {
		ret = rows_error(BOP_EIO, "cannot create a private directory in %s: %s",
			tmp && *tmp ? tmp : "/tmp", strerror(errno));
		free(m->dir);
		m->dir = NULL;
		return ret;
	}
	if (asprintf(&m->file, "%s/client.cnf", m->dir) < 0) {
		m->file = NULL;
		return BOP_ENOMEM;
	}
	fd = open(m->file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || !(fp = fdopen(fd, "w"))) {
		if (fd >= 0)
			close(fd);
		return rows_error(BOP_EIO, "cannot write %s: %s", m->file, strerror(errno));
	}
	fputs("[client]\n", fp);
	if (c->user) {
		fputs("user=", fp);
		put_value(fp, c->user);
	}
	if (c->password) {
		fputs("password=", fp);
		put_value(fp, c->password);
	}
	if (fclose(fp) != 0)
		ret = rows_error(BOP_EIO, "cannot write %s: %s", m->file, strerror(errno));
	return ret;
}

static void my_client_free(my_client_t *m)
{
	if (m->file)
		unlink(m->file);
	if (m->dir)
		rmdir(m->dir);
	for (int i = 1; i < m->n; i++)
		free(m->args[i]);
	free(m->file);
	free(m->dir);
	free(m->tool);
	memset(m, 0, sizeof(*m));
}

static int add_arg(my_client_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int add_arg(my_client_t *m, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (m->n >= (int)(sizeof(m->args) / sizeof(m->args[0])) - 1)
		return BOP_EINVAL;
	va_start(ap, fmt);
	n = vasprintf(&m->args[m->n], fmt, ap);
	va_end(ap);
	if (n < 0) {
		m->args[m->n] = NULL;
		return BOP_ENOMEM;
	}
	m->n++;
	return 0;
}

static int my_client_new(my_client_t *m, const db_conn_t *c)
{
	static const char *const names[] = { "mariadb", "mysql", NULL };
	int ret;

	memset(m, 0, sizeof(*m));
	if ((ret = find_client(c, names, NULL, &m->tool)) < 0 ||
	    (ret = write_option_file(m, c)) < 0)
		return ret;
	m->args[m->n++] = m->tool;
	/* --defaults-extra-file must come first. */
	ret = add_arg(m, "--defaults-extra-file=%s", m->file);
	if (!ret)
		ret = add_arg(m, "--default-character-set=utf8mb4");
	if (!ret && c->socket)
		ret = add_arg(m, "--socket=%s", c->socket);
	if (!ret && !c->socket && c->host)
		ret = add_arg(m, "--host=%s", c->host);
	if (!ret && !c->socket && c->port > 0)
		ret = add_arg(m, "--port=%d", c->port);
	if (!ret)
		ret = add_arg(m, "--batch");
	if (!ret)
		ret = add_arg(m, "--raw");
	if (!ret)
		ret = add_arg(m, "--skip-column-names");
	return ret;
}

static int my_query(const my_client_t *m, const db_conn_t *c, const char *query, char **out)
{
	char *argv[16];
	int n = 0;

	for (; n < m->n; n++)
		argv[n] = m->args[n];
	argv[n++] = (char *)"-e";
	argv[n++] = (char *)query;
	argv[n++] = c->database;
	argv[n] = NULL;
	return capture(argv, NULL, c->timeout_ms, out);
}

/* Appends "(SELECT COUNT(*) FROM `name`)" with backticks doubled. */
static int add_count(char **query, size_t *len, const char *name)
{
	size_t need = 40 + 2 * strlen(name);
	char *grown = realloc(*query, *len + need + 1), *p;

	if (!grown)
		return BOP_ENOMEM;
	*query = grown;
	p = grown + *len;
	p += sprintf(p, "%s(SELECT COUNT(*) FROM `", *len > 7 ? "+" : "");
	for (const char *s = name; *s; s++) {
		if (*s == '`')
			*p++ = '`';
		*p++ = *s;
	}
	p += sprintf(p, "`)");
	*len = (size_t)(p - grown);
	return 0;
}

static int my_count_chunk(const my_client_t *m, const db_conn_t *c, char **names, size_t n,
	long long *rows)
{
	char *query = strdup("SELECT "), *out = NULL;
	size_t len = 7;
	long long v;
	int ret = query ? 0 : BOP_ENOMEM;

	for (size_t i = 0; ret == 0 && i < n; i++)
		ret = add_count(&query, &len, names[i]);
	if (ret == 0)
		ret = my_query(m, c, query, &out);
	if (ret == 0 && sscanf(out, "%lld", &v) != 1)
		ret = rows_error(BOP_EFORMAT, "the client answered the row count with '%.80s'",
			out);
	if (ret == 0)
		*rows += v;
	free(out);
	free(query);
	return ret;
}

static int my_count(const db_conn_t *c, rows_result_t *res)
{
	static const char list_query[] = "SELECT table_name FROM information_schema.tables "
		"WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1";
	my_client_t m;
	char *out = NULL, **names = NULL, *save = NULL;
	size_t n = 0;
	long long rows = 0;
	int ret;

	ret = my_client_new(&m, c);
	if (ret == 0)
		ret = my_query(&m, c, list_query, &out);
	for (char *line = ret == 0 ? strtok_r(out, "\n", &save) : NULL; line && ret == 0;
	     line = strtok_r(NULL, "\n", &save)) {
		char **grown = realloc(names, (n + 1) * sizeof(*names));

		if (!grown) {
			ret = BOP_ENOMEM;
			break;
		}
		names = grown;
		names[n++] = line;
	}
	for (size_t i = 0; ret == 0 && i < n; i += MYSQL_CHUNK)
		ret = my_count_chunk(&m, c, names + i, n - i < MYSQL_CHUNK ? n - i : MYSQL_CHUNK,
			&rows);
	if (ret == 0) {
		res->tables = (int64_t)n;
		res->rows = rows;
	}
	free(names);
	free(out);
	my_client_free(&m);
	return ret;
}

/* ---- the interface ---- */

bool rows_supported(const char *engine)
{
	return engine && (!strcmp(engine, "postgres") || !strcmp(engine, "mysql"));
}

int rows_check_config(const char *engine, const char *json)
{
	db_conn_t c;
	int ret;

	if (!rows_supported(engine))
		return rows_error(BOP_ENOTSUPPORTED, "rows can be counted in a postgres or mysql "
			"scratch database only, not with the %s engine", engine ? engine : "(none)");
	ret = conn_parse(&c, engine, json);
	conn_clear(&c);
	return ret;
}

int rows_count(const char *engine, const char *json, rows_result_t *res)
{
	db_conn_t c;
	int ret;

	res->tables = -1;
	res->rows = -1;
	if ((ret = rows_check_config(engine, json)) < 0 || (ret = conn_parse(&c, engine, json)) < 0)
		return ret;
	ret = c.mysql ? my_count(&c, res) : pg_count(&c, res);
	if (ret < 0) {
		char msg[1024];

		snprintf(msg, sizeof(msg), "counting the rows of %s: %s", c.database,
			bop_error_last());
		ret = bop_error_set(ret, msg);
	}
	conn_clear(&c);
	return ret;
}
