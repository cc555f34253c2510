/* Definitions shared by every public header. */
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
 * formatted text). Accepts NULL. */
BOP_EXTERN(void) bop_free(void *ptr);

BOP_END_DECL

#endif
