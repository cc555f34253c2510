/*
 * Child processes as sources (their stdout) and sinks (their stdin).
 *
 * Each command runs on a private libuv loop that is driven from the calling thread inside
 * read(), write(), commit() and close(): the loop runs until there is data, room, an exit
 * status or a deadline. Nothing runs in the background, so a slow consumer leaves the
 * child blocked on a full pipe (backpressure). The child's stderr is passed to the log line
 * by line while the loop runs. The child leads its own process group, so killing it also
 * kills what it started (a shell's children), and it never sees a clean end of input on
 * abort.
 *
 * The child is a small supervisor (a forked copy of this process) that starts the command
 * as the leader of a process group of its own and passes on its exit status. When this
 * process (or the thread that started it) dies, PR_SET_PDEATHSIG tells the supervisor,
 * which kills the command's whole group, so no producer or grandchild outlives a backupop
 * killed with SIGKILL; killing a command is asking the supervisor to do the same, then to
 * reap the command and die of SIGKILL. The command itself dies with the supervisor. The
 * supervisor's exit is watched through a pidfd.
 *
 * With an agent socket the command runs in another container instead, started by
 * backupop-exec-agent (pipeline/exec_agent.h), which gets the same three pipe ends and no
 * data: the connection to the agent takes the supervisor's place. Its start and exit
 * replies are read from the socket; killing is a 'K' byte (the agent also kills the
 * command's group when the connection drops, so it dies with this process).
 */
#include "internal.h"
#include "pipeline/exec_agent.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

extern char **environ;

#define PIPE_SIZE (1 << 20)
#define LOG_LINE_LEN 1024
#define LAST_LINE_LEN 512
#define NAME_LEN 60
#define WRITE_CHUNK (1u << 30)
/* After the child exits, how long its stderr may stay open (held by a grandchild). */
#define DRAIN_GRACE_MS 500
/* After a failed write, how long to wait for the exit status that explains it. */
#define EXIT_GRACE_MS 2000
/* How often the exit is checked where there is no pidfd (Linux before 5.3). */
#define EXIT_POLL_MS 20
/* How long the agent may take to come up (its container starts beside ours). */
#define AGENT_CONNECT_MS 5000
/* How long the agent may take to answer a start. */
#define AGENT_REPLY_MS 30000
/* How often a wait for the child checks whether the pipeline was canceled. */
#define CANCEL_POLL_MS 100

typedef struct command command_t;

typedef struct log_pipe {
	uv_pipe_t pipe;
	command_t *cmd;
	bop_log_level_t level;
	bool active;            /* the handle is initialized and not closed yet */
	bool eof;
	bool discard;           /* drop the rest of this line (it held a secret too long) */
	size_t len;
	char line[LOG_LINE_LEN + 1];
	char buf[16384];
} log_pipe_t;

struct command {
	uv_loop_t loop;
	bool loop_ready;
	pid_t pid;              /* the supervisor, leader of the command's process group */
	int pidfd;              /* readable when it has exited; -1 without pidfd support */
	uv_poll_t exit_poll;    /* on pidfd */
	bool exit_poll_active;
	uv_timer_t exit_timer;  /* without a pidfd: waitpid() every EXIT_POLL_MS */
	bool exit_timer_active;
	bool spawned;
	bool exited;
	bool timed_out;         /* the deadline passed */
	bool deadline_killed;   /* ... and the child was still running then */
	int64_t exit_status;
	int term_signal;
	/* with an agent: the command runs in the tools container */
	char *agent;            /* its socket's path; NULL: run here */
	int agent_fd;
	uv_poll_t agent_poll;
	bool agent_poll_active;
	bool agent_lost;        /* the connection ended without an exit reply */
	uv_pipe_t data;         /* the child's stdout (source) or stdin (sink) */
	bool data_active;
	bool data_eof;
	int data_error;         /* a libuv error while reading */
	log_pipe_t err;         /* the child's stderr: warnings */
	log_pipe_t out;         /* a sink's stdout: debug lines */
	uv_timer_t deadline;
	bool deadline_active;
	uv_timer_t grace;
	bool grace_active;
	bool grace_expired;
	uv_timer_t cancel_check;
	bool cancel_check_active;
	bool canceled;          /* the pipeline was canceled during a wait for the child */
	int64_t timeout_ms;
	char *name;             /* for messages: argv[0], or the shell script shortened */
	char *component;        /* for the log: the basename of argv[0], or "sh" */
	char last_line[LAST_LINE_LEN];
	/* source: the caller's buffer during a read */
	char *rbuf;
	size_t rcap;
	size_t rgot;
	/* sink: the write in flight */
	uv_write_t wreq;
	bool wdone;
	int wstatus;
};

typedef bool (*done_fn)(const command_t *c);

/* ---- running the loop ---- */

static void on_grace(uv_timer_t *timer)
{
	command_t *c = timer->data;

	c->grace_expired = true;
}

static void on_cancel_check(uv_timer_t *timer)
{
	command_t *c = timer->data;

	if (bop__cancel_requested())
		c->canceled = true;
}

/* Runs the loop until done(c), or for at most grace_ms when that is not 0; with
 * `cancelable`, while a pipeline runs on this thread, also until it is canceled
 * (c->canceled): a child that writes or reads nothing must not hold up a cancel. */
static void run_until_(command_t *c, done_fn done, uint64_t grace_ms, bool cancelable)
{
	bool watch;

	c->grace_expired = false;
	if (done(c))
		return;
	uv_update_time(&c->loop);
	if (grace_ms)
		uv_timer_start(&c->grace, on_grace, grace_ms, 0);
	watch = cancelable && !c->canceled && bop__cancel_watchable();
	if (watch)
		uv_timer_start(&c->cancel_check, on_cancel_check, CANCEL_POLL_MS, CANCEL_POLL_MS);
	while (!done(c) && !c->grace_expired && !(watch && c->canceled)) {
		if (uv_run(&c->loop, UV_RUN_ONCE) == 0)
			break;
	}
	uv_timer_stop(&c->grace);
	if (watch)
		uv_timer_stop(&c->cancel_check);
}

static void run_until(command_t *c, done_fn done, uint64_t grace_ms)
{
	run_until_(c, done, grace_ms, false);
}

/* Waits for data (or room for it), the end of the child, or a cancel of the pipeline. */
static void run_until_or_canceled(command_t *c, done_fn done)
{
	run_until_(c, done, 0, true);
}

static bool is_exited(const command_t *c)
{
	return c->exited;
}

static bool is_exited_or_late(const command_t *c)
{
	return c->exited || c->timed_out;
}

static bool logs_drained(const command_t *c)
{
	return (!c->err.active || c->err.eof) && (!c->out.active || c->out.eof);
}

static bool read_ready(const command_t *c)
{
	return c->rgot > 0 || c->data_eof || c->data_error || c->timed_out;
}

static bool failed_exit(const command_t *c)
{
	return c->exited && (c->exit_status != 0 || c->term_signal != 0);
}

static bool write_ready(const command_t *c)
{
	return c->wdone || c->timed_out || failed_exit(c);
}

static bool write_finished(const command_t *c)
{
	return c->wdone;
}

static void close_handle(uv_handle_t *handle, bool *active)
{
	if (*active && !uv_is_closing(handle))
		uv_close(handle, NULL);
	*active = false;
}

/* ---- the child's state ---- */

static void command_kill(command_t *c)
{
	if (!c->spawned || c->exited)
		return;
	if (c->agent) {
		char k = BOP_AGENT_KILL;

		if (send(c->agent_fd, &k, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1)
			shutdown(c->agent_fd, SHUT_WR);        /* a dropped connection kills too */
		return;
	}
	/* Not reaped yet, so the pid cannot have been reused. The supervisor kills the
	 * command's group, reaps the command and dies of SIGKILL. */
	kill(c->pid, SIGTERM);
}

static void command_kill_and_reap(command_t *c)
{
	command_kill(c);
	if (c->spawned)
		run_until(c, is_exited, 0);
}

/* Reaps the supervisor if it has exited. */
static void check_exit(command_t *c)
{
	int status;
	pid_t r;

	if (c->exited)
		return;
	do
		r = waitpid(c->pid, &status, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return;
	c->exited = true;
	if (r < 0) {
		c->exit_status = 127;   /* reaped elsewhere: no status to report */
	} else if (WIFSIGNALED(status)) {
		c->term_signal = WTERMSIG(status);
	} else {
		c->exit_status = WEXITSTATUS(status);
	}
	if (c->exit_poll_active)
		uv_poll_stop(&c->exit_poll);
	if (c->exit_timer_active)
		uv_timer_stop(&c->exit_timer);
	bop__log(BOP_LOG_DEBUG, "command", "'%s' (pid %d) ended: status %lld, signal %d",
		c->name, (int)c->pid, (long long)c->exit_status, c->term_signal);
}

static void on_exit_poll(uv_poll_t *poll, int status, int events)
{
	BOP_UNUSED(status);
	BOP_UNUSED(events);
	check_exit(poll->data);
}

static void on_exit_timer(uv_timer_t *timer)
{
	check_exit(timer->data);
}

static void on_deadline(uv_timer_t *timer)
{
	command_t *c = timer->data;

	c->timed_out = true;
	c->deadline_killed = c->spawned && !c->exited;
	command_kill(c);
}

static const char *last_line_sep(const command_t *c)
{
	return c->last_line[0] ? ": " : "";
}

static int timeout_error(command_t *c)
{
	command_kill_and_reap(c);
	return bop__error(BOP_ETIMEOUT, "command '%s' did not finish within %lld ms and was killed%s%s",
		c->name, (long long)c->timeout_ms, last_line_sep(c), c->last_line);
}

/* BOP_ECHILD for a non-zero exit or a signal, else 0. `when` qualifies the message. */
static int exit_error(const command_t *c, const char *when)
{
	if (c->agent_lost)
		return bop__error(BOP_ECHILD, "command '%s'%s: the connection to the tools container's agent at %s ended without its exit status (did the tools container stop?)%s%s",
			c->name, when, c->agent, last_line_sep(c), c->last_line);
	if (c->term_signal)
		return bop__error(BOP_ECHILD, "command '%s' was killed by signal %d (%s)%s%s%s",
			c->name, c->term_signal, strsignal(c->term_signal), when,
			last_line_sep(c), c->last_line);
	if (c->exit_status)
		return bop__error(BOP_ECHILD, "command '%s' exited with status %lld%s%s%s",
			c->name, (long long)c->exit_status, when, last_line_sep(c), c->last_line);
	return 0;
}

/* Ends the input or output, waits for the child and reports how it ended. */
static int command_finish(command_t *c)
{
	close_handle((uv_handle_t *)&c->data, &c->data_active);
	run_until(c, is_exited_or_late, 0);
	if (!c->exited || c->deadline_killed)
		return timeout_error(c);
	run_until(c, logs_drained, DRAIN_GRACE_MS);
	return exit_error(c, "");
}

/* ---- stderr (and a sink's stdout) to the log ---- */

static void log_line(log_pipe_t *lp)
{
	command_t *c = lp->cmd;
	size_t n = lp->len;

	while (n > 0 && (lp->line[n - 1] == '\r' || lp->line[n - 1] == ' ' ||
			lp->line[n - 1] == '\t'))
		n--;
	lp->line[n] = '\0';
	lp->len = 0;
	if (n == 0)
		return;
	bop__log(lp->level, c->component, "%s", lp->line);
	if (lp == &c->err) {
		if (n >= sizeof(c->last_line))
			n = sizeof(c->last_line) - 1;
		memcpy(c->last_line, lp->line, n);
		c->last_line[n] = '\0';
	}
}

/*
 * A line longer than the buffer goes to the log in parts. A part must not end in the
 * first bytes of a secret, which redaction cannot recognize without the rest: those bytes
 * start the next part. A buffer that is all the start of a secret drops the line's rest.
 */
static void log_long_line(log_pipe_t *lp)
{
	size_t tail = bop__secret_partial_tail(lp->line, lp->len);
	char carry[LOG_LINE_LEN];

	if (tail >= lp->len) {
		bop__log(lp->level, lp->cmd->component, "[a line too long to show]");
		lp->len = 0;
		lp->discard = true;
		return;
	}
	memcpy(carry, lp->line + lp->len - tail, tail);
	lp->len -= tail;
	log_line(lp);
	memcpy(lp->line, carry, tail);
	lp->len = tail;
}

static void log_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	log_pipe_t *lp = handle->data;

	BOP_UNUSED(suggested);
	*buf = uv_buf_init(lp->buf, sizeof(lp->buf));
}

static void log_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	log_pipe_t *lp = stream->data;

	if (nread < 0) {
		log_line(lp);
		lp->eof = true;
		uv_read_stop(stream);
		return;
	}
	for (ssize_t i = 0; i < nread; i++) {
		if (buf->base[i] == '\n') {
			if (!lp->discard)
				log_line(lp);
			lp->discard = false;
			continue;
		}
		if (lp->discard)
			continue;
		lp->line[lp->len++] = buf->base[i];
		if (lp->len == LOG_LINE_LEN)
			log_long_line(lp);
	}
}

/* ---- starting ---- */

static int check_options(const bop_command_options_t *opts)
{
	if (!opts)
		return bop__error(BOP_EINVAL, "no command options given");
	if (BOP__VERSION_CHECK("bop_command_options_t", NULL, opts->version, COMMAND_OPTIONS_VERSION) < 0)
		return BOP_EVERSION;
	if (!opts->argv || !opts->argv[0] || !opts->argv[0][0])
		return bop__error(BOP_EINVAL, "the command is empty (argv[0] is missing)");
	if (opts->timeout_ms < 0)
		return bop__error(BOP_EINVAL, "the command timeout must not be negative");
	return 0;
}

static int set_names(command_t *c, const bop_command_options_t *opts)
{
	const char *cmd = opts->argv[0];
	const char *slash = strrchr(cmd, '/');
	size_t n = strcspn(cmd, "\n");

	if (!opts->shell)
		c->name = bop__strdup(cmd);
	else if (n > NAME_LEN || cmd[n])
		c->name = bop__sprintf("%.*s...", (int)(n > NAME_LEN ? NAME_LEN : n), cmd);
	else
		c->name = bop__strdup(cmd);
	if (opts->shell)
		c->component = bop__strdup("sh");
	else
		c->component = bop__strdup(slash && slash[1] ? slash + 1 : cmd);
	return c->name && c->component ? 0 : BOP_ENOMEM;
}

static int check_cwd(const command_t *c, const char *cwd)
{
	struct stat st;

	if (!cwd)
		return 0;
	if (stat(cwd, &st) < 0)
		return bop__error_errno(BOP_ERROR, errno,
			"cannot use %s as the working directory of command '%s'", cwd, c->name);
	if (!S_ISDIR(st.st_mode))
		return bop__error(BOP_EINVAL,
			"cannot use %s as the working directory of command '%s': not a directory",
			cwd, c->name);
	return 0;
}

static bool same_name(const char *a, const char *b)
{
	size_t la = strcspn(a, "=");

	return la == strcspn(b, "=") && memcmp(a, b, la) == 0;
}

static bool overridden(const char *entry, const char *const *env, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (same_name(entry, env[i]))
			return true;
	}
	return false;
}

/* The child's environment; *out stays NULL when it is simply ours. Values are never
 * copied into messages. */
static int build_env(char ***out, const command_t *c, const bop_command_options_t *opts)
{
	size_t n_own = 0, n_ours = 0, k = 0;
	char **env;

	*out = NULL;
	for (; opts->env && opts->env[n_own]; n_own++) {
		const char *eq = strchr(opts->env[n_own], '=');

		if (!eq || eq == opts->env[n_own])
			return bop__error(BOP_EINVAL,
				"environment entry %zu of command '%s' is not of the form NAME=value",
				n_own + 1, c->name);
	}
	if (opts->inherit_env) {
		if (n_own == 0)
			return 0;
		while (environ && environ[n_ours])
			n_ours++;
	}
	env = bop__calloc(n_ours + n_own + 1, sizeof(*env));
	if (!env)
		return BOP_ENOMEM;
	for (size_t i = 0; i < n_ours; i++) {
		if (!overridden(environ[i], opts->env, n_own))
			env[k++] = environ[i];
	}
	for (size_t i = 0; i < n_own; i++)
		env[k++] = (char *)opts->env[i];
	*out = env;
	return 0;
}

/* argv, or /bin/sh -c script [sh args...] in shell mode. */
static int build_args(char ***out, const bop_command_options_t *opts)
{
	size_t n = 0, k = 0;
	char **args;

	while (opts->argv[n])
		n++;
	args = bop__calloc(n + 4, sizeof(*args));
	if (!args)
		return BOP_ENOMEM;
	if (opts->shell) {
		args[k++] = (char *)"/bin/sh";
		args[k++] = (char *)"-c";
		args[k++] = (char *)opts->argv[0];
		if (n > 1)
			args[k++] = (char *)"sh";
		for (size_t i = 1; i < n; i++)
			args[k++] = (char *)opts->argv[i];
	} else {
		for (size_t i = 0; i < n; i++)
			args[k++] = (char *)opts->argv[i];
	}
	*out = args;
	return 0;
}

/* A pipe whose far end (*child_fd) becomes one of the child's stdio. */
static int open_pipe(command_t *c, uv_pipe_t *pipe, bool *active, void *data, bool child_reads,
	int *child_fd)
{
	int fds[2], ours, r;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return bop__error_errno(BOP_ERROR, errno, "cannot create a pipe for command '%s'",
			c->name);
	ours = child_reads ? fds[1] : fds[0];
	*child_fd = child_reads ? fds[0] : fds[1];
	uv_pipe_init(&c->loop, pipe, 0);
	pipe->data = data;
	*active = true;
	r = uv_pipe_open(pipe, ours);
	if (r < 0) {
		close(ours);
		return bop__error(BOP_ERROR, "cannot set up a pipe for command '%s': %s", c->name,
			uv_strerror(r));
	}
	/* Fewer, larger transfers; the kernel may refuse, which only costs speed. */
	fcntl(ours, F_SETPIPE_SZ, PIPE_SIZE);
	return 0;
}

static int open_log_pipe(command_t *c, log_pipe_t *lp, bop_log_level_t level, int *child_fd)
{
	lp->cmd = c;
	lp->level = level;
	return open_pipe(c, &lp->pipe, &lp->active, lp, false, child_fd);
}

static int spawn_error(const command_t *c, const char *file, int r)
{
	if (r == UV_ENOENT)
		return bop__error(BOP_ENOTFOUND, "command '%s' not found (is it installed and in PATH?)",
			file);
	if (r == UV_EACCES)
		return bop__error(BOP_ERROR, "command '%s' cannot be run: permission denied", file);
	return bop__error(BOP_ERROR, "cannot start command '%s': %s", c->name, uv_strerror(r));
}

/* ---- the supervisor and the command, between fork() and exec(): async-signal-safe only ---- */

static void child_fail(int errfd, int err)
{
	ssize_t w = write(errfd, &err, sizeof(err));

	BOP_UNUSED(w);
	_exit(127);
}

/* Moves `fd` to stdio number `to` (fds 0..2 that are still needed were moved up before). */
static void child_stdio(int errfd, int fd, int to)
{
	if (fd == to) {
		if (fcntl(fd, F_SETFD, 0) < 0)
			child_fail(errfd, errno);
	} else if (dup2(fd, to) < 0) {
		child_fail(errfd, errno);
	}
}

/* The command: stdio in place, exec. It dies with its supervisor. */
static void run_command(pid_t supervisor, int fds[3], int errfd, char **args, char **env,
	const char *cwd)
{
	sigset_t none;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != supervisor)
		_exit(127);
	setpgid(0, 0);
	for (int i = 0; i < 3; i++) {
		if (fds[i] >= 0 && fds[i] < 3 && fds[i] != i &&
		    (fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3)) < 0)
			child_fail(errfd, errno);
	}
	if (fds[0] < 0 && (fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		child_fail(errfd, errno);
	for (int i = 0; i < 3; i++)
		child_stdio(errfd, fds[i], i);
	if (cwd && chdir(cwd) < 0)
		child_fail(errfd, errno);
	if (env)
		environ = env;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execvp(args[0], args);
	child_fail(errfd, errno);
}

/* Passes on how the command ended: the same exit status, or the same signal. */
static void supervisor_exit(int status)
{
	struct sigaction dfl;
	sigset_t one;
	int sig;

	if (!WIFSIGNALED(status))
		_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 127);
	sig = WTERMSIG(status);
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigaction(sig, &dfl, NULL);
	if (sig == SIGSEGV || sig == SIGABRT || sig == SIGBUS || sig == SIGQUIT ||
	    sig == SIGILL || sig == SIGFPE || sig == SIGSYS || sig == SIGTRAP) {
		struct rlimit none = { 0, 0 };

		setrlimit(RLIMIT_CORE, &none);  /* the command's core is its own business */
	}
	sigemptyset(&one);
	sigaddset(&one, sig);
	sigprocmask(SIG_UNBLOCK, &one, NULL);
	kill(getpid(), sig);
	_exit(128 + sig);
}

/* Kills the command's process group, reaps the command, and dies of SIGKILL. */
static void supervisor_kill(pid_t cmd)
{
	int status;

	kill(-cmd, SIGKILL);
	kill(cmd, SIGKILL);
	while (waitpid(cmd, &status, 0) < 0 && errno == EINTR)
		;
	kill(getpid(), SIGKILL);
	_exit(128 + SIGKILL);
}

/*
 * The supervisor, in a new session: when this process or the thread that forked it dies,
 * or when asked to (SIGTERM), it kills the command's group.
 */
static void supervise(pid_t parent, int fds[3], int errfd, char **args, char **env,
	const char *cwd)
{
	struct sigaction dfl;
	sigset_t all, wanted;
	pid_t cmd, self;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++) {
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL);
	}
	if (setsid() < 0)
		child_fail(errfd, errno);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)        /* the parent died before prctl(): no signal comes */
		_exit(127);
	self = getpid();
	cmd = fork();
	if (cmd < 0)
		child_fail(errfd, errno);
	if (cmd == 0)
		run_command(self, fds, errfd, args, env, cwd);
	setpgid(cmd, cmd);      /* also here, so that the group exists before any kill */
	/* Nothing of ours may hold the command's pipes (or the start error pipe) open. */
	close(errfd);
	for (int i = 0; i < 3; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
	}
	for (int fd = 0; fd < 3; fd++)
		close(fd);
	syscall(SYS_close_range, 3U, ~0U, 0U);
	sigemptyset(&wanted);
	sigaddset(&wanted, SIGCHLD);
	sigaddset(&wanted, SIGTERM);
	sigaddset(&wanted, SIGHUP);
	sigaddset(&wanted, SIGINT);
	for (;;) {
		int sig = sigwaitinfo(&wanted, NULL), status;

		if (sig == SIGCHLD) {
			if (waitpid(cmd, &status, WNOHANG) == cmd)
				supervisor_exit(status);
		} else if (sig > 0) {
			supervisor_kill(cmd);
		}
	}
}


/* ---- starting in the tools container, through the agent ---- */

static void on_agent_readable(uv_poll_t *poll, int status, int events)
{
	command_t *c = poll->data;
	bop_agent_reply_t r;
	ssize_t n;

	BOP_UNUSED(status);
	BOP_UNUSED(events);
	do
		n = recv(c->agent_fd, &r, sizeof(r), MSG_WAITALL);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n == (ssize_t)sizeof(r) && r.type == BOP_AGENT_EXITED) {
		c->exit_status = r.a;
		c->term_signal = r.b;
	} else {
		c->agent_lost = true;
		c->exit_status = 127;
	}
	c->exited = true;
	uv_poll_stop(&c->agent_poll);
	bop__log(BOP_LOG_DEBUG, "command", "'%s' in the tools container ended: status %lld, signal %d",
		c->name, (long long)c->exit_status, c->term_signal);
}

static int agent_unreachable(const command_t *c, int err)
{
	return bop__error_errno(BOP_ENOTFOUND, err,
		"the tools container's agent is not reachable at %s (is runner.tools set in the schedule, or engine.exec.tools.socket right?); command '%s' cannot run",
		c->agent, c->name);
}

/* Connects to the agent, waiting a while for it to come up. */
static int agent_connect(command_t *c)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int waited = 0, err;

	if (strlen(c->agent) >= sizeof(addr.sun_path))
		return bop__error(BOP_EINVAL, "the tools agent's socket path %s is too long", c->agent);
	strcpy(addr.sun_path, c->agent);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0)
			return bop__error_errno(BOP_ERROR, errno, "cannot create a socket");
		if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
			c->agent_fd = fd;
			return 0;
		}
		err = errno;
		close(fd);
		if ((err != ENOENT && err != ECONNREFUSED && err != EINTR) ||
		    waited >= AGENT_CONNECT_MS)
			return agent_unreachable(c, err);
		usleep(100 * 1000);
		waited += 100;
	}
}

/* The request's body: argc, envc, flags, then the strings. */
static char *agent_body(char **args, const bop_command_options_t *opts, size_t *len)
{
	bop_agent_request_t req = { 0, 0, 0 };
	size_t n = sizeof(req), pos;
	char *body;

	for (; args[req.argc]; req.argc++)
		n += strlen(args[req.argc]) + 1;
	for (; opts->env && opts->env[req.envc]; req.envc++)
		n += strlen(opts->env[req.envc]) + 1;
	if (opts->cwd)
		n += strlen(opts->cwd) + 1;
	req.flags = (opts->inherit_env ? BOP_AGENT_INHERIT_ENV : 0) |
		(opts->cwd ? BOP_AGENT_HAS_CWD : 0);
	if (n > BOP_AGENT_MAX_BODY) {
		bop__error(BOP_EINVAL, "the command's arguments and environment are too large (%zu bytes)", n);
		return NULL;
	}
	if (!(body = bop__calloc(1, n)))
		return NULL;
	memcpy(body, &req, sizeof(req));
	pos = sizeof(req);
	for (uint32_t i = 0; i < req.argc; i++)
		pos += (size_t)(stpcpy(body + pos, args[i]) - (body + pos)) + 1;
	for (uint32_t i = 0; i < req.envc; i++)
		pos += (size_t)(stpcpy(body + pos, opts->env[i]) - (body + pos)) + 1;
	if (opts->cwd)
		stpcpy(body + pos, opts->cwd);
	*len = n;
	return body;
}

static bool send_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

/* Sends the header with the three descriptors, then the body. */
static int agent_send(command_t *c, const int fds[3], const char *body, size_t len)
{
	bop_agent_header_t h = { BOP_AGENT_MAGIC_INIT, (uint32_t)len };
	union {
		char buf[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { &h, sizeof(h) };
	struct msghdr msg = { 0 };
	struct cmsghdr *cm;
	ssize_t n;

	memset(&u, 0, sizeof(u));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = u.buf;
	msg.msg_controllen = sizeof(u.buf);
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(3 * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, 3 * sizeof(int));
	do
		n = sendmsg(c->agent_fd, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(h) || !send_all(c->agent_fd, body, len))
		return bop__error_errno(BOP_ERROR, n < 0 ? errno : EPIPE,
			"the tools container's agent at %s refused command '%s' (is this process's uid allowed by its --allow-uid? see the tools container's log)",
			c->agent, c->name);
	return 0;
}

static int agent_start_reply(command_t *c, bop_agent_reply_t *r)
{
	struct pollfd pfd = { c->agent_fd, POLLIN, 0 };
	ssize_t n;
	int p;

	do
		p = poll(&pfd, 1, AGENT_REPLY_MS);
	while (p < 0 && errno == EINTR);
	if (p == 0)
		return bop__error(BOP_ETIMEOUT, "the tools container's agent at %s did not start command '%s' within %d s",
			c->agent, c->name, AGENT_REPLY_MS / 1000);
	do
		n = recv(c->agent_fd, r, sizeof(*r), MSG_WAITALL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(*r) || r->type != BOP_AGENT_STARTED)
		return bop__error(BOP_ERROR, "the tools container's agent at %s refused command '%s' (is this process's uid allowed by its --allow-uid? see the tools container's log)",
			c->agent, c->name);
	return 0;
}

static int agent_start_error(const command_t *c, const char *file, int err)
{
	if (err == ENOENT)
		return bop__error(BOP_ENOTFOUND, "command '%s' not found in the tools container (is it in the tools image and in its PATH, or is the working directory missing?)",
			file);
	if (err == EACCES)
		return bop__error(BOP_ERROR, "command '%s' cannot be run in the tools container: permission denied",
			file);
	return bop__error_errno(BOP_ERROR, err, "cannot start command '%s' in the tools container",
		c->name);
}

static int spawn_remote(command_t *c, const bop_command_options_t *opts, bool sink,
	const int child[3])
{
	int fds[3] = { sink ? child[0] : -1, child[1], child[2] };
	char **args = NULL, *body = NULL;
	bop_agent_reply_t r;
	size_t len = 0;
	int ret;

	if (!sink && (fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		return bop__error_errno(BOP_ERROR, errno, "cannot open /dev/null");
	ret = build_args(&args, opts);
	if (ret == 0 && !(body = agent_body(args, opts, &len)))
		ret = bop_error_last_code();
	if (ret == 0)
		ret = agent_connect(c);
	if (ret == 0)
		ret = agent_send(c, fds, body, len);
	if (ret == 0)
		ret = agent_start_reply(c, &r);
	if (ret == 0 && r.a != 0)
		ret = agent_start_error(c, args[0], r.a);
	if (ret == 0) {
		c->spawned = true;
		c->pid = r.b;
		uv_poll_init(&c->loop, &c->agent_poll, c->agent_fd);
		c->agent_poll.data = c;
		c->agent_poll_active = true;
		ret = uv_poll_start(&c->agent_poll, UV_READABLE | UV_DISCONNECT, on_agent_readable);
		if (ret < 0)
			ret = bop__error(BOP_ERROR, "cannot watch command '%s': %s", c->name,
				uv_strerror(ret));
		bop__log(BOP_LOG_DEBUG, "command", "started '%s' in the tools container (pid %d there)",
			c->name, (int)c->pid);
	}
	if (!sink)
		close(fds[0]);
	if (body)
		bop__wipe(body, len);
	free(body);
	free(args);
	return ret;
}

/* ---- starting ---- */

/* Reads the error of a failed start: 0 when the command was started. */
static int read_start_error(int fd)
{
	int err = 0;
	ssize_t n;

	do
		n = read(fd, &err, sizeof(err));
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(err) ? err : 0;
}

static int watch_exit(command_t *c)
{
	int r;

	c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
	if (c->pidfd >= 0) {
		fcntl(c->pidfd, F_SETFD, FD_CLOEXEC);
		r = uv_poll_init(&c->loop, &c->exit_poll, c->pidfd);
		if (r == 0) {
			c->exit_poll.data = c;
			c->exit_poll_active = true;
			r = uv_poll_start(&c->exit_poll, UV_READABLE, on_exit_poll);
		}
	} else {
		uv_timer_init(&c->loop, &c->exit_timer);
		c->exit_timer.data = c;
		c->exit_timer_active = true;
		r = uv_timer_start(&c->exit_timer, on_exit_timer, EXIT_POLL_MS, EXIT_POLL_MS);
	}
	if (r < 0)
		return bop__error(BOP_ERROR, "cannot watch command '%s': %s", c->name,
			uv_strerror(r));
	return 0;
}

static int spawn(command_t *c, const bop_command_options_t *opts, bool sink, const int child[3])
{
	char **args = NULL, **env = NULL;
	int fds[3] = { sink ? child[0] : -1, child[1], child[2] };
	int errpipe[2] = { -1, -1 }, err;
	pid_t parent = getpid();
	int ret;

	ret = build_args(&args, opts);
	if (ret < 0)
		goto out;
	ret = build_env(&env, c, opts);
	if (ret < 0)
		goto out;
	if (pipe2(errpipe, O_CLOEXEC) < 0) {
		ret = bop__error_errno(BOP_ERROR, errno, "cannot start command '%s'", c->name);
		goto out;
	}
	c->pid = fork();
	if (c->pid == 0)
		supervise(parent, fds, errpipe[1], args, env, opts->cwd);
	if (c->pid < 0) {
		ret = bop__error_errno(BOP_ERROR, errno, "cannot start command '%s'", c->name);
		goto out;
	}
	close(errpipe[1]);
	errpipe[1] = -1;
	err = read_start_error(errpipe[0]);
	if (err) {
		int status;

		while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
			;
		ret = spawn_error(c, args[0], -err);
		goto out;
	}
	c->spawned = true;
	ret = watch_exit(c);
	bop__log(BOP_LOG_DEBUG, "command", "started '%s' (pid %d)", c->name, (int)c->pid);
out:
	for (int i = 0; i < 2; i++) {
		if (errpipe[i] >= 0)
			close(errpipe[i]);
	}
	free(args);
	free(env);
	return ret;
}

static int start_reading_logs(command_t *c)
{
	log_pipe_t *pipes[] = { &c->err, &c->out };

	for (size_t i = 0; i < BOP_ARRAY_SIZE(pipes); i++) {
		int r;

		if (!pipes[i]->active)
			continue;
		r = uv_read_start((uv_stream_t *)&pipes[i]->pipe, log_alloc, log_read);
		if (r < 0)
			return bop__error(BOP_ERROR, "cannot read the output of command '%s': %s",
				c->name, uv_strerror(r));
	}
	return 0;
}

static int start_deadline(command_t *c)
{
	if (!c->timeout_ms)
		return 0;
	uv_update_time(&c->loop);
	uv_timer_start(&c->deadline, on_deadline, (uint64_t)c->timeout_ms, 0);
	return 0;
}

static int open_pipes(command_t *c, bool sink, int child[3])
{
	int ret;

	ret = open_pipe(c, &c->data, &c->data_active, c, sink, &child[sink ? 0 : 1]);
	if (ret == 0)
		ret = open_log_pipe(c, &c->err, BOP_LOG_WARN, &child[2]);
	if (ret == 0 && sink)
		ret = open_log_pipe(c, &c->out, BOP_LOG_DEBUG, &child[1]);
	return ret;
}

/* Starts the child. On failure the caller still calls command_destroy(). */
static int command_start(command_t *c, const bop_command_options_t *opts, bool sink)
{
	int child[3] = { -1, -1, -1 };        /* the child's ends, ours to close after spawning */
	int ret;

	c->timeout_ms = opts->timeout_ms;
	c->pidfd = -1;
	c->agent_fd = -1;
	ret = set_names(c, opts);
	if (ret == 0 && !c->agent)
		ret = check_cwd(c, opts->cwd);
	if (ret < 0)
		return ret;
	ret = uv_loop_init(&c->loop);
	if (ret < 0)
		return bop__error(BOP_ERROR, "cannot start command '%s': %s", c->name,
			uv_strerror(ret));
	c->loop_ready = true;
	uv_timer_init(&c->loop, &c->deadline);
	c->deadline.data = c;
	c->deadline_active = true;
	uv_timer_init(&c->loop, &c->grace);
	c->grace.data = c;
	c->grace_active = true;
	uv_timer_init(&c->loop, &c->cancel_check);
	c->cancel_check.data = c;
	c->cancel_check_active = true;
	ret = open_pipes(c, sink, child);
	if (ret == 0)
		ret = c->agent ? spawn_remote(c, opts, sink, child) : spawn(c, opts, sink, child);
	if (ret == 0)
		ret = start_reading_logs(c);
	if (ret == 0)
		ret = start_deadline(c);
	for (size_t i = 0; i < BOP_ARRAY_SIZE(child); i++) {
		if (child[i] >= 0)
			close(child[i]);
	}
	return ret;
}

static void command_destroy(command_t *c)
{
	if (c->loop_ready) {
		command_kill_and_reap(c);
		close_handle((uv_handle_t *)&c->exit_poll, &c->exit_poll_active);
		close_handle((uv_handle_t *)&c->exit_timer, &c->exit_timer_active);
		close_handle((uv_handle_t *)&c->agent_poll, &c->agent_poll_active);
		close_handle((uv_handle_t *)&c->data, &c->data_active);
		close_handle((uv_handle_t *)&c->err.pipe, &c->err.active);
		close_handle((uv_handle_t *)&c->out.pipe, &c->out.active);
		close_handle((uv_handle_t *)&c->deadline, &c->deadline_active);
		close_handle((uv_handle_t *)&c->grace, &c->grace_active);
		close_handle((uv_handle_t *)&c->cancel_check, &c->cancel_check_active);
		uv_run(&c->loop, UV_RUN_DEFAULT);
		if (c->pidfd >= 0)
			close(c->pidfd);
		if (c->agent_fd >= 0)
			close(c->agent_fd);
		if (uv_loop_close(&c->loop) != 0)
			bop__log(BOP_LOG_WARN, "command", "the event loop of '%s' did not close cleanly",
				c->name);
	}
	free(c->name);
	free(c->component);
	free(c->agent);
}

/* ---- source: the child's stdout ---- */

/* A command source (the child's stdout) or sink (its stdin). */
typedef struct command_io {
	union {
		bop_source_t source;
		bop_sink_t sink;
	} base;                 /* first: what the caller holds */
	command_t cmd;
	/* source */
	bool closed;
	int result;
	/* sink */
	bool done;              /* committed or aborted */
	bool committed;
	int failed;             /* a write failed with this code; message below */
	/* source: the error of close(), repeated by a second close(); sink: of the failed write */
	char *message;
} command_io_t;

static int cmd_source_read(bop_source_t *base, void *buf, size_t cap, size_t *got);
static int cmd_source_close(bop_source_t *base);
static void cmd_source_free(bop_source_t *base);
static int cmd_sink_write(bop_sink_t *base, const void *buf, size_t len);
static int cmd_sink_commit(bop_sink_t *base);
static void cmd_sink_abort(bop_sink_t *base);
static void cmd_sink_free(bop_sink_t *base);

/* The constructors' common part: checks the options, starts the command, *out is the
 * source or sink (`is_sink`). */
static int command_io_new(const bop_command_options_t *opts, bool is_sink, const char *agent,
	command_io_t **out)
{
	command_io_t *io;
	int ret;

	*out = NULL;
	if ((ret = check_options(opts)) < 0)
		return ret;
	io = bop__calloc(1, sizeof(*io));
	if (!io)
		return BOP_ENOMEM;
	if (is_sink)
		io->base.sink = (bop_sink_t)BOP_SINK_INIT(.write = cmd_sink_write,
			.commit = cmd_sink_commit, .abort = cmd_sink_abort, .free = cmd_sink_free);
	else
		io->base.source = (bop_source_t)BOP_SOURCE_INIT(.read = cmd_source_read,
			.close = cmd_source_close, .free = cmd_source_free);
	if (agent && !(io->cmd.agent = bop__strdup(agent))) {
		free(io);
		return BOP_ENOMEM;
	}
	if ((ret = command_start(&io->cmd, opts, is_sink)) < 0) {
		/* Nothing was written or read: no abort needed. */
		command_destroy(&io->cmd);
		free(io);
		return ret;
	}
	*out = io;
	return 0;
}

static void data_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	command_t *c = handle->data;
	size_t room = c->rcap - c->rgot;

	BOP_UNUSED(suggested);
	*buf = uv_buf_init(c->rbuf + c->rgot, room > UINT_MAX ? UINT_MAX : (unsigned int)room);
}

static void data_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	command_t *c = stream->data;

	BOP_UNUSED(buf);
	if (nread == UV_EOF)
		c->data_eof = true;
	else if (nread < 0)
		c->data_error = (int)nread;
	else
		c->rgot += (size_t)nread;
	/* Stop when the buffer is full: the child waits on a full pipe meanwhile. */
	if (nread < 0 || c->rgot == c->rcap)
		uv_read_stop(stream);
}

static int cmd_source_read(bop_source_t *base, void *buf, size_t cap, size_t *got)
{
	command_io_t *s = (command_io_t *)base;
	command_t *c = &s->cmd;
	int r;

	if (s->closed)
		return bop__error(BOP_EINVAL, "command '%s': read after close", c->name);
	if (cap == 0)
		return bop__error(BOP_EINVAL, "bop_source_read: the buffer is empty");
	if (c->data_eof)
		return 0;
	c->rbuf = buf;
	c->rcap = cap;
	c->rgot = 0;
	r = uv_read_start((uv_stream_t *)&c->data, data_alloc, data_read);
	if (r < 0)
		return bop__error(BOP_EIO, "cannot read the output of command '%s': %s", c->name,
			uv_strerror(r));
	run_until_or_canceled(c, read_ready);
	uv_read_stop((uv_stream_t *)&c->data);
	c->rbuf = NULL;
	if (c->canceled && !read_ready(c)) {
		command_kill(c);
		return bop__error(BOP_ECANCELED, "the operation was canceled while command '%s' "
			"had written nothing yet; it was stopped", c->name);
	}
	if (c->timed_out)
		return timeout_error(c);
	if (c->data_error)
		return bop__error(BOP_EIO, "reading the output of command '%s' failed: %s", c->name,
			uv_strerror(c->data_error));
	if (!read_ready(c))
		return bop__error(BOP_EIO, "reading the output of command '%s' stopped unexpectedly",
			c->name);
	*got = c->rgot;
	return 0;
}

static int cmd_source_close(bop_source_t *base)
{
	command_io_t *s = (command_io_t *)base;

	if (s->closed)
		return s->result < 0 ? bop__error(s->result, "%s", s->message ? s->message : "")
			: 0;
	s->closed = true;
	/* Output nobody will read must not keep the child blocked on a full pipe. */
	s->result = command_finish(&s->cmd);
	if (s->result < 0)
		s->message = bop__strdup(bop_error_last());
	return s->result;
}

static void cmd_source_free(bop_source_t *base)
{
	command_io_t *s = (command_io_t *)base;

	if (!s)
		return;
	command_destroy(&s->cmd);
	free(s->message);
	free(s);
}

BOP_EXTERN(int) bop_source_command_new(bop_source_t **out, const bop_command_options_t *opts)
{
	command_io_t *io;
	int ret;

	if (!out)
		return bop__error(BOP_EINVAL, "bop_source_command_new: NULL out");
	ret = command_io_new(opts, false, NULL, &io);
	*out = ret == 0 ? &io->base.source : NULL;
	return ret;
}

int bop__source_command_agent_new(bop_source_t **out, const bop_command_options_t *opts,
	const char *agent_socket)
{
	command_io_t *io;
	int ret;

	ret = command_io_new(opts, false, agent_socket, &io);
	*out = ret == 0 ? &io->base.source : NULL;
	return ret;
}

/* ---- sink: the child's stdin ---- */


/*
 * Writing to a pipe whose reader is gone raises SIGPIPE, which would kill the process.
 * A library must not change the process's signal handling, so SIGPIPE is blocked in this
 * thread around the writes and one raised by them is consumed before unblocking; the
 * write itself fails with EPIPE.
 */
typedef struct sigpipe_guard {
	sigset_t old;
	bool was_pending;
} sigpipe_guard_t;

static bool sigpipe_pending(void)
{
	sigset_t pending;

	sigemptyset(&pending);
	return sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
}

static void sigpipe_block(sigpipe_guard_t *g)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	g->was_pending = sigpipe_pending();
	pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

static void sigpipe_unblock(sigpipe_guard_t *g)
{
	static const struct timespec zero = { 0, 0 };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	if (!g->was_pending && sigpipe_pending()) {
		while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

static void on_write(uv_write_t *req, int status)
{
	command_t *c = req->data;

	c->wdone = true;
	c->wstatus = status;
}

/* Why a write failed, preferably from the child's exit status. */
static int write_error(command_t *c, int status)
{
	int ret;

	if (c->timed_out)
		return timeout_error(c);
	run_until(c, is_exited, EXIT_GRACE_MS);
	if (c->exited) {
		run_until(c, logs_drained, DRAIN_GRACE_MS);
		ret = exit_error(c, " before reading all its input");
		if (ret < 0)
			return ret;
		return bop__error(BOP_EIO, "command '%s' exited before reading all its input%s%s",
			c->name, last_line_sep(c), c->last_line);
	}
	return bop__error(BOP_EIO, "writing to command '%s' failed: %s (it stopped reading its input)",
		c->name, uv_strerror(status));
}

static int write_chunk(command_t *c, const char *p, size_t n)
{
	uv_buf_t buf = uv_buf_init((char *)p, (unsigned int)n);
	int r;

	c->wdone = false;
	c->wstatus = 0;
	c->wreq.data = c;
	r = uv_write(&c->wreq, (uv_stream_t *)&c->data, &buf, 1, on_write);
	if (r < 0)
		return write_error(c, r);
	run_until_or_canceled(c, write_ready);
	if (!c->wdone) {
		/* Closing cancels the write, whose callback must run before `p` goes away. */
		close_handle((uv_handle_t *)&c->data, &c->data_active);
		run_until(c, write_finished, 0);
		if (c->canceled) {
			command_kill(c);
			return bop__error(BOP_ECANCELED, "the operation was canceled while command "
				"'%s' was not reading its input; it was stopped", c->name);
		}
		return write_error(c, UV_EPIPE);
	}
	if (c->wstatus < 0)
		return write_error(c, c->wstatus);
	return 0;
}

static int cmd_sink_write(bop_sink_t *base, const void *buf, size_t len)
{
	command_io_t *s = (command_io_t *)base;
	command_t *c = &s->cmd;
	const char *p = buf;
	sigpipe_guard_t guard;
	int ret = 0;

	if (s->done)
		return bop__error(BOP_EINVAL, "command '%s': write after commit or abort", c->name);
	if (s->failed)
		return bop__error(s->failed, "%s", s->message ? s->message : "");
	sigpipe_block(&guard);
	while (len > 0 && ret == 0) {
		size_t n = len > WRITE_CHUNK ? WRITE_CHUNK : len;

		ret = write_chunk(c, p, n);
		p += n;
		len -= n;
	}
	sigpipe_unblock(&guard);
	if (ret < 0) {
		s->failed = ret;
		s->message = bop__strdup(bop_error_last());
	}
	return ret;
}

static int cmd_sink_commit(bop_sink_t *base)
{
	command_io_t *s = (command_io_t *)base;

	if (s->committed)
		return 0;
	if (s->done)
		return bop__error(BOP_EINVAL, "command '%s' was aborted or failed; it cannot be committed",
			s->cmd.name);
	if (s->failed)
		return bop__error(s->failed, "%s", s->message ? s->message : "");
	s->done = true;
	/* Closing stdin is the end of input the child waits for. */
	if (command_finish(&s->cmd) < 0)
		return bop_error_last_code();
	s->committed = true;
	return 0;
}

static void cmd_sink_abort(bop_sink_t *base)
{
	command_io_t *s = (command_io_t *)base;
	command_t *c = &s->cmd;

	if (s->done)
		return;
	s->done = true;
	/* Killed before its stdin is closed, so it never sees a clean end of input. */
	if (c->spawned && !c->exited)
		bop__log(BOP_LOG_DEBUG, "command", "killing '%s': the output was aborted", c->name);
	command_kill_and_reap(c);
	close_handle((uv_handle_t *)&c->data, &c->data_active);
}

static void cmd_sink_free(bop_sink_t *base)
{
	command_io_t *s = (command_io_t *)base;

	if (!s)
		return;
	cmd_sink_abort(base);
	command_destroy(&s->cmd);
	free(s->message);
	free(s);
}

BOP_EXTERN(int) bop_sink_command_new(bop_sink_t **out, const bop_command_options_t *opts)
{
	command_io_t *io;
	int ret;

	if (!out)
		return bop__error(BOP_EINVAL, "bop_sink_command_new: NULL out");
	ret = command_io_new(opts, true, NULL, &io);
	*out = ret == 0 ? &io->base.sink : NULL;
	return ret;
}

int bop__sink_command_agent_new(bop_sink_t **out, const bop_command_options_t *opts,
	const char *agent_socket)
{
	command_io_t *io;
	int ret;

	ret = command_io_new(opts, true, agent_socket, &io);
	*out = ret == 0 ? &io->base.sink : NULL;
	return ret;
}
