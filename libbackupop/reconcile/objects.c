/*
 * The desired runner objects: the config Secret, the StatefulSet and the Service, as JSON
 * with a fixed member order (so their hashes only change when they do).
 *
 * The pod runs as uid/gid 65532 with a read-only root file system; fsGroup makes the
 * Secret's files (mode 0400) readable through their group. The StatefulSet uses the
 * Parallel pod management policy: with one replica nothing else changes, but an update
 * then also replaces a pod that never became ready (OrderedReady waits for it forever).
 * The engine's pod_customize() patch is an RFC 7386 merge patch onto the pod spec
 * (lists, e.g. containers, are replaced whole).
 *
 * With spec.runner.tools the pod also gets the user's tools container, where the exec
 * engine's commands run: an init container from the runner image copies the static
 * backupop-exec-agent into an emptyDir shared by all three, the tools container's command
 * is that agent listening on a socket there (serving the runner's uid only), and the
 * runner config points the exec engine at the socket (spec.c).
 */
#include "rec.h"
#include "util/base64.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUNNER_UID 65532
#define SECRET_MODE 0400
#define HASH_ANNOTATION "backupop.io/desired-hash"
#define CONFIG_HASH_ANNOTATION "backupop.io/config-hash"

/* An object from key/value pairs ending with a NULL key; takes the values. NULL (with
 * BOP_ENOMEM set) when any value is NULL. */
static json_object *obj(const char *key, ...)
{
	json_object *o = json_object_new_object();
	bool ok = o != NULL;
	va_list ap;

	va_start(ap, key);
	for (const char *k = key; k; k = va_arg(ap, const char *)) {
		json_object *v = va_arg(ap, json_object *);

		if (!ok || !v || json_object_object_add(o, k, v) < 0) {
			json_object_put(v);
			ok = false;
		}
	}
	va_end(ap);
	if (!ok) {
		json_object_put(o);
		bop__error_oom();
		return NULL;
	}
	return o;
}

/* An array of `n` values; takes them. */
static json_object *arr(size_t n, ...)
{
	json_object *a = json_object_new_array();
	bool ok = a != NULL;
	va_list ap;

	va_start(ap, n);
	for (size_t i = 0; i < n; i++) {
		json_object *v = va_arg(ap, json_object *);

		if (!ok || !v || json_object_array_add(a, v) < 0) {
			json_object_put(v);
			ok = false;
		}
	}
	va_end(ap);
	if (!ok) {
		json_object_put(a);
		bop__error_oom();
		return NULL;
	}
	return a;
}

static json_object *str(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static json_object *num(int64_t v)
{
	return json_object_new_int64(v);
}

static json_object *yes(bool v)
{
	return json_object_new_boolean(v);
}

/* Appends the items of `more` (copies) to array `to`. */
static int extend(json_object *to, json_object *more)
{
	for (size_t i = 0; to && more && i < json_object_array_length(more); i++) {
		json_object *c = bop__rec_sorted_copy(json_object_array_get_idx(more, i));

		if (!c || json_object_array_add(to, c) < 0) {
			json_object_put(c);
			return bop__error_oom();
		}
	}
	return to ? 0 : BOP_ENOMEM;
}

/* ---- labels ---- */

static json_object *labels(const bop_reconcile_t *r, bool selector_only)
{
	char *ns = bop__rec_label_value(r->ns), *name = bop__rec_label_value(r->name);
	json_object *l = NULL;

	if (ns && name && selector_only)
		l = obj("app.kubernetes.io/name", str("backupop-runner"),
			"backupop.io/schedule-namespace", str(ns),
			"backupop.io/schedule-name", str(name), NULL);
	else if (ns && name)
		l = obj("app.kubernetes.io/name", str("backupop-runner"),
			"app.kubernetes.io/managed-by", str("backupop-controller"),
			"backupop.io/schedule-namespace", str(ns),
			"backupop.io/schedule-name", str(name), NULL);
	free(ns);
	free(name);
	return l;
}

static json_object *metadata(const bop_reconcile_t *r)
{
	return obj("name", str(r->object_name), "namespace", str(r->target_ns),
		"labels", labels(r, false), "annotations", json_object_new_object(), NULL);
}

/* ---- the pod ---- */

static json_object *probe(const char *path, int initial, int period, int failures)
{
	return obj("httpGet", obj("path", str(path), "port", str("api"), "scheme", str("HTTP"),
		NULL), "initialDelaySeconds", num(initial), "periodSeconds", num(period),
		"timeoutSeconds", num(5), "failureThreshold", num(failures), NULL);
}

static json_object *resources(const bop_reconcile_t *r)
{
	json_object *res = bop__rec_get(bop__rec_get(r->spec, "runner"), "resources");

	if (res && json_object_object_length(res))
		return bop__rec_sorted_copy(res);
	return obj("requests", obj("cpu", str("100m"), "memory", str("128Mi"), NULL),
		"limits", obj("memory", str("1Gi"), NULL), NULL);
}

static json_object *tools(const bop_reconcile_t *r)
{
	return bop__rec_get(bop__rec_get(r->spec, "runner"), "tools");
}

static json_object *tools_mount(void)
{
	return obj("name", str(BOP__REC_TOOLS_VOLUME), "mountPath", str(BOP__REC_TOOLS_DIR), NULL);
}

static json_object *restricted(void)
{
	return obj("allowPrivilegeEscalation", yes(false), "readOnlyRootFilesystem", yes(true),
		"runAsNonRoot", yes(true), "capabilities", obj("drop", arr(1, str("ALL")), NULL),
		NULL);
}

/* Copies the agent from the runner image into the shared volume (no cp, no shell). */
static json_object *agent_installer(const bop_reconcile_t *r)
{
	return obj("name", str("backupop-tools-install"), "image", str(r->image),
		"imagePullPolicy", str("IfNotPresent"),
		"command", arr(3, str(BOP__REC_AGENT_IN_IMAGE), str("--install"), str(BOP__REC_AGENT)),
		"resources", obj("requests", obj("cpu", str("10m"), "memory", str("16Mi"), NULL),
			"limits", obj("memory", str("64Mi"), NULL), NULL),
		"securityContext", restricted(),
		"volumeMounts", arr(1, tools_mount()), NULL);
}

static json_object *copy_or(json_object *v, json_object *fallback)
{
	if (v) {
		json_object_put(fallback);
		return bop__rec_sorted_copy(v);
	}
	return fallback;
}

/* No privilege escalation and no capability, whatever the schedule says; of its
 * securityContext only who the container runs as and what restricts it more (spec.c
 * refuses the rest). */
static json_object *tools_security(json_object *given)
{
	static const char *const taken[] = { "runAsUser", "runAsGroup", "runAsNonRoot",
		"readOnlyRootFilesystem", "seccompProfile", NULL };
	json_object *sc = obj("allowPrivilegeEscalation", yes(false),
		"capabilities", obj("drop", arr(1, str("ALL")), NULL), NULL);

	for (size_t i = 0; sc && taken[i]; i++) {
		json_object *v = bop__rec_get(given, taken[i]);

		if (v && bop__rec_add(sc, taken[i], bop__rec_sorted_copy(v)) < 0) {
			json_object_put(sc);
			return NULL;
		}
	}
	return sc;
}

/* The user's image running the agent; it serves the runner's uid. */
static json_object *tools_container(const bop_reconcile_t *r)
{
	json_object *t = tools(r);
	const char *policy = bop__rec_str(t, "imagePullPolicy");
	char uid[16];
	json_object *c;

	snprintf(uid, sizeof(uid), "%d", RUNNER_UID);
	c = obj("name", str("tools"), "image", str(bop__rec_str(t, "image")),
		"imagePullPolicy", str(policy ? policy : "IfNotPresent"),
		"command", arr(5, str(BOP__REC_AGENT), str("--socket"), str(BOP__REC_TOOLS_SOCKET),
			str("--allow-uid"), str(uid)),
		"resources", copy_or(bop__rec_get(t, "resources"),
			obj("requests", obj("cpu", str("100m"), "memory", str("128Mi"), NULL),
				"limits", obj("memory", str("1Gi"), NULL), NULL)),
		"securityContext", tools_security(bop__rec_get(t, "securityContext")),
		"volumeMounts", arr(1, tools_mount()), NULL);
	if (c && bop__rec_get(t, "env") &&
	    bop__rec_add(c, "env", bop__rec_sorted_copy(bop__rec_get(t, "env"))) < 0) {
		json_object_put(c);
		return NULL;
	}
	return c;
}

/* BOP_POD_NAME: the runner names its catalog lock and run records after its pod (a node's
 * pods with hostNetwork share the node's host name), backupop-runner(8). */
static json_object *pod_name_env(void)
{
	return obj("name", str("BOP_POD_NAME"), "valueFrom", obj("fieldRef", obj(
		"apiVersion", str("v1"), "fieldPath", str("metadata.name"), NULL), NULL), NULL);
}

static json_object *container(const bop_reconcile_t *r)
{
	char *config = bop__sprintf("%s/%s", BOP__REC_CONFIG_DIR, BOP__REC_CONFIG_KEY);
	json_object *mounts = arr(2,
		obj("name", str("config"), "mountPath", str(BOP__REC_CONFIG_DIR),
			"readOnly", yes(true), NULL),
		obj("name", str("tmp"), "mountPath", str("/tmp"), NULL));
	json_object *c = NULL;

	if (config && tools(r) && mounts &&
	    json_object_array_add(mounts, tools_mount()) < 0) {
		json_object_put(mounts);
		mounts = NULL;
	}
	if (config && !extend(mounts, r->mounts))
		c = obj("name", str("runner"), "image", str(r->image),
			"imagePullPolicy", str("IfNotPresent"),
			"args", arr(2, str("--config"), str(config)),
			"env", arr(1, pod_name_env()),
			"ports", arr(2, obj("name", str("api"), "containerPort", num(r->port),
				"protocol", str("TCP"), NULL), obj("name", str("metrics"),
				"containerPort", num(r->metrics_port), "protocol", str("TCP"), NULL)),
			"resources", resources(r),
			"readinessProbe", probe("/readyz", 2, 10, 3),
			"livenessProbe", probe("/healthz", 10, 20, 6),
			"securityContext", obj("allowPrivilegeEscalation", yes(false),
				"readOnlyRootFilesystem", yes(true), "runAsNonRoot", yes(true),
				"capabilities", obj("drop", arr(1, str("ALL")), NULL), NULL),
			"volumeMounts", json_object_get(mounts), NULL);
	json_object_put(mounts);
	free(config);
	return c;
}

static json_object *affinity(const bop_reconcile_t *r)
{
	json_object *sel = bop__rec_get(bop__rec_get(bop__rec_get(r->spec, "runner"), "affinity"),
		"podSelector");

	return obj("podAffinity", obj("preferredDuringSchedulingIgnoredDuringExecution", arr(1,
		obj("weight", num(100), "podAffinityTerm", obj(
			"labelSelector", obj("matchLabels", bop__rec_sorted_copy(sel), NULL),
			"namespaces", arr(1, str(r->ns)),
			"topologyKey", str("kubernetes.io/hostname"), NULL), NULL)), NULL), NULL);
}

static json_object *pull_secrets(const bop_reconcile_t *r)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; a && i < r->n_pull_secrets; i++) {
		json_object *s = obj("name", str(r->pull_secrets[i]), NULL);

		if (!s || json_object_array_add(a, s) < 0) {
			json_object_put(s);
			json_object_put(a);
			a = NULL;
		}
	}
	if (!a)
		bop__error_oom();
	return a;
}

static json_object *pod_spec(const bop_reconcile_t *r)
{
	json_object *sel = bop__rec_get(bop__rec_get(bop__rec_get(r->spec, "runner"), "affinity"),
		"podSelector");
	json_object *volumes = arr(2,
		obj("name", str("config"), "secret", obj("secretName", str(r->object_name),
			"defaultMode", num(SECRET_MODE), NULL), NULL),
		obj("name", str("tmp"), "emptyDir", json_object_new_object(), NULL));
	json_object *spec;
	int ret;

	if (extend(volumes, r->volumes) < 0 || (tools(r) && json_object_array_add(volumes,
		    obj("name", str(BOP__REC_TOOLS_VOLUME), "emptyDir", json_object_new_object(),
			    NULL)) < 0)) {
		json_object_put(volumes);
		return NULL;
	}
	spec = obj("automountServiceAccountToken", yes(false), "enableServiceLinks", yes(false),
		"terminationGracePeriodSeconds", num(60),
		"securityContext", obj("runAsNonRoot", yes(true), "runAsUser", num(RUNNER_UID),
			"runAsGroup", num(RUNNER_UID), "fsGroup", num(RUNNER_UID),
			"seccompProfile", obj("type", str("RuntimeDefault"), NULL), NULL),
		"containers", arr(1, container(r)), "volumes", volumes, NULL);
	ret = spec ? 0 : BOP_ENOMEM;
	if (!ret && tools(r)) {
		json_object *tc = tools_container(r);

		if (!tc || json_object_array_add(bop__rec_get(spec, "containers"), tc) < 0) {
			json_object_put(tc);
			ret = bop__error_oom();
		}
		if (!ret)
			ret = bop__rec_add(spec, "initContainers", arr(1, agent_installer(r)));
	}
	if (!ret && r->n_pull_secrets)
		ret = bop__rec_add(spec, "imagePullSecrets", pull_secrets(r));
	if (!ret && sel && json_object_object_length(sel))
		ret = bop__rec_add(spec, "affinity", affinity(r));
	if (!ret && r->pod_patch)
		ret = bop__rec_merge_patch(&spec, r->pod_patch);
	if (ret) {
		json_object_put(spec);
		return NULL;
	}
	return spec;
}

/* ---- hashing and finishing ---- */

/* Serializes `o` with its desired-hash annotation: the hash of `o` without it. */
static int finish(bop_reconcile_t *r, bop_reconcile_kind_t kind, json_object *o,
	const char *path)
{
	json_object *ann = bop__rec_get(bop__rec_get(o, "metadata"), "annotations");
	char hash[65], *text = bop__rec_to_string(o);
	int ret;

	if (!text)
		return BOP_ENOMEM;
	bop__rec_sha256_hex(hash, text, strlen(text));
	bop__wipe(text, strlen(text));
	free(text);
	if ((ret = bop__rec_add(ann, HASH_ANNOTATION, json_object_new_string(hash))))
		return ret;
	if (!(r->objects[kind] = bop__rec_to_string(o)) || !(r->hashes[kind] = bop__strdup(hash)) ||
	    !(r->paths[kind] = bop__strdup(path)))
		return BOP_ENOMEM;
	return 0;
}

static int secret_data(bop_reconcile_t *r, json_object **out)
{
	json_object *data = json_object_new_object();
	char *config = bop__rec_to_string(r->config);
	char *b64 = config ? bop__base64_encode_alloc(config, strlen(config)) : NULL;
	int ret = data && b64 ? bop__rec_add(data, BOP__REC_CONFIG_KEY, json_object_new_string(b64))
		: bop__error_oom();

	json_object_object_foreach(r->files, key, val) {
		const char *v = json_object_get_string(val);
		char *enc;

		if (ret)
			break;
		enc = bop__base64_encode_alloc(v, strlen(v));
		ret = enc ? bop__rec_add(data, key, json_object_new_string(enc)) : BOP_ENOMEM;
		free(enc);
	}
	if (config)
		bop__wipe(config, strlen(config));
	free(config);
	free(b64);
	if (ret) {
		json_object_put(data);
		return ret;
	}
	*out = data;
	return 0;
}

static int build_secret(bop_reconcile_t *r, json_object *data)
{
	json_object *o = obj("apiVersion", str("v1"), "kind", str("Secret"), "metadata", metadata(r),
		"type", str("Opaque"), "data", json_object_get(data), NULL);
	char *path = bop__sprintf("/api/v1/namespaces/%s/secrets/%s", r->target_ns, r->object_name);
	int ret = o && path ? finish(r, BOP_RECONCILE_SECRET, o, path) : BOP_ENOMEM;

	free(path);
	json_object_put(o);
	return ret;
}

/* SHA-256 over the Secret's data and the pod spec: everything the runner sees. */
static int config_hash(bop_reconcile_t *r, json_object *data, json_object *pod)
{
	char *d = bop__rec_to_string(data), *p = bop__rec_to_string(pod);
	char *all = d && p ? bop__sprintf("data:%s\npod:%s", d, p) : NULL;
	char hash[65];

	if (all) {
		bop__rec_sha256_hex(hash, all, strlen(all));
		r->config_hash = bop__strdup(hash);
		bop__wipe(all, strlen(all));
	}
	if (d)
		bop__wipe(d, strlen(d));
	free(d);
	free(p);
	free(all);
	return r->config_hash ? 0 : BOP_ENOMEM;
}

static int build_statefulset(bop_reconcile_t *r, json_object *data)
{
	json_object *pod = pod_spec(r), *o = NULL;
	char *path = bop__sprintf("/apis/apps/v1/namespaces/%s/statefulsets/%s", r->target_ns,
		r->object_name);
	char mport[16];
	int ret = pod && path ? config_hash(r, data, pod) : BOP_ENOMEM;

	snprintf(mport, sizeof(mport), "%u", r->metrics_port);
	if (!ret)
		o = obj("apiVersion", str("apps/v1"), "kind", str("StatefulSet"),
			"metadata", metadata(r),
			"spec", obj("replicas", num(1), "serviceName", str(r->object_name),
				"podManagementPolicy", str("Parallel"),
				"revisionHistoryLimit", num(3),
				"updateStrategy", obj("type", str("RollingUpdate"), NULL),
				"selector", obj("matchLabels", labels(r, true), NULL),
				"template", obj("metadata", obj("labels", labels(r, false),
					"annotations", obj(CONFIG_HASH_ANNOTATION, str(r->config_hash),
						"prometheus.io/scrape", str("true"),
						"prometheus.io/port", str(mport),
						"prometheus.io/path", str("/metrics"), NULL), NULL),
					"spec", json_object_get(pod), NULL), NULL), NULL);
	if (!ret)
		ret = o ? finish(r, BOP_RECONCILE_STATEFULSET, o, path) : BOP_ENOMEM;
	json_object_put(o);
	json_object_put(pod);
	free(path);
	return ret;
}

/* Headless (clusterIP None): the StatefulSet's governing Service, so the runner's name
 * resolves to its pod, and no cluster IP is spent per schedule (a cluster with thousands
 * of schedules would exhaust a small service range). */
static int build_service(bop_reconcile_t *r)
{
	json_object *o = obj("apiVersion", str("v1"), "kind", str("Service"), "metadata", metadata(r),
		"spec", obj("type", str("ClusterIP"), "clusterIP", str("None"), "selector", labels(r, true),
			"ports", arr(1, obj("name", str("api"), "port", num(r->port),
				"targetPort", str("api"), "protocol", str("TCP"), NULL)), NULL), NULL);
	char *path = bop__sprintf("/api/v1/namespaces/%s/services/%s", r->target_ns, r->object_name);
	int ret = o && path ? finish(r, BOP_RECONCILE_SERVICE, o, path) : BOP_ENOMEM;

	free(path);
	json_object_put(o);
	return ret;
}

int bop__rec_build_objects(bop_reconcile_t *r)
{
	json_object *data = NULL;
	int ret;

	if ((ret = secret_data(r, &data)) || (ret = build_secret(r, data)) ||
	    (ret = build_statefulset(r, data)) || (ret = build_service(r)))
		goto out;
out:
	json_object_put(data);
	return ret;
}
