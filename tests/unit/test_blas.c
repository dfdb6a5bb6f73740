/*
 * test_blas.c — the BLAS kernel the binary actually runs (after blas_boot()'s
 * selection, exactly as main() does it) against the naive reference, at the
 * trainer's shapes and odd ones, every transpose combination.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "siamese/blas.h"
#include "siamese/rng.h"

#include "check_util.h"

static Rng rng;

static void fill(float *x, size_t n, float lo, float hi) {
    check_fill(&rng, x, n, lo, hi);
}

/* Every shape with one thread and with three (built with oneDNN, blas_sgemm
 * splits C's rows over the OpenMP pool: blocks of 16, a ragged last one). */
START_TEST(sgemm_matches_reference) {
    static const int shapes[][5] = {
        {0, 1, 256, 128, 784}, {0, 0, 256, 784, 128}, {1, 0, 128, 784, 256}, {1, 1, 17, 9, 33},
        {0, 0, 1, 1, 1},       {1, 1, 203, 130, 97},  {0, 1, 203, 130, 97},  {1, 0, 45, 700, 120}};
    for (size_t s = 0; s < 2 * sizeof shapes / sizeof shapes[0]; s++) {
        blas_set_threads(s % 2 ? 3 : 1);
        const int *sh = shapes[s / 2];
        int ta = sh[0], tb = sh[1], M = sh[2], Nn = sh[3], K = sh[4];
        float *a = malloc((size_t)M * K * 4), *b = malloc((size_t)K * Nn * 4);
        float *c1 = malloc((size_t)M * Nn * 4), *c2 = malloc((size_t)M * Nn * 4);
        fill(a, (size_t)M * K, -1, 1), fill(b, (size_t)K * Nn, -1, 1),
            fill(c1, (size_t)M * Nn, -1, 1);
        memcpy(c2, c1, (size_t)M * Nn * 4);
        blas_sgemm(ta, tb, M, Nn, K, 0.5f, a, ta ? M : K, b, tb ? K : Nn, 2.0f, c1, Nn);
        blas_sgemm_ref(ta, tb, M, Nn, K, 0.5f, a, ta ? M : K, b, tb ? K : Nn, 2.0f, c2, Nn);
        char what[64];
        snprintf(what, sizeof what, "sgemm %c%c %dx%dx%d, %d threads", ta ? 'T' : 'N',
                 tb ? 'T' : 'N', M, Nn, K, blas_threads());
        check_close(c1, c2, (size_t)M * Nn, 1e-4, what);
        free(a), free(b), free(c1), free(c2);
    }
    blas_set_threads(1);
    char err[256];
    ck_assert_msg(blas_selftest(err) == 0, "%s", err);
}
END_TEST

START_TEST(auto_mode_picks_the_cpus_kernel) {
    /* Under the default "auto" mode an AVX-512 machine must run SkylakeX. */
    const char *mode = getenv("SIAMESED_BLAS_KERNEL");
    __builtin_cpu_init();
    if ((!mode || strcmp(mode, "auto") == 0) && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        ck_assert_str_eq(blas_kernel(), "SkylakeX");
    ck_assert(strcasecmp(blas_kernel(), "Prescott") != 0 || !__builtin_cpu_supports("avx2"));
}
END_TEST

int main(int argc, char **argv) {
    (void)argc;
    char err[256];
    if (blas_boot(argv, err) < 0)
        return 2;
    rng_seed(&rng, 99);
    fprintf(stderr, "blas kernel: %s\n", blas_kernel());
    Suite *s = suite_create("blas");
    TCase *tc = tcase_create("kernel");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, sgemm_matches_reference);
    tcase_add_test(tc, auto_mode_picks_the_cpus_kernel);
    suite_add_tcase(s, tc);
    int failed = check_run(s);
    return failed ? 1 : 0;
}
