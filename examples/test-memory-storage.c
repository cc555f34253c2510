/*
 * Registers the example "memory" backend and drives it through libbackupop's public
 * storage API: put (visible only on commit), list, get from an offset, stat, remove.
 * Prints TAP.
 */
#include <backupop.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memory-storage.h"

static int count, failed;

static void check(int cond, const char *what)
{
	printf("%sok %d - %s\n", cond ? "" : "not ", ++count, what);
	if (!cond) {
		printf("# last error: %s\n", bop_error_last());
		failed++;
	}
}

static int put(bop_storage_t *st, const char *key, const char *text)
{
	bop_sink_t *sink = NULL;
	int ret = bop_storage_put(st, &sink, key, NULL);

	if (ret == 0)
		ret = bop_sink_write(sink, text, strlen(text));
	if (ret == 0)
		ret = bop_sink_commit(sink);
	bop_sink_free(sink);
	return ret;
}

/* Reads `key` from `offset` into buf (NUL-terminated); the bytes read, or -1. */
static long get(bop_storage_t *st, const char *key, uint64_t offset, char *buf, size_t cap)
{
	bop_source_t *src = NULL;
	size_t n = 0, got;

	if (bop_storage_get(st, &src, key, offset) < 0)
		return -1;
	while (n + 1 < cap && bop_source_read(src, buf + n, cap - n - 1, &got) == 0 && got)
		n += got;
	buf[n] = '\0';
	bop_source_close(src);
	bop_source_free(src);
	return (long)n;
}

static int count_keys(const char *key, const bop_storage_stat_t *st, void *payload)
{
	(void)key;
	(void)st;
	++*(int *)payload;
	return 0;
}

int main(void)
{
	bop_storage_t *st = NULL, *again = NULL;
	bop_storage_stat_t info = { BOP_STORAGE_STAT_VERSION, 0, 0 };
	bop_put_options_t excl = BOP_PUT_OPTIONS_INIT;
	bop_sink_t *sink = NULL;
	char buf[256];
	int n;

	check(memory_storage_register() == 0, "register the memory:// scheme");
	check(memory_storage_register() == BOP_EEXISTS, "registering it twice is BOP_EEXISTS");
	check(bop_storage_open(&st, "memory://demo", NULL) == 0, "open memory://demo");
	check(bop_storage_open(&again, "memory://", NULL) == BOP_EINVAL, "a URL without a name is refused");

	check(bop_storage_put(st, &sink, "backups/one", NULL) == 0, "start a put");
	check(bop_sink_write(sink, "hello, storage", 14) == 0, "write to it");
	check(bop_storage_stat(st, &info, "backups/one") == BOP_ENOTFOUND,
		"the object is not visible before commit");
	check(bop_sink_commit(sink) == 0, "commit");
	bop_sink_free(sink);
	check(bop_storage_stat(st, &info, "backups/one") == 0 && info.size == 14,
		"it is visible after commit, with its size");

	sink = NULL;
	check(bop_storage_put(st, &sink, "backups/aborted", NULL) == 0, "start another put");
	bop_sink_write(sink, "junk", 4);
	bop_sink_free(sink);
	check(bop_storage_stat(st, &info, "backups/aborted") == BOP_ENOTFOUND,
		"a put freed without commit never appears");

	check(put(st, "backups/two", "second") == 0 && put(st, "other", "x") == 0, "put two more");
	n = 0;
	check(bop_storage_list(st, "backups/", count_keys, &n) == 0 && n == 2,
		"list backups/ finds two keys");
	n = 0;
	check(bop_storage_list(st, "", count_keys, &n) == 0 && n == 3, "list everything finds three");

	check(get(st, "backups/one", 0, buf, sizeof(buf)) == 14 && !strcmp(buf, "hello, storage"),
		"get returns the bytes");
	check(get(st, "backups/one", 7, buf, sizeof(buf)) == 7 && !strcmp(buf, "storage"),
		"get from an offset");
	check(get(st, "backups/one", 14, buf, sizeof(buf)) == 0, "get from the end is empty");
	check(get(st, "nope", 0, buf, sizeof(buf)) < 0 && bop_error_last_code() == BOP_ENOTFOUND,
		"get of a missing key is BOP_ENOTFOUND");

	excl.exclusive = 1;
	sink = NULL;
	check(bop_storage_put(st, &sink, "other", &excl) == 0, "an exclusive put starts");
	bop_sink_write(sink, "y", 1);
	check(bop_sink_commit(sink) == BOP_EEXISTS, "and fails on commit: the key exists");
	bop_sink_free(sink);

	check(bop_storage_open(&again, "memory://demo", NULL) == 0, "open memory://demo again");
	check(get(again, "backups/two", 0, buf, sizeof(buf)) == 6 && !strcmp(buf, "second"),
		"both handles see the same store");
	bop_storage_free(again);

	check(bop_storage_remove(st, "backups/one") == 0, "remove a key");
	check(bop_storage_remove(st, "backups/one") == BOP_ENOTFOUND, "removing it again is BOP_ENOTFOUND");
	check(bop_storage_put(st, &sink, "../escape", NULL) == BOP_EINVAL,
		"libbackupop refuses bad keys before the backend sees them");
	bop_storage_free(st);

	printf("1..%d\n", count);
	return failed ? 1 : 0;
}
