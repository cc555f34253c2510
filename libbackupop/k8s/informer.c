/*
 * Informers: a paged LIST of one collection into a local cache, then a WATCH from the
 * list's resourceVersion with bookmarks, on a connection of the informer's own thread.
 *
 * The cache is a sorted array of compact entries ("key\0json\0" in one allocation, the
 * JSON without metadata.managedFields), so 10,000 objects cost about their JSON text.
 * Only the informer's thread changes the cache, and it does so under the lock; other
 * threads read under the lock, and the informer's thread reads without it.
 *
 * The watch ends every 5 minutes or so (timeoutSeconds, with jitter) and is resumed from
 * the last resourceVersion seen (bookmarks move it forward), so no event is lost or
 * repeated. 410 Gone (an HTTP status or an ERROR event) means that resourceVersion is no
 * longer in etcd's history: the informer lists again and reports the differences, objects
 * deleted meanwhile as DELETED. Failures are retried with exponential backoff up to 30 s.
 */
#include "k8s/k8s.h"
#include "util/backoff.h"

#include <curl/curl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EVENT_MAX (16u << 20)           /* one watch event */
#define LIST_PAGE_MAX (256u << 20)      /* one LIST page */
#define WATCH_TIMEOUT_S 270             /* + up to 60 s of jitter */
#define TOKENER_DEPTH 128

typedef struct entry {
	uint32_t key_len;
	uint32_t obj_len;
	char data[];                    /* key '\0' object '\0' */
} entry_t;

#define ENTRY_KEY(e) ((e)->data)
#define ENTRY_OBJ(e) ((e)->data + (e)->key_len + 1)

typedef struct entries {
	entry_t **v;
	size_t n, cap;
} entries_t;

typedef enum watch_end {
	WATCH_ENDED,                    /* the server closed it: resume */
	WATCH_FAILED,                   /* back off, then resume */
	WATCH_GONE,                     /* the resourceVersion is too old: relist */
	WATCH_STOPPED,
} watch_end_t;

struct bop_k8s_informer {
	bop__k8s_client_t *client;
	bop__k8s_conn_t *conn;
	char *path;
	char *selectors;                /* "&labelSelector=..&fieldSelector=.." (escaped) */
	bool metadata_only;
	unsigned int resync_seconds;
	unsigned int page_size;
	bop_k8s_informer_cb callback;
	void *ud;

	pthread_t thread;
	bool started;
	int stop;                       /* atomic */
	pthread_mutex_t lock;           /* the cache, synced, and sleeping */
	pthread_cond_t cond;
	int synced;
	entries_t cache;

	/* the informer's thread only: */
	char *rv;                       /* the last resourceVersion seen */
	char *list_kind;                /* "ConfigMap" for items of a "ConfigMapList" */
	char *list_api_version;
	json_tokener *tok;
	size_t event_bytes;             /* of the event being parsed */
	bool gone;                      /* an ERROR event with code 410 came */
	unsigned int events;            /* in the current watch */
	int64_t next_resync_ms;
	int failures;                   /* lists and watches failed in a row */
};

/* ---- small helpers ---- */

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool stopping(bop_k8s_informer_t *inf)
{
	return __atomic_load_n(&inf->stop, __ATOMIC_ACQUIRE) != 0;
}

/* Sleeps `ms` unless the informer is stopped meanwhile. */
static void sleep_ms(bop_k8s_informer_t *inf, int ms)
{
	int64_t until = mono_ms() + ms;
	struct timespec ts = { .tv_sec = until / 1000, .tv_nsec = (until % 1000) * 1000000 };

	pthread_mutex_lock(&inf->lock);
	while (!stopping(inf) && mono_ms() < until)
		if (pthread_cond_timedwait(&inf->cond, &inf->lock, &ts) != 0)
			break;
	pthread_mutex_unlock(&inf->lock);
}

/* 0.5 s doubling up to 30 s, each delay 75-100% of its step so that many informers do
 * not come back in lockstep. */
static const bop__backoff_t informer_backoff = { .base_ms = 500, .cap_ms = 30000,
	.jitter = 0.25 };

static void backoff(bop_k8s_informer_t *inf)
{
	int64_t ms = bop__backoff_delay(&informer_backoff, ++inf->failures, 0);

	bop__log(BOP_LOG_DEBUG, "k8s", "informer %s: retrying in %.1f s", inf->path,
		(double)ms / 1000.0);
	sleep_ms(inf, (int)ms);
}

static void set_str(char **dst, const char *src)
{
	char *copy = src ? bop__strdup(src) : NULL;

	if (src && !copy)
		return; /* keep the old value; the next event brings another */
	free(*dst);
	*dst = copy;
}

/* ---- entries and the cache ---- */

static entry_t *entry_new(const char *key, const char *obj)
{
	size_t kl = strlen(key), ol = strlen(obj);
	entry_t *e;

	if (kl > UINT32_MAX / 2 || ol > UINT32_MAX / 2) {
		bop__error(BOP_EINVAL, "object %s is too large", key);
		return NULL;
	}
	e = malloc(sizeof(*e) + kl + ol + 2);
	if (!e) {
		bop__error_oom();
		return NULL;
	}
	e->key_len = (uint32_t)kl;
	e->obj_len = (uint32_t)ol;
	memcpy(e->data, key, kl + 1);
	memcpy(e->data + kl + 1, obj, ol + 1);
	return e;
}

static int entries_reserve(entries_t *es, size_t n)
{
	return bop__reserve(&es->v, &es->cap, n, sizeof(*es->v), 64);
}

static void entries_clear(entries_t *es)
{
	for (size_t i = 0; i < es->n; i++)
		free(es->v[i]);
	free(es->v);
	memset(es, 0, sizeof(*es));
}

/* Index of `key`, or where it would go (with *found false). */
static size_t entries_find(const entries_t *es, const char *key, bool *found)
{
	size_t lo = 0, hi = es->n;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(ENTRY_KEY(es->v[mid]), key);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int cmp_entries(const void *a, const void *b)
{
	return strcmp(ENTRY_KEY(*(entry_t *const *)a), ENTRY_KEY(*(entry_t *const *)b));
}

/* ---- objects ---- */

static const char *const metadata_keep[] = {
	"name", "namespace", "uid", "resourceVersion", "generation", "labels", "annotations",
	"finalizers", "ownerReferences", "deletionTimestamp",
};

static json_object *metadata_only(json_object *obj)
{
	json_object *out = json_object_new_object(), *md, *nmd, *v;

	if (!out)
		return NULL;
	if (json_object_object_get_ex(obj, "apiVersion", &v))
		json_object_object_add(out, "apiVersion", json_object_get(v));
	if (json_object_object_get_ex(obj, "kind", &v))
		json_object_object_add(out, "kind", json_object_get(v));
	nmd = json_object_new_object();
	if (!nmd) {
		json_object_put(out);
		return NULL;
	}
	if (json_object_object_get_ex(obj, "metadata", &md))
		for (size_t i = 0; i < BOP_ARRAY_SIZE(metadata_keep); i++)
			if (json_object_object_get_ex(md, metadata_keep[i], &v))
				json_object_object_add(nmd, metadata_keep[i], json_object_get(v));
	json_object_object_add(out, "metadata", nmd);
	return out;
}

/* The cache's text of `obj` (malloc'd) and its key. Fills in kind and apiVersion of list
 * items, drops managedFields, and keeps only metadata with metadata_only. */
static int object_text(bop_k8s_informer_t *inf, json_object *obj, char **key, char **text)
{
	json_object *md, *slim = NULL;
	const char *s;

	*key = *text = NULL;
	if (!json_object_is_type(obj, json_type_object))
		return bop__error(BOP_EFORMAT, "informer %s: an item is not an object", inf->path);
	*key = bop__k8s_object_key(obj);
	if (!*key)
		return bop__error_wrap("informer %s", inf->path);
	if (!json_object_object_get_ex(obj, "kind", NULL) && inf->list_kind)
		json_object_object_add(obj, "kind", json_object_new_string(inf->list_kind));
	if (!json_object_object_get_ex(obj, "apiVersion", NULL) && inf->list_api_version)
		json_object_object_add(obj, "apiVersion",
			json_object_new_string(inf->list_api_version));
	if (json_object_object_get_ex(obj, "metadata", &md))
		json_object_object_del(md, "managedFields");
	if (inf->metadata_only) {
		slim = metadata_only(obj);
		if (!slim)
			goto oom;
		obj = slim;
	}
	s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
		JSON_C_TO_STRING_NOSLASHESCAPE);
	*text = s ? bop__strdup(s) : NULL;
	json_object_put(slim);
	if (!*text)
		goto oom;
	return 0;
oom:
	free(*key);
	*key = NULL;
	return bop__error_oom();
}

static const char *object_rv(json_object *obj)
{
	json_object *md;

	if (!json_object_object_get_ex(obj, "metadata", &md))
		return NULL;
	return bop__k8s_json_str(md, "resourceVersion");
}

/* ---- LIST ---- */

typedef struct page_buf {
	bop_k8s_informer_t *inf;
	char *data;
	size_t len, cap;
} page_buf_t;

static int on_page_data(void *ud, const char *data, size_t len)
{
	page_buf_t *b = ud;

	if (b->len + len > LIST_PAGE_MAX)
		return bop__error(BOP_EIO, "a LIST page is larger than %u MiB; use a smaller page size",
			LIST_PAGE_MAX >> 20);
	if (bop__reserve(&b->data, &b->cap, b->len + len + 1, 1, 65536) < 0)
		return BOP_ENOMEM;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

static void maybe_resync(bop_k8s_informer_t *inf);

static int should_stop(void *ud)
{
	bop_k8s_informer_t *inf = ud;

	maybe_resync(inf);
	return stopping(inf);
}

static int list_should_stop(void *ud)
{
	return should_stop(((page_buf_t *)ud)->inf);
}

static char *list_url(bop_k8s_informer_t *inf, const char *cont)
{
	char sep = strchr(inf->path, '?') ? '&' : '?';
	char *esc = NULL, *url;

	if (cont) {
		esc = curl_easy_escape(NULL, cont, 0);
		if (!esc) {
			bop__error_oom();
			return NULL;
		}
	}
	url = bop__sprintf("%s%climit=%u%s%s%s", inf->path, sep, inf->page_size,
		esc ? "&continue=" : "", esc ? esc : "", inf->selectors);
	curl_free(esc);
	return url;
}

static void list_kind_from(bop_k8s_informer_t *inf, json_object *list)
{
	const char *kind = bop__k8s_json_str(list, "kind");
	size_t n = kind ? strlen(kind) : 0;

	set_str(&inf->list_api_version, bop__k8s_json_str(list, "apiVersion"));
	if (n > 4 && !strcmp(kind + n - 4, "List")) {
		free(inf->list_kind);
		inf->list_kind = bop__strndup(kind, n - 4);
	}
}

/* Appends the items of one page to `out`. */
static int page_items(bop_k8s_informer_t *inf, json_object *list, entries_t *out)
{
	json_object *items;
	size_t n;
	int ret;

	list_kind_from(inf, list);
	if (!json_object_object_get_ex(list, "items", &items) ||
	    !json_object_is_type(items, json_type_array)) {
		/* an empty list may come as "items": null */
		return 0;
	}
	n = json_object_array_length(items);
	ret = entries_reserve(out, out->n + n);
	for (size_t i = 0; ret == 0 && i < n; i++) {
		char *key, *text;

		ret = object_text(inf, json_object_array_get_idx(items, i), &key, &text);
		if (ret < 0)
			break;
		out->v[out->n] = entry_new(key, text);
		free(key);
		free(text);
		if (!out->v[out->n])
			ret = BOP_ENOMEM;
		else
			out->n++;
	}
	return ret;
}

static int parse_page(bop_k8s_informer_t *inf, const page_buf_t *b, json_object **list)
{
	json_tokener *tok = json_tokener_new_ex(TOKENER_DEPTH);

	*list = NULL;
	if (!tok)
		return bop__error_oom();
	*list = json_tokener_parse_ex(tok, b->data ? b->data : "", (int)b->len);
	if (json_tokener_get_error(tok) != json_tokener_success || !*list) {
		json_object_put(*list);
		*list = NULL;
	}
	json_tokener_free(tok);
	if (!*list || !json_object_is_type(*list, json_type_object))
		return bop__error(BOP_EFORMAT, "LIST %s: the answer is not a JSON object", inf->path);
	return 0;
}

/* One page; *cont (malloc'd) is the next page's token, NULL after the last page; *gone
 * when the token expired. */
static int list_page(bop_k8s_informer_t *inf, char **cont, entries_t *out, bool *gone)
{
	page_buf_t buf = { .inf = inf };
	bop__k8s_response_t resp;
	json_object *list = NULL, *md;
	char *url = list_url(inf, *cont);
	int ret;

	*gone = false;
	if (!url)
		return BOP_ENOMEM;
	ret = bop__k8s_stream(inf->conn, &(bop__k8s_stream_opts_t){ .path = url,
		.on_data = on_page_data, .should_stop = list_should_stop, .ud = &buf,
		.idle_seconds = 30 }, &resp);
	*gone = resp.gone;
	bop__k8s_response_clear(&resp);
	if (ret == 0)
		ret = parse_page(inf, &buf, &list);
	if (ret == 0)
		ret = page_items(inf, list, out);
	free(*cont);
	*cont = NULL;
	if (ret == 0 && json_object_object_get_ex(list, "metadata", &md)) {
		const char *c = bop__k8s_json_str(md, "continue");

		if (c && *c)
			*cont = bop__strdup(c);
		set_str(&inf->rv, bop__k8s_json_str(md, "resourceVersion"));
	}
	json_object_put(list);
	free(buf.data);
	free(url);
	return ret;
}

/* All pages into `out`, sorted; restarts when a continue token expired. */
static int list_all(bop_k8s_informer_t *inf, entries_t *out)
{
	char *cont = NULL;
	bool gone;
	int ret;

	for (;;) {
		if (stopping(inf)) {
			ret = BOP_ECANCELED;
			break;
		}
		ret = list_page(inf, &cont, out, &gone);
		if (ret < 0 && gone && out->n) {
			/* the snapshot the pages came from is compacted away: start over */
			bop__log(BOP_LOG_INFO, "k8s", "LIST %s: the continue token expired; listing again",
				inf->path);
			for (size_t i = 0; i < out->n; i++)
				free(out->v[i]);
			out->n = 0;
			continue;
		}
		if (ret < 0 || !cont)
			break;
	}
	free(cont);
	if (ret == 0 && out->n > 1)
		qsort(out->v, out->n, sizeof(*out->v), cmp_entries);
	return ret;
}

/* ---- relist: swap the cache and report the differences ---- */

typedef struct change {
	bop_k8s_event_type_t type;
	entry_t *e;
} change_t;

static bool same_entry(const entry_t *a, const entry_t *b)
{
	return a->obj_len == b->obj_len && !memcmp(ENTRY_OBJ(a), ENTRY_OBJ(b), a->obj_len);
}

/* Merges old and new (both sorted); unchanged objects keep their old entry. The changes
 * refer to entries of the new cache, and DELETED ones to old entries moved to `dead`. */
static int diff_caches(entries_t *old, entries_t *nw, change_t *ch, size_t *nch, entries_t *dead)
{
	size_t i = 0, j = 0, k = 0;

	while (i < old->n || j < nw->n) {
		int c = i == old->n ? 1 : j == nw->n ? -1 :
			strcmp(ENTRY_KEY(old->v[i]), ENTRY_KEY(nw->v[j]));

		if (c < 0) {
			dead->v[dead->n++] = old->v[i];
			ch[k++] = (change_t){ BOP_K8S_DELETED, old->v[i++] };
		} else if (c > 0) {
			ch[k++] = (change_t){ BOP_K8S_ADDED, nw->v[j++] };
		} else if (same_entry(old->v[i], nw->v[j])) {
			free(nw->v[j]);
			nw->v[j++] = old->v[i++];
		} else {
			dead->v[dead->n++] = old->v[i++];
			ch[k++] = (change_t){ BOP_K8S_MODIFIED, nw->v[j++] };
		}
	}
	*nch = k;
	return 0;
}

static int replace_cache(bop_k8s_informer_t *inf, entries_t *nw)
{
	entries_t old, dead = { 0 };
	change_t *ch;
	size_t nch = 0;
	int ret;

	ch = malloc((inf->cache.n + nw->n + 1) * sizeof(*ch));
	ret = ch ? entries_reserve(&dead, inf->cache.n + 1) : bop__error_oom();
	if (ret < 0) {
		free(ch);
		return ret;
	}
	pthread_mutex_lock(&inf->lock);
	old = inf->cache;
	diff_caches(&old, nw, ch, &nch, &dead);
	inf->cache = *nw;
	memset(nw, 0, sizeof(*nw));
	pthread_mutex_unlock(&inf->lock);
	free(old.v);
	for (size_t i = 0; i < nch && inf->callback; i++) {
		entry_t *e = ch[i].e;

		inf->callback(ch[i].type, ENTRY_KEY(e), ENTRY_OBJ(e), inf->ud);
	}
	entries_clear(&dead);
	free(ch);
	return 0;
}

static int relist(bop_k8s_informer_t *inf)
{
	entries_t nw = { 0 };
	int ret = list_all(inf, &nw);

	if (ret == 0)
		ret = replace_cache(inf, &nw);
	entries_clear(&nw);
	if (ret < 0)
		return ret;
	if (!inf->synced) {
		pthread_mutex_lock(&inf->lock);
		inf->synced = 1;
		pthread_cond_broadcast(&inf->cond);
		pthread_mutex_unlock(&inf->lock);
		if (inf->resync_seconds)
			inf->next_resync_ms = mono_ms() + (int64_t)inf->resync_seconds * 1000;
	}
	bop__log(BOP_LOG_DEBUG, "k8s", "informer %s: listed %zu objects at resourceVersion %s",
		inf->path, inf->cache.n, inf->rv ? inf->rv : "?");
	return 0;
}

/* ---- resync ---- */

static void maybe_resync(bop_k8s_informer_t *inf)
{
	if (!inf->resync_seconds || !inf->synced || mono_ms() < inf->next_resync_ms ||
	    stopping(inf))
		return;
	/* only this thread changes the cache: no lock needed to read it */
	for (size_t i = 0; i < inf->cache.n && inf->callback; i++)
		inf->callback(BOP_K8S_MODIFIED, ENTRY_KEY(inf->cache.v[i]),
			ENTRY_OBJ(inf->cache.v[i]), inf->ud);
	inf->next_resync_ms = mono_ms() + (int64_t)inf->resync_seconds * 1000;
}

/* ---- WATCH ---- */

static int apply_upsert(bop_k8s_informer_t *inf, entry_t *e)
{
	bop_k8s_event_type_t type = BOP_K8S_MODIFIED;
	entry_t *old = NULL;
	size_t i;
	bool found;
	int ret;

	ret = entries_reserve(&inf->cache, inf->cache.n + 1);
	if (ret < 0) {
		free(e);
		return ret;
	}
	pthread_mutex_lock(&inf->lock);
	i = entries_find(&inf->cache, ENTRY_KEY(e), &found);
	if (found) {
		old = inf->cache.v[i];
		inf->cache.v[i] = e;
	} else {
		memmove(inf->cache.v + i + 1, inf->cache.v + i,
			(inf->cache.n - i) * sizeof(*inf->cache.v));
		inf->cache.v[i] = e;
		inf->cache.n++;
		type = BOP_K8S_ADDED;
	}
	pthread_mutex_unlock(&inf->lock);
	free(old);
	if (inf->callback)
		inf->callback(type, ENTRY_KEY(e), ENTRY_OBJ(e), inf->ud);
	return 0;
}

static void apply_delete(bop_k8s_informer_t *inf, const char *key, const char *text)
{
	entry_t *old = NULL;
	size_t i;
	bool found;

	pthread_mutex_lock(&inf->lock);
	i = entries_find(&inf->cache, key, &found);
	if (found) {
		old = inf->cache.v[i];
		memmove(inf->cache.v + i, inf->cache.v + i + 1,
			(inf->cache.n - i - 1) * sizeof(*inf->cache.v));
		inf->cache.n--;
	}
	pthread_mutex_unlock(&inf->lock);
	free(old);
	if (inf->callback)
		inf->callback(BOP_K8S_DELETED, key, text, inf->ud);
}

/* An ERROR event: 410 means relist; anything else ends this watch. */
static int watch_error(bop_k8s_informer_t *inf, json_object *status)
{
	json_object *code;
	const char *msg = bop__k8s_json_str(status, "message");

	if (json_object_object_get_ex(status, "code", &code) && json_object_get_int(code) == 410) {
		inf->gone = true;
		return bop__error(BOP_ENOTFOUND, "WATCH %s: resourceVersion %s is too old (410 Gone): %s",
			inf->path, inf->rv ? inf->rv : "?", msg ? msg : "");
	}
	return bop__error(BOP_EIO, "WATCH %s: the API server sent an error: %s", inf->path,
		msg ? msg : json_object_to_json_string(status));
}

static int handle_event(bop_k8s_informer_t *inf, json_object *ev)
{
	const char *type = bop__k8s_json_str(ev, "type");
	json_object *obj = NULL;
	char *key = NULL, *text = NULL;
	entry_t *e;
	int ret;

	if (!type || !json_object_object_get_ex(ev, "object", &obj) ||
	    !json_object_is_type(obj, json_type_object))
		return bop__error(BOP_EFORMAT, "WATCH %s: an event without type or object", inf->path);
	if (!strcmp(type, "ERROR"))
		return watch_error(inf, obj);
	if (object_rv(obj))
		set_str(&inf->rv, object_rv(obj));
	inf->events++;
	if (!strcmp(type, "BOOKMARK"))
		return 0;
	if (strcmp(type, "ADDED") && strcmp(type, "MODIFIED") && strcmp(type, "DELETED")) {
		bop__log(BOP_LOG_DEBUG, "k8s", "WATCH %s: ignoring an event of type %s", inf->path,
			type);
		return 0;
	}
	ret = object_text(inf, obj, &key, &text);
	if (ret < 0)
		return ret;
	if (!strcmp(type, "DELETED")) {
		apply_delete(inf, key, text);
	} else {
		e = entry_new(key, text);
		ret = e ? apply_upsert(inf, e) : BOP_ENOMEM;
	}
	free(key);
	free(text);
	return ret;
}

void bop__k8s_informer_watch_begin(bop_k8s_informer_t *inf)
{
	json_tokener_reset(inf->tok);
	inf->event_bytes = 0;
	inf->gone = false;
	inf->events = 0;
}

/* Feeds the stream to the tokener: one JSON object per event. */
int bop__k8s_informer_watch_data(bop_k8s_informer_t *inf, const char *data, size_t len)
{
	while (len) {
		int chunk = len > INT32_MAX ? INT32_MAX : (int)len;
		json_object *ev = json_tokener_parse_ex(inf->tok, data, chunk);
		enum json_tokener_error err = json_tokener_get_error(inf->tok);
		size_t used;
		int ret;

		if (!ev && err == json_tokener_continue) {
			inf->event_bytes += (size_t)chunk;
			if (inf->event_bytes > EVENT_MAX)
				return bop__error(BOP_EIO, "WATCH %s: an event is larger than %u MiB",
					inf->path, EVENT_MAX >> 20);
			data += chunk;
			len -= (size_t)chunk;
			continue;
		}
		if (!ev || err != json_tokener_success) {
			json_object_put(ev);
			return bop__error(BOP_EFORMAT, "WATCH %s: malformed event: %s", inf->path,
				json_tokener_error_desc(err));
		}
		used = json_tokener_get_parse_end(inf->tok);
		json_tokener_reset(inf->tok);
		inf->event_bytes = 0;
		ret = handle_event(inf, ev);
		json_object_put(ev);
		if (ret < 0)
			return ret;
		data += used;
		len -= used;
	}
	return 0;
}

static int on_watch_data(void *ud, const char *data, size_t len)
{
	return bop__k8s_informer_watch_data(ud, data, len);
}

static char *watch_url(bop_k8s_informer_t *inf, unsigned int timeout)
{
	char sep = strchr(inf->path, '?') ? '&' : '?';
	char *esc = curl_easy_escape(NULL, inf->rv ? inf->rv : "", 0), *url;

	if (!esc) {
		bop__error_oom();
		return NULL;
	}
	url = bop__sprintf("%s%cwatch=1&allowWatchBookmarks=true&resourceVersion=%s&timeoutSeconds=%u%s",
		inf->path, sep, esc, timeout, inf->selectors);
	curl_free(esc);
	return url;
}

static watch_end_t watch_once(bop_k8s_informer_t *inf)
{
	unsigned int timeout = WATCH_TIMEOUT_S + bop__random_u32() % 61;
	bop__k8s_response_t resp;
	int64_t start = mono_ms();
	char *url = watch_url(inf, timeout);
	int ret;

	if (!url)
		return WATCH_FAILED;
	bop__k8s_informer_watch_begin(inf);
	ret = bop__k8s_stream(inf->conn, &(bop__k8s_stream_opts_t){ .path = url,
		.on_data = on_watch_data, .should_stop = should_stop, .ud = inf,
		.max_seconds = (long)timeout + 60 }, &resp);
	free(url);
	if (resp.gone)
		inf->gone = true;
	bop__k8s_response_clear(&resp);
	if (stopping(inf))
		return WATCH_STOPPED;
	if (inf->gone) {
		bop__log(BOP_LOG_INFO, "k8s", "informer %s: %s; listing again", inf->path,
			bop_error_last());
		return WATCH_GONE;
	}
	if (inf->events)
		inf->failures = 0;
	if (ret == 0 && (inf->events || mono_ms() - start > 1000))
		return WATCH_ENDED;
	if (ret == 0)
		bop__error(BOP_EIO, "WATCH %s: the API server ended the watch at once", inf->path);
	bop__log(inf->events ? BOP_LOG_INFO : BOP_LOG_WARN, "k8s", "informer %s: %s",
		inf->path, bop_error_last());
	return inf->events ? WATCH_ENDED : WATCH_FAILED;
}

/* ---- the thread ---- */

static void *informer_main(void *arg)
{
	bop_k8s_informer_t *inf = arg;

	pthread_setname_np(pthread_self(), "bop-informer");

	while (!stopping(inf)) {
		if (relist(inf) < 0) {
			if (stopping(inf))
				break;
			bop__log(BOP_LOG_WARN, "k8s", "informer %s: %s", inf->path, bop_error_last());
			backoff(inf);
			continue;
		}
		inf->failures = 0;
		for (;;) {
			watch_end_t end = watch_once(inf);

			maybe_resync(inf);
			if (end == WATCH_STOPPED || end == WATCH_GONE)
				break;
			if (end == WATCH_FAILED)
				backoff(inf);
		}
	}
	return NULL;
}

/* ---- API ---- */

BOP_EXTERN(int) bop_k8s_informer_options_init(bop_k8s_informer_options_t *opts, unsigned int version)
{
	const bop_k8s_informer_options_t defaults = BOP_K8S_INFORMER_OPTIONS_INIT;

	if (!opts)
		return bop__error(BOP_EINVAL, "bop_k8s_informer_options_init: opts is NULL");
	if (BOP__VERSION_CHECK("bop_k8s_informer_options_t", NULL, version,
	    K8S_INFORMER_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	*opts = defaults;
	return 0;
}

static int make_selectors(bop_k8s_informer_t *inf, const bop_k8s_informer_options_t *o)
{
	char *l = o->label_selector ? curl_easy_escape(NULL, o->label_selector, 0) : NULL;
	char *f = o->field_selector ? curl_easy_escape(NULL, o->field_selector, 0) : NULL;

	if ((o->label_selector && !l) || (o->field_selector && !f))
		inf->selectors = NULL;
	else
		inf->selectors = bop__sprintf("%s%s%s%s", l ? "&labelSelector=" : "", l ? l : "",
			f ? "&fieldSelector=" : "", f ? f : "");
	curl_free(l);
	curl_free(f);
	return inf->selectors ? 0 : bop__error_oom();
}

static int check_options(const bop_k8s_informer_options_t *o)
{
	if (!o)
		return bop__error(BOP_EINVAL, "informer options are required");
	if (BOP__VERSION_CHECK("bop_k8s_informer_options_t", NULL, o->version,
	    K8S_INFORMER_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	if (!o->path || o->path[0] != '/')
		return bop__error(BOP_EINVAL, "an informer needs the API path of a collection (\"/api/v1/namespaces/x/configmaps\")");
	return 0;
}

BOP_EXTERN(int) bop_k8s_informer_new(bop_k8s_informer_t **out, bop_k8s_client_t *client,
	const bop_k8s_informer_options_t *opts)
{
	bop_k8s_informer_t *inf;
	pthread_condattr_t attr;
	int ret;

	if (!out || !client)
		return bop__error(BOP_EINVAL, "bop_k8s_informer_new: out and client are required");
	*out = NULL;
	ret = check_options(opts);
	if (ret < 0)
		return ret;
	inf = bop__calloc(1, sizeof(*inf));
	if (!inf)
		return BOP_ENOMEM;
	inf->client = client->priv;
	inf->metadata_only = opts->metadata_only != 0;
	inf->resync_seconds = opts->resync_seconds;
	inf->page_size = opts->page_size ? opts->page_size : 500;
	inf->callback = opts->callback;
	inf->ud = opts->payload;
	pthread_mutex_init(&inf->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&inf->cond, &attr);
	pthread_condattr_destroy(&attr);
	inf->path = bop__strdup(opts->path);
	inf->tok = json_tokener_new_ex(TOKENER_DEPTH);
	ret = inf->path && inf->tok ? make_selectors(inf, opts) : bop__error_oom();
	if (ret == 0)
		ret = bop__k8s_conn_new(&inf->conn, inf->client);
	if (ret < 0) {
		bop_k8s_informer_free(inf);
		return ret;
	}
	*out = inf;
	return 0;
}

BOP_EXTERN(int) bop_k8s_informer_start(bop_k8s_informer_t *inf)
{
	int err;

	if (!inf)
		return bop__error(BOP_EINVAL, "bop_k8s_informer_start: informer is NULL");
	if (inf->started)
		return bop__error(BOP_EINVAL, "the informer of %s is started already", inf->path);
	err = pthread_create(&inf->thread, NULL, informer_main, inf);
	if (err)
		return bop__error_errno(BOP_ERROR, err, "cannot start the informer thread of %s",
			inf->path);
	inf->started = true;
	return 0;
}

BOP_EXTERN(int) bop_k8s_informer_synced(bop_k8s_informer_t *inf)
{
	int s;

	if (!inf)
		return 0;
	pthread_mutex_lock(&inf->lock);
	s = inf->synced;
	pthread_mutex_unlock(&inf->lock);
	return s;
}

BOP_EXTERN(int) bop_k8s_informer_wait_synced(bop_k8s_informer_t *inf, int timeout_ms)
{
	int64_t until = mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	struct timespec ts = { .tv_sec = until / 1000, .tv_nsec = (until % 1000) * 1000000 };
	int ret = 0;

	if (!inf)
		return bop__error(BOP_EINVAL, "bop_k8s_informer_wait_synced: informer is NULL");
	pthread_mutex_lock(&inf->lock);
	while (!inf->synced) {
		if (timeout_ms < 0) {
			pthread_cond_wait(&inf->cond, &inf->lock);
		} else if (pthread_cond_timedwait(&inf->cond, &inf->lock, &ts) != 0 &&
			   !inf->synced) {
			ret = bop__error(BOP_ETIMEOUT, "the informer of %s did not sync within %d ms",
				inf->path, timeout_ms);
			break;
		}
	}
	pthread_mutex_unlock(&inf->lock);
	return ret;
}

BOP_EXTERN(int) bop_k8s_informer_get(bop_k8s_informer_t *inf, char **object, const char *key)
{
	bool found = false;
	size_t i;
	int ret = 0;

	if (object)
		*object = NULL;
	if (!inf || !key || !object)
		return bop__error(BOP_EINVAL, "bop_k8s_informer_get: informer, key and object are required");
	pthread_mutex_lock(&inf->lock);
	i = entries_find(&inf->cache, key, &found);
	if (found) {
		*object = bop__strdup(ENTRY_OBJ(inf->cache.v[i]));
		if (!*object)
			ret = BOP_ENOMEM;
	}
	pthread_mutex_unlock(&inf->lock);
	if (!found)
		return bop__error(BOP_ENOTFOUND, "%s is not in the cache of %s", key, inf->path);
	return ret;
}

BOP_EXTERN(int) bop_k8s_informer_foreach(bop_k8s_informer_t *inf,
	bop_k8s_informer_foreach_cb fn, void *payload)
{
	int ret = 0;

	if (!inf || !fn)
		return bop__error(BOP_EINVAL, "bop_k8s_informer_foreach: informer and fn are required");
	pthread_mutex_lock(&inf->lock);
	for (size_t i = 0; i < inf->cache.n && ret == 0; i++)
		ret = fn(ENTRY_KEY(inf->cache.v[i]), ENTRY_OBJ(inf->cache.v[i]), payload);
	pthread_mutex_unlock(&inf->lock);
	return ret;
}

BOP_EXTERN(size_t) bop_k8s_informer_size(bop_k8s_informer_t *inf)
{
	size_t n;

	if (!inf)
		return 0;
	pthread_mutex_lock(&inf->lock);
	n = inf->cache.n;
	pthread_mutex_unlock(&inf->lock);
	return n;
}

size_t bop__k8s_informer_bytes(bop_k8s_informer_t *inf)
{
	size_t n;

	pthread_mutex_lock(&inf->lock);
	n = malloc_usable_size(inf->cache.v);
	for (size_t i = 0; i < inf->cache.n; i++)
		n += malloc_usable_size(inf->cache.v[i]);
	pthread_mutex_unlock(&inf->lock);
	return n;
}

BOP_EXTERN(void) bop_k8s_informer_free(bop_k8s_informer_t *inf)
{
	if (!inf)
		return;
	if (inf->started) {
		pthread_mutex_lock(&inf->lock);
		__atomic_store_n(&inf->stop, 1, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&inf->cond);
		pthread_mutex_unlock(&inf->lock);
		pthread_join(inf->thread, NULL);
	}
	bop__k8s_conn_free(inf->conn);
	entries_clear(&inf->cache);
	if (inf->tok)
		json_tokener_free(inf->tok);
	pthread_cond_destroy(&inf->cond);
	pthread_mutex_destroy(&inf->lock);
	free(inf->path);
	free(inf->selectors);
	free(inf->rv);
	free(inf->list_kind);
	free(inf->list_api_version);
	free(inf);
}
