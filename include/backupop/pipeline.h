/*
 * A pipeline moves one stream from a source through stages into a sink with bounded
 * memory: source -> stage -> ... -> stage -> sink.
 *
 * bop_pipeline_run() reads the source to its end, ends every stage, closes the source
 * (a failed producer fails the run), and only then commits the sink. On any failure the
 * sink is aborted, a command source is killed, and the error is returned, so a failed run
 * never leaves a complete-looking result.
 */
#ifndef BACKUPOP_PIPELINE_H
#define BACKUPOP_PIPELINE_H

#include "common.h"
#include "stage.h"
#include "io.h"

BOP_BEGIN_DECL

typedef struct bop_pipeline bop_pipeline_t;

/* Progress: bytes read from the source and written to the sink so far. */
typedef void (*bop_progress_cb)(uint64_t bytes_in, uint64_t bytes_out, void *payload);

typedef struct bop_pipeline_options {
	unsigned int version;
	/* Size of each buffer between two stages; 0 = 1 MiB. */
	size_t buffer_size;
	/* Called at most every progress_interval_ms (0 = 1000) and once at the end. */
	bop_progress_cb progress;
	void *payload;
	unsigned int progress_interval_ms;
} bop_pipeline_options_t;

#define BOP_PIPELINE_OPTIONS_VERSION 1
#define BOP_PIPELINE_OPTIONS_INIT { BOP_PIPELINE_OPTIONS_VERSION, 0, NULL, NULL, 0 }

BOP_EXTERN(int) bop_pipeline_options_init(bop_pipeline_options_t *opts, unsigned int version);

/* `opts` may be NULL for the defaults. */
BOP_EXTERN(int) bop_pipeline_new(bop_pipeline_t **out, const bop_pipeline_options_t *opts);

/* The pipeline takes ownership of the source, stages and sink it is given, even when
 * these calls fail; pointers to them stay valid until bop_pipeline_free(). */
BOP_EXTERN(int) bop_pipeline_set_source(bop_pipeline_t *p, bop_source_t *source);
BOP_EXTERN(int) bop_pipeline_add_stage(bop_pipeline_t *p, bop_stage_t *stage);
BOP_EXTERN(int) bop_pipeline_set_sink(bop_pipeline_t *p, bop_sink_t *sink);

/* Runs the pipeline to the end; see above. Runs once. */
BOP_EXTERN(int) bop_pipeline_run(bop_pipeline_t *p);

/* Asks a running pipeline to stop: bop_pipeline_run() then fails with BOP_ECANCELED.
 * Safe to call from another thread or a signal handler. */
BOP_EXTERN(void) bop_pipeline_cancel(bop_pipeline_t *p);

/* Bytes read from the source / written to the sink. */
BOP_EXTERN(uint64_t) bop_pipeline_bytes_in(const bop_pipeline_t *p);
BOP_EXTERN(uint64_t) bop_pipeline_bytes_out(const bop_pipeline_t *p);

/* Frees the pipeline and all it owns (aborting an uncommitted sink). Accepts NULL. */
BOP_EXTERN(void) bop_pipeline_free(bop_pipeline_t *p);

BOP_END_DECL

#endif
