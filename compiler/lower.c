/* lower.c -- from the checked model to the IR: buffers, statements, kernels.
 *
 * An expression of shape [d0, d1] is lowered to one scalar ir_val in which
 * the placeholder loops ph[0], ph[1] stand for the element's indices
 * (index notation).  Elementwise operations simply build bigger scalar
 * expressions, so they fuse; reductions, matrix products, lets and sums
 * are materialized into temp buffers by statements, placed in the stage
 * their inputs allow (see lower_internal.h): what depends on params only
 * runs once per call, what depends on the position runs per position.
 *
 * `sum(j before i) f(j)` is where orders pay off: when f does not depend
 * on i it becomes a prefix scan, an accumulator advanced after each
 * position (O(n) in all); otherwise it is a triangular sum over the
 * earlier positions.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "chain/model.h"
#include "chain/rng.h"
#include "check_internal.h"
#include "lower_internal.h"

enum { ST_THETA, ST_ROW, ST_POS };

typedef struct tval {
	shape sh;
	ir_val *v;
} tval;

/* A name bound while lowering: an index variable, a family argument or a
 * family size. */
typedef struct binding {
	const char *name;
	ir_idx *idx;         /* index variable */
	tval val;            /* family argument */
	bool is_val;
	struct binding *next;
} binding;

typedef struct let_entry {
	const sym *let;
	const segment *seg;
	tval val;
} let_entry;

typedef struct lowerer {
	diag_ctx *d;
	ir_module *m;
	arena *a;
	const model *mod;
	lowered *low;
	ir_loop *ph[SHAPE_MAX_RANK];
	segment *seg;           /* the segment being lowered, or NULL */
	binding *env;
	bool in_family;
	uint32_t draws;         /* draws so far in the family's sampler */
	ptrvec lets;            /* let_entry* */
	int let_depth;          /* let_value calls in progress (a let using a let ...) */
	int *stage;             /* per buffer id: its stage (TEMP) */
	int stage_cap;
	ptrvec open_loops;      /* loops of sums being lowered: no materialization may use them */
	ir_buf **var_buf;       /* per sym of params, consts, inputs, data, in that order */
	ptrmap buf_of_sym;      /* sym* of those -> its ir_buf* */
	bool failed;
} lowerer;

/* ------------------------------------------------------------ helpers */

static void not_supported(lowerer *L, span where, const char *what)
{
	diag_error(L->d, where, "not supported yet: %s", what);
	L->failed = true;
}

/* Index `a` of dimension k (0-based) of `name`, which has `size` entries
 * there, lowered to x:
 * an error when the values it takes from its loops' ranges reach outside
 * 0..size-1 (the generated code would read outside the array: the check
 * can only see a constant index, check_expr.c).  The range counts every
 * value of the loops, a conditional's position or a sum's index, even one
 * a branch of `if` would not use: both branches are computed. */
static void check_index(lowerer *L, const expr *a, const ir_idx *x, int64_t size, int k, const char *name)
{
	int64_t lo, hi;
	if (ir_idx_range(x, &lo, &hi) != 1 || (lo >= 0 && hi < size))
		return;
	diag_error(L->d, a->where, "this index takes the values %lld..%lld, but dimension %d of '%s' has the indices 0..%lld",
	           (long long)lo, (long long)hi, k + 1, name, (long long)size - 1);
	L->failed = true;
}

static void set_stage(lowerer *L, ir_buf *b, int st)
{
	if (b->id >= L->stage_cap) {
		int cap = (b->id + 1) * 2;
		L->stage = realloc(L->stage, (size_t)cap * sizeof(int));
		for (int i = L->stage_cap; i < cap; i++)
			L->stage[i] = ST_THETA;
		L->stage_cap = cap;
	}
	L->stage[b->id] = st;
}

static int buf_stage(lowerer *L, const ir_buf *b)
{
	switch (b->cls) {
	case BUF_THETA: case BUF_CONST: case BUF_GRAD: return ST_THETA;
	case BUF_OBS: case BUF_OUT: return ST_ROW;
	case BUF_TEMP: return b->id < L->stage_cap ? L->stage[b->id] : ST_THETA;
	}
	return ST_POS;
}

static bool is_pos_loop(lowerer *L, const ir_loop *l)
{
	for (int s = 0; s < L->low->nsegs; s++)
		if (L->low->segs[s].k == l)
			return true;
	return false;
}

static int idx_stage(lowerer *L, const ir_idx *i)
{
	if (!i)
		return ST_THETA;
	switch (i->kind) {
	case IX_CONST: return ST_THETA;
	case IX_LOOP: return is_pos_loop(L, i->u.loop) ? ST_POS : ST_THETA;
	case IX_ADD: case IX_SUB: case IX_MUL: {
		int a = idx_stage(L, i->u.bin.a), b = idx_stage(L, i->u.bin.b);
		return a > b ? a : b;
	}
	case IX_LOAD: {
		int s = buf_stage(L, i->u.load.buf);
		for (int k = 0; k < i->u.load.buf->rank; k++) {
			int t = idx_stage(L, i->u.load.idx[k]);
			if (t > s)
				s = t;
		}
		return s;
	}
	case IX_ROW: return ST_ROW;
	case IX_PREFIX: return ST_POS;
	}
	return ST_POS;
}

static int val_stage(lowerer *L, const ir_val *v)
{
	int s = ST_THETA, t;
	switch (v->kind) {
	case V_CONST: return ST_THETA;
	case V_INT: return idx_stage(L, v->u.idx);
	case V_DRAW: return ST_POS;
	case V_STOP: return val_stage(L, v->u.stop);
	case V_READ:
		s = buf_stage(L, v->u.read.buf);
		for (int k = 0; k < v->u.read.buf->rank; k++)
			if ((t = idx_stage(L, v->u.read.idx[k])) > s)
				s = t;
		return s;
	case V_OP:
		for (int k = 0; k < ir_op_arity[v->u.op.op]; k++)
			if ((t = val_stage(L, v->u.op.a[k])) > s)
				s = t;
		return s;
	}
	return ST_POS;
}

/* --------------------------------------------------------- materialize */

static ir_block *stage_block(lowerer *L, int st)
{
	if (st == ST_THETA)
		return &L->low->theta;
	if (st == ST_ROW || !L->seg)
		return &L->low->row;
	return &L->seg->pos;
}

static tval read_whole(lowerer *L, ir_buf *b)
{
	tval t = {.sh = {.rank = b->rank}};
	ir_idx *idx[IR_MAX_RANK] = {0};
	for (int k = 0; k < b->rank && k < SHAPE_MAX_RANK; k++) {
		t.sh.dims[k] = b->dims[k];
		idx[k] = ir_idx_loop(L->m, L->ph[k]);
	}
	t.v = ir_read(L->m, b, idx);
	return t;
}


/* A statement `kind` into a new temp of shape sh: free loops over sh, then
 * `nred` reduction loops; the value's placeholders become the free loops.
 *
 * Inside a sum, the value may depend on the sum's index (the inner sum of
 * sum(k in 0..K) (sum(j in 0..k) ...)): the temp then gets a leading
 * dimension per such index, computed for all of them before the outer sum
 * reads it at its index.  That needs the index's range to be constant. */
static tval emit_temp(lowerer *L, ir_stmt_kind kind, shape sh, ir_val *v, ir_loop **red, int nred, const char *name, span where)
{
	ir_module *m = L->m;
	ir_loop *lift[IR_MAX_RANK];
	int nlift = 0;
	for (size_t i = 0; i < L->open_loops.len; i++) {
		ir_loop *o = L->open_loops.items[i];
		bool used = ir_val_uses_loop(v, o);
		for (int k = 0; k < nred; k++)
			used |= ir_idx_uses_loop(red[k]->lo, o) || ir_idx_uses_loop(red[k]->hi, o);
		if (!used)
			continue;
		if (o->lo->kind != IX_CONST || o->hi->kind != IX_CONST || nlift + sh.rank >= IR_MAX_RANK) {
			not_supported(L, where, "a reduction, product or let inside a sum whose range is not constant and whose body depends on its index");
			return (tval){.v = ir_const(m, 0)};
		}
		lift[nlift++] = o;
	}
	int64_t dims[IR_MAX_RANK] = {0};
	for (int k = 0; k < nlift; k++)
		dims[k] = lift[k]->hi->u.c - lift[k]->lo->u.c;
	for (int k = 0; k < sh.rank; k++)
		dims[nlift + k] = sh.dims[k];
	ir_buf *b = ir_buf_new(m, name, BUF_TEMP, nlift + sh.rank, dims);
	ir_loop *loops[IR_MAX_RANK + 8];
	ir_idx *idx[IR_MAX_RANK] = {0};
	int n = ir_buf_loops(m, b, loops, idx);
	/* the lifted indices run over their own ranges: o = lo + r */
	ir_loop *from[IR_MAX_RANK + 8];
	ir_idx *to[IR_MAX_RANK + 8];
	int nsub = 0;
	for (int k = 0; k < sh.rank; k++) {
		from[nsub] = L->ph[k];
		to[nsub++] = idx[nlift + k];
	}
	for (int k = 0; k < nlift; k++) {
		from[nsub] = lift[k];
		to[nsub++] = ir_idx_bin(m, IX_ADD, lift[k]->lo, idx[k]);
	}
	/* reductions get fresh loops whose bounds see the lifted indices */
	int nfixed = nsub;
	for (int k = 0; k < nred; k++) {
		ir_loop *r = ir_loop_new(m, red[k]->name, ir_subst_idx(m, red[k]->lo, from, to, nfixed),
		                         ir_subst_idx(m, red[k]->hi, from, to, nfixed));
		loops[n + k] = r;
		from[nsub] = red[k];
		to[nsub++] = ir_idx_loop(m, r);
	}
	ir_val *body = ir_subst_val(m, v, from, to, nsub);
	/* the stage: what the value and the reductions' bounds depend on */
	int st = val_stage(L, body);
	for (int k = 0; k < nred; k++) {
		int lo_st = idx_stage(L, loops[n + k]->lo), hi_st = idx_stage(L, loops[n + k]->hi);
		st = lo_st > st ? lo_st : st;
		st = hi_st > st ? hi_st : st;
	}
	set_stage(L, b, st);
	ir_block_push(m, stage_block(L, st), ir_assign_stmt(m, kind, loops, n + nred, n, b, idx, body));
	tval t = {.sh = sh};
	ir_idx *ridx[IR_MAX_RANK] = {0};
	for (int k = 0; k < nlift; k++)
		ridx[k] = ir_idx_bin(m, IX_SUB, ir_idx_loop(m, lift[k]), lift[k]->lo);
	for (int k = 0; k < sh.rank; k++)
		ridx[nlift + k] = ir_idx_loop(m, L->ph[k]);
	t.v = ir_read(m, b, ridx);
	return t;
}

static tval materialize(lowerer *L, tval t, const char *name, span where)
{
	if (t.sh.rank == 0 && (t.v->kind == V_CONST || t.v->kind == V_READ))
		return t;
	return emit_temp(L, S_SET, t.sh, t.v, NULL, 0, name, where);
}

/* Reduces every dimension of t (sum or max) into a scalar temp. */
static tval reduce_all(lowerer *L, ir_stmt_kind kind, tval t, const char *name, span where)
{
	if (t.sh.rank == 0)
		return t;
	ir_loop *red[SHAPE_MAX_RANK];
	ir_idx *idx[SHAPE_MAX_RANK];
	for (int k = 0; k < t.sh.rank; k++) {
		red[k] = ir_loop_new(L->m, "m", ir_idx_const(L->m, 0), ir_idx_const(L->m, t.sh.dims[k]));
		idx[k] = ir_idx_loop(L->m, red[k]);
	}
	ir_val *v = ir_subst_val(L->m, t.v, L->ph, idx, t.sh.rank);
	return emit_temp(L, kind, (shape){0}, v, red, t.sh.rank, name, where);
}

/* ----------------------------------------------------------- bindings */

static binding *lookup(lowerer *L, const char *name)
{
	for (binding *b = L->env; b; b = b->next)
		if (strcmp(b->name, name) == 0)
			return b;
	return NULL;
}

static void bind_idx(lowerer *L, const char *name, ir_idx *idx)
{
	binding *b = arena_alloc(L->a, sizeof *b);
	b->name = name;
	b->idx = idx;
	b->next = L->env;
	L->env = b;
}

static void bind_val(lowerer *L, const char *name, tval v)
{
	binding *b = arena_alloc(L->a, sizeof *b);
	b->name = name;
	b->val = v;
	b->is_val = true;
	b->next = L->env;
	L->env = b;
}

static ir_buf *buf_of(lowerer *L, const sym *y)
{
	return ptrmap_get(&L->buf_of_sym, y);
}

/* The element index at position `k` (an index expression) of a segment. */
static ir_idx *elem_at(lowerer *L, const segment *s, ir_idx *k)
{
	const sym *y = s->var;
	if (s->perm)
		return ir_idx_load(L->m, s->perm, (ir_idx *[]){k, NULL, NULL});
	if (y->shape.rank && order_elem(y, 0) == y->shape.dims[0] - 1 && y->shape.dims[0] > 1)
		return ir_idx_bin(L->m, IX_SUB, ir_idx_const(L->m, y->shape.dims[0] - 1), k);
	return k;
}

/* ------------------------------------------------------------ lowering */

static tval lower_expr(lowerer *L, const expr *e);

static tval scalar(ir_val *v)
{
	return (tval){.v = v};
}

static ir_idx *lower_idx(lowerer *L, const expr *e)
{
	switch (e->kind) {
	case E_NUM:
		return ir_idx_const(L->m, (int64_t)e->u.num);
	case E_NAME: {
		binding *b = lookup(L, e->u.name);
		if (b && !b->is_val)
			return b->idx;
		if (b && b->is_val && b->val.sh.rank == 0 && b->val.v->kind == V_READ)
			return ir_idx_load(L->m, b->val.v->u.read.buf, b->val.v->u.read.idx);
		if (b && b->is_val && b->val.v->kind == V_CONST)
			return ir_idx_const(L->m, (int64_t)b->val.v->u.c);
		if (e->sym && e->sym->kind == SYM_DIM)
			return ir_idx_const(L->m, e->sym->dim_value);
		break;
	}
	case E_BINARY:
		if (e->u.binary.op == OP_ADD || e->u.binary.op == OP_SUB || e->u.binary.op == OP_MUL)
			return ir_idx_bin(L->m, e->u.binary.op == OP_ADD ? IX_ADD : e->u.binary.op == OP_SUB ? IX_SUB : IX_MUL,
			                  lower_idx(L, e->u.binary.lhs), lower_idx(L, e->u.binary.rhs));
		break;
	case E_UNARY:
		return ir_idx_bin(L->m, IX_SUB, ir_idx_const(L->m, 0), lower_idx(L, e->u.unary.operand));
	default:
		break;
	}
	not_supported(L, e->where, "this index expression");
	return ir_idx_const(L->m, 0);
}

/* How deep lets may use lets (let a2 = a1 ..., let a3 = a2 ...): each
 * level is a recursion of the lowering and a level of the value trees
 * that later passes walk, which at 400 took seconds and at 2000 ran out of
 * stack.  The same bound as the nesting of an expression. */
#define LOWER_MAX_LET_DEPTH PARSE_MAX_DEPTH

/* The value of a let, lowered once per segment (per position lets) or once
 * per model. */
static tval let_value(lowerer *L, const sym *y)
{
	const segment *seg = y->let_indexed ? L->seg : NULL;
	for (size_t i = 0; i < L->lets.len; i++) {
		let_entry *le = L->lets.items[i];
		if (le->let == y && le->seg == seg)
			return le->val;
	}
	if (L->let_depth >= LOWER_MAX_LET_DEPTH) {
		diag_error(L->d, y->where, "this let is %d lets deep (it uses a let that uses a let ...): at most %d",
		           L->let_depth + 1, LOWER_MAX_LET_DEPTH);
		L->failed = true;
		return scalar(ir_const(L->m, 0));
	}
	binding *saved = L->env;
	bool fam = L->in_family;
	L->in_family = false;
	if (y->let_indexed) {
		if (!L->seg) {
			not_supported(L, y->where, "a per-position let outside a conditional");
			return scalar(ir_const(L->m, 0));
		}
		bind_idx(L, y->decl->u.let.index, L->seg->elem);
	}
	L->let_depth++;
	tval v = materialize(L, lower_expr(L, y->decl->u.let.value), y->name, y->where);
	L->let_depth--;
	L->env = saved;
	L->in_family = fam;
	let_entry *le = arena_alloc(L->a, sizeof *le);
	le->let = y;
	le->seg = seg;
	le->val = v;
	ptrvec_push(L->a, &L->lets, le);
	return v;
}

static tval lower_name(lowerer *L, const expr *e)
{
	binding *b = lookup(L, e->u.name);
	const sym *y = e->sym;
	if (b && (L->in_family || !y || y->kind == SYM_INDEX || y->kind == SYM_FAMILY_ARG)) {
		if (b->is_val)
			return b->val;
		return scalar(ir_int(L->m, b->idx));
	}
	if (!y) {
		not_supported(L, e->where, "this name here");
		return scalar(ir_const(L->m, 0));
	}
	switch (y->kind) {
	case SYM_DIM:
		return scalar(ir_const(L->m, (double)y->dim_value));
	case SYM_PARAM: case SYM_CONST: case SYM_DATA: case SYM_INPUT:
		return read_whole(L, buf_of(L, y));
	case SYM_LET:
		return let_value(L, y);
	default:
		not_supported(L, e->where, "this name here");
		return scalar(ir_const(L->m, 0));
	}
}

static tval lower_index(lowerer *L, const expr *e)
{
	const sym *y = e->sym;
	if (y && y->kind == SYM_LET && y->let_indexed)
		return let_value(L, y);
	if (y && y->kind == SYM_LET) {
		/* an element or a slice of a let's (array) value */
		tval v = let_value(L, y);
		ir_idx *to[SHAPE_MAX_RANK];
		tval t = {0};
		for (int k = 0; k < v.sh.rank; k++) {
			const expr *a = k < (int)e->u.index.args.len ? e->u.index.args.items[k] : NULL;
			if (!a || a->kind == E_SLICE) {
				t.sh.dims[t.sh.rank] = v.sh.dims[k];
				to[k] = ir_idx_loop(L->m, L->ph[t.sh.rank++]);
			} else {
				to[k] = lower_idx(L, a);
				check_index(L, a, to[k], v.sh.dims[k], k, y->name);
			}
		}
		t.v = ir_subst_val(L->m, v.v, L->ph, to, v.sh.rank);
		return t;
	}
	if (!y || !(y->kind == SYM_PARAM || y->kind == SYM_CONST || y->kind == SYM_DATA || y->kind == SYM_INPUT)) {
		binding *b = lookup(L, e->u.index.base->u.name);
		if (b && b->is_val && b->val.sh.rank == 1 && e->u.index.args.len == 1) {
			/* a family argument indexed: l[v] */
			ir_idx *i = lower_idx(L, e->u.index.args.items[0]);
			check_index(L, e->u.index.args.items[0], i, b->val.sh.dims[0], 0, e->u.index.base->u.name);
			return scalar(ir_subst_val(L->m, b->val.v, L->ph, &i, 1));
		}
		not_supported(L, e->where, "indexing this");
		return scalar(ir_const(L->m, 0));
	}
	ir_buf *buf = buf_of(L, y);
	ir_idx *idx[IR_MAX_RANK] = {0};
	tval t = {0};
	for (int k = 0; k < buf->rank; k++) {
		const expr *a = k < (int)e->u.index.args.len ? e->u.index.args.items[k] : NULL;
		if (!a || a->kind == E_SLICE) {
			t.sh.dims[t.sh.rank] = buf->dims[k];
			idx[k] = ir_idx_loop(L->m, L->ph[t.sh.rank++]);
		} else {
			idx[k] = lower_idx(L, a);
			check_index(L, a, idx[k], buf->dims[k], k, y->name);
		}
	}
	t.v = ir_read(L->m, buf, idx);
	return t;
}

static ir_opcode fn_op(int fn)
{
	switch (fn) {
	case FN_EXP: return IR_EXP;
	case FN_LOG: return IR_LOG;
	case FN_LOG1P: return IR_LOG1P;
	case FN_SQRT: return IR_SQRT;
	case FN_ABS: return IR_ABS;
	case FN_SQUARE: return IR_SQUARE;
	case FN_SIGMOID: return IR_SIGMOID;
	case FN_TANH: return IR_TANH;
	case FN_RELU: return IR_RELU;
	case FN_SOFTPLUS: return IR_SOFTPLUS;
	default: return IR_LOG_SIGMOID;
	}
}

/* lfact(x) = log(x!) = lgamma(x + 1), in ops the IR has (so that it folds,
 * vectorizes and differentiates like any expression): Stirling's series
 * for lgamma(z), z = x + 1, with five terms after the leading ones, whose
 * error at z >= 17 is below 1e-16; for x < 16 the series at z + 16 less
 * log((x + 1) ... (x + 16)), a product of 16 factors each exact to half an
 * ulp; +inf for x < 0 (so that a binomial coefficient with k > n is 0).
 * O(1) in x, where a sum of logs over 1..x took as long as x is large. */
static ir_val *lfact(ir_module *m, ir_val *x)
{
#define C(v) ir_const(m, (v))
#define OP(o, a, b) ir_op(m, IR_##o, (a), (b), NULL)
	ir_val *small = OP(LT, x, C(16));
	ir_val *z = ir_op(m, IR_SELECT, small, OP(ADD, x, C(17)), OP(ADD, x, C(1)));
	ir_val *r = OP(DIV, C(1), z), *r2 = OP(MUL, r, r);
	ir_val *series = OP(SUB, C(1.0 / 1680), OP(MUL, r2, C(1.0 / 1188)));
	series = OP(SUB, C(1.0 / 1260), OP(MUL, r2, series));
	series = OP(SUB, C(1.0 / 360), OP(MUL, r2, series));
	series = OP(MUL, r, OP(SUB, C(1.0 / 12), OP(MUL, r2, series)));
	/* (z - 0.5) log z - z + 0.5 log(2 pi), written (z - 0.5)(log z - 1) +
	 * (0.5 log(2 pi) - 0.5) so that z = +inf gives +inf, not inf - inf */
	ir_val *lg = OP(ADD, OP(MUL, OP(SUB, z, C(0.5)), OP(SUB, ir_op(m, IR_LOG, z, NULL, NULL), C(1))),
	                OP(ADD, C(0.91893853320467274178 - 0.5), series));
	ir_val *prod = OP(ADD, x, C(1));
	for (int i = 2; i <= 16; i++)
		prod = OP(MUL, prod, OP(ADD, x, C(i)));
	ir_val *shift = ir_op(m, IR_SELECT, small, ir_op(m, IR_LOG, prod, NULL, NULL), C(0));
	return ir_op(m, IR_SELECT, OP(LT, x, C(0)), C(INFINITY), OP(SUB, lg, shift));
#undef C
#undef OP
}

/* Position of the current element in the whole chain (for draws). */
static ir_idx *global_pos(ir_module *m, const segment *s)
{
	return ir_idx_bin(m, IX_ADD, ir_idx_const(m, s->first_pos), ir_idx_loop(m, s->k));
}

static tval lower_call(lowerer *L, const expr *e)
{
	const sym *f = e->sym;
	const exprvec *args = &e->u.call.args;
	if (!f || f->kind != SYM_BUILTIN) {
		not_supported(L, e->where, "calling this");
		return scalar(ir_const(L->m, 0));
	}
	int fn = f->builtin;
	if (fn == FN_UNIFORM || fn == FN_NORMAL || fn == FN_GUMBEL || fn == FN_POISSON) {
		if (!L->seg)
			return scalar(ir_const(L->m, 0));
		ir_draw_kind k = fn == FN_UNIFORM ? DRAW_UNIFORM : fn == FN_NORMAL ? DRAW_NORMAL
		               : fn == FN_GUMBEL ? DRAW_GUMBEL : DRAW_POISSON;
		/* poisson(rate): the rate first, so that its own draws (if any)
		 * take the numbers before this one, in evaluation order */
		ir_val *rate = fn == FN_POISSON ? lower_expr(L, args->items[0]).v : NULL;
		if (!L->open_loops.len)
			return scalar(ir_draw_at(L->m, k, CHAIN_STREAM_SAMPLE, ir_idx_leaf(L->m, IX_ROW), global_pos(L->m, L->seg),
			                         L->draws++, NULL, rate));
		/* inside sum(k in lo..hi): one draw per iteration, numbered c + (k - lo);
		 * the draws after the sum come after all of them, so the range must
		 * be constant, and one sum deep */
		ir_loop *o = L->open_loops.items[L->open_loops.len - 1];
		if (L->open_loops.len > 1 || o->lo->kind != IX_CONST || o->hi->kind != IX_CONST) {
			not_supported(L, e->where, "a random draw inside a sum whose range is not constant, or inside two sums");
			return scalar(ir_const(L->m, 0));
		}
		int64_t extent = o->hi->u.c - o->lo->u.c;
		if (extent < 0)
			extent = 0;
		if (extent > (1 << 20) || L->draws + (uint64_t)extent > (1u << 24)) {
			not_supported(L, e->where, "more than 2^20 draws in one sum");
			return scalar(ir_const(L->m, 0));
		}
		uint32_t base = L->draws;
		L->draws += (uint32_t)extent;
		return scalar(ir_draw_at(L->m, k, CHAIN_STREAM_SAMPLE, ir_idx_leaf(L->m, IX_ROW), global_pos(L->m, L->seg), base,
		                         ir_idx_bin(L->m, IX_SUB, ir_idx_loop(L->m, o), o->lo), rate));
	}
	tval a = lower_expr(L, args->items[0]);
	if (fn == FN_LFACT) {
		a.v = lfact(L->m, a.v);
		return a;
	}
	if (fn <= FN_LOG_SIGMOID) {
		a.v = ir_op(L->m, fn_op(fn), a.v, NULL, NULL);
		return a;
	}
	switch (fn) {
	case FN_SUM:
		return reduce_all(L, S_SUM, a, "sum", e->where);
	case FN_MEAN: {
		double n = (double)shape_size(&a.sh);
		tval s = reduce_all(L, S_SUM, a, "sum", e->where);
		return scalar(ir_op(L->m, IR_DIV, s.v, ir_const(L->m, n), NULL));
	}
	case FN_L2:
		a.v = ir_op(L->m, IR_SQUARE, a.v, NULL, NULL);
		return reduce_all(L, S_SUM, a, "l2", e->where);
	case FN_L1:
		a.v = ir_op(L->m, IR_ABS, a.v, NULL, NULL);
		return reduce_all(L, S_SUM, a, "l1", e->where);
	case FN_MAX:
		return reduce_all(L, S_MAX, a, "max", e->where);
	case FN_LOGSUMEXP: {
		/* max + log(sum(exp(v - max))): never overflows; the max is held
		 * constant for differentiation (its derivative cancels exactly). */
		ir_val *mx = ir_stop(L->m, reduce_all(L, S_MAX, a, "lse_max", e->where).v);
		tval ex = {.sh = a.sh, .v = ir_op(L->m, IR_EXP, ir_op(L->m, IR_SUB, a.v, mx, NULL), NULL, NULL)};
		tval s = reduce_all(L, S_SUM, ex, "lse_sum", e->where);
		return scalar(ir_op(L->m, IR_ADD, mx, ir_op(L->m, IR_LOG, s.v, NULL, NULL), NULL));
	}
	case FN_DOT: {
		tval b = lower_expr(L, args->items[1]);
		tval p = {.sh = a.sh, .v = ir_op(L->m, IR_MUL, a.v, b.v, NULL)};
		return reduce_all(L, S_SUM, p, "dot", e->where);
	}
	default:
		not_supported(L, e->where, "this function here");
		return scalar(ir_const(L->m, 0));
	}
}

/* A @ B: [m, k] @ [k] -> [m]; [m, k] @ [k, p] -> [m, p]; [k] @ [k, p] -> [p]. */
static tval lower_matmul(lowerer *L, const expr *e, tval a, tval b)
{
	ir_loop *red = ir_loop_new(L->m, "m", ir_idx_const(L->m, 0), ir_idx_const(L->m, b.sh.dims[0]));
	ir_idx *r = ir_idx_loop(L->m, red);
	ir_idx *p0 = ir_idx_loop(L->m, L->ph[0]), *p1 = ir_idx_loop(L->m, L->ph[1]);
	ir_val *av, *bv;
	shape sh = {0};
	if (a.sh.rank == 2) {
		av = ir_subst_val(L->m, a.v, (ir_loop *[]){L->ph[0], L->ph[1]}, (ir_idx *[]){p0, r}, 2);
		sh.dims[sh.rank++] = a.sh.dims[0];
		if (b.sh.rank == 2) {
			bv = ir_subst_val(L->m, b.v, (ir_loop *[]){L->ph[0], L->ph[1]}, (ir_idx *[]){r, p1}, 2);
			sh.dims[sh.rank++] = b.sh.dims[1];
		} else {
			bv = ir_subst_val(L->m, b.v, (ir_loop *[]){L->ph[0]}, (ir_idx *[]){r}, 1);
		}
	} else {
		av = ir_subst_val(L->m, a.v, (ir_loop *[]){L->ph[0]}, (ir_idx *[]){r}, 1);
		bv = ir_subst_val(L->m, b.v, (ir_loop *[]){L->ph[0], L->ph[1]}, (ir_idx *[]){r, p0}, 2);
		sh.dims[sh.rank++] = b.sh.dims[1];
	}
	return emit_temp(L, S_SUM, sh, ir_op(L->m, IR_MUL, av, bv, NULL), &red, 1, "matmul", e->where);
}

static tval lower_binary(lowerer *L, const expr *e)
{
	tval a = lower_expr(L, e->u.binary.lhs), b = lower_expr(L, e->u.binary.rhs);
	static const ir_opcode ops[] = {
		[OP_ADD] = IR_ADD, [OP_SUB] = IR_SUB, [OP_MUL] = IR_MUL, [OP_DIV] = IR_DIV, [OP_POW] = IR_POW,
		[OP_LT] = IR_LT, [OP_LE] = IR_LE, [OP_GT] = IR_GT, [OP_GE] = IR_GE, [OP_EQ] = IR_EQ, [OP_NE] = IR_NE,
		[OP_AND] = IR_AND, [OP_OR] = IR_OR,
	};
	if (e->u.binary.op == OP_MATMUL)
		return lower_matmul(L, e, a, b);
	tval t = {.sh = a.sh.rank ? a.sh : b.sh};
	t.v = ir_op(L->m, ops[e->u.binary.op], a.v, b.v, NULL);
	return t;
}

/* sum(j before i) body: a prefix scan when the body does not depend on the
 * position, else a triangular sum over the earlier positions. */
static tval lower_sum_before(lowerer *L, const expr *e)
{
	segment *s = L->seg;
	if (!s) {
		not_supported(L, e->where, "sum(j before i) outside a conditional");
		return scalar(ir_const(L->m, 0));
	}
	ir_loop *j = ir_loop_new(L->m, e->u.sum.var, ir_idx_const(L->m, 0), ir_idx_const(L->m, s->npos));
	/* for check_index: the elements of the positions before the last, the
	 * only ones a position has before it (none: an empty range) */
	ir_loop before = {.id = -1, .lo = ir_idx_const(L->m, 0), .hi = ir_idx_const(L->m, s->npos - 1)};
	j->narrow = true;
	if (ir_idx_range(elem_at(L, s, ir_idx_loop(L->m, &before)), &j->narrow_lo, &j->narrow_hi) != 1) {
		j->narrow_lo = 0;
		j->narrow_hi = s->npos > 1 ? s->npos - 1 : -1;
	}
	binding *saved = L->env;
	bind_idx(L, e->u.sum.var, ir_idx_loop(L->m, j));
	ptrvec_push(L->a, &L->open_loops, j);
	tval body = lower_expr(L, e->u.sum.body);
	L->open_loops.len--;
	L->env = saved;
	bool per_position = val_stage(L, body.v) == ST_POS;
	int64_t dims[IR_MAX_RANK] = {body.sh.dims[0], body.sh.dims[1], 0};
	if (!per_position) {
		/* prefix scan: acc holds the sum over the positions before k */
		ir_buf *acc = ir_buf_new(L->m, "scan", BUF_TEMP, body.sh.rank, dims);
		set_stage(L, acc, ST_POS);
		ptrvec_push(L->a, &s->accs, acc);
		ir_block_push(L->m, &s->pre, ir_stmt_fill(L->m, acc, ir_const(L->m, 0)));
		ir_loop *loops[IR_MAX_RANK];
		ir_idx *idx[IR_MAX_RANK] = {0};
		int n = ir_buf_loops(L->m, acc, loops, idx);
		ir_loop *from[3] = {L->ph[0], L->ph[1], j};
		ir_idx *to[3] = {idx[0], idx[1], s->elem};
		ir_val *v = ir_subst_val(L->m, body.v, from, to, 3);
		ir_block_push(L->m, &s->update, ir_assign_stmt(L->m, S_ADD, loops, n, n, acc, idx, v));
		return read_whole(L, acc);
	}
	/* triangular: sum over the positions kk < k */
	ir_loop *kk = ir_loop_new(L->m, "kk", ir_idx_const(L->m, 0), ir_idx_loop(L->m, s->k));
	ir_val *v = ir_subst_val(L->m, body.v, &j, (ir_idx *[]){elem_at(L, s, ir_idx_loop(L->m, kk))}, 1);
	return emit_temp(L, S_SUM, body.sh, v, &kk, 1, "tri", e->where);
}

/* How many times loop l runs (its terms, for a sum) when every
 * observation's value is at most cap; false when that is not known. */
static bool loop_runs(const ir_loop *l, int64_t cap, int64_t *n)
{
	int64_t a, b, c, d;
	int ra = ir_idx_range_capped(l->lo, cap, &a, &b), rb = ir_idx_range_capped(l->hi, cap, &c, &d);
	if (ra < 0 || rb < 0) { /* it never runs */
		*n = 0;
		return true;
	}
	if (!ra || !rb || __builtin_sub_overflow(d, a, n))
		return false;
	*n = *n < 0 ? 0 : *n;
	return true;
}

/* The terms the loops `nest` add together (their runs multiplied) when
 * every observation's value is at most cap; false when that is not known
 * or above INT64_MAX. */
static bool nest_terms(const ptrvec *nest, int64_t cap, int64_t *terms)
{
	int64_t t = 1, n;
	for (size_t i = 0; i < nest->len; i++)
		if (!loop_runs(nest->items[i], cap, &n) || __builtin_mul_overflow(t, n, &t))
			return false;
	*terms = t;
	return true;
}

/* Adds b to the list `reads` (a sum_reads) when it is an observation buffer
 * not there yet. */
typedef struct { lowerer *L; ptrvec bufs; } sum_reads;

static bool note_obs_read(const ir_buf *b, void *reads)
{
	sum_reads *r = reads;
	if (b->cls != BUF_OBS || b->value_top <= 0)
		return false;
	for (size_t i = 0; i < r->bufs.len; i++)
		if (r->bufs.items[i] == b)
			return false;
	/* the lowerer's own (non-const) buffer of that variable */
	const ptrvec *groups[] = {&r->L->mod->inputs, &r->L->mod->data};
	for (int g = 0; g < 2; g++)
		for (size_t i = 0; i < groups[g]->len; i++)
			if (buf_of(r->L, groups[g]->items[i]) == b)
				ptrvec_push(r->L->a, &r->bufs, buf_of(r->L, groups[g]->items[i]));
	return false;
}

/* A sum whose range an observation's value bounds (sum(k in 0..v) in a
 * family on int, an int input as a bound) adds as many terms as the value
 * says, up to 2^53 for an int: a data file with a count of 10^15 ran
 * chain eval for ever.  Of sum k and the sums around it, those whose terms
 * depend on such values may add at most CHAIN_SUM_TERMS_MAX terms together
 * (or as many as they add when every value is 0, if that is more): the
 * largest value t that keeps them there becomes the most each variable
 * their bounds read may hold, the descriptor's value_max, which
 * chain_data_check enforces with an error naming the file, row and
 * column.  Sums of constant range around them multiply their cost as they
 * multiply any sum's; they are the model's own choice, not the data's.  A
 * binary search: the terms only grow with t (interval arithmetic). */
static void limit_sum_values(lowerer *L, ir_loop *k)
{
	sum_reads r = {.L = L};
	for (size_t i = 0; i <= L->open_loops.len; i++) {
		const ir_loop *l = i < L->open_loops.len ? L->open_loops.items[i] : k;
		ir_idx_each_read(l->lo, note_obs_read, &r);
		ir_idx_each_read(l->hi, note_obs_read, &r);
	}
	if (!r.bufs.len)
		return;
	int64_t top = 0, base, terms, n0, n1;
	for (size_t i = 0; i < r.bufs.len; i++) {
		const ir_buf *b = r.bufs.items[i];
		top = b->value_top - 1 > top ? b->value_top - 1 : top;
	}
	/* the loops whose runs the values change */
	ptrvec nest = {0};
	for (size_t i = 0; i <= L->open_loops.len; i++) {
		ir_loop *l = i < L->open_loops.len ? L->open_loops.items[i] : k;
		if (!loop_runs(l, 0, &n0) || !loop_runs(l, top, &n1) || n0 != n1)
			ptrvec_push(L->a, &nest, l);
	}
	if (!nest.len || !nest_terms(&nest, 0, &base))
		return; /* no value changes them, or they are not known anyway */
	int64_t most = base > (int64_t)CHAIN_SUM_TERMS_MAX ? base : (int64_t)CHAIN_SUM_TERMS_MAX;
	if (nest_terms(&nest, top, &terms) && terms <= most)
		return;
	int64_t lo = 0, hi = top; /* lo fits, hi does not */
	while (hi - lo > 1) {
		int64_t mid = lo + (hi - lo) / 2;
		if (nest_terms(&nest, mid, &terms) && terms <= most)
			lo = mid;
		else
			hi = mid;
	}
	for (size_t i = 0; i < r.bufs.len; i++) {
		ir_buf *b = r.bufs.items[i];
		b->value_max = lo < b->value_max ? lo : b->value_max;
	}
}

/* sum(k in lo..hi) body, bounds inclusive. */
static tval lower_sum_range(lowerer *L, const expr *e)
{
	ir_idx *loi = lower_idx(L, e->u.sum.lo), *hii = lower_idx(L, e->u.sum.hi);
	ir_loop *k = ir_loop_new(L->m, e->u.sum.var, loi, ir_idx_bin(L->m, IX_ADD, hii, ir_idx_const(L->m, 1)));
	limit_sum_values(L, k);
	binding *saved = L->env;
	bind_idx(L, e->u.sum.var, ir_idx_loop(L->m, k));
	ptrvec_push(L->a, &L->open_loops, k);
	tval body = lower_expr(L, e->u.sum.body);
	L->open_loops.len--;
	L->env = saved;
	return emit_temp(L, S_SUM, body.sh, body.v, &k, 1, "sum", e->where);
}

static tval lower_expr(lowerer *L, const expr *e)
{
	switch (e->kind) {
	case E_NUM:
		return scalar(ir_const(L->m, e->u.num));
	case E_NAME:
		return lower_name(L, e);
	case E_INDEX:
		return lower_index(L, e);
	case E_CALL:
		return lower_call(L, e);
	case E_UNARY: {
		tval a = lower_expr(L, e->u.unary.operand);
		a.v = ir_op(L->m, IR_NEG, a.v, NULL, NULL);
		return a;
	}
	case E_BINARY:
		return lower_binary(L, e);
	case E_SUM_BEFORE:
		return lower_sum_before(L, e);
	case E_SUM_RANGE:
		return lower_sum_range(L, e);
	case E_IF: {
		tval c = lower_expr(L, e->u.cond.c), a = lower_expr(L, e->u.cond.a), b = lower_expr(L, e->u.cond.b);
		tval t = {.sh = a.sh.rank ? a.sh : b.sh.rank ? b.sh : c.sh};
		t.v = ir_op(L->m, IR_SELECT, c.v, a.v, b.v);
		return t;
	}
	default:
		not_supported(L, e->where, "this expression");
		return scalar(ir_const(L->m, 0));
	}
}

/* ------------------------------------------------------------ segments */

/* Lowers the conditional of one data variable: its family arguments at
 * position k, their log-density at the observed value and their sampler. */
static void lower_segment(lowerer *L, segment *s)
{
	const sym *y = s->var;
	decl *cd = y->cond;
	expr *call = cd->u.cond.family;
	decl *fd = call->sym->decl;
	L->seg = s;
	L->env = NULL;
	if (cd->u.cond.index)
		bind_idx(L, cd->u.cond.index, s->elem);
	tval args[16];
	size_t nargs = call->u.call.args.len;
	if (nargs > 16) {
		not_supported(L, call->where, "a family with more than 16 arguments");
		return;
	}
	s->cond_size = 0;
	for (size_t i = 0; i < nargs; i++) {
		args[i] = materialize(L, lower_expr(L, call->u.call.args.items[i]), fd->u.family.params[i].name, call->where);
		ptrvec_push(L->a, &s->args, args[i].v);
		shape *sh = arena_alloc(L->a, sizeof *sh);
		*sh = args[i].sh;
		ptrvec_push(L->a, &s->arg_shapes, sh);
		s->cond_size += shape_size(sh);
	}
	/* the family body sees only its arguments, sizes and value */
	L->env = NULL;
	L->in_family = true;
	for (size_t i = 0; i < nargs; i++) {
		family_param *p = &fd->u.family.params[i];
		bind_val(L, p->name, args[i]);
		for (size_t d = 0; d < p->type.dims.len; d++)
			if (p->type.dims.items[d]->kind == E_NAME)
				bind_val(L, p->type.dims.items[d]->u.name, scalar(ir_const(L->m, (double)args[i].sh.dims[d])));
	}
	ir_idx *vi[IR_MAX_RANK] = {y->shape.rank ? s->elem : NULL};
	bind_val(L, fd->u.family.logp_var, scalar(ir_read(L->m, s->obs, vi)));
	s->logp = lower_expr(L, fd->u.family.logp).v;
	L->draws = 0;
	for (size_t i = 0; i < fd->u.family.nlets; i++)
		bind_val(L, fd->u.family.lets[i].name, lower_expr(L, fd->u.family.lets[i].value));
	s->sample = lower_expr(L, fd->u.family.sample).v;
	if (L->failed)
		diag_note(L->d, cd->where, "in family %s, used by this conditional", fd->name);
	L->in_family = false;
	L->env = NULL;
	L->seg = NULL;
}

/* ------------------------------------------------------------- kernels */

static ir_stmt *add_scalar(ir_module *m, ir_buf *acc, ir_val *v)
{
	return ir_assign_stmt(m, S_ADD, NULL, 0, 0, acc, (ir_idx *[]){NULL}, v);
}

/* What each kernel does at position k of a segment, after `pos`: add its
 * log p, draw its value, draw it from the prefix on only (a branch around
 * the draw, or, TAIL_COMPLETE_BLEND, a select of the drawn value or the
 * given one: straight code, which a loop over the rows of several
 * positions vectorizes, where LLVM threads the jumps of the branches into
 * a maze it does not), or write the family's arguments out. */
typedef enum tail_kind { TAIL_LOGP, TAIL_SAMPLE, TAIL_COMPLETE, TAIL_COMPLETE_BLEND, TAIL_CONDITIONALS } tail_kind;

/* What position k of segment s does: compute the family's arguments, then
 * the tail (add log p, draw the value, write the arguments), then advance
 * the scans. */
static void position_body(lowerer *L, segment *s, tail_kind tail, ir_buf *lp, ir_buf *out, ir_block *dst)
{
	ir_module *m = L->m;
	ir_block_append(m, dst, &s->pos);
	ir_idx *vi[IR_MAX_RANK] = {s->var->shape.rank ? s->elem : NULL};
	switch (tail) {
	case TAIL_LOGP:
		ir_block_push(m, dst, add_scalar(m, lp, s->logp));
		break;
	case TAIL_SAMPLE:
		ir_block_push(m, dst, ir_assign_stmt(m, S_SET, NULL, 0, 0, s->obs, vi, s->sample));
		break;
	case TAIL_COMPLETE: {
		ir_stmt *c = ir_stmt_new(m, S_IF_GE);
		c->a = global_pos(m, s);
		c->b = ir_idx_leaf(m, IX_PREFIX);
		ir_block_push(m, &c->body, ir_assign_stmt(m, S_SET, NULL, 0, 0, s->obs, vi, s->sample));
		ir_block_push(m, dst, c);
		break;
	}
	case TAIL_COMPLETE_BLEND: {
		ir_val *drawn = ir_op(m, IR_GE, ir_int(m, global_pos(m, s)), ir_int(m, ir_idx_leaf(m, IX_PREFIX)), NULL);
		ir_val *v = ir_op(m, IR_SELECT, drawn, s->sample, ir_read(m, s->obs, vi));
		ir_block_push(m, dst, ir_assign_stmt(m, S_SET, NULL, 0, 0, s->obs, vi, v));
		break;
	}
	case TAIL_CONDITIONALS: {
		/* out[cond_base + k * cond_size + (offset of the argument) + element],
		 * over the elements of the argument's shape: a scalar argument
		 * may be a read of a whole tensor's element (b[i]), which is one
		 * real, not the tensor */
		static const char *const names[IR_MAX_RANK] = {"r0", "r1", "r2"};
		int64_t off = 0;
		for (size_t a = 0; a < s->args.len; a++) {
			ir_val *v = s->args.items[a];
			const shape *sh = s->arg_shapes.items[a];
			int rank = sh->rank;
			ir_loop *loops[IR_MAX_RANK];
			ir_idx *idx[IR_MAX_RANK] = {0};
			ir_idx *flat = ir_idx_const(m, 0);
			for (int d = 0; d < rank; d++) {
				loops[d] = ir_loop_new(m, names[d], ir_idx_const(m, 0), ir_idx_const(m, sh->dims[d]));
				idx[d] = ir_idx_loop(m, loops[d]);
				flat = ir_idx_bin(m, IX_ADD, ir_idx_bin(m, IX_MUL, flat, ir_idx_const(m, sh->dims[d])), idx[d]);
			}
			ir_idx *o = ir_idx_bin(m, IX_ADD,
			                       ir_idx_bin(m, IX_MUL, ir_idx_loop(m, s->k), ir_idx_const(m, s->cond_size)),
			                       ir_idx_bin(m, IX_ADD, ir_idx_const(m, s->cond_base + off), flat));
			ir_val *val = rank ? ir_subst_val(m, v, L->ph, idx, rank) : v;
			ir_block_push(m, dst, ir_assign_stmt(m, S_SET, loops, rank, rank, out, (ir_idx *[]){o}, val));
			off += shape_size(sh);
		}
		break;
	}
	}
	ir_block_push(m, dst, segment_updates(m, s, &s->update));
}

/* One pass over all segments of a row: per segment the accumulators are
 * reset, then each position in order. */
static void emit_segments(lowerer *L, ir_block *dst, tail_kind tail, ir_buf *lp, ir_buf *out)
{
	ir_module *m = L->m;
	for (int i = 0; i < L->low->nsegs; i++) {
		segment *s = &L->low->segs[i];
		ir_block_append(m, dst, &s->pre);
		ir_stmt *f = ir_for(m, s->k);
		position_body(L, s, tail, lp, out, &f->body);
		ir_block_push(m, dst, f);
	}
}

ir_stmt *segment_updates(ir_module *m, const segment *s, const ir_block *update)
{
	ir_stmt *c = ir_stmt_new(m, S_IF_GE);
	c->a = ir_idx_const(m, s->npos - 2);
	c->b = ir_idx_loop(m, s->k);
	ir_block_append(m, &c->body, update);
	return c;
}

/* ------------------------------------------------------ blocks of rows */

/* Rows processed together: each weight a position reads (FVSBN's row of W,
 * NADE's row of V) is loaded once for all of them, from cache. */
#define ROW_BLOCK 8
/* Gradient kernels whose rows keep at most this many reals each take blocks
 * of 2 x ROW_BLOCK rows (block_rows_loop), log p and sampling blocks of
 * 8 x ROW_BLOCK (build_blocked). */
#define SMALL_ROW_STATE 64
/* Consecutive one-position variables (scalars) share a loop over the rows
 * of a block, this many at most: a loop each cost LLVM 100 ms a variable
 * in M_complete (100 scalar bin variables built in 12.8-13.5 s, 200 in
 * 49.7 s; now 4.6 s and 7.8-11.3 s: bench/README.md), and
 * LLVM does not vectorize a loop of 16 (more runtime checks than it
 * makes), whose sampling then ran 3.4-4.4x slower. */
#define SCALARS_PER_LOOP 8

/* A kernel over blocks of rows keeps what each row carries from one
 * position to the next (the row-stage temps, the scans, log p) once per row
 * of the block: those buffers get a leading dimension of the block size, indexed
 * by the row's place in the block. */
typedef struct blocker {
	ir_module *m;
	int64_t block;       /* rows in a block; 0: only counting what persists */
	ptrvec from, to;     /* ir_buf* -> its per-block copy */
	ir_idx *b;           /* the row's place in its block */
} blocker;

static ir_buf *block_buf(blocker *k, ir_buf *b)
{
	for (size_t i = 0; i < k->from.len; i++)
		if (k->from.items[i] == b)
			return k->to.items[i];
	return NULL;
}

static bool block_known(blocker *k, ir_buf *b)
{
	for (size_t i = 0; i < k->from.len; i++)
		if (k->from.items[i] == b)
			return true;
	return false;
}

static void block_persist(blocker *k, ir_buf *b)
{
	if (b->cls != BUF_TEMP || block_known(k, b) || b->rank >= IR_MAX_RANK)
		return;
	ptrvec_push(k->m->arena, &k->from, b);
	ir_buf *copy = NULL;
	if (k->block > 0) {
		int64_t dims[IR_MAX_RANK] = {k->block, b->dims[0], b->dims[1]};
		copy = ir_buf_new(k->m, b->name, BUF_TEMP, b->rank + 1, dims);
		copy->block_rows = true;
	}
	ptrvec_push(k->m->arena, &k->to, copy);
}

static void block_persist_block(blocker *k, const ir_block *blk)
{
	for (size_t i = 0; i < blk->stmts.len; i++) {
		const ir_stmt *s = blk->stmts.items[i];
		if (s->kind == S_FOR || s->kind == S_IF_GE)
			block_persist_block(k, &s->body);
		for (int a = 0; a < s->nassigns; a++)
			block_persist(k, s->assigns[a].buf);
	}
}

/* ir_read_map for blocks of rows: a read of a per-block buffer gets the
 * row's place in the block as its first index. */
static ir_buf *block_read(void *arg, ir_buf *b, ir_idx **idx)
{
	blocker *k = arg;
	ir_buf *nb = block_buf(k, b);
	if (!nb)
		return b;
	memmove(idx + 1, idx, (IR_MAX_RANK - 1) * sizeof *idx); /* rank < IR_MAX_RANK: block_persist */
	idx[0] = k->b;
	return nb;
}

static ir_idx *block_idx(blocker *k, ir_idx *i)
{
	return ir_remap_idx(k->m, i, block_read, k);
}

static ir_val *block_val(blocker *k, ir_val *v)
{
	return ir_remap_val(k->m, v, block_read, k);
}

/* A copy of a statement reading and writing the per-block buffers. */
static ir_stmt *block_stmt(blocker *k, const ir_stmt *s)
{
	ir_stmt *c = ir_stmt_new(k->m, s->kind);
	*c = *s;
	c->body = (ir_block){0};
	if (s->kind == S_FOR || s->kind == S_IF_GE) {
		c->a = block_idx(k, s->a);
		c->b = block_idx(k, s->b);
		for (size_t i = 0; i < s->body.stmts.len; i++)
			ir_block_push(k->m, &c->body, block_stmt(k, s->body.stmts.items[i]));
		return c;
	}
	c->assigns = arena_alloc(k->m->arena, (size_t)s->nassigns * sizeof *c->assigns);
	for (int a = 0; a < s->nassigns; a++) {
		const ir_assign *sa = &s->assigns[a];
		ir_assign *ca = &c->assigns[a];
		for (int d = 0; d < IR_MAX_RANK; d++)
			ca->idx[d] = d < sa->buf->rank ? block_idx(k, sa->idx[d]) : NULL;
		ca->buf = block_read(k, sa->buf, ca->idx);
		ca->val = block_val(k, sa->val);
	}
	return c;
}

static void block_stmts(blocker *k, ir_block *dst, const ir_block *src)
{
	for (size_t i = 0; i < src->stmts.len; i++)
		ir_block_push(k->m, dst, block_stmt(k, src->stmts.items[i]));
}

/* A loop over the rows of block loop `blk`. */
static ir_stmt *rows_of(ir_module *m, ir_loop *blk)
{
	ir_loop *r = ir_loop_new(m, "row", ir_idx_const(m, 0), ir_idx_const(m, 0));
	r->is_rows = true;
	r->block_of = blk;
	ir_stmt *s = ir_stmt_new(m, S_FOR);
	s->loop = r;
	return s;
}

static void block_persist_carried(blocker *k, ir_buf *lp, const lowered *low)
{
	block_persist(k, lp);
	block_persist_block(k, &low->row);
	for (int i = 0; i < low->nsegs; i++) {
		block_persist_block(k, &low->segs[i].pre);
		block_persist_block(k, &low->segs[i].update);
	}
}

/* The statements of a position loop k of one position, at that position
 * (k = 0), into dst; false when a statement cannot be (a loop bounded by
 * k). */
static bool position_at(ir_module *m, const ir_block *per, ir_loop *k, ir_block *dst)
{
	ir_idx *zero = ir_idx_const(m, 0);
	for (size_t i = 0; i < per->stmts.len; i++) {
		ir_stmt *t = ir_subst_stmt(m, per->stmts.items[i], k, zero);
		if (!t)
			return false;
		ir_block_push(m, dst, t);
	}
	return true;
}

/* A kernel over blocks of rows (logp_batch, sample, complete):
 * for each block, every position of the order is taken for all the rows of
 * the block before the next one. */
static void build_blocked(lowerer *L, ir_kernel *k, tail_kind tail, ir_buf *out)
{
	ir_module *m = L->m;
	lowered *low = L->low;
	ir_buf *lp = ir_temp_scalar(m, "lp");
	/* what each row carries from one position to the next: log p, the row
	 * stage, the scans */
	blocker count = {.m = m, .block = 0};
	block_persist_carried(&count, lp, low);
	int64_t reals = 0;
	for (size_t i = 0; i < count.from.len; i++) {
		const ir_buf *b = count.from.items[i];
		reals += b->size > 0 ? b->size : 1;
	}
	/* log p and sampling whose rows carry a few reals (FVSBN's: its log p
	 * alone, or nothing) take blocks of 8 x ROW_BLOCK rows: the sums of a
	 * group of positions run in tiles of rows (cg_pair_positions.c), and
	 * the later tiles find the positions' weights in cache (FVSBN's W, 4.9
	 * MB in f64, read from L3 once per 64 rows, not 8: log p at batch 256
	 * 1.35x in f64, 1.3x in f32; blocks of 32 rows 1.25x and 1.3x, of 16
	 * 1.15x and 1.25x; sampling, whose groups were one block of 8 rows,
	 * 1.3x in f32, 1.45x in f64).  A partial block runs its full tiles
	 * too.  Rows that keep vectors (NADE's scans) fit in cache better 8 at
	 * a time. */
	int64_t rb = reals <= SMALL_ROW_STATE ? 8 * ROW_BLOCK : ROW_BLOCK;
	blocker bk = {.m = m, .block = rb};
	block_persist_carried(&bk, lp, low);
	ir_loop *blk = ir_loop_new(m, "block", ir_idx_const(m, 0), ir_idx_const(m, 0));
	blk->is_rows = true;
	blk->block = rb;
	ir_stmt *blocks = ir_stmt_new(m, S_FOR);
	blocks->loop = blk;
	ir_block_append(m, &k->body, &low->theta);

	/* the rows' starts: log p = 0, the row stage, the scans reset */
	ir_stmt *start = rows_of(m, blk);
	bk.b = ir_idx_bin(m, IX_SUB, ir_idx_loop(m, start->loop), ir_idx_loop(m, blk));
	ir_block first = {0};
	if (tail == TAIL_LOGP)
		ir_block_push(m, &first, ir_stmt_fill(m, lp, ir_const(m, 0)));
	ir_block_append(m, &first, &low->row);
	for (int i = 0; i < low->nsegs; i++)
		ir_block_append(m, &first, &low->segs[i].pre);
	block_stmts(&bk, &start->body, &first);
	ir_block_push(m, &blocks->body, start);

	/* each position, for every row of the block; consecutive variables of
	 * one position (scalars) share a loop over the rows, up to
	 * SCALARS_PER_LOOP of them */
	ir_stmt *scalars = NULL, *drawn_from = NULL;
	int nscalars = 0;
	for (int i = 0; i < low->nsegs; i++) {
		segment *s = &low->segs[i];
		ir_block at0 = {0};
		if (s->npos == 1) {
			ir_block one = {0};
			position_body(L, s, tail == TAIL_COMPLETE ? TAIL_COMPLETE_BLEND : tail, lp, NULL, &one);
			if (!position_at(m, &one, s->k, &at0))
				at0 = (ir_block){0};
		}
		if (at0.stmts.len > 0) {
			if (!scalars || nscalars == SCALARS_PER_LOOP) {
				scalars = rows_of(m, blk);
				scalars->loop->vector_rows = true;
				drawn_from = NULL;
				if (tail == TAIL_COMPLETE) {
					/* completion skips a loop whose positions are all
					 * given: its blends would draw them all */
					drawn_from = ir_stmt_new(m, S_IF_GE);
					drawn_from->b = ir_idx_leaf(m, IX_PREFIX);
					ir_block_push(m, &drawn_from->body, scalars);
				}
				ir_block_push(m, &blocks->body, drawn_from ? drawn_from : scalars);
				nscalars = 0;
			}
			if (drawn_from)
				drawn_from->a = ir_idx_const(m, s->first_pos);
			nscalars++;
			bk.b = ir_idx_bin(m, IX_SUB, ir_idx_loop(m, scalars->loop), ir_idx_loop(m, blk));
			block_stmts(&bk, &scalars->body, &at0);
			continue;
		}
		scalars = NULL;
		ir_stmt *f = ir_stmt_new(m, S_FOR);
		f->loop = s->k;
		ir_stmt *rows = rows_of(m, blk);
		bk.b = ir_idx_bin(m, IX_SUB, ir_idx_loop(m, rows->loop), ir_idx_loop(m, blk));
		ir_block per = {0};
		position_body(L, s, tail, lp, NULL, &per);
		block_stmts(&bk, &rows->body, &per);
		ir_block_push(m, &f->body, rows);
		ir_block_push(m, &blocks->body, f);
	}

	/* the rows' ends */
	if (tail != TAIL_LOGP) {
		ir_block_push(m, &k->body, blocks);
		return;
	}
	ir_stmt *end = rows_of(m, blk);
	bk.b = ir_idx_bin(m, IX_SUB, ir_idx_loop(m, end->loop), ir_idx_loop(m, blk));
	ir_block last = {0};
	ir_block_push(m, &last, ir_assign_stmt(m, S_SET, NULL, 0, 0, out, (ir_idx *[]){ir_idx_leaf(m, IX_ROW)}, ir_read(m, lp, NULL)));
	block_stmts(&bk, &end->body, &last);
	ir_block_push(m, &blocks->body, end);
	ir_block_push(m, &k->body, blocks);
}

/* The TEMPs a block sets (any statement but S_ADD), so each row needs its own. */
static void block_persist_set(blocker *k, const ir_block *blk, int64_t *reals)
{
	for (size_t i = 0; i < blk->stmts.len; i++) {
		const ir_stmt *s = blk->stmts.items[i];
		if (s->kind == S_FOR || s->kind == S_IF_GE)
			block_persist_set(k, &s->body, reals);
		if (s->kind == S_ADD)
			continue;
		for (int a = 0; a < s->nassigns; a++) {
			ir_buf *b = s->assigns[a].buf;
			if (b->cls == BUF_TEMP && !block_known(k, b)) {
				block_persist(k, b);
				*reals += b->size > 0 ? b->size : 1;
			}
		}
	}
}

static bool idx_const_only(const ir_idx *x)
{
	if (!x)
		return true;
	if (x->kind == IX_ADD || x->kind == IX_SUB || x->kind == IX_MUL)
		return idx_const_only(x->u.bin.a) && idx_const_only(x->u.bin.b);
	return x->kind == IX_CONST;
}

bool block_rows_loop(ir_module *m, ir_stmt *rows_loop, int64_t max_reals)
{
	const ir_block *body = &rows_loop->body;
	for (size_t i = 0; i < body->stmts.len; i++) {
		const ir_stmt *s = body->stmts.items[i];
		if (s->kind == S_FOR && (s->loop->is_rows || !idx_const_only(s->loop->lo) || !idx_const_only(s->loop->hi)))
			return false;
	}
	/* what a row keeps, counted first: when it is a few reals (FVSBN's
	 * gradient) a block takes twice the rows, so that each pass over the
	 * params and their gradient serves 16 rows (FVSBN's f32 gradient:
	 * 1.2x); rows that keep vectors (NADE's H-vectors) stay 8 to a block,
	 * which fits in cache better */
	blocker count = {.m = m, .block = 0};
	int64_t reals = 0;
	block_persist_set(&count, body, &reals);
	int64_t block = reals <= SMALL_ROW_STATE ? 2 * ROW_BLOCK : ROW_BLOCK;
	if (reals * block > max_reals)
		return false;
	blocker bk = {.m = m, .block = block};
	block_persist_set(&bk, body, &reals);
	ir_loop *blk = ir_loop_new(m, "block", ir_idx_const(m, 0), ir_idx_const(m, 0));
	blk->is_rows = true;
	blk->block = block;
	ir_block blocked = {0};
	ir_stmt *rows = NULL; /* the rows loop gathering the statements between position loops */
	for (size_t i = 0; i < body->stmts.len; i++) {
		const ir_stmt *s = body->stmts.items[i];
		if (s->kind == S_FOR) {
			/* for k { for row in block { its body } } */
			ir_stmt *pos = ir_stmt_new(m, S_FOR);
			pos->loop = s->loop;
			pos->reverse = s->reverse;
			ir_stmt *r = rows_of(m, blk);
			bk.b = ir_idx_bin(m, IX_SUB, ir_idx_loop(m, r->loop), ir_idx_loop(m, blk));
			block_stmts(&bk, &r->body, &s->body);
			ir_block_push(m, &pos->body, r);
			ir_block_push(m, &blocked, pos);
			rows = NULL;
			continue;
		}
		if (!rows) {
			rows = rows_of(m, blk);
			ir_block_push(m, &blocked, rows);
		}
		bk.b = ir_idx_bin(m, IX_SUB, ir_idx_loop(m, rows->loop), ir_idx_loop(m, blk));
		ir_block_push(m, &rows->body, block_stmt(&bk, s));
	}
	rows_loop->loop = blk;
	rows_loop->body = blocked;
	return true;
}

static ir_buf *out_buf(ir_module *m)
{
	return ir_buf_new(m, "out", BUF_OUT, 1, (int64_t[]){1, 0, 0});
}

static void build_kernels(lowerer *L)
{
	ir_module *m = L->m;
	const model *mod = L->mod;
	if (mod->objective_has_loglik) {
		/* logp: one observation */
		ir_kernel *k = ir_kernel_new(m, KER_LOGP, "logp");
		k->result = ir_temp_scalar(m, "lp");
		ir_block_push(m, &k->body, ir_stmt_fill(m, k->result, ir_const(m, 0)));
		ir_block_append(m, &k->body, &L->low->theta);
		ir_block_append(m, &k->body, &L->low->row);
		emit_segments(L, &k->body, TAIL_LOGP, k->result, NULL);
		m->kernels[KER_LOGP] = k;

		/* logp_batch: out[r] = log p(row r), over blocks of rows */
		k = ir_kernel_new(m, KER_LOGP_BATCH, "logp_batch");
		build_blocked(L, k, TAIL_LOGP, out_buf(m));
		m->kernels[KER_LOGP_BATCH] = k;

		/* sample and complete, over blocks of rows too */
		for (int c = 0; c < 2; c++) {
			k = ir_kernel_new(m, c ? KER_COMPLETE : KER_SAMPLE, c ? "complete" : "sample");
			build_blocked(L, k, c ? TAIL_COMPLETE : TAIL_SAMPLE, NULL);
			m->kernels[c ? KER_COMPLETE : KER_SAMPLE] = k;
		}

		/* conditionals: one observation */
		k = ir_kernel_new(m, KER_CONDITIONALS, "conditionals");
		ir_block_append(m, &k->body, &L->low->theta);
		ir_block_append(m, &k->body, &L->low->row);
		emit_segments(L, &k->body, TAIL_CONDITIONALS, NULL, out_buf(m));
		m->kernels[KER_CONDITIONALS] = k;
	}
	for (int i = 0; i < KER__COUNT; i++)
		if (m->kernels[i])
			ir_kernel_collect_temps(m, m->kernels[i]);
}

/* ---------------------------------------------------------- init kernel */

/* Folds an init argument that may name dims (checked to be constant). */
static double init_num(const expr *e)
{
	if (e->kind == E_NUM)
		return e->u.num;
	if (e->kind == E_NAME && e->sym && e->sym->kind == SYM_DIM)
		return (double)e->sym->dim_value;
	if (e->kind == E_UNARY)
		return -init_num(e->u.unary.operand);
	if (e->kind == E_BINARY) {
		double a = init_num(e->u.binary.lhs), b = init_num(e->u.binary.rhs);
		switch (e->u.binary.op) {
		case OP_ADD: return a + b;
		case OP_SUB: return a - b;
		case OP_MUL: return a * b;
		case OP_DIV: return a / b;
		case OP_POW: return pow(a, b);
		default: break;
		}
	}
	return NAN;
}

static void build_init(lowerer *L)
{
	ir_module *m = L->m;
	ir_kernel *k = ir_kernel_new(m, KER_INIT, "init");
	for (size_t p = 0; p < L->mod->params.len; p++) {
		sym *y = L->mod->params.items[p];
		ir_buf *b = buf_of(L, y);
		const expr *e = y->decl->u.var.init;
		/* kind: 0 the constant a (default 0), 1 normal(a, c), 2 uniform(a, c);
		 * the checker made sure of the forms */
		double a = 0, c = 0;
		int kind = 0;
		if (e && e->kind == E_CALL) {
			kind = e->u.call.name[0] == 'n' ? 1 : 2;
			a = init_num(e->u.call.args.items[0]);
			c = init_num(e->u.call.args.items[1]);
		} else if (e) {
			a = init_num(e);
		}
		ir_loop *loops[IR_MAX_RANK];
		ir_idx *idx[IR_MAX_RANK] = {0};
		int n = ir_buf_loops(m, b, loops, idx);
		ir_idx *flat = ir_idx_const(m, b->offset);
		ir_idx *local = ir_idx_const(m, 0);
		for (int d = 0; d < n; d++)
			local = ir_idx_bin(m, IX_ADD, ir_idx_bin(m, IX_MUL, local, ir_idx_const(m, b->dims[d])), idx[d]);
		flat = ir_idx_bin(m, IX_ADD, flat, local);
		ir_val *v;
		if (kind == 1)
			v = ir_op(m, IR_ADD, ir_const(m, a),
			          ir_op(m, IR_MUL, ir_const(m, c), ir_draw(m, DRAW_NORMAL, CHAIN_STREAM_INIT, flat, ir_idx_const(m, 0), 0), NULL),
			          NULL);
		else if (kind == 2)
			v = ir_op(m, IR_ADD, ir_const(m, a),
			          ir_op(m, IR_MUL, ir_const(m, c - a), ir_draw(m, DRAW_UNIFORM, CHAIN_STREAM_INIT, flat, ir_idx_const(m, 0), 0), NULL),
			          NULL);
		else
			v = ir_const(m, a);
		if (m->param_used[p]) {
			ir_buf *mask = ir_buf_new(m, arena_printf(m->arena, "%s_used", y->name), BUF_CONST, 1, (int64_t[]){b->size, 0, 0});
			mask->bits = m->param_used[p]; /* the same layout, a bit per entry */
			v = ir_op(m, IR_SELECT, ir_read(m, mask, (ir_idx *[]){local}), v, ir_const(m, 0));
		}
		ir_block_push(m, &k->body, ir_assign_stmt(m, S_SET, loops, n, n, b, idx, v));
	}
	m->kernels[KER_INIT] = k;
	ir_kernel_collect_temps(m, k);
}

/* ---------------------------------------------------------------- main */

ir_module *lower_model(diag_ctx *d, const model *mod, arena *a)
{
	ir_module *m = ir_module_new(a, mod);
	lowerer LL = {.d = d, .m = m, .a = a, .mod = mod}, *L = &LL;
	L->low = arena_alloc(a, sizeof *L->low);
	m->low = L->low;
	L->ph[0] = ir_loop_new(m, "p0", ir_idx_const(m, 0), ir_idx_const(m, 0));
	L->ph[1] = ir_loop_new(m, "p1", ir_idx_const(m, 0), ir_idx_const(m, 0));

	/* buffers of the declared tensors */
	const ptrvec *groups[] = {&mod->params, &mod->consts, &mod->inputs, &mod->data};
	size_t total = 0, nvars = 0;
	for (int g = 0; g < 4; g++)
		total += groups[g]->len;
	L->var_buf = arena_alloc(a, (total + 1) * sizeof(ir_buf *));
	for (int g = 0; g < 4; g++)
		for (size_t i = 0; i < groups[g]->len; i++) {
			sym *y = groups[g]->items[i];
			ir_buf_class cls = g == 0 ? BUF_THETA : g == 1 ? BUF_CONST : BUF_OBS;
			int64_t dims[IR_MAX_RANK] = {y->shape.dims[0], y->shape.dims[1], 0};
			ir_buf *b = ir_buf_new(m, y->name, cls, y->shape.rank, dims);
			b->offset = (int64_t)y->offset;
			if (cls == BUF_OBS)
				b->value_top = y->vkind == K_BIN ? 2 : y->vkind == K_CAT ? y->cat_k : y->vkind == K_INT ? (int64_t)1 << 53 : 0;
			b->value_max = b->value_top - 1;
			if (cls == BUF_CONST) {
				b->values = y->values;
				b->is_int = false;
			}
			L->var_buf[nvars++] = b;
			ptrmap_put(a, &L->buf_of_sym, y, b);
		}

	/* segments, in the order */
	L->low->nsegs = (int)mod->order.len;
	L->low->segs = arena_alloc(a, (mod->order.len + 1) * sizeof(segment));
	int64_t cond_base = 0;
	for (int i = 0; i < L->low->nsegs; i++) {
		segment *s = &L->low->segs[i];
		s->var = mod->order.items[i];
		s->obs = buf_of(L, s->var);
		s->npos = shape_size(&s->var->shape);
		s->first_pos = s->var->first_pos;
		s->k = ir_loop_new(m, "k", ir_idx_const(m, 0), ir_idx_const(m, s->npos));
		/* a permutation table only when the order is neither: a `by` or
		 * `random` order that comes out natural or reversed takes none */
		bool natural, reverse;
		if (s->var->order_form == ORD_NATURAL || s->var->order_form == ORD_REVERSE) {
			natural = s->var->order_form == ORD_NATURAL || s->npos <= 1;
			reverse = !natural;
		} else {
			natural = true;
			reverse = s->npos > 1;
			for (int64_t k = 0; k < s->npos; k++) {
				natural &= s->var->perm[k] == k;
				reverse &= s->var->perm[k] == s->npos - 1 - k;
			}
		}
		if (!natural && !reverse) {
			s->perm = ir_buf_new(m, arena_printf(a, "%s_order", s->var->name), BUF_CONST, 1, (int64_t[]){s->npos, 0, 0});
			s->perm->is_int = true;
			s->perm->ivalues = s->var->perm;
		}
		s->elem = elem_at(L, s, ir_idx_loop(m, s->k));
	}
	for (int i = 0; i < L->low->nsegs && !L->failed; i++) {
		segment *s = &L->low->segs[i];
		lower_segment(L, s);
		s->cond_base = cond_base;
		cond_base += s->cond_size * s->npos;
	}
	/* the penalty or free objective: params only */
	if (mod->penalty && !L->failed) {
		L->seg = NULL;
		L->env = NULL;
		ir_block saved_theta = L->low->theta;
		L->low->theta = (ir_block){0};
		tval p = lower_expr(L, mod->penalty);
		L->low->penalty = L->low->theta;
		L->low->theta = saved_theta;
		L->low->penalty_val = p.v;
		L->low->penalty_sign = mod->penalty_sign;
	}
	if (!L->failed) {
		build_kernels(L);
		find_unused_params(m, L->var_buf);
		build_init(L);
	}
	/* the limits limit_sum_values found, for the descriptor */
	size_t nobs = mod->inputs.len + mod->data.len;
	for (size_t i = 0; i < nobs && !L->failed; i++) {
		const sym *y = i < mod->inputs.len ? mod->inputs.items[i] : mod->data.items[i - mod->inputs.len];
		const ir_buf *b = buf_of(L, y);
		if (b->value_max >= b->value_top - 1)
			continue;
		if (!m->value_max) {
			m->value_max = arena_alloc(a, nobs * sizeof(int64_t));
			for (size_t j = 0; j < nobs; j++)
				m->value_max[j] = -1;
		}
		m->value_max[i] = b->value_max;
	}
	free(L->stage);
	return L->failed ? NULL : m;
}

void lower_descriptor_tables(ir_module *m)
{
	const model *mod = m->model;
	const lowered *low = m->low;
	if (m->order_offsets)
		return; /* filled for an earlier emission */
	m->order_offsets = arena_alloc(m->arena, (size_t)(mod->num_positions + 1) * sizeof(int64_t));
	m->cond_offset = arena_alloc(m->arena, (size_t)(mod->num_positions + 2) * sizeof(int64_t));
	int64_t cond_end = 0;
	for (int i = 0; i < low->nsegs; i++) {
		const segment *s = &low->segs[i];
		for (int64_t k = 0; k < s->npos; k++) {
			m->order_offsets[s->first_pos + k] = (int64_t)s->var->offset + order_elem(s->var, k);
			m->cond_offset[s->first_pos + k] = s->cond_base + k * s->cond_size;
		}
		cond_end = s->cond_base + s->npos * s->cond_size;
	}
	m->cond_offset[mod->num_positions] = cond_end;
}
