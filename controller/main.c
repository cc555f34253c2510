/* backupop-controller: keeps one runner per BackupSchedule. See backupop-controller(8). */
#include "ctl.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define KEY_SECRET "backupop-controller-key"

static int wake_pipe[2] = { -1, -1 };
static volatile sig_atomic_t exit_code;

void clog_(bop_log_level_t level, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	bop_log(level, "controller", msg);
}

int64_t ctl_now(void)
{
	return (int64_t)time(NULL);
}

void ctl_format_time(int64_t t, char buf[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int64_t ctl_parse_time(const char *s)
{
	struct tm tm = { 0 };
	const char *end;

	if (!s)
		return 0;
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return 0;
	return (int64_t)timegm(&tm);
}

void ctl_count_write(ctl_t *c, const char *kind)
{
	const char *labels[] = { kind, NULL };

	bop_metric_add(c->m_writes, labels, 1);
}

void ctl_enqueue(ctl_t *c, char kind, const char *ns_name, unsigned int delay_ms)
{
	char key[700];

	snprintf(key, sizeof(key), "%c/%.600s", kind, ns_name);
	if (delay_ms)
		bop_workqueue_add_after(c->queue, key, delay_ms);
	else
		bop_workqueue_add(c->queue, key);
}

/* ---- informer callbacks: they only queue keys ---- */

static void on_schedule(void *ud, bop_k8s_event_type_t type, const char *key, const char *object)
{
	(void)type;
	(void)object;
	ctl_enqueue(ud, 's', key, 0);
}

static void on_run(void *ud, bop_k8s_event_type_t type, const char *key, const char *object)
{
	(void)type;
	(void)object;
	ctl_enqueue(ud, 'r', key, 0);
}

static void enqueue_schedule(void *ud, const char *key)
{
	ctl_enqueue(ud, 's', key, 0);
}

static void enqueue_refs(ctl_t *c, const char *ref)
{
	pthread_mutex_lock(&c->lock);
	ctl_index_each(c->refs, ref, enqueue_schedule, c);
	pthread_mutex_unlock(&c->lock);
}

static void on_storage(void *ud, bop_k8s_event_type_t type, const char *key, const char *object)
{
	char ref[600];

	(void)type;
	(void)object;
	snprintf(ref, sizeof(ref), "storage:%s", key);
	enqueue_refs(ud, ref);
}

static void on_secret(void *ud, bop_k8s_event_type_t type, const char *key, const char *object)
{
	ctl_t *c = ud;
	char ref[600];

	(void)object;
	if (type == BOP_K8S_DELETED)
		ctl_secret_forget(c, key);
	snprintf(ref, sizeof(ref), "secret:%s", key);
	enqueue_refs(c, ref);
}

typedef struct ns_ctx {
	ctl_t *c;
	const char *ns;
	size_t len;
} ns_ctx_t;

static int ns_schedule(void *ud, const char *key, const char *object)
{
	ns_ctx_t *n = ud;

	(void)object;
	if (!strncmp(key, n->ns, n->len) && key[n->len] == '/')
		ctl_enqueue(n->c, 's', key, 0);
	return 0;
}

/* A namespace's labels decide whether a storage allows it (allowedNamespaces.selector). */
static void on_namespace(void *ud, bop_k8s_event_type_t type, const char *key, const char *object)
{
	ns_ctx_t n = { ud, key, strlen(key) };

	(void)object;
	if (type == BOP_K8S_MODIFIED)
		bop_k8s_informer_foreach(n.c->schedules, ns_schedule, &n);
}

/* Someone changed or deleted an object we made: reconcile its schedule. */
static void on_owned(void *ud, bop_k8s_event_type_t type, const char *key, const char *object)
{
	ctl_t *c = ud;
	json_object *o = jparse(object);
	const char *ns = NULL;
	json_object *labels = jget(o, "metadata.labels"), *v;
	char sk[600];

	(void)type;
	(void)key;
	if (labels && json_object_object_get_ex(labels, "backupop.io/schedule-namespace", &v) &&
	    (ns = json_object_get_string(v)) &&
	    json_object_object_get_ex(labels, "backupop.io/schedule-name", &v)) {
		snprintf(sk, sizeof(sk), "%s/%s", ns, json_object_get_string(v));
		ctl_enqueue(c, 's', sk, 0);
	}
	json_object_put(o);
}

/* ---- workers ---- */

typedef struct worker_arg {
	ctl_t *c;
	int w;
} worker_arg_t;

static worker_arg_t worker_args[CTL_WORKERS];

static bool all_synced(ctl_t *c)
{
	bop_k8s_informer_t *all[] = { c->schedules, c->storages, c->runs, c->secrets,
		c->namespaces, c->owned[0], c->owned[1], c->owned[2] };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (!bop_k8s_informer_synced(all[i]))
			return false;
	return true;
}

static void *worker(void *p)
{
	worker_arg_t *a = p;
	ctl_t *c = a->c;
	char *key;

	while (!all_synced(c) && !atomic_load(&c->stopping))
		usleep(50 * 1000);
	if (a->w == 0 && !atomic_exchange(&c->swept, true))
		ctl_sweep_orphans(c, 0);
	while (bop_workqueue_get(c->queue, &key, -1) == 0) {
		char ns[256] = "", *name;
		const char *kind = key[0] == 's' ? "BackupSchedule" : "BackupRun";
		const char *labels[] = { kind, NULL, NULL };
		struct timespec t0, t1;
		int ret = 0;

		bop_metric_set(c->m_queue, NULL, (double)bop_workqueue_len(c->queue));
		clock_gettime(CLOCK_MONOTONIC, &t0);
		name = strchr(key + 2, '/');
		if (strlen(key) > 2 && name && (size_t)(name - key - 2) < sizeof(ns)) {
			memcpy(ns, key + 2, (size_t)(name - key - 2));
			ns[name - key - 2] = '\0';
			name++;
			bop_error_clear();
			ret = key[0] == 's' ? ctl_reconcile_schedule(c, a->w, ns, name) :
				ctl_reconcile_run(c, a->w, ns, name);
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		labels[1] = ret ? "error" : "success";
		bop_metric_add(c->m_reconciles, labels, 1);
		bop_metric_observe(c->m_duration, labels, (double)(t1.tv_sec - t0.tv_sec) +
			(double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
		if (ret) {
			clog_(ret == BOP_ECONFLICT ? BOP_LOG_DEBUG : BOP_LOG_WARN,
				"%s %s: %s (retrying, attempt %u)", kind, key + 2, bop_error_last(),
				bop_workqueue_failures(c->queue, key) + 1);
			bop_metric_add(c->m_errors, labels, 1);
			bop_workqueue_add_rate_limited(c->queue, key);
		} else {
			bop_workqueue_forget(c->queue, key);
		}
		bop_workqueue_done(c->queue, key);
		bop_free(key);
	}
	return NULL;
}

static void start_workers(ctl_t *c)
{
	for (int i = 0; i < CTL_WORKERS; i++) {
		worker_args[i].c = c;
		worker_args[i].w = i;
		if (pthread_create(&c->workers[i], NULL, worker, &worker_args[i]) == 0)
			c->nworkers++;
	}
}

static void on_started(void *ud)
{
	ctl_t *c = ud;

	clog_(BOP_LOG_INFO, "became the leader (lease %s/%s)", c->args.namespace, c->args.lease_name);
	atomic_store(&c->leading, true);
	bop_metric_set(c->m_leader, NULL, 1);
	start_workers(c);
}

static void on_stopped(void *ud)
{
	ctl_t *c = ud;
	char b = 1;

	bop_metric_set(c->m_leader, NULL, 0);
	if (!atomic_exchange(&c->leading, false) || atomic_load(&c->stopping))
		return;
	/* someone else may be reconciling now: stop at once, the Deployment restarts us */
	clog_(BOP_LOG_ERROR, "lost the leader lease %s/%s: exiting", c->args.namespace,
		c->args.lease_name);
	exit_code = 1;
	if (write(wake_pipe[1], &b, 1) < 0) {
		/* nothing else to do */
	}
}

/* ---- HTTP: health and metrics ---- */

static int h_healthz(bop_http_request_t *req, void *payload)
{
	(void)payload;
	return bop_http_respond(req, 200, "text/plain", "ok\n", 3);
}

static int h_readyz(bop_http_request_t *req, void *payload)
{
	ctl_t *c = payload;

	if (!all_synced(c))
		return bop_http_respond(req, 503, "text/plain", "caches not synced\n", 18);
	return bop_http_respond(req, 200, "text/plain", "ok\n", 3);
}

static int setup_metrics(ctl_t *c)
{
	static const char *const kr[] = { "kind", "result", NULL };
	static const char *const k[] = { "kind", NULL };
	static const double buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
	int ret;

	if ((ret = bop_metrics_new(&c->metrics)) ||
	    (ret = bop_metrics_counter(c->metrics, &c->m_reconciles,
		"backupop_controller_reconcile_total", "Reconciles by kind and result.", kr)) ||
	    (ret = bop_metrics_histogram(c->metrics, &c->m_duration,
		"backupop_controller_reconcile_duration_seconds", "Time spent in one reconcile.",
		kr, buckets, sizeof(buckets) / sizeof(buckets[0]))) ||
	    (ret = bop_metrics_gauge(c->metrics, &c->m_queue, "backupop_controller_queue_depth",
		"Keys waiting in the work queue.", NULL)) ||
	    (ret = bop_metrics_counter(c->metrics, &c->m_writes, "backupop_controller_writes_total",
		"Objects and statuses written to the API server, by kind.", k)) ||
	    (ret = bop_metrics_counter(c->metrics, &c->m_errors,
		"backupop_controller_reconcile_errors_total", "Reconciles that failed (retried).", kr)) ||
	    (ret = bop_metrics_gauge(c->metrics, &c->m_leader, "backupop_controller_leader",
		"1 while this process is the leader.", NULL)))
		return ret;
	return 0;
}

static int start_http(ctl_t *c)
{
	bop_http_server_options_t o;
	int ret;

	if (!c->args.metrics_addr || !*c->args.metrics_addr || !strcmp(c->args.metrics_addr, "0"))
		return 0;
	bop_http_server_options_init(&o, BOP_HTTP_SERVER_OPTIONS_VERSION);
	o.listen = c->args.metrics_addr;
	if ((ret = bop_http_server_new(&c->http, &o)) ||
	    (ret = bop_http_server_route(c->http, "GET", "/healthz", BOP_HTTP_ROUTE_PUBLIC,
		h_healthz, c)) ||
	    (ret = bop_http_server_route(c->http, "GET", "/readyz", BOP_HTTP_ROUTE_PUBLIC,
		h_readyz, c)) ||
	    (ret = bop_http_server_serve_metrics(c->http, "/metrics", BOP_HTTP_ROUTE_PUBLIC,
		c->metrics)) ||
	    (ret = bop_http_server_start(c->http)))
		return ret;
	clog_(BOP_LOG_INFO, "serving /metrics, /healthz and /readyz on port %d",
		bop_http_server_port(c->http));
	return 0;
}

/* ---- the controller's secret key (for runner API tokens) ---- */

static int hexval(int ch)
{
	return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* The key is kept hex-encoded in Secret backupop-controller-key, data.key; made once. */
static int load_key(ctl_t *c)
{
	char path[512], *body = NULL, hex[65];
	json_object *o = NULL;
	int ret;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/secrets/" KEY_SECRET, c->args.namespace);
	for (int attempt = 0; attempt < 3; attempt++) {
		const char *b64;

		ret = bop_k8s_request(c->client, BOP_K8S_GET, path, NULL, NULL, NULL, &body);
		if (ret == 0 && (o = jparse(body)) && (b64 = js(o, "data.key"))) {
			unsigned char raw[128];
			size_t n = 0;
			unsigned int acc = 0;
			int bits = 0;

			/* base64 -> the hex text -> 32 bytes */
			for (const char *p = b64; *p && *p != '='; p++) {
				const char *tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
				const char *q = strchr(tab, *p);

				if (!q)
					break;
				acc = (acc << 6) | (unsigned int)(q - tab);
				bits += 6;
				if (bits >= 8 && n < sizeof(raw)) {
					bits -= 8;
					raw[n++] = (unsigned char)(acc >> bits);
				}
			}
			if (n != 64) {
				ret = bop_error_set(BOP_EFORMAT, "Secret " KEY_SECRET " has a malformed key");
				goto out;
			}
			for (int i = 0; i < 32; i++) {
				int hi = hexval(raw[2 * i]), lo = hexval(raw[2 * i + 1]);

				if (hi < 0 || lo < 0) {
					ret = bop_error_set(BOP_EFORMAT, "Secret " KEY_SECRET " has a malformed key");
					goto out;
				}
				c->key[i] = (unsigned char)(hi << 4 | lo);
			}
			memset(raw, 0, sizeof(raw));
			ret = 0;
			goto out;
		}
		json_object_put(o);
		o = NULL;
		bop_free(body);
		body = NULL;
		if (ret != BOP_ENOTFOUND)
			goto out;
		/* make it; if another controller made it first (409) read theirs */
		{
			unsigned char k[32];
			char create[512], cpath[400], enc[100];
			static const char tab[] =
				"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
			size_t bi = 0;

			if (getrandom(k, sizeof(k), 0) != (ssize_t)sizeof(k)) {
				ret = bop_error_set(BOP_EIO, "getrandom failed");
				goto out;
			}
			for (int i = 0; i < 32; i++)
				snprintf(hex + 2 * i, 3, "%02x", k[i]);
			for (int i = 0; i < 64; i += 3) {
				unsigned int v = (unsigned char)hex[i] << 16 |
					(i + 1 < 64 ? (unsigned char)hex[i + 1] << 8 : 0) |
					(i + 2 < 64 ? (unsigned char)hex[i + 2] : 0);

				enc[bi++] = tab[v >> 18 & 63];
				enc[bi++] = tab[v >> 12 & 63];
				enc[bi++] = i + 1 < 64 ? tab[v >> 6 & 63] : '=';
				enc[bi++] = i + 2 < 64 ? tab[v & 63] : '=';
			}
			enc[bi] = '\0';
			snprintf(create, sizeof(create), "{\"apiVersion\":\"v1\",\"kind\":\"Secret\","
				"\"metadata\":{\"name\":\"" KEY_SECRET "\",\"namespace\":\"%s\"},"
				"\"type\":\"Opaque\",\"data\":{\"key\":\"%s\"}}", c->args.namespace, enc);
			snprintf(cpath, sizeof(cpath), "/api/v1/namespaces/%s/secrets", c->args.namespace);
			ret = bop_k8s_request(c->client, BOP_K8S_CREATE, cpath, create, NULL, NULL, NULL);
			memset(create, 0, sizeof(create));
			memset(k, 0, sizeof(k));
			memset(hex, 0, sizeof(hex));
			if (ret && ret != BOP_ECONFLICT && ret != BOP_EEXISTS)
				goto out;
			if (ret == 0)
				clog_(BOP_LOG_INFO, "created Secret %s/" KEY_SECRET " (the key of the "
					"runners' API tokens)", c->args.namespace);
		}
	}
	ret = bop_error_set(BOP_EIO, "cannot read or create Secret " KEY_SECRET);
out:
	json_object_put(o);
	bop_free(body);
	return ret;
}

/* ---- informers ---- */

static int informer(ctl_t *c, bop_k8s_informer_t **out, const char *path, const char *selector,
	bool meta, bop_k8s_informer_cb cb)
{
	bop_k8s_informer_options_t o = BOP_K8S_INFORMER_OPTIONS_INIT;
	int ret;

	o.path = path;
	o.label_selector = selector;
	o.metadata_only = meta;
	o.resync_seconds = cb == on_schedule || cb == on_run ? c->args.resync_seconds : 0;
	o.callback = cb;
	o.ud = c;
	ret = bop_k8s_informer_new(out, c->client, &o);
	if (ret == 0)
		ret = bop_k8s_informer_start(*out);
	return ret;
}

static int start_informers(ctl_t *c)
{
	static const char *const owned_paths[BOP_RECONCILE_KINDS] = {
		"/api/v1/namespaces/", "/apis/apps/v1/namespaces/", "/api/v1/namespaces/" };
	static const char *const owned_res[BOP_RECONCILE_KINDS] = {
		"secrets", "statefulsets", "services" };
	const char *sel = "app.kubernetes.io/managed-by=backupop-controller";
	char p[400];
	int ret;

	if ((ret = informer(c, &c->schedules, CTL_GROUP_PATH "/backupschedules", NULL, false,
		on_schedule)) ||
	    (ret = informer(c, &c->storages, CTL_GROUP_PATH "/backupstorages", NULL, false,
		on_storage)) ||
	    (ret = informer(c, &c->runs, CTL_GROUP_PATH "/backupruns", NULL, false, on_run)) ||
	    (ret = informer(c, &c->secrets, "/api/v1/secrets", NULL, true, on_secret)) ||
	    (ret = informer(c, &c->namespaces, "/api/v1/namespaces", NULL, true, on_namespace)))
		return ret;
	for (int k = 0; k < BOP_RECONCILE_KINDS; k++) {
		snprintf(p, sizeof(p), "%s%s/%s", owned_paths[k], c->args.namespace, owned_res[k]);
		if ((ret = informer(c, &c->owned[k], p, sel, true, on_owned)))
			return ret;
	}
	return 0;
}

/* ---- arguments ---- */

static void usage(FILE *out)
{
	fputs("Usage: backupop-controller --runner-image IMAGE [options]\n\n"
		"Keeps one backupop-runner (Secret, StatefulSet, Service) per BackupSchedule and\n"
		"drives BackupRuns. See backupop-controller(8).\n\n"
		"  --namespace NS            where runner objects live (default: the service\n"
		"                            account's or kubeconfig context's namespace)\n"
		"  --runner-image IMAGE      the backupop-runner image (required)\n"
		"  --image-pull-secret NAME  imagePullSecrets of runner pods (repeatable)\n"
		"  --leader-elect            campaign for the Lease before reconciling\n"
		"  --lease-name NAME         default backupop-controller\n"
		"  --lease-seconds N         default 15\n"
		"  --identity ID             default the host name and pid\n"
		"  --metrics-addr ADDR       /metrics, /healthz, /readyz (default :8081; 0: off)\n"
		"  --kubeconfig FILE, --context NAME\n"
		"  --resync-seconds N        default 600\n"
		"  --runner-port N           default 8080\n"
		"  --log-format text|json, --log-level LEVEL\n", out);
}

static int parse_args(ctl_args_t *a, int argc, char **argv)
{
	enum { O_NS = 256, O_IMAGE, O_PULL, O_LEADER, O_LEASE, O_LEASE_S, O_ID, O_METRICS, O_KCFG,
		O_CTX, O_RESYNC, O_PORT, O_FMT, O_LEVEL, O_RURL, O_POLL, O_HELP, O_VERSION };
	static const struct option longopts[] = {
		{ "namespace", required_argument, NULL, O_NS },
		{ "runner-image", required_argument, NULL, O_IMAGE },
		{ "image-pull-secret", required_argument, NULL, O_PULL },
		{ "leader-elect", no_argument, NULL, O_LEADER },
		{ "lease-name", required_argument, NULL, O_LEASE },
		{ "lease-seconds", required_argument, NULL, O_LEASE_S },
		{ "identity", required_argument, NULL, O_ID },
		{ "metrics-addr", required_argument, NULL, O_METRICS },
		{ "kubeconfig", required_argument, NULL, O_KCFG },
		{ "context", required_argument, NULL, O_CTX },
		{ "resync-seconds", required_argument, NULL, O_RESYNC },
		{ "runner-port", required_argument, NULL, O_PORT },
		{ "log-format", required_argument, NULL, O_FMT },
		{ "log-level", required_argument, NULL, O_LEVEL },
		{ "runner-url", required_argument, NULL, O_RURL },   /* tests only */
		{ "poll-seconds", required_argument, NULL, O_POLL },
		{ "help", no_argument, NULL, O_HELP },
		{ "version", no_argument, NULL, O_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	bop_log_level_t level;
	int opt;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case O_NS: a->namespace = optarg; break;
		case O_IMAGE: a->runner_image = optarg; break;
		case O_PULL:
			if (a->n_pull_secrets == sizeof(a->pull_secrets) / sizeof(a->pull_secrets[0])) {
				fprintf(stderr, "backupop-controller: at most 16 --image-pull-secret\n");
				return 2;
			}
			a->pull_secrets[a->n_pull_secrets++] = optarg;
			break;
		case O_LEADER: a->leader_elect = true; break;
		case O_LEASE: a->lease_name = optarg; break;
		case O_LEASE_S: a->lease_seconds = (unsigned int)strtoul(optarg, NULL, 10); break;
		case O_ID: a->identity = optarg; break;
		case O_METRICS: a->metrics_addr = optarg; break;
		case O_KCFG: a->kubeconfig = optarg; break;
		case O_CTX: a->context = optarg; break;
		case O_RESYNC: a->resync_seconds = (unsigned int)strtoul(optarg, NULL, 10); break;
		case O_PORT: a->runner_port = (unsigned int)strtoul(optarg, NULL, 10); break;
		case O_POLL: a->poll_seconds = (unsigned int)strtoul(optarg, NULL, 10); break;
		case O_RURL: a->runner_url = optarg; break;
		case O_FMT:
			if (!strcmp(optarg, "json"))
				bop_log_set_format(BOP_LOG_FORMAT_JSON);
			else if (!strcmp(optarg, "text"))
				bop_log_set_format(BOP_LOG_FORMAT_TEXT);
			else {
				fprintf(stderr, "backupop-controller: --log-format is text or json\n");
				return 2;
			}
			break;
		case O_LEVEL:
			if (bop_log_level_parse(&level, optarg)) {
				fprintf(stderr, "backupop-controller: --log-level: %s\n", bop_error_last());
				return 2;
			}
			bop_log_set_level(level);
			break;
		case O_VERSION: printf("backupop-controller %s\n", bop_version_string()); exit(0);
		case 'h':
		case O_HELP: usage(stdout); exit(0);
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "backupop-controller: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!a->runner_image) {
		fprintf(stderr, "backupop-controller: --runner-image is required\n");
		return 2;
	}
	return 0;
}

static void *free_informer(void *p)
{
	bop_k8s_informer_free(p);
	return NULL;
}

/* Each informer takes up to a second to close its watch: close them all at once. */
static void free_informers(ctl_t *c)
{
	bop_k8s_informer_t *all[] = { c->schedules, c->storages, c->runs, c->secrets,
		c->namespaces, c->owned[0], c->owned[1], c->owned[2] };
	pthread_t t[sizeof(all) / sizeof(all[0])];
	bool started[sizeof(all) / sizeof(all[0])] = { false };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		started[i] = all[i] && pthread_create(&t[i], NULL, free_informer, all[i]) == 0;
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (started[i])
			pthread_join(t[i], NULL);
		else
			bop_k8s_informer_free(all[i]);
	}
}

static void on_signal(int sig)
{
	char b = (char)sig;

	if (write(wake_pipe[1], &b, 1) < 0) {
		/* the pipe is full: a wake-up is pending anyway */
	}
}

int main(int argc, char **argv)
{
	static ctl_t ctl;
	ctl_t *c = &ctl;
	bop_k8s_client_options_t co = BOP_K8S_CLIENT_OPTIONS_INIT;
	char ident[300], host[256] = "controller";
	struct sigaction sa;
	int ret;

	c->args.lease_name = "backupop-controller";
	c->args.metrics_addr = ":8081";
	c->args.runner_port = 8080;
	c->args.resync_seconds = 600;
	c->args.lease_seconds = 15;
	c->args.poll_seconds = 2;
	ret = parse_args(&c->args, argc, argv);
	if (ret)
		return ret;
	if (!c->args.poll_seconds)
		c->args.poll_seconds = 1;
	if (pipe(wake_pipe)) {
		perror("pipe");
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	co.kubeconfig = c->args.kubeconfig;
	co.context = c->args.context;
	ret = bop_k8s_client_new(&c->client, &co);
	for (int i = 0; ret == 0 && i < CTL_WORKERS; i++)
		ret = bop_k8s_client_new(&c->wclient[i], &co);
	if (ret) {
		fprintf(stderr, "backupop-controller: %s\n", bop_error_last());
		return 1;
	}
	if (!c->args.namespace)
		c->args.namespace = bop_k8s_client_namespace(c->client);
	if (!c->args.identity) {
		gethostname(host, sizeof(host) - 1);
		snprintf(ident, sizeof(ident), "%s_%ld", host, (long)getpid());
		c->args.identity = ident;
	}
	pthread_mutex_init(&c->lock, NULL);
	c->refs = ctl_index_new();
	c->secret_cache = json_object_new_object();
	c->active = json_object_new_object();
	if ((ret = setup_metrics(c)) || (ret = start_http(c)) ||
	    (ret = bop_workqueue_new(&c->queue, NULL)) ||
	    (ret = bop_k8s_recorder_new(&c->recorder, c->client, "backupop-controller")) ||
	    (ret = load_key(c)) || (ret = start_informers(c))) {
		clog_(BOP_LOG_ERROR, "cannot start: %s", bop_error_last());
		return 1;
	}
	clog_(BOP_LOG_INFO, "started: runner objects in namespace %s, runner image %s",
		c->args.namespace, c->args.runner_image);
	if (c->args.leader_elect) {
		bop_k8s_leader_options_t lo = BOP_K8S_LEADER_OPTIONS_INIT;

		lo.lease_namespace = c->args.namespace;
		lo.name = c->args.lease_name;
		lo.identity = c->args.identity;
		lo.lease_seconds = c->args.lease_seconds;
		lo.renew_deadline_seconds = c->args.lease_seconds * 2 / 3;
		lo.retry_seconds = c->args.lease_seconds / 7 + 1;
		lo.on_started = on_started;
		lo.on_stopped = on_stopped;
		lo.ud = c;
		if ((ret = bop_k8s_leader_new(&c->leader, c->client, &lo)) ||
		    (ret = bop_k8s_leader_start(c->leader))) {
			clog_(BOP_LOG_ERROR, "cannot start leader election: %s", bop_error_last());
			return 1;
		}
	} else {
		atomic_store(&c->leading, true);
		start_workers(c);
	}

	for (;;) {
		char b;
		ssize_t n = read(wake_pipe[0], &b, 1);

		if (n < 0 && errno == EINTR)
			continue;
		break;
	}
	atomic_store(&c->stopping, true);
	clog_(BOP_LOG_INFO, "stopping");
	bop_workqueue_shutdown(c->queue);
	for (int i = 0; i < c->nworkers; i++)
		pthread_join(c->workers[i], NULL);
	bop_k8s_leader_free(c->leader);         /* releases the lease */
	free_informers(c);
	bop_http_server_free(c->http);
	bop_k8s_recorder_free(c->recorder);
	bop_workqueue_free(c->queue);
	for (int i = 0; i < CTL_WORKERS; i++)
		bop_k8s_client_free(c->wclient[i]);
	bop_k8s_client_free(c->client);
	bop_metrics_free(c->metrics);
	ctl_index_free(c->refs);
	json_object_put(c->secret_cache);
	json_object_put(c->active);
	clog_(BOP_LOG_INFO, "stopped");
	return (int)exit_code;
}
