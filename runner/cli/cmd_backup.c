/* backupop backup: stdin, a file or a command's output into a new backup. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads the real source, stopping when a signal asked us to or the lock was lost; at its
 * end closes it so that a failed producer fails the backup. */
typedef struct guarded_source {
	bop_source_t *inner;
	bool closed;
	cli_progress_t progress;
	bop_lock_t *lock;
	double lock_refreshed;
	bool lock_lost;
} guarded_source_t;

/* bop_progress_cb: also keeps the catalog lock alive while the backup runs. */
static void backup_progress(uint64_t bytes_in, uint64_t bytes_out, void *payload)
{
	guarded_source_t *g = payload;
	double now = cli_now();

	cli_progress_update(bytes_in, bytes_out, &g->progress);
	if (g->lock && now - g->lock_refreshed >= CLI_LOCK_REFRESH_SECONDS) {
		g->lock_refreshed = now;
		if (bop_lock_refresh(g->lock) < 0)
			g->lock_lost = true;
	}
}

static int guarded_read(void *buf, size_t cap, size_t *got, void *payload)
{
	guarded_source_t *g = payload;
	int ret;

	*got = 0;
	if (cli_interrupted)
		return BOP_ECANCELED;
	if (g->lock_lost)
		return BOP_ECONFLICT;
	if (g->closed)
		return 0;
	ret = bop_source_read(g->inner, buf, cap, got);
	if (ret < 0 || *got > 0)
		return ret;
	g->closed = true;
	return bop_source_close(g->inner);
}

/* The engine of the config; it lives until the command ends, since its source or sink
 * may use what it set up (credential files). */
static bop_engine_t *engine_in_use;

/* The config's engine block: its backup stream. */
static int open_engine_source(cli_t *cli, bop_source_t **out, const char **engine)
{
	bop_engine_t *e = NULL;
	int ret;

	ret = bop_engine_open(&e, cli->settings.engine_name, cli->settings.engine_json);
	if (ret < 0)
		return cli_fail(ret, false);
	*engine = cli->settings.engine_name;
	engine_in_use = e;
	ret = bop_engine_backup(e, out);
	return ret < 0 ? cli_fail_command(ret) : 0;
}

static int open_source(cli_t *cli, bop_source_t **out, const char **engine)
{
	bop_command_options_t cmd;
	int ret;

	if (!cli->exec_argv && !cli->input && cli->settings.engine_name)
		return open_engine_source(cli, out, engine);

	if (cli->exec_argv) {
		bop_command_options_init(&cmd, BOP_COMMAND_OPTIONS_VERSION);
		cmd.argv = (const char *const *)cli->exec_argv;
		*engine = "exec";
		ret = bop_source_command_new(out, &cmd);
		return ret < 0 ? cli_fail_command(ret) : 0;
	}
	if (cli->input && strcmp(cli->input, "-")) {
		*engine = "file";
		ret = bop_source_file_new(out, cli->input);
		return ret < 0 ? cli_fail(ret, false) : 0;
	}
	if (isatty(STDIN_FILENO))
		return cli_usage(cli, "refusing to read a backup from a terminal: pipe data in, "
			"or use -i FILE or -- COMMAND");
	*engine = "stdin";
	ret = bop_source_fd_new(out, STDIN_FILENO, 0);
	return ret < 0 ? cli_fail(ret, false) : 0;
}

/* Whether the backup is of standard input (open_source's last case). */
static bool reads_stdin(const cli_t *cli)
{
	if (cli->exec_argv)
		return false;
	if (cli->input)
		return !strcmp(cli->input, "-");
	return !cli->settings.engine_name;
}

static int check_args(cli_t *cli, bop_compression_t *compression)
{
	if (cli->nargs > 0)
		return cli_usage(cli, "unexpected argument '%s' (a command to back up goes "
			"after '--')", cli->args[0]);
	if (cli->input && cli->exec_argv)
		return cli_usage(cli, "give either -i FILE or -- COMMAND, not both");
	if (reads_stdin(cli) && cli_stdin_closed)
		return cli_usage(cli, "standard input is closed: pipe data in, or use -i FILE or "
			"-- COMMAND");
	*compression = BOP_COMPRESSION_ZSTD;
	if (cli->settings.compression &&
	    bop_compression_parse(compression, cli->settings.compression) < 0)
		return cli_usage(cli, "%s", bop_error_last());
	return 0;
}

static int take_backup(cli_t *cli, bop_catalog_t *catalog, bop_backup_options_t *opts)
{
	guarded_source_t guard;
	bop_source_t *wrapper = NULL;
	bop_manifest_t *m = NULL;
	int ret;

	memset(&guard, 0, sizeof(guard));
	ret = cli_lock_catalog(cli, catalog, &guard.lock);
	if (ret)
		return ret;
	guard.lock_refreshed = cli_now();
	ret = open_source(cli, &guard.inner, &opts->engine);
	if (ret)
		goto out;
	ret = bop_source_callback_new(&wrapper, guarded_read, &guard);
	if (ret < 0) {
		ret = cli_fail(ret, false);
		goto out;
	}
	cli_progress_start(&guard.progress, "backup", cli->quiet);
	opts->progress = backup_progress;
	opts->payload = &guard;
	cli_install_signal_handlers();
	ret = bop_catalog_backup(catalog, &m, wrapper, opts);
	cli_progress_end(&guard.progress);
	if (ret < 0 && guard.lock_lost) {
		ret = cli_error(CLI_EXIT_LOCKED, "the catalog lock was taken over while the backup "
			"ran (a producer stalled longer than %d s?); the backup was discarded",
			CLI_LOCK_TTL_SECONDS);
		goto out;
	}
	if (ret < 0) {
		ret = cli_fail(ret, false);
		goto out;
	}
	printf("%s\n", bop_manifest_id(m));
	ret = 0;
out:
	bop_manifest_free(m);
	bop_source_free(guard.inner);
	if (guard.lock && bop_lock_release(guard.lock) < 0 && !ret)
		ret = cli_fail(bop_error_last_code(), false);
	return ret;
}

int cli_cmd_backup(cli_t *cli)
{
	bop_backup_options_t opts;
	bop_storage_t *storage = NULL;
	bop_catalog_t *catalog = NULL;
	bop_keys_t *keys = NULL;
	int ret;

	bop_backup_options_init(&opts, BOP_BACKUP_OPTIONS_VERSION);
	ret = check_args(cli, &opts.compression);
	if (ret)
		return ret;
	opts.level = cli->settings.level > 0 ? cli->settings.level : 0;
	opts.threads = cli->settings.threads > 0 ? cli->settings.threads : 0;
	opts.tags = (const char *const *)cli->settings.tags.items;
	ret = cli_keys_for_backup(&cli->settings, &keys);
	if (ret)
		return ret;
	opts.keys = keys;
	ret = cli_open_catalog(cli, &storage, &catalog);
	if (ret)
		goto out;
	cli_cancel_catalog = catalog;
	if (cli_interrupted)
		bop_catalog_cancel(catalog);
	ret = take_backup(cli, catalog, &opts);
out:
	cli_cancel_catalog = NULL;
	bop_catalog_free(catalog);
	bop_storage_free(storage);
	bop_keys_free(keys);
	bop_engine_free(engine_in_use);
	engine_in_use = NULL;
	return ret;
}
