/* test_jit.h -- compiling a model text in-process for a test: the whole
 * pipeline (stdlib, parse, check, lower, AD, opt, codegen, LLJIT), as
 * `chain train` does it. */
#ifndef TEST_JIT_H
#define TEST_JIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain/model.h"
#include "chainc.h"

typedef struct gen {
	arena *arena;
	jit_session *jit;
	const chain_model *m;
	bool unoptimized; /* set before compiling: -O0 instead of -O2 */
} gen;

/* The model of `src` with the given -D overrides, or NULL with the
 * diagnostics printed. */
static inline const chain_model *gen_compile_with(gen *g, const char *src, dim_override *ov, size_t nov, bool f32)
{
	g->arena = arena_new();
	diag_ctx d;
	diag_init(&d, g->arena);
	program prog = {0};
	parse_stdlib(&d, &prog);
	parse_file(&d, diag_add_file(&d, "test.chain", src, strlen(src)), &prog);
	model *mod = d.errors ? NULL : check_program(&d, &prog, ov, nov);
	ir_module *ir = mod ? lower_model(&d, mod, g->arena) : NULL;
	if (!ir) {
		diag_print(&d, stderr, false);
		return NULL;
	}
	ad_module(&d, ir);
	opt_module(ir);
	lower_descriptor_tables(ir);
	cg_options o = {.opt_level = g->unoptimized ? 0 : 2, .f32 = f32};
	char *err = NULL;
	cg_unit *u = cg_generate(ir, &o, &err);
	if (u)
		g->jit = jit_load(u, &g->m, &err);
	if (err)
		fprintf(stderr, "%s\n", err);
	free(err);
	return g->m;
}

static inline void gen_free(gen *g)
{
	if (g->jit)
		jit_free(g->jit);
	arena_free(g->arena);
}

#endif
