/* test_parser.c -- the grammar: every form of LANGUAGE.md builds the AST it
 * should (checked through ast_print and spans), errors are reported where
 * they are and the parser carries on, and no input crashes it. */
#include "test_helpers.h"

#include <sys/stat.h>
#include <unistd.h>

/* Parses src, requires no diagnostics, and compares the printed AST. */
static void check_ast(const char *src, const char *want)
{
	parsed *p = parse_text(src);
	CHECK_NDIAGS(p, 0);
	assert_int_equal(p->errors, 0);
	assert_string_equal(ast_text(p), want);
	parsed_free(p);
}

/* The printed AST of the single expression in `let e = SRC`. */
static void check_expr(const char *src, const char *want)
{
	char buf[4096];
	snprintf(buf, sizeof buf, "let e = %s\n", src);
	char want_line[4096];
	snprintf(want_line, sizeof want_line, "let e = %s\n", want);
	check_ast(buf, want_line);
}

/* Reads a file of the source tree: from the current directory or one of
 * its parents, from $CHAIN_SRCDIR, or from a parent of the test binary's
 * directory (so the tests run from the top of the tree or a build dir). */
static char *read_tree_file(const char *rel, size_t *len)
{
	char roots[8][1024];
	int n = 0;
	static const char *const ups[] = {".", "..", "../..", "../../.."};
	for (size_t i = 0; i < sizeof ups / sizeof *ups; i++)
		snprintf(roots[n++], sizeof roots[0], "%s", ups[i]);
	const char *env = getenv("CHAIN_SRCDIR");
	if (env)
		snprintf(roots[n++], sizeof roots[0], "%s", env);
	char exe[900];
	ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (k > 0) {
		exe[k] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
		snprintf(roots[n++], sizeof roots[0], "%s/..", exe);
		snprintf(roots[n++], sizeof roots[0], "%s/../..", exe);
	}
	for (int i = 0; i < n; i++) {
		char path[9000];
		snprintf(path, sizeof path, "%s/%s", roots[i], rel);
		FILE *f = fopen(path, "rb");
		if (!f)
			continue;
		char *buf = malloc(1 << 20);
		assert_non_null(buf);
		*len = fread(buf, 1, (1 << 20) - 1, f);
		buf[*len] = '\0';
		fclose(f);
		return buf;
	}
	fail_msg("cannot find %s (run from the source tree or set CHAIN_SRCDIR)", rel);
	return NULL;
}

/* head, then n copies of unit, then tail (malloc'd) */
static char *repeat(const char *head, const char *unit, size_t n, const char *tail)
{
	size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
	char *s = malloc(hl + ul * n + tl + 1);
	assert_non_null(s);
	memcpy(s, head, hl);
	for (size_t i = 0; i < n; i++)
		memcpy(s + hl + i * ul, unit, ul);
	memcpy(s + hl + n * ul, tail, tl + 1);
	return s;
}

/* ---- examples and stdlib */

static void test_parser__nade_example__builds_every_declaration(void **state)
{
	(void)state;
	size_t len;
	char *src = read_tree_file("examples/nade.chain", &len);
	parsed *p = parse_bytes_named("examples/nade.chain", src, len, 0);
	free(src);
	CHECK_NDIAGS(p, 0);
	assert_string_equal(ast_text(p),
		"model nade\n"
		"dim n = 784\n"
		"dim H = 500\n"
		"data x : bin[n]\n"
		"param W : real[H, n] ~ (normal 0 0.01)\n"
		"param c : real[H]\n"
		"param V : real[n, H] ~ (normal 0 0.01)\n"
		"param b : real[n]\n"
		"order x\n"
		"let h[i] = (sigmoid (+ c (sum j before i (* (index W : j) (index x j)))))\n"
		"x[i] ~ (bernoulli_logit (+ (index b i) (dot (index V i :) (index h i))))\n"
		"maximize loglik\n");
	/* spans of the let: the whole line, its name and index */
	decl *let = decl_at(p, 9);
	assert_int_equal(let->kind, D_LET);
	assert_string_equal(span_text(p, let->where),
	                    "let h[i] = sigmoid(c + sum(j before i) W[:, j] * x[j])");
	assert_string_equal(span_text(p, let->name_where), "h");
	assert_string_equal(span_text(p, let->u.let.index_where), "i");
	expr *sum = let->u.let.value->u.call.args.items[0]->u.binary.rhs;
	assert_int_equal(sum->kind, E_SUM_BEFORE);
	assert_string_equal(span_text(p, sum->where), "sum(j before i) W[:, j] * x[j]");
	assert_string_equal(span_text(p, sum->u.sum.var_where), "j");
	assert_string_equal(span_text(p, sum->u.sum.pos_where), "i");
	/* the conditional */
	decl *cond = decl_at(p, 10);
	assert_int_equal(cond->kind, D_COND);
	assert_string_equal(cond->name, "x");
	assert_string_equal(cond->u.cond.index, "i");
	assert_int_equal(cond->u.cond.family->kind, E_CALL);
	assert_string_equal(span_text(p, cond->u.cond.family->u.call.name_where), "bernoulli_logit");
	parsed_free(p);
}

static void test_parser__fvsbn_example__builds_triangular_sum(void **state)
{
	(void)state;
	size_t len;
	char *src = read_tree_file("examples/fvsbn.chain", &len);
	parsed *p = parse_bytes_named("examples/fvsbn.chain", src, len, 0);
	free(src);
	CHECK_NDIAGS(p, 0);
	assert_string_equal(ast_text(p),
		"model fvsbn\n"
		"dim n = 784\n"
		"data x : bin[n]\n"
		"param W : real[n, n] ~ (normal 0 0.01)\n"
		"param b : real[n]\n"
		"order x\n"
		"x[i] ~ (bernoulli_logit (+ (index b i) (sum j before i (* (index W i j) (index x j)))))\n"
		"maximize loglik\n");
	parsed_free(p);
}

static void test_parser__stdlib__parses_every_family_with_logp_and_sample(void **state)
{
	(void)state;
	parsed *p = parse_with_stdlib("");
	CHECK_NDIAGS(p, 0);
	static const char *const want[] = {
		"bernoulli_logit", "bernoulli", "categorical_logits", "normal",
		"normal_logscale", "mixture_normal", "binomial", "poisson_log",
	};
	size_t nfam = 0;
	for (size_t i = 0; i < p->prog.decls.len; i++) {
		decl *d = decl_at(p, i);
		assert_int_equal(d->kind, D_FAMILY);
		assert_non_null(d->u.family.logp);
		assert_non_null(d->u.family.sample);
		assert_string_equal(d->u.family.logp_var, "v");
		for (size_t k = 0; k < sizeof want / sizeof *want; k++)
			nfam += strcmp(d->name, want[k]) == 0;
	}
	assert_int_equal(nfam, sizeof want / sizeof *want);
	const src_file *f = p->d.files.items[0];
	assert_string_equal(f->name, "<stdlib>/families.chain");
	parsed_free(p);
}

static void test_parser__stdlib_then_model__keeps_stdlib_first(void **state)
{
	(void)state;
	parsed *p = parse_with_stdlib("model m\n");
	CHECK_NDIAGS(p, 0);
	decl *last = decl_at(p, p->prog.decls.len - 1);
	assert_int_equal(last->kind, D_MODEL);
	assert_int_equal(last->where.file, p->file);
	assert_int_equal(decl_at(p, 0)->kind, D_FAMILY);
	assert_int_equal(decl_at(p, 0)->where.file, 0);
	parsed_free(p);
}

/* ---- declarations */

static void test_parser__empty_file__has_no_declarations(void **state)
{
	(void)state;
	check_ast("", "");
	check_ast("\n\n  \n", "");
	check_ast("# only a comment", "");
	check_ast("# a\n\n# b\n;\n", "");
}

static void test_parser__model_and_dims__build_decls(void **state)
{
	(void)state;
	check_ast("model m\ndim n = 784\ndim K = n * 2 + 1\n",
	          "model m\ndim n = 784\ndim K = (+ (* n 2) 1)\n");
}

static void test_parser__missing_final_newline__is_fine(void **state)
{
	(void)state;
	check_ast("model m\ndim n = 3", "model m\ndim n = 3\n");
}

static void test_parser__semicolons__end_declarations(void **state)
{
	(void)state;
	check_ast("model m; dim n = 3;; dim k = 4;\n", "model m\ndim n = 3\ndim k = 4\n");
}

static void test_parser__data_input_types__cover_every_kind(void **state)
{
	(void)state;
	check_ast("data x : bin[n]\n"
	          "data y : cat(K)[n, 2]\n"
	          "input s : real\n"
	          "data c : int[3]\n"
	          "input t : cat(10)\n",
	          "data x : bin[n]\n"
	          "data y : cat(K)[n, 2]\n"
	          "input s : real\n"
	          "data c : int[3]\n"
	          "input t : cat(10)\n");
}

static void test_parser__param_init__takes_any_expression(void **state)
{
	(void)state;
	check_ast("param W : real[H, n] ~ normal(0, 0.01)\n"
	          "param c : real[H]\n"
	          "param u : real ~ uniform(-1, 1)\n"
	          "param z : real ~ 0.5\n",
	          "param W : real[H, n] ~ (normal 0 0.01)\n"
	          "param c : real[H]\n"
	          "param u : real ~ (uniform (- 1) 1)\n"
	          "param z : real ~ 0.5\n");
	parsed *p = parse_text("param c : real[H]\n");
	assert_null(decl_at(p, 0)->u.var.init);
	assert_null(decl_at(p, 0)->u.var.value);
	parsed_free(p);
}

static void test_parser__const_array_literal__nests(void **state)
{
	(void)state;
	check_ast("const A : real[2, 2] = [[1, 2], [3, 4]]\n",
	          "const A : real[2, 2] = [[1 2] [3 4]]\n");
	/* across lines, with a trailing comma */
	check_ast("const P : int[3] = [\n  2,\n  0,\n  1,\n]\n",
	          "const P : int[3] = [2 0 1]\n");
	check_ast("const E : real[0] = []\n", "const E : real[0] = []\n");
}

static void test_parser__extern__takes_bare_names_or_typed_params(void **state)
{
	(void)state;
	check_ast("extern reward(x, s) -> real\n"
	          "extern g(a : real[3], n : int) -> real\n"
	          "extern h() -> real\n",
	          "extern reward(x, s) -> real\n"
	          "extern g(a : real[3], n : int) -> real\n"
	          "extern h() -> real\n");
	parsed *p = parse_text("extern reward(x, s) -> real\n");
	decl *d = decl_at(p, 0);
	assert_int_equal(d->u.ext.nparams, 2);
	assert_false(d->u.ext.params[0].has_type);
	assert_string_equal(d->u.ext.params[1].name, "s");
	assert_string_equal(span_text(p, d->u.ext.params[1].where), "s");
	parsed_free(p);
}

static void test_parser__family__records_logp_lets_and_sample(void **state)
{
	(void)state;
	const char *src =
		"family mix(w : real[K], mu : real[K]) on real {\n"
		"  let u = uniform()\n"
		"  sample = mu[0] + u\n"
		"  logp(y) = logsumexp(w - square(y - mu))\n"
		"  let c = 2\n"
		"}\n";
	parsed *p = parse_text(src);
	CHECK_NDIAGS(p, 0);
	assert_string_equal(ast_text(p),
		"family mix(w : real[K], mu : real[K]) on real {"
		" logp(y) = (logsumexp (- w (square (- y mu))));"
		" let u = (uniform); let c = 2;"
		" sample = (+ (index mu 0) u); }\n");
	decl *d = decl_at(p, 0);
	assert_int_equal(d->u.family.nparams, 2);
	assert_true(d->u.family.params[0].has_type);
	assert_int_equal(d->u.family.on.kind, K_REAL);
	assert_int_equal(d->u.family.nlets, 2);
	assert_string_equal(d->u.family.lets[0].name, "u");
	assert_string_equal(span_text(p, d->u.family.lets[1].where), "c");
	assert_string_equal(span_text(p, d->u.family.logp_var_where), "y");
	/* the declaration spans the whole block, up to its '}' */
	size_t n = strlen(src);
	assert_string_equal(span_text(p, d->where), arena_strndup(p->a, src, n - 1));
	parsed_free(p);
}

static void test_parser__family_on_one_line__needs_no_newlines(void **state)
{
	(void)state;
	check_ast("family f(l : real) on cat(K) { logp(v) = l; sample = 0 }\n",
	          "family f(l : real) on cat(K) { logp(v) = l; sample = 0; }\n");
	check_ast("family f(l : real) on bin {\n\n  logp(v) = l\n\n}\n",
	          "family f(l : real) on bin { logp(v) = l; }\n");
	check_ast("family f(l : real) on bin {}\n", "family f(l : real) on bin { }\n");
}

static void test_parser__family_brace_on_next_line__is_accepted(void **state)
{
	(void)state;
	check_ast("family f(l : real) on bin\n{\n  logp(v) = l\n}\n",
	          "family f(l : real) on bin { logp(v) = l; }\n");
}

static void test_parser__order__accepts_every_item_form(void **state)
{
	(void)state;
	check_ast("order x, reverse(y), z by P, w by random(42)\n",
	          "order x, reverse(y), z by P, w by random(42)\n");
	parsed *p = parse_text("order x, reverse(y), z by P, w by random(1 + 2)\n");
	decl *d = decl_at(p, 0);
	assert_int_equal(d->u.order.nitems, 4);
	assert_int_equal(d->u.order.items[0].form, ORD_NATURAL);
	assert_int_equal(d->u.order.items[1].form, ORD_REVERSE);
	assert_string_equal(d->u.order.items[1].var, "y");
	assert_string_equal(span_text(p, d->u.order.items[1].where), "reverse(y)");
	assert_int_equal(d->u.order.items[2].form, ORD_BY);
	assert_string_equal(d->u.order.items[2].perm, "P");
	assert_string_equal(span_text(p, d->u.order.items[2].perm_where), "P");
	assert_int_equal(d->u.order.items[3].form, ORD_RANDOM);
	assert_int_equal(d->u.order.items[3].seed->kind, E_BINARY);
	assert_string_equal(span_text(p, d->u.order.items[3].where), "w by random(1 + 2)");
	parsed_free(p);
}

static void test_parser__let__with_and_without_index(void **state)
{
	(void)state;
	check_ast("let h[i] = sigmoid(c)\nlet s = 3\n", "let h[i] = (sigmoid c)\nlet s = 3\n");
	parsed *p = parse_text("let s = 3\n");
	assert_null(decl_at(p, 0)->u.let.index);
	parsed_free(p);
}

static void test_parser__conditionals__array_and_scalar_targets(void **state)
{
	(void)state;
	check_ast("x[i] ~ bernoulli_logit(b[i])\ny ~ normal(mu, exp(s))\n",
	          "x[i] ~ (bernoulli_logit (index b i))\ny ~ (normal mu (exp s))\n");
	parsed *p = parse_text("y ~ normal(0, 1)\n");
	decl *d = decl_at(p, 0);
	assert_null(d->u.cond.index);
	assert_string_equal(d->name, "y");
	assert_string_equal(span_text(p, d->u.cond.family->where), "normal(0, 1)");
	parsed_free(p);
}

static void test_parser__objectives__maximize_minimize_subject_to(void **state)
{
	(void)state;
	check_ast("maximize loglik\n"
	          "maximize loglik - 1e-4 * l2(W)\n"
	          "minimize 0.5 * dot(x, A @ x) + dot(b, x) + 3\n"
	          "maximize expected(reward) - 0.05 * kl(ref)\n"
	          "maximize expected(reward) subject to kl(old) <= 0.01\n",
	          "maximize loglik\n"
	          "maximize (- loglik (* 0.0001 (l2 W)))\n"
	          "minimize (+ (+ (* 0.5 (dot x (@ A x))) (dot b x)) 3)\n"
	          "maximize (- (expected reward) (* 0.05 (kl ref)))\n"
	          "maximize (expected reward) subject to (<= (kl old) 0.01)\n");
	parsed *p = parse_text("minimize f(x)\nmaximize a subject to b <= 1\n");
	assert_false(decl_at(p, 0)->u.objective.maximize);
	assert_null(decl_at(p, 0)->u.objective.constraint);
	assert_true(decl_at(p, 1)->u.objective.maximize);
	assert_int_equal(decl_at(p, 1)->u.objective.constraint->u.binary.op, OP_LE);
	parsed_free(p);
}

static void test_parser__subject_to_without_comparison__is_an_error(void **state)
{
	(void)state;
	parsed *p = parse_text("maximize a subject to b\n");
	CHECK_NDIAGS(p, 1);
	CHECK_DIAG(&p->d, 0, "expected a comparison after 'subject to'", 1, 23);
	parsed_free(p);
}

/* ---- expressions */

static void test_parser__precedence__follows_mathematics(void **state)
{
	(void)state;
	check_expr("a + b * c", "(+ a (* b c))");
	check_expr("a - b - c", "(- (- a b) c)");
	check_expr("a / b * c", "(* (/ a b) c)");
	check_expr("a ^ b ^ c", "(^ a (^ b c))");
	check_expr("-x ^ 2", "(- (^ x 2))");
	check_expr("2 ^ -1", "(^ 2 (- 1))");
	check_expr("-a * b", "(* (- a) b)");
	check_expr("A @ x + b", "(+ (@ A x) b)");
	check_expr("a * b @ c", "(@ (* a b) c)");
	check_expr("a + b < c * d", "(< (+ a b) (* c d))");
	check_expr("a < b && c >= d || e != f", "(|| (&& (< a b) (>= c d)) (!= e f))");
	check_expr("a == b", "(== a b)");
	check_expr("a > b", "(> a b)");
	check_expr("(a + b) * c", "(* (+ a b) c)");
	check_expr("- - a", "(- (- a))");
	check_expr("-W[i, j]", "(- (index W i j))");
	check_expr("x[j] ^ 2", "(^ (index x j) 2)");
}

static void test_parser__comparisons__do_not_chain(void **state)
{
	(void)state;
	parsed *p = parse_text("let e = a < b < c\n");
	CHECK_NDIAGS(p, 1);
	CHECK_DIAG(&p->d, 0, "unexpected '<'", 1, 15);
	parsed_free(p);
}

static void test_parser__numbers__ints_decimals_exponents(void **state)
{
	(void)state;
	check_expr("[784, 0.01, 1e-4, 2.5E+3, .5, 3., 1e3]", "[784 0.01 0.0001 2500 0.5 3 1000]");
	check_expr("2222222222222222222252", "2.2222222222222222e+21");
}

static void test_parser__sum_before__builds_sum_node(void **state)
{
	(void)state;
	check_expr("sum(j before i) W[i, j] * x[j]", "(sum j before i (* (index W i j) (index x j)))");
	/* the body takes products but stops at + (as in mathematics) */
	check_expr("sum(j before i) a * b + c", "(+ (sum j before i (* a b)) c)");
	check_expr("b + sum(j before i) x[j]", "(+ b (sum j before i (index x j)))");
	check_expr("sum(j before i) -x[j] ^ 2", "(sum j before i (- (^ (index x j) 2)))");
	check_expr("sum(j before i) sum(k before j) x[k]",
	           "(sum j before i (sum k before j (index x k)))");
}

static void test_parser__sum_range__builds_range_node(void **state)
{
	(void)state;
	check_expr("sum(k in 0..K-1) exp(l[k])", "(sum k in 0 (- K 1) (exp (index l k)))");
	check_expr("sum(k in 1 .. n) k", "(sum k in 1 n k)");
	check_expr("sum(k in a+1..b*2) (k < u)", "(sum k in (+ a 1) (* b 2) (< k u))");
	parsed *p = parse_text("let e = sum(k in 0..3) k\n");
	expr *e = decl_at(p, 0)->u.let.value;
	assert_int_equal(e->kind, E_SUM_RANGE);
	assert_string_equal(e->u.sum.var, "k");
	assert_null(e->u.sum.pos);
	assert_string_equal(span_text(p, e->u.sum.lo->where), "0");
	assert_string_equal(span_text(p, e->u.sum.hi->where), "3");
	parsed_free(p);
}

static void test_parser__sum_without_before_or_in__is_a_call(void **state)
{
	(void)state;
	check_expr("sum(v)", "(sum v)");
	check_expr("sum(v) + 1", "(+ (sum v) 1)");
	check_expr("sum(W @ x, 2)", "(sum (@ W x) 2)");
	parsed *p = parse_text("let e = sum(v)\n");
	expr *e = decl_at(p, 0)->u.let.value;
	assert_int_equal(e->kind, E_CALL);
	assert_string_equal(e->u.call.name, "sum");
	assert_string_equal(span_text(p, e->u.call.name_where), "sum");
	parsed_free(p);
}

static void test_parser__calls__with_zero_and_many_args(void **state)
{
	(void)state;
	check_expr("uniform()", "(uniform)");
	check_expr("f(a, b, c)", "(f a b c)");
	check_expr("expected(reward) - kl(ref) + l1(W) + l2(W)",
	           "(+ (+ (- (expected reward) (kl ref)) (l1 W)) (l2 W))");
	check_expr("loglik", "loglik");
	parsed *p = parse_text("let e = uniform()\n");
	expr *e = decl_at(p, 0)->u.let.value;
	assert_int_equal(e->kind, E_CALL);
	assert_int_equal(e->u.call.args.len, 0);
	parsed_free(p);
}

static void test_parser__indexing__slices_and_positions(void **state)
{
	(void)state;
	check_expr("W[:, j]", "(index W : j)");
	check_expr("V[i, :]", "(index V i :)");
	check_expr("V[i]", "(index V i)");
	check_expr("W[i, j]", "(index W i j)");
	check_expr("W[i][j]", "(index (index W i) j)");
	check_expr("f(x)[0]", "(index (f x) 0)");
	check_expr("(a + b)[i - 1]", "(index (+ a b) (- i 1))");
	parsed *p = parse_text("let e = W[:, j]\n");
	expr *e = decl_at(p, 0)->u.let.value;
	assert_int_equal(e->kind, E_INDEX);
	assert_int_equal(e->u.index.args.items[0]->kind, E_SLICE);
	assert_string_equal(span_text(p, e->u.index.args.items[0]->where), ":");
	assert_string_equal(span_text(p, e->where), "W[:, j]");
	parsed_free(p);
}

static void test_parser__if_then_else__else_extends_right(void **state)
{
	(void)state;
	check_expr("if c then a else b + 1", "(if c a (+ b 1))");
	check_expr("x + if c then a else b", "(+ x (if c a b))");
	check_expr("if a < b then -1 else if a > b then 1 else 0",
	           "(if (< a b) (- 1) (if (> a b) 1 0))");
}

static void test_parser__expression_spans__cover_the_source(void **state)
{
	(void)state;
	parsed *p = parse_text("let e = (a + b) * f(c, d)\n");
	expr *e = decl_at(p, 0)->u.let.value;
	assert_string_equal(span_text(p, e->where), "(a + b) * f(c, d)");
	assert_string_equal(span_text(p, e->u.binary.lhs->where), "a + b");
	assert_string_equal(span_text(p, e->u.binary.rhs->where), "f(c, d)");
	assert_string_equal(span_text(p, e->u.binary.rhs->u.call.name_where), "f");
	assert_string_equal(span_text(p, decl_at(p, 0)->where), "let e = (a + b) * f(c, d)");
	parsed_free(p);
}

/* ---- line structure */

static void test_parser__newlines_inside_brackets__are_ignored(void **state)
{
	(void)state;
	check_ast("param W : real[\n  H,\n  n\n] ~ normal(\n  0,\n  0.01\n)\n",
	          "param W : real[H, n] ~ (normal 0 0.01)\n");
}

static void test_parser__line_ending_in_operator__continues(void **state)
{
	(void)state;
	check_ast("maximize loglik -\n  1e-4 * l2(W)\n", "maximize (- loglik (* 0.0001 (l2 W)))\n");
	check_ast("let e = if c then\n a else\n b\n", "let e = (if c a b)\n");
}

static void test_parser__comments_and_blank_lines__are_skipped(void **state)
{
	(void)state;
	check_ast("# header\n\nmodel m   # trailing\n\n\n# x\ndim n = 1 # c\n",
	          "model m\ndim n = 1\n");
}

static void test_parser__crlf_line_endings__are_accepted(void **state)
{
	(void)state;
	check_ast("model m\r\ndim n = 3\r\n", "model m\ndim n = 3\n");
}

/* ---- errors and recovery */

static void test_parser__missing_paren__reports_at_line_end_and_recovers(void **state)
{
	(void)state;
	parsed *p = parse_text("model m\nparam W : real ~ normal(0, 0.01\nparam c : real\n");
	CHECK_NDIAGS(p, 1);
	CHECK_DIAG(&p->d, 0, "unexpected newline, expected ')' or ','", 2, 32);
	assert_string_equal(ast_text(p), "model m\nerror\nparam c : real\n");
	assert_int_equal(p->errors, 1);
	parsed_free(p);
}

static void test_parser__several_errors__are_all_reported(void **state)
{
	(void)state;
	parsed *p = parse_text("model m\n"
	                       "dim n = 3 4\n"
	                       "dim k = \n"
	                       "param c : real\n"
	                       "x[i] ~ f(a) + 1\n"
	                       "+ 3\n"
	                       "data x : float\n");
	CHECK_NDIAGS(p, 5);
	CHECK_DIAG(&p->d, 0, "unexpected number '4', expected newline", 2, 11);
	CHECK_DIAG(&p->d, 1, "unexpected newline, expected an expression", 3, 9);
	CHECK_DIAG(&p->d, 2, "unexpected '+', expected newline", 5, 13);
	CHECK_DIAG(&p->d, 3, "unexpected '+', expected a declaration", 6, 1);
	CHECK_DIAG(&p->d, 4, "unexpected identifier 'float', expected a type (bin, cat(K), int or real)", 7, 10);
	assert_string_equal(ast_text(p), "model m\nerror\nerror\nparam c : real\nerror\nerror\nerror\n");
	assert_int_equal(p->errors, 5);
	parsed_free(p);
}

static void test_parser__error_at_end_of_file__says_end_of_file(void **state)
{
	(void)state;
	parsed *p = parse_text("model m\nlet b = (1 + 2\n\n\n");
	CHECK_NDIAGS(p, 1);
	CHECK_DIAG(&p->d, 0, "unexpected end of file, expected ')'", 2, 15);
	parsed_free(p);
}

static void test_parser__semicolon_in_error__is_named(void **state)
{
	(void)state;
	parsed *p = parse_text("dim n = ;\n");
	CHECK_DIAG(&p->d, 0, "unexpected ';', expected an expression", 1, 9);
	parsed_free(p);
}

static void test_parser__family_line_error__recovers_inside_block(void **state)
{
	(void)state;
	parsed *p = parse_text("family f(l : real) on bin {\n"
	                       "  logp(v) = v * * l\n"
	                       "  let = 3\n"
	                       "  sample = 1\n"
	                       "}\n"
	                       "model m\n");
	CHECK_NDIAGS(p, 2);
	CHECK_DIAG(&p->d, 0, "unexpected '*', expected an expression", 2, 17);
	CHECK_DIAG(&p->d, 1, "unexpected '=', expected identifier", 3, 7);
	assert_string_equal(ast_text(p), "family f(l : real) on bin { sample = 1; }\nmodel m\n");
	parsed_free(p);
}

static void test_parser__unclosed_family_block__is_closed_by_next_declaration(void **state)
{
	(void)state;
	parsed *p = parse_text("family f(l : real) on bin {\n"
	                       "  logp(v) = v * l\n"
	                       "  sample = 1\n"
	                       "param c : real\n");
	CHECK_NDIAGS(p, 2);
	CHECK_DIAG(&p->d, 0, "family 'f' is missing its closing '}'", 4, 1);
	CHECK_DIAG(&p->d, 1, "the family block opens here", 1, 27);
	assert_int_equal(((diag *)p->d.diags.items[1])->level, DIAG_NOTE);
	assert_string_equal(ast_text(p),
	                    "family f(l : real) on bin { logp(v) = (* v l); sample = 1; }\n"
	                    "param c : real\n");
	parsed_free(p);
}

static void test_parser__unclosed_family_block_at_eof__is_reported(void **state)
{
	(void)state;
	parsed *p = parse_text("family f(l : real) on bin {\n  logp(v) = v * l\n");
	CHECK_NDIAGS(p, 2);
	CHECK_DIAG(&p->d, 0, "family 'f' is missing its closing '}'", 2, 18);
	parsed_free(p);
}

static void test_parser__broken_family_header__skips_its_block(void **state)
{
	(void)state;
	parsed *p = parse_text("family f(l real) on bin {\n"
	                       "  logp(v) = v * l\n"
	                       "  sample = 1\n"
	                       "}\n"
	                       "param c : real\n");
	CHECK_NDIAGS(p, 1);
	CHECK_DIAG(&p->d, 0, "unexpected 'real', expected ':', ')' or ','", 1, 12);
	assert_string_equal(ast_text(p), "error\nparam c : real\n");
	parsed_free(p);
}

static void test_parser__duplicate_logp__points_at_both(void **state)
{
	(void)state;
	parsed *p = parse_text("family g(a : real) on real { logp(v) = 1; logp(w) = 2; sample = 0; sample = 1 }\n");
	CHECK_NDIAGS(p, 4);
	CHECK_DIAG(&p->d, 0, "family 'g' has a second 'logp' line", 1, 43);
	CHECK_DIAG(&p->d, 1, "the first 'logp' line is here", 1, 30);
	CHECK_DIAG(&p->d, 2, "family 'g' has a second 'sample' line", 1, 68);
	CHECK_DIAG(&p->d, 3, "the first 'sample' line is here", 1, 56);
	parsed_free(p);
}

static void test_parser__untyped_family_param__is_an_error(void **state)
{
	(void)state;
	parsed *p = parse_text("family g(a, b : real) on real { logp(v) = 1 }\n");
	CHECK_NDIAGS(p, 1);
	CHECK_DIAG(&p->d, 0, "family parameter 'a' needs a type", 1, 10);
	parsed_free(p);
}

static void test_parser__invalid_bytes__are_reported_and_skipped(void **state)
{
	(void)state;
	static const char src[] = "model m\ndim n = 3 \x01\x02\x00 + $ 4\n";
	parsed *p = parse_bytes(src, sizeof src - 1);
	CHECK_NDIAGS(p, 2);
	CHECK_DIAG(&p->d, 0, "invalid character '\\x01'", 2, 11);
	CHECK_DIAG(&p->d, 1, "invalid character '$'", 2, 17);
	assert_string_equal(ast_text(p), "model m\ndim n = (+ 3 4)\n");
	parsed_free(p);
}

static void test_parser__long_runs_of_nul__take_linear_time(void **state)
{
	(void)state;
	/* flex rescans a token at each NUL: a run of NULs matched as one token
	 * would be quadratic (minutes for this size) */
	size_t n = 4u << 20;
	char *src = calloc(n, 1);
	assert_non_null(src);
	memcpy(src, "model m\n", 8);
	parsed *p = parse_bytes(src, n);
	CHECK_NDIAGS(p, 1);
	CHECK_DIAG(&p->d, 0, "invalid character '\\x00'", 2, 1);
	diag *g = p->d.diags.items[0];
	assert_int_equal(g->where.end - g->where.begin, n - 8);   /* one error, the whole run */
	parsed_free(p);
	/* and in a comment */
	memcpy(src, "model m\n#", 9);
	memcpy(src + n - 10, "\ndim n = 3", 10);
	p = parse_bytes(src, n);
	CHECK_NDIAGS(p, 0);
	assert_string_equal(ast_text(p), "model m\ndim n = 3\n");
	parsed_free(p);
	free(src);
}

static void test_parser__many_error_lines__stay_cheap(void **state)
{
	(void)state;
	char *src = repeat("model m\n", ")\n", 200000, "dim n = 3\n");
	parsed *p = parse_text(src);
	assert_int_equal(p->d.errors, 200000);
	assert_int_equal(p->d.diags.len, 50);
	/* D_ERRORs stop at the cap; the declarations after still parse */
	assert_true(p->prog.decls.len <= 52);
	assert_int_equal(decl_at(p, p->prog.decls.len - 1)->kind, D_DIM);
	parsed_free(p);
	free(src);
}

static void test_parser__keyword_as_name__is_a_syntax_error(void **state)
{
	(void)state;
	parsed *p = parse_text("data sample : real\n");
	CHECK_NDIAGS(p, 1);
	CHECK_DIAG(&p->d, 0, "unexpected 'sample', expected identifier", 1, 6);
	parsed_free(p);
}

static void test_parser__number_too_large__is_reported(void **state)
{
	(void)state;
	parsed *p = parse_text("dim n = 1e999\n");
	CHECK_NDIAGS(p, 1);
	CHECK_DIAG(&p->d, 0, "number '1e999' is too large", 1, 9);
	parsed_free(p);
}

/* ---- limits */

static void test_parser__200_nested_parens__are_accepted(void **state)
{
	(void)state;
	char *open = repeat("dim n = ", "(", 200, "1");
	char *src = repeat(open, ")", 200, "\n");
	parsed *p = parse_text(src);
	CHECK_NDIAGS(p, 0);
	assert_string_equal(ast_text(p), "dim n = 1\n");
	parsed_free(p);
	free(open);
	free(src);
}

static void test_parser__100000_open_parens__is_one_clean_error(void **state)
{
	(void)state;
	char *src = repeat("model m\ndim n = ", "(", 100000, "\ndim k = 2\n");
	parsed *p = parse_text(src);
	CHECK_NDIAGS(p, 1);
	CHECK_DIAG(&p->d, 0, "nesting deeper than 200 levels", 2, 209);
	assert_string_equal(ast_text(p), "model m\nerror\ndim k = 2\n");
	parsed_free(p);
	free(src);
}

static void test_parser__100000_brackets__is_one_clean_error(void **state)
{
	(void)state;
	char *src = repeat("const A : real = ", "[", 100000, "");
	parsed *p = parse_text(src);
	CHECK_NDIAGS(p, 1);
	CHECK_DIAG(&p->d, 0, "nesting deeper than 200 levels", 1, 218);
	parsed_free(p);
	free(src);
}

static void test_parser__deep_unary_minus__is_one_clean_error(void **state)
{
	(void)state;
	/* 300: caught when the tree is built */
	char *src = repeat("dim n = ", "-", 300, "1\ndim k = 2\n");
	parsed *p = parse_text(src);
	CHECK_NDIAGS(p, 1);
	CHECK_DIAG(&p->d, 0, "nesting deeper than 200 levels", 1, 109);
	assert_string_equal(ast_text(p), "dim n = <error>\ndim k = 2\n");
	parsed_free(p);
	free(src);
	/* 100000: caught before the parser's stack grows */
	src = repeat("dim n = ", "-", 100000, "1\ndim k = 2\n");
	p = parse_text(src);
	CHECK_NDIAGS(p, 1);
	assert_string_equal(ast_text(p), "error\ndim k = 2\n");
	parsed_free(p);
	free(src);
}

static void test_parser__deep_right_assoc_and_if_chains__are_clean_errors(void **state)
{
	(void)state;
	static const char *const units[] = {"2^", "if 1 then 2 else ", "sum(j before i) ", "f(", "x["};
	for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
		char *src = repeat("dim n = ", units[i], 100000, "1\ndim k = 2\n");
		parsed *p = parse_text(src);
		CHECK_NDIAGS(p, 1);
		assert_string_equal(((diag *)p->d.diags.items[0])->msg, "nesting deeper than 200 levels");
		assert_int_equal(p->errors, 1);
		assert_string_equal(ast_text(p), "error\ndim k = 2\n");
		parsed_free(p);
		free(src);
	}
}

static void test_parser__long_left_chain__is_bounded_in_depth(void **state)
{
	(void)state;
	char *src = repeat("dim n = 1", "+1", 100000, "\n");
	parsed *p = parse_text(src);
	CHECK_NDIAGS(p, 1);
	CHECK_DIAG(&p->d, 0, "nesting deeper than 200 levels", 1, 9);
	assert_int_equal(decl_at(p, 0)->u.dim.value->kind, E_ERROR);
	parsed_free(p);
	free(src);
	/* a wide array is flat, not deep */
	src = repeat("const A : real[100000] = [0", ", 1", 99999, "]\n");
	p = parse_text(src);
	CHECK_NDIAGS(p, 0);
	assert_int_equal(decl_at(p, 0)->u.var.value->u.array.len, 100000);
	parsed_free(p);
	free(src);
}

/* ---- files */

static void test_parser__missing_file__reports_cannot_open(void **state)
{
	(void)state;
	parsed *p = parsed_new();
	int n = parse_path(&p->d, "no/such/file.chain", &p->prog);
	assert_int_equal(n, 1);
	CHECK_DIAG(&p->d, 0, "cannot open 'no/such/file.chain': No such file or directory", 1, 1);
	assert_string_equal(diag_text(p),
	                    "no/such/file.chain:1:1: error: cannot open 'no/such/file.chain': "
	                    "No such file or directory\n");
	parsed_free(p);
}

static void test_parser__directory__reports_cannot_read(void **state)
{
	(void)state;
	parsed *p = parsed_new();
	int n = parse_path(&p->d, "/", &p->prog);
	assert_int_equal(n, 1);
	CHECK_DIAG(&p->d, 0, "cannot read '/'", 1, 1);
	parsed_free(p);
}

static void test_parser__file_over_limit__is_too_large(void **state)
{
	(void)state;
	char path[] = "/tmp/chain_test_bigXXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)PARSE_MAX_FILE_SIZE + 1), 0);
	close(fd);
	parsed *p = parsed_new();
	int n = parse_path(&p->d, path, &p->prog);
	unlink(path);
	assert_int_equal(n, 1);
	CHECK_DIAG(&p->d, 0, "file too large", 1, 1);
	parsed_free(p);
}

static void test_parser__real_file__parses_through_parse_path(void **state)
{
	(void)state;
	char path[] = "/tmp/chain_test_okXXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *src = "model m\ndim n = (\n";
	assert_int_equal(write(fd, src, strlen(src)), (ssize_t)strlen(src));
	close(fd);
	parsed *p = parsed_new();
	int n = parse_path(&p->d, path, &p->prog);
	assert_int_equal(n, 1);
	CHECK_DIAG(&p->d, 0, "unexpected end of file", 2, 10);
	const src_file *f = p->d.files.items[0];
	assert_string_equal(f->name, path);
	unlink(path);
	parsed_free(p);
}

static void test_parser__two_compilations__are_independent(void **state)
{
	(void)state;
	parsed *a = parse_text("model a\ndim n = (\n");
	parsed *b = parse_text("model b\ndim n = 2\n");
	assert_int_equal(a->errors, 1);
	assert_int_equal(b->errors, 0);
	assert_string_equal(ast_text(b), "model b\ndim n = 2\n");
	parsed_free(a);
	parsed_free(b);
}

/* ---- robustness: random and truncated inputs never crash or hang */

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void test_parser__random_bytes__never_crash(void **state)
{
	(void)state;
	static const char alphabet[] = "model dim data param family order let sum before in if then else "
	                               "logp sample x i j ( ) [ ] { } , : ; = ~ + - * / ^ @ < > .. -> "
	                               "0 1 2.5 1e-4 \n\n# \x01\xff\xc3\xa9";
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	char buf[512];
	for (int iter = 0; iter < 3000; iter++) {
		size_t len = rng_next(&seed) % sizeof buf;
		bool raw = iter % 3 == 0;
		for (size_t i = 0; i < len; i++)
			buf[i] = raw ? (char)(rng_next(&seed) & 0xff)
			             : alphabet[rng_next(&seed) % (sizeof alphabet - 1)];
		parsed *p = parse_bytes(buf, len);
		assert_true(p->errors >= 0);
		(void)diag_text(p);
		(void)ast_text(p);
		parsed_free(p);
	}
}

static void test_parser__truncated_examples__never_crash(void **state)
{
	(void)state;
	size_t len;
	char *src = read_tree_file("examples/nade.chain", &len);
	for (size_t cut = 0; cut <= len; cut++) {
		parsed *p = parse_bytes(src, cut);
		(void)diag_text(p);
		parsed_free(p);
	}
	/* and with one byte flipped at each position */
	for (size_t i = 0; i < len; i += 3) {
		char saved = src[i];
		src[i] = (char)(saved ^ 0x21);
		parsed *p = parse_bytes(src, len);
		(void)diag_text(p);
		parsed_free(p);
		src[i] = saved;
	}
	free(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parser__nade_example__builds_every_declaration),
		cmocka_unit_test(test_parser__fvsbn_example__builds_triangular_sum),
		cmocka_unit_test(test_parser__stdlib__parses_every_family_with_logp_and_sample),
		cmocka_unit_test(test_parser__stdlib_then_model__keeps_stdlib_first),
		cmocka_unit_test(test_parser__empty_file__has_no_declarations),
		cmocka_unit_test(test_parser__model_and_dims__build_decls),
		cmocka_unit_test(test_parser__missing_final_newline__is_fine),
		cmocka_unit_test(test_parser__semicolons__end_declarations),
		cmocka_unit_test(test_parser__data_input_types__cover_every_kind),
		cmocka_unit_test(test_parser__param_init__takes_any_expression),
		cmocka_unit_test(test_parser__const_array_literal__nests),
		cmocka_unit_test(test_parser__extern__takes_bare_names_or_typed_params),
		cmocka_unit_test(test_parser__family__records_logp_lets_and_sample),
		cmocka_unit_test(test_parser__family_on_one_line__needs_no_newlines),
		cmocka_unit_test(test_parser__family_brace_on_next_line__is_accepted),
		cmocka_unit_test(test_parser__order__accepts_every_item_form),
		cmocka_unit_test(test_parser__let__with_and_without_index),
		cmocka_unit_test(test_parser__conditionals__array_and_scalar_targets),
		cmocka_unit_test(test_parser__objectives__maximize_minimize_subject_to),
		cmocka_unit_test(test_parser__subject_to_without_comparison__is_an_error),
		cmocka_unit_test(test_parser__precedence__follows_mathematics),
		cmocka_unit_test(test_parser__comparisons__do_not_chain),
		cmocka_unit_test(test_parser__numbers__ints_decimals_exponents),
		cmocka_unit_test(test_parser__sum_before__builds_sum_node),
		cmocka_unit_test(test_parser__sum_range__builds_range_node),
		cmocka_unit_test(test_parser__sum_without_before_or_in__is_a_call),
		cmocka_unit_test(test_parser__calls__with_zero_and_many_args),
		cmocka_unit_test(test_parser__indexing__slices_and_positions),
		cmocka_unit_test(test_parser__if_then_else__else_extends_right),
		cmocka_unit_test(test_parser__expression_spans__cover_the_source),
		cmocka_unit_test(test_parser__newlines_inside_brackets__are_ignored),
		cmocka_unit_test(test_parser__line_ending_in_operator__continues),
		cmocka_unit_test(test_parser__comments_and_blank_lines__are_skipped),
		cmocka_unit_test(test_parser__crlf_line_endings__are_accepted),
		cmocka_unit_test(test_parser__missing_paren__reports_at_line_end_and_recovers),
		cmocka_unit_test(test_parser__several_errors__are_all_reported),
		cmocka_unit_test(test_parser__error_at_end_of_file__says_end_of_file),
		cmocka_unit_test(test_parser__semicolon_in_error__is_named),
		cmocka_unit_test(test_parser__family_line_error__recovers_inside_block),
		cmocka_unit_test(test_parser__unclosed_family_block__is_closed_by_next_declaration),
		cmocka_unit_test(test_parser__unclosed_family_block_at_eof__is_reported),
		cmocka_unit_test(test_parser__broken_family_header__skips_its_block),
		cmocka_unit_test(test_parser__duplicate_logp__points_at_both),
		cmocka_unit_test(test_parser__untyped_family_param__is_an_error),
		cmocka_unit_test(test_parser__invalid_bytes__are_reported_and_skipped),
		cmocka_unit_test(test_parser__long_runs_of_nul__take_linear_time),
		cmocka_unit_test(test_parser__many_error_lines__stay_cheap),
		cmocka_unit_test(test_parser__keyword_as_name__is_a_syntax_error),
		cmocka_unit_test(test_parser__number_too_large__is_reported),
		cmocka_unit_test(test_parser__200_nested_parens__are_accepted),
		cmocka_unit_test(test_parser__100000_open_parens__is_one_clean_error),
		cmocka_unit_test(test_parser__100000_brackets__is_one_clean_error),
		cmocka_unit_test(test_parser__deep_unary_minus__is_one_clean_error),
		cmocka_unit_test(test_parser__deep_right_assoc_and_if_chains__are_clean_errors),
		cmocka_unit_test(test_parser__long_left_chain__is_bounded_in_depth),
		cmocka_unit_test(test_parser__missing_file__reports_cannot_open),
		cmocka_unit_test(test_parser__directory__reports_cannot_read),
		cmocka_unit_test(test_parser__file_over_limit__is_too_large),
		cmocka_unit_test(test_parser__real_file__parses_through_parse_path),
		cmocka_unit_test(test_parser__two_compilations__are_independent),
		cmocka_unit_test(test_parser__random_bytes__never_crash),
		cmocka_unit_test(test_parser__truncated_examples__never_crash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
