/* Arbitrary bytes as a BackupSchedule's spec.storage.path template, rendered with a
 * namespace and a name as long as Kubernetes allows ("NAMESPACE\nNAME\nTEMPLATE"; without
 * two newlines the whole input is the template for shop/orders-db). The answer is the
 * catalog name or "invalid, with a reason"; it must match a plain reference rendering of
 * the documented rules: {{ .Namespace }} and {{ .Name }} are replaced, {{ .ID }} may only
 * be the last segment and is left out, anything else in {{ }} is refused, and the result
 * must be a valid catalog name of at most 1024 characters. */
#include <stdlib.h>
#include <string.h>

#include "fuzz-common.h"
#include "internal.h"
#include "reconcile/rec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUT_MAX 1024

/* The reference: 1 and the rendering in out, or 0 when the template is invalid. */
static int reference(const char *ns, const char *name, const char *t, char *out, size_t cap)
{
	size_t n = 0;

	while (*t) {
		const char *end, *v, *value;
		size_t vlen;

		if (t[0] != '{' || t[1] != '{') {
			if (n + 1 >= cap)
				return 0;
			out[n++] = *t++;
			continue;
		}
		end = strstr(t + 2, "}}");
		if (!end)
			return 0;
		for (v = t + 2; *v == ' ' && v < end; v++)
			;
		for (vlen = (size_t)(end - v); vlen && v[vlen - 1] == ' '; vlen--)
			;
		if (vlen == 3 && !memcmp(v, ".ID", 3)) {
			if (end[2] || (n && out[n - 1] != '/'))
				return 0;
			if (n)
				n--;
			break;
		}
		if (vlen == 10 && !memcmp(v, ".Namespace", 10))
			value = ns;
		else if (vlen == 5 && !memcmp(v, ".Name", 5))
			value = name;
		else
			return 0;
		if (n + strlen(value) >= cap)
			return 0;
		memcpy(out + n, value, strlen(value));
		n += strlen(value);
		t = end + 2;
	}
	out[n] = '\0';
	return n <= OUT_MAX && bop__catalog_path_valid(out);
}

/* The next line of the input (at most `max` bytes of it), or NULL when no newline ends it. */
static char *line(const char **p, const char *end, size_t max)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	char *s;

	if (!nl)
		return NULL;
	s = strndup(*p, (size_t)(nl - *p) < max ? (size_t)(nl - *p) : max);
	*p = nl + 1;
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	char *ns = NULL, *name = NULL, *tmpl, *out = NULL, want[OUT_MAX + 2];
	bop_reconcile_t r;
	int ret, ok;

	bop_log_set_level(BOP_LOG_OFF);
	/* Kubernetes: a namespace has at most 63 characters, a custom object's name 253 */
	if (memchr(p, '\n', size) && (ns = line(&p, end, 63)) && !(name = line(&p, end, 253))) {
		free(ns);
		ns = NULL;
		p = (const char *)data;
	}
	if (!ns || !*ns || !*name) {
		free(ns);
		free(name);
		ns = strdup("shop");
		name = strdup("orders-db");
	}
	tmpl = strndup(p, (size_t)(end - p));
	if (!ns || !name || !tmpl)
		abort();
	memset(&r, 0, sizeof(r));
	r.ns = ns;
	r.name = name;
	ret = bop__rec_render_path(&r, tmpl, &out);
	ok = reference(ns, name, tmpl, want, sizeof(want));
	if (ret == 0) {
		if (!ok || !out || strcmp(out, want) || r.reason)
			abort();
	} else if (ret == BOP__REC_INVALID) {
		if (ok || out || !r.reason || strcmp(r.reason, "InvalidSpec") || !r.message)
			abort();
	} else if (ret != BOP_ENOMEM) {
		abort();
	}
	free(out);
	free(r.reason);
	free(r.message);
	free(tmpl);
	free(ns);
	free(name);
	return 0;
}
