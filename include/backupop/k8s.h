/*
 * A Kubernetes API client and the machinery of a controller: requests, informers (a
 * list + watch of one collection into a local cache), a rate-limited, de-duplicating work
 * queue, leader election on a coordination.k8s.io/v1 Lease, and an Events recorder.
 *
 * Objects cross this API as JSON text (NUL-terminated UTF-8); no JSON library type
 * appears here. Keys name objects the way kubectl does: "namespace/name" for namespaced
 * objects, "name" for cluster-scoped ones.
 *
 * Threading: a client may be used from several threads (requests on one client are
 * serialized; create more clients for parallel requests). Each informer and each leader
 * elector runs on a thread of its own, started by its _start() function; their callbacks
 * run on that thread and should be short (typically: put a key into a work queue).
 */
#ifndef BACKUPOP_K8S_H
#define BACKUPOP_K8S_H

#include "common.h"

BOP_BEGIN_DECL

/* ---- client ---- */

typedef struct bop_k8s_client bop_k8s_client_t;

typedef struct bop_k8s_client_options {
	unsigned int version;
	/* A kubeconfig file; NULL: $KUBECONFIG, else the in-cluster service account when
	 * KUBERNETES_SERVICE_HOST is set, else ~/.kube/config. */
	const char *kubeconfig;
	/* The kubeconfig context; NULL: current-context. */
	const char *context;
	/* Seconds without progress before a request fails with BOP_ETIMEOUT. 0: 30. */
	unsigned int timeout_seconds;
} bop_k8s_client_options_t;

#define BOP_K8S_CLIENT_OPTIONS_VERSION 1
#define BOP_K8S_CLIENT_OPTIONS_INIT { BOP_K8S_CLIENT_OPTIONS_VERSION, NULL, NULL, 0 }

/* Fills `opts` with the defaults of `version`. BOP_EVERSION for an unknown version. */
BOP_EXTERN(int) bop_k8s_client_options_init(bop_k8s_client_options_t *opts, unsigned int version);

/* Loads the configuration and creates a client (no request is made). BOP_ENOTFOUND when
 * there is no configuration, BOP_EFORMAT/BOP_EINVAL/BOP_ENOTSUPPORTED for a bad one (the
 * message names the file and the setting). */
BOP_EXTERN(int) bop_k8s_client_new(bop_k8s_client_t **out, const bop_k8s_client_options_t *opts);

/* Accepts NULL. */
BOP_EXTERN(void) bop_k8s_client_free(bop_k8s_client_t *client);

/* The namespace of the kubeconfig context, or the service account's namespace in a
 * cluster, or "default". Valid while the client lives. */
BOP_EXTERN(const char *) bop_k8s_client_namespace(const bop_k8s_client_t *client);

typedef enum bop_k8s_verb {
	BOP_K8S_GET = 0,
	BOP_K8S_CREATE = 1,         /* POST */
	BOP_K8S_UPDATE = 2,         /* PUT */
	BOP_K8S_PATCH = 3,          /* JSON merge patch */
	BOP_K8S_APPLY = 4,          /* server-side apply (forced); needs a field manager */
	BOP_K8S_DELETE = 5,
} bop_k8s_verb_t;

/* One request on an API path ("/api/v1/namespaces/ns/secrets/x", may carry a query).
 * `body` is JSON text or NULL; `field_manager` is required for BOP_K8S_APPLY. On return
 * *status (if not NULL) is the HTTP status (0 when no answer came) and *response (if not
 * NULL) the response body (NULL for an empty body), also for error statuses; free it with
 * bop_free().
 * Returns 0 for 2xx; BOP_EAUTH for 401/403, BOP_ENOTFOUND for 404 and 410,
 * BOP_ECONFLICT for 409, BOP_EINVAL for 400/422 (with the server's message),
 * BOP_EIO/BOP_ETIMEOUT when the server cannot be reached or kept answering 429/5xx
 * (retried with backoff first). */
BOP_EXTERN(int) bop_k8s_request(bop_k8s_client_t *client, long *status, char **response,
	bop_k8s_verb_t verb, const char *path, const char *body, const char *field_manager);

/* ---- informers ---- */

typedef struct bop_k8s_informer bop_k8s_informer_t;

typedef enum bop_k8s_event_type {
	BOP_K8S_ADDED = 0,
	BOP_K8S_MODIFIED = 1,
	BOP_K8S_DELETED = 2,
} bop_k8s_event_type_t;

/* An object appeared, changed or went away (for DELETED: its last known state). Also
 * called for every cached object as MODIFIED at each resync, and after a relist for the
 * differences (objects deleted while the watch was down are reported DELETED). `object`
 * is only valid during the call. */
typedef void (*bop_k8s_informer_cb)(bop_k8s_event_type_t type, const char *key,
	const char *object, void *payload);

typedef struct bop_k8s_informer_options {
	unsigned int version;
	/* The collection: "/apis/backupop.io/v1alpha1/backupschedules" (every namespace),
	 * "/api/v1/namespaces/backupop-system/secrets" (one namespace). Required. */
	const char *path;
	/* "app=x,backupop.io/schedule-name" ... or NULL. */
	const char *label_selector;
	/* "metadata.name=x" ... or NULL. */
	const char *field_selector;
	/* Keep only the object's metadata (name, namespace, uid, resourceVersion,
	 * generation, labels, annotations, finalizers, ownerReferences, deletionTimestamp)
	 * in the cache and in callbacks: Secrets and owned objects cost little memory. */
	int metadata_only;
	/* Every cached object is delivered again as MODIFIED every this many seconds.
	 * 0: never. */
	unsigned int resync_seconds;
	/* Objects per LIST page. 0: 500. */
	unsigned int page_size;
	bop_k8s_informer_cb callback;
	void *payload;                  /* handed to `callback` */
} bop_k8s_informer_options_t;

#define BOP_K8S_INFORMER_OPTIONS_VERSION 1
#define BOP_K8S_INFORMER_OPTIONS_INIT \
	{ BOP_K8S_INFORMER_OPTIONS_VERSION, NULL, NULL, NULL, 0, 0, 0, NULL, NULL }

BOP_EXTERN(int) bop_k8s_informer_options_init(bop_k8s_informer_options_t *opts, unsigned int version);

/* Creates an informer on `client` (borrowed; it must outlive the informer; the informer
 * makes its own connection for the watch). Nothing happens until _start(). */
BOP_EXTERN(int) bop_k8s_informer_new(bop_k8s_informer_t **out, bop_k8s_client_t *client,
	const bop_k8s_informer_options_t *opts);

/* Starts the informer's thread: LIST (paged) into the cache, then WATCH from the list's
 * resourceVersion with bookmarks, resuming from the last resourceVersion seen when the
 * stream ends, relisting on 410 Gone, reconnecting with backoff (up to 30 s) when the API
 * server is away. Errors are logged, never fatal. */
BOP_EXTERN(int) bop_k8s_informer_start(bop_k8s_informer_t *informer);

/* Non-zero once the first LIST has been delivered to the callback. */
BOP_EXTERN(int) bop_k8s_informer_synced(bop_k8s_informer_t *informer);

/* Waits until synced: 0, or BOP_ETIMEOUT after `timeout_ms` (negative: forever). */
BOP_EXTERN(int) bop_k8s_informer_wait_synced(bop_k8s_informer_t *informer, int timeout_ms);

/* A copy of the cached object `key` as JSON text into *object (free it with bop_free()),
 * or BOP_ENOTFOUND. */
BOP_EXTERN(int) bop_k8s_informer_get(bop_k8s_informer_t *informer, char **object,
	const char *key);

/* Called by bop_k8s_informer_foreach() with each cached object; `object` is only valid
 * during the call. Non-zero stops the iteration. */
typedef int (*bop_k8s_informer_foreach_cb)(const char *key, const char *object,
	void *payload);

/* Calls `fn` for every cached object, in key order, with the cache locked (do not call
 * other informer functions from `fn`). Stops early and returns what `fn` returns when
 * non-zero. */
BOP_EXTERN(int) bop_k8s_informer_foreach(bop_k8s_informer_t *informer,
	bop_k8s_informer_foreach_cb fn, void *payload);

/* Number of cached objects. */
BOP_EXTERN(size_t) bop_k8s_informer_size(bop_k8s_informer_t *informer);

/* Stops the thread (closing the watch) and frees the informer. Accepts NULL. */
BOP_EXTERN(void) bop_k8s_informer_free(bop_k8s_informer_t *informer);

/* ---- work queue ---- */

typedef struct bop_workqueue bop_workqueue_t;

typedef struct bop_workqueue_options {
	unsigned int version;
	/* Per-key backoff of bop_workqueue_add_rate_limited(): base * 2^failures, capped.
	 * 0: 5 ms and 1000 s. */
	unsigned int base_delay_ms;
	unsigned int max_delay_ms;
	/* An overall token bucket for rate-limited adds: `qps` per second, `burst` at once.
	 * 0: 10 and 100. */
	unsigned int qps;
	unsigned int burst;
} bop_workqueue_options_t;

#define BOP_WORKQUEUE_OPTIONS_VERSION 1
#define BOP_WORKQUEUE_OPTIONS_INIT { BOP_WORKQUEUE_OPTIONS_VERSION, 0, 0, 0, 0 }

BOP_EXTERN(int) bop_workqueue_options_init(bop_workqueue_options_t *opts, unsigned int version);

/* `opts` may be NULL for the defaults. */
BOP_EXTERN(int) bop_workqueue_new(bop_workqueue_t **out, const bop_workqueue_options_t *opts);

/* Queues `key` unless it is queued already (de-duplication). A key being processed
 * (between _get() and _done()) is queued again when it is done, never handed to two
 * workers at once. */
BOP_EXTERN(int) bop_workqueue_add(bop_workqueue_t *q, const char *key);

/* Queues `key` after `delay_ms`; an earlier pending time for the same key wins. */
BOP_EXTERN(int) bop_workqueue_add_after(bop_workqueue_t *q, const char *key, unsigned int delay_ms);

/* Queues `key` after its backoff (which doubles with every call until _forget()) and
 * the overall rate limit. */
BOP_EXTERN(int) bop_workqueue_add_rate_limited(bop_workqueue_t *q, const char *key);

/* Resets the backoff of `key` (call after it was processed successfully). */
BOP_EXTERN(void) bop_workqueue_forget(bop_workqueue_t *q, const char *key);

/* Times `key` went through add_rate_limited() since the last _forget(). */
BOP_EXTERN(unsigned int) bop_workqueue_failures(bop_workqueue_t *q, const char *key);

/* Waits for the next key, into *key (free it with bop_free(); call _done() with it).
 * `timeout_ms` negative waits forever. BOP_ETIMEOUT when none came in time,
 * BOP_ECANCELED once the queue is shut down. */
BOP_EXTERN(int) bop_workqueue_get(bop_workqueue_t *q, char **key, int timeout_ms);

/* Marks `key` as processed. */
BOP_EXTERN(void) bop_workqueue_done(bop_workqueue_t *q, const char *key);

/* Keys waiting to be handed out now (not counting delayed ones). */
BOP_EXTERN(size_t) bop_workqueue_len(bop_workqueue_t *q);

/* Wakes every waiter with BOP_ECANCELED; adds are ignored afterwards. */
BOP_EXTERN(void) bop_workqueue_shutdown(bop_workqueue_t *q);

/* Accepts NULL. */
BOP_EXTERN(void) bop_workqueue_free(bop_workqueue_t *q);

/* ---- leader election ---- */

typedef struct bop_k8s_leader bop_k8s_leader_t;

/* A leadership change (see bop_k8s_leader_options_t). */
typedef void (*bop_k8s_leader_cb)(void *payload);

typedef struct bop_k8s_leader_options {
	unsigned int version;
	const char *lease_namespace;    /* of the Lease; required */
	const char *name;               /* of the Lease; required */
	const char *identity;           /* this process (e.g. the pod name); required */
	/* How long a lease holds without renewal; how long the leader keeps trying to renew
	 * before it gives up leadership; how often candidates retry. 0: 15, 10 and 2 s. */
	unsigned int lease_seconds;
	unsigned int renew_deadline_seconds;
	unsigned int retry_seconds;
	/* Called on the elector's thread when this process becomes leader and when it stops
	 * being leader (lost the lease or released it). */
	bop_k8s_leader_cb on_started;
	bop_k8s_leader_cb on_stopped;
	void *payload;                  /* handed to both */
} bop_k8s_leader_options_t;

#define BOP_K8S_LEADER_OPTIONS_VERSION 1
#define BOP_K8S_LEADER_OPTIONS_INIT \
	{ BOP_K8S_LEADER_OPTIONS_VERSION, NULL, NULL, NULL, 0, 0, 0, NULL, NULL, NULL }

BOP_EXTERN(int) bop_k8s_leader_options_init(bop_k8s_leader_options_t *opts, unsigned int version);

/* `client` is borrowed and must outlive the elector. */
BOP_EXTERN(int) bop_k8s_leader_new(bop_k8s_leader_t **out, bop_k8s_client_t *client,
	const bop_k8s_leader_options_t *opts);

/* Starts campaigning on the elector's thread (the Lease is created when missing). */
BOP_EXTERN(int) bop_k8s_leader_start(bop_k8s_leader_t *leader);

/* Non-zero while this process holds the lease (and renewed it in time). */
BOP_EXTERN(int) bop_k8s_leader_is_leader(bop_k8s_leader_t *leader);

/* Stops campaigning; a leader releases the lease (so another candidate takes over at
 * once) and on_stopped is called. Idempotent. */
BOP_EXTERN(void) bop_k8s_leader_stop(bop_k8s_leader_t *leader);

/* Stops (as above) and frees. Accepts NULL. */
BOP_EXTERN(void) bop_k8s_leader_free(bop_k8s_leader_t *leader);

/* ---- events ---- */

typedef struct bop_k8s_recorder bop_k8s_recorder_t;

/* A recorder that creates core/v1 Events as `component` (the event's source). `client`
 * is borrowed. Repeats of one (object, type, reason, message) within 10 minutes update
 * the existing Event's count and lastTimestamp instead of creating a new one. */
BOP_EXTERN(int) bop_k8s_recorder_new(bop_k8s_recorder_t **out, bop_k8s_client_t *client,
	const char *component);

/* Accepts NULL. */
BOP_EXTERN(void) bop_k8s_recorder_free(bop_k8s_recorder_t *recorder);

/* Records an Event about `object` (its JSON: apiVersion, kind and metadata.namespace,
 * name, uid and resourceVersion are used; cluster-scoped objects get their Events in
 * "default"). `type` is "Normal" or "Warning". Failures are returned but callers usually
 * only log them. Secrets must not be in `message`. */
BOP_EXTERN(int) bop_k8s_event(bop_k8s_recorder_t *recorder, const char *object,
	const char *type, const char *reason, const char *message);

BOP_END_DECL

#endif
