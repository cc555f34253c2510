/*
 * Retention: which backups to keep. The plan is a pure function of the backups, the
 * policy and the time "now": each kept backup gets labels saying why ("last",
 * "hourly-2026112102", "daily-20261121", "weekly-2026W47", "monthly-202611",
 * "yearly-2026", "within", "tag:<t>"); a backup with no label is deleted. The newest
 * backup is always kept. Time buckets are in UTC; weeks are ISO 8601 weeks.
 */
#ifndef BACKUPOP_RETENTION_H
#define BACKUPOP_RETENTION_H

#include "common.h"
#include "catalog.h"

BOP_BEGIN_DECL

typedef struct bop_retention_policy {
	unsigned int version;
	/* How many of the newest to keep; in each rule the newest backup of each of the
	 * newest N hours/days/weeks/months/years that have one. 0: rule off. */
	unsigned int keep_last;
	unsigned int keep_hourly;
	unsigned int keep_daily;
	unsigned int keep_weekly;
	unsigned int keep_monthly;
	unsigned int keep_yearly;
	/* Keep everything that started less than this many seconds before now. 0: off. */
	int64_t keep_within_seconds;
	/* Keep every backup with one of these tags. NULL-terminated; may be NULL. */
	const char *const *keep_tags;
} bop_retention_policy_t;

#define BOP_RETENTION_POLICY_VERSION 1
#define BOP_RETENTION_POLICY_INIT { BOP_RETENTION_POLICY_VERSION, 0, 0, 0, 0, 0, 0, 0, NULL }

BOP_EXTERN(int) bop_retention_policy_init(bop_retention_policy_t *policy, unsigned int version);

typedef struct bop_retention_plan bop_retention_plan_t;

/* Plans retention for `backups` at time `now` (unix seconds). A policy with every rule
 * off keeps everything. */
BOP_EXTERN(int) bop_retention_plan(bop_retention_plan_t **out,
	const bop_manifest_list_t *backups, const bop_retention_policy_t *policy, int64_t now);

/* Entries, in the order of the backups given (oldest first). */
BOP_EXTERN(size_t) bop_retention_plan_count(const bop_retention_plan_t *plan);
BOP_EXTERN(const char *) bop_retention_plan_id(const bop_retention_plan_t *plan, size_t i);
/* 1 to keep, 0 to delete. */
BOP_EXTERN(int) bop_retention_plan_keep(const bop_retention_plan_t *plan, size_t i);
/* Comma-separated labels, "" for none. */
BOP_EXTERN(const char *) bop_retention_plan_labels(const bop_retention_plan_t *plan, size_t i);

/* A human-readable table of the plan (one line a backup: keep/delete, id, labels).
 * Free with bop_free(). */
BOP_EXTERN(int) bop_retention_plan_format(const bop_retention_plan_t *plan, char **text);

/* The plan as JSON: [{"id":..,"keep":true,"labels":[..]}, ...]. Free with bop_free(). */
BOP_EXTERN(int) bop_retention_plan_to_json(const bop_retention_plan_t *plan, char **json);

/* Accepts NULL. */
BOP_EXTERN(void) bop_retention_plan_free(bop_retention_plan_t *plan);

/* Removes every backup the plan deletes. Goes on past a failed removal and returns the
 * first error; the count of removed backups goes to *removed (may be NULL). */
BOP_EXTERN(int) bop_catalog_prune(bop_catalog_t *catalog, size_t *removed,
	const bop_retention_plan_t *plan);

BOP_END_DECL

#endif
