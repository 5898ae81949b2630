/* cg_jam_vec.c -- a jammed sum or accumulation of the rows of a block
 * (cg_rows.c), written in vectors.
 *
 * When a jammed sum's summand is a polynomial (+, -, *, negation) of reads
 * that are contiguous in the innermost loop or do not depend on it (FVSBN's
 * W[k, kk] * x[kk], NADE's V[i, m] * h[m]), the loop is written here in
 * vectors of 64 bytes, not left to the loop vectorizer:
 *   - the remainder of the innermost loop (its length mod the lanes) is one
 *     masked step, not a scalar loop per row;
 *   - the horizontal sums of the rows are done together: the rows'
 *     accumulators are folded pairwise (lanes i and i + w/2 of each row
 *     added, two rows' halves in one vector) until each row is one lane.
 * Every row's lanes are added in the same tree whatever the number of rows
 * summed together, so a row's bits do not depend on the batch split (the
 * partial block runs this same code one row at a time).  The same steps
 * serve the sums of several positions at once (jv_state, for
 * cg_pair_positions.c) and accumulations into what the rows share
 * (jam_add_vec).
 */
#include <stdlib.h>
#include <string.h>

#include "cg_kernel_internal.h"

enum { JV_NO = -1, JV_INVARIANT = 0, JV_VARYING = 1 };

/* The coefficient of loop l in index x; *ok is cleared when x is not
 * affine in l with a constant coefficient. */
static int64_t idx_coef(const ir_idx *x, const ir_loop *l, bool *ok)
{
	if (!x)
		return 0;
	switch (x->kind) {
	case IX_CONST: case IX_PREFIX: case IX_ROW: return 0;
	case IX_LOOP: return x->u.loop == l;
	case IX_ADD: return idx_coef(x->u.bin.a, l, ok) + idx_coef(x->u.bin.b, l, ok);
	case IX_SUB: return idx_coef(x->u.bin.a, l, ok) - idx_coef(x->u.bin.b, l, ok);
	case IX_MUL: {
		int64_t ca = idx_coef(x->u.bin.a, l, ok), cb = idx_coef(x->u.bin.b, l, ok);
		if (ca == 0 && cb == 0)
			return 0;
		if (ca == 0 && x->u.bin.a->kind == IX_CONST)
			return x->u.bin.a->u.c * cb;
		if (cb == 0 && x->u.bin.b->kind == IX_CONST)
			return x->u.bin.b->u.c * ca;
		*ok = false;
		return 0;
	}
	case IX_LOAD:
		for (int i = 0; i < IR_MAX_RANK; i++)
			if (idx_coef(x->u.load.idx[i], l, ok) != 0)
				*ok = false;
		return 0;
	}
	*ok = false;
	return 0;
}

/* Whether index x does not depend on loop l. */
bool cg_idx_free_of(const ir_idx *x, const ir_loop *l)
{
	bool ok = true;
	return idx_coef(x, l, &ok) == 0 && ok;
}

/* How v can be computed across loop l in vectors: JV_INVARIANT (a scalar,
 * broadcast), JV_VARYING (vector code: jv_emit) or JV_NO.  memo: by val
 * id, 0 unknown, else the kind + 2. */
static int jv_kind(cg_ctx *c, const ir_val *v, const ir_loop *l, signed char *memo)
{
	if (!v)
		return JV_NO;
	bool has_id = v->id >= 0 && v->id < c->nids;
	if (has_id && memo[v->id])
		return memo[v->id] - 2;
	int k = JV_NO;
	switch (v->kind) {
	case V_CONST: k = JV_INVARIANT; break;
	case V_READ: {
		const ir_buf *b = v->u.read.buf;
		bool ok = true, inv = true;
		int64_t last = 0;
		for (int i = 0; i < b->rank; i++) {
			int64_t cf = idx_coef(v->u.read.idx[i], l, &ok);
			inv = inv && cf == 0;
			if (i + 1 < b->rank && cf != 0)
				ok = false;
			last = cf;
		}
		if (ok && inv)
			k = JV_INVARIANT;
		else if (ok && last == 1 && !(b->cls == BUF_CONST && (b->bits || b->is_int)))
			k = JV_VARYING;
		break;
	}
	case V_OP: {
		int n = v->u.op.op < IR_OP__COUNT ? ir_op_arity[v->u.op.op] : 0;
		k = JV_INVARIANT;
		for (int i = 0; i < n && k != JV_NO; i++) {
			int ka = jv_kind(c, v->u.op.a[i], l, memo);
			k = ka == JV_NO ? JV_NO : ka > k ? ka : k;
		}
		if (k == JV_VARYING && v->u.op.op != IR_NEG && v->u.op.op != IR_ADD && v->u.op.op != IR_SUB &&
		    v->u.op.op != IR_MUL && v->u.op.op != IR_SQUARE)
			k = JV_NO;
		break;
	}
	case V_INT: k = cg_idx_free_of(v->u.idx, l) ? JV_INVARIANT : JV_NO; break;
	case V_STOP: k = jv_kind(c, v->u.stop, l, memo); break;
	case V_DRAW: k = JV_NO; break;
	}
	if (has_id)
		memo[v->id] = (signed char)(k + 2);
	return k;
}

/* Whether a sum's summand can be computed in vectors across loop l. */
bool jv_summand(cg_ctx *c, const ir_val *v, const ir_loop *l)
{
	signed char *memo = calloc((size_t)c->nids, sizeof *memo);
	if (!memo)
		return false;
	bool ok = jv_kind(c, v, l, memo) != JV_NO;
	free(memo);
	return ok;
}

static LLVMValueRef jv_splat(cg_ctx *c, LLVMValueRef x, unsigned n)
{
	LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(x), n);
	LLVMValueRef v = LLVMBuildInsertElement(c->b, LLVMGetPoison(vt), x, cg_i64(c, 0), "");
	return LLVMBuildShuffleVector(c->b, v, LLVMGetPoison(vt), LLVMConstNull(LLVMVectorType(c->i32, n)), "");
}

static LLVMValueRef jv_mask_const(cg_ctx *c, const int *idx, unsigned n)
{
	LLVMValueRef e[64];
	for (unsigned i = 0; i < n; i++)
		e[i] = LLVMConstInt(c->i32, (unsigned long long)idx[i], 0);
	return LLVMConstVector(e, n);
}

/* A masked load or store of a vector at p (the lanes of mask). */
static LLVMValueRef jv_masked(cg_ctx *c, bool store, LLVMValueRef p, LLVMValueRef mask, LLVMValueRef v,
                              LLVMTypeRef vt)
{
	const char *name = store ? "llvm.masked.store" : "llvm.masked.load";
	unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
	LLVMTypeRef tys[2] = { vt, c->ptr };
	LLVMValueRef fn = LLVMGetIntrinsicDeclaration(c->mod, id, tys, 2);
	LLVMTypeRef fty = LLVMIntrinsicGetType(c->ctx, id, tys, 2);
	LLVMValueRef align = LLVMConstInt(c->i32, (unsigned long long)c->real_size, 0);
	if (store) {
		LLVMValueRef args[4] = { v, p, align, mask };
		return LLVMBuildCall2(c->b, fty, fn, args, 4, "");
	}
	LLVMValueRef args[4] = { p, align, mask, LLVMConstNull(vt) };
	return LLVMBuildCall2(c->b, fty, fn, args, 4, "");
}

/* Values of invariant parts of a summand computed already (jv_group_add):
 * v[i]'s is x[i]. */
typedef struct jv_given {
	int n;
	const ir_val *const *v;
	LLVMValueRef x[JV_PARTS];
} jv_given;

/* Adds vector v into the vector at p (its lanes of mask, when not NULL). */
static void jv_add_into(cg_ctx *c, LLVMValueRef p, LLVMValueRef mask, LLVMValueRef v, LLVMTypeRef vt)
{
	if (mask) {
		LLVMValueRef old = jv_masked(c, false, p, mask, NULL, vt);
		jv_masked(c, true, p, mask, LLVMBuildFAdd(c->b, old, v, ""), vt);
		return;
	}
	LLVMValueRef old = LLVMBuildLoad2(c->b, vt, p, "");
	LLVMSetAlignment(old, (unsigned)c->real_size);
	LLVMSetAlignment(LLVMBuildStore(c->b, LLVMBuildFAdd(c->b, old, v, ""), p), (unsigned)c->real_size);
}

/* v for the `lanes` iterations of loop l from its current value on (its
 * variable set by the caller), loads masked by `mask` when not NULL; v is
 * not JV_NO (memo: jv_kind's); the invariant parts in g (when not NULL)
 * are not computed again. */
static LLVMValueRef jv_emit_given(cg_ctx *c, const ir_val *v, const ir_loop *l, unsigned lanes, LLVMValueRef mask,
                                  signed char *memo, const jv_given *g)
{
	LLVMTypeRef vt = LLVMVectorType(c->real, lanes);
	if (jv_kind(c, v, l, memo) == JV_INVARIANT) {
		for (int i = 0; g && i < g->n; i++)
			if (g->v[i] == v)
				return jv_splat(c, g->x[i], lanes);
		return jv_splat(c, cg_val(c, v), lanes);
	}
	switch (v->kind) {
	case V_READ: {
		LLVMValueRef p = cg_addr(c, v->u.read.buf, v->u.read.idx);
		if (!mask) {
			LLVMValueRef x = LLVMBuildLoad2(c->b, vt, p, "");
			LLVMSetAlignment(x, (unsigned)c->real_size);
			return x;
		}
		return jv_masked(c, false, p, mask, NULL, vt);
	}
	case V_OP: {
		LLVMValueRef a = jv_emit_given(c, v->u.op.a[0], l, lanes, mask, memo, g), b = NULL;
		if (ir_op_arity[v->u.op.op] > 1)
			b = jv_emit_given(c, v->u.op.a[1], l, lanes, mask, memo, g);
		switch (v->u.op.op) { /* as cg_op computes them */
		case IR_NEG: return LLVMBuildFNeg(c->b, a, "");
		case IR_SQUARE: return LLVMBuildFMul(c->b, a, a, "");
		case IR_ADD: return cg_contract(LLVMBuildFAdd(c->b, a, b, ""));
		case IR_SUB: return cg_contract(LLVMBuildFSub(c->b, a, b, ""));
		case IR_MUL: return cg_contract(LLVMBuildFMul(c->b, a, b, ""));
		default: break;
		}
		break;
	}
	case V_STOP: return jv_emit_given(c, v->u.stop, l, lanes, mask, memo, g);
	default: break;
	}
	cg_fail(c, "internal error: a summand not computable in vectors");
	return LLVMGetUndef(vt);
}

static LLVMValueRef jv_emit(cg_ctx *c, const ir_val *v, const ir_loop *l, unsigned lanes, LLVMValueRef mask,
                            signed char *memo)
{
	return jv_emit_given(c, v, l, lanes, mask, memo, NULL);
}

/* The sums of the rows' accumulators acc[0..n) (n a power of two, at most
 * lanes), row j in lane j of the result: pairs of vectors folded into one
 * (each row's lanes i and i + w/2 added, w its width), then the vector's
 * rows halved alone, until each row is one lane.  A row's lanes are added
 * in the same tree for any n. */
static LLVMValueRef jv_hsum(cg_ctx *c, LLVMValueRef *acc, unsigned n, unsigned lanes)
{
	int lo[64], hi[64];
	unsigned g = 1, w = lanes; /* rows per vector, lanes per row */
	for (; n > 1; n /= 2, g *= 2, w /= 2) {
		for (unsigned j = 0; j < 2 * g; j++)
			for (unsigned t = 0; t < w / 2; t++) {
				unsigned from = (j % g) * w + t + (j >= g ? g * w : 0);
				lo[j * (w / 2) + t] = (int)from;
				hi[j * (w / 2) + t] = (int)(from + w / 2);
			}
		for (unsigned i = 0; i < n / 2; i++) {
			LLVMValueRef a = acc[2 * i], b = acc[2 * i + 1];
			acc[i] = LLVMBuildFAdd(c->b, LLVMBuildShuffleVector(c->b, a, b, jv_mask_const(c, lo, g * w), ""),
			                       LLVMBuildShuffleVector(c->b, a, b, jv_mask_const(c, hi, g * w), ""), "");
		}
	}
	for (; w > 1; w /= 2) {
		for (unsigned j = 0; j < g; j++)
			for (unsigned t = 0; t < w / 2; t++) {
				lo[j * (w / 2) + t] = (int)(j * w + t);
				hi[j * (w / 2) + t] = (int)(j * w + t + w / 2);
			}
		LLVMValueRef a = acc[0], u = LLVMGetPoison(LLVMTypeOf(a));
		acc[0] = LLVMBuildFAdd(c->b, LLVMBuildShuffleVector(c->b, a, u, jv_mask_const(c, lo, g * w / 2), ""),
		                       LLVMBuildShuffleVector(c->b, a, u, jv_mask_const(c, hi, g * w / 2), ""), "");
	}
	return acc[0];
}

/* The horizontal sums (jv_hsum) of the rows' accumulators acc[g0 ..
 * g0 + *n) of rows [0, rows): *n at most the lanes, a power of two, the
 * rows past the last summed as zeros. */
static LLVMValueRef jv_hsum_rows(cg_ctx *c, const LLVMValueRef *acc, int rows, int g0, unsigned *np)
{
	unsigned lanes = (unsigned)(64 / c->real_size);
	LLVMTypeRef vt = LLVMVectorType(c->real, lanes);
	unsigned n = 1;
	while ((int)n < rows - g0 && n < lanes)
		n *= 2;
	LLVMValueRef v[64];
	for (unsigned j = 0; j < n; j++) {
		if (g0 + (int)j < rows) {
			v[j] = LLVMBuildLoad2(c->b, vt, acc[g0 + (int)j], "");
			LLVMSetAlignment(v[j], (unsigned)c->real_size);
		} else {
			v[j] = LLVMConstNull(vt);
		}
	}
	*np = n;
	return jv_hsum(c, v, n, lanes);
}

/* The mask of a loop's last, partial step, taken at iteration `at` of a
 * loop that ends before `end`: the lanes i < end - at. */
static LLVMValueRef jv_tail_mask(cg_ctx *c, LLVMValueRef end, LLVMValueRef at, unsigned lanes)
{
	int iota[64];
	for (unsigned i = 0; i < lanes; i++)
		iota[i] = (int)i;
	LLVMValueRef left = LLVMBuildTrunc(c->b, LLVMBuildNSWSub(c->b, end, at, ""), c->i32, "");
	return LLVMBuildICmp(c->b, LLVMIntSLT, jv_mask_const(c, iota, lanes), jv_splat(c, left, lanes), "");
}

/* A loop over the full steps j in [j0, j1) of a loop from lo in steps of
 * 64 bytes of lanes (blocks `name`, `name`.body, `name`.exit):
 * jv_loop_open returns the step's first iteration, lo + j * lanes, the
 * builder in the body; jv_loop_close continues after the loop. */
typedef struct jv_loop {
	LLVMBasicBlockRef head, exit;
	LLVMValueRef j;
} jv_loop;

static LLVMValueRef jv_loop_open(cg_ctx *c, jv_loop *lp, const char *name, LLVMValueRef j0, LLVMValueRef j1,
                                 LLVMValueRef lo)
{
	char body_name[32], exit_name[32];
	snprintf(body_name, sizeof body_name, "%s.body", name);
	snprintf(exit_name, sizeof exit_name, "%s.exit", name);
	LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
	lp->head = LLVMAppendBasicBlockInContext(c->ctx, c->fn, name);
	LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, body_name);
	lp->exit = LLVMAppendBasicBlockInContext(c->ctx, c->fn, exit_name);
	LLVMBuildBr(c->b, lp->head);
	LLVMPositionBuilderAtEnd(c->b, lp->head);
	lp->j = LLVMBuildPhi(c->b, c->i64, "vj");
	LLVMAddIncoming(lp->j, &j0, &pre, 1);
	LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntULT, lp->j, j1, ""), body, lp->exit);
	LLVMPositionBuilderAtEnd(c->b, body);
	return LLVMBuildNSWAdd(c->b, lo, LLVMBuildNSWMul(c->b, lp->j, cg_i64(c, 64 / c->real_size), ""), "");
}

static void jv_loop_close(cg_ctx *c, jv_loop *lp)
{
	LLVMValueRef jn = LLVMBuildNUWAdd(c->b, lp->j, cg_i64(c, 1), "");
	LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
	LLVMValueRef br = LLVMBuildBr(c->b, lp->head);
	LLVMAddIncoming(lp->j, &jn, &latch, 1);
	cg_hint_vector_width(c, br, 1, 1); /* vector code already */
	LLVMPositionBuilderAtEnd(c->b, lp->exit);
}

/* One step of a vector sum: for each row, acc[r] += the summand at
 * iterations k .. k + lanes - 1 of loop l, only the lanes of `mask` when
 * it is not NULL. */
static void jv_step(cg_ctx *c, const ir_val *v, const ir_loop *l, LLVMValueRef first, LLVMValueRef lane_off,
                    const LLVMValueRef *lane, const LLVMValueRef *acc, int rows, LLVMValueRef k, LLVMValueRef mask,
                    signed char *memo)
{
	unsigned lanes = (unsigned)(64 / c->real_size);
	LLVMTypeRef vt = LLVMVectorType(c->real, lanes);
	for (int r = 0; r < rows; r++) {
		cg_set_lane(c, c->jam_rows, first, lane[r]);
		if (lane_off) /* row first + lane[r] is lane lane_off + lane[r] of its block */
			c->lane = LLVMBuildNSWAdd(c->b, lane_off, lane[r], "");
		c->loop_var[l->id] = k;
		LLVMValueRef x = jv_emit(c, v, l, lanes, mask, memo);
		LLVMValueRef old = LLVMBuildLoad2(c->b, vt, acc[r], "");
		LLVMSetAlignment(old, (unsigned)c->real_size);
		LLVMValueRef nv = cg_contract(LLVMBuildFAdd(c->b, old, x, ""));
		if (mask)
			nv = LLVMBuildSelect(c->b, mask, nv, old, "");
		LLVMSetAlignment(LLVMBuildStore(c->b, nv, acc[r]), (unsigned)c->real_size);
	}
}

/* cg_rows.c's jam_sum in vectors (the summand passes jv_summand): the
 * outer loops as they are, the innermost in steps of 64 bytes of lanes with
 * an accumulator vector per row, its remainder one masked step, and the
 * rows' horizontal sums together (jv_hsum). */
void jam_sum_vec(cg_ctx *c, const ir_stmt *s, LLVMValueRef first, LLVMValueRef lane0, int rows)
{
	const ir_assign *a = &s->assigns[0];
	const ir_loop *l = s->loops[s->nloops - 1];
	unsigned lanes = (unsigned)(64 / c->real_size);
	LLVMTypeRef vt = LLVMVectorType(c->real, lanes);
	signed char *memo = calloc((size_t)c->nids, sizeof *memo);
	if (!memo) {
		cg_fail(c, "out of memory");
		return;
	}
	jv_kind(c, a->val, l, memo);
	LLVMValueRef acc[CG_JAM_ROWS], lane[CG_JAM_ROWS];
	for (int r = 0; r < rows; r++) {
		acc[r] = cg_entry_alloca(c, vt, "vacc");
		LLVMValueRef st = LLVMBuildStore(c->b, LLVMConstNull(vt), acc[r]);
		LLVMSetAlignment(st, (unsigned)c->real_size);
		lane[r] = r ? LLVMBuildNSWAdd(c->b, lane0, cg_i64(c, r), "") : lane0;
	}
	cg_loop st[CG_JAM_LOOPS];
	for (int i = 0; i + 1 < s->nloops; i++)
		cg_loop_open_stmt(c, &st[i], s->loops[i]);
	LLVMValueRef lo = cg_idx(c, l->lo), hi = cg_idx(c, l->hi);
	LLVMValueRef saved = c->loop_var[l->id];
	/* for (k = lo; k + lanes <= hi; k += lanes) */
	LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
	LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "vsum");
	LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "vsum.body");
	LLVMBasicBlockRef tail = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "vsum.tail");
	LLVMBuildBr(c->b, head);
	LLVMPositionBuilderAtEnd(c->b, head);
	LLVMValueRef k = LLVMBuildPhi(c->b, c->i64, "vk");
	LLVMAddIncoming(k, &lo, &pre, 1);
	LLVMValueRef next = LLVMBuildNSWAdd(c->b, k, cg_i64(c, lanes), "");
	LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLE, next, hi, ""), body, tail);
	LLVMPositionBuilderAtEnd(c->b, body);
	jv_step(c, a->val, l, first, NULL, lane, acc, rows, k, NULL, memo);
	LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
	LLVMValueRef br = LLVMBuildBr(c->b, head);
	LLVMAddIncoming(k, &next, &latch, 1);
	cg_hint_vector_width(c, br, 1, 1); /* vector code already */
	/* the remainder, hi - k < lanes iterations (maybe none): one masked step */
	LLVMPositionBuilderAtEnd(c->b, tail);
	jv_step(c, a->val, l, first, NULL, lane, acc, rows, k, jv_tail_mask(c, hi, k, lanes), memo);
	c->loop_var[l->id] = saved;
	cg_cache_drop(c);
	for (int i = s->nloops - 2; i >= 0; i--)
		cg_loop_close(c, &st[i]);
	/* the horizontal sums, `lanes` rows (padded to a power of two) at a time */
	for (int g0 = 0; g0 < rows; g0 += (int)lanes) {
		unsigned n;
		LLVMValueRef sums = jv_hsum_rows(c, acc, rows, g0, &n);
		for (unsigned j = 0; j < n && g0 + (int)j < rows; j++) {
			cg_set_lane(c, c->jam_rows, first, lane[g0 + (int)j]);
			cg_store_real(c, LLVMBuildExtractElement(c->b, sums, cg_i64(c, j), ""), cg_addr(c, a->buf, a->idx));
		}
	}
	free(memo);
}

/* ------------------------- the sums of several positions (jv_state) */

/* A prefetch into L1 of the params summand v reads along loop l
 * (FVSBN's W[k, kk]), CG_JAM_PREFETCH bytes past the current step. */
static void jv_prefetch(cg_ctx *c, const ir_val *v, const ir_loop *l, signed char *memo)
{
	if (!v || jv_kind(c, v, l, memo) != JV_VARYING)
		return;
	switch (v->kind) {
	case V_READ: {
		if (v->u.read.buf->cls != BUF_THETA)
			return;
		LLVMValueRef d = cg_i64(c, CG_JAM_PREFETCH / c->real_size);
		/* past the end of the params, maybe: no inbounds (a prefetch
		 * does not fault) */
		LLVMValueRef p = LLVMBuildGEP2(c->b, c->real, cg_addr(c, v->u.read.buf, v->u.read.idx), &d, 1, "");
		const char *name = "llvm.prefetch";
		unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
		LLVMTypeRef tys[1] = { c->ptr };
		LLVMValueRef fn = LLVMGetIntrinsicDeclaration(c->mod, id, tys, 1);
		LLVMTypeRef fty = LLVMIntrinsicGetType(c->ctx, id, tys, 1);
		/* a read, kept in every level of cache, data */
		LLVMValueRef args[4] = { p, LLVMConstInt(c->i32, 0, 0), LLVMConstInt(c->i32, 3, 0),
		                         LLVMConstInt(c->i32, 1, 0) };
		LLVMBuildCall2(c->b, fty, fn, args, 4, "");
		return;
	}
	case V_OP:
		for (int i = 0; i < ir_op_arity[v->u.op.op]; i++)
			jv_prefetch(c, v->u.op.a[i], l, memo);
		return;
	case V_STOP: jv_prefetch(c, v->u.stop, l, memo); return;
	default: return;
	}
}

/* One loop of steps [j0, j1) of positions [q0, q1) together. */
static void jv_steps(cg_ctx *c, jv_state *st, LLVMValueRef j0, LLVMValueRef j1, int q0, int q1)
{
	const ir_val *v = st->s->assigns[0].val;
	jv_loop lp;
	LLVMValueRef k = jv_loop_open(c, &lp, "vsum", j0, j1, st->lo);
	LLVMValueRef saved = c->loop_var[st->pl->id];
	for (int q = q0; st->prefetch && q < q1; q++) {
		c->loop_var[st->pl->id] = st->pk[q];
		c->loop_var[st->l->id] = k;
		cg_set_lane(c, c->jam_rows, st->first, st->lane[0]);
		jv_prefetch(c, v, st->l, st->memo);
	}
	/* row by row, each row's x[kk] loaded once for all the positions: the
	 * positions' W[k, kk] stay in registers (P of them) rather than the
	 * rows' x (8 rows x 3 positions with 8 x vectors did not fit: spills) */
	for (int r = 0; r < st->rows; r++)
		for (int q = q0; q < q1; q++) {
			c->loop_var[st->pl->id] = st->pk[q];
			jv_step(c, v, st->l, st->first, st->lane_off, st->lane + r, st->acc + q * st->rows + r, 1, k, NULL,
			        st->memo);
		}
	c->loop_var[st->pl->id] = saved;
	jv_loop_close(c, &lp);
}

/* The bounds of loop l (its start free of pl) at positions pk[0..npos) of
 * loop pl: its start *lo, each position's length len[q] (0 when negative,
 * and when q is a padding position, 0 < q and not q < nact; nact NULL:
 * none is), its full steps of 64 bytes m[q], and the fewest of those,
 * *mmin. */
static void group_bounds(cg_ctx *c, const ir_loop *l, const ir_loop *pl, const LLVMValueRef *pk, int npos,
                         LLVMValueRef nact, LLVMValueRef *lo, LLVMValueRef *len, LLVMValueRef *m,
                         LLVMValueRef *mmin)
{
	LLVMValueRef saved = c->loop_var[pl->id];
	LLVMValueRef V = cg_i64(c, 64 / c->real_size), zero = cg_i64(c, 0);
	c->loop_var[pl->id] = pk[0];
	*lo = cg_idx(c, l->lo);
	*mmin = NULL;
	for (int q = 0; q < npos; q++) {
		c->loop_var[pl->id] = pk[q];
		LLVMValueRef n = LLVMBuildNSWSub(c->b, cg_idx(c, l->hi), *lo, "");
		len[q] = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, n, zero, ""), n, zero, "");
		if (q && nact)
			len[q] = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, cg_i64(c, q), nact, ""), len[q], zero, "");
		m[q] = LLVMBuildUDiv(c->b, len[q], V, "");
		*mmin = *mmin ? LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntULT, m[q], *mmin, ""), m[q], *mmin, "") : m[q];
	}
	c->loop_var[pl->id] = saved;
}

bool jv_prepare(cg_ctx *c, jv_state *st, const ir_stmt *s, LLVMValueRef first, const LLVMValueRef *lane, int rows,
                const ir_loop *pl, const LLVMValueRef *pk, int npos)
{
	memset(st, 0, sizeof *st);
	st->s = s;
	st->l = s->loops[0];
	st->pl = pl;
	st->first = first;
	st->lane = lane;
	st->rows = rows;
	st->npos = npos;
	st->memo = calloc((size_t)c->nids, sizeof *st->memo);
	if (!st->memo) {
		cg_fail(c, "out of memory");
		return false;
	}
	jv_kind(c, s->assigns[0].val, st->l, st->memo);
	LLVMTypeRef vt = LLVMVectorType(c->real, (unsigned)(64 / c->real_size));
	for (int q = 0; q < npos; q++)
		st->pk[q] = pk[q];
	group_bounds(c, st->l, pl, pk, npos, NULL, &st->lo, st->len, st->m, &st->mmin);
	for (int i = 0; i < npos * rows; i++) {
		st->acc[i] = cg_entry_alloca(c, vt, "vacc");
		LLVMSetAlignment(LLVMBuildStore(c->b, LLVMConstNull(vt), st->acc[i]), (unsigned)c->real_size);
	}
	return true;
}

/* The full steps all positions have. */
void jv_fused(cg_ctx *c, jv_state *st)
{
	jv_steps(c, st, cg_i64(c, 0), st->mmin, 0, st->npos);
	cg_cache_drop(c);
}

/* The full steps [j0, j1) of all positions (j1 at most mmin). */
void jv_fused_range(cg_ctx *c, jv_state *st, LLVMValueRef j0, LLVMValueRef j1)
{
	jv_steps(c, st, j0, j1, 0, st->npos);
	cg_cache_drop(c);
}

/* The accumulators stored to (or loaded from) vectors base[0 ..
 * npos * rows). */
void jv_acc_io(cg_ctx *c, jv_state *st, LLVMValueRef base, bool store)
{
	LLVMTypeRef vt = LLVMVectorType(c->real, (unsigned)(64 / c->real_size));
	for (int i = 0; i < st->npos * st->rows; i++) {
		LLVMValueRef at = cg_i64(c, i);
		LLVMValueRef p = LLVMBuildInBoundsGEP2(c->b, vt, base, &at, 1, "");
		LLVMValueRef from = store ? st->acc[i] : p, to = store ? p : st->acc[i];
		LLVMValueRef v = LLVMBuildLoad2(c->b, vt, from, "");
		LLVMSetAlignment(v, 64);
		LLVMSetAlignment(LLVMBuildStore(c->b, v, to), 64);
	}
}

void jv_end(jv_state *st)
{
	free(st->memo);
	st->memo = NULL;
}

/* Position q's own steps and its masked step. */
static void jv_finish_steps(cg_ctx *c, jv_state *st, int q)
{
	unsigned lanes = (unsigned)(64 / c->real_size);
	LLVMValueRef saved_pl = c->loop_var[st->pl->id], saved_l = c->loop_var[st->l->id];
	LLVMValueRef *acc = st->acc + q * st->rows;
	if (st->npos > 1)
		jv_steps(c, st, st->mmin, st->m[q], q, q + 1);
	c->loop_var[st->pl->id] = st->pk[q];
	LLVMValueRef used = LLVMBuildNSWMul(c->b, st->m[q], cg_i64(c, lanes), "");
	LLVMValueRef mask = jv_tail_mask(c, st->len[q], used, lanes);
	jv_step(c, st->s->assigns[0].val, st->l, st->first, st->lane_off, st->lane, acc, st->rows,
	        LLVMBuildNSWAdd(c->b, st->lo, used, ""), mask, st->memo);
	c->loop_var[st->pl->id] = saved_pl;
	c->loop_var[st->l->id] = saved_l;
	cg_cache_drop(c);
}

/* Position q's own steps, its masked step and its rows' sums: row r's in
 * sums[r], or (out not NULL) out[r], stored a vector at a time. */
void jv_finish(cg_ctx *c, jv_state *st, int q, LLVMValueRef *sums, LLVMValueRef out)
{
	unsigned lanes = (unsigned)(64 / c->real_size);
	LLVMValueRef *acc = st->acc + q * st->rows;
	jv_finish_steps(c, st, q);
	/* the horizontal sums, `lanes` rows (padded to a power of two) at a time */
	for (int g0 = 0; g0 < st->rows; g0 += (int)lanes) {
		unsigned n;
		LLVMValueRef hs = jv_hsum_rows(c, acc, st->rows, g0, &n);
		if (out && g0 + (int)n <= st->rows) {
			LLVMValueRef at = cg_i64(c, g0);
			LLVMValueRef p = LLVMBuildInBoundsGEP2(c->b, c->real, out, &at, 1, "");
			LLVMSetAlignment(LLVMBuildStore(c->b, hs, p), (unsigned)c->real_size);
			continue;
		}
		for (unsigned i = 0; i < n && g0 + (int)i < st->rows; i++) {
			LLVMValueRef x = LLVMBuildExtractElement(c->b, hs, cg_i64(c, i), "");
			if (out) {
				LLVMValueRef at = cg_i64(c, g0 + (int)i);
				cg_store_real(c, x, LLVMBuildInBoundsGEP2(c->b, c->real, out, &at, 1, ""));
			} else {
				sums[g0 + (int)i] = x;
			}
		}
	}
}
/* Every position's own steps and masked step, then the horizontal sums of
 * all the positions' rows together: the accumulators, position after
 * position, `lanes` at a time (jv_hsum: a vector of 16 sums in f32 from 15
 * folds of two vectors, where a position's 4 rows alone take 3 folds and 2
 * halvings of a part-filled vector); row r of position q to out[q * stride
 * + r], each position's run of rows in a vector a store.  Each row's lanes
 * are added in jv_hsum's one tree, so the bits are jv_finish's. */
void jv_finish_all(cg_ctx *c, jv_state *st, LLVMValueRef out, int stride)
{
	unsigned lanes = (unsigned)(64 / c->real_size);
	int total = st->npos * st->rows;
	for (int q = 0; q < st->npos; q++)
		jv_finish_steps(c, st, q);
	for (int g0 = 0; g0 < total; g0 += (int)lanes) {
		unsigned n;
		LLVMValueRef hs = jv_hsum_rows(c, st->acc, total, g0, &n);
		for (int j = 0; j < (int)n && g0 + j < total;) {
			int i = g0 + j, q = i / st->rows, r = i % st->rows, len = st->rows - r;
			if (len > (int)n - j)
				len = (int)n - j;
			if (len > total - i)
				len = total - i;
			LLVMValueRef at = cg_i64(c, q * stride + r);
			LLVMValueRef p = LLVMBuildInBoundsGEP2(c->b, c->real, out, &at, 1, "");
			if (len == 1) {
				cg_store_real(c, LLVMBuildExtractElement(c->b, hs, cg_i64(c, j), ""), p);
			} else {
				int idx[64];
				for (int t = 0; t < len; t++)
					idx[t] = j + t;
				LLVMValueRef v = len == (int)n ? hs
				                               : LLVMBuildShuffleVector(c->b, hs, LLVMGetPoison(LLVMTypeOf(hs)),
				                                                        jv_mask_const(c, idx, (unsigned)len), "");
				LLVMSetAlignment(LLVMBuildStore(c->b, v, p), (unsigned)c->real_size);
			}
			j += len;
		}
	}
}

/* ------------------------------------------------------ accumulations */

/* Whether accumulation s can run in vectors (jam_add_vec): every target
 * shared by the rows and contiguous in the innermost loop, every value
 * computable in vectors (jv_kind). */
bool jv_add_ok(cg_ctx *c, const ir_stmt *s, const ir_loop *rows)
{
	const ir_loop *l = s->loops[s->nloops - 1];
	for (int j = 0; j < s->nassigns; j++) {
		const ir_assign *a = &s->assigns[j];
		if (!cg_rows_shared_target(a, rows) || !jv_summand(c, a->val, l))
			return false;
		bool ok = true;
		int64_t last = 0;
		for (int i = 0; i < a->buf->rank; i++) {
			last = idx_coef(a->idx[i], l, &ok);
			if (i + 1 < a->buf->rank && last != 0)
				ok = false;
		}
		if (!ok || last != 1)
			return false;
	}
	return true;
}

/* One step of jam_add_vec at iterations k .. k + lanes - 1 of loop l
 * (only the lanes of mask when it is not NULL): for each target, the rows'
 * terms summed in 4 independent chains (a chain of 16 dependent
 * multiply-adds would be the loop's latency), then added to the target. */
static void jv_add_step(cg_ctx *c, const ir_stmt *s, const ir_loop *l, LLVMValueRef first, LLVMValueRef lane0,
                        int rows, LLVMValueRef k, LLVMValueRef mask, signed char *memo)
{
	unsigned lanes = (unsigned)(64 / c->real_size);
	LLVMTypeRef vt = LLVMVectorType(c->real, lanes);
	for (int j = 0; j < s->nassigns; j++) {
		const ir_assign *a = &s->assigns[j];
		memset(memo, 0, (size_t)c->nids * sizeof *memo);
		LLVMValueRef chain[4] = { NULL, NULL, NULL, NULL };
		for (int r = 0; r < rows; r++) {
			cg_set_lane(c, c->jam_rows, first, r ? LLVMBuildNSWAdd(c->b, lane0, cg_i64(c, r), "") : lane0);
			c->loop_var[l->id] = k;
			LLVMValueRef v = jv_emit(c, a->val, l, lanes, mask, memo);
			LLVMValueRef *t = &chain[r % 4];
			*t = *t ? cg_contract(LLVMBuildFAdd(c->b, *t, v, "")) : v;
		}
		LLVMValueRef total = chain[0];
		if (chain[1])
			total = LLVMBuildFAdd(c->b, total, chain[1], "");
		if (chain[2])
			total = LLVMBuildFAdd(c->b, total,
			                      chain[3] ? LLVMBuildFAdd(c->b, chain[2], chain[3], "") : chain[2], "");
		jv_add_into(c, cg_addr(c, a->buf, a->idx), mask, total, vt);
	}
}

/* cg_rows.c's jam_add when jv_add_ok: the outer loops as they are, the
 * innermost in steps of 64 bytes of lanes and one masked step for its
 * remainder (no scalar loop over the remainder for each row). */
void jam_add_vec(cg_ctx *c, const ir_stmt *s, LLVMValueRef first, LLVMValueRef lane0, int rows)
{
	const ir_loop *l = s->loops[s->nloops - 1];
	unsigned lanes = (unsigned)(64 / c->real_size);
	signed char *memo = calloc((size_t)c->nids, sizeof *memo);
	if (!memo) {
		cg_fail(c, "out of memory");
		return;
	}
	cg_loop st[CG_JAM_LOOPS];
	for (int i = 0; i + 1 < s->nloops; i++)
		cg_loop_open_stmt(c, &st[i], s->loops[i]);
	LLVMValueRef saved = c->loop_var[l->id];
	LLVMValueRef V = cg_i64(c, lanes), zero = cg_i64(c, 0);
	LLVMValueRef lo = cg_idx(c, l->lo), len = LLVMBuildNSWSub(c->b, cg_idx(c, l->hi), lo, "");
	len = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, len, zero, ""), len, zero, "");
	LLVMValueRef m = LLVMBuildUDiv(c->b, len, V, "");
	jv_loop lp;
	jv_add_step(c, s, l, first, lane0, rows, jv_loop_open(c, &lp, "vadd", zero, m, lo), NULL, memo);
	jv_loop_close(c, &lp);
	LLVMValueRef used = LLVMBuildNSWMul(c->b, m, V, "");
	LLVMValueRef mask = jv_tail_mask(c, len, used, lanes);
	jv_add_step(c, s, l, first, lane0, rows, LLVMBuildNSWAdd(c->b, lo, used, ""), mask, memo);
	c->loop_var[l->id] = saved;
	cg_cache_drop(c);
	for (int i = s->nloops - 2; i >= 0; i--)
		cg_loop_close(c, &st[i]);
	free(memo);
}

/* ------------------------------ accumulations of several positions */

static bool parts_walk(cg_ctx *c, const ir_val *v, const ir_loop *l, signed char *memo, const ir_val **inv,
                       int *ninv, const ir_val **var, int *nvar)
{
	int k = jv_kind(c, v, l, memo);
	if (k == JV_NO)
		return false;
	if (k == JV_INVARIANT || v->kind == V_READ) {
		if (v->kind == V_CONST)
			return true;
		const ir_val **list = k == JV_INVARIANT ? inv : var;
		int *n = k == JV_INVARIANT ? ninv : nvar;
		for (int i = 0; i < *n; i++)
			if (list[i] == v)
				return true;
		if (*n >= JV_PARTS)
			return false;
		list[(*n)++] = v;
		return true;
	}
	switch (v->kind) {
	case V_OP:
		for (int i = 0; i < ir_op_arity[v->u.op.op]; i++)
			if (!parts_walk(c, v->u.op.a[i], l, memo, inv, ninv, var, nvar))
				return false;
		return true;
	case V_STOP: return parts_walk(c, v->u.stop, l, memo, inv, ninv, var, nvar);
	default: return false;
	}
}

/* The parts of a summand v computable in vectors across loop l
 * (jv_summand): its largest subexpressions that do not depend on l,
 * constants aside, inv[0..*ninv), and its reads that do, var[0..*nvar),
 * each listed once; false when there are more than JV_PARTS of either. */
bool jv_parts(cg_ctx *c, const ir_val *v, const ir_loop *l, const ir_val **inv, int *ninv, const ir_val **var,
              int *nvar)
{
	signed char *memo = calloc((size_t)c->nids, sizeof *memo);
	*ninv = *nvar = 0;
	bool ok = memo && parts_walk(c, v, l, memo, inv, ninv, var, nvar);
	free(memo);
	return ok;
}

/* Vectors of the loop a tile of jv_group_add takes for each position:
 * 3 positions x 4 vectors, 12 accumulators, beside 4 rows' loads of x and
 * 3 of the positions' invariant factors. */
enum { JV_ADD_TILE = 4 };

typedef struct jv_gadd {
	const ir_stmt *s;
	const ir_loop *l, *pl, *rows;
	LLVMValueRef first, count, saved;
	const LLVMValueRef *pk;
	int npos, block;
	jv_given g;
	signed char *memo;
} jv_gadd;

/* Vectors kk0 + v * lanes (v < nv, only the lanes of mask when it is not
 * NULL) of positions [q0, q1): the rows' terms added in one accumulator
 * per position and vector, row after row, then into the target. */
static void gadd_tile(cg_ctx *c, jv_gadd *ga, int q0, int q1, int nv, LLVMValueRef kk0, LLVMValueRef mask)
{
	unsigned lanes = (unsigned)(64 / c->real_size);
	LLVMTypeRef vt = LLVMVectorType(c->real, lanes);
	const ir_assign *a = &ga->s->assigns[0];
	LLVMValueRef acc[CG_JAM_POS * JV_ADD_TILE], kk[JV_ADD_TILE];
	for (int v = 0; v < nv; v++)
		kk[v] = v ? LLVMBuildNSWAdd(c->b, kk0, cg_i64(c, v * (int)lanes), "") : kk0;
	for (int i = 0; i < (q1 - q0) * nv; i++) {
		acc[i] = cg_entry_alloca(c, vt, "gacc");
		LLVMSetAlignment(LLVMBuildStore(c->b, LLVMConstNull(vt), acc[i]), (unsigned)c->real_size);
	}
	cg_loop rl;
	cg_loop_open(c, &rl, NULL, cg_i64(c, 0), ga->count, false);
	for (int q = q0; q < q1; q++) {
		for (int i = 0; i < ga->g.n; i++) {
			LLVMValueRef at = LLVMBuildNSWAdd(c->b, rl.iv, cg_i64(c, (i * ga->npos + q) * ga->block), "");
			ga->g.x[i] = cg_load_real(c, LLVMBuildInBoundsGEP2(c->b, c->real, ga->saved, &at, 1, ""));
		}
		for (int v = 0; v < nv; v++) {
			cg_set_lane(c, ga->rows, ga->first, rl.iv);
			c->loop_var[ga->pl->id] = ga->pk[q];
			c->loop_var[ga->l->id] = kk[v];
			LLVMValueRef x = jv_emit_given(c, a->val, ga->l, lanes, mask, ga->memo, &ga->g);
			LLVMValueRef *p = &acc[(q - q0) * nv + v];
			LLVMValueRef old = LLVMBuildLoad2(c->b, vt, *p, "");
			LLVMSetAlignment(old, (unsigned)c->real_size);
			LLVMSetAlignment(LLVMBuildStore(c->b, cg_contract(LLVMBuildFAdd(c->b, old, x, "")), *p),
			                 (unsigned)c->real_size);
		}
	}
	cg_loop_close(c, &rl);
	cg_hint_vector_width(c, rl.latch, 1, 1); /* vector code already */
	for (int q = q0; q < q1; q++)
		for (int v = 0; v < nv; v++) {
			c->loop_var[ga->pl->id] = ga->pk[q];
			c->loop_var[ga->l->id] = kk[v];
			cg_cache_drop(c);
			LLVMValueRef sum = LLVMBuildLoad2(c->b, vt, acc[(q - q0) * nv + v], "");
			LLVMSetAlignment(sum, (unsigned)c->real_size);
			jv_add_into(c, cg_addr(c, a->buf, a->idx), mask, sum, vt);
		}
}

/* Accumulation s (jv_add_ok, one loop l and one target, l's start free of
 * loop pl) of rows [0, count) of the block from row `first` (rows: its
 * rows loop) at positions pk[0..npos) of pl, position q only when q <
 * nact, after those positions' other statements: the summand's invariant
 * parts inv[] (jv_parts) were saved then, inv[i] of row r at position q
 * at saved[(i * npos + q) * block + r].  The steps of l all positions
 * have run in tiles of npos positions x JV_ADD_TILE vectors, a loop over
 * the rows inside (each row's varying reads, x[kk], loaded once for all
 * positions, each target vector loaded and stored once per block, not once
 * per tile of rows); each position's other steps, and its masked last one,
 * alone.  The rows' terms are added in row order, one chain per vector:
 * the bits do not depend on anything but the rows. */
void jv_group_add(cg_ctx *c, const ir_stmt *s, const ir_loop *rows, LLVMValueRef first, LLVMValueRef count,
                  const ir_loop *pl, const LLVMValueRef *pk, int npos, LLVMValueRef nact, const ir_val *const *inv,
                  int ninv, LLVMValueRef saved, int block)
{
	unsigned lanes = (unsigned)(64 / c->real_size);
	jv_gadd ga = {.s = s, .l = s->loops[0], .pl = pl, .rows = rows, .first = first, .count = count,
	              .saved = saved, .pk = pk, .npos = npos, .block = block};
	ga.g.n = ninv;
	ga.g.v = inv;
	ga.memo = calloc((size_t)c->nids, sizeof *ga.memo);
	if (!ga.memo) {
		cg_fail(c, "out of memory");
		return;
	}
	jv_kind(c, s->assigns[0].val, ga.l, ga.memo);
	LLVMValueRef saved_pl = c->loop_var[pl->id], saved_l = c->loop_var[ga.l->id];
	LLVMValueRef saved_var = c->loop_var[rows->id];
	cg_row saved_row = c->row;
	LLVMValueRef V = cg_i64(c, lanes), zero = cg_i64(c, 0), lo, len[CG_JAM_POS], m[CG_JAM_POS], mmin;
	group_bounds(c, ga.l, pl, pk, npos, nact, &lo, len, m, &mmin);
	/* the tiles all positions have */
	LLVMValueRef nch = LLVMBuildUDiv(c->b, mmin, cg_i64(c, JV_ADD_TILE), "");
	jv_loop lp;
	jv_loop_open(c, &lp, "vgadd", zero, nch, lo);
	gadd_tile(c, &ga, 0, npos, JV_ADD_TILE,
	          LLVMBuildNSWAdd(c->b, lo, LLVMBuildNSWMul(c->b, lp.j, cg_i64(c, JV_ADD_TILE * (int)lanes), ""), ""),
	          NULL);
	jv_loop_close(c, &lp);
	LLVMValueRef done = LLVMBuildNSWMul(c->b, nch, cg_i64(c, JV_ADD_TILE), "");
	for (int q = 0; q < npos; q++) {
		/* position q's own steps and its masked one, when it is one of
		 * the group (the last group's padding is not) */
		LLVMBasicBlockRef own = NULL, next = NULL;
		if (q) {
			own = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "gadd.own");
			next = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "gadd.next");
			LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, cg_i64(c, q), nact, ""), own, next);
			LLVMPositionBuilderAtEnd(c->b, own);
		}
		jv_loop op;
		LLVMValueRef kk = jv_loop_open(c, &op, "vgadd1", done, m[q], lo);
		gadd_tile(c, &ga, q, q + 1, 1, kk, NULL);
		jv_loop_close(c, &op);
		LLVMValueRef used = LLVMBuildNSWMul(c->b, m[q], V, "");
		gadd_tile(c, &ga, q, q + 1, 1, LLVMBuildNSWAdd(c->b, lo, used, ""), jv_tail_mask(c, len[q], used, lanes));
		if (q) {
			LLVMBuildBr(c->b, next);
			LLVMMoveBasicBlockAfter(next, LLVMGetInsertBlock(c->b));
			LLVMPositionBuilderAtEnd(c->b, next);
		}
	}
	c->loop_var[pl->id] = saved_pl;
	c->loop_var[ga.l->id] = saved_l;
	c->loop_var[rows->id] = saved_var;
	c->row = saved_row;
	c->lane = NULL;
	cg_cache_drop(c);
	free(ga.memo);
}
