/*
 * backupop-controller: keeps one runner per BackupSchedule. See backupop-controller(8).
 * This file parses the arguments and wires the parts together: informers that queue keys
 * (state.c), leader election that starts the workers, the health and metrics endpoints.
 */
#include "ctl.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int wake_pipe[2] = { -1, -1 };
static volatile sig_atomic_t exit_code;

/* ---- informer callbacks: they only queue keys ---- */

static void on_schedule(bop_k8s_event_type_t type, const char *key, const char *object, void *ud)
{
	(void)type;
	(void)object;
	ctl_enqueue(ud, 's', key, 0);
}

static void on_run(bop_k8s_event_type_t type, const char *key, const char *object, void *ud)
{
	(void)type;
	(void)object;
	ctl_enqueue(ud, 'r', key, 0);
}

static void on_storage(bop_k8s_event_type_t type, const char *key, const char *object, void *ud)
{
	char ref[600];

	(void)type;
	(void)object;
	snprintf(ref, sizeof(ref), "storage:%s", key);
	ctl_enqueue_refs(ud, ref);
}

static void on_secret(bop_k8s_event_type_t type, const char *key, const char *object, void *ud)
{
	ctl_t *c = ud;
	char ref[600];

	if (type == BOP_K8S_DELETED)
		ctl_secret_forget(c, key);
	ctl_sidecar_secret_event(c, type, key, object);
	snprintf(ref, sizeof(ref), "secret:%s", key);
	ctl_enqueue_refs(c, ref);
}

/* Schedules refer to templates as "template:<Kind>:<key>" (schedules.c). */
static void on_template(bop_k8s_event_type_t type, const char *key, const char *object, void *ud)
{
	char ref[600];

	(void)type;
	(void)object;
	snprintf(ref, sizeof(ref), "template:BackupTemplate:%s", key);
	ctl_enqueue_refs(ud, ref);
}

static void on_ctemplate(bop_k8s_event_type_t type, const char *key, const char *object, void *ud)
{
	char ref[600];

	(void)type;
	(void)object;
	snprintf(ref, sizeof(ref), "template:ClusterBackupTemplate:%s", key);
	ctl_enqueue_refs(ud, ref);
}

typedef struct ns_ctx {
	ctl_t *c;
	const char *ns;
	size_t len;
} ns_ctx_t;

static int ns_schedule(const char *key, const char *object, void *ud)
{
	ns_ctx_t *n = ud;

	(void)object;
	if (!strncmp(key, n->ns, n->len) && key[n->len] == '/')
		ctl_enqueue(n->c, 's', key, 0);
	return 0;
}

/* A namespace's labels decide whether a storage allows it (allowedNamespaces.selector). */
static void on_namespace(bop_k8s_event_type_t type, const char *key, const char *object, void *ud)
{
	ns_ctx_t n = { ud, key, strlen(key) };

	(void)object;
	if (type == BOP_K8S_MODIFIED)
		bop_k8s_informer_foreach(n.c->schedules, ns_schedule, &n);
}

/* Someone changed or deleted an object we made: reconcile its schedule. */
static void on_owned(bop_k8s_event_type_t type, const char *key, const char *object, void *ud)
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

static void on_workload(int i, bop_k8s_event_type_t type, const char *key, const char *object,
	void *ud)
{
	ctl_on_workload(ud, i, type == BOP_K8S_DELETED, key, object);
}

static void on_deployment(bop_k8s_event_type_t type, const char *key, const char *object, void *ud)
{
	on_workload(0, type, key, object, ud);
}

static void on_statefulset(bop_k8s_event_type_t type, const char *key, const char *object, void *ud)
{
	on_workload(1, type, key, object, ud);
}

static void on_daemonset(bop_k8s_event_type_t type, const char *key, const char *object, void *ud)
{
	on_workload(2, type, key, object, ud);
}

static void on_started(void *ud)
{
	ctl_t *c = ud;

	clog_(BOP_LOG_INFO, "became the leader (lease %s/%s)", c->args.namespace, c->args.lease_name);
	atomic_store(&c->leading, true);
	bop_metric_set(c->m_leader, NULL, 1);
	ctl_start_workers(c);
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

	if (!ctl_synced(c))
		return bop_http_respond(req, 503, "text/plain", "caches not synced\n", 18);
	return bop_http_respond(req, 200, "text/plain", "ok\n", 3);
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
	    (ret = ctl_metrics_route(c)) ||
	    (ret = bop_http_server_start(c->http)))
		return ret;
	clog_(BOP_LOG_INFO, "serving /metrics, /healthz and /readyz on port %d",
		bop_http_server_port(c->http));
	return 0;
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
	o.payload = c;
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
	    (ret = informer(c, &c->namespaces, "/api/v1/namespaces", NULL, true, on_namespace)) ||
	    (ret = informer(c, &c->templates, CTL_GROUP_PATH "/backuptemplates", NULL, false,
		on_template)) ||
	    (ret = informer(c, &c->ctemplates, CTL_GROUP_PATH "/clusterbackuptemplates", NULL, false,
		on_ctemplate)))
		return ret;
	for (int k = 0; k < BOP_RECONCILE_KINDS; k++) {
		snprintf(p, sizeof(p), "%s%s/%s", owned_paths[k], c->args.namespace, owned_res[k]);
		if ((ret = informer(c, &c->owned[k], p, sel, true, on_owned)))
			return ret;
	}
	/* sidecar mode: every workload's metadata (the label, or our annotation after the
	 * label went) */
	{
		static const bop_k8s_informer_cb wcb[CTL_WORKLOAD_KINDS] = { on_deployment,
			on_statefulset, on_daemonset };

		for (int i = 0; i < CTL_WORKLOAD_KINDS; i++) {
			snprintf(p, sizeof(p), "/apis/apps/v1/%s",
				ctl_workload_resource(ctl_workload_kind(i)));
			if ((ret = informer(c, &c->workloads[i], p, NULL, true, wcb[i])))
				return ret;
		}
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
		"  --runner-address pod|service  reach runners at their pod's IP (default) or\n"
		"                            at their Service's DNS name\n"
		"  --runner-unreachable-seconds N  a BackupRun whose runner cannot be reached\n"
		"                            that long after it was made fails (default 300)\n"
		"  --log-format text|json, --log-level LEVEL\n", out);
}

static int parse_args(ctl_args_t *a, int argc, char **argv)
{
	enum { O_NS = 256, O_IMAGE, O_PULL, O_LEADER, O_LEASE, O_LEASE_S, O_ID, O_METRICS, O_KCFG,
		O_CTX, O_RESYNC, O_PORT, O_FMT, O_LEVEL, O_RURL, O_RADDR, O_POLL, O_UNREACH, O_HELP, O_VERSION };
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
		{ "runner-address", required_argument, NULL, O_RADDR },
		{ "runner-url", required_argument, NULL, O_RURL },   /* tests only */
		{ "poll-seconds", required_argument, NULL, O_POLL },
		{ "runner-unreachable-seconds", required_argument, NULL, O_UNREACH },
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
		case O_UNREACH:
			a->unreachable_seconds = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case O_RURL: a->runner_url = optarg; break;
		case O_RADDR:
			if (strcmp(optarg, "pod") && strcmp(optarg, "service")) {
				fprintf(stderr, "backupop-controller: --runner-address is pod or service\n");
				return 2;
			}
			a->runner_via_service = !strcmp(optarg, "service");
			break;
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
	bop_k8s_informer_t *all[CTL_INFORMERS];
	pthread_t t[CTL_INFORMERS];
	bool started[CTL_INFORMERS] = { false };

	ctl_informer_list(c, all);
	for (size_t i = 0; i < CTL_INFORMERS; i++)
		started[i] = all[i] && pthread_create(&t[i], NULL, free_informer, all[i]) == 0;
	for (size_t i = 0; i < CTL_INFORMERS; i++) {
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
	c->args.unreachable_seconds = 300;
	ret = parse_args(&c->args, argc, argv);
	if (ret)
		return ret;
	if (!c->args.poll_seconds)
		c->args.poll_seconds = 1;
	if (!c->args.unreachable_seconds)
		c->args.unreachable_seconds = 1;
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
	if ((ret = ctl_state_init(c)) || (ret = start_http(c)) ||
	    (ret = bop_k8s_recorder_new(&c->recorder, c->client, "backupop-controller")) ||
	    (ret = ctl_load_key(c)) || (ret = start_informers(c))) {
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
		lo.payload = c;
		if ((ret = bop_k8s_leader_new(&c->leader, c->client, &lo)) ||
		    (ret = bop_k8s_leader_start(c->leader))) {
			clog_(BOP_LOG_ERROR, "cannot start leader election: %s", bop_error_last());
			return 1;
		}
	} else {
		atomic_store(&c->leading, true);
		ctl_start_workers(c);
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
	ctl_stop_workers(c);
	bop_k8s_leader_free(c->leader);         /* releases the lease */
	bop_http_server_stop(c->http);          /* /readyz and /metrics read the informers */
	free_informers(c);
	bop_http_server_free(c->http);
	bop_k8s_recorder_free(c->recorder);
	for (int i = 0; i < CTL_WORKERS; i++)
		bop_k8s_client_free(c->wclient[i]);
	bop_k8s_client_free(c->client);
	ctl_state_free(c);
	clog_(BOP_LOG_INFO, "stopped");
	return (int)exit_code;
}
