/*
 * The restore's output written on a thread of its own.
 *
 * A restore runs its stages on one thread: reading, the stored stream's hash, decryption,
 * decompression, then the write into the output file or pipe, which costs the kernel about
 * half as much as decompression does. The shell pipeline `age -d | zstd -d > FILE` spreads
 * the same work over two processes. With two cores or more, the restore hands its verified
 * chunks to this writer instead: the chunk is copied into a bounded ring and the thread
 * writes it out while the next one is decoded (256 MiB restored to a file on 2 cores:
 * 0.53 s -> 0.45 s).
 *
 * A failed write is reported by the next cli_writer_write() or by cli_writer_finish(),
 * with the message the sink gave; nothing after it is written. The caller commits the
 * sink only after cli_writer_finish() succeeded, and stops the thread (cli_writer_free)
 * before it aborts the sink.
 */
#include "cli.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RING_SIZE (2u << 20)
#define MAX_WRITE (256u << 10)
#define ABANDON_WAIT_MS 1000

struct cli_writer {
	pthread_mutex_t lock;
	pthread_cond_t cond;    /* data queued, room made, or the thread ended */
	pthread_t thread;
	bop_sink_t *sink;
	unsigned char *data;
	uint64_t head;          /* [tail, head) waits to be written, modulo RING_SIZE */
	uint64_t tail;
	bool stop;              /* write what is queued, then end */
	bool abandon;           /* end without writing what is queued */
	bool ended;             /* the thread returned */
	bool joined;
	int err;
	char msg[1024];
};

static void *writer_main(void *arg)
{
	cli_writer_t *w = arg;

	pthread_setname_np(pthread_self(), "bop-output");

	pthread_mutex_lock(&w->lock);
	for (;;) {
		size_t off, n;
		int ret;

		while (w->tail == w->head && !w->stop && !w->abandon)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->abandon || w->tail == w->head)
			break;
		off = (size_t)(w->tail % RING_SIZE);
		n = (size_t)(w->head - w->tail);
		if (n > RING_SIZE - off)
			n = RING_SIZE - off;
		if (n > MAX_WRITE)
			n = MAX_WRITE;
		pthread_mutex_unlock(&w->lock);
		/* [tail, head) is never overwritten by the producer: this runs unlocked. */
		ret = bop_sink_write(w->sink, w->data + off, n);
		pthread_mutex_lock(&w->lock);
		if (ret < 0) {
			w->err = ret;
			snprintf(w->msg, sizeof(w->msg), "%s", bop_error_last());
			break;
		}
		w->tail += n;
		pthread_cond_broadcast(&w->cond);
	}
	w->ended = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

bool cli_writer_wanted(void)
{
	return sysconf(_SC_NPROCESSORS_ONLN) >= 2;
}

int cli_writer_start(cli_writer_t **out, bop_sink_t *sink)
{
	cli_writer_t *w = calloc(1, sizeof(*w));

	*out = NULL;
	if (!w || !(w->data = malloc(RING_SIZE))) {
		free(w);
		return bop_error_set(BOP_ENOMEM, "out of memory for the output buffer");
	}
	w->sink = sink;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
		pthread_mutex_destroy(&w->lock);
		pthread_cond_destroy(&w->cond);
		free(w->data);
		free(w);
		return bop_error_set(BOP_ERROR, "cannot start the output thread");
	}
	*out = w;
	return 0;
}

/* The thread's failure, as this thread's error. Called locked, or after the join. */
static int writer_failed(const cli_writer_t *w)
{
	if (w->err < 0)
		return bop_error_set(w->err, w->msg);
	return bop_error_set(BOP_ERROR, "the output thread ended early");
}

/* The CLOCK_REALTIME time `ms` milliseconds from now. */
static struct timespec deadline_in(long ms)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000 * 1000;
	if (t.tv_nsec >= 1000 * 1000 * 1000) {
		t.tv_sec++;
		t.tv_nsec -= 1000 * 1000 * 1000;
	}
	return t;
}

/* Waits for room, at most 100 ms: a signal's flag is seen while the output is slow. */
static void wait_a_while(cli_writer_t *w)
{
	struct timespec until = deadline_in(100);

	pthread_cond_timedwait(&w->cond, &w->lock, &until);
}

int cli_writer_write(cli_writer_t *w, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	int ret = 0;

	pthread_mutex_lock(&w->lock);
	while (len > 0) {
		size_t off = (size_t)(w->head % RING_SIZE);
		size_t room = RING_SIZE - (size_t)(w->head - w->tail);
		size_t k = len;

		if (w->ended) {
			ret = writer_failed(w);
			break;
		}
		if (room == 0) {
			wait_a_while(w);
			if (cli_interrupted) {
				ret = BOP_ECANCELED;
				break;
			}
			continue;
		}
		if (k > room)
			k = room;
		if (k > RING_SIZE - off)
			k = RING_SIZE - off;
		pthread_mutex_unlock(&w->lock);
		/* [head, tail + RING_SIZE) is the producer's alone. */
		memcpy(w->data + off, p, k);
		pthread_mutex_lock(&w->lock);
		w->head += k;
		p += k;
		len -= k;
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	return ret;
}

/* Ends the thread: after what is queued was written, or (`abandon`) after the write under
 * way. A write to a reader that reads nothing never returns, so an abandoning join waits
 * ABANDON_WAIT_MS at most, and one that writes what is queued until a signal's flag is
 * set: false when the thread is still writing then. */
static bool writer_join(cli_writer_t *w, bool abandon)
{
	struct timespec until;
	int r;

	if (w->joined)
		return true;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	w->abandon = abandon;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	do {
		until = deadline_in(abandon ? ABANDON_WAIT_MS : 100);
		r = pthread_timedjoin_np(w->thread, NULL, &until);
	} while (r != 0 && !abandon && !cli_interrupted);
	if (r != 0)
		return false;
	w->joined = true;
	return true;
}

int cli_writer_finish(cli_writer_t *w)
{
	if (!writer_join(w, false))
		return bop_error_set(BOP_ECANCELED, "interrupted while the output was written");
	if (w->err < 0 || w->tail != w->head)
		return writer_failed(w);
	return 0;
}

bool cli_writer_free(cli_writer_t *w)
{
	if (!w)
		return true;
	if (!writer_join(w, true)) {
		/* Left to the process's exit: the thread still uses the ring and the sink. */
		return false;
	}
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w->data);
	free(w);
	return true;
}
