/* cg_rows.c -- code generation of the rows of a block.
 *
 * A block's rows run the same statements on different rows, and their sums
 * read the same params: FVSBN's sum(j before i) W[i, j] * x[j] reads row i
 * of W for every row.  Run one row at a time, each sum is a loop of its own
 * that loads W again.  So the rows loop is split at such statements, which
 * run jammed (lanes: one per row of the block):
 *   - a sum over loops is one loop with an accumulator per row: each param
 *     loaded once serves all rows, and the vectorizer gets independent
 *     chains;
 *   - an accumulation into a buffer the rows share (a gradient) at an index
 *     that does not depend on the row adds the rows' terms first and then
 *     loads and stores the buffer once.
 * and the statements between them stay loops over the rows of the block.
 * Rows are independent (what a row carries from one position to the next
 * lives in block_rows buffers, and each TEMP a row writes has a copy per
 * row: cg_kernel.c's mark_lane_temps), so only the order of statements
 * within a row matters, and that is kept.  A row's values must not depend
 * on where the batch was split (M_sample's contract): the last, partial
 * block runs its sums one row at a time in a loop of the same vector shape
 * (fix_sum_shape), and its accumulations one row at a time too (a call of
 * one row does one row's work).  Sums and accumulations whose terms are
 * simple enough are written in vectors by cg_jam_vec.c.
 */
#include <stdlib.h>
#include <string.h>

#include "cg_kernel_internal.h"

/* Whether an index is the same for every row of a block: no row number, no
 * loop over the rows, no data read. */
static bool idx_row_free(const ir_idx *x, const ir_loop *rows)
{
	if (!x)
		return true;
	switch (x->kind) {
	case IX_CONST: case IX_PREFIX: return true;
	case IX_LOOP: return x->u.loop != rows;
	case IX_ADD: case IX_SUB: case IX_MUL:
		return idx_row_free(x->u.bin.a, rows) && idx_row_free(x->u.bin.b, rows);
	case IX_LOAD: case IX_ROW: return false;
	}
	return false;
}

/* A buffer the rows share, written at the same index by all of them. */
bool cg_rows_shared_target(const ir_assign *a, const ir_loop *rows)
{
	if (!a->buf || (a->buf->cls != BUF_GRAD && a->buf->cls != BUF_THETA))
		return false;
	for (int i = 0; i < a->buf->rank; i++)
		if (!idx_row_free(a->idx[i], rows))
			return false;
	return true;
}

/* A buffer each row has its own copy of. */
static bool private_target(cg_ctx *c, const ir_assign *a)
{
	return a->buf && a->buf->cls == BUF_TEMP && (a->buf->block_rows || c->lane_stride[a->buf->id] > 0);
}

/* Whether the rows of a block adding into a's target add into one place,
 * a sum over the rows: a shared buffer (a gradient) or a TEMP of which the
 * rows have one copy (the batch's log-likelihood). */
bool cg_rows_sum_into(cg_ctx *c, const ir_assign *a, const ir_loop *rows)
{
	if (!a->buf || private_target(c, a))
		return false;
	if (a->buf->cls != BUF_GRAD && a->buf->cls != BUF_THETA && a->buf->cls != BUF_TEMP)
		return false;
	for (int i = 0; i < a->buf->rank; i++)
		if (!idx_row_free(a->idx[i], rows))
			return false;
	return true;
}

/* How statement s of the rows of block loop `rows` can run jammed. */
jam_kind jam_kind_of(cg_ctx *c, const ir_stmt *s, const ir_loop *rows)
{
	if (s->nloops <= 0 || s->nloops > CG_JAM_LOOPS || s->nassigns < 1)
		return JAM_NONE;
	for (int i = 0; i < s->nloops; i++)
		if (!s->loops[i] || !idx_row_free(s->loops[i]->lo, rows) || !idx_row_free(s->loops[i]->hi, rows))
			return JAM_NONE;
	if (s->kind == S_SUM && s->nfree == 0 && s->nassigns == 1)
		return JAM_SUM;
	if (s->kind != S_ADD)
		return JAM_NONE;
	/* each target shared (at least one) or private, and no value reads a
	 * target: the rows' updates then commute */
	bool any_shared = false;
	bool *seen = calloc((size_t)c->nids, sizeof *seen);
	bool ok = seen != NULL;
	for (int j = 0; ok && j < s->nassigns; j++) {
		const ir_assign *a = &s->assigns[j];
		bool shared = cg_rows_shared_target(a, rows);
		any_shared |= shared;
		ok = shared || private_target(c, a);
		for (int k = 0; ok && k < s->nassigns; k++) {
			memset(seen, 0, (size_t)c->nids * sizeof *seen);
			ok = !cg_val_reads(c, s->assigns[k].val, a->buf, seen);
		}
	}
	free(seen);
	return ok && any_shared ? JAM_ADD : JAM_NONE;
}

/* Points the row-dependent state at row first + lane. */
void cg_set_lane(cg_ctx *c, const ir_loop *rows, LLVMValueRef first, LLVMValueRef lane)
{
	LLVMValueRef row = LLVMBuildNSWAdd(c->b, first, lane, "");
	c->loop_var[rows->id] = row;
	cg_point_row(c, row);
	c->lane = lane;
	cg_cache_drop(c);
}

/* Whether computing v calls a function the vectorizer cannot widen (a
 * normal or Gumbel draw, libm's tanh). */
static bool val_calls(cg_ctx *c, const ir_val *v, bool *seen)
{
	if (!cg_first_visit(c, v, seen))
		return false;
	switch (v->kind) {
	case V_DRAW: return !cg_draw_inline(c, v);
	case V_OP:
		if (v->u.op.op == IR_TANH)
			return true;
		for (int i = 0; i < 3; i++)
			if (val_calls(c, v->u.op.a[i], seen))
				return true;
		return false;
	case V_STOP: return val_calls(c, v->u.stop, seen);
	default: return false;
	}
}

/* Whether a statement is straight-line code for one row, vectorizable
 * across rows. */
static bool per_row_straight(cg_ctx *c, const ir_stmt *t)
{
	if (t->kind == S_IF_GE) {
		/* a branch around straight-line code: the vectorizer unswitches
		 * it (a condition the same for every row, `k >= prefix`) or
		 * turns it into masks */
		for (size_t i = 0; i < t->body.stmts.len; i++)
			if (t->body.stmts.items[i] && !per_row_straight(c, t->body.stmts.items[i]))
				return false;
		return true;
	}
	if (t->kind == S_FOR || t->nloops != 0)
		return false;
	bool *seen = calloc((size_t)c->nids, sizeof *seen);
	bool ok = seen != NULL;
	for (int j = 0; ok && j < t->nassigns; j++)
		ok = !val_calls(c, t->assigns[j].val, seen);
	free(seen);
	return ok;
}

/* Hints the vector width of a loop over the rows of a block (latch: its
 * back edge): the block, which a full block fills exactly (left to itself,
 * the vectorizer picks more lanes than a block has rows and runs the
 * scalar remainder only).  A block of more rows than a vector of 64 bytes
 * and than a jammed sum's tile (log p's blocks of 64 rows, lower.c) is
 * left to the vectorizer, whose vectorized remainder also runs the partial
 * block of a call in vectors (with a width hint, a partial block of fewer
 * rows ran scalar: f32 log p of 9 rows 0.8x).  No interleaving: a vector
 * body of two blocks' rows is never entered (LLVM chose it once the temps
 * had alias scopes, cg_kernel.c, and NADE's gradient ran its rows' log p
 * one at a time: 0.75-0.8x at batch 32 and 256). */
static void rows_width(cg_ctx *c, LLVMValueRef latch, int block)
{
	if (block <= 64 / c->real_size || block <= CG_JAM_SUM_ROWS)
		cg_hint_vector_width(c, latch, block, 1);
}

/* Statements [from, to) of the rows loop s for the rows [first, first +
 * count).  When they are straight-line code per row (FVSBN's logit, log p
 * and their adjoints), the loop over the rows is the one to vectorize: a
 * lane per row, `block` of them, which a full block fills exactly (left to
 * itself, the vectorizer picks more lanes than a block has rows and runs
 * the scalar remainder only).  The vector and the scalar remainder compute
 * each row with the same operations. */
static void rows_each(cg_ctx *c, const ir_stmt *s, size_t from, size_t to, LLVMValueRef first, LLVMValueRef count,
                      int block)
{
	cg_loop st;
	cg_loop_open(c, &st, s->loop, cg_i64(c, 0), count, false);
	cg_set_lane(c, s->loop, first, st.iv);
	bool straight = true;
	for (size_t i = from; i < to; i++)
		if (s->body.stmts.items[i]) {
			const ir_stmt *t = s->body.stmts.items[i];
			straight = straight && per_row_straight(c, t);
			cg_stmt(c, t);
		}
	cg_loop_close(c, &st);
	if (straight)
		rows_width(c, st.latch, block);
}

/* The vectorization of a jammed sum's loop, the same whatever the number of
 * rows in it: 64 bytes of lanes, no interleaving (and, a loop planned at
 * that width alone, the remainder scalar: cg_emit.c), so that a row's
 * partial sums, and so its bits, are the same summed alone or beside 7
 * others. */
static void fix_sum_shape(cg_ctx *c, LLVMValueRef latch)
{
	cg_hint_vector_width(c, latch, 64 / c->real_size, 1);
}

/* A sum over loops for rows first + lane0 .. first + lane0 + lanes - 1 of a
 * full block: one loop, an accumulator per row. */
static void jam_sum(cg_ctx *c, const ir_stmt *s, LLVMValueRef first, LLVMValueRef lane0, int lanes)
{
	const ir_assign *a = &s->assigns[0];
	if (jv_summand(c, a->val, s->loops[s->nloops - 1])) {
		jam_sum_vec(c, s, first, lane0, lanes);
		return;
	}
	LLVMValueRef acc[CG_JAM_ROWS];
	for (int r = 0; r < lanes; r++) {
		acc[r] = cg_entry_alloca(c, c->real, "acc");
		cg_store_real(c, cg_real_const(c, 0.0), acc[r]);
	}
	cg_loop st[CG_JAM_LOOPS];
	for (int i = 0; i < s->nloops; i++)
		cg_loop_open_stmt(c, &st[i], s->loops[i]);
	for (int r = 0; r < lanes; r++) {
		cg_set_lane(c, c->jam_rows, first, r ? LLVMBuildNSWAdd(c->b, lane0, cg_i64(c, r), "") : lane0);
		LLVMValueRef old = cg_load_real(c, acc[r]);
		LLVMValueRef nv = LLVMBuildFAdd(c->b, old, cg_val(c, a->val), "");
		/* reassociated as in cg_kernel.c's cg_assign_stmt */
		LLVMSetFastMathFlags(nv, LLVMFastMathAllowReassoc | LLVMFastMathAllowContract);
		cg_store_real(c, nv, acc[r]);
	}
	for (int i = s->nloops - 1; i >= 0; i--) {
		cg_loop_close(c, &st[i]);
		if (i == s->nloops - 1)
			fix_sum_shape(c, st[i].latch);
	}
	for (int r = 0; r < lanes; r++) {
		cg_set_lane(c, c->jam_rows, first, r ? LLVMBuildNSWAdd(c->b, lane0, cg_i64(c, r), "") : lane0);
		cg_tag_temp(c, cg_store_real(c, cg_load_real(c, acc[r]), cg_addr(c, a->buf, a->idx)), a->buf);
	}
}

/* Accumulations over loops for rows first + lane0 .. first + lane0 + lanes
 * - 1: into the rows' own buffers one by one, into a shared buffer the
 * rows' terms summed, then one load and store.  Values are computed once
 * per row (no value reads a target: jam_kind_of). */
static void jam_add(cg_ctx *c, const ir_stmt *s, LLVMValueRef first, LLVMValueRef lane0, int lanes)
{
	if (jv_add_ok(c, s, c->jam_rows)) {
		jam_add_vec(c, s, first, lane0, lanes);
		return;
	}
	cg_loop st[CG_JAM_LOOPS];
	LLVMValueRef *total = calloc((size_t)s->nassigns, sizeof *total);
	if (!total) {
		cg_fail(c, "out of memory");
		return;
	}
	for (int i = 0; i < s->nloops; i++)
		cg_loop_open_stmt(c, &st[i], s->loops[i]);
	for (int r = 0; r < lanes; r++) {
		cg_set_lane(c, c->jam_rows, first, r ? LLVMBuildNSWAdd(c->b, lane0, cg_i64(c, r), "") : lane0);
		for (int j = 0; j < s->nassigns; j++) {
			const ir_assign *a = &s->assigns[j];
			LLVMValueRef v = cg_val(c, a->val);
			if (cg_rows_shared_target(a, c->jam_rows)) {
				total[j] = total[j] ? cg_contract(LLVMBuildFAdd(c->b, total[j], v, "")) : v;
			} else {
				LLVMValueRef p = cg_addr(c, a->buf, a->idx);
				LLVMValueRef old = cg_tag_temp(c, cg_load_real(c, p), a->buf);
				cg_tag_temp(c, cg_store_real(c, cg_contract(LLVMBuildFAdd(c->b, old, v, "")), p), a->buf);
			}
		}
	}
	for (int j = 0; j < s->nassigns; j++)
		if (total[j]) {
			const ir_assign *a = &s->assigns[j];
			LLVMValueRef p = cg_addr(c, a->buf, a->idx);
			LLVMValueRef old = cg_tag_temp(c, cg_load_real(c, p), a->buf);
			cg_tag_temp(c, cg_store_real(c, cg_contract(LLVMBuildFAdd(c->b, old, total[j], "")), p), a->buf);
		}
	for (int i = s->nloops - 1; i >= 0; i--)
		cg_loop_close(c, &st[i]);
	free(total);
}

/* The rows of block loop `bl` (s->loop), rows [lo, hi): the statements run
 * in groups, each group a loop over the rows, split at the statements that
 * run jammed.  When `given` is not NULL, the first statement is a sum
 * computed already (pair_positions): row r's value is given[r].  Returns
 * false when the caller should emit the plain loop. */
bool cg_rows_of_block(cg_ctx *c, const ir_stmt *s, const ir_loop *bl, LLVMValueRef lo, LLVMValueRef hi,
                      LLVMValueRef given)
{
	if (c->o->opt_level <= 0 || !c->lane_stride || c->lane || bl->block < 2 || bl->block > CG_JAM_ROWS)
		return false;
	const ir_loop *rows = s->loop;
	size_t n = s->body.stmts.len;
	jam_kind *kinds = calloc(n + 1, sizeof *kinds);
	if (!kinds)
		return false;
	bool any = false;
	for (size_t i = 0; i < n; i++)
		if (s->body.stmts.items[i])
			any |= (kinds[i] = jam_kind_of(c, s->body.stmts.items[i], rows)) != JAM_NONE;
	if (!any) {
		free(kinds);
		return false;
	}
	cg_row saved_row = c->row;
	LLVMValueRef saved_var = c->loop_var[rows->id];
	const ir_loop *saved_rows = c->jam_rows;
	c->jam_rows = rows;
	LLVMValueRef count = LLVMBuildNSWSub(c->b, hi, lo, "");
	LLVMValueRef full = LLVMBuildICmp(c->b, LLVMIntEQ, count, cg_i64(c, bl->block), "");
	for (size_t i = 0; i < n;) {
		if (i == 0 && given) {
			const ir_assign *a = &((const ir_stmt *)s->body.stmts.items[0])->assigns[0];
			cg_loop st;
			cg_loop_open(c, &st, NULL, cg_i64(c, 0), count, false);
			cg_set_lane(c, rows, lo, st.iv);
			LLVMValueRef p = LLVMBuildInBoundsGEP2(c->b, c->real, given, &st.iv, 1, "");
			cg_tag_temp(c, cg_store_real(c, cg_load_real(c, p), cg_addr(c, a->buf, a->idx)), a->buf);
			cg_loop_close(c, &st);
			rows_width(c, st.latch, (int)bl->block);
			i++;
			continue;
		}
		if (kinds[i] == JAM_NONE) {
			/* a loop over the rows for each run of statements that are
			 * all straight-line per row (vectorized across the rows) or
			 * all not (one row at a time) */
			const ir_stmt *t = s->body.stmts.items[i];
			bool straight = !t || per_row_straight(c, t);
			size_t j = i + 1;
			while (j < n && kinds[j] == JAM_NONE &&
			       (!s->body.stmts.items[j] || per_row_straight(c, s->body.stmts.items[j]) == straight))
				j++;
			rows_each(c, s, i, j, lo, count, (int)bl->block);
			i = j;
			continue;
		}
		/* a full block jammed; the last, partial one row by row in the
		 * same loop shapes (a row's sum never depends on the split, and a
		 * call of one row does the work of one) */
		const ir_stmt *t = s->body.stmts.items[i];
		LLVMBasicBlockRef fullb = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "rows.full");
		LLVMBasicBlockRef part = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "rows.partial");
		LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "rows.done");
		LLVMBuildCondBr(c->b, full, fullb, part);
		LLVMPositionBuilderAtEnd(c->b, fullb);
		if (kinds[i] == JAM_SUM && bl->block > CG_JAM_SUM_ROWS && bl->block % CG_JAM_SUM_ROWS == 0) {
			/* a block of more rows than a sum has accumulators for (log
			 * p's blocks of 64: lower.c) runs its sums in tiles of rows */
			cg_loop tl;
			cg_loop_open(c, &tl, NULL, cg_i64(c, 0), cg_i64(c, bl->block / CG_JAM_SUM_ROWS), false);
			jam_sum(c, t, lo, LLVMBuildNSWMul(c->b, tl.iv, cg_i64(c, CG_JAM_SUM_ROWS), ""), CG_JAM_SUM_ROWS);
			cg_loop_close(c, &tl);
			cg_hint_vector_width(c, tl.latch, 1, 1);
			cg_cache_drop(c);
		} else if (kinds[i] == JAM_SUM)
			jam_sum(c, t, lo, cg_i64(c, 0), (int)bl->block);
		else
			jam_add(c, t, lo, cg_i64(c, 0), (int)bl->block);
		LLVMBuildBr(c->b, done);
		LLVMPositionBuilderAtEnd(c->b, part);
		cg_loop one;
		cg_loop_open(c, &one, NULL, cg_i64(c, 0), count, false);
		if (kinds[i] == JAM_SUM)
			jam_sum(c, t, lo, one.iv, 1);
		else
			jam_add(c, t, lo, one.iv, 1);
		cg_loop_close(c, &one);
		LLVMBuildBr(c->b, done);
		LLVMMoveBasicBlockAfter(done, LLVMGetInsertBlock(c->b));
		LLVMPositionBuilderAtEnd(c->b, done);
		i++;
	}
	c->jam_rows = saved_rows;
	c->lane = NULL;
	c->row = saved_row;
	c->loop_var[rows->id] = saved_var;
	cg_cache_drop(c);
	free(kinds);
	return true;
}
