/* Arbitrary text as a recipient, an identity and a recipients file line. */
#include <stdlib.h>
#include <string.h>

#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	bop_keys_t *keys = NULL;
	char *recipient = NULL;

	bop_log_set_level(BOP_LOG_OFF);
	memcpy(text, data, size);
	text[size] = '\0';
	bop_keys_new(&keys);
	bop_keys_add_recipient(keys, text);
	bop_keys_add_identity(keys, text);
	if (bop_age_identity_to_recipient(&recipient, text) == 0 &&
	    bop_keys_add_recipient(keys, recipient) != 0)
		abort();  /* the recipient of a valid identity must itself be valid */
	bop_free(recipient);
	bop_keys_free(keys);
	free(text);
	return 0;
}
