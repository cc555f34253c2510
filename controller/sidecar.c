/*
 * Sidecar mode (spec.sidecar of a BackupSchedule): a Deployment, StatefulSet or DaemonSet
 * labelled backupop.io/schedule=<schedule> in the schedule's namespace gets a runner
 * container that mounts one of its pod's volumes where the files engine backs it up.
 * See backupop-controller(8), SIDECAR MODE.
 *
 * The schedule's reconcile makes the sidecar's config Secret in the schedule's namespace
 * (create-only and immutable, named after a keyed hash of its content, held by a
 * ConfigMap of its name that the schedule owns; prune_secrets() removes old ones, found
 * through c->sc_secrets, which the Secret informer's events keep) and
 * remembers the container and volumes to add (c->sidecars). The workload's reconcile
 * compares the hash recorded in the workload's backupop.io/sidecar annotation
 * and rewrites the pod template's containers and volumes with a merge patch that carries
 * the workload's resourceVersion (a concurrent change gives 409 and a retry, never a lost
 * update); it removes exactly the container and the volumes whose names it owns.
 *
 * The sidecar serves runs only: the controller itself creates one BackupRun per scheduled
 * time, named after the schedule and the time, so restarts, a second controller or any
 * number of replicas cannot make two; the run goes to one Ready pod of the workloads
 * (the first by name that answers), recorded in the run's status.runnerPod.
 */
#include "ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SC_CONTAINER "backupop-sidecar"
#define SC_PREFIX "backupop-sidecar-"           /* names of the volumes we add */
#define SC_CONFIG_VOLUME SC_PREFIX "config"
#define SC_TMP_VOLUME SC_PREFIX "tmp"
#define SC_CONFIG_DIR "/etc/backupop-sidecar"
#define SC_ANNOTATION "backupop.io/sidecar"     /* workload: hash of what we added */
#define SC_POD_LABEL "backupop.io/sidecar-of"   /* pod template: the schedule's name */
#define SC_LABEL "backupop.io/schedule"         /* the user's label on the workload */
#define SC_SECRET_LABEL "backupop.io/schedule-name" /* what we make: the schedule's name */
#define SC_MADE_ANNOTATION "backupop.io/made-at-ms"  /* a sidecar Secret: when it was made */

static const char *const wl_res[CTL_WORKLOAD_KINDS] = { "deployments", "statefulsets",
	"daemonsets" };
static const char wl_kind[CTL_WORKLOAD_KINDS] = { 'd', 't', 'a' };

/* A label's value (label names hold dots, which js() would split at). */
static const char *jlabel(json_object *o, const char *name)
{
	json_object *l = jget(o, "metadata.labels"), *v;

	if (!l || !json_object_is_type(l, json_type_object) ||
	    !json_object_object_get_ex(l, name, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static json_object *jstr(const char *s)
{
	return json_object_new_string(s ? s : "");
}

static int kind_index(char k)
{
	for (int i = 0; i < CTL_WORKLOAD_KINDS; i++)
		if (wl_kind[i] == k)
			return i;
	return -1;
}

const char *ctl_workload_resource(char kind)
{
	int i = kind_index(kind);

	return i < 0 ? NULL : wl_res[i];
}

char ctl_workload_kind(int i)
{
	return wl_kind[i];
}

/* ---- the desired sidecar, per schedule ---- */

/* The sidecar's config: the runner's without a cron (the controller schedules), listening
 * on the sidecar's port. */
static char *sidecar_config(const char *secret, unsigned int port)
{
	char *cfg = NULL, *out = NULL, listen[16];
	size_t len;
	json_object *o;

	if (bop_reconcile_secret_value(&cfg, &len, secret, "config.json"))
		return NULL;
	o = jparse(cfg);
	memset(cfg, 0, len);
	bop_free(cfg);
	if (!o)
		return NULL;
	json_object_object_del(o, "schedule");
	json_object_object_del(o, "timeZone");
	json_object_object_del(o, "suspend");
	json_object_object_del(o, "startingDeadlineSeconds");
	if (jget(o, "verification"))
		json_object_object_del(jget(o, "verification"), "schedule");
	snprintf(listen, sizeof(listen), ":%u", port);
	if (jget(o, "api"))
		json_object_object_add(jget(o, "api"), "listen", json_object_new_string(listen));
	snprintf(listen, sizeof(listen), ":%u", port + 1);
	if (jget(o, "metrics"))
		json_object_object_add(jget(o, "metrics"), "listen", json_object_new_string(listen));
	out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return out;
}

static json_object *probe(const char *path, unsigned int port, int period)
{
	json_object *p = json_object_new_object(), *g = json_object_new_object();

	json_object_object_add(g, "path", jstr(path));
	json_object_object_add(g, "port", json_object_new_int((int)port));
	json_object_object_add(p, "httpGet", g);
	json_object_object_add(p, "periodSeconds", json_object_new_int(period));
	json_object_object_add(p, "timeoutSeconds", json_object_new_int(5));
	return p;
}

static json_object *named(const char *name)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "name", jstr(name));
	return o;
}

static json_object *mount(const char *name, const char *path, bool ro)
{
	json_object *m = named(name);

	json_object_object_add(m, "mountPath", jstr(path));
	if (ro)
		json_object_object_add(m, "readOnly", json_object_new_boolean(1));
	return m;
}

/* The container and volumes for schedule `sched` whose Secret is `secret_name`;
 * `runner_pod` is the pod spec of the runner StatefulSet the reconcile built (its storage
 * volumes, a file storage's claim, are carried over under our prefix). */
static json_object *desired(ctl_t *c, json_object *sched, const char *secret_name,
	unsigned int port, json_object *runner_pod)
{
	json_object *d = json_object_new_object(), *ct = named(SC_CONTAINER);
	json_object *mounts = json_object_new_array(), *vols = json_object_new_array(), *v, *a;
	json_object *ports = json_object_new_array(), *p, *sc, *caps;
	json_object *rcont = jget(runner_pod, "containers");
	const char *mpath = js(sched, "spec.engine.files.path");
	char cfg[300];
	bool ro = !jget(sched, "spec.sidecar.readOnly") ||
		json_object_get_boolean(jget(sched, "spec.sidecar.readOnly"));

	snprintf(cfg, sizeof(cfg), "%s/config.json", SC_CONFIG_DIR);
	json_object_object_add(ct, "image", jstr(c->args.runner_image));
	json_object_object_add(ct, "imagePullPolicy", jstr("IfNotPresent"));
	a = json_object_new_array();
	json_object_array_add(a, jstr("--config"));
	json_object_array_add(a, jstr(cfg));
	json_object_object_add(ct, "args", a);
	/* the pod's name, which the runner names its lock and run records after: with
	 * hostNetwork the replicas on one node share its host name (backupop-runner(8)) */
	sc = json_object_new_object();
	json_object_object_add(sc, "apiVersion", jstr("v1"));
	json_object_object_add(sc, "fieldPath", jstr("metadata.name"));
	v = json_object_new_object();
	json_object_object_add(v, "fieldRef", sc);
	p = named("BOP_POD_NAME");
	json_object_object_add(p, "valueFrom", v);
	a = json_object_new_array();
	json_object_array_add(a, p);
	json_object_object_add(ct, "env", a);
	p = named("bop-api");
	json_object_object_add(p, "containerPort", json_object_new_int((int)port));
	json_object_object_add(p, "protocol", jstr("TCP"));
	json_object_array_add(ports, p);
	p = named("bop-metrics");
	json_object_object_add(p, "containerPort", json_object_new_int((int)port + 1));
	json_object_object_add(p, "protocol", jstr("TCP"));
	json_object_array_add(ports, p);
	json_object_object_add(ct, "ports", ports);
	if (jget(sched, "spec.runner.resources"))
		json_object_object_add(ct, "resources",
			json_object_get(jget(sched, "spec.runner.resources")));
	else if (rcont && json_object_array_length(rcont) &&
	    jget(json_object_array_get_idx(rcont, 0), "resources"))
		json_object_object_add(ct, "resources",
			json_object_get(jget(json_object_array_get_idx(rcont, 0), "resources")));
	json_object_object_add(ct, "readinessProbe", probe("/readyz", port, 10));
	/* the pod's user (the application's), so the sidecar reads what the application
	 * wrote; nothing more */
	sc = json_object_new_object();
	json_object_object_add(sc, "allowPrivilegeEscalation", json_object_new_boolean(0));
	json_object_object_add(sc, "readOnlyRootFilesystem", json_object_new_boolean(1));
	caps = json_object_new_object();
	a = json_object_new_array();
	json_object_array_add(a, jstr("ALL"));
	json_object_object_add(caps, "drop", a);
	json_object_object_add(sc, "capabilities", caps);
	json_object_object_add(ct, "securityContext", sc);
	json_object_array_add(mounts, mount(SC_CONFIG_VOLUME, SC_CONFIG_DIR, true));
	json_object_array_add(mounts, mount(SC_TMP_VOLUME, "/tmp", false));
	json_object_array_add(mounts, mount(js(sched, "spec.sidecar.volume"), mpath, ro));
	/* the storage's volumes (a file storage's claim), renamed into our prefix */
	for (size_t i = 0; rcont && json_object_array_length(rcont) &&
	    i < json_object_array_length(jget(json_object_array_get_idx(rcont, 0), "volumeMounts")); i++) {
		json_object *m = json_object_array_get_idx(jget(json_object_array_get_idx(rcont, 0),
			"volumeMounts"), i);
		json_object *rv = jget(runner_pod, "volumes");
		const char *n = js(m, "name");
		char nn[300];

		if (!n || !strcmp(n, "config") || !strcmp(n, "tmp") || !strncmp(n, "backupop-tools", 14))
			continue;
		snprintf(nn, sizeof(nn), SC_PREFIX "%s", n);
		for (size_t j = 0; rv && j < json_object_array_length(rv); j++) {
			json_object *vol = json_object_array_get_idx(rv, j), *copy = NULL;

			if (!js(vol, "name") || strcmp(js(vol, "name"), n))
				continue;
			json_object_deep_copy(vol, &copy, NULL);
			json_object_object_add(copy, "name", jstr(nn));
			json_object_array_add(vols, copy);
			copy = NULL;
			json_object_deep_copy(m, &copy, NULL);
			json_object_object_add(copy, "name", jstr(nn));
			json_object_array_add(mounts, copy);
		}
	}
	json_object_object_add(ct, "volumeMounts", mounts);
	v = named(SC_CONFIG_VOLUME);
	a = json_object_new_object();
	json_object_object_add(a, "secretName", jstr(secret_name));
	/* readable by the pod's user, whichever it is; only this container mounts it */
	json_object_object_add(a, "defaultMode", json_object_new_int(0444));
	json_object_object_add(v, "secret", a);
	json_object_array_add(vols, v);
	v = named(SC_TMP_VOLUME);
	json_object_object_add(v, "emptyDir", json_object_new_object());
	json_object_array_add(vols, v);
	json_object_object_add(d, "container", ct);
	json_object_object_add(d, "volumes", vols);
	json_object_object_add(d, "volume", jstr(js(sched, "spec.sidecar.volume")));
	return d;
}

static char *keyed_hash(ctl_t *c, const char *text)
{
	char *h = NULL;

	if (bop_reconcile_runner_token(&h, c->key, sizeof(c->key), text))
		return NULL;
	return h;
}

unsigned int ctl_sidecar_port(ctl_t *c, json_object *sched)
{
	int64_t p = jint(sched, "spec.sidecar.port", 0);

	return p > 0 && p < 65535 ? (unsigned int)p : c->args.runner_port;
}

const char *ctl_sidecar_problem(json_object *sched)
{
	const char *name = js(sched, "metadata.name");

	if (!js(sched, "spec.engine.files.path"))
		return "spec.sidecar needs the files engine: spec.engine.files.path is where the "
			"sidecar mounts the volume";
	if (!js(sched, "spec.sidecar.volume") || !*js(sched, "spec.sidecar.volume"))
		return "spec.sidecar.volume names the pod's volume to back up";
	if (!name || strlen(name) > 63)
		return "a schedule in sidecar mode needs a name of at most 63 characters (it is "
			"a label value)";
	return NULL;
}

static int each_workload(ctl_t *c, const char *ns, const char *schedule);

/* The labels of what the controller makes for a schedule's sidecar. */
static json_object *sidecar_labels(const char *schedule)
{
	json_object *labels = json_object_new_object();

	json_object_object_add(labels, "app.kubernetes.io/name", jstr("backupop-sidecar"));
	json_object_object_add(labels, "app.kubernetes.io/managed-by", jstr("backupop-controller"));
	json_object_object_add(labels, SC_SECRET_LABEL, jstr(schedule));
	return labels;
}

/*
 * The holder of a sidecar Secret: an empty ConfigMap of the same name, owned by the
 * schedule, that owns the Secret. The controller may not delete Secrets outside its own
 * namespace (a generated identity must never go); deleting the holder lets the garbage
 * collector remove an old sidecar Secret. *uid: the holder's uid.
 */
static int ensure_holder(ctl_t *c, int w, json_object *sched, const char *sname, char **uid)
{
	const char *ns = js(sched, "metadata.namespace"), *name = js(sched, "metadata.name");
	json_object *o, *data, *got = NULL;
	char path[700], *body = NULL;
	int ret;

	*uid = NULL;
	o = ctl_object_head("v1", "ConfigMap", ns, sname, sidecar_labels(name), NULL);
	ctl_owner_ref(o, "backupop.io/v1alpha1", "BackupSchedule", name, js(sched, "metadata.uid"));
	data = json_object_new_object();
	json_object_object_add(data, "about", jstr("Holds the backup sidecar's Secret of the "
		"same name; deleted (and the Secret with it) once no pod template names it."));
	json_object_object_add(o, "data", data);
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps", ns);
	ret = bop_k8s_request(c->wclient[w], NULL, &body, BOP_K8S_CREATE, path,
		json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), NULL);
	json_object_put(o);
	if (ret == 0)
		ctl_count_write(c, "ConfigMap");
	if (ret == BOP_ECONFLICT || ret == BOP_EEXISTS) {
		bop_free(body);
		body = NULL;
		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps/%s", ns, sname);
		ret = bop_k8s_request(c->wclient[w], NULL, &body, BOP_K8S_GET, path, NULL, NULL);
	}
	got = ret ? NULL : jparse(body);
	if (ret == 0 && (!js(got, "metadata.uid") || jget(got, "metadata.deletionTimestamp")))
		ret = bop_error_set(BOP_ECONFLICT, "the holder ConfigMap is being deleted");
	if (ret == 0 && !(*uid = bop_strdup(js(got, "metadata.uid"))))
		ret = BOP_ENOMEM;
	if (ret)
		clog_(BOP_LOG_WARN, "schedule %s/%s: cannot make the ConfigMap %s that holds the "
			"sidecar's Secret: %s", ns, name, sname, bop_error_last());
	json_object_put(got);
	bop_free(body);
	return ret;
}

/* The schedule's sidecar Secrets other than `keep`, and when `keep` was made. */
typedef struct old_secrets {
	const char *ns, *schedule, *keep;
	long long keep_made;            /* unix ms; 0 when not seen */
	json_object *found;             /* name -> {holder: uid, made: unix ms} */
} old_secrets_t;

static int find_old_secret(const char *key, const char *object, void *ud)
{
	old_secrets_t *x = ud;
	json_object *o = jparse(object), *owners = jget(o, "metadata.ownerReferences"), *e;
	const char *name = js(o, "metadata.name"), *made = jannotation(o, SC_MADE_ANNOTATION);
	const char *l = jlabel(o, SC_SECRET_LABEL), *app = jlabel(o, "app.kubernetes.io/name");

	(void)key;
	if (!name || !made || strcmp(js(o, "metadata.namespace") ? js(o, "metadata.namespace") :
	    "", x->ns) || !l || strcmp(l, x->schedule) || !app || strcmp(app, "backupop-sidecar"))
		goto out;
	if (!strcmp(name, x->keep)) {
		x->keep_made = strtoll(made, NULL, 10);
		goto out;
	}
	for (size_t i = 0; owners && i < json_object_array_length(owners); i++) {
		json_object *ow = json_object_array_get_idx(owners, i);

		if (js(ow, "kind") && !strcmp(js(ow, "kind"), "ConfigMap") && js(ow, "name") &&
		    !strcmp(js(ow, "name"), name) && js(ow, "uid")) {
			e = json_object_new_object();
			json_object_object_add(e, "holder", jstr(js(ow, "uid")));
			json_object_object_add(e, "made", json_object_new_int64(strtoll(made,
				NULL, 10)));
			json_object_object_add(x->found, name, e);
		}
	}
out:
	json_object_put(o);
	return 0;
}

/* Drops from `found` the Secrets a current pod template of namespace `ns` names. */
static int drop_referenced(ctl_t *c, int w, const char *ns, const char *schedule,
	json_object *found)
{
	for (int k = 0; k < CTL_WORKLOAD_KINDS; k++) {
		char path[600], *body = NULL;
		json_object *list, *items;
		int ret;

		snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/%s", ns, wl_res[k]);
		ret = bop_k8s_request(c->wclient[w], NULL, &body, BOP_K8S_GET, path, NULL, NULL);
		if (ret) {
			bop_free(body);
			return ret;
		}
		list = jparse(body);
		bop_free(body);
		items = jget(list, "items");
		for (size_t i = 0; items && i < json_object_array_length(items); i++) {
			json_object *item = json_object_array_get_idx(items, i);
			json_object *vols = jget(item, "spec.template.spec.volumes");

			for (size_t j = 0; vols && j < json_object_array_length(vols); j++) {
				const char *sn = js(json_object_array_get_idx(vols, j),
					"secret.secretName");

				if (!sn || !json_object_object_get_ex(found, sn, NULL))
					continue;
				clog_(BOP_LOG_DEBUG, "schedule %s/%s: the sidecar's old Secret %s "
					"stays: the pod template of %s %s names it", ns, schedule, sn,
					wl_res[k], js(item, "metadata.name"));
				json_object_object_del(found, sn);
			}
		}
		json_object_put(list);
	}
	return 0;
}

static void add_key(void *ud, const char *key)
{
	json_object_array_add(ud, json_object_new_string(key));
}

/*
 * Removes the sidecar Secrets of schedule `schedule` made before `keep` (the current one)
 * that no current pod template in `ns` names any more: a config change makes a new Secret,
 * and the old ones would stay until the schedule goes. A pod still running from an old
 * template keeps its mounted copy. Only Secrets older than `keep` go, so one made for a
 * newer config meanwhile (by another worker) is never taken for an old one. The
 * candidates are the schedule's Secrets in c->sc_secrets, read again from the cache (not
 * a walk of every Secret: this runs at each reconcile of the schedule and its workloads);
 * the templates are read from the API server, not a cache, and only when there is
 * something to remove.
 */
static void prune_secrets(ctl_t *c, int w, const char *ns, const char *schedule,
	const char *keep)
{
	old_secrets_t x = { ns, schedule, keep, 0, json_object_new_object() };
	json_object *gone = json_object_new_object(), *keys = json_object_new_array();
	char skey[512];

	if (!keep || !c->secrets)
		goto out;
	snprintf(skey, sizeof(skey), "%s/%s", ns, schedule);
	pthread_mutex_lock(&c->lock);
	ctl_index_each(c->sc_secrets, skey, add_key, keys);
	pthread_mutex_unlock(&c->lock);
	/* the current one also when its event is not through yet */
	snprintf(skey, sizeof(skey), "%s/%s", ns, keep);
	add_key(keys, skey);
	for (size_t i = 0; i < json_object_array_length(keys); i++) {
		const char *key = json_object_get_string(json_object_array_get_idx(keys, i));
		char *obj = NULL;

		if (bop_k8s_informer_get(c->secrets, &obj, key) == 0)
			find_old_secret(key, obj, &x);
		bop_free(obj);
	}
	if (x.keep_made <= 0)
		goto out;       /* the current one is not in the cache yet: next time */
	json_object_object_foreach(x.found, name, e) {
		if (jint(e, "made", 0) < x.keep_made)
			json_object_object_add(gone, name, json_object_get(e));
	}
	if (!json_object_object_length(gone) || drop_referenced(c, w, ns, schedule, gone))
		goto out;
	json_object_object_foreach(gone, sname, g) {
		char path[700], body[300];
		int ret;

		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps/%s", ns, sname);
		snprintf(body, sizeof(body), "{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\","
			"\"propagationPolicy\":\"Background\",\"preconditions\":{\"uid\":\"%s\"}}",
			js(g, "holder"));
		ret = bop_k8s_request(c->wclient[w], NULL, NULL, BOP_K8S_DELETE, path, body, NULL);
		if (ret == 0) {
			ctl_count_write(c, "ConfigMap");
			clog_(BOP_LOG_INFO, "schedule %s/%s: removing the sidecar's old Secret %s "
				"(no pod template names it)", ns, schedule, sname);
		} else if (ret != BOP_ENOTFOUND && ret != BOP_ECONFLICT) {
			clog_(BOP_LOG_WARN, "schedule %s/%s: cannot remove the sidecar's old Secret "
				"%s: %s", ns, schedule, sname, bop_error_last());
		}
	}
out:
	json_object_put(keys);
	json_object_put(gone);
	json_object_put(x.found);
}

int ctl_sidecar_apply(ctl_t *c, int w, json_object *sched, bop_reconcile_t *r)
{
	const char *ns = js(sched, "metadata.namespace"), *name = js(sched, "metadata.name");
	const char *secret = bop_reconcile_object(r, BOP_RECONCILE_SECRET);
	json_object *sobj = jparse(secret), *data = jget(sobj, "data"), *out = NULL;
	json_object *sd, *sts = jparse(bop_reconcile_object(r,
		BOP_RECONCILE_STATEFULSET)), *d = NULL, *ndata;
	unsigned int port = ctl_sidecar_port(c, sched);
	char *cfg = sidecar_config(secret, port), *h = NULL, *all = NULL, sname[300], key[600];
	char path[600], *have = NULL, skey[512], *holder_uid = NULL;
	int ret = 0;

	if (!cfg || !data) {
		ret = bop_error_set(BOP_EFORMAT, "cannot read the runner config to make the sidecar's");
		goto out;
	}
	/* the name: a keyed hash of everything in it, so a change makes a new Secret */
	ndata = json_object_new_object();
	json_object_object_foreach(data, k, v) {
		if (strcmp(k, "config.json"))
			json_object_object_add(ndata, k, json_object_get(v));
	}
	if (asprintf(&all, "%s\n%s", cfg, json_object_to_json_string_ext(ndata,
	    JSON_C_TO_STRING_PLAIN)) < 0) {
		all = NULL;
		json_object_put(ndata);
		ret = BOP_ENOMEM;
		goto out;
	}
	h = keyed_hash(c, all);
	memset(all, 0, strlen(all));
	free(all);
	if (!h) {
		json_object_put(ndata);
		ret = BOP_ENOMEM;
		goto out;
	}
	snprintf(sname, sizeof(sname), "backupop-sidecar-%.32s-%.10s", name, h);
	for (char *p = sname; *p; p++)
		if (*p == '.')
			*p = '-';
	snprintf(key, sizeof(key), "%s/%s", ns, sname);
	if (bop_k8s_informer_get(c->secrets, &have, key) == BOP_ENOTFOUND) {
		{
			struct timespec ts;
			char made[32];
			json_object *ann = json_object_new_object();

			clock_gettime(CLOCK_REALTIME, &ts);
			snprintf(made, sizeof(made), "%lld",
				(long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
			json_object_object_add(ann, SC_MADE_ANNOTATION, jstr(made));
			out = ctl_object_head("v1", "Secret", ns, sname, sidecar_labels(name), ann);
		}
		/* owned by its holder ConfigMap, itself owned by the schedule: the garbage
		 * collector deletes it with either (the controller may only create Secrets
		 * outside its own namespace, never delete one) */
		if ((ret = ensure_holder(c, w, sched, sname, &holder_uid)))
			goto out;
		ctl_owner_ref(out, "v1", "ConfigMap", sname, holder_uid);
		json_object_object_add(out, "type", jstr("Opaque"));
		json_object_object_add(out, "immutable", json_object_new_boolean(1));
		json_object_object_add(out, "data", ndata);
		sd = json_object_new_object();
		json_object_object_add(sd, "config.json", jstr(cfg));
		json_object_object_add(out, "stringData", sd);
		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/secrets", ns);
		ret = bop_k8s_request(c->wclient[w], NULL, NULL, BOP_K8S_CREATE, path,
			json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN), NULL);
		if (ret == BOP_ECONFLICT || ret == BOP_EEXISTS)
			ret = 0;
		if (ret) {
			clog_(BOP_LOG_WARN, "schedule %s/%s: cannot create the sidecar's Secret %s: %s",
				ns, name, sname, bop_error_last());
			goto out;
		}
		clog_(BOP_LOG_INFO, "schedule %s/%s: created the sidecar's Secret %s", ns, name, sname);
		ctl_count_write(c, "Secret");
	} else {
		json_object_put(ndata);
	}
	d = desired(c, sched, sname, port, jget(sts, "spec.template.spec"));
	bop_free(h);
	h = keyed_hash(c, json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN));
	if (!h) {
		ret = BOP_ENOMEM;
		goto out;
	}
	json_object_object_add(d, "hash", jstr(h));
	json_object_object_add(d, "secret", jstr(sname));
	snprintf(skey, sizeof(skey), "%s/%s", ns, name);
	pthread_mutex_lock(&c->lock);
	json_object_object_add(c->sidecars, skey, json_object_get(d));
	pthread_mutex_unlock(&c->lock);
	each_workload(c, ns, name);
	prune_secrets(c, w, ns, name, sname);
out:
	bop_free(holder_uid);
	if (cfg) {
		memset(cfg, 0, strlen(cfg));
		free(cfg);
	}
	if (out) {
		json_object_put(out);   /* holds the config: not logged, freed */
	}
	bop_free(have);
	bop_free(h);
	json_object_put(d);
	json_object_put(sts);
	json_object_put(sobj);
	return ret;
}

void ctl_sidecar_secret_event(ctl_t *c, bop_k8s_event_type_t type, const char *key,
	const char *object)
{
	json_object *o = NULL;
	const char *l = NULL, *app, *ns;
	char skey[512];

	/* a sidecar Secret's metadata holds "backupop-sidecar": most Secrets need no parse */
	if (object && strstr(object, "backupop-sidecar")) {
		o = jparse(object);
		l = jlabel(o, SC_SECRET_LABEL);
		app = jlabel(o, "app.kubernetes.io/name");
		ns = js(o, "metadata.namespace");
		if (!app || strcmp(app, "backupop-sidecar") || !ns)
			l = NULL;
		else
			snprintf(skey, sizeof(skey), "%s/%s", ns, l);
	}
	pthread_mutex_lock(&c->lock);
	if (l && type != BOP_K8S_DELETED) {
		const char *refs[] = { skey, NULL };

		ctl_index_set(c->sc_secrets, key, refs);
	} else {
		ctl_index_remove(c->sc_secrets, key);
	}
	pthread_mutex_unlock(&c->lock);
	if (l && type == BOP_K8S_DELETED)
		ctl_enqueue(c, 's', skey, 0);
	json_object_put(o);
}

void ctl_sidecar_forget(ctl_t *c, const char *ns, const char *name)
{
	char skey[512];

	snprintf(skey, sizeof(skey), "%s/%s", ns, name);
	pthread_mutex_lock(&c->lock);
	json_object_object_del(c->sidecars, skey);
	pthread_mutex_unlock(&c->lock);
	each_workload(c, ns, name);
}

/* ---- workloads ---- */

typedef struct wl_ctx {
	ctl_t *c;
	char kind;
	const char *ns, *schedule;
} wl_ctx_t;

static int wl_match(const char *key, const char *object, void *ud)
{
	wl_ctx_t *x = ud;
	json_object *o = jparse(object);
	const char *l = jlabel(o, SC_LABEL);
	const char *a = jannotation(o, SC_ANNOTATION);
	size_t n = strlen(x->ns);

	(void)a;
	if (!strncmp(key, x->ns, n) && key[n] == '/' &&
	    ((l && !strcmp(l, x->schedule)) || jannotation(o, SC_ANNOTATION)))
		ctl_enqueue(x->c, x->kind, key, 0);
	json_object_put(o);
	return 0;
}

/* Queues the workloads of `ns` labelled for `schedule` or carrying a sidecar. */
static int each_workload(ctl_t *c, const char *ns, const char *schedule)
{
	for (int i = 0; i < CTL_WORKLOAD_KINDS; i++) {
		wl_ctx_t x = { c, wl_kind[i], ns, schedule };

		if (c->workloads[i])
			bop_k8s_informer_foreach(c->workloads[i], wl_match, &x);
	}
	return 0;
}

/* Queues a workload when what the sidecar depends on changed: its generation (the spec),
 * the label or our annotation; not for status updates (a rollout writes many). */
void ctl_on_workload(ctl_t *c, int i, bool deleted, const char *key, const char *object)
{
	json_object *o = jparse(object), *v;
	const char *l = jlabel(o, SC_LABEL), *a = jannotation(o, SC_ANNOTATION);
	char seen[700], k[700];
	bool changed = true;

	snprintf(k, sizeof(k), "%c/%s", wl_kind[i], key);
	snprintf(seen, sizeof(seen), "%lld|%s|%s", (long long)jint(o, "metadata.generation", 0),
		l ? l : "", a ? a : "");
	pthread_mutex_lock(&c->lock);
	if (deleted || (!l && !a)) {
		json_object_object_del(c->wl_seen, k);
		changed = false;
	} else if (json_object_object_get_ex(c->wl_seen, k, &v) &&
	    !strcmp(json_object_get_string(v), seen)) {
		changed = false;
	} else {
		json_object_object_add(c->wl_seen, k, json_object_new_string(seen));
	}
	pthread_mutex_unlock(&c->lock);
	/* a label just removed: the last state had it, so the annotation tells */
	if (changed || (!deleted && !l && a))
		ctl_enqueue(c, wl_kind[i], key, 0);
	json_object_put(o);
}

static bool has_volume(json_object *wl, const char *vol)
{
	json_object *v = jget(wl, "spec.template.spec.volumes");
	json_object *t = jget(wl, "spec.volumeClaimTemplates");

	for (size_t i = 0; v && i < json_object_array_length(v); i++)
		if (js(json_object_array_get_idx(v, i), "name") &&
		    !strcmp(js(json_object_array_get_idx(v, i), "name"), vol))
			return true;
	for (size_t i = 0; t && i < json_object_array_length(t); i++)
		if (js(json_object_array_get_idx(t, i), "metadata.name") &&
		    !strcmp(js(json_object_array_get_idx(t, i), "metadata.name"), vol))
			return true;
	return false;
}

int ctl_reconcile_workload(ctl_t *c, int w, char kind, const char *ns, const char *name)
{
	const char *res = ctl_workload_resource(kind), *label = NULL, *have;
	char path[700], skey[512], *body = NULL, *stext = NULL;
	json_object *wl = NULL, *want = NULL, *sched = NULL, *patch = NULL, *conts, *vols;
	json_object *pm, *pt, *ps, *ml, *ma, *tl, *v;
	const char *hash = NULL;
	int ret;

	if (!res)
		return 0;
	snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/%s/%s", ns, res, name);
	ret = bop_k8s_request(c->wclient[w], NULL, &body, BOP_K8S_GET, path, NULL, NULL);
	if (ret == BOP_ENOTFOUND)
		return 0;
	if (ret || !(wl = jparse(body)))
		goto out;
	label = jlabel(wl, SC_LABEL);
	have = jannotation(wl, SC_ANNOTATION);
	if (label && !jget(wl, "metadata.deletionTimestamp")) {
		snprintf(skey, sizeof(skey), "%s/%s", ns, label);
		if (bop_k8s_informer_get(c->schedules, &stext, skey) == 0)
			sched = jparse(stext);
		if (sched && jget(sched, "spec.sidecar") && !jget(sched, "metadata.deletionTimestamp")) {
			pthread_mutex_lock(&c->lock);
			if (json_object_object_get_ex(c->sidecars, skey, &v))
				json_object_deep_copy(v, &want, NULL);
			pthread_mutex_unlock(&c->lock);
			if (!want) {
				/* not reconciled yet, or its spec is wrong for now: leave the
				 * pods as they are; the schedule's reconcile queues us again */
				goto out;
			}
			if (!has_volume(wl, js(want, "volume"))) {
				char msg[700];

				snprintf(msg, sizeof(msg), "%s %s/%s has no volume %s: no sidecar added",
					res, ns, name, js(want, "volume"));
				clog_(BOP_LOG_WARN, "%s", msg);
				bop_k8s_event(c->recorder, stext, "Warning", "SidecarVolumeNotFound", msg);
				json_object_put(want);
				want = NULL;
			}
		}
	}
	hash = want ? js(want, "hash") : NULL;
	if ((hash && have && !strcmp(hash, have)) || (!hash && !have))
		goto out;
	/* rewrite the template's containers and volumes: the user's as they are, ours as
	 * wanted; resourceVersion makes it fail (409) if the workload changed meanwhile */
	conts = json_object_new_array();
	vols = json_object_new_array();
	v = jget(wl, "spec.template.spec.containers");
	for (size_t i = 0; v && i < json_object_array_length(v); i++) {
		json_object *x = json_object_array_get_idx(v, i);

		if (!js(x, "name") || strcmp(js(x, "name"), SC_CONTAINER))
			json_object_array_add(conts, json_object_get(x));
	}
	v = jget(wl, "spec.template.spec.volumes");
	for (size_t i = 0; v && i < json_object_array_length(v); i++) {
		json_object *x = json_object_array_get_idx(v, i);

		if (!js(x, "name") || strncmp(js(x, "name"), SC_PREFIX, strlen(SC_PREFIX)))
			json_object_array_add(vols, json_object_get(x));
	}
	if (want) {
		json_object_array_add(conts, json_object_get(jget(want, "container")));
		v = jget(want, "volumes");
		for (size_t i = 0; i < json_object_array_length(v); i++)
			json_object_array_add(vols, json_object_get(json_object_array_get_idx(v, i)));
	}
	patch = json_object_new_object();
	pm = json_object_new_object();
	json_object_object_add(pm, "resourceVersion", jstr(js(wl, "metadata.resourceVersion")));
	ma = json_object_new_object();
	json_object_object_add(ma, SC_ANNOTATION, hash ? jstr(hash) : NULL);
	json_object_object_add(pm, "annotations", ma);
	json_object_object_add(patch, "metadata", pm);
	pt = json_object_new_object();
	ml = json_object_new_object();
	tl = json_object_new_object();
	json_object_object_add(tl, SC_POD_LABEL, hash ? jstr(label) : NULL);
	json_object_object_add(ml, "labels", tl);
	json_object_object_add(pt, "metadata", ml);
	ps = json_object_new_object();
	json_object_object_add(ps, "containers", conts);
	json_object_object_add(ps, "volumes", json_object_array_length(vols) ? vols : NULL);
	if (!json_object_array_length(vols))
		json_object_put(vols);
	json_object_object_add(pt, "spec", ps);
	v = json_object_new_object();
	json_object_object_add(v, "template", pt);
	json_object_object_add(patch, "spec", v);
	ret = bop_k8s_request(c->wclient[w], NULL, NULL, BOP_K8S_PATCH, path,
		json_object_to_json_string_ext(patch, JSON_C_TO_STRING_PLAIN), NULL);
	if (ret == BOP_ENOTFOUND)
		ret = 0;
	else if (ret == 0) {
		clog_(BOP_LOG_INFO, "%s %s/%s: sidecar %s", res, ns, name, hash ? "added or updated" :
			"removed");
		ctl_count_write(c, "Workload");
		if (sched)
			bop_k8s_event(c->recorder, stext, "Normal", hash ? "SidecarAdded" : "SidecarRemoved",
				hash ? "the backup sidecar was added to a labelled workload" :
				"the backup sidecar was removed from a workload");
	}
out:
	/* the template names the current Secret (now): older ones may go */
	if (ret == 0 && want && label)
		prune_secrets(c, w, ns, label, js(want, "secret"));
	json_object_put(patch);
	json_object_put(want);
	json_object_put(sched);
	json_object_put(wl);
	bop_free(stext);
	bop_free(body);
	return ret;
}

/* ---- runs: which pod ---- */

static int by_name(const void *a, const void *b)
{
	const char *x = js(*(json_object *const *)a, "metadata.name");
	const char *y = js(*(json_object *const *)b, "metadata.name");

	return strcmp(x ? x : "", y ? y : "");
}

static bool pod_ready(json_object *pod)
{
	json_object *conds = jget(pod, "status.conditions");

	if (jget(pod, "metadata.deletionTimestamp") || !js(pod, "status.podIP"))
		return false;
	for (size_t i = 0; conds && i < json_object_array_length(conds); i++) {
		json_object *x = json_object_array_get_idx(conds, i);

		if (js(x, "type") && !strcmp(js(x, "type"), "Ready"))
			return js(x, "status") && !strcmp(js(x, "status"), "True");
	}
	return false;
}

int ctl_sidecar_call(ctl_t *c, int w, json_object *sched, const char *pod, char **used,
	const char *method, const char *path, const char *body, rapi_reply_t *reply)
{
	const char *ns = js(sched, "metadata.namespace"), *name = js(sched, "metadata.name");
	char p[800], *list = NULL, *token = NULL, url[1024], err[512], msg[1400];
	json_object *pods = NULL, *items, *sorted = json_object_new_array();
	unsigned int port = ctl_sidecar_port(c, sched);
	int ret;

	memset(reply, 0, sizeof(*reply));
	if (used)
		*used = NULL;
	ret = bop_reconcile_runner_token(&token, c->key, sizeof(c->key), js(sched, "metadata.uid"));
	if (ret)
		goto out;
	if (pod)
		snprintf(p, sizeof(p), "/api/v1/namespaces/%s/pods?fieldSelector=metadata.name%%3D%s",
			ns, pod);
	else
		snprintf(p, sizeof(p), "/api/v1/namespaces/%s/pods?labelSelector=%s%%3D%s", ns,
			SC_POD_LABEL, name);
	ret = bop_k8s_request(c->wclient[w], NULL, &list, BOP_K8S_GET, p, NULL, NULL);
	if (ret)
		goto out;
	pods = jparse(list);
	items = jget(pods, "items");
	for (size_t i = 0; items && i < json_object_array_length(items); i++)
		if (pod_ready(json_object_array_get_idx(items, i)))
			json_object_array_add(sorted, json_object_get(json_object_array_get_idx(items, i)));
	json_object_array_sort(sorted, by_name);
	if (pod && (!items || !json_object_array_length(items))) {
		/* deleted or evicted: BOP_ENOTFOUND, not a pod that may come back */
		snprintf(msg, sizeof(msg), "the sidecar's pod %s is gone", pod);
		ret = bop_error_set(BOP_ENOTFOUND, msg);
		goto out;
	}
	if (!json_object_array_length(sorted)) {
		snprintf(msg, sizeof(msg), pod ? "the sidecar's pod %s is not ready" :
			"no Ready pod has the sidecar (label workloads backupop.io/schedule=%s)",
			pod ? pod : name);
		ret = bop_error_set(BOP_EIO, msg);
		goto out;
	}
	snprintf(msg, sizeof(msg), "no sidecar answered");
	ret = BOP_EIO;
	for (size_t i = 0; i < json_object_array_length(sorted); i++) {
		json_object *x = json_object_array_get_idx(sorted, i);
		const char *ip = js(x, "status.podIP");

		if (c->args.runner_url)
			snprintf(url, sizeof(url), "%s%s", c->args.runner_url, path);
		else
			snprintf(url, sizeof(url), strchr(ip, ':') ? "http://[%s]:%u%s" :
				"http://%s:%u%s", ip, port, path);
		rapi_reply_clear(reply);
		if (rapi_request(url, method, token, body, 3000, 15000, reply, err, sizeof(err)) < 0) {
			/* not reached: the next pod (a request that reached one is never sent
			 * twice) */
			snprintf(msg, sizeof(msg), "the sidecar of pod %s is not reachable: %s",
				js(x, "metadata.name"), err);
			clog_(BOP_LOG_INFO, "schedule %s/%s: %s", ns, name, msg);
			continue;
		}
		if (used)
			*used = bop_strdup(js(x, "metadata.name"));
		ret = 0;
		break;
	}
	if (ret)
		ret = bop_error_set(BOP_EIO, msg);
out:
	if (token) {
		explicit_bzero(token, strlen(token));
		bop_free(token);
	}
	json_object_put(sorted);
	json_object_put(pods);
	bop_free(list);
	return ret;
}

/* ---- scheduling ---- */

static void run_name(char *out, size_t size, const char *schedule, int64_t t)
{
	char when[32];
	struct tm tm;
	time_t tt = (time_t)t;

	gmtime_r(&tt, &tm);
	strftime(when, sizeof(when), "%Y%m%d-%H%M%S", &tm);
	snprintf(out, size, "%.200s-%s", schedule, when);
	for (char *p = out; *p; p++)
		if (*p == '.')
			*p = '-';
}

int ctl_sidecar_schedule(ctl_t *c, int w, json_object *sched, int64_t *last)
{
	const char *ns = js(sched, "metadata.namespace"), *name = js(sched, "metadata.name");
	const char *ls = js(sched, "status.lastScheduleTime");
	int64_t from = ls ? ctl_parse_time(ls) : ctl_parse_time(js(sched, "metadata.creationTimestamp"));
	int64_t now = ctl_now(), t = from, due = 0, dl = jint(sched, "spec.startingDeadlineSeconds", -1);
	bop_schedule_t *s = NULL;
	json_object *o, *lab, *ann, *spec;
	char rn[300], path[600], when[32];
	int ret;

	*last = 0;
	if (!js(sched, "spec.schedule") ||
	    (jget(sched, "spec.suspend") && json_object_get_boolean(jget(sched, "spec.suspend"))) ||
	    bop_schedule_parse(&s, js(sched, "spec.schedule"), js(sched, "spec.timeZone")))
		return 0;
	/* the latest time due since the last one (older missed ones are skipped, as a
	 * CronJob does) */
	for (int i = 0; i < 100000; i++) {
		int64_t n;

		if (bop_schedule_next(s, &n, t) || n > now || n <= t)
			break;
		due = t = n;
	}
	bop_schedule_free(s);
	if (!due)
		return 0;
	*last = due;
	if (dl >= 0 && now - due > dl) {
		clog_(BOP_LOG_INFO, "schedule %s/%s: the run due at %lld missed its starting "
			"deadline", ns, name, (long long)due);
		return 0;
	}
	run_name(rn, sizeof(rn), name, due);
	lab = json_object_new_object();
	json_object_object_add(lab, "backupop.io/schedule-name", jstr(name));
	ann = json_object_new_object();
	ctl_format_time(due, when);
	json_object_object_add(ann, "backupop.io/scheduled-time", jstr(when));
	o = ctl_object_head("backupop.io/v1alpha1", "BackupRun", ns, rn, lab, ann);
	spec = json_object_new_object();
	json_object_object_add(spec, "scheduleRef", named(name));
	json_object_object_add(spec, "action", jstr("backup"));
	json_object_object_add(o, "spec", spec);
	snprintf(path, sizeof(path), CTL_GROUP_PATH "/namespaces/%s/backupruns", ns);
	ret = bop_k8s_request(c->wclient[w], NULL, NULL, BOP_K8S_CREATE, path,
		json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), NULL);
	json_object_put(o);
	if (ret == BOP_ECONFLICT || ret == BOP_EEXISTS) {
		/* made before (by us before a restart, or by another controller) */
		return 0;
	}
	if (ret) {
		clog_(BOP_LOG_WARN, "schedule %s/%s: cannot create BackupRun %s: %s", ns, name, rn,
			bop_error_last());
		*last = 0;
		return ret;
	}
	ctl_count_write(c, "BackupRun");
	clog_(BOP_LOG_INFO, "schedule %s/%s: BackupRun %s for the run due at %s", ns, name, rn, when);
	return 0;
}

typedef struct last_ok {
	const char *ns, *schedule;
	int64_t t;
	const char *backup;
	json_object *keep;
} last_ok_t;

static int last_ok_each(const char *key, const char *object, void *ud)
{
	last_ok_t *l = ud;
	json_object *o = jparse(object);
	const char *phase = js(o, "status.phase"), *action = js(o, "spec.action");

	(void)key;
	if (o && js(o, "metadata.namespace") && !strcmp(js(o, "metadata.namespace"), l->ns) &&
	    js(o, "spec.scheduleRef.name") && !strcmp(js(o, "spec.scheduleRef.name"), l->schedule) &&
	    phase && !strcmp(phase, "Succeeded") && (!action || !strcmp(action, "backup")) &&
	    js(o, "status.completionTime") &&
	    ctl_parse_time(js(o, "status.completionTime")) > l->t) {
		l->t = ctl_parse_time(js(o, "status.completionTime"));
		json_object_put(l->keep);
		l->keep = o;
		l->backup = js(o, "status.backupId");
		return 0;
	}
	json_object_put(o);
	return 0;
}

void ctl_sidecar_last_success(ctl_t *c, json_object *sched, json_object *status)
{
	last_ok_t l = { js(sched, "metadata.namespace"), js(sched, "metadata.name"), 0, NULL, NULL };
	char t[32];

	bop_k8s_informer_foreach(c->runs, last_ok_each, &l);
	if (l.t) {
		ctl_format_time(l.t, t);
		json_object_object_add(status, "lastSuccessfulTime", jstr(t));
		if (l.backup)
			json_object_object_add(status, "lastSuccessfulBackup", jstr(l.backup));
	}
	json_object_put(l.keep);
}
