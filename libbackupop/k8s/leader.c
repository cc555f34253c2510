/*
 * Leader election on a coordination.k8s.io/v1 Lease, the way client-go does it: the
 * holder renews spec.renewTime every retry period; a candidate takes the lease once it
 * has seen the same record unchanged for leaseDurationSeconds (measured on its own clock,
 * so clock skew between nodes does not matter) or when holderIdentity is empty. Updates
 * carry the resourceVersion that was read, so of two candidates only one wins (the other
 * gets 409 Conflict). A leader that cannot renew within the renew deadline steps down;
 * a leader that stops releases the lease (empty holder, 1 s duration) so a candidate
 * takes over at its next try instead of waiting for the lease to run out.
 */
#include "k8s/k8s.h"
#include "util/backoff.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef enum attempt {
	HELD,                           /* we hold the lease now */
	HELD_BY_OTHER,                  /* someone else holds it, and it is valid */
	FAILED,                         /* the request failed; try again */
} attempt_t;

struct bop_k8s_leader {
	bop__k8s_client_t *client;      /* our own clone: requests never wait for others */
	char *ns, *name, *identity;
	char *path;                     /* of the Lease */
	char *collection;
	unsigned int lease_s, renew_deadline_s, retry_s;
	bop_k8s_leader_cb on_started;
	bop_k8s_leader_cb on_stopped;
	void *ud;

	pthread_t thread;
	bool started, joined;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	bool leader;
	int64_t renewed_ms;             /* monotonic time of the last successful renewal */

	/* the elector's thread only: the record last seen and when it changed */
	char *seen_holder;
	char *seen_renew;
	int64_t seen_ms;
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool stopping(bop_k8s_leader_t *le)
{
	bool s;

	pthread_mutex_lock(&le->lock);
	s = le->stop;
	pthread_mutex_unlock(&le->lock);
	return s;
}

/* Sleeps `ms` unless stopped meanwhile. */
static void sleep_ms(bop_k8s_leader_t *le, int64_t ms)
{
	int64_t until = mono_ms() + ms;
	struct timespec ts = { .tv_sec = until / 1000, .tv_nsec = (until % 1000) * 1000000 };

	pthread_mutex_lock(&le->lock);
	while (!le->stop && mono_ms() < until)
		if (pthread_cond_timedwait(&le->cond, &le->lock, &ts) != 0)
			break;
	pthread_mutex_unlock(&le->lock);
}

/* The retry period with up to 20% jitter, so candidates do not collide forever: a fixed
 * step of 1.2 periods of which the last sixth is drawn. */
static int64_t retry_ms(bop_k8s_leader_t *le)
{
	int64_t step = (int64_t)le->retry_s * 1200;
	const bop__backoff_t b = { .base_ms = step, .cap_ms = step, .jitter = 1.0 / 6 };

	return bop__backoff_delay(&b, 1, 0);
}

static void remember(char **dst, const char *src)
{
	free(*dst);
	*dst = src ? bop__strdup(src) : NULL;
}

static bool str_eq(const char *a, const char *b)
{
	return !strcmp(a ? a : "", b ? b : "");
}

/* Notes when the record changed (holder or renewTime), on our clock. */
static void observe(bop_k8s_leader_t *le, const char *holder, const char *renew)
{
	if (le->seen_ms && str_eq(holder, le->seen_holder) && str_eq(renew, le->seen_renew))
		return;
	remember(&le->seen_holder, holder);
	remember(&le->seen_renew, renew);
	le->seen_ms = mono_ms();
}

static json_object *lease_spec(bop_k8s_leader_t *le, const char *holder, int duration,
	const char *acquire, const char *renew, int transitions)
{
	json_object *spec = json_object_new_object();

	if (!spec)
		return NULL;
	json_object_object_add(spec, "holderIdentity", json_object_new_string(holder));
	json_object_object_add(spec, "leaseDurationSeconds", json_object_new_int(duration));
	json_object_object_add(spec, "acquireTime", json_object_new_string(acquire));
	json_object_object_add(spec, "renewTime", json_object_new_string(renew));
	json_object_object_add(spec, "leaseTransitions", json_object_new_int(transitions));
	BOP_UNUSED(le);
	return spec;
}

/* What writing the lease as ours at `now` came to: held, lost to another writer (409), or
 * failed (logged). */
static attempt_t written(bop_k8s_leader_t *le, int ret, const char *now)
{
	if (ret == 0) {
		observe(le, le->identity, now);
		return HELD;
	}
	if (ret == BOP_ECONFLICT)
		return HELD_BY_OTHER;
	bop__log(BOP_LOG_WARN, "k8s", "leader election: %s", bop_error_last());
	return FAILED;
}

static attempt_t create_lease(bop_k8s_leader_t *le)
{
	json_object *lease = json_object_new_object(), *md = json_object_new_object(), *spec;
	char now[40];
	int ret;

	bop__k8s_time_now(now, sizeof(now), true);
	spec = lease_spec(le, le->identity, (int)le->lease_s, now, now, 0);
	if (!lease || !md || !spec) {
		json_object_put(lease);
		json_object_put(md);
		json_object_put(spec);
		return FAILED;
	}
	json_object_object_add(lease, "apiVersion", json_object_new_string("coordination.k8s.io/v1"));
	json_object_object_add(lease, "kind", json_object_new_string("Lease"));
	json_object_object_add(md, "name", json_object_new_string(le->name));
	json_object_object_add(md, "namespace", json_object_new_string(le->ns));
	json_object_object_add(lease, "metadata", md);
	json_object_object_add(lease, "spec", spec);
	ret = bop__k8s_do(le->client, BOP__K8S_POST, le->collection, lease, NULL, NULL);
	json_object_put(lease);
	return written(le, ret, now);
}

static int spec_int(json_object *spec, const char *key, int dflt)
{
	json_object *v;

	if (spec && json_object_object_get_ex(spec, key, &v) && json_object_is_type(v, json_type_int))
		return json_object_get_int(v);
	return dflt;
}

/* Writes the lease back as ours; `lease` is the object as read (with resourceVersion). */
static attempt_t take_lease(bop_k8s_leader_t *le, json_object *lease, json_object *spec,
	const char *holder)
{
	bool ours = str_eq(holder, le->identity);
	const char *acquire = bop__k8s_json_str(spec, "acquireTime");
	int transitions = spec_int(spec, "leaseTransitions", 0);
	json_object *nspec;
	char now[40];
	int ret;

	bop__k8s_time_now(now, sizeof(now), true);
	if (!ours)
		transitions++;          /* also after a release, as client-go counts */
	nspec = lease_spec(le, le->identity, (int)le->lease_s, ours && acquire ? acquire : now,
		now, transitions);
	if (!nspec)
		return FAILED;
	json_object_object_add(lease, "spec", nspec);
	ret = bop__k8s_do(le->client, BOP__K8S_PUT, le->path, lease, NULL, NULL);
	return written(le, ret, now);
}

static attempt_t try_acquire_or_renew(bop_k8s_leader_t *le)
{
	json_object *lease = NULL, *spec = NULL;
	const char *holder, *renew;
	int duration, ret;
	attempt_t a;

	ret = bop__k8s_do(le->client, BOP__K8S_GET, le->path, NULL, NULL, &lease);
	if (ret == BOP_ENOTFOUND)
		return create_lease(le);
	if (ret < 0) {
		bop__log(BOP_LOG_WARN, "k8s", "leader election: %s", bop_error_last());
		return FAILED;
	}
	json_object_object_get_ex(lease, "spec", &spec);
	holder = bop__k8s_json_str(spec, "holderIdentity");
	renew = bop__k8s_json_str(spec, "renewTime");
	duration = spec_int(spec, "leaseDurationSeconds", (int)le->lease_s);
	observe(le, holder, renew);
	if (holder && *holder && !str_eq(holder, le->identity) &&
	    mono_ms() < le->seen_ms + (int64_t)duration * 1000) {
		json_object_put(lease);
		return HELD_BY_OTHER;
	}
	if (spec)
		json_object_get(spec); /* take_lease replaces it in `lease` */
	a = take_lease(le, lease, spec, holder);
	json_object_put(spec);
	json_object_put(lease);
	return a;
}

/* Gives the lease up: an empty holder and a 1 s duration. */
static void release(bop_k8s_leader_t *le)
{
	json_object *lease = NULL, *spec = NULL, *nspec;
	int transitions, ret;
	char now[40];

	if (bop__k8s_do(le->client, BOP__K8S_GET, le->path, NULL, NULL, &lease) < 0)
		goto fail;
	json_object_object_get_ex(lease, "spec", &spec);
	if (!str_eq(bop__k8s_json_str(spec, "holderIdentity"), le->identity)) {
		json_object_put(lease);
		return;
	}
	transitions = spec_int(spec, "leaseTransitions", 0);
	bop__k8s_time_now(now, sizeof(now), true);
	nspec = lease_spec(le, "", 1, now, now, transitions);
	if (!nspec) {
		json_object_put(lease);
		return;
	}
	json_object_object_add(lease, "spec", nspec);
	ret = bop__k8s_do(le->client, BOP__K8S_PUT, le->path, lease, NULL, NULL);
	json_object_put(lease);
	if (ret == 0) {
		bop__log(BOP_LOG_INFO, "k8s", "leader election: %s released the lease %s/%s",
			le->identity, le->ns, le->name);
		return;
	}
fail:
	bop__log(BOP_LOG_WARN, "k8s", "leader election: cannot release the lease: %s",
		bop_error_last());
}

static void set_leader(bop_k8s_leader_t *le, bool leader)
{
	pthread_mutex_lock(&le->lock);
	le->leader = leader;
	le->renewed_ms = mono_ms();
	pthread_mutex_unlock(&le->lock);
}

/* Renews until stopped or until renewing failed for the renew deadline. */
static void lead(bop_k8s_leader_t *le)
{
	int64_t deadline = (int64_t)le->renew_deadline_s * 1000;

	bop__log(BOP_LOG_INFO, "k8s", "leader election: %s became the leader (lease %s/%s)",
		le->identity, le->ns, le->name);
	set_leader(le, true);
	if (le->on_started)
		le->on_started(le->ud);
	for (;;) {
		attempt_t a;

		sleep_ms(le, (int64_t)le->retry_s * 1000);
		if (stopping(le)) {
			release(le);
			break;
		}
		a = try_acquire_or_renew(le);
		if (a == HELD) {
			pthread_mutex_lock(&le->lock);
			le->renewed_ms = mono_ms();
			pthread_mutex_unlock(&le->lock);
			continue;
		}
		if (a == HELD_BY_OTHER || mono_ms() - le->renewed_ms >= deadline) {
			bop__log(BOP_LOG_WARN, "k8s", "leader election: %s lost the lease %s/%s",
				le->identity, le->ns, le->name);
			break;
		}
	}
	set_leader(le, false);
	if (le->on_stopped)
		le->on_stopped(le->ud);
}

static void *leader_main(void *arg)
{
	bop_k8s_leader_t *le = arg;

	pthread_setname_np(pthread_self(), "bop-leader");

	while (!stopping(le)) {
		if (try_acquire_or_renew(le) == HELD)
			lead(le);
		else
			sleep_ms(le, retry_ms(le));
	}
	return NULL;
}

/* ---- API ---- */

BOP_EXTERN(int) bop_k8s_leader_options_init(bop_k8s_leader_options_t *opts, unsigned int version)
{
	const bop_k8s_leader_options_t defaults = BOP_K8S_LEADER_OPTIONS_INIT;

	if (!opts)
		return bop__error(BOP_EINVAL, "bop_k8s_leader_options_init: opts is NULL");
	if (BOP__VERSION_CHECK("bop_k8s_leader_options_t", NULL, version, K8S_LEADER_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	*opts = defaults;
	return 0;
}

static int check_options(const bop_k8s_leader_options_t *o)
{
	if (!o)
		return bop__error(BOP_EINVAL, "leader election options are required");
	if (BOP__VERSION_CHECK("bop_k8s_leader_options_t", NULL, o->version,
	    K8S_LEADER_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	if (!o->lease_namespace || !*o->lease_namespace || !o->name || !*o->name || !o->identity ||
	    !*o->identity)
		return bop__error(BOP_EINVAL, "leader election needs the Lease's namespace and name and this process's identity");
	return 0;
}

static void set_durations(bop_k8s_leader_t *le, const bop_k8s_leader_options_t *o)
{
	/* unset ones keep the 15:10:2 proportion of the defaults */
	le->lease_s = o->lease_seconds ? o->lease_seconds : 15;
	le->renew_deadline_s = o->renew_deadline_seconds ? o->renew_deadline_seconds :
		le->lease_s * 2 / 3;
	le->retry_s = o->retry_seconds ? o->retry_seconds : le->lease_s * 2 / 15;
	if (!le->renew_deadline_s)
		le->renew_deadline_s = 1;
	if (!le->retry_s)
		le->retry_s = 1;
}

static int check_durations(const bop_k8s_leader_t *le)
{
	if (le->renew_deadline_s >= le->lease_s || le->retry_s >= le->renew_deadline_s)
		return bop__error(BOP_EINVAL, "leader election needs retry (%u s) < renew deadline (%u s) < lease duration (%u s)",
			le->retry_s, le->renew_deadline_s, le->lease_s);
	return 0;
}

BOP_EXTERN(int) bop_k8s_leader_new(bop_k8s_leader_t **out, bop_k8s_client_t *client,
	const bop_k8s_leader_options_t *opts)
{
	bop_k8s_leader_t *le;
	int ret;

	if (!out || !client)
		return bop__error(BOP_EINVAL, "bop_k8s_leader_new: out and client are required");
	*out = NULL;
	ret = check_options(opts);
	if (ret < 0)
		return ret;
	le = bop__calloc(1, sizeof(*le));
	if (!le)
		return BOP_ENOMEM;
	set_durations(le, opts);
	le->on_started = opts->on_started;
	le->on_stopped = opts->on_stopped;
	le->ud = opts->payload;
	pthread_mutex_init(&le->lock, NULL);
	{
		pthread_condattr_t attr;

		pthread_condattr_init(&attr);
		pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
		pthread_cond_init(&le->cond, &attr);
		pthread_condattr_destroy(&attr);
	}
	le->ns = bop__strdup(opts->lease_namespace);
	le->name = bop__strdup(opts->name);
	le->identity = bop__strdup(opts->identity);
	le->collection = bop__sprintf("/apis/coordination.k8s.io/v1/namespaces/%s/leases",
		opts->lease_namespace);
	le->path = bop__sprintf("/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s",
		opts->lease_namespace, opts->name);
	ret = le->ns && le->name && le->identity && le->collection && le->path ? 0 : BOP_ENOMEM;
	if (ret == 0)
		ret = check_durations(le);
	if (ret == 0)
		ret = bop__k8s_client_clone(client->priv, &le->client);
	if (ret < 0) {
		bop_k8s_leader_free(le);
		return ret;
	}
	/* the elector retries on its own schedule; a request must not outlast a period */
	bop__k8s_client_set_retry(le->client, 1, 1, 0);
	bop__k8s_client_set_timeout(le->client, (long)le->retry_s);
	*out = le;
	return 0;
}

BOP_EXTERN(int) bop_k8s_leader_start(bop_k8s_leader_t *le)
{
	int err;

	if (!le)
		return bop__error(BOP_EINVAL, "bop_k8s_leader_start: elector is NULL");
	if (le->started)
		return bop__error(BOP_EINVAL, "the elector of lease %s/%s is started already", le->ns,
			le->name);
	err = pthread_create(&le->thread, NULL, leader_main, le);
	if (err)
		return bop__error_errno(BOP_ERROR, err, "cannot start the leader election thread");
	le->started = true;
	return 0;
}

BOP_EXTERN(int) bop_k8s_leader_is_leader(bop_k8s_leader_t *le)
{
	int r;

	if (!le)
		return 0;
	pthread_mutex_lock(&le->lock);
	r = le->leader && mono_ms() - le->renewed_ms < (int64_t)le->renew_deadline_s * 1000;
	pthread_mutex_unlock(&le->lock);
	return r;
}

BOP_EXTERN(void) bop_k8s_leader_stop(bop_k8s_leader_t *le)
{
	bool join;

	if (!le)
		return;
	pthread_mutex_lock(&le->lock);
	le->stop = true;
	pthread_cond_broadcast(&le->cond);
	/* from a callback on the elector's own thread, the thread ends by itself */
	join = le->started && !le->joined && !pthread_equal(pthread_self(), le->thread);
	if (join)
		le->joined = true;
	pthread_mutex_unlock(&le->lock);
	if (join)
		pthread_join(le->thread, NULL);
}

BOP_EXTERN(void) bop_k8s_leader_free(bop_k8s_leader_t *le)
{
	if (!le)
		return;
	bop_k8s_leader_stop(le);
	bop__k8s_client_free(le->client);
	pthread_cond_destroy(&le->cond);
	pthread_mutex_destroy(&le->lock);
	free(le->ns);
	free(le->name);
	free(le->identity);
	free(le->path);
	free(le->collection);
	free(le->seen_holder);
	free(le->seen_renew);
	free(le);
}
