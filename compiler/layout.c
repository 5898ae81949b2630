/* layout.c -- params read across their rows get a transposed copy.
 *
 * A model states its params' shapes, and those shapes are the layout of
 * theta (the C API, checkpoints).  NADE's `W : real[H, n]` is read a column
 * at a time: at position k every row with x[k] = 1 adds W[:, k], and its
 * gradient adds into dW[:, k], with the loop over the H hidden units
 * innermost -- n reals apart, a cache line per element, gathers and
 * scatters, a quarter of NADE's gradient.  In a loop over blocks of rows
 * the same columns come back block after block, so the loop reads instead
 * a transposed copy, T[k, :] = W[:, k], and adds into a transposed
 * gradient, added into dW[:, k] after the loop.
 *
 * The copies are made column by column, the first time a column is needed
 * (a flag per column): a call of one row touches only the columns its ones
 * select, as before, and a batch copies each column once.  The copies are
 * scratch not zeroed at entry (n x H reals each), shared by the rows of a
 * block.
 *
 * A buffer is copied in a loop over blocks when every access to it in
 * there is X[i, j] with i the innermost loop of its statement and j the
 * same in the whole statement and free of its loops (so one column per
 * statement, unit-stride in the copy), and a gradient is only ever added
 * into.  The statements outside the loop keep the original buffers.
 */
#include <stdlib.h>
#include <string.h>

#include "chainc.h"

/* ------------------------------------------------------------ the check */

/* The accesses to one buffer in a statement, or in a loop over blocks. */
typedef struct check {
	const ir_buf *b;
	bool *seen;   /* by val id: visited (values are a DAG) */
	int nids;
	int uses;
	ir_idx *col;  /* the column of the statement's accesses (j of X[i, j]) */
	bool ok;
} check;

/* X[i, j], i the loop `inner`, j the statement's one column. */
static void access(check *ck, ir_idx *const *idx, const ir_loop *inner)
{
	ck->uses++;
	if (!inner || !idx[0] || idx[0]->kind != IX_LOOP || idx[0]->u.loop != inner || !idx[1]) {
		ck->ok = false;
		return;
	}
	if (!ck->col)
		ck->col = idx[1];
	else if (!ir_idx_equal(ck->col, idx[1]))
		ck->ok = false;
}

static void check_val(check *ck, const ir_val *v, const ir_loop *inner)
{
	if (!ck->ok || !v)
		return;
	if (v->id >= 0 && v->id < ck->nids) {
		if (ck->seen[v->id])
			return;
		ck->seen[v->id] = true;
	}
	switch (v->kind) {
	case V_READ:
		for (int d = 0; d < v->u.read.buf->rank; d++)
			if (ir_idx_reads(v->u.read.idx[d], ck->b))
				ck->ok = false;
		if (v->u.read.buf == ck->b) {
			/* a gradient's copy holds this call's terms only */
			ck->ok &= ck->b->cls == BUF_THETA;
			access(ck, v->u.read.idx, inner);
		}
		return;
	case V_OP:
		for (int i = 0; i < ir_op_arity[v->u.op.op]; i++)
			check_val(ck, v->u.op.a[i], inner);
		return;
	case V_STOP: check_val(ck, v->u.stop, inner); return;
	case V_INT: ck->ok &= !ir_idx_reads(v->u.idx, ck->b); return;
	case V_DRAW:
		ck->ok &= !ir_idx_reads(v->u.draw.a, ck->b) && !ir_idx_reads(v->u.draw.b, ck->b) &&
		          !ir_idx_reads(v->u.draw.ci, ck->b);
		if (v->u.draw.arg)
			check_val(ck, v->u.draw.arg, inner);
		return;
	default: return;
	}
}

/* The accesses of an assignment statement: ck->uses of them, all at column
 * ck->col, which none of the statement's loops changes. */
static void check_stmt(check *ck, const ir_stmt *s)
{
	memset(ck->seen, 0, (size_t)ck->nids * sizeof *ck->seen);
	ck->col = NULL;
	int before = ck->uses;
	const ir_loop *inner = s->nloops > 0 ? s->loops[s->nloops - 1] : NULL;
	for (int l = 0; l < s->nloops; l++)
		ck->ok &= !ir_idx_reads(s->loops[l]->lo, ck->b) && !ir_idx_reads(s->loops[l]->hi, ck->b);
	for (int a = 0; a < s->nassigns; a++) {
		const ir_assign *as = &s->assigns[a];
		for (int d = 0; d < as->buf->rank; d++)
			ck->ok &= !ir_idx_reads(as->idx[d], ck->b);
		if (as->buf == ck->b) {
			ck->ok &= ck->b->cls == BUF_GRAD && s->kind == S_ADD;
			access(ck, as->idx, inner);
		}
		check_val(ck, as->val, inner);
	}
	for (int l = 0; l < s->nloops && ck->uses > before && ck->col; l++)
		ck->ok &= !ir_idx_uses_loop(ck->col, s->loops[l]);
}

static void check_block(check *ck, const ir_block *blk)
{
	for (size_t i = 0; i < blk->stmts.len && ck->ok; i++) {
		const ir_stmt *s = blk->stmts.items[i];
		if (s->kind == S_FOR || s->kind == S_IF_GE) {
			ck->ok &= !ir_idx_reads(s->a, ck->b) && !ir_idx_reads(s->b, ck->b);
			if (s->loop)
				ck->ok &= !ir_idx_reads(s->loop->lo, ck->b) && !ir_idx_reads(s->loop->hi, ck->b);
			check_block(ck, &s->body);
		} else {
			check_stmt(ck, s);
		}
	}
}

/* ---------------------------------------------------------- the rewrite */

/* The buffers copied in one loop over blocks: X (from), its copy T (to,
 * [d1, d0]) and the copy's flags F (done, [d1]: column j is there). */
enum { MAX_COPIES = 16 }; /* buffers copied in one loop over blocks, at most */

typedef struct swap {
	ir_module *m;
	check ck;
	int n;
	ir_buf *from[MAX_COPIES], *to[MAX_COPIES], *done[MAX_COPIES];
} swap;

static int swapped(const swap *w, const ir_buf *b)
{
	for (int i = 0; i < w->n; i++)
		if (w->from[i] == b)
			return i;
	return -1;
}

/* ir_read_map for the copies: a read of a copied buffer X[i, j] becomes
 * one of its copy, T[j, i]. */
static ir_buf *swap_read(void *arg, ir_buf *b, ir_idx **idx)
{
	swap *w = arg;
	int t = swapped(w, b);
	if (t < 0)
		return b;
	ir_idx *i = idx[0];
	idx[0] = idx[1];
	idx[1] = i;
	return w->to[t];
}

static ir_loop *loop_to(ir_module *m, const char *name, int64_t hi)
{
	return ir_loop_new(m, name, ir_idx_const(m, 0), ir_idx_const(m, hi));
}

/* Before a statement using column j of copy t: `if 0 >= F[j] { set for a:
 * T[j, a] = X[a, j] (0 for a gradient); set F[j] = 1 }`. */
static ir_stmt *fetch(swap *w, int t, ir_idx *j)
{
	ir_module *m = w->m;
	ir_buf *x = w->from[t];
	ir_stmt *g = ir_stmt_new(m, S_IF_GE);
	ir_idx *jj[IR_MAX_RANK] = {j};
	g->a = ir_idx_const(m, 0);
	g->b = ir_idx_load(m, w->done[t], jj);
	ir_loop *a = loop_to(m, "ta", x->dims[0]);
	ir_idx *ja[IR_MAX_RANK] = {j, ir_idx_loop(m, a)}, *aj[IR_MAX_RANK] = {ir_idx_loop(m, a), j};
	ir_val *v = x->cls == BUF_THETA ? ir_read(m, x, aj) : ir_const(m, 0);
	ir_block_push(m, &g->body, ir_assign_stmt(m, S_SET, &a, 1, 1, w->to[t], ja, v));
	ir_block_push(m, &g->body, ir_assign_stmt(m, S_SET, NULL, 0, 0, w->done[t], jj, ir_const(m, 1)));
	return g;
}

/* After the loop, a gradient's columns that were added into: `for j: if
 * F[j] >= 1 { add for a: dX[a, j] += T[j, a] }`. */
static ir_stmt *add_back(swap *w, int t)
{
	ir_module *m = w->m;
	ir_buf *x = w->from[t];
	ir_stmt *f = ir_stmt_new(m, S_FOR);
	f->loop = loop_to(m, "tj", x->dims[1]);
	ir_idx *j = ir_idx_loop(m, f->loop);
	ir_stmt *g = ir_stmt_new(m, S_IF_GE);
	ir_idx *jj[IR_MAX_RANK] = {j};
	g->a = ir_idx_load(m, w->done[t], jj);
	g->b = ir_idx_const(m, 1);
	ir_loop *a = loop_to(m, "ta", x->dims[0]);
	ir_idx *ja[IR_MAX_RANK] = {j, ir_idx_loop(m, a)}, *aj[IR_MAX_RANK] = {ir_idx_loop(m, a), j};
	ir_block_push(m, &g->body, ir_assign_stmt(m, S_ADD, &a, 1, 1, x, aj, ir_read(m, w->to[t], ja)));
	ir_block_push(m, &f->body, g);
	return f;
}

static void swap_block(swap *w, ir_block *dst, const ir_block *src);

/* A copy of statement s on the copies, after the fetches of its columns. */
static void swap_stmt(swap *w, ir_block *dst, const ir_stmt *s)
{
	ir_stmt *c = ir_stmt_new(w->m, s->kind);
	*c = *s;
	c->body = (ir_block){0};
	if (s->kind == S_FOR || s->kind == S_IF_GE) {
		swap_block(w, &c->body, &s->body);
		ir_block_push(w->m, dst, c);
		return;
	}
	for (int t = 0; t < w->n; t++) {
		w->ck.b = w->from[t];
		w->ck.uses = 0;
		w->ck.ok = true;
		check_stmt(&w->ck, s);
		if (w->ck.uses > 0)
			ir_block_push(w->m, dst, fetch(w, t, w->ck.col));
	}
	c->assigns = arena_alloc(w->m->arena, (size_t)s->nassigns * sizeof *c->assigns);
	for (int a = 0; a < s->nassigns; a++) {
		const ir_assign *sa = &s->assigns[a];
		ir_assign *ca = &c->assigns[a];
		*ca = *sa;
		for (int d = 0; d < sa->buf->rank; d++)
			ca->idx[d] = ir_remap_idx(w->m, sa->idx[d], swap_read, w);
		ca->buf = swap_read(w, sa->buf, ca->idx);
		ca->val = ir_remap_val(w->m, sa->val, swap_read, w);
	}
	ir_block_push(w->m, dst, c);
}

static void swap_block(swap *w, ir_block *dst, const ir_block *src)
{
	for (size_t i = 0; i < src->stmts.len; i++)
		swap_stmt(w, dst, src->stmts.items[i]);
}

/* Loop over blocks s, with its buffers to copy on the copies, then the
 * gradients' add-backs, into dst. */
static void transpose_in(ir_module *m, ir_kernel *k, ir_block *dst, ir_stmt *s)
{
	swap w = {.m = m, .ck = {.nids = m->next_id}};
	w.ck.seen = calloc((size_t)w.ck.nids + 1, sizeof *w.ck.seen);
	for (size_t i = 0; w.ck.seen && i < m->bufs.len && w.n < MAX_COPIES; i++) {
		ir_buf *b = m->bufs.items[i];
		if ((b->cls != BUF_THETA && b->cls != BUF_GRAD) || b->rank != 2 || b->dims[0] < 2)
			continue;
		w.ck.b = b;
		w.ck.uses = 0;
		w.ck.ok = true;
		check_block(&w.ck, &s->body);
		if (!w.ck.ok || w.ck.uses == 0)
			continue;
		int64_t dims[IR_MAX_RANK] = {b->dims[1], b->dims[0]};
		ir_buf *t = ir_buf_new(m, b->cls == BUF_GRAD ? "dT" : "T", BUF_TEMP, 2, dims);
		ir_buf *f = ir_buf_new(m, b->cls == BUF_GRAD ? "dTcol" : "Tcol", BUF_TEMP, 1, dims);
		t->rows_share = f->rows_share = true;
		t->uninit = true;
		ptrvec_push(m->arena, &k->temps, t);
		ptrvec_push(m->arena, &k->temps, f);
		w.from[w.n] = b;
		w.to[w.n] = t;
		w.done[w.n++] = f;
	}
	if (w.n == 0) {
		ir_block_push(m, dst, s);
	} else {
		ir_stmt *c = ir_stmt_new(m, s->kind);
		*c = *s;
		c->body = (ir_block){0};
		swap_block(&w, &c->body, &s->body);
		ir_block_push(m, dst, c);
		for (int i = 0; i < w.n; i++)
			if (w.from[i]->cls == BUF_GRAD)
				ir_block_push(m, dst, add_back(&w, i));
	}
	free(w.ck.seen);
}

static void transpose_block(ir_module *m, ir_kernel *k, ir_block *b)
{
	ir_block out = {0};
	bool any = false;
	for (size_t i = 0; i < b->stmts.len; i++) {
		ir_stmt *s = b->stmts.items[i];
		if (s->kind == S_FOR && s->loop && s->loop->is_rows && s->loop->block > 0) {
			transpose_in(m, k, &out, s);
			any = true;
		} else {
			ir_block_push(m, &out, s);
		}
	}
	if (any)
		*b = out;
}

void layout_module(ir_module *m)
{
	for (int k = 0; k < KER__COUNT; k++) {
		ir_kernel *kr = m->kernels[k];
		if (!kr)
			continue;
		transpose_block(m, kr, &kr->body);
		transpose_block(m, kr, &kr->nograd_body);
	}
}
