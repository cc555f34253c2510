/* Small allocation and file helpers that report failures through bop__error. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

/* The library's allocator is the C library's: bop_free() frees what malloc, strdup and
 * the helpers below return, and what bop_malloc() and bop_strdup() give to callbacks. */
BOP_EXTERN(void) bop_free(void *ptr)
{
	free(ptr);
}

BOP_EXTERN(void *) bop_malloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (!p)
		bop__error_oom();
	return p;
}

BOP_EXTERN(char *) bop_strdup(const char *s)
{
	return s ? bop__strdup(s) : NULL;
}

char *bop__strdup(const char *s)
{
	char *d = strdup(s ? s : "");

	if (!d)
		bop__error_oom();
	return d;
}

char *bop__strndup(const char *s, size_t n)
{
	char *d = strndup(s, n);

	if (!d)
		bop__error_oom();
	return d;
}

char *bop__sprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		bop__error_oom();
		return NULL;
	}
	return s;
}

void *bop__calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		bop__error_oom();
	return p;
}

void bop__wipe(void *p, size_t n)
{
	if (p && n)
		OPENSSL_cleanse(p, n);
}

void bop__free_wiped(char *s)
{
	if (s)
		bop__wipe(s, strlen(s));
	free(s);
}

int bop__reserve(void *pdata, size_t *cap, size_t need, size_t size, size_t first)
{
	size_t ncap = *cap ? *cap : first ? first : 1;
	void *data, *grown;

	if (need <= *cap)
		return 0;
	if (size == 0 || need > SIZE_MAX / 2 / size)
		return bop__error_oom();
	while (ncap < need)
		ncap *= 2;
	memcpy(&data, pdata, sizeof(data));
	grown = realloc(data, ncap * size);
	if (!grown)
		return bop__error_oom();
	memcpy(pdata, &grown, sizeof(grown));
	*cap = ncap;
	return 0;
}

int bop__ncpu_override;

int bop__ncpu(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (bop__ncpu_override > 0)
		return bop__ncpu_override;

	return n > 0 ? (int)n : 1;
}

void bop__hex(char *out, const unsigned char *in, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

void bop__strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

int bop__read_file(const char *path, char **out, size_t *len, size_t max)
{
	char *buf = NULL;
	size_t used = 0, cap = 0;
	int fd, ret = 0;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return bop__error_errno(BOP_EIO, errno, "cannot open %s", path);
	for (;;) {
		ssize_t r;

		if (cap - used < 4096) {
			size_t ncap = cap ? cap * 2 : 8192;
			char *nbuf = realloc(buf, ncap + 1);

			if (!nbuf) {
				ret = bop__error_oom();
				goto out;
			}
			buf = nbuf;
			cap = ncap;
		}
		r = read(fd, buf + used, cap - used);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = bop__error_errno(BOP_EIO, errno, "cannot read %s", path);
			goto out;
		}
		if (r == 0)
			break;
		used += (size_t)r;
		if (used > max) {
			ret = bop__error(BOP_EINVAL, "%s is larger than %zu bytes", path, max);
			goto out;
		}
	}
	if (!buf && !(buf = malloc(1))) {
		ret = bop__error_oom();
		goto out;
	}
	buf[used] = '\0';
	*out = buf;
	buf = NULL;
	if (len)
		*len = used;
out:
	if (buf) {
		bop__wipe(buf, cap);
		free(buf);
	}
	close(fd);
	return ret;
}

int64_t bop__now(void)
{
	return (int64_t)time(NULL);
}

int64_t bop__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
