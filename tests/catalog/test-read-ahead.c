/*
 * The read-ahead of a restore: with two cores or more, a thread of its own reads the
 * stored object, checks its hash and decrypts it while the restoring thread decompresses.
 * The bytes restored are the same as on one core; a damaged, truncated or wrongly keyed
 * object fails with the same error as on one core, and the sink is aborted; a failing sink
 * and a cancel stop the reading thread too. Which thread does what is seen in
 * /proc/self/task: the reading thread is named "bop-read".
 *
 * And of a backup: with two cores or more, the source is read and the plaintext hashed on
 * that thread while the backup's thread compresses, encrypts and writes. The plaintext
 * hashed is the same as on one core; a source that fails, and a cancel, fail the backup
 * as on one core and leave no backup and no thread.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>

#include "catalog-test.h"

#define SIZE (12u << 20)

static char *root;
static bop_catalog_t *cat;
static bop_storage_t *storage;
static unsigned char *data;

/* Threads of this process named `name`. */
static int threads_named(const char *name)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d))) {
		char path[300], comm[32] = "";
		FILE *fp;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		fp = fopen(path, "r");
		if (fp && fgets(comm, sizeof(comm), fp))
			comm[strcspn(comm, "\n")] = 0;
		if (fp)
			fclose(fp);
		n += strcmp(comm, name) == 0;
	}
	if (d)
		closedir(d);
	return n;
}

/* A sink that compares what it gets with `data`, notes the reading threads it saw, and
 * fails or cancels after `fail_at` bytes when asked. */
typedef struct check {
	uint64_t got;
	bool same;
	int readers;             /* the most "bop-read" threads seen during a write */
	uint64_t fail_at;        /* 0: never */
	bool cancel;             /* at fail_at: cancel the catalog instead of failing */
} check_t;

static int check_write(const void *buf, size_t len, void *payload)
{
	check_t *c = payload;
	int readers = threads_named("bop-read");

	if (readers > c->readers)
		c->readers = readers;
	if (c->got + len > SIZE || memcmp(data + c->got, buf, len) != 0)
		c->same = false;
	c->got += len;
	if (c->fail_at && c->got >= c->fail_at) {
		if (!c->cancel)
			return bop_error_set(BOP_EIO, "the test's sink is full");
		bop_catalog_cancel(cat);
	}
	return 0;
}

/* Restores `m` on `ncpu` cores into a checking sink; its result, error and sink in *c. */
static int restore_on(int ncpu, const bop_manifest_t *m, const bop_keys_t *keys, check_t *c,
	char *err, size_t errlen)
{
	bop_restore_options_t opts = BOP_RESTORE_OPTIONS_INIT;
	bop_sink_t *sink = NULL;
	int ret;

	c->got = 0;
	c->same = true;
	c->readers = 0;
	opts.keys = keys;
	bop__ncpu_override = ncpu;
	bop_sink_callback_new(&sink, check_write, c);
	ret = bop_catalog_restore(cat, m, sink, &opts);
	bop__ncpu_override = 0;
	snprintf(err, errlen, "%s", ret < 0 ? bop_error_last() : "");
	return ret;
}

/* A file of the storage, changed in place: one byte flipped at `at`, or cut at `at`. */
static void damage(const bop_manifest_t *m, off_t at, bool cut)
{
	char *path = NULL;
	unsigned char b;
	int fd;

	if (asprintf(&path, "%s/%s", root, bop_manifest_object_key(m)) < 0)
		exit(2);
	fd = open(path, O_RDWR);
	if (fd < 0 || (cut ? ftruncate(fd, at) : (pread(fd, &b, 1, at) != 1 ||
	    (b ^= 0x40, pwrite(fd, &b, 1, at) != 1))))
		bail_out("cannot change %s", path);
	close(fd);
	free(path);
}

static bop_manifest_t *backup(const bop_keys_t *keys)
{
	bop_backup_options_t opts = BOP_BACKUP_OPTIONS_INIT;
	bop_manifest_t *m = NULL;
	bop_source_t *src = NULL;

	opts.compression = BOP_COMPRESSION_ZSTD;
	opts.keys = keys;
	bop_source_memory_new(&src, data, SIZE);
	if (bop_catalog_backup(cat, &m, src, &opts) < 0)
		bail_out("backup: %s", bop_error_last());
	return m;
}

/* Both cores' errors are BOP_EINTEGRITY with the same words, and nothing was committed. */
static void same_failure(const bop_manifest_t *m, const bop_keys_t *keys, const char *what)
{
	char e1[512], e2[512];
	check_t c1 = { 0 }, c2 = { 0 };
	int r1 = restore_on(1, m, keys, &c1, e1, sizeof(e1));
	int r2 = restore_on(2, m, keys, &c2, e2, sizeof(e2));

	ok(r2 == BOP_EINTEGRITY, "%s: the restore with a reading thread fails with "
		"BOP_EINTEGRITY (%d): %s", what, r2, e2);
	ok(r1 == r2, "%s: ... as on one core (%d)", what, r1);
	ok(strcmp(e1, e2) == 0, "%s: ... with the same message", what);
	if (strcmp(e1, e2) != 0)
		diag("one core: %s", e1);
	ok(c2.got < SIZE, "%s: the sink got less than the whole stream (%llu bytes)", what,
		(unsigned long long)c2.got);
}

/* Keys with the identity of bop_age_keygen()'s file text. */
static bop_keys_t *identity_keys(const char *text)
{
	const char *line = strstr(text, "AGE-SECRET-KEY-");
	bop_keys_t *keys = NULL;
	char key[128];

	if (!line)
		bail_out("no identity in what bop_age_keygen() wrote");
	snprintf(key, sizeof(key), "%.*s", (int)strcspn(line, "\r\n"), line);
	if (bop_keys_new(&keys) < 0 || bop_keys_add_identity(keys, key) < 0)
		bail_out("identity: %s", bop_error_last());
	return keys;
}

/* A source that yields `data`, counting its reads and those on a thread named bop-read;
 * it fails, or cancels the catalog, once `fail_at` bytes were read. */
typedef struct feed {
	size_t pos;
	int reads, on_reader;
	size_t fail_at;          /* 0: never */
	bool cancel;
	size_t piece;            /* at most this much a read, as from a pipe; 0: what fits */
} feed_t;

static int feed_read(void *buf, size_t cap, size_t *got, void *payload)
{
	feed_t *f = payload;
	char name[32] = "";
	size_t n = SIZE - f->pos < cap ? SIZE - f->pos : cap;

	if (f->piece && n > f->piece)
		n = f->piece;

	pthread_getname_np(pthread_self(), name, sizeof(name));
	f->reads++;
	f->on_reader += strcmp(name, "bop-read") == 0;
	if (f->fail_at && f->pos >= f->fail_at) {
		if (!f->cancel)
			return bop_error_set(BOP_EIO, "the test's source broke");
		bop_catalog_cancel(cat);
	}
	memcpy(buf, data + f->pos, n);
	f->pos += n;
	*got = n;
	return 0;
}

/* Backs `data` up on `ncpu` cores from a feed; its result and error. */
static int backup_on(int ncpu, feed_t *f, const bop_keys_t *keys, bop_manifest_t **m,
	char *err, size_t errlen)
{
	bop_backup_options_t opts = BOP_BACKUP_OPTIONS_INIT;
	bop_source_t *src = NULL;
	int ret;

	opts.compression = BOP_COMPRESSION_ZSTD;
	opts.keys = keys;
	if (bop_source_callback_new(&src, feed_read, f) < 0)
		bail_out("source: %s", bop_error_last());
	bop__ncpu_override = ncpu;
	ret = bop_catalog_backup(cat, m, src, &opts);
	bop__ncpu_override = 0;
	snprintf(err, errlen, "%s", ret < 0 ? bop_error_last() : "");
	return ret;
}

static size_t backups_listed(void)
{
	bop_manifest_list_t *list = NULL;
	size_t n;

	if (bop_catalog_list(cat, &list) < 0)
		bail_out("list: %s", bop_error_last());
	n = bop_manifest_list_count(list);
	bop_manifest_list_free(list);
	return n;
}

static void test_backup(const bop_keys_t *enc, const bop_keys_t *dec)
{
	bop_manifest_t *m1 = NULL, *m2 = NULL;
	char err[512], err1[512];
	feed_t f1 = { 0 }, f2 = { 0 };
	check_t c = { 0 };
	size_t before;
	int ret;

	ret = backup_on(2, &f2, enc, &m2, err, sizeof(err));
	ok(ret == 0, "backup on two cores %s", err);
	ok(f2.reads > 0 && f2.on_reader == f2.reads,
		"two cores: every read of the source ran on the reading thread (%d of %d)",
		f2.on_reader, f2.reads);
	ret = backup_on(1, &f1, enc, &m1, err1, sizeof(err1));
	ok(ret == 0 && f1.on_reader == 0, "one core: the source is read on the backup's thread "
		"(%d of %d reads elsewhere) %s", f1.on_reader, f1.reads, err1);
	if (!m1 || !m2)
		bail_out("no backup to compare");
	ok(bop_manifest_plain_bytes(m2) == SIZE &&
		strcmp(bop_manifest_plain_sha256(m1), bop_manifest_plain_sha256(m2)) == 0,
		"the plaintext hashed on the reading thread is the plaintext hashed on one core");
	ret = restore_on(1, m2, dec, &c, err, sizeof(err));
	ok(ret == 0 && c.same && c.got == SIZE, "the backup made on two cores restores every byte %s",
		err);
	bop_manifest_free(m2);
	m2 = NULL;

	/* small pieces, as from a command's pipe: gathered into larger hand-overs */
	f2 = (feed_t){ .piece = 10000 };
	ret = backup_on(2, &f2, enc, &m2, err, sizeof(err));
	ok(ret == 0 && m2 && bop_manifest_plain_bytes(m2) == SIZE &&
		strcmp(bop_manifest_plain_sha256(m1), bop_manifest_plain_sha256(m2)) == 0,
		"a source read in 10,000-byte pieces: the same plaintext on two cores %s", err);
	bop_manifest_free(m1);
	bop_manifest_free(m2);
	m1 = m2 = NULL;
	f1 = (feed_t){ .fail_at = 3u << 20, .piece = 10000 };
	f2 = (feed_t){ .fail_at = 3u << 20, .piece = 10000 };
	ret = backup_on(2, &f2, enc, &m2, err, sizeof(err));
	ok(ret == BOP_EIO && backup_on(1, &f1, enc, &m1, err1, sizeof(err1)) == ret &&
		strcmp(err, err1) == 0 && !m1 && !m2,
		"... and failing after 3 MiB, fails as on one core: %s", err);

	before = backups_listed();
	f1 = (feed_t){ .fail_at = 3u << 20 };
	f2 = (feed_t){ .fail_at = 3u << 20 };
	ret = backup_on(2, &f2, enc, &m2, err, sizeof(err));
	ok(ret == BOP_EIO && strstr(err, "the test's source broke"),
		"a source that fails after 3 MiB fails the backup with its words (%d): %s", ret, err);
	ok(backup_on(1, &f1, enc, &m1, err1, sizeof(err1)) == ret && strcmp(err, err1) == 0,
		"... as on one core: %s", err1);
	ok(backups_listed() == before && !m1 && !m2, "... and leaves no backup");
	ok(threads_named("bop-read") == 0, "... nor a reading thread");

	f2 = (feed_t){ .fail_at = 2u << 20, .cancel = true };
	ret = backup_on(2, &f2, enc, &m2, err, sizeof(err));
	ok(ret == BOP_ECANCELED, "a backup canceled after 2 MiB fails with BOP_ECANCELED (%d): %s",
		ret, err);
	ok(threads_named("bop-read") == 0, "... and the reading thread ended");
	bop_catalog_free(cat);          /* a canceled catalog stays canceled */
	if (bop_catalog_open(&cat, storage, "ahead") < 0)
		bail_out("open: %s", bop_error_last());
	ok(backups_listed() == before, "... and leaves no backup");
}

int main(void)
{
	char *identity = NULL, *recipient = NULL, err[512], err1[512];
	bop_keys_t *enc = NULL, *dec = NULL, *wrong = NULL;
	bop_manifest_t *m;
	check_t c = { 0 };
	int ret;

	storage = open_tmp_storage(&root);
	data = malloc(SIZE);
	if (!data)
		bail_out("out of memory");
	/* compressible, but not much: the stored object is several buffers */
	srand(11);
	for (size_t i = 0; i < SIZE; i++)
		data[i] = (unsigned char)(i % 7 ? rand() % 16 : rand());
	if (bop_catalog_open(&cat, storage, "ahead") < 0 || bop_age_keygen(&identity, &recipient) < 0 ||
	    bop_keys_new(&enc) < 0 || bop_keys_add_recipient(enc, recipient) < 0)
		bail_out("setup: %s", bop_error_last());
	dec = identity_keys(identity);
	bop_free(identity);
	bop_free(recipient);
	identity = recipient = NULL;
	if (bop_age_keygen(&identity, &recipient) < 0)
		bail_out("setup: %s", bop_error_last());
	wrong = identity_keys(identity);

	m = backup(enc);
	diag("12 MiB stored as %llu bytes", (unsigned long long)bop_manifest_stored_bytes(m));
	ok(bop_manifest_stored_bytes(m) > (4u << 20), "the stored object is several buffers");

	ret = restore_on(2, m, dec, &c, err, sizeof(err));
	ok(ret == 0, "two cores: the restore succeeds %s", err);
	ok(c.same && c.got == SIZE, "two cores: every byte restored is the byte backed up");
	ok(c.readers == 1, "two cores: a reading thread (bop-read) ran beside the restore (%d)",
		c.readers);
	ret = restore_on(1, m, dec, &c, err, sizeof(err));
	ok(ret == 0 && c.same && c.got == SIZE, "one core: the same bytes");
	ok(c.readers == 0, "one core: no reading thread (%d)", c.readers);
	ok(threads_named("bop-read") == 0, "no reading thread is left after the restores");

	/* a failing sink stops the reading thread; the error is the sink's */
	c = (check_t){ .fail_at = 3u << 20 };
	ret = restore_on(2, m, dec, &c, err, sizeof(err));
	ok(ret == BOP_EIO, "a sink that fails after 3 MiB fails the restore (%d)", ret);
	ok(strstr(err, "the test's sink is full") != NULL, "... with the sink's words: %s", err);
	ok(c.got < (3u << 20) + (4u << 20), "... and the restore stopped there (%llu bytes)",
		(unsigned long long)c.got);
	ok(threads_named("bop-read") == 0, "... and so did the reading thread");

	c = (check_t){ .fail_at = 2u << 20, .cancel = true };
	ret = restore_on(2, m, dec, &c, err, sizeof(err));
	ok(ret == BOP_ECANCELED, "a restore canceled after 2 MiB fails with BOP_ECANCELED (%d): %s",
		ret, err);
	ok(threads_named("bop-read") == 0, "... and the reading thread ended");
	c = (check_t){ 0 };
	bop_catalog_free(cat);          /* a canceled catalog stays canceled */
	if (bop_catalog_open(&cat, storage, "ahead") < 0)
		bail_out("open: %s", bop_error_last());

	/* a wrong identity: decryption fails on the reading thread, at the header */
	ret = restore_on(1, m, wrong, &c, err1, sizeof(err1));
	ok(ret == BOP_ENOKEY && restore_on(2, m, wrong, &c, err, sizeof(err)) == ret,
		"a wrong identity fails with BOP_ENOKEY as on one core (%d): %s", ret, err);
	is_str(err, err1, "... with the same message");

	/* damage on the reading thread's side: a flipped byte in the middle, a cut */
	damage(m, (off_t)(bop_manifest_stored_bytes(m) / 2), false);
	same_failure(m, dec, "a flipped byte in the middle of the stored object");
	damage(m, (off_t)(bop_manifest_stored_bytes(m) / 3), true);
	same_failure(m, dec, "a stored object cut at a third");
	bop_manifest_free(m);

	/* unencrypted: hash and read on the reading thread */
	m = backup(NULL);
	ret = restore_on(2, m, NULL, &c, err, sizeof(err));
	ok(ret == 0 && c.same && c.got == SIZE && c.readers == 1,
		"unencrypted, two cores: the same bytes, with a reading thread %s", err);
	damage(m, (off_t)(bop_manifest_stored_bytes(m) - 5), false);
	same_failure(m, NULL, "unencrypted: a flipped byte near the end");
	bop_manifest_free(m);

	test_backup(enc, dec);

	bop_keys_free(enc);
	bop_keys_free(dec);
	bop_keys_free(wrong);
	bop_free(identity);
	bop_free(recipient);
	bop_catalog_free(cat);
	bop_storage_free(storage);
	remove_tree(root);
	free(data);
	return done_testing();
}
