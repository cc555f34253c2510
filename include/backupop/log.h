/*
 * Logging.
 *
 * The library logs to stderr by default: human-readable lines when stderr is a terminal,
 * JSON lines otherwise ({"ts":...,"level":"info","component":"pipeline","msg":"..."}).
 * Every line, and every error message, has registered secrets replaced by "[REDACTED]".
 */
#ifndef BACKUPOP_LOG_H
#define BACKUPOP_LOG_H

#include "common.h"

BOP_BEGIN_DECL

typedef enum bop_log_level {
	BOP_LOG_TRACE = 0,
	BOP_LOG_DEBUG = 1,
	BOP_LOG_INFO = 2,
	BOP_LOG_WARN = 3,
	BOP_LOG_ERROR = 4,
	BOP_LOG_OFF = 5,
} bop_log_level_t;

typedef enum bop_log_format {
	BOP_LOG_FORMAT_AUTO = 0,   /* text on a terminal, JSON otherwise */
	BOP_LOG_FORMAT_TEXT = 1,
	BOP_LOG_FORMAT_JSON = 2,
} bop_log_format_t;

/* Receives every line at or above the level, already redacted, instead of the fd. */
typedef void (*bop_log_cb)(bop_log_level_t level, const char *component,
	const char *message, void *payload);

/* Lines below `level` are dropped. Default BOP_LOG_INFO. */
BOP_EXTERN(void) bop_log_set_level(bop_log_level_t level);

/* Parses "trace", "debug", "info", "warn", "error" or "off". BOP_EINVAL otherwise. */
BOP_EXTERN(int) bop_log_level_parse(bop_log_level_t *out, const char *name);

BOP_EXTERN(void) bop_log_set_format(bop_log_format_t format);

/* Where lines go (default 2). The fd is not closed by the library. */
BOP_EXTERN(void) bop_log_set_fd(int fd);

/* Sends lines to `cb` instead of the fd; NULL restores the fd. */
BOP_EXTERN(void) bop_log_set_callback(bop_log_cb cb, void *payload);

/* Registers a secret (password, key, token): from now on it never appears in a log line or
 * an error message of this process. The library keeps its own copy. Secrets shorter than
 * 4 bytes are refused with BOP_EINVAL (they would redact ordinary words). */
BOP_EXTERN(int) bop_log_add_secret(const char *secret);

/* Logs one line from the application through the library's logger. */
BOP_EXTERN(void) bop_log(bop_log_level_t level, const char *component, const char *message);

BOP_END_DECL

#endif
