/* Arbitrary bytes as zstd and as gzip data: decompression must fail cleanly. */
#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bop_compression_t algos[] = { BOP_COMPRESSION_ZSTD, BOP_COMPRESSION_GZIP };

	for (size_t i = 0; i < sizeof(algos) / sizeof(algos[0]); i++) {
		bop_stage_t *stage = NULL;

		if (bop_stage_decompress_new(&stage, algos[i]) == 0)
			fuzz_drive(stage, data, size);
		bop_stage_free(stage);
	}
	return 0;
}
