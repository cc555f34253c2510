/* The catalog lock on file:// storage: conflict, refresh, release, expiry and takeover. */
#include "catalog-test.h"

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
	test_separate_catalogs(cat);
	bop_catalog_free(cat);
	bop_storage_free(storage);
	remove_tree(root);
	return done_testing();
}
