/*
 * Storage: where backups live, addressed by URL ("file:///var/backups", "s3://bucket/pfx").
 * Keys are relative, '/'-separated paths below the URL. Backends register by URL scheme;
 * "file" is built in. Third parties implement <backupop/sys/storage.h>.
 */
#ifndef BACKUPOP_STORAGE_H
#define BACKUPOP_STORAGE_H

#include "common.h"
#include "io.h"

BOP_BEGIN_DECL

typedef struct bop_storage bop_storage_t;

typedef struct bop_storage_options {
	unsigned int version;
	/* NULL-terminated list of alternating setting names and values, for settings that do
	 * not belong in a URL (credentials, CA files). May be NULL. */
	const char *const *settings;
} bop_storage_options_t;

#define BOP_STORAGE_OPTIONS_VERSION 1
#define BOP_STORAGE_OPTIONS_INIT { BOP_STORAGE_OPTIONS_VERSION, NULL }

BOP_EXTERN(int) bop_storage_options_init(bop_storage_options_t *opts, unsigned int version);

typedef struct bop_storage_stat {
	unsigned int version;
	uint64_t size;
	int64_t mtime;          /* seconds since the epoch */
} bop_storage_stat_t;

#define BOP_STORAGE_STAT_VERSION 1

typedef struct bop_put_options {
	unsigned int version;
	/* Expected size if known, else 0 (lets a backend choose part sizes). */
	uint64_t size_hint;
	/* Fail with BOP_EEXISTS if the key exists (BOP_ENOTSUPPORTED if the backend cannot
	 * guarantee that). */
	int exclusive;
} bop_put_options_t;

#define BOP_PUT_OPTIONS_VERSION 1
#define BOP_PUT_OPTIONS_INIT { BOP_PUT_OPTIONS_VERSION, 0, 0 }

/* Opens the storage at `url`; `opts` may be NULL. BOP_ENOTSUPPORTED for an unknown
 * scheme. A URL without a scheme is a local path; BOP_EINVAL for a ':' in the first
 * segment of one that has no "scheme://" ("s3:/bucket" is a typo, not a directory). */
BOP_EXTERN(int) bop_storage_open(bop_storage_t **out, const char *url,
	const bop_storage_options_t *opts);

/* Accepts NULL. */
BOP_EXTERN(void) bop_storage_free(bop_storage_t *storage);

/* A sink writing `key`; the object appears only when the sink is committed. `opts` may
 * be NULL. */
BOP_EXTERN(int) bop_storage_put(bop_storage_t *storage, bop_sink_t **out, const char *key,
	const bop_put_options_t *opts);

/* A source reading `key` from byte `offset`. BOP_ENOTFOUND when missing. */
BOP_EXTERN(int) bop_storage_get(bop_storage_t *storage, bop_source_t **out, const char *key,
	uint64_t offset);

/* Fills `st` with the size and time of `key`. BOP_ENOTFOUND when missing. `st->version`
 * must be set by the caller. */
BOP_EXTERN(int) bop_storage_stat(bop_storage_t *storage, bop_storage_stat_t *st,
	const char *key);

/* Called for each key under a prefix, in no particular order; return non-zero to stop. */
typedef int (*bop_storage_list_cb)(const char *key, const bop_storage_stat_t *st,
	void *payload);

/* Lists every key that starts with `prefix` ("" for all). */
BOP_EXTERN(int) bop_storage_list(bop_storage_t *storage, const char *prefix,
	bop_storage_list_cb cb, void *payload);

/* Removes `key`. BOP_ENOTFOUND when missing. */
BOP_EXTERN(int) bop_storage_remove(bop_storage_t *storage, const char *key);

/* Removes every key of `keys` (`n` of them), in batches where the backend can (S3:
 * DeleteObjects, 1000 keys a request). A key that does not exist is not an error. Goes on
 * past failures and returns the first error. */
BOP_EXTERN(int) bop_storage_remove_many(bop_storage_t *storage, const char *const *keys,
	size_t n);

/* Finds what interrupted writes left behind under `prefix` (S3: multipart uploads never
 * completed or aborted; file: temporary files) that started more than
 * `older_than_seconds` ago, calls `cb` (may be NULL) with each one's name, and removes
 * them unless `dry_run`. Leftovers are never visible as objects; this frees their space.
 * BOP_ENOTSUPPORTED if the backend has nothing of the kind. */
BOP_EXTERN(int) bop_storage_cleanup(bop_storage_t *storage, const char *prefix,
	int64_t older_than_seconds, int dry_run, bop_storage_list_cb cb, void *payload);

/* Opens a storage for a URL of a registered scheme. */
typedef int (*bop_storage_open_fn)(bop_storage_t **out, const char *url,
	const bop_storage_options_t *opts, void *payload);

/* Registers a backend for URLs "scheme://...". BOP_EEXISTS if taken. */
BOP_EXTERN(int) bop_storage_register(const char *scheme, bop_storage_open_fn open,
	void *payload);

BOP_END_DECL

#endif
