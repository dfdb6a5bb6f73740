/*
 * bench_sgemm.c — what OpenBLAS sgemm alone sustains on the matrix products of
 * one training step of a Siamese MLP, i.e. the ceiling for the trainer's
 * pairs/s if everything but the products were free.
 *
 * usage: bench_sgemm [batch_pairs=128] [threads=1] [layers=784,128,128,128]
 * Prints one JSON line: kernel, threads, ms per step, GFLOP/s, pairs/s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siamese/blas.h"
#include "siamese/common.h"
#include "siamese/rng.h"

static float *randv(size_t n, Rng *r) {
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n && v; i++)
        v[i] = rng_uniform(r) - 0.5f;
    return v;
}

int main(int argc, char **argv) {
    char err[SM_ERRMAX];
    if (blas_boot(argv, err) < 0) {
        fprintf(stderr, "bench_sgemm: %s\n", err);
        return 1;
    }
    int B = argc > 1 ? atoi(argv[1]) : 128, threads = argc > 2 ? atoi(argv[2]) : 1;
    int dims[9] = {784, 128, 128, 128}, L = 3;
    if (argc > 3) {
        L = -1;
        for (char *t = strtok(argv[3], ","); t && L < 8; t = strtok(NULL, ","))
            dims[++L] = atoi(t);
    }
    if (B < 1 || threads < 1 || L < 1) {
        fprintf(stderr, "usage: bench_sgemm [batch] [threads] [layers]\n");
        return 1;
    }
    blas_set_threads(threads);
    int R = 2 * B;
    Rng rng;
    rng_seed(&rng, 1);
    float *act[9], *grad[9], *w[9], *dw[9];
    for (int l = 0; l <= L; l++) {
        act[l] = randv((size_t)R * dims[l], &rng);
        grad[l] = randv((size_t)R * dims[l], &rng);
        if (l)
            w[l] = randv((size_t)dims[l] * dims[l - 1], &rng),
            dw[l] = randv((size_t)dims[l] * dims[l - 1], &rng);
    }
    double flops = 0;
    int steps = 0;
    double t0 = sm_now();
    while (sm_now() - t0 < 2.0 || steps < 20) {
        for (int l = 1; l <= L; l++) /* forward */
            blas_sgemm(0, 1, R, dims[l], dims[l - 1], 1, act[l - 1], dims[l - 1], w[l], dims[l - 1],
                       0, act[l], dims[l]);
        for (int l = L; l >= 1; l--) { /* backward: dW always, dX above the first layer */
            blas_sgemm(1, 0, dims[l], dims[l - 1], R, 1, grad[l], dims[l], act[l - 1], dims[l - 1],
                       1, dw[l], dims[l - 1]);
            if (l > 1)
                blas_sgemm(0, 0, R, dims[l - 1], dims[l], 1, grad[l], dims[l], w[l], dims[l - 1], 0,
                           grad[l - 1], dims[l - 1]);
        }
        steps++;
    }
    double dt = sm_now() - t0;
    for (int l = 1; l <= L; l++)
        flops += 2.0 * R * dims[l] * dims[l - 1] * (l > 1 ? 3 : 2);
    printf("{\"kernel\":\"%s\",\"threads\":%d,\"batch\":%d,\"ms_per_step\":%.4f,"
           "\"gflops\":%.1f,\"pairs_per_s\":%.0f}\n",
           blas_kernel(), threads, B, dt / steps * 1e3, flops * steps / dt * 1e-9,
           (double)B * steps / dt);
    return 0;
}
