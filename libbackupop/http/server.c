/*
 * The embedded HTTP server, on libmicrohttpd: a pool of threads polling with epoll (an
 * idle or slow connection costs a socket, not a thread; a handler that blocks on storage
 * holds one thread of the pool), routes matched by method and path pattern, optional
 * bearer token,
 * buffered bodies up to a limit or bodies streamed into a sink, responses from memory or
 * streamed from a source.
 */
#include "http.h"

#include <errno.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_MAX_BODY (1u << 20)
#define DEFAULT_MAX_CONNECTIONS 1024
#define DEFAULT_TIMEOUT 60
#define HEADER_TIMEOUT 10       /* seconds a connection may stay idle before its headers end */
#define POOL_THREADS 8
#define BLOCK (64u * 1024)

typedef struct route {
	struct route *next;
	char *method;
	char **segments;        /* "v1", "{id}", "{path...}" */
	char **names;           /* "id", "path" for parameters; NULL for literals */
	size_t nsegments;
	bool rest;              /* the last segment takes the rest of the path */
	unsigned int flags;
	bop_http_handler_cb handler;
	void *payload;
} route_t;

struct bop_http_server {
	char *listen;
	unsigned char token_hash[32];
	bool has_token;
	size_t max_body;
	unsigned int max_connections;
	unsigned int timeout;
	int fd;
	int port;
	struct MHD_Daemon *daemon;
	route_t *routes;
	route_t **tail;
	atomic_bool stopping;
};

typedef struct header {
	struct header *next;
	char *name, *value;
} header_t;

struct bop_http_request {
	bop_http_server_t *server;
	struct MHD_Connection *conn;
	const char *method;
	char *path;
	const route_t *route;
	char **param_names;     /* borrowed from the route */
	char **param_values;
	size_t nparams;
	int64_t start_ms;
	/* Buffered body. */
	char *body;
	size_t body_len, body_cap;
	bool too_large;
	/* Streamed body. */
	bop_sink_t *sink;
	bop_http_body_done_cb done;
	void *done_payload;
	int stream_ret;
	uint64_t bytes_in;
	/* Without a connection (bop__http_server_dispatch): the headers and arguments. */
	header_t *in_headers;
	header_t *in_args;
	/* The response. */
	header_t *headers;
	struct MHD_Response *response;
	unsigned int status;
	bool queued;
	bool gone;              /* the client went away: responses are dropped */
};

static const char *const empty = "";

/* ---- options ---- */

BOP_EXTERN(int) bop_http_server_options_init(bop_http_server_options_t *opts, unsigned int version)
{
	bop_http_server_options_t def = BOP_HTTP_SERVER_OPTIONS_INIT;

	if (!opts)
		return bop__error(BOP_EINVAL, "bop_http_server_options_init: NULL options");
	if (BOP__VERSION_CHECK("bop_http_server_options_t", NULL, version,
	    HTTP_SERVER_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	*opts = def;
	return 0;
}

/* ---- requests: getters ---- */

static const char *header_find(const header_t *h, const char *name, bool nocase)
{
	for (; h; h = h->next)
		if (nocase ? !strcasecmp(h->name, name) : !strcmp(h->name, name))
			return h->value;
	return NULL;
}

static void headers_free(header_t *h)
{
	header_t *next;

	for (; h; h = next) {
		next = h->next;
		free(h->name);
		free(h->value);
		free(h);
	}
}

BOP_EXTERN(const char *) bop_http_request_method(const bop_http_request_t *req)
{
	return req ? req->method : NULL;
}

BOP_EXTERN(const char *) bop_http_request_path(const bop_http_request_t *req)
{
	return req ? req->path : NULL;
}

BOP_EXTERN(const char *) bop_http_request_param(const bop_http_request_t *req, const char *name)
{
	for (size_t i = 0; req && name && i < req->nparams; i++)
		if (!strcmp(req->param_names[i], name))
			return req->param_values[i];
	return NULL;
}

BOP_EXTERN(const char *) bop_http_request_query(const bop_http_request_t *req, const char *name)
{
	const char *value = NULL;
	size_t value_len = 0;

	if (!req || !name)
		return NULL;
	if (!req->conn)
		return header_find(req->in_args, name, false);
	if (MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, name, strlen(name),
			&value, &value_len) != MHD_YES)
		return NULL;
	return value ? value : empty;
}

BOP_EXTERN(const char *) bop_http_request_header(const bop_http_request_t *req, const char *name)
{
	if (!req || !name)
		return NULL;
	if (!req->conn)
		return header_find(req->in_headers, name, true);
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

BOP_EXTERN(const void *) bop_http_request_body(const bop_http_request_t *req, size_t *len)
{
	if (len)
		*len = req && req->body ? req->body_len : 0;
	return req && req->body ? req->body : empty;
}

/* ---- responses ---- */

BOP_EXTERN(int) bop_http_response_header(bop_http_request_t *req, const char *name,
	const char *value)
{
	header_t *h;

	if (!req || !name || !*name || !value || strpbrk(name, ":\r\n") || strpbrk(value, "\r\n"))
		return bop__error(BOP_EINVAL, "bop_http_response_header: invalid header");
	h = bop__calloc(1, sizeof(*h));
	if (!h)
		return BOP_ENOMEM;
	h->name = bop__strdup(name);
	h->value = bop__strdup(value);
	if (!h->name || !h->value) {
		free(h->name);
		free(h->value);
		free(h);
		return BOP_ENOMEM;
	}
	h->next = req->headers;
	req->headers = h;
	return 0;
}

static int check_can_respond(bop_http_request_t *req)
{
	if (!req)
		return bop__error(BOP_EINVAL, "NULL request");
	if (req->gone)
		return bop__error(BOP_ECANCELED, "the client of %s %s went away", req->method, req->path);
	if (req->response || req->queued)
		return bop__error(BOP_EINVAL, "%s %s already has a response", req->method, req->path);
	return 0;
}

/* Takes `r`: adds the content type and the handler's headers, and keeps it. */
static int set_response(bop_http_request_t *req, struct MHD_Response *r, unsigned int status,
	const char *content_type)
{
	if (!r)
		return bop__error_oom();
	if (content_type && MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES)
		goto fail;
	for (header_t *h = req->headers; h; h = h->next)
		if (MHD_add_response_header(r, h->name, h->value) != MHD_YES)
			goto fail;
	req->response = r;
	req->status = status;
	return 0;
fail:
	MHD_destroy_response(r);
	return bop__error(BOP_EINVAL, "cannot add a header to the response of %s %s", req->method, req->path);
}

BOP_EXTERN(int) bop_http_respond(bop_http_request_t *req, unsigned int status,
	const char *content_type, const void *body, size_t len)
{
	int ret;

	if ((ret = check_can_respond(req)) < 0)
		return ret;
	if (status < 100 || status > 599)
		return bop__error(BOP_EINVAL, "HTTP status %u is out of range", status);
	return set_response(req, MHD_create_response_from_buffer(len, (void *)(body ? body : empty),
		MHD_RESPMEM_MUST_COPY), status, content_type);
}

BOP_EXTERN(int) bop_http_respond_error(bop_http_request_t *req, unsigned int status,
	const char *message)
{
	json_object *obj = json_object_new_object();
	const char *text;
	int ret;

	if (!obj)
		return bop__error_oom();
	json_object_object_add(obj, "error", json_object_new_string(message ? message : ""));
	text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);
	ret = bop_http_respond(req, status, "application/json", text, strlen(text));
	json_object_put(obj);
	return ret;
}

typedef struct source_reader {
	bop_source_t *src;
	bop_http_server_t *server;
	int64_t length;         /* -1: unknown */
	char path[256];
} source_reader_t;

static void source_reader_free(void *cls)
{
	source_reader_t *r = cls;

	bop_source_free(r->src);
	free(r);
}

static void reader_failed(source_reader_t *r, const char *why)
{
	bop__log(BOP_LOG_WARN, "http", "response to %s cut short: %s", r->path, why);
}

/* At the announced length: the source must end there and close cleanly. */
static bool source_ends_cleanly(source_reader_t *r)
{
	char probe;
	size_t got = 0;

	if (bop_source_read(r->src, &probe, 1, &got) < 0 || got != 0) {
		reader_failed(r, got ? "the source yields more than its announced length" : bop_error_last());
		return false;
	}
	if (bop_source_close(r->src) < 0) {
		reader_failed(r, bop_error_last());
		return false;
	}
	return true;
}

static ssize_t source_read_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
	source_reader_t *r = cls;
	size_t got = 0;

	if (atomic_load(&r->server->stopping)) {
		reader_failed(r, "the server is stopping");
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	if (bop_source_read(r->src, buf, max, &got) < 0) {
		reader_failed(r, bop_error_last());
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	if (got == 0) {
		if (r->length >= 0) {
			reader_failed(r, "the source ended before its announced length");
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		if (bop_source_close(r->src) < 0) {
			reader_failed(r, bop_error_last());
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	if (r->length >= 0 && pos + got == (uint64_t)r->length && !source_ends_cleanly(r))
		return MHD_CONTENT_READER_END_WITH_ERROR;
	return (ssize_t)got;
}

BOP_EXTERN(int) bop_http_respond_source(bop_http_request_t *req, unsigned int status,
	const char *content_type, bop_source_t *source, int64_t length)
{
	struct MHD_Response *resp;
	source_reader_t *r;
	int ret;

	if (!source)
		return bop__error(BOP_EINVAL, "bop_http_respond_source: NULL source");
	if ((ret = check_can_respond(req)) == 0 && (status < 100 || status > 599))
		ret = bop__error(BOP_EINVAL, "HTTP status %u is out of range", status);
	r = ret == 0 ? bop__calloc(1, sizeof(*r)) : NULL;
	if (!r) {
		bop_source_free(source);
		return ret < 0 ? ret : BOP_ENOMEM;
	}
	r->src = source;
	r->server = req->server;
	r->length = length < 0 ? -1 : length;
	snprintf(r->path, sizeof(r->path), "%s %s", req->method, req->path);
	resp = MHD_create_response_from_callback(length < 0 ? MHD_SIZE_UNKNOWN : (uint64_t)length,
		BLOCK, source_read_cb, r, source_reader_free);
	if (!resp) {
		source_reader_free(r);
		return bop__error_oom();
	}
	return set_response(req, resp, status, content_type);
}

/* ---- streamed bodies ---- */

BOP_EXTERN(int) bop_http_request_stream_body(bop_http_request_t *req, bop_sink_t *sink,
	bop_http_body_done_cb done, void *payload)
{
	int ret = 0;

	if (!req || !sink || !done)
		ret = bop__error(BOP_EINVAL, "bop_http_request_stream_body: request, sink and done are required");
	else if (!req->route || !(req->route->flags & BOP_HTTP_ROUTE_STREAM_BODY))
		ret = bop__error(BOP_EINVAL, "%s %s: the route was not added with BOP_HTTP_ROUTE_STREAM_BODY",
			req->method, req->path);
	else if (req->sink || req->response)
		ret = bop__error(BOP_EINVAL, "%s %s already has a body sink or a response", req->method, req->path);
	if (ret < 0) {
		bop_sink_free(sink);
		return ret;
	}
	req->sink = sink;
	req->done = done;
	req->done_payload = payload;
	return 0;
}

static void stream_chunk(bop_http_request_t *req, const char *data, size_t len)
{
	if (req->stream_ret < 0)
		return;                 /* the rest is discarded */
	if (atomic_load(&req->server->stopping))
		req->stream_ret = bop__error(BOP_ECANCELED, "the server is stopping");
	else
		req->stream_ret = bop_sink_write(req->sink, data, len);
	if (req->stream_ret < 0) {
		bop__log(BOP_LOG_WARN, "http", "%s %s: the body cannot be stored: %s", req->method,
			req->path, bop_error_last());
		bop_sink_abort(req->sink);
	}
}

/* The body ended: commit (or report the failure) and let the handler respond. */
static void stream_end(bop_http_request_t *req, int result)
{
	bop_sink_t *sink = req->sink;
	int ret;

	req->sink = NULL;
	if (result == 0 && req->stream_ret == 0)
		result = bop_sink_commit(sink);
	else if (result == 0)
		result = req->stream_ret;
	bop_sink_free(sink);
	if (result < 0 && bop_error_last_code() == BOP_OK)
		bop__error(result, "%s", bop_strerror(result));
	ret = req->done(req, result, req->done_payload);
	if (ret < 0)
		bop__log(BOP_LOG_DEBUG, "http", "%s %s: handler returned %d", req->method, req->path, ret);
}

/* ---- buffered bodies ---- */

static void buffer_chunk(bop_http_request_t *req, const char *data, size_t len)
{
	size_t cap;
	char *p;

	if (req->too_large)
		return;
	if (req->body_len + len > req->server->max_body) {
		req->too_large = true;
		return;
	}
	if (req->body_len + len + 1 > req->body_cap) {
		cap = req->body_cap ? req->body_cap : 4096;
		while (cap < req->body_len + len + 1)
			cap *= 2;
		p = realloc(req->body, cap);
		if (!p) {
			req->too_large = true;
			return;
		}
		req->body = p;
		req->body_cap = cap;
	}
	memcpy(req->body + req->body_len, data, len);
	req->body_len += len;
	req->body[req->body_len] = '\0';
}

/* ---- routes ---- */

static void route_free(route_t *r)
{
	for (size_t i = 0; i < r->nsegments; i++) {
		free(r->segments[i]);
		if (r->names)
			free(r->names[i]);
	}
	free(r->segments);
	free(r->names);
	free(r->method);
	free(r);
}

static bool is_param(const char *seg)
{
	size_t n = strlen(seg);

	return n >= 3 && seg[0] == '{' && seg[n - 1] == '}';
}

static bool is_rest(const char *seg)
{
	size_t n = strlen(seg);

	return is_param(seg) && n >= 6 && !strcmp(seg + n - 4, "...}");
}

/* Splits "/a/b" into "a", "b" ("/" into ""). NULL-terminated; NULL when out of memory. */
static char **split_path(const char *path, size_t *n)
{
	size_t count = 1, i = 0;
	const char *p = path + 1;
	char **v;

	for (const char *q = p; *q; q++)
		count += *q == '/';
	v = bop__calloc(count + 1, sizeof(char *));
	if (!v)
		return NULL;
	for (;;) {
		size_t len = strcspn(p, "/");

		if (!(v[i++] = bop__strndup(p, len))) {
			for (size_t j = 0; j < i; j++)
				free(v[j]);
			free(v);
			return NULL;
		}
		if (!p[len])
			break;
		p += len + 1;
	}
	*n = i;
	return v;
}

static int check_pattern(const char *pattern, route_t *r)
{
	for (size_t i = 0; i < r->nsegments; i++) {
		const char *seg = r->segments[i];

		if (is_rest(seg) && i + 1 != r->nsegments)
			return bop__error(BOP_EINVAL, "route %s: \"%s\" must be the last segment", pattern, seg);
		if ((strchr(seg, '{') || strchr(seg, '}')) && !is_param(seg))
			return bop__error(BOP_EINVAL, "route %s: a segment is either literal or a whole \"{name}\"", pattern);
		if (!*seg && i + 1 != r->nsegments)
			return bop__error(BOP_EINVAL, "route %s has an empty segment", pattern);
	}
	r->rest = r->nsegments && is_rest(r->segments[r->nsegments - 1]);
	r->names = bop__calloc(r->nsegments, sizeof(char *));
	if (!r->names)
		return BOP_ENOMEM;
	for (size_t i = 0; i < r->nsegments; i++) {
		const char *seg = r->segments[i];

		if (is_param(seg) && !(r->names[i] = bop__strndup(seg + 1, strlen(seg) - (is_rest(seg) ? 5 : 2))))
			return BOP_ENOMEM;
	}
	return 0;
}

BOP_EXTERN(int) bop_http_server_route(bop_http_server_t *server, const char *method,
	const char *pattern, unsigned int flags, bop_http_handler_cb handler, void *payload)
{
	route_t *r;
	int ret;

	if (!server || !method || !*method || !pattern || !handler)
		return bop__error(BOP_EINVAL, "bop_http_server_route: server, method, pattern and handler are required");
	if (pattern[0] != '/')
		return bop__error(BOP_EINVAL, "route pattern \"%s\" must start with '/'", pattern);
	if (server->daemon)
		return bop__error(BOP_EINVAL, "route %s %s: routes are added before the server starts", method, pattern);
	r = bop__calloc(1, sizeof(*r));
	if (!r)
		return BOP_ENOMEM;
	r->method = bop__strdup(method);
	r->segments = split_path(pattern, &r->nsegments);
	r->flags = flags;
	r->handler = handler;
	r->payload = payload;
	if (!r->method || !r->segments) {
		ret = BOP_ENOMEM;
		goto fail;
	}
	if ((ret = check_pattern(pattern, r)) < 0)
		goto fail;
	*server->tail = r;
	server->tail = &r->next;
	return 0;
fail:
	route_free(r);
	return ret;
}

static void params_clear(bop_http_request_t *req)
{
	for (size_t i = 0; i < req->nparams; i++)
		free(req->param_values[i]);
	free(req->param_values);
	free(req->param_names);
	req->param_values = NULL;
	req->param_names = NULL;
	req->nparams = 0;
}

/* The rest of the path from segment i, joined with '/'. */
static char *join_from(char **segs, size_t i, size_t n)
{
	size_t len = 0;
	char *out;

	for (size_t j = i; j < n; j++)
		len += strlen(segs[j]) + 1;
	out = bop__calloc(1, len + 1);
	for (size_t j = i; out && j < n; j++) {
		if (j > i)
			strcat(out, "/");
		strcat(out, segs[j]);
	}
	return out;
}

/* Whether the path matches the route; on a match the parameters are set. */
static bool route_matches(bop_http_request_t *req, const route_t *r, char **segs, size_t n)
{
	size_t fixed = r->rest ? r->nsegments - 1 : r->nsegments;

	if (r->rest ? n < r->nsegments : n != r->nsegments)
		return false;
	for (size_t i = 0; i < fixed; i++)
		if (is_param(r->segments[i]) ? !*segs[i] : strcmp(r->segments[i], segs[i]))
			return false;
	if (r->rest && !*segs[fixed])
		return false;
	params_clear(req);
	req->param_names = bop__calloc(r->nsegments, sizeof(char *));
	req->param_values = bop__calloc(r->nsegments, sizeof(char *));
	if (!req->param_names || !req->param_values)
		return false;
	for (size_t i = 0; i < r->nsegments; i++) {
		const char *seg = r->segments[i];

		if (!is_param(seg))
			continue;
		req->param_names[req->nparams] = r->names[i];
		req->param_values[req->nparams] = (r->rest && i == fixed) ? join_from(segs, i, n)
			: bop__strdup(segs[i]);
		if (!req->param_values[req->nparams])
			return false;
		req->nparams++;
	}
	return true;
}

static bool dot_segments(char **segs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(segs[i], ".") || !strcmp(segs[i], ".."))
			return true;
	return false;
}

/* Finds the route; *path_known tells a 405 from a 404. */
static const route_t *find_route(bop_http_request_t *req, char **segs, size_t n, bool *path_known,
	char *allow, size_t allow_size)
{
	bop_http_server_t *s = req->server;
	const route_t *get_route = NULL;

	*path_known = false;
	allow[0] = '\0';
	for (const route_t *r = s->routes; r; r = r->next) {
		if (!route_matches(req, r, segs, n))
			continue;
		*path_known = true;
		if (!strcmp(r->method, req->method))
			return r;
		if (!get_route && !strcmp(req->method, "HEAD") && !strcmp(r->method, "GET"))
			get_route = r;
		if (!strstr(allow, r->method) && strlen(allow) + strlen(r->method) + 3 < allow_size)
			snprintf(allow + strlen(allow), allow_size - strlen(allow), "%s%s", *allow ? ", " : "",
				r->method);
	}
	/* Parameters of the last matched route are in place: match again for HEAD's GET. */
	if (get_route && route_matches(req, get_route, segs, n))
		return get_route;
	return NULL;
}

/* Sets req->route, or a 400/404/405 response. */
static int route_request(bop_http_request_t *req)
{
	char allow[256];
	char **segs;
	size_t n = 0;
	bool known;
	int ret = 0;

	if (req->path[0] != '/')
		return bop_http_respond_error(req, 400, "the path must start with '/'");
	segs = split_path(req->path, &n);
	if (!segs)
		return BOP_ENOMEM;
	if (dot_segments(segs, n)) {
		ret = bop_http_respond_error(req, 400, "the path must not contain \".\" or \"..\" segments");
		goto out;
	}
	req->route = find_route(req, segs, n, &known, allow, sizeof(allow));
	if (!req->route && !known) {
		ret = bop_http_respond_error(req, 404, "not found");
	} else if (!req->route) {
		params_clear(req);
		bop_http_response_header(req, "Allow", allow);
		ret = bop_http_respond_error(req, 405, "method not allowed");
	}
out:
	for (size_t i = 0; i < n; i++)
		free(segs[i]);
	free(segs);
	return ret;
}

/* ---- authentication ---- */

static void sha256(const void *data, size_t len, unsigned char out[32])
{
	unsigned int n = 32;

	if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1)
		memset(out, 0xff, 32);
}

/* Compares digests, so the time taken depends on neither the token nor its length. */
static bool token_valid(const bop_http_server_t *s, const char *header)
{
	unsigned char got[32];
	const char *token;

	if (!header || strncasecmp(header, "Bearer ", 7))
		return false;
	token = header + 7;
	while (*token == ' ')
		token++;
	sha256(token, strlen(token), got);
	return CRYPTO_memcmp(got, s->token_hash, sizeof(got)) == 0;
}

static int authenticate(bop_http_request_t *req)
{
	const char *header;

	if (!req->server->has_token || (req->route->flags & BOP_HTTP_ROUTE_PUBLIC))
		return 1;
	header = bop_http_request_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
	if (token_valid(req->server, header))
		return 1;
	bop_http_response_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, header ?
		"Bearer realm=\"backupop\", error=\"invalid_token\"" : "Bearer realm=\"backupop\"");
	bop_http_respond_error(req, 401, header ? "the bearer token is not valid"
		: "authentication required: send \"Authorization: Bearer <token>\"");
	return 0;
}

/* ---- the request cycle ---- */

static bop_http_request_t *request_new(bop_http_server_t *s, struct MHD_Connection *conn,
	const char *url, const char *method)
{
	bop_http_request_t *req = bop__calloc(1, sizeof(*req));

	if (!req)
		return NULL;
	req->server = s;
	req->conn = conn;
	req->method = method;
	req->start_ms = bop__now_ms();
	req->path = bop__strdup(url);
	if (!req->path) {
		free(req);
		return NULL;
	}
	return req;
}

static void request_free(bop_http_request_t *req)
{
	bop_sink_free(req->sink);
	if (req->response)
		MHD_destroy_response(req->response);
	headers_free(req->headers);
	headers_free(req->in_headers);
	headers_free(req->in_args);
	params_clear(req);
	free(req->body);
	free(req->path);
	free(req);
}

static void call_handler(bop_http_request_t *req)
{
	int ret;

	bop_error_clear();
	ret = req->route->handler(req, req->route->payload);
	if (ret < 0)
		bop__log(BOP_LOG_DEBUG, "http", "%s %s: handler returned %d: %s", req->method, req->path,
			ret, bop_error_last());
}

/* Declared length of the body, -1 when unknown. */
static int64_t content_length(const bop_http_request_t *req)
{
	const char *v = bop_http_request_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);

	return v ? strtoll(v, NULL, 10) : -1;
}

static void too_large(bop_http_request_t *req)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "the request body is larger than %zu bytes", req->server->max_body);
	bop_http_respond_error(req, 413, msg);
}

/* The headers arrived: route, authenticate, and for streaming routes call the handler. */
static void on_headers(bop_http_request_t *req)
{
	if (route_request(req) < 0 && !req->response) {
		bop_http_respond_error(req, 500, "internal error");
		return;
	}
	if (req->response || !authenticate(req))
		return;
	if (req->route->flags & BOP_HTTP_ROUTE_STREAM_BODY) {
		call_handler(req);
		if (!req->response && !req->sink)
			bop_http_respond_error(req, 500, "the handler did not respond");
		return;
	}
	if (content_length(req) > (int64_t)req->server->max_body)
		too_large(req);
}

/* The whole request arrived. */
static void on_complete(bop_http_request_t *req)
{
	if (req->sink)
		stream_end(req, 0);
	else if (req->too_large)
		too_large(req);
	else
		call_handler(req);
	if (!req->response)
		bop_http_respond_error(req, 500, "the handler did not respond");
}

static enum MHD_Result queue(bop_http_request_t *req)
{
	enum MHD_Result r;

	if (!req->response)
		return MHD_NO;
	r = MHD_queue_response(req->conn, req->status, req->response);
	MHD_destroy_response(req->response);
	req->response = NULL;
	req->queued = true;
	return r;
}

/*
 * A body without a declared length (chunked) went past the limit. libmicrohttpd queues
 * a response only before the body or after all of it, and reading the rest is what a
 * client flooding the server wants: the 413 is written to the socket directly, the
 * sending side is shut, and the connection is dropped without reading further.
 */
static enum MHD_Result refuse_rest(bop_http_request_t *req)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(req->conn,
		MHD_CONNECTION_INFO_CONNECTION_FD);
	char body[128], head[256];
	int blen, hlen;

	blen = snprintf(body, sizeof(body), "{\"error\":\"the request body is larger than %zu bytes\"}",
		req->server->max_body);
	hlen = snprintf(head, sizeof(head), "HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n"
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", blen);
	req->status = 413;
	req->queued = true;
	if (ci && ci->connect_fd != MHD_INVALID_SOCKET) {
		(void)!send(ci->connect_fd, head, (size_t)hlen, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)!send(ci->connect_fd, body, (size_t)blen, MSG_NOSIGNAL | MSG_DONTWAIT);
		shutdown(ci->connect_fd, SHUT_WR);
	}
	return MHD_NO;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
	const char *method, const char *version, const char *upload_data, size_t *upload_data_size,
	void **con_cls)
{
	bop_http_request_t *req = *con_cls;

	BOP_UNUSED(version);
	if (!req) {
		req = request_new(cls, conn, url, method);
		if (!req)
			return MHD_NO;
		*con_cls = req;
		/* The headers are in: the body and the response get the longer idle timeout. */
		if (req->server->timeout > HEADER_TIMEOUT)
			MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, req->server->timeout);
		on_headers(req);
		return req->response ? queue(req) : MHD_YES;
	}
	if (*upload_data_size) {
		req->bytes_in += *upload_data_size;
		if (req->sink)
			stream_chunk(req, upload_data, *upload_data_size);
		else if (!req->queued)
			buffer_chunk(req, upload_data, *upload_data_size);
		*upload_data_size = 0;
		if (req->too_large && !req->queued)
			return refuse_rest(req);
		return MHD_YES;
	}
	if (req->queued)
		return MHD_YES;
	on_complete(req);
	return queue(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
	enum MHD_RequestTerminationCode toe)
{
	bop_http_request_t *req = *con_cls;

	BOP_UNUSED(cls);
	BOP_UNUSED(conn);
	if (!req)
		return;
	*con_cls = NULL;
	if (req->sink) {
		/* The client went away (or the server stopped) in the middle of the body. */
		req->gone = true;
		bop__error(BOP_ECANCELED, "the client closed the connection before the end of the body");
		req->stream_ret = BOP_ECANCELED;
		bop_sink_abort(req->sink);
		stream_end(req, BOP_ECANCELED);
	}
	bop__log(BOP_LOG_DEBUG, "http", "%s %s -> %u (%llu bytes in, %lld ms)%s", req->method,
		req->path, req->status, (unsigned long long)req->bytes_in,
		(long long)(bop__now_ms() - req->start_ms),
		toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection ended early)");
	request_free(req);
}

BOP_PRINTF(2, 0)
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	BOP_UNUSED(cls);
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	bop__log(BOP_LOG_DEBUG, "http", "%s", line);
}

/* ---- requests without a connection (tests, fuzzing) ---- */

static int hex_digit(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
		c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decodes n bytes of `in` as libmicrohttpd does (and '+' as a space in arguments);
 * the result ends at a decoded NUL, as it does there. */
static char *unescape(const char *in, size_t n, bool plus)
{
	char *out = bop__calloc(1, n + 1);
	size_t o = 0;

	for (size_t i = 0; out && i < n; i++) {
		if (in[i] == '%' && i + 2 < n && hex_digit(in[i + 1]) >= 0 &&
		    hex_digit(in[i + 2]) >= 0) {
			out[o++] = (char)(hex_digit(in[i + 1]) * 16 + hex_digit(in[i + 2]));
			i += 2;
		} else {
			out[o++] = plus && in[i] == '+' ? ' ' : in[i];
		}
	}
	return out;
}

static int add_pair(header_t **list, char *name, char *value)
{
	header_t *h = bop__calloc(1, sizeof(*h));

	if (!h || !name || !value) {
		free(h);
		free(name);
		free(value);
		return BOP_ENOMEM;
	}
	h->name = name;
	h->value = value;
	h->next = *list;
	*list = h;
	return 0;
}

/* "a=1&b&c=%41" into arguments. */
static int parse_query(bop_http_request_t *req, const char *q)
{
	while (*q) {
		size_t len = strcspn(q, "&"), klen = strcspn(q, "=");
		int ret;

		if (klen > len)
			klen = len;
		if (len > 0 && (ret = add_pair(&req->in_args, unescape(q, klen, true),
			    klen < len ? unescape(q + klen + 1, len - klen - 1, true) : bop__strdup(""))) < 0)
			return ret;
		q += len;
		if (*q == '&')
			q++;
	}
	return 0;
}

int bop__http_server_dispatch(bop_http_server_t *s, const char *method, const char *target,
	const char *authorization, const void *body, size_t len, unsigned int *status)
{
	bop_http_request_t *req;
	size_t plen;
	char *path;
	int ret = 0;

	*status = 0;
	if (!s || !method || !target)
		return bop__error(BOP_EINVAL, "bop__http_server_dispatch: invalid arguments");
	plen = strcspn(target, "?");
	path = unescape(target, plen, false);
	if (!path)
		return BOP_ENOMEM;
	req = request_new(s, NULL, path, method);
	free(path);
	if (!req)
		return BOP_ENOMEM;
	if (target[plen] == '?')
		ret = parse_query(req, target + plen + 1);
	if (ret == 0 && authorization)
		ret = add_pair(&req->in_headers, bop__strdup(MHD_HTTP_HEADER_AUTHORIZATION),
			bop__strdup(authorization));
	if (ret == 0 && body)
		ret = add_pair(&req->in_headers, bop__strdup(MHD_HTTP_HEADER_CONTENT_LENGTH),
			bop__sprintf("%zu", len));
	if (ret < 0)
		goto out;
	on_headers(req);
	/* The body in uneven pieces, as it arrives from a socket. */
	for (size_t pos = 0, piece = 1; !req->response && body && pos < len; piece = piece * 3 + 1) {
		size_t n = len - pos < piece ? len - pos : piece;

		req->bytes_in += n;
		if (req->sink)
			stream_chunk(req, (const char *)body + pos, n);
		else
			buffer_chunk(req, (const char *)body + pos, n);
		pos += n;
		if (req->too_large && !req->sink) {
			too_large(req);
			break;
		}
	}
	if (!req->response)
		on_complete(req);
	*status = req->status;
out:
	request_free(req);
	return ret;
}

/* ---- the server ---- */

BOP_EXTERN(int) bop_http_server_new(bop_http_server_t **out, const bop_http_server_options_t *opts)
{
	bop_http_server_t *s;
	int ret;

	if (!out || !opts)
		return bop__error(BOP_EINVAL, "bop_http_server_new: out and options are required");
	*out = NULL;
	if (BOP__VERSION_CHECK("bop_http_server_options_t", NULL, opts->version,
	    HTTP_SERVER_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	s = bop__calloc(1, sizeof(*s));
	if (!s)
		return BOP_ENOMEM;
	s->fd = -1;
	s->tail = &s->routes;
	s->max_body = opts->max_body_bytes ? opts->max_body_bytes : DEFAULT_MAX_BODY;
	s->max_connections = opts->max_connections ? opts->max_connections : DEFAULT_MAX_CONNECTIONS;
	s->timeout = opts->timeout_seconds ? opts->timeout_seconds : DEFAULT_TIMEOUT;
	atomic_init(&s->stopping, false);
	if (opts->token && *opts->token) {
		s->has_token = true;
		sha256(opts->token, strlen(opts->token), s->token_hash);
		if (strlen(opts->token) >= 4 && (ret = bop_log_add_secret(opts->token)) < 0)
			goto fail;
	}
	s->listen = bop__strdup(opts->listen ? opts->listen : "");
	if (!s->listen) {
		ret = BOP_ENOMEM;
		goto fail;
	}
	if ((ret = bop__http_listen(opts->listen, &s->fd, &s->port)) < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	bop_http_server_free(s);
	return ret;
}

BOP_EXTERN(int) bop_http_server_port(const bop_http_server_t *server)
{
	return server ? server->port : -1;
}

BOP_EXTERN(int) bop_http_server_start(bop_http_server_t *s)
{
	unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC;
	unsigned int per_ip = s ? s->max_connections / 4 : 0;

	if (!s)
		return bop__error(BOP_EINVAL, "bop_http_server_start: NULL server");
	if (s->daemon)
		return bop__error(BOP_EINVAL, "the server on %s is already started", s->listen);
	if (s->fd < 0)
		return bop__error(BOP_EINVAL, "the server on %s was stopped; create a new one", s->listen);
	s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
		MHD_OPTION_LISTEN_SOCKET, (MHD_socket)s->fd,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)POOL_THREADS,
		MHD_OPTION_CONNECTION_LIMIT, s->max_connections,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip ? per_ip : 1u,
		MHD_OPTION_CONNECTION_TIMEOUT, s->timeout < HEADER_TIMEOUT ? s->timeout : HEADER_TIMEOUT,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
		MHD_OPTION_END);
	if (!s->daemon)
		return bop__error(BOP_ERROR, "cannot start the HTTP server on %s", s->listen);
	bop__log(BOP_LOG_INFO, "http", "listening on %s (port %d)", s->listen, s->port);
	return 0;
}

BOP_EXTERN(void) bop_http_server_stop(bop_http_server_t *s)
{
	if (!s)
		return;
	atomic_store(&s->stopping, true);
	if (s->daemon) {
		MHD_stop_daemon(s->daemon);     /* closes the listening socket too */
		s->daemon = NULL;
		s->fd = -1;
		bop__log(BOP_LOG_INFO, "http", "stopped listening on %s", s->listen);
	}
}

BOP_EXTERN(void) bop_http_server_free(bop_http_server_t *s)
{
	route_t *next;

	if (!s)
		return;
	bop_http_server_stop(s);
	if (s->fd >= 0)
		close(s->fd);
	for (route_t *r = s->routes; r; r = next) {
		next = r->next;
		route_free(r);
	}
	bop__wipe(s->token_hash, sizeof(s->token_hash));
	free(s->listen);
	free(s);
}

/* ---- /metrics ---- */

static int serve_metrics(bop_http_request_t *req, void *payload)
{
	char *text = NULL;
	size_t len = 0;
	int ret;

	if ((ret = bop_metrics_render(payload, &text, &len)) < 0)
		return bop_http_respond_error(req, 500, bop_error_last());
	ret = bop_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
	free(text);
	return ret;
}

BOP_EXTERN(int) bop_http_server_serve_metrics(bop_http_server_t *server, const char *path,
	unsigned int flags, bop_metrics_t *metrics)
{
	if (!metrics)
		return bop__error(BOP_EINVAL, "bop_http_server_serve_metrics: NULL metrics");
	return bop_http_server_route(server, "GET", path ? path : "/metrics",
		flags & ~BOP_HTTP_ROUTE_STREAM_BODY, serve_metrics, metrics);
}
