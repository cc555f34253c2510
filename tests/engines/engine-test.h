/*
 * Helpers shared by the database engine tests: temporary directories, running shell
 * commands, a file:// catalog with age keys, a slow source, finding the dump tool's
 * process, and capturing the log.
 */
#ifndef BOP_TESTS_ENGINE_TEST_H
#define BOP_TESTS_ENGINE_TEST_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"

/* ---- files ---- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(path);
}

__attribute__((unused))
static void remove_tree(const char *dir)
{
	if (dir)
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int files_found;

static int count_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)path; (void)sb; (void)ftw;
	if (flag == FTW_F)
		files_found++;
	return 0;
}

/* Regular files below `dir` (0 when it does not exist). */
__attribute__((unused))
static int count_files(const char *dir)
{
	files_found = 0;
	nftw(dir, count_entry, 16, FTW_PHYS);
	return files_found;
}

__attribute__((unused, format(printf, 1, 2)))
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0) {
		perror("vasprintf");
		exit(2);
	}
	va_end(ap);
	return s;
}

__attribute__((unused))
static int write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f);
}

/* Flips one byte in the middle of `path`. */
__attribute__((unused))
static int flip_middle_byte(const char *path)
{
	struct stat st;
	unsigned char c;
	int fd = open(path, O_RDWR);
	int ret = -1;

	if (fd < 0 || fstat(fd, &st) < 0)
		goto out;
	if (pread(fd, &c, 1, st.st_size / 2) != 1)
		goto out;
	c ^= 0x5a;
	if (pwrite(fd, &c, 1, st.st_size / 2) == 1)
		ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

/* ---- shell commands ---- */

/* Runs `cmd` with /bin/sh; its stdout, trailing newlines removed (NULL if it failed; its
 * stderr goes to ours, as TAP comments would be nicer but stderr is kept by meson). */
__attribute__((unused))
static char *run_output(const char *cmd)
{
	FILE *p = popen(cmd, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	int status;

	if (!p)
		return NULL;
	for (;;) {
		if (cap - len < 65536) {
			cap = cap ? cap * 2 : 131072;
			buf = realloc(buf, cap + 1);
			if (!buf)
				exit(2);
		}
		n = fread(buf + len, 1, cap - len, p);
		if (n == 0)
			break;
		len += n;
	}
	status = pclose(p);
	while (len > 0 && buf[len - 1] == '\n')
		len--;
	buf[len] = '\0';
	if (status != 0) {
		diag("command failed (status %d): %s", status, cmd);
		free(buf);
		return NULL;
	}
	return buf;
}

/* ---- catalog on file:// with age keys ---- */

typedef struct cat_env {
	char *store;            /* the storage directory */
	bop_storage_t *storage;
	bop_keys_t *keys;
} cat_env_t;

__attribute__((unused))
static int cat_env_init(cat_env_t *c, const char *tmp)
{
	char *identity = NULL, *recipient = NULL, *url, *idfile;
	int ret;

	c->store = xasprintf("%s/store", tmp);
	url = xasprintf("file://%s", c->store);
	idfile = xasprintf("%s/identity.txt", tmp);
	ret = bop_storage_open(&c->storage, url, NULL);
	if (ret == 0)
		ret = bop_age_keygen(&identity, &recipient);
	if (ret == 0 && write_text(idfile, identity) != 0)
		ret = -1;
	if (ret == 0)
		ret = bop_keys_new(&c->keys);
	if (ret == 0)
		ret = bop_keys_add_identity_file(c->keys, idfile);
	if (ret < 0)
		diag("cannot set up the catalog: %s", bop_error_last());
	bop_free(identity);
	bop_free(recipient);
	free(idfile);
	free(url);
	return ret;
}

__attribute__((unused))
static void cat_env_free(cat_env_t *c)
{
	bop_keys_free(c->keys);
	bop_storage_free(c->storage);
	free(c->store);
}

/* Files left under the catalog `name`. */
__attribute__((unused))
static int catalog_files(const cat_env_t *c, const char *name)
{
	char *dir = xasprintf("%s/%s", c->store, name);
	int n = count_files(dir);

	free(dir);
	return n;
}

/* Backs up `src` (taken) into catalog `name` with zstd + age. */
__attribute__((unused))
static int catalog_backup(const cat_env_t *c, const char *name, const char *engine,
	bop_source_t *src, bop_manifest_t **m)
{
	bop_backup_options_t opts;
	bop_catalog_t *cat = NULL;
	int ret;

	bop_backup_options_init(&opts, BOP_BACKUP_OPTIONS_VERSION);
	opts.compression = BOP_COMPRESSION_ZSTD;
	opts.keys = c->keys;
	opts.engine = engine;
	ret = bop_catalog_open(&cat, c->storage, name);
	if (ret == 0)
		ret = bop_catalog_backup(cat, m, src, &opts);
	else
		bop_source_free(src);
	bop_catalog_free(cat);
	return ret;
}

/* Restores backup `m` of catalog `name` through `sink` (taken). */
__attribute__((unused))
static int catalog_restore(const cat_env_t *c, const char *name, const bop_manifest_t *m,
	bop_sink_t *sink)
{
	bop_restore_options_t opts;
	bop_catalog_t *cat = NULL;
	int ret;

	bop_restore_options_init(&opts, BOP_RESTORE_OPTIONS_VERSION);
	opts.keys = c->keys;
	ret = bop_catalog_open(&cat, c->storage, name);
	if (ret == 0)
		ret = bop_catalog_restore(cat, m, sink, &opts);
	else
		bop_sink_free(sink);
	bop_catalog_free(cat);
	return ret;
}

/* Engine backup straight into the catalog. */
__attribute__((unused))
static int engine_backup(const cat_env_t *c, const char *name, const char *engine_name,
	const char *config, bop_manifest_t **m)
{
	bop_engine_t *e = NULL;
	bop_source_t *src = NULL;
	int ret;

	ret = bop_engine_open(&e, engine_name, config);
	if (ret == 0)
		ret = bop_engine_backup(e, &src);
	if (ret == 0)
		ret = catalog_backup(c, name, engine_name, src, m);
	bop_engine_free(e);
	return ret;
}

__attribute__((unused))
static int engine_restore(const cat_env_t *c, const char *name, const char *engine_name,
	const char *config, const bop_manifest_t *m)
{
	bop_engine_t *e = NULL;
	bop_sink_t *sink = NULL;
	int ret;

	ret = bop_engine_open(&e, engine_name, config);
	if (ret == 0)
		ret = bop_engine_restore(e, &sink);
	if (ret == 0)
		ret = catalog_restore(c, name, m, sink);
	bop_engine_free(e);
	return ret;
}

typedef struct membuf {
	char *data;
	size_t len;
} membuf_t;

static int membuf_write(const void *buf, size_t len, void *payload)
{
	membuf_t *b = payload;

	b->data = realloc(b->data, b->len + len + 1);
	if (!b->data)
		exit(2);
	memcpy(b->data + b->len, buf, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

/* Backs up with the engine and restores the stream into memory (NUL-terminated). */
__attribute__((unused))
static int engine_backup_text(const cat_env_t *c, const char *name, const char *engine_name,
	const char *config, membuf_t *out)
{
	bop_manifest_t *m = NULL;
	bop_sink_t *sink = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = engine_backup(c, name, engine_name, config, &m);
	if (ret == 0)
		ret = bop_sink_callback_new(&sink, membuf_write, out);
	if (ret == 0)
		ret = catalog_restore(c, name, m, sink);
	bop_manifest_free(m);
	return ret;
}

/* The stored object of backup `m`. */
__attribute__((unused))
static char *object_path(const cat_env_t *c, const bop_manifest_t *m)
{
	return xasprintf("%s/%s", c->store, bop_manifest_object_key(m));
}

/* ---- a slow source: at most 64 KiB per read, with a pause ---- */

typedef struct slow_source {
	bop_source_t base;
	bop_source_t *inner;
	long pause_us;
} slow_source_t;

static int slow_read(bop_source_t *base, void *buf, size_t cap, size_t *got)
{
	slow_source_t *s = (slow_source_t *)base;

	usleep((useconds_t)s->pause_us);
	return bop_source_read(s->inner, buf, cap > 65536 ? 65536 : cap, got);
}

static int slow_close(bop_source_t *base)
{
	return bop_source_close(((slow_source_t *)base)->inner);
}

static void slow_free(bop_source_t *base)
{
	slow_source_t *s = (slow_source_t *)base;

	bop_source_free(s->inner);
	free(s);
}

__attribute__((unused))
static bop_source_t *slow_source(bop_source_t *inner, long pause_us)
{
	slow_source_t *s = calloc(1, sizeof(*s));

	if (!s)
		exit(2);
	s->base = (bop_source_t)BOP_SOURCE_INIT(.read = slow_read, .close = slow_close,
		.free = slow_free);
	s->inner = inner;
	s->pause_us = pause_us;
	return &s->base;
}

/* A slow backup running on its own thread. */
typedef struct bg_backup {
	pthread_t thread;
	const cat_env_t *cat;
	const char *name;
	const char *engine;
	const char *config;
	long pause_us;
	int ret;
	char message[2048];
} bg_backup_t;

static void *bg_backup_run(void *arg)
{
	bg_backup_t *b = arg;
	bop_engine_t *e = NULL;
	bop_source_t *src = NULL;
	bop_manifest_t *m = NULL;

	b->ret = bop_engine_open(&e, b->engine, b->config);
	if (b->ret == 0)
		b->ret = bop_engine_backup(e, &src);
	if (b->ret == 0)
		b->ret = catalog_backup(b->cat, b->name, b->engine, slow_source(src, b->pause_us), &m);
	snprintf(b->message, sizeof(b->message), "%s", bop_error_last());
	bop_manifest_free(m);
	bop_engine_free(e);
	return NULL;
}

__attribute__((unused))
static void bg_backup_start(bg_backup_t *b)
{
	if (pthread_create(&b->thread, NULL, bg_backup_run, b) != 0) {
		perror("pthread_create");
		exit(2);
	}
}

/* ---- processes ---- */

/* The parent of `pid` and the start of its command name (in comm), or -1. */
static pid_t parent_of(pid_t pid, char *comm, size_t len)
{
	char path[64], buf[512], *p, *open;
	pid_t ppid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) &&
	    sscanf(p + 2, "%*c %d", &ppid) == 1 && (open = strchr(buf, '('))) {
		*p = '\0';
		snprintf(comm, len, "%s", open + 1);
	}
	fclose(f);
	return ppid;
}

/* A child of this process, or a child of a child (a command runs under a supervisor that
 * backupop forks), whose command name starts with `comm`; 0 if none. */
__attribute__((unused))
static pid_t find_child(const char *comm)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t found = 0, me = getpid();

	while (d && !found && (de = readdir(d))) {
		pid_t pid = (pid_t)atoi(de->d_name), ppid;
		char name[64] = "", pname[64];

		if (pid <= 0 || (ppid = parent_of(pid, name, sizeof(name))) <= 0 ||
		    strncmp(name, comm, strlen(comm)))
			continue;
		if (ppid == me || parent_of(ppid, pname, sizeof(pname)) == me)
			found = pid;
	}
	if (d)
		closedir(d);
	return found;
}

__attribute__((unused))
static pid_t wait_child(const char *comm, int ms)
{
	pid_t pid = 0;

	for (int i = 0; i < ms / 5 && !(pid = find_child(comm)); i++)
		usleep(5000);
	return pid;
}

/* The NUL-separated command line of `pid`, NULs turned into spaces. A child found by its
 * new name may still be inside execve(), whose arguments the kernel shows only once they
 * are set up (an empty cmdline for a moment): read again until they are there, up to 2 s. */
__attribute__((unused))
static char *proc_cmdline(pid_t pid)
{
	char path[64], *buf = calloc(1, 65537);
	ssize_t n = 0;
	int fd;

	if (!buf)
		exit(2);
	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	for (int i = 0; i < 400 && n <= 0; i++) {
		if (i)
			usleep(5000);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			return buf;
		n = read(fd, buf, 65536);
		close(fd);
	}
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	return buf;
}

/* ---- the log ---- */

typedef struct log_capture {
	pthread_mutex_t lock;
	char *text;
	size_t len;
} log_capture_t;

static log_capture_t captured = { PTHREAD_MUTEX_INITIALIZER, NULL, 0 };

static void capture_log(bop_log_level_t level, const char *component, const char *message,
	void *payload)
{
	size_t n = strlen(component) + strlen(message) + 4;

	(void)level; (void)payload;
	pthread_mutex_lock(&captured.lock);
	captured.text = realloc(captured.text, captured.len + n + 1);
	if (!captured.text)
		exit(2);
	captured.len += (size_t)sprintf(captured.text + captured.len, "%s: %s\n", component, message);
	pthread_mutex_unlock(&captured.lock);
}

__attribute__((unused))
static void log_capture_start(void)
{
	bop_log_set_level(BOP_LOG_DEBUG);
	bop_log_set_callback(capture_log, NULL);
}

/* Whether the captured log contains `s`. */
__attribute__((unused))
static bool log_contains(const char *s)
{
	bool found;

	pthread_mutex_lock(&captured.lock);
	found = captured.text && strstr(captured.text, s);
	pthread_mutex_unlock(&captured.lock);
	return found;
}

/* Error messages seen, to check them for secrets at the end. */
static char *errors_seen;

__attribute__((unused))
static void note_error(void)
{
	const char *m = bop_error_last();
	size_t old = errors_seen ? strlen(errors_seen) : 0;

	errors_seen = realloc(errors_seen, old + strlen(m) + 2);
	if (!errors_seen)
		exit(2);
	strcpy(errors_seen + old, m);
	strcat(errors_seen, "\n");
}

#endif
