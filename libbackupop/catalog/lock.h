/* The catalog lock, as the catalog's garbage collection sees it (catalog/lock.c). */
#ifndef BOP_CATALOG_LOCK_H
#define BOP_CATALOG_LOCK_H

#include "internal.h"

/* What a catalog's cleanup must leave alone because of its lock. */
typedef struct bop__lock_view {
	bool live;              /* held, not expired, and its holder not provably dead */
	int64_t since;          /* when the live lock was taken (0: unknown, so everything) */
} bop__lock_view_t;

/* Reads the lock of `catalog` into `view` (no lock: not live). */
int bop__lock_view(bop_catalog_t *catalog, bop__lock_view_t *view);

/* Removes (unless `dry_run`) a lock that has expired or whose holder is provably dead, and
 * takeover claims left by takers that died, calling `cb` with each key first. Then fills
 * `view` as bop__lock_view() does. */
int bop__lock_collect(bop_catalog_t *catalog, int dry_run, bop_storage_list_cb cb,
	void *payload, bop__lock_view_t *view);

#endif
