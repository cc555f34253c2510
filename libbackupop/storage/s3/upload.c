/*
 * The S3 writer. Bytes fill a part buffer; an object that fits in one part is a single PUT
 * at commit. Beyond that a multipart upload starts: full parts (all of the same size) go
 * to a queue that `concurrency` worker threads upload, each with its own connection, and
 * the writer takes its next buffer from a fixed pool of concurrency + 1, so memory is
 * part_size × (concurrency + 1) whatever the object's size. Commit completes the upload and
 * checks the answer; any failure, abort or free without commit aborts it.
 */
#include "storage/s3/s3.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

typedef struct part_job {
	int number;
	unsigned char *buf;
	size_t len;
} part_job_t;

typedef enum writer_state {
	WRITER_OPEN,
	WRITER_COMMITTED,
	WRITER_ABORTED,
} writer_state_t;

typedef struct s3_writer {
	bop_sink_t base;
	s3_storage_t *s3;
	char *full_key;
	char *what;
	bool exclusive;
	uint64_t part_size;
	writer_state_t state;
	unsigned char *cur;             /* the part being filled */
	size_t cur_len;
	int next_part;                  /* number of the next part to queue */
	char *upload_id;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned char **free_bufs;      /* pool: nfree returned buffers */
	int nfree;
	int nbufs;                      /* allocated so far */
	int max_bufs;
	part_job_t *queue;              /* ring of max_bufs jobs */
	int qhead;
	int qlen;
	int in_flight;                  /* queued or uploading */
	char **etags;                   /* by part number - 1 */
	int etags_cap;
	pthread_t *threads;
	int nthreads;
	bool stopping;
	int failed;                     /* first worker error code */
	char *fail_msg;
} s3_writer_t;

/* ---- single requests ---- */

static char *object_what(s3_storage_t *s3, const char *verb, const char *full_key)
{
	return bop__sprintf("%s s3://%s/%s", verb, s3->cfg.bucket, full_key);
}

int bop__s3_create_upload(s3_storage_t *s3, const char *full_key, char **upload_id)
{
	s3_param_t q[1] = { { "uploads", "" } };
	s3_request_t req = { 0 };
	s3_xml_node_t *root = NULL;
	char *what = object_what(s3, "cannot start uploading", full_key);
	const char *id;
	int ret;

	*upload_id = NULL;
	if (!what)
		return BOP_ENOMEM;
	req.method = "POST";
	req.key = full_key;
	req.query = q;
	req.nquery = 1;
	req.what = what;
	ret = bop__s3_perform(s3, &req);
	if (ret == 0 && (ret = bop__s3_xml_parse(&root, req.response.data, req.response.len,
			S3_ERROR_BODY_MAX)) < 0)
		bop__error_wrap("%s", what);
	if (ret == 0) {
		id = bop__s3_xml_text(root, "UploadId");
		if (!id || !*id)
			ret = bop__error(BOP_EIO, "%s: S3 answered CreateMultipartUpload without an UploadId",
				what);
		else if (!(*upload_id = bop__strdup(id)))
			ret = BOP_ENOMEM;
	}
	bop__s3_xml_free(root);
	bop__s3_request_clear(&req);
	free(what);
	return ret;
}

int bop__s3_abort_upload(s3_storage_t *s3, const char *full_key, const char *upload_id)
{
	s3_param_t q[1] = { { "uploadId", upload_id } };
	s3_request_t req = { 0 };
	char *what = object_what(s3, "cannot abort the upload of", full_key);
	int ret;

	if (!what)
		return BOP_ENOMEM;
	req.method = "DELETE";
	req.key = full_key;
	req.query = q;
	req.nquery = 1;
	req.what = what;
	ret = bop__s3_perform(s3, &req);
	bop__s3_request_clear(&req);
	free(what);
	return ret;
}

int bop__s3_upload_part(s3_storage_t *s3, const char *full_key, const char *upload_id,
	int part, const void *data, size_t len, char **etag)
{
	char number[16], md5_b64[32], *what;
	unsigned char md5[16];
	s3_param_t q[2] = { { "partNumber", number }, { "uploadId", upload_id } };
	s3_header_t h[1] = { { "content-md5", md5_b64 } };
	s3_request_t req = { 0 };
	int ret = 0;

	*etag = NULL;
	snprintf(number, sizeof(number), "%d", part);
	what = bop__sprintf("cannot upload part %d of s3://%s/%s", part, s3->cfg.bucket, full_key);
	if (!what)
		return BOP_ENOMEM;
	/*
	 * Parts carry a signed Content-MD5 and an unsigned payload hash: S3 checks the body
	 * against the MD5, which costs half of a SHA-256 on CPUs without SHA instructions,
	 * and the server skips hashing the body twice. Hashed once; retries reuse it.
	 */
	if (!EVP_Digest(data, len, md5, NULL, EVP_md5(), NULL)) {
		ret = bop__error(BOP_ERROR, "%s: MD5 failed (OpenSSL)", what);
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)md5_b64, md5, sizeof(md5));
	req.method = "PUT";
	req.key = full_key;
	req.query = q;
	req.nquery = 2;
	req.headers = h;
	req.nheaders = 1;
	req.body = data;
	req.body_len = len;
	req.body_sha256 = "UNSIGNED-PAYLOAD";
	req.response_max = S3_ERROR_BODY_MAX;
	req.what = what;
	ret = bop__s3_perform(s3, &req);
	if (ret == 0 && !req.etag)
		ret = bop__error(BOP_EIO, "%s: S3 answered without an ETag", what);
	if (ret == 0) {
		*etag = req.etag;
		req.etag = NULL;
	}
out:
	bop__s3_request_clear(&req);
	free(what);
	return ret;
}

/* ---- workers ---- */

static void record_failure(s3_writer_t *w, int code)
{
	if (!w->failed) {
		w->failed = code;
		w->fail_msg = strdup(bop_error_last());
	}
}

static void *worker_main(void *payload)
{
	s3_writer_t *w = payload;
	part_job_t job;
	char *etag;
	int ret;

	pthread_setname_np(pthread_self(), "bop-s3-part");

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->stopping && w->qlen == 0)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->qlen == 0)
			break;
		job = w->queue[w->qhead];
		w->qhead = (w->qhead + 1) % w->max_bufs;
		w->qlen--;
		if (!w->failed) {
			pthread_mutex_unlock(&w->lock);
			ret = bop__s3_upload_part(w->s3, w->full_key, w->upload_id, job.number, job.buf,
				job.len, &etag);
			pthread_mutex_lock(&w->lock);
			if (ret < 0)
				record_failure(w, ret);
			else
				w->etags[job.number - 1] = etag;
		}
		w->free_bufs[w->nfree++] = job.buf;
		w->in_flight--;
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static int start_workers(s3_writer_t *w)
{
	int n = w->s3->cfg.concurrency, err;

	w->threads = bop__calloc((size_t)n, sizeof(*w->threads));
	if (!w->threads)
		return BOP_ENOMEM;
	for (int i = 0; i < n; i++) {
		err = pthread_create(&w->threads[i], NULL, worker_main, w);
		if (err)
			return bop__error_errno(BOP_ERROR, err, "cannot start an S3 upload thread");
		w->nthreads++;
	}
	return 0;
}

static void stop_workers(s3_writer_t *w)
{
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	for (int i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	w->nthreads = 0;
}

/* The first worker failure, as this thread's error. */
static int report_failure(s3_writer_t *w)
{
	return bop__error(w->failed, "%s", w->fail_msg ? w->fail_msg : bop_strerror(w->failed));
}

/* ---- the sink ---- */

static int take_buffer(s3_writer_t *w)
{
	int ret = 0;

	pthread_mutex_lock(&w->lock);
	while (!w->failed && w->nfree == 0 && w->nbufs == w->max_bufs)
		pthread_cond_wait(&w->cond, &w->lock);
	if (w->failed) {
		ret = report_failure(w);
	} else if (w->nfree) {
		w->cur = w->free_bufs[--w->nfree];
	} else {
		w->cur = malloc(w->part_size);
		if (w->cur)
			w->nbufs++;
		else
			ret = bop__error(BOP_ENOMEM, "out of memory for a %llu-byte S3 part buffer",
				(unsigned long long)w->part_size);
	}
	pthread_mutex_unlock(&w->lock);
	w->cur_len = 0;
	return ret;
}

static int begin_multipart(s3_writer_t *w)
{
	int ret = bop__s3_create_upload(w->s3, w->full_key, &w->upload_id);

	if (ret == 0)
		ret = start_workers(w);
	return ret;
}

static int grow_etags(s3_writer_t *w, int need)
{
	int cap = w->etags_cap ? w->etags_cap : 64;
	char **grown;

	while (cap < need)
		cap *= 2;
	grown = realloc(w->etags, (size_t)cap * sizeof(*grown));
	if (!grown)
		return bop__error_oom();
	memset(grown + w->etags_cap, 0, (size_t)(cap - w->etags_cap) * sizeof(*grown));
	w->etags = grown;
	w->etags_cap = cap;
	return 0;
}

/* Queues the current buffer as the next part. */
static int queue_part(s3_writer_t *w)
{
	int ret;

	if (!w->upload_id && (ret = begin_multipart(w)) < 0)
		return ret;
	if (w->next_part > w->s3->cfg.max_parts)
		return bop__error(BOP_EINVAL, "%s: the object is larger than max_parts (%d) parts of %llu bytes; raise part_size or max_parts, or give the expected size",
			w->what, w->s3->cfg.max_parts, (unsigned long long)w->part_size);
	pthread_mutex_lock(&w->lock);
	ret = w->next_part > w->etags_cap ? grow_etags(w, w->next_part) : 0;
	if (ret == 0 && w->failed)
		ret = report_failure(w);
	if (ret == 0) {
		w->queue[(w->qhead + w->qlen) % w->max_bufs] =
			(part_job_t){ w->next_part++, w->cur, w->cur_len };
		w->qlen++;
		w->in_flight++;
		w->cur = NULL;
		w->cur_len = 0;
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	return ret;
}

static int writer_fail(s3_writer_t *w, int ret);

static int writer_write(bop_sink_t *base, const void *buf, size_t len)
{
	s3_writer_t *w = (s3_writer_t *)base;
	const unsigned char *p = buf;
	size_t n;
	int ret;

	if (w->state != WRITER_OPEN)
		return bop__error(BOP_EINVAL, "%s: the writer is already %s", w->what,
			w->state == WRITER_COMMITTED ? "committed" : "aborted");
	while (len) {
		/* A full part is sent only once more data shows it is not the last one. */
		if (w->cur && w->cur_len == w->part_size && (ret = queue_part(w)) < 0)
			return writer_fail(w, ret);
		if (!w->cur && (ret = take_buffer(w)) < 0)
			return writer_fail(w, ret);
		n = w->part_size - w->cur_len;
		if (n > len)
			n = len;
		memcpy(w->cur + w->cur_len, p, n);
		w->cur_len += n;
		p += n;
		len -= n;
	}
	return 0;
}

/* ---- exclusive writes whose answer was lost ---- */

/* `etag` without its quotes equals `hex`. */
static bool etag_is(const char *etag, const char *hex)
{
	size_t n = strlen(hex);

	if (*etag == '"')
		etag++;
	return !strncmp(etag, hex, n) && (etag[n] == '\0' || (etag[n] == '"' && !etag[n + 1]));
}

/* The ETag S3 gives a multipart object: MD5 of the parts' binary MD5s, "-", the count.
 * False when a part's ETag is not an MD5 (encrypted with KMS or a customer key). */
static bool multipart_etag(s3_writer_t *w, int parts, char *out, size_t cap)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md5[16], digest[EVP_MAX_MD_SIZE];
	char hex[33];
	unsigned int dlen = 0;
	size_t len = 0;
	bool done = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL);

	for (int i = 0; done && i < parts; i++) {
		const char *e = w->etags[i] + (w->etags[i][0] == '"');

		done = strcspn(e, "\"") == 32;
		if (done) {
			memcpy(hex, e, 32);
			hex[32] = '\0';
			done = OPENSSL_hexstr2buf_ex(md5, sizeof(md5), &len, hex, '\0') && len == 16 &&
				EVP_DigestUpdate(ctx, md5, sizeof(md5));
		}
	}
	if (done)
		done = EVP_DigestFinal_ex(ctx, digest, &dlen) && dlen == 16;
	EVP_MD_CTX_free(ctx);
	if (done) {
		bop__hex(hex, digest, 16);
		snprintf(out, cap, "%s-%d", hex, parts);
	}
	return done;
}

/* A conditional write that was sent again (the answer to an earlier try was lost) and was
 * refused because the object exists: it is ours when it has the ETag of what we sent.
 * `etag_hex` is that ETag without quotes, or NULL when unknown. Returns 0 or `ret` with
 * its message kept. */
static int exclusive_retry_check(s3_writer_t *w, const s3_request_t *sent, int ret,
	const char *etag_hex)
{
	s3_request_t req = { 0 };
	char *msg;
	bool ours;

	if (ret != BOP_EEXISTS || sent->sends < 2 || !etag_hex)
		return ret;
	if (!(msg = bop__strdup(bop_error_last())))
		return ret;
	req.method = "HEAD";
	req.key = w->full_key;
	req.what = w->what;
	ours = bop__s3_perform(w->s3, &req) == 0 && req.etag && etag_is(req.etag, etag_hex);
	bop__s3_request_clear(&req);
	if (ours)
		bop__log(BOP_LOG_INFO, "s3", "%s: the answer to an earlier try was lost, but it stored the object",
			w->what);
	else
		bop__error(ret, "%s", msg);
	free(msg);
	return ours ? 0 : ret;
}

static int put_single(s3_writer_t *w)
{
	s3_header_t h[1] = { { "if-none-match", "*" } };
	s3_request_t req = { 0 };
	int ret;

	req.method = "PUT";
	req.key = w->full_key;
	req.body = w->cur;
	req.body_len = w->cur_len;
	req.headers = h;
	req.nheaders = w->exclusive ? 1 : 0;
	req.response_max = S3_ERROR_BODY_MAX;
	req.what = w->what;
	ret = bop__s3_perform(w->s3, &req);
	if (ret == BOP_EEXISTS) {
		unsigned char md5[16];
		char hex[33];
		bool known = EVP_Digest(w->cur, w->cur_len, md5, NULL, EVP_md5(), NULL);

		if (known)
			bop__hex(hex, md5, sizeof(md5));
		ret = exclusive_retry_check(w, &req, ret, known ? hex : NULL);
	}
	bop__s3_request_clear(&req);
	return ret;
}

static char *complete_body(s3_writer_t *w, int parts)
{
	size_t cap = 128 + (size_t)parts * 160, n;
	char *body = malloc(cap);

	if (!body) {
		bop__error_oom();
		return NULL;
	}
	n = (size_t)snprintf(body, cap, "<CompleteMultipartUpload>");
	for (int i = 0; i < parts; i++)
		n += (size_t)snprintf(body + n, cap - n, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>",
			i + 1, w->etags[i]);
	snprintf(body + n, cap - n, "</CompleteMultipartUpload>");
	return body;
}

/* S3 may answer 200 and put an <Error> in the body. */
static int check_complete(s3_writer_t *w, const s3_request_t *req, int parts)
{
	s3_xml_node_t *root = NULL;
	const char *etag, *dash;
	int ret;

	if (!req->response.len)
		return 0;
	if ((ret = bop__s3_xml_parse(&root, req->response.data, req->response.len, S3_XML_MAX)) < 0)
		return bop__error_wrap("%s", w->what);
	if (strcmp(root->name, "Error") == 0) {
		ret = bop__s3_http_error(w->s3, req, 500, req->response.data, req->response.len, NULL);
	} else if ((etag = bop__s3_xml_text(root, "ETag")) && (dash = strrchr(etag, '-')) &&
			atoi(dash + 1) != parts) {
		ret = bop__error(BOP_EIO, "%s: S3 completed the upload with %d parts instead of %d (ETag %s)",
			w->what, atoi(dash + 1), parts, etag);
	}
	bop__s3_xml_free(root);
	return ret;
}

static int complete_upload(s3_writer_t *w)
{
	int parts = w->next_part - 1;
	s3_param_t q[1] = { { "uploadId", w->upload_id } };
	s3_header_t h[1] = { { "if-none-match", "*" } };
	s3_request_t req = { 0 };
	char *body = complete_body(w, parts);
	int ret;

	if (!body)
		return BOP_ENOMEM;
	req.method = "POST";
	req.key = w->full_key;
	req.query = q;
	req.nquery = 1;
	req.headers = h;
	req.nheaders = w->exclusive ? 1 : 0;
	req.body = body;
	req.body_len = strlen(body);
	req.what = w->what;
	ret = bop__s3_perform(w->s3, &req);
	if (ret == 0)
		ret = check_complete(w, &req, parts);
	if (ret == BOP_EEXISTS) {
		char etag[48];

		ret = exclusive_retry_check(w, &req, ret,
			multipart_etag(w, parts, etag, sizeof(etag)) ? etag : NULL);
	}
	bop__s3_request_clear(&req);
	free(body);
	return ret;
}

/* Waits until every queued part is uploaded; the first failure, if any. */
static int drain(s3_writer_t *w)
{
	int ret = 0;

	pthread_mutex_lock(&w->lock);
	while (w->in_flight > 0)
		pthread_cond_wait(&w->cond, &w->lock);
	if (w->failed)
		ret = report_failure(w);
	pthread_mutex_unlock(&w->lock);
	return ret;
}

/* Stops the workers and aborts the upload, keeping the current error message. */
static void abort_upload(s3_writer_t *w)
{
	int code = bop_error_last_code();
	char *msg = code != BOP_OK ? strdup(bop_error_last()) : NULL;

	pthread_mutex_lock(&w->lock);
	if (!w->failed)
		w->failed = BOP_ECANCELED;
	pthread_mutex_unlock(&w->lock);
	stop_workers(w);
	if (w->upload_id && bop__s3_abort_upload(w->s3, w->full_key, w->upload_id) < 0)
		bop__log(BOP_LOG_WARN, "s3", "%s (it will be collected by a cleanup)", bop_error_last());
	if (msg)
		bop__error(code, "%s", msg);
	free(msg);
}

static int writer_fail(s3_writer_t *w, int ret)
{
	abort_upload(w);
	w->state = WRITER_ABORTED;
	return ret;
}

static int writer_commit(bop_sink_t *base)
{
	s3_writer_t *w = (s3_writer_t *)base;
	int ret;

	if (w->state != WRITER_OPEN)
		return bop__error(BOP_EINVAL, "%s: the writer is already %s", w->what,
			w->state == WRITER_COMMITTED ? "committed" : "aborted");
	if (!w->upload_id) {
		ret = put_single(w);
		w->state = ret == 0 ? WRITER_COMMITTED : WRITER_ABORTED;
		return ret;
	}
	ret = w->cur_len ? queue_part(w) : 0;
	if (ret == 0)
		ret = drain(w);
	stop_workers(w);
	if (ret == 0)
		ret = complete_upload(w);
	if (ret < 0)
		return writer_fail(w, ret);
	w->state = WRITER_COMMITTED;
	return 0;
}

static void writer_abort(bop_sink_t *base)
{
	s3_writer_t *w = (s3_writer_t *)base;

	if (w->state != WRITER_OPEN)
		return;
	abort_upload(w);
	w->state = WRITER_ABORTED;
}

static void writer_free(bop_sink_t *base)
{
	s3_writer_t *w = (s3_writer_t *)base;

	if (!w)
		return;
	writer_abort(base);
	stop_workers(w);
	free(w->cur);
	for (int i = 0; i < w->nfree; i++)
		free(w->free_bufs[i]);
	for (int i = 0; i < w->qlen; i++)
		free(w->queue[(w->qhead + i) % w->max_bufs].buf);
	for (int i = 0; i < w->etags_cap; i++)
		free(w->etags[i]);
	free(w->etags);
	free(w->free_bufs);
	free(w->queue);
	free(w->threads);
	free(w->upload_id);
	free(w->fail_msg);
	free(w->full_key);
	free(w->what);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w);
}

int bop__s3_put(bop_storage_t *base, bop_sink_t **out, const char *key,
	const bop_put_options_t *opts)
{
	s3_storage_t *s3 = (s3_storage_t *)base;
	s3_writer_t *w = bop__calloc(1, sizeof(*w));

	if (!w)
		return BOP_ENOMEM;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->base = (bop_sink_t)BOP_SINK_INIT(.write = writer_write, .commit = writer_commit,
		.abort = writer_abort, .free = writer_free);
	w->s3 = s3;
	w->exclusive = opts->exclusive != 0;
	w->part_size = bop__s3_part_size_for(s3->cfg.part_size, s3->cfg.max_parts,
		opts->size_hint);
	w->next_part = 1;
	w->max_bufs = s3->cfg.concurrency + 1;
	w->full_key = bop__s3_full_key(s3, key);
	w->what = w->full_key ? object_what(s3, "cannot upload", w->full_key) : NULL;
	w->free_bufs = bop__calloc((size_t)w->max_bufs, sizeof(*w->free_bufs));
	w->queue = bop__calloc((size_t)w->max_bufs, sizeof(*w->queue));
	if (!w->full_key || !w->what || !w->free_bufs || !w->queue) {
		w->state = WRITER_ABORTED;
		writer_free(&w->base);
		return BOP_ENOMEM;
	}
	*out = &w->base;
	return 0;
}
