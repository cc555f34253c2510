/* Calls to a schedule's runner API (POST /v1/backups, GET /v1/runs/{id}, ...). */
#include "ctl.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPLY_MAX (8u << 20)

typedef struct buf {
	char *data;
	size_t len;
	bool too_big;
} buf_t;

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
	buf_t *b = ud;
	size_t len = size * n;
	char *d;

	if (b->len + len > REPLY_MAX) {
		b->too_big = true;
		return 0;
	}
	d = realloc(b->data, b->len + len + 1);
	if (!d)
		return 0;
	memcpy(d + b->len, p, len);
	b->len += len;
	d[b->len] = '\0';
	b->data = d;
	return len;
}

void ctl_http_reply_clear(ctl_http_reply_t *r)
{
	free(r->body);
	r->body = NULL;
	r->status = 0;
}

int ctl_runner_call(ctl_t *c, const char *ns, const char *name, const char *uid,
	const char *method, const char *path, const char *body, ctl_http_reply_t *reply)
{
	char *obj = NULL, *token = NULL, url[1024], auth[128], err[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdr = NULL;
	buf_t b = { 0 };
	CURL *h = NULL;
	CURLcode cc;
	int ret;

	memset(reply, 0, sizeof(*reply));
	ret = bop_reconcile_name(&obj, "runner", ns, name);
	if (ret == 0)
		ret = bop_reconcile_runner_token(&token, c->key, sizeof(c->key), uid);
	if (ret)
		goto out;
	if (c->args.runner_url)
		snprintf(url, sizeof(url), "%s%s", c->args.runner_url, path);
	else
		snprintf(url, sizeof(url), "http://%s.%s.svc:%u%s", obj, c->args.namespace,
			c->args.runner_port, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	h = curl_easy_init();
	if (!h) {
		ret = bop_error_set(BOP_ENOMEM, "out of memory");
		goto out;
	}
	hdr = curl_slist_append(hdr, auth);
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 15000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
	cc = curl_easy_perform(h);
	if (cc != CURLE_OK) {
		char msg[1400];

		snprintf(msg, sizeof(msg), "runner %s is not reachable at %s: %s", obj,
			c->args.runner_url ? c->args.runner_url : "its Service",
			*err ? err : curl_easy_strerror(cc));
		ret = bop_error_set(b.too_big ? BOP_EFORMAT : BOP_EIO, msg);
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &reply->status);
	reply->body = b.data;
	b.data = NULL;
	ret = 0;
out:
	if (token) {
		memset(token, 0, strlen(token));
		bop_free(token);
	}
	memset(auth, 0, sizeof(auth));
	bop_free(obj);
	free(b.data);
	curl_slist_free_all(hdr);
	if (h)
		curl_easy_cleanup(h);
	return ret;
}
