/*
 * Signed S3 requests on libcurl: building the URL and headers, performing with bounded
 * retries (exponential backoff, full jitter), and turning failures into clear errors.
 * Bodies are sent from memory with their length (no chunked encoding, no trailers).
 */
#include "storage/s3/s3.h"
#include "util/backoff.h"
#include "util/curl.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define RETRY_SLEEP_CAP_MS 10000

static char *canonical_uri(const s3_storage_t *s3, const char *key)
{
	char *enc, *uri;

	if (!key)
		return bop__strdup(*s3->base_path ? s3->base_path : "/");
	enc = bop__s3_uri_encode(key, true);
	if (!enc)
		return NULL;
	uri = bop__sprintf("%s/%s", s3->base_path, enc);
	free(enc);
	return uri;
}

static int add_header(struct curl_slist **list, const char *name, const char *value)
{
	char *line = bop__sprintf("%s: %s", name, value);
	struct curl_slist *next;

	if (!line)
		return BOP_ENOMEM;
	next = curl_slist_append(*list, line);
	bop__wipe(line, strlen(line));
	free(line);
	if (!next)
		return bop__error_oom();
	*list = next;
	return 0;
}

/* Signs the request and builds the header list. */
static int make_headers(s3_storage_t *s3, const s3_request_t *req, const char *uri,
	const char *query, const char *payload_sha256, struct curl_slist **out)
{
	const s3_config_t *cfg = &s3->cfg;
	s3_header_t *all = bop__calloc(req->nheaders + 4, sizeof(*all));
	s3_sign_input_t in = { 0 };
	struct curl_slist *list = NULL;
	char date[17], *auth = NULL;
	size_t n = 0;
	int ret;

	if (!all)
		return BOP_ENOMEM;
	bop__s3_amz_date(date, bop__now());
	all[n++] = (s3_header_t){ "host", s3->host };
	all[n++] = (s3_header_t){ "x-amz-content-sha256", payload_sha256 };
	all[n++] = (s3_header_t){ "x-amz-date", date };
	if (cfg->session_token)
		all[n++] = (s3_header_t){ "x-amz-security-token", cfg->session_token };
	for (size_t i = 0; i < req->nheaders; i++)
		all[n++] = req->headers[i];
	in.method = req->method;
	in.canonical_uri = uri;
	in.canonical_query = query;
	in.headers = all;
	in.nheaders = n;
	in.payload_sha256 = payload_sha256;
	in.amz_date = date;
	in.region = cfg->region;
	in.access_key_id = cfg->access_key_id;
	in.secret_access_key = cfg->secret_access_key;
	ret = bop__s3_sign(&auth, &in);
	for (size_t i = 0; i < n && ret == 0; i++)
		ret = add_header(&list, all[i].name, all[i].value);
	if (ret == 0)
		ret = add_header(&list, "Authorization", auth);
	/* No "Expect: 100-continue" round trip, no form content type on POST. */
	if (ret == 0 && (!curl_slist_append(list, "Expect:") || !curl_slist_append(list, "Content-Type:")))
		ret = bop__error_oom();
	free(auth);
	free(all);
	if (ret < 0) {
		curl_slist_free_all(list);
		return ret;
	}
	*out = list;
	return 0;
}

static void set_method(CURL *curl, const s3_request_t *req)
{
	if (!strcmp(req->method, "HEAD")) {
		curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
	} else if (!strcmp(req->method, "PUT")) {
		curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
	} else if (!strcmp(req->method, "POST")) {
		curl_easy_setopt(curl, CURLOPT_POST, 1L);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
	} else if (!strcmp(req->method, "GET")) {
		curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
	}
}

static void set_transport(s3_storage_t *s3, CURL *curl, const s3_request_t *req)
{
	const s3_config_t *cfg = &s3->cfg;

	/* A stalled transfer fails after `timeout`; a long healthy one does not. */
	bop__curl_defaults(curl, cfg->timeout < 30 ? cfg->timeout : 30L, cfg->timeout);
	curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
	if (req->body_len < S3_MIB && strcmp(req->method, "GET") != 0)
		curl_easy_setopt(curl, CURLOPT_TIMEOUT, cfg->timeout);
	curl_easy_setopt(curl, CURLOPT_FILETIME, 1L);
	curl_easy_setopt(curl, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
	curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 256L * 1024);
	if (cfg->insecure) {
		curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (cfg->ca_file)
		curl_easy_setopt(curl, CURLOPT_CAINFO, cfg->ca_file);
}

int bop__s3_prepare(s3_storage_t *s3, CURL *curl, const s3_request_t *req,
	struct curl_slist **headers)
{
	char *uri = NULL, *query = NULL, *url = NULL, hash[65];
	const char *payload_sha256 = req->body_sha256;
	int ret;

	*headers = NULL;
	uri = canonical_uri(s3, req->key);
	query = bop__s3_canonical_query(req->query, req->nquery);
	if (!uri || !query) {
		ret = BOP_ENOMEM;
		goto out;
	}
	url = bop__sprintf("%s%s%s%s", s3->base_url, uri, *query ? "?" : "", query);
	if (!url) {
		ret = BOP_ENOMEM;
		goto out;
	}
	if (!payload_sha256) {
		if (!req->body_len) {
			payload_sha256 = EMPTY_SHA256;
		} else {
			if ((ret = bop__s3_sha256_hex(hash, req->body, req->body_len)) < 0)
				goto out;
			payload_sha256 = hash;
		}
	}
	ret = make_headers(s3, req, uri, query, payload_sha256, headers);
	if (ret < 0)
		goto out;
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, *headers);
	set_method(curl, req);
	set_transport(s3, curl, req);
out:
	free(uri);
	free(query);
	free(url);
	return ret;
}

/* ---- errors ---- */

bool bop__s3_status_retryable(long status, const char *code)
{
	if (code && (!strcmp(code, "SlowDown") || !strcmp(code, "RequestTimeout") ||
			!strcmp(code, "InternalError") || !strcmp(code, "ServiceUnavailable")))
		return true;
	return status == 429 || (status >= 500 && status != 501 && status != 505);
}

static bool has_header(const s3_request_t *req, const char *name)
{
	for (size_t i = 0; i < req->nheaders; i++)
		if (!strcmp(req->headers[i].name, name))
			return true;
	return false;
}

static const char *code_for_status(const s3_request_t *req, long status)
{
	switch (status) {
	case 403: return "Forbidden";   /* no body (HEAD): the reason is unknown */
	case 404: return req->key ? "NoSuchKey" : "NoSuchBucket";
	case 412: return "PreconditionFailed";
	case 501: return "NotImplemented";
	default: return NULL;
	}
}

static int auth_error(s3_storage_t *s3, const s3_request_t *req, const char *code)
{
	const char *what = req->what ? req->what : "S3 request failed";
	const char *akid = s3->cfg.access_key_id;

	if (!strcmp(code, "InvalidAccessKeyId"))
		return bop__error(BOP_EAUTH, "%s: S3 refused the access key id '%s' (InvalidAccessKeyId): check the credentials",
			what, akid);
	if (!strcmp(code, "SignatureDoesNotMatch"))
		return bop__error(BOP_EAUTH, "%s: S3 refused the request signature (SignatureDoesNotMatch): the secret access key does not match access key id '%s'; check the credentials",
			what, akid);
	if (!strcmp(code, "RequestTimeTooSkewed"))
		return bop__error(BOP_EAUTH, "%s: S3 refused the request time (RequestTimeTooSkewed): this machine's clock is more than 15 minutes off the server's; fix the clock (e.g. with NTP)",
			what);
	if (!strcmp(code, "ExpiredToken") || !strcmp(code, "TokenRefreshRequired") ||
			!strcmp(code, "InvalidToken"))
		return bop__error(BOP_EAUTH, "%s: S3 refused the session token (%s): refresh the credentials",
			what, code);
	if (!strcmp(code, "Forbidden"))
		return bop__error(BOP_EAUTH, "%s: S3 refused the request (HTTP 403 without a reason): either the secret access key does not match access key id '%s', or that key is not allowed to do this in bucket '%s'; check the credentials",
			what, akid, s3->cfg.bucket);
	if (!strcmp(code, "AccessDenied") || !strcmp(code, "AllAccessDisabled"))
		return bop__error(BOP_EAUTH, "%s: S3 denied access (%s): access key id '%s' is not allowed to do this in bucket '%s'",
			what, code, akid, s3->cfg.bucket);
	return 0;
}

int bop__s3_http_error(s3_storage_t *s3, const s3_request_t *req, long status,
	const char *body, size_t len, const char *request_id)
{
	const char *what = req->what ? req->what : "S3 request failed";
	s3_xml_node_t *root = NULL;
	s3_error_info_t info = { 0 };
	const char *code;
	int ret;

	if (len && bop__s3_xml_parse(&root, body, len, S3_ERROR_BODY_MAX) == 0)
		bop__s3_xml_error(&info, root);
	code = info.code ? info.code : code_for_status(req, status);
	if (info.request_id && *info.request_id)
		request_id = info.request_id;
	if (!request_id)
		request_id = "none";
	if (code && (ret = auth_error(s3, req, code)) < 0)
		goto out;
	if (code && !strcmp(code, "NoSuchBucket")) {
		ret = bop__error(BOP_ENOTFOUND, "%s: bucket '%s' does not exist at %s (NoSuchBucket)",
			what, s3->cfg.bucket, s3->cfg.endpoint);
	} else if (code && !strcmp(code, "NoSuchKey")) {
		ret = bop__error(BOP_ENOTFOUND, "%s: no such object (NoSuchKey)", what);
	} else if (code && !strcmp(code, "NoSuchUpload")) {
		/* An upload vanishes only when someone aborts it: a conflict, not a missing object. */
		ret = bop__error(BOP_ECONFLICT, "%s: the multipart upload no longer exists "
			"(NoSuchUpload): someone else (such as `backupop gc`) aborted it while it was "
			"being written", what);
	} else if (code && !strcmp(code, "PreconditionFailed") && has_header(req, "if-none-match")) {
		ret = bop__error(BOP_EEXISTS, "%s: the object already exists", what);
	} else if (code && !strcmp(code, "PreconditionFailed")) {
		ret = bop__error(BOP_EIO, "%s: the object changed meanwhile (PreconditionFailed)", what);
	} else if (status == 501 || (code && !strcmp(code, "NotImplemented"))) {
		ret = bop__error(BOP_ENOTSUPPORTED, "%s: the S3 server does not implement this request (HTTP %ld %s)",
			what, status, code ? code : "NotImplemented");
	} else {
		ret = bop__error(BOP_EIO, "%s: S3 answered HTTP %ld%s%s%s%s (request id %s)", what, status,
			code ? " " : "", code ? code : "",
			info.message && *info.message ? ": " : "",
			info.message && *info.message ? info.message : "", request_id);
	}
out:
	bop__s3_xml_free(root);
	return ret;
}

int bop__s3_curl_error(s3_storage_t *s3, const s3_request_t *req, CURL *curl, CURLcode rc,
	const char *errbuf, bool *retry)
{
	const char *what = req->what ? req->what : "S3 request failed";
	const char *detail = errbuf && *errbuf ? errbuf : curl_easy_strerror(rc);
	long os_errno = 0;

	*retry = true;
	curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno);
	if (rc == CURLE_COULDNT_CONNECT)
		return bop__error(BOP_ECONNECT, "%s: cannot connect to %s: %s", what, s3->cfg.endpoint,
			os_errno ? strerror((int)os_errno) : detail);
	if (rc == CURLE_COULDNT_RESOLVE_HOST)
		return bop__error(BOP_ECONNECT, "%s: cannot resolve the host of %s: %s", what,
			s3->base_url, detail);
	if (rc == CURLE_OPERATION_TIMEDOUT)
		return bop__error(BOP_ETIMEOUT, "%s: no progress from %s for %ld s (%s)", what,
			s3->cfg.endpoint, s3->cfg.timeout, detail);
	if (rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING ||
			rc == CURLE_PARTIAL_FILE || rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_HTTP2 ||
			rc == CURLE_HTTP2_STREAM)
		return bop__error(BOP_EIO, "%s: the connection to %s failed: %s", what,
			s3->cfg.endpoint, detail);
	*retry = false;
	if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
			rc == CURLE_SSL_CERTPROBLEM)
		return bop__error(BOP_EIO, "%s: TLS verification of %s failed: %s (give the server's CA with ca_file, or insecure=true for a test server)",
			what, s3->cfg.endpoint, detail);
	if (rc == CURLE_WRITE_ERROR)
		return bop__error(BOP_EIO, "%s: the response of %s is larger than expected", what,
			s3->cfg.endpoint);
	return bop__error(BOP_EIO, "%s: %s", what, detail);
}

/* S3 servers' Retry-After is not taken (AWS sends none; the tries keep their own
 * exponential pace), so the delay is the drawn one. */
bool bop__s3_backoff(s3_storage_t *s3, int attempt, int64_t start_ms)
{
	const bop__backoff_t b = { .base_ms = s3->retry_base_ms, .cap_ms = RETRY_SLEEP_CAP_MS,
		.jitter = 1.0, .max_tries = s3->max_tries, .max_ms = s3->retry_max_ms };

	return bop__backoff_wait(&b, attempt, start_ms, 0, "s3");
}

/* ---- performing ---- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *payload)
{
	s3_buf_t *b = payload;
	size_t n = size * nmemb;

	if (b->len + n > b->max || bop__reserve(&b->data, &b->cap, b->len + n + 1, 1, 4096) < 0)
		return 0;
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

typedef struct body_reader {
	const char *data;
	size_t len;
	size_t pos;
	int sends;                      /* times it was read from the start */
} body_reader_t;

static size_t on_read(char *buf, size_t size, size_t nitems, void *payload)
{
	body_reader_t *r = payload;
	size_t n = size * nitems;

	if (r->pos == 0 && r->len)
		r->sends++;
	if (n > r->len - r->pos)
		n = r->len - r->pos;
	memcpy(buf, r->data + r->pos, n);
	r->pos += n;
	return n;
}

static int on_seek(void *payload, curl_off_t offset, int origin)
{
	body_reader_t *r = payload;

	if (origin != SEEK_SET || offset < 0 || (size_t)offset > r->len)
		return CURL_SEEKFUNC_FAIL;
	r->pos = (size_t)offset;
	return CURL_SEEKFUNC_OK;
}

static char *header_value(CURL *curl, const char *name)
{
	struct curl_header *h = NULL;

	if (curl_easy_header(curl, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK || !h)
		return NULL;
	return bop__strdup(h->value);
}

static void collect_results(CURL *curl, s3_request_t *req)
{
	curl_off_t len = -1, t = -1;

	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &req->status);
	curl_easy_getinfo(curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
	curl_easy_getinfo(curl, CURLINFO_FILETIME_T, &t);
	req->content_length = len > 0 ? (uint64_t)len : 0;
	req->last_modified = t > 0 ? (int64_t)t : 0;
	free(req->etag);
	req->etag = header_value(curl, "ETag");
}

static bool response_retryable(const s3_request_t *req)
{
	s3_xml_node_t *root = NULL;
	s3_error_info_t info = { 0 };
	bool retry;

	if (req->response.len && bop__s3_xml_parse(&root, req->response.data, req->response.len,
			S3_ERROR_BODY_MAX) == 0)
		bop__s3_xml_error(&info, root);
	retry = bop__s3_status_retryable(req->status, info.code);
	bop__s3_xml_free(root);
	return retry;
}

/* One try; *retry says whether another may succeed. */
static int perform_once(s3_storage_t *s3, s3_request_t *req, bool *retry)
{
	body_reader_t body = { req->body, req->body_len, 0, 0 };
	struct curl_slist *headers = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	char *request_id = NULL;
	CURL *curl = curl_easy_init();
	CURLcode rc;
	int ret;

	*retry = false;
	if (!curl)
		return bop__error_oom();
	free(req->response.data);
	memset(&req->response, 0, sizeof(req->response));
	req->response.max = req->response_max ? req->response_max : S3_XML_MAX;
	req->status = 0;
	if ((ret = bop__s3_prepare(s3, curl, req, &headers)) < 0)
		goto out;
	curl_easy_setopt(curl, CURLOPT_SHARE, s3->share);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &req->response);
	curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(curl, CURLOPT_READDATA, &body);
	curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, on_seek);
	curl_easy_setopt(curl, CURLOPT_SEEKDATA, &body);
	rc = curl_easy_perform(curl);
	req->sends += body.sends > 1 ? body.sends : 1;
	if (rc != CURLE_OK) {
		ret = bop__s3_curl_error(s3, req, curl, rc, errbuf, retry);
		goto out;
	}
	collect_results(curl, req);
	if (req->status >= 200 && req->status < 300)
		goto out;
	request_id = header_value(curl, "x-amz-request-id");
	*retry = response_retryable(req);
	ret = bop__s3_http_error(s3, req, req->status, req->response.data, req->response.len,
		request_id);
out:
	free(request_id);
	curl_slist_free_all(headers);
	curl_easy_cleanup(curl);
	return ret;
}

int bop__s3_gave_up(int code, int tries, int64_t start_ms)
{
	char *msg = bop__strdup(bop_error_last());

	if (!msg)
		return code;
	bop__error(code, "%s; gave up after %d tr%s in %.1f s", msg, tries, tries == 1 ? "y" : "ies",
		(double)(bop__now_ms() - start_ms) / 1000.0);
	free(msg);
	return code;
}

int bop__s3_perform(s3_storage_t *s3, s3_request_t *req)
{
	int64_t start = bop__now_ms();
	bool retry;
	int ret;

	req->sends = 0;
	for (int attempt = 1;; attempt++) {
		ret = perform_once(s3, req, &retry);
		if (ret == 0 || !retry)
			return ret;
		if (!bop__s3_backoff(s3, attempt, start))
			return bop__s3_gave_up(ret, attempt, start);
	}
}

void bop__s3_request_clear(s3_request_t *req)
{
	free(req->response.data);
	free(req->etag);
	memset(&req->response, 0, sizeof(req->response));
	req->etag = NULL;
}
