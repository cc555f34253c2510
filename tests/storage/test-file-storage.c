/*
 * The storage registry and the "file" backend: atomic puts, offsets, listing, removal,
 * key checks, URL forms and the messages a user sees.
 */
#include "internal.h"
#include "tap.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[PATH_MAX];

/* snprintf into an array, which must be large enough. */
#define PATHF(buf, ...) do { \
	if (snprintf(buf, sizeof(buf), __VA_ARGS__) >= (int)sizeof(buf)) \
		abort(); \
} while (0)

/* ---- helpers ---- */

static int put_string(bop_storage_t *st, const char *key, const char *text)
{
	return bop__storage_put_bytes(st, key, text, strlen(text), false);
}

static char *get_string(bop_storage_t *st, const char *key)
{
	char *data = NULL;

	if (bop__storage_get_bytes(st, key, &data, NULL, 1 << 20) < 0)
		return NULL;
	return data;
}

static char *read_source(bop_source_t *src, size_t *len)
{
	size_t cap = 1 << 16, n = 0, got;
	char *buf = malloc(cap);

	for (;;) {
		if (n == cap)
			buf = realloc(buf, cap *= 2);
		if (bop_source_read(src, buf + n, cap - n, &got) < 0) {
			free(buf);
			return NULL;
		}
		if (!got)
			break;
		n += got;
	}
	*len = n;
	return buf;
}

static bool contains(const char *haystack, const char *needle)
{
	return haystack && strstr(haystack, needle) != NULL;
}

/* Counts the files under `dir` whose name contains ".tmp-". */
static int count_temp_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char path[PATH_MAX];
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		PATHF(path, "%s/%s", dir, e->d_name);
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
			n += count_temp_files(path);
		else if (strstr(e->d_name, ".tmp-"))
			n++;
	}
	closedir(d);
	return n;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static int rm_rf(const char *path)
{
	char cmd[PATH_MAX + 32];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	return system(cmd);
}

/* ---- list collection ---- */

#define MAX_KEYS 32

typedef struct listing {
	char *keys[MAX_KEYS];
	uint64_t sizes[MAX_KEYS];
	int n;
	int stop_after;         /* 0: never */
	int fail_with;          /* 0: never */
} listing_t;

static int collect(const char *key, const bop_storage_stat_t *st, void *payload)
{
	listing_t *l = payload;

	if (l->fail_with)
		return l->fail_with;
	if (l->n < MAX_KEYS) {
		l->keys[l->n] = strdup(key);
		l->sizes[l->n] = st->size;
		l->n++;
	}
	return l->stop_after && l->n >= l->stop_after;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted keys joined by '|'. */
static char *listing_text(bop_storage_t *st, const char *prefix, int *ret)
{
	listing_t l = { 0 };
	char *text = calloc(1, 4096);

	*ret = bop_storage_list(st, prefix, collect, &l);
	qsort(l.keys, (size_t)l.n, sizeof(l.keys[0]), cmp_str);
	for (int i = 0; i < l.n; i++) {
		if (i)
			strcat(text, "|");
		strcat(text, l.keys[i]);
		free(l.keys[i]);
	}
	return text;
}

/* ---- tests ---- */

static void test_put_commit_abort(bop_storage_t *st, const char *root)
{
	char path[PATH_MAX];
	bop_sink_t *sink = NULL;
	bop_storage_stat_t info = { BOP_STORAGE_STAT_VERSION };
	struct stat sb;
	char *got;

	ok(!exists(root), "the root does not exist before the first put");
	is_int(put_string(st, "a/b/c.txt", "hello"), 0, "put a/b/c.txt");
	ok(stat(root, &sb) == 0 && S_ISDIR(sb.st_mode) && (sb.st_mode & 0777) == 0700,
		"the root was created with mode 0700");
	PATHF(path, "%s/a/b", root);
	ok(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0700, "parent directories are 0700");
	PATHF(path, "%s/a/b/c.txt", root);
	ok(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600, "objects are 0600");
	got = get_string(st, "a/b/c.txt");
	is_str(got, "hello", "get returns what was put");
	free(got);

	is_int(put_string(st, "a/b/c.txt", "replaced"), 0, "a non-exclusive put replaces");
	got = get_string(st, "a/b/c.txt");
	is_str(got, "replaced", "the object has the new content");
	free(got);

	is_int(bop_storage_put(st, &sink, "pending", NULL), 0, "put pending");
	is_int(bop_sink_write(sink, "partial", 7), 0, "write to the pending object");
	is_int(bop_storage_stat(st, &info, "pending"), BOP_ENOTFOUND,
		"an uncommitted object is not visible");
	bop_sink_abort(sink);
	bop_sink_free(sink);
	is_int(bop_storage_stat(st, &info, "pending"), BOP_ENOTFOUND,
		"an aborted object never appears");

	is_int(bop_storage_put(st, &sink, "dropped/x", NULL), 0, "put dropped/x");
	is_int(bop_sink_write(sink, "partial", 7), 0, "write to it");
	bop_sink_free(sink);
	is_int(bop_storage_stat(st, &info, "dropped/x"), BOP_ENOTFOUND,
		"an object freed without commit never appears");
	is_int(count_temp_files(root), 0, "no temporary file is left behind");
}

static void test_exclusive(bop_storage_t *st, const char *root)
{
	bop_put_options_t opts = BOP_PUT_OPTIONS_INIT;
	bop_sink_t *s1 = NULL, *s2 = NULL;
	char *got;

	opts.exclusive = 1;
	is_int(bop_storage_put(st, &s1, "a/b/c.txt", &opts), BOP_EEXISTS,
		"an exclusive put of an existing key fails with BOP_EEXISTS");
	ok(contains(bop_error_last(), "a/b/c.txt"), "the message names the object: %s",
		bop_error_last());
	ok(s1 == NULL, "no sink is returned");

	is_int(bop__storage_put_bytes(st, "excl/new", "first", 5, true), 0,
		"an exclusive put of a new key succeeds");

	/* Two writers race for one key: the first commit wins, the second gets EEXISTS. */
	is_int(bop_storage_put(st, &s1, "excl/race", &opts), 0, "first exclusive writer");
	is_int(bop_storage_put(st, &s2, "excl/race", &opts), 0, "second exclusive writer");
	bop_sink_write(s1, "one", 3);
	bop_sink_write(s2, "two", 3);
	is_int(bop_sink_commit(s1), 0, "the first commit wins");
	is_int(bop_sink_commit(s2), BOP_EEXISTS, "the second commit fails with BOP_EEXISTS");
	bop_sink_free(s1);
	bop_sink_free(s2);
	got = get_string(st, "excl/race");
	is_str(got, "one", "the first writer's object is intact");
	free(got);
	is_int(count_temp_files(root), 0, "the losing writer left no temporary file");
}

static void test_offsets(bop_storage_t *st)
{
	enum { N = 100000 };
	unsigned char *data = malloc(N);
	uint64_t offsets[] = { 0, 4321, N - 1, N };
	bop_source_t *src = NULL;
	size_t len;
	char *got;

	for (int i = 0; i < N; i++)
		data[i] = (unsigned char)(i * 7 + i / 251);
	is_int(bop__storage_put_bytes(st, "big.bin", data, N, false), 0, "put 100000 bytes");
	for (size_t i = 0; i < BOP_ARRAY_SIZE(offsets); i++) {
		uint64_t off = offsets[i];

		src = NULL;
		is_int(bop_storage_get(st, &src, "big.bin", off), 0, "get from an offset");
		got = src ? read_source(src, &len) : NULL;
		ok(got && len == N - off && memcmp(got, data + off, len) == 0,
			"get from byte %llu returns the right %llu bytes", (unsigned long long)off,
			(unsigned long long)(N - off));
		if (src)
			is_int(bop_source_close(src), 0, "the source closes cleanly");
		free(got);
		bop_source_free(src);
	}
	src = NULL;
	is_int(bop_storage_get(st, &src, "big.bin", N + 1), BOP_EINVAL,
		"get past the end fails with BOP_EINVAL");
	ok(contains(bop_error_last(), "100000 bytes"), "the message gives the size: %s",
		bop_error_last());
	is_int(bop_storage_get(st, &src, "missing", 0), BOP_ENOTFOUND,
		"get of a missing key fails with BOP_ENOTFOUND");
	ok(contains(bop_error_last(), "missing"), "the message names the key: %s", bop_error_last());
	is_int(bop_storage_get(st, &src, "a/b", 0), BOP_ENOTFOUND,
		"get of a directory is BOP_ENOTFOUND");
	ok(src == NULL, "no source is returned on failure");
	free(data);
}

/* A FIFO where an object should be would block a reader forever. */
static void test_fifo(bop_storage_t *st, const char *root)
{
	char path[PATH_MAX + 32];
	bop_source_t *src = NULL;

	PATHF(path, "%s/fifo-obj", root);
	if (mkfifo(path, 0600) < 0) {
		skip(3, "cannot create a FIFO: %s", strerror(errno));
		return;
	}
	alarm(30);      /* a hang fails the test instead of stalling it */
	is_int(bop_storage_get(st, &src, "fifo-obj", 0), BOP_ERROR,
		"finding 11: get of a FIFO fails at once instead of blocking");
	alarm(0);
	ok(contains(bop_error_last(), "not a regular file"), "finding 11: the message says it "
		"is not a regular file: %s", bop_error_last());
	ok(src == NULL, "finding 11: no source is returned");
	unlink(path);
}

static void test_stat(bop_storage_t *st)
{
	bop_storage_stat_t info = { BOP_STORAGE_STAT_VERSION };
	int64_t now = (int64_t)time(NULL);

	is_int(bop_storage_stat(st, &info, "big.bin"), 0, "stat big.bin");
	is_int(info.size, 100000, "stat gives the size");
	ok(info.mtime > now - 60 && info.mtime <= now + 1, "stat gives a recent mtime");
	is_int(bop_storage_stat(st, &info, "nope"), BOP_ENOTFOUND, "stat of a missing key");
	is_int(bop_storage_stat(st, &info, "a"), BOP_ENOTFOUND, "stat of a directory");
	info.version = 99;
	is_int(bop_storage_stat(st, &info, "big.bin"), BOP_EVERSION,
		"stat with an unknown struct version");
}

static void test_list(bop_storage_t *st, const char *root)
{
	char path[PATH_MAX], target[PATH_MAX];
	listing_t l = { 0 };
	char *text;
	FILE *f;
	int ret;

	put_string(st, "a/d", "d");
	put_string(st, "with space/\xc3\xbcn\xc3\xaf" "c\xc3\xb8" "d\xc3\xa9 \xe2\x9c\x93.bin", "utf8");
	/* A writer's temporary file (possibly of another process) is not an object. */
	PATHF(path, "%s/a/d.tmp-123-AbC9xZ", root);
	f = fopen(path, "w");
	fputs("junk", f);
	fclose(f);
	/* Symlinks: one inside the root is followed, one out of it and a loop are not. */
	PATHF(target, "%s/outside", tmpdir);
	f = fopen(target, "w");
	fputs("secret", f);
	fclose(f);
	PATHF(path, "%s/link-out", root);
	ok(symlink(target, path) == 0, "made a symlink out of the root");
	PATHF(path, "%s/link-in", root);
	ok(symlink("big.bin", path) == 0, "made a symlink inside the root");
	PATHF(path, "%s/a/loop", root);
	ok(symlink("..", path) == 0, "made a symlink loop");

	text = listing_text(st, "", &ret);
	is_int(ret, 0, "list everything");
	is_str(text, "a/b/c.txt|a/d|big.bin|excl/new|excl/race|link-in|"
		"with space/\xc3\xbcn\xc3\xaf" "c\xc3\xb8" "d\xc3\xa9 \xe2\x9c\x93.bin",
		"all keys, nested, with spaces and UTF-8; no temp files, no escaping links");
	free(text);

	text = listing_text(st, "a/", &ret);
	is_str(text, "a/b/c.txt|a/d", "list with prefix a/");
	free(text);
	text = listing_text(st, "a/b", &ret);
	is_str(text, "a/b/c.txt", "list with prefix a/b (a partial segment)");
	free(text);
	text = listing_text(st, "ex", &ret);
	is_str(text, "excl/new|excl/race", "list with prefix ex");
	free(text);
	text = listing_text(st, "zzz/", &ret);
	is_int(ret, 0, "list with a prefix that matches nothing succeeds");
	is_str(text, "", "and lists nothing");
	free(text);

	l.stop_after = 2;
	is_int(bop_storage_list(st, "", collect, &l), 0, "a callback may stop the listing");
	is_int(l.n, 2, "no key is reported after the callback asked to stop");
	for (int i = 0; i < l.n; i++)
		free(l.keys[i]);

	memset(&l, 0, sizeof(l));
	l.fail_with = BOP_ECANCELED;
	is_int(bop_storage_list(st, "", collect, &l), BOP_ECANCELED,
		"a callback's error is returned");

	memset(&l, 0, sizeof(l));
	is_int(bop_storage_list(st, "", collect, &l), 0, "list again for sizes");
	for (int i = 0; i < l.n; i++) {
		if (!strcmp(l.keys[i], "big.bin"))
			is_int(l.sizes[i], 100000, "the listing carries the size");
		free(l.keys[i]);
	}

	is_int(bop_storage_list(st, "/a", collect, &l), BOP_EINVAL, "an absolute prefix is refused");
	is_int(bop_storage_list(st, "a//", collect, &l), BOP_EINVAL, "a prefix with an empty segment is refused");
	is_int(bop_storage_list(st, "a/../", collect, &l), BOP_EINVAL, "a prefix with \"..\" is refused");
	memset(&l, 0, sizeof(l));
	is_int(bop_storage_list(st, ".", collect, &l), 0, "a prefix may end in a partial segment such as \".\"");
	is_int(l.n, 0, "and matches no key here");
	PATHF(path, "%s/link-out", root);
	unlink(path);
	PATHF(path, "%s/link-in", root);
	unlink(path);
	PATHF(path, "%s/a/loop", root);
	unlink(path);
	PATHF(path, "%s/a/d.tmp-123-AbC9xZ", root);
	unlink(path);
}

static void test_remove(bop_storage_t *st, const char *root)
{
	char path[PATH_MAX];

	is_int(bop_storage_remove(st, "a/b/c.txt"), 0, "remove a/b/c.txt");
	PATHF(path, "%s/a/b", root);
	ok(!exists(path), "its now-empty directory a/b is removed");
	PATHF(path, "%s/a", root);
	ok(exists(path), "a/ stays: it still holds a/d");
	is_int(bop_storage_remove(st, "a/d"), 0, "remove a/d");
	ok(!exists(path), "a/ is removed once empty");
	ok(exists(root), "the root itself stays");
	is_int(bop_storage_remove(st, "a/d"), BOP_ENOTFOUND, "removing it again is BOP_ENOTFOUND");
	ok(contains(bop_error_last(), "a/d"), "the message names the key: %s", bop_error_last());
	is_int(bop_storage_remove(st, "excl"), BOP_ENOTFOUND, "removing a directory is BOP_ENOTFOUND");
}

static void test_bad_keys(bop_storage_t *st)
{
	static const char *const bad[] = {
		"", "/abs", "a//b", "a/../b", "..", "a/", "./a", "a/.", "x/..",
	};
	bop_storage_stat_t info = { BOP_STORAGE_STAT_VERSION };
	bop_source_t *src = NULL;
	bop_sink_t *sink = NULL;

	for (size_t i = 0; i < BOP_ARRAY_SIZE(bad); i++) {
		is_int(bop_storage_put(st, &sink, bad[i], NULL), BOP_EINVAL, "put refuses a bad key");
		ok(contains(bop_error_last(), bad[i]) && contains(bop_error_last(), "invalid storage key"),
			"the message names \"%s\": %s", bad[i], bop_error_last());
		is_int(bop_storage_get(st, &src, bad[i], 0), BOP_EINVAL, "get refuses it");
		is_int(bop_storage_stat(st, &info, bad[i]), BOP_EINVAL, "stat refuses it");
		is_int(bop_storage_remove(st, bad[i]), BOP_EINVAL, "remove refuses it");
	}
	is_int(bop_storage_put(st, &sink, NULL, NULL), BOP_EINVAL, "a NULL key is refused");
	is_int(bop_storage_put(st, &sink, "x.tmp-42-abcdef", NULL), BOP_EINVAL,
		"a key that looks like a temporary file is refused");
	ok(contains(bop_error_last(), "temporary"), "the message says why: %s", bop_error_last());
	is_int(put_string(st, "big.bin/x", "x"), BOP_ERROR, "a key below an object fails");
	diag("%s", bop_error_last());
	is_int(put_string(st, "excl", "x"), BOP_ERROR, "a key that is a directory fails");
	ok(contains(bop_error_last(), "directory"), "the message says why: %s", bop_error_last());
}

static void test_small_objects(bop_storage_t *st)
{
	char *data = NULL;
	size_t len = 0;

	is_int(bop__storage_put_bytes(st, "small", "0123456789", 10, false), 0, "put 10 bytes");
	is_int(bop__storage_get_bytes(st, "small", &data, &len, 10), 0, "get with max 10");
	ok(len == 10 && data && data[10] == '\0', "the data is NUL-terminated");
	free(data);
	data = NULL;
	is_int(bop__storage_get_bytes(st, "small", &data, &len, 9), BOP_EINVAL,
		"get_bytes refuses an object over the limit");
	ok(data == NULL, "and hands back nothing");
	is_int(bop__storage_put_bytes(st, "small", "x", 1, true), BOP_EEXISTS,
		"put_bytes exclusive on an existing key");
	is_int(bop__storage_put_bytes(st, "empty", "", 0, false), 0, "put an empty object");
	is_int(bop__storage_get_bytes(st, "empty", &data, &len, 10), 0, "get the empty object");
	ok(len == 0 && data && !*data, "it is empty");
	free(data);
}

static int open_put_check(const char *url, const char *expect_path)
{
	bop_storage_t *st = NULL;
	int ret;

	ret = bop_storage_open(&st, url, NULL);
	if (ret == 0)
		ret = put_string(st, "k", url);
	bop_storage_free(st);
	if (ret < 0)
		diag("%s: %s", url, bop_error_last());
	return ret == 0 && exists(expect_path);
}

static void test_url_forms(void)
{
	char cwd[PATH_MAX], url[PATH_MAX + 16], path[PATH_MAX];
	bop_storage_t *st = NULL;
	bop_storage_options_t opts;
	const char *settings[] = { "region", "x", NULL };
	const char *typos[] = { "s3:/bucket/x", "s3:bucket", "::::", "1x://y" };
	FILE *f;

	if (!getcwd(cwd, sizeof(cwd)) || chdir(tmpdir) < 0) {
		skip(26, "cannot change into the test directory");
		return;
	}
	ok(open_put_check("file://./rel1", "rel1/k"), "file://./rel1 is relative to the cwd");
	ok(open_put_check("file://rel2/", "rel2/k"), "file://rel2/ is relative to the cwd");
	ok(open_put_check("rel3", "rel3/k"), "a bare relative path");
	PATHF(url, "file://%s/abs1", tmpdir);
	PATHF(path, "%s/abs1/k", tmpdir);
	ok(open_put_check(url, path), "file:///absolute/path");
	PATHF(url, "%s/abs2", tmpdir);
	PATHF(path, "%s/abs2/k", tmpdir);
	ok(open_put_check(url, path), "a bare absolute path");
	PATHF(url, "%s/abs3/a://b", tmpdir);
	PATHF(path, "%s/abs3/a:/b/k", tmpdir);
	ok(open_put_check(url, path), "\"://\" after a '/' is part of a path");
	ok(open_put_check("./c:d", "c:d/k"), "a ':' after a '/' is part of a relative path");
	for (size_t i = 0; i < sizeof(typos) / sizeof(typos[0]); i++) {
		ok(bop_storage_open(&st, typos[i], NULL) == BOP_EINVAL,
			"finding 9: storage URL typo \"%s\" is refused", typos[i]);
		ok(contains(bop_error_last(), "malformed"), "finding 9: the message says the URL "
			"is malformed: %s", bop_error_last());
		ok(!exists(typos[i]) && !exists("s3:") && !exists("1x:"),
			"finding 9: nothing was created for \"%s\"", typos[i]);
	}

	is_int(bop_storage_open(&st, "file://", NULL), BOP_EINVAL, "file:// without a path");
	f = fopen("plainfile", "w");
	fclose(f);
	is_int(bop_storage_open(&st, "file://plainfile", NULL), BOP_EINVAL,
		"a root that is a file is refused");
	ok(contains(bop_error_last(), "not a directory"), "the message says why: %s",
		bop_error_last());
	bop_storage_options_init(&opts, BOP_STORAGE_OPTIONS_VERSION);
	opts.settings = settings;
	is_int(bop_storage_open(&st, "file://x", &opts), BOP_EINVAL, "file storage takes no settings");
	ok(contains(bop_error_last(), "region"), "the message names the setting: %s",
		bop_error_last());
	is_int(bop_storage_options_init(&opts, 7), BOP_EVERSION, "options_init with a bad version");
	opts.version = 7;
	is_int(bop_storage_open(&st, "file://x", &opts), BOP_EVERSION, "open with a bad options version");
	if (chdir(cwd) < 0)
		diag("cannot return to %s", cwd);
}

static int fake_opens;
static char fake_url[256];

static int fake_open(bop_storage_t **out, const char *url, const bop_storage_options_t *opts,
	void *payload)
{
	BOP_UNUSED(out);
	BOP_UNUSED(opts);
	fake_opens += *(int *)payload;
	snprintf(fake_url, sizeof(fake_url), "%s", url);
	return BOP_EAUTH;       /* with no message, as a third-party backend would */
}

static void test_registry(void)
{
	static int one = 1;
	bop_storage_t *st = NULL;

	is_int(bop_storage_open(&st, "nosuch://bucket/x", NULL), BOP_ENOTSUPPORTED,
		"an unknown scheme is BOP_ENOTSUPPORTED");
	ok(contains(bop_error_last(), "\"nosuch\"") && contains(bop_error_last(), "file"),
		"the message names the scheme and the known ones: %s", bop_error_last());
	is_int(bop_storage_register("fake", fake_open, &one), 0, "register fake://");
	is_int(bop_storage_register("fake", fake_open, &one), BOP_EEXISTS,
		"registering it twice is BOP_EEXISTS");
	is_int(bop_storage_register("FILE", fake_open, &one), BOP_EEXISTS,
		"file is built in (and schemes ignore case)");
	is_int(bop_storage_register("bad scheme", fake_open, &one), BOP_EINVAL,
		"an invalid scheme name is refused");
	is_int(bop_storage_register("x", NULL, NULL), BOP_EINVAL, "a NULL open is refused");
	is_int(bop_storage_open(&st, "fake://bucket/pfx", NULL), BOP_EAUTH,
		"open dispatches on the scheme and returns the backend's code");
	is_int(fake_opens, 1, "the backend was called once");
	is_str(fake_url, "fake://bucket/pfx", "with the whole URL");
	ok(contains(bop_error_last(), "fake://bucket/pfx"),
		"a backend without a message still gets one: %s", bop_error_last());
	ok(st == NULL, "no storage on failure");
	bop_storage_free(NULL);
}

/* Batch removal without a batch in the backend: each key in turn; missing keys are fine. */
static void test_remove_many(bop_storage_t *st, const char *root)
{
	const char *keys[] = { "many/a", "many/b/c", "many/missing", "many/d e" };
	char path[PATH_MAX + 32];
	int ret = 0;

	for (size_t i = 0; i < BOP_ARRAY_SIZE(keys); i++) {
		if (i != 2)
			ret |= bop__storage_put_bytes(st, keys[i], "x", 1, false);
	}
	is_int(ret, 0, "three objects stored for a batch removal");
	is_int(bop_storage_remove_many(st, keys, BOP_ARRAY_SIZE(keys)), 0,
		"remove_many removes them, and a missing key is no error");
	PATHF(path, "%s/many", root);
	ok(access(path, F_OK) != 0, "nothing is left, not even the emptied directories");
	is_int(bop_storage_remove_many(st, NULL, 0), 0, "an empty batch is fine");
	keys[0] = "../escape";
	is_int(bop_storage_remove_many(st, keys, 1), BOP_EINVAL, "a bad key in a batch is refused");
}

int main(void)
{
	char root[PATH_MAX + 16], url[PATH_MAX + 32];
	const char *base = getenv("TMPDIR");
	bop_storage_t *st = NULL;

	snprintf(tmpdir, sizeof(tmpdir), "%s/bop-storage-XXXXXX", base ? base : "/tmp");
	if (!mkdtemp(tmpdir))
		skip_all("cannot create a temporary directory: %s", strerror(errno));
	PATHF(root, "%s/store", tmpdir);
	PATHF(url, "file://%s", root);
	is_int(bop_storage_open(&st, url, NULL), 0, "open a file:// storage");
	if (!st) {
		diag("%s", bop_error_last());
		rm_rf(tmpdir);
		return done_testing();
	}
	test_put_commit_abort(st, root);
	test_exclusive(st, root);
	test_offsets(st);
	test_fifo(st, root);
	test_stat(st);
	test_list(st, root);
	test_remove(st, root);
	test_remove_many(st, root);
	test_bad_keys(st);
	test_small_objects(st);
	bop_storage_free(st);
	test_url_forms();
	test_registry();
	rm_rf(tmpdir);
	return done_testing();
}
