/* ad.c -- reverse-mode differentiation of the model IR.
 *
 * Every statement writes target[idx] from one scalar expression.  Its
 * adjoint statement runs over the same loops and, for each read of a
 * differentiated buffer in the expression, adds the target's adjoint times
 * the partial derivative into that buffer's adjoint: the chain rule in
 * index notation.  Params' adjoints are the kernel's grad argument.
 *
 * Positions are visited backwards.  A prefix-scan accumulator's adjoint is
 * never reset inside its segment, so at position k it holds the sum of the
 * adjoints of all later positions: the adjoint of a prefix scan is a suffix
 * scan.  The forward sweep stores each accumulator per position (the tape:
 * npos x its size, the size of what the forward pass touches anyway); the
 * backward sweep restores it and recomputes the position's values, so no
 * batch x n x H tensor is ever materialized.
 *
 * When a scan's update reads only params, data and row-stage values (NADE:
 * acc += W[:, k] * x[k]), its adjoint needs no tape and no backward sweep:
 * the update at k receives the suffix sum T - P_k, T the total of all
 * positions' adjoints and P_k those up to k, and adjoints are linear in the
 * seed, so one forward sweep propagates -P_k at each position and a second
 * loop adds what T propagates once T is known (forward_scan_adjoints).
 */
#include <string.h>

#include "lower_internal.h"

typedef struct adctx {
	ir_module *m;
	lowered *low;
	ptrvec active;        /* TEMP buffers that depend on theta */
	bool negate_seeds;    /* reverse_stmt propagates minus the targets' adjoints */
} adctx;

/* ------------------------------------------------------------ activity */

static bool is_active(adctx *c, const ir_buf *b)
{
	if (b->cls == BUF_THETA)
		return true;
	if (b->cls != BUF_TEMP)
		return false;
	for (size_t i = 0; i < c->active.len; i++)
		if (c->active.items[i] == b)
			return true;
	return false;
}

static bool val_active(adctx *c, const ir_val *v)
{
	switch (v->kind) {
	case V_READ: return is_active(c, v->u.read.buf);
	case V_OP:
		for (int i = 0; i < ir_op_arity[v->u.op.op]; i++)
			if (val_active(c, v->u.op.a[i]))
				return true;
		return false;
	default: return false; /* constants, draws (a Poisson count is flat in its rate), stopped values */
	}
}

/* Marks the temps a block writes from active values; returns whether any
 * new one was found. */
static bool activity_block(adctx *c, const ir_block *b)
{
	bool changed = false;
	for (size_t i = 0; i < b->stmts.len; i++) {
		const ir_stmt *s = b->stmts.items[i];
		if (s->kind == S_FOR || s->kind == S_IF_GE) {
			changed |= activity_block(c, &s->body);
			continue;
		}
		for (int a = 0; a < s->nassigns; a++) {
			ir_buf *t = s->assigns[a].buf;
			if (t->cls == BUF_TEMP && !is_active(c, t) && val_active(c, s->assigns[a].val)) {
				ptrvec_push(c->m->arena, &c->active, t);
				changed = true;
			}
		}
	}
	return changed;
}

static void find_active(adctx *c)
{
	bool changed = true;
	while (changed) {
		/* every block is visited each round: no short-circuit */
		changed = false;
		changed |= activity_block(c, &c->low->theta);
		changed |= activity_block(c, &c->low->row);
		changed |= activity_block(c, &c->low->penalty);
		for (int s = 0; s < c->low->nsegs; s++) {
			segment *g = &c->low->segs[s];
			changed |= activity_block(c, &g->pre);
			changed |= activity_block(c, &g->pos);
			changed |= activity_block(c, &g->update);
		}
	}
}

/* The adjoint buffer of a differentiated buffer. */
static ir_buf *adjoint_of(adctx *c, ir_buf *b)
{
	if (b->adjoint)
		return b->adjoint;
	if (b->cls == BUF_THETA) {
		b->adjoint = ir_buf_new(c->m, arena_printf(c->m->arena, "d%s", b->name), BUF_GRAD, b->rank, b->dims);
		b->adjoint->offset = b->offset;
	} else {
		b->adjoint = ir_buf_new(c->m, arena_printf(c->m->arena, "d%s", b->name), BUF_TEMP, b->rank, b->dims);
	}
	return b->adjoint;
}

/* --------------------------------------------------- scalar derivatives */

typedef struct node_list {
	ir_val **v;
	ir_val **adj;
	int n, cap;
} node_list;

static int node_find(node_list *l, const ir_val *v)
{
	for (int i = 0; i < l->n; i++)
		if (l->v[i] == v)
			return i;
	return -1;
}

/* Post-order: every node after its operands. */
static void topo(arena *a, node_list *l, ir_val *v)
{
	if (node_find(l, v) >= 0)
		return;
	if (v->kind == V_OP)
		for (int i = 0; i < ir_op_arity[v->u.op.op]; i++)
			topo(a, l, v->u.op.a[i]);
	if (l->n == l->cap) {
		int cap = l->cap ? l->cap * 2 : 16;
		ir_val **nv = arena_alloc(a, (size_t)cap * sizeof *nv), **na = arena_alloc(a, (size_t)cap * sizeof *na);
		if (l->n) {
			memcpy(nv, l->v, (size_t)l->n * sizeof *nv);
			memcpy(na, l->adj, (size_t)l->n * sizeof *na);
		}
		l->v = nv;
		l->adj = na;
		l->cap = cap;
	}
	l->v[l->n] = v;
	l->adj[l->n++] = NULL;
}

static void add_adj(ir_module *m, node_list *l, ir_val *v, ir_val *d)
{
	int i = node_find(l, v);
	l->adj[i] = l->adj[i] ? ir_op(m, IR_ADD, l->adj[i], d, NULL) : d;
}

#define C(x) ir_const(m, (x))
#define OP1(o, a) ir_op(m, IR_##o, (a), NULL, NULL)
#define OP2(o, a, b) ir_op(m, IR_##o, (a), (b), NULL)

/* Propagates the adjoint `g` of node n to its operands.  `nv` is n's value
 * where the partials need it (sigmoid' = n (1 - n), ...): n itself, or,
 * for the root of a statement, a read of the value it stored. */
static void local_partials(ir_module *m, node_list *l, ir_val *n, ir_val *nv, ir_val *g)
{
	ir_val *x = n->u.op.a[0], *y = n->u.op.a[1], *z = n->u.op.a[2];
	switch (n->u.op.op) {
	case IR_NEG: add_adj(m, l, x, OP1(NEG, g)); break;
	case IR_EXP: add_adj(m, l, x, OP2(MUL, g, nv)); break;
	case IR_LOG: add_adj(m, l, x, OP2(DIV, g, x)); break;
	case IR_LOG1P: add_adj(m, l, x, OP2(DIV, g, OP2(ADD, C(1), x))); break;
	case IR_SQRT: add_adj(m, l, x, OP2(DIV, OP2(MUL, C(0.5), g), nv)); break;
	/* sign(x) g, 0 at 0: the subgradient that leaves a param at 0 where
	 * l1 is its only term (structurally unused entries get gradient 0) */
	case IR_ABS:
		add_adj(m, l, x, ir_op(m, IR_SELECT, OP2(LT, x, C(0)), OP1(NEG, g),
		                       ir_op(m, IR_SELECT, OP2(GT, x, C(0)), g, C(0))));
		break;
	case IR_SQUARE: add_adj(m, l, x, OP2(MUL, g, OP2(MUL, C(2), x))); break;
	case IR_SIGMOID: add_adj(m, l, x, OP2(MUL, g, OP2(MUL, nv, OP2(SUB, C(1), nv)))); break;
	case IR_TANH: add_adj(m, l, x, OP2(MUL, g, OP2(SUB, C(1), OP1(SQUARE, nv)))); break;
	case IR_RELU: add_adj(m, l, x, ir_op(m, IR_SELECT, OP2(GT, x, C(0)), g, C(0))); break;
	case IR_SOFTPLUS: add_adj(m, l, x, OP2(MUL, g, OP1(SIGMOID, x))); break;
	case IR_LOG_SIGMOID: add_adj(m, l, x, OP2(MUL, g, OP1(SIGMOID, OP1(NEG, x)))); break;
	case IR_ADD: add_adj(m, l, x, g); add_adj(m, l, y, g); break;
	case IR_SUB: add_adj(m, l, x, g); add_adj(m, l, y, OP1(NEG, g)); break;
	case IR_MUL: add_adj(m, l, x, OP2(MUL, g, y)); add_adj(m, l, y, OP2(MUL, g, x)); break;
	case IR_DIV: add_adj(m, l, x, OP2(DIV, g, y)); add_adj(m, l, y, OP1(NEG, OP2(DIV, OP2(MUL, g, nv), y))); break;
	case IR_POW:
		add_adj(m, l, x, OP2(MUL, g, OP2(MUL, y, OP2(POW, x, OP2(SUB, y, C(1))))));
		if (y->kind != V_CONST)
			add_adj(m, l, y, OP2(MUL, g, OP2(MUL, nv, OP1(LOG, x))));
		break;
	case IR_MAX2:
		add_adj(m, l, x, ir_op(m, IR_SELECT, OP2(GE, x, y), g, C(0)));
		add_adj(m, l, y, ir_op(m, IR_SELECT, OP2(GE, x, y), C(0), g));
		break;
	case IR_MIN2:
		add_adj(m, l, x, ir_op(m, IR_SELECT, OP2(LE, x, y), g, C(0)));
		add_adj(m, l, y, ir_op(m, IR_SELECT, OP2(LE, x, y), C(0), g));
		break;
	case IR_SELECT:
		add_adj(m, l, y, ir_op(m, IR_SELECT, x, g, C(0)));
		add_adj(m, l, z, ir_op(m, IR_SELECT, x, C(0), g));
		break;
	default: /* comparisons and logic: piecewise constant */
		break;
	}
}

/* The adjoint statement of `s` (see the file comment): appended to out. */
static void reverse_stmt(adctx *c, const ir_stmt *s, ir_block *out, const ir_buf *loss, ir_val *loss_seed)
{
	ir_module *m = c->m;
	int cap = 16, nas = 0;
	ir_assign *as = arena_alloc(m->arena, (size_t)cap * sizeof *as);
	for (int a = 0; a < s->nassigns; a++) {
		const ir_assign *t = &s->assigns[a];
		ir_val *seed;
		if (t->buf == loss)
			seed = loss_seed;
		else if (is_active(c, t->buf) && t->buf->cls == BUF_TEMP)
			seed = ir_read(m, adjoint_of(c, t->buf), (ir_idx **)t->idx);
		else
			continue;
		if (c->negate_seeds)
			seed = ir_op(m, IR_NEG, seed, NULL, NULL);
		if (!val_active(c, t->val))
			continue;
		if (s->kind == S_MAX) /* the derivative goes to the maximal element */
			seed = ir_op(m, IR_SELECT, OP2(EQ, t->val, ir_read(m, t->buf, (ir_idx **)t->idx)), seed, C(0));
		node_list l = {0};
		topo(m->arena, &l, t->val);
		l.adj[l.n - 1] = seed;
		/* a plain assignment stored its value: the partials read it back
		 * instead of recomputing it (one exp fewer per sigmoid) */
		ir_val *stored = s->kind == S_SET && t->buf->cls == BUF_TEMP ? ir_read(m, t->buf, (ir_idx **)t->idx) : NULL;
		for (int i = l.n - 1; i >= 0; i--) {
			ir_val *v = l.v[i];
			if (!l.adj[i])
				continue;
			if (v->kind == V_OP)
				local_partials(m, &l, v, v == t->val && stored ? stored : v, l.adj[i]);
			else if (v->kind == V_READ && is_active(c, v->u.read.buf)) {
				if (nas == cap) {
					ir_assign *bigger = arena_alloc(m->arena, (size_t)cap * 2 * sizeof *as);
					memcpy(bigger, as, (size_t)cap * sizeof *as);
					as = bigger;
					cap *= 2;
				}
				as[nas].buf = adjoint_of(c, v->u.read.buf);
				memcpy(as[nas].idx, v->u.read.idx, sizeof as[nas].idx);
				as[nas].val = l.adj[i];
				nas++;
			}
		}
	}
	if (!nas)
		return;
	ir_stmt *r = ir_stmt_new(m, S_ADD);
	r->loops = s->loops;
	r->nloops = s->nloops;
	r->nfree = s->nloops;
	r->assigns = as;
	r->nassigns = nas;
	ir_block_push(m, out, r);
}

static void reverse_block(adctx *c, const ir_block *b, ir_block *out, const ir_buf *loss, ir_val *seed)
{
	for (size_t i = b->stmts.len; i-- > 0;)
		reverse_stmt(c, b->stmts.items[i], out, loss, seed);
}

/* Zeroes the adjoints of the active temps a block writes. */
static void zero_adjoints(adctx *c, const ir_block *b, ir_block *out)
{
	ir_module *m = c->m;
	for (size_t i = 0; i < b->stmts.len; i++) {
		const ir_stmt *s = b->stmts.items[i];
		for (int a = 0; a < s->nassigns; a++) {
			ir_buf *t = s->assigns[a].buf;
			if (t->cls == BUF_TEMP && is_active(c, t))
				ir_block_push(m, out, ir_stmt_fill(m, adjoint_of(c, t), C(0)));
		}
	}
}

/* ------------------------------------------------------------ kernels */

/* Whether v reads a buffer of `bufs`. */
static bool reads_any(const ir_val *v, const ptrvec *bufs)
{
	switch (v->kind) {
	case V_READ:
		for (size_t i = 0; i < bufs->len; i++)
			if (bufs->items[i] == v->u.read.buf)
				return true;
		return false;
	case V_OP:
		for (int i = 0; i < ir_op_arity[v->u.op.op]; i++)
			if (reads_any(v->u.op.a[i], bufs))
				return true;
		return false;
	case V_STOP: return reads_any(v->u.stop, bufs);
	case V_DRAW: return v->u.draw.arg && reads_any(v->u.draw.arg, bufs);
	default: return false;
	}
}

/* The buffers statement s assigns (not those of a body it holds). */
static void targets_of(ir_module *m, const ir_stmt *s, ptrvec *out)
{
	for (int a = 0; a < s->nassigns; a++)
		ptrvec_push(m->arena, out, s->assigns[a].buf);
}

/* The buffers a block's statements assign, bodies included. */
static void written_by(ir_module *m, const ir_block *b, ptrvec *out)
{
	for (size_t i = 0; i < b->stmts.len; i++) {
		const ir_stmt *s = b->stmts.items[i];
		if (s->kind == S_FOR || s->kind == S_IF_GE)
			written_by(m, &s->body, out);
		targets_of(m, s, out);
	}
}

/* The statements of `pos` that the scan updates need, in order. */
static void needed_for_updates(ir_module *m, const segment *g, ir_block *out)
{
	size_t n = g->pos.stmts.len;
	bool *need = arena_alloc(m->arena, n + 1);
	ptrvec users = {0};
	for (size_t i = 0; i < g->update.stmts.len; i++)
		ptrvec_push(m->arena, &users, g->update.stmts.items[i]);
	for (size_t i = n; i-- > 0;) {
		const ir_stmt *s = g->pos.stmts.items[i];
		ptrvec writes = {0};
		targets_of(m, s, &writes);
		for (size_t u = 0; u < users.len && !need[i]; u++) {
			const ir_stmt *us = users.items[u];
			for (int a = 0; a < us->nassigns; a++)
				if (reads_any(us->assigns[a].val, &writes))
					need[i] = true;
		}
		if (need[i])
			ptrvec_push(m->arena, &users, (void *)s);
	}
	for (size_t i = 0; i < n; i++)
		if (need[i])
			ir_block_push(m, out, g->pos.stmts.items[i]);
}

static bool block_reads_any(const ir_block *b, const ptrvec *bufs)
{
	for (size_t i = 0; i < b->stmts.len; i++) {
		const ir_stmt *s = b->stmts.items[i];
		if ((s->kind == S_FOR || s->kind == S_IF_GE) && block_reads_any(&s->body, bufs))
			return true;
		for (int a = 0; a < s->nassigns; a++)
			if (reads_any(s->assigns[a].val, bufs))
				return true;
	}
	return false;
}

/* Whether the scans of every segment can be differentiated forward (file
 * comment): their updates read nothing a position or a scan computes, so
 * the adjoint the update at k propagates depends on k, the row and the
 * params only, and linearly on the seed. */
static bool forward_scan_adjoints(adctx *c)
{
	ir_module *m = c->m;
	ptrvec per_pos = {0};
	for (int s = 0; s < c->low->nsegs; s++) {
		segment *g = &c->low->segs[s];
		written_by(m, &g->pre, &per_pos);
		written_by(m, &g->pos, &per_pos);
		written_by(m, &g->update, &per_pos);
	}
	for (int s = 0; s < c->low->nsegs; s++)
		if (block_reads_any(&c->low->segs[s].update, &per_pos))
			return false;
	return true;
}

/* The most reals of per-row state a gradient kernel keeps for a block of rows. */
#define GRAD_BLOCK_MAX_REALS ((int64_t)1 << 15)

/* acc <-> tape[k]: copies between an accumulator and its slot on the tape. */
static ir_stmt *tape_copy(ir_module *m, ir_buf *acc, ir_buf *tape, ir_loop *k, bool store)
{
	ir_loop *loops[IR_MAX_RANK];
	ir_idx *idx[IR_MAX_RANK] = {0}, *tidx[IR_MAX_RANK] = {0};
	tidx[0] = ir_idx_loop(m, k);
	for (int d = 0; d < acc->rank; d++) {
		loops[d] = ir_loop_new(m, "t", ir_idx_const(m, 0), ir_idx_const(m, acc->dims[d]));
		idx[d] = tidx[d + 1] = ir_idx_loop(m, loops[d]);
	}
	if (store)
		return ir_assign_stmt(m, S_SET, loops, acc->rank, acc->rank, tape, tidx, ir_read(m, acc, idx));
	return ir_assign_stmt(m, S_SET, loops, acc->rank, acc->rank, acc, idx, ir_read(m, tape, tidx));
}

/* A segment's positions in order, with the adjoints of forward_scan_adjoints:
 * at k the position's values, log p and their adjoints (adding the
 * position's share into the scans' adjoints, which so hold P_k), the update's
 * adjoint seeded with -P_k, the update; then, the scans' adjoints holding T,
 * the updates' adjoints again over all positions. */
static void forward_sweep(adctx *c, segment *g, ir_block *out, ir_buf *lp)
{
	ir_module *m = c->m;
	ir_block_append(m, out, &g->pre);
	ir_stmt *f = ir_for(m, g->k);
	ir_block_append(m, &f->body, &g->pos);
	ir_stmt *add = ir_assign_stmt(m, S_ADD, NULL, 0, 0, lp, (ir_idx *[]){NULL}, g->logp);
	ir_block_push(m, &f->body, add);
	zero_adjoints(c, &g->pos, &f->body);
	reverse_stmt(c, add, &f->body, lp, C(1));
	reverse_block(c, &g->pos, &f->body, lp, C(1));
	ir_block minus = {0};
	c->negate_seeds = true;
	reverse_block(c, &g->update, &minus, lp, C(1));
	c->negate_seeds = false;
	ir_block_push(m, &f->body, segment_updates(m, g, &minus));
	ir_block_push(m, &f->body, segment_updates(m, g, &g->update));
	ir_block_push(m, out, f);

	ir_stmt *t = ir_for(m, g->k);
	ir_block total = {0};
	reverse_block(c, &g->update, &total, lp, C(1));
	ir_block_push(m, &t->body, segment_updates(m, g, &total));
	ir_block_push(m, out, t);
}

/* The loglik part: for each row, a forward sweep that only advances (and
 * tapes) the scans, then a backward sweep over positions that recomputes
 * each position, adds its log p to lp and propagates adjoints.  Gradients
 * are ADDED into grad; `count` (if given) counts the rows. */
static void emit_loglik_grad(adctx *c, ir_block *body, ir_buf *lp, ir_buf *count)
{
	ir_module *m = c->m;
	lowered *low = c->low;
	ir_block_append(m, body, &low->theta);
	zero_adjoints(c, &low->theta, body);
	ir_loop *rl = ir_loop_new(m, "row", ir_idx_const(m, 0), ir_idx_const(m, 0));
	rl->is_rows = true;
	ir_stmt *rows = ir_for(m, rl);
	if (count)
		ir_block_push(m, &rows->body, ir_assign_stmt(m, S_ADD, NULL, 0, 0, count, (ir_idx *[]){NULL}, C(1)));
	ir_block_append(m, &rows->body, &low->row);
	zero_adjoints(c, &low->row, &rows->body);

	/* forward sweeps: only the scans, taped per position */
	bool forward = forward_scan_adjoints(c);
	ptrvec *tapes = arena_alloc(m->arena, (size_t)(low->nsegs + 1) * sizeof *tapes);
	for (int s = 0; s < low->nsegs; s++) {
		segment *g = &low->segs[s];
		if (!g->accs.len || forward)
			continue;
		ir_block_append(m, &rows->body, &g->pre);
		ir_stmt *f = ir_for(m, g->k);
		for (size_t a = 0; a < g->accs.len; a++) {
			ir_buf *acc = g->accs.items[a];
			int64_t dims[IR_MAX_RANK] = {g->npos, acc->dims[0], acc->dims[1]};
			ir_buf *tape = ir_buf_new(m, arena_printf(m->arena, "tape_%s", acc->name), BUF_TEMP, acc->rank + 1, dims);
			ptrvec_push(m->arena, &tapes[s], tape);
			ir_block_push(m, &f->body, tape_copy(m, acc, tape, g->k, true));
		}
		ir_block upd = {0};
		needed_for_updates(m, g, &upd);
		ir_block_append(m, &upd, &g->update);
		ir_block_push(m, &f->body, segment_updates(m, g, &upd));
		ir_block_push(m, &rows->body, f);
	}

	/* backward sweeps, last segment first, last position first */
	for (int s = low->nsegs; s-- > 0;) {
		segment *g = &low->segs[s];
		for (size_t a = 0; a < g->accs.len; a++)
			if (is_active(c, g->accs.items[a]))
				ir_block_push(m, &rows->body, ir_stmt_fill(m, adjoint_of(c, g->accs.items[a]), C(0)));
		if (forward && g->accs.len) {
			forward_sweep(c, g, &rows->body, lp);
			continue;
		}
		ir_loop *kb = g->k;
		ir_stmt *f = ir_for(m, kb);
		f->reverse = true;
		for (size_t a = 0; a < g->accs.len; a++)
			ir_block_push(m, &f->body, tape_copy(m, g->accs.items[a], tapes[s].items[a], kb, false));
		ir_block_append(m, &f->body, &g->pos);
		ir_stmt *add = ir_assign_stmt(m, S_ADD, NULL, 0, 0, lp, (ir_idx *[]){NULL}, g->logp);
		ir_block_push(m, &f->body, add);
		zero_adjoints(c, &g->pos, &f->body);
		ir_block rupd = {0};
		reverse_block(c, &g->update, &rupd, lp, C(1));
		ir_block_push(m, &f->body, segment_updates(m, g, &rupd));
		reverse_stmt(c, add, &f->body, lp, C(1));
		reverse_block(c, &g->pos, &f->body, lp, C(1));
		ir_block_push(m, &rows->body, f);
	}
	reverse_block(c, &low->row, &rows->body, lp, C(1));
	/* blocks of rows when what each row keeps is small (FVSBN: a few
	 * scalars; NADE without a tape: its scans and hidden units), so each
	 * gradient entry is read and written once per block: not with a tape
	 * of scans (positions x their size per row) */
	block_rows_loop(m, rows, GRAD_BLOCK_MAX_REALS);
	ir_block_push(m, body, rows);
	reverse_block(c, &low->theta, body, lp, C(1));
}

/* grad[p] = grad[p] * s over every param. */
static void scale_grad(adctx *c, ir_block *b, ir_val *s, bool set_zero)
{
	ir_module *m = c->m;
	for (size_t i = 0; i < m->bufs.len; i++) {
		ir_buf *t = m->bufs.items[i];
		if (t->cls != BUF_THETA)
			continue;
		ir_buf *g = adjoint_of(c, t);
		ir_loop *loops[IR_MAX_RANK];
		ir_idx *idx[IR_MAX_RANK] = {0};
		for (int d = 0; d < g->rank; d++) {
			loops[d] = ir_loop_new(m, "g", ir_idx_const(m, 0), ir_idx_const(m, g->dims[d]));
			idx[d] = ir_idx_loop(m, loops[d]);
		}
		ir_val *v = set_zero ? C(0) : OP2(MUL, ir_read(m, g, idx), s);
		ir_block_push(m, b, ir_assign_stmt(m, S_SET, loops, g->rank, g->rank, g, idx, v));
	}
}

/* The penalty (or free objective): forward into `pen`, then, if grad, its
 * adjoint with seed `sign`. */
static void emit_penalty(adctx *c, ir_block *b, ir_buf *pen, bool grad)
{
	ir_module *m = c->m;
	ir_block_append(m, b, &c->low->penalty);
	ir_stmt *set = ir_assign_stmt(m, S_SET, NULL, 0, 0, pen, (ir_idx *[]){NULL}, c->low->penalty_val);
	ir_block_push(m, b, set);
	if (!grad)
		return;
	zero_adjoints(c, &c->low->penalty, b);
	reverse_stmt(c, set, b, pen, C(c->low->penalty_sign));
	reverse_block(c, &c->low->penalty, b, pen, C(c->low->penalty_sign));
}

/* The objective without gradient: the logp pass over the rows.  Returns
 * the loop over the rows, which adds each row's log p into lp (codegen may
 * run it as calls of logp_batch: cg_kernel.c). */
static const ir_loop *emit_loglik_value(adctx *c, ir_block *body, ir_buf *lp, ir_buf *count)
{
	ir_module *m = c->m;
	lowered *low = c->low;
	ir_block_append(m, body, &low->theta);
	ir_loop *rl = ir_loop_new(m, "row", ir_idx_const(m, 0), ir_idx_const(m, 0));
	rl->is_rows = true;
	ir_stmt *rows = ir_for(m, rl);
	ir_block_push(m, &rows->body, ir_assign_stmt(m, S_ADD, NULL, 0, 0, count, (ir_idx *[]){NULL}, C(1)));
	ir_block_append(m, &rows->body, &low->row);
	for (int s = 0; s < low->nsegs; s++) {
		segment *g = &low->segs[s];
		ir_block_append(m, &rows->body, &g->pre);
		ir_stmt *f = ir_for(m, g->k);
		ir_block_append(m, &f->body, &g->pos);
		ir_block_push(m, &f->body, ir_assign_stmt(m, S_ADD, NULL, 0, 0, lp, (ir_idx *[]){NULL}, g->logp));
		ir_block_push(m, &f->body, segment_updates(m, g, &g->update));
		ir_block_push(m, &rows->body, f);
	}
	ir_block_push(m, body, rows);
	return rl;
}

/* obj = (count > 0 ? lp / count : 0) [+ sign * pen] */
static ir_val *mean_of(ir_module *m, ir_buf *lp, ir_buf *count)
{
	ir_val *n = ir_read(m, count, NULL);
	return ir_op(m, IR_SELECT, OP2(GT, n, C(0)), OP2(DIV, ir_read(m, lp, NULL), n), C(0));
}

/* k's body (grad) or no-grad body. */
static void build_objective(adctx *c, bool grad, ir_kernel *k)
{
	ir_module *m = c->m;
	const model *mod = m->model;
	ir_block *b = grad ? &k->body : &k->nograd_body;
	ir_buf *obj = ir_temp_scalar(m, "objective");
	*(grad ? &k->result : &k->nograd_result) = obj;
	if (grad)
		scale_grad(c, b, NULL, true);
	if (mod->objective_has_loglik) {
		ir_buf *lp = ir_temp_scalar(m, "lp"), *count = ir_temp_scalar(m, "count");
		ir_block_push(m, b, ir_stmt_fill(m, lp, C(0)));
		ir_block_push(m, b, ir_stmt_fill(m, count, C(0)));
		if (grad) {
			emit_loglik_grad(c, b, lp, count);
			ir_val *n = ir_read(m, count, NULL);
			scale_grad(c, b, ir_op(m, IR_SELECT, OP2(GT, n, C(0)), OP2(DIV, C(1), n), C(0)), false);
		} else {
			k->nograd_rows = emit_loglik_value(c, b, lp, count);
			k->nograd_lp = lp;
			k->nograd_count = count;
		}
		ir_block_push(m, b, ir_assign_stmt(m, S_SET, NULL, 0, 0, obj, (ir_idx *[]){NULL}, mean_of(m, lp, count)));
	} else {
		ir_block_push(m, b, ir_stmt_fill(m, obj, C(0)));
	}
	if (c->low->penalty_val) {
		ir_buf *pen = ir_temp_scalar(m, "penalty");
		emit_penalty(c, b, pen, grad);
		ir_block_push(m, b, ir_assign_stmt(m, S_ADD, NULL, 0, 0, obj, (ir_idx *[]){NULL},
		                                  OP2(MUL, C(c->low->penalty_sign), ir_read(m, pen, NULL))));
	}
}

int ad_module(diag_ctx *d, ir_module *m)
{
	adctx cc = {.m = m, .low = m->low}, *c = &cc;
	find_active(c);
	if (m->model->objective_has_loglik) {
		ir_kernel *k = ir_kernel_new(m, KER_LOGLIK_GRAD, "loglik_grad");
		k->result = ir_temp_scalar(m, "lp");
		ir_block_push(m, &k->body, ir_stmt_fill(m, k->result, C(0)));
		emit_loglik_grad(c, &k->body, k->result, NULL);
		m->kernels[KER_LOGLIK_GRAD] = k;
		ir_kernel_collect_temps(m, k);
	}
	ir_kernel *k = ir_kernel_new(m, KER_OBJECTIVE, "objective");
	build_objective(c, true, k);
	build_objective(c, false, k);
	m->kernels[KER_OBJECTIVE] = k;
	ir_kernel_collect_temps(m, k);
	return 0;
}
