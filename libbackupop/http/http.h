/* Private to the http module. */
#ifndef BOP_HTTP_PRIVATE_H
#define BOP_HTTP_PRIVATE_H

#include "internal.h"

#include <sys/socket.h>

/* Parses "host:port", "[v6]:port" or ":port" and returns a listening socket (close on
 * exec) and its actual port. */
int bop__http_listen(const char *address, int *fd, int *port);

#endif
