/* Dispatch of the public stage calls to a stage's vtable. */
#include "internal.h"

BOP_EXTERN(int) bop_stage_process(bop_stage_t *stage, bop_outbuf_t *out, bop_inbuf_t *in,
	bop_stream_directive_t directive)
{
	if (!stage || !out || !in || in->pos > in->size || out->pos > out->size)
		return bop__error(BOP_EINVAL, "bop_stage_process: invalid buffers");
	if (stage->version != BOP_STAGE_VERSION)
		return bop__error(BOP_EVERSION, "stage '%s' has unknown version %u",
			stage->name ? stage->name : "?", stage->version);
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
