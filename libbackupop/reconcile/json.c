/* JSON and hash helpers of the reconcile module (json-c and OpenSSL). */
#include "rec.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

int bop__rec_parse(json_object **out, const char *text, const char *what)
{
	json_tokener *tok;
	json_object *obj;
	size_t len;

	*out = NULL;
	if (!text)
		return bop__error(BOP_EFORMAT, "%s: no JSON given", what);
	len = strlen(text);
	if (len > BOP__REC_INPUT_MAX)
		return bop__error(BOP_EFORMAT, "%s: %zu bytes of JSON, more than the %u allowed",
			what, len, BOP__REC_INPUT_MAX);
	tok = json_tokener_new_ex(64);
	if (!tok)
		return bop__error_oom();
	obj = json_tokener_parse_ex(tok, text, (int)len);
	if (!obj || json_tokener_get_error(tok) != json_tokener_success ||
	    tok->char_offset != (int)len) {
		enum json_tokener_error err = json_tokener_get_error(tok);

		json_object_put(obj);
		json_tokener_free(tok);
		return bop__error(BOP_EFORMAT, "%s: invalid JSON: %s", what,
			err == json_tokener_success || err == json_tokener_continue ?
			"unexpected end or trailing data" : json_tokener_error_desc(err));
	}
	json_tokener_free(tok);
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		return bop__error(BOP_EFORMAT, "%s: expected a JSON object", what);
	}
	*out = obj;
	return 0;
}

json_object *bop__rec_get(json_object *obj, const char *key)
{
	json_object *v = NULL;

	if (!obj || !json_object_is_type(obj, json_type_object))
		return NULL;
	if (!json_object_object_get_ex(obj, key, &v))
		return NULL;
	return v;
}

const char *bop__rec_str(json_object *obj, const char *key)
{
	json_object *v = bop__rec_get(obj, key);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static json_object *sorted_object(json_object *v)
{
	size_t n = (size_t)json_object_object_length(v), i = 0;
	const char **keys = bop__calloc(n, sizeof(*keys));
	json_object *copy = keys ? json_object_new_object() : NULL;

	if (!copy)
		goto fail;
	json_object_object_foreach(v, key, val) {
		(void)val;
		keys[i++] = key;
	}
	qsort(keys, n, sizeof(*keys), cmp_keys);
	for (i = 0; i < n; i++) {
		json_object *child = json_object_object_get(v, keys[i]);
		json_object *c = child ? bop__rec_sorted_copy(child) : NULL;

		if ((child && !c) || json_object_object_add(copy, keys[i], c) < 0) {
			json_object_put(c);
			goto fail;
		}
	}
	free(keys);
	return copy;
fail:
	free(keys);
	json_object_put(copy);
	bop__error_oom();
	return NULL;
}

json_object *bop__rec_sorted_copy(json_object *v)
{
	json_object *copy = NULL;

	if (!v)
		return NULL;
	switch (json_object_get_type(v)) {
	case json_type_object:
		return sorted_object(v);
	case json_type_array:
		copy = json_object_new_array();
		for (size_t i = 0; copy && i < json_object_array_length(v); i++) {
			json_object *item = json_object_array_get_idx(v, i);
			json_object *c = item ? bop__rec_sorted_copy(item) : NULL;

			if ((item && !c) || json_object_array_add(copy, c) < 0) {
				json_object_put(c);
				json_object_put(copy);
				copy = NULL;
			}
		}
		break;
	case json_type_null:
		return NULL;
	case json_type_boolean:
	case json_type_double:
	case json_type_int:
	case json_type_string:
		if (json_object_deep_copy(v, &copy, NULL) < 0)
			copy = NULL;
		break;
	}
	if (!copy)
		bop__error_oom();
	return copy;
}

int bop__rec_merge_patch(json_object **target, json_object *patch)
{
	if (!patch || !json_object_is_type(patch, json_type_object)) {
		json_object *copy = bop__rec_sorted_copy(patch);

		if (patch && !copy)
			return BOP_ENOMEM;
		json_object_put(*target);
		*target = copy;
		return 0;
	}
	if (!*target || !json_object_is_type(*target, json_type_object)) {
		json_object_put(*target);
		if (!(*target = json_object_new_object()))
			return bop__error_oom();
	}
	json_object_object_foreach(patch, key, val) {
		json_object *cur = NULL;
		int ret;

		if (!val) {
			json_object_object_del(*target, key);
			continue;
		}
		if (json_object_object_get_ex(*target, key, &cur))
			json_object_get(cur);
		if ((ret = bop__rec_merge_patch(&cur, val)) < 0) {
			json_object_put(cur);
			return ret;
		}
		if (json_object_object_add(*target, key, cur) < 0) {
			json_object_put(cur);
			return bop__error_oom();
		}
	}
	return 0;
}

char *bop__rec_to_string(json_object *v)
{
	return bop__strdup(json_object_to_json_string_ext(v,
		JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

int bop__rec_add(json_object *obj, const char *key, json_object *value)
{
	if (!value || json_object_object_add(obj, key, value) < 0) {
		json_object_put(value);
		return bop__error_oom();
	}
	return 0;
}

json_object *bop__rec_string(const char *s)
{
	return json_object_new_string(s ? s : "");
}

void bop__rec_sha256_hex(char out[65], const void *data, size_t len)
{
	unsigned char md[32];
	unsigned int n = 0;

	if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) || n != sizeof(md))
		memset(md, 0, sizeof(md));
	bop__hex(out, md, sizeof(md));
}
