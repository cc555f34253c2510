/*
 * Plug-in API: writing an engine. Embed bop_engine_t as the first member of your struct,
 * fill in the vtable with BOP_ENGINE_INIT(), and register an open function under a name
 * with bop_engine_register(). See examples/ for a complete engine.
 *
 * Memory a slot hands to the library (pod_customize's *patch_json) comes from bop_strdup()
 * or bop_malloc(): the library and its callers free it with bop_free().
 */
#ifndef BACKUPOP_SYS_ENGINE_H
#define BACKUPOP_SYS_ENGINE_H

#include "../common.h"
#include "../engine.h"
#include "io.h"

BOP_BEGIN_DECL

#define BOP_ENGINE_VERSION 1

/* A struct bop_engine with its version filled in and the members you name, the others
 * NULL (or 0): s->base = (bop_engine_t)BOP_ENGINE_INIT(.backup = my_backup,
 * .restore = my_restore, .free = my_free); see BOP_STORAGE_INIT in <backupop/sys/storage.h>. */
#define BOP_ENGINE_INIT(...) { .version = BOP_ENGINE_VERSION, __VA_ARGS__ }

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
