/* Pass-through taps: SHA-256 and byte count of whatever flows through them. */
#ifndef BACKUPOP_HASH_H
#define BACKUPOP_HASH_H

#include "common.h"
#include "stage.h"

BOP_BEGIN_DECL

#define BOP_SHA256_HEX_SIZE 65  /* 64 hex digits and a NUL */

/* A stage that copies input to output unchanged and hashes and counts it. */
BOP_EXTERN(int) bop_stage_sha256_new(bop_stage_t **out);

/* Makes the stage check, at BOP_STREAM_END, that the stream had exactly `bytes` bytes and
 * the SHA-256 `hex` (64 hex digits); otherwise END fails with BOP_EINTEGRITY, before the
 * pipeline commits its sink. Input past `bytes` fails at once with BOP_EINTEGRITY and
 * is not passed on. */
BOP_EXTERN(int) bop_stage_sha256_expect(bop_stage_t *stage, const char *hex, uint64_t bytes);

/* After BOP_STREAM_END: the digest as lowercase hex and the byte count. `hex` must have
 * room for BOP_SHA256_HEX_SIZE bytes; either out pointer may be NULL. BOP_EINVAL if the
 * stage is not a SHA-256 stage or has not ended. */
BOP_EXTERN(int) bop_stage_sha256_result(const bop_stage_t *stage, char *hex, uint64_t *bytes);

BOP_END_DECL

#endif
