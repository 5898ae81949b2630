/* unused.c -- which param entries the model can ever see.
 *
 * The log-density kernel's index computations (not its arithmetic) are run
 * at compile time, marking every entry of a param that some statement can
 * read.  The others are structurally unused: FVSBN's W[i, j] with j not
 * before i, NADE's column of W for the last element of the order.  They
 * are initialised to 0, get gradient 0, and are counted apart.  Indices that
 * depend on data (a cat value) mark the whole param as used; so does a
 * kernel too large to run through (more than 2e8 loop iterations).
 *
 * Two things keep this cheap (it ran through some 10^6 index evaluations
 * for NADE, a twentieth of `chain build`): each statement's param reads
 * are collected once, not once per iteration of the loops around it, and
 * the innermost loop of a statement is not run through for a read whose
 * indices are affine in its variable (base + stride * v, the usual case):
 * its entries are marked from the first and last index, which also bound
 * the range check, as an affine index is monotonic.
 */
#include <stdlib.h>
#include <string.h>

#include "lower_internal.h"

typedef struct marker {
	ir_module *m;
	int64_t *loopval;   /* by loop id */
	int nloops;
	int64_t budget;
	bool exhausted;
	ir_buf **params;    /* the param buffers, in declaration order */
	size_t nparams;
} marker;

static bool eval_idx(marker *k, const ir_idx *i, int64_t *out)
{
	int64_t a, b;
	switch (i->kind) {
	case IX_CONST: *out = i->u.c; return true;
	case IX_LOOP: *out = i->u.loop->id < k->nloops ? k->loopval[i->u.loop->id] : 0; return true;
	case IX_ADD: case IX_SUB: case IX_MUL:
		if (!eval_idx(k, i->u.bin.a, &a) || !eval_idx(k, i->u.bin.b, &b))
			return false;
		*out = i->kind == IX_ADD ? a + b : i->kind == IX_SUB ? a - b : a * b;
		return true;
	case IX_LOAD:
		if (i->u.load.buf->cls == BUF_CONST && i->u.load.buf->is_int) {
			int64_t flat = 0;
			for (int d = 0; d < i->u.load.buf->rank; d++) {
				if (!eval_idx(k, i->u.load.idx[d], &a))
					return false;
				flat = flat * i->u.load.buf->dims[d] + a;
			}
			if (flat < 0 || flat >= i->u.load.buf->size)
				return false;
			*out = i->u.load.buf->ivalues[flat];
			return true;
		}
		return false; /* data-dependent */
	case IX_ROW: *out = 0; return true;
	case IX_PREFIX: *out = 0; return true;
	}
	return false;
}

/* Sets entry t of a param_used bitmap (param_entry_used reads it). */
static inline void mark_entry(uint8_t *used, int64_t t)
{
	used[t >> 3] |= (uint8_t)(1u << (t & 7));
}

/* An index as base + stride * v in the variable v of loop l, the other loop
 * variables at their current values; false when it is not of that form
 * (a product of two terms in v, a table lookup whose index moves with v) or
 * cannot be evaluated at all. */
static bool affine_idx(marker *k, const ir_idx *i, const ir_loop *l, int64_t *base, int64_t *stride)
{
	int64_t ab, as, bb, bs;
	switch (i->kind) {
	case IX_LOOP:
		if (i->u.loop == l) {
			*base = 0;
			*stride = 1;
			return true;
		}
		*stride = 0;
		return eval_idx(k, i, base);
	case IX_ADD: case IX_SUB: case IX_MUL:
		if (!affine_idx(k, i->u.bin.a, l, &ab, &as) || !affine_idx(k, i->u.bin.b, l, &bb, &bs))
			return false;
		if (i->kind == IX_MUL) {
			if (as && bs)
				return false;
			*base = ab * bb;
			*stride = as * bb + bs * ab;
		} else {
			*base = i->kind == IX_ADD ? ab + bb : ab - bb;
			*stride = i->kind == IX_ADD ? as + bs : as - bs;
		}
		return true;
	case IX_LOAD:
		if (i->u.load.buf->cls == BUF_CONST && i->u.load.buf->is_int)
			for (int d = 0; d < i->u.load.buf->rank; d++)
				if (!affine_idx(k, i->u.load.idx[d], l, &ab, &as) || as)
					return false;
		*stride = 0; /* a lookup that does not move with v */
		return eval_idx(k, i, base);
	default:
		*stride = 0;
		return eval_idx(k, i, base);
	}
}

static void collect_theta_reads(const ir_val *v, ptrvec *out, arena *a)
{
	switch (v->kind) {
	case V_READ:
		if (v->u.read.buf->cls == BUF_THETA)
			ptrvec_push(a, out, (void *)v);
		return;
	case V_OP:
		for (int i = 0; i < ir_op_arity[v->u.op.op]; i++)
			collect_theta_reads(v->u.op.a[i], out, a);
		return;
	case V_STOP:
		collect_theta_reads(v->u.stop, out, a);
		return;
	case V_DRAW:
		if (v->u.draw.arg)
			collect_theta_reads(v->u.draw.arg, out, a);
		return;
	default:
		return;
	}
}

static int param_index(const marker *k, const ir_buf *b)
{
	for (size_t p = 0; p < k->nparams; p++)
		if (k->params[p] == b)
			return (int)p;
	return -1;
}

static void mark_reads(marker *k, const ptrvec *reads)
{
	for (size_t r = 0; r < reads->len; r++) {
		const ir_val *v = reads->items[r];
		const ir_buf *b = v->u.read.buf;
		int p = param_index(k, b);
		if (p < 0 || !k->m->param_used[p])
			continue;
		int64_t flat = 0, x;
		bool known = true;
		for (int d = 0; d < b->rank; d++) {
			if (!eval_idx(k, v->u.read.idx[d], &x) || x < 0 || x >= b->dims[d]) {
				known = false;
				break;
			}
			flat = flat * b->dims[d] + x;
		}
		if (!known) {
			k->m->param_used[p] = NULL; /* cannot tell: all used */
			continue;
		}
		mark_entry(k->m->param_used[p], flat);
	}
}

/* Sets bits [lo, hi) of a bitmap, whole bytes at a time in between. */
static void set_bit_range(uint8_t *bits, int64_t lo, int64_t hi)
{
	for (; lo < hi && (lo & 7); lo++)
		mark_entry(bits, lo);
	if (hi - lo >= 8) {
		memset(bits + (lo >> 3), 0xff, (size_t)((hi - lo) >> 3));
		lo += (hi - lo) & ~(int64_t)7;
	}
	for (; lo < hi; lo++)
		mark_entry(bits, lo);
}

/* One read over v in [lo, hi) of the innermost loop l, when its indices
 * are affine in v: what mark_reads would do at every v, without evaluating
 * the indices at every v.  False (nothing done) when they are not affine. */
static bool mark_affine(marker *k, const ir_val *v, const ir_loop *l, int64_t lo, int64_t hi)
{
	const ir_buf *b = v->u.read.buf;
	int p = param_index(k, b);
	if (p < 0 || !k->m->param_used[p])
		return true;
	int64_t base = 0, stride = 0;
	for (int d = 0; d < b->rank; d++) {
		int64_t db, ds;
		if (!affine_idx(k, v->u.read.idx[d], l, &db, &ds))
			return false;
		int64_t first = db + ds * lo, last = db + ds * (hi - 1);
		if (first < 0 || first >= b->dims[d] || last < 0 || last >= b->dims[d]) {
			k->m->param_used[p] = NULL; /* out of range at some v: all used */
			return true;
		}
		base = base * b->dims[d] + db;
		stride = stride * b->dims[d] + ds;
	}
	uint8_t *used = k->m->param_used[p];
	if (stride == 1) {
		set_bit_range(used, base + lo, base + hi);
		return true;
	}
	for (int64_t x = lo; x < hi; x++)
		mark_entry(used, base + stride * x);
	return true;
}

static void mark_loops(marker *k, const ir_stmt *s, int depth, const ptrvec *reads)
{
	if (k->exhausted)
		return;
	if (depth == s->nloops) {
		if (--k->budget < 0)
			k->exhausted = true;
		mark_reads(k, reads);
		return;
	}
	ir_loop *l = s->loops[depth];
	int64_t lo, hi;
	if (!eval_idx(k, l->lo, &lo) || !eval_idx(k, l->hi, &hi)) {
		k->exhausted = true;
		return;
	}
	if (depth == s->nloops - 1) {
		/* the innermost loop: affine reads at once, the others one v at a time */
		if (lo >= hi)
			return;
		k->budget -= hi - lo;
		if (k->budget < 0) {
			k->exhausted = true; /* every param counts as used: no need to mark */
			return;
		}
		/* without memory for the list of the others, all go one v at a time */
		ptrvec rest = { .items = malloc(reads->len * sizeof *rest.items) };
		for (size_t r = 0; r < reads->len; r++)
			if (!rest.items || !mark_affine(k, reads->items[r], l, lo, hi))
				rest.items[rest.len++] = reads->items[r];
		const ptrvec *slow = rest.items ? &rest : reads;
		for (int64_t v = lo; v < hi && slow->len; v++) {
			k->loopval[l->id] = v;
			mark_reads(k, slow);
		}
		free(rest.items);
		return;
	}
	for (int64_t v = lo; v < hi && !k->exhausted; v++) {
		k->loopval[l->id] = v;
		mark_loops(k, s, depth + 1, reads);
	}
}

/* A block's statements with the param reads of each, collected once
 * (mark_block visits a statement once per iteration of the loops around
 * it); the bodies of loops and conditionals alike. */
typedef struct mblock {
	struct mstmt *s;
	size_t n;
} mblock;

typedef struct mstmt {
	ptrvec reads;
	mblock body;
} mstmt;

static void collect_block(arena *a, const ir_block *b, mblock *out)
{
	out->n = b->stmts.len;
	out->s = arena_alloc(a, (out->n + 1) * sizeof *out->s);
	for (size_t i = 0; i < b->stmts.len; i++) {
		const ir_stmt *s = b->stmts.items[i];
		if (s->kind == S_FOR || s->kind == S_IF_GE)
			collect_block(a, &s->body, &out->s[i].body);
		else
			for (int j = 0; j < s->nassigns; j++)
				collect_theta_reads(s->assigns[j].val, &out->s[i].reads, a);
	}
}

/* A loop [lo, hi) whose body is statements without loops of their own
 * (a position loop: `for k { lp += f(b[k], x[k]); if k < n-1 { } }`, the
 * update block empty) and whose param reads are all affine in its
 * variable: marked at once, as mark_loops does an innermost loop, not one
 * position at a time (2^28 positions took seconds).  The budget is charged
 * what the visits would have cost.  False (nothing done) when the body is
 * not of that form. */
static bool mark_flat_loop(marker *k, const ir_stmt *loop, const mblock *mb, int64_t lo, int64_t hi)
{
	int64_t visits = 0;
	for (size_t i = 0; i < loop->body.stmts.len; i++) {
		const ir_stmt *s = loop->body.stmts.items[i];
		if (s->kind == S_IF_GE && s->body.stmts.len == 0)
			continue; /* marks nothing, whatever its condition */
		if (s->kind == S_FOR || s->kind == S_IF_GE || s->nloops)
			return false;
		visits += mb->s[i].reads.len > 0;
	}
	if (lo >= hi)
		return true;
	for (size_t i = 0; i < loop->body.stmts.len; i++)
		for (size_t r = 0; r < mb->s[i].reads.len; r++) {
			int64_t base, stride;
			const ir_val *v = mb->s[i].reads.items[r];
			for (int d = 0; d < v->u.read.buf->rank; d++)
				if (!affine_idx(k, v->u.read.idx[d], loop->loop, &base, &stride))
					return false;
		}
	if (visits > 0 && (hi - lo > k->budget / visits || (k->budget -= visits * (hi - lo)) < 0)) {
		k->exhausted = true; /* every param counts as used: no need to mark */
		return true;
	}
	for (size_t i = 0; i < loop->body.stmts.len; i++)
		for (size_t r = 0; r < mb->s[i].reads.len; r++)
			mark_affine(k, mb->s[i].reads.items[r], loop->loop, lo, hi);
	return true;
}

static void mark_block(marker *k, const ir_block *b, const mblock *mb)
{
	for (size_t i = 0; i < b->stmts.len && !k->exhausted; i++) {
		const ir_stmt *s = b->stmts.items[i];
		if (s->kind == S_FOR) {
			int64_t lo, hi;
			if (s->loop->is_rows) {
				lo = 0;
				hi = 1;
			} else if (!eval_idx(k, s->loop->lo, &lo) || !eval_idx(k, s->loop->hi, &hi)) {
				k->exhausted = true;
				return;
			}
			if (!s->loop->is_rows && mark_flat_loop(k, s, &mb->s[i].body, lo, hi))
				continue;
			for (int64_t v = lo; v < hi && !k->exhausted; v++) {
				k->loopval[s->loop->id] = v;
				mark_block(k, &s->body, &mb->s[i].body);
			}
		} else if (s->kind == S_IF_GE) {
			int64_t ca, cb;
			if (!eval_idx(k, s->a, &ca) || !eval_idx(k, s->b, &cb) || ca >= cb)
				mark_block(k, &s->body, &mb->s[i].body);
		} else if (mb->s[i].reads.len) {
			mark_loops(k, s, 0, &mb->s[i].reads);
		}
	}
}

/* Which entries of each param the logp kernel can ever read: the others
 * are structurally unused (stay 0, get gradient 0, counted apart). */
void find_unused_params(ir_module *m, ir_buf **params)
{
	size_t np = m->model->params.len;
	m->param_used = arena_alloc(m->arena, (np + 1) * sizeof(uint8_t *));
	m->param_unused = arena_alloc(m->arena, (np + 1) * sizeof(int64_t));
	const ir_kernel *lk = m->kernels[KER_LOGP];
	if (!lk)
		return;
	for (size_t p = 0; p < np; p++) {
		m->param_used[p] = arena_alloc(m->arena, (size_t)(params[p]->size + 7) / 8);
	}
	marker k = {.m = m, .nloops = m->next_id + 1, .budget = 200000000, .params = params, .nparams = np};
	k.loopval = calloc((size_t)k.nloops, sizeof(int64_t));
	mblock mb;
	collect_block(m->arena, &lk->body, &mb);
	mark_block(&k, &lk->body, &mb);
	free(k.loopval);
	for (size_t p = 0; p < np; p++) {
		int64_t n = params[p]->size, unused = 0;
		if (k.exhausted)
			m->param_used[p] = NULL;
		if (m->param_used[p]) {
			/* the bits past entry n - 1 are never set */
			int64_t used = 0;
			for (int64_t i = 0; i < (n + 7) / 8; i++)
				used += __builtin_popcount(m->param_used[p][i]);
			unused = n - used;
		}
		if (!unused)
			m->param_used[p] = NULL;
		m->param_unused[p] = unused;
		m->num_unused += unused;
	}
}

