/*
 * The cockroach engine's side: its config, the BACKUP/RESTORE statements it gives the SQL
 * client on stdin, and where the password goes (environment, never arguments). The
 * client is a script that records what it got.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"

#define PASSWORD "s3cret-pa$$:word"

static char *tmp;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(path);
}

static char *slurp(const char *name)
{
	char *path = bop__sprintf("%s/%s", tmp, name), *data = NULL;
	size_t len = 0;

	if (bop__read_file(path, &data, &len, 1 << 20) < 0)
		data = bop__strdup("");
	free(path);
	return data;
}

/* A client that records its stdin, arguments and environment, and exits with the
 * status in $tmp/status (0 when missing). */
static char *make_client(const char *name)
{
	char *path = bop__sprintf("%s/%s", tmp, name);
	FILE *f = fopen(path, "w");

	fprintf(f, "#!/bin/sh\n"
		"cat >'%s/stdin'\n"
		"printf '%%s\\n' \"$0\" \"$@\" >'%s/argv'\n"
		"env >'%s/env'\n"
		"exit $(cat '%s/status' 2>/dev/null || echo 0)\n", tmp, tmp, tmp, tmp);
	fclose(f);
	chmod(path, 0700);
	return path;
}

static char *config(const char *client, const char *extra)
{
	return bop__sprintf("{\"host\": \"crdb.db\", \"user\": \"backup\", \"password\": \"%s\", "
		"\"client\": [\"%s\"], \"timeoutSeconds\": 20%s}", PASSWORD, client, extra);
}

static int run_backup(const char *json)
{
	bop_engine_t *e = NULL;
	bop_source_t *src = NULL;
	char buf[64];
	size_t got = 0;
	int ret = bop_engine_open(&e, "cockroach", json);

	if (ret == 0)
		ret = bop_engine_backup(e, &src);
	if (ret == 0)
		ret = bop_source_read(src, buf, sizeof(buf), &got);
	if (ret == 0 && got != 0)
		ret = -100;
	if (ret == 0)
		ret = bop_source_close(src);
	bop_source_free(src);
	bop_engine_free(e);
	return ret;
}

static int run_restore(const char *json)
{
	bop_engine_t *e = NULL;
	bop_sink_t *sink = NULL;
	int ret = bop_engine_open(&e, "cockroach", json);

	if (ret == 0)
		ret = bop_engine_restore(e, &sink);
	if (ret == 0)
		ret = bop_sink_commit(sink);
	bop_sink_free(sink);
	bop_engine_free(e);
	return ret;
}

static void config_errors(const char *client)
{
	bop_engine_t *e = NULL;
	char *json;

	is_int(bop_engine_open(&e, "cockroach", "{}"), BOP_EINVAL, "host is required");
	ok(strstr(bop_error_last(), "host") != NULL, "... the message says so");
	is_int(bop_engine_open(&e, "cockroach", "{\"host\": \"x\", \"colour\": 1}"), BOP_EINVAL,
		"an unknown field is refused");
	ok(strstr(bop_error_last(), "colour") != NULL, "... by name");
	is_int(bop_engine_open(&e, "cockroach",
		"{\"host\": \"x\", \"backupOptions\": [\"revision_history; DROP DATABASE x\"]}"),
		BOP_EINVAL, "an option that would end the statement is refused");
	is_int(bop_engine_open(&e, "cockroach",
		"{\"host\": \"x\", \"restore\": {\"newDatabaseName\": \"y\"}}"), BOP_EINVAL,
		"restore.newDatabaseName without a database is refused");
	is_int(bop_engine_open(&e, "cockroach",
		"{\"host\": \"x\", \"endpointURL\": \"http://a/b' OR '1\"}"), BOP_EINVAL,
		"an endpoint URL with a quote is refused");
	json = config(client, ", \"database\": \"shop\"");
	is_int(run_backup(json), BOP_ENOTSUPPORTED, "without the runner's endpoint there is no backup");
	ok(strstr(bop_error_last(), "backupop-runner") != NULL, "... the message names the runner");
	free(json);
}

static void database_backup(const char *client)
{
	char *json = config(client, ", \"database\": \"shop\", \"backupOptions\": "
		"[\"revision_history\"], \"endpointURL\": \"http://runner:8080/v1/cockroach/t0k\"");
	char *in, *argv, *env;

	ok(run_backup(json) == 0, "BACKUP through the client succeeds: %s", bop_error_last());
	in = slurp("stdin");
	argv = slurp("argv");
	env = slurp("env");
	is_str(in, "BACKUP DATABASE \"shop\" INTO 'http://runner:8080/v1/cockroach/t0k' "
		"WITH revision_history;\n", "the statement arrives on stdin");
	ok(!strstr(argv, "s3cret") && !strstr(argv, "t0k") && !strstr(argv, "BACKUP"),
		"neither the password, the run token nor the statement is an argument");
	ok(strstr(env, "PGPASSWORD=" PASSWORD) != NULL, "PGPASSWORD carries the password");
	ok(strstr(env, "COCKROACH_URL=postgresql://backup:s3cret-pa%24%24%3Aword@crdb.db:26257/shop"
		"?sslmode=verify-full") != NULL, "COCKROACH_URL carries it, percent-encoded");
	ok(strstr(env, "PGHOST=crdb.db") && strstr(env, "PGPORT=26257") && strstr(env, "PGUSER=backup"),
		"PGHOST, PGPORT and PGUSER are set");
	free(in);
	free(argv);
	free(env);
	free(json);
}

static void failures_and_restore(const char *client)
{
	char *json = config(client, ", \"database\": \"shop\", \"endpointURL\": \"http://r/v1/c/t\", "
		"\"restore\": {\"newDatabaseName\": \"shop_restored\", \"options\": "
		"[\"skip_missing_foreign_keys\"]}");
	char *status = bop__sprintf("%s/status", tmp), *in;
	FILE *f;

	f = fopen(status, "w");
	fputs("1\n", f);
	fclose(f);
	is_int(run_backup(json), BOP_ECHILD, "a client that exits 1 fails the backup");
	ok(strstr(bop_error_last(), "BACKUP") != NULL, "... the message says the BACKUP failed: %s",
		bop_error_last());
	is_int(run_restore(json), BOP_ECHILD, "... and the restore");
	remove(status);
	ok(run_restore(json) == 0, "RESTORE through the client succeeds");
	in = slurp("stdin");
	is_str(in, "RESTORE DATABASE \"shop\" FROM LATEST IN 'http://r/v1/c/t' WITH "
		"skip_missing_foreign_keys, new_db_name = 'shop_restored';\n",
		"the RESTORE statement, with new_db_name");
	free(in);
	free(json);
	free(status);
}

static void cluster(const char *client)
{
	char *json = config(client, ", \"endpointURL\": \"http://r/v1/c/t\"");
	char *in;

	ok(run_backup(json) == 0, "a cluster backup runs");
	in = slurp("stdin");
	is_str(in, "BACKUP INTO 'http://r/v1/c/t';\n", "... as BACKUP INTO");
	free(in);
	ok(run_restore(json) == 0, "a cluster restore runs");
	in = slurp("stdin");
	is_str(in, "RESTORE FROM LATEST IN 'http://r/v1/c/t';\n", "... as RESTORE FROM LATEST IN");
	free(in);
	free(json);
}

static void psql(void)
{
	char *client = make_client("psql");
	char *json = config(client, ", \"endpointURL\": \"http://r/v1/c/t\"");
	char *argv;

	ok(run_backup(json) == 0, "psql as the client");
	argv = slurp("argv");
	ok(strstr(argv, "ON_ERROR_STOP=1") && strstr(argv, "-X"),
		"psql gets -X -v ON_ERROR_STOP=1, so a failed statement fails it");
	free(argv);
	free(json);
	free(client);
}

int main(void)
{
	char tmpl[] = "/tmp/bop-crdb-engine-XXXXXX";
	char *client;

	tmp = mkdtemp(tmpl);
	if (!tmp)
		return 2;
	client = make_client("fake-cockroach");
	config_errors(client);
	database_backup(client);
	failures_and_restore(client);
	cluster(client);
	psql();
	free(client);
	nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return done_testing();
}
