/*
 * Helpers shared by the database engines that drive client tools (postgres, mysql):
 * reading their JSON config, finding the tools, running a tool for its output, and
 * wrapping a command source or sink so that a credentials file is removed when it ends
 * and a refused login reads as BOP_EAUTH.
 */
#ifndef BOP_ENGINE_DBCLIENT_H
#define BOP_ENGINE_DBCLIENT_H

#include "engine/config.h"

#include <json-c/json.h>


/* Field getters; `field` names the field in messages ("restore.database"). */
int bop__db_get_string(json_object *val, const char *field, char **out);
int bop__db_get_bool(json_object *val, const char *field, bool *out);
int bop__db_get_port(json_object *val, const char *field, int *out);
int bop__db_get_timeout(json_object *val, const char *field, int64_t *ms);
/* An array of strings (may be empty) into a NULL-terminated vector. */
int bop__db_get_strv(json_object *val, const char *field, char ***out);

/* The first line of `path` (without its line end), registered as a secret. */
int bop__db_read_password_file(const char *path, const char *field, char **out);

/* "sslMode": one of libpq's modes (disable, allow, prefer, require, verify-ca, verify-full). */
int bop__db_get_ssl_mode(json_object *val, const char *field, char **out);

/* The configuration fields the database engines share, read the same way by each. */
typedef struct bop__db_settings {
	/* Every database engine: where, as whom and to which database it connects, and how
	 * long a tool may run ("host", "port", "user", "password", "passwordFile",
	 * "database", "timeoutSeconds"). */
	char *host;
	int port;               /* the engine's default until "port" is read */
	bool port_set;
	char *user;
	char *password;
	char *password_file;
	char *database;
	int64_t timeout_ms;
	/* Engines running dump tools (postgres, mysql): "allDatabases", "extraArgs" (for
	 * the dump tool) and "binDir". */
	bool all_databases;
	char **extra_args;
	char *bin_dir;
} bop__db_settings_t;

/* Read `key` if it is one of the fields of every engine (bop__db_settings_field()) or of
 * those running dump tools (bop__db_dump_field()): true, with *ret the result; false for
 * another key. */
bool bop__db_settings_field(bop__db_settings_t *s, const char *key, json_object *val, int *ret);
bool bop__db_dump_field(bop__db_settings_t *s, const char *key, json_object *val, int *ret);
/* "password" and "passwordFile" exclude each other; reads the first line of passwordFile
 * into password, and registers the password for redaction. */
int bop__db_settings_load_password(bop__db_settings_t *s);
/* Frees the fields, wiping the password. */
void bop__db_settings_clear(bop__db_settings_t *s);

/* A growing NULL-terminated argument vector; the first failure sticks in `err`. */
typedef struct bop__db_argv {
	char **v;
	size_t n;
	size_t cap;
	int err;
} bop__db_argv_t;

void bop__db_argv_add(bop__db_argv_t *a, const char *arg);
void bop__db_argv_addf(bop__db_argv_t *a, const char *fmt, ...) BOP_PRINTF(2, 3);
void bop__db_argv_add_all(bop__db_argv_t *a, char *const *args);
void bop__db_argv_free(bop__db_argv_t *a);

/* Finds the first of `names` in `bin_dir` when set, else in PATH, else in the
 * directories matching `fallback_glob` (highest version first; may be NULL). *out is a
 * full path. BOP_ENOTFOUND with a message naming what was searched. */
int bop__db_find_tool(const char *bin_dir, const char *const *names, const char *fallback_glob,
	char **out);

/* Runs a command and returns its stdout (NUL-terminated, at most 64 KiB). Failures are
 * explained as for bop__db_source_new(). */
int bop__db_run_capture(const bop_command_options_t *opts, const char *server, char **out);
/* The same for a query's result: all of it (at most 16 MiB, else BOP_EFORMAT). */
int bop__db_run_query(const bop_command_options_t *opts, const char *server, char **out);

/* Called when a wrapped source or sink is freed, after its child has been reaped. */
typedef void (*bop__db_cleanup_fn)(void *payload);

/* Starts the command as a source (sink), wrapped: failures whose message says that the
 * server refused the login become BOP_EAUTH, those saying it cannot be reached name
 * `server` ("127.0.0.1:5432"), and `cleanup(payload)` runs on free (also when starting
 * fails). */
int bop__db_source_new(bop_source_t **out, const bop_command_options_t *opts,
	const char *server, bop__db_cleanup_fn cleanup, void *payload);
/* `failure_note` (may be NULL): a sentence added to the error when the restore fails
 * after the tool was given data (a restore that cannot roll back says that the target
 * was modified). */
int bop__db_sink_new(bop_sink_t **out, const bop_command_options_t *opts,
	const char *server, const char *failure_note, bop__db_cleanup_fn cleanup, void *payload);

/* A private directory (0700) holding one 0600 file `name` with `content`, for
 * credentials. *dir and *path are malloc'd; remove both with bop__db_secret_file_remove(). */
int bop__db_secret_file_new(const char *prefix, const char *name, const char *content,
	char **dir, char **path);
void bop__db_secret_file_remove(char *dir, char *path);

#endif
