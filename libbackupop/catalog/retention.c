/*
 * The retention planner: a pure function of (backups, policy, now). Each rule labels the
 * backups it keeps; a backup without a label is deleted. Time rules work like restic's
 * --keep-daily and friends: walking from the newest backup to the oldest, the first
 * backup seen in a bucket (hour, day, ISO week, month, year) is the newest of that bucket
 * and keeps it, until the rule has used its N buckets.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#define LABEL_MAX 1024

typedef struct plan_entry {
	char *id;
	bool keep;
	char labels[LABEL_MAX];
} plan_entry_t;

struct bop_retention_plan {
	plan_entry_t *entries;
	size_t count;
};

typedef enum bucket_kind {
	BUCKET_HOUR,
	BUCKET_DAY,
	BUCKET_WEEK,
	BUCKET_MONTH,
	BUCKET_YEAR,
} bucket_kind_t;

/* A time rule: its label prefix, its bucket and how many buckets it keeps. */
typedef struct bucket_rule {
	const char *prefix;
	bucket_kind_t kind;
	unsigned int keep;
} bucket_rule_t;

BOP_EXTERN(int) bop_retention_policy_init(bop_retention_policy_t *policy, unsigned int version)
{
	bop_retention_policy_t defaults = BOP_RETENTION_POLICY_INIT;

	if (!policy)
		return bop__error(BOP_EINVAL, "bop_retention_policy_init: NULL policy");
	if (BOP__VERSION_CHECK("bop_retention_policy_t", NULL, version,
		RETENTION_POLICY_VERSION) < 0)
		return BOP_EVERSION;
	*policy = defaults;
	return 0;
}

static void add_label(plan_entry_t *e, const char *label)
{
	size_t used = strlen(e->labels);

	snprintf(e->labels + used, sizeof(e->labels) - used, "%s%s", used ? "," : "", label);
	e->keep = true;
}

/* The bucket of time `t` in UTC: "2026112102", "20261121", "2026W47", "202611", "2026". */
static void bucket_of(char *out, size_t size, bucket_kind_t kind, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	size_t n = 0;

	if (!gmtime_r(&tt, &tm)) {
		snprintf(out, size, "?");
		return;
	}
	switch (kind) {
	case BUCKET_HOUR: n = strftime(out, size, "%Y%m%d%H", &tm); break;
	case BUCKET_DAY: n = strftime(out, size, "%Y%m%d", &tm); break;
	case BUCKET_WEEK: n = strftime(out, size, "%GW%V", &tm); break;   /* ISO 8601 */
	case BUCKET_MONTH: n = strftime(out, size, "%Y%m", &tm); break;
	case BUCKET_YEAR: n = strftime(out, size, "%Y", &tm); break;
	}
	if (n == 0)
		snprintf(out, size, "?");
}

static void apply_last(bop_retention_plan_t *plan, unsigned int keep)
{
	for (size_t i = plan->count; i > 0 && keep > 0; i--, keep--)
		add_label(&plan->entries[i - 1], "last");
}

static void apply_buckets(bop_retention_plan_t *plan, const bop_manifest_list_t *backups,
	const bucket_rule_t *rule)
{
	char last[64] = "", bucket[64], label[96];
	unsigned int used = 0;

	for (size_t i = plan->count; i > 0 && used < rule->keep; i--) {
		const bop_manifest_t *m = bop_manifest_list_get(backups, i - 1);

		bucket_of(bucket, sizeof(bucket), rule->kind, bop_manifest_start_time(m));
		if (strcmp(bucket, last) == 0)
			continue;
		snprintf(last, sizeof(last), "%s", bucket);
		snprintf(label, sizeof(label), "%s-%s", rule->prefix, bucket);
		add_label(&plan->entries[i - 1], label);
		used++;
	}
}

static void apply_within(bop_retention_plan_t *plan, const bop_manifest_list_t *backups,
	int64_t within, int64_t now)
{
	for (size_t i = 0; i < plan->count; i++) {
		if (now - bop_manifest_start_time(bop_manifest_list_get(backups, i)) < within)
			add_label(&plan->entries[i], "within");
	}
}

static void apply_tags(bop_retention_plan_t *plan, const bop_manifest_list_t *backups,
	const char *const *tags)
{
	char label[160];

	for (size_t i = 0; i < plan->count; i++) {
		const bop_manifest_t *m = bop_manifest_list_get(backups, i);

		for (size_t t = 0; tags[t]; t++) {
			for (size_t j = 0; j < bop_manifest_tag_count(m); j++) {
				if (strcmp(tags[t], bop_manifest_tag(m, j)) != 0)
					continue;
				snprintf(label, sizeof(label), "tag:%s", tags[t]);
				add_label(&plan->entries[i], label);
				break;
			}
		}
	}
}

static bool policy_empty(const bop_retention_policy_t *p)
{
	return !p->keep_last && !p->keep_hourly && !p->keep_daily && !p->keep_weekly &&
		!p->keep_monthly && !p->keep_yearly && p->keep_within_seconds <= 0 &&
		(!p->keep_tags || !p->keep_tags[0]);
}

static void apply_policy(bop_retention_plan_t *plan, const bop_manifest_list_t *backups,
	const bop_retention_policy_t *policy, int64_t now)
{
	const bucket_rule_t rules[] = {
		{ "hourly", BUCKET_HOUR, policy->keep_hourly },
		{ "daily", BUCKET_DAY, policy->keep_daily },
		{ "weekly", BUCKET_WEEK, policy->keep_weekly },
		{ "monthly", BUCKET_MONTH, policy->keep_monthly },
		{ "yearly", BUCKET_YEAR, policy->keep_yearly },
	};

	if (policy_empty(policy)) {
		for (size_t i = 0; i < plan->count; i++)
			add_label(&plan->entries[i], "no-policy");
		return;
	}
	apply_last(plan, policy->keep_last);
	for (size_t r = 0; r < BOP_ARRAY_SIZE(rules); r++)
		apply_buckets(plan, backups, &rules[r]);
	if (policy->keep_within_seconds > 0)
		apply_within(plan, backups, policy->keep_within_seconds, now);
	if (policy->keep_tags)
		apply_tags(plan, backups, policy->keep_tags);
	/* Whatever the policy says, the newest backup stays. */
	if (plan->count > 0 && !plan->entries[plan->count - 1].keep)
		add_label(&plan->entries[plan->count - 1], "newest");
}

/* The list must be oldest first; a caller-built one might not be. */
static int check_sorted(const bop_manifest_list_t *backups)
{
	for (size_t i = 1; i < bop_manifest_list_count(backups); i++) {
		const bop_manifest_t *a = bop_manifest_list_get(backups, i - 1);
		const bop_manifest_t *b = bop_manifest_list_get(backups, i);

		if (bop_manifest_start_time(a) > bop_manifest_start_time(b))
			return bop__error(BOP_EINVAL, "retention needs the backups oldest first, "
				"but %s comes before %s", bop_manifest_id(a), bop_manifest_id(b));
	}
	return 0;
}

BOP_EXTERN(int) bop_retention_plan(bop_retention_plan_t **out,
	const bop_manifest_list_t *backups, const bop_retention_policy_t *policy, int64_t now)
{
	bop_retention_plan_t *plan;
	int ret;

	if (!out || !backups || !policy)
		return bop__error(BOP_EINVAL, "bop_retention_plan: invalid arguments");
	*out = NULL;
	ret = BOP__VERSION_CHECK("bop_retention_policy_t", NULL, policy->version,
		RETENTION_POLICY_VERSION);
	if (ret < 0)
		return ret;
	ret = check_sorted(backups);
	if (ret < 0)
		return ret;
	plan = bop__calloc(1, sizeof(*plan));
	if (!plan)
		return BOP_ENOMEM;
	plan->count = bop_manifest_list_count(backups);
	plan->entries = bop__calloc(plan->count, sizeof(*plan->entries));
	if (!plan->entries)
		goto oom;
	for (size_t i = 0; i < plan->count; i++) {
		plan->entries[i].id = bop__strdup(bop_manifest_id(bop_manifest_list_get(backups, i)));
		if (!plan->entries[i].id)
			goto oom;
	}
	apply_policy(plan, backups, policy, now);
	*out = plan;
	return 0;
oom:
	bop_retention_plan_free(plan);
	return BOP_ENOMEM;
}

BOP_EXTERN(size_t) bop_retention_plan_count(const bop_retention_plan_t *plan)
{
	return plan ? plan->count : 0;
}

BOP_EXTERN(const char *) bop_retention_plan_id(const bop_retention_plan_t *plan, size_t i)
{
	return plan && i < plan->count ? plan->entries[i].id : NULL;
}

BOP_EXTERN(int) bop_retention_plan_keep(const bop_retention_plan_t *plan, size_t i)
{
	return plan && i < plan->count ? plan->entries[i].keep : 0;
}

BOP_EXTERN(const char *) bop_retention_plan_labels(const bop_retention_plan_t *plan, size_t i)
{
	return plan && i < plan->count ? plan->entries[i].labels : NULL;
}

BOP_EXTERN(int) bop_retention_plan_format(const bop_retention_plan_t *plan, char **text)
{
	char *buf = NULL;
	size_t size = 0;
	int width = 2;
	FILE *f;

	if (!plan || !text)
		return bop__error(BOP_EINVAL, "bop_retention_plan_format: invalid arguments");
	*text = NULL;
	for (size_t i = 0; i < plan->count; i++) {
		if ((int)strlen(plan->entries[i].id) > width)
			width = (int)strlen(plan->entries[i].id);
	}
	f = open_memstream(&buf, &size);
	if (!f)
		return bop__error_oom();
	for (size_t i = 0; i < plan->count; i++) {
		const plan_entry_t *e = &plan->entries[i];

		if (e->keep)
			fprintf(f, "KEEP    %-*s  %s\n", width, e->id, e->labels);
		else
			fprintf(f, "DELETE  %s\n", e->id);
	}
	if (fclose(f) != 0 || !buf) {
		free(buf);
		return bop__error_oom();
	}
	*text = buf;
	return 0;
}

static json_object *entry_json(const plan_entry_t *e)
{
	json_object *obj = json_object_new_object();
	json_object *labels = json_object_new_array();
	const char *p = e->labels;

	if (!obj || !labels)
		goto fail;
	json_object_object_add(obj, "id", json_object_new_string(e->id));
	json_object_object_add(obj, "keep", json_object_new_boolean(e->keep));
	while (*p) {
		size_t n = strcspn(p, ",");

		if (json_object_array_add(labels, json_object_new_string_len(p, (int)n)) < 0)
			goto fail;
		p += n + (p[n] == ',');
	}
	json_object_object_add(obj, "labels", labels);
	return obj;
fail:
	json_object_put(labels);
	json_object_put(obj);
	return NULL;
}

BOP_EXTERN(int) bop_retention_plan_to_json(const bop_retention_plan_t *plan, char **json)
{
	json_object *arr;
	int ret = 0;

	if (!plan || !json)
		return bop__error(BOP_EINVAL, "bop_retention_plan_to_json: invalid arguments");
	*json = NULL;
	arr = json_object_new_array();
	if (!arr)
		return bop__error_oom();
	for (size_t i = 0; i < plan->count; i++) {
		json_object *e = entry_json(&plan->entries[i]);

		if (!e || json_object_array_add(arr, e) < 0) {
			json_object_put(e);
			ret = bop__error_oom();
			goto out;
		}
	}
	*json = bop__strdup(json_object_to_json_string_ext(arr,
		JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	if (!*json)
		ret = BOP_ENOMEM;
out:
	json_object_put(arr);
	return ret;
}

BOP_EXTERN(void) bop_retention_plan_free(bop_retention_plan_t *plan)
{
	if (!plan)
		return;
	for (size_t i = 0; plan->entries && i < plan->count; i++)
		free(plan->entries[i].id);
	free(plan->entries);
	free(plan);
}

BOP_EXTERN(int) bop_catalog_prune(bop_catalog_t *catalog, size_t *removed,
	const bop_retention_plan_t *plan)
{
	size_t count = 0;
	int first = 0;
	char *message = NULL;

	if (removed)
		*removed = 0;
	if (!catalog || !plan)
		return bop__error(BOP_EINVAL, "bop_catalog_prune: invalid arguments");
	for (size_t i = 0; i < plan->count; i++) {
		int ret;

		if (plan->entries[i].keep)
			continue;
		ret = bop_catalog_remove(catalog, plan->entries[i].id);
		if (ret == 0) {
			count++;
			bop__log(BOP_LOG_INFO, "catalog", "removed backup %s of %s",
				plan->entries[i].id, bop__catalog_name(catalog));
			continue;
		}
		bop__log(BOP_LOG_WARN, "catalog", "cannot remove backup %s: %s",
			plan->entries[i].id, bop_error_last());
		if (first == 0) {
			first = ret;
			message = bop__strdup(bop_error_last());
		}
	}
	if (removed)
		*removed = count;
	if (first < 0)
		bop__error(first, "pruning %s: %s", bop__catalog_name(catalog),
			message ? message : "a removal failed");
	free(message);
	return first;
}
