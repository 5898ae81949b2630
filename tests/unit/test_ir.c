/* test_ir.c -- the model IR: hash-consing, folding, printing. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chainc.h"

typedef struct fixture {
	arena *a;
	model mdl;
	ir_module *m;
	ir_buf *theta, *x, *acc, *perm;
	ir_loop *k;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	f->a = arena_new();
	f->mdl.name = "t";
	f->m = ir_module_new(f->a, &f->mdl);
	int64_t d5[1] = { 5 };
	f->theta = ir_buf_new(f->m, "w", BUF_THETA, 1, d5);
	f->x = ir_buf_new(f->m, "x", BUF_OBS, 1, d5);
	f->acc = ir_buf_new(f->m, "acc", BUF_TEMP, 0, NULL);
	f->perm = ir_buf_new(f->m, "perm", BUF_CONST, 1, d5);
	f->perm->is_int = true;
	f->k = ir_loop_new(f->m, "k", ir_idx_const(f->m, 0), ir_idx_const(f->m, 5));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	arena_free(f->a);
	free(f);
	return 0;
}

/* theta[k], built afresh each time (a new ir_idx object each call). */
static ir_val *read_k(fixture *f, ir_buf *b)
{
	ir_idx *i = ir_idx_loop(f->m, f->k);
	return ir_read(f->m, b, &i);
}

static void test_ir__same_expression_built_twice__is_one_pointer(void **state)
{
	fixture *f = *state;
	ir_val *a = ir_op(f->m, IR_MUL, read_k(f, f->x), ir_op(f->m, IR_SOFTPLUS, read_k(f, f->theta), NULL, NULL), NULL);
	ir_val *b = ir_op(f->m, IR_MUL, read_k(f, f->x), ir_op(f->m, IR_SOFTPLUS, read_k(f, f->theta), NULL, NULL), NULL);
	assert_ptr_equal(a, b);
	assert_ptr_equal(read_k(f, f->x), read_k(f, f->x));
	/* reads through a loaded index compare structurally too */
	ir_idx *pi = ir_idx_loop(f->m, f->k);
	ir_idx *l1 = ir_idx_load(f->m, f->perm, &pi);
	ir_idx *pj = ir_idx_loop(f->m, f->k);
	ir_idx *l2 = ir_idx_load(f->m, f->perm, &pj);
	assert_true(ir_idx_equal(l1, l2));
	assert_ptr_equal(ir_read(f->m, f->x, &l1), ir_read(f->m, f->x, &l2));
	/* draws with equal coordinates are one node */
	ir_idx *r1 = ir_idx_leaf(f->m, IX_ROW), *r2 = ir_idx_leaf(f->m, IX_ROW);
	assert_ptr_equal(ir_draw(f->m, DRAW_UNIFORM, 0, r1, pi, 0), ir_draw(f->m, DRAW_UNIFORM, 0, r2, pj, 0));
	assert_ptr_not_equal(ir_draw(f->m, DRAW_UNIFORM, 0, r1, pi, 0), ir_draw(f->m, DRAW_UNIFORM, 0, r1, pi, 1));
	assert_ptr_not_equal(ir_draw(f->m, DRAW_UNIFORM, 0, r1, pi, 0), ir_draw(f->m, DRAW_NORMAL, 0, r1, pi, 0));
	/* a Poisson draw's rate is part of it: equal rates, one node; another
	 * rate, another node; and the walkers see what the rate reads */
	ir_val *rate = ir_op(f->m, IR_EXP, read_k(f, f->theta), NULL, NULL);
	ir_val *p1 = ir_draw_at(f->m, DRAW_POISSON, 0, r1, pi, 0, NULL, rate);
	assert_ptr_equal(p1, ir_draw_at(f->m, DRAW_POISSON, 0, r2, pj, 0, NULL,
	                                ir_op(f->m, IR_EXP, read_k(f, f->theta), NULL, NULL)));
	assert_ptr_not_equal(p1, ir_draw_at(f->m, DRAW_POISSON, 0, r1, pi, 0, NULL, read_k(f, f->theta)));
	assert_true(ir_val_reads(p1, f->theta));
	assert_false(ir_val_reads(p1, f->x));
}

static void test_ir__different_buffers_or_indices__differ(void **state)
{
	fixture *f = *state;
	assert_ptr_not_equal(read_k(f, f->x), read_k(f, f->theta));
	ir_idx *c1 = ir_idx_const(f->m, 1), *c2 = ir_idx_const(f->m, 2);
	assert_ptr_not_equal(ir_read(f->m, f->x, &c1), ir_read(f->m, f->x, &c2));
	assert_ptr_not_equal(ir_const(f->m, 0.0), ir_const(f->m, -0.0));
	assert_ptr_equal(ir_const(f->m, NAN), ir_const(f->m, NAN));
	assert_ptr_equal(ir_const(f->m, 2.5), ir_const(f->m, 2.5));
	/* many distinct nodes: the table grows and still finds them all */
	ir_val *v[2000];
	for (int i = 0; i < 2000; i++)
		v[i] = ir_const(f->m, i * 0.5);
	for (int i = 0; i < 2000; i++)
		assert_ptr_equal(v[i], ir_const(f->m, i * 0.5));
}

static void test_ir__constants__fold_as_generated_code_computes(void **state)
{
	fixture *f = *state;
	ir_module *m = f->m;
	ir_val *v = ir_op(m, IR_ADD, ir_const(m, 2), ir_const(m, 3), NULL);
	assert_int_equal(v->kind, V_CONST);
	assert_true(v->u.c == 5.0);
	/* the stable forms stay finite at |x| = 1e3 */
	v = ir_op(m, IR_SIGMOID, ir_const(m, -1000), NULL, NULL);
	assert_true(v->kind == V_CONST && v->u.c >= 0 && v->u.c < 1e-300);
	v = ir_op(m, IR_SIGMOID, ir_const(m, 1000), NULL, NULL);
	assert_true(v->u.c == 1.0);
	v = ir_op(m, IR_SOFTPLUS, ir_const(m, 1000), NULL, NULL);
	assert_true(v->u.c == 1000.0);
	v = ir_op(m, IR_SOFTPLUS, ir_const(m, -1000), NULL, NULL);
	assert_true(v->u.c >= 0 && v->u.c < 1e-300);
	v = ir_op(m, IR_LOG_SIGMOID, ir_const(m, -1000), NULL, NULL);
	assert_true(v->u.c == -1000.0);
	v = ir_op(m, IR_SOFTPLUS, ir_const(m, 0.3), NULL, NULL);
	assert_true(fabs(v->u.c - log1p(exp(0.3))) < 1e-15);
	v = ir_op(m, IR_SELECT, ir_const(m, 0), ir_const(m, 7), ir_const(m, 8));
	assert_true(v->u.c == 8.0);
	v = ir_op(m, IR_NE, ir_const(m, NAN), ir_const(m, NAN), NULL);
	assert_true(v->u.c == 1.0);
	v = ir_op(m, IR_LT, ir_const(m, NAN), ir_const(m, 1), NULL);
	assert_true(v->u.c == 0.0);
	v = ir_op(m, IR_AND, ir_const(m, 2), ir_const(m, -1), NULL);
	assert_true(v->u.c == 1.0);
	/* 0 * const folds (both constants) ... */
	v = ir_op(m, IR_MUL, ir_const(m, 0), ir_const(m, 5), NULL);
	assert_true(v->kind == V_CONST && v->u.c == 0.0);
	v = ir_op(m, IR_MUL, ir_const(m, 0), ir_const(m, INFINITY), NULL);
	assert_true(v->kind == V_CONST && isnan(v->u.c));
}

static void test_ir__identities__only_exact_ones(void **state)
{
	fixture *f = *state;
	ir_module *m = f->m;
	ir_val *x = read_k(f, f->theta);
	assert_ptr_equal(ir_op(m, IR_ADD, x, ir_const(m, 0), NULL), x);
	assert_ptr_equal(ir_op(m, IR_ADD, ir_const(m, 0), x, NULL), x);
	assert_ptr_equal(ir_op(m, IR_SUB, x, ir_const(m, 0), NULL), x);
	assert_ptr_equal(ir_op(m, IR_MUL, x, ir_const(m, 1), NULL), x);
	assert_ptr_equal(ir_op(m, IR_MUL, ir_const(m, 1), x, NULL), x);
	assert_ptr_equal(ir_op(m, IR_DIV, x, ir_const(m, 1), NULL), x);
	ir_val *nx = ir_op(m, IR_NEG, x, NULL, NULL);
	assert_ptr_equal(ir_op(m, IR_NEG, nx, NULL, NULL), x);
	assert_ptr_equal(ir_op(m, IR_MUL, x, ir_const(m, -1), NULL), nx);
	/* x * 0 is not 0 when x is NaN or Inf: kept */
	ir_val *z = ir_op(m, IR_MUL, x, ir_const(m, 0), NULL);
	assert_int_equal(z->kind, V_OP);
	/* commutative operands are canonical */
	ir_val *y = read_k(f, f->x);
	assert_ptr_equal(ir_op(m, IR_ADD, x, y, NULL), ir_op(m, IR_ADD, y, x, NULL));
	assert_ptr_equal(ir_op(m, IR_MUL, x, ir_const(m, 3), NULL), ir_op(m, IR_MUL, ir_const(m, 3), x, NULL));
	assert_ptr_not_equal(ir_op(m, IR_SUB, x, y, NULL), ir_op(m, IR_SUB, y, x, NULL));
	assert_ptr_equal(ir_op(m, IR_SELECT, y, x, x), x);
	assert_ptr_equal(ir_op(m, IR_SELECT, ir_const(m, 1), x, y), x);
	/* stop */
	ir_val *s = ir_stop(m, x);
	assert_int_equal(s->kind, V_STOP);
	assert_ptr_equal(ir_stop(m, s), s);
	assert_ptr_equal(ir_stop(m, ir_const(m, 2)), ir_const(m, 2));
	/* int of a constant index is a constant */
	assert_ptr_equal(ir_int(m, ir_idx_const(m, 4)), ir_const(m, 4));
}

static void test_ir__index_arithmetic__folds_constants(void **state)
{
	fixture *f = *state;
	ir_module *m = f->m;
	ir_idx *i = ir_idx_loop(m, f->k);
	ir_idx *c = ir_idx_bin(m, IX_MUL, ir_idx_const(m, 3), ir_idx_const(m, 4));
	assert_int_equal(c->kind, IX_CONST);
	assert_int_equal(c->u.c, 12);
	assert_ptr_equal(ir_idx_bin(m, IX_ADD, i, ir_idx_const(m, 0)), i);
	assert_ptr_equal(ir_idx_bin(m, IX_MUL, ir_idx_const(m, 1), i), i);
	ir_idx *z = ir_idx_bin(m, IX_MUL, i, ir_idx_const(m, 0));
	assert_true(z->kind == IX_CONST && z->u.c == 0);
	ir_idx *s = ir_idx_bin(m, IX_SUB, i, ir_idx_loop(m, f->k));
	assert_true(s->kind == IX_CONST && s->u.c == 0);
	/* (i + 1) + 2 == i + 3 */
	ir_idx *a = ir_idx_bin(m, IX_ADD, ir_idx_bin(m, IX_ADD, i, ir_idx_const(m, 1)), ir_idx_const(m, 2));
	ir_idx *b = ir_idx_bin(m, IX_ADD, ir_idx_const(m, 3), i);
	assert_true(ir_idx_equal(a, b));
	/* i - 1 is i + (-1) */
	ir_idx *d = ir_idx_bin(m, IX_SUB, i, ir_idx_const(m, 1));
	assert_true(ir_idx_equal(d, ir_idx_bin(m, IX_ADD, i, ir_idx_const(m, -1))));
	assert_false(ir_idx_equal(i, ir_idx_leaf(m, IX_ROW)));
	assert_true(ir_idx_equal(ir_idx_leaf(m, IX_PREFIX), ir_idx_leaf(m, IX_PREFIX)));
}

static void test_ir__op_table__from_the_x_macro(void **state)
{
	(void)state;
	assert_int_equal(ir_op_arity[IR_NEG], 1);
	assert_int_equal(ir_op_arity[IR_ADD], 2);
	assert_int_equal(ir_op_arity[IR_SELECT], 3);
	assert_string_equal(ir_op_name[IR_SOFTPLUS], "SOFTPLUS");
	assert_string_equal(ir_op_name[IR_LOG_SIGMOID], "LOG_SIGMOID");
	for (int i = 0; i < IR_OP__COUNT; i++)
		assert_non_null(ir_op_name[i]);
}

static void test_ir__print_kernel__lists_loops_statements_and_shared_values(void **state)
{
	fixture *f = *state;
	ir_module *m = f->m;
	ir_kernel *k = ir_kernel_new(m, KER_LOGP, "logp");
	assert_ptr_equal(m->kernels[KER_LOGP], k);
	ir_val *x = read_k(f, f->x), *w = read_k(f, f->theta);
	ir_val *sp = ir_op(m, IR_SOFTPLUS, w, NULL, NULL);
	/* sp used twice: printed once as a %id line */
	ir_val *term = ir_op(m, IR_SUB, ir_op(m, IR_MUL, x, sp, NULL), sp, NULL);
	ir_loop *rows = ir_loop_new(m, "r", NULL, NULL);
	rows->is_rows = true;
	ir_stmt *loop = ir_stmt_new(m, S_FOR);
	loop->loop = rows;
	ir_block_push(m, &k->body, loop);
	ir_loop *ks[1] = { f->k };
	ir_block_push(m, &loop->body, ir_assign_stmt(m, S_SUM, ks, 1, 0, f->acc, NULL, term));
	ir_loop *back = ir_loop_new(m, "j", ir_idx_const(m, 0), ir_idx_const(m, 5));
	back->reverse = true;
	ir_stmt *rev = ir_stmt_new(m, S_FOR);
	rev->loop = back;
	ir_block_push(m, &k->body, rev);
	ir_stmt *iff = ir_stmt_new(m, S_IF_GE);
	iff->a = ir_idx_loop(m, back);
	iff->b = ir_idx_leaf(m, IX_PREFIX);
	ir_block_push(m, &rev->body, iff);
	ir_idx *j = ir_idx_loop(m, back);
	ir_idx *pj = ir_idx_load(m, f->perm, &j);
	ir_block_push(m, &iff->body, ir_assign_stmt(m, S_ADD, NULL, 0, 0, f->acc, NULL, ir_read(m, f->x, &pj)));
	k->result = f->acc;

	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	ir_print_kernel(out, k);
	fclose(out);
	assert_non_null(strstr(text, "kernel logp (logp)"));
	assert_non_null(strstr(text, "  theta w[5] @0"));
	assert_non_null(strstr(text, "  obs x[5] @0"));
	assert_non_null(strstr(text, "  const perm[5] int"));
	assert_non_null(strstr(text, "for r in rows {"));
	char def[64];
	snprintf(def, sizeof def, "%%%d = softplus(w[k])", sp->id);
	assert_non_null(strstr(text, def));
	char stmt[128];
	snprintf(stmt, sizeof stmt, "sum over k in [0, 5): acc = sub(mul(x[k], %%%d), %%%d)", sp->id, sp->id);
	assert_non_null(strstr(text, stmt));
	assert_non_null(strstr(text, "for j in [0, 5) reverse {"));
	assert_non_null(strstr(text, "if j >= prefix {"));
	assert_non_null(strstr(text, "add: acc += x[perm[j]]"));
	assert_non_null(strstr(text, "return acc"));
	free(text);
}

/* What cg_kernel.c asks of an elementwise loop before hinting it to one
 * vector per iteration: contiguous accesses, no slow function of k. */
static void test_ir__walks__contiguity_and_slow_ops_over_a_loop(void **state)
{
	fixture *f = *state;
	ir_module *m = f->m;
	int64_t d55[2] = { 5, 5 };
	ir_buf *W = ir_buf_new(m, "W", BUF_THETA, 2, d55);
	ir_loop *r = ir_loop_new(m, "r", ir_idx_const(m, 0), ir_idx_const(m, 5));
	ir_idx *k = ir_idx_loop(m, f->k), *rr = ir_idx_loop(m, r);
	ir_idx *row_k[2] = { rr, k }, *col_k[2] = { k, rr };
	ir_idx *twice[2] = { rr, ir_idx_bin(m, IX_MUL, k, ir_idx_const(m, 2)) };
	ir_idx *shifted[2] = { rr, ir_idx_bin(m, IX_ADD, ir_idx_const(m, 1), k) };
	ir_idx *back[2] = { rr, ir_idx_bin(m, IX_SUB, ir_idx_const(m, 4), k) };
	ir_idx *pk = ir_idx_load(m, f->perm, &k);
	/* the last index steps by one: a vector load; any other, a gather */
	assert_true(ir_access_contiguous(W, row_k, f->k));
	assert_true(ir_access_contiguous(W, shifted, f->k));
	assert_false(ir_access_contiguous(W, col_k, f->k));
	assert_false(ir_access_contiguous(W, twice, f->k));
	assert_false(ir_access_contiguous(W, back, f->k));
	assert_false(ir_access_contiguous(f->x, &pk, f->k));
	assert_true(ir_access_contiguous(W, col_k, r)); /* over r, W[k, r] is a row */
	assert_true(ir_access_contiguous(f->acc, NULL, f->k));
	ir_val *row = ir_read(m, W, row_k), *col = ir_read(m, W, col_k);
	assert_true(ir_val_reads_contiguous(ir_op(m, IR_MUL, row, read_k(f, f->x), NULL), f->k));
	assert_false(ir_val_reads_contiguous(ir_op(m, IR_MUL, row, col, NULL), f->k));
	/* slow: a function of tens of cycles of something that changes with k */
	ir_val *xk = read_k(f, f->x), *acc = ir_read(m, f->acc, NULL);
	assert_true(ir_val_slow_in_loop(ir_op(m, IR_ADD, ir_op(m, IR_SIGMOID, xk, NULL, NULL), xk, NULL), f->k));
	assert_true(ir_val_slow_in_loop(ir_op(m, IR_DIV, ir_const(m, 1), xk, NULL), f->k));
	assert_false(ir_val_slow_in_loop(ir_op(m, IR_MUL, ir_op(m, IR_DIV, ir_const(m, 1), acc, NULL), xk, NULL), f->k));
	assert_false(ir_val_slow_in_loop(ir_op(m, IR_MUL, ir_op(m, IR_EXP, acc, NULL, NULL), xk, NULL), f->k));
	assert_false(ir_val_slow_in_loop(ir_op(m, IR_MAX2, xk, ir_op(m, IR_ABS, xk, NULL, NULL), NULL), f->k));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ir__same_expression_built_twice__is_one_pointer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ir__different_buffers_or_indices__differ, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ir__constants__fold_as_generated_code_computes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ir__identities__only_exact_ones, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ir__index_arithmetic__folds_constants, setup, teardown),
		cmocka_unit_test(test_ir__op_table__from_the_x_macro),
		cmocka_unit_test_setup_teardown(test_ir__walks__contiguity_and_slow_ops_over_a_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ir__print_kernel__lists_loops_statements_and_shared_values, setup,
		                                teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
