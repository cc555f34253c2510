/*
 * Plug-in API: writing an engine. Embed bop_engine_t as the first member of your struct,
 * fill in the vtable, and register an open function under a name with
 * bop_engine_register(). See examples/ for a complete engine.
 */
#ifndef BACKUPOP_SYS_ENGINE_H
#define BACKUPOP_SYS_ENGINE_H

#include "../common.h"
#include "../engine.h"
#include "io.h"

BOP_BEGIN_DECL

#define BOP_ENGINE_VERSION 1

struct bop_engine {
	unsigned int version;          /* BOP_ENGINE_VERSION */
	int (*validate)(bop_engine_t *engine);                    /* may be NULL */
	int (*backup)(bop_engine_t *engine, bop_source_t **out);
	int (*restore)(bop_engine_t *engine, bop_sink_t **out);
	int (*pod_customize)(bop_engine_t *engine, char **patch_json);  /* may be NULL */
	void (*free)(bop_engine_t *engine);
	/* bop_engine_count_rows(); may be NULL (the engine cannot count rows). Its name
	 * should be registered with BOP_ENGINE_COUNTS_ROWS. `tables` and `rows` are both
	 * NULL for the check without connecting, else both non-NULL. */
	int (*count_rows)(bop_engine_t *engine, int64_t *tables, int64_t *rows);
	/* bop_engine_warnings(); may be NULL (nothing to warn about). */
	int (*warnings)(bop_engine_t *engine, bop_engine_warning_cb cb, void *payload);
};

BOP_END_DECL

#endif
