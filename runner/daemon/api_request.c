/* Checks of what arrives through the runner's API. See api_request.h. */
#include "api_request.h"

#include <backupop.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUOTED_MAX 64
#define JSON_DEPTH 8

/* Up to QUOTED_MAX characters of `s`, printable ASCII only, "..." when cut. */
static void quote(char *out, size_t size, const char *s)
{
	size_t i = 0, n = 0;

	for (; s[i] && i < QUOTED_MAX && n + 2 < size; i++)
		out[n++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	out[n] = '\0';
	if (s[i] && n + 4 < size)
		strcat(out, "...");
}

bool api_backup_id_ok(const char *id, char *why, size_t whylen)
{
	char shown[QUOTED_MAX + 4];

	if (id && bop_catalog_id_valid(id))
		return true;
	quote(shown, sizeof(shown), id ? id : "");
	snprintf(why, whylen, "invalid backup id \"%s\" (%zu bytes): a backup id is 1 to 128 "
		"letters, digits, '.', '_' or '-', starting with a letter or digit", shown,
		id ? strlen(id) : (size_t)0);
	return false;
}

bool api_request_id_ok(const char *id, char *why, size_t whylen)
{
	char shown[QUOTED_MAX + 4];
	size_t n = id ? strlen(id) : 0;
	bool good = n > 0 && n <= API_REQUEST_ID_MAX;

	for (size_t i = 0; good && i < n; i++) {
		char c = id[i];

		good = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			c == '.' || c == '_' || c == ':' || c == '-';
	}
	if (good)
		return true;
	quote(shown, sizeof(shown), id ? id : "");
	snprintf(why, whylen, "invalid requestId \"%s\" (%zu bytes): 1 to %d letters, digits, "
		"'.', '_', ':' or '-'", shown, n, API_REQUEST_ID_MAX);
	return false;
}

bool api_database_name_ok(const char *name, char *why, size_t whylen)
{
	char shown[QUOTED_MAX + 4];
	size_t n = name ? strlen(name) : 0;
	const char *bad = NULL;

	for (size_t i = 0; i < n && !bad; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		    (i > 0 && ((c >= '0' && c <= '9') || c == '-'))))
			bad = &name[i];
	}
	if (n && n <= API_DATABASE_MAX && !bad)
		return true;
	quote(shown, sizeof(shown), name ? name : "");
	snprintf(why, whylen, "targetDatabase: invalid database name \"%s\" (%zu bytes): a target "
		"database is 1 to %d letters, digits, '_' or '-', starting with a letter or '_'",
		shown, n, API_DATABASE_MAX);
	return false;
}

/* A string field of the body without NUL characters, or -1 with the reason. */
static int string_field(json_object *v, const char *key, const char *what, const char **out,
	char *why, size_t whylen)
{
	if (!json_object_is_type(v, json_type_string)) {
		snprintf(why, whylen, "%s: must be a string, %s", key, what);
		return -1;
	}
	*out = json_object_get_string(v);
	if (strlen(*out) != (size_t)json_object_get_string_len(v)) {
		snprintf(why, whylen, "%s: contains a NUL character", key);
		return -1;
	}
	return 0;
}

/* Replaces *slot with a copy of `s`: 0, or -2 when out of memory (*slot is then NULL). */
static int set_copy(char **slot, const char *s)
{
	free(*slot);
	*slot = strdup(s);
	return *slot ? 0 : -2;
}

int api_parse_run_body(const char *body, size_t len, bool takes_backup, char **backup,
	char **target, char *why, size_t whylen)
{
	json_tokener *tok;
	json_object *o;
	int ret = 0;

	*backup = NULL;
	if (target)
		*target = NULL;
	if (!body || !len)
		return 0;
	tok = json_tokener_new_ex(JSON_DEPTH);
	if (!tok)
		return -2;
	o = json_tokener_parse_ex(tok, body, (int)(len > 0x7fffffff ? 0x7fffffff : len));
	if (!o || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) < len) {
		/* Trailing white space after the object is fine, anything else is not. */
		size_t end = json_tokener_get_parse_end(tok);

		while (o && end < len && strchr(" \t\r\n", body[end]))
			end++;
		if (!o || end < len) {
			snprintf(why, whylen, "the body is not valid JSON%s", o ? " (it goes on after "
				"the object)" : "");
			ret = -1;
		}
	}
	json_tokener_free(tok);
	if (ret == 0 && !json_object_is_type(o, json_type_object)) {
		snprintf(why, whylen, "the body must be a JSON object");
		ret = -1;
	}
	if (ret < 0) {
		json_object_put(o);
		return ret;
	}
	json_object_object_foreach(o, key, v) {
		char shown[QUOTED_MAX + 4];
		const char *id;

		if (target && !strcmp(key, "targetDatabase")) {
			if (string_field(v, key, "a database name", &id, why, whylen) < 0 ||
			    !api_database_name_ok(id, why, whylen)) {
				ret = -1;
				break;
			}
			if ((ret = set_copy(target, id)) < 0)
				break;
			continue;
		}
		if (!takes_backup || strcmp(key, "backup")) {
			quote(shown, sizeof(shown), key);
			snprintf(why, whylen, "unknown field \"%s\"%s", shown, target ?
				" (the body is {\"backup\": \"latest\" or \"<id>\", \"targetDatabase\": "
				"\"<name>\"}, each optional)" : takes_backup ?
				" (the body is {\"backup\": \"latest\"} or {\"backup\": \"<id>\"})" :
				" (a backup takes no fields)");
			ret = -1;
			break;
		}
		if (string_field(v, key, "\"latest\" or a backup id", &id, why, whylen) < 0) {
			ret = -1;
			break;
		}
		if (!strcmp(id, "latest"))
			continue;
		if (!api_backup_id_ok(id, why, whylen)) {
			ret = -1;
			break;
		}
		if ((ret = set_copy(backup, id)) < 0)
			break;
	}
	json_object_put(o);
	if (ret < 0) {
		free(*backup);
		*backup = NULL;
		if (target) {
			free(*target);
			*target = NULL;
		}
	}
	return ret;
}
