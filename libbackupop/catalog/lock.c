/*
 * The catalog lock: "<name>/lock.json" = {"owner", "expires" (unix seconds), "token",
 * "since", and who holds it: "host", "boot" (the kernel's boot id), "pidns", "pid",
 * "start" (the process's start time in clock ticks after boot)}.
 *
 * Taking it creates the object exclusively where the storage can, and always reads it
 * back to check that our token is the one stored, so of two writers racing only one goes
 * on. A lock is taken over when it has expired, or at once when its holder is provably
 * dead: same host, boot and pid namespace, and no process with its pid and start time.
 *
 * A takeover must not remove a lock that someone else has just taken over. The taker
 * first creates "<name>/lock.json.takeover-<stale token>" exclusively: of several takers
 * of one stale lock only one creates it. It then checks that lock.json still holds the
 * stale token, replaces it, and removes the claim. A later taker that read the same stale
 * lock either fails to create the claim or, once it is gone, finds a token that is no
 * longer the stale one. A claim left by a taker that died expires after CLAIM_TTL.
 */
#include "lock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/rand.h>

#define LOCK_LEAF "lock.json"
#define CLAIM_INFIX ".takeover-"
#define LOCK_MAX_SIZE (64u << 10)
#define TOKEN_BYTES 16
#define CLAIM_TTL 60

/* Who holds a lock: enough to tell, on the same host, whether it is still running. */
typedef struct holder {
	char host[256];
	char boot[64];
	char pidns[64];
	long long pid;
	long long start;
} holder_t;

struct bop_lock {
	bop_catalog_t *catalog;
	char *key;
	char *owner;
	char token[2 * TOKEN_BYTES + 1];
	unsigned int ttl;
	int64_t expires;
	int64_t since;
	holder_t self;
};

/* What a lock object says. */
typedef struct lock_state {
	char owner[256];
	char token[2 * TOKEN_BYTES + 1];
	int64_t expires;
	int64_t since;
	bool has_holder;
	holder_t holder;
} lock_state_t;

/* ---- the holder's identity ---- */

static void read_line(const char *path, char *out, size_t size)
{
	FILE *f = fopen(path, "re");

	out[0] = '\0';
	if (!f)
		return;
	if (!fgets(out, (int)size, f))
		out[0] = '\0';
	fclose(f);
	out[strcspn(out, "\n")] = '\0';
}

/* Field 22 of /proc/<pid>/stat: when the process started. -1 when there is no such process
 * (or /proc cannot tell). */
static long long process_start(long long pid)
{
	char path[64], buf[1024];
	const char *p;
	long long start = -1;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%lld/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');          /* the command name may hold spaces and ')' */
	for (int field = 2; p && field < 22; field++) {
		p = strchr(p + 1, ' ');
	}
	if (p && sscanf(p + 1, "%lld", &start) != 1)
		start = -1;
	return p ? start : -1;
}

static void self_identity(holder_t *h)
{
	ssize_t n;

	memset(h, 0, sizeof(*h));
	if (gethostname(h->host, sizeof(h->host) - 1) < 0)
		h->host[0] = '\0';
	read_line("/proc/sys/kernel/random/boot_id", h->boot, sizeof(h->boot));
	n = readlink("/proc/self/ns/pid", h->pidns, sizeof(h->pidns) - 1);
	h->pidns[n > 0 ? n : 0] = '\0';
	h->pid = (long long)getpid();
	h->start = process_start(h->pid);
}

/* Whether the holder is certainly gone: it ran on this host, in this boot and pid
 * namespace, and its pid is free or belongs to a process started at another time. */
static bool holder_dead(const lock_state_t *st)
{
	const holder_t *h = &st->holder;
	holder_t self;
	long long start;

	if (!st->has_holder || !h->host[0] || !h->boot[0] || !h->pidns[0] || h->pid <= 0 ||
	    h->start < 0)
		return false;
	self_identity(&self);
	if (!self.boot[0] || !self.pidns[0] || strcmp(h->host, self.host) ||
	    strcmp(h->boot, self.boot) || strcmp(h->pidns, self.pidns))
		return false;
	start = process_start(h->pid);
	if (start < 0)
		return kill((pid_t)h->pid, 0) < 0 && errno == ESRCH;
	return start != h->start;
}

/* ---- lock objects ---- */

static const char *get_string(json_object *root, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(root, key, &v) || json_object_get_type(v) != json_type_string)
		return NULL;
	return json_object_get_string(v);
}

static bool get_int(json_object *root, const char *key, int64_t *out)
{
	json_object *v;

	if (!json_object_object_get_ex(root, key, &v) || json_object_get_type(v) != json_type_int)
		return false;
	*out = json_object_get_int64(v);
	return true;
}

/* The holder's identity is optional: locks written by earlier versions have none. */
static void parse_holder(json_object *root, lock_state_t *st)
{
	const char *host = get_string(root, "host"), *boot = get_string(root, "boot");
	const char *pidns = get_string(root, "pidns");
	int64_t pid, start;

	if (!host || !boot || !pidns || !get_int(root, "pid", &pid) ||
	    !get_int(root, "start", &start))
		return;
	snprintf(st->holder.host, sizeof(st->holder.host), "%s", host);
	snprintf(st->holder.boot, sizeof(st->holder.boot), "%s", boot);
	snprintf(st->holder.pidns, sizeof(st->holder.pidns), "%s", pidns);
	st->holder.pid = pid;
	st->holder.start = start;
	st->has_holder = true;
}

static int parse_state(const char *json, lock_state_t *st)
{
	json_object *root = json_tokener_parse(json);
	const char *owner, *token;
	int ret = 0;

	if (!root || json_object_get_type(root) != json_type_object ||
	    !(owner = get_string(root, "owner")) || !(token = get_string(root, "token")) ||
	    !get_int(root, "expires", &st->expires)) {
		ret = bop__error(BOP_EFORMAT, "not a lock: it needs owner, expires and token");
		goto out;
	}
	snprintf(st->owner, sizeof(st->owner), "%s", owner);
	snprintf(st->token, sizeof(st->token), "%s", token);
	if (!get_int(root, "since", &st->since))
		st->since = 0;
	parse_holder(root, st);
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

/* Writes our state to `key` (lock.json, or a takeover claim) expiring at `expires`. */
static int write_object(bop_lock_t *lock, const char *key, int64_t expires, bool exclusive)
{
	bop_storage_t *storage = bop__catalog_storage(lock->catalog);
	json_object *root = json_object_new_object();
	const char *text;
	int ret;

	if (!root)
		return bop__error_oom();
	json_object_object_add(root, "owner", json_object_new_string(lock->owner));
	json_object_object_add(root, "expires", json_object_new_int64(expires));
	json_object_object_add(root, "token", json_object_new_string(lock->token));
	json_object_object_add(root, "since", json_object_new_int64(lock->since));
	json_object_object_add(root, "host", json_object_new_string(lock->self.host));
	json_object_object_add(root, "boot", json_object_new_string(lock->self.boot));
	json_object_object_add(root, "pidns", json_object_new_string(lock->self.pidns));
	json_object_object_add(root, "pid", json_object_new_int64(lock->self.pid));
	json_object_object_add(root, "start", json_object_new_int64(lock->self.start));
	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
	if (!text) {
		ret = bop__error_oom();
		goto out;
	}
	ret = bop__storage_put_bytes(storage, key, text, strlen(text), exclusive);
	if (ret == BOP_ENOTSUPPORTED && exclusive)   /* the read-back still decides */
		ret = bop__storage_put_bytes(storage, key, text, strlen(text), false);
out:
	json_object_put(root);
	return ret;
}

static int conflict(bop_catalog_t *c, const lock_state_t *st)
{
	char until[32];

	bop__catalog_format_time(until, sizeof(until), st->expires);
	return bop__error(BOP_ECONFLICT, "%s is locked by %s until %s; another backup or prune "
		"is running (the lock is taken over after it expires, or at once when its holder "
		"is found dead on this host)",
		bop__catalog_name(c), st->owner[0] ? st->owner : "(unknown)", until);
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
		return conflict(lock->catalog, &st);
	return 0;
}

static int create_lock(bop_lock_t *lock)
{
	lock_state_t st;
	int ret;

	lock->since = bop__now();
	lock->expires = lock->since + lock->ttl;
	ret = write_object(lock, lock->key, lock->expires, true);
	if (ret == BOP_EEXISTS) {
		/* Someone was faster: say who. */
		if (read_state(lock->catalog, lock->key, &st) == 0)
			return conflict(lock->catalog, &st);
		return bop__error(BOP_ECONFLICT, "%s was locked by someone else at the same time",
			bop__catalog_name(lock->catalog));
	}
	if (ret < 0)
		return ret;
	return confirm(lock);
}

static bool state_stale(const lock_state_t *st)
{
	return st->expires <= bop__now() || holder_dead(st);
}

static char *claim_key(bop_catalog_t *c, const char *stale_token)
{
	return bop__sprintf("%s/" LOCK_LEAF CLAIM_INFIX "%s", bop__catalog_name(c),
		*stale_token ? stale_token : "unreadable");
}

/* Creates the claim on the takeover of the lock whose token is `stale_token`. A claim of a
 * taker that died (expired, or its holder dead) is removed first. */
static int claim(bop_lock_t *lock, const char *key)
{
	bop_storage_t *storage = bop__catalog_storage(lock->catalog);
	lock_state_t st;
	int ret;

	for (int attempt = 0; ; attempt++) {
		ret = write_object(lock, key, bop__now() + CLAIM_TTL, true);
		if (ret != BOP_EEXISTS)
			break;
		ret = read_state(lock->catalog, key, &st);
		if (ret == BOP_ENOTFOUND && attempt == 0)
			continue;
		if (ret == 0 && state_stale(&st) && attempt == 0) {
			bop__log(BOP_LOG_WARN, "catalog", "removing %s: the takeover by %s did not "
				"finish", key, st.owner);
			ret = bop_storage_remove(storage, key);
			if (ret < 0 && ret != BOP_ENOTFOUND)
				return ret;
			continue;
		}
		if (ret == 0)
			return bop__error(BOP_ECONFLICT, "%s is locked by %s, which is taking over "
				"its stale lock", bop__catalog_name(lock->catalog), st.owner);
		return bop__error(BOP_ECONFLICT, "%s is locked by another taker of its stale lock",
			bop__catalog_name(lock->catalog));
	}
	if (ret < 0)
		return ret;
	/* Where the storage cannot create exclusively, the read-back decides. */
	ret = read_state(lock->catalog, key, &st);
	if (ret == 0 && strcmp(st.token, lock->token) == 0)
		return 0;
	return bop__error(BOP_ECONFLICT, "%s is locked by another taker of its stale lock",
		bop__catalog_name(lock->catalog));
}

/* Removes our claim (not one that replaced it). */
static void unclaim(bop_lock_t *lock, const char *key)
{
	lock_state_t st;
	int ret;

	if (read_state(lock->catalog, key, &st) != 0 || strcmp(st.token, lock->token) != 0)
		return;
	ret = bop_storage_remove(bop__catalog_storage(lock->catalog), key);
	if (ret < 0 && ret != BOP_ENOTFOUND)
		bop__log(BOP_LOG_WARN, "catalog", "cannot remove the takeover claim %s: %s (it "
			"expires in %d s)", key, bop_error_last(), CLAIM_TTL);
}

/* Replaces the stale lock whose token is `stale_token` ("" when unreadable) with ours, or
 * with none when `remove_only`. */
static int take_over(bop_lock_t *lock, const char *stale_token, bool remove_only)
{
	char *key = claim_key(lock->catalog, stale_token);
	lock_state_t st;
	int ret;

	if (!key)
		return BOP_ENOMEM;
	ret = claim(lock, key);
	if (ret < 0)
		goto out;
	/* Only while lock.json still holds the stale token is it ours to remove. */
	ret = read_state(lock->catalog, lock->key, &st);
	if (ret == 0 && strcmp(st.token, stale_token) != 0) {
		ret = conflict(lock->catalog, &st);
	} else if (ret == 0 || ret == BOP_EFORMAT) {
		ret = bop_storage_remove(bop__catalog_storage(lock->catalog), lock->key);
		if (ret == BOP_ENOTFOUND)
			ret = 0;
	} else if (ret == BOP_ENOTFOUND) {
		ret = 0;
	}
	if (ret == 0 && !remove_only)
		ret = create_lock(lock);
	if (ret < 0) {
		/* Removing the claim must not lose the error being reported. */
		char message[1024];

		snprintf(message, sizeof(message), "%s", bop_error_last());
		unclaim(lock, key);
		ret = bop__error(ret, "%s", message);
	} else {
		unclaim(lock, key);
	}
out:
	free(key);
	return ret;
}

static int take(bop_lock_t *lock)
{
	lock_state_t st;
	char until[32];
	int ret;

	ret = read_state(lock->catalog, lock->key, &st);
	if (ret == BOP_ENOTFOUND)
		return create_lock(lock);
	if (ret == 0 && st.expires > bop__now()) {
		if (!holder_dead(&st))
			return conflict(lock->catalog, &st);
		bop__log(BOP_LOG_WARN, "catalog", "taking over the lock of %s held by %s: its "
			"process (pid %lld on this host) is gone", bop__catalog_name(lock->catalog),
			st.owner, st.holder.pid);
	} else if (ret == BOP_EFORMAT) {
		bop__log(BOP_LOG_WARN, "catalog", "taking over the unreadable lock %s: %s",
			lock->key, bop_error_last());
	} else if (ret < 0) {
		return ret;
	} else {
		bop__catalog_format_time(until, sizeof(until), st.expires);
		bop__log(BOP_LOG_WARN, "catalog", "taking over the lock of %s held by %s, "
			"which expired at %s", bop__catalog_name(lock->catalog), st.owner, until);
	}
	return take_over(lock, ret == 0 ? st.token : "", false);
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

static int lock_new(bop_catalog_t *catalog, bop_lock_t **out, const char *owner,
	unsigned int ttl)
{
	bop_lock_t *lock;
	int ret;

	*out = NULL;
	lock = bop__calloc(1, sizeof(*lock));
	if (!lock)
		return BOP_ENOMEM;
	lock->catalog = catalog;
	lock->ttl = ttl;
	lock->owner = bop__strdup(owner);
	lock->key = bop__sprintf("%s/" LOCK_LEAF, bop__catalog_name(catalog));
	self_identity(&lock->self);
	if (!lock->owner || !lock->key) {
		lock_free(lock);
		return BOP_ENOMEM;
	}
	ret = make_token(lock->token);
	if (ret < 0) {
		lock_free(lock);
		return ret;
	}
	*out = lock;
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
	ret = lock_new(catalog, &lock, owner, ttl_seconds);
	if (ret < 0)
		return ret;
	ret = take(lock);
	if (ret < 0) {
		lock_free(lock);
		return ret;
	}
	*out = lock;
	return 0;
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
	ret = write_object(lock, lock->key, lock->expires, false);
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

/* ---- garbage collection ---- */

int bop__lock_view(bop_catalog_t *catalog, bop__lock_view_t *view)
{
	char *key = bop__sprintf("%s/" LOCK_LEAF, bop__catalog_name(catalog));
	lock_state_t st;
	int ret;

	memset(view, 0, sizeof(*view));
	if (!key)
		return BOP_ENOMEM;
	ret = read_state(catalog, key, &st);
	free(key);
	if (ret == BOP_ENOTFOUND || ret == BOP_EFORMAT)
		return 0;
	if (ret < 0)
		return ret;
	view->live = !state_stale(&st);
	view->since = st.since;
	return 0;
}

static int report(bop_storage_list_cb cb, void *payload, const char *key)
{
	bop_storage_stat_t st = { BOP_STORAGE_STAT_VERSION, 0, 0 };
	int ret;

	if (!cb)
		return 0;
	ret = cb(key, &st, payload);
	if (ret < 0 && bop_error_last_code() == BOP_OK)
		bop__error(ret, "the cleanup callback failed at %s (%s)", key, bop_strerror(ret));
	return ret;
}

/* The claims' keys, listed first so that no I/O happens inside the listing's callback. */
typedef struct claim_list {
	char **keys;
	size_t count;
	int error;
} claim_list_t;

static int collect_key(const char *key, const bop_storage_stat_t *st, void *payload)
{
	claim_list_t *cl = payload;
	char **keys;

	BOP_UNUSED(st);
	keys = realloc(cl->keys, (cl->count + 1) * sizeof(*keys));
	if (!keys || !(keys[cl->count] = bop__strdup(key))) {
		if (keys)
			cl->keys = keys;
		cl->error = keys ? BOP_ENOMEM : bop__error_oom();
		return 1;
	}
	cl->keys = keys;
	cl->count++;
	return 0;
}

/* Collects the claims of takers that died. */
static int collect_claims(bop_lock_t *lock, int dry_run, bop_storage_list_cb cb,
	void *payload)
{
	bop_storage_t *storage = bop__catalog_storage(lock->catalog);
	char *prefix = bop__sprintf("%s" CLAIM_INFIX, lock->key);
	claim_list_t cl = { NULL, 0, 0 };
	lock_state_t st;
	int ret;

	if (!prefix)
		return BOP_ENOMEM;
	ret = bop_storage_list(storage, prefix, collect_key, &cl);
	free(prefix);
	if (ret == 0 && cl.error < 0)
		ret = cl.error;
	for (size_t i = 0; ret == 0 && i < cl.count; i++) {
		const char *key = cl.keys[i];

		if (strchr(key + strlen(lock->key), '/'))
			continue;
		if (read_state(lock->catalog, key, &st) == 0 && !state_stale(&st))
			continue;
		ret = report(cb, payload, key);
		if (ret == 0 && !dry_run) {
			ret = bop_storage_remove(storage, key);
			if (ret == BOP_ENOTFOUND)
				ret = 0;
		}
	}
	for (size_t i = 0; i < cl.count; i++)
		free(cl.keys[i]);
	free(cl.keys);
	return ret > 0 ? 0 : ret;
}

int bop__lock_collect(bop_catalog_t *catalog, int dry_run, bop_storage_list_cb cb,
	void *payload, bop__lock_view_t *view)
{
	bop_lock_t *lock = NULL;
	lock_state_t st;
	int ret;

	memset(view, 0, sizeof(*view));
	ret = lock_new(catalog, &lock, "backupop gc", 1);
	if (ret < 0)
		return ret;
	ret = read_state(catalog, lock->key, &st);
	if (ret == 0 && state_stale(&st)) {
		ret = report(cb, payload, lock->key);
		if (ret == 0 && !dry_run)
			ret = take_over(lock, st.token, true);
		if (ret == BOP_ECONFLICT)       /* taken over by a writer meanwhile */
			ret = 0;
	} else if (ret == BOP_ENOTFOUND || ret == BOP_EFORMAT) {
		ret = 0;
	}
	if (ret == 0)
		ret = collect_claims(lock, dry_run, cb, payload);
	lock_free(lock);
	if (ret > 0)
		ret = 0;
	return ret < 0 ? ret : bop__lock_view(catalog, view);
}
