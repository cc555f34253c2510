/*
 * Scheduling: a libuv timer per schedule armed for its next fire time; due runs are
 * queued, one runs at a time on a libuv worker thread, and the concurrency policy decides
 * what happens to a scheduled backup that comes due while another run is going on.
 */
#include "runner.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static int64_t now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void arm(sched_slot_t *slot);

static void log_time(const sched_slot_t *slot, const char *what, int64_t t)
{
	char buf[64];

	if (bop_schedule_format_time(slot->schedule, buf, sizeof(buf), t) < 0)
		snprintf(buf, sizeof(buf), "%lld", (long long)t);
	rlog(BOP_LOG_INFO, "%s %s: %s", run_kind_name(slot->kind), what, buf);
}

/* A scheduled run came due: queue it, unless the policy says otherwise. */
static void fire(sched_slot_t *slot, int64_t when)
{
	runner_t *rn = slot->rn;
	run_t *r;
	bool busy;

	pthread_mutex_lock(&rn->mu);
	busy = rn->current != NULL;
	if (busy && rn->cfg.concurrency == RCFG_REPLACE && slot->kind == RUN_BACKUP) {
		rlog(BOP_LOG_INFO, "concurrencyPolicy Replace: canceling run %s for the scheduled "
			"backup", rn->current->id);
		job_cancel(rn->current, "canceled: replaced by a newer scheduled backup");
	}
	pthread_mutex_unlock(&rn->mu);
	if (busy && rn->cfg.concurrency != RCFG_REPLACE) {
		rlog(BOP_LOG_WARN, "concurrencyPolicy Forbid: skipping the scheduled %s, a run is "
			"still going on", run_kind_name(slot->kind));
		return;
	}
	r = run_new(slot->kind, RUN_SCHEDULED, NULL);
	if (!r) {
		rlog(BOP_LOG_ERROR, "out of memory: skipping the scheduled %s",
			run_kind_name(slot->kind));
		return;
	}
	r->scheduled = when;
	sched_enqueue(rn, r, true);
}

/* The latest fire time was missed by more than startingDeadlineSeconds. */
static void log_missed(const sched_slot_t *slot, int64_t now)
{
	int64_t t = slot->last, latest = 0;
	char buf[64];

	for (int i = 0; i < 100000 && bop_schedule_next(slot->schedule, &t, t) == 0 && t <= now;
	     i++)
		latest = t;
	if (!latest || bop_schedule_format_time(slot->schedule, buf, sizeof(buf), latest) < 0)
		snprintf(buf, sizeof(buf), "?");
	rlog(BOP_LOG_WARN, "the scheduled %s of %s was missed by %llds, more than "
		"startingDeadlineSeconds (%lld): skipped", run_kind_name(slot->kind), buf,
		(long long)(now - latest), slot->rn->cfg.starting_deadline);
}

static void on_timer(uv_timer_t *t)
{
	sched_slot_t *slot = t->data;
	int64_t now = now_ms() / 1000, run = 0;
	uint64_t missed = 0;
	int due;

	slot->armed = false;
	if (slot->rn->stopping)
		return;
	due = bop_schedule_due(slot->schedule, &run, &missed, slot->last, now,
		slot->rn->cfg.starting_deadline);
	if (missed > 1)
		rlog(BOP_LOG_WARN, "%llu scheduled %s runs were missed; running only the latest",
			(unsigned long long)missed - 1, run_kind_name(slot->kind));
	if (due < 0)
		rlog(BOP_LOG_ERROR, "schedule: %s", bop_error_last());
	else if (due == 0 && missed)
		log_missed(slot, now);
	if (due == 1)
		fire(slot, run);
	if (missed || due == 1)
		slot->last = now;
	arm(slot);
}

static void arm(sched_slot_t *slot)
{
	int64_t delay;

	if (!slot->schedule || slot->rn->stopping)
		return;
	/* From the latest fire time handled: one missed meanwhile comes due at once, and
	 * on_timer() applies startingDeadlineSeconds to it. */
	if (bop_schedule_next(slot->schedule, &slot->next, slot->last) < 0) {
		rlog(BOP_LOG_WARN, "the %s schedule does not fire again: %s",
			run_kind_name(slot->kind), bop_error_last());
		slot->next = 0;
		return;
	}
	delay = slot->next * 1000 - now_ms();
	if (delay < 0)
		delay = 0;
	/* A few ms late, so that the second has begun when the timer runs. */
	uv_update_time(slot->rn->loop);
	uv_timer_start(&slot->timer, on_timer, (uint64_t)delay + 5, 0);
	slot->armed = true;
	log_time(slot, "next run", slot->next);
}

static void work_cb(uv_work_t *w)
{
	runner_t *rn = w->data;
	bop_storage_t *storage = NULL;
	run_t *r = rn->current;

	if (runner_open_storage(rn, &storage) < 0)
		rlog(BOP_LOG_ERROR, "cannot open the storage for run records: %s",
			bop_error_last());
	if (storage)
		run_save(rn, storage, r);
	job_execute(rn, r);
	pthread_mutex_lock(&rn->mu);
	r->end = runner_now();
	pthread_mutex_unlock(&rn->mu);
	if (storage)
		run_save(rn, storage, r);
	metrics_run_done(rn, r);
	if (r->phase == RUN_FAILED)
		rlog(BOP_LOG_ERROR, "run %s (%s) failed: %s", r->id, run_kind_name(r->kind),
			r->error ? r->error : "unknown error");
	else
		rlog(BOP_LOG_INFO, "run %s (%s) succeeded", r->id, run_kind_name(r->kind));
	pthread_mutex_lock(&rn->mu);
	if (r->kind == RUN_BACKUP && r->phase == RUN_SUCCEEDED)
		rn->last_success = r->end;
	rn->current = NULL;
	runs_remember(rn, r, storage);  /* may free r (history limits) */
	pthread_mutex_unlock(&rn->mu);
	bop_storage_free(storage);
}

static void after_work_cb(uv_work_t *w, int status)
{
	runner_t *rn = w->data;

	(void)status;
	if (rn->stopping) {
		sched_stop(rn);
		return;
	}
	sched_kick(rn);
}

void sched_kick(runner_t *rn)
{
	run_t *r;

	pthread_mutex_lock(&rn->mu);
	if (rn->current || !rn->pending || rn->stopping) {
		pthread_mutex_unlock(&rn->mu);
		return;
	}
	r = rn->pending;
	rn->pending = r->next;
	r->next = NULL;
	r->phase = RUN_RUNNING;
	r->start = runner_now();
	rn->current = r;
	pthread_mutex_unlock(&rn->mu);
	rlog(BOP_LOG_INFO, "run %s (%s, %s) starting", r->id, run_kind_name(r->kind),
		run_trigger_name(r->trigger));
	rn->work.data = rn;
	uv_queue_work(rn->loop, &rn->work, work_cb, after_work_cb);
}

void sched_enqueue(runner_t *rn, run_t *r, bool front)
{
	run_t **p;

	pthread_mutex_lock(&rn->mu);
	if (front) {
		r->next = rn->pending;
		rn->pending = r;
	} else {
		for (p = &rn->pending; *p; p = &(*p)->next)
			;
		*p = r;
	}
	pthread_mutex_unlock(&rn->mu);
	sched_kick(rn);
}

static int start_slot(runner_t *rn, sched_slot_t *slot, run_kind_t kind, const char *expr)
{
	int ret;

	slot->rn = rn;
	slot->kind = kind;
	uv_timer_init(rn->loop, &slot->timer);
	slot->timer.data = slot;
	if (!expr)
		return 0;
	ret = bop_schedule_parse(&slot->schedule, expr, rn->cfg.time_zone);
	if (ret < 0)
		return ret;
	/* Fire times since the last scheduled run (from the run records) were missed while
	 * the runner was down: startingDeadlineSeconds decides on them. Without a record,
	 * scheduling starts now. */
	slot->last = runs_last_scheduled(rn, kind);
	if (slot->last)
		log_time(slot, "last scheduled run", slot->last);
	else
		slot->last = now_ms() / 1000;
	if (rn->cfg.suspend != 1)
		arm(slot);
	return 0;
}

int sched_start(runner_t *rn)
{
	int ret = start_slot(rn, &rn->slots[0], RUN_BACKUP, rn->cfg.schedule);

	if (ret == 0)
		ret = start_slot(rn, &rn->slots[1], RUN_VERIFY, rn->cfg.verify_schedule);
	if (rn->cfg.suspend == 1)
		rlog(BOP_LOG_INFO, "suspended: no scheduled runs (the API still works)");
	return ret;
}

static void drop_pending(runner_t *rn)
{
	run_t *r;

	pthread_mutex_lock(&rn->mu);
	while ((r = rn->pending)) {
		rn->pending = r->next;
		rlog(BOP_LOG_WARN, "run %s (%s) dropped: the runner is stopping", r->id,
			run_kind_name(r->kind));
		run_free(r);
	}
	pthread_mutex_unlock(&rn->mu);
}

/* Stops scheduling; closes the loop's handles once no run is left. */
void sched_stop(runner_t *rn)
{
	bool busy;

	rn->stopping = true;
	for (int i = 0; i < 2; i++)
		uv_timer_stop(&rn->slots[i].timer);
	drop_pending(rn);
	pthread_mutex_lock(&rn->mu);
	busy = rn->current != NULL;
	if (busy)
		job_cancel(rn->current, "canceled at shutdown");
	pthread_mutex_unlock(&rn->mu);
	if (busy)
		return;         /* after_work_cb calls again */
	uv_stop(rn->loop);
}
