/*
 * The settings of backupop-runner and of the backupop CLI, one model for both: the config
 * file (rcfg_load()), the CLI's flags in a second rcfg_t, rcfg_merge() of the two.
 *
 * The config file shared by backupop-runner and `backupop --config` (backupop-config(5)):
 * YAML or JSON whose fields follow the BackupSchedule spec. Loaded with libyaml's document
 * loader and checked against a table of known fields; an unknown field or a bad value is
 * an error "FILE:LINE: field.path: what is wrong". Secrets are registered with
 * bop_log_add_secret() as they are read. Public libbackupop API, libyaml and json-c only.
 */
#ifndef BACKUPOP_RUNNER_CONFIG_H
#define BACKUPOP_RUNNER_CONFIG_H

#include <backupop.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A NULL-terminated list of strings; `set` says whether it was given at all. */
typedef struct rcfg_strlist {
	char **items;
	size_t count;
	bool set;
} rcfg_strlist_t;

enum { RCFG_KEEP_LAST, RCFG_KEEP_HOURLY, RCFG_KEEP_DAILY, RCFG_KEEP_WEEKLY,
	RCFG_KEEP_MONTHLY, RCFG_KEEP_YEARLY, RCFG_KEEP_COUNT };

typedef enum rcfg_concurrency { RCFG_FORBID = 0, RCFG_REPLACE = 1 } rcfg_concurrency_t;
typedef enum rcfg_mode { RCFG_MODE_CATALOG = 0, RCFG_MODE_SINGLE = 1 } rcfg_mode_t;

/* Return values of rcfg_load() besides 0. */
enum { RCFG_EIO = 1, RCFG_EINVALID = 2 };

/* Strings are NULL and numbers negative when not given. */
typedef struct rcfg {
	char *path;
	char *name;                     /* catalog name; rcfg_load() fills in the default */
	char *namespace_;
	char *schedule_name;
	char *schedule;
	char *time_zone;
	int suspend;                    /* -1, 0 or 1 */
	long long starting_deadline;
	int concurrency;                /* rcfg_concurrency_t; -1 when not given */
	int mode;                       /* rcfg_mode_t; -1 when not given */
	char *engine_name;
	char *engine_json;
	union {                         /* the storage URL: storage.url, or --storage */
		char *storage_url;
		char *storage;
	};
	rcfg_strlist_t storage_settings;        /* name, value, name, value, ... */
	char *compression;
	int level;
	int threads;
	int scrypt_work_factor;         /* CLI only (--scrypt-work-factor); -1 when not given */
	rcfg_strlist_t recipients;
	char *recipients_file;
	char *identity_file;
	char *passphrase_file;
	long long keep[RCFG_KEEP_COUNT];
	int64_t keep_within;
	rcfg_strlist_t keep_tags;
	long long history_successful;
	long long history_failed;
	long long deadline_backup;
	long long deadline_restore;
	long long deadline_verify;
	char *verify_schedule;
	char *verify_engine_name;
	char *verify_engine_json;
	long long verify_expect_rows;
	rcfg_strlist_t tags;
	char *api_listen;
	char *api_token;                /* from token or tokenFile */
	char *api_token_file;
	char *api_advertise_url;        /* how a database reaches the API (cockroach) */
	char *metrics_listen;           /* /metrics without the token, or NULL (off) */
} rcfg_t;

void rcfg_init(rcfg_t *c);
void rcfg_clear(rcfg_t *c);
/* Loads `path` into `c` (rcfg_init() first). Returns 0, RCFG_EINVALID (a bad document,
 * a missing file) or RCFG_EIO; *error then receives the message (free()). */
int rcfg_load(rcfg_t *c, const char *path, char **error);
/* The same for a document in memory; `name` stands for the file in messages and relative
 * paths. */
int rcfg_load_buffer(rcfg_t *c, const char *name, const char *buf, size_t len, char **error);
/* Applies defaults that depend on several fields (name). */
int rcfg_finish(rcfg_t *c, char **error);
/* Moves every setting that is given in `over` into `base` (a list replaces the whole
 * list); what is moved is no longer in `over`. For the CLI: config, then flags. */
void rcfg_merge(rcfg_t *base, rcfg_t *over);

int rcfg_strlist_add(rcfg_strlist_t *list, const char *item);
void rcfg_strlist_clear(rcfg_strlist_t *list);
/* "7d", "12h", "1w2d", "90m", "3600s" or plain seconds. -1 when invalid. */
int64_t rcfg_parse_duration(const char *text);
/* A non-negative decimal integer up to `max`. -1 when invalid. */
long long rcfg_parse_count(const char *text, long long max);
/* The retention policy of the config; it borrows the keep-tags list. */
/* Whether engine `name` has every capability in `flags` (BOP_ENGINE_*); false for NULL or
 * an unknown engine. */
bool rcfg_engine_can(const char *name, unsigned int flags);
/* The registered engines with every capability in `flags`, for messages: "cockroach,
 * exec, files, mysql or postgres" (free()); "" when out of memory. */
char *rcfg_engine_names(unsigned int flags);

void rcfg_retention_policy(const rcfg_t *c, bop_retention_policy_t *policy);
bool rcfg_has_retention(const rcfg_t *c);

#endif
