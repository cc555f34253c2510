/*
 * Plug-in API: writing a source or a sink. Embed the struct as the first member of your
 * own and fill in the vtable with BOP_SOURCE_INIT() or BOP_SINK_INIT(). The semantics are
 * those of <backupop/io.h>; in particular `free` of a sink that was not committed must
 * abort it.
 */
#ifndef BACKUPOP_SYS_IO_H
#define BACKUPOP_SYS_IO_H

#include "../common.h"
#include "../io.h"

BOP_BEGIN_DECL

#define BOP_SOURCE_VERSION 1
#define BOP_SINK_VERSION 1

/* A struct bop_source / bop_sink with its version filled in and the members you name, the
 * others NULL: s->base = (bop_sink_t)BOP_SINK_INIT(.write = my_write, .commit = my_commit,
 * .abort = my_abort, .free = my_free); see BOP_STORAGE_INIT in <backupop/sys/storage.h>. */
#define BOP_SOURCE_INIT(...) { .version = BOP_SOURCE_VERSION, __VA_ARGS__ }
#define BOP_SINK_INIT(...) { .version = BOP_SINK_VERSION, __VA_ARGS__ }

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
