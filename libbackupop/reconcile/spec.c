/*
 * The BackupSchedule spec: checked field by field (unknown fields and wrong types are
 * refused, as the runner's own config loader does), then turned into the runner config
 * (backupop-config(5)) with every Secret resolved to its value.
 *
 * spec.storage.path, a template over {{ .Namespace }}, {{ .Name }} and {{ .ID }}, becomes
 * the runner's catalog "name": the runner keeps backup <id> under <name>/<id>/ below the
 * storage URL (s3://<bucket>/<s3.prefix>), so the path must end in "/{{ .ID }}" (or leave
 * the id out, which means the same) and what comes before it is the catalog name.
 */
#include "rec.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_PATH "{{ .Namespace }}/{{ .Name }}/{{ .ID }}"
#define DEPTH_MAX 32

#define F_STRING BOP__F_STRING
#define F_BOOL BOP__F_BOOL
#define F_COUNT BOP__F_COUNT
#define F_OBJECT BOP__F_OBJECT
#define F_LIST BOP__F_LIST
typedef bop__rec_field_t field_t;

#define END { NULL, F_STRING, 0 }

static const field_t spec_fields[] = {
	{ "schedule", F_STRING, 0 }, { "timeZone", F_STRING, 0 }, { "suspend", F_BOOL, 0 },
	{ "startingDeadlineSeconds", F_COUNT, 100000000 }, { "concurrencyPolicy", F_STRING, 0 },
	{ "mode", F_STRING, 0 }, { "engine", F_OBJECT, 0 }, { "storage", F_OBJECT, 0 },
	{ "compression", F_OBJECT, 0 }, { "encryption", F_OBJECT, 0 },
	{ "retention", F_OBJECT, 0 }, { "historyLimits", F_OBJECT, 0 },
	{ "deadlines", F_OBJECT, 0 }, { "verification", F_OBJECT, 0 }, { "tags", F_LIST, 0 },
	{ "runner", F_OBJECT, 0 }, { "sidecar", F_OBJECT, 0 }, END,
};

static const field_t storage_fields[] = { { "name", F_STRING, 0 }, { "path", F_STRING, 0 }, END };

static const field_t compression_fields[] = {
	{ "algorithm", F_STRING, 0 }, { "level", F_COUNT, 22 }, { "threads", F_COUNT, 256 }, END,
};

static const field_t encryption_fields[] = {
	{ "recipientsSecretRef", F_OBJECT, 0 }, { "recipients", F_LIST, 0 },
	{ "identitySecretRef", F_OBJECT, 0 }, { "generateIdentity", F_OBJECT, 0 }, END,
};

static const field_t generate_fields[] = { { "secretName", F_STRING, 0 }, END };

static const field_t retention_fields[] = {
	{ "keepLast", F_COUNT, 1000000 }, { "keepHourly", F_COUNT, 1000000 },
	{ "keepDaily", F_COUNT, 1000000 }, { "keepWeekly", F_COUNT, 1000000 },
	{ "keepMonthly", F_COUNT, 1000000 }, { "keepYearly", F_COUNT, 1000000 },
	{ "keepWithin", F_STRING, 0 }, { "keepTags", F_LIST, 0 }, END,
};

static const field_t history_fields[] = {
	{ "successful", F_COUNT, 100000 }, { "failed", F_COUNT, 100000 }, END,
};

static const field_t deadline_fields[] = {
	{ "backupSeconds", F_COUNT, 100000000 }, { "restoreSeconds", F_COUNT, 100000000 },
	{ "verifySeconds", F_COUNT, 100000000 }, END,
};

static const field_t verification_fields[] = {
	{ "schedule", F_STRING, 0 }, { "restore", F_OBJECT, 0 },
	{ "expectRows", F_COUNT, 1LL << 60 }, END,
};

static const field_t verify_restore_fields[] = {
	{ "engine", F_OBJECT, 0 }, { "expectRows", F_COUNT, 1LL << 60 }, END,
};

static const field_t runner_fields[] = { { "affinity", F_OBJECT, 0 }, { "resources", F_OBJECT, 0 },
	{ "tools", F_OBJECT, 0 }, END };
/* The tools container: the user's image, where the exec engine's commands run. */
static const field_t tools_fields[] = { { "image", F_STRING, 0 }, { "imagePullPolicy", F_STRING, 0 },
	{ "env", BOP__F_ARRAY, 0 }, { "resources", F_OBJECT, 0 },
	{ "securityContext", F_OBJECT, 0 }, END };
/* What a schedule may set of the tools container's securityContext: who it runs as and what
 * restricts it more. The pod runs in the controller's namespace, so nothing that widens it
 * (privileged, capabilities added, privilege escalation, SELinux or proc mount options). */
static const field_t tools_sc_fields[] = { { "runAsUser", F_COUNT, 2147483647 },
	{ "runAsGroup", F_COUNT, 2147483647 }, { "runAsNonRoot", F_BOOL, 0 },
	{ "readOnlyRootFilesystem", F_BOOL, 0 }, { "allowPrivilegeEscalation", F_BOOL, 0 },
	{ "privileged", F_BOOL, 0 }, { "capabilities", F_OBJECT, 0 },
	{ "seccompProfile", F_OBJECT, 0 }, END };
static const field_t tools_caps_fields[] = { { "drop", F_LIST, 0 }, END };
static const field_t tools_seccomp_fields[] = { { "type", F_STRING, 0 },
	{ "localhostProfile", F_STRING, 0 }, END };
static const field_t affinity_fields[] = { { "podSelector", F_OBJECT, 0 }, END };
static const field_t resources_fields[] = { { "requests", F_OBJECT, 0 }, { "limits", F_OBJECT, 0 }, END };

static bool type_ok(json_object *v, const field_t *f)
{
	switch (f->type) {
	case F_STRING: return json_object_is_type(v, json_type_string);
	case F_BOOL: return json_object_is_type(v, json_type_boolean);
	case F_COUNT:
		return json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0 &&
			json_object_get_int64(v) <= f->max;
	case F_OBJECT: return json_object_is_type(v, json_type_object);
	case F_LIST:
		if (!json_object_is_type(v, json_type_array))
			return false;
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *item = json_object_array_get_idx(v, i);

			if (!item || !json_object_is_type(item, json_type_string) ||
			    !*json_object_get_string(item))
				return false;
		}
		return true;
	case BOP__F_ARRAY: return json_object_is_type(v, json_type_array);
	case BOP__F_ANY: return true;
	}
	return false;
}

static const char *type_words(const field_t *f, char *buf, size_t len)
{
	switch (f->type) {
	case F_STRING: return "expected a string";
	case F_BOOL: return "expected true or false";
	case F_COUNT:
		snprintf(buf, len, "expected an integer from 0 to %lld", f->max);
		return buf;
	case F_OBJECT: return "expected an object";
	case F_LIST: return "expected a list of non-empty strings";
	case BOP__F_ARRAY: return "expected a list";
	case BOP__F_ANY: return "invalid";
	}
	return "invalid";
}

int bop__rec_check_fields(bop_reconcile_t *r, json_object *obj, const char *path,
	const field_t *fields)
{
	char buf[64];

	if (!json_object_is_type(obj, json_type_object))
		return bop__rec_invalid(r, "InvalidSpec", "%s: expected an object", path);
	json_object_object_foreach(obj, key, val) {
		const field_t *f;

		for (f = fields; f->key && strcmp(f->key, key); f++)
			;
		if (!f->key)
			return bop__rec_invalid(r, "InvalidSpec", "%s.%s: unknown field", path, key);
		if (val && !type_ok(val, f))
			return bop__rec_invalid(r, "InvalidSpec", "%s.%s: %s", path, key,
				type_words(f, buf, sizeof(buf)));
	}
	return 0;
}

static int check_child(bop_reconcile_t *r, json_object *parent, const char *path,
	const char *key, const field_t *fields)
{
	json_object *v = bop__rec_get(parent, key);
	char *sub;
	int ret;

	if (!v)
		return 0;
	if (!(sub = bop__sprintf("%s.%s", path, key)))
		return BOP_ENOMEM;
	ret = bop__rec_check_fields(r, v, sub, fields);
	free(sub);
	return ret;
}

static int check_enum(bop_reconcile_t *r, json_object *obj, const char *path, const char *key,
	const char *const *values)
{
	const char *v = bop__rec_str(obj, key);
	char list[128] = "";

	if (!v)
		return 0;
	for (size_t i = 0; values[i]; i++) {
		if (!strcmp(values[i], v))
			return 0;
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
			values[i]);
	}
	return bop__rec_invalid(r, "InvalidSpec", "%s.%s: \"%s\" is not one of %s", path, key, v,
		list);
}

/* "7d", "12h", "1w2d", "90m", "3600s" or plain seconds, as the runner takes them. */
static bool duration_valid(const char *s)
{
	const char *p = s;

	if (!*p)
		return false;
	while (*p && isdigit((unsigned char)*p))
		p++;
	if (!*p)
		return true;
	p = s;
	while (*p) {
		const char *digits = p;

		while (isdigit((unsigned char)*p))
			p++;
		if (p == digits || !*p || !strchr("wdhms", *p))
			return false;
		p++;
	}
	return true;
}

/* ---- engines ---- */

/* `what` and the registered engines with every capability in `capabilities`: "...
 * (one of cockroach, exec, files, mysql or postgres)". */
static int invalid_engine(bop_reconcile_t *r, const char *reason, unsigned int capabilities,
	const char *what)
{
	char *known = bop__engine_names_text(capabilities, " or ");
	int ret;

	if (!known)
		return bop__error_oom();
	ret = bop__rec_invalid(r, reason, "%s (one of %s)", what, known);
	free(known);
	return ret;
}

static int check_engine(bop_reconcile_t *r, json_object *engine, const char *path)
{
	const char *name = NULL;
	char names[128] = "", what[384];
	unsigned int caps;
	int n = 0;

	if (!engine) {
		snprintf(what, sizeof(what), "%s: required", path);
		return invalid_engine(r, "InvalidSpec", 0, what);
	}
	json_object_object_foreach(engine, key, val) {
		(void)val;
		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
			n ? ", " : "", key);
		name = key;
		n++;
	}
	if (n != 1) {
		snprintf(what, sizeof(what), "%s: expected exactly one engine, got %d%s%s", path, n,
			n ? ": " : "", names);
		return invalid_engine(r, "InvalidSpec", 0, what);
	}
	if (bop_engine_capabilities(&caps, name) < 0) {
		snprintf(what, sizeof(what), "%s.%s: unknown engine", path, name);
		return invalid_engine(r, "UnknownEngine", 0, what);
	}
	if (!json_object_is_type(bop__rec_get(engine, name), json_type_object))
		return bop__rec_invalid(r, "InvalidSpec", "%s.%s: expected an object", path, name);
	return 0;
}

static const char *engine_name(json_object *engine)
{
	json_object_object_foreach(engine, key, val) {
		(void)val;
		return key;
	}
	return NULL;
}

static int resolve_refs(bop_reconcile_t *r, json_object *v, const char *path, int depth);

static int resolve_ref(bop_reconcile_t *r, json_object *obj, const char *path, const char *key)
{
	json_object *ref = bop__rec_get(obj, key);
	char *field = bop__sprintf("%s.%s", path, key), *base = NULL, *value = NULL;
	size_t len = 0;
	int ret = BOP_ENOMEM;

	if (!field || !(base = bop__strndup(key, strlen(key) - 9)))
		goto out;
	if ((ret = bop__rec_check_ref(r, ref, field, false, true)))
		goto out;
	if (bop__rec_get(obj, base)) {
		ret = bop__rec_invalid(r, "InvalidSpec", "%s: give either %s.%s or %s", field, path,
			base, key);
		goto out;
	}
	if ((ret = bop__rec_secret_value(r, field, r->ns, bop__rec_str(ref, "name"),
		    bop__rec_str(ref, "key"), false, &value, &len)))
		goto out;
	if (strlen(value) != len) {
		ret = bop__rec_invalid(r, "InvalidSpec", "%s: the Secret's value holds a NUL byte",
			field);
		goto out;
	}
	json_object_object_del(obj, key);
	ret = bop__rec_add(obj, base, json_object_new_string(value));
out:
	if (value)
		bop__wipe(value, len);
	free(value);
	free(base);
	free(field);
	return ret;
}

/* Replaces every "<field>SecretRef": {name, key} by "<field>": <value>, in place. */
static int resolve_object(bop_reconcile_t *r, json_object *obj, const char *path, int depth)
{
	size_t n = (size_t)json_object_object_length(obj), i = 0;
	char **keys = bop__calloc(n, sizeof(*keys));
	int ret = 0;

	if (!keys)
		return BOP_ENOMEM;
	json_object_object_foreach(obj, key, val) {
		(void)val;
		if (!(keys[i++] = bop__strdup(key))) {
			ret = BOP_ENOMEM;
			break;
		}
	}
	for (i = 0; !ret && i < n; i++) {
		size_t klen = strlen(keys[i]);
		char *sub;

		if (klen > 9 && !strcmp(keys[i] + klen - 9, "SecretRef")) {
			ret = resolve_ref(r, obj, path, keys[i]);
		} else if ((sub = bop__sprintf("%s.%s", path, keys[i]))) {
			ret = resolve_refs(r, bop__rec_get(obj, keys[i]), sub, depth + 1);
			free(sub);
		} else {
			ret = BOP_ENOMEM;
		}
	}
	for (i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	return ret;
}

static int resolve_refs(bop_reconcile_t *r, json_object *v, const char *path, int depth)
{
	int ret = 0;

	if (depth > DEPTH_MAX)
		return bop__rec_invalid(r, "InvalidSpec", "%s: nested too deeply", path);
	if (v && json_object_is_type(v, json_type_object))
		return resolve_object(r, v, path, depth);
	for (size_t i = 0; !ret && v && json_object_is_type(v, json_type_array) &&
	     i < json_object_array_length(v); i++) {
		char *sub = bop__sprintf("%s[%zu]", path, i);

		ret = sub ? resolve_refs(r, json_object_array_get_idx(v, i), sub, depth + 1) : BOP_ENOMEM;
		free(sub);
	}
	return ret;
}

/* Whether the exec engine's commands run in the tools container (spec.runner.tools). */
static bool has_tools(const bop_reconcile_t *r)
{
	return bop__rec_get(bop__rec_get(r->spec, "runner"), "tools") != NULL;
}

/* The engine block with Secrets resolved, checked by the engine itself; its pod patch
 * into *patch when asked. */
static int build_engine(bop_reconcile_t *r, json_object *engine, const char *path,
	json_object **out, json_object **patch)
{
	const char *name = engine_name(engine);
	json_object *block = bop__rec_sorted_copy(bop__rec_get(engine, name)), *wrap = NULL;
	bop_engine_t *e = NULL;
	char *sub = bop__sprintf("%s.%s", path, name), *json = NULL, *patch_json = NULL;
	int ret = BOP_ENOMEM;

	*out = NULL;
	if (!block || !sub)
		goto out;
	if ((ret = resolve_refs(r, block, sub, 0)))
		goto out;
	if (!strcmp(name, "exec") && has_tools(r) && (ret = bop__rec_add(block, "tools",
		    json_object_new_object())) == 0)
		ret = bop__rec_add(bop__rec_get(block, "tools"), "socket",
			json_object_new_string(BOP__REC_TOOLS_SOCKET));
	if (ret || !(json = bop__rec_to_string(block)))
		goto out;
	ret = bop_engine_open(&e, name, json);
	if (ret == BOP_ENOTFOUND) {
		ret = bop__rec_invalid(r, "UnknownEngine", "%s: the %s engine is not available in "
			"this build of backupop", sub, name);
		goto out;
	}
	if (ret < 0) {
		ret = bop__rec_invalid(r, "InvalidSpec", "%s: %s", sub, bop_error_last());
		goto out;
	}
	if (patch && (ret = bop_engine_pod_customize(e, &patch_json)) < 0)
		goto out;
	if (patch && (ret = bop__rec_parse(patch, patch_json, "the engine's pod patch")) < 0)
		goto out;
	ret = BOP_ENOMEM;
	if (!(wrap = json_object_new_object()) || bop__rec_add(wrap, name, block))
		goto out;
	block = NULL;
	*out = wrap;
	wrap = NULL;
	ret = 0;
out:
	bop_engine_free(e);
	if (json)
		bop__wipe(json, strlen(json));
	free(json);
	free(patch_json);
	free(sub);
	json_object_put(block);
	json_object_put(wrap);
	return ret;
}

/* ---- schedules ---- */

static int check_schedules(bop_reconcile_t *r)
{
	const char *tz = bop__rec_str(r->spec, "timeZone");
	const char *exprs[2] = { bop__rec_str(r->spec, "schedule"),
		bop__rec_str(bop__rec_get(r->spec, "verification"), "schedule") };
	const char *fields[2] = { "spec.schedule", "spec.verification.schedule" };
	bop_schedule_t *s = NULL;
	int ret;

	if (tz) {
		ret = bop_schedule_parse(&s, "@daily", tz);
		bop_schedule_free(s);
		s = NULL;
		if (ret == BOP_ENOMEM)
			return ret;
		if (ret < 0)
			return bop__rec_invalid(r, "InvalidTimeZone", "spec.timeZone: %s",
				bop_error_last());
	}
	for (int i = 0; i < 2; i++) {
		if (!exprs[i])
			continue;
		ret = bop_schedule_parse(&s, exprs[i], tz);
		bop_schedule_free(s);
		s = NULL;
		if (ret == BOP_ENOMEM)
			return ret;
		if (ret < 0)
			return bop__rec_invalid(r, "InvalidSchedule", "%s: %s", fields[i],
				bop_error_last());
	}
	return 0;
}

/* ---- spec.storage.path ---- */

/* The longest catalog name bop__catalog_path_valid() accepts. */
#define PATH_LEN_MAX 1024

int bop__rec_render_path(bop_reconcile_t *r, const char *tmpl, char **out)
{
	char *s = bop__calloc(PATH_LEN_MAX + 2, 1); /* and the '/' before {{ .ID }} */
	const char *p = tmpl;
	size_t n = 0;

	*out = NULL;
	if (!s)
		return BOP_ENOMEM;
	while (*p) {
		const char *end, *var, *value = NULL;
		size_t vlen;

		if (strncmp(p, "{{", 2)) {
			if (n > PATH_LEN_MAX)
				goto too_long;
			s[n++] = *p++;
			continue;
		}
		if (!(end = strstr(p + 2, "}}")))
			goto bad;
		for (var = p + 2; var < end && *var == ' '; var++)
			;
		for (vlen = (size_t)(end - var); vlen && var[vlen - 1] == ' '; vlen--)
			;
		if (vlen == 10 && !strncmp(var, ".Namespace", vlen)) {
			value = r->ns;
		} else if (vlen == 5 && !strncmp(var, ".Name", vlen)) {
			value = r->name;
		} else if (vlen == 3 && !strncmp(var, ".ID", vlen)) {
			if (end[2] || (n && s[n - 1] != '/')) {
				free(s);
				return bop__rec_invalid(r, "InvalidSpec", "spec.storage.path: {{ .ID }} "
					"must be the last segment: the runner keeps each backup under "
					"<path>/<id>");
			}
			if (n)
				n--;
			break;
		} else {
			free(s);
			return bop__rec_invalid(r, "InvalidSpec", "spec.storage.path: unknown variable "
				"\"%.*s\" (known: .Namespace, .Name, .ID)", (int)vlen, var);
		}
		if (strlen(value) > PATH_LEN_MAX + 1 - n)
			goto too_long;
		memcpy(s + n, value, strlen(value));
		n += strlen(value);
		p = end + 2;
	}
	s[n] = '\0';
	if (n > PATH_LEN_MAX)
		goto too_long;
	if (!bop__catalog_path_valid(s))
		goto bad;
	*out = s;
	return 0;
too_long:
	free(s);
	return bop__rec_invalid(r, "InvalidSpec", "spec.storage.path: \"%.200s\" makes a catalog "
		"name longer than %d characters", tmpl, PATH_LEN_MAX);
bad:
	free(s);
	return bop__rec_invalid(r, "InvalidSpec", "spec.storage.path: \"%.200s\" does not make a "
		"relative path of non-empty segments (e.g. \"%s\")", tmpl, DEFAULT_PATH);
}

/* ---- the whole spec ---- */

static int check_encryption(bop_reconcile_t *r)
{
	json_object *enc = bop__rec_get(r->spec, "encryption");
	json_object *ref = bop__rec_get(enc, "recipientsSecretRef");
	json_object *list = bop__rec_get(enc, "recipients");
	json_object *gen = bop__rec_get(enc, "generateIdentity");
	int ret;

	if (!enc)
		return 0;
	if (ref && (ret = bop__rec_check_ref(r, ref, "spec.encryption.recipientsSecretRef", false,
		    true)))
		return ret;
	if ((ret = check_child(r, enc, "spec.encryption", "generateIdentity", generate_fields)))
		return ret;
	if (gen && !bop__rec_name_valid(bop__rec_str(gen, "secretName")))
		return bop__rec_invalid(r, "InvalidSpec", "spec.encryption.generateIdentity.secretName: "
			"required, the name of the Secret (made when missing) for the age identity");
	if (!ref && (!list || !json_object_array_length(list)) && !gen)
		return bop__rec_invalid(r, "InvalidSpec", "spec.encryption: give recipientsSecretRef, "
			"recipients or generateIdentity");
	ref = bop__rec_get(enc, "identitySecretRef");
	if (ref && gen)
		return bop__rec_invalid(r, "InvalidSpec", "spec.encryption: give either "
			"identitySecretRef or generateIdentity, not both");
	if (ref && (ret = bop__rec_check_ref(r, ref, "spec.encryption.identitySecretRef", false,
		    true)))
		return ret;
	return 0;
}

/* A DNS subdomain (RFC 1123), as Kubernetes names Secrets. */
bool bop__rec_name_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (!n || n > 253 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-' ||
		    s[i] == '.'))
			return false;
	return true;
}

/* The identity for restores and verifications through the runner: the Secret's text (an
 * age-keygen file) becomes the config Secret's file BOP__REC_IDENTITY_KEY. Checked here so
 * a wrong key shows as a condition, not as a failed restore later. */
static int add_identity(bop_reconcile_t *r, json_object *block, json_object *ref)
{
	const char *field = "spec.encryption.identitySecretRef";
	char *text = NULL, *copy = NULL, *line, *save = NULL;
	bop_keys_t *keys = NULL;
	size_t len = 0, n = 0;
	int ret;

	ret = bop__rec_secret_value(r, field, r->ns, bop__rec_str(ref, "name"),
		bop__rec_str(ref, "key"), false, &text, &len);
	if (ret)        /* BOP__REC_INVALID too: r is only marked valid once all is built */
		goto out;
	if (!(copy = bop__strdup(text)) || bop_keys_new(&keys)) {
		ret = bop__error_oom();
		goto out;
	}
	for (line = strtok_r(copy, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
		if (strncmp(line, "AGE-SECRET-KEY-1", 16))
			continue;
		n++;
		if (bop_keys_add_identity(keys, line) < 0) {
			/* the library's message never quotes the key */
			ret = bop__rec_invalid(r, "InvalidSpec", "%s: identity %zu: %s", field, n,
				bop_error_last());
			goto out;
		}
	}
	if (!n) {
		ret = bop__rec_invalid(r, "InvalidSpec", "%s: no age identity (AGE-SECRET-KEY-1...) "
			"in it", field);
		goto out;
	}
	ret = bop__rec_add(r->files, BOP__REC_IDENTITY_KEY, json_object_new_string_len(text,
		(int)len));
	if (!ret)
		ret = bop__rec_add(block, "identityFile", json_object_new_string(BOP__REC_IDENTITY_KEY));
out:
	bop_keys_free(keys);
	if (copy)
		bop__wipe(copy, strlen(copy));
	if (text)
		bop__wipe(text, len);
	free(copy);
	free(text);
	return ret;
}

/* spec.encryption.generateIdentity: the controller makes Secret <secretName> (keys
 * BOP_RECONCILE_GENERATED_IDENTITY_KEY and ..._RECIPIENT_KEY, see reconcile.h) when it is
 * missing and never writes it again. Here it is only read: its identity goes to the runner
 * like identitySecretRef's, and its recipient joins the others (derived from the identity,
 * so what the runner encrypts to is what it can decrypt). A Secret of that name that holds
 * no usable identity is a condition, never a reason to replace it. */
static int add_generated_identity(bop_reconcile_t *r, json_object *block, json_object *list,
	json_object *gen)
{
	const char *field = "spec.encryption.generateIdentity", *name = bop__rec_str(gen, "secretName");
	char *text = NULL, *copy = NULL, *line, *save = NULL, *rcp = NULL;
	size_t len = 0, n = 0;
	int ret;

	ret = bop__rec_secret_value(r, field, r->ns, name, BOP_RECONCILE_GENERATED_IDENTITY_KEY,
		true, &text, &len);
	if (ret)
		goto out;
	if (!text || strlen(text) != len) {
		ret = bop__rec_invalid(r, "IdentitySecretInvalid", "%s: Secret %s/%s exists but has "
			"no usable key \"%s\"; it is never overwritten (it may hold the only key to "
			"older backups): name another secretName, or move that Secret away if nothing "
			"in it is needed", field, r->ns, name, BOP_RECONCILE_GENERATED_IDENTITY_KEY);
		goto out;
	}
	if (!(copy = bop__strdup(text))) {
		ret = bop__error_oom();
		goto out;
	}
	for (line = strtok_r(copy, "\r\n", &save); line && !ret;
	     line = strtok_r(NULL, "\r\n", &save)) {
		json_object *v;

		if (strncmp(line, "AGE-SECRET-KEY-1", 16))
			continue;
		n++;
		if (bop_age_identity_to_recipient(&rcp, line) < 0) {
			/* the library's message never quotes the key */
			ret = bop__rec_invalid(r, "IdentitySecretInvalid", "%s: Secret %s/%s key \"%s\": "
				"identity %zu: %s; the Secret is never overwritten", field, r->ns, name,
				BOP_RECONCILE_GENERATED_IDENTITY_KEY, n, bop_error_last());
			break;
		}
		v = json_object_new_string(rcp);
		if (!v || json_object_array_add(list, v) < 0) {
			json_object_put(v);
			ret = bop__error_oom();
		}
		bop_free(rcp);
		rcp = NULL;
	}
	if (!ret && !n)
		ret = bop__rec_invalid(r, "IdentitySecretInvalid", "%s: Secret %s/%s key \"%s\" holds "
			"no age identity (AGE-SECRET-KEY-1...); the Secret is never overwritten", field,
			r->ns, name, BOP_RECONCILE_GENERATED_IDENTITY_KEY);
	if (!ret)
		ret = bop__rec_add(r->files, BOP__REC_IDENTITY_KEY, json_object_new_string_len(text,
			(int)len));
	if (!ret)
		ret = bop__rec_add(block, "identityFile", json_object_new_string(BOP__REC_IDENTITY_KEY));
out:
	if (copy)
		bop__wipe(copy, strlen(copy));
	if (text)
		bop__wipe(text, len);
	free(copy);
	free(text);
	return ret;
}

static int check_pod_selector(bop_reconcile_t *r)
{
	json_object *sel = bop__rec_get(bop__rec_get(bop__rec_get(r->spec, "runner"), "affinity"),
		"podSelector");

	if (!sel)
		return 0;
	json_object_object_foreach(sel, key, val) {
		if (!val || !json_object_is_type(val, json_type_string) ||
		    strlen(json_object_get_string(val)) > 63 || !*key)
			return bop__rec_invalid(r, "InvalidSpec", "spec.runner.affinity.podSelector.%s: "
				"expected a label value (a string of at most 63 characters)", key);
	}
	return 0;
}

static int check_level(bop_reconcile_t *r)
{
	json_object *c = bop__rec_get(r->spec, "compression");
	const char *alg = bop__rec_str(c, "algorithm");
	json_object *level = bop__rec_get(c, "level");
	int64_t v = level ? json_object_get_int64(level) : 0;

	if (!level || !v)
		return 0;
	if ((!alg || !strcmp(alg, "zstd")) && v > 19)
		return bop__rec_invalid(r, "InvalidSpec", "spec.compression.level: zstd levels are "
			"1 to 19");
	if (alg && !strcmp(alg, "gzip") && v > 9)
		return bop__rec_invalid(r, "InvalidSpec", "spec.compression.level: gzip levels are "
			"1 to 9");
	return 0;
}

static int check_verification(bop_reconcile_t *r)
{
	json_object *ver = bop__rec_get(r->spec, "verification");
	json_object *restore = bop__rec_get(ver, "restore");
	json_object *engine = bop__rec_get(restore, "engine");
	const char *name;
	unsigned int caps;
	int ret;

	if (!ver)
		return 0;
	if ((ret = check_child(r, ver, "spec.verification", "restore", verify_restore_fields)) ||
	    (engine && (ret = check_engine(r, engine, "spec.verification.restore.engine"))))
		return ret;
	if (!bop__rec_get(ver, "expectRows") && !bop__rec_get(restore, "expectRows"))
		return 0;
	name = engine ? engine_name(engine) : NULL;
	if (!name || bop_engine_capabilities(&caps, name) < 0 || !(caps & BOP_ENGINE_COUNTS_ROWS))
		return invalid_engine(r, "InvalidSpec", BOP_ENGINE_COUNTS_ROWS,
			"spec.verification.expectRows: needs verification.restore.engine with an "
			"engine that counts the restored rows in its scratch database");
	return 0;
}


static int check_tools_security(bop_reconcile_t *r, json_object *sc)
{
	static const char *const seccomp[] = { "RuntimeDefault", "Localhost", NULL };
	static const char *const path = "spec.runner.tools.securityContext";
	json_object *caps = bop__rec_get(sc, "capabilities");
	int ret;

	if (!sc)
		return 0;
	if (caps && json_object_is_type(caps, json_type_object) && bop__rec_get(caps, "add"))
		return bop__rec_invalid(r, "InvalidSpec", "%s.capabilities.add: not taken: the "
			"tools container runs in the controller's namespace with every capability "
			"dropped", path);
	if ((ret = bop__rec_check_fields(r, sc, path, tools_sc_fields)) ||
	    (caps && (ret = bop__rec_check_fields(r, caps, "spec.runner.tools.securityContext."
		"capabilities", tools_caps_fields))) ||
	    (bop__rec_get(sc, "seccompProfile") &&
	     ((ret = bop__rec_check_fields(r, bop__rec_get(sc, "seccompProfile"),
		"spec.runner.tools.securityContext.seccompProfile", tools_seccomp_fields)) ||
	      (ret = check_enum(r, bop__rec_get(sc, "seccompProfile"),
		"spec.runner.tools.securityContext.seccompProfile", "type", seccomp)))))
		return ret;
	if (json_object_get_boolean(bop__rec_get(sc, "privileged")) ||
	    json_object_get_boolean(bop__rec_get(sc, "allowPrivilegeEscalation")))
		return bop__rec_invalid(r, "InvalidSpec", "%s.%s: must be false: the tools "
			"container runs in the controller's namespace", path,
			json_object_get_boolean(bop__rec_get(sc, "privileged")) ? "privileged" :
			"allowPrivilegeEscalation");
	return 0;
}

/* spec.runner.tools: an image, a known pull policy, and an engine that runs commands. */
static int check_tools(bop_reconcile_t *r)
{
	static const char *const policies[] = { "Always", "IfNotPresent", "Never", NULL };
	json_object *tools = bop__rec_get(bop__rec_get(r->spec, "runner"), "tools");
	json_object *env = bop__rec_get(tools, "env");
	const char *image = bop__rec_str(tools, "image");
	const char *engine = engine_name(bop__rec_get(r->spec, "engine"));
	int ret;

	if (!tools)
		return 0;
	if ((ret = bop__rec_check_fields(r, tools, "spec.runner.tools", tools_fields)) ||
	    (ret = check_enum(r, tools, "spec.runner.tools", "imagePullPolicy", policies)))
		return ret;
	if (!image || !*image)
		return bop__rec_invalid(r, "InvalidSpec", "spec.runner.tools.image: required (the "
			"image whose programs the exec engine runs, e.g. mongo:7)");
	for (size_t i = 0; env && i < json_object_array_length(env); i++) {
		json_object *e = json_object_array_get_idx(env, i);
		const char *name = bop__rec_str(e, "name");

		json_object *from = bop__rec_get(e, "valueFrom");

		if (!json_object_is_type(e, json_type_object) || !name || !*name)
			return bop__rec_invalid(r, "InvalidSpec", "spec.runner.tools.env[%zu]: an "
				"object with a name, as a container's env", i);
		/* The runner pod lives in the controller's namespace: a key reference there would
		 * read that namespace's Secrets (other runners' configs, the controller's key),
		 * not the schedule's. */
		if (bop__rec_get(from, "secretKeyRef") || bop__rec_get(from, "configMapKeyRef"))
			return bop__rec_invalid(r, "InvalidSpec", "spec.runner.tools.env[%zu] (%s): "
				"valueFrom.%s is not taken: the runner pod runs in the controller's "
				"namespace, where it would read that namespace's objects, not this one's; "
				"give a secret to the commands through the exec engine's env "
				"(env: {%sSecretRef: {name, key}}, from this namespace) or a template's "
				"varsSecretRef", i, name, bop__rec_get(from, "secretKeyRef") ?
				"secretKeyRef" : "configMapKeyRef", name);
	}
	if ((ret = check_tools_security(r, bop__rec_get(tools, "securityContext"))))
		return ret;
	if (engine && strcmp(engine, "exec"))
		return bop__rec_invalid(r, "InvalidSpec", "spec.runner.tools: only the exec engine "
			"runs its commands in the tools container, and spec.engine is %s", engine);
	return 0;
}

static int check_structure(bop_reconcile_t *r)
{
	static const char *const policies[] = { "Forbid", "Replace", NULL };
	static const char *const modes[] = { "catalog", "single", NULL };
	static const char *const algorithms[] = { "zstd", "gzip", "none", NULL };
	json_object *spec = r->spec;
	const char *within;
	int ret;

	if ((ret = bop__rec_check_fields(r, spec, "spec", spec_fields)) ||
	    (ret = check_enum(r, spec, "spec", "concurrencyPolicy", policies)) ||
	    (ret = check_enum(r, spec, "spec", "mode", modes)) ||
	    (ret = check_engine(r, bop__rec_get(spec, "engine"), "spec.engine")) ||
	    (ret = check_child(r, spec, "spec", "storage", storage_fields)) ||
	    (ret = check_child(r, spec, "spec", "compression", compression_fields)) ||
	    (ret = check_enum(r, bop__rec_get(spec, "compression"), "spec.compression",
		    "algorithm", algorithms)) ||
	    (ret = check_level(r)) ||
	    (ret = check_child(r, spec, "spec", "encryption", encryption_fields)) ||
	    (ret = check_encryption(r)) ||
	    (ret = check_child(r, spec, "spec", "retention", retention_fields)) ||
	    (ret = check_child(r, spec, "spec", "historyLimits", history_fields)) ||
	    (ret = check_child(r, spec, "spec", "deadlines", deadline_fields)) ||
	    (ret = check_child(r, spec, "spec", "verification", verification_fields)) ||
	    (ret = check_verification(r)) ||
	    (ret = check_child(r, spec, "spec", "runner", runner_fields)) ||
	    (ret = check_child(r, bop__rec_get(spec, "runner"), "spec.runner", "affinity",
		    affinity_fields)) ||
	    (ret = check_child(r, bop__rec_get(spec, "runner"), "spec.runner", "resources",
		    resources_fields)) ||
	    (ret = check_pod_selector(r)) ||
	    (ret = check_tools(r)))
		return ret;
	within = bop__rec_str(bop__rec_get(spec, "retention"), "keepWithin");
	if (within && !duration_valid(within))
		return bop__rec_invalid(r, "InvalidSpec", "spec.retention.keepWithin: \"%s\" is not "
			"a duration such as 7d, 12h, 1w2d or 90m", within);
	if (!r->storage_name || !*r->storage_name)
		return bop__rec_invalid(r, "InvalidSpec", "spec.storage.name: required (the "
			"BackupStorage to use)");
	return 0;
}

int bop__rec_check_spec(bop_reconcile_t *r)
{
	const char *path;
	int ret;

	if ((ret = bop__rec_apply_template(r)) || (ret = check_structure(r)) ||
	    (ret = check_schedules(r)))
		return ret;
	path = bop__rec_str(bop__rec_get(r->spec, "storage"), "path");
	return bop__rec_render_path(r, path && *path ? path : DEFAULT_PATH, &r->catalog);
}

/* ---- the runner config ---- */

static int copy_member(json_object *to, json_object *from, const char *key)
{
	json_object *v = bop__rec_get(from, key);

	if (!v)
		return 0;
	return bop__rec_add(to, key, bop__rec_sorted_copy(v));
}

/* Recipients, one per line of the Secret's value (blank lines and # comments skipped,
 * as in an age recipients file), each checked as age would. */
static int add_recipients(bop_reconcile_t *r, json_object *list, const char *text,
	const char *field)
{
	bop_keys_t *keys = NULL;
	char *copy = bop__strdup(text), *line, *save = NULL;
	int ret = copy ? bop_keys_new(&keys) : BOP_ENOMEM;
	size_t n = 0;

	for (line = copy && !ret ? strtok_r(copy, "\r\n", &save) : NULL; line && !ret;
	     line = strtok_r(NULL, "\r\n", &save)) {
		char *end;

		while (*line == ' ' || *line == '\t')
			line++;
		for (end = line + strlen(line); end > line && (end[-1] == ' ' || end[-1] == '\t'); )
			*--end = '\0';
		if (!*line || *line == '#')
			continue;
		n++;
		if (bop_keys_add_recipient(keys, line) < 0) {
			ret = bop__rec_invalid(r, "InvalidSpec", "%s: recipient %zu: %s", field, n,
				bop_error_last());
		} else {
			json_object *v = json_object_new_string(line);

			if (!v || json_object_array_add(list, v) < 0) {
				json_object_put(v);
				ret = bop__error_oom();
			}
		}
	}
	if (!ret && !n)
		ret = bop__rec_invalid(r, "InvalidSpec", "%s: no recipients in it", field);
	bop_keys_free(keys);
	free(copy);
	return ret;
}

static int build_encryption(bop_reconcile_t *r, json_object **out)
{
	json_object *enc = bop__rec_get(r->spec, "encryption");
	json_object *ref = bop__rec_get(enc, "recipientsSecretRef");
	json_object *inline_list = bop__rec_get(enc, "recipients");
	json_object *list = NULL, *block = NULL;
	const char *field = "spec.encryption.recipientsSecretRef";
	char *text = NULL;
	size_t len = 0;
	int ret = BOP_ENOMEM;

	*out = NULL;
	if (!enc)
		return 0;
	if (!(block = json_object_new_object()) || !(list = json_object_new_array()))
		goto out;
	if (ref && ((ret = bop__rec_secret_value(r, field, r->ns, bop__rec_str(ref, "name"),
		    bop__rec_str(ref, "key"), false, &text, &len)) ||
	    (ret = add_recipients(r, list, text, field))))
		goto out;
	for (size_t i = 0; inline_list && i < json_object_array_length(inline_list); i++) {
		const char *rcp = json_object_get_string(json_object_array_get_idx(inline_list, i));
		char *f = bop__sprintf("spec.encryption.recipients[%zu]", i);

		ret = f ? add_recipients(r, list, rcp, f) : BOP_ENOMEM;
		free(f);
		if (ret)
			goto out;
	}
	if (bop__rec_get(enc, "generateIdentity") &&
	    (ret = add_generated_identity(r, block, list, bop__rec_get(enc, "generateIdentity"))))
		goto out;
	if ((ret = bop__rec_add(block, "recipients", list)))
		goto out;
	list = NULL;
	if (bop__rec_get(enc, "identitySecretRef") &&
	    (ret = add_identity(r, block, bop__rec_get(enc, "identitySecretRef"))))
		goto out;
	*out = block;
	block = NULL;
out:
	free(text);
	json_object_put(list);
	json_object_put(block);
	return ret;
}

static int build_verification(bop_reconcile_t *r, json_object **out)
{
	json_object *ver = bop__rec_get(r->spec, "verification");
	json_object *restore = bop__rec_get(ver, "restore");
	json_object *engine = bop__rec_get(restore, "engine");
	json_object *copy = bop__rec_sorted_copy(ver), *built = NULL;
	int ret = 0;

	*out = NULL;
	if (!ver)
		return 0;
	if (!copy)
		return BOP_ENOMEM;
	if (engine) {
		ret = build_engine(r, engine, "spec.verification.restore.engine", &built, NULL);
		if (!ret)
			ret = bop__rec_add(bop__rec_get(copy, "restore"), "engine", built);
	}
	if (ret) {
		json_object_put(copy);
		return ret;
	}
	*out = copy;
	return 0;
}

static int build_api(bop_reconcile_t *r, json_object **out)
{
	json_object *api = json_object_new_object();
	char *listen = bop__sprintf(":%u", r->port);
	char *url = bop__sprintf("http://%s.%s.svc:%u", r->object_name, r->target_ns, r->port);
	int ret = api && listen && url ? 0 : BOP_ENOMEM;

	if (!ret)
		ret = bop__rec_add(api, "listen", json_object_new_string(listen));
	if (!ret && r->token)
		ret = bop__rec_add(api, "token", json_object_new_string(r->token));
	if (!ret)
		ret = bop__rec_add(api, "advertiseURL", json_object_new_string(url));
	free(listen);
	free(url);
	if (ret) {
		json_object_put(api);
		return ret;
	}
	*out = api;
	return 0;
}

/* The runner's metrics listener: no token, nothing secret (backupop-runner(8)). */
static int build_metrics(bop_reconcile_t *r, json_object *config)
{
	char *listen = bop__sprintf(":%u", r->metrics_port);
	json_object *m = listen ? json_object_new_object() : NULL;
	int ret = m ? bop__rec_add(m, "listen", json_object_new_string(listen)) : bop__error_oom();

	free(listen);
	if (ret) {
		json_object_put(m);
		return ret;
	}
	return bop__rec_add(config, "metrics", m);
}

/* Adds a block that a builder made (nothing when it made none). */
static int add_built(json_object *config, const char *key, int ret, json_object *block)
{
	if (ret || !block) {
		json_object_put(block);
		return ret;
	}
	return bop__rec_add(config, key, block);
}

int bop__rec_build_config(bop_reconcile_t *r)
{
	static const char *const plain_head[] = { "schedule", "timeZone", "suspend",
		"startingDeadlineSeconds", "concurrencyPolicy", "mode", NULL };
	static const char *const plain_tail[] = { "compression", NULL };
	static const char *const plain_rest[] = { "retention", "historyLimits", "deadlines", NULL };
	json_object *c, *block = NULL;
	int ret;

	if (!(c = r->config = json_object_new_object()) || !(r->files = json_object_new_object()))
		return bop__error_oom();
	if ((ret = bop__rec_add(c, "namespace", json_object_new_string(r->ns))) ||
	    (ret = bop__rec_add(c, "scheduleName", json_object_new_string(r->name))) ||
	    (ret = bop__rec_add(c, "name", json_object_new_string(r->catalog))))
		return ret;
	for (size_t i = 0; plain_head[i]; i++)
		if ((ret = copy_member(c, r->spec, plain_head[i])))
			return ret;
	ret = build_engine(r, bop__rec_get(r->spec, "engine"), "spec.engine", &block, &r->pod_patch);
	if ((ret = add_built(c, "engine", ret, block)))
		return ret;
	ret = bop__rec_storage_config(r, &block);
	if ((ret = add_built(c, "storage", ret, block)))
		return ret;
	for (size_t i = 0; plain_tail[i]; i++)
		if ((ret = copy_member(c, r->spec, plain_tail[i])))
			return ret;
	ret = build_encryption(r, &block);
	if ((ret = add_built(c, "encryption", ret, block)))
		return ret;
	for (size_t i = 0; plain_rest[i]; i++)
		if ((ret = copy_member(c, r->spec, plain_rest[i])))
			return ret;
	ret = build_verification(r, &block);
	if ((ret = add_built(c, "verification", ret, block)) ||
	    (ret = copy_member(c, r->spec, "tags")))
		return ret;
	ret = build_api(r, &block);
	if ((ret = add_built(c, "api", ret, block)))
		return ret;
	return build_metrics(r, c);
}
