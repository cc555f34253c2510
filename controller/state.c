/*
 * backupop-controller: the state its threads share (reference index, Secret cache, the
 * work queue and its workers, metrics) and its logging and time helpers. main.c wires
 * informers, leader election and the HTTP endpoints to it.
 */
#include "ctl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- logging and time (UTC, RFC 3339 as the API server writes it) ---- */

void clog_(bop_log_level_t level, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	bop_log(level, "controller", msg);
}

int64_t ctl_now(void)
{
	return (int64_t)time(NULL);
}

void ctl_format_time(int64_t t, char buf[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int64_t ctl_parse_time(const char *s)
{
	struct tm tm = { 0 };
	const char *end;

	if (!s)
		return 0;
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return 0;
	return (int64_t)timegm(&tm);
}

/* ---- the work queue ---- */

void ctl_enqueue(ctl_t *c, char kind, const char *ns_name, unsigned int delay_ms)
{
	char key[700];

	snprintf(key, sizeof(key), "%c/%.600s", kind, ns_name);
	if (delay_ms)
		bop_workqueue_add_after(c->queue, key, delay_ms);
	else
		bop_workqueue_add(c->queue, key);
}

static void enqueue_schedule(void *ud, const char *key)
{
	ctl_enqueue(ud, 's', key, 0);
}

void ctl_enqueue_refs(ctl_t *c, const char *ref)
{
	pthread_mutex_lock(&c->lock);
	ctl_index_each(c->refs, ref, enqueue_schedule, c);
	pthread_mutex_unlock(&c->lock);
}

/* ---- workers ---- */

typedef struct worker_arg {
	ctl_t *c;
	int w;
} worker_arg_t;

static worker_arg_t worker_args[CTL_WORKERS];

void ctl_informer_list(ctl_t *c, bop_k8s_informer_t *all[CTL_INFORMERS])
{
	bop_k8s_informer_t *list[CTL_INFORMERS] = { c->schedules, c->storages, c->runs,
		c->secrets, c->namespaces, c->owned[0], c->owned[1], c->owned[2], c->templates,
		c->ctemplates, c->workloads[0], c->workloads[1], c->workloads[2] };

	memcpy(all, list, sizeof(list));
}

bool ctl_synced(ctl_t *c)
{
	bop_k8s_informer_t *all[CTL_INFORMERS];

	ctl_informer_list(c, all);
	for (size_t i = 0; i < CTL_INFORMERS; i++)
		if (!bop_k8s_informer_synced(all[i]))
			return false;
	return true;
}

static void *worker(void *p)
{
	worker_arg_t *a = p;
	ctl_t *c = a->c;
	char *key;

	while (!ctl_synced(c) && !atomic_load(&c->stopping))
		usleep(50 * 1000);
	if (a->w == 0 && !atomic_exchange(&c->swept, true))
		ctl_sweep_orphans(c, 0);
	while (bop_workqueue_get(c->queue, &key, -1) == 0) {
		char ns[256] = "", *name;
		const char *kind = key[0] == 's' ? "BackupSchedule" : key[0] == 'r' ? "BackupRun" :
			"Workload";
		const char *labels[] = { kind, NULL, NULL };
		struct timespec t0, t1;
		int ret = 0;

		bop_metric_set(c->m_queue, NULL, (double)bop_workqueue_len(c->queue));
		clock_gettime(CLOCK_MONOTONIC, &t0);
		name = strchr(key + 2, '/');
		if (strlen(key) > 2 && name && (size_t)(name - key - 2) < sizeof(ns)) {
			memcpy(ns, key + 2, (size_t)(name - key - 2));
			ns[name - key - 2] = '\0';
			name++;
			bop_error_clear();
			ret = key[0] == 's' ? ctl_reconcile_schedule(c, a->w, ns, name) :
				key[0] == 'r' ? ctl_reconcile_run(c, a->w, ns, name) :
				ctl_reconcile_workload(c, a->w, key[0], ns, name);
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		labels[1] = ret ? "error" : "success";
		bop_metric_add(c->m_reconciles, labels, 1);
		bop_metric_observe(c->m_duration, labels, (double)(t1.tv_sec - t0.tv_sec) +
			(double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
		if (ret) {
			clog_(ret == BOP_ECONFLICT ? BOP_LOG_DEBUG : BOP_LOG_WARN,
				"%s %s: %s (retrying, attempt %u)", kind, key + 2, bop_error_last(),
				bop_workqueue_failures(c->queue, key) + 1);
			bop_metric_add(c->m_errors, labels, 1);
			bop_workqueue_add_rate_limited(c->queue, key);
		} else {
			bop_workqueue_forget(c->queue, key);
		}
		bop_workqueue_done(c->queue, key);
		bop_free(key);
	}
	return NULL;
}

void ctl_start_workers(ctl_t *c)
{
	for (int i = 0; i < CTL_WORKERS; i++) {
		worker_args[i].c = c;
		worker_args[i].w = i;
		if (pthread_create(&c->workers[i], NULL, worker, &worker_args[i]) == 0)
			c->nworkers++;
	}
}

void ctl_stop_workers(ctl_t *c)
{
	bop_workqueue_shutdown(c->queue);
	for (int i = 0; i < c->nworkers; i++)
		pthread_join(c->workers[i], NULL);
	c->nworkers = 0;
}

/* ---- metrics ---- */

void ctl_count_write(ctl_t *c, const char *kind)
{
	const char *labels[] = { kind, NULL };

	bop_metric_add(c->m_writes, labels, 1);
}

static int setup_metrics(ctl_t *c)
{
	static const char *const kr[] = { "kind", "result", NULL };
	static const char *const k[] = { "kind", NULL };
	static const double buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
	int ret;

	if ((ret = bop_metrics_new(&c->metrics)) ||
	    (ret = bop_metrics_counter(c->metrics, &c->m_reconciles,
		"backupop_controller_reconcile_total", "Reconciles by kind and result.", kr)) ||
	    (ret = bop_metrics_histogram(c->metrics, &c->m_duration,
		"backupop_controller_reconcile_duration_seconds", "Time spent in one reconcile.",
		kr, buckets, sizeof(buckets) / sizeof(buckets[0]))) ||
	    (ret = bop_metrics_gauge(c->metrics, &c->m_queue, "backupop_controller_queue_depth",
		"Keys waiting in the work queue.", NULL)) ||
	    (ret = bop_metrics_counter(c->metrics, &c->m_writes, "backupop_controller_writes_total",
		"Objects and statuses written to the API server, by kind.", k)) ||
	    (ret = bop_metrics_counter(c->metrics, &c->m_errors,
		"backupop_controller_reconcile_errors_total", "Reconciles that failed (retried).", kr)) ||
	    (ret = bop_metrics_gauge(c->metrics, &c->m_leader, "backupop_controller_leader",
		"1 while this process is the leader.", NULL)))
		return ret;
	/* errors are rare: their series exist from the start, at 0 (rate() and alerts) */
	for (int i = 0; i < 2; i++) {
		const char *labels[] = { i ? "BackupRun" : "BackupSchedule", "error", NULL };

		bop_metric_add(c->m_errors, labels, 0);
	}
	return 0;
}

/* ---- the state's life ---- */

int ctl_state_init(ctl_t *c)
{
	int ret;

	pthread_mutex_init(&c->lock, NULL);
	c->refs = ctl_index_new();
	c->secret_cache = json_object_new_object();
	c->active = json_object_new_object();
	c->unreachable = json_object_new_object();
	c->sidecars = json_object_new_object();
	c->sc_secrets = ctl_index_new();
	c->wl_seen = json_object_new_object();
	c->posted = json_object_new_object();
	if (!c->refs || !c->secret_cache || !c->active || !c->unreachable || !c->sidecars ||
	    !c->sc_secrets || !c->wl_seen || !c->posted)
		return bop_error_set(BOP_ENOMEM, "out of memory");
	if ((ret = setup_metrics(c)) || (ret = bop_workqueue_new(&c->queue, NULL)))
		return ret;
	return 0;
}

void ctl_state_free(ctl_t *c)
{
	bop_workqueue_free(c->queue);
	bop_metrics_free(c->metrics);
	ctl_index_free(c->refs);
	json_object_put(c->secret_cache);
	json_object_put(c->active);
	json_object_put(c->unreachable);
	json_object_put(c->sidecars);
	ctl_index_free(c->sc_secrets);
	json_object_put(c->wl_seen);
	json_object_put(c->posted);
	pthread_mutex_destroy(&c->lock);
}
