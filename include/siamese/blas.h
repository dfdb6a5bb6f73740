/*
 * blas.h — the one place that talks to OpenBLAS.
 *
 * Kernel choice. Debian's OpenBLAS 0.3.21 is built with DYNAMIC_ARCH but does
 * not recognise recent Xeons and falls back to a slow kernel ("Prescott"). It
 * reads OPENBLAS_CORETYPE once, in a library constructor that runs before
 * main(), so the only way to pick a kernel at run time is to set the variable
 * and re-execute. blas_boot() does exactly that, first thing in main():
 *
 *   mode "auto"   (default) the best kernel this CPU supports (SkylakeX with
 *                 AVX-512, Haswell with AVX2/FMA, otherwise what OpenBLAS chose),
 *                 overriding OPENBLAS_CORETYPE; after the re-exec the kernel is
 *                 checked against the naive reference and, if it disagrees, the
 *                 process re-executes once more with the system's own choice.
 *   mode "system" leave OpenBLAS alone (honours OPENBLAS_CORETYPE).
 *   other         an OpenBLAS core name, e.g. "Haswell", used as is.
 *
 * The mode comes from SIAMESED_BLAS_KERNEL (default "auto").
 */
#ifndef SIAMESE_BLAS_H
#define SIAMESE_BLAS_H

#include <stddef.h>

/* Selects the kernel as described above; may not return (execv). argv must be
 * main's argv. Returns 0, or a negative errno with err filled when the mode is
 * invalid. Call before any other OpenBLAS use and before starting threads. */
int blas_boot(char **argv, char *err);

/* Name of the kernel OpenBLAS runs, e.g. "SkylakeX" (static string). */
const char *blas_kernel(void);

/* Sets the number of threads (>= 1) of the numeric kernels: OpenBLAS's, or,
 * built with oneDNN, the OpenMP pool that runs oneDNN and splits sgemm. */
void blas_set_threads(int n);
/* The last blas_set_threads() (1 before any), or 1 on a solo thread. */
int blas_threads(void);

/* Data parallelism: blas_solo(1) makes the calling thread's kernels run on
 * that thread alone (its OpenMP pool of 1, blas_sgemm unsplit) until
 * blas_solo(0), so that several threads can each compute their own share.
 * blas_solo_available() is 0 when that cannot be (built without oneDNN,
 * OpenBLAS's thread count is the whole process's); blas_solo() then does
 * nothing useful and callers should not split their work. */
int blas_solo_available(void);
void blas_solo(int on);

/* Compares OpenBLAS sgemm with the naive reference at the trainer's shapes.
 * Returns 0 if every element agrees within a relative 1e-4, -EDOM otherwise
 * (err names the worst element). */
int blas_selftest(char *err);

/* C(M,N) = alpha * op(A) * op(B) + beta * C, row-major, as cblas_sgemm.
 * ta/tb: 0 = as stored, 1 = transposed. lda/ldb/ldc are row strides. */
void blas_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);
/* The naive triple loop, same contract: the reference blas_sgemm is tested against. */
void blas_sgemm_ref(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc);

#endif
