/*
 * What the runner's API accepts from a request, checked before any work is queued: the
 * backup id of a path or a body, and the JSON body of the POST routes. Pure functions
 * (public libbackupop API and json-c only), so the fuzz target calls them directly.
 */
#ifndef BACKUPOP_RUNNER_API_REQUEST_H
#define BACKUPOP_RUNNER_API_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

/* Whether `id` is a backup id the catalog accepts; false with the reason in `why`. The
 * reason quotes at most the first 64 characters of `id`, with control characters
 * replaced. */
bool api_backup_id_ok(const char *id, char *why, size_t whylen);

/* Whether `name` may be a restore's target database: 1 to API_DATABASE_MAX letters,
 * digits, '_' or '-', starting with a letter or '_' (a name both PostgreSQL and MySQL take
 * as it is, which no client reads as an option or a connection string); false with the
 * reason in `why`, quoting at most 64 characters of `name`. */
#define API_DATABASE_MAX 63
bool api_database_name_ok(const char *name, char *why, size_t whylen);

/* Whether `id` may be the requestId of a POST that starts a run (?requestId=): 1 to
 * API_REQUEST_ID_MAX letters, digits, '.', '_', ':' or '-' (a Kubernetes uid is one); false
 * with the reason in `why`, quoting at most 64 characters of `id`. */
#define API_REQUEST_ID_MAX 128
bool api_request_id_ok(const char *id, char *why, size_t whylen);

/* The body of POST /v1/backups (`takes_backup` false: no fields), /v1/restores and
 * /v1/verifications (`takes_backup` true: {"backup": "latest" | id}, all optional); with
 * `target` (restores) also {"targetDatabase": name}. An empty body is an empty object.
 * 0 with *backup set to the id (malloc'd), or NULL for the latest, and *target to the
 * database (malloc'd) or NULL; -1 with the reason in `why` (an invalid body, an unknown
 * field, a backup that is not a string, "latest" or a valid id, a database name that
 * api_database_name_ok() refuses); -2 when out of memory. */
int api_parse_run_body(const char *body, size_t len, bool takes_backup, char **backup,
	char **target, char *why, size_t whylen);

#endif
