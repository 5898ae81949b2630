/* cg_context.h -- the state of code generation, shared by cg_*.c and jit.c.
 *
 * One cg_ctx lives for one cg_generate call: the LLVM module being built,
 * the types for the chosen precision, module-wide declarations (runtime
 * functions, constant buffers) and the per-kernel state (arguments, scratch
 * pointers, the loop variables in scope, the current row, and the cache
 * that emits each hash-consed ir_val once per loop body).  The files split
 * by construct, around this one context:
 *   cg_expr.c    index and scalar expressions, buffer addressing, math
 *   cg_kernel.c  kernels: signatures, scratch, statements and loops
 *   cg_rows.c, cg_jam_vec.c, cg_pair_positions.c
 *                the rows of a block, their sums and accumulations in
 *                vectors, positions in pairs (cg_kernel_internal.h)
 *   cg_share.c   kernels (or stretches of them) that are a call of another
 *   cg_model.c   the M_model descriptor global
 *   cg_emit.c    target machine, verification, passes, output files
 *   cg_header.c  M.h
 * Only these files and jit.c include llvm-c.
 */
#ifndef CG_CONTEXT_H
#define CG_CONTEXT_H

#include <llvm-c/Core.h>
#include <llvm-c/Orc.h>
#include <llvm-c/TargetMachine.h>

#include "chainc.h"

/* What cg_generate hands to cg_emit and jit_load.  The module lives in the
 * LLVMContext of a ThreadSafeContext, so that jit_load can move it into the
 * JIT as a ThreadSafeModule; the strings say how to rebuild a target
 * machine for the JIT. */
struct cg_unit {
	LLVMOrcThreadSafeContextRef tsctx;
	LLVMContextRef ctx;          /* owned by tsctx */
	LLVMModuleRef mod;           /* NULL once moved into the JIT */
	LLVMTargetMachineRef tm;
	char *triple, *cpu, *features; /* malloc'd */
	int opt_level;
	char *descriptor;            /* "<model>_model", malloc'd */
	char *llvm_error;            /* the first error LLVM reported through the context's
	                                diagnostic handler (malloc'd): the output is void */
};

/* The diagnostic handler of a unit's context (cg_emit.c): LLVM's first
 * error goes to unit->llvm_error, where the build fails with it; a NULL
 * unit (a context that outlives it) prints the error. */
void cg_llvm_diagnostic(LLVMDiagnosticInfoRef info, void *unit);

/* The loop variables in scope and the current row, restored on loop exit. */
typedef struct cg_row {
	LLVMValueRef ptr;            /* obs + r * OBS_SIZE, or obs outside rows loops */
	LLVMValueRef r;              /* the rows counter (i64), NULL outside rows loops */
} cg_row;

typedef struct cg_ctx {
	const ir_module *m;
	const cg_options *o;
	LLVMContextRef ctx;
	LLVMModuleRef mod;
	LLVMBuilderRef b;
	LLVMTargetDataRef td;        /* the target machine's data layout */
	char *err;                   /* the first error (malloc'd); generation goes on with dummies */

	/* types */
	LLVMTypeRef real, i1, i8, i32, i64, ptr, void_t;
	int real_size;               /* bytes */

	/* module-wide */
	int nids;                    /* ids of bufs, loops and vals are < nids */
	LLVMValueRef *const_global;  /* by buf id: CONST buffers' globals */
	LLVMValueRef kernel_fn[KER__COUNT];
	bool cold[KER__COUNT];       /* rarely run, or its heavy part is a call: a light pipeline */

	/* per kernel */
	const ir_kernel *k;
	LLVMValueRef fn;
	LLVMBasicBlockRef entry;     /* allocas go here, before its terminator */
	LLVMValueRef theta, obs, n, grad, out, seed, first, prefix; /* NULL when absent */
	LLVMValueRef *temp_ptr;      /* by buf id: the scratch of each TEMP buffer */
	int64_t *lane_stride;        /* by buf id: a TEMP written in the rows of a block has
	                                one copy per row of the block, this many reals
	                                apart (cg_rows.c, jammed rows); 0: one copy */
	LLVMValueRef lane;           /* in the rows of a block: the row's place in it (i64),
	                                whose copies of such TEMPs are used; else NULL */
	const ir_loop *jam_rows;     /* the rows of a block loop being emitted, or NULL */
	LLVMValueRef *loop_var;      /* by loop id: the counter while in scope */
	LLVMValueRef *temp_scope;    /* by buf id: a TEMP's !alias.scope list, or NULL */
	LLVMValueRef *temp_noalias;  /* by buf id: the other TEMPs' scopes (!noalias) */
	cg_row row;

	/* the value cache of the current innermost body: vcache[id] is valid
	 * when vstamp[id] == stamp; bumping stamp drops it all */
	LLVMValueRef *vcache;
	unsigned *vstamp;
	unsigned stamp;
} cg_ctx;

/* cg_emit.c */
void cg_fail(cg_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *cg_strdup(const char *s);

/* cg_expr.c */
LLVMValueRef cg_idx(cg_ctx *c, const ir_idx *x);
LLVMValueRef cg_val(cg_ctx *c, const ir_val *v);
LLVMValueRef cg_addr(cg_ctx *c, const ir_buf *b, ir_idx *const *idx);
/* Tells LLVM that mem (a load, store or masked access of buffer b) touches
 * b's scratch only (cg_kernel.c); nothing for other buffers. */
LLVMValueRef cg_tag_temp(cg_ctx *c, LLVMValueRef mem, const ir_buf *b);
LLVMValueRef cg_real_const(cg_ctx *c, double d);
LLVMValueRef cg_i64(cg_ctx *c, int64_t v);
LLVMValueRef cg_call_intrinsic(cg_ctx *c, const char *name, LLVMValueRef *args, unsigned nargs);
LLVMValueRef cg_runtime_fn(cg_ctx *c, const char *name, LLVMTypeRef ret, LLVMTypeRef *params,
                           unsigned nparams, bool pure, LLVMTypeRef *fn_type);
void cg_cache_drop(cg_ctx *c);

/* cg_math.c: elementary functions the vectorizer can take */
LLVMValueRef cg_contract(LLVMValueRef v);
bool cg_draw_inline(const cg_ctx *c, const ir_val *v);
LLVMValueRef cg_exp(cg_ctx *c, LLVMValueRef x);
LLVMValueRef cg_exp_nonpos(cg_ctx *c, LLVMValueRef x); /* x <= 0 or NaN */
LLVMValueRef cg_log1p(cg_ctx *c, LLVMValueRef x);
LLVMValueRef cg_log1p_unit(cg_ctx *c, LLVMValueRef x); /* x in [0, 1] or NaN */

/* cg_share.c: a stretch of a kernel's top-level statements that does
 * exactly what another kernel's whole body does, so a call can replace it */
typedef struct cg_call_plan {
	const ir_kernel *callee;     /* NULL: no call */
	size_t from, to;             /* the caller's top-level statements [from, to) */
	const ir_buf *result;        /* a scalar temp that gets the callee's return value, or NULL */
	const ir_buf *counter;       /* a scalar temp that gets n as a real (see cg_share.c), or NULL */
	bool prefix_zero;            /* the call passes prefix 0 */
	bool one_row;                /* the call passes n = 1 and a one-real out, read into result */
} cg_call_plan;
bool cg_plan_call(cg_ctx *c, const ir_kernel *k, cg_call_plan *p);

/* cg_kernel.c */
LLVMTypeRef cg_kernel_type(cg_ctx *c, ir_kernel_kind kind);
void cg_declare_kernel(cg_ctx *c, const ir_kernel *k);
void cg_kernel(cg_ctx *c, const ir_kernel *k);

/* cg_model.c */
void cg_model_descriptor(cg_ctx *c);
const char *cg_kernel_suffix(ir_kernel_kind kind);

#endif
