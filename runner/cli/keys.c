/* The age keys of a backup or restore, from the settings. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PASSPHRASE_MAX 4096

/* Reads the first line of the passphrase file, registers it as a secret so that it never
 * shows in a log line or error, and hands it to `keys`. */
static int add_passphrase_file(bop_keys_t *keys, const char *path)
{
	char buf[PASSPHRASE_MAX + 1];
	ssize_t n = 0, r;
	size_t len;
	int fd, ret = CLI_EXIT_OK;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cli_error(errno == ENOENT ? CLI_EXIT_NOTFOUND : CLI_EXIT_FAILED,
			"cannot open passphrase file %s: %s", path, strerror(errno));
	while (n < PASSPHRASE_MAX && (r = read(fd, buf + n, (size_t)(PASSPHRASE_MAX - n))) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = cli_error(CLI_EXIT_FAILED, "cannot read passphrase file %s: %s", path,
				strerror(errno));
			goto out;
		}
		n += r;
	}
	buf[n] = '\0';
	len = strcspn(buf, "\r\n");
	buf[len] = '\0';
	if (len == 0) {
		ret = cli_error(CLI_EXIT_USAGE, "passphrase file %s: the first line is empty", path);
		goto out;
	}
	if (len >= 4 && bop_log_add_secret(buf) < 0) {
		ret = cli_fail(bop_error_last_code(), false);
		goto out;
	}
	if ((ret = bop_keys_set_passphrase(keys, buf, len)) < 0)
		ret = cli_fail(ret, false);
out:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return ret;
}

static int new_keys(bop_keys_t **out)
{
	int ret = bop_keys_new(out);

	return ret < 0 ? cli_fail(ret, false) : 0;
}

/* A missing key file is the user's mistake to fix: exit 3 names it, other errors map. */
static int key_file_result(int ret)
{
	if (ret >= 0)
		return 0;
	return cli_fail(ret, false);
}

int cli_keys_for_backup(const cli_settings_t *s, bop_keys_t **out)
{
	bop_keys_t *keys = NULL;
	bool any = s->recipients.count || s->recipients_file || s->identity_file;
	int ret;

	*out = NULL;
	if (!any && !s->passphrase_file)
		return 0;
	if (any && s->passphrase_file)
		return cli_error(CLI_EXIT_USAGE, "a passphrase cannot be combined with recipients "
			"or identities (age allows only one passphrase stanza); choose one");
	if ((ret = new_keys(&keys)))
		return ret;
	for (size_t i = 0; i < s->recipients.count && !ret; i++)
		ret = key_file_result(bop_keys_add_recipient(keys, s->recipients.items[i]));
	if (!ret && s->recipients_file)
		ret = key_file_result(bop_keys_add_recipients_file(keys, s->recipients_file));
	if (!ret && s->identity_file)
		ret = key_file_result(bop_keys_add_identity_file(keys, s->identity_file));
	if (!ret && s->passphrase_file)
		ret = add_passphrase_file(keys, s->passphrase_file);
	if (!ret && s->scrypt_work_factor > 0 &&
	    bop_keys_set_scrypt_work_factor(keys, (unsigned int)s->scrypt_work_factor) < 0)
		ret = cli_fail(bop_error_last_code(), false);
	if (ret) {
		bop_keys_free(keys);
		return ret;
	}
	*out = keys;
	return 0;
}

int cli_keys_for_restore(const cli_settings_t *s, bop_keys_t **out)
{
	bop_keys_t *keys = NULL;
	int ret;

	*out = NULL;
	if (!s->identity_file && !s->passphrase_file)
		return 0;
	if ((ret = new_keys(&keys)))
		return ret;
	if (s->identity_file)
		ret = key_file_result(bop_keys_add_identity_file(keys, s->identity_file));
	if (!ret && s->passphrase_file)
		ret = add_passphrase_file(keys, s->passphrase_file);
	if (ret) {
		bop_keys_free(keys);
		return ret;
	}
	*out = keys;
	return 0;
}
