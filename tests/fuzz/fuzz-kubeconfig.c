/* Arbitrary bytes as a kubeconfig: parsed as the controller and `backupop` parse one (the
 * files it names are resolved against a directory holding a CA, a client certificate and
 * key, and a token file). Every answer is an error code or a configuration that keeps the
 * documented promises: an http(s) server without a trailing slash, a namespace, a client
 * certificate only with its key, no CA with insecure-skip-tls-verify, a token without
 * control characters or surrounding blanks, PEM blobs NUL-terminated; and a copy of it is
 * equal to it.
 *
 * Every token parsed is registered as a log secret for the life of the process, and
 * each error message is redacted against all of them, so one process slows down as it
 * goes (5,000 parses: 0.4 s at first, 1.3 s after 7,500 tokens). Run long campaigns with
 * -fork=1, where each job is a fresh process. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz-common.h"
#include "k8s/k8s.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A throw-away CA and client pair (EC P-256) made for these tests only. */
static const char ca_crt[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBfzCCASWgAwIBAgIUcO9/DkGZqB5Rorx3QNJ3fO+jce0wCgYIKoZIzj0EAwIw\n"
	"FTETMBEGA1UEAwwKa3ViZXJuZXRlczAeFw0yNjEyMDQyMjQwMjJaFw0zNjEyMDEy\n"
	"MjQwMjJaMBUxEzARBgNVBAMMCmt1YmVybmV0ZXMwWTATBgcqhkjOPQIBBggqhkjO\n"
	"PQMBBwNCAAQu21eCv1CWXve09mnESC00AfVDoAQkzxf1lK7T1CxE9w7XtQMVALu6\n"
	"jF1QgOzvfSuDVbgN1KROkdsUWlapsDDYo1MwUTAdBgNVHQ4EFgQU3pyNpwnTGEol\n"
	"JuY5JzYtt6b9H0AwHwYDVR0jBBgwFoAU3pyNpwnTGEolJuY5JzYtt6b9H0AwDwYD\n"
	"VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiA2x6snI+qWaIYmtpw95WJI\n"
	"HJHYarhxFoNbwI6N8ukfRQIhAMYfU/AAEfmP8JdYFz+F1qob7XBRHLGyqd7BC/0i\n"
	"w9je\n"
	"-----END CERTIFICATE-----\n";

static const char client_crt[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBRDCB6gIUOi2LS4hIxHRsR+ii50KdeZkDgTkwCgYIKoZIzj0EAwIwFTETMBEG\n"
	"A1UEAwwKa3ViZXJuZXRlczAeFw0yNjEyMDQyMjQwMjJaFw0zNjEyMDEyMjQwMjJa\n"
	"MDQxFzAVBgNVBAoMDnN5c3RlbTptYXN0ZXJzMRkwFwYDVQQDDBBrdWJlcm5ldGVz\n"
	"LWFkbWluMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEpxtefGV9b6fC6TLBjrNk\n"
	"U//FmA7sgYyxuZ1l+8dPAM5zZZ+/rGdM+PiV3M7uEnIN5lig/z/Rd6eyjDIqkA4a\n"
	"BTAKBggqhkjOPQQDAgNJADBGAiEAnz04AFpL7T2CU2QpfQNysg7y5W21VVuKCgSY\n"
	"0nr1GSoCIQC70G1pXrjE+zhyuYEz/YDFwO/Mttg6Ypy8tImlVKiupQ==\n"
	"-----END CERTIFICATE-----\n";

static const char client_key[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgL2/3BM60M7ItZ/Q5\n"
	"2EK773dr5TkN3OEOQFJl3zxTiEGhRANCAASnG158ZX1vp8LpMsGOs2RT/8WYDuyB\n"
	"jLG5nWX7x08AznNln7+sZ0z4+JXczu4Scg3mWKD/P9F3p7KMMiqQDhoF\n"
	"-----END PRIVATE KEY-----\n";

static char dir[] = "/tmp/bop-fuzz-kubeconfig-XXXXXX";

static void put(const char *name, const char *text)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f || fputs(text, f) == EOF || fclose(f) != 0)
		abort();
}

static void cleanup(void)
{
	static const char *const names[] = { "ca.crt", "client.crt", "client.key", "token" };
	char path[128];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!mkdtemp(dir))
		abort();
	put("ca.crt", ca_crt);
	put("client.crt", client_crt);
	put("client.key", client_key);
	put("token", "eyJhbGciOiJSUzI1NiJ9.file-token.sig\n");
	atexit(cleanup);
	return 0;
}

static bool blob_ok(const char *p, size_t len)
{
	return !p ? len == 0 : p[len] == '\0';
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static bool same_blob(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && (!a) == (!b) && (!a || !memcmp(a, b, alen));
}

static void check(const bop__k8s_config_t *c)
{
	bop__k8s_config_t *d = NULL;
	size_t n;

	if (!c->server || (strncmp(c->server, "https://", 8) && strncmp(c->server, "http://", 7)))
		abort();
	n = strlen(c->server);
	if (n > 8 && c->server[n - 1] == '/')
		abort();
	if (!c->namespace || !*c->namespace || !c->source)
		abort();
	if ((!c->cert_pem) != (!c->key_pem) || (c->insecure && c->ca_pem))
		abort();
	if (!blob_ok(c->ca_pem, c->ca_len) || !blob_ok(c->cert_pem, c->cert_len) ||
	    !blob_ok(c->key_pem, c->key_len))
		abort();
	if (c->token) {
		n = strlen(c->token);
		if (!n || c->token[0] == ' ' || c->token[n - 1] == ' ' || c->token[n - 1] == '\n')
			abort();
		for (const char *p = c->token; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				abort();
	}
	if (bop__k8s_config_dup(c, &d) < 0)
		abort();
	if (!same_str(c->server, d->server) || !same_str(c->namespace, d->namespace) ||
	    !same_str(c->source, d->source) || !same_str(c->token, d->token) ||
	    !same_str(c->token_file, d->token_file) || c->insecure != d->insecure ||
	    !same_blob(c->ca_pem, c->ca_len, d->ca_pem, d->ca_len) ||
	    !same_blob(c->cert_pem, c->cert_len, d->cert_pem, d->cert_len) ||
	    !same_blob(c->key_pem, c->key_len, d->key_pem, d->key_len))
		abort();
	bop__k8s_config_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bop__k8s_config_t *cfg = NULL;
	int ret;

	bop_log_set_level(BOP_LOG_OFF);
	ret = bop__k8s_config_parse(&cfg, (const char *)data, size, "fuzz", dir, NULL);
	if ((ret == 0) != (cfg != NULL) || ret > 0 || (ret < 0 && !bop_error_last()))
		abort();
	if (cfg)
		check(cfg);
	bop__k8s_config_free(cfg);
	return 0;
}
