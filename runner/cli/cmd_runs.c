/* backupop runs and backupop status: a backupop-runner's API, read with libcurl. */
#include "cli.h"

#include <api_client.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int read_token_file(const char *path, char **out)
{
	char line[4096];
	FILE *fp = fopen(path, "re");

	if (!fp)
		return cli_error(CLI_EXIT_USAGE, "cannot open token file %s: %s", path,
			strerror(errno));
	if (!fgets(line, sizeof(line), fp))
		line[0] = '\0';
	fclose(fp);
	line[strcspn(line, "\r\n")] = '\0';
	if (strlen(line) >= 4)
		bop_log_add_secret(line);
	*out = strdup(line);
	explicit_bzero(line, sizeof(line));
	return *out ? 0 : cli_error(CLI_EXIT_FAILED, "out of memory");
}

static int api_base(const cli_t *cli, char **url, char **token)
{
	int ret;

	*url = NULL;
	*token = NULL;
	if (cli->url)
		*url = strdup(cli->url);
	else if (cli->settings.api_listen && asprintf(url, "http://%s", cli->settings.api_listen) < 0)
		*url = NULL;
	if (!*url)
		return cli_usage(cli, "which runner? give --url URL, or --config FILE with an "
			"api.listen address");
	if (cli->token_file) {
		ret = read_token_file(cli->token_file, token);
		if (ret)
			return ret;
	} else if (cli->settings.api_token) {
		*token = strdup(cli->settings.api_token);
	} else {
		/* A runner without a configured token generated one for its port. */
		char err[512];

		ret = rapi_generated_token(*url, token, err, sizeof(err));
		if (ret < 0)
			return cli_error(CLI_EXIT_FAILED, "%s", err);
		if (ret == 0 && strlen(*token) >= 4)
			bop_log_add_secret(*token);
	}
	return 0;
}

/* GETs `path` from the runner's API and parses the JSON answer. */
static int api_get(const cli_t *cli, const char *path, json_object **out)
{
	char *base = NULL, *token = NULL, *url = NULL, err[512];
	rapi_reply_t reply = { 0, NULL };
	int ret;

	*out = NULL;
	ret = api_base(cli, &base, &token);
	if (ret)
		goto out;
	if (asprintf(&url, "%s%s", base, path) < 0) {
		url = NULL;
		ret = cli_error(CLI_EXIT_FAILED, "out of memory");
		goto out;
	}
	if (rapi_request(url, "GET", token, NULL, 0, 30000, &reply, err, sizeof(err)) < 0) {
		ret = cli_error(CLI_EXIT_FAILED, "cannot reach the runner at %s: %s", base, err);
		goto out;
	}
	if (reply.status == 401) {
		ret = cli_error(CLI_EXIT_FAILED, "the runner at %s refused the token (401): give "
			"--token-file FILE or api.token in the config", base);
		goto out;
	}
	if (reply.status == 404) {
		ret = cli_error(CLI_EXIT_NOTFOUND, "%s: not found", url);
		goto out;
	}
	if (reply.status != 200 || !reply.body || !(*out = json_tokener_parse(reply.body))) {
		ret = cli_error(CLI_EXIT_FAILED, "the runner at %s answered %ld%s%s", base,
			reply.status, reply.body ? ": " : "", reply.body ? reply.body : "");
		goto out;
	}
	ret = 0;
out:
	if (token)
		explicit_bzero(token, strlen(token));
	free(token);
	free(url);
	free(base);
	rapi_reply_clear(&reply);
	return ret;
}

/* What `runs` and `status` share: they take no arguments and GET `path`. With --json the
 * answer is printed as it came and *doc is NULL; else *doc is the answer to show. */
static int api_command(const cli_t *cli, const char *path, json_object **doc)
{
	int ret;

	*doc = NULL;
	if (cli->nargs > 0)
		return cli_usage(cli, "unexpected argument '%s'", cli->args[0]);
	ret = api_get(cli, path, doc);
	if (ret == 0 && cli->json) {
		printf("%s\n", json_object_to_json_string_ext(*doc, JSON_C_TO_STRING_PRETTY));
		json_object_put(*doc);
		*doc = NULL;
	}
	return ret;
}

static const char *str(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return "-";
	return json_object_get_string(v);
}

static void print_time(const char *label, json_object *o, const char *key)
{
	json_object *v;
	char buf[64] = "-";
	struct tm tm;
	time_t t;

	if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_int)) {
		t = (time_t)json_object_get_int64(v);
		gmtime_r(&t, &tm);
		strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	printf("%-14s %s\n", label, buf);
}

int cli_cmd_runs(cli_t *cli)
{
	json_object *doc, *runs;
	int ret = api_command(cli, "/v1/runs", &doc);

	if (ret || !doc)
		return ret;
	if (!json_object_object_get_ex(doc, "runs", &runs) ||
	    !json_object_is_type(runs, json_type_array)) {
		json_object_put(doc);
		return cli_error(CLI_EXIT_FAILED, "the runner's answer has no list of runs");
	}
	printf("%-24s %-8s %-10s %-10s %-26s %s\n", "RUN", "KIND", "TRIGGER", "PHASE", "BACKUP",
		"ERROR");
	for (size_t i = 0; i < json_object_array_length(runs); i++) {
		json_object *r = json_object_array_get_idx(runs, i);

		printf("%-24s %-8s %-10s %-10s %-26s %s\n", str(r, "id"), str(r, "kind"),
			str(r, "trigger"), str(r, "phase"), str(r, "backup"),
			strcmp(str(r, "error"), "-") ? str(r, "error") : "");
	}
	json_object_put(doc);
	return 0;
}

int cli_cmd_status(cli_t *cli)
{
	json_object *doc, *current;
	int ret = api_command(cli, "/v1/status", &doc);

	if (ret || !doc)
		return ret;
	printf("%-14s %s\n", "name", str(doc, "name"));
	printf("%-14s %s\n", "schedule", str(doc, "schedule"));
	printf("%-14s %s\n", "suspended", str(doc, "suspend"));
	print_time("last success", doc, "lastSuccess");
	print_time("next run", doc, "nextRun");
	if (json_object_object_get_ex(doc, "currentRun", &current) &&
	    json_object_is_type(current, json_type_object))
		printf("%-14s %s (%s, since %s)\n", "current run", str(current, "id"),
			str(current, "kind"), str(current, "start"));
	else
		printf("%-14s -\n", "current run");
	json_object_put(doc);
	return 0;
}
