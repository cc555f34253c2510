/* Dispatch of the public stage calls to a stage's vtable. */
#include "internal.h"

/* Empty buffers may come as NULL; stages always see real pointers (pointer arithmetic
 * on NULL is undefined even with a zero offset). */
static int process_empty(bop_stage_t *stage, bop_outbuf_t *out, bop_inbuf_t *in,
	bop_stream_directive_t directive)
{
	static unsigned char empty[1];
	bop_inbuf_t in2 = { in->src ? in->src : empty, in->size, in->pos };
	bop_outbuf_t out2 = { out->dst ? out->dst : empty, out->size, out->pos };
	int ret = stage->process(stage, &out2, &in2, directive);

	in->pos = in2.pos;
	out->pos = out2.pos;
	return ret;
}

BOP_EXTERN(int) bop_stage_process(bop_stage_t *stage, bop_outbuf_t *out, bop_inbuf_t *in,
	bop_stream_directive_t directive)
{
	if (!stage || !out || !in || in->pos > in->size || out->pos > out->size)
		return bop__error(BOP_EINVAL, "bop_stage_process: invalid buffers");
	if ((!in->src && in->size) || (!out->dst && out->size))
		return bop__error(BOP_EINVAL, "bop_stage_process: NULL buffer with a non-zero size");
	if (BOP__VERSION_CHECK("stage", stage->name, stage->version, STAGE_VERSION) < 0)
		return BOP_EVERSION;
	if (!in->src || !out->dst)
		return process_empty(stage, out, in, directive);
	return stage->process(stage, out, in, directive);
}

BOP_EXTERN(const char *) bop_stage_name(const bop_stage_t *stage)
{
	return stage && stage->name ? stage->name : "stage";
}

BOP_EXTERN(void) bop_stage_free(bop_stage_t *stage)
{
	if (stage && stage->free)
		stage->free(stage);
}
