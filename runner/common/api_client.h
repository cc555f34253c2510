/* One request to a backupop-runner's API (backupop-runner(8)), for the programs that talk
 * to runners: the backupop CLI (runs, status) and backupop-controller (BackupRuns). */
#ifndef BOP_RUNNER_API_CLIENT_H
#define BOP_RUNNER_API_CLIENT_H

#include <stddef.h>

/* Largest answer read; a longer one fails the request. */
#define RAPI_MAX_BYTES (8u << 20)

typedef struct rapi_reply {
	long status;    /* the HTTP status */
	char *body;     /* the answer, NUL-terminated (malloc'd), or NULL when empty */
} rapi_reply_t;

/* Sends `method` to `url` with "Authorization: Bearer <token>" (none when NULL) and, when
 * `body` is not NULL, that JSON body. Timeouts in milliseconds (0: none for connecting).
 * Returns 0 once an answer arrived, whatever its status; -1 when none did, with the reason
 * in `err`. The token never reaches `err`. Free the reply with rapi_reply_clear(). */
int rapi_request(const char *url, const char *method, const char *token, const char *body,
	long connect_timeout_ms, long timeout_ms, rapi_reply_t *reply, char *err, size_t errlen);

void rapi_reply_clear(rapi_reply_t *reply);

/*
 * The token a runner generates when its config has none (api.token, api.tokenFile): it is
 * written 0600 to DIR/api-token-PORT, PORT being the port the API listens on and DIR a
 * directory of the user that only they can enter: $XDG_RUNTIME_DIR/backupop when
 * XDG_RUNTIME_DIR is set, else /tmp/backupop-UID. backupop runs and status read it from
 * there for the port of the runner they ask.
 */

/* The file for `port` into `out`; with `create`, the directory is made if missing. Either
 * way the directory must be a real directory owned by the user with no access for others.
 * -1 with the reason in `err` otherwise. */
int rapi_token_path(int port, int create, char *out, size_t outlen, char *err, size_t errlen);

/* The port of an http:// or https:// URL (80 or 443 when it names none); -1 if unclear. */
int rapi_url_port(const char *url);

/* The token a runner generated for the port of `url`, when the URL names this host by a
 * loopback or wildcard address (localhost, 127.x.y.z, [::1], 0.0.0.0, [::] or no host;
 * never a token for another host): 0 with *token (free it after
 * explicit_bzero), 1 when there is none to use (no file, or a directory or file that is
 * not private to the user), -1 when the file exists but cannot be read (reason in `err`). */
int rapi_generated_token(const char *url, char **token, char *err, size_t errlen);

#endif
