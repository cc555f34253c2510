/*
 * Private declarations shared by the modules of libbackupop. Nothing here is exported:
 * the names use the bop__ prefix and the library is built with hidden visibility.
 */
#ifndef BOP_INTERNAL_H
#define BOP_INTERNAL_H

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
void bop__logv(bop_log_level_t level, const char *component, const char *fmt, va_list ap);
bool bop__log_enabled(bop_log_level_t level);

/* A malloc'd copy of `text` with every registered secret replaced by "[REDACTED]". */
char *bop__redact(const char *text);

/* ---- util/mem.c ---- */

/* strdup/asprintf/calloc that set BOP_ENOMEM on failure and return NULL. */
char *bop__strdup(const char *s);
char *bop__strndup(const char *s, size_t n);
char *bop__sprintf(const char *fmt, ...) BOP_PRINTF(1, 2);
void *bop__calloc(size_t n, size_t size);

/* Overwrites memory in a way the compiler keeps (for key material). */
void bop__wipe(void *p, size_t n);

/* Number of online cores, at least 1. */
int bop__ncpu(void);

/* Lowercase hex of `n` bytes into `out` (2n+1 bytes). */
void bop__hex(char *out, const unsigned char *in, size_t n);

/* Reads a whole small file (at most `max` bytes, else BOP_EINVAL). NUL-terminated. */
int bop__read_file(const char *path, char **out, size_t *len, size_t max);

/* Wall-clock time, unix seconds. */
int64_t bop__now(void);

/* ---- pipeline ---- */

/* bop_sink_file_new(); with `exclusive`, commit fails with BOP_EEXISTS if `path` exists. */
int bop__sink_file_new(bop_sink_t **out, const char *path, bool exclusive);

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

/* ---- engine ---- */

/* The built-in "exec" engine (engine/exec/exec.c). */
int bop__engine_exec_open(bop_engine_t **out, const char *config_json, void *payload);

#endif
