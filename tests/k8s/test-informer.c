/*
 * Informers against a real kube-apiserver, some through tcp-proxy.py so the test can cut
 * the connection: an initial LIST of 120 ConfigMaps in pages of 50 delivered as ADDED,
 * create/update/delete delivered in order, label selectors, metadata_only (no data in the
 * cache), resync, _get/_foreach/_size, a watch cut mid-stream five times without losing
 * or repeating an event, the API server away and back, a resume from a resourceVersion
 * that etcd compacted away (410) reported as a relist whose deletions arrive as DELETED,
 * an expired continue token restarting the LIST, and _free() returning at once.
 * Needs BOP_TEST_KUBECONFIG, python3 (argv[1], argv[2] = tcp-proxy.py) and etcdctl for the
 * compaction checks (skipped with the reason otherwise).
 */
#include "tap.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "k8s-test.h"
#include "k8s/k8s.h"

/* The API server's etcd: BOP_TEST_ETCD (tests/env/k8s-local.sh env prints it), by default
 * the one of a control plane on the default ports. */
static const char *etcd_endpoint(void)
{
	const char *e = getenv("BOP_TEST_ETCD");

	return e && *e ? e : "http://127.0.0.1:2379";
}
#define MAX_EVENTS 20000

typedef struct ev {
	int type;
	char key[96];
	char rv[24];
	char v[24];                     /* data.v */
	bool has_data;
} ev_t;

typedef struct evlog {
	pthread_mutex_t lock;
	ev_t *v;
	size_t n;
	size_t synced_at;               /* events when the informer said synced */
} evlog_t;

static bop_k8s_client_t *client;
static char ns[64], cms[160], tmpdir[64] = "/tmp/bop-informer-XXXXXX";
static pid_t proxy_pid = -1;
static FILE *proxy_in, *proxy_out;
static int relists, expired_tokens;

/* ---- event logs ---- */

static void on_event(bop_k8s_event_type_t type, const char *key, const char *object, void *ud)
{
	evlog_t *l = ud;
	ev_t *e;

	pthread_mutex_lock(&l->lock);
	if (l->n < MAX_EVENTS) {
		e = &l->v[l->n++];
		e->type = (int)type;
		snprintf(e->key, sizeof(e->key), "%s", key);
		snprintf(e->rv, sizeof(e->rv), "%s", jget(object, "metadata.resourceVersion"));
		snprintf(e->v, sizeof(e->v), "%s", jget(object, "data.v"));
		e->has_data = strstr(object, "\"data\"") != NULL;
	}
	pthread_mutex_unlock(&l->lock);
}

static evlog_t *evlog_new(void)
{
	evlog_t *l = calloc(1, sizeof(*l));

	pthread_mutex_init(&l->lock, NULL);
	l->v = calloc(MAX_EVENTS, sizeof(*l->v));
	return l;
}

static void evlog_free(evlog_t *l)
{
	pthread_mutex_destroy(&l->lock);
	free(l->v);
	free(l);
}

static size_t evlog_len(evlog_t *l)
{
	size_t n;

	pthread_mutex_lock(&l->lock);
	n = l->n;
	pthread_mutex_unlock(&l->lock);
	return n;
}

/* Index of the first event at or after `from` of `type` for `key`, or -1. */
static long evlog_find(evlog_t *l, size_t from, int type, const char *key)
{
	long r = -1;

	pthread_mutex_lock(&l->lock);
	for (size_t i = from; i < l->n && r < 0; i++)
		if (l->v[i].type == type && !strcmp(l->v[i].key, key))
			r = (long)i;
	pthread_mutex_unlock(&l->lock);
	return r;
}

/* Waits up to `ms` for such an event. */
static long evlog_wait(evlog_t *l, size_t from, int type, const char *key, int ms)
{
	long r;

	for (int t = 0; (r = evlog_find(l, from, type, key)) < 0 && t < ms; t += 20)
		usleep(20000);
	return r;
}

static void on_log(bop_log_level_t level, const char *component, const char *message, void *payload)
{
	BOP_UNUSED(level);
	BOP_UNUSED(component);
	BOP_UNUSED(payload);
	if (getenv("BOP_TEST_DEBUG"))
		diag("log: %s", message);
	if (strstr(message, "continue token expired"))
		__atomic_add_fetch(&expired_tokens, 1, __ATOMIC_SEQ_CST);
	if (strstr(message, "listing again"))
		__atomic_add_fetch(&relists, 1, __ATOMIC_SEQ_CST);
}

/* ---- objects ---- */

static int put_cm(const char *name, const char *labels, int v)
{
	char body[512];

	snprintf(body, sizeof(body), "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":"
		"{\"name\":\"%s\",\"labels\":{%s}},\"data\":{\"v\":\"%d\"}}", name, labels, v);
	return bop_k8s_request(client, NULL, NULL, BOP_K8S_CREATE, cms, body, NULL);
}

static int patch_cm(const char *name, int v)
{
	char path[256], body[64];

	snprintf(path, sizeof(path), "%s/%s", cms, name);
	snprintf(body, sizeof(body), "{\"data\":{\"v\":\"%d\"}}", v);
	return bop_k8s_request(client, NULL, NULL, BOP_K8S_PATCH, path, body, NULL);
}

static int delete_obj(const char *collection, const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", collection, name);
	return bop_k8s_request(client, NULL, NULL, BOP_K8S_DELETE, path, NULL, NULL);
}

static bop_k8s_informer_t *start_informer(bop_k8s_client_t *c, const char *path,
	const char *labels, int metadata_only, unsigned int resync, unsigned int page,
	evlog_t *log)
{
	bop_k8s_informer_options_t o = BOP_K8S_INFORMER_OPTIONS_INIT;
	bop_k8s_informer_t *inf = NULL;

	o.path = path;
	o.label_selector = labels;
	o.metadata_only = metadata_only;
	o.resync_seconds = resync;
	o.page_size = page;
	o.callback = on_event;
	o.payload = log;
	if (bop_k8s_informer_new(&inf, c, &o) < 0 || bop_k8s_informer_start(inf) < 0) {
		printf("Bail out! cannot start an informer on %s: %s\n", path, bop_error_last());
		exit(1);
	}
	if (bop_k8s_informer_wait_synced(inf, 30000) < 0)
		diag("informer on %s: %s", path, bop_error_last());
	pthread_mutex_lock(&log->lock);
	log->synced_at = log->n;
	pthread_mutex_unlock(&log->lock);
	return inf;
}

/* ---- the proxy ---- */

static int proxy_cmd(const char *cmd)
{
	char line[64];

	if (!proxy_in)
		return -1;
	fprintf(proxy_in, "%s\n", cmd);
	fflush(proxy_in);
	while (fgets(line, sizeof(line), proxy_out))
		if (!strcmp(line, "ok\n"))
			return 0;
	return -1;
}

/* Starts tcp-proxy.py towards `server` ("https://host:port"); its port or -1. */
static int proxy_start(const char *python, const char *script, const char *server)
{
	char host[128], port_s[16], line[32];
	int in[2], out[2];
	const char *hp = strstr(server, "://");

	if (!hp || sscanf(hp + 3, "%127[^:]:%15[0-9]", host, port_s) != 2)
		return -1;
	if (pipe(in) < 0 || pipe(out) < 0)
		return -1;
	proxy_pid = fork();
	if (proxy_pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		execl(python, python, script, host, port_s, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	proxy_in = fdopen(in[1], "w");
	proxy_out = fdopen(out[0], "r");
	if (!fgets(line, sizeof(line), proxy_out))
		return -1;
	return atoi(line);
}

static void proxy_stop(void)
{
	if (proxy_in)
		fclose(proxy_in);
	if (proxy_out)
		fclose(proxy_out);
	if (proxy_pid > 0) {
		kill(proxy_pid, SIGTERM);
		waitpid(proxy_pid, NULL, 0);
	}
}

/* A kubeconfig like `kubeconfig` whose server is the proxy on `port`. */
static char *proxied_kubeconfig(const char *kubeconfig, const char *server, int port)
{
	static char path[128];
	char *text = NULL, *at, url[64];
	size_t len;
	FILE *f;

	if (bop__read_file(kubeconfig, &text, &len, 1 << 20) < 0 || !(at = strstr(text, server)))
		return NULL;
	snprintf(path, sizeof(path), "%s/kubeconfig", tmpdir);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", port);
	f = fopen(path, "w");
	if (!f)
		return NULL;
	fprintf(f, "%.*s%s%s", (int)(at - text), text, url, at + strlen(server));
	fclose(f);
	free(text);
	return path;
}

/* ---- etcd ---- */

static bool have_etcdctl(void)
{
	return system("etcdctl version >/dev/null 2>&1") == 0;
}

static long long etcd_revision(void)
{
	char cmd[512], buf[4096];
	FILE *p;
	size_t n;
	json_object *o, *st, *hdr, *rev;
	long long r = -1;

	snprintf(cmd, sizeof(cmd), "etcdctl --endpoints='%s' endpoint status -w json 2>/dev/null",
		etcd_endpoint());
	p = popen(cmd, "r");
	if (!p)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, p);
	pclose(p);
	buf[n] = '\0';
	o = json_tokener_parse(buf);
	if (o && json_object_is_type(o, json_type_array) && json_object_array_length(o) &&
	    json_object_object_get_ex(json_object_array_get_idx(o, 0), "Status", &st) &&
	    json_object_object_get_ex(st, "header", &hdr) &&
	    json_object_object_get_ex(hdr, "revision", &rev))
		r = json_object_get_int64(rev);
	json_object_put(o);
	return r;
}

static int etcd_compact(long long rev)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "etcdctl --endpoints='%s' compact %lld >/dev/null 2>&1",
		etcd_endpoint(), rev);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- tests ---- */

typedef struct order_check {
	char prev[96];
	int n;
	bool sorted;
} order_check_t;

static int check_order(const char *key, const char *object, void *ud)
{
	order_check_t *c = ud;

	if (c->n && strcmp(c->prev, key) >= 0)
		c->sorted = false;
	snprintf(c->prev, sizeof(c->prev), "%s", key);
	c->n++;
	return object && *object == '{' ? 0 : -1;
}

static int stop_at_ten(const char *key, const char *object, void *ud)
{
	BOP_UNUSED(key);
	BOP_UNUSED(object);
	return ++*(int *)ud == 10 ? 42 : 0;
}

static void test_initial_list(bop_k8s_informer_t *a, evlog_t *la)
{
	order_check_t oc = { .sorted = true };
	char key[128], *obj = NULL;
	int added = 0, n = 0;

	ok(bop_k8s_informer_synced(a), "the informer synced");
	for (size_t i = 0; i < la->synced_at; i++)
		added += la->v[i].type == BOP_K8S_ADDED;
	is_int(la->synced_at, 120, "120 objects were delivered before synced (3 LIST pages of 50)");
	is_int(added, 120, "all as ADDED");
	is_int(bop_k8s_informer_size(a), 120, "the cache holds 120");
	snprintf(key, sizeof(key), "%s/cm-005", ns);
	is_int(bop_k8s_informer_get(a, &obj, key), 0, "get ns/cm-005 from the cache");
	is_str(jget(obj, "data.v"), "0", "with its data");
	is_str(jget(obj, "kind"), "ConfigMap", "list items get their kind");
	is_str(jget(obj, "apiVersion"), "v1", "and apiVersion");
	ok(!strstr(obj, "managedFields"), "managedFields are not kept");
	bop_free(obj);
	is_int(bop_k8s_informer_get(a, &obj, "nope/nope"), BOP_ENOTFOUND,
		"a key not cached is BOP_ENOTFOUND");
	is_int(bop_k8s_informer_foreach(a, check_order, &oc), 0, "foreach");
	is_int(oc.n, 120, "visits every object");
	ok(oc.sorted, "in key order");
	is_int(bop_k8s_informer_foreach(a, stop_at_ten, &n), 42, "foreach stops with fn's value");
	is_int(n, 10, "after the tenth");
}

static void test_changes(evlog_t *la)
{
	size_t from = evlog_len(la);
	char key[128];
	long a, m, d;

	snprintf(key, sizeof(key), "%s/cm-new", ns);
	put_cm("cm-new", "\"bop-test\":\"1\"", 1);
	patch_cm("cm-new", 2);
	delete_obj(cms, "cm-new");
	d = evlog_wait(la, from, BOP_K8S_DELETED, key, 10000);
	a = evlog_find(la, from, BOP_K8S_ADDED, key);
	m = evlog_find(la, from, BOP_K8S_MODIFIED, key);
	ok(a >= 0 && m > a && d > m, "create, update, delete arrive as ADDED, MODIFIED, DELETED in order (%ld %ld %ld)",
		a, m, d);
	ok(m >= 0 && !strcmp(la->v[m].v, "2"), "MODIFIED carries the new data");
	ok(d >= 0 && !strcmp(la->v[d].v, "2"), "DELETED carries the last state");
	put_cm("unlabeled", "", 0);
}

static void test_selector_and_metadata(bop_k8s_informer_t *a, bop_k8s_informer_t *b,
	evlog_t *lb, bop_k8s_informer_t *c)
{
	char key[128], *obj = NULL;
	size_t full, slim;

	is_int(bop_k8s_informer_size(b), 60, "a label selector parity=even caches 60");
	ok(lb->synced_at == 60, "and delivered 60");
	snprintf(key, sizeof(key), "%s/cm-001", ns);
	is_int(bop_k8s_informer_get(b, &obj, key), BOP_ENOTFOUND, "an odd one is not there");
	snprintf(key, sizeof(key), "%s/cm-002", ns);
	is_int(bop_k8s_informer_get(c, &obj, key), 0, "the metadata_only informer has cm-002");
	ok(obj && !strstr(obj, "\"data\""), "without data: %.200s", obj ? obj : "");
	is_str(jget(obj, "metadata.name"), "cm-002", "with metadata.name");
	is_str(jget(obj, "metadata.labels.parity"), "even", "and labels");
	ok(jget(obj, "metadata.resourceVersion")[0] && jget(obj, "metadata.uid")[0],
		"and resourceVersion and uid");
	ok(!strstr(obj, "creationTimestamp") && !strstr(obj, "managedFields"),
		"other metadata is dropped");
	bop_free(obj);
	full = bop__k8s_informer_bytes(a);
	slim = bop__k8s_informer_bytes(c);
	diag("cache: %zu bytes per ConfigMap (full, 1 data key), %zu metadata_only",
		full / bop_k8s_informer_size(a), slim / bop_k8s_informer_size(c));
	ok(slim < full, "metadata_only costs less memory");
}

static void test_resync(evlog_t *ld)
{
	char key[128];
	long first, second;

	snprintf(key, sizeof(key), "%s/cm-000", ns);
	first = evlog_wait(ld, ld->synced_at, BOP_K8S_MODIFIED, key, 5000);
	second = first < 0 ? -1 : evlog_wait(ld, (size_t)first + 1, BOP_K8S_MODIFIED, key, 5000);
	ok(first >= 0 && second > first, "resync every second redelivers unchanged objects as MODIFIED");
	ok(second > 0 && !strcmp(ld->v[first].rv, ld->v[second].rv), "with the same resourceVersion");
}

/* Patches cm-000..cm-009 30 times, cutting every connection of the proxy every 5. */
static void test_cut(evlog_t *le)
{
	size_t from = evlog_len(le);
	int count[10] = { 0 }, lastv[10], bad_order = 0, dups = 0, seen = 0;
	char key[128], name[32];

	for (int i = 0; i < 10; i++)
		lastv[i] = -1;
	for (int i = 0; i < 30; i++) {
		snprintf(name, sizeof(name), "cm-%03d", i % 10);
		patch_cm(name, 1000 + i);
		if (i % 5 == 4) {
			proxy_cmd("drop");
			usleep(100000);
		}
	}
	snprintf(key, sizeof(key), "%s/cm-009", ns);
	for (int t = 0; t < 15000; t += 50) {
		long r = evlog_find(le, from, BOP_K8S_MODIFIED, key);

		(void)r;
		pthread_mutex_lock(&le->lock);
		seen = 0;
		for (size_t i = from; i < le->n; i++)
			if (le->v[i].type == BOP_K8S_MODIFIED && atoi(le->v[i].v) >= 1000)
				seen++;
		pthread_mutex_unlock(&le->lock);
		if (seen >= 30)
			break;
		usleep(50000);
	}
	usleep(300000);
	pthread_mutex_lock(&le->lock);
	for (size_t i = from; i < le->n; i++) {
		ev_t *e = &le->v[i];
		int idx, v = atoi(e->v);

		if (e->type != BOP_K8S_MODIFIED || v < 1000)
			continue;
		idx = atoi(strrchr(e->key, '-') + 1);
		if (idx < 0 || idx > 9)
			continue;
		count[idx]++;
		if (v <= lastv[idx])
			(v == lastv[idx] ? dups++ : bad_order++);
		lastv[idx] = v;
	}
	pthread_mutex_unlock(&le->lock);
	seen = 0;
	for (int i = 0; i < 10; i++)
		seen += count[i];
	is_int(seen, 30, "all 30 updates arrived through 6 connections cut mid-stream");
	is_int(dups, 0, "none twice");
	is_int(bad_order, 0, "each object's updates in order");
}

static void test_away(bop_k8s_informer_t *e, evlog_t *le)
{
	size_t from = evlog_len(le);
	char key_add[128], key_del[128], *obj = NULL;
	long a, d;

	proxy_cmd("down");
	put_cm("cm-away", "\"bop-test\":\"1\"", 7);
	delete_obj(cms, "cm-119");
	sleep(3);
	proxy_cmd("up");
	snprintf(key_add, sizeof(key_add), "%s/cm-away", ns);
	snprintf(key_del, sizeof(key_del), "%s/cm-119", ns);
	a = evlog_wait(le, from, BOP_K8S_ADDED, key_add, 20000);
	d = evlog_wait(le, from, BOP_K8S_DELETED, key_del, 5000);
	ok(a >= 0 && d >= 0, "with the API server away for 3 s, the changes arrive once it is back");
	is_int(bop_k8s_informer_get(e, &obj, key_add), 0, "the new object is cached");
	bop_free(obj);
	is_int(bop_k8s_informer_get(e, &obj, key_del), BOP_ENOTFOUND, "the deleted one is not");
}

static int post_event(const char *name)
{
	char body[700], path[200];

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/events", ns);
	snprintf(body, sizeof(body), "{\"apiVersion\":\"v1\",\"kind\":\"Event\",\"metadata\":"
		"{\"name\":\"%s\"},\"involvedObject\":{\"kind\":\"ConfigMap\",\"name\":\"x\","
		"\"namespace\":\"%s\"},\"reason\":\"Test\",\"message\":\"m\",\"type\":\"Normal\"}",
		name, ns);
	return bop_k8s_request(client, NULL, NULL, BOP_K8S_CREATE, path, body, NULL);
}

/* Events are not in the API server's watch cache: a watch resumes from etcd, so a
 * compaction makes an old resourceVersion really gone. */
static void test_gone(bop_k8s_client_t *proxied)
{
	evlog_t *lf = evlog_new();
	bop_k8s_informer_t *f;
	char evs[200], key[128];
	long long rev;
	long d, a;
	size_t from;

	snprintf(evs, sizeof(evs), "/api/v1/namespaces/%s/events", ns);
	post_event("e1");
	post_event("e2");
	f = start_informer(proxied, evs, NULL, 0, 0, 0, lf);
	is_int(bop_k8s_informer_size(f), 2, "an informer on Events synced with 2");
	from = evlog_len(lf);
	relists = 0;
	proxy_cmd("down");
	delete_obj(evs, "e1");
	post_event("e3");
	for (int i = 0; i < 5; i++)
		patch_cm("cm-000", 2000 + i);
	rev = etcd_revision();
	ok(rev > 0 && etcd_compact(rev) == 0, "etcd compacted at revision %lld", rev);
	proxy_cmd("up");
	snprintf(key, sizeof(key), "%s/e1", ns);
	d = evlog_wait(lf, from, BOP_K8S_DELETED, key, 20000);
	snprintf(key, sizeof(key), "%s/e3", ns);
	a = evlog_wait(lf, from, BOP_K8S_ADDED, key, 5000);
	ok(__atomic_load_n(&relists, __ATOMIC_SEQ_CST) > 0,
		"resuming from the compacted resourceVersion gave 410 and a relist");
	ok(d >= 0, "the object deleted meanwhile is reported DELETED");
	ok(a >= 0, "the one created meanwhile ADDED");
	is_int(bop_k8s_informer_size(f), 2, "the cache has e2 and e3");
	bop_k8s_informer_free(f);
	evlog_free(lf);
}

typedef struct compactor {
	volatile int stop;
	int n;
} compactor_t;

static void *compact_loop(void *arg)
{
	compactor_t *c = arg;

	while (!c->stop) {
		long long rev;

		patch_cm("cm-000", 3000 + c->n);
		rev = etcd_revision();
		if (rev > 0 && etcd_compact(rev) == 0)
			c->n++;
		usleep(20000);
	}
	return NULL;
}

/* A LIST in pages of 1 over a slow network (20 ms a chunk) while etcd is compacted all
 * the time: continue tokens expire and the LIST starts over, and completes once
 * compaction stops. */
static void test_expired_continue(bop_k8s_client_t *proxied)
{
	bop_k8s_informer_options_t o = BOP_K8S_INFORMER_OPTIONS_INIT;
	evlog_t *lg = evlog_new();
	bop_k8s_informer_t *g = NULL;
	compactor_t comp = { 0 };
	pthread_t t;
	char evs[200], name[32];

	snprintf(evs, sizeof(evs), "/api/v1/namespaces/%s/events", ns);
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "p%02d", i);
		post_event(name);
	}
	proxy_cmd("delay 20");
	pthread_create(&t, NULL, compact_loop, &comp);
	usleep(200000);
	o.path = evs;
	o.page_size = 1;
	o.callback = on_event;
	o.payload = lg;
	expired_tokens = 0;
	bop_k8s_informer_new(&g, proxied, &o);
	bop_k8s_informer_start(g);
	for (int i = 0; i < 100 && !__atomic_load_n(&expired_tokens, __ATOMIC_SEQ_CST); i++)
		usleep(50000);
	comp.stop = 1;
	pthread_join(t, NULL);
	proxy_cmd("delay 0");
	ok(expired_tokens > 0, "a continue token expired during the paged LIST (%d compactions)",
		comp.n);
	is_int(bop_k8s_informer_wait_synced(g, 30000), 0, "the LIST started over and completed");
	is_int(bop_k8s_informer_size(g), 42, "with every object once");
	is_int(evlog_len(lg), 42, "delivered once each");
	bop_k8s_informer_free(g);
	evlog_free(lg);
}

static void test_free_prompt(bop_k8s_informer_t *e)
{
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	bop_k8s_informer_free(e);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ok((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 2500,
		"_free() stops a watching informer within the second");
}

static void create_objects(void)
{
	char name[32], labels[96];

	for (int i = 0; i < 120; i++) {
		snprintf(name, sizeof(name), "cm-%03d", i);
		snprintf(labels, sizeof(labels), "\"bop-test\":\"1\",\"parity\":\"%s\"",
			i % 2 ? "odd" : "even");
		if (put_cm(name, labels, 0) < 0) {
			printf("Bail out! cannot create ConfigMap %s: %s\n", name, bop_error_last());
			exit(1);
		}
	}
}

int main(int argc, char **argv)
{
	const char *kubeconfig = test_kubeconfig();
	bop__k8s_config_t *cfg = NULL;
	bop_k8s_client_t *proxied = NULL;
	bop_k8s_informer_t *a, *b, *c, *d, *e;
	evlog_t *la = evlog_new(), *lb = evlog_new(), *lc = evlog_new(), *ld = evlog_new();
	evlog_t *le = evlog_new();
	const char *pk;
	int port = -1;

	client = test_client(kubeconfig);
	if (bop__k8s_config_load_file(&cfg, kubeconfig, NULL) < 0 || !mkdtemp(tmpdir))
		skip_all("cannot read %s: %s", kubeconfig, bop_error_last());
	bop_log_set_callback(on_log, NULL);
	if (getenv("BOP_TEST_DEBUG"))
		bop_log_set_level(BOP_LOG_DEBUG);
	test_namespace_create(client, "bop-inf", ns, sizeof(ns));
	snprintf(cms, sizeof(cms), "/api/v1/namespaces/%s/configmaps", ns);
	create_objects();

	a = start_informer(client, cms, "bop-test=1", 0, 0, 50, la);
	test_initial_list(a, la);
	b = start_informer(client, cms, "parity=even", 0, 0, 0, lb);
	c = start_informer(client, cms, "bop-test=1", 1, 0, 0, lc);
	test_selector_and_metadata(a, b, lb, c);
	test_changes(la);
	d = start_informer(client, cms, "parity=even", 0, 1, 0, ld);
	test_resync(ld);
	bop_k8s_informer_free(b);
	bop_k8s_informer_free(c);
	bop_k8s_informer_free(d);
	ok(bop_k8s_informer_size(a) == 120, "the first informer still has 120 (unlabeled one not seen)");

	if (argc > 2)
		port = proxy_start(argv[1], argv[2], cfg->server);
	pk = port > 0 ? proxied_kubeconfig(kubeconfig, cfg->server, port) : NULL;
	if (pk) {
		proxied = test_client(pk);
		e = start_informer(proxied, cms, "bop-test=1", 0, 0, 0, le);
		is_int(bop_k8s_informer_size(e), 120, "an informer through the proxy synced");
		test_cut(le);
		test_away(e, le);
		test_free_prompt(e);
		if (have_etcdctl()) {
			test_gone(proxied);
			test_expired_continue(proxied);
		} else {
			skip(10, "etcdctl is not installed (apt-get install etcd-client)");
		}
	} else {
		skip(20, "no python3 to run tcp-proxy.py");
	}
	bop_k8s_informer_free(a);
	bop_k8s_client_free(proxied);
	proxy_stop();
	bop_log_set_callback(NULL, NULL);
	is_int(test_namespace_delete(client, ns), 0, "delete the namespace");
	bop__k8s_config_free(cfg);
	bop_k8s_client_free(client);
	{
		char p[128];

		snprintf(p, sizeof(p), "%s/kubeconfig", tmpdir);
		unlink(p);
		rmdir(tmpdir);
	}
	for (evlog_t **l = (evlog_t *[]){ la, lb, lc, ld, le, NULL }; *l; l++)
		evlog_free(*l);
	return done_testing();
}
