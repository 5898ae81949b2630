/* vector_clones.h -- libchain-private: loops over every param, built for
 * the CPU they run on.
 *
 * libchain is compiled for the baseline of its architecture (x86-64: SSE2,
 * two doubles a vector), but the training step's passes over theta (the
 * gradient sum, Adam's sqrt and division) run as fast as the vectors are
 * wide.  CHAIN_VECTOR_CLONES before such a function has the compiler build
 * it for AVX-512, AVX2 and the baseline, and the dynamic loader pick the
 * best the CPU has (GNU ifunc).  Elsewhere it is nothing.
 */
#ifndef CHAIN_VECTOR_CLONES_H
#define CHAIN_VECTOR_CLONES_H

#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(CHAIN_NO_CLONES)
#define CHAIN_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CHAIN_VECTOR_CLONES
#endif

#endif
