/*
 * bop-codec-tool: compresses or decompresses stdin to stdout through libbackupop, for the
 * interoperability tests against the real zstd and gzip tools.
 *   bop-codec-tool compress zstd|gzip|none [level [threads]]
 *   bop-codec-tool decompress zstd|gzip|none
 * On failure it prints the library's message and exits with the negated error code
 * (15 for BOP_EFORMAT).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backupop.h"

static int fail(int code)
{
	fprintf(stderr, "bop-codec-tool: %s\n", bop_error_last());
	return code < 0 ? -code : 1;
}

int main(int argc, char **argv)
{
	bop_compress_options_t opts = BOP_COMPRESS_OPTIONS_INIT;
	bop_pipeline_t *p = NULL;
	bop_source_t *src = NULL;
	bop_sink_t *sink = NULL;
	bop_stage_t *stage = NULL;
	int r;

	if (argc < 3 || (strcmp(argv[1], "compress") && strcmp(argv[1], "decompress"))) {
		fprintf(stderr, "usage: %s compress|decompress zstd|gzip|none [level [threads]]\n",
			argv[0]);
		return 2;
	}
	r = bop_compression_parse(&opts.algorithm, argv[2]);
	if (r < 0)
		return fail(r);
	if (argc > 3)
		opts.level = atoi(argv[3]);
	if (argc > 4)
		opts.threads = atoi(argv[4]);
	if (strcmp(argv[1], "compress") == 0)
		r = bop_stage_compress_new(&stage, &opts);
	else
		r = bop_stage_decompress_new(&stage, opts.algorithm);
	if (r == 0)
		r = bop_pipeline_new(&p, NULL);
	if (r == 0)
		r = bop_pipeline_add_stage(p, stage);
	if (r == 0)
		r = bop_source_fd_new(&src, 0, 0);
	if (r == 0)
		r = bop_pipeline_set_source(p, src);
	if (r == 0)
		r = bop_sink_fd_new(&sink, 1, 0);
	if (r == 0)
		r = bop_pipeline_set_sink(p, sink);
	if (r == 0)
		r = bop_pipeline_run(p);
	if (r < 0) {
		r = fail(r);
		bop_pipeline_free(p);
		return r;
	}
	bop_pipeline_free(p);
	return 0;
}
