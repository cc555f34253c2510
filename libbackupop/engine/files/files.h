/* Private to the files engine: its configuration and the backup source / restore sink. */
#ifndef BOP_ENGINE_FILES_H
#define BOP_ENGINE_FILES_H

#include "internal.h"

typedef struct bop__files_config {
	char *path;             /* the tree to back up; absolute, no trailing '/' (but "/") */
	char **exclude;         /* glob patterns, NULL-terminated; never NULL */
	bool one_file_system;
	char *restore_path;     /* where a restore puts the tree; absolute */
	bool overwrite;
} bop__files_config_t;

/* A deep copy, so that a source or sink can outlive the engine. NULL when out of memory. */
bop__files_config_t *bop__files_config_dup(const bop__files_config_t *cfg);
void bop__files_config_free(bop__files_config_t *cfg);

/* Whether `rel` ("a/b", relative to the root) matches an exclude pattern. */
bool bop__files_excluded(const bop__files_config_t *cfg, const char *rel, bool is_dir);

/* A source yielding cfg->path as a pax tar stream. */
int bop__files_source_new(bop_source_t **out, const bop__files_config_t *cfg);

/* A sink extracting a tar stream into cfg->restore_path through a staging directory. */
int bop__files_sink_new(bop_sink_t **out, const bop__files_config_t *cfg);

/* Removes a tree (not following symlinks), making read-only directories writable first. */
void bop__files_remove_tree(const char *path);

#endif
