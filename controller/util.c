/* JSON helpers and the reference index of backupop-controller. */
#include "ctl.h"

#include <stdlib.h>
#include <string.h>

json_object *jget(json_object *o, const char *path)
{
	char part[128];
	const char *p = path;

	while (o && *p) {
		size_t n = strcspn(p, ".");
		json_object *v;

		if (n >= sizeof(part))
			return NULL;
		memcpy(part, p, n);
		part[n] = '\0';
		if (!json_object_is_type(o, json_type_object) ||
		    !json_object_object_get_ex(o, part, &v))
			return NULL;
		o = v;
		p += n;
		if (*p == '.')
			p++;
	}
	return o;
}

json_object *ctl_object_head(const char *api_version, const char *kind, const char *ns,
	const char *name, json_object *labels, json_object *annotations)
{
	json_object *o = json_object_new_object(), *meta = json_object_new_object();

	json_object_object_add(o, "apiVersion", json_object_new_string(api_version));
	json_object_object_add(o, "kind", json_object_new_string(kind));
	json_object_object_add(meta, "name", json_object_new_string(name));
	json_object_object_add(meta, "namespace", json_object_new_string(ns));
	if (labels)
		json_object_object_add(meta, "labels", labels);
	if (annotations)
		json_object_object_add(meta, "annotations", annotations);
	json_object_object_add(o, "metadata", meta);
	return o;
}

void ctl_owner_ref(json_object *o, const char *api_version, const char *kind, const char *name,
	const char *uid)
{
	json_object *meta = jget(o, "metadata"), *owners = jget(meta, "ownerReferences");
	json_object *ref = json_object_new_object();

	json_object_object_add(ref, "apiVersion", json_object_new_string(api_version));
	json_object_object_add(ref, "kind", json_object_new_string(kind));
	json_object_object_add(ref, "name", json_object_new_string(name ? name : ""));
	json_object_object_add(ref, "uid", json_object_new_string(uid ? uid : ""));
	if (!owners) {
		owners = json_object_new_array();
		json_object_object_add(meta, "ownerReferences", owners);
	}
	json_object_array_add(owners, ref);
}

const char *js(json_object *o, const char *path)
{
	json_object *v = jget(o, path);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

int64_t jint(json_object *o, const char *path, int64_t dflt)
{
	json_object *v = jget(o, path);

	return v && (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)) ?
		json_object_get_int64(v) : dflt;
}

const char *jannotation(json_object *o, const char *name)
{
	json_object *a = jget(o, "metadata.annotations"), *v;

	if (!a || !json_object_is_type(a, json_type_object) ||
	    !json_object_object_get_ex(a, name, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

json_object *jparse(const char *text)
{
	json_object *o;

	if (!text)
		return NULL;
	o = json_tokener_parse(text);
	if (o && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

bool ctl_has_finalizer(json_object *o)
{
	json_object *fin = jget(o, "metadata.finalizers");

	for (size_t i = 0; fin && i < json_object_array_length(fin); i++)
		if (!strcmp(json_object_get_string(json_object_array_get_idx(fin, i)), CTL_FINALIZER))
			return true;
	return false;
}

int ctl_set_finalizer(ctl_t *c, int w, json_object *o, const char *path, bool add)
{
	json_object *fin = jget(o, "metadata.finalizers");
	json_object *patch = json_object_new_object(), *meta = json_object_new_object();
	json_object *list = json_object_new_array();
	int ret;

	for (size_t i = 0; fin && i < json_object_array_length(fin); i++) {
		const char *f = json_object_get_string(json_object_array_get_idx(fin, i));

		if (f && strcmp(f, CTL_FINALIZER))
			json_object_array_add(list, json_object_new_string(f));
	}
	if (add)
		json_object_array_add(list, json_object_new_string(CTL_FINALIZER));
	json_object_object_add(meta, "finalizers", list);
	/* optimistic concurrency: the patch fails with 409 if someone changed the list */
	json_object_object_add(meta, "resourceVersion",
		json_object_new_string(js(o, "metadata.resourceVersion")));
	json_object_object_add(patch, "metadata", meta);
	ret = bop_k8s_request(c->wclient[w], NULL, NULL, BOP_K8S_PATCH, path,
		json_object_to_json_string_ext(patch, JSON_C_TO_STRING_PLAIN), NULL);
	json_object_put(patch);
	return ret == BOP_ENOTFOUND ? 0 : ret;
}

/* ---- index: pairs (ref, key) chained in two hash tables, by ref and by key ---- */

#define IX_BUCKETS 16384u

typedef struct ix_pair {
	char *ref;
	char *key;
	struct ix_pair *next_ref;
	struct ix_pair *next_key;
} ix_pair_t;

struct ctl_index {
	ix_pair_t *by_ref[IX_BUCKETS];
	ix_pair_t *by_key[IX_BUCKETS];
};

static unsigned int ix_hash(const char *s)
{
	uint32_t h = 2166136261u;       /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % IX_BUCKETS;
}

ctl_index_t *ctl_index_new(void)
{
	return calloc(1, sizeof(ctl_index_t));
}

static void ix_pair_free(ix_pair_t *p)
{
	free(p->ref);
	free(p->key);
	free(p);
}

void ctl_index_remove(ctl_index_t *ix, const char *key)
{
	ix_pair_t **pp = &ix->by_key[ix_hash(key)];

	while (*pp) {
		ix_pair_t *p = *pp;
		ix_pair_t **rp;

		if (strcmp(p->key, key)) {
			pp = &p->next_key;
			continue;
		}
		*pp = p->next_key;
		for (rp = &ix->by_ref[ix_hash(p->ref)]; *rp != p; rp = &(*rp)->next_ref)
			;
		*rp = p->next_ref;
		ix_pair_free(p);
	}
}

void ctl_index_free(ctl_index_t *ix)
{
	if (!ix)
		return;
	for (unsigned int i = 0; i < IX_BUCKETS; i++) {
		while (ix->by_key[i]) {
			ix_pair_t *p = ix->by_key[i];

			ix->by_key[i] = p->next_key;
			ix_pair_free(p);
		}
	}
	free(ix);
}

void ctl_index_set(ctl_index_t *ix, const char *key, const char *const *refs)
{
	unsigned int hk = ix_hash(key);

	ctl_index_remove(ix, key);
	for (size_t i = 0; refs && refs[i]; i++) {
		ix_pair_t *p = calloc(1, sizeof(*p));
		unsigned int hr = ix_hash(refs[i]);

		if (!p || !(p->ref = strdup(refs[i])) || !(p->key = strdup(key))) {
			if (p)
				ix_pair_free(p);
			return;
		}
		p->next_key = ix->by_key[hk];
		ix->by_key[hk] = p;
		p->next_ref = ix->by_ref[hr];
		ix->by_ref[hr] = p;
	}
}

void ctl_index_each(ctl_index_t *ix, const char *ref, void (*fn)(void *ud, const char *key), void *ud)
{
	for (ix_pair_t *p = ix->by_ref[ix_hash(ref)]; p; p = p->next_ref)
		if (!strcmp(p->ref, ref))
			fn(ud, p->key);
}
