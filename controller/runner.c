/* Calls to a schedule's runner API (POST /v1/backups, GET /v1/runs/{id}, ...). */
#include "ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The runner pod's address: the StatefulSet's only pod, <object>-0, asked of the API
 * server. A pod that has no IP yet or is being deleted has no address (a new run must not
 * go to a runner that is stopping). */
static int runner_pod_ip(ctl_t *c, int w, const char *obj, char *ip, size_t size)
{
	char path[600], *body = NULL, msg[700];
	json_object *pod = NULL;
	const char *addr;
	int ret;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s-0", c->args.namespace, obj);
	ret = bop_k8s_request(c->wclient[w], NULL, &body, BOP_K8S_GET, path, NULL, NULL);
	if (ret == BOP_ENOTFOUND) {
		snprintf(msg, sizeof(msg), "its pod %s-0 does not exist (yet)", obj);
		ret = bop_error_set(BOP_EIO, msg);
	}
	if (ret)
		goto out;
	pod = jparse(body);
	addr = js(pod, "status.podIP");
	if (jget(pod, "metadata.deletionTimestamp")) {
		snprintf(msg, sizeof(msg), "its pod %s-0 is being deleted", obj);
		ret = bop_error_set(BOP_EIO, msg);
	} else if (!addr || !*addr || strlen(addr) >= size) {
		snprintf(msg, sizeof(msg), "its pod %s-0 has no IP address yet", obj);
		ret = bop_error_set(BOP_EIO, msg);
	} else {
		strcpy(ip, addr);
	}
out:
	json_object_put(pod);
	bop_free(body);
	return ret;
}

/* ---- runners that cannot be reached ----
 * The last failed call to each schedule's runner is remembered (c->unreachable): while a
 * call to it is under way, or for RETRY_MS after one failed, other calls to it do not
 * connect again but fail the same way at once. So a thousand BackupRuns of a runner that
 * does not answer cost one connection attempt (up to its timeout) at a time, not a
 * thousand, and the workers stay free for other schedules. */
#define RETRY_MS 2000

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether a call to the runner of `skey` may go out now; if not, its last failure is
 * the error. A call that may go marks the runner busy until runner_done(). */
static bool runner_may_call(ctl_t *c, const char *skey)
{
	json_object *e;
	char *recent = NULL;

	pthread_mutex_lock(&c->lock);
	e = jget(c->unreachable, skey);
	if (e && (json_object_get_boolean(jget(e, "busy")) ||
	    mono_ms() - jint(e, "t", 0) < RETRY_MS))
		recent = strdup(js(e, "error") ? js(e, "error") : "its runner is not reachable");
	else if (e)
		json_object_object_add(e, "busy", json_object_new_boolean(true));
	pthread_mutex_unlock(&c->lock);
	if (!recent)
		return true;
	bop_error_set(BOP_EIO, recent);
	free(recent);
	return false;
}

static void runner_done(ctl_t *c, const char *skey, bool reached)
{
	json_object *n;

	pthread_mutex_lock(&c->lock);
	if (reached) {
		json_object_object_del(c->unreachable, skey);
	} else {
		n = json_object_new_object();
		json_object_object_add(n, "t", json_object_new_int64(mono_ms()));
		json_object_object_add(n, "error", json_object_new_string(bop_error_last()));
		json_object_object_add(c->unreachable, skey, n);
	}
	pthread_mutex_unlock(&c->lock);
}

int ctl_runner_call(ctl_t *c, int w, const char *ns, const char *name, const char *uid,
	const char *method, const char *path, const char *body, rapi_reply_t *reply)
{
	char *obj = NULL, *token = NULL, url[1024], err[512], ip[64], msg[1400], skey[512];
	int ret;

	memset(reply, 0, sizeof(*reply));
	snprintf(skey, sizeof(skey), "%s/%s", ns, name);
	if (!runner_may_call(c, skey))
		return bop_error_last_code();
	ret = bop_reconcile_name(&obj, "runner", ns, name);
	if (ret == 0)
		ret = bop_reconcile_runner_token(&token, c->key, sizeof(c->key), uid);
	if (ret)
		goto out;
	if (c->args.runner_url) {
		snprintf(url, sizeof(url), "%s%s", c->args.runner_url, path);
	} else if (c->args.runner_via_service) {
		snprintf(url, sizeof(url), "http://%s.%s.svc:%u%s", obj, c->args.namespace,
			c->args.runner_port, path);
	} else {
		ret = runner_pod_ip(c, w, obj, ip, sizeof(ip));
		if (ret) {
			snprintf(msg, sizeof(msg), "runner %s is not reachable: %s", obj,
				bop_error_last());
			ret = bop_error_set(BOP_EIO, msg);
			goto out;
		}
		snprintf(url, sizeof(url), strchr(ip, ':') ? "http://[%s]:%u%s" : "http://%s:%u%s",
			ip, c->args.runner_port, path);
	}
	if (rapi_request(url, method, token, body, 3000, 15000, reply, err, sizeof(err)) < 0) {
		snprintf(msg, sizeof(msg), "runner %s is not reachable at %s: %s", obj,
			c->args.runner_url ? c->args.runner_url : c->args.runner_via_service ?
			"its Service" : "its pod's IP", err);
		ret = bop_error_set(BOP_EIO, msg);
		goto out;
	}
out:
	runner_done(c, skey, ret == 0);
	if (token) {
		explicit_bzero(token, strlen(token));
		bop_free(token);
	}
	bop_free(obj);
	return ret;
}
