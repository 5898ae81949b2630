/* ast_print.c -- prints the AST, one declaration per line, expressions as
 * fully parenthesised prefix forms, so a test (or a person debugging) sees
 * exactly how a file was parsed:
 *
 *     let h[i] = (sigmoid (+ c (sum j before i (* (index W : j) (index x j)))))
 *     x[i] ~ (bernoulli_logit (+ (index b i) (dot (index V i :) (index h i))))
 *
 * Numbers print in the shortest form that reads back to the same double.
 * Recursion is bounded: below AST_PRINT_MAX_DEPTH levels a subtree prints
 * as "..." (the parser never builds trees that deep, but other passes may
 * hand us anything).
 */
#include "chainc.h"

#include <stdlib.h>
#include <string.h>

#define AST_PRINT_MAX_DEPTH (2 * PARSE_MAX_DEPTH + 16)

static const char *const binop_text[] = {
	[OP_ADD] = "+", [OP_SUB] = "-", [OP_MUL] = "*", [OP_DIV] = "/",
	[OP_POW] = "^", [OP_MATMUL] = "@", [OP_LT] = "<", [OP_LE] = "<=",
	[OP_GT] = ">", [OP_GE] = ">=", [OP_EQ] = "==", [OP_NE] = "!=",
	[OP_AND] = "&&", [OP_OR] = "||",
};

static void print_num(FILE *out, double v)
{
	char buf[64];
	if (v > -1e15 && v < 1e15 && v == (double)(long long)v) {
		fprintf(out, "%lld", (long long)v);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof buf, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	fputs(buf, out);
}

static void print_expr(FILE *out, const expr *e, int depth);

static void print_list(FILE *out, const exprvec *v, const char *sep, int depth)
{
	for (size_t i = 0; i < v->len; i++) {
		if (i)
			fputs(sep, out);
		print_expr(out, v->items[i], depth);
	}
}

static void print_expr(FILE *out, const expr *e, int depth)
{
	if (!e) {
		fputs("<null>", out);
		return;
	}
	if (depth > AST_PRINT_MAX_DEPTH) {
		fputs("...", out);
		return;
	}
	depth++;
	switch (e->kind) {
	case E_ERROR:
		fputs("<error>", out);
		break;
	case E_NUM:
		print_num(out, e->u.num);
		break;
	case E_NAME:
		fputs(e->u.name ? e->u.name : "<null>", out);
		break;
	case E_SLICE:
		fputs(":", out);
		break;
	case E_INDEX:
		fputs("(index ", out);
		print_expr(out, e->u.index.base, depth);
		if (e->u.index.args.len)
			fputc(' ', out);
		print_list(out, &e->u.index.args, " ", depth);
		fputc(')', out);
		break;
	case E_CALL:
		fprintf(out, "(%s", e->u.call.name ? e->u.call.name : "<null>");
		if (e->u.call.args.len)
			fputc(' ', out);
		print_list(out, &e->u.call.args, " ", depth);
		fputc(')', out);
		break;
	case E_UNARY:
		fprintf(out, "(%c ", (char)e->u.unary.op);
		print_expr(out, e->u.unary.operand, depth);
		fputc(')', out);
		break;
	case E_BINARY: {
		unsigned op = (unsigned)e->u.binary.op;
		const char *t = op < sizeof binop_text / sizeof *binop_text ? binop_text[op] : "?";
		fprintf(out, "(%s ", t);
		print_expr(out, e->u.binary.lhs, depth);
		fputc(' ', out);
		print_expr(out, e->u.binary.rhs, depth);
		fputc(')', out);
		break;
	}
	case E_SUM_BEFORE:
		fprintf(out, "(sum %s before %s ", e->u.sum.var, e->u.sum.pos);
		print_expr(out, e->u.sum.body, depth);
		fputc(')', out);
		break;
	case E_SUM_RANGE:
		fprintf(out, "(sum %s in ", e->u.sum.var);
		print_expr(out, e->u.sum.lo, depth);
		fputc(' ', out);
		print_expr(out, e->u.sum.hi, depth);
		fputc(' ', out);
		print_expr(out, e->u.sum.body, depth);
		fputc(')', out);
		break;
	case E_IF:
		fputs("(if ", out);
		print_expr(out, e->u.cond.c, depth);
		fputc(' ', out);
		print_expr(out, e->u.cond.a, depth);
		fputc(' ', out);
		print_expr(out, e->u.cond.b, depth);
		fputc(')', out);
		break;
	case E_ARRAY:
		fputc('[', out);
		print_list(out, &e->u.array, " ", depth);
		fputc(']', out);
		break;
	default:
		fprintf(out, "<kind %d>", (int)e->kind);
		break;
	}
}

void ast_print_expr(FILE *out, const expr *e)
{
	print_expr(out, e, 0);
}

static void print_type(FILE *out, const type_expr *t)
{
	switch (t->kind) {
	case K_BIN: fputs("bin", out); break;
	case K_INT: fputs("int", out); break;
	case K_REAL: fputs("real", out); break;
	case K_CAT:
		fputs("cat(", out);
		print_expr(out, t->cat_k, 0);
		fputc(')', out);
		break;
	default:
		fputs("<kind>", out);
		break;
	}
	if (t->dims.len) {
		fputc('[', out);
		print_list(out, &t->dims, ", ", 0);
		fputc(']', out);
	}
}

static void print_params(FILE *out, const family_param *p, size_t n)
{
	fputc('(', out);
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputs(", ", out);
		fputs(p[i].name, out);
		if (p[i].has_type) {
			fputs(" : ", out);
			print_type(out, &p[i].type);
		}
	}
	fputc(')', out);
}

static void print_decl(FILE *out, const decl *d)
{
	static const char *const var_kw[] = {
		[D_DATA] = "data", [D_INPUT] = "input", [D_PARAM] = "param", [D_CONST] = "const",
	};
	switch (d->kind) {
	case D_ERROR:
		fputs("error", out);
		break;
	case D_MODEL:
		fprintf(out, "model %s", d->name);
		break;
	case D_DIM:
		fprintf(out, "dim %s = ", d->name);
		print_expr(out, d->u.dim.value, 0);
		break;
	case D_DATA:
	case D_INPUT:
	case D_PARAM:
	case D_CONST:
		fprintf(out, "%s %s : ", var_kw[d->kind], d->name);
		print_type(out, &d->u.var.type);
		if (d->u.var.init) {
			fputs(" ~ ", out);
			print_expr(out, d->u.var.init, 0);
		}
		if (d->u.var.value) {
			fputs(" = ", out);
			print_expr(out, d->u.var.value, 0);
		}
		break;
	case D_EXTERN:
		fprintf(out, "extern %s", d->name);
		print_params(out, d->u.ext.params, d->u.ext.nparams);
		fputs(" -> ", out);
		print_type(out, &d->u.ext.ret);
		break;
	case D_FAMILY:
		fprintf(out, "family %s", d->name);
		print_params(out, d->u.family.params, d->u.family.nparams);
		fputs(" on ", out);
		print_type(out, &d->u.family.on);
		fputs(" {", out);
		if (d->u.family.logp) {
			fprintf(out, " logp(%s) = ", d->u.family.logp_var);
			print_expr(out, d->u.family.logp, 0);
			fputc(';', out);
		}
		for (size_t i = 0; i < d->u.family.nlets; i++) {
			fprintf(out, " let %s = ", d->u.family.lets[i].name);
			print_expr(out, d->u.family.lets[i].value, 0);
			fputc(';', out);
		}
		if (d->u.family.sample) {
			fputs(" sample = ", out);
			print_expr(out, d->u.family.sample, 0);
			fputc(';', out);
		}
		fputs(" }", out);
		break;
	case D_ORDER:
		fputs("order", out);
		for (size_t i = 0; i < d->u.order.nitems; i++) {
			const order_item *it = &d->u.order.items[i];
			fputs(i ? ", " : " ", out);
			switch (it->form) {
			case ORD_NATURAL: fputs(it->var, out); break;
			case ORD_REVERSE: fprintf(out, "reverse(%s)", it->var); break;
			case ORD_BY: fprintf(out, "%s by %s", it->var, it->perm); break;
			case ORD_RANDOM:
				fprintf(out, "%s by random(", it->var);
				print_expr(out, it->seed, 0);
				fputc(')', out);
				break;
			}
		}
		break;
	case D_LET:
		if (d->u.let.index)
			fprintf(out, "let %s[%s] = ", d->name, d->u.let.index);
		else
			fprintf(out, "let %s = ", d->name);
		print_expr(out, d->u.let.value, 0);
		break;
	case D_COND:
		if (d->u.cond.index)
			fprintf(out, "%s[%s] ~ ", d->name, d->u.cond.index);
		else
			fprintf(out, "%s ~ ", d->name);
		print_expr(out, d->u.cond.family, 0);
		break;
	case D_OBJECTIVE:
		fputs(d->u.objective.maximize ? "maximize " : "minimize ", out);
		print_expr(out, d->u.objective.value, 0);
		if (d->u.objective.constraint) {
			fputs(" subject to ", out);
			print_expr(out, d->u.objective.constraint, 0);
		}
		break;
	default:
		fprintf(out, "<decl kind %d>", (int)d->kind);
		break;
	}
}

void ast_print(FILE *out, const program *prog)
{
	for (size_t i = 0; i < prog->decls.len; i++) {
		print_decl(out, prog->decls.items[i]);
		fputc('\n', out);
	}
}
