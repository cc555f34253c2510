/* Reconciling one BackupSchedule: finalizer, runner objects, status. */
#include "ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[BOP_RECONCILE_KINDS] = { "Secret", "StatefulSet", "Service" };
static const char *const kind_paths[BOP_RECONCILE_KINDS] = {
	"/api/v1/namespaces/", "/apis/apps/v1/namespaces/", "/api/v1/namespaces/" };
static const char *const kind_res[BOP_RECONCILE_KINDS] = { "secrets", "statefulsets", "services" };

/* ---- lookups for the reconcile: Secrets (cached by resourceVersion) and Namespaces ---- */

typedef struct lookup_ctx {
	ctl_t *c;
	int w;
	const char *fresh_key;          /* "ns/name" of a Secret read or made just now, */
	const char *fresh;              /* which the informer may not have yet */
} lookup_ctx_t;

static int lookup_secret(ctl_t *c, int w, const char *ns, const char *name, char **object)
{
	char key[512], path[600], *meta = NULL, *body = NULL;
	json_object *m, *entry, *v;
	const char *rv;
	int ret;

	snprintf(key, sizeof(key), "%s/%s", ns, name);
	ret = bop_k8s_informer_get(c->secrets, &meta, key);
	if (ret)
		return ret;     /* BOP_ENOTFOUND: its ADDED event will bring us back */
	m = jparse(meta);
	bop_free(meta);
	rv = js(m, "metadata.resourceVersion");
	pthread_mutex_lock(&c->lock);
	if (rv && json_object_object_get_ex(c->secret_cache, key, &entry) &&
	    json_object_object_get_ex(entry, "rv", &v) && !strcmp(json_object_get_string(v), rv) &&
	    json_object_object_get_ex(entry, "object", &v)) {
		*object = bop_strdup(json_object_get_string(v));
		pthread_mutex_unlock(&c->lock);
		json_object_put(m);
		return *object ? 0 : BOP_ENOMEM;
	}
	pthread_mutex_unlock(&c->lock);
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/secrets/%s", ns, name);
	ret = bop_k8s_request(c->wclient[w], NULL, &body, BOP_K8S_GET, path, NULL, NULL);
	if (ret == 0 && body) {
		json_object *o = jparse(body);
		const char *nrv = js(o, "metadata.resourceVersion");

		if (nrv) {
			entry = json_object_new_object();
			json_object_object_add(entry, "rv", json_object_new_string(nrv));
			json_object_object_add(entry, "object", json_object_new_string(body));
			pthread_mutex_lock(&c->lock);
			json_object_object_add(c->secret_cache, key, entry);
			pthread_mutex_unlock(&c->lock);
		}
		json_object_put(o);
		*object = body;
		body = NULL;
	} else if (ret == 0) {
		ret = BOP_ENOTFOUND;
	}
	bop_free(body);
	json_object_put(m);
	return ret;
}

static int lookup(char **object, const char *kind, const char *ns, const char *name, void *ud)
{
	lookup_ctx_t *l = ud;

	if (!strcmp(kind, "Secret") && l->fresh && ns) {
		char key[512];

		snprintf(key, sizeof(key), "%s/%s", ns, name);
		if (!strcmp(key, l->fresh_key))
			return (*object = bop_strdup(l->fresh)) ? 0 : BOP_ENOMEM;
	}
	if (!strcmp(kind, "Secret"))
		return lookup_secret(l->c, l->w, ns, name, object);
	if (!strcmp(kind, "Namespace"))
		return bop_k8s_informer_get(l->c->namespaces, object, name);
	if (!strcmp(kind, "ClusterBackupTemplate"))
		return bop_k8s_informer_get(l->c->ctemplates, object, name);
	if (!strcmp(kind, "BackupTemplate") && ns) {
		char key[512];

		snprintf(key, sizeof(key), "%s/%s", ns, name);
		return bop_k8s_informer_get(l->c->templates, object, key);
	}
	return BOP_ENOTFOUND;
}

/* Forget cached Secret data that no schedule refers to any more (called on Secret
 * deletion). */
void ctl_secret_forget(ctl_t *c, const char *key)
{
	pthread_mutex_lock(&c->lock);
	json_object_object_del(c->secret_cache, key);
	pthread_mutex_unlock(&c->lock);
}

/* ---- runner objects ---- */

static int delete_objects(ctl_t *c, int w, const char *obj_name)
{
	int ret = 0;

	for (int k = BOP_RECONCILE_KINDS - 1; k >= 0; k--) {
		char path[600], key[512], *cached = NULL;
		int r;

		snprintf(key, sizeof(key), "%s/%s", c->args.namespace, obj_name);
		if (bop_k8s_informer_get(c->owned[k], &cached, key) == BOP_ENOTFOUND)
			continue;
		bop_free(cached);
		snprintf(path, sizeof(path), "%s%s/%s/%s", kind_paths[k], c->args.namespace,
			kind_res[k], obj_name);
		r = bop_k8s_request(c->wclient[w], NULL, NULL, BOP_K8S_DELETE, path,
			"{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\",\"propagationPolicy\":\"Background\"}",
			NULL);
		if (r == BOP_ENOTFOUND)
			r = 0;
		if (r) {
			clog_(BOP_LOG_WARN, "cannot delete %s %s/%s: %s", kind_names[k],
				c->args.namespace, obj_name, bop_error_last());
			ret = r;
		} else {
			clog_(BOP_LOG_INFO, "deleted %s %s/%s", kind_names[k], c->args.namespace, obj_name);
			ctl_count_write(c, kind_names[k]);
		}
	}
	return ret;
}

static int apply_objects(ctl_t *c, int w, bop_reconcile_t *r)
{
	for (int k = 0; k < BOP_RECONCILE_KINDS; k++) {
		const char *want = bop_reconcile_object_hash(r, (bop_reconcile_kind_t)k);
		char key[512], *cached = NULL;
		const char *have = NULL;
		json_object *o = NULL;
		int ret;

		snprintf(key, sizeof(key), "%s/%s", c->args.namespace, bop_reconcile_object_name(r));
		if (bop_k8s_informer_get(c->owned[k], &cached, key) == 0) {
			o = jparse(cached);
			bop_free(cached);
			have = jannotation(o, "backupop.io/desired-hash");
		}
		if (have && want && !strcmp(have, want) && !jget(o, "metadata.deletionTimestamp")) {
			json_object_put(o);
			continue;
		}
		json_object_put(o);
		ret = bop_k8s_request(c->wclient[w], NULL, NULL, BOP_K8S_APPLY,
			bop_reconcile_object_path(r, (bop_reconcile_kind_t)k),
			bop_reconcile_object(r, (bop_reconcile_kind_t)k), CTL_FIELD_MANAGER);
		if (ret) {
			clog_(BOP_LOG_WARN, "cannot apply %s %s: %s", kind_names[k], key, bop_error_last());
			return ret;
		}
		clog_(BOP_LOG_INFO, "applied %s %s", kind_names[k], key);
		ctl_count_write(c, kind_names[k]);
	}
	return 0;
}

/* ---- status ---- */

static void put_string(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, v ? json_object_new_string(v) : NULL);
}

static bool same(json_object *a, json_object *b)
{
	if (!a || !b)
		return a == b;
	return json_object_equal(a, b) != 0;
}

/* What the runner did lately, from its runs (GET /v1/runs): lastScheduleTime,
 * lastSuccessfulBackup, lastSuccessfulTime. */
static void runner_status(json_object *runs, json_object *status)
{
	int64_t last_sched = 0, last_ok = 0;
	const char *backup = NULL;
	char t[32];

	for (size_t i = 0; runs && i < json_object_array_length(runs); i++) {
		json_object *r = json_object_array_get_idx(runs, i);
		const char *phase = js(r, "phase"), *kind = js(r, "kind");

		if (jint(r, "scheduledTime", 0) > last_sched)
			last_sched = jint(r, "scheduledTime", 0);
		if (phase && !strcmp(phase, "Succeeded") && kind && !strcmp(kind, "backup") &&
		    jint(r, "end", 0) > last_ok) {
			last_ok = jint(r, "end", 0);
			backup = js(r, "backup");
		}
	}
	if (last_sched) {
		ctl_format_time(last_sched, t);
		put_string(status, "lastScheduleTime", t);
	}
	if (last_ok) {
		ctl_format_time(last_ok, t);
		put_string(status, "lastSuccessfulTime", t);
		if (backup)
			put_string(status, "lastSuccessfulBackup", backup);
	}
}

/* While a runner's run goes on, its schedule's status is refreshed this often. */
#define ACTIVE_POLL_MS 10000u

static bool run_going(json_object *runs)
{
	for (size_t i = 0; i < json_object_array_length(runs); i++) {
		const char *phase = js(json_object_array_get_idx(runs, i), "phase");

		if (phase && (!strcmp(phase, "Pending") || !strcmp(phase, "Running")))
			return true;
	}
	return false;
}

/* The runner's runs, or NULL when it cannot be asked. */
static json_object *runner_runs(ctl_t *c, int w, const char *ns, const char *name,
	const char *uid)
{
	rapi_reply_t rep;
	json_object *o, *runs = NULL;

	if (ctl_runner_call(c, w, ns, name, uid, "GET", "/v1/runs", NULL, &rep) || rep.status != 200) {
		clog_(BOP_LOG_DEBUG, "schedule %s/%s: cannot list the runner's runs: %s", ns, name,
			rep.status ? "unexpected answer" : bop_error_last());
		rapi_reply_clear(&rep);
		return NULL;
	}
	o = jparse(rep.body);
	if (jget(o, "runs") && json_object_is_type(jget(o, "runs"), json_type_array))
		runs = json_object_get(jget(o, "runs"));
	json_object_put(o);
	rapi_reply_clear(&rep);
	return runs;
}

/* How the schedule runs: by its own runner, or by sidecars (sc_problem: why they cannot;
 * sc_last: the scheduled time whose BackupRun was made, 0 for none). */
typedef struct sc_state {
	bool on;
	const char *problem;
	int64_t last;
} sc_state_t;

static int write_status(ctl_t *c, int w, json_object *sched, const char *text,
	bop_reconcile_t *r, int64_t *next_out, json_object *runs, const char *recipient,
	const sc_state_t *sc)
{
	const char *ns = js(sched, "metadata.namespace"), *name = js(sched, "metadata.name");
	json_object *old = jget(sched, "status");
	json_object *status = json_object_new_object(), *conds = NULL, *patch;
	bop_reconcile_condition_t cond;
	bop_schedule_t *s = NULL;
	char *ctext = NULL, path[600], t[32];
	int ret, changed = 0;
	bool dirty = false;

	cond.type = "Ready";
	if (bop_reconcile_valid(r) && sc->on && sc->problem) {
		cond.status = "False";
		cond.reason = "InvalidSpec";
		cond.message = sc->problem;
	} else if (bop_reconcile_valid(r) && sc->on) {
		cond.status = "True";
		cond.reason = "SidecarConfigured";
		cond.message = js(sched, "spec.schedule") ? "the sidecar's Secret is up to date; "
			"workloads labelled backupop.io/schedule with this schedule's name get the "
			"sidecar; the controller makes a BackupRun at each scheduled time" :
			"the sidecar's Secret is up to date; workloads labelled backupop.io/schedule "
			"with this schedule's name get the sidecar; no spec.schedule, so backups run "
			"only when a BackupRun asks";
	} else if (bop_reconcile_valid(r) && !js(sched, "spec.schedule")) {
		/* a schedule without a cron only parents BackupRuns (backupop-controller(8)) */
		cond.status = "True";
		cond.reason = "OnDemandOnly";
		cond.message = "the runner's Secret, StatefulSet and Service are up to date; no "
			"spec.schedule, so backups run only when a BackupRun asks";
	} else if (bop_reconcile_valid(r)) {
		cond.status = "True";
		cond.reason = "RunnerApplied";
		cond.message = "the runner's Secret, StatefulSet and Service are up to date";
	} else {
		cond.status = "False";
		cond.reason = bop_reconcile_reason(r);
		cond.message = bop_reconcile_message(r);
	}
	ret = bop_reconcile_condition_set(&ctext, &changed, text, &cond, ctl_now());
	if (ret)
		goto out;
	conds = json_tokener_parse(ctext);
	json_object_object_add(status, "conditions", json_object_get(conds));
	json_object_object_add(status, "observedGeneration",
		json_object_new_int64(jint(sched, "metadata.generation", 0)));
	put_string(status, "runnerName", sc->on ? NULL : bop_reconcile_object_name(r));
	/* generateIdentity's recipient (public); null drops it */
	put_string(status, "recipient", recipient);
	*next_out = 0;
	if (js(sched, "spec.schedule") &&
	    bop_schedule_parse(&s, js(sched, "spec.schedule"), js(sched, "spec.timeZone")) == 0 &&
	    bop_schedule_next(s, next_out, ctl_now()) == 0) {
		ctl_format_time(*next_out, t);
		put_string(status, "nextScheduleTime", t);
	} else {
		put_string(status, "nextScheduleTime", NULL);   /* null: the patch drops it */
	}
	bop_schedule_free(s);
	/* what only the runner knows; kept as it was unless the runner tells us more */
	{
		static const char *const keep[] = { "lastScheduleTime", "lastSuccessfulBackup",
			"lastSuccessfulTime", NULL };

		for (int i = 0; keep[i]; i++) {
			json_object *v = jget(old, keep[i]);

			if (v)
				json_object_object_add(status, keep[i], json_object_get(v));
		}
	}
	if (runs)
		runner_status(runs, status);
	if (sc->on) {
		if (sc->last) {
			ctl_format_time(sc->last, t);
			put_string(status, "lastScheduleTime", t);
		}
		ctl_sidecar_last_success(c, sched, status);
	}
	json_object_object_foreach(status, k, v) {
		if (!same(v, jget(old, k)))
			dirty = true;
	}
	if (changed)
		dirty = true;
	if (!dirty)
		goto out;
	patch = json_object_new_object();
	json_object_object_add(patch, "status", json_object_get(status));
	snprintf(path, sizeof(path), CTL_GROUP_PATH "/namespaces/%s/backupschedules/%s/status", ns, name);
	ret = bop_k8s_request(c->wclient[w], NULL, NULL, BOP_K8S_PATCH, path,
		json_object_to_json_string_ext(patch, JSON_C_TO_STRING_PLAIN), NULL);
	json_object_put(patch);
	if (ret == BOP_ENOTFOUND)
		ret = 0;
	else if (ret == 0)
		ctl_count_write(c, "BackupScheduleStatus");
	if (ret == 0 && changed && !bop_reconcile_valid(r))
		bop_k8s_event(c->recorder, text, "Warning", cond.reason, cond.message);
	else if (ret == 0 && changed)
		bop_k8s_event(c->recorder, text, "Normal", cond.reason, sc->on ?
			"the schedule's sidecar is configured" : "the schedule's runner is configured");
out:
	bop_free(ctext);
	json_object_put(conds);
	json_object_put(status);
	return ret;
}

/* ---- the reconcile ---- */

static void collect_refs(bop_reconcile_t *r, json_object *sched, const char **refs,
	char bufs[][600], size_t max)
{
	const char *tkind = js(sched, "spec.templateRef.kind");
	const char *tname = js(sched, "spec.templateRef.name");
	size_t n = 0;
	const char *ref;

	if (tname) {
		/* the template's events bring the schedule back (main.c) */
		if (tkind && !strcmp(tkind, "BackupTemplate"))
			snprintf(bufs[n], 600, "template:BackupTemplate:%s/%s",
				js(sched, "metadata.namespace"), tname);
		else
			snprintf(bufs[n], 600, "template:ClusterBackupTemplate:%s", tname);
		refs[n] = bufs[n];
		n++;
	}
	for (size_t i = 0; n + 2 < max && (ref = bop_reconcile_secret_ref(r, i)); i++) {
		snprintf(bufs[n], 600, "secret:%s", ref);
		refs[n] = bufs[n];
		n++;
	}
	if (bop_reconcile_storage_name(r)) {
		snprintf(bufs[n], 600, "storage:%s", bop_reconcile_storage_name(r));
		refs[n] = bufs[n];
		n++;
	}
	refs[n] = NULL;
}

int ctl_reconcile_schedule(ctl_t *c, int w, const char *ns, const char *name)
{
	char key[512], path[600], *text = NULL, *storage = NULL, *token = NULL, *obj_name = NULL;
	char *fresh = NULL, *recipient = NULL, fresh_key[512];
	bop_reconcile_options_t opts = BOP_RECONCILE_OPTIONS_INIT;
	lookup_ctx_t lc = { c, w, NULL, NULL };
	bop_reconcile_t *r = NULL;
	json_object *sched = NULL, *runs = NULL;
	int64_t next = 0, old_next;
	bool poll, active, ended;
	sc_state_t sc = { false, NULL, 0 };
	int ret, ensure_ret = 0;

	snprintf(key, sizeof(key), "%s/%s", ns, name);
	snprintf(path, sizeof(path), CTL_GROUP_PATH "/namespaces/%s/backupschedules/%s", ns, name);
	ret = bop_k8s_informer_get(c->schedules, &text, key);
	if (ret == BOP_ENOTFOUND) {
		/* gone without our finalizer (or we missed it): remove what we made */
		pthread_mutex_lock(&c->lock);
		ctl_index_remove(c->refs, key);
		json_object_object_del(c->active, key);
		json_object_object_del(c->unreachable, key);
		pthread_mutex_unlock(&c->lock);
		ctl_sidecar_forget(c, ns, name);
		ret = bop_reconcile_name(&obj_name, "runner", ns, name);
		if (ret == 0)
			ret = delete_objects(c, w, obj_name);
		goto out;
	}
	if (ret)
		goto out;
	sched = jparse(text);
	if (!sched) {
		ret = bop_error_set(BOP_EFORMAT, "the schedule is not a JSON object");
		goto out;
	}
	if (jget(sched, "metadata.deletionTimestamp")) {
		ctl_sidecar_forget(c, ns, name);
		ret = bop_reconcile_name(&obj_name, "runner", ns, name);
		if (ret == 0)
			ret = delete_objects(c, w, obj_name);
		if (ret == 0 && ctl_has_finalizer(sched)) {
			ret = ctl_set_finalizer(c, w, sched, path, false);
			if (ret == 0)
				clog_(BOP_LOG_INFO, "schedule %s deleted: runner objects removed", key);
		}
		pthread_mutex_lock(&c->lock);
		ctl_index_remove(c->refs, key);
		json_object_object_del(c->active, key);
		json_object_object_del(c->unreachable, key);
		pthread_mutex_unlock(&c->lock);
		goto out;
	}
	if (!ctl_has_finalizer(sched)) {
		/* the update comes back as an event and reconciles again */
		ret = ctl_set_finalizer(c, w, sched, path, true);
		goto out;
	}
	if (js(sched, "spec.storage.name"))
		bop_k8s_informer_get(c->storages, &storage, js(sched, "spec.storage.name"));
	ret = bop_reconcile_runner_token(&token, c->key, sizeof(c->key), js(sched, "metadata.uid"));
	if (ret)
		goto out;
	opts.runner_namespace = c->args.namespace;
	opts.runner_image = c->args.runner_image;
	opts.pull_secrets = c->args.pull_secrets;
	opts.n_pull_secrets = c->args.n_pull_secrets;
	opts.runner_port = c->args.runner_port;
	opts.api_token = token;
	/* on failure the reconcile goes on (its condition says the Secret is missing) and the
	 * error, returned at the end, has the key retried with backoff */
	ensure_ret = ctl_identity_ensure(c, w, sched, &fresh);
	if (ensure_ret)
		clog_(BOP_LOG_WARN, "schedule %s: cannot read or create the generateIdentity "
			"Secret: %s", key, bop_error_last());
	if (fresh) {
		snprintf(fresh_key, sizeof(fresh_key), "%s/%s", ns,
			js(sched, "spec.encryption.generateIdentity.secretName"));
		lc.fresh_key = fresh_key;
		lc.fresh = fresh;
	}
	opts.lookup = lookup;
	opts.payload = &lc;
	ret = bop_reconcile_new(&r, &opts, text, storage);
	if (ret)
		goto out;
	if (bop_reconcile_valid(r) && js(sched, "spec.encryption.generateIdentity.secretName")) {
		const char *id_name = js(sched, "spec.encryption.generateIdentity.secretName");
		char *secret = NULL;

		if (lookup(&secret, "Secret", ns, id_name, &lc) == 0)
			recipient = ctl_identity_recipient(secret);
		if (secret)
			memset(secret, 0, strlen(secret));
		bop_free(secret);
	}
	{
		const char *refs[40];
		char bufs[40][600];

		collect_refs(r, sched, refs, bufs, 40);
		pthread_mutex_lock(&c->lock);
		ctl_index_set(c->refs, key, refs);
		pthread_mutex_unlock(&c->lock);
	}
	sc.on = jget(sched, "spec.sidecar") != NULL;
	sc.problem = sc.on ? ctl_sidecar_problem(sched) : NULL;
	if (!sc.on) {
		bool had;

		pthread_mutex_lock(&c->lock);
		had = json_object_object_get_ex(c->sidecars, key, NULL);
		pthread_mutex_unlock(&c->lock);
		if (had)
			ctl_sidecar_forget(c, ns, name);
	}
	if (bop_reconcile_valid(r) && !sc.on) {
		ret = apply_objects(c, w, r);
		if (ret)
			goto out;
	} else if (bop_reconcile_valid(r) && !sc.problem) {
		/* sidecars run it: no runner of its own */
		if ((ret = delete_objects(c, w, bop_reconcile_object_name(r))) ||
		    (ret = ctl_sidecar_apply(c, w, sched, r)) ||
		    (ret = ctl_sidecar_schedule(c, w, sched, &sc.last)))
			goto out;
	}
	/* the runner is asked only when a run was due since the status was last written, or
	 * while a run it reported goes on: there is no polling between runs */
	old_next = js(sched, "status.nextScheduleTime") ?
		ctl_parse_time(js(sched, "status.nextScheduleTime")) : 0;
	pthread_mutex_lock(&c->lock);
	active = json_object_object_get_ex(c->active, key, NULL);
	pthread_mutex_unlock(&c->lock);
	poll = (old_next > 0 && old_next <= ctl_now()) || active;
	ended = active;
	if (poll && bop_reconcile_valid(r) && !sc.on)
		runs = runner_runs(c, w, ns, name, js(sched, "metadata.uid"));
	active = runs && run_going(runs);
	pthread_mutex_lock(&c->lock);
	if (active)
		json_object_object_add(c->active, key, NULL);
	else
		json_object_object_del(c->active, key);
	pthread_mutex_unlock(&c->lock);
	ret = write_status(c, w, sched, text, r, &next, runs, recipient, &sc);
	if (ret)
		goto out;
	if (runs) {
		/* the status as it was before write_status(): the informer's copy may already
		 * carry the lastScheduleTime just written, which would hide these runs */
		ctl_runs_mirror_scheduled(c, w, ns, name, js(sched, "status.lastScheduleTime") ?
			ctl_parse_time(js(sched, "status.lastScheduleTime")) : 0, runs);
		ctl_runs_enforce_history(c, w, ns, name, jget(sched, "spec"));
	} else if (ended) {
		/* BackupRuns ended (or were followed) while the runner cannot be asked */
		ctl_runs_enforce_history(c, w, ns, name, jget(sched, "spec"));
	}
	/* come back after the next run to refresh the status */
	if (active)
		ctl_enqueue(c, 's', key, ACTIVE_POLL_MS);
	else if (sc.on && next > ctl_now())
		/* sidecar mode: the controller makes the run, just after it is due */
		ctl_enqueue(c, 's', key, (unsigned int)((next - ctl_now()) * 1000 + 300 > 86400000 ?
			86400000 : (next - ctl_now()) * 1000 + 300));
	else if (next > ctl_now())
		ctl_enqueue(c, 's', key, (unsigned int)((next - ctl_now() + 5) * 1000 > 86400000 ?
			86400000 : (next - ctl_now() + 5) * 1000));
out:
	if (ret == 0 && ensure_ret)
		ret = bop_error_set(ensure_ret, "cannot read or create the generateIdentity "
			"Secret");
	if (token) {
		memset(token, 0, strlen(token));
		bop_free(token);
	}
	if (fresh) {
		memset(fresh, 0, strlen(fresh));
		bop_free(fresh);
	}
	bop_free(recipient);
	bop_reconcile_free(r);
	json_object_put(runs);
	json_object_put(sched);
	bop_free(text);
	bop_free(storage);
	bop_free(obj_name);
	return ret;
}

typedef struct sweep_ctx {
	ctl_t *c;
	json_object *want;      /* object names of existing schedules */
	json_object *orphans;   /* {name: null} */
} sweep_ctx_t;

static int sweep_want(const char *key, const char *object, void *ud)
{
	sweep_ctx_t *s = ud;
	char ns[256], *name = NULL;
	const char *slash = strchr(key, '/');

	(void)object;
	if (!slash || (size_t)(slash - key) >= sizeof(ns))
		return 0;
	memcpy(ns, key, (size_t)(slash - key));
	ns[slash - key] = '\0';
	if (bop_reconcile_name(&name, "runner", ns, slash + 1) == 0)
		json_object_object_add(s->want, name, NULL);
	bop_free(name);
	return 0;
}

static int sweep_have(const char *key, const char *object, void *ud)
{
	sweep_ctx_t *s = ud;
	const char *slash = strchr(key, '/');

	(void)object;
	if (slash && !json_object_object_get_ex(s->want, slash + 1, NULL))
		json_object_object_add(s->orphans, slash + 1, NULL);
	return 0;
}

/* Runner objects whose schedule is gone (deleted while no controller ran). */
int ctl_sweep_orphans(ctl_t *c, int w)
{
	sweep_ctx_t s = { c, json_object_new_object(), json_object_new_object() };
	int ret = 0;

	bop_k8s_informer_foreach(c->schedules, sweep_want, &s);
	for (int k = 0; k < BOP_RECONCILE_KINDS; k++)
		bop_k8s_informer_foreach(c->owned[k], sweep_have, &s);
	json_object_object_foreach(s.orphans, n, unused) {
		(void)unused;
		clog_(BOP_LOG_INFO, "sweeping orphaned runner objects %s/%s", c->args.namespace, n);
		if (delete_objects(c, w, n))
			ret = -1;
	}
	json_object_put(s.want);
	json_object_put(s.orphans);
	return ret;
}
