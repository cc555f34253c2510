/* Calls to a schedule's runner API (POST /v1/backups, GET /v1/runs/{id}, ...). */
#include "ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ctl_runner_call(ctl_t *c, const char *ns, const char *name, const char *uid,
	const char *method, const char *path, const char *body, rapi_reply_t *reply)
{
	char *obj = NULL, *token = NULL, url[1024], err[512];
	int ret;

	memset(reply, 0, sizeof(*reply));
	ret = bop_reconcile_name(&obj, "runner", ns, name);
	if (ret == 0)
		ret = bop_reconcile_runner_token(&token, c->key, sizeof(c->key), uid);
	if (ret)
		goto out;
	if (c->args.runner_url)
		snprintf(url, sizeof(url), "%s%s", c->args.runner_url, path);
	else
		snprintf(url, sizeof(url), "http://%s.%s.svc:%u%s", obj, c->args.namespace,
			c->args.runner_port, path);
	if (rapi_request(url, method, token, body, 3000, 15000, reply, err, sizeof(err)) < 0) {
		char msg[1400];

		snprintf(msg, sizeof(msg), "runner %s is not reachable at %s: %s", obj,
			c->args.runner_url ? c->args.runner_url : "its Service", err);
		ret = bop_error_set(BOP_EIO, msg);
		goto out;
	}
out:
	if (token) {
		explicit_bzero(token, strlen(token));
		bop_free(token);
	}
	bop_free(obj);
	return ret;
}
