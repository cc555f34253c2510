/*
 * The BackupStorage (cluster-scoped): where backups go and who may use it.
 *
 *   spec.s3: {endpoint, bucket, region, prefix, forcePathStyle, insecure,
 *             caSecretRef: {namespace, name, key (default "ca.crt")}}
 *   spec.file: {claimName, prefix}   a PersistentVolumeClaim in the controller's
 *             namespace, mounted into the runner at /var/lib/backupop/storage
 *   spec.credentialsSecretRef: {namespace, name}  (s3; required) a Secret with the keys
 *             accessKeyId and secretAccessKey, and optionally sessionToken
 *   spec.allowedNamespaces: {from: All | Selector | Names, selector: {matchLabels,
 *             matchExpressions}, names: [...]}  (default: All; without `from`, Selector
 *             when a selector is given, Names when names are)
 *
 * The namespace check comes before any of the storage's Secrets is read, so a schedule
 * in a namespace that may not use the storage learns nothing about its credentials.
 */
#include "rec.h"

#include <stdlib.h>
#include <string.h>

#define F_STRING BOP__F_STRING
#define F_BOOL BOP__F_BOOL
#define F_OBJECT BOP__F_OBJECT
#define F_LIST BOP__F_LIST

static const bop__rec_field_t spec_fields[] = {
	{ "s3", F_OBJECT, 0 }, { "file", F_OBJECT, 0 }, { "credentialsSecretRef", F_OBJECT, 0 },
	{ "allowedNamespaces", F_OBJECT, 0 }, { NULL, F_STRING, 0 },
};

static const bop__rec_field_t s3_fields[] = {
	{ "endpoint", F_STRING, 0 }, { "bucket", F_STRING, 0 }, { "region", F_STRING, 0 },
	{ "prefix", F_STRING, 0 }, { "forcePathStyle", F_BOOL, 0 }, { "insecure", F_BOOL, 0 },
	{ "caSecretRef", F_OBJECT, 0 }, { NULL, F_STRING, 0 },
};

static const bop__rec_field_t file_fields[] = {
	{ "claimName", F_STRING, 0 }, { "prefix", F_STRING, 0 }, { NULL, F_STRING, 0 },
};

static const bop__rec_field_t allowed_fields[] = {
	{ "from", F_STRING, 0 }, { "selector", F_OBJECT, 0 }, { "names", F_LIST, 0 },
	{ NULL, F_STRING, 0 },
};

static const bop__rec_field_t selector_fields[] = {
	{ "matchLabels", F_OBJECT, 0 }, { "matchExpressions", BOP__F_ARRAY, 0 },
	{ NULL, F_STRING, 0 },
};

/* Messages about the storage start with "BackupStorage <name>: spec...". */
static int storage_invalid(bop_reconcile_t *r, const char *what)
{
	return bop__rec_invalid(r, "InvalidSpec", "BackupStorage %s: %s", r->storage_name, what);
}

static int check_object(bop_reconcile_t *r, json_object *obj, const char *sub,
	const bop__rec_field_t *fields)
{
	char *path = bop__sprintf("BackupStorage %s: %s", r->storage_name, sub);
	int ret = path ? bop__rec_check_fields(r, obj, path, fields) : BOP_ENOMEM;

	free(path);
	return ret;
}

static bool segment_chars_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || strchr("?#%\\", *s))
			return false;
	return true;
}

/* A prefix without leading and trailing slashes; "" when none. */
static char *clean_prefix(const char *prefix)
{
	size_t n;

	if (!prefix)
		return bop__strdup("");
	while (*prefix == '/')
		prefix++;
	for (n = strlen(prefix); n && prefix[n - 1] == '/'; n--)
		;
	return bop__strndup(prefix, n);
}

static int check_prefix(bop_reconcile_t *r, const char *prefix, const char *field)
{
	char *p = clean_prefix(prefix), *msg;
	int ret = 0;

	if (!p)
		return BOP_ENOMEM;
	if (*p && (!bop__catalog_path_valid(p) || !segment_chars_ok(p))) {
		msg = bop__sprintf("%s: \"%s\" is not a path of non-empty segments without "
			"blanks, '?', '#', '%%' or '\\'", field, prefix);
		ret = msg ? storage_invalid(r, msg) : BOP_ENOMEM;
		free(msg);
	}
	free(p);
	return ret;
}

static int check_s3(bop_reconcile_t *r, json_object *s3)
{
	const char *bucket = bop__rec_str(s3, "bucket");
	const char *endpoint = bop__rec_str(s3, "endpoint");
	json_object *ca = bop__rec_get(s3, "caSecretRef");
	json_object *cred = bop__rec_get(r->storage_spec, "credentialsSecretRef");
	int ret;

	if ((ret = check_object(r, s3, "spec.s3", s3_fields)))
		return ret;
	if (!bucket || !*bucket || strchr(bucket, '/') || !segment_chars_ok(bucket))
		return storage_invalid(r, "spec.s3.bucket: required: a bucket name");
	if (endpoint && strncmp(endpoint, "http://", 7) && strncmp(endpoint, "https://", 8))
		return storage_invalid(r, "spec.s3.endpoint: expected an http:// or https:// URL");
	if ((ret = check_prefix(r, bop__rec_str(s3, "prefix"), "spec.s3.prefix")))
		return ret;
	if (ca && (ret = bop__rec_check_ref(r, ca, "spec.s3.caSecretRef", true, false)))
		return ret;
	if (!cred)
		return storage_invalid(r, "spec.credentialsSecretRef: required for s3 (a Secret with "
			"accessKeyId and secretAccessKey)");
	return bop__rec_check_ref(r, cred, "spec.credentialsSecretRef", true, false);
}

static int check_file(bop_reconcile_t *r, json_object *file)
{
	const char *claim = bop__rec_str(file, "claimName");
	int ret;

	if ((ret = check_object(r, file, "spec.file", file_fields)))
		return ret;
	if (!claim || !*claim)
		return storage_invalid(r, "spec.file.claimName: required: a PersistentVolumeClaim "
			"in the controller's namespace");
	return check_prefix(r, bop__rec_str(file, "prefix"), "spec.file.prefix");
}

/* ---- allowedNamespaces ---- */

/* What the matching functions return besides BOP__REC_INVALID and errors. */
#define NO_MATCH 0
#define MATCH 2

static bool in_list(json_object *list, const char *s)
{
	for (size_t i = 0; list && i < json_object_array_length(list); i++) {
		const char *v = json_object_get_string(json_object_array_get_idx(list, i));

		if (v && !strcmp(v, s))
			return true;
	}
	return false;
}

static const char *label(json_object *labels, const char *ns, const char *key)
{
	/* Kubernetes 1.21+ sets this label itself; earlier servers get it here */
	if (!strcmp(key, "kubernetes.io/metadata.name"))
		return ns;
	return bop__rec_str(labels, key);
}

/* MATCH, NO_MATCH, or BOP__REC_INVALID when the expression is malformed. */
static int expression_matches(bop_reconcile_t *r, json_object *e, json_object *labels)
{
	const char *key = bop__rec_str(e, "key"), *op = bop__rec_str(e, "operator"), *v;
	json_object *values = bop__rec_get(e, "values");

	if (!key || !op || (values && !json_object_is_type(values, json_type_array)))
		return storage_invalid(r, "spec.allowedNamespaces.selector.matchExpressions: each "
			"needs a key, an operator and a list of values");
	v = label(labels, r->ns, key);
	if (!strcmp(op, "In") || !strcmp(op, "NotIn")) {
		if (!values || !json_object_array_length(values))
			return storage_invalid(r, "spec.allowedNamespaces.selector.matchExpressions: "
				"In and NotIn need values");
		return (v && in_list(values, v)) == !strcmp(op, "In") ? MATCH : NO_MATCH;
	}
	if (!strcmp(op, "Exists"))
		return v ? MATCH : NO_MATCH;
	if (!strcmp(op, "DoesNotExist"))
		return v ? NO_MATCH : MATCH;
	return storage_invalid(r, "spec.allowedNamespaces.selector.matchExpressions: the operator "
		"must be In, NotIn, Exists or DoesNotExist");
}

/* MATCH when the namespace's labels match the selector, else NO_MATCH (or invalid). */
static int selector_matches(bop_reconcile_t *r, json_object *sel, json_object *labels,
	json_object *empty)
{
	json_object *exprs = bop__rec_get(sel, "matchExpressions");
	json_object *ml = bop__rec_get(sel, "matchLabels");
	int ret;

	if (exprs && !json_object_is_type(exprs, json_type_array))
		return storage_invalid(r, "spec.allowedNamespaces.selector.matchExpressions: expected "
			"a list");
	if (!ml)
		ml = empty;
	json_object_object_foreach(ml, key, val) {
		const char *v = label(labels, r->ns, key);

		if (!val || !json_object_is_type(val, json_type_string) || !v ||
		    strcmp(v, json_object_get_string(val)))
			return NO_MATCH;
	}
	for (size_t i = 0; exprs && i < json_object_array_length(exprs); i++)
		if ((ret = expression_matches(r, json_object_array_get_idx(exprs, i), labels)) != MATCH)
			return ret;
	return MATCH;
}

/* MATCH, NO_MATCH (also when the namespace is not found), BOP__REC_INVALID or an error. */
static int namespace_selected(bop_reconcile_t *r, json_object *sel)
{
	json_object *nsobj = NULL, *empty;
	char *text = NULL;
	int ret;

	if ((ret = check_object(r, sel, "spec.allowedNamespaces.selector", selector_fields)))
		return ret;
	ret = r->lookup(&text, "Namespace", NULL, r->ns, r->ud);
	if (ret == BOP_ENOTFOUND) {
		free(text);
		return NO_MATCH;
	}
	if (ret < 0) {
		free(text);
		return bop__error_wrap("looking up Namespace %s", r->ns);
	}
	ret = bop__rec_parse(&nsobj, text, "Namespace");
	free(text);
	if (ret < 0)
		return bop__error_wrap("Namespace %s", r->ns);
	empty = json_object_new_object();
	ret = empty ? selector_matches(r, sel, bop__rec_get(bop__rec_get(nsobj, "metadata"),
		"labels"), empty) : bop__error_oom();
	json_object_put(empty);
	json_object_put(nsobj);
	return ret;
}

static int check_allowed(bop_reconcile_t *r)
{
	json_object *an = bop__rec_get(r->storage_spec, "allowedNamespaces");
	json_object *sel = bop__rec_get(an, "selector"), *names = bop__rec_get(an, "names");
	const char *from = bop__rec_str(an, "from");
	int ret;

	if (an && (ret = check_object(r, an, "spec.allowedNamespaces", allowed_fields)))
		return ret;
	if (!from)
		from = sel ? "Selector" : names ? "Names" : "All";
	if (!strcmp(from, "All"))
		return 0;
	if (!strcmp(from, "Names"))
		ret = in_list(names, r->ns) ? MATCH : NO_MATCH;
	else if (!strcmp(from, "Selector") && sel)
		ret = namespace_selected(r, sel);
	else if (!strcmp(from, "Selector"))
		return storage_invalid(r, "spec.allowedNamespaces.selector: required with from: "
			"Selector");
	else
		return storage_invalid(r, "spec.allowedNamespaces.from: must be All, Selector or "
			"Names");
	if (ret != MATCH && ret != NO_MATCH)
		return ret;
	if (ret == NO_MATCH)
		return bop__rec_invalid(r, "StorageNotAllowed", "BackupStorage %s does not allow "
			"namespace %s (spec.allowedNamespaces)", r->storage_name, r->ns);
	return 0;
}

int bop__rec_check_storage(bop_reconcile_t *r)
{
	json_object *s3, *file;
	const char *sname;
	int ret;

	if (!r->storage)
		return bop__rec_invalid(r, "StorageNotFound", "BackupStorage %s (spec.storage.name) "
			"not found", r->storage_name);
	sname = bop__rec_str(bop__rec_get(r->storage, "metadata"), "name");
	if (strcmp(sname, r->storage_name))
		return bop__error(BOP_EINVAL, "reconcile: BackupStorage %s given for a schedule that "
			"uses %s", sname, r->storage_name);
	if ((ret = check_object(r, r->storage_spec, "spec", spec_fields)))
		return ret;
	s3 = bop__rec_get(r->storage_spec, "s3");
	file = bop__rec_get(r->storage_spec, "file");
	if (!s3 == !file)
		return storage_invalid(r, "spec: give exactly one of s3 or file");
	if ((ret = s3 ? check_s3(r, s3) : check_file(r, file)))
		return ret;
	return check_allowed(r);
}

/* ---- the runner's storage block ---- */

static int add_secret_key(bop_reconcile_t *r, json_object *block, const char *ns,
	const char *name, const char *key, bool optional)
{
	char *field = bop__sprintf("spec.credentialsSecretRef of BackupStorage %s",
		r->storage_name), *value = NULL;
	size_t len = 0;
	int ret;

	ret = field ? bop__rec_secret_value(r, field, ns, name, key, optional, &value, &len) :
		BOP_ENOMEM;
	free(field);
	if (!ret && value)
		ret = bop__rec_add(block, key, json_object_new_string_len(value, (int)len));
	if (value)
		bop__wipe(value, len);
	free(value);
	return ret;
}

static int add_ca(bop_reconcile_t *r, json_object *block, json_object *ca)
{
	const char *key = bop__rec_str(ca, "key");
	char *field = bop__sprintf("spec.s3.caSecretRef of BackupStorage %s", r->storage_name);
	char *value = NULL;
	size_t len = 0;
	int ret;

	ret = field ? bop__rec_secret_value(r, field, bop__rec_str(ca, "namespace"),
		bop__rec_str(ca, "name"), key ? key : BOP__REC_CA_KEY, false, &value, &len) :
		BOP_ENOMEM;
	free(field);
	if (!ret)
		ret = bop__rec_add(r->files, BOP__REC_CA_KEY, json_object_new_string_len(value,
			(int)len));
	if (!ret)
		ret = bop__rec_add(block, "caFile", json_object_new_string(BOP__REC_CA_KEY));
	free(value);
	return ret;
}

static int s3_block(bop_reconcile_t *r, json_object *s3, json_object *block)
{
	static const char *const plain[] = { "endpoint", "region", "forcePathStyle", "insecure",
		NULL };
	json_object *cred = bop__rec_get(r->storage_spec, "credentialsSecretRef");
	const char *cns = bop__rec_str(cred, "namespace"), *cname = bop__rec_str(cred, "name");
	char *prefix = clean_prefix(bop__rec_str(s3, "prefix")), *url;
	int ret;

	url = prefix ? bop__sprintf("s3://%s%s%s", bop__rec_str(s3, "bucket"), *prefix ? "/" : "",
		prefix) : NULL;
	ret = url ? bop__rec_add(block, "url", json_object_new_string(url)) : BOP_ENOMEM;
	free(prefix);
	free(url);
	for (size_t i = 0; !ret && plain[i]; i++)
		if (bop__rec_get(s3, plain[i]))
			ret = bop__rec_add(block, plain[i], bop__rec_sorted_copy(bop__rec_get(s3,
				plain[i])));
	if (!ret)
		ret = add_secret_key(r, block, cns, cname, "accessKeyId", false);
	if (!ret)
		ret = add_secret_key(r, block, cns, cname, "secretAccessKey", false);
	if (!ret)
		ret = add_secret_key(r, block, cns, cname, "sessionToken", true);
	if (!ret && bop__rec_get(s3, "caSecretRef"))
		ret = add_ca(r, block, bop__rec_get(s3, "caSecretRef"));
	return ret;
}

static int file_block(bop_reconcile_t *r, json_object *file, json_object *block)
{
	char *prefix = clean_prefix(bop__rec_str(file, "prefix")), *url;
	json_object *vol, *pvc, *mount;
	int ret;

	url = prefix ? bop__sprintf("file://%s%s%s", BOP__REC_FILE_MOUNT, *prefix ? "/" : "",
		prefix) : NULL;
	ret = url ? bop__rec_add(block, "url", json_object_new_string(url)) : BOP_ENOMEM;
	free(prefix);
	free(url);
	if (ret)
		return ret;
	if (!(r->volumes = json_object_new_array()) || !(r->mounts = json_object_new_array()) ||
	    !(vol = json_object_new_object()))
		return bop__error_oom();
	if (json_object_array_add(r->volumes, vol) < 0) {
		json_object_put(vol);
		return bop__error_oom();
	}
	if ((ret = bop__rec_add(vol, "name", json_object_new_string("storage"))) ||
	    !(pvc = json_object_new_object()) ||
	    (ret = bop__rec_add(vol, "persistentVolumeClaim", pvc)) ||
	    (ret = bop__rec_add(pvc, "claimName", json_object_new_string(bop__rec_str(file,
		    "claimName")))) ||
	    !(mount = json_object_new_object()))
		return ret ? ret : bop__error_oom();
	if (json_object_array_add(r->mounts, mount) < 0) {
		json_object_put(mount);
		return bop__error_oom();
	}
	if ((ret = bop__rec_add(mount, "name", json_object_new_string("storage"))))
		return ret;
	return bop__rec_add(mount, "mountPath", json_object_new_string(BOP__REC_FILE_MOUNT));
}

int bop__rec_storage_config(bop_reconcile_t *r, json_object **out)
{
	json_object *s3 = bop__rec_get(r->storage_spec, "s3");
	json_object *block = json_object_new_object();
	int ret;

	*out = NULL;
	if (!block)
		return bop__error_oom();
	ret = s3 ? s3_block(r, s3, block) : file_block(r, bop__rec_get(r->storage_spec, "file"),
		block);
	if (ret) {
		json_object_put(block);
		return ret;
	}
	*out = block;
	return 0;
}
