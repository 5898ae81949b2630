/* test_fuse.c -- fuse.c's rewrites on hand-built IR: a zeroed-then-added
 * temp forwarded into its one reader, only when that is the same value;
 * adjacent accumulations of the rows of a block merged, only when they are
 * independent.  (That the gradients stay right is test_ad.c's job.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "chainc.h"

enum { N = 5 };

typedef struct fixture {
	arena *a;
	model mdl;
	ir_module *m;
	ir_kernel *k;
	ir_buf *w, *gw, *x, *t, *u, *s, *bt; /* bt: a block_rows temp [2, N] */
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	f->a = arena_new();
	f->mdl.name = "t";
	f->m = ir_module_new(f->a, &f->mdl);
	int64_t dn[1] = { N }, d2n[2] = { 2, N };
	f->w = ir_buf_new(f->m, "w", BUF_THETA, 1, dn);
	f->gw = ir_buf_new(f->m, "gw", BUF_GRAD, 1, dn);
	f->x = ir_buf_new(f->m, "x", BUF_OBS, 1, dn);
	f->t = ir_buf_new(f->m, "t", BUF_TEMP, 1, dn);
	f->u = ir_buf_new(f->m, "u", BUF_TEMP, 1, dn);
	f->s = ir_buf_new(f->m, "s", BUF_TEMP, 0, NULL);
	f->bt = ir_buf_new(f->m, "bt", BUF_TEMP, 2, d2n);
	f->bt->block_rows = true;
	f->k = ir_kernel_new(f->m, KER_LOGLIK_GRAD, "loglik_grad");
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

static ir_loop *loop_n(fixture *f, const char *name)
{
	return ir_loop_new(f->m, name, ir_idx_const(f->m, 0), ir_idx_const(f->m, N));
}

static ir_val *at(fixture *f, ir_buf *b, ir_loop *l)
{
	ir_idx *i = ir_idx_loop(f->m, l);
	return ir_read(f->m, b, &i);
}

static ir_val *scalar(fixture *f, ir_buf *b)
{
	return ir_read(f->m, b, NULL);
}

/* for l: b[l] (op)= v */
static ir_stmt *elementwise(fixture *f, ir_stmt_kind kind, ir_loop *l, ir_buf *b, ir_val *v)
{
	ir_idx *i = ir_idx_loop(f->m, l);
	return ir_assign_stmt(f->m, kind, &l, 1, 1, b, &i, v);
}

/* set t = 0; add t[j] += w[j] * s, gw[j] += s: the temp and its value */
static void push_zeroed_and_added(fixture *f, ir_block *b)
{
	ir_block_push(f->m, b, elementwise(f, S_SET, loop_n(f, "i"), f->t, ir_const(f->m, 0)));
	ir_loop *j = loop_n(f, "j");
	ir_stmt *def = elementwise(f, S_ADD, j, f->t, ir_op(f->m, IR_MUL, at(f, f->w, j), scalar(f, f->s), NULL));
	ir_stmt *both = ir_stmt_new(f->m, S_ADD);
	both->loops = def->loops;
	both->nloops = 1;
	both->nassigns = 2;
	both->assigns = arena_alloc(f->a, 2 * sizeof *both->assigns);
	both->assigns[0] = def->assigns[0];
	both->assigns[1].buf = f->gw;
	both->assigns[1].idx[0] = ir_idx_loop(f->m, j);
	both->assigns[1].val = scalar(f, f->s);
	ir_block_push(f->m, b, both);
}

static void test_fuse__zeroed_added_read_once__is_forwarded(void **state)
{
	fixture *f = *state;
	ir_block *b = &f->k->body;
	push_zeroed_and_added(f, b);
	ir_loop *q = loop_n(f, "q");
	ir_block_push(f->m, b, elementwise(f, S_ADD, q, f->u, ir_op(f->m, IR_MUL, at(f, f->t, q), at(f, f->x, q), NULL)));
	fuse_kernel(f->m, f->k);

	/* the zeroing and t's addition are gone; gw's stays; u reads the value */
	assert_int_equal(b->stmts.len, 2);
	const ir_stmt *def = b->stmts.items[0], *use = b->stmts.items[1];
	assert_int_equal(def->nassigns, 1);
	assert_ptr_equal(def->assigns[0].buf, f->gw);
	ir_val *want = ir_op(f->m, IR_MUL, ir_op(f->m, IR_MUL, at(f, f->w, q), scalar(f, f->s), NULL), at(f, f->x, q), NULL);
	assert_ptr_equal(use->assigns[0].val, want);
}

static void test_fuse__operand_written_between__is_not_forwarded(void **state)
{
	fixture *f = *state;
	ir_block *b = &f->k->body;
	push_zeroed_and_added(f, b);
	/* s changes before the read: t holds w * (the old s) */
	ir_block_push(f->m, b, ir_assign_stmt(f->m, S_SET, NULL, 0, 0, f->s, NULL, ir_const(f->m, 2)));
	ir_loop *q = loop_n(f, "q");
	ir_block_push(f->m, b, elementwise(f, S_ADD, q, f->u, at(f, f->t, q)));
	fuse_kernel(f->m, f->k);
	assert_int_equal(b->stmts.len, 4);
	assert_int_equal(((ir_stmt *)b->stmts.items[1])->nassigns, 2);
}

static void test_fuse__read_by_two_statements__is_not_forwarded(void **state)
{
	fixture *f = *state;
	ir_block *b = &f->k->body;
	push_zeroed_and_added(f, b);
	ir_loop *q = loop_n(f, "q"), *r = loop_n(f, "r");
	ir_block_push(f->m, b, elementwise(f, S_ADD, q, f->u, at(f, f->t, q)));
	ir_block_push(f->m, b, elementwise(f, S_ADD, r, f->u, at(f, f->t, r)));
	fuse_kernel(f->m, f->k);
	assert_int_equal(b->stmts.len, 4);
}

static void test_fuse__read_inside_a_longer_loop_nest__is_not_forwarded(void **state)
{
	fixture *f = *state;
	ir_block *b = &f->k->body;
	push_zeroed_and_added(f, b);
	/* u[q] += sum over r of t[q]: forwarding would compute w[q] * s N times */
	ir_loop *q = loop_n(f, "q"), *r = loop_n(f, "r");
	ir_loop *ls[2] = { q, r };
	ir_idx *iq = ir_idx_loop(f->m, q);
	ir_block_push(f->m, b, ir_assign_stmt(f->m, S_ADD, ls, 2, 2, f->u, &iq, at(f, f->t, q)));
	fuse_kernel(f->m, f->k);
	assert_int_equal(b->stmts.len, 3);
}

static void test_fuse__read_at_another_element__is_not_forwarded(void **state)
{
	fixture *f = *state;
	ir_block *b = &f->k->body;
	push_zeroed_and_added(f, b);
	/* u[q] += t[N - 1 - q]: not the element q names */
	ir_loop *q = loop_n(f, "q");
	ir_idx *rev = ir_idx_bin(f->m, IX_SUB, ir_idx_const(f->m, N - 1), ir_idx_loop(f->m, q));
	ir_block_push(f->m, b, elementwise(f, S_ADD, q, f->u, ir_read(f->m, f->t, &rev)));
	fuse_kernel(f->m, f->k);
	assert_int_equal(b->stmts.len, 3);
}

static void test_fuse__set_read_once__is_forwarded(void **state)
{
	fixture *f = *state;
	ir_block *b = &f->k->body;
	ir_loop *i = loop_n(f, "i"), *q = loop_n(f, "q");
	ir_block_push(f->m, b, elementwise(f, S_SET, i, f->t, ir_op(f->m, IR_SIGMOID, at(f, f->w, i), NULL, NULL)));
	ir_loop *ls[1] = { q };
	ir_block_push(f->m, b, ir_assign_stmt(f->m, S_SUM, ls, 1, 0, f->s, NULL, ir_op(f->m, IR_MUL, at(f, f->t, q), at(f, f->x, q), NULL)));
	fuse_kernel(f->m, f->k);
	assert_int_equal(b->stmts.len, 1);
	ir_val *want = ir_op(f->m, IR_MUL, ir_op(f->m, IR_SIGMOID, at(f, f->w, q), NULL, NULL), at(f, f->x, q), NULL);
	assert_ptr_equal(((ir_stmt *)b->stmts.items[0])->assigns[0].val, want);
}

/* if s >= 1 { stmt }: a condition that does not read t */
static ir_stmt *under_if(fixture *f, ir_buf *on, ir_stmt *body)
{
	ir_stmt *g = ir_stmt_new(f->m, S_IF_GE);
	g->a = ir_idx_load(f->m, on, NULL);
	g->b = ir_idx_const(f->m, 1);
	ir_block_push(f->m, &g->body, body);
	return g;
}

static void test_fuse__set_read_under_a_condition__is_forwarded_into_it(void **state)
{
	fixture *f = *state;
	ir_block *b = &f->k->body;
	/* t[i] = sigmoid(w[i]); if s >= 1 { u[q] = t[q] * x[q] }: complete's
	 * `if k >= prefix { x[k] = ... }` */
	ir_loop *i = loop_n(f, "i"), *q = loop_n(f, "q");
	ir_block_push(f->m, b, elementwise(f, S_SET, i, f->t, ir_op(f->m, IR_SIGMOID, at(f, f->w, i), NULL, NULL)));
	ir_stmt *use = elementwise(f, S_SET, q, f->u, ir_op(f->m, IR_MUL, at(f, f->t, q), at(f, f->x, q), NULL));
	ir_stmt *cond = under_if(f, f->s, use);
	ir_block_push(f->m, b, cond);
	fuse_kernel(f->m, f->k);

	assert_int_equal(b->stmts.len, 1);
	const ir_stmt *g = b->stmts.items[0];
	assert_int_equal(g->kind, S_IF_GE);
	assert_int_equal(g->body.stmts.len, 1);
	ir_val *want = ir_op(f->m, IR_MUL, ir_op(f->m, IR_SIGMOID, at(f, f->w, q), NULL, NULL), at(f, f->x, q), NULL);
	assert_ptr_equal(((ir_stmt *)g->body.stmts.items[0])->assigns[0].val, want);
	/* the condition was copied, not changed: another kernel may share it */
	assert_ptr_not_equal(g, cond);
	assert_ptr_equal(cond->body.stmts.items[0], use);
}

static void test_fuse__condition_reading_the_temp__is_not_entered(void **state)
{
	fixture *f = *state;
	ir_block *b = &f->k->body;
	/* s = sigmoid(w[0]); if s >= 1 { u[q] = s * x[q] }: the condition reads s */
	ir_idx *zero = ir_idx_const(f->m, 0);
	ir_block_push(f->m, b, ir_assign_stmt(f->m, S_SET, NULL, 0, 0, f->s, NULL,
	                                      ir_op(f->m, IR_SIGMOID, ir_read(f->m, f->w, &zero), NULL, NULL)));
	ir_loop *q = loop_n(f, "q");
	ir_block_push(f->m, b, under_if(f, f->s, elementwise(f, S_SET, q, f->u,
	                                                    ir_op(f->m, IR_MUL, scalar(f, f->s), at(f, f->x, q), NULL))));
	fuse_kernel(f->m, f->k);
	assert_int_equal(b->stmts.len, 2);
}

static void test_fuse__operand_written_under_the_condition_first__is_not_forwarded(void **state)
{
	fixture *f = *state;
	ir_block *b = &f->k->body;
	/* t[i] = w[i] * s; if x0 >= 1 { s = 2; u[q] = t[q] }: t holds the old s */
	ir_loop *i = loop_n(f, "i"), *q = loop_n(f, "q");
	ir_block_push(f->m, b, elementwise(f, S_SET, i, f->t, ir_op(f->m, IR_MUL, at(f, f->w, i), scalar(f, f->s), NULL)));
	ir_buf *on = ir_buf_new(f->m, "on", BUF_TEMP, 0, NULL);
	ir_stmt *g = under_if(f, on, ir_assign_stmt(f->m, S_SET, NULL, 0, 0, f->s, NULL, ir_const(f->m, 2)));
	ir_block_push(f->m, &g->body, elementwise(f, S_SET, q, f->u, at(f, f->t, q)));
	ir_block_push(f->m, b, g);
	fuse_kernel(f->m, f->k);
	assert_int_equal(b->stmts.len, 2);
	assert_int_equal(g->body.stmts.len, 2);
	assert_ptr_equal(((ir_stmt *)g->body.stmts.items[1])->assigns[0].val, at(f, f->t, q));
}

static void test_fuse__statements_another_kernel_shares__stay_as_they_were(void **state)
{
	fixture *f = *state;
	/* the same statement objects in two kernels (lower.c shares pieces) */
	push_zeroed_and_added(f, &f->k->body);
	ir_loop *q = loop_n(f, "q");
	ir_block_push(f->m, &f->k->body, elementwise(f, S_ADD, q, f->u, at(f, f->t, q)));
	ir_kernel *other = ir_kernel_new(f->m, KER_OBJECTIVE, "objective");
	for (size_t i = 0; i < f->k->body.stmts.len; i++)
		ir_block_push(f->m, &other->body, f->k->body.stmts.items[i]);
	ir_stmt *def = f->k->body.stmts.items[1], *use = f->k->body.stmts.items[2];
	ir_val *read = use->assigns[0].val;
	fuse_kernel(f->m, f->k);
	assert_int_equal(f->k->body.stmts.len, 2);
	assert_int_equal(other->body.stmts.len, 3);
	assert_int_equal(def->nassigns, 2);
	assert_ptr_equal(use->assigns[0].val, read);
}

/* for block { for row in rows of block { body } }: the body */
static ir_block *rows_body(fixture *f, ir_loop **rows_out)
{
	ir_loop *blk = ir_loop_new(f->m, "block", NULL, NULL);
	blk->is_rows = true;
	blk->block = 2;
	ir_loop *rows = ir_loop_new(f->m, "row", NULL, NULL);
	rows->is_rows = true;
	rows->block_of = blk;
	ir_stmt *outer = ir_for(f->m, blk), *inner = ir_for(f->m, rows);
	ir_block_push(f->m, &f->k->body, outer);
	ir_block_push(f->m, &outer->body, inner);
	*rows_out = rows;
	return &inner->body;
}

/* for l: bt[row - block, l] += v */
static ir_stmt *row_add(fixture *f, ir_loop *rows, ir_loop *l, ir_val *v)
{
	ir_idx *i[2] = { ir_idx_bin(f->m, IX_SUB, ir_idx_loop(f->m, rows), ir_idx_loop(f->m, rows->block_of)),
		         ir_idx_loop(f->m, l) };
	return ir_assign_stmt(f->m, S_ADD, &l, 1, 1, f->bt, i, v);
}

static void test_fuse__independent_accumulations_of_rows__merge(void **state)
{
	fixture *f = *state;
	ir_loop *rows;
	ir_block *b = rows_body(f, &rows);
	ir_loop *p = loop_n(f, "p"), *q = loop_n(f, "q");
	ir_stmt *first = elementwise(f, S_ADD, p, f->gw, at(f, f->w, p));
	ir_block_push(f->m, b, first);
	ir_block_push(f->m, b, row_add(f, rows, q, at(f, f->x, q)));
	fuse_kernel(f->m, f->k);
	assert_int_equal(first->nassigns, 1); /* a new statement, the old one as it was */
	assert_int_equal(b->stmts.len, 1);
	const ir_stmt *s = b->stmts.items[0];
	assert_int_equal(s->nassigns, 2);
	assert_ptr_equal(s->assigns[1].buf, f->bt);
	/* the second's loop renamed to the first's */
	assert_ptr_equal(s->assigns[1].val, at(f, f->x, p));
	assert_ptr_equal(s->assigns[1].idx[1]->u.loop, p);
}

static void test_fuse__accumulation_reading_the_other__does_not_merge(void **state)
{
	fixture *f = *state;
	ir_loop *rows;
	ir_block *b = rows_body(f, &rows);
	ir_loop *p = loop_n(f, "p"), *q = loop_n(f, "q");
	ir_block_push(f->m, b, elementwise(f, S_ADD, p, f->gw, at(f, f->w, p)));
	/* reads gw, which the first writes: merged, element q would see
	 * gw[q] updated, but gw[q + 1] not yet */
	ir_block_push(f->m, b, row_add(f, rows, q, at(f, f->gw, q)));
	fuse_kernel(f->m, f->k);
	assert_int_equal(b->stmts.len, 2);
}

static void test_fuse__accumulations_outside_rows_or_over_other_ranges__do_not_merge(void **state)
{
	fixture *f = *state;
	ir_loop *p = loop_n(f, "p"), *q = loop_n(f, "q");
	ir_block_push(f->m, &f->k->body, elementwise(f, S_ADD, p, f->gw, at(f, f->w, p)));
	ir_block_push(f->m, &f->k->body, elementwise(f, S_ADD, q, f->u, at(f, f->x, q)));
	ir_loop *rows;
	ir_block *b = rows_body(f, &rows);
	ir_loop *r = loop_n(f, "r");
	ir_loop *shorter = ir_loop_new(f->m, "s", ir_idx_const(f->m, 0), ir_idx_const(f->m, N - 1));
	ir_block_push(f->m, b, elementwise(f, S_ADD, r, f->gw, at(f, f->w, r)));
	ir_block_push(f->m, b, row_add(f, rows, shorter, at(f, f->x, shorter)));
	fuse_kernel(f->m, f->k);
	assert_int_equal(f->k->body.stmts.len, 3);
	assert_int_equal(b->stmts.len, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fuse__zeroed_added_read_once__is_forwarded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fuse__operand_written_between__is_not_forwarded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fuse__read_by_two_statements__is_not_forwarded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fuse__read_inside_a_longer_loop_nest__is_not_forwarded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fuse__read_at_another_element__is_not_forwarded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fuse__set_read_once__is_forwarded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fuse__set_read_under_a_condition__is_forwarded_into_it, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_fuse__condition_reading_the_temp__is_not_entered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fuse__operand_written_under_the_condition_first__is_not_forwarded,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_fuse__statements_another_kernel_shares__stay_as_they_were, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_fuse__independent_accumulations_of_rows__merge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fuse__accumulation_reading_the_other__does_not_merge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fuse__accumulations_outside_rows_or_over_other_ranges__do_not_merge,
		                                setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
