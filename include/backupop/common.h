/*
 * Definitions shared by every public header, and the conventions all of them follow (a new
 * API follows them too):
 *
 * Parameters come in this order: the object the function works on (`bop_catalog_t *c`),
 * then the out parameters (`bop_manifest_t **out`, `char **json`, `size_t *len`, a
 * caller's buffer and its size), then the inputs, then a callback and its payload.
 * A function that creates something has no object, so its out parameter comes first:
 * bop_x_new(bop_x_t **out, ...). On failure nothing is handed out: the caller has
 * nothing to free.
 *
 * Memory: whatever the library hands out is freed through the library, never with free():
 * an object `bop_x_t` with its own bop_x_free() (which accepts NULL; a lock with
 * bop_lock_release()), strings and other buffers returned through `char **` (JSON, text,
 * keys from a queue) with bop_free(). Strings returned as
 * `const char *` are owned by the object they come from, or static. Memory that a callback
 * hands to the library is allocated with bop_malloc() or bop_strdup() (or comes from
 * another bop_ function), because the library frees it with bop_free().
 *
 * Callbacks take the user's `void *payload` as their LAST parameter; options structs and
 * registration functions carry it next to the callback, also named `payload`.
 *
 * Versions: an options struct starts with `unsigned int version`; fill it with its
 * BOP_X_OPTIONS_INIT macro or bop_x_options_init(). A plug-in vtable (<backupop/sys/>)
 * starts with its version too, filled by BOP_STORAGE_INIT(...) and friends. The library
 * refuses a version it does not know with BOP_EVERSION.
 *
 * Errors: functions that can fail return 0 or a negative bop_error_t, with a message in
 * bop_error_last() (<backupop/errors.h>).
 */
#ifndef BACKUPOP_COMMON_H
#define BACKUPOP_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
# define BOP_BEGIN_DECL extern "C" {
# define BOP_END_DECL }
#else
# define BOP_BEGIN_DECL
# define BOP_END_DECL
#endif

/* Marks a function exported from libbackupop.so.1; everything else is hidden. */
#if defined(__GNUC__)
# define BOP_EXTERN(type) extern __attribute__((visibility("default"))) type
#else
# define BOP_EXTERN(type) extern type
#endif

/* Lets the compiler check the arguments of a printf-like function: the format is
 * parameter `fmt_index`, the values start at `first_arg` (counting from 1). */
#if defined(__GNUC__)
# define BOP_PRINTF_FORMAT(fmt_index, first_arg) \
	__attribute__((format(printf, fmt_index, first_arg)))
#else
# define BOP_PRINTF_FORMAT(fmt_index, first_arg)
#endif

BOP_BEGIN_DECL

/* The library's version as a number (see BOP_VERSION_NUMBER) at run time. */
BOP_EXTERN(unsigned int) bop_version(void);

/* The library's version as a string, e.g. "0.1.0", at run time. Static storage. */
BOP_EXTERN(const char *) bop_version_string(void);

/* Frees memory that a bop_ function handed to the caller as `char **` (strings, JSON,
 * formatted text), and memory from bop_malloc() and bop_strdup(). Accepts NULL. */
BOP_EXTERN(void) bop_free(void *ptr);

/* `size` bytes (at least 1) from the library's allocator, for memory a callback hands to
 * the library (which frees it with bop_free()). NULL when out of memory, with
 * BOP_ENOMEM as the last error. */
BOP_EXTERN(void *) bop_malloc(size_t size);

/* A copy of the NUL-terminated string `s` from the library's allocator (see bop_malloc());
 * free it with bop_free(). NULL when `s` is NULL or out of memory (BOP_ENOMEM). */
BOP_EXTERN(char *) bop_strdup(const char *s);

BOP_END_DECL

#endif
