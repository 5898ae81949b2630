/* check_internal.h -- what check.c, check_expr.c and order.c share. */
#ifndef CHECK_INTERNAL_H
#define CHECK_INTERNAL_H

#include "chainc.h"

/* A chain of name tables: the model's names at the bottom, index variables
 * and family arguments above.  A scope of more than SCOPE_INDEX_MIN names
 * (the model's, in practice) also has an index by name, so that a lookup
 * costs the same among 100,000 declarations as among ten; the few names of
 * a sum or a family are searched in order, with no index to build. */
#define SCOPE_INDEX_MIN 16
typedef struct scope_entry scope_entry;
typedef struct scope {
	struct scope *parent;
	ptrvec syms;            /* in declaration order */
	scope_entry **index;    /* NULL while the scope is small; else an open
	                           addressed table, one slot per distinct name */
	size_t index_cap;       /* slots: a power of two, at least twice index_names */
	size_t index_names;
} scope;

typedef struct checker {
	diag_ctx *d;
	arena *a;
	model *m;
	scope global;          /* the model's names; its parent is builtins */
	scope builtins;        /* the built-in functions: all a family body sees
	                          besides its own names */
	uint32_t model_file;
	bool in_stdlib;
	decl *order_decl;
	ptrvec conds;          /* decl* of the conditionals */
	size_t lets_visible;   /* while checking lets: how many are declared so far */
} checker;

/* Where an expression stands: what it may refer to. */
typedef enum ctx_where {
	CTX_LET,            /* a model-level let */
	CTX_COND,           /* the arguments of a conditional */
	CTX_OBJECTIVE,      /* the objective (params, consts, dims) */
	CTX_FAMILY_LOGP,    /* a family's logp(v) */
	CTX_FAMILY_SAMPLE,  /* a family's sample block */
} ctx_where;

typedef struct ctx {
	ctx_where where;
	scope *scope;
	sym *pos;           /* the position index (i), or NULL */
	int depth;
} ctx;

sym *scope_lookup(const scope *s, const char *name);
sym *scope_lookup_kind(const scope *s, const char *name, sym_kind kind);
sym *scope_add(checker *c, scope *s, sym_kind kind, const char *name, span where);
bool eval_num(checker *c, const expr *e, double *out, const char *what);
/* A compile-time integer: the caller accepts lo..hi and checks that itself,
 * with its own message, for a value a double holds exactly; eval_int
 * refuses a fraction, and an integer beyond 2^53 - 1 in magnitude as out
 * of lo..hi. */
bool eval_int(checker *c, const expr *e, int64_t lo, int64_t hi, int64_t *out, const char *what);
/* The largest integer every smaller one of which a double holds exactly. */
#define CHECK_MAX_EXACT_INT ((int64_t)9007199254740991) /* 2^53 - 1 */
/* The most categories a cat(K) may have. */
#define CHECK_MAX_CATEGORIES ((int64_t)1 << 24)
int64_t shape_size(const shape *s);
char *shape_str(arena *a, const shape *s);
bool builtin_is_elementwise(int fn);

/* check_expr.c */
bool check_expr(checker *c, ctx *x, expr *e);
void check_lets(checker *c);
void check_objective(checker *c);
/* Checks `var[i] ~ family(args)` and the family's body for these arguments. */
void check_family_call(checker *c, ctx *x, sym *var, expr *call);

/* order.c */
void check_order(checker *c);
void check_causality_all(checker *c);

#endif
