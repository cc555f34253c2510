/*
 * Multi-file backups in the catalog (what the cockroach endpoint stores): files streamed
 * through compression and encryption, the manifest's "files", reads from an offset,
 * removal, abort, tampering, and the stored objects checked with the real age and zstd.
 */
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"

#define BIG (10u << 20)
#define DIR_ "2026/01/02-030405.00"

static char *tmp;
static unsigned char *big;

static int discard(const void *buf, size_t len, void *payload)
{
	(void)buf; (void)len; (void)payload;
	return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(path);
}

static int files_found;

static int count_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)path; (void)sb; (void)ftw;
	if (flag == FTW_F)
		files_found++;
	return 0;
}

static int count_files(const char *dir)
{
	files_found = 0;
	nftw(dir, count_entry, 16, FTW_PHYS);
	return files_found;
}

static int put_file(bop_backup_session_t *s, const char *name, const void *data, size_t len)
{
	bop_sink_t *sink = NULL;
	int ret = bop_backup_session_put(s, &sink, name);

	/* In uneven chunks, as an HTTP body arrives. */
	for (size_t off = 0; ret == 0 && off < len; off += 70001) {
		size_t n = len - off < 70001 ? len - off : 70001;

		ret = bop_sink_write(sink, (const char *)data + off, n);
	}
	if (ret == 0)
		ret = bop_sink_commit(sink);
	bop_sink_free(sink);
	return ret;
}

/* Reads a whole source into a malloc'd buffer. */
static int slurp(bop_source_t *src, unsigned char **out, size_t *len)
{
	size_t cap = 1 << 16, n = 0, got = 0;
	unsigned char *buf = malloc(cap);
	int ret;

	for (;;) {
		if (n + 65536 > cap)
			buf = realloc(buf, cap *= 2);
		ret = bop_source_read(src, buf + n, 65536, &got);
		if (ret < 0 || got == 0)
			break;
		n += got;
	}
	*out = buf;
	*len = n;
	return ret;
}

static int read_back(bop_source_t *src, const void *want, size_t want_len)
{
	unsigned char *data = NULL;
	size_t len = 0;
	int ret = slurp(src, &data, &len);

	if (ret == 0 && (len != want_len || memcmp(data, want, len)))
		ret = -100;
	free(data);
	return ret;
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (!f || fwrite(data, 1, len, f) != len)
		bail_out("cannot write %s", path);
	fclose(f);
}

static void flip_byte(const char *path, long where)
{
	FILE *f = fopen(path, "r+b");
	int c;

	if (!f)
		bail_out("cannot open %s", path);
	fseek(f, where, SEEK_SET);
	c = fgetc(f);
	fseek(f, where, SEEK_SET);
	fputc(c ^ 0x40, f);
	fclose(f);
}

static bool have(const char *tool)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
	return system(cmd) == 0;
}

typedef struct fixture {
	bop_storage_t *storage;
	bop_catalog_t *catalog;
	bop_keys_t *keys;
	char *identity_path;
	char *store;
} fixture_t;

static void setup(fixture_t *f)
{
	char *identity = NULL, *recipient = NULL, *url;

	f->store = bop__sprintf("%s/store", tmp);
	url = bop__sprintf("file://%s", f->store);
	if (bop_storage_open(&f->storage, url, NULL) < 0 ||
	    bop_catalog_open(&f->catalog, f->storage, "shop/orders") < 0 ||
	    bop_age_keygen(&identity, &recipient) < 0 || bop_keys_new(&f->keys) < 0 ||
	    bop_keys_add_recipient(f->keys, recipient) < 0)
		bail_out("setup: %s", bop_error_last());
	f->identity_path = bop__sprintf("%s/key.txt", tmp);
	write_file(f->identity_path, identity, strlen(identity));
	if (bop_keys_add_identity_file(f->keys, f->identity_path) < 0)
		bail_out("identity: %s", bop_error_last());
	bop_free(identity);
	bop_free(recipient);
	free(url);
}

static void teardown(fixture_t *f)
{
	bop_catalog_free(f->catalog);
	bop_storage_free(f->storage);
	bop_keys_free(f->keys);
	free(f->identity_path);
	free(f->store);
}

static bop_manifest_t *encrypted_backup(fixture_t *f)
{
	bop_backup_options_t opts = BOP_BACKUP_OPTIONS_INIT;
	bop_backup_session_t *s = NULL;
	bop_manifest_t *m = NULL;
	bop_sink_t *sink = NULL;
	bop_source_t *src = NULL;
	uint64_t size = 0;
	char *gone_dir;

	opts.keys = f->keys;
	opts.engine = "cockroach";
	ok(bop_catalog_backup_begin(f->catalog, &s, &opts) == 0, "a multi-file backup begins");
	ok(count_files(f->store) == 0, "... and stores nothing yet");
	ok(put_file(s, DIR_ "/data/1.sst", big, BIG) == 0, "a 10 MiB file is stored");
	ok(put_file(s, DIR_ "/data/empty.sst", "", 0) == 0, "a 0-byte file is stored");
	ok(put_file(s, DIR_ "/one", "x", 1) == 0, "a 1-byte file is stored");
	ok(put_file(s, "LATEST", "/" DIR_, strlen("/" DIR_)) == 0, "LATEST is stored");
	ok(put_file(s, DIR_ "/BACKUP-CHECKPOINT-tmp", big, 1000) == 0, "a temporary file is stored");
	ok(put_file(s, "LATEST", "/" DIR_, strlen("/" DIR_)) == 0, "LATEST is stored again (replaced)");
	is_int(put_file(s, "../escape", "x", 1), BOP_EINVAL, "\"../escape\" is refused");
	is_int(put_file(s, "/abs", "x", 1), BOP_EINVAL, "\"/abs\" is refused");
	is_int(put_file(s, "a//b", "x", 1), BOP_EINVAL, "\"a//b\" is refused");
	ok(strstr(bop_error_last(), "file name") != NULL, "... the message says the name is invalid");

	ok(bop_backup_session_stat(s, &size, DIR_ "/data/1.sst") == 0 && size == BIG,
		"stat gives the plaintext size");
	is_int(bop_backup_session_stat(s, &size, "nope"), BOP_ENOTFOUND, "stat of a missing file");
	ok(bop_backup_session_read(s, &src, DIR_ "/data/1.sst", BIG / 2, NULL) == BOP_ENOKEY,
		"reading back an encrypted session needs keys");
	{
		bop_restore_options_t ro = BOP_RESTORE_OPTIONS_INIT;

		ro.keys = f->keys;
		ok(bop_backup_session_read(s, &src, DIR_ "/data/1.sst", BIG / 2, &ro) == 0 &&
			read_back(src, big + BIG / 2, BIG - BIG / 2) == 0,
			"a file of the session reads back from the middle");
		bop_source_free(src);
		src = NULL;
	}
	ok(bop_backup_session_remove(s, DIR_ "/BACKUP-CHECKPOINT-tmp") == 0, "a file is removed");
	is_int(bop_backup_session_stat(s, &size, DIR_ "/BACKUP-CHECKPOINT-tmp"), BOP_ENOTFOUND,
		"... and is gone");
	is_int(bop_backup_session_remove(s, "nope"), BOP_ENOTFOUND, "removing a missing file");

	/* A file whose sender goes away: nothing of it stays. */
	ok(bop_backup_session_put(s, &sink, "aborted.sst") == 0 &&
		bop_sink_write(sink, big, 300000) == 0, "a file is half written");
	bop_sink_free(sink);
	is_int(bop_backup_session_stat(s, &size, "aborted.sst"), BOP_ENOTFOUND,
		"... and not part of the backup when abandoned");

	gone_dir = bop__sprintf("%s/shop/orders/%s/files", f->store, bop_backup_session_id(s));
	ok(count_files(gone_dir) == 4, "exactly 4 objects are stored (got %d)", count_files(gone_dir));
	free(gone_dir);
	ok(bop_backup_session_commit(s, &m) == 0, "the backup is committed: %s", bop_error_last());
	bop_backup_session_free(s);
	return m;
}

static void check_manifest(const bop_manifest_t *m)
{
	const char *want[] = { DIR_ "/data/1.sst", DIR_ "/data/empty.sst", DIR_ "/one", "LATEST" };
	bop_manifest_file_t file = { BOP_MANIFEST_FILE_VERSION, NULL, NULL, 0, NULL, 0, NULL };
	bop_manifest_t *again = NULL;
	char *json = NULL;
	bool all = true;

	ok(bop_manifest_has_files(m) == 1, "the manifest is a multi-file one");
	is_int((int)bop_manifest_file_count(m), 4, "it lists exactly the 4 files kept");
	for (size_t i = 0; i < 4; i++) {
		if (bop_manifest_file_find(m, &file, want[i]) < 0)
			all = false;
	}
	ok(all, "... by name");
	ok(bop_manifest_file_find(m, &file, DIR_ "/data/1.sst") == 0 && file.plain_bytes == BIG &&
		strstr(file.object_key, "/files/") && strstr(file.object_key, ".zst.age"),
		"the big file: size and a .zst.age object (%s)", file.object_key);
	ok(bop_manifest_file_find(m, &file, DIR_ "/data/empty.sst") == 0 && file.plain_bytes == 0 &&
		!strcmp(file.plain_sha256,
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
		"the empty file has the SHA-256 of nothing");
	is_int((int)bop_manifest_plain_bytes(m), (int)(BIG + 1 + strlen("/" DIR_)),
		"plain bytes are the sum of the files");
	ok(!strcmp(bop_manifest_engine(m), "cockroach"), "the engine is recorded");
	ok(bop_manifest_to_json(m, &json) == 0 && strstr(json, "\"files\"") &&
		bop_manifest_parse(&again, json, strlen(json)) == 0 &&
		bop_manifest_file_count(again) == 4, "the manifest round-trips through JSON");
	bop_manifest_free(again);
	bop_free(json);
}

static void check_reads(fixture_t *f, const bop_manifest_t *m)
{
	bop_restore_options_t ro = BOP_RESTORE_OPTIONS_INIT;
	bop_source_t *src = NULL;

	ro.keys = f->keys;
	ok(bop_catalog_read_file(f->catalog, &src, m, DIR_ "/data/1.sst", 0, &ro) == 0 &&
		read_back(src, big, BIG) == 0, "read from 0: every byte");
	bop_source_free(src);
	src = NULL;
	ok(bop_catalog_read_file(f->catalog, &src, m, DIR_ "/data/1.sst", 1234567, &ro) == 0 &&
		read_back(src, big + 1234567, BIG - 1234567) == 0, "read from 1234567: the rest");
	bop_source_free(src);
	src = NULL;
	ok(bop_catalog_read_file(f->catalog, &src, m, DIR_ "/data/1.sst", BIG - 1, &ro) == 0 &&
		read_back(src, big + BIG - 1, 1) == 0, "read from the last byte");
	bop_source_free(src);
	src = NULL;
	ok(bop_catalog_read_file(f->catalog, &src, m, DIR_ "/one", 0, &ro) == 0 &&
		read_back(src, "x", 1) == 0, "the 1-byte file");
	bop_source_free(src);
	src = NULL;
	ok(bop_catalog_read_file(f->catalog, &src, m, DIR_ "/data/empty.sst", 0, &ro) == 0 &&
		read_back(src, "", 0) == 0, "the empty file");
	bop_source_free(src);
	src = NULL;
	/* A reader dropped early must not hang or leak. */
	ok(bop_catalog_read_file(f->catalog, &src, m, DIR_ "/data/1.sst", 0, &ro) == 0,
		"a reader opened and dropped at once");
	bop_source_free(src);
	src = NULL;
	is_int(bop_catalog_read_file(f->catalog, &src, m, DIR_ "/one", 2, &ro), BOP_EINVAL,
		"an offset beyond the end is refused");
	is_int(bop_catalog_read_file(f->catalog, &src, m, "missing", 0, &ro), BOP_ENOTFOUND,
		"an unknown file is not found");
	is_int(bop_catalog_read_file(f->catalog, &src, m, DIR_ "/one", 0, NULL), BOP_ENOKEY,
		"an encrypted backup needs keys");
	ok(bop_catalog_verify(f->catalog, m, &ro) == 0, "verify checks every file: %s",
		bop_error_last());
	{
		bop_sink_t *sink = NULL;

		bop_sink_callback_new(&sink, discard, NULL);
		is_int(bop_catalog_restore(f->catalog, m, sink, &ro), BOP_ENOTSUPPORTED,
			"bop_catalog_restore refuses a multi-file backup");
		ok(strstr(bop_error_last(), "backupop-runner") != NULL, "... and says to use the runner");
	}
}

/* The stored objects are standard: age -d | zstd -d gives the file back. */
static void check_tools(fixture_t *f, const bop_manifest_t *m)
{
	bop_manifest_file_t file = { BOP_MANIFEST_FILE_VERSION, NULL, NULL, 0, NULL, 0, NULL };
	char cmd[2048], *orig = bop__sprintf("%s/orig", tmp);

	if (!have("age") || !have("zstd")) {
		skip(2, "age or zstd is not installed (Debian: age, zstd)");
		free(orig);
		return;
	}
	write_file(orig, big, BIG);
	bop_manifest_file_find(m, &file, DIR_ "/data/1.sst");
	snprintf(cmd, sizeof(cmd), "age -d -i '%s' '%s/%s' | zstd -dq | cmp -s - '%s'",
		f->identity_path, f->store, file.object_key, orig);
	ok(system(cmd) == 0, "age -d | zstd -d of the stored big file gives the original bytes");
	bop_manifest_file_find(m, &file, DIR_ "/one");
	snprintf(cmd, sizeof(cmd), "test \"$(age -d -i '%s' '%s/%s' | zstd -dq)\" = x",
		f->identity_path, f->store, file.object_key);
	ok(system(cmd) == 0, "... and of the 1-byte file");
	free(orig);
}

static void check_tamper(fixture_t *f, const bop_manifest_t *m)
{
	bop_manifest_file_t file = { BOP_MANIFEST_FILE_VERSION, NULL, NULL, 0, NULL, 0, NULL };
	bop_restore_options_t ro = BOP_RESTORE_OPTIONS_INIT;
	bop_source_t *src = NULL;
	char *path;
	int ret;

	ro.keys = f->keys;
	bop_manifest_file_find(m, &file, DIR_ "/data/1.sst");
	path = bop__sprintf("%s/%s", f->store, file.object_key);
	flip_byte(path, (long)(file.stored_bytes / 2));
	ret = bop_catalog_read_file(f->catalog, &src, m, DIR_ "/data/1.sst", 0, &ro);
	if (ret == 0)
		ret = read_back(src, big, BIG);
	bop_source_free(src);
	ok(ret < 0 && ret != -100, "a tampered object fails the read (%d: %s)", ret, bop_error_last());
	is_int(bop_catalog_verify(f->catalog, m, &ro), BOP_EINTEGRITY, "verify reports it");
	ok(strstr(bop_error_last(), "1.sst") != NULL, "... naming the file: %s", bop_error_last());
	free(path);
}

/* Neither compressed nor encrypted: a small tampered file fails before any byte is given. */
static void check_plain_tamper(fixture_t *f)
{
	bop_backup_options_t opts = BOP_BACKUP_OPTIONS_INIT;
	bop_manifest_file_t file = { BOP_MANIFEST_FILE_VERSION, NULL, NULL, 0, NULL, 0, NULL };
	bop_backup_session_t *s = NULL;
	bop_manifest_t *m = NULL;
	bop_source_t *src = NULL;
	char *path;

	opts.compression = BOP_COMPRESSION_NONE;
	if (bop_catalog_backup_begin(f->catalog, &s, &opts) < 0 ||
	    put_file(s, "small", big, 5000) < 0 || bop_backup_session_commit(s, &m) < 0)
		bail_out("plain backup: %s", bop_error_last());
	bop_backup_session_free(s);
	bop_manifest_file_find(m, &file, "small");
	path = bop__sprintf("%s/%s", f->store, file.object_key);
	flip_byte(path, 4000);
	is_int(bop_catalog_read_file(f->catalog, &src, m, "small", 0, NULL), BOP_EINTEGRITY,
		"a small tampered plain file fails when opened, before any byte is served");
	ok(src == NULL, "... and no source is given");
	bop_manifest_free(m);
	free(path);
}

static void check_failed_backup(fixture_t *f)
{
	bop_backup_session_t *s = NULL;
	bop_manifest_list_t *before = NULL, *after = NULL;
	bop_sink_t *sink = NULL;
	char *dir;

	bop_catalog_list(f->catalog, &before);
	if (bop_catalog_backup_begin(f->catalog, &s, NULL) < 0)
		bail_out("%s", bop_error_last());
	dir = bop__sprintf("%s/shop/orders/%s", f->store, bop_backup_session_id(s));
	ok(put_file(s, "a", big, 100000) == 0 && put_file(s, "b/c", big, 10) == 0,
		"a backup that will fail stores 2 files");
	ok(count_files(dir) == 2, "... which are in storage");
	ok(bop_backup_session_put(s, &sink, "late") == 0, "a third file is being written");
	bop_backup_session_free(s);     /* the statement failed: no commit */
	ok(bop_sink_write(sink, "zz", 2) == 0, "... its sender may go on writing");
	ok(bop_sink_commit(sink) == BOP_ECANCELED, "... but cannot add it to an ended backup");
	bop_sink_free(sink);
	ok(count_files(dir) == 0, "a failed backup leaves no object (%d)", count_files(dir));
	bop_catalog_list(f->catalog, &after);
	is_int((int)bop_manifest_list_count(after), (int)bop_manifest_list_count(before),
		"... and no manifest");
	bop_manifest_list_free(before);
	bop_manifest_list_free(after);
	free(dir);

	if (bop_catalog_backup_begin(f->catalog, &s, NULL) < 0)
		bail_out("%s", bop_error_last());
	bop_catalog_cancel(f->catalog);
	is_int(put_file(s, "x", "x", 1), BOP_ECANCELED, "a canceled catalog takes no more files");
	is_int(bop_backup_session_commit(s, NULL), BOP_ECANCELED, "... and commits nothing");
	bop_backup_session_free(s);
}

int main(void)
{
	fixture_t f = { 0 };
	bop_manifest_t *m, *latest = NULL;
	FILE *rnd = fopen("/dev/urandom", "rb");
	char tmpl[] = "/tmp/bop-crdb-XXXXXX";

	tmp = mkdtemp(tmpl);
	big = malloc(BIG);
	if (!tmp || !rnd || fread(big, 1, BIG, rnd) != BIG)
		bail_out("setup failed");
	fclose(rnd);
	setup(&f);
	m = encrypted_backup(&f);
	if (!m)
		bail_out("no manifest: %s", bop_error_last());
	check_manifest(m);
	ok(bop_catalog_get(f.catalog, &latest, "latest") == 0 && bop_manifest_has_files(latest) &&
		bop_manifest_file_count(latest) == 4, "the catalog lists it, with its files");
	bop_manifest_free(latest);
	check_reads(&f, m);
	check_tools(&f, m);
	check_tamper(&f, m);
	bop_manifest_free(m);
	check_plain_tamper(&f);
	check_failed_backup(&f);
	teardown(&f);
	nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(big);
	return done_testing();
}
