/*
 * The S3 backend's pieces without a server: SigV4 against AWS's published examples,
 * path and query encoding, XML bodies (listings, errors, malformed and oversize ones),
 * URL and settings parsing, error messages, part size growth.
 */
#include "tap.h"

#include "storage/s3/s3.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AKID "AKIAIOSFODNN7EXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define PREFIX "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"

static char *sign(const char *method, const char *uri, const char *query,
	const s3_header_t *h, size_t n, const char *payload)
{
	s3_sign_input_t in = { method, uri, query, h, n, payload, "20130524T000000Z",
		"us-east-1", AKID, SECRET };
	char *auth = NULL;

	if (bop__s3_sign(&auth, &in) < 0)
		diag("sign: %s", bop_error_last());
	return auth;
}

/* docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html, "Examples". */
static void test_sigv4_examples(void)
{
	const char *host = "examplebucket.s3.amazonaws.com";
	s3_header_t get_obj[] = { { "host", host }, { "range", "bytes=0-9" },
		{ "x-amz-content-sha256", EMPTY_SHA }, { "x-amz-date", "20130524T000000Z" } };
	char put_sha[65];
	s3_header_t put_obj[] = { { "date", "Fri, 24 May 2013 00:00:00 GMT" }, { "host", host },
		{ "x-amz-content-sha256", put_sha }, { "x-amz-date", "20130524T000000Z" },
		{ "x-amz-storage-class", "REDUCED_REDUNDANCY" } };
	s3_header_t plain[] = { { "x-amz-date", "20130524T000000Z" }, { "host", host },
		{ "x-amz-content-sha256", EMPTY_SHA } };
	s3_param_t lifecycle[] = { { "lifecycle", "" } };
	s3_param_t list[] = { { "prefix", "J" }, { "max-keys", "2" } };
	char *auth, *uri, *q;

	auth = sign("GET", "/test.txt", "", get_obj, 4, EMPTY_SHA);
	is_str(auth, PREFIX "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
		"Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
		"SigV4: AWS example GET Object (Range)");
	free(auth);

	bop__s3_sha256_hex(put_sha, "Welcome to Amazon S3.", 21);
	is_str(put_sha, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
		"SHA-256 of the AWS example payload");
	uri = bop__s3_uri_encode("/test$file.text", true);
	is_str(uri, "/test%24file.text", "the example key is encoded ('$' → %24, '/' kept)");
	auth = sign("PUT", uri, "", put_obj, 5, put_sha);
	is_str(auth, PREFIX "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
		"Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
		"SigV4: AWS example PUT Object");
	free(auth);
	free(uri);

	q = bop__s3_canonical_query(lifecycle, 1);
	is_str(q, "lifecycle=", "a parameter without value is 'name='");
	auth = sign("GET", "/", q, plain, 3, EMPTY_SHA);
	is_str(auth, PREFIX "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
		"Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
		"SigV4: AWS example GET Bucket Lifecycle");
	free(auth);
	free(q);

	q = bop__s3_canonical_query(list, 2);
	is_str(q, "max-keys=2&prefix=J", "query parameters are sorted");
	auth = sign("GET", "/", q, plain, 3, EMPTY_SHA);
	is_str(auth, PREFIX "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
		"Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
		"SigV4: AWS example GET Bucket (List Objects)");
	free(auth);
	free(q);
}

static void test_encoding(void)
{
	s3_param_t params[] = { { "prefix", "a/b c" }, { "list-type", "2" },
		{ "continuation-token", "x=y+z" }, { "uploads", "" }, { "a", "2" }, { "a", "1" } };
	char *s;

	s = bop__s3_uri_encode("dir/a b+c~d_e-f.g", true);
	is_str(s, "dir/a%20b%2Bc~d_e-f.g", "path: space and '+' encoded, unreserved and '/' kept");
	free(s);
	s = bop__s3_uri_encode("dir/a b", false);
	is_str(s, "dir%2Fa%20b", "query value: '/' encoded");
	free(s);
	s = bop__s3_uri_encode("caf\xc3\xa9/\x01%*", true);
	is_str(s, "caf%C3%A9/%01%25%2A", "UTF-8, control characters, '%' and '*' encoded (uppercase hex)");
	free(s);
	s = bop__s3_canonical_query(params, BOP_ARRAY_SIZE(params));
	is_str(s, "a=1&a=2&continuation-token=x%3Dy%2Bz&list-type=2&prefix=a%2Fb%20c&uploads=",
		"canonical query: encoded, sorted by name then value");
	free(s);
	s = bop__s3_canonical_query(NULL, 0);
	is_str(s, "", "no parameters: empty query");
	free(s);
}

/* ---- XML ---- */

typedef struct seen {
	int n;
	char keys[8][64];
	uint64_t sizes[8];
	int64_t times[8];
	char ids[8][64];
} seen_t;

static int on_key(const char *key, uint64_t size, int64_t mtime, void *payload)
{
	seen_t *s = payload;

	if (s->n < 8) {
		snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", key);
		s->sizes[s->n] = size;
		s->times[s->n] = mtime;
	}
	s->n++;
	return 0;
}

static int on_upload(const char *key, const char *id, int64_t initiated, void *payload)
{
	seen_t *s = payload;

	if (s->n < 8) {
		snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", key);
		snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", id);
		s->times[s->n] = initiated;
	}
	s->n++;
	return 0;
}

static const char list_body[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	"<Name>test</Name><Prefix>p%2F</Prefix><KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys>"
	"<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
	"<NextContinuationToken>tok/en+1=</NextContinuationToken>"
	"<Contents><Key>p/a%20b</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>"
	"<ETag>&quot;abc&quot;</ETag><Size>434234</Size><StorageClass>STANDARD</StorageClass></Contents>"
	"<Contents><Key>p/caf%C3%A9+x%2B%01</Key><LastModified>2026-01-01T00:00:00Z</LastModified>"
	"<Size>0</Size></Contents>"
	"<Contents><Key>p/&lt;tag&gt;</Key><LastModified>bad</LastModified><Size>7</Size></Contents>"
	"</ListBucketResult>";

static void test_xml_list(void)
{
	s3_list_page_t page;
	seen_t seen = { 0 };
	char big[200];
	int ret;

	ret = bop__s3_xml_list_objects(list_body, strlen(list_body), S3_XML_MAX, &page, on_key, &seen);
	is_int(ret, 0, "ListObjectsV2 body parsed");
	is_int(seen.n, 3, "three keys");
	is_str(seen.keys[0], "p/a b", "%20 decoded");
	is_int(seen.sizes[0], 434234, "size");
	is_int(seen.times[0], 1255369830, "LastModified with milliseconds");
	is_str(seen.keys[1], "p/caf\xc3\xa9 x+\x01", "UTF-8, '+' (space), %2B and a control character decoded");
	is_int(seen.times[1], 1767225600, "LastModified without milliseconds");
	is_str(seen.keys[2], "p/<tag>", "XML entities decoded");
	is_int(seen.times[2], -1, "bad LastModified → -1");
	ok(page.truncated, "IsTruncated");
	is_str(page.next_token, "tok/en+1=", "continuation token kept as is");
	bop__s3_list_page_clear(&page);

	ret = bop__s3_xml_list_objects("<ListBucketResult><Contents><Key>a</Key>", 40, S3_XML_MAX,
		&page, on_key, &seen);
	is_int(ret, BOP_EFORMAT, "truncated XML → BOP_EFORMAT");
	ok(strstr(bop_error_last(), "malformed XML") != NULL, "message says malformed XML: %s", bop_error_last());
	ret = bop__s3_xml_list_objects("not xml at all", 14, S3_XML_MAX, &page, on_key, &seen);
	is_int(ret, BOP_EFORMAT, "garbage → BOP_EFORMAT");
	memset(big, ' ', sizeof(big));
	ret = bop__s3_xml_list_objects(big, sizeof(big), 100, &page, on_key, &seen);
	is_int(ret, BOP_EFORMAT, "oversize body → BOP_EFORMAT");
	ok(strstr(bop_error_last(), "too large") != NULL, "message says too large: %s", bop_error_last());
	ret = bop__s3_xml_list_objects("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
		67, S3_XML_MAX, &page, on_key, &seen);
	is_int(ret, BOP_EFORMAT, "truncated listing without a token → BOP_EFORMAT");
	ret = bop__s3_xml_list_objects("<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>a%zz</Key><Size>1</Size></Contents></ListBucketResult>",
		115, S3_XML_MAX, &page, on_key, &seen);
	is_int(ret, BOP_EFORMAT, "bad %-escape in a key → BOP_EFORMAT");
	ret = bop__s3_xml_list_objects("<ListBucketResult><Contents><Key>a</Key><Size>x</Size></Contents></ListBucketResult>",
		83, S3_XML_MAX, &page, on_key, &seen);
	is_int(ret, BOP_EFORMAT, "bad <Size> → BOP_EFORMAT");
	ret = bop__s3_xml_list_objects("<Error><Code>AccessDenied</Code></Error>", 40, S3_XML_MAX,
		&page, on_key, &seen);
	ok(ret < 0 && strstr(bop_error_last(), "AccessDenied"), "an <Error> instead of a listing is reported: %s",
		bop_error_last());
}

static void test_xml_nesting(void)
{
	static const char dtd[] = "<!DOCTYPE x [<!ENTITY e \"boom\">]><x>&e;</x>";
	static const char laughs[] = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
		"<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
		"<!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">"
		"<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>"
		"<ListBucketResult><Name>&lol3;</Name></ListBucketResult>";
	char deep[64 * 7 + 1] = "";
	s3_xml_node_t *root = NULL;
	int ret;

	for (int i = 0; i < 64; i++)
		strcat(deep, "<a>");
	ret = bop__s3_xml_parse(&root, deep, strlen(deep), S3_XML_MAX);
	is_int(ret, BOP_EFORMAT, "64 nested elements → BOP_EFORMAT");
	root = NULL;
	ret = bop__s3_xml_parse(&root, dtd, strlen(dtd), S3_XML_MAX);
	ok(ret == BOP_EFORMAT && !root && strstr(bop_error_last(), "document type declaration"),
		"a DTD defining an entity is refused, nothing expanded: %s", bop_error_last());
	bop__s3_xml_free(root);
	root = NULL;
	ret = bop__s3_xml_parse(&root, laughs, strlen(laughs), S3_XML_MAX);
	ok(ret == BOP_EFORMAT && !root && strstr(bop_error_last(), "document type declaration"),
		"so is a billion laughs: %s", bop_error_last());
	bop__s3_xml_free(root);
}

static void test_xml_uploads(void)
{
	static const char body[] =
		"<ListMultipartUploadsResult><Bucket>b</Bucket><EncodingType>url</EncodingType>"
		"<NextKeyMarker>p/k2</NextKeyMarker><NextUploadIdMarker>id-2</NextUploadIdMarker>"
		"<IsTruncated>true</IsTruncated>"
		"<Upload><Key>p/k%201</Key><UploadId>id-1</UploadId><Initiated>2026-11-21T03:00:00.000Z</Initiated></Upload>"
		"<Upload><Key>p/k2</Key><UploadId>id-2</UploadId><Initiated>2026-11-21T04:00:00.000Z</Initiated></Upload>"
		"</ListMultipartUploadsResult>";
	s3_list_page_t page;
	seen_t seen = { 0 };
	int ret;

	ret = bop__s3_xml_list_uploads(body, strlen(body), S3_XML_MAX, &page, on_upload, &seen);
	is_int(ret, 0, "ListMultipartUploads body parsed");
	is_int(seen.n, 2, "two uploads");
	is_str(seen.keys[0], "p/k 1", "upload key decoded");
	is_str(seen.ids[1], "id-2", "upload id");
	is_int(seen.times[0], 1795230000, "Initiated");
	ok(page.truncated, "IsTruncated");
	is_str(page.next_key_marker, "p/k2", "NextKeyMarker");
	is_str(page.next_upload_id_marker, "id-2", "NextUploadIdMarker");
	bop__s3_list_page_clear(&page);
	ret = bop__s3_xml_list_uploads("<ListMultipartUploadsResult><Upload><Key>k</Key></Upload></ListMultipartUploadsResult>",
		87, S3_XML_MAX, &page, on_upload, &seen);
	is_int(ret, BOP_EFORMAT, "upload without UploadId → BOP_EFORMAT");
}

/* ---- error bodies → codes and messages ---- */

static s3_storage_t *open_fake(const char *url)
{
	const char *settings[] = { "access_key_id", "AKIDTEST", "secret_access_key",
		"unit-test-secret-value", NULL };
	bop_storage_options_t opts = BOP_STORAGE_OPTIONS_INIT;
	bop_storage_t *st = NULL;

	opts.settings = settings;
	if (bop_storage_open(&st, url, &opts) < 0)
		diag("open %s: %s", url, bop_error_last());
	return (s3_storage_t *)st;
}

static int http_error(s3_storage_t *s3, long status, const char *body, const char *key,
	bool if_none_match)
{
	s3_header_t h[1] = { { "if-none-match", "*" } };
	s3_request_t req = { 0 };

	req.method = "GET";
	req.key = key;
	req.headers = h;
	req.nheaders = if_none_match ? 1 : 0;
	req.what = "cannot do it";
	return bop__s3_http_error(s3, &req, status, body, body ? strlen(body) : 0, "req-1");
}

static void test_errors(void)
{
	s3_storage_t *s3 = open_fake("s3://mybucket/pfx?endpoint=http://127.0.0.1:1");
	const char *m;
	int ret;

	if (!s3) {
		skip(12, "cannot open a storage");
		return;
	}
	ret = http_error(s3, 403, "<Error><Code>InvalidAccessKeyId</Code><Message></Message><RequestId>tx1</RequestId></Error>", "k", false);
	m = bop_error_last();
	ok(ret == BOP_EAUTH && strstr(m, "'AKIDTEST'") && strstr(m, "InvalidAccessKeyId") &&
		strstr(m, "check the credentials"), "InvalidAccessKeyId → BOP_EAUTH naming the key id: %s", m);
	ret = http_error(s3, 403, "<Error><Code>SignatureDoesNotMatch</Code></Error>", "k", false);
	ok(ret == BOP_EAUTH && strstr(bop_error_last(), "secret access key"), "SignatureDoesNotMatch → BOP_EAUTH: %s", bop_error_last());
	ok(!strstr(bop_error_last(), "unit-test-secret-value"), "the secret is not in the message");
	ret = http_error(s3, 403, "<Error><Code>RequestTimeTooSkewed</Code></Error>", "k", false);
	ok(ret == BOP_EAUTH && strstr(bop_error_last(), "clock"), "RequestTimeTooSkewed → BOP_EAUTH with a clock hint: %s", bop_error_last());
	ret = http_error(s3, 403, "<Error><Code>ExpiredToken</Code></Error>", "k", false);
	is_int(ret, BOP_EAUTH, "ExpiredToken → BOP_EAUTH");
	ret = http_error(s3, 403, NULL, "k", false);
	ok(ret == BOP_EAUTH && strstr(bop_error_last(), "secret access key") &&
		strstr(bop_error_last(), "not allowed"),
		"HEAD 403 without a body → BOP_EAUTH naming both possible causes: %s", bop_error_last());
	ret = http_error(s3, 404, "<Error><Code>NoSuchBucket</Code><BucketName>mybucket</BucketName></Error>", NULL, false);
	ok(ret == BOP_ENOTFOUND && strstr(bop_error_last(), "bucket 'mybucket' does not exist"), "NoSuchBucket → BOP_ENOTFOUND: %s", bop_error_last());
	ret = http_error(s3, 404, NULL, "k", false);
	is_int(ret, BOP_ENOTFOUND, "HEAD 404 → BOP_ENOTFOUND");
	ret = http_error(s3, 412, NULL, "k", true);
	is_int(ret, BOP_EEXISTS, "412 on an exclusive put → BOP_EEXISTS");
	ret = http_error(s3, 501, "<Error><Code>NotImplemented</Code></Error>", "k", true);
	is_int(ret, BOP_ENOTSUPPORTED, "501 NotImplemented → BOP_ENOTSUPPORTED");
	ret = http_error(s3, 500, "<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message><RequestId>tx9</RequestId></Error>", "k", false);
	m = bop_error_last();
	ok(ret == BOP_EIO && strstr(m, "HTTP 500") && strstr(m, "InternalError") && strstr(m, "tx9") &&
		strstr(m, "internal error."), "other errors → BOP_EIO with status, code, message and request id: %s", m);
	ret = http_error(s3, 400, "<Error><Code", "k", false);
	ok(ret == BOP_EIO && strstr(bop_error_last(), "HTTP 400"), "malformed error body → BOP_EIO with the status: %s", bop_error_last());
	ok(bop__s3_status_retryable(503, "SlowDown") && bop__s3_status_retryable(429, NULL) &&
		bop__s3_status_retryable(500, NULL) && bop__s3_status_retryable(400, "RequestTimeout"),
		"5xx, 429, SlowDown and RequestTimeout are retried");
	ok(!bop__s3_status_retryable(403, "SignatureDoesNotMatch") && !bop__s3_status_retryable(404, NULL) &&
		!bop__s3_status_retryable(501, "NotImplemented"), "auth, not-found and 501 are not retried");
	bop_storage_free(&s3->base);
}

/* ---- configuration ---- */

static int parse(s3_config_t *cfg, const char *url, const char *const *settings)
{
	return bop__s3_config_parse(cfg, url, settings);
}

static void test_config(void)
{
	const char *settings[] = { "region", "eu-west-1", "concurrency", "8", NULL };
	const char *bad_setting[] = { "colour", "blue", NULL };
	s3_config_t cfg;
	uint64_t n = 0;

	is_int(parse(&cfg, "s3://bkt", NULL), 0, "s3://bkt parses");
	is_str(cfg.bucket, "bkt", "bucket");
	is_str(cfg.prefix, "", "no prefix");
	is_str(cfg.region, "us-east-1", "default region");
	is_str(cfg.endpoint, "https://s3.us-east-1.amazonaws.com", "default endpoint");
	is_int(cfg.path_style, 0, "AWS: virtual-hosted by default");
	is_int(cfg.part_size, 16 << 20, "default part size 16 MiB");
	is_int(cfg.concurrency, 4, "default concurrency 4");
	is_int(cfg.max_parts, 10000, "default max_parts 10000");
	is_int(cfg.timeout, 300, "default timeout 300 s");
	is_int(cfg.insecure, 0, "TLS verified by default");
	bop__s3_config_clear(&cfg);

	is_int(parse(&cfg, "s3://bkt/a/b/?endpoint=http://127.0.0.1:7480/&part_size=8MiB&max_parts=50&timeout=9&insecure=true&ca_file=/x%20y.pem", settings),
		0, "URL with options and settings parses");
	is_str(cfg.prefix, "a/b/", "prefix normalized with one trailing '/'");
	is_str(cfg.endpoint, "http://127.0.0.1:7480", "endpoint without trailing '/'");
	is_int(cfg.path_style, 1, "an endpoint means path-style by default");
	is_int(cfg.part_size, 8 << 20, "part_size=8MiB");
	is_int(cfg.max_parts, 50, "max_parts=50");
	is_int(cfg.timeout, 9, "timeout=9");
	is_int(cfg.insecure, 1, "insecure=true");
	is_str(cfg.ca_file, "/x y.pem", "values are percent-decoded");
	is_str(cfg.region, "eu-west-1", "region from the settings");
	is_int(cfg.concurrency, 8, "concurrency from the settings");
	bop__s3_config_clear(&cfg);

	is_int(parse(&cfg, "s3://bkt?endpoint=http://h:1&path_style=false", NULL), 0, "path_style=false");
	is_int(cfg.path_style, 0, "explicit path_style wins");
	bop__s3_config_clear(&cfg);
	is_int(parse(&cfg, "s3://My_Bucket", NULL), 0, "a legacy bucket name parses");
	is_int(cfg.path_style, 1, "and is addressed path-style");
	bop__s3_config_clear(&cfg);

	is_int(parse(&cfg, "s3://bkt?colour=blue", NULL), BOP_EINVAL, "unknown URL option → BOP_EINVAL");
	ok(strstr(bop_error_last(), "colour") != NULL, "the message names it: %s", bop_error_last());
	is_int(parse(&cfg, "s3://bkt", bad_setting), BOP_EINVAL, "unknown setting → BOP_EINVAL");
	ok(strstr(bop_error_last(), "colour") != NULL, "the message names it: %s", bop_error_last());
	is_int(parse(&cfg, "s3://bkt?part_size=4MiB", NULL), BOP_EINVAL, "part_size below 5 MiB → BOP_EINVAL");
	is_int(parse(&cfg, "s3://bkt?part_size=lots", NULL), BOP_EINVAL, "part_size=lots → BOP_EINVAL");
	is_int(parse(&cfg, "s3://bkt?concurrency=0", NULL), BOP_EINVAL, "concurrency=0 → BOP_EINVAL");
	is_int(parse(&cfg, "s3://bkt?max_parts=10001", NULL), BOP_EINVAL, "max_parts=10001 → BOP_EINVAL");
	is_int(parse(&cfg, "s3://bkt?path_style=maybe", NULL), BOP_EINVAL, "path_style=maybe → BOP_EINVAL");
	is_int(parse(&cfg, "s3://bkt?endpoint=ftp://h", NULL), BOP_EINVAL, "ftp endpoint → BOP_EINVAL");
	is_int(parse(&cfg, "s3://bkt?endpoint=http://h/sub", NULL), BOP_EINVAL, "endpoint with a path → BOP_EINVAL");
	is_int(parse(&cfg, "s3://bkt?timeout", NULL), BOP_EINVAL, "option without value → BOP_EINVAL");
	is_int(parse(&cfg, "s3://bkt?secret_access_key=x", NULL), BOP_EINVAL, "secret in the URL → BOP_EINVAL");
	ok(strstr(bop_error_last(), "environment") != NULL, "and says where it goes: %s", bop_error_last());
	is_int(parse(&cfg, "s3://", NULL), BOP_EINVAL, "no bucket → BOP_EINVAL");
	is_int(parse(&cfg, "s3://b/x//y", NULL), BOP_EINVAL, "empty prefix segment → BOP_EINVAL");
	is_int(parse(&cfg, "s3://b/../y", NULL), BOP_EINVAL, "'..' in the prefix → BOP_EINVAL");

	ok(bop__s3_parse_size(&n, "64M") == 0 && n == 64 << 20, "64M");
	ok(bop__s3_parse_size(&n, "5242880") == 0 && n == 5242880, "plain bytes");
	ok(bop__s3_parse_size(&n, "1GiB") == 0 && n == 1 << 30, "1GiB");
	ok(bop__s3_parse_size(&n, "12X") < 0 && bop__s3_parse_size(&n, "-1M") < 0 &&
		bop__s3_parse_size(&n, "") < 0, "bad sizes refused");
}

static void test_part_size(void)
{
	uint64_t mib = 1 << 20;

	is_int(bop__s3_part_size_for(16 * mib, 10000, 0), 16 * mib, "unknown size: configured part size");
	is_int(bop__s3_part_size_for(16 * mib, 10000, 100 * mib), 16 * mib, "small object: configured part size");
	is_int(bop__s3_part_size_for(16 * mib, 10000, (uint64_t)1 << 40), 105 * mib,
		"1 TiB in 10000 parts: grows to 105 MiB");
	is_int(bop__s3_part_size_for(5 * mib, 3, 16 * mib), 6 * mib, "16 MiB in 3 parts: 6 MiB");
	is_int(bop__s3_part_size_for(5 * mib, 1, (uint64_t)1 << 50), 5120 * mib, "capped at 5 GiB");
}

static void test_open(void)
{
	const char *files[] = { "access_key_file", NULL, "secret_key_file", NULL, NULL };
	char dir[] = "/tmp/bop-s3-unit-XXXXXX", akf[64], skf[64];
	bop_storage_options_t opts = BOP_STORAGE_OPTIONS_INIT;
	s3_storage_t *s3;
	bop_storage_t *st = NULL;
	FILE *f;
	int ret;

	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");
	ret = bop_storage_open(&st, "s3://bkt", NULL);
	ok(ret == BOP_EAUTH && strstr(bop_error_last(), "AWS_ACCESS_KEY_ID"), "no credentials → BOP_EAUTH saying how to give them: %s",
		bop_error_last());

	s3 = open_fake("s3://bkt/p");
	if (s3) {
		is_str(s3->host, "bkt.s3.us-east-1.amazonaws.com", "AWS: virtual-hosted Host");
		is_str(s3->base_path, "", "AWS: no bucket in the path");
		is_str(s3->display, "s3://bkt/p", "display name");
		bop__error(BOP_EAUTH, "leak unit-test-secret-value here");
		ok(strstr(bop_error_last(), "unit-test-secret-value") == NULL, "the secret is redacted from messages");
		bop_storage_free(&s3->base);
	} else {
		skip(4, "cannot open");
	}
	s3 = open_fake("s3://bkt?endpoint=http://127.0.0.1:7480");
	if (s3) {
		is_str(s3->host, "127.0.0.1:7480", "endpoint: Host with the port");
		is_str(s3->base_path, "/bkt", "endpoint: path-style");
		bop_storage_free(&s3->base);
	} else {
		skip(2, "cannot open");
	}

	if (!mkdtemp(dir)) {
		skip(2, "no temporary directory");
		return;
	}
	snprintf(akf, sizeof(akf), "%s/ak", dir);
	snprintf(skf, sizeof(skf), "%s/sk", dir);
	f = fopen(akf, "w");
	fputs("AKIDFROMFILE\n", f);
	fclose(f);
	f = fopen(skf, "w");
	fputs("secret-from-file\n", f);
	fclose(f);
	files[1] = akf;
	files[3] = skf;
	opts.settings = files;
	ret = bop_storage_open(&st, "s3://bkt", &opts);
	is_int(ret, 0, "credentials from access_key_file / secret_key_file");
	if (ret == 0) {
		s3 = (s3_storage_t *)st;
		is_str(s3->cfg.access_key_id, "AKIDFROMFILE", "key id read without the newline");
		bop_storage_free(st);
	} else {
		skip(1, "not opened");
	}
	unlink(akf);
	unlink(skf);
	rmdir(dir);
}

int main(void)
{
	test_sigv4_examples();
	test_encoding();
	test_xml_list();
	test_xml_nesting();
	test_xml_uploads();
	test_errors();
	test_config();
	test_part_size();
	test_open();
	return done_testing();
}
