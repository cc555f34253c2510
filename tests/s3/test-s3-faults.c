/*
 * The S3 backend under faults: a proxy on loopback (fault-proxy.py, run with the python3
 * given as argv[1]) sits between the backend and a real S3 server (BOP_TEST_S3_ENDPOINT,
 * radosgw in CI) and cuts, resets, stalls or refuses requests, logging each one. The tests
 * check what a user relies on: a read that loses its connection resumes from the last byte
 * received and still returns the exact bytes; writes are retried with backoff on 5xx, 429,
 * timeouts and resets, a bounded number of times; auth errors are never retried.
 */
#include "tap.h"

#include "storage/s3/s3.h"

#include <openssl/rand.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1024 * 1024)
#define BIG_SIZE (20 * MIB + 4321)
#define MULTI_SIZE (16 * MIB + 777)
#define CUT (5 * MIB + 12345)
/* The backend's retry budget (s3.c): 6 tries, sleeps of full jitter below 200 ms × 2^n. */
#define MAX_TRIES 6
#define RETRY_BASE_S 0.2
#define MAX_SLEEP_S 6.2                 /* 0.2 + 0.4 + 0.8 + 1.6 + 3.2 */
#define PROXY_LIFETIME "150"
#define MAX_LOGGED 512

static const char *endpoint;
static const char *bucket;
static const char *python;
static const char *proxy_script;
static char upstream[256];
static char prefix[96];
static char tmpdir[] = "/tmp/bop-s3-faults-XXXXXX";
static bop_storage_t *direct;
static unsigned char *data;

/* ---- the retries the backend announces (WARN "...; retrying in 0.3 s (try 2 of 6)") ---- */

static pthread_mutex_t retry_lock = PTHREAD_MUTEX_INITIALIZER;
static int retries;
static double retry_sleep;              /* seconds announced */
static int over_cap;                    /* sleeps longer than their exponential cap */
static int recovered;                   /* exclusive writes found stored by a lost try */
static double retry_base = RETRY_BASE_S; /* the first sleep's cap, as set on the storage */

static void on_log(bop_log_level_t level, const char *component, const char *message,
	void *payload)
{
	const char *p = strstr(message, "; retrying in ");
	double delay, cap;
	int tr, max;

	BOP_UNUSED(payload);
	if (strstr(message, "the answer to an earlier try was lost")) {
		pthread_mutex_lock(&retry_lock);
		recovered++;
		pthread_mutex_unlock(&retry_lock);
	}
	if (level != BOP_LOG_WARN || strcmp(component, "s3") != 0 || !p ||
			sscanf(p, "; retrying in %lf s (try %d of %d)", &delay, &tr, &max) != 3)
		return;
	pthread_mutex_lock(&retry_lock);
	cap = retry_base;
	for (int i = 2; i < tr && cap < 10.0; i++)
		cap *= 2;
	retries++;
	retry_sleep += delay;
	if (delay > cap + 0.05)
		over_cap++;
	pthread_mutex_unlock(&retry_lock);
}

static void reset_retries(void)
{
	pthread_mutex_lock(&retry_lock);
	retries = 0;
	retry_sleep = 0;
	over_cap = 0;
	retry_base = RETRY_BASE_S;
	pthread_mutex_unlock(&retry_lock);
}

/* Shorter sleeps for a test that only counts the tries. */
static void fast_retries(bop_storage_t *st)
{
	((s3_storage_t *)st)->retry_base_ms = 50;
	pthread_mutex_lock(&retry_lock);
	retry_base = 0.05;
	pthread_mutex_unlock(&retry_lock);
}

/* ---- the proxy ---- */

typedef struct proxy {
	pid_t pid;
	int port;
	char log[512];
} proxy_t;

typedef struct logged {
	char method[16];
	char op[32];
	char target[512];
	char range[64];
	char if_match[128];
	char action[16];
} logged_t;

/* Starts the proxy with the fault arguments `fault` (NULL-terminated); 0 or -1. */
static int proxy_start(proxy_t *p, const char *const *fault)
{
	static int count;
	const char *argv[32] = { python, proxy_script, "--upstream", upstream, "--log", p->log,
		"--lifetime", PROXY_LIFETIME };
	struct pollfd pfd;
	char line[32] = "";
	size_t n = 8;
	ssize_t got;
	int fds[2];

	snprintf(p->log, sizeof(p->log), "%s/proxy-%d.log", tmpdir, ++count);
	for (size_t i = 0; fault && fault[i] && n < BOP_ARRAY_SIZE(argv) - 1; i++)
		argv[n++] = fault[i];
	argv[n] = NULL;
	p->pid = -1;
	p->port = 0;
	if (pipe(fds) < 0)
		return -1;
	p->pid = fork();
	if (p->pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execv(python, (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	pfd = (struct pollfd){ .fd = fds[0], .events = POLLIN };
	if (p->pid > 0 && poll(&pfd, 1, 15000) == 1 &&
			(got = read(fds[0], line, sizeof(line) - 1)) > 0) {
		line[got] = '\0';
		p->port = atoi(line);
	}
	close(fds[0]);
	if (p->port <= 0) {
		diag("the fault proxy did not start (%s %s)", python, proxy_script);
		return -1;
	}
	return 0;
}

static void proxy_stop(proxy_t *p)
{
	if (p->pid <= 0)
		return;
	kill(p->pid, SIGTERM);
	waitpid(p->pid, NULL, 0);
	p->pid = -1;
}

/* The requests the proxy saw, in order; the count. */
static int proxy_requests(const proxy_t *p, logged_t *out, int max)
{
	FILE *f = fopen(p->log, "r");
	char line[1024];
	int n = 0;

	if (!f)
		return 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		logged_t *l = &out[n];
		char *save = NULL, *field[7];
		int k = 0;

		line[strcspn(line, "\n")] = '\0';
		for (char *t = strtok_r(line, "\t", &save); t && k < 7; t = strtok_r(NULL, "\t", &save))
			field[k++] = t;
		if (k != 7)
			continue;       /* a "#" line: a connection that ended with an error */
		snprintf(l->method, sizeof(l->method), "%s", field[1]);
		snprintf(l->op, sizeof(l->op), "%s", field[2]);
		snprintf(l->target, sizeof(l->target), "%s", field[3]);
		snprintf(l->range, sizeof(l->range), "%s", field[4]);
		snprintf(l->if_match, sizeof(l->if_match), "%s", field[5]);
		snprintf(l->action, sizeof(l->action), "%s", field[6]);
		n++;
	}
	fclose(f);
	return n;
}

/* How many requests with this method or S3 operation the proxy saw. */
static int proxy_count(const proxy_t *p, const char *what)
{
	static logged_t reqs[MAX_LOGGED];
	int n = proxy_requests(p, reqs, MAX_LOGGED), c = 0;

	for (int i = 0; i < n; i++)
		if (!strcmp(reqs[i].method, what) || !strcmp(reqs[i].op, what))
			c++;
	return c;
}

/* ---- storage helpers ---- */

static bop_storage_t *open_url(const char *base, const char *options, const char *const *settings)
{
	bop_storage_options_t opts = BOP_STORAGE_OPTIONS_INIT;
	bop_storage_t *st = NULL;
	char *url = bop__sprintf("s3://%s/%s?endpoint=%s&path_style=true%s%s", bucket, prefix, base,
		options ? "&" : "", options ? options : "");

	opts.settings = settings;
	if (!url || bop_storage_open(&st, url, &opts) < 0)
		diag("cannot open %s: %s", url ? url : "(no memory)", bop_error_last());
	free(url);
	return st;
}

static bop_storage_t *open_proxied(const proxy_t *p, const char *options,
	const char *const *settings)
{
	char base[64];

	snprintf(base, sizeof(base), "http://127.0.0.1:%d", p->port);
	return open_url(base, options, settings);
}

static int put_bytes(bop_storage_t *st, const char *key, const unsigned char *buf, size_t len)
{
	bop_sink_t *sink = NULL;
	size_t off = 0, n;
	int ret;

	if ((ret = bop_storage_put(st, &sink, key, NULL)) < 0)
		return ret;
	while (off < len && ret == 0) {
		n = len - off < 1000003 ? len - off : 1000003;
		ret = bop_sink_write(sink, buf + off, n);
		off += n;
	}
	if (ret == 0)
		ret = bop_sink_commit(sink);
	bop_sink_free(sink);
	return ret;
}

/* Reads from `offset` to the end into a malloc'd buffer. */
static int get_bytes(bop_storage_t *st, const char *key, uint64_t offset, unsigned char **out,
	size_t *len)
{
	bop_source_t *src = NULL;
	size_t cap = MIB, n = 0, got = 0;
	unsigned char *buf = malloc(cap), *grown;
	int ret;

	*out = NULL;
	*len = 0;
	if (!buf)
		return BOP_ENOMEM;
	if ((ret = bop_storage_get(st, &src, key, offset)) < 0) {
		free(buf);
		return ret;
	}
	for (;;) {
		if (n == cap) {
			if (!(grown = realloc(buf, cap * 2))) {
				ret = BOP_ENOMEM;
				break;
			}
			buf = grown;
			cap *= 2;
		}
		ret = bop_source_read(src, buf + n, cap - n < 300007 ? cap - n : 300007, &got);
		if (ret < 0 || got == 0)
			break;
		n += got;
	}
	if (ret == 0)
		ret = bop_source_close(src);
	bop_source_free(src);
	*out = buf;
	*len = n;
	return ret;
}

static bool same_object(bop_storage_t *st, const char *key, const unsigned char *want, size_t len)
{
	unsigned char *back = NULL;
	size_t blen = 0;
	int ret = get_bytes(st, key, 0, &back, &blen);
	bool same = ret == 0 && blen == len && memcmp(back, want, len) == 0;

	if (ret < 0)
		diag("%s", bop_error_last());
	free(back);
	return same;
}

static double seconds_since(int64_t start_ms)
{
	return (double)(bop__now_ms() - start_ms) / 1000.0;
}

/* The backend announced `want` retries (a WARN line each), every sleep below its cap of
 * base × 2^(try - 2), and did sleep them: the time taken covers them. */
static void check_announced(const char *name, double elapsed, int want)
{
	ok(retries == want && over_cap == 0 && elapsed + 0.05 * retries >= retry_sleep,
		"%s: %d retries announced, each sleep within its exponential cap, %.2f s slept of %.2f s",
		name, retries, retry_sleep, elapsed);
}

/* ---- (a) a read that loses its connection ---- */

/* Reads the big object from `offset` through a proxy that cuts GETs; checks the bytes and
 * the Range of every GET. `cut_args` are the proxy's fault arguments. */
static void read_cut(const char *name, uint64_t offset, const char *const *cut_args,
	int cuts, bool exact)
{
	static logged_t reqs[MAX_LOGGED];
	proxy_t p;
	bop_storage_t *st = NULL;
	unsigned char *back = NULL;
	size_t blen = 0;
	char want[64];
	unsigned long long start, prev = 0;
	int ret, n, gets = 0;
	bool ranges_ok = true, etag_ok = true;
	const char *first_etag = NULL;

	if (proxy_start(&p, cut_args) < 0 || !(st = open_proxied(&p, NULL, NULL))) {
		skip(4, "no proxy");
		goto out;
	}
	reset_retries();
	ret = get_bytes(st, "big", offset, &back, &blen);
	ok(ret == 0 && blen == BIG_SIZE - offset && memcmp(back, data + offset, blen) == 0,
		"%s: the bytes read are the object's (%zu bytes)", name, blen);
	if (ret < 0)
		diag("%s", bop_error_last());
	n = proxy_requests(&p, reqs, MAX_LOGGED);
	for (int i = 0; i < n; i++) {
		if (strcmp(reqs[i].op, "GetObject") != 0)
			continue;
		if (sscanf(reqs[i].range, "bytes=%llu-", &start) != 1)
			start = ~0ULL;
		if (gets == 0)
			snprintf(want, sizeof(want), "bytes=%llu-", (unsigned long long)offset);
		else
			snprintf(want, sizeof(want), "bytes=%llu-",
				(unsigned long long)(offset + (uint64_t)gets * CUT));
		if (exact && strcmp(reqs[i].range, want) != 0)
			ranges_ok = false;
		if (!exact && (gets ? start <= prev || start > prev + CUT : start != offset))
			ranges_ok = false;
		if (exact && strcmp(reqs[i].range, want) != 0)
			diag("GET %d: Range %s, want %s", gets + 1, reqs[i].range, want);
		if (!exact && gets)
			diag("GET %d: Range %s (the reset came after %d bytes of the previous GET; the rest was lost in flight)",
				gets + 1, reqs[i].range, CUT);
		if (!first_etag)
			first_etag = reqs[i].if_match;
		if (!strcmp(reqs[i].if_match, "-") || strcmp(reqs[i].if_match, first_etag) != 0)
			etag_ok = false;
		prev = start;
		gets++;
	}
	is_int(gets, cuts + 1, exact ? "the proxy saw one GET per cut plus one"
		: "the proxy saw one GET per reset plus one");
	ok(ranges_ok, exact ? "each resumed GET asks for Range: bytes=<last byte received + 1>-"
		: "each resumed GET starts after the previous one, at most where the reset was");
	ok(etag_ok, "every GET carries If-Match with the object's ETag");
out:
	free(back);
	bop_storage_free(st);
	proxy_stop(&p);
}

/* The object is replaced between the cut and the resume: the resumed GET must not splice
 * the new object onto the old one. */
static void read_replaced(void)
{
	const char *cut[] = { "--fault", "cut", "--match", "GetObject", "--bytes", "6291456", NULL };
	proxy_t p;
	bop_storage_t *st = NULL;
	bop_source_t *src = NULL;
	unsigned char *buf = malloc(MIB), *other = malloc(BIG_SIZE);
	size_t got = 0, total = 0;
	int ret;

	if (!buf || !other || proxy_start(&p, cut) < 0 || !(st = open_proxied(&p, NULL, NULL))) {
		skip(2, "no proxy");
		goto out;
	}
	ret = put_bytes(direct, "replaced", data, BIG_SIZE);
	if (ret == 0)
		ret = bop_storage_get(st, &src, "replaced", 0);
	if (ret == 0)
		ret = bop_source_read(src, buf, MIB, &got);
	total = got;
	memcpy(other, data, BIG_SIZE);
	other[0] ^= 0xff;
	other[BIG_SIZE - 1] ^= 0xff;
	if (ret == 0)
		ret = put_bytes(direct, "replaced", other, BIG_SIZE);
	if (!ok(ret == 0 && total > 0, "read 1 MiB, then replaced the object meanwhile")) {
		diag("%s", bop_error_last());
		skip(1, "no object");
		goto out;
	}
	while ((ret = bop_source_read(src, buf, MIB, &got)) == 0 && got > 0)
		total += got;
	ok(ret == BOP_EIO && strstr(bop_error_last(), "changed") && total < BIG_SIZE,
		"the resumed read fails (the object changed) instead of mixing two objects: %s (after %zu bytes)",
		ret ? bop_error_last() : "no error", total);
out:
	bop_source_free(src);
	bop_storage_remove(direct, "replaced");
	bop_storage_free(st);
	proxy_stop(&p);
	free(buf);
	free(other);
}

/* The HEAD before the read is retried like any request; a GET that keeps failing without
 * progress gives up after the bounded tries. */
static void read_refused(void)
{
	const char *head2[] = { "--fault", "status", "--status", "503", "--match", "HEAD",
		"--times", "2", NULL };
	const char *get_all[] = { "--fault", "status", "--status", "503", "--match", "GetObject",
		"--times", "100", NULL };
	proxy_t p;
	bop_storage_t *st = NULL;
	unsigned char *back = NULL;
	size_t blen = 0;
	char tries[32];
	int64_t t0;
	int ret;

	if (proxy_start(&p, head2) < 0 || !(st = open_proxied(&p, NULL, NULL))) {
		skip(2, "no proxy");
	} else {
		ok(same_object(st, "big", data, BIG_SIZE), "HEAD answered 503 twice: retried, same bytes");
		is_int(proxy_count(&p, "HEAD"), 3, "three HEADs");
	}
	bop_storage_free(st);
	proxy_stop(&p);
	st = NULL;
	if (proxy_start(&p, get_all) < 0 || !(st = open_proxied(&p, NULL, NULL))) {
		skip(3, "no proxy");
		goto out;
	}
	snprintf(tries, sizeof(tries), "gave up after %d tries", MAX_TRIES);
	reset_retries();
	fast_retries(st);
	t0 = bop__now_ms();
	ret = get_bytes(st, "big", 0, &back, &blen);
	ok(ret == BOP_EIO && strstr(bop_error_last(), "HTTP 503") && strstr(bop_error_last(), tries) &&
		blen == 0, "GET answered 503 every time: BOP_EIO after %d tries: %s", MAX_TRIES,
		bop_error_last());
	ok(proxy_count(&p, "GetObject") == MAX_TRIES && seconds_since(t0) < MAX_SLEEP_S / 4 + 3.0,
		"%d GETs seen by the proxy, in bounded time (%.2f s)", proxy_count(&p, "GetObject"),
		seconds_since(t0));
	check_announced("GET 503 always", seconds_since(t0), MAX_TRIES - 1);
out:
	free(back);
	bop_storage_free(st);
	proxy_stop(&p);
}

static void test_resume(void)
{
	const char *once[] = { "--fault", "cut", "--match", "GetObject", "--bytes", "5255225", NULL };
	const char *thrice[] = { "--fault", "cut", "--match", "GetObject", "--bytes", "5255225",
		"--times", "3", NULL };
	const char *rst[] = { "--fault", "cut", "--match", "GetObject", "--bytes", "5255225",
		"--rst", NULL };
	const char *first[] = { "--fault", "reset", "--match", "GetObject", NULL };
	proxy_t p;
	bop_storage_t *st = NULL;
	int ret;

	ret = put_bytes(direct, "big", data, BIG_SIZE);
	if (!ok(ret == 0, "a %d-byte object stored directly", BIG_SIZE)) {
		diag("%s", bop_error_last());
		skip(24, "no object");
		return;
	}
	read_cut("cut once", 0, once, 1, true);
	read_cut("cut once, reading from byte 3 MiB + 1", 3 * MIB + 1, once, 1, true);
	read_cut("cut three times", 0, thrice, 3, true);
	read_cut("reset mid-body", 0, rst, 1, false);

	/* A reset before any byte of the body: retried from the start. */
	if (proxy_start(&p, first) < 0 || !(st = open_proxied(&p, NULL, NULL))) {
		skip(2, "no proxy");
	} else {
		ok(same_object(st, "big", data, BIG_SIZE), "GET reset before the answer: retried, same bytes");
		is_int(proxy_count(&p, "GetObject"), 2, "two GETs");
	}
	bop_storage_free(st);
	proxy_stop(&p);
	read_replaced();
	read_refused();
}

/* ---- (b)-(d) writes refused, reset or stalled ---- */

/* A small put through a proxy with `fault`; the number of PUTs it saw. */
static int put_through(const char *const *fault, const char *options, const char *key,
	bool fast, int *ret, double *elapsed)
{
	proxy_t p;
	bop_storage_t *st = NULL;
	int64_t t0;
	int n = -1;

	*ret = BOP_ERROR;
	*elapsed = 0;
	if (proxy_start(&p, fault) < 0 || !(st = open_proxied(&p, options, NULL)))
		goto out;
	reset_retries();
	if (fast)
		fast_retries(st);
	t0 = bop__now_ms();
	*ret = put_bytes(st, key, data, 1000);
	*elapsed = seconds_since(t0);
	n = proxy_count(&p, "PUT");
out:
	bop_storage_free(st);
	proxy_stop(&p);
	return n;
}

static void retried_then_stored(const char *name, const char *const *fault, const char *options,
	int puts)
{
	double elapsed;
	int ret, n;
	char key[64];

	snprintf(key, sizeof(key), "small/%s", name);
	n = put_through(fault, options, key, false, &ret, &elapsed);
	if (!ok(ret == 0, "%s: the put succeeds", name))
		diag("%s", bop_error_last());
	is_int(n, puts, "PUT attempts seen by the proxy");
	check_announced(name, elapsed, puts - 1);
	ok(same_object(direct, key, data, 1000), "%s: stored as written", name);
	bop_storage_remove(direct, key);
}

static void retried_then_failed(const char *name, const char *const *fault, const char *code,
	bool fast)
{
	bop_storage_stat_t info = { BOP_STORAGE_STAT_VERSION, 0, 0 };
	const char *msg;
	double elapsed;
	char key[64], tries[32];
	int ret, n;

	snprintf(key, sizeof(key), "small/%s", name);
	snprintf(tries, sizeof(tries), "gave up after %d tries", MAX_TRIES);
	n = put_through(fault, NULL, key, fast, &ret, &elapsed);
	msg = bop_error_last();
	ok(ret == BOP_EIO && strstr(msg, code) && strstr(msg, tries),
		"%s: BOP_EIO naming %s and the tries: %s", name, code, msg);
	is_int(n, MAX_TRIES, "PUT attempts seen by the proxy: the retry bound");
	check_announced(name, elapsed, MAX_TRIES - 1);
	/* The sleeps are full jitter, so no lower bound is certain: below 0.2 s for five of
	 * them (with the default 200 ms base) happens about once in 100000 runs. */
	if (fast)
		ok(elapsed < MAX_SLEEP_S / 4 + 3.0, "%s: it gave up in bounded time (%.2f s, bound %.2f s of sleep)",
			name, elapsed, MAX_SLEEP_S / 4);
	else
		ok(elapsed > 0.2 && elapsed < MAX_SLEEP_S + 3.0, "%s: it backed off and gave up in bounded time (%.2f s, bound %.1f s of sleep)",
			name, elapsed, MAX_SLEEP_S);
	is_int(bop_storage_stat(direct, &info, key), BOP_ENOTFOUND, "nothing stored");
}

static void test_time_budget(void)
{
	const char *always[] = { "--fault", "status", "--status", "503", "--match", "PUT",
		"--times", "1000000", NULL };
	proxy_t p;
	bop_storage_t *st = NULL;
	s3_storage_t *s3;
	int64_t t0;
	double elapsed;
	int ret;

	if (proxy_start(&p, always) < 0 || !(st = open_proxied(&p, NULL, NULL))) {
		skip(2, "no proxy");
		goto out;
	}
	s3 = (s3_storage_t *)st;
	s3->max_tries = 1000;
	s3->retry_base_ms = 50;
	s3->retry_max_ms = 1500;
	t0 = bop__now_ms();
	ret = put_bytes(st, "small/budget", data, 1000);
	elapsed = seconds_since(t0);
	ok(ret == BOP_EIO && strstr(bop_error_last(), "gave up after"),
		"503 forever with 1000 tries allowed: gives up when the time budget is spent: %s",
		bop_error_last());
	ok(elapsed < 1.5 + 1.0 && proxy_count(&p, "PUT") > 2,
		"within the 1.5 s retry budget (%.2f s, %d tries)", elapsed, proxy_count(&p, "PUT"));
out:
	bop_storage_free(st);
	proxy_stop(&p);
}

static void test_retries(void)
{
	const char *slow2[] = { "--fault", "status", "--status", "503", "--match", "PUT",
		"--times", "2", NULL };
	const char *slow_all[] = { "--fault", "status", "--status", "503", "--match", "PUT",
		"--times", "100", NULL };
	const char *internal2[] = { "--fault", "status", "--status", "500", "--match", "PUT",
		"--times", "2", NULL };
	const char *many2[] = { "--fault", "status", "--status", "429", "--match", "PUT",
		"--times", "2", NULL };
	const char *many_all[] = { "--fault", "status", "--status", "429", "--match", "PUT",
		"--times", "100", NULL };
	const char *reset1[] = { "--fault", "reset", "--match", "PUT", NULL };
	const char *stall1[] = { "--fault", "stall", "--seconds", "6", "--match", "PUT", NULL };

	retried_then_stored("503-slowdown", slow2, NULL, 3);
	retried_then_failed("503-slowdown-always", slow_all, "HTTP 503 SlowDown", false);
	retried_then_stored("500-internal", internal2, NULL, 3);
	retried_then_stored("429", many2, NULL, 3);
	retried_then_failed("429-always", many_all, "HTTP 429", true);
	retried_then_stored("reset", reset1, NULL, 2);
	retried_then_stored("stall-timeout", stall1, "timeout=2", 2);
	test_time_budget();
}

/* ---- never retried ---- */

static void test_not_retried(void)
{
	const char *wrong_secret[] = { "access_key_id", getenv("AWS_ACCESS_KEY_ID"),
		"secret_access_key", "definitely-the-wrong-secret", NULL };
	const char *unknown_key[] = { "access_key_id", "AKIANOSUCHKEY0000000",
		"secret_access_key", "whatever-secret", NULL };
	bop_storage_stat_t info = { BOP_STORAGE_STAT_VERSION, 0, 0 };
	proxy_t p;
	bop_storage_t *st = NULL;
	int ret;

	if (proxy_start(&p, NULL) < 0 || !(st = open_proxied(&p, NULL, wrong_secret))) {
		skip(6, "no proxy");
		goto out;
	}
	reset_retries();
	ret = put_bytes(st, "small/denied", data, 1000);
	ok(ret == BOP_EAUTH && strstr(bop_error_last(), "SignatureDoesNotMatch"),
		"wrong secret → BOP_EAUTH: %s", bop_error_last());
	is_int(proxy_count(&p, "PUT"), 1, "exactly one PUT: a 403 is not retried");
	ret = bop_storage_stat(st, &info, "small/denied");
	is_int(ret, BOP_EAUTH, "a HEAD with the wrong secret → BOP_EAUTH");
	is_int(proxy_count(&p, "HEAD"), 1, "exactly one HEAD");
	bop_storage_free(st);
	st = open_proxied(&p, NULL, unknown_key);
	ret = st ? put_bytes(st, "small/denied", data, 1000) : BOP_ERROR;
	ok(ret == BOP_EAUTH && strstr(bop_error_last(), "InvalidAccessKeyId"),
		"unknown key id → BOP_EAUTH: %s", bop_error_last());
	is_int(proxy_count(&p, "PUT"), 2, "again one PUT only");
	is_int(retries, 0, "no retry announced");
	bop_storage_free(st);
	st = open_proxied(&p, NULL, NULL);
	ret = st ? bop_storage_stat(st, &info, "small/missing") : BOP_ERROR;
	is_int(ret, BOP_ENOTFOUND, "a missing key → BOP_ENOTFOUND");
	is_int(proxy_count(&p, "HEAD"), 2, "after one HEAD: a 404 is not retried");
out:
	bop_storage_free(st);
	proxy_stop(&p);
}

/* ---- multipart ---- */

static int count_upload(const char *key, const bop_storage_stat_t *info, void *payload)
{
	BOP_UNUSED(key);
	BOP_UNUSED(info);
	(*(int *)payload)++;
	return 0;
}

static void test_multipart(void)
{
	const char *second_part[] = { "--fault", "status", "--status", "503", "--match",
		"UploadPart", "--after", "1", NULL };
	static logged_t reqs[MAX_LOGGED];
	proxy_t p;
	bop_storage_t *st = NULL;
	const char *faulted = NULL, *q;
	int ret, n, seen = 0, open_uploads = -1;

	if (proxy_start(&p, second_part) < 0 ||
			!(st = open_proxied(&p, "part_size=5MiB&concurrency=2", NULL))) {
		skip(4, "no proxy");
		goto out;
	}
	reset_retries();
	ret = put_bytes(st, "multi", data, MULTI_SIZE);
	if (!ok(ret == 0, "a %d-byte multipart upload with 503 on the 2nd UploadPart completes",
			MULTI_SIZE))
		diag("%s", bop_error_last());
	n = proxy_requests(&p, reqs, MAX_LOGGED);
	for (int i = 0; i < n; i++)
		if (!strcmp(reqs[i].action, "status"))
			faulted = reqs[i].target;
	for (int i = 0; faulted && i < n; i++)
		if (!strcmp(reqs[i].target, faulted))
			seen++;
	q = faulted ? strstr(faulted, "partNumber=") : NULL;
	ok(seen == 2 && proxy_count(&p, "UploadPart") == 5 && retries == 1,
		"the refused part (number %d) was sent again: 4 parts, 5 UploadPart requests (%d)",
		q ? atoi(q + 11) : 0, proxy_count(&p, "UploadPart"));
	ok(same_object(direct, "multi", data, MULTI_SIZE), "read back directly: identical");
	open_uploads = 0;
	ret = bop_storage_cleanup(direct, "", 0, 1, count_upload, &open_uploads);
	ok(ret == 0 && open_uploads == 0, "no multipart upload left behind (%d)", open_uploads);
out:
	bop_storage_remove(direct, "multi");
	bop_storage_free(st);
	proxy_stop(&p);
}

/* The server completes the upload but the answer is lost: the retried
 * CompleteMultipartUpload finds no upload any more, yet the object is there. */
static void test_complete_lost(void)
{
	const char *drop[] = { "--fault", "drop", "--match", "CompleteMultipartUpload", NULL };
	proxy_t p;
	bop_storage_t *st = NULL;
	int ret;

	if (proxy_start(&p, drop) < 0 ||
			!(st = open_proxied(&p, "part_size=5MiB&concurrency=2", NULL))) {
		skip(3, "no proxy");
		goto out;
	}
	ret = put_bytes(st, "completed", data, 11 * MIB);
	if (!ok(ret == 0, "multipart upload whose CompleteMultipartUpload answer is lost: stored"))
		diag("%s", bop_error_last());
	is_int(proxy_count(&p, "CompleteMultipartUpload"), 2, "CompleteMultipartUpload sent twice");
	ok(same_object(direct, "completed", data, 11 * MIB), "read back directly: identical");
out:
	bop_storage_remove(direct, "completed");
	bop_storage_free(st);
	proxy_stop(&p);
}

/* An exclusive put whose answer is lost: the retry finds the object it created itself. */
static int put_exclusive(bop_storage_t *st, const char *key, const unsigned char *buf, size_t len)
{
	bop_put_options_t opts = BOP_PUT_OPTIONS_INIT;
	bop_sink_t *sink = NULL;
	int ret;

	opts.exclusive = 1;
	ret = bop_storage_put(st, &sink, key, &opts);
	if (ret == 0)
		ret = bop_sink_write(sink, buf, len);
	if (ret == 0)
		ret = bop_sink_commit(sink);
	bop_sink_free(sink);
	return ret;
}

/* An exclusive put (If-None-Match: *) whose first try is carried out but its answer lost
 * (`lost` faults): the retry is refused because the object exists, and the backend must
 * see that it is its own. When the first try never reached the server (`refused` faults),
 * a refusal is a real conflict and stays BOP_EEXISTS. */
static void exclusive_retried(const char *op, const char *lost, const char *refused, size_t len)
{
	const char *lost_args[] = { "--fault", lost, "--status", "412", "--match", op, NULL };
	const char *refused_args[] = { "--fault", refused, "--status", "412", "--match", op, NULL };
	bop_storage_stat_t info = { BOP_STORAGE_STAT_VERSION, 0, 0 };
	const char *options = "part_size=5MiB&concurrency=2";
	proxy_t p;
	bop_storage_t *st = NULL;
	int ret, n = 0;

	if (proxy_start(&p, lost_args) < 0 || !(st = open_proxied(&p, options, NULL))) {
		skip(7, "no proxy");
		goto out;
	}
	recovered = 0;
	ret = put_exclusive(st, "exclusive", data, len);
	if (!ok(ret == 0, "exclusive put (%s answer lost, then refused): stored, not BOP_EEXISTS", op))
		diag("%s", bop_error_last());
	ok(proxy_count(&p, op) == 2 && recovered == 1,
		"sent twice; the backend found the object was its own (%d)", proxy_count(&p, op));
	ok(same_object(direct, "exclusive", data, len), "read back directly: identical");
	ret = put_exclusive(direct, "exclusive", data + 1, 1000);
	ok(ret == BOP_EEXISTS, "another exclusive put there → BOP_EEXISTS: %s", bop_error_last());
	bop_storage_free(st);
	proxy_stop(&p);

	st = NULL;
	if (proxy_start(&p, refused_args) < 0 || !(st = open_proxied(&p, options, NULL))) {
		skip(3, "no proxy");
		goto out;
	}
	recovered = 0;
	ret = put_exclusive(st, "exclusive-2", data, len);
	ok(ret == BOP_EEXISTS && strstr(bop_error_last(), "already exists") && recovered == 0,
		"first try lost before the server, the retry refused: BOP_EEXISTS: %s", bop_error_last());
	is_int(bop_storage_stat(direct, &info, "exclusive-2"), BOP_ENOTFOUND, "nothing stored");
	ret = bop_storage_cleanup(direct, "", 0, 1, count_upload, &n);
	ok(ret == 0 && n == 0, "no multipart upload left behind (%d)", n);
out:
	bop_storage_remove(direct, "exclusive");
	bop_storage_free(st);
	proxy_stop(&p);
}

static void test_exclusive_retried(void)
{
	/* radosgw refuses the retried PUT itself; it does not check If-None-Match on
	 * CompleteMultipartUpload (Ceph 16), so the proxy answers that retry as S3 does. */
	exclusive_retried("PutObject", "drop", "reset,status", 1000);
	exclusive_retried("CompleteMultipartUpload", "drop,status", "reset,status", 11 * MIB);
}

/* ---- main ---- */

static int remove_all(const char *key, const bop_storage_stat_t *info, void *payload)
{
	BOP_UNUSED(info);
	bop_storage_remove(payload, key);
	return 0;
}

static void remove_tmpdir(void)
{
	char path[600];

	for (int i = 1; i < 100; i++) {
		snprintf(path, sizeof(path), "%s/proxy-%d.log", tmpdir, i);
		unlink(path);
	}
	rmdir(tmpdir);
}

int main(int argc, char **argv)
{
	const char *host;

	endpoint = getenv("BOP_TEST_S3_ENDPOINT");
	bucket = getenv("BOP_TEST_S3_BUCKET");
	if (!endpoint || !*endpoint)
		skip_all("no S3 server (start one with tests/env/s3-local.sh or run tests/run)");
	if (argc < 3 || !*argv[1])
		skip_all("python3 is not installed (the fault proxy is a Python script)");
	if (strncmp(endpoint, "http://", 7) != 0)
		skip_all("the fault proxy speaks plain HTTP only; BOP_TEST_S3_ENDPOINT is %s", endpoint);
	python = argv[1];
	proxy_script = argv[2];
	if (!bucket || !*bucket)
		bucket = "test";
	host = endpoint + 7;
	snprintf(upstream, sizeof(upstream), "%.*s", (int)strcspn(host, "/"), host);
	if (!mkdtemp(tmpdir))
		skip_all("cannot create a temporary directory");
	signal(SIGPIPE, SIG_IGN);
	bop_log_set_level(BOP_LOG_INFO);
	bop_log_set_callback(on_log, NULL);
	snprintf(prefix, sizeof(prefix), "bop-s3-faults-%d-%lld", (int)getpid(), (long long)bop__now());
	data = malloc(BIG_SIZE);
	if (!data || RAND_bytes(data, BIG_SIZE) != 1)
		skip_all("out of memory");
	direct = open_url(endpoint, NULL, NULL);
	if (!direct)
		skip_all("cannot open the S3 storage: %s", bop_error_last());
	test_resume();
	test_retries();
	test_not_retried();
	test_multipart();
	test_complete_lost();
	test_exclusive_retried();
	bop_storage_list(direct, "", remove_all, direct);
	bop_storage_cleanup(direct, "", 0, 0, NULL, NULL);
	bop_storage_free(direct);
	bop_log_set_callback(NULL, NULL);
	remove_tmpdir();
	free(data);
	return done_testing();
}
