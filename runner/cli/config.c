/*
 * The --config file (backupop-config(5)). The format is shared with backupop-runner and
 * loaded by runner/common; this takes the settings the CLI uses out of it.
 */
#include "cli.h"

#include "config.h"

#include <stdlib.h>
#include <string.h>

static void take_string(char **to, char **from)
{
	if (!*from)
		return;
	free(*to);
	*to = *from;
	*from = NULL;
}

/* Both list types have the same layout: move the items. */
static void take_list(cli_strlist_t *to, rcfg_strlist_t *from)
{
	if (!from->set)
		return;
	cli_strlist_clear(to);
	to->items = from->items;
	to->count = from->count;
	to->set = true;
	memset(from, 0, sizeof(*from));
}

static void take_settings(cli_settings_t *s, rcfg_t *c)
{
	take_string(&s->storage, &c->storage_url);
	take_string(&s->name, &c->name);
	take_string(&s->compression, &c->compression);
	take_string(&s->recipients_file, &c->recipients_file);
	take_string(&s->identity_file, &c->identity_file);
	take_string(&s->passphrase_file, &c->passphrase_file);
	take_string(&s->engine_name, &c->engine_name);
	take_string(&s->engine_json, &c->engine_json);
	take_string(&s->api_listen, &c->api_listen);
	take_string(&s->api_token, &c->api_token);
	if (c->level >= 0)
		s->level = c->level;
	if (c->threads >= 0)
		s->threads = c->threads;
	for (int i = 0; i < CLI_KEEP_COUNT; i++)
		if (c->keep[i] >= 0)
			s->keep[i] = c->keep[i];
	if (c->keep_within >= 0)
		s->keep_within = c->keep_within;
	take_list(&s->recipients, &c->recipients);
	take_list(&s->keep_tags, &c->keep_tags);
	take_list(&s->tags, &c->tags);
	take_list(&s->storage_settings, &c->storage_settings);
}

int cli_config_load(cli_settings_t *s, const char *path)
{
	char *error = NULL;
	rcfg_t c;
	int ret;

	rcfg_init(&c);
	ret = rcfg_load(&c, path, &error);
	if (!ret)
		ret = rcfg_finish(&c, &error);
	if (ret) {
		cli_error(0, "%s", error ? error : "out of memory");
		free(error);
		rcfg_clear(&c);
		return ret == RCFG_EINVALID ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
	}
	take_settings(s, &c);
	rcfg_clear(&c);
	return 0;
}
