/* Private to the http module. */
#ifndef BOP_HTTP_PRIVATE_H
#define BOP_HTTP_PRIVATE_H

#include "internal.h"

#include <sys/socket.h>

/* Parses "host:port", "[v6]:port" or ":port" and returns a listening socket (close on
 * exec) and its actual port. */
int bop__http_listen(const char *address, int *fd, int *port);

/* Runs one request through the server without a connection: routing, authentication
 * (`authorization` is the Authorization header, NULL for none), the body limit and the
 * handler, as a connection would. `target` is the request target, "/path?query", still
 * percent-encoded. *status is the response's status. For tests and the fuzz target; the server need not be started. */
int bop__http_server_dispatch(bop_http_server_t *s, const char *method, const char *target,
	const char *authorization, const void *body, size_t len, unsigned int *status);

#endif
