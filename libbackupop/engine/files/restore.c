/*
 * The files engine's restore: a sink that extracts a tar stream into a staging directory
 * beside the target (<target>.restore-XXXXXX), then swaps it into place on commit.
 *
 * libarchive's reader pulls its input, so the extraction runs on a worker thread. write()
 * copies the caller's bytes into a bounded ring (RING_SIZE) and returns, waiting only
 * while the ring is full; the worker's read callback lends libarchive the oldest bytes of
 * the ring (at most LEND_MAX) until its next call. The ring is large enough to even out a
 * run of small files (slow to extract) against one of large files (fast). So decrypting and decompressing (the caller's thread) run
 * alongside the extraction instead of taking turns with it, for one copy of the stream,
 * and memory stays bounded by the ring.
 *
 * Every name is checked before it is prefixed with the staging directory: absolute names
 * and ".." components fail the restore. (ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS cannot be
 * used since the prefixed names are absolute; the check above does its job.) Extraction
 * also refuses to write through symlinks. The staging directory is new and private (0700),
 * so the only symlinks in it are those this archive created: their names are kept, and an
 * entry (or hard link target) below one of them, or a non-symlink entry in a symlink's
 * place, fails the restore. This replaces libarchive's SECURE_SYMLINKS, which checks every
 * component of every (absolute) name with open/fstat/close: ten system calls a file, half
 * of the restore's time on a tree of small files. Owners are restored (numerically) when
 * running as root.
 *
 * The worker runs under C.UTF-8, so that the UTF-8 names of the pax headers come back as
 * the same bytes whatever the process's locale (names stored as raw bytes, hdrcharset=
 * BINARY, are not converted at all).
 *
 * Commit requires the extraction to have ended without error; then the staging directory
 * replaces the target: with renameat2(RENAME_EXCHANGE) when the target exists (atomic),
 * else a plain rename. Abort removes the staging directory; the target is never touched.
 */
#include "files.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MSG_MAX 1024
#define RING_SIZE (16u << 20)
#define LEND_MAX (1u << 20)      /* lent at once, so that write() has room meanwhile */

/* The names (relative, without "." or empty components) of the symlinks the archive
 * created: an open-addressing hash set. */
typedef struct name_set {
	char **slots;
	size_t cap, len;
} name_set_t;

typedef struct files_sink {
	bop_sink_t base;
	char *target;           /* absolute, with a canonical parent */
	char *staging;
	bool overwrite;
	pthread_t thread;
	bool started, finished;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* The stream between write() and the worker: [tail, head) of an ever-growing count,
	 * modulo RING_SIZE; the first `lent` bytes from tail are libarchive's until its next
	 * read. */
	unsigned char *ring;
	uint64_t head, tail;
	size_t lent;
	bool eof, aborting, worker_done;
	int worker_ret;
	char worker_msg[MSG_MAX];
	uint64_t entries;
	name_set_t symlinks;    /* used by the worker only */
} files_sink_t;

/* ---- removing trees ---- */

static int make_writable(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	BOP_UNUSED(ftw);
	if (flag == FTW_D || flag == FTW_DNR)
		chmod(path, (st->st_mode & 07777) | S_IRWXU);
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	BOP_UNUSED(st);
	BOP_UNUSED(flag);
	BOP_UNUSED(ftw);
	if (remove(path) < 0 && errno != ENOENT)
		bop__log(BOP_LOG_WARN, "files", "cannot remove %s: %s", path, strerror(errno));
	return 0;
}

void bop__files_remove_tree(const char *path)
{
	nftw(path, make_writable, 16, FTW_PHYS);
	nftw(path, remove_entry, 16, FTW_PHYS | FTW_DEPTH);
}

/* ---- the symlinks created so far ---- */

static size_t name_hash(const char *s, size_t len)
{
	size_t h = 14695981039346656037u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211u;
	return h;
}

/* The slot of the first `len` bytes of `name`: where it is, or the empty slot for it. */
static char **set_slot(const name_set_t *set, const char *name, size_t len)
{
	size_t i = name_hash(name, len) & (set->cap - 1);

	while (set->slots[i] && (strlen(set->slots[i]) != len || memcmp(set->slots[i], name, len)))
		i = (i + 1) & (set->cap - 1);
	return &set->slots[i];
}

static bool set_has(const name_set_t *set, const char *name, size_t len)
{
	return set->len > 0 && *set_slot(set, name, len) != NULL;
}

static int set_add(name_set_t *set, const char *name)
{
	char **slot;

	if (2 * (set->len + 1) > set->cap) {
		name_set_t grown = { bop__calloc(set->cap ? 2 * set->cap : 64, sizeof(char *)),
			set->cap ? 2 * set->cap : 64, set->len };

		if (!grown.slots)
			return -1;
		for (size_t i = 0; i < set->cap; i++)
			if (set->slots[i])
				*set_slot(&grown, set->slots[i], strlen(set->slots[i])) = set->slots[i];
		free(set->slots);
		*set = grown;
	}
	slot = set_slot(set, name, strlen(name));
	if (*slot)
		return 0;
	if (!(*slot = bop__strdup(name)))
		return -1;
	set->len++;
	return 0;
}

static void set_clear(name_set_t *set)
{
	for (size_t i = 0; i < set->cap; i++)
		free(set->slots[i]);
	free(set->slots);
	memset(set, 0, sizeof(*set));
}

/* `name` without "." and empty components (as libarchive resolves it); NULL if out of
 * memory. ".." was refused before. */
static char *normalized(const char *name)
{
	char *out = malloc(strlen(name) + 1), *o = out;

	if (!out)
		return NULL;
	while (*name) {
		size_t n = strcspn(name, "/");

		if (n && !(n == 1 && name[0] == '.')) {
			if (o > out)
				*o++ = '/';
			memcpy(o, name, n);
			o += n;
		}
		name += n;
		name += strspn(name, "/");
	}
	*o = '\0';
	return out;
}

/* The symlink of the archive that `norm` lies below, as a length of `norm`; 0 if none. */
static size_t below_symlink(const files_sink_t *s, const char *norm)
{
	for (const char *p = strchr(norm, '/'); p; p = strchr(p + 1, '/'))
		if (set_has(&s->symlinks, norm, (size_t)(p - norm)))
			return (size_t)(p - norm);
	return 0;
}

/* ---- the worker ---- */

static void worker_fail(files_sink_t *s, int code, const char *fmt, ...) BOP_PRINTF(3, 4);

static void worker_fail(files_sink_t *s, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->worker_msg, sizeof(s->worker_msg), fmt, ap);
	va_end(ap);
	s->worker_ret = code;
}

/* libarchive's read callback: the next buffer write() hands over. */
static la_ssize_t stream_read(struct archive *a, void *payload, const void **buf)
{
	files_sink_t *s = payload;
	la_ssize_t n = 0;

	pthread_mutex_lock(&s->lock);
	if (s->lent) {
		/* Room for write(), which may be waiting for it. */
		s->tail += s->lent;
		s->lent = 0;
		pthread_cond_broadcast(&s->cond);
	}
	while (s->head == s->tail && !s->eof && !s->aborting)
		pthread_cond_wait(&s->cond, &s->lock);
	if (s->aborting) {
		if (a)
			archive_set_error(a, ECANCELED, "the restore was aborted");
		n = -1;
	} else if (s->head > s->tail) {
		size_t off = (size_t)(s->tail % RING_SIZE), len = (size_t)(s->head - s->tail);

		if (len > RING_SIZE - off)
			len = RING_SIZE - off;
		if (len > LEND_MAX)
			len = LEND_MAX;
		s->lent = len;
		*buf = s->ring + off;
		n = (la_ssize_t)len;
	}
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* Whether `name` stays inside the target: relative, without ".." components. */
static bool name_safe(const char *name)
{
	const char *p = name;

	if (!*name || name[0] == '/')
		return false;
	while (*p) {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.')
			return false;
		p += n;
		p += strspn(p, "/");
	}
	return true;
}

/* Rewrites a name of the archive into the staging directory. */
static int staged_name(files_sink_t *s, const char *name, char **out)
{
	if (!name)
		return worker_fail(s, BOP_EFORMAT, "the archive has an entry without a name"), -1;
	if (!name_safe(name)) {
		worker_fail(s, BOP_EFORMAT, "refusing to restore \"%s\": names in the archive must be relative and must not contain \"..\"",
			name);
		return -1;
	}
	while (name[0] == '.' && name[1] == '/')
		name += 2 + strspn(name + 2, "/");
	if (!*name || !strcmp(name, "."))
		*out = bop__strdup(s->staging);
	else
		*out = bop__sprintf("%s/%s", s->staging, name);
	if (!*out)
		return worker_fail(s, BOP_ENOMEM, "out of memory"), -1;
	return 0;
}

/* Refuses an entry that would go through a symlink of the archive, or replace one with
 * something else; `*link_to_symlink` tells whether it is a hard link to a symlink (and so
 * a symlink itself once created). Runs on the names as they are in the archive. */
static int guard_symlinks(files_sink_t *s, struct archive_entry *e, bool *link_to_symlink)
{
	const char *name = archive_entry_pathname(e), *link = archive_entry_hardlink(e);
	char *norm = NULL, *norm_link = NULL;
	size_t at;
	int ret = -1;

	*link_to_symlink = false;
	if (s->symlinks.len == 0 || !name)
		return 0;       /* nothing to go through; a missing name fails in rename_entry */
	if (!(norm = normalized(name)) || (link && !(norm_link = normalized(link)))) {
		worker_fail(s, BOP_ENOMEM, "out of memory");
		goto out;
	}
	if ((at = below_symlink(s, norm)) > 0 || (norm_link && (at = below_symlink(s, norm_link)) > 0)) {
		const char *in = norm_link && !below_symlink(s, norm) ? norm_link : norm;

		worker_fail(s, BOP_EFORMAT, "refusing to restore \"%s\": it lies below \"%.*s\", a symlink of the archive",
			name, (int)at, in);
		goto out;
	}
	if (archive_entry_filetype(e) != AE_IFLNK && set_has(&s->symlinks, norm, strlen(norm))) {
		worker_fail(s, BOP_EFORMAT, "refusing to restore \"%s\": the archive made it a symlink before", name);
		goto out;
	}
	*link_to_symlink = norm_link && set_has(&s->symlinks, norm_link, strlen(norm_link));
	ret = 0;
out:
	free(norm);
	free(norm_link);
	return ret;
}

/* Remembers a symlink the archive just created. */
static int note_symlink(files_sink_t *s, const char *name)
{
	char *norm = normalized(name);
	int ret = norm ? set_add(&s->symlinks, norm) : -1;

	free(norm);
	if (ret < 0)
		worker_fail(s, BOP_ENOMEM, "out of memory");
	return ret;
}

static int rename_entry(files_sink_t *s, struct archive_entry *e)
{
	const char *name = archive_entry_pathname(e), *link = archive_entry_hardlink(e);
	char *path = NULL;

	if (staged_name(s, name, &path) < 0)
		return -1;
	archive_entry_copy_pathname(e, path);
	free(path);
	if (link) {
		if (staged_name(s, link, &path) < 0)
			return -1;
		archive_entry_copy_hardlink(e, path);
		free(path);
	}
	return 0;
}

static const char *aerr(struct archive *a)
{
	return archive_error_string(a) ? archive_error_string(a) : "unknown error";
}

static int copy_data(files_sink_t *s, struct archive *in, struct archive *out, const char *name)
{
	const void *buf;
	size_t len;
	la_int64_t off;
	int r;

	for (;;) {
		r = archive_read_data_block(in, &buf, &len, &off);
		if (r == ARCHIVE_EOF)
			return 0;
		if (r < ARCHIVE_WARN) {
			worker_fail(s, BOP_EFORMAT, "cannot read %s from the archive: %s", name, aerr(in));
			return -1;
		}
		if (archive_write_data_block(out, buf, len, off) < ARCHIVE_WARN) {
			worker_fail(s, BOP_EIO, "cannot write %s: %s", name, aerr(out));
			return -1;
		}
	}
}

static int extract_entry(files_sink_t *s, struct archive *in, struct archive *out,
	struct archive_entry *e)
{
	char *name = bop__strdup(archive_entry_pathname(e) ? archive_entry_pathname(e) : "?");
	bool is_symlink = archive_entry_filetype(e) == AE_IFLNK && !archive_entry_hardlink(e);
	bool link_to_symlink = false;
	int r, ret = -1;

	if (!name)
		return worker_fail(s, BOP_ENOMEM, "out of memory"), -1;
	if (guard_symlinks(s, e, &link_to_symlink) < 0 || rename_entry(s, e) < 0)
		goto out;
	r = archive_write_header(out, e);
	if (r == ARCHIVE_WARN)
		bop__log(BOP_LOG_WARN, "files", "restoring %s: %s", name, aerr(out));
	if (r < ARCHIVE_WARN) {
		worker_fail(s, BOP_EIO, "cannot restore %s: %s", name, aerr(out));
		goto out;
	}
	if ((is_symlink || link_to_symlink) && note_symlink(s, name) < 0)
		goto out;
	if (archive_entry_size(e) > 0 && copy_data(s, in, out, name) < 0)
		goto out;
	r = archive_write_finish_entry(out);
	if (r == ARCHIVE_WARN)
		bop__log(BOP_LOG_WARN, "files", "restoring %s: %s", name, aerr(out));
	if (r < ARCHIVE_WARN) {
		worker_fail(s, BOP_EIO, "cannot restore %s: %s", name, aerr(out));
		goto out;
	}
	s->entries++;
	ret = 0;
out:
	free(name);
	return ret;
}

static int extract_flags(void)
{
	/* Symlinks: see guard_symlinks(). The holes of sparse files are in the archive (the
	 * backup records them) and come back as holes without ARCHIVE_EXTRACT_SPARSE, which
	 * would also scan all data for zeros and write it one file system block (4 KiB) per
	 * system call. */
	int flags = ARCHIVE_EXTRACT_SECURE_NODOTDOT |
		ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_ACL |
		ARCHIVE_EXTRACT_XATTR;

	if (geteuid() == 0)
		flags |= ARCHIVE_EXTRACT_OWNER;
	return flags;
}

static void extract(files_sink_t *s, struct archive *in, struct archive *out)
{
	struct archive_entry *e;
	int r;

	for (;;) {
		r = archive_read_next_header(in, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r == ARCHIVE_WARN)
			bop__log(BOP_LOG_WARN, "files", "reading the archive: %s", aerr(in));
		if (r < ARCHIVE_WARN) {
			worker_fail(s, archive_errno(in) == ECANCELED ? BOP_ECANCELED : BOP_EFORMAT,
				"the stream is not a readable tar archive: %s", aerr(in));
			return;
		}
		if (extract_entry(s, in, out, e) < 0)
			return;
	}
	/* Directory times and permissions are set at close. */
	if (archive_write_close(out) < ARCHIVE_WARN)
		worker_fail(s, BOP_EIO, "cannot finish the restore into %s: %s", s->staging, aerr(out));
}

/* After the end of the archive, takes (and ignores) the rest of the stream: tar padding. */
static void drain(files_sink_t *s)
{
	const void *buf;

	while (stream_read(NULL, s, &buf) > 0)
		;
}

static void *worker(void *arg)
{
	files_sink_t *s = arg;
	locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	struct archive *in, *out;

	pthread_setname_np(pthread_self(), "bop-extract");

	if (utf8)
		uselocale(utf8);
	in = archive_read_new();
	out = archive_write_disk_new();

	if (!in || !out) {
		worker_fail(s, BOP_ENOMEM, "out of memory");
		goto out;
	}
	if (archive_read_support_format_tar(in) < ARCHIVE_OK ||
			archive_write_disk_set_options(out, extract_flags()) < ARCHIVE_OK) {
		worker_fail(s, BOP_ERROR, "cannot set up the extraction: %s", aerr(in));
		goto out;
	}
	if (archive_read_open(in, s, NULL, stream_read, NULL) < ARCHIVE_OK) {
		worker_fail(s, archive_errno(in) == ECANCELED ? BOP_ECANCELED : BOP_EFORMAT,
			"the stream is not a readable tar archive: %s", aerr(in));
		goto out;
	}
	extract(s, in, out);
	if (s->worker_ret == 0)
		drain(s);
out:
	if (in)
		archive_read_free(in);
	if (out)
		archive_write_free(out);
	if (utf8) {
		uselocale(LC_GLOBAL_LOCALE);
		freelocale(utf8);
	}
	pthread_mutex_lock(&s->lock);
	s->worker_done = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* ---- the sink ---- */

/* The worker's failure, as this thread's error. */
static int worker_error(files_sink_t *s)
{
	if (s->worker_ret < 0)
		return bop__error(s->worker_ret, "restore into %s: %s", s->target, s->worker_msg);
	return bop__error(BOP_EFORMAT, "restore into %s: data follows the end of the tar archive",
		s->target);
}

static int files_write(bop_sink_t *base, const void *buf, size_t len)
{
	files_sink_t *s = (files_sink_t *)base;
	const unsigned char *p = buf;
	int ret = 0;

	if (s->finished)
		return bop__error(BOP_EINVAL, "the restore into %s is already finished", s->target);
	if (len == 0)
		return 0;
	pthread_mutex_lock(&s->lock);
	while (len > 0 && !s->worker_done) {
		size_t off = (size_t)(s->head % RING_SIZE);
		size_t room = RING_SIZE - (size_t)(s->head - s->tail), k = len;

		if (room == 0) {
			pthread_cond_wait(&s->cond, &s->lock);
			continue;
		}
		if (k > room)
			k = room;
		if (k > RING_SIZE - off)
			k = RING_SIZE - off;
		pthread_mutex_unlock(&s->lock);
		/* [head, tail + RING_SIZE) is ours: the worker reads only [tail, head). */
		memcpy(s->ring + off, p, k);
		pthread_mutex_lock(&s->lock);
		s->head += k;
		p += k;
		len -= k;
		pthread_cond_broadcast(&s->cond);
	}
	/* The worker only stops early on an error. */
	if (s->worker_done && s->worker_ret < 0)
		ret = worker_error(s);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/* Tells the worker the stream ended (or was aborted) and waits for it. */
static void stop_worker(files_sink_t *s, bool abort)
{
	if (!s->started)
		return;
	pthread_mutex_lock(&s->lock);
	if (abort)
		s->aborting = true;
	s->eof = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	s->started = false;
}

static void discard_staging(files_sink_t *s)
{
	if (s->staging) {
		bop__files_remove_tree(s->staging);
		free(s->staging);
		s->staging = NULL;
	}
}

/* For file systems without RENAME_EXCHANGE: the old tree is renamed aside first. */
static int swap_by_renames(files_sink_t *s)
{
	char *old = bop__sprintf("%s.old", s->staging);
	int ret = 0;

	if (!old)
		return BOP_ENOMEM;
	if (rename(s->target, old) < 0) {
		ret = bop__error_errno(BOP_EIO, errno, "cannot move %s aside to replace it", s->target);
		free(old);
		return ret;
	}
	if (rename(s->staging, s->target) < 0) {
		ret = bop__error_errno(BOP_EIO, errno, "cannot move the restored tree %s to %s",
			s->staging, s->target);
		if (rename(old, s->target) < 0)
			bop__log(BOP_LOG_ERROR, "files", "cannot put %s back in place: %s; it is at %s",
				s->target, strerror(errno), old);
		free(old);
		return ret;
	}
	free(s->staging);
	s->staging = old;       /* removed by the caller */
	return 0;
}

/* Puts the staging directory in the target's place. */
static int swap_into_place(files_sink_t *s)
{
	struct stat st;

	if (lstat(s->target, &st) < 0) {
		if (errno != ENOENT)
			return bop__error_errno(BOP_EIO, errno, "cannot restore into %s", s->target);
		if (rename(s->staging, s->target) < 0)
			return bop__error_errno(BOP_EIO, errno, "cannot move the restored tree %s to %s",
				s->staging, s->target);
		free(s->staging);
		s->staging = NULL;
		return 0;
	}
	if (!s->overwrite)
		return bop__error(BOP_EEXISTS, "cannot restore into %s: it exists; set \"restore\": {\"overwrite\": true} to replace it",
			s->target);
	if (renameat2(AT_FDCWD, s->staging, AT_FDCWD, s->target, RENAME_EXCHANGE) < 0) {
		if (errno != EINVAL && errno != ENOSYS)
			return bop__error_errno(BOP_EIO, errno, "cannot swap the restored tree %s with %s",
				s->staging, s->target);
		return swap_by_renames(s);
	}
	/* The staging name now holds the old tree. */
	bop__log(BOP_LOG_INFO, "files", "replaced %s; removing its previous contents", s->target);
	return 0;
}

static int files_commit(bop_sink_t *base)
{
	files_sink_t *s = (files_sink_t *)base;
	int ret;

	if (s->finished)
		return bop__error(BOP_EINVAL, "the restore into %s is already finished", s->target);
	stop_worker(s, false);
	s->finished = true;
	if (s->worker_ret < 0) {
		ret = worker_error(s);
		discard_staging(s);
		return ret;
	}
	ret = swap_into_place(s);
	discard_staging(s);
	if (ret == 0)
		bop__log(BOP_LOG_INFO, "files", "restored %llu entries into %s",
			(unsigned long long)s->entries, s->target);
	return ret;
}

static void files_abort(bop_sink_t *base)
{
	files_sink_t *s = (files_sink_t *)base;

	if (s->finished)
		return;
	stop_worker(s, true);
	s->finished = true;
	discard_staging(s);
}

static void files_sink_free(bop_sink_t *base)
{
	files_sink_t *s = (files_sink_t *)base;

	files_abort(base);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	set_clear(&s->symlinks);
	free(s->ring);
	free(s->target);
	free(s);
}

/* The target with its parent directory resolved, so that no symlink is on the way. */
static int resolve_target(const char *path, char **out)
{
	char *copy = bop__strdup(path), *copy2 = bop__strdup(path);
	char parent[PATH_MAX];
	int ret = 0;

	if (!copy || !copy2) {
		ret = BOP_ENOMEM;
		goto out;
	}
	if (!realpath(dirname(copy), parent)) {
		ret = bop__error_errno(BOP_EIO, errno, "cannot restore into %s: its parent directory", path);
		goto out;
	}
	*out = bop__sprintf("%s/%s", strcmp(parent, "/") ? parent : "", basename(copy2));
	if (!*out)
		ret = BOP_ENOMEM;
out:
	free(copy);
	free(copy2);
	return ret;
}

static int prepare(files_sink_t *s, const bop__files_config_t *cfg)
{
	struct stat st;
	int ret, err;

	if ((ret = resolve_target(cfg->restore_path, &s->target)) < 0)
		return ret;
	if (lstat(s->target, &st) == 0 && !s->overwrite)
		return bop__error(BOP_EEXISTS, "cannot restore into %s: it exists; set \"restore\": {\"overwrite\": true} to replace it",
			s->target);
	s->staging = bop__sprintf("%s.restore-XXXXXX", s->target);
	if (!s->staging)
		return BOP_ENOMEM;
	if (!mkdtemp(s->staging)) {
		ret = bop__error_errno(BOP_EIO, errno, "cannot create the staging directory %s", s->staging);
		free(s->staging);
		s->staging = NULL;
		return ret;
	}
	if ((err = pthread_create(&s->thread, NULL, worker, s)) != 0)
		return bop__error_errno(BOP_ERROR, err, "cannot start the restore thread");
	s->started = true;
	return 0;
}

int bop__files_sink_new(bop_sink_t **out, const bop__files_config_t *cfg)
{
	files_sink_t *s = bop__calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return BOP_ENOMEM;
	s->base.version = BOP_SINK_VERSION;
	s->base.write = files_write;
	s->base.commit = files_commit;
	s->base.abort = files_abort;
	s->base.free = files_sink_free;
	s->overwrite = cfg->overwrite;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->ring = malloc(RING_SIZE);
	if (!s->ring) {
		files_sink_free(&s->base);
		return bop__error_oom();
	}
	if ((ret = prepare(s, cfg)) < 0) {
		files_sink_free(&s->base);
		return ret;
	}
	*out = &s->base;
	return 0;
}
