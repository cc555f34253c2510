/* A full backup-shaped pipeline: command source -> zstd -> sha256 -> file sink, and a
 * failing producer that must leave nothing behind. */
#include "tap.h"
#include "codec-util.h"

#include <dirent.h>
#include <stdio.h>
#include <unistd.h>

#include "backupop.h"

#define MIB (1024 * 1024)

static char tmpdir[256];

static char *path_in(const char *name)
{
	static char buf[4][512];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmpdir, name);
	return buf[i];
}

static tbuf_t read_file(const char *path)
{
	tbuf_t b = { 0 };
	char chunk[65536];
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f)
		return b;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		tbuf_append(&b, chunk, n);
	fclose(f);
	return b;
}

static int count_files(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

/* Runs `script | zstd | sha256 > out.zst`; *sha gets the pipeline's SHA-256 of out.zst. */
static int backup(const char *script, const char *out, char sha[BOP_SHA256_HEX_SIZE],
	uint64_t *stored)
{
	const char *argv[] = { script, NULL };
	bop_command_options_t co = BOP_COMMAND_OPTIONS_INIT;
	bop_pipeline_t *p = NULL;
	bop_source_t *src = NULL;
	bop_stage_t *zstd = NULL, *hash = NULL;
	bop_sink_t *sink = NULL;
	int r;

	co.argv = argv;
	co.shell = 1;
	r = bop_pipeline_new(&p, NULL);
	if (r == 0)
		r = bop_source_command_new(&src, &co);
	if (r == 0)
		r = bop_pipeline_set_source(p, src);
	if (r == 0)
		r = bop_stage_compress_new(&zstd, NULL);
	if (r == 0)
		r = bop_pipeline_add_stage(p, zstd);
	if (r == 0)
		r = bop_stage_sha256_new(&hash);
	if (r == 0)
		r = bop_pipeline_add_stage(p, hash);
	if (r == 0)
		r = bop_sink_file_new(&sink, out);
	if (r == 0)
		r = bop_pipeline_set_sink(p, sink);
	if (r == 0)
		r = bop_pipeline_run(p);
	if (r == 0)
		r = bop_stage_sha256_result(hash, sha, stored);
	bop_pipeline_free(p);
	return r;
}

static void test_backup(void)
{
	unsigned char *data = compressible_bytes(7 * MIB + 17);
	char script[1024], sha[BOP_SHA256_HEX_SIZE], check[BOP_SHA256_HEX_SIZE];
	bop_stage_t *d = NULL, *h = NULL;
	tbuf_t stored, back = { 0 }, copy = { 0 };
	static const size_t whole[] = { 0 };
	uint64_t n = 0, n2 = 0;
	FILE *f = fopen(path_in("input"), "wb");

	fwrite(data, 1, 7 * MIB + 17, f);
	fclose(f);
	snprintf(script, sizeof(script), "head -c 100000000 %s", path_in("input"));
	is_int(backup(script, path_in("out.zst"), sha, &n), 0, "command | zstd | sha256 > file");
	stored = read_file(path_in("out.zst"));
	ok(stored.len > 0 && stored.len == n, "the tap counted the %zu stored bytes", stored.len);
	bop_stage_decompress_new(&d, BOP_COMPRESSION_ZSTD);
	is_int(drive_stage(d, stored.data, stored.len, whole, 1 << 20, false, &back), 0,
		"the file decompresses");
	ok(back.len == 7 * MIB + 17 && memcmp(back.data, data, back.len) == 0,
		"to exactly the command's output");
	bop_stage_sha256_new(&h);
	drive_stage(h, stored.data, stored.len, whole, 1 << 20, false, &copy);
	bop_stage_sha256_result(h, check, &n2);
	is_str(sha, check, "the tap's SHA-256 is that of the stored file");
	bop_stage_free(d);
	bop_stage_free(h);
	tbuf_free(&stored);
	tbuf_free(&back);
	tbuf_free(&copy);
	free(data);
}

static void test_failing_producer(void)
{
	char script[1024], sha[BOP_SHA256_HEX_SIZE];
	int before = count_files(), r;

	snprintf(script, sizeof(script),
		"head -c 3000000 %s; echo 'dump failed: disk full' >&2; exit 1", path_in("input"));
	r = backup(script, path_in("bad.zst"), sha, NULL);
	is_int(r, BOP_ECHILD, "a producer that exits 1 after its output fails the run");
	ok(strstr(bop_error_last(), "exited with status 1: dump failed: disk full") != NULL,
		"with its status and last line: %s", bop_error_last());
	ok(access(path_in("bad.zst"), F_OK) != 0, "the file sink left no file");
	is_int(count_files(), before, "and no temporary file either");
}

int main(void)
{
	char cmd[300];

	snprintf(tmpdir, sizeof(tmpdir), "%s/bop-pipe-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir))
		skip_all("cannot create a temporary directory");
	bop_log_set_level(BOP_LOG_OFF);
	test_backup();
	test_failing_producer();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		diag("could not remove %s", tmpdir);
	return done_testing();
}
