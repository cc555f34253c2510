/*
 * The reconcile primitives (include/backupop/reconcile.h): from a BackupSchedule, its
 * BackupStorage and the Secrets they name (tables of JSON here, as a controller's caches
 * would hold them) to the runner's Secret, StatefulSet and Service, or to the reason the
 * schedule cannot run. The runner config in the Secret is loaded with the runner's own
 * config loader (runner/common/config.c), so what the controller writes is what the runner
 * accepts. Public API only.
 */
#include <backupop.h>

#include <ctype.h>
#include <stdarg.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "tap.h"

#define CTRL_NS "backupop-system"

static const char *schedule_base =
	"{\"apiVersion\":\"backupop.io/v1alpha1\",\"kind\":\"BackupSchedule\","
	"\"metadata\":{\"name\":\"orders-db\",\"namespace\":\"shop\",\"uid\":\"u-1\","
	"\"generation\":4,\"resourceVersion\":\"100\"},"
	"\"spec\":{\"schedule\":\"0 */6 * * *\",\"timeZone\":\"Europe/Berlin\","
	"\"engine\":{\"postgres\":{\"host\":\"orders-db.shop.svc\",\"database\":\"orders\","
	"\"user\":\"backup\",\"passwordSecretRef\":{\"name\":\"orders-db-backup\",\"key\":\"password\"}}},"
	"\"storage\":{\"name\":\"minio\",\"path\":\"{{ .Namespace }}/{{ .Name }}/{{ .ID }}\"},"
	"\"compression\":{\"algorithm\":\"zstd\",\"level\":3},"
	"\"encryption\":{\"recipientsSecretRef\":{\"name\":\"backup-keys\",\"key\":\"recipients\"}},"
	"\"retention\":{\"keepLast\":3,\"keepHourly\":24,\"keepDaily\":7,\"keepWeekly\":4,"
	"\"keepMonthly\":12,\"keepYearly\":2,\"keepTags\":[\"pinned\"]},"
	"\"concurrencyPolicy\":\"Forbid\",\"historyLimits\":{\"successful\":10,\"failed\":3},"
	"\"runner\":{\"affinity\":{\"podSelector\":{\"app\":\"orders-db\"}}}}}";

static const char *storage_base =
	"{\"apiVersion\":\"backupop.io/v1alpha1\",\"kind\":\"BackupStorage\","
	"\"metadata\":{\"name\":\"minio\"},"
	"\"spec\":{\"s3\":{\"endpoint\":\"http://minio.minio:9000\",\"bucket\":\"backups\","
	"\"region\":\"us-east-1\",\"prefix\":\"prod\",\"forcePathStyle\":true},"
	"\"credentialsSecretRef\":{\"namespace\":\"backupop-system\",\"name\":\"minio-credentials\"},"
	"\"allowedNamespaces\":{\"from\":\"All\"}}}";

#define PASSWORD "pg-Pa55word-xyz"
#define SECRET_KEY "s3-secret-key-0123456789"

/* ---- the cluster: a table of objects ---- */

typedef struct entry {
	char kind[32];
	char ns[64];
	char name[64];
	char *json;
} entry_t;

static entry_t cluster[64];
static size_t n_cluster;
static int lookups_failing;

static char *b64(const char *s)
{
	size_t len = strlen(s);
	char *out = calloc(4 * ((len + 2) / 3) + 1, 1);

	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)len);
	return out;
}

static char *unb64(const char *s)
{
	size_t len = strlen(s), pad = 0;
	unsigned char *out = calloc(len / 4 * 3 + 1, 1);
	int n = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);

	if (len && s[len - 1] == '=')
		pad++;
	if (len > 1 && s[len - 2] == '=')
		pad++;
	if (n < 0) {
		free(out);
		return NULL;
	}
	out[n - pad] = '\0';
	return (char *)out;
}

static void put(const char *kind, const char *ns, const char *name, char *json)
{
	entry_t *e = NULL;

	for (size_t i = 0; i < n_cluster; i++)
		if (!strcmp(cluster[i].kind, kind) && !strcmp(cluster[i].ns, ns ? ns : "") &&
		    !strcmp(cluster[i].name, name))
			e = &cluster[i];
	if (!e) {
		e = &cluster[n_cluster++];
		snprintf(e->kind, sizeof(e->kind), "%s", kind);
		snprintf(e->ns, sizeof(e->ns), "%s", ns ? ns : "");
		snprintf(e->name, sizeof(e->name), "%s", name);
	}
	free(e->json);
	e->json = json;
}

static void drop(const char *kind, const char *ns, const char *name)
{
	for (size_t i = 0; i < n_cluster; i++)
		if (!strcmp(cluster[i].kind, kind) && !strcmp(cluster[i].ns, ns ? ns : "") &&
		    !strcmp(cluster[i].name, name)) {
			free(cluster[i].json);
			cluster[i] = cluster[--n_cluster];
			memset(&cluster[n_cluster], 0, sizeof(cluster[n_cluster]));
			return;
		}
}

/* A Secret with one key (or two: k2 may be NULL), values base64 as the API has them. */
static void put_secret(const char *ns, const char *name, const char *k1, const char *v1,
	const char *k2, const char *v2)
{
	char *e1 = b64(v1), *e2 = v2 ? b64(v2) : NULL, *json = NULL;

	if (asprintf(&json, "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"%s\","
		    "\"namespace\":\"%s\",\"resourceVersion\":\"7\"},\"type\":\"Opaque\","
		    "\"data\":{\"%s\":\"%s\"%s%s%s%s%s}}", name, ns, k1, e1, k2 ? ",\"" : "",
		    k2 ? k2 : "", k2 ? "\":\"" : "", e2 ? e2 : "", k2 ? "\"" : "") < 0)
		abort();
	put("Secret", ns, name, json);
	free(e1);
	free(e2);
}

static void put_namespace(const char *name, const char *team)
{
	char *json = NULL;

	if (asprintf(&json, "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"%s\","
		    "\"labels\":{\"team\":\"%s\"}}}", name, team) < 0)
		abort();
	put("Namespace", NULL, name, json);
}

static int lookup(char **object, const char *kind, const char *ns, const char *name, void *ud)
{
	(void)ud;
	*object = NULL;
	if (lookups_failing)
		return BOP_EIO;
	for (size_t i = 0; i < n_cluster; i++)
		if (!strcmp(cluster[i].kind, kind) && !strcmp(cluster[i].ns, ns ? ns : "") &&
		    !strcmp(cluster[i].name, name)) {
			*object = bop_strdup(cluster[i].json);
			return 0;
		}
	return BOP_ENOTFOUND;
}

/* ---- JSON helpers ---- */

/* RFC 7386 merge patch, for the test tables. */
static void merge(json_object *target, json_object *patch)
{
	json_object_object_foreach(patch, key, val) {
		json_object *cur = json_object_object_get(target, key);

		if (!val) {
			json_object_object_del(target, key);
		} else if (json_object_is_type(val, json_type_object) && cur &&
			   json_object_is_type(cur, json_type_object)) {
			merge(cur, val);
		} else {
			json_object *copy = NULL;

			json_object_deep_copy(val, &copy, NULL);
			json_object_object_add(target, key, copy);
		}
	}
}

static char *patched(const char *base, const char *patch)
{
	json_object *b = json_tokener_parse(base), *p = patch ? json_tokener_parse(patch) : NULL;
	char *out;

	if (!b || (patch && !p)) {
		diag("bad test JSON: %s", patch ? patch : base);
		abort();
	}
	if (p)
		merge(b, p);
	out = strdup(json_object_to_json_string_ext(b, JSON_C_TO_STRING_PLAIN));
	json_object_put(b);
	json_object_put(p);
	return out;
}

/* The value at a path like "spec.template.spec.containers.0.image". */
static json_object *at(json_object *o, const char *path)
{
	char buf[256], *save = NULL, *part;

	snprintf(buf, sizeof(buf), "%s", path);
	for (part = strtok_r(buf, ".", &save); o && part; part = strtok_r(NULL, ".", &save)) {
		if (json_object_is_type(o, json_type_array))
			o = json_object_array_get_idx(o, (size_t)atoi(part));
		else if (!json_object_object_get_ex(o, part, &o))
			o = NULL;
	}
	return o;
}

static const char *at_str(json_object *o, const char *path)
{
	json_object *v = at(o, path);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static long long at_int(json_object *o, const char *path)
{
	json_object *v = at(o, path);

	return v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -999;
}

static int at_bool(json_object *o, const char *path)
{
	json_object *v = at(o, path);

	return v && json_object_is_type(v, json_type_boolean) ? json_object_get_boolean(v) : -1;
}

/* ---- making reconciles ---- */

static const char *pull[] = { "regcred", "mirror" };
static const char *image = "backupop/runner:0.1.0";
static unsigned int port;

static int reconcile(bop_reconcile_t **r, const char *schedule, const char *storage)
{
	bop_reconcile_options_t o = BOP_RECONCILE_OPTIONS_INIT;

	o.runner_namespace = CTRL_NS;
	o.runner_image = image;
	o.pull_secrets = pull;
	o.n_pull_secrets = 2;
	o.runner_port = port;
	o.api_token = "0123456789abcdef0123456789abcdef";
	o.lookup = lookup;
	return bop_reconcile_new(r, &o, schedule, storage);
}

static char recipient[128];
static char identity[256];

static void reset_cluster(void)
{
	char *rcp = NULL;

	if (asprintf(&rcp, "# backup keys\n\n%s\n", recipient) < 0)
		abort();
	put_secret("shop", "orders-db-backup", "password", PASSWORD, NULL, NULL);
	put_secret("shop", "backup-keys", "recipients", rcp, NULL, NULL);
	put_secret(CTRL_NS, "minio-credentials", "accessKeyId", "AKIAEXAMPLE", "secretAccessKey",
		SECRET_KEY);
	put_namespace("shop", "a");
	put_namespace("other", "b");
	free(rcp);
}

static json_object *object(bop_reconcile_t *r, bop_reconcile_kind_t kind)
{
	const char *text = bop_reconcile_object(r, kind);

	return text ? json_tokener_parse(text) : NULL;
}

/* The runner config inside the Secret. */
static char *config_of(bop_reconcile_t *r)
{
	json_object *s = object(r, BOP_RECONCILE_SECRET), *v = NULL;
	const char *data = NULL;
	char *text;

	if (json_object_object_get_ex(at(s, "data"), "config.json", &v))
		data = json_object_get_string(v);
	text = data ? unb64(data) : NULL;
	json_object_put(s);
	return text;
}

/* ---- the tests ---- */

__attribute__((format(printf, 3, 4)))
static int is_strf(const char *got, const char *want, const char *fmt, ...)
{
	char name[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	return is_str(got, want, name);
}

static void test_valid(void)
{
	bop_reconcile_t *r = NULL;
	json_object *sec, *sts, *svc, *cfg;
	char *config;
	int ret;

	ret = reconcile(&r, schedule_base, storage_base);
	is_int(ret, 0, "a valid schedule reconciles");
	ok(bop_reconcile_valid(r), "and is valid (%s: %s)", bop_reconcile_reason(r) ?
		bop_reconcile_reason(r) : "-", bop_reconcile_message(r) ? bop_reconcile_message(r) : "-");
	ok(!bop_reconcile_reason(r) && !bop_reconcile_message(r), "no reason or message when valid");
	is_str(bop_reconcile_object_name(r), "runner-shop-orders-db", "the objects' name");
	is_str(bop_reconcile_storage_name(r), "minio", "the storage name");
	is_str(bop_reconcile_secret_ref(r, 0), "shop/orders-db-backup", "secret ref 0: the password");
	is_str(bop_reconcile_secret_ref(r, 1), "shop/backup-keys", "secret ref 1: the recipients");
	is_str(bop_reconcile_secret_ref(r, 2), CTRL_NS "/minio-credentials",
		"secret ref 2: the storage credentials");
	ok(!bop_reconcile_secret_ref(r, 3), "three secret refs");
	is_str(bop_reconcile_object_path(r, BOP_RECONCILE_SECRET),
		"/api/v1/namespaces/backupop-system/secrets/runner-shop-orders-db", "the Secret's path");
	is_str(bop_reconcile_object_path(r, BOP_RECONCILE_STATEFULSET),
		"/apis/apps/v1/namespaces/backupop-system/statefulsets/runner-shop-orders-db",
		"the StatefulSet's path");
	is_str(bop_reconcile_object_path(r, BOP_RECONCILE_SERVICE),
		"/api/v1/namespaces/backupop-system/services/runner-shop-orders-db", "the Service's path");

	sec = object(r, BOP_RECONCILE_SECRET);
	sts = object(r, BOP_RECONCILE_STATEFULSET);
	svc = object(r, BOP_RECONCILE_SERVICE);
	ok(sec && sts && svc, "the three objects are JSON");
	is_str(at_str(sec, "kind"), "Secret", "Secret: kind");
	is_str(at_str(sec, "type"), "Opaque", "Secret: type Opaque");
	is_str(at_str(sec, "metadata.namespace"), CTRL_NS, "Secret: in the controller's namespace");
	is_str(at_str(sts, "apiVersion"), "apps/v1", "StatefulSet: apps/v1");
	is_str(at_str(svc, "apiVersion"), "v1", "Service: v1");
	for (int k = 0; k < BOP_RECONCILE_KINDS; k++) {
		json_object *o = k == 0 ? sec : k == 1 ? sts : svc;
		json_object *labels = at(o, "metadata.labels");
		json_object *v = NULL;

		is_strf(at_str(o, "metadata.name"), "runner-shop-orders-db", "object %d: name", k);
		ok(labels && json_object_object_get_ex(labels, "backupop.io/schedule-namespace", &v) &&
			!strcmp(json_object_get_string(v), "shop"), "object %d: schedule-namespace label", k);
		ok(labels && json_object_object_get_ex(labels, "backupop.io/schedule-name", &v) &&
			!strcmp(json_object_get_string(v), "orders-db"), "object %d: schedule-name label", k);
		ok(labels && json_object_object_get_ex(labels, "app.kubernetes.io/managed-by", &v) &&
			!strcmp(json_object_get_string(v), "backupop-controller"), "object %d: managed-by", k);
		v = NULL;
		json_object_object_get_ex(at(o, "metadata.annotations"), "backupop.io/desired-hash", &v);
		is_strf(v ? json_object_get_string(v) : NULL, bop_reconcile_object_hash(r, k),
			"object %d: desired-hash annotation = bop_reconcile_object_hash()", k);
	}

	/* the StatefulSet and its pod */
	is_int(at_int(sts, "spec.replicas"), 1, "StatefulSet: 1 replica");
	is_str(at_str(sts, "spec.serviceName"), "runner-shop-orders-db", "StatefulSet: serviceName");
	{
		json_object *ann = at(sts, "spec.template.metadata.annotations"), *v = NULL;

		json_object_object_get_ex(ann, "backupop.io/config-hash", &v);
		is_str(v ? json_object_get_string(v) : NULL, bop_reconcile_config_hash(r),
			"pod template: config-hash annotation");
		ok(bop_reconcile_config_hash(r) && strlen(bop_reconcile_config_hash(r)) == 64,
			"config hash: 64 hex digits");
	}
	ok(json_object_equal(at(sts, "spec.selector.matchLabels"), at(svc, "spec.selector")),
		"the Service selects what the StatefulSet selects");
	{
		json_object *tl = at(sts, "spec.template.metadata.labels");

		json_object_object_foreach(at(sts, "spec.selector.matchLabels"), k, v) {
			json_object *t = NULL;

			ok(json_object_object_get_ex(tl, k, &t) && json_object_equal(t, v),
				"pod template carries selector label %s", k);
		}
	}
	is_str(at_str(sts, "spec.template.spec.containers.0.name"), "runner", "container: runner");
	is_str(at_str(sts, "spec.template.spec.containers.0.image"), image, "container: image");
	is_str(at_str(sts, "spec.template.spec.containers.0.args.0"), "--config", "args[0]");
	is_str(at_str(sts, "spec.template.spec.containers.0.args.1"), "/etc/backupop/config.json",
		"args[1]");
	is_str(at_str(sts, "spec.template.spec.containers.0.env.0.name"), "BOP_POD_NAME",
		"env: BOP_POD_NAME (names the lock owner; hostNetwork pods share a host name)");
	is_str(at_str(sts, "spec.template.spec.containers.0.env.0.valueFrom.fieldRef.fieldPath"),
		"metadata.name", "... from the pod's name");
	is_int(at_int(sts, "spec.template.spec.containers.0.ports.0.containerPort"), 8080,
		"container port 8080");
	is_str(at_str(sts, "spec.template.spec.containers.0.ports.0.name"), "api", "port named api");
	is_str(at_str(sts, "spec.template.spec.containers.0.ports.1.name"), "metrics",
		"port named metrics");
	is_int(at_int(sts, "spec.template.spec.containers.0.ports.1.containerPort"), 8081,
		"metrics port: the API port plus one");
	{
		json_object *v = NULL;

		json_object_object_get_ex(at(sts, "spec.template.metadata.annotations"),
			"prometheus.io/port", &v);
		is_str(v ? json_object_get_string(v) : NULL, "8081",
			"pod annotation prometheus.io/port names the metrics port");
	}
	is_str(at_str(sts, "spec.template.spec.containers.0.readinessProbe.httpGet.path"), "/readyz",
		"readiness probe /readyz");
	is_str(at_str(sts, "spec.template.spec.containers.0.livenessProbe.httpGet.path"), "/healthz",
		"liveness probe /healthz");
	is_str(at_str(sts, "spec.template.spec.containers.0.volumeMounts.0.mountPath"), "/etc/backupop",
		"config mounted at /etc/backupop");
	is_int(at_bool(sts, "spec.template.spec.containers.0.volumeMounts.0.readOnly"), 1,
		"config mounted read-only");
	is_str(at_str(sts, "spec.template.spec.volumes.0.secret.secretName"), "runner-shop-orders-db",
		"the config volume is the Secret");
	is_int(at_int(sts, "spec.template.spec.volumes.0.secret.defaultMode"), 0400,
		"Secret files mode 0400");
	is_str(at_str(sts, "spec.template.spec.containers.0.volumeMounts.1.mountPath"), "/tmp",
		"/tmp is mounted");
	ok(at(sts, "spec.template.spec.volumes.1.emptyDir") != NULL, "/tmp is an emptyDir");
	is_int(at_bool(sts, "spec.template.spec.securityContext.runAsNonRoot"), 1, "runAsNonRoot");
	is_str(at_str(sts, "spec.template.spec.securityContext.seccompProfile.type"), "RuntimeDefault",
		"seccomp RuntimeDefault");
	is_int(at_bool(sts, "spec.template.spec.containers.0.securityContext.readOnlyRootFilesystem"),
		1, "read-only root file system");
	is_int(at_bool(sts, "spec.template.spec.containers.0.securityContext.allowPrivilegeEscalation"),
		0, "no privilege escalation");
	is_str(at_str(sts, "spec.template.spec.containers.0.securityContext.capabilities.drop.0"),
		"ALL", "all capabilities dropped");
	ok(at(sts, "spec.template.spec.containers.0.resources.requests") != NULL, "default resources");
	is_str(at_str(sts, "spec.template.spec.imagePullSecrets.0.name"), "regcred", "pull secret 1");
	is_str(at_str(sts, "spec.template.spec.imagePullSecrets.1.name"), "mirror", "pull secret 2");
	{
		const char *p = "spec.template.spec.affinity.podAffinity."
			"preferredDuringSchedulingIgnoredDuringExecution.0";
		char path[256];

		snprintf(path, sizeof(path), "%s.weight", p);
		is_int(at_int(sts, path), 100, "pod affinity: preferred, weight 100");
		snprintf(path, sizeof(path), "%s.podAffinityTerm.topologyKey", p);
		is_str(at_str(sts, path), "kubernetes.io/hostname", "pod affinity: per node");
		snprintf(path, sizeof(path), "%s.podAffinityTerm.namespaces.0", p);
		is_str(at_str(sts, path), "shop", "pod affinity: in the schedule's namespace");
		snprintf(path, sizeof(path), "%s.podAffinityTerm.labelSelector.matchLabels.app", p);
		is_str(at_str(sts, path), "orders-db", "pod affinity: the podSelector");
	}
	is_str(at_str(svc, "spec.type"), "ClusterIP", "Service: ClusterIP");
	is_str(at_str(svc, "spec.clusterIP"), "None", "Service: headless (no cluster IP used)");
	is_str(at_str(svc, "spec.ports.0.name"), "api", "Service: port api");
	is_int(at_int(svc, "spec.ports.0.port"), 8080, "Service: port 8080");
	is_str(at_str(svc, "spec.ports.0.targetPort"), "api", "Service: to the api port");
	is_str(at_str(svc, "spec.ports.0.protocol"), "TCP", "Service: protocol set (SSA needs it)");

	/* the runner config */
	config = config_of(r);
	cfg = config ? json_tokener_parse(config) : NULL;
	ok(cfg != NULL, "data.config.json is base64 of JSON");
	is_str(at_str(cfg, "namespace"), "shop", "config: namespace");
	is_str(at_str(cfg, "scheduleName"), "orders-db", "config: scheduleName");
	is_str(at_str(cfg, "metrics.listen"), ":8081", "config: the metrics listener on its port");
	is_str(at_str(cfg, "name"), "shop/orders-db", "config: catalog name from the path template");
	is_str(at_str(cfg, "schedule"), "0 */6 * * *", "config: schedule");
	is_str(at_str(cfg, "timeZone"), "Europe/Berlin", "config: timeZone");
	is_str(at_str(cfg, "engine.postgres.password"), PASSWORD, "config: password resolved");
	ok(!at(cfg, "engine.postgres.passwordSecretRef"), "config: no secret ref left");
	is_str(at_str(cfg, "storage.url"), "s3://backups/prod", "config: storage URL bucket/prefix");
	is_str(at_str(cfg, "storage.endpoint"), "http://minio.minio:9000", "config: endpoint");
	is_int(at_bool(cfg, "storage.forcePathStyle"), 1, "config: forcePathStyle");
	is_str(at_str(cfg, "storage.accessKeyId"), "AKIAEXAMPLE", "config: access key id");
	is_str(at_str(cfg, "storage.secretAccessKey"), SECRET_KEY, "config: secret access key");
	is_str(at_str(cfg, "encryption.recipients.0"), recipient, "config: recipient from the Secret");
	ok(!at(cfg, "encryption.recipients.1"), "config: comments and blank lines skipped");
	is_int(at_int(cfg, "retention.keepDaily"), 7, "config: retention");
	is_str(at_str(cfg, "api.listen"), ":8080", "config: api.listen");
	is_str(at_str(cfg, "api.token"), "0123456789abcdef0123456789abcdef", "config: api.token");
	is_str(at_str(cfg, "api.advertiseURL"),
		"http://runner-shop-orders-db.backupop-system.svc:8080", "config: api.advertiseURL");
	ok(config && !strstr(bop_reconcile_object(r, BOP_RECONCILE_STATEFULSET), PASSWORD),
		"the password is not in the StatefulSet");
	json_object_put(cfg);
	free(config);
	json_object_put(sec);
	json_object_put(sts);
	json_object_put(svc);
	bop_reconcile_free(r);
}

/* The config loads in the runner's loader (runner/common/config.c). */
static void test_runner_loads(const char *schedule, const char *storage, const char *what)
{
	char dir[] = "/tmp/bop-reconcile-XXXXXX", path[256];
	bop_reconcile_t *r = NULL;
	char *config, *error = NULL;
	rcfg_t c;
	FILE *fp;
	int ret;

	if (reconcile(&r, schedule, storage) < 0 || !bop_reconcile_valid(r)) {
		ok(0, "%s: reconciles (%s)", what, bop_reconcile_message(r));
		bop_reconcile_free(r);
		return;
	}
	config = config_of(r);
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/config.json", dir);
	fp = fopen(path, "w");
	fputs(config ? config : "", fp);
	fclose(fp);
	chmod(path, 0600);
	rcfg_init(&c);
	ret = rcfg_load(&c, path, &error);
	if (ret && error && strstr(error, "advertiseURL")) {
		skip(2, "%s: the runner's config loader does not know api.advertiseURL yet (%s)",
			what, error);
	} else {
		ok(ret == 0, "%s: the runner's config loader accepts the config%s%s", what,
			error ? ": " : "", error ? error : "");
		ok(ret == 0 && c.engine_name && c.storage_url && c.api_listen,
			"%s: with engine, storage and api", what);
	}
	free(error);
	rcfg_clear(&c);
	unlink(path);
	rmdir(dir);
	free(config);
	bop_reconcile_free(r);
}

static char *hash_of(const char *schedule, const char *storage, int kind)
{
	bop_reconcile_t *r = NULL;
	char *h = NULL;

	if (reconcile(&r, schedule, storage) == 0 && bop_reconcile_valid(r))
		h = strdup(kind < 0 ? bop_reconcile_config_hash(r) : bop_reconcile_object_hash(r, kind));
	bop_reconcile_free(r);
	return h ? h : strdup("(invalid)");
}

static void test_hashes(void)
{
	char *base = hash_of(schedule_base, storage_base, -1);
	char *base_sec = hash_of(schedule_base, storage_base, BOP_RECONCILE_SECRET);
	char *base_sts = hash_of(schedule_base, storage_base, BOP_RECONCILE_STATEFULSET);
	char *s, *h, *h2;
	bop_reconcile_t *a = NULL, *b = NULL;

	reconcile(&a, schedule_base, storage_base);
	reconcile(&b, schedule_base, storage_base);
	for (int k = 0; k < BOP_RECONCILE_KINDS; k++)
		is_strf(bop_reconcile_object(a, k), bop_reconcile_object(b, k),
			"object %d is the same text each time", k);
	bop_reconcile_free(a);
	bop_reconcile_free(b);

	s = patched(schedule_base, "{\"metadata\":{\"resourceVersion\":\"999\",\"managedFields\":"
		"[{\"manager\":\"kubectl\"}],\"annotations\":{\"x\":\"y\"}},\"status\":{\"conditions\":"
		"[{\"type\":\"Ready\",\"status\":\"True\"}],\"lastScheduleTime\":\"2026-01-01T00:00:00Z\"}}");
	h = hash_of(s, storage_base, -1);
	is_str(h, base, "config hash unchanged by resourceVersion, managedFields, annotations, status");
	free(h);
	h = hash_of(s, storage_base, BOP_RECONCILE_STATEFULSET);
	is_str(h, base_sts, "StatefulSet hash unchanged by metadata and status");
	free(h);
	free(s);

	s = patched(storage_base, "{\"metadata\":{\"resourceVersion\":\"5\",\"generation\":9}}");
	h = hash_of(schedule_base, s, -1);
	is_str(h, base, "config hash unchanged by the storage's metadata");
	free(h);
	free(s);

	s = patched(schedule_base, "{\"spec\":{\"schedule\":\"0 */4 * * *\"}}");
	h = hash_of(s, storage_base, -1);
	ok(strcmp(h, base) != 0, "config hash changes with spec.schedule");
	free(h);
	free(s);

	s = patched(schedule_base, "{\"spec\":{\"retention\":{\"keepLast\":4}}}");
	h = hash_of(s, storage_base, -1);
	h2 = hash_of(s, storage_base, BOP_RECONCILE_SECRET);
	ok(strcmp(h, base) != 0, "config hash changes with spec.retention");
	ok(strcmp(h2, base_sec) != 0, "and so does the Secret's desired hash");
	free(h);
	free(h2);
	free(s);

	put_secret("shop", "orders-db-backup", "password", "another-Passw0rd", NULL, NULL);
	h = hash_of(schedule_base, storage_base, -1);
	h2 = hash_of(schedule_base, storage_base, BOP_RECONCILE_SECRET);
	ok(strcmp(h, base) != 0, "config hash changes when a referenced Secret's value does");
	ok(strcmp(h2, base_sec) != 0, "and so does the Secret's desired hash");
	free(h);
	free(h2);
	reset_cluster();
	put_secret(CTRL_NS, "minio-credentials", "accessKeyId", "AKIAEXAMPLE", "secretAccessKey",
		"rotated-secret-key-99");
	h = hash_of(schedule_base, storage_base, -1);
	ok(strcmp(h, base) != 0, "config hash changes when the storage credentials do");
	free(h);
	reset_cluster();

	h = hash_of(schedule_base, storage_base, -1);
	is_str(h, base, "and is back when the values are");
	free(h);

	image = "backupop/runner:0.2.0";
	h = hash_of(schedule_base, storage_base, -1);
	h2 = hash_of(schedule_base, storage_base, BOP_RECONCILE_STATEFULSET);
	ok(strcmp(h, base) != 0, "config hash changes with the runner image (a pod setting)");
	ok(strcmp(h2, base_sts) != 0, "and so does the StatefulSet's desired hash");
	image = "backupop/runner:0.1.0";
	free(h);
	free(h2);
	free(base);
	free(base_sec);
	free(base_sts);
}

typedef struct invalid_case {
	const char *what;
	const char *schedule_patch;     /* merge patch onto the schedule */
	const char *storage_patch;      /* onto the storage; "DELETE" = no storage */
	const char *reason;
	const char *field;              /* the message names it */
} invalid_case_t;

static const invalid_case_t invalid_cases[] = {
	{ "two engines", "{\"spec\":{\"engine\":{\"mysql\":{\"host\":\"db\"}}}}", NULL,
	  "InvalidSpec", "spec.engine" },
	{ "no engine", "{\"spec\":{\"engine\":null}}", NULL, "InvalidSpec", "spec.engine" },
	{ "unknown engine", "{\"spec\":{\"engine\":{\"postgres\":null,\"oracle\":{}}}}", NULL,
	  "UnknownEngine", "spec.engine.oracle" },
	{ "engine field the engine refuses",
	  "{\"spec\":{\"engine\":{\"postgres\":{\"format\":\"tar\"}}}}", NULL, "InvalidSpec",
	  "spec.engine.postgres" },
	{ "bad cron", "{\"spec\":{\"schedule\":\"61 * * * *\"}}", NULL, "InvalidSchedule",
	  "spec.schedule" },
	{ "bad verification cron", "{\"spec\":{\"verification\":{\"schedule\":\"* * 32 * *\"}}}", NULL,
	  "InvalidSchedule", "spec.verification.schedule" },
	{ "unknown time zone", "{\"spec\":{\"timeZone\":\"Mars/Olympus_Mons\"}}", NULL,
	  "InvalidTimeZone", "spec.timeZone" },
	{ "compression lz4", "{\"spec\":{\"compression\":{\"algorithm\":\"lz4\"}}}", NULL,
	  "InvalidSpec", "spec.compression.algorithm" },
	{ "zstd level 30", "{\"spec\":{\"compression\":{\"level\":30}}}", NULL, "InvalidSpec",
	  "spec.compression.level" },
	{ "keepLast -1", "{\"spec\":{\"retention\":{\"keepLast\":-1}}}", NULL, "InvalidSpec",
	  "spec.retention.keepLast" },
	{ "keepWithin garbage", "{\"spec\":{\"retention\":{\"keepWithin\":\"a week\"}}}", NULL,
	  "InvalidSpec", "spec.retention.keepWithin" },
	{ "concurrencyPolicy Allow", "{\"spec\":{\"concurrencyPolicy\":\"Allow\"}}", NULL,
	  "InvalidSpec", "spec.concurrencyPolicy" },
	{ "mode bogus", "{\"spec\":{\"mode\":\"double\"}}", NULL, "InvalidSpec", "spec.mode" },
	{ "unknown field", "{\"spec\":{\"frobnicate\":true}}", NULL, "InvalidSpec", "spec.frobnicate" },
	{ "suspend not a bool", "{\"spec\":{\"suspend\":\"yes\"}}", NULL, "InvalidSpec", "spec.suspend" },
	{ "no storage name", "{\"spec\":{\"storage\":{\"name\":null}}}", NULL, "InvalidSpec",
	  "spec.storage.name" },
	{ "unknown path variable", "{\"spec\":{\"storage\":{\"path\":\"{{ .Cluster }}/{{ .ID }}\"}}}",
	  NULL, "InvalidSpec", "spec.storage.path" },
	{ "ID not last", "{\"spec\":{\"storage\":{\"path\":\"{{ .ID }}/{{ .Name }}\"}}}", NULL,
	  "InvalidSpec", "spec.storage.path" },
	{ "path with ..", "{\"spec\":{\"storage\":{\"path\":\"../{{ .Name }}\"}}}", NULL,
	  "InvalidSpec", "spec.storage.path" },
	{ "expectRows without a scratch database", "{\"spec\":{\"verification\":{\"expectRows\":5}}}",
	  NULL, "InvalidSpec", "spec.verification.expectRows" },
	{ "expectRows with an exec scratch engine, which cannot count rows",
	  "{\"spec\":{\"verification\":{\"restore\":{\"engine\":{\"exec\":"
	  "{\"restoreCommand\":[\"cat\"]}}},\"expectRows\":5}}}",
	  NULL, "InvalidSpec", "spec.verification.expectRows: needs verification.restore.engine "
	  "with an engine that counts the restored rows in its scratch database (one of mysql or "
	  "postgres)" },
	{ "password Secret missing", "{\"spec\":{\"engine\":{\"postgres\":{\"passwordSecretRef\":"
	  "{\"name\":\"nope\"}}}}}", NULL, "SecretNotFound", "spec.engine.postgres.passwordSecretRef" },
	{ "password key missing", "{\"spec\":{\"engine\":{\"postgres\":{\"passwordSecretRef\":"
	  "{\"key\":\"pw\"}}}}}", NULL, "SecretKeyNotFound", "\"pw\"" },
	{ "secret ref without key", "{\"spec\":{\"engine\":{\"postgres\":{\"passwordSecretRef\":"
	  "{\"key\":null}}}}}", NULL, "InvalidSpec", "spec.engine.postgres.passwordSecretRef.key" },
	{ "both password and passwordSecretRef", "{\"spec\":{\"engine\":{\"postgres\":"
	  "{\"password\":\"inline-pass\"}}}}", NULL, "InvalidSpec", "passwordSecretRef" },
	{ "recipients Secret missing", "{\"spec\":{\"encryption\":{\"recipientsSecretRef\":"
	  "{\"name\":\"gone\"}}}}", NULL, "SecretNotFound", "shop/gone" },
	{ "bad inline recipient", "{\"spec\":{\"encryption\":{\"recipients\":[\"age1nope\"]}}}", NULL,
	  "InvalidSpec", "spec.encryption.recipients[0]" },
	{ "no storage", NULL, "DELETE", "StorageNotFound", "minio" },
	{ "storage lists other names", NULL, "{\"spec\":{\"allowedNamespaces\":{\"from\":\"Names\","
	  "\"names\":[\"other\"]}}}", "StorageNotAllowed", "shop" },
	{ "storage selects other labels", NULL, "{\"spec\":{\"allowedNamespaces\":{\"from\":\"Selector\","
	  "\"selector\":{\"matchLabels\":{\"team\":\"b\"}}}}}", "StorageNotAllowed", "shop" },
	{ "storage expression excludes", NULL, "{\"spec\":{\"allowedNamespaces\":{\"from\":\"Selector\","
	  "\"selector\":{\"matchExpressions\":[{\"key\":\"team\",\"operator\":\"NotIn\","
	  "\"values\":[\"a\"]}]}}}}", "StorageNotAllowed", "shop" },
	{ "storage with s3 and file", NULL, "{\"spec\":{\"file\":{\"claimName\":\"x\"}}}", "InvalidSpec",
	  "BackupStorage minio" },
	{ "storage without bucket", NULL, "{\"spec\":{\"s3\":{\"bucket\":null}}}", "InvalidSpec",
	  "spec.s3.bucket" },
	{ "storage credentials missing", NULL, "{\"spec\":{\"credentialsSecretRef\":{\"name\":\"x\"}}}",
	  "SecretNotFound", CTRL_NS "/x" },
	{ "storage credentials without a key", NULL, "{\"spec\":{\"credentialsSecretRef\":"
	  "{\"name\":\"half\"}}}", "SecretKeyNotFound", "secretAccessKey" },
};

static void test_invalid(void)
{
	put_secret(CTRL_NS, "half", "accessKeyId", "AKIAEXAMPLE", NULL, NULL);
	for (size_t i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]); i++) {
		const invalid_case_t *c = &invalid_cases[i];
		char *s = patched(schedule_base, c->schedule_patch);
		bool no_storage = c->storage_patch && !strcmp(c->storage_patch, "DELETE");
		char *st = no_storage ? NULL : patched(storage_base, c->storage_patch);
		bop_reconcile_t *r = NULL;
		const char *msg;
		int ret = reconcile(&r, s, st);

		msg = bop_reconcile_message(r);
		ok(ret == 0 && !bop_reconcile_valid(r), "%s: not valid (returns %d)", c->what, ret);
		is_str(bop_reconcile_reason(r), c->reason, c->what);
		ok(msg && strstr(msg, c->field), "%s: the message names %s: %s", c->what, c->field,
			msg ? msg : "(none)");
		ok(msg && !strstr(msg, PASSWORD) && !strstr(msg, SECRET_KEY),
			"%s: no secret in the message", c->what);
		ok(!bop_reconcile_object(r, BOP_RECONCILE_SECRET) && !bop_reconcile_config_hash(r) &&
			!bop_reconcile_object_hash(r, BOP_RECONCILE_SERVICE),
			"%s: no objects", c->what);
		ok(bop_reconcile_object_name(r) && !strcmp(bop_reconcile_object_name(r),
			"runner-shop-orders-db"), "%s: the name is known", c->what);
		bop_reconcile_free(r);
		free(s);
		free(st);
	}
	drop("Secret", CTRL_NS, "half");
}

static void test_refs_when_invalid(void)
{
	bop_reconcile_t *r = NULL;
	bool found = false;

	drop("Secret", "shop", "backup-keys");
	reconcile(&r, schedule_base, storage_base);
	is_str(bop_reconcile_reason(r), "SecretNotFound", "a missing recipients Secret");
	for (size_t i = 0; bop_reconcile_secret_ref(r, i); i++)
		found |= !strcmp(bop_reconcile_secret_ref(r, i), "shop/backup-keys");
	ok(found, "the missing Secret is still listed as a secret ref (to retry when it appears)");
	bop_reconcile_free(r);
	reset_cluster();

	lookups_failing = 1;
	is_int(reconcile(&r, schedule_base, storage_base), BOP_EIO,
		"a failing lookup is an error of bop_reconcile_new()");
	ok(r == NULL, "and gives no handle");
	lookups_failing = 0;
}

static void test_variants(void)
{
	bop_reconcile_t *r = NULL;
	json_object *sts, *svc, *sec, *cfg;
	char *s, *st, *config;

	/* selector storage that matches; file storage; CA; other port */
	st = patched(storage_base, "{\"spec\":{\"allowedNamespaces\":{\"from\":null,\"selector\":"
		"{\"matchLabels\":{\"team\":\"a\"},\"matchExpressions\":[{\"key\":\"team\","
		"\"operator\":\"Exists\"}]}}}}");
	if (reconcile(&r, schedule_base, st) < 0)
		diag("%s", bop_error_last());
	ok(bop_reconcile_valid(r), "a storage whose selector matches the namespace's labels (%s)",
		bop_reconcile_message(r) ? bop_reconcile_message(r) : "valid");
	bop_reconcile_free(r);
	free(st);

	st = patched(storage_base, "{\"spec\":{\"allowedNamespaces\":{\"from\":\"Names\","
		"\"names\":[\"other\",\"shop\"]}}}");
	reconcile(&r, schedule_base, st);
	ok(bop_reconcile_valid(r), "a storage that names the namespace (%s)",
		bop_reconcile_message(r) ? bop_reconcile_message(r) : "valid");
	bop_reconcile_free(r);
	free(st);

	st = patched(storage_base, "{\"spec\":{\"s3\":null,\"credentialsSecretRef\":null,"
		"\"file\":{\"claimName\":\"backups\",\"prefix\":\"/nightly/\"}}}");
	reconcile(&r, schedule_base, st);
	ok(bop_reconcile_valid(r), "file storage on a PVC (%s)", bop_reconcile_message(r) ?
		bop_reconcile_message(r) : "valid");
	sts = object(r, BOP_RECONCILE_STATEFULSET);
	config = config_of(r);
	cfg = config ? json_tokener_parse(config) : NULL;
	is_str(at_str(cfg, "storage.url"), "file:///var/lib/backupop/storage/nightly",
		"file storage: the URL");
	is_str(at_str(sts, "spec.template.spec.volumes.2.persistentVolumeClaim.claimName"), "backups",
		"file storage: the PVC is a volume");
	is_str(at_str(sts, "spec.template.spec.containers.0.volumeMounts.2.mountPath"),
		"/var/lib/backupop/storage", "file storage: mounted");
	json_object_put(cfg);
	json_object_put(sts);
	free(config);
	bop_reconcile_free(r);
	test_runner_loads(schedule_base, st, "file storage");
	free(st);

	put_secret(CTRL_NS, "minio-ca", "ca.crt", "-----BEGIN CERTIFICATE-----\nMIIB\n"
		"-----END CERTIFICATE-----\n", NULL, NULL);
	st = patched(storage_base, "{\"spec\":{\"s3\":{\"endpoint\":\"https://minio:9000\","
		"\"caSecretRef\":{\"namespace\":\"" CTRL_NS "\",\"name\":\"minio-ca\"}}}}");
	port = 9090;
	reconcile(&r, schedule_base, st);
	ok(bop_reconcile_valid(r), "s3 with a CA Secret");
	sec = object(r, BOP_RECONCILE_SECRET);
	svc = object(r, BOP_RECONCILE_SERVICE);
	config = config_of(r);
	cfg = config ? json_tokener_parse(config) : NULL;
	{
		json_object *v = NULL;
		char *ca;

		json_object_object_get_ex(at(sec, "data"), "ca.crt", &v);
		ca = v ? unb64(json_object_get_string(v)) : NULL;
		ok(ca && strstr(ca, "BEGIN CERTIFICATE"), "the CA is a file of the config Secret");
		free(ca);
	}
	is_str(at_str(cfg, "storage.caFile"), "ca.crt", "config: caFile next to the config");
	is_str(at_str(cfg, "api.listen"), ":9090", "config: another runner port");
	is_str(at_str(cfg, "metrics.listen"), ":9091", "config: metrics beside another port");
	is_int(at_int(svc, "spec.ports.0.port"), 9090, "Service: another port");
	is_str(at_str(cfg, "api.advertiseURL"), "http://runner-shop-orders-db.backupop-system.svc:9090",
		"advertiseURL with the port");
	port = 0;
	json_object_put(cfg);
	json_object_put(sec);
	json_object_put(svc);
	free(config);
	bop_reconcile_free(r);
	free(st);

	/* single mode, verification with a scratch database, resources, no affinity */
	s = patched(schedule_base, "{\"spec\":{\"mode\":\"single\",\"runner\":{\"affinity\":null,"
		"\"resources\":{\"limits\":{\"memory\":\"2Gi\"}}},\"storage\":{\"path\":"
		"\"team-x/{{.Name}}\"},\"verification\":{\"schedule\":\"@weekly\",\"restore\":{\"engine\":"
		"{\"postgres\":{\"host\":\"scratch\",\"database\":\"scratch\",\"user\":\"t\","
		"\"passwordSecretRef\":{\"name\":\"orders-db-backup\",\"key\":\"password\"}}},"
		"\"expectRows\":10}},\"encryption\":{\"recipientsSecretRef\":null,\"recipients\":[\"%R\"]}}}");
	{
		char *p = strstr(s, "%R"), *fixed = NULL;

		if (asprintf(&fixed, "%.*s%s%s", (int)(p - s), s, recipient, p + 2) < 0)
			abort();
		free(s);
		s = fixed;
	}
	reconcile(&r, s, storage_base);
	ok(bop_reconcile_valid(r), "single mode with a verification scratch database (%s)",
		bop_reconcile_message(r) ? bop_reconcile_message(r) : "valid");
	sts = object(r, BOP_RECONCILE_STATEFULSET);
	config = config_of(r);
	cfg = config ? json_tokener_parse(config) : NULL;
	is_str(at_str(cfg, "name"), "team-x/orders-db", "a path without {{ .ID }}");
	is_str(at_str(cfg, "verification.restore.engine.postgres.password"), PASSWORD,
		"the scratch database's password resolved");
	is_str(at_str(sts, "spec.template.spec.containers.0.resources.limits.memory"), "2Gi",
		"spec.runner.resources");
	ok(!at(sts, "spec.template.spec.affinity"), "no affinity without a podSelector");
	json_object_put(cfg);
	json_object_put(sts);
	free(config);
	bop_reconcile_free(r);
	test_runner_loads(s, storage_base, "single mode + verification");
	free(s);
}

/* The cockroach engine: its password from a Secret, and the runner's advertiseURL, which
 * the engine needs to send CockroachDB to the runner, in the config the runner loads.
 * (Merging an engine's pod patch is tested in test-merge.c: no built-in engine has one.) */
/* The config of a reconcile of the base schedule patched with `patch`; NULL when invalid
 * (*reason then says why). */
static json_object *config_with(const char *patch, bop_reconcile_t **out)
{
	char *s = patched(schedule_base, patch), *config;
	json_object *cfg = NULL;

	if (reconcile(out, s, storage_base) < 0)
		diag("%s", bop_error_last());
	config = bop_reconcile_valid(*out) ? config_of(*out) : NULL;
	if (config)
		cfg = json_tokener_parse(config);
	free(config);
	free(s);
	return cfg;
}

static bool has_recipient(json_object *cfg, const char *rcp)
{
	json_object *list = at(cfg, "encryption.recipients");

	for (size_t i = 0; list && i < json_object_array_length(list); i++)
		if (!strcmp(json_object_get_string(json_object_array_get_idx(list, i)), rcp))
			return true;
	return false;
}

static bool secret_has_file(bop_reconcile_t *r, const char *key, const char *content)
{
	json_object *sec = object(r, BOP_RECONCILE_SECRET), *v = NULL;
	char *text = NULL;
	bool found = false;

	if (json_object_object_get_ex(at(sec, "data"), key, &v))
		text = unb64(json_object_get_string(v));
	found = text && !strcmp(text, content);
	free(text);
	json_object_put(sec);
	return found;
}

static void test_identity(void)
{
	bop_reconcile_t *r = NULL;
	json_object *cfg;
	char *id2 = NULL, *rcp2 = NULL, *msg, *s;

	put_secret("shop", "restore-key", "identity", identity, NULL, NULL);
	cfg = config_with("{\"spec\":{\"encryption\":{\"identitySecretRef\":{\"name\":"
		"\"restore-key\",\"key\":\"identity\"}}}}", &r);
	ok(cfg != NULL, "identitySecretRef: valid (%s)", bop_reconcile_message(r) ?
		bop_reconcile_message(r) : "valid");
	ok(has_recipient(cfg, recipient), "identitySecretRef: the recipients stay in the config");
	is_str(at_str(cfg, "encryption.identityFile"), "age-identity.txt",
		"identitySecretRef: the runner gets an identity file");
	ok(secret_has_file(r, "age-identity.txt", identity),
		"identitySecretRef: the identity is a key of the runner's Secret");
	json_object_put(cfg);
	bop_reconcile_free(r);

	/* generateIdentity: what the controller made is read, never made here */
	if (bop_age_keygen(&id2, &rcp2) < 0)
		abort();
	cfg = config_with("{\"spec\":{\"encryption\":{\"recipientsSecretRef\":null,"
		"\"generateIdentity\":{\"secretName\":\"made-key\"}}}}", &r);
	ok(!cfg && bop_reconcile_reason(r) && !strcmp(bop_reconcile_reason(r), "SecretNotFound") &&
		strstr(bop_reconcile_message(r), "shop/made-key"),
		"generateIdentity before its Secret exists: SecretNotFound naming it (%s)",
		bop_reconcile_message(r));
	is_str(bop_reconcile_secret_ref(r, 1), "shop/made-key",
		"generateIdentity: its Secret is a secret ref (its creation reconciles again)");
	bop_reconcile_free(r);

	put_secret("shop", "made-key", BOP_RECONCILE_GENERATED_IDENTITY_KEY, id2,
		BOP_RECONCILE_GENERATED_RECIPIENT_KEY, rcp2);
	cfg = config_with("{\"spec\":{\"encryption\":{\"recipientsSecretRef\":null,"
		"\"generateIdentity\":{\"secretName\":\"made-key\"}}}}", &r);
	ok(cfg != NULL, "generateIdentity alone: valid (%s)", bop_reconcile_message(r) ?
		bop_reconcile_message(r) : "valid");
	ok(has_recipient(cfg, rcp2) && json_object_array_length(at(cfg, "encryption.recipients")) == 1,
		"generateIdentity: its recipient is the one recipient");
	is_str(at_str(cfg, "encryption.identityFile"), "age-identity.txt",
		"generateIdentity: the runner gets the identity file");
	ok(secret_has_file(r, "age-identity.txt", id2),
		"generateIdentity: the identity reaches the runner through its Secret");
	json_object_put(cfg);
	bop_reconcile_free(r);
	s = patched(schedule_base, "{\"spec\":{\"encryption\":{\"recipientsSecretRef\":null,"
		"\"generateIdentity\":{\"secretName\":\"made-key\"}}}}");
	test_runner_loads(s, storage_base, "generateIdentity");
	free(s);

	cfg = config_with("{\"spec\":{\"encryption\":{\"generateIdentity\":{\"secretName\":"
		"\"made-key\"}}}}", &r);
	ok(has_recipient(cfg, rcp2) && has_recipient(cfg, recipient),
		"generateIdentity beside recipientsSecretRef: both recipients");
	json_object_put(cfg);
	bop_reconcile_free(r);

	put_secret("shop", "made-key", "something", "else", NULL, NULL);
	cfg = config_with("{\"spec\":{\"encryption\":{\"generateIdentity\":{\"secretName\":"
		"\"made-key\"}}}}", &r);
	ok(!cfg && bop_reconcile_reason(r) && !strcmp(bop_reconcile_reason(r), "IdentitySecretInvalid"),
		"a Secret of that name without the identity: IdentitySecretInvalid (%s)",
		bop_reconcile_message(r));
	bop_reconcile_free(r);

	put_secret("shop", "made-key", "identity", "AGE-SECRET-KEY-1NOTAKEYATALLSECRETISH", NULL, NULL);
	cfg = config_with("{\"spec\":{\"encryption\":{\"generateIdentity\":{\"secretName\":"
		"\"made-key\"}}}}", &r);
	msg = bop_reconcile_message(r) ? strdup(bop_reconcile_message(r)) : NULL;
	ok(!cfg && bop_reconcile_reason(r) && !strcmp(bop_reconcile_reason(r), "IdentitySecretInvalid"),
		"a malformed identity: IdentitySecretInvalid (%s)", msg ? msg : "-");
	ok(msg && !strstr(msg, "NOTAKEY"), "... whose message does not quote it");
	free(msg);
	bop_reconcile_free(r);

	cfg = config_with("{\"spec\":{\"encryption\":{\"generateIdentity\":{\"secretName\":"
		"\"made-key\"},\"identitySecretRef\":{\"name\":\"restore-key\",\"key\":\"identity\"}}}}",
		&r);
	ok(!cfg && bop_reconcile_reason(r) && !strcmp(bop_reconcile_reason(r), "InvalidSpec") &&
		strstr(bop_reconcile_message(r), "not both"),
		"generateIdentity and identitySecretRef together: InvalidSpec (%s)",
		bop_reconcile_message(r));
	bop_reconcile_free(r);

	cfg = config_with("{\"spec\":{\"encryption\":{\"generateIdentity\":{\"secretName\":"
		"\"Not_A_Name\"}}}}", &r);
	ok(!cfg && bop_reconcile_message(r) &&
		strstr(bop_reconcile_message(r), "generateIdentity.secretName"),
		"a secretName that is no Secret name: InvalidSpec naming the field (%s)",
		bop_reconcile_message(r));
	bop_reconcile_free(r);
	drop("Secret", "shop", "made-key");
	drop("Secret", "shop", "restore-key");
	bop_free(id2);
	bop_free(rcp2);
}

/* ---- templates ---- */

#define PG_TEMPLATE \
	"{\"apiVersion\":\"backupop.io/v1alpha1\",\"kind\":\"ClusterBackupTemplate\"," \
	"\"metadata\":{\"name\":\"pg\"},\"spec\":{\"variables\":[" \
	"{\"name\":\"host\",\"required\":true},{\"name\":\"port\",\"type\":\"int\",\"default\":5432}," \
	"{\"name\":\"user\",\"default\":\"postgres\"},{\"name\":\"extra\"}," \
	"{\"name\":\"clean\",\"type\":\"bool\",\"default\":false}," \
	"{\"name\":\"password\",\"secret\":true,\"required\":true}]," \
	"\"exec\":{\"backupCommand\":[\"pg_dumpall\",\"--host={{ .host }}\",\"--port={{.port}}\"," \
	"\"--username={{ .user }}\",\"{{ .extra }}\"],\"restoreCommand\":[\"psql\",\"-h\"," \
	"\"{{ .host }}\",\"--set=clean={{ .clean }}\"],\"env\":{\"PGPASSWORD\":\"{{ .password }}\"," \
	"\"PGAPPNAME\":\"{{ .extra }}\"},\"timeoutSeconds\":600}}}"

static char *json_text(json_object *o)
{
	return o ? strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)) : NULL;
}

/* A template of one command (JSON array text) beside the pg variables. */
static void put_template(const char *kind, const char *ns, const char *name, const char *cmd)
{
	char *json = NULL;

	if (asprintf(&json, "{\"kind\":\"%s\",\"metadata\":{\"name\":\"%s\"},\"spec\":{"
		    "\"variables\":[{\"name\":\"host\"},{\"name\":\"password\",\"secret\":true}],"
		    "\"exec\":{\"backupCommand\":%s}}}", kind, name, cmd) < 0)
		abort();
	put(kind, ns, name, json);
}

/* Reconciles the base schedule (engine replaced by `spec`, a JSON object's members) and
 * checks the reason (NULL: valid); returns the config when valid. */
static json_object *templated(const char *spec, const char *reason, const char *in_message,
	const char *what)
{
	char *patch = NULL, *config = NULL;
	bop_reconcile_t *r = NULL;
	json_object *cfg = NULL;
	const char *got;

	if (asprintf(&patch, "{\"spec\":{\"engine\":null,%s}}", spec) < 0)
		abort();
	cfg = config_with(patch, &r);
	got = bop_reconcile_reason(r);
	if (!reason)
		ok(cfg != NULL, "%s: valid (%s)", what, got ? bop_reconcile_message(r) : "valid");
	else
		ok(got && !strcmp(got, reason) && strstr(bop_reconcile_message(r), in_message),
			"%s: %s naming %s (%s: %s)", what, reason, in_message, got ? got : "valid",
			got ? bop_reconcile_message(r) : "-");
	if (got)
		ok(!strstr(bop_reconcile_message(r), "pw-tmpl-77") &&
			!strstr(bop_reconcile_message(r), "not-a-number-51"),
			"%s: the message quotes no value", what);
	free(config);
	free(patch);
	bop_reconcile_free(r);
	return cfg;
}

static void test_templates(void)
{
	json_object *cfg;
	char *s;

	put("ClusterBackupTemplate", NULL, "pg", strdup(PG_TEMPLATE));
	put_secret("shop", "pg-vars", "password", "pw-tmpl-77", "host", "from-secret");
	cfg = templated("\"templateRef\":{\"name\":\"pg\"},\"vars\":{\"host\":\"db; rm -rf / $(id)\","
		"\"port\":\"6432\"},\"varsSecretRef\":{\"name\":\"pg-vars\",\"keys\":[\"password\"]}",
		NULL, NULL, "a ClusterBackupTemplate with vars and a vars Secret");
	s = cfg ? json_text(at(cfg, "engine.exec.backupCommand")) : NULL;
	is_str(s, "[\"pg_dumpall\",\"--host=db; rm -rf \\/ $(id)\",\"--port=6432\","
		"\"--username=postgres\"]", "each element rendered on its own: the value stays one "
		"argument, defaults fill in, an unset lone reference is left out");
	free(s);
	s = cfg ? json_text(at(cfg, "engine.exec.restoreCommand")) : NULL;
	is_str(s, "[\"psql\",\"-h\",\"db; rm -rf \\/ $(id)\",\"--set=clean=false\"]",
		"the restore command, with a bool default");
	free(s);
	is_str(at_str(cfg, "engine.exec.env.PGPASSWORD"), "pw-tmpl-77",
		"the secret variable reaches the runner config through env");
	ok(cfg && !at(cfg, "engine.exec.env.PGAPPNAME"), "an env value of an unset variable is left out");
	ok(cfg && at_int(cfg, "engine.exec.timeoutSeconds") == 600, "timeoutSeconds comes along");
	ok(cfg && !at(cfg, "engine.exec.shell"), "no shell");
	json_object_put(cfg);
	s = patched(schedule_base, "{\"spec\":{\"engine\":null,\"templateRef\":{\"name\":\"pg\"},"
		"\"vars\":{\"host\":\"db\"},\"varsSecretRef\":{\"name\":\"pg-vars\",\"keys\":[\"password\"]}}}");
	test_runner_loads(s, storage_base, "a templated schedule");
	free(s);

	templated("\"templateRef\":{\"name\":\"pg\"},\"varsSecretRef\":{\"name\":\"pg-vars\","
		"\"keys\":[\"password\"]}", "TemplateVariableMissing", "variable host", "no host");
	templated("\"templateRef\":{\"name\":\"pg\"},\"vars\":{\"host\":\"db\"}",
		"TemplateVariableMissing", "variable password", "no password");
	templated("\"templateRef\":{\"name\":\"pg\"},\"vars\":{\"host\":\"db\",\"port\":\"not-a-number-51\"},"
		"\"varsSecretRef\":{\"name\":\"pg-vars\",\"keys\":[\"password\"]}",
		"TemplateVariableInvalid", "port", "a port that is no int");
	templated("\"templateRef\":{\"name\":\"pg\"},\"vars\":{\"host\":\"db\",\"clean\":\"yes\"},"
		"\"varsSecretRef\":{\"name\":\"pg-vars\",\"keys\":[\"password\"]}",
		"TemplateVariableInvalid", "clean", "a bool that is no bool");
	templated("\"templateRef\":{\"name\":\"pg\"},\"vars\":{\"host\":\"db\",\"hots\":\"x\"},"
		"\"varsSecretRef\":{\"name\":\"pg-vars\",\"keys\":[\"password\"]}",
		"TemplateVariableInvalid", "spec.vars.hots", "a misspelt variable");
	templated("\"templateRef\":{\"name\":\"pg\"},\"vars\":{\"host\":\"db\",\"password\":\"pw-tmpl-77\"}",
		"TemplateVariableInvalid", "varsSecretRef", "a secret variable given in plain vars");
	templated("\"templateRef\":{\"name\":\"pg\"},\"varsSecretRef\":{\"name\":\"pg-vars\"}",
		"TemplateVariableInvalid", "variable host", "a variable from the Secret used in an argument");
	templated("\"templateRef\":{\"name\":\"pg\"},\"vars\":{\"host\":\"db\"},\"varsSecretRef\":"
		"{\"name\":\"pg-vars\",\"keys\":[\"nope\"]}", "TemplateVariableInvalid", "nope",
		"a Secret key the template does not declare");
	templated("\"templateRef\":{\"name\":\"pg\"},\"vars\":{\"host\":\"db\"},\"varsSecretRef\":"
		"{\"name\":\"no-such\",\"keys\":[\"password\"]}", "SecretNotFound", "no-such",
		"a vars Secret that does not exist");
	templated("\"templateRef\":{\"name\":\"nope\"}", "TemplateNotFound", "ClusterBackupTemplate nope",
		"a template that does not exist");
	templated("\"templateRef\":{\"name\":\"pg\"},\"engine\":{\"exec\":{\"backupCommand\":[\"x\"]}}",
		"InvalidSpec", "templateRef", "engine and templateRef");
	templated("\"vars\":{\"host\":\"db\"}", "InvalidSpec", "templateRef", "vars without a template");

	put_template("ClusterBackupTemplate", NULL, "leaky", "[\"dump\",\"--password={{ .password }}\"]");
	put_secret("shop", "leaky-vars", "password", "pw-tmpl-77", NULL, NULL);
	templated("\"templateRef\":{\"name\":\"leaky\"},\"varsSecretRef\":{\"name\":\"leaky-vars\"}",
		"TemplateVariableInvalid", "process list", "a template putting a secret into argv");
	put_template("ClusterBackupTemplate", NULL, "shelly", "[\"sh\",\"-c\",\"dump {{ .host }}\"]");
	templated("\"templateRef\":{\"name\":\"shelly\"},\"vars\":{\"host\":\"db\"}",
		"TemplateInvalid", "shell", "a shell script with a reference");
	put_template("ClusterBackupTemplate", NULL, "typo", "[\"dump\",\"{{ .hots }}\"]");
	templated("\"templateRef\":{\"name\":\"typo\"}", "TemplateInvalid", "unknown variable hots",
		"a template referring to an undeclared variable");
	put_template("ClusterBackupTemplate", NULL, "broken", "[\"dump\",\"{{ host\"]");
	templated("\"templateRef\":{\"name\":\"broken\"}", "TemplateInvalid", "ClusterBackupTemplate broken",
		"a malformed reference");
	put_template("BackupTemplate", "shop", "local", "[\"dump\",\"--host={{ .host }}\"]");
	cfg = templated("\"templateRef\":{\"kind\":\"BackupTemplate\",\"name\":\"local\"},"
		"\"vars\":{\"host\":\"db\"}", NULL, NULL, "a namespaced BackupTemplate");
	json_object_put(cfg);
	templated("\"templateRef\":{\"kind\":\"BackupTemplate\",\"name\":\"pg\"},\"vars\":{\"host\":\"db\"}",
		"TemplateNotFound", "BackupTemplate shop/pg", "a BackupTemplate is looked up in the "
		"schedule's namespace only");
}

static void test_cockroach(void)
{
	bop_reconcile_t *r = NULL;
	json_object *cfg;
	char *s, *config;

	s = patched(schedule_base, "{\"spec\":{\"engine\":{\"postgres\":null,\"cockroach\":"
		"{\"host\":\"crdb-public.db\",\"database\":\"shop\",\"user\":\"backup\","
		"\"passwordSecretRef\":{\"name\":\"orders-db-backup\",\"key\":\"password\"}}}}}");
	reconcile(&r, s, storage_base);
	if (!bop_reconcile_valid(r) && bop_reconcile_reason(r) &&
	    !strcmp(bop_reconcile_reason(r), "UnknownEngine")) {
		skip(4, "the cockroach engine is not in this build: %s", bop_reconcile_message(r));
		bop_reconcile_free(r);
		free(s);
		return;
	}
	ok(bop_reconcile_valid(r), "a cockroach schedule (%s)", bop_reconcile_message(r) ?
		bop_reconcile_message(r) : "valid");
	config = config_of(r);
	cfg = config ? json_tokener_parse(config) : NULL;
	is_str(at_str(cfg, "engine.cockroach.password"), PASSWORD, "cockroach: password resolved");
	json_object_put(cfg);
	free(config);
	bop_reconcile_free(r);
	test_runner_loads(s, storage_base, "cockroach");
	free(s);
}

static bool dns_label(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 63 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return false;
	for (; *s; s++)
		if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '-'))
			return false;
	return true;
}

static void test_names(void)
{
	char ns[64], name_a[254], name_b[254];
	char *a = NULL, *b = NULL, *c = NULL;

	is_int(bop_reconcile_name(&a, "runner", "shop", "orders-db"), 0, "a short name");
	is_str(a, "runner-shop-orders-db", "is <prefix>-<ns>-<name>");
	bop_free(a);

	memset(ns, 'n', 63);
	ns[63] = '\0';
	memset(name_a, 'x', 253);
	name_a[253] = '\0';
	memcpy(name_b, name_a, sizeof(name_a));
	name_b[252] = 'y';
	bop_reconcile_name(&a, "runner", ns, name_a);
	bop_reconcile_name(&b, "runner", ns, name_a);
	bop_reconcile_name(&c, "runner", ns, name_b);
	ok(a && strlen(a) <= BOP_RECONCILE_NAME_MAX, "a long name is at most 52 characters (%zu)",
		a ? strlen(a) : 0);
	ok(a && dns_label(a), "and a DNS label: %s", a);
	is_str(a, b, "the same input gives the same name");
	ok(a && c && strcmp(a, c), "inputs differing in their last character give distinct names");
	ok(c && dns_label(c) && strlen(c) <= BOP_RECONCILE_NAME_MAX, "which is valid too: %s", c);
	ok(a && strncmp(a, "runner-nnnn", 11) == 0, "the name starts with the readable parts");
	bop_free(a);
	bop_free(b);
	bop_free(c);

	/* a split between namespace and name must count */
	bop_reconcile_name(&a, "runner", ns, "ab");
	ns[62] = '\0';
	bop_reconcile_name(&b, "runner", ns, "nab");
	ok(a && b && strcmp(a, b), "moving characters between namespace and name changes the hash");
	bop_free(a);
	bop_free(b);

	bop_reconcile_name(&a, "runner", "shop", "orders.db");
	bop_reconcile_name(&b, "runner", "shop", "orders-db");
	ok(a && dns_label(a), "a dotted name becomes a DNS label: %s", a);
	ok(a && b && strcmp(a, b), "and does not meet its dashed twin");
	bop_free(a);
	bop_free(b);

	bop_reconcile_name(&a, "runner", "shop", "db-");
	ok(a == NULL || dns_label(a), "no trailing dash");
	bop_free(a);
	a = NULL;
	ok(bop_reconcile_name(&a, "runner", "", "x") == BOP_EINVAL && !a, "an empty namespace is refused");
}

static void test_long_labels(void)
{
	char name[200], *s, *patch = NULL;
	bop_reconcile_t *r = NULL;
	json_object *sts, *v = NULL;

	memset(name, 'q', 150);
	name[150] = '\0';
	if (asprintf(&patch, "{\"metadata\":{\"name\":\"%s\"}}", name) < 0)
		abort();
	s = patched(schedule_base, patch);
	reconcile(&r, s, storage_base);
	ok(bop_reconcile_valid(r), "a 150-character schedule name");
	ok(strlen(bop_reconcile_object_name(r)) <= BOP_RECONCILE_NAME_MAX &&
		dns_label(bop_reconcile_object_name(r)), "gets a short object name");
	sts = object(r, BOP_RECONCILE_STATEFULSET);
	json_object_object_get_ex(at(sts, "metadata.labels"), "backupop.io/schedule-name", &v);
	ok(v && strlen(json_object_get_string(v)) <= 63, "and a label value of at most 63 characters");
	json_object_put(sts);
	bop_reconcile_free(r);
	free(s);
	free(patch);
}

/* A 253-character schedule name (the longest Kubernetes allows) in spec.storage.path:
 * the catalog name is rendered exactly, and a template that renders longer than a catalog
 * name may be is refused by name (it used to overrun the rendering buffer when literal
 * text followed five {{ .Name }}s). */
static void test_long_path(void)
{
	char name[254], *s, *patch = NULL, *config, want[600];
	const char *msg;
	bop_reconcile_t *r = NULL;
	json_object *cfg;

	memset(name, 'n', 253);
	name[253] = '\0';
	if (asprintf(&patch, "{\"metadata\":{\"name\":\"%s\"},\"spec\":{\"storage\":"
		    "{\"path\":\"{{ .Namespace }}/{{ .Name }}/{{.Name}}/{{ .ID }}\"}}}", name) < 0)
		abort();
	s = patched(schedule_base, patch);
	reconcile(&r, s, storage_base);
	ok(bop_reconcile_valid(r), "a 253-character name twice in spec.storage.path: valid (%s)",
		bop_reconcile_message(r) ? bop_reconcile_message(r) : "no message");
	config = config_of(r);
	cfg = config ? json_tokener_parse(config) : NULL;
	snprintf(want, sizeof(want), "shop/%s/%s", name, name);
	is_str(at_str(cfg, "name"), want, "and the catalog name is the template rendered");
	json_object_put(cfg);
	free(config);
	bop_reconcile_free(r);
	free(s);
	free(patch);

	r = NULL;
	if (asprintf(&patch, "{\"metadata\":{\"name\":\"%s\"},\"spec\":{\"storage\":"
		    "{\"path\":\"{{.Name}}{{.Name}}{{.Name}}{{.Name}}{{.Name}}%0300d\"}}}", name, 0) < 0)
		abort();
	s = patched(schedule_base, patch);
	is_int(reconcile(&r, s, storage_base), 0, "five names and 300 characters in the path: "
		"no crash, no error code");
	msg = bop_reconcile_message(r);
	ok(!bop_reconcile_valid(r), "fuzz-storage-path crash: a path rendering to 1565 characters "
		"is invalid");
	is_str(bop_reconcile_reason(r), "InvalidSpec", "with reason InvalidSpec");
	ok(msg && strstr(msg, "spec.storage.path") && strstr(msg, "longer than 1024"),
		"and the message says the path makes a catalog name that is too long: %s",
		msg ? msg : "(none)");
	bop_reconcile_free(r);
	free(s);
	free(patch);
}

static void test_token(void)
{
	char *t = NULL, *t2 = NULL;

	is_int(bop_reconcile_runner_token(&t, (const unsigned char *)"Jefe", 4,
		"what do ya want for nothing?"), 0, "runner token");
	is_str(t, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
		"is HMAC-SHA256 (RFC 4231 test case 2)");
	bop_free(t);
	bop_reconcile_runner_token(&t, (const unsigned char *)"k3y", 3, "uid-1");
	bop_reconcile_runner_token(&t2, (const unsigned char *)"k3y", 3, "uid-2");
	ok(t && t2 && strlen(t) == 64 && strcmp(t, t2), "distinct uids, distinct tokens");
	bop_free(t);
	bop_free(t2);
	t = NULL;
	ok(bop_reconcile_runner_token(&t, (const unsigned char *)"", 0, "uid") == BOP_EINVAL && !t,
		"an empty key is refused");
}

static void test_conditions(void)
{
	const char *obj0 = "{\"metadata\":{\"name\":\"x\",\"generation\":3},\"status\":{\"conditions\":"
		"[{\"type\":\"Synced\",\"status\":\"True\",\"lastTransitionTime\":\"2020-01-01T00:00:00Z\","
		"\"reason\":\"Ok\",\"message\":\"\"}]}}";
	bop_reconcile_condition_t c = { "Ready", "False", "StorageNotFound", "BackupStorage minio not found" };
	char *conds = NULL, *obj1 = NULL, *conds2 = NULL, *obj2 = NULL, *conds3 = NULL;
	json_object *j;
	int changed = -1;

	is_int(bop_reconcile_condition_set(&conds, &changed, obj0, &c, 1700000000), 0, "set Ready");
	j = conds ? json_tokener_parse(conds) : NULL;
	is_int(changed, 1, "a new condition is a change");
	is_str(at_str(j, "0.type"), "Synced", "other conditions are kept");
	is_str(at_str(j, "1.type"), "Ready", "the new one is added");
	is_str(at_str(j, "1.lastTransitionTime"), "2023-11-14T22:13:20Z", "at now, RFC 3339 UTC");
	is_int(at_int(j, "1.observedGeneration"), 3, "observedGeneration is the generation");
	is_str(at_str(j, "1.reason"), "StorageNotFound", "reason");
	json_object_put(j);

	if (asprintf(&obj1, "{\"metadata\":{\"generation\":3},\"status\":{\"conditions\":%s}}", conds) < 0)
		abort();
	is_int(bop_reconcile_condition_set(&conds2, &changed, obj1, &c, 1700000100), 0, "set again");
	is_int(changed, 0, "the same condition again is no change");
	j = conds2 ? json_tokener_parse(conds2) : NULL;
	is_str(at_str(j, "1.lastTransitionTime"), "2023-11-14T22:13:20Z",
		"the transition time is kept");
	json_object_put(j);
	bop_free(conds2);

	c.message = "BackupStorage minio still not found";
	bop_reconcile_condition_set(&conds2, &changed, obj1, &c, 1700000200);
	j = conds2 ? json_tokener_parse(conds2) : NULL;
	is_int(changed, 1, "a new message is a change");
	is_str(at_str(j, "1.lastTransitionTime"), "2023-11-14T22:13:20Z",
		"but the status did not change: time kept");
	json_object_put(j);
	bop_free(conds2);

	c.status = "True";
	c.reason = "Ready";
	c.message = "the runner is up";
	bop_reconcile_condition_set(&conds2, &changed, obj1, &c, 1700000300);
	j = conds2 ? json_tokener_parse(conds2) : NULL;
	is_int(changed, 1, "a new status is a change");
	is_str(at_str(j, "1.lastTransitionTime"), "2023-11-14T22:18:20Z", "with a new transition time");
	is_int(json_object_array_length(j), 2, "still one condition per type");
	json_object_put(j);

	if (asprintf(&obj2, "{\"metadata\":{\"generation\":4},\"status\":{\"conditions\":%s}}", conds2) < 0)
		abort();
	bop_reconcile_condition_set(&conds3, &changed, obj2, &c, 1700000400);
	is_int(changed, 1, "a new generation is a change (observedGeneration)");
	bop_free(conds3);
	conds3 = NULL;
	c.status = "Maybe";
	ok(bop_reconcile_condition_set(&conds3, NULL, obj2, &c, 1) == BOP_EINVAL && !conds3,
		"status Maybe is refused");
	c.status = "True";
	ok(bop_reconcile_condition_set(&conds3, NULL, "{oops", &c, 1) == BOP_EFORMAT,
		"a broken object is BOP_EFORMAT");
	ok(bop_reconcile_condition_set(&conds3, NULL, "{\"status\":{\"conditions\":{}}}", &c, 1) ==
		BOP_EFORMAT, "conditions that are no list are BOP_EFORMAT");
	bop_free(conds);
	bop_free(conds2);
	free(obj1);
	free(obj2);
}

static void test_garbage(void)
{
	static const char *bad[] = { "", "not json", "[]", "42",
		"{\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\",\"namespace\":\"b\"}}",
		"{\"metadata\":{\"name\":\"a\"}}",
		"{\"metadata\":{\"name\":\"a\",\"namespace\":\"b\"}", "{\"a\":1} trailing",
		"{\"metadata\":{\"name\":5,\"namespace\":\"b\"}}" };
	bop_reconcile_t *r = NULL;
	char deep[4096];
	size_t n = 0, crashes_avoided = 0;
	unsigned int seed = 1;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		is_int(reconcile(&r, bad[i], storage_base), BOP_EFORMAT, "garbage schedule is BOP_EFORMAT");
		ok(r == NULL, "and no handle");
	}
	is_int(reconcile(&r, schedule_base, "{\"kind\":\"BackupStorage\"}"), BOP_EFORMAT,
		"a storage without a name is BOP_EFORMAT");
	for (n = 0; n < 2000; n++)
		deep[n] = '[';
	deep[n] = '\0';
	is_int(reconcile(&r, deep, storage_base), BOP_EFORMAT, "deep nesting is BOP_EFORMAT");
	is_int(reconcile(&r, "{\"metadata\":{\"name\":\"a\",\"namespace\":\"b\"},\"spec\":[]}",
		storage_base), 0, "a spec that is no object: not an error of the call");
	ok(r && !bop_reconcile_valid(r) && !strcmp(bop_reconcile_reason(r), "InvalidSpec"),
		"but InvalidSpec");
	bop_reconcile_free(r);

	/* mutations of a valid schedule never crash and never give an odd code */
	for (int i = 0; i < 3000; i++) {
		char *s = strdup(schedule_base);
		size_t len = strlen(s);
		int ret;

		for (int k = 0; k < 1 + (i % 4); k++) {
			size_t pos = (size_t)rand_r(&seed) % len;

			s[pos] = "{}[]\",:0-9ax\\ "[rand_r(&seed) % 15];
		}
		if (i % 7 == 0)
			s[(size_t)rand_r(&seed) % len] = '\0';
		r = NULL;
		ret = reconcile(&r, s, i % 3 ? storage_base : s);
		if ((ret == 0 && r) || ret == BOP_EFORMAT || ret == BOP_EINVAL)
			crashes_avoided++;
		else
			diag("mutation %d: %d %s", i, ret, bop_error_last());
		bop_reconcile_free(r);
		free(s);
	}
	is_int(crashes_avoided, 3000, "3000 mutated schedules: a handle or BOP_EFORMAT/EINVAL each");
}

static void test_options(void)
{
	bop_reconcile_options_t o = BOP_RECONCILE_OPTIONS_INIT;
	bop_reconcile_t *r = NULL;

	o.runner_namespace = CTRL_NS;
	o.lookup = lookup;
	is_int(bop_reconcile_new(&r, &o, schedule_base, storage_base), BOP_EINVAL,
		"no runner image: BOP_EINVAL");
	o.runner_image = image;
	o.version = 99;
	is_int(bop_reconcile_new(&r, &o, schedule_base, storage_base), BOP_EVERSION,
		"unknown options version: BOP_EVERSION");
	is_int(bop_reconcile_options_init(&o, 2), BOP_EVERSION, "options_init: unknown version");
	is_int(bop_reconcile_options_init(&o, BOP_RECONCILE_OPTIONS_VERSION), 0, "options_init");
	ok(o.version == BOP_RECONCILE_OPTIONS_VERSION && !o.runner_namespace && !o.runner_port,
		"options_init fills in the defaults");
	bop_reconcile_free(NULL);
	ok(!bop_reconcile_valid(NULL) && !bop_reconcile_object(NULL, BOP_RECONCILE_SECRET),
		"getters accept NULL");
}

/* spec.runner.tools: the tools container beside the runner, the agent copied in by an init
 * container, a shared volume, and the exec engine pointed at the agent's socket. */
static void test_tools(void)
{
	bop_reconcile_t *r = NULL;
	json_object *sts, *cfg;
	char *s, *config;

	s = patched(schedule_base, "{\"spec\":{\"engine\":{\"postgres\":null,\"exec\":{"
		"\"backupCommand\":[\"mongodump\",\"--archive\"],\"restoreCommand\":[\"mongorestore\","
		"\"--archive\"]}},\"verification\":null,\"runner\":{\"tools\":{\"image\":\"mongo:7\","
		"\"imagePullPolicy\":\"Always\",\"env\":[{\"name\":\"MONGO_HOST\",\"value\":\"db\"}],"
		"\"resources\":{\"limits\":{\"memory\":\"2Gi\"}}}}}}");
	if (reconcile(&r, s, storage_base) < 0)
		diag("%s", bop_error_last());
	ok(bop_reconcile_valid(r), "a schedule with runner.tools (%s)",
		bop_reconcile_message(r) ? bop_reconcile_message(r) : "valid");
	sts = object(r, BOP_RECONCILE_STATEFULSET);
	config = config_of(r);
	cfg = config ? json_tokener_parse(config) : NULL;
	is_str(at_str(cfg, "engine.exec.tools.socket"), "/backupop-tools/agent.sock",
		"tools: the exec engine runs its commands through the agent's socket");
	is_str(at_str(sts, "spec.template.spec.initContainers.0.image"), image,
		"tools: the init container is the runner image");
	is_str(at_str(sts, "spec.template.spec.initContainers.0.command.0"),
		"/usr/lib/backupop/backupop-exec-agent", "tools: ... running the agent it ships");
	is_str(at_str(sts, "spec.template.spec.initContainers.0.command.2"),
		"/backupop-tools/backupop-exec-agent", "tools: ... copying it into the shared volume");
	is_str(at_str(sts, "spec.template.spec.containers.1.name"), "tools",
		"tools: a second container");
	is_str(at_str(sts, "spec.template.spec.containers.1.image"), "mongo:7",
		"tools: the user's image");
	is_str(at_str(sts, "spec.template.spec.containers.1.imagePullPolicy"), "Always",
		"tools: its pull policy");
	is_str(at_str(sts, "spec.template.spec.containers.1.command.0"),
		"/backupop-tools/backupop-exec-agent", "tools: its command is the agent");
	is_str(at_str(sts, "spec.template.spec.containers.1.command.2"),
		"/backupop-tools/agent.sock", "tools: ... listening on the socket");
	is_str(at_str(sts, "spec.template.spec.containers.1.command.4"), "65532",
		"tools: ... serving the runner's uid");
	is_str(at_str(sts, "spec.template.spec.containers.1.env.0.name"), "MONGO_HOST",
		"tools: its env");
	is_str(at_str(sts, "spec.template.spec.containers.1.resources.limits.memory"), "2Gi",
		"tools: its resources");
	is_str(at_str(sts, "spec.template.spec.containers.1.volumeMounts.0.mountPath"),
		"/backupop-tools", "tools: the tools container mounts the shared volume");
	is_str(at_str(sts, "spec.template.spec.containers.0.volumeMounts.2.mountPath"),
		"/backupop-tools", "tools: so does the runner");
	is_str(at_str(sts, "spec.template.spec.volumes.2.name"), "backupop-tools",
		"tools: the shared volume");
	ok(at(sts, "spec.template.spec.volumes.2.emptyDir") != NULL, "tools: ... an emptyDir");
	json_object_put(cfg);
	json_object_put(sts);
	free(config);
	bop_reconcile_free(r);
	test_runner_loads(s, storage_base, "a schedule with runner.tools");
	free(s);

	reconcile(&r, schedule_base, storage_base);
	sts = object(r, BOP_RECONCILE_STATEFULSET);
	ok(!at(sts, "spec.template.spec.initContainers") && !at(sts, "spec.template.spec.containers.1"),
		"without runner.tools: only the runner container");
	json_object_put(sts);
	bop_reconcile_free(r);

	s = patched(schedule_base, "{\"spec\":{\"runner\":{\"tools\":{\"image\":\"mongo:7\"}}}}");
	reconcile(&r, s, storage_base);
	ok(!bop_reconcile_valid(r) && bop_reconcile_message(r) &&
		strstr(bop_reconcile_message(r), "only the exec engine"),
		"runner.tools with the postgres engine is refused: %s", bop_reconcile_message(r));
	bop_reconcile_free(r);
	free(s);

	s = patched(schedule_base, "{\"spec\":{\"engine\":{\"postgres\":null,\"exec\":{"
		"\"backupCommand\":[\"redis-cli\"]}},\"verification\":null,\"runner\":{\"tools\":{"
		"\"imagePullPolicy\":\"Sometimes\"}}}}");
	reconcile(&r, s, storage_base);
	ok(!bop_reconcile_valid(r) && bop_reconcile_message(r) &&
		strstr(bop_reconcile_message(r), "imagePullPolicy"),
		"a bad pull policy is refused: %s", bop_reconcile_message(r));
	bop_reconcile_free(r);
	free(s);

	s = patched(schedule_base, "{\"spec\":{\"engine\":{\"postgres\":null,\"exec\":{"
		"\"backupCommand\":[\"redis-cli\"]}},\"verification\":null,\"runner\":{\"tools\":{}}}}");
	reconcile(&r, s, storage_base);
	ok(!bop_reconcile_valid(r) && bop_reconcile_message(r) &&
		strstr(bop_reconcile_message(r), "spec.runner.tools.image: required"),
		"a tools container without an image is refused: %s", bop_reconcile_message(r));
	bop_reconcile_free(r);
	free(s);

	/* The tools container runs in the controller's namespace: its securityContext may say
	 * who it runs as and restrict it more, never widen it. */
	{
		static const struct { const char *sc, *words; } widen[] = {
			{ "{\"privileged\":true}", "securityContext.privileged: must be false" },
			{ "{\"allowPrivilegeEscalation\":true}",
			  "securityContext.allowPrivilegeEscalation: must be false" },
			{ "{\"capabilities\":{\"add\":[\"SYS_ADMIN\"]}}",
			  "securityContext.capabilities.add: not taken" },
			{ "{\"seLinuxOptions\":{\"type\":\"spc_t\"}}",
			  "securityContext.seLinuxOptions: unknown field" },
			{ "{\"procMount\":\"Unmasked\"}", "securityContext.procMount: unknown field" },
			{ "{\"seccompProfile\":{\"type\":\"Unconfined\"}}",
			  "seccompProfile.type: \"Unconfined\" is not one of" },
		};

		for (size_t i = 0; i < sizeof(widen) / sizeof(widen[0]); i++) {
			char patch[512];

			snprintf(patch, sizeof(patch), "{\"spec\":{\"engine\":{\"postgres\":null,"
				"\"exec\":{\"backupCommand\":[\"redis-cli\"]}},\"verification\":null,"
				"\"runner\":{\"tools\":{\"image\":\"redis:7\",\"securityContext\":%s}}}}",
				widen[i].sc);

			s = patched(schedule_base, patch);
			reconcile(&r, s, storage_base);
			ok(!bop_reconcile_valid(r) && bop_reconcile_message(r) &&
				strstr(bop_reconcile_message(r), widen[i].words),
				"tools securityContext %s is refused: %s", widen[i].sc,
				bop_reconcile_message(r));
			bop_reconcile_free(r);
			free(s);
		}
	}
	s = patched(schedule_base, "{\"spec\":{\"engine\":{\"postgres\":null,\"exec\":{"
		"\"backupCommand\":[\"redis-cli\"]}},\"verification\":null,\"runner\":{\"tools\":{"
		"\"image\":\"redis:7\",\"securityContext\":{\"runAsUser\":0,\"runAsNonRoot\":false,"
		"\"readOnlyRootFilesystem\":true,\"allowPrivilegeEscalation\":false,"
		"\"capabilities\":{\"drop\":[\"NET_RAW\"]}}}}}}");
	reconcile(&r, s, storage_base);
	ok(bop_reconcile_valid(r), "tools as root with a read-only root is taken (%s)",
		bop_reconcile_message(r) ? bop_reconcile_message(r) : "valid");
	sts = object(r, BOP_RECONCILE_STATEFULSET);
	is_int(at_int(sts, "spec.template.spec.containers.1.securityContext.runAsUser"), 0,
		"tools: runs as the user given");
	is_int(at_bool(sts, "spec.template.spec.containers.1.securityContext.readOnlyRootFilesystem"),
		1, "tools: ... with the restriction given");
	is_int(at_bool(sts, "spec.template.spec.containers.1.securityContext.allowPrivilegeEscalation"),
		0, "tools: ... never with privilege escalation");
	is_str(at_str(sts, "spec.template.spec.containers.1.securityContext.capabilities.drop.0"),
		"ALL", "tools: ... and every capability dropped, whatever drop list is given");
	ok(!at(sts, "spec.template.spec.containers.1.securityContext.capabilities.drop.1"),
		"tools: ... only ALL");
	json_object_put(sts);
	bop_reconcile_free(r);
	free(s);
}

int main(void)
{
	char *id = NULL, *rcp = NULL;

	if (bop_age_keygen(&id, &rcp) < 0) {
		diag("keygen: %s", bop_error_last());
		return 1;
	}
	snprintf(identity, sizeof(identity), "%s", id);
	snprintf(recipient, sizeof(recipient), "%s", rcp);
	bop_free(id);
	bop_free(rcp);
	reset_cluster();

	test_valid();
	test_runner_loads(schedule_base, storage_base, "the example schedule");
	test_hashes();
	test_invalid();
	test_refs_when_invalid();
	test_variants();
	test_identity();
	test_templates();
	test_cockroach();
	test_tools();
	test_names();
	test_long_labels();
	test_long_path();
	test_token();
	test_conditions();
	test_garbage();
	test_options();
	for (size_t i = 0; i < n_cluster; i++)
		free(cluster[i].json);
	return done_testing();
}
