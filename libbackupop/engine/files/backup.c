/*
 * The files engine's backup: a source that walks the tree with archive_read_disk and
 * writes it with a pax archive_write, one step (a header, or one block of a file) at a
 * time, until the reader's buffer is full. archive_write does not block its output
 * (bytes per block 0), so its callback copies straight into the reader's buffer. What
 * does not fit waits in a small buffer for the next read, so memory stays bounded by a
 * block whatever the size of the files.
 *
 * The tree walk asks archive_read_disk for names and lstat only. Asking it for extended
 * attributes, ACLs and holes too costs about ten system calls per file (it opens each file
 * for them, probes for holes with lseek, and for ACLs and attributes even when there are
 * none): on a tree of small files that doubled the walk's CPU time, on the thread that
 * feeds the compressor. Instead the source opens each regular file once itself, and
 * reads its data with pread. On that descriptor, one flistxattr says whether the file has
 * attributes or ACLs (on Linux, ACLs are attributes), and fewer blocks allocated than its
 * size says whether it may have holes (GNU tar's test); only then is
 * archive_read_disk_entry_from_file asked for them, with a second archive_read_disk that
 * walks nothing. Other entries (directories, symlinks) take one llistxattr by name.
 *
 * Names in the archive are relative to "path": the root is ".", the rest "a/b". Owners
 * are numeric (no user or group names). Names are bytes: libarchive converts them from the
 * locale's charset to UTF-8 for the pax headers, so the archive is written under C.UTF-8
 * (valid UTF-8 names go as they are, whatever the process's locale), and a name that is
 * not UTF-8 is stored as raw bytes (hdrcharset=BINARY), which the restore gives back as
 * they were. A file that changes or vanishes while it is read
 * is logged at WARN and the backup goes on; a file or directory that cannot be read
 * (permission denied, I/O error) fails the backup, naming it: a backup that silently
 * lacks data is worse than one that fails — exclude what should not be backed up.
 */
#include "files.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define CHUNK (64u * 1024)

typedef struct files_source {
	bop_source_t base;
	bop__files_config_t *cfg;
	struct archive *disk;
	struct archive *tar;
	struct archive_entry *entry;
	struct archive_entry_linkresolver *links;
	struct archive *meta;   /* attributes, ACLs and holes of one entry, when it has them */
	unsigned char *zeros;   /* CHUNK zero bytes, for the holes of sparse files */
	unsigned char *buf;     /* CHUNK bytes: file data on its way to archive_write */
	/* The reader's buffer, while a read is filling it. */
	unsigned char *dst;
	size_t dst_len, dst_cap;
	/* Output of archive_write that did not fit in it, not yet read. */
	unsigned char *out;
	size_t out_len, out_pos, out_cap;
	/* The regular file whose data is being copied: its descriptor, and where its next
	 * data region starts and ends when it has holes (the entry's sparse map). */
	bool in_data;
	int data_fd;
	struct archive_entry *data_entry;
	bool data_sparse;
	int64_t region_off, region_end;
	char *data_path;
	int64_t data_size, data_done;
	time_t data_mtime;
	long data_mtime_ns;
	bool done;
	int failed;             /* the error a later read repeats */
	locale_t utf8;          /* C.UTF-8, or 0 where it does not exist */
} files_source_t;

static la_ssize_t tar_write(struct archive *a, void *payload, const void *buf, size_t len)
{
	files_source_t *s = payload;
	size_t direct = s->dst_cap - s->dst_len, rest;

	if (direct > len)
		direct = len;
	if (direct) {
		memcpy(s->dst + s->dst_len, buf, direct);
		s->dst_len += direct;
	}
	rest = len - direct;
	if (rest == 0)
		return (la_ssize_t)len;
	if (bop__reserve(&s->out, &s->out_cap, s->out_len + rest, 1, 2 * CHUNK) < 0) {
		archive_set_error(a, ENOMEM, "out of memory");
		return -1;
	}
	memcpy(s->out + s->out_len, (const unsigned char *)buf + direct, rest);
	s->out_len += rest;
	return (la_ssize_t)len;
}

/* The entry's name relative to the root, or NULL if it is not below it. */
static const char *relative_name(const files_source_t *s, const char *name)
{
	size_t n = strlen(s->cfg->path);

	if (!strcmp(s->cfg->path, "/"))
		return name[0] == '/' && name[1] ? name + 1 : ".";
	if (strncmp(name, s->cfg->path, n))
		return NULL;
	if (!name[n])
		return ".";
	return name[n] == '/' ? name + n + 1 : NULL;
}

static bool vanished(struct archive *a)
{
	return archive_errno(a) == ENOENT || archive_errno(a) == ENOTDIR;
}

/* What libarchive's disk reader `a` (the walk, or the one for attributes) said failed. */
static int disk_error(files_source_t *s, struct archive *a, const char *path, const char *doing)
{
	int err = archive_errno(a);
	/* libarchive may only know the name relative to the directory being read. */
	const char *in = path[0] == '/' ? "" : " in ";
	const char *root = path[0] == '/' ? "" : s->cfg->path;

	if (err == EACCES || err == EPERM)
		return bop__error(BOP_EIO, "cannot %s %s%s%s: %s; fix its permissions or add it to \"exclude\"",
			doing, path, in, root, archive_error_string(a));
	return bop__error(BOP_EIO, "cannot %s %s%s%s: %s", doing, path, in, root,
		archive_error_string(a) ? archive_error_string(a) : "unknown error");
}

/* A system call on a file failed with `err`. */
static int file_error(const char *path, int err, const char *doing)
{
	if (err == EACCES || err == EPERM)
		return bop__error(BOP_EIO, "cannot %s %s: %s; fix its permissions or add it to \"exclude\"",
			doing, path, strerror(err));
	return bop__error(BOP_EIO, "cannot %s %s: %s", doing, path, strerror(err));
}

static int tar_error(files_source_t *s, const char *path)
{
	return bop__error(BOP_ERROR, "cannot add %s to the archive: %s", path,
		archive_error_string(s->tar) ? archive_error_string(s->tar) : "unknown error");
}

/* Compares the file with what its header said, now that its data was read. */
static void check_unchanged(files_source_t *s)
{
	struct stat st;

	/* Fewer bytes than its size: it shrank, or it ends with a hole (a sparse file). */
	if (fstat(s->data_fd, &st) < 0 || st.st_nlink == 0)
		bop__log(BOP_LOG_WARN, "files", "%s was removed while it was being read", s->data_path);
	else if (s->data_done < s->data_size && st.st_size < s->data_size)
		bop__log(BOP_LOG_WARN, "files", "%s shrank while it was being read (%lld of %lld bytes); the rest is zeros in the backup",
			s->data_path, (long long)s->data_done, (long long)s->data_size);
	else if (st.st_size != s->data_size || st.st_mtim.tv_sec != s->data_mtime ||
			st.st_mtim.tv_nsec != s->data_mtime_ns)
		bop__log(BOP_LOG_WARN, "files", "%s changed while it was being read; the backup holds a mix of its versions",
			s->data_path);
}

static void close_data(files_source_t *s)
{
	if (s->data_fd >= 0)
		close(s->data_fd);
	s->data_fd = -1;
}

static int finish_data(files_source_t *s)
{
	check_unchanged(s);
	close_data(s);
	s->in_data = false;
	free(s->data_path);
	s->data_path = NULL;
	if (archive_write_finish_entry(s->tar) < ARCHIVE_WARN)
		return tar_error(s, "a file");
	return 0;
}

/* Appends `n` bytes of the file's data, at most up to the size the header gave. */
static int write_data(files_source_t *s, const void *buf, int64_t n)
{
	if (n > s->data_size - s->data_done)
		n = s->data_size - s->data_done;   /* it grew: keep what the header says */
	if (n > 0 && archive_write_data(s->tar, buf, (size_t)n) < 0)
		return tar_error(s, s->data_path);
	s->data_done += n;
	return 0;
}

/* Where the next data of a sparse file starts: false when only a hole is left. */
static bool next_region(files_source_t *s)
{
	la_int64_t off, len;

	while (s->data_done >= s->region_end) {
		if (archive_entry_sparse_next(s->data_entry, &off, &len) != ARCHIVE_OK)
			return false;
		s->region_off = off;
		s->region_end = off + len;
	}
	return true;
}

static int copy_block(files_source_t *s)
{
	int64_t want = s->data_size - s->data_done;
	ssize_t n;

	if (want <= 0 || (s->data_sparse && !next_region(s)))
		return finish_data(s);   /* the rest is a hole: the pax writer pads it */
	if (s->data_sparse && s->data_done < s->region_off) {
		/* A hole before the data: the pax writer wants its zeros (and leaves them out). */
		int64_t gap = s->region_off - s->data_done;

		return write_data(s, s->zeros, gap < CHUNK ? gap : CHUNK);
	}
	if (s->data_sparse && want > s->region_end - s->data_done)
		want = s->region_end - s->data_done;
	if (want > CHUNK)
		want = CHUNK;
	do
		n = pread(s->data_fd, s->buf, (size_t)want, (off_t)s->data_done);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return file_error(s->data_path, errno, "read");
	if (n == 0)
		return finish_data(s);   /* it shrank: check_unchanged() says so */
	return write_data(s, s->buf, n);
}

static int start_data(files_source_t *s, struct archive_entry *e, const char *path)
{
	s->data_path = bop__strdup(path);
	if (!s->data_path)
		return BOP_ENOMEM;
	s->in_data = true;
	s->data_entry = e;
	s->data_sparse = archive_entry_sparse_reset(e) > 0;
	s->region_off = s->region_end = 0;
	s->data_size = archive_entry_size(e);
	s->data_done = 0;
	s->data_mtime = archive_entry_mtime(e);
	s->data_mtime_ns = archive_entry_mtime_nsec(e);
	return 0;
}

/* Whether the entry's name and link target are UTF-8 (this thread's locale is C.UTF-8). */
static bool names_utf8(struct archive_entry *e)
{
	const char *name = archive_entry_pathname(e), *link = archive_entry_symlink(e);

	if (!link)
		link = archive_entry_hardlink(e);
	return (!name || mbstowcs(NULL, name, 0) != (size_t)-1) &&
		(!link || mbstowcs(NULL, link, 0) != (size_t)-1);
}

/*
 * Opens a regular file for its data, and gives its entry the stat of what was opened (it
 * may have changed since the walk's lstat). 1 when it is to be skipped: it vanished, or is
 * no longer a regular file.
 */
static int open_data(files_source_t *s, struct archive_entry *e, const char *path, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

	if (fd < 0 && (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)) {
		bop__log(BOP_LOG_WARN, "files", "skipping %s: it vanished during the backup", path);
		return 1;
	}
	if (fd < 0)
		return file_error(path, errno, "read");
	if (fstat(fd, st) < 0) {
		int err = errno;

		close(fd);
		return file_error(path, err, "read");
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		bop__log(BOP_LOG_WARN, "files", "skipping %s: it was replaced during the backup", path);
		return 1;
	}
	archive_entry_copy_stat(e, st);
	s->data_fd = fd;
	return 0;
}

/*
 * Adds the entry's extended attributes, ACLs and holes, when it may have any: see the
 * comment at the top. `st` is the open file's (with its block count), or NULL.
 */
static int add_extended(files_source_t *s, struct archive_entry *e, const char *path, const struct stat *st)
{
	int fd = s->data_fd, flags = ARCHIVE_READDISK_NO_FFLAGS;
	ssize_t n = fd >= 0 ? flistxattr(fd, NULL, 0) : llistxattr(path, NULL, 0);
	bool attrs = n > 0 || (n < 0 && errno != ENOTSUP && errno != ENOENT);
	bool holes = st && st->st_size > 0 && (int64_t)st->st_blocks * 512 < (int64_t)st->st_size;
	int r;

	if (!attrs && !holes)
		return 0;
	if (!attrs)
		flags |= ARCHIVE_READDISK_NO_XATTR | ARCHIVE_READDISK_NO_ACL;
	if (!holes)
		flags |= ARCHIVE_READDISK_NO_SPARSE;
	archive_read_disk_set_behavior(s->meta, flags);
	r = archive_read_disk_entry_from_file(s->meta, e, fd, st);
	if (r == ARCHIVE_WARN)
		bop__log(BOP_LOG_WARN, "files", "%s: %s", path, archive_error_string(s->meta));
	else if (r < ARCHIVE_WARN)
		return disk_error(s, s->meta, path, "read the attributes of");
	return 0;
}

/* Writes the header of the entry just read from disk (renamed relative to the root). */
static int add_entry(files_source_t *s, const char *path, const char *rel)
{
	struct archive_entry *e = s->entry, *spare = NULL;
	struct stat st;
	bool data = archive_entry_filetype(e) == AE_IFREG && archive_entry_size(e) > 0;
	int r;

	/* Opened before linkify, so that a file that vanished is not the target of a link. */
	if (data && (r = open_data(s, e, path, &st)) != 0)
		return r < 0 ? r : 0;
	if ((r = add_extended(s, e, path, data ? &st : NULL)) < 0)
		goto fail;
	archive_entry_copy_pathname(e, rel);
	archive_entry_linkify(s->links, &e, &spare);
	r = archive_write_header(s->tar, e);
	if (r == ARCHIVE_FAILED) {
		/* Sockets and such that tar cannot hold. */
		bop__log(BOP_LOG_WARN, "files", "skipping %s: %s", path, archive_error_string(s->tar));
		close_data(s);
		return 0;
	}
	if (r < ARCHIVE_WARN) {
		r = tar_error(s, path);
		goto fail;
	}
	if (r == ARCHIVE_WARN && s->utf8 && !names_utf8(e))
		bop__log(BOP_LOG_DEBUG, "files", "%s: its name is not UTF-8: stored as raw bytes", path);
	else if (r == ARCHIVE_WARN)
		bop__log(BOP_LOG_WARN, "files", "%s: %s", path, archive_error_string(s->tar));
	/* A later name of a file already stored is a hard link, without data. */
	if (s->data_fd >= 0 && archive_entry_size(e) > 0)
		return start_data(s, e, path);
	close_data(s);
	return 0;
fail:
	close_data(s);
	return r;
}

static int next_entry(files_source_t *s)
{
	const char *path, *rel;
	bool is_dir;
	int r;

	archive_entry_clear(s->entry);
	r = archive_read_next_header2(s->disk, s->entry);
	if (r == ARCHIVE_EOF) {
		if (archive_write_close(s->tar) < ARCHIVE_WARN)
			return tar_error(s, "the end of the archive");
		s->done = true;
		return 0;
	}
	path = archive_entry_sourcepath(s->entry);
	if (!path)
		path = archive_entry_pathname(s->entry);
	if (!path)
		path = "(unnamed)";
	if (r == ARCHIVE_FAILED || r == ARCHIVE_RETRY) {
		if (vanished(s->disk)) {
			bop__log(BOP_LOG_WARN, "files", "skipping %s: it vanished during the backup", path);
			return 0;
		}
		return disk_error(s, s->disk, path, "read");
	}
	if (r < ARCHIVE_WARN)
		return disk_error(s, s->disk, s->cfg->path, "walk");
	if (r == ARCHIVE_WARN)
		bop__log(BOP_LOG_WARN, "files", "%s: %s", path, archive_error_string(s->disk));
	rel = relative_name(s, path);
	if (!rel)
		return bop__error(BOP_ERROR, "unexpected name %s outside of %s", path, s->cfg->path);
	is_dir = archive_entry_filetype(s->entry) == AE_IFDIR;
	if (strcmp(rel, ".") && bop__files_excluded(s->cfg, rel, is_dir)) {
		bop__log(BOP_LOG_DEBUG, "files", "excluded %s", path);
		return 0;
	}
	if (is_dir && archive_read_disk_can_descend(s->disk) &&
			archive_read_disk_descend(s->disk) < ARCHIVE_WARN)
		return disk_error(s, s->disk, path, "enter");
	return add_entry(s, path, rel);
}

static int step(files_source_t *s)
{
	return s->in_data ? copy_block(s) : next_entry(s);
}

static int files_read(bop_source_t *base, void *buf, size_t cap, size_t *got)
{
	files_source_t *s = (files_source_t *)base;
	size_t n = s->out_len - s->out_pos;
	locale_t caller = s->utf8 ? uselocale(s->utf8) : 0;
	int ret = 0;

	*got = 0;
	if (s->failed) {
		if (caller)
			uselocale(caller);
		return bop__error(s->failed, "the backup of %s failed earlier", s->cfg->path);
	}
	/* First what did not fit last time. */
	if (n > cap)
		n = cap;
	if (n) {
		memcpy(buf, s->out + s->out_pos, n);
		s->out_pos += n;
	}
	if (s->out_pos == s->out_len)
		s->out_pos = s->out_len = 0;
	s->dst = buf;
	s->dst_len = n;
	s->dst_cap = cap;
	while (s->out_len == 0 && s->dst_len < cap && !s->done)
		if ((ret = step(s)) < 0)
			break;
	*got = s->dst_len;
	s->dst = NULL;
	s->dst_len = s->dst_cap = 0;
	if (ret < 0) {
		s->failed = ret;
		*got = 0;
	}
	if (caller)
		uselocale(caller);
	return ret;
}

static void files_source_free(bop_source_t *base)
{
	files_source_t *s = (files_source_t *)base;

	if (s->tar)
		archive_write_free(s->tar);       /* closes it: the output is discarded anyway */
	if (s->disk)
		archive_read_free(s->disk);
	if (s->meta)
		archive_read_free(s->meta);
	close_data(s);
	if (s->entry)
		archive_entry_free(s->entry);
	if (s->links)
		archive_entry_linkresolver_free(s->links);
	bop__files_config_free(s->cfg);
	if (s->utf8)
		freelocale(s->utf8);
	free(s->data_path);
	free(s->zeros);
	free(s->buf);
	free(s->out);
	free(s);
}

static int open_disk(files_source_t *s)
{
	int flags = ARCHIVE_READDISK_NO_FFLAGS | ARCHIVE_READDISK_NO_XATTR | ARCHIVE_READDISK_NO_ACL |
		ARCHIVE_READDISK_NO_SPARSE;

	s->disk = archive_read_disk_new();
	s->meta = archive_read_disk_new();
	if (!s->disk || !s->meta)
		return bop__error_oom();
	if (archive_read_disk_set_symlink_physical(s->meta) < ARCHIVE_OK)
		return bop__error(BOP_ERROR, "cannot set up the tree walk: %s", archive_error_string(s->meta));
	if (s->cfg->one_file_system)
		flags |= ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS;
	/* No user/group name lookups: owners are numeric. */
	if (archive_read_disk_set_symlink_physical(s->disk) < ARCHIVE_OK ||
			archive_read_disk_set_behavior(s->disk, flags) < ARCHIVE_OK)
		return bop__error(BOP_ERROR, "cannot set up the tree walk: %s", archive_error_string(s->disk));
	if (archive_read_disk_open(s->disk, s->cfg->path) < ARCHIVE_OK)
		return bop__error(BOP_EIO, "cannot open %s: %s", s->cfg->path, archive_error_string(s->disk));
	return 0;
}

static int open_tar(files_source_t *s)
{
	s->tar = archive_write_new();
	if (!s->tar)
		return bop__error_oom();
	if (archive_write_set_format_pax(s->tar) < ARCHIVE_OK ||
			archive_write_add_filter_none(s->tar) < ARCHIVE_OK ||
			archive_write_set_bytes_per_block(s->tar, 0) < ARCHIVE_OK ||
			archive_write_open(s->tar, s, NULL, tar_write, NULL) < ARCHIVE_OK)
		return bop__error(BOP_ERROR, "cannot start the tar stream: %s", archive_error_string(s->tar));
	s->links = archive_entry_linkresolver_new();
	if (!s->links)
		return bop__error_oom();
	archive_entry_linkresolver_set_strategy(s->links, archive_format(s->tar));
	return 0;
}

static int check_root(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return bop__error_errno(BOP_EIO, errno, "cannot back up %s", path);
	if (!S_ISDIR(st.st_mode))
		return bop__error(BOP_EINVAL, "cannot back up %s: it is not a directory", path);
	return 0;
}

int bop__files_source_new(bop_source_t **out, const bop__files_config_t *cfg)
{
	files_source_t *s;
	int ret;

	if ((ret = check_root(cfg->path)) < 0)
		return ret;
	s = bop__calloc(1, sizeof(*s));
	if (!s)
		return BOP_ENOMEM;
	s->data_fd = -1;
	s->base.version = BOP_SOURCE_VERSION;
	s->base.read = files_read;
	s->base.free = files_source_free;
	s->cfg = bop__files_config_dup(cfg);
	s->utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	s->zeros = bop__calloc(1, CHUNK);
	s->buf = bop__calloc(1, CHUNK);
	s->entry = archive_entry_new();
	if (!s->cfg || !s->zeros || !s->buf || !s->entry) {
		ret = bop__error_oom();
		goto fail;
	}
	if ((ret = open_disk(s)) < 0 || (ret = open_tar(s)) < 0)
		goto fail;
	*out = &s->base;
	return 0;
fail:
	files_source_free(&s->base);
	return ret;
}
