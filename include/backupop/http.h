/*
 * An embedded HTTP/1.1 server (for the runner's API and for the files CockroachDB sends)
 * and a registry of metrics rendered in the Prometheus text format.
 *
 * Routes pair a method with a path pattern: literal segments, "{name}" for one segment,
 * and a last "{name...}" for the rest of the path (one or more segments). Paths are
 * percent-decoded before matching; a path with "." or ".." segments is refused with 400.
 * A path that matches no route gets 404; one that matches with another method gets 405
 * with an Allow header. HEAD requests use the GET route when there is no HEAD route (the
 * body is not sent).
 *
 * With a token, every route except those flagged BOP_HTTP_ROUTE_PUBLIC requires
 * "Authorization: Bearer <token>" (compared in constant time); otherwise 401 with
 * "WWW-Authenticate: Bearer".
 *
 * Threading: connections are served by a pool of 8 threads polling with epoll, so idle or
 * slow clients cost a socket each, not a thread; handlers run on the pool's threads,
 * possibly several at once, and may block (e.g. writing a body to storage), which holds
 * that thread. Handlers must not call bop_http_server_stop() or _free().
 *
 * Limits: a connection idle for 10 s before its headers end is closed (`timeout_seconds`
 * afterwards); one client address holds at most a quarter of `max_connections`. A
 * buffered body over the limit gets 413, sent as soon as the limit is crossed when the
 * body is chunked (the connection is then closed without reading the rest).
 *
 * Requests are logged at DEBUG (method, path, status, bytes, time); headers, the query
 * string and bodies are never logged.
 */
#ifndef BACKUPOP_HTTP_H
#define BACKUPOP_HTTP_H

#include "common.h"
#include "io.h"

BOP_BEGIN_DECL

typedef struct bop_http_server bop_http_server_t;
typedef struct bop_http_request bop_http_request_t;
typedef struct bop_metrics bop_metrics_t;
typedef struct bop_metric bop_metric_t;

typedef struct bop_http_server_options {
	unsigned int version;
	/* "127.0.0.1:8080", "[::1]:0", ":8080" (every address, IPv6 and IPv4 when the host
	 * has IPv6). Port 0 picks a free port: see bop_http_server_port(). Required. */
	const char *listen;
	/* The bearer token; NULL or "": no authentication. Copied, and registered as a
	 * secret so it never appears in logs. */
	const char *token;
	/* Largest body of a buffered (non-streaming) request; larger ones get 413.
	 * 0: 1 MiB. */
	size_t max_body_bytes;
	/* Connections open at once (more are refused); a quarter of it per client address.
	 * 0: 1024. */
	unsigned int max_connections;
	/* A connection idle for this long is closed. 0: 60 seconds. */
	unsigned int timeout_seconds;
} bop_http_server_options_t;

#define BOP_HTTP_SERVER_OPTIONS_VERSION 1
#define BOP_HTTP_SERVER_OPTIONS_INIT { BOP_HTTP_SERVER_OPTIONS_VERSION, NULL, NULL, 0, 0, 0 }

/* Fills `opts` with the defaults of `version`. BOP_EVERSION for an unknown version. */
BOP_EXTERN(int) bop_http_server_options_init(bop_http_server_options_t *opts, unsigned int version);

/* Creates a server and binds its listening socket (so the port is known at once), but
 * serves nothing until bop_http_server_start(). BOP_EINVAL for a bad address, BOP_EIO
 * when it cannot listen (the message says why, e.g. "Address already in use"). */
BOP_EXTERN(int) bop_http_server_new(bop_http_server_t **out, const bop_http_server_options_t *opts);

/* Stops the server if it runs and frees it. Accepts NULL. */
BOP_EXTERN(void) bop_http_server_free(bop_http_server_t *server);

/* The port the server listens on (useful with port 0). */
BOP_EXTERN(int) bop_http_server_port(const bop_http_server_t *server);

/* Called for a request. Respond with one of the bop_http_respond*() functions (a handler
 * that does not gets 500). The return value is only logged when negative. */
typedef int (*bop_http_handler_cb)(bop_http_request_t *req, void *payload);

/* Route flags. */
#define BOP_HTTP_ROUTE_PUBLIC       0x1u  /* no token needed (e.g. /healthz) */
/* The handler is called as soon as the headers have arrived, before the body: it either
 * responds at once (the body is then discarded) or calls bop_http_request_stream_body(). */
#define BOP_HTTP_ROUTE_STREAM_BODY  0x2u

/* Adds a route. `method` is "GET", "PUT", ...; `pattern` as described above. Routes are
 * added before bop_http_server_start() (BOP_EINVAL after); the first match wins.
 * BOP_EINVAL for a malformed pattern. */
BOP_EXTERN(int) bop_http_server_route(bop_http_server_t *server, const char *method,
	const char *pattern, unsigned int flags, bop_http_handler_cb handler, void *payload);

/* Starts serving on the server's own threads. */
BOP_EXTERN(int) bop_http_server_start(bop_http_server_t *server);

/* Stops accepting, closes every connection and waits for running handlers to return.
 * A streamed upload in progress has its sink aborted; a streamed download is cut short.
 * Safe to call twice. */
BOP_EXTERN(void) bop_http_server_stop(bop_http_server_t *server);

/* ---- requests ---- */

/* "GET", "PUT", ... Owned by the request, like every string below. */
BOP_EXTERN(const char *) bop_http_request_method(const bop_http_request_t *req);

/* The percent-decoded path, without the query string. */
BOP_EXTERN(const char *) bop_http_request_path(const bop_http_request_t *req);

/* The value of path parameter `name` of the route's pattern; NULL if none. */
BOP_EXTERN(const char *) bop_http_request_param(const bop_http_request_t *req, const char *name);

/* The (decoded) value of query parameter `name`; "" for "?name"; NULL if absent. */
BOP_EXTERN(const char *) bop_http_request_query(const bop_http_request_t *req, const char *name);

/* The value of header `name` (case-insensitive); NULL if absent. */
BOP_EXTERN(const char *) bop_http_request_header(const bop_http_request_t *req, const char *name);

/* The body of a buffered request (NUL-terminated for convenience; *len without the NUL).
 * Empty for a streaming route. */
BOP_EXTERN(const void *) bop_http_request_body(const bop_http_request_t *req, size_t *len);

/* Called once the streamed body has ended: `result` is 0 when every byte was written and
 * the sink committed, else the error (the sink was aborted; BOP_ECANCELED if the client
 * went away, in which case nothing can be sent back). It responds like a handler. */
typedef int (*bop_http_body_done_cb)(bop_http_request_t *req, int result, void *payload);

/* From a BOP_HTTP_ROUTE_STREAM_BODY handler: writes the body, chunk by chunk as it
 * arrives, to `sink` (ownership taken, also on failure), then calls `done`. For a
 * callback per chunk, pass a bop_sink_callback_new() sink. */
BOP_EXTERN(int) bop_http_request_stream_body(bop_http_request_t *req, bop_sink_t *sink,
	bop_http_body_done_cb done, void *payload);

/* Adds a header to the response (e.g. "Location", "ETag"); call before responding. */
BOP_EXTERN(int) bop_http_response_header(bop_http_request_t *req, const char *name,
	const char *value);

/* Responds with a copy of `len` bytes of `body`. `content_type` may be NULL (none).
 * Only one response per request: BOP_EINVAL for a second one. */
BOP_EXTERN(int) bop_http_respond(bop_http_request_t *req, unsigned int status,
	const char *content_type, const void *body, size_t len);

/* Responds with {"error": message} as application/json. */
BOP_EXTERN(int) bop_http_respond_error(bop_http_request_t *req, unsigned int status,
	const char *message);

/* Responds with what `source` yields (ownership taken, also on failure), read as the
 * client takes it, on the server's thread. `length` is the exact size when known (sent
 * as Content-Length), or -1 (chunked). If the source fails or yields another length, the
 * connection is closed so the client sees an incomplete response. */
BOP_EXTERN(int) bop_http_respond_source(bop_http_request_t *req, unsigned int status,
	const char *content_type, bop_source_t *source, int64_t length);

/* ---- metrics ---- */

/* A registry of metrics. Every function below is thread-safe. */
BOP_EXTERN(int) bop_metrics_new(bop_metrics_t **out);

/* Frees the registry and its metrics. Accepts NULL. */
BOP_EXTERN(void) bop_metrics_free(bop_metrics_t *metrics);

/* Registers a counter, a gauge or a histogram named `name` ([a-zA-Z_:][a-zA-Z0-9_:]*)
 * with `help` text and label names (NULL-terminated; NULL for none). *out is owned by the
 * registry. BOP_EEXISTS if the name is taken, BOP_EINVAL for a bad name. */
BOP_EXTERN(int) bop_metrics_counter(bop_metrics_t *metrics, bop_metric_t **out, const char *name,
	const char *help, const char *const *label_names);
BOP_EXTERN(int) bop_metrics_gauge(bop_metrics_t *metrics, bop_metric_t **out, const char *name,
	const char *help, const char *const *label_names);

/* `buckets`: upper bounds in increasing order, without +Inf (added). */
BOP_EXTERN(int) bop_metrics_histogram(bop_metrics_t *metrics, bop_metric_t **out,
	const char *name, const char *help, const char *const *label_names,
	const double *buckets, size_t nbuckets);

/* `label_values` has one value per label name (NULL when the metric has no labels).
 * Adds `value` to a counter (>= 0) or a gauge. */
BOP_EXTERN(int) bop_metric_add(bop_metric_t *metric, const char *const *label_values, double value);

/* Sets a gauge. */
BOP_EXTERN(int) bop_metric_set(bop_metric_t *metric, const char *const *label_values, double value);

/* Records an observation in a histogram. */
BOP_EXTERN(int) bop_metric_observe(bop_metric_t *metric, const char *const *label_values,
	double value);

/* Renders every metric in the Prometheus text format 0.0.4. Free with bop_free(). */
BOP_EXTERN(int) bop_metrics_render(bop_metrics_t *metrics, char **text, size_t *len);

/* Adds a GET route at `path` (e.g. "/metrics") serving `metrics`, which must outlive the
 * server. `flags` as for routes (BOP_HTTP_ROUTE_PUBLIC to serve it without the token). */
BOP_EXTERN(int) bop_http_server_serve_metrics(bop_http_server_t *server, const char *path,
	unsigned int flags, bop_metrics_t *metrics);

BOP_END_DECL

#endif
