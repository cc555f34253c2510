/*
 * The public Kubernetes API against a real kube-apiserver: every request verb (create,
 * get, merge patch, forced server-side apply, update, delete) with JSON text in and out,
 * each error status mapped to its code with the server's words, and the Events recorder:
 * an Event with the right fields, a repeat counted on the same Event, a long message cut
 * to 1024 bytes, cluster-scoped objects' Events in "default".
 */
#include "tap.h"

#include <unistd.h>

#include "k8s-test.h"

static bop_k8s_client_t *client;
static char ns[64];
static char cms[160];                  /* the ConfigMaps collection */
static char cm1[200];

static int req(bop_k8s_verb_t verb, const char *path, const char *body, const char *manager,
	long *status, char **resp)
{
	return bop_k8s_request(client, status, resp, verb, path, body, manager);
}

static bool has(const char *text, const char *part)
{
	if (text && strstr(text, part))
		return true;
	diag("'%s' does not contain '%s'", text ? text : "(null)", part);
	return false;
}

static void test_options(void)
{
	bop_k8s_client_options_t o = BOP_K8S_CLIENT_OPTIONS_INIT;
	bop_k8s_client_t *c = NULL;

	bop_k8s_informer_options_t io;
	bop_k8s_leader_options_t lo;

	is_int(bop_k8s_client_options_init(&o, 2), BOP_EVERSION, "client options_init: unknown version");
	is_int(bop_k8s_informer_options_init(&io, 1), 0, "informer options_init");
	ok(io.version == 1 && !io.path && !io.page_size, "fills the defaults");
	is_int(bop_k8s_leader_options_init(&lo, 1), 0, "leader options_init");
	is_int(bop_k8s_client_options_init(&o, 1), 0, "client options_init");
	o.version = 7;
	is_int(bop_k8s_client_new(&c, &o), BOP_EVERSION, "an unknown options version is refused");
	o.version = BOP_K8S_CLIENT_OPTIONS_VERSION;
	o.kubeconfig = "/nonexistent/kubeconfig";
	is_int(bop_k8s_client_new(&c, &o), BOP_ENOTFOUND, "a missing kubeconfig is BOP_ENOTFOUND");
	ok(has(bop_error_last(), "/nonexistent/kubeconfig"), "the message names it: %s",
		bop_error_last());
	is_str(bop_k8s_client_namespace(client), "default", "the context's namespace");
	bop_k8s_client_free(NULL);
}

static void test_create_get(void)
{
	const char *body = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
		"\"metadata\":{\"name\":\"cm1\"},\"data\":{\"a\":\"1\"}}";
	char *resp = NULL;
	long status = 0;

	is_int(req(BOP_K8S_CREATE, cms, body, NULL, &status, &resp), 0, "create a ConfigMap");
	is_int(status, 201, "HTTP 201");
	is_str(jget(resp, "metadata.namespace"), ns, "the answer is the object, in the namespace");
	bop_free(resp);
	resp = NULL;
	is_int(req(BOP_K8S_GET, cm1, NULL, NULL, &status, &resp), 0, "get it");
	is_str(jget(resp, "data.a"), "1", "with its data");
	bop_free(resp);
	resp = NULL;
	is_int(req(BOP_K8S_CREATE, cms, body, NULL, &status, &resp), BOP_ECONFLICT,
		"creating it again is BOP_ECONFLICT");
	is_int(status, 409, "HTTP 409");
	is_str(jget(resp, "reason"), "AlreadyExists", "the Status body is handed back too");
	ok(has(bop_error_last(), "already exists"), "the message is the server's: %s",
		bop_error_last());
	bop_free(resp);
	resp = NULL;
	is_int(req(BOP_K8S_GET, "/healthz", NULL, NULL, &status, &resp), 0, "GET /healthz");
	is_str(resp, "ok", "a body that is not JSON comes back as it is");
	bop_free(resp);
}

static void test_patch_apply(void)
{
	const char *applied = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
		"\"metadata\":{\"name\":\"cm1\"},\"data\":{\"c\":\"3\"}}";
	char *resp = NULL;
	long status;

	is_int(req(BOP_K8S_PATCH, cm1, "{\"data\":{\"b\":\"2\"}}", NULL, &status, &resp), 0,
		"merge-patch it");
	ok(!strcmp(jget(resp, "data.a"), "1") && !strcmp(jget(resp, "data.b"), "2"),
		"the patch added a key and kept the other");
	bop_free(resp);
	resp = NULL;
	is_int(req(BOP_K8S_APPLY, cm1, applied, NULL, &status, NULL), BOP_EINVAL,
		"apply without a field manager is BOP_EINVAL");
	is_int(req(BOP_K8S_APPLY, cm1, applied, "bop-test", &status, &resp), 0,
		"server-side apply with a field manager");
	is_str(jget(resp, "data.c"), "3", "the applied key is there");
	ok(has(resp, "\"manager\":\"bop-test\""), "the manager is recorded");
	bop_free(resp);
	resp = NULL;
	is_int(req(BOP_K8S_APPLY, cm1, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
		"\"metadata\":{\"name\":\"cm1\"},\"data\":{\"c\":\"other\"}}", "other-manager",
		&status, &resp), 0, "another manager's apply of the same field is forced");
	is_str(jget(resp, "data.c"), "other", "and takes the field over");
	bop_free(resp);
	is_int(req(BOP_K8S_PATCH, cm1, "{\"data\":{\"x\":5}}", NULL, &status, NULL), BOP_EINVAL,
		"a patch the server finds invalid is BOP_EINVAL");
	is_int(status, 422, "HTTP 422");
	is_int(req(BOP_K8S_PATCH, cm1, "{not json", NULL, &status, NULL), BOP_EINVAL,
		"a body that is not JSON is BOP_EINVAL");
	is_int(status, 0, "found before anything is sent");
	ok(has(bop_error_last(), "not valid JSON"), "the message says so: %s", bop_error_last());
}

static void test_update_delete(void)
{
	char *resp = NULL, body[512];
	long status;

	snprintf(body, sizeof(body), "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":"
		"{\"name\":\"cm1\",\"namespace\":\"%s\",\"resourceVersion\":\"1\"},\"data\":{}}", ns);
	is_int(req(BOP_K8S_UPDATE, cm1, body, NULL, &status, NULL), BOP_ECONFLICT,
		"an update with a stale resourceVersion is BOP_ECONFLICT");
	ok(has(bop_error_last(), "modified"), "the message says why: %s", bop_error_last());
	snprintf(body, sizeof(body), "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":"
		"{\"name\":\"cm1\",\"namespace\":\"%s\"},\"data\":{\"u\":\"1\"}}", ns);
	is_int(req(BOP_K8S_UPDATE, cm1, body, NULL, &status, &resp), 0, "an update without one");
	is_str(jget(resp, "data.u"), "1", "replaces the data");
	bop_free(resp);
	is_int(req(BOP_K8S_DELETE, cm1, NULL, NULL, &status, NULL), 0, "delete it");
	is_int(req(BOP_K8S_GET, cm1, NULL, NULL, &status, &resp), BOP_ENOTFOUND,
		"then get is BOP_ENOTFOUND");
	is_int(status, 404, "HTTP 404");
	ok(has(bop_error_last(), "\"cm1\" not found"), "in the server's words: %s",
		bop_error_last());
	bop_free(resp);
	is_int(req(BOP_K8S_CREATE, cms, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
		"\"metadata\":{\"name\":\"Bad_Name\"}}", NULL, &status, NULL), BOP_EINVAL,
		"an invalid name is BOP_EINVAL");
	is_int(req((bop_k8s_verb_t)42, cm1, NULL, NULL, &status, NULL), BOP_EINVAL,
		"an unknown verb is BOP_EINVAL");
}

/* The Events about `name` in `in_ns`: their count, and the first in *first (malloc'd). */
static int events_about(const char *in_ns, const char *name, char **first)
{
	char path[400], *resp = NULL;
	json_object *list, *items;
	int n = 0;

	*first = NULL;
	snprintf(path, sizeof(path),
		"/api/v1/namespaces/%s/events?fieldSelector=involvedObject.name%%3D%s", in_ns, name);
	if (req(BOP_K8S_GET, path, NULL, NULL, NULL, &resp) < 0)
		return -1;
	list = json_tokener_parse(resp);
	if (list && json_object_object_get_ex(list, "items", &items) &&
	    json_object_is_type(items, json_type_array)) {
		n = (int)json_object_array_length(items);
		if (n)
			*first = strdup(json_object_to_json_string_ext(
				json_object_array_get_idx(items, 0), JSON_C_TO_STRING_PLAIN));
	}
	json_object_put(list);
	bop_free(resp);
	return n;
}

static void test_events(void)
{
	bop_k8s_recorder_t *rec = NULL;
	char *obj = NULL, *ev = NULL, *ev2 = NULL, long_msg[3000], path[300];
	const char *cm = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
		"\"metadata\":{\"name\":\"evt\"},\"data\":{\"a\":\"1\"}}";

	if (req(BOP_K8S_CREATE, cms, cm, NULL, NULL, &obj) < 0 ||
	    bop_k8s_recorder_new(&rec, client, "bop-test-controller") < 0) {
		ok(0, "a ConfigMap and a recorder: %s", bop_error_last());
		return;
	}
	is_int(bop_k8s_event(rec, obj, "Normal", "Synced", "the object was synced"), 0,
		"record an Event");
	is_int(events_about(ns, "evt", &ev), 1, "one Event about the object, in its namespace");
	is_str(jget(ev, "involvedObject.kind"), "ConfigMap", "involvedObject.kind");
	is_str(jget(ev, "involvedObject.apiVersion"), "v1", "involvedObject.apiVersion");
	is_str(jget(ev, "involvedObject.uid"), jget(obj, "metadata.uid"), "involvedObject.uid");
	is_str(jget(ev, "involvedObject.namespace"), ns, "involvedObject.namespace");
	is_str(jget(ev, "reason"), "Synced", "reason");
	is_str(jget(ev, "message"), "the object was synced", "message");
	is_str(jget(ev, "type"), "Normal", "type");
	is_str(jget(ev, "source.component"), "bop-test-controller", "source.component");
	is_str(jget(ev, "count"), "1", "count 1");
	ok(!strncmp(jget(ev, "metadata.name"), "evt.", 4), "named <object>.<suffix>: %s",
		jget(ev, "metadata.name"));
	ok(jget(ev, "firstTimestamp")[0] && !strcmp(jget(ev, "firstTimestamp"),
		jget(ev, "lastTimestamp")), "first and last timestamps are set");
	sleep(1);
	is_int(bop_k8s_event(rec, obj, "Normal", "Synced", "the object was synced"), 0,
		"record the same Event again");
	is_int(events_about(ns, "evt", &ev2), 1, "still one Event");
	is_str(jget(ev2, "metadata.name"), jget(ev, "metadata.name"), "the same one");
	is_str(jget(ev2, "count"), "2", "with count 2");
	ok(strcmp(jget(ev2, "lastTimestamp"), jget(ev2, "firstTimestamp")) > 0,
		"and a later lastTimestamp");
	free(ev);
	free(ev2);

	memset(long_msg, 'm', sizeof(long_msg) - 1);
	long_msg[sizeof(long_msg) - 1] = '\0';
	is_int(bop_k8s_event(rec, obj, "Warning", "Failed", long_msg), 0,
		"a Warning with a 3000-byte message");
	is_int(events_about(ns, "evt", &ev), 2, "is another Event");
	bop_free(obj);
	obj = NULL;
	is_int(bop_k8s_event(rec, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":"
		"{\"name\":\"evt\"}}", "Bogus", "X", "y"), BOP_EINVAL, "an unknown type is BOP_EINVAL");
	is_int(bop_k8s_event(rec, "{\"kind\":\"ConfigMap\"}", "Normal", "X", "y"), BOP_EINVAL,
		"an object without a name is BOP_EINVAL");
	free(ev);

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s", ns);
	if (req(BOP_K8S_GET, path, NULL, NULL, NULL, &obj) == 0) {
		is_int(bop_k8s_event(rec, obj, "Normal", "Checked", "a cluster-scoped object"), 0,
			"an Event about a cluster-scoped object (the namespace)");
		is_int(events_about("default", ns, &ev), 1, "is in \"default\"");
		is_str(jget(ev, "involvedObject.kind"), "Namespace", "about the namespace");
		snprintf(path, sizeof(path), "/api/v1/namespaces/default/events/%s",
			jget(ev, "metadata.name"));
		is_int(req(BOP_K8S_DELETE, path, NULL, NULL, NULL, NULL), 0,
			"(remove that Event from default)");
		free(ev);
	}
	bop_free(obj);
	bop_k8s_recorder_free(rec);
}

static void test_event_message_cut(void)
{
	char *ev = NULL, path[300], *resp = NULL;
	json_object *list, *items;
	size_t longest = 0;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/events", ns);
	if (req(BOP_K8S_GET, path, NULL, NULL, NULL, &resp) < 0) {
		ok(0, "list Events: %s", bop_error_last());
		return;
	}
	list = json_tokener_parse(resp);
	if (list && json_object_object_get_ex(list, "items", &items))
		for (size_t i = 0; i < json_object_array_length(items); i++) {
			json_object *m;

			if (json_object_object_get_ex(json_object_array_get_idx(items, i), "message",
			    &m) && (size_t)json_object_get_string_len(m) > longest)
				longest = (size_t)json_object_get_string_len(m);
		}
	is_int(longest, 1024, "the long message was cut to 1024 bytes");
	json_object_put(list);
	bop_free(resp);
	free(ev);
}

int main(void)
{
	const char *kubeconfig = test_kubeconfig();

	client = test_client(kubeconfig);
	test_namespace_create(client, "bop-pub", ns, sizeof(ns));
	snprintf(cms, sizeof(cms), "/api/v1/namespaces/%s/configmaps", ns);
	snprintf(cm1, sizeof(cm1), "%s/cm1", cms);
	test_options();
	test_create_get();
	test_patch_apply();
	test_update_delete();
	test_events();
	test_event_message_cut();
	is_int(test_namespace_delete(client, ns), 0, "delete the namespace");
	bop_k8s_client_free(client);
	return done_testing();
}
