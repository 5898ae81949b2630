/* cg_emit.c -- the backend, in a fixed order:
 *
 *   target machine for the triple (host by default) and CPU/features
 *   -> generate the module (cg_kernel.c, cg_model.c) with the triple and the
 *      machine's data layout set
 *   -> LLVMVerifyModule (failure = internal error with the IR in the message)
 *   -> LLVMRunPasses("default<On>")
 *   -> cg_emit: LLVMTargetMachineEmitToFile (obj, asm), LLVMPrintModuleToFile
 *      (llvm), LLVMWriteBitcodeToFile (bc)
 *
 * `chain build`'s object (cg_build_object) takes the same steps, a module
 * per kernel, on several threads, and merges the objects (elf_merge.c).
 *
 * Every message LLVM hands us is disposed; every output goes to a temporary
 * file in the destination's directory that is renamed over the destination
 * only when complete, so an error never leaves a partial file behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Error.h>
#include <llvm-c/BitWriter.h>
#include <llvm-c/Support.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "cg_build.h"
#include "cg_context.h"
#include "elf_merge.h"
/* libchain-private: where an output goes (one rule for every file chain writes) */
#include "../runtime/atomic_file.h"

char *cg_strdup(const char *s)
{
	size_t n = strlen(s ? s : "") + 1;
	char *p = malloc(n);
	if (p)
		memcpy(p, s ? s : "", n);
	return p;
}

/* A malloc'd printf, or NULL when out of memory. */
static char *cg_vfmt(const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return NULL;
	char *p = malloc((size_t)n + 1);
	if (p)
		vsnprintf(p, (size_t)n + 1, fmt, ap);
	return p;
}

static char *cg_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *cg_fmt(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *p = cg_vfmt(fmt, ap);
	va_end(ap);
	return p;
}

/* Records the first error of a generation; later ones are consequences. */
void cg_fail(cg_ctx *c, const char *fmt, ...)
{
	if (c->err)
		return;
	va_list ap;
	va_start(ap, fmt);
	c->err = cg_vfmt(fmt, ap);
	va_end(ap);
	if (!c->err)
		c->err = cg_strdup("out of memory");
}

static void set_err(char **err, char *msg)
{
	if (err) {
		free(*err);
		*err = msg ? msg : cg_strdup("out of memory");
	} else {
		free(msg);
	}
}

/* Takes an LLVM message: copies it into a malloc'd string and disposes it. */
static char *take_msg(char *m)
{
	char *s = cg_strdup(m ? m : "");
	if (m)
		LLVMDisposeMessage(m);
	return s;
}

/* LLVM's own diagnostics: an optimization remark ("loop not vectorized")
 * or warning is about code we generated, not the user's model, and must not
 * reach the user's terminal.  An error (a target that cannot compile what
 * a kernel needs: --target bpf has no calls to libm) is kept in the unit,
 * and the build fails with it: LLVM goes on and writes an object anyway. */
void cg_llvm_diagnostic(LLVMDiagnosticInfoRef info, void *unit)
{
	cg_unit *u = unit;
	if (LLVMGetDiagInfoSeverity(info) != LLVMDSError || (u && u->llvm_error))
		return;
	char *msg = LLVMGetDiagInfoDescription(info);
	if (!u) { /* a context that outlived its unit (jit_load's, in the JIT) */
		fprintf(stderr, "chain: LLVM: %s\n", msg ? msg : "error");
		LLVMDisposeMessage(msg);
		return;
	}
	size_t len = msg ? strlen(msg) : 0;
	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		msg[--len] = '\0';
	u->llvm_error = cg_fmt("LLVM cannot compile the model for target %s: %s", u->triple, msg ? msg : "an error");
	LLVMDisposeMessage(msg);
}

/* ------------------------------------------------------ target machine */

static pthread_once_t native_once = PTHREAD_ONCE_INIT, all_once = PTHREAD_ONCE_INIT;

/* The host's target, enough unless --target names one: registering every
 * target LLVM was built with is a millisecond of each build. */
static void init_native(void)
{
	LLVMInitializeNativeTarget();
	LLVMInitializeNativeAsmPrinter();
}

/* Every target LLVM was built with, so --target can cross compile. */
static void init_all(void)
{
	LLVMInitializeAllTargetInfos();
	LLVMInitializeAllTargets();
	LLVMInitializeAllTargetMCs();
	LLVMInitializeAllAsmPrinters();
}

/* LLVM's global options, set by the first compilation of the process (they
 * are global to LLVM, and LLVM parses an option once).
 * -disable-lsr: loop strength reduction is a quarter of instruction
 * selection's time on our kernels (many address expressions over few
 * loops) and made no difference to their speed (nade and fvsbn, f64 and
 * f32, every hot kernel within 1%).
 * Vectorized epilogues stay on: the remainder of a loop LLVM vectorizes on
 * its own runs in narrower vectors (NADE's hidden layer of 100 is 96 + 4,
 * and 4 scalar sigmoids cost half as much as the 6 vectors), from main
 * loops of 8 lanes up (LLVM's default is 16, which left f64's 512-bit
 * loops with scalar remainders: NADE H = 100 f64 1.13x).  A loop with
 * a width hint (cg_rows.c's jammed sums) is planned at that width alone,
 * so its remainder stays scalar and a row's sum keeps the same bits in a
 * block or alone (test_models' batch_split checks it).
 * -enable-misched=false: the machine scheduler before register allocation
 * is 4% of a build's instructions; without it the kernels of the examples
 * and of models of scalar and vector variables of every kind ran within
 * the noise of `bench ab` (0.94-1.12x, 5 rounds; most within 2%).
 * -disable-machine-licm for `chain build` below -O3: machine LICM hoists
 * every constant a loop uses out of all the loops around it (a constant can
 * be loaded again where needed), so the 15-40 constants of the sigmoid, exp
 * and log1p polynomials (cg_math.c) stay live from a kernel's entry through
 * all its loops, and the register allocator spends its time splitting them
 * around each one: a third of NADE's code generation.  Without it a loop
 * loads its constants where it uses them (operands with an embedded
 * broadcast): `chain build` of NADE 14% faster, its f32 log p and sampling
 * at batch 256 4-9% slower, its gradient 1-3% (f64 and FVSBN within 2%).  -O3 keeps
 * it, and so do the commands that run what they compile (cg_options.jit:
 * train, eval, sample...), whose kernels then run for seconds or hours. */
static pthread_mutex_t options_lock = PTHREAD_MUTEX_INITIALIZER;
static bool options_set;

static void set_options(const cg_options *o)
{
	pthread_mutex_lock(&options_lock);
	if (!options_set) {
		const char *argv[] = { "chain", "-disable-lsr", "-epilogue-vectorization-minimum-VF=8",
			               "-enable-misched=false", "-disable-machine-licm" };
		int argc = (int)(sizeof argv / sizeof argv[0]) - (o->opt_level >= 3 || o->jit);
		LLVMParseCommandLineOptions(argc, argv, NULL);
		options_set = true;
	}
	pthread_mutex_unlock(&options_lock);
}

static LLVMCodeGenOptLevel codegen_level(int opt)
{
	return opt <= 0 ? LLVMCodeGenLevelNone : opt == 1 ? LLVMCodeGenLevelLess
	       : opt == 2 ? LLVMCodeGenLevelDefault : LLVMCodeGenLevelAggressive;
}

/* LLVM reports an unknown CPU or feature only as a warning on stderr when
 * the target machine's subtarget is built ("'x' is not a recognized
 * processor for this target (ignoring processor)").  A user who names a
 * CPU wants an error, so while creating a machine for a user-given CPU or
 * feature string we catch stderr in a temporary file, look for that
 * warning and pass anything else through.  The mutex keeps two such
 * captures from interleaving; host defaults never need one. */
static pthread_mutex_t stderr_lock = PTHREAD_MUTEX_INITIALIZER;

static LLVMTargetMachineRef create_tm_checked(LLVMTargetRef t, const char *triple, const char *cpu,
                                              const char *features, int opt, LLVMRelocMode reloc,
                                              LLVMCodeModel cm, bool check, char **err)
{
	if (!check)
		return LLVMCreateTargetMachine(t, triple, cpu, features, codegen_level(opt), reloc, cm);
	pthread_mutex_lock(&stderr_lock);
	fflush(stderr);
	FILE *cap = tmpfile();
	int saved = cap ? dup(2) : -1;
	if (saved >= 0)
		dup2(fileno(cap), 2);
	LLVMTargetMachineRef tm = LLVMCreateTargetMachine(t, triple, cpu, features, codegen_level(opt), reloc, cm);
	char text[4096] = "";
	if (saved >= 0) {
		fflush(stderr);
		dup2(saved, 2);
		close(saved);
		rewind(cap);
		size_t n = fread(text, 1, sizeof text - 1, cap);
		text[n] = 0;
	}
	if (cap)
		fclose(cap);
	pthread_mutex_unlock(&stderr_lock);
	char *bad = strstr(text, "is not a recognized");
	if (bad) {
		/* the offending line, without its newline */
		char *line = bad;
		while (line > text && line[-1] != '\n')
			line--;
		char *end = strchr(bad, '\n');
		if (end)
			*end = 0;
		char *ign = strstr(bad, " (ignoring"); /* we do not ignore it */
		if (ign)
			*ign = 0;
		set_err(err, cg_fmt("target %s: %s", triple, line));
		if (tm)
			LLVMDisposeTargetMachine(tm);
		return NULL;
	}
	if (text[0])
		fputs(text, stderr);
	return tm;
}

/* The triple, CPU and features of a compilation (malloc'd), and the target
 * machine for them.  Returns NULL with *err set on an unknown triple/CPU. */
static LLVMTargetMachineRef make_target(const cg_options *o, char **triple, char **cpu,
                                        char **features, char **err)
{
	pthread_once(o->target && o->target[0] ? &all_once : &native_once,
	             o->target && o->target[0] ? init_all : init_native);
	set_options(o);
	char *host = LLVMGetDefaultTargetTriple();
	char *host_norm = LLVMNormalizeTargetTriple(host);
	LLVMDisposeMessage(host);
	if (o->target && o->target[0]) {
		char *n = LLVMNormalizeTargetTriple(o->target);
		*triple = take_msg(n);
	} else {
		*triple = cg_strdup(host_norm);
	}
	bool is_host = strcmp(*triple, host_norm) == 0;
	LLVMDisposeMessage(host_norm);
	*cpu = *features = NULL;

	LLVMTargetRef t;
	char *msg = NULL;
	if (LLVMGetTargetFromTriple(*triple, &t, &msg)) {
		set_err(err, cg_fmt("unknown target '%s': %s", o->target ? o->target : *triple,
		                    msg ? msg : "no such target"));
		if (msg)
			LLVMDisposeMessage(msg);
		return NULL;
	}
	if (msg)
		LLVMDisposeMessage(msg);
	if (o->cpu && o->cpu[0])
		*cpu = cg_strdup(o->cpu);
	else
		*cpu = is_host ? take_msg(LLVMGetHostCPUName()) : cg_strdup("generic");
	if (o->features)
		*features = cg_strdup(o->features);
	else
		*features = (!o->cpu && is_host) ? take_msg(LLVMGetHostCPUFeatures()) : cg_strdup("");
	bool check = (o->cpu && o->cpu[0]) || (o->features && o->features[0]);
	LLVMTargetMachineRef tm = create_tm_checked(t, *triple, *cpu, *features, o->opt_level,
	                                            LLVMRelocPIC, LLVMCodeModelDefault, check, err);
	if (!tm && err && !*err)
		set_err(err, cg_fmt("cannot create a target machine for %s (cpu %s)", *triple, *cpu));
	return tm;
}

/* ------------------------------------------------------------ generate */

void cg_unit_free(cg_unit *u)
{
	if (!u)
		return;
	if (u->mod)
		LLVMDisposeModule(u->mod);
	if (u->tsctx)
		LLVMOrcDisposeThreadSafeContext(u->tsctx);
	if (u->tm)
		LLVMDisposeTargetMachine(u->tm);
	free(u->triple);
	free(u->cpu);
	free(u->features);
	free(u->descriptor);
	free(u->llvm_error);
	free(u);
}

/* Moves an error LLVM reported while u compiled into *err: -1 then. */
static int take_llvm_error(cg_unit *u, char **err)
{
	if (!u->llvm_error)
		return 0;
	set_err(err, u->llvm_error);
	u->llvm_error = NULL;
	return -1;
}

static void ctx_free(cg_ctx *c)
{
	if (c->b)
		LLVMDisposeBuilder(c->b);
	free(c->const_global);
	free(c->temp_ptr);
	free(c->loop_var);
	free(c->vcache);
	free(c->vstamp);
}

/* Builds the kernels in `mask` (bit k: kernel kind k; the others are only
 * declared) and, when `descriptor`, the descriptor into c->mod. */
static void generate(cg_ctx *c, unsigned mask, bool descriptor)
{
	c->real = c->o->f32 ? LLVMFloatTypeInContext(c->ctx) : LLVMDoubleTypeInContext(c->ctx);
	c->real_size = c->o->f32 ? 4 : 8;
	c->i1 = LLVMInt1TypeInContext(c->ctx);
	c->i8 = LLVMInt8TypeInContext(c->ctx);
	c->i32 = LLVMInt32TypeInContext(c->ctx);
	c->i64 = LLVMInt64TypeInContext(c->ctx);
	c->ptr = LLVMPointerTypeInContext(c->ctx, 0);
	c->void_t = LLVMVoidTypeInContext(c->ctx);
	c->nids = c->m->next_id > 0 ? c->m->next_id : 1;
	size_t n = (size_t)c->nids;
	c->const_global = calloc(n, sizeof *c->const_global);
	c->temp_ptr = calloc(n, sizeof *c->temp_ptr);
	c->loop_var = calloc(n, sizeof *c->loop_var);
	c->vcache = calloc(n, sizeof *c->vcache);
	c->vstamp = calloc(n, sizeof *c->vstamp);
	c->stamp = 1;
	c->b = LLVMCreateBuilderInContext(c->ctx);
	if (!c->const_global || !c->temp_ptr || !c->loop_var || !c->vcache || !c->vstamp) {
		cg_fail(c, "out of memory");
		return;
	}
	for (int k = 0; k < KER__COUNT; k++)
		if (c->m->kernels[k]) {
			if (c->m->kernels[k]->kind != (ir_kernel_kind)k)
				cg_fail(c, "internal error: kernel %s registered as kind %d", c->m->kernels[k]->name, k);
			else
				cg_declare_kernel(c, c->m->kernels[k]);
		}
	for (int k = 0; k < KER__COUNT && !c->err; k++)
		if (c->m->kernels[k] && (mask >> k & 1))
			cg_kernel(c, c->m->kernels[k]);
	if (!c->err && descriptor)
		cg_model_descriptor(c);
}

/* Marks (on) or unmarks a function optnone, which every pass skips;
 * optnone needs noinline, added and removed with it unless it was there
 * before (*had_noinline keeps that). */
static void set_optnone(LLVMContextRef ctx, LLVMValueRef fn, bool on, bool *had_noinline)
{
	unsigned optnone = LLVMGetEnumAttributeKindForName("optnone", 7);
	unsigned noinline = LLVMGetEnumAttributeKindForName("noinline", 8);
	unsigned at = (unsigned)LLVMAttributeFunctionIndex;
	if (on) {
		*had_noinline = LLVMGetEnumAttributeAtIndex(fn, at, noinline) != NULL;
		if (!*had_noinline)
			LLVMAddAttributeAtIndex(fn, at, LLVMCreateEnumAttribute(ctx, noinline, 0));
		LLVMAddAttributeAtIndex(fn, at, LLVMCreateEnumAttribute(ctx, optnone, 0));
	} else {
		LLVMRemoveEnumAttributeAtIndex(fn, at, optnone);
		if (!*had_noinline)
			LLVMRemoveEnumAttributeAtIndex(fn, at, noinline);
	}
}

static bool in_list(LLVMValueRef f, LLVMValueRef const *list, int n)
{
	for (int i = 0; i < n; i++)
		if (list[i] == f)
			return true;
	return false;
}

/* One pipeline over the module's functions that are cold (on_cold) or not;
 * the others are optnone meanwhile. */
static LLVMErrorRef run_pipeline(cg_unit *u, const char *pipeline, bool vec, bool unroll, LLVMValueRef const *cold,
                                 int ncold, bool on_cold)
{
	size_t nfn = 0;
	for (LLVMValueRef f = LLVMGetFirstFunction(u->mod); f; f = LLVMGetNextFunction(f))
		nfn++;
	bool *had = calloc(nfn + 1, sizeof *had);
	if (!had)
		return LLVMCreateStringError("out of memory");
	size_t i = 0;
	for (LLVMValueRef f = LLVMGetFirstFunction(u->mod); f; f = LLVMGetNextFunction(f), i++)
		if (!LLVMIsDeclaration(f) && in_list(f, cold, ncold) != on_cold)
			set_optnone(u->ctx, f, true, &had[i]);
	LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
	LLVMPassBuilderOptionsSetLoopVectorization(po, vec);
	LLVMPassBuilderOptionsSetLoopInterleaving(po, vec);
	LLVMPassBuilderOptionsSetSLPVectorization(po, vec && unroll);
	LLVMPassBuilderOptionsSetLoopUnrolling(po, unroll);
	LLVMErrorRef e = LLVMRunPasses(u->mod, pipeline, u->tm, po);
	LLVMDisposePassBuilderOptions(po);
	i = 0;
	for (LLVMValueRef f = LLVMGetFirstFunction(u->mod); f; f = LLVMGetNextFunction(f), i++)
		if (!LLVMIsDeclaration(f) && in_list(f, cold, ncold) != on_cold)
			set_optnone(u->ctx, f, false, &had[i]);
	free(had);
	return e;
}

/* The new pass manager's default pipelines (the C API leaves the
 * vectorizers off unless asked), per kernel:
 *   hot kernels (logp_batch, loglik_grad, complete: what training,
 *   evaluation and sampling loops call) get default<On> with the loop
 *   vectorizer and interleaving, which make their speed; loop unrolling and
 *   the SLP vectorizer changed nothing measurable in them (their loops are
 *   vectorized already) but cost a fifth of a build, so only -O3 has them;
 *   cold kernels (init, and kernels whose heavy part is a call of
 *   another: cg_kernel.c) get default<O1>, which does not vectorize:
 *   a quarter of a build less, and such kernels run 2-7x slower.
 * The SLP vectorizer runs in the -O2 pipeline all the same (LLVM 19:
 * -opt-bisect-limit=-1 lists SLPVectorizerPass on every hot kernel, and
 * -vectorize-slp=false changes the objects); switched off for real it saves
 * 4-5% of a build but makes FVSBN's f32 logp_batch, loglik_grad and sample
 * 7-12% slower, so it is left as it is.
 * The C API runs a pipeline over a whole module, so each run sees the other
 * group as optnone, which every pass skips; the attribute is gone before
 * code generation.  At -O1 and -O0 there is one group. */
static int run_passes(cg_unit *u, LLVMValueRef const *cold, int ncold, char **err)
{
	int lvl = u->opt_level;
	bool split = lvl >= 2 && ncold > 0;
	/* a module of cold kernels only (cg_build_object's parts) has nothing
	 * for the first pipeline: everything in it would be optnone */
	int nhot = 0;
	for (LLVMValueRef f = LLVMGetFirstFunction(u->mod); f; f = LLVMGetNextFunction(f))
		nhot += !LLVMIsDeclaration(f) && !in_list(f, cold, ncold);
	char pipeline[32];
	snprintf(pipeline, sizeof pipeline, "default<O%d>", lvl);
	LLVMErrorRef e = NULL;
	if (nhot > 0 || !split)
		e = run_pipeline(u, pipeline, lvl >= 2, lvl >= 3, cold, split ? ncold : 0, false);
	if (!e && split) {
		snprintf(pipeline, sizeof pipeline, "default<O1>");
		e = run_pipeline(u, pipeline, false, false, cold, ncold, true);
	}
	if (e) {
		char *m = LLVMGetErrorMessage(e);
		set_err(err, cg_fmt("internal error: running %s: %s", pipeline, m));
		LLVMDisposeErrorMessage(m);
		return -1;
	}
	return 0;
}

/* A unit with its target machine and no module yet; NULL with *err set
 * on a bad target. */
static cg_unit *unit_new(const ir_module *m, const cg_options *o, char **err)
{
	if (!m || !m->model || !m->model->name) {
		set_err(err, cg_strdup("internal error: cg_generate without a model"));
		return NULL;
	}
	cg_unit *u = calloc(1, sizeof *u);
	if (!u) {
		set_err(err, NULL);
		return NULL;
	}
	u->opt_level = o->opt_level < 0 ? 0 : o->opt_level > 3 ? 3 : o->opt_level;
	u->descriptor = cg_fmt("%s_model", m->model->name);
	u->tm = make_target(o, &u->triple, &u->cpu, &u->features, err);
	if (!u->tm || !u->descriptor) {
		if (u->tm && !u->descriptor)
			set_err(err, NULL);
		cg_unit_free(u);
		return NULL;
	}
	LLVMTargetDataRef td = LLVMCreateTargetDataLayout(u->tm);
	bool ok = LLVMPointerSize(td) == 8;
	LLVMDisposeTargetData(td);
	if (!ok) {
		set_err(err, cg_fmt("target %s: only 64-bit targets are supported (the chain_model "
		                    "descriptor is laid out for 64-bit pointers and size_t)", u->triple));
		cg_unit_free(u);
		return NULL;
	}
	return u;
}

/* Generates the kernels in `mask` (and the descriptor when asked) into a
 * new module of the unit, in a context of its own, and verifies it; the
 * kernels to optimize as cold go to cold[0 .. *ncold).  Touches nothing
 * shared but the read-only IR, so units can be generated on several
 * threads at once.  Returns -1 with *err set. */
static int unit_generate(cg_unit *u, const ir_module *m, const cg_options *o, unsigned mask, bool descriptor,
                         LLVMValueRef cold[KER__COUNT], int *ncold, char **err)
{
	LLVMTargetDataRef td = LLVMCreateTargetDataLayout(u->tm);
	u->tsctx = LLVMOrcCreateNewThreadSafeContext();
	u->ctx = LLVMOrcThreadSafeContextGetContext(u->tsctx);
	LLVMContextSetDiagnosticHandler(u->ctx, cg_llvm_diagnostic, u);
	u->mod = LLVMModuleCreateWithNameInContext(m->model->name, u->ctx);
	LLVMSetTarget(u->mod, u->triple);
	LLVMSetModuleDataLayout(u->mod, td);

	cg_ctx c = { .m = m, .o = o, .ctx = u->ctx, .mod = u->mod, .td = td };
	generate(&c, mask, descriptor);
	ctx_free(&c);
	*ncold = 0;
	for (int k = 0; k < KER__COUNT; k++)
		if (c.kernel_fn[k] && c.cold[k])
			cold[(*ncold)++] = c.kernel_fn[k];
	LLVMDisposeTargetData(td);
	if (c.err) {
		set_err(err, c.err);
		return -1;
	}

	char *msg = NULL;
	if (LLVMVerifyModule(u->mod, LLVMReturnStatusAction, &msg)) {
		char *ir = LLVMPrintModuleToString(u->mod);
		set_err(err, cg_fmt("internal error: generated LLVM IR does not verify:\n%s\n%s", msg, ir));
		LLVMDisposeMessage(ir);
		LLVMDisposeMessage(msg);
		return -1;
	}
	if (msg)
		LLVMDisposeMessage(msg);
	return 0;
}

/* unit_generate, then the passes. */
static int unit_build(cg_unit *u, const ir_module *m, const cg_options *o, unsigned mask, bool descriptor,
                      char **err)
{
	LLVMValueRef cold[KER__COUNT];
	int ncold;
	if (unit_generate(u, m, o, mask, descriptor, cold, &ncold, err) < 0 || run_passes(u, cold, ncold, err) < 0)
		return -1;
	return take_llvm_error(u, err);
}

#define ALL_KERNELS ((1u << KER__COUNT) - 1)

cg_unit *cg_generate(const ir_module *m, const cg_options *o, char **err)
{
	cg_options defaults = { .opt_level = 2 };
	if (!o)
		o = &defaults;
	cg_unit *u = unit_new(m, o, err);
	if (u && unit_build(u, m, o, ALL_KERNELS, true, err) < 0) {
		cg_unit_free(u);
		return NULL;
	}
	return u;
}

static int tmp_beside(const char *path, char **tmp, char **dest, char **err);
static int tmp_finish(char *tmp, char *dest, const char *path, bool ok, char **err);

/* Code-generates mod with u's machine into memory.  NULL on failure, with
 * LLVM's reason in *why (malloc'd, NULL when it gave none); the buffer
 * LLVM makes on failure too, holding what was written before it, is
 * disposed of here. */
static LLVMMemoryBufferRef emit_memory(cg_unit *u, LLVMModuleRef mod, LLVMCodeGenFileType kind, char **why)
{
	char *msg = NULL;
	LLVMMemoryBufferRef buf = NULL;
	*why = NULL;
	if (LLVMTargetMachineEmitToMemoryBuffer(u->tm, mod, kind, &msg, &buf)) {
		if (buf)
			LLVMDisposeMemoryBuffer(buf);
		buf = NULL;
		*why = msg ? cg_strdup(msg) : NULL;
	}
	if (msg)
		LLVMDisposeMessage(msg);
	return buf;
}

/* ------------------------------------------------- objects on threads */

/* `chain build` of an object: most of its time is LLVM's passes and
 * instruction selection, which run on one function at a time but on one
 * module per LLVMContext, and a context is for one thread.  So each kernel
 * is a module of its own, in a context of its own (the other kernels
 * declared only: the calls between kernels are to external functions
 * anyway, and a callee is never inlined, cg_kernel.c), generated by
 * whichever worker thread takes it next, then optimized and code-generated
 * (job, below) into an object in memory, and a context moves from one
 * thread to another only through the job's lock; elf_merge.c then puts
 * the objects together in the order of the kernels.  Each object depends
 * only on its kernel, so the file is the same bits whatever thread took
 * what or how many threads there are, and each kernel's machine code is
 * byte for byte what it is when compiled with the others (the pipelines
 * work per function; only a call of another kernel is a relocation
 * instead of a displacement).
 * The JIT and the other outputs keep one module (cg_generate). */

/* The order in which the parts are generated (a millisecond or so each);
 * the descriptor goes with the last.  What takes the time is optimizing
 * and code-generating them, and those go largest first (job_sort). */
static const ir_kernel_kind part_order[KER__COUNT] = {
	KER_LOGLIK_GRAD, KER_COMPLETE, KER_LOGP_BATCH, KER_OBJECTIVE, KER_CONDITIONALS, KER_INIT, KER_LOGP,
	KER_SAMPLE,
};

enum { MAX_WORKERS = 4 };

typedef struct part {
	unsigned mask;               /* bit k: kernel kind k */
	bool descriptor;
	/* generated, waiting for its passes (its context is nobody's meanwhile) */
	LLVMOrcThreadSafeContextRef tsctx;
	LLVMModuleRef mod;
	LLVMValueRef cold[KER__COUNT];
	int ncold;
	size_t size;                 /* instructions in its functions: its cost */
	LLVMMemoryBufferRef obj;
	char *err;
} part;

/* Two phases: the workers generate every part, then optimize and
 * code-generate them, largest first, so that the threads end together
 * (longest processing time first).  The cost of a kernel is in the code
 * generation makes of it, not in the model: FVSBN's log p, tiled over
 * pairs of positions, is its largest part, NADE's gradient is. */
typedef struct job {
	const ir_module *m;
	const cg_options *o;
	part parts[KER__COUNT];      /* in kernel order: the order of the output */
	int nparts;
	int order[KER__COUNT];       /* part indices, in part_order; sorted by size once generated */
	int next_gen;                /* the next of order[] to generate, under lock */
	int generated;               /* how many are, under lock */
	int next;                    /* the next of order[] to finish, under lock */
	pthread_mutex_t lock;
	pthread_cond_t all_generated;
} job;

typedef struct worker {
	job *j;
	cg_unit *u;                  /* its target machine; a module per part in turn */
} worker;

static size_t module_size(LLVMModuleRef mod)
{
	size_t n = 0;
	for (LLVMValueRef f = LLVMGetFirstFunction(mod); f; f = LLVMGetNextFunction(f))
		for (LLVMBasicBlockRef b = LLVMGetFirstBasicBlock(f); b; b = LLVMGetNextBasicBlock(b))
			for (LLVMValueRef i = LLVMGetFirstInstruction(b); i; i = LLVMGetNextInstruction(i))
				n++;
	return n;
}

/* Drops the module the unit holds. */
static void unit_drop_module(cg_unit *u)
{
	if (u->mod)
		LLVMDisposeModule(u->mod);
	if (u->tsctx)
		LLVMOrcDisposeThreadSafeContext(u->tsctx);
	u->mod = NULL;
	u->tsctx = NULL;
	u->ctx = NULL;
}

/* Phase 1: generates part p with w's target machine and leaves the
 * module in the part (or its error). */
static void generate_part(worker *w, part *p)
{
	cg_unit *u = w->u;
	if (unit_generate(u, w->j->m, w->j->o, p->mask, p->descriptor, p->cold, &p->ncold, &p->err) == 0 &&
	    take_llvm_error(u, &p->err) == 0) {
		p->tsctx = u->tsctx;
		p->mod = u->mod;
		p->size = module_size(p->mod);
		u->tsctx = NULL;
		u->mod = NULL;
		u->ctx = NULL;
	} else if (!p->err) {
		set_err(&p->err, NULL);
	}
	unit_drop_module(u);
}

/* Phase 2: optimizes and code-generates part p's module with w's target
 * machine, leaving its object (or its error) in the part. */
static void finish_part(worker *w, part *p)
{
	if (!p->mod)
		return; /* its generation failed: the error is in the part */
	cg_unit *u = w->u;
	u->tsctx = p->tsctx;
	u->mod = p->mod;
	u->ctx = LLVMOrcThreadSafeContextGetContext(u->tsctx);
	p->tsctx = NULL;
	p->mod = NULL;
	/* LLVM's errors from here on go to this unit */
	LLVMContextSetDiagnosticHandler(u->ctx, cg_llvm_diagnostic, u);
	if (run_passes(u, p->cold, p->ncold, &p->err) == 0 && take_llvm_error(u, &p->err) == 0) {
		char *why;
		p->obj = emit_memory(u, u->mod, LLVMObjectFile, &why);
		if (!p->obj)
			set_err(&p->err, cg_fmt("cannot emit an object: %s", why ? why : "LLVM gave no reason"));
		free(why);
		if (take_llvm_error(u, &p->err) < 0 && p->obj) {
			LLVMDisposeMemoryBuffer(p->obj);
			p->obj = NULL;
		}
	} else if (!p->err) {
		set_err(&p->err, NULL);
	}
	unit_drop_module(u);
}

/* Orders the parts by size, largest first; equal sizes keep part_order. */
static void job_sort(job *j)
{
	for (int a = 1; a < j->nparts; a++) {
		int x = j->order[a], b = a;
		for (; b > 0 && j->parts[j->order[b - 1]].size < j->parts[x].size; b--)
			j->order[b] = j->order[b - 1];
		j->order[b] = x;
	}
}

static void *worker_run(void *arg)
{
	worker *w = arg;
	job *j = w->j;
	if (!w->u) {
		/* the first worker's machine was made before the threads, so a
		 * bad target is reported there; the others make theirs here, in
		 * parallel with the first part (a machine is about 0.4 ms) */
		char *e = NULL;
		w->u = unit_new(j->m, j->o, &e);
		free(e);
		if (!w->u)
			return NULL; /* fewer threads, not an error: the others take the parts */
	}
	pthread_mutex_lock(&j->lock);
	while (j->next_gen < j->nparts) {
		int i = j->order[j->next_gen++];
		pthread_mutex_unlock(&j->lock);
		generate_part(w, &j->parts[i]);
		pthread_mutex_lock(&j->lock);
		if (++j->generated == j->nparts) {
			job_sort(j);
			pthread_cond_broadcast(&j->all_generated);
		}
	}
	while (j->generated < j->nparts)
		pthread_cond_wait(&j->all_generated, &j->lock);
	for (;;) {
		int i = j->next < j->nparts ? j->order[j->next++] : -1;
		pthread_mutex_unlock(&j->lock);
		if (i < 0)
			break;
		finish_part(w, &j->parts[i]);
		pthread_mutex_lock(&j->lock);
	}
	cg_unit_free(w->u); /* while the others finish their parts */
	w->u = NULL;
	return NULL;
}

/* Whether the triple's objects are ELF, which elf_merge.c can combine. */
static bool elf_triple(const char *triple)
{
	static const char *const os[] = { "-linux", "-freebsd", "-netbsd", "-openbsd", "-elf" };
	for (size_t i = 0; i < sizeof os / sizeof os[0]; i++)
		if (strstr(triple, os[i]))
			return true;
	return false;
}

/* One module, one thread: cg_generate, then the object into malloc'd
 * memory. */
static int build_object_serial(const ir_module *m, const cg_options *o, void **data, size_t *size, char **err)
{
	cg_unit *u = cg_generate(m, o, err);
	if (!u)
		return -1;
	char *why;
	LLVMMemoryBufferRef buf = emit_memory(u, u->mod, LLVMObjectFile, &why);
	int r = 0;
	if (!buf) {
		set_err(err, cg_fmt("cannot emit an object: %s", why ? why : "LLVM gave no reason"));
		r = -1;
	} else if (take_llvm_error(u, err) < 0) {
		LLVMDisposeMemoryBuffer(buf);
		r = -1;
	} else {
		*size = LLVMGetBufferSize(buf);
		*data = malloc(*size ? *size : 1);
		if (*data) {
			memcpy(*data, LLVMGetBufferStart(buf), *size);
		} else {
			set_err(err, NULL);
			r = -1;
		}
		LLVMDisposeMemoryBuffer(buf);
	}
	free(why);
	cg_unit_free(u);
	return r;
}

static int write_file(const char *path, const void *data, size_t size, char **err)
{
	char *tmp, *dest;
	int fd = tmp_beside(path, &tmp, &dest, err);
	if (fd < 0)
		return -1;
	const char *p = data;
	bool ok = true;
	while (size > 0 && ok) {
		ssize_t w = write(fd, p, size);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			set_err(err, cg_fmt("%s: %s", path, w < 0 ? strerror(errno) : "write error"));
			ok = false;
		} else {
			p += w;
			size -= (size_t)w;
		}
	}
	if (close(fd) != 0 && ok) {
		set_err(err, cg_fmt("%s: %s", path, strerror(errno)));
		ok = false;
	}
	return tmp_finish(tmp, dest, path, ok, err);
}

int cg_build_object_memory(const ir_module *m, const cg_options *o, void **data, size_t *size, char **err)
{
	cg_options defaults = { .opt_level = 2 };
	if (!o)
		o = &defaults;
	*data = NULL;
	*size = 0;
	worker w[MAX_WORKERS] = { { 0 } };
	w[0].u = unit_new(m, o, err);
	if (!w[0].u)
		return -1;
	job j = { .m = m, .o = o, .lock = PTHREAD_MUTEX_INITIALIZER, .all_generated = PTHREAD_COND_INITIALIZER };
	int last = -1;
	for (int k = 0; k < KER__COUNT; k++)
		if (m->kernels[k])
			j.parts[j.nparts++].mask = 1u << k;
	for (int t = 0; t < KER__COUNT; t++)
		for (int i = 0; i < j.nparts; i++)
			if (j.parts[i].mask == 1u << part_order[t])
				j.order[last = j.next++] = i;
	j.next = 0;
	if (j.nparts < 2 || last != j.nparts - 1 || !elf_triple(w[0].u->triple)) {
		cg_unit_free(w[0].u);
		return build_object_serial(m, o, data, size, err);
	}
	j.parts[j.order[last]].descriptor = true;

	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int nw = cpus < 1 ? 1 : cpus > MAX_WORKERS ? MAX_WORKERS : (int)cpus;
	if (nw > j.nparts)
		nw = j.nparts;
	pthread_t th[MAX_WORKERS];
	int started = 1;
	for (int i = 0; i < nw; i++)
		w[i].j = &j;
	for (int i = 1; i < nw; i++, started++)
		if (pthread_create(&th[i], NULL, worker_run, &w[i]) != 0)
			break; /* the threads there are take the rest */
	worker_run(&w[0]);
	for (int i = 1; i < started; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < nw; i++)
		cg_unit_free(w[i].u);

	int r = 0;
	elf_input in[KER__COUNT];
	for (int i = 0; i < j.nparts && r == 0; i++) {
		if (j.parts[i].err) {
			set_err(err, j.parts[i].err);
			j.parts[i].err = NULL;
			r = -1;
		} else {
			in[i].data = LLVMGetBufferStart(j.parts[i].obj);
			in[i].size = LLVMGetBufferSize(j.parts[i].obj);
		}
	}
	void *obj = r == 0 ? elf_merge(in, j.nparts, size, NULL) : NULL;
	for (int i = 0; i < j.nparts; i++) {
		if (j.parts[i].obj)
			LLVMDisposeMemoryBuffer(j.parts[i].obj);
		free(j.parts[i].err);
	}
	if (r == 0 && !obj) /* objects elf_merge.c does not know: one module then */
		return build_object_serial(m, o, data, size, err);
	*data = obj;
	return r;
}

int cg_build_object(const ir_module *m, const cg_options *o, const char *path, char **err)
{
	void *obj;
	size_t size;
	if (cg_build_object_memory(m, o, &obj, &size, err) < 0)
		return -1;
	int r = write_file(path, obj, size, err);
	free(obj);
	return r;
}

/* ---------------------------------------------------------------- emit */

/* A temporary file beside `path` (so the final rename stays on one file
 * system), "<dir>/<name>.tmpXXXXXX" with the name cut as libchain's
 * temporaries' names are (chain__tmp_keep):
 * returns its open descriptor, its malloc'd name in *tmp and in *dest what
 * it is to be renamed over (malloc'd), or -1.  libchain's
 * chain__atomic_target says where an output goes: beside the file a
 * symbolic link at `path` names (-o /dev/stdout renamed a file over the
 * link, for every process on the machine); in place, *tmp and *dest NULL,
 * when `path` is something other than a file or a directory (/dev/null, a
 * FIFO: a rename would replace the device node with a file) or the file
 * chain's own stdout or stderr is redirected to (appended to: the
 * redirection has emptied it, or wants it appended to). */
static int tmp_beside(const char *path, char **tmp, char **dest, char **err)
{
	*tmp = *dest = NULL;
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		set_err(err, cg_fmt("%s: is a directory", path));
		return -1;
	}
	chain_target t = chain__atomic_target(path, dest);
	if (t != CHAIN_TARGET_RENAME) {
		int fd = open(path, O_WRONLY | O_CLOEXEC | (t == CHAIN_TARGET_OWN_STREAM ? O_APPEND : 0));
		if (fd < 0)
			set_err(err, cg_fmt("%s: %s", path, strerror(errno)));
		return fd;
	}
	if (!*dest && !(*dest = cg_strdup(path))) {
		set_err(err, NULL);
		return -1;
	}
	*tmp = cg_fmt("%.*s.tmpXXXXXX", chain__tmp_keep(*dest), *dest); /* mkstemp's template */
	int fd = *tmp ? mkstemp(*tmp) : -1;
	if (fd < 0) {
		set_err(err, *tmp ? cg_fmt("%s: %s", path, strerror(errno)) : NULL);
		free(*tmp);
		free(*dest);
		*tmp = *dest = NULL;
		return -1;
	}
	fchmod(fd, 0644);
	return fd;
}

/* Moves a finished temporary file over its destination (ok) or removes it
 * (nothing to do when the output was written in place: tmp_beside). */
static int tmp_finish(char *tmp, char *dest, const char *path, bool ok, char **err)
{
	if (!tmp)
		return ok ? 0 : -1;
	int r = 0;
	if (ok && rename(tmp, dest) != 0) {
		set_err(err, cg_fmt("%s: %s", path, strerror(errno)));
		ok = false;
	}
	if (!ok) {
		unlink(tmp);
		r = -1;
	}
	free(tmp);
	free(dest);
	return r;
}

int cg_file_open(cg_file *out, const char *path, char **err)
{
	int fd = tmp_beside(path, &out->tmp, &out->dest, err);
	out->f = fd < 0 ? NULL : fdopen(fd, "w");
	if (fd >= 0 && !out->f) {
		set_err(err, cg_fmt("%s: %s", path, strerror(errno)));
		close(fd);
		tmp_finish(out->tmp, out->dest, path, false, err);
		out->tmp = out->dest = NULL;
	}
	return out->f ? 0 : -1;
}

int cg_file_close(cg_file *out, const char *path, bool ok, char **err)
{
	/* the reason: fclose's, which flushes what is left and fails as the
	 * write did (ENOSPC, EFBIG), else that of the write that set ferror */
	int e = ferror(out->f) ? errno : 0;
	if (e)
		ok = false;
	if (fclose(out->f) != 0) {
		e = errno;
		ok = false;
	}
	out->f = NULL;
	if (!ok && err && !*err)
		set_err(err, e ? cg_fmt("%s: %s", path, strerror(e)) : cg_fmt("%s: write error", path));
	int r = tmp_finish(out->tmp, out->dest, path, ok, err);
	out->tmp = out->dest = NULL;
	return r;
}

int cg_emit(cg_unit *u, cg_emit_kind kind, const char *path, char **err)
{
	if (!u || !u->mod) {
		set_err(err, cg_strdup("internal error: cg_emit without a module"));
		return -1;
	}
	if (kind == EMIT_HEADER) {
		set_err(err, cg_strdup("internal error: the header comes from cg_emit_header"));
		return -1;
	}
	/* the output in memory first, then written through write_file's one
	 * descriptor: LLVM opening the path again after tmp_beside would block
	 * for a second reader when the path is a FIFO written in place */
	char *text = NULL;
	LLVMMemoryBufferRef buf = NULL;
	bool ok = true;
	switch (kind) {
	case EMIT_OBJ: case EMIT_ASM: {
		/* codegen rewrites the IR it runs on: emit from a copy, so the unit
		 * can still be emitted again or handed to the JIT */
		LLVMModuleRef copy = LLVMCloneModule(u->mod);
		char *why;
		buf = emit_memory(u, copy, kind == EMIT_OBJ ? LLVMObjectFile : LLVMAssemblyFile, &why);
		if (!buf) {
			set_err(err, cg_fmt("%s: %s", path, why ? why : "cannot emit"));
			ok = false;
		}
		free(why);
		LLVMDisposeModule(copy);
		break;
	}
	case EMIT_LLVM:
		text = LLVMPrintModuleToString(u->mod);
		break;
	case EMIT_BC:
		buf = LLVMWriteBitcodeToMemoryBuffer(u->mod);
		if (!buf) {
			set_err(err, cg_fmt("%s: cannot write bitcode", path));
			ok = false;
		}
		break;
	case EMIT_HEADER:
		break;
	}
	if (ok && take_llvm_error(u, err) < 0)
		ok = false;
	if (ok && !text && !buf) {
		set_err(err, NULL); /* out of memory */
		ok = false;
	}
	int r = -1;
	if (ok && text)
		r = write_file(path, text, strlen(text), err);
	else if (ok && buf)
		r = write_file(path, LLVMGetBufferStart(buf), LLVMGetBufferSize(buf), err);
	if (text)
		LLVMDisposeMessage(text);
	if (buf)
		LLVMDisposeMemoryBuffer(buf);
	return r;
}
