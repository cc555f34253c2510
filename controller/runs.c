/* BackupRuns: sending the action to the schedule's runner, following it, mirroring it into
 * status; scheduled runs mirrored as BackupRuns; history limits. */
#include "ctl.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool terminal(const char *phase)
{
	return phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed"));
}



/* Writes `status` (merged) when it differs from what the run has. */
static int patch_status(ctl_t *c, int w, json_object *run, const char *path, json_object *status)
{
	json_object *old = jget(run, "status"), *patch;
	char spath[700];
	bool dirty = false;
	int ret;

	json_object_object_foreach(status, k, v) {
		json_object *o = jget(old, k);

		if (!(v ? (o && json_object_equal(v, o)) : !o))
			dirty = true;
	}
	if (!dirty)
		return 0;
	patch = json_object_new_object();
	json_object_object_add(patch, "status", json_object_get(status));
	snprintf(spath, sizeof(spath), "%s/status", path);
	ret = bop_k8s_request(c->wclient[w], NULL, NULL, BOP_K8S_PATCH, spath,
		json_object_to_json_string_ext(patch, JSON_C_TO_STRING_PLAIN), NULL);
	json_object_put(patch);
	if (ret == 0)
		ctl_count_write(c, "BackupRunStatus");
	return ret == BOP_ENOTFOUND ? 0 : ret;
}

static void put_time(json_object *o, const char *k, int64_t t)
{
	char buf[32];

	if (t <= 0)
		return;
	ctl_format_time(t, buf);
	json_object_object_add(o, k, json_object_new_string(buf));
}

static void put_str(json_object *o, const char *k, const char *v)
{
	if (v && *v)
		json_object_object_add(o, k, json_object_new_string(v));
}

/* The runner's record of a run -> BackupRun status fields. */
static json_object *mirror(json_object *rr)
{
	json_object *st = json_object_new_object();

	put_str(st, "phase", js(rr, "phase"));
	put_str(st, "runId", js(rr, "id"));
	put_time(st, "startTime", jint(rr, "start", 0));
	put_time(st, "completionTime", jint(rr, "end", 0));
	json_object_object_add(st, "bytesIn", json_object_new_int64(jint(rr, "bytesIn", 0)));
	json_object_object_add(st, "bytesOut", json_object_new_int64(jint(rr, "bytesOut", 0)));
	put_str(st, "sha256", js(rr, "sha256"));
	put_str(st, "backupId", js(rr, "backup"));
	put_str(st, "error", js(rr, "error"));
	return st;
}

static json_object *failed(const char *msg)
{
	json_object *st = json_object_new_object();

	put_str(st, "phase", "Failed");
	put_str(st, "error", msg);
	return st;
}

static const char *action_path(const char *action)
{
	if (!action || !strcmp(action, "backup"))
		return "/v1/backups";
	if (!strcmp(action, "restore"))
		return "/v1/restores";
	if (!strcmp(action, "verify"))
		return "/v1/verifications";
	return NULL;
}

/* The schedule's runner, or in sidecar mode one of its sidecars: `pod` (the run's
 * status.runnerPod) when not NULL, else the first Ready one that answers (*used). */
static int call(ctl_t *c, int w, json_object *sched, const char *pod, char **used,
	const char *method, const char *path, const char *body, rapi_reply_t *rep)
{
	if (used)
		*used = NULL;
	if (sched && jget(sched, "spec.sidecar"))
		return ctl_sidecar_call(c, w, sched, pod, used, method, path, body, rep);
	return ctl_runner_call(c, w, js(sched, "metadata.namespace"),
		js(sched, "metadata.name"), js(sched, "metadata.uid"), method, path, body, rep);
}

static int run_deleted(ctl_t *c, int w, json_object *run, const char *path, const char *uid,
	json_object *sched)
{
	const char *ns = js(run, "metadata.namespace");
	const char *backup = js(run, "status.backupId"), *policy = js(run, "spec.retainPolicy");
	const char *action = js(run, "spec.action");
	int ret;

	if (!ctl_has_finalizer(run))
		return 0;
	if (policy && !strcmp(policy, "Delete") && backup && uid &&
	    (!action || !strcmp(action, "backup")) && !strcmp(js(run, "status.phase") ?
	    js(run, "status.phase") : "", "Succeeded")) {
		rapi_reply_t rep;
		char p[400];

		snprintf(p, sizeof(p), "/v1/backups/%s", backup);
		ret = call(c, w, sched, NULL, NULL, "DELETE", p, NULL, &rep);
		if (ret == 0 && rep.status != 404 && (rep.status < 200 || rep.status > 299)) {
			ret = bop_error_set(BOP_EIO, rep.body ? rep.body : "the runner refused");
		}
		rapi_reply_clear(&rep);
		if (ret) {
			clog_(BOP_LOG_WARN, "BackupRun %s/%s: cannot delete backup %s yet: %s", ns,
				js(run, "metadata.name"), backup, bop_error_last());
			return ret;
		}
		clog_(BOP_LOG_INFO, "BackupRun %s/%s deleted with retainPolicy Delete: backup %s "
			"removed from storage", ns, js(run, "metadata.name"), backup);
	}
	return ctl_set_finalizer(c, w, run, path, false);
}

/*
 * A BackupRun is sent to its runner once. Its run id goes into status.runId, but this
 * worker reads the informer's copy, which may not show that patch yet when the key comes
 * round again (an event queued it meanwhile, or the patch failed and is retried): without
 * more, that would POST a second run. So the runs sent are remembered here, by the
 * BackupRun's uid, until the cache shows a runId; a controller that restarts lists the
 * BackupRuns afresh, with every runId patched before it stopped.
 */
static void posted_remember(ctl_t *c, const char *uid, const char *id, const char *pod)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(id));
	if (pod)
		json_object_object_add(o, "pod", json_object_new_string(pod));
	pthread_mutex_lock(&c->lock);
	json_object_object_add(c->posted, uid, o);
	pthread_mutex_unlock(&c->lock);
}

/* What was remembered for `uid` (copies, to free), or false. */
static bool posted_recall(ctl_t *c, const char *uid, char **id, char **pod)
{
	json_object *o = NULL;

	*id = *pod = NULL;
	pthread_mutex_lock(&c->lock);
	if (json_object_object_get_ex(c->posted, uid, &o)) {
		*id = strdup(js(o, "id"));
		*pod = js(o, "pod") ? strdup(js(o, "pod")) : NULL;
	}
	pthread_mutex_unlock(&c->lock);
	return *id != NULL;
}

static void posted_forget(ctl_t *c, const char *uid)
{
	pthread_mutex_lock(&c->lock);
	json_object_object_del(c->posted, uid);
	pthread_mutex_unlock(&c->lock);
}

#define PENDING_POLL_MS 5000

/* The run could not be sent to its runner: Pending with the reason, tried again in a few
 * seconds; Failed once the runner has not been reached for --runner-unreachable-seconds
 * since the run was made (nothing was run). */
static json_object *not_sent(ctl_t *c, json_object *run, const char *key, const char *why,
	unsigned int *retry_ms)
{
	int64_t made = ctl_parse_time(js(run, "metadata.creationTimestamp"));
	int64_t age = made > 0 ? ctl_now() - made : 0, left;
	json_object *st;
	char msg[1400];

	left = (int64_t)c->args.unreachable_seconds - age;
	if (left <= 0) {
		snprintf(msg, sizeof(msg), "nothing was run: the runner could not be reached for "
			"%llds after the BackupRun was made (--runner-unreachable-seconds %u): %s",
			(long long)age, c->args.unreachable_seconds, why);
		clog_(BOP_LOG_WARN, "BackupRun %s: %s", key, msg);
		return failed(msg);
	}
	if (!js(run, "status.error") || strcmp(js(run, "status.error"), why))
		clog_(BOP_LOG_INFO, "BackupRun %s: %s (trying again; it fails in %llds if the "
			"runner stays unreachable)", key, why, (long long)left);
	st = json_object_new_object();
	put_str(st, "phase", "Pending");
	put_str(st, "error", why);
	*retry_ms = left * 1000 < PENDING_POLL_MS ? (unsigned int)(left * 1000 + 100) :
		PENDING_POLL_MS;
	return st;
}

int ctl_reconcile_run(ctl_t *c, int w, const char *ns, const char *name)
{
	char key[512], path[700], skey[512], *text = NULL, *stext = NULL;
	char *sent_id = NULL, *sent_pod = NULL;
	json_object *run = NULL, *sched = NULL, *st = NULL, *rr = NULL;
	const char *sname, *action, *phase, *run_id, *uid = NULL, *run_uid, *pod;
	rapi_reply_t rep = { 0, NULL };
	char *used = NULL;
	int ret;

	snprintf(key, sizeof(key), "%s/%s", ns, name);
	snprintf(path, sizeof(path), CTL_GROUP_PATH "/namespaces/%s/backupruns/%s", ns, name);
	ret = bop_k8s_informer_get(c->runs, &text, key);
	if (ret == BOP_ENOTFOUND)
		return 0;
	if (ret || !(run = jparse(text)))
		goto out;
	run_uid = js(run, "metadata.uid");
	sname = js(run, "spec.scheduleRef.name");
	action = js(run, "spec.action");
	phase = js(run, "status.phase");
	if (sname) {
		snprintf(skey, sizeof(skey), "%s/%s", ns, sname);
		if (bop_k8s_informer_get(c->schedules, &stext, skey) == 0) {
			sched = jparse(stext);
			uid = js(sched, "metadata.uid");
		}
	}
	if (run_uid && (terminal(phase) || js(run, "status.runId") ||
	    jget(run, "metadata.deletionTimestamp")))
		posted_forget(c, run_uid);
	if (jget(run, "metadata.deletionTimestamp")) {
		ret = run_deleted(c, w, run, path, uid, sched);
		goto out;
	}
	if (js(run, "spec.retainPolicy") && !strcmp(js(run, "spec.retainPolicy"), "Delete") &&
	    !ctl_has_finalizer(run)) {
		ret = ctl_set_finalizer(c, w, run, path, true);
		goto out;
	}
	if (terminal(phase))
		goto out;
	if (!action_path(action)) {
		st = failed("spec.action must be backup, restore or verify");
		goto write;
	}
	if (js(run, "spec.targetDatabase") && (!action || strcmp(action, "restore"))) {
		st = failed("spec.targetDatabase applies to restores only (spec.action: restore)");
		goto write;
	}
	if (!sched || !uid) {
		char msg[600];

		snprintf(msg, sizeof(msg), "BackupSchedule %s/%s does not exist", ns, sname ? sname : "");
		st = failed(msg);
		goto write;
	}
	run_id = js(run, "status.runId");
	pod = js(run, "status.runnerPod");
	if (!run_id)
		run_id = jannotation(run, "backupop.io/run-id");
	if (!run_id && run_uid && posted_recall(c, run_uid, &sent_id, &sent_pod)) {
		run_id = sent_id;
		pod = sent_pod;
	}
	if (!run_id && !run_uid) {
		st = failed("the BackupRun has no uid");
		goto write;
	}
	if (!run_id) {
		json_object *body = json_object_new_object();
		const char *backup = js(run, "spec.backup");
		char post[200];

		if (backup && strcmp(action, "backup"))
			json_object_object_add(body, "backup", json_object_new_string(backup));
		/* the runner checks the name and whether its engine can restore into it */
		if (js(run, "spec.targetDatabase"))
			json_object_object_add(body, "targetDatabase",
				json_object_new_string(js(run, "spec.targetDatabase")));
		/* The BackupRun's uid as the requestId: sent again after a crash that lost the
		 * answer, the POST gets the run it made, not a second one. */
		snprintf(post, sizeof(post), "%s?requestId=%s", action_path(action), run_uid);
		ret = call(c, w, sched, NULL, &used, "POST", post,
			json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN), &rep);
		json_object_put(body);
		if (ret) {
			/* the runner may still be starting: try again, up to the deadline */
			unsigned int retry_ms = 0;

			st = not_sent(c, run, key, bop_error_last(), &retry_ms);
			if (!retry_ms)
				goto write;
			ret = patch_status(c, w, run, path, st);
			if (ret == 0)
				ctl_enqueue(c, 'r', key, retry_ms);
			goto out;
		}
		if (rep.status < 200 || rep.status > 299) {
			char msg[1200];
			json_object *e = jparse(rep.body);

			snprintf(msg, sizeof(msg), "the runner refused the %s (HTTP %ld): %s", action,
				rep.status, js(e, "error") ? js(e, "error") : js(e, "message") ?
				js(e, "message") : "no message");
			json_object_put(e);
			st = failed(msg);
			goto write;
		}
		rr = jparse(rep.body);
		if (!js(rr, "id")) {
			st = failed("the runner's answer has no run id");
			goto write;
		}
		posted_remember(c, run_uid, js(rr, "id"), used);
		clog_(BOP_LOG_INFO, "BackupRun %s: %s started as run %s", key, action, js(rr, "id"));
		bop_k8s_event(c->recorder, text, "Normal", "Started", "the runner started the run");
		st = mirror(rr);
		put_str(st, "runnerPod", used);
		goto write;
	}
	{
		char p[400];

		snprintf(p, sizeof(p), "/v1/runs/%s", run_id);
		ret = call(c, w, sched, pod, NULL, "GET", p, NULL, &rep);
	}
	if (ret == BOP_ENOTFOUND && pod && jget(sched, "spec.sidecar")) {
		/* Its sidecar's pod was deleted or evicted while the run ran: the run ended
		 * with it, and no answer will ever come. */
		char msg[1200];

		snprintf(msg, sizeof(msg), "%s; the run ended with it, unfinished (a backup it was "
			"making has no manifest, so it does not exist; `backupop gc` removes its "
			"partial data)", bop_error_last());
		clog_(BOP_LOG_WARN, "BackupRun %s: %s", key, msg);
		st = failed(msg);
		put_str(st, "runId", run_id);
		put_str(st, "runnerPod", pod);
		goto write;
	}
	if (ret)
		goto out;
	if (rep.status == 404) {
		st = failed("the runner has no record of this run (it was restarted before the run "
			"was recorded, or its history limits removed it)");
		put_str(st, "runId", run_id);
		goto write;
	}
	if (rep.status != 200 || !(rr = jparse(rep.body))) {
		ret = bop_error_set(BOP_EIO, "unexpected answer from the runner");
		goto out;
	}
	st = mirror(rr);
	if (sent_id)    /* the patch that sent it may have failed: these too */
		put_str(st, "runnerPod", sent_pod);
write:
	ret = patch_status(c, w, run, path, st);
	if (ret)
		goto out;
	if (terminal(js(st, "phase"))) {
		bool ok = !strcmp(js(st, "phase"), "Succeeded");

		bop_k8s_event(c->recorder, text, ok ? "Normal" : "Warning", ok ? "Succeeded" : "Failed",
			ok ? "the run succeeded" : js(st, "error") ? js(st, "error") : "the run failed");
		if (sched && (!action || !strcmp(action, "backup"))) {
			/* every backup's outcome on the schedule too */
			char msg[1400];

			if (ok)
				snprintf(msg, sizeof(msg), "BackupRun %s: backup %s (%lld bytes stored)",
					name, js(st, "backupId") ? js(st, "backupId") : "?",
					(long long)jint(st, "bytesOut", 0));
			else
				snprintf(msg, sizeof(msg), "BackupRun %s: %s", name,
					js(st, "error") ? js(st, "error") : "the backup failed");
			bop_k8s_event(c->recorder, stext, ok ? "Normal" : "Warning",
				ok ? "BackupSucceeded" : "BackupFailed", msg);
		}
		if (sched) {
			/* the schedule asks its runner once more, so its status shows this run
			 * (on-demand schedules have no scheduled time that would make it ask), and
			 * applies the history limits: once however many runs end meanwhile */
			pthread_mutex_lock(&c->lock);
			json_object_object_add(c->active, skey, NULL);
			pthread_mutex_unlock(&c->lock);
			ctl_enqueue(c, 's', skey, 0);
		}
	} else {
		ctl_enqueue(c, 'r', key, c->args.poll_seconds * 1000);
	}
out:
	free(sent_id);
	free(sent_pod);
	bop_free(used);
	rapi_reply_clear(&rep);
	json_object_put(rr);
	json_object_put(st);
	json_object_put(run);
	json_object_put(sched);
	bop_free(text);
	bop_free(stext);
	return ret;
}

/* ---- scheduled runs as BackupRuns ---- */

static void run_name(char *out, size_t size, const char *schedule, const char *id)
{
	size_t n;

	n = (size_t)snprintf(out, size, "%s-%s", schedule, id);
	if (n >= size)
		n = size - 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)out[i];

		out[i] = isalnum(ch) ? (char)tolower(ch) : ch == '.' ? '.' : '-';
	}
}

int ctl_runs_mirror_scheduled(ctl_t *c, int w, const char *ns, const char *schedule,
	int64_t since, json_object *runs)
{
	char skey[512];
	int ret = 0;

	snprintf(skey, sizeof(skey), "%s/%s", ns, schedule);
	for (size_t i = 0; runs && i < json_object_array_length(runs); i++) {
		json_object *rr = json_object_array_get_idx(runs, i), *o, *spec, *lab, *ann;
		char name[254], key[600], path[600], *have = NULL;
		const char *id = js(rr, "id");

		if (!id || !js(rr, "trigger") || strcmp(js(rr, "trigger"), "scheduled") ||
		    jint(rr, "scheduledTime", 0) <= since)
			continue;
		run_name(name, sizeof(name), schedule, id);
		snprintf(key, sizeof(key), "%s/%s", ns, name);
		if (bop_k8s_informer_get(c->runs, &have, key) == 0) {
			bop_free(have);
			continue;
		}
		spec = json_object_new_object();
		lab = json_object_new_object();
		ann = json_object_new_object();
		json_object_object_add(lab, "backupop.io/schedule-name", json_object_new_string(schedule));
		json_object_object_add(ann, "backupop.io/run-id", json_object_new_string(id));
		o = ctl_object_head("backupop.io/v1alpha1", "BackupRun", ns, name, lab, ann);
		json_object_object_add(spec, "scheduleRef", json_object_new_object());
		json_object_object_add(jget(spec, "scheduleRef"), "name", json_object_new_string(schedule));
		json_object_object_add(spec, "action", json_object_new_string(
			js(rr, "kind") && !strcmp(js(rr, "kind"), "verify") ? "verify" : "backup"));
		json_object_object_add(o, "spec", spec);
		snprintf(path, sizeof(path), CTL_GROUP_PATH "/namespaces/%s/backupruns", ns);
		ret = bop_k8s_request(c->wclient[w], NULL, NULL, BOP_K8S_CREATE, path,
			json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), NULL);
		json_object_put(o);
		if (ret == BOP_ECONFLICT || ret == BOP_EEXISTS)
			ret = 0;
		if (ret) {
			clog_(BOP_LOG_WARN, "cannot create BackupRun %s for scheduled run %s: %s", key, id,
				bop_error_last());
			break;
		}
		ctl_count_write(c, "BackupRun");
		clog_(BOP_LOG_INFO, "scheduled run %s of %s mirrored as BackupRun %s", id, skey, name);
	}
	return ret;
}

/* ---- history limits ---- */

typedef struct hist_ctx {
	const char *ns, *schedule;
	json_object *ok, *bad;  /* arrays of {name, t} */
} hist_ctx_t;

static int hist_collect(const char *key, const char *object, void *ud)
{
	hist_ctx_t *h = ud;
	json_object *o = jparse(object), *e;
	const char *phase;

	(void)key;
	if (!o)
		return 0;
	phase = js(o, "status.phase");
	if (js(o, "metadata.namespace") && !strcmp(js(o, "metadata.namespace"), h->ns) &&
	    js(o, "spec.scheduleRef.name") && !strcmp(js(o, "spec.scheduleRef.name"), h->schedule) &&
	    terminal(phase) && !jget(o, "metadata.deletionTimestamp")) {
		const char *t = js(o, "status.completionTime");

		e = json_object_new_object();
		json_object_object_add(e, "name", json_object_new_string(js(o, "metadata.name")));
		json_object_object_add(e, "t", json_object_new_int64(t ? ctl_parse_time(t) :
			ctl_parse_time(js(o, "metadata.creationTimestamp"))));
		json_object_array_add(!strcmp(phase, "Succeeded") ? h->ok : h->bad, e);
	}
	json_object_put(o);
	return 0;
}

static int by_time_desc(const void *a, const void *b)
{
	int64_t ta = jint(*(json_object *const *)a, "t", 0), tb = jint(*(json_object *const *)b, "t", 0);

	return ta < tb ? 1 : ta > tb ? -1 : 0;
}

static void trim(ctl_t *c, int w, const char *ns, json_object *list, int64_t keep)
{
	json_object_array_sort(list, by_time_desc);
	for (size_t i = (size_t)keep; i < json_object_array_length(list); i++) {
		const char *n = js(json_object_array_get_idx(list, i), "name");
		char path[700];
		int ret;

		snprintf(path, sizeof(path), CTL_GROUP_PATH "/namespaces/%s/backupruns/%s", ns, n);
		ret = bop_k8s_request(c->wclient[w], NULL, NULL, BOP_K8S_DELETE, path, NULL, NULL);
		if (ret && ret != BOP_ENOTFOUND)
			clog_(BOP_LOG_WARN, "cannot delete old BackupRun %s/%s: %s", ns, n, bop_error_last());
		else if (ret == 0)
			clog_(BOP_LOG_INFO, "history limit: deleted BackupRun %s/%s", ns, n);
	}
}

int ctl_runs_enforce_history(ctl_t *c, int w, const char *ns, const char *schedule,
	json_object *spec)
{
	hist_ctx_t h = { ns, schedule, json_object_new_array(), json_object_new_array() };

	bop_k8s_informer_foreach(c->runs, hist_collect, &h);
	trim(c, w, ns, h.ok, jint(spec, "historyLimits.successful", 10));
	trim(c, w, ns, h.bad, jint(spec, "historyLimits.failed", 3));
	json_object_put(h.ok);
	json_object_put(h.bad);
	return 0;
}
