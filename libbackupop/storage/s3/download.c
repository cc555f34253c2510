/*
 * The S3 reader: a HEAD gives the size and ETag, then one streaming GET with
 * "Range: bytes=OFFSET-" feeds the reads. It runs on a curl multi handle driven from
 * read(): the write callback fills a bounded buffer and pauses the transfer when it is
 * full, so no thread is needed and memory stays bounded. If the connection drops
 * mid-body, a new ranged GET resumes from the last byte received, with If-Match so that
 * a replaced object is never spliced.
 */
#include "storage/s3/s3.h"

#include <stdlib.h>
#include <string.h>

#define READ_BUF_SIZE (1024 * 1024)
#define POLL_MS 1000

typedef struct s3_reader {
	bop_source_t base;
	s3_storage_t *s3;
	char *full_key;
	char *what;
	char *etag;
	uint64_t size;
	uint64_t received;              /* object offset of the next byte from the network */
	unsigned char *buf;
	size_t buf_off;
	size_t buf_len;
	/* the current transfer */
	CURLM *multi;
	CURL *curl;
	struct curl_slist *headers;
	char range[64];
	char errbuf[CURL_ERROR_SIZE];
	bool running;
	bool paused;
	bool checked;                   /* status and Content-Range looked at */
	bool bad_status;
	int write_error;                /* set by the write callback */
	s3_buf_t error_body;
	int tries;                      /* failed tries since the last progress */
	int64_t retry_start_ms;
	uint64_t transfer_start;        /* `received` when the transfer began */
} s3_reader_t;

static void end_transfer(s3_reader_t *r)
{
	if (r->curl) {
		curl_multi_remove_handle(r->multi, r->curl);
		curl_easy_cleanup(r->curl);
		r->curl = NULL;
	}
	curl_slist_free_all(r->headers);
	r->headers = NULL;
	free(r->error_body.data);
	memset(&r->error_body, 0, sizeof(r->error_body));
	r->running = false;
	r->paused = false;
}

/* The response must be 206 for exactly the range asked. */
static int check_response(s3_reader_t *r)
{
	struct curl_header *h = NULL;
	unsigned long long start = 0, end = 0, total = 0;
	long status = 0;

	curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
	r->checked = true;
	if (status != 206) {
		r->bad_status = true;
		r->error_body.max = S3_ERROR_BODY_MAX;
		return 0;
	}
	if (curl_easy_header(r->curl, "Content-Range", 0, CURLH_HEADER, -1, &h) != CURLHE_OK ||
			sscanf(h->value, "bytes %llu-%llu/%llu", &start, &end, &total) != 3 ||
			start != r->received || total != r->size)
		return bop__error(BOP_EIO, "%s: S3 answered another range than asked (%s for bytes %llu-)",
			r->what, h ? h->value : "no Content-Range", (unsigned long long)r->received);
	return 0;
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *payload)
{
	s3_reader_t *r = payload;
	size_t n = size * nmemb;
	int ret;

	if (!r->checked && (ret = check_response(r)) < 0) {
		r->write_error = ret;
		return 0;
	}
	if (r->bad_status) {
		size_t room = r->error_body.max - r->error_body.len;
		char *grown;

		if (n > room)
			n = room;
		grown = realloc(r->error_body.data, r->error_body.len + n + 1);
		if (!grown)
			return 0;
		memcpy(grown + r->error_body.len, ptr, n);
		r->error_body.data = grown;
		r->error_body.len += n;
		grown[r->error_body.len] = '\0';
		return size * nmemb;
	}
	if (r->received + n > r->size) {
		r->write_error = bop__error(BOP_EIO, "%s: S3 sent more than the object's %llu bytes",
			r->what, (unsigned long long)r->size);
		return 0;
	}
	if (r->buf_off && r->buf_off == r->buf_len)
		r->buf_off = r->buf_len = 0;
	if (n > READ_BUF_SIZE - r->buf_len) {
		if (r->buf_off) {
			memmove(r->buf, r->buf + r->buf_off, r->buf_len - r->buf_off);
			r->buf_len -= r->buf_off;
			r->buf_off = 0;
		}
		if (n > READ_BUF_SIZE - r->buf_len) {
			r->paused = true;
			return CURL_WRITEFUNC_PAUSE;
		}
	}
	memcpy(r->buf + r->buf_len, ptr, n);
	r->buf_len += n;
	r->received += n;
	return n;
}

static int start_transfer(s3_reader_t *r)
{
	s3_header_t h[2] = { { "range", r->range }, { "if-match", r->etag } };
	s3_request_t req = { 0 };
	int ret;

	snprintf(r->range, sizeof(r->range), "bytes=%llu-", (unsigned long long)r->received);
	r->curl = curl_easy_init();
	if (!r->curl)
		return bop__error_oom();
	req.method = "GET";
	req.key = r->full_key;
	req.headers = h;
	req.nheaders = r->etag ? 2 : 1;
	req.what = r->what;
	if ((ret = bop__s3_prepare(r->s3, r->curl, &req, &r->headers)) < 0)
		return ret;
	r->errbuf[0] = '\0';
	r->transfer_start = r->received;
	r->checked = r->bad_status = false;
	r->write_error = 0;
	curl_easy_setopt(r->curl, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(r->curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(r->curl, CURLOPT_WRITEDATA, r);
	if (curl_multi_add_handle(r->multi, r->curl) != CURLM_OK)
		return bop__error(BOP_ERROR, "%s: cannot start the transfer (libcurl)", r->what);
	r->running = true;
	return 0;
}

/* The transfer ended: 0 when the object is complete or it may be resumed (*retry). */
static int finish_transfer(s3_reader_t *r, CURLcode rc, bool *retry)
{
	s3_request_t req = { 0 };
	long status = 0;
	int ret = 0;

	*retry = false;
	req.method = "GET";
	req.key = r->full_key;
	req.what = r->what;
	if (r->write_error) {
		ret = r->write_error;
	} else if (r->bad_status) {
		curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
		req.headers = (s3_header_t[]){ { "if-match", r->etag } };
		req.nheaders = r->etag ? 1 : 0;
		ret = bop__s3_http_error(r->s3, &req, status, r->error_body.data, r->error_body.len,
			NULL);
		*retry = bop__s3_status_retryable(status, NULL);
	} else if (rc != CURLE_OK) {
		ret = bop__s3_curl_error(r->s3, &req, r->curl, rc, r->errbuf, retry);
	} else if (r->received < r->size) {
		ret = bop__error(BOP_EIO, "%s: the connection ended after byte %llu of %llu", r->what,
			(unsigned long long)r->received, (unsigned long long)r->size);
		*retry = true;
	}
	end_transfer(r);
	return ret;
}

/* Runs the transfer until the buffer has data or it ends. */
static int pump(s3_reader_t *r)
{
	CURLMsg *msg;
	int running = 0, left, ret;
	bool retry;

	while (r->buf_off == r->buf_len && r->received < r->size) {
		if (!r->running && (ret = start_transfer(r)) < 0)
			return ret;
		if (r->paused) {
			r->paused = false;
			curl_easy_pause(r->curl, CURLPAUSE_CONT);
			continue;
		}
		if (curl_multi_perform(r->multi, &running) != CURLM_OK)
			return bop__error(BOP_EIO, "%s: libcurl failed", r->what);
		while ((msg = curl_multi_info_read(r->multi, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			ret = finish_transfer(r, msg->data.result, &retry);
			if (ret < 0 && r->received > r->transfer_start) {
				r->tries = 0;           /* it made progress: a fresh budget */
				r->retry_start_ms = bop__now_ms();
			}
			if (ret == 0 && r->received < r->size)
				continue;
			if (ret < 0 && !retry)
				return ret;
			if (ret < 0 && !bop__s3_backoff(r->s3, ++r->tries, r->retry_start_ms))
				return bop__s3_gave_up(ret, r->tries, r->retry_start_ms);
			break;
		}
		if (r->running && r->buf_off == r->buf_len && !r->paused)
			curl_multi_poll(r->multi, NULL, 0, POLL_MS, NULL);
	}
	return 0;
}

static int reader_read(bop_source_t *base, void *buf, size_t cap, size_t *got)
{
	s3_reader_t *r = (s3_reader_t *)base;
	size_t n;
	int ret;

	*got = 0;
	if (cap == 0)
		return 0;
	if (r->buf_off == r->buf_len && r->received < r->size) {
		if ((ret = pump(r)) < 0)
			return ret;
	}
	n = r->buf_len - r->buf_off;
	if (n > cap)
		n = cap;
	memcpy(buf, r->buf + r->buf_off, n);
	r->buf_off += n;
	*got = n;
	return 0;
}

static void reader_free(bop_source_t *base)
{
	s3_reader_t *r = (s3_reader_t *)base;

	if (!r)
		return;
	end_transfer(r);
	if (r->multi)
		curl_multi_cleanup(r->multi);
	free(r->buf);
	free(r->full_key);
	free(r->what);
	free(r->etag);
	free(r);
}

static int head(s3_reader_t *r, const char *key, uint64_t offset)
{
	s3_request_t req = { 0 };
	int ret;

	req.method = "HEAD";
	req.key = r->full_key;
	req.what = r->what;
	ret = bop__s3_perform(r->s3, &req);
	if (ret == 0) {
		r->size = req.content_length;
		r->etag = req.etag;
		req.etag = NULL;
		if (offset > r->size)
			ret = bop__error(BOP_EINVAL, "cannot read %s from %s from byte %llu: it has only %llu bytes",
				key, r->s3->display, (unsigned long long)offset,
				(unsigned long long)r->size);
	}
	bop__s3_request_clear(&req);
	return ret;
}

int bop__s3_get(bop_storage_t *base, bop_source_t **out, const char *key, uint64_t offset)
{
	s3_storage_t *s3 = (s3_storage_t *)base;
	s3_reader_t *r = bop__calloc(1, sizeof(*r));
	int ret;

	if (!r)
		return BOP_ENOMEM;
	r->base = (bop_source_t)BOP_SOURCE_INIT(.read = reader_read, .free = reader_free);
	r->s3 = s3;
	r->full_key = bop__s3_full_key(s3, key);
	r->what = r->full_key ? bop__sprintf("cannot read s3://%s/%s", s3->cfg.bucket, r->full_key)
		: NULL;
	r->buf = malloc(READ_BUF_SIZE);
	r->multi = curl_multi_init();
	if (!r->full_key || !r->what || !r->buf || !r->multi) {
		ret = bop__error_oom();
		goto fail;
	}
	if ((ret = head(r, key, offset)) < 0)
		goto fail;
	r->received = offset;
	r->retry_start_ms = bop__now_ms();
	*out = &r->base;
	return 0;
fail:
	reader_free(&r->base);
	return ret;
}
