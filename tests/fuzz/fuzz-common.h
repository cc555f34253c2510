/* Shared by the libFuzzer targets: drive one stage over the whole input in uneven pieces
 * and throw the output away. */
#ifndef BOP_FUZZ_COMMON_H
#define BOP_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "backupop.h"

static inline int fuzz_drive(bop_stage_t *stage, const uint8_t *data, size_t size)
{
	static unsigned char out[4096];
	size_t piece = size > 0 ? 1 + data[0] % 97 : 1;
	size_t pos = 0;
	int ret = 0;

	bop_log_set_level(BOP_LOG_OFF);
	while (ret >= 0 && pos < size) {
		size_t n = size - pos < piece ? size - pos : piece;
		bop_inbuf_t in = { data + pos, n, 0 };

		do {
			bop_outbuf_t o = { out, sizeof(out), 0 };

			ret = bop_stage_process(stage, &o, &in, BOP_STREAM_CONTINUE);
		} while (ret == 1);
		pos += in.pos;
		if (ret == 0 && in.pos < n)
			break;
	}
	while (ret >= 0) {
		bop_inbuf_t in = { NULL, 0, 0 };
		bop_outbuf_t o = { out, sizeof(out), 0 };

		ret = bop_stage_process(stage, &o, &in, BOP_STREAM_END);
		if (ret == 0)
			break;
	}
	return ret;
}

#endif
