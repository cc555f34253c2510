/*
 * Where the Kubernetes API server is and how to authenticate: a kubeconfig file (read with
 * libyaml's document loader) or the in-cluster service account. Certificates and keys are
 * checked with OpenSSL here, so a bad one is reported when the config is loaded and not as
 * a vague TLS failure on the first request.
 */
#include "k8s/k8s.h"
#include "util/base64.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#define KUBECONFIG_MAX (4u << 20)
#define PEM_MAX (1u << 20)
#define TOKEN_MAX (64u << 10)
#define NESTING_MAX 64                  /* a kubeconfig nests 4 levels deep */

typedef struct kc {
	yaml_document_t doc;
	const char *name;               /* for messages */
	const char *base_dir;
} kc_t;

static int kc_error(const kc_t *k, int code, const yaml_node_t *n, const char *fmt, ...)
	BOP_PRINTF(4, 5);

static int kc_error(const kc_t *k, int code, const yaml_node_t *n, const char *fmt, ...)
{
	char *msg;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0)
		return bop__error_oom();
	if (n)
		r = bop__error(code, "kubeconfig %s, line %lu: %s", k->name,
			(unsigned long)n->start_mark.line + 1, msg);
	else
		r = bop__error(code, "kubeconfig %s: %s", k->name, msg);
	free(msg);
	return r;
}

static bool is_null(const yaml_node_t *n)
{
	const char *v = (const char *)n->data.scalar.value;

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
		!strcmp(v, "NULL");
}

/* The value of `key` in mapping `map`; NULL when absent or null. */
static yaml_node_t *map_get(kc_t *k, const yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
	     p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *kn = yaml_document_get_node(&k->doc, p->key);
		yaml_node_t *vn = yaml_document_get_node(&k->doc, p->value);

		if (kn && kn->type == YAML_SCALAR_NODE &&
		    !strcmp((const char *)kn->data.scalar.value, key))
			return vn && !is_null(vn) ? vn : NULL;
	}
	return NULL;
}

/* A string field; *out NULL when absent, null or empty. */
static int get_string(kc_t *k, const yaml_node_t *map, const char *where, const char *key,
	const char **out)
{
	yaml_node_t *n = map_get(k, map, key);

	*out = NULL;
	if (!n)
		return 0;
	if (n->type != YAML_SCALAR_NODE)
		return kc_error(k, BOP_EFORMAT, n, "%s.%s must be a string", where, key);
	*out = (const char *)n->data.scalar.value;
	if (!**out)
		*out = NULL;
	return 0;
}

static int get_bool(kc_t *k, const yaml_node_t *map, const char *where, const char *key,
	bool *out)
{
	const char *v;
	int ret = get_string(k, map, where, key, &v);

	*out = false;
	if (ret < 0 || !v)
		return ret;
	if (!strcasecmp(v, "true"))
		*out = true;
	else if (strcasecmp(v, "false"))
		return kc_error(k, BOP_EFORMAT, map_get(k, map, key),
			"%s.%s must be true or false, not \"%s\"", where, key, v);
	return 0;
}

/* The `inner` mapping of the entry of list `list` whose name is `name`. */
static int find_named(kc_t *k, const yaml_node_t *root, const char *list, const char *name,
	const char *inner, yaml_node_t **out)
{
	yaml_node_t *seq = map_get(k, root, list);

	*out = NULL;
	if (seq && seq->type != YAML_SEQUENCE_NODE)
		return kc_error(k, BOP_EFORMAT, seq, "%s must be a list", list);
	for (yaml_node_item_t *i = seq ? seq->data.sequence.items.start : NULL;
	     seq && i < seq->data.sequence.items.top; i++) {
		yaml_node_t *item = yaml_document_get_node(&k->doc, *i);
		const char *n;
		int ret;

		if (!item || item->type != YAML_MAPPING_NODE)
			return kc_error(k, BOP_EFORMAT, item, "the entries of %s must be mappings",
				list);
		ret = get_string(k, item, list, "name", &n);
		if (ret < 0)
			return ret;
		if (!n || strcmp(n, name))
			continue;
		*out = map_get(k, item, inner);
		if (!*out || (*out)->type != YAML_MAPPING_NODE)
			return kc_error(k, BOP_EFORMAT, item, "%s entry \"%s\" has no %s mapping",
				list, name, inner);
		return 0;
	}
	return kc_error(k, BOP_ENOTFOUND, NULL, "no %.*s named \"%s\" in %s",
		(int)strlen(list) - 1, list, name, list);
}

static char *resolve_path(const kc_t *k, const char *path)
{
	if (path[0] == '/' || !k->base_dir)
		return bop__strdup(path);
	return bop__sprintf("%s/%s", k->base_dir, path);
}

static int read_ref_file(const kc_t *k, const char *what, const char *path, size_t max,
	char **out, size_t *len)
{
	char *full = resolve_path(k, path);
	int ret;

	if (!full)
		return BOP_ENOMEM;
	ret = bop__read_file(full, out, len, max);
	if (ret < 0)
		ret = bop__error_wrap("kubeconfig %s: %s", k->name, what);
	free(full);
	return ret;
}

/* `key`-data (base64) wins over `key` (a file), as with kubectl. */
static int get_blob(kc_t *k, const yaml_node_t *map, const char *where, const char *key,
	size_t max, char **out, size_t *len)
{
	char data_key[64];
	const char *data = NULL, *file = NULL;
	int ret;

	*out = NULL;
	*len = 0;
	snprintf(data_key, sizeof(data_key), "%s-data", key);
	ret = get_string(k, map, where, data_key, &data);
	if (ret == 0)
		ret = get_string(k, map, where, key, &file);
	if (ret < 0)
		return ret;
	if (data) {
		ret = bop__base64_decode((unsigned char **)out, len, data, strlen(data));
		if (ret == BOP_EFORMAT)
			return kc_error(k, BOP_EFORMAT, map_get(k, map, data_key),
				"%s.%s is not valid base64", where, data_key);
		return ret;
	}
	if (file)
		return read_ref_file(k, key, file, max, out, len);
	return 0;
}

/* ---- PEM checks ---- */

static int check_certs(const char *what, const char *pem, size_t len)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509 *x = NULL;
	int n = 0;

	if (!bio)
		return bop__error_oom();
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		X509_free(x);
		n++;
	}
	BIO_free(bio);
	if (n == 0)
		return bop__error(BOP_EFORMAT, "%s holds no PEM certificate", what);
	return 0;
}

static int check_cert_key(const char *what, const bop__k8s_config_t *cfg)
{
	BIO *cb = BIO_new_mem_buf(cfg->cert_pem, (int)cfg->cert_len);
	BIO *kb = BIO_new_mem_buf(cfg->key_pem, (int)cfg->key_len);
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	int ret = 0;

	if (!cb || !kb) {
		ret = bop__error_oom();
		goto out;
	}
	cert = PEM_read_bio_X509(cb, NULL, NULL, NULL);
	if (!cert) {
		ret = bop__error(BOP_EFORMAT, "%s: the client certificate is not a PEM certificate",
			what);
		goto out;
	}
	key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
	if (!key) {
		ret = bop__error(BOP_EFORMAT, "%s: the client key is not an unencrypted PEM private key",
			what);
		goto out;
	}
	if (X509_check_private_key(cert, key) != 1)
		ret = bop__error(BOP_EINVAL, "%s: the client key does not belong to the client certificate",
			what);
out:
	EVP_PKEY_free(key);
	X509_free(cert);
	BIO_free(kb);
	BIO_free(cb);
	return ret;
}

/* ---- tokens ---- */

/* Trims surrounding whitespace in place; refuses control characters inside (they would
 * end the Authorization header). */
static int clean_token(const char *what, char *tok)
{
	size_t n = strlen(tok), start = 0;

	while (n && (tok[n - 1] == '\n' || tok[n - 1] == '\r' || tok[n - 1] == ' ' ||
		     tok[n - 1] == '\t'))
		tok[--n] = '\0';
	while (tok[start] == ' ' || tok[start] == '\t' || tok[start] == '\n')
		start++;
	memmove(tok, tok + start, n - start + 1);
	if (!*tok)
		return bop__error(BOP_EFORMAT, "%s is empty", what);
	for (const char *p = tok; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return bop__error(BOP_EFORMAT, "%s contains control characters", what);
	return 0;
}

static void set_token(bop__k8s_config_t *cfg, char *tok)
{
	if (cfg->token) {
		bop__wipe(cfg->token, strlen(cfg->token));
		free(cfg->token);
	}
	cfg->token = tok;
	if (strlen(tok) >= 4)
		bop_log_add_secret(tok);
}

static int read_token_file(bop__k8s_config_t *cfg)
{
	struct stat st;
	char *tok = NULL;
	size_t len;
	int ret;

	if (stat(cfg->token_file, &st) < 0)
		return bop__error_errno(BOP_EIO, errno, "cannot read the token file %s",
			cfg->token_file);
	ret = bop__read_file(cfg->token_file, &tok, &len, TOKEN_MAX);
	if (ret < 0)
		return bop__error_wrap("token file");
	if (strlen(tok) != len) {
		ret = bop__error(BOP_EFORMAT, "the token file %s contains a NUL byte", cfg->token_file);
		goto fail;
	}
	ret = clean_token(cfg->token_file, tok);
	if (ret < 0) {
		bop__error_wrap("token file");
		goto fail;
	}
	set_token(cfg, tok);
	cfg->token_stat.ino = st.st_ino;
	cfg->token_stat.size = st.st_size;
	cfg->token_stat.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	return 0;
fail:
	bop__wipe(tok, len);
	free(tok);
	return ret;
}

int bop__k8s_config_token(bop__k8s_config_t *cfg, const char **token)
{
	struct stat st;
	int ret;

	*token = NULL;
	if (cfg->token_file) {
		if (stat(cfg->token_file, &st) < 0)
			return bop__error_errno(BOP_EIO, errno, "cannot read the token file %s",
				cfg->token_file);
		if (st.st_ino != cfg->token_stat.ino || st.st_size != cfg->token_stat.size ||
		    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec !=
		    cfg->token_stat.mtime_ns || !cfg->token) {
			ret = read_token_file(cfg);
			if (ret < 0)
				return ret;
		}
	}
	*token = cfg->token;
	return 0;
}

/* ---- kubeconfig ---- */

static int load_cluster(kc_t *k, const yaml_node_t *cl, const char *name, bop__k8s_config_t *cfg)
{
	char where[300];
	const char *server;
	int ret;

	snprintf(where, sizeof(where), "cluster \"%s\"", name);
	ret = get_string(k, cl, where, "server", &server);
	if (ret < 0)
		return ret;
	if (!server)
		return kc_error(k, BOP_EFORMAT, cl, "%s has no server", where);
	if (strncmp(server, "https://", 8) && strncmp(server, "http://", 7))
		return kc_error(k, BOP_EFORMAT, map_get(k, cl, "server"),
			"%s: server \"%s\" is no http:// or https:// URL", where, server);
	cfg->server = bop__strdup(server);
	if (!cfg->server)
		return BOP_ENOMEM;
	while (strlen(cfg->server) > 8 && cfg->server[strlen(cfg->server) - 1] == '/')
		cfg->server[strlen(cfg->server) - 1] = '\0';
	ret = get_bool(k, cl, where, "insecure-skip-tls-verify", &cfg->insecure);
	if (ret == 0)
		ret = get_blob(k, cl, where, "certificate-authority", PEM_MAX, &cfg->ca_pem,
			&cfg->ca_len);
	if (ret < 0)
		return ret;
	if (cfg->insecure && cfg->ca_pem)
		return kc_error(k, BOP_EINVAL, cl,
			"%s sets both a certificate authority and insecure-skip-tls-verify; remove one",
			where);
	if (cfg->ca_pem && check_certs("the certificate authority", cfg->ca_pem, cfg->ca_len) < 0)
		return bop__error_wrap("kubeconfig %s: %s", k->name, where);
	return 0;
}

static int refuse_unsupported(kc_t *k, const yaml_node_t *u, const char *where)
{
	static const char *const keys[] = { "exec", "auth-provider", "username", "password" };

	for (size_t i = 0; i < BOP_ARRAY_SIZE(keys); i++)
		if (map_get(k, u, keys[i]))
			return kc_error(k, BOP_ENOTSUPPORTED, map_get(k, u, keys[i]),
				"%s uses \"%s\", which backupop does not support; use a token, a token file or a client certificate",
				where, keys[i]);
	return 0;
}

static int load_user_token(kc_t *k, const yaml_node_t *u, const char *where,
	bop__k8s_config_t *cfg)
{
	const char *token = NULL, *file = NULL;
	char *tok;
	int ret;

	ret = get_string(k, u, where, "token", &token);
	if (ret == 0)
		ret = get_string(k, u, where, "tokenFile", &file);
	if (ret < 0)
		return ret;
	if (token) {
		tok = bop__strdup(token);
		if (!tok)
			return BOP_ENOMEM;
		ret = clean_token("the token", tok);
		if (ret < 0) {
			free(tok);
			return kc_error(k, ret, map_get(k, u, "token"), "%s: %s", where,
				bop_error_last());
		}
		set_token(cfg, tok);
	} else if (file) {
		cfg->token_file = resolve_path(k, file);
		if (!cfg->token_file)
			return BOP_ENOMEM;
		ret = read_token_file(cfg);
		if (ret < 0)
			return bop__error_wrap("kubeconfig %s: %s", k->name, where);
	}
	return 0;
}

static int load_user(kc_t *k, const yaml_node_t *u, const char *name, bop__k8s_config_t *cfg)
{
	char where[300];
	int ret;

	snprintf(where, sizeof(where), "user \"%s\"", name);
	ret = refuse_unsupported(k, u, where);
	if (ret == 0)
		ret = load_user_token(k, u, where, cfg);
	if (ret == 0)
		ret = get_blob(k, u, where, "client-certificate", PEM_MAX, &cfg->cert_pem,
			&cfg->cert_len);
	if (ret == 0)
		ret = get_blob(k, u, where, "client-key", PEM_MAX, &cfg->key_pem, &cfg->key_len);
	if (ret < 0)
		return ret;
	if (!cfg->cert_pem != !cfg->key_pem)
		return kc_error(k, BOP_EINVAL, u, "%s has a client %s but no client %s", where,
			cfg->cert_pem ? "certificate" : "key", cfg->cert_pem ? "key" : "certificate");
	if (cfg->cert_pem && check_cert_key(where, cfg) < 0)
		return bop__error_wrap("kubeconfig %s", k->name);
	return 0;
}

static int load_context(kc_t *k, const yaml_node_t *root, const char *context,
	bop__k8s_config_t *cfg)
{
	yaml_node_t *ctx, *cl, *u = NULL;
	const char *cluster, *user, *ns;
	char where[300];
	int ret;

	ret = find_named(k, root, "contexts", context, "context", &ctx);
	if (ret < 0)
		return ret;
	snprintf(where, sizeof(where), "context \"%s\"", context);
	ret = get_string(k, ctx, where, "cluster", &cluster);
	if (ret == 0)
		ret = get_string(k, ctx, where, "user", &user);
	if (ret == 0)
		ret = get_string(k, ctx, where, "namespace", &ns);
	if (ret < 0)
		return ret;
	if (!cluster)
		return kc_error(k, BOP_EFORMAT, ctx, "%s names no cluster", where);
	ret = find_named(k, root, "clusters", cluster, "cluster", &cl);
	if (ret == 0)
		ret = load_cluster(k, cl, cluster, cfg);
	if (ret == 0 && user)
		ret = find_named(k, root, "users", user, "user", &u);
	if (ret == 0 && u)
		ret = load_user(k, u, user, cfg);
	if (ret < 0)
		return ret;
	cfg->namespace = bop__strdup(ns ? ns : "default");
	cfg->source = bop__sprintf("kubeconfig %s (context %s)", k->name, context);
	return cfg->namespace && cfg->source ? 0 : BOP_ENOMEM;
}

/* libyaml takes time quadratic in the nesting depth (a megabyte of "[" runs for minutes),
 * so the event stream is read first and a document nested too deeply is refused before it
 * is loaded; reading stops at that depth, after a bounded amount of work. A syntax error
 * is left for the loader to report. */
static int check_nesting(kc_t *k, const char *yaml, size_t len)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	int depth = 0, ret = 0;
	bool end = false;

	if (!yaml_parser_initialize(&parser))
		return bop__error_oom();
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
	while (!end && ret == 0 && yaml_parser_parse(&parser, &ev)) {
		if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT)
			depth++;
		else if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT)
			depth--;
		end = ev.type == YAML_STREAM_END_EVENT;
		if (depth > NESTING_MAX)
			ret = bop__error(BOP_EFORMAT, "kubeconfig %s, line %lu: nested more than %d "
				"levels deep", k->name, (unsigned long)ev.start_mark.line + 1,
				NESTING_MAX);
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	return ret;
}

static int load_yaml(kc_t *k, const char *yaml, size_t len)
{
	yaml_parser_t parser;
	int ret;

	memset(&k->doc, 0, sizeof(k->doc));
	if ((ret = check_nesting(k, yaml, len)) < 0)
		return ret;
	if (!yaml_parser_initialize(&parser))
		return bop__error_oom();
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&parser, &k->doc)) {
		ret = bop__error(BOP_EFORMAT, "kubeconfig %s, line %lu: not valid YAML: %s%s%s",
			k->name, (unsigned long)parser.problem_mark.line + 1,
			parser.problem ? parser.problem : "syntax error",
			parser.context ? " " : "", parser.context ? parser.context : "");
		memset(&k->doc, 0, sizeof(k->doc));
	}
	yaml_parser_delete(&parser);
	return ret;
}

int bop__k8s_config_parse(bop__k8s_config_t **out, const char *yaml, size_t len,
	const char *name, const char *base_dir, const char *context)
{
	kc_t k = { .name = name ? name : "(memory)", .base_dir = base_dir };
	bop__k8s_config_t *cfg = NULL;
	yaml_node_t *root;
	const char *kind;
	int ret;

	*out = NULL;
	ret = load_yaml(&k, yaml, len);
	if (ret < 0)
		return ret;
	root = yaml_document_get_root_node(&k.doc);
	if (!root || root->type != YAML_MAPPING_NODE) {
		ret = kc_error(&k, BOP_EFORMAT, root, "not a kubeconfig (expected a mapping with clusters, users and contexts)");
		goto out;
	}
	ret = get_string(&k, root, "kubeconfig", "kind", &kind);
	if (ret < 0)
		goto out;
	if (kind && strcmp(kind, "Config")) {
		ret = kc_error(&k, BOP_EFORMAT, map_get(&k, root, "kind"),
			"not a kubeconfig: kind is \"%s\", not \"Config\"", kind);
		goto out;
	}
	if (!context) {
		ret = get_string(&k, root, "kubeconfig", "current-context", &context);
		if (ret < 0)
			goto out;
		if (!context) {
			ret = kc_error(&k, BOP_ENOTFOUND, NULL,
				"no current-context is set; name a context");
			goto out;
		}
	}
	cfg = bop__calloc(1, sizeof(*cfg));
	if (!cfg) {
		ret = BOP_ENOMEM;
		goto out;
	}
	ret = load_context(&k, root, context, cfg);
	if (ret < 0)
		goto out;
	*out = cfg;
	cfg = NULL;
out:
	bop__k8s_config_free(cfg);
	yaml_document_delete(&k.doc);
	return ret;
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return bop__strdup(".");
	if (slash == path)
		return bop__strdup("/");
	return bop__strndup(path, (size_t)(slash - path));
}

int bop__k8s_config_load_file(bop__k8s_config_t **out, const char *path, const char *context)
{
	char *text = NULL, *dir = NULL;
	size_t len;
	int ret;

	*out = NULL;
	ret = bop__read_file(path, &text, &len, KUBECONFIG_MAX);
	if (ret < 0)
		return bop__error_wrap("kubeconfig");
	dir = dir_of(path);
	if (!dir) {
		ret = BOP_ENOMEM;
		goto out;
	}
	ret = bop__k8s_config_parse(out, text, len, path, dir, context);
out:
	if (text)
		bop__wipe(text, len);
	free(text);
	free(dir);
	return ret;
}

/* ---- in-cluster ---- */

static int in_cluster_files(bop__k8s_config_t *cfg, const char *sa_dir)
{
	char *path = bop__sprintf("%s/ca.crt", sa_dir), *ns = NULL;
	size_t len;
	int ret;

	if (!path)
		return BOP_ENOMEM;
	ret = bop__read_file(path, &cfg->ca_pem, &cfg->ca_len, PEM_MAX);
	if (ret == 0)
		ret = check_certs(path, cfg->ca_pem, cfg->ca_len);
	free(path);
	if (ret < 0)
		return bop__error_wrap("in-cluster config: service-account CA");
	cfg->token_file = bop__sprintf("%s/token", sa_dir);
	if (!cfg->token_file)
		return BOP_ENOMEM;
	ret = read_token_file(cfg);
	if (ret < 0)
		return bop__error_wrap("in-cluster config");
	path = bop__sprintf("%s/namespace", sa_dir);
	if (!path)
		return BOP_ENOMEM;
	if (bop__read_file(path, &ns, &len, 1024) == 0 && clean_token(path, ns) == 0)
		cfg->namespace = ns;
	else
		free(ns);
	free(path);
	if (!cfg->namespace)
		cfg->namespace = bop__strdup("default");
	return cfg->namespace ? 0 : BOP_ENOMEM;
}

int bop__k8s_config_in_cluster(bop__k8s_config_t **out, const char *sa_dir)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	bop__k8s_config_t *cfg;
	int ret;

	*out = NULL;
	if (!host || !*host)
		return bop__error(BOP_ENOTFOUND,
			"not running in a Kubernetes cluster (KUBERNETES_SERVICE_HOST is not set)");
	if (!port || !*port)
		port = "443";
	cfg = bop__calloc(1, sizeof(*cfg));
	if (!cfg)
		return BOP_ENOMEM;
	cfg->server = strchr(host, ':') ? bop__sprintf("https://[%s]:%s", host, port) :
		bop__sprintf("https://%s:%s", host, port);
	cfg->source = bop__strdup("in-cluster config");
	ret = cfg->server && cfg->source ? 0 : BOP_ENOMEM;
	if (ret == 0)
		ret = in_cluster_files(cfg, sa_dir ? sa_dir : BOP__K8S_SA_DIR);
	if (ret < 0) {
		bop__k8s_config_free(cfg);
		return ret;
	}
	*out = cfg;
	return 0;
}

int bop__k8s_config_load(bop__k8s_config_t **out, const char *kubeconfig, const char *context)
{
	const char *env = getenv("KUBECONFIG"), *home = getenv("HOME");
	char *path;
	int ret;

	if (kubeconfig)
		return bop__k8s_config_load_file(out, kubeconfig, context);
	if (env && *env) {
		if (strchr(env, ':'))
			return bop__error(BOP_ENOTSUPPORTED,
				"KUBECONFIG lists several files (%s); backupop reads one: name it", env);
		return bop__k8s_config_load_file(out, env, context);
	}
	if (getenv("KUBERNETES_SERVICE_HOST") && !context)
		return bop__k8s_config_in_cluster(out, NULL);
	if (!home)
		return bop__error(BOP_ENOTFOUND,
			"no Kubernetes config: set KUBECONFIG or run inside a cluster");
	path = bop__sprintf("%s/.kube/config", home);
	if (!path)
		return BOP_ENOMEM;
	ret = bop__k8s_config_load_file(out, path, context);
	free(path);
	return ret;
}

static void free_secret(char *p, size_t len)
{
	if (p)
		bop__wipe(p, len);
	free(p);
}

void bop__k8s_config_free(bop__k8s_config_t *cfg)
{
	if (!cfg)
		return;
	free(cfg->source);
	free(cfg->server);
	free(cfg->namespace);
	free(cfg->ca_pem);
	free_secret(cfg->token, cfg->token ? strlen(cfg->token) : 0);
	free(cfg->token_file);
	free(cfg->cert_pem);
	free_secret(cfg->key_pem, cfg->key_len);
	free(cfg);
}

static int dup_blob(const char *src, size_t len, char **out)
{
	*out = NULL;
	if (!src)
		return 0;
	*out = malloc(len + 1);
	if (!*out)
		return bop__error_oom();
	memcpy(*out, src, len);
	(*out)[len] = '\0';
	return 0;
}

static int dup_str(const char *src, char **out)
{
	return dup_blob(src, src ? strlen(src) : 0, out);
}

int bop__k8s_config_dup(const bop__k8s_config_t *cfg, bop__k8s_config_t **out)
{
	bop__k8s_config_t *c = bop__calloc(1, sizeof(*c));
	int ret;

	*out = NULL;
	if (!c)
		return BOP_ENOMEM;
	c->insecure = cfg->insecure;
	c->token_stat.ino = cfg->token_stat.ino;
	c->token_stat.size = cfg->token_stat.size;
	c->token_stat.mtime_ns = cfg->token_stat.mtime_ns;
	c->ca_len = cfg->ca_len;
	c->cert_len = cfg->cert_len;
	c->key_len = cfg->key_len;
	ret = dup_str(cfg->source, &c->source);
	if (ret == 0)
		ret = dup_str(cfg->server, &c->server);
	if (ret == 0)
		ret = dup_str(cfg->namespace, &c->namespace);
	if (ret == 0)
		ret = dup_blob(cfg->ca_pem, cfg->ca_len, &c->ca_pem);
	if (ret == 0)
		ret = dup_str(cfg->token, &c->token);
	if (ret == 0)
		ret = dup_str(cfg->token_file, &c->token_file);
	if (ret == 0)
		ret = dup_blob(cfg->cert_pem, cfg->cert_len, &c->cert_pem);
	if (ret == 0)
		ret = dup_blob(cfg->key_pem, cfg->key_len, &c->key_pem);
	if (ret < 0) {
		bop__k8s_config_free(c);
		return ret;
	}
	*out = c;
	return 0;
}
