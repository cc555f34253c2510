/*
 * Leader election on a real Lease, with short durations (lease 3 s, renew deadline 2 s,
 * retry 1 s): of two electors on two clients exactly one leads; the Lease records holder,
 * duration, times and transitions; a leader that stops releases the lease and the other
 * takes over at once; a leader process killed with SIGKILL (no release) is replaced
 * within the lease duration.
 */
#include "tap.h"

#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "k8s-test.h"

#define LEASE_S 3
#define RENEW_S 2
#define RETRY_S 1

typedef struct state {
	int started, stopped;
	int pipe_fd;                    /* the child tells its parent */
} state_t;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_started(void *ud)
{
	state_t *s = ud;

	__atomic_add_fetch(&s->started, 1, __ATOMIC_SEQ_CST);
	if (s->pipe_fd >= 0 && write(s->pipe_fd, "L", 1) < 0)
		_exit(3);
}

static void on_stopped(void *ud)
{
	__atomic_add_fetch(&((state_t *)ud)->stopped, 1, __ATOMIC_SEQ_CST);
}

static bop_k8s_leader_t *elector(bop_k8s_client_t *c, const char *ns, const char *id,
	state_t *s)
{
	bop_k8s_leader_options_t o = BOP_K8S_LEADER_OPTIONS_INIT;
	bop_k8s_leader_t *le = NULL;

	o.lease_namespace = ns;
	o.name = "bop-test-lease";
	o.identity = id;
	o.lease_seconds = LEASE_S;
	o.renew_deadline_seconds = RENEW_S;
	o.retry_seconds = RETRY_S;
	o.on_started = on_started;
	o.on_stopped = on_stopped;
	o.payload = s;
	if (bop_k8s_leader_new(&le, c, &o) < 0 || bop_k8s_leader_start(le) < 0) {
		printf("Bail out! cannot start elector %s: %s\n", id, bop_error_last());
		exit(1);
	}
	return le;
}

/* Waits up to `ms` until `le` leads; the time it took, or -1. */
static long long wait_leader(bop_k8s_leader_t *le, int ms)
{
	long long t0 = now_ms();

	while (!bop_k8s_leader_is_leader(le)) {
		if (now_ms() - t0 > ms)
			return -1;
		usleep(20000);
	}
	return now_ms() - t0;
}

static const char *lease(bop_k8s_client_t *c, const char *ns, const char *path)
{
	static char text[4096];
	char p[200], *resp = NULL;

	snprintf(p, sizeof(p), "/apis/coordination.k8s.io/v1/namespaces/%s/leases/bop-test-lease",
		ns);
	text[0] = '\0';
	if (bop_k8s_request(c, NULL, &resp, BOP_K8S_GET, p, NULL, NULL) == 0)
		snprintf(text, sizeof(text), "%s", resp);
	bop_free(resp);
	return jget(text, path);
}

/* The child: leads until killed. */
static int child(const char *kubeconfig, const char *ns, int fd)
{
	bop_k8s_client_t *c = test_client(kubeconfig);
	state_t s = { .pipe_fd = fd };
	bop_k8s_leader_t *le = elector(c, ns, "child", &s);

	(void)le;
	for (;;)
		pause();
	return 0;
}

static void test_two(bop_k8s_client_t *c1, bop_k8s_client_t *c2, const char *ns)
{
	state_t sa = { .pipe_fd = -1 }, sb = { .pipe_fd = -1 };
	bop_k8s_leader_t *a, *b;
	long long t;

	a = elector(c1, ns, "a", &sa);
	ok(wait_leader(a, 5000) >= 0, "the first elector becomes leader (creating the Lease)");
	b = elector(c2, ns, "b", &sb);
	sleep(LEASE_S + 1);
	ok(bop_k8s_leader_is_leader(a) && !bop_k8s_leader_is_leader(b),
		"after a lease duration, still exactly one leader");
	is_int(sa.started, 1, "on_started was called once");
	is_int(sb.started, 0, "not for the other");
	is_str(lease(c1, ns, "spec.holderIdentity"), "a", "the Lease names the holder");
	is_str(lease(c1, ns, "spec.leaseDurationSeconds"), "3", "and the duration");
	ok(lease(c1, ns, "spec.acquireTime")[0] && strcmp(lease(c1, ns, "spec.renewTime"),
		lease(c1, ns, "spec.acquireTime")) > 0, "renewTime moves on after acquireTime");
	t = now_ms();
	bop_k8s_leader_stop(a);
	is_int(sa.stopped, 1, "stop calls on_stopped");
	ok(!bop_k8s_leader_is_leader(a), "and it is no longer leader");
	t = wait_leader(b, 5000);
	ok(t >= 0 && t < RETRY_S * 1000 * 2 + 500,
		"the other takes over at its next try, not after the lease (%lld ms)", t);
	is_str(lease(c1, ns, "spec.holderIdentity"), "b", "the Lease names it");
	is_str(lease(c1, ns, "spec.leaseTransitions"), "1", "one transition");
	bop_k8s_leader_stop(a);
	is_int(sa.stopped, 1, "stop is idempotent");
	bop_k8s_leader_free(a);
	bop_k8s_leader_free(b);
	is_int(sb.stopped, 1, "freeing the leader stops it");
	is_str(lease(c1, ns, "spec.holderIdentity"), "", "and releases the lease");
}

static void test_killed(const char *self, const char *kubeconfig, bop_k8s_client_t *c1,
	const char *ns)
{
	state_t sc = { .pipe_fd = -1 };
	bop_k8s_leader_t *le;
	int fds[2];
	char byte;
	pid_t pid;
	long long t0, t;

	if (pipe(fds) < 0)
		return;
	pid = fork();
	if (pid == 0) {
		char fd[16];

		close(fds[0]);
		snprintf(fd, sizeof(fd), "%d", fds[1]);
		execl(self, self, "child", kubeconfig, ns, fd, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	ok(read(fds[0], &byte, 1) == 1, "a child process becomes leader");
	le = elector(c1, ns, "c", &sc);
	sleep(LEASE_S + 1);
	ok(!bop_k8s_leader_is_leader(le), "a second candidate waits while the child renews");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	t0 = now_ms();
	t = wait_leader(le, 15000);
	ok(t >= 0, "after the child is killed (no release) the candidate takes over");
	ok(t >= 0 && t <= (LEASE_S + RETRY_S) * 1000 + 700,
		"within the lease duration and a retry (%lld ms)", now_ms() - t0);
	is_str(lease(c1, ns, "spec.holderIdentity"), "c", "the Lease names the new leader");
	bop_k8s_leader_free(le);
	close(fds[0]);
}

int main(int argc, char **argv)
{
	const char *kubeconfig;
	bop_k8s_client_t *c1, *c2;
	bop_k8s_leader_options_t bad = BOP_K8S_LEADER_OPTIONS_INIT;
	bop_k8s_leader_t *le = NULL;
	char ns[64];

	if (argc == 5 && !strcmp(argv[1], "child"))
		return child(argv[2], argv[3], atoi(argv[4]));
	kubeconfig = test_kubeconfig();
	c1 = test_client(kubeconfig);
	c2 = test_client(kubeconfig);
	is_int(bop_k8s_leader_new(&le, c1, &bad), BOP_EINVAL, "options without a lease are refused");
	bad.lease_namespace = "x";
	bad.name = "y";
	bad.identity = "z";
	bad.lease_seconds = 5;
	bad.renew_deadline_seconds = 6;
	is_int(bop_k8s_leader_new(&le, c1, &bad), BOP_EINVAL,
		"a renew deadline longer than the lease is refused");
	test_namespace_create(c1, "bop-lead", ns, sizeof(ns));
	test_two(c1, c2, ns);
	test_killed("/proc/self/exe", kubeconfig, c1, ns);
	is_int(test_namespace_delete(c1, ns), 0, "delete the namespace");
	bop_k8s_client_free(c1);
	bop_k8s_client_free(c2);
	return done_testing();
}
