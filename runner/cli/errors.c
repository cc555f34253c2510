/* Error messages and exit codes. */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int cli_exit_code(int code, bool stored_data)
{
	switch ((bop_error_t)code) {
	case BOP_OK: return CLI_EXIT_OK;
	case BOP_ENOTFOUND: return CLI_EXIT_NOTFOUND;
	case BOP_EINVAL: return CLI_EXIT_USAGE;
	case BOP_EINTEGRITY: return CLI_EXIT_INTEGRITY;
	case BOP_EFORMAT: return stored_data ? CLI_EXIT_INTEGRITY : CLI_EXIT_USAGE;
	case BOP_ENOKEY: return CLI_EXIT_KEY;
	case BOP_ECONFLICT: return CLI_EXIT_LOCKED;
	case BOP_ECHILD: return CLI_EXIT_CHILD;
	case BOP_ECANCELED: return CLI_EXIT_INTERRUPTED;
	case BOP_EAUTH: return CLI_EXIT_AUTH;
	case BOP_ECONNECT: return CLI_EXIT_CONNECT;
	case BOP_ERROR:
	case BOP_EEXISTS:
	case BOP_EVERSION:
	case BOP_ENOMEM:
	case BOP_EIO:
	case BOP_ETIMEOUT:
	case BOP_ENOTSUPPORTED:
		return CLI_EXIT_FAILED;
	}
	return CLI_EXIT_FAILED;
}

/* Writes `text` with control characters (a user's --name, a file name) as \xNN, so that
 * no message can move the cursor or change the terminal. Newlines and tabs stay. */
void cli_put_escaped(FILE *out, const char *text)
{
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f)
			fprintf(out, "\\x%02x", *p);
		else
			fputc(*p, out);
	}
}

__attribute__((format(printf, 1, 0)))
static void print_error(const char *fmt, va_list ap)
{
	char *msg = NULL;

	fputs("backupop: error: ", stderr);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	cli_put_escaped(stderr, msg ? msg : "out of memory");
	free(msg);
}

int cli_fail(int code, bool stored_data)
{
	if (cli_interrupted)
		return cli_error(CLI_EXIT_INTERRUPTED,
			"interrupted by a signal; the operation was canceled");
	cli_error(0, "%s", bop_error_last());
	return cli_exit_code(code, stored_data);
}

int cli_error(int exit_code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	print_error(fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return exit_code;
}

int cli_usage(const cli_t *cli, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	print_error(fmt, ap);
	va_end(ap);
	if (cli->command_name)
		fprintf(stderr, "\nTry 'backupop %s --help'.\n", cli->command_name);
	else
		fputs("\nTry 'backupop help'.\n", stderr);
	return CLI_EXIT_USAGE;
}

int cli_fail_command(int code)
{
	int exit_code = cli_fail(code, false);

	return code == BOP_ENOMEM || code == BOP_EINVAL || code == BOP_EAUTH ||
		code == BOP_ECONNECT ? exit_code : CLI_EXIT_CHILD;
}
