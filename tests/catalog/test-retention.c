/*
 * The retention planner, table-driven: backups at known times, a policy, "now", and for
 * every backup exactly the labels it must get ("" = deleted).
 */
#include "catalog-test.h"

#define MAX_BACKUPS 16

typedef struct backup_spec {
	const char *time;
	const char *tags;               /* inside of the JSON array, may be NULL */
	const char *labels;             /* expected; "" = delete */
} backup_spec_t;

typedef struct plan_case {
	const char *what;
	bop_retention_policy_t policy;
	const char *now;
	backup_spec_t backups[MAX_BACKUPS];
} plan_case_t;

static const char *const pinned[] = { "pinned", NULL };
static const char *const two_tags[] = { "pinned", "release", NULL };
static const char *const no_tags[] = { NULL };

#define POLICY(...) { BOP_RETENTION_POLICY_VERSION, __VA_ARGS__ }
/*                       last hourly daily weekly monthly yearly within tags */

static const plan_case_t cases[] = {
	{ "keep_last 3 of 5", POLICY(3, 0, 0, 0, 0, 0, 0, NULL), "2026-11-22T00:00:00Z", {
		{ "2026-11-17T02:00:00Z", NULL, "" },
		{ "2026-11-18T02:00:00Z", NULL, "" },
		{ "2026-11-19T02:00:00Z", NULL, "last" },
		{ "2026-11-20T02:00:00Z", NULL, "last" },
		{ "2026-11-21T02:00:00Z", NULL, "last" },
	} },
	{ "keep_last larger than the count", POLICY(10, 0, 0, 0, 0, 0, 0, NULL), "2026-11-22T00:00:00Z", {
		{ "2026-11-20T02:00:00Z", NULL, "last" },
		{ "2026-11-21T02:00:00Z", NULL, "last" },
	} },
	{ "hourly 2: newest of each of the newest 2 hours", POLICY(0, 2, 0, 0, 0, 0, 0, NULL),
		"2026-11-21T13:00:00Z", {
		{ "2026-11-21T10:05:00Z", NULL, "" },
		{ "2026-11-21T10:35:00Z", NULL, "" },
		{ "2026-11-21T11:10:00Z", NULL, "" },
		{ "2026-11-21T11:50:00Z", NULL, "hourly-2026112111" },
		{ "2026-11-21T12:01:00Z", NULL, "hourly-2026112112" },
	} },
	{ "hourly skips empty hours", POLICY(0, 3, 0, 0, 0, 0, 0, NULL), "2026-11-21T23:00:00Z", {
		{ "2026-11-21T01:30:00Z", NULL, "" },
		{ "2026-11-21T02:30:00Z", NULL, "hourly-2026112102" },
		{ "2026-11-21T09:00:00Z", NULL, "hourly-2026112109" },
		{ "2026-11-21T22:00:00Z", NULL, "hourly-2026112122" },
	} },
	{ "daily 3 with three backups a day", POLICY(0, 0, 3, 0, 0, 0, 0, NULL), "2026-11-22T00:00:00Z", {
		{ "2026-11-18T02:00:00Z", NULL, "" },
		{ "2026-11-18T20:00:00Z", NULL, "" },
		{ "2026-11-19T02:00:00Z", NULL, "" },
		{ "2026-11-19T08:00:00Z", NULL, "daily-20261119" },
		{ "2026-11-20T02:00:00Z", NULL, "" },
		{ "2026-11-20T08:00:00Z", NULL, "" },
		{ "2026-11-20T20:00:00Z", NULL, "daily-20261120" },
		{ "2026-11-21T02:00:00Z", NULL, "" },
		{ "2026-11-21T23:59:59Z", NULL, "daily-20261121" },
	} },
	{ "days are UTC days", POLICY(0, 0, 2, 0, 0, 0, 0, NULL), "2026-11-22T00:00:00Z", {
		{ "2026-11-20T23:59:59Z", NULL, "daily-20261120" },
		{ "2026-11-21T00:00:00Z", NULL, "daily-20261121" },
	} },
	{ "weekly across a year boundary with ISO week 53", POLICY(0, 0, 0, 4, 0, 0, 0, NULL),
		"2027-01-06T00:00:00Z", {
		{ "2025-12-24T02:00:00Z", NULL, "" },                   /* 2025W52 */
		{ "2025-12-31T02:00:00Z", NULL, "" },                   /* 2026W01 */
		{ "2026-01-02T02:00:00Z", NULL, "weekly-2026W01" },     /* 2026W01 */
		{ "2026-12-27T02:00:00Z", NULL, "weekly-2026W52" },     /* Sunday of W52 */
		{ "2026-12-29T02:00:00Z", NULL, "" },                   /* 2026W53 */
		{ "2027-01-02T02:00:00Z", NULL, "weekly-2026W53" },     /* still 2026W53 */
		{ "2027-01-05T02:00:00Z", NULL, "weekly-2027W01" },
	} },
	{ "weekly: the ISO week of a date in the previous year", POLICY(0, 0, 0, 2, 0, 0, 0, NULL),
		"2021-01-05T00:00:00Z", {
		{ "2020-12-31T02:00:00Z", NULL, "" },
		{ "2021-01-03T02:00:00Z", NULL, "weekly-2020W53" },
		{ "2021-01-04T02:00:00Z", NULL, "weekly-2021W01" },
	} },
	{ "monthly 2", POLICY(0, 0, 0, 0, 2, 0, 0, NULL), "2026-12-01T00:00:00Z", {
		{ "2026-09-30T02:00:00Z", NULL, "" },
		{ "2026-10-01T02:00:00Z", NULL, "" },
		{ "2026-10-31T23:00:00Z", NULL, "monthly-202610" },
		{ "2026-11-01T02:00:00Z", NULL, "" },
		{ "2026-11-21T02:00:00Z", NULL, "monthly-202611" },
	} },
	{ "yearly 2", POLICY(0, 0, 0, 0, 0, 2, 0, NULL), "2027-06-01T00:00:00Z", {
		{ "2024-12-31T02:00:00Z", NULL, "" },
		{ "2025-06-01T02:00:00Z", NULL, "" },
		{ "2025-12-31T23:59:59Z", NULL, "" },
		{ "2026-01-01T00:00:00Z", NULL, "" },
		{ "2026-12-31T02:00:00Z", NULL, "yearly-2026" },
		{ "2027-01-01T02:00:00Z", NULL, "yearly-2027" },
	} },
	{ "rules combine and labels join with ','", POLICY(1, 0, 2, 0, 1, 1, 0, NULL),
		"2026-11-22T00:00:00Z", {
		{ "2026-10-15T02:00:00Z", NULL, "" },
		{ "2026-11-20T02:00:00Z", NULL, "" },
		{ "2026-11-20T14:00:00Z", NULL, "daily-20261120" },
		{ "2026-11-21T02:00:00Z", NULL, "last,daily-20261121,monthly-202611,yearly-2026" },
	} },
	{ "keep_within two days", POLICY(0, 0, 0, 0, 0, 0, 2 * 86400, NULL), "2026-11-22T12:00:00Z", {
		{ "2026-11-19T12:00:00Z", NULL, "" },
		{ "2026-11-20T12:00:00Z", NULL, "" },                   /* exactly 2 days: out */
		{ "2026-11-20T12:00:01Z", NULL, "within" },
		{ "2026-11-22T11:00:00Z", NULL, "within" },
	} },
	{ "keep tags", POLICY(1, 0, 0, 0, 0, 0, 0, two_tags), "2026-11-22T00:00:00Z", {
		{ "2026-11-17T02:00:00Z", "\"pinned\"", "tag:pinned" },
		{ "2026-11-18T02:00:00Z", "\"other\"", "" },
		{ "2026-11-19T02:00:00Z", "\"release\", \"pinned\"", "tag:pinned,tag:release" },
		{ "2026-11-20T02:00:00Z", NULL, "" },
		{ "2026-11-21T02:00:00Z", "\"pinned\"", "last,tag:pinned" },
	} },
	{ "the newest backup is always kept", POLICY(0, 0, 0, 0, 0, 0, 0, pinned),
		"2026-11-22T00:00:00Z", {
		{ "2026-11-19T02:00:00Z", "\"pinned\"", "tag:pinned" },
		{ "2026-11-20T02:00:00Z", NULL, "" },
		{ "2026-11-21T02:00:00Z", NULL, "newest" },
	} },
	{ "newest kept even when keep_within matches nothing", POLICY(0, 0, 0, 0, 0, 0, 3600, NULL),
		"2027-01-01T00:00:00Z", {
		{ "2026-11-20T02:00:00Z", NULL, "" },
		{ "2026-11-21T02:00:00Z", NULL, "newest" },
	} },
	{ "all rules off keeps everything", POLICY(0, 0, 0, 0, 0, 0, 0, NULL), "2026-11-22T00:00:00Z", {
		{ "2026-11-19T02:00:00Z", NULL, "no-policy" },
		{ "2026-11-20T02:00:00Z", NULL, "no-policy" },
		{ "2026-11-21T02:00:00Z", NULL, "no-policy" },
	} },
	{ "an empty tag list is off too", POLICY(0, 0, 0, 0, 0, 0, 0, no_tags), "2026-11-22T00:00:00Z", {
		{ "2026-11-20T02:00:00Z", NULL, "no-policy" },
		{ "2026-11-21T02:00:00Z", NULL, "no-policy" },
	} },
	{ "same second: ordered by id", POLICY(1, 0, 1, 0, 0, 0, 0, NULL), "2026-11-22T00:00:00Z", {
		{ "2026-11-21T02:00:00Z", NULL, "" },
		{ "2026-11-21T02:00:00Z", NULL, "last,daily-20261121" },
	} },
};

static void make_id(char *out, size_t size, int64_t t, size_t i)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char stamp[20];

	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", gmtime_r(&tt, &tm));
	snprintf(out, size, "%s-%04u", stamp, (unsigned)(i % 10000));
}

/* The backups of a case, oldest first, as the catalog would list them. */
static bop_manifest_list_t *build_list(const backup_spec_t *specs, size_t n)
{
	bop_manifest_list_t *list = NULL;

	if (bop__manifest_list_new(&list) < 0)
		exit(2);
	for (size_t i = 0; i < n; i++) {
		char id[40];
		int64_t t = utc(specs[i].time);
		char *json;
		bop_manifest_t *m = NULL;

		make_id(id, sizeof(id), t, i);
		json = manifest_json(id, t, specs[i].tags);
		if (bop_manifest_parse(&m, json, strlen(json)) < 0) {
			fprintf(stderr, "test manifest does not parse: %s\n", bop_error_last());
			exit(2);
		}
		bop_free(json);
		bop__manifest_list_append(list, m);
	}
	bop__manifest_list_sort(list);
	return list;
}

static size_t case_size(const plan_case_t *c)
{
	size_t n = 0;

	while (n < MAX_BACKUPS && c->backups[n].time)
		n++;
	return n;
}

static void run_case(const plan_case_t *c)
{
	size_t n = case_size(c);
	bop_manifest_list_t *list = build_list(c->backups, n);
	bop_retention_plan_t *plan = NULL;
	int ret, good = 1;

	ret = bop_retention_plan(&plan, list, &c->policy, utc(c->now));
	if (!is_int(ret, 0, c->what)) {
		diag("%s", bop_error_last());
		bop_manifest_list_free(list);
		return;
	}
	good &= bop_retention_plan_count(plan) == n;
	for (size_t i = 0; i < n && good; i++) {
		const char *labels = bop_retention_plan_labels(plan, i);
		int keep = bop_retention_plan_keep(plan, i);
		const char *want = c->backups[i].labels;

		if (strcmp(labels, want) != 0 || keep != (*want != '\0') ||
		    strcmp(bop_retention_plan_id(plan, i),
			bop_manifest_id(bop_manifest_list_get(list, i))) != 0) {
			diag("%s: backup %zu (%s): got %s '%s', want '%s'", c->what, i,
				c->backups[i].time, keep ? "keep" : "delete", labels, want);
			good = 0;
		}
	}
	ok(good, "%s: exactly the expected backups kept, with the expected labels", c->what);
	bop_retention_plan_free(plan);
	bop_manifest_list_free(list);
}

static void test_output(void)
{
	static const backup_spec_t specs[] = {
		{ "2026-11-20T02:00:00Z", NULL, "" },
		{ "2026-11-21T02:00:00Z", NULL, "" },
	};
	bop_retention_policy_t policy;
	bop_manifest_list_t *list = build_list(specs, 2);
	bop_retention_plan_t *plan = NULL;
	char *text = NULL, *json = NULL;

	bop_retention_policy_init(&policy, BOP_RETENTION_POLICY_VERSION);
	policy.keep_last = 1;
	policy.keep_daily = 1;
	is_int(bop_retention_plan(&plan, list, &policy, utc("2026-11-22T00:00:00Z")), 0, "plan");
	is_int(bop_retention_plan_format(plan, &text), 0, "format");
	is_str(text, "DELETE  20261120T020000Z-0000\n"
		"KEEP    20261121T020000Z-0001  last,daily-20261121\n", "the table");
	is_int(bop_retention_plan_to_json(plan, &json), 0, "to JSON");
	is_str(json, "[{\"id\":\"20261120T020000Z-0000\",\"keep\":false,\"labels\":[]},"
		"{\"id\":\"20261121T020000Z-0001\",\"keep\":true,\"labels\":[\"last\",\"daily-20261121\"]}]",
		"the JSON");
	ok(bop_retention_plan_id(plan, 2) == NULL, "out of range id is NULL");
	bop_free(text);
	bop_free(json);
	bop_retention_plan_free(plan);
	bop_manifest_list_free(list);
}

static void test_edges(void)
{
	bop_retention_policy_t policy = BOP_RETENTION_POLICY_INIT;
	bop_manifest_list_t *empty = NULL;
	bop_retention_plan_t *plan = NULL;
	char *text = NULL;

	bop__manifest_list_new(&empty);
	policy.keep_last = 3;
	is_int(bop_retention_plan(&plan, empty, &policy, 0), 0, "an empty catalog plans");
	is_int(bop_retention_plan_count(plan), 0, "with no entries");
	is_int(bop_retention_plan_format(plan, &text), 0, "and formats");
	is_str(text, "", "to nothing");
	bop_free(text);
	bop_retention_plan_free(plan);
	policy.version = 99;
	is_int(bop_retention_plan(&plan, empty, &policy, 0), BOP_EVERSION, "unknown policy version");
	is_int(bop_retention_policy_init(&policy, 2), BOP_EVERSION, "init with unknown version");
	bop_manifest_list_free(empty);
}

int main(void)
{
	for (size_t i = 0; i < BOP_ARRAY_SIZE(cases); i++)
		run_case(&cases[i]);
	test_output();
	test_edges();
	return done_testing();
}
