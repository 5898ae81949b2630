/* test_models.c -- the compiled example models against the hand-written
 * references (examples/reference/), kernel by kernel: the same log p on
 * real digits, the same gradients, init, samples, completions and
 * conditionals, under every order form; and exactness (probabilities sum
 * to 1 over all states).
 *
 * Each model is compiled in-process by the compiler library (JIT); each
 * reference is compiled with cc into a .so and dlopen()ed.
 */
#include <dlfcn.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "chain/data.h"
#include "chain/model.h"
#include "chain/rng.h"
#include "chainc.h"
#include "test_jit.h"

static char tmpdir[64];

/* ----------------------------------------------------------- compiling */

/* Compiles model source text with -D n=N (and H=H when the model has H). */
static const chain_model *gen_compile(gen *g, const char *src, int64_t n, int64_t h, bool f32)
{
	dim_override ov[2] = {{"n", n, false}, {"H", h, false}};
	return gen_compile_with(g, src, ov, h && strstr(src, "dim H") ? 2 : 1, f32);
}

static const char *fvsbn_src =
	"model fvsbn\ndim n = 784\ndata x : bin[n]\nparam W : real[n, n] ~ normal(0, 0.01)\nparam b : real[n]\n"
	"%s\norder x%s\nx[i] ~ bernoulli_logit(b[i] + sum(j before i) W[i, j] * x[j])\nmaximize loglik\n";
static const char *nade_src =
	"model nade\ndim n = 784\ndim H = 500\ndata x : bin[n]\nparam W : real[H, n] ~ normal(0, 0.01)\nparam c : real[H]\n"
	"param V : real[n, H] ~ normal(0, 0.01)\nparam b : real[n]\n%s\norder x%s\n"
	"let h[i] = sigmoid(c + sum(j before i) W[:, j] * x[j])\nx[i] ~ bernoulli_logit(b[i] + dot(V[i, :], h[i]))\nmaximize loglik\n";

enum order_form_t { NATURAL, REVERSE, BY_PERM, RANDOM, NFORMS };
static const char *form_names[] = {"natural", "reverse", "by P", "random"};

/* The model text with one of the order forms. */
static char *model_text(const char *tmpl, int form, size_t n)
{
	static char buf[1 << 16];
	char perm[8192] = "", suffix[64] = "";
	if (form == REVERSE) {
		snprintf(suffix, sizeof suffix, " ");
		tmpl = tmpl == fvsbn_src ? fvsbn_src : nade_src;
	}
	if (form == BY_PERM) {
		size_t at = (size_t)snprintf(perm, sizeof perm, "const P : int[n] = [");
		for (size_t k = 0; k < n; k++) /* a fixed shuffle: 3k+1 mod n, n not a multiple of 3 */
			at += (size_t)snprintf(perm + at, sizeof perm - at, "%s%zu", k ? ", " : "", (3 * k + 1) % n);
		snprintf(perm + at, sizeof perm - at, "]");
		snprintf(suffix, sizeof suffix, " by P");
	}
	if (form == RANDOM)
		snprintf(suffix, sizeof suffix, " by random(7)");
	snprintf(buf, sizeof buf, tmpl, perm, suffix);
	if (form == REVERSE) {
		char *o = strstr(buf, "order x");
		memmove(o + 15, o + 7, strlen(o + 7) + 1);
		memcpy(o, "order reverse(x)", 16);
	}
	return buf;
}

/* ---------------------------------------------------------- references */

typedef struct ref {
	void *so;
	void (*init)(double *, uint64_t);
	double (*logp)(const double *, const double *);
	double (*loglik_grad)(const double *, const double *, size_t, double *);
	void (*sample)(const double *, uint64_t, uint64_t, size_t, double *);
	void (*complete)(const double *, uint64_t, uint64_t, size_t, size_t, double *);
	void (*conditionals)(const double *, const double *, double *);
	float (*logp32)(const float *, const float *);
	void (*set_order)(const size_t *);
} ref;

static bool ref_open(ref *r, const char *mname, size_t n, size_t h, bool f32)
{
	char so[256], cmd[1024], fn[128];
	const char *cc = getenv("CC") ? getenv("CC") : "cc";
	snprintf(so, sizeof so, "%s/%s_%zu_%zu%s.so", tmpdir, mname, n, h, f32 ? "_f32" : "");
	snprintf(cmd, sizeof cmd, "%s -O2 -shared -fPIC -Iruntime/include -DN=%zu -DH=%zu %s -o %s examples/reference/%s.c", cc,
	         n, h, f32 ? "-DCHAIN_F32" : "", so, mname);
	if (system(cmd) != 0)
		return false;
	r->so = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	if (!r->so) {
		fprintf(stderr, "%s\n", dlerror());
		return false;
	}
#define LOAD(field, name) (snprintf(fn, sizeof fn, "%s_%s", mname, name), *(void **)&r->field = dlsym(r->so, fn))
	if (f32) {
		LOAD(logp32, "logp");
	} else {
		LOAD(init, "init");
		LOAD(logp, "logp");
		LOAD(loglik_grad, "loglik_grad");
		LOAD(sample, "sample");
		LOAD(complete, "complete");
		LOAD(conditionals, "conditionals");
	}
	LOAD(set_order, "ref_set_order");
#undef LOAD
	return r->set_order != NULL;
}

/* The reference follows the compiled model's order (from its descriptor). */
static void ref_follow(ref *r, const chain_model *m)
{
	size_t perm[4096];
	for (size_t k = 0; k < m->num_positions; k++)
		perm[k] = m->order[k] - m->data[0].offset;
	r->set_order(perm);
}

/* ----------------------------------------------------------- fixtures */

static chain_dataset digits;

static int setup(void **state)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/chain-test-models-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	chain_error err;
	if (chain_data_load("examples/data/binarized-test.amat.gz", NULL, &digits, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		return -1;
	chain_dataset_free(&digits);
	return 0;
}

/* Random but reasonable params: the model's init plus noise on used entries. */
static void random_theta(const chain_model *m, double *theta, uint64_t seed, double sd)
{
	m->f64->init(theta, seed);
	for (size_t p = 0; p < m->num_param_vars; p++) {
		const chain_var *v = &m->params[p];
		for (size_t e = 0; e < v->size; e++)
			if (!v->used || v->used[e])
				theta[v->offset + e] += sd * chain_rng_normal(seed, CHAIN_STREAM_DATA, v->offset + e, 3, 0);
	}
}

static double max_abs(const double *a, size_t n)
{
	double m = 0;
	for (size_t i = 0; i < n; i++)
		if (fabs(a[i]) > m)
			m = fabs(a[i]);
	return m;
}

/* ---------------------------------------------------------------- tests */

/* Full-size models on real digits: log p and its gradient equal the
 * hand-written ones (relative 1e-12 and 1e-10). */
static void full_size(const char *name, const char *tmpl, size_t h)
{
	gen g = {0};
	const chain_model *m = gen_compile(&g, model_text(tmpl, NATURAL, 784), 784, (int64_t)h, false);
	assert_non_null(m);
	ref r = {0};
	assert_true(ref_open(&r, name, 784, h, false));
	size_t np = m->num_params, rows = 20;
	double *theta = malloc(np * sizeof(double)), *g1 = calloc(np, sizeof(double)), *g2 = calloc(np, sizeof(double));
	double *init2 = malloc(np * sizeof(double));
	m->f64->init(theta, 5);
	r.init(init2, 5);
	assert_memory_equal(theta, init2, np * sizeof(double));
	random_theta(m, theta, 11, 0.05);
	for (size_t i = 0; i < rows; i++) {
		const double *x = digits.values + i * 784;
		double a = m->f64->logp(theta, x), b = r.logp(theta, x);
		if (!(fabs(a - b) <= 1e-12 * fabs(b)))
			fail_msg("%s row %zu: generated logp %.17g, reference %.17g", name, i, a, b);
	}
	/* logp_batch works on blocks of rows: 13 rows is one full block and a
	 * partial one */
	double batch[13];
	m->f64->logp_batch(theta, digits.values, 13, batch);
	for (size_t i = 0; i < 13; i++) {
		double b = m->f64->logp(theta, digits.values + i * 784);
		if (!(fabs(batch[i] - b) <= 1e-12 * fabs(b)))
			fail_msg("%s row %zu: logp_batch %.17g, logp %.17g", name, i, batch[i], b);
	}
	/* the objective (mean log p) without a gradient runs logp_batch over
	 * chunks of 64 rows (cg_kernel.c): 130 rows are two chunks and part of
	 * a third, added in row order, so it is the mean of logp_batch's rows
	 * to the bit; with a gradient (loglik_grad) it agrees to rounding */
	enum { OBJ_ROWS = 130 };
	double lps[OBJ_ROWS], sum = 0;
	m->f64->logp_batch(theta, digits.values, OBJ_ROWS, lps);
	for (size_t i = 0; i < OBJ_ROWS; i++)
		sum += lps[i];
	double obj = m->f64->objective(theta, digits.values, OBJ_ROWS, NULL);
	if (obj != sum / OBJ_ROWS)
		fail_msg("%s: objective without a gradient %.17g, the mean of logp_batch %.17g", name, obj, sum / OBJ_ROWS);
	double *gobj = calloc(np, sizeof(double));
	double obj_g = m->f64->objective(theta, digits.values, OBJ_ROWS, gobj);
	if (!(fabs(obj_g - obj) <= 1e-12 * fabs(obj)))
		fail_msg("%s: objective with a gradient %.17g, without %.17g", name, obj_g, obj);
	assert_true(m->f64->objective(theta, digits.values, 0, NULL) == 0);
	free(gobj);

	double la = m->f64->loglik_grad(theta, digits.values, rows, g1);
	double lb = r.loglik_grad(theta, digits.values, rows, g2);
	if (!(fabs(la - lb) <= 1e-12 * fabs(lb)))
		fail_msg("%s: loglik_grad returns %.17g, the reference %.17g", name, la, lb);
	double scale = max_abs(g2, np), worst = 0;
	for (size_t t = 0; t < np; t++)
		worst = fmax(worst, fabs(g1[t] - g2[t]));
	if (!(worst <= 1e-10 * scale))
		fail_msg("%s: gradient differs by %.3g (scale %.3g)", name, worst, scale);
	free(theta);
	free(g1);
	free(g2);
	free(init2);
	dlclose(r.so);
	gen_free(&g);
}

static void test_fvsbn__full_size_digits__logp_and_gradient_match_reference(void **state)
{
	full_size("fvsbn", fvsbn_src, 0);
}

static void test_nade__full_size_digits__logp_and_gradient_match_reference(void **state)
{
	full_size("nade", nade_src, 100);
}

/* f32 builds agree with the f32 reference to 1e-5. */
/* A kernel that cannot get its scratch (docs/api.md): logp_batch writes
 * nothing, and the objective without a gradient, which calls logp_batch
 * over chunks of rows (cg_kernel.c), returns NaN, not a mean of what its
 * chunk array held.  In a child process whose address space is capped
 * just above what it uses, so that NADE's (H = 500) 3 MB transposed copy
 * of W cannot be mapped.  Not under AddressSanitizer, whose shadow memory
 * takes terabytes of address space. */
static void test_nade__scratch_not_available__outputs_untouched_objective_nan(void **state)
{
#ifdef __SANITIZE_ADDRESS__
	skip();
#else
	gen g = {0};
	const chain_model *m = gen_compile(&g, model_text(nade_src, NATURAL, 784), 784, 500, false);
	assert_non_null(m);
	double *theta = malloc(m->num_params * sizeof(double));
	m->f64->init(theta, 2);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		long pages = 0;
		FILE *f = fopen("/proc/self/statm", "r");
		if (!f || fscanf(f, "%ld", &pages) != 1)
			_exit(2);
		fclose(f);
		struct rlimit rl = { .rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (1 << 20),
		                     .rlim_max = RLIM_INFINITY };
		if (setrlimit(RLIMIT_AS, &rl) != 0)
			_exit(3);
		double out[4] = { 7, 7, 7, 7 };
		m->f64->logp_batch(theta, digits.values, 4, out);
		double obj = m->f64->objective(theta, digits.values, 4, NULL);
		_exit(out[0] == 7 && out[3] == 7 && isnan(obj) ? 0 : 1);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	free(theta);
	gen_free(&g);
#endif
}

static void test_nade__f32__logp_matches_reference(void **state)
{
	gen g = {0};
	const chain_model *m = gen_compile(&g, model_text(nade_src, NATURAL, 784), 784, 50, true);
	assert_non_null(m);
	assert_non_null(m->f32);
	ref r = {0};
	assert_true(ref_open(&r, "nade", 784, 50, true));
	size_t np = m->num_params;
	float *theta = malloc(np * sizeof(float)), *x = malloc(784 * sizeof(float));
	m->f32->init(theta, 3);
	for (size_t t = 0; t < np; t++)
		theta[t] += (float)(0.05 * chain_rng_normal(3, CHAIN_STREAM_DATA, t, 3, 0));
	for (size_t i = 0; i < 10; i++) {
		for (size_t j = 0; j < 784; j++)
			x[j] = (float)digits.values[i * 784 + j];
		float a = m->f32->logp(theta, x), b = r.logp32(theta, x);
		if (!(fabsf(a - b) <= 1e-5f * fabsf(b)))
			fail_msg("row %zu: f32 generated %.9g, reference %.9g", i, (double)a, (double)b);
	}
	free(theta);
	free(x);
	dlclose(r.so);
	gen_free(&g);
}

/* Full-size models (where blocks of rows run jammed and across rows in
 * vector lanes), f32 and f64: a row's sample and its log p are the same
 * bits whatever batch it comes in, full blocks or a partial last one. */
static void batch_split(const char *tmpl, size_t h, bool f32)
{
	enum { ROWS = 75 }; /* FVSBN's log p: a block of 64 rows and one of 11 */
	gen g = {0};
	const chain_model *m = gen_compile(&g, model_text(tmpl, NATURAL, 784), 784, (int64_t)h, f32);
	assert_non_null(m);
	size_t np = m->num_params, rs = f32 ? sizeof(float) : sizeof(double);
	void *theta = malloc(np * rs), *all = malloc(ROWS * 784 * rs), *part = malloc(ROWS * 784 * rs);
	double lp_all[ROWS], lp_part[ROWS]; /* floats in the first half for f32 */
	if (f32)
		m->f32->init(theta, 4);
	else
		m->f64->init(theta, 4);
	for (size_t t = 0; t < np; t++) {
		double noise = 0.5 * chain_rng_normal(4, CHAIN_STREAM_DATA, t, 4, 0);
		if (f32)
			((float *)theta)[t] += (float)noise;
		else
			((double *)theta)[t] += noise;
	}
	const size_t cuts[] = {0, 3, 32, 45, ROWS}, ncuts = sizeof cuts / sizeof cuts[0];
	if (f32) {
		m->f32->sample(theta, 17, 0, ROWS, all);
		for (size_t c = 0; c + 1 < ncuts; c++)
			m->f32->sample(theta, 17, cuts[c], cuts[c + 1] - cuts[c], (void *)((char *)part + cuts[c] * 784 * rs));
	} else {
		m->f64->sample(theta, 17, 0, ROWS, all);
		for (size_t c = 0; c + 1 < ncuts; c++)
			m->f64->sample(theta, 17, cuts[c], cuts[c + 1] - cuts[c], (void *)((char *)part + cuts[c] * 784 * rs));
	}
	assert_memory_equal(all, part, ROWS * 784 * rs);
	for (size_t i = 0; i < ROWS * 784; i++) {
		double v = digits.values[i % (digits.rows * 784)];
		if (f32)
			((float *)all)[i] = (float)v;
		else
			((double *)all)[i] = v;
	}
	for (size_t c = 0; c + 1 < ncuts; c++) {
		const char *rows = (const char *)all + cuts[c] * 784 * rs;
		size_t n = cuts[c + 1] - cuts[c];
		if (f32)
			m->f32->logp_batch(theta, (const float *)rows, n, (float *)lp_part + cuts[c]);
		else
			m->f64->logp_batch(theta, (const double *)rows, n, (double *)lp_part + cuts[c]);
	}
	if (f32)
		m->f32->logp_batch(theta, (const float *)all, ROWS, (float *)lp_all);
	else
		m->f64->logp_batch(theta, (const double *)all, ROWS, (double *)lp_all);
	assert_memory_equal(lp_all, lp_part, ROWS * rs);
	free(theta);
	free(all);
	free(part);
	gen_free(&g);
}

static void test_fvsbn__batch_split__same_rows_and_logp(void **state)
{
	batch_split(fvsbn_src, 0, true);
	batch_split(fvsbn_src, 0, false);
}

/* FVSBN's samples at full size (its sampling's groups of positions in
 * tiles of rows, the accumulators of the group's common steps kept while
 * each position's own steps wait for the pixels the group's earlier
 * positions draw; cg_pair_positions.c's ahead_tiles): every pixel of every
 * row is its own conditional's draw, u < sigmoid(b[k] + sum(j < k) W[k, j]
 * x[j]) with the row's pixels before it and u the row's uniform, the
 * logit recomputed here in long double (pixels whose u is within rounding
 * of the probability not judged).  Batches of 77 rows (a block of 64 and
 * one of 13: 3 tiles and a row), 75, 6 and 1 (no full tile), from odd
 * first rows; 784 positions end in a partial group. */
static void sample_conditionals(bool f32)
{
	enum { N = 784, MAXROWS = 77 };
	gen g = {0};
	const chain_model *m = gen_compile(&g, model_text(fvsbn_src, NATURAL, N), N, 0, f32);
	assert_non_null(m);
	size_t np = m->num_params, rs = f32 ? sizeof(float) : sizeof(double);
	assert_int_equal(np, N * N + N); /* W[k, j] at k * N + j, then b */
	void *theta = malloc(np * rs), *x = malloc(MAXROWS * N * rs);
	for (size_t t = 0; t < np; t++) {
		double v = 0.08 * chain_rng_normal(6, CHAIN_STREAM_DATA, t, 6, 0); /* logits of about +-2 */
		if (f32)
			((float *)theta)[t] = (float)v;
		else
			((double *)theta)[t] = v;
	}
	const size_t batches[][2] = {{5, 77}, {100, 75}, {3, 6}, {1001, 1}};
	const double tol = f32 ? 1e-4 : 1e-9;
	for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
		size_t first = batches[bi][0], rows = batches[bi][1], judged = 0;
		if (f32)
			m->f32->sample(theta, 31, first, rows, x);
		else
			m->f64->sample(theta, 31, first, rows, x);
		for (size_t r = 0; r < rows; r++)
			for (size_t k = 0; k < N; k++) {
				long double z = 0;
#define TH(i) (f32 ? (long double)((float *)theta)[i] : (long double)((double *)theta)[i])
#define XV(i) (f32 ? (double)((float *)x)[i] : ((double *)x)[i])
				for (size_t j = 0; j < k; j++)
					z += TH(k * N + j) * XV(r * N + j);
				z += TH(N * N + k);
				double p = (double)(1 / (1 + expl(-z)));
				double u = chain_rng_uniform(31, CHAIN_STREAM_SAMPLE, first + r, (uint32_t)k, 0);
				double got = XV(r * N + k);
				assert_true(got == 0 || got == 1);
				if (fabs(u - p) <= tol)
					continue;
				judged++;
				if (got != (u < p ? 1 : 0))
					fail_msg("%s row %zu of %zu (first %zu), pixel %zu: %g, u %.9g, p %.9g", f32 ? "f32" : "f64",
					         r, rows, first, k, got, u, p);
#undef TH
#undef XV
			}
		assert_true(judged > rows * N * 99 / 100);
	}
	free(theta);
	free(x);
	gen_free(&g);
}

static void test_fvsbn__sample__each_pixel_its_conditional(void **state)
{
	sample_conditionals(true);
	sample_conditionals(false);
}

static void test_nade__batch_split__same_rows_and_logp(void **state)
{
	batch_split(nade_src, 60, true); /* remainders of 12 (f32) and 4 (f64) past the vectors */
	batch_split(nade_src, 60, false);
}

/* Model src (dim n = N, data x : real[n]) at -O2 (blocks of rows, jammed)
 * against -O0 (one row at a time, plain loops) over `rows` rows: log p and
 * the gradient within rounding, and a row's log p the same bits alone or in
 * a block. */
static void jammed_vs_plain(const char *src, size_t N, size_t rows)
{
	for (int f32 = 0; f32 < 2; f32++) {
		gen opt = {0}, plain = {.unoptimized = true};
		const chain_model *a = gen_compile(&opt, src, (int64_t)N, 0, f32);
		const chain_model *b = gen_compile(&plain, src, (int64_t)N, 0, f32);
		assert_non_null(a);
		assert_non_null(b);
		size_t np = a->num_params;
		double *theta = malloc(np * sizeof *theta), *x = malloc(rows * N * sizeof *x);
		double *ga = calloc(np, sizeof *ga), *gb = calloc(np, sizeof *gb);
		float *theta32 = malloc(np * sizeof *theta32), *x32 = malloc(rows * N * sizeof *x32);
		float *ga32 = calloc(np, sizeof *ga32), *gb32 = calloc(np, sizeof *gb32);
		double *la = malloc(rows * sizeof *la), *lb = malloc(rows * sizeof *lb), *lone = malloc(rows * sizeof *lone);
		float *fa = malloc(rows * sizeof *fa), *fb = malloc(rows * sizeof *fb), *fone = malloc(rows * sizeof *fone);
		double ta, tb;
		for (size_t t = 0; t < np; t++)
			theta[t] = 0.3 * chain_rng_normal(8, CHAIN_STREAM_DATA, t, 1, 0);
		for (size_t i = 0; i < rows * N; i++)
			x[i] = chain_rng_normal(8, CHAIN_STREAM_DATA, i, 2, 0);
		for (size_t t = 0; t < np; t++)
			theta32[t] = (float)theta[t];
		for (size_t i = 0; i < rows * N; i++)
			x32[i] = (float)x[i];
		if (f32) {
			a->f32->logp_batch(theta32, x32, rows, fa);
			b->f32->logp_batch(theta32, x32, rows, fb);
			for (size_t r = 0; r < rows; r++)
				a->f32->logp_batch(theta32, x32 + r * N, 1, fone + r);
			assert_memory_equal(fa, fone, rows * sizeof *fa);
			for (size_t r = 0; r < rows; r++)
				la[r] = fa[r], lb[r] = fb[r], lone[r] = fone[r];
			ta = a->f32->loglik_grad(theta32, x32, rows, ga32);
			tb = b->f32->loglik_grad(theta32, x32, rows, gb32);
			/* deterministic: a second call gives the same bits */
			float *again32 = calloc(np, sizeof *again32);
			assert_true(a->f32->loglik_grad(theta32, x32, rows, again32) == (float)ta);
			assert_memory_equal(again32, ga32, np * sizeof *ga32);
			free(again32);
			for (size_t t = 0; t < np; t++)
				ga[t] = ga32[t], gb[t] = gb32[t];
		} else {
			a->f64->logp_batch(theta, x, rows, la);
			b->f64->logp_batch(theta, x, rows, lb);
			for (size_t r = 0; r < rows; r++)
				a->f64->logp_batch(theta, x + r * N, 1, lone + r);
			assert_memory_equal(la, lone, rows * sizeof *la);
			ta = a->f64->loglik_grad(theta, x, rows, ga);
			tb = b->f64->loglik_grad(theta, x, rows, gb);
			double *again = calloc(np, sizeof *again);
			assert_true(a->f64->loglik_grad(theta, x, rows, again) == ta);
			assert_memory_equal(again, ga, np * sizeof *ga);
			free(again);
		}
		double tol = f32 ? 1e-4 : 1e-11;
		for (size_t r = 0; r < rows; r++)
			if (!(fabs(la[r] - lb[r]) <= tol * fabs(lb[r])))
				fail_msg("%s row %zu: -O2 %.17g, -O0 %.17g", f32 ? "f32" : "f64", r, la[r], lb[r]);
		assert_true(fabs(ta - tb) <= tol * fabs(tb));
		double gmax = 0;
		for (size_t t = 0; t < np; t++)
			gmax = fmax(gmax, fabs(gb[t]));
		for (size_t t = 0; t < np; t++)
			if (!(fabs(ga[t] - gb[t]) <= tol * gmax))
				fail_msg("%s gradient %zu: -O2 %.17g, -O0 %.17g", f32 ? "f32" : "f64", t, ga[t], gb[t]);
		free(theta);
		free(x);
		free(ga);
		free(gb);
		free(theta32);
		free(x32);
		free(ga32);
		free(gb32);
		free(la);
		free(lb);
		free(lone);
		free(fa);
		free(fb);
		free(fone);
		gen_free(&opt);
		gen_free(&plain);
	}
}

/* A jammed sum whose summand has terms that are not zero where the data
 * is (a constant, a param alone: the masked last step of a sum in vectors,
 * cg_jam_vec.c's jam_sum_vec, must leave its idle lanes out), over lengths
 * 0..36, so every remainder of 8 and 16 lanes, and log p's positions in
 * groups of 6 (cg_pair_positions.c; 37 positions, the last group padded
 * with 5 copies of the last position), over 77 rows: a block of 64 (16
 * tiles of 4 rows) and a partial one of 13 (3 tiles and a row alone). */
static void test_jammed_sum__summand_with_constant_terms__matches_plain_loops(void **state)
{
	jammed_vs_plain("model jam\ndim n = 37\ndata x : real[n]\nparam W : real[n, n] ~ normal(0, 0.3)\n"
	                "param b : real[n]\norder x\n"
	                "x[i] ~ normal(b[i] + sum(j before i) (W[i, j] * x[j] - 0.5 * W[i, j] + 0.25), 1)\n"
	                "maximize loglik\n",
	                37, 77);
}

/* Log p's tiles whose positions' common steps are more than CG_JAM_CHUNK
 * (48 steps of 64 bytes) run them in chunks, each chunk for every tile of
 * the block in turn, the accumulators stored between chunks
 * (cg_pair_positions.c's tiles_chunked): from position 390 in f64 (2 and 3
 * chunks), in f32 the last group only.  n = 787 = 131 x 6 + 1, the last
 * group padded with 5 copies of the last position; 77 rows: a block of 64
 * (16 tiles of 4 rows) and one of 13 (3 tiles, then a row alone, whose sums
 * are not chunked: the same bits). */
static void test_jammed_sum__long_positions_in_chunks__matches_plain_loops(void **state)
{
	jammed_vs_plain("model jamc\ndim n = 787\ndata x : real[n]\nparam W : real[n, n] ~ normal(0, 0.3)\n"
	                "param b : real[n]\norder x\n"
	                "x[i] ~ normal(b[i] + sum(j before i) (W[i, j] * x[j] - 0.5 * W[i, j] + 0.25), 1)\n"
	                "maximize loglik\n",
	                787, 77);
}

/* Two sums per position: the first in groups of positions, the second (of
 * V's transposed copy, layout.c) jammed over log p's blocks of 64 rows, in
 * tiles of 16 rows (cg_rows.c); 77 rows, a full block and a partial one. */
static void test_jammed_sums__second_sum_in_row_tiles__matches_plain_loops(void **state)
{
	jammed_vs_plain("model jam2\ndim n = 37\ndata x : real[n]\nparam W : real[n, n] ~ normal(0, 0.3)\n"
	                "param V : real[n, n] ~ normal(0, 0.3)\nparam b : real[n]\norder x\n"
	                "x[i] ~ normal(b[i] + sum(j before i) W[i, j] * x[j], exp(0.1 * sum(j before i) V[j, i] * x[j]))\n"
	                "maximize loglik\n",
	                37, 77);
}

/* The gradient's positions in groups (cg_pair_positions.c, visited last
 * first): the sums of 3 positions in tiles of 8 rows, and the accumulations
 * into dW of the group's positions after their other statements, together
 * (cg_jam_vec.c's jv_group_add: tiles of 3 positions x 4 vectors, 32 or 64
 * columns of dW, reached from k = 34 in f64 and 66 in f32; then each
 * position's own steps and its masked step).  n = 71 = 23 x 3 + 2: the
 * last group (positions 1 and 0) padded with a copy of position 0, which
 * must add nothing.  The summand's derivative reads W[k, kk] besides x[kk]
 * (a read that varies along kk and with the position) and has two parts
 * invariant along kk (dtri, -dtri/2 .. saved per row and position).  75
 * rows (4 blocks of 16 and 11 rows), 16 (one full block) and 1. */
static void test_gradient__positions_in_groups__matches_plain_loops(void **state)
{
	const char *src = "model jamg\ndim n = 71\ndata x : real[n]\nparam W : real[n, n] ~ normal(0, 0.1)\n"
	                  "param b : real[n]\norder x\n"
	                  "x[i] ~ normal(b[i] + sum(j before i) (W[i, j] * x[j] + square(W[i, j]) * x[j] - 0.5 * W[i, j]), 1)\n"
	                  "maximize loglik\n";
	jammed_vs_plain(src, 71, 75);
	jammed_vs_plain(src, 71, 16);
	jammed_vs_plain(src, 71, 1);
}

/* Uniform draws are inline Philox at -O2 and calls to chain_rng_uniform at
 * -O0: the same bits, with seeds and row numbers past 2^32 (both words of
 * Philox's key and of its first counter words), in both precisions. */
static void test_fvsbn__sample_optimized__same_draws_as_runtime(void **state)
{
	enum { N = 12, ROWS = 37 };
	const uint64_t seeds[] = {0, 99, 0x9E3779B97F4A7C15u}, firsts[] = {0, 5, ((uint64_t)1 << 33) + 123};
	for (int f32 = 0; f32 < 2; f32++) {
		gen opt = {0}, plain = {.unoptimized = true};
		const chain_model *a = gen_compile(&opt, model_text(fvsbn_src, NATURAL, N), N, 0, f32);
		const chain_model *b = gen_compile(&plain, model_text(fvsbn_src, NATURAL, N), N, 0, f32);
		assert_non_null(a);
		assert_non_null(b);
		size_t np = a->num_params, rs = f32 ? sizeof(float) : sizeof(double);
		void *theta = malloc(np * rs), *ra = malloc(ROWS * N * rs), *rb = malloc(ROWS * N * rs);
		if (f32)
			a->f32->init(theta, 2); /* weights near 0: probabilities near 1/2 */
		else
			a->f64->init(theta, 2);
		for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++)
			for (size_t k = 0; k < sizeof firsts / sizeof firsts[0]; k++) {
				if (f32) {
					a->f32->sample(theta, seeds[s], firsts[k], ROWS, ra);
					b->f32->sample(theta, seeds[s], firsts[k], ROWS, rb);
				} else {
					a->f64->sample(theta, seeds[s], firsts[k], ROWS, ra);
					b->f64->sample(theta, seeds[s], firsts[k], ROWS, rb);
				}
				assert_memory_equal(ra, rb, ROWS * N * rs);
			}
		free(theta);
		free(ra);
		free(rb);
		gen_free(&opt);
		gen_free(&plain);
	}
}

/* Small models under every order form: all 2^n probabilities sum to 1; log p,
 * gradient, conditionals, samples and completions equal the reference's for
 * that order. */
static void every_order(const char *name, const char *tmpl, size_t h)
{
	const size_t n = 10;
	ref r = {0};
	assert_true(ref_open(&r, name, n, h, false));
	for (int form = 0; form < NFORMS; form++) {
		gen g = {0};
		const chain_model *m = gen_compile(&g, model_text(tmpl, form, n), (int64_t)n, (int64_t)h, false);
		if (!m)
			fail_msg("%s, order %s: does not compile", name, form_names[form]);
		ref_follow(&r, m);
		size_t np = m->num_params;
		double *theta = malloc(np * sizeof(double)), *g1 = calloc(np, sizeof(double)), *g2 = calloc(np, sizeof(double));
		random_theta(m, theta, 17 + (uint64_t)form, 1.0);
		double x[16], total = 0;
		for (unsigned s = 0; s < (1u << n); s++) {
			for (size_t j = 0; j < n; j++)
				x[j] = (s >> j) & 1;
			double a = m->f64->logp(theta, x), b = r.logp(theta, x);
			if (!(fabs(a - b) <= 1e-12 * fmax(1, fabs(b))))
				fail_msg("%s, order %s, state %u: logp %.17g vs reference %.17g", name, form_names[form], s, a, b);
			total += exp(a);
		}
		if (!(fabs(total - 1) <= 1e-12))
			fail_msg("%s, order %s: probabilities sum to %.17g", name, form_names[form], total);
		double rows[5 * 16];
		m->f64->sample(theta, 99, 0, 5, rows);
		double rows2[5 * 16];
		r.sample(theta, 99, 0, 5, rows2);
		assert_memory_equal(rows, rows2, 5 * n * sizeof(double));
		m->f64->loglik_grad(theta, rows, 5, g1);
		r.loglik_grad(theta, rows, 5, g2);
		double scale = max_abs(g2, np);
		for (size_t t = 0; t < np; t++)
			if (!(fabs(g1[t] - g2[t]) <= 1e-10 * fmax(scale, 1e-300)))
				fail_msg("%s, order %s: gradient[%zu] %.17g vs reference %.17g", name, form_names[form], t, g1[t], g2[t]);
		double c1[16], c2[16];
		m->f64->conditionals(theta, rows, c1);
		r.conditionals(theta, rows, c2);
		for (size_t k = 0; k < n; k++)
			assert_true(fabs(c1[k] - c2[k]) <= 1e-12 * fmax(1, fabs(c2[k])));
		/* completion: keep 4 positions of given rows, redraw the rest */
		double given[5 * 16], done1[5 * 16], done2[5 * 16];
		m->f64->sample(theta, 123, 0, 5, given);
		memcpy(done1, given, sizeof given);
		memcpy(done2, given, sizeof given);
		m->f64->complete(theta, 7, 0, 4, 5, done1);
		r.complete(theta, 7, 0, 4, 5, done2);
		assert_memory_equal(done1, done2, 5 * n * sizeof(double));
		for (size_t row = 0; row < 5; row++)
			for (size_t k = 0; k < 4; k++) {
				size_t off = m->order[k];
				assert_true(done1[row * n + off] == given[row * n + off]);
			}
		free(theta);
		free(g1);
		free(g2);
		gen_free(&g);
	}
	dlclose(r.so);
}

static void test_fvsbn__every_order_form__exact_and_matches_reference(void **state)
{
	every_order("fvsbn", fvsbn_src, 0);
}

static void test_nade__every_order_form__exact_and_matches_reference(void **state)
{
	every_order("nade", nade_src, 4);
}

/* Sampled frequencies match p(x): chi-square over the 2^n states, n = 4..6. */
static void test_sample__frequencies__pass_chi_square(void **state)
{
	for (size_t n = 4; n <= 6; n++) {
		gen g = {0};
		const chain_model *m = gen_compile(&g, model_text(nade_src, RANDOM, n), (int64_t)n, 3, false);
		assert_non_null(m);
		double theta[256];
		random_theta(m, theta, 5, 1.0);
		size_t rows = 40000, states = 1u << n;
		double *obs = malloc(rows * n * sizeof(double));
		m->f64->sample(theta, 2024, 0, rows, obs);
		double count[64] = {0}, chi = 0, x[8];
		for (size_t r = 0; r < rows; r++) {
			unsigned s = 0;
			for (size_t j = 0; j < n; j++)
				s |= (unsigned)obs[r * n + j] << j;
			count[s]++;
		}
		for (unsigned s = 0; s < states; s++) {
			for (size_t j = 0; j < n; j++)
				x[j] = (s >> j) & 1;
			double e = rows * exp(m->f64->logp(theta, x));
			chi += (count[s] - e) * (count[s] - e) / e;
		}
		/* df = 2^n - 1; the 99.9% quantile is below df + 4.5 sqrt(df) + 10 */
		double df = states - 1;
		if (!(chi < df + 4.5 * sqrt(2 * df) + 10))
			fail_msg("n = %zu: chi-square %.1f with %g degrees of freedom", n, chi, df);
		free(obs);
		gen_free(&g);
	}
}

/* A categorical model: its sampler (inverse CDF over K) draws with the
 * probabilities its log-density gives, and they sum to 1. */
static void test_categorical__sample_frequencies__pass_chi_square(void **state)
{
	const char *src = "model cats\ndim n = 2\ndata x : cat(3)[n]\nparam L : real[n, 3] ~ normal(0, 1)\nparam A : real[3]\n"
	                  "x[i] ~ categorical_logits(L[i] + sum(j before i) A * x[j])\nmaximize loglik\n";
	gen g = {0};
	const chain_model *m = gen_compile(&g, src, 2, 0, false);
	assert_non_null(m);
	double theta[16];
	random_theta(m, theta, 8, 1.0);
	size_t rows = 30000;
	double *obs = malloc(rows * 2 * sizeof(double)), count[9] = {0}, chi = 0, total = 0;
	m->f64->sample(theta, 77, 0, rows, obs);
	for (size_t r = 0; r < rows; r++)
		count[(int)obs[2 * r] * 3 + (int)obs[2 * r + 1]]++;
	for (int s0 = 0; s0 < 9; s0++) {
		double x[2] = {s0 / 3, s0 % 3};
		double p = exp(m->f64->logp(theta, x)), e = rows * p;
		total += p;
		chi += (count[s0] - e) * (count[s0] - e) / e;
	}
	assert_true(fabs(total - 1) <= 1e-12);
	if (!(chi < 8 + 4.5 * sqrt(16) + 10))
		fail_msg("chi-square %.1f with 8 degrees of freedom", chi);
	free(obs);
	gen_free(&g);
}

/* A binomial model: its sampler draws once per trial (a draw inside a
 * sum); frequencies match p(x), and rows do not depend on the batch split. */
static void test_binomial__sample_frequencies__pass_chi_square(void **state)
{
	const char *src = "model binom\ndim n = 2\ndata y : int[n]\nparam a : real[n] ~ normal(0, 1)\nparam w : real\n"
	                  "y[i] ~ binomial(4, sigmoid(a[i] + sum(j before i) w * y[j]))\nmaximize loglik\n";
	gen g = {0};
	const chain_model *m = gen_compile(&g, src, 2, 0, false);
	assert_non_null(m);
	double theta[8];
	random_theta(m, theta, 3, 1.0);
	theta[2] = 0.4;
	size_t rows = 30000;
	double *obs = malloc(rows * 2 * sizeof(double)), count[25] = {0}, chi = 0, total = 0;
	m->f64->sample(theta, 5, 0, rows, obs);
	for (size_t r = 0; r < rows; r++)
		count[(int)obs[2 * r] * 5 + (int)obs[2 * r + 1]]++;
	for (int s0 = 0; s0 < 25; s0++) {
		double x[2] = {s0 / 5, s0 % 5};
		double p = exp(m->f64->logp(theta, x)), e = rows * p;
		total += p;
		if (e > 5)
			chi += (count[s0] - e) * (count[s0] - e) / e;
	}
	assert_true(fabs(total - 1) <= 1e-12);
	if (!(chi < 24 + 4.5 * sqrt(48) + 10))
		fail_msg("chi-square %.1f with 24 degrees of freedom", chi);
	double split[2 * 13];
	m->f64->sample(theta, 5, 0, 5, split);
	m->f64->sample(theta, 5, 5, 8, split + 10);
	assert_memory_equal(split, obs, sizeof split);
	free(obs);
	gen_free(&g);
}

/* A Poisson model: its sampler is the draw poisson(exp(log_rate)), number
 * 0 at each position, so every sampled count is chain_rng_poisson at the
 * row's coordinates and the rate its conditional gives (up to the last
 * bits of the generated exp, within 2 ulp of libm's); the frequencies
 * match p(x), at rates on both sides of the sampler's switch at 10, and
 * rows do not depend on the batch split. */
static void test_poisson__sample__runtime_draws_and_chi_square(void **state)
{
	const char *src = "model pois\ndim n = 2\ndata y : int[n]\nparam a : real[n]\nparam w : real\n"
	                  "y[i] ~ poisson_log(a[i] + sum(j before i) w * y[j])\nmaximize loglik\n";
	gen g = {0};
	const chain_model *m = gen_compile(&g, src, 2, 0, false);
	assert_non_null(m);
	double theta[3] = { log(2.5), log(9.0), 0.06 }; /* y[1]: rate 9 to about 20 */
	enum { ROWS = 40000, K0 = 40, K1 = 100 };
	double *obs = malloc(ROWS * 2 * sizeof(double));
	static double count[K0 * K1];
	memset(count, 0, sizeof count);
	m->f64->sample(theta, 12, 0, ROWS, obs);
	for (size_t r = 0; r < ROWS; r++) {
		double lr[2];
		m->f64->conditionals(theta, obs + 2 * r, lr);
		for (uint32_t k = 0; k < 2; k++) {
			double rate = exp(lr[k]), x = obs[2 * r + k];
			bool found = false;
			for (int step = -3; step <= 3 && !found; step++) { /* rate moved by step ulps */
				double q = rate;
				for (int t = 0; t < (step < 0 ? -step : step); t++)
					q = nextafter(q, step < 0 ? 0 : INFINITY);
				found = x == chain_rng_poisson(12, CHAIN_STREAM_SAMPLE, r, k, 0, q);
			}
			if (!found)
				fail_msg("row %zu, position %u: %g is not chain_rng_poisson at rate %.17g", r, k, x, rate);
		}
		if (obs[2 * r] < K0 && obs[2 * r + 1] < K1)
			count[(int)obs[2 * r] * K1 + (int)obs[2 * r + 1]]++;
	}
	double chi = 0, rest = ROWS, prest = 1;
	int cells = 0;
	for (int s0 = 0; s0 < K0 * K1; s0++) {
		double x[2] = { s0 / K1, s0 % K1 };
		double p = exp(m->f64->logp(theta, x)), e = ROWS * p;
		if (e < 5)
			continue;
		chi += (count[s0] - e) * (count[s0] - e) / e;
		rest -= count[s0];
		prest -= p;
		cells++;
	}
	chi += (rest - ROWS * prest) * (rest - ROWS * prest) / (ROWS * prest); /* the cells of e < 5, lumped */
	double df = cells;
	if (!(chi < df + 4.5 * sqrt(2 * df) + 10))
		fail_msg("chi-square %.1f with %g degrees of freedom", chi, df);
	double split[2 * 13];
	m->f64->sample(theta, 12, 0, 5, split);
	m->f64->sample(theta, 12, 5, 8, split + 10);
	assert_memory_equal(split, obs, sizeof split);
	free(obs);
	gen_free(&g);
}

/* Family arguments that are plain reads of a param or const element (b[i],
 * L[i, :], a scalar param, a const): M_conditionals writes each position's
 * arguments, cond_offset[num_positions] reals in all, and nothing past
 * them.  (It once wrote a whole tensor per position for an argument such
 * as b[i], up to n - 1 reals past the end of out.) */
static void test_conditionals__argument_reads_of_tensors__exact_extent(void **state)
{
	const char *src = "model args\ndim n = 5\ndim K = 3\nconst S : real[n] = [1, 2, 3, 4, 5]\n"
	                  "data x : bin[n]\ndata y : cat(K)[n]\ndata z : real[n]\n"
	                  "param b : real[n]\nparam L : real[n, K]\nparam s : real\n"
	                  "order x, y, z\n"
	                  "x[i] ~ bernoulli_logit(b[i])\ny[i] ~ categorical_logits(L[i, :])\nz[i] ~ normal(b[i], S[i])\n"
	                  "maximize loglik\n";
	gen g = {0};
	const chain_model *m = gen_compile(&g, src, 5, 0, false);
	assert_non_null(m);
	enum { N = 5, K = 3, SENTINELS = 64 };
	size_t total = m->cond_offset[m->num_positions];
	assert_int_equal(total, N * 1 + N * K + N * 2);
	double theta[N + N * K + 1], obs[3 * N] = {0};
	for (size_t p = 0; p < N + N * K + 1; p++)
		theta[p] = 0.5 + (double)p;
	double *out = malloc((total + SENTINELS) * sizeof(double));
	for (size_t i = 0; i < total + SENTINELS; i++)
		out[i] = -12345;
	m->f64->conditionals(theta, obs, out);
	for (size_t i = total; i < total + SENTINELS; i++)
		if (out[i] != -12345)
			fail_msg("conditionals wrote out[%zu], past its %zu reals", i, total);
	/* x's positions: b[i]; y's: L[i, :]; z's: b[i] and S[i] */
	for (size_t i = 0; i < N; i++) {
		assert_true(out[m->cond_offset[i]] == theta[i]);
		for (size_t k = 0; k < K; k++)
			assert_true(out[m->cond_offset[N + i] + k] == theta[N + i * K + k]);
		assert_true(out[m->cond_offset[2 * N + i]] == theta[i]);
		assert_true(out[m->cond_offset[2 * N + i] + 1] == (double)(i + 1));
	}
	free(out);
	gen_free(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fvsbn__full_size_digits__logp_and_gradient_match_reference),
		cmocka_unit_test(test_nade__full_size_digits__logp_and_gradient_match_reference),
		cmocka_unit_test(test_nade__f32__logp_matches_reference),
		cmocka_unit_test(test_nade__scratch_not_available__outputs_untouched_objective_nan),
		cmocka_unit_test(test_fvsbn__batch_split__same_rows_and_logp),
		cmocka_unit_test(test_nade__batch_split__same_rows_and_logp),
		cmocka_unit_test(test_jammed_sum__summand_with_constant_terms__matches_plain_loops),
		cmocka_unit_test(test_jammed_sum__long_positions_in_chunks__matches_plain_loops),
		cmocka_unit_test(test_jammed_sums__second_sum_in_row_tiles__matches_plain_loops),
		cmocka_unit_test(test_gradient__positions_in_groups__matches_plain_loops),
		cmocka_unit_test(test_fvsbn__sample__each_pixel_its_conditional),
		cmocka_unit_test(test_fvsbn__sample_optimized__same_draws_as_runtime),
		cmocka_unit_test(test_fvsbn__every_order_form__exact_and_matches_reference),
		cmocka_unit_test(test_nade__every_order_form__exact_and_matches_reference),
		cmocka_unit_test(test_sample__frequencies__pass_chi_square),
		cmocka_unit_test(test_categorical__sample_frequencies__pass_chi_square),
		cmocka_unit_test(test_binomial__sample_frequencies__pass_chi_square),
		cmocka_unit_test(test_poisson__sample__runtime_draws_and_chi_square),
		cmocka_unit_test(test_conditionals__argument_reads_of_tensors__exact_extent),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
