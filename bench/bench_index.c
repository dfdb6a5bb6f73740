/*
 * bench_index.c — the index alone, without the daemon: N synthetic samples
 * (subjects of `per` samples scattered around random centres), then Q
 * queries (a random centre plus noise), each searched exactly and by the
 * int8 scan + re-rank, interleaved. Prints one JSON line per query kind with
 * the median and every run in ms, and the top-1 agreement.
 *
 * usage: bench_index [N=1000000] [dim=128] [queries=20] [threads=0] [per=10] [k=5]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siamese/common.h"
#include "siamese/index.h"
#include "siamese/rng.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void print_runs(const char *what, double *ms, int q) {
    double *s = malloc((size_t)q * sizeof *s);
    memcpy(s, ms, (size_t)q * sizeof *s);
    qsort(s, (size_t)q, sizeof *s, cmp_double);
    printf("{\"search\":\"%s\",\"median_ms\":%.2f,\"runs_ms\":[", what, s[q / 2]);
    for (int i = 0; i < q; i++)
        printf("%s%.2f", i ? "," : "", ms[i]);
    printf("]}\n");
    free(s);
}

int main(int argc, char **argv) {
    size_t N = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    int D = argc > 2 ? atoi(argv[2]) : 128, Q = argc > 3 ? atoi(argv[3]) : 20;
    int threads = argc > 4 ? atoi(argv[4]) : 0, per = argc > 5 ? atoi(argv[5]) : 10;
    int K = argc > 6 ? atoi(argv[6]) : 5;
    char err[SM_ERRMAX], name[32];
    Index *ix = NULL;
    Rng rng;
    rng_seed(&rng, 1);
    if (N < 1 || D < 1 || Q < 1 || per < 1 || K < 1 || K > 1000 || index_create(D, &ix, err) < 0) {
        fprintf(stderr, "bench_index: bad arguments\n");
        return 1;
    }
    IndexOptions o = {.threads = threads};
    size_t S = (N + (size_t)per - 1) / (size_t)per;
    float *centre = malloc(S * (size_t)D * sizeof *centre), *v = malloc((size_t)D * sizeof *v);
    for (size_t i = 0; i < S * (size_t)D; i++)
        centre[i] = rng_uniform(&rng) - 0.5f;
    if (index_set_options(ix, &o, err) < 0 || index_reserve(ix, N, S, err) < 0) {
        fprintf(stderr, "bench_index: %s\n", err);
        return 1;
    }
    double t0 = sm_now();
    for (size_t i = 0; i < N; i++) {
        size_t s = i % S;
        for (int j = 0; j < D; j++)
            v[j] = centre[s * (size_t)D + j] + 0.1f * (rng_uniform(&rng) - 0.5f);
        snprintf(name, sizeof name, "s%07zu", s);
        if (index_add(ix, (int64_t)i + 1, name, v, err) < 0) {
            fprintf(stderr, "bench_index: %s\n", err);
            return 1;
        }
    }
    fprintf(stderr, "built %zu rows in %.1f s\n", N, sm_now() - t0);
    double *ex = malloc((size_t)Q * sizeof *ex), *ap = malloc((size_t)Q * sizeof *ap);
    int agree = 0;
    for (int t = 0; t < Q; t++) {
        size_t s = rng_below(&rng, S);
        for (int j = 0; j < D; j++)
            v[j] = centre[s * (size_t)D + j] + 0.15f * (rng_uniform(&rng) - 0.5f);
        IndexHit a[1000], e[1000];
        int na = 0, ne = 0;
        double t1 = sm_now();
        index_search(ix, v, K, INDEX_EXACT, e, &ne, err);
        double t2 = sm_now();
        index_search(ix, v, K, 0, a, &na, err);
        double t3 = sm_now();
        ex[t] = (t2 - t1) * 1e3;
        ap[t] = (t3 - t2) * 1e3;
        agree += na > 0 && ne > 0 && strcmp(a[0].subject, e[0].subject) == 0;
    }
    print_runs("exact", ex, Q);
    print_runs("int8+rerank", ap, Q);
    printf("{\"rows\":%zu,\"dim\":%d,\"threads\":%d,\"compressed\":%d,\"top1_agree\":%.3f}\n", N, D,
           threads, index_compressed(ix), (double)agree / Q);
    index_free(ix);
    free(centre);
    free(v);
    free(ex);
    free(ap);
    return 0;
}
