/* pool.c -- the thread pool of train.c and bench/bench.c (pool.h).
 *
 * The caller publishes a job (fn, arg, pending = n - 1) and increments the
 * generation under the mutex, broadcasting go; a worker that sees the new
 * generation runs the job and decrements pending, and the one that brings
 * it to 0 signals done under the mutex.  Both waits spin on the atomics
 * first (pool.h says why and for how long), then sleep on their condition
 * variable, whose predicate they check under the mutex, so no wake-up is
 * lost: the caller changes gen under the mutex, and a worker that finds
 * pending at 0 takes the mutex before it signals.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pool.h"

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield" ::: "memory")
#else
#define CPU_RELAX() ((void)0)
#endif

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Every 64 turns of a spin: 1 when its time is up, else 0 after a
 * sched_yield, which hands the CPU to any other thread ready to run on it
 * (the one waited for, when the machine is busier than the pool thought)
 * and returns at once when there is none, keeping the CPU awake. */
static int yield_until(int64_t end)
{
	if (now_ns() > end)
		return 1;
	sched_yield();
	return 0;
}

/* Spins until gen differs from seen or CHAIN_POOL_SPIN_NS pass; returns
 * the last gen read. */
static uint64_t spin_gen(chain_pool *p, uint64_t seen)
{
	uint64_t g = atomic_load_explicit(&p->gen, memory_order_acquire);
	if (g != seen || !p->spin)
		return g;
	int64_t end = now_ns() + CHAIN_POOL_SPIN_NS;
	for (unsigned i = 1;; i++) {
		CPU_RELAX();
		g = atomic_load_explicit(&p->gen, memory_order_acquire);
		if (g != seen || (i % 64 == 0 && yield_until(end)))
			return g;
	}
}

/* Spins until pending is 0 or CHAIN_POOL_SPIN_NS pass; returns it. */
static unsigned spin_pending(chain_pool *p)
{
	unsigned k = atomic_load_explicit(&p->pending, memory_order_acquire);
	if (k == 0 || !p->spin)
		return k;
	int64_t end = now_ns() + CHAIN_POOL_SPIN_NS;
	for (unsigned i = 1;; i++) {
		CPU_RELAX();
		k = atomic_load_explicit(&p->pending, memory_order_acquire);
		if (k == 0 || (i % 64 == 0 && yield_until(end)))
			return k;
	}
}

/* A worker: wait for a new generation, run the job, report, repeat. */
static void *worker_main(void *a)
{
	chain_pool_worker *w = a;
	chain_pool *p = w->p;
	uint64_t seen = 0;
	for (;;) {
		uint64_t g = spin_gen(p, seen);
		if (g == seen) {
			pthread_mutex_lock(&p->mu);
			while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen)
				pthread_cond_wait(&p->go, &p->mu);
			pthread_mutex_unlock(&p->mu);
		}
		if (atomic_load_explicit(&p->quit, memory_order_relaxed))
			break;
		seen = g;
		p->fn(p->arg, w->tid, p->n);
		if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
			pthread_mutex_lock(&p->mu);
			pthread_cond_signal(&p->done);
			pthread_mutex_unlock(&p->mu);
		}
	}
	return NULL;
}

/* The next generation, under the mutex, with go broadcast. */
static void publish(chain_pool *p)
{
	pthread_mutex_lock(&p->mu);
	atomic_store_explicit(&p->gen, atomic_load_explicit(&p->gen, memory_order_relaxed) + 1,
	                      memory_order_release);
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->mu);
}

void chain_pool_stop(chain_pool *p)
{
	if (p->sync_ready) {
		atomic_store_explicit(&p->quit, 1, memory_order_relaxed);
		publish(p);
		for (unsigned i = 0; i < p->started; i++)
			pthread_join(p->th[i], NULL);
		pthread_cond_destroy(&p->go);
		pthread_cond_destroy(&p->done);
		pthread_mutex_destroy(&p->mu);
	}
	free(p->th);
	free(p->w);
	memset(p, 0, sizeof *p);
}

int chain_pool_start(chain_pool *p, unsigned n, chain_error *err)
{
	memset(p, 0, sizeof *p);
	p->n = n;
	if (n <= 1)
		return 0;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	p->spin = cpus >= (long)n;
	p->th = calloc(n - 1, sizeof *p->th);
	p->w = calloc(n - 1, sizeof *p->w);
	if (!p->th || !p->w) {
		chain_pool_stop(p);
		return chain_error_set(err, "out of memory starting %u threads", n);
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->go, NULL);
	pthread_cond_init(&p->done, NULL);
	p->sync_ready = 1;
	for (unsigned i = 0; i + 1 < n; i++) {
		p->w[i].p = p;
		p->w[i].tid = i + 1;
		int rc = pthread_create(&p->th[i], NULL, worker_main, &p->w[i]);
		if (rc != 0) {
			chain_pool_stop(p);
			return chain_error_set(err, "cannot start thread %u of %u: %s (try a smaller --threads)",
			                       i + 2, n, strerror(rc));
		}
		p->started++;
	}
	return 0;
}

void chain_pool_run(chain_pool *p, chain_pool_fn fn, void *arg)
{
	if (p->n <= 1) {
		fn(arg, 0, 1);
		return;
	}
	/* the workers have finished the last job (pending reached 0 with
	 * acq_rel), so fn and arg are the caller's to write */
	p->fn = fn;
	p->arg = arg;
	atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
	publish(p);
	fn(arg, 0, p->n);
	if (spin_pending(p) != 0) {
		pthread_mutex_lock(&p->mu);
		while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0)
			pthread_cond_wait(&p->done, &p->mu);
		pthread_mutex_unlock(&p->mu);
	}
}
