/* ir_walk.c -- generic rewrites and walks of the IR that lowering,
 * differentiation and optimization share: substituting loop variables,
 * asking which loops an expression depends on, filling a buffer, collecting
 * a kernel's temps. */
#include "chainc.h"

/* ------------------------------------------------------------ loops used */

bool ir_idx_uses_loop(const ir_idx *i, const ir_loop *l)
{
	if (!i)
		return false;
	switch (i->kind) {
	case IX_LOOP: return i->u.loop == l;
	case IX_ADD: case IX_SUB: case IX_MUL: return ir_idx_uses_loop(i->u.bin.a, l) || ir_idx_uses_loop(i->u.bin.b, l);
	case IX_LOAD:
		for (int k = 0; k < i->u.load.buf->rank; k++)
			if (ir_idx_uses_loop(i->u.load.idx[k], l))
				return true;
		return false;
	default: return false;
	}
}

bool ir_idx_each_read(const ir_idx *i, ir_read_fn fn, void *ctx)
{
	if (!i)
		return false;
	switch (i->kind) {
	case IX_ADD: case IX_SUB: case IX_MUL:
		return ir_idx_each_read(i->u.bin.a, fn, ctx) || ir_idx_each_read(i->u.bin.b, fn, ctx);
	case IX_LOAD:
		if (fn(i->u.load.buf, ctx))
			return true;
		for (int k = 0; k < i->u.load.buf->rank; k++)
			if (ir_idx_each_read(i->u.load.idx[k], fn, ctx))
				return true;
		return false;
	default: return false;
	}
}

bool ir_val_each_read(const ir_val *v, ir_read_fn fn, void *ctx)
{
	switch (v->kind) {
	case V_READ:
		if (fn(v->u.read.buf, ctx))
			return true;
		for (int k = 0; k < v->u.read.buf->rank; k++)
			if (ir_idx_each_read(v->u.read.idx[k], fn, ctx))
				return true;
		return false;
	case V_OP:
		for (int k = 0; k < ir_op_arity[v->u.op.op]; k++)
			if (ir_val_each_read(v->u.op.a[k], fn, ctx))
				return true;
		return false;
	case V_STOP: return ir_val_each_read(v->u.stop, fn, ctx);
	case V_INT: return ir_idx_each_read(v->u.idx, fn, ctx);
	case V_DRAW:
		return ir_idx_each_read(v->u.draw.a, fn, ctx) || ir_idx_each_read(v->u.draw.b, fn, ctx) ||
		       ir_idx_each_read(v->u.draw.ci, fn, ctx) ||
		       (v->u.draw.arg && ir_val_each_read(v->u.draw.arg, fn, ctx));
	default: return false;
	}
}

/* Whether computing v anew at each step of loop l takes a function of tens
 * of cycles' latency: exp, log and the functions made of them, sqrt, a
 * division, a power or a draw, on operands that change with l (what does
 * not is computed once, before the loop). */
bool ir_val_slow_in_loop(const ir_val *v, const ir_loop *l)
{
	if (!ir_val_uses_loop(v, l))
		return false;
	switch (v->kind) {
	case V_OP:
		switch (v->u.op.op) {
		case IR_EXP: case IR_LOG: case IR_LOG1P: case IR_SQRT: case IR_SIGMOID: case IR_TANH:
		case IR_SOFTPLUS: case IR_LOG_SIGMOID: case IR_DIV: case IR_POW:
			return true;
		default:
			break;
		}
		for (int k = 0; k < ir_op_arity[v->u.op.op]; k++)
			if (ir_val_slow_in_loop(v->u.op.a[k], l))
				return true;
		return false;
	case V_STOP: return ir_val_slow_in_loop(v->u.stop, l);
	case V_DRAW: return true;
	default: return false;
	}
}

/* Whether index i moves by one or by nothing as loop l steps: l itself,
 * plus or minus what does not depend on l. */
static bool idx_unit_step(const ir_idx *i, const ir_loop *l)
{
	if (!ir_idx_uses_loop(i, l))
		return true;
	switch (i->kind) {
	case IX_LOOP: return true;
	case IX_ADD:
		return ir_idx_uses_loop(i->u.bin.a, l) ? !ir_idx_uses_loop(i->u.bin.b, l) && idx_unit_step(i->u.bin.a, l)
		                                       : idx_unit_step(i->u.bin.b, l);
	case IX_SUB: return !ir_idx_uses_loop(i->u.bin.b, l) && idx_unit_step(i->u.bin.a, l);
	default: return false;
	}
}

/* Whether an element buf[idx] moves to the next one (or stays) as l steps,
 * with the last index the fastest: a vector load or store over l, not a
 * gather or scatter. */
bool ir_access_contiguous(const ir_buf *b, ir_idx *const *idx, const ir_loop *l)
{
	for (int k = 0; k < b->rank; k++)
		if (k + 1 < b->rank ? ir_idx_uses_loop(idx[k], l) : !idx_unit_step(idx[k], l))
			return false;
	return true;
}

/* Whether every read in v is contiguous over l (ir_access_contiguous). */
bool ir_val_reads_contiguous(const ir_val *v, const ir_loop *l)
{
	switch (v->kind) {
	case V_READ: return ir_access_contiguous(v->u.read.buf, v->u.read.idx, l);
	case V_OP:
		for (int k = 0; k < ir_op_arity[v->u.op.op]; k++)
			if (!ir_val_reads_contiguous(v->u.op.a[k], l))
				return false;
		return true;
	case V_STOP: return ir_val_reads_contiguous(v->u.stop, l);
	case V_INT: return !ir_idx_uses_loop(v->u.idx, l) || idx_unit_step(v->u.idx, l);
	default: return true;
	}
}

static bool is_buf(const ir_buf *b, void *target)
{
	return b == target;
}

/* Whether index i reads buffer b (an IX_LOAD of it, at any depth). */
bool ir_idx_reads(const ir_idx *i, const ir_buf *b)
{
	return ir_idx_each_read(i, is_buf, (void *)b);
}

/* Whether value v reads buffer b (a read of it, or in an index, at any
 * depth). */
bool ir_val_reads(const ir_val *v, const ir_buf *b)
{
	return ir_val_each_read(v, is_buf, (void *)b);
}

/* Whether statement s (with what it nests) reads b: values, indices, loop
 * bounds, conditions, and the target of an addition. */
bool ir_stmt_reads(const ir_stmt *s, const ir_buf *b)
{
	if (s->kind == S_FOR || s->kind == S_IF_GE) {
		if (s->kind == S_FOR && s->loop && (ir_idx_reads(s->loop->lo, b) || ir_idx_reads(s->loop->hi, b)))
			return true;
		if (s->kind == S_IF_GE && (ir_idx_reads(s->a, b) || ir_idx_reads(s->b, b)))
			return true;
		for (size_t i = 0; i < s->body.stmts.len; i++)
			if (ir_stmt_reads(s->body.stmts.items[i], b))
				return true;
		return false;
	}
	for (int l = 0; l < s->nloops; l++)
		if (ir_idx_reads(s->loops[l]->lo, b) || ir_idx_reads(s->loops[l]->hi, b))
			return true;
	for (int j = 0; j < s->nassigns; j++) {
		const ir_assign *a = &s->assigns[j];
		if (ir_val_reads(a->val, b) || (s->kind == S_ADD && a->buf == b))
			return true;
		for (int d = 0; d < a->buf->rank; d++)
			if (ir_idx_reads(a->idx[d], b))
				return true;
	}
	return false;
}

bool ir_stmt_writes(const ir_stmt *s, const ir_buf *b)
{
	if (s->kind == S_FOR || s->kind == S_IF_GE) {
		for (size_t i = 0; i < s->body.stmts.len; i++)
			if (ir_stmt_writes(s->body.stmts.items[i], b))
				return true;
		return false;
	}
	for (int j = 0; j < s->nassigns; j++)
		if (s->assigns[j].buf == b)
			return true;
	return false;
}

/* Statements of a block (and what they nest) that read or write b. */
int ir_block_count(const ir_block *blk, const ir_buf *b, bool writes)
{
	int n = 0;
	for (size_t i = 0; i < blk->stmts.len; i++) {
		const ir_stmt *s = blk->stmts.items[i];
		if (s->kind == S_FOR || s->kind == S_IF_GE) {
			if (!writes && ((s->kind == S_FOR && s->loop &&
			                 (ir_idx_reads(s->loop->lo, b) || ir_idx_reads(s->loop->hi, b))) ||
			                (s->kind == S_IF_GE && (ir_idx_reads(s->a, b) || ir_idx_reads(s->b, b)))))
				n++;
			n += ir_block_count(&s->body, b, writes);
		} else if (writes ? ir_stmt_writes(s, b) : ir_stmt_reads(s, b)) {
			n++;
		}
	}
	return n;
}

bool ir_val_uses_loop(const ir_val *v, const ir_loop *l)
{
	switch (v->kind) {
	case V_INT: return ir_idx_uses_loop(v->u.idx, l);
	case V_DRAW:
		return ir_idx_uses_loop(v->u.draw.a, l) || ir_idx_uses_loop(v->u.draw.b, l) || ir_idx_uses_loop(v->u.draw.ci, l) ||
		       (v->u.draw.arg && ir_val_uses_loop(v->u.draw.arg, l));
	case V_STOP: return ir_val_uses_loop(v->u.stop, l);
	case V_READ:
		for (int k = 0; k < v->u.read.buf->rank; k++)
			if (ir_idx_uses_loop(v->u.read.idx[k], l))
				return true;
		return false;
	case V_OP:
		for (int k = 0; k < ir_op_arity[v->u.op.op]; k++)
			if (ir_val_uses_loop(v->u.op.a[k], l))
				return true;
		return false;
	default: return false;
	}
}

/* ------------------------------------------------- remapping buffer reads */

ir_idx *ir_remap_idx(ir_module *m, ir_idx *i, ir_read_map map, void *ctx)
{
	if (!i)
		return NULL;
	switch (i->kind) {
	case IX_ADD: case IX_SUB: case IX_MUL:
		return ir_idx_bin(m, i->kind, ir_remap_idx(m, i->u.bin.a, map, ctx), ir_remap_idx(m, i->u.bin.b, map, ctx));
	case IX_LOAD: {
		ir_idx *idx[IR_MAX_RANK] = {0};
		for (int k = 0; k < i->u.load.buf->rank; k++)
			idx[k] = ir_remap_idx(m, i->u.load.idx[k], map, ctx);
		ir_buf *b = map(ctx, i->u.load.buf, idx);
		return ir_idx_load(m, b, idx);
	}
	default:
		return i;
	}
}

ir_val *ir_remap_val(ir_module *m, ir_val *v, ir_read_map map, void *ctx)
{
	switch (v->kind) {
	case V_READ: {
		ir_idx *idx[IR_MAX_RANK] = {0};
		for (int k = 0; k < v->u.read.buf->rank; k++)
			idx[k] = ir_remap_idx(m, v->u.read.idx[k], map, ctx);
		ir_buf *b = map(ctx, v->u.read.buf, idx);
		return ir_read(m, b, idx);
	}
	case V_OP: {
		ir_val *a[3] = {0};
		for (int i = 0; i < ir_op_arity[v->u.op.op]; i++)
			a[i] = ir_remap_val(m, v->u.op.a[i], map, ctx);
		return ir_op(m, v->u.op.op, a[0], a[1], a[2]);
	}
	case V_STOP:
		return ir_stop(m, ir_remap_val(m, v->u.stop, map, ctx));
	case V_INT:
		return ir_int(m, ir_remap_idx(m, v->u.idx, map, ctx));
	case V_DRAW:
		return ir_draw_at(m, v->u.draw.kind, v->u.draw.stream, ir_remap_idx(m, v->u.draw.a, map, ctx),
		                  ir_remap_idx(m, v->u.draw.b, map, ctx), v->u.draw.c, ir_remap_idx(m, v->u.draw.ci, map, ctx),
		                  v->u.draw.arg ? ir_remap_val(m, v->u.draw.arg, map, ctx) : NULL);
	default:
		return v;
	}
}

/* ----------------------------------------------------------- substitution */

ir_idx *ir_subst_idx(ir_module *m, ir_idx *i, ir_loop **from, ir_idx **to, int n)
{
	if (!i)
		return NULL;
	switch (i->kind) {
	case IX_LOOP:
		for (int k = 0; k < n; k++)
			if (from[k] == i->u.loop)
				return to[k];
		return i;
	case IX_ADD: case IX_SUB: case IX_MUL:
		return ir_idx_bin(m, i->kind, ir_subst_idx(m, i->u.bin.a, from, to, n), ir_subst_idx(m, i->u.bin.b, from, to, n));
	case IX_LOAD: {
		ir_idx *idx[IR_MAX_RANK] = {0};
		for (int k = 0; k < i->u.load.buf->rank; k++)
			idx[k] = ir_subst_idx(m, i->u.load.idx[k], from, to, n);
		return ir_idx_load(m, i->u.load.buf, idx);
	}
	default:
		return i;
	}
}

ir_val *ir_subst_val(ir_module *m, ir_val *v, ir_loop **from, ir_idx **to, int n)
{
	switch (v->kind) {
	case V_CONST:
		return v;
	case V_INT:
		return ir_int(m, ir_subst_idx(m, v->u.idx, from, to, n));
	case V_DRAW:
		return ir_draw_at(m, v->u.draw.kind, v->u.draw.stream, ir_subst_idx(m, v->u.draw.a, from, to, n),
		                  ir_subst_idx(m, v->u.draw.b, from, to, n), v->u.draw.c, ir_subst_idx(m, v->u.draw.ci, from, to, n),
		                  v->u.draw.arg ? ir_subst_val(m, v->u.draw.arg, from, to, n) : NULL);
	case V_STOP:
		return ir_stop(m, ir_subst_val(m, v->u.stop, from, to, n));
	case V_READ: {
		ir_idx *idx[IR_MAX_RANK] = {0};
		for (int k = 0; k < v->u.read.buf->rank; k++)
			idx[k] = ir_subst_idx(m, v->u.read.idx[k], from, to, n);
		return ir_read(m, v->u.read.buf, idx);
	}
	case V_OP: {
		ir_val *a[3] = {0};
		for (int k = 0; k < ir_op_arity[v->u.op.op]; k++)
			a[k] = ir_subst_val(m, v->u.op.a[k], from, to, n);
		return ir_op(m, v->u.op.op, a[0], a[1], a[2]);
	}
	}
	return v;
}

/* A copy of statement s with loop `from`'s variable replaced by `to`; NULL
 * when a loop of s has bounds that use it (those loops would have to be
 * copied too, and every read of them). */
ir_stmt *ir_subst_stmt(ir_module *m, const ir_stmt *s, ir_loop *from, ir_idx *to)
{
	for (int i = 0; i < s->nloops; i++)
		if (ir_idx_uses_loop(s->loops[i]->lo, from) || ir_idx_uses_loop(s->loops[i]->hi, from))
			return NULL;
	if (s->kind == S_FOR && (ir_idx_uses_loop(s->loop->lo, from) || ir_idx_uses_loop(s->loop->hi, from)))
		return NULL;
	ir_stmt *c = ir_stmt_new(m, s->kind);
	*c = *s;
	c->body = (ir_block){0};
	if (s->kind == S_FOR || s->kind == S_IF_GE) {
		c->a = ir_subst_idx(m, s->a, &from, &to, 1);
		c->b = ir_subst_idx(m, s->b, &from, &to, 1);
		for (size_t i = 0; i < s->body.stmts.len; i++) {
			ir_stmt *t = ir_subst_stmt(m, s->body.stmts.items[i], from, to);
			if (!t)
				return NULL;
			ir_block_push(m, &c->body, t);
		}
		return c;
	}
	c->assigns = arena_alloc(m->arena, (size_t)s->nassigns * sizeof *c->assigns);
	for (int a = 0; a < s->nassigns; a++) {
		c->assigns[a] = s->assigns[a];
		for (int d = 0; d < s->assigns[a].buf->rank; d++)
			c->assigns[a].idx[d] = ir_subst_idx(m, s->assigns[a].idx[d], &from, &to, 1);
		c->assigns[a].val = ir_subst_val(m, s->assigns[a].val, &from, &to, 1);
	}
	return c;
}

ir_buf *ir_temp_scalar(ir_module *m, const char *name)
{
	return ir_buf_new(m, name, BUF_TEMP, 0, NULL);
}

/* Loops over every element of a buffer, fresh. */
int ir_buf_loops(ir_module *m, const ir_buf *b, ir_loop **loops, ir_idx **idx)
{
	static const char *names[] = {"r0", "r1", "r2"};
	for (int k = 0; k < b->rank; k++) {
		loops[k] = ir_loop_new(m, names[k], ir_idx_const(m, 0), ir_idx_const(m, b->dims[k]));
		idx[k] = ir_idx_loop(m, loops[k]);
	}
	return b->rank;
}

ir_stmt *ir_stmt_fill(ir_module *m, ir_buf *b, ir_val *value)
{
	ir_loop *loops[IR_MAX_RANK];
	ir_idx *idx[IR_MAX_RANK] = {0};
	int n = ir_buf_loops(m, b, loops, idx);
	return ir_assign_stmt(m, S_SET, loops, n, n, b, idx, value);
}

/* ------------------------------------------------------------ blocks */

void ir_block_append(ir_module *m, ir_block *dst, const ir_block *src)
{
	for (size_t i = 0; i < src->stmts.len; i++)
		ir_block_push(m, dst, src->stmts.items[i]);
}

ir_stmt *ir_for(ir_module *m, ir_loop *l)
{
	ir_stmt *s = ir_stmt_new(m, S_FOR);
	s->loop = l;
	return s;
}

/* ----------------------------------------------------------- a kernel's temps */

typedef struct temps_of {
	ir_module *m;
	ir_kernel *k;
} temps_of;

static void add_temp(ir_module *m, ir_kernel *k, ir_buf *b)
{
	if (b->cls != BUF_TEMP)
		return;
	for (size_t i = 0; i < k->temps.len; i++)
		if (k->temps.items[i] == b)
			return;
	ptrvec_push(m->arena, &k->temps, b);
}

static bool add_read_temp(const ir_buf *b, void *ctx)
{
	temps_of *t = ctx;
	add_temp(t->m, t->k, (ir_buf *)b);
	return false;
}

static void temps_in_block(ir_module *m, ir_kernel *k, const ir_block *b)
{
	for (size_t i = 0; i < b->stmts.len; i++) {
		const ir_stmt *s = b->stmts.items[i];
		if (s->kind == S_FOR || s->kind == S_IF_GE) {
			temps_in_block(m, k, &s->body);
			continue;
		}
		for (int a = 0; a < s->nassigns; a++) {
			add_temp(m, k, s->assigns[a].buf);
			ir_val_each_read(s->assigns[a].val, add_read_temp, &(temps_of){m, k});
		}
	}
}

void ir_kernel_collect_temps(ir_module *m, ir_kernel *k)
{
	if (k->result)
		add_temp(m, k, k->result);
	if (k->nograd_result)
		add_temp(m, k, k->nograd_result);
	temps_in_block(m, k, &k->body);
	temps_in_block(m, k, &k->nograd_body);
}

