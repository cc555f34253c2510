/*
 * The metrics registry: counters, gauges and histograms with labels, rendered in the
 * Prometheus text exposition format 0.0.4. One lock guards the whole registry; series are
 * few (a label set per run result, per engine...) so lookups are linear.
 */
#include "internal.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } metric_type_t;

typedef struct series {
	struct series *next;
	char **values;          /* one per label */
	double value;           /* counter, gauge */
	uint64_t *counts;       /* histogram: per bucket, not cumulative */
	uint64_t count;
	double sum;
} series_t;

struct bop_metric {
	bop_metric_t *next;
	bop_metrics_t *registry;
	metric_type_t type;
	char *name;
	char *help;
	char **labels;
	size_t nlabels;
	double *buckets;
	size_t nbuckets;
	series_t *series;       /* in creation order */
	series_t **tail;
};

struct bop_metrics {
	pthread_mutex_t lock;
	bop_metric_t *metrics;
	bop_metric_t **tail;
};

static void series_free(series_t *s, size_t nlabels)
{
	for (size_t i = 0; s->values && i < nlabels; i++)
		free(s->values[i]);
	free(s->values);
	free(s->counts);
	free(s);
}

static void metric_free(bop_metric_t *m)
{
	series_t *next;

	for (series_t *s = m->series; s; s = next) {
		next = s->next;
		series_free(s, m->nlabels);
	}
	for (size_t i = 0; i < m->nlabels; i++)
		free(m->labels[i]);
	free(m->labels);
	free(m->buckets);
	free(m->name);
	free(m->help);
	free(m);
}

BOP_EXTERN(int) bop_metrics_new(bop_metrics_t **out)
{
	bop_metrics_t *r;

	if (!out)
		return bop__error(BOP_EINVAL, "bop_metrics_new: NULL out");
	r = bop__calloc(1, sizeof(*r));
	if (!r)
		return BOP_ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	r->tail = &r->metrics;
	*out = r;
	return 0;
}

BOP_EXTERN(void) bop_metrics_free(bop_metrics_t *r)
{
	bop_metric_t *next;

	if (!r)
		return;
	for (bop_metric_t *m = r->metrics; m; m = next) {
		next = m->next;
		metric_free(m);
	}
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static bool name_valid(const char *name, bool colon)
{
	if (!name || !*name || (*name >= '0' && *name <= '9'))
		return false;
	for (const char *p = name; *p; p++) {
		char c = *p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
				c == '_' || (colon && c == ':')))
			return false;
	}
	return true;
}

static int check_labels(const char *name, const char *const *labels, metric_type_t type, size_t *n)
{
	*n = 0;
	for (; labels && labels[*n]; (*n)++) {
		const char *l = labels[*n];

		if (!name_valid(l, false) || !strncmp(l, "__", 2))
			return bop__error(BOP_EINVAL, "metric %s: \"%s\" is not a valid label name", name, l);
		if (type == METRIC_HISTOGRAM && !strcmp(l, "le"))
			return bop__error(BOP_EINVAL, "metric %s: a histogram cannot have a label \"le\"", name);
		for (size_t j = 0; j < *n; j++)
			if (!strcmp(labels[j], l))
				return bop__error(BOP_EINVAL, "metric %s: label \"%s\" appears twice", name, l);
	}
	return 0;
}

static int check_buckets(const char *name, const double *buckets, size_t n)
{
	if (n == 0 || !buckets)
		return bop__error(BOP_EINVAL, "histogram %s needs at least one bucket", name);
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(buckets[i]))
			return bop__error(BOP_EINVAL, "histogram %s: bucket bounds must be finite (+Inf is added)", name);
		if (i > 0 && buckets[i] <= buckets[i - 1])
			return bop__error(BOP_EINVAL, "histogram %s: bucket bounds must increase", name);
	}
	return 0;
}

static bop_metric_t *find_locked(bop_metrics_t *r, const char *name)
{
	for (bop_metric_t *m = r->metrics; m; m = m->next)
		if (!strcmp(m->name, name))
			return m;
	return NULL;
}

static int metric_new(bop_metric_t **out, metric_type_t type, const char *name, const char *help,
	const char *const *labels, size_t nlabels, const double *buckets, size_t nbuckets)
{
	bop_metric_t *m = bop__calloc(1, sizeof(*m));

	if (!m)
		return BOP_ENOMEM;
	m->type = type;
	m->tail = &m->series;
	m->nlabels = nlabels;
	m->nbuckets = nbuckets;
	m->name = bop__strdup(name);
	m->help = bop__strdup(help ? help : "");
	m->labels = bop__calloc(nlabels + 1, sizeof(char *));
	m->buckets = nbuckets ? bop__calloc(nbuckets, sizeof(double)) : NULL;
	if (!m->name || !m->help || !m->labels || (nbuckets && !m->buckets))
		goto fail;
	for (size_t i = 0; i < nlabels; i++)
		if (!(m->labels[i] = bop__strdup(labels[i])))
			goto fail;
	if (nbuckets)
		memcpy(m->buckets, buckets, nbuckets * sizeof(double));
	*out = m;
	return 0;
fail:
	metric_free(m);
	return BOP_ENOMEM;
}

static int add_metric(bop_metrics_t *r, bop_metric_t **out, metric_type_t type, const char *name,
	const char *help, const char *const *labels, const double *buckets, size_t nbuckets)
{
	bop_metric_t *m = NULL;
	size_t nlabels;
	int ret;

	if (!r || !out)
		return bop__error(BOP_EINVAL, "bop_metrics: NULL registry or out");
	if (!name_valid(name, true))
		return bop__error(BOP_EINVAL, "\"%s\" is not a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
			name ? name : "");
	if ((ret = check_labels(name, labels, type, &nlabels)) < 0)
		return ret;
	if (type == METRIC_HISTOGRAM && (ret = check_buckets(name, buckets, nbuckets)) < 0)
		return ret;
	pthread_mutex_lock(&r->lock);
	if (find_locked(r, name)) {
		ret = bop__error(BOP_EEXISTS, "metric %s is already registered", name);
		goto out;
	}
	if ((ret = metric_new(&m, type, name, help, labels, nlabels, buckets, nbuckets)) < 0)
		goto out;
	m->registry = r;
	*r->tail = m;
	r->tail = &m->next;
	*out = m;
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

BOP_EXTERN(int) bop_metrics_counter(bop_metrics_t *r, bop_metric_t **out, const char *name,
	const char *help, const char *const *labels)
{
	return add_metric(r, out, METRIC_COUNTER, name, help, labels, NULL, 0);
}

BOP_EXTERN(int) bop_metrics_gauge(bop_metrics_t *r, bop_metric_t **out, const char *name,
	const char *help, const char *const *labels)
{
	return add_metric(r, out, METRIC_GAUGE, name, help, labels, NULL, 0);
}

BOP_EXTERN(int) bop_metrics_histogram(bop_metrics_t *r, bop_metric_t **out, const char *name,
	const char *help, const char *const *labels, const double *buckets, size_t nbuckets)
{
	return add_metric(r, out, METRIC_HISTOGRAM, name, help, labels, buckets, nbuckets);
}

/* ---- updates ---- */

static bool values_equal(const bop_metric_t *m, const series_t *s, const char *const *values)
{
	for (size_t i = 0; i < m->nlabels; i++)
		if (strcmp(s->values[i], values[i]))
			return false;
	return true;
}

static series_t *series_new(bop_metric_t *m, const char *const *values)
{
	series_t *s = bop__calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->values = bop__calloc(m->nlabels + 1, sizeof(char *));
	if (m->nbuckets)
		s->counts = bop__calloc(m->nbuckets, sizeof(uint64_t));
	if (!s->values || (m->nbuckets && !s->counts))
		goto fail;
	for (size_t i = 0; i < m->nlabels; i++)
		if (!(s->values[i] = bop__strdup(values[i])))
			goto fail;
	*m->tail = s;
	m->tail = &s->next;
	return s;
fail:
	series_free(s, m->nlabels);
	return NULL;
}

/* The series of `values`, created on first use; NULL with the error set. */
static series_t *series_get_locked(bop_metric_t *m, const char *const *values)
{
	for (size_t i = 0; i < m->nlabels; i++)
		if (!values || !values[i]) {
			bop__error(BOP_EINVAL, "metric %s takes %zu label values (%s...)", m->name,
				m->nlabels, m->labels[0]);
			return NULL;
		}
	for (series_t *s = m->series; s; s = s->next)
		if (values_equal(m, s, values))
			return s;
	return series_new(m, values);
}

typedef enum update { UPDATE_ADD, UPDATE_SET, UPDATE_OBSERVE } update_t;

static int update(bop_metric_t *m, const char *const *values, double v, update_t how)
{
	static const char *const what[] = { "add to", "set", "observe" };
	static const bool allowed[3][3] = {
		/* counter, gauge, histogram */
		[UPDATE_ADD] = { true, true, false },
		[UPDATE_SET] = { false, true, false },
		[UPDATE_OBSERVE] = { false, false, true },
	};
	series_t *s;
	int ret = 0;

	if (!m)
		return bop__error(BOP_EINVAL, "NULL metric");
	if (!allowed[how][m->type])
		return bop__error(BOP_EINVAL, "cannot %s metric %s of this type", what[how], m->name);
	if (m->type == METRIC_COUNTER && !(v >= 0))
		return bop__error(BOP_EINVAL, "counter %s can only increase (got %g)", m->name, v);
	pthread_mutex_lock(&m->registry->lock);
	s = series_get_locked(m, values);
	if (!s) {
		ret = bop_error_last_code() ? bop_error_last_code() : BOP_ENOMEM;
		goto out;
	}
	switch (how) {
	case UPDATE_ADD:
		s->value += v;
		break;
	case UPDATE_SET:
		s->value = v;
		break;
	case UPDATE_OBSERVE:
		for (size_t i = 0; i < m->nbuckets; i++)
			if (v <= m->buckets[i]) {
				s->counts[i]++;
				break;
			}
		s->count++;
		s->sum += v;
		break;
	}
out:
	pthread_mutex_unlock(&m->registry->lock);
	return ret;
}

BOP_EXTERN(int) bop_metric_add(bop_metric_t *m, const char *const *values, double v)
{
	return update(m, values, v, UPDATE_ADD);
}

BOP_EXTERN(int) bop_metric_set(bop_metric_t *m, const char *const *values, double v)
{
	return update(m, values, v, UPDATE_SET);
}

BOP_EXTERN(int) bop_metric_observe(bop_metric_t *m, const char *const *values, double v)
{
	return update(m, values, v, UPDATE_OBSERVE);
}

/* ---- rendering ---- */

/* The shortest decimal that reads back as `v`, or +Inf, -Inf, NaN. */
static void format_double(char *out, size_t size, double v)
{
	if (isnan(v)) {
		snprintf(out, size, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, size, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == floor(v) && fabs(v) < 9007199254740992.0) {
		snprintf(out, size, "%.0f", v);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, size, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

/* HELP text escapes '\' and newline; label values also '"'. */
static void put_escaped(FILE *f, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else if (quote && *s == '"')
			fputs("\\\"", f);
		else
			fputc(*s, f);
	}
}

/* {a="x",b="y"[,le="0.5"]} or nothing. */
static void put_labels(FILE *f, const bop_metric_t *m, const series_t *s, const char *le)
{
	if (m->nlabels == 0 && !le)
		return;
	fputc('{', f);
	for (size_t i = 0; i < m->nlabels; i++) {
		fprintf(f, "%s%s=\"", i ? "," : "", m->labels[i]);
		put_escaped(f, s->values[i], true);
		fputc('"', f);
	}
	if (le)
		fprintf(f, "%sle=\"%s\"", m->nlabels ? "," : "", le);
	fputc('}', f);
}

static void put_histogram(FILE *f, const bop_metric_t *m, const series_t *s)
{
	char num[64];
	uint64_t cumulative = 0;

	for (size_t i = 0; i < m->nbuckets; i++) {
		cumulative += s->counts[i];
		format_double(num, sizeof(num), m->buckets[i]);
		fprintf(f, "%s_bucket", m->name);
		put_labels(f, m, s, num);
		fprintf(f, " %llu\n", (unsigned long long)cumulative);
	}
	fprintf(f, "%s_bucket", m->name);
	put_labels(f, m, s, "+Inf");
	fprintf(f, " %llu\n", (unsigned long long)s->count);
	format_double(num, sizeof(num), s->sum);
	fprintf(f, "%s_sum", m->name);
	put_labels(f, m, s, NULL);
	fprintf(f, " %s\n", num);
	fprintf(f, "%s_count", m->name);
	put_labels(f, m, s, NULL);
	fprintf(f, " %llu\n", (unsigned long long)s->count);
}

static void put_metric(FILE *f, const bop_metric_t *m)
{
	static const char *const types[] = { "counter", "gauge", "histogram" };
	static const series_t zero = { 0 };
	char num[64];

	fprintf(f, "# HELP %s ", m->name);
	put_escaped(f, m->help, false);
	fprintf(f, "\n# TYPE %s %s\n", m->name, types[m->type]);
	/* A metric without labels exists from the start, at zero. */
	if (!m->series && m->nlabels == 0 && m->type != METRIC_HISTOGRAM) {
		fprintf(f, "%s 0\n", m->name);
		return;
	}
	for (const series_t *s = m->series; s; s = s->next) {
		if (m->type == METRIC_HISTOGRAM) {
			put_histogram(f, m, s);
			continue;
		}
		format_double(num, sizeof(num), s->value);
		fputs(m->name, f);
		put_labels(f, m, s, NULL);
		fprintf(f, " %s\n", num);
	}
	if (!m->series && m->nlabels == 0 && m->type == METRIC_HISTOGRAM) {
		series_t empty = zero;

		empty.counts = bop__calloc(m->nbuckets, sizeof(uint64_t));
		if (empty.counts)
			put_histogram(f, m, &empty);
		free(empty.counts);
	}
}

BOP_EXTERN(int) bop_metrics_render(bop_metrics_t *r, char **text, size_t *len)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f;

	if (!r || !text)
		return bop__error(BOP_EINVAL, "bop_metrics_render: NULL argument");
	*text = NULL;
	f = open_memstream(&buf, &size);
	if (!f)
		return bop__error_oom();
	pthread_mutex_lock(&r->lock);
	for (const bop_metric_t *m = r->metrics; m; m = m->next)
		put_metric(f, m);
	pthread_mutex_unlock(&r->lock);
	if (fclose(f) != 0) {
		free(buf);
		return bop__error_oom();
	}
	*text = buf;
	if (len)
		*len = size;
	return 0;
}
