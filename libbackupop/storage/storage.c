/*
 * Storage: the scheme registry, URL dispatch, and the checks every backend relies on
 * (keys are validated here once, so a backend never sees "..", a leading '/' or an empty
 * segment).
 */
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct scheme {
	struct scheme *next;
	char *name;
	bop_storage_open_fn open;
	void *payload;
} scheme_t;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t builtins_once = PTHREAD_ONCE_INIT;
static scheme_t *schemes;

/* RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ). */
static bool scheme_name_valid(const char *s, size_t len)
{
	if (len == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return false;
	for (size_t i = 1; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
				c == '+' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

static scheme_t *find_locked(const char *name, size_t len)
{
	for (scheme_t *s = schemes; s; s = s->next)
		if (strlen(s->name) == len && strncasecmp(s->name, name, len) == 0)
			return s;
	return NULL;
}

static int register_scheme(const char *name, bop_storage_open_fn open, void *payload)
{
	scheme_t *s;
	int ret = 0;

	pthread_mutex_lock(&registry_lock);
	if (find_locked(name, strlen(name))) {
		ret = bop__error(BOP_EEXISTS, "storage scheme \"%s\" is already registered", name);
		goto out;
	}
	s = bop__calloc(1, sizeof(*s));
	if (!s) {
		ret = BOP_ENOMEM;
		goto out;
	}
	s->name = bop__strdup(name);
	if (!s->name) {
		free(s);
		ret = BOP_ENOMEM;
		goto out;
	}
	s->open = open;
	s->payload = payload;
	s->next = schemes;
	schemes = s;
out:
	pthread_mutex_unlock(&registry_lock);
	return ret;
}

static void register_builtins(void)
{
	register_scheme("file", bop__storage_file_open, NULL);
	register_scheme("s3", bop__storage_s3_open, NULL);
}

static void ensure_builtins(void)
{
	pthread_once(&builtins_once, register_builtins);
}

BOP_EXTERN(int) bop_storage_register(const char *scheme, bop_storage_open_fn open,
	void *payload)
{
	if (!scheme || !open)
		return bop__error(BOP_EINVAL, "bop_storage_register: scheme and open function are required");
	if (!scheme_name_valid(scheme, strlen(scheme)))
		return bop__error(BOP_EINVAL, "\"%s\" is not a valid URL scheme (a letter, then letters, digits, '+', '-' or '.')",
			scheme);
	ensure_builtins();
	return register_scheme(scheme, open, payload);
}

/* "file, memory, s3" for messages; NULL when out of memory. */
static char *known_schemes_locked(void)
{
	char *list = bop__strdup(""), *next;

	for (scheme_t *s = schemes; s && list; s = s->next) {
		next = bop__sprintf("%s%s%s", list, *list ? ", " : "", s->name);
		free(list);
		list = next;
	}
	return list;
}

static int unknown_scheme(const char *url, size_t len)
{
	char *known;
	int ret;

	pthread_mutex_lock(&registry_lock);
	known = known_schemes_locked();
	pthread_mutex_unlock(&registry_lock);
	if (!known)
		return BOP_ENOMEM;
	ret = bop__error(BOP_ENOTSUPPORTED, "unknown storage scheme \"%.*s\" in %s; known schemes: %s",
		(int)len, url, url, known);
	free(known);
	return ret;
}

static int lookup(const char *url, size_t len, bop_storage_open_fn *open, void **payload)
{
	scheme_t *s;

	pthread_mutex_lock(&registry_lock);
	s = find_locked(url, len);
	if (s) {
		*open = s->open;
		*payload = s->payload;
	}
	pthread_mutex_unlock(&registry_lock);
	return s ? 0 : unknown_scheme(url, len);
}

BOP_EXTERN(int) bop_storage_options_init(bop_storage_options_t *opts, unsigned int version)
{
	bop_storage_options_t defaults = BOP_STORAGE_OPTIONS_INIT;

	if (!opts)
		return bop__error(BOP_EINVAL, "bop_storage_options_init: NULL options");
	if (BOP__VERSION_CHECK("bop_storage_options_t", NULL, version, STORAGE_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	*opts = defaults;
	return 0;
}

/* A failed backend call that left no message (third-party backends cannot set one). */
static int backend_failed(int ret, const char *what, const char *key)
{
	if (ret < 0 && bop_error_last_code() == BOP_OK)
		bop__error(ret, "%s%s%s: %s", what, key ? " " : "", key ? key : "",
			bop_strerror(ret));
	return ret;
}

/*
 * The backend of `url`: the registered scheme before "://", or the file backend for a
 * plain path. "/data/a://b" and "./x:y" are paths, but a ':' in the first segment of
 * anything else is a mistyped URL ("s3:/bucket", "s3:bucket", "::::"), never a local
 * directory of that name: a typo must not put backups on the local disk.
 */
static int find_backend(const char *url, bop_storage_open_fn *open, void **payload)
{
	const char *sep = strstr(url, "://"), *colon = strchr(url, ':'), *slash = strchr(url, '/');

	if (sep && scheme_name_valid(url, (size_t)(sep - url)))
		return lookup(url, (size_t)(sep - url), open, payload);
	if (colon && (!slash || colon < slash))
		return bop__error(BOP_EINVAL, "storage URL \"%s\" is malformed: a URL is "
			"scheme://... (s3://bucket/prefix, file:///absolute/path); a local directory "
			"whose name has a ':' is written ./%s", url, url);
	return 0;
}

BOP_EXTERN(int) bop_storage_open(bop_storage_t **out, const char *url,
	const bop_storage_options_t *opts)
{
	bop_storage_open_fn open = bop__storage_file_open;
	void *payload = NULL;
	int ret;

	if (!out || !url || !*url)
		return bop__error(BOP_EINVAL, "bop_storage_open: a storage URL is required");
	*out = NULL;
	if (opts && BOP__VERSION_CHECK("bop_storage_options_t", NULL, opts->version,
	    STORAGE_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	ensure_builtins();
	ret = find_backend(url, &open, &payload);
	if (ret < 0)
		return ret;
	bop_error_clear();
	ret = open(out, url, opts, payload);
	if (ret < 0) {
		*out = NULL;
		return backend_failed(ret, "cannot open storage", url);
	}
	if (!*out)
		return bop__error(BOP_ERROR, "the storage backend for %s returned no storage", url);
	if (!BOP__VERSION_OK((*out)->version, STORAGE_VERSION)) {
		const char *sep = strstr(url, "://");
		char *scheme = sep ? bop__strndup(url, (size_t)(sep - url)) : NULL;

		/* Its layout is unknown, so it cannot be freed safely: leak it. */
		BOP__VERSION_CHECK("storage backend", scheme ? scheme : "file", (*out)->version,
			STORAGE_VERSION);
		free(scheme);
		*out = NULL;
		return BOP_EVERSION;
	}
	return 0;
}

BOP_EXTERN(void) bop_storage_free(bop_storage_t *storage)
{
	if (storage && BOP__VERSION_OK(storage->version, STORAGE_VERSION) && storage->free)
		storage->free(storage);
}

/*
 * A key is a relative '/'-separated path: not empty, no leading or trailing '/', no empty,
 * "." or ".." segment. (A C string cannot hold a NUL.) A prefix may also be "" or end in
 * '/'.
 */
static int check_path(const char *key, bool prefix)
{
	const char *seg = key;

	if (!key)
		return bop__error(BOP_EINVAL, "a storage key is required");
	if (!*key) {
		if (prefix)
			return 0;
		return bop__error(BOP_EINVAL, "invalid storage key \"\": a key cannot be empty");
	}
	if (*key == '/')
		return bop__error(BOP_EINVAL, "invalid storage key \"%s\": keys are relative and cannot start with '/'",
			key);
	if (!prefix && key[strlen(key) - 1] == '/')
		return bop__error(BOP_EINVAL, "invalid storage key \"%s\": a key cannot end with '/'", key);
	for (;;) {
		const char *end = strchrnul(seg, '/');
		size_t len = (size_t)(end - seg);

		/* A prefix's last segment is partial: "." may start ".hidden". */
		if (prefix && !*end)
			return 0;
		if (len == 0)
			return bop__error(BOP_EINVAL, "invalid storage key \"%s\": it has an empty path segment",
				key);
		if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
			return bop__error(BOP_EINVAL, "invalid storage key \"%s\": \".\" and \"..\" segments are not allowed",
				key);
		if (!*end)
			return 0;
		seg = end + 1;
	}
}

static int check_storage(const bop_storage_t *storage, const char *fn)
{
	if (!storage)
		return bop__error(BOP_EINVAL, "%s: NULL storage", fn);
	if (BOP__VERSION_CHECK("the storage backend", NULL, storage->version, STORAGE_VERSION) < 0)
		return BOP_EVERSION;
	return 0;
}

BOP_EXTERN(int) bop_storage_put(bop_storage_t *storage, bop_sink_t **out, const char *key,
	const bop_put_options_t *opts)
{
	bop_put_options_t defaults = BOP_PUT_OPTIONS_INIT;
	int ret;

	if (!out)
		return bop__error(BOP_EINVAL, "bop_storage_put: NULL out");
	*out = NULL;
	if ((ret = check_storage(storage, "bop_storage_put")) < 0 || (ret = check_path(key, false)) < 0)
		return ret;
	if (opts && BOP__VERSION_CHECK("bop_put_options_t", NULL, opts->version, PUT_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	bop_error_clear();
	ret = storage->put(storage, out, key, opts ? opts : &defaults);
	if (ret < 0) {
		*out = NULL;
		return backend_failed(ret, "cannot write", key);
	}
	if (!*out)
		return bop__error(BOP_ERROR, "the storage backend returned no writer for %s", key);
	return 0;
}

BOP_EXTERN(int) bop_storage_get(bop_storage_t *storage, bop_source_t **out, const char *key,
	uint64_t offset)
{
	int ret;

	if (!out)
		return bop__error(BOP_EINVAL, "bop_storage_get: NULL out");
	*out = NULL;
	if ((ret = check_storage(storage, "bop_storage_get")) < 0 || (ret = check_path(key, false)) < 0)
		return ret;
	bop_error_clear();
	ret = storage->get(storage, out, key, offset);
	if (ret < 0) {
		*out = NULL;
		return backend_failed(ret, "cannot read", key);
	}
	if (!*out)
		return bop__error(BOP_ERROR, "the storage backend returned no reader for %s", key);
	return 0;
}

BOP_EXTERN(int) bop_storage_stat(bop_storage_t *storage, bop_storage_stat_t *st,
	const char *key)
{
	int ret;

	if ((ret = check_storage(storage, "bop_storage_stat")) < 0 || (ret = check_path(key, false)) < 0)
		return ret;
	if (!st)
		return bop__error(BOP_EINVAL, "bop_storage_stat: NULL stat");
	if (BOP__VERSION_CHECK("bop_storage_stat_t", NULL, st->version, STORAGE_STAT_VERSION) < 0)
		return BOP_EVERSION;
	bop_error_clear();
	return backend_failed(storage->stat(storage, st, key), "cannot stat", key);
}

BOP_EXTERN(int) bop_storage_list(bop_storage_t *storage, const char *prefix,
	bop_storage_list_cb cb, void *payload)
{
	int ret;

	if ((ret = check_storage(storage, "bop_storage_list")) < 0)
		return ret;
	if (!cb)
		return bop__error(BOP_EINVAL, "bop_storage_list: NULL callback");
	if ((ret = check_path(prefix ? prefix : "", true)) < 0)
		return ret;
	bop_error_clear();
	return backend_failed(storage->list(storage, prefix ? prefix : "", cb, payload),
		"cannot list", prefix && *prefix ? prefix : NULL);
}

BOP_EXTERN(int) bop_storage_remove(bop_storage_t *storage, const char *key)
{
	int ret;

	if ((ret = check_storage(storage, "bop_storage_remove")) < 0 || (ret = check_path(key, false)) < 0)
		return ret;
	bop_error_clear();
	return backend_failed(storage->remove(storage, key), "cannot remove", key);
}

BOP_EXTERN(int) bop_storage_remove_many(bop_storage_t *storage, const char *const *keys,
	size_t n)
{
	char first_message[1024] = "";
	int ret, first = 0;

	if ((ret = check_storage(storage, "bop_storage_remove_many")) < 0)
		return ret;
	if (n && !keys)
		return bop__error(BOP_EINVAL, "bop_storage_remove_many: NULL keys");
	for (size_t i = 0; i < n; i++) {
		if ((ret = check_path(keys[i], false)) < 0)
			return ret;
	}
	bop_error_clear();
	if (storage->remove_many)
		return backend_failed(storage->remove_many(storage, keys, n), "cannot remove keys", NULL);
	for (size_t i = 0; i < n; i++) {
		bop_error_clear();
		ret = storage->remove(storage, keys[i]);
		if (ret < 0 && ret != BOP_ENOTFOUND) {
			ret = backend_failed(ret, "cannot remove", keys[i]);
			bop__log(BOP_LOG_WARN, "storage", "%s", bop_error_last());
			if (first == 0) {
				first = ret;
				snprintf(first_message, sizeof(first_message), "%s", bop_error_last());
			}
		}
	}
	return first < 0 ? bop__error(first, "%s", first_message) : 0;
}

BOP_EXTERN(int) bop_storage_cleanup(bop_storage_t *storage, const char *prefix,
	int64_t older_than_seconds, int dry_run, bop_storage_list_cb cb, void *payload)
{
	int ret;

	if ((ret = check_storage(storage, "bop_storage_cleanup")) < 0)
		return ret;
	if ((ret = check_path(prefix ? prefix : "", true)) < 0)
		return ret;
	if (older_than_seconds < 0)
		return bop__error(BOP_EINVAL, "bop_storage_cleanup: negative age");
	if (!storage->cleanup)
		return bop__error(BOP_ENOTSUPPORTED, "this storage keeps no leftovers to clean up");
	bop_error_clear();
	return backend_failed(storage->cleanup(storage, prefix ? prefix : "", older_than_seconds,
		dry_run, cb, payload), "cannot clean up", prefix && *prefix ? prefix : NULL);
}

int bop__storage_put_bytes(bop_storage_t *st, const char *key, const void *data, size_t len,
	bool exclusive)
{
	bop_put_options_t opts = BOP_PUT_OPTIONS_INIT;
	bop_sink_t *sink = NULL;
	int ret;

	opts.size_hint = len;
	opts.exclusive = exclusive;
	ret = bop_storage_put(st, &sink, key, &opts);
	if (ret < 0)
		return ret;
	ret = bop_sink_write(sink, data, len);
	if (ret == 0)
		ret = bop_sink_commit(sink);
	bop_sink_free(sink);
	return ret;
}

static int read_all(bop_source_t *src, const char *key, char **data, size_t *len, size_t max)
{
	size_t cap = 4096, n = 0, got;
	char *buf = NULL, *grown;
	int ret;

	for (;;) {
		if (n + 1 >= cap || !buf) {
			cap = buf ? cap * 2 : cap;
			grown = realloc(buf, cap);
			if (!grown) {
				ret = bop__error_oom();
				goto fail;
			}
			buf = grown;
		}
		ret = bop_source_read(src, buf + n, cap - n - 1, &got);
		if (ret < 0)
			goto fail;
		if (got == 0)
			break;
		n += got;
		if (n > max) {
			ret = bop__error(BOP_EINVAL, "%s is larger than the %zu bytes expected", key, max);
			goto fail;
		}
	}
	buf[n] = '\0';
	*data = buf;
	if (len)
		*len = n;
	return 0;
fail:
	free(buf);
	return ret;
}

int bop__storage_get_bytes(bop_storage_t *st, const char *key, char **data, size_t *len,
	size_t max)
{
	bop_source_t *src = NULL;
	int ret;

	if (!data)
		return bop__error(BOP_EINVAL, "bop__storage_get_bytes: NULL data");
	*data = NULL;
	ret = bop_storage_get(st, &src, key, 0);
	if (ret < 0)
		return ret;
	ret = read_all(src, key, data, len, max);
	if (ret == 0)
		ret = bop_source_close(src);
	if (ret < 0) {
		free(*data);
		*data = NULL;
	}
	bop_source_free(src);
	return ret;
}
