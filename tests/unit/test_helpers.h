/* test_helpers.h -- helpers shared by the cmocka unit tests.
 *
 *   parsed *p = parse_text("model m\ndim n = 3\n");   // in-memory file "test.chain"
 *   assert_int_equal(p->errors, 0);
 *   assert_string_equal(ast_text(p), "model m\ndim n = 3\n");
 *   CHECK_DIAG(&p->d, 0, "unexpected newline", 2, 9);
 *   parsed_free(p);
 *
 * Everything a parsed owns lives in its arena; parsed_free releases it.
 */
#ifndef TEST_HELPERS_H
#define TEST_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chainc.h"

/* One compilation's front end: arena, diagnostics, program. */
typedef struct parsed {
	arena *a;
	diag_ctx d;
	program prog;
	uint32_t file;      /* the file parsed last */
	int errors;         /* errors reported by the parse (all files) */
} parsed;

static inline parsed *parsed_new(void)
{
	arena *a = arena_new();
	parsed *p = arena_alloc(a, sizeof *p);
	p->a = a;
	diag_init(&p->d, a);
	return p;
}

/* Parses `len` bytes (may contain NULs) as file `name`, after the stdlib
 * when `with_stdlib`. */
static inline parsed *parse_bytes_named(const char *name, const char *src, size_t len, int with_stdlib)
{
	parsed *p = parsed_new();
	if (with_stdlib)
		p->errors += parse_stdlib(&p->d, &p->prog);
	p->file = diag_add_file(&p->d, name, src, len);
	p->errors += parse_file(&p->d, p->file, &p->prog);
	return p;
}

static inline parsed *parse_bytes(const char *src, size_t len)
{
	return parse_bytes_named("test.chain", src, len, 0);
}

static inline parsed *parse_text(const char *src)
{
	return parse_bytes(src, strlen(src));
}

/* The model `src` after the stdlib, as `chain check` sees it. */
static inline parsed *parse_with_stdlib(const char *src)
{
	return parse_bytes_named("test.chain", src, strlen(src), 1);
}

static inline void parsed_free(parsed *p)
{
	if (p)
		arena_free(p->a);
}

/* Runs `print` into a string kept in the parsed's arena. */
static inline char *capture_(parsed *p, void (*print)(parsed *, FILE *))
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	print(p, f);
	fclose(f);
	char *s = arena_strndup(p->a, buf, len);
	free(buf);
	return s;
}

static inline void print_ast_(parsed *p, FILE *f)
{
	ast_print(f, &p->prog);
}

static inline void print_diags_(parsed *p, FILE *f)
{
	diag_print(&p->d, f, false);
}

/* The program as ast_print prints it (one declaration per line). */
static inline char *ast_text(parsed *p)
{
	return capture_(p, print_ast_);
}

/* The diagnostics as `chain check` prints them, without color. */
static inline char *diag_text(parsed *p)
{
	return capture_(p, print_diags_);
}

/* The i-th declaration of the program. */
static inline decl *decl_at(parsed *p, size_t i)
{
	assert_true(i < p->prog.decls.len);
	return p->prog.decls.items[i];
}

/* The text a span covers (in the parsed's arena). */
static inline char *span_text(parsed *p, span w)
{
	const src_file *f = p->d.files.items[w.file];
	assert_true(w.begin <= w.end && w.end <= f->len);
	return arena_strndup(p->a, f->text + w.begin, w.end - w.begin);
}

/* Asserts that diagnostic `index` of diag_ctx *d contains `substr` and
 * begins at line:col (1-based). */
#define CHECK_DIAG(d, index, substr, line, col)                                           \
	do {                                                                                  \
		const diag_ctx *d_ = (d);                                                         \
		size_t i_ = (size_t)(index);                                                      \
		if (i_ >= d_->diags.len)                                                          \
			fail_msg("no diagnostic %zu (there are %zu)", i_, d_->diags.len);             \
		const diag *g_ = d_->diags.items[i_];                                             \
		if (!strstr(g_->msg, (substr)))                                                   \
			fail_msg("diagnostic %zu is \"%s\", expected it to contain \"%s\"", i_,       \
			         g_->msg, (substr));                                                  \
		unsigned l_, c_;                                                                  \
		diag_line_col(d_, g_->where.file, g_->where.begin, &l_, &c_);                     \
		if (l_ != (unsigned)(line) || c_ != (unsigned)(col))                              \
			fail_msg("diagnostic %zu \"%s\" is at %u:%u, expected %u:%u", i_, g_->msg,    \
			         l_, c_, (unsigned)(line), (unsigned)(col));                          \
	} while (0)

/* Asserts that there are exactly n diagnostics (errors, warnings and notes),
 * printing them if not. */
#define CHECK_NDIAGS(p, n)                                                                \
	do {                                                                                  \
		parsed *p_ = (p);                                                                 \
		if (p_->d.diags.len != (size_t)(n))                                               \
			fail_msg("expected %d diagnostics, got %zu:\n%s", (int)(n), p_->d.diags.len,  \
			         diag_text(p_));                                                      \
	} while (0)

#endif
