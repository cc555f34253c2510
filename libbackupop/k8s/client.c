/*
 * Requests to the Kubernetes API server on libcurl: TLS verified against the configured CA
 * (or the system's), bearer token or client certificate, JSON bodies (json-c), statuses
 * mapped to libbackupop error codes with the server's own message, and bounded retries of
 * 429, 5xx and failed connections. The bearer token is only ever put in a header that is
 * wiped after use; it is registered as a log secret besides.
 */
#include "k8s/k8s.h"

#include <curl/curl.h>
#include <openssl/rand.h>
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
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 16384;
		char *nd;

		while (ncap < b->len + n + 1)
			ncap *= 2;
		nd = realloc(b->data, ncap);
		if (!nd)
			return 0;
		b->data = nd;
		b->cap = ncap;
	}
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

static int make_headers(bop__k8s_client_t *c, const bop__k8s_request_t *req,
	struct curl_slist **out)
{
	struct curl_slist *list = NULL;
	const char *token;
	char *auth;
	int ret;

	*out = NULL;
	ret = bop__k8s_config_token(c->cfg, &token);
	if (ret < 0)
		return ret;
	ret = add_header(&list, "Accept: application/json");
	if (ret == 0 && req->body)
		ret = add_header(&list, content_type(req->method));
	if (ret == 0)
		ret = add_header(&list, "Expect:");
	if (ret == 0 && token) {
		auth = bop__sprintf("Authorization: Bearer %s", token);
		ret = auth ? add_header(&list, auth) : BOP_ENOMEM;
		if (auth)
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

static void set_tls(bop__k8s_client_t *c)
{
	const bop__k8s_config_t *cfg = c->cfg;
	struct curl_blob blob;

	if (cfg->insecure) {
		curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (cfg->ca_pem) {
		blob = (struct curl_blob){ cfg->ca_pem, cfg->ca_len, CURL_BLOB_COPY };
		curl_easy_setopt(c->curl, CURLOPT_CAINFO_BLOB, &blob);
	}
	if (cfg->cert_pem) {
		blob = (struct curl_blob){ cfg->cert_pem, cfg->cert_len, CURL_BLOB_COPY };
		curl_easy_setopt(c->curl, CURLOPT_SSLCERT_BLOB, &blob);
		curl_easy_setopt(c->curl, CURLOPT_SSLCERTTYPE, "PEM");
		blob = (struct curl_blob){ cfg->key_pem, cfg->key_len, CURL_BLOB_COPY };
		curl_easy_setopt(c->curl, CURLOPT_SSLKEY_BLOB, &blob);
		curl_easy_setopt(c->curl, CURLOPT_SSLKEYTYPE, "PEM");
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
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "backupop/" BOP_VERSION_STRING);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, c->timeout < 10 ? c->timeout : 10L);
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, c->timeout);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, c->timeout * 4);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, buf);
	set_tls(c);
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
		return bop__error(BOP_EIO, "%s: cannot connect to the API server %s: %s", what,
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
static const char *status_message(const bop__k8s_response_t *resp, const body_buf_t *buf)
{
	json_object *m;

	if (resp->body && json_object_object_get_ex(resp->body, "message", &m) &&
	    json_object_is_type(m, json_type_string))
		return json_object_get_string(m);
	return buf->data && buf->len ? buf->data : "(no message)";
}

static bool status_retryable(long status)
{
	return status == 429 || status == 500 || status == 502 || status == 503 ||
		status == 504;
}

static int status_error(bop__k8s_client_t *c, const char *what, bop__k8s_response_t *resp,
	const body_buf_t *buf)
{
	const char *msg = status_message(resp, buf);
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

/* Seconds of a Retry-After header, or -1. */
static long retry_after(CURL *curl)
{
	struct curl_header *h;

	if (curl_easy_header(curl, "Retry-After", 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
		return -1;
	return strtol(h->value, NULL, 10);
}

typedef struct attempt {
	const char *what;
	const char *url;
	const char *body;
	bool retry;
	long retry_after_s;
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
	a->retry_after_s = -1;
	ret = make_headers(c, req, &headers);
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
	if (resp->status >= 200 && resp->status < 300)
		goto out;
	ret = status_error(c, a->what, resp, &buf);
	a->retry = status_retryable(resp->status);
	if (a->retry)
		a->retry_after_s = retry_after(c->curl);
out:
	/* the handle keeps a pointer to the list: drop it before freeing */
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	free_headers(headers);
	free(buf.data);
	return ret;
}

/* Sleeps before try `attempt` + 1; false when the budget is spent. */
static bool backoff(bop__k8s_client_t *c, int attempt, int64_t start_ms, long retry_after_s)
{
	int64_t cap = c->base_ms, delay;
	uint32_t r = 0;
	struct timespec ts;

	if (attempt >= c->max_tries)
		return false;
	for (int i = 1; i < attempt && cap < RETRY_SLEEP_CAP_MS; i++)
		cap *= 2;
	if (cap > RETRY_SLEEP_CAP_MS)
		cap = RETRY_SLEEP_CAP_MS;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (uint32_t)bop__now_ms();
	delay = (int64_t)(r % (uint64_t)(cap + 1));
	if (retry_after_s > 0)
		delay = retry_after_s * 1000 < RETRY_SLEEP_CAP_MS ? retry_after_s * 1000 :
			RETRY_SLEEP_CAP_MS;
	if (bop__now_ms() + delay - start_ms > c->max_ms)
		return false;
	bop__log(BOP_LOG_WARN, "k8s", "%s; retrying in %.1f s (try %d of %d)", bop_error_last(),
		(double)delay / 1000.0, attempt + 1, c->max_tries);
	ts.tv_sec = delay / 1000;
	ts.tv_nsec = (delay % 1000) * 1000000;
	while (nanosleep(&ts, &ts) < 0)
		;
	return true;
}

static int check_request(const bop__k8s_request_t *req)
{
	if (!req->path || req->path[0] != '/')
		return bop__error(BOP_EINVAL, "Kubernetes API path must start with '/'");
	if (req->method == BOP__K8S_PATCH_APPLY && (!req->field_manager || !req->body))
		return bop__error(BOP_EINVAL,
			"server-side apply of %s needs a body and a field manager", req->path);
	if ((req->method == BOP__K8S_POST || req->method == BOP__K8S_PUT ||
	     req->method == BOP__K8S_PATCH_MERGE) && !req->body)
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
		if (!backoff(c, tries, start, a->retry_after_s))
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
