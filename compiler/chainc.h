/* chainc.h -- the chain compiler, one section per stage of the pipeline:
 *
 *   model.chain --lexer/parser--> AST --check--> typed AST --lower--> IR
 *       --ad--> IR + adjoint IR --opt--> IR --cg--> LLVM module
 *       --> object file + header (chain build)  |  LLJIT (chain train ...)
 *
 * Everything a compilation allocates lives in one arena (arena_*); there is
 * no global mutable state, so two models compile in one process.
 */
#ifndef CHAINC_H
#define CHAINC_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ------------------------------------------------------------------ arena */

typedef struct arena arena;
arena *arena_new(void);
void arena_free(arena *a);
void *arena_alloc(arena *a, size_t size);            /* zeroed, 16-aligned */
char *arena_strdup(arena *a, const char *s);
char *arena_strndup(arena *a, const char *s, size_t n);
char *arena_printf(arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A growable array of pointers in an arena. */
typedef struct ptrvec {
	void **items;
	size_t len, cap;
} ptrvec;
void ptrvec_push(arena *a, ptrvec *v, void *item);

/* A map from pointers to pointers in an arena (a hash table: a lookup
 * costs the same among a hundred thousand keys as among ten). */
typedef struct ptrmap {
	const void **keys;
	void **vals;
	size_t len, cap;
} ptrmap;
void ptrmap_put(arena *a, ptrmap *m, const void *key, void *val); /* replaces key's value */
void *ptrmap_get(const ptrmap *m, const void *key);               /* NULL when absent */

/* A hash of a string for tables whose size is a power of two (FNV-1a, its
 * high half folded in, so that the low bits depend on every byte). */
uint64_t str_hash(const char *s);

/* ------------------------------------------------------------ diagnostics */

/* A source span: byte offsets [begin, end) in file `file` of the diag
 * context.  Turned into line:col only when printed. */
typedef struct span {
	uint32_t file, begin, end;
} span;

typedef struct src_file {
	const char *name;   /* as given on the command line, or "<stdlib>/x.chain" */
	const char *text;   /* NUL-terminated; may contain other NULs (binary garbage) */
	size_t len;
} src_file;

typedef enum diag_level { DIAG_ERROR, DIAG_WARNING, DIAG_NOTE } diag_level;

typedef struct diag {
	diag_level level;
	span where;
	char *msg;
} diag;

/* Collects the diagnostics of one compilation.  Errors never stop the stage
 * that finds them; each stage runs to its end and the driver stops between
 * stages when errors were reported. */
typedef struct diag_ctx {
	arena *arena;
	ptrvec files;       /* src_file* */
	ptrvec diags;       /* diag*, in the order reported */
	int errors;
	int max_errors;     /* past this many errors, more are counted but dropped (default 50) */
} diag_ctx;

void diag_init(diag_ctx *d, arena *a);
uint32_t diag_add_file(diag_ctx *d, const char *name, const char *text, size_t len);
void diag_error(diag_ctx *d, span where, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_warning(diag_ctx *d, span where, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A note attached to the preceding error or warning. */
void diag_note(diag_ctx *d, span where, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* 1-based line and column (in bytes) of a byte offset. */
void diag_line_col(const diag_ctx *d, uint32_t file, uint32_t offset, unsigned *line, unsigned *col);
/* Prints every diagnostic as
 *     file:line:col: error: message
 *      14 |   x[i] ~ bernoulli_logit(b[i] + x[i])
 *         |                                 ^~~~
 * (color escapes only when `color`), then "N errors" if more were dropped. */
void diag_print(const diag_ctx *d, FILE *out, bool color);

/* -------------------------------------------------------------------- AST */

typedef struct expr expr;
typedef struct decl decl;
typedef struct sym sym;

typedef enum expr_kind {
	E_ERROR,      /* a syntax error was reported here; no fields */
	E_NUM,        /* number literal: u.num */
	E_NAME,       /* identifier: u.name (resolved by check into e->sym) */
	E_INDEX,      /* u.index: base[args...]; an arg may be E_SLICE */
	E_SLICE,      /* a bare ':' in an index list; no fields */
	E_CALL,       /* u.call: name(args...): functions, families, uniform(), expected(r), kl(ref) */
	E_UNARY,      /* u.unary: op is '-' */
	E_BINARY,     /* u.binary: op is one of binop */
	E_SUM_BEFORE, /* u.sum: sum(var before pos) body */
	E_SUM_RANGE,  /* u.sum: sum(var in lo..hi) body */
	E_IF,         /* u.cond: if c then a else b */
	E_ARRAY,      /* u.array: [e, e, ...] (nested for matrices; const values) */
} expr_kind;

typedef enum binop {
	OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_POW, OP_MATMUL,
	OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE, OP_AND, OP_OR,
} binop;

typedef struct exprvec {
	expr **items;
	size_t len;
} exprvec;

/* The shape a checked expression has: rank 0 (scalar), 1 or 2. */
#define SHAPE_MAX_RANK 2
typedef struct shape {
	int rank;
	int64_t dims[SHAPE_MAX_RANK];
} shape;

struct expr {
	expr_kind kind;
	span where;
	union {
		double num;                                   /* E_NUM */
		const char *name;                             /* E_NAME */
		struct { expr *base; exprvec args; } index;   /* E_INDEX */
		struct { const char *name; span name_where; exprvec args; } call; /* E_CALL */
		struct { int op; expr *operand; } unary;      /* E_UNARY */
		struct { binop op; expr *lhs, *rhs; } binary; /* E_BINARY */
		struct {                                      /* E_SUM_BEFORE, E_SUM_RANGE */
			const char *var; span var_where;
			const char *pos;                          /* E_SUM_BEFORE: the position name (i) */
			span pos_where;
			expr *lo, *hi;                            /* E_SUM_RANGE: inclusive bounds */
			expr *body;
		} sum;
		struct { expr *c, *a, *b; } cond;             /* E_IF */
		exprvec array;                                /* E_ARRAY */
	} u;
	/* filled in by check: */
	shape shape;
	bool is_int;        /* an integer-valued index expression */
	sym *sym;           /* E_NAME: what it names; E_CALL: the family or function */
};

/* A value kind: bin, cat(K), int or real, with a shape. */
typedef enum val_kind { K_BIN, K_CAT, K_INT, K_REAL } val_kind;

typedef struct type_expr {
	val_kind kind;
	expr *cat_k;        /* K_CAT: the K expression */
	exprvec dims;       /* empty: scalar */
	span where;
} type_expr;

typedef enum decl_kind {
	D_ERROR,     /* a declaration with a syntax error; no fields */
	D_MODEL,     /* model NAME */
	D_DIM,       /* dim NAME = value */
	D_DATA,      /* data NAME : type */
	D_INPUT,     /* input NAME : type */
	D_PARAM,     /* param NAME : type [~ init] */
	D_CONST,     /* const NAME : type = value */
	D_EXTERN,    /* extern NAME(args) -> type */
	D_FAMILY,    /* family NAME(params) on KIND { logp(v) = e; let ...; sample = e } */
	D_ORDER,     /* order item, item, ... */
	D_LET,       /* let NAME[idx] = value  |  let NAME = value */
	D_COND,      /* target[idx] ~ family(args)  |  target ~ family(args) */
	D_OBJECTIVE, /* maximize e | minimize e [subject to e <= bound] */
} decl_kind;

typedef enum order_form {
	ORD_NATURAL, /* order x */
	ORD_REVERSE, /* order reverse(x) */
	ORD_BY,      /* order x by P */
	ORD_RANDOM,  /* order x by random(SEED) */
} order_form;

typedef struct order_item {
	order_form form;
	const char *var;
	span var_where;
	const char *perm;   /* ORD_BY: the const's name */
	span perm_where;
	expr *seed;         /* ORD_RANDOM */
	span where;
} order_item;

typedef struct family_param {
	const char *name;
	span where;
	type_expr type;     /* real, real[K], int, ... ; dims may name a family-level size */
	bool has_type;      /* false: an extern argument written as a bare name, as in
	                       `extern reward(x, s) -> real` (x, s name the model's
	                       variables; type is then K_REAL scalar, meaningless) */
} family_param;

typedef struct family_let {
	const char *name;
	span where;
	expr *value;
} family_let;

struct decl {
	decl_kind kind;
	span where;          /* the whole declaration */
	const char *name;    /* MODEL DIM DATA INPUT PARAM CONST EXTERN FAMILY LET; COND: the target */
	span name_where;
	union {
		struct { expr *value; } dim;                                  /* D_DIM */
		struct { type_expr type; expr *init; expr *value; } var;      /* DATA INPUT PARAM CONST: init after ~, value after = */
		struct { family_param *params; size_t nparams; type_expr ret; } ext; /* D_EXTERN */
		struct {
			family_param *params; size_t nparams;
			type_expr on;                                             /* support: bin, cat(K), int, real */
			const char *logp_var; span logp_var_where;
			expr *logp;
			family_let *lets; size_t nlets;                          /* let lines of the sample block */
			expr *sample;
		} family;                                                     /* D_FAMILY */
		struct { order_item *items; size_t nitems; } order;           /* D_ORDER */
		struct { const char *index; span index_where; expr *value; } let;           /* D_LET; index NULL if none */
		struct { const char *index; span index_where; expr *family; } cond;         /* D_COND; family is an E_CALL */
		struct {
			bool maximize;
			expr *value;
			expr *constraint;    /* subject to: an E_BINARY comparison, or NULL */
		} objective;                                                  /* D_OBJECTIVE */
	} u;
};

typedef struct program {
	ptrvec decls;        /* decl*, stdlib files first, then the model file, in source order */
} program;

/* Debugging and tests: prints the program one declaration per line, with
 * expressions as parenthesised prefix forms, e.g.
 *     x[i] ~ (bernoulli_logit (+ (index b i) (dot (index V i :) (index h i)))) */
void ast_print(FILE *out, const program *prog);
void ast_print_expr(FILE *out, const expr *e);

/* ------------------------------------------------------------------ parse */

/* Limits that keep hostile input from exhausting memory or the stack. */
#define PARSE_MAX_DEPTH 200        /* nesting of parentheses/brackets/operators */
#define PARSE_MAX_FILE_SIZE (16u << 20)

/* Parses file `file` (already added to d) and appends its declarations to
 * prog.  Syntax errors are reported to d (several per file: the parser
 * recovers at the next declaration); returns the number of errors. */
int parse_file(diag_ctx *d, uint32_t file, program *prog);

/* Reads a file into d and parses it.  A missing/unreadable file, a file over
 * PARSE_MAX_FILE_SIZE, or one that is not text is reported as an error. */
int parse_path(diag_ctx *d, const char *path, program *prog);

/* Parses the stdlib files built into the binary (the .chain files of stdlib/). */
int parse_stdlib(diag_ctx *d, program *prog);


/* ------------------------------------------------------------------ check */

typedef enum sym_kind {
	SYM_DIM,      /* a dim: u.dim_value */
	SYM_DATA,     /* a data variable (modelled) */
	SYM_INPUT,    /* an input variable (given, not modelled) */
	SYM_PARAM,
	SYM_CONST,
	SYM_EXTERN,
	SYM_FAMILY,
	SYM_LET,      /* a model-level let */
	SYM_INDEX,    /* an index variable: the position i, a sum variable j or k */
	SYM_FAMILY_ARG, /* inside a family: a parameter, the logp variable or a sample-block let */
	SYM_BUILTIN,  /* a built-in function (exp, dot, sum, ...): u.builtin */
} sym_kind;

struct sym {
	sym_kind kind;
	const char *name;
	span where;
	decl *decl;          /* the declaration, when there is one */
	val_kind vkind;      /* DATA INPUT PARAM CONST: the element kind */
	int64_t cat_k;       /* K_CAT: K; 0 when its K was refused (reported: checks against K skip it) */
	shape shape;         /* DATA INPUT PARAM CONST LET FAMILY_ARG: the value's shape */
	int64_t dim_value;   /* SYM_DIM */
	int builtin;         /* SYM_BUILTIN: a builtin_fn */
	size_t offset;       /* PARAM: offset in theta; DATA INPUT: offset in the obs row */
	double *values;      /* CONST: the checked values, row-major */
	int order_rank;      /* DATA: index of this variable in the order (0 first) */
	bool ordered;        /* DATA: placed in the order (named in it, or by default) */
	order_form order_form; /* DATA: how its order was given */
	int64_t *perm;       /* DATA: position k -> element index, shape-size entries, for
	                        ORD_BY and ORD_RANDOM; NULL for the natural and reverse
	                        orders, which order_elem computes (not 2^28 entries) */
	int64_t first_pos;   /* DATA: global position of its first element */
	decl *cond;          /* DATA: its conditional */
	size_t let_index;    /* LET: its place among the model's lets (model.lets) */
	bool let_indexed;    /* LET: declared with [i] */
	bool uses_position;  /* LET: its value depends on the position (directly or through lets) */
};

/* The element index of data variable y at position k of its order. */
static inline int64_t order_elem(const sym *y, int64_t k)
{
	int64_t n = y->shape.rank == 0 ? 1 : y->shape.rank == 1 ? y->shape.dims[0] : y->shape.dims[0] * y->shape.dims[1];
	switch (y->order_form) {
	case ORD_NATURAL: return k;
	case ORD_REVERSE: return n - 1 - k;
	default: return y->perm[k];
	}
}

typedef enum builtin_fn {
	FN_EXP, FN_LOG, FN_LOG1P, FN_SQRT, FN_ABS, FN_SQUARE, FN_SIGMOID, FN_TANH,
	FN_RELU, FN_SOFTPLUS, FN_LOG_SIGMOID, FN_LFACT,       /* elementwise */
	FN_SUM, FN_MEAN, FN_DOT, FN_LOGSUMEXP, FN_MAX,        /* reductions */
	FN_L2, FN_L1,                                         /* penalties */
	FN_UNIFORM, FN_NORMAL, FN_GUMBEL, FN_POISSON,         /* draws (family samplers) */
	FN_EXPECTED, FN_KL,                                   /* objectives (not compiled yet) */
	FN__COUNT
} builtin_fn;

/* The checked model: what lowering needs, all in the compilation's arena. */
typedef struct model {
	const char *name;
	span name_where;
	ptrvec dims, params, inputs, data, consts, lets, families, externs; /* sym* in declaration order */
	ptrvec order;             /* sym* of the data variables, in factorization order */
	int64_t num_params;       /* length of theta */
	int64_t obs_size;         /* reals per observation */
	int64_t num_positions;
	decl *objective;
	bool maximize;
	bool objective_has_loglik;
	expr *penalty;            /* objective minus its loglik term, or NULL (see check.c) */
	double penalty_sign;      /* the objective = loglik + penalty_sign * penalty */
} model;

/* A -D NAME=VALUE override. */
typedef struct dim_override {
	const char *name;
	int64_t value;
	bool used;
} dim_override;

#define CHECK_MAX_ELEMENTS ((int64_t)1 << 28)   /* no tensor larger than this */
/* No model has more positions (data values: the steps of its chain rule;
 * inputs are not positions).  The descriptor has two tables of a size_t
 * per position (order, cond_offset), 16 bytes in the object and about 66
 * in chain build's memory (the lowered tables, LLVM's constants, the
 * object in memory and on its way out): 2^28 positions took 64 s, 17 GB
 * and a 4 GiB object no default code model links; 2^24 take 2.5 s,
 * 1.1 GB and 256 MiB. */
#define CHECK_MAX_POSITIONS ((int64_t)1 << 24)

/* Resolves names, computes kinds and shapes, builds the order and proves
 * causality.  Reports to d; returns NULL when there were errors. */
model *check_program(diag_ctx *d, program *prog, dim_override *overrides, size_t noverrides);

/* --------------------------------------------------------------------- IR */
/*
 * The model IR is a small loop language over named buffers, in index
 * notation: every statement computes target[idx] from scalar expressions
 * reading buffers at integer index expressions, inside a nest of counted
 * loops.  Scalar expressions (ir_val) are hash-consed, so structurally equal
 * expressions are the same pointer: code generation emits each once per
 * loop body, and differentiation sees shared subexpressions.
 *
 * A kernel (ir_kernel) is a block of statements run once per call; S_FOR
 * loops nest blocks (over rows, positions, ...).  Lowering builds the logp,
 * sample, complete, conditionals and init kernels; ad.c builds loglik_grad
 * and objective from logp.
 */

#define IR_MAX_RANK 3

typedef struct ir_buf ir_buf;
typedef struct ir_idx ir_idx;
typedef struct ir_val ir_val;
typedef struct ir_stmt ir_stmt;
typedef struct ir_loop ir_loop;

typedef enum ir_buf_class {
	BUF_THETA,  /* a param: theta + offset */
	BUF_GRAD,   /* the gradient of a param: grad + offset (kernels with a grad argument) */
	BUF_OBS,    /* an input/data variable in the current row: row pointer + offset;
	               the row pointer is obs + r * OBS_SIZE for the innermost enclosing
	               S_FOR with is_rows, else obs itself */
	BUF_OUT,    /* the kernel's `out` argument: out + offset (flat) */
	BUF_CONST,  /* constant values (real, or int when is_int), emitted as a global */
	BUF_TEMP,   /* scratch, private to one call of the kernel, zeroed at its entry */
} ir_buf_class;

struct ir_buf {
	int id;
	const char *name;       /* for printing and debugging */
	ir_buf_class cls;
	int rank;
	int64_t dims[IR_MAX_RANK];
	int64_t size;           /* product of dims (1 for rank 0) */
	int64_t offset;         /* THETA GRAD OBS OUT: offset in reals */
	bool is_int;            /* CONST: ivalues instead of values */
	double *values;         /* CONST real */
	int64_t *ivalues;       /* CONST int */
	uint8_t *bits;          /* CONST flags, rank 1: element t is bit (t & 7) of bits[t >> 3],
	                           read as 1.0 or 0.0 (masks: 1 bit an entry, not 8 bytes) */
	ir_buf *adjoint;        /* set by ad.c for differentiated buffers */
	bool block_rows;        /* TEMP: one copy per row of a block of rows, the
	                           first index the row's place in it (lower.c) */
	bool rows_share;        /* TEMP: one copy for all the rows of a block, though
	                           written inside their loop (layout.c's copies) */
	bool uninit;            /* TEMP: written before it is read, so not zeroed at
	                           entry: a malloc'd region of its own (layout.c) */
	bool memo_flag;         /* TEMP: memo.c's flag "recompute this row's values" */
	int64_t value_top;      /* OBS of a bin, cat(K) or int variable: its values are
	                           the integers 0..value_top-1 (2, K, 2^53: what
	                           chain_data_check lets in), the range of an index
	                           that reads it (a family's value: l[v]); else 0 */
	int64_t value_max;      /* OBS: the largest value the data may hold: below
	                           value_top - 1 when a sum's range depends on it
	                           (lower.c's limit_sum_values), value_top - 1 else */
};

typedef enum ir_idx_kind {
	IX_CONST,   /* u.c */
	IX_LOOP,    /* u.loop: the current value of a loop variable */
	IX_ADD, IX_SUB, IX_MUL, /* u.bin */
	IX_LOAD,    /* u.load: an int const buffer at index (permutations), or a
	               real buffer whose value is converted to an integer (cat data) */
	IX_PREFIX,  /* the `prefix` argument of the complete kernel */
	IX_ROW,     /* the absolute row number of the current row: first + r (sample,
	               complete) or r (others), r the innermost rows loop */
} ir_idx_kind;

struct ir_idx {
	ir_idx_kind kind;
	union {
		int64_t c;
		ir_loop *loop;
		struct { ir_idx *a, *b; } bin;
		struct { ir_buf *buf; ir_idx *idx[IR_MAX_RANK]; } load;
	} u;
};

struct ir_loop {
	int id;
	const char *name;
	ir_idx *lo, *hi;        /* the variable runs over [lo, hi) */
	bool reverse;           /* S_FOR only: hi-1 down to lo */
	bool is_rows;           /* S_FOR only: the loop over observation rows [0, n) (n = 1 in kernels without n) */
	int64_t block;          /* is_rows: steps over blocks of `block` rows instead; the
	                           variable is the first row of the block */
	ir_loop *block_of;      /* is_rows: runs over the rows of this enclosing block loop
	                           only, [its variable, min(n, its variable + block)) */
	bool narrow;            /* the values the variable takes where it is read are
	                           [narrow_lo, narrow_hi] (empty: none), inside [lo, hi):
	                           sum(j before i), bound over all the elements while it
	                           is lowered, reads those of the positions before the last */
	int64_t narrow_lo, narrow_hi;
	bool vector_rows;       /* is_rows: the rows of several one-position variables
	                           (lower.c): vectorized across the rows whatever
	                           LLVM's cost model says (cg_kernel.c) */
};

/* Scalar operations, with their arity.  X(name, arity) */
#define IR_OPS(X) \
	X(NEG, 1) X(EXP, 1) X(LOG, 1) X(LOG1P, 1) X(SQRT, 1) X(ABS, 1) X(SQUARE, 1) \
	X(SIGMOID, 1) X(TANH, 1) X(RELU, 1) X(SOFTPLUS, 1) X(LOG_SIGMOID, 1) X(NOT, 1) \
	X(ADD, 2) X(SUB, 2) X(MUL, 2) X(DIV, 2) X(POW, 2) X(MAX2, 2) X(MIN2, 2) \
	X(LT, 2) X(LE, 2) X(GT, 2) X(GE, 2) X(EQ, 2) X(NE, 2) X(AND, 2) X(OR, 2) \
	X(SELECT, 3)

/* IR_<name>, so as not to clash with the AST's binop OP_*; the type is
 * ir_opcode because ir_op is the constructor below. */
typedef enum ir_opcode {
#define X(name, arity) IR_##name,
	IR_OPS(X)
#undef X
	IR_OP__COUNT
} ir_opcode;
/* Comparisons and logic give 1.0 or 0.0; SELECT(c, a, b) is a when c != 0.
 * SIGMOID, SOFTPLUS, LOG_SIGMOID are evaluated in their stable forms:
 *   sigmoid(x)     = x >= 0 ? 1/(1+exp(-x)) : exp(x)/(1+exp(x))
 *   softplus(x)    = max(x, 0) + log1p(exp(-|x|))
 *   log_sigmoid(x) = -softplus(-x)                                  */
extern const int ir_op_arity[IR_OP__COUNT];
extern const char *const ir_op_name[IR_OP__COUNT];   /* "NEG", "ADD", ... */

/* chain_rng_uniform, _normal, _gumbel (no operand) and _poisson (u.draw.arg: the rate). */
typedef enum ir_draw_kind { DRAW_UNIFORM, DRAW_NORMAL, DRAW_GUMBEL, DRAW_POISSON } ir_draw_kind;

typedef enum ir_val_kind {
	V_CONST,    /* u.c */
	V_READ,     /* u.read: buf[idx...] (rank of buf indices) */
	V_OP,       /* u.op: op(args...) */
	V_INT,      /* u.idx: an index expression as a real */
	V_DRAW,     /* u.draw: chain_rng_{uniform,normal,gumbel}(seed, stream, a, b, c) with the
	               kernel's seed argument, or chain_rng_poisson(..., arg) */
	V_STOP,     /* u.stop: the value of its operand, with no derivative */
} ir_val_kind;

struct ir_val {
	ir_val_kind kind;
	uint32_t hash;
	int id;
	union {
		double c;
		struct { ir_buf *buf; ir_idx *idx[IR_MAX_RANK]; } read;
		struct { ir_opcode op; ir_val *a[3]; } op;
		ir_idx *idx;
		struct { ir_draw_kind kind; uint32_t stream; ir_idx *a, *b; uint32_t c; ir_idx *ci; ir_val *arg; } draw;
		                        /* V_DRAW: the draw number is c + ci (ci: a sum's index, or NULL);
		                           arg: DRAW_POISSON's rate, NULL for the others (walkers of
		                           values visit it like an operand; it has no derivative) */
		ir_val *stop;
	} u;
};

typedef enum ir_stmt_kind {
	S_SET,      /* for loops: target[idx] = val                                    */
	S_SUM,      /* for loops[0..nfree): target[idx] = sum over loops[nfree..] of val */
	S_MAX,      /* likewise with max (-inf for an empty range)                      */
	S_ADD,      /* for loops: target_j[idx_j] += val_j for every assignment j, in order */
	S_FOR,      /* for loop: body (loop->reverse: backwards; loop->is_rows: rows)   */
	S_IF_GE,    /* if (a >= b) body: e.g. position >= prefix in complete           */
} ir_stmt_kind;

typedef struct ir_assign {
	ir_buf *buf;
	ir_idx *idx[IR_MAX_RANK];
	ir_val *val;
} ir_assign;

typedef struct ir_block {
	ptrvec stmts;           /* ir_stmt* */
} ir_block;

struct ir_stmt {
	ir_stmt_kind kind;
	/* S_SET S_SUM S_MAX S_ADD: */
	ir_loop **loops;        /* outermost first */
	int nloops;
	int nfree;              /* S_SUM/S_MAX: the first nfree loops are free, the rest reduce */
	ir_assign *assigns;     /* S_ADD: nassigns of them; others exactly 1 */
	int nassigns;
	/* S_FOR: */
	ir_loop *loop;
	bool reverse;           /* S_FOR: run backwards (as if loop->reverse) */
	/* S_IF_GE: */
	ir_idx *a, *b;
	ir_block body;          /* S_FOR, S_IF_GE */
};

typedef enum ir_kernel_kind {
	KER_INIT,          /* void M_init(real *theta, uint64_t seed) */
	KER_LOGP,          /* real M_logp(const real *theta, const real *obs) */
	KER_LOGP_BATCH,    /* void M_logp_batch(theta, obs, size_t n, real *out) */
	KER_LOGLIK_GRAD,   /* real M_loglik_grad(theta, obs, size_t n, real *grad) */
	KER_OBJECTIVE,     /* real M_objective(theta, obs, size_t n, real *grad); grad may be NULL:
	                      kernels built with has_grad_variant run a no-grad body then */
	KER_SAMPLE,        /* void M_sample(theta, uint64_t seed, uint64_t first, size_t n, real *obs) */
	KER_COMPLETE,      /* void M_complete(theta, seed, first, size_t prefix, size_t n, real *obs) */
	KER_CONDITIONALS,  /* void M_conditionals(theta, obs, real *out) */
	KER__COUNT
} ir_kernel_kind;

typedef struct ir_kernel {
	ir_kernel_kind kind;
	const char *name;       /* the suffix: "logp", "sample", ... */
	ir_block body;
	ir_buf *result;         /* a rank-0 TEMP whose final value is returned, or NULL */
	ir_block nograd_body;   /* KER_OBJECTIVE: what runs when grad == NULL */
	ir_buf *nograd_result;
	/* KER_OBJECTIVE: the no-grad body's loop over rows, which adds each
	 * row's log p (what logp_batch gives for it) into nograd_lp and 1 into
	 * nograd_count (ad.c); codegen may run it as calls of logp_batch */
	const ir_loop *nograd_rows;
	const ir_buf *nograd_lp, *nograd_count;
	ptrvec temps;           /* ir_buf* of class TEMP this kernel uses (codegen allocates them) */
} ir_kernel;

typedef struct ir_module {
	arena *arena;
	const model *model;
	ptrvec bufs;            /* every ir_buf */
	ir_kernel *kernels[KER__COUNT];
	int next_id;
	void *intern;           /* the hash-consing table (ir.c) */
	/* what the descriptor needs beyond the model: */
	int64_t *order_offsets;     /* num_positions: obs offset of position k (lower_descriptor_tables) */
	int64_t *cond_offset;       /* num_positions + 1 (lower_descriptor_tables) */
	/* per param sym (model->params order), a bit per entry (param_entry_used),
	 * NULL = all used: 32 MB, not 256, for a param of 2^28 entries that
	 * chain check marks; the descriptor's byte per entry is made from it */
	uint8_t **param_used;
	int64_t *param_unused;      /* per param: number of unused entries */
	int64_t num_unused;
	/* per input, then per data sym: the largest value its elements may
	 * hold, -1 for its kind's own (the descriptor's value_max); NULL when
	 * no sum's range depends on a variable's value */
	int64_t *value_max;
	struct lowered *low;         /* lower.c's view of the model, for ad.c */
} ir_module;

/* Entry t of a param_used bitmap: bit (t & 7) of used[t >> 3], the layout
 * of a CONST buffer's bits. */
static inline bool param_entry_used(const uint8_t *used, int64_t t)
{
	return (used[t >> 3] >> (t & 7)) & 1;
}

ir_module *ir_module_new(arena *a, const model *m);
ir_buf *ir_buf_new(ir_module *m, const char *name, ir_buf_class cls, int rank, const int64_t *dims);
ir_loop *ir_loop_new(ir_module *m, const char *name, ir_idx *lo, ir_idx *hi);
ir_idx *ir_idx_const(ir_module *m, int64_t c);
ir_idx *ir_idx_loop(ir_module *m, ir_loop *l);
ir_idx *ir_idx_bin(ir_module *m, ir_idx_kind k, ir_idx *a, ir_idx *b);   /* folds constants */
ir_idx *ir_idx_load(ir_module *m, ir_buf *b, ir_idx **idx);
/* The values x takes, [*lo, *hi], from the ranges of its loops, the int
 * constants it loads and the kinds of the data it loads: 1 when known; 0
 * when not (the prefix, a row, an overflow); -1 when it is never evaluated
 * (a loop it reads runs over an empty range whatever its bounds). */
int ir_idx_range(const ir_idx *x, int64_t *lo, int64_t *hi);
/* The same with every value of an observation at most cap: what a sum
 * bounded by a count runs when the counts are at most cap (lower.c). */
int ir_idx_range_capped(const ir_idx *x, int64_t cap, int64_t *lo, int64_t *hi);
ir_idx *ir_idx_leaf(ir_module *m, ir_idx_kind k);                         /* IX_PREFIX, IX_ROW */
ir_val *ir_const(ir_module *m, double c);
ir_val *ir_read(ir_module *m, ir_buf *b, ir_idx **idx);
ir_val *ir_op(ir_module *m, ir_opcode op, ir_val *a, ir_val *b, ir_val *c);  /* simplifies 0+x, 1*x, ... */
ir_val *ir_int(ir_module *m, ir_idx *i);
ir_val *ir_draw(ir_module *m, ir_draw_kind k, uint32_t stream, ir_idx *a, ir_idx *b, uint32_t c);
/* The same with the draw number c + ci (one draw per iteration of a sum)
 * and the operand arg (DRAW_POISSON's rate; NULL for the others). */
ir_val *ir_draw_at(ir_module *m, ir_draw_kind k, uint32_t stream, ir_idx *a, ir_idx *b, uint32_t c, ir_idx *ci,
                   ir_val *arg);
ir_val *ir_stop(ir_module *m, ir_val *v);
bool ir_idx_equal(const ir_idx *a, const ir_idx *b);
ir_stmt *ir_stmt_new(ir_module *m, ir_stmt_kind k);
ir_stmt *ir_assign_stmt(ir_module *m, ir_stmt_kind k, ir_loop **loops, int nloops, int nfree,
                        ir_buf *buf, ir_idx **idx, ir_val *val);
void ir_block_push(ir_module *m, ir_block *b, ir_stmt *s);
ir_kernel *ir_kernel_new(ir_module *m, ir_kernel_kind k, const char *name); /* sets m->kernels[k] */
void ir_print_kernel(FILE *out, const ir_kernel *k);

/* ir_walk.c: rewrites and walks shared by lowering, AD and optimization */
bool ir_idx_uses_loop(const ir_idx *i, const ir_loop *l);
/* Calls fn on the buffer of every read in i or v (a V_READ or an IX_LOAD,
 * at any depth: indices, a draw's coordinates and argument), in order,
 * until fn returns true; true if it did. */
typedef bool (*ir_read_fn)(const ir_buf *b, void *ctx);
bool ir_idx_each_read(const ir_idx *i, ir_read_fn fn, void *ctx);
bool ir_val_each_read(const ir_val *v, ir_read_fn fn, void *ctx);
bool ir_val_slow_in_loop(const ir_val *v, const ir_loop *l);
bool ir_access_contiguous(const ir_buf *b, ir_idx *const *idx, const ir_loop *l);
bool ir_val_reads_contiguous(const ir_val *v, const ir_loop *l);
bool ir_idx_reads(const ir_idx *i, const ir_buf *b);
bool ir_val_reads(const ir_val *v, const ir_buf *b);
bool ir_val_uses_loop(const ir_val *v, const ir_loop *l);
/* Whether statement s (with what it nests) reads b (values, indices, loop
 * bounds, conditions, an addition's target) or writes it; the statements of
 * a block (and what they nest, a loop or condition that reads b counting
 * once for its bounds or test) that read or write b. */
bool ir_stmt_reads(const ir_stmt *s, const ir_buf *b);
bool ir_stmt_writes(const ir_stmt *s, const ir_buf *b);
int ir_block_count(const ir_block *blk, const ir_buf *b, bool writes);
/* Replaces loop variables from[k] by index expressions to[k], all at once. */
ir_idx *ir_subst_idx(ir_module *m, ir_idx *i, ir_loop **from, ir_idx **to, int n);
ir_val *ir_subst_val(ir_module *m, ir_val *v, ir_loop **from, ir_idx **to, int n);
ir_stmt *ir_subst_stmt(ir_module *m, const ir_stmt *s, ir_loop *from, ir_idx *to);
/* A copy of v (or index i) with every read of a buffer passed through map,
 * which gets the read's buffer and its (already remapped) indices, may
 * rewrite the indices in place (up to IR_MAX_RANK) and returns the buffer
 * to read: blocks of rows (lower.c), transposed copies (layout.c). */
typedef ir_buf *(*ir_read_map)(void *ctx, ir_buf *b, ir_idx **idx);
ir_idx *ir_remap_idx(ir_module *m, ir_idx *i, ir_read_map map, void *ctx);
ir_val *ir_remap_val(ir_module *m, ir_val *v, ir_read_map map, void *ctx);
ir_buf *ir_temp_scalar(ir_module *m, const char *name);
/* Fresh loops over every element of b; returns b's rank. */
int ir_buf_loops(ir_module *m, const ir_buf *b, ir_loop **loops, ir_idx **idx);
/* S_SET b[...] = value over the whole buffer. */
ir_stmt *ir_stmt_fill(ir_module *m, ir_buf *b, ir_val *value);
void ir_block_append(ir_module *m, ir_block *dst, const ir_block *src);
ir_stmt *ir_for(ir_module *m, ir_loop *l);
/* Registers in k->temps every TEMP buffer its statements touch. */
void ir_kernel_collect_temps(ir_module *m, ir_kernel *k);

/* ------------------------------------------------------------------ lower */

/* Builds the IR module of a checked model: buffers, the init, logp,
 * logp_batch, sample, complete and conditionals kernels.  Constructs the
 * checker accepted but lowering cannot compile yet are reported as "not
 * supported yet" errors at their location; returns NULL then. */
ir_module *lower_model(diag_ctx *d, const model *m, arena *a);
/* Fills the descriptor's tables m->order_offsets and m->cond_offset (16
 * bytes a position) from what lower_model laid out.  Only what emits the
 * descriptor needs them (chain build, the JIT): chain check of a model of
 * 2^28 positions would spend 4 GB and most of its time zeroing them.
 * Code generation refuses a module with positions and no tables. */
void lower_descriptor_tables(ir_module *m);

/* --------------------------------------------------------------------- ad */

/* Adds the loglik_grad and objective kernels, by reverse-mode
 * differentiation of the logp kernel's IR. */
int ad_module(diag_ctx *d, ir_module *m);

/* -------------------------------------------------------------------- opt */

/* IR clean-ups: drop statements whose targets are never read, ... */
void opt_module(ir_module *m);
void layout_module(ir_module *m);  /* layout.c: transposed copies of params read by column */
void fuse_kernel(ir_module *m, ir_kernel *k);  /* fuse.c: fewer passes over the same elements */
void memo_kernel(ir_module *m, ir_kernel *k);  /* memo.c: a row's values recomputed when their inputs change */

/* --------------------------------------------------------------------- cg */

typedef enum cg_emit_kind { EMIT_OBJ, EMIT_ASM, EMIT_LLVM, EMIT_BC, EMIT_HEADER } cg_emit_kind;

typedef struct cg_options {
	int opt_level;          /* 0..3 */
	bool f32;               /* real = float */
	const char *target;     /* triple, NULL = host */
	const char *cpu;        /* NULL = host CPU (with host features) */
	const char *features;   /* NULL = host features when cpu is NULL, else "" */
	bool jit;               /* the kernels run in this process (train, eval, ...):
	                           their speed before compile time (cg_emit.c) */
} cg_options;

/* An LLVM module holding the model's kernels and its M_model descriptor.
 * Opaque here so that only cg_*.c include llvm-c. */
typedef struct cg_unit cg_unit;

/* Generates, verifies (failure = internal error with the IR dumped) and
 * optimizes.  Returns NULL with a message in *err (malloc'd) on failure. */
cg_unit *cg_generate(const ir_module *m, const cg_options *o, char **err);
/* Writes the unit as an object, assembly, LLVM IR text or bitcode. */
int cg_emit(cg_unit *u, cg_emit_kind kind, const char *path, char **err);
void cg_unit_free(cg_unit *u);
/* Writes M.h: the generated C API of ARCHITECTURE.md for this model. */
int cg_emit_header(const ir_module *m, const cg_options *o, const char *path, char **err);
/* Every output of `chain build` is written through these (cg_emit.c): to
 * a temporary file beside `path` (beside the file it names when it is a
 * symbolic link), renamed over it by cg_file_close when ok (else removed),
 * so an error never leaves a partial file nor destroys the previous one.
 * A path that is not a file (/dev/null, a FIFO) or is the file chain's own
 * stdout or stderr goes to is written in place; a directory is refused.
 * cg_file_open returns 0 with out->f open, or -1 with *err set. */
typedef struct cg_file {
	FILE *f;
	char *tmp;   /* the temporary file, NULL when written in place */
	char *dest;  /* what it is renamed over */
} cg_file;
int cg_file_open(cg_file *out, const char *path, char **err);
int cg_file_close(cg_file *out, const char *path, bool ok, char **err);

/* -------------------------------------------------------------------- jit */

struct chain_model;
typedef struct jit_session jit_session;
/* Compiles the unit in-process with ORC LLJIT (the unit is consumed) and
 * returns the address of M_model; libchain's symbols resolve to the copy
 * inside the running binary. */
jit_session *jit_load(cg_unit *u, const struct chain_model **model, char **err);
/* 0 when code for `target` (a triple, NULL or "" = the host) runs on this
 * machine, else -1 with *err set (malloc'd). */
int jit_check_target(const char *target, char **err);
/* Links an object compiled for this machine (cg_build_object_memory)
 * in-process and returns the address of its `descriptor` (M_model). */
jit_session *jit_load_object(const void *obj, size_t size, const char *descriptor,
                             const struct chain_model **model, char **err);
void jit_free(jit_session *s);

#endif
