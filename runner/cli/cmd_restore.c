/* backupop restore and backupop verify. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Where verified data goes: the real sink, through a writer thread for a file or standard
 * output. Not for a command: its sink watches the restore's cancel flag while it waits for
 * the command to read, which works on the restore's thread only. Not for an engine's sink:
 * it does its own work beside the restore. */
typedef struct output {
	bop_sink_t *inner;
	cli_writer_t *writer;
} output_t;

/* Forwards verified data to the real sink, stopping when a signal asked us to. The real
 * sink is committed by us, after the catalog has checked everything; on failure it is
 * aborted (a file is removed, a command is killed without seeing the end of its input). */
static int guarded_write(const void *buf, size_t len, void *payload)
{
	output_t *o = payload;

	if (cli_interrupted)
		return BOP_ECANCELED;
	if (o->writer)
		return cli_writer_write(o->writer, buf, len);
	return bop_sink_write(o->inner, buf, len);
}

/* The engine of the config; it lives until the command ends, since its source or sink
 * may use what it set up (credential files). */
static bop_engine_t *engine_in_use;

/* The config's engine block: it consumes the stream. */
static int open_engine_sink(cli_t *cli, bop_sink_t **out)
{
	bop_engine_t *e = NULL;
	int ret;

	ret = bop_engine_open(&e, cli->settings.engine_name, cli->settings.engine_json);
	if (ret < 0)
		return cli_fail(ret, false);
	engine_in_use = e;
	ret = bop_engine_restore(e, out);
	return ret < 0 ? cli_fail_command(ret) : 0;
}

static int open_sink(cli_t *cli, bop_sink_t **out)
{
	bop_command_options_t cmd;
	int ret;

	if (!cli->exec_argv && !cli->output && cli->settings.engine_name)
		return open_engine_sink(cli, out);
	if (cli->exec_argv) {
		bop_command_options_init(&cmd, BOP_COMMAND_OPTIONS_VERSION);
		cmd.argv = (const char *const *)cli->exec_argv;
		ret = bop_sink_command_new(out, &cmd);
		return ret < 0 ? cli_fail_command(ret) : 0;
	} else if (cli->output && strcmp(cli->output, "-")) {
		ret = bop_sink_file_new(out, cli->output);
	} else if (isatty(STDOUT_FILENO)) {
		return cli_usage(cli, "refusing to write a backup to a terminal: use -o FILE, "
			"a pipe or -- COMMAND");
	} else {
		ret = bop_sink_fd_new(out, STDOUT_FILENO, 0);
	}
	return ret < 0 ? cli_fail(ret, false) : 0;
}

static int check_id_arg(cli_t *cli)
{
	if (cli->nargs < 1)
		return cli_usage(cli, "which backup? give an ID or 'latest'");
	if (cli->nargs > 1)
		return cli_usage(cli, "unexpected argument '%s' (a command to restore into goes "
			"after '--')", cli->args[1]);
	if (cli->output && cli->exec_argv)
		return cli_usage(cli, "give either -o FILE or -- COMMAND, not both");
	return 0;
}

/* Opens everything a restore or verify needs: keys, catalog, manifest. */
typedef struct restore_ctx {
	bop_storage_t *storage;
	bop_catalog_t *catalog;
	bop_manifest_t *manifest;
	bop_keys_t *keys;
	cli_progress_t progress;
	bop_restore_options_t opts;
} restore_ctx_t;

static int check_keys(const restore_ctx_t *ctx)
{
	const char *enc = bop_manifest_encryption(ctx->manifest);

	if (ctx->keys || !enc || !strcmp(enc, "none"))
		return 0;
	if (!strcmp(enc, "scrypt"))
		return cli_error(CLI_EXIT_KEY, "backup %s is encrypted with a passphrase: give "
			"--passphrase-file FILE", bop_manifest_id(ctx->manifest));
	return cli_error(CLI_EXIT_KEY, "backup %s is encrypted to age recipients: give "
		"--identity FILE", bop_manifest_id(ctx->manifest));
}

static int restore_open(cli_t *cli, restore_ctx_t *ctx, const char *verb)
{
	int ret;

	memset(ctx, 0, sizeof(*ctx));
	ret = cli_keys_for_restore(&cli->settings, &ctx->keys);
	if (ret)
		return ret;
	ret = cli_open_catalog(cli, &ctx->storage, &ctx->catalog);
	if (ret)
		return ret;
	cli_cancel_catalog = ctx->catalog;
	if (cli_interrupted)
		bop_catalog_cancel(ctx->catalog);
	ret = bop_catalog_get(ctx->catalog, &ctx->manifest, cli->args[0]);
	if (ret < 0)
		return cli_fail(ret, true);
	ret = check_keys(ctx);
	if (ret)
		return ret;
	bop_restore_options_init(&ctx->opts, BOP_RESTORE_OPTIONS_VERSION);
	ctx->opts.keys = ctx->keys;
	cli_progress_start(&ctx->progress, verb, cli->quiet);
	ctx->opts.progress = cli_progress_update;
	ctx->opts.payload = &ctx->progress;
	return 0;
}

static void restore_close(restore_ctx_t *ctx)
{
	cli_progress_end(&ctx->progress);
	bop_manifest_free(ctx->manifest);
	cli_cancel_catalog = NULL;
	bop_catalog_free(ctx->catalog);
	bop_storage_free(ctx->storage);
	bop_keys_free(ctx->keys);
}

static int run_restore(cli_t *cli, restore_ctx_t *ctx)
{
	output_t o = { NULL, NULL };
	bop_sink_t *wrapper = NULL;
	int ret;

	ret = open_sink(cli, &o.inner);
	if (ret)
		return ret;
	if (!engine_in_use && !cli->exec_argv && cli_writer_wanted())
		ret = cli_writer_start(&o.writer, o.inner);
	if (ret == 0)
		ret = bop_sink_callback_new(&wrapper, guarded_write, &o);
	if (ret < 0) {
		ret = cli_fail(ret, false);
		goto out;
	}
	cli_install_signal_handlers();
	ret = bop_catalog_restore(ctx->catalog, ctx->manifest, wrapper, &ctx->opts);
	cli_progress_end(&ctx->progress);
	if (ret == 0 && o.writer) {
		ret = cli_writer_finish(o.writer);
		if (ret < 0)
			bop_error_setf(ret, "restore of backup %s failed: %s",
				bop_manifest_id(ctx->manifest), bop_error_last());
	}
	if (ret < 0) {
		/* The thread stops before the sink it writes to is aborted; one stuck writing to
		 * a reader that reads nothing keeps the sink until the process exits. */
		if (!cli_writer_free(o.writer))
			o.inner = NULL;
		o.writer = NULL;
		if (o.inner)
			bop_sink_abort(o.inner);
		ret = cli_fail(ret, true);
		goto out;
	}
	ret = bop_sink_commit(o.inner);
	if (ret < 0)
		ret = cli_fail(ret, false);
out:
	cli_writer_free(o.writer);
	bop_sink_free(o.inner);
	bop_engine_free(engine_in_use);
	engine_in_use = NULL;
	return ret;
}

int cli_cmd_restore(cli_t *cli)
{
	restore_ctx_t ctx;
	int ret;

	ret = check_id_arg(cli);
	if (ret)
		return ret;
	ret = restore_open(cli, &ctx, "restore");
	if (!ret)
		ret = run_restore(cli, &ctx);
	restore_close(&ctx);
	return ret;
}

int cli_cmd_verify(cli_t *cli)
{
	char size[32];
	restore_ctx_t ctx;
	int ret;

	ret = check_id_arg(cli);
	if (ret)
		return ret;
	ret = restore_open(cli, &ctx, "verify");
	if (ret)
		goto out;
	ret = bop_catalog_verify(ctx.catalog, ctx.manifest, &ctx.opts);
	cli_progress_end(&ctx.progress);
	if (ret < 0) {
		ret = cli_fail(ret, true);
		goto out;
	}
	cli_format_size(size, sizeof(size), bop_manifest_plain_bytes(ctx.manifest));
	printf("%s: OK (%s, sha256 %s)\n", bop_manifest_id(ctx.manifest), size,
		bop_manifest_plain_sha256(ctx.manifest));
	ret = 0;
out:
	restore_close(&ctx);
	return ret;
}
