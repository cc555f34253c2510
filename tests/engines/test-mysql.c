/*
 * The mysql engine against a real MariaDB server started for this test
 * (tests/env/mariadb-local.sh): a round trip through zstd + age on file:// storage
 * compared table by table (blobs, utf8mb4, triggers, routines, events, views); dumps that
 * fail leave nothing; a damaged backup never reaches the server past the damage; the
 * password (with quotes, a backslash, '#' and a space) never shows in the dump tool's
 * command line, the log or error messages, and its 0600 option file is removed.
 */
#include "engine-test.h"

/* My"S3cret 'pw\#1 */
#define PASSWORD "My\"S3cret 'pw\\#1"
#define PASSWORD_JSON "My\\\"S3cret 'pw\\\\#1"

static char *tmp;
static char *server_dir;
static char *script;
static char *engine_tmp;       /* TMPDIR of the engine: its option files go here */
static char *superuser;
static int port;
static bool server_started;

static void stop_server(void)
{
	char *cmd;

	if (!server_started)
		return;
	cmd = xasprintf("sh '%s' stop '%s'", script, server_dir);
	if (system(cmd) != 0)
		diag("stopping the server failed");
	free(cmd);
	server_started = false;
}

static void cleanup(void)
{
	stop_server();
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
	cmd = xasprintf("mariadb --no-defaults --socket='%s/sock' -u '%s' --batch --skip-column-names "
		"--default-character-set=utf8mb4 %s%s < '%s'", server_dir, superuser,
		db ? "--database=" : "", db ? db : "", file);
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
	"CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL,\n"
	"  note TEXT, photo LONGBLOB, balance DECIMAL(20,6), doc JSON, created DATETIME(3)) ENGINE=InnoDB;\n"
	"INSERT INTO customers (name, note, photo, balance, doc, created) VALUES\n"
	"  ('Zoë Åström 🎉', '日本語のテキスト 🐬🚀 emoji', UNHEX('00FF10AB000D0A5C27'),\n"
	"   12345678901234.123456, '{\"a\": [1, 2.5, null]}', '2026-01-02 03:04:05.678'),\n"
	"  ('Ivan Петров', 'tab\\there\\nnewline \\\\ quote \\' end', '', -0.000001, NULL, NULL),\n"
	"  ('Big', REPEAT('x', 1000), REPEAT(UNHEX('00FF7F80'), 500000), 0, '[]', NOW());\n"
	"CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(200)) ENGINE=InnoDB;\n"
	"CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer INT, total DECIMAL(12,2),\n"
	"  FOREIGN KEY (customer) REFERENCES customers (id)) ENGINE=InnoDB AUTO_INCREMENT=1000;\n"
	"CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW\n"
	"  INSERT INTO audit (what) VALUES (CONCAT('order ', NEW.id));\n"
	"INSERT INTO orders (customer, total) SELECT 1 + seq % 3, seq * 1.25 FROM seq_1_to_500;\n"
	"CREATE FUNCTION order_count(c INT) RETURNS INT READS SQL DATA\n"
	"  RETURN (SELECT COUNT(*) FROM orders WHERE customer = c);\n"
	"CREATE PROCEDURE add_order(c INT, t DECIMAL(12,2))\n"
	"  INSERT INTO orders (customer, total) VALUES (c, t);\n"
	"CREATE EVENT purge_audit ON SCHEDULE EVERY 1 DAY DO DELETE FROM audit WHERE id < 0;\n"
	"CREATE VIEW totals AS SELECT customer, SUM(total) AS total, order_count(customer) AS n\n"
	"  FROM orders GROUP BY customer;\n"
	"CREATE TABLE bulk (i INT PRIMARY KEY, payload VARCHAR(64)) ENGINE=InnoDB;\n"
	"INSERT INTO bulk SELECT seq, CONCAT(MD5(seq), MD5(seq * 7)) FROM seq_1_to_200000;\n"
	"CREATE TABLE zz_last (i INT PRIMARY KEY) ENGINE=InnoDB;\n"
	"INSERT INTO zz_last VALUES (1);\n";

static const char *const fingerprint_query =
	"SELECT TABLE_NAME, TABLE_TYPE, AUTO_INCREMENT, TABLE_COLLATION FROM information_schema.TABLES\n"
	"  WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1;\n"
	"SELECT 'count', COUNT(*) FROM customers UNION ALL SELECT 'count', COUNT(*) FROM orders\n"
	"  UNION ALL SELECT 'count', COUNT(*) FROM audit UNION ALL SELECT 'count', COUNT(*) FROM bulk;\n"
	"SET SESSION group_concat_max_len = 1 << 30;\n"
	"SELECT 'customers', MD5(GROUP_CONCAT(CONCAT_WS('|', id, name, HEX(note), HEX(photo), balance,\n"
	"  doc, created) ORDER BY id SEPARATOR '\\n')) FROM customers;\n"
	"SELECT 'orders', MD5(GROUP_CONCAT(CONCAT_WS('|', id, customer, total) ORDER BY id)) FROM orders;\n"
	"SELECT 'audit', MD5(GROUP_CONCAT(CONCAT_WS('|', id, what) ORDER BY id)) FROM audit;\n"
	"SELECT 'bulk', MD5(GROUP_CONCAT(CONCAT_WS('|', i, payload) ORDER BY i)) FROM bulk;\n"
	"SELECT 'emoji', name, note FROM customers WHERE id = 1;\n"
	"SELECT ROUTINE_TYPE, ROUTINE_NAME, MD5(ROUTINE_DEFINITION) FROM information_schema.ROUTINES\n"
	"  WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY 2;\n"
	"SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, MD5(ACTION_STATEMENT)\n"
	"  FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY 1;\n"
	"SELECT EVENT_NAME, MD5(EVENT_DEFINITION), INTERVAL_VALUE, INTERVAL_FIELD\n"
	"  FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE() ORDER BY 1;\n"
	"SELECT 'view', customer, total, n FROM totals ORDER BY 2;\n"
	"SELECT 'function', order_count(2);\n";

static bool same_as_source(const char *db, const char *what)
{
	char *want = sql("src", fingerprint_query), *got = sql(db, fingerprint_query);
	bool same = want && got && strcmp(want, got) == 0;

	ok(same, "%s: every table (blobs, utf8mb4), routine, trigger, event and view matches the source",
		what);
	if (!same)
		diag("source:\n%s\nrestored:\n%s", want ? want : "(failed)", got ? got : "(failed)");
	free(want);
	free(got);
	return same;
}

static char *config(const char *extra)
{
	return xasprintf("{\"host\": \"127.0.0.1\", \"port\": %d, \"user\": \"bop\", "
		"\"password\": \"%s\"%s%s}", port, PASSWORD_JSON, *extra ? ", " : "", extra);
}

static int entries_in(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	if (d)
		closedir(d);
	return n;
}

/* ---- configuration ---- */

static void expect_invalid(const char *json, const char *needle, const char *what)
{
	bop_engine_t *e = NULL;
	int ret = bop_engine_open(&e, "mysql", json);

	ok(ret == BOP_EINVAL && strstr(bop_error_last(), needle), "config: %s is refused (%s)",
		what, bop_error_last());
	bop_engine_free(e);
}

static void test_config(void)
{
	bop_engine_t *e = NULL;
	char *patch = NULL;

	expect_invalid("{\"database\": \"x\", \"hots\": \"db\"}", "\"hots\"", "an unknown field");
	expect_invalid("{\"database\": \"x\", \"restore\": {\"db\": \"y\"}}", "restore.db",
		"an unknown restore field");
	expect_invalid("{\"user\": \"x\"}", "\"database\" is required", "a missing database");
	expect_invalid("{\"database\": \"x\", \"socket\": \"/s\", \"port\": 3307}", "socket",
		"socket with port");
	expect_invalid("{\"allDatabases\": true, \"restore\": {\"database\": \"y\"}}",
		"restore.database", "restore.database with allDatabases");
	ok(bop_engine_open(&e, "mysql", "{\"database\": \"x\"}") == 0 &&
		bop_engine_pod_customize(e, &patch) == 0 && patch && !strcmp(patch, "{}"),
		"pod_customize returns {}");
	bop_free(patch);
	bop_engine_free(e);
}

/* ---- round trip ---- */

static void round_trip(const cat_env_t *c)
{
	char *cfg = config("\"database\": \"src\", \"restore\": {\"database\": \"dst\"}");
	bop_engine_t *e = NULL;
	bop_manifest_t *m = NULL;
	int ret;

	ok(bop_engine_open(&e, "mysql", cfg) == 0 && (ret = bop_engine_validate(e)) == 0,
		"validate connects with the option file");
	bop_engine_free(e);
	ret = engine_backup(c, "mysql", "mysql", cfg, &m);
	ok(ret == 0, "backup through the engine succeeds (%s)", ret ? bop_error_last() : "ok");
	is_int(entries_in(engine_tmp), 0, "the option file and its directory are removed after the backup");
	ok(sql_ok(NULL, "CREATE DATABASE dst CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"),
		"a fresh database dst exists");
	ret = m ? engine_restore(c, "mysql", "mysql", cfg, m) : -1;
	ok(ret == 0, "restore into the fresh database succeeds (%s)", ret ? bop_error_last() : "ok");
	is_int(entries_in(engine_tmp), 0, "the option file and its directory are removed after the restore");
	same_as_source("dst", "round trip");
	{
		char *out = sql("dst", "CALL add_order(2, 9.99);\n"
			"SELECT COUNT(*) FROM audit WHERE what = CONCAT('order ', LAST_INSERT_ID());\n");

		ok(out && !strcmp(out, "1"), "restored database: the procedure and the trigger work (%s)",
			out ? out : "failed");
		free(out);
	}
	bop_manifest_free(m);
	free(cfg);
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

	ok(bop_engine_open(&e, "mysql", cfg) == 0, "wrong password: the engine opens");
	ret = bop_engine_validate(e);
	note_error();
	ok(ret == BOP_EAUTH && strstr(bop_error_last(), "Access denied"),
		"wrong password: validate fails with BOP_EAUTH (%s)", bop_error_last());
	bop_engine_free(e);
	ret = engine_backup(c, "fail-auth", "mysql", cfg, &m);
	note_error();
	ok(ret == BOP_EAUTH && strstr(bop_error_last(), "Access denied"),
		"wrong password: the backup fails and says why (%s)", bop_error_last());
	expect_nothing_stored(c, "fail-auth");
	bop_manifest_free(m);
	free(cfg);
}

static void test_killed_dump(const cat_env_t *c)
{
	char *cfg = config("\"database\": \"src\"");
	bg_backup_t b = { .cat = c, .name = "fail-killed", .engine = "mysql", .config = cfg,
		.pause_us = 20000 };
	char *cmdline = NULL, *file = NULL, *slash;
	struct stat st, dst;
	pid_t pid;

	bg_backup_start(&b);
	pid = wait_child("mariadb-dump", 10000);
	if (!pid)
		pid = find_child("mysqldump");
	ok(pid > 0, "killed dump: the dump tool runs (pid %d)", (int)pid);
	cmdline = pid > 0 ? proc_cmdline(pid) : NULL;
	ok(cmdline && strstr(cmdline, "--defaults-extra-file=") && !strstr(cmdline, "S3cret"),
		"secrets: the password is not in the dump tool's command line (%s)", cmdline ? cmdline : "");
	if (cmdline && strstr(cmdline, "--defaults-extra-file=")) {
		file = strdup(strstr(cmdline, "--defaults-extra-file=") + strlen("--defaults-extra-file="));
		file[strcspn(file, " ")] = '\0';
	}
	ok(file && stat(file, &st) == 0 && (st.st_mode & 0777) == 0600,
		"secrets: the option file %s is mode 0600", file ? file : "?");
	slash = file ? strrchr(file, '/') : NULL;
	if (slash)
		*slash = '\0';
	ok(file && stat(file, &dst) == 0 && (dst.st_mode & 0777) == 0700,
		"secrets: its directory is private (0700)");
	if (pid > 0)
		kill(pid, SIGKILL);
	pthread_join(b.thread, NULL);
	ok(b.ret == BOP_ECHILD && strstr(b.message, "signal 9"),
		"killed dump: the backup fails and says the dump tool was killed (%s)", b.message);
	expect_nothing_stored(c, "fail-killed");
	is_int(entries_in(engine_tmp), 0, "killed dump: the option file is removed");
	free(file);
	free(cmdline);
	free(cfg);
}

static void test_timeout(const cat_env_t *c)
{
	char *cfg = config("\"database\": \"src\", \"timeoutSeconds\": 1");
	bg_backup_t b = { .cat = c, .name = "fail-timeout", .engine = "mysql", .config = cfg,
		.pause_us = 20000 };

	bg_backup_start(&b);
	pthread_join(b.thread, NULL);
	ok(b.ret == BOP_ETIMEOUT, "deadline: a dump slower than timeoutSeconds fails (%s)", b.message);
	expect_nothing_stored(c, "fail-timeout");
	free(cfg);
}

/*
 * A damaged backup restored into a database that holds other data: the restore fails,
 * nothing after the damaged chunk reaches the server (the last table is never created),
 * and tables the backup does not contain are untouched.
 */
static void test_damaged_restore(const cat_env_t *c)
{
	char *cfg = config("\"database\": \"src\", \"restore\": {\"database\": \"dst_damaged\"}");
	bop_manifest_t *m = NULL;
	char *obj, *out;
	int ret;

	ret = engine_backup(c, "damaged", "mysql", cfg, &m);
	ok(ret == 0 && sql_ok(NULL, "CREATE DATABASE dst_damaged CHARACTER SET utf8mb4;\n"
		"CREATE TABLE dst_damaged.keep (k VARCHAR(20)) ENGINE=InnoDB;\n"
		"INSERT INTO dst_damaged.keep VALUES ('precious 💎');"),
		"damaged: a backup, and a target database holding a table of its own");
	if (ret) {
		free(cfg);
		return;
	}
	obj = object_path(c, m);
	ok(flip_middle_byte(obj) == 0, "damaged: one byte in the middle of the stored object flipped");
	ret = engine_restore(c, "damaged", "mysql", cfg, m);
	note_error();
	ok(ret == BOP_EINTEGRITY && strstr(bop_error_last(), "corrupt"),
		"damaged: the restore fails with an integrity error (%s)", bop_error_last());
	ok(strstr(bop_error_last(), "the target database dst_damaged was modified and may be "
		"partly restored") != NULL,
		"damaged: the error says the target was modified (no transaction; issue 9 finding 8)");
	out = sql("dst_damaged", "SELECT k FROM keep;\n"
		"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'dst_damaged' AND TABLE_NAME = 'zz_last';");
	ok(out && !strcmp(out, "precious 💎\n0"),
		"damaged: the target's own table is unchanged and nothing after the damage reached the server (%s)",
		out ? out : "failed");
	is_int(entries_in(engine_tmp), 0, "damaged: the option file is removed");
	free(out);
	bop_manifest_free(m);
	free(obj);
	free(cfg);
}

static void test_server_stopped(const cat_env_t *c)
{
	char *cfg = config("\"database\": \"src\"");
	bop_manifest_t *m = NULL;
	int ret;

	stop_server();
	ret = engine_backup(c, "fail-stopped", "mysql", cfg, &m);
	note_error();
	ok(ret == BOP_ECONNECT && strstr(bop_error_last(), "cannot reach the database server 127.0.0.1:"),
		"server stopped: the backup fails with BOP_ECONNECT, the connection error (issue 9 "
		"finding 17: %s)", bop_error_last());
	expect_nothing_stored(c, "fail-stopped");
	bop_manifest_free(m);
	free(cfg);
}

static void test_all_databases(const cat_env_t *c)
{
	char *cfg = config("\"allDatabases\": true");
	membuf_t b;
	int ret;

	ret = engine_backup_text(c, "all", "mysql", cfg, &b);
	ok(ret == 0 && b.data && strstr(b.data, "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `src`") &&
		strstr(b.data, "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `dst`"),
		"allDatabases: the dump creates every database (%s)", ret ? bop_error_last() : "ok");
	free(b.data);
	free(cfg);
}

/* The row check: the engine counts the base tables of the database its restore fills and
 * their rows, with exact counts, names quoted (a backtick in one), views left out. */
static void test_count_rows(void)
{
	bop_engine_t *e = NULL;
	int64_t tables = -1, rows = -1;
	char *cfg = config("\"database\": \"src\", \"restore\": {\"database\": \"counted\"}");
	int ret;

	if (!ok(sql_ok(NULL, "CREATE DATABASE counted CHARACTER SET utf8mb4;\n"
			"USE counted;\n"
			"CREATE TABLE a (i int);\n"
			"INSERT INTO a VALUES (1), (2), (3);\n"
			"CREATE TABLE `odd``name` (i int);\n"
			"INSERT INTO `odd``name` VALUES (1), (2), (3), (4);\n"
			"CREATE VIEW v AS SELECT * FROM a;\n"),
			"rows: a database with 2 tables (one named odd`name), a view and 7 rows")) {
		free(cfg);
		return;
	}
	ret = bop_engine_open(&e, "mysql", cfg);
	if (ret == 0)
		ret = bop_engine_count_rows(e, &tables, &rows);
	if (ret < 0)
		note_error();
	ok(ret == 0 && tables == 2 && rows == 7,
		"rows: counted in restore.database: 2 tables, 7 rows (got %lld, %lld: %s)",
		(long long)tables, (long long)rows, ret ? bop_error_last() : "ok");
	is_int(entries_in(engine_tmp), 0, "rows: the option file and its directory are removed");
	bop_engine_free(e);
	free(cfg);

	cfg = config("\"database\": \"nosuch\"");
	ret = bop_engine_open(&e, "mysql", cfg);
	if (ret == 0)
		ret = bop_engine_count_rows(e, &tables, &rows);
	note_error();
	ok(ret < 0 && strstr(bop_error_last(), "counting the rows of nosuch") &&
		tables == -1 && rows == -1,
		"rows: a database that does not exist fails the count, saying so (%s)",
		bop_error_last());
	bop_engine_free(e);
	free(cfg);
}

static bool tools_present(void)
{
	char *found = run_output("PATH=$PATH:/usr/sbin; command -v mariadbd && command -v mariadb-install-db && "
		"command -v mariadb && (command -v mariadb-dump || command -v mysqldump)");

	free(found);
	return found != NULL;
}

static int read_env(void)
{
	char *cmd = xasprintf(". '%s/env' && echo $MY_PORT && echo $MY_SUPERUSER", server_dir);
	char *out = run_output(cmd), *nl;

	free(cmd);
	if (!out || !(nl = strchr(out, '\n'))) {
		free(out);
		return -1;
	}
	port = atoi(out);
	superuser = strdup(nl + 1);
	free(out);
	return port > 0 ? 0 : -1;
}

int main(void)
{
	const char *root = getenv("BOP_SOURCE_ROOT");
	cat_env_t c = { 0 };
	char *cmd, *v;
	int status;

	if (!root)
		skip_all("BOP_SOURCE_ROOT is not set (run through meson test)");
	if (!tools_present())
		skip_all("MariaDB is not installed (apt-get install mariadb-server mariadb-client)");
	tmp = xasprintf("%s/bop-my-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmp))
		skip_all("cannot create a temporary directory");
	server_dir = xasprintf("%s/db", tmp);
	engine_tmp = xasprintf("%s/t", tmp);
	script = xasprintf("%s/tests/env/mariadb-local.sh", root);
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	log_capture_start();

	setenv("MARIADB_LOCAL_USER", "bop", 1);
	setenv("MARIADB_LOCAL_PASSWORD", PASSWORD, 1);
	cmd = xasprintf("sh '%s' start '%s' >&2", script, server_dir);
	status = system(cmd);
	free(cmd);
	unsetenv("MARIADB_LOCAL_PASSWORD");
	if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
		skip_all("the MariaDB server binaries are missing");
	if (status != 0)
		skip_all("cannot start a MariaDB server (see stderr)");
	server_started = true;
	if (read_env() < 0 || mkdir(engine_tmp, 0700) < 0) {
		ok(0, "the server's port is known");
		return done_testing();
	}
	setenv("TMPDIR", engine_tmp, 1);
	v = run_output("mariadb --version");
	diag("client: %s", v ? v : "?");
	free(v);
	v = sql(NULL, "SELECT VERSION()");
	diag("server: %s", v ? v : "?");
	free(v);
	if (!ok(sql_ok(NULL, "CREATE DATABASE src CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci") &&
			sql_ok("src", populate),
			"a source database with blobs, utf8mb4, JSON, triggers, routines, events and views"))
		return done_testing();
	if (cat_env_init(&c, tmp) < 0)
		return done_testing();

	test_config();
	round_trip(&c);
	test_all_databases(&c);
	test_wrong_password(&c);
	test_killed_dump(&c);
	test_timeout(&c);
	test_damaged_restore(&c);
	test_count_rows();
	test_server_stopped(&c);

	ok(!log_contains(PASSWORD) && !log_contains("S3cret"),
		"secrets: the password never appears in the log");
	ok(!errors_seen || !strstr(errors_seen, "S3cret"),
		"secrets: the password never appears in error messages");
	bop_log_set_callback(NULL, NULL);
	cat_env_free(&c);
	free(errors_seen);
	free(captured.text);
	free(superuser);
	free(script);
	free(engine_tmp);
	free(server_dir);
	cleanup();
	free(tmp);
	tmp = NULL;
	return done_testing();
}
