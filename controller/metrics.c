/*
 * /metrics of the controller: its own counters (state.c) and, while it leads, one set of
 * gauges per BackupSchedule made at scrape time from what the informers mirror (the
 * schedules' status and their BackupRuns). Made afresh on every scrape, a deleted
 * schedule's series are gone with it. See backupop-controller(8), METRICS.
 */
#include "ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How many upcoming fire times the interval is taken from: the longest gap among them, so
 * that a weekday schedule's interval is its weekend. */
#define INTERVAL_SAMPLES 10

enum {
	G_INFO, G_SUSPENDED, G_READY, G_CREATED, G_INTERVAL, G_NEXT, G_LAST_SCHEDULE,
	G_LAST_SUCCESS, G_LAST_RUN_SUCCESS, G_LAST_RUN_TIME, G_LAST_BYTES, G_LAST_DURATION,
	G_RUNS, G_COUNT
};

typedef struct gauge_def {
	const char *name;
	const char *help;
} gauge_def_t;

static const gauge_def_t gauges[G_COUNT] = {
	[G_INFO] = { "backupop_schedule_info",
		"A BackupSchedule the controller reconciles (always 1); runner is its runner's name." },
	[G_SUSPENDED] = { "backupop_schedule_suspended", "1 while spec.suspend is true." },
	[G_READY] = { "backupop_schedule_ready", "1 while the schedule's Ready condition is True." },
	[G_CREATED] = { "backupop_schedule_created_timestamp_seconds",
		"When the schedule was created (unix time)." },
	[G_INTERVAL] = { "backupop_schedule_interval_seconds",
		"The longest gap between the schedule's next ten fire times." },
	[G_NEXT] = { "backupop_schedule_next_run_timestamp_seconds",
		"status.nextScheduleTime (unix time)." },
	[G_LAST_SCHEDULE] = { "backupop_schedule_last_schedule_timestamp_seconds",
		"status.lastScheduleTime: the latest scheduled run the runner reported (unix time)." },
	[G_LAST_SUCCESS] = { "backupop_schedule_last_success_timestamp_seconds",
		"When the last successful backup ended (unix time)." },
	[G_LAST_RUN_SUCCESS] = { "backupop_schedule_last_run_success",
		"1 when the latest finished backup BackupRun succeeded, 0 when it failed." },
	[G_LAST_RUN_TIME] = { "backupop_schedule_last_run_timestamp_seconds",
		"When the latest finished backup BackupRun ended (unix time)." },
	[G_LAST_BYTES] = { "backupop_schedule_last_backup_bytes",
		"Stored size of the latest successful backup BackupRun, in bytes." },
	[G_LAST_DURATION] = { "backupop_schedule_last_backup_duration_seconds",
		"How long the latest successful backup BackupRun took." },
	[G_RUNS] = { "backupop_schedule_runs",
		"The schedule's BackupRuns that exist, by phase." },
};

/* The latest finished backups of one schedule, from its BackupRuns. */
typedef struct last_runs {
	int64_t end;            /* the latest finished backup run */
	bool ok;
	int64_t ok_end;         /* the latest successful one */
	int64_t ok_start;
	int64_t ok_bytes;
	int64_t phases[4];      /* Pending, Running, Succeeded, Failed */
} last_runs_t;

static const char *const phase_names[4] = { "Pending", "Running", "Succeeded", "Failed" };

typedef struct scrape {
	json_object *index;     /* "ns/schedule" -> its index in `runs` */
	last_runs_t *runs;
	size_t nruns, cap;
	bop_metric_t *g[G_COUNT];
	int64_t now;
} scrape_t;

static last_runs_t *find_runs(scrape_t *s, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(s->index, key, &v))
		return NULL;
	return &s->runs[json_object_get_int64(v)];
}

static last_runs_t *runs_of(scrape_t *s, const char *key)
{
	last_runs_t *l = find_runs(s, key);

	if (l)
		return l;
	if (s->nruns == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		last_runs_t *a = realloc(s->runs, cap * sizeof(*a));

		if (!a)
			return NULL;
		s->runs = a;
		s->cap = cap;
	}
	memset(&s->runs[s->nruns], 0, sizeof(s->runs[0]));
	json_object_object_add(s->index, key, json_object_new_int64((int64_t)s->nruns));
	return &s->runs[s->nruns++];
}

static int collect_run(const char *key, const char *object, void *ud)
{
	scrape_t *s = ud;
	json_object *o = jparse(object);
	const char *ns = js(o, "metadata.namespace"), *sched = js(o, "spec.scheduleRef.name");
	const char *action = js(o, "spec.action"), *phase = js(o, "status.phase");
	char k[600];
	last_runs_t *l;

	(void)key;
	if (!ns || !sched)
		goto out;
	snprintf(k, sizeof(k), "%s/%s", ns, sched);
	if (!(l = runs_of(s, k)))
		goto out;
	for (int i = 0; i < 4; i++)
		if (phase && !strcmp(phase, phase_names[i]))
			l->phases[i]++;
	if ((action && strcmp(action, "backup")) || !phase ||
	    (strcmp(phase, "Succeeded") && strcmp(phase, "Failed")))
		goto out;
	{
		int64_t end = ctl_parse_time(js(o, "status.completionTime"));
		bool ok = !strcmp(phase, "Succeeded");

		if (!end)
			end = ctl_parse_time(js(o, "metadata.creationTimestamp"));
		if (end >= l->end) {
			l->end = end;
			l->ok = ok;
		}
		if (ok && end >= l->ok_end) {
			l->ok_end = end;
			l->ok_start = ctl_parse_time(js(o, "status.startTime"));
			l->ok_bytes = jint(o, "status.bytesOut", 0);
		}
	}
out:
	json_object_put(o);
	return 0;
}

static int64_t interval_of(json_object *sched, int64_t now)
{
	bop_schedule_t *s = NULL;
	int64_t t = now, prev = 0, gap = 0;

	if (!js(sched, "spec.schedule") ||
	    bop_schedule_parse(&s, js(sched, "spec.schedule"), js(sched, "spec.timeZone")))
		return 0;
	for (int i = 0; i <= INTERVAL_SAMPLES; i++) {
		int64_t next;

		if (bop_schedule_next(s, &next, t) || next <= t)
			break;
		if (prev && next - prev > gap)
			gap = next - prev;
		prev = t = next;
	}
	bop_schedule_free(s);
	return gap;
}

static bool ready(json_object *sched)
{
	json_object *conds = jget(sched, "status.conditions");

	for (size_t i = 0; conds && json_object_is_type(conds, json_type_array) &&
	    i < json_object_array_length(conds); i++) {
		json_object *cd = json_object_array_get_idx(conds, i);
		const char *type = js(cd, "type"), *st = js(cd, "status");

		if (type && !strcmp(type, "Ready"))
			return st && !strcmp(st, "True");
	}
	return false;
}

static void set_time(bop_metric_t *g, const char *const *labels, int64_t t)
{
	if (t > 0)
		bop_metric_set(g, labels, (double)t);
}

static int export_schedule(const char *key, const char *object, void *ud)
{
	scrape_t *s = ud;
	json_object *o = jparse(object), *v;
	const char *ns = js(o, "metadata.namespace"), *name = js(o, "metadata.name");
	const char *labels[] = { ns, name, NULL, NULL };
	const char *info[] = { ns, name, NULL, NULL };
	last_runs_t *l = NULL;
	char *runner = NULL;
	int64_t ok_end, interval;

	(void)key;
	if (!ns || !name)
		goto out;
	if (bop_reconcile_name(&runner, "runner", ns, name) == 0)
		info[2] = runner;
	bop_metric_set(s->g[G_INFO], info, 1);
	v = jget(o, "spec.suspend");
	bop_metric_set(s->g[G_SUSPENDED], labels, v && json_object_get_boolean(v) ? 1 : 0);
	bop_metric_set(s->g[G_READY], labels, ready(o) ? 1 : 0);
	set_time(s->g[G_CREATED], labels, ctl_parse_time(js(o, "metadata.creationTimestamp")));
	if ((interval = interval_of(o, s->now)) > 0)
		bop_metric_set(s->g[G_INTERVAL], labels, (double)interval);
	set_time(s->g[G_NEXT], labels, ctl_parse_time(js(o, "status.nextScheduleTime")));
	set_time(s->g[G_LAST_SCHEDULE], labels, ctl_parse_time(js(o, "status.lastScheduleTime")));
	ok_end = ctl_parse_time(js(o, "status.lastSuccessfulTime"));
	{
		char k[600];

		snprintf(k, sizeof(k), "%s/%s", ns, name);
		l = find_runs(s, k);
	}
	if (l && l->ok_end > ok_end)
		ok_end = l->ok_end;
	set_time(s->g[G_LAST_SUCCESS], labels, ok_end);
	for (int i = 0; i < 4; i++) {
		const char *pl[] = { ns, name, phase_names[i], NULL };

		bop_metric_set(s->g[G_RUNS], pl, l ? (double)l->phases[i] : 0);
	}
	if (l && l->end) {
		bop_metric_set(s->g[G_LAST_RUN_SUCCESS], labels, l->ok ? 1 : 0);
		set_time(s->g[G_LAST_RUN_TIME], labels, l->end);
	}
	if (l && l->ok_end) {
		bop_metric_set(s->g[G_LAST_BYTES], labels, (double)l->ok_bytes);
		if (l->ok_start && l->ok_start <= l->ok_end)
			bop_metric_set(s->g[G_LAST_DURATION], labels, (double)(l->ok_end - l->ok_start));
	}
out:
	bop_free(runner);
	json_object_put(o);
	return 0;
}

/* The per-schedule gauges in the text format; "" when this replica does not lead or its
 * caches have not synced (another replica exports them). */
static int render_schedules(ctl_t *c, char **text, size_t *len)
{
	static const char *const ns_sched[] = { "namespace", "schedule", NULL };
	static const char *const with_runner[] = { "namespace", "schedule", "runner", NULL };
	static const char *const with_phase[] = { "namespace", "schedule", "phase", NULL };
	scrape_t s = { .now = ctl_now() };
	bop_metrics_t *m = NULL;
	int ret;

	*text = NULL;
	*len = 0;
	if (!atomic_load(&c->leading) || !ctl_synced(c))
		return 0;
	if (!(s.index = json_object_new_object()))
		return bop_error_set(BOP_ENOMEM, "out of memory");
	ret = bop_metrics_new(&m);
	for (int i = 0; ret == 0 && i < G_COUNT; i++)
		ret = bop_metrics_gauge(m, &s.g[i], gauges[i].name, gauges[i].help,
			i == G_INFO ? with_runner : i == G_RUNS ? with_phase : ns_sched);
	if (ret == 0)
		ret = bop_k8s_informer_foreach(c->runs, collect_run, &s);
	if (ret == 0)
		ret = bop_k8s_informer_foreach(c->schedules, export_schedule, &s);
	if (ret == 0)
		ret = bop_metrics_render(m, text, len);
	bop_metrics_free(m);
	json_object_put(s.index);
	free(s.runs);
	return ret;
}

static int h_metrics(bop_http_request_t *req, void *payload)
{
	ctl_t *c = payload;
	char *own = NULL, *sched = NULL, *all;
	size_t own_len = 0, sched_len = 0;
	int ret;

	if ((ret = bop_metrics_render(c->metrics, &own, &own_len)) ||
	    (ret = render_schedules(c, &sched, &sched_len))) {
		bop_free(own);
		return bop_http_respond_error(req, 500, bop_error_last());
	}
	all = malloc(own_len + sched_len + 1);
	if (!all) {
		ret = bop_http_respond_error(req, 500, "out of memory");
	} else {
		memcpy(all, own, own_len);
		if (sched_len)
			memcpy(all + own_len, sched, sched_len);
		ret = bop_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", all,
			own_len + sched_len);
	}
	free(all);
	bop_free(own);
	bop_free(sched);
	return ret;
}

int ctl_metrics_route(ctl_t *c)
{
	return bop_http_server_route(c->http, "GET", "/metrics", BOP_HTTP_ROUTE_PUBLIC, h_metrics, c);
}
