/*
 * bench_cnn.c — where a training step of a base network spends its time, and
 * what the machine could do: the large-sgemm peak (2048^3, the best OpenBLAS
 * does here), one training step of ARCH at B pairs (forward + backward over
 * 2B images, no optimiser; data-parallel as the trainer runs it: with T
 * threads, T shares of the pairs, each on one thread) with its FLOPs, the
 * model time of one /verify (two
 * images through a served model's inference path), and batch embedding.
 *
 * usage: bench_cnn [arch=cnn] [batch_pairs=128] [threads=1] [steps=5] [backends=auto]
 * backends: conv backends to compare, comma-separated (auto, im2col, onednn,
 * bf16), timed in interleaved rounds (A, B, A, B, ...); the step figures
 * are the first backend's median, "backends" gives each one's median step
 * and every run. Prints one JSON line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siamese/blas.h"
#include "siamese/common.h"
#include "siamese/layers.h"
#include "siamese/network.h"
#include "siamese/pool.h"
#include "siamese/rng.h"

static float *randv(size_t n, Rng *r, float lo, float hi) {
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n && v; i++)
        v[i] = lo + (hi - lo) * rng_uniform(r);
    return v;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n) {
    double t[64];
    memcpy(t, v, (size_t)n * sizeof *t);
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

/* GFLOP/s of one large square sgemm, the best of 3. */
static double sgemm_peak(Rng *rng) {
    enum { N = 2048 };
    float *a = randv((size_t)N * N, rng, -1, 1), *b = randv((size_t)N * N, rng, -1, 1);
    float *c = randv((size_t)N * N, rng, -1, 1);
    double best = 0;
    for (int r = 0; r < 3; r++) {
        double t0 = sm_now();
        blas_sgemm(0, 0, N, N, N, 1.0f, a, N, b, N, 0.0f, c, N);
        double g = 2.0 * N * N * N / (sm_now() - t0) / 1e9;
        best = g > best ? g : best;
    }
    free(a), free(b), free(c);
    return best;
}

/* The trainer's data-parallel step (trainer.c): share k of T takes pairs
 * [B*k/T, B*(k+1)/T), its own workspace and gradient, single-threaded kernels. */
typedef struct {
    NetTrain *t[64];
    float *grad[64];
    Rng rng[64];
    const float *params, *demb;
    int T, B, backward;
} Shares;

static void share_run(void *ctx, int k) {
    Shares *s = ctx;
    int n = (int)((long)s->B * (k + 1) / s->T) - (int)((long)s->B * k / s->T);
    if (s->T > 1)
        blas_solo(1);
    if (s->backward)
        net_train_backward(s->t[k], s->params, s->grad[k], s->demb, 2 * n);
    else
        net_train_forward(s->t[k], s->params, 2 * n, &s->rng[k]);
    if (s->T > 1)
        blas_solo(0);
}

/* FLOPs of forward + backward for one image (multiply-adds of conv and fc
 * counted twice; the first layer's input gradient is not computed). */
static double step_flops(const ModelArch *a, const NetPlan *p) {
    double total = 0;
    int first = 1;
    for (int i = 0; i < a->n_layers; i++) {
        const NetLayer *l = &a->layer[i];
        double mac = 0;
        if (l->kind == NET_CONV)
            mac = (double)p->h[i + 1] * p->w[i + 1] * l->n * l->k * l->k * p->c[i];
        else if (l->kind == NET_FC)
            mac = (double)l->n * p->c[i] * p->h[i] * p->w[i];
        else
            continue;
        total += 2 * mac * (first ? 2 : 3);
        first = 0;
    }
    return total;
}

int main(int argc, char **argv) {
    char err[SM_ERRMAX];
    if (blas_boot(argv, err) < 0) {
        fprintf(stderr, "bench_cnn: %s\n", err);
        return 1;
    }
    const char *spec = argc > 1 ? argv[1] : "cnn";
    int B = argc > 2 ? atoi(argv[2]) : 128, threads = argc > 3 ? atoi(argv[3]) : 1;
    int steps = argc > 4 ? atoi(argv[4]) : 5;
    ModelArch a;
    NetPlan p;
    Shares sh = {.B = B, .T = threads < 1 ? 1 : threads > 64 ? 64 : threads};
    if (!blas_solo_available())
        sh.T = 1;
    sh.T = sh.T < B ? sh.T : B;
    int share = (B + sh.T - 1) / sh.T;
    if (net_parse(spec, 28, 28, 1, &a, err) < 0 || net_plan(&a, &p, err) < 0) {
        fprintf(stderr, "bench_cnn: %s\n", err);
        return 1;
    }
    for (int k = 0; k < sh.T; k++)
        if (net_train_new(&a, &p, 2 * share, &sh.t[k], err) < 0) {
            fprintf(stderr, "bench_cnn: %s\n", err);
            return 1;
        }
    Pool *pool = sh.T > 1 ? pool_create(sh.T - 1) : NULL;
    blas_set_threads(threads);
    Rng rng;
    rng_seed(&rng, 1);
    double peak = sgemm_peak(&rng);
    float *params = malloc(p.n_params * sizeof *params);
    float *demb = randv((size_t)2 * share * p.embed_dim, &rng, -1e-3f, 1e-3f);
    net_init(&p, &a, params, &rng);
    sh.params = params, sh.demb = demb;
    for (int k = 0; k < sh.T; k++) {
        float *x = net_train_input(sh.t[k]);
        for (size_t i = 0; i < (size_t)2 * share * p.in_dim; i++)
            x[i] = rng_uniform(&rng);
        sh.grad[k] = calloc(p.n_params, sizeof *sh.grad[k]);
        rng_seed(&sh.rng[k], 2 + (uint64_t)k);
    }
    char *list = strdup(argc > 5 ? argv[5] : "auto"), *save = NULL;
    const char *bname[4];
    ConvBackend bk[4];
    int nb = 0;
    for (char *tok = strtok_r(list, ",", &save); tok && nb < 4; tok = strtok_r(NULL, ",", &save)) {
        static const char *names[] = {"auto", "im2col", "onednn", "bf16"};
        int k = 0;
        while (k < 4 && strcmp(tok, names[k]) != 0)
            k++;
        if (k == 4 || conv2d_set_backend((ConvBackend)k) < 0) {
            fprintf(stderr, "bench_cnn: backend '%s' unknown or not built in\n", tok);
            return 1;
        }
        bname[nb] = tok, bk[nb++] = (ConvBackend)k;
    }
    steps = steps < 1 ? 1 : steps > 64 ? 64 : steps;
    double run_f[4][64], run_b[4][64];
    for (int s = 0; s < steps + 1; s++) /* the first round is a warm-up */
        for (int k = 0; k < nb; k++) {
            conv2d_set_backend(bk[k]);
            double t0 = sm_now();
            sh.backward = 0;
            pool_run(pool, share_run, &sh, sh.T);
            double t1 = sm_now();
            sh.backward = 1;
            pool_run(pool, share_run, &sh, sh.T);
            double t2 = sm_now();
            if (s > 0)
                run_f[k][s - 1] = t1 - t0, run_b[k][s - 1] = t2 - t1;
        }
    conv2d_set_backend(bk[0]);
    double fwd = median(run_f[0], steps), bwd = median(run_b[0], steps);
    double flops = step_flops(&a, &p) * 2 * B, step = fwd + bwd;
    /* Inference: two images through a served model's path, then a batch. */
    float *fast = malloc(p.n_params * sizeof *fast), *emb = malloc((size_t)2048 * p.embed_dim * 4);
    float *imgs = randv((size_t)2048 * p.in_dim, &rng, 0, 1);
    net_fast_copy(&a, &p, params, fast);
    blas_set_threads(1);
    double verify = 1e9;
    for (int r = 0; r < 200; r++) {
        double t0 = sm_now();
        net_infer(&a, &p, params, fast, imgs, 2, emb);
        verify = sm_now() - t0 < verify ? sm_now() - t0 : verify;
    }
    blas_set_threads(threads);
    double t0 = sm_now();
    net_infer(&a, &p, params, fast, imgs, 2048, emb);
    double batch = 2048 / (sm_now() - t0);
    printf("{\"arch\":\"%s\",\"kernel\":\"%s\",\"threads\":%d,\"batch_pairs\":%d,"
           "\"sgemm_peak_gflops\":%.1f,\"step_ms\":%.2f,\"forward_ms\":%.2f,\"backward_ms\":%.2f,"
           "\"mflop_per_pair\":%.1f,\"step_gflops\":%.1f,\"fraction_of_peak\":%.3f,"
           "\"pairs_per_s_step\":%.0f,\"verify_model_ms\":%.3f,\"embed_per_s\":%.0f,"
           "\"backends\":{",
           spec, blas_kernel(), threads, B, peak, step * 1e3, fwd * 1e3, bwd * 1e3,
           step_flops(&a, &p) * 2 / 1e6, flops / step / 1e9, flops / step / 1e9 / peak, B / step,
           verify * 1e3, batch);
    for (int k = 0; k < nb; k++) {
        double runs[64];
        for (int s = 0; s < steps; s++)
            runs[s] = run_f[k][s] + run_b[k][s];
        printf("%s\"%s\":{\"step_ms\":%.2f,\"ratio_to_first\":%.3f,\"runs_ms\":[", k ? "," : "",
               bname[k], median(runs, steps) * 1e3,
               (median(run_f[0], steps) + median(run_b[0], steps)) / median(runs, steps));
        for (int s = 0; s < steps; s++)
            printf("%s%.2f", s ? "," : "", runs[s] * 1e3);
        printf("]}");
    }
    printf("},\"conv_backend\":\"%s\",\"onednn_calls\":%zu}\n", conv2d_backend_name(),
           conv2d_onednn_calls());
    free(list);
    pool_free(pool);
    for (int k = 0; k < sh.T; k++)
        net_train_free(sh.t[k]), free(sh.grad[k]);
    free(params), free(demb), free(fast), free(emb), free(imgs);
    return 0;
}
