/* test_codegen.c -- code generation, the descriptor, the header and the JIT.
 *
 * The IR modules here are built by hand (no parser, checker or lowering):
 * a model struct with a few syms, kernels from the ir_* constructors.  Each
 * is compiled through LLJIT and called through its descriptor, against C
 * written beside it; one is also emitted as an object and a header, linked
 * into a C program with runtime/rng.c, and run.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "chain/model.h"
#include "chain/rng.h"
#include "chainc.h"

/* The layout cg_model.c builds (for x86-64 and aarch64). */
_Static_assert(sizeof(chain_var) == 88, "chain_var layout");
_Static_assert(offsetof(chain_var, kind) == 8 && offsetof(chain_var, rank) == 16 &&
               offsetof(chain_var, shape) == 24 && offsetof(chain_var, offset) == 56 &&
               offsetof(chain_var, used) == 80, "chain_var layout");
_Static_assert(sizeof(chain_model) == 160, "chain_model layout");
_Static_assert(offsetof(chain_model, name) == 8 && offsetof(chain_model, precision) == 16 &&
               offsetof(chain_model, num_params) == 24 && offsetof(chain_model, params) == 56 &&
               offsetof(chain_model, order) == 104 && offsetof(chain_model, objective) == 120 &&
               offsetof(chain_model, maximize) == 124 && offsetof(chain_model, f64) == 128 &&
               offsetof(chain_model, f32) == 136 && offsetof(chain_model, loglik_only) == 144 &&
               offsetof(chain_model, value_max) == 152, "chain_model layout");

/* ------------------------------------------------------------ helpers */

/* cmocka's assert_float_equal compares floats: too coarse for doubles. */
#define assert_near(a, b, tol) near_impl((double)(a), (double)(b), (double)(tol), #a, __FILE__, __LINE__)
static void near_impl(double a, double b, double tol, const char *what, const char *file, int line)
{
	if (!(fabs(a - b) <= tol) && !(a == b)) {
		print_error("%s = %.17g, expected %.17g (tolerance %g)\n", what, a, b, tol);
		_fail(file, line);
	}
}

static sym *mk_sym(arena *a, sym_kind kind, const char *name, val_kind vk, int rank, int64_t d0, int64_t d1,
                   size_t offset)
{
	sym *s = arena_alloc(a, sizeof *s);
	s->kind = kind;
	s->name = name;
	s->vkind = vk;
	s->shape.rank = rank;
	s->shape.dims[0] = d0;
	s->shape.dims[1] = d1;
	s->offset = offset;
	return s;
}

static ir_buf *mk_buf(ir_module *m, const char *name, ir_buf_class cls, int rank, int64_t d0, int64_t d1,
                      int64_t offset)
{
	int64_t dims[2] = { d0, d1 };
	ir_buf *b = ir_buf_new(m, name, cls, rank, dims);
	b->offset = offset;
	return b;
}

static ir_loop *mk_loop(ir_module *m, const char *name, int64_t lo, int64_t hi)
{
	return ir_loop_new(m, name, ir_idx_const(m, lo), ir_idx_const(m, hi));
}

static ir_idx *L(ir_module *m, ir_loop *l)
{
	return ir_idx_loop(m, l);
}

static ir_val *rd1(ir_module *m, ir_buf *b, ir_idx *i)
{
	return ir_read(m, b, &i);
}

static ir_val *op1(ir_module *m, ir_opcode op, ir_val *a)
{
	return ir_op(m, op, a, NULL, NULL);
}

static ir_val *op2(ir_module *m, ir_opcode op, ir_val *a, ir_val *b)
{
	return ir_op(m, op, a, b, NULL);
}

static ir_stmt *for_stmt(ir_module *m, ir_block *parent, ir_loop *l)
{
	ir_stmt *s = ir_stmt_new(m, S_FOR);
	s->loop = l;
	ir_block_push(m, parent, s);
	return s;
}

static ir_loop *rows_loop(ir_module *m)
{
	ir_loop *r = ir_loop_new(m, "r", NULL, NULL);
	r->is_rows = true;
	return r;
}

static const chain_model *jit(const ir_module *m, bool f32, int opt, jit_session **s)
{
	cg_options o = { .opt_level = opt, .f32 = f32 };
	char *err = NULL;
	cg_unit *u = cg_generate(m, &o, &err);
	if (!u)
		fail_msg("cg_generate: %s", err);
	const chain_model *d = NULL;
	*s = jit_load(u, &d, &err);
	if (!*s)
		fail_msg("jit_load: %s", err);
	assert_non_null(d);
	free(err);
	return d;
}

static double sp_ref(double x)
{
	return fmax(x, 0) + log1p(exp(-fabs(x)));
}

static double sig_ref(double x)
{
	return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
}

/* ---------------------------------------------------- model "bern" */

/* model bern: param w: real[5]; data x: bin[5]; x[k] ~ bernoulli_logit(w[k]).
 * Kernels: init, logp, logp_batch, loglik_grad, objective (free, with a
 * no-grad variant), sample, complete, conditionals. */
typedef struct bern {
	arena *a;
	model mdl;
	ir_module *m;
} bern;

#define BN 5

static bern *bern_new(void)
{
	bern *b = calloc(1, sizeof *b);
	arena *a = b->a = arena_new();
	model *mdl = &b->mdl;
	mdl->name = "bern";
	ptrvec_push(a, &mdl->params, mk_sym(a, SYM_PARAM, "w", K_REAL, 1, BN, 0, 0));
	ptrvec_push(a, &mdl->data, mk_sym(a, SYM_DATA, "x", K_BIN, 1, BN, 0, 0));
	mdl->num_params = BN;
	mdl->obs_size = BN;
	mdl->num_positions = BN;
	mdl->objective_has_loglik = true;
	/* the objective below is not the loglik alone (check_objective would
	 * have made it a penalty: the descriptor's loglik_only is 0) */
	mdl->penalty = arena_alloc(a, sizeof *mdl->penalty);
	mdl->maximize = true;
	ir_module *m = b->m = ir_module_new(a, mdl);
	m->order_offsets = arena_alloc(a, BN * sizeof(int64_t));
	m->cond_offset = arena_alloc(a, (BN + 1) * sizeof(int64_t));
	for (int i = 0; i < BN; i++)
		m->order_offsets[i] = i;
	for (int i = 0; i <= BN; i++)
		m->cond_offset[i] = i;
	m->param_used = arena_alloc(a, sizeof(uint8_t *));
	m->param_unused = arena_alloc(a, sizeof(int64_t));

	ir_buf *w = mk_buf(m, "w", BUF_THETA, 1, BN, 0, 0);
	ir_buf *x = mk_buf(m, "x", BUF_OBS, 1, BN, 0, 0);
	ir_buf *g = mk_buf(m, "gw", BUF_GRAD, 1, BN, 0, 0);
	ir_loop *k = mk_loop(m, "k", 0, BN);
	ir_loop *ks[1] = { k };
	ir_val *wk = rd1(m, w, L(m, k)), *xk = rd1(m, x, L(m, k));
	/* x[k] * w[k] - softplus(w[k]) */
	ir_val *term = op2(m, IR_SUB, op2(m, IR_MUL, xk, wk), op1(m, IR_SOFTPLUS, wk));

	/* logp: acc = sum_k term */
	ir_kernel *kl = ir_kernel_new(m, KER_LOGP, "logp");
	ir_buf *acc = mk_buf(m, "acc", BUF_TEMP, 0, 0, 0, 0);
	ir_block_push(m, &kl->body, ir_assign_stmt(m, S_SUM, ks, 1, 0, acc, NULL, term));
	kl->result = acc;
	ptrvec_push(a, &kl->temps, acc);

	/* logp_batch: for rows: out[row] = sum_k term */
	ir_kernel *kb = ir_kernel_new(m, KER_LOGP_BATCH, "logp_batch");
	ir_buf *out = mk_buf(m, "out", BUF_OUT, 1, 1, 0, 0);
	ir_stmt *rs = for_stmt(m, &kb->body, rows_loop(m));
	ir_idx *row = ir_idx_leaf(m, IX_ROW);
	ir_block_push(m, &rs->body, ir_assign_stmt(m, S_SUM, ks, 1, 0, out, &row, term));

	/* loglik_grad: for rows { rowlp = sum term; total += rowlp;
	 * for k: gw[k] += x[k] - sigmoid(w[k]) }; kernel->temps left empty
	 * on purpose: codegen finds the temps itself */
	ir_kernel *kg = ir_kernel_new(m, KER_LOGLIK_GRAD, "loglik_grad");
	ir_buf *total = mk_buf(m, "total", BUF_TEMP, 0, 0, 0, 0);
	ir_buf *rowlp = mk_buf(m, "rowlp", BUF_TEMP, 0, 0, 0, 0);
	rs = for_stmt(m, &kg->body, rows_loop(m));
	ir_block_push(m, &rs->body, ir_assign_stmt(m, S_SUM, ks, 1, 0, rowlp, NULL, term));
	ir_block_push(m, &rs->body, ir_assign_stmt(m, S_ADD, NULL, 0, 0, total, NULL, ir_read(m, rowlp, NULL)));
	ir_idx *kidx = L(m, k);
	ir_block_push(m, &rs->body,
	              ir_assign_stmt(m, S_ADD, ks, 1, 1, g, &kidx, op2(m, IR_SUB, xk, op1(m, IR_SIGMOID, wk))));
	kg->result = total;

	/* objective (free): -sum w^2, grad -2w; no-grad variant the value only */
	ir_kernel *ko = ir_kernel_new(m, KER_OBJECTIVE, "objective");
	ir_buf *obj = mk_buf(m, "obj", BUF_TEMP, 0, 0, 0, 0);
	ir_val *negsq = op1(m, IR_NEG, op1(m, IR_SQUARE, wk));
	ir_block_push(m, &ko->body, ir_assign_stmt(m, S_SUM, ks, 1, 0, obj, NULL, negsq));
	ir_block_push(m, &ko->body, ir_assign_stmt(m, S_SET, ks, 1, 1, g, &kidx, op2(m, IR_MUL, wk, ir_const(m, -2))));
	ko->result = obj;
	ir_buf *obj2 = mk_buf(m, "obj2", BUF_TEMP, 0, 0, 0, 0);
	ir_block_push(m, &ko->nograd_body, ir_assign_stmt(m, S_SUM, ks, 1, 0, obj2, NULL, negsq));
	ko->nograd_result = obj2;

	/* sample: for rows, for k: x[k] = uniform(0, row, k, 0) < sigmoid(w[k]) */
	ir_val *draw = op2(m, IR_LT, ir_draw(m, DRAW_UNIFORM, CHAIN_STREAM_SAMPLE, ir_idx_leaf(m, IX_ROW), L(m, k), 0),
	                   op1(m, IR_SIGMOID, wk));
	ir_kernel *ks_ = ir_kernel_new(m, KER_SAMPLE, "sample");
	rs = for_stmt(m, &ks_->body, rows_loop(m));
	ir_block_push(m, &rs->body, ir_assign_stmt(m, S_SET, ks, 1, 1, x, &kidx, draw));

	/* complete: for rows, for k (an S_FOR), if k >= prefix: x[k] = draw */
	ir_kernel *kc = ir_kernel_new(m, KER_COMPLETE, "complete");
	rs = for_stmt(m, &kc->body, rows_loop(m));
	ir_stmt *fk = for_stmt(m, &rs->body, k);
	ir_stmt *iff = ir_stmt_new(m, S_IF_GE);
	iff->a = L(m, k);
	iff->b = ir_idx_leaf(m, IX_PREFIX);
	ir_block_push(m, &fk->body, iff);
	ir_block_push(m, &iff->body, ir_assign_stmt(m, S_SET, NULL, 0, 0, x, &kidx, draw));

	/* conditionals: out[k] = sigmoid(w[k]) */
	ir_kernel *kq = ir_kernel_new(m, KER_CONDITIONALS, "conditionals");
	ir_buf *cout = mk_buf(m, "cond", BUF_OUT, 1, BN, 0, 0);
	ir_block_push(m, &kq->body, ir_assign_stmt(m, S_SET, ks, 1, 1, cout, &kidx, op1(m, IR_SIGMOID, wk)));

	/* init: w[k] = 0.01 * normal(seed, 1, k, 0, 0) */
	ir_kernel *ki = ir_kernel_new(m, KER_INIT, "init");
	ir_val *nrm = ir_draw(m, DRAW_NORMAL, CHAIN_STREAM_INIT, L(m, k), ir_idx_const(m, 0), 0);
	ir_block_push(m, &ki->body, ir_assign_stmt(m, S_SET, ks, 1, 1, w, &kidx, op2(m, IR_MUL, nrm, ir_const(m, 0.01))));
	return b;
}

static void bern_free(bern *b)
{
	arena_free(b->a);
	free(b);
}

static const double bern_w[BN] = { 0.5, -1.25, 3.0, -1000.0, 1000.0 };
static const double bern_obs[3 * BN] = {
	1, 0, 1, 0, 1,
	0, 0, 1, 1, 0,
	1, 1, 0, 0, 1,
};

static double bern_logp_ref(const double *w, const double *x)
{
	double s = 0;
	for (int k = 0; k < BN; k++)
		s += x[k] * w[k] - sp_ref(w[k]);
	return s;
}

/* Checks every bern kernel through a descriptor, f64 or f32. */
#define CHECK_BERN(T, K, tol)                                                                             \
	do {                                                                                                  \
		T w[BN], obs[3 * BN];                                                                             \
		for (int i = 0; i < BN; i++)                                                                      \
			w[i] = (T)bern_w[i];                                                                          \
		for (int i = 0; i < 3 * BN; i++)                                                                  \
			obs[i] = (T)bern_obs[i];                                                                      \
		double lp = K->logp(w, obs);                                                                      \
		assert_true(isfinite(lp));                                                                        \
		assert_near(lp, bern_logp_ref(bern_w, bern_obs), tol * 1000);                              \
		T out[3];                                                                                         \
		K->logp_batch(w, obs, 3, out);                                                                    \
		double total = 0;                                                                                 \
		for (int r = 0; r < 3; r++) {                                                                     \
			double ref = bern_logp_ref(bern_w, bern_obs + r * BN);                                        \
			assert_near(out[r], ref, tol * 1000);                                                  \
			total += ref;                                                                                 \
		}                                                                                                 \
		T g[BN];                                                                                          \
		for (int i = 0; i < BN; i++)                                                                      \
			g[i] = 1; /* loglik_grad ADDS */                                                              \
		double ll = K->loglik_grad(w, obs, 3, g);                                                         \
		assert_near(ll, total, tol * 3000);                                                        \
		for (int i = 0; i < BN; i++) {                                                                    \
			double gr = 1;                                                                                \
			for (int r = 0; r < 3; r++)                                                                   \
				gr += bern_obs[r * BN + i] - sig_ref(bern_w[i]);                                          \
			assert_near(g[i], gr, tol);                                                            \
		}                                                                                                 \
		T small[BN] = { 1, 2, 3, 4, 5 };                                                                  \
		double ob = K->objective(small, NULL, 0, NULL);                                                   \
		assert_near(ob, -55.0, tol);                                                               \
		ob = K->objective(small, NULL, 0, g);                                                             \
		assert_near(ob, -55.0, tol);                                                               \
		for (int i = 0; i < BN; i++)                                                                      \
			assert_near(g[i], -2.0 * (i + 1), tol);                                                \
		T q[BN];                                                                                          \
		K->conditionals(w, obs, q);                                                                       \
		for (int i = 0; i < BN; i++)                                                                      \
			assert_near(q[i], sig_ref(bern_w[i]), tol);                                            \
		T smp[4 * BN];                                                                                      \
		K->sample(w, 42, 100, 4, smp);                                                                      \
		for (int r = 0; r < 4; r++)                                                                       \
			for (int i = 0; i < BN; i++) {                                                                \
				T u = (T)chain_rng_uniform(42, CHAIN_STREAM_SAMPLE, 100 + (uint64_t)r, (uint32_t)i, 0);   \
				assert_true(smp[r * BN + i] == (u < (T)sig_ref(bern_w[i]) ? 1 : 0));                        \
			}                                                                                             \
		/* the same rows whatever the batch split */                                                      \
		T s2[BN];                                                                                         \
		K->sample(w, 42, 102, 1, s2);                                                                     \
		assert_memory_equal(s2, smp + 2 * BN, sizeof s2);                                                   \
		T cpl[2 * BN];                                                                                    \
		for (int i = 0; i < 2 * BN; i++)                                                                  \
			cpl[i] = 7;                                                                                   \
		K->complete(w, 42, 100, 2, 2, cpl);                                                               \
		for (int r = 0; r < 2; r++)                                                                       \
			for (int i = 0; i < BN; i++)                                                                  \
				assert_true(cpl[r * BN + i] == (i < 2 ? 7 : smp[r * BN + i]));                              \
		T th[BN];                                                                                         \
		K->init(th, 9);                                                                                   \
		for (int i = 0; i < BN; i++)                                                                      \
			assert_near(th[i], 0.01 * chain_rng_normal(9, CHAIN_STREAM_INIT, (uint64_t)i, 0, 0),   \
			                   tol);                                                                      \
	} while (0)

static void test_codegen__bern_f64__kernels_match_c_reference(void **state)
{
	(void)state;
	bern *b = bern_new();
	for (int opt = 0; opt <= 3; opt += 3) {
		jit_session *s;
		const chain_model *d = jit(b->m, false, opt, &s);
		assert_non_null(d->f64);
		assert_null(d->f32);
		assert_int_equal(d->precision, CHAIN_F64);
		const chain_kernels_f64 *K = d->f64;
		CHECK_BERN(double, K, 1e-12);
		jit_free(s);
	}
	bern_free(b);
}

static void test_codegen__bern_f32__kernels_match_c_reference(void **state)
{
	(void)state;
	bern *b = bern_new();
	jit_session *s;
	const chain_model *d = jit(b->m, true, 2, &s);
	assert_null(d->f64);
	assert_non_null(d->f32);
	assert_int_equal(d->precision, CHAIN_F32);
	const chain_kernels_f32 *K = d->f32;
	CHECK_BERN(float, K, 1e-5);
	jit_free(s);
	bern_free(b);
}

static void test_codegen__descriptor__fields_read_back_from_c(void **state)
{
	(void)state;
	bern *b = bern_new();
	jit_session *s;
	const chain_model *d = jit(b->m, false, 2, &s);
	assert_int_equal(d->abi_version, CHAIN_ABI_VERSION);
	assert_string_equal(d->name, "bern");
	assert_int_equal(d->num_params, BN);
	assert_int_equal(d->num_params_unused, 0);
	assert_int_equal(d->obs_size, BN);
	assert_int_equal(d->num_param_vars, 1);
	assert_string_equal(d->params[0].name, "w");
	assert_int_equal(d->params[0].kind, CHAIN_REAL);
	assert_int_equal(d->params[0].rank, 1);
	assert_int_equal(d->params[0].shape[0], BN);
	assert_int_equal(d->params[0].shape[1], 0);
	assert_int_equal(d->params[0].size, BN);
	assert_null(d->params[0].used);
	assert_int_equal(d->num_inputs, 0);
	assert_null(d->inputs);
	assert_int_equal(d->num_data, 1);
	assert_string_equal(d->data[0].name, "x");
	assert_int_equal(d->data[0].kind, CHAIN_BIN);
	assert_int_equal(d->num_positions, BN);
	for (int i = 0; i < BN; i++)
		assert_int_equal(d->order[i], i);
	assert_int_equal(d->cond_offset[BN], BN);
	assert_int_equal(d->objective, CHAIN_OBJ_LOGLIK);
	assert_int_equal(d->maximize, 1);
	jit_free(s);
	bern_free(b);
}

/* The descriptor's size_t tables are emitted as their bytes; a table whose
 * bytes would read as a C string (no 0 but the last) is emitted as i64s
 * (a string would go to a string section).  Both read back as written. */
static void test_codegen__descriptor_tables__any_values_read_back(void **state)
{
	(void)state;
	bern *b = bern_new();
	ir_module *m = b->m;
	for (int i = 0; i < BN; i++)
		m->order_offsets[i] = (int64_t)0x0101010101010101 * (i + 1);
	m->order_offsets[BN - 1] = 0x00ffeeddccbbaa99; /* only the last byte 0 */
	for (int i = 0; i <= BN; i++)
		m->cond_offset[i] = ((int64_t)1 << 40) + i * 257;
	jit_session *s = NULL;
	const chain_model *d = jit(m, false, 0, &s);
	for (int i = 0; i < BN; i++)
		assert_int_equal(d->order[i], (uint64_t)m->order_offsets[i]);
	for (int i = 0; i <= BN; i++)
		assert_int_equal(d->cond_offset[i], (uint64_t)m->cond_offset[i]);
	jit_free(s);
	bern_free(b);
}

/* ------------------------------------------------------- model "mv" */

/* model mv: param W: real[3, 4]; param b: real[3]; input u: real[2];
 * data x: real[4]; W[0, 3] structurally unused.  Its conditionals kernel
 * exercises each statement form; its objective has no no-grad variant. */
typedef struct mv {
	arena *a;
	model mdl;
	ir_module *m;
} mv;

static void push_stmt(ir_module *m, ir_block *b, ir_stmt *s)
{
	ir_block_push(m, b, s);
}

static mv *mv_new(void)
{
	mv *v = calloc(1, sizeof *v);
	arena *a = v->a = arena_new();
	model *mdl = &v->mdl;
	mdl->name = "mv";
	ptrvec_push(a, &mdl->params, mk_sym(a, SYM_PARAM, "W", K_REAL, 2, 3, 4, 0));
	ptrvec_push(a, &mdl->params, mk_sym(a, SYM_PARAM, "b", K_REAL, 1, 3, 0, 12));
	ptrvec_push(a, &mdl->inputs, mk_sym(a, SYM_INPUT, "u", K_REAL, 1, 2, 0, 0));
	sym *xs = mk_sym(a, SYM_DATA, "x", K_CAT, 1, 4, 0, 2);
	xs->cat_k = 6;
	ptrvec_push(a, &mdl->data, xs);
	mdl->num_params = 15;
	mdl->obs_size = 6;
	mdl->num_positions = 4;
	mdl->objective_has_loglik = false;
	mdl->maximize = false;
	ir_module *m = v->m = ir_module_new(a, mdl);
	m->order_offsets = arena_alloc(a, 4 * sizeof(int64_t));
	m->cond_offset = arena_alloc(a, 5 * sizeof(int64_t));
	for (int i = 0; i < 4; i++)
		m->order_offsets[i] = 5 - i;
	int64_t co[5] = { 0, 4, 8, 12, 15 };
	memcpy(m->cond_offset, co, sizeof co);
	m->param_used = arena_alloc(a, 2 * sizeof(uint8_t *));
	/* W's 12 entries, all used but entry 3: a bit each */
	m->param_used[0] = arena_alloc(a, 2);
	m->param_used[0][0] = 0xf7;
	m->param_used[0][1] = 0x0f;
	m->param_unused = arena_alloc(a, 2 * sizeof(int64_t));
	m->param_unused[0] = 1;
	m->num_unused = 1;

	ir_buf *W = mk_buf(m, "W", BUF_THETA, 2, 3, 4, 0);
	ir_buf *bb = mk_buf(m, "b", BUF_THETA, 1, 3, 0, 12);
	ir_buf *u = mk_buf(m, "u", BUF_OBS, 1, 2, 0, 0);
	ir_buf *x = mk_buf(m, "x", BUF_OBS, 1, 4, 0, 2);
	ir_kernel *k = ir_kernel_new(m, KER_CONDITIONALS, "conditionals");
	ir_loop *i = mk_loop(m, "i", 0, 3), *j = mk_loop(m, "j", 0, 4);
	ir_idx *ii = L(m, i), *jj = L(m, j);
	ir_idx *ij[2] = { ii, jj };
	ir_val *xj = rd1(m, x, jj);

	/* out[0..3) = W x + b: an S_SUM with a free loop, then an S_ADD */
	ir_buf *y = mk_buf(m, "y", BUF_OUT, 1, 3, 0, 0);
	ir_loop *lij[2] = { i, j };
	push_stmt(m, &k->body, ir_assign_stmt(m, S_SUM, lij, 2, 1, y, &ii, op2(m, IR_MUL, ir_read(m, W, ij), xj)));
	push_stmt(m, &k->body, ir_assign_stmt(m, S_ADD, &i, 1, 1, y, &ii, rd1(m, bb, ii)));
	/* out[3] = max_j x[j] */
	ir_buf *mx = mk_buf(m, "mx", BUF_OUT, 0, 0, 0, 3);
	push_stmt(m, &k->body, ir_assign_stmt(m, S_MAX, &j, 1, 0, mx, NULL, xj));
	/* out[4..8) = suffix sums of x: a reverse S_FOR */
	ir_buf *acc = mk_buf(m, "acc", BUF_TEMP, 0, 0, 0, 0);
	ir_buf *suf = mk_buf(m, "suf", BUF_OUT, 1, 4, 0, 4);
	ir_loop *kr = mk_loop(m, "kr", 0, 4);
	kr->reverse = true;
	ir_stmt *rev = for_stmt(m, &k->body, kr);
	ir_idx *kri = L(m, kr);
	push_stmt(m, &rev->body, ir_assign_stmt(m, S_ADD, NULL, 0, 0, acc, NULL, rd1(m, x, kri)));
	push_stmt(m, &rev->body, ir_assign_stmt(m, S_SET, NULL, 0, 0, suf, &kri, ir_read(m, acc, NULL)));
	/* out[8]: an S_ADD of two assignments, the second reading what the
	 * first wrote: a += a + x[j]; cum += a */
	ir_buf *ta = mk_buf(m, "a", BUF_TEMP, 0, 0, 0, 0);
	ir_buf *cum = mk_buf(m, "cum", BUF_OUT, 0, 0, 0, 8);
	ir_stmt *two = ir_stmt_new(m, S_ADD);
	two->loops = arena_alloc(a, sizeof *two->loops);
	two->loops[0] = j;
	two->nloops = two->nfree = 1;
	two->assigns = arena_alloc(a, 2 * sizeof *two->assigns);
	two->nassigns = 2;
	two->assigns[0].buf = ta;
	two->assigns[0].val = op2(m, IR_ADD, ir_read(m, ta, NULL), xj);
	two->assigns[1].buf = cum;
	two->assigns[1].val = ir_read(m, ta, NULL);
	push_stmt(m, &k->body, two);
	/* out[9] = sum of a 5000-real scratch (heap, not stack) */
	ir_buf *big = mk_buf(m, "big", BUF_TEMP, 1, 5000, 0, 0);
	ir_loop *bl = mk_loop(m, "bi", 0, 5000);
	ir_idx *bi = L(m, bl);
	push_stmt(m, &k->body, ir_assign_stmt(m, S_SET, &bl, 1, 1, big, &bi, ir_int(m, bi)));
	ir_buf *bs = mk_buf(m, "bs", BUF_OUT, 0, 0, 0, 9);
	push_stmt(m, &k->body, ir_assign_stmt(m, S_SUM, &bl, 1, 0, bs, NULL, rd1(m, big, bi)));
	/* out[10] = u[0] * u[1] (inputs) */
	ir_buf *o10 = mk_buf(m, "o10", BUF_OUT, 0, 0, 0, 10);
	push_stmt(m, &k->body, ir_assign_stmt(m, S_SET, NULL, 0, 0, o10, NULL,
	                                      op2(m, IR_MUL, rd1(m, u, ir_idx_const(m, 0)), rd1(m, u, ir_idx_const(m, 1)))));
	/* out[11] = sum_{i < 4} sum_{t < i} x[i] x[t]: a triangular nest */
	ir_loop *ti = mk_loop(m, "ti", 0, 4);
	ir_loop *tj = ir_loop_new(m, "tj", ir_idx_const(m, 0), L(m, ti));
	ir_loop *tl[2] = { ti, tj };
	ir_buf *o11 = mk_buf(m, "o11", BUF_OUT, 0, 0, 0, 11);
	push_stmt(m, &k->body, ir_assign_stmt(m, S_SUM, tl, 2, 0, o11, NULL,
	                                      op2(m, IR_MUL, rd1(m, x, L(m, ti)), rd1(m, x, L(m, tj)))));
	/* out[12] = sum_j c[j] x[j] with a real CONST; out[13] = sum_j j *
	 * x[perm[j]] with an int CONST permutation */
	ir_buf *cst = mk_buf(m, "c", BUF_CONST, 1, 4, 0, 0);
	cst->values = arena_alloc(a, 4 * sizeof(double));
	for (int q = 0; q < 4; q++)
		cst->values[q] = 0.5 + q;
	ir_buf *o12 = mk_buf(m, "o12", BUF_OUT, 0, 0, 0, 12);
	push_stmt(m, &k->body, ir_assign_stmt(m, S_SUM, &j, 1, 0, o12, NULL, op2(m, IR_MUL, rd1(m, cst, jj), xj)));
	ir_buf *perm = mk_buf(m, "perm", BUF_CONST, 1, 4, 0, 0);
	perm->is_int = true;
	perm->ivalues = arena_alloc(a, 4 * sizeof(int64_t));
	for (int q = 0; q < 4; q++)
		perm->ivalues[q] = 3 - q;
	ir_buf *o13 = mk_buf(m, "o13", BUF_OUT, 0, 0, 0, 13);
	push_stmt(m, &k->body, ir_assign_stmt(m, S_SUM, &j, 1, 0, o13, NULL,
	                                      op2(m, IR_MUL, ir_int(m, jj), rd1(m, x, ir_idx_load(m, perm, &jj)))));
	/* out[14] = max over an empty range = -inf */
	ir_loop *e = mk_loop(m, "e", 0, 0);
	ir_buf *o14 = mk_buf(m, "o14", BUF_OUT, 0, 0, 0, 14);
	push_stmt(m, &k->body, ir_assign_stmt(m, S_MAX, &e, 1, 0, o14, NULL, rd1(m, x, L(m, e))));

	/* objective: sum W^2, grad 2W; no no-grad variant */
	ir_kernel *ko = ir_kernel_new(m, KER_OBJECTIVE, "objective");
	ir_buf *gW = mk_buf(m, "gW", BUF_GRAD, 2, 3, 4, 0);
	ir_buf *obj = mk_buf(m, "obj", BUF_TEMP, 0, 0, 0, 0);
	ir_val *Wij = ir_read(m, W, ij);
	push_stmt(m, &ko->body, ir_assign_stmt(m, S_SUM, lij, 2, 0, obj, NULL, op1(m, IR_SQUARE, Wij)));
	push_stmt(m, &ko->body, ir_assign_stmt(m, S_SET, lij, 2, 2, gW, ij, op2(m, IR_MUL, Wij, ir_const(m, 2))));
	ko->result = obj;
	return v;
}

static void mv_free(mv *v)
{
	arena_free(v->a);
	free(v);
}

static void test_codegen__statement_forms__compute_what_the_ir_says(void **state)
{
	(void)state;
	mv *v = mv_new();
	for (int opt = 0; opt <= 3; opt++) {
		jit_session *s;
		const chain_model *d = jit(v->m, false, opt, &s);
		double th[15], obs[6] = { 1.5, -2, 1, 2, 3, 4 }, out[15];
		for (int q = 0; q < 15; q++)
			th[q] = 0.25 * q - 1;
		for (int q = 0; q < 15; q++)
			out[q] = 12345;
		out[8] = 0; /* cum is accumulated into */
		assert_null(d->f64->logp);
		d->f64->conditionals(th, obs, out);
		const double *x = obs + 2;
		for (int i = 0; i < 3; i++) {
			double y = th[12 + i];
			for (int j = 0; j < 4; j++)
				y += th[i * 4 + j] * x[j];
			assert_near(out[i], y, 1e-12);
		}
		assert_near(out[3], 4, 0);
		assert_near(out[4], 10, 0);
		assert_near(out[5], 9, 0);
		assert_near(out[6], 7, 0);
		assert_near(out[7], 4, 0);
		assert_near(out[8], 1 + 4 + 11 + 26, 0);
		assert_near(out[9], 4999.0 * 5000 / 2, 0);
		assert_near(out[10], -3, 0);
		double tri = 0;
		for (int i = 0; i < 4; i++)
			for (int j = 0; j < i; j++)
				tri += x[i] * x[j];
		assert_near(out[11], tri, 0);
		assert_near(out[12], 0.5 * 1 + 1.5 * 2 + 2.5 * 3 + 3.5 * 4, 0);
		assert_near(out[13], 0 * 4 + 1 * 3 + 2 * 2 + 3 * 1, 0);
		assert_true(isinf(out[14]) && out[14] < 0);

		double ref = 0;
		for (int q = 0; q < 12; q++)
			ref += th[q] * th[q];
		assert_near(d->f64->objective(th, NULL, 0, NULL), ref, 1e-12);
		double g[15] = { 0 };
		assert_near(d->f64->objective(th, NULL, 0, g), ref, 1e-12);
		for (int q = 0; q < 12; q++)
			assert_near(g[q], 2 * th[q], 0);
		assert_near(g[12], 0, 0);
		jit_free(s);
	}
	mv_free(v);
}

static void test_codegen__descriptor__inputs_cat_used_mask_order(void **state)
{
	(void)state;
	mv *v = mv_new();
	jit_session *s;
	const chain_model *d = jit(v->m, false, 1, &s);
	assert_string_equal(d->name, "mv");
	assert_int_equal(d->num_params, 15);
	assert_int_equal(d->num_params_unused, 1);
	assert_int_equal(d->num_param_vars, 2);
	assert_string_equal(d->params[0].name, "W");
	assert_int_equal(d->params[0].rank, 2);
	assert_int_equal(d->params[0].shape[0], 3);
	assert_int_equal(d->params[0].shape[1], 4);
	assert_int_equal(d->params[0].size, 12);
	assert_int_equal(d->params[0].unused, 1);
	assert_non_null(d->params[0].used);
	for (int q = 0; q < 12; q++)
		assert_int_equal(d->params[0].used[q], q == 3 ? 0 : 1);
	assert_string_equal(d->params[1].name, "b");
	assert_int_equal(d->params[1].offset, 12);
	assert_null(d->params[1].used);
	assert_int_equal(d->num_inputs, 1);
	assert_string_equal(d->inputs[0].name, "u");
	assert_int_equal(d->inputs[0].kind, CHAIN_REAL);
	assert_int_equal(d->inputs[0].size, 2);
	assert_int_equal(d->num_data, 1);
	assert_int_equal(d->data[0].kind, CHAIN_CAT);
	assert_int_equal(d->data[0].cat_k, 6);
	assert_int_equal(d->data[0].offset, 2);
	assert_int_equal(d->num_positions, 4);
	assert_int_equal(d->order[0], 5);
	assert_int_equal(d->order[3], 2);
	assert_int_equal(d->cond_offset[1], 4);
	assert_int_equal(d->cond_offset[4], 15);
	assert_int_equal(d->objective, CHAIN_OBJ_FREE);
	assert_int_equal(d->maximize, 0);
	assert_null(d->f64->init);
	assert_non_null(d->f64->objective);
	jit_free(s);
	mv_free(v);
}

/* ------------------------------------------------ errors and targets */

static void test_codegen__bad_target_or_cpu__clear_errors(void **state)
{
	(void)state;
	bern *b = bern_new();
	char *err = NULL;
	cg_options o = { .opt_level = 2, .target = "nonsense-unknown-nowhere" };
	assert_null(cg_generate(b->m, &o, &err));
	assert_non_null(err);
	assert_non_null(strstr(err, "unknown target"));
	free(err);
	err = NULL;
	cg_options o2 = { .opt_level = 2, .cpu = "notacpu9000" };
	assert_null(cg_generate(b->m, &o2, &err));
	assert_non_null(err);
	assert_non_null(strstr(err, "notacpu9000"));
	assert_non_null(strstr(err, "not a recognized processor"));
	free(err);
	err = NULL;
#if defined(__x86_64__)
	cg_options o4 = { .opt_level = 2, .cpu = "x86-64", .features = "+sse2,+nosuchfeature" };
	assert_null(cg_generate(b->m, &o4, &err));
	assert_non_null(err);
	assert_non_null(strstr(err, "nosuchfeature"));
	assert_null(strstr(err, "ignoring"));
	free(err);
	err = NULL;
#endif
	cg_options o3 = { .opt_level = 2, .target = "i686-pc-linux-gnu" };
	assert_null(cg_generate(b->m, &o3, &err));
	assert_non_null(err);
	assert_non_null(strstr(err, "64-bit"));
	free(err);
	bern_free(b);
}

/* lower_descriptor_tables fills the tables only for what emits the
 * descriptor: a module that skipped it must not become a descriptor whose
 * order is a null pointer. */
static void test_codegen__descriptor_tables_missing__internal_error(void **state)
{
	(void)state;
	bern *b = bern_new();
	b->m->order_offsets = NULL;
	b->m->cond_offset = NULL;
	char *err = NULL;
	cg_options opt = { .opt_level = 0 };
	assert_null(cg_generate(b->m, &opt, &err));
	assert_non_null(err);
	assert_non_null(strstr(err, "lower_descriptor_tables"));
	free(err);
	bern_free(b);
}

static void test_codegen__loop_variable_out_of_scope__internal_error(void **state)
{
	(void)state;
	bern *b = bern_new();
	ir_module *m = b->m;
	ir_kernel *k = m->kernels[KER_CONDITIONALS];
	ir_loop *stray = mk_loop(m, "stray", 0, 2);
	ir_buf *o = mk_buf(m, "o", BUF_OUT, 1, 2, 0, 0);
	ir_idx *si = L(m, stray);
	ir_block_push(m, &k->body, ir_assign_stmt(m, S_SET, NULL, 0, 0, o, &si, ir_const(m, 1)));
	char *err = NULL;
	cg_options opt = { .opt_level = 0 };
	assert_null(cg_generate(m, &opt, &err));
	assert_non_null(strstr(err, "stray"));
	free(err);
	bern_free(b);
}

static char *tmp_dir(void)
{
	char tmpl[] = "/tmp/chain_cg_XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return strdup(d);
}

static char *path_in(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static long file_size(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

/* The text of file p (malloc'd), NULL when it cannot be read. */
static char *slurp(const char *p)
{
	FILE *f = fopen(p, "r");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, n = 0;
	char *text = malloc(cap);
	for (size_t got; text && (got = fread(text + n, 1, cap - n - 1, f)) > 0;) {
		n += got;
		if (n + 1 == cap)
			text = realloc(text, cap *= 2);
	}
	fclose(f);
	if (text)
		text[n] = 0;
	return text;
}

/* Removes a test's directory, unless CHAIN_TEST_KEEP is set (to look at
 * the emitted files). */
static void rm_rf(const char *dir)
{
	if (getenv("CHAIN_TEST_KEEP")) {
		fprintf(stderr, "kept %s\n", dir);
		return;
	}
	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static void test_codegen__emit__every_kind_and_no_partial_files(void **state)
{
	(void)state;
	bern *b = bern_new();
	char *dir = tmp_dir();
	char *err = NULL;
	cg_options o = { .opt_level = 2 };
	cg_unit *u = cg_generate(b->m, &o, &err);
	assert_non_null(u);
	const char *names[] = { "m.o", "m.s", "m.ll", "m.bc" };
	cg_emit_kind kinds[] = { EMIT_OBJ, EMIT_ASM, EMIT_LLVM, EMIT_BC };
	for (int i = 0; i < 4; i++) {
		char *p = path_in(dir, names[i]);
		assert_int_equal(cg_emit(u, kinds[i], p, &err), 0);
		assert_true(file_size(p) > 0);
		free(p);
	}
	char *ll = path_in(dir, "m.ll");
	char *text = slurp(ll);
	assert_non_null(text);
	assert_non_null(strstr(text, "@bern_model = "));
	assert_non_null(strstr(text, "constant %chain_model"));
	assert_non_null(strstr(text, "define double @bern_logp(ptr noalias nocapture readonly"));
	free(text);
	free(ll);
	/* a destination in a missing directory: an error, and nothing written */
	char *bad = path_in(dir, "missing/m.o");
	assert_int_equal(cg_emit(u, EMIT_OBJ, bad, &err), -1);
	assert_non_null(err);
	assert_int_equal(file_size(bad), -1);
	free(bad);
	cg_unit_free(u);
	/* cross compiling to aarch64 */
	cg_options x = { .opt_level = 2, .target = "aarch64-linux-gnu" };
	u = cg_generate(b->m, &x, &err);
	if (u) {
		char *p = path_in(dir, "arm.o");
		assert_int_equal(cg_emit(u, EMIT_OBJ, p, &err), 0);
		assert_true(file_size(p) > 0);
		free(p);
		cg_unit_free(u);
	} else {
		assert_non_null(strstr(err, "unknown target")); /* an LLVM without AArch64 */
	}
	/* the directory holds exactly the files written: no temporaries left */
	char cmd[512];
	snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | grep -c tmp) -eq 0", dir);
	assert_int_equal(system(cmd), 0);
	free(err);
	rm_rf(dir);
	free(dir);
	bern_free(b);
}

/* The source tree: CHAIN_SRC_DIR, else derived from this file's path. */
static char *src_root(void)
{
	const char *env = getenv("CHAIN_SRC_DIR");
	char buf[4096];
	if (env) {
		snprintf(buf, sizeof buf, "%s", env);
	} else {
		snprintf(buf, sizeof buf, "%s", __FILE__);
		char *t = strstr(buf, "tests/unit/test_codegen.c");
		if (!t)
			return NULL;
		if (t == buf)
			snprintf(buf, sizeof buf, ".");
		else
			t[-1] = 0;
	}
	char probe[4200];
	snprintf(probe, sizeof probe, "%s/runtime/include/chain/model.h", buf);
	if (file_size(probe) < 0)
		return NULL;
	return realpath(buf, NULL);
}

static const char *prog_src =
	"#include <math.h>\n"
	"#include <stddef.h>\n"
	"#include <stdio.h>\n"
	"#include <string.h>\n"
	"#include <chain/rng.h>\n"
	"#include \"bern.h\"\n"
	"_Static_assert(sizeof(chain_model) == 160, \"layout\");\n"
	"_Static_assert(offsetof(chain_model, f64) == 128 && offsetof(chain_model, loglik_only) == 144, \"layout\");\n"
	"_Static_assert(offsetof(chain_model, value_max) == 152, \"layout\");\n"
	"#define CHECK(c) do { if (!(c)) { printf(\"FAIL line %d: %s\\n\", __LINE__, #c); fails++; } } while (0)\n"
	"static double sp(double x) { return fmax(x, 0) + log1p(exp(-fabs(x))); }\n"
	"int main(void) {\n"
	"  int fails = 0;\n"
	"  bern_real w[bern_NUM_PARAMS] = { 0.5, -1.25, 3.0, -1000.0, 1000.0 };\n"
	"  bern_real obs[2 * bern_OBS_SIZE] = { 1, 0, 1, 0, 1, 0, 0, 1, 1, 0 };\n"
	"  double ref[2] = { 0, 0 };\n"
	"  for (int r = 0; r < 2; r++) for (int k = 0; k < 5; k++) ref[r] += obs[r * 5 + k] * w[k] - sp(w[k]);\n"
	"  CHECK(fabs(bern_logp(w, obs) - ref[0]) < 1e-9);\n"
	"  bern_real out[2];\n"
	"  bern_logp_batch(w, obs, 2, out);\n"
	"  CHECK(fabs(out[1] - ref[1]) < 1e-9);\n"
	"  bern_real th[bern_NUM_PARAMS];\n"
	"  bern_init(th, 3);\n"
	"  CHECK(th[2] == 0.01 * chain_rng_normal(3, 1, 2, 0, 0));\n"
	"  CHECK(bern_w_OFFSET == 0 && bern_w_SIZE == 5 && bern_x_OFFSET == 0 && bern_x_SIZE == 5);\n"
	"  CHECK(bern_NUM_POSITIONS == 5);\n"
	"  CHECK(bern_model.abi_version == CHAIN_ABI_VERSION);\n"
	"  CHECK(strcmp(bern_model.name, \"bern\") == 0);\n"
	"  CHECK(bern_model.precision == CHAIN_F64 && bern_model.f32 == NULL);\n"
	"  CHECK(bern_model.f64->logp == bern_logp && bern_model.f64->sample == bern_sample);\n"
	"  CHECK(bern_model.num_params == 5 && bern_model.obs_size == 5 && bern_model.num_data == 1);\n"
	"  CHECK(strcmp(bern_model.params[0].name, \"w\") == 0 && bern_model.params[0].shape[0] == 5);\n"
	"  CHECK(bern_model.data[0].kind == CHAIN_BIN && bern_model.order[4] == 4);\n"
	"  CHECK(bern_model.cond_offset[5] == 5 && bern_model.objective == CHAIN_OBJ_LOGLIK && bern_model.maximize == 1);\n"
	"  CHECK(bern_objective(w, NULL, 0, NULL) < 0);\n"
	"  CHECK(bern_model.loglik_only == 0 && !chain_model_loglik_only(&bern_model)); /* it has a penalty */\n"
	"  CHECK(bern_model.value_max == NULL); /* no sum's range depends on a value */\n"
	"  printf(\"%d failures\\n\", fails);\n"
	"  return fails != 0;\n"
	"}\n";

/* The objective's gW[i, j] = 2 W[i, j] only streams: its loop goes to LLVM
 * hinted to one vector per iteration (cg_kernel.c's streams); at -O0 no
 * pass has consumed the hint yet. */
static void test_codegen__streaming_loop__hinted_to_one_vector(void **state)
{
	(void)state;
	mv *v = mv_new();
	char *dir = tmp_dir();
	char *err = NULL;
	cg_options o = { .opt_level = 0 };
	cg_unit *u = cg_generate(v->m, &o, &err);
	assert_non_null(u);
	char *ll = path_in(dir, "mv.ll");
	assert_int_equal(cg_emit(u, EMIT_LLVM, ll, &err), 0);
	char *text = slurp(ll);
	assert_non_null(text);
	assert_non_null(strstr(text, "!\"llvm.loop.interleave.count\", i32 1}"));
	free(text);
	free(ll);
	cg_unit_free(u);
	rm_rf(dir);
	free(dir);
	mv_free(v);
}

static void test_codegen__object_and_header__link_into_a_c_program(void **state)
{
	(void)state;
	char *root = src_root();
	if (!root) {
		fprintf(stderr, "source tree not found (set CHAIN_SRC_DIR): skipped\n");
		skip();
	}
	bern *b = bern_new();
	char *dir = tmp_dir();
	char *err = NULL;
	cg_options o = { .opt_level = 2 };
	cg_unit *u = cg_generate(b->m, &o, &err);
	assert_non_null(u);
	char *obj = path_in(dir, "bern.o"), *hdr = path_in(dir, "bern.h"), *prog = path_in(dir, "prog.c");
	assert_int_equal(cg_emit(u, EMIT_OBJ, obj, &err), 0);
	cg_unit_free(u);
	assert_int_equal(cg_emit_header(b->m, &o, hdr, &err), 0);
	FILE *f = fopen(prog, "w");
	fputs(prog_src, f);
	fclose(f);
	char cmd[8192];
	snprintf(cmd, sizeof cmd,
	         "cc -std=c11 -Wall -Wextra -Werror -Wstrict-prototypes -I'%s' -I'%s/runtime/include' '%s' '%s' "
	         "'%s/runtime/rng.c' -lm -o '%s/prog' && '%s/prog'",
	         dir, root, prog, obj, root, dir, dir);
	int rc = system(cmd);
	if (rc != 0) {
		snprintf(cmd, sizeof cmd, "cat '%s'", hdr);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot show the header\n");
	}
	assert_int_equal(rc, 0);
	/* the header also compiles as C++ (extern "C") when a C++ compiler is there */
	snprintf(cmd, sizeof cmd,
	         "if command -v c++ >/dev/null; then echo '#include \"bern.h\"' | c++ -x c++ -fsyntax-only "
	         "-I'%s' -I'%s/runtime/include' -; fi",
	         dir, root);
	assert_int_equal(system(cmd), 0);
	/* an f32 header says so */
	cg_options o32 = { .opt_level = 2, .f32 = true };
	assert_int_equal(cg_emit_header(b->m, &o32, hdr, &err), 0);
	f = fopen(hdr, "r");
	char text[8192];
	size_t n = fread(text, 1, sizeof text - 1, f);
	text[n] = 0;
	fclose(f);
	assert_non_null(strstr(text, "typedef float bern_real;"));
	assert_non_null(strstr(text, "single precision"));
	assert_non_null(strstr(text, "float bern_logp(const bern_real *theta, const bern_real *obs);") ||
	                strstr(text, "bern_real bern_logp(const bern_real *theta, const bern_real *obs);"));
	free(err);
	free(obj);
	free(hdr);
	free(prog);
	rm_rf(dir);
	free(dir);
	free(root);
	bern_free(b);
}

static void test_codegen__header__name_collision_is_an_error(void **state)
{
	(void)state;
	bern *b = bern_new();
	/* a variable named OBS would define bern_OBS_SIZE twice */
	((sym *)b->mdl.data.items[0])->name = "OBS";
	char *dir = tmp_dir();
	char *hdr = path_in(dir, "bern.h");
	char *err = NULL;
	cg_options o = { .opt_level = 2 };
	assert_int_equal(cg_emit_header(b->m, &o, hdr, &err), -1);
	assert_non_null(strstr(err, "bern_OBS_SIZE"));
	assert_int_equal(file_size(hdr), -1);
	free(err);
	free(hdr);
	rm_rf(dir);
	free(dir);
	bern_free(b);
}

static void test_codegen__header__many_variables_each_defined_once(void **state)
{
	(void)state;
	enum { NQ = 3000 };
	for (int collide = 0; collide < 2; collide++) {
		bern *b = bern_new();
		/* thousands of names in the header's table of macros (it grows) */
		for (int q = 0; q < NQ; q++)
			ptrvec_push(b->a, &b->mdl.params, mk_sym(b->a, SYM_PARAM, arena_printf(b->a, "q%d", q), K_REAL, 0, 0, 0,
			                                         (size_t)(BN + q)));
		if (collide) /* the last variable's macros collide with a fixed one */
			((sym *)b->mdl.data.items[0])->name = "OBS";
		char *dir = tmp_dir();
		char *hdr = path_in(dir, "bern.h");
		char *err = NULL;
		cg_options o = { .opt_level = 2 };
		int rc = cg_emit_header(b->m, &o, hdr, &err);
		if (collide) {
			assert_int_equal(rc, -1);
			assert_non_null(strstr(err, "bern_OBS_SIZE"));
			assert_int_equal(file_size(hdr), -1);
		} else {
			assert_int_equal(rc, 0);
			assert_null(err);
			FILE *f = fopen(hdr, "r");
			assert_non_null(f);
			static char text[1 << 20];
			size_t n = fread(text, 1, sizeof text - 1, f);
			text[n] = 0;
			fclose(f);
			assert_non_null(strstr(text, "#define bern_q0_OFFSET 5\n"));
			assert_non_null(strstr(text, "#define bern_q2999_OFFSET 3004\n#define bern_q2999_SIZE 1\n"));
		}
		free(err);
		free(hdr);
		rm_rf(dir);
		free(dir);
		bern_free(b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codegen__bern_f64__kernels_match_c_reference),
		cmocka_unit_test(test_codegen__bern_f32__kernels_match_c_reference),
		cmocka_unit_test(test_codegen__descriptor__fields_read_back_from_c),
		cmocka_unit_test(test_codegen__statement_forms__compute_what_the_ir_says),
		cmocka_unit_test(test_codegen__streaming_loop__hinted_to_one_vector),
		cmocka_unit_test(test_codegen__descriptor__inputs_cat_used_mask_order),
		cmocka_unit_test(test_codegen__bad_target_or_cpu__clear_errors),
		cmocka_unit_test(test_codegen__descriptor_tables__any_values_read_back),
		cmocka_unit_test(test_codegen__descriptor_tables_missing__internal_error),
		cmocka_unit_test(test_codegen__loop_variable_out_of_scope__internal_error),
		cmocka_unit_test(test_codegen__emit__every_kind_and_no_partial_files),
		cmocka_unit_test(test_codegen__object_and_header__link_into_a_c_program),
		cmocka_unit_test(test_codegen__header__name_collision_is_an_error),
		cmocka_unit_test(test_codegen__header__many_variables_each_defined_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
