/*
 * Kubeconfig and in-cluster config: tokens (inline and from a file, re-read when rotated),
 * client certificates and CAs given inline or as files (made with the real openssl tool),
 * contexts, and documents that are wrong in the ways people get them wrong.
 */
#include "tap.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "k8s/k8s.h"

static char dir[256];
static char *ca_b64, *cert_b64, *key_b64, *other_key_b64;

static char *path_in(const char *name)
{
	static char buf[4][512];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static void write_file(const char *name, const char *text)
{
	FILE *f = fopen(path_in(name), "w");

	if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
		printf("Bail out! cannot write %s: %s\n", path_in(name), strerror(errno));
		exit(1);
	}
}

static char *b64_file(const char *name)
{
	char *data = NULL, *out;
	size_t len;

	if (bop__read_file(path_in(name), &data, &len, 1 << 20) < 0) {
		printf("Bail out! %s\n", bop_error_last());
		exit(1);
	}
	out = calloc(1, len / 3 * 4 + 8);
	EVP_EncodeBlock((unsigned char *)out, (unsigned char *)data, (int)len);
	free(data);
	return out;
}

/* A CA, a client certificate and key signed by it, and an unrelated key. */
static bool make_pki(void)
{
	char cmd[4096];

	snprintf(cmd, sizeof(cmd),
		"(cd %s && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca "
		"-keyout ca.key -out ca.crt && "
		"openssl req -newkey rsa:2048 -nodes -subj /CN=alice/O=team "
		"-keyout client.key -out client.csr && "
		"openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
		"-days 2 -out client.crt && "
		"openssl genrsa -out other.key 2048) >/dev/null 2>&1", dir);
	if (system(cmd) != 0)
		return false;
	ca_b64 = b64_file("ca.crt");
	cert_b64 = b64_file("client.crt");
	key_b64 = b64_file("client.key");
	other_key_b64 = b64_file("other.key");
	return true;
}

static char *doc(const char *cluster_extra, const char *user_yaml)
{
	return bop__sprintf(
		"apiVersion: v1\n"
		"kind: Config\n"
		"clusters:\n"
		"- name: prod\n"
		"  cluster:\n"
		"    server: https://10.1.2.3:6443/\n"
		"%s"
		"- name: other\n"
		"  cluster: {server: http://127.0.0.1:8080}\n"
		"users:\n"
		"- name: u\n"
		"  user:\n"
		"%s"
		"contexts:\n"
		"- name: main\n"
		"  context: {cluster: prod, user: u, namespace: shop}\n"
		"- name: second\n"
		"  context: {cluster: other, user: u}\n"
		"- name: dangling\n"
		"  context: {cluster: nowhere, user: u}\n"
		"current-context: main\n", cluster_extra, user_yaml);
}

static int parse(bop__k8s_config_t **cfg, const char *text, const char *context)
{
	return bop__k8s_config_parse(cfg, text, strlen(text), "test.yaml", dir, context);
}

static bool has(const char *text, const char *part)
{
	if (text && strstr(text, part))
		return true;
	diag("'%s' does not contain '%s'", text ? text : "(null)", part);
	return false;
}

static void test_token_and_ca_data(void)
{
	char *extra = bop__sprintf("    certificate-authority-data: %s\n", ca_b64);
	char *text = doc(extra, "    token: abc.def-123\n");
	bop__k8s_config_t *cfg = NULL;
	const char *tok;

	is_int(parse(&cfg, text, NULL), 0, "a kubeconfig with a token and CA data loads");
	if (cfg) {
		is_str(cfg->server, "https://10.1.2.3:6443", "server, without the trailing slash");
		is_str(cfg->namespace, "shop", "namespace of the current context");
		is_str(cfg->token, "abc.def-123", "the token");
		ok(cfg->ca_pem && strstr(cfg->ca_pem, "BEGIN CERTIFICATE"), "CA data is decoded PEM");
		ok(!cfg->insecure, "TLS is verified");
		ok(!cfg->cert_pem && !cfg->key_pem, "no client certificate");
		ok(bop__k8s_config_token(cfg, &tok) == 0 && tok && !strcmp(tok, "abc.def-123"),
			"bop__k8s_config_token gives it");
		ok(has(cfg->source, "context main"), "the source names the context");
	}
	bop__k8s_config_free(cfg);
	cfg = NULL;
	is_int(parse(&cfg, text, "second"), 0, "another context by name");
	if (cfg) {
		is_str(cfg->server, "http://127.0.0.1:8080", "its cluster's server");
		is_str(cfg->namespace, "default", "no namespace means default");
		ok(!cfg->ca_pem, "no CA: the system's");
	}
	bop__k8s_config_free(cfg);
	cfg = NULL;
	is_int(parse(&cfg, text, "missing"), BOP_ENOTFOUND, "an unknown context is BOP_ENOTFOUND");
	ok(has(bop_error_last(), "no context named \"missing\""),
		"and the message names it: %s", bop_error_last());
	is_int(parse(&cfg, text, "dangling"), BOP_ENOTFOUND,
		"a context naming an unknown cluster is BOP_ENOTFOUND");
	ok(has(bop_error_last(), "\"nowhere\""), "and the message names the cluster");
	ok(!cfg, "nothing is returned on failure");
	free(text);
	free(extra);
}

static void test_files(void)
{
	char *text, *user;
	bop__k8s_config_t *cfg = NULL;
	const char *tok;

	user = bop__sprintf("    client-certificate: client.crt\n"
		"    client-key: %s\n", path_in("client.key"));
	text = doc("    certificate-authority: ca.crt\n", user);
	is_int(parse(&cfg, text, NULL), 0, "CA, client certificate and key as files (relative and absolute)");
	if (cfg) {
		ok(cfg->ca_pem && strstr(cfg->ca_pem, "BEGIN CERTIFICATE"), "the CA file is read");
		ok(cfg->cert_pem && strstr(cfg->cert_pem, "BEGIN CERTIFICATE"), "the certificate file is read");
		ok(cfg->key_pem && strstr(cfg->key_pem, "PRIVATE KEY"), "the key file is read");
		ok(!cfg->token, "no token");
	}
	bop__k8s_config_free(cfg);
	cfg = NULL;
	free(text);
	free(user);

	write_file("tok", "  first-token-value\n");
	text = doc("", "    tokenFile: tok\n");
	is_int(parse(&cfg, text, NULL), 0, "tokenFile, relative to the kubeconfig");
	if (cfg) {
		ok(bop__k8s_config_token(cfg, &tok) == 0 && tok && !strcmp(tok, "first-token-value"),
			"the token is read and trimmed");
		write_file("tok.new", "second-token-value-rotated\n");
		rename(path_in("tok.new"), path_in("tok"));
		ok(bop__k8s_config_token(cfg, &tok) == 0 && tok &&
			!strcmp(tok, "second-token-value-rotated"), "a rotated token file is re-read");
		unlink(path_in("tok"));
		ok(bop__k8s_config_token(cfg, &tok) < 0, "a vanished token file is an error");
		ok(has(bop_error_last(), path_in("tok")), "that names the file");
	}
	bop__k8s_config_free(cfg);
	cfg = NULL;
	free(text);

	text = doc("    certificate-authority: missing-ca.crt\n", "    token: abcd\n");
	is_int(parse(&cfg, text, NULL), BOP_ENOTFOUND, "a missing CA file is BOP_ENOTFOUND");
	ok(has(bop_error_last(), "missing-ca.crt") && has(bop_error_last(), "test.yaml"),
		"the message names the file and the kubeconfig: %s", bop_error_last());
	free(text);
}

static void test_cert_data(void)
{
	char *user, *text;
	bop__k8s_config_t *cfg = NULL;

	user = bop__sprintf("    client-certificate-data: %s\n    client-key-data: %s\n",
		cert_b64, key_b64);
	text = doc("    insecure-skip-tls-verify: true\n", user);
	is_int(parse(&cfg, text, NULL), 0, "client certificate and key as data, insecure");
	if (cfg) {
		ok(cfg->insecure, "insecure-skip-tls-verify is kept");
		ok(cfg->cert_pem && strstr(cfg->cert_pem, "BEGIN CERTIFICATE"), "the certificate is decoded");
		ok(cfg->key_pem && cfg->key_len > 100, "the key is decoded");
	}
	bop__k8s_config_free(cfg);
	cfg = NULL;
	free(text);
	free(user);

	user = bop__sprintf("    client-certificate-data: %s\n    client-key-data: %s\n",
		cert_b64, other_key_b64);
	text = doc("", user);
	is_int(parse(&cfg, text, NULL), BOP_EINVAL, "a key of another certificate is BOP_EINVAL");
	ok(has(bop_error_last(), "does not belong"), "and says so: %s", bop_error_last());
	free(text);
	free(user);

	user = bop__sprintf("    client-certificate-data: %s\n", cert_b64);
	text = doc("", user);
	is_int(parse(&cfg, text, NULL), BOP_EINVAL, "a certificate without key is BOP_EINVAL");
	ok(has(bop_error_last(), "no client key"), "and says so: %s", bop_error_last());
	free(text);
	free(user);
}

typedef struct bad {
	const char *name;
	const char *yaml;
	int code;
	const char *says;
} bad_t;

static void test_bad_documents(void)
{
	static const bad_t bad[] = {
		{ "invalid YAML", "clusters: [\n  - {name: x\n", BOP_EFORMAT, "not valid YAML" },
		{ "a list, not a mapping", "- a\n- b\n", BOP_EFORMAT, "not a kubeconfig" },
		{ "kind is not Config", "kind: Pod\n", BOP_EFORMAT, "kind is \"Pod\"" },
		{ "no current-context", "kind: Config\nclusters: []\n", BOP_ENOTFOUND,
			"no current-context" },
		{ "a cluster without server",
			"clusters: [{name: c, cluster: {}}]\ncontexts: [{name: x, context: {cluster: c}}]\n"
			"current-context: x\n", BOP_EFORMAT, "has no server" },
		{ "a server that is no URL",
			"clusters: [{name: c, cluster: {server: 10.0.0.1}}]\n"
			"contexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x\n",
			BOP_EFORMAT, "no http:// or https:// URL" },
		{ "clusters is not a list",
			"clusters: {a: b}\ncontexts: [{name: x, context: {cluster: c}}]\n"
			"current-context: x\n", BOP_EFORMAT, "clusters must be a list" },
		{ "bad base64",
			"clusters: [{name: c, cluster: {server: 'https://h', certificate-authority-data: '%%%'}}]\n"
			"contexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x\n",
			BOP_EFORMAT, "not valid base64" },
		{ "CA data that is no certificate",
			"clusters: [{name: c, cluster: {server: 'https://h', certificate-authority-data: aGVsbG8=}}]\n"
			"contexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x\n",
			BOP_EFORMAT, "no PEM certificate" },
		{ "insecure is not a boolean",
			"clusters: [{name: c, cluster: {server: 'https://h', insecure-skip-tls-verify: maybe}}]\n"
			"contexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x\n",
			BOP_EFORMAT, "must be true or false" },
		{ "an exec plug-in",
			"clusters: [{name: c, cluster: {server: 'https://h'}}]\n"
			"users: [{name: u, user: {exec: {command: aws}}}]\n"
			"contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
			BOP_ENOTSUPPORTED, "\"exec\"" },
		{ "a token that is a list",
			"clusters: [{name: c, cluster: {server: 'https://h'}}]\n"
			"users: [{name: u, user: {token: [a]}}]\n"
			"contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
			BOP_EFORMAT, "user \"u\".token must be a string" },
		{ "an unknown user",
			"clusters: [{name: c, cluster: {server: 'https://h'}}]\n"
			"contexts: [{name: x, context: {cluster: c, user: nobody}}]\ncurrent-context: x\n",
			BOP_ENOTFOUND, "\"nobody\"" },
	};
	bop__k8s_config_t *cfg = NULL;

	for (size_t i = 0; i < BOP_ARRAY_SIZE(bad); i++) {
		int ret = parse(&cfg, bad[i].yaml, NULL);

		ok(ret == bad[i].code && has(bop_error_last(), bad[i].says) &&
			has(bop_error_last(), "test.yaml"), "%s: %d: %s", bad[i].name, ret,
			bop_error_last());
		bop__k8s_config_free(cfg);
		cfg = NULL;
	}

	char *extra = bop__sprintf("    certificate-authority-data: %s\n"
		"    insecure-skip-tls-verify: true\n", ca_b64);
	char *text = doc(extra, "");
	is_int(parse(&cfg, text, NULL), BOP_EINVAL, "a CA together with insecure is BOP_EINVAL");
	ok(has(bop_error_last(), "insecure-skip-tls-verify"), "and says so: %s", bop_error_last());
	free(text);
	free(extra);

	is_int(bop__k8s_config_load_file(&cfg, path_in("nope.yaml"), NULL), BOP_ENOTFOUND,
		"a missing kubeconfig file is BOP_ENOTFOUND");
	ok(has(bop_error_last(), "nope.yaml"), "and names it: %s", bop_error_last());
}

/* libyaml's time grows with the square of the nesting depth: 300,000 "[" took tens of
 * seconds, 4 MiB (the largest kubeconfig read) hours. Deep nesting is refused at once. */
static void test_deep_nesting(void)
{
	size_t n = 300000;
	char *text = malloc(n + 4);
	bop__k8s_config_t *cfg = NULL;
	int64_t start;
	int ret;

	memcpy(text, "a: ", 3);
	memset(text + 3, '[', n);
	text[n + 3] = '\0';
	start = bop__now_ms();
	ret = parse(&cfg, text, NULL);
	ok(bop__now_ms() - start < 2000, "300,000 nested lists are refused at once (%lld ms)",
		(long long)(bop__now_ms() - start));
	ok(ret == BOP_EFORMAT && has(bop_error_last(), "nested more than 64 levels"),
		"as BOP_EFORMAT that says why: %s", bop_error_last());
	bop__k8s_config_free(cfg);
	free(text);
}

static void test_in_cluster(void)
{
	bop__k8s_config_t *cfg = NULL;
	char sa[512], cmd[1200];
	const char *tok;

	unsetenv("KUBERNETES_SERVICE_HOST");
	is_int(bop__k8s_config_in_cluster(&cfg, NULL), BOP_ENOTFOUND,
		"outside a cluster the in-cluster config is BOP_ENOTFOUND");
	ok(has(bop_error_last(), "KUBERNETES_SERVICE_HOST"), "and says why");

	snprintf(sa, sizeof(sa), "%s/sa", dir);
	mkdir(sa, 0700);
	snprintf(cmd, sizeof(cmd), "cp %s/ca.crt %s/ca.crt", dir, sa);
	if (system(cmd) != 0)
		diag("cannot copy ca.crt");
	write_file("sa/token", "sa-token-one\n");
	write_file("sa/namespace", "backupop-system");
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	is_int(bop__k8s_config_in_cluster(&cfg, sa), 0, "in-cluster config loads");
	if (cfg) {
		is_str(cfg->server, "https://10.96.0.1:443", "server from the environment");
		is_str(cfg->namespace, "backupop-system", "namespace from the service account");
		ok(cfg->ca_pem && strstr(cfg->ca_pem, "BEGIN CERTIFICATE"), "CA from ca.crt");
		ok(bop__k8s_config_token(cfg, &tok) == 0 && tok && !strcmp(tok, "sa-token-one"),
			"token from the token file");
		/* kubelet rotates by swapping a symlinked directory: a new inode */
		write_file("sa/token.tmp", "sa-token-two-rotated\n");
		rename(path_in("sa/token.tmp"), path_in("sa/token"));
		ok(bop__k8s_config_token(cfg, &tok) == 0 && tok &&
			!strcmp(tok, "sa-token-two-rotated"), "the rotated token is used");
	}
	bop__k8s_config_free(cfg);
	cfg = NULL;
	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	is_int(bop__k8s_config_in_cluster(&cfg, sa), 0, "an IPv6 service host");
	if (cfg)
		is_str(cfg->server, "https://[fd00::1]:443", "is bracketed in the URL");
	bop__k8s_config_free(cfg);
	cfg = NULL;
	unlink(path_in("sa/token"));
	is_int(bop__k8s_config_in_cluster(&cfg, sa), BOP_ENOTFOUND,
		"without a token file the in-cluster config fails");
	ok(has(bop_error_last(), "token"), "naming the token: %s", bop_error_last());
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
}

int main(void)
{
	char cmd[300];

	snprintf(dir, sizeof(dir), "%s/bop-k8s-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir))
		skip_all("cannot create a temporary directory");
	if (!make_pki()) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		(void)!system(cmd);
		skip_all("the openssl command line tool is missing or failed");
	}
	test_token_and_ca_data();
	test_files();
	test_cert_data();
	test_bad_documents();
	test_deep_nesting();
	test_in_cluster();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
	free(ca_b64);
	free(cert_b64);
	free(key_b64);
	free(other_key_b64);
	return done_testing();
}
