/* The hold-back stage: everything passes through unchanged, and the last bytes of the
 * stream come out only at BOP_STREAM_END. */
#include "internal.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

#define CAP 1000

/* Feeds `data` in pieces of `piece` bytes with an output buffer of `room` bytes. Returns
 * the bytes released before END in *early and all output in out. */
static int run(const unsigned char *data, size_t len, size_t piece, size_t room,
	unsigned char *out, size_t *outlen, size_t *early)
{
	bop_stage_t *st = NULL;
	unsigned char *tmp = malloc(room);
	size_t pos = 0, got = 0;
	int ret = bop__stage_holdback_new(&st, CAP);

	while (ret >= 0 && pos < len) {
		bop_inbuf_t in = { data + pos, len - pos < piece ? len - pos : piece, 0 };

		do {
			bop_outbuf_t o = { tmp, room, 0 };

			ret = bop_stage_process(st, &o, &in, BOP_STREAM_CONTINUE);
			memcpy(out + got, tmp, o.pos);
			got += o.pos;
		} while (ret == 1);
		pos += in.pos;
	}
	*early = got;
	do {
		bop_inbuf_t in = { NULL, 0, 0 };
		bop_outbuf_t o = { tmp, room, 0 };

		ret = bop_stage_process(st, &o, &in, BOP_STREAM_END);
		memcpy(out + got, tmp, o.pos);
		got += o.pos;
	} while (ret == 1);
	*outlen = got;
	bop_stage_free(st);
	free(tmp);
	return ret;
}

int main(void)
{
	const size_t sizes[] = { 0, 1, CAP - 1, CAP, CAP + 1, 3 * CAP + 7, 100000 };
	const size_t pieces[] = { 1, 7, CAP, 65536 };
	const size_t rooms[] = { 1, 13, CAP + 3, 65536 };

	for (size_t s = 0; s < BOP_ARRAY_SIZE(sizes); s++) {
		size_t len = sizes[s];
		unsigned char *data = malloc(len + 1), *out = malloc(len + 1);
		int all_ok = 1, held_ok = 1;

		for (size_t i = 0; i < len; i++)
			data[i] = (unsigned char)(i * 131 + 7);
		for (size_t p = 0; p < BOP_ARRAY_SIZE(pieces); p++) {
			for (size_t r = 0; r < BOP_ARRAY_SIZE(rooms); r++) {
				size_t outlen = 0, early = 0;
				int ret = run(data, len, pieces[p], rooms[r], out, &outlen, &early);

				if (ret != 0 || outlen != len || memcmp(out, data, len) != 0)
					all_ok = 0;
				if (early != (len > CAP ? len - CAP : 0))
					held_ok = 0;
			}
		}
		ok(all_ok, "%zu bytes pass through unchanged, whatever the piece and buffer sizes", len);
		ok(held_ok, "%zu bytes: exactly the last min(len, %d) are withheld until END", len, CAP);
		free(data);
		free(out);
	}
	{
		bop_stage_t *st = NULL;

		is_int(bop__stage_holdback_new(&st, 0), BOP_EINVAL, "a zero hold-back is refused");
	}
	return done_testing();
}
