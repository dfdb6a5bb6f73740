/*
 * simd.h — SM_CLONES: compile a hot element-wise loop for several ISAs
 * (baseline x86-64, AVX2, AVX-512F) and pick one at load time, so the binary
 * runs anywhere and still uses the widest vectors the CPU has. GCC only
 * (clang wants the attribute on a function's first declaration, here the
 * public header) and off under AddressSanitizer, whose instrumentation does
 * not mix with ifunc resolvers.
 */
#ifndef SIAMESE_SIMD_H
#define SIAMESE_SIMD_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                             \
    !defined(__SANITIZE_ADDRESS__)
#define SM_CLONES __attribute__((target_clones("default", "avx2", "avx512f")))
/* For a loop allowed to fuse multiply and add: FMA in the middle clone (GCC's
 * "avx2" has none), so every host with FMA computes the same bits. */
#define SM_CLONES_FMA __attribute__((target_clones("default", "fma", "avx512f")))
#else
#define SM_CLONES
#define SM_CLONES_FMA
#endif

#endif
