/*
 * bench_mkstore.c — builds a large synthetic store for bench/identify.sh,
 * through store_enroll() (the daemon's own write path, group commit from
 * several threads). The embeddings are synthetic but shaped like real ones:
 * the model embeds the data set's train images; subject s is centred on the
 * embedding of image s mod n_images, moved by noise of sigma_c times each
 * dimension's spread (so subjects sharing an image differ), and each of its
 * `per` samples adds noise of sigma_s. Queries embedded from the test images
 * then have a meaningful nearest subject.
 *
 * usage: bench_mkstore MODEL DB N [per=10] [data=/usr/share/datasets/fashion-mnist]
 *                      [sigma_c=0.25] [sigma_s=0.1]
 * Prints one JSON line: samples, subjects, seconds, samples/s.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siamese/common.h"
#include "siamese/dataset.h"
#include "siamese/model.h"
#include "siamese/rng.h"
#include "siamese/store.h"

#define THREADS 32 /* writers: enough for group commit to fill transactions */

typedef struct {
    Store *store;
    const float *base, *sd; /* n_img x E embeddings, E spreads */
    int n_img, E, per, t;
    size_t subjects;
    float sigma_c, sigma_s;
    int rc;
    char err[SM_ERRMAX];
} Job;

static float gauss(Rng *r) {
    float u = rng_uniform(r), v = rng_uniform(r);
    return sqrtf(-2.0f * logf(u > 1e-12f ? u : 1e-12f)) * cosf(6.2831853f * v);
}

static void *enroll_part(void *arg) {
    Job *j = arg;
    Rng rng;
    rng_seed(&rng, 1000 + (uint64_t)j->t);
    float *e = malloc((size_t)j->per * (size_t)j->E * sizeof *e), *c = malloc((size_t)j->E * 4);
    StoreSampleIn *in = calloc((size_t)j->per, sizeof *in);
    int64_t *ids = malloc((size_t)j->per * sizeof *ids);
    char name[32];
    for (size_t s = (size_t)j->t; j->rc == 0 && s < j->subjects; s += THREADS) {
        const float *b = j->base + (s % (size_t)j->n_img) * (size_t)j->E;
        for (int d = 0; d < j->E; d++)
            c[d] = b[d] + j->sigma_c * j->sd[d] * gauss(&rng);
        for (int i = 0; i < j->per; i++) {
            for (int d = 0; d < j->E; d++)
                e[i * j->E + d] = c[d] + j->sigma_s * j->sd[d] * gauss(&rng);
            in[i].embedding = e + (size_t)i * (size_t)j->E;
        }
        snprintf(name, sizeof name, "s%07zu", s);
        j->rc = store_enroll(j->store, name, NULL, in, j->per, ids, NULL, j->err);
    }
    free(e), free(c), free(in), free(ids);
    return NULL;
}

int main(int argc, char **argv) {
    char err[SM_ERRMAX];
    if (argc < 4) {
        fprintf(stderr, "usage: bench_mkstore MODEL DB N [per] [data] [sigma_c] [sigma_s]\n");
        return 2;
    }
    size_t N = strtoull(argv[3], NULL, 10);
    int per = argc > 4 ? atoi(argv[4]) : 10;
    const char *data = argc > 5 ? argv[5] : "/usr/share/datasets/fashion-mnist";
    float sigma_c = argc > 6 ? strtof(argv[6], NULL) : 0.25f;
    float sigma_s = argc > 7 ? strtof(argv[7], NULL) : 0.1f;
    Model *m = NULL;
    Dataset *ds = NULL;
    Store *store = NULL;
    if (per < 1 || per > STORE_ENROLL_MAX || N < (size_t)per || model_load(argv[1], &m, err) < 0 ||
        dataset_load(data, DATASET_TRAIN, model_arch(m)->in_h, model_arch(m)->in_w, NULL, &ds,
                     err) < 0) {
        fprintf(stderr, "bench_mkstore: %s\n", err);
        return 1;
    }
    int E = model_embed_dim(m);
    float *base = malloc((size_t)ds->n * (size_t)E * sizeof *base), *sd = calloc((size_t)E, 4);
    if (model_embed(m, ds->x, ds->n, base) < 0) {
        fprintf(stderr, "bench_mkstore: out of memory\n");
        return 1;
    }
    for (int d = 0; d < E; d++) {
        double s = 0, s2 = 0;
        for (int i = 0; i < ds->n; i++)
            s += base[(size_t)i * E + d], s2 += (double)base[(size_t)i * E + d] * base[i * E + d];
        double mean = s / ds->n;
        sd[d] = (float)sqrt(fmax(s2 / ds->n - mean * mean, 1e-12));
    }
    StoreConfig sc = {.path = argv[2], .fingerprint = model_fingerprint(m), .dim = E};
    if (store_open(&sc, &store, err) != 0) {
        fprintf(stderr, "bench_mkstore: %s\n", err);
        return 1;
    }
    double t0 = sm_now();
    Job jobs[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        jobs[t] =
            (Job){store, base, sd, ds->n, E, per, t, N / (size_t)per, sigma_c, sigma_s, 0, ""};
        pthread_create(&th[t], NULL, enroll_part, &jobs[t]);
    }
    int rc = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        if (jobs[t].rc < 0 && rc == 0) {
            rc = jobs[t].rc;
            fprintf(stderr, "bench_mkstore: %s\n", jobs[t].err);
        }
    }
    double dt = sm_now() - t0;
    int64_t subjects = 0, samples = 0;
    store_counts(store, &subjects, &samples);
    printf("{\"samples\":%lld,\"subjects\":%lld,\"seconds\":%.1f,\"samples_per_s\":%.0f}\n",
           (long long)samples, (long long)subjects, dt, (double)samples / dt);
    store_close(store);
    model_free(m);
    dataset_free(ds);
    free(base);
    free(sd);
    return rc < 0;
}
