/*
 * Engines know how to produce a backup stream from a database or application and how to
 * feed one back. Built in: "exec" (user commands). Third parties implement
 * <backupop/sys/engine.h> and register a name.
 *
 * An engine is configured with a JSON object text, the engine's block of the config file,
 * e.g. for exec: {"backupCommand": ["pg_dumpall"], "restoreCommand": ["psql"],
 * "env": {"PGHOST": "db"}, "shell": false, "timeoutSeconds": 3600}.
 */
#ifndef BACKUPOP_ENGINE_H
#define BACKUPOP_ENGINE_H

#include "common.h"
#include "io.h"

BOP_BEGIN_DECL

typedef struct bop_engine bop_engine_t;

/* Creates engine `name` from its JSON config. BOP_ENOTFOUND for an unknown engine,
 * BOP_EINVAL for a bad config (the message names the field). */
BOP_EXTERN(int) bop_engine_open(bop_engine_t **out, const char *name, const char *config_json);

/* Accepts NULL. */
BOP_EXTERN(void) bop_engine_free(bop_engine_t *engine);

/* Checks that the engine can run here (tools present, settings coherent). */
BOP_EXTERN(int) bop_engine_validate(bop_engine_t *engine);

/* Starts a backup: the returned source yields the backup stream. */
BOP_EXTERN(int) bop_engine_backup(bop_engine_t *engine, bop_source_t **out);

/* Starts a restore: the returned sink consumes the backup stream. Aborting the sink must
 * leave the target as it was where the database allows it. */
BOP_EXTERN(int) bop_engine_restore(bop_engine_t *engine, bop_sink_t **out);

/* What the engine adds to a runner pod, as a JSON object to merge into the pod spec
 * (may be "{}"). Free with bop_free(). */
BOP_EXTERN(int) bop_engine_pod_customize(bop_engine_t *engine, char **patch_json);

/* Creates an engine from its JSON config. */
typedef int (*bop_engine_open_fn)(bop_engine_t **out, const char *config_json, void *payload);

/* Registers an engine name with what the engine can do besides backup and restore (a
 * combination of bop_engine_capability_t flags, 0 for none). BOP_EEXISTS if taken. */
BOP_EXTERN(int) bop_engine_register(const char *name, unsigned int capabilities,
	bop_engine_open_fn open, void *payload);

/* What an engine can do besides backing up and restoring one stream. An engine declares
 * them when it is registered, so callers can ask by name before any engine is configured
 * (bop_engine_capabilities()) instead of knowing engines by name. */
typedef enum bop_engine_capability {
	/* It counts the rows of the database it restores into (bop_engine_count_rows()):
	 * the row check after a test restore (postgres, mysql). */
	BOP_ENGINE_COUNTS_ROWS = 1 << 0,
	/* Its backup is many named files, not one stream: the database itself sends them to
	 * an HTTP endpoint that the caller serves for the run, and reads them back from it
	 * to restore. The caller adds the endpoint's URL to the engine's configuration as
	 * "endpointURL"; the backup source then yields no data (it ends when the database
	 * is done) and the restore sink takes none (commit runs the restore). A backup of
	 * many files needs a catalog that can hold them (cockroach). */
	BOP_ENGINE_MULTI_FILE = 1 << 1,
} bop_engine_capability_t;

/* The capabilities engine `name` was registered with. BOP_ENOTFOUND for an unknown
 * engine (the message lists the known ones). */
BOP_EXTERN(int) bop_engine_capabilities(unsigned int *out, const char *name);

/* The names of the registered engines that have every capability in `capabilities` (0:
 * all engines), sorted, as a NULL-terminated array. The array and its strings are one
 * block: free it with bop_free(). */
BOP_EXTERN(int) bop_engine_names(char ***out, unsigned int capabilities);

/* Counts the user tables of the database that the engine restores into, and their rows
 * (BOP_ENGINE_COUNTS_ROWS), e.g. in a scratch database after a test restore. With
 * `tables` and `rows` both NULL it only checks, without connecting, that the
 * configuration allows counting (one database, not all of them). BOP_ENOTSUPPORTED when
 * the engine or its configuration cannot count; the message says why. */
BOP_EXTERN(int) bop_engine_count_rows(bop_engine_t *engine, int64_t *tables, int64_t *rows);

/* One warning of bop_engine_warnings(): `field` is the configuration field it is about
 * ("restore"; "" for the configuration as a whole), `message` what may go wrong. Both
 * are valid during the call only. */
typedef void (*bop_engine_warning_cb)(const char *field, const char *message, void *payload);

/* Passes each warning the engine has about its configuration to `cb`: settings that are
 * valid but risky, such as a restore that cannot roll back. The engine does not log
 * them: the caller shows them next to the configuration (a config file's line, an
 * event). Nothing is passed when there is nothing to say. */
BOP_EXTERN(int) bop_engine_warnings(bop_engine_t *engine, bop_engine_warning_cb cb,
	void *payload);

BOP_END_DECL

#endif
