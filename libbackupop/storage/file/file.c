/*
 * The "file" storage backend: objects are regular files below a root directory, a key's
 * '/'s are directories. Writes go through the atomic file sink (temporary name beside the
 * target, fsync, rename), so a reader never sees a partial object and an aborted write
 * leaves nothing behind. The URL is taken literally (no percent-decoding).
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SINK_RETRIES 3

typedef struct file_storage {
	bop_storage_t base;
	char *root;             /* absolute, no trailing '/' unless it is "/" */
} file_storage_t;

/* The key's path: root + '/' + key. */
static char *key_path(const file_storage_t *fs, const char *key)
{
	return bop__sprintf("%s%s%s", fs->root, strcmp(fs->root, "/") ? "/" : "", key);
}

/*
 * The sink's temporary files are "<name>.tmp-<pid>-XXXXXX" (see pipeline/sink.c); they are
 * not objects, and a key that looks like one is refused so that listing stays exact.
 */
static bool is_temp_name(const char *name)
{
	const char *p = NULL, *q;
	size_t tail;

	for (q = strstr(name, ".tmp-"); q; q = strstr(q + 1, ".tmp-"))
		p = q;
	if (!p)
		return false;
	p += strlen(".tmp-");
	q = p;
	while (*q >= '0' && *q <= '9')
		q++;
	if (q == p || *q != '-')
		return false;
	q++;
	tail = strlen(q);
	if (tail != 6)
		return false;
	for (; *q; q++)
		if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z')))
			return false;
	return true;
}

/* Creates `path` and its missing parents (0700). */
static int make_dirs(char *path)
{
	struct stat st;
	char *slash;
	int ret;

	if (mkdir(path, 0700) == 0)
		return 0;
	if (errno == EEXIST) {
		if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode))
			return bop__error(BOP_ERROR, "cannot create directory %s: a file is in the way",
				path);
		return 0;
	}
	if (errno != ENOENT)
		return bop__error_errno(BOP_EIO, errno, "cannot create directory %s", path);
	slash = strrchr(path, '/');
	if (!slash || slash == path)
		return bop__error_errno(BOP_EIO, ENOENT, "cannot create directory %s", path);
	*slash = '\0';
	ret = make_dirs(path);
	*slash = '/';
	if (ret < 0)
		return ret;
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return bop__error_errno(BOP_EIO, errno, "cannot create directory %s", path);
	return 0;
}

/* Creates the directories a new object at `path` needs. */
static int make_parent_dirs(const char *path)
{
	char *dir = bop__strdup(path), *slash;
	int ret = 0;

	if (!dir)
		return BOP_ENOMEM;
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		ret = make_dirs(dir);
	}
	free(dir);
	return ret;
}

/* Removes the directories that `path`'s removal left empty, up to the root. */
static void prune_dirs(const file_storage_t *fs, char *path)
{
	size_t root_len = strlen(fs->root);
	char *slash;

	while ((slash = strrchr(path, '/')) && (size_t)(slash - path) > root_len) {
		*slash = '\0';
		if (rmdir(path) < 0)
			break;
	}
}

/*
 * The put sink: the atomic file sink of the pipeline, plus removal of the directories
 * the put created when it is aborted, so that a failed backup leaves no empty <id>/.
 * It must not outlive its storage.
 */
typedef struct put_sink {
	bop_sink_t base;
	bop_sink_t *file;
	const file_storage_t *fs;
	char *path;
	bool done;
} put_sink_t;

static int put_sink_write(bop_sink_t *base, const void *buf, size_t len)
{
	return bop_sink_write(((put_sink_t *)base)->file, buf, len);
}

static void put_sink_abort(bop_sink_t *base)
{
	put_sink_t *s = (put_sink_t *)base;

	if (s->done)
		return;
	s->done = true;
	bop_sink_abort(s->file);
	prune_dirs(s->fs, s->path);
}

/* Whether the directory an object was being written into is gone: someone else (gc of
 * another process, a user) removed the object while it was being written. */
static bool parent_removed(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash ? bop__strndup(path, (size_t)(slash - path)) : NULL;
	struct stat st;
	bool gone = dir && stat(dir, &st) < 0 && errno == ENOENT;

	free(dir);
	return gone;
}

static int put_sink_commit(bop_sink_t *base)
{
	put_sink_t *s = (put_sink_t *)base;
	int ret = bop_sink_commit(s->file);

	if (ret < 0 && parent_removed(s->path))
		ret = bop__error(BOP_ECONFLICT, "%s was removed by someone else (such as "
			"`backupop gc`) while it was being written", s->path);
	if (ret < 0)
		put_sink_abort(base);
	s->done = true;
	return ret;
}

static void put_sink_free(bop_sink_t *base)
{
	put_sink_t *s = (put_sink_t *)base;

	put_sink_abort(base);
	bop_sink_free(s->file);
	free(s->path);
	free(s);
}

static int put_sink_new(bop_sink_t **out, const file_storage_t *fs, const char *path,
	bool exclusive)
{
	put_sink_t *s = bop__calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return BOP_ENOMEM;
	s->path = bop__strdup(path);
	if (!s->path) {
		free(s);
		return BOP_ENOMEM;
	}
	ret = bop__sink_file_new(&s->file, path, exclusive);
	if (ret < 0) {
		free(s->path);
		free(s);
		return ret;
	}
	s->fs = fs;
	s->base = (bop_sink_t)BOP_SINK_INIT(.write = put_sink_write, .commit = put_sink_commit,
		.abort = put_sink_abort, .free = put_sink_free);
	*out = &s->base;
	return 0;
}

static int file_put(bop_storage_t *base, bop_sink_t **out, const char *key,
	const bop_put_options_t *opts)
{
	file_storage_t *fs = (file_storage_t *)base;
	const char *name = strrchr(key, '/');
	struct stat st;
	char *path;
	int ret = 0;

	if (is_temp_name(name ? name + 1 : key))
		return bop__error(BOP_EINVAL, "invalid storage key \"%s\": names ending in \".tmp-<pid>-XXXXXX\" are reserved for temporary files",
			key);
	path = key_path(fs, key);
	if (!path)
		return BOP_ENOMEM;
	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode)) {
			ret = bop__error(BOP_ERROR, "cannot write %s: it is a directory holding keys under \"%s/\"",
				path, key);
			goto out;
		}
		if (opts->exclusive) {
			ret = bop__error(BOP_EEXISTS, "object %s already exists in %s", key, fs->root);
			goto out;
		}
	}
	/* A concurrent remove may prune the new directory before the sink is created. */
	for (int i = 0; i < SINK_RETRIES; i++) {
		ret = make_parent_dirs(path);
		if (ret == 0)
			ret = put_sink_new(out, fs, path, opts->exclusive != 0);
		if (ret != BOP_ENOTFOUND)
			break;
	}
out:
	free(path);
	return ret;
}

static int not_found(const file_storage_t *fs, const char *key)
{
	return bop__error(BOP_ENOTFOUND, "no object %s in %s", key, fs->root);
}

static int file_get(bop_storage_t *base, bop_source_t **out, const char *key, uint64_t offset)
{
	file_storage_t *fs = (file_storage_t *)base;
	char *path = key_path(fs, key);
	struct stat st;
	int fd = -1, ret = 0;

	if (!path)
		return BOP_ENOMEM;
	/* Non-blocking, so that a FIFO in the storage fails below instead of hanging. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		ret = errno == ENOENT || errno == ENOTDIR ? not_found(fs, key)
			: bop__error_errno(BOP_EIO, errno, "cannot open %s", path);
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		ret = bop__error_errno(BOP_EIO, errno, "cannot stat %s", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = S_ISDIR(st.st_mode) ? not_found(fs, key)
			: bop__error(BOP_ERROR, "%s is not a regular file: only regular files are "
				"read as objects", path);
		goto out;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		ret = bop__error_errno(BOP_EIO, errno, "cannot read %s", path);
		goto out;
	}
	if (offset > (uint64_t)st.st_size) {
		ret = bop__error(BOP_EINVAL, "cannot read %s from byte %llu: it has only %llu bytes",
			path, (unsigned long long)offset, (unsigned long long)st.st_size);
		goto out;
	}
	if (lseek(fd, (off_t)offset, SEEK_SET) < 0) {
		ret = bop__error_errno(BOP_EIO, errno, "cannot seek in %s", path);
		goto out;
	}
	ret = bop_source_fd_new(out, fd, 1);
	if (ret == 0)
		fd = -1;
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return ret;
}

static int file_stat(bop_storage_t *base, bop_storage_stat_t *out, const char *key)
{
	file_storage_t *fs = (file_storage_t *)base;
	char *path = key_path(fs, key);
	struct stat st;
	int ret = 0;

	if (!path)
		return BOP_ENOMEM;
	if (stat(path, &st) < 0) {
		ret = errno == ENOENT || errno == ENOTDIR ? not_found(fs, key)
			: bop__error_errno(BOP_EIO, errno, "cannot stat %s", path);
	} else if (!S_ISREG(st.st_mode)) {
		ret = not_found(fs, key);
	} else {
		out->size = (uint64_t)st.st_size;
		out->mtime = (int64_t)st.st_mtime;
	}
	free(path);
	return ret;
}

/* ---- list ---- */

/* The directories from the root down to the one being read, to stop symlink loops. */
typedef struct dir_id {
	dev_t dev;
	ino_t ino;
	const struct dir_id *up;
} dir_id_t;

typedef struct walk {
	const char *real_root;
	const char *prefix;
	size_t prefix_len;
	bop_storage_list_cb cb;
	void *payload;
} walk_t;

#define WALK_STOP 1

/* Whether keys below directory `rel` can start with the prefix. */
static bool dir_may_match(const walk_t *w, const char *rel)
{
	size_t n = strlen(rel);

	if (strncmp(w->prefix, rel, n < w->prefix_len ? n : w->prefix_len) != 0)
		return false;
	return w->prefix_len <= n || w->prefix[n] == '/';
}

static bool is_ancestor(const dir_id_t *up, const struct stat *st)
{
	for (; up; up = up->up)
		if (up->dev == st->st_dev && up->ino == st->st_ino)
			return true;
	return false;
}

/* A symlink is followed only when its target is inside the root. */
static bool link_inside_root(const walk_t *w, const char *path)
{
	char *target = realpath(path, NULL);
	size_t n = strlen(w->real_root);
	bool inside;

	if (!target)
		return false;
	inside = strcmp(w->real_root, "/") == 0 ||
		(strncmp(target, w->real_root, n) == 0 && (target[n] == '/' || target[n] == '\0'));
	if (!inside)
		bop__log(BOP_LOG_DEBUG, "storage", "not following %s: it points out of the storage root",
			path);
	free(target);
	return inside;
}

/* Calls fn(ud, path, key, name, st) for each entry of the directory `dir_path` whose key is
 * `rel` ("" for the root) but "." and "..", with its path, key and lstat(); stops at the
 * first that does not return 0. A directory or entry that is gone is skipped. */
static int for_each_entry(const char *dir_path, const char *rel,
	int (*fn)(const void *ud, char *path, const char *key, const char *name, struct stat *st),
	const void *ud)
{
	struct dirent *e;
	struct stat st;
	DIR *d;
	int ret = 0;

	d = opendir(dir_path);
	if (!d)
		return errno == ENOENT ? 0 : bop__error_errno(BOP_EIO, errno, "cannot list %s", dir_path);
	for (;;) {
		char *path, *key;

		errno = 0;
		e = readdir(d);
		if (!e) {
			if (errno)
				ret = bop__error_errno(BOP_EIO, errno, "cannot list %s", dir_path);
			break;
		}
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		path = bop__sprintf("%s/%s", dir_path, e->d_name);
		key = *rel ? bop__sprintf("%s/%s", rel, e->d_name) : bop__strdup(e->d_name);
		if (!path || !key)
			ret = BOP_ENOMEM;
		else if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			ret = fn(ud, path, key, e->d_name, &st);
		/* else removed meanwhile */
		free(path);
		free(key);
		if (ret != 0)
			break;
	}
	closedir(d);
	return ret;
}

/* Where a listing is: its walk and the directories above (to refuse link loops). */
typedef struct walk_at {
	const walk_t *w;
	const dir_id_t *id;
} walk_at_t;

static int walk_dir(const walk_t *w, const char *dir_path, const char *rel, const dir_id_t *id);

static int walk_entry(const void *ud, char *path, const char *key, const char *name,
	struct stat *st)
{
	const walk_at_t *at = ud;
	const walk_t *w = at->w;
	bop_storage_stat_t info = { BOP_STORAGE_STAT_VERSION, 0, 0 };
	int ret = 0;

	if (is_temp_name(name))
		return 0;
	if (S_ISLNK(st->st_mode) && (!link_inside_root(w, path) || stat(path, st) < 0))
		return 0;
	if (S_ISDIR(st->st_mode)) {
		dir_id_t child = { st->st_dev, st->st_ino, at->id };

		if (dir_may_match(w, key) && !is_ancestor(at->id, st))
			ret = walk_dir(w, path, key, &child);
	} else if (S_ISREG(st->st_mode) && strncmp(key, w->prefix, w->prefix_len) == 0) {
		info.size = (uint64_t)st->st_size;
		info.mtime = (int64_t)st->st_mtime;
		ret = w->cb(key, &info, w->payload);
		if (ret > 0)
			ret = WALK_STOP;
		else if (ret < 0 && bop_error_last_code() == BOP_OK)
			bop__error(ret, "the list callback failed at %s (%s)", key, bop_strerror(ret));
	}
	return ret;
}

static int walk_dir(const walk_t *w, const char *dir_path, const char *rel, const dir_id_t *id)
{
	walk_at_t at = { w, id };

	return for_each_entry(dir_path, rel, walk_entry, &at);
}

static int file_list(bop_storage_t *base, const char *prefix, bop_storage_list_cb cb,
	void *payload)
{
	file_storage_t *fs = (file_storage_t *)base;
	walk_t w = { NULL, prefix, strlen(prefix), cb, payload };
	struct stat st;
	char *real_root;
	int ret;

	real_root = realpath(fs->root, NULL);
	if (!real_root)
		return errno == ENOENT ? 0 : bop__error_errno(BOP_EIO, errno, "cannot list %s", fs->root);
	w.real_root = real_root;
	if (stat(real_root, &st) < 0) {
		ret = bop__error_errno(BOP_EIO, errno, "cannot list %s", fs->root);
	} else {
		dir_id_t id = { st.st_dev, st.st_ino, NULL };

		ret = walk_dir(&w, fs->root, "", &id);
	}
	free(real_root);
	return ret == WALK_STOP ? 0 : ret;
}

/* ---- remove ---- */

static int file_remove(bop_storage_t *base, const char *key)
{
	file_storage_t *fs = (file_storage_t *)base;
	char *path = key_path(fs, key);
	int ret = 0;

	if (!path)
		return BOP_ENOMEM;
	if (unlink(path) < 0) {
		ret = errno == ENOENT || errno == ENOTDIR || errno == EISDIR ? not_found(fs, key)
			: bop__error_errno(BOP_EIO, errno, "cannot remove %s", path);
	} else {
		prune_dirs(fs, path);
	}
	free(path);
	return ret;
}

/* ---- cleanup ---- */

/* A walk over the temporary files of interrupted writes under a prefix. */
typedef struct sweep {
	walk_t w;               /* prefix, callback and payload */
	const file_storage_t *fs;
	int64_t older_than;
	int64_t now;
	int dry_run;
} sweep_t;

/* Whether the writer of temporary file `name` ("<name>.tmp-<pid>-XXXXXX") has exited. A pid
 * that cannot be a process's has no writer either. */
static bool temp_writer_gone(const char *name)
{
	const char *p = NULL, *q;
	long long pid;
	char *end;

	for (q = strstr(name, ".tmp-"); q; q = strstr(q + 1, ".tmp-"))
		p = q;
	errno = 0;
	pid = strtoll(p + strlen(".tmp-"), &end, 10);
	if (errno || pid <= 0 || pid > INT_MAX)
		return true;
	return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

static int sweep_dir(const sweep_t *s, const char *dir_path, const char *rel);

/* Reports and removes one temporary file when it is a leftover. */
static int sweep_file(const sweep_t *s, char *path, const char *key, const char *name,
	const struct stat *st)
{
	bop_storage_stat_t info = { BOP_STORAGE_STAT_VERSION, 0, 0 };
	int ret;

	if (strncmp(key, s->w.prefix, s->w.prefix_len) != 0)
		return 0;
	if (!temp_writer_gone(name) && s->now - (int64_t)st->st_mtime < s->older_than)
		return 0;
	info.size = (uint64_t)st->st_size;
	info.mtime = (int64_t)st->st_mtime;
	if (s->w.cb) {
		ret = s->w.cb(key, &info, s->w.payload);
		if (ret > 0)
			return WALK_STOP;
		if (ret < 0 && bop_error_last_code() == BOP_OK)
			bop__error(ret, "the cleanup callback failed at %s (%s)", key, bop_strerror(ret));
		if (ret < 0)
			return ret;
	}
	if (s->dry_run)
		return 0;
	if (unlink(path) < 0)
		return errno == ENOENT ? 0 : bop__error_errno(BOP_EIO, errno, "cannot remove %s", path);
	bop__log(BOP_LOG_DEBUG, "storage", "removed %s, left by an interrupted write", path);
	prune_dirs(s->fs, path);
	return 0;
}

/* Symbolic links are never followed: only what is inside the root is removed. */
static int sweep_entry(const void *ud, char *path, const char *key, const char *name,
	struct stat *st)
{
	const sweep_t *s = ud;

	if (S_ISDIR(st->st_mode))
		return dir_may_match(&s->w, key) ? sweep_dir(s, path, key) : 0;
	if (S_ISREG(st->st_mode) && is_temp_name(name))
		return sweep_file(s, path, key, name, st);
	return 0;
}

static int sweep_dir(const sweep_t *s, const char *dir_path, const char *rel)
{
	return for_each_entry(dir_path, rel, sweep_entry, s);
}

/* Leftovers are the atomic sink's temporary files whose writer has exited, or that were
 * last written more than `older_than` seconds ago. */
static int file_cleanup(bop_storage_t *base, const char *prefix, int64_t older_than,
	int dry_run, bop_storage_list_cb cb, void *payload)
{
	file_storage_t *fs = (file_storage_t *)base;
	sweep_t s = { { NULL, prefix, strlen(prefix), cb, payload }, fs, older_than,
		(int64_t)time(NULL), dry_run };
	int ret;

	ret = sweep_dir(&s, fs->root, "");
	return ret == WALK_STOP ? 0 : ret;
}

static void file_free(bop_storage_t *base)
{
	file_storage_t *fs = (file_storage_t *)base;

	free(fs->root);
	free(fs);
}

/* ---- open ---- */

/* The root directory of `url` as an absolute path without trailing '/'. */
static int root_from_url(char **out, const char *url)
{
	const char *path = url;
	char cwd[PATH_MAX];
	size_t len;
	char *root;

	if (strncmp(url, "file://", 7) == 0)
		path = url + 7;
	while (path[0] == '.' && path[1] == '/')
		path += 2;
	if (!*path || !strcmp(path, "."))
		path = ".";
	if (*path == '/') {
		root = bop__strdup(path);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return bop__error_errno(BOP_EIO, errno, "cannot resolve %s: cannot get the current directory",
				url);
		root = strcmp(path, ".") ? bop__sprintf("%s/%s", cwd, path) : bop__strdup(cwd);
	}
	if (!root)
		return BOP_ENOMEM;
	len = strlen(root);
	while (len > 1 && root[len - 1] == '/')
		root[--len] = '\0';
	*out = root;
	return 0;
}

static int check_settings(const bop_storage_options_t *opts)
{
	if (opts && opts->settings && opts->settings[0])
		return bop__error(BOP_EINVAL, "file storage has no setting \"%s\"", opts->settings[0]);
	return 0;
}

int bop__storage_file_open(bop_storage_t **out, const char *url,
	const bop_storage_options_t *opts, void *payload)
{
	file_storage_t *fs;
	struct stat st;
	char *root = NULL;
	int ret;

	BOP_UNUSED(payload);
	if (strcmp(url, "file://") == 0)
		return bop__error(BOP_EINVAL, "storage URL %s has no path (use file:///absolute/path or file://relative/path)",
			url);
	if ((ret = check_settings(opts)) < 0 || (ret = root_from_url(&root, url)) < 0)
		return ret;
	if (stat(root, &st) == 0 && !S_ISDIR(st.st_mode)) {
		ret = bop__error(BOP_EINVAL, "storage root %s is not a directory", root);
		free(root);
		return ret;
	}
	fs = bop__calloc(1, sizeof(*fs));
	if (!fs) {
		free(root);
		return BOP_ENOMEM;
	}
	fs->base = (bop_storage_t)BOP_STORAGE_INIT(.put = file_put, .get = file_get,
		.stat = file_stat, .list = file_list, .remove = file_remove, .free = file_free,
		.cleanup = file_cleanup);
	fs->root = root;
	*out = &fs->base;
	return 0;
}
