/* cg_expr.c -- code generation of index and scalar expressions.
 *
 * Index expressions become i64 arithmetic; buffer elements are addressed
 * row-major from the buffer's base (an argument pointer plus its offset, the
 * current row pointer, a constant global or the kernel's scratch).  Scalar
 * expressions become straight-line code in the precision of the build: LLVM
 * intrinsics where LLVM has one (exp, log, sqrt, fabs, pow, maxnum, minnum),
 * libm otherwise (log1p, tanh), the runtime's counter-based RNG for draws.
 * No fast-math flags: the generated code computes what the IR says, in the
 * order it says, and cg's folding in ir.c matches it.
 *
 * Each distinct (hash-consed) ir_val is emitted once per innermost loop body:
 * cg_val caches by node id until cg_cache_drop, which the statement emitter
 * calls whenever a body starts or ends (or a store makes a cached read stale).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cg_context.h"

LLVMValueRef cg_i64(cg_ctx *c, int64_t v)
{
	return LLVMConstInt(c->i64, (unsigned long long)v, 1);
}

LLVMValueRef cg_real_const(cg_ctx *c, double d)
{
	return LLVMConstReal(c->real, d);
}

/* Forgets every cached value: the next body starts afresh. */
void cg_cache_drop(cg_ctx *c)
{
	if (++c->stamp == 0) {
		memset(c->vstamp, 0, (size_t)c->nids * sizeof *c->vstamp);
		c->stamp = 1;
	}
}

/* A function of the runtime or libm, declared once per module.  `pure`
 * ones (the RNG, libm functions whose errno we never read) are marked
 * memory(none) nounwind willreturn, so LLVM may hoist, combine and drop
 * them like the intrinsics. */
LLVMValueRef cg_runtime_fn(cg_ctx *c, const char *name, LLVMTypeRef ret, LLVMTypeRef *params,
                           unsigned nparams, bool pure, LLVMTypeRef *fn_type)
{
	LLVMTypeRef ty = LLVMFunctionType(ret, params, nparams, 0);
	if (fn_type)
		*fn_type = ty;
	LLVMValueRef fn = LLVMGetNamedFunction(c->mod, name);
	if (fn)
		return fn;
	fn = LLVMAddFunction(c->mod, name, ty);
	unsigned nounwind = LLVMGetEnumAttributeKindForName("nounwind", 8);
	LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(c->ctx, nounwind, 0));
	if (pure) {
		unsigned willreturn = LLVMGetEnumAttributeKindForName("willreturn", 10);
		unsigned memory = LLVMGetEnumAttributeKindForName("memory", 6);
		LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
		                        LLVMCreateEnumAttribute(c->ctx, willreturn, 0));
		/* MemoryEffects encoding: 0 = memory(none) */
		LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
		                        LLVMCreateEnumAttribute(c->ctx, memory, 0));
	}
	return fn;
}

/* A call of an overloaded intrinsic on the real type, e.g. "llvm.exp". */
LLVMValueRef cg_call_intrinsic(cg_ctx *c, const char *name, LLVMValueRef *args, unsigned nargs)
{
	unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
	if (!id) {
		cg_fail(c, "internal error: no intrinsic %s", name);
		return LLVMGetUndef(c->real);
	}
	LLVMTypeRef tys[1] = { c->real };
	LLVMValueRef fn = LLVMGetIntrinsicDeclaration(c->mod, id, tys, 1);
	LLVMTypeRef fty = LLVMIntrinsicGetType(c->ctx, id, tys, 1);
	return LLVMBuildCall2(c->b, fty, fn, args, nargs, "");
}

/* A call of a libm function of one real: log1p or log1pf, tanh or tanhf. */
static LLVMValueRef call_libm(cg_ctx *c, const char *name64, LLVMValueRef x)
{
	char name[32];
	snprintf(name, sizeof name, "%s%s", name64, c->o->f32 ? "f" : "");
	LLVMTypeRef ty;
	LLVMValueRef fn = cg_runtime_fn(c, name, c->real, &c->real, 1, true, &ty);
	return LLVMBuildCall2(c->b, ty, fn, &x, 1, "");
}

/* The private constant global holding a CONST buffer's values, created on
 * first use (real, or i64 for int buffers). */
static LLVMValueRef const_global(cg_ctx *c, const ir_buf *b)
{
	if (c->const_global[b->id])
		return c->const_global[b->id];
	int64_t n = b->size > 0 ? b->size : 1;
	if (b->bits) {
		/* a bit array: one byte per 8 flags */
		LLVMValueRef init = LLVMConstStringInContext(c->ctx, (const char *)b->bits, (unsigned)((n + 7) / 8), 1);
		LLVMValueRef g = LLVMAddGlobal(c->mod, LLVMTypeOf(init), "const.bits");
		LLVMSetInitializer(g, init);
		LLVMSetGlobalConstant(g, 1);
		LLVMSetLinkage(g, LLVMPrivateLinkage);
		LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
		c->const_global[b->id] = g;
		return g;
	}
	LLVMTypeRef elt = b->is_int ? c->i64 : c->real;
	LLVMValueRef *vals = calloc((size_t)n, sizeof *vals);
	if (!vals) {
		cg_fail(c, "out of memory");
		return LLVMConstNull(c->ptr);
	}
	for (int64_t i = 0; i < n; i++) {
		if (b->is_int)
			vals[i] = cg_i64(c, (b->ivalues && i < b->size) ? b->ivalues[i] : 0);
		else
			vals[i] = cg_real_const(c, (b->values && i < b->size) ? b->values[i] : 0.0);
	}
	LLVMValueRef init = LLVMConstArray2(elt, vals, (uint64_t)n);
	free(vals);
	char name[256];
	snprintf(name, sizeof name, "const.%s", b->name ? b->name : "c");
	LLVMValueRef g = LLVMAddGlobal(c->mod, LLVMTypeOf(init), name);
	LLVMSetInitializer(g, init);
	LLVMSetGlobalConstant(g, 1);
	LLVMSetLinkage(g, LLVMPrivateLinkage);
	LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
	LLVMSetAlignment(g, 64);
	c->const_global[b->id] = g;
	return g;
}

/* The address of b[idx...]: base + offset + row-major linear index.  The
 * first dimension only bounds the buffer, so a buffer whose first
 * dimension is the number of rows (OUT of logp_batch) needs no n. */
LLVMValueRef cg_addr(cg_ctx *c, const ir_buf *b, ir_idx *const *idx)
{
	if (!b || b->id < 0 || b->id >= c->nids) {
		cg_fail(c, "internal error: a buffer unknown to the module");
		return LLVMConstNull(c->ptr);
	}
	LLVMValueRef lin = NULL;
	for (int i = 0; i < b->rank; i++) {
		LLVMValueRef x = cg_idx(c, idx ? idx[i] : NULL);
		lin = lin ? LLVMBuildNSWAdd(c->b, LLVMBuildNSWMul(c->b, lin, cg_i64(c, b->dims[i]), ""), x, "")
		          : x;
	}
	if (!lin)
		lin = cg_i64(c, 0);
	LLVMValueRef base = NULL;
	int64_t off = 0;
	const char *what = NULL;
	switch (b->cls) {
	case BUF_THETA: base = c->theta; off = b->offset; what = "theta"; break;
	case BUF_GRAD:  base = c->grad;  off = b->offset; what = "grad"; break;
	case BUF_OBS:   base = c->row.ptr; off = b->offset; what = "obs"; break;
	case BUF_OUT:   base = c->out;   off = b->offset; what = "out"; break;
	case BUF_CONST: base = const_global(c, b); break;
	case BUF_TEMP:
		base = c->temp_ptr[b->id];
		if (base && c->lane && c->lane_stride && c->lane_stride[b->id] > 0) {
			LLVMValueRef o = LLVMBuildNSWMul(c->b, c->lane, cg_i64(c, c->lane_stride[b->id]), "");
			base = LLVMBuildInBoundsGEP2(c->b, c->real, base, &o, 1, "");
		}
		what = "scratch";
		break;
	}
	if (!base) {
		cg_fail(c, "internal error: kernel %s uses %s buffer %s but has no %s argument",
		        c->k && c->k->name ? c->k->name : "?", what ? what : "?", b->name, what ? what : "?");
		return LLVMConstNull(c->ptr);
	}
	if (off)
		lin = LLVMBuildNSWAdd(c->b, lin, cg_i64(c, off), "");
	LLVMTypeRef elt = (b->cls == BUF_CONST && b->is_int) ? c->i64 : c->real;
	return LLVMBuildInBoundsGEP2(c->b, elt, base, &lin, 1, "");
}

/* An element load with its natural alignment. */
static LLVMValueRef load_elt(cg_ctx *c, const ir_buf *b, ir_idx *const *idx, LLVMTypeRef *ty)
{
	LLVMValueRef p = cg_addr(c, b, idx);
	*ty = (b && b->cls == BUF_CONST && b->is_int) ? c->i64 : c->real;
	LLVMValueRef v = LLVMBuildLoad2(c->b, *ty, p, "");
	LLVMSetAlignment(v, *ty == c->i64 ? 8 : (unsigned)c->real_size);
	return cg_tag_temp(c, v, b);
}

/* An index expression as an i64 value at the current insertion point. */
LLVMValueRef cg_idx(cg_ctx *c, const ir_idx *x)
{
	if (!x) {
		cg_fail(c, "internal error: missing index expression");
		return cg_i64(c, 0);
	}
	switch (x->kind) {
	case IX_CONST:
		return cg_i64(c, x->u.c);
	case IX_LOOP: {
		const ir_loop *l = x->u.loop;
		if (!l || l->id < 0 || l->id >= c->nids || !c->loop_var[l->id]) {
			cg_fail(c, "internal error: loop variable %s used outside its loop", l ? l->name : "?");
			return cg_i64(c, 0);
		}
		return c->loop_var[l->id];
	}
	case IX_ADD:
		return LLVMBuildNSWAdd(c->b, cg_idx(c, x->u.bin.a), cg_idx(c, x->u.bin.b), "");
	case IX_SUB:
		return LLVMBuildNSWSub(c->b, cg_idx(c, x->u.bin.a), cg_idx(c, x->u.bin.b), "");
	case IX_MUL:
		return LLVMBuildNSWMul(c->b, cg_idx(c, x->u.bin.a), cg_idx(c, x->u.bin.b), "");
	case IX_LOAD: {
		LLVMTypeRef ty;
		LLVMValueRef v = load_elt(c, x->u.load.buf, x->u.load.idx, &ty);
		return ty == c->i64 ? v : LLVMBuildFPToSI(c->b, v, c->i64, "");
	}
	case IX_PREFIX:
		if (!c->prefix) {
			cg_fail(c, "internal error: `prefix` outside the complete kernel");
			return cg_i64(c, 0);
		}
		return c->prefix;
	case IX_ROW: {
		LLVMValueRef r = c->row.r ? c->row.r : cg_i64(c, 0);
		return c->first ? LLVMBuildAdd(c->b, c->first, r, "row") : r;
	}
	}
	cg_fail(c, "internal error: bad index kind %d", (int)x->kind);
	return cg_i64(c, 0);
}

static LLVMValueRef to_real(cg_ctx *c, LLVMValueRef bit)
{
	return LLVMBuildUIToFP(c->b, bit, c->real, "");
}

static LLVMValueRef is_nonzero(cg_ctx *c, LLVMValueRef x)
{
	/* une: NaN counts as true, as in C */
	return LLVMBuildFCmp(c->b, LLVMRealUNE, x, cg_real_const(c, 0), "");
}

/* max(x, 0) written as x > 0 ? x : 0 (relu, and the first term of softplus). */
static LLVMValueRef relu(cg_ctx *c, LLVMValueRef x)
{
	LLVMValueRef zero = cg_real_const(c, 0);
	return LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOGT, x, zero, ""), x, zero, "");
}

/* softplus(x) = max(x, 0) + log1p(exp(-|x|)): finite for every finite x. */
static LLVMValueRef softplus(cg_ctx *c, LLVMValueRef x)
{
	LLVMValueRef ax = cg_call_intrinsic(c, "llvm.fabs", &x, 1);
	LLVMValueRef e = LLVMBuildFNeg(c->b, ax, "");
	e = cg_exp_nonpos(c, e);
	return LLVMBuildFAdd(c->b, relu(c, x), cg_log1p_unit(c, e), "");
}

/* sigmoid(x) = x >= 0 ? 1/(1+exp(-x)) : exp(x)/(1+exp(x)), with one exp:
 * exp(-|x|) is exp(-x) on the first branch and exp(x) on the second. */
static LLVMValueRef sigmoid(cg_ctx *c, LLVMValueRef x)
{
	LLVMValueRef one = cg_real_const(c, 1);
	LLVMValueRef e = cg_call_intrinsic(c, "llvm.fabs", &x, 1);
	e = LLVMBuildFNeg(c->b, e, "");
	e = cg_exp_nonpos(c, e);
	LLVMValueRef d = LLVMBuildFAdd(c->b, one, e, "");
	/* both sides divide by d: the numerator is chosen first, so a vector
	 * of sigmoids costs one division, not two */
	LLVMValueRef ge = LLVMBuildFCmp(c->b, LLVMRealOGE, x, cg_real_const(c, 0), "");
	return LLVMBuildFDiv(c->b, LLVMBuildSelect(c->b, ge, one, e, ""), d, "");
}

static LLVMValueRef cmp(cg_ctx *c, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef b)
{
	return to_real(c, LLVMBuildFCmp(c->b, p, a, b, ""));
}

/* Lets a multiply and the add it feeds become one fused multiply-add (one
 * rounding instead of two, as C compilers do by default with FMA hardware):
 * it never changes NaN or Inf semantics.  Returns v. */
LLVMValueRef cg_contract(LLVMValueRef v)
{
	LLVMSetFastMathFlags(v, LLVMGetFastMathFlags(v) | LLVMFastMathAllowContract);
	return v;
}

/* One scalar op on already emitted operands, as ir.c's op_eval computes it. */
static LLVMValueRef cg_op(cg_ctx *c, ir_opcode op, LLVMValueRef *a)
{
	LLVMBuilderRef b = c->b;
	switch (op) {
	case IR_NEG: return LLVMBuildFNeg(b, a[0], "");
	case IR_EXP: return cg_exp(c, a[0]);
	case IR_LOG: return cg_call_intrinsic(c, "llvm.log", a, 1);
	case IR_LOG1P: return cg_log1p(c, a[0]);
	case IR_SQRT: return cg_call_intrinsic(c, "llvm.sqrt", a, 1);
	case IR_ABS: return cg_call_intrinsic(c, "llvm.fabs", a, 1);
	case IR_SQUARE: return LLVMBuildFMul(b, a[0], a[0], "");
	case IR_SIGMOID: return sigmoid(c, a[0]);
	case IR_TANH: return call_libm(c, "tanh", a[0]);
	case IR_RELU: return relu(c, a[0]);
	case IR_SOFTPLUS: return softplus(c, a[0]);
	case IR_LOG_SIGMOID:
		return LLVMBuildFNeg(b, softplus(c, LLVMBuildFNeg(b, a[0], "")), "");
	case IR_NOT: return cmp(c, LLVMRealOEQ, a[0], cg_real_const(c, 0));
	case IR_ADD: return cg_contract(LLVMBuildFAdd(b, a[0], a[1], ""));
	case IR_SUB: return cg_contract(LLVMBuildFSub(b, a[0], a[1], ""));
	case IR_MUL: return cg_contract(LLVMBuildFMul(b, a[0], a[1], ""));
	case IR_DIV: return LLVMBuildFDiv(b, a[0], a[1], "");
	case IR_POW: return cg_call_intrinsic(c, "llvm.pow", a, 2);
	case IR_MAX2: return cg_call_intrinsic(c, "llvm.maxnum", a, 2);
	case IR_MIN2: return cg_call_intrinsic(c, "llvm.minnum", a, 2);
	case IR_LT: return cmp(c, LLVMRealOLT, a[0], a[1]);
	case IR_LE: return cmp(c, LLVMRealOLE, a[0], a[1]);
	case IR_GT: return cmp(c, LLVMRealOGT, a[0], a[1]);
	case IR_GE: return cmp(c, LLVMRealOGE, a[0], a[1]);
	case IR_EQ: return cmp(c, LLVMRealOEQ, a[0], a[1]);
	case IR_NE: return cmp(c, LLVMRealUNE, a[0], a[1]);
	case IR_AND: return to_real(c, LLVMBuildAnd(b, is_nonzero(c, a[0]), is_nonzero(c, a[1]), ""));
	case IR_OR: return to_real(c, LLVMBuildOr(b, is_nonzero(c, a[0]), is_nonzero(c, a[1]), ""));
	case IR_SELECT: return LLVMBuildSelect(b, is_nonzero(c, a[0]), a[1], a[2], "");
	case IR_OP__COUNT: break;
	}
	cg_fail(c, "internal error: bad op %d", (int)op);
	return LLVMGetUndef(c->real);
}

/* chain_rng_uniform (runtime/rng.c) inline, bit for bit: Philox4x32-10 of
 * the counter (a, b, stream << 24 | c) under the key seed, its first 64
 * bits' top 53 as a double in (0, 1).  Straight-line integer code, so a
 * loop drawing one number per row (ancestral sampling over a block of
 * rows) vectorizes: its 32 x 32 -> 64-bit products are vector multiplies,
 * where a call per row kept the loop scalar. */
static LLVMValueRef philox_uniform(cg_ctx *c, LLVMValueRef seed, uint32_t stream, LLVMValueRef a, LLVMValueRef b,
                                   LLVMValueRef cc)
{
	LLVMBuilderRef B = c->b;
	LLVMTypeRef i32 = c->i32, i64 = c->i64;
	LLVMValueRef sh32 = cg_i64(c, 32);
	LLVMValueRef k0 = LLVMBuildTrunc(B, seed, i32, ""), k1 = LLVMBuildTrunc(B, LLVMBuildLShr(B, seed, sh32, ""), i32, "");
	LLVMValueRef x[4] = {
		LLVMBuildTrunc(B, a, i32, ""),
		LLVMBuildTrunc(B, LLVMBuildLShr(B, a, sh32, ""), i32, ""),
		b,
		LLVMBuildOr(B, LLVMConstInt(i32, (unsigned long long)stream << 24, 0),
		            LLVMBuildAnd(B, cc, LLVMConstInt(i32, 0xffffff, 0), ""), ""),
	};
	for (int r = 0; r < 10; r++) {
		if (r > 0) { /* the key is bumped between rounds */
			k0 = LLVMBuildAdd(B, k0, LLVMConstInt(i32, 0x9E3779B9u, 0), "");
			k1 = LLVMBuildAdd(B, k1, LLVMConstInt(i32, 0xBB67AE85u, 0), "");
		}
		LLVMValueRef p0 = LLVMBuildNUWMul(B, LLVMConstInt(i64, 0xD2511F53u, 0), LLVMBuildZExt(B, x[0], i64, ""), "");
		LLVMValueRef p1 = LLVMBuildNUWMul(B, LLVMConstInt(i64, 0xCD9E8D57u, 0), LLVMBuildZExt(B, x[2], i64, ""), "");
		LLVMValueRef hi0 = LLVMBuildTrunc(B, LLVMBuildLShr(B, p0, sh32, ""), i32, "");
		LLVMValueRef hi1 = LLVMBuildTrunc(B, LLVMBuildLShr(B, p1, sh32, ""), i32, "");
		LLVMValueRef y0 = LLVMBuildXor(B, LLVMBuildXor(B, hi1, x[1], ""), k0, "");
		LLVMValueRef y2 = LLVMBuildXor(B, LLVMBuildXor(B, hi0, x[3], ""), k1, "");
		x[1] = LLVMBuildTrunc(B, p1, i32, "");
		x[3] = LLVMBuildTrunc(B, p0, i32, "");
		x[0] = y0;
		x[2] = y2;
	}
	LLVMValueRef bits = LLVMBuildOr(B, LLVMBuildZExt(B, x[0], i64, ""),
	                                LLVMBuildShl(B, LLVMBuildZExt(B, x[1], i64, ""), sh32, ""), "");
	LLVMTypeRef dbl = LLVMDoubleTypeInContext(c->ctx);
	LLVMValueRef top = LLVMBuildSIToFP(B, LLVMBuildLShr(B, bits, cg_i64(c, 11), ""), dbl, ""); /* < 2^53: exact */
	LLVMValueRef half = LLVMBuildFAdd(B, top, LLVMConstReal(dbl, 0.5), "");
	return LLVMBuildFMul(B, half, LLVMConstReal(dbl, 0x1p-53), "");
}

/* A draw: chain_rng_{uniform,normal,gumbel}(seed, stream, a, b, c) or
 * chain_rng_poisson(seed, stream, a, b, c, rate) with the kernel's seed (0
 * for kernels without one), as a real; uniform draws inline.  A call is
 * scalar code: a loop over the rows of a block that holds one is not
 * vectorized (cg_rows.c's val_calls), so it runs once per row. */
static LLVMValueRef cg_draw(cg_ctx *c, const ir_val *v)
{
	static const char *const names[] = { "chain_rng_uniform", "chain_rng_normal", "chain_rng_gumbel",
	                                     "chain_rng_poisson" };
	unsigned k = v->u.draw.kind <= DRAW_POISSON ? (unsigned)v->u.draw.kind : 0;
	LLVMTypeRef dbl = LLVMDoubleTypeInContext(c->ctx);
	LLVMValueRef args[6] = {
		c->seed ? c->seed : cg_i64(c, 0),
		LLVMConstInt(c->i32, v->u.draw.stream, 0),
		v->u.draw.a ? cg_idx(c, v->u.draw.a) : cg_i64(c, 0),
		LLVMBuildTrunc(c->b, v->u.draw.b ? cg_idx(c, v->u.draw.b) : cg_i64(c, 0), c->i32, ""),
		LLVMConstInt(c->i32, v->u.draw.c, 0),
	};
	if (v->u.draw.ci) /* one draw per iteration of the enclosing sum */
		args[4] = LLVMBuildAdd(c->b, args[4], LLVMBuildTrunc(c->b, cg_idx(c, v->u.draw.ci), c->i32, ""), "");
	unsigned nargs = 5;
	if (v->u.draw.kind == DRAW_POISSON) { /* the rate, in double whatever the precision */
		LLVMValueRef rate = v->u.draw.arg ? cg_val(c, v->u.draw.arg) : cg_real_const(c, 0);
		args[nargs++] = c->o->f32 ? LLVMBuildFPExt(c->b, rate, dbl, "") : rate;
	}
	LLVMValueRef r;
	if (cg_draw_inline(c, v)) {
		r = philox_uniform(c, args[0], v->u.draw.stream, args[2], args[3], args[4]);
	} else {
		LLVMTypeRef params[6] = { c->i64, c->i32, c->i64, c->i32, c->i32, dbl }, ty;
		LLVMValueRef fn = cg_runtime_fn(c, names[k], dbl, params, nargs, true, &ty);
		r = LLVMBuildCall2(c->b, ty, fn, args, nargs, "");
	}
	return c->o->f32 ? LLVMBuildFPTrunc(c->b, r, c->real, "") : r;
}

/* Whether draw v is computed inline (no call): a uniform, when optimizing. */
bool cg_draw_inline(const cg_ctx *c, const ir_val *v)
{
	return v->kind == V_DRAW && v->u.draw.kind == DRAW_UNIFORM && c->o->opt_level > 0;
}

/* A scalar expression as a real value, emitted once per body (cached by the
 * node's id until the next cg_cache_drop). */
LLVMValueRef cg_val(cg_ctx *c, const ir_val *v)
{
	if (!v) {
		cg_fail(c, "internal error: missing value");
		return LLVMGetUndef(c->real);
	}
	bool cacheable = v->id >= 0 && v->id < c->nids;
	if (cacheable && c->vstamp[v->id] == c->stamp)
		return c->vcache[v->id];
	LLVMValueRef r = NULL;
	switch (v->kind) {
	case V_CONST:
		r = cg_real_const(c, v->u.c);
		break;
	case V_READ: {
		LLVMTypeRef ty;
		const ir_buf *rb = v->u.read.buf;
		if (rb->cls == BUF_CONST && rb->bits) {
			/* flag t: (bits[t >> 3] >> (t & 7)) & 1 */
			LLVMValueRef t = cg_idx(c, v->u.read.idx[0]);
			LLVMValueRef at = LLVMBuildLShr(c->b, t, cg_i64(c, 3), "");
			LLVMValueRef p = LLVMBuildInBoundsGEP2(c->b, c->i8, const_global(c, rb), &at, 1, "");
			LLVMValueRef byte = LLVMBuildZExt(c->b, LLVMBuildLoad2(c->b, c->i8, p, ""), c->i64, "");
			LLVMValueRef bit = LLVMBuildAnd(c->b, LLVMBuildLShr(c->b, byte, LLVMBuildAnd(c->b, t, cg_i64(c, 7), ""), ""),
			                                cg_i64(c, 1), "");
			r = LLVMBuildUIToFP(c->b, bit, c->real, "");
			break;
		}
		r = load_elt(c, v->u.read.buf, v->u.read.idx, &ty);
		if (ty == c->i64)
			r = LLVMBuildSIToFP(c->b, r, c->real, "");
		break;
	}
	case V_OP: {
		LLVMValueRef a[3] = { NULL, NULL, NULL };
		int n = v->u.op.op < IR_OP__COUNT ? ir_op_arity[v->u.op.op] : 0;
		for (int i = 0; i < n; i++)
			a[i] = cg_val(c, v->u.op.a[i]);
		r = cg_op(c, v->u.op.op, a);
		break;
	}
	case V_INT:
		r = LLVMBuildSIToFP(c->b, cg_idx(c, v->u.idx), c->real, "");
		break;
	case V_DRAW:
		r = cg_draw(c, v);
		break;
	case V_STOP:
		r = cg_val(c, v->u.stop);
		break;
	}
	if (!r) {
		cg_fail(c, "internal error: bad value kind %d", (int)v->kind);
		r = LLVMGetUndef(c->real);
	}
	if (cacheable) {
		c->vcache[v->id] = r;
		c->vstamp[v->id] = c->stamp;
	}
	return r;
}
