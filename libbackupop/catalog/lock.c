/*
 * The catalog lock: "<name>/lock.json" = {"owner", "expires" (unix seconds), "token"}.
 * Taking it creates the object exclusively where the storage can, and always reads it
 * back to check that our token is the one stored, so of two writers racing only one
 * goes on. An expired lock is taken over, so a crashed writer never needs a manual
 * unlock.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/rand.h>

#define LOCK_LEAF "lock.json"
#define LOCK_MAX_SIZE (64u << 10)
#define TOKEN_BYTES 16

struct bop_lock {
	bop_catalog_t *catalog;
	char *key;
	char *owner;
	char token[2 * TOKEN_BYTES + 1];
	unsigned int ttl;
	int64_t expires;
};

/* What a lock object says. */
typedef struct lock_state {
	char owner[256];
	char token[2 * TOKEN_BYTES + 1];
	int64_t expires;
} lock_state_t;

static int parse_state(const char *json, lock_state_t *st)
{
	json_object *root = json_tokener_parse(json);
	json_object *owner, *expires, *token;
	int ret = 0;

	if (!root || json_object_get_type(root) != json_type_object ||
	    !json_object_object_get_ex(root, "owner", &owner) ||
	    !json_object_object_get_ex(root, "expires", &expires) ||
	    !json_object_object_get_ex(root, "token", &token) ||
	    json_object_get_type(owner) != json_type_string ||
	    json_object_get_type(expires) != json_type_int ||
	    json_object_get_type(token) != json_type_string) {
		ret = bop__error(BOP_EFORMAT, "not a lock: it needs owner, expires and token");
		goto out;
	}
	snprintf(st->owner, sizeof(st->owner), "%s", json_object_get_string(owner));
	snprintf(st->token, sizeof(st->token), "%s", json_object_get_string(token));
	st->expires = json_object_get_int64(expires);
out:
	json_object_put(root);
	return ret;
}

/* BOP_ENOTFOUND when there is no lock, BOP_EFORMAT when it is unreadable. */
static int read_state(bop_catalog_t *c, const char *key, lock_state_t *st)
{
	char *json = NULL;
	int ret;

	memset(st, 0, sizeof(*st));
	ret = bop__storage_get_bytes(bop__catalog_storage(c), key, &json, NULL, LOCK_MAX_SIZE);
	if (ret == 0)
		ret = parse_state(json, st);
	else if (ret == BOP_EINVAL)
		ret = bop__error(BOP_EFORMAT, "%s is too large to be a lock", key);
	free(json);
	return ret;
}

static int write_state(bop_lock_t *lock, bool exclusive)
{
	bop_storage_t *storage = bop__catalog_storage(lock->catalog);
	json_object *root = json_object_new_object();
	const char *text;
	int ret;

	if (!root)
		return bop__error_oom();
	json_object_object_add(root, "owner", json_object_new_string(lock->owner));
	json_object_object_add(root, "expires", json_object_new_int64(lock->expires));
	json_object_object_add(root, "token", json_object_new_string(lock->token));
	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
	if (!text) {
		ret = bop__error_oom();
		goto out;
	}
	ret = bop__storage_put_bytes(storage, lock->key, text, strlen(text), exclusive);
	if (ret == BOP_ENOTSUPPORTED && exclusive)   /* the read-back still decides */
		ret = bop__storage_put_bytes(storage, lock->key, text, strlen(text), false);
out:
	json_object_put(root);
	return ret;
}

static int conflict(const bop_lock_t *lock, const lock_state_t *st)
{
	char until[32];

	bop__catalog_format_time(until, sizeof(until), st->expires);
	return bop__error(BOP_ECONFLICT, "%s is locked by %s until %s; another backup or prune "
		"is running (the lock is taken over after it expires)",
		bop__catalog_name(lock->catalog), st->owner[0] ? st->owner : "(unknown)", until);
}

/* The lock is ours only if the stored token is still ours. */
static int confirm(bop_lock_t *lock)
{
	lock_state_t st;
	int ret = read_state(lock->catalog, lock->key, &st);

	if (ret == BOP_ENOTFOUND || ret == BOP_EFORMAT)
		return bop__error(BOP_ECONFLICT, "the lock of %s was removed or replaced by someone else",
			bop__catalog_name(lock->catalog));
	if (ret < 0)
		return ret;
	if (strcmp(st.token, lock->token) != 0)
		return conflict(lock, &st);
	return 0;
}

static int create_lock(bop_lock_t *lock)
{
	lock_state_t st;
	int ret;

	lock->expires = bop__now() + lock->ttl;
	ret = write_state(lock, true);
	if (ret == BOP_EEXISTS) {
		/* Someone was faster: say who. */
		if (read_state(lock->catalog, lock->key, &st) == 0)
			return conflict(lock, &st);
		return bop__error(BOP_ECONFLICT, "%s was locked by someone else at the same time",
			bop__catalog_name(lock->catalog));
	}
	if (ret < 0)
		return ret;
	return confirm(lock);
}

static int take(bop_lock_t *lock)
{
	lock_state_t st;
	char until[32];
	int ret;

	ret = read_state(lock->catalog, lock->key, &st);
	if (ret == BOP_ENOTFOUND)
		return create_lock(lock);
	if (ret == 0 && st.expires > bop__now())
		return conflict(lock, &st);
	if (ret == BOP_EFORMAT) {
		bop__log(BOP_LOG_WARN, "catalog", "taking over the unreadable lock %s: %s",
			lock->key, bop_error_last());
	} else if (ret < 0) {
		return ret;
	} else {
		bop__catalog_format_time(until, sizeof(until), st.expires);
		bop__log(BOP_LOG_WARN, "catalog", "taking over the lock of %s held by %s, "
			"which expired at %s", bop__catalog_name(lock->catalog), st.owner, until);
	}
	ret = bop_storage_remove(bop__catalog_storage(lock->catalog), lock->key);
	if (ret < 0 && ret != BOP_ENOTFOUND)
		return ret;
	return create_lock(lock);
}

static void lock_free(bop_lock_t *lock)
{
	if (!lock)
		return;
	free(lock->key);
	free(lock->owner);
	free(lock);
}

static int make_token(char *out)
{
	unsigned char raw[TOKEN_BYTES];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return bop__error(BOP_ERROR, "cannot get random bytes from OpenSSL");
	bop__hex(out, raw, sizeof(raw));
	return 0;
}

BOP_EXTERN(int) bop_catalog_lock(bop_catalog_t *catalog, bop_lock_t **out, const char *owner,
	unsigned int ttl_seconds)
{
	bop_lock_t *lock;
	int ret;

	if (!catalog || !out || !owner || ttl_seconds == 0)
		return bop__error(BOP_EINVAL, "bop_catalog_lock: invalid arguments "
			"(the ttl must be positive)");
	*out = NULL;
	lock = bop__calloc(1, sizeof(*lock));
	if (!lock)
		return BOP_ENOMEM;
	lock->catalog = catalog;
	lock->ttl = ttl_seconds;
	lock->owner = bop__strdup(owner);
	lock->key = bop__sprintf("%s/" LOCK_LEAF, bop__catalog_name(catalog));
	if (!lock->owner || !lock->key) {
		ret = BOP_ENOMEM;
		goto fail;
	}
	ret = make_token(lock->token);
	if (ret == 0)
		ret = take(lock);
	if (ret < 0)
		goto fail;
	*out = lock;
	return 0;
fail:
	lock_free(lock);
	return ret;
}

BOP_EXTERN(int) bop_lock_refresh(bop_lock_t *lock)
{
	int ret;

	if (!lock)
		return bop__error(BOP_EINVAL, "bop_lock_refresh: NULL lock");
	ret = confirm(lock);
	if (ret < 0)
		return ret;
	lock->expires = bop__now() + lock->ttl;
	ret = write_state(lock, false);
	if (ret < 0)
		return bop__error_wrap("refreshing the lock of %s", bop__catalog_name(lock->catalog));
	return confirm(lock);
}

BOP_EXTERN(int) bop_lock_release(bop_lock_t *lock)
{
	int ret;

	if (!lock)
		return 0;
	ret = confirm(lock);
	if (ret == 0) {
		ret = bop_storage_remove(bop__catalog_storage(lock->catalog), lock->key);
		if (ret == BOP_ENOTFOUND)
			ret = 0;
	}
	lock_free(lock);
	return ret;
}
