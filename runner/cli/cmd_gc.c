/* backupop gc: find and remove what interrupted writes left behind in the catalog (and only
 * in it: never in a nested catalog's keys). */
#include "cli.h"


#define CLI_GC_DEFAULT_AGE (24 * 3600)

/* bop_storage_list_cb: prints one leftover per line and counts it in `payload`. */
static int print_leftover(const char *name, const bop_storage_stat_t *st, void *payload)
{
	size_t *found = payload;

	(void)st;
	(*found)++;
	printf("%s\n", name);
	return 0;
}

static void report(const cli_t *cli, size_t found)
{
	if (cli->quiet)
		return;
	if (cli->dry_run)
		fprintf(stderr, "dry run: %zu leftover(s) found, nothing was removed\n", found);
	else
		fprintf(stderr, "removed %zu leftover(s)\n", found);
}

static int clean_up(const cli_t *cli, bop_catalog_t *catalog)
{
	int64_t age = cli->older_than >= 0 ? cli->older_than : CLI_GC_DEFAULT_AGE;
	size_t found = 0;
	int ret;

	ret = bop_catalog_gc(catalog, age, cli->dry_run, print_leftover, &found);
	fflush(stdout);
	if (ret < 0) {
		fprintf(stderr, "backupop: %zu leftover(s) handled before the error\n", found);
		return cli_fail(ret, false);
	}
	report(cli, found);
	return CLI_EXIT_OK;
}

int cli_cmd_gc(cli_t *cli)
{
	bop_storage_t *storage = NULL;
	bop_catalog_t *catalog = NULL;
	int ret;

	if (cli->nargs > 0)
		return cli_usage(cli, "unexpected argument '%s'", cli->args[0]);
	/* The lock is not taken: a backup that died cannot release it, and that is when gc is
	 * wanted. A live lock keeps what its holder may be writing safe; the age keeps safe
	 * the uploads of writers that hold none. */
	ret = cli_open_catalog(cli, &storage, &catalog);
	if (ret == 0)
		ret = clean_up(cli, catalog);
	bop_catalog_free(catalog);
	bop_storage_free(storage);
	return ret;
}
