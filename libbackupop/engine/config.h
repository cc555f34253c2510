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

#endif
