/* The strict JSON reading shared by the engines' configurations. */
#include "engine/config.h"

#include <string.h>

#define CONFIG_MAX (1u << 20)
/* The same bound as the config file's (backupop-config(5)). */
#define CONFIG_MAX_DEPTH 64

int bop__engine_config_parse(const char *text, const char *example, json_object **out)
{
	size_t len = strlen(text);
	enum json_tokener_error jerr;
	json_object *obj = NULL;
	json_tokener *tok;
	size_t end;
	int ret = 0;

	*out = NULL;
	if (len == strspn(text, " \t\r\n"))
		return bop__error(BOP_EINVAL, "the configuration is empty; give a JSON object, e.g. %s",
			example);
	if (len > CONFIG_MAX)
		return bop__error(BOP_EINVAL, "the configuration is larger than %u bytes", CONFIG_MAX);
	tok = json_tokener_new_ex(CONFIG_MAX_DEPTH);
	if (!tok)
		return bop__error_oom();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, text, (int)len);
	jerr = json_tokener_get_error(tok);
	if (jerr == json_tokener_continue)
		jerr = json_tokener_error_parse_eof;
	end = json_tokener_get_parse_end(tok);
	if (jerr == json_tokener_success && text[end + strspn(text + end, " \t\r\n")])
		jerr = json_tokener_error_parse_unexpected;
	if (jerr == json_tokener_error_depth)
		ret = bop__error(BOP_EINVAL, "the configuration is not accepted: nesting deeper than "
			"%d levels near byte %zu", CONFIG_MAX_DEPTH, end);
	else if (jerr != json_tokener_success)
		ret = bop__error(BOP_EINVAL, "the configuration is not valid JSON: %s near byte %zu",
			json_tokener_error_desc(jerr), end);
	else if (!json_object_is_type(obj, json_type_object))
		ret = bop__error(BOP_EINVAL, "the configuration must be a JSON object, e.g. %s", example);
	json_tokener_free(tok);
	if (ret < 0) {
		json_object_put(obj);
		return ret;
	}
	*out = obj;
	return 0;
}

int bop__engine_config_object(json_object *val, const char *name, const char *example,
	int (*member)(void *ud, const char *key, json_object *val), void *ud)
{
	int ret;

	if (!json_object_is_type(val, json_type_object))
		return bop__error(BOP_EINVAL, "\"%s\" must be an object, e.g. %s", name, example);
	json_object_object_foreach(val, key, v) {
		if ((ret = member(ud, key, v)) < 0)
			return ret;
	}
	return 0;
}

int bop__engine_unknown_field(const char *name, const char *key, const char *known)
{
	if (!name)
		return bop__error(BOP_EINVAL, "unknown field \"%s\" (known fields: %s)", key, known);
	return bop__error(BOP_EINVAL, "unknown field \"%s.%s\" (known fields of \"%s\": %s)",
		name, key, name, known);
}

int bop__engine_config_read(const char *text, const char *example,
	int (*field)(void *ud, const char *key, json_object *val), void *ud)
{
	json_object *config = NULL;
	int ret = bop__engine_config_parse(text, example, &config);

	if (ret < 0)
		return ret;
	json_object_object_foreach(config, key, val) {
		if ((ret = field(ud, key, val)) < 0)
			break;
	}
	json_object_put(config);
	return ret < 0 ? ret : 0;
}

int bop__engine_kind_open(bop_engine_t **out, const char *config_json, void *payload)
{
	const bop__engine_kind_t *kind = payload;
	bop_engine_t *e = bop__calloc(1, kind->size);
	int ret;

	if (!e)
		return BOP_ENOMEM;
	*e = kind->ops;
	ret = kind->defaults ? kind->defaults(e) : 0;
	if (ret == 0)
		ret = bop__engine_config_read(config_json, kind->example, kind->field, e);
	if (ret == 0 && kind->check)
		ret = kind->check(e);
	if (ret < 0) {
		kind->ops.free(e);
		return ret;
	}
	*out = e;
	return 0;
}
