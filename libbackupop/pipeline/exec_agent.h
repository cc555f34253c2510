/*
 * The protocol between the exec engine and backupop-exec-agent, the program that runs the
 * engine's commands inside another container of the pod (the user's tools image).
 *
 * The runner connects to the agent's Unix stream socket and sends one request: a header
 * carrying the command's stdin, stdout and stderr (SCM_RIGHTS, three descriptors), then
 * the body. The agent starts the command on those descriptors, so the data never passes
 * through the agent, and answers with a start reply, later with an exit reply. A 'K' byte
 * from the runner, or the connection closing, makes the agent kill the command's process
 * group. All integers are in the host's byte order (both ends share the node).
 */
#ifndef BACKUPOP_EXEC_AGENT_H
#define BACKUPOP_EXEC_AGENT_H

#include <stdint.h>

#define BOP_AGENT_MAGIC "BXA1"
#define BOP_AGENT_MAGIC_INIT { 'B', 'X', 'A', '1' }
#define BOP_AGENT_MAX_BODY (16u << 20)
#define BOP_AGENT_KILL 'K'

/* Sent with the three descriptors. */
typedef struct bop_agent_header {
	char magic[4];
	uint32_t body_len;
} bop_agent_header_t;

#define BOP_AGENT_INHERIT_ENV 1u   /* the agent's environment, plus env */
#define BOP_AGENT_HAS_CWD 2u

/* The body starts with these, followed by argc, envc and (with HAS_CWD) one more
 * NUL-terminated strings: argv, env ("NAME=value") and the working directory. */
typedef struct bop_agent_request {
	uint32_t argc;
	uint32_t envc;
	uint32_t flags;
} bop_agent_request_t;

#define BOP_AGENT_STARTED 'S'      /* a: 0, or the errno of the failed start; b: pid */
#define BOP_AGENT_EXITED 'X'       /* a: exit status; b: signal, 0 when it exited */

typedef struct bop_agent_reply {
	int32_t type;
	int32_t a;
	int32_t b;
} bop_agent_reply_t;

#endif
