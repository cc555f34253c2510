/* backupop prune: plan retention, print the plan, remove what it deletes. */
#include "cli.h"

#include <string.h>
#include <time.h>

static int print_plan(const cli_t *cli, const bop_retention_plan_t *plan)
{
	char *text = NULL;
	int ret;

	ret = cli->json ? bop_retention_plan_to_json(plan, &text) :
		bop_retention_plan_format(plan, &text);
	if (ret < 0)
		return cli_fail(ret, false);
	fputs(text, stdout);
	if (*text && text[strlen(text) - 1] != '\n')
		putchar('\n');
	fflush(stdout);
	bop_free(text);
	return 0;
}

static int apply_plan(const cli_t *cli, bop_catalog_t *catalog, const bop_retention_plan_t *plan)
{
	size_t removed = 0;
	int ret;

	if (cli->dry_run) {
		if (!cli->quiet)
			fputs("dry run: nothing was removed\n", stderr);
		return 0;
	}
	ret = bop_catalog_prune(catalog, &removed, plan);
	if (ret < 0) {
		fprintf(stderr, "backupop: removed %zu backup(s) before the error\n", removed);
		return cli_fail(ret, false);
	}
	if (!cli->quiet)
		fprintf(stderr, "removed %zu backup(s)\n", removed);
	return 0;
}

int cli_cmd_prune(cli_t *cli)
{
	bop_retention_policy_t policy;
	bop_retention_plan_t *plan = NULL;
	bop_storage_t *storage = NULL;
	bop_catalog_t *catalog = NULL;
	bop_manifest_list_t *list = NULL;
	bop_lock_t *lock = NULL;
	int ret;

	if (cli->nargs > 0)
		return cli_usage(cli, "unexpected argument '%s'", cli->args[0]);
	if (!cli_settings_has_retention(&cli->settings))
		return cli_usage(cli, "prune needs at least one rule: --keep-last, --keep-hourly, "
			"--keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-within, "
			"--keep-tag (or retention in --config)");
	cli_retention_policy(&cli->settings, &policy);
	ret = cli_open_catalog(cli, &storage, &catalog);
	if (ret)
		goto out;
	if (!cli->dry_run && (ret = cli_lock_catalog(cli, catalog, &lock)))
		goto out;
	ret = bop_catalog_list(catalog, &list);
	if (ret < 0) {
		ret = cli_fail(ret, false);
		goto out;
	}
	ret = bop_retention_plan(&plan, list, &policy, (int64_t)time(NULL));
	if (ret < 0) {
		ret = cli_fail(ret, false);
		goto out;
	}
	ret = print_plan(cli, plan);
	if (!ret)
		ret = apply_plan(cli, catalog, plan);
out:
	if (lock && bop_lock_release(lock) < 0 && !ret)
		ret = cli_fail(bop_error_last_code(), false);
	bop_retention_plan_free(plan);
	bop_manifest_list_free(list);
	bop_catalog_free(catalog);
	bop_storage_free(storage);
	return ret;
}
