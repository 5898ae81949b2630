/* jit.c -- in-process compilation of a cg_unit with ORC LLJIT.
 *
 * `chain train/eval/sample` never write an object file: they compile the
 * model's object in memory as `chain build` does (on several threads,
 * cg_build_object_memory), hand it to LLJIT to link (jit_load_object) and
 * call the kernels through the descriptor; tests hand it a unit from
 * cg_generate to compile (jit_load).  The
 * JIT's main JITDylib gets a generator over the process's own symbols, so
 * the kernels' calls to chain_rng_* and libm (exp, log1p, calloc, ...)
 * resolve to the copies inside the running binary (linked -rdynamic).
 * Once the kernels are compiled, the memory the compiler touched is given
 * back (release_compiler_memory), before the command loads its data.
 */
#include <elf.h>
#include <link.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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

/* Whether two normalized triples (arch-vendor-os-env) agree but for the
 * vendor, which does not change the code (x86_64-linux-gnu normalizes to
 * x86_64-unknown-linux-gnu, the host calls itself x86_64-pc-linux-gnu). */
static bool same_machine(const char *a, const char *b)
{
	const char *ea = strchr(a, '-'), *eb = strchr(b, '-');
	if (!ea || !eb || ea - a != eb - b || strncmp(a, b, (size_t)(ea - a)) != 0)
		return strcmp(a, b) == 0;
	const char *ra = strchr(ea + 1, '-'), *rb = strchr(eb + 1, '-');
	return ra && rb ? strcmp(ra, rb) == 0 : strcmp(a, b) == 0;
}

/* Whether code for `triple` runs on this machine (same_machine with the
 * host's normalized triple, which goes to *host when asked: free it with
 * LLVMDisposeMessage). */
static bool runs_here(const char *triple, char **host)
{
	char *h = LLVMGetDefaultTargetTriple();
	char *host_norm = LLVMNormalizeTargetTriple(h);
	char *norm = LLVMNormalizeTargetTriple(triple);
	bool same = same_machine(host_norm, norm);
	LLVMDisposeMessage(h);
	LLVMDisposeMessage(norm);
	if (host)
		*host = host_norm;
	else
		LLVMDisposeMessage(host_norm);
	return same;
}

/* The JIT target machine: the host (the unit must have been generated for
 * it), with the unit's CPU, features and opt level, PIC, JIT code model. */
static LLVMOrcJITTargetMachineBuilderRef jit_tmb(cg_unit *u, char **err)
{
	if (!runs_here(u->triple, NULL)) {
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

/* Whether a loaded object had its text relocated at load time (then its
 * read-only segments hold written pages, which must not be dropped). */
static int has_textrel(const struct dl_phdr_info *info)
{
	for (size_t i = 0; i < info->dlpi_phnum; i++) {
		if (info->dlpi_phdr[i].p_type != PT_DYNAMIC)
			continue;
		const ElfW(Dyn) *d = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
		for (; d->d_tag != DT_NULL; d++)
			if (d->d_tag == DT_TEXTREL || (d->d_tag == DT_FLAGS && (d->d_un.d_val & DF_TEXTREL)))
				return 1;
	}
	return 0;
}

/* Whether a loaded object is libLLVM (a shared build). */
static bool is_llvm_library(const struct dl_phdr_info *info)
{
	const char *name = info->dlpi_name ? strrchr(info->dlpi_name, '/') : NULL;
	return name && strncmp(name + 1, "libLLVM", 7) == 0;
}

/* dl_iterate_phdr callback: *arg = 1 if libLLVM is a loaded library. */
static int find_llvm_library(struct dl_phdr_info *info, size_t size, void *arg)
{
	if (is_llvm_library(info))
		*(int *)arg = 1;
	return 0;
}

/* dl_iterate_phdr callback: unmaps the pages of LLVM's read-only segments
 * (code and constants): libLLVM's, or, when LLVM is linked into the
 * executable (*arg = 1: the Makefile's static build), the executable's.
 * They are private file mappings that were never written, so MADV_DONTNEED
 * only drops them from the page tables: they stay in the page cache and
 * fault back in when used again (LLVM running again, or chain's own code,
 * which in a static build shares the segments).  Pages shared with a
 * writable segment are left alone (the range is rounded inwards). */
static int drop_llvm_code(struct dl_phdr_info *info, size_t size, void *arg)
{
	bool executable = !info->dlpi_name || !info->dlpi_name[0];
	if (!(executable ? *(const int *)arg : is_llvm_library(info)) || has_textrel(info))
		return 0;
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	for (size_t i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W))
			continue;
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
		lo = (lo + page - 1) & ~(page - 1);
		hi &= ~(page - 1);
		if (hi > lo)
			madvise((void *)lo, hi - lo, MADV_DONTNEED);
	}
	return 0;
}

/* Drops LLVM's read-only pages: libLLVM's, and with executable_too, the
 * executable's when LLVM is linked into it. */
static void drop_llvm_pages(bool executable_too)
{
	int shared = 0;
	dl_iterate_phdr(find_llvm_library, &shared);
	int in_executable = executable_too && !shared;
	dl_iterate_phdr(drop_llvm_code, &in_executable);
}

/* The dynamic loader and LLVM's static constructors touch some 40 MB of
 * libLLVM (its relocation tables, option registrations all over the
 * library) that compiling a model does not read again.  Dropped as soon as
 * those constructors have run (the executable's run after the libraries'),
 * they do not add to the compiler's peak.  Linked into the executable,
 * LLVM has no such relocations to apply, and its pages are left alone
 * until the compiler is done. */
__attribute__((constructor)) static void release_startup_memory(void)
{
	drop_llvm_pages(false);
}

/* After compilation the process's resident memory is mostly the
 * compiler's: some 60 MB of LLVM's pages touched while compiling, and
 * freed heap.  The commands then load data and allocate theta-sized
 * buffers, and without this the two would add up in the peak. */
static void release_compiler_memory(void)
{
	drop_llvm_pages(true);
	malloc_trim(0);
}

/* A session whose main JITDylib resolves what it lacks in the process's
 * own symbols; tmb (taken) NULL for the host's defaults.  NULL with *err
 * set. */
static jit_session *session_new(LLVMOrcJITTargetMachineBuilderRef tmb, LLVMOrcJITDylibRef *jd, char **err)
{
	jit_session *s = calloc(1, sizeof *s);
	if (!s) {
		if (tmb)
			LLVMOrcDisposeJITTargetMachineBuilder(tmb);
		jit_err(err, "out of memory", NULL);
		return NULL;
	}
	LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
	if (tmb)
		LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, tmb); /* takes tmb */
	LLVMErrorRef e = LLVMOrcCreateLLJIT(&s->jit, builder);           /* takes builder */
	if (e) {
		s->jit = NULL;
		jit_err(err, "cannot create the JIT", e);
		jit_free(s);
		return NULL;
	}
	LLVMOrcDefinitionGeneratorRef gen;
	e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(s->jit),
	                                                         NULL, NULL);
	if (e) {
		jit_err(err, "cannot search the process's symbols", e);
		jit_free(s);
		return NULL;
	}
	*jd = LLVMOrcLLJITGetMainJITDylib(s->jit);
	LLVMOrcJITDylibAddGenerator(*jd, gen); /* takes gen */
	return s;
}

/* Looks up the descriptor (which compiles or links what it needs) and
 * gives the compiler's memory back; frees s on failure. */
static jit_session *session_finish(jit_session *s, const char *descriptor, const struct chain_model **out,
                                   char **err)
{
	LLVMOrcExecutorAddress addr = 0;
	LLVMErrorRef e = LLVMOrcLLJITLookup(s->jit, &addr, descriptor);
	if (e) {
		jit_err(err, "cannot load the model", e);
		jit_free(s);
		return NULL;
	}
	if (out)
		*out = (const struct chain_model *)(uintptr_t)addr;
	release_compiler_memory();
	return s;
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
	LLVMOrcJITTargetMachineBuilderRef tmb = jit_tmb(u, err);
	LLVMOrcJITDylibRef jd;
	jit_session *s = tmb ? session_new(tmb, &jd, err) : NULL;
	if (!s) {
		cg_unit_free(u);
		return NULL;
	}
	/* the module moves into the JIT; the unit's reference to the context
	 * is dropped by cg_unit_free, the module's keeps it alive, and its
	 * diagnostics, which went to the unit, are printed from now on */
	LLVMContextSetDiagnosticHandler(u->ctx, cg_llvm_diagnostic, NULL);
	LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(u->mod, u->tsctx);
	u->mod = NULL;
	LLVMErrorRef e = LLVMOrcLLJITAddLLVMIRModule(s->jit, jd, tsm); /* takes tsm */
	if (e) {
		jit_err(err, "cannot add the module", e);
		jit_free(s);
		s = NULL;
	}
	if (s)
		s = session_finish(s, u->descriptor, out, err);
	cg_unit_free(u);
	return s;
}

int jit_check_target(const char *target, char **err)
{
	if (!target || !target[0])
		return 0;
	char *host;
	bool same = runs_here(target, &host);
	if (!same && err) {
		free(*err);
		size_t len = strlen(target) + strlen(host) + 128;
		*err = malloc(len);
		if (*err)
			snprintf(*err, len, "--target %s is not this machine (%s): this command runs the model here; "
			         "cross-compile with chain build", target, host);
	}
	LLVMDisposeMessage(host);
	return same ? 0 : -1;
}

jit_session *jit_load_object(const void *obj, size_t size, const char *descriptor, const struct chain_model **out,
                             char **err)
{
	if (out)
		*out = NULL;
	LLVMOrcJITDylibRef jd;
	jit_session *s = session_new(NULL, &jd, err);
	if (!s)
		return NULL;
	LLVMMemoryBufferRef buf = LLVMCreateMemoryBufferWithMemoryRangeCopy(obj, size, descriptor);
	LLVMErrorRef e = LLVMOrcLLJITAddObjectFile(s->jit, jd, buf); /* takes buf */
	if (e) {
		jit_err(err, "cannot add the object", e);
		jit_free(s);
		return NULL;
	}
	return session_finish(s, descriptor, out, err);
}
