/* check_expr.c -- kinds and shapes of expressions, lets, family calls and
 * the objective.
 *
 * Every expression gets a shape (scalar, vector or matrix), whether it is an
 * integer index expression, and, for names and calls, the symbol it means.
 * Broadcasting is scalar-with-anything only; anything else must match.
 */
#include <string.h>

#include "check_internal.h"

#define MAX_EXPR_DEPTH 400

static bool shapes_equal(const shape *a, const shape *b)
{
	if (a->rank != b->rank)
		return false;
	for (int i = 0; i < a->rank; i++)
		if (a->dims[i] != b->dims[i])
			return false;
	return true;
}

static void set_scalar(expr *e, bool is_int)
{
	memset(&e->shape, 0, sizeof e->shape);
	e->is_int = is_int;
}

/* While let number k is checked, only the lets before it exist. */
static bool let_visible(checker *c, const sym *y, const expr *e)
{
	if (y->kind != SYM_LET || y->let_index < c->lets_visible)
		return true;
	diag_error(c->d, e->where, "let '%s' is used before its declaration is complete: a let may only use the lets above it", y->name);
	return false;
}

/* A name on its own: what it refers to, and its shape. */
static bool check_name(checker *c, ctx *x, expr *e)
{
	sym *y = scope_lookup(x->scope, e->u.name);
	if (!y) {
		diag_error(c->d, e->where, "unknown name '%s'", e->u.name);
		return false;
	}
	e->sym = y;
	if (!let_visible(c, y, e))
		return false;
	switch (y->kind) {
	case SYM_DIM:
	case SYM_INDEX:
		set_scalar(e, true);
		return true;
	case SYM_DATA:
	case SYM_INPUT:
		if (x->where == CTX_OBJECTIVE) {
			diag_error(c->d, e->where, "the objective may not use data variable '%s' directly; use loglik", y->name);
			return false;
		}
		break;
	case SYM_PARAM:
	case SYM_CONST:
	case SYM_FAMILY_ARG:
		break;
	case SYM_LET:
		if (y->let_indexed) {
			diag_error(c->d, e->where, "'%s' is declared per position: write '%s[%s]'", y->name, y->name,
			           y->decl->u.let.index);
			return false;
		}
		break;
	default:
		diag_error(c->d, e->where, "'%s' is %s, not a value", y->name,
		           y->kind == SYM_FAMILY ? "a family" : y->kind == SYM_EXTERN ? "an extern function" : "a function");
		return false;
	}
	if ((y->kind == SYM_PARAM || y->kind == SYM_DATA || y->kind == SYM_INPUT) && (x->where == CTX_FAMILY_LOGP || x->where == CTX_FAMILY_SAMPLE)) {
		diag_error(c->d, e->where, "a family may only use its own arguments, not '%s'", y->name);
		return false;
	}
	e->shape = y->shape;
	e->is_int = (y->kind == SYM_FAMILY_ARG && y->vkind != K_REAL && y->shape.rank == 0) ||
	            (y->kind == SYM_CONST && y->vkind != K_REAL && y->shape.rank == 0);
	return true;
}

/* base[args]: an index per dimension (an integer expression drops the
 * dimension, ':' keeps it); missing trailing indices are ':'. */
static bool check_index(checker *c, ctx *x, expr *e)
{
	expr *base = e->u.index.base;
	if (base->kind != E_NAME) {
		diag_error(c->d, base->where, "only names can be indexed");
		return false;
	}
	sym *y = scope_lookup(x->scope, base->u.name);
	if (!y) {
		diag_error(c->d, base->where, "unknown name '%s'", base->u.name);
		return false;
	}
	base->sym = y;
	e->sym = y;
	if (!let_visible(c, y, e))
		return false;
	if (y->kind == SYM_LET && y->let_indexed) {
		if (e->u.index.args.len != 1 || e->u.index.args.items[0]->kind != E_NAME || !x->pos ||
		    strcmp(e->u.index.args.items[0]->u.name, x->pos->name) != 0) {
			diag_error(c->d, e->where, "'%s' is per position: it can only be used as '%s[%s]', at the current position",
			           y->name, y->name, x->pos ? x->pos->name : "i");
			return false;
		}
		e->u.index.args.items[0]->sym = x->pos;
		set_scalar(e->u.index.args.items[0], true);
		e->shape = y->shape;
		e->is_int = false;
		return true;
	}
	if (!check_name(c, x, base))
		return false;
	if (base->shape.rank == 0) {
		diag_error(c->d, e->where, "'%s' is a scalar and cannot be indexed", y->name);
		return false;
	}
	if ((int)e->u.index.args.len > base->shape.rank) {
		diag_error(c->d, e->where, "'%s' has %d dimension%s but %zu indices are given", y->name, base->shape.rank,
		           base->shape.rank == 1 ? "" : "s", e->u.index.args.len);
		return false;
	}
	shape s = {0};
	bool ok = true;
	for (int i = 0; i < base->shape.rank; i++) {
		expr *a = i < (int)e->u.index.args.len ? e->u.index.args.items[i] : NULL;
		if (!a || a->kind == E_SLICE) {
			s.dims[s.rank++] = base->shape.dims[i];
			continue;
		}
		if (!check_expr(c, x, a)) {
			ok = false;
			continue;
		}
		if (!a->is_int || a->shape.rank != 0) {
			diag_error(c->d, a->where, "an index must be an integer expression (a number, a dim or an index variable)");
			ok = false;
			continue;
		}
		if (a->kind == E_NUM && (a->u.num < 0 || a->u.num >= (double)base->shape.dims[i])) {
			diag_error(c->d, a->where, "index %g is out of range: dimension %d of '%s' has size %lld", a->u.num, i + 1,
			           y->name, (long long)base->shape.dims[i]);
			ok = false;
		}
		if (a->kind == E_NAME && a->sym && a->sym->kind == SYM_INDEX && a->sym->shape.dims[0] &&
		    a->sym->shape.dims[0] != base->shape.dims[i]) {
			diag_error(c->d, a->where, "'%s' ranges over %lld values but dimension %d of '%s' has size %lld", a->u.name,
			           (long long)a->sym->shape.dims[0], i + 1, y->name, (long long)base->shape.dims[i]);
			ok = false;
		}
	}
	e->shape = s;
	e->is_int = s.rank == 0 && y->vkind != K_REAL && (y->kind == SYM_CONST);
	return ok;
}

/* Result shape of an elementwise binary operation: equal shapes, or a scalar
 * broadcast over the other. */
static bool broadcast(checker *c, expr *e, const expr *l, const expr *r)
{
	if (l->shape.rank == 0)
		e->shape = r->shape;
	else if (r->shape.rank == 0 || shapes_equal(&l->shape, &r->shape))
		e->shape = l->shape;
	else {
		diag_error(c->d, e->where, "shapes do not match: %s and %s", shape_str(c->a, &l->shape), shape_str(c->a, &r->shape));
		return false;
	}
	return true;
}

static bool check_binary(checker *c, ctx *x, expr *e)
{
	expr *l = e->u.binary.lhs, *r = e->u.binary.rhs;
	bool okl = check_expr(c, x, l), okr = check_expr(c, x, r);
	if (!okl || !okr)
		return false;
	if (e->u.binary.op == OP_MATMUL) {
		const shape *a = &l->shape, *b = &r->shape;
		int64_t inner_a = a->rank == 2 ? a->dims[1] : a->rank == 1 ? a->dims[0] : -1;
		int64_t inner_b = b->rank >= 1 ? b->dims[0] : -1;
		if (a->rank == 0 || b->rank == 0 || inner_a != inner_b) {
			diag_error(c->d, e->where, "'@' needs [m, k] @ [k] or [m, k] @ [k, p]; found %s @ %s",
			           shape_str(c->a, a), shape_str(c->a, b));
			return false;
		}
		memset(&e->shape, 0, sizeof e->shape);
		if (a->rank == 2)
			e->shape.dims[e->shape.rank++] = a->dims[0];
		if (b->rank == 2)
			e->shape.dims[e->shape.rank++] = b->dims[1];
		return true;
	}
	if (!broadcast(c, e, l, r))
		return false;
	e->is_int = l->is_int && r->is_int && e->shape.rank == 0 &&
	            (e->u.binary.op == OP_ADD || e->u.binary.op == OP_SUB || e->u.binary.op == OP_MUL);
	return true;
}

static bool check_call(checker *c, ctx *x, expr *e)
{
	/* a call of a built-in name is the built-in (a family of that name is
	 * only reachable after `~`) */
	sym *y = scope_lookup(x->scope, e->u.call.name);
	if (y && y->kind == SYM_FAMILY && scope_lookup_kind(x->scope, e->u.call.name, SYM_BUILTIN))
		y = scope_lookup_kind(x->scope, e->u.call.name, SYM_BUILTIN);
	exprvec *args = &e->u.call.args;
	if (!y) {
		diag_error(c->d, e->u.call.name_where, "unknown function '%s'", e->u.call.name);
		return false;
	}
	e->sym = y;
	if (y->kind == SYM_FAMILY) {
		diag_error(c->d, e->where, "family '%s' can only be used after '~' in a conditional", y->name);
		return false;
	}
	if (y->kind == SYM_EXTERN) {
		diag_error(c->d, e->where, "not supported yet: calling extern function '%s' here", y->name);
		return false;
	}
	if (y->kind != SYM_BUILTIN) {
		diag_error(c->d, e->u.call.name_where, "'%s' is not a function", y->name);
		return false;
	}
	int fn = y->builtin;
	if (fn == FN_EXPECTED || fn == FN_KL) {
		if (x->where != CTX_OBJECTIVE)
			diag_error(c->d, e->where, "%s() belongs in an objective", y->name);
		else
			diag_error(c->d, e->where, "not supported yet: %s() objectives (policy gradients)", y->name);
		return false;
	}
	if ((int64_t)args->len != y->cat_k) {
		diag_error(c->d, e->where, "%s() takes %lld argument%s, not %zu", y->name, (long long)y->cat_k,
		           y->cat_k == 1 ? "" : "s", args->len);
		return false;
	}
	bool ok = true;
	for (size_t i = 0; i < args->len; i++)
		if (args->items[i]->kind == E_SLICE) {
			diag_error(c->d, args->items[i]->where, "':' is only allowed inside an index");
			ok = false;
		} else if (!check_expr(c, x, args->items[i]))
			ok = false;
	if (!ok)
		return false;
	if (builtin_is_elementwise(fn)) {
		e->shape = args->items[0]->shape;
		return true;
	}
	switch (fn) {
	case FN_SUM: case FN_MEAN: case FN_LOGSUMEXP: case FN_MAX: case FN_L1: case FN_L2:
		if ((fn == FN_LOGSUMEXP || fn == FN_MAX) && args->items[0]->shape.rank == 0) {
			diag_error(c->d, args->items[0]->where, "%s() needs a vector or matrix, not a scalar", y->name);
			return false;
		}
		set_scalar(e, false);
		return true;
	case FN_DOT: {
		const shape *a = &args->items[0]->shape, *b = &args->items[1]->shape;
		if (a->rank != 1 || !shapes_equal(a, b)) {
			diag_error(c->d, e->where, "dot() needs two vectors of one length; found %s and %s", shape_str(c->a, a),
			           shape_str(c->a, b));
			return false;
		}
		set_scalar(e, false);
		return true;
	}
	case FN_UNIFORM: case FN_NORMAL: case FN_GUMBEL: case FN_POISSON:
		if (x->where != CTX_FAMILY_SAMPLE) {
			diag_error(c->d, e->where, "%s() draws a random number: only a family's sample may use it", y->name);
			return false;
		}
		if (fn == FN_POISSON && args->items[0]->shape.rank != 0) {
			diag_error(c->d, args->items[0]->where, "poisson() takes a scalar rate, not %s",
			           shape_str(c->a, &args->items[0]->shape));
			return false;
		}
		set_scalar(e, false);
		return true;
	case FN_EXPECTED: case FN_KL:
		if (x->where != CTX_OBJECTIVE) {
			diag_error(c->d, e->where, "%s() belongs in an objective", y->name);
			return false;
		}
		diag_error(c->d, e->where, "not supported yet: %s() objectives (policy gradients)", y->name);
		return false;
	}
	return false;
}

/* sum(j before i) body / sum(k in lo..hi) body: a new index variable. */
static bool check_sum(checker *c, ctx *x, expr *e)
{
	scope s = {.parent = x->scope};
	ctx inner = *x;
	inner.scope = &s;
	sym *v = scope_add(c, &s, SYM_INDEX, e->u.sum.var, e->u.sum.var_where);
	if (scope_lookup(x->scope, e->u.sum.var) && scope_lookup(x->scope, e->u.sum.var)->kind != SYM_BUILTIN) {
		diag_error(c->d, e->u.sum.var_where, "'%s' is already a name here; pick another index name", e->u.sum.var);
		return false;
	}
	if (e->kind == E_SUM_BEFORE) {
		if (!x->pos || strcmp(e->u.sum.pos, x->pos->name) != 0) {
			if (!x->pos)
				diag_error(c->d, e->u.sum.pos_where, "sum(%s before %s) needs a position: it is only allowed in a conditional or a let with [%s]",
				           e->u.sum.var, e->u.sum.pos, e->u.sum.pos);
			else
				diag_error(c->d, e->u.sum.pos_where, "'%s' is not the position here; write sum(%s before %s)", e->u.sum.pos,
				           e->u.sum.var, x->pos->name);
			return false;
		}
		v->shape = x->pos->shape; /* ranges over the same indices as the position */
	} else {
		/* bounds: integer expressions of dims, numbers and index variables */
		for (int b = 0; b < 2; b++) {
			expr *bound = b ? e->u.sum.hi : e->u.sum.lo;
			if (!check_expr(c, x, bound))
				return false;
			if (!bound->is_int || bound->shape.rank) {
				diag_error(c->d, bound->where, "a sum bound must be an integer expression");
				return false;
			}
		}
		v->shape.rank = 1;
		v->shape.dims[0] = 0; /* not tied to an array dimension */
	}
	v->shape.rank = 0;
	if (!check_expr(c, &inner, e->u.sum.body))
		return false;
	e->shape = e->u.sum.body->shape;
	e->is_int = false;
	return true;
}

bool check_expr(checker *c, ctx *x, expr *e)
{
	bool ok = true;
	if (++x->depth > MAX_EXPR_DEPTH) {
		diag_error(c->d, e->where, "expression nested deeper than %d levels", MAX_EXPR_DEPTH);
		x->depth--;
		return false;
	}
	set_scalar(e, false);
	switch (e->kind) {
	case E_ERROR:
		ok = false;
		break;
	case E_NUM:
		e->is_int = e->u.num == (double)(int64_t)e->u.num;
		break;
	case E_NAME:
		ok = check_name(c, x, e);
		break;
	case E_INDEX:
		ok = check_index(c, x, e);
		break;
	case E_SLICE:
		diag_error(c->d, e->where, "':' is only allowed inside an index");
		ok = false;
		break;
	case E_CALL:
		ok = check_call(c, x, e);
		break;
	case E_UNARY:
		ok = check_expr(c, x, e->u.unary.operand);
		e->shape = e->u.unary.operand->shape;
		e->is_int = e->u.unary.operand->is_int;
		break;
	case E_BINARY:
		ok = check_binary(c, x, e);
		break;
	case E_SUM_BEFORE:
	case E_SUM_RANGE:
		ok = check_sum(c, x, e);
		break;
	case E_IF: {
		bool a = check_expr(c, x, e->u.cond.c), b = check_expr(c, x, e->u.cond.a), d = check_expr(c, x, e->u.cond.b);
		ok = a && b && d;
		/* elementwise: the condition, like the branches, is a scalar or
		 * has the result's shape */
		if (ok && !broadcast(c, e, e->u.cond.a, e->u.cond.b))
			ok = false;
		if (ok && e->u.cond.c->shape.rank != 0 && !shapes_equal(&e->u.cond.c->shape, &e->shape) &&
		    !(e->shape.rank == 0 && (e->shape = e->u.cond.c->shape, true))) {
			diag_error(c->d, e->u.cond.c->where, "the condition of `if` is %s but its branches are %s",
			           shape_str(c->a, &e->u.cond.c->shape), shape_str(c->a, &e->shape));
			ok = false;
		}
		break;
	}
	case E_ARRAY:
		diag_error(c->d, e->where, "array literals are only allowed as const values");
		ok = false;
		break;
	}
	x->depth--;
	if (!ok)
		set_scalar(e, false);
	return ok;
}

/* ------------------------------------------------------- family calls */

/* Binds one family parameter's declared type to an argument's shape; a
 * size name that is not a model dim (K in real[K]) is bound by the first
 * argument that has it. */
static bool bind_param(checker *c, scope *fs, family_param *p, expr *arg, ptrvec *sizes_names, int64_t *sizes, const char *fam)
{
	if (p->type.dims.len != (size_t)arg->shape.rank) {
		diag_error(c->d, arg->where, "argument '%s' of %s must be %s, not %s", p->name, fam,
		           p->type.dims.len == 0 ? "a scalar" : p->type.dims.len == 1 ? "a vector" : "a matrix",
		           shape_str(c->a, &arg->shape));
		return false;
	}
	for (size_t i = 0; i < p->type.dims.len; i++) {
		expr *d = p->type.dims.items[i];
		int64_t want = -1;
		if (d->kind == E_NAME) {
			/* a size name is bound by the first argument that has it, or,
			 * in a family of the model file, by the model's dim of that
			 * name; either way the body sees it.  The stdlib's families do
			 * not see the model's dims: a model's `dim K` does not fix
			 * categorical_logits' K. */
			sym *g = p->where.file == c->model_file ? scope_lookup(&c->global, d->u.name) : NULL;
			size_t j;
			for (j = 0; j < sizes_names->len; j++)
				if (strcmp(sizes_names->items[j], d->u.name) == 0)
					break;
			if (j == sizes_names->len) {
				ptrvec_push(c->a, sizes_names, (void *)d->u.name);
				sizes[j] = g && g->kind == SYM_DIM ? g->dim_value : arg->shape.dims[i];
				sym *k = scope_add(c, fs, SYM_DIM, d->u.name, d->where);
				k->dim_value = sizes[j];
			}
			want = sizes[j];
		} else if (!eval_int(c, d, 1, CHECK_MAX_ELEMENTS, &want, "a size")) {
			return false;
		}
		if (want != arg->shape.dims[i]) {
			diag_error(c->d, arg->where, "argument '%s' of %s has %lld elements where %lld are expected", p->name, fam,
			           (long long)arg->shape.dims[i], (long long)want);
			return false;
		}
	}
	sym *a = scope_add(c, fs, SYM_FAMILY_ARG, p->name, p->where);
	a->shape = arg->shape;
	a->vkind = p->type.kind;
	return true;
}

void check_family_call(checker *c, ctx *x, sym *var, expr *call)
{
	if (call->kind != E_CALL) {
		diag_error(c->d, call->where, "expected a family after '~', e.g. bernoulli_logit(l)");
		return;
	}
	sym *f = scope_lookup_kind(&c->global, call->u.call.name, SYM_FAMILY);
	if (!f)
		f = scope_lookup(&c->global, call->u.call.name);
	if (!f || f->kind != SYM_FAMILY) {
		if (!f)
			diag_error(c->d, call->u.call.name_where, "unknown family '%s'", call->u.call.name);
		else
			diag_error(c->d, call->u.call.name_where, "'%s' is a %s, not a family", call->u.call.name,
			           f->kind == SYM_BUILTIN ? "function" : "name");
		return;
	}
	call->sym = f;
	decl *fd = f->decl;
	exprvec *args = &call->u.call.args;
	if (args->len != fd->u.family.nparams) {
		diag_error(c->d, call->where, "%s takes %zu argument%s, not %zu", f->name, fd->u.family.nparams,
		           fd->u.family.nparams == 1 ? "" : "s", args->len);
		diag_note(c->d, fd->name_where, "%s is declared here", f->name);
		return;
	}
	bool ok = true;
	for (size_t i = 0; i < args->len; i++)
		if (!check_expr(c, x, args->items[i]))
			ok = false;
	if (!ok)
		return;
	val_kind on = fd->u.family.on.kind;
	if (on != var->vkind) {
		diag_error(c->d, call->u.call.name_where, "%s is a family on %s values but '%s' is %s", f->name,
		           on == K_BIN ? "bin" : on == K_CAT ? "cat" : on == K_INT ? "int" : "real", var->name,
		           var->vkind == K_BIN ? "bin" : var->vkind == K_CAT ? "cat" : var->vkind == K_INT ? "int" : "real");
		return;
	}
	/* the family's scope: its size names, its arguments, its value, and
	 * the built-in functions; not the model's names (a param k would
	 * clash with a family's sum(k in ...)) */
	scope *fs = arena_alloc(c->a, sizeof *fs);
	fs->parent = &c->builtins;
	ptrvec names = {0};
	int64_t sizes[16] = {0};
	for (size_t i = 0; i < args->len; i++) {
		if (names.len >= 15) {
			diag_error(c->d, call->where, "too many size names in family %s", f->name);
			return;
		}
		if (!bind_param(c, fs, &fd->u.family.params[i], args->items[i], &names, sizes, f->name)) {
			diag_note(c->d, fd->u.family.params[i].where, "declared here");
			return;
		}
	}
	if (on == K_CAT && fd->u.family.on.cat_k) {
		/* the family's value v takes the variable's values 0..cat_k-1 and
		 * indexes its arguments (l[v]), which are sized by the support:
		 * one of another size, or of a size nothing binds (on cat(M),
		 * on cat(7)), let l[v] read past l and its gradient write there */
		const expr *ke = fd->u.family.on.cat_k;
		int64_t want;
		if (ke->kind == E_NAME) {
			sym *k = scope_lookup(fs, ke->u.name);
			if (!k && ke->where.file == c->model_file)
				k = scope_lookup(&c->global, ke->u.name);
			if (!k || k->kind != SYM_DIM) {
				diag_error(c->d, ke->where,
				           "'%s' in on cat(%s) is not a size of family %s: name it in an argument's shape (l : real[%s])%s",
				           ke->u.name, ke->u.name, f->name, ke->u.name,
				           ke->where.file == c->model_file ? " or declare a dim of it" : "");
				diag_note(c->d, call->where, "in family %s, used by this conditional", f->name);
				return;
			}
			want = k->dim_value;
		} else if (!eval_int(c, ke, 2, CHECK_MAX_CATEGORIES, &want, "the number of categories")) {
			diag_note(c->d, call->where, "in family %s, used by this conditional", f->name);
			return;
		}
		if (var->cat_k && want != var->cat_k) { /* 0: its cat(K) was reported */
			diag_error(c->d, call->where, "%s here has %lld categories but '%s' is cat(%lld)", f->name,
			           (long long)want, var->name, (long long)var->cat_k);
			return;
		}
	}
	/* an error in the family's body is at the family (the stdlib's, which
	 * the user did not write): a note says which conditional uses it */
	int errors_before = c->d->errors;
	if (!fd->u.family.logp) {
		diag_error(c->d, fd->name_where, "family %s has no logp(v) = ... line", f->name);
		diag_note(c->d, call->where, "in family %s, used by this conditional", f->name);
		return;
	}
	sym *v = scope_add(c, fs, SYM_FAMILY_ARG, fd->u.family.logp_var, fd->u.family.logp_var_where);
	v->vkind = var->vkind;
	ctx fx = {.where = CTX_FAMILY_LOGP, .scope = fs};
	if (check_expr(c, &fx, fd->u.family.logp) && fd->u.family.logp->shape.rank != 0)
		diag_error(c->d, fd->u.family.logp->where, "logp of family %s must be a scalar", f->name);
	/* the sampler: its lets, then its value */
	scope *ss = arena_alloc(c->a, sizeof *ss);
	ss->parent = fs;
	fx.where = CTX_FAMILY_SAMPLE;
	fx.scope = ss;
	for (size_t i = 0; i < fd->u.family.nlets; i++) {
		family_let *l = &fd->u.family.lets[i];
		if (check_expr(c, &fx, l->value)) {
			sym *ly = scope_add(c, ss, SYM_FAMILY_ARG, l->name, l->where);
			ly->shape = l->value->shape;
			ly->vkind = l->value->is_int ? K_INT : K_REAL;
		}
	}
	if (!fd->u.family.sample)
		diag_error(c->d, fd->name_where, "family %s has no `sample = ...` line", f->name);
	else if (check_expr(c, &fx, fd->u.family.sample) && fd->u.family.sample->shape.rank != 0)
		diag_error(c->d, fd->u.family.sample->where, "the sample of family %s must be a scalar", f->name);
	if (c->d->errors > errors_before)
		diag_note(c->d, call->where, "in family %s, used by this conditional", f->name);
}

/* ----------------------------------------------------- lets and bodies */

/* Does an expression depend on the position (an index sym that is a
 * position, a sum before, or a per-position let)? */
static bool uses_position(const expr *e, const sym *pos)
{
	if (!e)
		return false;
	switch (e->kind) {
	case E_NAME:
		return e->sym == pos || (e->sym && e->sym->kind == SYM_LET && e->sym->uses_position);
	case E_INDEX:
		if (e->sym && e->sym->kind == SYM_LET)
			return true;
		for (size_t i = 0; i < e->u.index.args.len; i++)
			if (uses_position(e->u.index.args.items[i], pos))
				return true;
		return false;
	case E_CALL:
		for (size_t i = 0; i < e->u.call.args.len; i++)
			if (uses_position(e->u.call.args.items[i], pos))
				return true;
		return false;
	case E_UNARY:
		return uses_position(e->u.unary.operand, pos);
	case E_BINARY:
		return uses_position(e->u.binary.lhs, pos) || uses_position(e->u.binary.rhs, pos);
	case E_SUM_BEFORE:
		return true;
	case E_SUM_RANGE:
		return uses_position(e->u.sum.body, pos);
	case E_IF:
		return uses_position(e->u.cond.c, pos) || uses_position(e->u.cond.a, pos) || uses_position(e->u.cond.b, pos);
	default:
		return false;
	}
}

/* Lets in source order (a let sees the lets before it), then the arguments
 * of every conditional. */
void check_lets(checker *c)
{
	model *m = c->m;
	/* Lets are checked in order; hide the later ones while checking each. */
	for (size_t i = 0; i < m->lets.len; i++) {
		sym *y = m->lets.items[i];
		decl *dc = y->decl;
		scope s = {.parent = &c->global};
		ctx x = {.where = CTX_LET, .scope = &s};
		if (dc->u.let.index) {
			x.pos = scope_add(c, &s, SYM_INDEX, dc->u.let.index, dc->u.let.index_where);
		}
		/* a let may not refer to itself or to a later let: no cycles */
		c->lets_visible = i;
		bool ok = check_expr(c, &x, dc->u.let.value);
		c->lets_visible = m->lets.len;
		if (ok) {
			y->shape = dc->u.let.value->shape;
			y->uses_position = uses_position(dc->u.let.value, x.pos);
		}
	}
	for (size_t i = 0; i < c->conds.len; i++) {
		decl *dc = c->conds.items[i];
		sym *var = scope_lookup(&c->global, dc->name);
		if (!var || var->kind != SYM_DATA || var->cond != dc)
			continue;
		scope s = {.parent = &c->global};
		ctx x = {.where = CTX_COND, .scope = &s};
		if (dc->u.cond.index) {
			x.pos = scope_add(c, &s, SYM_INDEX, dc->u.cond.index, dc->u.cond.index_where);
			x.pos->shape.rank = 0;
		}
		check_family_call(c, &x, var, dc->u.cond.family);
	}
}

/* Counts the occurrences of `loglik` in e: those that are terms of the
 * top-level sum (through + - and unary -) go to *plus or *minus by their
 * sign; any other (inside a product, a function, ...) to *elsewhere. */
static void count_loglik(const expr *e, int sign, bool top, int *plus, int *minus, int *elsewhere)
{
	if (!e)
		return;
	switch (e->kind) {
	case E_NAME:
		if (strcmp(e->u.name, "loglik") == 0)
			*(top ? (sign > 0 ? plus : minus) : elsewhere) += 1;
		return;
	case E_UNARY:
		count_loglik(e->u.unary.operand, -sign, top, plus, minus, elsewhere);
		return;
	case E_BINARY: {
		bool sum = e->u.binary.op == OP_ADD || e->u.binary.op == OP_SUB;
		count_loglik(e->u.binary.lhs, sign, top && sum, plus, minus, elsewhere);
		count_loglik(e->u.binary.rhs, e->u.binary.op == OP_SUB ? -sign : sign, top && sum, plus, minus, elsewhere);
		return;
	}
	case E_CALL:
		for (size_t i = 0; i < e->u.call.args.len; i++)
			count_loglik(e->u.call.args.items[i], sign, false, plus, minus, elsewhere);
		return;
	case E_INDEX:
		count_loglik(e->u.index.base, sign, false, plus, minus, elsewhere);
		return;
	case E_IF:
		count_loglik(e->u.cond.c, sign, false, plus, minus, elsewhere);
		count_loglik(e->u.cond.a, sign, false, plus, minus, elsewhere);
		count_loglik(e->u.cond.b, sign, false, plus, minus, elsewhere);
		return;
	case E_SUM_RANGE: case E_SUM_BEFORE:
		count_loglik(e->u.sum.body, sign, false, plus, minus, elsewhere);
		return;
	default:
		return;
	}
}

/* `maximize loglik`, `maximize loglik - P` / `+ P`, or a free objective of
 * the params (no loglik, no data). */
void check_objective(checker *c)
{
	model *m = c->m;
	decl *o = m->objective;
	if (!o) {
		if (c->m->name)
			diag_error(c->d, (span){c->model_file, 0, 0}, "no objective: add `maximize loglik` (maximum likelihood)");
		return;
	}
	m->maximize = o->u.objective.maximize;
	if (o->u.objective.constraint) {
		diag_error(c->d, o->u.objective.constraint->where, "not supported yet: objectives with `subject to` (trust regions)");
		return;
	}
	expr *e = o->u.objective.value;
	scope s = {.parent = &c->global};
	ctx x = {.where = CTX_OBJECTIVE, .scope = &s};
	/* loglik, once, as a term of the top-level sum: the objective is then
	 * mean log p + (the rest), the rest computed with loglik read as 0 */
	int plus = 0, minus = 0, elsewhere = 0;
	count_loglik(e, 1, true, &plus, &minus, &elsewhere);
	if (plus + minus + elsewhere > 1 || elsewhere) {
		diag_error(c->d, e->where, "not supported yet: loglik must appear once, as a term of the objective (`loglik - 1e-4 * l2(W)`)");
		return;
	}
	if (minus || (plus && !m->maximize)) {
		if (minus && !m->maximize)
			diag_error(c->d, o->where, "not supported yet: `minimize -loglik ...`; write the same objective as `maximize loglik ...`");
		else
			diag_error(c->d, o->where, "this objective rewards improbable data: loglik must be maximized (`maximize loglik ...`)");
		return;
	}
	m->objective_has_loglik = plus == 1;
	if (!(e->kind == E_NAME && m->objective_has_loglik)) {
		m->penalty = e;
		m->penalty_sign = 1;
		if (m->objective_has_loglik) {
			sym *zero = scope_add(c, &s, SYM_DIM, "loglik", e->where);
			zero->dim_value = 0;
		}
	}
	if (m->objective_has_loglik && m->data.len == 0) {
		diag_error(c->d, e->where, "loglik needs at least one data variable");
		return;
	}
	if (m->penalty && check_expr(c, &x, m->penalty) && m->penalty->shape.rank != 0)
		diag_error(c->d, m->penalty->where, "the objective must be a scalar, not %s", shape_str(c->a, &m->penalty->shape));
}
