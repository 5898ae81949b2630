/* bench.c -- the benchmark driver: generated kernels against the project's
 * hand-written references and a PyTorch implementation, side by side in one
 * run, each as a fraction of what the machine can do.  Not a test: numbers.
 *
 *   bench table [--quick] [--scaling ROUNDS] --limits FILE --chain CHAIN --tmp DIR [--torch CMD] SPEC...
 *        SPEC = MODEL,H,PREC,GEN.so,REF.so   (H = 0 for fvsbn; PREC f32|f64)
 *   bench buildtime CHAIN CC TMP REPS
 *   bench memory CHAIN TMP THREADS H...
 *   bench ab MODEL KERNEL BATCH ROUNDS A.so B.so...
 *
 * table: for each SPEC, each kernel (logp = logp_batch, grad = loglik_grad,
 * sample), batch (1, 32, 256) and threads (1, 2), images/s of the generated
 * kernel (`chain build` output in GEN.so), of the reference
 * (examples/reference/MODEL.c in REF.so) and of PyTorch (bench/torch_bench.py,
 * started once as CMD and driven over a pipe; the column is left out when it
 * reports no torch).  Then a training epoch (batch 100, Adam): generated =
 * the `chain train` command (the epoch's seconds from its --log), reference =
 * the same libchain training loop (chain_train) in this process with the
 * reference's kernels, PyTorch = its own epoch loop.
 *
 * --scaling ROUNDS: only the thread scaling (below), with ROUNDS rounds.
 *
 * Why so: the C kernels are single-threaded and reentrant, so T threads split
 * a batch into T contiguous chunks, each calling the kernel on its chunk (the
 * gradient into its own buffer, zero on the used entries; then one pass in
 * which each thread sums the buffers over its slice of the used entries, a
 * cache-sized chunk at a time, zeroing them for the next call; with one
 * thread the pass only zeroes): exactly what the training loop does, on
 * its pool (runtime/pool.c) and with its vectorized sum (a batch of 1 has
 * nothing to split and runs on the calling thread).  Implementations
 * alternate within each repetition, in a rotating order, so machine drift
 * (this is a shared 2-core machine) hits all alike; each number is a median.
 * Each measurement repeats the call until it lasts about 30 ms (20 ms with
 * --quick), so batch 1 is timed over many calls.
 *
 * "% of limit" divides each rate by the machine's limit for that kernel, from
 * bench/limits.c's measurements in the same run: per image the kernel must do
 * F fused multiply-adds and S sigmoids (FVSBN log p: n(n-1)/2 FMAs; NADE log
 * p: n*H sigmoids and 2nH FMAs; gradients: see work_per_image()), which
 * takes at least F / FMA peak + S / sigmoid throughput (both run on the FMA
 * units), and it must read the parameters at least once per call and thread,
 * which takes at least bytes / bandwidth of the cache level they fit in.  The
 * longer of the two times gives the limit in images/s (the "bound" column
 * says which: fma, sig or mem); a training epoch adds Adam's pass over theta
 * and its moments.
 *
 * buildtime: `chain build` of each example (the object) against `cc -O2 -c`
 * of its hand-written reference, alternating, medians of REPS.
 * memory: the peak resident memory (wait4's ru_maxrss) of `chain train` of
 * NADE (1 epoch over the shipped train split, 100 rows and 1 row; f64 and
 * f32), split into the data, the trainer's theta-sized buffers, the
 * per-thread gradients and kernel scratch, and the rest (the process
 * itself); the 1-row run and `chain build` of the model show the
 * compiler's peak.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chain/alloc.h"
#include "chain/data.h"
#include "chain/model.h"
#include "chain/train.h"
#include "../runtime/pool.h"
#include "../runtime/vector_clones.h"

#define TEST_DATA  "examples/data/binarized-test.amat.gz"
#define TRAIN_DATA "examples/data/binarized-train.amat.gz"
#define MAXT       2
#define MAXREPS    9
#define SUM_CHUNK  512   /* entries per chunk of the gradient sum (as in chain_train's step) */

enum kernel { K_LOGP, K_GRAD, K_SAMPLE, K_EPOCH };
enum ab_kernel { AB_LOGP, AB_GRAD, AB_SAMPLE, AB_COMPLETE, AB_OBJECTIVE };
static const char *const kernel_name[] = { "logp", "grad", "sample", "epoch" };
enum impl { I_GEN, I_REF, I_TORCH, NIMPL };

static int quick;
static int scaling_only; /* bench table --scaling ROUNDS: only the paired rounds of thread scaling */

/* ---- small helpers ------------------------------------------------------ */

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int k)
{
	qsort(v, (size_t)k, sizeof v[0], cmp_double);
	return k % 2 ? v[k / 2] : 0.5 * (v[k / 2 - 1] + v[k / 2]);
}

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "bench: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	exit(1);
}

/* zeroed and 64-byte aligned, as libchain hands buffers to the kernels
 * (chain/alloc.h): the same for the generated and the reference kernels */
static void *xmalloc(size_t n)
{
	void *p = chain_calloc_aligned(1, n ? n : 1);
	if (!p)
		die("out of memory%s", "");
	return p;
}

static void settle(double seconds)
{
	struct timespec ts = { 0, (long)(seconds * 1e9) };
	nanosleep(&ts, NULL);
}

/* Runs argv, waits; returns the exit status, the wall time and the peak RSS
 * (KiB) of the child.  stdout/stderr of the child go to /dev/null when quiet. */
static int run_cmd(char *const argv[], int quiet, double *seconds, long *maxrss_kib)
{
	fflush(stdout); /* or the child would write our buffered output again */
	double t0 = now();
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int dn = quiet ? open("/dev/null", O_WRONLY) : -1;
		if (dn >= 0)
			dup2(dn, 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	struct rusage ru;
	if (wait4(pid, &st, 0, &ru) < 0)
		die("wait4: %s", strerror(errno));
	if (seconds)
		*seconds = now() - t0;
	if (maxrss_kib)
		*maxrss_kib = ru.ru_maxrss;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* ---- the machine's limits (bench/limits output) ------------------------- */

typedef struct limit {
	char name[32];
	int threads;
	double value;
} limit;
static limit limits[64];
static int nlimits;

static void read_limits(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		die("cannot read %s", path);
	char line[256];
	while (fgets(line, sizeof line, f) && nlimits < 64) {
		limit *l = &limits[nlimits];
		if (line[0] != '#' && sscanf(line, "%31s %d %lf", l->name, &l->threads, &l->value) == 3)
			nlimits++;
	}
	fclose(f);
}

static double get_limit(const char *name, int threads)
{
	for (int i = 0; i < nlimits; i++)
		if (strcmp(limits[i].name, name) == 0 && limits[i].threads == threads)
			return limits[i].value;
	return NAN;
}

/* ---- a model at one size and precision, its two C implementations ------- */

typedef void (*logp_batch_f64)(const double *, const double *, size_t, double *);
typedef void (*logp_batch_f32)(const float *, const float *, size_t, float *);
typedef double (*grad_f64)(const double *, const double *, size_t, double *);
typedef float (*grad_f32)(const float *, const float *, size_t, float *);
typedef void (*sample_f64)(const double *, uint64_t, uint64_t, size_t, double *);
typedef void (*sample_f32)(const float *, uint64_t, uint64_t, size_t, float *);
typedef void (*init_f64)(double *, uint64_t);
typedef void (*init_f32)(float *, uint64_t);

static const char *const kernel_syms[8] = { "init",      "logp",   "logp_batch", "loglik_grad",
                                            "objective", "sample", "complete",   "conditionals" };

typedef struct cimpl {
	void *so;
	void *fn[8];           /* in the order of kernel_syms (= chain_kernels_*) */
} cimpl;

typedef struct spec {
	char model[16];
	size_t H;              /* 0 for fvsbn */
	int f32;
	size_t sz;             /* sizeof(real) */
	cimpl c[2];            /* I_GEN, I_REF */
	const chain_model *gen_desc;
	size_t n, np, np_used;
	void *theta;           /* np reals, from the reference's init(seed 1) */
	void *obs;             /* the test rows, as reals */
	size_t rows;
	size_t first;          /* the first row of a measurement's first call (time_c) */
	void *out, *sobs, *grad[MAXT];
	size_t *runs, nruns;   /* the used entries of theta, [runs[2i], runs[2i+1]) */
	size_t slice[MAXT][MAXT + 1]; /* with T threads, thread t sums [slice[T-1][t], slice[T-1][t+1]) */
	void *sum[MAXT];       /* per thread: the summed gradient of a chunk of SUM_CHUNK entries */
} spec;

static void *sym(void *so, const char *model, const char *fn)
{
	char name[128];
	snprintf(name, sizeof name, "%s_%s", model, fn);
	void *p = dlsym(so, name);
	if (!p)
		die("no symbol %s", name);
	return p;
}

static void to_real(void *dst, const double *src, size_t k, int f32)
{
	if (f32)
		for (size_t i = 0; i < k; i++)
			((float *)dst)[i] = (float)src[i];
	else
		memcpy(dst, src, k * sizeof(double));
}

static double real_at(const void *p, size_t i, int f32)
{
	return f32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

/* The runs of used entries of theta (from the descriptor's used flags;
 * FVSBN's W is half unused, a run per row), and for each thread count the
 * threads' slices of them, as many used entries each as can be (as
 * chain_train cuts them). */
static void spec_runs(spec *s)
{
	const chain_model *m = s->gen_desc;
	uint8_t *used = xmalloc(s->np);
	memset(used, 1, s->np);
	for (size_t i = 0; i < m->num_param_vars; i++)
		if (m->params[i].used)
			for (size_t e = 0; e < m->params[i].size; e++)
				used[m->params[i].offset + e] = m->params[i].used[e] != 0;
	s->runs = xmalloc((s->np + 1) * sizeof *s->runs);
	s->nruns = 0;
	size_t U = 0;
	for (size_t j = 0; j < s->np; j++) {
		if (used[j] && (j == 0 || !used[j - 1]))
			s->runs[2 * s->nruns] = j;
		if (used[j] && (j + 1 == s->np || !used[j + 1]))
			s->runs[2 * s->nruns++ + 1] = j + 1;
		U += used[j];
	}
	free(used);
	for (int T = 1; T <= MAXT; T++) {
		size_t r = 0, seen = 0;
		for (int t = 0; t < T; t++) {
			size_t target = U / (size_t)T * (size_t)t + ((size_t)t < U % (size_t)T ? (size_t)t : U % (size_t)T);
			while (r < s->nruns && seen + s->runs[2 * r + 1] - s->runs[2 * r] <= target) {
				seen += s->runs[2 * r + 1] - s->runs[2 * r];
				r++;
			}
			s->slice[T - 1][t] = t == 0 ? 0 : r < s->nruns ? s->runs[2 * r] + (target - seen) : s->np;
		}
		s->slice[T - 1][T] = s->np;
	}
}

static void spec_open(spec *s, const char *arg, const chain_dataset *test)
{
	char buf[1024], *save = NULL;
	snprintf(buf, sizeof buf, "%s", arg);
	char *f[5];
	for (int i = 0; i < 5; i++)
		if (!(f[i] = strtok_r(i ? NULL : buf, ",", &save)))
			die("bad SPEC %s (want MODEL,H,PREC,GEN.so,REF.so)", arg);
	memset(s, 0, sizeof *s);
	snprintf(s->model, sizeof s->model, "%s", f[0]);
	s->H = strtoul(f[1], NULL, 10);
	s->f32 = strcmp(f[2], "f32") == 0;
	s->sz = s->f32 ? sizeof(float) : sizeof(double);
	for (int i = 0; i < 2; i++) {
		if (!(s->c[i].so = dlopen(f[3 + i], RTLD_NOW | RTLD_LOCAL)))
			die("%s", dlerror());
		for (int k = 0; k < 8; k++)
			s->c[i].fn[k] = sym(s->c[i].so, s->model, kernel_syms[k]);
	}
	char dname[64];
	snprintf(dname, sizeof dname, "%s_model", s->model);
	if (!(s->gen_desc = dlsym(s->c[I_GEN].so, dname)))
		die("no symbol %s", dname);
	s->n = test->cols;
	s->np = s->gen_desc->num_params;
	s->np_used = s->np - s->gen_desc->num_params_unused;
	s->rows = test->rows;
	s->theta = xmalloc(s->np * s->sz);
	if (s->f32)
		((init_f32)s->c[I_REF].fn[0])(s->theta, 1);
	else
		((init_f64)s->c[I_REF].fn[0])(s->theta, 1);
	s->obs = xmalloc(test->rows * s->n * s->sz);
	to_real(s->obs, test->values, test->rows * s->n, s->f32);
	s->out = xmalloc(256 * s->sz);
	s->sobs = xmalloc(256 * s->n * s->sz);
	for (int t = 0; t < MAXT; t++) {
		s->grad[t] = xmalloc(s->np * s->sz); /* zeroed: see phase_kernel */
		s->sum[t] = xmalloc(SUM_CHUNK * s->sz);
	}
	spec_runs(s);
}

/* ---- the pool: libchain's, the training loop's (runtime/pool.h) ---------- */

typedef chain_pool pool;

static void pool_start(pool *p, int T)
{
	chain_error err;
	if (chain_pool_start(p, (unsigned)T, &err) != 0)
		die("%s", err.msg);
}

/* ---- one call of a C kernel on a batch, split over the pool ------------- */

typedef struct call {
	spec *s;
	const cimpl *c;
	enum kernel k;
	size_t B, first;       /* rows first .. first+B-1 of the test set */
	uint64_t sample_first; /* rows of the sample stream */
} call;

/* thread t's rows: [ceil(B t / T), ceil(B (t+1) / T)), so thread 0 always has one */
static size_t chunk_lo(size_t B, unsigned t, unsigned T)
{
	return (B * (size_t)t + (size_t)T - 1) / (size_t)T;
}

static void phase_kernel(void *arg, unsigned t, unsigned T)
{
	call *c = arg;
	spec *s = c->s;
	size_t lo = chunk_lo(c->B, t, T), hi = chunk_lo(c->B, t + 1, T);
	if (lo >= hi)
		return;
	const char *obs = (const char *)s->obs + (c->first + lo) * s->n * s->sz;
	switch (c->k) {
	case K_LOGP:
		if (s->f32)
			((logp_batch_f32)c->c->fn[2])(s->theta, (const float *)obs, hi - lo, (float *)s->out + lo);
		else
			((logp_batch_f64)c->c->fn[2])(s->theta, (const double *)obs, hi - lo, (double *)s->out + lo);
		break;
	case K_GRAD: /* grad[t] is 0 on the used entries: phase_sum zeroed it */
		if (s->f32)
			((grad_f32)c->c->fn[3])(s->theta, (const float *)obs, hi - lo, s->grad[t]);
		else
			((grad_f64)c->c->fn[3])(s->theta, (const double *)obs, hi - lo, s->grad[t]);
		break;
	default: {
		char *dst = (char *)s->sobs + lo * s->n * s->sz;
		if (s->f32)
			((sample_f32)c->c->fn[5])(s->theta, 1, c->sample_first + lo, hi - lo, (float *)dst);
		else
			((sample_f64)c->c->fn[5])(s->theta, 1, c->sample_first + lo, hi - lo, (double *)dst);
		break;
	}
	}
}

/* The sum's loops: restrict, and built for the CPU's vectors (run.sh
 * compiles this file with -O3), as the training loop's reduction is
 * (reduce_chunk in runtime/train.c): at -O2 gcc kept them scalar, and the
 * 2-thread rows of FVSBN's f32 gradient paid 0.3-0.4 ms a call for a pass
 * that training does in a tenth of it. */
CHAIN_VECTOR_CLONES
static void take_f32(float *restrict sum, float *restrict g, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		sum[i] = g[i];
		g[i] = 0;
	}
}

CHAIN_VECTOR_CLONES
static void add_f32(float *restrict sum, float *restrict g, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		sum[i] += g[i];
		g[i] = 0;
	}
}

CHAIN_VECTOR_CLONES
static void take_f64(double *restrict sum, double *restrict g, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		sum[i] = g[i];
		g[i] = 0;
	}
}

CHAIN_VECTOR_CLONES
static void add_f64(double *restrict sum, double *restrict g, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		sum[i] += g[i];
		g[i] = 0;
	}
}

/* After a gradient call, as chain_train's step does it: thread t takes its
 * slice of the used entries a chunk at a time, sums the gradients of the
 * threads that had rows (in thread order, into its chunk buffer, where the
 * optimizer would take them) and zeroes each buffer as it reads it, ready
 * for the next call.  With one thread there is nothing to sum: the pass
 * only zeroes the used entries (what a memset of the whole buffer did). */
static void phase_sum(void *arg, unsigned t, unsigned T)
{
	call *c = arg;
	spec *s = c->s;
	unsigned U = 0, with_rows[MAXT];
	for (unsigned u = 0; u < T; u++)
		if (T == 1 || chunk_lo(c->B, u, T) < chunk_lo(c->B, u + 1, T))
			with_rows[U++] = u;
	size_t lo = s->slice[T - 1][t], hi = s->slice[T - 1][t + 1];
	for (size_t r = 0; r < s->nruns; r++) {
		size_t a = s->runs[2 * r] > lo ? s->runs[2 * r] : lo;
		size_t e = s->runs[2 * r + 1] < hi ? s->runs[2 * r + 1] : hi;
		for (; a < e; a += SUM_CHUNK) {
			size_t n = e - a < SUM_CHUNK ? e - a : SUM_CHUNK;
			if (U == 1) {
				memset((char *)s->grad[with_rows[0]] + a * s->sz, 0, n * s->sz);
			} else if (s->f32) {
				take_f32(s->sum[t], (float *)s->grad[with_rows[0]] + a, n);
				for (unsigned u = 1; u < U; u++)
					add_f32(s->sum[t], (float *)s->grad[with_rows[u]] + a, n);
			} else {
				take_f64(s->sum[t], (double *)s->grad[with_rows[0]] + a, n);
				for (unsigned u = 1; u < U; u++)
					add_f64(s->sum[t], (double *)s->grad[with_rows[u]] + a, n);
			}
		}
	}
}

/* Moves the rows of the next measurements on (a round's measurements of
 * each implementation and thread count share them). */
static void next_rows(spec *s, size_t B)
{
	s->first = (s->first + 7 * B + 1) % (s->rows - B + 1);
}

static void call_c(call *c, pool *p)
{
	if (c->B == 1) { /* nothing to split: the caller runs it, no thread is woken */
		phase_kernel(c, 0, 1);
		if (c->k == K_GRAD)
			phase_sum(c, 0, 1);
	} else {
		chain_pool_run(p, phase_kernel, c);
		if (c->k == K_GRAD)
			chain_pool_run(p, phase_sum, c);
	}
}

/* The seconds of `calls` calls, after one untimed call: the steady state of
 * a training loop, whose calls follow each other.  Without it a
 * measurement of one or two calls (NADE's f64 gradient of 256 rows takes
 * 10-47 ms) also timed the pool's thread waking from its sleep (it slept
 * through the measurements of other implementations and thread counts)
 * and bringing the buffers it shares into its cache: NADE H = 100's f64
 * gradient at batch 256 scaled 1.68-1.75x over 101 paired rounds on a
 * Zen 4 host, and 1.94-1.96x with the untimed call.  The calls take the
 * rows from s->first on,
 * which the callers move from round to round (next_rows): a measurement
 * of one call always on the first 256 digits split them the same way
 * between the threads, and their halves differ (5.5 % more 1s in the
 * first), which the batches of a training loop do by chance only. */
static double time_c(spec *s, int impl, enum kernel k, size_t B, pool *p, long calls)
{
	call c = { s, &s->c[impl], k, B, s->first % (s->rows - B + 1), 0 };
	call_c(&c, p);
	double t0 = now();
	for (long i = 0; i < calls; i++) {
		c.first = (s->first + (size_t)i * B) % (s->rows - B + 1);
		c.sample_first = (uint64_t)i * B;
		call_c(&c, p);
	}
	return now() - t0;
}

/* ---- the PyTorch process ------------------------------------------------ */

static FILE *torch_in, *torch_out;
static char torch_version[512];
static char torch_missing[512] = "no python3 found";

static void torch_start(const char *cmd)
{
	int to[2], from[2];
	if (pipe(to) || pipe(from))
		die("pipe: %s", strerror(errno));
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(to[0], 0);
		dup2(from[1], 1);
		close(to[1]);
		close(from[0]);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(to[0]);
	close(from[1]);
	torch_in = fdopen(to[1], "w");
	torch_out = fdopen(from[0], "r");
	char line[512];
	if (!fgets(line, sizeof line, torch_out)) {
		snprintf(torch_missing, sizeof torch_missing, "`%s` printed nothing", cmd);
		goto none;
	}
	line[strcspn(line, "\n")] = 0;
	if (strncmp(line, "ready torch ", 12) == 0) {
		snprintf(torch_version, sizeof torch_version, "%s", line + 12);
		return;
	}
	snprintf(torch_missing, sizeof torch_missing, "%s", strncmp(line, "none ", 5) == 0 ? line + 5 : line);
none:
	fclose(torch_in);
	fclose(torch_out);
	torch_in = torch_out = NULL;
}

/* Sends one command; returns the reply after "ok " (static), or NULL. */
static const char *torch_ask(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *torch_ask(const char *fmt, ...)
{
	static char line[4096];
	if (!torch_in)
		return NULL;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(torch_in, fmt, ap);
	va_end(ap);
	fputc('\n', torch_in);
	fflush(torch_in);
	if (!fgets(line, sizeof line, torch_out)) {
		fprintf(stderr, "bench: the PyTorch process died; its column is left out from here on\n");
		snprintf(torch_missing, sizeof torch_missing, "the PyTorch process died");
		fclose(torch_in);
		torch_in = NULL;
		return NULL;
	}
	line[strcspn(line, "\n")] = 0;
	if (strncmp(line, "ok", 2) != 0) {
		fprintf(stderr, "bench: PyTorch: %s\n", line);
		return NULL;
	}
	return line[2] ? line + 3 : line + 2;
}

/* PyTorch's OpenMP threads spin for a while after each parallel region;
 * let them go to sleep before a C measurement starts. */
static double torch_time(enum kernel k, size_t B, int T, long calls)
{
	const char *r = torch_ask("time %s %zu %d %ld", kernel_name[k], B, T, calls);
	settle(0.02);
	return r ? atof(r) : NAN;
}

/* ---- the machine's limit for one row ------------------------------------ */

/* FMAs and sigmoids one image needs at least */
static void work_per_image(const spec *s, enum kernel k, double *fmas, double *sigs)
{
	double n = (double)s->n, H = (double)s->H;
	if (s->H == 0) { /* FVSBN: the triangle n(n-1)/2; the gradient's outer product as much again */
		double tri = n * (n - 1) / 2;
		*fmas = (k == K_GRAD || k == K_EPOCH) ? 2 * tri : tri;
		*sigs = (k == K_GRAD || k == K_EPOCH) ? 2 * n : n;
	} else { /* NADE: nH sigmoids; running sum + dot 2nH FMAs, gradient 3nH more */
		*fmas = (k == K_GRAD || k == K_EPOCH) ? 5 * n * H : 2 * n * H;
		*sigs = n * H;
	}
}

/* read bandwidth (GB/s, T threads together) at the level a working set fits in */
static double bandwidth(double bytes_per_thread, int T)
{
	long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE), l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
	if (l2 <= 0)
		l2 = 1L << 20;
	if (l3 <= 0)
		l3 = 32L << 20;
	if (bytes_per_thread <= (double)l2)
		return get_limit("bw_l2", T);
	if (bytes_per_thread * T <= (double)l3)
		return get_limit("bw_l3", T);
	return get_limit("bw_dram", T);
}

/* The most images/s the machine allows for this kernel, batch and threads:
 * the busiest thread's share of the work at the per-thread rates measured
 * with as many threads busy (batch 1 keeps one thread busy whatever T). */
static double limit_rate(const spec *s, enum kernel k, size_t B, int T, const char **bound)
{
	const char *p = s->f32 ? "f32" : "f64";
	int A = B < (size_t)T ? (int)B : T;                   /* threads with rows */
	char name[32];
	snprintf(name, sizeof name, "fma_%s", p);
	double fma_rate = get_limit(name, A) * 1e9 / 2 / A;   /* FMAs/s per thread */
	snprintf(name, sizeof name, "sigmoid_%s", p);
	double sig_rate = get_limit(name, A) * 1e9 / A;       /* sigmoids/s per thread */
	double fmas, sigs;
	work_per_image(s, k, &fmas, &sigs);
	size_t rows = chunk_lo(B, 1, T);                      /* the busiest thread's rows */
	double t_fma = (double)rows * fmas / fma_rate, t_sig = (double)rows * sigs / sig_rate;
	/* parameters read once per call and thread; a gradient also reads and writes its buffer */
	double used = (double)s->np_used * (double)s->sz;
	int gradlike = k == K_GRAD || k == K_EPOCH;
	double ws = gradlike ? 2 * used : used;
	double t_mem = (gradlike ? 3 * used : used) / (bandwidth(ws, A) * 1e9 / A);
	double t = t_fma + t_sig;
	*bound = t_sig > t_fma ? "sig" : "fma";
	if (t_mem > t) {
		t = t_mem;
		*bound = "mem";
	}
	if (k == K_EPOCH) { /* Adam: reads theta, grad, m, v and writes theta, m, v (doubles) */
		double adam = 7.0 * (double)s->np * sizeof(double);
		t += adam / (bandwidth(4.0 * (double)s->np * sizeof(double) / T, T) * 1e9);
	}
	return (double)B / t;
}

/* ---- one table row ------------------------------------------------------ */

static void print_header(void)
{
	printf("%-9s %-6s %-4s %5s %3s %10s %10s %10s %7s %7s %6s %6s %6s %5s\n", "model", "kernel", "prec",
	       "batch", "thr", "generated", "reference", "PyTorch", "gen/ref", "gen/pt", "%gen", "%ref", "%pt",
	       "bound");
	printf("%-9s %-6s %-4s %5s %3s %10s %10s %10s %7s %7s %6s %6s %6s %5s\n", "", "", "", "", "", "img/s",
	       "img/s", "img/s", "", "", "limit", "limit", "limit", "");
}

static void fmt_rate(char *buf, size_t len, double r)
{
	if (!isfinite(r))
		snprintf(buf, len, "-");
	else if (r >= 100)
		snprintf(buf, len, "%.0f", r);
	else if (r >= 10)
		snprintf(buf, len, "%.1f", r);
	else
		snprintf(buf, len, "%.2f", r);
}

static void fmt_ratio(char *buf, size_t len, double a, double b)
{
	if (!isfinite(a) || !isfinite(b) || b <= 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.2f", a / b);
}

static void fmt_pct(char *buf, size_t len, double r, double lim)
{
	double p = 100 * r / lim;
	if (!isfinite(p))
		snprintf(buf, len, "-");
	else if (p >= 10)
		snprintf(buf, len, "%.0f%%", p);
	else
		snprintf(buf, len, "%.1f%%", p);
}

/* The model column of a row: fvsbn, nade100, nade500. */
static void spec_label(const spec *s, char *name, size_t len)
{
	if (s->H)
		snprintf(name, len, "nade%zu", s->H);
	else
		snprintf(name, len, "%s", s->model);
}

static void print_row(const spec *s, enum kernel k, size_t B, int T, const double rate[NIMPL])
{

	char name[32], r[NIMPL][16], gr[16], gt[16], pc[NIMPL][16];
	const char *bound;
	double lim = limit_rate(s, k, B, T, &bound);
	spec_label(s, name, sizeof name);
	for (int i = 0; i < NIMPL; i++) {
		fmt_rate(r[i], sizeof r[i], rate[i]);
		fmt_pct(pc[i], sizeof pc[i], rate[i], lim);
	}
	fmt_ratio(gr, sizeof gr, rate[I_GEN], rate[I_REF]);
	fmt_ratio(gt, sizeof gt, rate[I_GEN], rate[I_TORCH]);
	printf("%-9s %-6s %-4s %5zu %3d %10s %10s %10s %7s %7s %6s %6s %6s %5s\n", name, kernel_name[k],
	       s->f32 ? "f32" : "f64", B, T, r[I_GEN], r[I_REF], r[I_TORCH], gr, gt, pc[I_GEN], pc[I_REF],
	       pc[I_TORCH], bound);
	fflush(stdout);
}

/* How many measurements of `seconds` each: 5 (3 with --quick), fewer for
 * the slow ones so that the suite stays within minutes. */
static int reps_for(double seconds)
{
	if (seconds > 1.5 || (quick && seconds > 0.3))
		return 1;
	if (seconds > 0.3)
		return 3;
	return quick ? 3 : 5;
}

/* Times one (kernel, batch, threads) for all implementations: calibrate the
 * number of calls per measurement on a warm call, then rounds in rotating
 * order; prints the row. */
static void bench_row(spec *s, enum kernel k, size_t B, pool *p)
{
	int T = (int)p->n;
	double target = quick ? 0.02 : 0.03;
	long calls[NIMPL] = { 0, 0, 0 };
	double one[NIMPL] = { NAN, NAN, NAN }, rates[NIMPL][MAXREPS], rate[NIMPL];
	int have[NIMPL] = { 1, 1, torch_in != NULL };
	int reps[NIMPL] = { 0, 0, 0 }, rounds = 0;
	for (int i = 0; i < NIMPL; i++) {
		if (!have[i])
			continue;
		/* the first call warms up (caches, page faults, threads); when it is
		 * short, a quarter of a measurement gives the steady cost of a call
		 * (PyTorch pays milliseconds at the start of each burst of calls) */
		one[i] = i == I_TORCH ? torch_time(k, B, T, 1) : time_c(s, i, k, B, p, 1);
		if (isfinite(one[i]) && one[i] < 0.25) {
			long c = (long)ceil(target / 4 / (one[i] > 1e-7 ? one[i] : 1e-7));
			double t = i == I_TORCH ? torch_time(k, B, T, c) : time_c(s, i, k, B, p, c);
			one[i] = t / (double)c;
		}
		if (!isfinite(one[i])) {
			have[i] = 0;
			continue;
		}
		calls[i] = (long)ceil(target / (one[i] > 1e-7 ? one[i] : 1e-7));
		if (calls[i] < 1)
			calls[i] = 1;
		reps[i] = reps_for(one[i] * (double)calls[i]);
		if (reps[i] > rounds)
			rounds = reps[i];
	}
	for (int rep = 0; rep < rounds; rep++) {
		next_rows(s, B);
		for (int j = 0; j < NIMPL; j++) {
			int i = (rep + j) % NIMPL;
			if (!have[i] || rep >= reps[i])
				continue;
			double t = i == I_TORCH ? torch_time(k, B, T, calls[i]) : time_c(s, i, k, B, p, calls[i]);
			rates[i][rep] = (double)calls[i] * (double)B / t;
		}
	}
	for (int i = 0; i < NIMPL; i++)
		rate[i] = have[i] ? median(rates[i], reps[i]) : NAN;
	print_row(s, k, B, T, rate);
}

/* ---- thread scaling ----------------------------------------------------- */

/* Jiffies the host has taken from this guest's vCPUs so far (the "steal"
 * column of /proc/stat's cpu line), or -1 where there is none. */
static long long steal_jiffies(void)
{
	FILE *f = fopen("/proc/stat", "r");
	long long v[8];
	int n = f ? fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", &v[0], &v[1], &v[2], &v[3], &v[4],
	                   &v[5], &v[6], &v[7])
	          : 0;
	if (f)
		fclose(f);
	return n == 8 ? v[7] : -1;
}

/* A compute-only probe for --scaling: 16 independent chains of vector
 * multiply-adds in registers, no memory traffic, the same on each thread.
 * Its 2-thread ratio in the same round as a kernel's says whether the
 * machine gave the second thread a core of its own at that moment. */
typedef double probe_vec __attribute__((vector_size(32)));
static volatile double probe_sink;
static long probe_iters;

static void probe_run(void *arg, unsigned tid, unsigned nthreads)
{
	(void)arg, (void)tid, (void)nthreads;
	probe_vec a[16], m = { 1.0000001, 1.0000001, 1.0000001, 1.0000001 }, c = { 1e-9, 1e-9, 1e-9, 1e-9 };
	for (int k = 0; k < 16; k++)
		a[k] = c * (double)k;
	for (long i = 0; i < probe_iters; i++)
		for (int k = 0; k < 16; k++)
			a[k] = a[k] * m + c;
	double sum = 0;
	for (int k = 0; k < 16; k++)
		sum += a[k][0];
	probe_sink = sum;
}

/* 2-thread over 1-thread throughput of the probe, each run about 4 ms. */
static double probe_ratio(pool *pools)
{
	if (!probe_iters) {
		probe_iters = 100000;
		double t0 = now();
		probe_run(NULL, 0, 1);
		probe_iters = (long)(probe_iters * 0.004 / (now() - t0)) + 1;
	}
	double t0 = now();
	chain_pool_run(&pools[0], probe_run, NULL);
	double t1 = now();
	chain_pool_run(&pools[1], probe_run, NULL);
	double t2 = now();
	return 2 * (t1 - t0) / (t2 - t1);
}

/* 2 threads against 1 for the generated kernel at batch 256, measured in
 * pairs: each round times 1 thread, then 2 (the order alternating from
 * round to round), a measurement each of about 30 ms (12 ms with
 * --scaling), and the round's ratio is 2-thread images/s over 1-thread.
 * The table's rows time 1 and 2 threads seconds apart, and this machine's
 * speed drifts between them (other guests take a vCPU at times); a pair is
 * a fraction of a second apart, and the median of the rounds' ratios is
 * the ratio with that drift taken out.  The spread (lowest and highest
 * round) says how much the machine moved, and the last column how many
 * rounds saw the host take time from a vCPU (steal in /proc/stat; a
 * vCPU can also slow down without it, when another guest loads the core,
 * cache or memory it shares).  With --scaling each round also times the
 * compute-only probe above with 1 and 2 threads right after the kernel,
 * and the line says in how many rounds the kernel fell below 1.7x, the
 * probe did, and both did (a probe that touches no memory and shares
 * nothing slows down only when the host does), and the kernel's median
 * ratio over the rounds in which the probe had 1.7x or more: the
 * kernel's scaling when the host gave the second thread a core. */
static void bench_scaling(spec *s, enum kernel k, pool *pools, int rounds)
{
	const size_t B = 256;
	double target = scaling_only ? 0.012 : quick ? 0.02 : 0.03;
	double *ratio = calloc((size_t)rounds, sizeof *ratio), *r1 = calloc((size_t)rounds, sizeof *r1),
	       *r2 = calloc((size_t)rounds, sizeof *r2), *host_ok = calloc((size_t)rounds, sizeof *host_ok);
	if (!ratio || !r1 || !r2 || !host_ok)
		die("out of memory%s", "");
	long calls[MAXT];
	for (int t = 0; t < MAXT; t++) {
		double one = time_c(s, I_GEN, k, B, &pools[t], 1); /* warm */
		one = time_c(s, I_GEN, k, B, &pools[t], 1);
		calls[t] = (long)ceil(target / (one > 1e-7 ? one : 1e-7));
		if (calls[t] < 1)
			calls[t] = 1;
	}
	int stolen = 0, low = 0, low_probe = 0, low_both = 0, n_ok = 0;
	for (int r = 0; r < rounds; r++) {
		double rate[MAXT];
		next_rows(s, B);
		long long st = steal_jiffies();
		for (int j = 0; j < MAXT; j++) {
			int t = (r + j) % MAXT;
			rate[t] = (double)calls[t] * (double)B / time_c(s, I_GEN, k, B, &pools[t], calls[t]);
		}
		stolen += st >= 0 && steal_jiffies() > st;
		r1[r] = rate[0];
		r2[r] = rate[1];
		ratio[r] = rate[1] / rate[0];
		if (scaling_only) {
			int probe_low = probe_ratio(pools) < 1.7;
			low += ratio[r] < 1.7;
			low_probe += probe_low;
			low_both += probe_low && ratio[r] < 1.7;
			if (!probe_low)
				host_ok[n_ok++] = ratio[r];
		}
	}
	double lo = ratio[0], hi = ratio[0];
	for (int r = 1; r < rounds; r++) {
		lo = ratio[r] < lo ? ratio[r] : lo;
		hi = ratio[r] > hi ? ratio[r] : hi;
	}
	char name[32];
	spec_label(s, name, sizeof name);
	printf("%-9s %-6s %-4s %5zu %10.0f %10.0f %7.2f   %.2f-%.2f   %d of %d", name, kernel_name[k],
	       s->f32 ? "f32" : "f64", B, median(r1, rounds), median(r2, rounds), median(ratio, rounds), lo, hi, stolen,
	       rounds);
	if (scaling_only)
		printf("   kernel < 1.7x in %d, probe in %d, both in %d; median of the %d with the probe >= 1.7x: %.2f", low,
		       low_probe, low_both, n_ok, n_ok ? median(host_ok, n_ok) : NAN);
	printf("\n");
	fflush(stdout);
	free(ratio);
	free(r1);
	free(r2);
	free(host_ok);
}

/* ---- training epochs ---------------------------------------------------- */

static double epoch_seconds_seen;

static void epoch_progress(const chain_train_progress *pr, void *user)
{
	(void)user;
	if (pr->event == CHAIN_TRAIN_EPOCH)
		epoch_seconds_seen = pr->epoch_seconds;
}

/* The last line's `seconds` of a chain train --log CSV, or NAN. */
/* Each implementation trains two epochs and the second is timed: the
 * steady state of a training run, without the first epoch's one-time costs
 * (the first touch of the optimizer's state and gradient buffers, PyTorch's
 * lazily made Adam state). */
static double csv_epoch_seconds(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NAN;
	char line[512], last[512] = "";
	while (fgets(line, sizeof line, f))
		snprintf(last, sizeof last, "%s", line);
	fclose(f);
	char *comma = strrchr(last, ',');
	return comma ? atof(comma + 1) : NAN;
}

typedef struct epoch_setup {
	const char *chain, *tmp;
	char npy[512], raw[512];   /* the epoch's rows: .npy for chain train, raw f64 for PyTorch */
	chain_dataset rows;
} epoch_setup;

static double epoch_gen(const spec *s, const epoch_setup *e, int T)
{
	char model[128], hdef[32], th[16], ckpt[600], csv[600];
	snprintf(model, sizeof model, "examples/%s.chain", s->model);
	snprintf(hdef, sizeof hdef, "H=%zu", s->H);
	snprintf(th, sizeof th, "%d", T);
	snprintf(ckpt, sizeof ckpt, "%s/epoch-gen.safetensors", e->tmp);
	snprintf(csv, sizeof csv, "%s/epoch-gen.csv", e->tmp);
	unlink(csv);
	char *argv[32];
	int a = 0;
	argv[a++] = (char *)e->chain;
	argv[a++] = "train";
	argv[a++] = model;
	if (s->H) {
		argv[a++] = "-D";
		argv[a++] = hdef;
	}
	argv[a++] = "--precision";
	argv[a++] = s->f32 ? "f32" : "f64";
	argv[a++] = "--data";
	argv[a++] = (char *)e->npy;
	argv[a++] = "--epochs";
	argv[a++] = "2"; /* the second is timed: csv_epoch_seconds */
	argv[a++] = "--batch";
	argv[a++] = "100";
	argv[a++] = "--threads";
	argv[a++] = th;
	argv[a++] = "-o";
	argv[a++] = ckpt;
	argv[a++] = "--log";
	argv[a++] = csv;
	argv[a++] = "--quiet";
	argv[a] = NULL;
	if (run_cmd(argv, 1, NULL, NULL) != 0) {
		fprintf(stderr, "bench: %s train failed\n", e->chain);
		return NAN;
	}
	return csv_epoch_seconds(csv);
}

static double epoch_ref(const spec *s, const epoch_setup *e, int T)
{
	/* the generated descriptor with the reference's kernels */
	chain_model m = *s->gen_desc;
	chain_kernels_f64 k64;
	chain_kernels_f32 k32;
	if (s->f32) {
		memcpy(&k32, s->c[I_REF].fn, sizeof k32);
		m.f32 = &k32;
	} else {
		memcpy(&k64, s->c[I_REF].fn, sizeof k64);
		m.f64 = &k64;
	}
	void *theta = xmalloc(s->np * s->sz);
	memcpy(theta, s->theta, s->np * s->sz);
	chain_train_options o;
	chain_train_defaults(&o);
	char ckpt[600];
	snprintf(ckpt, sizeof ckpt, "%s/epoch-ref.safetensors", e->tmp);
	o.epochs = 2; /* the second is timed (epoch_progress keeps the last) */
	o.batch = 100;
	o.threads = (unsigned)T;
	o.seed = 1;
	o.checkpoint_path = ckpt;
	o.progress = epoch_progress;
	chain_train_result r;
	chain_error err;
	epoch_seconds_seen = NAN;
	if (chain_train(&m, theta, &e->rows, NULL, &o, &r, &err)) {
		fprintf(stderr, "bench: reference training: %s\n", err.msg);
		epoch_seconds_seen = NAN;
	}
	free(theta);
	return epoch_seconds_seen;
}

static double epoch_torch(const spec *s, const epoch_setup *e, int T)
{
	(void)s;
	const char *r = torch_ask("epoch %s %zu %d", e->raw, e->rows.rows, T);
	settle(0.02);
	return r ? atof(r) : NAN;
}

/* Epochs in rotating order, 3 of each (1 with --quick, or when one takes
 * more than 3 s); the median. */
static void bench_epoch(spec *s, const epoch_setup *e, int T)
{
	int maxreps = quick ? 1 : 3, reps[NIMPL] = { maxreps, maxreps, maxreps };
	double rates[NIMPL][MAXREPS], rate[NIMPL];
	int have[NIMPL] = { 1, 1, torch_in != NULL };
	for (int rep = 0; rep < maxreps; rep++)
		for (int j = 0; j < NIMPL; j++) {
			int i = (rep + j) % NIMPL;
			if (!have[i] || rep >= reps[i])
				continue;
			double t = i == I_GEN ? epoch_gen(s, e, T) : i == I_REF ? epoch_ref(s, e, T) : epoch_torch(s, e, T);
			if (!isfinite(t)) {
				have[i] = 0;
				continue;
			}
			rates[i][rep] = (double)e->rows.rows / t;
			if (rep == 0 && t > 3.0)
				reps[i] = 1;
		}
	for (int i = 0; i < NIMPL; i++)
		rate[i] = have[i] ? median(rates[i], reps[i]) : NAN;
	print_row(s, K_EPOCH, 100, T, rate);
}

/* Rows of the train split an epoch runs over: the first 1000 of the 7000
 * (fewer for NADE), so that the suite stays within minutes; images/s hardly
 * depend on the epoch's length beyond a few steps of 100 rows. */
static size_t epoch_rows(const spec *s, size_t avail)
{
	size_t r = s->H >= 500 ? 300 : s->H >= 100 ? 600 : 1000;
	if (quick)
		r = s->H >= 500 ? 200 : s->H >= 100 ? 300 : 500;
	return r < avail ? r : avail;
}

/* ---- checks: the three implementations compute the same log p ----------- */

static void check_spec(spec *s)
{
	double lp[3][4];
	for (int i = 0; i < 2; i++) {
		char out[4 * sizeof(double)];
		if (s->f32)
			((logp_batch_f32)s->c[i].fn[2])(s->theta, s->obs, 4, (float *)out);
		else
			((logp_batch_f64)s->c[i].fn[2])(s->theta, s->obs, 4, (double *)out);
		for (int r = 0; r < 4; r++)
			lp[i][r] = real_at(out, (size_t)r, s->f32);
	}
	/* theta as raw float64 for PyTorch */
	int have_torch = 0;
	if (torch_in) {
		char path[] = "/tmp/chain-bench-theta-XXXXXX";
		int fd = mkstemp(path);
		FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
		if (!f)
			die("cannot write %s", path);
		for (size_t i = 0; i < s->np; i++) {
			double v = real_at(s->theta, i, s->f32);
			fwrite(&v, sizeof v, 1, f);
		}
		fclose(f);
		const char *r = torch_ask("model %s %zu %zu %s %s", s->model, s->n, s->H, s->f32 ? "f32" : "f64", path);
		unlink(path);
		if (r && sscanf(r, "%lf %lf %lf %lf", &lp[2][0], &lp[2][1], &lp[2][2], &lp[2][3]) == 4)
			have_torch = 1;
	}
	double d[3] = { 0, 0, 0 };
	for (int i = 0; i < 3; i++)
		for (int r = 0; r < 4; r++) {
			double e = fabs(lp[i][r] - lp[I_REF][r]) / fabs(lp[I_REF][r]);
			if (e > d[i] || !isfinite(e))
				d[i] = e;
		}
	printf("check %s H=%zu %s: log p of 4 test rows %.6g .. ; relative to the reference: generated %.1e",
	       s->model, s->H, s->f32 ? "f32" : "f64", lp[I_REF][0], d[I_GEN]);
	if (have_torch)
		printf(", PyTorch %.1e", d[I_TORCH]);
	double tol = s->f32 ? 1e-3 : 1e-8;
	if (d[I_GEN] > tol || (have_torch && d[I_TORCH] > tol))
		printf("  ** MISMATCH: the numbers below compare different computations **");
	printf("\n");
}

/* ---- bench table -------------------------------------------------------- */

static int cmd_table(int argc, char **argv)
{
	const char *limits_path = NULL, *torch_cmd = NULL;
	int scaling_rounds = 0;
	epoch_setup e = { 0 };
	int a = 0;
	for (; a < argc && argv[a][0] == '-'; a++) {
		if (strcmp(argv[a], "--quick") == 0)
			quick = 1;
		else if (a + 1 < argc && strcmp(argv[a], "--limits") == 0)
			limits_path = argv[++a];
		else if (a + 1 < argc && strcmp(argv[a], "--scaling") == 0) {
			scaling_rounds = atoi(argv[++a]);
			scaling_only = 1;
			if (scaling_rounds < 1 || scaling_rounds > 9999)
				die("--scaling: ROUNDS must be 1..9999, not %s", argv[a]);
		}
		else if (a + 1 < argc && strcmp(argv[a], "--torch") == 0)
			torch_cmd = argv[++a];
		else if (a + 1 < argc && strcmp(argv[a], "--chain") == 0)
			e.chain = argv[++a];
		else if (a + 1 < argc && strcmp(argv[a], "--tmp") == 0)
			e.tmp = argv[++a];
		else
			die("unknown option %s", argv[a]);
	}
	if (!limits_path || !e.chain || !e.tmp || a == argc)
		die("usage: bench table [--quick] [--scaling ROUNDS] --limits FILE --chain CHAIN --tmp DIR [--torch CMD] SPEC...%s", "");
	if (!scaling_rounds)
		scaling_rounds = quick ? 3 : 9;
	read_limits(limits_path);
	chain_dataset test, train;
	chain_error err;
	if (chain_data_load(TEST_DATA, NULL, &test, &err) || chain_data_load(TRAIN_DATA, NULL, &train, &err))
		die("%s", err.msg);
	if (torch_cmd)
		torch_start(torch_cmd);
	if (torch_in) {
		char raw[600];
		snprintf(raw, sizeof raw, "%s/test.f64", e.tmp);
		FILE *f = fopen(raw, "wb");
		if (!f || fwrite(test.values, sizeof(double), test.rows * test.cols, f) != test.rows * test.cols)
			die("cannot write %s", raw);
		fclose(f);
		torch_ask("data %s %zu %zu", raw, test.rows, test.cols);
		printf("PyTorch %s (bench/torch_bench.py)\n", torch_version);
	} else if (!scaling_only) { /* --scaling times the generated kernels alone */
		printf("PyTorch: not available (%s): the PyTorch column is left out\n", torch_missing);
	}
	pool pools[MAXT];
	for (int t = 0; t < MAXT; t++)
		pool_start(&pools[t], t + 1);
	static const size_t batches[] = { 1, 32, 256 };
	int headed = 0;
	for (; a < argc; a++) {
		spec s;
		spec_open(&s, argv[a], &test);
		if (!headed++ && !scaling_only)
			print_header();
		check_spec(&s);
		for (int k = K_LOGP; k <= K_SAMPLE && !scaling_only; k++)
			for (int b = 0; b < 3; b++)
				for (int t = 0; t < MAXT; t++)
					bench_row(&s, (enum kernel)k, batches[b], &pools[t]);
		printf("%-9s thread scaling of the generated kernels, 1 and 2 threads timed in pairs (median of the rounds):\n"
		       "%-9s %-6s %-4s %5s %10s %10s %7s   %-11s %s\n", "", "model", "kernel", "prec", "batch", "1 thr",
		       "2 thr", "2 / 1", "range", "rounds with steal");
		for (int k = K_LOGP; k <= K_SAMPLE; k++)
			bench_scaling(&s, (enum kernel)k, pools, scaling_rounds);
		if (scaling_only) {
			printf("\n");
			continue;
		}
		/* the epoch's rows, written for chain train and PyTorch */
		e.rows = train;
		e.rows.rows = epoch_rows(&s, train.rows);
		snprintf(e.npy, sizeof e.npy, "%s/train-%zu.npy", e.tmp, e.rows.rows);
		snprintf(e.raw, sizeof e.raw, "%s/train-%zu.f64", e.tmp, e.rows.rows);
		if (access(e.npy, R_OK) != 0) {
			if (chain_data_save(e.npy, &e.rows, &err))
				die("%s", err.msg);
			FILE *f = fopen(e.raw, "wb");
			if (!f || fwrite(e.rows.values, sizeof(double), e.rows.rows * e.rows.cols, f) !=
			                  e.rows.rows * e.rows.cols)
				die("cannot write %s", e.raw);
			fclose(f);
		}
		for (int t = 0; t < MAXT; t++)
			bench_epoch(&s, &e, t + 1);
		printf("%-9s (epoch: the first %zu rows of the train split)\n\n", "", e.rows.rows);
	}
	for (int t = 0; t < MAXT; t++)
		chain_pool_stop(&pools[t]);
	if (torch_in) {
		fprintf(torch_in, "quit\n");
		fclose(torch_in);
		fclose(torch_out);
		wait(NULL);
	}
	return 0;
}

/* ---- bench buildtime ---------------------------------------------------- */

static int cmd_buildtime(int argc, char **argv)
{
	if (argc != 4)
		die("usage: bench buildtime CHAIN CC TMP REPS%s", "");
	const char *chain = argv[0], *cc = argv[1], *tmp = argv[2];
	int reps = atoi(argv[3]);
	if (reps < 1 || reps > MAXREPS)
		reps = 5;
	static const char *const models[] = { "fvsbn", "nade" };
	printf("%-7s %22s %26s %7s\n", "model", "chain build (-O2) s", "cc -O2 -c reference.c s", "ratio");
	for (int m = 0; m < 2; m++) {
		char src[128], ref[128], o1[600], o2[600];
		snprintf(src, sizeof src, "examples/%s.chain", models[m]);
		snprintf(ref, sizeof ref, "examples/reference/%s.c", models[m]);
		snprintf(o1, sizeof o1, "%s/bt-gen.o", tmp);
		snprintf(o2, sizeof o2, "%s/bt-ref.o", tmp);
		char *gen_argv[] = { (char *)chain, "build", src, "-o", o1, NULL };
		char *ref_argv[] = { (char *)cc, "-O2", "-c", "-Iruntime/include", ref, "-o", o2, NULL };
		double tg[MAXREPS], tr[MAXREPS];
		for (int r = 0; r < reps; r++) {
			if (run_cmd(r % 2 ? ref_argv : gen_argv, 0, r % 2 ? &tr[r] : &tg[r], NULL) ||
			    run_cmd(r % 2 ? gen_argv : ref_argv, 0, r % 2 ? &tg[r] : &tr[r], NULL))
				die("a build of %s failed", models[m]);
		}
		double g = median(tg, reps), c = median(tr, reps);
		printf("%-7s %22.3f %26.3f %7.2f\n", models[m], g, c, g / c);
	}
	return 0;
}

/* ---- bench memory ------------------------------------------------------- */

/* Max RSS (bytes) of `chain train` of NADE with H hidden units in precision
 * prec on `data`, 1 epoch, batch 100, T threads; the wall time in *sec. */
static double train_maxrss(const char *chain, const char *tmp, const char *h, const char *prec,
                           const char *data, const char *threads, double *sec)
{
	char hdef[32], ckpt[600];
	snprintf(hdef, sizeof hdef, "H=%s", h);
	snprintf(ckpt, sizeof ckpt, "%s/mem.safetensors", tmp);
	char *av[] = { (char *)chain, "train", "examples/nade.chain", "-D", hdef, "--precision", (char *)prec,
		       "--data", (char *)data, "--epochs", "1", "--batch", "100", "--threads", (char *)threads,
		       "-o", ckpt, "--quiet", NULL };
	long rss;
	if (run_cmd(av, 1, sec, &rss))
		die("chain train -D %s failed", hdef);
	return (double)rss * 1024;
}

/* The peak of `chain train` against what it must hold: the data (a byte per
 * pixel),
 * the trainer's theta-sized buffers, the per-thread gradients; the rest is
 * the process itself.  The compiler runs first and gives its memory back
 * (compiler/jit.c), so the peak is either the compiler's (measured on a
 * 1-row data set, where training holds next to nothing) or training's
 * (where the rest is the process's resident base after compiling). */
static int cmd_memory(int argc, char **argv)
{
	if (argc < 4)
		die("usage: bench memory CHAIN TMP THREADS H...%s", "");
	const char *chain = argv[0], *tmp = argv[1];
	int T = atoi(argv[2]);
	chain_dataset train, small;
	chain_error err;
	if (chain_data_load(TRAIN_DATA, NULL, &train, &err))
		die("%s", err.msg);
	const size_t sizes[] = { train.rows, 100, 1 };
	char paths[3][600];
	snprintf(paths[0], sizeof paths[0], "%s", TRAIN_DATA);
	for (int k = 1; k < 3; k++) {
		small = train;
		small.rows = sizes[k];
		snprintf(paths[k], sizeof paths[k], "%s/mem-%zu.npy", tmp, sizes[k]);
		if (chain_data_save(paths[k], &small, &err))
			die("%s", err.msg);
	}
	const double n = (double)train.cols, MB = 1048576;
	printf("peak resident memory (max RSS) of `chain train examples/nade.chain -D H=.. --precision P --epochs 1 --batch 100 --threads %d`\n", T);
	printf("data = rows x n bytes (0/1 pixels, stored one byte each); params = the trainer's theta-sized buffers: f64 3 x 8P (theta, Adam's m and v),\n");
	printf("f32 28P bytes (theta 4P, its double master copy 8P, m and v 16P; a model with a penalty also holds its gradient, 8P or 4P more);\n");
	printf("threads = T x (P + 2 x n x H) reals (each thread's gradient, and the gradient kernel's scratch: its transposed copies of W and dW);\n");
	printf("rest = max RSS - data - params - threads: the process itself\n");
	printf("%-5s %4s %6s %11s %11s %11s %11s %11s %7s\n", "H", "prec", "rows", "max RSS", "data", "params",
	       "threads", "rest", "time");
	char th[16];
	snprintf(th, sizeof th, "%d", T);
	for (int i = 3; i < argc; i++) {
		double H = atof(argv[i]), P = 2 * n * H + H + n;
		for (int f = 0; f < 2; f++) {
			const char *prec = f ? "f32" : "f64";
			double real = f ? 4 : 8;
			for (int k = 0; k < 3; k++) {
				double sec, rss = train_maxrss(chain, tmp, argv[i], prec, paths[k], th, &sec);
				double rows = (double)sizes[k], tg = rows < T ? rows : T;
				double data = rows * n, params = (f ? 28 : 24) * P, grads = tg * (P + 2 * n * H) * real;
				printf("%-5s %4s %6.0f %8.1f MB %8.1f MB %8.1f MB %8.1f MB %8.1f MB %6.1fs%s\n", argv[i], prec,
				       rows, rss / MB, data / MB, params / MB, grads / MB, (rss - data - params - grads) / MB, sec,
				       k == 2 ? "  (1 row: the compiler's peak)" : "");
			}
		}
		/* the compiler alone: the same model through chain build */
		char obj[600], hdef[32];
		snprintf(obj, sizeof obj, "%s/mem.o", tmp);
		snprintf(hdef, sizeof hdef, "H=%s", argv[i]);
		char *bv[] = { (char *)chain, "build", "examples/nade.chain", "-D", hdef, "-o", obj, NULL };
		long rss;
		double sec;
		if (run_cmd(bv, 1, &sec, &rss))
			die("chain build -D %s failed", hdef);
		printf("%-5s %4s %6s %8.1f MB   (chain build of the same model)\n", argv[i], "f64", "-", (double)rss / 1024);
	}
	chain_dataset_free(&train);
	return 0;
}

/* ---- bench ab ------------------------------------------------------------ */

/* One object of `bench ab`: its descriptor, theta and buffers. */
typedef struct ab_obj {
	const char *path;
	const chain_model *m;
	void *theta, *obs, *out;
} ab_obj;

/* One call of kernel k on B rows (sample and complete write their rows). */
static void ab_call(const ab_obj *o, enum ab_kernel k, size_t B)
{
	const chain_kernels_f64 *d = o->m->f64;
	const chain_kernels_f32 *f = o->m->f32;
	size_t half = o->m->num_positions / 2;
	switch (k) {
	case AB_LOGP:
		d ? d->logp_batch(o->theta, o->obs, B, o->out) : f->logp_batch(o->theta, o->obs, B, o->out);
		break;
	case AB_GRAD:
		d ? (void)d->loglik_grad(o->theta, o->obs, B, o->out) : (void)f->loglik_grad(o->theta, o->obs, B, o->out);
		break;
	case AB_SAMPLE:
		d ? d->sample(o->theta, 5, 0, B, o->obs) : f->sample(o->theta, 5, 0, B, o->obs);
		break;
	case AB_COMPLETE:
		d ? d->complete(o->theta, 5, 0, half, B, o->obs) : f->complete(o->theta, 5, 0, half, B, o->obs);
		break;
	case AB_OBJECTIVE:
		d ? (void)d->objective(o->theta, o->obs, B, NULL) : (void)f->objective(o->theta, o->obs, B, NULL);
		break;
	}
}

/* bench ab MODEL KERNEL BATCH ROUNDS A.so B.so ...: the same kernel of
 * several builds of one model, side by side.  Each .so is `chain build`
 * output linked with `cc -shared`; each gets theta from its own init(seed
 * 1) and the same rows: the shipped test digits when the model's rows are
 * 784 reals, else rows of random bits (one in 8 set, fixed seed); sample
 * and complete (prefix: half the positions) write over their rows, the
 * same for all.  A round times each .so in turn (the order rotating from
 * round to round), calling the kernel until 50 ms have passed; the line of
 * each .so gives its median images/s and the median of the rounds' ratios
 * to the first .so (above 1: faster), the ratios of one round taken within
 * a fraction of a second of each other.  What the commit messages'
 * "interleaved .so timer" ratios are. */
static int cmd_ab(int argc, char **argv)
{
	static const char *const names[] = { "logp", "grad", "sample", "complete", "objective" };
	if (argc < 5)
		die("usage: bench ab MODEL logp|grad|sample|complete|objective BATCH ROUNDS A.so [B.so ...]%s", "");
	int k = -1;
	for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
		if (strcmp(argv[1], names[i]) == 0)
			k = i;
	long B = atol(argv[2]), R = atol(argv[3]);
	int n = argc - 4;
	if (k < 0)
		die("bench ab: unknown kernel %s (logp, grad, sample, complete, objective)", argv[1]);
	if (B < 1 || B > 100000 || R < 1 || R > 99)
		die("bench ab: BATCH must be 1..100000 and ROUNDS 1..99%s", "");
	char sym[256];
	snprintf(sym, sizeof sym, "%s_model", argv[0]);
	ab_obj *o = calloc((size_t)n, sizeof *o);
	double *rate = calloc((size_t)(n * R), sizeof *rate), *ratio = calloc((size_t)R, sizeof *ratio);
	if (!o || !rate || !ratio)
		die("out of memory%s", "");
	chain_dataset test = { 0 };
	chain_error err;
	for (int i = 0; i < n; i++) {
		o[i].path = argv[4 + i];
		void *h = dlopen(o[i].path, RTLD_NOW | RTLD_LOCAL);
		if (!h)
			die("bench ab: %s", dlerror());
		o[i].m = dlsym(h, sym);
		if (!o[i].m)
			die("bench ab: no symbol %s in that object", sym);
		const chain_model *m = o[i].m;
		size_t sz = m->f32 ? sizeof(float) : sizeof(double), P = m->num_params, O = m->obs_size;
		size_t outn = k == AB_GRAD ? P : (size_t)B;
		o[i].theta = chain_calloc_aligned(P ? P : 1, sz);
		o[i].obs = chain_calloc_aligned(O * (size_t)B + 1, sz);
		o[i].out = chain_calloc_aligned(outn + 1, sz);
		if (!o[i].theta || !o[i].obs || !o[i].out)
			die("out of memory%s", "");
		m->f32 ? m->f32->init(o[i].theta, 1) : m->f64->init(o[i].theta, 1);
		if (O == 784 && !test.rows && chain_data_load(TEST_DATA, NULL, &test, &err))
			die("%s", err.msg);
		srand(3);
		for (size_t j = 0; j < O * (size_t)B; j++) {
			double v = O == 784 ? chain_data_value(&test, j % (test.rows * test.cols)) : (double)(rand() % 8 == 0);
			if (m->f32)
				((float *)o[i].obs)[j] = (float)v;
			else
				((double *)o[i].obs)[j] = v;
		}
	}
	for (int i = 0; i < n; i++)
		ab_call(&o[i], (enum ab_kernel)k, (size_t)B); /* warm up */
	for (long r = 0; r < R; r++) {
		for (int j = 0; j < n; j++) {
			int i = (int)((r + j) % n);
			double t0 = now(), t;
			long calls = 0;
			do {
				ab_call(&o[i], (enum ab_kernel)k, (size_t)B);
				calls++;
			} while ((t = now() - t0) < 0.05);
			rate[i * R + r] = (double)calls * (double)B / t;
		}
	}
	for (int i = 0; i < n; i++) {
		for (long r = 0; r < R; r++)
			ratio[r] = rate[i * R + r] / rate[r];
		double med_ratio = median(ratio, (int)R);
		printf("%-40s %s batch %ld  %10.1f img/s  ratio %.3f\n", o[i].path, names[k], B, median(rate + i * R, (int)R),
		       med_ratio);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "table") == 0)
		return cmd_table(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "buildtime") == 0)
		return cmd_buildtime(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "memory") == 0)
		return cmd_memory(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "ab") == 0)
		return cmd_ab(argc - 2, argv + 2);
	fprintf(stderr, "usage: bench table|buildtime|memory|ab ... (see the top of bench/bench.c)\n");
	return 1;
}
