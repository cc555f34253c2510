/*
 * Error handling.
 *
 * Functions that can fail return an int: 0 on success, a negative bop_error_t on failure.
 * The few codes below are the failures a caller may want to handle differently; everything
 * else is BOP_ERROR. The words for the user are in bop_error_last(), which is thread-local.
 * Codes are never renumbered or reused.
 */
#ifndef BACKUPOP_ERRORS_H
#define BACKUPOP_ERRORS_H

#include "common.h"

BOP_BEGIN_DECL

typedef enum bop_error {
	BOP_OK = 0,
	BOP_ERROR = -1,         /* any other failure; see bop_error_last() */
	BOP_ENOTFOUND = -2,     /* the object, backup, file or key does not exist */
	BOP_EEXISTS = -3,       /* it exists already */
	BOP_EINVAL = -4,        /* an argument, option or setting is invalid */
	BOP_EVERSION = -5,      /* an options struct or vtable has an unknown version */
	BOP_ENOMEM = -6,        /* out of memory */
	BOP_EIO = -7,           /* reading or writing failed (disk, pipe, network) */
	BOP_EAUTH = -8,         /* credentials were refused (storage, database) */
	BOP_EINTEGRITY = -9,    /* data failed authentication or did not match its checksum */
	BOP_ETIMEOUT = -10,     /* a deadline passed */
	BOP_ECANCELED = -11,    /* the operation was canceled */
	BOP_ECONFLICT = -12,    /* someone else holds the lock, or removed what was being written */
	BOP_ECHILD = -13,       /* a child process failed: non-zero exit or killed by a signal */
	BOP_ENOTSUPPORTED = -14,/* the backend or engine cannot do this */
	BOP_EFORMAT = -15,      /* malformed input: age header, manifest, config, key */
	BOP_ENOKEY = -16,       /* no identity or passphrase given matches the encrypted data */
	BOP_ECONNECT = -17,     /* a server (database, storage) could not be reached */
} bop_error_t;

/* The message of the last error on this thread, in words a user can act on. Never NULL
 * ("no error" when none). Valid until the next bop_ call on this thread. Secrets
 * registered with bop_log_add_secret() are redacted. */
BOP_EXTERN(const char *) bop_error_last(void);

/* The code of the last error on this thread, BOP_OK when none. */
BOP_EXTERN(int) bop_error_last_code(void);

/* Forgets the last error on this thread. */
BOP_EXTERN(void) bop_error_clear(void);

/* Sets this thread's last error: for plug-ins (storage backends, engines, stages) and
 * callbacks to explain their failure in words; returns `code` so a plug-in can write
 * `return bop_error_set(BOP_EAUTH, "the server refused the access key");`. The message
 * is copied (and redacted). */
BOP_EXTERN(int) bop_error_set(int code, const char *message);

/* bop_error_set() with a printf-style message:
 * `return bop_error_setf(BOP_EINVAL, "block size %zu is not a power of two", bs);`.
 * A message longer than 2047 bytes is cut. */
BOP_EXTERN(int) bop_error_setf(int code, const char *format, ...) BOP_PRINTF_FORMAT(2, 3);

/* A short static description of an error code ("not found"). Unknown codes give
 * "unknown error". */
BOP_EXTERN(const char *) bop_strerror(int code);

BOP_END_DECL

#endif
