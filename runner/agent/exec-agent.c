/*
 * backupop-exec-agent: runs the exec engine's commands in the container it runs in (the
 * user's tools image), for a runner in another container of the same pod.
 *
 *   backupop-exec-agent --socket PATH [--allow-uid UID]...
 *   backupop-exec-agent --install DEST
 *
 * --install copies the agent itself to DEST (mode 0755): the runner pod's init container
 * puts it into a volume shared with the tools container, without needing cp or a shell.
 *
 * It listens on the Unix socket PATH (mode 0600, or handed to the one allowed uid when run
 * as root). Each connection is served by a forked copy of the agent: the peer's uid must be
 * the agent's own or one given with --allow-uid; the request (see exec_agent.h) carries the
 * command's argv, environment, working directory and its stdin, stdout and stderr, which
 * the command gets directly, so the agent never copies data. The command leads a process
 * group of its own, which is killed when the runner asks or its connection drops.
 *
 * The program is linked statically and needs nothing from the image: no shell, no
 * libraries, no name service. As a container's first process it also reaps orphans and
 * ends on SIGTERM.
 */
#include "exec_agent.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ALLOWED 8
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

extern char **environ;

static const char *prog = "backupop-exec-agent";
static uid_t allowed[MAX_ALLOWED];
static size_t n_allowed;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int usage(void)
{
	fprintf(stderr, "usage: %s --socket PATH [--allow-uid UID]...\n"
		"       %s --install DEST\n", prog, prog);
	return 2;
}

/* ---- one connection ---- */

/* For the connection and for --install's copy: the server ignores SIGPIPE, so a closed
 * connection is an EPIPE here, not a signal. */
static bool write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static bool read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static void reply(int conn, int32_t type, int32_t a, int32_t b)
{
	bop_agent_reply_t r = { type, a, b };

	(void)write_all(conn, &r, sizeof(r));
}

static bool peer_allowed(int conn)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	if (cred.uid == getuid())
		return true;
	for (size_t i = 0; i < n_allowed; i++) {
		if (cred.uid == allowed[i])
			return true;
	}
	say("refused a connection from uid %u (pid %d): not an allowed uid", (unsigned)cred.uid,
		(int)cred.pid);
	return false;
}

/* Reads the header and its three descriptors. */
static bool read_header(int conn, bop_agent_header_t *h, int fds[3])
{
	union {
		char buf[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { h, sizeof(*h) };
	struct msghdr msg = { 0 };
	struct cmsghdr *cm;
	ssize_t n;

	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = u.buf;
	msg.msg_controllen = sizeof(u.buf);
	do
		n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL);
	while (n < 0 && errno == EINTR);
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t i = 0; i < k; i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
				if (i < 3 && fds[i] < 0)
					fds[i] = fd;
				else
					close(fd);
			}
		}
	}
	if (n != (ssize_t)sizeof(*h) || memcmp(h->magic, BOP_AGENT_MAGIC, 4) != 0 ||
	    (msg.msg_flags & MSG_CTRUNC)) {
		say("refused a malformed request");
		return false;
	}
	if (fds[0] < 0 || fds[1] < 0 || fds[2] < 0 || h->body_len > BOP_AGENT_MAX_BODY ||
	    h->body_len < sizeof(bop_agent_request_t)) {
		say("refused a request without its three descriptors or of a bad size");
		return false;
	}
	return true;
}

typedef struct command {
	char **argv;
	char **env;
	const char *cwd;
} command_t;

/* Splits the body into argv, env and cwd (pointers into `body`). */
static bool parse_body(char *body, size_t len, command_t *c)
{
	bop_agent_request_t req;
	size_t pos = sizeof(req), n_strings;
	char **strings;

	memcpy(&req, body, sizeof(req));
	if (req.argc == 0 || req.argc > len || req.envc > len)
		return false;
	n_strings = (size_t)req.argc + req.envc + ((req.flags & BOP_AGENT_HAS_CWD) ? 1 : 0);
	strings = calloc(n_strings + 2, sizeof(*strings));
	if (!strings)
		return false;
	for (size_t i = 0; i < n_strings; i++) {
		char *end = memchr(body + pos, '\0', len - pos);

		if (!end) {
			free(strings);
			return false;
		}
		strings[i] = body + pos;
		pos = (size_t)(end - body) + 1;
	}
	c->argv = strings;
	c->cwd = (req.flags & BOP_AGENT_HAS_CWD) ? strings[n_strings - 1] : NULL;
	if (c->cwd)
		strings[n_strings - 1] = NULL;
	/* argv and env share the array: env follows argv's terminator. */
	memmove(strings + req.argc + 1, strings + req.argc, req.envc * sizeof(*strings));
	strings[req.argc] = NULL;
	strings[req.argc + 1 + req.envc] = NULL;
	c->env = strings + req.argc + 1;
	if (!(req.flags & BOP_AGENT_INHERIT_ENV))
		return true;
	/* Ours, less what the request sets. */
	{
		size_t n_ours = 0, k = 0;
		char **merged;

		while (environ && environ[n_ours])
			n_ours++;
		merged = calloc(n_ours + req.envc + 1, sizeof(*merged));
		if (!merged)
			return false;
		for (size_t i = 0; i < n_ours; i++) {
			size_t nl = strcspn(environ[i], "=");
			bool over = false;

			for (size_t j = 0; j < req.envc && !over; j++)
				over = strcspn(c->env[j], "=") == nl && !memcmp(c->env[j], environ[i], nl);
			if (!over)
				merged[k++] = environ[i];
		}
		for (size_t j = 0; j < req.envc; j++)
			merged[k++] = c->env[j];
		c->env = merged;
	}
	return true;
}

/* execve() along the command's PATH; returns the most telling errno. */
static int exec_command(char **argv, char **env)
{
	const char *path = NULL;
	int err = ENOENT;
	char file[PATH_MAX];

	if (strchr(argv[0], '/')) {
		execve(argv[0], argv, env);
		return errno;
	}
	for (char **e = env; *e; e++) {
		if (!strncmp(*e, "PATH=", 5))
			path = *e + 5;
	}
	if (!path)
		path = DEFAULT_PATH;
	for (;;) {
		const char *end = strchrnul(path, ':');
		int n = snprintf(file, sizeof(file), "%.*s/%s", end == path ? 1 : (int)(end - path),
			end == path ? "." : path, argv[0]);

		if (n > 0 && (size_t)n < sizeof(file)) {
			execve(file, argv, env);
			if (errno != ENOENT && errno != ENOTDIR)
				err = errno;
		}
		if (!*end)
			return err;
		path = end + 1;
	}
}

/* The command, between fork() and exec(). */
static void run_child(int fds[3], int errfd, const command_t *c)
{
	sigset_t none;
	int err;

	setpgid(0, 0);
	for (int i = 0; i < 3; i++) {
		if (fds[i] < 3 && (fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3)) < 0)
			goto fail;
	}
	for (int i = 0; i < 3; i++) {
		if (dup2(fds[i], i) < 0)
			goto fail;
	}
	if (c->cwd && chdir(c->cwd) < 0)
		goto fail;
	signal(SIGPIPE, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	errno = exec_command(c->argv, c->env);
fail:
	err = errno;
	(void)!write(errfd, &err, sizeof(err));
	_exit(127);
}

static void kill_group(pid_t pid)
{
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
}

/* Waits for the command, or for the runner to give up on it. */
static void watch(int conn, int sfd, pid_t pid)
{
	struct pollfd pfd[2] = { { conn, POLLIN, 0 }, { sfd, POLLIN, 0 } };
	bool killed = false;
	int status;

	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			kill_group(pid);
			killed = true;
		}
		if (pfd[0].revents) {
			char cmd = 0;
			ssize_t n = read(conn, &cmd, 1);

			if (n < 0 && errno == EINTR)
				continue;
			/* A kill request, the end of the connection, or anything else. */
			if (!killed)
				kill_group(pid);
			killed = true;
			pfd[0].fd = -1;
			if (n <= 0)
				conn = -1;
		}
		if (pfd[1].revents) {
			struct signalfd_siginfo si;

			(void)!read(sfd, &si, sizeof(si));
		}
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
	}
	if (conn >= 0)
		reply(conn, BOP_AGENT_EXITED, WIFEXITED(status) ? WEXITSTATUS(status) : 0,
			WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* Serves one connection, in a process of its own. */
static int serve(int conn)
{
	bop_agent_header_t h;
	int fds[3] = { -1, -1, -1 }, errpipe[2], err = 0, sfd;
	command_t c = { 0 };
	char *body;
	sigset_t chld;
	pid_t pid;
	ssize_t n;

	if (!peer_allowed(conn) || !read_header(conn, &h, fds))
		return 1;
	body = malloc(h.body_len);
	if (!body || !read_all(conn, body, h.body_len))
		return 1;
	if (!parse_body(body, h.body_len, &c)) {
		say("refused a malformed request");
		return 1;
	}
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	signal(SIGCHLD, SIG_DFL);
	sfd = signalfd(-1, &chld, SFD_CLOEXEC);
	if (sfd < 0 || pipe2(errpipe, O_CLOEXEC) < 0) {
		reply(conn, BOP_AGENT_STARTED, errno, 0);
		return 1;
	}
	pid = fork();
	if (pid == 0)
		run_child(fds, errpipe[1], &c);
	if (pid < 0) {
		reply(conn, BOP_AGENT_STARTED, errno, 0);
		return 1;
	}
	setpgid(pid, pid);
	close(errpipe[1]);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	do
		n = read(errpipe[0], &err, sizeof(err));
	while (n < 0 && errno == EINTR);
	close(errpipe[0]);
	if (n == (ssize_t)sizeof(err)) {
		waitpid(pid, NULL, 0);
		reply(conn, BOP_AGENT_STARTED, err ? err : EIO, 0);
		return 0;
	}
	reply(conn, BOP_AGENT_STARTED, 0, pid);
	watch(conn, sfd, pid);
	return 0;
}

/* ---- the listener ---- */

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static int listen_at(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	mode_t old;
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		say("the socket path %s is too long", path);
		return -1;
	}
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		say("cannot create a socket: %s", strerror(errno));
		return -1;
	}
	unlink(path);
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		say("cannot listen at %s: %s", path, strerror(errno));
		umask(old);
		close(fd);
		return -1;
	}
	umask(old);
	/* One other uid may connect: hand it the socket when we can, else open the mode (the
	 * peer's uid is still checked). */
	if (n_allowed > 0 && (n_allowed > 1 || allowed[0] != getuid())) {
		if (getuid() != 0 || n_allowed > 1 || chown(path, allowed[0], (gid_t)-1) < 0)
			chmod(path, 0666);
	}
	if (listen(fd, 16) < 0) {
		say("cannot listen at %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Copies this program to `dest` through a temporary file beside it. */
static int install(const char *self, const char *dest)
{
	char tmp[PATH_MAX], buf[65536];
	int in, out, ok = 1;
	ssize_t n;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", dest) >= (int)sizeof(tmp)) {
		say("the path %s is too long", dest);
		return 1;
	}
	in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (in < 0 && strchr(self, '/'))        /* no /proc: the path we were started by */
		in = open(self, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		say("cannot read /proc/self/exe or %s: %s", self, strerror(errno));
		return 1;
	}
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	if (out < 0) {
		say("cannot create %s: %s", tmp, strerror(errno));
		close(in);
		return 1;
	}
	while (ok && (n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		ok = n > 0 && write_all(out, buf, (size_t)n);
	}
	ok = ok && fchmod(out, 0755) == 0 && fsync(out) == 0;
	close(in);
	if (close(out) < 0 || !ok || rename(tmp, dest) < 0) {
		say("cannot install the agent at %s: %s", dest, strerror(errno));
		unlink(tmp);
		return 1;
	}
	say("installed at %s", dest);
	return 0;
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	struct sigaction sa = { 0 };
	int lfd;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--install") && i + 1 < argc && argc == 3) {
			return install(argv[0], argv[i + 1]);
		} else if (!strcmp(argv[i], "--socket") && i + 1 < argc) {
			path = argv[++i];
		} else if (!strcmp(argv[i], "--allow-uid") && i + 1 < argc) {
			char *end;
			unsigned long uid = strtoul(argv[++i], &end, 10);

			if (*end || end == argv[i] || uid >= UINT_MAX || n_allowed == MAX_ALLOWED)
				return usage();
			allowed[n_allowed++] = (uid_t)uid;
		} else {
			return usage();
		}
	}
	if (!path)
		return usage();
	/* Served connections and orphans are reaped by the kernel. */
	signal(SIGCHLD, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	lfd = listen_at(path);
	if (lfd < 0)
		return 1;
	say("listening at %s", path);
	while (!stop) {
		int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		pid_t pid;

		if (conn < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				say("accept: %s", strerror(errno));
			continue;
		}
		pid = fork();
		if (pid == 0) {
			close(lfd);
			signal(SIGTERM, SIG_DFL);
			signal(SIGINT, SIG_DFL);
			_exit(serve(conn));
		}
		if (pid < 0)
			say("cannot serve a connection: %s", strerror(errno));
		close(conn);
	}
	unlink(path);
	return 0;
}
