/*
 * Plug-in API: writing a pipeline stage. Embed bop_stage_t as the first member of your
 * struct, fill in the vtable with BOP_STAGE_INIT(), and hand it to
 * bop_pipeline_add_stage().
 */
#ifndef BACKUPOP_SYS_STAGE_H
#define BACKUPOP_SYS_STAGE_H

#include "../common.h"
#include "../stage.h"

BOP_BEGIN_DECL

#define BOP_STAGE_VERSION 1

/* A struct bop_stage with its version filled in and the members you name:
 * s->base = (bop_stage_t)BOP_STAGE_INIT(.name = "rot13", .process = rot13_process,
 * .free = rot13_free); see BOP_STORAGE_INIT in <backupop/sys/storage.h>. */
#define BOP_STAGE_INIT(...) { .version = BOP_STAGE_VERSION, __VA_ARGS__ }

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
