/*
 * The runner's HTTP API (backupop-runner(8)) on the library's embedded server, and its
 * Prometheus metrics. Handlers run on the server's threads: they only touch shared
 * state under mu, queue runs for the loop thread through `wakeup`, and open their own
 * storage for catalog listings.
 */
#include "runner.h"
#include "api_request.h"

#include <api_client.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static const double duration_buckets[] = { 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600,
	7200, 21600 };

int metrics_init(runner_t *rn)
{
	static const char *const run_labels[] = { "kind", "result", NULL };
	int ret;

	if ((ret = bop_metrics_new(&rn->metrics)) < 0)
		return ret;
	if ((ret = bop_metrics_histogram(rn->metrics, &rn->m_duration,
		    "backupop_backup_duration_seconds", "How long successful backups took.", NULL,
		    duration_buckets, sizeof(duration_buckets) / sizeof(duration_buckets[0]))) < 0 ||
	    (ret = bop_metrics_gauge(rn->metrics, &rn->m_bytes, "backupop_backup_bytes",
		    "Stored size of the last successful backup, in bytes.", NULL)) < 0 ||
	    (ret = bop_metrics_gauge(rn->metrics, &rn->m_last_success,
		    "backupop_last_success_timestamp_seconds",
		    "When the last successful backup ended (unix time).", NULL)) < 0 ||
	    (ret = bop_metrics_counter(rn->metrics, &rn->m_runs, "backupop_runs_total",
		    "Runs by kind (backup, restore, verify) and result (success, failure).",
		    run_labels)) < 0)
		return ret;
	for (int k = RUN_BACKUP; k <= RUN_VERIFY; k++) {
		const char *ok[] = { run_kind_name((run_kind_t)k), "success", NULL };
		const char *bad[] = { run_kind_name((run_kind_t)k), "failure", NULL };

		bop_metric_add(rn->m_runs, ok, 0);
		bop_metric_add(rn->m_runs, bad, 0);
	}
	return 0;
}

void metrics_run_done(runner_t *rn, const run_t *r)
{
	const char *labels[] = { run_kind_name(r->kind),
		r->phase == RUN_SUCCEEDED ? "success" : "failure", NULL };

	if (!rn->metrics)
		return;
	bop_metric_add(rn->m_runs, labels, 1);
	if (r->kind != RUN_BACKUP || r->phase != RUN_SUCCEEDED)
		return;
	bop_metric_observe(rn->m_duration, NULL, (double)(r->end - r->start));
	bop_metric_set(rn->m_bytes, NULL, (double)r->bytes_out);
	bop_metric_set(rn->m_last_success, NULL, (double)r->end);
}

static int respond_json(bop_http_request_t *req, unsigned int status, json_object *o)
{
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	int ret = bop_http_respond(req, status, "application/json", text, strlen(text));

	json_object_put(o);
	return ret;
}

static json_object *run_json(const run_t *r)
{
	char *text = run_to_json(r);
	json_object *o = text ? json_tokener_parse(text) : NULL;

	free(text);
	return o;
}

/* A POST with the requestId of a run already made: that run (200), not a second one, so a
 * caller that did not see the answer (a controller that crashed) may send it again; the
 * same requestId for another kind of run is a conflict (409). Under mu; 0 when new. */
static int posted_before(bop_http_request_t *req, runner_t *rn, run_kind_t kind,
	const char *request_id, json_object **answer, char *why, size_t whylen)
{
	run_t *same = request_id ? runs_find_request(rn, request_id) : NULL;
	char location[128];

	*answer = NULL;
	if (!same)
		return 0;
	if (same->kind != kind) {
		snprintf(why, whylen, "requestId %s was used for run %s, a %s", request_id,
			same->id, run_kind_name(same->kind));
		return 409;
	}
	*answer = run_json(same);
	snprintf(location, sizeof(location), "/v1/runs/%s", same->id);
	bop_http_response_header(req, "Location", location);
	return 200;
}

static int post_run(bop_http_request_t *req, runner_t *rn, run_kind_t kind)
{
	char *backup = NULL, *target = NULL, *engine = NULL, location[128], why[512];
	size_t len = 0;
	const char *body = bop_http_request_body(req, &len);
	const char *request_id = bop_http_request_query(req, "requestId");
	json_object *again = NULL;
	run_t *r, **p;
	int ret;

	/* Everything is checked here: a bad request gets 400, never a run that fails later. */
	if (request_id && !api_request_id_ok(request_id, why, sizeof(why)))
		return bop_http_respond_error(req, 400, why);
	ret = api_parse_run_body(body, len, kind != RUN_BACKUP, &backup,
		kind == RUN_RESTORE ? &target : NULL, why, sizeof(why));
	if (ret == -1)
		return bop_http_respond_error(req, 400, why);
	if (ret < 0)
		return bop_http_respond_error(req, 500, "out of memory");
	/* A target database the engine cannot restore into is refused now, not later. */
	if (target && !(engine = job_target_engine_json(&rn->cfg, target, why, sizeof(why)))) {
		free(backup);
		free(target);
		return bop_http_respond_error(req, 400, why);
	}
	if (engine)
		explicit_bzero(engine, strlen(engine));
	free(engine);
	r = run_new(kind, RUN_API, backup);
	free(backup);
	if (r)
		r->target_database = target;
	else
		free(target);
	if (r && request_id && !(r->request_id = strdup(request_id))) {
		run_free(r);
		r = NULL;
	}
	if (!r)
		return bop_http_respond_error(req, 500, "out of memory");
	pthread_mutex_lock(&rn->mu);
	ret = posted_before(req, rn, kind, request_id, &again, why, sizeof(why));
	if (ret) {
		pthread_mutex_unlock(&rn->mu);
		run_free(r);
		if (ret == 409)
			return bop_http_respond_error(req, 409, why);
		return again ? respond_json(req, 200, again) :
			bop_http_respond_error(req, 500, "out of memory");
	}
	if (rn->stopping) {
		pthread_mutex_unlock(&rn->mu);
		run_free(r);
		return bop_http_respond_error(req, 503, "the runner is stopping");
	}
	for (p = &rn->pending; *p; p = &(*p)->next)
		;
	*p = r;
	json_object *o = run_json(r);
	pthread_mutex_unlock(&rn->mu);
	uv_async_send(&rn->wakeup);
	snprintf(location, sizeof(location), "/v1/runs/%s", r->id);
	bop_http_response_header(req, "Location", location);
	return respond_json(req, 202, o);
}

static int h_backups_post(bop_http_request_t *req, void *payload)
{
	return post_run(req, payload, RUN_BACKUP);
}

static int h_restores_post(bop_http_request_t *req, void *payload)
{
	return post_run(req, payload, RUN_RESTORE);
}

static int h_verifications_post(bop_http_request_t *req, void *payload)
{
	return post_run(req, payload, RUN_VERIFY);
}

static json_object *manifest_json(const bop_manifest_t *m, const bop_retention_plan_t *plan,
	size_t i)
{
	json_object *o = json_object_new_object(), *tags = json_object_new_array();

	json_object_object_add(o, "id", json_object_new_string(bop_manifest_id(m)));
	json_object_object_add(o, "start", json_object_new_int64(bop_manifest_start_time(m)));
	json_object_object_add(o, "end", json_object_new_int64(bop_manifest_end_time(m)));
	json_object_object_add(o, "plainBytes",
		json_object_new_int64((int64_t)bop_manifest_plain_bytes(m)));
	json_object_object_add(o, "storedBytes",
		json_object_new_int64((int64_t)bop_manifest_stored_bytes(m)));
	json_object_object_add(o, "sha256", json_object_new_string(bop_manifest_plain_sha256(m)));
	json_object_object_add(o, "engine", json_object_new_string(bop_manifest_engine(m) ?
		bop_manifest_engine(m) : ""));
	for (size_t t = 0; t < bop_manifest_tag_count(m); t++)
		json_object_array_add(tags, json_object_new_string(bop_manifest_tag(m, t)));
	json_object_object_add(o, "tags", tags);
	if (plan) {
		json_object_object_add(o, "keep",
			json_object_new_boolean(bop_retention_plan_keep(plan, i)));
		json_object_object_add(o, "labels",
			json_object_new_string(bop_retention_plan_labels(plan, i)));
	}
	return o;
}

/* The catalog of the configured storage, for one request. */
static int open_catalog(runner_t *rn, bop_storage_t **storage, bop_catalog_t **catalog)
{
	int ret = runner_open_storage(rn, storage);

	return ret < 0 ? ret : bop_catalog_open(catalog, *storage, rn->cfg.name);
}

/* DELETE /v1/backups/{id}: removes one backup (manifest first, then its data), e.g. for a
 * BackupRun deleted with retainPolicy Delete. 404 when there is no such backup. */
static int h_backup_delete(bop_http_request_t *req, void *payload)
{
	runner_t *rn = payload;
	const char *id = bop_http_request_param(req, "id");
	bop_storage_t *storage = NULL;
	bop_catalog_t *catalog = NULL;
	char why[512];
	int ret;

	if (!api_backup_id_ok(id, why, sizeof(why)))
		return bop_http_respond_error(req, 400, why);
	if (rn->cfg.mode == RCFG_MODE_SINGLE)
		return bop_http_respond_error(req, 404, "mode single keeps no catalog");
	ret = open_catalog(rn, &storage, &catalog);
	if (ret == 0)
		ret = bop_catalog_remove(catalog, id);
	if (ret == BOP_ENOTFOUND)
		ret = bop_http_respond_error(req, 404, bop_error_last());
	else if (ret < 0)
		ret = bop_http_respond_error(req, 500, bop_error_last());
	else {
		rlog(BOP_LOG_INFO, "backup %s removed through the API", id);
		ret = bop_http_respond(req, 204, NULL, NULL, 0);
	}
	bop_catalog_free(catalog);
	bop_storage_free(storage);
	return ret;
}

static int h_backups_get(bop_http_request_t *req, void *payload)
{
	runner_t *rn = payload;
	bop_storage_t *storage = NULL;
	bop_catalog_t *catalog = NULL;
	bop_manifest_list_t *list = NULL;
	bop_retention_plan_t *plan = NULL;
	bop_retention_policy_t policy;
	json_object *o = NULL, *arr;
	int ret;

	if (rn->cfg.mode == RCFG_MODE_SINGLE)
		return bop_http_respond_error(req, 404, "mode single keeps no catalog: see "
			"GET /v1/runs");
	ret = open_catalog(rn, &storage, &catalog);
	if (ret == 0)
		ret = bop_catalog_list(catalog, &list);
	if (ret < 0) {
		ret = bop_http_respond_error(req, 500, bop_error_last());
		goto out;
	}
	rcfg_retention_policy(&rn->cfg, &policy);
	if (rcfg_has_retention(&rn->cfg) &&
	    bop_retention_plan(&plan, list, &policy, (int64_t)time(NULL)) < 0)
		plan = NULL;
	o = json_object_new_object();
	arr = json_object_new_array();
	for (size_t i = 0; i < bop_manifest_list_count(list); i++)
		json_object_array_add(arr, manifest_json(bop_manifest_list_get(list, i), plan, i));
	json_object_object_add(o, "backups", arr);
	pthread_mutex_lock(&rn->mu);
	json_object_object_add(o, "lastRetentionPlan", rn->retention_json ?
		json_tokener_parse(rn->retention_json) : NULL);
	pthread_mutex_unlock(&rn->mu);
	ret = respond_json(req, 200, o);
out:
	bop_retention_plan_free(plan);
	bop_manifest_list_free(list);
	bop_catalog_free(catalog);
	bop_storage_free(storage);
	return ret;
}

static int h_runs(bop_http_request_t *req, void *payload)
{
	runner_t *rn = payload;
	json_object *o = json_object_new_object(), *arr = json_object_new_array();

	pthread_mutex_lock(&rn->mu);
	for (run_t *p = rn->pending; p; p = p->next)
		json_object_array_add(arr, run_json(p));
	if (rn->current)
		json_object_array_add(arr, run_json(rn->current));
	for (size_t i = rn->nhistory; i-- > 0;)
		json_object_array_add(arr, run_json(rn->history[i]));
	pthread_mutex_unlock(&rn->mu);
	json_object_object_add(o, "runs", arr);
	return respond_json(req, 200, o);
}

static int h_run(bop_http_request_t *req, void *payload)
{
	runner_t *rn = payload;
	json_object *o = NULL;
	run_t *r;

	pthread_mutex_lock(&rn->mu);
	r = runs_find(rn, bop_http_request_param(req, "id"));
	if (r)
		o = run_json(r);
	pthread_mutex_unlock(&rn->mu);
	if (!o)
		return bop_http_respond_error(req, 404, "no such run");
	return respond_json(req, 200, o);
}

static int h_status(bop_http_request_t *req, void *payload)
{
	runner_t *rn = payload;
	json_object *o = json_object_new_object();
	const sched_slot_t *slot = &rn->slots[0];

	pthread_mutex_lock(&rn->mu);
	json_object_object_add(o, "name", json_object_new_string(rn->cfg.name));
	json_object_object_add(o, "schedule", rn->cfg.schedule ?
		json_object_new_string(rn->cfg.schedule) : NULL);
	json_object_object_add(o, "suspend", json_object_new_boolean(rn->cfg.suspend == 1));
	json_object_object_add(o, "mode", json_object_new_string(
		rn->cfg.mode == RCFG_MODE_SINGLE ? "single" : "catalog"));
	json_object_object_add(o, "lastSuccess", rn->last_success ?
		json_object_new_int64(rn->last_success) : NULL);
	json_object_object_add(o, "nextRun", slot->armed && slot->next ?
		json_object_new_int64(slot->next) : NULL);
	json_object_object_add(o, "currentRun", rn->current ? run_json(rn->current) : NULL);
	pthread_mutex_unlock(&rn->mu);
	return respond_json(req, 200, o);
}

static int h_healthz(bop_http_request_t *req, void *payload)
{
	(void)payload;
	return bop_http_respond(req, 200, "text/plain", "ok\n", 3);
}

static int h_readyz(bop_http_request_t *req, void *payload)
{
	runner_t *rn = payload;

	if (!rn->ready || rn->stopping)
		return bop_http_respond(req, 503, "text/plain", "not ready\n", 10);
	return bop_http_respond(req, 200, "text/plain", "ok\n", 3);
}

typedef struct route {
	const char *method;
	const char *pattern;
	unsigned int flags;
	bop_http_handler_cb handler;
} route_t;

static const route_t routes[] = {
	{ "POST", "/v1/backups", 0, h_backups_post },
	{ "GET", "/v1/backups", 0, h_backups_get },
	{ "DELETE", "/v1/backups/{id}", 0, h_backup_delete },
	{ "POST", "/v1/restores", 0, h_restores_post },
	{ "POST", "/v1/verifications", 0, h_verifications_post },
	{ "GET", "/v1/runs", 0, h_runs },
	{ "GET", "/v1/runs/{id}", 0, h_run },
	{ "GET", "/v1/status", 0, h_status },
	{ "GET", "/healthz", BOP_HTTP_ROUTE_PUBLIC, h_healthz },
	{ "GET", "/readyz", BOP_HTTP_ROUTE_PUBLIC, h_readyz },
};

/* ---- a token when none is configured ---- */

/* 32 random bytes in hex. */
static int random_token(char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[32];
	size_t got = 0;

	while (got < sizeof(raw)) {
		ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return bop_error_setf(BOP_EIO, "cannot generate an API token: getrandom: %s",
				strerror(errno));
		got += (size_t)n;
	}
	for (size_t i = 0; i < sizeof(raw); i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[64] = '\0';
	explicit_bzero(raw, sizeof(raw));
	return 0;
}

/* Writes the generated token where backupop runs/status look for it (api_client.h):
 * 0600, through a temporary file renamed into place. */
static int write_token(runner_t *rn, int port, const char *token)
{
	char path[1200], tmp[1300], err[1400];
	size_t len = strlen(token);
	int fd, ok;

	if (rapi_token_path(port, 1, path, sizeof(path), err, sizeof(err)) < 0)
		return bop_error_setf(BOP_EIO, "api.token and api.tokenFile are not set, and the "
			"generated token cannot be written: %s", err);
	snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", path, (long)getpid());
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return bop_error_setf(BOP_EIO, "api.token and api.tokenFile are not set, and the "
			"generated token cannot be written to %s: %s", tmp, strerror(errno));
	ok = write(fd, token, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) < 0) {
		int e = errno;

		unlink(tmp);
		return bop_error_setf(BOP_EIO, "api.token and api.tokenFile are not set, and the "
			"generated token cannot be written to %s: %s", path, strerror(e));
	}
	rn->api_token_path = strdup(path);
	rlog(BOP_LOG_INFO, "api.token and api.tokenFile are not set: the API requires a token "
		"generated at start, written to %s (backupop runs and status on this host read it "
		"from there)", path);
	return 0;
}

int api_start(runner_t *rn)
{
	bop_http_server_options_t opts;
	bop_http_server_t *server = NULL;
	char generated[65];
	int ret;

	if (!rn->cfg.api_listen)
		return 0;
	bop_http_server_options_init(&opts, BOP_HTTP_SERVER_OPTIONS_VERSION);
	opts.listen = rn->cfg.api_listen;
	opts.token = rn->cfg.api_token;
	/* The API is never open: without a configured token it gets a random one. */
	if (!opts.token || !*opts.token) {
		if ((ret = random_token(generated)) < 0)
			return ret;
		opts.token = generated;
	}
	ret = bop_http_server_new(&server, &opts);
	if (ret == 0 && opts.token == generated)
		ret = write_token(rn, bop_http_server_port(server), generated);
	explicit_bzero(generated, sizeof(generated));
	for (size_t i = 0; ret == 0 && i < sizeof(routes) / sizeof(routes[0]); i++)
		ret = bop_http_server_route(server, routes[i].method, routes[i].pattern,
			routes[i].flags, routes[i].handler, rn);
	if (ret == 0)
		ret = crdb_routes(rn, server);
	if (ret == 0)
		ret = bop_http_server_serve_metrics(server, "/metrics", 0, rn->metrics);
	if (ret == 0)
		ret = bop_http_server_start(server);
	if (ret < 0) {
		bop_http_server_free(server);
		return ret;
	}
	rn->api = server;
	rlog(BOP_LOG_INFO, "API listening on %s (port %d)", rn->cfg.api_listen,
		bop_http_server_port(server));
	return 0;
}

/* Serves only what carries no secret: a scraper in the cluster needs no token for it,
 * while the API (and its own /metrics) keeps the token. */
int metrics_listener_start(runner_t *rn)
{
	bop_http_server_options_t opts;
	bop_http_server_t *server = NULL;
	int ret;

	if (!rn->cfg.metrics_listen || !*rn->cfg.metrics_listen)
		return 0;
	bop_http_server_options_init(&opts, BOP_HTTP_SERVER_OPTIONS_VERSION);
	opts.listen = rn->cfg.metrics_listen;
	ret = bop_http_server_new(&server, &opts);
	if (ret == 0)
		ret = bop_http_server_serve_metrics(server, "/metrics", BOP_HTTP_ROUTE_PUBLIC,
			rn->metrics);
	if (ret == 0)
		ret = bop_http_server_route(server, "GET", "/healthz", BOP_HTTP_ROUTE_PUBLIC,
			h_healthz, rn);
	if (ret == 0)
		ret = bop_http_server_route(server, "GET", "/readyz", BOP_HTTP_ROUTE_PUBLIC,
			h_readyz, rn);
	if (ret == 0)
		ret = bop_http_server_start(server);
	if (ret < 0) {
		bop_http_server_free(server);
		return ret;
	}
	rn->metrics_http = server;
	rlog(BOP_LOG_INFO, "metrics listening on %s (port %d): /metrics, /healthz, /readyz "
		"without a token", rn->cfg.metrics_listen, bop_http_server_port(server));
	return 0;
}

void api_stop(runner_t *rn)
{
	bop_http_server_stop(rn->metrics_http);
	bop_http_server_stop(rn->api);
	if (rn->api_token_path) {
		unlink(rn->api_token_path);
		free(rn->api_token_path);
		rn->api_token_path = NULL;
	}
}
