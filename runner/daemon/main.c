/* backupop-runner: the daemon of one schedule. See backupop-runner(8). */
#include "runner.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

void rlog(bop_log_level_t level, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	bop_log(level, "runner", msg);
}

int64_t runner_now(void)
{
	return (int64_t)time(NULL);
}

static void usage(FILE *out)
{
	fputs("Usage: backupop-runner --config FILE [--state-dir DIR] [--log-format text|json]\n"
		"                       [--log-level LEVEL]\n\n"
		"Takes the backups of one schedule: runs them on time, applies retention and\n"
		"serves the runner API. See backupop-runner(8) and backupop-config(5).\n", out);
}

typedef struct args {
	const char *config;
	const char *state_dir;
} args_t;

static int parse_args(args_t *a, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "log-format", required_argument, NULL, 'f' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	bop_log_level_t level;
	int opt;

	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': a->config = optarg; break;
		case 's': a->state_dir = optarg; break;
		case 'f':
			if (!strcmp(optarg, "text"))
				bop_log_set_format(BOP_LOG_FORMAT_TEXT);
			else if (!strcmp(optarg, "json"))
				bop_log_set_format(BOP_LOG_FORMAT_JSON);
			else
				goto bad;
			break;
		case 'l':
			if (bop_log_level_parse(&level, optarg) < 0)
				goto bad;
			bop_log_set_level(level);
			break;
		case 'h': usage(stdout); return -1;
		case 'V':
			printf("backupop-runner %s (libbackupop %s)\n", BOP_VERSION_STRING,
				bop_version_string());
			return -1;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc || !a->config) {
		fprintf(stderr, "backupop-runner: error: %s\n", optind < argc ?
			"unexpected argument" : "give --config FILE");
		return 2;
	}
	return 0;
bad:
	fprintf(stderr, "backupop-runner: error: bad value '%s' for an option\n", optarg);
	return 2;
}

static int config_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int config_error(const char *fmt, ...)
{
	va_list ap;

	fputs("backupop-runner: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 2;
}

/* A multi-file engine's database (CockroachDB) sends its files to the runner: it needs
 * the API and a URL to reach it, and a catalog to hold many files. */
static int check_endpoint(runner_t *rn, const char *path)
{
	const char *url = rn->cfg.api_advertise_url, *engine = rn->cfg.engine_name;

	if (!url)
		return config_error("%s: api.advertiseURL: required with the %s engine: the "
			"URL at which the database reaches this runner's API, e.g. "
			"http://runner-shop-orders.backupop-system.svc:8080", path, engine);
	if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
		return config_error("%s: api.advertiseURL: must start with http:// or https://, "
			"not \"%s\"", path, url);
	if (strpbrk(url, "'\"\\ \t\r\n?#"))
		return config_error("%s: api.advertiseURL: must be a plain URL without quotes, "
			"spaces, '?' or '#'", path);
	if (!rn->cfg.api_listen)
		return config_error("%s: api.listen: required with the %s engine, whose database "
			"sends its files to the runner's API", path, engine);
	if (rn->cfg.mode == RCFG_MODE_SINGLE)
		return config_error("%s: mode: single cannot hold a backup of the %s engine (many "
			"files); use the catalog mode", path, engine);
	return 0;
}

static int load_config(runner_t *rn, const char *path)
{
	char *error = NULL;
	int ret;

	rcfg_init(&rn->cfg);
	ret = rcfg_load(&rn->cfg, path, &error);
	if (!ret)
		ret = rcfg_finish(&rn->cfg, &error);
	if (ret) {
		config_error("%s", error ? error : "out of memory");
		free(error);
		return 2;
	}
	if (!rn->cfg.storage_url)
		return config_error("%s: storage: required (a URL, or a mapping with url)", path);
	if (!rn->cfg.engine_name) {
		char *known = rcfg_engine_names(0);

		config_error("%s: engine: required (%s)", path, known);
		free(known);
		return 2;
	}
	if (rcfg_engine_can(rn->cfg.engine_name, BOP_ENGINE_MULTI_FILE) &&
	    (ret = check_endpoint(rn, path)) != 0)
		return ret;
	rn->compression = BOP_COMPRESSION_ZSTD;
	if (rn->cfg.compression && bop_compression_parse(&rn->compression, rn->cfg.compression) < 0)
		return config_error("%s: compression.algorithm: %s", path, bop_error_last());
	if (rn->cfg.concurrency < 0)
		rn->cfg.concurrency = RCFG_FORBID;
	if (rn->cfg.mode < 0)
		rn->cfg.mode = RCFG_MODE_CATALOG;
	return 0;
}

static int keys_result(int ret)
{
	if (ret < 0)
		config_error("encryption: %s", bop_error_last());
	return ret < 0 ? 2 : 0;
}

static int open_keys(runner_t *rn)
{
	const rcfg_t *c = &rn->cfg;
	int ret = 0;

	if (c->recipients.count || c->recipients_file || c->identity_file || c->passphrase_file) {
		ret = bop_keys_new(&rn->encrypt_keys);
		for (size_t i = 0; ret == 0 && i < c->recipients.count; i++)
			ret = bop_keys_add_recipient(rn->encrypt_keys, c->recipients.items[i]);
		if (ret == 0 && c->recipients_file)
			ret = bop_keys_add_recipients_file(rn->encrypt_keys, c->recipients_file);
		if (ret == 0 && c->identity_file)
			ret = bop_keys_add_identity_file(rn->encrypt_keys, c->identity_file);
		if (ret == 0 && c->passphrase_file)
			ret = bop_keys_set_passphrase_file(rn->encrypt_keys, c->passphrase_file);
	}
	if (ret == 0 && (c->identity_file || c->passphrase_file)) {
		ret = bop_keys_new(&rn->decrypt_keys);
		if (ret == 0 && c->identity_file)
			ret = bop_keys_add_identity_file(rn->decrypt_keys, c->identity_file);
		if (ret == 0 && c->passphrase_file)
			ret = bop_keys_set_passphrase_file(rn->decrypt_keys, c->passphrase_file);
	}
	return keys_result(ret);
}

/* The scratch engine's configuration allows counting rows (one database). */
static int check_row_count(runner_t *rn)
{
	bop_engine_t *engine = NULL;
	int ret = bop_engine_open(&engine, rn->cfg.verify_engine_name, rn->cfg.verify_engine_json);

	if (ret == 0)
		ret = bop_engine_count_rows(engine, NULL, NULL);
	bop_engine_free(engine);
	return ret;
}

static int check_engine(runner_t *rn)
{
	bop_engine_t *engine = NULL;
	int ret = bop_engine_open(&engine, rn->cfg.engine_name, rn->cfg.engine_json);

	if (ret == 0)
		ret = bop_engine_validate(engine);
	bop_engine_free(engine);
	if (ret < 0 && ret != BOP_ENOTSUPPORTED)
		return config_error("engine.%s: %s", rn->cfg.engine_name, bop_error_last());
	if (rn->cfg.verify_expect_rows >= 0 && check_row_count(rn) < 0)
		return config_error("%s: verification.restore.expectRows: %s", rn->cfg.path,
			bop_error_last());
	return 0;
}

static int open_storage(runner_t *rn)
{
	if (runner_open_storage(rn, &rn->storage) < 0) {
		rlog(BOP_LOG_ERROR, "cannot open the storage: %s", bop_error_last());
		return 1;
	}
	return 0;
}

static void on_signal(uv_signal_t *h, int signum)
{
	runner_t *rn = h->data;

	rlog(BOP_LOG_INFO, "%s: stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	if (rn->stopping)
		return;
	rn->stopping = true;
	uv_signal_stop(&rn->sigterm);
	uv_signal_stop(&rn->sigint);
	sched_stop(rn);
}

static void on_wakeup(uv_async_t *h)
{
	sched_kick(h->data);
}

static void write_port(runner_t *rn, void *server, const char *file)
{
	char *path = NULL;
	FILE *fp;

	if (!rn->state_dir || !server || asprintf(&path, "%s/%s", rn->state_dir, file) < 0)
		return;
	fp = fopen(path, "we");
	if (fp) {
		fprintf(fp, "%d\n", bop_http_server_port(server));
		fclose(fp);
	}
	free(path);
}

static int setup_loop(runner_t *rn)
{
	int ret;

	rn->loop = uv_default_loop();
	uv_signal_init(rn->loop, &rn->sigterm);
	uv_signal_init(rn->loop, &rn->sigint);
	rn->sigterm.data = rn;
	rn->sigint.data = rn;
	uv_signal_start(&rn->sigterm, on_signal, SIGTERM);
	uv_signal_start(&rn->sigint, on_signal, SIGINT);
	uv_async_init(rn->loop, &rn->wakeup, on_wakeup);
	rn->wakeup.data = rn;
	ret = sched_start(rn);
	if (ret < 0)
		return config_error("%s: schedule: %s", rn->cfg.path, bop_error_last());
	if (metrics_init(rn) < 0 || api_start(rn) < 0) {
		rlog(BOP_LOG_ERROR, "cannot start the API: %s", bop_error_last());
		return 1;
	}
	if (metrics_listener_start(rn) < 0) {
		rlog(BOP_LOG_ERROR, "cannot start the metrics listener: %s", bop_error_last());
		return 1;
	}
	write_port(rn, rn->metrics_http, "metrics-port");
	write_port(rn, rn->api, "api-port");
	return 0;
}

static void close_cb(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void runner_free(runner_t *rn)
{
	if (rn->loop) {
		uv_walk(rn->loop, close_cb, NULL);
		uv_run(rn->loop, UV_RUN_DEFAULT);
		uv_loop_close(rn->loop);
	}
	api_stop(rn);           /* also removes a generated token's file */
	bop_http_server_free(rn->api);
	bop_http_server_free(rn->metrics_http);
	bop_metrics_free(rn->metrics);
	for (int i = 0; i < 2; i++)
		bop_schedule_free(rn->slots[i].schedule);
	for (size_t i = 0; i < rn->nhistory; i++)
		run_free(rn->history[i]);
	free(rn->history);
	while (rn->pending) {
		run_t *r = rn->pending;

		rn->pending = r->next;
		run_free(r);
	}
	free(rn->retention_json);
	bop_keys_free(rn->encrypt_keys);
	bop_keys_free(rn->decrypt_keys);
	bop_storage_free(rn->storage);
	rcfg_clear(&rn->cfg);
	pthread_mutex_destroy(&rn->mu);
}

int main(int argc, char **argv)
{
	args_t args = { NULL, NULL };
	runner_t rn;
	int ret;

	memset(&rn, 0, sizeof(rn));
	pthread_mutex_init(&rn.mu, NULL);
	ret = parse_args(&args, argc, argv);
	if (ret)
		goto out;
	rn.state_dir = args.state_dir;
	if (rn.state_dir && mkdir(rn.state_dir, 0700) < 0 && errno != EEXIST) {
		ret = config_error("--state-dir %s: %s", rn.state_dir, strerror(errno));
		goto out;
	}
	if (rn.state_dir)
		setenv("TMPDIR", rn.state_dir, 1);
	if ((ret = load_config(&rn, args.config)) || (ret = open_keys(&rn)) ||
	    (ret = check_engine(&rn)) || (ret = open_storage(&rn)))
		goto out;
	/* An earlier life's lock goes first, so that the recovery can clean up after it. */
	locks_init(&rn);
	if (runs_recover(&rn) < 0)
		rlog(BOP_LOG_WARN, "cannot read earlier runs: %s", bop_error_last());
	ret = setup_loop(&rn);
	if (ret)
		goto out;
	rn.ready = true;
	rlog(BOP_LOG_INFO, "backupop-runner %s started for %s", BOP_VERSION_STRING, rn.cfg.name);
	uv_run(rn.loop, UV_RUN_DEFAULT);
	api_stop(&rn);
	rlog(BOP_LOG_INFO, "stopped");
out:
	runner_free(&rn);
	return ret < 0 ? 0 : ret;
}
