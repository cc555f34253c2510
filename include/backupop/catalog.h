/*
 * The catalog: the backups of one name (a schedule, or the CLI's --name) in a storage.
 *
 *   <name>/<id>/data[.zst|.gz][.age]    the stream, in standard formats
 *   <name>/<id>/manifest.json           written last: a backup exists iff its manifest does
 *   <name>/lock.json                    the lock, with an expiry
 *
 * <id> is the UTC start time plus a random suffix ("20261121T020000Z-k3f9"), so ids sort
 * by time. The manifest ("format": "backupop.io/manifest/v1") records sizes and SHA-256 of
 * the plaintext and of the stored object, compression, encryption (recipient fingerprints,
 * never keys), tags, times and the producer's exit status.
 */
#ifndef BACKUPOP_CATALOG_H
#define BACKUPOP_CATALOG_H

#include "common.h"
#include "io.h"
#include "storage.h"
#include "compress.h"
#include "age.h"
#include "pipeline.h"

BOP_BEGIN_DECL

typedef struct bop_catalog bop_catalog_t;
typedef struct bop_manifest bop_manifest_t;
typedef struct bop_manifest_list bop_manifest_list_t;
typedef struct bop_lock bop_lock_t;

/* Opens the catalog `name` ('/'-separated, no "..", no leading '/') in `storage`, which
 * the catalog borrows: it must outlive the catalog. */
BOP_EXTERN(int) bop_catalog_open(bop_catalog_t **out, bop_storage_t *storage, const char *name);

/* Accepts NULL. */
BOP_EXTERN(void) bop_catalog_free(bop_catalog_t *catalog);

/* Every backup of the catalog, oldest first. Data without a manifest is not a backup. */
BOP_EXTERN(int) bop_catalog_list(bop_catalog_t *catalog, bop_manifest_list_t **out);

BOP_EXTERN(size_t) bop_manifest_list_count(const bop_manifest_list_t *list);

/* The i-th manifest, owned by the list. NULL when out of range. */
BOP_EXTERN(const bop_manifest_t *) bop_manifest_list_get(const bop_manifest_list_t *list, size_t i);

/* Accepts NULL. */
BOP_EXTERN(void) bop_manifest_list_free(bop_manifest_list_t *list);

/* The manifest of backup `id`, or of the newest backup when `id` is "latest".
 * BOP_ENOTFOUND when there is none. */
BOP_EXTERN(int) bop_catalog_get(bop_catalog_t *catalog, bop_manifest_t **out, const char *id);

/* Parses a manifest.json document. BOP_EFORMAT with the reason when it is not one. */
BOP_EXTERN(int) bop_manifest_parse(bop_manifest_t **out, const char *json, size_t len);

/* The manifest as a JSON document. Free with bop_free(). */
BOP_EXTERN(int) bop_manifest_to_json(const bop_manifest_t *m, char **json);

/* Accepts NULL. */
BOP_EXTERN(void) bop_manifest_free(bop_manifest_t *m);

/* Getters. Strings are owned by the manifest. */
BOP_EXTERN(const char *) bop_manifest_id(const bop_manifest_t *m);
BOP_EXTERN(const char *) bop_manifest_name(const bop_manifest_t *m);
BOP_EXTERN(const char *) bop_manifest_engine(const bop_manifest_t *m);
BOP_EXTERN(int64_t) bop_manifest_start_time(const bop_manifest_t *m);  /* unix seconds */
BOP_EXTERN(int64_t) bop_manifest_end_time(const bop_manifest_t *m);
BOP_EXTERN(uint64_t) bop_manifest_plain_bytes(const bop_manifest_t *m);
BOP_EXTERN(uint64_t) bop_manifest_stored_bytes(const bop_manifest_t *m);
BOP_EXTERN(const char *) bop_manifest_plain_sha256(const bop_manifest_t *m);   /* hex */
BOP_EXTERN(const char *) bop_manifest_stored_sha256(const bop_manifest_t *m);  /* hex */
BOP_EXTERN(bop_compression_t) bop_manifest_compression(const bop_manifest_t *m);
/* "none", "x25519" or "scrypt". */
BOP_EXTERN(const char *) bop_manifest_encryption(const bop_manifest_t *m);
/* The storage key of the data object, relative to the storage URL. */
BOP_EXTERN(const char *) bop_manifest_object_key(const bop_manifest_t *m);
BOP_EXTERN(size_t) bop_manifest_tag_count(const bop_manifest_t *m);
BOP_EXTERN(const char *) bop_manifest_tag(const bop_manifest_t *m, size_t i);

typedef struct bop_backup_options {
	unsigned int version;
	bop_compression_t compression;   /* default BOP_COMPRESSION_ZSTD */
	int level;                       /* 0: the algorithm's default */
	int threads;                     /* 0: one per core */
	const bop_keys_t *keys;          /* NULL: not encrypted */
	const char *const *tags;         /* NULL-terminated; may be NULL */
	const char *engine;              /* recorded in the manifest; NULL: "stdin" */
	bop_progress_cb progress;        /* may be NULL */
	void *payload;
} bop_backup_options_t;

#define BOP_BACKUP_OPTIONS_VERSION 1
#define BOP_BACKUP_OPTIONS_INIT \
	{ BOP_BACKUP_OPTIONS_VERSION, BOP_COMPRESSION_ZSTD, 0, 0, NULL, NULL, NULL, NULL, NULL }

BOP_EXTERN(int) bop_backup_options_init(bop_backup_options_t *opts, unsigned int version);

/* Takes a backup of everything `source` yields (the catalog takes ownership of the
 * source). Streams it through compression, encryption and hashing into storage, then
 * writes the manifest; *out (may be NULL) receives it. On any failure, including a
 * producer that exits non-zero, nothing is left in storage and no manifest exists.
 * With two cores or more and compression, the source is read on a thread of the
 * catalog's own, one call at a time, while the calling thread compresses and writes. */
BOP_EXTERN(int) bop_catalog_backup(bop_catalog_t *catalog, bop_manifest_t **out,
	bop_source_t *source, const bop_backup_options_t *opts);

typedef struct bop_restore_options {
	unsigned int version;
	const bop_keys_t *keys;          /* identities or passphrase; NULL if not encrypted */
	bop_progress_cb progress;
	void *payload;
} bop_restore_options_t;

#define BOP_RESTORE_OPTIONS_VERSION 1
#define BOP_RESTORE_OPTIONS_INIT { BOP_RESTORE_OPTIONS_VERSION, NULL, NULL, NULL }

BOP_EXTERN(int) bop_restore_options_init(bop_restore_options_t *opts, unsigned int version);

/* Streams backup `m` into `sink` (ownership taken): decrypts (releasing only
 * authenticated data), decompresses, and checks size and SHA-256 against the manifest;
 * the sink is committed only if all of it checks out, and aborted otherwise. */
BOP_EXTERN(int) bop_catalog_restore(bop_catalog_t *catalog, const bop_manifest_t *m,
	bop_sink_t *sink, const bop_restore_options_t *opts);

/* Reads backup `m` completely as a restore would, without writing anything: stored size
 * and hash, decryption, decompression, plaintext size and hash. BOP_EINTEGRITY on a
 * mismatch. */
BOP_EXTERN(int) bop_catalog_verify(bop_catalog_t *catalog, const bop_manifest_t *m,
	const bop_restore_options_t *opts);

/* Cancels the backup, restore or verification running on this catalog, and every later
 * one: they fail with BOP_ECANCELED and clean up as on any failure (no manifest, sink
 * aborted, producer killed). Safe to call from another thread or a signal handler. A
 * command that produces nothing is noticed when it next writes or exits. */
BOP_EXTERN(void) bop_catalog_cancel(bop_catalog_t *catalog);

/* ---- multi-file backups ----
 *
 * Some engines (cockroach) produce a backup as many named files instead of one stream.
 * Each file is its own object, "<name>/<id>/files/<n>-<sanitized file name>[.zst|.gz]
 * [.age]", streamed through the same stages as a backup (SHA-256 and size of the
 * plaintext, compression, encryption, SHA-256 and size of what is stored). The manifest,
 * written last, lists every file in a "files" array; its plain/stored totals are the sums,
 * and its digests are the SHA-256 of the lines "<sha256>  <name>\n" (plain) and
 * "<sha256>  <object key>\n" (stored) of the files sorted by name, as sha256sum(1) prints
 * them. bop_catalog_verify() checks every file; bop_catalog_restore() refuses such a
 * backup (BOP_ENOTSUPPORTED): read its files with bop_catalog_read_file(). */

typedef struct bop_backup_session bop_backup_session_t;

/* A file of a multi-file backup; strings are owned by the manifest. */
typedef struct bop_manifest_file {
	unsigned int version;           /* BOP_MANIFEST_FILE_VERSION, set by the caller */
	const char *name;
	const char *object_key;
	uint64_t plain_bytes;
	const char *plain_sha256;
	uint64_t stored_bytes;
	const char *stored_sha256;
} bop_manifest_file_t;

#define BOP_MANIFEST_FILE_VERSION 1

/* 1 when backup `m` is made of named files (even none), 0 for a single stream. */
BOP_EXTERN(int) bop_manifest_has_files(const bop_manifest_t *m);

/* The number of files of `m` (0 for a single-stream backup). */
BOP_EXTERN(size_t) bop_manifest_file_count(const bop_manifest_t *m);

/* Fills `out` (its version set by the caller) with file `i`, in name order.
 * BOP_ENOTFOUND when out of range. */
BOP_EXTERN(int) bop_manifest_file(const bop_manifest_t *m, bop_manifest_file_t *out, size_t i);

/* Fills `out` with the file named `name`. BOP_ENOTFOUND when there is none. */
BOP_EXTERN(int) bop_manifest_file_find(const bop_manifest_t *m, bop_manifest_file_t *out,
	const char *name);

/* Starts a multi-file backup with a new id; nothing is stored until a file is put.
 * `opts` as for bop_catalog_backup() (may be NULL); it is copied, but the keys and tags it
 * points to, and the catalog, must outlive the session. The progress callback may be
 * called from the threads writing files, one call at a time. */
BOP_EXTERN(int) bop_catalog_backup_begin(bop_catalog_t *catalog, bop_backup_session_t **out,
	const bop_backup_options_t *opts);

/* The id the backup will have. Owned by the session. */
BOP_EXTERN(const char *) bop_backup_session_id(const bop_backup_session_t *session);

/* A sink for file `name` ('/'-separated, no empty, "." or ".." parts, no leading '/', no
 * control characters, at most 1024 bytes). What is written is compressed, encrypted,
 * hashed and stored as it arrives (memory is bounded); commit records the file in the
 * session, replacing an earlier file of that name; abort (or free) removes what was
 * stored. Several files may be written at once, from any threads. BOP_EINVAL for a bad
 * name, BOP_ECANCELED once the catalog is canceled or the session committed. */
BOP_EXTERN(int) bop_backup_session_put(bop_backup_session_t *session, bop_sink_t **out,
	const char *name);

/* The plaintext size of committed file `name` of the session into *plain_bytes.
 * BOP_ENOTFOUND if none. */
BOP_EXTERN(int) bop_backup_session_stat(bop_backup_session_t *session, uint64_t *plain_bytes,
	const char *name);

/* Reads committed file `name` of the session back from byte `offset`, as
 * bop_catalog_read_file() does (an encrypted session needs `opts->keys` with an identity).
 * BOP_ENOTFOUND if there is no such file. */
BOP_EXTERN(int) bop_backup_session_read(bop_backup_session_t *session, bop_source_t **out,
	const char *name, uint64_t offset, const bop_restore_options_t *opts);

/* Removes file `name` from the session and from storage. BOP_ENOTFOUND if none. */
BOP_EXTERN(int) bop_backup_session_remove(bop_backup_session_t *session, const char *name);

/* Ends the session: waits for no file being written (BOP_ECONFLICT if one still is),
 * checks every stored object's size, and writes the manifest; *out (may be NULL) receives
 * it. On failure the backup does not exist and its stored files are removed. Once. */
BOP_EXTERN(int) bop_backup_session_commit(bop_backup_session_t *session, bop_manifest_t **out);

/* Frees the session. Without a successful commit, every file it stored is removed: a
 * failed or canceled multi-file backup leaves nothing. Accepts NULL. */
BOP_EXTERN(void) bop_backup_session_free(bop_backup_session_t *session);

/* A source yielding the plaintext of file `name` of backup `m` from byte `offset`. The
 * file is read from its start through decryption (only authenticated data is released),
 * decompression and both SHA-256 checks; bytes before `offset` are decoded and dropped.
 * The last 256 KiB are released only once every check passed, so a file of at most that
 * size fails here, with BOP_EINTEGRITY, when it does not match the manifest, and a larger
 * one fails its last read. BOP_ENOTFOUND for an unknown file, BOP_EINVAL when `offset`
 * is beyond the end, BOP_ENOKEY when encrypted and no identity is given. */
BOP_EXTERN(int) bop_catalog_read_file(bop_catalog_t *catalog, bop_source_t **out,
	const bop_manifest_t *m, const char *name, uint64_t offset,
	const bop_restore_options_t *opts);

/* 1 when `id` is a well-formed backup id, else 0: 1 to 128 letters, digits, '.', '_' or '-',
 * starting with a letter or digit. The catalog refuses any other (BOP_EINVAL); callers
 * taking ids from outside check them with this before doing work. */
BOP_EXTERN(int) bop_catalog_id_valid(const char *id);

/* Removes backup `id`: its manifest first (so it stops existing at once), then its data. */
BOP_EXTERN(int) bop_catalog_remove(bop_catalog_t *catalog, const char *id);

/*
 * Finds and removes (unless `dry_run`) what interrupted writers left in the catalog, and
 * only in it: nested catalogs ("<name>/db") and names that share a prefix ("<name>2") are
 * not touched. That is: a lock that expired or whose holder is provably dead (same host,
 * boot and pid namespace, no such process), the storage's leftovers (S3: multipart
 * uploads; file: temporary files) older than `older_than_seconds` (file: or whose writer
 * has exited), and the objects of backups that have no manifest and started more than
 * `older_than_seconds` ago. What the holder of a live lock may be writing (backups started
 * since it took the lock) is left alone. Calls `cb` (may be NULL) with each key first;
 * a non-zero return stops.
 */
BOP_EXTERN(int) bop_catalog_gc(bop_catalog_t *catalog, int64_t older_than_seconds,
	int dry_run, bop_storage_list_cb cb, void *payload);

/* Takes the catalog's lock for `ttl_seconds` on behalf of `owner` (free text, e.g.
 * host:pid). BOP_ECONFLICT, naming the holder and expiry, if someone else holds it and it
 * has not expired; an expired lock, or one whose holder is provably dead (it ran on this
 * host, boot and pid namespace, and its process is gone), is taken over, by one taker
 * only. */
BOP_EXTERN(int) bop_catalog_lock(bop_catalog_t *catalog, bop_lock_t **out, const char *owner,
	unsigned int ttl_seconds);

/* Extends the lock by its ttl from now. BOP_ECONFLICT if it was taken over. */
BOP_EXTERN(int) bop_lock_refresh(bop_lock_t *lock);

/* Releases and frees the lock. Accepts NULL. */
BOP_EXTERN(int) bop_lock_release(bop_lock_t *lock);

BOP_END_DECL

#endif
