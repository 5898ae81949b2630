/* cg_kernel.c -- code generation of kernels: signatures, scratch, statements.
 *
 * A kernel becomes one function <model>_<name> with the C signature of its
 * kind (chainc.h's ir_kernel_kind, model.h's chain_kernels_f64/f32): pointer
 * arguments noalias (readonly when const), size_t and uint64_t as i64.
 *
 *   entry:   allocas only (scratch, accumulators), then br start
 *   start:   zero the scratch, run the body (or the no-grad body)
 *   exit:    free heap scratch, return the result temp's value
 *
 * Loops are counted loops in rotated form (guard, header with an i64 phi,
 * latch with the increment and the exit test), which is what the loop
 * vectorizer and LICM expect; bounds are evaluated once at loop entry.
 *
 * A loop over the rows of a block goes to cg_rows.c, which runs its
 * statements for all the rows in turn, and a loop over positions whose
 * rows start with a sum in vectors to cg_pair_positions.c
 * (cg_kernel_internal.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/DebugInfo.h>

#include "cg_kernel_internal.h"

/* Scratch up to this many bytes lives on the stack; more comes from calloc
 * (kernels are reentrant and thread-safe: never static storage). */
#define CG_MAX_STACK_SCRATCH 32768

/* What each argument of a kernel is. */
typedef enum arg_role {
	A_THETA, A_THETA_RO, A_OBS_RO, A_OBS_W, A_N, A_GRAD, A_OUT, A_SEED, A_FIRST, A_PREFIX, A_END
} arg_role;

static const arg_role kernel_args[KER__COUNT][7] = {
	[KER_INIT]         = { A_THETA, A_SEED, A_END },
	[KER_LOGP]         = { A_THETA_RO, A_OBS_RO, A_END },
	[KER_LOGP_BATCH]   = { A_THETA_RO, A_OBS_RO, A_N, A_OUT, A_END },
	[KER_LOGLIK_GRAD]  = { A_THETA_RO, A_OBS_RO, A_N, A_GRAD, A_END },
	[KER_OBJECTIVE]    = { A_THETA_RO, A_OBS_RO, A_N, A_GRAD, A_END },
	[KER_SAMPLE]       = { A_THETA_RO, A_SEED, A_FIRST, A_N, A_OBS_W, A_END },
	[KER_COMPLETE]     = { A_THETA_RO, A_SEED, A_FIRST, A_PREFIX, A_N, A_OBS_W, A_END },
	[KER_CONDITIONALS] = { A_THETA_RO, A_OBS_RO, A_OUT, A_END },
};

static const char *const role_names[] = {
	"theta", "theta", "obs", "obs", "n", "grad", "out", "seed", "first", "prefix",
};

static bool returns_real(ir_kernel_kind kind)
{
	return kind == KER_LOGP || kind == KER_LOGLIK_GRAD || kind == KER_OBJECTIVE;
}

static bool role_is_ptr(arg_role r)
{
	return r == A_THETA || r == A_THETA_RO || r == A_OBS_RO || r == A_OBS_W || r == A_GRAD ||
	       r == A_OUT;
}

/* The LLVM function type of a kernel kind. */
LLVMTypeRef cg_kernel_type(cg_ctx *c, ir_kernel_kind kind)
{
	LLVMTypeRef params[7];
	unsigned n = 0;
	for (; kernel_args[kind][n] != A_END; n++)
		params[n] = role_is_ptr(kernel_args[kind][n]) ? c->ptr : c->i64;
	return LLVMFunctionType(returns_real(kind) ? c->real : c->void_t, params, n, 0);
}

static void add_attr(cg_ctx *c, LLVMValueRef fn, unsigned idx, const char *name)
{
	unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
	LLVMAddAttributeAtIndex(fn, idx, LLVMCreateEnumAttribute(c->ctx, kind, 0));
}

/* Declares <model>_<name> with its signature and argument attributes, so
 * that the descriptor can point at every kernel before any body exists. */
void cg_declare_kernel(cg_ctx *c, const ir_kernel *k)
{
	char name[512];
	snprintf(name, sizeof name, "%s_%s", c->m->model->name,
	         k->name ? k->name : cg_kernel_suffix(k->kind));
	if (LLVMGetNamedFunction(c->mod, name)) {
		cg_fail(c, "internal error: two kernels named %s", name);
		return;
	}
	LLVMValueRef fn = LLVMAddFunction(c->mod, name, cg_kernel_type(c, k->kind));
	add_attr(c, fn, LLVMAttributeFunctionIndex, "nounwind");
	/* LLVM's x86 tuning for AVX-512 CPUs keeps loops at 256-bit vectors
	 * (older parts slowed their clock for 512-bit code); these kernels are
	 * long arithmetic loops where full width pays (NADE log p: +20-40 %).
	 * Other targets, and x86 without AVX-512, ignore the attribute. */
	LLVMAddTargetDependentFunctionAttr(fn, "prefer-vector-width", "512");
	for (unsigned i = 0; kernel_args[k->kind][i] != A_END; i++) {
		arg_role r = kernel_args[k->kind][i];
		LLVMValueRef p = LLVMGetParam(fn, i);
		LLVMSetValueName2(p, role_names[r], strlen(role_names[r]));
		if (!role_is_ptr(r))
			continue;
		add_attr(c, fn, i + 1, "noalias");
		add_attr(c, fn, i + 1, "nocapture");
		if (r == A_THETA_RO || r == A_OBS_RO)
			add_attr(c, fn, i + 1, "readonly");
	}
	c->kernel_fn[k->kind] = fn;
}

/* ------------------------------------------------------------ scanning */

/* Which buffers a kernel touches: its TEMP buffers (whatever kernel->temps
 * says: any TEMP it references gets scratch) and whether it uses GRAD. */
typedef struct kernel_scan {
	bool *seen;          /* by buf id */
	bool *done;          /* by val id: walked */
	ptrvec temps;        /* malloc'd items */
	bool uses_grad;
	bool oom;
} kernel_scan;

static void scan_buf(cg_ctx *c, kernel_scan *s, const ir_buf *b)
{
	if (!b || b->id < 0 || b->id >= c->nids || s->seen[b->id])
		return;
	s->seen[b->id] = true;
	if (b->cls == BUF_GRAD)
		s->uses_grad = true;
	if (b->cls != BUF_TEMP)
		return;
	if (s->temps.len == s->temps.cap) {
		size_t cap = s->temps.cap ? 2 * s->temps.cap : 16;
		void **items = realloc(s->temps.items, cap * sizeof *items);
		if (!items) {
			s->oom = true;
			return;
		}
		s->temps.items = items;
		s->temps.cap = cap;
	}
	s->temps.items[s->temps.len++] = (void *)b;
}

static void scan_idx(cg_ctx *c, kernel_scan *s, const ir_idx *x)
{
	if (!x)
		return;
	if (x->kind == IX_ADD || x->kind == IX_SUB || x->kind == IX_MUL) {
		scan_idx(c, s, x->u.bin.a);
		scan_idx(c, s, x->u.bin.b);
	} else if (x->kind == IX_LOAD) {
		scan_buf(c, s, x->u.load.buf);
		for (int i = 0; i < IR_MAX_RANK; i++)
			scan_idx(c, s, x->u.load.idx[i]);
	}
}

static void scan_val(cg_ctx *c, kernel_scan *s, const ir_val *v)
{
	if (!v)
		return;
	if (v->id >= 0 && v->id < c->nids) {
		if (s->done[v->id])
			return;
		s->done[v->id] = true;
	}
	switch (v->kind) {
	case V_READ:
		scan_buf(c, s, v->u.read.buf);
		for (int i = 0; i < IR_MAX_RANK; i++)
			scan_idx(c, s, v->u.read.idx[i]);
		break;
	case V_OP:
		for (int i = 0; i < 3; i++)
			scan_val(c, s, v->u.op.a[i]);
		break;
	case V_INT: scan_idx(c, s, v->u.idx); break;
	case V_DRAW:
		scan_idx(c, s, v->u.draw.a);
		scan_idx(c, s, v->u.draw.b);
		scan_idx(c, s, v->u.draw.ci);
		scan_val(c, s, v->u.draw.arg);
		break;
	case V_STOP: scan_val(c, s, v->u.stop); break;
	case V_CONST: break;
	}
}

static void scan_loop(cg_ctx *c, kernel_scan *s, const ir_loop *l)
{
	if (l) {
		scan_idx(c, s, l->lo);
		scan_idx(c, s, l->hi);
	}
}

static void scan_block(cg_ctx *c, kernel_scan *s, const ir_block *b)
{
	for (size_t i = 0; i < b->stmts.len; i++) {
		const ir_stmt *st = b->stmts.items[i];
		switch (st->kind) {
		case S_SET: case S_SUM: case S_MAX: case S_ADD:
			for (int j = 0; j < st->nloops; j++)
				scan_loop(c, s, st->loops[j]);
			for (int j = 0; j < st->nassigns; j++) {
				scan_buf(c, s, st->assigns[j].buf);
				for (int r = 0; r < IR_MAX_RANK; r++)
					scan_idx(c, s, st->assigns[j].idx[r]);
				scan_val(c, s, st->assigns[j].val);
			}
			break;
		case S_FOR:
			scan_loop(c, s, st->loop);
			scan_block(c, s, &st->body);
			break;
		case S_IF_GE:
			scan_idx(c, s, st->a);
			scan_idx(c, s, st->b);
			scan_block(c, s, &st->body);
			break;
		}
	}
}

/* The rows of a block are emitted in groups (cg_rows_of_block): statement
 * by statement, each for every row of the block, so a TEMP one row writes must
 * not be overwritten by the next row before the first reads it: such TEMPs
 * get a copy per row of the block (lanes[id] = the block's size).  A TEMP the
 * rows only add into (the kernel's log p, adjoints of theta-stage values) is
 * shared by them and keeps one copy. */
static void mark_lane_temps(cg_ctx *c, const ir_block *b, int64_t block, int64_t *lanes)
{
	for (size_t i = 0; i < b->stmts.len; i++) {
		const ir_stmt *st = b->stmts.items[i];
		int64_t inner = block;
		if (st->kind == S_FOR && st->loop && st->loop->is_rows && st->loop->block_of)
			inner = st->loop->block_of->block;
		if (block > 0 && st->kind != S_ADD) /* a TEMP only added into is shared (lp) */
			for (int j = 0; j < st->nassigns; j++) {
				const ir_buf *t = st->assigns[j].buf;
				if (t && t->cls == BUF_TEMP && !t->block_rows && !t->rows_share && t->id >= 0 &&
				    t->id < c->nids)
					lanes[t->id] = block;
			}
		if (st->kind == S_FOR || st->kind == S_IF_GE)
			mark_lane_temps(c, &st->body, inner, lanes);
	}
}

/* ---------------------------------------------------- reads-after-write */

/* For a DAG walk that visits each node once: whether v is there and new,
 * marking it seen (`seen`: a scratch array by val id, cleared by the
 * caller). */
bool cg_first_visit(cg_ctx *c, const ir_val *v, bool *seen)
{
	if (!v)
		return false;
	if (v->id >= 0 && v->id < c->nids) {
		if (seen[v->id])
			return false;
		seen[v->id] = true;
	}
	return true;
}

/* Whether v reads buffer b anywhere. */
bool cg_val_reads(cg_ctx *c, const ir_val *v, const ir_buf *b, bool *seen)
{
	if (!cg_first_visit(c, v, seen))
		return false;
	switch (v->kind) {
	case V_READ:
		if (v->u.read.buf == b)
			return true;
		for (int i = 0; i < IR_MAX_RANK; i++)
			if (ir_idx_reads(v->u.read.idx[i], b))
				return true;
		return false;
	case V_OP:
		for (int i = 0; i < 3; i++)
			if (cg_val_reads(c, v->u.op.a[i], b, seen))
				return true;
		return false;
	case V_INT: return ir_idx_reads(v->u.idx, b);
	case V_DRAW:
		return ir_idx_reads(v->u.draw.a, b) || ir_idx_reads(v->u.draw.b, b) || ir_idx_reads(v->u.draw.ci, b) ||
		       (v->u.draw.arg && cg_val_reads(c, v->u.draw.arg, b, seen));
	case V_STOP: return cg_val_reads(c, v->u.stop, b, seen);
	case V_CONST: return false;
	}
	return false;
}

/* Whether an assignment after the j-th of s reads what the j-th writes:
 * then values cached before the j-th store are stale after it. */
static bool later_reads(cg_ctx *c, const ir_stmt *s, int j)
{
	const ir_buf *b = s->assigns[j].buf;
	bool *seen = calloc((size_t)c->nids, sizeof *seen);
	if (!seen)
		return true; /* dropping the cache is always safe */
	bool r = false;
	for (int k = j + 1; k < s->nassigns && !r; k++) {
		r = cg_val_reads(c, s->assigns[k].val, b, seen);
		for (int i = 0; i < IR_MAX_RANK && !r; i++)
			r = ir_idx_reads(s->assigns[k].idx[i], b);
	}
	free(seen);
	return r;
}

/* --------------------------------------------------------------- loops */

/* An alloca in the entry block (so mem2reg promotes it), whatever block
 * the builder is in. */
LLVMValueRef cg_entry_alloca(cg_ctx *c, LLVMTypeRef ty, const char *name)
{
	LLVMBuilderRef ab = LLVMCreateBuilderInContext(c->ctx);
	LLVMPositionBuilderBefore(ab, LLVMGetBasicBlockTerminator(c->entry));
	LLVMValueRef a = LLVMBuildAlloca(ab, ty, name);
	LLVMDisposeBuilder(ab);
	return a;
}

/* Opens `for l in [lo, hi)` (or hi-1 down to lo): guard, then the header
 * with the counter as a phi; the caller emits the body after this. */
void cg_loop_open(cg_ctx *c, cg_loop *st, const ir_loop *l, LLVMValueRef lo, LLVMValueRef hi, bool reverse)
{
	memset(st, 0, sizeof *st);
	st->l = l;
	st->lo = lo;
	st->hi = hi;
	st->reverse = reverse;
	const char *name = l && l->name ? l->name : "i";
	LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
	st->header = LLVMAppendBasicBlockInContext(c->ctx, c->fn, name);
	st->exit = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "");
	LLVMValueRef start = reverse ? LLVMBuildNSWSub(c->b, hi, cg_i64(c, 1), "") : lo;
	LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, lo, hi, ""), st->header, st->exit);
	LLVMPositionBuilderAtEnd(c->b, st->header);
	st->iv = LLVMBuildPhi(c->b, c->i64, name);
	LLVMAddIncoming(st->iv, &start, &pre, 1);
	if (l && l->id >= 0 && l->id < c->nids) {
		st->saved = c->loop_var[l->id];
		c->loop_var[l->id] = st->iv;
	} else if (l) {
		cg_fail(c, "internal error: a loop unknown to the module");
	} /* no IR loop: a counter of codegen's own (cg_rows_of_block) */
}

/* Closes a loop opened by cg_loop_open: increment (or decrement), exit test,
 * and the builder continues after the loop. */
void cg_loop_close(cg_ctx *c, cg_loop *st)
{
	LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
	LLVMValueRef next, more;
	if (st->reverse) {
		next = LLVMBuildNSWSub(c->b, st->iv, cg_i64(c, 1), "");
		more = LLVMBuildICmp(c->b, LLVMIntSGT, st->iv, st->lo, "");
	} else {
		next = LLVMBuildNSWAdd(c->b, st->iv, cg_i64(c, 1), "");
		more = LLVMBuildICmp(c->b, LLVMIntSLT, next, st->hi, "");
	}
	st->latch = LLVMBuildCondBr(c->b, more, st->header, st->exit);
	LLVMAddIncoming(st->iv, &next, &latch, 1);
	LLVMMoveBasicBlockAfter(st->exit, latch);
	LLVMPositionBuilderAtEnd(c->b, st->exit);
	if (st->l && st->l->id >= 0 && st->l->id < c->nids)
		c->loop_var[st->l->id] = st->saved;
}

void cg_loop_open_stmt(cg_ctx *c, cg_loop *st, const ir_loop *l)
{
	if (!l) {
		cg_fail(c, "internal error: missing loop");
		l = NULL;
	}
	LLVMValueRef lo = l ? cg_idx(c, l->lo) : cg_i64(c, 0);
	LLVMValueRef hi = l ? cg_idx(c, l->hi) : cg_i64(c, 0);
	cg_loop_open(c, st, l, lo, hi, false);
}

/* Asks the loop vectorizer for `width` lanes (0: its cost model's choice)
 * and `interleave` vectors per iteration (0: its choice) on the loop of
 * latch branch br (loop metadata: a self-referential node with the hints). */
void cg_hint_vector_width(cg_ctx *c, LLVMValueRef br, int width, int interleave)
{
	LLVMMetadataRef tmp = LLVMTemporaryMDNode(c->ctx, NULL, 0);
	LLVMMetadataRef ops[3] = { tmp };
	unsigned n = 1;
	if (width > 0) {
		LLVMMetadataRef w[2] = { LLVMMDStringInContext2(c->ctx, "llvm.loop.vectorize.width", 25),
			                 LLVMValueAsMetadata(LLVMConstInt(c->i32, (unsigned long long)width, 0)) };
		ops[n++] = LLVMMDNodeInContext2(c->ctx, w, 2);
	}
	if (interleave > 0) {
		LLVMMetadataRef ic[2] = { LLVMMDStringInContext2(c->ctx, "llvm.loop.interleave.count", 26),
			                  LLVMValueAsMetadata(LLVMConstInt(c->i32, (unsigned long long)interleave, 0)) };
		ops[n++] = LLVMMDNodeInContext2(c->ctx, ic, 2);
	}
	LLVMMetadataRef id = LLVMMDNodeInContext2(c->ctx, ops, n);
	LLVMMetadataReplaceAllUsesWith(tmp, id);
	LLVMSetMetadata(br, LLVMGetMDKindIDInContext(c->ctx, "llvm.loop", 9), LLVMMetadataAsValue(c->ctx, id));
}

/* ---------------------------------------------------------- statements */

LLVMValueRef cg_store_real(cg_ctx *c, LLVMValueRef v, LLVMValueRef p)
{
	LLVMValueRef s = LLVMBuildStore(c->b, v, p);
	LLVMSetAlignment(s, (unsigned)c->real_size);
	return s;
}

LLVMValueRef cg_load_real(cg_ctx *c, LLVMValueRef p)
{
	LLVMValueRef v = LLVMBuildLoad2(c->b, c->real, p, "");
	LLVMSetAlignment(v, (unsigned)c->real_size);
	return v;
}

/* The assignments of s in order, in the current (innermost) body. */
static void emit_assigns(cg_ctx *c, const ir_stmt *s)
{
	cg_cache_drop(c);
	for (int j = 0; j < s->nassigns; j++) {
		const ir_assign *a = &s->assigns[j];
		if (a->buf && a->buf->cls == BUF_CONST) {
			cg_fail(c, "internal error: a store to constant buffer %s", a->buf->name);
			continue;
		}
		LLVMValueRef v = cg_val(c, a->val);
		LLVMValueRef p = cg_addr(c, a->buf, a->idx);
		if (s->kind == S_ADD) {
			v = cg_contract(LLVMBuildFAdd(c->b, cg_tag_temp(c, cg_load_real(c, p), a->buf), v, ""));
			/* the rows of a block adding into what they share (a
			 * gradient, the batch's log-likelihood): a sum over the rows,
			 * which may be reassociated like any sum (cg_assign_stmt), so
			 * the loop over the rows vectorizes */
			if (c->lane && c->jam_rows && cg_rows_sum_into(c, a, c->jam_rows))
				LLVMSetFastMathFlags(v, LLVMFastMathAllowReassoc | LLVMFastMathAllowContract);
		}
		cg_tag_temp(c, cg_store_real(c, v, p), a->buf);
		if (j + 1 < s->nassigns && later_reads(c, s, j))
			cg_cache_drop(c);
	}
	cg_cache_drop(c);
}

/* Whether the innermost free loop l of an elementwise statement only
 * streams: contiguous loads and stores over l (no gathers or scatters) and
 * no slow function of l (ir_val_slow_in_loop).  LLVM interleaves such a
 * loop four vectors at a time by default: four copies of its body for
 * LLVM to compile, and nothing gained at run time, since its iterations
 * are independent and the core overlaps them anyway.  Hinted to one
 * vector at a time (the gradient's scaling and accumulating loops, the
 * copies of rows), NADE's build takes 2.5% less time, with the kernels
 * of the examples and of models of every kind within the noise of `bench
 * ab`.  Loops of exp or sigmoid keep LLVM's choice, which hides their
 * latency, and so do gathers (memo.c's transposed copies of columns):
 * NADE H = 100 f64 sampling at batch 1 was 8% slower with those at one
 * vector. */
static bool streams(const ir_stmt *s, const ir_loop *l)
{
	for (int j = 0; j < s->nassigns; j++) {
		const ir_assign *a = &s->assigns[j];
		if (ir_val_slow_in_loop(a->val, l) || !ir_val_reads_contiguous(a->val, l) ||
		    !ir_access_contiguous(a->buf, a->idx, l))
			return false;
	}
	return true;
}

/* S_SET, S_SUM, S_MAX, S_ADD: the free loops, then either the assignments,
 * or (reductions) an accumulator in a register-promotable alloca, the
 * reduction loops adding into it, and one store per free iteration. */
static void cg_assign_stmt(cg_ctx *c, const ir_stmt *s)
{
	if (s->nassigns < 1 || !s->assigns)
		return;
	int nloops = s->nloops > 0 ? s->nloops : 0;
	bool reduce = s->kind == S_SUM || s->kind == S_MAX;
	int nfree = reduce ? s->nfree : nloops;
	if (nfree < 0 || nfree > nloops) {
		cg_fail(c, "internal error: a statement with %d free loops of %d", nfree, nloops);
		return;
	}
	cg_loop *st = calloc((size_t)nloops + 1, sizeof *st);
	if (!st) {
		cg_fail(c, "out of memory");
		return;
	}
	for (int i = 0; i < nfree; i++)
		cg_loop_open_stmt(c, &st[i], s->loops[i]);
	if (!reduce || nfree == nloops) {
		/* a reduction over no loops is its one term */
		emit_assigns(c, s);
		if (nfree > 0) {
			cg_loop_close(c, &st[nfree - 1]);
			if (streams(s, s->loops[nfree - 1]))
				cg_hint_vector_width(c, st[nfree - 1].latch, 0, 1);
			nfree--;
		}
	} else {
		const ir_assign *a = &s->assigns[0];
		LLVMValueRef acc = cg_entry_alloca(c, c->real, "acc");
		cg_store_real(c, cg_real_const(c, s->kind == S_SUM ? 0.0 : -INFINITY), acc);
		for (int i = nfree; i < nloops; i++)
			cg_loop_open_stmt(c, &st[i], s->loops[i]);
		cg_cache_drop(c);
		LLVMValueRef v = cg_val(c, a->val);
		LLVMValueRef old = cg_load_real(c, acc);
		LLVMValueRef args[2] = { old, v };
		LLVMValueRef nv = s->kind == S_SUM ? LLVMBuildFAdd(c->b, old, v, "")
		                                   : cg_call_intrinsic(c, "llvm.maxnum", args, 2);
		/* The sum may be reassociated (and so vectorized into partial sums):
		 * it changes the rounding of a sum, never NaN or Inf semantics,
		 * and the same binary gives the same bits every time.  Only this
		 * accumulation carries the reassociation flag (contraction into
		 * fused multiply-adds: cg_contract). */
		if (s->kind == S_SUM)
			LLVMSetFastMathFlags(nv, LLVMFastMathAllowReassoc | LLVMFastMathAllowContract);
		cg_store_real(c, nv, acc);
		cg_cache_drop(c);
		for (int i = nloops - 1; i >= nfree; i--)
			cg_loop_close(c, &st[i]);
		cg_tag_temp(c, cg_store_real(c, cg_load_real(c, acc), cg_addr(c, a->buf, a->idx)), a->buf);
		if (s->nassigns > 1)
			cg_fail(c, "internal error: a reduction with %d assignments", s->nassigns);
	}
	for (int i = nfree - 1; i >= 0; i--)
		cg_loop_close(c, &st[i]);
	free(st);
}

/* The row the data reads come from (the obs row pointer, IX_ROW). */
void cg_point_row(cg_ctx *c, LLVMValueRef row)
{
	c->row.r = row;
	if (c->obs) {
		LLVMValueRef off = LLVMBuildNSWMul(c->b, row, cg_i64(c, c->m->model->obs_size), "");
		c->row.ptr = LLVMBuildInBoundsGEP2(c->b, c->real, c->obs, &off, 1, "row");
	}
}

static void cg_block(cg_ctx *c, const ir_block *b);

/* S_FOR: one loop around a block; a rows loop runs over [0, n) (n = 1 in
 * kernels without an n argument) and moves the row pointer. */
static void cg_for(cg_ctx *c, const ir_stmt *s)
{
	const ir_loop *l = s->loop;
	if (!l) {
		cg_fail(c, "internal error: S_FOR without a loop");
		return;
	}
	LLVMValueRef lo, hi;
	LLVMValueRef n = c->n ? c->n : cg_i64(c, 1);
	if (l->is_rows && l->block > 0) {
		/* blocks q in [0, ceil(n / block)); the variable is q * block */
		lo = cg_i64(c, 0);
		hi = LLVMBuildUDiv(c->b, LLVMBuildNSWAdd(c->b, n, cg_i64(c, l->block - 1), ""), cg_i64(c, l->block), "");
	} else if (l->is_rows && l->block_of) {
		const ir_loop *bl = l->block_of;
		if (bl->id < 0 || bl->id >= c->nids || !c->loop_var[bl->id]) {
			cg_fail(c, "internal error: rows of a block outside the block loop");
			return;
		}
		lo = c->loop_var[bl->id];
		LLVMValueRef end = LLVMBuildNSWAdd(c->b, lo, cg_i64(c, bl->block), "");
		hi = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, end, n, ""), end, n, "");
		if (cg_rows_of_block(c, s, bl, lo, hi, NULL))
			return;
	} else if (l->is_rows) {
		lo = cg_i64(c, 0);
		hi = n;
	} else {
		if (pair_positions(c, s))
			return;
		lo = cg_idx(c, l->lo);
		hi = cg_idx(c, l->hi);
	}
	cg_loop st;
	cg_loop_open(c, &st, l, lo, hi, l->reverse || s->reverse);
	cg_row saved = c->row;
	if (l->is_rows && l->block > 0) {
		/* the body sees the block's first row, not the block's number */
		c->loop_var[l->id] = LLVMBuildNSWMul(c->b, st.iv, cg_i64(c, l->block), "");
	} else if (l->is_rows) {
		cg_point_row(c, st.iv);
	}
	cg_block(c, &s->body);
	c->row = saved;
	cg_loop_close(c, &st);
	/* the rows of several scalar variables (lower.c): LLVM's cost model
	 * left such a loop of M_complete scalar (its loads and stores are
	 * strided: gathers and scatters), 8-10x slower than the vectorized
	 * loops per variable it replaces; vectors of 64 bytes, two at a time,
	 * run the chain of a row's variables (each drawn given the one
	 * before) for two sets of rows at once (M_sample against a loop per
	 * variable: one at a time 0.75-0.8x, two 0.8-0.9x, four no better) */
	if (l->vector_rows)
		cg_hint_vector_width(c, st.latch, 64 / c->real_size, 2);
}

/* S_IF_GE: if (a >= b) body, on signed i64. */
static void cg_if_ge(cg_ctx *c, const ir_stmt *s)
{
	LLVMValueRef a = cg_idx(c, s->a), b = cg_idx(c, s->b);
	LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "then");
	LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "endif");
	LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, a, b, ""), then, done);
	LLVMPositionBuilderAtEnd(c->b, then);
	cg_block(c, &s->body);
	LLVMBuildBr(c->b, done);
	LLVMMoveBasicBlockAfter(done, LLVMGetInsertBlock(c->b));
	LLVMPositionBuilderAtEnd(c->b, done);
}

void cg_stmt(cg_ctx *c, const ir_stmt *s)
{
	switch (s->kind) {
	case S_SET: case S_SUM: case S_MAX: case S_ADD: cg_assign_stmt(c, s); break;
	case S_FOR: cg_for(c, s); break;
	case S_IF_GE: cg_if_ge(c, s); break;
	default: cg_fail(c, "internal error: bad statement kind %d", (int)s->kind); break;
	}
}

static void cg_block(cg_ctx *c, const ir_block *b)
{
	for (size_t i = 0; i < b->stmts.len; i++)
		if (b->stmts.items[i])
			cg_stmt(c, b->stmts.items[i]);
}

/* ------------------------------------------------------------- kernels */

/* The value of a result buffer (a rank-0 TEMP; element 0 of anything else). */
static LLVMValueRef result_value(cg_ctx *c, const ir_buf *r)
{
	if (!r)
		return cg_real_const(c, 0);
	ir_idx zero = { .kind = IX_CONST };
	ir_idx *idx[IR_MAX_RANK] = { &zero, &zero, &zero };
	return cg_load_real(c, cg_addr(c, r, idx));
}

static LLVMValueRef call_c(cg_ctx *c, const char *name, LLVMTypeRef ret, LLVMTypeRef *params,
                           unsigned n, LLVMValueRef *args)
{
	LLVMTypeRef ty;
	LLVMValueRef fn = cg_runtime_fn(c, name, ret, params, n, false, &ty);
	return LLVMBuildCall2(c->b, ty, fn, args, n, "");
}

/* The caller's value for an argument role of a kernel it calls (NULL when
 * the caller has none); prefix is 0 when the plan says so. */
static LLVMValueRef role_value(cg_ctx *c, arg_role r, const cg_call_plan *p, LLVMValueRef one_out)
{
	bool prefix_zero = p->prefix_zero;
	switch (r) {
	case A_THETA: case A_THETA_RO: return c->theta;
	case A_OBS_RO: case A_OBS_W: return c->obs;
	case A_N: return p->one_row ? cg_i64(c, 1) : c->n;
	case A_GRAD: return c->grad;
	case A_OUT: return p->one_row ? one_out : c->out;
	case A_SEED: return c->seed;
	case A_FIRST: return c->first;
	case A_PREFIX: return prefix_zero ? cg_i64(c, 0) : c->prefix;
	case A_END: break;
	}
	return NULL;
}

/* Whether a kernel of kind `caller` has every argument a call of `callee`
 * needs, with at least its rights (theta and obs writable when it writes). */
static bool can_call(ir_kernel_kind caller, ir_kernel_kind callee, const cg_call_plan *p)
{
	for (unsigned i = 0; kernel_args[callee][i] != A_END; i++) {
		arg_role need = kernel_args[callee][i];
		if ((need == A_PREFIX && p->prefix_zero) || ((need == A_N || need == A_OUT) && p->one_row))
			continue;
		bool found = false;
		for (unsigned j = 0; kernel_args[caller][j] != A_END && !found; j++) {
			arg_role have = kernel_args[caller][j];
			found = have == need || (need == A_THETA_RO && have == A_THETA) ||
			        (need == A_OBS_RO && have == A_OBS_W);
		}
		if (!found)
			return false;
	}
	return true;
}

/* n as a real into counter, which counted `+= 1` once per row of a rows
 * loop over [0, n) (no iteration when n >= 2^63, compared as signed): that
 * is exact up to 2^p (p the mantissa bits) and then stays there, as 2^p + 1
 * rounds to 2^p: so it is min(n, 2^p), exactly. */
static void store_row_count(cg_ctx *c, const ir_buf *counter)
{
	ir_idx zero = { .kind = IX_CONST };
	ir_idx *idx[IR_MAX_RANK] = { &zero, &zero, &zero };
	LLVMValueRef cap = cg_i64(c, (int64_t)1 << (c->o->f32 ? 24 : 53));
	LLVMValueRef big = LLVMBuildICmp(c->b, LLVMIntUGT, c->n, cap, "");
	LLVMValueRef rows = LLVMBuildSelect(c->b, big, cap, c->n, "");
	rows = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, c->n, cg_i64(c, 0), ""), cg_i64(c, 0), rows, "");
	cg_store_real(c, LLVMBuildUIToFP(c->b, rows, c->real, "count"), cg_addr(c, counter, idx));
}

/* The call a plan puts in place of its statements: the callee with the
 * caller's arguments; its return value into the plan's result, and n as a
 * real into the counter (store_row_count). */
static void emit_call(cg_ctx *c, const cg_call_plan *p)
{
	ir_kernel_kind kind = p->callee->kind;
	/* one row's out starts as NaN: what stays if the callee cannot get
	 * its scratch, as a kernel returning a real then returns */
	LLVMValueRef one_out = NULL;
	if (p->one_row) {
		one_out = cg_entry_alloca(c, c->real, "out");
		cg_store_real(c, cg_real_const(c, NAN), one_out);
	}
	LLVMValueRef args[7];
	unsigned n = 0;
	for (; kernel_args[kind][n] != A_END; n++)
		args[n] = role_value(c, kernel_args[kind][n], p, one_out);
	LLVMValueRef r = LLVMBuildCall2(c->b, cg_kernel_type(c, kind), c->kernel_fn[kind], args, n, "");
	if (p->one_row)
		r = cg_load_real(c, one_out);
	ir_idx zero = { .kind = IX_CONST };
	ir_idx *idx[IR_MAX_RANK] = { &zero, &zero, &zero };
	if (p->result)
		cg_store_real(c, r, cg_addr(c, p->result, idx));
	if (p->counter)
		store_row_count(c, p->counter);
}

/* The objective's no-grad loop over rows, k->nograd_rows (ad.c: it adds
 * each row's log p into nograd_lp and 1 into nograd_count), as calls of
 * logp_batch over chunks of LOGP_CHUNK rows into an array on the stack:
 * the rows then run in logp_batch's blocks (2-4x faster than one at a
 * time), and the log-likelihood is compiled once, not twice.  The rows'
 * log p are added in row order; the counter ends at min(n, 2^p) as the
 * loop's `+= 1` would.  A call that cannot get its scratch leaves NaN. */
enum { LOGP_CHUNK = 64 };

/* The index of that loop among the no-grad body's statements, or -1 when
 * it stays as it is (no such loop, or no logp_batch to call). */
static ptrdiff_t logp_rows_at(const cg_ctx *c, const ir_kernel *k)
{
	if (k->kind != KER_OBJECTIVE || !k->nograd_rows || !k->nograd_lp || !k->nograd_count ||
	    !c->kernel_fn[KER_LOGP_BATCH])
		return -1;
	for (size_t i = 0; i < k->nograd_body.stmts.len; i++) {
		const ir_stmt *s = k->nograd_body.stmts.items[i];
		if (s->kind == S_FOR && s->loop == k->nograd_rows)
			return (ptrdiff_t)i;
	}
	return -1;
}

static void emit_logp_sum_calls(cg_ctx *c, const ir_kernel *k)
{
	LLVMValueRef fn = c->kernel_fn[KER_LOGP_BATCH];
	add_attr(c, fn, LLVMAttributeFunctionIndex, "noinline");
	LLVMValueRef out = cg_entry_alloca(c, LLVMArrayType2(c->real, LOGP_CHUNK), "logp.chunk");
	LLVMSetAlignment(out, 64);
	ir_idx zero = { .kind = IX_CONST };
	ir_idx *idx[IR_MAX_RANK] = { &zero, &zero, &zero };
	LLVMValueRef lp_at = cg_addr(c, k->nograd_lp, idx);

	/* chunks q = 0 .. ceil(n / LOGP_CHUNK) - 1, none when n >= 2^63
	 * (compared as signed, as the rows loop), without overflow near 2^63 */
	LLVMValueRef n = c->n, cap = cg_i64(c, LOGP_CHUNK);
	LLVMValueRef part = LLVMBuildZExt(c->b, LLVMBuildICmp(c->b, LLVMIntNE, LLVMBuildURem(c->b, n, cap, ""),
	                                                      cg_i64(c, 0), ""), c->i64, "");
	LLVMValueRef nchunks = LLVMBuildAdd(c->b, LLVMBuildUDiv(c->b, n, cap, ""), part, "");
	nchunks = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, n, cg_i64(c, 0), ""), cg_i64(c, 0), nchunks, "");
	cg_loop ql;
	cg_loop_open(c, &ql, NULL, cg_i64(c, 0), nchunks, false);
	LLVMValueRef first = LLVMBuildNSWMul(c->b, ql.iv, cap, "chunk.first");
	LLVMValueRef left = LLVMBuildSub(c->b, n, first, "");
	LLVMValueRef m = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntULT, left, cap, ""), left, cap, "chunk.rows");
	LLVMValueRef off = LLVMBuildNSWMul(c->b, first, cg_i64(c, c->m->model->obs_size), "");
	LLVMValueRef rows = LLVMBuildInBoundsGEP2(c->b, c->real, c->obs, &off, 1, "chunk.obs");
	/* all-ones bits, a NaN in f32 and f64: what stays where a call that
	 * cannot get its scratch writes nothing (docs/api.md), so that the
	 * objective is then NaN, as a kernel returning a real gives */
	LLVMBuildMemSet(c->b, out, LLVMConstInt(c->i8, 0xFF, 0), LLVMBuildNUWMul(c->b, m, cg_i64(c, c->real_size), ""), 64);
	LLVMValueRef args[4] = { c->theta, rows, m, out };
	LLVMBuildCall2(c->b, cg_kernel_type(c, KER_LOGP_BATCH), fn, args, 4, "");
	/* lp += out[j], j = 0 .. m - 1, in row order */
	cg_loop jl;
	cg_loop_open(c, &jl, NULL, cg_i64(c, 0), m, false);
	LLVMValueRef v = cg_load_real(c, LLVMBuildInBoundsGEP2(c->b, c->real, out, &jl.iv, 1, ""));
	cg_store_real(c, LLVMBuildFAdd(c->b, cg_load_real(c, lp_at), v, ""), lp_at);
	cg_loop_close(c, &jl);
	cg_loop_close(c, &ql);
	store_row_count(c, k->nograd_count);
}

/* A kernel body, with the plan's statements (if any) replaced by its call. */
static void emit_body(cg_ctx *c, const ir_block *b, const cg_call_plan *p)
{
	if (!p) {
		cg_block(c, b);
		return;
	}
	ir_block head = { { b->stmts.items, p->from, p->from } };
	ir_block tail = { { b->stmts.items + p->to, b->stmts.len - p->to, b->stmts.len - p->to } };
	cg_block(c, &head);
	emit_call(c, p);
	cg_block(c, &tail);
}

/* A call of calloc or malloc for scratch; when it gives NULL the kernel
 * frees what it allocated before (frees[0..nfrees), those not NULL) and
 * returns `failed` (NaN, or nothing for a void kernel).  The builder goes
 * on where the pointer is good. */
static LLVMValueRef scratch_alloc(cg_ctx *c, const char *fn_name, LLVMValueRef *args, unsigned nargs,
                                  const LLVMValueRef *frees, int nfrees, LLVMValueRef failed)
{
	LLVMTypeRef pt[2] = { c->i64, c->i64 };
	LLVMValueRef p = call_c(c, fn_name, c->ptr, pt, nargs, args);
	LLVMBasicBlockRef oom = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "scratch.oom");
	LLVMBasicBlockRef ok = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "scratch.ok");
	LLVMBuildCondBr(c->b, LLVMBuildIsNull(c->b, p, ""), oom, ok);
	LLVMPositionBuilderAtEnd(c->b, oom);
	LLVMTypeRef fpt = c->ptr;
	for (int i = 0; i < nfrees; i++)
		if (frees[i])
			call_c(c, "free", c->void_t, &fpt, 1, (LLVMValueRef *)&frees[i]);
	if (failed)
		LLVMBuildRet(c->b, failed);
	else
		LLVMBuildRetVoid(c->b);
	LLVMPositionBuilderAtEnd(c->b, ok);
	return p;
}

/* The first 64-byte boundary at or after p: calloc and malloc give 16
 * bytes of alignment, and the temps' offsets are multiples of 64 bytes,
 * so that a vector of a temp row is one cache line (llvm.ptrmask also
 * tells LLVM the alignment).  With calloc's 16, one thread of two ran
 * NADE H = 300's gradient 10-12 % slower than the other, the one whose
 * scratch did not happen to start on a line (every 64-byte access split
 * in two): 2 threads 1.63-1.75x over one at H = 300 and 500 in f64. */
static LLVMValueRef align64(cg_ctx *c, LLVMValueRef p)
{
	LLVMValueRef up = cg_i64(c, 63);
	LLVMValueRef q = LLVMBuildGEP2(c->b, c->i8, p, &up, 1, "");
	unsigned id = LLVMLookupIntrinsicID("llvm.ptrmask", 12);
	LLVMTypeRef tys[2] = { c->ptr, c->i64 };
	LLVMValueRef fn = LLVMGetIntrinsicDeclaration(c->mod, id, tys, 2);
	LLVMTypeRef fty = LLVMIntrinsicGetType(c->ctx, id, tys, 2);
	LLVMValueRef args[2] = { q, cg_i64(c, -64) };
	return LLVMBuildCall2(c->b, fty, fn, args, 2, "aligned");
}

/* Points the temps of one region (uninit: the not-zeroed one) into it. */
static void point_temps(cg_ctx *c, const kernel_scan *sc, const int64_t *off, LLVMValueRef region, bool uninit)
{
	for (size_t i = 0; i < sc->temps.len; i++) {
		const ir_buf *b = sc->temps.items[i];
		LLVMValueRef o = cg_i64(c, off[i]);
		if (b->uninit == uninit)
			c->temp_ptr[b->id] = LLVMBuildInBoundsGEP2(c->b, c->real, region, &o, 1, b->name);
	}
}

/* A self-referential metadata node {self, ops...}: distinct, as scopes and
 * their domains must be. */
static LLVMMetadataRef self_node(cg_ctx *c, LLVMMetadataRef *ops, unsigned n)
{
	LLVMMetadataRef tmp = LLVMTemporaryMDNode(c->ctx, NULL, 0);
	LLVMMetadataRef all[3] = { tmp };
	for (unsigned i = 0; i < n && i < 2; i++)
		all[i + 1] = ops[i];
	LLVMMetadataRef node = LLVMMDNodeInContext2(c->ctx, all, n + 1);
	LLVMMetadataReplaceAllUsesWith(tmp, node);
	return node;
}

/* The temps of a kernel are disjoint stretches of one scratch (or of the
 * not-zeroed one), but LLVM sees pointers into one allocation and cannot
 * rule out that a store to one temp changes another: NADE's gradient adds
 * into dscan[m] while reading h[m] (a partial block's rows one at a time,
 * lower.c), and that loop stayed scalar.  So each temp gets an alias scope
 * of its own, and its loads and stores say that they touch no other
 * temp's (scoped-noalias metadata): the gradient of one row 1.6-2.8x
 * faster (NADE H = 100 and 500, f32 and f64), batches of 32 and 256 the
 * same.  Accesses left untagged (calls, memset) alias everything, as
 * before. */
static void mark_temp_scopes(cg_ctx *c, const kernel_scan *sc)
{
	size_t n = sc->temps.len;
	c->temp_scope = calloc((size_t)c->nids, sizeof *c->temp_scope);
	c->temp_noalias = calloc((size_t)c->nids, sizeof *c->temp_noalias);
	LLVMMetadataRef *scope = calloc(n + 1, sizeof *scope);
	if (!c->temp_scope || !c->temp_noalias || !scope || n < 2 || c->o->opt_level <= 0) {
		free(scope);
		free(c->temp_scope);
		free(c->temp_noalias);
		c->temp_scope = c->temp_noalias = NULL;
		return;
	}
	LLVMMetadataRef domain = self_node(c, NULL, 0);
	for (size_t i = 0; i < n; i++) {
		const ir_buf *b = sc->temps.items[i];
		LLVMMetadataRef ops[2] = { domain, LLVMMDStringInContext2(c->ctx, b->name, strlen(b->name)) };
		scope[i] = self_node(c, ops, 2);
		c->temp_scope[b->id] = LLVMMetadataAsValue(c->ctx, LLVMMDNodeInContext2(c->ctx, &scope[i], 1));
	}
	LLVMMetadataRef *others = calloc(n, sizeof *others);
	for (size_t i = 0; others && i < n; i++) {
		size_t m = 0;
		for (size_t j = 0; j < n; j++)
			if (j != i)
				others[m++] = scope[j];
		const ir_buf *b = sc->temps.items[i];
		c->temp_noalias[b->id] = LLVMMetadataAsValue(c->ctx, LLVMMDNodeInContext2(c->ctx, others, m));
	}
	free(others);
	free(scope);
}

LLVMValueRef cg_tag_temp(cg_ctx *c, LLVMValueRef mem, const ir_buf *b)
{
	if (!mem || !b || b->cls != BUF_TEMP || b->id < 0 || b->id >= c->nids || !c->temp_scope ||
	    !c->temp_scope[b->id] || !c->temp_noalias[b->id])
		return mem;
	LLVMSetMetadata(mem, LLVMGetMDKindIDInContext(c->ctx, "alias.scope", 11), c->temp_scope[b->id]);
	LLVMSetMetadata(mem, LLVMGetMDKindIDInContext(c->ctx, "noalias", 7), c->temp_noalias[b->id]);
	return mem;
}

/* Emits the body of kernel k into its declared function. */
void cg_kernel(cg_ctx *c, const ir_kernel *k)
{
	LLVMValueRef fn = c->kernel_fn[k->kind];
	if (!fn)
		return;
	c->k = k;
	c->fn = fn;
	c->cold[k->kind] = k->kind == KER_INIT;
	c->theta = c->obs = c->n = c->grad = c->out = c->seed = c->first = c->prefix = NULL;
	for (unsigned i = 0; kernel_args[k->kind][i] != A_END; i++) {
		LLVMValueRef p = LLVMGetParam(fn, i);
		switch (kernel_args[k->kind][i]) {
		case A_THETA: case A_THETA_RO: c->theta = p; break;
		case A_OBS_RO: case A_OBS_W: c->obs = p; break;
		case A_N: c->n = p; break;
		case A_GRAD: c->grad = p; break;
		case A_OUT: c->out = p; break;
		case A_SEED: c->seed = p; break;
		case A_FIRST: c->first = p; break;
		case A_PREFIX: c->prefix = p; break;
		case A_END: break;
		}
	}
	memset(c->loop_var, 0, (size_t)c->nids * sizeof *c->loop_var);
	memset(c->temp_ptr, 0, (size_t)c->nids * sizeof *c->temp_ptr);
	c->lane = NULL;
	c->jam_rows = NULL;
	c->row.ptr = c->obs;
	c->row.r = NULL;
	cg_cache_drop(c);

	/* which scratch the kernel needs */
	kernel_scan sc = { 0 };
	sc.seen = calloc((size_t)c->nids, sizeof *sc.seen);
	sc.done = calloc((size_t)c->nids, sizeof *sc.done);
	if (!sc.seen || !sc.done) {
		free(sc.seen);
		free(sc.done);
		cg_fail(c, "out of memory");
		return;
	}
	/* a stretch of the body (or all of it) that another kernel's call can
	 * replace: its scratch is the callee's, not this kernel's */
	cg_call_plan plan;
	const cg_call_plan *call = NULL;
	if (cg_plan_call(c, k, &plan) && can_call(k->kind, plan.callee->kind, &plan))
		call = &plan;
	if (call) {
		ir_block head = { { k->body.stmts.items, call->from, call->from } };
		ir_block tail = { { k->body.stmts.items + call->to, k->body.stmts.len - call->to,
		                    k->body.stmts.len - call->to } };
		scan_block(c, &sc, &head);
		scan_block(c, &sc, &tail);
		scan_buf(c, &sc, call->result);
		scan_buf(c, &sc, call->counter);
		/* the callee stays a function of its own; what is left is light
		 * (cold), unless the kernel also has a no-grad variant, a whole
		 * log-likelihood it runs itself (the objective calling
		 * loglik_grad: its math stays inline, its loops vectorized) */
		add_attr(c, c->kernel_fn[call->callee->kind], LLVMAttributeFunctionIndex, "noinline");
		c->cold[k->kind] = k->nograd_body.stmts.len == 0;
	} else {
		for (size_t i = 0; i < k->temps.len; i++)
			scan_buf(c, &sc, k->temps.items[i]);
		scan_block(c, &sc, &k->body);
	}
	/* the no-grad loop over rows that calls of logp_batch replace: its
	 * scratch is logp_batch's */
	ptrdiff_t logp_rows = logp_rows_at(c, k);
	ir_block nograd_head = k->nograd_body, nograd_tail = { { NULL, 0, 0 } };
	if (logp_rows >= 0) {
		size_t at = (size_t)logp_rows, len = k->nograd_body.stmts.len;
		nograd_head = (ir_block){ { k->nograd_body.stmts.items, at, at } };
		nograd_tail = (ir_block){ { k->nograd_body.stmts.items + at + 1, len - at - 1, len - at - 1 } };
		scan_buf(c, &sc, k->nograd_lp);
		scan_buf(c, &sc, k->nograd_count);
	}
	scan_block(c, &sc, &nograd_head);
	scan_block(c, &sc, &nograd_tail);
	scan_buf(c, &sc, k->result);
	scan_buf(c, &sc, k->nograd_result);
	bool has_nograd = k->kind == KER_OBJECTIVE && (k->nograd_body.stmts.len || k->nograd_result);
	/* an objective without a no-grad variant gets a scratch gradient when
	 * called with grad == NULL, so "grad may be NULL" always holds */
	bool grad_scratch = k->kind == KER_OBJECTIVE && !has_nograd && sc.uses_grad;
	int64_t total = 0, total_big = 0;
	int64_t *off = calloc(sc.temps.len + 1, sizeof *off);
	int64_t *lanes = calloc((size_t)c->nids, sizeof *lanes);
	c->lane_stride = calloc((size_t)c->nids, sizeof *c->lane_stride);
	if (lanes && c->lane_stride && c->o->opt_level > 0)
		mark_lane_temps(c, &k->body, 0, lanes);
	for (size_t i = 0; off && lanes && c->lane_stride && i < sc.temps.len; i++) {
		const ir_buf *b = sc.temps.items[i];
		int64_t sz = b->size > 0 ? b->size : 1;
		int64_t padded = (sz + 7) & ~(int64_t)7;  /* 8 reals apart: vector-aligned */
		if (b->uninit) { /* a region of their own: see below */
			off[i] = total_big;
			total_big += padded;
			continue;
		}
		off[i] = total;
		int64_t nl = lanes[b->id] > 1 ? lanes[b->id] : 1;
		if (nl > 1 && sz == 1) {
			/* a scalar per row: the rows' copies side by side, one
			 * vector for the loop over the rows to load and store */
			c->lane_stride[b->id] = 1;
			total += (nl + 7) & ~(int64_t)7;
			continue;
		}
		if (nl > 1)
			c->lane_stride[b->id] = padded;
		total += padded * nl;
	}
	free(lanes);
	if (!off || !c->lane_stride || sc.oom)
		cg_fail(c, "out of memory");

	bool ret_real = returns_real(k->kind);
	c->entry = LLVMAppendBasicBlockInContext(c->ctx, fn, "entry");
	LLVMBasicBlockRef start = LLVMAppendBasicBlockInContext(c->ctx, fn, "start");
	LLVMPositionBuilderAtEnd(c->b, c->entry);
	LLVMBuildBr(c->b, start);
	LLVMPositionBuilderAtEnd(c->b, start);
	LLVMValueRef failed = ret_real ? cg_real_const(c, NAN) : NULL;

	/* scratch: zeroed, on the stack when small, else calloc'd */
	LLVMValueRef heap = NULL;
	uint64_t bytes = (uint64_t)total * (uint64_t)c->real_size;
	if (total > 0 && off) {
		LLVMValueRef region;
		if (bytes <= CG_MAX_STACK_SCRATCH) {
			region = cg_entry_alloca(c, LLVMArrayType2(c->real, (uint64_t)total), "scratch");
			LLVMSetAlignment(region, 64);
			LLVMBuildMemSet(c->b, region, LLVMConstInt(c->i8, 0, 0), cg_i64(c, (int64_t)bytes), 64);
		} else {
			LLVMValueRef args[2] = { cg_i64(c, total + 64 / c->real_size), cg_i64(c, c->real_size) };
			heap = scratch_alloc(c, "calloc", args, 2, NULL, 0, failed);
			region = align64(c, heap);
		}
		point_temps(c, &sc, off, region, false);
	}
	/* the temps written before they are read (layout.c's copies of params,
	 * n x H reals and more): malloc'd, not zeroed, so that a call of a few
	 * rows, which touches a few of their columns, pays for no more */
	LLVMValueRef big = NULL;
	if (total_big > 0 && off) {
		LLVMValueRef size = cg_i64(c, total_big * c->real_size + 64);
		big = scratch_alloc(c, "malloc", &size, 1, &heap, 1, failed);
		point_temps(c, &sc, off, align64(c, big), true);
	}
	mark_temp_scopes(c, &sc);

	LLVMValueRef grad_tmp = NULL, grad_null = NULL;
	if (grad_scratch) {
		grad_null = LLVMBuildIsNull(c->b, c->grad, "");
		LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
		LLVMBasicBlockRef mk = LLVMAppendBasicBlockInContext(c->ctx, fn, "grad.scratch");
		LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(c->ctx, fn, "grad.ready");
		LLVMBuildCondBr(c->b, grad_null, mk, join);
		LLVMPositionBuilderAtEnd(c->b, mk);
		int64_t np = c->m->model->num_params > 0 ? c->m->model->num_params : 1;
		LLVMValueRef args[2] = { cg_i64(c, np), cg_i64(c, c->real_size) };
		LLVMValueRef frees[2] = { heap, big };
		LLVMValueRef g = scratch_alloc(c, "calloc", args, 2, frees, 2, failed);
		LLVMBasicBlockRef mk_ok = LLVMGetInsertBlock(c->b);
		LLVMBuildBr(c->b, join);
		LLVMPositionBuilderAtEnd(c->b, join);
		LLVMValueRef phi = LLVMBuildPhi(c->b, c->ptr, "grad");
		LLVMValueRef in[2] = { c->grad, g };
		LLVMBasicBlockRef from[2] = { pre, mk_ok };
		LLVMAddIncoming(phi, in, from, 2);
		c->grad = phi;
		grad_tmp = g;
	}

	LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(c->ctx, fn, "exit");
	LLVMValueRef rv[2];
	LLVMBasicBlockRef rb[2];
	int nr = 0;
	if (has_nograd) {
		LLVMBasicBlockRef with = LLVMAppendBasicBlockInContext(c->ctx, fn, "with_grad");
		LLVMBasicBlockRef without = LLVMAppendBasicBlockInContext(c->ctx, fn, "without_grad");
		LLVMBuildCondBr(c->b, LLVMBuildIsNull(c->b, c->grad, ""), without, with);
		LLVMPositionBuilderAtEnd(c->b, with);
		emit_body(c, &k->body, call);
		rv[nr] = ret_real ? result_value(c, k->result) : NULL;
		rb[nr++] = LLVMGetInsertBlock(c->b);
		LLVMBuildBr(c->b, exit);
		LLVMPositionBuilderAtEnd(c->b, without);
		cg_block(c, &nograd_head);
		if (logp_rows >= 0)
			emit_logp_sum_calls(c, k);
		cg_block(c, &nograd_tail);
		rv[nr] = ret_real ? result_value(c, k->nograd_result) : NULL;
	} else {
		emit_body(c, &k->body, call);
		rv[nr] = ret_real ? result_value(c, k->result) : NULL;
	}
	rb[nr++] = LLVMGetInsertBlock(c->b);
	LLVMBuildBr(c->b, exit);
	LLVMMoveBasicBlockAfter(exit, LLVMGetInsertBlock(c->b));
	LLVMPositionBuilderAtEnd(c->b, exit);
	LLVMValueRef r = NULL;
	if (ret_real) {
		r = LLVMBuildPhi(c->b, c->real, "result");
		LLVMAddIncoming(r, rv, rb, (unsigned)nr);
	}
	LLVMTypeRef fpt = c->ptr;
	if (heap)
		call_c(c, "free", c->void_t, &fpt, 1, &heap);
	if (big)
		call_c(c, "free", c->void_t, &fpt, 1, &big);
	if (grad_tmp) {
		LLVMValueRef p = LLVMBuildSelect(c->b, grad_null, c->grad, LLVMConstNull(c->ptr), "");
		call_c(c, "free", c->void_t, &fpt, 1, &p);
	}
	if (ret_real)
		LLVMBuildRet(c->b, r);
	else
		LLVMBuildRetVoid(c->b);

	free(off);
	free(sc.seen);
	free(sc.done);
	free(sc.temps.items);
	free(c->lane_stride);
	c->lane_stride = NULL;
	free(c->temp_scope);
	free(c->temp_noalias);
	c->temp_scope = c->temp_noalias = NULL;
	c->k = NULL;
}

