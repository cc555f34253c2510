/*
 * The backupop command line tool. It uses only the public API of libbackupop.
 *
 * Settings come from three places, the later overriding the earlier setting by setting:
 * built-in defaults, the --config YAML file, and command-line flags.
 */
#ifndef BACKUPOP_CLI_H
#define BACKUPOP_CLI_H

#include <backupop.h>

#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>

/* Exit codes; documented in backupop(1) and `backupop help`. */
enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAILED = 1,
	CLI_EXIT_USAGE = 2,
	CLI_EXIT_NOTFOUND = 3,
	CLI_EXIT_INTEGRITY = 4,
	CLI_EXIT_KEY = 5,
	CLI_EXIT_LOCKED = 6,
	CLI_EXIT_CHILD = 7,
	CLI_EXIT_AUTH = 8,              /* a database or storage refused the credentials */
	CLI_EXIT_CONNECT = 9,           /* a database or storage server could not be reached */
	CLI_EXIT_INTERRUPTED = 130,
};

/* The commands, as bits so that each option can say where it applies. */
enum {
	CLI_CMD_BACKUP = 1 << 0,
	CLI_CMD_RESTORE = 1 << 1,
	CLI_CMD_VERIFY = 1 << 2,
	CLI_CMD_LIST = 1 << 3,
	CLI_CMD_PRUNE = 1 << 4,
	CLI_CMD_KEYGEN = 1 << 5,
	CLI_CMD_GLOBAL = 1 << 6,        /* may also come before the command name */
	CLI_CMD_GC = 1 << 7,
	CLI_CMD_RUNS = 1 << 8,
	CLI_CMD_STATUS = 1 << 9,
};

/* The settings are those of runner/common (config.h), one model for the CLI and the
 * runner: a config file (--config) and the flags each fill an rcfg_t, the flags' is merged
 * over the config's. NULL strings and negative numbers are "not set". */
typedef rcfg_strlist_t cli_strlist_t;
typedef rcfg_t cli_settings_t;

/* Retention rules in the order of the --keep-* flags. */
enum {
	CLI_KEEP_LAST = RCFG_KEEP_LAST,
	CLI_KEEP_HOURLY = RCFG_KEEP_HOURLY,
	CLI_KEEP_DAILY = RCFG_KEEP_DAILY,
	CLI_KEEP_WEEKLY = RCFG_KEEP_WEEKLY,
	CLI_KEEP_MONTHLY = RCFG_KEEP_MONTHLY,
	CLI_KEEP_YEARLY = RCFG_KEEP_YEARLY,
	CLI_KEEP_COUNT = RCFG_KEEP_COUNT,
};

/* One run of one command. */
typedef struct cli {
	unsigned int command;           /* CLI_CMD_* */
	const char *command_name;
	cli_settings_t settings;        /* merged: config, then flags */
	const char *config_path;
	bool quiet;
	bool json;
	bool dry_run;
	const char *input;              /* backup -i */
	const char *output;             /* restore/keygen -o */
	int64_t older_than;             /* gc --older-than in seconds; -1 when not given */
	char **args;                    /* positional arguments */
	int nargs;
	char **exec_argv;               /* after "--", NULL-terminated, or NULL */
	const char *url;                /* runs/status --url */
	const char *token_file;         /* runs/status --token-file */
} cli_t;

/* Set by the SIGINT/SIGTERM handler during backup and restore. */
extern volatile sig_atomic_t cli_interrupted;
/* The catalog the handler also cancels (bop_catalog_cancel() only sets a flag), so that
 * a wait for a producer or consumer that writes or reads nothing ends too; set while a
 * backup or restore runs, NULL otherwise. */
extern bop_catalog_t *volatile cli_cancel_catalog;

/* Standard input was closed when backupop started (main.c put /dev/null there). */
extern bool cli_stdin_closed;

/* The settings' lifecycle and helpers, those of runner/common. */
static inline void cli_settings_init(cli_settings_t *s) { rcfg_init(s); }
static inline void cli_settings_clear(cli_settings_t *s) { rcfg_clear(s); }
/* Moves every setting that is set in `over` into `base`. */
static inline void cli_settings_merge(cli_settings_t *base, cli_settings_t *over)
{
	rcfg_merge(base, over);
}
static inline int cli_strlist_add(cli_strlist_t *list, const char *item)
{
	return rcfg_strlist_add(list, item);
}
static inline void cli_strlist_clear(cli_strlist_t *list) { rcfg_strlist_clear(list); }
static inline bool cli_settings_has_retention(const cli_settings_t *s)
{
	return rcfg_has_retention(s);
}
/* The retention policy of the settings; it borrows the keep-tags list. */
static inline void cli_retention_policy(const cli_settings_t *s, bop_retention_policy_t *policy)
{
	rcfg_retention_policy(s, policy);
}

/* config.c: loads a YAML config file into `s`. Prints the error; returns an exit code. */
int cli_config_load(cli_settings_t *s, const char *path);

/* args.c */
int cli_parse_args(cli_t *cli, int argc, char **argv);
void cli_free(cli_t *cli);
void cli_print_command_help(FILE *out, unsigned int command);
void cli_print_help(FILE *out);

/* errors.c */
/* Prints "backupop: error: <bop_error_last()>" and maps the code to an exit code.
 * `stored_data` makes a malformed-input error an integrity failure (it came from storage). */
int cli_fail(int code, bool stored_data);
/* Prints "backupop: error: <message>" and returns `exit_code`. */
int cli_error(int exit_code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_usage(const cli_t *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_exit_code(int code, bool stored_data);
/* Writes text with control characters escaped as \xNN (newlines and tabs stay). */
void cli_put_escaped(FILE *out, const char *text);
/* Like cli_fail() for a command that could not be started: exit status 7. */
int cli_fail_command(int code);

/* writer.c: a restore's output written on a thread of its own (see there). */
typedef struct cli_writer cli_writer_t;
/* Whether a writer thread pays: with two cores or more. */
bool cli_writer_wanted(void);
/* Starts the thread writing to `sink` (which the caller keeps, commits and frees). */
int cli_writer_start(cli_writer_t **out, bop_sink_t *sink);
/* Queues `len` bytes; fails with the sink's error once a write of the thread failed. */
int cli_writer_write(cli_writer_t *w, const void *buf, size_t len);
/* Waits until everything queued is written: 0, or the sink's error. */
int cli_writer_finish(cli_writer_t *w);
/* Stops the thread (without writing what is still queued unless finished) and frees it.
 * Accepts NULL. False when the thread is stuck in a write to a reader that reads nothing:
 * it is then left running until the process exits, and its sink must not be freed. */
bool cli_writer_free(cli_writer_t *w);

/* keys.c: the keys to encrypt with (backup) or decrypt with (restore, verify). *out is
 * NULL when nothing applies. Returns an exit code. */
int cli_keys_for_backup(const cli_settings_t *s, bop_keys_t **out);
int cli_keys_for_restore(const cli_settings_t *s, bop_keys_t **out);

/* progress.c */
typedef struct cli_progress {
	bool enabled;
	bool shown;
	const char *verb;
	double start;
} cli_progress_t;

void cli_progress_start(cli_progress_t *p, const char *verb, bool quiet);
void cli_progress_update(uint64_t bytes_in, uint64_t bytes_out, void *payload);
void cli_progress_end(cli_progress_t *p);
void cli_format_size(char *buf, size_t len, uint64_t bytes);
void cli_install_signal_handlers(void);
/* Seconds on a monotonic clock. */
double cli_now(void);

/* Opens the storage and catalog of the settings. Returns an exit code. */
int cli_open_catalog(const cli_t *cli, bop_storage_t **storage, bop_catalog_t **catalog);

/* How long the catalog lock of a backup or prune lasts unless refreshed, and how often a
 * running backup refreshes it. */
#define CLI_LOCK_TTL_SECONDS 600
#define CLI_LOCK_REFRESH_SECONDS 60

/* Takes the catalog's lock for a writer (backup, prune). Returns an exit code (6 when
 * someone else holds it). */
int cli_lock_catalog(const cli_t *cli, bop_catalog_t *catalog, bop_lock_t **out);

/* The commands; each returns an exit code. */
int cli_cmd_backup(cli_t *cli);
int cli_cmd_restore(cli_t *cli);
int cli_cmd_verify(cli_t *cli);
int cli_cmd_list(cli_t *cli);
int cli_cmd_prune(cli_t *cli);
int cli_cmd_keygen(cli_t *cli);
int cli_cmd_gc(cli_t *cli);
int cli_cmd_runs(cli_t *cli);
int cli_cmd_status(cli_t *cli);

#endif
