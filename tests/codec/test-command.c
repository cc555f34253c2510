/* Command sources and sinks against real processes: output, exit status, signals,
 * deadlines, environment, shell mode, missing commands, commit and abort. */
#include "tap.h"
#include "codec-util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backupop.h"

#define MIB (1024 * 1024)

static char tmpdir[256];
static tbuf_t logged;           /* every log line: "level component: message\n" */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void log_cb(bop_log_level_t level, const char *component, const char *message, void *p)
{
	char line[2048];

	(void)p;
	snprintf(line, sizeof(line), "%d %s: %s\n", (int)level, component, message);
	pthread_mutex_lock(&log_lock);
	tbuf_append(&logged, line, strlen(line));
	pthread_mutex_unlock(&log_lock);
}

static bool log_has(const char *text)
{
	bool found;

	pthread_mutex_lock(&log_lock);
	tbuf_append(&logged, "", 1);
	logged.len--;
	found = strstr((const char *)logged.data, text) != NULL;
	pthread_mutex_unlock(&log_lock);
	return found;
}

static char *path_in(const char *name)
{
	static char buf[4][512];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmpdir, name);
	return buf[i];
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
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

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	fwrite(p, 1, n, f);
	fclose(f);
}

static pid_t read_pid(const char *path)
{
	tbuf_t b = read_file(path);
	pid_t pid = 0;

	if (b.len) {
		tbuf_append(&b, "", 1);
		pid = (pid_t)atoi((const char *)b.data);
	}
	tbuf_free(&b);
	return pid;
}

/* The process is gone (reaped), waiting up to 3 s for init to reap an orphan. */
static bool gone(pid_t pid)
{
	for (int i = 0; i < 300; i++) {
		if (kill(pid, 0) < 0 && errno == ESRCH)
			return true;
		usleep(10000);
	}
	return false;
}

static int start_source(bop_source_t **src, const char *const *argv, int shell)
{
	bop_command_options_t o;

	bop_command_options_init(&o, BOP_COMMAND_OPTIONS_VERSION);
	o.argv = argv;
	o.shell = shell;
	return bop_source_command_new(src, &o);
}

/* Reads the source to its end in pieces of `cap`; returns read()'s error, or close()'s. */
static int read_all(bop_source_t *src, size_t cap, tbuf_t *out)
{
	unsigned char *buf = malloc(cap);
	int r;

	for (;;) {
		size_t got = 0;

		r = bop_source_read(src, buf, cap, &got);
		if (r < 0 || got == 0)
			break;
		tbuf_append(out, buf, got);
	}
	free(buf);
	if (r < 0)
		return r;
	return bop_source_close(src);
}

/* Runs a shell script as a source; returns the result of reading it and closing. */
static int run_script(const char *script, tbuf_t *out)
{
	const char *argv[] = { script, NULL };
	bop_source_t *src = NULL;
	int r = start_source(&src, argv, 1);

	if (r == 0)
		r = read_all(src, 65536, out);
	bop_source_free(src);
	return r;
}

static void test_source_output(void)
{
	const char *argv[] = { "printf", "%s|%s", "a b", "c", NULL };
	unsigned char *data = random_bytes(6 * MIB + 123, 5);
	char cmd[600];
	const char *head[] = { "head", "-c", "6291579", cmd, NULL };
	bop_source_t *src = NULL;
	tbuf_t out = { 0 };

	is_int(run_script("printf 'hello\\nworld'", &out), 0, "shell script output read and closed");
	ok(out.len == 11 && memcmp(out.data, "hello\nworld", 11) == 0, "stdout of printf is the stream");
	tbuf_free(&out);

	is_int(start_source(&src, argv, 0), 0, "argv mode: no shell involved");
	is_int(read_all(src, 3, &out), 0, "read in 3-byte pieces");
	ok(out.len == 5 && memcmp(out.data, "a b|c", 5) == 0, "arguments are passed as they are");
	bop_source_free(src);
	tbuf_free(&out);

	write_file(path_in("data"), data, 6 * MIB + 123);
	snprintf(cmd, sizeof(cmd), "%s", path_in("data"));
	is_int(start_source(&src, head, 0), 0, "head -c of a 6 MiB file");
	is_int(read_all(src, 1 << 20, &out), 0, "read to the end with 1 MiB buffers");
	ok(out.len == 6 * MIB + 123 && memcmp(out.data, data, out.len) == 0,
		"all 6 MiB arrive unchanged (%zu bytes)", out.len);
	bop_source_free(src);
	tbuf_free(&out);

	is_int(start_source(&src, head, 0), 0, "again, read slowly in small pieces");
	is_int(read_all(src, 4093, &out), 0, "read to the end with 4093-byte buffers");
	ok(out.len == 6 * MIB + 123 && memcmp(out.data, data, out.len) == 0,
		"all bytes arrive unchanged with backpressure");
	bop_source_free(src);
	tbuf_free(&out);
	free(data);
}

static void test_source_failures(void)
{
	tbuf_t out = { 0 };
	int r;

	r = run_script("echo partial; echo 'warming up' >&2; "
		"echo 'pg_dump: error: connection refused' >&2; exit 3", &out);
	is_int(r, BOP_ECHILD, "exit 3 fails with BOP_ECHILD at close");
	ok(strstr(bop_error_last(), "exited with status 3: pg_dump: error: connection refused") != NULL,
		"the message has the status and the last stderr line: %s", bop_error_last());
	ok(log_has("3 sh: warming up\n") && log_has("3 sh: pg_dump: error: connection refused\n"),
		"each stderr line is logged at WARN under the command's name");
	tbuf_free(&out);

	r = run_script("echo going >&2; kill -9 $$", &out);
	is_int(r, BOP_ECHILD, "killed by a signal fails with BOP_ECHILD");
	ok(strstr(bop_error_last(), "was killed by signal 9 (Killed)") != NULL,
		"the message names the signal: %s", bop_error_last());
	tbuf_free(&out);

	{
		struct timespec t0, t1;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		r = run_script("sleep 2 >/dev/null & echo done", &out);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		is_int(r, 0, "a background process holding stderr open does not fail the command");
		ok(t1.tv_sec - t0.tv_sec < 2, "nor does close() wait for it");
		tbuf_free(&out);
	}

	{
		const char *argv[] = { "bop-no-such-command-xyz", "--help", NULL };
		bop_source_t *src = NULL;
		bop_sink_t *sink = NULL;
		bop_command_options_t o = BOP_COMMAND_OPTIONS_INIT;

		r = start_source(&src, argv, 0);
		is_int(r, BOP_ENOTFOUND, "a missing command fails with BOP_ENOTFOUND");
		ok(src == NULL && strstr(bop_error_last(), "command 'bop-no-such-command-xyz' not found"),
			"the message names it: %s", bop_error_last());
		o.argv = argv;
		is_int(bop_sink_command_new(&sink, &o), BOP_ENOTFOUND, "also as a sink");
		o.argv = NULL;
		is_int(bop_source_command_new(&src, &o), BOP_EINVAL, "no argv is refused");
		o.argv = (const char *const[]){ "true", NULL };
		o.version = 42;
		is_int(bop_source_command_new(&src, &o), BOP_EVERSION, "unknown options version");
		o.version = BOP_COMMAND_OPTIONS_VERSION;
		o.cwd = "/nonexistent-dir-for-bop";
		is_int(bop_source_command_new(&src, &o), BOP_ENOTFOUND, "a missing cwd is refused");
		ok(strstr(bop_error_last(), "/nonexistent-dir-for-bop") != NULL, "named: %s",
			bop_error_last());
	}
}

static void test_timeout(void)
{
	char script[1024];
	const char *argv[] = { script, NULL };
	bop_command_options_t o = BOP_COMMAND_OPTIONS_INIT;
	bop_source_t *src = NULL;
	struct timespec t0, t1;
	tbuf_t out = { 0 };
	pid_t sh, sleeper;
	int r;

	snprintf(script, sizeof(script),
		"echo $$ > %s; sleep 30 & echo $! > %s; echo started; echo 'still busy' >&2; wait",
		path_in("sh.pid"), path_in("sleep.pid"));
	o.argv = argv;
	o.shell = 1;
	o.timeout_ms = 400;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	is_int(bop_source_command_new(&src, &o), 0, "start a command that does not finish");
	r = read_all(src, 65536, &out);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	is_int(r, BOP_ETIMEOUT, "the deadline fails with BOP_ETIMEOUT");
	ok(strstr(bop_error_last(), "did not finish within 400 ms and was killed") != NULL,
		"the message says so: %s", bop_error_last());
	ok(t1.tv_sec - t0.tv_sec < 5, "it fails at the deadline, not at the end of sleep");
	sh = read_pid(path_in("sh.pid"));
	sleeper = read_pid(path_in("sleep.pid"));
	ok(sh > 0 && kill(sh, 0) < 0 && errno == ESRCH, "the command (pid %d) is killed and reaped",
		(int)sh);
	ok(sleeper > 0 && gone(sleeper), "what it started (pid %d) is killed too", (int)sleeper);
	is_int(bop_source_close(src), BOP_ETIMEOUT, "close reports the timeout too");
	bop_source_free(src);
	tbuf_free(&out);
}

static void test_free_kills(void)
{
	char script[512];
	const char *argv[] = { script, NULL };
	bop_source_t *src = NULL;
	char buf[16];
	size_t got = 0;
	pid_t pid;

	snprintf(script, sizeof(script), "echo $$ > %s; echo hi; exec sleep 30",
		path_in("free.pid"));
	is_int(start_source(&src, argv, 1), 0, "start a long command");
	is_int(bop_source_read(src, buf, sizeof(buf), &got), 0, "read its first output");
	pid = read_pid(path_in("free.pid"));
	bop_source_free(src);
	ok(pid > 0 && kill(pid, 0) < 0 && errno == ESRCH,
		"free before close kills and reaps the command");
}

static void test_env_and_shell(void)
{
	const char *script[] = { "printf '%s:%s:%s' \"$BOP_T_OWN\" \"$BOP_T_PARENT\" \"$1$2\"",
		"x", "y", NULL };
	const char *env[] = { "BOP_T_OWN=own-value-1234", NULL };
	const char *override[] = { "BOP_T_PARENT=overridden", "BOP_T_OWN=o", NULL };
	const char *pwd[] = { "pwd", NULL };
	bop_command_options_t o = BOP_COMMAND_OPTIONS_INIT;
	bop_source_t *src = NULL;
	tbuf_t out = { 0 };

	setenv("BOP_T_PARENT", "from-parent", 1);
	o.argv = script;
	o.shell = 1;
	o.env = env;
	bop_source_command_new(&src, &o);
	is_int(read_all(src, 100, &out), 0, "shell mode with arguments and env");
	tbuf_append(&out, "", 1);
	is_str((const char *)out.data, "own-value-1234:from-parent:xy",
		"env is added to ours; extra argv are $1 $2");
	bop_source_free(src);
	tbuf_free(&out);

	o.inherit_env = 0;
	bop_source_command_new(&src, &o);
	is_int(read_all(src, 100, &out), 0, "inherit_env = 0");
	tbuf_append(&out, "", 1);
	is_str((const char *)out.data, "own-value-1234::xy", "the environment is replaced");
	bop_source_free(src);
	tbuf_free(&out);

	o.inherit_env = 1;
	o.env = override;
	bop_source_command_new(&src, &o);
	is_int(read_all(src, 100, &out), 0, "overriding a variable");
	tbuf_append(&out, "", 1);
	is_str((const char *)out.data, "o:overridden:xy", "our variables win over inherited ones");
	bop_source_free(src);
	tbuf_free(&out);
	ok(!log_has("own-value-1234") && !log_has("overridden"), "env values are never logged");

	o.env = (const char *const[]){ "NOEQUALS", NULL };
	is_int(bop_source_command_new(&src, &o), BOP_EINVAL, "an env entry without '=' is refused");
	ok(strstr(bop_error_last(), "NAME=value") != NULL, "%s", bop_error_last());

	o = (bop_command_options_t)BOP_COMMAND_OPTIONS_INIT;
	o.argv = pwd;
	o.cwd = tmpdir;
	bop_source_command_new(&src, &o);
	is_int(read_all(src, 100, &out), 0, "cwd");
	tbuf_append(&out, "", 1);
	ok(strncmp((const char *)out.data, tmpdir, strlen(tmpdir)) == 0, "runs in cwd: %s",
		(const char *)out.data);
	bop_source_free(src);
	tbuf_free(&out);
}

static int start_sink(bop_sink_t **sink, const char *script, int64_t timeout_ms)
{
	const char *argv[] = { script, NULL };
	bop_command_options_t o = BOP_COMMAND_OPTIONS_INIT;

	o.argv = argv;
	o.shell = 1;
	o.timeout_ms = timeout_ms;
	return bop_sink_command_new(sink, &o);
}

static int write_pieces(bop_sink_t *sink, const unsigned char *p, size_t len, size_t piece)
{
	for (size_t off = 0; off < len; off += piece) {
		int r = bop_sink_write(sink, p + off, len - off < piece ? len - off : piece);

		if (r < 0)
			return r;
	}
	return 0;
}

static void test_sink(void)
{
	unsigned char *data = random_bytes(3 * MIB + 5, 7);
	char script[1024];
	bop_sink_t *sink = NULL;
	tbuf_t got;
	sigset_t mask;
	struct sigaction sa;
	int r;

	snprintf(script, sizeof(script), "cat > %s", path_in("out1"));
	is_int(start_sink(&sink, script, 0), 0, "sink: cat > file");
	is_int(write_pieces(sink, data, 3 * MIB + 5, 100000), 0, "3 MiB written");
	is_int(bop_sink_commit(sink), 0, "commit closes stdin and the command exits 0");
	got = read_file(path_in("out1"));
	ok(got.len == 3 * MIB + 5 && memcmp(got.data, data, got.len) == 0, "the file has the bytes");
	tbuf_free(&got);
	bop_sink_free(sink);

	snprintf(script, sizeof(script), "cat > %s && touch %s", path_in("out2"), path_in("DONE"));
	is_int(start_sink(&sink, script, 0), 0, "sink: cat > file && touch DONE");
	is_int(write_pieces(sink, data, MIB, 65536), 0, "1 MiB written");
	bop_sink_abort(sink);
	usleep(200000);
	ok(!exists(path_in("DONE")), "abort kills the command: it never saw the end of its input");
	bop_sink_free(sink);

	snprintf(script, sizeof(script), "cat > %s && touch %s", path_in("out3"), path_in("DONE3"));
	is_int(start_sink(&sink, script, 0), 0, "same, freed without commit");
	is_int(bop_sink_write(sink, data, 1000), 0, "1000 bytes written");
	bop_sink_free(sink);
	usleep(200000);
	ok(!exists(path_in("DONE3")), "free without commit aborts");

	is_int(start_sink(&sink, "head -c 10 >/dev/null; echo 'bad input' >&2; exit 4", 0), 0,
		"sink: a command that stops reading and fails");
	r = write_pieces(sink, data, 3 * MIB, MIB);
	is_int(r, BOP_ECHILD, "writing fails with BOP_ECHILD; SIGPIPE did not kill us");
	ok(strstr(bop_error_last(), "exited with status 4 before reading all its input: bad input") != NULL,
		"the message explains: %s", bop_error_last());
	is_int(bop_sink_commit(sink), BOP_ECHILD, "commit after the failure fails too");
	bop_sink_free(sink);

	is_int(start_sink(&sink, "exec true", 0), 0, "sink: a command that exits 0 without reading");
	r = write_pieces(sink, data, 3 * MIB, MIB);
	ok(r == BOP_EIO && strstr(bop_error_last(), "before reading all its input"),
		"writing fails: %s", bop_error_last());
	bop_sink_free(sink);
	pthread_sigmask(SIG_SETMASK, NULL, &mask);
	sigaction(SIGPIPE, NULL, &sa);
	ok(!sigismember(&mask, SIGPIPE) && sa.sa_handler == SIG_DFL,
		"SIGPIPE is neither left blocked nor ignored");

	is_int(start_sink(&sink, "cat >/dev/null; echo 'restore failed' >&2; exit 5", 0), 0,
		"sink: reads everything and exits 5");
	is_int(bop_sink_write(sink, data, 1000), 0, "write");
	is_int(bop_sink_commit(sink), BOP_ECHILD, "commit fails with BOP_ECHILD");
	ok(strstr(bop_error_last(), "exited with status 5: restore failed") != NULL, "%s",
		bop_error_last());
	bop_sink_free(sink);

	is_int(start_sink(&sink, "sleep 30", 300), 0, "sink: a command that never reads");
	r = write_pieces(sink, data, 3 * MIB, MIB);
	is_int(r, BOP_ETIMEOUT, "writing hits the deadline: BOP_ETIMEOUT");
	bop_sink_free(sink);
	free(data);
}

/* Closing before the end stops the producer, which is reported as a failure. */
static void test_close_early(void)
{
	const char *argv[] = { "yes", NULL };
	bop_source_t *src = NULL;
	char buf[100];
	size_t got;

	is_int(start_source(&src, argv, 0), 0, "start yes");
	is_int(bop_source_read(src, buf, sizeof(buf), &got), 0, "read a little");
	is_int(bop_source_close(src), BOP_ECHILD, "closing early: the producer did not finish");
	ok(strstr(bop_error_last(), "signal 13") != NULL, "%s", bop_error_last());
	bop_source_free(src);
}

/* Commands on several threads at once: each private loop sees only its own child. */
static void *thread_main(void *arg)
{
	intptr_t id = (intptr_t)arg, good = 0;

	for (int i = 0; i < 5; i++) {
		char script[128];
		tbuf_t out = { 0 };
		int r;

		snprintf(script, sizeof(script), "head -c %d /dev/zero; exit %d",
			(int)(100000 * (id + 1) + i), (int)((id + i) % 3));
		r = run_script(script, &out);
		if (out.len == (size_t)(100000 * (id + 1) + i) &&
			(r == 0) == ((id + i) % 3 == 0) && (r == 0 || r == BOP_ECHILD))
			good++;
		tbuf_free(&out);
	}
	return (void *)good;
}

static void test_threads(void)
{
	pthread_t th[4];
	intptr_t good = 0;

	for (intptr_t i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, thread_main, (void *)i);
	for (int i = 0; i < 4; i++) {
		void *g;

		pthread_join(th[i], &g);
		good += (intptr_t)g;
	}
	is_int(good, 20, "20 commands on 4 threads: every output and exit status is right");
}

int main(void)
{
	char cmd[300];

	snprintf(tmpdir, sizeof(tmpdir), "%s/bop-cmd-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir))
		skip_all("cannot create a temporary directory");
	bop_log_set_callback(log_cb, NULL);
	bop_log_set_level(BOP_LOG_TRACE);
	test_source_output();
	test_source_failures();
	test_timeout();
	test_free_kills();
	test_env_and_shell();
	test_sink();
	test_close_early();
	test_threads();
	ok(!log_has("did not close cleanly"), "every command's event loop closed cleanly");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		diag("could not remove %s", tmpdir);
	tbuf_free(&logged);
	return done_testing();
}
