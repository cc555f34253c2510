/*
 * Sources (where a stream comes from) and sinks (where it goes).
 *
 * A source is read until it reports end of stream, then closed: closing a command source
 * waits for the command and fails with BOP_ECHILD if it exited non-zero or was killed, so
 * a failed producer can never look like a finished stream.
 *
 * A sink is written to, then either committed (the data is complete: a file is fsynced and
 * renamed into place, a command's stdin is closed and its exit status checked, an upload is
 * completed) or aborted (a file is removed, a command is killed with SIGKILL — it never sees
 * a clean end of input — an upload is canceled). Freeing an uncommitted sink aborts it.
 *
 * Third parties implement their own with <backupop/sys/io.h>.
 */
#ifndef BACKUPOP_IO_H
#define BACKUPOP_IO_H

#include "common.h"

BOP_BEGIN_DECL

typedef struct bop_source bop_source_t;
typedef struct bop_sink bop_sink_t;

/* How to run a child process. */
typedef struct bop_command_options {
	unsigned int version;
	/* NULL-terminated. argv[0] is looked up in PATH. No shell is involved unless
	 * `shell` is set, in which case argv[0] is a script run by /bin/sh -c. */
	const char *const *argv;
	/* NULL-terminated "NAME=value" strings added to (or, with inherit_env = 0, replacing)
	 * this process's environment. Values are never logged. May be NULL. */
	const char *const *env;
	int inherit_env;        /* default 1 */
	int shell;              /* default 0 */
	const char *cwd;        /* NULL: the current directory */
	/* The whole run must finish within this many milliseconds, else the child is killed
	 * and the operation fails with BOP_ETIMEOUT. 0: no deadline. */
	int64_t timeout_ms;
} bop_command_options_t;

#define BOP_COMMAND_OPTIONS_VERSION 1
#define BOP_COMMAND_OPTIONS_INIT { BOP_COMMAND_OPTIONS_VERSION, NULL, NULL, 1, 0, NULL, 0 }

/* Fills `opts` with the defaults of `version`. BOP_EVERSION for an unknown version. */
BOP_EXTERN(int) bop_command_options_init(bop_command_options_t *opts, unsigned int version);

/* Reads from `fd`; closes it on free when `close_fd` is non-zero. */
BOP_EXTERN(int) bop_source_fd_new(bop_source_t **out, int fd, int close_fd);

/* Reads the file at `path`. BOP_ENOTFOUND when it does not exist. */
BOP_EXTERN(int) bop_source_file_new(bop_source_t **out, const char *path);

/* Reads a copy of `len` bytes at `data`. */
BOP_EXTERN(int) bop_source_memory_new(bop_source_t **out, const void *data, size_t len);

/* Starts the command and reads its stdout. Its stderr is passed to the log (level warn),
 * and its last line is quoted in the error if the command fails. */
BOP_EXTERN(int) bop_source_command_new(bop_source_t **out, const bop_command_options_t *opts);

/* Called to fill `buf` with up to `cap` bytes; set *got to 0 at end of stream. Return 0,
 * or a negative bop_error_t after setting a message with bop_log/your own means. */
typedef int (*bop_read_cb)(void *buf, size_t cap, size_t *got, void *payload);

/* A source that calls `read` (useful from bindings). */
BOP_EXTERN(int) bop_source_callback_new(bop_source_t **out, bop_read_cb read, void *payload);

/* Reads up to `cap` bytes into `buf`; *got is 0 only at end of stream. */
BOP_EXTERN(int) bop_source_read(bop_source_t *src, void *buf, size_t cap, size_t *got);

/* Ends reading and reports how the producer ended (BOP_ECHILD, BOP_ETIMEOUT, ...). */
BOP_EXTERN(int) bop_source_close(bop_source_t *src);

/* Frees the source; a command still running is killed. Accepts NULL. */
BOP_EXTERN(void) bop_source_free(bop_source_t *src);

/* Writes to `fd`; closes it on free when `close_fd` is non-zero. Commit fsyncs regular
 * files. */
BOP_EXTERN(int) bop_sink_fd_new(bop_sink_t **out, int fd, int close_fd);

/* Writes to a temporary file beside `path` (mode 0600); commit fsyncs and renames it to
 * `path`, abort removes it. An existing `path` is replaced only on commit, and only when
 * it is a regular file: a device or FIFO is written in place, a symbolic link is followed
 * (its target is written by these rules), anything else is refused with BOP_EINVAL. */
BOP_EXTERN(int) bop_sink_file_new(bop_sink_t **out, const char *path);

/* Starts the command and writes to its stdin. Commit closes stdin and fails with
 * BOP_ECHILD unless the command exits 0; abort kills it. */
BOP_EXTERN(int) bop_sink_command_new(bop_sink_t **out, const bop_command_options_t *opts);

/* Called with each chunk; return 0 or a negative bop_error_t. */
typedef int (*bop_write_cb)(const void *buf, size_t len, void *payload);

/* A sink that calls `write`; commit and abort only change its state. */
BOP_EXTERN(int) bop_sink_callback_new(bop_sink_t **out, bop_write_cb write, void *payload);

/* Writes all `len` bytes or fails. */
BOP_EXTERN(int) bop_sink_write(bop_sink_t *sink, const void *buf, size_t len);

/* Declares the data complete; see above. */
BOP_EXTERN(int) bop_sink_commit(bop_sink_t *sink);

/* Discards what was written; see above. */
BOP_EXTERN(void) bop_sink_abort(bop_sink_t *sink);

/* Frees the sink, aborting it unless committed. Accepts NULL. */
BOP_EXTERN(void) bop_sink_free(bop_sink_t *sink);

BOP_END_DECL

#endif
