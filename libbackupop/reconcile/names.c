/*
 * Object names, label values and runner tokens.
 *
 * Names are "<prefix>-<namespace>-<name>" as the header says. Kubernetes object names may
 * hold dots, which a DNS label (what a Service name must be) may not: they become '-', and
 * since "orders.db" and "orders-db" would then meet, a name changed that way also gets the
 * hash suffix. Note that the plain form is not injective by itself ("a-b"/"c" and
 * "a"/"b-c" both give "runner-a-b-c"): a controller tells such objects apart by their
 * backupop.io/schedule-* labels.
 */
#include "rec.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define HASH_DIGITS 10
#define LABEL_VALUE_MAX 63

static bool is_alnum_lower(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* 10 hex digits of SHA-256 over the parts, each followed by a NUL so that the split
 * between them counts. */
static void parts_hash(char out[HASH_DIGITS + 1], const char *const *parts, size_t n)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	unsigned int len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);

	for (size_t i = 0; ok && i < n; i++)
		ok = EVP_DigestUpdate(ctx, parts[i], strlen(parts[i]) + 1);
	if (!ok || !EVP_DigestFinal_ex(ctx, md, &len)) {
		memset(md, 0, sizeof(md));
		len = 32;
	}
	EVP_MD_CTX_free(ctx);
	bop__hex(hex, md, len);
	memcpy(out, hex, HASH_DIGITS);
	out[HASH_DIGITS] = '\0';
}

/* `text` cut to `keep` characters, without a trailing character that may not end a name,
 * then "-" and the hash. */
static char *with_hash(const char *text, size_t keep, const char *hash,
	bool (*may_end)(char))
{
	size_t n = strlen(text);

	if (n > keep)
		n = keep;
	while (n && !may_end(text[n - 1]))
		n--;
	return bop__sprintf("%.*s%s%s", (int)n, text, n ? "-" : "", hash);
}

static bool dns_may_end(char c)
{
	return is_alnum_lower(c);
}

static bool label_may_end(char c)
{
	return is_alnum_lower(c) || (c >= 'A' && c <= 'Z');
}

static int check_part(const char *what, const char *s)
{
	if (!s || !*s)
		return bop__error(BOP_EINVAL, "reconcile name: the %s is empty", what);
	if (strlen(s) > 253)
		return bop__error(BOP_EINVAL, "reconcile name: the %s is longer than 253 characters",
			what);
	return 0;
}

BOP_EXTERN(int) bop_reconcile_name(char **out, const char *prefix, const char *ns, const char *name)
{
	const char *parts[3] = { prefix, ns, name };
	char hash[HASH_DIGITS + 1];
	bool changed = false;
	char *s, *p;
	int ret;

	*out = NULL;
	if ((ret = check_part("prefix", prefix)) || (ret = check_part("namespace", ns)) ||
	    (ret = check_part("name", name)))
		return ret;
	if (!is_alnum_lower(prefix[0]))
		return bop__error(BOP_EINVAL, "reconcile name: the prefix \"%s\" must start with a "
			"lower-case letter or digit", prefix);
	s = bop__sprintf("%s-%s-%s", prefix, ns, name);
	if (!s)
		return BOP_ENOMEM;
	for (p = s; *p; p++) {
		if (*p >= 'A' && *p <= 'Z') {
			*p = (char)(*p - 'A' + 'a');
			changed = true;
		} else if (!is_alnum_lower(*p) && *p != '-') {
			*p = '-';
			changed = true;
		}
	}
	if (!changed && strlen(s) <= BOP_RECONCILE_NAME_MAX && dns_may_end(p[-1])) {
		*out = s;
		return 0;
	}
	parts_hash(hash, parts, 3);
	*out = with_hash(s, BOP_RECONCILE_NAME_MAX - 1 - HASH_DIGITS, hash, dns_may_end);
	free(s);
	return *out ? 0 : BOP_ENOMEM;
}

char *bop__rec_label_value(const char *value)
{
	const char *parts[1] = { value };
	char hash[HASH_DIGITS + 1];

	if (strlen(value) <= LABEL_VALUE_MAX)
		return bop__strdup(value);
	parts_hash(hash, parts, 1);
	return with_hash(value, LABEL_VALUE_MAX - 1 - HASH_DIGITS, hash, label_may_end);
}

BOP_EXTERN(int) bop_reconcile_runner_token(char **out, const unsigned char *key, size_t key_len,
	const char *schedule_uid)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t len = 0;

	*out = NULL;
	if (!key || !key_len)
		return bop__error(BOP_EINVAL, "runner token: the controller's key is empty");
	if (!schedule_uid || !*schedule_uid)
		return bop__error(BOP_EINVAL, "runner token: the schedule has no uid");
	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_len,
		    (const unsigned char *)schedule_uid, strlen(schedule_uid), mac, sizeof(mac), &len) ||
	    len != 32)
		return bop__error(BOP_ERROR, "runner token: HMAC-SHA256 failed");
	*out = bop__calloc(2 * len + 1, 1);
	if (!*out)
		return BOP_ENOMEM;
	bop__hex(*out, mac, len);
	bop__wipe(mac, sizeof(mac));
	return 0;
}
