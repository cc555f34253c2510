/*
 * Backup -> list -> verify -> restore on file:// storage, for every compression,
 * encryption and a range of sizes; failed producers, tampering, wrong keys, prune.
 */
#include "catalog-test.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <openssl/rand.h>

#define MIB (1u << 20)

static char *root;
static bop_storage_t *storage;
static bop_keys_t *enc_x25519, *dec_x25519, *wrong_x25519, *pass_keys, *wrong_pass;
static char *identity_path;             /* of dec_x25519, for the real age tool */

typedef struct input {
	const char *what;
	unsigned char *data;
	size_t len;
} input_t;

static const char *enc_names[] = { "none", "x25519", "scrypt" };

static const bop_keys_t *enc_keys(int e)
{
	return e == 0 ? NULL : e == 1 ? enc_x25519 : pass_keys;
}

static const bop_keys_t *dec_keys(int e)
{
	return e == 0 ? NULL : e == 1 ? dec_x25519 : pass_keys;
}

static bop_keys_t *identity_keys(char **recipient)
{
	char *identity = NULL, *path = NULL;
	bop_keys_t *keys = NULL;
	FILE *f;

	if (bop_age_keygen(&identity, recipient) < 0 || bop_keys_new(&keys) < 0) {
		fprintf(stderr, "keygen: %s\n", bop_error_last());
		exit(2);
	}
	if (asprintf(&path, "%s/identity-XXXXXX", root) < 0)
		exit(2);
	f = fdopen(mkstemp(path), "w");
	fputs(identity, f);
	fclose(f);
	if (bop_keys_add_identity_file(keys, path) < 0) {
		fprintf(stderr, "identity file: %s\n", bop_error_last());
		exit(2);
	}
	if (!identity_path)
		identity_path = path;
	else
		free(path);
	bop_free(identity);
	return keys;
}

static void make_keys(void)
{
	char *recipient = NULL, *other = NULL;

	dec_x25519 = identity_keys(&recipient);
	wrong_x25519 = identity_keys(&other);
	if (bop_keys_new(&enc_x25519) < 0 || bop_keys_add_recipient(enc_x25519, recipient) < 0 ||
	    bop_keys_new(&pass_keys) < 0 ||
	    bop_keys_set_passphrase(pass_keys, "correct horse battery", 21) < 0 ||
	    bop_keys_set_scrypt_work_factor(pass_keys, 10) < 0 ||
	    bop_keys_new(&wrong_pass) < 0 ||
	    bop_keys_set_passphrase(wrong_pass, "wrong horse", 11) < 0) {
		fprintf(stderr, "keys: %s\n", bop_error_last());
		exit(2);
	}
	bop_free(recipient);
	bop_free(other);
}

static void free_keys(void)
{
	bop_keys_free(enc_x25519);
	bop_keys_free(dec_x25519);
	bop_keys_free(wrong_x25519);
	bop_keys_free(pass_keys);
	bop_keys_free(wrong_pass);
	free(identity_path);
}

static int backup_bytes(bop_catalog_t *cat, bop_manifest_t **m, const void *data, size_t len,
	bop_compression_t comp, const bop_keys_t *keys)
{
	bop_backup_options_t opts = BOP_BACKUP_OPTIONS_INIT;
	bop_source_t *src = NULL;

	opts.compression = comp;
	opts.keys = keys;
	opts.threads = 2;
	if (bop_source_memory_new(&src, data, len) < 0)
		return -1;
	return bop_catalog_backup(cat, m, src, &opts);
}

static int restore_into(bop_catalog_t *cat, const bop_manifest_t *m, const bop_keys_t *keys,
	capture_t *cap)
{
	bop_restore_options_t opts = BOP_RESTORE_OPTIONS_INIT;

	opts.keys = keys;
	return bop_catalog_restore(cat, m, capture_sink(cap), &opts);
}

static int verify(bop_catalog_t *cat, const bop_manifest_t *m, const bop_keys_t *keys)
{
	bop_restore_options_t opts = BOP_RESTORE_OPTIONS_INIT;

	opts.keys = keys;
	return bop_catalog_verify(cat, m, &opts);
}

static char *object_path(const bop_manifest_t *m)
{
	char *path = NULL;

	if (asprintf(&path, "%s/%s", root, bop_manifest_object_key(m)) < 0)
		exit(2);
	return path;
}

static const char *expected_suffix(bop_compression_t c, int e)
{
	static const char *const names[3][2] = {
		{ "/data", "/data.age" }, { "/data.zst", "/data.zst.age" }, { "/data.gz", "/data.gz.age" },
	};

	return names[c][e != 0];
}

/* One backup, checked through its manifest, verify and restore. */
static void round_trip(bop_catalog_t *cat, const input_t *in, bop_compression_t comp, int e)
{
	const char *what = bop_compression_name(comp);
	bop_manifest_t *m = NULL, *again = NULL;
	capture_t cap;
	int ret, good;

	ret = backup_bytes(cat, &m, in->data, in->len, comp, enc_keys(e));
	if (!ok(ret == 0, "%s/%s/%s: backup", what, enc_names[e], in->what)) {
		diag("%s", bop_error_last());
		return;
	}
	good = bop_manifest_plain_bytes(m) == in->len &&
		bop_manifest_compression(m) == comp &&
		strcmp(bop_manifest_encryption(m), enc_names[e]) == 0 &&
		strstr(bop_manifest_object_key(m), expected_suffix(comp, e)) != NULL &&
		strcmp(bop_manifest_engine(m), "stdin") == 0;
	ok(good, "%s/%s/%s: manifest records size, compression, encryption, object %s",
		what, enc_names[e], in->what, bop_manifest_object_key(m));
	ret = bop_catalog_get(cat, &again, bop_manifest_id(m));
	ok(ret == 0 && strcmp(bop_manifest_stored_sha256(again), bop_manifest_stored_sha256(m)) == 0,
		"%s/%s/%s: the stored manifest reads back", what, enc_names[e], in->what);
	bop_manifest_free(again);
	ret = verify(cat, m, dec_keys(e));
	if (!ok(ret == 0, "%s/%s/%s: verify", what, enc_names[e], in->what))
		diag("%s", bop_error_last());
	ret = restore_into(cat, m, dec_keys(e), &cap);
	if (!ok(ret == 0 && cap.committed && cap.len == in->len &&
		(in->len == 0 || memcmp(cap.data, in->data, in->len) == 0),
		"%s/%s/%s: restored bytes are equal", what, enc_names[e], in->what))
		diag("restore returned %d, %zu bytes, committed %d: %s", ret, cap.len,
			cap.committed, bop_error_last());
	capture_clear(&cap);
	bop_manifest_free(m);
}

static void make_inputs(input_t *inputs, size_t *n)
{
	static const size_t sizes[] = { 0, 1, 65535, 65536, 65537 };
	static const char *const names[] = { "0 B", "1 B", "65535 B", "65536 B", "65537 B" };
	size_t i;

	for (i = 0; i < BOP_ARRAY_SIZE(sizes); i++) {
		inputs[i].what = names[i];
		inputs[i].len = sizes[i];
		inputs[i].data = malloc(sizes[i] + 1);
		RAND_bytes(inputs[i].data, (int)sizes[i] + 1);
	}
	inputs[i].what = "3 MiB random";
	inputs[i].len = 3 * MIB;
	inputs[i].data = malloc(3 * MIB);
	RAND_bytes(inputs[i].data, 3 * MIB);
	i++;
	inputs[i].what = "3 MiB compressible";
	inputs[i].len = 3 * MIB;
	inputs[i].data = malloc(3 * MIB);
	for (size_t j = 0; j < 3 * MIB; j++)
		inputs[i].data[j] = "backupop manifest\n"[j % 18] ^ (unsigned char)((j >> 12) & 3);
	*n = i + 1;
}

static void test_round_trips(bop_catalog_t *cat)
{
	input_t inputs[8];
	size_t n = 0;

	make_inputs(inputs, &n);
	for (int c = BOP_COMPRESSION_NONE; c <= BOP_COMPRESSION_GZIP; c++) {
		for (int e = 0; e < 3; e++) {
			for (size_t i = 0; i < n; i++)
				round_trip(cat, &inputs[i], (bop_compression_t)c, e);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(inputs[i].data);
}

static bool have_tool(const char *name)
{
	char *cmd = NULL;
	bool found;

	if (asprintf(&cmd, "command -v %s >/dev/null 2>&1", name) < 0)
		exit(2);
	found = system(cmd) == 0;
	free(cmd);
	return found;
}

/* What the docs promise: `age -d -i key data.zst.age | zstd -d` restores without us. */
static void interop_case(bop_catalog_t *cat, const input_t *in, bop_compression_t comp,
	const char *decompress)
{
	bop_manifest_t *m = NULL;
	char *obj, *out = NULL, *cmd = NULL, *got = NULL;
	size_t len = 0;

	if (backup_bytes(cat, &m, in->data, in->len, comp, enc_x25519) < 0) {
		ok(0, "interop backup: %s", bop_error_last());
		return;
	}
	obj = object_path(m);
	if (asprintf(&out, "%s/restored", root) < 0 ||
	    asprintf(&cmd, "age -d -i '%s' '%s' | %s > '%s'", identity_path, obj, decompress, out) < 0)
		exit(2);
	ok(system(cmd) == 0, "%s: `age -d | %s` runs", bop_manifest_object_key(m), decompress);
	ok(bop__read_file(out, &got, &len, 8 * MIB) == 0 && len == in->len &&
		memcmp(got, in->data, len) == 0, "%s: the real tools restore the same bytes", in->what);
	unlink(out);
	free(got);
	free(cmd);
	free(out);
	free(obj);
	bop_manifest_free(m);
}

static void test_interop(bop_catalog_t *cat)
{
	input_t inputs[8];
	size_t n = 0;

	if (!have_tool("age") || !have_tool("zstd") || !have_tool("gzip")) {
		skip(4, "the age, zstd and gzip tools are needed for the interop check");
		return;
	}
	make_inputs(inputs, &n);
	interop_case(cat, &inputs[n - 1], BOP_COMPRESSION_ZSTD, "zstd -dc");
	interop_case(cat, &inputs[n - 2], BOP_COMPRESSION_GZIP, "gzip -dc");
	for (size_t i = 0; i < n; i++)
		free(inputs[i].data);
}

static void test_list(bop_catalog_t *cat, size_t expected)
{
	bop_manifest_list_t *list = NULL;
	bop_manifest_t *latest = NULL;
	size_t n;
	int sorted = 1;

	is_int(bop_catalog_list(cat, &list), 0, "list");
	n = bop_manifest_list_count(list);
	is_int(n, expected, "list has every backup");
	for (size_t i = 1; i < n; i++) {
		const bop_manifest_t *a = bop_manifest_list_get(list, i - 1);
		const bop_manifest_t *b = bop_manifest_list_get(list, i);

		/* Within one second the manifests' milliseconds order them (test-manifest). */
		if (bop_manifest_start_time(a) > bop_manifest_start_time(b))
			sorted = 0;
	}
	ok(sorted, "oldest first");
	is_int(bop_catalog_get(cat, &latest, "latest"), 0, "get latest");
	if (n > 0)
		is_str(bop_manifest_id(latest), bop_manifest_id(bop_manifest_list_get(list, n - 1)),
			"latest is the last listed");
	bop_manifest_free(latest);
	bop_manifest_list_free(list);
}

static void test_failed_producer(void)
{
	const char *argv[] = { "sh", "-c", "head -c 100000 /dev/urandom; exit 3", NULL };
	bop_command_options_t copts = BOP_COMMAND_OPTIONS_INIT;
	bop_backup_options_t opts = BOP_BACKUP_OPTIONS_INIT;
	bop_catalog_t *cat = NULL;
	bop_manifest_t *m = NULL;
	bop_manifest_list_t *list = NULL;
	bop_source_t *src = NULL;
	char *dir = NULL;
	int ret;

	bop_catalog_open(&cat, storage, "failing");
	copts.argv = argv;
	if (bop_source_command_new(&src, &copts) < 0) {
		ok(0, "start the producer: %s", bop_error_last());
		bop_catalog_free(cat);
		return;
	}
	opts.keys = enc_x25519;
	ret = bop_catalog_backup(cat, &m, src, &opts);
	ok(ret < 0, "a producer that exits 3 fails the backup (%d)", ret);
	ok(m == NULL, "no manifest is returned");
	ok(strstr(bop_error_last(), "backup failed") && strstr(bop_error_last(), "3"),
		"the message says the backup failed and the status: %s", bop_error_last());
	is_int(bop_catalog_list(cat, &list), 0, "list after the failure");
	is_int(bop_manifest_list_count(list), 0, "no backup exists");
	if (asprintf(&dir, "%s/failing", root) < 0)
		exit(2);
	is_int(count_files(dir), 0, "nothing is left in storage");
	free(dir);
	bop_manifest_list_free(list);
	bop_catalog_free(cat);
}

static void flip_middle_byte(const char *path)
{
	struct stat st;
	unsigned char b;
	int fd = open(path, O_RDWR);

	if (fd < 0 || fstat(fd, &st) < 0 || pread(fd, &b, 1, st.st_size / 2) != 1) {
		perror(path);
		exit(2);
	}
	b ^= 0x40;
	if (pwrite(fd, &b, 1, st.st_size / 2) != 1)
		exit(2);
	close(fd);
}

static void tamper_case(bop_catalog_t *cat, const void *data, size_t len, bop_compression_t comp,
	int e)
{
	const char *what = bop_compression_name(comp);
	bop_manifest_t *m = NULL;
	capture_t cap;
	char *path;
	int ret;

	if (backup_bytes(cat, &m, data, len, comp, enc_keys(e)) < 0) {
		ok(0, "tamper %s/%s: backup: %s", what, enc_names[e], bop_error_last());
		return;
	}
	path = object_path(m);
	flip_middle_byte(path);
	ret = restore_into(cat, m, dec_keys(e), &cap);
	is_int(ret, BOP_EINTEGRITY, "tamper: restore fails with BOP_EINTEGRITY");
	diag("%s/%s: %s", what, enc_names[e], bop_error_last());
	ok(!cap.committed && cap.aborted, "tamper %s/%s: the sink was aborted, not committed",
		what, enc_names[e]);
	ret = verify(cat, m, dec_keys(e));
	is_int(ret, BOP_EINTEGRITY, "tamper: verify detects it");
	capture_clear(&cap);
	free(path);
	bop_manifest_free(m);
}

static void test_tampering(void)
{
	size_t len = 3 * MIB;
	unsigned char *data = malloc(len);
	bop_catalog_t *cat = NULL;

	bop_catalog_open(&cat, storage, "tamper");
	RAND_bytes(data, (int)len);
	for (size_t j = 0; j < len / 2; j++)
		data[j] = (unsigned char)(j % 7);       /* half compressible */
	tamper_case(cat, data, len, BOP_COMPRESSION_NONE, 0);
	tamper_case(cat, data, len, BOP_COMPRESSION_ZSTD, 0);
	tamper_case(cat, data, len, BOP_COMPRESSION_GZIP, 0);
	tamper_case(cat, data, len, BOP_COMPRESSION_ZSTD, 1);
	tamper_case(cat, data, len, BOP_COMPRESSION_NONE, 2);
	free(data);
	bop_catalog_free(cat);
}

/* `m` as parsed back from its JSON with its stored digest changed in one digit, or (not
 * `digest`) its stored size one more. */
static bop_manifest_t *with_stored(const bop_manifest_t *m, bool digest)
{
	char *json = NULL, *edited = NULL, *at, old[72], new[72];
	bop_manifest_t *out = NULL;

	if (digest) {
		snprintf(old, sizeof(old), "%s", bop_manifest_stored_sha256(m));
		snprintf(new, sizeof(new), "%c%s", old[0] == '0' ? '1' : '0', old + 1);
	} else {
		snprintf(old, sizeof(old), ": %llu", (unsigned long long)bop_manifest_stored_bytes(m));
		snprintf(new, sizeof(new), ": %llu", (unsigned long long)bop_manifest_stored_bytes(m) + 1);
	}
	if (bop_manifest_to_json(m, &json) < 0 || !(at = strstr(json, old)) ||
	    asprintf(&edited, "%.*s%s%s", (int)(at - json), json, new, at + strlen(old)) < 0 ||
	    bop_manifest_parse(&out, edited, strlen(edited)) < 0) {
		fprintf(stderr, "cannot edit the manifest: %s\n", bop_error_last());
		exit(2);
	}
	free(json);
	free(edited);
	return out;
}

/* A restore checks the bytes it restores (the plaintext's size and SHA-256) and the stored
 * object's size; a verification checks every digest of the manifest. */
static void test_what_is_checked(void)
{
	size_t len = 3 * MIB;
	unsigned char *data = malloc(len);
	bop_manifest_t *m = NULL, *bad_digest, *bad_size;
	bop_catalog_t *cat = NULL;
	capture_t cap;

	bop_catalog_open(&cat, storage, "checks");
	RAND_bytes(data, (int)len);
	for (size_t j = 0; j < len / 2; j++)
		data[j] = (unsigned char)(j % 7);
	if (backup_bytes(cat, &m, data, len, BOP_COMPRESSION_ZSTD, enc_keys(1)) < 0) {
		ok(0, "checks: backup: %s", bop_error_last());
		free(data);
		bop_catalog_free(cat);
		return;
	}
	bad_digest = with_stored(m, true);
	bad_size = with_stored(m, false);
	ok(bop_manifest_stored_bytes(bad_size) == bop_manifest_stored_bytes(m) + 1 &&
		strcmp(bop_manifest_stored_sha256(bad_digest), bop_manifest_stored_sha256(m)) != 0,
		"checks: the edited manifests differ from the real one where they should");

	is_int(restore_into(cat, bad_digest, dec_keys(1), &cap), 0,
		"a manifest whose stored digest alone is wrong: the restore, which checks the "
		"plaintext, succeeds");
	ok(cap.committed && cap.len == len && memcmp(cap.data, data, len) == 0,
		"... and every byte restored is the one backed up");
	capture_clear(&cap);
	is_int(verify(cat, bad_digest, dec_keys(1)), BOP_EINTEGRITY,
		"... the verification, which checks every digest, fails");
	ok(strstr(bop_error_last(), "SHA-256 mismatch") != NULL, "... saying: %s", bop_error_last());

	is_int(restore_into(cat, bad_size, dec_keys(1), &cap), BOP_EINTEGRITY,
		"a manifest whose stored size is wrong: the restore fails");
	ok(strstr(bop_error_last(), "were expected") != NULL, "... saying: %s", bop_error_last());
	ok(!cap.committed && cap.aborted, "... and its sink was aborted, not committed");
	capture_clear(&cap);
	is_int(verify(cat, bad_size, dec_keys(1)), BOP_EINTEGRITY, "... as does the verification");

	bop_manifest_free(bad_digest);
	bop_manifest_free(bad_size);
	bop_manifest_free(m);
	free(data);
	bop_catalog_free(cat);
}

static void test_keys(void)
{
	static const char data[] = "secret database dump";
	bop_catalog_t *cat = NULL;
	bop_manifest_t *mx = NULL, *mp = NULL;
	bop_restore_options_t opts = BOP_RESTORE_OPTIONS_INIT;
	capture_t cap;
	int ret;

	bop_catalog_open(&cat, storage, "keys");
	if (backup_bytes(cat, &mx, data, sizeof(data), BOP_COMPRESSION_ZSTD, enc_x25519) < 0 ||
	    backup_bytes(cat, &mp, data, sizeof(data), BOP_COMPRESSION_GZIP, pass_keys) < 0) {
		ok(0, "encrypted backups: %s", bop_error_last());
		goto out;
	}
	ret = bop_catalog_restore(cat, mx, capture_sink(&cap), &opts);
	is_int(ret, BOP_ENOKEY, "no key: BOP_ENOKEY");
	ok(strstr(bop_error_last(), "encrypted") && strstr(bop_error_last(), "identity or passphrase"),
		"the message asks for an identity or passphrase: %s", bop_error_last());
	ok(!cap.committed, "nothing committed");
	capture_clear(&cap);
	is_int(bop_catalog_verify(cat, mx, NULL), BOP_ENOKEY, "verify without a key: BOP_ENOKEY");
	ret = restore_into(cat, mx, wrong_x25519, &cap);
	is_int(ret, BOP_ENOKEY, "wrong identity: BOP_ENOKEY");
	diag("%s", bop_error_last());
	ok(!cap.committed && cap.len == 0, "nothing reached the sink");
	capture_clear(&cap);
	ret = restore_into(cat, mp, wrong_pass, &cap);
	is_int(ret, BOP_ENOKEY, "wrong passphrase: BOP_ENOKEY (the scrypt stanza does not open)");
	ok(strstr(bop_error_last(), "the passphrase is wrong") != NULL,
		"and the message says the passphrase is wrong: %s", bop_error_last());
	ok(!cap.committed, "nothing committed");
	capture_clear(&cap);
	ret = restore_into(cat, mp, dec_x25519, &cap);
	is_int(ret, BOP_ENOKEY, "an identity for a passphrase backup: BOP_ENOKEY");
	capture_clear(&cap);
	ok(strstr(bop_manifest_object_key(mx), ".zst.age") != NULL, "x25519 object is data.zst.age");
out:
	bop_manifest_free(mx);
	bop_manifest_free(mp);
	bop_catalog_free(cat);
}

static void progress(uint64_t in, uint64_t out, void *payload)
{
	uint64_t *last = payload;

	(void)out;
	*last = in;
}

static void test_options(void)
{
	static const char *const tags[] = { "pinned", "nightly", NULL };
	static const char *const bad_tags[] = { "a,b", NULL };
	bop_backup_options_t opts = BOP_BACKUP_OPTIONS_INIT;
	bop_catalog_t *cat = NULL;
	bop_manifest_t *m = NULL;
	bop_source_t *src = NULL;
	uint64_t seen = 0;
	char data[5000];
	int ret;

	memset(data, 'x', sizeof(data));
	bop_catalog_open(&cat, storage, "options");
	opts.tags = tags;
	opts.engine = "exec";
	opts.progress = progress;
	opts.payload = &seen;
	bop_source_memory_new(&src, data, sizeof(data));
	ret = bop_catalog_backup(cat, &m, src, &opts);
	is_int(ret, 0, "backup with tags and engine");
	is_int(bop_manifest_tag_count(m), 2, "tags recorded");
	is_str(bop_manifest_tag(m, 1), "nightly", "in order");
	is_str(bop_manifest_engine(m), "exec", "engine recorded");
	is_int(seen, sizeof(data), "progress reported the bytes read");
	ok(m && bop__catalog_id_valid(bop_manifest_id(m)) && strlen(bop_manifest_id(m)) == 21 &&
		bop_manifest_id(m)[8] == 'T' && bop_manifest_id(m)[15] == 'Z' &&
		bop_manifest_id(m)[16] == '-', "id looks like 20261121T020000Z-k3f9: %s",
		m ? bop_manifest_id(m) : "");
	is_int(bop_catalog_remove(cat, bop_manifest_id(m)), 0, "remove");
	is_int(bop_catalog_get(cat, &(bop_manifest_t *){ NULL }, bop_manifest_id(m)), BOP_ENOTFOUND,
		"a removed backup is not found");
	is_int(bop_catalog_remove(cat, bop_manifest_id(m)), BOP_ENOTFOUND, "removing twice: not found");
	is_int(bop_catalog_get(cat, &(bop_manifest_t *){ NULL }, "../../x"), BOP_EINVAL,
		"an id with a path is refused");
	bop_manifest_free(m);
	m = NULL;
	opts.tags = bad_tags;
	bop_source_memory_new(&src, data, sizeof(data));
	is_int(bop_catalog_backup(cat, &m, src, &opts), BOP_EINVAL, "a tag with ',' is refused");
	bop_catalog_free(cat);
}

static void test_prune(void)
{
	bop_retention_policy_t policy = BOP_RETENTION_POLICY_INIT;
	bop_manifest_list_t *list = NULL, *after = NULL;
	bop_retention_plan_t *plan = NULL;
	bop_catalog_t *cat = NULL;
	size_t removed = 99, n;
	char kept[5][40];
	int good = 1, nkept = 0;

	bop_catalog_open(&cat, storage, "prune");
	for (int i = 0; i < 5; i++) {
		if (backup_bytes(cat, NULL, "abc", 3, BOP_COMPRESSION_ZSTD, NULL) < 0)
			diag("backup: %s", bop_error_last());
	}
	bop_catalog_list(cat, &list);
	policy.keep_last = 2;
	is_int(bop_retention_plan(&plan, list, &policy, bop__now()), 0, "plan");
	for (size_t i = 0; i < bop_retention_plan_count(plan); i++) {
		if (bop_retention_plan_keep(plan, i))
			snprintf(kept[nkept++], sizeof(kept[0]), "%s", bop_retention_plan_id(plan, i));
	}
	is_int(nkept, 2, "the plan keeps 2");
	is_int(bop_catalog_prune(cat, &removed, plan), 0, "prune");
	is_int(removed, 3, "prune removed 3");
	bop_catalog_list(cat, &after);
	n = bop_manifest_list_count(after);
	is_int(n, 2, "2 backups remain");
	for (size_t i = 0; i < n && i < 2; i++)
		good &= strcmp(bop_manifest_id(bop_manifest_list_get(after, i)), kept[i]) == 0;
	ok(good, "exactly the planned ones remain");
	{
		char *dir = NULL;

		if (asprintf(&dir, "%s/prune", root) < 0)
			exit(2);
		is_int(count_files(dir), 4, "their data and manifests are all that is left");
		free(dir);
	}
	bop_retention_plan_free(plan);
	bop_manifest_list_free(list);
	bop_manifest_list_free(after);
	bop_catalog_free(cat);
}

static void test_damaged_manifest_skipped(void)
{
	bop_catalog_t *cat = NULL;
	bop_manifest_list_t *list = NULL;
	const char *junk = "{\"format\": \"something else\"}";

	bop_catalog_open(&cat, storage, "skip");
	backup_bytes(cat, NULL, "abc", 3, BOP_COMPRESSION_NONE, NULL);
	bop__storage_put_bytes(storage, "skip/20260101T000000Z-junk/manifest.json", junk,
		strlen(junk), false);
	bop__storage_put_bytes(storage, "skip/20260101T000000Z-nomf/data.zst", "x", 1, false);
	is_int(bop_catalog_list(cat, &list), 0, "list with a damaged manifest");
	is_int(bop_manifest_list_count(list), 1, "the damaged one and data without manifest are skipped");
	bop_manifest_list_free(list);
	bop_catalog_free(cat);
}

int main(void)
{
	bop_catalog_t *cat = NULL;

	storage = open_tmp_storage(&root);
	make_keys();
	is_int(bop_catalog_open(&cat, storage, "shop/orders-db"), 0, "open catalog");
	test_round_trips(cat);
	test_list(cat, 3 * 3 * 7);
	test_interop(cat);
	test_failed_producer();
	test_tampering();
	test_what_is_checked();
	test_keys();
	test_options();
	test_prune();
	test_damaged_manifest_skipped();
	bop_catalog_free(cat);
	free_keys();
	bop_storage_free(storage);
	remove_tree(root);
	return done_testing();
}
