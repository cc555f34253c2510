/*
 * Run records: "<name>/runs/<id>.json" in the storage, written when a run starts and when
 * it ends, so that a runner that restarts after a crash finds the run it left "Running",
 * marks it Failed and removes what it left behind.
 *
 * Several runners may share one catalog (the sidecars of one schedule, one per pod). Each
 * record names its writer ("writer": the runner's lock owner, with host and pid), and a
 * starting runner recovers only the runs its own earlier life left unfinished
 * (runner_owner_gone()); another runner's unfinished run is left alone, and not taken
 * into this runner's history either, since only its writer can tell how it goes on.
 */
#include "runner.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static const char interrupted_error[] = "interrupted: the runner stopped while it ran";

const char *run_kind_name(run_kind_t kind)
{
	switch (kind) {
	case RUN_BACKUP: return "backup";
	case RUN_RESTORE: return "restore";
	case RUN_VERIFY: return "verify";
	}
	return "?";
}

const char *run_phase_name(run_phase_t phase)
{
	switch (phase) {
	case RUN_PENDING: return "Pending";
	case RUN_RUNNING: return "Running";
	case RUN_SUCCEEDED: return "Succeeded";
	case RUN_FAILED: return "Failed";
	}
	return "?";
}

const char *run_trigger_name(run_trigger_t trigger)
{
	return trigger == RUN_API ? "api" : "scheduled";
}

static int64_t now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

run_t *run_new(run_kind_t kind, run_trigger_t trigger, const char *backup)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	run_t *r = calloc(1, sizeof(*r));
	unsigned char rnd[4];
	char stamp[32];
	struct tm tm;
	time_t now = time(NULL);

	if (!r)
		return NULL;
	r->kind = kind;
	r->trigger = trigger;
	r->phase = RUN_PENDING;
	r->created_ms = now_ms();
	r->tables = -1;
	r->rows = -1;
	if (backup && !(r->backup = strdup(backup))) {
		free(r);
		return NULL;
	}
	if (getentropy(rnd, sizeof(rnd)) < 0)
		memset(rnd, 0, sizeof(rnd));
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(r->id, sizeof(r->id), "%s-%s-%c%c%c%c", stamp, run_kind_name(kind),
		alphabet[rnd[0] % 36], alphabet[rnd[1] % 36], alphabet[rnd[2] % 36],
		alphabet[rnd[3] % 36]);
	return r;
}

void run_free(run_t *r)
{
	if (!r)
		return;
	free(r->backup);
	free(r->target_database);
	free(r->request_id);
	free(r->error);
	free(r->cancel_reason);
	free(r);
}

static void add_string(json_object *o, const char *key, const char *value)
{
	json_object_object_add(o, key, value && *value ? json_object_new_string(value) : NULL);
}

/* The record, or the API's view of the run when `writer` is NULL. */
static char *run_json(const run_t *r, const char *writer)
{
	json_object *o = json_object_new_object();
	char *text;

	add_string(o, "id", r->id);
	add_string(o, "kind", run_kind_name(r->kind));
	add_string(o, "trigger", run_trigger_name(r->trigger));
	add_string(o, "phase", run_phase_name(r->phase));
	json_object_object_add(o, "start", r->start ? json_object_new_int64(r->start) : NULL);
	json_object_object_add(o, "end", r->end ? json_object_new_int64(r->end) : NULL);
	json_object_object_add(o, "bytesIn", json_object_new_int64((int64_t)r->bytes_in));
	json_object_object_add(o, "bytesOut", json_object_new_int64((int64_t)r->bytes_out));
	add_string(o, "sha256", r->sha256);
	add_string(o, "backup", r->backup);
	if (r->kind == RUN_RESTORE && r->target_database)
		add_string(o, "targetDatabase", r->target_database);
	if (r->request_id)
		add_string(o, "requestId", r->request_id);
	add_string(o, "error", r->error);
	json_object_object_add(o, "createdMs", json_object_new_int64(r->created_ms));
	json_object_object_add(o, "scheduledTime", r->scheduled ?
		json_object_new_int64(r->scheduled) : NULL);
	if (r->kind == RUN_VERIFY) {
		json_object_object_add(o, "tables", r->tables >= 0 ?
			json_object_new_int64(r->tables) : NULL);
		json_object_object_add(o, "rows", r->rows >= 0 ?
			json_object_new_int64(r->rows) : NULL);
	}
	if (writer)
		add_string(o, "writer", writer);
	text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return text;
}

char *run_to_json(const run_t *r)
{
	return run_json(r, NULL);
}

static const char *get_str(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int64_t get_int_or(json_object *o, const char *key, int64_t missing)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return missing;
	return json_object_get_int64(v);
}

static int64_t get_int(json_object *o, const char *key)
{
	return get_int_or(o, key, 0);
}

static int parse_enum(const char *v, const char *const *names, int n)
{
	for (int i = 0; v && i < n; i++)
		if (!strcmp(v, names[i]))
			return i;
	return -1;
}

/* A record; `*writer` (allocated) is who wrote it, NULL for records of earlier versions. */
static run_t *run_from_json(const char *text, size_t len, char **writer)
{
	static const char *const kinds[] = { "backup", "restore", "verify" };
	static const char *const phases[] = { "Pending", "Running", "Succeeded", "Failed" };
	json_tokener *tok = json_tokener_new();
	json_object *o = tok ? json_tokener_parse_ex(tok, text, (int)len) : NULL;
	run_t *r = NULL;
	int kind, phase;

	*writer = NULL;
	json_tokener_free(tok);
	if (!o || !json_object_is_type(o, json_type_object) || !get_str(o, "id"))
		goto out;
	kind = parse_enum(get_str(o, "kind"), kinds, 3);
	phase = parse_enum(get_str(o, "phase"), phases, 4);
	if (kind < 0 || phase < 0 || !(r = calloc(1, sizeof(*r))))
		goto out;
	snprintf(r->id, sizeof(r->id), "%s", get_str(o, "id"));
	r->kind = (run_kind_t)kind;
	r->phase = (run_phase_t)phase;
	r->trigger = get_str(o, "trigger") && !strcmp(get_str(o, "trigger"), "api") ?
		RUN_API : RUN_SCHEDULED;
	r->start = get_int(o, "start");
	r->end = get_int(o, "end");
	r->bytes_in = (uint64_t)get_int(o, "bytesIn");
	r->bytes_out = (uint64_t)get_int(o, "bytesOut");
	r->created_ms = get_int(o, "createdMs");
	r->scheduled = get_int(o, "scheduledTime");
	r->tables = get_int_or(o, "tables", -1);
	r->rows = get_int_or(o, "rows", -1);
	snprintf(r->sha256, sizeof(r->sha256), "%s", get_str(o, "sha256") ? get_str(o, "sha256") : "");
	r->backup = get_str(o, "backup") ? strdup(get_str(o, "backup")) : NULL;
	r->target_database = get_str(o, "targetDatabase") ?
		strdup(get_str(o, "targetDatabase")) : NULL;
	r->error = get_str(o, "error") ? strdup(get_str(o, "error")) : NULL;
	r->request_id = get_str(o, "requestId") ? strdup(get_str(o, "requestId")) : NULL;
	*writer = get_str(o, "writer") ? strdup(get_str(o, "writer")) : NULL;
out:
	json_object_put(o);
	return r;
}

static char *record_key(const runner_t *rn, const char *id)
{
	char *key;

	if (asprintf(&key, "%s/runs/%s.json", rn->cfg.name, id) < 0)
		return NULL;
	return key;
}

void run_save(runner_t *rn, bop_storage_t *storage, const run_t *r)
{
	char *key = record_key(rn, r->id), *json = run_json(r, rn->lock_owner);
	bop_sink_t *sink = NULL;
	int ret = -1;

	if (key && json && bop_storage_put(storage, &sink, key, NULL) == 0 &&
	    bop_sink_write(sink, json, strlen(json)) == 0)
		ret = bop_sink_commit(sink);
	if (ret < 0)
		rlog(BOP_LOG_WARN, "cannot write the record of run %s: %s", r->id,
			bop_error_last());
	bop_sink_free(sink);
	free(key);
	free(json);
}

int runs_read_object(bop_storage_t *storage, const char *key, char **out, size_t *len)
{
	bop_source_t *src = NULL;
	size_t cap = 0, got;
	char *buf = NULL, *grown;
	int ret;

	*out = NULL;
	*len = 0;
	ret = bop_storage_get(storage, &src, key, 0);
	while (ret == 0) {
		if (*len + 4096 > cap) {
			cap = cap ? cap * 2 : 8192;
			if (cap > (1u << 20) || !(grown = realloc(buf, cap))) {
				ret = bop_error_set(BOP_EFORMAT, "run record too large");
				break;
			}
			buf = grown;
		}
		ret = bop_source_read(src, buf + *len, cap - *len - 1, &got);
		if (ret == 0 && got == 0)
			break;
		*len += got;
		buf[*len] = '\0';
	}
	if (ret == 0)
		ret = bop_source_close(src);
	bop_source_free(src);
	if (ret < 0) {
		free(buf);
		return ret;
	}
	*out = buf;
	return 0;
}

typedef struct key_list {
	char **keys;
	size_t count;
} key_list_t;

static int collect_key(const char *key, const bop_storage_stat_t *st, void *payload)
{
	key_list_t *l = payload;
	char **grown = realloc(l->keys, (l->count + 1) * sizeof(*grown));

	(void)st;
	if (!grown)
		return 1;
	l->keys = grown;
	if ((l->keys[l->count] = strdup(key)))
		l->count++;
	return 0;
}

static void key_list_clear(key_list_t *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->keys[i]);
	free(l->keys);
	memset(l, 0, sizeof(*l));
}

static int by_id(const void *a, const void *b)
{
	const run_t *x = *(run_t *const *)a, *y = *(run_t *const *)b;

	/* Ids sort by their second only; runs of the same second by when they were queued. */
	if (x->created_ms && y->created_ms && x->created_ms != y->created_ms)
		return x->created_ms < y->created_ms ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* bop_storage_list_cb for bop_catalog_gc(): logs each leftover removed. */
static int log_leftover(const char *key, const bop_storage_stat_t *st, void *payload)
{
	(void)st;
	rlog(BOP_LOG_INFO, "removing %s: left by an interrupted run", key);
	(void)payload;
	return 0;
}

/* What the interrupted backups left in the catalog, and only in it (never a nested
 * catalog's keys): the library's gc with no age, which spares what a live lock's holder
 * (another backupop on this catalog) may be writing. */
static void cleanup_interrupted(runner_t *rn)
{
	bop_catalog_t *catalog = NULL;

	if (bop_catalog_open(&catalog, rn->storage, rn->cfg.name) < 0 ||
	    bop_catalog_gc(catalog, 0, 0, log_leftover, NULL) < 0)
		rlog(BOP_LOG_WARN, "cannot clean up what the interrupted run left in %s: %s",
			rn->cfg.name, bop_error_last());
	bop_catalog_free(catalog);
}

static void apply_history_limits(runner_t *rn, bop_storage_t *storage);

int runs_recover(runner_t *rn)
{
	key_list_t keys = { NULL, 0 };
	char *prefix = NULL;
	bool interrupted = false;
	int ret;

	if (asprintf(&prefix, "%s/runs/", rn->cfg.name) < 0)
		return BOP_ENOMEM;
	ret = bop_storage_list(rn->storage, prefix, collect_key, &keys);
	if (ret == BOP_ENOTFOUND)
		ret = 0;
	for (size_t i = 0; ret == 0 && i < keys.count; i++) {
		char *text = NULL, *writer = NULL;
		size_t len;
		run_t *r;

		if (runs_read_object(rn->storage, keys.keys[i], &text, &len) < 0) {
			rlog(BOP_LOG_WARN, "cannot read run record %s: %s", keys.keys[i],
				bop_error_last());
			continue;
		}
		r = run_from_json(text, len, &writer);
		free(text);
		if (!r) {
			rlog(BOP_LOG_WARN, "ignoring %s: not a run record", keys.keys[i]);
			continue;
		}
		if ((r->phase == RUN_RUNNING || r->phase == RUN_PENDING) && writer &&
		    !runner_owner_gone(rn, writer)) {
			rlog(BOP_LOG_INFO, "run %s is %s's, which may still run it: leaving it alone",
				r->id, writer);
			free(writer);
			run_free(r);
			continue;
		}
		free(writer);
		if (r->phase == RUN_RUNNING || r->phase == RUN_PENDING) {
			rlog(BOP_LOG_WARN, "run %s was interrupted: marking it Failed", r->id);
			r->phase = RUN_FAILED;
			r->end = runner_now();
			free(r->error);
			r->error = strdup(interrupted_error);
			run_save(rn, rn->storage, r);
			if (r->kind == RUN_BACKUP)
				interrupted = true;
		}
		pthread_mutex_lock(&rn->mu);
		runs_remember(rn, r, NULL);
		pthread_mutex_unlock(&rn->mu);
	}
	if (interrupted)
		cleanup_interrupted(rn);
	key_list_clear(&keys);
	free(prefix);
	if (rn->nhistory > 1)
		qsort(rn->history, rn->nhistory, sizeof(*rn->history), by_id);
	/* Limits lowered in the config since the last start take effect now. */
	pthread_mutex_lock(&rn->mu);
	apply_history_limits(rn, rn->storage);
	pthread_mutex_unlock(&rn->mu);
	return ret;
}

static void forget(runner_t *rn, size_t i, bop_storage_t *storage)
{
	run_t *r = rn->history[i];
	char *key = storage ? record_key(rn, r->id) : NULL;

	if (key && bop_storage_remove(storage, key) < 0 &&
	    bop_error_last_code() != BOP_ENOTFOUND)
		rlog(BOP_LOG_WARN, "cannot remove run record %s: %s", key, bop_error_last());
	free(key);
	memmove(&rn->history[i], &rn->history[i + 1],
		(rn->nhistory - i - 1) * sizeof(*rn->history));
	rn->nhistory--;
	run_free(r);
}

/* Keeps the newest `successful` succeeded and `failed` failed runs (DESIGN §2). */
static void apply_history_limits(runner_t *rn, bop_storage_t *storage)
{
	long long limits[2] = { rn->cfg.history_successful >= 0 ? rn->cfg.history_successful : 10,
		rn->cfg.history_failed >= 0 ? rn->cfg.history_failed : 3 };
	long long seen[2] = { 0, 0 };

	for (size_t i = rn->nhistory; i-- > 0;) {
		int failed = rn->history[i]->phase == RUN_FAILED;

		if (++seen[failed] > limits[failed])
			forget(rn, i, storage);
	}
}

void runs_remember(runner_t *rn, run_t *r, bop_storage_t *storage)
{
	run_t **grown = realloc(rn->history, (rn->nhistory + 1) * sizeof(*grown));

	if (!grown) {
		run_free(r);
		return;
	}
	rn->history = grown;
	rn->history[rn->nhistory++] = r;
	if (storage)
		apply_history_limits(rn, storage);
}

int64_t runs_last_scheduled(runner_t *rn, run_kind_t kind)
{
	int64_t last = 0;

	pthread_mutex_lock(&rn->mu);
	for (size_t i = 0; i < rn->nhistory; i++) {
		const run_t *r = rn->history[i];
		int64_t t = r->scheduled ? r->scheduled : r->start;

		if (r->kind == kind && r->trigger == RUN_SCHEDULED && t > last)
			last = t;
	}
	pthread_mutex_unlock(&rn->mu);
	return last;
}

/* The first run (current, pending, then finished) whose `field` is `value`. Under mu. */
static run_t *find_by(runner_t *rn, const char *(*field)(const run_t *), const char *value)
{
	const char *v;

	if (rn->current && (v = field(rn->current)) && !strcmp(v, value))
		return rn->current;
	for (run_t *p = rn->pending; p; p = p->next)
		if ((v = field(p)) && !strcmp(v, value))
			return p;
	for (size_t i = 0; i < rn->nhistory; i++)
		if ((v = field(rn->history[i])) && !strcmp(v, value))
			return rn->history[i];
	return NULL;
}

static const char *id_of(const run_t *r)
{
	return r->id;
}

static const char *request_of(const run_t *r)
{
	return r->request_id;
}

run_t *runs_find(runner_t *rn, const char *id)
{
	return find_by(rn, id_of, id);
}

run_t *runs_find_request(runner_t *rn, const char *request_id)
{
	return find_by(rn, request_of, request_id);
}
