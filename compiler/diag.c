/* diag.c -- diagnostics: collected during a compilation, printed at the end.
 *
 * A diagnostic is a level, a message and a byte span in one of the source
 * files of the compilation.  Spans stay byte offsets until printing, when
 * they become `file:line:col` (1-based, columns in bytes) followed by the
 * source line and a caret/tilde underline:
 *
 *     nade.chain:14:33: error: x[i] may not depend on x[i]
 *      14 |   x[i] ~ bernoulli_logit(b[i] + x[i])
 *         |                                 ^~~~
 *
 * Reporting never stops the stage that reports: every stage runs to its end
 * and the driver stops between stages when there were errors.  Past
 * max_errors errors, further diagnostics are counted but not kept.
 */
#include "chainc.h"

#include <string.h>

#define DIAG_DEFAULT_MAX_ERRORS 50
/* Source lines longer than this are shown as a window around the span. */
#define DIAG_LINE_WINDOW 240
#define DIAG_LINE_LEAD 80

void diag_init(diag_ctx *d, arena *a)
{
	memset(d, 0, sizeof *d);
	d->arena = a;
	d->max_errors = DIAG_DEFAULT_MAX_ERRORS;
}

/* Registers a source file; name and text are copied into the arena (the
 * text gets a terminating NUL past `len`, and may hold other NULs). */
uint32_t diag_add_file(diag_ctx *d, const char *name, const char *text, size_t len)
{
	src_file *f = arena_alloc(d->arena, sizeof *f);
	f->name = arena_strdup(d->arena, name ? name : "<input>");
	f->text = arena_strndup(d->arena, text ? text : "", text ? len : 0);
	f->len = text ? len : 0;
	ptrvec_push(d->arena, &d->files, f);
	return (uint32_t)(d->files.len - 1);
}

/* Whether diagnostics are being dropped: once one error was dropped for
 * exceeding max_errors, everything after it (warnings, notes) goes too, so
 * a note is never shown under the wrong error. */
static bool diag_dropping(const diag_ctx *d)
{
	return d->max_errors > 0 && d->errors > d->max_errors;
}

static void diag_vadd(diag_ctx *d, diag_level level, span where, const char *fmt, va_list ap)
{
	if (level == DIAG_ERROR) {
		d->errors++;
		if (diag_dropping(d))
			return;
	} else if (diag_dropping(d)) {
		return;
	}
	diag *g = arena_alloc(d->arena, sizeof *g);
	g->level = level;
	g->where = where;
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap);
	if (n < 0)
		n = 0;
	g->msg = arena_alloc(d->arena, (size_t)n + 1);
	vsnprintf(g->msg, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	ptrvec_push(d->arena, &d->diags, g);
}

void diag_error(diag_ctx *d, span where, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_vadd(d, DIAG_ERROR, where, fmt, ap);
	va_end(ap);
}

void diag_warning(diag_ctx *d, span where, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_vadd(d, DIAG_WARNING, where, fmt, ap);
	va_end(ap);
}

void diag_note(diag_ctx *d, span where, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_vadd(d, DIAG_NOTE, where, fmt, ap);
	va_end(ap);
}

static const src_file *diag_file(const diag_ctx *d, uint32_t file)
{
	return file < d->files.len ? d->files.items[file] : NULL;
}

void diag_line_col(const diag_ctx *d, uint32_t file, uint32_t offset, unsigned *line, unsigned *col)
{
	const src_file *f = diag_file(d, file);
	*line = *col = 0;
	if (!f)
		return;
	size_t off = offset < f->len ? offset : f->len;
	unsigned ln = 1;
	size_t start = 0;
	const char *p = f->text, *end = f->text + off;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break;
		ln++;
		p = nl + 1;
		start = (size_t)(p - f->text);
	}
	*line = ln;
	*col = (unsigned)(off - start + 1);
}

/* The length of the character at s (at most n bytes), and whether it may be
 * echoed to a terminal as is: printable ASCII and well-formed UTF-8 of a
 * printable code point.  Anything else (control bytes, NUL, stray
 * continuation bytes, C1 controls, overlong forms) is one byte shown as '?'. */
static size_t glyph(const unsigned char *s, size_t n, bool *printable)
{
	unsigned char c = s[0];
	*printable = false;
	if (c < 0x80) {
		*printable = c >= 0x20 && c < 0x7f;
		return 1;
	}
	size_t len;
	uint32_t cp;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 1;
	}
	if (len > n)
		return 1;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 1;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp < 0xa0)
		return 1;
	*printable = true;
	return len;
}

typedef struct palette {
	const char *bold, *level, *caret, *reset;
} palette;

/* Echoes bytes [from, to) of a source line: tabs kept, unprintable bytes as
 * '?', so the caret line below can be aligned glyph by glyph. */
static void echo_line(FILE *out, const unsigned char *s, size_t from, size_t to)
{
	size_t i = from;
	while (i < to) {
		bool ok;
		size_t n = glyph(s + i, to - i, &ok);
		if (s[i] == '\t')
			fputc('\t', out);
		else if (ok)
			fwrite(s + i, 1, n, out);
		else
			fputc('?', out);
		i += n;
	}
}

/* Prints the source line of `where` with a gutter and, below it, '^' under
 * the first character of the span and '~' under the rest of it on that
 * line.  Lines longer than DIAG_LINE_WINDOW are cut to a window around the
 * span, marked with "...". */
static void print_source(FILE *out, const palette *pal, const src_file *f, span where, unsigned line)
{
	const unsigned char *s = (const unsigned char *)f->text;
	size_t begin = where.begin < f->len ? where.begin : f->len;
	size_t end = where.end < f->len ? where.end : f->len;
	if (end < begin)
		end = begin;
	size_t ls = begin, le = begin;
	while (ls > 0 && s[ls - 1] != '\n')
		ls--;
	while (le < f->len && s[le] != '\n')
		le++;
	if (end > le)
		end = le;
	size_t shown_end = le;
	if (shown_end > ls && s[shown_end - 1] == '\r')
		shown_end--;

	/* window for long lines */
	size_t ws = ls, we = shown_end;
	bool cut_left = false, cut_right = false;
	if (begin - ls > DIAG_LINE_WINDOW - DIAG_LINE_LEAD) {
		ws = begin - DIAG_LINE_LEAD;
		while (ws < begin && (s[ws] & 0xc0) == 0x80)
			ws++;
		cut_left = true;
	}
	if (we - ws > DIAG_LINE_WINDOW) {
		we = ws + DIAG_LINE_WINDOW;   /* > begin, as ws >= begin - DIAG_LINE_LEAD */
		while (we < shown_end && (s[we] & 0xc0) == 0x80)
			we++;
		cut_right = we < shown_end;
	}

	char num[16];
	int width = snprintf(num, sizeof num, "%u", line);
	fprintf(out, " %s |%s", num, we > ws || cut_left ? " " : "");
	if (cut_left)
		fputs("...", out);
	echo_line(out, s, ws, we);
	if (cut_right)
		fputs("...", out);
	fputc('\n', out);

	fprintf(out, " %*s | ", width, "");
	if (cut_left)
		fputs("   ", out);
	size_t i = ws;
	while (i < begin) {
		bool ok;
		size_t n = glyph(s + i, begin - i, &ok);
		fputc(s[i] == '\t' ? '\t' : ' ', out);
		i += n;
	}
	fputs(pal->caret, out);
	fputc('^', out);
	if (begin < end) {
		bool ok;
		i = begin + glyph(s + begin, end - begin, &ok);
		size_t stop = end < we ? end : we;
		while (i < stop) {
			size_t n = glyph(s + i, stop - i, &ok);
			fputc('~', out);
			i += n;
		}
	}
	fputs(pal->reset, out);
	fputc('\n', out);
}

static void print_one(const diag_ctx *d, FILE *out, bool color, const diag *g)
{
	static const char *names[] = {"error", "warning", "note"};
	static const char *colors[] = {"\033[1;31m", "\033[1;35m", "\033[1;36m"};
	palette pal = {"", "", "", ""};
	if (color)
		pal = (palette){"\033[1m", colors[g->level], "\033[1;32m", "\033[0m"};
	const src_file *f = diag_file(d, g->where.file);
	unsigned line = 0, col = 0;
	if (f) {
		diag_line_col(d, g->where.file, g->where.begin, &line, &col);
		fprintf(out, "%s%s:%u:%u:%s ", pal.bold, f->name, line, col, pal.reset);
	}
	fprintf(out, "%s%s:%s %s%s%s\n", pal.level, names[g->level], pal.reset,
	        pal.bold, g->msg, pal.reset);
	if (f && f->len > 0)
		print_source(out, &pal, f, g->where, line);
}

void diag_print(const diag_ctx *d, FILE *out, bool color)
{
	int shown = 0;
	for (size_t i = 0; i < d->diags.len; i++) {
		const diag *g = d->diags.items[i];
		print_one(d, out, color, g);
		if (g->level == DIAG_ERROR)
			shown++;
	}
	if (d->errors > shown)
		fprintf(out, "%d errors in total; only the first %d are shown\n", d->errors, shown);
	fflush(out);
}
