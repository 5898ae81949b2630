/* check.c -- from parsed declarations to a checked model.
 *
 * Resolves every name, evaluates dims (with -D overrides), computes the kind
 * and shape of every expression, lays out theta and the observation row,
 * and hands the order and causality questions to order.c.  Errors are
 * reported and checking goes on, so one run shows as many as it can; a
 * construct that is well-formed but not compiled yet gets "not supported
 * yet" at its location.
 */
#include <math.h>
#include <string.h>

#include "chainc.h"
#include "check_internal.h"

static const struct {
	const char *name;
	builtin_fn fn;
	int arity;
} builtins[] = {
	{"exp", FN_EXP, 1}, {"log", FN_LOG, 1}, {"log1p", FN_LOG1P, 1}, {"sqrt", FN_SQRT, 1},
	{"abs", FN_ABS, 1}, {"square", FN_SQUARE, 1}, {"sigmoid", FN_SIGMOID, 1},
	{"tanh", FN_TANH, 1}, {"relu", FN_RELU, 1}, {"softplus", FN_SOFTPLUS, 1},
	{"log_sigmoid", FN_LOG_SIGMOID, 1}, {"lfact", FN_LFACT, 1},
	{"sum", FN_SUM, 1}, {"mean", FN_MEAN, 1}, {"dot", FN_DOT, 2},
	{"logsumexp", FN_LOGSUMEXP, 1}, {"max", FN_MAX, 1},
	{"l2", FN_L2, 1}, {"l1", FN_L1, 1},
	{"uniform", FN_UNIFORM, 0}, {"normal", FN_NORMAL, 0}, {"gumbel", FN_GUMBEL, 0},
	{"poisson", FN_POISSON, 1},
	{"expected", FN_EXPECTED, 1}, {"kl", FN_KL, 1},
};

bool builtin_is_elementwise(int fn) { return fn <= FN_LFACT; }

/* ------------------------------------------------------------ scopes */

/* One symbol in a scope's index; the symbols of one name are chained,
 * latest first, as a lookup by kind needs the earlier ones too (a model's
 * family of a stdlib name beside the stdlib's). */
struct scope_entry {
	sym *y;
	uint64_t hash;
	scope_entry *older;     /* the previous symbol of this name in the scope */
};

/* The slot of a name in an indexed scope: its entry, or the empty slot
 * where it would go (linear probing; the table is at most half full). */
static scope_entry **index_slot(const scope *s, const char *name, uint64_t h)
{
	size_t mask = s->index_cap - 1;
	for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
		scope_entry *e = s->index[i];
		if (!e || (e->hash == h && strcmp(e->y->name, name) == 0))
			return &s->index[i];
	}
}

static void index_add(arena *a, scope *s, sym *y)
{
	if (2 * (s->index_names + 1) > s->index_cap) {
		/* double the table; the old one stays in the arena */
		scope_entry **old = s->index;
		size_t old_cap = s->index_cap;
		s->index_cap = old_cap ? 2 * old_cap : 4 * SCOPE_INDEX_MIN;
		s->index = arena_alloc(a, s->index_cap * sizeof *s->index);
		for (size_t i = 0; i < old_cap; i++)
			if (old[i])
				*index_slot(s, old[i]->y->name, old[i]->hash) = old[i];
	}
	scope_entry *e = arena_alloc(a, sizeof *e);
	e->y = y;
	e->hash = str_hash(y->name);
	scope_entry **slot = index_slot(s, y->name, e->hash);
	e->older = *slot;
	if (!*slot)
		s->index_names++;
	*slot = e;
}

/* The latest symbol of a name in one scope (of one kind, unless kind < 0). */
static sym *scope_find(const scope *s, const char *name, int kind)
{
	if (s->index) {
		for (scope_entry *e = *index_slot(s, name, str_hash(name)); e; e = e->older)
			if (kind < 0 || e->y->kind == (sym_kind)kind)
				return e->y;
		return NULL;
	}
	for (size_t i = s->syms.len; i-- > 0;) {
		sym *y = s->syms.items[i];
		if ((kind < 0 || y->kind == (sym_kind)kind) && strcmp(y->name, name) == 0)
			return y;
	}
	return NULL;
}

/* The innermost, latest declaration of a name: a model's own names shadow
 * the built-in functions (and a model's family a stdlib one). */
sym *scope_lookup(const scope *s, const char *name)
{
	for (; s; s = s->parent) {
		sym *y = scope_find(s, name, -1);
		if (y)
			return y;
	}
	return NULL;
}

/* Likewise among the symbols of one kind: `normal(...)` after `~` is the
 * family, `normal()` in a sampler the built-in draw. */
sym *scope_lookup_kind(const scope *s, const char *name, sym_kind kind)
{
	for (; s; s = s->parent) {
		sym *y = scope_find(s, name, (int)kind);
		if (y)
			return y;
	}
	return NULL;
}

sym *scope_add(checker *c, scope *s, sym_kind kind, const char *name, span where)
{
	sym *y = arena_alloc(c->a, sizeof *y);
	y->kind = kind;
	y->name = name;
	y->where = where;
	ptrvec_push(c->a, &s->syms, y);
	if (s->index)
		index_add(c->a, s, y);
	else if (s->syms.len > SCOPE_INDEX_MIN)
		for (size_t i = 0; i < s->syms.len; i++)
			index_add(c->a, s, s->syms.items[i]);
	return y;
}

static const char *sym_kind_name(sym_kind k)
{
	switch (k) {
	case SYM_DIM: return "dim";
	case SYM_DATA: return "data variable";
	case SYM_INPUT: return "input";
	case SYM_PARAM: return "param";
	case SYM_CONST: return "const";
	case SYM_EXTERN: return "extern function";
	case SYM_FAMILY: return "family";
	case SYM_LET: return "let";
	case SYM_INDEX: return "index";
	case SYM_FAMILY_ARG: return "family argument";
	case SYM_BUILTIN: return "function";
	}
	return "name";
}

/* A declared name must be new in the model's scope. */
static sym *declare(checker *c, sym_kind kind, const char *name, span where)
{
	sym *old = scope_lookup(&c->global, name);
	if (old && old->kind == SYM_BUILTIN && kind == SYM_FAMILY)
		old = scope_lookup_kind(&c->global, name, SYM_FAMILY);
	if (old && old->kind != SYM_BUILTIN) {
		if (old->kind == SYM_FAMILY && kind == SYM_FAMILY && c->in_stdlib == false && old->where.file != where.file) {
			/* a model may define its own family of a stdlib name: it shadows */
		} else {
			diag_error(c->d, where, "'%s' is already declared", name);
			diag_note(c->d, old->where, "previous declaration of %s '%s' is here", sym_kind_name(old->kind), name);
			return NULL;
		}
	}
	return scope_add(c, &c->global, kind, name, where);
}

/* ------------------------------------------------------ constant folding */

/* Evaluates a compile-time integer expression (numbers and dims).  Returns
 * false, with an error, when it is not one, or when it is too large for a
 * double to hold exactly: that was "must be an integer, not 1e+30" of an
 * integer, which says the wrong thing; it is out of the caller's range
 * lo..hi, which the message gives. */
bool eval_int(checker *c, const expr *e, int64_t lo, int64_t hi, int64_t *out, const char *what)
{
	double v;
	if (!eval_num(c, e, &v, what))
		return false;
	if (v != floor(v) && !isinf(v)) {
		diag_error(c->d, e->where, "%s must be an integer, not %g", what, v);
		return false;
	}
	if (fabs(v) > (double)CHECK_MAX_EXACT_INT) {
		/* every digit of an integer just past 2^53 (%g said 9.0072e+15) */
		diag_error(c->d, e->where, fabs(v) < 1e21 ? "%s is out of range: %.0f is not from %lld to %lld"
		                                          : "%s is out of range: %g is not from %lld to %lld",
		           what, v, (long long)lo, (long long)hi);
		return false;
	}
	*out = (int64_t)v;
	return true;
}

bool eval_num(checker *c, const expr *e, double *out, const char *what)
{
	double a, b;
	switch (e->kind) {
	case E_NUM:
		*out = e->u.num;
		return true;
	case E_NAME: {
		sym *y = scope_lookup(&c->global, e->u.name);
		if (y && y->kind == SYM_DIM) {
			*out = (double)y->dim_value;
			return true;
		}
		if (!y)
			diag_error(c->d, e->where, "unknown name '%s' in %s", e->u.name, what);
		else
			diag_error(c->d, e->where, "%s must be a constant; '%s' is a %s", what, e->u.name, sym_kind_name(y->kind));
		return false;
	}
	case E_UNARY:
		if (!eval_num(c, e->u.unary.operand, &a, what))
			return false;
		*out = -a;
		return true;
	case E_BINARY:
		if (!eval_num(c, e->u.binary.lhs, &a, what) || !eval_num(c, e->u.binary.rhs, &b, what))
			return false;
		switch (e->u.binary.op) {
		case OP_ADD: *out = a + b; return true;
		case OP_SUB: *out = a - b; return true;
		case OP_MUL: *out = a * b; return true;
		case OP_DIV:
			if (b == 0) {
				diag_error(c->d, e->where, "division by zero in %s", what);
				return false;
			}
			*out = a / b;
			return true;
		case OP_POW: *out = pow(a, b); return true;
		default: break;
		}
		break;
	case E_ERROR:
		return false;
	default:
		break;
	}
	diag_error(c->d, e->where, "%s must be a constant expression", what);
	return false;
}

/* ---------------------------------------------------------------- types */

/* Resolves a declared type's dims to a shape, and a cat(K)'s K.  Returns
 * whether the shape is good; a bad K is reported apart and leaves *cat_k
 * 0 (`the number of categories is not known`), which the checks against K
 * skip, so that a bad cat(2.5)[n] says so once: its K used to fail the
 * whole type, the variable became a scalar, and each use of it got an
 * error of its own ("'x' is a scalar", "... but 'x' is cat(0)"). */
static bool check_type(checker *c, const type_expr *t, shape *s, int64_t *cat_k, const char *name)
{
	bool ok = true;
	memset(s, 0, sizeof *s);
	if (t->dims.len > SHAPE_MAX_RANK) {
		diag_error(c->d, t->where, "'%s' has %zu dimensions; at most %d are supported", name, t->dims.len, SHAPE_MAX_RANK);
		return false;
	}
	s->rank = (int)t->dims.len;
	int64_t total = 1;
	for (size_t i = 0; i < t->dims.len; i++) {
		int64_t v;
		if (!eval_int(c, t->dims.items[i], 1, CHECK_MAX_ELEMENTS, &v, "a size")) {
			ok = false;
			continue;
		}
		if (v < 1) {
			diag_error(c->d, t->dims.items[i]->where, "size of '%s' must be at least 1, not %lld", name, (long long)v);
			ok = false;
			continue;
		}
		if (v > CHECK_MAX_ELEMENTS || total * v > CHECK_MAX_ELEMENTS) {
			diag_error(c->d, t->dims.items[i]->where, "'%s' is too large: more than %lld elements", name, (long long)CHECK_MAX_ELEMENTS);
			ok = false;
			continue;
		}
		s->dims[i] = v;
		total *= v;
	}
	if (cat_k) {
		*cat_k = 0;
		int64_t k;
		if (t->kind == K_CAT && t->cat_k && eval_int(c, t->cat_k, 2, CHECK_MAX_CATEGORIES, &k, "the number of categories")) {
			if (k < 2 || k > CHECK_MAX_CATEGORIES)
				diag_error(c->d, t->cat_k->where, "the number of categories must be from 2 to %lld, not %lld",
				           (long long)CHECK_MAX_CATEGORIES, (long long)k);
			else
				*cat_k = k;
		}
	}
	return ok;
}

int64_t shape_size(const shape *s)
{
	int64_t n = 1;
	for (int i = 0; i < s->rank; i++)
		n *= s->dims[i];
	return n;
}

char *shape_str(arena *a, const shape *s)
{
	if (s->rank == 0)
		return "a scalar";
	if (s->rank == 1)
		return arena_printf(a, "real[%lld]", (long long)s->dims[0]);
	return arena_printf(a, "real[%lld, %lld]", (long long)s->dims[0], (long long)s->dims[1]);
}

static const char *kind_name(val_kind k)
{
	switch (k) {
	case K_BIN: return "bin";
	case K_CAT: return "cat";
	case K_INT: return "int";
	case K_REAL: return "real";
	}
	return "?";
}

/* -------------------------------------------------------- declarations */

/* Flattens a (nested) array literal of the given shape into values. */
static bool const_values(checker *c, const expr *e, const shape *s, int dim, double *out, int64_t *at)
{
	if (dim == s->rank) {
		double v;
		if (!eval_num(c, e, &v, "a const value"))
			return false;
		out[(*at)++] = v;
		return true;
	}
	if (e->kind != E_ARRAY) {
		diag_error(c->d, e->where, "expected an array of %lld elements here", (long long)s->dims[dim]);
		return false;
	}
	if ((int64_t)e->u.array.len != s->dims[dim]) {
		diag_error(c->d, e->where, "expected %lld elements here, found %zu", (long long)s->dims[dim], e->u.array.len);
		return false;
	}
	for (size_t i = 0; i < e->u.array.len; i++)
		if (!const_values(c, e->u.array.items[i], s, dim + 1, out, at))
			return false;
	return true;
}

static void check_const(checker *c, decl *dc, sym *y)
{
	int64_t n = shape_size(&y->shape);
	int64_t at = 0;
	if (!dc->u.var.value) {
		diag_error(c->d, dc->where, "const '%s' needs a value: `= ...`", y->name);
		return;
	}
	if (y->shape.rank == 0 && dc->u.var.value->kind == E_ARRAY) {
		diag_error(c->d, dc->u.var.value->where, "const '%s' is a scalar but its value is an array", y->name);
		return;
	}
	y->values = arena_alloc(c->a, (size_t)n * sizeof(double));
	if (!const_values(c, dc->u.var.value, &y->shape, 0, y->values, &at)) {
		y->values = NULL; /* reported: its users say nothing more */
		return;
	}
	for (int64_t i = 0; i < n; i++) {
		double v = y->values[i];
		bool bad = !isfinite(v) ||
		           (y->vkind == K_BIN && v != 0 && v != 1) ||
		           (y->vkind == K_INT && v != floor(v)) ||
		           (y->vkind == K_CAT && (v != floor(v) || v < 0 || (y->cat_k && v >= (double)y->cat_k)));
		if (bad) {
			diag_error(c->d, dc->u.var.value->where, "element %lld of const '%s' is %g, which is not a valid %s",
			           (long long)i, y->name, v, kind_name(y->vkind));
			y->values = NULL;
			return;
		}
	}
}

/* `param W : real[..] ~ INIT`: INIT is a number, normal(mu, sd) or uniform(lo, hi). */
static void check_param_init(checker *c, decl *dc)
{
	expr *e = dc->u.var.init;
	double v, w;
	if (!e)
		return;
	if (e->kind == E_CALL && (strcmp(e->u.call.name, "normal") == 0 || strcmp(e->u.call.name, "uniform") == 0)) {
		bool normal = e->u.call.name[0] == 'n';
		if (e->u.call.args.len != 2) {
			diag_error(c->d, e->where, "%s(...) takes 2 arguments, not %zu", e->u.call.name, e->u.call.args.len);
			return;
		}
		if (!eval_num(c, e->u.call.args.items[0], &v, "an initialisation") ||
		    !eval_num(c, e->u.call.args.items[1], &w, "an initialisation"))
			return;
		/* the draws are mu + sd z with |z| < 8.7 (Box-Muller from uniforms
		 * at least 2^-54: sqrt(108 log 2) = 8.65), and lo + (hi - lo) u:
		 * both must stay finite, or the params start at inf */
		if (normal && !(w > 0 && isfinite(w)))
			diag_error(c->d, e->u.call.args.items[1]->where, "the standard deviation of normal(mu, sd) must be > 0, not %g", w);
		else if (!normal && !(v < w && isfinite(v) && isfinite(w)))
			diag_error(c->d, e->where, "uniform(lo, hi) needs lo < hi, not %g and %g", v, w);
		else if (!isfinite(v))
			diag_error(c->d, e->u.call.args.items[0]->where, "the mean of normal(mu, sd) must be finite");
		else if (normal ? !isfinite(fabs(v) + 8.7 * w) : !isfinite(w - v))
			diag_error(c->d, e->where, "%s(%g, %g) draws values beyond the largest double (%s)", e->u.call.name, v, w,
			           normal ? "mu +- 8.7 sd must be finite" : "hi - lo must be finite");
		return;
	}
	if (eval_num(c, e, &v, "an initialisation (a number, normal(mu, sd) or uniform(lo, hi))") && !isfinite(v))
		diag_error(c->d, e->where, "the initial value must be finite");
}

/* ------------------------------------------------------------- driver */

static void add_builtins(checker *c)
{
	c->global.parent = &c->builtins;
	for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
		sym *y = scope_add(c, &c->builtins, SYM_BUILTIN, builtins[i].name, (span){0, 0, 0});
		y->builtin = builtins[i].fn;
		y->cat_k = builtins[i].arity; /* reused: arity */
	}
}

static void apply_override(checker *c, sym *y, dim_override *ov, size_t nov)
{
	for (size_t i = 0; i < nov; i++)
		if (strcmp(ov[i].name, y->name) == 0) {
			y->dim_value = ov[i].value;
			ov[i].used = true;
		}
}

/* Declares the model-level names, in source order. */
static void declare_all(checker *c, program *prog, dim_override *ov, size_t nov)
{
	model *m = c->m;
	bool seen_model = false, first = true;
	int64_t theta = 0;
	for (size_t i = 0; i < prog->decls.len; i++) {
		decl *dc = prog->decls.items[i];
		c->in_stdlib = dc->where.file != c->model_file;
		if (dc->kind == D_ERROR)
			continue;
		if (!c->in_stdlib && first && dc->kind != D_MODEL) {
			diag_error(c->d, dc->where, "a model file starts with `model NAME`");
			seen_model = true; /* reported once */
		}
		if (!c->in_stdlib)
			first = false;
		if (c->in_stdlib && dc->kind != D_FAMILY)
			continue;
		sym *y;
		switch (dc->kind) {
		case D_MODEL:
			if (m->name && !seen_model) {
				diag_error(c->d, dc->where, "a second `model` line; a file describes one model");
				diag_note(c->d, m->name_where, "the model is named here");
			} else if (!m->name) {
				m->name = dc->name;
				m->name_where = dc->name_where;
				if (strlen(dc->name) > 64)
					diag_error(c->d, dc->name_where, "model name is longer than 64 characters");
			}
			break;
		case D_DIM:
			if (!(y = declare(c, SYM_DIM, dc->name, dc->name_where)))
				break;
			y->decl = dc;
			if (eval_int(c, dc->u.dim.value, 1, CHECK_MAX_ELEMENTS, &y->dim_value, "a dim")) {
				apply_override(c, y, ov, nov);
				if (y->dim_value < 1 || y->dim_value > CHECK_MAX_ELEMENTS) {
					diag_error(c->d, dc->u.dim.value->where, "dim '%s' must be between 1 and %lld, not %lld", y->name,
					           (long long)CHECK_MAX_ELEMENTS, (long long)y->dim_value);
					y->dim_value = 1;
				}
			} else {
				y->dim_value = 1;
			}
			ptrvec_push(c->a, &m->dims, y);
			break;
		case D_DATA:
		case D_INPUT:
		case D_PARAM:
		case D_CONST: {
			sym_kind k = dc->kind == D_DATA ? SYM_DATA : dc->kind == D_INPUT ? SYM_INPUT
			           : dc->kind == D_PARAM ? SYM_PARAM : SYM_CONST;
			if (!(y = declare(c, k, dc->name, dc->name_where)))
				break;
			y->decl = dc;
			y->vkind = dc->u.var.type.kind;
			if (!check_type(c, &dc->u.var.type, &y->shape, &y->cat_k, y->name))
				memset(&y->shape, 0, sizeof y->shape);
			if (k == SYM_PARAM) {
				if (y->vkind != K_REAL)
					diag_error(c->d, dc->u.var.type.where, "a param is real, not %s", kind_name(y->vkind));
				y->offset = (size_t)theta;
				theta += shape_size(&y->shape);
				if (theta > CHECK_MAX_ELEMENTS)
					diag_error(c->d, dc->where, "the model has more than %lld parameters", (long long)CHECK_MAX_ELEMENTS);
				check_param_init(c, dc);
				ptrvec_push(c->a, &m->params, y);
			} else if (k == SYM_CONST) {
				check_const(c, dc, y);
				ptrvec_push(c->a, &m->consts, y);
			} else {
				if (dc->u.var.init || dc->u.var.value)
					diag_error(c->d, dc->where, "%s '%s' takes no initialisation or value", sym_kind_name(k), y->name);
				ptrvec_push(c->a, k == SYM_DATA ? &m->data : &m->inputs, y);
			}
			break;
		}
		case D_EXTERN:
			if ((y = declare(c, SYM_EXTERN, dc->name, dc->name_where))) {
				y->decl = dc;
				ptrvec_push(c->a, &m->externs, y);
			}
			break;
		case D_FAMILY:
			if ((y = declare(c, SYM_FAMILY, dc->name, dc->name_where))) {
				y->decl = dc;
				ptrvec_push(c->a, &m->families, y);
			}
			break;
		case D_LET:
			if ((y = declare(c, SYM_LET, dc->name, dc->name_where))) {
				y->decl = dc;
				y->let_indexed = dc->u.let.index != NULL;
				y->let_index = m->lets.len;
				ptrvec_push(c->a, &m->lets, y);
			}
			break;
		case D_ORDER:
			if (c->order_decl) {
				diag_error(c->d, dc->where, "a second `order` line; list every variable in one");
				diag_note(c->d, c->order_decl->where, "the order is given here");
			} else {
				c->order_decl = dc;
			}
			break;
		case D_COND:
			ptrvec_push(c->a, &c->conds, dc);
			break;
		case D_OBJECTIVE:
			if (m->objective) {
				diag_error(c->d, dc->where, "a second objective; a model has one");
				diag_note(c->d, m->objective->where, "the objective is here");
			} else {
				m->objective = dc;
			}
			break;
		case D_ERROR:
			break;
		}
	}
	c->in_stdlib = false;
	m->num_params = theta;
	for (size_t i = 0; i < nov; i++)
		if (!ov[i].used)
			diag_error(c->d, (span){c->model_file, 0, 0}, "-D %s=%lld: the model has no dim named '%s'",
			           ov[i].name, (long long)ov[i].value, ov[i].name);
	if (!m->name && c->d->errors == 0)
		diag_error(c->d, (span){c->model_file, 0, 0}, "no `model NAME` line: a model file starts with one");
}

/* The observation row: inputs, then data, each in declaration order.  At
 * most CHECK_MAX_ELEMENTS values, like the params, and of them at most
 * CHECK_MAX_POSITIONS data values: the descriptor has two tables of a
 * size_t per position, built in the compiler's memory several times over
 * (64 data variables of 2^28 values aborted chain build for want of it;
 * two built an object whose .rodata passed 4 GiB; one took 64 s and 17 GB). */
static void layout_obs(checker *c)
{
	int64_t off = 0, positions = 0;
	bool over = false;
	for (size_t i = 0; i < c->m->inputs.len + c->m->data.len; i++) {
		bool data = i >= c->m->inputs.len;
		sym *y = data ? c->m->data.items[i - c->m->inputs.len] : c->m->inputs.items[i];
		y->offset = (size_t)off;
		off += shape_size(&y->shape);
		if (off > CHECK_MAX_ELEMENTS && !over) {
			diag_error(c->d, y->where, "an observation of model %s has more than %lld values (inputs and data together)",
			           c->m->name ? c->m->name : "?", (long long)CHECK_MAX_ELEMENTS);
			over = true;
		}
		/* each data value is a position, with its entries in the
		 * descriptor's tables: CHECK_MAX_POSITIONS */
		if (data && (positions += shape_size(&y->shape)) > CHECK_MAX_POSITIONS && !over) {
			diag_error(c->d, y->where, "model %s has more than %lld positions (data values, one a step of the chain rule; inputs are not positions)",
			           c->m->name ? c->m->name : "?", (long long)CHECK_MAX_POSITIONS);
			over = true;
		}
	}
	c->m->obs_size = off;
}

/* Each data variable has exactly one conditional, of the right form. */
static void check_conditionals(checker *c)
{
	for (size_t i = 0; i < c->conds.len; i++) {
		decl *dc = c->conds.items[i];
		sym *y = scope_lookup(&c->global, dc->name);
		if (!y) {
			diag_error(c->d, dc->name_where, "unknown variable '%s'", dc->name);
			continue;
		}
		if (y->kind != SYM_DATA) {
			diag_error(c->d, dc->name_where, "'%s' is a %s; only data variables have conditionals", dc->name, sym_kind_name(y->kind));
			if (y->kind == SYM_INPUT)
				diag_note(c->d, y->where, "inputs are given, never modelled");
			continue;
		}
		if (y->cond) {
			diag_error(c->d, dc->where, "'%s' has two conditionals", dc->name);
			diag_note(c->d, y->cond->where, "the first is here");
			continue;
		}
		y->cond = dc;
		if (y->shape.rank > 1)
			diag_error(c->d, dc->where, "not supported yet: conditionals of %d-dimensional data variables; declare '%s' as a vector",
			           y->shape.rank, y->name);
		else if (y->shape.rank == 1 && !dc->u.cond.index)
			diag_error(c->d, dc->name_where, "'%s' is an array: write `%s[i] ~ ...`", y->name, y->name);
		else if (y->shape.rank == 0 && dc->u.cond.index)
			diag_error(c->d, dc->u.cond.index_where, "'%s' is a scalar: write `%s ~ ...`", y->name, y->name);
	}
	for (size_t i = 0; i < c->m->data.len; i++) {
		sym *y = c->m->data.items[i];
		if (!y->cond)
			diag_error(c->d, y->where, "data variable '%s' has no conditional: add `%s%s ~ FAMILY(...)`", y->name, y->name,
			           y->shape.rank ? "[i]" : "");
	}
}

model *check_program(diag_ctx *d, program *prog, dim_override *ov, size_t nov)
{
	checker cc = {0}, *c = &cc;
	c->d = d;
	c->a = d->arena;
	c->m = arena_alloc(c->a, sizeof *c->m);
	/* the model file is the last file parsed: the stdlib files come first */
	c->model_file = d->files.len ? (uint32_t)d->files.len - 1 : 0;
	c->lets_visible = SIZE_MAX;
	add_builtins(c);
	declare_all(c, prog, ov, nov);
	layout_obs(c);
	check_conditionals(c);
	check_lets(c);
	check_order(c);
	if (d->errors == 0)
		check_causality_all(c);
	check_objective(c);
	if (d->errors)
		return NULL;
	return c->m;
}
