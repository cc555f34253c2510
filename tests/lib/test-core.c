/* Errors, logging with redaction, version, and the pipeline driver with a custom stage. */
#include "internal.h"
#include "tap.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backupop/version.h"

static char logged[8192];

static void capture(bop_log_level_t level, const char *component, const char *message,
	void *payload)
{
	size_t n = strlen(logged);

	BOP_UNUSED(level);
	BOP_UNUSED(payload);
	snprintf(logged + n, sizeof(logged) - n, "%s: %s\n", component, message);
}

static void test_errors(void)
{
	bop_error_clear();
	is_str(bop_error_last(), "no error", "no error before any failure");
	is_int(bop_error_last_code(), BOP_OK, "code is BOP_OK before any failure");
	is_int(bop__error(BOP_EINVAL, "level %d is out of range", 42), BOP_EINVAL,
		"bop__error returns its code");
	is_str(bop_error_last(), "level 42 is out of range", "the message is kept");
	bop__error_wrap("reading %s", "config.yaml");
	is_str(bop_error_last(), "reading config.yaml: level 42 is out of range",
		"wrap prefixes context");
	is_int(bop_error_last_code(), BOP_EINVAL, "wrap keeps the code");
	is_int(bop_error_setf(BOP_ENOTFOUND, "no key %s in %d buckets", "a/b", 3), BOP_ENOTFOUND,
		"bop_error_setf returns its code");
	is_str(bop_error_last(), "no key a/b in 3 buckets", "bop_error_setf formats the message");
	is_int(bop_error_last_code(), BOP_ENOTFOUND, "bop_error_setf sets the code");
	{
		char big[3000];

		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		bop_error_setf(BOP_EIO, "long: %s", big);
		ok(strlen(bop_error_last()) == 2047 && strncmp(bop_error_last(), "long: xxx", 9) == 0,
			"a long bop_error_setf message is cut at 2047 bytes (%zu)",
			strlen(bop_error_last()));
	}
	is_str(bop_strerror(BOP_ENOTFOUND), "not found", "bop_strerror names codes");
	is_str(bop_strerror(-999), "unknown error", "bop_strerror handles unknown codes");
	{
		/* The newest code: a code added to errors.h moves this line. */
		const int last = BOP_ECONNECT;
		int described = 0, first_missing = 0;

		for (int c = BOP_OK; c >= last; c--) {
			if (strcmp(bop_strerror(c), "unknown error") != 0)
				described++;
			else if (!first_missing)
				first_missing = c;
		}
		ok(described == BOP_OK - last + 1,
			"every code from BOP_OK down to BOP_ECONNECT has a description (%d of %d; "
			"first without: %d)", described, BOP_OK - last + 1, first_missing);
		is_str(bop_strerror(last - 1), "unknown error",
			"BOP_ECONNECT is the last code (the one below it is unknown)");
	}
}

/* The allocator entry points for memory a callback hands to the library. */
static void test_allocator(void)
{
	const char *text = "{\"kind\":\"Secret\"}";
	char *copy = bop_strdup(text);
	unsigned char *mem = bop_malloc(64);
	void *empty = bop_malloc(0);

	ok(copy && copy != text && strcmp(copy, text) == 0, "bop_strdup copies the string");
	ok(bop_strdup(NULL) == NULL, "bop_strdup(NULL) is NULL");
	ok(mem != NULL, "bop_malloc gives memory");
	if (mem)
		memset(mem, 0xa5, 64);  /* ASan checks all 64 bytes are ours */
	ok(empty != NULL, "bop_malloc(0) gives a pointer bop_free accepts");
	bop_free(copy);
	bop_free(mem);
	bop_free(empty);
	bop_free(NULL);
}

static void test_version(void)
{
	is_int(bop_version(), BOP_VERSION_NUMBER, "bop_version matches the header");
	is_str(bop_version_string(), BOP_VERSION_STRING, "bop_version_string matches the header");
}

static void test_redaction(void)
{
	logged[0] = '\0';
	bop_log_set_callback(capture, NULL);
	bop_log_set_level(BOP_LOG_DEBUG);
	is_int(bop_log_add_secret("abc"), BOP_EINVAL, "secrets shorter than 4 bytes are refused");
	is_int(bop_log_add_secret("hunter2-secret"), 0, "a secret is registered");
	bop__log(BOP_LOG_INFO, "db", "connecting with password=%s to host", "hunter2-secret");
	ok(strstr(logged, "hunter2") == NULL, "the secret does not reach the log");
	ok(strstr(logged, "password=[REDACTED] to host") != NULL, "the rest of the line is kept");
	bop__error(BOP_EAUTH, "login failed for password hunter2-secret");
	ok(strstr(bop_error_last(), "hunter2") == NULL, "the secret does not reach error messages");
	bop_error_setf(BOP_EAUTH, "login as %s failed", "hunter2-secret");
	is_str(bop_error_last(), "login as [REDACTED] failed",
		"a secret among bop_error_setf's arguments is redacted");
	bop_log(BOP_LOG_DEBUG, "app", "debug line shown");
	ok(strstr(logged, "debug line shown") != NULL, "bop_log honours the level");
	bop_log_set_level(BOP_LOG_WARN);
	bop_log(BOP_LOG_INFO, "app", "info line hidden");
	ok(strstr(logged, "info line hidden") == NULL, "lines below the level are dropped");
	bop_log_set_callback(NULL, NULL);
	bop_log_set_level(BOP_LOG_INFO);
}

static void test_json_log(void)
{
	char path[] = "/tmp/bop-log-XXXXXX";
	int fd = mkstemp(path);
	char *text = NULL;

	bop_log_set_fd(fd);
	bop_log_set_format(BOP_LOG_FORMAT_AUTO);
	bop_log(BOP_LOG_WARN, "test", "quote \" and newline \n inside");
	bop_log_set_fd(2);
	bop__read_file(path, &text, NULL, 1 << 20);
	ok(text && strncmp(text, "{\"ts\":\"", 7) == 0, "a non-terminal gets JSON lines");
	ok(text && strstr(text, "\"level\":\"warn\"") && strstr(text, "\\\"") &&
		strstr(text, "\\n"), "JSON lines escape quotes and newlines");
	ok(text && strchr(text, '\n') == text + strlen(text) - 1, "one line per message");
	free(text);
	close(fd);
	unlink(path);
}

/* A custom stage: uppercases, and emits at most 3 bytes per call to stress the driver. */
typedef struct upper_stage {
	bop_stage_t base;
	int ends;
} upper_stage_t;

static int upper_process(bop_stage_t *base, bop_outbuf_t *out, bop_inbuf_t *in,
	bop_stream_directive_t directive)
{
	upper_stage_t *s = (upper_stage_t *)base;
	const char *src = in->src;
	char *dst = out->dst;
	size_t n = 0;

	while (n < 3 && in->pos < in->size && out->pos < out->size) {
		char c = src[in->pos++];

		dst[out->pos++] = (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
		n++;
	}
	if (directive == BOP_STREAM_END && in->pos == in->size)
		s->ends++;
	return in->pos < in->size ? 1 : 0;
}

static void upper_free(bop_stage_t *base)
{
	free(base);
}

static bop_stage_t *upper_new(void)
{
	upper_stage_t *s = calloc(1, sizeof(*s));

	s->base = (bop_stage_t)BOP_STAGE_INIT(.name = "upper", .process = upper_process,
		.free = upper_free);
	return &s->base;
}

typedef struct collect {
	char buf[1 << 16];
	size_t len;
	int fail_after;
} collect_t;

static int collect_write(const void *buf, size_t len, void *payload)
{
	collect_t *c = payload;

	if (c->fail_after >= 0 && c->len + len > (size_t)c->fail_after)
		return BOP_EIO;
	memcpy(c->buf + c->len, buf, len);
	c->len += len;
	return 0;
}

static uint64_t progress_calls;

static void on_progress(uint64_t in, uint64_t out, void *payload)
{
	BOP_UNUSED(in);
	BOP_UNUSED(out);
	BOP_UNUSED(payload);
	progress_calls++;
}

static void test_pipeline(void)
{
	static const char text[] = "hello, pipeline: bounded buffers and a custom stage";
	bop_pipeline_options_t opts = BOP_PIPELINE_OPTIONS_INIT;
	bop_pipeline_t *p = NULL;
	bop_source_t *src = NULL;
	bop_sink_t *sink = NULL;
	bop_stage_t *upper = upper_new();
	collect_t *c = calloc(1, sizeof(*c));
	int ret;

	c->fail_after = -1;
	opts.progress = on_progress;
	is_int(bop_pipeline_new(&p, &opts), 0, "pipeline created");
	bop_source_memory_new(&src, text, strlen(text));
	bop_sink_callback_new(&sink, collect_write, c);
	bop_pipeline_set_source(p, src);
	bop_pipeline_add_stage(p, upper);
	bop_pipeline_set_sink(p, sink);
	ret = bop_pipeline_run(p);
	is_int(ret, 0, "pipeline runs");
	is_int(c->len, strlen(text), "every byte arrives");
	ok(c->len == strlen(text) && memcmp(c->buf, "HELLO, PIPELINE", 15) == 0,
		"the stage transformed the stream");
	is_int(((upper_stage_t *)upper)->ends, 1, "the stage saw END once");
	is_int(bop_pipeline_bytes_in(p), strlen(text), "bytes_in counted");
	is_int(bop_pipeline_bytes_out(p), strlen(text), "bytes_out counted");
	ok(progress_calls >= 1, "progress was reported at the end");
	is_int(bop_pipeline_run(p), BOP_EINVAL, "a pipeline runs only once");
	bop_pipeline_free(p);

	/* A failing sink fails the run and is aborted. */
	c->len = 0;
	c->fail_after = 10;
	bop_pipeline_new(&p, NULL);
	bop_source_memory_new(&src, text, strlen(text));
	bop_sink_callback_new(&sink, collect_write, c);
	bop_pipeline_set_source(p, src);
	bop_pipeline_set_sink(p, sink);
	is_int(bop_pipeline_run(p), BOP_EIO, "a sink failure fails the run");
	bop_pipeline_free(p);

	/* A canceled pipeline does not run. */
	bop_pipeline_new(&p, NULL);
	bop_source_memory_new(&src, text, strlen(text));
	bop_sink_callback_new(&sink, collect_write, c);
	bop_pipeline_set_source(p, src);
	bop_pipeline_set_sink(p, sink);
	bop_pipeline_cancel(p);
	is_int(bop_pipeline_run(p), BOP_ECANCELED, "a canceled pipeline fails with BOP_ECANCELED");
	bop_pipeline_free(p);

	is_int(bop_pipeline_run(NULL), BOP_EINVAL, "NULL pipeline is refused");
	bop_pipeline_new(&p, NULL);
	is_int(bop_pipeline_run(p), BOP_EINVAL, "a pipeline without source and sink is refused");
	ok(strstr(bop_error_last(), "source and a sink") != NULL, "and the message says why");
	bop_pipeline_free(p);
	free(c);
}

typedef struct blocked_write {
	bop_pipeline_t *p;
	pthread_t runner;
	int read_fd;
} blocked_write_t;

static void on_usr1(int sig)
{
	(void)sig;
}

/* Cancels the pipeline and signals its thread, as the CLI's SIGTERM handler does; after
 * 5 s (a write that ignored the cancel) reads the pipe empty, so that the test ends. */
static void *cancel_blocked(void *arg)
{
	blocked_write_t *b = arg;
	struct timespec pause = { 0, 200 * 1000 * 1000 };
	char buf[65536];

	nanosleep(&pause, NULL);
	bop_pipeline_cancel(b->p);
	for (int i = 0; i < 25; i++) {
		pthread_kill(b->runner, SIGUSR1);
		nanosleep(&pause, NULL);
	}
	while (read(b->read_fd, buf, sizeof(buf)) > 0)
		;
	return NULL;
}

/* A sink writing to a pipe whose reader reads nothing blocks in write(); a cancel with a
 * signal (the CLI's SIGTERM, on one core, where the restore writes on its own thread)
 * must end that write, not resume it. */
static void test_blocked_write_canceled(void)
{
	static char data[4 << 20];
	struct sigaction sa, old;
	blocked_write_t b = { NULL, pthread_self(), -1 };
	bop_source_t *src = NULL;
	bop_sink_t *sink = NULL;
	struct timespec t0, t1;
	pthread_t helper;
	int fds[2], ret;
	long ms;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;        /* no SA_RESTART: a blocked write returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, &old);
	if (!ok(pipe(fds) == 0, "a pipe is made"))
		return;
	b.read_fd = fds[0];
	bop_pipeline_new(&b.p, NULL);
	bop_source_memory_new(&src, data, sizeof(data));
	bop_sink_fd_new(&sink, fds[1], 1);
	bop_pipeline_set_source(b.p, src);
	bop_pipeline_set_sink(b.p, sink);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_create(&helper, NULL, cancel_blocked, &b);
	ret = bop_pipeline_run(b.p);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	is_int(ret, BOP_ECANCELED, "a write blocked on a reader that reads nothing ends when "
		"the pipeline is canceled and its thread signalled");
	ok(ms < 3000, "... at once, not when the reader is drained 5 s later (%ld ms)", ms);
	ok(strstr(bop_error_last(), "canceled while writing") != NULL, "... saying: %s",
		bop_error_last());
	bop_pipeline_free(b.p);         /* closes the write end: the helper's read sees EOF */
	pthread_join(helper, NULL);
	close(fds[0]);
	sigaction(SIGUSR1, &old, NULL);
}

static void test_file_sink(void)
{
	char dir[] = "/tmp/bop-sink-XXXXXX";
	char *path, *text = NULL;
	bop_sink_t *sink = NULL;
	bop_source_t *src = NULL;
	char buf[64];
	size_t got = 0;

	if (!ok(mkdtemp(dir) != NULL, "a scratch directory is made"))
		return;
	path = bop__sprintf("%s/out.bin", dir);
	is_int(bop_sink_file_new(&sink, path), 0, "file sink created");
	bop_sink_write(sink, "partial", 7);
	ok(access(path, F_OK) != 0, "nothing is visible before commit");
	bop_sink_abort(sink);
	bop_sink_free(sink);
	ok(access(path, F_OK) != 0, "an aborted file never appears");
	ok(rmdir(dir) == 0, "no temporary file is left after abort");
	mkdir(dir, 0700);
	bop_sink_file_new(&sink, path);
	bop_sink_write(sink, "complete", 8);
	is_int(bop_sink_commit(sink), 0, "commit succeeds");
	bop_sink_free(sink);
	bop__read_file(path, &text, NULL, 100);
	is_str(text, "complete", "the committed file has the bytes");
	is_int(bop_source_file_new(&src, path), 0, "file source opens");
	bop_source_read(src, buf, sizeof(buf), &got);
	is_int(got, 8, "file source reads the bytes");
	bop_source_free(src);
	is_int(bop_source_file_new(&src, "/nonexistent/file"), BOP_ENOTFOUND,
		"a missing file is BOP_ENOTFOUND");
	ok(strstr(bop_error_last(), "/nonexistent/file") != NULL, "and the message names it");
	free(text);
	unlink(path);
	rmdir(dir);
	free(path);
}

/* ---- plug-in vtables: the _INIT macros and the one version check ---- */

static bop_storage_t future_storage = { .version = BOP_STORAGE_VERSION + 98 };
static bop_engine_t future_engine = { .version = BOP_ENGINE_VERSION + 41 };

static int future_storage_open(bop_storage_t **out, const char *url,
	const bop_storage_options_t *opts, void *payload)
{
	BOP_UNUSED(url);
	BOP_UNUSED(opts);
	BOP_UNUSED(payload);
	*out = &future_storage;
	return 0;
}

static int future_engine_open(bop_engine_t **out, const char *config_json, void *payload)
{
	BOP_UNUSED(config_json);
	BOP_UNUSED(payload);
	*out = &future_engine;
	return 0;
}

static int no_read(bop_source_t *src, void *buf, size_t cap, size_t *got)
{
	BOP_UNUSED(src);
	BOP_UNUSED(buf);
	BOP_UNUSED(cap);
	*got = 0;
	return 0;
}

static void test_plugin_versions(void)
{
	bop_sink_t sink = BOP_SINK_INIT(.write = NULL, .free = NULL);
	bop_source_t src = BOP_SOURCE_INIT(.read = no_read);
	bop_storage_t *st = NULL;
	bop_engine_t *engine = NULL;
	bop_backup_options_t bo;
	char buf[8], want[160];
	size_t got = 1;

	ok(sink.version == BOP_SINK_VERSION && !sink.commit && !sink.abort,
		"BOP_SINK_INIT sets the version and leaves unnamed members NULL");
	ok(src.version == BOP_SOURCE_VERSION && src.read == no_read && !src.close,
		"BOP_SOURCE_INIT sets the version and the members named");
	is_int(bop_source_read(&src, buf, sizeof(buf), &got), 0, "such a source is accepted");

	is_int(bop_storage_register("future", future_storage_open, NULL), 0,
		"register a backend that answers with a vtable of a later version");
	is_int(bop_storage_open(&st, "future://x", NULL), BOP_EVERSION,
		"bop_storage_open refuses it with BOP_EVERSION");
	ok(st == NULL, "and gives no storage");
	snprintf(want, sizeof(want), "storage backend \"future\" has version %u, but "
		"libbackupop %s understands only version %u", BOP_STORAGE_VERSION + 98,
		bop_version_string(), BOP_STORAGE_VERSION);
	ok(strstr(bop_error_last(), want) != NULL, "the message names the plug-in and both "
		"versions: %s", bop_error_last());

	is_int(bop_engine_register("future-engine", 0, future_engine_open, NULL), 0,
		"register an engine of a later version");
	is_int(bop_engine_open(&engine, "future-engine", NULL), BOP_EVERSION,
		"bop_engine_open refuses it");
	ok(engine == NULL && strstr(bop_error_last(), "engine \"future-engine\" has version 42") &&
		strstr(bop_error_last(), "understands only version 1"),
		"naming it and both versions: %s", bop_error_last());

	src.version = 0;
	is_int(bop_source_read(&src, buf, sizeof(buf), &got), BOP_EVERSION,
		"a source of version 0 is refused");
	ok(strstr(bop_error_last(), "has version 0") != NULL, "%s", bop_error_last());

	is_int(bop_backup_options_init(&bo, BOP_BACKUP_OPTIONS_VERSION + 1), BOP_EVERSION,
		"an options struct of an unknown version is refused the same way");
	ok(strstr(bop_error_last(), "bop_backup_options_t has version 2") != NULL, "%s",
		bop_error_last());

	is_int(bop__version_check("engine", "pg", 3, 2, 4), 0,
		"a version inside the range this library understands is accepted");
	is_int(bop__version_check("engine", "pg", 5, 2, 4), BOP_EVERSION, "one above it is not");
	ok(strstr(bop_error_last(), "engine \"pg\" has version 5") &&
		strstr(bop_error_last(), "understands versions 2 to 4"),
		"the message gives the range: %s", bop_error_last());
	is_int(bop__version_check("engine", NULL, 1, 2, 4), BOP_EVERSION, "nor one below it");
}

int main(void)
{
	test_errors();
	test_version();
	test_allocator();
	test_redaction();
	test_json_log();
	test_pipeline();
	test_blocked_write_canceled();
	test_file_sink();
	test_plugin_versions();
	return done_testing();
}
