/*
 * The files engine's backup: a source that walks the tree with archive_read_disk and
 * writes it with a pax archive_write, one step (a header, or one block of a file) at a
 * time, until the reader's buffer is full. archive_write does not block its output
 * (bytes per block 0), so its callback copies straight into the reader's buffer, and
 * file data goes from archive_read_disk's own buffer (archive_read_data_block) to
 * archive_write: one copy in user space. What does not fit waits in a small buffer for
 * the next read, so memory stays bounded by a block whatever the size of the files.
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
#include <sys/stat.h>

#define CHUNK (64u * 1024)

typedef struct files_source {
	bop_source_t base;
	bop__files_config_t *cfg;
	struct archive *disk;
	struct archive *tar;
	struct archive_entry *entry;
	struct archive_entry_linkresolver *links;
	unsigned char *zeros;   /* CHUNK zero bytes, for the holes of sparse files */
	/* The reader's buffer, while a read is filling it. */
	unsigned char *dst;
	size_t dst_len, dst_cap;
	/* Output of archive_write that did not fit in it, not yet read. */
	unsigned char *out;
	size_t out_len, out_pos, out_cap;
	/* The regular file whose data is being copied. */
	bool in_data;
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

static int disk_error(files_source_t *s, const char *path, const char *doing)
{
	int err = archive_errno(s->disk);
	/* libarchive may only know the name relative to the directory being read. */
	const char *in = path[0] == '/' ? "" : " in ";
	const char *root = path[0] == '/' ? "" : s->cfg->path;

	if (err == EACCES || err == EPERM)
		return bop__error(BOP_EIO, "cannot %s %s%s%s: %s; fix its permissions or add it to \"exclude\"",
			doing, path, in, root, archive_error_string(s->disk));
	return bop__error(BOP_EIO, "cannot %s %s%s%s: %s", doing, path, in, root,
		archive_error_string(s->disk) ? archive_error_string(s->disk) : "unknown error");
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
	if (lstat(s->data_path, &st) < 0)
		bop__log(BOP_LOG_WARN, "files", "%s was removed while it was being read", s->data_path);
	else if (s->data_done < s->data_size && st.st_size < s->data_size)
		bop__log(BOP_LOG_WARN, "files", "%s shrank while it was being read (%lld of %lld bytes); the rest is zeros in the backup",
			s->data_path, (long long)s->data_done, (long long)s->data_size);
	else if (st.st_size != s->data_size || st.st_mtim.tv_sec != s->data_mtime ||
			st.st_mtim.tv_nsec != s->data_mtime_ns)
		bop__log(BOP_LOG_WARN, "files", "%s changed while it was being read; the backup holds a mix of its versions",
			s->data_path);
}

static int finish_data(files_source_t *s)
{
	check_unchanged(s);
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

static int copy_block(files_source_t *s)
{
	const void *buf;
	size_t len;
	la_int64_t off;
	int r = archive_read_data_block(s->disk, &buf, &len, &off);

	if (r == ARCHIVE_EOF)
		return finish_data(s);
	if (r < ARCHIVE_WARN) {
		if (vanished(s->disk)) {
			bop__log(BOP_LOG_WARN, "files", "%s vanished before it could be read; the backup holds zeros for it",
				s->data_path);
			return finish_data(s);
		}
		return disk_error(s, s->data_path, "read");
	}
	/* A hole before the block: the pax writer wants its zeros (and leaves them out). */
	while (off > s->data_done && s->data_done < s->data_size) {
		int64_t gap = off - s->data_done;
		int ret = write_data(s, s->zeros, gap < CHUNK ? gap : CHUNK);

		if (ret < 0)
			return ret;
	}
	return write_data(s, buf, (int64_t)len);
}

static int start_data(files_source_t *s, struct archive_entry *e, const char *path)
{
	s->data_path = bop__strdup(path);
	if (!s->data_path)
		return BOP_ENOMEM;
	s->in_data = true;
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

/* Writes the header of the entry just read from disk (renamed relative to the root). */
static int add_entry(files_source_t *s, const char *path, const char *rel)
{
	struct archive_entry *e = s->entry, *spare = NULL;
	int r;

	archive_entry_copy_pathname(e, rel);
	archive_entry_linkify(s->links, &e, &spare);
	r = archive_write_header(s->tar, e);
	if (r == ARCHIVE_FAILED) {
		/* Sockets and such that tar cannot hold. */
		bop__log(BOP_LOG_WARN, "files", "skipping %s: %s", path, archive_error_string(s->tar));
		return 0;
	}
	if (r < ARCHIVE_WARN)
		return tar_error(s, path);
	if (r == ARCHIVE_WARN && s->utf8 && !names_utf8(e))
		bop__log(BOP_LOG_DEBUG, "files", "%s: its name is not UTF-8: stored as raw bytes", path);
	else if (r == ARCHIVE_WARN)
		bop__log(BOP_LOG_WARN, "files", "%s: %s", path, archive_error_string(s->tar));
	if (archive_entry_filetype(e) == AE_IFREG && archive_entry_size(e) > 0)
		return start_data(s, e, path);
	return 0;
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
		return disk_error(s, path, "read");
	}
	if (r < ARCHIVE_WARN)
		return disk_error(s, s->cfg->path, "walk");
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
		return disk_error(s, path, "enter");
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
	if (s->entry)
		archive_entry_free(s->entry);
	if (s->links)
		archive_entry_linkresolver_free(s->links);
	bop__files_config_free(s->cfg);
	if (s->utf8)
		freelocale(s->utf8);
	free(s->data_path);
	free(s->zeros);
	free(s->out);
	free(s);
}

static int open_disk(files_source_t *s)
{
	int flags = ARCHIVE_READDISK_NO_FFLAGS;

	s->disk = archive_read_disk_new();
	if (!s->disk)
		return bop__error_oom();
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
	s->base.version = BOP_SOURCE_VERSION;
	s->base.read = files_read;
	s->base.free = files_source_free;
	s->cfg = bop__files_config_dup(cfg);
	s->utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	s->zeros = bop__calloc(1, CHUNK);
	s->entry = archive_entry_new();
	if (!s->cfg || !s->zeros || !s->entry) {
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
