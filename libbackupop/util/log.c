/*
 * The logger: text lines on a terminal, JSON lines otherwise, with every registered
 * secret redacted from every line and every error message.
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#define REDACTED "[REDACTED]"
#define LOG_LINE_MAX 8192

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static bop_log_level_t log_level = BOP_LOG_INFO;
static bop_log_format_t log_format = BOP_LOG_FORMAT_AUTO;
static int log_fd = 2;
static bop_log_cb log_cb;
static void *log_cb_payload;
static char **secrets;
static size_t nsecrets;

static const char *const level_names[] = { "trace", "debug", "info", "warn", "error", "off" };

BOP_EXTERN(void) bop_log_set_level(bop_log_level_t level)
{
	if (level <= BOP_LOG_OFF)
		log_level = level;
}

BOP_EXTERN(int) bop_log_level_parse(bop_log_level_t *out, const char *name)
{
	for (size_t i = 0; i < BOP_ARRAY_SIZE(level_names); i++) {
		if (name && strcmp(name, level_names[i]) == 0) {
			*out = (bop_log_level_t)i;
			return 0;
		}
	}
	if (name && strcmp(name, "warning") == 0) {
		*out = BOP_LOG_WARN;
		return 0;
	}
	return bop__error(BOP_EINVAL, "unknown log level '%s' (use trace, debug, info, warn, error or off)",
		name ? name : "");
}

BOP_EXTERN(void) bop_log_set_format(bop_log_format_t format)
{
	log_format = format;
}

BOP_EXTERN(void) bop_log_set_fd(int fd)
{
	log_fd = fd;
}

BOP_EXTERN(void) bop_log_set_callback(bop_log_cb cb, void *payload)
{
	pthread_mutex_lock(&log_lock);
	log_cb = cb;
	log_cb_payload = payload;
	pthread_mutex_unlock(&log_lock);
}

/* Adds `len` bytes of `secret` unless known; the caller holds log_lock. */
static int add_secret_locked(const char *secret, size_t len)
{
	char **grown;
	char *copy;

	for (size_t i = 0; i < nsecrets; i++) {
		if (strlen(secrets[i]) == len && memcmp(secrets[i], secret, len) == 0)
			return 0;
	}
	copy = strndup(secret, len);
	grown = copy ? realloc(secrets, (nsecrets + 1) * sizeof(*secrets)) : NULL;
	if (!grown) {
		free(copy);
		return BOP_ENOMEM;
	}
	secrets = grown;
	secrets[nsecrets++] = copy;
	return 0;
}

/*
 * A secret of several lines is also registered line by line (each line of at least
 * SECRET_LINE_MIN bytes, without its "\r"): a child's stderr is logged one line at a
 * time, and a line never holds the whole secret.
 */
#define SECRET_LINE_MIN 4

BOP_EXTERN(int) bop_log_add_secret(const char *secret)
{
	int ret;

	if (!secret || strlen(secret) < 4)
		return bop__error(BOP_EINVAL, "a secret to redact must be at least 4 bytes long");
	pthread_mutex_lock(&log_lock);
	ret = add_secret_locked(secret, strlen(secret));
	if (ret == 0 && strpbrk(secret, "\r\n")) {
		const char *line = secret;

		while (ret == 0 && *line) {
			size_t len = strcspn(line, "\r\n");

			if (len >= SECRET_LINE_MIN && len != strspn(line, " \t"))
				ret = add_secret_locked(line, len);
			line += len;
			line += strspn(line, "\r\n");
		}
	}
	pthread_mutex_unlock(&log_lock);
	return ret == BOP_ENOMEM ? bop__error_oom() : ret;
}

void bop__log_clear_secrets(void)
{
	pthread_mutex_lock(&log_lock);
	for (size_t i = 0; i < nsecrets; i++)
		free(secrets[i]);
	free(secrets);
	secrets = NULL;
	nsecrets = 0;
	pthread_mutex_unlock(&log_lock);
}

size_t bop__secret_partial_tail(const char *text, size_t len)
{
	size_t longest = 0;

	pthread_mutex_lock(&log_lock);
	for (size_t i = 0; i < nsecrets; i++) {
		size_t slen = strlen(secrets[i]);

		/* the longest end of `text` that is the start of this secret, shorter than it */
		for (size_t n = slen - 1 < len ? slen - 1 : len; n > longest; n--) {
			if (memcmp(text + len - n, secrets[i], n) == 0) {
				longest = n;
				break;
			}
		}
	}
	pthread_mutex_unlock(&log_lock);
	return longest;
}

/* Replaces every occurrence of every secret; the caller holds log_lock. */
static char *redact_locked(const char *text)
{
	char *out = strdup(text);

	for (size_t i = 0; out && i < nsecrets; i++) {
		const char *secret = secrets[i];
		size_t slen = strlen(secret), rlen = strlen(REDACTED);
		char *hit;

		while (out && (hit = strstr(out, secret))) {
			size_t head = (size_t)(hit - out), tail = strlen(hit + slen);
			char *next = malloc(head + rlen + tail + 1);

			if (next) {
				memcpy(next, out, head);
				memcpy(next + head, REDACTED, rlen);
				memcpy(next + head + rlen, hit + slen, tail + 1);
			}
			free(out);
			out = next;
		}
	}
	return out;
}

char *bop__redact(const char *text)
{
	char *out;

	pthread_mutex_lock(&log_lock);
	out = redact_locked(text ? text : "");
	pthread_mutex_unlock(&log_lock);
	return out;
}

bool bop__log_enabled(bop_log_level_t level)
{
	return level >= log_level && level < BOP_LOG_OFF;
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		buf += w;
		len -= (size_t)w;
	}
}

static void emit_json(bop_log_level_t level, const char *component, const char *msg)
{
	struct timespec ts;
	struct tm tm;
	char stamp[64];
	json_object *obj = json_object_new_object();
	const char *line;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	if (!obj)
		return;
	json_object_object_add(obj, "ts", json_object_new_string(stamp));
	json_object_object_add(obj, "level", json_object_new_string(level_names[level]));
	json_object_object_add(obj, "component", json_object_new_string(component));
	json_object_object_add(obj, "msg", json_object_new_string(msg));
	line = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	write_all(log_fd, line, strlen(line));
	write_all(log_fd, "\n", 1);
	json_object_put(obj);
}

/* `msg` with control characters as \xNN, so that no log line (a child's stderr, a name
 * a user gave) can move the cursor or reprogram the terminal, and a record is one line. */
static void escape_controls(char *out, size_t cap, const char *msg)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)msg; *p && n + 5 < cap; p++) {
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			n += (size_t)snprintf(out + n, cap - n, "\\x%02x", *p);
		else
			out[n++] = (char)*p;
	}
	out[n] = '\0';
}

static void emit_text(bop_log_level_t level, const char *component, const char *msg)
{
	char line[LOG_LINE_MAX], safe[LOG_LINE_MAX];
	int n;

	escape_controls(safe, sizeof(safe), msg);
	n = snprintf(line, sizeof(line), "backupop: %s: %s: %s\n", level_names[level], component, safe);
	if (n > 0)
		write_all(log_fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void emit(bop_log_level_t level, const char *component, const char *raw)
{
	char *msg;
	bop_log_format_t format = log_format;

	pthread_mutex_lock(&log_lock);
	msg = redact_locked(raw);
	if (!msg)
		goto out;
	if (log_cb) {
		log_cb(level, component, msg, log_cb_payload);
		goto out;
	}
	if (format == BOP_LOG_FORMAT_AUTO)
		format = isatty(log_fd) ? BOP_LOG_FORMAT_TEXT : BOP_LOG_FORMAT_JSON;
	if (format == BOP_LOG_FORMAT_JSON)
		emit_json(level, component, msg);
	else
		emit_text(level, component, msg);
out:
	pthread_mutex_unlock(&log_lock);
	free(msg);
}

void bop__logv(bop_log_level_t level, const char *component, const char *fmt, va_list ap)
{
	char buf[LOG_LINE_MAX];

	if (!bop__log_enabled(level))
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	emit(level, component ? component : "backupop", buf);
}

void bop__log(bop_log_level_t level, const char *component, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	bop__logv(level, component, fmt, ap);
	va_end(ap);
}

BOP_EXTERN(void) bop_log(bop_log_level_t level, const char *component, const char *message)
{
	if (level >= BOP_LOG_OFF || !bop__log_enabled(level))
		return;
	emit(level, component ? component : "app", message ? message : "");
}
