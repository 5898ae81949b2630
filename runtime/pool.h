/* pool.h -- libchain-private: the thread pool of the training loop and the
 * NLL evaluation (train.c), also what bench/bench.c times the kernels'
 * 2-thread rows with, so that the benchmark pays what training pays.
 *
 * The caller is thread 0, so one thread means no pthreads at all.  A job
 * wakes the workers by a generation counter.  A thread that waits (a
 * worker for the next job, the caller for the workers to finish) first
 * spins on the counter for up to CHAIN_POOL_SPIN_NS, and only then sleeps
 * on a condition variable; it spins only when the pool has no more threads
 * than the machine has CPUs (spinning where threads share a CPU would take
 * it from the thread being waited for).
 */
#ifndef CHAIN_POOL_H
#define CHAIN_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "chain/error.h"

/* How long a waiting thread spins before it sleeps.  On a virtual machine
 * a sleeping thread's CPU halts, and waking it again took 20-130 us a
 * barrier on the benchmark machine (KVM, 2 vCPUs), several times per
 * call of a kernel that runs 1-3 ms a thread. */
#define CHAIN_POOL_SPIN_NS 200000

typedef void (*chain_pool_fn)(void *arg, unsigned tid, unsigned nthreads);

typedef struct chain_pool chain_pool;
typedef struct chain_pool_worker {
	chain_pool *p;
	unsigned tid;
} chain_pool_worker;

struct chain_pool {
	unsigned n;                 /* threads, the caller included */
	unsigned started;           /* workers running (n - 1 once set up) */
	int spin;                   /* waits spin first (n <= online CPUs) */
	pthread_t *th;
	chain_pool_worker *w;
	pthread_mutex_t mu;         /* with go and done: the sleeping side of the waits */
	pthread_cond_t go, done;
	int sync_ready;
	_Atomic uint64_t gen;       /* incremented for every job (and to quit) */
	_Atomic unsigned pending;   /* workers still running the current job */
	_Atomic int quit;
	chain_pool_fn fn;           /* the current job: written before gen is incremented */
	void *arg;
};

/* Starts n - 1 workers.  A thread that cannot be started is an error rather
 * than a silent fallback: the thread count decides the summation order, so
 * it must be what the user asked for. */
int chain_pool_start(chain_pool *p, unsigned n, chain_error *err);

/* Runs fn(arg, tid, n) for tid = 0..n-1 (0 on the caller) and returns when
 * all are done. */
void chain_pool_run(chain_pool *p, chain_pool_fn fn, void *arg);

/* Stops and joins the workers; the pool can be started again. */
void chain_pool_stop(chain_pool *p);

#endif
