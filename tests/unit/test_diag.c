/* test_diag.c -- diagnostics: offsets to line:col, the printed form (source
 * line, gutter, caret and tildes, notes, colors), and the max_errors cap. */
#include "test_helpers.h"

/* A diag context over one file `name` with `text` (len bytes). */
static parsed *with_file(const char *name, const char *text, size_t len)
{
	parsed *p = parsed_new();
	p->file = diag_add_file(&p->d, name, text, len);
	return p;
}

static parsed *with_text(const char *text)
{
	return with_file("f.chain", text, strlen(text));
}

static span sp(parsed *p, uint32_t b, uint32_t e)
{
	return (span){p->file, b, e};
}

static void check_line_col(parsed *p, uint32_t off, unsigned line, unsigned col)
{
	unsigned l, c;
	diag_line_col(&p->d, p->file, off, &l, &c);
	if (l != line || c != col)
		fail_msg("offset %u is at %u:%u, expected %u:%u", off, l, c, line, col);
}

static void test_diag__line_col__counts_lines_and_bytes(void **state)
{
	(void)state;
	parsed *p = with_text("ab\ncd\n\nx");
	check_line_col(p, 0, 1, 1);
	check_line_col(p, 1, 1, 2);
	check_line_col(p, 2, 1, 3);      /* the newline itself */
	check_line_col(p, 3, 2, 1);
	check_line_col(p, 6, 3, 1);      /* an empty line */
	check_line_col(p, 7, 4, 1);
	check_line_col(p, 8, 4, 2);      /* end of file */
	check_line_col(p, 999, 4, 2);    /* past the end: clamped */
	unsigned l, c;
	diag_line_col(&p->d, 42, 0, &l, &c);   /* no such file */
	assert_int_equal(l, 0);
	assert_int_equal(c, 0);
	parsed_free(p);
}

static void test_diag__error__prints_location_line_and_caret(void **state)
{
	(void)state;
	parsed *p = with_text("model m\n  x[i] ~ bernoulli_logit(b[i] + x[i])\n");
	diag_error(&p->d, sp(p, 40, 44), "x[i] may not depend on x[%s]", "i");
	assert_int_equal(p->d.errors, 1);
	assert_string_equal(diag_text(p),
		"f.chain:2:33: error: x[i] may not depend on x[i]\n"
		" 2 |   x[i] ~ bernoulli_logit(b[i] + x[i])\n"
		"   |                                 ^~~~\n");
	parsed_free(p);
}

static void test_diag__span_over_lines__is_clipped_to_first_line(void **state)
{
	(void)state;
	parsed *p = with_text("let a = f(1,\n  2)\n");
	diag_error(&p->d, sp(p, 8, 17), "bad call");
	assert_string_equal(diag_text(p),
		"f.chain:1:9: error: bad call\n"
		" 1 | let a = f(1,\n"
		"   |         ^~~~\n");
	parsed_free(p);
}

static void test_diag__empty_span__gets_one_caret(void **state)
{
	(void)state;
	parsed *p = with_text("dim n = 3\n");
	diag_error(&p->d, sp(p, 4, 4), "here");
	assert_string_equal(diag_text(p),
		"f.chain:1:5: error: here\n"
		" 1 | dim n = 3\n"
		"   |     ^\n");
	parsed_free(p);
}

static void test_diag__span_at_end_of_file__points_past_last_char(void **state)
{
	(void)state;
	parsed *p = with_text("dim n = (");
	diag_error(&p->d, sp(p, 9, 9), "unexpected end of file");
	assert_string_equal(diag_text(p),
		"f.chain:1:10: error: unexpected end of file\n"
		" 1 | dim n = (\n"
		"   |          ^\n");
	parsed_free(p);
}

static void test_diag__tabs__are_kept_in_the_underline(void **state)
{
	(void)state;
	parsed *p = with_text("\tlet\ta = b\n");
	diag_error(&p->d, sp(p, 5, 6), "tab");
	assert_string_equal(diag_text(p),
		"f.chain:1:6: error: tab\n"
		" 1 | \tlet\ta = b\n"
		"   | \t   \t^\n");
	parsed_free(p);
}

static void test_diag__unprintable_bytes__show_as_question_marks(void **state)
{
	(void)state;
	static const char text[] = "a \x01\x00\x1b[31m b";
	parsed *p = with_file("f.chain", text, sizeof text - 1);
	diag_error(&p->d, sp(p, 2, 4), "invalid character '\\x01'");
	assert_string_equal(diag_text(p),
		"f.chain:1:3: error: invalid character '\\x01'\n"
		" 1 | a ???[31m b\n"
		"   |   ^~\n");
	parsed_free(p);
}

static void test_diag__utf8__is_echoed_and_aligned_by_character(void **state)
{
	(void)state;
	parsed *p = with_text("# caf\xc3\xa9 \xe2\x86\x92 x\n");
	diag_error(&p->d, sp(p, 12, 13), "x");
	assert_string_equal(diag_text(p),
		"f.chain:1:13: error: x\n"
		" 1 | # caf\xc3\xa9 \xe2\x86\x92 x\n"
		"   |          ^\n");
	parsed_free(p);
}

static void test_diag__crlf__carriage_return_not_echoed(void **state)
{
	(void)state;
	parsed *p = with_text("dim n = 3\r\n");
	diag_error(&p->d, sp(p, 8, 9), "three");
	assert_string_equal(diag_text(p),
		"f.chain:1:9: error: three\n"
		" 1 | dim n = 3\n"
		"   |         ^\n");
	parsed_free(p);
}

static void test_diag__gutter__widens_with_line_number(void **state)
{
	(void)state;
	parsed *p = with_text("1\n2\n3\n4\n5\n6\n7\n8\n9\nten\n");
	diag_warning(&p->d, sp(p, 18, 21), "line ten");
	assert_string_equal(diag_text(p),
		"f.chain:10:1: warning: line ten\n"
		" 10 | ten\n"
		"    | ^~~\n");
	assert_int_equal(p->d.errors, 0);
	parsed_free(p);
}

static void test_diag__note__follows_its_error(void **state)
{
	(void)state;
	parsed *p = with_text("a\nb\n");
	diag_error(&p->d, sp(p, 2, 3), "second");
	diag_note(&p->d, sp(p, 0, 1), "first is %s", "here");
	CHECK_DIAG(&p->d, 0, "second", 2, 1);
	CHECK_DIAG(&p->d, 1, "first is here", 1, 1);
	assert_int_equal(((diag *)p->d.diags.items[1])->level, DIAG_NOTE);
	assert_int_equal(p->d.errors, 1);
	assert_string_equal(diag_text(p),
		"f.chain:2:1: error: second\n"
		" 2 | b\n"
		"   | ^\n"
		"f.chain:1:1: note: first is here\n"
		" 1 | a\n"
		"   | ^\n");
	parsed_free(p);
}

static void test_diag__several_files__each_named(void **state)
{
	(void)state;
	parsed *p = with_text("x\n");
	uint32_t g = diag_add_file(&p->d, "<stdlib>/g.chain", "yy\n", 3);
	diag_error(&p->d, (span){g, 1, 2}, "in g");
	diag_error(&p->d, sp(p, 0, 1), "in f");
	assert_string_equal(diag_text(p),
		"<stdlib>/g.chain:1:2: error: in g\n"
		" 1 | yy\n"
		"   |  ^\n"
		"f.chain:1:1: error: in f\n"
		" 1 | x\n"
		"   | ^\n");
	parsed_free(p);
}

static void test_diag__empty_file__prints_no_source_line(void **state)
{
	(void)state;
	parsed *p = with_text("");
	diag_error(&p->d, sp(p, 0, 0), "no model declaration");
	assert_string_equal(diag_text(p), "f.chain:1:1: error: no model declaration\n");
	parsed_free(p);
}

static void test_diag__unknown_file__prints_message_only(void **state)
{
	(void)state;
	parsed *p = parsed_new();
	diag_error(&p->d, (span){7, 0, 0}, "internal");
	assert_string_equal(diag_text(p), "error: internal\n");
	parsed_free(p);
}

static void test_diag__color__only_when_asked(void **state)
{
	(void)state;
	parsed *p = with_text("abc\n");
	diag_error(&p->d, sp(p, 1, 2), "b");
	char *plain = diag_text(p);
	assert_null(strchr(plain, '\033'));
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	diag_print(&p->d, f, true);
	fclose(f);
	assert_non_null(strstr(buf, "\033[1;31merror:"));
	assert_non_null(strstr(buf, "\033[0m"));
	free(buf);
	parsed_free(p);
}

static void test_diag__max_errors__drops_the_rest_and_says_so(void **state)
{
	(void)state;
	parsed *p = with_text("a b c d\n");
	p->d.max_errors = 2;
	diag_error(&p->d, sp(p, 0, 1), "e1");
	diag_note(&p->d, sp(p, 0, 1), "n1");
	diag_error(&p->d, sp(p, 2, 3), "e2");
	diag_note(&p->d, sp(p, 2, 3), "n2");
	diag_error(&p->d, sp(p, 4, 5), "e3");
	diag_note(&p->d, sp(p, 4, 5), "n3");      /* belongs to a dropped error */
	diag_warning(&p->d, sp(p, 6, 7), "w4");
	diag_error(&p->d, sp(p, 6, 7), "e4");
	assert_int_equal(p->d.errors, 4);
	assert_int_equal(p->d.diags.len, 4);
	CHECK_DIAG(&p->d, 3, "n2", 1, 3);
	const char *out = diag_text(p);
	assert_non_null(strstr(out, "4 errors in total; only the first 2 are shown\n"));
	assert_null(strstr(out, "n3"));
	assert_null(strstr(out, "e3"));
	parsed_free(p);
}

static void test_diag__max_errors_zero__means_no_cap(void **state)
{
	(void)state;
	parsed *p = with_text("a\n");
	p->d.max_errors = 0;
	for (int i = 0; i < 100; i++)
		diag_error(&p->d, sp(p, 0, 1), "e%d", i);
	assert_int_equal(p->d.diags.len, 100);
	assert_null(strstr(diag_text(p), "in total"));
	parsed_free(p);
}

static void test_diag__default_cap__is_50(void **state)
{
	(void)state;
	parsed *p = with_text("a\n");
	assert_int_equal(p->d.max_errors, 50);
	parsed_free(p);
}

static void test_diag__long_line__is_cut_around_the_span(void **state)
{
	(void)state;
	char text[1200];
	memset(text, 'a', sizeof text - 2);
	text[1000] = 'X';
	text[sizeof text - 2] = '\n';
	text[sizeof text - 1] = '\0';
	parsed *p = with_text(text);
	diag_error(&p->d, sp(p, 1000, 1001), "x");
	const char *out = diag_text(p);
	const char *src_line = strchr(out, '\n') + 1;
	const char *caret_line = strchr(src_line, '\n') + 1;
	assert_memory_equal(src_line, " 1 | ...", 8);
	const char *x = strchr(src_line, 'X');
	const char *caret = strchr(caret_line, '^');
	assert_non_null(x);
	assert_non_null(caret);
	assert_int_equal(x - src_line, caret - caret_line);
	assert_true(strlen(src_line) < 400);
	assert_non_null(strstr(src_line, "a...\n"));
	parsed_free(p);
}

static void test_diag__add_file__copies_name_and_text(void **state)
{
	(void)state;
	char name[] = "n.chain", text[] = "abc";
	parsed *p = parsed_new();
	uint32_t f = diag_add_file(&p->d, name, text, 3);
	name[0] = 'X';
	text[0] = 'X';
	const src_file *sf = p->d.files.items[f];
	assert_string_equal(sf->name, "n.chain");
	assert_string_equal(sf->text, "abc");
	assert_int_equal(sf->len, 3);
	parsed_free(p);
}

static void test_diag__parse_errors__print_like_chain_check(void **state)
{
	(void)state;
	parsed *p = parse_text("model m\nparam W : real ~ normal(0, 0.01\ndim n = 3 4\n");
	assert_string_equal(diag_text(p),
		"test.chain:2:32: error: unexpected newline, expected ')' or ','\n"
		" 2 | param W : real ~ normal(0, 0.01\n"
		"   |                                ^\n"
		"test.chain:3:11: error: unexpected number '4', expected newline\n"
		" 3 | dim n = 3 4\n"
		"   |           ^\n");
	parsed_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_diag__line_col__counts_lines_and_bytes),
		cmocka_unit_test(test_diag__error__prints_location_line_and_caret),
		cmocka_unit_test(test_diag__span_over_lines__is_clipped_to_first_line),
		cmocka_unit_test(test_diag__empty_span__gets_one_caret),
		cmocka_unit_test(test_diag__span_at_end_of_file__points_past_last_char),
		cmocka_unit_test(test_diag__tabs__are_kept_in_the_underline),
		cmocka_unit_test(test_diag__unprintable_bytes__show_as_question_marks),
		cmocka_unit_test(test_diag__utf8__is_echoed_and_aligned_by_character),
		cmocka_unit_test(test_diag__crlf__carriage_return_not_echoed),
		cmocka_unit_test(test_diag__gutter__widens_with_line_number),
		cmocka_unit_test(test_diag__note__follows_its_error),
		cmocka_unit_test(test_diag__several_files__each_named),
		cmocka_unit_test(test_diag__empty_file__prints_no_source_line),
		cmocka_unit_test(test_diag__unknown_file__prints_message_only),
		cmocka_unit_test(test_diag__color__only_when_asked),
		cmocka_unit_test(test_diag__max_errors__drops_the_rest_and_says_so),
		cmocka_unit_test(test_diag__max_errors_zero__means_no_cap),
		cmocka_unit_test(test_diag__default_cap__is_50),
		cmocka_unit_test(test_diag__long_line__is_cut_around_the_span),
		cmocka_unit_test(test_diag__add_file__copies_name_and_text),
		cmocka_unit_test(test_diag__parse_errors__print_like_chain_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
