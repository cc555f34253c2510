/* Arbitrary bytes as an age file: the header parser, the stanza checks, the header MAC and
 * the STREAM decryption must reject or decrypt without crashing, leaking or hanging. */
#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fixed identity, so that inputs derived from files encrypted to it reach the payload. */
#define FUZZ_IDENTITY "AGE-SECRET-KEY-19Q2WQ56WFHR470YQ5QWFN6CAHHRD99KLUVHKY2HAAP6HH9N8U58QFWFZ6H"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bop_keys_t *keys;
	bop_stage_t *stage = NULL;

	if (!keys) {
		bop_keys_new(&keys);
		bop_keys_add_identity(keys, FUZZ_IDENTITY);
		bop_keys_set_passphrase(keys, "fuzz", 4);
		/* scrypt above 2^10 would make every hostile header a slow input. */
		bop_keys_set_scrypt_work_factor(keys, 10);
	}
	if (bop_stage_age_decrypt_new(&stage, keys) == 0)
		fuzz_drive(stage, data, size);
	bop_stage_free(stage);
	return 0;
}
