/* cg_share.c -- kernels that are, in part or whole, a call of another kernel.
 *
 * Lowering and AD build several kernels out of the same pieces: `sample` is
 * `complete` with prefix 0 (the `k >= prefix` guards always hold), and the
 * objective of a plain `maximize loglik` runs loglik_grad's statements
 * between zeroing and scaling the gradient.  Compiling those statements
 * twice doubles LLVM's work (its passes and instruction selection are most
 * of `chain build`) for nothing, so the kernel emitter asks here whether a
 * stretch of a kernel's top-level statements does exactly what another
 * kernel's whole body does, and then emits a call of that kernel instead.
 *
 * The answer is a proof on the IR, never an assumption about how lowering
 * happens to build kernels: the two statement lists must be the same up to
 * a one-to-one renaming of loops and scratch (TEMP) buffers -- the same
 * operations on the same params, data and gradient, in the same order, so
 * the results are the same bits -- with two allowances, each exact:
 *
 *   prefix 0   called with prefix 0, the callee's `if (i >= prefix) body`
 *              is `body` and its `select(i >= prefix, drawn, given)` is
 *              `drawn` when i is an index that is never negative, and
 *              its other `prefix` reads are the caller's constant 0;
 *   a counter  the caller may count its rows in a scalar temp (`count = 0`
 *              at the top, then `count += 1` once per row: first in the one
 *              plain rows loop, or, under a loop over blocks of rows, first
 *              in one of the block's rows loops or alone in a rows loop of
 *              its own that the callee does not have): after the call,
 *              count is n as a real, saturated at 2^p (p = 53 or 24
 *              mantissa bits) exactly as the additions saturate.
 *
 * The scratch temps of the stretch must not be touched by the caller's
 * other statements (they start zeroed in both kernels, and the callee's
 * stay inside the callee), except the callee's result, which the caller
 * gets back from the call, and the counter.  Whatever does not match is
 * compiled in full, as before.
 *
 * One pair needs no proof: logp is logp_batch of one row, by the API's
 * definition of both (log p of a row, rows independent).
 */
#include <stdlib.h>
#include <string.h>

#include "cg_context.h"

/* The matching state: a renaming of A's loops, bufs and vals (ids < nids)
 * to B's, one to one.  A is the callee's body, B the caller's stretch. */
typedef struct matcher {
	int nids;
	const void **fwd;            /* by A id: the B counterpart */
	const void **bwd;            /* by B id: the A counterpart */
	int *bound;                  /* the (A id, B id) pairs bound, to undo */
	size_t nbound, bound_cap;
	bool prefix_zero;            /* A reads `prefix` as 0 (B calls it with prefix 0) */
	const ir_buf *counter;       /* B's row counter, or NULL */
	int counter_sets, counter_adds;
	const ir_loop *b_block;      /* B's loop over blocks of rows being matched, or NULL */
} matcher;

static bool bind(matcher *mt, int aid, const void *a, int bid, const void *b)
{
	if (aid < 0 || aid >= mt->nids || bid < 0 || bid >= mt->nids)
		return false;
	if (mt->fwd[aid] || mt->bwd[bid])
		return mt->fwd[aid] == b && mt->bwd[bid] == a;
	if (mt->nbound + 2 > mt->bound_cap) {
		size_t cap = mt->bound_cap ? 2 * mt->bound_cap : 64;
		int *grown = realloc(mt->bound, cap * sizeof *grown);
		if (!grown)
			return false; /* no match: the kernel is compiled in full */
		mt->bound = grown;
		mt->bound_cap = cap;
	}
	mt->bound[mt->nbound++] = aid;
	mt->bound[mt->nbound++] = bid;
	mt->fwd[aid] = b;
	mt->bwd[bid] = a;
	return true;
}

static bool same_idx(matcher *mt, const ir_idx *a, const ir_idx *b);

static bool same_buf(matcher *mt, const ir_buf *a, const ir_buf *b)
{
	if (!a || !b)
		return a == b;
	if (a != b) {
		/* distinct objects: only scratch is renamed, shape for shape */
		if (a->cls != BUF_TEMP || b->cls != BUF_TEMP || a->rank != b->rank || a->size != b->size)
			return false;
		for (int d = 0; d < a->rank && d < IR_MAX_RANK; d++)
			if (a->dims[d] != b->dims[d])
				return false;
	}
	if (b == mt->counter)
		return false;
	return bind(mt, a->id, a, b->id, b);
}

static bool same_loop(matcher *mt, const ir_loop *a, const ir_loop *b)
{
	if (!a || !b)
		return a == b;
	if (a->id >= 0 && a->id < mt->nids && mt->fwd[a->id])
		return mt->fwd[a->id] == b;
	if (a->reverse != b->reverse || a->is_rows != b->is_rows || a->block != b->block ||
	    !same_loop(mt, a->block_of, b->block_of) || !same_idx(mt, a->lo, b->lo) || !same_idx(mt, a->hi, b->hi))
		return false;
	return bind(mt, a->id, a, b->id, b);
}

static bool same_idx(matcher *mt, const ir_idx *a, const ir_idx *b)
{
	if (!a || !b)
		return a == b;
	if (a->kind == IX_PREFIX && mt->prefix_zero)
		return b->kind == IX_CONST && b->u.c == 0;
	if (a->kind != b->kind)
		return false;
	switch (a->kind) {
	case IX_CONST: return a->u.c == b->u.c;
	case IX_LOOP: return same_loop(mt, a->u.loop, b->u.loop);
	case IX_ADD: case IX_SUB: case IX_MUL:
		return same_idx(mt, a->u.bin.a, b->u.bin.a) && same_idx(mt, a->u.bin.b, b->u.bin.b);
	case IX_LOAD:
		if (!same_buf(mt, a->u.load.buf, b->u.load.buf))
			return false;
		for (int i = 0; i < IR_MAX_RANK; i++)
			if (!same_idx(mt, a->u.load.idx[i], b->u.load.idx[i]))
				return false;
		return true;
	case IX_PREFIX: case IX_ROW: return true;
	}
	return false;
}

static bool nonneg(const ir_idx *x);

/* Whether v is `i >= prefix` for an i that is never negative: true when
 * prefix is 0. */
static bool from_prefix_on(const ir_val *v)
{
	if (!v || v->kind != V_OP || v->u.op.op != IR_GE)
		return false;
	const ir_val *i = v->u.op.a[0], *p = v->u.op.a[1];
	bool i_nonneg = i->kind == V_INT ? nonneg(i->u.idx) : i->kind == V_CONST && i->u.c >= 0;
	return i_nonneg && p->kind == V_INT && p->u.idx && p->u.idx->kind == IX_PREFIX;
}

static bool same_val(matcher *mt, const ir_val *a, const ir_val *b)
{
	if (!a || !b)
		return a == b;
	if (a->id >= 0 && a->id < mt->nids && mt->fwd[a->id])
		return mt->fwd[a->id] == b;
	/* prefix 0: `select(i >= prefix, drawn, given)` (lower.c's blend of a
	 * drawn value and the given one) is `drawn` */
	if (mt->prefix_zero && a->kind == V_OP && a->u.op.op == IR_SELECT && from_prefix_on(a->u.op.a[0]))
		return same_val(mt, a->u.op.a[1], b);
	if (a->kind != b->kind)
		return false;
	bool ok = false;
	switch (a->kind) {
	case V_CONST: ok = memcmp(&a->u.c, &b->u.c, sizeof a->u.c) == 0; break;
	case V_READ:
		ok = same_buf(mt, a->u.read.buf, b->u.read.buf);
		for (int i = 0; i < IR_MAX_RANK && ok; i++)
			ok = same_idx(mt, a->u.read.idx[i], b->u.read.idx[i]);
		break;
	case V_OP:
		ok = a->u.op.op == b->u.op.op;
		for (int i = 0; i < 3 && ok; i++)
			ok = same_val(mt, a->u.op.a[i], b->u.op.a[i]);
		break;
	case V_INT: ok = same_idx(mt, a->u.idx, b->u.idx); break;
	case V_DRAW:
		ok = a->u.draw.kind == b->u.draw.kind && a->u.draw.stream == b->u.draw.stream &&
		     a->u.draw.c == b->u.draw.c && same_idx(mt, a->u.draw.a, b->u.draw.a) &&
		     same_idx(mt, a->u.draw.b, b->u.draw.b) && same_idx(mt, a->u.draw.ci, b->u.draw.ci) &&
		     (a->u.draw.arg ? b->u.draw.arg && same_val(mt, a->u.draw.arg, b->u.draw.arg) : !b->u.draw.arg);
		break;
	case V_STOP: ok = same_val(mt, a->u.stop, b->u.stop); break;
	}
	return ok && bind(mt, a->id, a, b->id, b);
}

static bool is_const(const ir_val *v, double c)
{
	return v && v->kind == V_CONST && v->u.c == c;
}

/* `t = 0` (kind S_SET) or `t += 1` (S_ADD) of a scalar temp t, or NULL. */
static const ir_buf *counter_of(const ir_stmt *s, ir_stmt_kind kind)
{
	if (!s || s->kind != kind || s->nloops != 0 || s->nassigns != 1)
		return NULL;
	const ir_assign *a = &s->assigns[0];
	if (!a->buf || a->buf->cls != BUF_TEMP || a->buf->rank != 0 || !is_const(a->val, kind == S_SET ? 0.0 : 1.0))
		return NULL;
	return a->buf;
}

/* Whether s is a statement of B's counter (which must not be renamed). */
static bool counter_stmt(const matcher *mt, const ir_stmt *s, ir_stmt_kind kind)
{
	return mt->counter && counter_of(s, kind) == mt->counter;
}

static bool push(ptrvec *v, void *item)
{
	if (v->len == v->cap) {
		size_t cap = v->cap ? 2 * v->cap : 16;
		void **items = realloc(v->items, cap * sizeof *items);
		if (!items)
			return false;
		v->items = items;
		v->cap = cap;
	}
	v->items[v->len++] = item;
	return true;
}

/* Whether the index is never negative: constants, loop variables over
 * ranges that start at such an index, and their sums and products. */
static bool nonneg(const ir_idx *x)
{
	if (!x)
		return false;
	switch (x->kind) {
	case IX_CONST: return x->u.c >= 0;
	case IX_LOOP: return x->u.loop && !x->u.loop->is_rows && nonneg(x->u.loop->lo);
	case IX_ADD: case IX_MUL: return nonneg(x->u.bin.a) && nonneg(x->u.bin.b);
	default: return false;
	}
}

/* A's statements, with `if (i >= prefix)` opened when prefix is 0 and
 * i >= 0: a flat list to compare with B's, element for element. */
static void open_ifs(const matcher *mt, const ir_block *b, ptrvec *out, bool *oom)
{
	for (size_t i = 0; i < b->stmts.len && !*oom; i++) {
		ir_stmt *s = b->stmts.items[i];
		if (mt->prefix_zero && s && s->kind == S_IF_GE && s->b && s->b->kind == IX_PREFIX && nonneg(s->a)) {
			open_ifs(mt, &s->body, out, oom);
			continue;
		}
		if (!push(out, s))
			*oom = true;
	}
}

/* Where a block is: the stretch itself, the body of a loop over blocks of
 * rows that is one of its statements, the body of a loop that runs exactly
 * once per row (a plain rows loop of the stretch, or a rows loop over the
 * rows of the block in such a block body), or deeper. */
typedef enum where { TOP, BLOCK_BODY, ROWS_BODY, INNER } where;

/* Whether s is a loop over the rows of block loop bl (whose body then runs
 * once per row of the block, so once per row over all the blocks). */
static bool rows_of(const ir_stmt *s, const ir_loop *bl)
{
	return bl && s && s->kind == S_FOR && s->loop && s->loop->is_rows && s->loop->block_of == bl;
}

/* Whether B's statement s, in the body of B's block loop, is a rows loop
 * over the block that only counts rows: `for row in rows of block
 * { count += 1 }`, which the callee need not have. */
static bool counter_loop(const matcher *mt, const ir_stmt *s)
{
	return rows_of(s, mt->b_block) && s->body.stmts.len == 1 && counter_stmt(mt, s->body.stmts.items[0], S_ADD);
}

static bool same_block(matcher *mt, const ir_block *a, const ir_block *b, where w);

static bool same_stmt(matcher *mt, const ir_stmt *a, const ir_stmt *b, where w)
{
	if (!a || !b || a->kind != b->kind)
		return false;
	switch (a->kind) {
	case S_SET: case S_SUM: case S_MAX: case S_ADD:
		if (a->nloops != b->nloops || a->nfree != b->nfree || a->nassigns != b->nassigns)
			return false;
		for (int i = 0; i < a->nloops; i++)
			if (!same_loop(mt, a->loops[i], b->loops[i]))
				return false;
		for (int j = 0; j < a->nassigns; j++) {
			const ir_assign *x = &a->assigns[j], *y = &b->assigns[j];
			if (!same_buf(mt, x->buf, y->buf) || !same_val(mt, x->val, y->val))
				return false;
			for (int r = 0; r < IR_MAX_RANK; r++)
				if (!same_idx(mt, x->idx[r], y->idx[r]))
					return false;
		}
		return true;
	case S_FOR: {
		if (a->reverse != b->reverse || !same_loop(mt, a->loop, b->loop))
			return false;
		where inner = INNER;
		if (w == TOP && a->loop && a->loop->is_rows && !a->loop->block_of)
			inner = a->loop->block > 0 ? BLOCK_BODY : ROWS_BODY;
		else if (w == BLOCK_BODY && rows_of(b, mt->b_block))
			inner = ROWS_BODY;
		const ir_loop *outer = mt->b_block;
		if (inner == BLOCK_BODY)
			mt->b_block = b->loop;
		bool ok = same_block(mt, &a->body, &b->body, inner);
		mt->b_block = outer;
		return ok;
	}
	case S_IF_GE:
		return same_idx(mt, a->a, b->a) && same_idx(mt, a->b, b->b) && same_block(mt, &a->body, &b->body, INNER);
	}
	return false;
}

/* B's statement j of a block at w, when it is one of the counter's alone:
 * counts the counter's `+= 1` it holds. */
static bool skip_counter(matcher *mt, const ir_block *b, size_t j, where w)
{
	if (j >= b->stmts.len)
		return false;
	const ir_stmt *s = b->stmts.items[j];
	if ((w == ROWS_BODY && j == 0 && counter_stmt(mt, s, S_ADD)) || (w == BLOCK_BODY && counter_loop(mt, s))) {
		mt->counter_adds++;
		return true;
	}
	return false;
}

/* A's statements against B's, in order; the body of a loop that runs once
 * per row may start with the counter's `+= 1`, and a block body may hold
 * rows loops that only count. */
static bool same_block(matcher *mt, const ir_block *a, const ir_block *b, where w)
{
	ptrvec as = { 0 };
	bool oom = false;
	open_ifs(mt, a, &as, &oom);
	size_t j = 0;
	bool ok = !oom;
	for (size_t i = 0; ok && i < as.len; i++, j++) {
		while (skip_counter(mt, b, j, w))
			j++;
		ok = j < b->stmts.len && same_stmt(mt, as.items[i], b->stmts.items[j], w);
	}
	while (ok && skip_counter(mt, b, j, w))
		j++;
	ok = ok && j == b->stmts.len;
	free(as.items);
	return ok;
}

/* Marks in `seen` (by buf id) every TEMP a statement list touches. */
static void mark_idx(const ir_idx *x, bool *seen, int nids);

static void mark_buf(const ir_buf *b, bool *seen, int nids)
{
	if (b && b->cls == BUF_TEMP && b->id >= 0 && b->id < nids)
		seen[b->id] = true;
}

static void mark_idx(const ir_idx *x, bool *seen, int nids)
{
	if (!x)
		return;
	if (x->kind == IX_ADD || x->kind == IX_SUB || x->kind == IX_MUL) {
		mark_idx(x->u.bin.a, seen, nids);
		mark_idx(x->u.bin.b, seen, nids);
	} else if (x->kind == IX_LOAD) {
		mark_buf(x->u.load.buf, seen, nids);
		for (int i = 0; i < IR_MAX_RANK; i++)
			mark_idx(x->u.load.idx[i], seen, nids);
	}
}

static void mark_val(const ir_val *v, bool *seen, bool *done, int nids)
{
	if (!v)
		return;
	if (v->id >= 0 && v->id < nids) {
		if (done[v->id])
			return;
		done[v->id] = true;
	}
	switch (v->kind) {
	case V_READ:
		mark_buf(v->u.read.buf, seen, nids);
		for (int i = 0; i < IR_MAX_RANK; i++)
			mark_idx(v->u.read.idx[i], seen, nids);
		break;
	case V_OP:
		for (int i = 0; i < 3; i++)
			mark_val(v->u.op.a[i], seen, done, nids);
		break;
	case V_INT: mark_idx(v->u.idx, seen, nids); break;
	case V_DRAW:
		mark_idx(v->u.draw.a, seen, nids);
		mark_idx(v->u.draw.b, seen, nids);
		mark_idx(v->u.draw.ci, seen, nids);
		mark_val(v->u.draw.arg, seen, done, nids);
		break;
	case V_STOP: mark_val(v->u.stop, seen, done, nids); break;
	case V_CONST: break;
	}
}

static void mark_stmts(ir_stmt *const *s, size_t n, bool *seen, bool *done, int nids)
{
	for (size_t i = 0; i < n; i++) {
		const ir_stmt *st = s[i];
		if (!st)
			continue;
		for (int j = 0; j < st->nloops; j++)
			if (st->loops[j]) {
				mark_idx(st->loops[j]->lo, seen, nids);
				mark_idx(st->loops[j]->hi, seen, nids);
			}
		for (int j = 0; j < st->nassigns; j++) {
			mark_buf(st->assigns[j].buf, seen, nids);
			for (int r = 0; r < IR_MAX_RANK; r++)
				mark_idx(st->assigns[j].idx[r], seen, nids);
			mark_val(st->assigns[j].val, seen, done, nids);
		}
		if (st->loop) {
			mark_idx(st->loop->lo, seen, nids);
			mark_idx(st->loop->hi, seen, nids);
		}
		mark_idx(st->a, seen, nids);
		mark_idx(st->b, seen, nids);
		mark_stmts((ir_stmt *const *)st->body.stmts.items, st->body.stmts.len, seen, done, nids);
	}
}

/* Undoes the bindings of a try: the tables are clean for the next one. */
static void unbind_all(matcher *mt)
{
	for (size_t i = 0; i < mt->nbound; i += 2) {
		mt->fwd[mt->bound[i]] = NULL;
		mt->bwd[mt->bound[i + 1]] = NULL;
	}
	mt->nbound = 0;
}

/* Whether B's top-level statements [from, to) do what the callee's body
 * does, with `counter` (or NULL) as B's row counter.  On success fills p.
 * mt has clean renaming tables (cg_plan_call makes them once for all its
 * tries: an objective that zeroes the gradients of 100,000 params one by
 * one has as many stretches to try, and tables as large for each were a
 * quadratic cost) and is left with clean ones. */
static bool match_at(cg_ctx *c, matcher *tables, const ir_block *body, size_t from, size_t to, const ir_kernel *callee,
                     bool prefix_zero, const ir_buf *counter, cg_call_plan *p)
{
	int nids = c->nids;
	matcher mt = *tables;
	mt.prefix_zero = prefix_zero;
	mt.counter = counter;
	bool ok = mt.fwd && mt.bwd;
	/* the stretch without the counter's `= 0` */
	ptrvec bs = { 0 };
	for (size_t i = from; ok && i < to; i++) {
		ir_stmt *s = body->stmts.items[i];
		if (counter_stmt(&mt, s, S_SET))
			mt.counter_sets++;
		else
			ok = push(&bs, s);
	}
	ir_block stretch = { bs };
	ok = ok && same_block(&mt, &callee->body, &stretch, TOP);
	/* a counter is all or nothing: set once, then added once per row */
	if (ok && counter)
		ok = mt.counter_sets == 1 && mt.counter_adds == 1;
	/* the callee's result comes back into its counterpart */
	const ir_buf *res = NULL;
	if (ok && callee->result) {
		int id = callee->result->id;
		res = id >= 0 && id < nids ? mt.fwd[id] : NULL;
		ok = res && res->cls == BUF_TEMP && res->rank == 0 && callee->result->cls == BUF_TEMP;
	}
	/* the stretch's scratch is its own: B's other statements touch only the
	 * result and the counter, and those only after the stretch */
	bool *in = NULL, *before = NULL, *after = NULL, *done = NULL;
	if (ok) {
		in = calloc((size_t)nids, sizeof *in);
		before = calloc((size_t)nids, sizeof *before);
		after = calloc((size_t)nids, sizeof *after);
		done = calloc((size_t)nids, sizeof *done);
		ok = in && before && after && done;
	}
	if (ok) {
		ir_stmt *const *st = (ir_stmt *const *)body->stmts.items;
		mark_stmts(st + from, to - from, in, done, nids);
		memset(done, 0, (size_t)nids * sizeof *done);
		mark_stmts(st, from, before, done, nids);
		memset(done, 0, (size_t)nids * sizeof *done);
		mark_stmts(st + to, body->stmts.len - to, after, done, nids);
		for (int i = 0; ok && i < nids; i++) {
			bool passed = (res && res->id == i) || (counter && counter->id == i);
			if (in[i] && (before[i] || (after[i] && !passed)))
				ok = false;
		}
	}
	free(in);
	free(before);
	free(after);
	free(done);
	if (ok) {
		p->callee = callee;
		p->from = from;
		p->to = to;
		p->result = res;
		p->counter = counter;
		p->prefix_zero = prefix_zero;
	}
	free(bs.items);
	unbind_all(&mt);
	tables->bound = mt.bound;
	tables->bound_cap = mt.bound_cap;
	return ok;
}

/* The scalar temp that B's statements [from, to) count rows in, if any:
 * `t += 1` first in the body of a plain rows loop, or of a rows loop over
 * the block of a loop over blocks of rows.  match_at checks the rest. */
static const ir_buf *row_counter(const ir_block *body, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		const ir_stmt *s = body->stmts.items[i];
		if (!s || s->kind != S_FOR || !s->loop || !s->loop->is_rows || s->loop->block_of)
			continue;
		if (!s->loop->block)
			return s->body.stmts.len > 0 ? counter_of(s->body.stmts.items[0], S_ADD) : NULL;
		for (size_t j = 0; j < s->body.stmts.len; j++) {
			const ir_stmt *r = s->body.stmts.items[j];
			const ir_buf *t = rows_of(r, s->loop) && r->body.stmts.len > 0
			                  ? counter_of(r->body.stmts.items[0], S_ADD) : NULL;
			if (t)
				return t;
		}
	}
	return NULL;
}

/* Which kernel each kind may call, and how. */
static const struct {
	ir_kernel_kind caller, callee;
	bool whole;          /* the caller's whole body, else a stretch of it */
	bool prefix_zero;
} calls[] = {
	{ KER_SAMPLE, KER_COMPLETE, true, true },
	{ KER_OBJECTIVE, KER_LOGLIK_GRAD, false, false },
};

bool cg_plan_call(cg_ctx *c, const ir_kernel *k, cg_call_plan *p)
{
	memset(p, 0, sizeof *p);
	/* logp is logp_batch of one row by definition (docs/api.md: both give
	 * log p of a row; logp_batch's rows are independent), not by a proof:
	 * the two are built differently (blocks of rows), so only the API says
	 * they agree, up to the association of reassociable sums */
	const ir_kernel *batch = c->m->kernels[KER_LOGP_BATCH];
	if (k->kind == KER_LOGP && batch && batch != k && c->kernel_fn[KER_LOGP_BATCH] && k->result &&
	    k->result->cls == BUF_TEMP && k->result->rank == 0) {
		p->callee = batch;
		p->to = k->body.stmts.len;
		p->result = k->result;
		p->one_row = true;
		return true;
	}
	matcher tables = { .nids = c->nids };
	bool found = false;
	for (size_t t = 0; t < sizeof calls / sizeof calls[0] && !found; t++) {
		const ir_kernel *callee = c->m->kernels[calls[t].callee];
		if (calls[t].caller != k->kind || !callee || !c->kernel_fn[callee->kind] || callee == k)
			continue;
		if (!tables.fwd) {
			tables.fwd = calloc((size_t)c->nids, sizeof *tables.fwd);
			tables.bwd = calloc((size_t)c->nids, sizeof *tables.bwd);
		}
		const ir_block *body = &k->body;
		size_t len = body->stmts.len, n = callee->body.stmts.len;
		if (calls[t].whole) {
			found = match_at(c, &tables, body, 0, len, callee, calls[t].prefix_zero, NULL, p);
			continue;
		}
		/* a stretch of n statements, or n + 1 with a counter's `= 0` */
		for (size_t from = 0; from + n <= len && !found; from++)
			for (size_t to = from + n; to <= from + n + 1 && to <= len && !found; to++) {
				const ir_buf *counter = to > from + n ? row_counter(body, from, to) : NULL;
				found = (to == from + n || counter) &&
				        match_at(c, &tables, body, from, to, callee, calls[t].prefix_zero, counter, p);
			}
	}
	free(tables.fwd);
	free(tables.bwd);
	free(tables.bound);
	return found;
}
