/*
 * Backup, restore, verify.
 *
 * backup:  source -> sha256 (plain) -> compress -> age encrypt -> sha256 (stored) -> put
 *          then the manifest, last, so a backup exists only once all of it is stored.
 * restore: get -> size (stored, expected) -> age decrypt -> decompress
 *          -> sha256 (plain, expected) -> holdback -> sink
 * verify:  the same, with the stored bytes hashed against the manifest as well.
 * The plain hash is only known at the end; data released downstream before then has
 * been authenticated chunk by chunk by age (when encrypted), and the sink is committed
 * only after every check passed. Each expected tap also bounds its stream: a stored
 * object that decodes to more than its manifest declares (a decompression bomb) fails
 * one byte past the declared size.
 *
 * These two chains are built here only, for single-stream backups and for the files of
 * multi-file backups (catalog/files.c) alike.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#define ID_SUFFIX_LEN 4
#define SAVED_ERROR_MAX 2048
#define DECODE_HOLDBACK (256u << 10)

/* One backup being taken. */
typedef struct backup_run {
	bop_catalog_t *catalog;
	bop_backup_options_t opts;
	int64_t start;                  /* seconds, for the id */
	int64_t start_ms;
	char id[32];
	char *object;
	bop__encode_taps_t taps;        /* owned by the pipeline */
	char plain_sha256[BOP_SHA256_HEX_SIZE];
	char stored_sha256[BOP_SHA256_HEX_SIZE];
	uint64_t plain_bytes;
	uint64_t stored_bytes;
} backup_run_t;

BOP_EXTERN(int) bop_backup_options_init(bop_backup_options_t *opts, unsigned int version)
{
	bop_backup_options_t defaults = BOP_BACKUP_OPTIONS_INIT;

	if (!opts)
		return bop__error(BOP_EINVAL, "bop_backup_options_init: NULL options");
	if (BOP__VERSION_CHECK("bop_backup_options_t", NULL, version, BACKUP_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	*opts = defaults;
	return 0;
}

BOP_EXTERN(int) bop_restore_options_init(bop_restore_options_t *opts, unsigned int version)
{
	bop_restore_options_t defaults = BOP_RESTORE_OPTIONS_INIT;

	if (!opts)
		return bop__error(BOP_EINVAL, "bop_restore_options_init: NULL options");
	if (BOP__VERSION_CHECK("bop_restore_options_t", NULL, version, RESTORE_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	*opts = defaults;
	return 0;
}

/* Runs a cleanup step without losing the error being reported. */
typedef struct saved_error {
	int code;
	char message[SAVED_ERROR_MAX];
} saved_error_t;

static void save_error(saved_error_t *s)
{
	s->code = bop_error_last_code();
	snprintf(s->message, sizeof(s->message), "%s", bop_error_last());
}

static int restore_error(const saved_error_t *s)
{
	return bop__error(s->code ? s->code : BOP_ERROR, "%s", s->message);
}

static void remove_quietly(bop_storage_t *storage, const char *key)
{
	saved_error_t saved;
	int ret;

	save_error(&saved);
	ret = bop_storage_remove(storage, key);
	if (ret < 0 && ret != BOP_ENOTFOUND)
		bop__log(BOP_LOG_WARN, "catalog", "cannot remove the partial object %s: %s", key,
			bop_error_last());
	restore_error(&saved);
}

/* "20261121T020000Z-k3f9": sorts by time; the suffix tells apart backups of one second. */
int bop__catalog_new_id(char *out, size_t size, int64_t start)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	const size_t n = sizeof(alphabet) - 1;
	char suffix[ID_SUFFIX_LEN + 1];
	unsigned char raw[16];
	time_t t = (time_t)start;
	struct tm tm;
	size_t got = 0;

	if (!gmtime_r(&t, &tm) || strftime(out, size, "%Y%m%dT%H%M%SZ", &tm) == 0)
		return bop__error(BOP_ERROR, "cannot format the start time %lld", (long long)start);
	while (got < ID_SUFFIX_LEN) {
		if (RAND_bytes(raw, sizeof(raw)) != 1)
			return bop__error(BOP_ERROR, "cannot get random bytes from OpenSSL");
		/* Only bytes below a multiple of n, so every character is equally likely. */
		for (size_t i = 0; i < sizeof(raw) && got < ID_SUFFIX_LEN; i++) {
			if (raw[i] < 256 - 256 % n)
				suffix[got++] = alphabet[raw[i] % n];
		}
	}
	suffix[got] = '\0';
	snprintf(out + strlen(out), size - strlen(out), "-%s", suffix);
	return 0;
}

int bop__catalog_check_backup_options(const bop_backup_options_t *opts)
{
	int ret = BOP__VERSION_CHECK("bop_backup_options_t", NULL, opts->version, BACKUP_OPTIONS_VERSION);

	if (ret < 0)
		return ret;
	if (opts->compression != BOP_COMPRESSION_NONE && opts->compression != BOP_COMPRESSION_ZSTD &&
	    opts->compression != BOP_COMPRESSION_GZIP)
		return bop__error(BOP_EINVAL, "unknown compression %d", (int)opts->compression);
	for (size_t i = 0; opts->tags && opts->tags[i]; i++) {
		if (!bop__catalog_tag_valid(opts->tags[i]))
			return bop__error(BOP_EINVAL, "invalid tag \"%s\": tags are 1 to 128 printable "
				"characters without ','", opts->tags[i]);
	}
	if (opts->engine && (!*opts->engine || strlen(opts->engine) > 128))
		return bop__error(BOP_EINVAL, "invalid engine name");
	return 0;
}

/* The level actually used, for the manifest. */
int bop__catalog_effective_level(bop_compression_t c, int level)
{
	if (level > 0 || c == BOP_COMPRESSION_NONE)
		return c == BOP_COMPRESSION_NONE ? 0 : level;
	return c == BOP_COMPRESSION_ZSTD ? 3 : 6;
}

/* ---- the encode and decode chains ---- */

#define READ_AHEAD_MIN (2u << 20)

/* `made` is the result of creating *stage (evaluated before *stage is read). */
static int add_made(bop_pipeline_t *p, int made, bop_stage_t **stage)
{
	return made < 0 ? made : bop_pipeline_add_stage(p, *stage);
}

int bop__catalog_add_encode(bop_pipeline_t *p, const bop_backup_options_t *o,
	bop__encode_taps_t *taps)
{
	bop_compress_options_t copts = BOP_COMPRESS_OPTIONS_INIT;
	bop_stage_t *stage = NULL;
	int ret;

	taps->plain = taps->stored = NULL;
	ret = add_made(p, bop_stage_sha256_new(&taps->plain), &taps->plain);
	if (ret == 0 && o->compression != BOP_COMPRESSION_NONE) {
		copts.algorithm = o->compression;
		copts.level = o->level;
		copts.threads = o->threads;
		ret = add_made(p, bop_stage_compress_new(&stage, &copts), &stage);
	}
	if (ret == 0 && o->keys)
		ret = add_made(p, bop_stage_age_encrypt_new(&stage, o->keys), &stage);
	/* Stored bytes that are the plaintext need no second hash: it costs as much as zstd. */
	if (ret == 0 && (o->compression != BOP_COMPRESSION_NONE || o->keys))
		ret = add_made(p, bop_stage_sha256_new(&taps->stored), &taps->stored);
	/* Which taps hash on a thread of their own, the pipeline decides when it runs. */
	return ret;
}

int bop__catalog_encode_result(const bop__encode_taps_t *taps, char *plain_sha256,
	uint64_t *plain_bytes, char *stored_sha256, uint64_t *stored_bytes)
{
	int ret = bop_stage_sha256_result(taps->plain, plain_sha256, plain_bytes);

	if (ret < 0 || taps->stored)
		return ret < 0 ? ret : bop_stage_sha256_result(taps->stored, stored_sha256,
			stored_bytes);
	memcpy(stored_sha256, plain_sha256, BOP_SHA256_HEX_SIZE);
	*stored_bytes = *plain_bytes;
	return 0;
}

/* A tap that fails unless its stream has exactly `bytes` bytes hashing to `hex` (or, when
 * not `hashed`, of any digest), and fails as soon as it has more. */
static int add_expect(bop_pipeline_t *p, const char *hex, uint64_t bytes, bool hashed)
{
	bop_stage_t *tap = NULL;
	int ret = bop_stage_sha256_new(&tap);

	if (ret == 0 && (ret = bop_stage_sha256_expect(tap, hex, bytes)) < 0) {
		bop_stage_free(tap);
		return ret;
	}
	if (ret == 0 && !hashed)
		bop__sha256_count_only(tap);
	return add_made(p, ret, &tap);
}

int bop__catalog_add_decode(bop_pipeline_t *p, const bop__decode_spec_t *d)
{
	bool identity = !d->encrypted && d->compression == BOP_COMPRESSION_NONE;
	const bop__file_entry_t *e = d->expect;
	bop_stage_t *stage = NULL;
	int ret = 0;

	/* Stored as plaintext: one hash checks both, if the manifest agrees with itself. */
	if (identity && (e->stored_bytes != e->plain_bytes ||
	    strcmp(e->stored_sha256, e->plain_sha256) != 0))
		return bop__error(BOP_EINTEGRITY, "the manifest of %s is inconsistent: it is neither "
			"compressed nor encrypted, yet its stored and plain sizes or hashes differ",
			d->what);
	/* A restore checks what it restores: the plaintext's SHA-256 and size. Any change to
	 * the stored object that matters changes that plaintext (or fails age's check of every
	 * chunk, or zstd's decoding), so hashing the stored bytes as well would cost CPU and
	 * check nothing more about the data restored; they are counted. A verification hashes
	 * them too, so that every digest of the manifest has been checked. */
	if (!identity)
		ret = add_expect(p, e->stored_sha256, e->stored_bytes, d->whole);
	if (ret == 0 && d->encrypted)
		ret = add_made(p, bop_stage_age_decrypt_new(&stage, d->keys), &stage);
	if (ret == 0 && d->compression != BOP_COMPRESSION_NONE)
		ret = add_made(p, bop_stage_decompress_new(&stage, d->compression), &stage);
	/* Reading, the stored hash and decryption on one thread, decompression on another,
	 * when there is more than a buffer or two to overlap. */
	if (ret == 0 && d->compression != BOP_COMPRESSION_NONE && e->stored_bytes > READ_AHEAD_MIN)
		bop__pipeline_read_ahead(p);
	if (ret == 0)
		ret = add_expect(p, e->plain_sha256, e->plain_bytes, true);
	/* The target must not see the end of the stream before every check above passed. */
	if (ret == 0)
		ret = add_made(p, bop__stage_holdback_new(&stage, DECODE_HOLDBACK), &stage);
	return ret;
}

int bop__catalog_decode_failed(int ret, const char *what)
{
	/* A stored object that does not decode is as damaged as one with a wrong hash. */
	if (ret == BOP_EFORMAT)
		bop__error_wrap("the stored data is damaged");
	if (ret == BOP_EFORMAT || ret == BOP_EINTEGRITY)
		return bop__error(BOP_EINTEGRITY, "%s: the data does not match its manifest: %s",
			what, bop_error_last());
	return bop__error_wrap("%s", what);
}

/* ---- backup ---- */

/* The pipeline owns `source` from here on, even on failure. */
static int build_backup(backup_run_t *run, bop_source_t *source, bop_pipeline_t **out)
{
	bop_pipeline_options_t popts = BOP_PIPELINE_OPTIONS_INIT;
	bop_storage_t *storage = bop__catalog_storage(run->catalog);
	bop_sink_t *sink = NULL;
	bop_pipeline_t *p = NULL;
	int ret;

	popts.progress = run->opts.progress;
	popts.payload = run->opts.payload;
	ret = bop_pipeline_new(&p, &popts);
	if (ret < 0) {
		bop_source_free(source);
		return ret;
	}
	bop__pipeline_watch(p, bop__catalog_cancel_flag(run->catalog));
	if ((ret = bop_pipeline_set_source(p, source)) < 0 ||
	    (ret = bop__catalog_add_encode(p, &run->opts, &run->taps)) < 0 ||
	    (ret = bop_storage_put(storage, &sink, run->object, NULL)) < 0 ||
	    (ret = bop_pipeline_set_sink(p, sink)) < 0) {
		bop_pipeline_free(p);
		return ret;
	}
	/* Reading the source and hashing the plaintext on one thread, compression, encryption
	 * and writing on another (with two cores or more, when it compresses). */
	bop__pipeline_read_ahead(p);
	*out = p;
	return 0;
}

/* The taps' results, checked against what the pipeline counted and what was stored. */
static int collect_results(backup_run_t *run, bop_pipeline_t *p)
{
	bop_storage_stat_t st = { BOP_STORAGE_STAT_VERSION, 0, 0 };
	int ret;

	if ((ret = bop__catalog_encode_result(&run->taps, run->plain_sha256, &run->plain_bytes,
			run->stored_sha256, &run->stored_bytes)) < 0)
		return ret;
	if (run->plain_bytes != bop_pipeline_bytes_in(p) || run->stored_bytes != bop_pipeline_bytes_out(p))
		return bop__error(BOP_EINTEGRITY, "byte counts disagree: read %llu, hashed %llu; "
			"wrote %llu, hashed %llu",
			(unsigned long long)bop_pipeline_bytes_in(p), (unsigned long long)run->plain_bytes,
			(unsigned long long)bop_pipeline_bytes_out(p), (unsigned long long)run->stored_bytes);
	ret = bop_storage_stat(bop__catalog_storage(run->catalog), &st, run->object);
	if (ret == BOP_ENOTSUPPORTED)
		return 0;
	if (ret < 0)
		return ret;
	if (st.size != run->stored_bytes)
		return bop__error(BOP_EINTEGRITY, "the storage holds %llu bytes of %s, but %llu were written",
			(unsigned long long)st.size, run->object, (unsigned long long)run->stored_bytes);
	return 0;
}

static int make_manifest(backup_run_t *run, bop_manifest_t **out)
{
	bop__manifest_info_t info = { 0 };
	char **fps = NULL;
	int ret;

	if (run->opts.keys) {
		ret = bop__keys_fingerprints(run->opts.keys, &fps);
		if (ret < 0)
			return ret;
	}
	info.id = run->id;
	info.name = bop__catalog_name(run->catalog);
	info.engine = run->opts.engine ? run->opts.engine : "stdin";
	info.start_ms = run->start_ms;
	info.end_ms = bop__now_ms();
	if (info.end_ms < info.start_ms)
		info.end_ms = info.start_ms;
	info.plain_bytes = run->plain_bytes;
	info.plain_sha256 = run->plain_sha256;
	info.stored_bytes = run->stored_bytes;
	info.stored_sha256 = run->stored_sha256;
	info.compression = run->opts.compression;
	info.level = bop__catalog_effective_level(run->opts.compression, run->opts.level);
	info.encryption = run->opts.keys ? bop__keys_kind(run->opts.keys) : "none";
	info.recipients = (const char *const *)fps;
	info.tags = run->opts.tags;
	info.object = run->object;
	ret = bop__manifest_new(out, &info);
	bop__strv_free(fps);
	return ret;
}

/* The manifest is written last and exclusively: an id is never reused. */
int bop__catalog_write_manifest(bop_catalog_t *catalog, const char *id, const bop_manifest_t *m)
{
	bop_storage_t *storage = bop__catalog_storage(catalog);
	char *json = NULL, *key;
	int ret;

	key = bop__sprintf("%s/%s/manifest.json", bop__catalog_name(catalog), id);
	if (!key)
		return BOP_ENOMEM;
	ret = bop_manifest_to_json(m, &json);
	if (ret == 0)
		ret = bop__storage_put_bytes(storage, key, json, strlen(json), true);
	if (ret == BOP_ENOTSUPPORTED)
		ret = bop__storage_put_bytes(storage, key, json, strlen(json), false);
	if (ret < 0)
		bop__error_wrap("writing the manifest %s", key);
	free(json);
	free(key);
	return ret;
}

static int run_backup(backup_run_t *run, bop_source_t *source, bop_manifest_t **out)
{
	bop_pipeline_t *p = NULL;
	bop_manifest_t *m = NULL;
	int ret;

	ret = build_backup(run, source, &p);
	if (ret < 0)
		return ret;
	ret = bop_pipeline_run(p);
	if (ret == 0)
		ret = collect_results(run, p);
	if (ret == 0)
		ret = make_manifest(run, &m);
	if (ret == 0)
		ret = bop__catalog_write_manifest(run->catalog, run->id, m);
	bop_pipeline_free(p);
	if (ret < 0) {
		bop_manifest_free(m);
		return ret;
	}
	*out = m;
	return 0;
}

BOP_EXTERN(int) bop_catalog_backup(bop_catalog_t *catalog, bop_manifest_t **out,
	bop_source_t *source, const bop_backup_options_t *opts)
{
	bop_backup_options_t defaults = BOP_BACKUP_OPTIONS_INIT;
	backup_run_t run = { 0 };
	bop_manifest_t *m = NULL;
	int ret;

	if (out)
		*out = NULL;
	if (!catalog || !source) {
		bop_source_free(source);
		return bop__error(BOP_EINVAL, "bop_catalog_backup: invalid arguments");
	}
	run.catalog = catalog;
	run.opts = opts ? *opts : defaults;
	run.start_ms = bop__now_ms();
	run.start = run.start_ms / 1000;
	if ((ret = bop__catalog_check_backup_options(&run.opts)) < 0 ||
	    (ret = bop__catalog_new_id(run.id, sizeof(run.id), run.start)) < 0) {
		bop_source_free(source);
		return ret;
	}
	run.object = bop__sprintf("%s/%s/data%s%s", bop__catalog_name(catalog), run.id,
		bop_compression_suffix(run.opts.compression), run.opts.keys ? ".age" : "");
	if (!run.object) {
		bop_source_free(source);
		return BOP_ENOMEM;
	}
	ret = run_backup(&run, source, &m);
	if (ret < 0) {
		/* Nothing of a failed backup may stay behind. */
		remove_quietly(bop__catalog_storage(catalog), run.object);
		ret = bop__error_wrap("backup failed");
	} else {
		bop__log(BOP_LOG_INFO, "catalog", "backup %s of %s: %llu bytes, %llu stored as %s",
			run.id, bop__catalog_name(catalog), (unsigned long long)run.plain_bytes,
			(unsigned long long)run.stored_bytes, run.object);
	}
	free(run.object);
	if (out)
		*out = m;
	else
		bop_manifest_free(m);
	return ret;
}

/* ---- restore and verify ---- */

static int check_restore(const bop_manifest_t *m, const bop_restore_options_t *opts)
{
	int ret = BOP__VERSION_CHECK("bop_restore_options_t", NULL, opts->version,
		RESTORE_OPTIONS_VERSION);

	if (ret < 0)
		return ret;
	if (strcmp(bop_manifest_encryption(m), "none") != 0 && !opts->keys)
		return bop__error(BOP_ENOKEY, "backup %s is encrypted (%s); give an identity or passphrase",
			bop_manifest_id(m), bop_manifest_encryption(m));
	return 0;
}

/* What the stored object of single-stream backup `m` must decode to. */
static void decode_spec_of(bop__decode_spec_t *d, bop__file_entry_t *expect,
	const bop_manifest_t *m, const bop_keys_t *keys, bool whole, char *what, size_t what_size)
{
	snprintf(what, what_size, "backup %s", bop_manifest_id(m));
	expect->stored_bytes = bop_manifest_stored_bytes(m);
	snprintf(expect->stored_sha256, BOP_SHA256_HEX_SIZE, "%s", bop_manifest_stored_sha256(m));
	expect->plain_bytes = bop_manifest_plain_bytes(m);
	snprintf(expect->plain_sha256, BOP_SHA256_HEX_SIZE, "%s", bop_manifest_plain_sha256(m));
	*d = (bop__decode_spec_t){ what, bop_manifest_compression(m),
		strcmp(bop_manifest_encryption(m), "none") != 0, keys, expect, whole };
}

/* Takes ownership of `sink`, even on failure. */
static int build_restore(bop_catalog_t *c, const bop_manifest_t *m,
	const bop_restore_options_t *opts, bool whole, bop_sink_t *sink, bop_pipeline_t **out)
{
	bop_pipeline_options_t popts = BOP_PIPELINE_OPTIONS_INIT;
	bop__file_entry_t expect = { 0 };
	bop__decode_spec_t spec;
	bop_source_t *source = NULL;
	bop_pipeline_t *p = NULL;
	char what[64];
	int ret;

	popts.progress = opts->progress;
	popts.payload = opts->payload;
	ret = bop_pipeline_new(&p, &popts);
	if (ret < 0) {
		bop_sink_free(sink);
		return ret;
	}
	bop__pipeline_watch(p, bop__catalog_cancel_flag(c));
	ret = bop_pipeline_set_sink(p, sink);
	if (ret == 0) {
		ret = bop_storage_get(bop__catalog_storage(c), &source, bop_manifest_object_key(m), 0);
		if (ret == BOP_ENOTFOUND)
			ret = bop__error(BOP_ENOTFOUND, "the data of backup %s (%s) is missing",
				bop_manifest_id(m), bop_manifest_object_key(m));
	}
	if (ret == 0)
		ret = bop_pipeline_set_source(p, source);
	if (ret == 0) {
		decode_spec_of(&spec, &expect, m, opts->keys, whole, what, sizeof(what));
		ret = bop__catalog_add_decode(p, &spec);
	}
	if (ret < 0) {
		bop_pipeline_free(p);
		return ret;
	}
	*out = p;
	return 0;
}

/* A restore, or (`whole`) a verification. */
static int run_restore(bop_catalog_t *c, const bop_manifest_t *m, bop_sink_t *sink,
	const bop_restore_options_t *opts, bool whole)
{
	bop_restore_options_t defaults = BOP_RESTORE_OPTIONS_INIT;
	bop_pipeline_t *p = NULL;
	int ret;

	if (!opts)
		opts = &defaults;
	ret = check_restore(m, opts);
	if (ret < 0) {
		bop_sink_free(sink);
		return ret;
	}
	ret = build_restore(c, m, opts, whole, sink, &p);
	if (ret == 0)
		ret = bop_pipeline_run(p);
	bop_pipeline_free(p);
	if (ret < 0) {
		char failed[96];

		snprintf(failed, sizeof(failed), "%s of backup %s failed",
			whole ? "verification" : "restore", bop_manifest_id(m));
		return bop__catalog_decode_failed(ret, failed);
	}
	return 0;
}

BOP_EXTERN(int) bop_catalog_restore(bop_catalog_t *catalog, const bop_manifest_t *m,
	bop_sink_t *sink, const bop_restore_options_t *opts)
{
	if (!catalog || !m || !sink) {
		bop_sink_free(sink);
		return bop__error(BOP_EINVAL, "bop_catalog_restore: invalid arguments");
	}
	if (bop_manifest_has_files(m)) {
		bop_sink_free(sink);
		return bop__error(BOP_ENOTSUPPORTED, "backup %s is made of %zu files (engine %s), not "
			"one stream: restore it through backupop-runner, which serves its files to "
			"the engine", bop_manifest_id(m), bop_manifest_file_count(m),
			bop_manifest_engine(m));
	}
	return run_restore(catalog, m, sink, opts, false);
}

static int discard(const void *buf, size_t len, void *payload)
{
	BOP_UNUSED(buf);
	BOP_UNUSED(len);
	BOP_UNUSED(payload);
	return 0;
}

BOP_EXTERN(int) bop_catalog_verify(bop_catalog_t *catalog, const bop_manifest_t *m,
	const bop_restore_options_t *opts)
{
	bop_sink_t *sink = NULL;
	int ret;

	if (!catalog || !m)
		return bop__error(BOP_EINVAL, "bop_catalog_verify: invalid arguments");
	if (bop_manifest_has_files(m))
		return bop__catalog_verify_files(catalog, m, opts);
	ret = bop_sink_callback_new(&sink, discard, NULL);
	if (ret < 0)
		return ret;
	return run_restore(catalog, m, sink, opts, true);
}
