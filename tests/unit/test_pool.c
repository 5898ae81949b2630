/* test_pool.c -- runtime/pool.c, the thread pool of the training loop and
 * the benchmark: every job runs once on every thread, with its own tid and
 * the pool size, and chain_pool_run returns only after all of them are
 * done; through both sides of each wait (the spin, and the sleep after
 * it), with as many threads as CPUs and more, and after a stop and a new
 * start.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../runtime/pool.h"

#define MAXN 8

typedef struct job {
	unsigned n;
	long runs[MAXN];      /* per tid, written by that thread only */
	unsigned bad_n;       /* calls that saw another pool size */
	long slow_every;      /* every so many jobs, tid 1.. sleeps past the spin */
	long job;
} job;

static void sleep_us(long us)
{
	struct timespec ts = { 0, us * 1000 };
	nanosleep(&ts, NULL);
}

static void count(void *arg, unsigned tid, unsigned n)
{
	job *j = arg;
	if (n != j->n)
		j->bad_n++; /* a failure either way; racy only if it happens */
	if (tid > 0 && j->slow_every && j->job % j->slow_every == 0)
		sleep_us(3 * CHAIN_POOL_SPIN_NS / 1000);
	j->runs[tid]++;
}

/* jobs back to back, jobs whose workers outlast the caller's spin, and
 * gaps between jobs that outlast the workers' spin */
static void run_jobs(chain_pool *p, unsigned n)
{
	static job j;
	memset(&j, 0, sizeof j);
	j.n = n;
	const long jobs = 600;
	for (j.job = 0; j.job < jobs; j.job++) {
		j.slow_every = j.job >= 200 && j.job < 400 ? 7 : 0;
		chain_pool_run(p, count, &j);
		for (unsigned t = 0; t < n; t++)
			if (j.runs[t] != j.job + 1)
				fail_msg("%u threads, job %ld: thread %u ran %ld jobs", n, j.job, t, j.runs[t]);
		if (j.job >= 400 && j.job % 5 == 0)
			sleep_us(3 * CHAIN_POOL_SPIN_NS / 1000);
	}
	for (unsigned t = n; t < MAXN; t++)
		assert_int_equal(j.runs[t], 0);
	assert_int_equal(j.bad_n, 0);
}

static void test_pool__any_size__every_thread_runs_every_job_once(void **state)
{
	(void)state;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned sizes[] = { 1, 2, 3, (unsigned)(cpus + 1 < MAXN ? cpus + 1 : MAXN) };
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		chain_pool p;
		chain_error err;
		assert_int_equal(chain_pool_start(&p, sizes[i], &err), 0);
		assert_int_equal(p.n, sizes[i]);
		run_jobs(&p, sizes[i]);
		chain_pool_stop(&p);
		/* and again on a restarted pool */
		assert_int_equal(chain_pool_start(&p, sizes[i], &err), 0);
		run_jobs(&p, sizes[i]);
		chain_pool_stop(&p);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool__any_size__every_thread_runs_every_job_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
