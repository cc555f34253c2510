/*
 * The Kubernetes API client of libbackupop (private; no public API yet): where the API
 * server is and how to authenticate (a kubeconfig or the in-cluster service account), and
 * requests on API paths with JSON bodies, their status mapped to libbackupop error codes.
 */
#ifndef BOP_K8S_H
#define BOP_K8S_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "internal.h"

/* The in-cluster service-account directory. */
#define BOP__K8S_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* Where the API server is and who we are. Strings are malloc'd and owned; PEM blobs are
 * NUL-terminated (len excludes the NUL). A bearer token and a client certificate may both
 * be set (both are sent, as kubectl does), or neither (anonymous). */
typedef struct bop__k8s_config {
	char *source;                   /* "kubeconfig /x/config (context c)" or "in-cluster" */
	char *server;                   /* "https://host:port[/prefix]", no trailing '/' */
	char *namespace;                /* the context's namespace, or "default" */
	char *ca_pem;                   /* NULL: the system's CAs */
	size_t ca_len;
	bool insecure;                  /* insecure-skip-tls-verify: true */
	char *token;                    /* bearer token (registered as a log secret) */
	char *token_file;               /* re-read by bop__k8s_config_token() when it changes */
	char *cert_pem;                 /* client certificate ... */
	size_t cert_len;
	char *key_pem;                  /* ... and its key (wiped on free) */
	size_t key_len;
	/* the token file as last read: */
	struct {
		ino_t ino;
		off_t size;
		int64_t mtime_ns;
	} token_stat;
} bop__k8s_config_t;

/* Parses a kubeconfig document. `context` NULL means current-context. Relative file
 * paths (certificate-authority, client-certificate, client-key, tokenFile) are resolved
 * against `base_dir` (NULL: the working directory). `name` names the document in messages.
 * BOP_EFORMAT for a document that is no kubeconfig, BOP_ENOTFOUND for a missing context,
 * cluster or user, BOP_EINVAL for contradicting settings (a CA with insecure-skip-tls-verify,
 * a client certificate without key or with a key of another certificate),
 * BOP_ENOTSUPPORTED for exec plug-ins, auth-provider and basic auth, and the errors of
 * reading the referenced files. `*-data` wins over the file, `token` over `tokenFile`. */
int bop__k8s_config_parse(bop__k8s_config_t **out, const char *yaml, size_t len,
	const char *name, const char *base_dir, const char *context);

/* Reads and parses the kubeconfig file at `path` (relative paths inside it are relative
 * to its directory). */
int bop__k8s_config_load_file(bop__k8s_config_t **out, const char *path, const char *context);

/* The in-cluster config: server from KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT,
 * token file, ca.crt and namespace from `sa_dir` (NULL: BOP__K8S_SA_DIR). BOP_ENOTFOUND
 * when not running in a cluster (no KUBERNETES_SERVICE_HOST). */
int bop__k8s_config_in_cluster(bop__k8s_config_t **out, const char *sa_dir);

/* The usual order: `kubeconfig` if given; else $KUBECONFIG (one path); else in-cluster
 * when KUBERNETES_SERVICE_HOST is set; else ~/.kube/config. */
int bop__k8s_config_load(bop__k8s_config_t **out, const char *kubeconfig, const char *context);

void bop__k8s_config_free(bop__k8s_config_t *cfg);

/* The bearer token to send now, or NULL for none: token_file is re-read when its inode,
 * size or mtime changed (rotated service-account tokens). The pointer stays valid until
 * the next call. */
int bop__k8s_config_token(bop__k8s_config_t *cfg, const char **token);

/* ---- requests ---- */

typedef struct bop__k8s_client bop__k8s_client_t;

typedef enum bop__k8s_method {
	BOP__K8S_GET,
	BOP__K8S_POST,
	BOP__K8S_PUT,
	BOP__K8S_PATCH_MERGE,           /* application/merge-patch+json */
	BOP__K8S_PATCH_APPLY,           /* application/apply-patch+yaml (server-side apply) */
	BOP__K8S_DELETE,
} bop__k8s_method_t;

typedef struct bop__k8s_request {
	bop__k8s_method_t method;
	const char *path;               /* "/api/v1/namespaces/ns/configmaps"; may have a query */
	json_object *body;              /* borrowed; NULL for none */
	const char *body_text;          /* JSON text, used when body is NULL */
	bool want_text;                 /* keep the raw response body in resp->text */
	const char *field_manager;      /* required for apply; optional otherwise */
	bool force;                     /* apply: take over fields other managers own */
} bop__k8s_request_t;

typedef struct bop__k8s_response {
	long status;                    /* HTTP status; 0 when no response arrived */
	json_object *body;              /* the parsed JSON body (owned), NULL if none */
	bool gone;                      /* 410 Gone: the resourceVersion is too old; relist */
	char *text;                     /* the raw body (NUL-terminated) with want_text */
	size_t text_len;
} bop__k8s_response_t;

/* A client for `cfg`, which it owns afterwards (also when this fails). */
int bop__k8s_client_new(bop__k8s_client_t **out, bop__k8s_config_t *cfg);
void bop__k8s_client_free(bop__k8s_client_t *c);
bop__k8s_config_t *bop__k8s_client_config(bop__k8s_client_t *c);

/* Retries of 429, 5xx and failed connections: up to `max_tries` attempts, exponential
 * backoff from `base_ms` with full jitter (Retry-After honoured), at most `max_ms` in all.
 * Defaults 5, 200 ms, 30 s. */
void bop__k8s_client_set_retry(bop__k8s_client_t *c, int max_tries, int base_ms, int max_ms);

/* Seconds without progress before a request fails with BOP_ETIMEOUT (default 30). */
void bop__k8s_client_set_timeout(bop__k8s_client_t *c, long seconds);

/* Performs a request; *resp is filled (status and body) also when the server answered with
 * an error status. Returns 0 for 2xx; BOP_EAUTH for 401/403, BOP_ENOTFOUND for 404 and
 * 410 (resp->gone set), BOP_ECONFLICT for 409, BOP_EINVAL for 400/422 (the server's message
 * in the error), BOP_EIO/BOP_ETIMEOUT when the server cannot be reached or kept failing.
 * Calls on one client are serialized. Free the response with bop__k8s_response_clear(). */
int bop__k8s_request(bop__k8s_client_t *c, const bop__k8s_request_t *req,
	bop__k8s_response_t *resp);

void bop__k8s_response_clear(bop__k8s_response_t *resp);

/* Convenience: a request whose response body is handed back (*out, owned by the caller;
 * may be NULL for an empty body). An apply is forced (force=true): the caller owns the
 * fields it applies. */
int bop__k8s_do(bop__k8s_client_t *c, bop__k8s_method_t method, const char *path,
	json_object *body, const char *field_manager, json_object **out);

/* A new client on a copy of `c`'s configuration: its own connection, lock and settings. */
int bop__k8s_client_clone(bop__k8s_client_t *c, bop__k8s_client_t **out);

/* A deep copy of a configuration. */
int bop__k8s_config_dup(const bop__k8s_config_t *cfg, bop__k8s_config_t **out);

/* The public client (api.c) around the private one. */
struct bop_k8s_client {
	bop__k8s_client_t *priv;
};

/* A JSON object's string member, or NULL. */
const char *bop__k8s_json_str(json_object *o, const char *key);

/* "namespace/name" or "name" of an object (from its metadata), malloc'd; NULL (with the
 * error set) when it has no name. */
char *bop__k8s_object_key(json_object *obj);

/* RFC 3339 UTC now: "2026-11-21T02:00:00Z", or with microseconds
 * ("2026-11-21T02:00:00.123456Z") when `micro`; `out` holds at least 32 bytes. */
void bop__k8s_time_now(char *out, size_t size, bool micro);

/* Bytes the informer's cache takes on the heap (entries and index). */
size_t bop__k8s_informer_bytes(bop_k8s_informer_t *inf);

/* The informer thread's parsing of a WATCH response body, callable on bytes (tests and
 * fuzzing; never while the informer's thread runs): _begin() starts a watch, _data() takes
 * the body as it arrives, in pieces of any size, and applies each event to the cache and
 * the callback. A negative code (the error set) ends the watch; after an ERROR event with
 * code 410 the informer would list again. */
void bop__k8s_informer_watch_begin(bop_k8s_informer_t *inf);
int bop__k8s_informer_watch_data(bop_k8s_informer_t *inf, const char *data, size_t len);

/* ---- streams (list pages and watches on a connection of their own) ---- */

typedef struct bop__k8s_conn bop__k8s_conn_t;

/* A connection of its own for GET streams, with `c`'s server and credentials (`c` must
 * outlive it). Connections are not shared between threads. */
int bop__k8s_conn_new(bop__k8s_conn_t **out, bop__k8s_client_t *c);
void bop__k8s_conn_free(bop__k8s_conn_t *conn);

typedef struct bop__k8s_stream_opts {
	const char *path;               /* with its query */
	/* Gets the body of a 2xx answer as it arrives; returns 0 or a negative code (with
	 * the error set) to abort the transfer. */
	int (*on_data)(void *ud, const char *data, size_t len);
	/* Polled about once a second, also while no data comes: non-zero aborts with
	 * BOP_ECANCELED. May be NULL. */
	int (*should_stop)(void *ud);
	void *ud;
	long max_seconds;               /* the whole transfer; 0: no limit */
	long idle_seconds;              /* fail when no byte came for so long; 0: no limit */
} bop__k8s_stream_opts_t;

/* One GET whose body goes to opts->on_data. No retries. Returns 0 when a 2xx body ended;
 * the codes of bop__k8s_request() for error statuses (resp->status, resp->body and
 * resp->gone set as there), BOP_EIO/BOP_ETIMEOUT for transport failures (a connection
 * that broke mid-body too), BOP_ECANCELED when should_stop said so, or on_data's code. */
int bop__k8s_stream(bop__k8s_conn_t *conn, const bop__k8s_stream_opts_t *opts,
	bop__k8s_response_t *resp);

#endif
