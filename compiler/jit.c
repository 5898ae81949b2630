/* jit.c -- in-process compilation of a cg_unit with ORC LLJIT.
 *
 * `chain train/eval/sample` never write an object: they hand the unit from
 * cg_generate to LLJIT and call the kernels through the descriptor.  The
 * JIT's main JITDylib gets a generator over the process's own symbols, so
 * the kernels' calls to chain_rng_* and libm (exp, log1p, calloc, ...)
 * resolve to the copies inside the running binary (linked -rdynamic).
 */
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>

#include "cg_context.h"
#include "chain/model.h"

struct jit_session {
	LLVMOrcLLJITRef jit;
};

static void jit_err(char **err, const char *what, LLVMErrorRef e)
{
	char *m = e ? LLVMGetErrorMessage(e) : NULL;
	if (err) {
		free(*err);
		size_t len = strlen(what) + (m ? strlen(m) : 0) + 16;
		*err = malloc(len);
		if (*err)
			snprintf(*err, len, "jit: %s%s%s", what, m ? ": " : "", m ? m : "");
	}
	if (m)
		LLVMDisposeErrorMessage(m);
}

void jit_free(jit_session *s)
{
	if (!s)
		return;
	if (s->jit) {
		LLVMErrorRef e = LLVMOrcDisposeLLJIT(s->jit);
		if (e)
			LLVMConsumeError(e);
	}
	free(s);
}

/* The JIT target machine: the host (the unit must have been generated for
 * it), with the unit's CPU, features and opt level, PIC, JIT code model. */
static LLVMOrcJITTargetMachineBuilderRef jit_tmb(cg_unit *u, char **err)
{
	char *host = LLVMGetDefaultTargetTriple();
	char *host_norm = LLVMNormalizeTargetTriple(host);
	LLVMDisposeMessage(host);
	bool same = strcmp(host_norm, u->triple) == 0;
	LLVMDisposeMessage(host_norm);
	if (!same) {
		jit_err(err, "the unit was generated for another target than this machine", NULL);
		return NULL;
	}
	LLVMTargetRef t;
	char *msg = NULL;
	if (LLVMGetTargetFromTriple(u->triple, &t, &msg)) {
		jit_err(err, msg ? msg : "no target for this machine", NULL);
		if (msg)
			LLVMDisposeMessage(msg);
		return NULL;
	}
	if (msg)
		LLVMDisposeMessage(msg);
	LLVMCodeGenOptLevel lvl = u->opt_level <= 0 ? LLVMCodeGenLevelNone
	                          : u->opt_level == 1 ? LLVMCodeGenLevelLess
	                          : u->opt_level == 2 ? LLVMCodeGenLevelDefault
	                                              : LLVMCodeGenLevelAggressive;
	LLVMTargetMachineRef tm = LLVMCreateTargetMachine(t, u->triple, u->cpu, u->features, lvl,
	                                                  LLVMRelocPIC, LLVMCodeModelJITDefault);
	if (!tm) {
		jit_err(err, "cannot create a target machine for this machine", NULL);
		return NULL;
	}
	/* takes and destroys tm */
	return LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm);
}

jit_session *jit_load(cg_unit *u, const struct chain_model **out, char **err)
{
	if (out)
		*out = NULL;
	if (!u || !u->mod) {
		jit_err(err, "no module to load", NULL);
		cg_unit_free(u);
		return NULL;
	}
	jit_session *s = calloc(1, sizeof *s);
	LLVMOrcJITTargetMachineBuilderRef tmb = s ? jit_tmb(u, err) : NULL;
	if (!tmb) {
		if (!s)
			jit_err(err, "out of memory", NULL);
		free(s);
		cg_unit_free(u);
		return NULL;
	}
	LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
	LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, tmb); /* takes tmb */
	LLVMErrorRef e = LLVMOrcCreateLLJIT(&s->jit, builder);       /* takes builder */
	if (e) {
		s->jit = NULL;
		jit_err(err, "cannot create the JIT", e);
		goto fail;
	}

	LLVMOrcDefinitionGeneratorRef gen;
	e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(s->jit),
	                                                         NULL, NULL);
	if (e) {
		jit_err(err, "cannot search the process's symbols", e);
		goto fail;
	}
	LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(s->jit);
	LLVMOrcJITDylibAddGenerator(jd, gen); /* takes gen */

	/* the module moves into the JIT; the unit's reference to the context
	 * is dropped by cg_unit_free, the module's keeps it alive */
	LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(u->mod, u->tsctx);
	u->mod = NULL;
	e = LLVMOrcLLJITAddLLVMIRModule(s->jit, jd, tsm); /* takes tsm */
	if (e) {
		jit_err(err, "cannot add the module", e);
		goto fail;
	}
	LLVMOrcExecutorAddress addr = 0;
	e = LLVMOrcLLJITLookup(s->jit, &addr, u->descriptor);
	if (e) {
		jit_err(err, "cannot compile the model", e);
		goto fail;
	}
	if (out)
		*out = (const struct chain_model *)(uintptr_t)addr;
	cg_unit_free(u);
	return s;
fail:
	cg_unit_free(u);
	jit_free(s);
	return NULL;
}
