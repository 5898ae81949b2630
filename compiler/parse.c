/* parse.c -- the parser's driver: reads a model file (or the built-in
 * stdlib), runs the reentrant scanner of grammar/lexer.l and the pure
 * parser of grammar/parser.y over its text, and appends the declarations to
 * the program.
 *
 * Files are read whole into the diagnostics context (which keeps the text
 * to echo source lines), so the scanner works on memory and every span
 * refers to bytes the diagnostics can show.
 */
#include "chainc.h"

#include "parser.h"
#define YYSTYPE CHAIN_YYSTYPE
#define YYLTYPE CHAIN_YYLTYPE
#include "lexer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The stdlib sources, embedded by tools/embed.sh (build/stdlib_src.c). */
extern const struct {
	const char *name;
	const char *text;
} chain_stdlib_files[];

int parse_file(diag_ctx *d, uint32_t file, program *prog)
{
	int before = d->errors;
	if (file >= d->files.len) {
		diag_error(d, (span){file, 0, 0}, "no such source file (%u)", file);
		return 1;
	}
	const src_file *f = d->files.items[file];
	if (f->len > PARSE_MAX_FILE_SIZE) {
		diag_error(d, (span){file, 0, 0}, "file too large: '%s' has %zu bytes (the limit is %u)",
		           f->name, f->len, PARSE_MAX_FILE_SIZE);
		return d->errors - before;
	}

	lex_state st = {
		.d = d,
		.a = d->arena,
		.file = file,
		.text = f->text,
		.len = f->len,
		.line_start = true,
	};
	parse_ctx pc = {.d = d, .a = d->arena, .prog = prog, .file = file};
	yyscan_t scanner;
	if (chain_yylex_init_extra(&st, &scanner) != 0) {
		diag_error(d, (span){file, 0, 0}, "cannot start the scanner: %s", strerror(errno));
		return d->errors - before;
	}
	YY_BUFFER_STATE buf = chain_yy_scan_bytes(f->text, (int)f->len, scanner);
	chain_yyparse(scanner, &pc);
	chain_yy_delete_buffer(buf, scanner);
	chain_yylex_destroy(scanner);
	return d->errors - before;
}

/* Reads all of `fp` into a malloc'd buffer, up to PARSE_MAX_FILE_SIZE + 1 bytes
 * (one more than allowed tells "too large").  Reads in a loop rather than
 * trusting the size from stat, so pipes and /dev/stdin work too.  Returns
 * false with errno set on a read error. */
static bool read_all(FILE *fp, char **text, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	if (!buf)
		return false;
	for (;;) {
		if (n == cap) {
			if (cap > PARSE_MAX_FILE_SIZE)
				break;
			cap *= 2;
			char *nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				return false;
			}
			buf = nb;
		}
		size_t got = fread(buf + n, 1, cap - n, fp);
		n += got;
		if (got == 0) {
			if (ferror(fp)) {
				int e = errno ? errno : EIO;
				free(buf);
				errno = e;
				return false;
			}
			break;
		}
	}
	*text = buf;
	*len = n;
	return true;
}

int parse_path(diag_ctx *d, const char *path, program *prog)
{
	int before = d->errors;
	errno = 0;
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		int e = errno;
		uint32_t file = diag_add_file(d, path, "", 0);
		diag_error(d, (span){file, 0, 0}, "cannot open '%s': %s", path, strerror(e));
		return d->errors - before;
	}
	char *text = NULL;
	size_t len = 0;
	errno = 0;
	if (!read_all(fp, &text, &len)) {
		int e = errno;
		fclose(fp);
		uint32_t file = diag_add_file(d, path, "", 0);
		diag_error(d, (span){file, 0, 0}, "cannot read '%s': %s", path, strerror(e));
		return d->errors - before;
	}
	fclose(fp);
	if (len > PARSE_MAX_FILE_SIZE) {
		free(text);
		uint32_t file = diag_add_file(d, path, "", 0);
		diag_error(d, (span){file, 0, 0}, "file too large: '%s' has more than %u bytes",
		           path, PARSE_MAX_FILE_SIZE);
		return d->errors - before;
	}
	uint32_t file = diag_add_file(d, path, text, len);   /* copies */
	free(text);
	parse_file(d, file, prog);
	return d->errors - before;
}

int parse_stdlib(diag_ctx *d, program *prog)
{
	int before = d->errors;
	for (size_t i = 0; chain_stdlib_files[i].name; i++) {
		/* "stdlib/families.chain" -> "<stdlib>/families.chain" */
		const char *name = chain_stdlib_files[i].name;
		const char *base = strrchr(name, '/');
		base = base ? base + 1 : name;
		char *shown = arena_printf(d->arena, "<stdlib>/%s", base);
		const char *text = chain_stdlib_files[i].text;
		uint32_t file = diag_add_file(d, shown, text, strlen(text));
		parse_file(d, file, prog);
	}
	return d->errors - before;
}
