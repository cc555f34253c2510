/* One request to a backupop-runner's API, with libcurl. See api_client.h. */
#include "api_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* ---- the generated token ---- */

static int private_dir(const char *dir, int create, char *err, size_t errlen)
{
	struct stat st;

	if (create && mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	if (lstat(dir, &st) < 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077)) {
		snprintf(err, errlen, "%s is not a directory of this user closed to others (mode "
			"0700): refusing to keep a token there", dir);
		return -1;
	}
	return 0;
}

int rapi_token_path(int port, int create, char *out, size_t outlen, char *err, size_t errlen)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char dir[1024];
	int n;

	if (xdg && xdg[0] == '/')
		n = snprintf(dir, sizeof(dir), "%s/backupop", xdg);
	else
		n = snprintf(dir, sizeof(dir), "/tmp/backupop-%lu", (unsigned long)geteuid());
	if (n < 0 || (size_t)n >= sizeof(dir) || port <= 0 || port > 65535) {
		snprintf(err, errlen, "no place for the API token (XDG_RUNTIME_DIR too long?)");
		return -1;
	}
	if (private_dir(dir, create, err, errlen) < 0)
		return -1;
	n = snprintf(out, outlen, "%s/api-token-%d", dir, port);
	if (n < 0 || (size_t)n >= outlen) {
		snprintf(err, errlen, "the path of the API token is too long");
		return -1;
	}
	return 0;
}

int rapi_url_port(const char *url)
{
	const char *p = url ? strstr(url, "://") : NULL;
	size_t len;
	long port;
	char *end;

	if (!p)
		return -1;
	p += 3;
	len = strcspn(p, "/?#");
	if (*p == '[') {
		const char *close = memchr(p, ']', len);

		if (!close)
			return -1;
		len -= (size_t)(close + 1 - p);
		p = close + 1;
	} else {
		const char *colon = memchr(p, ':', len);

		len = colon ? len - (size_t)(colon - p) : 0;
		p = colon ? colon : p + len;
	}
	if (len == 0 || *p != ':')
		return !strncmp(url, "https://", 8) ? 443 : !strncmp(url, "http://", 7) ? 80 : -1;
	errno = 0;
	port = strtol(p + 1, &end, 10);
	if (end != p + len || end == p + 1 || errno || port <= 0 || port > 65535)
		return -1;
	return (int)port;
}

/* Whether the URL's host is this host by its loopback or wildcard address: only there is
 * a runner on this host surely the one asked, so only there goes its generated token. */
static bool url_is_local(const char *url)
{
	static const char *const local[] = { "", "localhost", "[::1]", "[::]", "0.0.0.0", NULL };
	const char *p = strstr(url, "://");
	size_t len;

	if (!p)
		return false;
	p += 3;
	len = strcspn(p, "/?#");
	if (memchr(p, '@', len))
		return false;
	if (*p != '[') {
		const char *colon = memchr(p, ':', len);

		if (colon)
			len = (size_t)(colon - p);
	} else {
		len = strcspn(p, "]/?#");
		len += p[len] == ']';
	}
	for (size_t i = 0; local[i]; i++)
		if (strlen(local[i]) == len && !strncasecmp(p, local[i], len))
			return true;
	return len > 4 && !strncmp(p, "127.", 4) && strspn(p, "0123456789.") == len;
}

int rapi_generated_token(const char *url, char **token, char *err, size_t errlen)
{
	char path[1200], line[4096];
	struct stat st;
	ssize_t n;
	int fd, port = rapi_url_port(url);

	*token = NULL;
	if (port < 0 || !url_is_local(url) ||
	    rapi_token_path(port, 0, path, sizeof(path), err, errlen) < 0)
		return 1;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 077)) {
		close(fd);
		return 1;
	}
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	line[n] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	*token = line[0] ? strdup(line) : NULL;
	explicit_bzero(line, sizeof(line));
	if (!*token)
		return 1;
	return 0;
}
