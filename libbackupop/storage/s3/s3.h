/*
 * The "s3" storage backend, private to libbackupop/storage/s3/: configuration, SigV4,
 * requests with retries, XML, the multipart writer and the ranged reader. The tests in
 * tests/s3/ include this header to check the pieces one by one.
 */
#ifndef BOP_STORAGE_S3_H
#define BOP_STORAGE_S3_H

#include "internal.h"

#include <curl/curl.h>
#include <pthread.h>

#define S3_MIB ((uint64_t)1 << 20)
#define S3_MIN_PART_SIZE (5 * S3_MIB)
#define S3_MAX_PART_SIZE (5 * 1024 * S3_MIB)
#define S3_DEFAULT_PART_SIZE (16 * S3_MIB)
#define S3_MAX_PARTS 10000
#define S3_MAX_CONCURRENCY 64
#define S3_XML_MAX (16 * S3_MIB)        /* largest XML body read */
#define S3_ERROR_BODY_MAX (64 * 1024)

/* ---- configuration (s3.c) ---- */

typedef struct s3_config {
	char *bucket;
	char *prefix;                   /* "" or "a/b/" (ends with '/') */
	char *endpoint;                 /* "scheme://host[:port]", no trailing '/' */
	char *region;
	int path_style;                 /* -1 until decided */
	int insecure;
	char *ca_file;
	uint64_t part_size;
	int concurrency;
	int max_parts;
	long timeout;                   /* seconds per request */
	char *access_key_id;
	char *secret_access_key;
	char *session_token;
	char *access_key_file;
	char *secret_key_file;
} s3_config_t;

/* Parses "s3://BUCKET[/PREFIX][?name=value&...]" and then `settings` (NULL-terminated
 * name/value pairs, may be NULL) into `cfg`, with the defaults filled in. Credentials are
 * not resolved. BOP_EINVAL names a bad or unknown parameter. */
int bop__s3_config_parse(s3_config_t *cfg, const char *url, const char *const *settings);
void bop__s3_config_clear(s3_config_t *cfg);

/* "16MiB", "64M", "5242880" → bytes. BOP_EINVAL when malformed. */
int bop__s3_parse_size(uint64_t *out, const char *text);

/* The part size a put of `size_hint` bytes uses: the configured one, grown (in whole MiB)
 * so that the object fits in `max_parts` parts. */
uint64_t bop__s3_part_size_for(uint64_t part_size, int max_parts, uint64_t size_hint);

/* ---- SigV4 (sigv4.c) ---- */

typedef struct s3_param {
	const char *name;
	const char *value;
} s3_param_t;

/* A header to send and sign; the name is lowercase. */
typedef struct s3_header {
	const char *name;
	const char *value;
} s3_header_t;

typedef struct s3_sign_input {
	const char *method;
	const char *canonical_uri;      /* already encoded, as sent */
	const char *canonical_query;    /* already canonical, as sent */
	const s3_header_t *headers;     /* every signed header, any order */
	size_t nheaders;
	const char *payload_sha256;     /* lowercase hex */
	const char *amz_date;           /* "20130524T000000Z" */
	const char *region;
	const char *access_key_id;
	const char *secret_access_key;
} s3_sign_input_t;

/* RFC 3986 percent-encoding of every byte except A-Z a-z 0-9 - . _ ~ (and '/', when
 * `keep_slash`), as SigV4 wants; uppercase hex. NULL when out of memory. */
char *bop__s3_uri_encode(const char *text, bool keep_slash);

/* The canonical query string of `params` (encoded, sorted by name then value, "a=&b=1").
 * NULL when out of memory. */
char *bop__s3_canonical_query(const s3_param_t *params, size_t n);

/* The value of the Authorization header. */
int bop__s3_sign(char **authorization, const s3_sign_input_t *in);

/* Lowercase hex SHA-256 of `len` bytes into `hex` (65 bytes). */
int bop__s3_sha256_hex(char hex[65], const void *data, size_t len);

/* "20130524T000000Z" for unix time `t`; `out` holds 17 bytes. */
void bop__s3_amz_date(char out[17], int64_t t);

/* ---- XML (xml.c) ---- */

typedef struct s3_xml_node {
	char *name;
	char *text;                     /* character data directly inside, "" when none */
	size_t text_len;
	struct s3_xml_node *child;      /* first child */
	struct s3_xml_node *last;
	struct s3_xml_node *next;       /* next sibling */
} s3_xml_node_t;

/* Parses a whole document of at most `max` bytes into a tree. BOP_EFORMAT when malformed
 * or too large or too deep. Free with bop__s3_xml_free(). */
int bop__s3_xml_parse(s3_xml_node_t **root, const char *data, size_t len, size_t max);
void bop__s3_xml_free(s3_xml_node_t *root);

/* The first child of `node` named `name`, or NULL. */
s3_xml_node_t *bop__s3_xml_child(const s3_xml_node_t *node, const char *name);

/* The text of the first child named `name`, or NULL. */
const char *bop__s3_xml_text(const s3_xml_node_t *node, const char *name);

/* An S3 <Error> body. Fields point into the tree or are NULL. */
typedef struct s3_error_info {
	const char *code;
	const char *message;
	const char *request_id;
} s3_error_info_t;

/* Fills `info` from an <Error> document (0), or returns BOP_EFORMAT. */
int bop__s3_xml_error(s3_error_info_t *info, const s3_xml_node_t *root);

/* ListObjectsV2: calls `cb` for each <Contents> with its decoded key. */
typedef int (*s3_list_entry_cb)(const char *key, uint64_t size, int64_t mtime, void *payload);

typedef struct s3_list_page {
	bool truncated;
	char *next_token;               /* continuation token (ListObjectsV2) */
	char *next_key_marker;          /* ListMultipartUploads */
	char *next_upload_id_marker;
} s3_list_page_t;

void bop__s3_list_page_clear(s3_list_page_t *page);

/* Parses a ListBucketResult body. `cb`'s non-zero return stops and is returned. */
int bop__s3_xml_list_objects(const char *data, size_t len, size_t max, s3_list_page_t *page,
	s3_list_entry_cb cb, void *payload);

typedef int (*s3_upload_entry_cb)(const char *key, const char *upload_id, int64_t initiated,
	void *payload);

/* Parses a ListMultipartUploadsResult body. */
int bop__s3_xml_list_uploads(const char *data, size_t len, size_t max, s3_list_page_t *page,
	s3_upload_entry_cb cb, void *payload);

/* "%xx"- and '+'-decoding of a key listed with encoding-type=url. NULL when malformed or
 * out of memory. */
char *bop__s3_url_decode(const char *text, size_t len);

/* ISO 8601 "2009-10-12T17:50:30.000Z" → unix seconds; -1 when malformed. */
int64_t bop__s3_parse_iso8601(const char *text);

/* ---- requests (http.c) ---- */

typedef struct s3_storage s3_storage_t;

typedef struct s3_buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;
} s3_buf_t;

typedef struct s3_request {
	const char *method;
	const char *key;                /* full object key; NULL for the bucket */
	const s3_param_t *query;
	size_t nquery;
	const s3_header_t *headers;     /* extra headers, lowercase names, all signed */
	size_t nheaders;
	const void *body;
	size_t body_len;
	const char *body_sha256;        /* hex of the body; NULL: computed here */
	size_t response_max;            /* largest body kept (0: S3_XML_MAX) */
	const char *what;               /* "cannot read s3://b/k", prefixed to errors */
	/* results */
	int sends;                      /* how many times it was sent: our retries and libcurl's
	                                 * own resends on a dead reused connection (seen when it
	                                 * reads a body from the start again) */
	long status;
	s3_buf_t response;
	char *etag;
	uint64_t content_length;
	int64_t last_modified;
} s3_request_t;

/* Performs the request with retries; 0 for a 2xx status, else an error with a message
 * (the XML error body interpreted). Free the results with bop__s3_request_clear(). */
int bop__s3_perform(s3_storage_t *s3, s3_request_t *req);
void bop__s3_request_clear(s3_request_t *req);

/* A configured easy handle for `req` (URL, signature, TLS, timeouts) without any body or
 * response handling; `*headers` must be freed with curl_slist_free_all() after the
 * transfer. */
int bop__s3_prepare(s3_storage_t *s3, CURL *curl, const s3_request_t *req,
	struct curl_slist **headers);

/* The error for a finished request: `status` and the body (may be empty). */
int bop__s3_http_error(s3_storage_t *s3, const s3_request_t *req, long status,
	const char *body, size_t len, const char *request_id);

/* The error for a failed transfer; *retry tells whether trying again may help. */
int bop__s3_curl_error(s3_storage_t *s3, const s3_request_t *req, CURL *curl, CURLcode rc,
	const char *errbuf, bool *retry);

/* Whether an HTTP status / S3 error code is worth retrying. */
bool bop__s3_status_retryable(long status, const char *code);

/* Sleeps before try number `attempt` (1-based) with full jitter; false when the retry
 * budget (tries or time since `start_ms`) is spent. */
bool bop__s3_backoff(s3_storage_t *s3, int attempt, int64_t start_ms);

/* Appends "; gave up after N tries in T s" to the current error once the retry budget is
 * spent, so that the user sees the failure was not a one-off; returns `code`. */
int bop__s3_gave_up(int code, int tries, int64_t start_ms);

/* ---- the storage (s3.c) ---- */

struct s3_storage {
	bop_storage_t base;
	s3_config_t cfg;
	char *display;                  /* "s3://bucket/prefix" */
	char *host;                     /* Host header */
	char *base_url;                 /* scheme://host[:port] */
	char *base_path;                /* "" (virtual-hosted) or "/bucket" */
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	/* Retry budget; tests lower them. */
	int max_tries;
	int64_t retry_base_ms;
	int64_t retry_max_ms;            /* total time spent retrying one request */
};

/* The full key of `key` below the storage's prefix. */
char *bop__s3_full_key(const s3_storage_t *s3, const char *key);

/* ---- multipart (upload.c) ---- */

int bop__s3_put(bop_storage_t *base, bop_sink_t **out, const char *key,
	const bop_put_options_t *opts);

/* CreateMultipartUpload for a full key; *upload_id is malloc'd. */
int bop__s3_create_upload(s3_storage_t *s3, const char *full_key, char **upload_id);

/* AbortMultipartUpload. */
int bop__s3_abort_upload(s3_storage_t *s3, const char *full_key, const char *upload_id);

/* PUT one part of an upload (testing aid and the writer's workers). */
int bop__s3_upload_part(s3_storage_t *s3, const char *full_key, const char *upload_id,
	int part, const void *data, size_t len, char **etag);

/* ---- reading (download.c) ---- */

int bop__s3_get(bop_storage_t *base, bop_source_t **out, const char *key, uint64_t offset);

/* ---- batch delete (s3.c) ---- */

/* DeleteObjects of up to 1000 relative keys; each key that failed is reported. */
int bop__s3_delete_objects(s3_storage_t *s3, const char *const *keys, size_t n);

#endif
