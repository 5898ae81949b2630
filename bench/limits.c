/* limits.c -- what this machine can do at most, measured in the same run as
 * the kernels, so that bench/bench.c can say which fraction of it each
 * kernel reaches.
 *
 *   limits [--quick]
 *
 * Prints one line per limit and thread count, "NAME THREADS VALUE UNIT":
 *
 *   fma_f64, fma_f32   peak GFLOP/s of fused multiply-adds (2 flops each):
 *                      16 independent accumulator chains of explicit vector
 *                      types (128, 256 and 512 bits; the best counts), so
 *                      neither latency nor the vectorizer limits it;
 *   sigmoid_f64/_f32   G sigmoids/s, 1 / (1 + exp(-l)) in the stable form the
 *                      kernels use, over an L1-resident array of 512 values:
 *                      the best of glibc's vector exp (libmvec, reached with
 *                      -ffast-math) and two polynomial exps the compiler
 *                      vectorizes (Taylor's, and the generated kernels' own:
 *                      minimax polynomial, exponent from the bits);
 *   bw_l2, bw_l3, bw_dram  read bandwidth in GB/s: vectorized sums over an
 *                      array of 1 MiB per thread (in L2), 16 MiB in all (in
 *                      L3) and 1 GiB (DRAM; 256 MiB with --quick).
 *
 * Each for 1 and 2 threads: with 2, both threads run at once and the value is
 * their sum (on a 2-vCPU VM whose vCPUs are SMT siblings it would not
 * double).  The best of 5 runs (3 with --quick): a limit is what the machine
 * can do, and other load on a shared machine only ever lowers a run.  Lines
 * starting with '#' are details (each variant).  Compile with -O3 -march=native -ffast-math (the
 * reductions must vectorize) -lm -lpthread.  Not a test: numbers only.
 */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static volatile double sink;   /* results go here so nothing is optimized away */
static volatile double seed_v = 1.0;

/* ---- FMA peak: acc = acc * m + c on 16 independent chains ------------- */

typedef double v2d __attribute__((vector_size(16)));
typedef double v4d __attribute__((vector_size(32)));
typedef double v8d __attribute__((vector_size(64)));
typedef float v4f __attribute__((vector_size(16)));
typedef float v8f __attribute__((vector_size(32)));
typedef float v16f __attribute__((vector_size(64)));

/* Returns the flops done: iters * 16 chains * lanes * 2. */
#define FMA_KERNEL(NAME, VT, ST)                                                        \
	static double NAME(long iters)                                                  \
	{                                                                               \
		const int lanes = (int)(sizeof(VT) / sizeof(ST));                       \
		ST s = (ST)seed_v;                                                      \
		VT m = (VT){ 0 } + (ST)0.999999 * s, c = (VT){ 0 } + (ST)1e-7 * s;      \
		VT a0 = m, a1 = m + c, a2 = m - c, a3 = m + 2 * c, a4 = m - 2 * c;       \
		VT a5 = m + 3 * c, a6 = m - 3 * c, a7 = m + 4 * c, a8 = m - 4 * c;       \
		VT a9 = m + 5 * c, a10 = m - 5 * c, a11 = m + 6 * c, a12 = m - 6 * c;    \
		VT a13 = m + 7 * c, a14 = m - 7 * c, a15 = m + 8 * c;                   \
		for (long i = 0; i < iters; i++) {                                      \
			a0 = a0 * m + c; a1 = a1 * m + c; a2 = a2 * m + c;              \
			a3 = a3 * m + c; a4 = a4 * m + c; a5 = a5 * m + c;              \
			a6 = a6 * m + c; a7 = a7 * m + c; a8 = a8 * m + c;              \
			a9 = a9 * m + c; a10 = a10 * m + c; a11 = a11 * m + c;          \
			a12 = a12 * m + c; a13 = a13 * m + c; a14 = a14 * m + c;        \
			a15 = a15 * m + c;                                              \
			__asm__ volatile("" : "+x"(a0), "+x"(a8));                      \
		}                                                                       \
		VT t = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11 +    \
		       a12 + a13 + a14 + a15;                                           \
		double r = 0;                                                           \
		for (int l = 0; l < lanes; l++)                                         \
			r += (double)t[l];                                              \
		sink = r;                                                               \
		return (double)iters * 16 * lanes * 2;                                  \
	}

FMA_KERNEL(fma_f64_128, v2d, double)
FMA_KERNEL(fma_f64_256, v4d, double)
FMA_KERNEL(fma_f64_512, v8d, double)
FMA_KERNEL(fma_f32_128, v4f, float)
FMA_KERNEL(fma_f32_256, v8f, float)
FMA_KERNEL(fma_f32_512, v16f, float)

/* ---- sigmoid throughput ------------------------------------------------ */

#define SIG_LEN 512

/* The stable sigmoid of the kernels: e = exp(-|l|); l >= 0 ? 1/(1+e) : e/(1+e). */
static void sig_libm_f64(const double *restrict x, double *restrict y)
{
	for (int i = 0; i < SIG_LEN; i++) {
		double e = exp(-fabs(x[i]));
		y[i] = (x[i] >= 0 ? 1.0 : e) / (1.0 + e);
	}
}

static void sig_libm_f32(const float *restrict x, float *restrict y)
{
	for (int i = 0; i < SIG_LEN; i++) {
		float e = expf(-fabsf(x[i]));
		y[i] = (x[i] >= 0 ? 1.0f : e) / (1.0f + e);
	}
}

/* exp(v) for v <= 0: v = k ln2 + r, |r| <= ln2/2, exp(r) by its Taylor
 * polynomial (degree 12 in double, 6 in float: about 1-2 ulp), 2^k put in the
 * exponent bits.  Straight-line code the vectorizer takes. */
static inline double exp_poly_f64(double v)
{
	v = v < -708.0 ? -708.0 : v;
	double k = __builtin_round(v * 1.4426950408889634);
	double r = v - k * 6.93147180369123816490e-01 - k * 1.90821492927058770002e-10;
	double p = 1.0 / 479001600;
	p = p * r + 1.0 / 39916800;
	p = p * r + 1.0 / 3628800;
	p = p * r + 1.0 / 362880;
	p = p * r + 1.0 / 40320;
	p = p * r + 1.0 / 5040;
	p = p * r + 1.0 / 720;
	p = p * r + 1.0 / 120;
	p = p * r + 1.0 / 24;
	p = p * r + 1.0 / 6;
	p = p * r + 0.5;
	p = p * r + 1.0;
	p = p * r + 1.0;
	int64_t bits = ((int64_t)k + 1023) << 52;
	double s;
	memcpy(&s, &bits, sizeof s);
	return p * s;
}

static inline float exp_poly_f32(float v)
{
	v = v < -87.0f ? -87.0f : v;
	float k = __builtin_roundf(v * 1.44269504f);
	float r = v - k * 0.693145752f - k * 1.42860677e-6f;
	float p = 1.0f / 720;
	p = p * r + 1.0f / 120;
	p = p * r + 1.0f / 24;
	p = p * r + 1.0f / 6;
	p = p * r + 0.5f;
	p = p * r + 1.0f;
	p = p * r + 1.0f;
	int32_t bits = ((int32_t)k + 127) << 23;
	float s;
	memcpy(&s, &bits, sizeof s);
	return p * s;
}

/* The exp of the generated kernels (compiler/cg_math.c): the polynomial of
 * least relative error (degree 11 in double, 6 in float; tools/minimax.py
 * exp), n = x / ln 2 rounded by adding 1.5 * 2^52 (2^23), whose low bits
 * are n, and 2^n made from those bits; the same accuracy in fewer
 * operations.  n is taken from the bits as an integer, which -ffast-math
 * cannot fold away (it could fold (t - shift) into x / ln 2). */
static inline double exp_minimax_f64(double v)
{
	v = v < -708.0 ? -708.0 : v;
	double t = v * 1.4426950408889634 + 0x1.8p52;
	int64_t tb, sb;
	double shift = 0x1.8p52;
	memcpy(&tb, &t, sizeof tb);
	memcpy(&sb, &shift, sizeof sb);
	int64_t n = tb - sb;
	double k = (double)n;
	double r = v - k * 6.93147180369123816490e-01 - k * 1.90821492927058770002e-10;
	static const double c[12] = {
		0x1.0000000000000p+0, 0x1.0000000000000p+0, 0x1.0000000000010p-1, 0x1.55555555554a2p-3,
		0x1.555555554f361p-5, 0x1.1111111130e26p-7, 0x1.6c16c18784432p-10, 0x1.a01a0110465d4p-13,
		0x1.a01992c8623e2p-16, 0x1.71df4535762bbp-19, 0x1.28b319cb73a0cp-22, 0x1.ad6612a7a9239p-26,
	};
	double p = c[11];
	for (int i = 10; i >= 0; i--)
		p = p * r + c[i];
	int64_t bits = (int64_t)((uint64_t)(tb + 1023) << 52);
	double s;
	memcpy(&s, &bits, sizeof s);
	return p * s;
}

static inline float exp_minimax_f32(float v)
{
	v = v < -87.0f ? -87.0f : v;
	float t = v * 1.44269504f + 0x1.8p23f;
	int32_t tb, sb;
	float shift = 0x1.8p23f;
	memcpy(&tb, &t, sizeof tb);
	memcpy(&sb, &shift, sizeof sb);
	int32_t n = tb - sb;
	float k = (float)n;
	float r = v - k * 0.693145752f - k * 1.42860677e-6f;
	static const float c[7] = {
		0x1.000000p+0f, 0x1.000000p+0f, 0x1.fffffap-2f, 0x1.55540ap-3f, 0x1.55589ap-5f, 0x1.126d1ap-7f, 0x1.6ab972p-10f,
	};
	float p = c[6];
	for (int i = 5; i >= 0; i--)
		p = p * r + c[i];
	int32_t bits = (int32_t)((uint32_t)(tb + 127) << 23);
	float s;
	memcpy(&s, &bits, sizeof s);
	return p * s;
}

static void sig_minimax_f64(const double *restrict x, double *restrict y)
{
	for (int i = 0; i < SIG_LEN; i++) {
		double e = exp_minimax_f64(-fabs(x[i]));
		y[i] = (x[i] >= 0 ? 1.0 : e) / (1.0 + e);
	}
}

static void sig_minimax_f32(const float *restrict x, float *restrict y)
{
	for (int i = 0; i < SIG_LEN; i++) {
		float e = exp_minimax_f32(-fabsf(x[i]));
		y[i] = (x[i] >= 0 ? 1.0f : e) / (1.0f + e);
	}
}

static void sig_poly_f64(const double *restrict x, double *restrict y)
{
	for (int i = 0; i < SIG_LEN; i++) {
		double e = exp_poly_f64(-fabs(x[i]));
		y[i] = (x[i] >= 0 ? 1.0 : e) / (1.0 + e);
	}
}

static void sig_poly_f32(const float *restrict x, float *restrict y)
{
	for (int i = 0; i < SIG_LEN; i++) {
		float e = exp_poly_f32(-fabsf(x[i]));
		y[i] = (x[i] >= 0 ? 1.0f : e) / (1.0f + e);
	}
}

/* Runs one of the six sigmoid loops `iters` times; returns sigmoids done. */
static double sig_run(int which, long iters)
{
	double xd[SIG_LEN], yd[SIG_LEN];
	float xf[SIG_LEN], yf[SIG_LEN];
	for (int i = 0; i < SIG_LEN; i++) {
		xd[i] = seed_v * (double)(i - SIG_LEN / 2) / 37.0;
		xf[i] = (float)xd[i];
	}
	double acc = 0;
	for (long it = 0; it < iters; it++) {
		switch (which) {
		case 0: sig_libm_f64(xd, yd); break;
		case 1: sig_poly_f64(xd, yd); break;
		case 2: sig_minimax_f64(xd, yd); break;
		case 3: sig_libm_f32(xf, yf); break;
		case 4: sig_poly_f32(xf, yf); break;
		default: sig_minimax_f32(xf, yf); break;
		}
		__asm__ volatile("" ::: "memory");
	}
	for (int i = 0; i < SIG_LEN; i++)
		acc += yd[i] * (which < 3) + (double)yf[i] * (which >= 3);
	sink = acc;
	return (double)iters * SIG_LEN;
}

/* ---- read bandwidth ---------------------------------------------------- */

/* Sums `len` doubles `passes` times; returns the bytes read. */
static double bw_run(const double *a, size_t len, long passes)
{
	double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
	for (long p = 0; p < passes; p++) {
		for (size_t i = 0; i + 4 <= len; i += 4) {
			s0 += a[i];
			s1 += a[i + 1];
			s2 += a[i + 2];
			s3 += a[i + 3];
		}
		__asm__ volatile("" ::: "memory");
	}
	sink = s0 + s1 + s2 + s3;
	return (double)passes * (double)len * sizeof(double);
}

/* ---- running a test on T threads at once ------------------------------- */

enum test { T_FMA, T_SIG, T_BW };

typedef struct job {
	enum test test;
	int variant;        /* FMA: 0..5; sigmoid: 0..5 */
	long iters;         /* iterations (FMA, sigmoid) or passes (bandwidth) */
	const double *buf;  /* bandwidth: this thread's array */
	size_t len;
	pthread_barrier_t *bar;
	double work, seconds;
} job;

static double run_once(job *j)
{
	switch (j->test) {
	case T_FMA: {
		static double (*const f[6])(long) = { fma_f64_128, fma_f64_256, fma_f64_512,
		                                      fma_f32_128, fma_f32_256, fma_f32_512 };
		return f[j->variant](j->iters);
	}
	case T_SIG:
		return sig_run(j->variant, j->iters);
	default:
		return bw_run(j->buf, j->len, j->iters);
	}
}

static void *thread_main(void *arg)
{
	job *j = arg;
	pthread_barrier_wait(j->bar);
	double t0 = now();
	j->work = run_once(j);
	j->seconds = now() - t0;
	return NULL;
}

/* Work per second of T threads running j at once (sum of work / slowest). */
static double run_threads(int T, const job *proto, double *const bufs[])
{
	job js[2];
	pthread_t th[2];
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, (unsigned)T);
	for (int t = 0; t < T; t++) {
		js[t] = *proto;
		js[t].bar = &bar;
		if (bufs)
			js[t].buf = bufs[t];
		if (t > 0)
			pthread_create(&th[t], NULL, thread_main, &js[t]);
	}
	thread_main(&js[0]);
	double work = js[0].work, sec = js[0].seconds;
	for (int t = 1; t < T; t++) {
		pthread_join(th[t], NULL);
		work += js[t].work;
		if (js[t].seconds > sec)
			sec = js[t].seconds;
	}
	pthread_barrier_destroy(&bar);
	return work / sec;
}

/* Picks iterations so one run takes about `target` seconds on one thread,
 * then returns the best rate of `reps` runs on T threads. */
static double measure(int T, job proto, double *const bufs[], double target, int reps)
{
	proto.iters = 1;
	for (;;) {
		if (bufs)
			proto.buf = bufs[0];
		double t0 = now();
		run_once(&proto);
		double dt = now() - t0;
		if (dt > target / 8 || proto.iters > (1L << 40))
			break;
		proto.iters *= 2;
	}
	double t0 = now();
	run_once(&proto);
	double dt = now() - t0;
	proto.iters = (long)((double)proto.iters * target / dt) + 1;
	double best = 0;
	for (int i = 0; i < reps; i++) {
		double r = run_threads(T, &proto, bufs);
		if (r > best)
			best = r;
	}
	return best;
}

int main(int argc, char **argv)
{
	int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
	double target = quick ? 0.05 : 0.1;
	int reps = quick ? 3 : 5;
	static const char *const fma_names[6] = { "f64 x 2", "f64 x 4", "f64 x 8",
	                                          "f32 x 4", "f32 x 8", "f32 x 16" };
	static const char *const sig_names[6] = { "f64 libmvec exp", "f64 polynomial exp", "f64 minimax exp",
	                                          "f32 libmvec expf", "f32 polynomial exp", "f32 minimax exp" };

	/* bandwidth buffers: per thread, for the three sizes */
	size_t dram_bytes = (quick ? 256UL : 1024UL) << 20;
	size_t sizes[3] = { 1UL << 20, 16UL << 20, dram_bytes };
	static const char *const bw_names[3] = { "bw_l2", "bw_l3", "bw_dram" };

	for (int T = 1; T <= 2; T++) {
		double best[2] = { 0, 0 };
		for (int v = 0; v < 6; v++) {
			job j = { .test = T_FMA, .variant = v };
			double r = measure(T, j, NULL, target, reps) / 1e9;
			printf("# fma %-9s threads %d: %8.1f GFLOP/s\n", fma_names[v], T, r);
			if (r > best[v / 3])
				best[v / 3] = r;
		}
		printf("fma_f64 %d %.2f GFLOP/s\n", T, best[0]);
		printf("fma_f32 %d %.2f GFLOP/s\n", T, best[1]);
		double sbest[2] = { 0, 0 };
		for (int v = 0; v < 6; v++) {
			job j = { .test = T_SIG, .variant = v };
			double r = measure(T, j, NULL, target, reps) / 1e9;
			printf("# sigmoid %-19s threads %d: %6.3f G/s\n", sig_names[v], T, r);
			if (r > sbest[v / 3])
				sbest[v / 3] = r;
		}
		printf("sigmoid_f64 %d %.4f G/s\n", T, sbest[0]);
		printf("sigmoid_f32 %d %.4f G/s\n", T, sbest[1]);
		for (int s = 0; s < 3; s++) {
			size_t len = sizes[s] / (s == 0 ? 1 : (size_t)T) / sizeof(double);
			double *bufs[2] = { NULL, NULL };
			for (int t = 0; t < T; t++) {
				bufs[t] = malloc(len * sizeof(double));
				if (!bufs[t]) {
					fprintf(stderr, "limits: out of memory\n");
					return 1;
				}
				for (size_t i = 0; i < len; i++)
					bufs[t][i] = (double)(i & 7);
			}
			job j = { .test = T_BW, .len = len };
			double r = measure(T, j, bufs, target, reps) / 1e9;
			printf("%s %d %.2f GB/s\n", bw_names[s], T, r);
			for (int t = 0; t < T; t++)
				free(bufs[t]);
		}
		fflush(stdout);
	}
	return 0;
}
