/*
 * Example storage backend: "memory://NAME", objects kept in this process's memory.
 *
 * It is built only against libbackupop's public headers, as a backend outside the library
 * would be, and shows the three things every backend must get right:
 *
 *   1. Embed the vtable (bop_storage_t, bop_sink_t) as the FIRST member of your own
 *      structs and set its `version`, so libbackupop can call you through it.
 *   2. An object written by put() becomes visible under its key only when the sink is
 *      committed. Until then it lives in the sink; abort (or free without commit) just
 *      drops it. With `exclusive`, commit fails with BOP_EEXISTS if the key appeared.
 *   3. Return the documented codes: BOP_ENOTFOUND for a missing key, BOP_EEXISTS,
 *      BOP_EINVAL... libbackupop adds a message naming the operation and the key.
 *
 * Every storage opened on the same NAME shares one store; the store (and its objects)
 * lives as long as a storage or an unfinished sink refers to it. Keys reach the backend
 * already validated (relative, no "..", no empty segment), so they need no checks here.
 */
#include <backupop.h>
#include <backupop/sys/storage.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "memory-storage.h"

#define SCHEME "memory"
#define PREFIX SCHEME "://"

typedef struct object {
	struct object *next;
	char *key;
	unsigned char *data;
	size_t len;
	int64_t mtime;
} object_t;

/* A named store, shared by every storage on memory://NAME. */
typedef struct store {
	struct store *next;
	char *name;
	object_t *objects;
	unsigned int refs;
} store_t;

/* One lock for all stores keeps the example short; a real backend would do finer. */
static pthread_mutex_t stores_lock = PTHREAD_MUTEX_INITIALIZER;
static store_t *stores;

/* ---- the shared stores (all called with stores_lock held) ---- */

static void object_free(object_t *o)
{
	free(o->key);
	free(o->data);
	free(o);
}

static store_t *store_get_locked(const char *name)
{
	store_t *s;

	for (s = stores; s; s = s->next) {
		if (strcmp(s->name, name) == 0) {
			s->refs++;
			return s;
		}
	}
	s = calloc(1, sizeof(*s));
	if (!s || !(s->name = strdup(name))) {
		free(s);
		return NULL;
	}
	s->refs = 1;
	s->next = stores;
	stores = s;
	return s;
}

static void store_put_locked(store_t *s)
{
	store_t **pp;

	if (--s->refs > 0)
		return;
	for (pp = &stores; *pp != s; pp = &(*pp)->next)
		;
	*pp = s->next;
	while (s->objects) {
		object_t *o = s->objects;

		s->objects = o->next;
		object_free(o);
	}
	free(s->name);
	free(s);
}

static object_t **find_locked(store_t *s, const char *key)
{
	object_t **pp;

	for (pp = &s->objects; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->key, key) == 0)
			return pp;
	return NULL;
}

/* ---- the sink returned by put(): buffers until commit ---- */

typedef struct memory_sink {
	bop_sink_t base;        /* first member: libbackupop calls through it */
	store_t *store;         /* a reference, so the sink may outlive its storage */
	char *key;
	unsigned char *data;
	size_t len, cap;
	int exclusive;
	int done;               /* committed or aborted */
} memory_sink_t;

static int sink_write(bop_sink_t *base, const void *buf, size_t len)
{
	memory_sink_t *ms = (memory_sink_t *)base;

	if (ms->done)
		return BOP_EINVAL;
	if (ms->cap - ms->len < len) {
		size_t cap = ms->cap ? ms->cap : 4096;
		unsigned char *grown;

		while (cap - ms->len < len)
			cap *= 2;
		grown = realloc(ms->data, cap);
		if (!grown)
			return BOP_ENOMEM;
		ms->data = grown;
		ms->cap = cap;
	}
	memcpy(ms->data + ms->len, buf, len);
	ms->len += len;
	return 0;
}

/* The one place where an object becomes visible: under the lock, all at once. */
static int sink_commit(bop_sink_t *base)
{
	memory_sink_t *ms = (memory_sink_t *)base;
	object_t **existing, *o;
	int ret = 0;

	if (ms->done)
		return BOP_EINVAL;
	pthread_mutex_lock(&stores_lock);
	existing = find_locked(ms->store, ms->key);
	if (existing && ms->exclusive) {
		ret = BOP_EEXISTS;
		goto out;
	}
	if (existing) {
		o = *existing;
		free(o->data);
	} else {
		o = calloc(1, sizeof(*o));
		if (!o) {
			ret = BOP_ENOMEM;
			goto out;
		}
		o->key = ms->key;       /* ownership moves to the object */
		ms->key = NULL;
		o->next = ms->store->objects;
		ms->store->objects = o;
	}
	o->data = ms->data;
	o->len = ms->len;
	o->mtime = (int64_t)time(NULL);
	ms->data = NULL;
out:
	pthread_mutex_unlock(&stores_lock);
	ms->done = 1;
	return ret;
}

static void sink_abort(bop_sink_t *base)
{
	memory_sink_t *ms = (memory_sink_t *)base;

	/* Nothing was published: dropping the buffer is the whole abort. */
	ms->done = 1;
	free(ms->data);
	ms->data = NULL;
	ms->len = ms->cap = 0;
}

/* Freeing an uncommitted sink must abort it (see <backupop/sys/io.h>). */
static void sink_free(bop_sink_t *base)
{
	memory_sink_t *ms = (memory_sink_t *)base;

	sink_abort(base);
	pthread_mutex_lock(&stores_lock);
	store_put_locked(ms->store);
	pthread_mutex_unlock(&stores_lock);
	free(ms->key);
	free(ms);
}

/* ---- the storage ---- */

typedef struct memory_storage {
	bop_storage_t base;     /* first member: libbackupop calls through it */
	store_t *store;
} memory_storage_t;

static int memory_put(bop_storage_t *base, bop_sink_t **out, const char *key,
	const bop_put_options_t *opts)
{
	memory_storage_t *m = (memory_storage_t *)base;
	memory_sink_t *ms = calloc(1, sizeof(*ms));

	if (!ms || !(ms->key = strdup(key))) {
		free(ms);
		return BOP_ENOMEM;
	}
	ms->base = (bop_sink_t)BOP_SINK_INIT(.write = sink_write, .commit = sink_commit,
		.abort = sink_abort, .free = sink_free);
	ms->exclusive = opts->exclusive;        /* opts is never NULL here */
	pthread_mutex_lock(&stores_lock);
	ms->store = m->store;
	ms->store->refs++;
	pthread_mutex_unlock(&stores_lock);
	*out = &ms->base;
	return 0;
}

/* A reader gets its own copy, so a later put or remove cannot change what it reads. */
static int memory_get(bop_storage_t *base, bop_source_t **out, const char *key,
	uint64_t offset)
{
	memory_storage_t *m = (memory_storage_t *)base;
	object_t **o;
	int ret;

	pthread_mutex_lock(&stores_lock);
	o = find_locked(m->store, key);
	if (!o)
		ret = BOP_ENOTFOUND;
	else if (offset > (*o)->len)
		ret = BOP_EINVAL;
	else
		ret = bop_source_memory_new(out, (*o)->data + offset, (*o)->len - (size_t)offset);
	pthread_mutex_unlock(&stores_lock);
	return ret;
}

static int memory_stat(bop_storage_t *base, bop_storage_stat_t *st, const char *key)
{
	memory_storage_t *m = (memory_storage_t *)base;
	object_t **o;

	pthread_mutex_lock(&stores_lock);
	o = find_locked(m->store, key);
	if (o) {
		st->size = (*o)->len;
		st->mtime = (*o)->mtime;
	}
	pthread_mutex_unlock(&stores_lock);
	return o ? 0 : BOP_ENOTFOUND;
}

typedef struct entry {
	char *key;
	bop_storage_stat_t st;
} entry_t;

/*
 * The matching keys are copied first and the callback runs without the lock held, so a
 * callback may itself call get/stat/remove on this storage.
 */
static int memory_list(bop_storage_t *base, const char *prefix, bop_storage_list_cb cb,
	void *payload)
{
	memory_storage_t *m = (memory_storage_t *)base;
	size_t n = 0, count = 0, plen = strlen(prefix);
	entry_t *entries = NULL;
	object_t *o;
	int ret = 0;

	pthread_mutex_lock(&stores_lock);
	for (o = m->store->objects; o; o = o->next)
		count++;
	entries = calloc(count ? count : 1, sizeof(*entries));
	for (o = m->store->objects; entries && o; o = o->next) {
		if (strncmp(o->key, prefix, plen) != 0)
			continue;
		entries[n].key = strdup(o->key);
		entries[n].st.version = BOP_STORAGE_STAT_VERSION;
		entries[n].st.size = o->len;
		entries[n].st.mtime = o->mtime;
		if (!entries[n++].key)
			ret = BOP_ENOMEM;
	}
	pthread_mutex_unlock(&stores_lock);
	if (!entries)
		return BOP_ENOMEM;
	/* A positive return from the callback stops the listing; a negative one is an error
	 * to pass on. */
	for (size_t i = 0; ret == 0 && i < n; i++) {
		int r = cb(entries[i].key, &entries[i].st, payload);

		if (r != 0) {
			ret = r < 0 ? r : 0;
			break;
		}
	}
	for (size_t i = 0; i < n; i++)
		free(entries[i].key);
	free(entries);
	return ret;
}

static int memory_remove(bop_storage_t *base, const char *key)
{
	memory_storage_t *m = (memory_storage_t *)base;
	object_t **pp, *o = NULL;

	pthread_mutex_lock(&stores_lock);
	pp = find_locked(m->store, key);
	if (pp) {
		o = *pp;
		*pp = o->next;
	}
	pthread_mutex_unlock(&stores_lock);
	if (!o)
		return BOP_ENOTFOUND;
	object_free(o);
	return 0;
}

static void memory_free(bop_storage_t *base)
{
	memory_storage_t *m = (memory_storage_t *)base;

	pthread_mutex_lock(&stores_lock);
	store_put_locked(m->store);
	pthread_mutex_unlock(&stores_lock);
	free(m);
}

/* Called by bop_storage_open() with the whole URL, "memory://NAME". */
static int memory_open(bop_storage_t **out, const char *url, const bop_storage_options_t *opts,
	void *payload)
{
	const char *name = url + strlen(PREFIX);
	memory_storage_t *m;

	(void)payload;
	if (strncmp(url, PREFIX, strlen(PREFIX)) != 0 || !*name)
		return BOP_EINVAL;
	if (opts && opts->settings && opts->settings[0])
		return BOP_EINVAL;      /* this backend has no settings */
	m = calloc(1, sizeof(*m));
	if (!m)
		return BOP_ENOMEM;
	pthread_mutex_lock(&stores_lock);
	m->store = store_get_locked(name);
	pthread_mutex_unlock(&stores_lock);
	if (!m->store) {
		free(m);
		return BOP_ENOMEM;
	}
	/* BOP_STORAGE_INIT sets the version; cleanup and remove_many stay NULL (the memory
	 * backend leaves nothing behind, and remove is called for each key). */
	m->base = (bop_storage_t)BOP_STORAGE_INIT(.put = memory_put, .get = memory_get,
		.stat = memory_stat, .list = memory_list, .remove = memory_remove,
		.free = memory_free);
	*out = &m->base;
	return 0;
}

int memory_storage_register(void)
{
	return bop_storage_register(SCHEME, memory_open, NULL);
}
