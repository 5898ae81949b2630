/* elf_merge.h -- several relocatable ELF objects as one (what `ld -r`
 * does for the simple objects LLVM emits for us), so that parts of a model
 * compiled on several threads can be written as a single object file. */
#ifndef ELF_MERGE_H
#define ELF_MERGE_H

#include <stddef.h>

typedef struct elf_input {
	const void *data;
	size_t size;
} elf_input;

/* The objects in[0..n) as one relocatable object: every section of each
 * (in input order), one symbol table in which a global defined in one input
 * and undefined in another is the defined one.  Returns the malloc'd bytes
 * (*size their length), or NULL with a malloc'd reason in *why (may be NULL)
 * for anything but 64-bit little-endian ELF relocatable objects of one
 * machine without section groups, or for a symbol defined twice. */
void *elf_merge(const elf_input *in, int n, size_t *size, char **why);

#endif
