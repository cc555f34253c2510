/*
 * The public Kubernetes client: a thin wrapper over the private client (client.c) that
 * takes and gives JSON text, plus small helpers the informer, elector and recorder share.
 */
#include "k8s/k8s.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

BOP_EXTERN(int) bop_k8s_client_options_init(bop_k8s_client_options_t *opts, unsigned int version)
{
	const bop_k8s_client_options_t defaults = BOP_K8S_CLIENT_OPTIONS_INIT;

	if (!opts)
		return bop__error(BOP_EINVAL, "bop_k8s_client_options_init: opts is NULL");
	if (BOP__VERSION_CHECK("bop_k8s_client_options_t", NULL, version, K8S_CLIENT_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	*opts = defaults;
	return 0;
}

BOP_EXTERN(int) bop_k8s_client_new(bop_k8s_client_t **out, const bop_k8s_client_options_t *opts)
{
	const bop_k8s_client_options_t defaults = BOP_K8S_CLIENT_OPTIONS_INIT;
	bop__k8s_config_t *cfg = NULL;
	bop_k8s_client_t *client;
	int ret;

	if (!out)
		return bop__error(BOP_EINVAL, "bop_k8s_client_new: out is NULL");
	*out = NULL;
	if (!opts)
		opts = &defaults;
	if (BOP__VERSION_CHECK("bop_k8s_client_options_t", NULL, opts->version,
	    K8S_CLIENT_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	client = bop__calloc(1, sizeof(*client));
	if (!client)
		return BOP_ENOMEM;
	ret = bop__k8s_config_load(&cfg, opts->kubeconfig, opts->context);
	if (ret == 0)
		ret = bop__k8s_client_new(&client->priv, cfg);
	if (ret < 0) {
		free(client);
		return ret;
	}
	if (opts->timeout_seconds)
		bop__k8s_client_set_timeout(client->priv, (long)opts->timeout_seconds);
	*out = client;
	return 0;
}

BOP_EXTERN(void) bop_k8s_client_free(bop_k8s_client_t *client)
{
	if (!client)
		return;
	bop__k8s_client_free(client->priv);
	free(client);
}

BOP_EXTERN(const char *) bop_k8s_client_namespace(const bop_k8s_client_t *client)
{
	const char *ns = client ? bop__k8s_client_config(client->priv)->namespace : NULL;

	return ns && *ns ? ns : "default";
}

static int verb_method(bop_k8s_verb_t verb, bop__k8s_method_t *m)
{
	switch (verb) {
	case BOP_K8S_GET:
		*m = BOP__K8S_GET;
		return 0;
	case BOP_K8S_CREATE:
		*m = BOP__K8S_POST;
		return 0;
	case BOP_K8S_UPDATE:
		*m = BOP__K8S_PUT;
		return 0;
	case BOP_K8S_PATCH:
		*m = BOP__K8S_PATCH_MERGE;
		return 0;
	case BOP_K8S_APPLY:
		*m = BOP__K8S_PATCH_APPLY;
		return 0;
	case BOP_K8S_DELETE:
		*m = BOP__K8S_DELETE;
		return 0;
	}
	return bop__error(BOP_EINVAL, "unknown Kubernetes request verb %d", (int)verb);
}

/* Bodies are checked here: the API server answers some malformed ones with 500. */
static int check_body(const char *body, const char *path)
{
	json_tokener *tok;
	json_object *o;
	int ret = 0;

	if (!body)
		return 0;
	tok = json_tokener_new();
	if (!tok)
		return bop__error_oom();
	o = json_tokener_parse_ex(tok, body, -1);
	if (!o || json_tokener_get_error(tok) != json_tokener_success ||
	    body[json_tokener_get_parse_end(tok) + strspn(body + json_tokener_get_parse_end(tok),
		" \t\r\n")])
		ret = bop__error(BOP_EINVAL, "the request body for %s is not valid JSON", path);
	json_object_put(o);
	json_tokener_free(tok);
	return ret;
}

BOP_EXTERN(int) bop_k8s_request(bop_k8s_client_t *client, long *status, char **response,
	bop_k8s_verb_t verb, const char *path, const char *body, const char *field_manager)
{
	bop__k8s_request_t req = { .path = path, .body_text = body,
		.field_manager = field_manager, .want_text = response != NULL };
	bop__k8s_response_t resp;
	int ret;

	if (status)
		*status = 0;
	if (response)
		*response = NULL;
	if (!client || !path)
		return bop__error(BOP_EINVAL, "bop_k8s_request: client and path are required");
	ret = verb_method(verb, &req.method);
	if (ret == 0)
		ret = check_body(body, path);
	if (ret < 0)
		return ret;
	req.force = req.method == BOP__K8S_PATCH_APPLY;
	ret = bop__k8s_request(client->priv, &req, &resp);
	if (status)
		*status = resp.status;
	if (response && resp.text && resp.text_len) {
		*response = resp.text;
		resp.text = NULL;
	}
	bop__k8s_response_clear(&resp);
	return ret;
}

/* ---- helpers ---- */

const char *bop__k8s_json_str(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

char *bop__k8s_object_key(json_object *obj)
{
	json_object *md = NULL;
	const char *ns, *name;

	if (!obj || !json_object_object_get_ex(obj, "metadata", &md) ||
	    !(name = bop__k8s_json_str(md, "name")) || !*name) {
		bop__error(BOP_EFORMAT, "the object has no metadata.name");
		return NULL;
	}
	ns = bop__k8s_json_str(md, "namespace");
	if (ns && *ns)
		return bop__sprintf("%s/%s", ns, name);
	return bop__strdup(name);
}

void bop__k8s_time_now(char *out, size_t size, bool micro)
{
	struct timespec ts;
	struct tm tm;
	char base[24];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	if (micro)
		snprintf(out, size, "%s.%06ldZ", base, ts.tv_nsec / 1000);
	else
		snprintf(out, size, "%sZ", base);
}
