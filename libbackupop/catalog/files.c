/*
 * Multi-file backups: a backup made of many named files (the cockroach engine), each its
 * own object "<name>/<id>/files/<n>-<sanitized name>[.zst|.gz][.age]", listed in the
 * manifest's "files" array.
 *
 * Writing a file: the caller writes to a sink that feeds one end of a socket pair; a
 * thread runs the encode chain of catalog/backup.c (sha256 -> compress -> age -> sha256)
 * into the storage, reading the other end. Memory is bounded by the pipeline's buffers
 * and the socket's.
 * Reading a file: a thread runs the decode chain of catalog/backup.c (sha256 -> age ->
 * zstd -> sha256 -> holdback) into a socket pair, dropping the bytes before the offset; the
 * source reads the other end and reports the pipeline's result at the end. Seeking is
 * done by decoding from the start: the formats have no index.
 */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#define PIPE_BUFFER (256u << 10)
#define NAME_MAX_LEN 1024
#define KEY_NAME_MAX 80
#define ERROR_MAX 2048

/* A failure on one thread, carried to another. */
typedef struct carried_error {
	int code;
	char message[ERROR_MAX];
} carried_error_t;

static void carry(carried_error_t *e, int code)
{
	e->code = code ? code : BOP_ERROR;
	snprintf(e->message, sizeof(e->message), "%s", bop_error_last());
}

static int raise_carried(const carried_error_t *e)
{
	return bop__error(e->code, "%s", e->message);
}

struct bop_backup_session {
	bop_catalog_t *catalog;
	bop_backup_options_t opts;
	char id[32];
	int64_t start_ms;
	pthread_mutex_t mu;
	bop__file_entry_t *files;
	size_t nfiles;
	size_t cap;
	unsigned long next_seq;
	unsigned int writing;           /* sinks not yet committed or aborted */
	unsigned int refs;              /* the owner and each open sink */
	bool closed;                    /* committed or being freed: no new files */
	bool committed;
	pthread_mutex_t progress_mu;
	uint64_t total_in;
	uint64_t total_out;
};

/* ---- small helpers ---- */

static bool file_name_valid(const char *name)
{
	return name && strlen(name) <= NAME_MAX_LEN && bop__catalog_path_valid(name);
}

/* Letters, digits, '.', '-' and '_' of the name (others become '_'), at most
 * KEY_NAME_MAX of its last characters: readable, and never a path. */
static void sanitize(char *out, const char *name)
{
	size_t n = strlen(name), skip = n > KEY_NAME_MAX ? n - KEY_NAME_MAX : 0, j = 0;

	for (size_t i = skip; i < n; i++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			c == '.' || c == '-' || c == '_';

		out[j++] = ok ? c : '_';
	}
	out[j] = '\0';
}

static void entry_clear(bop__file_entry_t *f)
{
	free(f->name);
	free(f->object);
	memset(f, 0, sizeof(*f));
}

static int entry_copy(bop__file_entry_t *dst, const bop__file_entry_t *src)
{
	*dst = *src;
	dst->name = bop__strdup(src->name);
	dst->object = bop__strdup(src->object);
	if (!dst->name || !dst->object) {
		entry_clear(dst);
		return BOP_ENOMEM;
	}
	return 0;
}

/* Removes objects, logging (not reporting) failures: used on paths that already fail. */
static void remove_objects_quietly(bop_storage_t *storage, char *const *keys, size_t n)
{
	carried_error_t saved;

	if (!n)
		return;
	carry(&saved, bop_error_last_code());
	if (bop_storage_remove_many(storage, (const char *const *)keys, n) < 0)
		bop__log(BOP_LOG_WARN, "catalog", "cannot remove %zu stored file(s): %s", n,
			bop_error_last());
	bop__error(saved.code, "%s", saved.message);
}

/* ---- the session ---- */

static void session_unref(bop_backup_session_t *s);

BOP_EXTERN(int) bop_catalog_backup_begin(bop_catalog_t *catalog, bop_backup_session_t **out,
	const bop_backup_options_t *opts)
{
	bop_backup_options_t defaults = BOP_BACKUP_OPTIONS_INIT;
	bop_backup_session_t *s;
	int ret;

	if (!catalog || !out)
		return bop__error(BOP_EINVAL, "bop_catalog_backup_begin: invalid arguments");
	*out = NULL;
	s = bop__calloc(1, sizeof(*s));
	if (!s)
		return BOP_ENOMEM;
	s->catalog = catalog;
	s->opts = opts ? *opts : defaults;
	s->start_ms = bop__now_ms();
	s->refs = 1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->progress_mu, NULL);
	if ((ret = bop__catalog_check_backup_options(&s->opts)) < 0 ||
	    (ret = bop__catalog_new_id(s->id, sizeof(s->id), s->start_ms / 1000)) < 0) {
		session_unref(s);
		return ret;
	}
	*out = s;
	return 0;
}

BOP_EXTERN(const char *) bop_backup_session_id(const bop_backup_session_t *s)
{
	return s ? s->id : NULL;
}

/* Index of file `name`, or -1. Under mu. */
static ssize_t find_locked(const bop_backup_session_t *s, const char *name)
{
	for (size_t i = 0; i < s->nfiles; i++)
		if (!strcmp(s->files[i].name, name))
			return (ssize_t)i;
	return -1;
}

/* Every object under "<name>/<id>/" and those of the files: nothing of a backup that
 * does not exist may stay. */
static void remove_everything(bop_backup_session_t *s)
{
	bop_storage_t *storage = bop__catalog_storage(s->catalog);
	char **keys = bop__calloc(s->nfiles + 1, sizeof(*keys));

	if (!keys)
		return;
	for (size_t i = 0; i < s->nfiles; i++)
		keys[i] = s->files[i].object;
	remove_objects_quietly(storage, keys, s->nfiles);
	free(keys);
}

static void session_destroy(bop_backup_session_t *s)
{
	if (!s->committed && s->nfiles) {
		bop__log(BOP_LOG_INFO, "catalog", "backup %s was not completed: removing its %zu "
			"stored file(s)", s->id, s->nfiles);
		remove_everything(s);
	}
	for (size_t i = 0; i < s->nfiles; i++)
		entry_clear(&s->files[i]);
	free(s->files);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->progress_mu);
	free(s);
}

static void session_unref(bop_backup_session_t *s)
{
	bool last;

	pthread_mutex_lock(&s->mu);
	last = --s->refs == 0;
	pthread_mutex_unlock(&s->mu);
	if (last)
		session_destroy(s);
}

BOP_EXTERN(void) bop_backup_session_free(bop_backup_session_t *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->closed = true;
	pthread_mutex_unlock(&s->mu);
	session_unref(s);
}

/* Records a committed file, replacing one of the same name; *old receives the replaced
 * object's key (to remove) or NULL. Under mu. */
static int record_locked(bop_backup_session_t *s, bop__file_entry_t *f, char **old)
{
	ssize_t i = find_locked(s, f->name);

	*old = NULL;
	if (i >= 0) {
		*old = s->files[i].object;
		free(s->files[i].name);
		s->files[i] = *f;
		memset(f, 0, sizeof(*f));
		return 0;
	}
	if (s->nfiles == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 32;
		bop__file_entry_t *grown = realloc(s->files, cap * sizeof(*grown));

		if (!grown)
			return bop__error_oom();
		s->files = grown;
		s->cap = cap;
	}
	s->files[s->nfiles++] = *f;
	memset(f, 0, sizeof(*f));
	return 0;
}

BOP_EXTERN(int) bop_backup_session_stat(bop_backup_session_t *s, uint64_t *plain_bytes,
	const char *name)
{
	ssize_t i;

	if (!s || !name || !plain_bytes)
		return bop__error(BOP_EINVAL, "bop_backup_session_stat: invalid arguments");
	pthread_mutex_lock(&s->mu);
	i = find_locked(s, name);
	if (i >= 0)
		*plain_bytes = s->files[i].plain_bytes;
	pthread_mutex_unlock(&s->mu);
	return i >= 0 ? 0 : bop__error(BOP_ENOTFOUND, "backup %s has no file \"%s\"", s->id, name);
}

BOP_EXTERN(int) bop_backup_session_remove(bop_backup_session_t *s, const char *name)
{
	bop__file_entry_t gone = { 0 };
	ssize_t i;
	int ret;

	if (!s || !name)
		return bop__error(BOP_EINVAL, "bop_backup_session_remove: invalid arguments");
	pthread_mutex_lock(&s->mu);
	i = s->committed ? -1 : find_locked(s, name);
	if (i >= 0) {
		gone = s->files[i];
		s->files[i] = s->files[--s->nfiles];
	}
	pthread_mutex_unlock(&s->mu);
	if (i < 0)
		return bop__error(BOP_ENOTFOUND, "backup %s has no file \"%s\"", s->id, name);
	ret = bop_storage_remove(bop__catalog_storage(s->catalog), gone.object);
	if (ret == BOP_ENOTFOUND)
		ret = 0;
	if (ret < 0)
		bop__error_wrap("removing file \"%s\" of backup %s", name, s->id);
	entry_clear(&gone);
	return ret;
}

/* ---- writing a file ---- */

typedef struct file_writer {
	bop_sink_t base;
	bop_backup_session_t *s;
	bop__file_entry_t entry;        /* name and object; the rest at the end */
	int fd;                         /* our end of the socket pair, -1 once closed */
	pthread_t thread;
	bool started;
	bool finished;                  /* committed or aborted */
	pthread_mutex_t mu;
	bop_pipeline_t *p;              /* while the thread runs, under mu */
	bop__encode_taps_t taps;
	int result;
	carried_error_t error;
	uint64_t last_in;
	uint64_t last_out;
} file_writer_t;

static void writer_progress(uint64_t in, uint64_t out, void *payload)
{
	file_writer_t *w = payload;
	bop_backup_session_t *s = w->s;

	pthread_mutex_lock(&s->progress_mu);
	s->total_in += in - w->last_in;
	s->total_out += out - w->last_out;
	w->last_in = in;
	w->last_out = out;
	if (s->opts.progress)
		s->opts.progress(s->total_in, s->total_out, s->opts.payload);
	pthread_mutex_unlock(&s->progress_mu);
}

/* Takes `fd` (the pipeline's end of the socket pair). */
static int build_writer(file_writer_t *w, int fd)
{
	bop_pipeline_options_t popts = BOP_PIPELINE_OPTIONS_INIT;
	bop_storage_t *storage = bop__catalog_storage(w->s->catalog);
	bop_source_t *src = NULL;
	bop_sink_t *sink = NULL;
	bop_pipeline_t *p = NULL;
	int ret;

	popts.buffer_size = PIPE_BUFFER;
	popts.progress = writer_progress;
	popts.payload = w;
	ret = bop_pipeline_new(&p, &popts);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	bop__pipeline_watch(p, bop__catalog_cancel_flag(w->s->catalog));
	ret = bop_source_fd_new(&src, fd, 1);
	if (ret < 0)
		close(fd);
	if (ret == 0)
		ret = bop_pipeline_set_source(p, src);
	if (ret == 0)
		ret = bop__catalog_add_encode(p, &w->s->opts, &w->taps);
	if (ret == 0)
		ret = bop_storage_put(storage, &sink, w->entry.object, NULL);
	if (ret == 0)
		ret = bop_pipeline_set_sink(p, sink);
	if (ret < 0) {
		bop_pipeline_free(p);
		return ret;
	}
	w->p = p;
	return 0;
}

static void *writer_thread(void *arg)
{
	file_writer_t *w = arg;
	bop_pipeline_t *p = w->p;
	int ret;

	pthread_setname_np(pthread_self(), "bop-put");

	ret = bop_pipeline_run(p);
	if (ret == 0)
		ret = bop__catalog_encode_result(&w->taps, w->entry.plain_sha256,
			&w->entry.plain_bytes, w->entry.stored_sha256, &w->entry.stored_bytes);
	if (ret < 0)
		carry(&w->error, ret);
	pthread_mutex_lock(&w->mu);
	w->p = NULL;
	w->result = ret;
	pthread_mutex_unlock(&w->mu);
	/* Closes the pipeline's end: a writer still sending gets EPIPE, not a hang. */
	bop_pipeline_free(p);
	return NULL;
}

/* Ends the thread: cleanly (EOF) or, with `cancel`, failing its pipeline first. */
static int writer_join(file_writer_t *w, bool cancel)
{
	if (!w->started)
		return w->result;
	pthread_mutex_lock(&w->mu);
	if (cancel && w->p)
		bop_pipeline_cancel(w->p);
	pthread_mutex_unlock(&w->mu);
	if (w->fd >= 0) {
		close(w->fd);
		w->fd = -1;
	}
	pthread_join(w->thread, NULL);
	w->started = false;
	return w->result;
}

static int writer_failed(file_writer_t *w)
{
	writer_join(w, true);
	if (w->result < 0)
		return raise_carried(&w->error);
	return bop__error(BOP_EIO, "storing file \"%s\" failed", w->entry.name);
}

static int writer_write(bop_sink_t *base, const void *buf, size_t len)
{
	file_writer_t *w = (file_writer_t *)base;
	const char *p = buf;

	if (w->fd < 0 || w->finished)
		return bop__error(BOP_EINVAL, "file \"%s\" is already complete", w->entry.name);
	while (len > 0) {
		ssize_t n = send(w->fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return writer_failed(w);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void writer_done_locked(file_writer_t *w)
{
	w->finished = true;
	w->s->writing--;
}

/* The stored object must have exactly the bytes the pipeline wrote. */
static int check_stored(file_writer_t *w)
{
	bop_storage_stat_t st = { BOP_STORAGE_STAT_VERSION, 0, 0 };
	int ret = bop_storage_stat(bop__catalog_storage(w->s->catalog), &st, w->entry.object);

	if (ret == BOP_ENOTSUPPORTED)
		return 0;
	if (ret < 0)
		return ret;
	if (st.size != w->entry.stored_bytes)
		return bop__error(BOP_EINTEGRITY, "the storage holds %llu bytes of %s, but %llu "
			"were written", (unsigned long long)st.size, w->entry.object,
			(unsigned long long)w->entry.stored_bytes);
	return 0;
}

static int writer_commit(bop_sink_t *base)
{
	file_writer_t *w = (file_writer_t *)base;
	bop_backup_session_t *s = w->s;
	char *old = NULL;
	int ret;

	if (w->finished)
		return bop__error(BOP_EINVAL, "file \"%s\" is already complete", w->entry.name);
	ret = writer_join(w, false);
	if (ret < 0)
		ret = raise_carried(&w->error);
	if (ret == 0)
		ret = check_stored(w);
	pthread_mutex_lock(&s->mu);
	if (ret == 0 && s->closed)
		ret = bop__error(BOP_ECANCELED, "backup %s has ended: file \"%s\" is not part of it",
			s->id, w->entry.name);
	if (ret == 0)
		ret = record_locked(s, &w->entry, &old);
	writer_done_locked(w);
	pthread_mutex_unlock(&s->mu);
	if (ret < 0) {
		remove_objects_quietly(bop__catalog_storage(s->catalog), &w->entry.object, 1);
		return bop__error_wrap("storing file \"%s\" of backup %s", w->entry.name ?
			w->entry.name : "", s->id);
	}
	if (old)
		remove_objects_quietly(bop__catalog_storage(s->catalog), &old, 1);
	free(old);
	return 0;
}

static void writer_abort(bop_sink_t *base)
{
	file_writer_t *w = (file_writer_t *)base;

	if (w->finished)
		return;
	/* The pipeline aborts its storage sink: nothing of the file is left. */
	writer_join(w, true);
	pthread_mutex_lock(&w->s->mu);
	writer_done_locked(w);
	pthread_mutex_unlock(&w->s->mu);
}

static void writer_free(bop_sink_t *base)
{
	file_writer_t *w = (file_writer_t *)base;

	writer_abort(base);
	entry_clear(&w->entry);
	pthread_mutex_destroy(&w->mu);
	session_unref(w->s);
	free(w);
}

static int new_object_key(bop_backup_session_t *s, const char *name, bop__file_entry_t *f)
{
	char clean[KEY_NAME_MAX + 1];
	unsigned long seq;

	pthread_mutex_lock(&s->mu);
	seq = ++s->next_seq;
	pthread_mutex_unlock(&s->mu);
	sanitize(clean, name);
	f->name = bop__strdup(name);
	f->object = bop__sprintf("%s/%s/files/%06lu-%s%s%s", bop__catalog_name(s->catalog), s->id,
		seq, clean, bop_compression_suffix(s->opts.compression), s->opts.keys ? ".age" : "");
	return f->name && f->object ? 0 : BOP_ENOMEM;
}

/* Registers the writer with the session (refs, writing); BOP_ECANCELED once closed. */
static int attach(bop_backup_session_t *s)
{
	int ret = 0;

	pthread_mutex_lock(&s->mu);
	if (s->closed || *bop__catalog_cancel_flag(s->catalog))
		ret = bop__error(BOP_ECANCELED, "backup %s has ended or was canceled", s->id);
	else {
		s->refs++;
		s->writing++;
	}
	pthread_mutex_unlock(&s->mu);
	return ret;
}

static int start_writer(file_writer_t *w)
{
	int fds[2], ret;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
		return bop__error_errno(BOP_EIO, errno, "cannot create a socket pair");
	w->fd = fds[1];
	ret = build_writer(w, fds[0]);
	if (ret < 0)
		return ret;
	if (pthread_create(&w->thread, NULL, writer_thread, w) != 0) {
		bop_pipeline_free(w->p);
		w->p = NULL;
		return bop__error(BOP_ERROR, "cannot start a thread to store file \"%s\"", w->entry.name);
	}
	w->started = true;
	return 0;
}

BOP_EXTERN(int) bop_backup_session_put(bop_backup_session_t *s, bop_sink_t **out,
	const char *name)
{
	file_writer_t *w;
	int ret;

	if (!s || !out)
		return bop__error(BOP_EINVAL, "bop_backup_session_put: invalid arguments");
	*out = NULL;
	if (!file_name_valid(name))
		return bop__error(BOP_EINVAL, "invalid file name \"%.200s\": use a relative "
			"'/'-separated path without empty, \".\" or \"..\" parts, of at most %d bytes",
			name ? name : "", NAME_MAX_LEN);
	if ((ret = attach(s)) < 0)
		return ret;
	w = bop__calloc(1, sizeof(*w));
	if (!w) {
		pthread_mutex_lock(&s->mu);
		s->writing--;
		pthread_mutex_unlock(&s->mu);
		session_unref(s);
		return BOP_ENOMEM;
	}
	w->base = (bop_sink_t)BOP_SINK_INIT(.write = writer_write, .commit = writer_commit,
		.abort = writer_abort, .free = writer_free);
	w->s = s;
	w->fd = -1;
	pthread_mutex_init(&w->mu, NULL);
	ret = new_object_key(s, name, &w->entry);
	if (ret == 0)
		ret = start_writer(w);
	if (ret < 0) {
		if (w->fd >= 0)
			close(w->fd);
		w->fd = -1;
		writer_free(&w->base);
		return bop__error_wrap("cannot store file \"%s\"", name);
	}
	*out = &w->base;
	return 0;
}

/* ---- committing ---- */

/* SHA-256 of "<sha256>  <name or object>\n" over the files (sorted by name). */
static int digest_of(const bop_manifest_t *m, bool stored, char *hex, uint64_t *total)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t n = 0;
	const bop__file_entry_t *f = bop__manifest_files(m, &n);
	int ok;

	*total = 0;
	ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
	for (size_t i = 0; ok && i < n; i++) {
		const char *h = stored ? f[i].stored_sha256 : f[i].plain_sha256;
		const char *what = stored ? f[i].object : f[i].name;

		ok = EVP_DigestUpdate(ctx, h, strlen(h)) == 1 && EVP_DigestUpdate(ctx, "  ", 2) == 1 &&
			EVP_DigestUpdate(ctx, what, strlen(what)) == 1 &&
			EVP_DigestUpdate(ctx, "\n", 1) == 1;
		*total += stored ? f[i].stored_bytes : f[i].plain_bytes;
	}
	ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return bop__error(BOP_ERROR, "SHA-256 failed in OpenSSL");
	bop__hex(hex, md, mdlen);
	return 0;
}

/* The manifest: first with the files only (sorted by the manifest), then with the totals
 * computed over them. */
static int make_manifest(bop_backup_session_t *s, bop_manifest_t **out)
{
	static const char zero[BOP_SHA256_HEX_SIZE] =
		"0000000000000000000000000000000000000000000000000000000000000000";
	bop__manifest_info_t info = { 0 };
	char plain[BOP_SHA256_HEX_SIZE], stored[BOP_SHA256_HEX_SIZE];
	bop_manifest_t *draft = NULL;
	char **fps = NULL, *object = NULL;
	int ret;

	if (s->opts.keys && (ret = bop__keys_fingerprints(s->opts.keys, &fps)) < 0)
		return ret;
	object = bop__sprintf("%s/%s/files", bop__catalog_name(s->catalog), s->id);
	if (!object) {
		ret = BOP_ENOMEM;
		goto out;
	}
	info.id = s->id;
	info.name = bop__catalog_name(s->catalog);
	info.engine = s->opts.engine ? s->opts.engine : "stdin";
	info.start_ms = s->start_ms;
	info.end_ms = bop__now_ms() < s->start_ms ? s->start_ms : bop__now_ms();
	info.plain_sha256 = zero;
	info.stored_sha256 = zero;
	info.compression = s->opts.compression;
	info.level = bop__catalog_effective_level(s->opts.compression, s->opts.level);
	info.encryption = s->opts.keys ? bop__keys_kind(s->opts.keys) : "none";
	info.recipients = (const char *const *)fps;
	info.tags = s->opts.tags;
	info.object = object;
	info.has_files = true;
	info.files = s->files;
	info.nfiles = s->nfiles;
	if ((ret = bop__manifest_new(&draft, &info)) < 0 ||
	    (ret = digest_of(draft, false, plain, &info.plain_bytes)) < 0 ||
	    (ret = digest_of(draft, true, stored, &info.stored_bytes)) < 0)
		goto out;
	info.plain_sha256 = plain;
	info.stored_sha256 = stored;
	ret = bop__manifest_new(out, &info);
out:
	bop_manifest_free(draft);
	bop__strv_free(fps);
	free(object);
	return ret;
}

BOP_EXTERN(int) bop_backup_session_commit(bop_backup_session_t *s, bop_manifest_t **out)
{
	bop_manifest_t *m = NULL;
	int ret = 0;

	if (out)
		*out = NULL;
	if (!s)
		return bop__error(BOP_EINVAL, "bop_backup_session_commit: NULL session");
	pthread_mutex_lock(&s->mu);
	if (s->closed)
		ret = bop__error(BOP_EINVAL, "backup %s has already ended", s->id);
	else if (s->writing)
		ret = bop__error(BOP_ECONFLICT, "%u file(s) of backup %s are still being written",
			s->writing, s->id);
	else if (*bop__catalog_cancel_flag(s->catalog))
		ret = bop__error(BOP_ECANCELED, "the operation was canceled");
	s->closed = ret == 0;
	pthread_mutex_unlock(&s->mu);
	if (ret < 0)
		return ret;
	ret = make_manifest(s, &m);
	if (ret == 0)
		ret = bop__catalog_write_manifest(s->catalog, s->id, m);
	if (ret < 0) {
		bop_manifest_free(m);
		return bop__error_wrap("backup failed");
	}
	s->committed = true;
	bop__log(BOP_LOG_INFO, "catalog", "backup %s of %s: %zu files, %llu bytes, %llu stored",
		s->id, bop__catalog_name(s->catalog), s->nfiles,
		(unsigned long long)bop_manifest_plain_bytes(m),
		(unsigned long long)bop_manifest_stored_bytes(m));
	if (out)
		*out = m;
	else
		bop_manifest_free(m);
	return 0;
}

/* ---- reading a file ---- */

typedef struct file_reader {
	bop_source_t base;
	bop_storage_t *storage;
	volatile sig_atomic_t *cancel_flag;
	bop__file_entry_t entry;
	bop_compression_t compression;
	bool encrypted;
	bool whole;                     /* a verification: the stored object is hashed too */
	const bop_keys_t *keys;         /* borrowed: must outlive the source */
	uint64_t skip;                  /* bytes still to drop */
	int fd;                         /* the pipeline's end while it runs */
	int rfd;                        /* ours */
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	bop_pipeline_t *p;
	int result;
	carried_error_t error;
	bool eof;
} file_reader_t;

static int reader_emit(const void *buf, size_t len, void *payload)
{
	file_reader_t *r = payload;
	const char *p = buf;

	if (r->skip) {
		size_t k = r->skip < len ? (size_t)r->skip : len;

		r->skip -= k;
		p += k;
		len -= k;
	}
	while (len > 0) {
		ssize_t n = send(r->fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return bop__error(BOP_ECANCELED, "the reader of \"%s\" went away", r->entry.name);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* What the stored object of the reader's file must decode to. */
static void decode_spec_of(bop__decode_spec_t *d, const file_reader_t *r, char *what,
	size_t what_size)
{
	snprintf(what, what_size, "file \"%s\"", r->entry.name);
	*d = (bop__decode_spec_t){ what, r->compression, r->encrypted, r->keys, &r->entry,
		r->whole };
}

static int build_reader(file_reader_t *r)
{
	bop_pipeline_options_t popts = BOP_PIPELINE_OPTIONS_INIT;
	char what[NAME_MAX_LEN + 16];
	bop__decode_spec_t spec;
	bop_source_t *src = NULL;
	bop_sink_t *sink = NULL;
	bop_pipeline_t *p = NULL;
	int ret;

	popts.buffer_size = PIPE_BUFFER;
	ret = bop_pipeline_new(&p, &popts);
	if (ret < 0)
		return ret;
	if (r->cancel_flag)
		bop__pipeline_watch(p, r->cancel_flag);
	ret = bop_storage_get(r->storage, &src, r->entry.object, 0);
	if (ret == BOP_ENOTFOUND)
		ret = bop__error(BOP_ENOTFOUND, "the stored object %s of file \"%s\" is missing",
			r->entry.object, r->entry.name);
	if (ret == 0)
		ret = bop_pipeline_set_source(p, src);
	if (ret == 0) {
		decode_spec_of(&spec, r, what, sizeof(what));
		ret = bop__catalog_add_decode(p, &spec);
	}
	if (ret == 0)
		ret = bop_sink_callback_new(&sink, reader_emit, r);
	if (ret == 0)
		ret = bop_pipeline_set_sink(p, sink);
	if (ret < 0) {
		bop_pipeline_free(p);
		return ret;
	}
	r->p = p;
	return 0;
}

static void *reader_thread(void *arg)
{
	file_reader_t *r = arg;
	bop_pipeline_t *p = r->p;
	char what[NAME_MAX_LEN + 32];
	int ret;

	pthread_setname_np(pthread_self(), "bop-get");
	ret = bop_pipeline_run(p);
	snprintf(what, sizeof(what), "reading file \"%s\" failed", r->entry.name);
	if (ret < 0)
		carry(&r->error, bop__catalog_decode_failed(ret, what));
	pthread_mutex_lock(&r->mu);
	r->p = NULL;
	r->result = ret;
	pthread_mutex_unlock(&r->mu);
	bop_pipeline_free(p);
	/* EOF for the reader only now that the result is known. */
	close(r->fd);
	r->fd = -1;
	return NULL;
}

static int reader_join(file_reader_t *r, bool cancel)
{
	if (!r->started)
		return r->result;
	pthread_mutex_lock(&r->mu);
	if (cancel && r->p)
		bop_pipeline_cancel(r->p);
	pthread_mutex_unlock(&r->mu);
	if (cancel && r->rfd >= 0) {
		close(r->rfd);
		r->rfd = -1;
	}
	pthread_join(r->thread, NULL);
	r->started = false;
	return r->result;
}

static int reader_end(file_reader_t *r)
{
	r->eof = true;
	if (reader_join(r, false) < 0)
		return raise_carried(&r->error);
	return 0;
}

static int reader_read(bop_source_t *base, void *buf, size_t cap, size_t *got)
{
	file_reader_t *r = (file_reader_t *)base;
	ssize_t n;

	*got = 0;
	if (r->eof)
		return r->result < 0 ? raise_carried(&r->error) : 0;
	do
		n = recv(r->rfd, buf, cap, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return bop__error_errno(BOP_EIO, errno, "reading file \"%s\"", r->entry.name);
	if (n == 0)
		return reader_end(r);
	*got = (size_t)n;
	return 0;
}

static void reader_free(bop_source_t *base)
{
	file_reader_t *r = (file_reader_t *)base;

	reader_join(r, true);
	if (r->rfd >= 0)
		close(r->rfd);
	if (r->fd >= 0)
		close(r->fd);
	entry_clear(&r->entry);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

/* Waits for the first byte or the end: a small file that fails its checks fails here. */
static int reader_wait_first(file_reader_t *r)
{
	struct pollfd pfd = { r->rfd, POLLIN, 0 };
	char probe;
	ssize_t n;

	while (poll(&pfd, 1, -1) < 0) {
		if (errno != EINTR)
			return bop__error_errno(BOP_EIO, errno, "waiting for file \"%s\"", r->entry.name);
	}
	do
		n = recv(r->rfd, &probe, 1, MSG_PEEK);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return reader_join(r, false) < 0 ? raise_carried(&r->error) : 0;
	return 0;
}

static int start_reader(file_reader_t *r)
{
	int fds[2], ret;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
		return bop__error_errno(BOP_EIO, errno, "cannot create a socket pair");
	r->rfd = fds[0];
	r->fd = fds[1];
	ret = build_reader(r);
	if (ret < 0)
		return ret;
	if (pthread_create(&r->thread, NULL, reader_thread, r) != 0) {
		bop_pipeline_free(r->p);
		r->p = NULL;
		return bop__error(BOP_ERROR, "cannot start a thread to read file \"%s\"", r->entry.name);
	}
	r->started = true;
	return reader_wait_first(r);
}

typedef struct read_request {
	bop_storage_t *storage;
	volatile sig_atomic_t *cancel_flag;
	const char *backup;
	const bop__file_entry_t *entry;
	bop_compression_t compression;
	bool encrypted;
	bool whole;
	uint64_t offset;
	const bop_restore_options_t *opts;
} read_request_t;

static int open_reader(const read_request_t *q, bop_source_t **out)
{
	bop_restore_options_t defaults = BOP_RESTORE_OPTIONS_INIT;
	const bop_restore_options_t *opts = q->opts ? q->opts : &defaults;
	file_reader_t *r;
	int ret;

	if (BOP__VERSION_CHECK("bop_restore_options_t", NULL, opts->version, RESTORE_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	if (q->encrypted && !opts->keys)
		return bop__error(BOP_ENOKEY, "backup %s is encrypted; give an identity or "
			"passphrase to read it", q->backup);
	if (q->offset > q->entry->plain_bytes)
		return bop__error(BOP_EINVAL, "offset %llu is beyond the end of file \"%s\" (%llu bytes)",
			(unsigned long long)q->offset, q->entry->name,
			(unsigned long long)q->entry->plain_bytes);
	r = bop__calloc(1, sizeof(*r));
	if (!r)
		return BOP_ENOMEM;
	r->base = (bop_source_t)BOP_SOURCE_INIT(.read = reader_read, .free = reader_free);
	r->storage = q->storage;
	r->cancel_flag = q->cancel_flag;
	r->compression = q->compression;
	r->encrypted = q->encrypted;
	r->whole = q->whole;
	r->keys = opts->keys;
	r->skip = q->offset;
	r->fd = r->rfd = -1;
	pthread_mutex_init(&r->mu, NULL);
	ret = entry_copy(&r->entry, q->entry);
	if (ret == 0)
		ret = start_reader(r);
	if (ret < 0) {
		reader_free(&r->base);
		return ret;
	}
	*out = &r->base;
	return 0;
}

/* bop_catalog_read_file(), or (`whole`) the same read for a verification. */
static int read_file(bop_catalog_t *catalog, bop_source_t **out, const bop_manifest_t *m,
	const char *name, uint64_t offset, const bop_restore_options_t *opts, bool whole)
{
	bop_manifest_file_t f = { BOP_MANIFEST_FILE_VERSION, NULL, NULL, 0, NULL, 0, NULL };
	bop__file_entry_t entry = { 0 };
	read_request_t q = { 0 };
	int ret;

	if (!catalog || !out || !m || !name)
		return bop__error(BOP_EINVAL, "bop_catalog_read_file: invalid arguments");
	*out = NULL;
	if (!bop_manifest_has_files(m))
		return bop__error(BOP_ENOTSUPPORTED, "backup %s is one stream, not named files",
			bop_manifest_id(m));
	if ((ret = bop_manifest_file_find(m, &f, name)) < 0)
		return ret;
	entry.name = (char *)f.name;
	entry.object = (char *)f.object_key;
	entry.plain_bytes = f.plain_bytes;
	entry.stored_bytes = f.stored_bytes;
	memcpy(entry.plain_sha256, f.plain_sha256, BOP_SHA256_HEX_SIZE);
	memcpy(entry.stored_sha256, f.stored_sha256, BOP_SHA256_HEX_SIZE);
	q.storage = bop__catalog_storage(catalog);
	q.cancel_flag = bop__catalog_cancel_flag(catalog);
	q.backup = bop_manifest_id(m);
	q.entry = &entry;
	q.compression = bop_manifest_compression(m);
	q.encrypted = strcmp(bop_manifest_encryption(m), "none") != 0;
	q.whole = whole;
	q.offset = offset;
	q.opts = opts;
	return open_reader(&q, out);
}

BOP_EXTERN(int) bop_catalog_read_file(bop_catalog_t *catalog, bop_source_t **out,
	const bop_manifest_t *m, const char *name, uint64_t offset,
	const bop_restore_options_t *opts)
{
	return read_file(catalog, out, m, name, offset, opts, false);
}

BOP_EXTERN(int) bop_backup_session_read(bop_backup_session_t *s, bop_source_t **out,
	const char *name, uint64_t offset, const bop_restore_options_t *opts)
{
	bop__file_entry_t entry = { 0 };
	read_request_t q = { 0 };
	ssize_t i;
	int ret = 0;

	if (!s || !out || !name)
		return bop__error(BOP_EINVAL, "bop_backup_session_read: invalid arguments");
	*out = NULL;
	pthread_mutex_lock(&s->mu);
	i = find_locked(s, name);
	if (i >= 0)
		ret = entry_copy(&entry, &s->files[i]);
	pthread_mutex_unlock(&s->mu);
	if (i < 0)
		return bop__error(BOP_ENOTFOUND, "backup %s has no file \"%s\"", s->id, name);
	if (ret < 0)
		return ret;
	q.storage = bop__catalog_storage(s->catalog);
	q.cancel_flag = bop__catalog_cancel_flag(s->catalog);
	q.backup = s->id;
	q.entry = &entry;
	q.compression = s->opts.compression;
	q.encrypted = s->opts.keys != NULL;
	q.offset = offset;
	q.opts = opts;
	ret = open_reader(&q, out);
	entry_clear(&entry);
	return ret;
}

/* ---- verify ---- */

static int drain(bop_source_t *src)
{
	char buf[64 << 10];
	size_t got = 0;
	int ret;

	do
		ret = bop_source_read(src, buf, sizeof(buf), &got);
	while (ret == 0 && got > 0);
	return ret;
}

/* The totals and digests of the manifest must be those of its files. */
static int check_totals(const bop_manifest_t *m)
{
	char plain[BOP_SHA256_HEX_SIZE], stored[BOP_SHA256_HEX_SIZE];
	uint64_t plain_n = 0, stored_n = 0;
	int ret;

	if ((ret = digest_of(m, false, plain, &plain_n)) < 0 ||
	    (ret = digest_of(m, true, stored, &stored_n)) < 0)
		return ret;
	if (plain_n != bop_manifest_plain_bytes(m) || stored_n != bop_manifest_stored_bytes(m) ||
	    strcmp(plain, bop_manifest_plain_sha256(m)) || strcmp(stored, bop_manifest_stored_sha256(m)))
		return bop__error(BOP_EINTEGRITY, "the manifest of backup %s is inconsistent: its "
			"totals or digests are not those of its files", bop_manifest_id(m));
	return 0;
}

int bop__catalog_verify_files(bop_catalog_t *catalog, const bop_manifest_t *m,
	const bop_restore_options_t *opts)
{
	size_t n = 0;
	const bop__file_entry_t *f = bop__manifest_files(m, &n);
	uint64_t done_in = 0, done_out = 0;
	int ret = check_totals(m);

	for (size_t i = 0; ret == 0 && i < n; i++) {
		bop_source_t *src = NULL;

		ret = read_file(catalog, &src, m, f[i].name, 0, opts, true);
		if (ret == 0)
			ret = drain(src);
		bop_source_free(src);
		done_in += f[i].stored_bytes;
		done_out += f[i].plain_bytes;
		if (ret == 0 && opts && opts->progress)
			opts->progress(done_in, done_out, opts->payload);
	}
	if (ret == BOP_EINTEGRITY || ret == BOP_EFORMAT)
		return bop__error(BOP_EINTEGRITY, "verification of backup %s failed: %s",
			bop_manifest_id(m), bop_error_last());
	if (ret < 0)
		return bop__error_wrap("verification of backup %s failed", bop_manifest_id(m));
	bop__log(BOP_LOG_INFO, "catalog", "backup %s: all %zu files verified", bop_manifest_id(m), n);
	return 0;
}
