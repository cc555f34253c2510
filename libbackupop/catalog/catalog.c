/*
 * The catalog: the backups of one name in a storage. A backup is "<name>/<id>/" with a
 * data object and a manifest.json; it exists exactly when its manifest does. Directly
 * under "<name>/" are the lock and its takeover claims; any other directory there is
 * another catalog's ("<name>/db" is a catalog of its own) or the runner's run records
 * ("<name>/runs/"), and the catalog's cleanup never touches it. That is why a catalog
 * name cannot have a part that storage or the catalog would read as its own (see
 * check_name()).
 */
#include "lock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MANIFEST_LEAF "manifest.json"
#define MANIFEST_MAX_SIZE (64u << 20)

struct bop_catalog {
	bop_storage_t *storage;         /* borrowed */
	char *name;
	char *prefix;                   /* "<name>/" */
	volatile sig_atomic_t canceled; /* set by bop_catalog_cancel() */
};

/* Keys collected by a listing, so that no I/O happens inside the backend's callback. */
typedef struct key_list {
	char **keys;
	size_t count;
	size_t cap;
	int error;
} key_list_t;

bop_storage_t *bop__catalog_storage(const bop_catalog_t *catalog)
{
	return catalog->storage;
}

const char *bop__catalog_name(const bop_catalog_t *catalog)
{
	return catalog->name;
}

/* The start time of a backup id as bop__catalog_new_id() makes them
 * ("20261121T020000Z-k3f9"), from its first `n` characters; -1 if it is not one. With
 * `prefix_only`, only the time part must be there. */
static int64_t id_time(const char *s, size_t n, bool prefix_only)
{
	static const char pattern[] = "DDDDDDDDTDDDDDDZ-";
	struct tm tm = { 0 };
	size_t plen = sizeof(pattern) - 1;

	if (n < plen - 1)
		return -1;
	for (size_t i = 0; i < plen - 1; i++) {
		if (pattern[i] == 'D' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != pattern[i])
			return -1;
	}
	if (!prefix_only) {
		if (n <= plen || s[plen - 1] != '-')
			return -1;
		for (size_t i = plen; i < n; i++) {
			if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
				return -1;
		}
	}
	if (sscanf(s, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
	    &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm);
}

/* Why the part `s` (`n` characters) of a catalog name is one storage or the catalog would
 * read as its own, or NULL. (Empty, "." and ".." parts are bop__catalog_path_valid()'s.) */
static const char *reserved_part(const char *s, size_t n)
{
	if (memmem(s, n, ".tmp-", 5))
		return "a part containing \".tmp-\" would be taken for a temporary file";
	if (n >= 9 && !strncmp(s, "lock.json", 9))
		return "\"lock.json\" is the catalog's lock";
	if (n == 13 && !strncmp(s, "manifest.json", 13))
		return "\"manifest.json\" is a backup's manifest";
	if (id_time(s, n, true) >= 0)
		return "a part that starts like a backup id (\"20261121T020000Z\") would be taken "
			"for a backup of the catalog above";
	return NULL;
}

/* The one check of catalog names, for the command line tool and the runner alike. */
static int check_name(const char *name)
{
	const char *p = name, *why = NULL;

	if (!bop__catalog_path_valid(name))
		return bop__error(BOP_EINVAL, "invalid catalog name \"%s\": use '/'-separated "
			"names of printable characters without empty, \".\" or \"..\" parts and "
			"without a leading '/'", name);
	while (!why) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		why = reserved_part(p, n);
		if (!slash)
			break;
		p = slash + 1;
	}
	if (why)
		return bop__error(BOP_EINVAL, "invalid catalog name \"%s\": %s", name, why);
	return 0;
}

BOP_EXTERN(int) bop_catalog_open(bop_catalog_t **out, bop_storage_t *storage, const char *name)
{
	bop_catalog_t *c;

	if (!out || !storage || !name)
		return bop__error(BOP_EINVAL, "bop_catalog_open: invalid arguments");
	*out = NULL;
	if (check_name(name) < 0)
		return BOP_EINVAL;
	c = bop__calloc(1, sizeof(*c));
	if (!c)
		return BOP_ENOMEM;
	c->storage = storage;
	c->name = bop__strdup(name);
	c->prefix = bop__sprintf("%s/", name);
	if (!c->name || !c->prefix) {
		bop_catalog_free(c);
		return BOP_ENOMEM;
	}
	*out = c;
	return 0;
}

BOP_EXTERN(void) bop_catalog_cancel(bop_catalog_t *catalog)
{
	if (catalog)
		catalog->canceled = 1;
}

volatile sig_atomic_t *bop__catalog_cancel_flag(bop_catalog_t *catalog)
{
	return &catalog->canceled;
}

BOP_EXTERN(void) bop_catalog_free(bop_catalog_t *catalog)
{
	if (!catalog)
		return;
	free(catalog->name);
	free(catalog->prefix);
	free(catalog);
}

static void key_list_clear(key_list_t *kl)
{
	for (size_t i = 0; i < kl->count; i++)
		free(kl->keys[i]);
	free(kl->keys);
	memset(kl, 0, sizeof(*kl));
}

static int collect_key(const char *key, const bop_storage_stat_t *st, void *payload)
{
	key_list_t *kl = payload;

	BOP_UNUSED(st);
	if (kl->count == kl->cap) {
		size_t cap = kl->cap ? kl->cap * 2 : 32;
		char **keys = realloc(kl->keys, cap * sizeof(*keys));

		if (!keys) {
			kl->error = bop__error_oom();
			return 1;
		}
		kl->keys = keys;
		kl->cap = cap;
	}
	kl->keys[kl->count] = bop__strdup(key);
	if (!kl->keys[kl->count]) {
		kl->error = BOP_ENOMEM;
		return 1;
	}
	kl->count++;
	return 0;
}

static int list_keys(bop_catalog_t *c, const char *prefix, key_list_t *kl)
{
	int ret;

	memset(kl, 0, sizeof(*kl));
	ret = bop_storage_list(c->storage, prefix, collect_key, kl);
	if (kl->error < 0)
		ret = kl->error;
	if (ret < 0)
		key_list_clear(kl);
	return ret;
}

/* The id of "<name>/<id>/manifest.json", or NULL for any other key. */
static char *manifest_key_id(const bop_catalog_t *c, const char *key)
{
	const char *rest, *slash;
	char *id;

	if (strncmp(key, c->prefix, strlen(c->prefix)) != 0)
		return NULL;
	rest = key + strlen(c->prefix);
	slash = strchr(rest, '/');
	if (!slash || strcmp(slash + 1, MANIFEST_LEAF) != 0)
		return NULL;
	id = bop__strndup(rest, (size_t)(slash - rest));
	if (id && !bop__catalog_id_valid(id)) {
		free(id);
		return NULL;
	}
	return id;
}

static int read_manifest(bop_catalog_t *c, const char *key, bop_manifest_t **out)
{
	char *json = NULL;
	size_t len = 0;
	int ret;

	ret = bop__storage_get_bytes(c->storage, key, &json, &len, MANIFEST_MAX_SIZE);
	if (ret == 0)
		ret = bop_manifest_parse(out, json, len);
	free(json);
	return ret;
}

/* Reads one listed manifest into the list. A damaged one, or one whose id does not match
 * its place, is skipped with a warning: it is not a backup we could restore by its id. */
static int load_listed(bop_catalog_t *c, const char *key, const char *id,
	bop_manifest_list_t *list)
{
	bop_manifest_t *m = NULL;
	int ret = read_manifest(c, key, &m);

	if (ret == BOP_ENOTFOUND)
		return 0;               /* removed while we listed */
	if (ret == BOP_EFORMAT || ret == BOP_EINVAL) {
		bop__log(BOP_LOG_WARN, "catalog", "skipping %s: %s", key, bop_error_last());
		return 0;
	}
	if (ret < 0)
		return bop__error_wrap("reading %s", key);
	if (strcmp(bop_manifest_id(m), id) != 0) {
		bop__log(BOP_LOG_WARN, "catalog", "skipping %s: it describes backup %s", key,
			bop_manifest_id(m));
		bop_manifest_free(m);
		return 0;
	}
	return bop__manifest_list_append(list, m);
}

BOP_EXTERN(int) bop_catalog_list(bop_catalog_t *catalog, bop_manifest_list_t **out)
{
	bop_manifest_list_t *list = NULL;
	key_list_t kl;
	int ret;

	if (!catalog || !out)
		return bop__error(BOP_EINVAL, "bop_catalog_list: invalid arguments");
	*out = NULL;
	ret = list_keys(catalog, catalog->prefix, &kl);
	if (ret < 0)
		return bop__error_wrap("listing the backups of %s", catalog->name);
	ret = bop__manifest_list_new(&list);
	for (size_t i = 0; ret == 0 && i < kl.count; i++) {
		char *id = manifest_key_id(catalog, kl.keys[i]);

		if (id)
			ret = load_listed(catalog, kl.keys[i], id, list);
		free(id);
	}
	key_list_clear(&kl);
	if (ret < 0) {
		bop_manifest_list_free(list);
		return ret;
	}
	bop__manifest_list_sort(list);
	*out = list;
	return 0;
}

static int get_by_id(bop_catalog_t *c, bop_manifest_t **out, const char *id)
{
	char *key;
	int ret;

	if (!bop__catalog_id_valid(id))
		return bop__error(BOP_EINVAL, "invalid backup id \"%s\"", id);
	key = bop__sprintf("%s%s/" MANIFEST_LEAF, c->prefix, id);
	if (!key)
		return BOP_ENOMEM;
	ret = read_manifest(c, key, out);
	if (ret == BOP_ENOTFOUND)
		ret = bop__error(BOP_ENOTFOUND, "there is no backup %s in %s", id, c->name);
	else if (ret < 0)
		ret = bop__error_wrap("reading backup %s of %s", id, c->name);
	else if (strcmp(bop_manifest_id(*out), id) != 0) {
		bop_manifest_free(*out);
		*out = NULL;
		ret = bop__error(BOP_EFORMAT, "the manifest %s describes another backup", key);
	}
	free(key);
	return ret;
}

BOP_EXTERN(int) bop_catalog_get(bop_catalog_t *catalog, bop_manifest_t **out, const char *id)
{
	bop_manifest_list_t *list = NULL;
	size_t n;
	int ret;

	if (!catalog || !out || !id)
		return bop__error(BOP_EINVAL, "bop_catalog_get: invalid arguments");
	*out = NULL;
	if (strcmp(id, "latest") != 0)
		return get_by_id(catalog, out, id);
	ret = bop_catalog_list(catalog, &list);
	if (ret < 0)
		return ret;
	n = bop_manifest_list_count(list);
	if (n == 0)
		ret = bop__error(BOP_ENOTFOUND, "there are no backups in %s", catalog->name);
	else
		ret = get_by_id(catalog, out, bop_manifest_id(bop_manifest_list_get(list, n - 1)));
	bop_manifest_list_free(list);
	return ret;
}

/* Removes every object below "<name>/<id>/": the data, whatever its suffix. */
static int remove_objects(bop_catalog_t *c, const char *id)
{
	char *prefix = bop__sprintf("%s%s/", c->prefix, id);
	key_list_t kl;
	int ret;

	if (!prefix)
		return BOP_ENOMEM;
	ret = list_keys(c, prefix, &kl);
	free(prefix);
	if (ret < 0)
		return ret;
	ret = bop_storage_remove_many(c->storage, (const char *const *)kl.keys, kl.count);
	key_list_clear(&kl);
	return ret;
}

BOP_EXTERN(int) bop_catalog_remove(bop_catalog_t *catalog, const char *id)
{
	char *key;
	int ret;

	if (!catalog || !id)
		return bop__error(BOP_EINVAL, "bop_catalog_remove: invalid arguments");
	if (!bop__catalog_id_valid(id))
		return bop__error(BOP_EINVAL, "invalid backup id \"%s\"", id);
	key = bop__sprintf("%s%s/" MANIFEST_LEAF, catalog->prefix, id);
	if (!key)
		return BOP_ENOMEM;
	/* The manifest goes first: from then on the backup does not exist. */
	ret = bop_storage_remove(catalog->storage, key);
	free(key);
	if (ret == BOP_ENOTFOUND)
		return bop__error(BOP_ENOTFOUND, "there is no backup %s in %s", id, catalog->name);
	if (ret < 0)
		return bop__error_wrap("removing backup %s of %s", id, catalog->name);
	ret = remove_objects(catalog, id);
	if (ret < 0)
		return bop__error_wrap("backup %s of %s is removed, but its data may remain", id,
			catalog->name);
	return 0;
}

/* ---- garbage collection ---- */

/* A backup starts after its writer took the lock; its id has a whole-second time. */
#define GC_LOCK_SLACK 2

typedef struct gc {
	bop_catalog_t *c;
	int64_t cutoff;                 /* ids started after this are too young */
	int dry_run;
	bop__lock_view_t lock;
	key_list_t prefixes;            /* where the storage's leftovers were found */
	bop_storage_list_cb cb;
	void *payload;
	size_t found;
} gc_t;

/*
 * Whether `key` is the catalog's to clean up, and the prefix that holds it: "<name>/<id>/"
 * for what is below a backup id made by bop__catalog_new_id(), or the key itself for
 * what is directly under "<name>/". Anything else (a nested catalog, the runner's records)
 * is not the catalog's: 0. `*t` is the id's start time, or -1.
 */
static size_t owned_prefix(const bop_catalog_t *c, const char *key, int64_t *t)
{
	size_t plen = strlen(c->prefix);
	const char *rest, *slash;

	*t = -1;
	if (strncmp(key, c->prefix, plen) != 0)
		return 0;
	rest = key + plen;
	slash = strchr(rest, '/');
	if (!slash)
		return *rest ? strlen(key) : 0;
	*t = id_time(rest, (size_t)(slash - rest), false);
	if (*t < 0)
		return 0;
	return (size_t)(slash + 1 - key);
}

/* Whether a backup started at `t` may be the one the live lock's holder is writing. */
static bool gc_covered(const gc_t *g, int64_t t)
{
	return g->lock.live && (t < 0 || t + GC_LOCK_SLACK >= g->lock.since);
}

static int gc_report(gc_t *g, const char *key, const bop_storage_stat_t *st)
{
	int ret = 0;

	g->found++;
	if (g->cb)
		ret = g->cb(key, st, g->payload);
	return ret;
}

static int add_prefix(key_list_t *kl, const char *key, size_t n)
{
	char *p = bop__strndup(key, n);
	int ret;

	if (!p) {
		kl->error = BOP_ENOMEM;
		return 1;
	}
	for (size_t i = 0; i < kl->count; i++) {
		if (!strcmp(kl->keys[i], p)) {
			free(p);
			return 0;
		}
	}
	ret = collect_key(p, NULL, kl);
	free(p);
	return ret;
}

/* bop_storage_cleanup() callback, first pass: finds where the catalog's leftovers are. */
static int gc_find(const char *key, const bop_storage_stat_t *st, void *payload)
{
	gc_t *g = payload;
	int64_t t;
	size_t n = owned_prefix(g->c, key, &t);

	if (n == 0 || gc_covered(g, t))
		return 0;
	if (g->dry_run)
		return gc_report(g, key, st);
	return add_prefix(&g->prefixes, key, n);
}

/* Second pass, under one of the prefixes found: everything there is the catalog's. */
static int gc_take(const char *key, const bop_storage_stat_t *st, void *payload)
{
	return gc_report(payload, key, st);
}

static int gc_leftovers(gc_t *g, int64_t older_than)
{
	bop_storage_t *s = g->c->storage;
	int ret;

	ret = bop_storage_cleanup(s, g->c->prefix, older_than, 1, gc_find, g);
	if (ret == BOP_ENOTSUPPORTED) {
		bop_error_clear();
		return 0;
	}
	if (ret == 0 && g->prefixes.error < 0)
		ret = g->prefixes.error;
	if (ret < 0 || g->dry_run || g->prefixes.count == 0)
		return ret;
	/* A writer may have taken the lock since: look again before removing. */
	if ((ret = bop__lock_view(g->c, &g->lock)) < 0)
		return ret;
	for (size_t i = 0; ret == 0 && i < g->prefixes.count; i++) {
		const char *p = g->prefixes.keys[i];
		int64_t t;

		if (owned_prefix(g->c, p, &t) && gc_covered(g, t))
			continue;
		ret = bop_storage_cleanup(s, p, older_than, 0, gc_take, g);
	}
	return ret;
}

static int compare_keys(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The objects of ids without a manifest: data whose backup never committed. */
static int gc_orphans(gc_t *g)
{
	bop_storage_stat_t st = { BOP_STORAGE_STAT_VERSION, 0, 0 };
	key_list_t kl;
	size_t i = 0;
	int ret;

	ret = list_keys(g->c, g->c->prefix, &kl);
	if (ret < 0)
		return ret;
	if (kl.count > 1)
		qsort(kl.keys, kl.count, sizeof(*kl.keys), compare_keys);
	if (!g->dry_run && (ret = bop__lock_view(g->c, &g->lock)) < 0)
		goto out;
	while (ret == 0 && i < kl.count) {
		int64_t t;
		size_t n = owned_prefix(g->c, kl.keys[i], &t), end = i + 1;
		bool has_manifest = false;

		if (n == 0 || t < 0) {
			i++;
			continue;
		}
		while (end < kl.count && !strncmp(kl.keys[end], kl.keys[i], n))
				end++;
		for (size_t k = i; k < end; k++)
			has_manifest |= !strcmp(kl.keys[k] + n, MANIFEST_LEAF);
		if (t >= 0 && t <= g->cutoff && !has_manifest && !gc_covered(g, t)) {
			for (size_t k = i; ret == 0 && k < end; k++)
				ret = gc_report(g, kl.keys[k], &st);
			if (ret == 0 && !g->dry_run)
				ret = bop_storage_remove_many(g->c->storage,
					(const char *const *)kl.keys + i, end - i);
		}
		i = end;
	}
out:
	key_list_clear(&kl);
	return ret;
}

static int gc_lock_report(const char *key, const bop_storage_stat_t *st, void *payload)
{
	return gc_report(payload, key, st);
}

BOP_EXTERN(int) bop_catalog_gc(bop_catalog_t *catalog, int64_t older_than_seconds,
	int dry_run, bop_storage_list_cb cb, void *payload)
{
	gc_t g;
	int ret;

	if (!catalog || older_than_seconds < 0)
		return bop__error(BOP_EINVAL, "bop_catalog_gc: invalid arguments");
	memset(&g, 0, sizeof(g));
	g.c = catalog;
	g.cutoff = bop__now() - older_than_seconds;
	g.dry_run = dry_run;
	g.cb = cb;
	g.payload = payload;
	ret = bop__lock_collect(catalog, dry_run, gc_lock_report, &g, &g.lock);
	if (ret == 0)
		ret = gc_leftovers(&g, older_than_seconds);
	if (ret == 0)
		ret = gc_orphans(&g);
	key_list_clear(&g.prefixes);
	if (ret > 0)
		ret = 0;
	if (ret < 0)
		return bop__error_wrap("cleaning up %s", catalog->name);
	return 0;
}
