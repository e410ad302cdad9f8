/*
 * auditpool.c - the audit's worker threads (auditpriv.h).
 *
 * One queue of jobs under one mutex.  A folder enters as a "prepare"
 * job at the back: the worker that takes it reads the folder's meta
 * files and lists its messages, then splits the hashing into chunks of
 * AUDIT_CHUNK files, queues all but the first at the front (so folders
 * already started finish first and the caller's in-order window moves)
 * and hashes the first itself.  Whoever finishes a folder's last chunk
 * turns its results into findings and marks it done.
 *
 * With one job there are no threads: ids_pool_wait() runs the queue in the
 * caller's thread, so "-j 1" really uses one core.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "auditpriv.h"

struct job {
	struct afolder *f;
	size_t start, end;
	int prepare;
};

struct pool {
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	struct job *q;		/* a ring of cap jobs */
	size_t head, len, cap;
	pthread_t *th;
	int nth;
	int stop;
	struct hasher *own;	/* the caller's, without threads */
};

/* Under p->mu. */
static int
queue_grow(struct pool *p)
{
	struct job *q;
	size_t i, cap = p->cap ? 2 * p->cap : 64;

	if ((q = malloc(cap * sizeof(*q))) == NULL)
		return -ENOMEM;
	for (i = 0; i < p->len; i++)
		q[i] = p->q[(p->head + i) % p->cap];
	free(p->q);
	p->q = q;
	p->head = 0;
	p->cap = cap;
	return 0;
}

/* Under p->mu: at the front (chunks) or the back (new folders). */
static int
queue_push(struct pool *p, const struct job *j, int front)
{
	int r;

	if (p->len == p->cap && (r = queue_grow(p)) < 0)
		return r;
	if (front) {
		p->head = (p->head + p->cap - 1) % p->cap;
		p->q[p->head] = *j;
	} else {
		p->q[(p->head + p->len) % p->cap] = *j;
	}
	p->len++;
	return 0;
}

static struct job
queue_pop(struct pool *p)
{
	struct job j = p->q[p->head];

	p->head = (p->head + 1) % p->cap;
	p->len--;
	return j;
}

static void
folder_done(struct pool *p, struct afolder *f)
{
	ids_folder_finish(f);
	pthread_mutex_lock(&p->mu);
	f->done = 1;
	pthread_cond_broadcast(&p->done);
	pthread_mutex_unlock(&p->mu);
}

static void
run_chunk(struct pool *p, struct hasher *h, struct afolder *f, size_t s, size_t e)
{
	unsigned long files = 0;
	unsigned long long bytes = 0;
	int last;

	ids_folder_hash(f, h, s, e, &files, &bytes);
	pthread_mutex_lock(&p->mu);
	f->messages += files;
	f->bytes += bytes;
	last = --f->pending == 0;
	pthread_mutex_unlock(&p->mu);
	if (last)
		folder_done(p, f);
}

/* Under p->mu: room for n more jobs. */
static int
queue_reserve(struct pool *p, size_t n)
{
	int r;

	while (p->len + n > p->cap)
		if ((r = queue_grow(p)) < 0)
			return r;
	return 0;
}

/* Prepares f and queues its chunks; hashes the first one itself. */
static void
run_prepare(struct pool *p, struct hasher *h, struct afolder *f)
{
	struct job j = { f, 0, 0, 0 };
	size_t n, i, nchunks, first_end;

	ids_folder_prepare(f);
	if ((n = ids_folder_nwork(f)) == 0) {
		folder_done(p, f);
		return;
	}
	nchunks = (n + AUDIT_CHUNK - 1) / AUDIT_CHUNK;
	first_end = n < AUDIT_CHUNK ? n : AUDIT_CHUNK;
	pthread_mutex_lock(&p->mu);
	if (queue_reserve(p, nchunks - 1) < 0) {
		nchunks = 1;	/* out of memory: this thread hashes it all */
		first_end = n;
	}
	f->pending = nchunks;
	/* Backwards, so that the chunks come off the front in order. */
	for (i = nchunks - 1; i >= 1; i--) {
		j.start = i * AUDIT_CHUNK;
		j.end = j.start + AUDIT_CHUNK < n ? j.start + AUDIT_CHUNK : n;
		(void)queue_push(p, &j, 1);
	}
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	run_chunk(p, h, f, 0, first_end);
}

static void
run_job(struct pool *p, struct hasher *h, const struct job *j)
{
	if (j->prepare)
		run_prepare(p, h, j->f);
	else
		run_chunk(p, h, j->f, j->start, j->end);
}

static void *
worker(void *arg)
{
	struct pool *p = arg;
	struct hasher *h = ids_hasher_new();
	struct job j;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->len == 0 && !p->stop)
			pthread_cond_wait(&p->work, &p->mu);
		if (p->len == 0)
			break;
		j = queue_pop(p);
		pthread_mutex_unlock(&p->mu);
		run_job(p, h, &j);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	ids_hasher_free(h);
	return NULL;
}

int
ids_pool_new(int jobs, struct pool **pp)
{
	struct pool *p = calloc(1, sizeof(*p));
	int i, r;

	if (p == NULL)
		return -ENOMEM;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	*pp = p;
	if (jobs <= 1)
		return (p->own = ids_hasher_new()) ? 0 : -ENOMEM;
	if ((p->th = calloc((size_t)jobs, sizeof(*p->th))) == NULL)
		return -ENOMEM;
	for (i = 0; i < jobs; i++) {
		if ((r = pthread_create(&p->th[i], NULL, worker, p)) != 0)
			return -r;
		p->nth++;
	}
	return 0;
}

void
ids_pool_free(struct pool *p)
{
	int i;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->nth; i++)
		pthread_join(p->th[i], NULL);
	ids_hasher_free(p->own);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->mu);
	free(p->th);
	free(p->q);
	free(p);
}

int
ids_pool_submit(struct pool *p, struct afolder *f)
{
	struct job j = { f, 0, 0, 1 };
	int r;

	pthread_mutex_lock(&p->mu);
	if ((r = queue_push(p, &j, 0)) == 0)
		pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->mu);
	return r;
}

void
ids_pool_wait(struct pool *p, struct afolder *f)
{
	struct job j;

	pthread_mutex_lock(&p->mu);
	while (!f->done) {
		if (p->nth > 0) {
			pthread_cond_wait(&p->done, &p->mu);
			continue;
		}
		j = queue_pop(p);	/* without threads the queue holds f's jobs */
		pthread_mutex_unlock(&p->mu);
		run_job(p, p->own, &j);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
}
