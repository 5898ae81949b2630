/* cmd_compare.c -- `chain compare MODEL --ref REF.c`: the generated kernels
 * against a hand-written C implementation of the same generated API, kernel
 * by kernel: log p, the gradient, and their speed, side by side.
 *
 * The reference is compiled with the system C compiler into a shared object
 * and dlopen()ed beside the JIT-compiled model; its calls into libchain (the
 * RNG) resolve to the copy inside this binary.
 */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chain/data.h"
#include "chain/rng.h"
#include "cmd.h"

typedef struct compare_opts {
	const char *ref, *data, *cc, *cflags;
	bool f32;
	size_t rows;
	double tol;
	int repeats;
	uint64_t seed;
} compare_opts;

static int cfail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int cfail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("chain compare: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 1;
}

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

/* Where libchain's headers are: $CHAIN_INCLUDE, else beside the binary
 * (build/chain -> runtime/include of the source tree; bin/chain ->
 * include of the installation). */
static void include_dir(char *out, size_t cap)
{
	const char *env = getenv("CHAIN_INCLUDE");
	if (env) {
		snprintf(out, cap, "%s", env);
		return;
	}
	char exe[2048];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	exe[n > 0 ? n : 0] = 0;
	char *slash = strrchr(exe, '/');
	if (slash)
		*slash = 0;
	char probe[2100];
	snprintf(probe, sizeof probe, "%s/../runtime/include/chain/rng.h", exe);
	if (access(probe, R_OK) == 0)
		snprintf(out, cap, "%.2047s/../runtime/include", exe);
	else
		snprintf(out, cap, "%.2047s/../include", exe);
}

/* Compiles the reference into dir/ref.so and loads it. */
static void *load_reference(const compare_opts *o, const char *dir)
{
	char inc[4096], cmd[16384], so[4200];
	/* the command line runs through the shell: paths are quoted */
	include_dir(inc, sizeof inc);
	snprintf(so, sizeof so, "%s/ref.so", dir);
	/* -DCHAIN_F32 tells a reference written like examples/reference/ that real is float */
	snprintf(cmd, sizeof cmd, "%s %s%s -shared -fPIC -I'%s' '%s' -o '%s' -lm", o->cc, o->cflags,
	         o->f32 ? " -DCHAIN_F32" : "", inc, o->ref, so);
	if (system(cmd) != 0) {
		cfail("cannot compile the reference: %s", cmd);
		return NULL;
	}
	void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	unlink(so);
	if (!h)
		cfail("cannot load the compiled reference: %s", dlerror());
	return h;
}

/* --cc CC: the command line starts with it, so an empty or blank one made
 * the shell run the first flag as the compiler ("sh: 1: -O2: not found"
 * before chain's own message). */
static int parse_cc(const char *prefix, const cmd_flag *f, const char *v)
{
	if (!v[strspn(v, " \t\n")]) {
		fprintf(stderr, "%s: %s: expected a C compiler command (such as cc or clang), got '%s'\n", prefix, f->name, v);
		return -1;
	}
	*(const char **)f->dst = v;
	return 0;
}

/* 0: go on; 1: the usage was printed; -1: bad flags (message printed). */
static int parse_args(compare_opts *o, int argc, char **argv)
{
	cmd_flag flags[] = {
		CMD_FILE("--ref", &o->ref),
		CMD_FILE("--data", &o->data),
		CMD_CUSTOM("--cc", &o->cc, parse_cc),
		CMD_TEXT("--cflags", &o->cflags),
		CMD_SIZE("--rows", &o->rows, 1, CMD_MAX_CHECK_ROWS),
		CMD_INT("--repeats", &o->repeats, 1, 999),
		CMD_POSITIVE("--tol", &o->tol),
		CMD_SEED("--seed", &o->seed),
	};
	int pr = cmd_parse_flags("compare", flags, sizeof flags / sizeof flags[0], argc, argv);
	if (pr == 2) {
		printf("usage: chain compare MODEL.chain --ref REF.c [--data F] [--rows R] [--tol T] [--repeats K]\n"
		       "                     [--cc CC] [--cflags FLAGS] [--seed S] [-D N=V] [--precision f64|f32]\n"
		       "Compiles REF.c (a hand-written implementation of the generated C API of MODEL) with\n"
		       "CC FLAGS (default: cc -O2), and compares it with the generated kernels on R rows of F\n"
		       "(or rows sampled from the model): log p and the gradient of the summed log p, and\n"
		       "their speed (median of K runs, side by side).  Exit 1 when a relative difference\n"
		       "exceeds T (default 1e-10 in f64, 1e-4 in f32).\n");
		return 1;
	}
	if (pr != 0)
		return -1;
	if (!o->ref)
		return -cfail("--ref REF.c is required");
	if (access(o->ref, R_OK) != 0)
		return -cfail("cannot read '%s': %s", o->ref, strerror(errno));
	return 0;
}

typedef void (*batch_fn)(const void *, const void *, size_t, void *);
typedef double (*grad64_fn)(const double *, const double *, size_t, double *);
typedef float (*grad32_fn)(const float *, const float *, size_t, float *);

/* The median seconds of `repeats` calls of one side. */
static double time_logp(batch_fn f, const void *theta, const void *obs, size_t rows, void *out, int repeats)
{
	double t[1000];
	for (int r = 0; r < repeats; r++) {
		double t0 = now();
		f(theta, obs, rows, out);
		t[r] = now() - t0;
	}
	qsort(t, (size_t)repeats, sizeof t[0], cmp_double);
	return t[repeats / 2];
}

/* A reference that reads or writes past its buffers (built for other sizes
 * than the model's, or simply wrong) must give an error, not take chain
 * down with it: its calls run under handlers of the signals such a bug
 * raises, which jump back here. */
static sigjmp_buf ref_crash;
static volatile sig_atomic_t ref_crash_signal;

static void on_ref_crash(int sig)
{
	ref_crash_signal = sig;
	siglongjmp(ref_crash, 1);
}

static const int crash_signals[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL };
enum { NCRASH = sizeof crash_signals / sizeof crash_signals[0] };

static void guard_reference(struct sigaction *saved)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_ref_crash;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NODEFER;
	for (int k = 0; k < NCRASH; k++)
		sigaction(crash_signals[k], &sa, &saved[k]);
}

static void unguard_reference(const struct sigaction *saved)
{
	for (int k = 0; k < NCRASH; k++)
		sigaction(crash_signals[k], &saved[k], NULL);
}

/* What compare_kernels works on, and its verdict. */
typedef struct compare_run {
	const chain_model *m;
	const compare_opts *o;
	bool f32;
	size_t np;
	void *theta, *obs, *g1, *g2;
	double *out1, *out2;
	float *fo1, *fo2;
	void *ref_batch, *ref_grad;
	int rc;                      /* 1 when a difference exceeds the tolerance */
} compare_run;

/* Log p and the gradient of both implementations, compared, then their
 * speed; prints as it goes. */
static void compare_kernels(void *arg)
{
	compare_run *c = arg;
	const chain_model *m = c->m;
	compare_opts o = *c->o;
	bool f32 = c->f32;
	size_t np = c->np;
	void *theta = c->theta, *obs = c->obs, *g1 = c->g1, *g2 = c->g2, *ref_batch = c->ref_batch, *ref_grad = c->ref_grad;
	double *out1 = c->out1, *out2 = c->out2;
	float *fo1 = c->fo1, *fo2 = c->fo2;
	int rc = 0;
	/* values */
	batch_fn gen_batch = f32 ? (batch_fn)(void (*)(void))m->f32->logp_batch : (batch_fn)(void (*)(void))m->f64->logp_batch;
	batch_fn rb = (batch_fn)(void (*)(void))ref_batch;
	gen_batch(theta, obs, o.rows, f32 ? (void *)fo1 : (void *)out1);
	rb(theta, obs, o.rows, f32 ? (void *)fo2 : (void *)out2);
	double worst = 0;
	for (size_t r = 0; r < o.rows; r++) {
		double a = f32 ? fo1[r] : out1[r], b = f32 ? fo2[r] : out2[r];
		double rel = fabs(a - b) / fmax(fabs(b), 1e-300);
		if (!(rel <= worst))
			worst = rel;
	}
	printf("%s against %s: %zu rows, %s\n", m->name, o.ref, o.rows, f32 ? "f32" : "f64");
	printf("  log p     worst relative difference %.2e\n", worst);
	if (!(worst <= o.tol))
		rc = 1;
	/* gradients */
	double gworst = -1;
	if (ref_grad) {
		if (f32) {
			m->f32->loglik_grad(theta, obs, o.rows, g1);
			((grad32_fn)(void (*)(void))ref_grad)(theta, obs, o.rows, g2);
		} else {
			m->f64->loglik_grad(theta, obs, o.rows, g1);
			((grad64_fn)(void (*)(void))ref_grad)(theta, obs, o.rows, g2);
		}
		double scale = 0, diff = 0;
		for (size_t t = 0; t < np; t++) {
			double a = f32 ? ((float *)g1)[t] : ((double *)g1)[t], b = f32 ? ((float *)g2)[t] : ((double *)g2)[t];
			scale = fmax(scale, fabs(b));
			diff = fmax(diff, fabs(a - b));
		}
		gworst = diff / fmax(scale, 1e-300);
		printf("  gradient  worst difference %.2e of its largest entry\n", gworst);
		if (!(gworst <= o.tol))
			rc = 1;
	} else {
		printf("  gradient  (the reference has no %s_loglik_grad)\n", m->name);
	}
	/* speed, alternating so that drift hits both alike */
	double tg[1000], tr[1000];
	for (int k = 0; k < o.repeats; k++) {
		tg[k] = time_logp(gen_batch, theta, obs, o.rows, f32 ? (void *)fo1 : (void *)out1, 1);
		tr[k] = time_logp(rb, theta, obs, o.rows, f32 ? (void *)fo2 : (void *)out2, 1);
	}
	qsort(tg, (size_t)o.repeats, sizeof tg[0], cmp_double);
	qsort(tr, (size_t)o.repeats, sizeof tr[0], cmp_double);
	double mg = tg[o.repeats / 2], mr = tr[o.repeats / 2];
	printf("  logp speed %10.0f rows/s generated %10.0f rows/s reference  ratio %.2f (median of %d)\n", (double)o.rows / mg,
	       (double)o.rows / mr, mr / mg, o.repeats);
	c->rc = rc;
}

/* Runs fn(arg) with the reference's crashes caught: 0, or the signal. */
static int guarded(void (*fn)(void *), void *arg)
{
	struct sigaction saved[NCRASH];
	guard_reference(saved);
	volatile int sig = 0;
	if (sigsetjmp(ref_crash, 1) == 0)
		fn(arg);
	else
		sig = ref_crash_signal;
	unguard_reference(saved);
	return sig;
}

int cmd_compare(const chain_model *m, int argc, char **argv)
{
	compare_opts o = {.cc = "cc", .cflags = "-O2", .rows = 100, .repeats = 5, .seed = 1};
	int pr = parse_args(&o, argc, argv);
	if (pr)
		return pr > 0 ? 0 : 1;
	if (o.tol == 0)
		o.tol = m->f32 ? 1e-4 : 1e-10;
	bool f32 = o.f32 = m->f32 != NULL;
	size_t rs = f32 ? sizeof(float) : sizeof(double), np = m->num_params, ob = m->obs_size;
	if (cmd_rows_fit("chain compare", "--rows", o.rows, ob) != 0)
		return 1;
	char *dir = cmd_temp_template("chain-compare");
	if (!dir || !mkdtemp(dir)) {
		int e = dir ? errno : ENOMEM;
		free(dir);
		return cfail("cannot make a temp directory: %s", strerror(e));
	}
	void *ref = load_reference(&o, dir);
	rmdir(dir);
	free(dir);
	if (!ref)
		return 1;
	char name[256];
#define REF(fn) (snprintf(name, sizeof name, "%s_%s", m->name, fn), dlsym(ref, name))
	void *ref_batch = REF("logp_batch"), *ref_grad = REF("loglik_grad");
	if (!ref_batch) {
		dlclose(ref);
		return cfail("%s does not define %s_logp_batch (the generated API of model %s)", o.ref, m->name, m->name);
	}
	/* a reference that says what it is built for (examples/reference/ export
	 * M_ref_num_params and M_ref_obs_size) is checked before it runs */
	const size_t *ref_np = REF("ref_num_params"), *ref_ob = REF("ref_obs_size");
	if ((ref_np && *ref_np != np) || (ref_ob && *ref_ob != ob)) {
		size_t rnp = ref_np ? *ref_np : np, rob = ref_ob ? *ref_ob : ob;
		dlclose(ref);
		return cfail("%s is built for %zu params and %zu reals per row, but model %s has %zu and %zu: "
		             "compile it for the model's sizes (e.g. --cflags \"-O2 -DN=...\")",
		             o.ref, rnp, rob, m->name, np, ob);
	}
	/* params: the model's initialisation plus noise; rows: data or samples.
	 * The buffers the reference reads or writes hold doubles even for f32, so that a
	 * reference built for the other precision gives wrong numbers (a failed
	 * comparison), not a heap overflow. */
	void *theta = calloc(np + 1, sizeof(double)), *obs = NULL;
	void *g1 = calloc(np + 1, rs), *g2 = calloc(np + 1, sizeof(double));
	double *out1 = calloc(o.rows + 1, sizeof(double)), *out2 = calloc(o.rows + 1, sizeof(double));
	float *fo1 = calloc(o.rows + 1, sizeof(float)), *fo2 = calloc(2 * o.rows + 2, sizeof(float));
	int rc = 0;
	if (!theta || !g1 || !g2 || !out1 || !out2 || !fo1 || !fo2) {
		rc = cfail("out of memory for %zu params and %zu rows of %zu reals", np, o.rows, ob);
		goto done;
	}
	if (f32) {
		m->f32->init(theta, o.seed);
	} else {
		m->f64->init(theta, o.seed);
	}
	for (size_t p = 0; p < m->num_param_vars; p++) {
		const chain_var *v = &m->params[p];
		for (size_t e = 0; e < v->size; e++)
			if (!v->used || v->used[e]) {
				double noise = 0.05 * chain_rng_normal(o.seed, CHAIN_STREAM_DATA, v->offset + e, 5, 0);
				if (f32)
					((float *)theta)[v->offset + e] += (float)noise;
				else
					((double *)theta)[v->offset + e] += noise;
			}
	}
	if (o.data) {
		chain_dataset d = {0};
		chain_error err;
		if (chain_data_load(o.data, NULL, &d, &err) || chain_data_check(&d, m, o.data, &err)) {
			chain_dataset_free(&d);
			rc = cfail("%s", err.msg);
			goto done;
		}
		obs = calloc(o.rows * ob + 1, sizeof(double));
		if (!obs) {
			chain_dataset_free(&d);
			rc = cfail("out of memory for %zu rows of %zu reals", o.rows, ob);
			goto done;
		}
		for (size_t r = 0; r < o.rows; r++)
			for (size_t j = 0; j < ob; j++) {
				double v = d.values[(r % d.rows) * ob + j];
				if (f32)
					((float *)obs)[r * ob + j] = (float)v;
				else
					((double *)obs)[r * ob + j] = v;
			}
		chain_dataset_free(&d);
	} else {
		obs = calloc(o.rows * ob + 1, sizeof(double));
		if (!obs) {
			rc = cfail("out of memory for %zu rows of %zu reals", o.rows, ob);
			goto done;
		}
		if (f32)
			m->f32->sample(theta, o.seed, 0, o.rows, obs);
		else
			m->f64->sample(theta, o.seed, 0, o.rows, obs);
	}
	/* values, gradients, speed: the reference's calls run guarded */
	compare_run run = {
		.m = m, .o = &o, .f32 = f32, .np = np, .theta = theta, .obs = obs, .g1 = g1, .g2 = g2,
		.out1 = out1, .out2 = out2, .fo1 = fo1, .fo2 = fo2, .ref_batch = ref_batch, .ref_grad = ref_grad,
	};
	int sig = guarded(compare_kernels, &run);
	if (sig) {
		rc = cfail("%s crashed (%s) in its kernels: is it built for model %s's sizes (%zu params, %zu reals per "
		           "row) and precision?", o.ref, strsignal(sig), m->name, np, ob);
		goto done;
	}
	rc = run.rc;
	if (rc)
		printf("FAILED: a difference exceeds the tolerance %.1e%s\n", o.tol,
		       f32 ? " (was the reference built for float? it is compiled with -DCHAIN_F32)" : "");
done:
	free(theta);
	free(obs);
	free(g1);
	free(g2);
	free(out1);
	free(out2);
	free(fo1);
	free(fo2);
	dlclose(ref);
	return rc;
}
