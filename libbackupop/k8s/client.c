/*
 * Requests to the Kubernetes API server on libcurl: TLS verified against the configured CA
 * (or the system's), bearer token or client certificate, JSON bodies (json-c), statuses
 * mapped to libbackupop error codes with the server's own message, and bounded retries of
 * 429, 5xx and failed connections. The bearer token is only ever put in a header that is
 * wiped after use; it is registered as a log secret besides.
 */
#include "k8s/k8s.h"
#include "util/backoff.h"
#include "util/curl.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BODY_MAX (64u << 20)
#define RETRY_SLEEP_CAP_MS 10000

struct bop__k8s_client {
	bop__k8s_config_t *cfg;
	CURL *curl;
	pthread_mutex_t lock;
	/* guards cfg's token (re-read from token_file) for requests and streams */
	pthread_mutex_t token_lock;
	int max_tries;
	int base_ms;
	int max_ms;
	long timeout;
};

typedef struct body_buf {
	char *data;
	size_t len;
	size_t cap;
	bool too_large;
} body_buf_t;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void init_curl(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static const char *method_name(bop__k8s_method_t m)
{
	switch (m) {
	case BOP__K8S_GET:
		return "GET";
	case BOP__K8S_POST:
		return "POST";
	case BOP__K8S_PUT:
		return "PUT";
	case BOP__K8S_PATCH_MERGE:
	case BOP__K8S_PATCH_APPLY:
		return "PATCH";
	case BOP__K8S_DELETE:
		return "DELETE";
	}
	return "?";
}

static const char *content_type(bop__k8s_method_t m)
{
	switch (m) {
	case BOP__K8S_PATCH_MERGE:
		return "Content-Type: application/merge-patch+json";
	case BOP__K8S_PATCH_APPLY:
		return "Content-Type: application/apply-patch+yaml";
	case BOP__K8S_GET:
	case BOP__K8S_POST:
	case BOP__K8S_PUT:
	case BOP__K8S_DELETE:
		break;
	}
	return "Content-Type: application/json";
}

int bop__k8s_client_new(bop__k8s_client_t **out, bop__k8s_config_t *cfg)
{
	bop__k8s_client_t *c;

	*out = NULL;
	pthread_once(&curl_once, init_curl);
	if (curl_init_result != CURLE_OK) {
		bop__k8s_config_free(cfg);
		return bop__error(BOP_ERROR, "cannot initialize libcurl: %s",
			curl_easy_strerror(curl_init_result));
	}
	c = bop__calloc(1, sizeof(*c));
	if (!c) {
		bop__k8s_config_free(cfg);
		return BOP_ENOMEM;
	}
	c->cfg = cfg;
	c->max_tries = 5;
	c->base_ms = 200;
	c->max_ms = 30000;
	c->timeout = 30;
	c->curl = curl_easy_init();
	if (!c->curl) {
		bop__k8s_client_free(c);
		return bop__error_oom();
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->token_lock, NULL);
	*out = c;
	return 0;
}

void bop__k8s_client_free(bop__k8s_client_t *c)
{
	if (!c)
		return;
	if (c->curl) {
		curl_easy_cleanup(c->curl);
		pthread_mutex_destroy(&c->lock);
		pthread_mutex_destroy(&c->token_lock);
	}
	bop__k8s_config_free(c->cfg);
	free(c);
}

bop__k8s_config_t *bop__k8s_client_config(bop__k8s_client_t *c)
{
	return c->cfg;
}

void bop__k8s_client_set_retry(bop__k8s_client_t *c, int max_tries, int base_ms, int max_ms)
{
	c->max_tries = max_tries < 1 ? 1 : max_tries;
	c->base_ms = base_ms < 1 ? 1 : base_ms;
	c->max_ms = max_ms < 0 ? 0 : max_ms;
}

void bop__k8s_client_set_timeout(bop__k8s_client_t *c, long seconds)
{
	c->timeout = seconds < 1 ? 1 : seconds;
}

void bop__k8s_response_clear(bop__k8s_response_t *resp)
{
	if (!resp)
		return;
	json_object_put(resp->body);
	free(resp->text);
	memset(resp, 0, sizeof(*resp));
}

/* ---- one attempt ---- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	body_buf_t *b = userdata;
	size_t n = size * nmemb;

	if (b->len + n > BODY_MAX) {
		b->too_large = true;
		return 0;
	}
	if (bop__reserve(&b->data, &b->cap, b->len + n + 1, 1, 16384) < 0)
		return 0;
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

static int add_header(struct curl_slist **list, const char *line)
{
	struct curl_slist *next = curl_slist_append(*list, line);

	if (!next)
		return bop__error_oom();
	*list = next;
	return 0;
}

/* Wipes every header line: one of them carries the token. */
static void free_headers(struct curl_slist *list)
{
	for (struct curl_slist *h = list; h; h = h->next)
		bop__wipe(h->data, strlen(h->data));
	curl_slist_free_all(list);
}

/* The Authorization header line (malloc'd, the caller wipes it), or NULL for none. */
static int auth_header(bop__k8s_client_t *c, char **out)
{
	const char *token;
	int ret;

	*out = NULL;
	pthread_mutex_lock(&c->token_lock);
	ret = bop__k8s_config_token(c->cfg, &token);
	if (ret == 0 && token) {
		*out = bop__sprintf("Authorization: Bearer %s", token);
		if (!*out)
			ret = BOP_ENOMEM;
	}
	pthread_mutex_unlock(&c->token_lock);
	return ret;
}

static int make_headers(bop__k8s_client_t *c, bop__k8s_method_t method, bool has_body,
	struct curl_slist **out)
{
	struct curl_slist *list = NULL;
	char *auth = NULL;
	int ret;

	*out = NULL;
	ret = auth_header(c, &auth);
	if (ret < 0)
		return ret;
	ret = add_header(&list, "Accept: application/json");
	if (ret == 0 && has_body)
		ret = add_header(&list, content_type(method));
	if (ret == 0)
		ret = add_header(&list, "Expect:");
	if (ret == 0 && auth)
		ret = add_header(&list, auth);
	if (auth) {
		bop__wipe(auth, strlen(auth));
		free(auth);
	}
	if (ret < 0) {
		free_headers(list);
		return ret;
	}
	*out = list;
	return 0;
}

/* The path with fieldManager/force appended for apply and when a manager is given. */
static char *make_url(bop__k8s_client_t *c, const bop__k8s_request_t *req)
{
	char *url, *fm = NULL;
	char sep = strchr(req->path, '?') ? '&' : '?';

	if (req->field_manager) {
		fm = curl_easy_escape(c->curl, req->field_manager, 0);
		if (!fm) {
			bop__error_oom();
			return NULL;
		}
	}
	if (fm)
		url = bop__sprintf("%s%s%cfieldManager=%s%s", c->cfg->server, req->path, sep, fm,
			req->method == BOP__K8S_PATCH_APPLY && req->force ? "&force=true" : "");
	else
		url = bop__sprintf("%s%s", c->cfg->server, req->path);
	curl_free(fm);
	return url;
}

static void set_tls(const bop__k8s_config_t *cfg, CURL *curl)
{
	struct curl_blob blob;

	if (cfg->insecure) {
		curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (cfg->ca_pem) {
		blob = (struct curl_blob){ cfg->ca_pem, cfg->ca_len, CURL_BLOB_COPY };
		curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &blob);
	}
	if (cfg->cert_pem) {
		blob = (struct curl_blob){ cfg->cert_pem, cfg->cert_len, CURL_BLOB_COPY };
		curl_easy_setopt(curl, CURLOPT_SSLCERT_BLOB, &blob);
		curl_easy_setopt(curl, CURLOPT_SSLCERTTYPE, "PEM");
		blob = (struct curl_blob){ cfg->key_pem, cfg->key_len, CURL_BLOB_COPY };
		curl_easy_setopt(curl, CURLOPT_SSLKEY_BLOB, &blob);
		curl_easy_setopt(curl, CURLOPT_SSLKEYTYPE, "PEM");
	}
}

static void set_options(bop__k8s_client_t *c, const bop__k8s_request_t *req, const char *url,
	const char *body, struct curl_slist *headers, body_buf_t *buf, char *errbuf)
{
	CURL *curl = c->curl;

	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method_name(req->method));
	if (body) {
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	} else if (req->method == BOP__K8S_GET) {
		curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
	}
	bop__curl_defaults(curl, c->timeout < 10 ? c->timeout : 10L, c->timeout);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, c->timeout * 4);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, buf);
	set_tls(c->cfg, curl);
}

/* A transport failure: message, code, and whether trying again may help. */
static int transport_error(bop__k8s_client_t *c, const char *what, CURLcode rc,
	const char *errbuf, bool sent_safe, bool *retry)
{
	const char *detail = errbuf && *errbuf ? errbuf : curl_easy_strerror(rc);
	const char *server = c->cfg->server;

	*retry = false;
	if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST) {
		*retry = true;
		return bop__error(BOP_ECONNECT, "%s: cannot connect to the API server %s: %s", what,
			server, detail);
	}
	if (rc == CURLE_OPERATION_TIMEDOUT) {
		*retry = sent_safe;
		return bop__error(BOP_ETIMEOUT, "%s: the API server %s did not answer in time (%s)",
			what, server, detail);
	}
	if (rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING ||
	    rc == CURLE_PARTIAL_FILE) {
		*retry = sent_safe;
		return bop__error(BOP_EIO, "%s: the connection to the API server %s failed: %s",
			what, server, detail);
	}
	if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
	    rc == CURLE_SSL_CONNECT_ERROR)
		return bop__error(BOP_EIO, "%s: TLS with the API server %s failed: %s (check the certificate authority of %s)",
			what, server, detail, c->cfg->source);
	if (rc == CURLE_SSL_CERTPROBLEM)
		return bop__error(BOP_EAUTH, "%s: the client certificate of %s cannot be used: %s",
			what, c->cfg->source, detail);
	if (rc == CURLE_WRITE_ERROR)
		return bop__error(BOP_EIO, "%s: the response of %s is too large", what, server);
	return bop__error(BOP_EIO, "%s: %s", what, detail);
}

/* The message of a Kubernetes Status body, or the body's start. */
static const char *status_message(const bop__k8s_response_t *resp, const char *text)
{
	json_object *m;

	if (resp->body && json_object_object_get_ex(resp->body, "message", &m) &&
	    json_object_is_type(m, json_type_string))
		return json_object_get_string(m);
	return text && *text ? text : "(no message)";
}

static bool status_retryable(long status)
{
	return status == 429 || status == 500 || status == 502 || status == 503 ||
		status == 504;
}

static int status_error(bop__k8s_client_t *c, const char *what, bop__k8s_response_t *resp,
	const char *text)
{
	const char *msg = status_message(resp, text);
	long s = resp->status;

	switch (s) {
	case 401:
		return bop__error(BOP_EAUTH, "%s: the API server %s refused the credentials of %s (HTTP 401): %s",
			what, c->cfg->server, c->cfg->source, msg);
	case 403:
		return bop__error(BOP_EAUTH, "%s: forbidden (HTTP 403): %s", what, msg);
	case 404:
		return bop__error(BOP_ENOTFOUND, "%s: not found (HTTP 404): %s", what, msg);
	case 409:
		return bop__error(BOP_ECONFLICT, "%s: conflict (HTTP 409): %s", what, msg);
	case 410:
		resp->gone = true;
		return bop__error(BOP_ENOTFOUND, "%s: gone (HTTP 410): %s", what, msg);
	case 400:
	case 415:
	case 422:
		return bop__error(BOP_EINVAL, "%s: rejected (HTTP %ld): %s", what, s, msg);
	default:
		return bop__error(BOP_EIO, "%s: the API server answered HTTP %ld: %s", what, s, msg);
	}
}

static void parse_body(bop__k8s_response_t *resp, const body_buf_t *buf)
{
	json_tokener *tok;

	if (!buf->data || !buf->len)
		return;
	tok = json_tokener_new();
	if (!tok)
		return;
	resp->body = json_tokener_parse_ex(tok, buf->data, (int)buf->len);
	if (json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(resp->body);
		resp->body = NULL;
	}
	json_tokener_free(tok);
}

/* A Retry-After header's wait in milliseconds, or 0. */
static int64_t retry_after(CURL *curl)
{
	struct curl_header *h;

	if (curl_easy_header(curl, "Retry-After", 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
		return 0;
	return bop__retry_after_ms(h->value, time(NULL));
}

typedef struct attempt {
	const char *what;
	const char *url;
	const char *body;
	bool retry;
	int64_t retry_after_ms;
} attempt_t;

static int perform_once(bop__k8s_client_t *c, const bop__k8s_request_t *req, attempt_t *a,
	bop__k8s_response_t *resp)
{
	struct curl_slist *headers = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	body_buf_t buf = { 0 };
	CURLcode rc;
	int ret;

	bop__k8s_response_clear(resp);
	a->retry = false;
	a->retry_after_ms = 0;
	ret = make_headers(c, req->method, req->body || req->body_text, &headers);
	if (ret < 0)
		return bop__error_wrap("%s", a->what);
	set_options(c, req, a->url, a->body, headers, &buf, errbuf);
	rc = curl_easy_perform(c->curl);
	if (rc != CURLE_OK) {
		ret = transport_error(c, a->what, rc, errbuf, req->method == BOP__K8S_GET,
			&a->retry);
		goto out;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &resp->status);
	parse_body(resp, &buf);
	if (req->want_text && buf.data) {
		resp->text = buf.data;
		resp->text_len = buf.len;
		buf.data = NULL;
	}
	if (resp->status >= 200 && resp->status < 300)
		goto out;
	ret = status_error(c, a->what, resp, resp->text ? resp->text : buf.data);
	a->retry = status_retryable(resp->status);
	if (a->retry)
		a->retry_after_ms = retry_after(c->curl);
out:
	/* the handle keeps a pointer to the list: drop it before freeing */
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	free_headers(headers);
	free(buf.data);
	return ret;
}

/* Sleeps before try `attempt` + 1; false when the budget is spent. */
static bool backoff(bop__k8s_client_t *c, int attempt, int64_t start_ms, int64_t retry_after_ms)
{
	const bop__backoff_t b = { .base_ms = c->base_ms, .cap_ms = RETRY_SLEEP_CAP_MS,
		.jitter = 1.0, .max_tries = c->max_tries, .max_ms = c->max_ms };

	return bop__backoff_wait(&b, attempt, start_ms, retry_after_ms, "k8s");
}

static int check_request(const bop__k8s_request_t *req)
{
	if (!req->path || req->path[0] != '/')
		return bop__error(BOP_EINVAL, "Kubernetes API path must start with '/'");
	bool body = req->body || req->body_text;

	if (req->method == BOP__K8S_PATCH_APPLY && (!req->field_manager || !body))
		return bop__error(BOP_EINVAL,
			"server-side apply of %s needs a body and a field manager", req->path);
	if ((req->method == BOP__K8S_POST || req->method == BOP__K8S_PUT ||
	     req->method == BOP__K8S_PATCH_MERGE) && !body)
		return bop__error(BOP_EINVAL, "%s %s needs a body", method_name(req->method),
			req->path);
	return 0;
}

static int perform(bop__k8s_client_t *c, const bop__k8s_request_t *req, attempt_t *a,
	bop__k8s_response_t *resp)
{
	int64_t start = bop__now_ms();
	int ret, tries = 0;

	for (;;) {
		ret = perform_once(c, req, a, resp);
		tries++;
		if (ret == 0 || !a->retry)
			return ret;
		if (!backoff(c, tries, start, a->retry_after_ms))
			break;
	}
	if (tries > 1)
		bop__error_wrap("gave up after %d tries in %.1f s", tries,
			(double)(bop__now_ms() - start) / 1000.0);
	return ret;
}

int bop__k8s_request(bop__k8s_client_t *c, const bop__k8s_request_t *req,
	bop__k8s_response_t *resp)
{
	attempt_t a = { 0 };
	char *what = NULL, *url = NULL;
	int ret;

	memset(resp, 0, sizeof(*resp));
	ret = check_request(req);
	if (ret < 0)
		return ret;
	what = bop__sprintf("%s %s", method_name(req->method), req->path);
	if (!what)
		return BOP_ENOMEM;
	pthread_mutex_lock(&c->lock);
	url = make_url(c, req);
	if (!url) {
		ret = BOP_ENOMEM;
		goto out;
	}
	a.what = what;
	a.url = url;
	if (req->body)
		a.body = json_object_to_json_string_ext(req->body, JSON_C_TO_STRING_PLAIN);
	else
		a.body = req->body_text;
	ret = perform(c, req, &a, resp);
out:
	pthread_mutex_unlock(&c->lock);
	free(url);
	free(what);
	return ret;
}

int bop__k8s_do(bop__k8s_client_t *c, bop__k8s_method_t method, const char *path,
	json_object *body, const char *field_manager, json_object **out)
{
	bop__k8s_request_t req = {
		.method = method, .path = path, .body = body, .field_manager = field_manager,
		.force = method == BOP__K8S_PATCH_APPLY,
	};
	bop__k8s_response_t resp;
	int ret = bop__k8s_request(c, &req, &resp);

	if (out && ret == 0) {
		*out = resp.body;
		resp.body = NULL;
	} else if (out) {
		*out = NULL;
	}
	bop__k8s_response_clear(&resp);
	return ret;
}

int bop__k8s_client_clone(bop__k8s_client_t *c, bop__k8s_client_t **out)
{
	bop__k8s_config_t *cfg = NULL;
	int ret;

	*out = NULL;
	pthread_mutex_lock(&c->token_lock);
	ret = bop__k8s_config_dup(c->cfg, &cfg);
	pthread_mutex_unlock(&c->token_lock);
	if (ret < 0)
		return ret;
	ret = bop__k8s_client_new(out, cfg);
	if (ret < 0)
		return ret;
	(*out)->max_tries = c->max_tries;
	(*out)->base_ms = c->base_ms;
	(*out)->max_ms = c->max_ms;
	(*out)->timeout = c->timeout;
	return 0;
}

/* ---- streams ---- */

#define STREAM_ERROR_BODY_MAX (64u << 10)

struct bop__k8s_conn {
	bop__k8s_client_t *client;
	CURL *curl;
};

typedef struct stream_state {
	bop__k8s_conn_t *conn;
	const bop__k8s_stream_opts_t *opts;
	body_buf_t error_body;          /* the body of a non-2xx answer */
	int data_ret;                   /* on_data's failure */
	bool stopped;
} stream_state_t;

int bop__k8s_conn_new(bop__k8s_conn_t **out, bop__k8s_client_t *c)
{
	bop__k8s_conn_t *conn = bop__calloc(1, sizeof(*conn));

	*out = NULL;
	if (!conn)
		return BOP_ENOMEM;
	conn->client = c;
	conn->curl = curl_easy_init();
	if (!conn->curl) {
		free(conn);
		return bop__error_oom();
	}
	*out = conn;
	return 0;
}

void bop__k8s_conn_free(bop__k8s_conn_t *conn)
{
	if (!conn)
		return;
	curl_easy_cleanup(conn->curl);
	free(conn);
}

static size_t on_stream_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	stream_state_t *st = userdata;
	size_t n = size * nmemb;
	long status = 0;

	curl_easy_getinfo(st->conn->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status >= 300) {
		/* keep the start of an error body for its message */
		if (st->error_body.len + n > STREAM_ERROR_BODY_MAX)
			return n;
		return on_body(ptr, size, nmemb, &st->error_body);
	}
	st->data_ret = st->opts->on_data(st->opts->ud, ptr, n);
	return st->data_ret < 0 ? 0 : n;
}

static int on_stream_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow,
	curl_off_t ultotal, curl_off_t ulnow)
{
	stream_state_t *st = userdata;

	BOP_UNUSED(dltotal);
	BOP_UNUSED(dlnow);
	BOP_UNUSED(ultotal);
	BOP_UNUSED(ulnow);
	if (st->opts->should_stop && st->opts->should_stop(st->opts->ud)) {
		st->stopped = true;
		return 1;
	}
	return 0;
}

static void set_stream_options(bop__k8s_conn_t *conn, const char *url,
	struct curl_slist *headers, stream_state_t *st, char *errbuf)
{
	const bop__k8s_stream_opts_t *o = st->opts;
	CURL *curl = conn->curl;
	long connect = conn->client->timeout < 10 ? conn->client->timeout : 10L;

	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
	bop__curl_defaults(curl, connect, o->idle_seconds);
	if (o->max_seconds > 0)
		curl_easy_setopt(curl, CURLOPT_TIMEOUT, o->max_seconds);
	/* a peer that vanished without closing is noticed by TCP keepalive */
	curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(curl, CURLOPT_TCP_KEEPIDLE, 30L);
	curl_easy_setopt(curl, CURLOPT_TCP_KEEPINTVL, 10L);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_stream_data);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, st);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_stream_progress);
	curl_easy_setopt(curl, CURLOPT_XFERINFODATA, st);
	set_tls(conn->client->cfg, curl);
}

static int stream_result(bop__k8s_conn_t *conn, const char *what, CURLcode rc,
	stream_state_t *st, const char *errbuf, bop__k8s_response_t *resp)
{
	bool retry;

	curl_easy_getinfo(conn->curl, CURLINFO_RESPONSE_CODE, &resp->status);
	if (st->stopped)
		return bop__error(BOP_ECANCELED, "%s: stopped", what);
	if (st->data_ret < 0)
		return st->data_ret;
	if (rc != CURLE_OK)
		return transport_error(conn->client, what, rc, errbuf, true, &retry);
	if (resp->status >= 200 && resp->status < 300)
		return 0;
	parse_body(resp, &st->error_body);
	return status_error(conn->client, what, resp, st->error_body.data);
}

int bop__k8s_stream(bop__k8s_conn_t *conn, const bop__k8s_stream_opts_t *opts,
	bop__k8s_response_t *resp)
{
	stream_state_t st = { .conn = conn, .opts = opts };
	struct curl_slist *headers = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	char *url = NULL, *what = NULL;
	CURLcode rc;
	int ret;

	memset(resp, 0, sizeof(*resp));
	if (!opts->path || opts->path[0] != '/')
		return bop__error(BOP_EINVAL, "Kubernetes API path must start with '/'");
	what = bop__sprintf("GET %s", opts->path);
	url = bop__sprintf("%s%s", conn->client->cfg->server, opts->path);
	if (!what || !url) {
		ret = BOP_ENOMEM;
		goto out;
	}
	ret = make_headers(conn->client, BOP__K8S_GET, false, &headers);
	if (ret < 0) {
		bop__error_wrap("%s", what);
		goto out;
	}
	set_stream_options(conn, url, headers, &st, errbuf);
	rc = curl_easy_perform(conn->curl);
	ret = stream_result(conn, what, rc, &st, errbuf, resp);
	curl_easy_setopt(conn->curl, CURLOPT_HTTPHEADER, NULL);
out:
	free_headers(headers);
	free(st.error_body.data);
	free(url);
	free(what);
	return ret;
}
