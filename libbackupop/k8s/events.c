/*
 * An Events recorder: core/v1 Events named "<object>.<random suffix>" in the object's
 * namespace ("default" for cluster-scoped objects), like client-go's recorder. Repeats of
 * one (object, type, reason, message) within 10 minutes PATCH the existing Event's count
 * and lastTimestamp instead of creating another; what was recorded is remembered in a
 * bounded cache (the least recently used entry makes room).
 */
#include "k8s/k8s.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MESSAGE_MAX 1024
#define REPEAT_WINDOW_MS (10 * 60 * 1000)
#define CACHE_MAX 4096
#define NAME_MAX_LEN 253

typedef struct seen_event {
	uint64_t hash;
	char *key;                      /* object, type, reason, message */
	char *ns;
	char *name;                     /* of the Event */
	int count;
	int64_t last_ms;
} seen_event_t;

struct bop_k8s_recorder {
	bop__k8s_client_t *client;
	char *component;
	pthread_mutex_t lock;
	seen_event_t *seen;
	size_t nseen;
};

/* What an Event says about its object. */
typedef struct involved {
	const char *api_version, *kind, *ns, *name, *uid, *rv;
} involved_t;

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return h;
}

/* The length of `msg` cut to `max` bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *msg, size_t max)
{
	size_t n = strlen(msg);

	if (n <= max)
		return n;
	n = max;
	while (n > 0 && ((unsigned char)msg[n] & 0xC0) == 0x80)
		n--;
	return n;
}

BOP_EXTERN(int) bop_k8s_recorder_new(bop_k8s_recorder_t **out, bop_k8s_client_t *client,
	const char *component)
{
	bop_k8s_recorder_t *r;

	if (!out || !client || !component || !*component)
		return bop__error(BOP_EINVAL, "an Events recorder needs a client and a component name");
	*out = NULL;
	r = bop__calloc(1, sizeof(*r));
	if (!r)
		return BOP_ENOMEM;
	r->client = client->priv;
	r->component = bop__strdup(component);
	r->seen = bop__calloc(CACHE_MAX, sizeof(*r->seen));
	if (!r->component || !r->seen) {
		free(r->component);
		free(r->seen);
		free(r);
		return BOP_ENOMEM;
	}
	pthread_mutex_init(&r->lock, NULL);
	*out = r;
	return 0;
}

static void seen_clear(seen_event_t *s)
{
	free(s->key);
	free(s->ns);
	free(s->name);
	memset(s, 0, sizeof(*s));
}

BOP_EXTERN(void) bop_k8s_recorder_free(bop_k8s_recorder_t *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nseen; i++)
		seen_clear(&r->seen[i]);
	free(r->seen);
	free(r->component);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static seen_event_t *seen_find(bop_k8s_recorder_t *r, const char *key, uint64_t h)
{
	for (size_t i = 0; i < r->nseen; i++)
		if (r->seen[i].key && r->seen[i].hash == h && !strcmp(r->seen[i].key, key))
			return &r->seen[i];
	return NULL;
}

/* A free slot: a new one, or the least recently used. */
static seen_event_t *seen_slot(bop_k8s_recorder_t *r)
{
	seen_event_t *oldest;

	if (r->nseen < CACHE_MAX)
		return &r->seen[r->nseen++];
	oldest = &r->seen[0];
	for (size_t i = 1; i < r->nseen; i++)
		if (r->seen[i].last_ms < oldest->last_ms)
			oldest = &r->seen[i];
	seen_clear(oldest);
	return oldest;
}

static int parse_involved(json_object *obj, involved_t *inv)
{
	json_object *md = NULL;

	memset(inv, 0, sizeof(*inv));
	if (!json_object_is_type(obj, json_type_object) ||
	    !json_object_object_get_ex(obj, "metadata", &md))
		return bop__error(BOP_EINVAL, "an Event needs the object it is about (with metadata)");
	inv->api_version = bop__k8s_json_str(obj, "apiVersion");
	inv->kind = bop__k8s_json_str(obj, "kind");
	inv->ns = bop__k8s_json_str(md, "namespace");
	inv->name = bop__k8s_json_str(md, "name");
	inv->uid = bop__k8s_json_str(md, "uid");
	inv->rv = bop__k8s_json_str(md, "resourceVersion");
	if (!inv->name || !*inv->name || !inv->kind || !*inv->kind)
		return bop__error(BOP_EINVAL, "an Event needs the kind and metadata.name of its object");
	if (inv->ns && !*inv->ns)
		inv->ns = NULL;
	return 0;
}

static void add_str(json_object *o, const char *key, const char *value)
{
	if (value)
		json_object_object_add(o, key, json_object_new_string(value));
}

/* "<object name>.<16 hex digits>", the object's part cut so the name stays valid. */
static char *event_name(const char *object_name)
{
	unsigned char rnd[8];
	char hex[17];
	size_t n = strlen(object_name);

	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		bop__error(BOP_ERROR, "cannot get random bytes for an Event name");
		return NULL;
	}
	bop__hex(hex, rnd, sizeof(rnd));
	if (n > NAME_MAX_LEN - 17)
		n = NAME_MAX_LEN - 17;
	while (n > 0 && (object_name[n - 1] == '-' || object_name[n - 1] == '.'))
		n--;
	return bop__sprintf("%.*s.%s", (int)n, object_name, hex);
}

static json_object *event_body(bop_k8s_recorder_t *r, const involved_t *inv, const char *ns,
	const char *name, const char *type, const char *reason, const char *message)
{
	json_object *ev = json_object_new_object(), *md = json_object_new_object();
	json_object *io = json_object_new_object(), *src = json_object_new_object();
	char now[40];

	if (!ev || !md || !io || !src) {
		json_object_put(ev);
		json_object_put(md);
		json_object_put(io);
		json_object_put(src);
		return NULL;
	}
	bop__k8s_time_now(now, sizeof(now), false);
	add_str(ev, "apiVersion", "v1");
	add_str(ev, "kind", "Event");
	add_str(md, "name", name);
	add_str(md, "namespace", ns);
	json_object_object_add(ev, "metadata", md);
	add_str(io, "apiVersion", inv->api_version);
	add_str(io, "kind", inv->kind);
	add_str(io, "namespace", inv->ns);
	add_str(io, "name", inv->name);
	add_str(io, "uid", inv->uid);
	add_str(io, "resourceVersion", inv->rv);
	json_object_object_add(ev, "involvedObject", io);
	add_str(ev, "reason", reason);
	add_str(ev, "message", message);
	add_str(ev, "type", type);
	add_str(src, "component", r->component);
	json_object_object_add(ev, "source", src);
	add_str(ev, "firstTimestamp", now);
	add_str(ev, "lastTimestamp", now);
	json_object_object_add(ev, "count", json_object_new_int(1));
	return ev;
}

static int create_event(bop_k8s_recorder_t *r, const involved_t *inv, const char *key,
	uint64_t h, const char *type, const char *reason, const char *message)
{
	const char *ns = inv->ns ? inv->ns : "default";
	char *name = event_name(inv->name), *path = NULL;
	json_object *ev = NULL;
	seen_event_t *s;
	int ret;

	path = bop__sprintf("/api/v1/namespaces/%s/events", ns);
	if (name && path)
		ev = event_body(r, inv, ns, name, type, reason, message);
	ret = ev ? bop__k8s_do(r->client, BOP__K8S_POST, path, ev, NULL, NULL) : BOP_ENOMEM;
	json_object_put(ev);
	free(path);
	if (ret < 0) {
		free(name);
		return bop__error_wrap("recording Event %s about %s %s", reason, inv->kind, inv->name);
	}
	s = seen_slot(r);
	s->hash = h;
	s->key = bop__strdup(key);
	s->ns = bop__strdup(ns);
	s->name = name;
	s->count = 1;
	s->last_ms = bop__now_ms();
	if (!s->key || !s->ns) {
		/* forgotten: the next repeat creates a new Event, which is fine */
		seen_clear(s);
		s->last_ms = 0;
	}
	return 0;
}

/* Counts a repeat on the existing Event; BOP_ENOTFOUND when it is gone. */
static int patch_event(bop_k8s_recorder_t *r, seen_event_t *s)
{
	json_object *patch = json_object_new_object();
	char now[40], *path;
	int ret;

	path = bop__sprintf("/api/v1/namespaces/%s/events/%s", s->ns, s->name);
	if (!patch || !path) {
		json_object_put(patch);
		free(path);
		return BOP_ENOMEM;
	}
	bop__k8s_time_now(now, sizeof(now), false);
	json_object_object_add(patch, "count", json_object_new_int(s->count + 1));
	json_object_object_add(patch, "lastTimestamp", json_object_new_string(now));
	ret = bop__k8s_do(r->client, BOP__K8S_PATCH_MERGE, path, patch, NULL, NULL);
	json_object_put(patch);
	free(path);
	if (ret == 0) {
		s->count++;
		s->last_ms = bop__now_ms();
	}
	return ret;
}

static char *aggregation_key(const involved_t *inv, const char *type, const char *reason,
	const char *message)
{
	return bop__sprintf("%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s", inv->kind,
		inv->ns ? inv->ns : "", inv->name, inv->uid ? inv->uid : "", type, reason, message);
}

static int record(bop_k8s_recorder_t *r, const involved_t *inv, const char *type,
	const char *reason, const char *message)
{
	char *key = aggregation_key(inv, type, reason, message);
	uint64_t h;
	seen_event_t *s;
	int ret;

	if (!key)
		return BOP_ENOMEM;
	h = hash_str(key);
	pthread_mutex_lock(&r->lock);
	s = seen_find(r, key, h);
	if (s && bop__now_ms() - s->last_ms < REPEAT_WINDOW_MS) {
		ret = patch_event(r, s);
		if (ret != BOP_ENOTFOUND)
			goto out;
	}
	if (s)
		seen_clear(s); /* expired or deleted: start a new Event (slot reused later) */
	ret = create_event(r, inv, key, h, type, reason, message);
out:
	pthread_mutex_unlock(&r->lock);
	free(key);
	return ret;
}

BOP_EXTERN(int) bop_k8s_event(bop_k8s_recorder_t *r, const char *object, const char *type,
	const char *reason, const char *message)
{
	json_object *obj = NULL;
	involved_t inv;
	char *msg = NULL;
	int ret;

	if (!r || !object || !type || !reason || !*reason)
		return bop__error(BOP_EINVAL, "an Event needs a recorder, an object, a type and a reason");
	if (strcmp(type, "Normal") && strcmp(type, "Warning"))
		return bop__error(BOP_EINVAL, "an Event's type is \"Normal\" or \"Warning\", not \"%s\"",
			type);
	obj = json_tokener_parse(object);
	if (!obj)
		return bop__error(BOP_EINVAL, "the object of an Event is not JSON");
	ret = parse_involved(obj, &inv);
	if (ret == 0) {
		msg = bop__strndup(message ? message : "", utf8_cut(message ? message : "",
			MESSAGE_MAX));
		ret = msg ? record(r, &inv, type, reason, msg) : BOP_ENOMEM;
	}
	free(msg);
	json_object_put(obj);
	return ret;
}
