/*
 * The catalog: the backups of one name in a storage. A backup is "<name>/<id>/" with a
 * data object and a manifest.json; it exists exactly when its manifest does.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

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

BOP_EXTERN(int) bop_catalog_open(bop_catalog_t **out, bop_storage_t *storage, const char *name)
{
	bop_catalog_t *c;

	if (!out || !storage || !name)
		return bop__error(BOP_EINVAL, "bop_catalog_open: invalid arguments");
	*out = NULL;
	if (!bop__catalog_path_valid(name))
		return bop__error(BOP_EINVAL, "invalid catalog name \"%s\": use '/'-separated "
			"names without empty, \".\" or \"..\" parts and without a leading '/'", name);
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
