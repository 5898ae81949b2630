/* test_lexer.c -- the tokens of grammar/lexer.l, driven directly: kinds,
 * values, byte spans, which newlines reach the parser, and bad bytes. */
#include "test_helpers.h"

#include "parser.h"
#define YYSTYPE CHAIN_YYSTYPE
#define YYLTYPE CHAIN_YYLTYPE
#include "lexer.h"

#define MAX_TOKS 256

typedef struct tok {
	int kind;
	span where;
	double num;
	const char *str;
} tok;

/* A scanned text: its tokens up to and including end of file, and the
 * diagnostics of the scan. */
typedef struct lexed {
	parsed *p;
	tok toks[MAX_TOKS];
	int n;
} lexed;

static lexed *lex_bytes(const char *src, size_t len)
{
	lexed *l = calloc(1, sizeof *l);
	assert_non_null(l);
	l->p = parsed_new();
	uint32_t file = diag_add_file(&l->p->d, "lex.chain", src, len);
	const src_file *f = l->p->d.files.items[file];
	lex_state st = {
		.d = &l->p->d, .a = l->p->a, .file = file,
		.text = f->text, .len = f->len, .line_start = true,
	};
	yyscan_t sc;
	assert_int_equal(chain_yylex_init_extra(&st, &sc), 0);
	YY_BUFFER_STATE buf = chain_yy_scan_bytes(f->text, (int)f->len, sc);
	for (;;) {
		assert_true(l->n < MAX_TOKS);
		YYSTYPE v;
		YYLTYPE loc;
		memset(&v, 0, sizeof v);
		int k = chain_yylex(&v, &loc, sc);
		tok *t = &l->toks[l->n++];
		t->kind = k;
		t->where = loc;
		if (k == T_NUMBER)
			t->num = v.num;
		if (k == T_NAME)
			t->str = v.str;
		if (k == T_YYEOF)
			break;
	}
	chain_yy_delete_buffer(buf, sc);
	chain_yylex_destroy(sc);
	return l;
}

static lexed *lex(const char *src)
{
	return lex_bytes(src, strlen(src));
}

static void lexed_free(lexed *l)
{
	parsed_free(l->p);
	free(l);
}

/* Asserts the token kinds, ending with end of file (a 0 in `want`). */
static void check_kinds(lexed *l, const int *want)
{
	int i = 0;
	for (; want[i] != T_YYEOF; i++) {
		if (i >= l->n)
			fail_msg("only %d tokens, expected more", l->n);
		if (l->toks[i].kind != want[i])
			fail_msg("token %d is %d, expected %d", i, l->toks[i].kind, want[i]);
	}
	assert_int_equal(l->n, i + 1);
	assert_int_equal(l->toks[i].kind, T_YYEOF);
}

static void check_span(lexed *l, int i, uint32_t begin, uint32_t end)
{
	assert_true(i < l->n);
	assert_int_equal(l->toks[i].where.begin, begin);
	assert_int_equal(l->toks[i].where.end, end);
}

static void test_lexer__keywords__are_their_own_tokens(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		int kind;
	} kw[] = {
		{"model", T_MODEL}, {"dim", T_DIM}, {"data", T_DATA}, {"input", T_INPUT},
		{"param", T_PARAM}, {"const", T_CONST}, {"extern", T_EXTERN}, {"family", T_FAMILY},
		{"on", T_ON}, {"order", T_ORDER}, {"reverse", T_REVERSE}, {"by", T_BY},
		{"random", T_RANDOM}, {"let", T_LET}, {"maximize", T_MAXIMIZE},
		{"minimize", T_MINIMIZE}, {"subject", T_SUBJECT}, {"to", T_TO}, {"sum", T_SUM},
		{"before", T_BEFORE}, {"in", T_IN}, {"if", T_IF}, {"then", T_THEN},
		{"else", T_ELSE}, {"logp", T_LOGP}, {"sample", T_SAMPLE}, {"bin", T_BIN},
		{"cat", T_CAT}, {"int", T_INT}, {"real", T_REAL},
	};
	for (size_t i = 0; i < sizeof kw / sizeof *kw; i++) {
		lexed *l = lex(kw[i].text);
		assert_int_equal(l->toks[0].kind, kw[i].kind);
		check_span(l, 0, 0, (uint32_t)strlen(kw[i].text));
		CHECK_NDIAGS(l->p, 0);
		lexed_free(l);
	}
}

static void test_lexer__names__include_keyword_prefixes_and_loglik(void **state)
{
	(void)state;
	lexed *l = lex("models sum_x loglik _a1 expected kl l1 l2 x");
	const int want[] = {T_NAME, T_NAME, T_NAME, T_NAME, T_NAME, T_NAME, T_NAME, T_NAME, T_NAME,
	                    T_NEWLINE, T_YYEOF};
	check_kinds(l, want);
	assert_string_equal(l->toks[0].str, "models");
	assert_string_equal(l->toks[2].str, "loglik");
	check_span(l, 1, 7, 12);
	lexed_free(l);
}

static void test_lexer__numbers__ints_decimals_exponents(void **state)
{
	(void)state;
	lexed *l = lex("784 0.01 1e-4 2.5E+3 .5 3. 1e3");
	const double want[] = {784, 0.01, 1e-4, 2.5e3, 0.5, 3, 1e3};
	for (int i = 0; i < 7; i++) {
		assert_int_equal(l->toks[i].kind, T_NUMBER);
		assert_true(l->toks[i].num == want[i]);
	}
	check_span(l, 2, 9, 13);
	CHECK_NDIAGS(l->p, 0);
	lexed_free(l);
}

static void test_lexer__range__is_not_a_decimal_point(void **state)
{
	(void)state;
	lexed *l = lex("0..K-1");
	const int want[] = {T_NUMBER, T_DOTDOT, T_NAME, '-', T_NUMBER, T_NEWLINE, T_YYEOF};
	check_kinds(l, want);
	check_span(l, 0, 0, 1);
	check_span(l, 1, 1, 3);
	lexed_free(l);
}

static void test_lexer__operators__one_and_two_characters(void **state)
{
	(void)state;
	lexed *l = lex("+ - * / ^ @ ~ = < > <= >= == != .. -> && || : , ( ) [ ] { }");
	const int want[] = {'+', '-', '*', '/', '^', '@', '~', '=', '<', '>', T_LE, T_GE, T_EQ,
	                    T_NE, T_DOTDOT, T_ARROW, T_ANDAND, T_OROR, ':', ',', '(', ')', '[',
	                    ']', '{', '}', T_NEWLINE, T_YYEOF};
	check_kinds(l, want);
	check_span(l, 10, 20, 22);
	lexed_free(l);
}

static void test_lexer__newlines__collapse_and_skip_comments(void **state)
{
	(void)state;
	lexed *l = lex("\n\n# head\nmodel m  # tail\n\n\n# c\n\ndim\n");
	const int want[] = {T_MODEL, T_NAME, T_NEWLINE, T_DIM, T_NEWLINE, T_YYEOF};
	check_kinds(l, want);
	check_span(l, 2, 24, 25);      /* the first newline after `model m` */
	lexed_free(l);
}

static void test_lexer__end_of_file__adds_newline_and_points_at_last_line(void **state)
{
	(void)state;
	lexed *l = lex("dim n = 3");
	const int want[] = {T_DIM, T_NAME, '=', T_NUMBER, T_NEWLINE, T_YYEOF};
	check_kinds(l, want);
	check_span(l, 4, 9, 9);
	lexed_free(l);
	l = lex("dim n = 3\n\n \n");
	check_span(l, 5, 9, 9);        /* end of file: just after the 3 */
	lexed_free(l);
	l = lex("");
	const int none[] = {T_YYEOF};
	check_kinds(l, none);
	lexed_free(l);
}

static void test_lexer__semicolon__is_a_newline(void **state)
{
	(void)state;
	lexed *l = lex("a; b;;\n; c");
	const int want[] = {T_NAME, T_NEWLINE, T_NAME, T_NEWLINE, T_NAME, T_NEWLINE, T_YYEOF};
	check_kinds(l, want);
	check_span(l, 1, 1, 2);
	lexed_free(l);
}

static void test_lexer__newlines_in_brackets__are_dropped(void **state)
{
	(void)state;
	lexed *l = lex("f(a,\n b)\nx[1,\n2]\n");
	const int want[] = {T_NAME, '(', T_NAME, ',', T_NAME, ')', T_NEWLINE,
	                    T_NAME, '[', T_NUMBER, ',', T_NUMBER, ']', T_NEWLINE, T_YYEOF};
	check_kinds(l, want);
	lexed_free(l);
}

static void test_lexer__newline_after_operator__is_dropped(void **state)
{
	(void)state;
	lexed *l = lex("a +\n b\nc =\n\n d\n");
	const int want[] = {T_NAME, '+', T_NAME, T_NEWLINE, T_NAME, '=', T_NAME, T_NEWLINE, T_YYEOF};
	check_kinds(l, want);
	lexed_free(l);
}

static void test_lexer__declaration_keyword__ends_an_unfinished_line(void **state)
{
	(void)state;
	/* `(` never closed: the newline before `param` comes back */
	lexed *l = lex("f(a\nparam");
	const int want[] = {T_NAME, '(', T_NAME, T_NEWLINE, T_PARAM, T_NEWLINE, T_YYEOF};
	check_kinds(l, want);
	check_span(l, 3, 3, 4);
	lexed_free(l);
	/* and after an operator */
	l = lex("a =\nlet");
	const int want2[] = {T_NAME, '=', T_NEWLINE, T_LET, T_NEWLINE, T_YYEOF};
	check_kinds(l, want2);
	lexed_free(l);
	/* not in the middle of a line */
	l = lex("f(a param");
	const int want3[] = {T_NAME, '(', T_NAME, T_PARAM, T_NEWLINE, T_YYEOF};
	check_kinds(l, want3);
	lexed_free(l);
}

static void test_lexer__declaration_in_open_block__closes_it(void **state)
{
	(void)state;
	lexed *l = lex("{\nsample\nlet\nmodel\n");
	const int want[] = {'{', T_NEWLINE, T_SAMPLE, T_NEWLINE, T_LET, T_NEWLINE,
	                    T_MISSING_RBRACE, T_NEWLINE, T_MODEL, T_NEWLINE, T_YYEOF};
	check_kinds(l, want);
	check_span(l, 6, 13, 13);     /* zero width, at `model` */
	lexed_free(l);
	/* closed blocks are left alone */
	l = lex("{\n}\nmodel\n");
	const int want2[] = {'{', T_NEWLINE, '}', T_NEWLINE, T_MODEL, T_NEWLINE, T_YYEOF};
	check_kinds(l, want2);
	lexed_free(l);
	/* a block open at the end of the file */
	l = lex("{ a");
	const int want3[] = {'{', T_NAME, T_MISSING_RBRACE, T_NEWLINE, T_YYEOF};
	check_kinds(l, want3);
	lexed_free(l);
}

static void test_lexer__invalid_bytes__one_error_per_run(void **state)
{
	(void)state;
	static const char src[] = "a \x01\x02\x00\x7f b $ c ` ! \xc3\xa9 d";
	lexed *l = lex_bytes(src, sizeof src - 1);
	const int want[] = {T_NAME, T_NAME, T_NAME, T_NAME, T_NEWLINE, T_YYEOF};
	check_kinds(l, want);
	CHECK_NDIAGS(l->p, 5);
	CHECK_DIAG(&l->p->d, 0, "invalid character '\\x01'", 1, 3);
	CHECK_DIAG(&l->p->d, 1, "invalid character '$'", 1, 10);
	CHECK_DIAG(&l->p->d, 2, "invalid character '`'", 1, 14);
	CHECK_DIAG(&l->p->d, 3, "invalid character '!'", 1, 16);
	CHECK_DIAG(&l->p->d, 4, "invalid character '\\xc3'", 1, 18);
	diag *g = l->p->d.diags.items[0];
	assert_int_equal(g->where.end - g->where.begin, 4);   /* the whole run */
	lexed_free(l);
}

static void test_lexer__quotes_and_backslash__are_escaped_in_messages(void **state)
{
	(void)state;
	lexed *l = lex("' \\");
	CHECK_NDIAGS(l->p, 2);
	CHECK_DIAG(&l->p->d, 0, "invalid character '\\''", 1, 1);
	CHECK_DIAG(&l->p->d, 1, "invalid character '\\\\'", 1, 3);
	lexed_free(l);
	l = lex("\\");
	CHECK_DIAG(&l->p->d, 0, "invalid character '\\\\'", 1, 1);
	lexed_free(l);
}

static void test_lexer__non_ascii_in_comment__is_fine(void **state)
{
	(void)state;
	static const char src[] = "a # caf\xc3\xa9 \x01\xff\nb";
	lexed *l = lex_bytes(src, sizeof src - 1);
	const int want[] = {T_NAME, T_NEWLINE, T_NAME, T_NEWLINE, T_YYEOF};
	check_kinds(l, want);
	CHECK_NDIAGS(l->p, 0);
	lexed_free(l);
}

static void test_lexer__huge_number__is_reported(void **state)
{
	(void)state;
	lexed *l = lex("1e400 1e-400");
	CHECK_NDIAGS(l->p, 1);
	CHECK_DIAG(&l->p->d, 0, "number '1e400' is too large", 1, 1);
	assert_int_equal(l->toks[1].kind, T_NUMBER);
	lexed_free(l);
}

static void test_lexer__brackets_past_the_limit__give_one_error_token(void **state)
{
	(void)state;
	char src[PARSE_MAX_DEPTH + 8];
	memset(src, '(', PARSE_MAX_DEPTH + 5);
	src[PARSE_MAX_DEPTH + 5] = '\0';
	lexed *l = lex(src);
	for (int i = 0; i < PARSE_MAX_DEPTH; i++)
		assert_int_equal(l->toks[i].kind, '(');
	assert_int_equal(l->toks[PARSE_MAX_DEPTH].kind, T_CHAIN_YYerror);
	assert_int_equal(l->toks[PARSE_MAX_DEPTH + 1].kind, '(');
	CHECK_NDIAGS(l->p, 1);
	CHECK_DIAG(&l->p->d, 0, "nesting deeper than 200 levels", 1, PARSE_MAX_DEPTH + 1);
	lexed_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lexer__keywords__are_their_own_tokens),
		cmocka_unit_test(test_lexer__names__include_keyword_prefixes_and_loglik),
		cmocka_unit_test(test_lexer__numbers__ints_decimals_exponents),
		cmocka_unit_test(test_lexer__range__is_not_a_decimal_point),
		cmocka_unit_test(test_lexer__operators__one_and_two_characters),
		cmocka_unit_test(test_lexer__newlines__collapse_and_skip_comments),
		cmocka_unit_test(test_lexer__end_of_file__adds_newline_and_points_at_last_line),
		cmocka_unit_test(test_lexer__semicolon__is_a_newline),
		cmocka_unit_test(test_lexer__newlines_in_brackets__are_dropped),
		cmocka_unit_test(test_lexer__newline_after_operator__is_dropped),
		cmocka_unit_test(test_lexer__declaration_keyword__ends_an_unfinished_line),
		cmocka_unit_test(test_lexer__declaration_in_open_block__closes_it),
		cmocka_unit_test(test_lexer__invalid_bytes__one_error_per_run),
		cmocka_unit_test(test_lexer__quotes_and_backslash__are_escaped_in_messages),
		cmocka_unit_test(test_lexer__non_ascii_in_comment__is_fine),
		cmocka_unit_test(test_lexer__huge_number__is_reported),
		cmocka_unit_test(test_lexer__brackets_past_the_limit__give_one_error_token),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
