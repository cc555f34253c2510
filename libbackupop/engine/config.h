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

/* The members of `val`, the value of the field `name` ("restore"), passed in order to
 * member(ud, key, value) as for bop__engine_config_read(). A value that is not an object
 * is refused with a message showing `example`. */
int bop__engine_config_object(json_object *val, const char *name, const char *example,
	int (*member)(void *ud, const char *key, json_object *val), void *ud);

/* The error for the unknown field `key` of the object in field `name` (NULL: of the
 * configuration itself); `known` lists the fields there are. */
int bop__engine_unknown_field(const char *name, const char *key, const char *known);

/* What bop__engine_kind_open() needs to know of a built-in engine. Its struct starts with
 * the bop_engine_t. */
typedef struct bop__engine_kind {
	bop_engine_t ops;               /* version and functions, copied into each engine */
	size_t size;                    /* of the engine's struct */
	const char *example;            /* its smallest valid configuration, for messages */
	unsigned int capabilities;      /* BOP_ENGINE_* flags it is registered with */
	int (*defaults)(bop_engine_t *engine);         /* before the config is read; may be NULL */
	int (*field)(void *engine, const char *key, json_object *val);
	int (*check)(bop_engine_t *engine);            /* after it was read; may be NULL */
} bop__engine_kind_t;

/* bop__engine_kind_open() (internal.h), the open function of every built-in engine, makes
 * a new engine of the bop__engine_kind_t it gets as payload, configured from
 * `config_json`: defaults(), then field() for each member (bop__engine_config_read()),
 * then check(). On failure kind->ops.free frees what was made. */

#endif
