/*
 * The "exec" engine: the backup is what a user's command writes to stdout, and a restore
 * feeds the stream to another command's stdin. Configured by JSON:
 *   {"backupCommand": ["pg_dumpall"], "restoreCommand": ["psql"], "shell": false,
 *    "env": {"PGPASSWORD": "..."}, "workingDir": "/srv", "timeoutSeconds": 3600}
 * Values of env variables whose name says they are secret (PASSWORD, SECRET, TOKEN, KEY)
 * are registered for redaction, and reach the command only through its environment.
 *
 * With "tools": {"socket": "/backupop-tools/agent.sock"} the commands run in the pod's tools
 * container instead, started by the backupop-exec-agent listening there; stdout and stdin
 * are still pipes to this process, and "workingDir", the program and the environment
 * (added to the tools container's own) are those of the tools container.
 */
#include "engine/config.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

typedef struct exec_engine {
	bop_engine_t base;
	char **backup_argv;     /* NULL-terminated; NULL when not configured */
	char **restore_argv;
	char **env;             /* "NAME=value", NULL-terminated; NULL when none */
	bool shell;
	char *cwd;
	int64_t timeout_ms;
	char *tools_socket;     /* the tools container's agent; NULL: run here */
} exec_engine_t;

static const char *const known_fields =
	"backupCommand, restoreCommand, shell, env, workingDir, timeoutSeconds, tools";

static void strv_free_wiped(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		bop__free_wiped(*p);
	free(v);
}

/* The string of `obj`, refusing embedded NULs (they would silently cut an argument). */
static int get_string(json_object *obj, const char *what, const char **out)
{
	const char *s = NULL;

	if (!json_object_is_type(obj, json_type_string))
		return bop__error(BOP_EINVAL, "%s must be a string", what);
	s = json_object_get_string(obj);
	if (strlen(s) != (size_t)json_object_get_string_len(obj))
		return bop__error(BOP_EINVAL, "%s contains a NUL character", what);
	*out = s;
	return 0;
}

static int parse_argv(json_object *val, const char *field, char ***out)
{
	size_t n;
	char **argv;
	const char *s = NULL;
	char what[64];
	int ret = 0;

	if (!json_object_is_type(val, json_type_array) || json_object_array_length(val) == 0)
		return bop__error(BOP_EINVAL, "\"%s\" must be a non-empty array of strings, e.g. [\"pg_dump\", \"mydb\"]",
			field);
	n = json_object_array_length(val);
	argv = bop__calloc(n + 1, sizeof(*argv));
	if (!argv)
		return BOP_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		snprintf(what, sizeof(what), "\"%s\"[%zu]", field, i);
		if ((ret = get_string(json_object_array_get_idx(val, i), what, &s)) < 0)
			goto fail;
		if (i == 0 && !*s) {
			ret = bop__error(BOP_EINVAL, "\"%s\"[0], the program to run, is empty", field);
			goto fail;
		}
		if (!(argv[i] = bop__strdup(s))) {
			ret = BOP_ENOMEM;
			goto fail;
		}
	}
	*out = argv;
	return 0;
fail:
	strv_free_wiped(argv);
	return ret;
}

/* Whether `name`, without underscores and case, ends in `suffix` (lower case). */
static bool name_ends_with(const char *name, const char *suffix)
{
	size_t m = strlen(suffix), n = 0;
	char tail[32];

	for (size_t i = strlen(name); i > 0 && n < m; i--) {
		if (name[i - 1] != '_')
			tail[m - ++n] = (char)tolower((unsigned char)name[i - 1]);
	}
	return n == m && !memcmp(tail, suffix, m);
}

/* A file name (PGPASSFILE, DB_PASSWORD_FILE) and a key's id (AWS_ACCESS_KEY_ID) are not
 * secrets: users need to see them. */
static bool name_is_secret(const char *name)
{
	static const char *const words[] = { "PASSWORD", "SECRET", "TOKEN", "KEY" };

	if (name_ends_with(name, "file") || name_ends_with(name, "path") ||
	    name_ends_with(name, "dir") || name_ends_with(name, "keyid"))
		return false;

	for (size_t i = 0; i < BOP_ARRAY_SIZE(words); i++)
		if (strcasestr(name, words[i]))
			return true;
	return false;
}

static bool env_name_valid(const char *name)
{
	return *name && !strchr(name, '=');
}

static int parse_env_var(exec_engine_t *e, size_t i, const char *name, json_object *val)
{
	const char *value = NULL;
	char what[300];
	int ret;

	if (!env_name_valid(name))
		return bop__error(BOP_EINVAL, "\"env\" has an invalid variable name \"%s\"", name);
	snprintf(what, sizeof(what), "\"env\".%s", name);
	if ((ret = get_string(val, what, &value)) < 0)
		return ret;
	if (name_is_secret(name) && strlen(value) >= 4 && (ret = bop_log_add_secret(value)) < 0)
		return ret;
	e->env[i] = bop__sprintf("%s=%s", name, value);
	return e->env[i] ? 0 : BOP_ENOMEM;
}

static int parse_env(exec_engine_t *e, json_object *val)
{
	size_t i = 0;
	int ret;

	if (!json_object_is_type(val, json_type_object))
		return bop__error(BOP_EINVAL, "\"env\" must be an object of strings, e.g. {\"PGHOST\": \"db\"}");
	e->env = bop__calloc((size_t)json_object_object_length(val) + 1, sizeof(*e->env));
	if (!e->env)
		return BOP_ENOMEM;
	json_object_object_foreach(val, name, var) {
		if ((ret = parse_env_var(e, i++, name, var)) < 0)
			return ret;
	}
	return 0;
}

static int parse_timeout(exec_engine_t *e, json_object *val)
{
	int64_t seconds;

	if (!json_object_is_type(val, json_type_int))
		return bop__error(BOP_EINVAL, "\"timeoutSeconds\" must be a whole number of seconds (0: no limit)");
	seconds = json_object_get_int64(val);
	if (seconds < 0 || seconds > INT64_MAX / 1000)
		return bop__error(BOP_EINVAL, "\"timeoutSeconds\" must be between 0 (no limit) and %lld",
			(long long)(INT64_MAX / 1000));
	e->timeout_ms = seconds * 1000;
	return 0;
}

static int parse_tools(exec_engine_t *e, json_object *val)
{
	const char *s = NULL;
	int ret;

	if (!json_object_is_type(val, json_type_object))
		return bop__error(BOP_EINVAL, "\"tools\" must be an object, e.g. {\"socket\": \"/backupop-tools/agent.sock\"}");
	json_object_object_foreach(val, name, v) {
		if (strcmp(name, "socket"))
			return bop__error(BOP_EINVAL, "\"tools\" has an unknown field \"%s\" (known: socket)", name);
		if ((ret = get_string(v, "\"tools\".socket", &s)) < 0)
			return ret;
		if (*s != '/')
			return bop__error(BOP_EINVAL, "\"tools\".socket must be an absolute path, e.g. /backupop-tools/agent.sock");
		free(e->tools_socket);
		if (!(e->tools_socket = bop__strdup(s)))
			return BOP_ENOMEM;
	}
	if (!e->tools_socket)
		return bop__error(BOP_EINVAL, "\"tools\" needs \"socket\", the path of the tools container's agent");
	return 0;
}

static int parse_field(void *ud, const char *key, json_object *val)
{
	exec_engine_t *e = ud;
	const char *s = NULL;
	int ret;

	if (!strcmp(key, "backupCommand"))
		return parse_argv(val, key, &e->backup_argv);
	if (!strcmp(key, "restoreCommand"))
		return parse_argv(val, key, &e->restore_argv);
	if (!strcmp(key, "env"))
		return parse_env(e, val);
	if (!strcmp(key, "timeoutSeconds"))
		return parse_timeout(e, val);
	if (!strcmp(key, "tools"))
		return parse_tools(e, val);
	if (!strcmp(key, "shell")) {
		if (!json_object_is_type(val, json_type_boolean))
			return bop__error(BOP_EINVAL, "\"shell\" must be true or false");
		e->shell = json_object_get_boolean(val);
		return 0;
	}
	if (!strcmp(key, "workingDir")) {
		if ((ret = get_string(val, "\"workingDir\"", &s)) < 0)
			return ret;
		if (!*s)
			return bop__error(BOP_EINVAL, "\"workingDir\" is empty");
		e->cwd = bop__strdup(s);
		return e->cwd ? 0 : BOP_ENOMEM;
	}
	return bop__engine_unknown_field(NULL, key, known_fields);
}


/* ---- validate ---- */

static bool is_executable_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* The PATH the command will see: the configured one, else ours. */
static const char *command_path(const exec_engine_t *e)
{
	const char *path = getenv("PATH");

	for (char **p = e->env; p && *p; p++)
		if (!strncmp(*p, "PATH=", 5))
			return *p + 5;
	return path ? path : DEFAULT_PATH;
}

static bool found_in_path(const char *prog, const char *path)
{
	const char *dir = path;
	bool found = false;

	while (!found) {
		const char *end = strchrnul(dir, ':');
		char *candidate = bop__sprintf("%.*s/%s", end == dir ? 1 : (int)(end - dir),
			end == dir ? "." : dir, prog);

		found = candidate && is_executable_file(candidate);
		free(candidate);
		if (!*end)
			break;
		dir = end + 1;
	}
	return found;
}

static int check_program(const exec_engine_t *e, const char *field, char **argv)
{
	const char *prog;
	char *rel = NULL;
	bool ok;

	if (!argv)
		return 0;
	prog = e->shell ? "/bin/sh" : argv[0];
	if (strchr(prog, '/')) {
		if (*prog != '/' && e->cwd && !(rel = bop__sprintf("%s/%s", e->cwd, prog)))
			return BOP_ENOMEM;
		ok = is_executable_file(rel ? rel : prog);
		free(rel);
		if (!ok)
			return bop__error(BOP_ENOTFOUND, "%s: %s is not an executable file", field, prog);
		return 0;
	}
	if (!found_in_path(prog, command_path(e)))
		return bop__error(BOP_ENOTFOUND, "%s: program \"%s\" was not found in PATH (%s); install it or give its full path",
			field, prog, command_path(e));
	return 0;
}

static int exec_validate(bop_engine_t *base)
{
	exec_engine_t *e = (exec_engine_t *)base;
	struct stat st;
	int ret;

	if (!e->backup_argv && !e->restore_argv)
		return bop__error(BOP_EINVAL, "neither \"backupCommand\" nor \"restoreCommand\" is set");
	/* The programs and the directory are in the tools container, which may still be
	 * starting: a missing one is reported when the command runs. */
	if (e->tools_socket)
		return 0;
	if (e->cwd && (stat(e->cwd, &st) < 0 || !S_ISDIR(st.st_mode)))
		return bop__error(BOP_ENOTFOUND, "\"workingDir\" %s is not a directory", e->cwd);
	if ((ret = check_program(e, "backupCommand", e->backup_argv)) < 0)
		return ret;
	return check_program(e, "restoreCommand", e->restore_argv);
}

/* ---- backup and restore ---- */

static void command_options(const exec_engine_t *e, char **argv, bop_command_options_t *opts)
{
	bop_command_options_init(opts, BOP_COMMAND_OPTIONS_VERSION);
	opts->argv = (const char *const *)argv;
	opts->env = (const char *const *)e->env;
	opts->shell = e->shell;
	opts->cwd = e->cwd;
	opts->timeout_ms = e->timeout_ms;
}

static int exec_backup(bop_engine_t *base, bop_source_t **out)
{
	exec_engine_t *e = (exec_engine_t *)base;
	bop_command_options_t opts;

	if (!e->backup_argv)
		return bop__error(BOP_EINVAL, "the exec engine has no \"backupCommand\"; add one to its configuration, e.g. \"backupCommand\": [\"pg_dumpall\"]");
	command_options(e, e->backup_argv, &opts);
	if (e->tools_socket)
		return bop__source_command_agent_new(out, &opts, e->tools_socket);
	return bop_source_command_new(out, &opts);
}

static int exec_restore(bop_engine_t *base, bop_sink_t **out)
{
	exec_engine_t *e = (exec_engine_t *)base;
	bop_command_options_t opts;

	if (!e->restore_argv)
		return bop__error(BOP_EINVAL, "the exec engine has no \"restoreCommand\"; add one to its configuration, e.g. \"restoreCommand\": [\"psql\"]");
	command_options(e, e->restore_argv, &opts);
	if (e->tools_socket)
		return bop__sink_command_agent_new(out, &opts, e->tools_socket);
	return bop_sink_command_new(out, &opts);
}

static void exec_free(bop_engine_t *base)
{
	exec_engine_t *e = (exec_engine_t *)base;

	strv_free_wiped(e->backup_argv);
	strv_free_wiped(e->restore_argv);
	strv_free_wiped(e->env);
	free(e->cwd);
	free(e->tools_socket);
	free(e);
}

const bop__engine_kind_t bop__engine_exec_kind = {
	.ops = BOP_ENGINE_INIT(.validate = exec_validate, .backup = exec_backup,
		.restore = exec_restore, .free = exec_free),
	.size = sizeof(exec_engine_t),
	.example = "{\"backupCommand\": [\"pg_dump\"]}",
	.field = parse_field,
};
