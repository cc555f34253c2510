/* Settings: defaults, merging config and flags, and small value parsers. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

void cli_settings_init(cli_settings_t *s)
{
	memset(s, 0, sizeof(*s));
	s->level = -1;
	s->threads = -1;
	s->scrypt_work_factor = -1;
	for (int i = 0; i < CLI_KEEP_COUNT; i++)
		s->keep[i] = -1;
	s->keep_within = -1;
}

void cli_strlist_clear(cli_strlist_t *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->items[i]);
	free(list->items);
	memset(list, 0, sizeof(*list));
}

void cli_settings_clear(cli_settings_t *s)
{
	free(s->storage);
	free(s->name);
	free(s->compression);
	free(s->recipients_file);
	free(s->identity_file);
	free(s->passphrase_file);
	cli_strlist_clear(&s->recipients);
	cli_strlist_clear(&s->keep_tags);
	cli_strlist_clear(&s->tags);
	free(s->engine_name);
	if (s->engine_json)
		explicit_bzero(s->engine_json, strlen(s->engine_json));
	free(s->engine_json);
	for (size_t i = 0; i < s->storage_settings.count; i++)
		explicit_bzero(s->storage_settings.items[i], strlen(s->storage_settings.items[i]));
	cli_strlist_clear(&s->storage_settings);
	free(s->api_listen);
	if (s->api_token)
		explicit_bzero(s->api_token, strlen(s->api_token));
	free(s->api_token);
	cli_settings_init(s);
}

int cli_strlist_add(cli_strlist_t *list, const char *item)
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

static void take_string(char **base, char **over)
{
	if (!*over)
		return;
	free(*base);
	*base = *over;
	*over = NULL;
}

static void take_list(cli_strlist_t *base, cli_strlist_t *over)
{
	if (!over->set)
		return;
	cli_strlist_clear(base);
	*base = *over;
	memset(over, 0, sizeof(*over));
}

void cli_settings_merge(cli_settings_t *base, cli_settings_t *over)
{
	take_string(&base->storage, &over->storage);
	take_string(&base->name, &over->name);
	take_string(&base->compression, &over->compression);
	take_string(&base->recipients_file, &over->recipients_file);
	take_string(&base->identity_file, &over->identity_file);
	take_string(&base->passphrase_file, &over->passphrase_file);
	if (over->level >= 0)
		base->level = over->level;
	if (over->threads >= 0)
		base->threads = over->threads;
	if (over->scrypt_work_factor >= 0)
		base->scrypt_work_factor = over->scrypt_work_factor;
	for (int i = 0; i < CLI_KEEP_COUNT; i++)
		if (over->keep[i] >= 0)
			base->keep[i] = over->keep[i];
	if (over->keep_within >= 0)
		base->keep_within = over->keep_within;
	take_list(&base->recipients, &over->recipients);
	take_list(&base->keep_tags, &over->keep_tags);
	take_list(&base->tags, &over->tags);
	take_string(&base->engine_name, &over->engine_name);
	take_string(&base->engine_json, &over->engine_json);
	take_list(&base->storage_settings, &over->storage_settings);
	take_string(&base->api_listen, &over->api_listen);
	take_string(&base->api_token, &over->api_token);
}

bool cli_settings_has_retention(const cli_settings_t *s)
{
	for (int i = 0; i < CLI_KEEP_COUNT; i++)
		if (s->keep[i] > 0)
			return true;
	return s->keep_within > 0 || s->keep_tags.count > 0;
}

void cli_retention_policy(const cli_settings_t *s, bop_retention_policy_t *policy)
{
	bop_retention_policy_init(policy, BOP_RETENTION_POLICY_VERSION);
	policy->keep_last = s->keep[CLI_KEEP_LAST] > 0 ? (unsigned int)s->keep[CLI_KEEP_LAST] : 0;
	policy->keep_hourly = s->keep[CLI_KEEP_HOURLY] > 0 ?
		(unsigned int)s->keep[CLI_KEEP_HOURLY] : 0;
	policy->keep_daily = s->keep[CLI_KEEP_DAILY] > 0 ? (unsigned int)s->keep[CLI_KEEP_DAILY] : 0;
	policy->keep_weekly = s->keep[CLI_KEEP_WEEKLY] > 0 ?
		(unsigned int)s->keep[CLI_KEEP_WEEKLY] : 0;
	policy->keep_monthly = s->keep[CLI_KEEP_MONTHLY] > 0 ?
		(unsigned int)s->keep[CLI_KEEP_MONTHLY] : 0;
	policy->keep_yearly = s->keep[CLI_KEEP_YEARLY] > 0 ?
		(unsigned int)s->keep[CLI_KEEP_YEARLY] : 0;
	policy->keep_within_seconds = s->keep_within > 0 ? s->keep_within : 0;
	policy->keep_tags = (const char *const *)s->keep_tags.items;
}
