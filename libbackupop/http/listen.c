/* The server's listening socket: bound by backupop so that errors say which address
 * failed and why, and so that port 0 is resolved before the server starts. */
#include "http.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BACKLOG 128

static int parse_port(const char *s, const char *address, int *port)
{
	char *end;
	long v;

	if (!*s || strspn(s, "0123456789") != strlen(s))
		return bop__error(BOP_EINVAL, "listen address \"%s\": the port must be a number 0-65535, e.g. \"127.0.0.1:8080\"",
			address);
	v = strtol(s, &end, 10);
	if (v > 65535)
		return bop__error(BOP_EINVAL, "listen address \"%s\": port %ld is above 65535", address, v);
	*port = (int)v;
	return 0;
}

/* Splits the address into a host (NULL: any) and a port. */
static int split(const char *address, char **host, int *port)
{
	const char *colon;
	int ret;

	*host = NULL;
	if (address[0] == '[') {
		const char *close = strchr(address, ']');

		if (!close || close[1] != ':')
			return bop__error(BOP_EINVAL, "listen address \"%s\": expected \"[IPv6]:port\"", address);
		if ((ret = parse_port(close + 2, address, port)) < 0)
			return ret;
		*host = bop__strndup(address + 1, (size_t)(close - address - 1));
		return *host ? 0 : BOP_ENOMEM;
	}
	colon = strrchr(address, ':');
	if (!colon)
		return bop__error(BOP_EINVAL, "listen address \"%s\": expected \"host:port\", \"[IPv6]:port\" or \":port\"",
			address);
	if ((ret = parse_port(colon + 1, address, port)) < 0)
		return ret;
	if (colon == address)
		return 0;
	*host = bop__strndup(address, (size_t)(colon - address));
	return *host ? 0 : BOP_ENOMEM;
}

static int bind_one(const struct sockaddr *sa, socklen_t len, int *out)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, zero = 0, err;

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, sa, len) < 0 || listen(fd, BACKLOG) < 0) {
		err = errno;
		close(fd);
		return -err;
	}
	*out = fd;
	return 0;
}

static int bind_any(int port, int *fd)
{
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
		.sin6_addr = IN6ADDR_ANY_INIT };
	struct sockaddr_in in4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_ANY) };
	int err = bind_one((struct sockaddr *)&in6, sizeof(in6), fd);

	/* Hosts without IPv6 listen on IPv4 only. */
	if (err == -EAFNOSUPPORT || err == -EADDRNOTAVAIL)
		err = bind_one((struct sockaddr *)&in4, sizeof(in4), fd);
	return err;
}

/* -errno of the last attempt; *gai is set when the host cannot be resolved. */
static int bind_host(const char *host, int port, int *fd, int *gai)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	char service[16];
	int err = -EADDRNOTAVAIL;

	snprintf(service, sizeof(service), "%d", port);
	*gai = getaddrinfo(host, service, &hints, &res);
	if (*gai != 0)
		return -EINVAL;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		err = bind_one(ai->ai_addr, ai->ai_addrlen, fd);
		if (err == 0)
			break;
	}
	freeaddrinfo(res);
	return err;
}

static int bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int bop__http_listen(const char *address, int *fd, int *port)
{
	char *host = NULL;
	int ret, err, gai = 0;

	if (!address || !*address)
		return bop__error(BOP_EINVAL, "no listen address; give one like \"127.0.0.1:8080\" or \":8080\"");
	if ((ret = split(address, &host, port)) < 0)
		return ret;
	err = host ? bind_host(host, *port, fd, &gai) : bind_any(*port, fd);
	if (gai != 0)
		ret = bop__error(BOP_EINVAL, "cannot listen on %s: %s", address, gai_strerror(gai));
	else if (err < 0)
		ret = bop__error(BOP_EIO, "cannot listen on %s: %s", address, strerror(-err));
	else
		*port = bound_port(*fd);
	free(host);
	return ret;
}
