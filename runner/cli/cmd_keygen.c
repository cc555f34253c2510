/* backupop keygen: a new age identity, in age-keygen's format. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static int write_all(int fd, const char *text)
{
	size_t len = strlen(text);

	while (len > 0) {
		ssize_t w = write(fd, text, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		text += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Creates the file 0600 and never replaces one: a key file is too precious to clobber. */
static int write_identity_file(const char *path, const char *identity)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0 && errno == EEXIST)
		return cli_error(CLI_EXIT_FAILED, "%s exists already; not overwriting a key file",
			path);
	if (fd < 0)
		return cli_error(CLI_EXIT_FAILED, "cannot create %s: %s", path, strerror(errno));
	if (write_all(fd, identity) < 0 || fsync(fd) < 0) {
		int err = errno;

		close(fd);
		unlink(path);
		return cli_error(CLI_EXIT_FAILED, "cannot write %s: %s", path, strerror(err));
	}
	if (close(fd) < 0)
		return cli_error(CLI_EXIT_FAILED, "cannot write %s: %s", path, strerror(errno));
	return 0;
}

int cli_cmd_keygen(cli_t *cli)
{
	char *identity = NULL, *recipient = NULL;
	int ret;

	if (cli->nargs > 0)
		return cli_usage(cli, "unexpected argument '%s'", cli->args[0]);
	ret = bop_age_keygen(&identity, &recipient);
	if (ret < 0)
		return cli_fail(ret, false);
	if (cli->output && strcmp(cli->output, "-")) {
		ret = write_identity_file(cli->output, identity);
		if (!ret)
			printf("%s\n", recipient);
	} else {
		ret = write_all(STDOUT_FILENO, identity) < 0 ?
			cli_error(CLI_EXIT_FAILED, "cannot write the identity: %s", strerror(errno)) : 0;
		if (!ret && !cli->quiet)
			fprintf(stderr, "Public key: %s\n", recipient);
	}
	explicit_bzero(identity, strlen(identity));
	bop_free(identity);
	bop_free(recipient);
	return ret;
}
