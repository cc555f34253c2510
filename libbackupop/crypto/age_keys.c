/*
 * The age key set: X25519 recipients ("age1...") and identities ("AGE-SECRET-KEY-1..."),
 * recipients and identity files as age and age-keygen write them, the scrypt passphrase,
 * and key generation. Secrets never go into messages and are wiped when freed.
 */
#include "age_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#define RECIPIENT_HRP "age"
#define IDENTITY_HRP "age-secret-key-"
#define MAX_KEY_FILE (16u << 20)
#define FINGERPRINT_HEX 16

/* ---- parsing single keys ---- */

/* Why a well-formed Bech32 key of another kind is refused, by its lowercase prefix. */
static const char *foreign_hrp_hint(const char *hrp)
{
	if (strcmp(hrp, "age1pq") == 0 || strcmp(hrp, "age-secret-key-pq-") == 0)
		return "post-quantum (ML-KEM hybrid) keys are not supported, use X25519 keys";
	if (strncmp(hrp, "age1", 4) == 0 || strncmp(hrp, "age-plugin-", 11) == 0)
		return "age plugin keys are not supported, use X25519 keys";
	return NULL;
}

int bop__age_parse_recipient(unsigned char pub[BOP_AGE_KEY_LEN], const char *s)
{
	static const unsigned char probe[BOP_AGE_KEY_LEN] = { 9, 1, 2, 3 };
	unsigned char data[2048], shared[BOP_AGE_KEY_LEN];   /* room for post-quantum keys */
	char hrp[32];
	size_t len;
	int ret;

	if (strncasecmp(s, "AGE-SECRET-KEY-", 15) == 0)
		return bop__error(BOP_EFORMAT, "this is an identity (a secret key), not a recipient: "
			"give its public key 'age1...' (age-keygen -y prints it)");
	if (strncmp(s, "ssh-", 4) == 0 || strncmp(s, "ecdsa-", 6) == 0)
		return bop__error(BOP_EFORMAT, "invalid age recipient '%.40s...': SSH keys are not "
			"supported, use an X25519 recipient from age-keygen", s);
	ret = bop__bech32_decode(s, hrp, sizeof(hrp), data, sizeof(data), &len);
	if (ret < 0)
		return bop__error_wrap("invalid age recipient '%.80s'", s);
	if (foreign_hrp_hint(hrp))
		return bop__error(BOP_EFORMAT, "invalid age recipient '%.40s...': %s", s,
			foreign_hrp_hint(hrp));
	if (strcmp(hrp, RECIPIENT_HRP) != 0)
		return bop__error(BOP_EFORMAT, "invalid age recipient '%.80s': it must start with 'age1'", s);
	if (len != BOP_AGE_KEY_LEN)
		return bop__error(BOP_EFORMAT, "invalid age recipient '%.80s': wrong key length", s);
	/* A low-order point would make the shared secret zero for everyone. */
	ret = bop__age_x25519(shared, probe, data);
	OPENSSL_cleanse(shared, sizeof(shared));
	if (ret < 0)
		return ret;
	if (ret == 1)
		return bop__error(BOP_EFORMAT, "invalid age recipient '%.80s': not a usable X25519 "
			"public key (low-order point)", s);
	memcpy(pub, data, BOP_AGE_KEY_LEN);
	return 0;
}

int bop__age_parse_identity(bop_age_identity_t *id, const char *s)
{
	unsigned char data[256];
	char hrp[32];
	size_t len = 0;
	int ret;

	if (strncmp(s, "age1", 4) == 0)
		return bop__error(BOP_EFORMAT, "this is a recipient (a public key), not an identity: "
			"give the 'AGE-SECRET-KEY-1...' line of the identity file");
	if (strncmp(s, "-----BEGIN", 10) == 0 || strncmp(s, "ssh-", 4) == 0)
		return bop__error(BOP_EFORMAT, "invalid age identity: SSH keys are not supported, "
			"use an identity from age-keygen");
	/* The bech32 messages never quote the input, so no secret leaks into them. */
	ret = bop__bech32_decode(s, hrp, sizeof(hrp), data, sizeof(data), &len);
	if (ret < 0) {
		ret = bop__error_wrap("invalid age identity (AGE-SECRET-KEY-1...)");
		goto out;
	}
	if (foreign_hrp_hint(hrp)) {
		ret = bop__error(BOP_EFORMAT, "invalid age identity: %s", foreign_hrp_hint(hrp));
		goto out;
	}
	if (strcmp(hrp, IDENTITY_HRP) != 0 || len != BOP_AGE_KEY_LEN) {
		ret = bop__error(BOP_EFORMAT, "invalid age identity: it must be 'AGE-SECRET-KEY-1' "
			"followed by an X25519 key, as age-keygen writes it");
		goto out;
	}
	memcpy(id->secret, data, BOP_AGE_KEY_LEN);
	ret = bop__age_x25519(id->public, id->secret, NULL);
out:
	OPENSSL_cleanse(data, sizeof(data));
	return ret;
}

int bop__age_encode_recipient(char **out, const unsigned char pub[BOP_AGE_KEY_LEN])
{
	return bop__bech32_encode(out, RECIPIENT_HRP, pub, BOP_AGE_KEY_LEN, false);
}

/* ---- the key set ---- */

BOP_EXTERN(int) bop_keys_new(bop_keys_t **out)
{
	bop_keys_t *keys;

	if (!out)
		return bop__error(BOP_EINVAL, "bop_keys_new: NULL out");
	*out = NULL;
	keys = bop__calloc(1, sizeof(*keys));
	if (!keys)
		return BOP_ENOMEM;
	keys->work_factor = BOP_AGE_DEFAULT_WORK_FACTOR;
	keys->max_work_factor = BOP_AGE_DEFAULT_MAX_WORK_FACTOR;
	*out = keys;
	return 0;
}

static void clear_passphrase(bop_keys_t *keys)
{
	if (keys->passphrase)
		bop__wipe(keys->passphrase, keys->passphrase_len + 1);
	free(keys->passphrase);
	keys->passphrase = NULL;
	keys->passphrase_len = 0;
	keys->has_passphrase = false;
}

BOP_EXTERN(void) bop_keys_free(bop_keys_t *keys)
{
	if (!keys)
		return;
	bop__wipe(keys->identities, keys->nidentities * sizeof(*keys->identities));
	free(keys->identities);
	bop__wipe(keys->recipients, keys->nrecipients * sizeof(*keys->recipients));
	free(keys->recipients);
	clear_passphrase(keys);
	bop__wipe(keys, sizeof(*keys));
	free(keys);
}

static int push_recipient(bop_keys_t *keys, const unsigned char pub[BOP_AGE_KEY_LEN])
{
	unsigned char (*grown)[BOP_AGE_KEY_LEN];

	for (size_t i = 0; i < keys->nrecipients; i++)
		if (memcmp(keys->recipients[i], pub, BOP_AGE_KEY_LEN) == 0)
			return 0;
	grown = realloc(keys->recipients, (keys->nrecipients + 1) * sizeof(*grown));
	if (!grown)
		return bop__error_oom();
	keys->recipients = grown;
	memcpy(keys->recipients[keys->nrecipients++], pub, BOP_AGE_KEY_LEN);
	return 0;
}

/* Appends an identity; the array is copied by hand so no stale secret is left behind. */
static int push_identity(bop_keys_t *keys, const bop_age_identity_t *id)
{
	bop_age_identity_t *grown;

	for (size_t i = 0; i < keys->nidentities; i++)
		if (CRYPTO_memcmp(keys->identities[i].secret, id->secret, BOP_AGE_KEY_LEN) == 0)
			return push_recipient(keys, id->public);
	grown = malloc((keys->nidentities + 1) * sizeof(*grown));
	if (!grown)
		return bop__error_oom();
	if (keys->nidentities)
		memcpy(grown, keys->identities, keys->nidentities * sizeof(*grown));
	grown[keys->nidentities] = *id;
	bop__wipe(keys->identities, keys->nidentities * sizeof(*grown));
	free(keys->identities);
	keys->identities = grown;
	keys->nidentities++;
	return push_recipient(keys, id->public);
}

BOP_EXTERN(int) bop_keys_add_recipient(bop_keys_t *keys, const char *recipient)
{
	unsigned char pub[BOP_AGE_KEY_LEN];
	int ret;

	if (!keys || !recipient)
		return bop__error(BOP_EINVAL, "bop_keys_add_recipient: NULL argument");
	ret = bop__age_parse_recipient(pub, recipient);
	if (ret < 0)
		return ret;
	return push_recipient(keys, pub);
}

BOP_EXTERN(int) bop_keys_add_identity(bop_keys_t *keys, const char *identity)
{
	bop_age_identity_t id;
	int ret;

	if (!keys || !identity)
		return bop__error(BOP_EINVAL, "bop_keys_add_identity: NULL argument");
	ret = bop__age_parse_identity(&id, identity);
	if (ret == 0)
		ret = push_identity(keys, &id);
	bop__wipe(&id, sizeof(id));
	return ret;
}

/* ---- files ---- */

typedef int (*line_fn)(bop_keys_t *keys, const char *line);

/* Calls `fn` for every line that is not blank or a '#' comment, with surrounding
 * whitespace (and a CR of CRLF files) removed. Counts the lines it handed over. */
static int for_each_key_line(bop_keys_t *keys, char *text, const char *path, const char *what,
	line_fn fn, size_t *count)
{
	size_t lineno = 0;
	char *line = text;
	int ret;

	*count = 0;
	while (line) {
		char *next = strchr(line, '\n'), *end;

		if (next)
			*next++ = '\0';
		lineno++;
		while (*line == ' ' || *line == '\t')
			line++;
		end = line + strlen(line);
		while (end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
			*--end = '\0';
		if (*line && *line != '#') {
			ret = fn(keys, line);
			if (ret < 0)
				return bop__error_wrap("%s file %s, line %zu", what, path, lineno);
			(*count)++;
		}
		line = next;
	}
	return 0;
}

static int add_key_file(bop_keys_t *keys, const char *path, const char *what, line_fn fn)
{
	char *text = NULL;
	size_t len = 0, count = 0;
	int ret;

	if (!keys || !path)
		return bop__error(BOP_EINVAL, "adding a %s file: NULL argument", what);
	ret = bop__read_file(path, &text, &len, MAX_KEY_FILE);
	if (ret < 0)
		return bop__error_wrap("cannot read %s file", what);
	if (strncmp(text, "age-encryption.org/", 19) == 0 || strstr(text, "-----BEGIN AGE ENCRYPTED")) {
		ret = bop__error(BOP_ENOTSUPPORTED, "%s file %s is itself age-encrypted; decrypt it "
			"first (age -d -o plain.txt %s)", what, path, path);
		goto out;
	}
	if (memchr(text, '\0', len)) {
		ret = bop__error(BOP_EFORMAT, "%s file %s is binary, not text", what, path);
		goto out;
	}
	ret = for_each_key_line(keys, text, path, what, fn, &count);
	if (ret == 0 && count == 0)
		ret = bop__error(BOP_EFORMAT, "%s file %s has no keys (only comments or blank lines)",
			what, path);
out:
	bop__wipe(text, len);
	free(text);
	return ret;
}

BOP_EXTERN(int) bop_keys_add_recipients_file(bop_keys_t *keys, const char *path)
{
	return add_key_file(keys, path, "recipients", bop_keys_add_recipient);
}

BOP_EXTERN(int) bop_keys_add_identity_file(bop_keys_t *keys, const char *path)
{
	return add_key_file(keys, path, "identity", bop_keys_add_identity);
}

/* ---- passphrase ---- */

BOP_EXTERN(int) bop_keys_set_passphrase(bop_keys_t *keys, const char *passphrase, size_t len)
{
	char *copy;

	if (!keys || (!passphrase && len))
		return bop__error(BOP_EINVAL, "bop_keys_set_passphrase: NULL argument");
	if (len == 0)
		return bop__error(BOP_EINVAL, "the passphrase is empty");
	copy = malloc(len + 1);
	if (!copy)
		return bop__error_oom();
	memcpy(copy, passphrase, len);
	copy[len] = '\0';
	clear_passphrase(keys);
	keys->passphrase = copy;
	keys->passphrase_len = len;
	keys->has_passphrase = true;
	return 0;
}

BOP_EXTERN(int) bop_keys_set_passphrase_file(bop_keys_t *keys, const char *path)
{
	char *text = NULL;
	size_t len = 0, n;
	int ret;

	if (!keys || !path)
		return bop__error(BOP_EINVAL, "bop_keys_set_passphrase_file: NULL argument");
	ret = bop__read_file(path, &text, &len, MAX_KEY_FILE);
	if (ret < 0)
		return bop__error_wrap("cannot read passphrase file");
	n = strcspn(text, "\n");
	if (n > 0 && text[n - 1] == '\r')
		n--;
	if (n == 0)
		ret = bop__error(BOP_EINVAL, "passphrase file %s: the first line is empty", path);
	else
		ret = bop_keys_set_passphrase(keys, text, n);
	bop__wipe(text, len);
	free(text);
	return ret;
}

BOP_EXTERN(int) bop_keys_set_scrypt_work_factor(bop_keys_t *keys, unsigned int log2_n)
{
	if (!keys)
		return bop__error(BOP_EINVAL, "bop_keys_set_scrypt_work_factor: NULL keys");
	if (log2_n < 1 || log2_n > BOP_AGE_MAX_WORK_FACTOR)
		return bop__error(BOP_EINVAL, "scrypt work factor %u is out of range 1..%d", log2_n,
			BOP_AGE_MAX_WORK_FACTOR);
	keys->work_factor = log2_n;
	keys->max_work_factor = log2_n;
	return 0;
}

BOP_EXTERN(size_t) bop_keys_recipient_count(const bop_keys_t *keys)
{
	return keys ? keys->nrecipients : 0;
}

/* ---- key generation ---- */

static int identity_text(char **out, const bop_age_identity_t *id, const char *recipient)
{
	char *secret = NULL, when[32];
	struct tm tm;
	time_t now = (time_t)bop__now();
	int ret;

	*out = NULL;
	if (!gmtime_r(&now, &tm) || !strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm))
		return bop__error(BOP_ERROR, "cannot format the current time");
	ret = bop__bech32_encode(&secret, IDENTITY_HRP, id->secret, BOP_AGE_KEY_LEN, true);
	if (ret < 0)
		return ret;
	*out = bop__sprintf("# created: %s\n# public key: %s\n%s\n", when, recipient, secret);
	bop__wipe(secret, strlen(secret));
	free(secret);
	return *out ? 0 : BOP_ENOMEM;
}

BOP_EXTERN(int) bop_age_keygen(char **identity, char **recipient)
{
	bop_age_identity_t id;
	char *rcpt = NULL;
	int ret;

	if (!identity || !recipient)
		return bop__error(BOP_EINVAL, "bop_age_keygen: NULL argument");
	*identity = *recipient = NULL;
	if (RAND_priv_bytes(id.secret, BOP_AGE_KEY_LEN) != 1) {
		ret = bop__error(BOP_ERROR, "the random number generator failed");
		goto out;
	}
	ret = bop__age_x25519(id.public, id.secret, NULL);
	if (ret == 0)
		ret = bop__age_encode_recipient(&rcpt, id.public);
	if (ret == 0)
		ret = identity_text(identity, &id, rcpt);
	if (ret == 0) {
		*recipient = rcpt;
		rcpt = NULL;
	}
out:
	free(rcpt);
	bop__wipe(&id, sizeof(id));
	return ret;
}

BOP_EXTERN(int) bop_age_identity_to_recipient(char **recipient, const char *identity)
{
	bop_age_identity_t id;
	int ret;

	if (!recipient || !identity)
		return bop__error(BOP_EINVAL, "bop_age_identity_to_recipient: NULL argument");
	*recipient = NULL;
	ret = bop__age_parse_identity(&id, identity);
	if (ret == 0)
		ret = bop__age_encode_recipient(recipient, id.public);
	bop__wipe(&id, sizeof(id));
	return ret;
}

/* ---- internal queries ---- */

const char *bop__keys_kind(const bop_keys_t *keys)
{
	if (!keys)
		return "none";
	if (keys->has_passphrase && keys->nrecipients == 0)
		return "scrypt";
	if (!keys->has_passphrase && keys->nrecipients > 0)
		return "x25519";
	return "none";
}

static int fingerprint(char **out, const unsigned char pub[BOP_AGE_KEY_LEN])
{
	unsigned char digest[32];
	char hex[2 * sizeof(digest) + 1], *text = NULL;
	unsigned int dlen = 0;
	int ret;

	*out = NULL;
	ret = bop__age_encode_recipient(&text, pub);
	if (ret < 0)
		return ret;
	if (!EVP_Digest(text, strlen(text), digest, &dlen, EVP_sha256(), NULL)) {
		free(text);
		return bop__error(BOP_ERROR, "SHA-256 failed");
	}
	free(text);
	bop__hex(hex, digest, sizeof(digest));
	hex[FINGERPRINT_HEX] = '\0';
	*out = bop__sprintf("sha256:%s", hex);
	return *out ? 0 : BOP_ENOMEM;
}

int bop__keys_fingerprints(const bop_keys_t *keys, char ***fps)
{
	char **v;
	size_t n;
	int ret = 0;

	if (!keys || !fps)
		return bop__error(BOP_EINVAL, "bop__keys_fingerprints: NULL argument");
	*fps = NULL;
	/* A passphrase has no recipient to show; encryption with both fails anyway. */
	n = keys->has_passphrase ? 0 : keys->nrecipients;
	v = bop__calloc(n + 1, sizeof(*v));
	if (!v)
		return BOP_ENOMEM;
	for (size_t i = 0; i < n && ret == 0; i++)
		ret = fingerprint(&v[i], keys->recipients[i]);
	if (ret < 0) {
		bop__strv_free(v);
		return ret;
	}
	*fps = v;
	return 0;
}
