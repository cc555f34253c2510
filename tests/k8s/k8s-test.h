/*
 * Helpers of the tests that use the public Kubernetes API against the real API server:
 * a client from BOP_TEST_KUBECONFIG, a namespace of a random name, and JSON lookups.
 */
#ifndef BOP_TESTS_K8S_TEST_H
#define BOP_TESTS_K8S_TEST_H

#include <json-c/json.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backupop.h"

/* A client for `kubeconfig`, or skips the whole test. */
__attribute__((unused))
static bop_k8s_client_t *test_client(const char *kubeconfig)
{
	bop_k8s_client_options_t o = BOP_K8S_CLIENT_OPTIONS_INIT;
	bop_k8s_client_t *c = NULL;

	o.kubeconfig = kubeconfig;
	if (bop_k8s_client_new(&c, &o) < 0)
		skip_all("cannot create a client for %s: %s", kubeconfig, bop_error_last());
	return c;
}

/* The kubeconfig of BOP_TEST_KUBECONFIG, or skips the whole test. */
__attribute__((unused))
static const char *test_kubeconfig(void)
{
	const char *k = getenv("BOP_TEST_KUBECONFIG");

	if (!k || !*k)
		skip_all("no Kubernetes API server (run tests/env/k8s-local.sh start, then set BOP_TEST_KUBECONFIG)");
	return k;
}

/* Creates a namespace "<prefix>-<8 hex>" into ns; bails out when the server refuses. */
__attribute__((unused))
static void test_namespace_create(bop_k8s_client_t *c, const char *prefix, char *ns, size_t size)
{
	unsigned char r[4];
	char body[256];

	RAND_bytes(r, sizeof(r));
	snprintf(ns, size, "%s-%02x%02x%02x%02x", prefix, r[0], r[1], r[2], r[3]);
	snprintf(body, sizeof(body),
		"{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"%s\"}}", ns);
	if (bop_k8s_request(c, NULL, NULL, BOP_K8S_CREATE, "/api/v1/namespaces", body, NULL) < 0) {
		printf("Bail out! cannot create namespace %s: %s\n", ns, bop_error_last());
		exit(1);
	}
}

__attribute__((unused))
static int test_namespace_delete(bop_k8s_client_t *c, const char *ns)
{
	char path[160];

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s", ns);
	return bop_k8s_request(c, NULL, NULL, BOP_K8S_DELETE, path, NULL, NULL);
}

/* The value at a dotted path of JSON text as a string ("" for a missing one), in a
 * rotating static buffer. Numbers are printed. */
__attribute__((unused))
static const char *jget(const char *text, const char *path)
{
	static char bufs[4][1024];
	static int which;
	char *out = bufs[which++ % 4], p[256], *save = NULL;
	json_object *root = text ? json_tokener_parse(text) : NULL, *o = root;

	out[0] = '\0';
	snprintf(p, sizeof(p), "%s", path);
	for (char *k = strtok_r(p, ".", &save); k && o; k = strtok_r(NULL, ".", &save))
		if (!json_object_object_get_ex(o, k, &o))
			o = NULL;
	if (o && json_object_is_type(o, json_type_string))
		snprintf(out, 1024, "%s", json_object_get_string(o));
	else if (o)
		snprintf(out, 1024, "%s", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(root);
	return out;
}

#endif
