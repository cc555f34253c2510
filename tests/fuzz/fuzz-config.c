/* Arbitrary bytes as the config file of backupop-runner and `backupop --config`
 * (backupop-config(5)): load from memory, then free. The loader must refuse what it does
 * not accept with a message, never crash, leak or hang (deep nesting, aliases). */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *error = NULL;
	rcfg_t c;
	int ret;

	bop_log_set_level(BOP_LOG_OFF);
	rcfg_init(&c);
	ret = rcfg_load_buffer(&c, "/fuzz/config.yaml", (const char *)data, size, &error);
	if (ret == 0 && error)
		abort();        /* success leaves no message */
	if (ret != 0 && (!error || !*error))
		abort();        /* a failure always says why */
	free(error);
	rcfg_clear(&c);
	/* Secrets in the inputs would pile up over millions of runs. */
	bop__log_clear_secrets();
	return 0;
}
