/* Arbitrary bytes as manifest.json: parse, and when it parses, serialize and parse again
 * to the same document. */
#include <stdlib.h>
#include <string.h>

#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bop_manifest_t *m = NULL, *again = NULL;
	char *json = NULL, *json2 = NULL;

	bop_log_set_level(BOP_LOG_OFF);
	if (bop_manifest_parse(&m, (const char *)data, size) == 0 &&
	    bop_manifest_to_json(m, &json) == 0) {
		if (bop_manifest_parse(&again, json, strlen(json)) != 0 ||
		    bop_manifest_to_json(again, &json2) != 0 || strcmp(json, json2) != 0)
			abort();
	}
	bop_free(json);
	bop_free(json2);
	bop_manifest_free(m);
	bop_manifest_free(again);
	return 0;
}
