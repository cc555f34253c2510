/*
 * The reconcile handle: reads a BackupSchedule and its BackupStorage, runs the checks
 * (spec.c, storage.c, secrets.c) and builds the runner objects (objects.c).
 */
#include "rec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REF_DEPTH_MAX 32

int bop__rec_invalid(bop_reconcile_t *r, const char *reason, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (r->reason)
		return BOP__REC_INVALID;
	va_start(ap, fmt);
	n = vasprintf(&r->message, fmt, ap);
	va_end(ap);
	if (n < 0) {
		r->message = NULL;
		return bop__error_oom();
	}
	if (!(r->reason = bop__strdup(reason)))
		return BOP_ENOMEM;
	return BOP__REC_INVALID;
}

int bop__rec_add_secret_ref(bop_reconcile_t *r, const char *ns, const char *name)
{
	char *ref, **grown;

	if (!ns || !name || !*ns || !*name)
		return 0;
	if (!(ref = bop__sprintf("%s/%s", ns, name)))
		return BOP_ENOMEM;
	for (size_t i = 0; i < r->n_secret_refs; i++) {
		if (!strcmp(r->secret_refs[i], ref)) {
			free(ref);
			return 0;
		}
	}
	grown = realloc(r->secret_refs, (r->n_secret_refs + 2) * sizeof(*grown));
	if (!grown) {
		free(ref);
		return bop__error_oom();
	}
	r->secret_refs = grown;
	r->secret_refs[r->n_secret_refs++] = ref;
	r->secret_refs[r->n_secret_refs] = NULL;
	return 0;
}

/* Every "<field>SecretRef": {name} inside an engine block, at any depth. */
static int collect_engine_refs(bop_reconcile_t *r, json_object *v, int depth)
{
	size_t klen;
	int ret;

	if (!v || depth > REF_DEPTH_MAX)
		return 0;
	if (json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++)
			if ((ret = collect_engine_refs(r, json_object_array_get_idx(v, i), depth + 1)))
				return ret;
		return 0;
	}
	if (!json_object_is_type(v, json_type_object))
		return 0;
	json_object_object_foreach(v, key, val) {
		klen = strlen(key);
		if (klen > 9 && !strcmp(key + klen - 9, "SecretRef"))
			ret = bop__rec_add_secret_ref(r, r->ns, bop__rec_str(val, "name"));
		else
			ret = collect_engine_refs(r, val, depth + 1);
		if (ret)
			return ret;
	}
	return 0;
}

static int collect_refs(bop_reconcile_t *r)
{
	json_object *spec = r->spec, *st = r->storage_spec;
	json_object *enc = bop__rec_get(spec, "encryption");
	json_object *vrestore = bop__rec_get(bop__rec_get(spec, "verification"), "restore");
	json_object *cred = bop__rec_get(st, "credentialsSecretRef");
	json_object *ca = bop__rec_get(bop__rec_get(st, "s3"), "caSecretRef");
	int ret;

	if ((ret = collect_engine_refs(r, bop__rec_get(spec, "engine"), 0)) ||
	    (ret = bop__rec_add_secret_ref(r, r->ns,
		    bop__rec_str(bop__rec_get(spec, "varsSecretRef"), "name"))) ||
	    (ret = bop__rec_add_secret_ref(r, r->ns,
		    bop__rec_str(bop__rec_get(enc, "recipientsSecretRef"), "name"))) ||
	    (ret = bop__rec_add_secret_ref(r, r->ns,
		    bop__rec_str(bop__rec_get(enc, "identitySecretRef"), "name"))) ||
	    (ret = bop__rec_add_secret_ref(r, r->ns,
		    bop__rec_str(bop__rec_get(enc, "generateIdentity"), "secretName"))) ||
	    (ret = collect_engine_refs(r, bop__rec_get(vrestore, "engine"), 0)) ||
	    (ret = bop__rec_add_secret_ref(r, bop__rec_str(cred, "namespace"),
		    bop__rec_str(cred, "name"))))
		return ret;
	return bop__rec_add_secret_ref(r, bop__rec_str(ca, "namespace"), bop__rec_str(ca, "name"));
}

static int check_kind(json_object *obj, const char *kind, const char *what)
{
	const char *k = bop__rec_str(obj, "kind");

	if (bop__rec_get(obj, "kind") && (!k || strcmp(k, kind)))
		return bop__error(BOP_EFORMAT, "%s: kind is \"%s\", not %s", what, k ? k : "?", kind);
	if (!bop__rec_str(bop__rec_get(obj, "metadata"), "name"))
		return bop__error(BOP_EFORMAT, "%s: metadata.name is missing", what);
	return 0;
}

static int read_inputs(bop_reconcile_t *r, const char *schedule, const char *storage)
{
	json_object *meta;
	const char *sname;
	int ret;

	if ((ret = bop__rec_parse(&r->schedule, schedule, "BackupSchedule")) ||
	    (ret = check_kind(r->schedule, "BackupSchedule", "BackupSchedule")))
		return ret;
	meta = bop__rec_get(r->schedule, "metadata");
	r->name = bop__rec_str(meta, "name");
	r->ns = bop__rec_str(meta, "namespace");
	if (!r->ns || !*r->ns || !*r->name)
		return bop__error(BOP_EFORMAT, "BackupSchedule: metadata.namespace and metadata.name "
			"are required");
	r->spec = bop__rec_get(r->schedule, "spec");
	if (storage && ((ret = bop__rec_parse(&r->storage, storage, "BackupStorage")) ||
	    (ret = check_kind(r->storage, "BackupStorage", "BackupStorage"))))
		return ret;
	r->storage_spec = bop__rec_get(r->storage, "spec");
	sname = bop__rec_str(bop__rec_get(r->spec, "storage"), "name");
	if (sname && !(r->storage_name = bop__strdup(sname)))
		return BOP_ENOMEM;
	return 0;
}

static int copy_options(bop_reconcile_t *r, const bop_reconcile_options_t *o)
{
	if (!o)
		return bop__error(BOP_EINVAL, "reconcile: no options given");
	if (BOP__VERSION_CHECK("bop_reconcile_options_t", NULL, o->version,
	    RECONCILE_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	if (!o->runner_namespace || !*o->runner_namespace || !o->runner_image || !*o->runner_image || !o->lookup)
		return bop__error(BOP_EINVAL, "reconcile: the namespace, runner image and lookup "
			"options are required");
	if (o->runner_port > 65535 || (o->n_pull_secrets && !o->pull_secrets))
		return bop__error(BOP_EINVAL, "reconcile: invalid runner port or pull secrets");
	r->lookup = o->lookup;
	r->ud = o->payload;
	r->port = o->runner_port ? o->runner_port : 8080;
	r->metrics_port = r->port < 65535 ? r->port + 1 : r->port - 1;
	if (!(r->target_ns = bop__strdup(o->runner_namespace)) || !(r->image = bop__strdup(o->runner_image)) ||
	    (o->api_token && !(r->token = bop__strdup(o->api_token))))
		return BOP_ENOMEM;
	if (!(r->pull_secrets = bop__calloc(o->n_pull_secrets + 1, sizeof(char *))))
		return BOP_ENOMEM;
	for (size_t i = 0; i < o->n_pull_secrets; i++) {
		if (!o->pull_secrets[i] || !*o->pull_secrets[i])
			return bop__error(BOP_EINVAL, "reconcile: image pull secret %zu is empty", i);
		if (!(r->pull_secrets[i] = bop__strdup(o->pull_secrets[i])))
			return BOP_ENOMEM;
		r->n_pull_secrets++;
	}
	return 0;
}

BOP_EXTERN(int) bop_reconcile_options_init(bop_reconcile_options_t *opts, unsigned int version)
{
	bop_reconcile_options_t defaults = BOP_RECONCILE_OPTIONS_INIT;

	if (!opts)
		return bop__error(BOP_EINVAL, "bop_reconcile_options_init: NULL options");
	if (BOP__VERSION_CHECK("bop_reconcile_options_t", NULL, version, RECONCILE_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	*opts = defaults;
	return 0;
}

/* Drops what only the checks needed; keeps what the getters return. */
static void drop_work(bop_reconcile_t *r)
{
	json_object_put(r->config);
	json_object_put(r->files);
	json_object_put(r->pod_patch);
	json_object_put(r->volumes);
	json_object_put(r->mounts);
	r->config = r->files = r->pod_patch = r->volumes = r->mounts = NULL;
	if (r->token)
		bop__wipe(r->token, strlen(r->token));
}

static int run(bop_reconcile_t *r)
{
	int ret;

	if ((ret = bop_reconcile_name(&r->object_name, "runner", r->ns, r->name)) ||
	    (ret = collect_refs(r)))
		return ret;
	if (!r->spec || !json_object_is_type(r->spec, json_type_object))
		return bop__rec_invalid(r, "InvalidSpec", "spec: missing or not an object");
	if ((ret = bop__rec_check_spec(r)) || (ret = bop__rec_check_storage(r)) ||
	    (ret = bop__rec_build_config(r)) || (ret = bop__rec_build_objects(r)))
		return ret;
	r->valid = 1;
	return 0;
}

BOP_EXTERN(int) bop_reconcile_new(bop_reconcile_t **out, const bop_reconcile_options_t *opts,
	const char *schedule, const char *storage)
{
	bop_reconcile_t *r;
	int ret;

	*out = NULL;
	if (!(r = bop__calloc(1, sizeof(*r))))
		return BOP_ENOMEM;
	if (!(ret = copy_options(r, opts)) && !(ret = read_inputs(r, schedule, storage)))
		ret = run(r);
	drop_work(r);
	if (ret < 0) {
		bop_reconcile_free(r);
		return ret;
	}
	if (!r->valid) {
		for (int i = 0; i < BOP_RECONCILE_KINDS; i++) {
			free(r->objects[i]);
			free(r->paths[i]);
			free(r->hashes[i]);
			r->objects[i] = r->paths[i] = r->hashes[i] = NULL;
		}
		free(r->config_hash);
		r->config_hash = NULL;
	}
	*out = r;
	return 0;
}

BOP_EXTERN(void) bop_reconcile_free(bop_reconcile_t *r)
{
	if (!r)
		return;
	drop_work(r);
	free(r->target_ns);
	free(r->image);
	for (size_t i = 0; r->pull_secrets && i < r->n_pull_secrets; i++)
		free(r->pull_secrets[i]);
	free(r->pull_secrets);
	free(r->token);
	json_object_put(r->schedule);
	json_object_put(r->storage);
	free(r->object_name);
	free(r->storage_name);
	free(r->catalog);
	for (size_t i = 0; i < r->n_secret_refs; i++)
		free(r->secret_refs[i]);
	free(r->secret_refs);
	free(r->reason);
	free(r->message);
	for (int i = 0; i < BOP_RECONCILE_KINDS; i++) {
		if (r->objects[i] && i == BOP_RECONCILE_SECRET)
			bop__wipe(r->objects[i], strlen(r->objects[i]));
		free(r->objects[i]);
		free(r->paths[i]);
		free(r->hashes[i]);
	}
	free(r->config_hash);
	free(r);
}

BOP_EXTERN(int) bop_reconcile_valid(const bop_reconcile_t *r)
{
	return r && r->valid;
}

BOP_EXTERN(const char *) bop_reconcile_reason(const bop_reconcile_t *r)
{
	return r && !r->valid ? r->reason : NULL;
}

BOP_EXTERN(const char *) bop_reconcile_message(const bop_reconcile_t *r)
{
	return r && !r->valid ? r->message : NULL;
}

static bool kind_ok(const bop_reconcile_t *r, bop_reconcile_kind_t kind)
{
	return r && r->valid && (int)kind >= 0 && (int)kind < BOP_RECONCILE_KINDS;
}

BOP_EXTERN(const char *) bop_reconcile_object(const bop_reconcile_t *r, bop_reconcile_kind_t kind)
{
	return kind_ok(r, kind) ? r->objects[kind] : NULL;
}

BOP_EXTERN(const char *) bop_reconcile_object_path(const bop_reconcile_t *r, bop_reconcile_kind_t kind)
{
	return kind_ok(r, kind) ? r->paths[kind] : NULL;
}

BOP_EXTERN(const char *) bop_reconcile_object_hash(const bop_reconcile_t *r, bop_reconcile_kind_t kind)
{
	return kind_ok(r, kind) ? r->hashes[kind] : NULL;
}

BOP_EXTERN(const char *) bop_reconcile_object_name(const bop_reconcile_t *r)
{
	return r ? r->object_name : NULL;
}

BOP_EXTERN(const char *) bop_reconcile_config_hash(const bop_reconcile_t *r)
{
	return r && r->valid ? r->config_hash : NULL;
}

BOP_EXTERN(const char *) bop_reconcile_secret_ref(const bop_reconcile_t *r, size_t i)
{
	return r && i < r->n_secret_refs ? r->secret_refs[i] : NULL;
}

BOP_EXTERN(const char *) bop_reconcile_storage_name(const bop_reconcile_t *r)
{
	return r ? r->storage_name : NULL;
}
