/*
 * The "s3" storage backend: "s3://BUCKET[/PREFIX]?endpoint=...&region=..." on AWS and
 * S3-compatible stores (radosgw, MinIO...). This file holds the configuration, open, and
 * the small operations (stat, list, remove, cleanup); upload.c writes, download.c reads,
 * http.c performs signed requests with retries.
 */
#include "storage/s3/s3.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S3_DEFAULT_REGION "us-east-1"
#define S3_DEFAULT_CONCURRENCY 4
#define S3_DEFAULT_TIMEOUT 300
#define S3_KEY_FILE_MAX 4096

/* ---- configuration ---- */

int bop__s3_parse_size(uint64_t *out, const char *text)
{
	static const struct { const char *suffix; uint64_t mult; } units[] = {
		{ "", 1 }, { "B", 1 },
		{ "K", 1 << 10 }, { "KB", 1 << 10 }, { "KiB", 1 << 10 },
		{ "M", 1 << 20 }, { "MB", 1 << 20 }, { "MiB", 1 << 20 },
		{ "G", 1 << 30 }, { "GB", 1 << 30 }, { "GiB", 1 << 30 },
	};
	unsigned long long n;
	char *end;

	if (!text || !(*text >= '0' && *text <= '9'))
		return BOP_EINVAL;
	errno = 0;
	n = strtoull(text, &end, 10);
	if (errno)
		return BOP_EINVAL;
	while (*end == ' ')
		end++;
	for (size_t i = 0; i < BOP_ARRAY_SIZE(units); i++) {
		if (strcmp(end, units[i].suffix) == 0) {
			if (n > UINT64_MAX / units[i].mult)
				return BOP_EINVAL;
			*out = n * units[i].mult;
			return 0;
		}
	}
	return BOP_EINVAL;
}

uint64_t bop__s3_part_size_for(uint64_t part_size, int max_parts, uint64_t size_hint)
{
	uint64_t need;

	if (max_parts < 1 || size_hint == 0)
		return part_size;
	need = size_hint / (uint64_t)max_parts + (size_hint % (uint64_t)max_parts != 0);
	need = (need + S3_MIB - 1) / S3_MIB * S3_MIB;
	if (need > S3_MAX_PART_SIZE)
		need = S3_MAX_PART_SIZE;
	return need > part_size ? need : part_size;
}

void bop__s3_config_clear(s3_config_t *cfg)
{
	free(cfg->bucket);
	free(cfg->prefix);
	free(cfg->endpoint);
	free(cfg->region);
	free(cfg->ca_file);
	free(cfg->access_key_id);
	if (cfg->secret_access_key)
		bop__wipe(cfg->secret_access_key, strlen(cfg->secret_access_key));
	free(cfg->secret_access_key);
	if (cfg->session_token)
		bop__wipe(cfg->session_token, strlen(cfg->session_token));
	free(cfg->session_token);
	free(cfg->access_key_file);
	free(cfg->secret_key_file);
	memset(cfg, 0, sizeof(*cfg));
}

static int parse_bool(int *out, const char *name, const char *v)
{
	if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) {
		*out = 1;
	} else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no")) {
		*out = 0;
	} else {
		return bop__error(BOP_EINVAL, "S3 option %s=%s: expected true or false", name, v);
	}
	return 0;
}

static int parse_int(long *out, const char *name, const char *v, long min, long max)
{
	char *end;
	long n = 0;

	errno = 0;
	n = strtol(v, &end, 10);
	if (!*v || *end || errno || n < min || n > max)
		return bop__error(BOP_EINVAL, "S3 option %s=%s: expected a whole number from %ld to %ld",
			name, v, min, max);
	*out = n;
	return 0;
}

static int set_string(char **field, const char *v)
{
	char *copy = bop__strdup(v);

	if (!copy)
		return BOP_ENOMEM;
	free(*field);
	*field = copy;
	return 0;
}

static int check_endpoint(const char *v)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *path = NULL, *host = NULL;
	int ret = 0;

	if (!u)
		return bop__error_oom();
	if (curl_url_set(u, CURLUPART_URL, v, 0) != CURLUE_OK ||
			curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
			curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
			(strcmp(scheme, "http") && strcmp(scheme, "https"))) {
		ret = bop__error(BOP_EINVAL, "S3 option endpoint=%s: expected an http:// or https:// URL such as http://127.0.0.1:7480",
			v);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK && strcmp(path, "/") != 0)
		ret = bop__error(BOP_EINVAL, "S3 option endpoint=%s: the endpoint cannot have a path", v);
out:
	curl_free(scheme);
	curl_free(path);
	curl_free(host);
	curl_url_cleanup(u);
	return ret;
}

static int set_endpoint(s3_config_t *cfg, const char *v)
{
	size_t n = strlen(v);
	int ret = check_endpoint(v);

	if (ret < 0)
		return ret;
	while (n && v[n - 1] == '/')
		n--;
	free(cfg->endpoint);
	cfg->endpoint = bop__strndup(v, n);
	return cfg->endpoint ? 0 : BOP_ENOMEM;
}

static int set_part_size(s3_config_t *cfg, const char *v)
{
	uint64_t n;

	if (bop__s3_parse_size(&n, v) < 0)
		return bop__error(BOP_EINVAL, "S3 option part_size=%s: expected a size such as 16MiB, 64M or 8388608",
			v);
	if (n < S3_MIN_PART_SIZE || n > S3_MAX_PART_SIZE)
		return bop__error(BOP_EINVAL, "S3 option part_size=%s: S3 parts are 5 MiB to 5 GiB", v);
	cfg->part_size = n;
	return 0;
}

static bool is_credential(const char *name)
{
	return !strcmp(name, "access_key_id") || !strcmp(name, "secret_access_key") ||
		!strcmp(name, "session_token") || !strcmp(name, "access_key_file") ||
		!strcmp(name, "secret_key_file");
}

static int set_credential(s3_config_t *cfg, const char *name, const char *v)
{
	if (!strcmp(name, "access_key_id"))
		return set_string(&cfg->access_key_id, v);
	if (!strcmp(name, "secret_access_key"))
		return set_string(&cfg->secret_access_key, v);
	if (!strcmp(name, "session_token"))
		return set_string(&cfg->session_token, v);
	if (!strcmp(name, "access_key_file"))
		return set_string(&cfg->access_key_file, v);
	return set_string(&cfg->secret_key_file, v);
}

static int set_option(s3_config_t *cfg, const char *name, const char *v, bool in_url)
{
	long n = 0;
	int ret;

	if (is_credential(name)) {
		if (in_url)
			return bop__error(BOP_EINVAL, "S3 option %s cannot be given in the storage URL (URLs end up in logs): use the storage settings or the AWS_* environment variables",
				name);
		return set_credential(cfg, name, v);
	}
	if (!strcmp(name, "endpoint"))
		return set_endpoint(cfg, v);
	if (!strcmp(name, "region")) {
		if (!*v || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(v))
			return bop__error(BOP_EINVAL, "S3 option region=%s: expected a region name such as us-east-1", v);
		return set_string(&cfg->region, v);
	}
	if (!strcmp(name, "path_style"))
		return parse_bool(&cfg->path_style, name, v);
	if (!strcmp(name, "insecure"))
		return parse_bool(&cfg->insecure, name, v);
	if (!strcmp(name, "ca_file"))
		return set_string(&cfg->ca_file, v);
	if (!strcmp(name, "part_size"))
		return set_part_size(cfg, v);
	if (!strcmp(name, "concurrency")) {
		if ((ret = parse_int(&n, name, v, 1, S3_MAX_CONCURRENCY)) == 0)
			cfg->concurrency = (int)n;
		return ret;
	}
	if (!strcmp(name, "max_parts")) {
		if ((ret = parse_int(&n, name, v, 1, S3_MAX_PARTS)) == 0)
			cfg->max_parts = (int)n;
		return ret;
	}
	if (!strcmp(name, "timeout"))
		return parse_int(&cfg->timeout, name, v, 1, 86400);
	return bop__error(BOP_EINVAL, "unknown S3 option \"%s\" (known: endpoint, region, path_style, insecure, ca_file, part_size, concurrency, max_parts, timeout%s)",
		name, in_url ? "" : ", access_key_id, secret_access_key, session_token, access_key_file, secret_key_file");
}

static int parse_query(s3_config_t *cfg, const char *query)
{
	char *copy = bop__strdup(query), *save = NULL, *item, *eq, *value;
	int ret = 0;

	if (!copy)
		return BOP_ENOMEM;
	for (item = strtok_r(copy, "&", &save); item && ret == 0; item = strtok_r(NULL, "&", &save)) {
		eq = strchr(item, '=');
		if (!eq) {
			ret = bop__error(BOP_EINVAL, "S3 option \"%s\" in the URL has no value (write %s=VALUE)",
				item, item);
			break;
		}
		*eq = '\0';
		value = curl_easy_unescape(NULL, eq + 1, 0, NULL);
		if (!value) {
			ret = bop__error_oom();
			break;
		}
		ret = set_option(cfg, item, value, true);
		curl_free(value);
	}
	free(copy);
	return ret;
}

static bool bucket_name_valid(const char *b, size_t n)
{
	if (n == 0 || n > 255)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = b[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
				c == '.' || c == '-' || c == '_'))
			return false;
	}
	return true;
}

/* "PREFIX" of the URL → "" or "a/b/"; no empty, "." or ".." segments. */
static int set_prefix(s3_config_t *cfg, const char *url, const char *p, size_t n)
{
	while (n && p[n - 1] == '/')
		n--;
	for (size_t i = 0, seg = 0; n && i <= n; i++) {
		if (i == n || p[i] == '/') {
			size_t len = i - seg;

			if (len == 0 || (len == 1 && p[seg] == '.') ||
					(len == 2 && p[seg] == '.' && p[seg + 1] == '.'))
				return bop__error(BOP_EINVAL, "storage URL %s: the prefix cannot have empty, \".\" or \"..\" segments",
					url);
			seg = i + 1;
		}
	}
	cfg->prefix = n ? bop__sprintf("%.*s/", (int)n, p) : bop__strdup("");
	return cfg->prefix ? 0 : BOP_ENOMEM;
}

static int parse_location(s3_config_t *cfg, const char *url, const char *rest, size_t n)
{
	const char *slash = memchr(rest, '/', n);
	size_t blen = slash ? (size_t)(slash - rest) : n;

	if (!bucket_name_valid(rest, blen))
		return bop__error(BOP_EINVAL, "storage URL %s: expected s3://BUCKET[/PREFIX] with a bucket name of letters, digits, '.', '-' or '_'",
			url);
	cfg->bucket = bop__strndup(rest, blen);
	if (!cfg->bucket)
		return BOP_ENOMEM;
	if (!slash)
		return set_prefix(cfg, url, "", 0);
	return set_prefix(cfg, url, slash + 1, n - blen - 1);
}

static int apply_defaults(s3_config_t *cfg, bool endpoint_given)
{
	if (!cfg->region && !(cfg->region = bop__strdup(S3_DEFAULT_REGION)))
		return BOP_ENOMEM;
	if (!cfg->endpoint) {
		cfg->endpoint = bop__sprintf("https://s3.%s.amazonaws.com", cfg->region);
		if (!cfg->endpoint)
			return BOP_ENOMEM;
	}
	if (cfg->path_style < 0)
		cfg->path_style = endpoint_given ? 1 : 0;
	/* Virtual-hosted names cannot hold dots over TLS (the certificate is *.s3...) nor
	 * uppercase or '_' at all. */
	if (!cfg->path_style && strpbrk(cfg->bucket, "._ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
		cfg->path_style = 1;
	return 0;
}

int bop__s3_config_parse(s3_config_t *cfg, const char *url, const char *const *settings)
{
	const char *rest, *q;
	int ret;

	memset(cfg, 0, sizeof(*cfg));
	cfg->path_style = -1;
	cfg->part_size = S3_DEFAULT_PART_SIZE;
	cfg->concurrency = S3_DEFAULT_CONCURRENCY;
	cfg->max_parts = S3_MAX_PARTS;
	cfg->timeout = S3_DEFAULT_TIMEOUT;
	if (strncmp(url, "s3://", 5) != 0) {
		ret = bop__error(BOP_EINVAL, "storage URL %s: expected s3://BUCKET[/PREFIX]", url);
		goto fail;
	}
	rest = url + 5;
	q = strchr(rest, '?');
	if ((ret = parse_location(cfg, url, rest, q ? (size_t)(q - rest) : strlen(rest))) < 0)
		goto fail;
	if (q && (ret = parse_query(cfg, q + 1)) < 0)
		goto fail;
	for (size_t i = 0; settings && settings[i]; i += 2) {
		if (!settings[i + 1]) {
			ret = bop__error(BOP_EINVAL, "S3 setting \"%s\" has no value", settings[i]);
			goto fail;
		}
		if ((ret = set_option(cfg, settings[i], settings[i + 1], false)) < 0)
			goto fail;
	}
	if ((ret = apply_defaults(cfg, cfg->endpoint != NULL)) < 0)
		goto fail;
	return 0;
fail:
	bop__s3_config_clear(cfg);
	return ret;
}

/* ---- credentials ---- */

static int read_key_file(char **out, const char *path, const char *what)
{
	size_t len = 0;
	char *text = NULL;
	int ret;

	ret = bop__read_file(path, &text, &len, S3_KEY_FILE_MAX);
	if (ret < 0)
		return bop__error_wrap("cannot read the S3 %s file", what);
	while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
		text[--len] = '\0';
	if (!len) {
		free(text);
		return bop__error(BOP_EINVAL, "the S3 %s file %s is empty", what, path);
	}
	*out = text;
	return 0;
}

static int env_string(char **out, const char *name)
{
	const char *v = getenv(name);

	if (!v || !*v)
		return 0;
	*out = bop__strdup(v);
	return *out ? 0 : BOP_ENOMEM;
}

static int resolve_credentials(s3_config_t *cfg)
{
	bool from_env = false;
	int ret = 0;

	if (!cfg->access_key_id && cfg->access_key_file)
		ret = read_key_file(&cfg->access_key_id, cfg->access_key_file, "access key");
	if (ret == 0 && !cfg->secret_access_key && cfg->secret_key_file)
		ret = read_key_file(&cfg->secret_access_key, cfg->secret_key_file, "secret key");
	if (ret == 0 && !cfg->access_key_id && !cfg->secret_access_key) {
		from_env = true;
		if ((ret = env_string(&cfg->access_key_id, "AWS_ACCESS_KEY_ID")) == 0)
			ret = env_string(&cfg->secret_access_key, "AWS_SECRET_ACCESS_KEY");
	}
	if (ret == 0 && from_env && !cfg->session_token)
		ret = env_string(&cfg->session_token, "AWS_SESSION_TOKEN");
	if (ret < 0)
		return ret;
	if (!cfg->access_key_id || !cfg->secret_access_key)
		return bop__error(BOP_EAUTH, "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the access_key_id and secret_access_key (or access_key_file and secret_key_file) settings");
	if ((ret = bop_log_add_secret(cfg->secret_access_key)) < 0)
		return ret;
	if (cfg->session_token && (ret = bop_log_add_secret(cfg->session_token)) < 0)
		return ret;
	return 0;
}

/* ---- open ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void init_curl(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *payload)
{
	s3_storage_t *s3 = payload;

	BOP_UNUSED(h);
	BOP_UNUSED(access);
	pthread_mutex_lock(&s3->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *payload)
{
	s3_storage_t *s3 = payload;

	BOP_UNUSED(h);
	pthread_mutex_unlock(&s3->share_locks[data]);
}

static int make_share(s3_storage_t *s3)
{
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&s3->share_locks[i], NULL);
	s3->share = curl_share_init();
	if (!s3->share)
		return bop__error_oom();
	curl_share_setopt(s3->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(s3->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(s3->share, CURLSHOPT_USERDATA, s3);
	curl_share_setopt(s3->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(s3->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	curl_share_setopt(s3->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	return 0;
}

/* Host header, base URL and base path from the endpoint and addressing style. */
static int make_addresses(s3_storage_t *s3)
{
	const s3_config_t *cfg = &s3->cfg;
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	int ret = 0;

	if (!u)
		return bop__error_oom();
	if (curl_url_set(u, CURLUPART_URL, cfg->endpoint, 0) != CURLUE_OK ||
			curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
			curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		ret = bop__error(BOP_EINVAL, "S3 endpoint %s is not a valid URL", cfg->endpoint);
		goto out;
	}
	curl_url_get(u, CURLUPART_PORT, &port, 0);    /* only when given */
	s3->host = bop__sprintf("%s%s%s%s%s", cfg->path_style ? "" : cfg->bucket,
		cfg->path_style ? "" : ".", host, port ? ":" : "", port ? port : "");
	s3->base_url = s3->host ? bop__sprintf("%s://%s", scheme, s3->host) : NULL;
	s3->base_path = cfg->path_style ? bop__sprintf("/%s", cfg->bucket) : bop__strdup("");
	s3->display = bop__sprintf("s3://%s%s%.*s", cfg->bucket, *cfg->prefix ? "/" : "",
		*cfg->prefix ? (int)strlen(cfg->prefix) - 1 : 0, cfg->prefix);
	if (!s3->host || !s3->base_url || !s3->base_path || !s3->display)
		ret = BOP_ENOMEM;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return ret;
}

char *bop__s3_full_key(const s3_storage_t *s3, const char *key)
{
	return bop__sprintf("%s%s", s3->cfg.prefix, key);
}

static void s3_free(bop_storage_t *base)
{
	s3_storage_t *s3 = (s3_storage_t *)base;

	if (!s3)
		return;
	if (s3->share) {
		curl_share_cleanup(s3->share);
		for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
			pthread_mutex_destroy(&s3->share_locks[i]);
	}
	bop__s3_config_clear(&s3->cfg);
	free(s3->display);
	free(s3->host);
	free(s3->base_url);
	free(s3->base_path);
	free(s3);
}

/* ---- stat / list / remove ---- */

static int head_object(s3_storage_t *s3, const char *key, s3_request_t *req, char **what)
{
	char *full = bop__s3_full_key(s3, key);
	int ret;

	*what = full ? bop__sprintf("cannot stat s3://%s/%s", s3->cfg.bucket, full) : NULL;
	if (!full || !*what) {
		free(full);
		return BOP_ENOMEM;
	}
	memset(req, 0, sizeof(*req));
	req->method = "HEAD";
	req->key = full;
	req->what = *what;
	ret = bop__s3_perform(s3, req);
	req->key = NULL;
	free(full);
	return ret;
}

static int s3_stat(bop_storage_t *base, bop_storage_stat_t *st, const char *key)
{
	s3_storage_t *s3 = (s3_storage_t *)base;
	s3_request_t req;
	char *what = NULL;
	int ret;

	ret = head_object(s3, key, &req, &what);
	if (ret == 0) {
		st->size = req.content_length;
		st->mtime = req.last_modified;
	}
	bop__s3_request_clear(&req);
	free(what);
	return ret;
}

typedef struct list_ctx {
	s3_storage_t *s3;
	bop_storage_list_cb cb;
	void *payload;
	bool stopped;
} list_ctx_t;

static int list_one(const char *key, uint64_t size, int64_t mtime, void *payload)
{
	list_ctx_t *ctx = payload;
	size_t plen = strlen(ctx->s3->cfg.prefix);
	bop_storage_stat_t st = { BOP_STORAGE_STAT_VERSION, size, mtime < 0 ? 0 : mtime };
	int ret;

	if (strncmp(key, ctx->s3->cfg.prefix, plen) != 0 || !key[plen])
		return 0;
	ret = ctx->cb(key + plen, &st, ctx->payload);
	if (ret > 0) {
		ctx->stopped = true;
		return 1;
	}
	if (ret < 0 && bop_error_last_code() == BOP_OK)
		bop__error(ret, "the list callback failed at %s (%s)", key + plen, bop_strerror(ret));
	return ret;
}

static int list_page(s3_storage_t *s3, const char *full_prefix, const char *token,
	s3_list_page_t *page, list_ctx_t *ctx, const char *what)
{
	s3_param_t q[4] = {
		{ "list-type", "2" }, { "encoding-type", "url" }, { "prefix", full_prefix },
		{ "continuation-token", token },
	};
	s3_request_t req = { 0 };
	int ret;

	req.method = "GET";
	req.query = q;
	req.nquery = token ? 4 : 3;
	req.what = what;
	ret = bop__s3_perform(s3, &req);
	if (ret == 0) {
		ret = bop__s3_xml_list_objects(req.response.data, req.response.len, S3_XML_MAX, page,
			list_one, ctx);
		if (ret == BOP_EFORMAT)
			bop__error_wrap("%s", what);
	}
	bop__s3_request_clear(&req);
	return ret;
}

static int s3_list(bop_storage_t *base, const char *prefix, bop_storage_list_cb cb,
	void *payload)
{
	s3_storage_t *s3 = (s3_storage_t *)base;
	list_ctx_t ctx = { s3, cb, payload, false };
	s3_list_page_t page = { 0 };
	char *full = bop__s3_full_key(s3, prefix), *token = NULL, *what = NULL;
	int ret = 0;

	what = bop__sprintf("cannot list %s%s%s", s3->display, *prefix ? " under " : "", prefix);
	if (!full || !what) {
		ret = BOP_ENOMEM;
		goto out;
	}
	do {
		ret = list_page(s3, full, token, &page, &ctx, what);
		free(token);
		token = page.next_token;
		page.next_token = NULL;
		if (ret != 0 || ctx.stopped || !page.truncated)
			break;
		bop__s3_list_page_clear(&page);
	} while (token);
out:
	bop__s3_list_page_clear(&page);
	free(token);
	free(full);
	free(what);
	return ret > 0 ? 0 : ret;
}

/* DeleteObjects takes at most 1000 keys a request. */
static int s3_remove_many(bop_storage_t *base, const char *const *keys, size_t n)
{
	s3_storage_t *s3 = (s3_storage_t *)base;
	int ret, first = 0;

	for (size_t i = 0; i < n; i += 1000) {
		ret = bop__s3_delete_objects(s3, keys + i, n - i < 1000 ? n - i : 1000);
		if (ret < 0 && first == 0)
			first = ret;
	}
	return first;
}

static int s3_remove(bop_storage_t *base, const char *key)
{
	s3_storage_t *s3 = (s3_storage_t *)base;
	s3_request_t req;
	char *what = NULL, *full = NULL;
	int ret;

	/* S3 answers 204 for a missing key too; the contract wants BOP_ENOTFOUND. */
	ret = head_object(s3, key, &req, &what);
	bop__s3_request_clear(&req);
	free(what);
	if (ret < 0) {
		if (ret != BOP_ENOTFOUND)
			bop__error_wrap("cannot remove %s from %s", key, s3->display);
		return ret;
	}
	full = bop__s3_full_key(s3, key);
	what = full ? bop__sprintf("cannot remove s3://%s/%s", s3->cfg.bucket, full) : NULL;
	if (!what) {
		free(full);
		return BOP_ENOMEM;
	}
	memset(&req, 0, sizeof(req));
	req.method = "DELETE";
	req.key = full;
	req.what = what;
	ret = bop__s3_perform(s3, &req);
	bop__s3_request_clear(&req);
	free(full);
	free(what);
	return ret;
}

/* ---- cleanup: stale multipart uploads ---- */

typedef struct cleanup_ctx {
	s3_storage_t *s3;
	int64_t cutoff;
	int dry_run;
	bop_storage_list_cb cb;
	void *payload;
	bool stopped;
} cleanup_ctx_t;

static int cleanup_one(const char *key, const char *upload_id, int64_t initiated, void *payload)
{
	cleanup_ctx_t *ctx = payload;
	size_t plen = strlen(ctx->s3->cfg.prefix);
	bop_storage_stat_t st = { BOP_STORAGE_STAT_VERSION, 0, initiated < 0 ? 0 : initiated };
	int ret = 0;

	if (strncmp(key, ctx->s3->cfg.prefix, plen) != 0 || initiated < 0 || initiated > ctx->cutoff)
		return 0;
	if (ctx->cb) {
		ret = ctx->cb(key + plen, &st, ctx->payload);
		if (ret > 0) {
			ctx->stopped = true;
			return 1;
		}
		if (ret < 0)
			return ret;
	}
	if (!ctx->dry_run) {
		ret = bop__s3_abort_upload(ctx->s3, key, upload_id);
		if (ret == BOP_ENOTFOUND || ret == BOP_ECONFLICT)  /* finished or aborted meanwhile */
			ret = 0;
		else if (ret == 0)
			bop__log(BOP_LOG_INFO, "s3", "aborted the multipart upload of %s started at %lld",
				key, (long long)initiated);
	}
	return ret;
}

static int uploads_page(s3_storage_t *s3, const char *full_prefix, s3_list_page_t *prev,
	s3_list_page_t *page, cleanup_ctx_t *ctx, const char *what)
{
	s3_param_t q[5] = {
		{ "uploads", "" }, { "encoding-type", "url" }, { "prefix", full_prefix },
		{ "key-marker", prev->next_key_marker },
		{ "upload-id-marker", prev->next_upload_id_marker ? prev->next_upload_id_marker : "" },
	};
	s3_request_t req = { 0 };
	int ret;

	req.method = "GET";
	req.query = q;
	req.nquery = prev->next_key_marker ? 5 : 3;
	req.what = what;
	ret = bop__s3_perform(s3, &req);
	if (ret == 0)
		ret = bop__s3_xml_list_uploads(req.response.data, req.response.len, S3_XML_MAX, page,
			cleanup_one, ctx);
	bop__s3_request_clear(&req);
	return ret;
}

static int s3_cleanup(bop_storage_t *base, const char *prefix, int64_t older_than, int dry_run,
	bop_storage_list_cb cb, void *payload)
{
	s3_storage_t *s3 = (s3_storage_t *)base;
	cleanup_ctx_t ctx = { s3, bop__now() - older_than, dry_run, cb, payload, false };
	s3_list_page_t prev = { 0 }, page = { 0 };
	char *full = bop__s3_full_key(s3, prefix), *what;
	int ret;

	what = bop__sprintf("cannot list the multipart uploads of %s%s%s", s3->display,
		*prefix ? " under " : "", prefix);
	if (!full || !what) {
		ret = BOP_ENOMEM;
		goto out;
	}
	for (;;) {
		ret = uploads_page(s3, full, &prev, &page, &ctx, what);
		bop__s3_list_page_clear(&prev);
		prev = page;
		memset(&page, 0, sizeof(page));
		if (ret != 0 || ctx.stopped || !prev.truncated)
			break;
	}
out:
	bop__s3_list_page_clear(&prev);
	free(full);
	free(what);
	return ret > 0 ? 0 : ret;
}

/* ---- DeleteObjects ---- */

static char *xml_escape(const char *s)
{
	size_t n = 1;
	char *out, *p;

	for (const char *c = s; *c; c++)
		n += *c == '&' ? 5 : *c == '<' || *c == '>' ? 4 : *c == '"' || *c == '\'' ? 6 : 1;
	out = p = malloc(n);
	if (!out) {
		bop__error_oom();
		return NULL;
	}
	for (const char *c = s; *c; c++) {
		switch (*c) {
		case '&': p = stpcpy(p, "&amp;"); break;
		case '<': p = stpcpy(p, "&lt;"); break;
		case '>': p = stpcpy(p, "&gt;"); break;
		case '"': p = stpcpy(p, "&quot;"); break;
		case '\'': p = stpcpy(p, "&apos;"); break;
		default: *p++ = *c; break;
		}
	}
	*p = '\0';
	return out;
}

/* Built in one growing buffer: appending to a copy per key would be quadratic in a batch
 * of 1000 keys. */
static char *delete_body(s3_storage_t *s3, const char *const *keys, size_t n)
{
	char *body = NULL, *full, *esc;
	size_t size = 0;
	bool ok = true;
	FILE *f = open_memstream(&body, &size);

	if (!f) {
		bop__error_oom();
		return NULL;
	}
	fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete><Quiet>true</Quiet>", f);
	for (size_t i = 0; i < n && ok; i++) {
		full = bop__s3_full_key(s3, keys[i]);
		esc = full ? xml_escape(full) : NULL;
		ok = esc && fprintf(f, "<Object><Key>%s</Key></Object>", esc) > 0;
		free(full);
		free(esc);
	}
	fputs("</Delete>", f);
	if (fclose(f) != 0 || !ok) {
		free(body);
		bop__error_oom();       /* every step above fails only for want of memory */
		return NULL;
	}
	return body;
}

static int delete_result(s3_storage_t *s3, const char *data, size_t len)
{
	s3_xml_node_t *root = NULL;
	size_t failed = 0;
	const char *first = NULL, *code = NULL;
	int ret;

	if ((ret = bop__s3_xml_parse(&root, data, len, S3_XML_MAX)) < 0)
		return ret;
	for (s3_xml_node_t *c = root->child; c; c = c->next) {
		if (strcmp(c->name, "Error") == 0) {
			if (!failed++) {
				first = bop__s3_xml_text(c, "Key");
				code = bop__s3_xml_text(c, "Code");
			}
		}
	}
	if (failed)
		ret = bop__error(BOP_EIO, "S3 could not delete %zu object%s from %s, e.g. %s (%s)",
			failed, failed == 1 ? "" : "s", s3->display, first ? first : "?",
			code ? code : "no code");
	bop__s3_xml_free(root);
	return ret;
}

int bop__s3_delete_objects(s3_storage_t *s3, const char *const *keys, size_t n)
{
	s3_param_t q[1] = { { "delete", "" } };
	unsigned char md5[EVP_MAX_MD_SIZE];
	unsigned int md5_len = 0;
	char md5_b64[32];
	s3_header_t h[1] = { { "content-md5", md5_b64 } };
	s3_request_t req = { 0 };
	char *body, *what;
	int ret;

	if (n == 0)
		return 0;
	if (n > 1000)
		return bop__error(BOP_EINVAL, "S3 deletes at most 1000 objects per request (%zu given)", n);
	body = delete_body(s3, keys, n);
	what = bop__sprintf("cannot delete %zu object%s from %s", n, n == 1 ? "" : "s", s3->display);
	if (!body || !what) {
		ret = BOP_ENOMEM;
		goto out;
	}
	/* S3 requires Content-MD5 on DeleteObjects. */
	if (!EVP_Digest(body, strlen(body), md5, &md5_len, EVP_md5(), NULL)) {
		ret = bop__error(BOP_ERROR, "MD5 failed (OpenSSL)");
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)md5_b64, md5, (int)md5_len);
	req.method = "POST";
	req.query = q;
	req.nquery = 1;
	req.headers = h;
	req.nheaders = 1;
	req.body = body;
	req.body_len = strlen(body);
	req.what = what;
	ret = bop__s3_perform(s3, &req);
	if (ret == 0)
		ret = delete_result(s3, req.response.data, req.response.len);
out:
	bop__s3_request_clear(&req);
	free(body);
	free(what);
	return ret;
}

int bop__storage_s3_open(bop_storage_t **out, const char *url,
	const bop_storage_options_t *opts, void *payload)
{
	s3_storage_t *s3;
	int ret;

	BOP_UNUSED(payload);
	pthread_once(&curl_once, init_curl);
	if (curl_init_result != CURLE_OK)
		return bop__error(BOP_ERROR, "cannot initialize libcurl: %s",
			curl_easy_strerror(curl_init_result));
	s3 = bop__calloc(1, sizeof(*s3));
	if (!s3)
		return BOP_ENOMEM;
	s3->max_tries = 6;
	s3->retry_base_ms = 200;
	s3->retry_max_ms = 120000;
	ret = bop__s3_config_parse(&s3->cfg, url, opts ? opts->settings : NULL);
	if (ret == 0)
		ret = resolve_credentials(&s3->cfg);
	if (ret == 0)
		ret = make_addresses(s3);
	if (ret == 0)
		ret = make_share(s3);
	if (ret < 0) {
		s3_free(&s3->base);
		return ret;
	}
	s3->base = (bop_storage_t)BOP_STORAGE_INIT(.put = bop__s3_put, .get = bop__s3_get,
		.stat = s3_stat, .list = s3_list, .remove = s3_remove, .free = s3_free,
		.cleanup = s3_cleanup, .remove_many = s3_remove_many);
	*out = &s3->base;
	return 0;
}
