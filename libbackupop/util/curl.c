/* The transport settings shared by the library's libcurl clients. */
#include "internal.h"
#include "util/curl.h"

void bop__curl_defaults(CURL *curl, long connect_s, long idle_s)
{
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "backupop/" BOP_VERSION_STRING);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, connect_s);
	if (idle_s > 0) {
		curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, idle_s);
	}
}
