/*
 * Status conditions as the Kubernetes API conventions have them: one entry per type,
 * lastTransitionTime moving only when the status does.
 */
#include "rec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool reason_valid(const char *s)
{
	if (!s || !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')))
		return false;
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_,:", *s))
			return false;
	return true;
}

static int check_condition(const bop_reconcile_condition_t *c)
{
	if (!c || !c->type || !*c->type)
		return bop__error(BOP_EINVAL, "condition: the type is empty");
	if (!c->status || (strcmp(c->status, "True") && strcmp(c->status, "False") &&
	    strcmp(c->status, "Unknown")))
		return bop__error(BOP_EINVAL, "condition %s: the status must be True, False or "
			"Unknown", c->type);
	if (!reason_valid(c->reason))
		return bop__error(BOP_EINVAL, "condition %s: the reason \"%s\" is not CamelCase",
			c->type, c->reason ? c->reason : "");
	return 0;
}

static void format_time(char out[32], int64_t now)
{
	time_t t = (time_t)now;
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, 32, "1970-01-01T00:00:00Z");
}

static bool same_string(json_object *obj, const char *key, const char *want)
{
	const char *got = bop__rec_str(obj, key);

	return got && !strcmp(got, want);
}

/* The condition as it should be, given the one the object has (may be NULL). */
static json_object *new_condition(json_object *old, const bop_reconcile_condition_t *c,
	int64_t generation, bool has_generation, int64_t now, bool *changed)
{
	json_object *cond = json_object_new_object(), *og;
	const char *message = c->message ? c->message : "";
	const char *kept = bop__rec_str(old, "lastTransitionTime");
	char when[32];
	int ret;

	if (!cond)
		return NULL;
	*changed = !old || !same_string(old, "status", c->status) ||
		!same_string(old, "reason", c->reason) || !same_string(old, "message", message) ||
		!kept;
	og = bop__rec_get(old, "observedGeneration");
	if (has_generation && (!og || !json_object_is_type(og, json_type_int) ||
	    json_object_get_int64(og) != generation))
		*changed = true;
	if (!old || !same_string(old, "status", c->status) || !kept) {
		format_time(when, now);
		kept = when;
	}
	ret = bop__rec_add(cond, "type", bop__rec_string(c->type));
	if (!ret)
		ret = bop__rec_add(cond, "status", bop__rec_string(c->status));
	if (!ret && has_generation)
		ret = bop__rec_add(cond, "observedGeneration", json_object_new_int64(generation));
	if (!ret)
		ret = bop__rec_add(cond, "lastTransitionTime", bop__rec_string(kept));
	if (!ret)
		ret = bop__rec_add(cond, "reason", bop__rec_string(c->reason));
	if (!ret)
		ret = bop__rec_add(cond, "message", bop__rec_string(message));
	if (ret) {
		json_object_put(cond);
		return NULL;
	}
	return cond;
}

/* Appends `cond` (taking it). */
static int append(json_object *list, json_object *cond)
{
	if (!cond || json_object_array_add(list, cond) < 0) {
		json_object_put(cond);
		return bop__error_oom();
	}
	return 0;
}

static int read_object(json_object *obj, json_object **conditions, int64_t *generation,
	bool *has_generation)
{
	json_object *gen = bop__rec_get(bop__rec_get(obj, "metadata"), "generation");
	json_object *status = bop__rec_get(obj, "status");

	*has_generation = gen && json_object_is_type(gen, json_type_int);
	*generation = *has_generation ? json_object_get_int64(gen) : 0;
	*conditions = bop__rec_get(status, "conditions");
	if (status && !json_object_is_type(status, json_type_object))
		return bop__error(BOP_EFORMAT, "condition: the object's status is not an object");
	if (*conditions && !json_object_is_type(*conditions, json_type_array))
		return bop__error(BOP_EFORMAT, "condition: status.conditions is not a list");
	return 0;
}

BOP_EXTERN(int) bop_reconcile_condition_set(char **conditions, int *changed, const char *object,
	const bop_reconcile_condition_t *c, int64_t now)
{
	json_object *obj = NULL, *old_list, *list = NULL, *cond;
	bool has_generation, differs = false, found = false;
	int64_t generation;
	int ret;

	*conditions = NULL;
	if (changed)
		*changed = 0;
	if ((ret = check_condition(c)) || (ret = bop__rec_parse(&obj, object, "condition object")) ||
	    (ret = read_object(obj, &old_list, &generation, &has_generation)))
		goto out;
	if (!(list = json_object_new_array())) {
		ret = bop__error_oom();
		goto out;
	}
	for (size_t i = 0; old_list && i < json_object_array_length(old_list); i++) {
		json_object *old = json_object_array_get_idx(old_list, i);

		if (!found && same_string(old, "type", c->type)) {
			found = true;
			cond = new_condition(old, c, generation, has_generation, now, &differs);
		} else if (old) {
			cond = bop__rec_sorted_copy(old);
		} else {
			continue;
		}
		if ((ret = append(list, cond)))
			goto out;
	}
	if (!found && (ret = append(list, new_condition(NULL, c, generation, has_generation, now,
	    &differs))))
		goto out;
	if (!(*conditions = bop__rec_to_string(list))) {
		ret = BOP_ENOMEM;
		goto out;
	}
	if (changed)
		*changed = differs;
	ret = 0;
out:
	json_object_put(list);
	json_object_put(obj);
	return ret;
}
