/* test_elf_merge.c -- elf_merge.c: two objects LLVM emits for the host, one
 * calling a function and taking the address of a global the other
 * defines, merged into one object that LLJIT links and runs; the symbol
 * defined in one and undefined in the other is one defined symbol; the same
 * inputs give the same bytes; inputs it does not handle are refused with a
 * reason, never merged wrongly.
 */
#include <elf.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/IRReader.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>

#include "elf_merge.h"

/* f calls g and holds its address in p; g reads a private table (a
 * relocation against a section of the other object's own). */
static const char *const ir_a =
	"declare i32 @g(i32)\n"
	"@p = global ptr @g\n"
	"define i32 @f(i32 %x) {\n"
	"  %y = call i32 @g(i32 %x)\n"
	"  %z = add i32 %y, 1\n"
	"  ret i32 %z\n"
	"}\n";
static const char *const ir_b =
	"@t = private unnamed_addr constant [4 x i32] [i32 10, i32 20, i32 30, i32 40]\n"
	"define i32 @g(i32 %x) {\n"
	"  %i = and i32 %x, 3\n"
	"  %e = zext i32 %i to i64\n"
	"  %a = getelementptr [4 x i32], ptr @t, i64 0, i64 %e\n"
	"  %v = load i32, ptr %a\n"
	"  ret i32 %v\n"
	"}\n";

/* The host object of a module in LLVM's textual IR. */
static LLVMMemoryBufferRef object_of(const char *ir)
{
	LLVMInitializeNativeTarget();
	LLVMInitializeNativeAsmPrinter();
	LLVMContextRef ctx = LLVMContextCreate();
	LLVMMemoryBufferRef src = LLVMCreateMemoryBufferWithMemoryRangeCopy(ir, strlen(ir), "ir");
	LLVMModuleRef mod = NULL;
	char *msg = NULL;
	if (LLVMParseIRInContext(ctx, src, &mod, &msg)) /* takes src */
		fail_msg("parse: %s", msg);
	char *triple = LLVMGetDefaultTargetTriple();
	LLVMTargetRef t;
	if (LLVMGetTargetFromTriple(triple, &t, &msg))
		fail_msg("target: %s", msg);
	LLVMTargetMachineRef tm = LLVMCreateTargetMachine(t, triple, "generic", "", LLVMCodeGenLevelDefault,
	                                                  LLVMRelocPIC, LLVMCodeModelDefault);
	LLVMSetTarget(mod, triple);
	LLVMMemoryBufferRef obj = NULL;
	if (LLVMTargetMachineEmitToMemoryBuffer(tm, mod, LLVMObjectFile, &msg, &obj))
		fail_msg("emit: %s", msg);
	LLVMDisposeTargetMachine(tm);
	LLVMDisposeMessage(triple);
	LLVMDisposeModule(mod);
	LLVMContextDispose(ctx);
	return obj;
}

static elf_input input_of(LLVMMemoryBufferRef b)
{
	return (elf_input){ LLVMGetBufferStart(b), LLVMGetBufferSize(b) };
}

/* The symbols named `name` in a (well-formed) merged object: how many, and
 * how many of them are defined. */
static void count_symbols(const unsigned char *o, const char *name, int *n, int *defined)
{
	Elf64_Ehdr eh;
	memcpy(&eh, o, sizeof eh);
	*n = *defined = 0;
	for (unsigned i = 0; i < eh.e_shnum; i++) {
		Elf64_Shdr sh, str;
		memcpy(&sh, o + eh.e_shoff + i * sizeof sh, sizeof sh);
		if (sh.sh_type != SHT_SYMTAB)
			continue;
		memcpy(&str, o + eh.e_shoff + sh.sh_link * sizeof str, sizeof str);
		for (size_t j = 0; j < sh.sh_size / sizeof(Elf64_Sym); j++) {
			Elf64_Sym s;
			memcpy(&s, o + sh.sh_offset + j * sizeof s, sizeof s);
			if (strcmp((const char *)o + str.sh_offset + s.st_name, name) == 0) {
				(*n)++;
				*defined += s.st_shndx != SHN_UNDEF;
			}
		}
	}
}

static void test_elf_merge__two_objects__link_and_run(void **state)
{
	(void)state;
	LLVMMemoryBufferRef a = object_of(ir_a), b = object_of(ir_b);
	elf_input in[2] = { input_of(a), input_of(b) };
	size_t size = 0;
	char *why = NULL;
	unsigned char *m = elf_merge(in, 2, &size, &why);
	if (!m)
		fail_msg("elf_merge: %s", why);
	int n, defined;
	count_symbols(m, "g", &n, &defined);
	assert_int_equal(n, 1);
	assert_int_equal(defined, 1);
	count_symbols(m, "f", &n, &defined);
	assert_int_equal(defined, 1);

	/* the same inputs, the same bytes */
	size_t size2 = 0;
	unsigned char *m2 = elf_merge(in, 2, &size2, NULL);
	assert_non_null(m2);
	assert_int_equal(size, size2);
	assert_memory_equal(m, m2, size);
	free(m2);

	/* a linker takes it: f(3) = t[3] + 1, p = &g */
	LLVMOrcLLJITRef jit;
	LLVMErrorRef e = LLVMOrcCreateLLJIT(&jit, NULL);
	assert_null(e);
	LLVMMemoryBufferRef mb = LLVMCreateMemoryBufferWithMemoryRangeCopy((const char *)m, size, "merged");
	e = LLVMOrcLLJITAddObjectFile(jit, LLVMOrcLLJITGetMainJITDylib(jit), mb);
	assert_null(e);
	LLVMOrcExecutorAddress fa = 0, ga = 0, pa = 0;
	assert_null(LLVMOrcLLJITLookup(jit, &fa, "f"));
	assert_null(LLVMOrcLLJITLookup(jit, &ga, "g"));
	assert_null(LLVMOrcLLJITLookup(jit, &pa, "p"));
	int (*f)(int) = (int (*)(int))(uintptr_t)fa;
	int (*g)(int) = (int (*)(int))(uintptr_t)ga;
	assert_int_equal(f(3), 41);
	assert_int_equal(f(4), 11);
	assert_int_equal(g(1), 20);
	assert_true(*(void **)(uintptr_t)pa == (void *)(uintptr_t)ga);
	assert_null(LLVMOrcDisposeLLJIT(jit));

	free(m);
	free(why);
	LLVMDisposeMemoryBuffer(a);
	LLVMDisposeMemoryBuffer(b);
}

static void test_elf_merge__refuses__what_it_cannot_merge(void **state)
{
	(void)state;
	LLVMMemoryBufferRef a = object_of(ir_a);
	size_t size = 0;
	char *why = NULL;

	/* g defined in both */
	LLVMMemoryBufferRef b = object_of(ir_b);
	elf_input twice[2] = { input_of(b), input_of(b) };
	assert_null(elf_merge(twice, 2, &size, &why));
	assert_non_null(strstr(why, "defined twice"));

	/* not ELF, truncated, 32-bit */
	static const char text[] = "not an object at all, just some text";
	elf_input junk[2] = { input_of(a), { text, sizeof text } };
	assert_null(elf_merge(junk, 2, &size, &why));
	assert_non_null(why);
	elf_input cut[1] = { { LLVMGetBufferStart(a), 100 } };
	assert_null(elf_merge(cut, 1, &size, &why));
	unsigned char *copy = malloc(LLVMGetBufferSize(a));
	memcpy(copy, LLVMGetBufferStart(a), LLVMGetBufferSize(a));
	copy[EI_CLASS] = ELFCLASS32;
	elf_input c32[1] = { { copy, LLVMGetBufferSize(a) } };
	assert_null(elf_merge(c32, 1, &size, &why));
	assert_null(elf_merge(NULL, 0, &size, &why));

	free(copy);
	free(why);
	LLVMDisposeMemoryBuffer(a);
	LLVMDisposeMemoryBuffer(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_elf_merge__two_objects__link_and_run),
		cmocka_unit_test(test_elf_merge__refuses__what_it_cannot_merge),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
