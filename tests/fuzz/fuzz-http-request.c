/*
 * Arbitrary bytes as a request to the runner's API, run through the HTTP server without a
 * socket: routing, percent-decoding, query arguments, bearer authentication, the body
 * limit, and the runner's checks of ids and JSON bodies (runner/daemon/api_request.c).
 *
 * Input: "METHOD\nTARGET\nAUTHORIZATION\nBODY..." (TARGET is "/path?query", percent-encoded
 * as on the wire; an empty AUTHORIZATION line sends none). Every request must end in one
 * of the statuses the server and the handlers give; a crash, a leak or any other status
 * is a failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-common.h"
#include "http/http.h"

/* The runner's request checks are part of the daemon, not a library: compiled in here. */
#include "../../runner/daemon/api_request.c"

#define TOKEN "fuzz-token-0123456789abcdef"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bop_http_server_t *server;

/* POST /v1/backups, /v1/restores, /v1/verifications */
static int h_post(bop_http_request_t *req, void *payload)
{
	size_t len = 0;
	const char *body = bop_http_request_body(req, &len);
	char *backup = NULL, *target = NULL, why[512];
	bool restore = payload && !strcmp(payload, "r");
	const char *request_id = bop_http_request_query(req, "requestId");
	int ret;

	if (request_id && !api_request_id_ok(request_id, why, sizeof(why)))
		return bop_http_respond_error(req, 400, why);
	if (request_id && (!*request_id || strlen(request_id) > API_REQUEST_ID_MAX ||
	    strpbrk(request_id, " ;/?&=%\"\\")))
		abort();        /* the check let through a requestId it should refuse */
	ret = api_parse_run_body(body, len, payload != NULL, &backup,
		restore ? &target : NULL, why, sizeof(why));

	if (ret == 0 && backup && !bop_catalog_id_valid(backup))
		abort();        /* the check let through an id the catalog refuses */
	if (ret == 0 && target && !api_database_name_ok(target, why, sizeof(why)))
		abort();        /* ... or a database name it refuses */
	if (ret != 0 && target)
		abort();        /* a failed parse left a name behind */
	free(backup);
	free(target);
	if (ret == -1)
		return bop_http_respond_error(req, 400, why);
	return bop_http_respond(req, ret == 0 ? 202 : 500, "application/json", "{}", 2);
}

/* DELETE /v1/backups/{id} */
static int h_delete(bop_http_request_t *req, void *payload)
{
	const char *id = bop_http_request_param(req, "id");
	char why[512];

	(void)payload;
	if (!id || !*id)
		abort();        /* the router matched an empty segment */
	if (!api_backup_id_ok(id, why, sizeof(why)))
		return bop_http_respond_error(req, 400, why);
	return bop_http_respond(req, 204, NULL, NULL, 0);
}

/* GET routes: parameters and query arguments are read and echoed. */
static int h_get(bop_http_request_t *req, void *payload)
{
	const char *id = bop_http_request_param(req, "id"), *path = bop_http_request_param(req, "path");
	const char *a = bop_http_request_query(req, "a"), *h = bop_http_request_header(req, "x-none");
	char *text = bop__sprintf("%s|%s|%s|%s|%s", (const char *)payload, id ? id : "",
		path ? path : "", a ? a : "", h ? h : "");
	int ret;

	if (!text)
		return bop_http_respond_error(req, 500, "out of memory");
	ret = bop_http_respond(req, 200, "text/plain", text, strlen(text));
	free(text);
	return ret;
}

static int init(void)
{
	bop_http_server_options_t o;
	int ret;

	bop_log_set_level(BOP_LOG_OFF);
	bop_http_server_options_init(&o, BOP_HTTP_SERVER_OPTIONS_VERSION);
	o.listen = "127.0.0.1:0";
	o.token = TOKEN;
	o.max_body_bytes = 4096;
	ret = bop_http_server_new(&server, &o);
	if (ret == 0)
		ret = bop_http_server_route(server, "POST", "/v1/backups", 0, h_post, NULL);
	if (ret == 0)
		ret = bop_http_server_route(server, "POST", "/v1/restores", 0, h_post, "r");
	if (ret == 0)
		ret = bop_http_server_route(server, "POST", "/v1/verifications", 0, h_post, "v");
	if (ret == 0)
		ret = bop_http_server_route(server, "GET", "/v1/backups", 0, h_get, "backups");
	if (ret == 0)
		ret = bop_http_server_route(server, "DELETE", "/v1/backups/{id}", 0, h_delete, NULL);
	if (ret == 0)
		ret = bop_http_server_route(server, "GET", "/v1/runs", 0, h_get, "runs");
	if (ret == 0)
		ret = bop_http_server_route(server, "GET", "/v1/runs/{id}", 0, h_get, "run");
	if (ret == 0)
		ret = bop_http_server_route(server, "GET", "/v1/status", 0, h_get, "status");
	if (ret == 0)
		ret = bop_http_server_route(server, "GET", "/v1/cockroach/{id}/{path...}",
			BOP_HTTP_ROUTE_PUBLIC, h_get, "files");
	if (ret == 0)
		ret = bop_http_server_route(server, "GET", "/healthz", BOP_HTTP_ROUTE_PUBLIC, h_get,
			"healthz");
	return ret;
}

/* The next line of the input (up to '\n'), NUL-terminated, or NULL at the end. */
static char *next_line(const uint8_t **data, size_t *size)
{
	const uint8_t *nl = memchr(*data, '\n', *size);
	size_t n = nl ? (size_t)(nl - *data) : *size;
	char *line;

	if (!nl && *size == 0)
		return NULL;
	line = malloc(n + 1);
	if (!line)
		abort();
	memcpy(line, *data, n);
	line[n] = '\0';
	*data += nl ? n + 1 : n;
	*size -= nl ? n + 1 : n;
	return line;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *method, *target, *auth;
	unsigned int status = 0;
	int ret;

	if (!server && init() < 0)
		abort();
	method = next_line(&data, &size);
	target = next_line(&data, &size);
	auth = next_line(&data, &size);
	if (method && target) {
		ret = bop__http_server_dispatch(server, method, target, auth && *auth ? auth : NULL,
			size ? data : NULL, size, &status);
		if (getenv("FUZZ_HTTP_VERBOSE"))
			fprintf(stderr, "%.20s %.60s -> %d %u\n", method, target, ret, status);
		if (ret == 0 && !(status == 200 || status == 202 || status == 204 ||
		    status == 400 || status == 401 || status == 404 || status == 405 ||
		    status == 413))
			abort();        /* 500: the server or a handler failed on this input */
	}
	free(method);
	free(target);
	free(auth);
	return 0;
}
