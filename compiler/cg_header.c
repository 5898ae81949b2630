/* cg_header.c -- M.h, the generated C API of a model (ARCHITECTURE.md,
 * "Generated C API"; docs/api.md).
 *
 * For `model M` the header declares M_real (double, or float in an f32
 * build), the sizes M_NUM_PARAMS, M_OBS_SIZE, M_NUM_POSITIONS, per variable
 * M_<name>_OFFSET and M_<name>_SIZE (the variable's name as declared), the
 * descriptor M_model, and a prototype for every kernel the object defines.
 * It needs no LLVM: it is written from the IR module alone.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "cg_context.h"

/* The comment above each kernel's prototype: its contract. */
static const char *const kernel_doc[KER__COUNT] = {
	[KER_INIT] = "/* the `~` initialisations (the same theta for the same seed) */\n",
	[KER_LOGP] = "/* log p(one observation) */\n",
	[KER_LOGP_BATCH] = "/* out[r] = log p(row r) for the n rows of obs */\n",
	[KER_LOGLIK_GRAD] = "/* returns sum of log p over the n rows and ADDS its gradient into grad */\n",
	[KER_OBJECTIVE] = "/* the model's objective on these rows (e.g. mean loglik - penalty),\n"
	                  "   WRITES its gradient (grad may be NULL); obs/n unused by free objectives */\n",
	[KER_SAMPLE] = "/* rows first..first+n-1 of the sample stream of `seed`: the same rows\n"
	               "   whatever the batch split or thread count */\n",
	[KER_COMPLETE] = "/* keeps the first `prefix` positions of the order in each row, samples the rest */\n",
	[KER_CONDITIONALS] = "/* per position k of the order, the family arguments of p(x_o(k) | x_o(<k)),\n"
	                     "   at out[cond_offset[k] .. cond_offset[k+1]) (cond_offset in the descriptor) */\n",
};

/* The prototype's parameter list, with M_real for `real` (%1$s). */
static const char *const kernel_params[KER__COUNT] = {
	[KER_INIT] = "%1$s *theta, uint64_t seed",
	[KER_LOGP] = "const %1$s *theta, const %1$s *obs",
	[KER_LOGP_BATCH] = "const %1$s *theta, const %1$s *obs, size_t n, %1$s *out",
	[KER_LOGLIK_GRAD] = "const %1$s *theta, const %1$s *obs, size_t n, %1$s *grad",
	[KER_OBJECTIVE] = "const %1$s *theta, const %1$s *obs, size_t n, %1$s *grad",
	[KER_SAMPLE] = "const %1$s *theta, uint64_t seed, uint64_t first, size_t n, %1$s *obs",
	[KER_COMPLETE] = "const %1$s *theta, uint64_t seed, uint64_t first, size_t prefix, size_t n, %1$s *obs",
	[KER_CONDITIONALS] = "const %1$s *theta, const %1$s *obs, %1$s *out",
};

static bool returns_real(ir_kernel_kind k)
{
	return k == KER_LOGP || k == KER_LOGLIK_GRAD || k == KER_OBJECTIVE;
}

/* The generated macro names, remembered so that two that collide (a
 * variable named OBS would give M_OBS_SIZE twice) are an error, not a
 * redefinition: a hash set (open addressing, at most half full), as a
 * model may have 100,000 variables and so twice as many names. */
typedef struct names {
	char **slot;
	size_t len, cap;
	bool oom;
} names;

/* The slot of s: where it is, or the empty one where it would go. */
static size_t names_slot(const names *n, const char *s)
{
	size_t i = (size_t)str_hash(s) & (n->cap - 1);
	while (n->slot[i] && strcmp(n->slot[i], s) != 0)
		i = (i + 1) & (n->cap - 1);
	return i;
}

/* Adds s (taking it); false when it was there already. */
static bool names_add(names *n, char *s)
{
	if (!s) {
		n->oom = true;
		return true;
	}
	if (2 * (n->len + 1) > n->cap) {
		names bigger = { .cap = n->cap ? 2 * n->cap : 64 };
		bigger.slot = calloc(bigger.cap, sizeof *bigger.slot);
		if (!bigger.slot) {
			free(s);
			n->oom = true;
			return true;
		}
		for (size_t i = 0; i < n->cap; i++)
			if (n->slot[i])
				bigger.slot[names_slot(&bigger, n->slot[i])] = n->slot[i];
		free(n->slot);
		n->slot = bigger.slot;
		n->cap = bigger.cap;
	}
	size_t i = names_slot(n, s);
	if (n->slot[i]) {
		free(s);
		return false;
	}
	n->slot[i] = s;
	n->len++;
	return true;
}

static void names_free(names *n)
{
	for (size_t i = 0; i < n->cap; i++)
		free(n->slot[i]);
	free(n->slot);
}

static char *macro_name(const char *model_name, const char *var, const char *suffix)
{
	size_t len = strlen(model_name) + strlen(var) + strlen(suffix) + 3;
	char *s = malloc(len);
	if (s)
		snprintf(s, len, "%s%s%s%s", model_name, var[0] ? "_" : "", var, suffix);
	return s;
}

static int64_t sym_size(const sym *s)
{
	int64_t n = 1;
	for (int d = 0; d < s->shape.rank && d < SHAPE_MAX_RANK; d++)
		n *= s->shape.dims[d];
	return n;
}

/* The #defines of one group of variables; false on a name collision. */
static bool var_defines(FILE *f, const char *mn, const ptrvec *syms, names *seen, char **bad)
{
	for (size_t i = 0; i < syms->len; i++) {
		const sym *s = syms->items[i];
		char *off = macro_name(mn, s->name, "_OFFSET");
		char *size = macro_name(mn, s->name, "_SIZE");
		if (off && !*bad && !names_add(seen, cg_strdup(off)))
			*bad = cg_strdup(off);
		if (size && !*bad && !names_add(seen, cg_strdup(size)))
			*bad = cg_strdup(size);
		if (off && size) {
			fprintf(f, "#define %s %lld\n", off, (long long)s->offset);
			fprintf(f, "#define %s %lld\n", size, (long long)sym_size(s));
		}
		free(off);
		free(size);
	}
	return !*bad;
}

/* Writes the header; the caller commits or discards the file. */
static bool write_header(FILE *f, const ir_module *m, const cg_options *o, char **err)
{
	const model *mdl = m->model;
	const char *mn = mdl->name;
	bool f32 = o && o->f32;
	fprintf(f, "/* %1$s.h -- the C API of the chain model `%1$s`, generated by chain: do not edit.\n"
	           " *\n"
	           " * theta is %1$s_NUM_PARAMS reals: the params in declaration order, each\n"
	           " * row-major.  An observation is one row of %1$s_OBS_SIZE reals: the inputs,\n"
	           " * then the data variables, in declaration order, each row-major (a bin\n"
	           " * is 0 or 1, a cat or int its value).  A batch is n rows back to back.\n"
	           " * Every kernel is reentrant and thread-safe.  Link with -lchain -lm.\n"
	           " */\n", mn);
	char guard[300];
	size_t g = 0;
	for (const char *p = "CHAIN_MODEL_"; *p; p++)
		guard[g++] = *p;
	for (const char *p = mn; *p && g < sizeof guard - 3; p++)
		guard[g++] = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
	guard[g++] = '_';
	guard[g++] = 'H';
	guard[g] = 0;
	fprintf(f, "#ifndef %s\n#define %s\n\n", guard, guard);
	fputs("#include <stddef.h>\n#include <stdint.h>\n\n#include <chain/model.h>\n\n", f);
	fputs("#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n", f);
	if (f32)
		fprintf(f, "/* This object was built for single precision (--precision f32): real is float. */\n"
		           "typedef float %s_real;\n\n", mn);
	else
		fprintf(f, "/* This object was built for double precision (--precision f64): real is double. */\n"
		           "typedef double %s_real;\n\n", mn);

	names seen = { 0 };
	char *bad = NULL;
	const char *fixed[] = { "_NUM_PARAMS", "_OBS_SIZE", "_NUM_POSITIONS" };
	for (int i = 0; i < 3; i++)
		names_add(&seen, macro_name(mn, "", fixed[i]));
	fprintf(f, "#define %s_NUM_PARAMS %lld   /* length of theta */\n", mn, (long long)mdl->num_params);
	fprintf(f, "#define %s_OBS_SIZE %lld   /* reals per observation */\n", mn, (long long)mdl->obs_size);
	fprintf(f, "#define %s_NUM_POSITIONS %lld   /* length of the chain rule */\n\n", mn,
	        (long long)mdl->num_positions);
	if (mdl->params.len) {
		fputs("/* params: offset and number of reals in theta */\n", f);
		var_defines(f, mn, &mdl->params, &seen, &bad);
		fputc('\n', f);
	}
	if (mdl->inputs.len) {
		fputs("/* inputs: offset and number of reals in an observation row */\n", f);
		var_defines(f, mn, &mdl->inputs, &seen, &bad);
		fputc('\n', f);
	}
	if (mdl->data.len) {
		fputs("/* data: offset and number of reals in an observation row */\n", f);
		var_defines(f, mn, &mdl->data, &seen, &bad);
		fputc('\n', f);
	}
	bool oom = seen.oom;
	names_free(&seen);
	if (bad || oom) {
		if (err) {
			free(*err);
			if (bad) {
				size_t len = strlen(bad) + 128;
				*err = malloc(len);
				if (*err)
					snprintf(*err, len, "the header would define %s twice: rename the variable", bad);
			} else {
				*err = cg_strdup("out of memory");
			}
		}
		free(bad);
		return false;
	}

	fprintf(f, "/* names, kinds, shapes, offsets, order, kernels, precision */\n"
	           "extern const chain_model %s_model;\n", mn);
	char real[300];
	snprintf(real, sizeof real, "%s_real", mn);
	for (int k = 0; k < KER__COUNT; k++) {
		const ir_kernel *kr = m->kernels[k];
		if (!kr)
			continue;
		fputc('\n', f);
		fputs(kernel_doc[k], f);
		fprintf(f, "%s %s_%s(", returns_real((ir_kernel_kind)k) ? real : "void", mn,
		        kr->name ? kr->name : cg_kernel_suffix((ir_kernel_kind)k));
		fprintf(f, kernel_params[k], real);
		fputs(");\n", f);
	}
	fprintf(f, "\n#ifdef __cplusplus\n}\n#endif\n#endif /* %s */\n", guard);
	return true;
}

int cg_emit_header(const ir_module *m, const cg_options *o, const char *path, char **err)
{
	if (!m || !m->model || !m->model->name) {
		if (err) {
			free(*err);
			*err = cg_strdup("internal error: cg_emit_header without a model");
		}
		return -1;
	}
	cg_file out;
	if (cg_file_open(&out, path, err) != 0)
		return -1;
	bool ok = write_header(out.f, m, o, err);
	return cg_file_close(&out, path, ok, err);
}
