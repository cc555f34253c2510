/* backupop list: the backups of a catalog, as a table or JSON. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static int print_json(const bop_manifest_list_t *list)
{
	size_t n = bop_manifest_list_count(list);

	fputs("[", stdout);
	for (size_t i = 0; i < n; i++) {
		char *json = NULL;
		int ret = bop_manifest_to_json(bop_manifest_list_get(list, i), &json);

		if (ret < 0)
			return cli_fail(ret, true);
		printf("%s%s", i ? ",\n" : "\n", json);
		bop_free(json);
	}
	fputs(n ? "\n]\n" : "]\n", stdout);
	return 0;
}

static void tags_text(const bop_manifest_t *m, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < bop_manifest_tag_count(m) && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? "," : "",
			bop_manifest_tag(m, i));
	if (!buf[0])
		snprintf(buf, len, "-");
}

static void print_row(const bop_manifest_t *m, const char *labels)
{
	char when[32], plain[32], stored[32], ratio[16], tags[256];
	time_t t = (time_t)bop_manifest_start_time(m);
	uint64_t in = bop_manifest_plain_bytes(m), out = bop_manifest_stored_bytes(m);
	struct tm tm;

	if (gmtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	else
		snprintf(when, sizeof(when), "?");
	cli_format_size(plain, sizeof(plain), in);
	cli_format_size(stored, sizeof(stored), out);
	if (out > 0 && in > 0)
		snprintf(ratio, sizeof(ratio), "%.2fx", (double)in / (double)out);
	else
		snprintf(ratio, sizeof(ratio), "-");
	tags_text(m, tags, sizeof(tags));
	printf("%-24s  %-19s  %10s  %10s  %7s  %s", bop_manifest_id(m), when, plain, stored,
		ratio, tags);
	if (labels)
		printf("  %s", *labels ? labels : "(delete)");
	putchar('\n');
}

static int print_table(const cli_t *cli, const bop_manifest_list_t *list)
{
	bop_retention_policy_t policy;
	bop_retention_plan_t *plan = NULL;
	size_t n = bop_manifest_list_count(list);
	int ret;

	if (n == 0) {
		if (!cli->quiet)
			fprintf(stderr, "no backups named '%s' in %s\n", cli->settings.name,
				cli->settings.storage);
		return 0;
	}
	if (cli_settings_has_retention(&cli->settings)) {
		cli_retention_policy(&cli->settings, &policy);
		ret = bop_retention_plan(&plan, list, &policy, (int64_t)time(NULL));
		if (ret < 0)
			return cli_fail(ret, false);
	}
	printf("%-24s  %-19s  %10s  %10s  %7s  %s%s\n", "ID", "TIME (UTC)", "SIZE", "STORED",
		"RATIO", "TAGS", plan ? "  LABELS" : "");
	for (size_t i = 0; i < n; i++)
		print_row(bop_manifest_list_get(list, i),
			plan ? bop_retention_plan_labels(plan, i) : NULL);
	bop_retention_plan_free(plan);
	return 0;
}

int cli_cmd_list(cli_t *cli)
{
	bop_storage_t *storage = NULL;
	bop_catalog_t *catalog = NULL;
	bop_manifest_list_t *list = NULL;
	int ret;

	if (cli->nargs > 0)
		return cli_usage(cli, "unexpected argument '%s'", cli->args[0]);
	ret = cli_open_catalog(cli, &storage, &catalog);
	if (ret)
		goto out;
	ret = bop_catalog_list(catalog, &list);
	if (ret < 0) {
		ret = cli_fail(ret, false);
		goto out;
	}
	ret = cli->json ? print_json(list) : print_table(cli, list);
out:
	bop_manifest_list_free(list);
	bop_catalog_free(catalog);
	bop_storage_free(storage);
	return ret;
}
