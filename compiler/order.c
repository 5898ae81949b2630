/* order.c -- the factorization order, and the proof that every conditional
 * sees only what comes before it.
 *
 * The order is a list of data variables, each visited in its own element
 * order (natural, reverse, a const permutation, or a seeded random one).
 * Causality is then a syntactic property: in the conditional of x[i], x may
 * only appear as x[j] with j bound by `sum(j before i)`, and another data
 * variable only if it comes earlier in the order (then whole).
 */
#include <string.h>

#include "chain/rng.h"
#include "check_internal.h"

#define MAX_CAUSAL_DEPTH 400

static const char *form_name(order_form f)
{
	switch (f) {
	case ORD_NATURAL: return "natural";
	case ORD_REVERSE: return "reverse";
	case ORD_BY: return "by";
	case ORD_RANDOM: return "random";
	}
	return "?";
}

/* Places y in the order by one order item, filling y->perm for the forms
 * that need a table; false (with an error) when it cannot.  The natural
 * and reverse orders are computed (order_elem), not stored at 8 bytes a
 * position (2 GiB at 2^28). */
static bool build_perm(checker *c, sym *y, const order_item *it)
{
	int64_t n = shape_size(&y->shape);
	y->ordered = true;
	y->order_form = it->form;
	if (it->form != ORD_NATURAL && y->shape.rank == 0) {
		diag_error(c->d, it->where, "'%s' is a scalar: an order of form %s needs an array", y->name, form_name(it->form));
		return false;
	}
	if (it->form == ORD_NATURAL || it->form == ORD_REVERSE)
		return true;
	y->perm = arena_alloc(c->a, (size_t)n * sizeof(int64_t));
	switch (it->form) {
	case ORD_NATURAL:
	case ORD_REVERSE:
		return true; /* computed: above */
	case ORD_RANDOM: {
		int64_t seed;
		if (!eval_int(c, it->seed, 0, CHECK_MAX_EXACT_INT, &seed, "a random order's seed"))
			return false;
		if (seed < 0) {
			diag_error(c->d, it->seed->where, "a random order's seed is out of range: %lld is not from 0 to %lld",
			           (long long)seed, (long long)CHECK_MAX_EXACT_INT);
			return false;
		}
		/* Fisher-Yates with the counter-based generator: the same seed gives
		 * the same permutation on every machine. */
		for (int64_t k = 0; k < n; k++)
			y->perm[k] = k;
		for (int64_t k = n - 1; k > 0; k--) {
			uint64_t r = chain_rng_bits((uint64_t)seed, CHAIN_STREAM_DATA, (uint64_t)k, 0, 0);
			int64_t j = (int64_t)(r % (uint64_t)(k + 1));
			int64_t t = y->perm[k];
			y->perm[k] = y->perm[j];
			y->perm[j] = t;
		}
		return true;
	}
	case ORD_BY: {
		sym *p = scope_lookup(&c->global, it->perm);
		if (!p) {
			diag_error(c->d, it->perm_where, "unknown name '%s'", it->perm);
			return false;
		}
		if (p->kind != SYM_CONST || p->vkind != K_INT || p->shape.rank != 1) {
			diag_error(c->d, it->perm_where, "'%s' must be a `const %s : int[%lld]` permutation", it->perm, it->perm, (long long)n);
			return false;
		}
		if (!p->values)
			return false; /* its value had errors, already reported */
		if (p->shape.dims[0] != n) {
			diag_error(c->d, it->perm_where, "'%s' has %lld entries but '%s' has %lld elements", it->perm,
			           (long long)p->shape.dims[0], y->name, (long long)n);
			return false;
		}
		uint8_t *seen = arena_alloc(c->a, (size_t)n);
		for (int64_t k = 0; k < n; k++) {
			double v = p->values[k];
			if (v < 0 || v >= (double)n) {
				diag_error(c->d, it->perm_where, "'%s' is not a permutation: entry %lld is %g, outside 0..%lld", it->perm,
				           (long long)k, v, (long long)n - 1);
				diag_note(c->d, p->where, "'%s' is declared here", it->perm);
				return false;
			}
			if (seen[(int64_t)v]++) {
				diag_error(c->d, it->perm_where, "'%s' is not a permutation: %g appears twice", it->perm, v);
				diag_note(c->d, p->where, "'%s' is declared here", it->perm);
				return false;
			}
			y->perm[k] = (int64_t)v;
		}
		return true;
	}
	}
	return false;
}

void check_order(checker *c)
{
	model *m = c->m;
	decl *od = c->order_decl;
	if (od) {
		for (size_t i = 0; i < od->u.order.nitems; i++) {
			order_item *it = &od->u.order.items[i];
			sym *y = scope_lookup(&c->global, it->var);
			if (!y) {
				diag_error(c->d, it->var_where, "unknown variable '%s' in the order", it->var);
				continue;
			}
			if (y->kind != SYM_DATA) {
				diag_error(c->d, it->var_where, "'%s' is a %s; the order lists data variables", it->var,
				           y->kind == SYM_INPUT ? "input (given, never modelled)" : y->kind == SYM_PARAM ? "param" : "name");
				continue;
			}
			if (y->ordered) {
				diag_error(c->d, it->var_where, "'%s' appears twice in the order", it->var);
				continue;
			}
			if (!build_perm(c, y, it))
				continue;
			y->order_rank = (int)m->order.len;
			ptrvec_push(c->a, &m->order, y);
		}
		for (size_t i = 0; i < m->data.len; i++) {
			sym *y = m->data.items[i];
			if (!y->ordered) {
				diag_error(c->d, od->where, "data variable '%s' is missing from the order", y->name);
				diag_note(c->d, y->where, "'%s' is declared here", y->name);
			}
		}
	} else {
		order_item natural = {.form = ORD_NATURAL};
		for (size_t i = 0; i < m->data.len; i++) {
			sym *y = m->data.items[i];
			build_perm(c, y, &natural);
			y->order_rank = (int)m->order.len;
			ptrvec_push(c->a, &m->order, y);
		}
	}
	int64_t pos = 0;
	for (size_t i = 0; i < m->order.len; i++) {
		sym *y = m->order.items[i];
		y->first_pos = pos;
		pos += shape_size(&y->shape);
	}
	m->num_positions = pos;
}

/* ------------------------------------------------------------ causality */

typedef struct causal {
	checker *c;
	sym *var;            /* whose conditional this is */
	const char *pos;     /* the position's name in the current let/conditional */
	const char *before[64]; /* names bound by enclosing sum(j before i) */
	int nbefore;
	int depth;
	span use;            /* where the let being walked is used, for notes */
	bool in_let;
} causal;

static void causal_walk(causal *k, const expr *e);

static bool bound_before(const causal *k, const expr *idx)
{
	if (idx->kind != E_NAME)
		return false;
	for (int i = 0; i < k->nbefore; i++)
		if (strcmp(k->before[i], idx->u.name) == 0)
			return true;
	return false;
}

/* When the offending reference is inside a let: where the let is used. */
static void note_let(const causal *k)
{
	if (k->in_let)
		diag_note(k->c->d, k->use, "through the let used here");
}

/* A let's body is checked where the let is used: its position is the
 * conditional's, its `sum(j before i)` bind anew. */
static void walk_let(causal *k, const expr *use, const sym *let)
{
	causal inner = *k;
	inner.pos = let->decl->u.let.index;
	inner.nbefore = 0;
	if (!k->in_let)
		inner.use = use->where;
	inner.in_let = true;
	causal_walk(&inner, let->decl->u.let.value);
}

static void later_variable(causal *k, const expr *e, const sym *w)
{
	diag_error(k->c->d, e->where, "the conditional of '%s' may not use '%s': '%s' comes after '%s' in the order", k->var->name,
	           w->name, w->name, k->var->name);
	note_let(k);
	if (k->c->order_decl)
		diag_note(k->c->d, k->c->order_decl->where, "the order is given here");
}

static void causal_walk(causal *k, const expr *e)
{
	if (!e || ++k->depth > MAX_CAUSAL_DEPTH) {
		if (e)
			k->depth--;
		return;
	}
	const sym *y = e->sym;
	switch (e->kind) {
	case E_NAME:
		if (y && y->kind == SYM_DATA) {
			if (y == k->var) {
				diag_error(k->c->d, e->where,
				           "the conditional of %s[%s] may not use all of '%s': that includes %s[%s] itself and the elements after it",
				           y->name, k->pos ? k->pos : "i", y->name, y->name, k->pos ? k->pos : "i");
				note_let(k);
			} else if (y->order_rank > k->var->order_rank)
				later_variable(k, e, y);
		} else if (y && y->kind == SYM_LET) {
			walk_let(k, e, y);
		}
		break;
	case E_INDEX:
		for (size_t i = 0; i < e->u.index.args.len; i++)
			causal_walk(k, e->u.index.args.items[i]);
		if (y && y->kind == SYM_DATA) {
			if (y == k->var) {
				const expr *idx = e->u.index.args.len == 1 ? e->u.index.args.items[0] : NULL;
				if (!idx || !bound_before(k, idx)) {
					const char *p = k->pos ? k->pos : "i";
					if (idx && idx->kind == E_NAME && k->pos && strcmp(idx->u.name, k->pos) == 0)
						diag_error(k->c->d, e->where, "%s[%s] may not depend on itself: use %s[j] with sum(j before %s)",
						           y->name, p, y->name, p);
					else
						diag_error(k->c->d, e->where,
						           "%s[%s] may not depend on this element of '%s': only %s[j] with j bound by sum(j before %s) comes before %s[%s] in the order",
						           y->name, p, y->name, y->name, p, y->name, p);
					note_let(k);
				}
			} else if (y->order_rank > k->var->order_rank)
				later_variable(k, e, y);
		} else if (y && y->kind == SYM_LET) {
			walk_let(k, e, y);
		}
		break;
	case E_CALL:
		for (size_t i = 0; i < e->u.call.args.len; i++)
			causal_walk(k, e->u.call.args.items[i]);
		break;
	case E_UNARY:
		causal_walk(k, e->u.unary.operand);
		break;
	case E_BINARY:
		causal_walk(k, e->u.binary.lhs);
		causal_walk(k, e->u.binary.rhs);
		break;
	case E_SUM_BEFORE:
		if (k->nbefore < 64) {
			k->before[k->nbefore++] = e->u.sum.var;
			causal_walk(k, e->u.sum.body);
			k->nbefore--;
		} else {
			diag_error(k->c->d, e->where, "sums nested more than 64 deep");
		}
		break;
	case E_SUM_RANGE:
		causal_walk(k, e->u.sum.body);
		break;
	case E_IF:
		causal_walk(k, e->u.cond.c);
		causal_walk(k, e->u.cond.a);
		causal_walk(k, e->u.cond.b);
		break;
	default:
		break;
	}
	k->depth--;
}

void check_causality_all(checker *c)
{
	for (size_t i = 0; i < c->m->order.len; i++) {
		sym *v = c->m->order.items[i];
		if (!v->cond)
			continue;
		causal k = {.c = c, .var = v, .pos = v->cond->u.cond.index};
		causal_walk(&k, v->cond->u.cond.family);
	}
}
