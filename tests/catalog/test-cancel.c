/* bop_catalog_cancel(): a backup canceled from another thread stops, kills its producer,
 * and leaves no manifest and no data. */
#include <pthread.h>
#include <signal.h>
#include <sys/types.h>

#include "catalog-test.h"

static int dirs_found;

static int count_dir(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)path; (void)sb; (void)ftw;
	if (flag == FTW_D || flag == FTW_DP)
		dirs_found++;
	return 0;
}

static void *cancel_later(void *arg)
{
	struct timespec ts = { 0, 300 * 1000 * 1000 };

	nanosleep(&ts, NULL);
	bop_catalog_cancel(arg);
	return NULL;
}

int main(void)
{
	char *dir = make_tmpdir();
	char *pidfile = bop__sprintf("%s/producer.pid", dir);
	char *script = bop__sprintf("echo $$ > '%s'; while :; do head -c 65536 /dev/zero; sleep 0.02; done",
		pidfile);
	const char *argv[] = { "sh", "-c", script, NULL };
	bop_command_options_t cmd = BOP_COMMAND_OPTIONS_INIT;
	bop_storage_t *storage = NULL;
	bop_catalog_t *catalog = NULL;
	bop_manifest_list_t *list = NULL;
	bop_manifest_t *m = NULL;
	bop_source_t *src = NULL;
	char *url = bop__sprintf("file://%s/store", dir), *pidtext = NULL;
	pthread_t thread;
	int ret;

	cmd.argv = argv;
	ok(bop_storage_open(&storage, url, NULL) == 0, "storage opens");
	ok(bop_catalog_open(&catalog, storage, "cancel") == 0, "catalog opens");
	ok(bop_source_command_new(&src, &cmd) == 0, "an endless producer starts");
	pthread_create(&thread, NULL, cancel_later, catalog);
	ret = bop_catalog_backup(catalog, &m, src, NULL);
	pthread_join(thread, NULL);
	is_int(ret, BOP_ECANCELED, "the backup fails with BOP_ECANCELED");
	ok(strstr(bop_error_last(), "cancel") != NULL, "and says it was canceled: %s", bop_error_last());
	ok(m == NULL, "no manifest is returned");
	ok(bop_catalog_list(catalog, &list) == 0 && bop_manifest_list_count(list) == 0,
		"the catalog lists no backup");
	is_int(count_files(dir) - 1, 0, "no data is left in the storage (only the pid file)");
	{
		char *store = bop__sprintf("%s/store", dir);

		dirs_found = 0;
		nftw(store, count_dir, 16, FTW_PHYS);
		ok(dirs_found <= 1, "and no empty backup directory either (%d directories)", dirs_found);
		free(store);
	}
	if (bop__read_file(pidfile, &pidtext, NULL, 64) == 0) {
		pid_t pid = (pid_t)atol(pidtext);

		ok(pid > 0 && kill(pid, 0) != 0, "the producer was killed and reaped");
	} else {
		ok(0, "the producer wrote its pid");
	}
	src = NULL;
	bop_source_memory_new(&src, "x", 1);
	is_int(bop_catalog_backup(catalog, NULL, src, NULL), BOP_ECANCELED,
		"a canceled catalog refuses later backups too");
	bop_manifest_list_free(list);
	bop_catalog_free(catalog);
	bop_storage_free(storage);
	free(pidtext);
	free(url);
	free(script);
	free(pidfile);
	remove_tree(dir);
	return done_testing();
}
