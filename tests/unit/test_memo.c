/* test_memo.c -- memo.c on hand-built IR: a row's values computed from a
 * scan that changes only under a condition on data run only when it
 * changed; not otherwise.  (That the models' values stay the same is
 * test_models.c's job: every kernel against the hand-written references
 * and at every batch split.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "chainc.h"

enum { N = 5, H = 3 };

typedef struct fixture {
	arena *a;
	model mdl;
	ir_module *m;
	ir_kernel *k;
	ir_buf *c, *w, *x, *h, *scan, *dot;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	f->a = arena_new();
	f->mdl.name = "t";
	f->m = ir_module_new(f->a, &f->mdl);
	int64_t dh[1] = { H }, dn[1] = { N }, dw[2] = { H, N };
	f->c = ir_buf_new(f->m, "c", BUF_THETA, 1, dh);
	f->w = ir_buf_new(f->m, "W", BUF_THETA, 2, dw);
	f->x = ir_buf_new(f->m, "x", BUF_OBS, 1, dn);
	f->h = ir_buf_new(f->m, "h", BUF_TEMP, 1, dh);
	f->scan = ir_buf_new(f->m, "scan", BUF_TEMP, 1, dh);
	f->dot = ir_buf_new(f->m, "dot", BUF_TEMP, 0, NULL);
	f->k = ir_kernel_new(f->m, KER_LOGP, "logp");
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

static ir_loop *loop_over(fixture *f, const char *name, int64_t n)
{
	return ir_loop_new(f->m, name, ir_idx_const(f->m, 0), ir_idx_const(f->m, n));
}

static ir_val *at(fixture *f, ir_buf *b, ir_loop *l)
{
	ir_idx *i = ir_idx_loop(f->m, l);
	return ir_read(f->m, b, &i);
}

/* for r: b[r] (op)= v */
static ir_stmt *each(fixture *f, ir_stmt_kind kind, ir_loop *r, ir_buf *b, ir_val *v)
{
	ir_idx *i = ir_idx_loop(f->m, r);
	return ir_assign_stmt(f->m, kind, &r, 1, 1, b, &i, v);
}

/* scan = 0; for k { h = sigmoid(c + scan) (or `value`); dot = sum h;
 * [if x[k] >= 1] { scan += W[:, k] } }: NADE's log p in small.  Returns
 * the set of h. */
static ir_stmt *nade_like(fixture *f, bool guarded, ir_val *value)
{
	ir_module *m = f->m;
	ir_block *b = &f->k->body;
	ir_block_push(m, b, each(f, S_SET, loop_over(f, "z", H), f->scan, ir_const(m, 0)));
	ir_loop *k = loop_over(f, "k", N);
	ir_stmt *pos = ir_for(m, k);
	ir_loop *r = loop_over(f, "r", H);
	if (!value)
		value = ir_op(m, IR_SIGMOID, ir_op(m, IR_ADD, at(f, f->c, r), at(f, f->scan, r), NULL), NULL, NULL);
	ir_stmt *set = each(f, S_SET, r, f->h, value);
	ir_block_push(m, &pos->body, set);
	ir_loop *s = loop_over(f, "s", H);
	ir_block_push(m, &pos->body, ir_assign_stmt(m, S_SUM, &s, 1, 0, f->dot, NULL, at(f, f->h, s)));
	ir_loop *u = loop_over(f, "u", H);
	ir_idx *wi[2] = { ir_idx_loop(m, u), ir_idx_loop(m, k) };
	ir_stmt *add = each(f, S_ADD, u, f->scan, ir_read(m, f->w, wi));
	if (guarded) {
		ir_stmt *g = ir_stmt_new(m, S_IF_GE);
		ir_idx *xi = ir_idx_loop(m, k);
		g->a = ir_idx_load(m, f->x, &xi);
		g->b = ir_idx_const(m, 1);
		ir_block_push(m, &g->body, add);
		ir_block_push(m, &pos->body, g);
	} else {
		ir_block_push(m, &pos->body, add);
	}
	ir_block_push(m, b, pos);
	return set;
}

static const ir_stmt *stmt_at(const ir_block *b, size_t i)
{
	assert_true(i < b->stmts.len);
	return b->stmts.items[i];
}

static void test_memo__scan_changed_under_data__set_runs_when_it_changed(void **state)
{
	fixture *f = *state;
	ir_stmt *set = nade_like(f, true, NULL);
	ir_stmt *pos = f->k->body.stmts.items[1];
	memo_kernel(f->m, f->k);

	/* scan = 0, dirty = 1 (the reset), dirty = 1 (all rows), for k */
	const ir_block *b = &f->k->body;
	assert_int_equal(b->stmts.len, 4);
	const ir_stmt *reset_flag = stmt_at(b, 1), *init = stmt_at(b, 2), *loop = stmt_at(b, 3);
	assert_int_equal(reset_flag->kind, S_SET);
	assert_true(reset_flag->assigns[0].buf->memo_flag);
	assert_int_equal(init->kind, S_SET);
	ir_buf *dirty = init->assigns[0].buf;
	assert_ptr_equal(reset_flag->assigns[0].buf, dirty);
	/* if dirty >= 1 { h = ...; dirty = 0 } */
	assert_int_equal(loop->kind, S_FOR);
	const ir_stmt *g = stmt_at(&loop->body, 0);
	assert_int_equal(g->kind, S_IF_GE);
	assert_ptr_equal(g->a->u.load.buf, dirty);
	assert_ptr_equal(stmt_at(&g->body, 0), set);
	assert_ptr_equal(stmt_at(&g->body, 1)->assigns[0].buf, dirty);
	assert_true(stmt_at(&g->body, 1)->assigns[0].val->u.c == 0);
	/* the guarded update, then dirty = 1 */
	const ir_stmt *guard = stmt_at(&loop->body, 2);
	assert_int_equal(guard->body.stmts.len, 2);
	assert_ptr_equal(stmt_at(&guard->body, 1)->assigns[0].buf, dirty);
	assert_true(stmt_at(&guard->body, 1)->assigns[0].val->u.c == 1);
	/* the statements it was built from are as they were */
	assert_ptr_equal(stmt_at(&pos->body, 0), set);
	assert_int_equal(((ir_stmt *)pos->body.stmts.items[2])->body.stmts.len, 1);
}

static void test_memo__scan_changed_at_every_position__left_as_it_is(void **state)
{
	fixture *f = *state;
	nade_like(f, false, NULL);
	ir_stmt *pos = f->k->body.stmts.items[1];
	memo_kernel(f->m, f->k);
	assert_int_equal(f->k->body.stmts.len, 2);
	assert_ptr_equal(f->k->body.stmts.items[1], pos);
	assert_int_equal(stmt_at(&pos->body, 0)->kind, S_SET);
}

static void test_memo__value_reading_data__left_as_it_is(void **state)
{
	fixture *f = *state;
	/* h = c + x[0] + scan: x changes from row to row, not with the scan */
	ir_module *m = f->m;
	ir_loop *r = loop_over(f, "r", H);
	ir_idx *zero = ir_idx_const(m, 0);
	ir_val *v = ir_op(m, IR_ADD, ir_op(m, IR_ADD, at(f, f->c, r), ir_read(m, f->x, &zero), NULL), at(f, f->scan, r),
	                  NULL);
	/* the set's loop must be its own: rebuild the value over the set's loop */
	ir_stmt *set = nade_like(f, true, NULL);
	set->loops[0] = r;
	set->assigns[0].idx[0] = ir_idx_loop(m, r);
	set->assigns[0].val = v;
	memo_kernel(m, f->k);
	assert_int_equal(f->k->body.stmts.len, 2);
}

static void test_memo__value_written_twice__left_as_it_is(void **state)
{
	fixture *f = *state;
	nade_like(f, true, NULL);
	ir_block_push(f->m, &f->k->body, each(f, S_SET, loop_over(f, "q", H), f->h, ir_const(f->m, 1)));
	memo_kernel(f->m, f->k);
	assert_int_equal(f->k->body.stmts.len, 3);
}

/* for b in [0, 2) { scan[b, :] = 0; for k { h = sigmoid(c + scan[b, :]);
 * [dot = sum h;] if x[k] >= 1 { scan[b, :] += W[:, k] } } } [dot = sum h]:
 * a scan with a copy per row of a block and an h shared by the rows, read
 * inside the row's loop or after it.  Returns the b loop. */
static ir_stmt *rows_of_a_block(fixture *f, bool read_inside)
{
	ir_module *m = f->m;
	int64_t d2[2] = { 2, H };
	ir_buf *scan = ir_buf_new(m, "scan2", BUF_TEMP, 2, d2);
	scan->block_rows = true;
	ir_loop *b = loop_over(f, "b", 2);
	ir_stmt *rows = ir_for(m, b);
	ir_loop *z = loop_over(f, "z", H);
	ir_idx *zi[2] = { ir_idx_loop(m, b), ir_idx_loop(m, z) };
	ir_block_push(m, &rows->body, ir_assign_stmt(m, S_SET, &z, 1, 1, scan, zi, ir_const(m, 0)));
	ir_loop *k = loop_over(f, "k", N);
	ir_stmt *pos = ir_for(m, k);
	ir_loop *r = loop_over(f, "r", H);
	ir_idx *ri[2] = { ir_idx_loop(m, b), ir_idx_loop(m, r) };
	ir_val *v = ir_op(m, IR_SIGMOID, ir_op(m, IR_ADD, at(f, f->c, r), ir_read(m, scan, ri), NULL), NULL, NULL);
	ir_block_push(m, &pos->body, each(f, S_SET, r, f->h, v));
	ir_loop *s = loop_over(f, "s", H);
	ir_stmt *sum = ir_assign_stmt(m, S_SUM, &s, 1, 0, f->dot, NULL, at(f, f->h, s));
	if (read_inside)
		ir_block_push(m, &pos->body, sum);
	ir_loop *u = loop_over(f, "u", H);
	ir_idx *ui[2] = { ir_idx_loop(m, b), ir_idx_loop(m, u) }, *wi[2] = { ir_idx_loop(m, u), ir_idx_loop(m, k) };
	ir_stmt *g = ir_stmt_new(m, S_IF_GE);
	ir_idx *xi = ir_idx_loop(m, k);
	g->a = ir_idx_load(m, f->x, &xi);
	g->b = ir_idx_const(m, 1);
	ir_block_push(m, &g->body, ir_assign_stmt(m, S_ADD, &u, 1, 1, scan, ui, ir_read(m, f->w, wi)));
	ir_block_push(m, &pos->body, g);
	ir_block_push(m, &rows->body, pos);
	ir_block_push(m, &f->k->body, rows);
	if (!read_inside)
		ir_block_push(m, &f->k->body, sum);
	return rows;
}

static void test_memo__value_shared_by_rows__one_per_row(void **state)
{
	fixture *f = *state;
	rows_of_a_block(f, true);
	memo_kernel(f->m, f->k);
	/* dirty = 1 (all rows), for b { scan = 0; dirty[b] = 1; for k { if dirty[b] { h[b, :] = ... } ... } } */
	const ir_block *b = &f->k->body;
	assert_int_equal(b->stmts.len, 2);
	const ir_stmt *rows = stmt_at(b, 1), *pos = stmt_at(&rows->body, 2);
	const ir_stmt *g = stmt_at(&pos->body, 0);
	assert_int_equal(g->kind, S_IF_GE);
	const ir_stmt *set = stmt_at(&g->body, 0);
	assert_int_equal(set->assigns[0].buf->rank, 2);
	assert_true(set->assigns[0].buf->block_rows);
	/* the sum reads the row's copy */
	const ir_stmt *sum = stmt_at(&pos->body, 1);
	assert_true(ir_val_reads(sum->assigns[0].val, set->assigns[0].buf));
	assert_false(ir_val_reads(sum->assigns[0].val, f->h));
}

static void test_memo__value_shared_by_rows_read_after_them__left_as_it_is(void **state)
{
	fixture *f = *state;
	ir_stmt *rows = rows_of_a_block(f, false);
	memo_kernel(f->m, f->k);
	/* h read after the rows' loop, where no row's place is known */
	assert_int_equal(f->k->body.stmts.len, 2);
	assert_ptr_equal(stmt_at(&f->k->body, 0), rows);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_memo__scan_changed_under_data__set_runs_when_it_changed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memo__scan_changed_at_every_position__left_as_it_is, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memo__value_reading_data__left_as_it_is, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memo__value_written_twice__left_as_it_is, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memo__value_shared_by_rows__one_per_row, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memo__value_shared_by_rows_read_after_them__left_as_it_is, setup,
		                                teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
