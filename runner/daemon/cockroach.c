/*
 * The endpoint CockroachDB's http:// external storage talks to, on the runner's API:
 *
 *   PUT    /v1/cockroach/{token}/{path...}   store a file (the body, streamed)
 *   GET    /v1/cockroach/{token}/{path...}   read it; "Range: bytes=N-" gives 206
 *   HEAD   /v1/cockroach/{token}/{path...}   its size in Content-Length
 *   DELETE /v1/cockroach/{token}/{path...}   remove it (backups only)
 *
 * CockroachDB cannot send the API's bearer token, so these routes are public and the
 * capability is the token in the path: 32 random bytes, made for one run, compared in
 * constant time, and revoked when the run's statement ends. A wrong or expired token gets
 * 404, like a path that does not exist. During a backup the files go through the catalog's
 * multi-file session (compressed, encrypted, hashed, stored); during a restore the files
 * of one backup are served read-only (PUT and DELETE get 403).
 *
 * Every request that uses the run's catalog counts as in flight until its body or its
 * response is finished; the run waits for none to be left before it frees the catalog.
 */
#include "runner.h"

#include <backupop/sys/io.h>

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define TOKEN_BYTES 32
#define ROUTE "/v1/cockroach/{token}/{path...}"

struct crdb_endpoint {
	char token[TOKEN_BYTES * 2 + 1];
	bop_backup_session_t *session;          /* backup: written to */
	bop_catalog_t *catalog;                 /* restore: read from */
	const bop_manifest_t *manifest;
	const bop_keys_t *keys;                 /* to read encrypted files back */
	unsigned int inflight;                  /* under rn->mu */
	atomic_bool revoked;
	pthread_cond_t idle;
};

/* ---- lifecycle (the run's worker thread) ---- */

static int new_token(char *out)
{
	unsigned char raw[TOKEN_BYTES];
	size_t got = 0;

	while (got < sizeof(raw)) {
		ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);

		if (n < 0)
			return bop_error_set(BOP_ERROR, "cannot get random bytes for the run token");
		got += (size_t)n;
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		sprintf(out + 2 * i, "%02x", raw[i]);
	explicit_bzero(raw, sizeof(raw));
	return 0;
}

int crdb_endpoint_open(runner_t *rn, crdb_endpoint_t **out, bop_backup_session_t *session,
	bop_catalog_t *catalog, const bop_manifest_t *manifest, const bop_keys_t *keys)
{
	crdb_endpoint_t *ep = calloc(1, sizeof(*ep));
	int ret = 0;

	if (!ep)
		return bop_error_set(BOP_ENOMEM, "out of memory");
	if (new_token(ep->token) < 0) {
		free(ep);
		return BOP_ERROR;
	}
	ep->session = session;
	ep->catalog = catalog;
	ep->manifest = manifest;
	ep->keys = keys;
	atomic_init(&ep->revoked, false);
	pthread_cond_init(&ep->idle, NULL);
	pthread_mutex_lock(&rn->mu);
	if (rn->crdb)
		ret = bop_error_set(BOP_ECONFLICT, "another run serves the cockroach endpoint");
	else
		rn->crdb = ep;
	pthread_mutex_unlock(&rn->mu);
	if (ret < 0) {
		pthread_cond_destroy(&ep->idle);
		free(ep);
		return ret;
	}
	*out = ep;
	return 0;
}

char *crdb_endpoint_url(const runner_t *rn, const crdb_endpoint_t *ep)
{
	const char *base = rn->cfg.api_advertise_url;
	size_t n = strlen(base);
	char *url = NULL;

	while (n > 0 && base[n - 1] == '/')
		n--;
	if (asprintf(&url, "%.*s/v1/cockroach/%s", (int)n, base, ep->token) < 0)
		return NULL;
	return url;
}

void crdb_endpoint_close(runner_t *rn, crdb_endpoint_t *ep)
{
	if (!ep)
		return;
	atomic_store(&ep->revoked, true);
	pthread_mutex_lock(&rn->mu);
	if (rn->crdb == ep)
		rn->crdb = NULL;
	if (ep->inflight)
		rlog(BOP_LOG_INFO, "waiting for %u request(s) of CockroachDB to end", ep->inflight);
	while (ep->inflight)
		pthread_cond_wait(&ep->idle, &rn->mu);
	pthread_mutex_unlock(&rn->mu);
	pthread_cond_destroy(&ep->idle);
	explicit_bzero(ep->token, sizeof(ep->token));
	free(ep);
}

/* ---- requests ---- */

static bool token_equal(const char *a, const char *b)
{
	size_t n = strlen(a);
	unsigned char diff = 0;

	if (n != strlen(b))
		return false;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

/* The endpoint of the request's token, counted in flight; NULL (and a 404 sent) when the
 * token is not the current run's. */
static crdb_endpoint_t *acquire(runner_t *rn, bop_http_request_t *req)
{
	const char *token = bop_http_request_param(req, "token");
	crdb_endpoint_t *ep;

	pthread_mutex_lock(&rn->mu);
	ep = rn->crdb;
	if (ep && (!token || !token_equal(token, ep->token) || atomic_load(&ep->revoked)))
		ep = NULL;
	if (ep)
		ep->inflight++;
	pthread_mutex_unlock(&rn->mu);
	if (!ep)
		bop_http_respond_error(req, 404, "no such file");
	return ep;
}

static void hold(runner_t *rn, crdb_endpoint_t *ep)
{
	pthread_mutex_lock(&rn->mu);
	ep->inflight++;
	pthread_mutex_unlock(&rn->mu);
}

static void release(runner_t *rn, crdb_endpoint_t *ep)
{
	pthread_mutex_lock(&rn->mu);
	if (--ep->inflight == 0)
		pthread_cond_broadcast(&ep->idle);
	pthread_mutex_unlock(&rn->mu);
}

/* A source or sink that keeps its request in flight until freed and fails once the token
 * is revoked, so that a run never ends under a transfer. */
typedef struct counted {
	union {
		bop_source_t source;
		bop_sink_t sink;
	} base;
	bop_source_t *src;
	bop_sink_t *snk;
	runner_t *rn;
	crdb_endpoint_t *ep;
} counted_t;

static int revoked_error(void)
{
	return bop_error_set(BOP_ECANCELED, "the run this transfer belongs to has ended");
}

static int counted_read(bop_source_t *base, void *buf, size_t cap, size_t *got)
{
	counted_t *c = (counted_t *)base;

	if (atomic_load(&c->ep->revoked))
		return revoked_error();
	return bop_source_read(c->src, buf, cap, got);
}

static int counted_close(bop_source_t *base)
{
	return bop_source_close(((counted_t *)base)->src);
}

static void counted_source_free(bop_source_t *base)
{
	counted_t *c = (counted_t *)base;

	bop_source_free(c->src);
	release(c->rn, c->ep);
	free(c);
}

static int counted_write(bop_sink_t *base, const void *buf, size_t len)
{
	counted_t *c = (counted_t *)base;

	if (atomic_load(&c->ep->revoked))
		return revoked_error();
	return bop_sink_write(c->snk, buf, len);
}

static int counted_commit(bop_sink_t *base)
{
	counted_t *c = (counted_t *)base;

	if (atomic_load(&c->ep->revoked))
		return revoked_error();
	return bop_sink_commit(c->snk);
}

static void counted_abort(bop_sink_t *base)
{
	bop_sink_abort(((counted_t *)base)->snk);
}

static void counted_sink_free(bop_sink_t *base)
{
	counted_t *c = (counted_t *)base;

	bop_sink_free(c->snk);
	release(c->rn, c->ep);
	free(c);
}

/* Takes `src` and one in-flight count; on failure both are released. */
static bop_source_t *counted_source(runner_t *rn, crdb_endpoint_t *ep, bop_source_t *src)
{
	counted_t *c = calloc(1, sizeof(*c));

	if (!c) {
		bop_source_free(src);
		release(rn, ep);
		return NULL;
	}
	c->base.source = (bop_source_t)BOP_SOURCE_INIT(.read = counted_read,
		.close = counted_close, .free = counted_source_free);
	c->src = src;
	c->rn = rn;
	c->ep = ep;
	return &c->base.source;
}

/* Takes `snk` and one in-flight count; on failure both are released. */
static bop_sink_t *counted_sink(runner_t *rn, crdb_endpoint_t *ep, bop_sink_t *snk)
{
	counted_t *c = calloc(1, sizeof(*c));

	if (!c) {
		bop_sink_free(snk);
		release(rn, ep);
		return NULL;
	}
	c->base.sink = (bop_sink_t)BOP_SINK_INIT(.write = counted_write, .commit = counted_commit,
		.abort = counted_abort, .free = counted_sink_free);
	c->snk = snk;
	c->rn = rn;
	c->ep = ep;
	return &c->base.sink;
}

static unsigned int status_of(int code)
{
	switch (code) {
	case BOP_ENOTFOUND: return 404;
	case BOP_EINVAL: return 400;
	case BOP_ECANCELED: return 503;
	default: return 500;
	}
}

static int put_done(bop_http_request_t *req, int result, void *payload)
{
	(void)payload;
	if (result < 0) {
		rlog(BOP_LOG_WARN, "cockroach: storing %s failed: %s",
			bop_http_request_param(req, "path"), bop_error_last());
		return bop_http_respond_error(req, status_of(result), bop_error_last());
	}
	return bop_http_respond(req, 201, NULL, NULL, 0);
}

static int h_put(bop_http_request_t *req, void *payload)
{
	runner_t *rn = payload;
	crdb_endpoint_t *ep = acquire(rn, req);
	bop_sink_t *sink = NULL;
	int ret;

	if (!ep)
		return 0;
	if (!ep->session) {
		release(rn, ep);
		return bop_http_respond_error(req, 403, "this run restores a backup: its files are "
			"read-only");
	}
	ret = bop_backup_session_put(ep->session, &sink, bop_http_request_param(req, "path"));
	if (ret < 0) {
		release(rn, ep);
		return bop_http_respond_error(req, status_of(ret), bop_error_last());
	}
	sink = counted_sink(rn, ep, sink);
	if (!sink)
		return bop_http_respond_error(req, 500, "out of memory");
	return bop_http_request_stream_body(req, sink, put_done, rn);
}

/* The plaintext size of the file; BOP_ENOTFOUND if it does not exist. */
static int file_size(crdb_endpoint_t *ep, const char *path, uint64_t *size)
{
	bop_manifest_file_t f = { BOP_MANIFEST_FILE_VERSION, NULL, NULL, 0, NULL, 0, NULL };
	int ret;

	if (ep->session)
		return bop_backup_session_stat(ep->session, size, path);
	ret = bop_manifest_file_find(ep->manifest, &f, path);
	if (ret == 0)
		*size = f.plain_bytes;
	return ret;
}

static int open_file(crdb_endpoint_t *ep, const char *path, uint64_t offset, bop_source_t **src)
{
	bop_restore_options_t opts;

	bop_restore_options_init(&opts, BOP_RESTORE_OPTIONS_VERSION);
	opts.keys = ep->keys;
	if (ep->session)
		return bop_backup_session_read(ep->session, src, path, offset, &opts);
	return bop_catalog_read_file(ep->catalog, src, ep->manifest, path, offset, &opts);
}

/* "bytes=N-" gives N; no header, or another form, gives -1 (the whole file, 200: a
 * server may ignore a Range header); -2 when N does not parse. */
static int64_t range_start(bop_http_request_t *req)
{
	const char *h = bop_http_request_header(req, "Range");
	char *end = NULL;
	unsigned long long n;

	if (!h || strncmp(h, "bytes=", 6) || h[6] < '0' || h[6] > '9')
		return -1;
	n = strtoull(h + 6, &end, 10);
	if (*end != '-' || n > INT64_MAX)
		return -2;
	if (end[1])
		return -1;      /* "N-M": CockroachDB does not ask for it; served whole */
	return (int64_t)n;
}

static int respond_range(bop_http_request_t *req, uint64_t size, int64_t offset,
	bop_source_t *src)
{
	char value[96];

	bop_http_response_header(req, "Accept-Ranges", "bytes");
	if (offset < 0)
		return bop_http_respond_source(req, 200, "application/octet-stream", src, (int64_t)size);
	snprintf(value, sizeof(value), "bytes %" PRId64 "-%" PRIu64 "/%" PRIu64, offset, size - 1,
		size);
	bop_http_response_header(req, "Content-Range", value);
	return bop_http_respond_source(req, 206, "application/octet-stream", src,
		(int64_t)(size - (uint64_t)offset));
}

static int not_satisfiable(bop_http_request_t *req, uint64_t size)
{
	char value[64];

	snprintf(value, sizeof(value), "bytes */%" PRIu64, size);
	bop_http_response_header(req, "Content-Range", value);
	return bop_http_respond_error(req, 416, "the range starts at or beyond the end of the file");
}

static int respond_head(bop_http_request_t *req, uint64_t size)
{
	bop_source_t *src = NULL;

	/* No body is sent for HEAD: an empty source stands in, with the real length. */
	if (bop_source_memory_new(&src, "", 0) < 0)
		return bop_http_respond_error(req, 500, bop_error_last());
	bop_http_response_header(req, "Accept-Ranges", "bytes");
	return bop_http_respond_source(req, 200, "application/octet-stream", src, (int64_t)size);
}

static int serve(bop_http_request_t *req, runner_t *rn, crdb_endpoint_t *ep)
{
	const char *path = bop_http_request_param(req, "path");
	bool head = !strcmp(bop_http_request_method(req), "HEAD");
	int64_t offset = head ? -1 : range_start(req);
	bop_source_t *src = NULL;
	uint64_t size = 0;
	int ret;

	if ((ret = file_size(ep, path, &size)) < 0)
		return bop_http_respond_error(req, status_of(ret), bop_error_last());
	if (head)
		return respond_head(req, size);
	if (offset == -2)
		return bop_http_respond_error(req, 400, "the Range header must be \"bytes=N-\"");
	if (offset >= 0 && (uint64_t)offset >= size)
		return not_satisfiable(req, size);
	ret = open_file(ep, path, offset < 0 ? 0 : (uint64_t)offset, &src);
	if (ret < 0) {
		rlog(BOP_LOG_WARN, "cockroach: cannot serve %s: %s", path, bop_error_last());
		return bop_http_respond_error(req, status_of(ret), bop_error_last());
	}
	hold(rn, ep);           /* the response's own count, released when it is done */
	src = counted_source(rn, ep, src);
	if (!src)
		return bop_http_respond_error(req, 500, "out of memory");
	return respond_range(req, size, offset, src);
}

static int h_get(bop_http_request_t *req, void *payload)
{
	runner_t *rn = payload;
	crdb_endpoint_t *ep = acquire(rn, req);
	int ret;

	if (!ep)
		return 0;
	ret = serve(req, rn, ep);
	release(rn, ep);
	return ret;
}

static int h_delete(bop_http_request_t *req, void *payload)
{
	runner_t *rn = payload;
	crdb_endpoint_t *ep = acquire(rn, req);
	int ret;

	if (!ep)
		return 0;
	if (!ep->session)
		ret = bop_http_respond_error(req, 403, "this run restores a backup: its files are "
			"read-only");
	else if ((ret = bop_backup_session_remove(ep->session,
			bop_http_request_param(req, "path"))) < 0)
		ret = bop_http_respond_error(req, status_of(ret), bop_error_last());
	else
		ret = bop_http_respond(req, 204, NULL, NULL, 0);
	release(rn, ep);
	return ret;
}

int crdb_routes(runner_t *rn, bop_http_server_t *server)
{
	int ret;

	if ((ret = bop_http_server_route(server, "PUT", ROUTE,
		    BOP_HTTP_ROUTE_PUBLIC | BOP_HTTP_ROUTE_STREAM_BODY, h_put, rn)) < 0 ||
	    (ret = bop_http_server_route(server, "GET", ROUTE, BOP_HTTP_ROUTE_PUBLIC, h_get, rn)) < 0 ||
	    (ret = bop_http_server_route(server, "HEAD", ROUTE, BOP_HTTP_ROUTE_PUBLIC, h_get, rn)) < 0 ||
	    (ret = bop_http_server_route(server, "DELETE", ROUTE, BOP_HTTP_ROUTE_PUBLIC, h_delete,
		    rn)) < 0)
		return ret;
	return 0;
}
