/*
 * Plug-in API: writing a source or a sink. Embed the struct as the first member of your
 * own and fill in the vtable. The semantics are those of <backupop/io.h>; in particular
 * `free` of a sink that was not committed must abort it.
 */
#ifndef BACKUPOP_SYS_IO_H
#define BACKUPOP_SYS_IO_H

#include "../common.h"
#include "../io.h"

BOP_BEGIN_DECL

#define BOP_SOURCE_VERSION 1
#define BOP_SINK_VERSION 1

struct bop_source {
	unsigned int version;          /* BOP_SOURCE_VERSION */
	int (*read)(bop_source_t *src, void *buf, size_t cap, size_t *got);
	int (*close)(bop_source_t *src);       /* may be NULL: nothing to report */
	void (*free)(bop_source_t *src);
};

struct bop_sink {
	unsigned int version;          /* BOP_SINK_VERSION */
	int (*write)(bop_sink_t *sink, const void *buf, size_t len);
	int (*commit)(bop_sink_t *sink);
	void (*abort)(bop_sink_t *sink);
	void (*free)(bop_sink_t *sink);
};

BOP_END_DECL

#endif
