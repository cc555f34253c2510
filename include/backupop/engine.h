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

/* Registers an engine name. BOP_EEXISTS if taken. */
BOP_EXTERN(int) bop_engine_register(const char *name, bop_engine_open_fn open, void *payload);

BOP_END_DECL

#endif
