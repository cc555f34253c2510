/* Built-in sources: file descriptors, files, memory and callbacks. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

BOP_EXTERN(int) bop_command_options_init(bop_command_options_t *opts, unsigned int version)
{
	bop_command_options_t defaults = BOP_COMMAND_OPTIONS_INIT;

	if (!opts)
		return bop__error(BOP_EINVAL, "bop_command_options_init: NULL options");
	if (BOP__VERSION_CHECK("bop_command_options_t", NULL, version, COMMAND_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	*opts = defaults;
	return 0;
}

BOP_EXTERN(int) bop_source_read(bop_source_t *src, void *buf, size_t cap, size_t *got)
{
	if (!src || !buf || !got)
		return bop__error(BOP_EINVAL, "bop_source_read: invalid arguments");
	*got = 0;
	if (BOP__VERSION_CHECK("a source (a plug-in's bop_source_t)", NULL, src->version,
	    SOURCE_VERSION) < 0)
		return BOP_EVERSION;
	return src->read(src, buf, cap, got);
}

BOP_EXTERN(int) bop_source_close(bop_source_t *src)
{
	if (!src)
		return bop__error(BOP_EINVAL, "bop_source_close: NULL source");
	return src->close ? src->close(src) : 0;
}

BOP_EXTERN(void) bop_source_free(bop_source_t *src)
{
	if (src && src->free)
		src->free(src);
}

/* ---- fd and file ---- */

typedef struct fd_source {
	bop_source_t base;
	int fd;
	bool close_fd;
	char *path;             /* for messages; NULL for a bare fd */
} fd_source_t;

static int fd_source_read(bop_source_t *base, void *buf, size_t cap, size_t *got)
{
	fd_source_t *s = (fd_source_t *)base;

	for (;;) {
		ssize_t r = read(s->fd, buf, cap);

		if (r >= 0) {
			*got = (size_t)r;
			return 0;
		}
		if (errno != EINTR)
			return bop__error_errno(BOP_EIO, errno, "reading %s", s->path ? s->path : "input");
	}
}

static void fd_source_free(bop_source_t *base)
{
	fd_source_t *s = (fd_source_t *)base;

	if (s->close_fd)
		close(s->fd);
	free(s->path);
	free(s);
}

static int fd_source_make(bop_source_t **out, int fd, bool close_fd, const char *path)
{
	fd_source_t *s = bop__calloc(1, sizeof(*s));

	if (!s)
		return BOP_ENOMEM;
	s->base = (bop_source_t)BOP_SOURCE_INIT(.read = fd_source_read, .free = fd_source_free);
	s->fd = fd;
	s->close_fd = close_fd;
	if (path && !(s->path = bop__strdup(path))) {
		free(s);
		return BOP_ENOMEM;
	}
	*out = &s->base;
	return 0;
}

BOP_EXTERN(int) bop_source_fd_new(bop_source_t **out, int fd, int close_fd)
{
	if (!out || fd < 0)
		return bop__error(BOP_EINVAL, "bop_source_fd_new: invalid arguments");
	/* A closed fd would be read once something else is opened on it. */
	if (fcntl(fd, F_GETFD) < 0)
		return bop__error_errno(BOP_EINVAL, errno, "cannot read file descriptor %d%s", fd,
			fd == STDIN_FILENO ? " (standard input)" : "");
	return fd_source_make(out, fd, close_fd != 0, NULL);
}

BOP_EXTERN(int) bop_source_file_new(bop_source_t **out, const char *path)
{
	int fd, ret;

	if (!out || !path)
		return bop__error(BOP_EINVAL, "bop_source_file_new: invalid arguments");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return bop__error_errno(BOP_EIO, errno, "cannot open %s", path);
	ret = fd_source_make(out, fd, true, path);
	if (ret < 0)
		close(fd);
	return ret;
}

/* ---- memory ---- */

typedef struct mem_source {
	bop_source_t base;
	size_t len, pos;
	unsigned char data[];
} mem_source_t;

static int mem_source_read(bop_source_t *base, void *buf, size_t cap, size_t *got)
{
	mem_source_t *s = (mem_source_t *)base;
	size_t n = s->len - s->pos < cap ? s->len - s->pos : cap;

	memcpy(buf, s->data + s->pos, n);
	s->pos += n;
	*got = n;
	return 0;
}

static void mem_source_free(bop_source_t *base)
{
	free(base);
}

BOP_EXTERN(int) bop_source_memory_new(bop_source_t **out, const void *data, size_t len)
{
	mem_source_t *s;

	if (!out || (!data && len))
		return bop__error(BOP_EINVAL, "bop_source_memory_new: invalid arguments");
	s = bop__calloc(1, sizeof(*s) + len);
	if (!s)
		return BOP_ENOMEM;
	s->base = (bop_source_t)BOP_SOURCE_INIT(.read = mem_source_read, .free = mem_source_free);
	s->len = len;
	if (len)
		memcpy(s->data, data, len);
	*out = &s->base;
	return 0;
}

/* ---- callback ---- */

typedef struct cb_source {
	bop_source_t base;
	bop_read_cb read;
	void *payload;
} cb_source_t;

static int cb_source_read(bop_source_t *base, void *buf, size_t cap, size_t *got)
{
	cb_source_t *s = (cb_source_t *)base;
	int ret = s->read(buf, cap, got, s->payload);

	if (ret < 0 && bop_error_last_code() == BOP_OK)
		bop__error(ret, "the read callback failed (%s)", bop_strerror(ret));
	if (ret >= 0 && *got > cap)
		return bop__error(BOP_EINVAL, "the read callback returned more bytes than asked for");
	return ret < 0 ? ret : 0;
}

static void cb_source_free(bop_source_t *base)
{
	free(base);
}

BOP_EXTERN(int) bop_source_callback_new(bop_source_t **out, bop_read_cb read, void *payload)
{
	cb_source_t *s;

	if (!out || !read)
		return bop__error(BOP_EINVAL, "bop_source_callback_new: invalid arguments");
	s = bop__calloc(1, sizeof(*s));
	if (!s)
		return BOP_ENOMEM;
	s->base = (bop_source_t)BOP_SOURCE_INIT(.read = cb_source_read, .free = cb_source_free);
	s->read = read;
	s->payload = payload;
	*out = &s->base;
	return 0;
}
