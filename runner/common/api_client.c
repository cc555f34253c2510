/* One request to a backupop-runner's API, with libcurl. See api_client.h. */
#include "api_client.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct answer {
	char *data;
	size_t len;
	bool too_big;
} answer_t;

static size_t collect(char *ptr, size_t size, size_t nmemb, void *payload)
{
	answer_t *a = payload;
	size_t n = size * nmemb;
	char *grown;

	if (a->len + n > RAPI_MAX_BYTES) {
		a->too_big = true;
		return 0;
	}
	grown = realloc(a->data, a->len + n + 1);
	if (!grown)
		return 0;
	memcpy(grown + a->len, ptr, n);
	a->data = grown;
	a->len += n;
	a->data[a->len] = '\0';
	return n;
}

void rapi_reply_clear(rapi_reply_t *reply)
{
	free(reply->body);
	reply->body = NULL;
	reply->status = 0;
}

int rapi_request(const char *url, const char *method, const char *token, const char *body,
	long connect_timeout_ms, long timeout_ms, rapi_reply_t *reply, char *err, size_t errlen)
{
	char auth[4200], cerr[CURL_ERROR_SIZE] = "";
	struct curl_slist *headers = NULL;
	answer_t a = { NULL, 0, false };
	CURL *curl;
	CURLcode rc;
	int ret = -1;

	memset(reply, 0, sizeof(*reply));
	curl = curl_easy_init();
	if (!curl) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		headers = curl_slist_append(headers, auth);
		explicit_bzero(auth, sizeof(auth));
	}
	if (body)
		headers = curl_slist_append(headers, "Content-Type: application/json");
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	if (body)
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &a);
	if (connect_timeout_ms > 0)
		curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, cerr);
	rc = curl_easy_perform(curl);
	if (rc != CURLE_OK) {
		if (a.too_big)
			snprintf(err, errlen, "the answer is larger than %u bytes", RAPI_MAX_BYTES);
		else
			snprintf(err, errlen, "%s", *cerr ? cerr : curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply->status);
	reply->body = a.data;
	a.data = NULL;
	ret = 0;
out:
	curl_slist_free_all(headers);
	curl_easy_cleanup(curl);
	free(a.data);
	return ret;
}
