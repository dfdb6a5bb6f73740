/*
 * blas.c — OpenBLAS kernel selection, a self-test against the naive
 * reference, and the sgemm wrapper the layers use.
 *
 * Why re-exec: OpenBLAS (DYNAMIC_ARCH) picks its kernel in a constructor that
 * runs before main() and offers no call to change it afterwards; the only knob
 * is OPENBLAS_CORETYPE in the environment at load time. So blas_boot() sets it
 * and executes /proc/self/exe again with the same argv. Two environment
 * variables carry state across the exec: SM_BLAS_BOOTED (the stage:
 * "1" after choosing, "fallback" after a failed self-test) and
 * SM_BLAS_PREV (the OPENBLAS_CORETYPE the user had, "" if none), so a
 * fallback restores exactly what the system would have done.
 *
 * Built with oneDNN the same exec also sets OMP_WAIT_POLICY=passive unless
 * the user set it or GOMP_SPINCOUNT (libgomp reads them at load time too):
 * GNU OpenMP's threads otherwise spin at every barrier, and oneDNN has
 * several per convolution; on a shared 2-core machine (load 12) that spinning
 * was 55% of a 2-thread training step's samples, and passive waiting ran the
 * step in 216-292 ms instead of 538-560 ms (bench_cnn, interleaved).
 */
#include "siamese/blas.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#ifdef SM_HAVE_DNNL
#include <omp.h>
#endif

#include "siamese/common.h"
#include "siamese/log.h"
#include "siamese/rng.h"

static const char *cpu_best_kernel(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
    return NULL;
}

static void reexec(char **argv) {
    /* Exec the binary by its real path, not /proc/self/exe, so the process
     * keeps its name ("siamesed", not "exe") for ps, pkill and logs. */
    char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n > 0) {
        path[n] = 0;
        execv(path, argv);
    }
    execv("/proc/self/exe", argv);
    log_warn("blas: cannot re-execute to select the kernel (%s); keeping %s", strerror(errno),
             blas_kernel());
}

/* After a re-exec: verify the chosen kernel, and fall back once if it is wrong. */
static int boot_verify(char **argv, const char *stage) {
    if (strcmp(stage, "1") != 0)
        return 0;
    char err[SM_ERRMAX];
    if (blas_selftest(err) == 0)
        return 0;
    log_warn("blas: kernel %s failed its self-test (%s); falling back to the system's choice",
             blas_kernel(), err);
    const char *prev = getenv("SM_BLAS_PREV");
    if (prev && *prev)
        setenv("OPENBLAS_CORETYPE", prev, 1);
    else
        unsetenv("OPENBLAS_CORETYPE");
    setenv("SM_BLAS_BOOTED", "fallback", 1);
    reexec(argv);
    return 0;
}

/* Whether OpenMP's wait policy needs an exec to become passive (set here). */
static int omp_passive(void) {
#ifdef SM_HAVE_DNNL
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT"))
        return 0;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    return 1;
#else
    return 0;
#endif
}

/* No kernel to change: exec only for the wait policy. */
static int boot_keep(char **argv, int omp) {
    if (omp) {
        setenv("SM_BLAS_BOOTED", "omp", 1);
        reexec(argv);
    }
    return 0;
}

int blas_boot(char **argv, char *err) {
    const char *mode = getenv("SIAMESED_BLAS_KERNEL");
    const char *stage = getenv("SM_BLAS_BOOTED");
    if (!mode || !*mode)
        mode = "auto";
    if (stage)
        return boot_verify(argv, stage);
    const int omp = omp_passive();
    if (strcmp(mode, "system") == 0)
        return boot_keep(argv, omp);
    const char *want = mode;
    if (strcmp(mode, "auto") == 0)
        want = cpu_best_kernel();
    else if (strspn(mode, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") !=
                 strlen(mode) ||
             strlen(mode) > 32)
        return sm_err(err, -EINVAL, "blas_kernel: '%s' is not auto, system or a kernel name", mode);
    if (!want || strcasecmp(want, blas_kernel()) == 0)
        return boot_keep(argv, omp);
    const char *prev = getenv("OPENBLAS_CORETYPE");
    setenv("SM_BLAS_PREV", prev ? prev : "", 1);
    setenv("OPENBLAS_CORETYPE", want, 1);
    setenv("SM_BLAS_BOOTED", "1", 1);
    reexec(argv);
    return 0;
}

const char *blas_kernel(void) {
    const char *name = openblas_get_corename();
    return name ? name : "unknown";
}

static _Atomic int n_threads = 1;

/* Built with oneDNN, one pool of threads does everything: oneDNN's OpenMP
 * threads, and OpenBLAS single-threaded inside them (blas_sgemm() splits the
 * rows), so that OpenBLAS's own threads, which spin after each call, never
 * compete with OpenMP's on a machine with few cores. */
void blas_set_threads(int n) {
    n = n < 1 ? 1 : n;
    n_threads = n;
#ifdef SM_HAVE_DNNL
    openblas_set_num_threads(1);
    omp_set_num_threads(n);
#else
    openblas_set_num_threads(n);
#endif
}

/* Set on a thread that runs its own share of a data-parallel step. */
static _Thread_local int solo;

int blas_threads(void) {
    return solo ? 1 : n_threads;
}

int blas_solo_available(void) {
#ifdef SM_HAVE_DNNL
    return 1;
#else
    return 0; /* OpenBLAS's thread count is the process's */
#endif
}

void blas_solo(int on) {
    solo = on;
#ifdef SM_HAVE_DNNL
    omp_set_num_threads(on ? 1 : n_threads); /* this thread's own pool size */
#endif
}

static void sgemm1(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void blas_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc) {
#ifdef SM_HAVE_DNNL
    const int T = blas_threads();
    if (T > 1 && M >= 32 && (double)M * N * K >= (double)(1 << 21) && !omp_in_parallel()) {
        /* Row blocks of C (multiples of 16) on the pool, one OpenBLAS call each. */
        const int per = ((M + T - 1) / T + 15) & ~15;
#pragma omp parallel for num_threads(T) schedule(static, 1)
        for (int t = 0; t < T; t++) {
            const int m0 = t * per, m1 = m0 + per < M ? m0 + per : M;
            if (m0 < m1)
                sgemm1(ta, tb, m1 - m0, N, K, alpha, ta ? A + m0 : A + (size_t)m0 * lda, lda, B,
                       ldb, beta, C + (size_t)m0 * ldc, ldc);
        }
        return;
    }
#endif
    sgemm1(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void blas_sgemm_ref(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0;
            for (int k = 0; k < K; k++) {
                float a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                acc += (double)a * b;
            }
            float *c = &C[(size_t)i * ldc + j];
            *c = (float)(alpha * acc + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
}

/* One product of the self-test: op(A)(M,K) . op(B)(K,N), compared element by
 * element with the reference relative to sum |a||b| (the rounding bound). */
static int selftest_one(int ta, int tb, int M, int N, int K, Rng *rng, char *err) {
    size_t na = (size_t)M * K, nb = (size_t)K * N, nc = (size_t)M * N;
    float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b);
    float *c = malloc(nc * sizeof *c), *r = malloc(nc * sizeof *r);
    float *aa = malloc(na * sizeof *aa), *ab = malloc(nb * sizeof *ab),
          *rb = malloc(nc * sizeof *rb);
    int rc = 0;
    if (!a || !b || !c || !r || !aa || !ab || !rb) {
        rc = sm_err(err, -ENOMEM, "blas self-test: out of memory");
        goto out;
    }
    for (size_t i = 0; i < na; i++)
        aa[i] = fabsf(a[i] = rng_uniform(rng) * 2 - 1);
    for (size_t i = 0; i < nb; i++)
        ab[i] = fabsf(b[i] = rng_uniform(rng) * 2 - 1);
    int lda = ta ? M : K, ldb = tb ? K : N;
    blas_sgemm(ta, tb, M, N, K, 1.0f, a, lda, b, ldb, 0.0f, c, N);
    blas_sgemm_ref(ta, tb, M, N, K, 1.0f, a, lda, b, ldb, 0.0f, r, N);
    blas_sgemm_ref(ta, tb, M, N, K, 1.0f, aa, lda, ab, ldb, 0.0f, rb, N);
    for (size_t i = 0; i < nc; i++)
        if (!(fabsf(c[i] - r[i]) <= 1e-4f * rb[i] + 1e-6f)) {
            rc = sm_err(err, -EDOM, "sgemm %c%c %dx%dx%d: element %zu is %g, reference %g",
                        ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, i, c[i], r[i]);
            break;
        }
out:
    free(a), free(b), free(c), free(r), free(aa), free(ab), free(rb);
    return rc;
}

int blas_selftest(char *err) {
    /* The three products of a training step of the reference network (64
     * rows: the same kernels as a full batch at a quarter of the reference
     * loop's cost, which every start pays) and an odd shape for the edges. */
    static const struct {
        int ta, tb, M, N, K;
    } cases[] = {
        {0, 1, 64, 128, 784},
        {0, 0, 64, 128, 128},
        {1, 0, 128, 784, 64},
        {0, 1, 37, 19, 53},
    };
    Rng rng;
    rng_seed(&rng, 42);
    for (size_t i = 0; i < SM_ARRAY_LEN(cases); i++) {
        int rc =
            selftest_one(cases[i].ta, cases[i].tb, cases[i].M, cases[i].N, cases[i].K, &rng, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}
