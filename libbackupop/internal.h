/*
 * Private declarations shared by the modules of libbackupop. Nothing here is exported:
 * the names use the bop__ prefix and the library is built with hidden visibility.
 */
#ifndef BOP_INTERNAL_H
#define BOP_INTERNAL_H

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backupop.h"
#include "backupop/sys/engine.h"
#include "backupop/sys/io.h"
#include "backupop/sys/stage.h"
#include "backupop/sys/storage.h"

#define BOP_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define BOP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define BOP_UNUSED(x) ((void)(x))

/* ---- util/errors.c ---- */

/* Sets this thread's last error (message redacted) and returns `code`, so a failure
 * reads `return bop__error(BOP_EINVAL, "level %d is out of range 1..19", level);`. */
int bop__error(int code, const char *fmt, ...) BOP_PRINTF(2, 3);

/* Like bop__error() with ": <strerror(errnum)>" appended; the code is BOP_ENOTFOUND for
 * ENOENT, BOP_ENOMEM for ENOMEM, BOP_EEXISTS for EEXIST, else `code`. */
int bop__error_errno(int code, int errnum, const char *fmt, ...) BOP_PRINTF(3, 4);

/* Prefixes the current message with context: "reading manifest: <old message>".
 * Returns the current code. */
int bop__error_wrap(const char *fmt, ...) BOP_PRINTF(1, 2);

/* bop__error(BOP_ENOMEM, "out of memory"). */
int bop__error_oom(void);

/* ---- util/log.c ---- */

void bop__log(bop_log_level_t level, const char *component, const char *fmt, ...) BOP_PRINTF(3, 4);
void bop__logv(bop_log_level_t level, const char *component, const char *fmt, va_list ap) BOP_PRINTF(3, 0);
bool bop__log_enabled(bop_log_level_t level);

/* A malloc'd copy of `text` with every registered secret replaced by "[REDACTED]". */
char *bop__redact(const char *text);
/* How many bytes at the end of text[0..len) could be the start of a registered secret
 * (0 when none): a line cut there must not be logged before the rest arrives. */
size_t bop__secret_partial_tail(const char *text, size_t len);
/* Forgets every registered secret (for fuzz targets that register thousands). */
void bop__log_clear_secrets(void);

/* ---- util/version.c ---- */

/*
 * The oldest version of each options struct and plug-in vtable that this library still
 * understands; BOP_<X>_VERSION in the public headers is the newest. They are equal until a
 * layout grows: then BOP_<X>_VERSION goes up, and BOP__OLDEST_<X>_VERSION stays for as long
 * as the library still reads the older layout (reading only the members it has, and an
 * options _init() filling only those).
 */
#define BOP__OLDEST_STORAGE_VERSION 1
#define BOP__OLDEST_ENGINE_VERSION 1
#define BOP__OLDEST_STAGE_VERSION 1
#define BOP__OLDEST_SOURCE_VERSION 1
#define BOP__OLDEST_SINK_VERSION 1
#define BOP__OLDEST_STORAGE_OPTIONS_VERSION 1
#define BOP__OLDEST_STORAGE_STAT_VERSION 1
#define BOP__OLDEST_PUT_OPTIONS_VERSION 1
#define BOP__OLDEST_COMMAND_OPTIONS_VERSION 1
#define BOP__OLDEST_PIPELINE_OPTIONS_VERSION 1
#define BOP__OLDEST_COMPRESS_OPTIONS_VERSION 1
#define BOP__OLDEST_BACKUP_OPTIONS_VERSION 1
#define BOP__OLDEST_RESTORE_OPTIONS_VERSION 1
#define BOP__OLDEST_MANIFEST_FILE_VERSION 1
#define BOP__OLDEST_RETENTION_POLICY_VERSION 1
#define BOP__OLDEST_HTTP_SERVER_OPTIONS_VERSION 1
#define BOP__OLDEST_K8S_CLIENT_OPTIONS_VERSION 1
#define BOP__OLDEST_K8S_INFORMER_OPTIONS_VERSION 1
#define BOP__OLDEST_WORKQUEUE_OPTIONS_VERSION 1
#define BOP__OLDEST_K8S_LEADER_OPTIONS_VERSION 1
#define BOP__OLDEST_RECONCILE_OPTIONS_VERSION 1

/* 0 when oldest <= version <= newest; else BOP_EVERSION with one message naming the
 * plug-in or struct for the user (`what`, followed by `name` in quotes when not NULL:
 * storage backend "s3", stage "zstd-compress", bop_backup_options_t), its version and the
 * versions this library understands. */
int bop__version_check(const char *what, const char *name, unsigned int version,
	unsigned int oldest, unsigned int newest);

/* The check of the struct or vtable whose BOP_<X>_VERSION is named by X:
 * BOP__VERSION_CHECK("engine", "dd", e->version, ENGINE_VERSION). */
#define BOP__VERSION_CHECK(what, name, version, X) \
	bop__version_check((what), (name), (version), BOP__OLDEST_##X, BOP_##X)

/* The same test without an error, for free functions and "is this ours" tests. */
#define BOP__VERSION_OK(version, X) ((version) >= BOP__OLDEST_##X && (version) <= BOP_##X)

/* ---- util/mem.c ---- */

/* strdup/asprintf/calloc that set BOP_ENOMEM on failure and return NULL. */
char *bop__strdup(const char *s);
char *bop__strndup(const char *s, size_t n);
char *bop__sprintf(const char *fmt, ...) BOP_PRINTF(1, 2);
void *bop__calloc(size_t n, size_t size);

/* Overwrites memory in a way the compiler keeps (for key material). */
void bop__wipe(void *p, size_t n);

/* Wipes a string holding a secret (password, token, an env entry with one) and frees it;
 * accepts NULL. */
void bop__free_wiped(char *s);

/* Grows the array at *(void **)pdata, *cap elements of `size` bytes, to hold at least
 * `need`: the capacity doubles from `first` (or from *cap) until it does. The new room is
 * not initialised. 0, or BOP_ENOMEM (error set) with the array and *cap unchanged. */
int bop__reserve(void *pdata, size_t *cap, size_t need, size_t size, size_t first);

/* Number of online cores, at least 1; bop__ncpu_override when it is above 0 (the tests set
 * it to take the paths of a machine with more cores than theirs). */
int bop__ncpu(void);
extern int bop__ncpu_override;

/* Lowercase hex of `n` bytes into `out` (2n+1 bytes). */
void bop__hex(char *out, const unsigned char *in, size_t n);

/* Reads a whole small file (at most `max` bytes, else BOP_EINVAL). NUL-terminated. */
int bop__read_file(const char *path, char **out, size_t *len, size_t max);

/* Wall-clock time, unix seconds / milliseconds. */
int64_t bop__now(void);
int64_t bop__now_ms(void);

/* ---- pipeline ---- */

/* Makes the pipeline also stop (BOP_ECANCELED) once *flag is non-zero; the flag must
 * outlive the run. */
void bop__pipeline_watch(bop_pipeline_t *p, volatile sig_atomic_t *flag);
/* Lets the pipeline read its source and run the stages before its first decompression
 * (the stored hash, decryption), or else before its first compression (the plaintext
 * hash), on a thread of their own when it has two cores or more. The source is then read
 * on that thread: for the catalog's pipelines, whose stages are the library's own. */
void bop__pipeline_read_ahead(bop_pipeline_t *p);
/* While bop_pipeline_run() pumps on this thread: whether its cancel flag (or the one it
 * watches) is set, and whether there is any to watch. A source or sink that waits (a
 * command that writes nothing) checks it periodically and stops with BOP_ECANCELED. */
bool bop__cancel_requested(void);
bool bop__cancel_watchable(void);

/* A stage that passes everything through but withholds the last `bytes` of the stream
 * until BOP_STREAM_END reaches it, i.e. until every stage before it ended without error.
 * FLUSH does not release them. */
int bop__stage_holdback_new(bop_stage_t **out, size_t bytes);

/* What a stage the pipeline drives itself passes on: 0 or an error. */
typedef int (*bop__emit_fn)(void *ctx, const void *buf, size_t len);

/* Whether `stage` is a hold-back stage, which the pipeline drives with
 * bop__holdback_pass() so that the bulk of the stream is not copied through it. */
bool bop__holdback_is(const bop_stage_t *stage);

/* Gives hold-back `stage` `len` more bytes of the stream: the bytes that leave it go to
 * `emit` (held ones first, then a part of `buf` itself) and only the stream's newest
 * bytes are copied in; END releases all. */
int bop__holdback_pass(bop_stage_t *stage, const void *buf, size_t len,
	bop_stream_directive_t directive, bop__emit_fn emit, void *ctx);

/* Whether `stage` is a SHA-256 tap, which the pipeline lets look at its buffers and then
 * passes them on as they are, instead of having the tap copy them. */
bool bop__sha256_is_tap(const bop_stage_t *stage);

/* Has SHA-256 stage `stage`, before it saw any data, hash on the caller's thread instead of
 * a thread of its own: for where the other threads keep every core busy already. */
void bop__sha256_in_place(bop_stage_t *stage);

/* Has SHA-256 stage `stage`, before it saw any data, count the stream instead of hashing
 * it: an expected size is still checked (and an excess still stops the stream), the
 * expected digest is not, and there is no result. For a decode whose plaintext is hashed. */
void bop__sha256_count_only(bop_stage_t *stage);

/* 1 when `stage` is one of the library's compression stages (*workers: the zstd worker
 * threads it runs, 0 when it compresses on the caller's thread), -1 when it is one of its
 * decompression stages, 0 for any other stage. */
int bop__codec_kind(const bop_stage_t *stage, int *workers);

/* Does SHA-256 stage `stage` hash on a thread of its own (for the tests)? */
bool bop__sha256_threaded(const bop_stage_t *stage);

/* Has SHA-256 tap `stage` look at `len` bytes of the stream (and at the directive: END
 * completes the hash and its checks): 0 or an error, as bop_stage_process(). */
int bop__sha256_observe(bop_stage_t *stage, const void *buf, size_t len,
	bop_stream_directive_t directive);

/* bop_sink_file_new(); with `exclusive`, commit fails with BOP_EEXISTS if `path` exists. */
int bop__sink_file_new(bop_sink_t **out, const char *path, bool exclusive);

/* bop_source_command_new() and bop_sink_command_new() whose command runs in another
 * container, through the backupop-exec-agent listening at `agent_socket` (see
 * pipeline/exec_agent.h). opts->cwd is a directory there. */
int bop__source_command_agent_new(bop_source_t **out, const bop_command_options_t *opts,
	const char *agent_socket);
int bop__sink_command_agent_new(bop_sink_t **out, const bop_command_options_t *opts,
	const char *agent_socket);

/* ---- crypto (age) ---- */

/* "x25519", "scrypt" or "none" for what encrypting with `keys` would produce. */
const char *bop__keys_kind(const bop_keys_t *keys);

/* Fingerprints of the recipients encryption would use (never the keys themselves):
 * "sha256:<first 16 hex of SHA-256(recipient string)>". *fps is a NULL-terminated array;
 * free with bop__strv_free(). */
int bop__keys_fingerprints(const bop_keys_t *keys, char ***fps);

void bop__strv_free(char **v);

/* ---- storage ---- */

/* Writes a small object in one go (put + write + commit). */
int bop__storage_put_bytes(bop_storage_t *st, const char *key, const void *data, size_t len,
	bool exclusive);

/* Reads a whole small object (at most `max` bytes, else BOP_EINVAL), NUL-terminated. */
int bop__storage_get_bytes(bop_storage_t *st, const char *key, char **data, size_t *len,
	size_t max);

/* The built-in "file" backend (storage/file/file.c): "file:///abs", "file://rel" or a
 * bare local path. */
int bop__storage_file_open(bop_storage_t **out, const char *url,
	const bop_storage_options_t *opts, void *payload);

/* The built-in "s3" backend (storage/s3/): "s3://BUCKET[/PREFIX]?endpoint=...". */
int bop__storage_s3_open(bop_storage_t **out, const char *url,
	const bop_storage_options_t *opts, void *payload);

/* ---- engine ---- */

/* The built-in engines, each opened by bop__engine_kind_open() with its kind as the
 * payload (engine/config.h). */
struct bop__engine_kind;
int bop__engine_kind_open(bop_engine_t **out, const char *config_json, void *kind);

/* The names of the registered engines with every capability in `capabilities`, sorted
 * and joined for a message: "cockroach, exec, files, mysql or postgres" with
 * `last_separator` " or ". NULL when out of memory. */
char *bop__engine_names_text(unsigned int capabilities, const char *last_separator);

/* "exec" (engine/exec/exec.c). */
extern const struct bop__engine_kind bop__engine_exec_kind;

/* "postgres" and "mysql" (engine/postgres/, engine/mysql/). */
extern const struct bop__engine_kind bop__engine_postgres_kind;
extern const struct bop__engine_kind bop__engine_mysql_kind;
/* The directories searched for the PostgreSQL client tools after PATH, newest version
 * first: "/usr/lib/postgresql/ * /bin" (without the spaces); white-box tests set their own. */
extern const char *bop__postgres_tool_glob;

/* "files" (engine/files/): a directory tree as a pax tar stream. */
extern const struct bop__engine_kind bop__engine_files_kind;

/* "cockroach" (engine/cockroach/): BACKUP/RESTORE statements that CockroachDB runs against
 * the runner's HTTP file endpoint. */
extern const struct bop__engine_kind bop__engine_cockroach_kind;

/* ---- catalog ---- */

/* What bop__manifest_new() records; strings are copied. */
typedef struct bop__manifest_info {
	const char *id;
	const char *name;
	const char *engine;
	int64_t start_ms;                       /* unix milliseconds */
	int64_t end_ms;
	uint64_t plain_bytes;
	const char *plain_sha256;
	uint64_t stored_bytes;
	const char *stored_sha256;
	bop_compression_t compression;
	int level;
	const char *encryption;                 /* "none", "x25519" or "scrypt" */
	const char *const *recipients;          /* fingerprints, NULL-terminated; may be NULL */
	int exit_status;
	const char *const *tags;                /* NULL-terminated; may be NULL */
	const char *object;
	/* A multi-file backup (catalog/files.c): its files, in any order. */
	bool has_files;
	const struct bop__file_entry *files;
	size_t nfiles;
} bop__manifest_info_t;

/* One named file of a multi-file backup. */
typedef struct bop__file_entry {
	char *name;
	char *object;
	uint64_t plain_bytes;
	char plain_sha256[BOP_SHA256_HEX_SIZE];
	uint64_t stored_bytes;
	char stored_sha256[BOP_SHA256_HEX_SIZE];
} bop__file_entry_t;

/* The files of manifest `m` (NULL and 0 for a single-stream backup). */
const bop__file_entry_t *bop__manifest_files(const bop_manifest_t *m, size_t *n);

int bop__manifest_new(bop_manifest_t **out, const bop__manifest_info_t *info);

int bop__manifest_list_new(bop_manifest_list_t **out);

/* Appends `m`, which the list owns afterwards, even when this fails. */
int bop__manifest_list_append(bop_manifest_list_t *list, bop_manifest_t *m);

/* Oldest first: by start time, then by id. */
void bop__manifest_list_sort(bop_manifest_list_t *list);

/* A relative storage path: '/'-separated, no empty, "." or ".." segments, no leading '/',
 * no control characters. Catalog names and object keys must be one. */
bool bop__catalog_path_valid(const char *path);

/* A backup id: one path segment of [A-Za-z0-9._-], starting with a letter or digit. */
bool bop__catalog_id_valid(const char *id);

/* A tag: 1 to 128 printable characters without ',' (labels join tags with ','). */
bool bop__catalog_tag_valid(const char *tag);

/* RFC 3339 UTC, "2026-11-21T02:00:00Z"; `out` holds at least 32 bytes. */
void bop__catalog_format_time(char *out, size_t size, int64_t t);

bop_storage_t *bop__catalog_storage(const bop_catalog_t *catalog);
const char *bop__catalog_name(const bop_catalog_t *catalog);

/* Set by bop_catalog_cancel(); pipelines of the catalog watch it. */
volatile sig_atomic_t *bop__catalog_cancel_flag(bop_catalog_t *catalog);

/* catalog/backup.c, shared with the multi-file backups of catalog/files.c. */
int bop__catalog_new_id(char *out, size_t size, int64_t start);
int bop__catalog_check_backup_options(const bop_backup_options_t *opts);
int bop__catalog_effective_level(bop_compression_t c, int level);
int bop__catalog_write_manifest(bop_catalog_t *catalog, const char *id, const bop_manifest_t *m);

/* catalog/backup.c: the one encode chain and the one decode chain of stored data, for
 * single-stream backups and the files of multi-file backups. */
typedef struct bop__encode_taps {
	bop_stage_t *plain;             /* owned by the pipeline */
	bop_stage_t *stored;            /* NULL when the stored bytes are the plaintext */
} bop__encode_taps_t;

/* Adds sha256 (plain) -> compress -> age encrypt -> sha256 (stored) as `o` asks. */
int bop__catalog_add_encode(bop_pipeline_t *p, const bop_backup_options_t *o,
	bop__encode_taps_t *taps);

/* After the pipeline ran: SHA-256 (hex) and size of the plaintext and of what was stored. */
int bop__catalog_encode_result(const bop__encode_taps_t *taps, char *plain_sha256,
	uint64_t *plain_bytes, char *stored_sha256, uint64_t *stored_bytes);

/* What a stored object must decode to. */
typedef struct bop__decode_spec {
	const char *what;               /* for messages: "backup <id>", "file \"x\"" */
	bop_compression_t compression;
	bool encrypted;
	const bop_keys_t *keys;
	const bop__file_entry_t *expect; /* sizes and SHA-256s, stored and plain */
	bool whole;                     /* a verification: the stored object's SHA-256 is
	                                 * checked too, not only its size (see add_decode) */
} bop__decode_spec_t;

/* Adds sha256 (stored, expected; only its size unless `whole`) -> age decrypt ->
 * decompress -> sha256 (plain, expected) -> holdback. The expected taps stop a stream one byte past its declared size
 * (BOP_EINTEGRITY), and the holdback keeps the end from the sink until all checks passed. */
int bop__catalog_add_decode(bop_pipeline_t *p, const bop__decode_spec_t *d);

/* The error of a decode pipeline that failed with `ret`: data that does not decode or
 * does not match is BOP_EINTEGRITY ("<what>: the data does not match its manifest:
 * <why>"); other errors keep their code ("<what>: <why>"). */
int bop__catalog_decode_failed(int ret, const char *what);

/* catalog/files.c: bop_catalog_verify() of a multi-file backup. */
int bop__catalog_verify_files(bop_catalog_t *catalog, const bop_manifest_t *m,
	const bop_restore_options_t *opts);

#endif
