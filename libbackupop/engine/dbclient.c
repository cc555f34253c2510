/*
 * Helpers shared by the postgres and mysql engines; see dbclient.h.
 */
#include "engine/dbclient.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CAPTURE_MAX (64u << 10)
#define QUERY_MAX (16u << 20)
#define PASSWORD_FILE_MAX (64u << 10)
#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"


int bop__db_get_string(json_object *val, const char *field, char **out)
{
	const char *s;

	if (!json_object_is_type(val, json_type_string))
		return bop__error(BOP_EINVAL, "\"%s\" must be a string", field);
	s = json_object_get_string(val);
	if (strlen(s) != (size_t)json_object_get_string_len(val))
		return bop__error(BOP_EINVAL, "\"%s\" contains a NUL character", field);
	if (!*s)
		return bop__error(BOP_EINVAL, "\"%s\" is empty", field);
	free(*out);
	*out = bop__strdup(s);
	return *out ? 0 : BOP_ENOMEM;
}

int bop__db_get_bool(json_object *val, const char *field, bool *out)
{
	if (!json_object_is_type(val, json_type_boolean))
		return bop__error(BOP_EINVAL, "\"%s\" must be true or false", field);
	*out = json_object_get_boolean(val);
	return 0;
}

int bop__db_get_port(json_object *val, const char *field, int *out)
{
	int64_t port;

	if (!json_object_is_type(val, json_type_int))
		return bop__error(BOP_EINVAL, "\"%s\" must be a port number (1-65535)", field);
	port = json_object_get_int64(val);
	if (port < 1 || port > 65535)
		return bop__error(BOP_EINVAL, "\"%s\" must be a port number (1-65535), not %lld", field,
			(long long)port);
	*out = (int)port;
	return 0;
}

int bop__db_get_timeout(json_object *val, const char *field, int64_t *ms)
{
	int64_t seconds;

	if (!json_object_is_type(val, json_type_int))
		return bop__error(BOP_EINVAL, "\"%s\" must be a whole number of seconds (0: no limit)",
			field);
	seconds = json_object_get_int64(val);
	if (seconds < 0 || seconds > INT64_MAX / 1000)
		return bop__error(BOP_EINVAL, "\"%s\" must be between 0 (no limit) and %lld", field,
			(long long)(INT64_MAX / 1000));
	*ms = seconds * 1000;
	return 0;
}

int bop__db_get_strv(json_object *val, const char *field, char ***out)
{
	size_t n;
	char **v;
	char what[128];
	int ret;

	if (!json_object_is_type(val, json_type_array))
		return bop__error(BOP_EINVAL, "\"%s\" must be an array of strings, e.g. [\"--verbose\"]",
			field);
	n = json_object_array_length(val);
	v = bop__calloc(n + 1, sizeof(*v));
	if (!v)
		return BOP_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		snprintf(what, sizeof(what), "%s[%zu]", field, i);
		if ((ret = bop__db_get_string(json_object_array_get_idx(val, i), what, &v[i])) < 0) {
			bop__strv_free(v);
			return ret;
		}
	}
	bop__strv_free(*out);
	*out = v;
	return 0;
}

int bop__db_read_password_file(const char *path, const char *field, char **out)
{
	char *text = NULL;
	size_t len = 0;
	int ret;

	ret = bop__read_file(path, &text, &len, PASSWORD_FILE_MAX);
	if (ret < 0)
		return bop__error_wrap("\"%s\"", field);
	text[strcspn(text, "\r\n")] = '\0';
	if (!*text) {
		free(text);
		return bop__error(BOP_EINVAL, "\"%s\": the first line of %s is empty", field, path);
	}
	if (strlen(text) >= 4 && (ret = bop_log_add_secret(text)) < 0) {
		bop__wipe(text, len);
		free(text);
		return ret;
	}
	*out = text;
	return 0;
}

int bop__db_get_ssl_mode(json_object *val, const char *field, char **out)
{
	static const char *const modes[] = {
		"disable", "allow", "prefer", "require", "verify-ca", "verify-full",
	};
	int ret;

	if ((ret = bop__db_get_string(val, field, out)) < 0)
		return ret;
	for (size_t i = 0; i < BOP_ARRAY_SIZE(modes); i++)
		if (!strcmp(*out, modes[i]))
			return 0;
	return bop__error(BOP_EINVAL, "\"%s\" must be one of disable, allow, prefer, require, "
		"verify-ca, verify-full, not \"%s\"", field, *out);
}

bool bop__db_settings_field(bop__db_settings_t *s, const char *key, json_object *val, int *ret)
{
	if (!strcmp(key, "host"))
		*ret = bop__db_get_string(val, key, &s->host);
	else if (!strcmp(key, "port")) {
		s->port_set = true;
		*ret = bop__db_get_port(val, key, &s->port);
	} else if (!strcmp(key, "user"))
		*ret = bop__db_get_string(val, key, &s->user);
	else if (!strcmp(key, "password"))
		*ret = bop__db_get_string(val, key, &s->password);
	else if (!strcmp(key, "passwordFile"))
		*ret = bop__db_get_string(val, key, &s->password_file);
	else if (!strcmp(key, "database"))
		*ret = bop__db_get_string(val, key, &s->database);
	else if (!strcmp(key, "timeoutSeconds"))
		*ret = bop__db_get_timeout(val, key, &s->timeout_ms);
	else
		return false;
	return true;
}

bool bop__db_dump_field(bop__db_settings_t *s, const char *key, json_object *val, int *ret)
{
	if (!strcmp(key, "allDatabases"))
		*ret = bop__db_get_bool(val, key, &s->all_databases);
	else if (!strcmp(key, "extraArgs"))
		*ret = bop__db_get_strv(val, key, &s->extra_args);
	else if (!strcmp(key, "binDir"))
		*ret = bop__db_get_string(val, key, &s->bin_dir);
	else
		return false;
	return true;
}

int bop__db_settings_load_password(bop__db_settings_t *s)
{
	int ret;

	if (s->password && s->password_file)
		return bop__error(BOP_EINVAL, "\"password\" and \"passwordFile\" exclude each other");
	if (s->password_file &&
			(ret = bop__db_read_password_file(s->password_file, "passwordFile", &s->password)) < 0)
		return ret;
	if (s->password && strlen(s->password) >= 4 && (ret = bop_log_add_secret(s->password)) < 0)
		return ret;
	return 0;
}

void bop__db_settings_clear(bop__db_settings_t *s)
{
	free(s->host);
	free(s->user);
	bop__free_wiped(s->password);
	free(s->password_file);
	free(s->database);
	bop__strv_free(s->extra_args);
	free(s->bin_dir);
	memset(s, 0, sizeof(*s));
}

/* ---- argument vectors ---- */

static void argv_push(bop__db_argv_t *a, char *arg)
{
	if (!arg) {
		a->err = a->err ? a->err : BOP_ENOMEM;
		return;
	}
	if (a->n + 2 > a->cap) {
		size_t ncap = a->cap ? a->cap * 2 : 16;
		char **nv = realloc(a->v, ncap * sizeof(*nv));

		if (!nv) {
			free(arg);
			a->err = bop__error_oom();
			return;
		}
		a->v = nv;
		a->cap = ncap;
	}
	a->v[a->n++] = arg;
	a->v[a->n] = NULL;
}

void bop__db_argv_add(bop__db_argv_t *a, const char *arg)
{
	argv_push(a, bop__strdup(arg));
}

void bop__db_argv_addf(bop__db_argv_t *a, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	argv_push(a, s);
}

void bop__db_argv_add_all(bop__db_argv_t *a, char *const *args)
{
	for (; args && *args; args++)
		bop__db_argv_add(a, *args);
}

void bop__db_argv_free(bop__db_argv_t *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	memset(a, 0, sizeof(*a));
}

/* ---- finding tools ---- */

static bool is_executable_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* `dir`/`name` if it is an executable file, else NULL (ENOMEM is remembered in *err). */
static char *tool_in_dir(const char *dir, size_t dir_len, const char *name, int *err)
{
	char *path = bop__sprintf("%.*s/%s", (int)dir_len, dir, name);

	if (!path) {
		*err = BOP_ENOMEM;
		return NULL;
	}
	if (is_executable_file(path))
		return path;
	free(path);
	return NULL;
}

static char *tool_in_path(const char *name, int *err)
{
	const char *path = getenv("PATH"), *dir;
	char *found = NULL;

	dir = path && *path ? path : DEFAULT_PATH;
	while (!found && !*err) {
		const char *end = strchrnul(dir, ':');

		if (end > dir)
			found = tool_in_dir(dir, (size_t)(end - dir), name, err);
		if (!*end)
			break;
		dir = end + 1;
	}
	return found;
}

static int version_desc(const void *a, const void *b)
{
	return strverscmp(*(char *const *)b, *(char *const *)a);
}

static char *tool_in_glob(const char *pattern, const char *name, int *err)
{
	glob_t g;
	char *found = NULL;

	if (!pattern || glob(pattern, GLOB_NOSORT, NULL, &g) != 0)
		return NULL;
	qsort(g.gl_pathv, g.gl_pathc, sizeof(*g.gl_pathv), version_desc);
	for (size_t i = 0; i < g.gl_pathc && !found && !*err; i++)
		found = tool_in_dir(g.gl_pathv[i], strlen(g.gl_pathv[i]), name, err);
	globfree(&g);
	return found;
}

int bop__db_find_tool(const char *bin_dir, const char *const *names, const char *fallback_glob,
	char **out)
{
	int err = 0;

	*out = NULL;
	for (size_t i = 0; names[i] && !*out && !err; i++) {
		if (bin_dir)
			*out = tool_in_dir(bin_dir, strlen(bin_dir), names[i], &err);
		else if (!(*out = tool_in_path(names[i], &err)) && !err)
			*out = tool_in_glob(fallback_glob, names[i], &err);
	}
	if (err)
		return bop__error_oom();
	if (*out)
		return 0;
	if (bin_dir)
		return bop__error(BOP_ENOTFOUND, "%s%s was not found in \"binDir\" %s",
			names[0], names[1] ? " (or an alternative)" : "", bin_dir);
	return bop__error(BOP_ENOTFOUND, "%s%s was not found in PATH%s%s; install the client tools or set \"binDir\"",
		names[0], names[1] ? " (or an alternative)" : "", fallback_glob ? " nor in " : "",
		fallback_glob ? fallback_glob : "");
}

/* ---- wrapped sources and sinks ---- */

static bool login_refused(const char *message)
{
	static const char *const signs[] = {
		"authentication failed",        /* PostgreSQL: password, scram, md5 */
		"no password supplied",         /* PostgreSQL: a password is required */
		"Access denied for user",       /* MySQL and MariaDB */
	};

	for (size_t i = 0; i < BOP_ARRAY_SIZE(signs); i++)
		if (strstr(message, signs[i]))
			return true;
	return false;
}

static bool server_unreachable(const char *message)
{
	static const char *const signs[] = {
		"Is the server running",        /* PostgreSQL: refused, no socket, no route */
		"Can't connect to",             /* MySQL and MariaDB */
	};

	for (size_t i = 0; i < BOP_ARRAY_SIZE(signs); i++)
		if (strstr(message, signs[i]))
			return true;
	return false;
}

/* Adds what the tool's last line means for the user: a refused login becomes BOP_EAUTH, a
 * server that cannot be reached BOP_ECONNECT (backupop(1) gives each its exit status). */
static int map_failure(int ret, const char *server)
{
	bool auth, unreachable;
	char *copy;

	if (ret >= 0)
		return ret;
	auth = login_refused(bop_error_last());
	unreachable = !auth && server && server_unreachable(bop_error_last());
	if (!auth && !unreachable)
		return ret;
	copy = bop__strdup(bop_error_last());
	if (!copy)
		return ret;
	if (auth)
		ret = bop__error(BOP_EAUTH, "%s (the database refused the login: check the user and password)",
			copy);
	else
		ret = bop__error(BOP_ECONNECT, "%s (cannot reach the database server %s: is it running, and are host and port right?)",
			copy, server);
	free(copy);
	return ret;
}

/* ---- running tools ---- */

/* Runs the command and returns its stdout, NUL-terminated. What is beyond `max` bytes is
 * read and dropped when `truncate`, else refused. */
static int run_capture(const bop_command_options_t *opts, const char *server, size_t max,
	bool truncate, char **out)
{
	bop_source_t *src = NULL;
	char *buf = NULL, discard[4096];
	size_t len = 0, cap = 0, got = 0;
	int ret;

	*out = NULL;
	ret = bop_source_command_new(&src, opts);
	while (ret == 0) {
		bool full = len == max;

		if (full && !truncate) {
			ret = bop__error(BOP_EFORMAT, "%s printed more than %zu bytes", opts->argv[0],
				max);
			break;
		}
		if (!full && len == cap) {
			size_t ncap = cap ? (cap * 2 > max ? max : cap * 2) : 4096;
			char *nbuf = realloc(buf, ncap + 1);

			if (!nbuf) {
				ret = bop__error_oom();
				break;
			}
			buf = nbuf;
			cap = ncap;
		}
		ret = bop_source_read(src, full ? discard : buf + len,
			full ? sizeof(discard) : cap - len, &got);
		if (ret < 0 || got == 0)
			break;
		if (!full)
			len += got;
	}
	if (ret == 0)
		ret = bop_source_close(src);
	bop_source_free(src);
	if (ret == 0 && !buf && !(buf = malloc(1)))
		ret = bop__error_oom();
	if (ret < 0) {
		free(buf);
		return map_failure(ret, server);
	}
	buf[len] = '\0';
	*out = buf;
	return 0;
}

int bop__db_run_capture(const bop_command_options_t *opts, const char *server, char **out)
{
	return run_capture(opts, server, CAPTURE_MAX, true, out);
}

int bop__db_run_query(const bop_command_options_t *opts, const char *server, char **out)
{
	return run_capture(opts, server, QUERY_MAX, false, out);
}

/* A command source or sink, wrapped (see bop__db_source_new()). */
typedef struct db_wrap {
	union {
		bop_source_t source;
		bop_sink_t sink;
	} base;                 /* first: what the caller holds */
	bop_source_t *source;   /* the command: one of these two */
	bop_sink_t *sink;
	char *server;
	bop__db_cleanup_fn cleanup;
	void *payload;
	char *failure_note;     /* sink: added to the error of a failed restore, once */
	bool started;           /* sink: the tool was given data, the target may have changed */
} db_wrap_t;

static int db_source_read(bop_source_t *base, void *buf, size_t cap, size_t *got)
{
	db_wrap_t *w = (db_wrap_t *)base;

	return map_failure(bop_source_read(w->source, buf, cap, got), w->server);
}

static int db_source_close(bop_source_t *base)
{
	db_wrap_t *w = (db_wrap_t *)base;

	return map_failure(bop_source_close(w->source), w->server);
}

/* Adds the failure note to the error being reported (the first time only). */
static int add_failure_note(db_wrap_t *w, int ret)
{
	char *copy;

	if (ret >= 0 || !w->failure_note || !w->started)
		return ret;
	copy = bop__strdup(bop_error_last());
	if (copy)
		ret = bop__error(ret, "%s; %s", copy, w->failure_note);
	free(copy);
	free(w->failure_note);
	w->failure_note = NULL;
	return ret;
}

static int db_sink_write(bop_sink_t *base, const void *buf, size_t len)
{
	db_wrap_t *w = (db_wrap_t *)base;

	w->started = true;
	return add_failure_note(w, map_failure(bop_sink_write(w->sink, buf, len), w->server));
}

static int db_sink_commit(bop_sink_t *base)
{
	db_wrap_t *w = (db_wrap_t *)base;

	return add_failure_note(w, map_failure(bop_sink_commit(w->sink), w->server));
}

/* Aborted because of a failure elsewhere (corrupt data): that failure's message gets the
 * note, since the tool may already have changed the target. */
static void db_sink_abort(bop_sink_t *base)
{
	db_wrap_t *w = (db_wrap_t *)base;
	int code = bop_error_last_code();

	bop_sink_abort(w->sink);
	add_failure_note(w, code < 0 ? code : BOP_ERROR);
}

static void wrap_free(db_wrap_t *w)
{
	if (!w)
		return;
	bop_source_free(w->source);
	bop_sink_free(w->sink);
	free(w->server);
	free(w->failure_note);
	if (w->cleanup)
		w->cleanup(w->payload);
	free(w);
}

static void db_source_free(bop_source_t *base)
{
	wrap_free((db_wrap_t *)base);
}

static void db_sink_free(bop_sink_t *base)
{
	wrap_free((db_wrap_t *)base);
}

/* Starts the command as a sink (or a source) and wraps it. */
static int wrap_new(db_wrap_t **out, bool is_sink, const bop_command_options_t *opts,
	const char *server, const char *failure_note, bop__db_cleanup_fn cleanup, void *payload)
{
	db_wrap_t *w = bop__calloc(1, sizeof(*w));
	int ret;

	*out = NULL;
	if (!w) {
		if (cleanup)
			cleanup(payload);
		return BOP_ENOMEM;
	}
	w->cleanup = cleanup;
	w->payload = payload;
	w->server = bop__strdup(server);
	w->failure_note = failure_note ? bop__strdup(failure_note) : NULL;
	if (!w->server || (failure_note && !w->failure_note)) {
		ret = BOP_ENOMEM;
	} else if (is_sink) {
		w->base.sink = (bop_sink_t)BOP_SINK_INIT(.write = db_sink_write, .commit = db_sink_commit,
			.abort = db_sink_abort, .free = db_sink_free);
		ret = bop_sink_command_new(&w->sink, opts);
	} else {
		w->base.source = (bop_source_t)BOP_SOURCE_INIT(.read = db_source_read,
			.close = db_source_close, .free = db_source_free);
		ret = bop_source_command_new(&w->source, opts);
	}
	if (ret < 0) {
		wrap_free(w);
		return ret;
	}
	*out = w;
	return 0;
}

int bop__db_source_new(bop_source_t **out, const bop_command_options_t *opts,
	const char *server, bop__db_cleanup_fn cleanup, void *payload)
{
	db_wrap_t *w;
	int ret = wrap_new(&w, false, opts, server, NULL, cleanup, payload);

	*out = ret == 0 ? &w->base.source : NULL;
	return ret;
}

int bop__db_sink_new(bop_sink_t **out, const bop_command_options_t *opts,
	const char *server, const char *failure_note, bop__db_cleanup_fn cleanup, void *payload)
{
	db_wrap_t *w;
	int ret = wrap_new(&w, true, opts, server, failure_note, cleanup, payload);

	*out = ret == 0 ? &w->base.sink : NULL;
	return ret;
}

/* ---- credentials files ---- */

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int bop__db_secret_file_new(const char *prefix, const char *name, const char *content,
	char **dir, char **path)
{
	const char *tmp = getenv("TMPDIR");
	int fd, ret = 0;

	*path = NULL;
	*dir = bop__sprintf("%s/%s-XXXXXX", tmp && *tmp == '/' ? tmp : "/tmp", prefix);
	if (!*dir)
		return BOP_ENOMEM;
	if (!mkdtemp(*dir)) {
		ret = bop__error_errno(BOP_EIO, errno, "cannot create a private directory %s", *dir);
		free(*dir);
		*dir = NULL;
		return ret;
	}
	*path = bop__sprintf("%s/%s", *dir, name);
	if (!*path) {
		ret = BOP_ENOMEM;
		goto fail;
	}
	fd = open(*path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		ret = bop__error_errno(BOP_EIO, errno, "cannot create %s", *path);
		goto fail;
	}
	if (write_all(fd, content, strlen(content)) < 0) {
		ret = bop__error_errno(BOP_EIO, errno, "cannot write %s", *path);
		close(fd);
		goto fail;
	}
	if (close(fd) < 0) {
		ret = bop__error_errno(BOP_EIO, errno, "cannot write %s", *path);
		goto fail;
	}
	return 0;
fail:
	bop__db_secret_file_remove(*dir, *path);
	*dir = NULL;
	*path = NULL;
	return ret;
}

void bop__db_secret_file_remove(char *dir, char *path)
{
	if (path && unlink(path) < 0 && errno != ENOENT)
		bop__log(BOP_LOG_WARN, "engine", "cannot remove the credentials file %s: %s", path,
			strerror(errno));
	if (dir && rmdir(dir) < 0 && errno != ENOENT)
		bop__log(BOP_LOG_WARN, "engine", "cannot remove the directory %s: %s", dir,
			strerror(errno));
	free(path);
	free(dir);
}
