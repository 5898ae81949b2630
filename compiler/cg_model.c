/* cg_model.c -- the `<model>_model` descriptor (chain/model.h's chain_model).
 *
 * The descriptor is what the runtime sees of a compiled model, so its LLVM
 * types must lay out exactly like the C structs.  On the 64-bit targets we
 * build for (x86-64, aarch64; cg_emit.c refuses others) a C enum and
 * uint32_t are i32, size_t is i64 and pointers are 8 bytes; the structs
 * below spell out every padding gap C leaves, so the layout does not depend
 * on LLVM's alignment rules agreeing with C's.  test_codegen.c reads the
 * descriptor back from C to check every field.
 */
#include <stdlib.h>
#include <string.h>

#include "cg_context.h"
#include "chain/model.h"

const char *cg_kernel_suffix(ir_kernel_kind kind)
{
	static const char *const names[KER__COUNT] = {
		"init", "logp", "logp_batch", "loglik_grad", "objective", "sample", "complete",
		"conditionals",
	};
	return kind < KER__COUNT ? names[kind] : "kernel";
}

/* A private constant global with the given initializer. */
static LLVMValueRef private_const(cg_ctx *c, LLVMValueRef init, const char *name)
{
	LLVMValueRef g = LLVMAddGlobal(c->mod, LLVMTypeOf(init), name);
	LLVMSetInitializer(g, init);
	LLVMSetGlobalConstant(g, 1);
	LLVMSetLinkage(g, LLVMPrivateLinkage);
	LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
	return g;
}

static LLVMValueRef cstring(cg_ctx *c, const char *s)
{
	s = s ? s : "";
	LLVMValueRef init = LLVMConstStringInContext2(c->ctx, s, strlen(s), 0);
	LLVMValueRef g = private_const(c, init, "str");
	LLVMSetAlignment(g, 1);
	return g;
}

static LLVMValueRef i32c(cg_ctx *c, uint32_t v)
{
	return LLVMConstInt(c->i32, v, 0);
}

static LLVMValueRef i64c(cg_ctx *c, int64_t v)
{
	return LLVMConstInt(c->i64, (unsigned long long)v, 0);
}

/* Whether LLVM would take an [n x i8] constant of these bytes for a C
 * string (one 0, the last byte) and place it in a string section. */
static bool is_c_string(const char *bytes, size_t n)
{
	return n > 0 && bytes[n - 1] == 0 && !memchr(bytes, 0, n - 1);
}

/* A private global of n size_t values (an [n x i64]), or a null pointer
 * when there are none.  The values are written as bytes in the target's
 * byte order and given to LLVM as one [8n x i8] constant, as the used
 * arrays are, not as n constants (which LLVM keeps, uniqued, for the
 * context's life: chain build of 2^22 positions took 737 MB and 4.6 s
 * that way, 325 MB and 0.6 s this way).
 * The object's bytes are the same: a private unnamed_addr constant goes to
 * a section by its size and alignment alone, except an i8 array that is a
 * C string, which goes to a string section; such a table (all its bytes
 * but the last nonzero, so never one of offsets below 2^48) is still
 * made an [n x i64]. */
static LLVMValueRef size_array(cg_ctx *c, const int64_t *v, int64_t n, const char *name)
{
	if (!v || n <= 0)
		return LLVMConstNull(c->ptr);
	size_t size = (size_t)n * 8;
	unsigned char *bytes = malloc(size);
	if (!bytes) {
		cg_fail(c, "out of memory");
		return LLVMConstNull(c->ptr);
	}
	bool big_endian = c->td && LLVMByteOrder(c->td) == LLVMBigEndian;
	for (int64_t i = 0; i < n; i++)
		for (int b = 0; b < 8; b++)
			bytes[i * 8 + (big_endian ? 7 - b : b)] = (unsigned char)((uint64_t)v[i] >> (8 * b));
	LLVMValueRef init = NULL;
	if (c->td && !is_c_string((const char *)bytes, size)) {
		init = LLVMConstStringInContext2(c->ctx, (const char *)bytes, size, 1);
	} else {
		LLVMValueRef *e = malloc((size_t)n * sizeof *e);
		if (!e) {
			free(bytes);
			cg_fail(c, "out of memory");
			return LLVMConstNull(c->ptr);
		}
		for (int64_t i = 0; i < n; i++)
			e[i] = i64c(c, v[i]);
		init = LLVMConstArray2(c->i64, e, (uint64_t)n);
		free(e);
	}
	free(bytes);
	LLVMValueRef g = private_const(c, init, name);
	LLVMSetAlignment(g, 8);
	return g;
}

/* chain_var: { name, kind, cat_k, rank, <4 bytes pad>, shape[4], offset,
 * size, unused, used } = 88 bytes. */
static LLVMTypeRef var_type(cg_ctx *c)
{
	LLVMTypeRef f[] = { c->ptr, c->i32, c->i32, c->i32, c->i32 /* pad */,
	                    LLVMArrayType2(c->i64, CHAIN_MAX_RANK), c->i64, c->i64, c->i64, c->ptr };
	return LLVMStructTypeInContext(c->ctx, f, sizeof f / sizeof *f, 0);
}

static uint32_t chain_kind_of(val_kind k)
{
	switch (k) {
	case K_BIN: return CHAIN_BIN;
	case K_CAT: return CHAIN_CAT;
	case K_INT: return CHAIN_INT;
	case K_REAL: return CHAIN_REAL;
	}
	return CHAIN_REAL;
}

/* The chain_var array of a list of syms (params: with their used masks). */
static LLVMValueRef var_array(cg_ctx *c, const ptrvec *syms, bool params, const char *name)
{
	if (syms->len == 0)
		return LLVMConstNull(c->ptr);
	LLVMTypeRef vt = var_type(c);
	LLVMValueRef *vars = calloc(syms->len, sizeof *vars);
	if (!vars) {
		cg_fail(c, "out of memory");
		return LLVMConstNull(c->ptr);
	}
	for (size_t i = 0; i < syms->len; i++) {
		const sym *s = syms->items[i];
		int rank = s->shape.rank < 0 ? 0 : s->shape.rank > CHAIN_MAX_RANK ? CHAIN_MAX_RANK : s->shape.rank;
		LLVMValueRef dims[CHAIN_MAX_RANK];
		int64_t size = 1;
		for (int d = 0; d < CHAIN_MAX_RANK; d++) {
			int64_t dim = d < rank && d < SHAPE_MAX_RANK ? s->shape.dims[d] : 0;
			dims[d] = i64c(c, dim);
			if (d < rank)
				size *= dim;
		}
		int64_t unused = 0;
		LLVMValueRef used = LLVMConstNull(c->ptr);
		if (params && c->m->param_unused)
			unused = c->m->param_unused[i];
		if (params && c->m->param_used && c->m->param_used[i] && size > 0) {
			/* the [size x i8] array built from bytes: one constant, not
			 * one per entry (nade's W has 392,000) */
			char *u = malloc((size_t)size);
			if (!u) {
				cg_fail(c, "out of memory");
			} else {
				for (int64_t j = 0; j < size; j++)
					u[j] = param_entry_used(c->m->param_used[i], j);
				used = private_const(c, LLVMConstStringInContext2(c->ctx, u, (size_t)size, 1), "used");
				free(u);
			}
		}
		LLVMValueRef f[] = {
			cstring(c, s->name),
			i32c(c, params ? CHAIN_REAL : chain_kind_of(s->vkind)),
			i32c(c, s->vkind == K_CAT ? (uint32_t)s->cat_k : 0),
			i32c(c, (uint32_t)rank),
			i32c(c, 0),
			LLVMConstArray2(c->i64, dims, CHAIN_MAX_RANK),
			i64c(c, (int64_t)s->offset),
			i64c(c, size),
			i64c(c, unused),
			used,
		};
		vars[i] = LLVMConstNamedStruct(vt, f, sizeof f / sizeof *f);
	}
	LLVMValueRef g = private_const(c, LLVMConstArray2(vt, vars, syms->len), name);
	LLVMSetAlignment(g, 8);
	free(vars);
	return g;
}

/* The chain_kernels_f64/f32 struct: eight function pointers in ir_kernel_kind
 * order, NULL for kernels not built. */
static LLVMValueRef kernels_struct(cg_ctx *c)
{
	LLVMValueRef v[KER__COUNT];
	for (int k = 0; k < KER__COUNT; k++)
		v[k] = c->kernel_fn[k] ? c->kernel_fn[k] : LLVMConstNull(c->ptr);
	LLVMValueRef init = LLVMConstStructInContext(c->ctx, v, KER__COUNT, 0);
	LLVMValueRef g = private_const(c, init, "kernels");
	LLVMSetAlignment(g, 8);
	return g;
}

/* Defines the exported constant `<model>_model`. */
void cg_model_descriptor(cg_ctx *c)
{
	const model *mdl = c->m->model;
	/* chain_model: abi_version, <pad>, name, precision, <pad>, num_params,
	 * num_params_unused, obs_size, num_param_vars, params, num_inputs,
	 * inputs, num_data, data, num_positions, order, cond_offset, objective,
	 * maximize, f64, f32, loglik_only, <pad>, value_max = 160 bytes. */
	LLVMTypeRef ft[] = {
		c->i32, c->i32, c->ptr, c->i32, c->i32, c->i64, c->i64, c->i64, c->i64, c->ptr, c->i64,
		c->ptr, c->i64, c->ptr, c->i64, c->ptr, c->ptr, c->i32, c->i32, c->ptr, c->ptr, c->i32,
		c->i32, c->ptr,
	};
	LLVMTypeRef mt = LLVMStructCreateNamed(c->ctx, "chain_model");
	LLVMStructSetBody(mt, ft, sizeof ft / sizeof *ft, 0);
	int64_t npos = mdl->num_positions;
	if (npos > 0 && (!c->m->order_offsets || !c->m->cond_offset))
		cg_fail(c, "internal error: the descriptor's tables were not filled (lower_descriptor_tables)");
	LLVMValueRef kernels = kernels_struct(c);
	LLVMValueRef f[] = {
		i32c(c, CHAIN_ABI_VERSION),
		i32c(c, 0),
		cstring(c, mdl->name),
		i32c(c, c->o->f32 ? CHAIN_F32 : CHAIN_F64),
		i32c(c, 0),
		i64c(c, mdl->num_params),
		i64c(c, c->m->num_unused),
		i64c(c, mdl->obs_size),
		i64c(c, (int64_t)mdl->params.len),
		var_array(c, &mdl->params, true, "params"),
		i64c(c, (int64_t)mdl->inputs.len),
		var_array(c, &mdl->inputs, false, "inputs"),
		i64c(c, (int64_t)mdl->data.len),
		var_array(c, &mdl->data, false, "data"),
		i64c(c, npos),
		size_array(c, c->m->order_offsets, npos, "order"),
		size_array(c, c->m->cond_offset, c->m->cond_offset ? npos + 1 : 0, "cond_offset"),
		i32c(c, mdl->objective_has_loglik ? CHAIN_OBJ_LOGLIK : CHAIN_OBJ_FREE),
		i32c(c, mdl->maximize ? 1 : 0),
		c->o->f32 ? LLVMConstNull(c->ptr) : kernels,
		c->o->f32 ? kernels : LLVMConstNull(c->ptr),
		i32c(c, mdl->objective_has_loglik && !mdl->penalty ? 1 : 0),
		i32c(c, 0),
		/* -1 for "its kind's", SIZE_MAX as a size_t */
		size_array(c, c->m->value_max, (int64_t)(mdl->inputs.len + mdl->data.len), "value_max"),
	};
	char name[512];
	snprintf(name, sizeof name, "%s_model", mdl->name);
	LLVMValueRef g = LLVMAddGlobal(c->mod, mt, name);
	LLVMSetInitializer(g, LLVMConstNamedStruct(mt, f, sizeof f / sizeof *f));
	LLVMSetGlobalConstant(g, 1);
	LLVMSetAlignment(g, 8);
	/* the layout check: the offsets the C compiler gives chain_model */
	if (c->td && LLVMABISizeOfType(c->td, mt) != 160)
		cg_fail(c, "internal error: chain_model laid out in %llu bytes, not 160",
		        (unsigned long long)LLVMABISizeOfType(c->td, mt));
	if (c->td && LLVMABISizeOfType(c->td, var_type(c)) != 88)
		cg_fail(c, "internal error: chain_var laid out in %llu bytes, not 88",
		        (unsigned long long)LLVMABISizeOfType(c->td, var_type(c)));
}
