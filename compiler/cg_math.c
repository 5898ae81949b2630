/* cg_math.c -- elementary functions as straight-line code the vectorizer
 * can take.
 *
 * A call of libm's exp (or of llvm.exp, which becomes one) inside a loop
 * keeps the loop scalar: NADE's hidden layer, n*H sigmoids per image,
 * would then run one exp at a time.  Written out as arithmetic on the real
 * type, the same loop becomes SIMD code.  Accuracy: within 2 ulp over the
 * whole range, with IEEE semantics at the edges (exp(+inf) = inf,
 * exp(-inf) = 0, exp(NaN) = NaN, overflow to inf, gradual underflow); no
 * fast-math flags are used.
 *
 * Cold kernels (cg_context.h), which are not vectorized, call the same
 * arithmetic as one private function instead: the same bits, and a few
 * instructions per use instead of forty for LLVM to compile.
 */
#include <math.h>
#include <string.h>

#include "cg_context.h"

static LLVMValueRef fma3(cg_ctx *c, LLVMValueRef a, LLVMValueRef b, LLVMValueRef d)
{
	LLVMValueRef args[3] = {a, b, d};
	return cg_call_intrinsic(c, "llvm.fma", args, 3);
}

static LLVMValueRef call1(cg_ctx *c, const char *name, LLVMValueRef x)
{
	return cg_call_intrinsic(c, name, &x, 1);
}

static LLVMValueRef call2(cg_ctx *c, const char *name, LLVMValueRef x, LLVMValueRef y)
{
	LLVMValueRef args[2] = {x, y};
	return cg_call_intrinsic(c, name, args, 2);
}

/* 2^k for an integer-valued real k whose exponent field fits: built from
 * the bits ((k + bias) << mantissa bits). */
static LLVMValueRef pow2(cg_ctx *c, LLVMValueRef k)
{
	bool f32 = c->o->f32;
	LLVMTypeRef it = f32 ? c->i32 : c->i64;
	LLVMValueRef ki = LLVMBuildFPToSI(c->b, k, it, "");
	LLVMValueRef biased = LLVMBuildAdd(c->b, ki, LLVMConstInt(it, f32 ? 127 : 1023, 0), "");
	LLVMValueRef bits = LLVMBuildShl(c->b, biased, LLVMConstInt(it, f32 ? 23 : 52, 0), "");
	return LLVMBuildBitCast(c->b, bits, c->real, "");
}

/* exp(x) = 2^n * exp(r), n = rint(x / ln 2), r = x - n ln 2 (in two parts,
 * so r is exact to working precision), |r| <= ln(2)/2; exp(r) by its
 * Taylor polynomial (degree 12 in f64, 7 in f32: truncation below half an
 * ulp), and 2^n applied in two halves so that n down to the subnormal range
 * and up to overflow stays representable in each factor. */
static LLVMValueRef exp_inline(cg_ctx *c, LLVMValueRef x)
{
	bool f32 = c->o->f32;
	/* clamp first: the integer conversion below must see a finite, bounded
	 * n; beyond these bounds the result is 0 or inf anyway */
	LLVMValueRef lo = cg_real_const(c, f32 ? -104.0 : -746.0), hi = cg_real_const(c, f32 ? 89.0 : 710.0);
	LLVMValueRef xc = call2(c, "llvm.minnum", call2(c, "llvm.maxnum", x, lo), hi);
	LLVMValueRef n = call1(c, "llvm.rint", LLVMBuildFMul(c->b, xc, cg_real_const(c, 1.4426950408889634), ""));
	/* ln 2 split into a part with trailing zeros (n * hi is exact) and the rest */
	double ln2_hi = f32 ? 0.693145751953125 : 0.6931471803691238,
	       ln2_lo = f32 ? 1.428606765330187e-06 : 1.9082149292705877e-10;
	LLVMValueRef nn = LLVMBuildFNeg(c->b, n, "");
	LLVMValueRef r = fma3(c, nn, cg_real_const(c, ln2_hi), xc);
	r = fma3(c, nn, cg_real_const(c, ln2_lo), r);
	int degree = f32 ? 7 : 12;
	double coef = 1;
	for (int k = 1; k <= degree; k++)
		coef /= k;
	/* Horner from the highest power: p = 1/degree! */
	LLVMValueRef p = cg_real_const(c, coef);
	for (int k = degree - 1; k >= 0; k--) {
		coef *= k + 1; /* coef = 1/k! */
		p = fma3(c, p, r, cg_real_const(c, coef));
	}
	/* 2^n = 2^(n/2 rounded down) * 2^(rest) */
	LLVMValueRef n1 = call1(c, "llvm.floor", LLVMBuildFMul(c->b, n, cg_real_const(c, 0.5), ""));
	LLVMValueRef n2 = LLVMBuildFSub(c->b, n, n1, "");
	LLVMValueRef y = LLVMBuildFMul(c->b, LLVMBuildFMul(c->b, p, pow2(c, n1), ""), pow2(c, n2), "");
	/* NaN in, NaN out (the clamp above turned it into a number) */
	LLVMValueRef isnan = LLVMBuildFCmp(c->b, LLVMRealUNO, x, x, "");
	return LLVMBuildSelect(c->b, isnan, x, y, "");
}

/* The private function `chain.exp` (the arithmetic above), made on first
 * use: noinline, so that the light pipeline of cold kernels keeps it out
 * of line. */
static LLVMValueRef exp_function(cg_ctx *c, LLVMTypeRef *ty)
{
	*ty = LLVMFunctionType(c->real, &c->real, 1, 0);
	LLVMValueRef fn = LLVMGetNamedFunction(c->mod, "chain.exp");
	if (fn)
		return fn;
	fn = LLVMAddFunction(c->mod, "chain.exp", *ty);
	LLVMSetLinkage(fn, LLVMPrivateLinkage);
	static const char *const attrs[] = { "nounwind", "willreturn", "noinline", "memory" };
	for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
		unsigned kind = LLVMGetEnumAttributeKindForName(attrs[i], strlen(attrs[i]));
		/* MemoryEffects encoding: 0 = memory(none) */
		LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(c->ctx, kind, 0));
	}
	LLVMBuilderRef saved = c->b;
	c->b = LLVMCreateBuilderInContext(c->ctx);
	LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, fn, "entry"));
	LLVMBuildRet(c->b, exp_inline(c, LLVMGetParam(fn, 0)));
	LLVMDisposeBuilder(c->b);
	c->b = saved;
	return fn;
}

LLVMValueRef cg_exp(cg_ctx *c, LLVMValueRef x)
{
	if (!c->k || !c->cold[c->k->kind])
		return exp_inline(c, x);
	LLVMTypeRef ty;
	LLVMValueRef fn = exp_function(c, &ty);
	return LLVMBuildCall2(c->b, ty, fn, &x, 1, "");
}
