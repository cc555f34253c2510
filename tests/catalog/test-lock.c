/* The catalog lock on file:// storage: conflict, refresh, release, expiry and takeover. */
#include "catalog-test.h"

#include <sys/wait.h>

static char *root;
static bop_storage_t *storage;

static int lock_file_exists(const char *name)
{
	char *path = NULL;
	int r;

	if (asprintf(&path, "%s/%s/lock.json", root, name) < 0)
		exit(2);
	r = access(path, F_OK) == 0;
	free(path);
	return r;
}

static void put_lock(const char *name, const char *json)
{
	char *key = NULL;

	if (asprintf(&key, "%s/lock.json", name) < 0)
		exit(2);
	if (bop__storage_put_bytes(storage, key, json, strlen(json), false) < 0) {
		fprintf(stderr, "cannot write %s: %s\n", key, bop_error_last());
		exit(2);
	}
	free(key);
}

static void test_conflict_and_release(bop_catalog_t *cat)
{
	bop_lock_t *a = NULL, *b = NULL;
	int ret;

	ret = bop_catalog_lock(cat, &a, "host-a:100", 60);
	is_int(ret, 0, "the first owner takes the lock");
	if (ret < 0)
		diag("%s", bop_error_last());
	ok(lock_file_exists("db"), "lock.json is stored");
	ret = bop_catalog_lock(cat, &b, "host-b:200", 60);
	is_int(ret, BOP_ECONFLICT, "a second owner gets BOP_ECONFLICT");
	ok(b == NULL, "and no lock");
	ok(strstr(bop_error_last(), "host-a:100") != NULL, "the message names the holder");
	ok(strstr(bop_error_last(), "until 20") != NULL, "the message says until when");
	diag("%s", bop_error_last());
	is_int(bop_lock_refresh(a), 0, "the holder refreshes");
	is_int(bop_lock_release(a), 0, "the holder releases");
	ok(!lock_file_exists("db"), "lock.json is gone");
	ret = bop_catalog_lock(cat, &b, "host-b:200", 60);
	is_int(ret, 0, "after release another owner takes it");
	is_int(bop_lock_release(b), 0, "and releases it");
}

static void test_takeover(bop_catalog_t *cat)
{
	bop_lock_t *mine = NULL, *other = NULL;
	char json[256];
	int ret;

	snprintf(json, sizeof(json), "{\"owner\":\"crashed:1\",\"expires\":%lld,\"token\":\"deadbeef\"}",
		(long long)(bop__now() - 5));
	put_lock("db", json);
	ret = bop_catalog_lock(cat, &mine, "host-c:300", 60);
	is_int(ret, 0, "an expired lock is taken over");
	if (ret < 0)
		diag("%s", bop_error_last());

	/* Someone takes it over from us (as if ours had expired). */
	snprintf(json, sizeof(json), "{\"owner\":\"host-d:400\",\"expires\":%lld,\"token\":\"cafe\"}",
		(long long)(bop__now() + 600));
	put_lock("db", json);
	ret = bop_lock_refresh(mine);
	is_int(ret, BOP_ECONFLICT, "refresh after a takeover fails with BOP_ECONFLICT");
	ok(strstr(bop_error_last(), "host-d:400") != NULL, "naming the new holder");
	ret = bop_lock_release(mine);
	is_int(ret, BOP_ECONFLICT, "release after a takeover reports the conflict");
	ok(lock_file_exists("db"), "and leaves the new holder's lock alone");
	ret = bop_catalog_lock(cat, &other, "host-e:500", 60);
	is_int(ret, BOP_ECONFLICT, "the new holder's lock still counts");
	put_lock("db", "this is not JSON");
	ret = bop_catalog_lock(cat, &other, "host-e:500", 60);
	is_int(ret, 0, "an unreadable lock is taken over");
	is_int(bop_lock_release(other), 0, "released");
}

/* This process's start time (field 22 of /proc/<pid>/stat), or -1. */
static long long start_time(long long pid)
{
	char path[64], buf[1024];
	const char *p;
	long long start = -1;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%lld/stat", pid);
	if (!(f = fopen(path, "r")))
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%lld", &start) != 1)
		return -1;
	return start;
}

static void read_first_line(const char *path, char *out, size_t size)
{
	FILE *f = fopen(path, "r");

	out[0] = '\0';
	if (f && fgets(out, (int)size, f))
		out[strcspn(out, "\n")] = '\0';
	if (f)
		fclose(f);
}

/* A live (not expired) lock of the holder `pid` with `start`, on host `host` (NULL: ours). */
static void put_holder_lock(const char *name, const char *host, long long pid, long long start,
	const char *token)
{
	char json[1024], me[256] = "", boot[64], ns[64] = "";
	ssize_t n;

	gethostname(me, sizeof(me) - 1);
	read_first_line("/proc/sys/kernel/random/boot_id", boot, sizeof(boot));
	n = readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1);
	ns[n > 0 ? n : 0] = '\0';
	snprintf(json, sizeof(json), "{\"owner\":\"backupop backup (pid %lld)\",\"expires\":%lld,"
		"\"token\":\"%s\",\"since\":%lld,\"host\":\"%s\",\"boot\":\"%s\","
		"\"pidns\":\"%s\",\"pid\":%lld,\"start\":%lld}", pid,
		(long long)(bop__now() + 600), token, (long long)bop__now(), host ? host : me, boot,
		ns, pid, start);
	put_lock(name, json);
}

/* finding 6: a lock whose holder is provably dead is taken over at once. */
static void test_dead_holder(bop_catalog_t *cat)
{
	long long self = (long long)getpid(), self_start = start_time(self);
	bop_lock_t *lock = NULL;
	pid_t child = fork();
	int ret;

	if (child == 0)
		_exit(0);
	waitpid(child, NULL, 0);        /* its pid is now free */
	if (self_start < 0) {
		skip(5, "no /proc/<pid>/stat here");
		return;
	}
	put_holder_lock("db", NULL, (long long)child, self_start, "aa01");
	ret = bop_catalog_lock(cat, &lock, "next", 60);
	is_int(ret, 0, "finding 6: a live lock of a dead process on this host is taken over at once");
	if (ret < 0)
		diag("%s", bop_error_last());
	bop_lock_release(lock);
	lock = NULL;

	put_holder_lock("db", NULL, self, self_start + 1, "aa02");
	ret = bop_catalog_lock(cat, &lock, "next", 60);
	is_int(ret, 0, "... and one whose pid now belongs to a process started at another time");
	bop_lock_release(lock);
	lock = NULL;

	put_holder_lock("db", NULL, self, self_start, "aa03");
	ret = bop_catalog_lock(cat, &lock, "next", 60);
	is_int(ret, BOP_ECONFLICT, "a lock of a live process (this one) is kept");
	ok(strstr(bop_error_last(), "locked by backupop backup") != NULL, "naming its holder");

	put_holder_lock("db", "another-host.example", (long long)child, self_start, "aa04");
	ret = bop_catalog_lock(cat, &lock, "next", 60);
	is_int(ret, BOP_ECONFLICT, "a lock of another host is kept until it expires");
	put_lock("db", "{\"owner\":\"old\",\"expires\":1,\"token\":\"x\"}");
}

/* finding 5: a takeover goes through an exclusive claim on the stale lock. */
static void test_claims(bop_catalog_t *cat)
{
	bop_lock_t *lock = NULL;
	char json[512];
	int ret;

	put_lock("db", "{\"owner\":\"old\",\"expires\":1,\"token\":\"5ea1\"}");
	snprintf(json, sizeof(json), "{\"owner\":\"taker-a\",\"expires\":%lld,\"token\":\"t1\"}",
		(long long)(bop__now() + 60));
	if (bop__storage_put_bytes(storage, "db/lock.json.takeover-5ea1", json, strlen(json), true) < 0)
		exit(2);
	ret = bop_catalog_lock(cat, &lock, "taker-b", 60);
	is_int(ret, BOP_ECONFLICT, "finding 5: while another taker claims the expired lock, a "
		"second taker fails");
	ok(strstr(bop_error_last(), "db is locked by taker-a") != NULL, "saying who holds it");
	diag("%s", bop_error_last());

	snprintf(json, sizeof(json), "{\"owner\":\"taker-a\",\"expires\":%lld,\"token\":\"t1\"}",
		(long long)(bop__now() - 1));
	if (bop__storage_put_bytes(storage, "db/lock.json.takeover-5ea1", json, strlen(json), false) < 0)
		exit(2);
	ret = bop_catalog_lock(cat, &lock, "taker-b", 60);
	is_int(ret, 0, "a claim of a taker that died (expired) is removed and the takeover goes on");
	if (ret < 0)
		diag("%s", bop_error_last());
	ok(bop_storage_stat(storage, &(bop_storage_stat_t){ BOP_STORAGE_STAT_VERSION, 0, 0 },
		"db/lock.json.takeover-5ea1") == BOP_ENOTFOUND,
		"and no claim is left");
	bop_lock_release(lock);
}

/* finding 10: names storage would read as its own are refused when opening. */
static void test_names(void)
{
	static const char *const bad[] = {
		"parent/x.tmp-1-ABCDEF", "a/lock.json", "lock.json.takeover-1", "a/manifest.json",
		"a/20261121T020000Z-abcd", "20261121T020000Z", "a//b", "a/./b", "a/../b", "a/",
	};
	bop_catalog_t *c = NULL;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char what[96];
		int ret = bop_catalog_open(&c, storage, bad[i]);

		snprintf(what, sizeof(what), "finding 10: catalog name \"%s\" is refused", bad[i]);
		is_int(ret, BOP_EINVAL, what);
		ok(strstr(bop_error_last(), "invalid catalog name") != NULL, "... saying so: %s",
			bop_error_last());
		bop_catalog_free(c);
		c = NULL;
	}
	is_int(bop_catalog_open(&c, storage, "app/x.tmp/2026-backups"), 0,
		"a name that only looks similar is accepted");
	bop_catalog_free(c);
}

static void test_separate_catalogs(bop_catalog_t *cat)
{
	bop_catalog_t *other_cat = NULL;
	bop_lock_t *a = NULL, *b = NULL;

	bop_catalog_open(&other_cat, storage, "db/other");
	is_int(bop_catalog_lock(cat, &a, "x", 60), 0, "lock one catalog");
	is_int(bop_catalog_lock(other_cat, &b, "y", 60), 0, "another catalog has its own lock");
	bop_lock_release(b);
	bop_lock_release(a);
	is_int(bop_catalog_lock(cat, &a, "x", 0), BOP_EINVAL, "a ttl of 0 is invalid");
	is_int(bop_lock_release(NULL), 0, "release accepts NULL");
	bop_catalog_free(other_cat);
}

int main(void)
{
	bop_catalog_t *cat = NULL;

	root = make_tmpdir();
	bop_log_set_level(BOP_LOG_ERROR);
	if (bop_storage_open(&storage, root, NULL) < 0) {
		printf("# cannot open storage: %s\n", bop_error_last());
		remove_tree(root);
		return 1;
	}
	is_int(bop_catalog_open(&cat, storage, "db"), 0, "open catalog");
	is_int(bop_catalog_open(&(bop_catalog_t *){ NULL }, storage, "../x"), BOP_EINVAL,
		"a catalog name with .. is refused");
	test_conflict_and_release(cat);
	test_takeover(cat);
	test_dead_holder(cat);
	test_claims(cat);
	test_names();
	test_separate_catalogs(cat);
	bop_catalog_free(cat);
	bop_storage_free(storage);
	remove_tree(root);
	return done_testing();
}
