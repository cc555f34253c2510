/*
 * Private declarations of the reconcile module (include/backupop/reconcile.h): the handle,
 * the JSON helpers its files share, and the validation steps.
 *
 * Validation steps return 0 when fine, BOP__REC_INVALID (positive) once they marked the
 * reconcile invalid with a reason and message, or a negative bop_error_t.
 */
#ifndef BOP_RECONCILE_REC_H
#define BOP_RECONCILE_REC_H

#include "internal.h"

#include <json-c/json.h>

#define BOP__REC_INVALID 1
#define BOP__REC_INPUT_MAX (4u * 1024 * 1024)   /* a Kubernetes object is at most ~1.5 MiB */

/* Where the runner pod finds things. */
#define BOP__REC_CONFIG_DIR "/etc/backupop"
#define BOP__REC_CONFIG_KEY "config.json"
#define BOP__REC_CA_KEY "ca.crt"
#define BOP__REC_IDENTITY_KEY "age-identity.txt"
#define BOP__REC_FILE_MOUNT "/var/lib/backupop/storage"
/* The volume shared by the runner and the tools container (spec.runner.tools), the exec
 * agent copied into it from the runner image, and the agent's socket. */
#define BOP__REC_TOOLS_VOLUME "backupop-tools"
#define BOP__REC_TOOLS_DIR "/backupop-tools"
#define BOP__REC_AGENT_IN_IMAGE "/usr/lib/backupop/backupop-exec-agent"
#define BOP__REC_AGENT "/backupop-tools/backupop-exec-agent"
#define BOP__REC_TOOLS_SOCKET "/backupop-tools/agent.sock"

struct bop_reconcile {
	/* the options, copied */
	char *target_ns;
	char *image;
	char **pull_secrets;
	size_t n_pull_secrets;
	unsigned int port;
	unsigned int metrics_port;      /* /metrics without the token: port + 1 */
	char *token;
	bop_reconcile_lookup_cb lookup;
	void *ud;

	/* the inputs */
	json_object *schedule;
	json_object *spec;              /* borrowed from schedule */
	json_object *storage;
	json_object *storage_spec;      /* borrowed from storage; NULL when none */
	const char *ns;                 /* borrowed from schedule */
	const char *name;
	char *object_name;
	char *storage_name;
	char *catalog;                  /* the runner's catalog name, from spec.storage.path */
	char **secret_refs;
	size_t n_secret_refs;

	/* the verdict */
	int valid;
	char *reason;
	char *message;

	/* what validation builds */
	json_object *config;            /* the runner config */
	json_object *files;             /* more keys of the config Secret: name -> text */
	json_object *pod_patch;         /* the engine's pod_customize() patch */
	json_object *volumes;           /* extra pod volumes (file storage) */
	json_object *mounts;            /* and their mounts */

	/* the desired objects */
	char *objects[3];
	char *paths[3];
	char *hashes[3];
	char *config_hash;
};

/* ---- reconcile.c ---- */

/* Marks `r` invalid (the first call wins) and returns BOP__REC_INVALID, or BOP_ENOMEM. */
int bop__rec_invalid(bop_reconcile_t *r, const char *reason, const char *fmt, ...) BOP_PRINTF(3, 4);

/* Remembers "ns/name" for bop_reconcile_secret_ref() (deduplicated). */
int bop__rec_add_secret_ref(bop_reconcile_t *r, const char *ns, const char *name);

/* ---- json.c ---- */

/* Parses JSON text (at most BOP__REC_INPUT_MAX bytes) into an object; BOP_EFORMAT naming
 * `what` otherwise. */
int bop__rec_parse(json_object **out, const char *text, const char *what);

/* The member `key` of `obj` (NULL when `obj` is no object, or the member is absent or
 * null). */
json_object *bop__rec_get(json_object *obj, const char *key);

/* The member as a string, NULL when absent or not a string. */
const char *bop__rec_str(json_object *obj, const char *key);

/* A deep copy with the members of every object sorted by name, so that serializing it
 * is deterministic whatever order the input had. NULL on allocation failure. */
json_object *bop__rec_sorted_copy(json_object *v);

/* Applies an RFC 7386 JSON merge patch to *target (which may be replaced). */
int bop__rec_merge_patch(json_object **target, json_object *patch);

/* Compact serialization (no slash escaping), malloc'd; NULL (BOP_ENOMEM) on failure. */
char *bop__rec_to_string(json_object *v);

/* Adds `value` (taking it) as `key`; BOP_ENOMEM when value is NULL or adding fails. */
int bop__rec_add(json_object *obj, const char *key, json_object *value);

/* json_object_new_string() of a string that must not be NULL. */
json_object *bop__rec_string(const char *s);

void bop__rec_sha256_hex(char out[65], const void *data, size_t len);

/* ---- names.c ---- */

/* A label value for `value`: itself when at most 63 characters, else cut and ended with
 * "-" + 10 hex digits of its SHA-256. malloc'd. */
char *bop__rec_label_value(const char *value);

/* ---- secrets.c ---- */

/* The value of key `key` of Secret ns/name, malloc'd in *value (*len bytes, NUL added).
 * `field` names the reference in messages. Returns 0, BOP__REC_INVALID (SecretNotFound,
 * SecretKeyNotFound) or an error. With `optional`, a missing key gives 0 and NULL. */
int bop__rec_secret_value(bop_reconcile_t *r, const char *field, const char *ns,
	const char *name, const char *key, bool optional, char **value, size_t *len);

/* Checks a {name, key} (and with `with_ns`, namespace) reference at `field`. */
int bop__rec_check_ref(bop_reconcile_t *r, json_object *ref, const char *field, bool with_ns,
	bool key_required);

/* ---- spec.c ---- */

typedef enum bop__rec_ftype { BOP__F_STRING, BOP__F_BOOL, BOP__F_COUNT, BOP__F_OBJECT,
	BOP__F_LIST, BOP__F_ARRAY, BOP__F_ANY } bop__rec_ftype_t;

/* A known field of an object: its name, type and, for counts, the largest value. */
typedef struct bop__rec_field {
	const char *key;
	bop__rec_ftype_t type;
	long long max;
} bop__rec_field_t;

/* `obj` (named `path` in messages) is an object with only the known `fields` (ended by
 * a NULL key), each of its type; null members count as absent. */
int bop__rec_check_fields(bop_reconcile_t *r, json_object *obj, const char *path,
	const bop__rec_field_t *fields);

/* A DNS subdomain name (RFC 1123: lower case, digits, '-', '.'), at most 253. */
bool bop__rec_name_valid(const char *s);

/* Checks the schedule's spec and builds the runner config without the storage. */
int bop__rec_check_spec(bop_reconcile_t *r);
int bop__rec_build_config(bop_reconcile_t *r);

/* spec.storage.path: the template over {{ .Namespace }}, {{ .Name }} and {{ .ID }} rendered
 * with r->ns and r->name into the catalog name (*out, malloc'd), or BOP__REC_INVALID with
 * `r` marked invalid (r->reason, r->message) when it makes no valid catalog name. */
int bop__rec_render_path(bop_reconcile_t *r, const char *tmpl, char **out);

/* ---- template.c ---- */

/* spec.templateRef: looks the template up (lookup kinds "ClusterBackupTemplate" and
 * "BackupTemplate"), renders its procedure with spec.vars and spec.varsSecretRef and puts
 * it into the spec as engine.exec (dropping the three fields). 0 without a templateRef. */
int bop__rec_apply_template(bop_reconcile_t *r);

/* ---- storage.c ---- */

/* Checks the BackupStorage and whether the schedule's namespace may use it. */
int bop__rec_check_storage(bop_reconcile_t *r);

/* The "storage" block of the runner config, with credentials resolved. */
int bop__rec_storage_config(bop_reconcile_t *r, json_object **out);

/* ---- objects.c ---- */

int bop__rec_build_objects(bop_reconcile_t *r);

#endif
