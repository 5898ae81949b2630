/* ir.c -- the model IR: constructors, hash-consing, folding, printing.
 *
 * Scalar expressions (ir_val) are hash-consed per module: every constructor
 * looks its node up in the module's intern table first, so an expression
 * built twice is the same pointer.  Code generation relies on that to emit
 * each distinct value once per loop body, and differentiation to see shared
 * subexpressions.  Index expressions (ir_idx) are small and not interned;
 * ir_idx_equal compares them structurally, and the intern table uses it for
 * the indices of reads and draws.
 *
 * Simplification is deliberately timid: only rewrites that are exact in
 * IEEE arithmetic (x*1, x/1, -(-x), constant folding evaluated exactly as
 * the generated code evaluates it) or standard (x+0, x-0 ignore the sign of
 * a zero result).  x*0 -> 0 is not exact (NaN, Inf), so it only happens when
 * both sides are constants.
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "chainc.h"

const int ir_op_arity[IR_OP__COUNT] = {
#define X(name, arity) [IR_##name] = arity,
	IR_OPS(X)
#undef X
};

const char *const ir_op_name[IR_OP__COUNT] = {
#define X(name, arity) [IR_##name] = #name,
	IR_OPS(X)
#undef X
};

/* ------------------------------------------------------------- intern */

/* Open-addressing table of ir_val*, in the module's arena.  Growing leaves
 * the old slot array behind in the arena: at most as much again as the
 * final table, which is small next to the nodes themselves. */
typedef struct intern_table {
	ir_val **slots;
	size_t cap, len;    /* cap a power of two; len <= cap / 2 */
} intern_table;

static uint32_t hash_mix(uint32_t h, uint64_t x)
{
	/* FNV-1a style over the 8 bytes, then a final avalanche in hash_fin */
	for (int i = 0; i < 8; i++) {
		h ^= (uint32_t)(x & 0xff);
		h *= 16777619u;
		x >>= 8;
	}
	return h;
}

static uint32_t hash_fin(uint32_t h)
{
	h ^= h >> 16;
	h *= 0x7feb352du;
	h ^= h >> 15;
	h *= 0x846ca68bu;
	h ^= h >> 16;
	return h;
}

/* Structural hash of an index expression, consistent with ir_idx_equal. */
static uint32_t idx_hash(const ir_idx *x)
{
	uint32_t h = 2166136261u;
	if (!x)
		return hash_mix(h, 0x9e37);
	h = hash_mix(h, (uint64_t)x->kind + 1);
	switch (x->kind) {
	case IX_CONST:
		h = hash_mix(h, (uint64_t)x->u.c);
		break;
	case IX_LOOP:
		h = hash_mix(h, (uint64_t)(uintptr_t)x->u.loop);
		break;
	case IX_ADD: case IX_SUB: case IX_MUL:
		h = hash_mix(h, idx_hash(x->u.bin.a));
		h = hash_mix(h, idx_hash(x->u.bin.b));
		break;
	case IX_LOAD:
		h = hash_mix(h, (uint64_t)(uintptr_t)x->u.load.buf);
		for (int i = 0; i < IR_MAX_RANK; i++)
			h = hash_mix(h, idx_hash(x->u.load.idx[i]));
		break;
	case IX_PREFIX: case IX_ROW:
		break;
	}
	return hash_fin(h);
}

bool ir_idx_equal(const ir_idx *a, const ir_idx *b)
{
	if (a == b)
		return true;
	if (!a || !b || a->kind != b->kind)
		return false;
	switch (a->kind) {
	case IX_CONST:
		return a->u.c == b->u.c;
	case IX_LOOP:
		return a->u.loop == b->u.loop;
	case IX_ADD: case IX_SUB: case IX_MUL:
		return ir_idx_equal(a->u.bin.a, b->u.bin.a) && ir_idx_equal(a->u.bin.b, b->u.bin.b);
	case IX_LOAD:
		if (a->u.load.buf != b->u.load.buf)
			return false;
		for (int i = 0; i < IR_MAX_RANK; i++)
			if (!ir_idx_equal(a->u.load.idx[i], b->u.load.idx[i]))
				return false;
		return true;
	case IX_PREFIX: case IX_ROW:
		return true;
	}
	return false;
}

static uint64_t double_bits(double d)
{
	uint64_t u;
	memcpy(&u, &d, sizeof u);
	return u;
}

/* Hash of a value node whose children are already interned. */
static uint32_t val_hash(const ir_val *v)
{
	uint32_t h = hash_mix(2166136261u, (uint64_t)v->kind + 1);
	switch (v->kind) {
	case V_CONST:
		h = hash_mix(h, double_bits(v->u.c));
		break;
	case V_READ:
		h = hash_mix(h, (uint64_t)(uintptr_t)v->u.read.buf);
		for (int i = 0; i < IR_MAX_RANK; i++)
			h = hash_mix(h, idx_hash(v->u.read.idx[i]));
		break;
	case V_OP:
		h = hash_mix(h, (uint64_t)v->u.op.op);
		for (int i = 0; i < 3; i++)
			h = hash_mix(h, (uint64_t)(uintptr_t)v->u.op.a[i]);
		break;
	case V_INT:
		h = hash_mix(h, idx_hash(v->u.idx));
		break;
	case V_DRAW:
		h = hash_mix(h, (uint64_t)v->u.draw.kind);
		h = hash_mix(h, v->u.draw.stream);
		h = hash_mix(h, v->u.draw.c);
		h = hash_mix(h, idx_hash(v->u.draw.a));
		h = hash_mix(h, idx_hash(v->u.draw.b));
		h = hash_mix(h, idx_hash(v->u.draw.ci));
		h = hash_mix(h, (uint64_t)(uintptr_t)v->u.draw.arg);
		break;
	case V_STOP:
		h = hash_mix(h, (uint64_t)(uintptr_t)v->u.stop);
		break;
	}
	return hash_fin(h);
}

/* Structural equality of two value nodes whose children are interned (so
 * children compare by pointer; indices compare with ir_idx_equal; constants
 * by their bits, so 0.0 and -0.0 stay apart and a NaN equals itself). */
static bool val_equal(const ir_val *a, const ir_val *b)
{
	if (a->kind != b->kind)
		return false;
	switch (a->kind) {
	case V_CONST:
		return double_bits(a->u.c) == double_bits(b->u.c);
	case V_READ:
		if (a->u.read.buf != b->u.read.buf)
			return false;
		for (int i = 0; i < IR_MAX_RANK; i++)
			if (!ir_idx_equal(a->u.read.idx[i], b->u.read.idx[i]))
				return false;
		return true;
	case V_OP:
		return a->u.op.op == b->u.op.op && a->u.op.a[0] == b->u.op.a[0] &&
		       a->u.op.a[1] == b->u.op.a[1] && a->u.op.a[2] == b->u.op.a[2];
	case V_INT:
		return ir_idx_equal(a->u.idx, b->u.idx);
	case V_DRAW:
		return a->u.draw.kind == b->u.draw.kind && a->u.draw.stream == b->u.draw.stream &&
		       a->u.draw.c == b->u.draw.c && ir_idx_equal(a->u.draw.a, b->u.draw.a) &&
		       ir_idx_equal(a->u.draw.b, b->u.draw.b) && ir_idx_equal(a->u.draw.ci, b->u.draw.ci) &&
		       a->u.draw.arg == b->u.draw.arg;
	case V_STOP:
		return a->u.stop == b->u.stop;
	}
	return false;
}

static void intern_insert_slot(ir_val **slots, size_t cap, ir_val *v)
{
	size_t i = v->hash & (cap - 1);
	while (slots[i])
		i = (i + 1) & (cap - 1);
	slots[i] = v;
}

/* Returns the interned node equal to *tmpl, copying tmpl into the arena
 * (with a fresh id) the first time it is seen. */
static ir_val *intern(ir_module *m, const ir_val *tmpl)
{
	intern_table *t = m->intern;
	uint32_t h = val_hash(tmpl);
	size_t i = h & (t->cap - 1);
	for (ir_val *v; (v = t->slots[i]); i = (i + 1) & (t->cap - 1))
		if (v->hash == h && val_equal(v, tmpl))
			return v;
	ir_val *v = arena_alloc(m->arena, sizeof *v);
	*v = *tmpl;
	v->hash = h;
	v->id = m->next_id++;
	if (2 * (t->len + 1) > t->cap) {
		size_t cap = t->cap * 2;
		ir_val **slots = arena_alloc(m->arena, cap * sizeof *slots);
		for (size_t j = 0; j < t->cap; j++)
			if (t->slots[j])
				intern_insert_slot(slots, cap, t->slots[j]);
		t->slots = slots;
		t->cap = cap;
	}
	intern_insert_slot(t->slots, t->cap, v);
	t->len++;
	return v;
}

/* ------------------------------------------------------------- module */

ir_module *ir_module_new(arena *a, const model *mdl)
{
	ir_module *m = arena_alloc(a, sizeof *m);
	m->arena = a;
	m->model = mdl;
	intern_table *t = arena_alloc(a, sizeof *t);
	t->cap = 256;
	t->slots = arena_alloc(a, t->cap * sizeof *t->slots);
	m->intern = t;
	return m;
}

/* A buffer of the given class and shape; the caller sets offset (THETA GRAD
 * OBS OUT) or values (CONST).  Every buffer is listed in m->bufs. */
ir_buf *ir_buf_new(ir_module *m, const char *name, ir_buf_class cls, int rank, const int64_t *dims)
{
	ir_buf *b = arena_alloc(m->arena, sizeof *b);
	b->id = m->next_id++;
	b->name = arena_strdup(m->arena, name ? name : "t");
	b->cls = cls;
	if (rank < 0)
		rank = 0;
	if (rank > IR_MAX_RANK)
		rank = IR_MAX_RANK;
	b->rank = rank;
	b->size = 1;
	for (int i = 0; i < rank; i++) {
		b->dims[i] = dims ? dims[i] : 1;
		b->size *= b->dims[i];
	}
	ptrvec_push(m->arena, &m->bufs, b);
	return b;
}

ir_loop *ir_loop_new(ir_module *m, const char *name, ir_idx *lo, ir_idx *hi)
{
	ir_loop *l = arena_alloc(m->arena, sizeof *l);
	l->id = m->next_id++;
	l->name = arena_strdup(m->arena, name ? name : "i");
	l->lo = lo;
	l->hi = hi;
	return l;
}

/* -------------------------------------------------------------- index */

static ir_idx *idx_new(ir_module *m, ir_idx_kind k)
{
	ir_idx *x = arena_alloc(m->arena, sizeof *x);
	x->kind = k;
	return x;
}

ir_idx *ir_idx_const(ir_module *m, int64_t c)
{
	ir_idx *x = idx_new(m, IX_CONST);
	x->u.c = c;
	return x;
}

ir_idx *ir_idx_loop(ir_module *m, ir_loop *l)
{
	ir_idx *x = idx_new(m, IX_LOOP);
	x->u.loop = l;
	return x;
}

static bool is_iconst(const ir_idx *x, int64_t c)
{
	return x && x->kind == IX_CONST && x->u.c == c;
}

/* a op b on 64-bit integers, wrapping instead of overflowing (as the
 * generated code's i64 arithmetic would, without the UB). */
static int64_t idx_eval(ir_idx_kind k, int64_t a, int64_t b)
{
	uint64_t ua = (uint64_t)a, ub = (uint64_t)b;
	switch (k) {
	case IX_ADD: return (int64_t)(ua + ub);
	case IX_SUB: return (int64_t)(ua - ub);
	default:     return (int64_t)(ua * ub);
	}
}

/* a op b, folding constants: c op c, x+0, 0+x, x-0, x-x, x*1, 1*x, x*0,
 * 0*x (exact on integers), and (x + c1) + c2 -> x + (c1 + c2) so that
 * offsets written in several steps end up as one constant. */
ir_idx *ir_idx_bin(ir_module *m, ir_idx_kind k, ir_idx *a, ir_idx *b)
{
	if (a && b && a->kind == IX_CONST && b->kind == IX_CONST)
		return ir_idx_const(m, idx_eval(k, a->u.c, b->u.c));
	switch (k) {
	case IX_ADD:
		if (is_iconst(b, 0))
			return a;
		if (is_iconst(a, 0))
			return b;
		if (a && a->kind == IX_CONST) { /* constants to the right */
			ir_idx *t = a;
			a = b;
			b = t;
		}
		if (b && b->kind == IX_CONST && a && a->kind == IX_ADD &&
		    a->u.bin.b && a->u.bin.b->kind == IX_CONST)
			return ir_idx_bin(m, IX_ADD, a->u.bin.a,
			                  ir_idx_const(m, idx_eval(IX_ADD, a->u.bin.b->u.c, b->u.c)));
		break;
	case IX_SUB:
		if (is_iconst(b, 0))
			return a;
		if (ir_idx_equal(a, b) && a && a->kind != IX_LOAD)
			return ir_idx_const(m, 0);
		if (b && b->kind == IX_CONST && b->u.c != INT64_MIN)
			return ir_idx_bin(m, IX_ADD, a, ir_idx_const(m, -b->u.c));
		break;
	case IX_MUL:
		if (is_iconst(b, 1))
			return a;
		if (is_iconst(a, 1))
			return b;
		if (is_iconst(a, 0) || is_iconst(b, 0))
			return ir_idx_const(m, 0);
		break;
	default:
		break;
	}
	ir_idx *x = idx_new(m, k);
	x->u.bin.a = a;
	x->u.bin.b = b;
	return x;
}

/* b[idx[0..rank)]: an index loaded from a buffer (int constants, or a real
 * buffer converted to an integer). */
ir_idx *ir_idx_load(ir_module *m, ir_buf *b, ir_idx **idx)
{
	ir_idx *x = idx_new(m, IX_LOAD);
	x->u.load.buf = b;
	for (int i = 0; i < b->rank; i++)
		x->u.load.idx[i] = idx ? idx[i] : NULL;
	return x;
}

ir_idx *ir_idx_leaf(ir_module *m, ir_idx_kind k)
{
	return idx_new(m, k);
}

/* ir_idx_range with the values of observations at most cap (the most
 * a kind allows when cap is larger). */
static int idx_range(const ir_idx *x, int64_t cap, int64_t *lo, int64_t *hi)
{
	int64_t a, b, c, d;
	switch (x->kind) {
	case IX_CONST:
		*lo = *hi = x->u.c;
		return 1;
	case IX_LOOP: {
		if (x->u.loop->narrow) {
			*lo = x->u.loop->narrow_lo;
			*hi = x->u.loop->narrow_hi;
			return *lo <= *hi ? 1 : -1;
		}
		int ra = idx_range(x->u.loop->lo, cap, &a, &b), rb = idx_range(x->u.loop->hi, cap, &c, &d);
		if (ra < 0 || rb < 0)
			return -1;
		if (!ra || !rb)
			return 0;
		if (d <= a) /* [lo, hi) is empty for every lo and hi it can have */
			return -1;
		*lo = a;
		*hi = d - 1;
		return 1;
	}
	case IX_ADD: case IX_SUB: case IX_MUL: {
		int ra = idx_range(x->u.bin.a, cap, &a, &b), rb = idx_range(x->u.bin.b, cap, &c, &d);
		if (ra < 0 || rb < 0)
			return -1;
		if (!ra || !rb)
			return 0;
		int64_t v[4];
		bool over = false;
		if (x->kind == IX_ADD) {
			over = __builtin_add_overflow(a, c, &v[0]) || __builtin_add_overflow(b, d, &v[1]);
			v[2] = v[0], v[3] = v[1];
		} else if (x->kind == IX_SUB) {
			over = __builtin_sub_overflow(a, d, &v[0]) || __builtin_sub_overflow(b, c, &v[1]);
			v[2] = v[0], v[3] = v[1];
		} else {
			over = __builtin_mul_overflow(a, c, &v[0]) || __builtin_mul_overflow(a, d, &v[1]) ||
			       __builtin_mul_overflow(b, c, &v[2]) || __builtin_mul_overflow(b, d, &v[3]);
		}
		if (over)
			return 0;
		*lo = *hi = v[0];
		for (int i = 1; i < 4; i++) {
			*lo = v[i] < *lo ? v[i] : *lo;
			*hi = v[i] > *hi ? v[i] : *hi;
		}
		return 1;
	}
	case IX_LOAD: {
		const ir_buf *buf = x->u.load.buf;
		if (buf->cls == BUF_OBS && buf->value_top > 0) {
			/* any value its kind allows: a family's support does not
			 * bound what its value indexes (on cat(K) with a w : real[J],
			 * on int), which read past the array, and wrote past its
			 * gradient */
			*lo = 0;
			*hi = buf->value_top - 1 < cap ? buf->value_top - 1 : cap;
			return 1;
		}
		if (!buf->is_int || !buf->ivalues || buf->size < 1)
			return 0;
		/* a vector (a permutation): the entries its index can reach, else
		 * all of them */
		int64_t from = 0, to = buf->size - 1;
		if (buf->rank == 1 && x->u.load.idx[0]) {
			int r = idx_range(x->u.load.idx[0], cap, &a, &b);
			if (r < 0)
				return -1;
			if (r > 0) {
				from = a > 0 ? a : 0;
				to = b < to ? b : to;
				if (from > to)
					return 0; /* an index outside the vector: check_index says so */
			}
		}
		*lo = *hi = buf->ivalues[from];
		for (int64_t i = from + 1; i <= to; i++) {
			*lo = buf->ivalues[i] < *lo ? buf->ivalues[i] : *lo;
			*hi = buf->ivalues[i] > *hi ? buf->ivalues[i] : *hi;
		}
		return 1;
	}
	case IX_PREFIX: case IX_ROW:
		return 0;
	}
	return 0;
}

int ir_idx_range(const ir_idx *x, int64_t *lo, int64_t *hi)
{
	return idx_range(x, INT64_MAX, lo, hi);
}

int ir_idx_range_capped(const ir_idx *x, int64_t cap, int64_t *lo, int64_t *hi)
{
	return idx_range(x, cap, lo, hi);
}

/* ------------------------------------------------------------- values */

/* The scalar semantics of an op on doubles, written exactly as cg_expr.c
 * emits it (same stable forms, same comparisons), so that folding a
 * constant expression gives the value the generated code would compute. */
static double softplus_eval(double x)
{
	return (x > 0 ? x : 0.0) + log1p(exp(-fabs(x)));
}

static double op_eval(ir_opcode op, double a, double b, double c)
{
	switch (op) {
	case IR_NEG: return -a;
	case IR_EXP: return exp(a);
	case IR_LOG: return log(a);
	case IR_LOG1P: return log1p(a);
	case IR_SQRT: return sqrt(a);
	case IR_ABS: return fabs(a);
	case IR_SQUARE: return a * a;
	case IR_SIGMOID: {
		double e = exp(-fabs(a));
		return a >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
	}
	case IR_TANH: return tanh(a);
	case IR_RELU: return a > 0 ? a : 0.0;
	case IR_SOFTPLUS: return softplus_eval(a);
	case IR_LOG_SIGMOID: return -softplus_eval(-a);
	case IR_NOT: return a == 0 ? 1.0 : 0.0;
	case IR_ADD: return a + b;
	case IR_SUB: return a - b;
	case IR_MUL: return a * b;
	case IR_DIV: return a / b;
	case IR_POW: return pow(a, b);
	case IR_MAX2: return fmax(a, b);
	case IR_MIN2: return fmin(a, b);
	case IR_LT: return a < b;
	case IR_LE: return a <= b;
	case IR_GT: return a > b;
	case IR_GE: return a >= b;
	case IR_EQ: return a == b;
	case IR_NE: return a != b;
	case IR_AND: return (a != 0) && (b != 0);
	case IR_OR: return (a != 0) || (b != 0);
	case IR_SELECT: return a != 0 ? b : c;
	case IR_OP__COUNT: break;
	}
	return NAN;
}

ir_val *ir_const(ir_module *m, double c)
{
	ir_val t = { .kind = V_CONST };
	t.u.c = c;
	return intern(m, &t);
}

ir_val *ir_read(ir_module *m, ir_buf *b, ir_idx **idx)
{
	ir_val t = { .kind = V_READ };
	t.u.read.buf = b;
	for (int i = 0; i < b->rank; i++)
		t.u.read.idx[i] = idx ? idx[i] : NULL;
	return intern(m, &t);
}

static bool is_const(const ir_val *v, double c)
{
	return v && v->kind == V_CONST && v->u.c == c;
}

static bool is_commutative(ir_opcode op)
{
	return op == IR_ADD || op == IR_MUL || op == IR_MAX2 || op == IR_MIN2 ||
	       op == IR_EQ || op == IR_NE || op == IR_AND || op == IR_OR;
}

/* op(a, b, c) (unused operands NULL), simplified where exact (see the top
 * of the file) and interned.  Commutative operands are put in a canonical
 * order (constants last, else by id) so a+b and b+a are one node. */
ir_val *ir_op(ir_module *m, ir_opcode op, ir_val *a, ir_val *b, ir_val *c)
{
	int n = (op >= 0 && op < IR_OP__COUNT) ? ir_op_arity[op] : 0;
	ir_val *args[3] = { a, n > 1 ? b : NULL, n > 2 ? c : NULL };
	bool all_const = n > 0;
	for (int i = 0; i < n; i++)
		if (!args[i] || args[i]->kind != V_CONST)
			all_const = false;
	if (all_const)
		return ir_const(m, op_eval(op, args[0]->u.c, n > 1 ? args[1]->u.c : 0,
		                           n > 2 ? args[2]->u.c : 0));
	if (n == 2 && is_commutative(op) && args[0] && args[1]) {
		bool swap = args[0]->kind == V_CONST ||
		            (args[1]->kind != V_CONST && args[1]->id < args[0]->id);
		if (swap) {
			ir_val *t = args[0];
			args[0] = args[1];
			args[1] = t;
		}
	}
	a = args[0];
	b = args[1];
	switch (op) {
	case IR_NEG:
		if (a && a->kind == V_OP && a->u.op.op == IR_NEG)
			return a->u.op.a[0];
		break;
	case IR_ADD:
		if (is_const(b, 0))   /* x + 0: standard (the sign of -0 + 0 aside) */
			return a;
		break;
	case IR_SUB:
		if (is_const(b, 0))
			return a;
		break;
	case IR_MUL:
		if (is_const(b, 1))
			return a;
		if (is_const(b, -1))
			return ir_op(m, IR_NEG, a, NULL, NULL);
		break;
	case IR_DIV:
		if (is_const(b, 1))
			return a;
		break;
	case IR_POW:
		if (is_const(b, 1))
			return a;
		break;
	case IR_MAX2: case IR_MIN2:
		if (a == b)
			return a;
		break;
	case IR_SELECT:
		if (args[1] == args[2])
			return args[1];
		if (a && a->kind == V_CONST)
			return a->u.c != 0 ? args[1] : args[2];
		break;
	default:
		break;
	}
	ir_val t = { .kind = V_OP };
	t.u.op.op = op;
	for (int i = 0; i < 3; i++)
		t.u.op.a[i] = args[i];
	return intern(m, &t);
}

ir_val *ir_int(ir_module *m, ir_idx *i)
{
	if (i && i->kind == IX_CONST)
		return ir_const(m, (double)i->u.c);
	ir_val t = { .kind = V_INT };
	t.u.idx = i;
	return intern(m, &t);
}

ir_val *ir_draw_at(ir_module *m, ir_draw_kind k, uint32_t stream, ir_idx *a, ir_idx *b, uint32_t c, ir_idx *ci,
                   ir_val *arg)
{
	ir_val t = { .kind = V_DRAW };
	t.u.draw.kind = k;
	t.u.draw.stream = stream;
	t.u.draw.a = a;
	t.u.draw.b = b;
	t.u.draw.c = c;
	t.u.draw.ci = ci;
	t.u.draw.arg = arg;
	return intern(m, &t);
}

ir_val *ir_draw(ir_module *m, ir_draw_kind k, uint32_t stream, ir_idx *a, ir_idx *b, uint32_t c)
{
	return ir_draw_at(m, k, stream, a, b, c, NULL, NULL);
}

/* stop(v): v without derivative.  Constants have none anyway, and a stop of
 * a stop is the inner stop. */
ir_val *ir_stop(ir_module *m, ir_val *v)
{
	if (!v || v->kind == V_CONST || v->kind == V_STOP)
		return v;
	ir_val t = { .kind = V_STOP };
	t.u.stop = v;
	return intern(m, &t);
}

/* --------------------------------------------------------- statements */

ir_stmt *ir_stmt_new(ir_module *m, ir_stmt_kind k)
{
	ir_stmt *s = arena_alloc(m->arena, sizeof *s);
	s->kind = k;
	return s;
}

/* An S_SET, S_SUM, S_MAX or S_ADD with one assignment buf[idx] (op)= val
 * inside loops[0..nloops), of which the first nfree are free (S_SUM and
 * S_MAX; all loops for the others).  loops and idx are copied. */
ir_stmt *ir_assign_stmt(ir_module *m, ir_stmt_kind k, ir_loop **loops, int nloops, int nfree,
                        ir_buf *buf, ir_idx **idx, ir_val *val)
{
	ir_stmt *s = ir_stmt_new(m, k);
	if (nloops > 0) {
		s->loops = arena_alloc(m->arena, (size_t)nloops * sizeof *s->loops);
		memcpy(s->loops, loops, (size_t)nloops * sizeof *s->loops);
	}
	s->nloops = nloops;
	s->nfree = (k == S_SUM || k == S_MAX) ? nfree : nloops;
	s->assigns = arena_alloc(m->arena, sizeof *s->assigns);
	s->nassigns = 1;
	s->assigns[0].buf = buf;
	for (int i = 0; i < buf->rank; i++)
		s->assigns[0].idx[i] = idx ? idx[i] : NULL;
	s->assigns[0].val = val;
	return s;
}

void ir_block_push(ir_module *m, ir_block *b, ir_stmt *s)
{
	ptrvec_push(m->arena, &b->stmts, s);
}

/* A new empty kernel, registered as m->kernels[k] (replacing any kernel of
 * that kind). */
ir_kernel *ir_kernel_new(ir_module *m, ir_kernel_kind k, const char *name)
{
	ir_kernel *kr = arena_alloc(m->arena, sizeof *kr);
	kr->kind = k;
	kr->name = arena_strdup(m->arena, name);
	if (k >= 0 && k < KER__COUNT)
		m->kernels[k] = kr;
	return kr;
}

/* ----------------------------------------------------------- printing */

/* A small pointer -> count map for the printer (it has no module, so no
 * id range to size an array by). */
typedef struct pmap {
	const void **keys;
	int *vals;
	size_t cap, len;
} pmap;

static int *pmap_slot(pmap *p, const void *key)
{
	if (2 * (p->len + 1) > p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		const void **keys = calloc(cap, sizeof *keys);
		int *vals = calloc(cap, sizeof *vals);
		if (!keys || !vals) {
			free(keys);
			free(vals);
			return NULL;
		}
		for (size_t i = 0; i < p->cap; i++) {
			if (!p->keys[i])
				continue;
			size_t j = ((uintptr_t)p->keys[i] >> 4) & (cap - 1);
			while (keys[j])
				j = (j + 1) & (cap - 1);
			keys[j] = p->keys[i];
			vals[j] = p->vals[i];
		}
		free(p->keys);
		free(p->vals);
		p->keys = keys;
		p->vals = vals;
		p->cap = cap;
	}
	size_t j = ((uintptr_t)key >> 4) & (p->cap - 1);
	while (p->keys[j] && p->keys[j] != key)
		j = (j + 1) & (p->cap - 1);
	if (!p->keys[j]) {
		p->keys[j] = key;
		p->vals[j] = 0;
		p->len++;
	}
	return &p->vals[j];
}

static int pmap_get(const pmap *p, const void *key)
{
	if (!p->cap)
		return 0;
	size_t j = ((uintptr_t)key >> 4) & (p->cap - 1);
	while (p->keys[j]) {
		if (p->keys[j] == key)
			return p->vals[j];
		j = (j + 1) & (p->cap - 1);
	}
	return 0;
}

static void pmap_free(pmap *p)
{
	free(p->keys);
	free(p->vals);
	memset(p, 0, sizeof *p);
}

/* The shortest %g form of d that reads back as d. */
static void print_num(FILE *out, double d)
{
	char buf[40];
	for (int prec = 6; prec <= 17; prec++) {
		snprintf(buf, sizeof buf, "%.*g", prec, d);
		if (strtod(buf, NULL) == d || isnan(d))
			break;
	}
	fputs(buf, out);
}

static void print_idx(FILE *out, const ir_idx *x);

static void print_indices(FILE *out, const ir_buf *b, ir_idx *const *idx)
{
	fputs(b ? b->name : "?", out);
	if (!b || b->rank == 0)
		return;
	fputc('[', out);
	for (int i = 0; i < b->rank; i++) {
		if (i)
			fputs(", ", out);
		print_idx(out, idx[i]);
	}
	fputc(']', out);
}

static void print_idx(FILE *out, const ir_idx *x)
{
	if (!x) {
		fputs("?", out);
		return;
	}
	switch (x->kind) {
	case IX_CONST: fprintf(out, "%lld", (long long)x->u.c); break;
	case IX_LOOP: fputs(x->u.loop ? x->u.loop->name : "?", out); break;
	case IX_ADD: case IX_SUB: case IX_MUL:
		fputc('(', out);
		print_idx(out, x->u.bin.a);
		fputs(x->kind == IX_ADD ? " + " : x->kind == IX_SUB ? " - " : " * ", out);
		print_idx(out, x->u.bin.b);
		fputc(')', out);
		break;
	case IX_LOAD: print_indices(out, x->u.load.buf, x->u.load.idx); break;
	case IX_PREFIX: fputs("prefix", out); break;
	case IX_ROW: fputs("row", out); break;
	}
}

static void print_op_name(FILE *out, ir_opcode op)
{
	const char *s = (op >= 0 && op < IR_OP__COUNT) ? ir_op_name[op] : "?";
	for (; *s; s++)
		fputc(tolower((unsigned char)*s), out);
}

/* Prints v inline, except shared nodes (named in `names`), which print as
 * %id and were defined on lines of their own before. */
static void print_val(FILE *out, const ir_val *v, const pmap *names, bool top)
{
	static const char *const draw_names[] = { "uniform", "normal", "gumbel", "poisson" };
	if (!v) {
		fputs("?", out);
		return;
	}
	if (!top && pmap_get(names, v) < 0) {
		fprintf(out, "%%%d", v->id);
		return;
	}
	switch (v->kind) {
	case V_CONST: print_num(out, v->u.c); break;
	case V_READ: print_indices(out, v->u.read.buf, v->u.read.idx); break;
	case V_OP: {
		int n = ir_op_arity[v->u.op.op];
		print_op_name(out, v->u.op.op);
		fputc('(', out);
		for (int i = 0; i < n; i++) {
			if (i)
				fputs(", ", out);
			print_val(out, v->u.op.a[i], names, false);
		}
		fputc(')', out);
		break;
	}
	case V_INT:
		fputs("int(", out);
		print_idx(out, v->u.idx);
		fputc(')', out);
		break;
	case V_DRAW:
		fprintf(out, "%s(stream %u, ", draw_names[v->u.draw.kind <= DRAW_POISSON ? v->u.draw.kind : 0],
		        v->u.draw.stream);
		print_idx(out, v->u.draw.a);
		fputs(", ", out);
		print_idx(out, v->u.draw.b);
		fprintf(out, ", %u", v->u.draw.c);
		if (v->u.draw.ci) {
			fputs(" + ", out);
			print_idx(out, v->u.draw.ci);
		}
		if (v->u.draw.arg) {
			fputs(", ", out);
			print_val(out, v->u.draw.arg, names, false);
		}
		fputc(')', out);
		break;
	case V_STOP:
		fputs("stop(", out);
		print_val(out, v->u.stop, names, false);
		fputc(')', out);
		break;
	}
}

/* Counts the uses of each op node under v (each node's children once). */
static void count_uses(pmap *p, const ir_val *v)
{
	if (v && v->kind == V_DRAW) { /* a draw prints inline; its operand may be shared */
		count_uses(p, v->u.draw.arg);
		return;
	}
	if (!v || (v->kind != V_OP && v->kind != V_STOP))
		return;
	int *n = pmap_slot(p, v);
	if (!n)
		return;
	if ((*n)++ > 0)
		return;
	if (v->kind == V_STOP) {
		count_uses(p, v->u.stop);
		return;
	}
	for (int i = 0; i < ir_op_arity[v->u.op.op]; i++)
		count_uses(p, v->u.op.a[i]);
}

/* Prints `%id = ...` lines for the shared nodes under v, children first,
 * marking each printed node (count set to -1) so it prints once.  A node
 * used once is reached once (its one parent is visited once), so no other
 * visited mark is needed. */
static void print_shared(FILE *out, const ir_val *v, pmap *p, int indent)
{
	if (v && v->kind == V_DRAW) {
		print_shared(out, v->u.draw.arg, p, indent);
		return;
	}
	if (!v || (v->kind != V_OP && v->kind != V_STOP) || pmap_get(p, v) < 0)
		return;
	if (v->kind == V_STOP)
		print_shared(out, v->u.stop, p, indent);
	else
		for (int i = 0; i < ir_op_arity[v->u.op.op]; i++)
			print_shared(out, v->u.op.a[i], p, indent);
	if (pmap_get(p, v) > 1) {
		fprintf(out, "%*s%%%d = ", indent, "", v->id);
		print_val(out, v, p, true);
		fputc('\n', out);
		int *n = pmap_slot(p, v);
		if (n)
			*n = -1;
	}
}

static void print_loop_range(FILE *out, const ir_loop *l)
{
	fprintf(out, "%s in ", l->name);
	if (l->is_rows) {
		if (l->block > 0)
			fprintf(out, "blocks of %lld rows", (long long)l->block);
		else if (l->block_of)
			fprintf(out, "rows of block %s", l->block_of->name);
		else
			fputs("rows", out);
		return;
	}
	fputc('[', out);
	print_idx(out, l->lo);
	fputs(", ", out);
	print_idx(out, l->hi);
	fputc(')', out);
}

static void print_block(FILE *out, const ir_block *b, int indent);

static void print_stmt(FILE *out, const ir_stmt *s, int indent)
{
	static const char *const kw[] = { "set", "sum", "max", "add" };
	switch (s->kind) {
	case S_SET: case S_SUM: case S_MAX: case S_ADD: {
		pmap p = { 0 };
		for (int j = 0; j < s->nassigns; j++)
			count_uses(&p, s->assigns[j].val);
		for (int j = 0; j < s->nassigns; j++)
			print_shared(out, s->assigns[j].val, &p, indent);
		fprintf(out, "%*s%s", indent, "", kw[s->kind]);
		int nfree = (s->kind == S_SUM || s->kind == S_MAX) ? s->nfree : s->nloops;
		for (int i = 0; i < s->nloops; i++) {
			fputs(i == 0 && nfree > 0 ? " for " : i == nfree ? " over " : ", ", out);
			print_loop_range(out, s->loops[i]);
		}
		fputs(": ", out);
		for (int j = 0; j < s->nassigns; j++) {
			const ir_assign *a = &s->assigns[j];
			if (j)
				fputs("; ", out);
			print_indices(out, a->buf, a->idx);
			fputs(s->kind == S_ADD ? " += " : " = ", out);
			print_val(out, a->val, &p, true);
		}
		fputc('\n', out);
		pmap_free(&p);
		break;
	}
	case S_FOR:
		fprintf(out, "%*sfor ", indent, "");
		print_loop_range(out, s->loop);
		fputs(s->loop->reverse ? " reverse {\n" : " {\n", out);
		print_block(out, &s->body, indent + 2);
		fprintf(out, "%*s}\n", indent, "");
		break;
	case S_IF_GE:
		fprintf(out, "%*sif ", indent, "");
		print_idx(out, s->a);
		fputs(" >= ", out);
		print_idx(out, s->b);
		fputs(" {\n", out);
		print_block(out, &s->body, indent + 2);
		fprintf(out, "%*s}\n", indent, "");
		break;
	}
}

static void print_block(FILE *out, const ir_block *b, int indent)
{
	for (size_t i = 0; i < b->stmts.len; i++)
		print_stmt(out, b->stmts.items[i], indent);
}

/* Collects the buffers a block references (targets, reads, index loads),
 * each once, in order of first appearance. */
static void note_buf(pmap *seen, ptrvec *list, const ir_buf *b)
{
	int *n = b ? pmap_slot(seen, b) : NULL;
	if (!n || (*n)++)
		return;
	/* the list is malloc'd: the printer has no arena */
	if (list->len == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 16;
		void **items = realloc(list->items, cap * sizeof *items);
		if (!items)
			return;
		list->items = items;
		list->cap = cap;
	}
	list->items[list->len++] = (void *)b;
}

static void bufs_idx(pmap *seen, ptrvec *list, const ir_idx *x)
{
	if (!x)
		return;
	if (x->kind == IX_ADD || x->kind == IX_SUB || x->kind == IX_MUL) {
		bufs_idx(seen, list, x->u.bin.a);
		bufs_idx(seen, list, x->u.bin.b);
	} else if (x->kind == IX_LOAD) {
		note_buf(seen, list, x->u.load.buf);
		for (int i = 0; i < IR_MAX_RANK; i++)
			bufs_idx(seen, list, x->u.load.idx[i]);
	}
}

static void bufs_val(pmap *seen, pmap *done, ptrvec *list, const ir_val *v)
{
	if (!v)
		return;
	int *d = pmap_slot(done, v);
	if (!d || (*d)++)
		return;
	switch (v->kind) {
	case V_READ:
		note_buf(seen, list, v->u.read.buf);
		for (int i = 0; i < IR_MAX_RANK; i++)
			bufs_idx(seen, list, v->u.read.idx[i]);
		break;
	case V_OP:
		for (int i = 0; i < ir_op_arity[v->u.op.op]; i++)
			bufs_val(seen, done, list, v->u.op.a[i]);
		break;
	case V_INT: bufs_idx(seen, list, v->u.idx); break;
	case V_DRAW:
		bufs_idx(seen, list, v->u.draw.a);
		bufs_idx(seen, list, v->u.draw.b);
		bufs_idx(seen, list, v->u.draw.ci);
		if (v->u.draw.arg)
			bufs_val(seen, done, list, v->u.draw.arg);
		break;
	case V_STOP: bufs_val(seen, done, list, v->u.stop); break;
	case V_CONST: break;
	}
}

static void bufs_block(pmap *seen, pmap *done, ptrvec *list, const ir_block *b)
{
	for (size_t i = 0; i < b->stmts.len; i++) {
		const ir_stmt *s = b->stmts.items[i];
		for (int j = 0; s->kind <= S_ADD && j < s->nassigns; j++) {
			note_buf(seen, list, s->assigns[j].buf);
			for (int r = 0; r < IR_MAX_RANK; r++)
				bufs_idx(seen, list, s->assigns[j].idx[r]);
			bufs_val(seen, done, list, s->assigns[j].val);
		}
		for (int j = 0; s->kind <= S_ADD && j < s->nloops; j++) {
			bufs_idx(seen, list, s->loops[j]->lo);
			bufs_idx(seen, list, s->loops[j]->hi);
		}
		if (s->kind == S_FOR && s->loop) {
			bufs_idx(seen, list, s->loop->lo);
			bufs_idx(seen, list, s->loop->hi);
		}
		if (s->kind == S_IF_GE) {
			bufs_idx(seen, list, s->a);
			bufs_idx(seen, list, s->b);
		}
		if (s->kind == S_FOR || s->kind == S_IF_GE)
			bufs_block(seen, done, list, &s->body);
	}
}

static void print_buf_decl(FILE *out, const ir_buf *b)
{
	static const char *const cls[] = { "theta", "grad", "obs", "out", "const", "temp" };
	fprintf(out, "  %s %s", b->cls <= BUF_TEMP ? cls[b->cls] : "?", b->name);
	if (b->rank) {
		fputc('[', out);
		for (int i = 0; i < b->rank; i++)
			fprintf(out, "%s%lld", i ? ", " : "", (long long)b->dims[i]);
		fputc(']', out);
	}
	if (b->cls == BUF_CONST && b->is_int)
		fputs(" int", out);
	if (b->cls <= BUF_OUT)
		fprintf(out, " @%lld", (long long)b->offset);
	fputc('\n', out);
}

/* A readable listing of a kernel: its buffers, then its statements with
 * loops as `for i in [lo, hi)` and expressions written inline, shared
 * subexpressions as `%id = ...` lines before the statement using them.
 * For debugging and for FileCheck tests. */
void ir_print_kernel(FILE *out, const ir_kernel *k)
{
	static const char *const kinds[] = { "init", "logp", "logp_batch", "loglik_grad",
	                                     "objective", "sample", "complete", "conditionals" };
	fprintf(out, "kernel %s (%s)\n", k->name ? k->name : "?",
	        k->kind < KER__COUNT ? kinds[k->kind] : "?");
	pmap seen = { 0 }, done = { 0 };
	ptrvec list = { 0 };
	bufs_block(&seen, &done, &list, &k->body);
	bufs_block(&seen, &done, &list, &k->nograd_body);
	if (k->result)
		note_buf(&seen, &list, k->result);
	if (k->nograd_result)
		note_buf(&seen, &list, k->nograd_result);
	for (size_t i = 0; i < list.len; i++)
		print_buf_decl(out, list.items[i]);
	free(list.items);
	pmap_free(&seen);
	pmap_free(&done);
	print_block(out, &k->body, 2);
	if (k->result)
		fprintf(out, "  return %s\n", k->result->name);
	if (k->nograd_body.stmts.len || k->nograd_result) {
		fputs("without grad:\n", out);
		print_block(out, &k->nograd_body, 2);
		if (k->nograd_result)
			fprintf(out, "  return %s\n", k->nograd_result->name);
	}
}
