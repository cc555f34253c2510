/* What every engine needs to read its JSON configuration. Private to libbackupop. */
#ifndef BOP_ENGINE_CONFIG_H
#define BOP_ENGINE_CONFIG_H

#include <json-c/json.h>

#include "internal.h"

/* Parses `text` as exactly one JSON object (strict: no trailing comma, nothing after it,
 * at most 1 MiB). On a text that is not an object the message shows `example`, the
 * engine's smallest valid configuration. *out is a new reference. */
int bop__engine_config_parse(const char *text, const char *example, json_object **out);

/* bop__engine_config_parse() and then field(ud, key, value) for each member in order,
 * stopping at the first that fails (its return value). */
int bop__engine_config_read(const char *text, const char *example,
	int (*field)(void *ud, const char *key, json_object *val), void *ud);

/* What bop__engine_new() needs to know of a built-in engine. Its struct starts with the
 * bop_engine_t. */
typedef struct bop__engine_kind {
	bop_engine_t ops;               /* version and functions, copied into each engine */
	size_t size;                    /* of the engine's struct */
	const char *example;            /* its smallest valid configuration, for messages */
	int (*defaults)(bop_engine_t *engine);         /* before the config is read; may be NULL */
	int (*field)(void *engine, const char *key, json_object *val);
	int (*check)(bop_engine_t *engine);            /* after it was read; may be NULL */
} bop__engine_kind_t;

/* A new engine of `kind` configured from `config_json`: defaults, then field() for each
 * member (bop__engine_config_read()), then check(). On failure kind->ops.free frees what
 * was made. */
int bop__engine_new(bop_engine_t **out, const bop__engine_kind_t *kind, const char *config_json);

#endif
