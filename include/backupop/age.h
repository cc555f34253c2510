/*
 * age encryption (age-encryption.org/v1): X25519 recipients ("age1..."), identities as
 * written by age-keygen ("AGE-SECRET-KEY-1..."), and scrypt passphrases. Files written
 * here decrypt with `age -d`, and files from `age -r`/`age -p` decrypt here.
 *
 * A bop_keys_t holds the recipients used to encrypt and the identities or passphrase used
 * to decrypt. Key material is wiped from memory when freed and never logged.
 */
#ifndef BACKUPOP_AGE_H
#define BACKUPOP_AGE_H

#include "common.h"
#include "stage.h"

BOP_BEGIN_DECL

typedef struct bop_keys bop_keys_t;

BOP_EXTERN(int) bop_keys_new(bop_keys_t **out);

/* Wipes and frees. Accepts NULL. */
BOP_EXTERN(void) bop_keys_free(bop_keys_t *keys);

/* Adds an "age1..." recipient. BOP_EFORMAT if it is not a valid X25519 recipient. */
BOP_EXTERN(int) bop_keys_add_recipient(bop_keys_t *keys, const char *recipient);

/* Adds every recipient of a recipients file: one per line, '#' comments and blank lines
 * ignored. The message of a bad line names the file and line number. */
BOP_EXTERN(int) bop_keys_add_recipients_file(bop_keys_t *keys, const char *path);

/* Adds an "AGE-SECRET-KEY-1..." identity (it also counts as a recipient for encryption). */
BOP_EXTERN(int) bop_keys_add_identity(bop_keys_t *keys, const char *identity);

/* Adds every identity of an identity file as written by age-keygen or bop_age_keygen(). */
BOP_EXTERN(int) bop_keys_add_identity_file(bop_keys_t *keys, const char *path);

/* Sets the passphrase (scrypt). A file encrypted with a passphrase has no other
 * recipient, so encrypting with both fails with BOP_EINVAL. */
BOP_EXTERN(int) bop_keys_set_passphrase(bop_keys_t *keys, const char *passphrase, size_t len);

/* Reads the passphrase from the first line of a file (without its line end). */
BOP_EXTERN(int) bop_keys_set_passphrase_file(bop_keys_t *keys, const char *path);

/* scrypt work factor as log2(N): used to encrypt (default 18, like age), and the most a
 * decryption accepts (default 22, so a hostile header cannot make us spin). 1..30. */
BOP_EXTERN(int) bop_keys_set_scrypt_work_factor(bop_keys_t *keys, unsigned int log2_n);

/* How many recipients (including identities' own recipients) encryption would use. */
BOP_EXTERN(size_t) bop_keys_recipient_count(const bop_keys_t *keys);

/* Writes a new X25519 identity. *identity is the full identity file text as age-keygen
 * writes it ("# created: ...", "# public key: age1...", "AGE-SECRET-KEY-1..."), and
 * *recipient the "age1..." recipient. Free both with bop_free(). */
BOP_EXTERN(int) bop_age_keygen(char **identity, char **recipient);

/* The "age1..." recipient of an "AGE-SECRET-KEY-1..." identity. Free with bop_free(). */
BOP_EXTERN(int) bop_age_identity_to_recipient(char **recipient, const char *identity);

/* A stage that encrypts to every recipient in `keys` (or to its passphrase). `keys` is
 * only read during this call. BOP_EINVAL when it has neither. */
BOP_EXTERN(int) bop_stage_age_encrypt_new(bop_stage_t **out, const bop_keys_t *keys);

/* A stage that decrypts with the identities or passphrase in `keys`. It releases a
 * 64 KiB chunk only after it has authenticated it, and fails at END if the stream was
 * truncated. Errors: BOP_ENOKEY (no identity matches), BOP_EFORMAT (bad header),
 * BOP_EINTEGRITY (header MAC or a chunk fails, or data after the last chunk). */
BOP_EXTERN(int) bop_stage_age_decrypt_new(bop_stage_t **out, const bop_keys_t *keys);

BOP_END_DECL

#endif
