/*
 * The Kubernetes client against a real kube-apiserver (tests/env/k8s-local.sh writes the
 * kubeconfig that BOP_TEST_KUBECONFIG names): version, namespaces, the life of a ConfigMap
 * through create, get, merge patch, server-side apply, update and delete, and each error
 * status mapped to its code with the server's message.
 */
#include "tap.h"

#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "k8s/k8s.h"

static bop__k8s_client_t *client;
static char ns[64];
static char cm_path[256];

static json_object *json(const char *text)
{
	json_object *o = json_tokener_parse(text);

	if (!o) {
		printf("Bail out! bad JSON in the test: %s\n", text);
		exit(1);
	}
	return o;
}

/* The string at a dotted path ("data.a", "metadata.name"), or NULL. */
static const char *get_str(json_object *o, const char *path)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
		if (!o || !json_object_object_get_ex(o, k, &o))
			return NULL;
	return o && json_object_is_type(o, json_type_string) ? json_object_get_string(o) : NULL;
}

static int req(bop__k8s_method_t m, const char *path, const char *body, const char *manager,
	json_object **out)
{
	json_object *b = body ? json(body) : NULL;
	int ret = bop__k8s_do(client, m, path, b, manager, out);

	json_object_put(b);
	return ret;
}

static bool has(const char *text, const char *part)
{
	if (text && strstr(text, part))
		return true;
	diag("'%s' does not contain '%s'", text ? text : "(null)", part);
	return false;
}

static void test_version(void)
{
	json_object *v = NULL;

	is_int(req(BOP__K8S_GET, "/version", NULL, NULL, &v), 0, "GET /version");
	ok(get_str(v, "gitVersion") && !strncmp(get_str(v, "gitVersion"), "v1.", 3),
		"it names a Kubernetes version: %s", get_str(v, "gitVersion"));
	is_str(get_str(v, "major"), "1", "major version 1");
	json_object_put(v);
}

static void test_namespace(void)
{
	char body[256], path[128];
	json_object *o = NULL;
	unsigned char r[4];

	RAND_bytes(r, sizeof(r));
	snprintf(ns, sizeof(ns), "bop-test-%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
	snprintf(body, sizeof(body),
		"{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"%s\"}}", ns);
	is_int(req(BOP__K8S_POST, "/api/v1/namespaces", body, NULL, &o), 0, "create a namespace");
	is_str(get_str(o, "metadata.name"), ns, "the answer is the namespace");
	json_object_put(o);
	o = NULL;
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s", ns);
	is_int(req(BOP__K8S_GET, path, NULL, NULL, &o), 0, "get it");
	is_str(get_str(o, "status.phase"), "Active", "it is active");
	json_object_put(o);
	snprintf(cm_path, sizeof(cm_path), "/api/v1/namespaces/%s/configmaps", ns);
}

static void test_configmap_create_get(const char *path)
{
	const char *cm = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
		"\"metadata\":{\"name\":\"cm1\"},\"data\":{\"a\":\"1\"}}";
	bop__k8s_response_t resp;
	json_object *o = NULL;
	bop__k8s_request_t r = { .method = BOP__K8S_POST, .path = cm_path };

	is_int(req(BOP__K8S_POST, cm_path, cm, NULL, &o), 0, "create a ConfigMap");
	is_str(get_str(o, "metadata.namespace"), ns, "in the namespace");
	json_object_put(o);
	o = NULL;
	is_int(req(BOP__K8S_GET, path, NULL, NULL, &o), 0, "get it");
	is_str(get_str(o, "data.a"), "1", "with its data");
	json_object_put(o);

	r.body = json(cm);
	is_int(bop__k8s_request(client, &r, &resp), BOP_ECONFLICT,
		"creating it again is BOP_ECONFLICT (409)");
	is_int(resp.status, 409, "the response keeps the status");
	is_str(get_str(resp.body, "reason"), "AlreadyExists", "and the Status body");
	ok(has(bop_error_last(), "already exists") && has(bop_error_last(), "POST"),
		"the message has the server's words: %s", bop_error_last());
	bop__k8s_response_clear(&resp);
	json_object_put(r.body);
}

static void test_configmap_patches(const char *path)
{
	json_object *o = NULL;

	is_int(req(BOP__K8S_PATCH_MERGE, path, "{\"data\":{\"b\":\"2\"}}", NULL, &o), 0,
		"merge-patch it");
	ok(get_str(o, "data.a") && get_str(o, "data.b") && !strcmp(get_str(o, "data.b"), "2"),
		"the patch added a key and kept the other");
	json_object_put(o);
	o = NULL;

	is_int(req(BOP__K8S_PATCH_APPLY, path,
		"{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"cm1\"},"
		"\"data\":{\"c\":\"3\"}}", "bop-test", &o), 0, "server-side apply it");
	is_str(get_str(o, "data.c"), "3", "the applied key is there");
	is_str(get_str(o, "data.a"), "1", "the others' keys are kept");
	ok(o && strstr(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
		"\"manager\":\"bop-test\",\"operation\":\"Apply\""),
		"the field manager is recorded");
	json_object_put(o);
	o = NULL;

	bop__k8s_request_t r = { .method = BOP__K8S_PATCH_APPLY, .path = path,
		.field_manager = "someone-else" };
	bop__k8s_response_t resp;

	r.body = json("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"cm1\"},"
		"\"data\":{\"c\":\"other\"}}");
	is_int(bop__k8s_request(client, &r, &resp), BOP_ECONFLICT,
		"another manager's unforced apply of the same field is BOP_ECONFLICT");
	ok(has(bop_error_last(), "bop-test"), "naming the owner: %s", bop_error_last());
	bop__k8s_response_clear(&resp);
	r.force = true;
	is_int(bop__k8s_request(client, &r, &resp), 0, "forced, it takes the field over");
	is_str(get_str(resp.body, "data.c"), "other", "with its value");
	bop__k8s_response_clear(&resp);
	json_object_put(r.body);

	is_int(req(BOP__K8S_PATCH_MERGE, path, "{\"data\":{\"x\":5}}", NULL, &o), BOP_EINVAL,
		"a patch the server rejects as invalid is BOP_EINVAL (422)");
	ok(has(bop_error_last(), "422"), "with the server's message: %s", bop_error_last());
}

static void test_configmap_update(const char *path)
{
	json_object *o = NULL, *md;
	int ret;

	ret = req(BOP__K8S_GET, path, NULL, NULL, &o);
	if (ret < 0 || !json_object_object_get_ex(o, "metadata", &md)) {
		ok(0, "get the ConfigMap to update it: %s", bop_error_last());
		json_object_put(o);
		return;
	}
	json_object_object_add(md, "resourceVersion", json_object_new_string("1"));
	is_int(bop__k8s_do(client, BOP__K8S_PUT, path, o, NULL, NULL), BOP_ECONFLICT,
		"an update with a stale resourceVersion is BOP_ECONFLICT");
	ok(has(bop_error_last(), "modified"), "the message says why: %s", bop_error_last());
	json_object_object_del(md, "resourceVersion");
	is_int(bop__k8s_do(client, BOP__K8S_PUT, path, o, "bop-test", NULL), 0,
		"an update without resourceVersion succeeds");
	json_object_put(o);
}

static void test_configmap_delete(const char *path)
{
	json_object *o = NULL;

	is_int(req(BOP__K8S_DELETE, path, NULL, NULL, NULL), 0, "delete the ConfigMap");
	is_int(req(BOP__K8S_GET, path, NULL, NULL, &o), BOP_ENOTFOUND,
		"getting it now is BOP_ENOTFOUND (404)");
	ok(has(bop_error_last(), "\"cm1\" not found"), "the message is the server's: %s",
		bop_error_last());
	ok(!o, "no body is handed back on failure");
	is_int(req(BOP__K8S_DELETE, path, NULL, NULL, NULL), BOP_ENOTFOUND,
		"deleting it again is BOP_ENOTFOUND");
	is_int(req(BOP__K8S_POST, cm_path,
		"{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"Bad_Name\"}}",
		NULL, NULL), BOP_EINVAL, "an invalid name is BOP_EINVAL (422)");
	ok(has(bop_error_last(), "Bad_Name"), "the server's message says which: %s",
		bop_error_last());
}

static void test_wrong_token(const char *kubeconfig)
{
	const char *wrong = "wrong-token-0123456789abcdef";
	bop__k8s_config_t *cfg = NULL;
	bop__k8s_client_t *bad = NULL;

	if (bop__k8s_config_load_file(&cfg, kubeconfig, NULL) < 0 ||
	    bop__k8s_client_new(&bad, cfg) < 0) {
		ok(0, "a second client: %s", bop_error_last());
		return;
	}
	free(bop__k8s_client_config(bad)->token);
	bop__k8s_client_config(bad)->token = bop__strdup(wrong);
	is_int(bop__k8s_do(bad, BOP__K8S_GET, "/api/v1/namespaces", NULL, NULL, NULL), BOP_EAUTH,
		"a wrong token is BOP_EAUTH (401)");
	ok(has(bop_error_last(), "401") && has(bop_error_last(), "credentials"),
		"and the message says so: %s", bop_error_last());
	ok(!strstr(bop_error_last(), wrong), "without the token");
	bop__k8s_client_free(bad);
}

static void test_unverified_tls(const char *kubeconfig)
{
	bop__k8s_config_t *cfg = NULL;
	bop__k8s_client_t *c = NULL;

	if (bop__k8s_config_load_file(&cfg, kubeconfig, NULL) < 0) {
		ok(0, "load the kubeconfig: %s", bop_error_last());
		return;
	}
	free(cfg->ca_pem);
	cfg->ca_pem = NULL;
	cfg->ca_len = 0;
	if (bop__k8s_client_new(&c, cfg) < 0) {
		ok(0, "a client: %s", bop_error_last());
		return;
	}
	bop__k8s_client_set_retry(c, 1, 1, 0);
	is_int(bop__k8s_do(c, BOP__K8S_GET, "/version", NULL, NULL, NULL), BOP_EIO,
		"without the cluster's CA the server's certificate is refused");
	ok(has(bop_error_last(), "TLS"), "the message says TLS: %s", bop_error_last());
	bop__k8s_client_free(c);
}

static void cleanup(void)
{
	char path[128];

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s", ns);
	is_int(req(BOP__K8S_DELETE, path, NULL, NULL, NULL), 0, "delete the namespace");
}

int main(void)
{
	const char *kubeconfig = getenv("BOP_TEST_KUBECONFIG");
	bop__k8s_config_t *cfg = NULL;
	char path[300];

	if (!kubeconfig || !*kubeconfig)
		skip_all("no Kubernetes API server (run tests/env/k8s-local.sh start or tests/run)");
	if (bop__k8s_config_load_file(&cfg, kubeconfig, NULL) < 0)
		skip_all("cannot load BOP_TEST_KUBECONFIG: %s", bop_error_last());
	if (bop__k8s_client_new(&client, cfg) < 0)
		skip_all("cannot create the client: %s", bop_error_last());
	ok(strstr(bop__k8s_client_config(client)->source, kubeconfig) != NULL &&
		!strncmp(bop__k8s_client_config(client)->server, "https://", 8),
		"the client uses BOP_TEST_KUBECONFIG's https server: %s",
		bop__k8s_client_config(client)->source);
	test_version();
	test_namespace();
	snprintf(path, sizeof(path), "%s/cm1", cm_path);
	test_configmap_create_get(path);
	test_configmap_patches(path);
	test_configmap_update(path);
	test_configmap_delete(path);
	test_wrong_token(kubeconfig);
	test_unverified_tls(kubeconfig);
	cleanup();
	bop__k8s_client_free(client);
	return done_testing();
}
