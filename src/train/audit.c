/*
 * audit.c — the label audit (audit.h): exact k-nearest neighbours over the
 * dataset's embeddings, a distance-weighted vote against each label, and
 * `siamesed --audit`, which lists the samples the vote doubts most.
 *
 * Distances come from blocks of AUDIT_BLOCK rows against every sample, as
 * |a|^2 + |b|^2 - 2 a.b with one sgemm per block, so 60 000 Fashion-MNIST
 * embeddings take seconds; audit_scores_ref() computes each distance
 * directly and is what the fast path is tested against.
 */
#include "siamese/audit.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "siamese/blas.h"
#include "siamese/calibrate.h"
#include "siamese/common.h"
#include "siamese/log.h"

#define AUDIT_BLOCK 256
#define AUDIT_REPORT_MAX 200 /* suspects shown in the HTML report */

/* Inserts (j, d) into the k neighbours nn/nd (*have so far, nearest first). */
static void nn_insert(int *nn, float *nd, int k, int *have, int j, float d) {
    int at;
    if (*have < k)
        at = (*have)++;
    else if (d < nd[k - 1])
        at = k - 1;
    else
        return;
    while (at > 0 && nd[at - 1] > d) {
        nd[at] = nd[at - 1], nn[at] = nn[at - 1];
        at--;
    }
    nd[at] = d, nn[at] = j;
}

/* The vote of r's k neighbours against label own; w (n_classes) is zero
 * before and after. */
static void vote(AuditRow *r, int k, const int *labels, int own, double *w) {
    double total = 0, best = 0;
    for (int q = 0; q < k; q++) {
        double v = 1.0 / ((double)r->nd[q] + AUDIT_EPS);
        w[labels[r->nn[q]]] += v;
        total += v;
    }
    r->suggested = own;
    for (int q = 0; q < k; q++) {
        int l = labels[r->nn[q]];
        if (l != own && w[l] > best)
            best = w[l], r->suggested = l;
    }
    r->score = (float)(1.0 - w[own] / total);
    for (int q = 0; q < k; q++)
        w[labels[r->nn[q]]] = 0;
}

static int cmp_int(const void *a, const void *b) {
    return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

int audit_k_for(const int *labels, int n, int n_classes) {
    int *count = calloc((size_t)n_classes, sizeof *count), used = 0, k = AUDIT_K_MIN;
    if (!count)
        return k < n - 1 ? k : n - 1;
    for (int i = 0; i < n; i++)
        count[labels[i]]++;
    for (int c = 0; c < n_classes; c++)
        if (count[c])
            count[used++] = count[c];
    if (used) {
        qsort(count, (size_t)used, sizeof *count, cmp_int);
        k = count[used / 2] / AUDIT_K_SHARE;
    }
    free(count);
    k = k < AUDIT_K_MIN ? AUDIT_K_MIN : k > AUDIT_K_MAX ? AUDIT_K_MAX : k;
    return k < n - 1 ? k : n - 1;
}

static int check_args(int n, int n_classes, int k, char *err) {
    if (n <= AUDIT_K_MIN)
        return sm_err(err, -EINVAL, "audit needs more than %d samples (got %d)", AUDIT_K_MIN, n);
    if (n_classes < 2)
        return sm_err(err, -EINVAL, "audit needs at least 2 classes");
    if (k < 1 || k >= n || k > AUDIT_K_MAX)
        return sm_err(err, -EINVAL, "audit: %d neighbours of %d samples", k, n);
    return 0;
}

/* Points rows at their slices of nn/nd (n x k) and empties them. */
static void init_rows(AuditRow *rows, int n, int k, int *nn, float *nd) {
    for (int i = 0; i < n; i++) {
        rows[i].nn = nn + (size_t)i * k, rows[i].nd = nd + (size_t)i * k;
        for (int q = 0; q < k; q++)
            rows[i].nn[q] = -1, rows[i].nd[q] = INFINITY;
    }
}

int audit_scores_ref(const float *emb, int n, int E, const int *labels, int n_classes, int k,
                     AuditRow *rows, int *nn, float *nd, char *err) {
    int rc = check_args(n, n_classes, k, err);
    double *w = rc == 0 ? calloc((size_t)n_classes, sizeof *w) : NULL;
    if (rc == 0 && !w)
        rc = sm_err(err, -ENOMEM, "audit: out of memory");
    if (rc < 0)
        return rc;
    init_rows(rows, n, k, nn, nd);
    for (int i = 0; i < n; i++) {
        int have = 0;
        for (int j = 0; j < n; j++)
            if (j != i)
                nn_insert(rows[i].nn, rows[i].nd, k, &have, j,
                          model_distance(emb + (size_t)i * E, emb + (size_t)j * E, E));
        vote(&rows[i], k, labels, labels[i], w);
    }
    free(w);
    return 0;
}

/* Neighbours of rows lo..hi from the Gram block g ((hi-lo) x n) and norms. */
static void block_neighbours(const float *g, const float *norm, int lo, int hi, int n, int k,
                             AuditRow *rows) {
    for (int i = lo; i < hi; i++) {
        const float *gi = g + (size_t)(i - lo) * n;
        float *nd = rows[i].nd;
        int have = 0;
        for (int j = 0; j < n; j++) {
            if (j == i)
                continue;
            float d2 = norm[i] + norm[j] - 2 * gi[j];
            if (have == k && d2 >= nd[k - 1])
                continue;
            nn_insert(rows[i].nn, nd, k, &have, j, d2); /* squared until the end */
        }
        for (int q = 0; q < k; q++)
            nd[q] = sqrtf(fmaxf(nd[q], 1e-7f)); /* the training clamp */
    }
}

int audit_scores(const float *emb, int n, int E, const int *labels, int n_classes, int k,
                 AuditRow *rows, int *nn, float *nd, char *err) {
    int rc = check_args(n, n_classes, k, err);
    if (rc < 0)
        return rc;
    float *norm = malloc((size_t)n * sizeof *norm);
    float *g = malloc((size_t)AUDIT_BLOCK * n * sizeof *g);
    double *w = calloc((size_t)n_classes, sizeof *w);
    if (!norm || !g || !w) {
        rc = sm_err(err, -ENOMEM, "audit: out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int e = 0; e < E; e++)
            s += (double)emb[(size_t)i * E + e] * emb[(size_t)i * E + e];
        norm[i] = (float)s;
    }
    init_rows(rows, n, k, nn, nd);
    for (int lo = 0; lo < n; lo += AUDIT_BLOCK) {
        int hi = lo + AUDIT_BLOCK < n ? lo + AUDIT_BLOCK : n;
        blas_sgemm(0, 1, hi - lo, n, E, 1.0f, emb + (size_t)lo * E, E, emb, E, 0.0f, g, n);
        block_neighbours(g, norm, lo, hi, n, k, rows);
        for (int i = lo; i < hi; i++) {
            assert(rows[i].nn[k - 1] >= 0);
            vote(&rows[i], k, labels, labels[i], w);
        }
    }
out:
    free(norm);
    free(g);
    free(w);
    return rc;
}

/* Sample indices ordered by descending score (ties: lower index first). */
static const AuditRow *sort_rows;
static int by_score(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    float x = sort_rows[i].score, y = sort_rows[j].score;
    return x > y ? -1 : x < y ? 1 : (i > j) - (i < j);
}

static const char *name_of(const Dataset *d, int label) {
    return d->class_names && d->class_names[label] ? d->class_names[label] : "?";
}

static void print_rows(const AuditConfig *ac, const Dataset *d, const AuditRow *rows,
                       const int *order, int top, int k) {
    FILE *f = ac->out;
    if (ac->json) {
        cJSON *o = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(o, "suspects");
        cJSON_AddStringToObject(o, "data", ac->data);
        cJSON_AddNumberToObject(o, "samples", d->n);
        cJSON_AddNumberToObject(o, "k", k);
        for (int r = 0; r < top; r++) {
            int i = order[r];
            cJSON *s = cJSON_CreateObject();
            cJSON_AddNumberToObject(s, "index", i);
            if (d->files)
                cJSON_AddStringToObject(s, "file", d->files[i]);
            cJSON_AddStringToObject(s, "label", name_of(d, d->y[i]));
            cJSON_AddStringToObject(s, "suggested", name_of(d, rows[i].suggested));
            cJSON_AddNumberToObject(s, "score", rows[i].score);
            cJSON_AddItemToArray(list, s);
        }
        char *text = cJSON_PrintUnformatted(o);
        fprintf(f, "%s\n", text ? text : "{}");
        free(text);
        cJSON_Delete(o);
        return;
    }
    fprintf(f, "%-5s %-40s %-16s %-16s %s\n", "rank", "sample", "label", "suggested", "score");
    for (int r = 0; r < top; r++) {
        int i = order[r];
        char idx[32];
        snprintf(idx, sizeof idx, "IDX #%d", i);
        fprintf(f, "%-5d %-40s %-16s %-16s %.4f\n", r + 1, d->files ? d->files[i] : idx,
                name_of(d, d->y[i]), name_of(d, rows[i].suggested), (double)rows[i].score);
    }
}

static int audit_data(const AuditConfig *ac, const Model *m, const Dataset *d, char *err) {
    float *emb = NULL, *nd = NULL;
    int k = audit_k_for(d->y, d->n, d->n_classes), *nn = NULL;
    AuditRow *rows = malloc((size_t)d->n * sizeof *rows);
    int *order = malloc((size_t)d->n * sizeof *order);
    int rc = 0;
    if (d->n > AUDIT_K_MIN) {
        nn = malloc((size_t)d->n * k * sizeof *nn);
        nd = malloc((size_t)d->n * k * sizeof *nd);
    }
    rc = rows && order && (d->n <= AUDIT_K_MIN || (nn && nd))
             ? calib_embed(m, d, &emb, err)
             : sm_err(err, -ENOMEM, "audit: out of memory");
    if (rc == 0)
        rc = audit_scores(emb, d->n, model_embed_dim(m), d->y, d->n_classes, k, rows, nn, nd, err);
    if (rc == 0) {
        for (int i = 0; i < d->n; i++)
            order[i] = i;
        sort_rows = rows; /* qsort has no context argument; one audit at a time */
        qsort(order, (size_t)d->n, sizeof *order, by_score);
        int top = ac->top < d->n ? ac->top : d->n;
        print_rows(ac, d, rows, order, top, k);
        if (ac->report && *ac->report)
            rc = audit_html_write(ac->report, ac->model, d, rows, order,
                                  top < AUDIT_REPORT_MAX ? top : AUDIT_REPORT_MAX, k, err);
    }
    free(emb);
    free(rows);
    free(order);
    free(nn);
    free(nd);
    return rc;
}

int audit_run(const AuditConfig *ac, char *err) {
    Model *m = NULL;
    Dataset *d = NULL;
    int rc = model_load(ac->model, &m, err);
    if (rc < 0)
        goto out;
    const ModelArch *a = model_arch(m);
    DatasetLoad opt = {
        .want_h = a->in_h, .want_w = a->in_w, .lim = ac->lim, .skip_bad = ac->skip_bad};
    if ((rc = dataset_load_with(ac->data, DATASET_TRAIN, &opt, &d, err)) != 0) {
        rc = rc == SM_ABSENT ? sm_err(err, -ENOENT, "audit: %s: no data", ac->data) : rc;
        goto out;
    }
    if ((rc = calib_fit_check(m, d, "audit", err)) == 0)
        rc = audit_data(ac, m, d, err);
out:
    model_free(m);
    dataset_free(d);
    return rc;
}
