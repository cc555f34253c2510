/*
 * Executing a run on the worker thread: backup (then retention), restore, verify; in
 * catalog mode through the catalog, in single mode through one overwritten object.
 */
#include "runner.h"

#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOCK_TTL_SECONDS 120
#define LOCK_REFRESH_SECONDS 30

typedef struct job {
	runner_t *rn;
	run_t *r;
	bop_storage_t *storage;
	bop_catalog_t *catalog;
	bop_engine_t *engine;
	bop_lock_t *lock;
	int64_t lock_refreshed;
	int64_t deadline;               /* unix seconds, 0: none */
	bool timed_out;
	bool lock_lost;
} job_t;

static int fail(job_t *j, const char *what)
{
	char *msg = NULL;

	if (j->timed_out && asprintf(&msg, "%s: the deadline of this run passed", what) < 0)
		msg = NULL;
	else if (j->lock_lost && asprintf(&msg, "%s: the catalog lock was taken over", what) < 0)
		msg = NULL;
	else if (!msg && asprintf(&msg, "%s: %s", what, bop_error_last()) < 0)
		msg = NULL;
	pthread_mutex_lock(&j->rn->mu);
	free(j->r->error);
	if (j->r->cancel_requested && j->r->cancel_reason) {
		free(msg);
		msg = strdup(j->r->cancel_reason);
	}
	j->r->error = msg;
	pthread_mutex_unlock(&j->rn->mu);
	return -1;
}

static void progress(uint64_t bytes_in, uint64_t bytes_out, void *payload)
{
	job_t *j = payload;
	int64_t now = runner_now();

	pthread_mutex_lock(&j->rn->mu);
	j->r->bytes_in = bytes_in;
	j->r->bytes_out = bytes_out;
	pthread_mutex_unlock(&j->rn->mu);
	if (j->lock && now - j->lock_refreshed >= LOCK_REFRESH_SECONDS) {
		j->lock_refreshed = now;
		if (bop_lock_refresh(j->lock) < 0) {
			j->lock_lost = true;
			pthread_mutex_lock(&j->rn->mu);
			job_cancel(j->r, NULL);
			pthread_mutex_unlock(&j->rn->mu);
		}
	}
	if (j->deadline && now > j->deadline && !j->timed_out) {
		j->timed_out = true;
		pthread_mutex_lock(&j->rn->mu);
		job_cancel(j->r, NULL);
		pthread_mutex_unlock(&j->rn->mu);
	}
}

void job_cancel(run_t *r, const char *reason)
{
	/* The caller holds mu, so the catalog and pipeline cannot be freed meanwhile. */
	if (reason && !r->cancel_reason)
		r->cancel_reason = strdup(reason);
	r->cancel_requested = true;
	if (r->catalog)
		bop_catalog_cancel(r->catalog);
	if (r->pipeline)
		bop_pipeline_cancel(r->pipeline);
}

int runner_open_storage(runner_t *rn, bop_storage_t **out)
{
	bop_storage_options_t opts;

	bop_storage_options_init(&opts, BOP_STORAGE_OPTIONS_VERSION);
	opts.settings = (const char *const *)rn->cfg.storage_settings.items;
	return bop_storage_open(out, rn->cfg.storage_url, &opts);
}

static int job_open(job_t *j)
{
	runner_t *rn = j->rn;
	int ret;

	if ((ret = runner_open_storage(rn, &j->storage)) < 0)
		return fail(j, "cannot open the storage");
	if (rn->cfg.mode != RCFG_MODE_SINGLE &&
	    (ret = bop_catalog_open(&j->catalog, j->storage, rn->cfg.name)) < 0)
		return fail(j, "cannot open the catalog");
	pthread_mutex_lock(&rn->mu);
	j->r->catalog = j->catalog;
	if (j->r->cancel_requested && j->catalog)
		bop_catalog_cancel(j->catalog);
	pthread_mutex_unlock(&rn->mu);
	return 0;
}

static void job_close(job_t *j)
{
	pthread_mutex_lock(&j->rn->mu);
	j->r->catalog = NULL;
	j->r->pipeline = NULL;
	pthread_mutex_unlock(&j->rn->mu);
	if (j->lock && bop_lock_release(j->lock) < 0)
		rlog(BOP_LOG_WARN, "cannot release the catalog lock: %s", bop_error_last());
	bop_engine_free(j->engine);
	bop_catalog_free(j->catalog);
	bop_storage_free(j->storage);
}

static int take_lock(job_t *j)
{
	if (bop_catalog_lock(j->catalog, &j->lock, j->rn->lock_owner, LOCK_TTL_SECONDS) < 0)
		return fail(j, "cannot lock the catalog");
	j->lock_refreshed = runner_now();
	return 0;
}

/*
 * The host part of the runner's lock owner: the pod's name when the controller gives it
 * (BOP_POD_NAME, from the downward API), else the host name. True when it is the pod's
 * name. In a pod with hostNetwork the host name is the node's, shared by every such pod
 * on the node, so only the pod's name tells two of them apart.
 */
static bool owner_host(char *host, size_t size)
{
	const char *pod = getenv("BOP_POD_NAME");

	if (pod && *pod && strlen(pod) < size && !strchr(pod, ':')) {
		snprintf(host, size, "%s", pod);
		return true;
	}
	if (gethostname(host, size - 1) < 0 || !*host)
		snprintf(host, size, "unknown-host");
	host[size - 1] = '\0';
	return false;
}

/*
 * The lock's owner names the runner durably: "backupop-runner:<name>:<host>:<pid>", where
 * <host> is the pod's name (BOP_POD_NAME) or else the host name. The catalog name and the
 * host part stay the same across restarts; only the pid changes. A lock with our name and
 * host part is ours from an earlier life when
 *  - its pid is ours (a container restarted with the same pid, typically 1), or
 *  - no process has that pid on this host (the runner was killed), or
 *  - we run in Kubernetes (KUBERNETES_SERVICE_HOST is set) and the host part is our pod's
 *    name from BOP_POD_NAME: a pod's name is unique among the live pods of its namespace,
 *    so the holder was this pod's earlier container (whose pids are not visible from this
 *    one). The host name alone proves nothing there: with hostNetwork it is the node's,
 *    shared by the sidecars of other replicas on the node, so without BOP_POD_NAME (pods
 *    of an older controller) only the pid test applies, and a lock it cannot tell is left
 *    to expire rather than taken from a live runner.
 * Such a lock is removed at start instead of waiting for its expiry; the library's own
 * takeover then has nothing to do. A live runner of the same catalog on the same host
 * (another pid that exists) keeps its lock. The same test tells which records of runs
 * left Running a starting runner recovers (runs.c): its own, never another live one's.
 */
bool runner_owner_gone(const runner_t *rn, const char *owner)
{
	char host[256];
	size_t nlen = strlen(rn->cfg.name), hlen;
	const char *p = owner;
	bool pod = owner_host(host, sizeof(host));
	char *end;
	long pid;

	hlen = strlen(host);
	if (strncmp(p, "backupop-runner:", 16))
		return false;
	p += 16;
	if (strncmp(p, rn->cfg.name, nlen) || p[nlen] != ':')
		return false;
	p += nlen + 1;
	if (strncmp(p, host, hlen) || p[hlen] != ':')
		return false;
	p += hlen + 1;
	errno = 0;
	pid = strtol(p, &end, 10);
	if (errno || end == p || *end || pid <= 0)
		return false;
	if (pid == (long)getpid() || (pod && getenv("KUBERNETES_SERVICE_HOST")))
		return true;
	return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

static void take_over_lock(runner_t *rn, const char *key)
{
	json_object *o = NULL, *owner, *expires;
	size_t len = 0;
	char *text = NULL;
	int ret;

	ret = runs_read_object(rn->storage, key, &text, &len);
	if (ret == BOP_ENOTFOUND)
		return;
	if (ret == 0)
		o = json_tokener_parse(text);
	if (!o || !json_object_object_get_ex(o, "owner", &owner) ||
	    !json_object_is_type(owner, json_type_string) ||
	    !json_object_object_get_ex(o, "expires", &expires)) {
		if (ret < 0)
			rlog(BOP_LOG_WARN, "cannot read the catalog lock %s: %s", key,
				bop_error_last());
		goto out;
	}
	if (json_object_get_int64(expires) <= runner_now())
		goto out;       /* expired: the next backup takes it over anyway */
	if (!runner_owner_gone(rn, json_object_get_string(owner))) {
		rlog(BOP_LOG_INFO, "the catalog lock is held by %s for %llds more",
			json_object_get_string(owner),
			(long long)(json_object_get_int64(expires) - runner_now()));
		goto out;
	}
	rlog(BOP_LOG_WARN, "removing the catalog lock of %s: it was held by an earlier run of "
		"this runner (%s), which is gone", rn->cfg.name, json_object_get_string(owner));
	if (bop_storage_remove(rn->storage, key) < 0 && bop_error_last_code() != BOP_ENOTFOUND)
		rlog(BOP_LOG_WARN, "cannot remove %s: %s (backups wait until it expires)", key,
			bop_error_last());
out:
	json_object_put(o);
	free(text);
}

void locks_init(runner_t *rn)
{
	char host[256], *key = NULL;

	owner_host(host, sizeof(host));
	snprintf(rn->lock_owner, sizeof(rn->lock_owner), "backupop-runner:%s:%s:%ld",
		rn->cfg.name, host, (long)getpid());
	if (rn->cfg.mode == RCFG_MODE_SINGLE || asprintf(&key, "%s/lock.json", rn->cfg.name) < 0)
		return;
	take_over_lock(rn, key);
	free(key);
}

/* Retention after a successful backup: the plan is logged and kept for the API; failed
 * removals are logged and simply planned again after the next backup. */
static void apply_retention(job_t *j)
{
	bop_manifest_list_t *list = NULL;
	bop_retention_plan_t *plan = NULL;
	bop_retention_policy_t policy;
	char *text = NULL, *json = NULL;
	size_t removed = 0;

	if (!rcfg_has_retention(&j->rn->cfg))
		return;
	rcfg_retention_policy(&j->rn->cfg, &policy);
	if (bop_catalog_list(j->catalog, &list) < 0 ||
	    bop_retention_plan(&plan, list, &policy, (int64_t)time(NULL)) < 0) {
		rlog(BOP_LOG_WARN, "retention: cannot plan: %s (will retry after the next backup)",
			bop_error_last());
		goto out;
	}
	if (bop_retention_plan_format(plan, &text) == 0)
		rlog(BOP_LOG_INFO, "retention plan:\n%s", text);
	if (bop_retention_plan_to_json(plan, &json) == 0) {
		pthread_mutex_lock(&j->rn->mu);
		free(j->rn->retention_json);
		j->rn->retention_json = strdup(json);
		pthread_mutex_unlock(&j->rn->mu);
	}
	if (bop_catalog_prune(j->catalog, &removed, plan) < 0)
		rlog(BOP_LOG_WARN, "retention: %s (removed %zu; will retry after the next backup)",
			bop_error_last(), removed);
	else if (removed)
		rlog(BOP_LOG_INFO, "retention: removed %zu backup(s)", removed);
out:
	bop_free(text);
	bop_free(json);
	bop_retention_plan_free(plan);
	bop_manifest_list_free(list);
}

static bool jbool(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_boolean) &&
		json_object_get_boolean(v);
}

char *job_target_engine_json(const rcfg_t *c, const char *target, char *why, size_t whylen)
{
	const char *name = c->engine_name ? c->engine_name : "";
	json_object *o = NULL, *restore = NULL;
	char *text = NULL;

	if (strcmp(name, "postgres") && strcmp(name, "mysql")) {
		snprintf(why, whylen, "targetDatabase: the %s engine has no database to restore "
			"into (a target database needs the postgres or mysql engine)",
			*name ? name : "configured");
		return NULL;
	}
	o = json_tokener_parse(c->engine_json ? c->engine_json : "{}");
	if (!o || !json_object_is_type(o, json_type_object)) {
		snprintf(why, whylen, "targetDatabase: the engine block is not a mapping");
		goto out;
	}
	if (jbool(o, "allDatabases") || jbool(o, "globals")) {
		snprintf(why, whylen, "targetDatabase: the %s engine backs up %s, which a restore "
			"recreates under their own names: a target database needs a backup of one "
			"database (engine.%s.database)", name, jbool(o, "allDatabases") ?
			"every database (allDatabases)" : "roles and tablespaces (globals)", name);
		goto out;
	}
	if (!json_object_object_get_ex(o, "restore", &restore)) {
		restore = json_object_new_object();
		json_object_object_add(o, "restore", restore);
	}
	if (!json_object_is_type(restore, json_type_object)) {
		snprintf(why, whylen, "targetDatabase: engine.%s.restore is not a mapping", name);
		goto out;
	}
	if (jbool(restore, "create")) {
		snprintf(why, whylen, "targetDatabase: engine.postgres.restore.create is set, so "
			"pg_restore would create the dump's database under its own name instead; "
			"restore into another database with a schedule whose restore.create is off");
		goto out;
	}
	json_object_object_add(restore, "database", json_object_new_string(target));
	text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	if (!text)
		snprintf(why, whylen, "out of memory");
out:
	json_object_put(o);
	return text;
}

static int open_engine(job_t *j, bool scratch)
{
	const rcfg_t *c = &j->rn->cfg;
	const char *name = scratch ? c->verify_engine_name : c->engine_name;
	const char *json = scratch ? c->verify_engine_json : c->engine_json;
	char why[512], *text;
	int ret;

	if (!name)
		return bop_error_set(BOP_EINVAL, "the config has no engine block");
	if (scratch || j->r->kind != RUN_RESTORE || !j->r->target_database)
		return bop_engine_open(&j->engine, name, json);
	/* A restore into another database: the engine's restore.database, for this run. */
	if (!(text = job_target_engine_json(c, j->r->target_database, why, sizeof(why))))
		return bop_error_set(BOP_EINVAL, why);
	rlog(BOP_LOG_INFO, "run %s: restoring into database %s (targetDatabase)", j->r->id,
		j->r->target_database);
	ret = bop_engine_open(&j->engine, name, text);
	explicit_bzero(text, strlen(text));
	free(text);
	return ret;
}

static void backup_options(job_t *j, bop_backup_options_t *opts)
{
	const rcfg_t *c = &j->rn->cfg;

	bop_backup_options_init(opts, BOP_BACKUP_OPTIONS_VERSION);
	opts->compression = j->rn->compression;
	opts->level = c->level > 0 ? c->level : 0;
	opts->threads = c->threads > 0 ? c->threads : 0;
	opts->keys = j->rn->encrypt_keys;
	opts->tags = (const char *const *)c->tags.items;
	opts->engine = c->engine_name;
	opts->progress = progress;
	opts->payload = j;
}

/* The engine's database moves the backup itself, as files through the run's endpoint
 * (BOP_ENGINE_MULTI_FILE). */
static bool is_multi_file(const char *engine)
{
	return rcfg_engine_can(engine, BOP_ENGINE_MULTI_FILE);
}

/* Opens the engine with its block plus the run's endpoint URL ("endpointURL"). */
static int open_with_endpoint(job_t *j, bool scratch, const char *url)
{
	const rcfg_t *c = &j->rn->cfg;
	const char *name = scratch ? c->verify_engine_name : c->engine_name;
	const char *json = scratch ? c->verify_engine_json : c->engine_json;
	json_object *o = json_tokener_parse(json ? json : "{}");
	char *text = NULL;
	int ret;

	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return bop_error_set(BOP_EINVAL, "the engine block is not a mapping");
	}
	json_object_object_add(o, "endpointURL", json_object_new_string(url));
	text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	ret = text ? bop_engine_open(&j->engine, name, text) :
		bop_error_set(BOP_ENOMEM, "out of memory");
	if (text)
		explicit_bzero(text, strlen(text));
	free(text);
	return ret;
}

/* Serves the run's endpoint and opens the engine with its URL. */
static int endpoint_start(job_t *j, crdb_endpoint_t **ep, bop_backup_session_t *session,
	const bop_manifest_t *m, bool scratch)
{
	char *url = NULL;
	int ret;

	ret = crdb_endpoint_open(j->rn, ep, session, session ? NULL : j->catalog, m,
		j->rn->decrypt_keys);
	if (ret == 0 && !(url = crdb_endpoint_url(j->rn, *ep)))
		ret = bop_error_set(BOP_ENOMEM, "out of memory");
	if (ret == 0)
		ret = open_with_endpoint(j, scratch, url);
	free(url);
	return ret;
}

/* The statement's source yields nothing: it ends when the statement succeeded. */
static int run_statement(bop_source_t *src)
{
	char buf[4096];
	size_t got = 0;
	int ret;

	do
		ret = bop_source_read(src, buf, sizeof(buf), &got);
	while (ret == 0 && got > 0);
	return ret == 0 ? bop_source_close(src) : ret;
}

static void backup_taken(job_t *j, bop_manifest_t *m)
{
	pthread_mutex_lock(&j->rn->mu);
	free(j->r->backup);
	j->r->backup = strdup(bop_manifest_id(m));
	j->r->bytes_in = bop_manifest_plain_bytes(m);
	j->r->bytes_out = bop_manifest_stored_bytes(m);
	snprintf(j->r->sha256, sizeof(j->r->sha256), "%s", bop_manifest_plain_sha256(m));
	pthread_mutex_unlock(&j->rn->mu);
	rlog(BOP_LOG_INFO, "run %s: backup %s taken (%llu bytes, %llu stored)", j->r->id,
		bop_manifest_id(m), (unsigned long long)bop_manifest_plain_bytes(m),
		(unsigned long long)bop_manifest_stored_bytes(m));
	bop_manifest_free(m);
	apply_retention(j);
}

/* The database sends its files to the run's endpoint, which stores each one (CockroachDB:
 * BACKUP INTO); the manifest is written only when the engine's statement succeeded. */
static int multi_file_backup(job_t *j)
{
	bop_backup_options_t opts;
	bop_backup_session_t *s = NULL;
	crdb_endpoint_t *ep = NULL;
	bop_manifest_t *m = NULL;
	bop_source_t *src = NULL;
	int ret;

	if (take_lock(j))
		return -1;
	backup_options(j, &opts);
	if (bop_catalog_backup_begin(j->catalog, &s, &opts) < 0)
		return fail(j, "cannot start the backup");
	ret = endpoint_start(j, &ep, s, NULL, false);
	if (ret == 0)
		ret = bop_engine_backup(j->engine, &src);
	if (ret < 0)
		fail(j, "cannot start the engine's backup");
	else if ((ret = run_statement(src)) < 0)
		fail(j, "backup failed");
	bop_source_free(src);
	crdb_endpoint_close(j->rn, ep);
	if (ret == 0 && (ret = bop_backup_session_commit(s, &m)) < 0)
		fail(j, "backup failed");
	bop_backup_session_free(s);
	if (ret < 0)
		return -1;
	backup_taken(j, m);
	return 0;
}

static int catalog_backup(job_t *j)
{
	bop_backup_options_t opts;
	bop_manifest_t *m = NULL;
	bop_source_t *src = NULL;

	if (is_multi_file(j->rn->cfg.engine_name))
		return multi_file_backup(j);
	if (take_lock(j))
		return -1;
	if (open_engine(j, false) < 0 || bop_engine_backup(j->engine, &src) < 0)
		return fail(j, "cannot start the engine's backup");
	backup_options(j, &opts);
	if (bop_catalog_backup(j->catalog, &m, src, &opts) < 0)
		return fail(j, "backup failed");
	backup_taken(j, m);
	return 0;
}

/* The database reads the files of backup `m` from the run's endpoint, which serves them
 * read-only, each checked against the manifest as it is read (CockroachDB: RESTORE FROM
 * LATEST IN). */
static int multi_file_restore(job_t *j, const bop_manifest_t *m, bool scratch)
{
	const char *name = scratch ? j->rn->cfg.verify_engine_name : j->rn->cfg.engine_name;
	crdb_endpoint_t *ep = NULL;
	bop_sink_t *sink = NULL;
	char msg[256];
	int ret;

	if (!bop_manifest_has_files(m)) {
		snprintf(msg, sizeof(msg), "the backup is one stream, not the files that the %s "
			"engine restores from", name);
		bop_error_set(BOP_EINVAL, msg);
		snprintf(msg, sizeof(msg), "cannot restore it with the %s engine", name);
		return fail(j, msg);
	}
	if (strcmp(bop_manifest_encryption(m), "none") && !j->rn->decrypt_keys) {
		bop_error_set(BOP_ENOKEY, "the backup is encrypted: give encryption.identityFile "
			"or passphraseFile");
		return fail(j, "cannot serve its files");
	}
	ret = endpoint_start(j, &ep, NULL, m, scratch);
	if (ret == 0)
		ret = bop_engine_restore(j->engine, &sink);
	if (ret < 0)
		fail(j, "cannot start the engine's restore");
	else if ((ret = bop_sink_commit(sink)) < 0)
		fail(j, scratch ? "test restore failed" : "restore failed");
	bop_sink_free(sink);
	crdb_endpoint_close(j->rn, ep);
	return ret < 0 ? -1 : 0;
}

/* After a test restore into the scratch database: count its rows, and check them
 * against expectRows when given. */
static int check_rows(job_t *j)
{
	const rcfg_t *c = &j->rn->cfg;
	int64_t tables, rows;
	char msg[512];
	int ret;

	if (!rcfg_engine_can(c->verify_engine_name, BOP_ENGINE_COUNTS_ROWS))
		return 0;
	ret = bop_engine_count_rows(j->engine, &tables, &rows);
	if (ret == BOP_ENOTSUPPORTED && c->verify_expect_rows < 0)
		return 0;       /* nothing to count in, and nothing asked for */
	if (ret < 0)
		return fail(j, "row check failed");
	pthread_mutex_lock(&j->rn->mu);
	j->r->tables = tables;
	j->r->rows = rows;
	pthread_mutex_unlock(&j->rn->mu);
	rlog(BOP_LOG_INFO, "run %s: the scratch database has %lld rows in %lld tables", j->r->id,
		(long long)rows, (long long)tables);
	if (c->verify_expect_rows < 0 || rows >= c->verify_expect_rows)
		return 0;
	snprintf(msg, sizeof(msg), "the restored scratch database has %lld rows in %lld tables, "
		"expected at least %lld (verification.restore.expectRows)", (long long)rows,
		(long long)tables, c->verify_expect_rows);
	bop_error_set(BOP_EINTEGRITY, msg);
	return fail(j, "row check failed");
}

static int catalog_read(job_t *j, bool restore)
{
	bop_restore_options_t opts;
	bop_manifest_t *m = NULL;
	bop_sink_t *sink = NULL;
	int ret;

	if (bop_catalog_get(j->catalog, &m, j->r->backup ? j->r->backup : "latest") < 0)
		return fail(j, "cannot find the backup");
	pthread_mutex_lock(&j->rn->mu);
	free(j->r->backup);
	j->r->backup = strdup(bop_manifest_id(m));
	snprintf(j->r->sha256, sizeof(j->r->sha256), "%s", bop_manifest_plain_sha256(m));
	pthread_mutex_unlock(&j->rn->mu);
	bop_restore_options_init(&opts, BOP_RESTORE_OPTIONS_VERSION);
	opts.keys = j->rn->decrypt_keys;
	opts.progress = progress;
	opts.payload = j;
	if (is_multi_file(restore ? j->rn->cfg.engine_name : j->rn->cfg.verify_engine_name)) {
		ret = multi_file_restore(j, m, !restore);
		if (ret == 0 && !restore)
			ret = check_rows(j);
	} else if (restore || j->rn->cfg.verify_engine_name) {
		ret = open_engine(j, !restore);
		if (ret == 0)
			ret = bop_engine_restore(j->engine, &sink);
		ret = ret < 0 ? fail(j, "cannot start the engine's restore") :
			bop_catalog_restore(j->catalog, m, sink, &opts);
		if (ret < 0 && !j->r->error)
			fail(j, restore ? "restore failed" : "test restore failed");
		if (ret == 0 && !restore)
			ret = check_rows(j);
	} else {
		ret = bop_catalog_verify(j->catalog, m, &opts);
		if (ret < 0)
			fail(j, "verification failed");
	}
	bop_manifest_free(m);
	return ret < 0 ? -1 : 0;
}

/* Single mode: "<name>/single/data[.zst|.gz][.age]" and "<name>/single/meta.json", which
 * records the sizes and hashes that a verify or restore checks. */
static char *single_key(job_t *j, const char *file)
{
	char *key;

	if (asprintf(&key, "%s/single/%s", j->rn->cfg.name, file) < 0)
		return NULL;
	return key;
}

static char *single_data_name(job_t *j)
{
	char *name;

	if (asprintf(&name, "data%s%s", bop_compression_suffix(j->rn->compression),
		    j->rn->encrypt_keys ? ".age" : "") < 0)
		return NULL;
	return name;
}

static int run_pipeline(job_t *j, bop_pipeline_t *p)
{
	int ret;

	pthread_mutex_lock(&j->rn->mu);
	j->r->pipeline = p;
	if (j->r->cancel_requested)
		bop_pipeline_cancel(p);
	pthread_mutex_unlock(&j->rn->mu);
	ret = bop_pipeline_run(p);
	pthread_mutex_lock(&j->rn->mu);
	j->r->pipeline = NULL;
	pthread_mutex_unlock(&j->rn->mu);
	return ret;
}

static int write_meta(job_t *j, const char *data_name, const char *plain, uint64_t plain_n,
	const char *stored, uint64_t stored_n)
{
	json_object *o = json_object_new_object();
	char *key = single_key(j, "meta.json");
	const char *text;
	bop_sink_t *sink = NULL;
	int ret = BOP_ENOMEM;

	json_object_object_add(o, "format", json_object_new_string("backupop.io/single/v1"));
	json_object_object_add(o, "run", json_object_new_string(j->r->id));
	json_object_object_add(o, "time", json_object_new_int64(runner_now()));
	json_object_object_add(o, "object", json_object_new_string(data_name));
	json_object_object_add(o, "compression",
		json_object_new_string(bop_compression_name(j->rn->compression)));
	json_object_object_add(o, "encrypted", json_object_new_boolean(!!j->rn->encrypt_keys));
	json_object_object_add(o, "plainBytes", json_object_new_int64((int64_t)plain_n));
	json_object_object_add(o, "plainSha256", json_object_new_string(plain));
	json_object_object_add(o, "storedBytes", json_object_new_int64((int64_t)stored_n));
	json_object_object_add(o, "storedSha256", json_object_new_string(stored));
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
	if (key && (ret = bop_storage_put(j->storage, &sink, key, NULL)) == 0 &&
	    (ret = bop_sink_write(sink, text, strlen(text))) == 0)
		ret = bop_sink_commit(sink);
	bop_sink_free(sink);
	json_object_put(o);
	free(key);
	return ret;
}

static int single_backup(job_t *j)
{
	bop_stage_t *plain = NULL, *stored = NULL, *st = NULL;
	bop_compress_options_t copts;
	bop_pipeline_options_t popts;
	bop_pipeline_t *p = NULL;
	bop_source_t *src = NULL;
	bop_sink_t *sink = NULL;
	char *name = single_data_name(j), *key = name ? single_key(j, name) : NULL;
	char plain_hex[BOP_SHA256_HEX_SIZE], stored_hex[BOP_SHA256_HEX_SIZE];
	uint64_t plain_n = 0, stored_n = 0;
	int ret = -1;

	bop_pipeline_options_init(&popts, BOP_PIPELINE_OPTIONS_VERSION);
	popts.progress = progress;
	popts.payload = j;
	bop_compress_options_init(&copts, BOP_COMPRESS_OPTIONS_VERSION);
	copts.algorithm = j->rn->compression;
	copts.level = j->rn->cfg.level > 0 ? j->rn->cfg.level : 0;
	copts.threads = j->rn->cfg.threads > 0 ? j->rn->cfg.threads : 0;
	if (!key || bop_pipeline_new(&p, &popts) < 0 || open_engine(j, false) < 0 ||
	    bop_engine_backup(j->engine, &src) < 0 || bop_pipeline_set_source(p, src) < 0 ||
	    bop_stage_sha256_new(&plain) < 0 || bop_pipeline_add_stage(p, plain) < 0 ||
	    bop_stage_compress_new(&st, &copts) < 0 || bop_pipeline_add_stage(p, st) < 0) {
		fail(j, "cannot start the backup");
		goto out;
	}
	st = NULL;
	if (j->rn->encrypt_keys && (bop_stage_age_encrypt_new(&st, j->rn->encrypt_keys) < 0 ||
	    bop_pipeline_add_stage(p, st) < 0)) {
		fail(j, "cannot start the encryption");
		goto out;
	}
	if (bop_stage_sha256_new(&stored) < 0 || bop_pipeline_add_stage(p, stored) < 0 ||
	    bop_storage_put(j->storage, &sink, key, NULL) < 0 ||
	    bop_pipeline_set_sink(p, sink) < 0) {
		fail(j, "cannot open the target object");
		goto out;
	}
	if (run_pipeline(j, p) < 0) {
		fail(j, "backup failed");
		goto out;
	}
	bop_stage_sha256_result(plain, plain_hex, &plain_n);
	bop_stage_sha256_result(stored, stored_hex, &stored_n);
	if (write_meta(j, name, plain_hex, plain_n, stored_hex, stored_n) < 0) {
		fail(j, "cannot write meta.json");
		goto out;
	}
	pthread_mutex_lock(&j->rn->mu);
	j->r->bytes_in = plain_n;
	j->r->bytes_out = stored_n;
	snprintf(j->r->sha256, sizeof(j->r->sha256), "%s", plain_hex);
	free(j->r->backup);
	j->r->backup = strdup(key);
	pthread_mutex_unlock(&j->rn->mu);
	ret = 0;
out:
	bop_pipeline_free(p);
	free(key);
	free(name);
	return ret;
}

typedef struct single_meta {
	char *object;
	char *plain;
	char *stored;
	uint64_t plain_n;
	uint64_t stored_n;
	bop_compression_t compression;
	bool encrypted;
} single_meta_t;

typedef struct text_buf {
	char *data;
	size_t len;
} text_buf_t;

static int collect_meta(const void *buf, size_t len, void *payload)
{
	text_buf_t *t = payload;
	char *grown;

	if (t->len + len > (64u << 10))
		return bop_error_set(BOP_EFORMAT, "single/meta.json is too large");
	grown = realloc(t->data, t->len + len + 1);
	if (!grown)
		return BOP_ENOMEM;
	memcpy(grown + t->len, buf, len);
	t->data = grown;
	t->len += len;
	t->data[t->len] = '\0';
	return 0;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static int read_meta(job_t *j, single_meta_t *meta)
{
	text_buf_t text = { NULL, 0 };
	char *key = single_key(j, "meta.json");
	bop_source_t *src = NULL;
	bop_sink_t *sink = NULL;
	bop_pipeline_t *p = NULL;
	json_object *o = NULL, *v;
	int ret;

	memset(meta, 0, sizeof(*meta));
	ret = bop_pipeline_new(&p, NULL);
	if (!ret)
		ret = bop_storage_get(j->storage, &src, key, 0);
	if (!ret && !(ret = bop_pipeline_set_source(p, src)) &&
	    !(ret = bop_sink_callback_new(&sink, collect_meta, &text)) &&
	    !(ret = bop_pipeline_set_sink(p, sink)))
		ret = bop_pipeline_run(p);
	if (!ret && !(o = text.data ? json_tokener_parse(text.data) : NULL))
		ret = bop_error_set(BOP_EFORMAT, "single/meta.json is not a JSON document");
	if (!ret && (!jstr(o, "object") || !jstr(o, "plainSha256") || !jstr(o, "storedSha256") ||
	    bop_compression_parse(&meta->compression, jstr(o, "compression")) < 0))
		ret = bop_error_set(BOP_EFORMAT, "single/meta.json lacks a field");
	if (!ret) {
		meta->object = strdup(jstr(o, "object"));
		meta->plain = strdup(jstr(o, "plainSha256"));
		meta->stored = strdup(jstr(o, "storedSha256"));
		meta->plain_n = json_object_object_get_ex(o, "plainBytes", &v) ?
			(uint64_t)json_object_get_int64(v) : 0;
		meta->stored_n = json_object_object_get_ex(o, "storedBytes", &v) ?
			(uint64_t)json_object_get_int64(v) : 0;
		meta->encrypted = json_object_object_get_ex(o, "encrypted", &v) &&
			json_object_get_boolean(v);
	}
	json_object_put(o);
	free(text.data);
	bop_pipeline_free(p);
	free(key);
	return ret;
}

static int discard(const void *buf, size_t len, void *payload)
{
	(void)buf;
	(void)len;
	(void)payload;
	return 0;
}

static int single_read(job_t *j, bool restore)
{
	bop_stage_t *st = NULL;
	bop_pipeline_options_t popts;
	bop_pipeline_t *p = NULL;
	bop_source_t *src = NULL;
	bop_sink_t *sink = NULL;
	single_meta_t meta;
	char *key = NULL;
	int ret = -1;

	if (read_meta(j, &meta) < 0) {
		fail(j, "no single backup to read (single/meta.json)");
		goto out;
	}
	key = single_key(j, meta.object);
	bop_pipeline_options_init(&popts, BOP_PIPELINE_OPTIONS_VERSION);
	popts.progress = progress;
	popts.payload = j;
	if (!key || bop_pipeline_new(&p, &popts) < 0 ||
	    bop_storage_get(j->storage, &src, key, 0) < 0 || bop_pipeline_set_source(p, src) < 0 ||
	    bop_stage_sha256_new(&st) < 0 || bop_pipeline_add_stage(p, st) < 0 ||
	    bop_stage_sha256_expect(st, meta.stored, meta.stored_n) < 0) {
		fail(j, "cannot read the single backup");
		goto out;
	}
	st = NULL;
	if (meta.encrypted && (!j->rn->decrypt_keys ||
	    bop_stage_age_decrypt_new(&st, j->rn->decrypt_keys) < 0 ||
	    bop_pipeline_add_stage(p, st) < 0)) {
		fail(j, "cannot decrypt (give encryption.identityFile or passphraseFile)");
		goto out;
	}
	st = NULL;
	if (bop_stage_decompress_new(&st, meta.compression) < 0 ||
	    bop_pipeline_add_stage(p, st) < 0 || bop_stage_sha256_new(&st) < 0 ||
	    bop_pipeline_add_stage(p, st) < 0 ||
	    bop_stage_sha256_expect(st, meta.plain, meta.plain_n) < 0) {
		fail(j, "cannot set up the restore");
		goto out;
	}
	if (restore || j->rn->cfg.verify_engine_name)
		ret = open_engine(j, !restore) == 0 ? bop_engine_restore(j->engine, &sink) : -1;
	else
		ret = bop_sink_callback_new(&sink, discard, NULL);
	if (ret < 0 || bop_pipeline_set_sink(p, sink) < 0) {
		ret = fail(j, "cannot start the restore");
		goto out;
	}
	ret = run_pipeline(j, p) < 0 ? fail(j, restore ? "restore failed" : "verification failed") : 0;
	if (!ret && !restore && j->rn->cfg.verify_engine_name)
		ret = check_rows(j);
	if (!ret) {
		pthread_mutex_lock(&j->rn->mu);
		free(j->r->backup);
		j->r->backup = strdup(key);
		snprintf(j->r->sha256, sizeof(j->r->sha256), "%s", meta.plain);
		pthread_mutex_unlock(&j->rn->mu);
	}
out:
	bop_pipeline_free(p);
	free(meta.object);
	free(meta.plain);
	free(meta.stored);
	free(key);
	return ret;
}

static int64_t deadline_of(const runner_t *rn, run_kind_t kind)
{
	long long s = kind == RUN_BACKUP ? rn->cfg.deadline_backup :
		kind == RUN_RESTORE ? rn->cfg.deadline_restore : rn->cfg.deadline_verify;

	return s > 0 ? runner_now() + s : 0;
}

void job_execute(runner_t *rn, run_t *r)
{
	job_t j = { .rn = rn, .r = r };
	bool single = rn->cfg.mode == RCFG_MODE_SINGLE;
	int ret;

	j.deadline = deadline_of(rn, r->kind);
	ret = job_open(&j);
	if (ret == 0) {
		switch (r->kind) {
		case RUN_BACKUP:
			ret = single ? single_backup(&j) : catalog_backup(&j);
			break;
		case RUN_RESTORE:
			ret = single ? single_read(&j, true) : catalog_read(&j, true);
			break;
		case RUN_VERIFY:
			ret = single ? single_read(&j, false) : catalog_read(&j, false);
			break;
		}
	}
	job_close(&j);
	pthread_mutex_lock(&rn->mu);
	r->phase = ret == 0 ? RUN_SUCCEEDED : RUN_FAILED;
	pthread_mutex_unlock(&rn->mu);
}
