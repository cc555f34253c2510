/*
 * Plug-in API: writing a pipeline stage. Embed bop_stage_t as the first member of your
 * struct, fill in the vtable, and hand it to bop_pipeline_add_stage().
 */
#ifndef BACKUPOP_SYS_STAGE_H
#define BACKUPOP_SYS_STAGE_H

#include "../common.h"
#include "../stage.h"

BOP_BEGIN_DECL

#define BOP_STAGE_VERSION 1

struct bop_stage {
	unsigned int version;          /* BOP_STAGE_VERSION */
	const char *name;
	/* The contract of bop_stage_process() in <backupop/stage.h>. */
	int (*process)(bop_stage_t *stage, bop_outbuf_t *out, bop_inbuf_t *in,
		bop_stream_directive_t directive);
	void (*free)(bop_stage_t *stage);
};

BOP_END_DECL

#endif
