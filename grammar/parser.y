/* parser.y -- the grammar of chain model files (see LANGUAGE.md), building
 * the AST of chainc.h in the compilation's arena.
 *
 * A pure (reentrant) bison parser over the reentrant flex scanner of
 * lexer.l; every token and node carries a byte span.  What the grammar is
 * shaped by:
 *
 *  - Declarations end at a NEWLINE token (or ';').  The lexer drops newlines
 *    inside ( ) and [ ] and after a token that cannot end a line (a binary
 *    operator, ',', '=', '~', ...), so long expressions can be wrapped.
 *  - Error recovery: `error` may stand for a whole declaration, and for one
 *    line of a family block; the parser then skips to the next NEWLINE and
 *    goes on, so one run reports every broken declaration (each as a
 *    D_ERROR in the program).
 *  - Hostile input cannot exhaust the stack: the lexer rejects brackets
 *    nested deeper than PARSE_MAX_DEPTH, the AST builders reject expression
 *    trees deeper than PARSE_MAX_DEPTH (so every later pass may recurse
 *    freely), and parse_lex() below stops the parser's own stack from
 *    growing past PARSE_STACK_LIMIT on long prefix-operator chains such as
 *    100000 unary minuses.
 *  - Syntax error messages are written by yyreport_syntax_error() from the
 *    expected-token set (exact, thanks to LAC): "unexpected newline,
 *    expected ')' or ','".
 */

%define api.pure full
%define api.prefix {chain_yy}
%define api.token.prefix {T_}
%define api.location.type {span}
%define parse.error custom
%define parse.lac full
%locations
%expect 0
%param {yyscan_t scanner}
%parse-param {parse_ctx *pc}

%code requires {
#include "chainc.h"

#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif

/* An expression being built, with the depth of its tree (1 for a leaf).
 * PEXPR_POISONED marks a tree already reported as too deep: it is an
 * E_ERROR node and its parents become E_ERROR without another message. */
typedef struct pexpr {
	expr *e;
	unsigned depth;
} pexpr;
#define PEXPR_POISONED 0xffffffffu

/* A list of expressions being built (arguments, indices, array elements),
 * with the greatest depth among them. */
typedef struct plist {
	ptrvec v;
	unsigned depth;
} plist;

/* One line of a family block: logp(v) = e | let NAME = e | sample = e. */
typedef enum fam_line_kind { FL_LOGP, FL_LET, FL_SAMPLE } fam_line_kind;
typedef struct fam_line {
	fam_line_kind kind;
	const char *name;       /* FL_LOGP: the variable; FL_LET: the let's name */
	span name_where;
	expr *value;
	span where;
} fam_line;

/* State of one run of the scanner (flex's "extra"), shared with the parser
 * and the driver in parse.c. */
typedef struct lex_state {
	diag_ctx *d;
	arena *a;
	uint32_t file;
	const char *text;       /* the file's text and length */
	size_t len;
	uint32_t pos;           /* byte offset of the next byte to scan */
	int nest;               /* open '(' and '[' */
	int braces;             /* open '{' */
	int last;               /* the last token returned (0: none yet) */
	bool line_start;        /* no token returned yet on the current line */
	bool nl_pending;        /* a newline was swallowed since the last token */
	span nl_where;          /* ... the first such newline */
	bool need_nl;           /* emit a NEWLINE before the next token */
	bool deep_reported;     /* "nesting too deep" reported for this line */
	bool skip_block;        /* drop tokens up to the end of the open { } block */
	span last_where;        /* span of the last token returned */
	uint32_t bad_end;       /* end of the last run of invalid bytes (0: none) */
	size_t bad_diag;        /* 1 + index in d->diags of its error (0: dropped) */
} lex_state;

/* What the grammar actions need: where to report and where to build. */
typedef struct parse_ctx {
	diag_ctx *d;
	arena *a;
	program *prog;
	uint32_t file;
} parse_ctx;
}

%code provides {
/* The parser's stack may hold this many states; beyond, parse_lex() reports
 * "nesting deeper than ..." and makes the parser recover.  Legitimate input
 * (brackets and trees at most PARSE_MAX_DEPTH deep) stays far below. */
#define PARSE_STACK_LIMIT (10 * PARSE_MAX_DEPTH)
}

%code {
#include <string.h>

/* The scanner's entry points (flex prefix chain_yy; see lexer.l). */
int chain_yylex(CHAIN_YYSTYPE *lval, CHAIN_YYLTYPE *lloc, yyscan_t scanner);
lex_state *chain_yyget_extra(yyscan_t scanner);

/* Bison's own stack limit: never reached, parse_lex() stops first. */
#define YYMAXDEPTH (PARSE_STACK_LIMIT + 64)

/* Locations: a nonterminal spans from its first symbol's begin to its last
 * symbol's end; an empty one is the empty span at the end of what precedes. */
#define YYLLOC_DEFAULT(cur, rhs, n)                                   \
	do {                                                              \
		if (n) {                                                      \
			(cur).file = YYRHSLOC(rhs, 1).file;                       \
			(cur).begin = YYRHSLOC(rhs, 1).begin;                     \
			(cur).end = YYRHSLOC(rhs, n).end;                         \
		} else {                                                      \
			(cur).file = YYRHSLOC(rhs, 0).file;                       \
			(cur).begin = (cur).end = YYRHSLOC(rhs, 0).end;           \
		}                                                             \
	} while (0)

static int parse_lex(CHAIN_YYSTYPE *lval, CHAIN_YYLTYPE *lloc, yyscan_t scanner,
                     parse_ctx *pc, long stack_depth);
/* Every token goes through parse_lex(), which also sees how deep the
 * parser's state stack is (yyssp and yyss are yyparse's locals). */
#undef yylex
#define yylex(lval, lloc, scanner) parse_lex(lval, lloc, scanner, pc, (long)(yyssp - yyss))

static void yyerror(const span *loc, yyscan_t scanner, parse_ctx *pc, const char *msg);

static decl *decl_new(parse_ctx *pc, decl_kind kind, span where);
static pexpr leaf(parse_ctx *pc, expr_kind kind, span where);
static pexpr node(parse_ctx *pc, expr *e, unsigned child_depth);
static pexpr unary(parse_ctx *pc, pexpr operand, span where);
static pexpr binary(parse_ctx *pc, binop op, pexpr lhs, pexpr rhs, span where);
static pexpr call(parse_ctx *pc, const char *name, span name_where, plist args, span where);
static plist list_one(parse_ctx *pc, pexpr e);
static plist list_add(parse_ctx *pc, plist l, pexpr e);
static exprvec to_exprvec(parse_ctx *pc, const ptrvec *v);
static void family_finish(parse_ctx *pc, decl *d, ptrvec *lines);
static family_param *params_array(parse_ctx *pc, const ptrvec *v, size_t *n);
static void check_typed(parse_ctx *pc, const char *what, const ptrvec *params);
}

%initial-action {
	@$ = (span){pc->file, 0, 0};
}

%union {
	double num;
	const char *str;
	pexpr ex;
	plist list;
	type_expr type;
	ptrvec vec;
	family_param *fparam;
	order_item *oitem;
	fam_line *fline;
	decl *dcl;
	bool flag;
}

%token <str> NAME "identifier"
%token <num> NUMBER "number"
%token NEWLINE "newline"
%token MISSING_RBRACE "end of the family block"
%token MODEL "model" DIM "dim" DATA "data" INPUT "input" PARAM "param"
%token CONST "const" EXTERN "extern" FAMILY "family" ON "on" ORDER "order"
%token REVERSE "reverse" BY "by" RANDOM "random" LET "let"
%token MAXIMIZE "maximize" MINIMIZE "minimize" SUBJECT "subject" TO "to"
%token SUM "sum" BEFORE "before" IN "in" IF "if" THEN "then" ELSE "else"
%token LOGP "logp" SAMPLE "sample" BIN "bin" CAT "cat" INT "int" REAL "real"
%token DOTDOT ".." ARROW "->" LE "<=" GE ">=" EQ "==" NE "!=" ANDAND "&&" OROR "||"

%type <ex> expr call idx
%type <list> args args_opt idxs elems
%type <type> type kind
%type <list> dims_opt
%type <vec> fparams fparams_opt order_items fam_body
%type <fparam> fparam
%type <oitem> order_item
%type <fline> fam_line fam_last
%type <dcl> decl
%type <flag> objective fam_close

/* Operator precedence, loosest first.  IFX: the else branch of
 * `if c then a else b` extends as far right as it can.  SUMX: the body of
 * `sum(j before i) body` takes products but stops at + and -, as in
 * mathematics: sum(j before i) W[i, j] * x[j] + b[i] = (sum ...) + b[i]. */
%precedence IFX
%left OROR
%left ANDAND
%nonassoc '<' '>' LE GE EQ NE
%left '+' '-'
%precedence SUMX
%left '*' '/' '@'
%precedence UMINUS
%right '^'
%precedence '['

%%

/* file -> line*  ;  line -> NEWLINE | decl NEWLINE | error NEWLINE
 * Every declaration ends with a NEWLINE (the lexer sends one at the end of
 * a file that lacks it).  A declaration is added to the program only once
 * its NEWLINE is seen, so a line like `x ~ f(a) + 1` is one D_ERROR, not a
 * declaration followed by an error.  `error NEWLINE` is the recovery: the
 * parser skips to the end of the broken line and goes on with the next. */
file
	: %empty
	| file line
	;

line
	: NEWLINE
	| decl NEWLINE   { ptrvec_push(pc->a, &pc->prog->decls, $1); }
	| error NEWLINE {
		/* (past max_errors the program is only counted: no more
		 * D_ERRORs, so 16 MiB of garbage lines cannot take gigabytes) */
		if (pc->d->max_errors <= 0 || pc->d->errors <= pc->d->max_errors)
			ptrvec_push(pc->a, &pc->prog->decls, decl_new(pc, D_ERROR, @1));
		/* the next line is a fresh start: report its errors too */
		yyerrok;
		/* a broken family header leaves its block open: skip the block */
		lex_state *st = chain_yyget_extra(scanner);
		if (st->braces > 0)
			st->skip_block = true;
	}
	;

decl
	: MODEL NAME {
		$$ = decl_new(pc, D_MODEL, @$);
		$$->name = $2; $$->name_where = @2;
	}
	| DIM NAME '=' expr {
		$$ = decl_new(pc, D_DIM, @$);
		$$->name = $2; $$->name_where = @2;
		$$->u.dim.value = $4.e;
	}
	| DATA NAME ':' type {
		$$ = decl_new(pc, D_DATA, @$);
		$$->name = $2; $$->name_where = @2;
		$$->u.var.type = $4;
	}
	| INPUT NAME ':' type {
		$$ = decl_new(pc, D_INPUT, @$);
		$$->name = $2; $$->name_where = @2;
		$$->u.var.type = $4;
	}
	| PARAM NAME ':' type {
		$$ = decl_new(pc, D_PARAM, @$);
		$$->name = $2; $$->name_where = @2;
		$$->u.var.type = $4;
	}
	| PARAM NAME ':' type '~' expr {
		$$ = decl_new(pc, D_PARAM, @$);
		$$->name = $2; $$->name_where = @2;
		$$->u.var.type = $4;
		$$->u.var.init = $6.e;
	}
	| CONST NAME ':' type '=' expr {
		$$ = decl_new(pc, D_CONST, @$);
		$$->name = $2; $$->name_where = @2;
		$$->u.var.type = $4;
		$$->u.var.value = $6.e;
	}
	/* extern reward(x, s) -> real: the arguments are names of the model's
	 * variables (or typed parameters, `a : real`). */
	| EXTERN NAME '(' fparams_opt ')' ARROW type {
		$$ = decl_new(pc, D_EXTERN, @$);
		$$->name = $2; $$->name_where = @2;
		$$->u.ext.params = params_array(pc, &$4, &$$->u.ext.nparams);
		$$->u.ext.ret = $7;
	}
	/* family NAME(p : type, ...) on KIND { lines } */
	| FAMILY NAME '(' fparams_opt ')' ON type fam_open fam_body fam_last fam_close {
		$$ = decl_new(pc, D_FAMILY, @$);
		$$->name = $2; $$->name_where = @2;
		check_typed(pc, "family", &$4);
		$$->u.family.params = params_array(pc, &$4, &$$->u.family.nparams);
		$$->u.family.on = $7;
		if (!$11) {
			diag_error(pc->d, @11, "family '%s' is missing its closing '}'", $2);
			diag_note(pc->d, @8, "the family block opens here");
		}
		if ($10)
			ptrvec_push(pc->a, &$9, $10);
		family_finish(pc, $$, &$9);
	}
	| ORDER order_items {
		$$ = decl_new(pc, D_ORDER, @$);
		$$->u.order.nitems = $2.len;
		$$->u.order.items = arena_alloc(pc->a, $2.len * sizeof(order_item));
		for (size_t i = 0; i < $2.len; i++)
			$$->u.order.items[i] = *(order_item *)$2.items[i];
	}
	| LET NAME '[' NAME ']' '=' expr {
		$$ = decl_new(pc, D_LET, @$);
		$$->name = $2; $$->name_where = @2;
		$$->u.let.index = $4; $$->u.let.index_where = @4;
		$$->u.let.value = $7.e;
	}
	| LET NAME '=' expr {
		$$ = decl_new(pc, D_LET, @$);
		$$->name = $2; $$->name_where = @2;
		$$->u.let.value = $4.e;
	}
	| NAME '[' NAME ']' '~' call {
		$$ = decl_new(pc, D_COND, @$);
		$$->name = $1; $$->name_where = @1;
		$$->u.cond.index = $3; $$->u.cond.index_where = @3;
		$$->u.cond.family = $6.e;
	}
	| NAME '~' call {
		$$ = decl_new(pc, D_COND, @$);
		$$->name = $1; $$->name_where = @1;
		$$->u.cond.family = $3.e;
	}
	| objective expr {
		$$ = decl_new(pc, D_OBJECTIVE, @$);
		$$->u.objective.maximize = $1;
		$$->u.objective.value = $2.e;
	}
	/* maximize e subject to c <= bound: the constraint must be a comparison */
	| objective expr SUBJECT TO expr {
		$$ = decl_new(pc, D_OBJECTIVE, @$);
		$$->u.objective.maximize = $1;
		$$->u.objective.value = $2.e;
		expr *c = $5.e;
		if (c->kind == E_BINARY && c->u.binary.op >= OP_LT && c->u.binary.op <= OP_NE)
			$$->u.objective.constraint = c;
		else if (c->kind != E_ERROR)
			diag_error(pc->d, @5, "expected a comparison after 'subject to', such as 'kl(old) <= 0.01'");
	}
	;

objective
	: MAXIMIZE { $$ = true; }
	| MINIMIZE { $$ = false; }
	;

/* type -> (bin | cat(K) | int | real) ('[' dim (',' dim)* ']')? */
type
	: kind dims_opt {
		$$ = $1;
		$$.dims = to_exprvec(pc, &$2.v);
		$$.where = @$;
	}
	;

kind
	: BIN                { $$ = (type_expr){.kind = K_BIN}; }
	| CAT '(' expr ')'   { $$ = (type_expr){.kind = K_CAT, .cat_k = $3.e}; }
	| INT                { $$ = (type_expr){.kind = K_INT}; }
	| REAL               { $$ = (type_expr){.kind = K_REAL}; }
	;

dims_opt
	: %empty        { $$ = (plist){{0}, 0}; }
	| '[' args ']'  { $$ = $2; }
	;

/* Parameters of a family or an extern: NAME or NAME : type. */
fparams_opt
	: %empty   { $$ = (ptrvec){0}; }
	| fparams
	;

fparams
	: fparam              { $$ = (ptrvec){0}; ptrvec_push(pc->a, &$$, $1); }
	| fparams ',' fparam  { $$ = $1; ptrvec_push(pc->a, &$$, $3); }
	;

fparam
	: NAME {
		$$ = arena_alloc(pc->a, sizeof *$$);
		$$->name = $1; $$->where = @1;
		$$->type.kind = K_REAL;
		$$->type.where = (span){@1.file, @1.end, @1.end};
		$$->has_type = false;
	}
	| NAME ':' type {
		$$ = arena_alloc(pc->a, sizeof *$$);
		$$->name = $1; $$->where = @1;
		$$->type = $3;
		$$->has_type = true;
	}
	;

/* The lines of a family block, in any order, each ended by NEWLINE except
 * perhaps the last (`{ logp(v) = e; sample = e }` fits on one line).  A
 * broken line is skipped (error NEWLINE) and the next one parsed; a broken
 * last line ends at the '}'. */
fam_body
	: %empty                  { $$ = (ptrvec){0}; }
	| fam_body NEWLINE        { $$ = $1; }
	| fam_body fam_line NEWLINE {
		$$ = $1;
		ptrvec_push(pc->a, &$$, $2);
	}
	| fam_body error NEWLINE  { $$ = $1; yyerrok; }
	;

fam_last
	: %empty    { $$ = NULL; }
	| fam_line
	| error     { $$ = NULL; }
	;

fam_line
	: LOGP '(' NAME ')' '=' expr {
		$$ = arena_alloc(pc->a, sizeof *$$);
		*$$ = (fam_line){FL_LOGP, $3, @3, $6.e, @$};
	}
	| LET NAME '=' expr {
		$$ = arena_alloc(pc->a, sizeof *$$);
		*$$ = (fam_line){FL_LET, $2, @2, $4.e, @$};
	}
	| SAMPLE '=' expr {
		$$ = arena_alloc(pc->a, sizeof *$$);
		*$$ = (fam_line){FL_SAMPLE, NULL, @1, $3.e, @$};
	}
	;

/* The '{' of a family block, on the line of the header or the next. */
fam_open
	: '{'
	| NEWLINE '{'   { @$ = @2; }
	;

/* '}' closes a family block.  MISSING_RBRACE is what the lexer sends when a
 * line inside an open block starts with a declaration keyword (or the file
 * ends): the block was not closed, which is reported once by `decl`. */
fam_close
	: '}'             { $$ = true; }
	| MISSING_RBRACE  { $$ = false; }
	;

/* order -> item (',' item)* ; item -> NAME | reverse(NAME) | NAME by NAME
 *                                    | NAME by random(expr) */
order_items
	: order_item                  { $$ = (ptrvec){0}; ptrvec_push(pc->a, &$$, $1); }
	| order_items ',' order_item  { $$ = $1; ptrvec_push(pc->a, &$$, $3); }
	;

order_item
	: NAME {
		$$ = arena_alloc(pc->a, sizeof *$$);
		$$->form = ORD_NATURAL; $$->var = $1; $$->var_where = @1; $$->where = @$;
	}
	| REVERSE '(' NAME ')' {
		$$ = arena_alloc(pc->a, sizeof *$$);
		$$->form = ORD_REVERSE; $$->var = $3; $$->var_where = @3; $$->where = @$;
	}
	| NAME BY NAME {
		$$ = arena_alloc(pc->a, sizeof *$$);
		$$->form = ORD_BY; $$->var = $1; $$->var_where = @1; $$->where = @$;
		$$->perm = $3; $$->perm_where = @3;
	}
	| NAME BY RANDOM '(' expr ')' {
		$$ = arena_alloc(pc->a, sizeof *$$);
		$$->form = ORD_RANDOM; $$->var = $1; $$->var_where = @1; $$->where = @$;
		$$->seed = $5.e;
	}
	;

/* A call of a function or family by name: f(a, b), uniform(). */
call
	: NAME '(' args_opt ')'  { $$ = call(pc, $1, @1, $3, @$); }
	;

/* Expressions.  `sum(...)` is a reduction when its parentheses hold
 * `j before i` or `k in A..B` (a body follows), and a plain call sum(v)
 * otherwise. */
expr
	: NUMBER {
		$$ = leaf(pc, E_NUM, @1);
		$$.e->u.num = $1;
	}
	| NAME {
		$$ = leaf(pc, E_NAME, @1);
		$$.e->u.name = $1;
	}
	| call
	| SUM '(' args_opt ')'   { $$ = call(pc, "sum", @1, $3, @$); }
	| SUM '(' NAME BEFORE NAME ')' expr %prec SUMX {
		expr *e = arena_alloc(pc->a, sizeof *e);
		e->kind = E_SUM_BEFORE;
		e->where = @$;
		e->u.sum.var = $3; e->u.sum.var_where = @3;
		e->u.sum.pos = $5; e->u.sum.pos_where = @5;
		e->u.sum.body = $7.e;
		$$ = node(pc, e, $7.depth);
	}
	| SUM '(' NAME IN expr DOTDOT expr ')' expr %prec SUMX {
		expr *e = arena_alloc(pc->a, sizeof *e);
		e->kind = E_SUM_RANGE;
		e->where = @$;
		e->u.sum.var = $3; e->u.sum.var_where = @3;
		e->u.sum.lo = $5.e; e->u.sum.hi = $7.e;
		e->u.sum.body = $9.e;
		unsigned d = $5.depth;
		if ($7.depth > d) d = $7.depth;
		if ($9.depth > d) d = $9.depth;
		$$ = node(pc, e, d);
	}
	| '(' expr ')'           { $$ = $2; }
	| '[' elems ']' {
		expr *e = arena_alloc(pc->a, sizeof *e);
		e->kind = E_ARRAY;
		e->where = @$;
		e->u.array = to_exprvec(pc, &$2.v);
		$$ = node(pc, e, $2.depth);
	}
	| expr '[' idxs ']' {
		expr *e = arena_alloc(pc->a, sizeof *e);
		e->kind = E_INDEX;
		e->where = @$;
		e->u.index.base = $1.e;
		e->u.index.args = to_exprvec(pc, &$3.v);
		$$ = node(pc, e, $1.depth > $3.depth ? $1.depth : $3.depth);
	}
	| '-' expr %prec UMINUS  { $$ = unary(pc, $2, @$); }
	| expr '^' expr          { $$ = binary(pc, OP_POW, $1, $3, @$); }
	| expr '*' expr          { $$ = binary(pc, OP_MUL, $1, $3, @$); }
	| expr '/' expr          { $$ = binary(pc, OP_DIV, $1, $3, @$); }
	| expr '@' expr          { $$ = binary(pc, OP_MATMUL, $1, $3, @$); }
	| expr '+' expr          { $$ = binary(pc, OP_ADD, $1, $3, @$); }
	| expr '-' expr          { $$ = binary(pc, OP_SUB, $1, $3, @$); }
	| expr '<' expr          { $$ = binary(pc, OP_LT, $1, $3, @$); }
	| expr '>' expr          { $$ = binary(pc, OP_GT, $1, $3, @$); }
	| expr LE expr           { $$ = binary(pc, OP_LE, $1, $3, @$); }
	| expr GE expr           { $$ = binary(pc, OP_GE, $1, $3, @$); }
	| expr EQ expr           { $$ = binary(pc, OP_EQ, $1, $3, @$); }
	| expr NE expr           { $$ = binary(pc, OP_NE, $1, $3, @$); }
	| expr ANDAND expr       { $$ = binary(pc, OP_AND, $1, $3, @$); }
	| expr OROR expr         { $$ = binary(pc, OP_OR, $1, $3, @$); }
	| IF expr THEN expr ELSE expr %prec IFX {
		expr *e = arena_alloc(pc->a, sizeof *e);
		e->kind = E_IF;
		e->where = @$;
		e->u.cond.c = $2.e; e->u.cond.a = $4.e; e->u.cond.b = $6.e;
		unsigned d = $2.depth;
		if ($4.depth > d) d = $4.depth;
		if ($6.depth > d) d = $6.depth;
		$$ = node(pc, e, d);
	}
	;

args_opt
	: %empty  { $$ = (plist){{0}, 0}; }
	| args
	;

args
	: expr           { $$ = list_one(pc, $1); }
	| args ',' expr  { $$ = list_add(pc, $1, $3); }
	;

/* Array literal elements: [1, 2, 3], [[1, 2], [3, 4]], a trailing comma
 * allowed, [] is an empty array. */
elems
	: %empty         { $$ = (plist){{0}, 0}; }
	| args
	| args ','
	;

/* Index lists: W[i, j], W[:, j], V[i, :]. */
idxs
	: idx           { $$ = list_one(pc, $1); }
	| idxs ',' idx  { $$ = list_add(pc, $1, $3); }
	;

idx
	: ':'   { $$ = leaf(pc, E_SLICE, @1); }
	| expr
	;

%%

static decl *decl_new(parse_ctx *pc, decl_kind kind, span where)
{
	decl *d = arena_alloc(pc->a, sizeof *d);
	d->kind = kind;
	d->where = where;
	return d;
}

static pexpr leaf(parse_ctx *pc, expr_kind kind, span where)
{
	expr *e = arena_alloc(pc->a, sizeof *e);
	e->kind = kind;
	e->where = where;
	return (pexpr){e, 1};
}

/* Completes a node whose deepest child has depth child_depth.  A tree
 * deeper than PARSE_MAX_DEPTH is reported once, at the node where it
 * crosses the limit, and replaced by an E_ERROR that poisons its parents
 * silently.  This bounds the recursion of every pass after the parser. */
static pexpr node(parse_ctx *pc, expr *e, unsigned child_depth)
{
	if (child_depth == PEXPR_POISONED || child_depth + 1 > PARSE_MAX_DEPTH) {
		if (child_depth != PEXPR_POISONED)
			diag_error(pc->d, e->where, "nesting deeper than %d levels", PARSE_MAX_DEPTH);
		expr *err = arena_alloc(pc->a, sizeof *err);
		err->kind = E_ERROR;
		err->where = e->where;
		return (pexpr){err, PEXPR_POISONED};
	}
	return (pexpr){e, child_depth + 1};
}

static pexpr unary(parse_ctx *pc, pexpr operand, span where)
{
	expr *e = arena_alloc(pc->a, sizeof *e);
	e->kind = E_UNARY;
	e->where = where;
	e->u.unary.op = '-';
	e->u.unary.operand = operand.e;
	return node(pc, e, operand.depth);
}

static pexpr binary(parse_ctx *pc, binop op, pexpr lhs, pexpr rhs, span where)
{
	expr *e = arena_alloc(pc->a, sizeof *e);
	e->kind = E_BINARY;
	e->where = where;
	e->u.binary.op = op;
	e->u.binary.lhs = lhs.e;
	e->u.binary.rhs = rhs.e;
	return node(pc, e, lhs.depth > rhs.depth ? lhs.depth : rhs.depth);
}

static pexpr call(parse_ctx *pc, const char *name, span name_where, plist args, span where)
{
	expr *e = arena_alloc(pc->a, sizeof *e);
	e->kind = E_CALL;
	e->where = where;
	e->u.call.name = name;
	e->u.call.name_where = name_where;
	e->u.call.args = to_exprvec(pc, &args.v);
	return node(pc, e, args.depth);
}

static plist list_one(parse_ctx *pc, pexpr e)
{
	plist l = {{0}, 0};
	return list_add(pc, l, e);
}

static plist list_add(parse_ctx *pc, plist l, pexpr e)
{
	ptrvec_push(pc->a, &l.v, e.e);
	if (e.depth > l.depth)
		l.depth = e.depth;
	return l;
}

static exprvec to_exprvec(parse_ctx *pc, const ptrvec *v)
{
	exprvec r = {NULL, v->len};
	if (v->len) {
		r.items = arena_alloc(pc->a, v->len * sizeof *r.items);
		for (size_t i = 0; i < v->len; i++)
			r.items[i] = v->items[i];
	}
	return r;
}

static family_param *params_array(parse_ctx *pc, const ptrvec *v, size_t *n)
{
	*n = v->len;
	family_param *p = arena_alloc(pc->a, (v->len ? v->len : 1) * sizeof *p);
	for (size_t i = 0; i < v->len; i++)
		p[i] = *(family_param *)v->items[i];
	return p;
}

/* Family parameters need a type (extern arguments may be bare names). */
static void check_typed(parse_ctx *pc, const char *what, const ptrvec *params)
{
	for (size_t i = 0; i < params->len; i++) {
		family_param *p = params->items[i];
		if (!p->has_type)
			diag_error(pc->d, p->where, "%s parameter '%s' needs a type, as in '%s : real'",
			           what, p->name, p->name);
	}
}

/* Moves the lines of a family block into the decl: at most one logp and
 * one sample line (a second one is an error pointing at both), the lets in
 * the order written. */
static void family_finish(parse_ctx *pc, decl *d, ptrvec *lines)
{
	fam_line *logp = NULL, *sample = NULL;
	size_t nlets = 0;
	for (size_t i = 0; i < lines->len; i++)
		nlets += ((fam_line *)lines->items[i])->kind == FL_LET;
	d->u.family.lets = arena_alloc(pc->a, (nlets ? nlets : 1) * sizeof(family_let));
	for (size_t i = 0; i < lines->len; i++) {
		fam_line *l = lines->items[i];
		fam_line **first = l->kind == FL_LOGP ? &logp : l->kind == FL_SAMPLE ? &sample : NULL;
		if (!first) {
			family_let *fl = &d->u.family.lets[d->u.family.nlets++];
			fl->name = l->name;
			fl->where = l->name_where;
			fl->value = l->value;
			continue;
		}
		if (*first) {
			const char *word = l->kind == FL_LOGP ? "logp" : "sample";
			diag_error(pc->d, l->where, "family '%s' has a second '%s' line", d->name, word);
			diag_note(pc->d, (*first)->where, "the first '%s' line is here", word);
			continue;
		}
		*first = l;
	}
	if (logp) {
		d->u.family.logp_var = logp->name;
		d->u.family.logp_var_where = logp->name_where;
		d->u.family.logp = logp->value;
	}
	if (sample)
		d->u.family.sample = sample->value;
}

/* The token source of the parser (see yylex above).  It drops the block of
 * a family whose header was broken (skip_block), and it refuses to let the
 * parser's stack grow past PARSE_STACK_LIMIT.  Past it, the input is
 * nesting prefix operators (- - - ... or if ... then if ...) deeper than
 * any tree we accept; report once per line and hand the parser an error
 * token, on which it unwinds to the declaration and skips the line. */
static int parse_lex(CHAIN_YYSTYPE *lval, CHAIN_YYLTYPE *lloc, yyscan_t scanner,
                     parse_ctx *pc, long stack_depth)
{
	lex_state *st = chain_yyget_extra(scanner);
	if (stack_depth > PARSE_STACK_LIMIT) {
		*lloc = st->last_where;
		if (!st->deep_reported) {
			st->deep_reported = true;
			diag_error(pc->d, st->last_where, "nesting deeper than %d levels", PARSE_MAX_DEPTH);
		}
		return T_CHAIN_YYerror;
	}
	for (;;) {
		int tok = chain_yylex(lval, lloc, scanner);
		if (!st->skip_block)
			return tok;
		/* after a broken family header: drop its block, up to and
		 * including the '}' that closes it (or up to the declaration
		 * keyword that the lexer found closing it, or the end) */
		if ((tok == '}' && st->braces == 0) || tok == T_MISSING_RBRACE)
			st->skip_block = false;
		else if (tok == T_YYEOF)
			return tok;
	}
}

/* Only called by bison when its stack is exhausted (syntax errors go to
 * yyreport_syntax_error); parse_lex() makes that unreachable. */
static void yyerror(const span *loc, yyscan_t scanner, parse_ctx *pc, const char *msg)
{
	(void)scanner;
	(void)msg;
	diag_error(pc->d, *loc, "nesting deeper than %d levels", PARSE_MAX_DEPTH);
}

/* ---- syntax error messages */

/* A bounded message buffer. */
typedef struct msgbuf {
	char s[512];
	size_t n;
} msgbuf;

static void msg_add(msgbuf *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void msg_add(msgbuf *m, const char *fmt, ...)
{
	if (m->n >= sizeof m->s - 1)
		return;
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(m->s + m->n, sizeof m->s - m->n, fmt, ap);
	va_end(ap);
	if (k > 0)
		m->n += (size_t)k < sizeof m->s - m->n ? (size_t)k : sizeof m->s - m->n - 1;
}

/* Source text of a token, quoted and cut to a readable length. */
static void msg_add_text(msgbuf *m, parse_ctx *pc, span w)
{
	const src_file *f = pc->d->files.items[pc->file];
	size_t b = w.begin < f->len ? w.begin : f->len;
	size_t e = w.end < f->len ? w.end : f->len;
	size_t n = e > b ? e - b : 0;
	if (n > 32)
		msg_add(m, "'%.29s...'", f->text + b);
	else
		msg_add(m, "'%.*s'", (int)n, f->text + b);
}

/* How a symbol is named in messages: keywords and punctuation quoted as
 * written ('model', '('), the others by what they are (identifier). */
static void msg_add_symbol(msgbuf *m, yysymbol_kind_t kind)
{
	const char *name = yysymbol_name(kind);
	if (kind == YYSYMBOL_YYEOF)
		msg_add(m, "end of file");
	else if (name[0] == '\'' || kind == YYSYMBOL_NAME || kind == YYSYMBOL_NUMBER ||
	         kind == YYSYMBOL_NEWLINE || kind == YYSYMBOL_MISSING_RBRACE)
		msg_add(m, "%s", name);
	else
		msg_add(m, "'%s'", name);
}

/* The unexpected token, described from its text where that helps: an
 * identifier or number is quoted, a ';' is not called a newline. */
static void msg_add_unexpected(msgbuf *m, parse_ctx *pc, yysymbol_kind_t kind, span w)
{
	const src_file *f = pc->d->files.items[pc->file];
	if (kind == YYSYMBOL_NAME || kind == YYSYMBOL_NUMBER) {
		msg_add(m, "%s ", yysymbol_name(kind));
		msg_add_text(m, pc, w);
	} else if (kind == YYSYMBOL_NEWLINE && w.begin < f->len && f->text[w.begin] == ';') {
		msg_add(m, "';'");
	} else if (kind == YYSYMBOL_NEWLINE && w.begin == w.end) {
		/* the NEWLINE the lexer adds at the end of the file */
		msg_add(m, "end of file");
	} else if (kind == YYSYMBOL_MISSING_RBRACE) {
		/* the implicit token stands before a keyword, or at the end of the file */
		size_t e = w.begin;
		while (e < f->len && f->text[e] >= 'a' && f->text[e] <= 'z')
			e++;
		if (e == w.begin)
			msg_add(m, "end of file");
		else
			msg_add_text(m, pc, (span){w.file, w.begin, (uint32_t)e});
	} else {
		msg_add_symbol(m, kind);
	}
}

static bool has(const yysymbol_kind_t *set, int n, yysymbol_kind_t kind)
{
	for (int i = 0; i < n; i++)
		if (set[i] == kind)
			return true;
	return false;
}

/* Tokens that can start an expression, start a declaration, or continue an
 * expression (binary operators, indexing): lists of these are summed up as
 * "an expression" / "a declaration", or left out, to keep messages short. */
/* Whether symbol s is the punctuation or operator token spelled `text`
 * (bison numbers character tokens by declaration order: go by name). */
static bool sym_is(yysymbol_kind_t s, const char *text)
{
	const char *name = yysymbol_name(s);
	size_t n = strlen(text);
	return name[0] == '\'' && strncmp(name + 1, text, n) == 0 && name[n + 1] == '\'' && !name[n + 2];
}

static bool starts_expr(yysymbol_kind_t s)
{
	return s == YYSYMBOL_NAME || s == YYSYMBOL_NUMBER || s == YYSYMBOL_SUM ||
	       s == YYSYMBOL_IF || sym_is(s, "(") || sym_is(s, "[") || sym_is(s, "-");
}

static bool starts_decl(yysymbol_kind_t s)
{
	return s == YYSYMBOL_MODEL || s == YYSYMBOL_DIM || s == YYSYMBOL_DATA ||
	       s == YYSYMBOL_INPUT || s == YYSYMBOL_PARAM || s == YYSYMBOL_CONST ||
	       s == YYSYMBOL_EXTERN || s == YYSYMBOL_FAMILY || s == YYSYMBOL_ORDER ||
	       s == YYSYMBOL_LET || s == YYSYMBOL_MAXIMIZE || s == YYSYMBOL_MINIMIZE ||
	       s == YYSYMBOL_NAME || s == YYSYMBOL_YYEOF;
}

static bool is_operator(yysymbol_kind_t s)
{
	/* '(' too: after a name it could start a call, which is rarely what
	 * the writer meant when something else is also possible */
	static const char *const ops[] = {"+", "-", "*", "/", "@", "^", "<", ">", "[", "("};
	for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
		if (sym_is(s, ops[i]))
			return true;
	return s == YYSYMBOL_LE || s == YYSYMBOL_GE || s == YYSYMBOL_EQ || s == YYSYMBOL_NE ||
	       s == YYSYMBOL_ANDAND || s == YYSYMBOL_OROR;
}

static bool is_kind(yysymbol_kind_t s)
{
	return s == YYSYMBOL_BIN || s == YYSYMBOL_CAT || s == YYSYMBOL_INT || s == YYSYMBOL_REAL;
}

/* "unexpected X, expected A, B or C".  The expected set is summarised:
 * expression starters become "an expression", declaration starters "a
 * declaration", the four kinds "a type"; operators that could continue an
 * expression are dropped unless nothing else is left. */
static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner, parse_ctx *pc)
{
	(void)scanner;
	if (pc->d->max_errors > 0 && pc->d->errors >= pc->d->max_errors) {
		/* past the cap the message is dropped: only count it, cheaply */
		diag_error(pc->d, *yypcontext_location(ctx), "syntax error");
		return 0;
	}
	yysymbol_kind_t exp[YYNTOKENS];
	int n = yypcontext_expected_tokens(ctx, exp, YYNTOKENS);
	if (n < 0)
		n = 0;
	yysymbol_kind_t tok = yypcontext_token(ctx);
	span where = *yypcontext_location(ctx);

	msgbuf m = {{0}, 0};
	msg_add(&m, "unexpected ");
	msgbuf u = {{0}, 0};
	msg_add_unexpected(&u, pc, tok, where);
	msg_add(&m, "%s", u.s);

	const char *items[YYNTOKENS + 3];
	yysymbol_kind_t syms[YYNTOKENS];
	int k = 0, nsyms = 0;
	bool expr_ok = has(exp, n, YYSYMBOL_NUMBER) && has(exp, n, YYSYMBOL_NAME);
	bool decl_ok = has(exp, n, YYSYMBOL_MODEL) && has(exp, n, YYSYMBOL_DIM);
	bool kind_ok = has(exp, n, YYSYMBOL_BIN) && has(exp, n, YYSYMBOL_REAL);
	bool others = false;
	for (int i = 0; i < n; i++) {
		yysymbol_kind_t s = exp[i];
		if ((expr_ok && starts_expr(s)) || (decl_ok && starts_decl(s)) ||
		    (kind_ok && is_kind(s)))
			continue;
		if (!is_operator(s))
			others = true;
	}
	if (decl_ok)
		items[k++] = "a declaration";
	if (expr_ok)
		items[k++] = "an expression";
	if (kind_ok)
		items[k++] = "a type (bin, cat(K), int or real)";
	for (int i = 0; i < n; i++) {
		yysymbol_kind_t s = exp[i];
		if ((expr_ok && starts_expr(s)) || (decl_ok && starts_decl(s)) ||
		    (kind_ok && is_kind(s)) || s == YYSYMBOL_MISSING_RBRACE)
			continue;
		if ((s == YYSYMBOL_YYEOF && has(exp, n, YYSYMBOL_NEWLINE)) ||
		    (s == YYSYMBOL_NEWLINE && decl_ok))
			continue;
		if (is_operator(s) && (others || k > 0))
			continue;
		syms[nsyms++] = s;
	}
	int total = k + nsyms;
	if (total > 0 && total <= 6) {
		msg_add(&m, ", expected ");
		for (int i = 0; i < total; i++) {
			if (i > 0)
				msg_add(&m, i == total - 1 ? " or " : ", ");
			if (i < k)
				msg_add(&m, "%s", items[i]);
			else
				msg_add_symbol(&m, syms[i - k]);
		}
	}
	diag_error(pc->d, where, "%s", m.s);
	return 0;
}
