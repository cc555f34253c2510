/* What every libcurl client of the library sets alike (the Kubernetes client, S3). */
#ifndef BOP_UTIL_CURL_H
#define BOP_UTIL_CURL_H

#include <curl/curl.h>

/* No signals, http(s) only, our User-Agent, `connect_s` to connect, and a transfer that
 * moves no byte for `idle_s` seconds fails (not when idle_s is 0). */
void bop__curl_defaults(CURL *curl, long connect_s, long idle_s);

#endif
