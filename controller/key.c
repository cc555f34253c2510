/* backupop-controller: its secret key, from which the runners' API tokens are derived. */
#include "ctl.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#define KEY_SECRET "backupop-controller-key"

static int hexval(int ch)
{
	return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* 2n lowercase hex digits into n bytes. */
static bool unhex(unsigned char *out, size_t n, const char *hex, size_t len)
{
	if (len != 2 * n)
		return false;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

/* The key from the Secret's JSON: data.key holds its 64 lowercase hex digits. */
static int parse_key(ctl_t *c, const char *secret)
{
	char *hex = NULL;
	size_t n = 0;
	int ret = bop_reconcile_secret_value(&hex, &n, secret, "key");

	if (ret < 0) {
		/* the Secret exists: a missing key is malformed, not "not found" */
		ret = bop_error_setf(ret == BOP_ENOMEM ? BOP_ENOMEM : BOP_EFORMAT,
			"Secret " KEY_SECRET ": %s", bop_error_last());
	} else if (!unhex(c->key, sizeof(c->key), hex, n))
		ret = bop_error_set(BOP_EFORMAT, "Secret " KEY_SECRET " has a malformed key");
	if (hex)
		memset(hex, 0, n);
	bop_free(hex);
	return ret;
}

/* Makes the Secret with a new random key; 0 also when another controller made it first. */
static int create_key(ctl_t *c)
{
	unsigned char k[32];
	char create[512], path[400], hex[65];
	int ret;

	if (getrandom(k, sizeof(k), 0) != (ssize_t)sizeof(k))
		return bop_error_set(BOP_EIO, "getrandom failed");
	for (size_t i = 0; i < sizeof(k); i++)
		snprintf(hex + 2 * i, 3, "%02x", k[i]);
	/* stringData: the API server stores it base64-encoded in data */
	snprintf(create, sizeof(create), "{\"apiVersion\":\"v1\",\"kind\":\"Secret\","
		"\"metadata\":{\"name\":\"" KEY_SECRET "\",\"namespace\":\"%s\"},"
		"\"type\":\"Opaque\",\"stringData\":{\"key\":\"%s\"}}", c->args.namespace, hex);
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/secrets", c->args.namespace);
	ret = bop_k8s_request(c->client, NULL, NULL, BOP_K8S_CREATE, path, create, NULL);
	memset(create, 0, sizeof(create));
	memset(k, 0, sizeof(k));
	memset(hex, 0, sizeof(hex));
	if (ret == 0)
		clog_(BOP_LOG_INFO, "created Secret %s/" KEY_SECRET " (the key of the runners' "
			"API tokens)", c->args.namespace);
	return ret == BOP_ECONFLICT || ret == BOP_EEXISTS ? 0 : ret;
}

int ctl_load_key(ctl_t *c)
{
	char path[512], *body = NULL;
	int ret = 0;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/secrets/" KEY_SECRET,
		c->args.namespace);
	for (int attempt = 0; attempt < 3; attempt++) {
		ret = bop_k8s_request(c->client, NULL, &body, BOP_K8S_GET, path, NULL, NULL);
		if (ret == 0)
			ret = parse_key(c, body);
		if (body)
			memset(body, 0, strlen(body));
		bop_free(body);
		body = NULL;
		if (ret != BOP_ENOTFOUND)
			return ret;
		/* make it; if another controller made it first read theirs */
		if ((ret = create_key(c)) < 0)
			return ret;
	}
	return bop_error_set(BOP_EIO, "cannot read or create Secret " KEY_SECRET);
}
