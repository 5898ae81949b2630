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
 * arithmetic as private functions instead: the same bits, and a few
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

/* exp(r) for |r| <= ln(2)/2: the polynomial of least relative error on
 * [-0.3466, 0.3466] (Remez; `tools/minimax.py exp` prints these, rounded to
 * the precision): within 0.1 ulp in f64 (degree 11), 0.15 ulp in f32
 * (degree 6), before the rounding of its evaluation. */
static const double exp_poly_f64[] = {
	0x1.0000000000000p+0, 0x1.0000000000000p+0, 0x1.0000000000010p-1, 0x1.55555555554a2p-3,
	0x1.555555554f361p-5, 0x1.1111111130e26p-7, 0x1.6c16c18784432p-10, 0x1.a01a0110465d4p-13,
	0x1.a01992c8623e2p-16, 0x1.71df4535762bbp-19, 0x1.28b319cb73a0cp-22, 0x1.ad6612a7a9239p-26,
};
static const double exp_poly_f32[] = {
	0x1.0000000000000p+0, 0x1.0000000000000p+0, 0x1.fffffa0000000p-2, 0x1.55540a0000000p-3,
	0x1.55589a0000000p-5, 0x1.126d1a0000000p-7, 0x1.6ab9720000000p-10,
};

/* 1.5 * 2^mantissa bits: t = x / ln 2 + shift rounds x / ln 2 to an integer
 * n (to nearest, in the one rounding of a fused multiply-add) and holds n
 * in its low bits; t - shift is n exactly. */
static double exp_shift(bool f32)
{
	return f32 ? 0x1.8p23 : 0x1.8p52;
}

/* n = x / ln 2 rounded, as a real, and exp(r), r = x - n ln 2 (in two
 * parts, so r is exact to working precision), |r| <= ln(2)/2.  *t_out is
 * x / ln 2 + exp_shift, whose low bits hold n.  x must be finite and
 * bounded (clamped by the caller), or NaN (then so are n and the result). */
static LLVMValueRef exp_reduced(cg_ctx *c, LLVMValueRef xc, LLVMValueRef *n_out, LLVMValueRef *t_out)
{
	bool f32 = c->o->f32;
	LLVMValueRef shift = cg_real_const(c, exp_shift(f32));
	LLVMValueRef t = fma3(c, xc, cg_real_const(c, 1.4426950408889634), shift);
	LLVMValueRef n = LLVMBuildFSub(c->b, t, shift, "");
	/* ln 2 split into a part with trailing zeros (n * hi is exact) and the rest */
	double ln2_hi = f32 ? 0.693145751953125 : 0.6931471803691238,
	       ln2_lo = f32 ? 1.428606765330187e-06 : 1.9082149292705877e-10;
	LLVMValueRef nn = LLVMBuildFNeg(c->b, n, "");
	LLVMValueRef r = fma3(c, nn, cg_real_const(c, ln2_hi), xc);
	r = fma3(c, nn, cg_real_const(c, ln2_lo), r);
	const double *coef = f32 ? exp_poly_f32 : exp_poly_f64;
	int degree = f32 ? 6 : 11;
	LLVMValueRef p = cg_real_const(c, coef[degree]);
	for (int k = degree - 1; k >= 0; k--)
		p = fma3(c, p, r, cg_real_const(c, coef[k]));
	*n_out = n;
	*t_out = t;
	return p;
}

/* NaN in, NaN out (the clamps turn it into a number). */
static LLVMValueRef keep_nan(cg_ctx *c, LLVMValueRef x, LLVMValueRef y)
{
	LLVMValueRef isnan = LLVMBuildFCmp(c->b, LLVMRealUNO, x, x, "");
	return LLVMBuildSelect(c->b, isnan, x, y, "");
}

/* exp(x) = 2^n * exp(r), 2^n applied in two halves so that n down to the
 * subnormal range and up to overflow stays representable in each factor. */
static LLVMValueRef exp_inline(cg_ctx *c, LLVMValueRef x)
{
	bool f32 = c->o->f32;
	/* clamp first: the integer conversion below must see a finite, bounded
	 * n; beyond these bounds the result is 0 or inf anyway */
	LLVMValueRef lo = cg_real_const(c, f32 ? -104.0 : -746.0), hi = cg_real_const(c, f32 ? 89.0 : 710.0);
	LLVMValueRef xc = call2(c, "llvm.minnum", call2(c, "llvm.maxnum", x, lo), hi);
	LLVMValueRef n, t;
	LLVMValueRef p = exp_reduced(c, xc, &n, &t);
	/* 2^n = 2^(n/2 rounded down) * 2^(rest) */
	LLVMValueRef n1 = call1(c, "llvm.floor", LLVMBuildFMul(c->b, n, cg_real_const(c, 0.5), ""));
	LLVMValueRef n2 = LLVMBuildFSub(c->b, n, n1, "");
	LLVMValueRef y = LLVMBuildFMul(c->b, LLVMBuildFMul(c->b, p, pow2(c, n1), ""), pow2(c, n2), "");
	return keep_nan(c, x, y);
}

/* exp(x) for x <= 0 (sigmoid's and softplus' exp(-|x|)): n <= 0, so
 * 2^(n + 64) is always a normal number and p * 2^(n + 64) * 2^-64 rounds
 * once, where the result is subnormal, exactly as exp_inline's two halves
 * do.  2^(n + 64) is made from t's bits, n in the low ones: shifted left by
 * the mantissa width, only n + bias + 64 stays, in the exponent field.  The
 * clamp lets a NaN through (x < lo is false), so NaN gives NaN without a
 * test: every step after it is arithmetic on it. */
static LLVMValueRef exp_nonpos_inline(cg_ctx *c, LLVMValueRef x)
{
	bool f32 = c->o->f32;
	LLVMValueRef lo = cg_real_const(c, f32 ? -104.0 : -746.0);
	LLVMValueRef xc = LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOLT, x, lo, ""), lo, x, "");
	LLVMValueRef n, t;
	LLVMValueRef p = exp_reduced(c, xc, &n, &t);
	LLVMTypeRef it = f32 ? c->i32 : c->i64;
	LLVMValueRef bits = LLVMBuildAdd(c->b, LLVMBuildBitCast(c->b, t, it, ""),
	                                 LLVMConstInt(it, f32 ? 127 + 64 : 1023 + 64, 0), "");
	bits = LLVMBuildShl(c->b, bits, LLVMConstInt(it, f32 ? 23 : 52, 0), "");
	LLVMValueRef scale = LLVMBuildBitCast(c->b, bits, c->real, "");
	return LLVMBuildFMul(c->b, LLVMBuildFMul(c->b, p, scale, ""), cg_real_const(c, 0x1p-64), "");
}

/* log1p(x) = k ln 2 + log(m) + c / u, where u = 1 + x rounded = 2^k m with m
 * in [sqrt(2)/2, sqrt(2)), and c = (1 + x) - u exactly (the rounding error
 * of u; without it log1p of a tiny x would be 0).  log(m) = 2 atanh(s),
 * s = (m - 1)/(m + 1), |s| <= 0.172, by its series (to s^21 in f64, s^11 in
 * f32: truncation below half an ulp).  Within a few ulp everywhere, with
 * log1p(-1) = -inf, log1p(x < -1) = NaN, log1p(inf) = inf, NaN in NaN out.
 * A call of libm's log1p keeps a loop scalar; softplus needs one per use. */
static LLVMValueRef log1p_inline(cg_ctx *c, LLVMValueRef x)
{
	bool f32 = c->o->f32;
	LLVMBuilderRef b = c->b;
	LLVMTypeRef it = f32 ? c->i32 : c->i64;
	int mant = f32 ? 23 : 52;
	/* the bits of sqrt(2)/2 and of 1.0 */
	uint64_t half_sqrt2 = f32 ? 0x3f3504f3u : 0x3fe6a09e667f3bcdull, one = f32 ? 0x3f800000u : 0x3ff0000000000000ull;
	LLVMValueRef one_r = cg_real_const(c, 1.0);
	LLVMValueRef u = LLVMBuildFAdd(b, one_r, x, "");
	/* k and m: shifting the bits by (1 - sqrt(2)/2) moves mantissas at or
	 * above sqrt(2)/2 into the next exponent */
	LLVMValueRef bits = LLVMBuildBitCast(b, u, it, "");
	bits = LLVMBuildAdd(b, bits, LLVMConstInt(it, one - half_sqrt2, 0), "");
	LLVMValueRef k = LLVMBuildSub(b, LLVMBuildAShr(b, bits, LLVMConstInt(it, (unsigned)mant, 0), ""),
	                              LLVMConstInt(it, f32 ? 127 : 1023, 0), "");
	LLVMValueRef mbits = LLVMBuildAdd(b, LLVMBuildAnd(b, bits, LLVMConstInt(it, ((uint64_t)1 << mant) - 1, 0), ""),
	                                  LLVMConstInt(it, half_sqrt2, 0), "");
	LLVMValueRef m = LLVMBuildBitCast(b, mbits, c->real, "");
	LLVMValueRef kr = LLVMBuildSIToFP(b, k, c->real, "");
	/* c = (1 + x) - u: exact by Sterbenz in either form */
	LLVMValueRef big = LLVMBuildFCmp(b, LLVMRealOGE, u, cg_real_const(c, 2.0), "");
	LLVMValueRef c_hi = LLVMBuildFSub(b, one_r, LLVMBuildFSub(b, u, x, ""), "");
	LLVMValueRef c_lo = LLVMBuildFSub(b, x, LLVMBuildFSub(b, u, one_r, ""), "");
	LLVMValueRef corr = LLVMBuildFDiv(b, LLVMBuildSelect(b, big, c_hi, c_lo, ""), u, "");
	/* log(m) = 2s (1 + z/3 + z^2/5 + ...), z = s^2 */
	LLVMValueRef f = LLVMBuildFSub(b, m, one_r, "");
	LLVMValueRef s = LLVMBuildFDiv(b, f, LLVMBuildFAdd(b, m, one_r, ""), "");
	LLVMValueRef z = LLVMBuildFMul(b, s, s, "");
	int terms = f32 ? 5 : 10;
	LLVMValueRef p = cg_real_const(c, 1.0 / (2 * terms + 1));
	for (int t = terms - 1; t >= 1; t--)
		p = fma3(c, p, z, cg_real_const(c, 1.0 / (2 * t + 1)));
	LLVMValueRef two_s = LLVMBuildFAdd(b, s, s, "");
	LLVMValueRef logm = fma3(c, LLVMBuildFMul(b, two_s, z, ""), p, two_s);
	double ln2_hi = f32 ? 0.693145751953125 : 0.6931471803691238,
	       ln2_lo = f32 ? 1.428606765330187e-06 : 1.9082149292705877e-10;
	LLVMValueRef lo = fma3(c, kr, cg_real_const(c, ln2_lo), LLVMBuildFAdd(b, logm, corr, ""));
	LLVMValueRef y = fma3(c, kr, cg_real_const(c, ln2_hi), lo);
	/* the edges: u = inf (x = inf), u = 0 (x = -1), u < 0 or NaN */
	y = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOEQ, u, cg_real_const(c, INFINITY), ""), u, y, "");
	y = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOEQ, u, cg_real_const(c, 0.0), ""),
	                    cg_real_const(c, -INFINITY), y, "");
	return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealULT, u, cg_real_const(c, 0.0), ""), cg_real_const(c, NAN), y,
	                       "");
}

/* log1p(x) for x in [0, 1] (and NaN): softplus' log1p(exp(-|l|)).  x q(x),
 * q the polynomial of least relative error to log1p(x) / x on [0, 1]
 * (`tools/minimax.py log1p`; degree 20 in f64, 9 in f32: within 0.2 and 0.3
 * ulp before the rounding of its evaluation).  No division and no exponent
 * bits: log1p_inline's two divisions made f64's softplus wait on the
 * divider, and on [0, 1] none of its edge cases (-1, infinity) arise.
 * log1p(0) = 0, log1p(1) = ln 2, NaN in, NaN out. */
static const double log1p_unit_f64[] = {
	0x1.0000000000000p+0,  -0x1.fffffffffff6dp-2, 0x1.555555554ff6ep-2,  -0x1.fffffffd7fd95p-3,
	0x1.9999994a6352cp-3,  -0x1.55554f4f2253ep-3, 0x1.2491fa7b6847ep-3,  -0x1.fffa4ca9d69bfp-4,
	0x1.c6f5553cb9a5fp-4,  -0x1.98cd2ff149293p-4, 0x1.711cf4caa1192p-4,  -0x1.4ad865f7d7f74p-4,
	0x1.1fddbd34ce642p-4,  -0x1.d61fd1655aa80p-5, 0x1.596dd1779dc45p-5,  -0x1.b432564e8d7e6p-6,
	0x1.c2c43b4262dbdp-7,  -0x1.6896e070bca4ap-8, 0x1.9ea33a760debbp-10, -0x1.2ed64c6a96a66p-12,
	0x1.a42182c550149p-16,
};
static const double log1p_unit_f32[] = {
	0x1.0000000000000p+0, -0x1.ffffbe0000000p-2, 0x1.554c800000000p-2, -0x1.ff0f880000000p-3,
	0x1.92f6960000000p-3, -0x1.3975620000000p-3, 0x1.b253620000000p-4, -0x1.d29cce0000000p-5,
	0x1.453f120000000p-6, -0x1.a9336c0000000p-9,
};

static LLVMValueRef log1p_unit_inline(cg_ctx *c, LLVMValueRef x)
{
	bool f32 = c->o->f32;
	const double *coef = f32 ? log1p_unit_f32 : log1p_unit_f64;
	int degree = f32 ? 9 : 20;
	LLVMValueRef q = cg_real_const(c, coef[degree]);
	for (int k = degree - 1; k >= 0; k--)
		q = fma3(c, q, x, cg_real_const(c, coef[k]));
	return LLVMBuildFMul(c->b, x, q, "");
}

typedef LLVMValueRef (*math_body)(cg_ctx *c, LLVMValueRef x);

/* The arithmetic of `body` as the private function `name`, made on first
 * use: noinline, so that the light pipeline of cold kernels keeps it out of
 * line. */
static LLVMValueRef math_function(cg_ctx *c, const char *name, math_body body, LLVMTypeRef *ty)
{
	*ty = LLVMFunctionType(c->real, &c->real, 1, 0);
	LLVMValueRef fn = LLVMGetNamedFunction(c->mod, name);
	if (fn)
		return fn;
	fn = LLVMAddFunction(c->mod, name, *ty);
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
	LLVMBuildRet(c->b, body(c, LLVMGetParam(fn, 0)));
	LLVMDisposeBuilder(c->b);
	c->b = saved;
	return fn;
}

/* body inline in hot kernels, a call of its private function in cold ones */
static LLVMValueRef math(cg_ctx *c, const char *name, math_body body, LLVMValueRef x)
{
	if (!c->k || !c->cold[c->k->kind])
		return body(c, x);
	LLVMTypeRef ty;
	LLVMValueRef fn = math_function(c, name, body, &ty);
	return LLVMBuildCall2(c->b, ty, fn, &x, 1, "");
}

LLVMValueRef cg_exp(cg_ctx *c, LLVMValueRef x)
{
	return math(c, "chain.exp", exp_inline, x);
}

LLVMValueRef cg_exp_nonpos(cg_ctx *c, LLVMValueRef x)
{
	return math(c, "chain.exp_nonpos", exp_nonpos_inline, x);
}

LLVMValueRef cg_log1p(cg_ctx *c, LLVMValueRef x)
{
	return math(c, "chain.log1p", log1p_inline, x);
}

LLVMValueRef cg_log1p_unit(cg_ctx *c, LLVMValueRef x)
{
	return math(c, "chain.log1p_unit", log1p_unit_inline, x);
}
