/* Secret references: {name, key} (and namespace where the referrer is cluster-scoped). */
#include "rec.h"
#include "util/base64.h"

#include <stdlib.h>
#include <string.h>

static bool known(const char *key, bool with_ns)
{
	return !strcmp(key, "name") || !strcmp(key, "key") || (with_ns && !strcmp(key, "namespace"));
}

int bop__rec_check_ref(bop_reconcile_t *r, json_object *ref, const char *field, bool with_ns,
	bool key_required)
{
	const char *must[3] = { "name", key_required ? "key" : NULL, with_ns ? "namespace" : NULL };

	if (!json_object_is_type(ref, json_type_object))
		return bop__rec_invalid(r, "InvalidSpec", "%s: expected {%sname%s}", field,
			with_ns ? "namespace, " : "", key_required ? ", key" : "");
	json_object_object_foreach(ref, k, v) {
		if (!known(k, with_ns))
			return bop__rec_invalid(r, "InvalidSpec", "%s.%s: unknown field", field, k);
		if (!v || !json_object_is_type(v, json_type_string) || !*json_object_get_string(v))
			return bop__rec_invalid(r, "InvalidSpec", "%s.%s: expected a non-empty string",
				field, k);
	}
	for (size_t i = 0; i < BOP_ARRAY_SIZE(must); i++)
		if (must[i] && !bop__rec_str(ref, must[i]))
			return bop__rec_invalid(r, "InvalidSpec", "%s.%s: required", field, must[i]);
	return 0;
}

/* The key's value from data (base64) or, as written by hand, stringData. */
static int key_value(json_object *secret, const char *key, char **value, size_t *len)
{
	const char *b64 = bop__rec_str(bop__rec_get(secret, "data"), key);
	const char *plain = bop__rec_str(bop__rec_get(secret, "stringData"), key);

	if (b64)
		return bop__base64_decode((unsigned char **)value, len, b64, strlen(b64));
	if (!plain)
		return BOP_ENOTFOUND;
	*len = strlen(plain);
	*value = bop__strdup(plain);
	return *value ? 0 : BOP_ENOMEM;
}

int bop__rec_secret_value(bop_reconcile_t *r, const char *field, const char *ns,
	const char *name, const char *key, bool optional, char **value, size_t *len)
{
	json_object *secret = NULL;
	char *text = NULL;
	int ret;

	*value = NULL;
	*len = 0;
	ret = r->lookup(&text, "Secret", ns, name, r->ud);
	if (ret == BOP_ENOTFOUND) {
		ret = bop__rec_invalid(r, "SecretNotFound", "Secret %s/%s (%s) not found", ns, name,
			field);
		goto out;
	}
	if (ret < 0) {
		bop__error_wrap("looking up Secret %s/%s", ns, name);
		goto out;
	}
	if ((ret = bop__rec_parse(&secret, text, "Secret")) < 0) {
		bop__error_wrap("Secret %s/%s", ns, name);
		goto out;
	}
	ret = key_value(secret, key, value, len);
	if (ret == BOP_ENOTFOUND && optional)
		ret = 0;
	else if (ret == BOP_ENOTFOUND)
		ret = bop__rec_invalid(r, "SecretKeyNotFound", "Secret %s/%s has no key \"%s\" (%s)",
			ns, name, key, field);
	else if (ret == BOP_EFORMAT)
		ret = bop__rec_invalid(r, "InvalidSpec", "Secret %s/%s key \"%s\" (%s): not valid "
			"base64", ns, name, key, field);
out:
	if (secret) {
		/* the parsed copy holds the values too */
		json_object_put(secret);
	}
	bop__free_wiped(text);
	return ret;
}

BOP_EXTERN(int) bop_reconcile_secret_value(char **value, size_t *len, const char *secret,
	const char *key)
{
	json_object *o = NULL;
	int ret;

	if (!value || !len || !key)
		return bop__error(BOP_EINVAL, "bop_reconcile_secret_value: value, len and key are "
			"required");
	*value = NULL;
	*len = 0;
	if ((ret = bop__rec_parse(&o, secret, "Secret")) < 0)
		return ret;
	if (!json_object_is_type(o, json_type_object))
		ret = bop__error(BOP_EFORMAT, "Secret: not a JSON object");
	else if ((ret = key_value(o, key, value, len)) == BOP_ENOTFOUND)
		ret = bop__error(BOP_ENOTFOUND, "the Secret has no key \"%s\"", key);
	else if (ret == BOP_EFORMAT)
		bop__error_wrap("the Secret's key \"%s\"", key);
	json_object_put(o);
	return ret;
}
