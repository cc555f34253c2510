/*
 * The client's request handling against fake-apiserver.py, a scripted HTTP server: what is
 * sent (method, content types, fieldManager, bearer token), every status mapped to its
 * code, retries of 429/5xx with Retry-After, giving up, refused connections, and the token
 * kept out of logs and messages. The real API server is tested in test-api.c.
 */
#include "tap.h"

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "k8s/k8s.h"

#define TOKEN "secret-bearer-token-0123456789"

static pid_t server_pid = -1;
static char log_buf[65536];
static size_t log_len;

static int server_start(const char *python, const char *script)
{
	struct pollfd pfd;
	char line[32] = "";
	ssize_t got;
	int fds[2], port = 0;

	if (pipe(fds) < 0)
		return -1;
	server_pid = fork();
	if (server_pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execl(python, python, script, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	pfd = (struct pollfd){ .fd = fds[0], .events = POLLIN };
	if (server_pid > 0 && poll(&pfd, 1, 15000) == 1 &&
	    (got = read(fds[0], line, sizeof(line) - 1)) > 0) {
		line[got] = '\0';
		port = atoi(line);
	}
	close(fds[0]);
	return port > 0 ? port : -1;
}

static void server_stop(void)
{
	if (server_pid <= 0)
		return;
	kill(server_pid, SIGTERM);
	waitpid(server_pid, NULL, 0);
}

static void on_log(bop_log_level_t level, const char *component, const char *message,
	void *payload)
{
	int n;

	BOP_UNUSED(level);
	BOP_UNUSED(payload);
	n = snprintf(log_buf + log_len, sizeof(log_buf) - log_len, "%s: %s\n", component, message);
	if (n > 0 && (size_t)n < sizeof(log_buf) - log_len)
		log_len += (size_t)n;
}

static bop__k8s_client_t *client_for(int port, const char *token)
{
	char *yaml = bop__sprintf(
		"kind: Config\n"
		"clusters: [{name: c, cluster: {server: 'http://127.0.0.1:%d'}}]\n"
		"users: [{name: u, user: {token: '%s'}}]\n"
		"contexts: [{name: x, context: {cluster: c, user: u}}]\n"
		"current-context: x\n", port, token);
	bop__k8s_config_t *cfg = NULL;
	bop__k8s_client_t *c = NULL;

	if (!yaml || bop__k8s_config_parse(&cfg, yaml, strlen(yaml), "fake", NULL, NULL) < 0 ||
	    bop__k8s_client_new(&c, cfg) < 0) {
		printf("Bail out! cannot make a client: %s\n", bop_error_last());
		exit(1);
	}
	free(yaml);
	bop__k8s_client_set_retry(c, 4, 10, 5000);
	return c;
}

static const char *str(json_object *o, const char *key)
{
	json_object *v;

	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static int64_t tries(json_object *o)
{
	json_object *v;

	return o && json_object_object_get_ex(o, "tries", &v) ? json_object_get_int64(v) : -1;
}

static void test_sent(bop__k8s_client_t *c)
{
	json_object *body = json_tokener_parse("{\"a\":1}"), *o = NULL;
	bop__k8s_request_t r = { .method = BOP__K8S_PATCH_APPLY, .path = "/echo?dryRun=All",
		.body = body, .field_manager = "bop test", .force = true };
	bop__k8s_response_t resp;

	if (!is_int(bop__k8s_do(c, BOP__K8S_GET, "/echo", NULL, NULL, &o), 0, "GET"))
		diag("%s", bop_error_last());
	is_str(str(o, "method"), "GET", "is sent as GET");
	is_str(str(o, "authorization"), "Bearer " TOKEN, "with the bearer token");
	json_object_put(o);
	o = NULL;
	is_int(bop__k8s_do(c, BOP__K8S_POST, "/echo", body, NULL, &o), 0, "POST");
	is_str(str(o, "contentType"), "application/json", "as JSON");
	is_str(str(o, "body"), "{\"a\":1}", "with the body");
	json_object_put(o);
	o = NULL;
	is_int(bop__k8s_do(c, BOP__K8S_PATCH_MERGE, "/echo", body, NULL, &o), 0, "merge patch");
	is_str(str(o, "method"), "PATCH", "is a PATCH");
	is_str(str(o, "contentType"), "application/merge-patch+json", "of merge-patch+json");
	json_object_put(o);
	is_int(bop__k8s_request(c, &r, &resp), 0, "apply");
	is_str(str(resp.body, "contentType"), "application/apply-patch+yaml", "of apply-patch+yaml");
	is_str(str(resp.body, "query"), "dryRun=All&fieldManager=bop%20test&force=true",
		"with the path's query, the escaped field manager and force");
	bop__k8s_response_clear(&resp);
	r.field_manager = NULL;
	is_int(bop__k8s_request(c, &r, &resp), BOP_EINVAL, "an apply without field manager is refused");
	r.method = BOP__K8S_DELETE;
	r.body = NULL;
	r.path = "echo";
	is_int(bop__k8s_request(c, &r, &resp), BOP_EINVAL, "a path without leading '/' is refused");
	json_object_put(body);
}

static void test_statuses(bop__k8s_client_t *c)
{
	static const struct { long status; int code; } map[] = {
		{ 400, BOP_EINVAL }, { 401, BOP_EAUTH }, { 403, BOP_EAUTH }, { 404, BOP_ENOTFOUND },
		{ 409, BOP_ECONFLICT }, { 410, BOP_ENOTFOUND }, { 422, BOP_EINVAL }, { 418, BOP_EIO },
	};
	bop__k8s_response_t resp;
	char path[64], msg[32];

	for (size_t i = 0; i < BOP_ARRAY_SIZE(map); i++) {
		bop__k8s_request_t r = { .method = BOP__K8S_GET, .path = path };
		int ret;

		snprintf(path, sizeof(path), "/status/%ld", map[i].status);
		snprintf(msg, sizeof(msg), "msg %ld", map[i].status);
		ret = bop__k8s_request(c, &r, &resp);
		ok(ret == map[i].code && resp.status == map[i].status &&
			strstr(bop_error_last(), msg) && strstr(bop_error_last(), path) &&
			resp.gone == (map[i].status == 410),
			"HTTP %ld -> %s: %s", map[i].status, bop_strerror(ret), bop_error_last());
		bop__k8s_response_clear(&resp);
	}
}

static void test_retries(bop__k8s_client_t *c)
{
	json_object *o = NULL, *empty = json_object_new_object();
	int64_t t0;

	is_int(bop__k8s_do(c, BOP__K8S_GET, "/flaky/2/503", NULL, NULL, &o), 0,
		"two 503s, then success");
	is_int(tries(o), 3, "after three tries");
	json_object_put(o);
	o = NULL;
	is_int(bop__k8s_do(c, BOP__K8S_POST, "/flaky/1/500", empty, NULL, NULL), 0,
		"a POST is retried after a 500 too");
	json_object_put(empty);
	is_int(bop__k8s_do(c, BOP__K8S_GET, "/flaky/9/429", NULL, NULL, NULL), BOP_EIO,
		"429 on every try gives up");
	ok(strstr(bop_error_last(), "gave up after 4 tries") != NULL, "saying so: %s",
		bop_error_last());
	ok(strstr(log_buf, "retrying") != NULL, "retries are logged as warnings");
	t0 = bop__now_ms();
	is_int(bop__k8s_do(c, BOP__K8S_GET, "/retry-after/1", NULL, NULL, &o), 0,
		"429 with Retry-After: 1, then success");
	ok(bop__now_ms() - t0 >= 900, "Retry-After was honoured (%lld ms)",
		(long long)(bop__now_ms() - t0));
	json_object_put(o);
}

static void test_refused(void)
{
	bop__k8s_client_t *c = client_for(1, TOKEN);
	int64_t t0 = bop__now_ms();

	bop__k8s_client_set_retry(c, 3, 10, 5000);
	is_int(bop__k8s_do(c, BOP__K8S_GET, "/version", NULL, NULL, NULL), BOP_ECONNECT,
		"a refused connection is BOP_ECONNECT");
	ok(strstr(bop_error_last(), "cannot connect to the API server http://127.0.0.1:1") &&
		strstr(bop_error_last(), "3 tries"), "after retries, naming the server: %s",
		bop_error_last());
	ok(bop__now_ms() - t0 < 5000, "within the retry budget");
	bop__k8s_client_free(c);
}

int main(int argc, char **argv)
{
	bop__k8s_client_t *c;
	int port;

	if (argc < 3)
		skip_all("python3 is not installed (fake-apiserver.py needs it)");
	port = server_start(argv[1], argv[2]);
	if (port < 0) {
		server_stop();
		skip_all("fake-apiserver.py did not start");
	}
	bop_log_set_level(BOP_LOG_DEBUG);
	bop_log_set_callback(on_log, NULL);
	c = client_for(port, TOKEN);
	test_sent(c);
	test_statuses(c);
	test_retries(c);
	test_refused();
	ok(!strstr(log_buf, TOKEN) && !strstr(bop_error_last(), TOKEN),
		"the token never reached the log or a message");
	bop__k8s_client_free(c);
	bop_log_set_callback(NULL, NULL);
	server_stop();
	return done_testing();
}
