/*
 * The HTTP server: routes and path parameters, 404/405/400, bearer authentication (401
 * without or with a wrong token, public routes), the body limit (413), a 50 MiB upload
 * streamed to a sink and a 50 MiB download streamed from a source with equal SHA-256,
 * concurrent requests, /metrics in the Prometheus text format, a stop while a
 * download is in flight, a chunked body past the limit (413 at once), /healthz
 * answering while 70 slow clients hold connections open (slowloris), and the same
 * request cycle without a connection (bop__http_server_dispatch, for the fuzz target).
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/http.h"
#include "internal.h"
#include "tap.h"

#define TOKEN "s3cr3t-token-value"
#define BIG (50u * 1024 * 1024)

static int port;

/* ---- deterministic data ---- */

static void fill(unsigned char *buf, size_t len, uint64_t offset)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t x = offset + i;

		buf[i] = (unsigned char)((x * 2654435761u) >> 11);
	}
}

typedef struct hasher {
	EVP_MD_CTX *ctx;
	uint64_t bytes;
} hasher_t;

static void hasher_init(hasher_t *h)
{
	h->ctx = EVP_MD_CTX_new();
	h->bytes = 0;
	EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL);
}

static void hasher_update(hasher_t *h, const void *p, size_t n)
{
	EVP_DigestUpdate(h->ctx, p, n);
	h->bytes += n;
}

static void hasher_final(hasher_t *h, char hex[65])
{
	unsigned char md[32];
	unsigned int n = 32;

	EVP_DigestFinal_ex(h->ctx, md, &n);
	EVP_MD_CTX_free(h->ctx);
	bop__hex(hex, md, 32);
}

static void expected_hash(size_t len, char hex[65])
{
	unsigned char buf[65536];
	hasher_t h;

	hasher_init(&h);
	for (size_t off = 0; off < len; off += sizeof(buf)) {
		size_t n = len - off < sizeof(buf) ? len - off : sizeof(buf);

		fill(buf, n, off);
		hasher_update(&h, buf, n);
	}
	hasher_final(&h, hex);
}

/* ---- the client ---- */

typedef struct response {
	long status;
	char *body;
	size_t len;
	char headers[4096];
	hasher_t *hash;         /* hash the body instead of keeping it */
	size_t limit_bytes;     /* signal once this many arrived */
	atomic_bool *reached;
} response_t;

static size_t on_body(char *p, size_t size, size_t n, void *payload)
{
	response_t *r = payload;
	size_t len = size * n;

	if (r->hash) {
		hasher_update(r->hash, p, len);
	} else {
		r->body = realloc(r->body, r->len + len + 1);
		memcpy(r->body + r->len, p, len);
		r->body[r->len + len] = '\0';
	}
	r->len += len;
	if (r->reached && r->len >= r->limit_bytes)
		atomic_store(r->reached, true);
	return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *payload)
{
	response_t *r = payload;
	size_t have = strlen(r->headers), len = size * n;

	if (have + len < sizeof(r->headers)) {
		memcpy(r->headers + have, p, len);
		r->headers[have + len] = '\0';
	}
	return len;
}

typedef struct upload {
	uint64_t size, pos;
	hasher_t hash;
} upload_t;

static size_t on_upload(char *buf, size_t size, size_t n, void *payload)
{
	upload_t *u = payload;
	size_t len = size * n;

	if (len > u->size - u->pos)
		len = (size_t)(u->size - u->pos);
	fill((unsigned char *)buf, len, u->pos);
	hasher_update(&u->hash, buf, len);
	u->pos += len;
	return len;
}

/* Performs a request; `body` NULL for none. Returns the curl code. */
static CURLcode request(const char *method, const char *path, const char *token, const char *body,
	size_t len, upload_t *up, response_t *r)
{
	char url[1024], auth[256];
	struct curl_slist *hdrs = NULL;
	CURL *c = curl_easy_init();
	CURLcode code;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (!strcmp(method, "HEAD"))
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		hdrs = curl_slist_append(hdrs, auth);
	}
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	if (up) {
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, on_upload);
		curl_easy_setopt(c, CURLOPT_READDATA, up);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)up->size);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	code = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return code;
}

static long get(const char *path, const char *token, response_t *r)
{
	memset(r, 0, sizeof(*r));
	request("GET", path, token, NULL, 0, NULL, r);
	return r->status;
}

/* ---- handlers ---- */

static int h_run(bop_http_request_t *req, void *payload)
{
	char text[512];
	const char *x = bop_http_request_query(req, "x"), *ua = bop_http_request_header(req, "x-test");

	BOP_UNUSED(payload);
	snprintf(text, sizeof(text), "id=%s x=%s hdr=%s", bop_http_request_param(req, "id"),
		x ? x : "(none)", ua ? ua : "(none)");
	bop_http_response_header(req, "X-Run", "yes");
	return bop_http_respond(req, 200, "text/plain", text, strlen(text));
}

static int h_files(bop_http_request_t *req, void *payload)
{
	const char *p = bop_http_request_param(req, "path");

	BOP_UNUSED(payload);
	return bop_http_respond(req, 200, "text/plain", p, strlen(p));
}

static int h_echo(bop_http_request_t *req, void *payload)
{
	size_t len;
	const void *body = bop_http_request_body(req, &len);

	BOP_UNUSED(payload);
	return bop_http_respond(req, 200, "application/octet-stream", body, len);
}

static int h_health(bop_http_request_t *req, void *payload)
{
	BOP_UNUSED(payload);
	return bop_http_respond(req, 200, "text/plain", "ok\n", 3);
}

/* Upload: the body goes to a sink hashing it. */
typedef struct upload_state {
	hasher_t hash;
	bool committed;
} upload_state_t;

static int sink_hash(const void *buf, size_t len, void *payload)
{
	hasher_update(&((upload_state_t *)payload)->hash, buf, len);
	return 0;
}

static int upload_done(bop_http_request_t *req, int result, void *payload)
{
	upload_state_t *u = payload;
	char hex[65];

	hasher_final(&u->hash, hex);
	if (result < 0) {
		free(u);
		return bop_http_respond_error(req, 500, bop_error_last());
	}
	free(u);
	return bop_http_respond(req, 201, "text/plain", hex, 64);
}

static int h_upload(bop_http_request_t *req, void *payload)
{
	upload_state_t *u = calloc(1, sizeof(*u));
	bop_sink_t *sink = NULL;

	BOP_UNUSED(payload);
	if (bop_http_request_header(req, "x-refuse")) {
		free(u);
		return bop_http_respond_error(req, 403, "refused before the body");
	}
	hasher_init(&u->hash);
	if (bop_sink_callback_new(&sink, sink_hash, u) < 0) {
		free(u);
		return bop_http_respond_error(req, 500, bop_error_last());
	}
	return bop_http_request_stream_body(req, sink, upload_done, u);
}

/* Download: a source generating `size` bytes, slowly when `pause_us`. */
typedef struct gen {
	uint64_t size, pos;
	long pause_us;
} gen_t;

static int gen_read(void *buf, size_t cap, size_t *got, void *payload)
{
	gen_t *g = payload;
	size_t n = cap;

	if (g->pause_us)
		usleep((useconds_t)g->pause_us);
	if (n > g->size - g->pos)
		n = (size_t)(g->size - g->pos);
	fill(buf, n, g->pos);
	g->pos += n;
	*got = n;
	return 0;
}

static atomic_int sources_freed;

typedef struct gen_source {
	bop_source_t base;
	bop_source_t *inner;
	gen_t gen;
} gen_source_t;

static int gs_read(bop_source_t *b, void *buf, size_t cap, size_t *got)
{
	return bop_source_read(((gen_source_t *)b)->inner, buf, cap, got);
}

static void gs_free(bop_source_t *b)
{
	gen_source_t *g = (gen_source_t *)b;

	bop_source_free(g->inner);
	free(g);
	atomic_fetch_add(&sources_freed, 1);
}

static bop_source_t *gen_source(uint64_t size, long pause_us)
{
	gen_source_t *g = calloc(1, sizeof(*g));

	g->base = (bop_source_t)BOP_SOURCE_INIT(.read = gs_read, .free = gs_free);
	g->gen.size = size;
	g->gen.pause_us = pause_us;
	bop_source_callback_new(&g->inner, gen_read, &g->gen);
	return &g->base;
}

static int h_download(bop_http_request_t *req, void *payload)
{
	const char *chunked = bop_http_request_query(req, "chunked");

	BOP_UNUSED(payload);
	return bop_http_respond_source(req, 200, "application/octet-stream", gen_source(BIG, 0),
		chunked ? -1 : (int64_t)BIG);
}

static int h_slow(bop_http_request_t *req, void *payload)
{
	BOP_UNUSED(payload);
	return bop_http_respond_source(req, 200, "application/octet-stream",
		gen_source(UINT64_MAX / 2, 20000), -1);
}

static int h_silent(bop_http_request_t *req, void *payload)
{
	BOP_UNUSED(req);
	BOP_UNUSED(payload);
	return 0;
}

/* ---- tests ---- */

static void test_addresses(void)
{
	bop_http_server_options_t o;
	bop_http_server_t *s = NULL, *s2 = NULL;
	char addr[64];
	int ret;

	bop_http_server_options_init(&o, BOP_HTTP_SERVER_OPTIONS_VERSION);
	o.listen = "nonsense";
	ok(bop_http_server_new(&s, &o) == BOP_EINVAL && strstr(bop_error_last(), "nonsense"),
		"a bad address is refused: %s", bop_error_last());
	o.listen = "127.0.0.1:99999";
	ok(bop_http_server_new(&s, &o) == BOP_EINVAL, "a port above 65535 is refused");
	o.listen = "127.0.0.1:0";
	ret = bop_http_server_new(&s, &o);
	ok(ret == 0 && bop_http_server_port(s) > 0, "port 0 picks a port: %d", bop_http_server_port(s));
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", bop_http_server_port(s));
	o.listen = addr;
	ret = bop_http_server_new(&s2, &o);
	ok(ret == BOP_EIO && strstr(bop_error_last(), "in use"), "a port in use is reported: %s", bop_error_last());
	bop_http_server_free(s);
	o.listen = "[::1]:0";
	ret = bop_http_server_new(&s, &o);
	if (ret == 0)
		ok(bop_http_server_port(s) > 0, "[::1]:0 listens on IPv6");
	else
		skip(1, "no IPv6 here: %s", bop_error_last());
	bop_http_server_free(s);
	o.version = 99;
	ok(bop_http_server_new(&s, &o) == BOP_EVERSION, "an unknown options version is refused");
}

static void test_routes(void)
{
	response_t r = { 0 };

	ok(get("/v1/runs/abc?x=1%202", TOKEN, &r) == 200 && r.body && !strcmp(r.body, "id=abc x=1 2 hdr=(none)"),
		"path and query parameters");
	ok(strstr(r.headers, "X-Run: yes") != NULL, "handler headers are sent");
	free(r.body);
	ok(get("/v1/runs/with%20space", TOKEN, &r) == 200 && r.body && strstr(r.body, "id=with space"),
		"path parameters are percent-decoded");
	free(r.body);
	ok(get("/files/a/b/c.txt", TOKEN, &r) == 200 && r.body && !strcmp(r.body, "a/b/c.txt"),
		"{path...} takes the rest");
	free(r.body);
	ok(get("/files/a/../../etc/passwd", TOKEN, &r) == 400, "\"..\" segments get 400");
	free(r.body);
	ok(get("/nope", TOKEN, &r) == 404, "unknown path gets 404");
	free(r.body);
	ok(get("/v1/runs", TOKEN, &r) == 404, "a missing parameter gets 404");
	free(r.body);
	memset(&r, 0, sizeof(r));
	request("DELETE", "/v1/runs/abc", TOKEN, NULL, 0, NULL, &r);
	ok(r.status == 405 && strstr(r.headers, "Allow: GET"), "wrong method gets 405 with Allow (%ld)", r.status);
	free(r.body);
	memset(&r, 0, sizeof(r));
	request("HEAD", "/v1/runs/abc", TOKEN, NULL, 0, NULL, &r);
	ok(r.status == 200 && r.len == 0, "HEAD uses the GET route without a body");
	free(r.body);
	ok(get("/silent", TOKEN, &r) == 500, "a handler that does not respond gives 500");
	free(r.body);
}

static void test_auth(void)
{
	response_t r = { 0 };
	char *src = NULL, *path;

	ok(get("/v1/runs/abc", NULL, &r) == 401 && strstr(r.headers, "WWW-Authenticate: Bearer"),
		"no token: 401 with WWW-Authenticate: Bearer");
	free(r.body);
	ok(get("/v1/runs/abc", "wrong", &r) == 401 && strstr(r.headers, "invalid_token"), "wrong token: 401");
	free(r.body);
	ok(get("/v1/runs/abc", TOKEN "x", &r) == 401, "a longer token with the right prefix: 401");
	free(r.body);
	ok(get("/v1/runs/abc", "s3cr3t-token-valuX", &r) == 401, "same length, last byte differs: 401");
	free(r.body);
	ok(get("/v1/runs/abc", TOKEN, &r) == 200, "the right token: 200");
	free(r.body);
	ok(get("/healthz", NULL, &r) == 200 && r.body && !strcmp(r.body, "ok\n"), "a public route needs no token");
	free(r.body);
	path = bop__sprintf("%s/libbackupop/http/server.c", getenv("BOP_SOURCE_ROOT") ? getenv("BOP_SOURCE_ROOT") : ".");
	if (path && bop__read_file(path, &src, NULL, 1 << 22) == 0)
		ok(strstr(src, "CRYPTO_memcmp(") != NULL, "the token is compared with CRYPTO_memcmp");
	else
		skip(1, "source not found");
	free(src);
	free(path);
}

static void test_bodies(void)
{
	response_t r = { 0 };
	size_t n = 2u << 20;
	char *big = calloc(1, n);

	memset(&r, 0, sizeof(r));
	request("POST", "/echo", TOKEN, "hello body", 10, NULL, &r);
	ok(r.status == 200 && r.len == 10 && !memcmp(r.body, "hello body", 10), "a small body is echoed");
	free(r.body);
	memset(&r, 0, sizeof(r));
	request("POST", "/echo", TOKEN, big, n, NULL, &r);
	ok(r.status == 413, "a 2 MiB body gets 413 (%ld)", r.status);
	free(r.body);
	memset(&r, 0, sizeof(r));
	request("POST", "/echo", NULL, big, 1000, NULL, &r);
	ok(r.status == 401, "a body without a token gets 401 (%ld)", r.status);
	free(r.body);
	free(big);
}

static void test_streaming(void)
{
	char want[65], got[65];
	upload_t up = { .size = BIG };
	response_t r = { 0 };
	hasher_t h;

	expected_hash(BIG, want);
	hasher_init(&up.hash);
	memset(&r, 0, sizeof(r));
	request("PUT", "/upload/big.bin", TOKEN, NULL, 0, &up, &r);
	hasher_final(&up.hash, got);
	ok(r.status == 201 && !strcmp(got, want) && r.body && !strcmp(r.body, want),
		"50 MiB upload streamed into a sink: same SHA-256 (%ld)", r.status);
	free(r.body);

	memset(&up, 0, sizeof(up));
	up.size = 1000;
	hasher_init(&up.hash);
	memset(&r, 0, sizeof(r));
	request("PUT", "/upload/x", NULL, NULL, 0, &up, &r);
	hasher_final(&up.hash, got);
	ok(r.status == 401, "a streaming route checks the token before the body (%ld)", r.status);
	free(r.body);

	for (int chunked = 0; chunked < 2; chunked++) {
		memset(&r, 0, sizeof(r));
		hasher_init(&h);
		r.hash = &h;
		request("GET", chunked ? "/download?chunked" : "/download", TOKEN, NULL, 0, NULL, &r);
		hasher_final(&h, got);
		ok(r.status == 200 && r.len == BIG && !strcmp(got, want),
			"50 MiB download streamed from a source (%s): same SHA-256", chunked ? "chunked" : "Content-Length");
	}
}

typedef struct worker_arg {
	int ok_count;
} worker_arg_t;

static void *concurrent_worker(void *arg)
{
	worker_arg_t *w = arg;
	response_t r = { 0 };

	for (int i = 0; i < 20; i++) {
		char path[64];

		snprintf(path, sizeof(path), "/v1/runs/r%d", i);
		if (get(path, TOKEN, &r) == 200 && r.body && strstr(r.body, path + 9))
			w->ok_count++;
		free(r.body);
	}
	return NULL;
}

static void test_concurrent(void)
{
	pthread_t t[8];
	worker_arg_t w[8];
	int total = 0;

	memset(w, 0, sizeof(w));
	for (int i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, concurrent_worker, &w[i]);
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		total += w[i].ok_count;
	}
	is_int(total, 160, "160 concurrent requests from 8 threads all succeed");
}

/* Checks every line against the text format's grammar; returns the bad lines. */
static int invalid_lines(const char *text)
{
	regex_t help, type, sample;
	char *copy = strdup(text), *save = NULL;
	int bad = 0;

	regcomp(&help, "^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$", REG_EXTENDED | REG_NOSUB);
	regcomp(&type, "^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped)$",
		REG_EXTENDED | REG_NOSUB);
	regcomp(&sample, "^[a-zA-Z_:][a-zA-Z0-9_:]*"
		"(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\[\\\\\"n])*\""
		"(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\[\\\\\"n])*\")*\\})? "
		"([-+]?[0-9.]+([eE][-+]?[0-9]+)?|[+-]Inf|NaN)$", REG_EXTENDED | REG_NOSUB);
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (regexec(&help, line, 0, NULL, 0) && regexec(&type, line, 0, NULL, 0) &&
				regexec(&sample, line, 0, NULL, 0)) {
			diag("invalid line: %s", line);
			bad++;
		}
	}
	regfree(&help);
	regfree(&type);
	regfree(&sample);
	free(copy);
	return bad;
}

static void test_metrics(bop_metrics_t *m)
{
	static const char *const result_label[] = { "result", NULL };
	static const char *const engine_label[] = { "engine", NULL };
	static const double buckets[] = { 0.5, 1, 10 };
	bop_metric_t *runs = NULL, *last = NULL, *dur = NULL, *dup = NULL, *plain = NULL;
	const char *succeeded[] = { "succeeded" }, *failed[] = { "failed" };
	const char *weird[] = { "a\"b\\c\nd" }, *pg[] = { "postgres" };
	response_t r = { 0 };

	ok(bop_metrics_counter(m, &runs, "backupop_runs_total", "Runs by result.", result_label) == 0,
		"counter registered");
	ok(bop_metrics_gauge(m, &last, "backupop_last_success_timestamp_seconds",
		"Time of the last success.\nSecond line with a \\ backslash.", NULL) == 0, "gauge registered");
	ok(bop_metrics_histogram(m, &dur, "backupop_backup_duration_seconds", "Backup duration.",
		engine_label, buckets, 3) == 0, "histogram registered");
	ok(bop_metrics_counter(m, &plain, "backupop_untouched_total", "Never incremented.", NULL) == 0,
		"plain counter registered");
	ok(bop_metrics_counter(m, &dup, "backupop_runs_total", "again", NULL) == BOP_EEXISTS, "a duplicate name is refused");
	ok(bop_metrics_counter(m, &dup, "bad-name", "x", NULL) == BOP_EINVAL, "a bad name is refused");
	ok(bop_metric_add(runs, succeeded, -1) == BOP_EINVAL, "a counter cannot decrease");
	ok(bop_metric_add(runs, NULL, 1) == BOP_EINVAL, "missing label values are refused");
	bop_metric_add(runs, succeeded, 1);
	bop_metric_add(runs, succeeded, 2);
	bop_metric_add(runs, failed, 1);
	bop_metric_add(runs, weird, 1);
	bop_metric_set(last, NULL, 1763700000);
	bop_metric_observe(dur, pg, 0.25);
	bop_metric_observe(dur, pg, 0.75);
	bop_metric_observe(dur, pg, 5);
	bop_metric_observe(dur, pg, 100);
	ok(get("/metrics", NULL, &r) == 200 && r.body, "GET /metrics is served");
	if (!r.body) {
		skip(7, "no metrics text");
		return;
	}
	ok(strstr(r.headers, "text/plain; version=0.0.4") != NULL, "content type says version 0.0.4");
	is_int(invalid_lines(r.body), 0, "every line follows the text format");
	ok(strstr(r.body, "# TYPE backupop_runs_total counter\n") &&
		strstr(r.body, "backupop_runs_total{result=\"succeeded\"} 3\n") &&
		strstr(r.body, "backupop_runs_total{result=\"failed\"} 1\n"), "counter series");
	ok(strstr(r.body, "backupop_runs_total{result=\"a\\\"b\\\\c\\nd\"} 1\n") != NULL, "label values are escaped");
	ok(strstr(r.body, "# HELP backupop_last_success_timestamp_seconds Time of the last success.\\nSecond line with a \\\\ backslash.\n") &&
		strstr(r.body, "backupop_last_success_timestamp_seconds 1763700000\n"), "gauge with escaped help");
	ok(strstr(r.body, "backupop_backup_duration_seconds_bucket{engine=\"postgres\",le=\"0.5\"} 1\n") &&
		strstr(r.body, "backupop_backup_duration_seconds_bucket{engine=\"postgres\",le=\"1\"} 2\n") &&
		strstr(r.body, "backupop_backup_duration_seconds_bucket{engine=\"postgres\",le=\"10\"} 3\n") &&
		strstr(r.body, "backupop_backup_duration_seconds_bucket{engine=\"postgres\",le=\"+Inf\"} 4\n") &&
		strstr(r.body, "backupop_backup_duration_seconds_sum{engine=\"postgres\"} 106\n") &&
		strstr(r.body, "backupop_backup_duration_seconds_count{engine=\"postgres\"} 4\n"),
		"histogram buckets are cumulative, with +Inf, _sum and _count");
	ok(strstr(r.body, "backupop_untouched_total 0\n") != NULL, "a counter without labels starts at 0");
	if (tap_failed)
		diag("the metrics text:\n%s", r.body);
	free(r.body);
}

typedef struct slow_client {
	atomic_bool reached;
	CURLcode code;
	size_t bytes;
} slow_client_t;

static void *slow_download(void *arg)
{
	slow_client_t *c = arg;
	response_t r = { 0 };
	hasher_t h;

	memset(&r, 0, sizeof(r));
	hasher_init(&h);
	r.hash = &h;
	r.limit_bytes = 100000;
	r.reached = &c->reached;
	c->code = request("GET", "/slow", TOKEN, NULL, 0, NULL, &r);
	c->bytes = r.len;
	atomic_store(&c->reached, true);
	{
		char hex[65];

		hasher_final(&h, hex);
	}
	return NULL;
}


/* The same request cycle without a connection (what the fuzz target drives). */
static void test_dispatch(bop_http_server_t *s)
{
	static const char big[2u << 20];
	unsigned int status = 0;
	int ret;

	ret = bop__http_server_dispatch(s, "GET", "/v1/runs/a%20b?x=1", "Bearer " TOKEN, NULL, 0,
		&status);
	ok(ret == 0 && status == 200, "dispatch: a routed request: 200 (%u)", status);
	bop__http_server_dispatch(s, "GET", "/v1/runs/abc", NULL, NULL, 0, &status);
	is_int(status, 401, "dispatch: no token: 401");
	bop__http_server_dispatch(s, "GET", "/healthz", NULL, NULL, 0, &status);
	is_int(status, 200, "dispatch: a public route: 200");
	bop__http_server_dispatch(s, "GET", "/v1/%2e%2e/x", "Bearer " TOKEN, NULL, 0, &status);
	is_int(status, 400, "dispatch: an encoded \"..\" segment: 400");
	bop__http_server_dispatch(s, "GET", "/nowhere", "Bearer " TOKEN, NULL, 0, &status);
	is_int(status, 404, "dispatch: an unknown path: 404");
	bop__http_server_dispatch(s, "PUT", "/echo", "Bearer " TOKEN, NULL, 0, &status);
	is_int(status, 405, "dispatch: another method: 405");
	bop__http_server_dispatch(s, "POST", "/echo", "Bearer " TOKEN, "hi", 2, &status);
	is_int(status, 200, "dispatch: a small body: 200");
	bop__http_server_dispatch(s, "POST", "/echo", "Bearer " TOKEN, big, 5000, &status);
	is_int(status, 200, "dispatch: a body under the limit: 200");
	bop__http_server_dispatch(s, "POST", "/echo", "Bearer " TOKEN, big, sizeof(big), &status);
	is_int(status, 413, "dispatch: a 2 MiB body: 413");
}

/* ---- raw connections (for what libcurl will not do) ---- */

static int connect_local(void)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Finding 13: a chunked body past the limit gets 413 as soon as it crosses the limit,
 * without the rest being read, and the connection is closed. The client sends 2 MiB of
 * chunks but never the final empty chunk: only an early answer can arrive. */
static void test_chunked_limit(void)
{
	static const char head[] = "POST /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN
		"\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n";
	char chunk[16 + 65536 + 2], answer[4096];
	size_t chunk_len, sent = 0, got = 0, want = 2u << 20, pos = 0;
	int fd = connect_local(), eof = 0;
	int64_t start = bop__now_ms(), answered = -1;

	ok(fd >= 0, "finding 13: connected for a chunked upload");
	if (fd < 0)
		return;
	chunk_len = (size_t)snprintf(chunk, sizeof(chunk), "%x\r\n", 65536u);
	memset(chunk + chunk_len, 'a', 65536);
	chunk_len += 65536;
	memcpy(chunk + chunk_len, "\r\n", 2);
	chunk_len += 2;
	send(fd, head, strlen(head), MSG_NOSIGNAL);
	answer[0] = '\0';
	while (bop__now_ms() - start < 10000 && !eof) {
		struct pollfd p = { fd, POLLIN | (sent < want ? POLLOUT : 0), 0 };

		if (poll(&p, 1, 200) <= 0)
			continue;
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(fd, answer + got, sizeof(answer) - 1 - got, 0);

			if (n <= 0) {
				eof = 1;
				break;
			}
			got += (size_t)n;
			answer[got] = '\0';
			if (answered < 0 && strstr(answer, "\r\n\r\n"))
				answered = bop__now_ms() - start;
			if (got + 1 >= sizeof(answer))
				break;
		} else if (p.revents & POLLOUT) {
			ssize_t n = send(fd, chunk + pos, chunk_len - pos, MSG_NOSIGNAL | MSG_DONTWAIT);

			if (n < 0 && errno != EAGAIN) {
				/* The server closed: read what it answered. */
				sent = want;
				continue;
			}
			if (n > 0 && (pos += (size_t)n) == chunk_len) {
				pos = 0;
				sent += 65536;
			}
		}
	}
	close(fd);
	ok(!strncmp(answer, "HTTP/1.1 413", 12), "finding 13: a 2 MiB chunked body gets 413 before "
		"the body ends (answer: %.12s)", answer);
	ok(answered >= 0 && answered < 5000, "finding 13: ... promptly (%lld ms)", (long long)answered);
	ok(eof, "finding 13: ... and the server closes the connection instead of reading the rest");
	ok(strstr(answer, "larger than 1048576 bytes") != NULL, "finding 13: ... saying the limit");
}

/* Finding 3: 70 clients each sending one header line every 2 s (slowloris) must not take
 * /healthz down. Loopback only, bounded: about 15 s, the sockets are closed at the end. */
#define SLOW_CLIENTS 70

typedef struct slowloris {
	int fds[SLOW_CLIENTS];
	atomic_bool stop;
	int opened;
} slowloris_t;

static void *slowloris_run(void *arg)
{
	slowloris_t *sl = arg;

	for (int i = 0; i < SLOW_CLIENTS; i++) {
		sl->fds[i] = connect_local();
		if (sl->fds[i] >= 0) {
			sl->opened++;
			send(sl->fds[i], "GET /v1/runs/x HTTP/1.1\r\nHost: x\r\n", 34, MSG_NOSIGNAL);
		}
	}
	while (!atomic_load(&sl->stop)) {
		for (int i = 0; i < 20 && !atomic_load(&sl->stop); i++)
			usleep(100000);
		for (int i = 0; i < SLOW_CLIENTS; i++)
			if (sl->fds[i] >= 0)
				send(sl->fds[i], "X-Slow: 1\r\n", 11, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	return NULL;
}

static void test_slowloris(void)
{
	slowloris_t sl;
	pthread_t t;
	int answered = 0;

	memset(&sl, 0, sizeof(sl));
	atomic_init(&sl.stop, false);
	pthread_create(&t, NULL, slowloris_run, &sl);
	usleep(1500000);
	for (int i = 0; i < 20; i++) {
		response_t r = { 0 };
		char url[128];
		CURL *c = curl_easy_init();

		snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", port);
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
		if (curl_easy_perform(c) == CURLE_OK) {
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
			answered += r.status == 200;
		}
		curl_easy_cleanup(c);
		free(r.body);
		usleep(500000);
	}
	atomic_store(&sl.stop, true);
	pthread_join(t, NULL);
	for (int i = 0; i < SLOW_CLIENTS; i++)
		if (sl.fds[i] >= 0)
			close(sl.fds[i]);
	ok(sl.opened == SLOW_CLIENTS, "finding 3: %d of %d slow clients connected", sl.opened,
		SLOW_CLIENTS);
	ok(answered >= 19, "finding 3: /healthz answers %d of 20 times while %d slow clients hold "
		"connections (at least 19)", answered, SLOW_CLIENTS);
}

static void test_stop_in_flight(bop_http_server_t *s)
{
	slow_client_t c;
	pthread_t t;
	int64_t start;

	memset(&c, 0, sizeof(c));
	atomic_init(&c.reached, false);
	pthread_create(&t, NULL, slow_download, &c);
	for (int i = 0; i < 500 && !atomic_load(&c.reached); i++)
		usleep(10000);
	ok(atomic_load(&c.reached) && c.code == CURLE_OK, "a slow download is in flight");
	start = bop__now_ms();
	bop_http_server_stop(s);
	ok(bop__now_ms() - start < 5000, "stop returns promptly with a request in flight (%lld ms)",
		(long long)(bop__now_ms() - start));
	pthread_join(t, NULL);
	ok(c.code != CURLE_OK, "the client sees the download cut short: %s", curl_easy_strerror(c.code));
	is_int(atomic_load(&sources_freed) > 0, 1, "the response's source was freed");
	start = bop__now_ms();
	bop_http_server_stop(s);
	ok(bop__now_ms() - start < 1000, "stopping a stopped server returns at once (%lld ms)",
		(long long)(bop__now_ms() - start));
	{
		response_t r;

		memset(&r, 0, sizeof(r));
		is_int(request("GET", "/healthz", NULL, NULL, 0, NULL, &r), CURLE_COULDNT_CONNECT,
			"after two stops nothing listens on the port any more");
		free(r.body);
	}
}

int main(void)
{
	bop_http_server_options_t o;
	bop_http_server_t *s = NULL;
	bop_metrics_t *m = NULL;
	int ret;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	bop_log_set_level(BOP_LOG_WARN);
	test_addresses();
	bop_http_server_options_init(&o, BOP_HTTP_SERVER_OPTIONS_VERSION);
	o.listen = "127.0.0.1:0";
	o.token = TOKEN;
	ret = bop_http_server_new(&s, &o);
	if (ret == 0)
		ret = bop_metrics_new(&m);
	if (ret == 0)
		ret = bop_http_server_route(s, "GET", "/v1/runs/{id}", 0, h_run, NULL);
	if (ret == 0)
		ret = bop_http_server_route(s, "GET", "/files/{path...}", 0, h_files, NULL);
	if (ret == 0)
		ret = bop_http_server_route(s, "POST", "/echo", 0, h_echo, NULL);
	if (ret == 0)
		ret = bop_http_server_route(s, "GET", "/healthz", BOP_HTTP_ROUTE_PUBLIC, h_health, NULL);
	if (ret == 0)
		ret = bop_http_server_route(s, "PUT", "/upload/{name}", BOP_HTTP_ROUTE_STREAM_BODY, h_upload, NULL);
	if (ret == 0)
		ret = bop_http_server_route(s, "GET", "/download", 0, h_download, NULL);
	if (ret == 0)
		ret = bop_http_server_route(s, "GET", "/slow", 0, h_slow, NULL);
	if (ret == 0)
		ret = bop_http_server_route(s, "GET", "/silent", 0, h_silent, NULL);
	if (ret == 0)
		ret = bop_http_server_serve_metrics(s, "/metrics", BOP_HTTP_ROUTE_PUBLIC, m);
	ok(bop_http_server_route(s, "GET", "/a/{rest...}/b", 0, h_health, NULL) == BOP_EINVAL,
		"a {rest...} segment must be last");
	if (ret == 0)
		ret = bop_http_server_start(s);
	ok(ret == 0, "server started: %s", ret ? bop_error_last() : "ok");
	if (ret) {
		bop_http_server_free(s);
		return done_testing();
	}
	ok(bop_http_server_route(s, "GET", "/late", 0, h_health, NULL) == BOP_EINVAL,
		"routes cannot be added once started");
	port = bop_http_server_port(s);
	test_dispatch(s);
	test_routes();
	test_auth();
	test_bodies();
	test_streaming();
	test_concurrent();
	test_metrics(m);
	test_chunked_limit();
	test_slowloris();
	test_stop_in_flight(s);
	bop_http_server_free(s);
	bop_metrics_free(m);
	curl_global_cleanup();
	return done_testing();
}
