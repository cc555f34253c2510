/*
 * Plug-in API: writing a storage backend. Embed bop_storage_t as the first member of your
 * struct, fill in the vtable with BOP_STORAGE_INIT(), and register an open function for
 * your URL scheme with bop_storage_register(). The semantics are those of
 * <backupop/storage.h>: in particular an object written by `put` must not be visible under
 * its key before the sink commits. See examples/ for a complete backend.
 */
#ifndef BACKUPOP_SYS_STORAGE_H
#define BACKUPOP_SYS_STORAGE_H

#include "../common.h"
#include "../storage.h"
#include "io.h"

BOP_BEGIN_DECL

#define BOP_STORAGE_VERSION 1

/* A struct bop_storage with its version filled in and the members you name, the others
 * NULL:
 *   static const bop_storage_t vtable = BOP_STORAGE_INIT(.put = my_put, .get = my_get,
 *   	.stat = my_stat, .list = my_list, .remove = my_remove, .free = my_free);
 *   s->base = vtable;
 * or, in a statement, s->base = (bop_storage_t)BOP_STORAGE_INIT(...). */
#define BOP_STORAGE_INIT(...) { .version = BOP_STORAGE_VERSION, __VA_ARGS__ }

struct bop_storage {
	unsigned int version;          /* BOP_STORAGE_VERSION (BOP_STORAGE_INIT sets it) */
	int (*put)(bop_storage_t *storage, bop_sink_t **out, const char *key,
		const bop_put_options_t *opts);   /* opts is never NULL */
	int (*get)(bop_storage_t *storage, bop_source_t **out, const char *key, uint64_t offset);
	int (*stat)(bop_storage_t *storage, bop_storage_stat_t *st, const char *key);
	int (*list)(bop_storage_t *storage, const char *prefix, bop_storage_list_cb cb,
		void *payload);
	int (*remove)(bop_storage_t *storage, const char *key);
	void (*free)(bop_storage_t *storage);
	/* bop_storage_cleanup(); may be NULL (nothing to clean up). */
	int (*cleanup)(bop_storage_t *storage, const char *prefix, int64_t older_than_seconds,
		int dry_run, bop_storage_list_cb cb, void *payload);
	/* bop_storage_remove_many(); may be NULL (then `remove` is called for each key). */
	int (*remove_many)(bop_storage_t *storage, const char *const *keys, size_t n);
};

BOP_END_DECL

#endif
