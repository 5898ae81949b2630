/* chain/alloc.h -- buffers for the kernels, aligned for their vectors.
 *
 * The kernels take theta, observations and gradients at any address
 * aligned for a real, but with 512-bit vectors a load that crosses a cache
 * line costs two, and malloc aligns to 16 bytes only (large blocks sit 16
 * bytes past a page).  libchain and `chain` allocate what they hand to the
 * kernels here.
 */
#ifndef CHAIN_ALLOC_H
#define CHAIN_ALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* count * size bytes, zeroed, 64-byte aligned; NULL when out of memory or
 * when the size overflows.  Release with free(). */
void *chain_calloc_aligned(size_t count, size_t size);

#ifdef __cplusplus
}
#endif
#endif
