/* Arbitrary bytes as the body of a Kubernetes WATCH response (a stream of JSON events),
 * fed to an informer as its watch thread feeds it, in uneven pieces: every answer is 0
 * or an error code, and the cache agrees with the events the callback reported (ADDED
 * only for new keys, MODIFIED only for known ones, the cached text is the last one
 * reported, a JSON object, and only metadata when the informer keeps only metadata). */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "fuzz-common.h"
#include "k8s/k8s.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct model {
	char **keys, **texts;
	size_t n, cap;
	bool metadata_only;
} model_t;

static ssize_t model_find(const model_t *m, const char *key)
{
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->keys[i], key))
			return (ssize_t)i;
	return -1;
}

static void check_object(const model_t *m, const char *text)
{
	json_object *o = json_tokener_parse(text);

	if (!o || !json_object_is_type(o, json_type_object))
		abort();
	if (m->metadata_only) {
		json_object_object_foreach(o, k, v) {
			(void)v;
			if (strcmp(k, "apiVersion") && strcmp(k, "kind") && strcmp(k, "metadata"))
				abort();
		}
	}
	json_object_put(o);
}

static void on_event(bop_k8s_event_type_t type, const char *key, const char *object, void *ud)
{
	model_t *m = ud;
	ssize_t i = model_find(m, key);

	if (!key || !*key || !object)
		abort();
	check_object(m, object);
	if (type == BOP_K8S_DELETED) {
		if (i >= 0) {
			free(m->keys[i]);
			free(m->texts[i]);
			m->keys[i] = m->keys[m->n - 1];
			m->texts[i] = m->texts[m->n - 1];
			m->n--;
		}
		return;
	}
	if ((type == BOP_K8S_ADDED) != (i < 0))
		abort();
	if (i >= 0) {
		free(m->texts[i]);
		m->texts[i] = strdup(object);
		return;
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 16;
		m->keys = realloc(m->keys, m->cap * sizeof(*m->keys));
		m->texts = realloc(m->texts, m->cap * sizeof(*m->texts));
		if (!m->keys || !m->texts)
			abort();
	}
	m->keys[m->n] = strdup(key);
	m->texts[m->n] = strdup(object);
	m->n++;
}

static bop_k8s_client_t *client(void)
{
	static struct bop_k8s_client pub;
	bop__k8s_config_t *cfg;

	if (pub.priv)
		return &pub;
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg || !(cfg->server = strdup("https://127.0.0.1:1")) ||
	    !(cfg->namespace = strdup("default")) || !(cfg->source = strdup("fuzz")) ||
	    bop__k8s_client_new(&pub.priv, cfg) < 0)
		abort();
	return &pub;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bop_k8s_informer_options_t o = BOP_K8S_INFORMER_OPTIONS_INIT;
	bop_k8s_informer_t *inf = NULL;
	model_t m = { 0 };
	size_t piece, pos;
	int ret = 0;

	bop_log_set_level(BOP_LOG_OFF);
	/* the input's size picks the size of the pieces the body arrives in, and whether the
	 * informer keeps only metadata (so the seeds are plain watch streams) */
	piece = 1 + size % 61;
	m.metadata_only = (size / 61) & 1;
	o.path = "/api/v1/namespaces/shop/configmaps";
	o.metadata_only = m.metadata_only;
	o.callback = on_event;
	o.payload = &m;
	if (bop_k8s_informer_new(&inf, client(), &o) < 0)
		abort();
	bop__k8s_informer_watch_begin(inf);
	for (pos = 0; pos < size && ret == 0; pos += piece) {
		size_t n = size - pos < piece ? size - pos : piece;

		ret = bop__k8s_informer_watch_data(inf, (const char *)data + pos, n);
		if (ret > 0 || (ret < 0 && !bop_error_last()))
			abort();
	}
	if (bop_k8s_informer_size(inf) != m.n)
		abort();
	for (size_t i = 0; i < m.n; i++) {
		char *text = NULL;

		if (bop_k8s_informer_get(inf, &text, m.keys[i]) != 0 || strcmp(text, m.texts[i]))
			abort();
		bop_free(text);
		free(m.keys[i]);
		free(m.texts[i]);
	}
	free(m.keys);
	free(m.texts);
	bop_k8s_informer_free(inf);
	return 0;
}
