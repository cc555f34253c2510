/* backupop-controller: shared state of the daemon. See backupop-controller(8). */
#ifndef BOP_CONTROLLER_H
#define BOP_CONTROLLER_H

#include <api_client.h>
#include <backupop.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define CTL_FIELD_MANAGER "backupop-controller"
#define CTL_FINALIZER "backupop.io/cleanup"
#define CTL_GROUP_PATH "/apis/backupop.io/v1alpha1"
#define CTL_WORKERS 2
#define CTL_WORKLOAD_KINDS 3    /* Deployment, StatefulSet, DaemonSet (sidecar.c) */

typedef struct ctl_args {
	const char *namespace;
	const char *runner_image;
	const char *pull_secrets[16];
	size_t n_pull_secrets;
	bool leader_elect;
	const char *lease_name;
	const char *identity;
	const char *metrics_addr;
	const char *kubeconfig;
	const char *context;
	const char *runner_url;         /* test flag: every runner API is at this URL */
	bool runner_via_service;        /* --runner-address service: by DNS, not the pod IP */
	unsigned int runner_port;
	unsigned int resync_seconds;
	unsigned int lease_seconds;
	unsigned int poll_seconds;      /* BackupRun progress polling */
	unsigned int unreachable_seconds; /* a BackupRun not started by then fails */
} ctl_args_t;

/* A multimap from strings to schedule keys: which schedules refer to a Secret, a storage
 * or an object name. */
typedef struct ctl_index ctl_index_t;

typedef struct ctl {
	ctl_args_t args;
	bop_k8s_client_t *client;                       /* main thread, leader, events */
	bop_k8s_client_t *wclient[CTL_WORKERS];         /* one per worker */
	bop_k8s_informer_t *schedules, *storages, *runs, *secrets, *namespaces;
	bop_k8s_informer_t *templates, *ctemplates;     /* BackupTemplate, ClusterBackupTemplate */
	bop_k8s_informer_t *owned[BOP_RECONCILE_KINDS];
	bop_k8s_informer_t *workloads[CTL_WORKLOAD_KINDS]; /* apps/v1, metadata only */
	bop_workqueue_t *queue;
	bop_k8s_recorder_t *recorder;
	bop_k8s_leader_t *leader;
	bop_http_server_t *http;
	bop_metrics_t *metrics;
	bop_metric_t *m_reconciles, *m_duration, *m_queue, *m_writes, *m_errors, *m_leader;
	unsigned char key[32];

	pthread_mutex_t lock;                           /* guards the indexes and secret cache */
	ctl_index_t *refs;                              /* "secret:ns/name", "storage:x" -> keys */
	json_object *secret_cache;                      /* "ns/name" -> {rv, object} */
	json_object *active;                            /* schedules whose runner has a run going */
	json_object *unreachable;                       /* "ns/schedule" -> its runner's last
	                                                 * failed call: {t, error, busy} */
	json_object *sidecars;                          /* "ns/name" -> the sidecar to add */
	ctl_index_t *sc_secrets;                        /* sidecar Secret "ns/name" -> its
	                                                 * schedule "ns/name", from the cache */
	json_object *wl_seen;                           /* "k/ns/name" -> "generation|label|annotation" */
	json_object *posted;                            /* BackupRun uid -> {id, pod}: sent to a
	                                                 * runner, runId not yet in the cache */

	pthread_t workers[CTL_WORKERS];
	int nworkers;
	atomic_bool leading;
	atomic_bool stopping;
	atomic_bool swept;
} ctl_t;

/* state.c: the shared state's life, logging, time, the work queue and its workers */
int ctl_state_init(ctl_t *c);            /* lock, index, caches, metrics, queue */
void ctl_state_free(ctl_t *c);
void clog_(bop_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int64_t ctl_now(void);
void ctl_format_time(int64_t t, char buf[32]);
int64_t ctl_parse_time(const char *s);
void ctl_count_write(ctl_t *c, const char *kind);
/* The informers (some may still be NULL) and whether all have synced. */
#define CTL_INFORMERS 13
void ctl_informer_list(ctl_t *c, bop_k8s_informer_t *all[CTL_INFORMERS]);
bool ctl_synced(ctl_t *c);
/* Once the caches have synced, CTL_WORKERS threads reconcile the keys of the queue. */
void ctl_start_workers(ctl_t *c);
void ctl_stop_workers(ctl_t *c);        /* shuts the queue down and joins them */

/* key.c: the controller's secret key (c->key), read from or made in its Secret */
int ctl_load_key(ctl_t *c);

/* json helpers (util.c) */
const char *js(json_object *o, const char *path);            /* "a.b.c" -> string or NULL */
json_object *jget(json_object *o, const char *path);
int64_t jint(json_object *o, const char *path, int64_t dflt);
json_object *jparse(const char *text);
const char *jannotation(json_object *o, const char *name);
/* A new object {apiVersion, kind, metadata: {name, namespace, labels, annotations}}; takes
 * `labels` and `annotations` (either may be NULL). */
json_object *ctl_object_head(const char *api_version, const char *kind, const char *ns,
	const char *name, json_object *labels, json_object *annotations);
/* Appends {apiVersion, kind, name, uid} to the metadata.ownerReferences of `o` (an object
 * from ctl_object_head()), making the array when there is none; a NULL name or uid is "". */
void ctl_owner_ref(json_object *o, const char *api_version, const char *kind, const char *name,
	const char *uid);
/* The backupop.io/cleanup finalizer of an object; set or removed with a merge patch that
 * carries the object's resourceVersion (409 when it changed meanwhile). */
bool ctl_has_finalizer(json_object *o);
int ctl_set_finalizer(ctl_t *c, int w, json_object *o, const char *path, bool add);
void ctl_secret_forget(ctl_t *c, const char *key);

/* util.c: the reference index */
ctl_index_t *ctl_index_new(void);
void ctl_index_free(ctl_index_t *ix);
/* Replaces the references of `key` with `refs` (NULL-terminated). */
void ctl_index_set(ctl_index_t *ix, const char *key, const char *const *refs);
void ctl_index_remove(ctl_index_t *ix, const char *key);
/* Calls fn for every key referring to `ref`. */
void ctl_index_each(ctl_index_t *ix, const char *ref, void (*fn)(void *ud, const char *key), void *ud);

/* runner.c: the runner API of worker w (the reply is freed with rapi_reply_clear()) */
int ctl_runner_call(ctl_t *c, int w, const char *ns, const char *name, const char *uid,
	const char *method, const char *path, const char *body, rapi_reply_t *reply);

/* schedules.c */
int ctl_reconcile_schedule(ctl_t *c, int w, const char *ns, const char *name);
int ctl_sweep_orphans(ctl_t *c, int w);

/* metrics.c: GET /metrics on c->http, with the per-schedule gauges while leading */
int ctl_metrics_route(ctl_t *c);
/* identity.c: spec.encryption.generateIdentity. Makes the Secret when it does not exist
 * (never touches one that does); *secret is its JSON when this call made or fetched it
 * (the informer may not have it yet), else NULL; free it with bop_free(). */
int ctl_identity_ensure(ctl_t *c, int w, json_object *sched, char **secret);
/* The recipient of the identity in a generated identity Secret (JSON), or NULL. */
char *ctl_identity_recipient(const char *secret);

/* runs.c */
int ctl_reconcile_run(ctl_t *c, int w, const char *ns, const char *name);
int ctl_runs_enforce_history(ctl_t *c, int w, const char *ns, const char *schedule,
	json_object *spec);
/* Creates a BackupRun for each scheduled run of `runs` (the runner's) after `since`, the
 * schedule's lastScheduleTime before this reconcile wrote its status. */
int ctl_runs_mirror_scheduled(ctl_t *c, int w, const char *ns, const char *schedule,
	int64_t since, json_object *runs);

/* sidecar.c: spec.sidecar (backupop-controller(8), SIDECAR MODE). Queue keys of
 * workloads are "d/", "t/", "a/" (Deployment, StatefulSet, DaemonSet) + "<ns>/<name>". */
const char *ctl_workload_resource(char kind);   /* "deployments"..., NULL: not a workload */
char ctl_workload_kind(int i);
void ctl_on_workload(ctl_t *c, int i, bool deleted, const char *key, const char *object);
int ctl_reconcile_workload(ctl_t *c, int w, char kind, const char *ns, const char *name);
/* Why the schedule's sidecar settings cannot work, or NULL. */
const char *ctl_sidecar_problem(json_object *sched);
unsigned int ctl_sidecar_port(ctl_t *c, json_object *sched);
/* Makes the sidecar's Secret, remembers what to add, queues the labelled workloads. */
int ctl_sidecar_apply(ctl_t *c, int w, json_object *sched, bop_reconcile_t *r);
/* A Secret of the cache changed: keeps c->sc_secrets. A sidecar Secret that went (its
 * holder was removed as old, maybe just as the schedule came back to that config): the
 * schedule makes it again if it is still the current one. */
void ctl_sidecar_secret_event(ctl_t *c, bop_k8s_event_type_t type, const char *key,
	const char *object);
/* The schedule no longer wants a sidecar: queue its workloads for removal. */
void ctl_sidecar_forget(ctl_t *c, const char *ns, const char *name);
/* Calls the sidecar of `pod`, or of the first Ready pod by name that answers (*used: its
 * name, to free with bop_free()). BOP_ENOTFOUND when `pod` no longer exists. */
int ctl_sidecar_call(ctl_t *c, int w, json_object *sched, const char *pod, char **used,
	const char *method, const char *path, const char *body, rapi_reply_t *reply);
/* Creates the BackupRun of the latest scheduled time due (named after it, so only once);
 * *last is that time (0: none due). */
int ctl_sidecar_schedule(ctl_t *c, int w, json_object *sched, int64_t *last);
/* lastSuccessfulTime/Backup from the schedule's BackupRuns. */
void ctl_sidecar_last_success(ctl_t *c, json_object *sched, json_object *status);

/* state.c: queue keys are "s/<ns>/<name>" schedules, "r/<ns>/<name>" runs. */
void ctl_enqueue(ctl_t *c, char kind, const char *ns_name, unsigned int delay_ms);
/* Queues every schedule that refers to `ref` ("secret:ns/name", "storage:name"). */
void ctl_enqueue_refs(ctl_t *c, const char *ref);

#endif
