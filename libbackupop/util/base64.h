/*
 * Standard base64 (RFC 4648 section 4) on OpenSSL's EVP_EncodeBlock/EVP_DecodeBlock, in the
 * two forms the library meets: padded, as in Kubernetes Secrets and kubeconfig files, and
 * unpadded canonical, as age-encryption.org/v1 requires.
 */
#ifndef BOP_UTIL_BASE64_H
#define BOP_UTIL_BASE64_H

#include <stdbool.h>
#include <stddef.h>

/* Whether `c` is one of the 64 characters of the alphabet (not '=', not a blank). */
bool bop__base64_char(char c);

/* Characters of the encoding of n bytes, with or without padding (no NUL counted). */
size_t bop__base64_len(size_t n, bool pad);

/* Writes bop__base64_len(n, pad) characters and a NUL into `out`. */
void bop__base64_encode(char *out, const void *in, size_t n, bool pad);

/* The padded encoding, malloc'd; NULL with the error set (out of memory, or more than
 * INT32_MAX / 2 bytes). */
char *bop__base64_encode_alloc(const void *in, size_t n);

/* Decodes padded base64 of text[0..len) into *out (malloc'd, NUL-terminated after *outlen
 * bytes). Blanks (space, tab, CR, LF) anywhere are ignored; anything else outside the
 * alphabet, a length that is not a multiple of four, or padding other than one or two '='
 * at the very end is BOP_EFORMAT ("not valid base64"). BOP_ENOMEM. */
int bop__base64_decode(unsigned char **out, size_t *outlen, const char *text, size_t len);

/* Decodes canonical unpadded base64 of in[0..inlen) into out[0..*outlen). false when `in`
 * has a character outside the alphabet (padding and blanks included), an impossible length
 * (4k+1), non-zero unused bits in its last character (so that every value has exactly one
 * encoding), or decodes to more than `cap` bytes; `out` is then wiped. */
bool bop__base64_decode_unpadded(unsigned char *out, size_t cap, size_t *outlen,
	const char *in, size_t inlen);

#endif
