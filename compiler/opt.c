/* opt.c -- IR optimizations after lowering and differentiation.
 *
 * Kernels are assembled from shared pieces (the stages of lower_internal.h),
 * so a kernel often contains statements whose results it never reads: the
 * log-density temps in the sample kernel, the sampler's in logp.  Dead
 * statement elimination drops them, to a fixed point.  And a loop that
 * adds products with a bit of binary data is skipped when the bit is 0.
 */
#include "chainc.h"

/* What a block reads: a mark per buffer id (ids number buffers and values
 * alike: ir.c), so that a test costs the same whatever the number of
 * buffers (a model of 100,000 params has as many); a value's id is marked
 * once its reads are in, so that a subexpression shared by several
 * statements is walked once. */
typedef struct reads_set {
	uint8_t *mark;          /* next_id entries */
	ptrvec marked;          /* the ids marked, to clear them */
} reads_set;

static bool mark_once(arena *a, reads_set *r, int id)
{
	if (r->mark[id])
		return false;
	r->mark[id] = 1;
	ptrvec_push(a, &r->marked, (void *)(intptr_t)id);
	return true;
}

static void reads_buf(arena *a, reads_set *r, const ir_buf *b)
{
	mark_once(a, r, b->id);
}

static bool reads_has(const reads_set *r, const ir_buf *b) { return r->mark[b->id]; }

static void reads_clear(reads_set *r)
{
	for (size_t i = 0; i < r->marked.len; i++)
		r->mark[(intptr_t)r->marked.items[i]] = 0;
	r->marked.len = 0;
}

static void reads_idx(arena *a, reads_set *r, const ir_idx *i);

static void reads_val(arena *a, reads_set *r, const ir_val *v)
{
	if (!mark_once(a, r, v->id))
		return;
	switch (v->kind) {
	case V_READ:
		reads_buf(a, r, v->u.read.buf);
		for (int k = 0; k < v->u.read.buf->rank; k++)
			reads_idx(a, r, v->u.read.idx[k]);
		return;
	case V_OP:
		for (int k = 0; k < ir_op_arity[v->u.op.op]; k++)
			reads_val(a, r, v->u.op.a[k]);
		return;
	case V_STOP: reads_val(a, r, v->u.stop); return;
	case V_INT: reads_idx(a, r, v->u.idx); return;
	case V_DRAW:
		reads_idx(a, r, v->u.draw.a);
		reads_idx(a, r, v->u.draw.b);
		reads_idx(a, r, v->u.draw.ci);
		if (v->u.draw.arg)
			reads_val(a, r, v->u.draw.arg);
		return;
	default: return;
	}
}

static void reads_idx(arena *a, reads_set *r, const ir_idx *i)
{
	if (!i)
		return;
	switch (i->kind) {
	case IX_ADD: case IX_SUB: case IX_MUL:
		reads_idx(a, r, i->u.bin.a);
		reads_idx(a, r, i->u.bin.b);
		return;
	case IX_LOAD:
		reads_buf(a, r, i->u.load.buf);
		for (int k = 0; k < i->u.load.buf->rank; k++)
			reads_idx(a, r, i->u.load.idx[k]);
		return;
	default: return;
	}
}

static void reads_block(arena *a, reads_set *r, const ir_block *b)
{
	for (size_t i = 0; i < b->stmts.len; i++) {
		const ir_stmt *s = b->stmts.items[i];
		if (s->kind == S_FOR || s->kind == S_IF_GE) {
			/* a condition or a loop bound reads what it loads (memo.c's
			 * flags are read only there) */
			if (s->kind == S_FOR && s->loop) {
				reads_idx(a, r, s->loop->lo);
				reads_idx(a, r, s->loop->hi);
			} else {
				reads_idx(a, r, s->a);
				reads_idx(a, r, s->b);
			}
			reads_block(a, r, &s->body);
			continue;
		}
		for (int l = 0; l < s->nloops; l++) {
			reads_idx(a, r, s->loops[l]->lo);
			reads_idx(a, r, s->loops[l]->hi);
		}
		for (int k = 0; k < s->nassigns; k++) {
			reads_val(a, r, s->assigns[k].val);
			for (int d = 0; d < IR_MAX_RANK; d++)
				reads_idx(a, r, s->assigns[k].idx[d]);
			/* += reads its target */
			if (s->kind == S_ADD)
				reads_buf(a, r, s->assigns[k].buf);
		}
	}
}

/* Drops statements that only write temps nobody reads; true if any. */
static bool drop_dead(const reads_set *live, ir_block *b, const ir_buf *keep)
{
	bool changed = false;
	size_t w = 0;
	for (size_t i = 0; i < b->stmts.len; i++) {
		ir_stmt *s = b->stmts.items[i];
		bool dead = false;
		if (s->kind == S_FOR || s->kind == S_IF_GE) {
			changed |= drop_dead(live, &s->body, keep);
			dead = s->body.stmts.len == 0;
		} else {
			dead = true;
			for (int k = 0; k < s->nassigns; k++) {
				const ir_buf *t = s->assigns[k].buf;
				if (t->cls != BUF_TEMP || t == keep || reads_has(live, t))
					dead = false;
			}
		}
		if (dead)
			changed = true;
		else
			b->stmts.items[w++] = s;
	}
	b->stmts.len = w;
	return changed;
}

static void dce(ir_module *m, ir_block *b, const ir_buf *result)
{
	reads_set live = {.mark = arena_alloc(m->arena, (size_t)m->next_id + 1)};
	bool changed = true;
	while (changed) {
		reads_clear(&live);
		reads_block(m->arena, &live, b);
		changed = drop_dead(&live, b, result);
	}
}

/* ---------------------------------------- skipping products with a 0 bit */

/* Is b the row's element of a `bin` data variable? */
static bool is_bin_obs(const ir_module *m, const ir_buf *b)
{
	if (b->cls != BUF_OBS)
		return false;
	for (size_t i = 0; i < m->model->data.len; i++) {
		const sym *y = m->model->data.items[i];
		if ((int64_t)y->offset == b->offset && y->vkind == K_BIN)
			return true;
	}
	return false;
}

/* The factor x of v = x * rest (or rest * x) when x reads a bin variable at
 * an index none of the statement's loops changes; else NULL. */
static const ir_val *bin_factor(const ir_module *m, const ir_stmt *s, const ir_val *v)
{
	if (v->kind != V_OP || v->u.op.op != IR_MUL)
		return NULL;
	for (int side = 0; side < 2; side++) {
		const ir_val *f = v->u.op.a[side];
		if (f->kind != V_READ || !is_bin_obs(m, f->u.read.buf))
			continue;
		bool invariant = true;
		for (int l = 0; l < s->nloops; l++)
			for (int d = 0; d < f->u.read.buf->rank; d++)
				invariant &= !ir_idx_uses_loop(f->u.read.idx[d], s->loops[l]);
		if (invariant)
			return f;
	}
	return NULL;
}

/* `acc[r] += W[r, i] * x[i]` does nothing when the bit x[i] is 0: such
 * loops (NADE's running sum, its adjoint) run only when it is 1.  For 0/1
 * data this changes no result but a 0 * inf, which would be NaN. */
static void guard_bin_products(ir_module *m, ir_block *b)
{
	for (size_t i = 0; i < b->stmts.len; i++) {
		ir_stmt *s = b->stmts.items[i];
		if (s->kind == S_FOR || s->kind == S_IF_GE) {
			guard_bin_products(m, &s->body);
			continue;
		}
		if (s->kind != S_ADD || s->nloops == 0)
			continue;
		const ir_val *f = bin_factor(m, s, s->assigns[0].val);
		for (int a = 1; a < s->nassigns && f; a++)
			if (bin_factor(m, s, s->assigns[a].val) != f)
				f = NULL;
		if (!f)
			continue;
		ir_stmt *g = ir_stmt_new(m, S_IF_GE);
		g->a = ir_idx_load(m, f->u.read.buf, (ir_idx **)f->u.read.idx);
		g->b = ir_idx_const(m, 1);
		ir_block_push(m, &g->body, s);
		b->stmts.items[i] = g;
	}
}

void opt_module(ir_module *m)
{
	for (int k = 0; k < KER__COUNT; k++) {
		ir_kernel *kr = m->kernels[k];
		if (!kr)
			continue;
		guard_bin_products(m, &kr->body);
		guard_bin_products(m, &kr->nograd_body);
		memo_kernel(m, kr);
		fuse_kernel(m, kr);
		dce(m, &kr->body, kr->result);
		dce(m, &kr->nograd_body, kr->nograd_result);
	}
	layout_module(m);
}
