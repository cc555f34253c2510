/*
 * backupop-runner: takes the backups of one schedule (backupop-runner(8)).
 *
 * Threads: the libuv loop owns scheduling, signals and the start and end of runs; one run
 * at a time executes on a libuv worker thread; the HTTP server answers from its own
 * threads. Everything they share lives in runner_t under `mu`.
 */
#ifndef BACKUPOP_RUNNER_DAEMON_H
#define BACKUPOP_RUNNER_DAEMON_H

#include <backupop.h>

#include "config.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef enum run_kind { RUN_BACKUP, RUN_RESTORE, RUN_VERIFY } run_kind_t;
typedef struct crdb_endpoint crdb_endpoint_t;
typedef enum run_trigger { RUN_SCHEDULED, RUN_API } run_trigger_t;
typedef enum run_phase { RUN_PENDING, RUN_RUNNING, RUN_SUCCEEDED, RUN_FAILED } run_phase_t;

/* One run: its record in storage is "<name>/runs/<id>.json". */
typedef struct run {
	char id[64];
	run_kind_t kind;
	run_trigger_t trigger;
	run_phase_t phase;
	int64_t start;                  /* unix seconds; 0 until it starts */
	int64_t end;
	uint64_t bytes_in;
	uint64_t bytes_out;
	char sha256[BOP_SHA256_HEX_SIZE];
	char *backup;                   /* the backup taken, or the one to restore/verify */
	char *target_database;          /* a restore's targetDatabase, or NULL */
	char *request_id;               /* the caller's requestId (POST ...?requestId=), or NULL */
	char *error;
	int64_t created_ms;             /* unix milliseconds when queued: orders the history */
	int64_t scheduled;              /* the fire time of a scheduled run, else 0 */
	int64_t tables;                 /* verify with a row check: tables counted, else -1 */
	int64_t rows;                   /* ... and their rows, else -1 */
	bool cancel_requested;
	char *cancel_reason;
	/* While it runs (worker thread): what cancels it. */
	bop_catalog_t *catalog;
	bop_pipeline_t *pipeline;
	struct run *next;               /* the pending queue */
} run_t;

/* A schedule of backups, or of verifications. */
typedef struct sched_slot {
	struct runner *rn;
	run_kind_t kind;
	bop_schedule_t *schedule;
	uv_timer_t timer;
	int64_t last;                   /* the latest fire time handled */
	int64_t next;                   /* 0 when none */
	bool armed;
} sched_slot_t;

typedef struct runner {
	rcfg_t cfg;
	const char *state_dir;
	uv_loop_t *loop;
	sched_slot_t slots[2];          /* backups, verifications */
	uv_signal_t sigterm;
	uv_signal_t sigint;
	uv_async_t wakeup;              /* the API queued a run */
	uv_work_t work;
	bop_storage_t *storage;         /* loop thread and API, under mu */
	bop_keys_t *encrypt_keys;
	bop_keys_t *decrypt_keys;
	bop_compression_t compression;
	bool stopping;
	bool ready;
	char lock_owner[512];           /* "backupop-runner:<name>:<host>:<pid>" */
	void *api;                      /* the HTTP server, when built with one */
	void *metrics_http;             /* the metrics listener (metrics.listen), or NULL */
	char *api_token_path;           /* the token generated without api.token, or NULL */
	crdb_endpoint_t *crdb;          /* the cockroach endpoint of the running run, under mu */

	pthread_mutex_t mu;
	run_t *current;                 /* running on the worker, or NULL */
	run_t *pending;                 /* queued, FIFO */
	run_t **history;                /* finished runs, oldest first */
	size_t nhistory;
	char *retention_json;           /* the last plan, for the API */
	int64_t last_success;

	bop_metrics_t *metrics;
	bop_metric_t *m_duration;       /* backupop_backup_duration_seconds */
	bop_metric_t *m_bytes;          /* backupop_backup_bytes */
	bop_metric_t *m_last_success;   /* backupop_last_success_timestamp_seconds */
	bop_metric_t *m_runs;           /* backupop_runs_total{kind,result} */
} runner_t;

/* runs.c */
run_t *run_new(run_kind_t kind, run_trigger_t trigger, const char *backup);
void run_free(run_t *r);
const char *run_kind_name(run_kind_t kind);
const char *run_phase_name(run_phase_t phase);
const char *run_trigger_name(run_trigger_t trigger);
/* The run as JSON text (free()). */
char *run_to_json(const run_t *r);
/* Writes the run's record to storage; failures are logged, never fatal. */
void run_save(runner_t *rn, bop_storage_t *storage, const run_t *r);
/* Loads the records of earlier runs; marks those left Running by a crash as Failed and
 * removes what they left behind. */
int runs_recover(runner_t *rn);
/* The fire time of the latest scheduled run of `kind` in the history (from the run
 * records after a restart), or 0. */
int64_t runs_last_scheduled(runner_t *rn, run_kind_t kind);
/* Reads a small object (at most 1 MiB), NUL-terminated. */
int runs_read_object(bop_storage_t *storage, const char *key, char **out, size_t *len);
/* Adds a finished run to the history and applies the history limits. Under mu. */
void runs_remember(runner_t *rn, run_t *r, bop_storage_t *storage);
/* The run with this id (current, pending or finished), or NULL. Under mu. */
run_t *runs_find(runner_t *rn, const char *id);
/* The run an API request with this requestId made (current, pending or finished), or
 * NULL. Under mu. */
run_t *runs_find_request(runner_t *rn, const char *request_id);

/* jobs.c: executes `r` (worker thread); fills its phase, counters and error. */
void job_execute(runner_t *rn, run_t *r);
/* The engine block of the config for a restore into `target` (a name that
 * api_database_name_ok() took): restore.database set to it, for this run only. NULL with
 * the reason in `why` when the engine has no database to restore into (files, exec,
 * cockroach) or backs up several (allDatabases, globals), or when out of memory. The
 * text holds the engine's secrets: wipe it before free(). */
char *job_target_engine_json(const rcfg_t *c, const char *target, char *why, size_t whylen);

/* Opens the configured storage (URL and settings of the config). */
int runner_open_storage(runner_t *rn, bop_storage_t **out);
/* Cancels `r` if it runs; any thread, with mu held. */
void job_cancel(run_t *r, const char *reason);
/* Sets the runner's lock owner and, at start, removes the catalog lock left by an earlier
 * incarnation of this runner (kill -9, a restarted pod). */
void locks_init(runner_t *rn);
/* Whether `owner` (a lock owner or a run record's writer) is this runner's earlier life. */
bool runner_owner_gone(const runner_t *rn, const char *owner);

/* sched.c */
int sched_start(runner_t *rn);
/* Queues a run and starts it when nothing runs. Loop thread. */
void sched_enqueue(runner_t *rn, run_t *r, bool front);
/* Starts the next pending run if none runs. Loop thread. */
void sched_kick(runner_t *rn);
void sched_stop(runner_t *rn);

/* cockroach.c: the endpoint CockroachDB's BACKUP and RESTORE use. */
/* Makes a run token and serves `session` (a backup) or the files of `manifest` of
 * `catalog` (a restore) under it until crdb_endpoint_close(). */
int crdb_endpoint_open(runner_t *rn, crdb_endpoint_t **out, bop_backup_session_t *session,
	bop_catalog_t *catalog, const bop_manifest_t *manifest, const bop_keys_t *keys);
/* "<api.advertiseURL>/v1/cockroach/<token>" (free()). */
char *crdb_endpoint_url(const runner_t *rn, const crdb_endpoint_t *ep);
/* Revokes the token and waits for the requests still using it. Accepts NULL. */
void crdb_endpoint_close(runner_t *rn, crdb_endpoint_t *ep);
int crdb_routes(runner_t *rn, bop_http_server_t *server);

/* api.c */
int metrics_init(runner_t *rn);
/* Records a finished run in the metrics. */
void metrics_run_done(runner_t *rn, const run_t *r);
int api_start(runner_t *rn);
void api_stop(runner_t *rn);
/* The listener of metrics.listen: /metrics, /healthz and /readyz without the token. */
int metrics_listener_start(runner_t *rn);

/* Logging through the library's logger (redacted). */
void rlog(bop_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int64_t runner_now(void);

#endif
