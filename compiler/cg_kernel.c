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
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/DebugInfo.h>

#include "cg_context.h"

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
static bool first_visit(cg_ctx *c, const ir_val *v, bool *seen)
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
static bool val_reads(cg_ctx *c, const ir_val *v, const ir_buf *b, bool *seen)
{
	if (!first_visit(c, v, seen))
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
			if (val_reads(c, v->u.op.a[i], b, seen))
				return true;
		return false;
	case V_INT: return ir_idx_reads(v->u.idx, b);
	case V_DRAW: return ir_idx_reads(v->u.draw.a, b) || ir_idx_reads(v->u.draw.b, b) || ir_idx_reads(v->u.draw.ci, b);
	case V_STOP: return val_reads(c, v->u.stop, b, seen);
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
		r = val_reads(c, s->assigns[k].val, b, seen);
		for (int i = 0; i < IR_MAX_RANK && !r; i++)
			r = ir_idx_reads(s->assigns[k].idx[i], b);
	}
	free(seen);
	return r;
}

/* --------------------------------------------------------------- loops */

typedef struct cg_loop {
	const ir_loop *l;
	LLVMBasicBlockRef header, exit;
	LLVMValueRef iv, lo, hi, saved;
	LLVMValueRef latch;          /* the back edge's branch, once closed */
	bool reverse;
} cg_loop;

/* An alloca in the entry block (so mem2reg promotes it), whatever block
 * the builder is in. */
static LLVMValueRef entry_alloca(cg_ctx *c, LLVMTypeRef ty, const char *name)
{
	LLVMBuilderRef ab = LLVMCreateBuilderInContext(c->ctx);
	LLVMPositionBuilderBefore(ab, LLVMGetBasicBlockTerminator(c->entry));
	LLVMValueRef a = LLVMBuildAlloca(ab, ty, name);
	LLVMDisposeBuilder(ab);
	return a;
}

/* Opens `for l in [lo, hi)` (or hi-1 down to lo): guard, then the header
 * with the counter as a phi; the caller emits the body after this. */
static void loop_open(cg_ctx *c, cg_loop *st, const ir_loop *l, LLVMValueRef lo, LLVMValueRef hi,
                      bool reverse)
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

/* Closes a loop opened by loop_open: increment (or decrement), exit test,
 * and the builder continues after the loop. */
static void loop_close(cg_ctx *c, cg_loop *st)
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

static void open_stmt_loop(cg_ctx *c, cg_loop *st, const ir_loop *l)
{
	if (!l) {
		cg_fail(c, "internal error: missing loop");
		l = NULL;
	}
	LLVMValueRef lo = l ? cg_idx(c, l->lo) : cg_i64(c, 0);
	LLVMValueRef hi = l ? cg_idx(c, l->hi) : cg_i64(c, 0);
	loop_open(c, st, l, lo, hi, false);
}

/* ---------------------------------------------------------- statements */

static void cg_block(cg_ctx *c, const ir_block *b);
static void cg_stmt(cg_ctx *c, const ir_stmt *s);

static void store_elt(cg_ctx *c, LLVMValueRef v, LLVMValueRef p)
{
	LLVMValueRef s = LLVMBuildStore(c->b, v, p);
	LLVMSetAlignment(s, (unsigned)c->real_size);
}

static LLVMValueRef load_real(cg_ctx *c, LLVMValueRef p)
{
	LLVMValueRef v = LLVMBuildLoad2(c->b, c->real, p, "");
	LLVMSetAlignment(v, (unsigned)c->real_size);
	return v;
}

static bool rows_sum_into(cg_ctx *c, const ir_assign *a, const ir_loop *rows);

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
			v = cg_contract(LLVMBuildFAdd(c->b, load_real(c, p), v, ""));
			/* the rows of a block adding into what they share (a
			 * gradient, the batch's log-likelihood): a sum over the rows,
			 * which may be reassociated like any sum (cg_assign_stmt), so
			 * the loop over the rows vectorizes */
			if (c->lane && c->jam_rows && rows_sum_into(c, a, c->jam_rows))
				LLVMSetFastMathFlags(v, LLVMFastMathAllowReassoc | LLVMFastMathAllowContract);
		}
		store_elt(c, v, p);
		if (j + 1 < s->nassigns && later_reads(c, s, j))
			cg_cache_drop(c);
	}
	cg_cache_drop(c);
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
		open_stmt_loop(c, &st[i], s->loops[i]);
	if (!reduce || nfree == nloops) {
		/* a reduction over no loops is its one term */
		emit_assigns(c, s);
	} else {
		const ir_assign *a = &s->assigns[0];
		LLVMValueRef acc = entry_alloca(c, c->real, "acc");
		store_elt(c, cg_real_const(c, s->kind == S_SUM ? 0.0 : -INFINITY), acc);
		for (int i = nfree; i < nloops; i++)
			open_stmt_loop(c, &st[i], s->loops[i]);
		cg_cache_drop(c);
		LLVMValueRef v = cg_val(c, a->val);
		LLVMValueRef old = load_real(c, acc);
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
		store_elt(c, nv, acc);
		cg_cache_drop(c);
		for (int i = nloops - 1; i >= nfree; i--)
			loop_close(c, &st[i]);
		store_elt(c, load_real(c, acc), cg_addr(c, a->buf, a->idx));
		if (s->nassigns > 1)
			cg_fail(c, "internal error: a reduction with %d assignments", s->nassigns);
	}
	for (int i = nfree - 1; i >= 0; i--)
		loop_close(c, &st[i]);
	free(st);
}

/* -------------------------------------------------- the rows of a block
 *
 * A block's rows run the same statements on different rows, and their sums
 * read the same params: FVSBN's sum(j before i) W[i, j] * x[j] reads row i
 * of W for every row.  Run one row at a time, each sum is a loop of its own
 * that loads W again.  So the rows loop is split at such statements, which
 * run jammed (lanes: one per row of the block):
 *   - a sum over loops is one loop with an accumulator per row: each param
 *     loaded once serves all rows, and the vectorizer gets independent
 *     chains;
 *   - an accumulation into a buffer the rows share (a gradient) at an index
 *     that does not depend on the row adds the rows' terms first and then
 *     loads and stores the buffer once.
 * and the statements between them stay loops over the rows of the block.
 * Rows are independent (what a row carries from one position to the next
 * lives in block_rows buffers, and each TEMP a row writes has a copy per
 * row: mark_lane_temps), so only the order of statements within a row
 * matters, and that is kept.  A row's values must not depend on where the
 * batch was split (M_sample's contract): the last, partial block runs its
 * sums one row at a time in a loop of the same vector shape (fix_sum_shape),
 * and its accumulations one row at a time too (a call of one row does one
 * row's work). */

enum { CG_JAM_ROWS = 16, CG_JAM_LOOPS = 8 }; /* the most rows and loops jammed */
/* the most accumulators of positions x rows summed together (pair_positions):
 * 16, pairs of positions for blocks of 8 rows.  24 (3 positions) ran FVSBN's
 * f32 log p 1.10x and its f64 1.03x faster, but took 1.3x the time to
 * build FVSBN (each position's statements are emitted once per position of
 * the group, and once more for the last positions alone). */
enum { CG_JAM_TILE = 16, CG_JAM_POS = 8 };

/* Whether an index is the same for every row of a block: no row number, no
 * loop over the rows, no data read. */
static bool idx_row_free(const ir_idx *x, const ir_loop *rows)
{
	if (!x)
		return true;
	switch (x->kind) {
	case IX_CONST: case IX_PREFIX: return true;
	case IX_LOOP: return x->u.loop != rows;
	case IX_ADD: case IX_SUB: case IX_MUL:
		return idx_row_free(x->u.bin.a, rows) && idx_row_free(x->u.bin.b, rows);
	case IX_LOAD: case IX_ROW: return false;
	}
	return false;
}

/* A buffer the rows share, written at the same index by all of them. */
static bool shared_target(const ir_assign *a, const ir_loop *rows)
{
	if (!a->buf || (a->buf->cls != BUF_GRAD && a->buf->cls != BUF_THETA))
		return false;
	for (int i = 0; i < a->buf->rank; i++)
		if (!idx_row_free(a->idx[i], rows))
			return false;
	return true;
}

/* A buffer each row has its own copy of. */
static bool private_target(cg_ctx *c, const ir_assign *a)
{
	return a->buf && a->buf->cls == BUF_TEMP && (a->buf->block_rows || c->lane_stride[a->buf->id] > 0);
}

/* Whether the rows of a block adding into a's target add into one place,
 * a sum over the rows: a shared buffer (a gradient) or a TEMP of which the
 * rows have one copy (the batch's log-likelihood). */
static bool rows_sum_into(cg_ctx *c, const ir_assign *a, const ir_loop *rows)
{
	if (!a->buf || private_target(c, a))
		return false;
	if (a->buf->cls != BUF_GRAD && a->buf->cls != BUF_THETA && a->buf->cls != BUF_TEMP)
		return false;
	for (int i = 0; i < a->buf->rank; i++)
		if (!idx_row_free(a->idx[i], rows))
			return false;
	return true;
}

typedef enum { JAM_NONE, JAM_SUM, JAM_ADD } jam_kind;

/* How statement s of the rows of block loop `rows` can run jammed. */
static jam_kind jam_kind_of(cg_ctx *c, const ir_stmt *s, const ir_loop *rows)
{
	if (s->nloops <= 0 || s->nloops > CG_JAM_LOOPS || s->nassigns < 1)
		return JAM_NONE;
	for (int i = 0; i < s->nloops; i++)
		if (!s->loops[i] || !idx_row_free(s->loops[i]->lo, rows) || !idx_row_free(s->loops[i]->hi, rows))
			return JAM_NONE;
	if (s->kind == S_SUM && s->nfree == 0 && s->nassigns == 1)
		return JAM_SUM;
	if (s->kind != S_ADD)
		return JAM_NONE;
	/* each target shared (at least one) or private, and no value reads a
	 * target: the rows' updates then commute */
	bool any_shared = false;
	bool *seen = calloc((size_t)c->nids, sizeof *seen);
	bool ok = seen != NULL;
	for (int j = 0; ok && j < s->nassigns; j++) {
		const ir_assign *a = &s->assigns[j];
		bool shared = shared_target(a, rows);
		any_shared |= shared;
		ok = shared || private_target(c, a);
		for (int k = 0; ok && k < s->nassigns; k++) {
			memset(seen, 0, (size_t)c->nids * sizeof *seen);
			ok = !val_reads(c, s->assigns[k].val, a->buf, seen);
		}
	}
	free(seen);
	return ok && any_shared ? JAM_ADD : JAM_NONE;
}

/* The row the data reads come from (the obs row pointer, IX_ROW). */
static void point_row(cg_ctx *c, LLVMValueRef row)
{
	c->row.r = row;
	if (c->obs) {
		LLVMValueRef off = LLVMBuildNSWMul(c->b, row, cg_i64(c, c->m->model->obs_size), "");
		c->row.ptr = LLVMBuildInBoundsGEP2(c->b, c->real, c->obs, &off, 1, "row");
	}
}

/* Points the row-dependent state at row first + lane. */
static void set_lane(cg_ctx *c, const ir_loop *rows, LLVMValueRef first, LLVMValueRef lane)
{
	LLVMValueRef row = LLVMBuildNSWAdd(c->b, first, lane, "");
	c->loop_var[rows->id] = row;
	point_row(c, row);
	c->lane = lane;
	cg_cache_drop(c);
}

/* Asks the loop vectorizer for `width` lanes on the loop of latch branch
 * br (loop metadata: a self-referential node with the hint). */
static void hint_vector_width(cg_ctx *c, LLVMValueRef br, int width, int interleave)
{
	LLVMMetadataRef tmp = LLVMTemporaryMDNode(c->ctx, NULL, 0);
	LLVMMetadataRef ops[3] = { tmp };
	unsigned n = 1;
	LLVMMetadataRef w[2] = { LLVMMDStringInContext2(c->ctx, "llvm.loop.vectorize.width", 25),
		                 LLVMValueAsMetadata(LLVMConstInt(c->i32, (unsigned long long)width, 0)) };
	ops[n++] = LLVMMDNodeInContext2(c->ctx, w, 2);
	if (interleave > 0) {
		LLVMMetadataRef ic[2] = { LLVMMDStringInContext2(c->ctx, "llvm.loop.interleave.count", 26),
			                  LLVMValueAsMetadata(LLVMConstInt(c->i32, (unsigned long long)interleave, 0)) };
		ops[n++] = LLVMMDNodeInContext2(c->ctx, ic, 2);
	}
	LLVMMetadataRef id = LLVMMDNodeInContext2(c->ctx, ops, n);
	LLVMMetadataReplaceAllUsesWith(tmp, id);
	LLVMSetMetadata(br, LLVMGetMDKindIDInContext(c->ctx, "llvm.loop", 9), LLVMMetadataAsValue(c->ctx, id));
}

/* Whether computing v calls a function the vectorizer cannot widen (a
 * normal or Gumbel draw, libm's tanh). */
static bool val_calls(cg_ctx *c, const ir_val *v, bool *seen)
{
	if (!first_visit(c, v, seen))
		return false;
	switch (v->kind) {
	case V_DRAW: return !cg_draw_inline(c, v);
	case V_OP:
		if (v->u.op.op == IR_TANH)
			return true;
		for (int i = 0; i < 3; i++)
			if (val_calls(c, v->u.op.a[i], seen))
				return true;
		return false;
	case V_STOP: return val_calls(c, v->u.stop, seen);
	default: return false;
	}
}

/* Whether a statement is straight-line code for one row, vectorizable
 * across rows. */
static bool per_row_straight(cg_ctx *c, const ir_stmt *t)
{
	if (t->kind == S_IF_GE) {
		/* a branch around straight-line code: the vectorizer unswitches
		 * it (a condition the same for every row, `k >= prefix`) or
		 * turns it into masks */
		for (size_t i = 0; i < t->body.stmts.len; i++)
			if (t->body.stmts.items[i] && !per_row_straight(c, t->body.stmts.items[i]))
				return false;
		return true;
	}
	if (t->kind == S_FOR || t->nloops != 0)
		return false;
	bool *seen = calloc((size_t)c->nids, sizeof *seen);
	bool ok = seen != NULL;
	for (int j = 0; ok && j < t->nassigns; j++)
		ok = !val_calls(c, t->assigns[j].val, seen);
	free(seen);
	return ok;
}

/* Statements [from, to) of the rows loop s for the rows [first, first +
 * count).  When they are straight-line code per row (FVSBN's logit, log p
 * and their adjoints), the loop over the rows is the one to vectorize: a
 * lane per row, `block` of them, which a full block fills exactly (left to
 * itself, the vectorizer picks more lanes than a block has rows and runs
 * the scalar remainder only).  The vector and the scalar remainder compute
 * each row with the same operations. */
static void rows_each(cg_ctx *c, const ir_stmt *s, size_t from, size_t to, LLVMValueRef first, LLVMValueRef count,
                      int block)
{
	cg_loop st;
	loop_open(c, &st, s->loop, cg_i64(c, 0), count, false);
	set_lane(c, s->loop, first, st.iv);
	bool straight = true;
	for (size_t i = from; i < to; i++)
		if (s->body.stmts.items[i]) {
			const ir_stmt *t = s->body.stmts.items[i];
			straight = straight && per_row_straight(c, t);
			cg_stmt(c, t);
		}
	loop_close(c, &st);
	if (straight)
		hint_vector_width(c, st.latch, block, 0);
}

/* The vectorization of a jammed sum's loop, the same whatever the number of
 * rows in it: 64 bytes of lanes, no interleaving (and, a loop planned at
 * that width alone, the remainder scalar: cg_emit.c), so that a row's
 * partial sums, and so its bits, are the same summed alone or beside 7
 * others. */
static void fix_sum_shape(cg_ctx *c, LLVMValueRef latch)
{
	hint_vector_width(c, latch, 64 / c->real_size, 1);
}

/* ------------------------------------------- a jammed sum in vectors
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
 * partial block runs this same code one row at a time). */

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
static bool idx_free_of(const ir_idx *x, const ir_loop *l)
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
	case V_INT: k = idx_free_of(v->u.idx, l) ? JV_INVARIANT : JV_NO; break;
	case V_STOP: k = jv_kind(c, v->u.stop, l, memo); break;
	case V_DRAW: k = JV_NO; break;
	}
	if (has_id)
		memo[v->id] = (signed char)(k + 2);
	return k;
}

/* Whether a sum's summand can be computed in vectors across loop l. */
static bool jv_summand(cg_ctx *c, const ir_val *v, const ir_loop *l)
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

/* v for the `lanes` iterations of loop l from its current value on (its
 * variable set by the caller), loads masked by `mask` when not NULL; v is
 * not JV_NO (memo: jv_kind's). */
static LLVMValueRef jv_emit(cg_ctx *c, const ir_val *v, const ir_loop *l, unsigned lanes, LLVMValueRef mask,
                            signed char *memo)
{
	LLVMTypeRef vt = LLVMVectorType(c->real, lanes);
	if (jv_kind(c, v, l, memo) == JV_INVARIANT)
		return jv_splat(c, cg_val(c, v), lanes);
	switch (v->kind) {
	case V_READ: {
		LLVMValueRef p = cg_addr(c, v->u.read.buf, v->u.read.idx);
		if (!mask) {
			LLVMValueRef x = LLVMBuildLoad2(c->b, vt, p, "");
			LLVMSetAlignment(x, (unsigned)c->real_size);
			return x;
		}
		unsigned id = LLVMLookupIntrinsicID("llvm.masked.load", 16);
		LLVMTypeRef tys[2] = { vt, c->ptr };
		LLVMValueRef fn = LLVMGetIntrinsicDeclaration(c->mod, id, tys, 2);
		LLVMTypeRef fty = LLVMIntrinsicGetType(c->ctx, id, tys, 2);
		LLVMValueRef args[4] = { p, LLVMConstInt(c->i32, (unsigned long long)c->real_size, 0), mask,
			                 LLVMConstNull(vt) };
		return LLVMBuildCall2(c->b, fty, fn, args, 4, "");
	}
	case V_OP: {
		LLVMValueRef a = jv_emit(c, v->u.op.a[0], l, lanes, mask, memo), b = NULL;
		if (ir_op_arity[v->u.op.op] > 1)
			b = jv_emit(c, v->u.op.a[1], l, lanes, mask, memo);
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
	case V_STOP: return jv_emit(c, v->u.stop, l, lanes, mask, memo);
	default: break;
	}
	cg_fail(c, "internal error: a summand not computable in vectors");
	return LLVMGetUndef(vt);
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

/* One step of a vector sum: for each row, acc[r] += the summand at
 * iterations k .. k + lanes - 1 of loop l, only the lanes of `mask` when
 * it is not NULL. */
static void jv_step(cg_ctx *c, const ir_val *v, const ir_loop *l, LLVMValueRef first, const LLVMValueRef *lane,
                    const LLVMValueRef *acc, int rows, LLVMValueRef k, LLVMValueRef mask, signed char *memo)
{
	unsigned lanes = (unsigned)(64 / c->real_size);
	LLVMTypeRef vt = LLVMVectorType(c->real, lanes);
	for (int r = 0; r < rows; r++) {
		set_lane(c, c->jam_rows, first, lane[r]);
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

/* jam_sum in vectors (the summand passes jv_summand): the outer loops as
 * they are, the innermost in steps of 64 bytes of lanes with an
 * accumulator vector per row, its remainder one masked step, and the rows'
 * horizontal sums together (jv_hsum). */
static void jam_sum_vec(cg_ctx *c, const ir_stmt *s, LLVMValueRef first, LLVMValueRef lane0, int rows)
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
		acc[r] = entry_alloca(c, vt, "vacc");
		LLVMValueRef st = LLVMBuildStore(c->b, LLVMConstNull(vt), acc[r]);
		LLVMSetAlignment(st, (unsigned)c->real_size);
		lane[r] = r ? LLVMBuildNSWAdd(c->b, lane0, cg_i64(c, r), "") : lane0;
	}
	cg_loop st[CG_JAM_LOOPS];
	for (int i = 0; i + 1 < s->nloops; i++)
		open_stmt_loop(c, &st[i], s->loops[i]);
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
	for (int r = 0; r < rows; r++) {
		set_lane(c, c->jam_rows, first, lane[r]);
		c->loop_var[l->id] = k;
		LLVMValueRef v = jv_emit(c, a->val, l, lanes, NULL, memo);
		LLVMValueRef old = LLVMBuildLoad2(c->b, vt, acc[r], "");
		LLVMValueRef st2 = LLVMBuildStore(c->b, cg_contract(LLVMBuildFAdd(c->b, old, v, "")), acc[r]);
		LLVMSetAlignment(old, (unsigned)c->real_size);
		LLVMSetAlignment(st2, (unsigned)c->real_size);
	}
	LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
	LLVMValueRef br = LLVMBuildBr(c->b, head);
	LLVMAddIncoming(k, &next, &latch, 1);
	hint_vector_width(c, br, 1, 1); /* vector code already */
	/* the remainder, hi - k < lanes iterations (maybe none): one masked step */
	LLVMPositionBuilderAtEnd(c->b, tail);
	int iota[64];
	for (unsigned i = 0; i < lanes; i++)
		iota[i] = (int)i;
	LLVMValueRef left = LLVMBuildTrunc(c->b, LLVMBuildNSWSub(c->b, hi, k, ""), c->i32, "");
	LLVMValueRef mask = LLVMBuildICmp(c->b, LLVMIntSLT, jv_mask_const(c, iota, lanes), jv_splat(c, left, lanes), "");
	for (int r = 0; r < rows; r++) {
		set_lane(c, c->jam_rows, first, lane[r]);
		c->loop_var[l->id] = k;
		LLVMValueRef v = jv_emit(c, a->val, l, lanes, mask, memo);
		LLVMValueRef old = LLVMBuildLoad2(c->b, vt, acc[r], "");
		LLVMSetAlignment(old, (unsigned)c->real_size);
		LLVMValueRef nv = LLVMBuildSelect(c->b, mask, cg_contract(LLVMBuildFAdd(c->b, old, v, "")), old, "");
		LLVMValueRef st2 = LLVMBuildStore(c->b, nv, acc[r]);
		LLVMSetAlignment(st2, (unsigned)c->real_size);
	}
	c->loop_var[l->id] = saved;
	cg_cache_drop(c);
	for (int i = s->nloops - 2; i >= 0; i--)
		loop_close(c, &st[i]);
	/* the horizontal sums, `lanes` rows (padded to a power of two) at a time */
	for (int g0 = 0; g0 < rows; g0 += (int)lanes) {
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
		LLVMValueRef sums = jv_hsum(c, v, n, lanes);
		for (unsigned j = 0; j < n && g0 + (int)j < rows; j++) {
			set_lane(c, c->jam_rows, first, lane[g0 + (int)j]);
			store_elt(c, LLVMBuildExtractElement(c->b, sums, cg_i64(c, j), ""), cg_addr(c, a->buf, a->idx));
		}
	}
	free(memo);
}

/* The sums of statement s (a jammed sum over one loop, its summand passing
 * jv_summand) for `rows` rows (lanes lane[]) at `npos` values pk[] of the
 * position loop pl, which may move the sum's end (not its start).  Each
 * position's sum is computed in the steps of jam_sum_vec, so its bits are
 * those of jam_sum_vec's: jv_prepare computes the bounds, jv_fused runs
 * the full steps the positions have in common in one loop, where each loaded x[kk] serves every position
 * (register tiling: npos x rows accumulators); jv_finish(q), later,
 * position q's own full steps, its masked step and its rows' horizontal
 * sums. */
typedef struct jv_state {
	const ir_stmt *s;
	const ir_loop *l, *pl;
	LLVMValueRef first;
	const LLVMValueRef *lane;
	int rows, npos;
	LLVMValueRef pk[CG_JAM_POS], acc[CG_JAM_TILE], len[CG_JAM_POS], m[CG_JAM_POS], mmin, lo;
	signed char *memo;
} jv_state;

/* One loop of steps [j0, j1) of positions [q0, q1) together. */
static void jv_steps(cg_ctx *c, jv_state *st, LLVMValueRef j0, LLVMValueRef j1, int q0, int q1)
{
	const ir_val *v = st->s->assigns[0].val;
	LLVMValueRef V = cg_i64(c, 64 / c->real_size);
	LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
	LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "vsum");
	LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "vsum.body");
	LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "vsum.exit");
	LLVMBuildBr(c->b, head);
	LLVMPositionBuilderAtEnd(c->b, head);
	LLVMValueRef j = LLVMBuildPhi(c->b, c->i64, "vj");
	LLVMAddIncoming(j, &j0, &pre, 1);
	LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntULT, j, j1, ""), body, exit);
	LLVMPositionBuilderAtEnd(c->b, body);
	LLVMValueRef k = LLVMBuildNSWAdd(c->b, st->lo, LLVMBuildNSWMul(c->b, j, V, ""), "");
	LLVMValueRef saved = c->loop_var[st->pl->id];
	for (int q = q0; q < q1; q++) {
		c->loop_var[st->pl->id] = st->pk[q];
		jv_step(c, v, st->l, st->first, st->lane, st->acc + q * st->rows, st->rows, k, NULL, st->memo);
	}
	c->loop_var[st->pl->id] = saved;
	LLVMValueRef jn = LLVMBuildNUWAdd(c->b, j, cg_i64(c, 1), "");
	LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
	LLVMValueRef br = LLVMBuildBr(c->b, head);
	LLVMAddIncoming(j, &jn, &latch, 1);
	hint_vector_width(c, br, 1, 1); /* vector code already */
	LLVMPositionBuilderAtEnd(c->b, exit);
}

static bool jv_prepare(cg_ctx *c, jv_state *st, const ir_stmt *s, LLVMValueRef first, const LLVMValueRef *lane,
                     int rows, const ir_loop *pl, const LLVMValueRef *pk, int npos)
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
	LLVMValueRef saved = c->loop_var[pl->id];
	LLVMValueRef V = cg_i64(c, 64 / c->real_size), zero = cg_i64(c, 0);
	c->loop_var[pl->id] = pk[0];
	st->lo = cg_idx(c, st->l->lo);
	for (int q = 0; q < npos; q++) {
		st->pk[q] = pk[q];
		c->loop_var[pl->id] = pk[q];
		LLVMValueRef n = LLVMBuildNSWSub(c->b, cg_idx(c, st->l->hi), st->lo, "");
		st->len[q] = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, n, zero, ""), n, zero, "");
		st->m[q] = LLVMBuildUDiv(c->b, st->len[q], V, "");
		st->mmin = st->mmin ? LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntULT, st->m[q], st->mmin, ""),
		                                      st->m[q], st->mmin, "")
		                    : st->m[q];
	}
	c->loop_var[pl->id] = saved;
	for (int i = 0; i < npos * rows; i++) {
		st->acc[i] = entry_alloca(c, vt, "vacc");
		LLVMSetAlignment(LLVMBuildStore(c->b, LLVMConstNull(vt), st->acc[i]), (unsigned)c->real_size);
	}
	return true;
}

/* The full steps all positions have. */
static void jv_fused(cg_ctx *c, jv_state *st)
{
	jv_steps(c, st, cg_i64(c, 0), st->mmin, 0, st->npos);
	cg_cache_drop(c);
}

static void jv_end(jv_state *st)
{
	free(st->memo);
	st->memo = NULL;
}

/* Position q's own steps, its masked step and its rows' sums: row r's in
 * sums[r], or (out not NULL) out[r], stored a vector at a time. */
static void jv_finish(cg_ctx *c, jv_state *st, int q, LLVMValueRef *sums, LLVMValueRef out)
{
	unsigned lanes = (unsigned)(64 / c->real_size);
	LLVMTypeRef vt = LLVMVectorType(c->real, lanes);
	LLVMValueRef saved_pl = c->loop_var[st->pl->id], saved_l = c->loop_var[st->l->id];
	LLVMValueRef *acc = st->acc + q * st->rows;
	if (st->npos > 1)
		jv_steps(c, st, st->mmin, st->m[q], q, q + 1);
	c->loop_var[st->pl->id] = st->pk[q];
	LLVMValueRef used = LLVMBuildNSWMul(c->b, st->m[q], cg_i64(c, lanes), "");
	int iota[64];
	for (unsigned i = 0; i < lanes; i++)
		iota[i] = (int)i;
	LLVMValueRef left = LLVMBuildTrunc(c->b, LLVMBuildNSWSub(c->b, st->len[q], used, ""), c->i32, "");
	LLVMValueRef mask = LLVMBuildICmp(c->b, LLVMIntSLT, jv_mask_const(c, iota, lanes), jv_splat(c, left, lanes), "");
	jv_step(c, st->s->assigns[0].val, st->l, st->first, st->lane, acc, st->rows,
	        LLVMBuildNSWAdd(c->b, st->lo, used, ""), mask, st->memo);
	c->loop_var[st->pl->id] = saved_pl;
	c->loop_var[st->l->id] = saved_l;
	cg_cache_drop(c);
	/* the horizontal sums, `lanes` rows (padded to a power of two) at a time */
	for (int g0 = 0; g0 < st->rows; g0 += (int)lanes) {
		unsigned n = 1;
		while ((int)n < st->rows - g0 && n < lanes)
			n *= 2;
		LLVMValueRef v[64];
		for (unsigned i = 0; i < n; i++) {
			if (g0 + (int)i < st->rows) {
				v[i] = LLVMBuildLoad2(c->b, vt, acc[g0 + (int)i], "");
				LLVMSetAlignment(v[i], (unsigned)c->real_size);
			} else {
				v[i] = LLVMConstNull(vt);
			}
		}
		LLVMValueRef hs = jv_hsum(c, v, n, lanes);
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
				store_elt(c, x, LLVMBuildInBoundsGEP2(c->b, c->real, out, &at, 1, ""));
			} else {
				sums[g0 + (int)i] = x;
			}
		}
	}
}

/* A sum over loops for rows first + lane0 .. first + lane0 + lanes - 1 of a
 * full block: one loop, an accumulator per row. */
static void jam_sum(cg_ctx *c, const ir_stmt *s, LLVMValueRef first, LLVMValueRef lane0, int lanes)
{
	const ir_assign *a = &s->assigns[0];
	if (jv_summand(c, a->val, s->loops[s->nloops - 1])) {
		jam_sum_vec(c, s, first, lane0, lanes);
		return;
	}
	LLVMValueRef acc[CG_JAM_ROWS];
	for (int r = 0; r < lanes; r++) {
		acc[r] = entry_alloca(c, c->real, "acc");
		store_elt(c, cg_real_const(c, 0.0), acc[r]);
	}
	cg_loop st[CG_JAM_LOOPS];
	for (int i = 0; i < s->nloops; i++)
		open_stmt_loop(c, &st[i], s->loops[i]);
	for (int r = 0; r < lanes; r++) {
		set_lane(c, c->jam_rows, first, r ? LLVMBuildNSWAdd(c->b, lane0, cg_i64(c, r), "") : lane0);
		LLVMValueRef old = load_real(c, acc[r]);
		LLVMValueRef nv = LLVMBuildFAdd(c->b, old, cg_val(c, a->val), "");
		LLVMSetFastMathFlags(nv, LLVMFastMathAllowReassoc | LLVMFastMathAllowContract); /* as in cg_assign_stmt */
		store_elt(c, nv, acc[r]);
	}
	for (int i = s->nloops - 1; i >= 0; i--) {
		loop_close(c, &st[i]);
		if (i == s->nloops - 1)
			fix_sum_shape(c, st[i].latch);
	}
	for (int r = 0; r < lanes; r++) {
		set_lane(c, c->jam_rows, first, r ? LLVMBuildNSWAdd(c->b, lane0, cg_i64(c, r), "") : lane0);
		store_elt(c, load_real(c, acc[r]), cg_addr(c, a->buf, a->idx));
	}
}

/* Whether accumulation s can run in vectors (jam_add_vec): every target
 * shared by the rows and contiguous in the innermost loop, every value
 * computable in vectors (jv_kind). */
static bool jv_add_ok(cg_ctx *c, const ir_stmt *s, const ir_loop *rows)
{
	const ir_loop *l = s->loops[s->nloops - 1];
	for (int j = 0; j < s->nassigns; j++) {
		const ir_assign *a = &s->assigns[j];
		if (!shared_target(a, rows) || !jv_summand(c, a->val, l))
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
			set_lane(c, c->jam_rows, first, r ? LLVMBuildNSWAdd(c->b, lane0, cg_i64(c, r), "") : lane0);
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
		LLVMValueRef p = cg_addr(c, a->buf, a->idx);
		if (mask) {
			LLVMValueRef old = jv_masked(c, false, p, mask, NULL, vt);
			jv_masked(c, true, p, mask, LLVMBuildFAdd(c->b, old, total, ""), vt);
		} else {
			LLVMValueRef old = LLVMBuildLoad2(c->b, vt, p, "");
			LLVMSetAlignment(old, (unsigned)c->real_size);
			LLVMSetAlignment(LLVMBuildStore(c->b, LLVMBuildFAdd(c->b, old, total, ""), p), (unsigned)c->real_size);
		}
	}
}

/* jam_add when jv_add_ok: the outer loops as they are, the innermost in
 * steps of 64 bytes of lanes and one masked step for its remainder (no
 * scalar loop over the remainder for each row). */
static void jam_add_vec(cg_ctx *c, const ir_stmt *s, LLVMValueRef first, LLVMValueRef lane0, int rows)
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
		open_stmt_loop(c, &st[i], s->loops[i]);
	LLVMValueRef saved = c->loop_var[l->id];
	LLVMValueRef V = cg_i64(c, lanes), zero = cg_i64(c, 0);
	LLVMValueRef lo = cg_idx(c, l->lo), len = LLVMBuildNSWSub(c->b, cg_idx(c, l->hi), lo, "");
	len = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, len, zero, ""), len, zero, "");
	LLVMValueRef m = LLVMBuildUDiv(c->b, len, V, "");
	LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
	LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "vadd");
	LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "vadd.body");
	LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "vadd.exit");
	LLVMBuildBr(c->b, head);
	LLVMPositionBuilderAtEnd(c->b, head);
	LLVMValueRef j = LLVMBuildPhi(c->b, c->i64, "vj");
	LLVMAddIncoming(j, &zero, &pre, 1);
	LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntULT, j, m, ""), body, exit);
	LLVMPositionBuilderAtEnd(c->b, body);
	jv_add_step(c, s, l, first, lane0, rows, LLVMBuildNSWAdd(c->b, lo, LLVMBuildNSWMul(c->b, j, V, ""), ""), NULL,
	            memo);
	LLVMValueRef jn = LLVMBuildNUWAdd(c->b, j, cg_i64(c, 1), "");
	LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
	LLVMValueRef br = LLVMBuildBr(c->b, head);
	LLVMAddIncoming(j, &jn, &latch, 1);
	hint_vector_width(c, br, 1, 1); /* vector code already */
	LLVMPositionBuilderAtEnd(c->b, exit);
	LLVMValueRef used = LLVMBuildNSWMul(c->b, m, V, "");
	int iota[64];
	for (unsigned i = 0; i < lanes; i++)
		iota[i] = (int)i;
	LLVMValueRef left = LLVMBuildTrunc(c->b, LLVMBuildNSWSub(c->b, len, used, ""), c->i32, "");
	LLVMValueRef mask = LLVMBuildICmp(c->b, LLVMIntSLT, jv_mask_const(c, iota, lanes), jv_splat(c, left, lanes), "");
	jv_add_step(c, s, l, first, lane0, rows, LLVMBuildNSWAdd(c->b, lo, used, ""), mask, memo);
	c->loop_var[l->id] = saved;
	cg_cache_drop(c);
	for (int i = s->nloops - 2; i >= 0; i--)
		loop_close(c, &st[i]);
	free(memo);
}

/* Accumulations over loops for rows first + lane0 .. first + lane0 + lanes
 * - 1: into the rows' own buffers one by one, into a shared buffer the
 * rows' terms summed, then one load and store.  Values are computed once
 * per row (no value reads a target: jam_kind_of). */
static void jam_add(cg_ctx *c, const ir_stmt *s, LLVMValueRef first, LLVMValueRef lane0, int lanes)
{
	if (jv_add_ok(c, s, c->jam_rows)) {
		jam_add_vec(c, s, first, lane0, lanes);
		return;
	}
	cg_loop st[CG_JAM_LOOPS];
	LLVMValueRef *total = calloc((size_t)s->nassigns, sizeof *total);
	if (!total) {
		cg_fail(c, "out of memory");
		return;
	}
	for (int i = 0; i < s->nloops; i++)
		open_stmt_loop(c, &st[i], s->loops[i]);
	for (int r = 0; r < lanes; r++) {
		set_lane(c, c->jam_rows, first, r ? LLVMBuildNSWAdd(c->b, lane0, cg_i64(c, r), "") : lane0);
		for (int j = 0; j < s->nassigns; j++) {
			const ir_assign *a = &s->assigns[j];
			LLVMValueRef v = cg_val(c, a->val);
			if (shared_target(a, c->jam_rows)) {
				total[j] = total[j] ? cg_contract(LLVMBuildFAdd(c->b, total[j], v, "")) : v;
			} else {
				LLVMValueRef p = cg_addr(c, a->buf, a->idx);
				store_elt(c, cg_contract(LLVMBuildFAdd(c->b, load_real(c, p), v, "")), p);
			}
		}
	}
	for (int j = 0; j < s->nassigns; j++)
		if (total[j]) {
			const ir_assign *a = &s->assigns[j];
			LLVMValueRef p = cg_addr(c, a->buf, a->idx);
			store_elt(c, cg_contract(LLVMBuildFAdd(c->b, load_real(c, p), total[j], "")), p);
		}
	for (int i = s->nloops - 1; i >= 0; i--)
		loop_close(c, &st[i]);
	free(total);
}

/* The rows of block loop `bl` (s->loop), rows [lo, hi): the statements run
 * in groups, each group a loop over the rows, split at the statements that
 * run jammed.  When `given` is not NULL, the first statement is a sum
 * computed already (pair_positions): row r's value is given[r].  Returns
 * false when the caller should emit the plain loop. */
static bool cg_rows_of_block(cg_ctx *c, const ir_stmt *s, const ir_loop *bl, LLVMValueRef lo, LLVMValueRef hi,
                             LLVMValueRef given)
{
	if (c->o->opt_level <= 0 || !c->lane_stride || c->lane || bl->block < 2 || bl->block > CG_JAM_ROWS)
		return false;
	const ir_loop *rows = s->loop;
	size_t n = s->body.stmts.len;
	jam_kind *kinds = calloc(n + 1, sizeof *kinds);
	if (!kinds)
		return false;
	bool any = false;
	for (size_t i = 0; i < n; i++)
		if (s->body.stmts.items[i])
			any |= (kinds[i] = jam_kind_of(c, s->body.stmts.items[i], rows)) != JAM_NONE;
	if (!any) {
		free(kinds);
		return false;
	}
	cg_row saved_row = c->row;
	LLVMValueRef saved_var = c->loop_var[rows->id];
	const ir_loop *saved_rows = c->jam_rows;
	c->jam_rows = rows;
	LLVMValueRef count = LLVMBuildNSWSub(c->b, hi, lo, "");
	LLVMValueRef full = LLVMBuildICmp(c->b, LLVMIntEQ, count, cg_i64(c, bl->block), "");
	for (size_t i = 0; i < n;) {
		if (i == 0 && given) {
			const ir_assign *a = &((const ir_stmt *)s->body.stmts.items[0])->assigns[0];
			cg_loop st;
			loop_open(c, &st, NULL, cg_i64(c, 0), count, false);
			set_lane(c, rows, lo, st.iv);
			LLVMValueRef p = LLVMBuildInBoundsGEP2(c->b, c->real, given, &st.iv, 1, "");
			store_elt(c, load_real(c, p), cg_addr(c, a->buf, a->idx));
			loop_close(c, &st);
			hint_vector_width(c, st.latch, (int)bl->block, 0);
			i++;
			continue;
		}
		if (kinds[i] == JAM_NONE) {
			/* a loop over the rows for each run of statements that are
			 * all straight-line per row (vectorized across the rows) or
			 * all not (one row at a time) */
			const ir_stmt *t = s->body.stmts.items[i];
			bool straight = !t || per_row_straight(c, t);
			size_t j = i + 1;
			while (j < n && kinds[j] == JAM_NONE &&
			       (!s->body.stmts.items[j] || per_row_straight(c, s->body.stmts.items[j]) == straight))
				j++;
			rows_each(c, s, i, j, lo, count, (int)bl->block);
			i = j;
			continue;
		}
		/* a full block jammed; the last, partial one row by row in the
		 * same loop shapes (a row's sum never depends on the split, and a
		 * call of one row does the work of one) */
		const ir_stmt *t = s->body.stmts.items[i];
		LLVMBasicBlockRef fullb = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "rows.full");
		LLVMBasicBlockRef part = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "rows.partial");
		LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "rows.done");
		LLVMBuildCondBr(c->b, full, fullb, part);
		LLVMPositionBuilderAtEnd(c->b, fullb);
		if (kinds[i] == JAM_SUM)
			jam_sum(c, t, lo, cg_i64(c, 0), (int)bl->block);
		else
			jam_add(c, t, lo, cg_i64(c, 0), (int)bl->block);
		LLVMBuildBr(c->b, done);
		LLVMPositionBuilderAtEnd(c->b, part);
		cg_loop one;
		loop_open(c, &one, NULL, cg_i64(c, 0), count, false);
		if (kinds[i] == JAM_SUM)
			jam_sum(c, t, lo, one.iv, 1);
		else
			jam_add(c, t, lo, one.iv, 1);
		loop_close(c, &one);
		LLVMBuildBr(c->b, done);
		LLVMMoveBasicBlockAfter(done, LLVMGetInsertBlock(c->b));
		LLVMPositionBuilderAtEnd(c->b, done);
		i++;
	}
	c->jam_rows = saved_rows;
	c->lane = NULL;
	c->row = saved_row;
	c->loop_var[rows->id] = saved_var;
	cg_cache_drop(c);
	free(kinds);
	return true;
}

/* Whether a statement of block b (from its statement `from` on, nested
 * bodies included) writes a buffer that value v, or index lo or hi,
 * reads. */
static bool writes_read(cg_ctx *c, const ir_block *b, size_t from, const ir_val *v, const ir_idx *lo,
                        const ir_idx *hi)
{
	for (size_t i = from; i < b->stmts.len; i++) {
		const ir_stmt *t = b->stmts.items[i];
		if (!t)
			continue;
		if (t->kind == S_FOR || t->kind == S_IF_GE) {
			if (writes_read(c, &t->body, 0, v, lo, hi))
				return true;
			continue;
		}
		for (int j = 0; j < t->nassigns; j++) {
			const ir_buf *w = t->assigns[j].buf;
			bool *seen = calloc((size_t)c->nids, sizeof *seen);
			bool r = !seen || val_reads(c, v, w, seen) || ir_idx_reads(lo, w) || ir_idx_reads(hi, w);
			free(seen);
			if (r)
				return true;
		}
	}
	return false;
}

/* x as cf * L + k0 with constants cf and k0 (false when it is not). */
static bool idx_affine(const ir_idx *x, const ir_loop *L, int64_t *cf, int64_t *k0)
{
	int64_t ca, ka, cb, kb;
	if (!x)
		return false;
	switch (x->kind) {
	case IX_CONST: *cf = 0; *k0 = x->u.c; return true;
	case IX_LOOP: *cf = 1; *k0 = 0; return x->u.loop == L;
	case IX_ADD: case IX_SUB: case IX_MUL:
		if (!idx_affine(x->u.bin.a, L, &ca, &ka) || !idx_affine(x->u.bin.b, L, &cb, &kb))
			return false;
		if (x->kind == IX_MUL) {
			if (ca != 0 && cb != 0)
				return false;
			*cf = ca * kb + cb * ka;
			*k0 = ka * kb;
		} else {
			int64_t sg = x->kind == IX_ADD ? 1 : -1;
			*cf = ca + sg * cb;
			*k0 = ka + sg * kb;
		}
		return true;
	default: return false;
	}
}

/* The largest c of v's reads w[kk + c] (kk: loop l); false when v reads w
 * in another way. */
static bool reads_ahead(cg_ctx *c, const ir_val *v, const ir_buf *w, const ir_loop *l, int64_t *cmax)
{
	if (!v)
		return true;
	switch (v->kind) {
	case V_READ: {
		for (int i = 0; i < IR_MAX_RANK; i++) {
			bool *seen = calloc((size_t)c->nids, sizeof *seen);
			bool r = seen && i < v->u.read.buf->rank && ir_idx_reads(v->u.read.idx[i], w);
			free(seen);
			if (r)
				return false;
		}
		if (v->u.read.buf != w)
			return true;
		int64_t cf, k0;
		if (w->rank != 1 || !idx_affine(v->u.read.idx[0], l, &cf, &k0) || cf != 1)
			return false;
		if (k0 > *cmax)
			*cmax = k0;
		return true;
	}
	case V_OP:
		for (int i = 0; i < 3; i++)
			if (!reads_ahead(c, v->u.op.a[i], w, l, cmax))
				return false;
		return true;
	case V_STOP: return reads_ahead(c, v->u.stop, w, l, cmax);
	case V_CONST: return true;
	default: {
		bool *seen = calloc((size_t)c->nids, sizeof *seen);
		bool r = seen && !val_reads(c, v, w, seen);
		free(seen);
		return r;
	}
	}
}

/* Whether every write of block b (statements of its own or under
 * branches) to what sum t reads is ahead of what the common steps of a
 * group of positions read: a single element w[L + dw] of a rank-1 buffer
 * that the summand reads as w[kk + c] only, with dw >= (t's end - L) +
 * every c (FVSBN's sampling writes x[k], its sums read x[kk] for kk < k).
 * The common steps read below the first position's end, so the writes of
 * a group's earlier positions never reach them; each later position's
 * own steps run after them (pair_positions). */
static bool writes_ahead(cg_ctx *c, const ir_block *b, const ir_stmt *t, const ir_loop *L)
{
	const ir_loop *l = t->loops[0];
	int64_t hc, hk;
	if (!idx_affine(l->hi, L, &hc, &hk) || hc != 1)
		return false;
	for (size_t i = 0; i < b->stmts.len; i++) {
		const ir_stmt *u = b->stmts.items[i];
		if (!u)
			continue;
		if (u->kind == S_IF_GE) {
			if (!writes_ahead(c, &u->body, t, L))
				return false;
			continue;
		}
		if (u->kind == S_FOR) {
			if (writes_read(c, &u->body, 0, t->assigns[0].val, l->lo, l->hi))
				return false;
			continue;
		}
		for (int j = 0; j < u->nassigns; j++) {
			const ir_buf *w = u->assigns[j].buf;
			bool *seen = calloc((size_t)c->nids, sizeof *seen);
			bool r = !seen || val_reads(c, t->assigns[0].val, w, seen);
			free(seen);
			if (!r)
				continue;
			if (ir_idx_reads(l->lo, w) || ir_idx_reads(l->hi, w) || u->nloops != 0 || w->rank != 1)
				return false;
			int64_t cf, dw, cmax = INT64_MIN;
			if (!idx_affine(u->assigns[j].idx[0], L, &cf, &dw) || cf != 1 ||
			    !reads_ahead(c, t->assigns[0].val, w, l, &cmax) || cmax == INT64_MIN || dw < hk + cmax)
				return false;
		}
	}
	return true;
}

/* The sums of rows [0, count) of a block at positions pk[0..npos) of L for
 * a partial block, a row at a time: row r's at res[q * block + r]. */
static void pair_partial(cg_ctx *c, const ir_stmt *t, LLVMValueRef rlo, LLVMValueRef count, const ir_loop *L,
                         const LLVMValueRef *pk, int npos, int q0, LLVMValueRef res, int block)
{
	cg_loop one;
	loop_open(c, &one, NULL, cg_i64(c, 0), count, false);
	jv_state st;
	LLVMValueRef sums[1];
	if (jv_prepare(c, &st, t, rlo, &one.iv, 1, L, pk, npos)) {
		jv_fused(c, &st);
		for (int q = 0; q < npos; q++) {
			jv_finish(c, &st, q, sums, NULL);
			LLVMValueRef at = LLVMBuildNSWAdd(c->b, one.iv, cg_i64(c, (q0 + q) * block), "");
			store_elt(c, sums[0], LLVMBuildInBoundsGEP2(c->b, c->real, res, &at, 1, ""));
		}
		jv_end(&st);
	}
	loop_close(c, &one);
}

/* A loop over positions whose body is the rows of a block, starting with a
 * jammed sum in vectors whose start does not depend on the position, and
 * whose inputs the body does not write, or writes only ahead of them
 * (writes_ahead: FVSBN's sampling): the positions run in groups of P, the
 * sums of all computed together as far as they can be (jv_fused: each
 * x[kk] loaded once for P positions of each row, W[k, kk] once for all
 * rows), then each position's statements in turn, its sums finished
 * (jv_finish) just before them when the body writes ahead.  A position's
 * sum has the bits it has alone (jv_state), so a partial block finishes
 * its rows one at a time, and the last len mod P positions run alone.
 * Returns false when s is not such a loop. */
static bool pair_positions(cg_ctx *c, const ir_stmt *s)
{
	const ir_loop *L = s->loop;
	if (c->o->opt_level <= 0 || !c->lane_stride || c->lane || L->is_rows || L->reverse || s->reverse ||
	    s->body.stmts.len != 1)
		return false;
	const ir_stmt *rs = s->body.stmts.items[0];
	if (!rs || rs->kind != S_FOR || !rs->loop || !rs->loop->is_rows || !rs->loop->block_of)
		return false;
	const ir_loop *rows = rs->loop, *bl = rows->block_of;
	if (bl->block < 2 || bl->block > CG_JAM_TILE / 2 || bl->id < 0 || bl->id >= c->nids || !c->loop_var[bl->id] ||
	    rs->body.stmts.len < 1)
		return false;
	int P = CG_JAM_TILE / (int)bl->block; /* positions together */
	if (P > CG_JAM_POS)
		P = CG_JAM_POS;
	const ir_stmt *t = rs->body.stmts.items[0];
	if (!t || jam_kind_of(c, t, rows) != JAM_SUM || t->nloops != 1 || !idx_free_of(t->loops[0]->lo, L) ||
	    !jv_summand(c, t->assigns[0].val, t->loops[0]))
		return false;
	bool ahead = false; /* the body writes ahead of the sums: each finished late */
	if (writes_read(c, &rs->body, 0, t->assigns[0].val, t->loops[0]->lo, t->loops[0]->hi)) {
		if (!writes_ahead(c, &rs->body, t, L))
			return false;
		ahead = true;
	}
	int block = (int)bl->block;
	LLVMValueRef n = c->n ? c->n : cg_i64(c, 1);
	LLVMValueRef rlo = c->loop_var[bl->id];
	LLVMValueRef end = LLVMBuildNSWAdd(c->b, rlo, cg_i64(c, block), "");
	LLVMValueRef rhi = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, end, n, ""), end, n, "");
	LLVMValueRef count = LLVMBuildNSWSub(c->b, rhi, rlo, "");
	LLVMValueRef full = LLVMBuildICmp(c->b, LLVMIntEQ, count, cg_i64(c, block), "");
	LLVMValueRef plo = cg_idx(c, L->lo), zero = cg_i64(c, 0);
	LLVMValueRef len = LLVMBuildNSWSub(c->b, cg_idx(c, L->hi), plo, "");
	len = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, len, zero, ""), len, zero, "");
	LLVMValueRef ngroups = LLVMBuildUDiv(c->b, len, cg_i64(c, P), "");
	LLVMValueRef res = entry_alloca(c, LLVMArrayType(c->real, (unsigned)(P * block)), "pair");
	LLVMValueRef saved_pos = c->loop_var[L->id], saved_rowvar = c->loop_var[rows->id];
	const ir_loop *saved_rows = c->jam_rows;
	cg_row saved_row = c->row;
	cg_loop pst;
	loop_open(c, &pst, NULL, zero, ngroups, false);
	LLVMValueRef k = LLVMBuildNSWAdd(c->b, plo, LLVMBuildNSWMul(c->b, pst.iv, cg_i64(c, P), ""), "");
	LLVMValueRef pk[CG_JAM_POS], lane[CG_JAM_ROWS];
	for (int q = 0; q < P; q++)
		pk[q] = q ? LLVMBuildNSWAdd(c->b, k, cg_i64(c, q), "") : k;
	for (int r = 0; r < block; r++)
		lane[r] = cg_i64(c, r);
	c->jam_rows = rows;
	jv_state fst;
	if (!jv_prepare(c, &fst, t, rlo, lane, block, L, pk, P)) {
		c->jam_rows = saved_rows;
		return true; /* cg_fail said why */
	}
	int now = ahead ? 1 : P; /* positions finished before any statement runs */
	for (int q = 0; q < P; q++) {
		if (q == 0 || q >= now) {
			/* position q's sums (with q = 0, all the sums that can run now):
			 * a full block together, a partial one a row at a time */
			c->jam_rows = rows;
			LLVMBasicBlockRef fullb = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "pair.full");
			LLVMBasicBlockRef part = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "pair.partial");
			LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "pair.done");
			LLVMBuildCondBr(c->b, full, fullb, part);
			LLVMPositionBuilderAtEnd(c->b, fullb);
			if (q == 0)
				jv_fused(c, &fst);
			for (int f = q; f < (q == 0 ? now : q + 1); f++) {
				LLVMValueRef at = cg_i64(c, f * block);
				jv_finish(c, &fst, f, NULL, LLVMBuildInBoundsGEP2(c->b, c->real, res, &at, 1, ""));
			}
			LLVMBuildBr(c->b, done);
			LLVMPositionBuilderAtEnd(c->b, part);
			pair_partial(c, t, rlo, count, L, pk + q, q == 0 ? now : 1, q, res, block);
			LLVMBuildBr(c->b, done);
			LLVMMoveBasicBlockAfter(done, LLVMGetInsertBlock(c->b));
			LLVMPositionBuilderAtEnd(c->b, done);
			c->jam_rows = saved_rows;
			c->lane = NULL;
			c->row = saved_row;
			c->loop_var[rows->id] = saved_rowvar;
			cg_cache_drop(c);
		}
		c->loop_var[L->id] = pk[q];
		LLVMValueRef at = cg_i64(c, q * block);
		cg_rows_of_block(c, rs, bl, rlo, rhi, LLVMBuildInBoundsGEP2(c->b, c->real, res, &at, 1, ""));
	}
	jv_end(&fst);
	loop_close(c, &pst);
	/* the last len mod P positions alone */
	cg_loop lst;
	loop_open(c, &lst, NULL, LLVMBuildNSWMul(c->b, ngroups, cg_i64(c, P), ""), len, false);
	c->loop_var[L->id] = LLVMBuildNSWAdd(c->b, plo, lst.iv, "");
	cg_rows_of_block(c, rs, bl, rlo, rhi, NULL);
	loop_close(c, &lst);
	c->loop_var[L->id] = saved_pos;
	cg_cache_drop(c);
	return true;
}

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
	loop_open(c, &st, l, lo, hi, l->reverse || s->reverse);
	cg_row saved = c->row;
	if (l->is_rows && l->block > 0) {
		/* the body sees the block's first row, not the block's number */
		c->loop_var[l->id] = LLVMBuildNSWMul(c->b, st.iv, cg_i64(c, l->block), "");
	} else if (l->is_rows) {
		point_row(c, st.iv);
	}
	cg_block(c, &s->body);
	c->row = saved;
	loop_close(c, &st);
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

static void cg_stmt(cg_ctx *c, const ir_stmt *s)
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
	return load_real(c, cg_addr(c, r, idx));
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

/* The call a plan puts in place of its statements: the callee with the
 * caller's arguments; its return value into the plan's result, and n as a
 * real into the counter.  The counter counted `+= 1` once per row of a
 * rows loop over [0, n) (no iteration when n >= 2^63, compared as signed),
 * which is exact up to 2^p (p the mantissa bits) and then stays there, as
 * 2^p + 1 rounds to 2^p: so it is min(n, 2^p), exactly. */
static void emit_call(cg_ctx *c, const cg_call_plan *p)
{
	ir_kernel_kind kind = p->callee->kind;
	/* one row's out starts as NaN: what stays if the callee cannot get
	 * its scratch, as a kernel returning a real then returns */
	LLVMValueRef one_out = NULL;
	if (p->one_row) {
		one_out = entry_alloca(c, c->real, "out");
		store_elt(c, cg_real_const(c, NAN), one_out);
	}
	LLVMValueRef args[7];
	unsigned n = 0;
	for (; kernel_args[kind][n] != A_END; n++)
		args[n] = role_value(c, kernel_args[kind][n], p, one_out);
	LLVMValueRef r = LLVMBuildCall2(c->b, cg_kernel_type(c, kind), c->kernel_fn[kind], args, n, "");
	if (p->one_row)
		r = load_real(c, one_out);
	ir_idx zero = { .kind = IX_CONST };
	ir_idx *idx[IR_MAX_RANK] = { &zero, &zero, &zero };
	if (p->result)
		store_elt(c, r, cg_addr(c, p->result, idx));
	if (p->counter) {
		LLVMValueRef cap = cg_i64(c, (int64_t)1 << (c->o->f32 ? 24 : 53));
		LLVMValueRef big = LLVMBuildICmp(c->b, LLVMIntUGT, c->n, cap, "");
		LLVMValueRef rows = LLVMBuildSelect(c->b, big, cap, c->n, "");
		rows = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, c->n, cg_i64(c, 0), ""), cg_i64(c, 0), rows, "");
		store_elt(c, LLVMBuildUIToFP(c->b, rows, c->real, "count"), cg_addr(c, p->counter, idx));
	}
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
	scan_block(c, &sc, &k->nograd_body);
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
			region = entry_alloca(c, LLVMArrayType2(c->real, (uint64_t)total), "scratch");
			LLVMSetAlignment(region, 64);
			LLVMBuildMemSet(c->b, region, LLVMConstInt(c->i8, 0, 0), cg_i64(c, (int64_t)bytes), 64);
		} else {
			LLVMValueRef args[2] = { cg_i64(c, total), cg_i64(c, c->real_size) };
			region = heap = scratch_alloc(c, "calloc", args, 2, NULL, 0, failed);
		}
		point_temps(c, &sc, off, region, false);
	}
	/* the temps written before they are read (layout.c's copies of params,
	 * n x H reals and more): malloc'd, not zeroed, so that a call of a few
	 * rows, which touches a few of their columns, pays for no more */
	LLVMValueRef big = NULL;
	if (total_big > 0 && off) {
		LLVMValueRef size = cg_i64(c, total_big * c->real_size);
		big = scratch_alloc(c, "malloc", &size, 1, &heap, 1, failed);
		point_temps(c, &sc, off, big, true);
	}

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
		cg_block(c, &k->nograd_body);
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
	c->k = NULL;
}
