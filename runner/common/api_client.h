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

#endif
