/*
 * A test tool over the public storage API (it links the shared library, as an
 * application would), for what the CLI has no command for:
 *   s3cat get URL KEY             prints the object KEY on stdout
 *   s3cat list URL PREFIX         prints every key under PREFIX, one per line
 *   s3cat put URL KEY             stores stdin as KEY
 *   s3cat put-many URL PREFIX FIRST N
 *                                 stores N small objects "PREFIX<i> ü € file.txt", i from
 *                                 FIRST (5 digits), whose content is their own key
 * Errors go to stderr as "s3cat: <message>"; the exit status is 1.
 */
#include <backupop.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUF_SIZE (256 * 1024)

static int fail(const char *what)
{
	fprintf(stderr, "s3cat: %s: %s\n", what, bop_error_last());
	return 1;
}

static int write_all(const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, buf, len);

		if (n < 0) {
			perror("s3cat: cannot write to standard output");
			return 1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int cmd_get(bop_storage_t *st, const char *key)
{
	bop_source_t *src = NULL;
	char *buf = malloc(BUF_SIZE);
	size_t got;
	int ret = 1;

	if (!buf)
		goto out;
	if (bop_storage_get(st, &src, key, 0) < 0) {
		ret = fail("get");
		goto out;
	}
	for (;;) {
		if (bop_source_read(src, buf, BUF_SIZE, &got) < 0) {
			ret = fail("read");
			goto out;
		}
		if (got == 0)
			break;
		if (write_all(buf, got))
			goto out;
	}
	ret = bop_source_close(src) < 0 ? fail("close") : 0;
out:
	bop_source_free(src);
	free(buf);
	return ret;
}

static int print_key(const char *key, const bop_storage_stat_t *st, void *payload)
{
	(void)st;
	(void)payload;
	printf("%s\n", key);
	return 0;
}

static int cmd_list(bop_storage_t *st, const char *prefix)
{
	return bop_storage_list(st, prefix, print_key, NULL) < 0 ? fail("list") : 0;
}

static int cmd_put(bop_storage_t *st, const char *key)
{
	bop_sink_t *sink = NULL;
	char *buf = malloc(BUF_SIZE);
	ssize_t n;
	int ret = 1;

	if (!buf)
		goto out;
	if (bop_storage_put(st, &sink, key, NULL) < 0) {
		ret = fail("put");
		goto out;
	}
	while ((n = read(STDIN_FILENO, buf, BUF_SIZE)) > 0) {
		if (bop_sink_write(sink, buf, (size_t)n) < 0) {
			ret = fail("write");
			goto out;
		}
	}
	if (n < 0) {
		perror("s3cat: cannot read standard input");
		goto out;
	}
	ret = bop_sink_commit(sink) < 0 ? fail("commit") : 0;
out:
	bop_sink_free(sink);
	free(buf);
	return ret;
}

static int put_one(bop_storage_t *st, const char *key)
{
	bop_put_options_t opts = BOP_PUT_OPTIONS_INIT;
	bop_sink_t *sink = NULL;
	int ret = 0;

	opts.size_hint = strlen(key);
	if (bop_storage_put(st, &sink, key, &opts) < 0 ||
			bop_sink_write(sink, key, strlen(key)) < 0 || bop_sink_commit(sink) < 0)
		ret = fail(key);
	bop_sink_free(sink);
	return ret;
}

static int cmd_put_many(bop_storage_t *st, const char *prefix, const char *first,
	const char *count)
{
	long from = strtol(first, NULL, 10), n = strtol(count, NULL, 10);
	char key[1024];

	for (long i = from; i < from + n; i++) {
		snprintf(key, sizeof(key), "%s%05ld \xc3\xbc \xe2\x82\xac file.txt", prefix, i);
		if (put_one(st, key))
			return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	bop_storage_t *st = NULL;
	int ret;

	if (argc < 4 || (!strcmp(argv[1], "put-many") && argc < 6)) {
		fputs("usage: s3cat get|list|put URL KEY | put-many URL PREFIX FIRST N\n", stderr);
		return 2;
	}
	if (bop_storage_open(&st, argv[2], NULL) < 0)
		return fail("open");
	if (!strcmp(argv[1], "get"))
		ret = cmd_get(st, argv[3]);
	else if (!strcmp(argv[1], "list"))
		ret = cmd_list(st, argv[3]);
	else if (!strcmp(argv[1], "put"))
		ret = cmd_put(st, argv[3]);
	else if (!strcmp(argv[1], "put-many"))
		ret = cmd_put_many(st, argv[3], argv[4], argv[5]);
	else
		ret = 2;
	bop_storage_free(st);
	if (fflush(stdout) != 0)
		ret = 1;
	return ret;
}
