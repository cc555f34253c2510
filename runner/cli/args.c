/* Command-line parsing and help, driven by one table of options. */
#include "cli.h"
#include "config.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

enum {
	OPT_STORAGE = 256,
	OPT_NAME,
	OPT_CONFIG,
	OPT_LOG_LEVEL,
	OPT_LOG_FORMAT,
	OPT_RECIPIENTS_FILE,
	OPT_IDENTITY,
	OPT_PASSPHRASE_FILE,
	OPT_SCRYPT_WORK_FACTOR,
	OPT_LEVEL,
	OPT_THREADS,
	OPT_JSON,
	OPT_KEEP_LAST,
	OPT_KEEP_HOURLY,
	OPT_KEEP_DAILY,
	OPT_KEEP_WEEKLY,
	OPT_KEEP_MONTHLY,
	OPT_KEEP_YEARLY,
	OPT_KEEP_WITHIN,
	OPT_KEEP_TAG,
	OPT_OLDER_THAN,
	OPT_URL,
	OPT_TOKEN_FILE,
};

#define CMD_ANY (CLI_CMD_BACKUP | CLI_CMD_RESTORE | CLI_CMD_VERIFY | CLI_CMD_LIST | \
	CLI_CMD_PRUNE | CLI_CMD_KEYGEN | CLI_CMD_GC | CLI_CMD_RUNS | CLI_CMD_STATUS)
#define CMD_API (CLI_CMD_RUNS | CLI_CMD_STATUS)
#define CMD_CATALOG (CLI_CMD_BACKUP | CLI_CMD_RESTORE | CLI_CMD_VERIFY | CLI_CMD_LIST | \
	CLI_CMD_PRUNE | CLI_CMD_GC)
#define CMD_DECRYPT (CLI_CMD_RESTORE | CLI_CMD_VERIFY)
#define CMD_RETENTION (CLI_CMD_LIST | CLI_CMD_PRUNE)

typedef struct cli_option {
	const char *name;
	int has_arg;
	int val;
	unsigned int commands;
	const char *arg;
	const char *help;
} cli_option_t;

static const cli_option_t options[] = {
	{ "storage", required_argument, OPT_STORAGE, CMD_CATALOG | CLI_CMD_GLOBAL, "URL",
	  "where backups are (default $BACKUPOP_STORAGE, else file://./backups)" },
	{ "name", required_argument, OPT_NAME, CMD_CATALOG | CLI_CMD_GLOBAL, "NAME",
	  "the catalog of backups within the storage (default \"default\")" },
	{ "input", required_argument, 'i', CLI_CMD_BACKUP, "FILE",
	  "back up FILE instead of standard input" },
	{ "recipient", required_argument, 'r', CLI_CMD_BACKUP, "AGE1...",
	  "encrypt to this age recipient (repeatable)" },
	{ "recipients-file", required_argument, OPT_RECIPIENTS_FILE, CLI_CMD_BACKUP, "FILE",
	  "encrypt to every recipient listed in FILE" },
	{ "identity", required_argument, OPT_IDENTITY, CLI_CMD_BACKUP | CMD_DECRYPT, "FILE",
	  "age identity file (backup: encrypt to its recipient; restore: decrypt)" },
	{ "passphrase-file", required_argument, OPT_PASSPHRASE_FILE,
	  CLI_CMD_BACKUP | CMD_DECRYPT, "FILE",
	  "age passphrase: the first line of FILE (never on the command line)" },
	{ "scrypt-work-factor", required_argument, OPT_SCRYPT_WORK_FACTOR, CLI_CMD_BACKUP, "N",
	  "passphrase: scrypt cost as log2(N), 10-22 (default 18, as age)" },
	{ "compression", required_argument, 'c', CLI_CMD_BACKUP, "ALG",
	  "zstd (default), gzip or none" },
	{ "level", required_argument, OPT_LEVEL, CLI_CMD_BACKUP, "N",
	  "compression level (zstd 1-19, default 3; gzip 1-9, default 6)" },
	{ "threads", required_argument, OPT_THREADS, CLI_CMD_BACKUP, "N",
	  "zstd worker threads (default: one per core)" },
	{ "tag", required_argument, 't', CLI_CMD_BACKUP, "TAG",
	  "record TAG in the manifest (repeatable)" },
	{ "output", required_argument, 'o', CLI_CMD_RESTORE | CLI_CMD_KEYGEN, "FILE",
	  "write to FILE (restore: atomically, only when verified)" },
	{ "keep-last", required_argument, OPT_KEEP_LAST, CMD_RETENTION, "N",
	  "keep the N newest backups" },
	{ "keep-hourly", required_argument, OPT_KEEP_HOURLY, CMD_RETENTION, "N",
	  "keep the newest backup of each of the last N hours that have one" },
	{ "keep-daily", required_argument, OPT_KEEP_DAILY, CMD_RETENTION, "N",
	  "... of each of the last N days" },
	{ "keep-weekly", required_argument, OPT_KEEP_WEEKLY, CMD_RETENTION, "N",
	  "... of each of the last N ISO weeks" },
	{ "keep-monthly", required_argument, OPT_KEEP_MONTHLY, CMD_RETENTION, "N",
	  "... of each of the last N months" },
	{ "keep-yearly", required_argument, OPT_KEEP_YEARLY, CMD_RETENTION, "N",
	  "... of each of the last N years" },
	{ "keep-within", required_argument, OPT_KEEP_WITHIN, CMD_RETENTION, "DURATION",
	  "keep everything newer than DURATION (e.g. 7d, 12h, 1w2d)" },
	{ "keep-tag", required_argument, OPT_KEEP_TAG, CMD_RETENTION, "TAG",
	  "keep every backup tagged TAG (repeatable)" },
	{ "older-than", required_argument, OPT_OLDER_THAN, CLI_CMD_GC, "DURATION",
	  "only what was left more than DURATION ago (default 24h; 0 for all)" },
	{ "dry-run", no_argument, 'n', CLI_CMD_PRUNE | CLI_CMD_GC, NULL,
	  "print what would be removed, remove nothing" },
	{ "url", required_argument, OPT_URL, CMD_API, "URL",
	  "the runner's API (default: http:// + api.listen of the config)" },
	{ "token-file", required_argument, OPT_TOKEN_FILE, CMD_API, "FILE",
	  "the runner's bearer token: the first line of FILE (default: the config's)" },
	{ "json", no_argument, OPT_JSON, CMD_RETENTION | CMD_API, NULL,
	  "print JSON instead of a table" },
	{ "config", required_argument, OPT_CONFIG, CMD_ANY | CLI_CMD_GLOBAL, "FILE",
	  "read settings from a YAML file (see backupop-config(5))" },
	{ "log-level", required_argument, OPT_LOG_LEVEL, CMD_ANY | CLI_CMD_GLOBAL, "LEVEL",
	  "trace, debug, info (default), warn, error or off" },
	{ "log-format", required_argument, OPT_LOG_FORMAT, CMD_ANY | CLI_CMD_GLOBAL, "FMT",
	  "text or json (default: text on a terminal, else json)" },
	{ "quiet", no_argument, 'q', CMD_ANY | CLI_CMD_GLOBAL, NULL,
	  "only errors on stderr; no progress line" },
	{ "help", no_argument, 'h', CMD_ANY | CLI_CMD_GLOBAL, NULL, "show this help" },
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

typedef struct cli_command {
	const char *name;
	unsigned int bit;
	const char *synopsis;
	const char *summary;
} cli_command_t;

static const cli_command_t commands[] = {
	{ "backup", CLI_CMD_BACKUP, "backup [OPTIONS] [-i FILE | -- COMMAND [ARGS...]]",
	  "take a backup of stdin, a file or a command's output; prints the new id" },
	{ "restore", CLI_CMD_RESTORE, "restore [OPTIONS] ID|latest [-o FILE | -- COMMAND [ARGS...]]",
	  "restore a backup to stdout, a file or a command's stdin, verifying it" },
	{ "verify", CLI_CMD_VERIFY, "verify [OPTIONS] ID|latest",
	  "read a backup completely and check its sizes, checksums and authentication" },
	{ "list", CLI_CMD_LIST, "list [OPTIONS]",
	  "list the backups, oldest first" },
	{ "prune", CLI_CMD_PRUNE, "prune [OPTIONS] --keep-...",
	  "remove the backups that no retention rule keeps" },
	{ "keygen", CLI_CMD_KEYGEN, "keygen [-o FILE]",
	  "make a new age identity; prints its recipient" },
	{ "gc", CLI_CMD_GC, "gc [OPTIONS] [--older-than DURATION] [--dry-run]",
	  "remove what interrupted backups left behind in the storage" },
	{ "runs", CLI_CMD_RUNS, "runs [--url URL --token-file FILE | --config FILE]",
	  "list the runs of a backupop-runner, through its API" },
	{ "status", CLI_CMD_STATUS, "status [--url URL --token-file FILE | --config FILE]",
	  "show a runner's last success, next run and current run" },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const cli_command_t *find_command(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static const char exit_codes_text[] =
	"Exit status:\n"
	"  0    success\n"
	"  1    the operation failed\n"
	"  2    usage or configuration error\n"
	"  3    not found (no such backup, storage or file)\n"
	"  4    integrity failure (tampered or corrupt data, checksum mismatch)\n"
	"  5    key error (no matching identity, wrong passphrase, encrypted without a key)\n"
	"  6    lock conflict (another process holds the catalog's lock)\n"
	"  7    the producer or consumer command failed\n"
	"  8    authentication failed (the database or storage refused the credentials)\n"
	"  9    cannot connect (the database or storage server cannot be reached)\n"
	"  130  interrupted (SIGINT or SIGTERM); no backup is written\n";

void cli_print_command_help(FILE *out, unsigned int command)
{
	const cli_command_t *cmd = NULL;

	for (size_t i = 0; i < N_COMMANDS; i++)
		if (commands[i].bit == command)
			cmd = &commands[i];
	if (!cmd)
		return;
	fprintf(out, "Usage: backupop %s\n\n%c%s.\n\nOptions:\n", cmd->synopsis,
		cmd->summary[0] - 'a' + 'A', cmd->summary + 1);
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const cli_option_t *o = &options[i];
		char left[64];

		if (!(o->commands & command))
			continue;
		if (o->val < 256)
			snprintf(left, sizeof(left), "-%c, --%s%s%s", o->val, o->name,
				o->arg ? " " : "", o->arg ? o->arg : "");
		else
			snprintf(left, sizeof(left), "    --%s%s%s", o->name,
				o->arg ? " " : "", o->arg ? o->arg : "");
		fprintf(out, "  %-30s %s\n", left, o->help);
	}
	fprintf(out, "\n%s\nSee backupop-%s(1).\n", exit_codes_text, cmd->name);
}

void cli_print_help(FILE *out)
{
	fputs("Usage: backupop [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS]\n\n"
		"Streaming, compressed, encrypted and verified backups.\n\nCommands:\n", out);
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fputs("  version   print the version\n"
		"  help      show help for a command (backupop help COMMAND)\n\n"
		"Global options (before or after the command):\n", out);
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const cli_option_t *o = &options[i];
		char left[64];

		if (!(o->commands & CLI_CMD_GLOBAL))
			continue;
		snprintf(left, sizeof(left), "%s%c%s--%s%s%s", o->val < 256 ? "-" : " ",
			o->val < 256 ? o->val : ' ', o->val < 256 ? ", " : "  ", o->name,
			o->arg ? " " : "", o->arg ? o->arg : "");
		fprintf(out, "  %-30s %s\n", left, o->help);
	}
	fprintf(out, "\n%s\nSee backupop(1) and backupop-config(5).\n", exit_codes_text);
}

/* getopt_long's tables for the options that apply to `mask`. */
static int build_getopt(unsigned int mask, struct option *longopts, char *shortopts)
{
	size_t n = 0, s = 0;

	shortopts[s++] = '+';   /* callers split at "--" themselves; see cli_parse_args */
	shortopts[s++] = ':';
	for (size_t i = 0; i < N_OPTIONS; i++) {
		if (!(options[i].commands & mask))
			continue;
		longopts[n].name = options[i].name;
		longopts[n].has_arg = options[i].has_arg;
		longopts[n].flag = NULL;
		longopts[n].val = options[i].val;
		n++;
		if (options[i].val < 256) {
			shortopts[s++] = (char)options[i].val;
			if (options[i].has_arg == required_argument)
				shortopts[s++] = ':';
		}
	}
	memset(&longopts[n], 0, sizeof(longopts[n]));
	shortopts[s] = '\0';
	return 0;
}

static int set_log_option(cli_t *cli, int opt, const char *value)
{
	bop_log_level_t level;

	if (opt == OPT_LOG_LEVEL) {
		if (bop_log_level_parse(&level, value) < 0)
			return cli_usage(cli, "--log-level: unknown level '%s' (trace, debug, info, "
				"warn, error or off)", value);
		bop_log_set_level(level);
	} else if (!strcmp(value, "text")) {
		bop_log_set_format(BOP_LOG_FORMAT_TEXT);
	} else if (!strcmp(value, "json")) {
		bop_log_set_format(BOP_LOG_FORMAT_JSON);
	} else {
		return cli_usage(cli, "--log-format: unknown format '%s' (text or json)", value);
	}
	return 0;
}

static int set_keep(cli_t *cli, cli_settings_t *s, int rule, const char *name, const char *value)
{
	long long n = rcfg_parse_count(value, 1000000);

	if (n < 0)
		return cli_usage(cli, "--%s: '%s' is not a count", name, value);
	s->keep[rule] = n;
	return 0;
}

static int set_string(char **field, const char *value)
{
	free(*field);
	*field = strdup(value);
	return *field ? 0 : cli_error(CLI_EXIT_FAILED, "out of memory");
}

static int set_list(cli_strlist_t *list, const char *value)
{
	return cli_strlist_add(list, value) < 0 ? cli_error(CLI_EXIT_FAILED, "out of memory") : 0;
}

static bool has_control_chars(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	}
	return false;
}

static int set_int(cli_t *cli, int *field, const char *name, const char *value, int max)
{
	long long n = rcfg_parse_count(value, max);

	if (n < 0)
		return cli_usage(cli, "--%s: '%s' is not a number from 0 to %d", name, value, max);
	*field = (int)n;
	return 0;
}

static int apply_option(cli_t *cli, cli_settings_t *s, int opt, const char *value)
{
	int64_t seconds;

	switch (opt) {
	case OPT_STORAGE: return set_string(&s->storage, value);
	case OPT_NAME:
		if (has_control_chars(value))
			return cli_usage(cli, "--name: '%s' has control characters; a catalog name "
				"is printable text", value);
		return set_string(&s->name, value);
	case OPT_CONFIG: cli->config_path = value; return 0;
	case OPT_LOG_LEVEL:
	case OPT_LOG_FORMAT: return set_log_option(cli, opt, value);
	case 'q': cli->quiet = true; bop_log_set_level(BOP_LOG_ERROR); return 0;
	case 'i': cli->input = value; return 0;
	case 'o': cli->output = value; return 0;
	case 'r': return set_list(&s->recipients, value);
	case 't': return set_list(&s->tags, value);
	case OPT_KEEP_TAG: return set_list(&s->keep_tags, value);
	case OPT_RECIPIENTS_FILE: return set_string(&s->recipients_file, value);
	case OPT_IDENTITY: return set_string(&s->identity_file, value);
	case OPT_PASSPHRASE_FILE: return set_string(&s->passphrase_file, value);
	case 'c': return set_string(&s->compression, value);
	case OPT_LEVEL: return set_int(cli, &s->level, "level", value, 22);
	case OPT_THREADS: return set_int(cli, &s->threads, "threads", value, 256);
	case OPT_SCRYPT_WORK_FACTOR:
		if (set_int(cli, &s->scrypt_work_factor, "scrypt-work-factor", value, 22))
			return CLI_EXIT_USAGE;
		if (s->scrypt_work_factor < 10)
			return cli_usage(cli, "--scrypt-work-factor: %s is too weak (10 to 22)", value);
		return 0;
	case OPT_JSON: cli->json = true; return 0;
	case OPT_URL: cli->url = value; return 0;
	case OPT_TOKEN_FILE: cli->token_file = value; return 0;
	case 'n': cli->dry_run = true; return 0;
	case OPT_KEEP_LAST: return set_keep(cli, s, CLI_KEEP_LAST, "keep-last", value);
	case OPT_KEEP_HOURLY: return set_keep(cli, s, CLI_KEEP_HOURLY, "keep-hourly", value);
	case OPT_KEEP_DAILY: return set_keep(cli, s, CLI_KEEP_DAILY, "keep-daily", value);
	case OPT_KEEP_WEEKLY: return set_keep(cli, s, CLI_KEEP_WEEKLY, "keep-weekly", value);
	case OPT_KEEP_MONTHLY: return set_keep(cli, s, CLI_KEEP_MONTHLY, "keep-monthly", value);
	case OPT_KEEP_YEARLY: return set_keep(cli, s, CLI_KEEP_YEARLY, "keep-yearly", value);
	case OPT_KEEP_WITHIN:
		seconds = rcfg_parse_duration(value);
		if (seconds < 0)
			return cli_usage(cli, "--keep-within: '%s' is not a duration "
				"(e.g. 7d, 12h, 1w2d, 90m)", value);
		s->keep_within = seconds;
		return 0;
	case OPT_OLDER_THAN:
		cli->older_than = rcfg_parse_duration(value);
		if (cli->older_than < 0)
			return cli_usage(cli, "--older-than: '%s' is not a duration "
				"(e.g. 24h, 7d, 90m, 0)", value);
		return 0;
	default:
		return cli_usage(cli, "internal error: unhandled option %d", opt);
	}
}

/* Turns getopt's '?' and ':' into a usage error naming the option; 0 otherwise. */
static int option_error(cli_t *cli, int opt, char **argv)
{
	if (opt == '?' && optopt > 0 && optopt < 256)
		return cli_usage(cli, "unknown option '-%c'", optopt);
	if (opt == '?' && optopt >= 256)
		return cli_usage(cli, "option '%s' takes no value", argv[optind - 1]);
	if (opt == '?')
		return cli_usage(cli, "unknown option '%s'", argv[optind - 1]);
	if (opt == ':')
		return cli_usage(cli, "option '%s' needs a value", argv[optind - 1]);
	return 0;
}
/* Runs getopt_long over argv[0..argc) (argv[0] is skipped, as getopt does). Returns an
 * exit code; -1 when help was printed. *next receives the index of the first operand. */
static int parse_options(cli_t *cli, cli_settings_t *flags, unsigned int mask, int argc,
	char **argv, int *next)
{
	struct option longopts[N_OPTIONS + 1];
	char shortopts[2 * N_OPTIONS + 3];
	int opt, ret;

	build_getopt(mask, longopts, shortopts);
	optind = 0;     /* 0 fully resets GNU getopt between the two passes */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		if (opt == 'h') {
			if (mask & CLI_CMD_GLOBAL)
				cli_print_help(stdout);
			else
				cli_print_command_help(stdout, cli->command);
			return -1;
		}
		ret = option_error(cli, opt, argv);
		if (!ret)
			ret = apply_option(cli, flags, opt, optarg);
		if (ret)
			return ret;
	}
	*next = optind;
	return 0;
}

/* Splits off everything after the first "--": the command to run. */
static int split_exec(cli_t *cli, int *argc, char **argv)
{
	for (int i = 1; i < *argc; i++) {
		if (strcmp(argv[i], "--"))
			continue;
		if (i + 1 == *argc)
			return cli_usage(cli, "nothing after '--': give a command to run");
		cli->exec_argv = &argv[i + 1];
		argv[i] = NULL;
		*argc = i;
		return 0;
	}
	return 0;
}

/* Command options: getopt permutes, so options may follow the operands. */
static int parse_command(cli_t *cli, cli_settings_t *flags, int argc, char **argv)
{
	struct option longopts[N_OPTIONS + 1];
	char shortopts[2 * N_OPTIONS + 3];
	int opt, ret;

	build_getopt(cli->command, longopts, shortopts);
	memmove(shortopts, shortopts + 1, strlen(shortopts));   /* drop '+': permute */
	optind = 0;     /* 0 fully resets GNU getopt between the two passes */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		if (opt == 'h') {
			cli_print_command_help(stdout, cli->command);
			return -1;
		}
		ret = option_error(cli, opt, argv);
		if (!ret)
			ret = apply_option(cli, flags, opt, optarg);
		if (ret)
			return ret;
	}
	cli->args = &argv[optind];
	cli->nargs = argc - optind;
	return 0;
}

static int resolve_settings(cli_t *cli, cli_settings_t *flags)
{
	cli_settings_t *s = &cli->settings;
	const char *env;
	int ret;

	if (cli->config_path) {
		ret = cli_config_load(s, cli->config_path);
		if (ret)
			return ret;
	}
	cli_settings_merge(s, flags);
	env = getenv("BACKUPOP_STORAGE");
	if (!s->storage && !(env && *env) && s->storage_settings.count > 0)
		return cli_error(CLI_EXIT_USAGE, "%s: storage.url required: the storage settings "
			"(%s, ...) need a storage URL (storage.url in the config, or --storage)",
			cli->config_path ? cli->config_path : "config", s->storage_settings.items[0]);
	env = getenv("BACKUPOP_STORAGE");
	if (!s->storage && (ret = set_string(&s->storage, env && *env ? env : "file://./backups")))
		return ret;
	if (!s->name && (ret = set_string(&s->name, "default")))
		return ret;
	return 0;
}

static int parse_help_command(cli_t *cli, int argc, char **argv)
{
	const cli_command_t *cmd;

	if (argc < 1) {
		cli_print_help(stdout);
		return -1;
	}
	cmd = find_command(argv[0]);
	if (!cmd)
		return cli_usage(cli, "unknown command '%s'", argv[0]);
	cli_print_command_help(stdout, cmd->bit);
	return -1;
}

/* Parses the whole command line into `cli`. Returns 0 to run the command, -1 when there is
 * nothing more to do (help, version), or an exit code. */
int cli_parse_args(cli_t *cli, int argc, char **argv)
{
	cli_settings_t flags;
	const cli_command_t *cmd;
	int ret, next = 1;

	cli_settings_init(&flags);
	if (argc > 1 && !strcmp(argv[1], "--version")) {
		printf("backupop %s (libbackupop %s)\n", BOP_VERSION_STRING, bop_version_string());
		ret = -1;
		goto out;
	}
	ret = split_exec(cli, &argc, argv);
	if (ret)
		goto out;
	ret = parse_options(cli, &flags, CLI_CMD_GLOBAL, argc, argv, &next);
	if (ret)
		goto out;
	if (next >= argc) {
		cli_print_help(stderr);
		ret = CLI_EXIT_USAGE;
		goto out;
	}
	cli->command_name = argv[next];
	if (!strcmp(argv[next], "help")) {
		ret = parse_help_command(cli, argc - next - 1, argv + next + 1);
		goto out;
	}
	if (!strcmp(argv[next], "version")) {
		printf("backupop %s (libbackupop %s)\n", BOP_VERSION_STRING, bop_version_string());
		ret = -1;
		goto out;
	}
	cmd = find_command(argv[next]);
	if (!cmd) {
		cli->command_name = NULL;
		ret = cli_usage(cli, "unknown command '%s' (try 'backupop help')", argv[next]);
		goto out;
	}
	cli->command = cmd->bit;
	ret = parse_command(cli, &flags, argc - next, argv + next);
	if (ret)
		goto out;
	if (cli->exec_argv && !(cli->command & (CLI_CMD_BACKUP | CLI_CMD_RESTORE))) {
		ret = cli_usage(cli, "'--' COMMAND is only for backup and restore");
		goto out;
	}
	ret = resolve_settings(cli, &flags);
out:
	cli_settings_clear(&flags);
	return ret;
}

void cli_free(cli_t *cli)
{
	cli_settings_clear(&cli->settings);
}
