/*
 * Where backupop runs/status find the token a runner generated (issue 9 finding 2): the
 * port of the URL, the private directory, and never for a URL of another host.
 */
#include "tap.h"

#include "api_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/bop-api-client-XXXXXX";

static int token_for(const char *url)
{
	char *token = NULL, err[512];
	int ret = rapi_generated_token(url, &token, err, sizeof(err));

	if (ret == 0 && strcmp(token, "generated-token-0123456789"))
		ret = 2;
	free(token);
	return ret;
}

int main(void)
{
	char path[1200], err[512], sub[1100];
	FILE *fp;

	is_int(rapi_url_port("http://127.0.0.1:7631"), 7631, "the port of a URL");
	is_int(rapi_url_port("http://[::1]:8080/v1/runs"), 8080, "... of an IPv6 URL with a path");
	is_int(rapi_url_port("http://host"), 80, "... 80 by default");
	is_int(rapi_url_port("https://host/x"), 443, "... 443 for https");
	is_int(rapi_url_port("http://host:99999"), -1, "... none when out of range");
	is_int(rapi_url_port("http://host:12ab"), -1, "... none when not a number");

	if (!mkdtemp(dir))
		return done_testing();
	setenv("XDG_RUNTIME_DIR", dir, 1);
	is_int(rapi_token_path(4242, 0, path, sizeof(path), err, sizeof(err)), -1,
		"no directory yet: no path without create");
	is_int(rapi_token_path(4242, 1, path, sizeof(path), err, sizeof(err)), 0,
		"with create the directory is made");
	snprintf(sub, sizeof(sub), "%s/backupop", dir);
	{
		struct stat st;

		ok(stat(sub, &st) == 0 && (st.st_mode & 0777) == 0700, "... mode 0700");
	}
	ok(!strcmp(path + strlen(sub), "/api-token-4242"), "the file is DIR/api-token-PORT");
	fp = fopen(path, "w");
	fputs("generated-token-0123456789\n", fp);
	fclose(fp);
	chmod(path, 0600);
	is_int(token_for("http://127.0.0.1:4242"), 0, "finding 2: the token is found for 127.0.0.1");
	is_int(token_for("http://localhost:4242/v1/runs"), 0, "finding 2: ... for localhost");
	is_int(token_for("http://[::1]:4242"), 0, "finding 2: ... for [::1]");
	is_int(token_for("http://0.0.0.0:4242"), 0, "finding 2: ... for 0.0.0.0");
	is_int(token_for("http://:4242"), 0, "finding 2: ... for an empty host (listen \":PORT\")");
	is_int(token_for("http://127.0.0.1:4243"), 1, "finding 2: not for another port");
	is_int(token_for("http://runner.example.com:4242"), 1,
		"finding 2: never sent to another host on the same port");
	is_int(token_for("http://127.0.0.1.example.com:4242"), 1,
		"finding 2: ... nor to a name that only starts like a loopback address");
	is_int(token_for("http://x@127.0.0.1:4242"), 1, "finding 2: ... nor to a URL with user info");
	chmod(path, 0644);
	is_int(token_for("http://127.0.0.1:4242"), 1, "finding 2: a file others can read is not used");
	chmod(path, 0600);
	chmod(sub, 0755);
	is_int(token_for("http://127.0.0.1:4242"), 1,
		"finding 2: ... nor one in a directory others can enter");
	is_int(rapi_token_path(4242, 1, path, sizeof(path), err, sizeof(err)), -1,
		"finding 2: the runner refuses to write there");
	ok(strstr(err, "not a directory of this user closed to others") != NULL, "... saying why");
	unlink(path);
	rmdir(sub);
	rmdir(dir);
	return done_testing();
}
