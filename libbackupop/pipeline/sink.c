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
	if (sink->version != BOP_SINK_VERSION)
		return bop__error(BOP_EVERSION, "sink has unknown version %u", sink->version);
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
	s = bop__calloc(1, sizeof(*s));
	if (!s)
		return BOP_ENOMEM;
	s->base.version = BOP_SINK_VERSION;
	s->base.write = fd_sink_write;
	s->base.commit = fd_sink_commit;
	s->base.abort = fd_sink_abort;
	s->base.free = fd_sink_free;
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
	char *tmp;
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
	unlink(s->tmp);
}

static int file_sink_commit(bop_sink_t *base)
{
	file_sink_t *s = (file_sink_t *)base;
	int ret = 0;

	if (s->done)
		return bop__error(BOP_EINVAL, "%s was already finished", s->path);
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

int bop__sink_file_new(bop_sink_t **out, const char *path, bool exclusive)
{
	file_sink_t *s;
	int ret = 0;

	if (!out || !path || !*path)
		return bop__error(BOP_EINVAL, "bop_sink_file_new: invalid arguments");
	s = bop__calloc(1, sizeof(*s));
	if (!s)
		return BOP_ENOMEM;
	s->fd = -1;
	s->exclusive = exclusive;
	s->path = bop__strdup(path);
	s->tmp = bop__sprintf("%s.tmp-%ld-XXXXXX", path, (long)getpid());
	if (!s->path || !s->tmp) {
		ret = BOP_ENOMEM;
		goto fail;
	}
	s->fd = mkostemp(s->tmp, O_CLOEXEC);
	if (s->fd < 0) {
		ret = bop__error_errno(BOP_EIO, errno, "cannot create a temporary file beside %s", path);
		goto fail;
	}
	s->base.version = BOP_SINK_VERSION;
	s->base.write = file_sink_write;
	s->base.commit = file_sink_commit;
	s->base.abort = file_sink_abort;
	s->base.free = file_sink_free;
	*out = &s->base;
	return 0;
fail:
	s->done = true;
	free(s->path);
	free(s->tmp);
	free(s);
	return ret;
}

BOP_EXTERN(int) bop_sink_file_new(bop_sink_t **out, const char *path)
{
	return bop__sink_file_new(out, path, false);
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
	s->base.version = BOP_SINK_VERSION;
	s->base.write = cb_sink_write;
	s->base.commit = cb_sink_commit;
	s->base.abort = cb_sink_abort;
	s->base.free = cb_sink_free;
	s->write = write;
	s->payload = payload;
	*out = &s->base;
	return 0;
}
