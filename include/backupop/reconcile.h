/*
 * Reconcile primitives of the backupop operator: from a BackupSchedule and its
 * BackupStorage (backupop.io/v1alpha1, JSON text as the API server returns them) to the
 * objects that run it — the runner's config Secret, StatefulSet and Service — or to the
 * reason it cannot run; names, tokens and status conditions. These functions do no I/O:
 * what they need from the cluster (Secrets, Namespaces, templates) comes through a
 * callback, so a controller can answer from its informer caches and tests from tables.
 *
 * Every object made for schedule <ns>/<name> lives in the controller's namespace, is named
 * bop_reconcile_name("runner", ns, name), carries the labels
 * backupop.io/schedule-namespace=<ns> and backupop.io/schedule-name=<name> (names longer
 * than a label value are shortened like object names), app.kubernetes.io/managed-by=
 * backupop-controller, and the annotation backupop.io/desired-hash: a hash of the object
 * as desired, so a controller writes only when it differs from what is there.
 */
#ifndef BACKUPOP_RECONCILE_H
#define BACKUPOP_RECONCILE_H

#include <stdint.h>

#include "common.h"

BOP_BEGIN_DECL

/* The longest name bop_reconcile_name() returns: 52, not 63, because a StatefulSet's pods
 * carry a "controller-revision-hash" label of the StatefulSet's name plus 11 characters,
 * and label values are limited to 63. */
#define BOP_RECONCILE_NAME_MAX 52

/* "<prefix>-<namespace>-<name>", lower-case; when longer than BOP_RECONCILE_NAME_MAX it is
 * cut and ends in "-" + 10 hex digits of a SHA-256 over the three parts, so distinct inputs
 * keep distinct names and the same input always gives the same name. Free *out with
 * bop_free(). */
BOP_EXTERN(int) bop_reconcile_name(char **out, const char *prefix, const char *ns, const char *name);

/* The runner's API token for a schedule: hex HMAC-SHA256 under `key` (the controller's
 * secret key) of the schedule's uid, so it stays the same across reconciles and controller
 * restarts without being stored anywhere else. *out holds 64 hex digits; free it with
 * bop_free(). */
BOP_EXTERN(int) bop_reconcile_runner_token(char **out, const unsigned char *key, size_t key_len,
	const char *schedule_uid);

/* spec.encryption.generateIdentity {secretName}: the keys of that Secret (in the
 * schedule's namespace), which a controller creates when it is missing and never writes
 * again. The identity is the text bop_age_keygen() makes (an age-keygen file); the
 * recipient, its public half, is there for people (the reconcile derives its own from the
 * identity). */
#define BOP_RECONCILE_GENERATED_IDENTITY_KEY "identity"
#define BOP_RECONCILE_GENERATED_RECIPIENT_KEY "recipient"

/* Looks up a cluster object for the reconcile: `kind` is "Secret", "Namespace",
 * "ClusterBackupTemplate" (`ns` NULL for these two) or "BackupTemplate" (the schedule's
 * spec.templateRef, in the schedule's namespace). Set *object to the object's JSON text in memory the reconcile
 * can free with bop_free(): from bop_strdup() or bop_malloc(), or as another bop_
 * function returned it (bop_k8s_informer_get() from an informer's cache). Return 0,
 * BOP_ENOTFOUND when it does not exist, another error when the lookup failed. */
typedef int (*bop_reconcile_lookup_cb)(char **object, const char *kind, const char *ns,
	const char *name, void *payload);

typedef struct bop_reconcile_options {
	unsigned int version;
	const char *runner_namespace;   /* where runner objects live; required */
	const char *runner_image;       /* required */
	const char *const *pull_secrets;/* imagePullSecrets names for the runner pod */
	size_t n_pull_secrets;
	unsigned int runner_port;       /* the runner API's port; 0: 8080 */
	const char *api_token;          /* the runner's token (bop_reconcile_runner_token) */
	bop_reconcile_lookup_cb lookup; /* required */
	void *payload;                  /* handed to `lookup` */
} bop_reconcile_options_t;

#define BOP_RECONCILE_OPTIONS_VERSION 1
#define BOP_RECONCILE_OPTIONS_INIT \
	{ BOP_RECONCILE_OPTIONS_VERSION, NULL, NULL, NULL, 0, 0, NULL, NULL, NULL }

/* Fills `opts` with the defaults of `version`. BOP_EVERSION for an unknown version. */
BOP_EXTERN(int) bop_reconcile_options_init(bop_reconcile_options_t *opts, unsigned int version);

typedef struct bop_reconcile bop_reconcile_t;

/* Validates `schedule` against `storage` (NULL when no BackupStorage of that name exists)
 * and, when valid, builds the desired objects. A schedule that cannot run is not an error
 * of this function: it returns 0 with bop_reconcile_valid() == 0 and a reason. Errors are
 * BOP_EFORMAT for JSON that is no BackupSchedule/BackupStorage, BOP_ENOMEM, and failures of
 * the lookup other than BOP_ENOTFOUND. */
BOP_EXTERN(int) bop_reconcile_new(bop_reconcile_t **out, const bop_reconcile_options_t *opts,
	const char *schedule, const char *storage);

/* Accepts NULL. */
BOP_EXTERN(void) bop_reconcile_free(bop_reconcile_t *r);

/* Non-zero when the schedule can run and the objects below exist. */
BOP_EXTERN(int) bop_reconcile_valid(const bop_reconcile_t *r);

/* Why not (CamelCase, for a condition's reason and an Event): "InvalidSpec",
 * "UnknownEngine", "InvalidSchedule", "InvalidTimeZone", "StorageNotFound",
 * "StorageNotAllowed", "SecretNotFound", "SecretKeyNotFound", "IdentitySecretInvalid"
 * (the generateIdentity Secret exists without a usable identity), "TemplateNotFound",
 * "TemplateInvalid" (the template breaks its own rules), "TemplateVariableMissing",
 * "TemplateVariableInvalid"; and a message for humans that names the field, variable or
 * object (never a secret's or a variable's value). NULL when valid. */
BOP_EXTERN(const char *) bop_reconcile_reason(const bop_reconcile_t *r);
BOP_EXTERN(const char *) bop_reconcile_message(const bop_reconcile_t *r);

typedef enum bop_reconcile_kind {
	BOP_RECONCILE_SECRET = 0,       /* v1 Secret: data."config.json", the runner config */
	BOP_RECONCILE_STATEFULSET = 1,  /* apps/v1 StatefulSet, 1 replica */
	BOP_RECONCILE_SERVICE = 2,      /* v1 Service, port "api" */
} bop_reconcile_kind_t;

#define BOP_RECONCILE_KINDS 3

/* The desired object as JSON for a server-side apply (apiVersion, kind, metadata, ...), its
 * API path ("/apis/apps/v1/namespaces/<ns>/statefulsets/<name>"), and its desired hash
 * (the value of the backupop.io/desired-hash annotation in it). NULL when not valid. */
BOP_EXTERN(const char *) bop_reconcile_object(const bop_reconcile_t *r, bop_reconcile_kind_t kind);
BOP_EXTERN(const char *) bop_reconcile_object_path(const bop_reconcile_t *r, bop_reconcile_kind_t kind);
BOP_EXTERN(const char *) bop_reconcile_object_hash(const bop_reconcile_t *r, bop_reconcile_kind_t kind);

/* The name shared by the three objects (also when not valid). */
BOP_EXTERN(const char *) bop_reconcile_object_name(const bop_reconcile_t *r);

/* The backupop.io/config-hash annotation of the pod template: a hash of the runner config
 * (with resolved secrets) and the pod settings; it changes exactly when the runner must
 * restart. NULL when not valid. */
BOP_EXTERN(const char *) bop_reconcile_config_hash(const bop_reconcile_t *r);

/* The Secrets the schedule refers to (through its spec and its storage), as "ns/name",
 * i = 0, 1, ... until NULL; also when not valid (so a controller can retry when a missing
 * one appears). */
BOP_EXTERN(const char *) bop_reconcile_secret_ref(const bop_reconcile_t *r, size_t i);

/* The value of `key` in a Secret (`secret`: the object's JSON text as the API server
 * returns it): from data, base64-decoded, or else from stringData. *value is
 * NUL-terminated after *len bytes (which may hold NULs); free it with bop_free(). Returns
 * BOP_ENOTFOUND when the Secret has no such key, BOP_EFORMAT when `secret` is no JSON
 * object or the value is not valid base64, BOP_ENOMEM. */
BOP_EXTERN(int) bop_reconcile_secret_value(char **value, size_t *len, const char *secret,
	const char *key);

/* The BackupStorage name the schedule refers to (NULL when the spec has none). */
BOP_EXTERN(const char *) bop_reconcile_storage_name(const bop_reconcile_t *r);

/* A status condition following the Kubernetes API conventions. */
typedef struct bop_reconcile_condition {
	const char *type;               /* "Ready" */
	const char *status;             /* "True", "False" or "Unknown" */
	const char *reason;             /* CamelCase */
	const char *message;
} bop_reconcile_condition_t;

/* Sets condition `c` in `object`'s status.conditions (JSON text of the object as it is)
 * and returns the whole new conditions array as JSON text in *conditions (free it with
 * bop_free()):
 * lastTransitionTime is `now` (Unix seconds) when the condition is new or its status
 * changed and kept otherwise; observedGeneration is the object's metadata.generation.
 * *changed (if not NULL) is set to whether anything differs from what the object has. */
BOP_EXTERN(int) bop_reconcile_condition_set(char **conditions, int *changed, const char *object,
	const bop_reconcile_condition_t *c, int64_t now);

BOP_END_DECL

#endif
