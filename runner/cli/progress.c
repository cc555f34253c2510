/* The progress line on a terminal, sizes for people, and interruption by signals. */
#include "cli.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t cli_interrupted;
bop_catalog_t *volatile cli_cancel_catalog;

double cli_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cli_format_size(char *buf, size_t len, uint64_t bytes)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024) {
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
		return;
	}
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, units[u]);
}

void cli_progress_start(cli_progress_t *p, const char *verb, bool quiet)
{
	memset(p, 0, sizeof(*p));
	p->enabled = !quiet && isatty(STDERR_FILENO);
	p->verb = verb;
	p->start = cli_now();
}

/* bop_progress_cb: the pipeline calls it about once a second and once at the end. */
void cli_progress_update(uint64_t bytes_in, uint64_t bytes_out, void *payload)
{
	cli_progress_t *p = payload;
	char in[32], out[32], rate[32];
	double elapsed;

	if (!p->enabled)
		return;
	elapsed = cli_now() - p->start;
	cli_format_size(in, sizeof(in), bytes_in);
	cli_format_size(out, sizeof(out), bytes_out);
	cli_format_size(rate, sizeof(rate),
		elapsed > 0.001 ? (uint64_t)((double)bytes_in / elapsed) : 0);
	fprintf(stderr, "\r\033[K%s: %s in, %s out, %s/s, %.0f s", p->verb, in, out, rate,
		elapsed);
	fflush(stderr);
	p->shown = true;
}

void cli_progress_end(cli_progress_t *p)
{
	if (p->shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
	p->shown = false;
}

/* The first SIGINT/SIGTERM asks the operation to stop at its next read or write (the
 * partial data is then removed); a second one ends the process at once. */
static void on_signal(int sig)
{
	if (cli_interrupted) {
		signal(sig, SIG_DFL);
		raise(sig);
	}
	cli_interrupted = 1;
	if (cli_cancel_catalog)
		bop_catalog_cancel(cli_cancel_catalog);
}

void cli_install_signal_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}
