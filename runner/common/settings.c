/* The config's lifecycle, defaults that depend on several fields, and value parsers. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rcfg_init(rcfg_t *c)
{
	memset(c, 0, sizeof(*c));
	c->suspend = -1;
	c->starting_deadline = -1;
	c->concurrency = -1;
	c->mode = -1;
	c->level = -1;
	c->threads = -1;
	c->scrypt_work_factor = -1;
	for (int i = 0; i < RCFG_KEEP_COUNT; i++)
		c->keep[i] = -1;
	c->keep_within = -1;
	c->history_successful = -1;
	c->history_failed = -1;
	c->deadline_backup = -1;
	c->deadline_restore = -1;
	c->deadline_verify = -1;
	c->verify_expect_rows = -1;
}

void rcfg_strlist_clear(rcfg_strlist_t *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->items[i]);
	free(list->items);
	memset(list, 0, sizeof(*list));
}

int rcfg_strlist_add(rcfg_strlist_t *list, const char *item)
{
	char **items = realloc(list->items, (list->count + 2) * sizeof(*items));

	if (!items)
		return -1;
	list->items = items;
	if (!(items[list->count] = strdup(item)))
		return -1;
	items[++list->count] = NULL;
	list->set = true;
	return 0;
}

static void free_secret(char *s)
{
	if (s)
		explicit_bzero(s, strlen(s));
	free(s);
}

void rcfg_clear(rcfg_t *c)
{
	char **strings[] = { &c->path, &c->name, &c->namespace_, &c->schedule_name,
		&c->schedule, &c->time_zone, &c->engine_name, &c->storage_url, &c->compression,
		&c->recipients_file, &c->identity_file, &c->passphrase_file, &c->verify_schedule,
		&c->verify_engine_name, &c->api_listen, &c->api_token_file, &c->api_advertise_url,
		&c->metrics_listen };

	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
		free(*strings[i]);
	free_secret(c->engine_json);
	free_secret(c->verify_engine_json);
	free_secret(c->api_token);
	for (size_t i = 0; i < c->storage_settings.count; i++)
		explicit_bzero(c->storage_settings.items[i], strlen(c->storage_settings.items[i]));
	rcfg_strlist_clear(&c->storage_settings);
	rcfg_strlist_clear(&c->recipients);
	rcfg_strlist_clear(&c->keep_tags);
	rcfg_strlist_clear(&c->tags);
	rcfg_init(c);
}

static void take_string(char **base, char **over)
{
	if (!*over)
		return;
	free_secret(*base);
	*base = *over;
	*over = NULL;
}

static void take_list(rcfg_strlist_t *base, rcfg_strlist_t *over)
{
	if (!over->set)
		return;
	rcfg_strlist_clear(base);
	*base = *over;
	memset(over, 0, sizeof(*over));
}

static void take_number(long long *base, long long over)
{
	if (over >= 0)
		*base = over;
}

static void take_int(int *base, int over)
{
	if (over >= 0)
		*base = over;
}

void rcfg_merge(rcfg_t *base, rcfg_t *over)
{
	char **strings[][2] = {
		{ &base->name, &over->name }, { &base->namespace_, &over->namespace_ },
		{ &base->schedule_name, &over->schedule_name },
		{ &base->schedule, &over->schedule }, { &base->time_zone, &over->time_zone },
		{ &base->engine_name, &over->engine_name },
		{ &base->engine_json, &over->engine_json },
		{ &base->storage_url, &over->storage_url },
		{ &base->compression, &over->compression },
		{ &base->recipients_file, &over->recipients_file },
		{ &base->identity_file, &over->identity_file },
		{ &base->passphrase_file, &over->passphrase_file },
		{ &base->verify_schedule, &over->verify_schedule },
		{ &base->verify_engine_name, &over->verify_engine_name },
		{ &base->verify_engine_json, &over->verify_engine_json },
		{ &base->api_listen, &over->api_listen }, { &base->api_token, &over->api_token },
		{ &base->api_token_file, &over->api_token_file },
		{ &base->api_advertise_url, &over->api_advertise_url },
		{ &base->metrics_listen, &over->metrics_listen },
	};
	rcfg_strlist_t *lists[][2] = {
		{ &base->storage_settings, &over->storage_settings },
		{ &base->recipients, &over->recipients }, { &base->keep_tags, &over->keep_tags },
		{ &base->tags, &over->tags },
	};
	long long *numbers[][2] = {
		{ &base->starting_deadline, &over->starting_deadline },
		{ &base->history_successful, &over->history_successful },
		{ &base->history_failed, &over->history_failed },
		{ &base->deadline_backup, &over->deadline_backup },
		{ &base->deadline_restore, &over->deadline_restore },
		{ &base->deadline_verify, &over->deadline_verify },
		{ &base->verify_expect_rows, &over->verify_expect_rows },
	};
	int *ints[][2] = {
		{ &base->suspend, &over->suspend }, { &base->concurrency, &over->concurrency },
		{ &base->mode, &over->mode }, { &base->level, &over->level },
		{ &base->threads, &over->threads },
		{ &base->scrypt_work_factor, &over->scrypt_work_factor },
	};

	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
		take_string(strings[i][0], strings[i][1]);
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
		take_list(lists[i][0], lists[i][1]);
	for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++)
		take_number(numbers[i][0], *numbers[i][1]);
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
		take_int(ints[i][0], *ints[i][1]);
	for (int i = 0; i < RCFG_KEEP_COUNT; i++)
		take_number(&base->keep[i], over->keep[i]);
	if (over->keep_within >= 0)
		base->keep_within = over->keep_within;
}

static int read_token(rcfg_t *c, char **error)
{
	char line[4096];
	FILE *fp = fopen(c->api_token_file, "re");
	size_t n;

	if (!fp) {
		if (asprintf(error, "%s: api.tokenFile: cannot open %s: %s", c->path,
			    c->api_token_file, strerror(errno)) < 0)
			*error = NULL;
		return RCFG_EINVALID;
	}
	if (!fgets(line, sizeof(line), fp))
		line[0] = '\0';
	fclose(fp);
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	if (n < 16) {
		explicit_bzero(line, sizeof(line));
		if (asprintf(error, "%s: api.tokenFile: the token in %s is shorter than 16 "
			    "characters", c->path, c->api_token_file) < 0)
			*error = NULL;
		return RCFG_EINVALID;
	}
	bop_log_add_secret(line);
	free_secret(c->api_token);
	c->api_token = strdup(line);
	explicit_bzero(line, sizeof(line));
	return c->api_token ? 0 : RCFG_EIO;
}

int rcfg_finish(rcfg_t *c, char **error)
{
	const char *path = c->path ? c->path : "config";

	*error = NULL;
	if (c->api_token && c->api_token_file) {
		if (asprintf(error, "%s: api: give either token or tokenFile, not both", path) < 0)
			*error = NULL;
		return RCFG_EINVALID;
	}
	if (c->api_token_file && read_token(c, error))
		return RCFG_EINVALID;
	if (c->name)
		return 0;
	if (c->namespace_ && c->schedule_name) {
		if (asprintf(&c->name, "%s/%s", c->namespace_, c->schedule_name) < 0)
			c->name = NULL;
	} else if (c->schedule_name) {
		c->name = strdup(c->schedule_name);
	} else {
		c->name = strdup("default");
	}
	return c->name ? 0 : RCFG_EIO;
}

long long rcfg_parse_count(const char *text, long long max)
{
	char *end;
	long long v;

	if (!text || !isdigit((unsigned char)text[0]))
		return -1;
	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno || *end || v > max)
		return -1;
	return v;
}

static int64_t unit_seconds(char unit)
{
	switch (unit) {
	case 's': return 1;
	case 'm': return 60;
	case 'h': return 3600;
	case 'd': return 86400;
	case 'w': return 7 * 86400;
	case 'y': return 365 * 86400;
	default: return 0;
	}
}

int64_t rcfg_parse_duration(const char *text)
{
	const char *p = text;
	int64_t total = 0;

	if (!text || !*text)
		return -1;
	while (*p) {
		char *end;
		long long n;
		int64_t unit;

		if (!isdigit((unsigned char)*p))
			return -1;
		errno = 0;
		n = strtoll(p, &end, 10);
		if (errno || n > INT32_MAX)
			return -1;
		if (!*end && p == text)
			return n;       /* plain seconds */
		unit = unit_seconds(*end);
		if (!unit)
			return -1;
		total += n * unit;
		if (total > INT64_MAX / 4)
			return -1;
		p = end + 1;
	}
	return total;
}

static unsigned int keep(const rcfg_t *c, int rule)
{
	return c->keep[rule] > 0 ? (unsigned int)c->keep[rule] : 0;
}

void rcfg_retention_policy(const rcfg_t *c, bop_retention_policy_t *policy)
{
	bop_retention_policy_init(policy, BOP_RETENTION_POLICY_VERSION);
	policy->keep_last = keep(c, RCFG_KEEP_LAST);
	policy->keep_hourly = keep(c, RCFG_KEEP_HOURLY);
	policy->keep_daily = keep(c, RCFG_KEEP_DAILY);
	policy->keep_weekly = keep(c, RCFG_KEEP_WEEKLY);
	policy->keep_monthly = keep(c, RCFG_KEEP_MONTHLY);
	policy->keep_yearly = keep(c, RCFG_KEEP_YEARLY);
	policy->keep_within_seconds = c->keep_within > 0 ? c->keep_within : 0;
	policy->keep_tags = (const char *const *)c->keep_tags.items;
}

bool rcfg_has_retention(const rcfg_t *c)
{
	for (int i = 0; i < RCFG_KEEP_COUNT; i++)
		if (c->keep[i] > 0)
			return true;
	return c->keep_within > 0 || c->keep_tags.count > 0;
}
