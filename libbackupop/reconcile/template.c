/*
 * spec.templateRef: a schedule whose procedure comes from a ClusterBackupTemplate
 * (cluster-scoped) or BackupTemplate (the schedule's namespace). The template declares
 * typed variables and an exec procedure; the schedule gives values in spec.vars and
 * spec.varsSecretRef. The rendered procedure becomes spec.engine.exec, so everything after
 * (the exec engine's own checks, the runner config) is what a hand-written exec schedule
 * gets.
 *
 *   template spec: {description, variables: [{name, type: string|int|bool, default,
 *                   required, secret, description}],
 *                   exec: {backupCommand: [...], restoreCommand: [...], env: {NAME: "..."},
 *                          workingDir, timeoutSeconds}}
 *
 * "{{ .name }}" inside an element of a command, an env value or workingDir is replaced by
 * the variable's value; each element is rendered on its own and the commands run without a
 * shell, so a value is always exactly one argument whatever it holds (no injection). An
 * element that is only a reference and renders empty is left out (optional flags). Two
 * rules keep secrets out of process lists and shells:
 *   - a variable declared secret, or whose value comes from varsSecretRef, may be used
 *     only in env values (never in a command argument or workingDir);
 *   - a command run by a shell (sh, bash, ...) may not hold references at all: the script
 *     reads its inputs from env ("$NAME"), where quoting is the script's business.
 * A missing required variable, a value of the wrong type, or a spec.vars name the template
 * does not declare is a condition naming the variable (never its value).
 */
#include "rec.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VARS_MAX 64
#define RENDER_MAX (64u * 1024)

typedef struct var {
	const char *name;
	const char *type;               /* "string", "int" or "bool" */
	char *value;                    /* NULL: not set (renders empty) */
	bool secret;                    /* declared secret or from varsSecretRef */
} var_t;

typedef struct tctx {
	bop_reconcile_t *r;
	char *what;                     /* "ClusterBackupTemplate pg" */
	var_t vars[VARS_MAX];
	size_t n;
	json_object *empty;             /* {} for absent spec.vars */
} tctx_t;

static const bop__rec_field_t ref_fields[] = {
	{ "kind", BOP__F_STRING, 0 }, { "name", BOP__F_STRING, 0 }, { NULL, BOP__F_STRING, 0 },
};
static const bop__rec_field_t vsref_fields[] = {
	{ "name", BOP__F_STRING, 0 }, { "keys", BOP__F_LIST, 0 }, { NULL, BOP__F_STRING, 0 },
};
static const bop__rec_field_t tspec_fields[] = {
	{ "description", BOP__F_STRING, 0 }, { "variables", BOP__F_ARRAY, 0 },
	{ "exec", BOP__F_OBJECT, 0 }, { NULL, BOP__F_STRING, 0 },
};
static const bop__rec_field_t var_fields[] = {
	{ "name", BOP__F_STRING, 0 }, { "type", BOP__F_STRING, 0 }, { "default", BOP__F_ANY, 0 },
	{ "required", BOP__F_BOOL, 0 }, { "secret", BOP__F_BOOL, 0 },
	{ "description", BOP__F_STRING, 0 }, { NULL, BOP__F_STRING, 0 },
};
static const bop__rec_field_t exec_fields[] = {
	{ "backupCommand", BOP__F_ARRAY, 0 }, { "restoreCommand", BOP__F_ARRAY, 0 },
	{ "env", BOP__F_OBJECT, 0 }, { "workingDir", BOP__F_STRING, 0 },
	{ "timeoutSeconds", BOP__F_COUNT, 1LL << 40 }, { NULL, BOP__F_STRING, 0 },
};

/* The template's own faults: its author fixes them, not the schedule's. */
#define TEMPLATE_INVALID(t, fmt, ...) \
	bop__rec_invalid((t)->r, "TemplateInvalid", "%s: " fmt, (t)->what, __VA_ARGS__)

/* A field check on the template marked r InvalidSpec with a message about "spec...":
 * make it TemplateInvalid and say whose spec. */
static int retag(tctx_t *t, int ret)
{
	char *m;

	if (ret != BOP__REC_INVALID)
		return ret;
	m = t->r->message;
	free(t->r->reason);
	t->r->reason = t->r->message = NULL;
	ret = TEMPLATE_INVALID(t, "%s", m ? m : "invalid");
	free(m);
	return ret;
}

static bool ident_valid(const char *s)
{
	if (!s || !(isalpha((unsigned char)*s) || *s == '_'))
		return false;
	for (s++; *s; s++)
		if (!(isalnum((unsigned char)*s) || *s == '_'))
			return false;
	return true;
}

static var_t *find_var(tctx_t *t, const char *name, size_t len)
{
	for (size_t i = 0; i < t->n; i++)
		if (strlen(t->vars[i].name) == len && !strncmp(t->vars[i].name, name, len))
			return &t->vars[i];
	return NULL;
}

/* A value as text, checked against the type: JSON of that type, or (for values from a
 * Secret, always text) text that reads as it. NULL with *bad set when it does not fit. */
static char *typed_value(const char *type, json_object *v, const char *text, bool *bad)
{
	char *end = NULL;

	*bad = false;
	if (!strcmp(type, "int")) {
		long long n;

		if (v && json_object_is_type(v, json_type_int))
			return bop__sprintf("%lld", (long long)json_object_get_int64(v));
		if (v && json_object_is_type(v, json_type_string))
			text = json_object_get_string(v);
		if (!text || !*text)
			goto bad;
		errno = 0;
		n = strtoll(text, &end, 10);
		if (errno || *end)
			goto bad;
		return bop__sprintf("%lld", n);
	}
	if (!strcmp(type, "bool")) {
		if (v && json_object_is_type(v, json_type_boolean))
			return bop__strdup(json_object_get_boolean(v) ? "true" : "false");
		if (v && json_object_is_type(v, json_type_string))
			text = json_object_get_string(v);
		if (text && (!strcmp(text, "true") || !strcmp(text, "false")))
			return bop__strdup(text);
		goto bad;
	}
	if (v && (json_object_is_type(v, json_type_string) || json_object_is_type(v, json_type_int) ||
	    json_object_is_type(v, json_type_boolean)))
		text = json_object_get_string(v);
	if (!text)
		goto bad;
	return bop__strdup(text);
bad:
	*bad = true;
	return NULL;
}

/* The template's variables, with their defaults. */
static int read_variables(tctx_t *t, json_object *list)
{
	static const char *const types[] = { "string", "int", "bool", NULL };

	for (size_t i = 0; list && i < json_object_array_length(list); i++) {
		json_object *d = json_object_array_get_idx(list, i), *dflt;
		char field[64];
		const char *type;
		var_t *v;
		bool bad;
		int ret;
		size_t k;

		snprintf(field, sizeof(field), "spec.variables[%zu]", i);
		if ((ret = bop__rec_check_fields(t->r, d, field, var_fields)))
			return retag(t, ret);
		if (!ident_valid(bop__rec_str(d, "name")))
			return TEMPLATE_INVALID(t, "%s.name: required, a name of letters, digits and _",
				field);
		if (find_var(t, bop__rec_str(d, "name"), strlen(bop__rec_str(d, "name"))))
			return TEMPLATE_INVALID(t, "%s: variable %s is declared twice", field,
				bop__rec_str(d, "name"));
		if (t->n == VARS_MAX)
			return TEMPLATE_INVALID(t, "spec.variables: more than %d", VARS_MAX);
		type = bop__rec_str(d, "type") ? bop__rec_str(d, "type") : "string";
		for (k = 0; types[k] && strcmp(types[k], type); k++)
			;
		if (!types[k])
			return TEMPLATE_INVALID(t, "%s.type: \"%s\" is not string, int or bool", field,
				type);
		v = &t->vars[t->n++];
		v->name = bop__rec_str(d, "name");
		v->type = types[k];
		v->secret = bop__rec_get(d, "secret") && json_object_get_boolean(bop__rec_get(d, "secret"));
		if ((dflt = bop__rec_get(d, "default"))) {
			v->value = typed_value(v->type, dflt, NULL, &bad);
			if (bad)
				return TEMPLATE_INVALID(t, "%s.default: not a value of type %s", field,
					v->type);
			if (!v->value)
				return BOP_ENOMEM;
		}
	}
	return 0;
}

/* Values from spec.vars, then from the Secret of spec.varsSecretRef (which wins). */
static int read_values(tctx_t *t, json_object *vars, json_object *vsref)
{
	bop_reconcile_t *r = t->r;
	json_object *keys = bop__rec_get(vsref, "keys");
	const char *sname = bop__rec_str(vsref, "name");
	int ret;

	json_object_object_foreach(vars ? vars : t->empty, key, val) {
		var_t *v = find_var(t, key, strlen(key));
		bool bad;

		if (!v)
			return bop__rec_invalid(r, "TemplateVariableInvalid", "spec.vars.%s: %s declares "
				"no variable %s", key, t->what, key);
		if (v->secret)
			return bop__rec_invalid(r, "TemplateVariableInvalid", "spec.vars.%s: variable %s "
				"of %s is secret: give it as key %s of the Secret of spec.varsSecretRef",
				key, key, t->what, key);
		free(v->value);
		v->value = typed_value(v->type, val, NULL, &bad);
		if (bad)
			return bop__rec_invalid(r, "TemplateVariableInvalid", "spec.vars.%s: variable %s "
				"of %s is of type %s", key, key, t->what, v->type);
		if (!v->value)
			return BOP_ENOMEM;
	}
	if (!sname)
		return 0;
	for (size_t i = 0; keys && i < json_object_array_length(keys); i++) {
		const char *k = json_object_get_string(json_object_array_get_idx(keys, i));

		if (!find_var(t, k, strlen(k)))
			return bop__rec_invalid(r, "TemplateVariableInvalid", "spec.varsSecretRef.keys[%zu]: "
				"%s declares no variable %s", i, t->what, k);
	}
	for (size_t i = 0; i < t->n; i++) {
		var_t *v = &t->vars[i];
		char *text = NULL, *value;
		size_t len = 0;
		bool listed = !keys, bad;

		for (size_t j = 0; keys && j < json_object_array_length(keys); j++)
			if (!strcmp(json_object_get_string(json_object_array_get_idx(keys, j)), v->name))
				listed = true;
		if (!listed)
			continue;
		ret = bop__rec_secret_value(r, "spec.varsSecretRef", r->ns, sname, v->name, !keys,
			&text, &len);
		if (ret)
			return ret;
		if (!text)
			continue;
		value = strlen(text) == len ? typed_value(v->type, NULL, text, &bad) : NULL;
		if (strlen(text) != len)
			bad = true;
		bop__free_wiped(text);
		if (bad)
			return bop__rec_invalid(r, "TemplateVariableInvalid", "spec.varsSecretRef: key %s "
				"of Secret %s/%s is no value of type %s (variable %s of %s)", v->name,
				r->ns, sname, v->type, v->name, t->what);
		if (!value)
			return BOP_ENOMEM;
		bop__free_wiped(v->value);
		v->value = value;
		v->secret = true;
	}
	return 0;
}

/* A buffer that may hold a secret and no NUL yet. */
static void drop_buf(char *s, size_t n)
{
	bop__wipe(s, n);
	free(s);
}

/* Renders one string. `where` names it in messages; `args` is whether it becomes a
 * process argument (or working directory), where secrets may not go. *dropped is set when
 * the string is a lone reference that rendered empty. */
static int render(tctx_t *t, const char *tmpl, const char *where, bool args, char **out,
	bool *dropped)
{
	size_t cap = strlen(tmpl) + 1, n = 0, refs = 0;
	char *s = malloc(cap);
	const char *p = tmpl;
	bool lone = false;

	*out = NULL;
	*dropped = false;
	if (!s)
		return BOP_ENOMEM;
	while (*p) {
		const char *end, *name, *text;
		size_t nlen, tlen;
		var_t *v;

		if (strncmp(p, "{{", 2)) {
			s[n++] = *p++;
			goto grow;
		}
		end = strstr(p + 2, "}}");
		for (name = p + 2; end && name < end && *name == ' '; name++)
			;
		for (nlen = end ? (size_t)(end - name) : 0; nlen && name[nlen - 1] == ' '; nlen--)
			;
		if (!end || nlen < 2 || *name != '.') {
			drop_buf(s, n);
			return TEMPLATE_INVALID(t, "%s: \"{{\" at offset %zu does not start a reference "
				"\"{{ .name }}\"", where, (size_t)(p - tmpl));
		}
		name++;
		nlen--;
		if (!(v = find_var(t, name, nlen))) {
			drop_buf(s, n);
			return TEMPLATE_INVALID(t, "%s: unknown variable %.*s", where, (int)nlen, name);
		}
		if (args && v->secret) {
			drop_buf(s, n);
			return bop__rec_invalid(t->r, "TemplateVariableInvalid", "variable %s holds a "
				"secret (declared secret, or from spec.varsSecretRef) and %s uses it in %s, "
				"which would show in the process list: a secret may only go into env",
				v->name, t->what, where);
		}
		refs++;
		lone = p == tmpl && !end[2];
		text = v->value ? v->value : "";
		tlen = strlen(text);
		if (n + tlen + strlen(end + 2) + 1 > RENDER_MAX) {
			drop_buf(s, n);
			return bop__rec_invalid(t->r, "TemplateVariableInvalid", "%s of %s renders longer "
				"than %u bytes (variable %s)", where, t->what, RENDER_MAX, v->name);
		}
		if (n + tlen + 1 > cap) {
			char *grown = malloc(cap = n + tlen + strlen(end + 2) + 1);

			if (!grown) {
				drop_buf(s, n);
				return BOP_ENOMEM;
			}
			memcpy(grown, s, n);
			drop_buf(s, n);
			s = grown;
		}
		memcpy(s + n, text, tlen);
		n += tlen;
		p = end + 2;
		continue;
grow:
		if (n + 1 >= cap) {
			char *grown = malloc(cap *= 2);

			if (!grown) {
				drop_buf(s, n);
				return BOP_ENOMEM;
			}
			memcpy(grown, s, n);
			drop_buf(s, n);
			s = grown;
		}
	}
	s[n] = '\0';
	*dropped = lone && refs == 1 && !n;
	*out = s;
	return 0;
}

static bool is_shell(const char *prog)
{
	static const char *const shells[] = { "sh", "bash", "dash", "ash", "ksh", "mksh", "zsh",
		"busybox", NULL };
	const char *base = strrchr(prog, '/') ? strrchr(prog, '/') + 1 : prog;

	for (size_t i = 0; shells[i]; i++)
		if (!strcmp(base, shells[i]))
			return true;
	return false;
}

static int render_command(tctx_t *t, json_object *cmd, const char *field, json_object *into)
{
	json_object *argv;
	char where[64];
	int ret;

	if (!cmd)
		return 0;
	if (!json_object_array_length(cmd))
		return TEMPLATE_INVALID(t, "spec.exec.%s: empty", field);
	if (!(argv = json_object_new_array()))
		return BOP_ENOMEM;
	for (size_t i = 0; i < json_object_array_length(cmd); i++) {
		json_object *el = json_object_array_get_idx(cmd, i);
		char *s = NULL;
		bool dropped;

		snprintf(where, sizeof(where), "spec.exec.%s[%zu]", field, i);
		if (!el || !json_object_is_type(el, json_type_string)) {
			json_object_put(argv);
			return TEMPLATE_INVALID(t, "%s: expected a string", where);
		}
		if (i && strstr(json_object_get_string(el), "{{") &&
		    is_shell(json_object_get_string(json_object_array_get_idx(cmd, 0)))) {
			json_object_put(argv);
			return TEMPLATE_INVALID(t, "%s: a shell's arguments may not hold {{ }} references "
				"(shell injection): pass the variable through env and quote it as \"$NAME\"",
				where);
		}
		if ((ret = render(t, json_object_get_string(el), where, true, &s, &dropped))) {
			json_object_put(argv);
			return ret;
		}
		if (!dropped && json_object_array_add(argv, json_object_new_string(s)) < 0) {
			free(s);
			json_object_put(argv);
			return BOP_ENOMEM;
		}
		free(s);
	}
	return bop__rec_add(into, field, argv);
}

static int render_env(tctx_t *t, json_object *env, json_object *into)
{
	json_object *out;
	char where[320];
	int ret = 0;

	if (!env)
		return 0;
	if (!(out = json_object_new_object()))
		return BOP_ENOMEM;
	json_object_object_foreach(env, name, val) {
		char *s = NULL;
		bool dropped;

		snprintf(where, sizeof(where), "spec.exec.env.%s", name);
		if (!val || !json_object_is_type(val, json_type_string)) {
			ret = TEMPLATE_INVALID(t, "%s: expected a string", where);
			break;
		}
		if ((ret = render(t, json_object_get_string(val), where, false, &s, &dropped)))
			break;
		if (!dropped)
			ret = bop__rec_add(out, name, json_object_new_string(s));
		bop__free_wiped(s);
		if (ret)
			break;
	}
	if (ret) {
		json_object_put(out);
		return ret;
	}
	return bop__rec_add(into, "env", out);
}

static int render_exec(tctx_t *t, json_object *exec, json_object **out)
{
	json_object *e = json_object_new_object();
	const char *wd = bop__rec_str(exec, "workingDir");
	int ret;

	if (!e)
		return BOP_ENOMEM;
	if ((ret = render_command(t, bop__rec_get(exec, "backupCommand"), "backupCommand", e)) ||
	    (ret = render_command(t, bop__rec_get(exec, "restoreCommand"), "restoreCommand", e)) ||
	    (ret = render_env(t, bop__rec_get(exec, "env"), e)))
		goto out;
	if (wd) {
		char *s = NULL;
		bool dropped;

		if ((ret = render(t, wd, "spec.exec.workingDir", true, &s, &dropped)))
			goto out;
		if (!dropped)
			ret = bop__rec_add(e, "workingDir", json_object_new_string(s));
		free(s);
		if (ret)
			goto out;
	}
	if (bop__rec_get(exec, "timeoutSeconds"))
		ret = bop__rec_add(e, "timeoutSeconds",
			json_object_get(bop__rec_get(exec, "timeoutSeconds")));
out:
	if (ret)
		json_object_put(e);
	else
		*out = e;
	return ret;
}

static int check_schedule_fields(bop_reconcile_t *r, json_object *ref, const char **kind)
{
	int ret;

	if ((ret = bop__rec_check_fields(r, ref, "spec.templateRef", ref_fields)) ||
	    (ret = bop__rec_get(r->spec, "varsSecretRef") ? bop__rec_check_fields(r,
		    bop__rec_get(r->spec, "varsSecretRef"), "spec.varsSecretRef", vsref_fields) : 0))
		return ret;
	if (bop__rec_get(r->spec, "engine"))
		return bop__rec_invalid(r, "InvalidSpec", "spec: give either engine or templateRef");
	if (!bop__rec_name_valid(bop__rec_str(ref, "name")))
		return bop__rec_invalid(r, "InvalidSpec", "spec.templateRef.name: required, the "
			"template's name");
	*kind = bop__rec_str(ref, "kind") ? bop__rec_str(ref, "kind") : "ClusterBackupTemplate";
	if (strcmp(*kind, "ClusterBackupTemplate") && strcmp(*kind, "BackupTemplate"))
		return bop__rec_invalid(r, "InvalidSpec", "spec.templateRef.kind: \"%s\" is not "
			"ClusterBackupTemplate or BackupTemplate", *kind);
	if (bop__rec_get(r->spec, "varsSecretRef") &&
	    !bop__rec_name_valid(bop__rec_str(bop__rec_get(r->spec, "varsSecretRef"), "name")))
		return bop__rec_invalid(r, "InvalidSpec", "spec.varsSecretRef.name: required, a "
			"Secret's name");
	if (bop__rec_get(r->spec, "vars") &&
	    !json_object_is_type(bop__rec_get(r->spec, "vars"), json_type_object))
		return bop__rec_invalid(r, "InvalidSpec", "spec.vars: expected an object");
	return 0;
}

int bop__rec_apply_template(bop_reconcile_t *r)
{
	json_object *ref = bop__rec_get(r->spec, "templateRef"), *tmpl = NULL, *tspec, *engine = NULL;
	json_object *exec = NULL;
	const char *kind = NULL, *tname;
	char *text = NULL;
	tctx_t t;
	int ret;

	memset(&t, 0, sizeof(t));
	t.r = r;
	if (!ref) {
		if (bop__rec_get(r->spec, "vars") || bop__rec_get(r->spec, "varsSecretRef"))
			return bop__rec_invalid(r, "InvalidSpec", "spec.vars and spec.varsSecretRef "
				"need spec.templateRef");
		return 0;
	}
	if ((ret = check_schedule_fields(r, ref, &kind)))
		return ret;
	if (!(t.empty = json_object_new_object()))
		return BOP_ENOMEM;
	tname = bop__rec_str(ref, "name");
	ret = r->lookup(&text, kind, strcmp(kind, "BackupTemplate") ? NULL : r->ns, tname, r->ud);
	if (ret == BOP_ENOTFOUND) {
		ret = bop__rec_invalid(r, "TemplateNotFound", "spec.templateRef: %s %s%s%s not found",
			kind, strcmp(kind, "BackupTemplate") ? "" : r->ns,
			strcmp(kind, "BackupTemplate") ? "" : "/", tname);
		goto out;
	}
	if (ret < 0) {
		bop__error_wrap("looking up %s %s", kind, tname);
		goto out;
	}
	if ((ret = bop__rec_parse(&tmpl, text, kind)) < 0)
		goto out;
	if (!(t.what = bop__sprintf("%s %s", kind, tname))) {
		ret = BOP_ENOMEM;
		goto out;
	}
	tspec = bop__rec_get(tmpl, "spec");
	if ((ret = bop__rec_check_fields(r, tspec, "spec", tspec_fields)) ||
	    (ret = bop__rec_check_fields(r, bop__rec_get(tspec, "exec"), "spec.exec", exec_fields))) {
		ret = retag(&t, ret);
		goto out;
	}
	if (!bop__rec_get(bop__rec_get(tspec, "exec"), "backupCommand") &&
	    !bop__rec_get(bop__rec_get(tspec, "exec"), "restoreCommand")) {
		ret = TEMPLATE_INVALID(&t, "%s", "spec.exec: needs backupCommand or restoreCommand");
		goto out;
	}
	if ((ret = read_variables(&t, bop__rec_get(tspec, "variables"))) ||
	    (ret = read_values(&t, bop__rec_get(r->spec, "vars"), bop__rec_get(r->spec,
		    "varsSecretRef"))))
		goto out;
	for (size_t i = 0; i < t.n; i++) {
		json_object *d = json_object_array_get_idx(bop__rec_get(tspec, "variables"), i);

		if (!t.vars[i].value && bop__rec_get(d, "required") &&
		    json_object_get_boolean(bop__rec_get(d, "required"))) {
			if (t.vars[i].secret)
				ret = bop__rec_invalid(r, "TemplateVariableMissing", "%s needs variable %s: "
					"give it as key %s of the Secret of spec.varsSecretRef (it is secret)",
					t.what, t.vars[i].name, t.vars[i].name);
			else
				ret = bop__rec_invalid(r, "TemplateVariableMissing", "%s needs variable %s: "
					"give it in spec.vars.%s or as key %s of the Secret of "
					"spec.varsSecretRef", t.what, t.vars[i].name, t.vars[i].name,
					t.vars[i].name);
			goto out;
		}
	}
	if ((ret = render_exec(&t, bop__rec_get(tspec, "exec"), &exec)))
		goto out;
	ret = BOP_ENOMEM;
	if (!(engine = json_object_new_object()) || bop__rec_add(engine, "exec", exec))
		goto out;
	exec = NULL;
	if ((ret = bop__rec_add(r->spec, "engine", engine)))
		goto out;
	engine = NULL;
	json_object_object_del(r->spec, "templateRef");
	json_object_object_del(r->spec, "vars");
	json_object_object_del(r->spec, "varsSecretRef");
out:
	for (size_t i = 0; i < t.n; i++)
		bop__free_wiped(t.vars[i].value);
	free(t.what);
	json_object_put(t.empty);
	json_object_put(exec);
	json_object_put(engine);
	json_object_put(tmpl);
	bop__free_wiped(text);
	return ret;
}
