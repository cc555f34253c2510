/* backupop: the command line tool. See backupop(1). */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool cli_stdin_closed;

/*
 * Puts /dev/null on whichever of fds 0, 1 and 2 is closed, so that no file opened later
 * lands there (a backup's temporary data file read back as "stdin", an error message
 * written into an object). Returns false when that is impossible.
 */
static bool ensure_std_fds(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		int got;

		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		if (fd == STDIN_FILENO)
			cli_stdin_closed = true;
		/* The lowest free descriptor: this one, as those below it are open. */
		got = open("/dev/null", fd == STDIN_FILENO ? O_RDONLY : O_WRONLY);
		if (got != fd) {
			if (got >= 0)
				close(got);
			return false;
		}
	}
	return true;
}

int cli_open_catalog(const cli_t *cli, bop_storage_t **storage, bop_catalog_t **catalog)
{
	bop_storage_options_t opts;
	int ret;

	*storage = NULL;
	*catalog = NULL;
	bop_storage_options_init(&opts, BOP_STORAGE_OPTIONS_VERSION);
	opts.settings = (const char *const *)cli->settings.storage_settings.items;
	ret = bop_storage_open(storage, cli->settings.storage, &opts);
	if (ret < 0)
		return cli_fail(ret, false);
	ret = bop_catalog_open(catalog, *storage, cli->settings.name);
	if (ret < 0) {
		bop_storage_free(*storage);
		*storage = NULL;
		return cli_fail(ret, false);
	}
	return 0;
}

int cli_lock_catalog(const cli_t *cli, bop_catalog_t *catalog, bop_lock_t **out)
{
	char host[256] = "", owner[512];
	int ret;

	if (gethostname(host, sizeof(host) - 1) < 0)
		snprintf(host, sizeof(host), "unknown host");
	snprintf(owner, sizeof(owner), "backupop %s (%s, pid %ld)", cli->command_name, host,
		(long)getpid());
	ret = bop_catalog_lock(catalog, out, owner, CLI_LOCK_TTL_SECONDS);
	return ret < 0 ? cli_fail(ret, false) : 0;
}

static int run(cli_t *cli)
{
	switch (cli->command) {
	case CLI_CMD_BACKUP: return cli_cmd_backup(cli);
	case CLI_CMD_RESTORE: return cli_cmd_restore(cli);
	case CLI_CMD_VERIFY: return cli_cmd_verify(cli);
	case CLI_CMD_LIST: return cli_cmd_list(cli);
	case CLI_CMD_PRUNE: return cli_cmd_prune(cli);
	case CLI_CMD_KEYGEN: return cli_cmd_keygen(cli);
	case CLI_CMD_GC: return cli_cmd_gc(cli);
	case CLI_CMD_RUNS: return cli_cmd_runs(cli);
	case CLI_CMD_STATUS: return cli_cmd_status(cli);
	default: return cli_error(CLI_EXIT_USAGE, "no command given (try 'backupop help')");
	}
}

int main(int argc, char **argv)
{
	cli_t cli;
	int ret;

	if (!ensure_std_fds())
		return CLI_EXIT_FAILED;
	memset(&cli, 0, sizeof(cli));
	cli.older_than = -1;
	cli_settings_init(&cli.settings);
	ret = cli_parse_args(&cli, argc, argv);
	if (ret == 0)
		ret = run(&cli);
	else if (ret < 0)
		ret = CLI_EXIT_OK;
	cli_free(&cli);
	if (fflush(stdout) != 0 && ret == CLI_EXIT_OK)
		ret = cli_error(CLI_EXIT_FAILED, "cannot write to standard output");
	return ret;
}
