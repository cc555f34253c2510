/* Built-in sinks: file descriptors, files written atomically, and callbacks. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

BOP_EXTERN(int) bop_sink_write(bop_sink_t *sink, const void *buf, size_t len)
{
	if (!sink || (!buf && len))
		return bop__error(BOP_EINVAL, "bop_sink_write: invalid arguments");
	if (BOP__VERSION_CHECK("a sink (a plug-in's bop_sink_t)", NULL, sink->version, SINK_VERSION) < 0)
		return BOP_EVERSION;
	return len ? sink->write(sink, buf, len) : 0;
}

BOP_EXTERN(int) bop_sink_commit(bop_sink_t *sink)
{
	if (!sink)
		return bop__error(BOP_EINVAL, "bop_sink_commit: NULL sink");
	return sink->commit(sink);
}

BOP_EXTERN(void) bop_sink_abort(bop_sink_t *sink)
{
	if (sink && sink->abort)
		sink->abort(sink);
}

BOP_EXTERN(void) bop_sink_free(bop_sink_t *sink)
{
	if (sink && sink->free)
		sink->free(sink);
}

static int write_fd_all(int fd, const void *buf, size_t len, const char *what)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t w = write(fd, p, len);

		/* A signal that asked the pipeline on this thread to stop ends a write that
		 * waits on a reader that reads nothing. */
		if (w < 0 && errno == EINTR && bop__cancel_requested())
			return bop__error(BOP_ECANCELED, "the operation was canceled while writing %s",
				what);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return bop__error_errno(BOP_EIO, errno, "writing %s", what);
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* ---- fd ---- */

typedef struct fd_sink {
	bop_sink_t base;
	int fd;
	bool close_fd;
	bool done;
} fd_sink_t;

static int fd_sink_write(bop_sink_t *base, const void *buf, size_t len)
{
	fd_sink_t *s = (fd_sink_t *)base;

	return write_fd_all(s->fd, buf, len, "output");
}

static int fd_sink_commit(bop_sink_t *base)
{
	fd_sink_t *s = (fd_sink_t *)base;
	struct stat st;

	s->done = true;
	if (fstat(s->fd, &st) == 0 && S_ISREG(st.st_mode) && fsync(s->fd) < 0)
		return bop__error_errno(BOP_EIO, errno, "syncing output");
	return 0;
}

static void fd_sink_abort(bop_sink_t *base)
{
	((fd_sink_t *)base)->done = true;
}

static void fd_sink_free(bop_sink_t *base)
{
	fd_sink_t *s = (fd_sink_t *)base;

	if (s->close_fd)
		close(s->fd);
	free(s);
}

BOP_EXTERN(int) bop_sink_fd_new(bop_sink_t **out, int fd, int close_fd)
{
	fd_sink_t *s;

	if (!out || fd < 0)
		return bop__error(BOP_EINVAL, "bop_sink_fd_new: invalid arguments");
	if (fcntl(fd, F_GETFD) < 0)
		return bop__error_errno(BOP_EINVAL, errno, "cannot write file descriptor %d%s", fd,
			fd == STDOUT_FILENO ? " (standard output)" : "");
	s = bop__calloc(1, sizeof(*s));
	if (!s)
		return BOP_ENOMEM;
	s->base = (bop_sink_t)BOP_SINK_INIT(.write = fd_sink_write, .commit = fd_sink_commit,
		.abort = fd_sink_abort, .free = fd_sink_free);
	s->fd = fd;
	s->close_fd = close_fd != 0;
	*out = &s->base;
	return 0;
}

/* ---- file: temporary name, fsync, rename (or link when exclusive) ---- */

typedef struct file_sink {
	bop_sink_t base;
	int fd;
	char *path;
	char *tmp;              /* NULL when writing in place */
	bool exclusive;
	bool done;
} file_sink_t;

static int file_sink_write(bop_sink_t *base, const void *buf, size_t len)
{
	file_sink_t *s = (file_sink_t *)base;

	if (s->done)
		return bop__error(BOP_EINVAL, "write to %s after it was finished", s->path);
	return write_fd_all(s->fd, buf, len, s->path);
}

static int sync_parent(const char *path)
{
	char *copy = bop__strdup(path);
	int fd, ret = 0;

	if (!copy)
		return BOP_ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		if (fsync(fd) < 0)
			ret = bop__error_errno(BOP_EIO, errno, "syncing the directory of %s", path);
		close(fd);
	}
	free(copy);
	return ret;
}

static void file_sink_abort(bop_sink_t *base)
{
	file_sink_t *s = (file_sink_t *)base;

	if (s->done)
		return;
	s->done = true;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	if (s->tmp)
		unlink(s->tmp);
}

/* A device or FIFO written in place: what was written stays, nothing is renamed. */
static int in_place_commit(file_sink_t *s)
{
	struct stat st;
	int ret = 0;

	if (fstat(s->fd, &st) == 0 && S_ISBLK(st.st_mode) && fsync(s->fd) < 0)
		ret = bop__error_errno(BOP_EIO, errno, "syncing %s", s->path);
	if (close(s->fd) < 0 && ret == 0)
		ret = bop__error_errno(BOP_EIO, errno, "closing %s", s->path);
	s->fd = -1;
	s->done = true;
	return ret;
}

/* Only a regular file is replaced: something else put there while we wrote is not. */
static int check_still_replaceable(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0 || S_ISREG(st.st_mode))
		return 0;
	return bop__error(BOP_ECONFLICT, "%s is no longer a regular file (something else was put "
		"there meanwhile): not replacing it", path);
}

static int file_sink_commit(bop_sink_t *base)
{
	file_sink_t *s = (file_sink_t *)base;
	int ret = 0;

	if (s->done)
		return bop__error(BOP_EINVAL, "%s was already finished", s->path);
	if (!s->tmp)
		return in_place_commit(s);
	if (fsync(s->fd) < 0) {
		ret = bop__error_errno(BOP_EIO, errno, "syncing %s", s->path);
		goto fail;
	}
	if (close(s->fd) < 0) {
		s->fd = -1;
		ret = bop__error_errno(BOP_EIO, errno, "closing %s", s->path);
		goto fail;
	}
	s->fd = -1;
	if (s->exclusive) {
		/* link() fails if the name exists, which rename() would silently replace. */
		if (link(s->tmp, s->path) < 0) {
			ret = errno == EEXIST ? bop__error(BOP_EEXISTS, "%s already exists", s->path)
				: bop__error_errno(BOP_EIO, errno, "creating %s", s->path);
			goto fail;
		}
		unlink(s->tmp);
	} else if ((ret = check_still_replaceable(s->path)) < 0) {
		goto fail;
	} else if (rename(s->tmp, s->path) < 0) {
		ret = bop__error_errno(BOP_EIO, errno, "renaming into %s", s->path);
		goto fail;
	}
	s->done = true;
	return sync_parent(s->path);
fail:
	file_sink_abort(base);
	return ret;
}

static void file_sink_free(bop_sink_t *base)
{
	file_sink_t *s = (file_sink_t *)base;

	file_sink_abort(base);
	free(s->path);
	free(s->tmp);
	free(s);
}

static file_sink_t *file_sink_alloc(const char *path, bool exclusive)
{
	file_sink_t *s = bop__calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->fd = -1;
	s->exclusive = exclusive;
	s->path = bop__strdup(path);
	if (!s->path) {
		free(s);
		return NULL;
	}
	s->base = (bop_sink_t)BOP_SINK_INIT(.write = file_sink_write, .commit = file_sink_commit,
		.abort = file_sink_abort, .free = file_sink_free);
	return s;
}

int bop__sink_file_new(bop_sink_t **out, const char *path, bool exclusive)
{
	file_sink_t *s;
	int ret;

	if (!out || !path || !*path)
		return bop__error(BOP_EINVAL, "bop_sink_file_new: invalid arguments");
	s = file_sink_alloc(path, exclusive);
	if (!s)
		return BOP_ENOMEM;
	s->tmp = bop__sprintf("%s.tmp-%ld-XXXXXX", path, (long)getpid());
	if (!s->tmp) {
		ret = BOP_ENOMEM;
		goto fail;
	}
	s->fd = mkostemp(s->tmp, O_CLOEXEC);
	if (s->fd < 0) {
		ret = bop__error_errno(BOP_EIO, errno, "cannot create a temporary file beside %s", path);
		goto fail;
	}
	*out = &s->base;
	return 0;
fail:
	s->done = true;
	free(s->path);
	free(s->tmp);
	free(s);
	return ret;
}

/* Opens a character or block device or a FIFO to write into it as it is. */
static int open_in_place(bop_sink_t **out, const char *path)
{
	file_sink_t *s;
	struct stat st;
	int fd;

	fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return bop__error_errno(BOP_EIO, errno, "cannot open %s", path);
	if (fstat(fd, &st) < 0 || !(S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ||
	    S_ISFIFO(st.st_mode))) {
		close(fd);
		return bop__error(BOP_ECONFLICT, "%s changed while it was being opened", path);
	}
	s = file_sink_alloc(path, false);
	if (!s) {
		close(fd);
		return BOP_ENOMEM;
	}
	s->fd = fd;
	*out = &s->base;
	return 0;
}

/* The type of what symbolic link `path` points to (in *st); it must exist. */
static int stat_link_target(const char *path, struct stat *st)
{
	if (stat(path, st) == 0)
		return 0;
	if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
		return bop__error(BOP_EINVAL, "%s is a symbolic link to nothing that exists: not "
			"replacing the link (give the path of its target)", path);
	return bop__error_errno(BOP_EIO, errno, "cannot follow the symbolic link %s", path);
}

/* The path of the regular file that symbolic link `path` points to, to replace it. */
static int follow_link(const char *path, char **real)
{
	*real = realpath(path, NULL);
	if (*real)
		return 0;
	return bop__error_errno(BOP_EINVAL, errno, "cannot resolve the symbolic link %s", path);
}

/*
 * A target never gets replaced by what it was not: a regular file (or no file) is replaced
 * through a temporary file and rename; a device or FIFO is written in place; a symbolic
 * link is followed, its target treated the same way; anything else is refused.
 */
BOP_EXTERN(int) bop_sink_file_new(bop_sink_t **out, const char *path)
{
	char *real = NULL;
	struct stat st;
	int ret;

	if (!out || !path || !*path)
		return bop__error(BOP_EINVAL, "bop_sink_file_new: invalid arguments");
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return bop__sink_file_new(out, path, false);
		return bop__error_errno(BOP_EIO, errno, "cannot write %s", path);
	}
	/* open() follows a link to a device or FIFO (even /dev/stdout onto a pipe); a
	 * regular file is replaced at the path the link resolves to. */
	if (S_ISLNK(st.st_mode) && ((ret = stat_link_target(path, &st)) < 0 ||
	    (S_ISREG(st.st_mode) && (ret = follow_link(path, &real)) < 0)))
		return ret;
	if (S_ISREG(st.st_mode))
		ret = bop__sink_file_new(out, real ? real : path, false);
	else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode))
		ret = open_in_place(out, path);
	else
		ret = bop__error(BOP_EINVAL, "cannot write %s: it is %s", path, S_ISDIR(st.st_mode) ?
			"a directory" : "neither a regular file, a device nor a FIFO");
	free(real);
	return ret;
}

/* ---- callback ---- */

typedef struct cb_sink {
	bop_sink_t base;
	bop_write_cb write;
	void *payload;
} cb_sink_t;

static int cb_sink_write(bop_sink_t *base, const void *buf, size_t len)
{
	cb_sink_t *s = (cb_sink_t *)base;
	int ret = s->write(buf, len, s->payload);

	if (ret < 0 && bop_error_last_code() == BOP_OK)
		bop__error(ret, "the write callback failed (%s)", bop_strerror(ret));
	return ret < 0 ? ret : 0;
}

static int cb_sink_commit(bop_sink_t *base)
{
	BOP_UNUSED(base);
	return 0;
}

static void cb_sink_abort(bop_sink_t *base)
{
	BOP_UNUSED(base);
}

static void cb_sink_free(bop_sink_t *base)
{
	free(base);
}

BOP_EXTERN(int) bop_sink_callback_new(bop_sink_t **out, bop_write_cb write, void *payload)
{
	cb_sink_t *s;

	if (!out || !write)
		return bop__error(BOP_EINVAL, "bop_sink_callback_new: invalid arguments");
	s = bop__calloc(1, sizeof(*s));
	if (!s)
		return BOP_ENOMEM;
	s->base = (bop_sink_t)BOP_SINK_INIT(.write = cb_sink_write, .commit = cb_sink_commit,
		.abort = cb_sink_abort, .free = cb_sink_free);
	s->write = write;
	s->payload = payload;
	*out = &s->base;
	return 0;
}
