/* alloc.c -- zeroed 64-byte aligned buffers (chain/alloc.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chain/alloc.h"

enum { CHAIN_ALIGN = 64 };

void *chain_calloc_aligned(size_t count, size_t size)
{
	if (size && count > SIZE_MAX / size)
		return NULL;
	size_t bytes = count * size;
	if (bytes > SIZE_MAX - CHAIN_ALIGN)
		return NULL;
	/* aligned_alloc wants a multiple of the alignment */
	bytes = (bytes + CHAIN_ALIGN - 1) / CHAIN_ALIGN * CHAIN_ALIGN;
	void *p = aligned_alloc(CHAIN_ALIGN, bytes ? bytes : CHAIN_ALIGN);
	if (p)
		memset(p, 0, bytes ? bytes : CHAIN_ALIGN);
	return p;
}
