/*
 * calibrate.c — the operating points of a model on labelled data
 * (calibrate.h): embeds the data once, scores the pairs, builds the table
 * (optable.h) and picks the threshold of a target FAR or of the best
 * accuracy / the equal error rate. The weights are never written to: the
 * saved file's tensors, and so its fingerprint, are those it was read with.
 */
#include "siamese/calibrate.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "siamese/common.h"
#include "siamese/log.h"
#include "siamese/metrics.h"
#include "siamese/optable.h"

int calib_fit_check(const Model *m, const Dataset *d, const char *what, char *err) {
    const ModelArch *a = model_arch(m);
    if (d->h == a->in_h && d->w == a->in_w && a->in_c == 1)
        return 0;
    return sm_err(err, -EINVAL, "%s: %s holds %dx%dx1 images, the model takes %dx%dx%d", what,
                  d->source ? d->source : "the data", d->h, d->w, a->in_h, a->in_w, a->in_c);
}

int calib_embed(const Model *m, const Dataset *d, float **emb, char *err) {
    size_t E = (size_t)model_embed_dim(m), D = (size_t)model_in_dim(m);
    const int chunk = 1024; /* bounds the network's scratch, not the result */
    *emb = malloc((size_t)(d->n ? d->n : 1) * E * sizeof **emb);
    if (!*emb)
        return sm_err(err, -ENOMEM, "embed: out of memory");
    for (int i = 0; i < d->n; i += chunk) {
        int b = d->n - i < chunk ? d->n - i : chunk;
        if (model_embed(m, d->x + (size_t)i * D, b, *emb + (size_t)i * E) < 0) {
            free(*emb);
            *emb = NULL;
            return sm_err(err, -ENOMEM, "embed: out of memory");
        }
    }
    return 0;
}

/* dist and y (n each, the caller's) of the pairs p over the embeddings emb. */
static void pair_scores(const float *emb, int E, const Pair *p, size_t n, float *dist, float *y) {
    for (size_t i = 0; i < n; i++) {
        dist[i] = model_distance(emb + (size_t)p[i].a * E, emb + (size_t)p[i].b * E, E);
        y[i] = p[i].y;
    }
}

/* Distances and labels of the pairs p of d under m: *dist, *y (n each) are
 * the caller's (free()). */
static int scores_of(const Model *m, const Dataset *d, const Pair *p, size_t n, float **dist,
                     float **y, char *err) {
    float *emb = NULL;
    *dist = malloc((n + 1) * sizeof **dist), *y = malloc((n + 1) * sizeof **y);
    int rc = *dist && *y ? calib_embed(m, d, &emb, err) : sm_err(err, -ENOMEM, "out of memory");
    if (rc == 0)
        pair_scores(emb, model_embed_dim(m), p, n, *dist, *y);
    free(emb);
    return rc;
}

int calib_table_fill(Model *m, const Dataset *d, const Pair *p, size_t n, const char *source,
                     char *err) {
    float *dist = NULL, *y = NULL;
    OpTable *t = NULL;
    int rc = scores_of(m, d, p, n, &dist, &y, err);
    if (rc == 0 && (rc = optable_build(dist, y, n, source, &t, err)) == 0)
        model_set_operating_points(m, t);
    free(dist);
    free(y);
    return rc;
}

typedef struct {
    float threshold;
    double accuracy, far, frr;
} CalibPoint;

/* Accuracy, FAR and FRR of the n pairs at threshold thr (same if d < thr). */
static CalibPoint point_at(const float *dist, const float *y, size_t n, float thr) {
    size_t pos = 0, neg = 0, fa = 0, fr = 0;
    for (size_t i = 0; i < n; i++) {
        int same = y[i] > 0.5f, accept = dist[i] < thr;
        pos += same, neg += !same;
        fa += !same && accept, fr += same && !accept;
    }
    return (CalibPoint){thr, n ? 1.0 - (double)(fa + fr) / (double)n : NAN,
                        neg ? (double)fa / (double)neg : NAN, pos ? (double)fr / (double)pos : NAN};
}

/* The grid threshold where FAR and FRR are closest (the equal error rate). */
static float eer_threshold(const OpTable *t) {
    float best = 0, gap = INFINITY;
    for (double far = optable_min_far(t); far <= 1.0; far *= 1.02) {
        float thr;
        double fa, fr;
        if (optable_threshold_at_far(t, far, &thr, &fa, &fr, NULL) == 0 && fabs(fa - fr) < gap)
            gap = (float)fabs(fa - fr), best = thr;
    }
    return best;
}

static int choose_threshold(const CalibConfig *cc, const OpTable *t, const float *dist,
                            const float *y, size_t n, float *thr, char *err) {
    if (cc->far > 0)
        return optable_threshold_at_far(t, cc->far, thr, NULL, NULL, err);
    if (cc->objective == CALIB_EER) {
        *thr = eer_threshold(t);
        return 0;
    }
    if (metrics_calibrate(dist, y, n, thr) < 0)
        return sm_err(err, -ENOMEM, "calibrate: out of memory");
    return 0;
}

static void print_points(const CalibConfig *cc, const OpTable *t, const CalibPoint *before,
                         const CalibPoint *after) {
    FILE *f = cc->report;
    if (!f)
        return;
    if (cc->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "data", cc->data);
        cJSON_AddNumberToObject(o, "positives", (double)optable_positives(t));
        cJSON_AddNumberToObject(o, "negatives", (double)optable_negatives(t));
        cJSON_AddNumberToObject(o, "min_far", optable_min_far(t));
        const CalibPoint *pt[2] = {before, after};
        for (int i = 0; i < 2; i++) {
            cJSON *p = cJSON_AddObjectToObject(o, i ? "after" : "before");
            cJSON_AddNumberToObject(p, "threshold", pt[i]->threshold);
            cJSON_AddNumberToObject(p, "accuracy", pt[i]->accuracy);
            cJSON_AddNumberToObject(p, "far", pt[i]->far);
            cJSON_AddNumberToObject(p, "frr", pt[i]->frr);
        }
        char *s = cJSON_PrintUnformatted(o);
        fprintf(f, "%s\n", s ? s : "{}");
        free(s);
        cJSON_Delete(o);
        return;
    }
    fprintf(f, "calibrate: %lld same and %lld different pairs of %s; FAR resolvable down to %.3g\n",
            (long long)optable_positives(t), (long long)optable_negatives(t), cc->data,
            optable_min_far(t));
    fprintf(f, "%-8s %10s %9s %9s %9s\n", "", "threshold", "accuracy", "FAR", "FRR");
    fprintf(f, "%-8s %10.4f %9.4f %9.4f %9.4f\n", "before", (double)before->threshold,
            before->accuracy, before->far, before->frr);
    fprintf(f, "%-8s %10.4f %9.4f %9.4f %9.4f\n", "after", (double)after->threshold,
            after->accuracy, after->far, after->frr);
}

/* The table and threshold of the pairs of d under m, set into m; before and
 * after are the old and the new operating point. */
static int calibrate_model(const CalibConfig *cc, Model *m, const Dataset *d, CalibPoint *before,
                           CalibPoint *after, OpTable **table, char *err) {
    Pair *p = NULL;
    PairsInfo info;
    float *dist = NULL, *y = NULL, thr = 0;
    char src[256];
    int rc = pairs_build(cc->pairs, 0, d->y, d->n, d->n_classes, cc->seed, &p, &info, err);
    if (rc < 0) {
        rc = sm_err(err, -EINVAL,
                    "calibrate: %s: calibration needs at least 2 classes with 2 or "
                    "more images each (%d classes)",
                    cc->data, d->n_classes);
        goto out;
    }
    snprintf(src, sizeof src, "calibration: %.200s", cc->data);
    if ((rc = scores_of(m, d, p, info.n, &dist, &y, err)) < 0 ||
        (rc = optable_build(dist, y, info.n, src, table, err)) < 0 ||
        (rc = choose_threshold(cc, *table, dist, y, info.n, &thr, err)) < 0)
        goto out;
    *before = point_at(dist, y, info.n, model_threshold(m));
    *after = point_at(dist, y, info.n, thr);
    model_set_threshold(m, thr);
out:
    free(p);
    free(dist);
    free(y);
    return rc;
}

int calib_run(const CalibConfig *cc, char *err) {
    Model *m = NULL;
    Dataset *d = NULL;
    OpTable *t = NULL;
    CalibPoint before, after;
    char fp[65];
    int rc = model_load(cc->model, &m, err);
    if (rc < 0)
        goto out;
    const ModelArch *a = model_arch(m);
    DatasetLoad opt = {
        .want_h = a->in_h, .want_w = a->in_w, .lim = cc->lim, .skip_bad = cc->skip_bad};
    if ((rc = dataset_load_with(cc->data, DATASET_TRAIN, &opt, &d, err)) != 0) {
        rc = rc == SM_ABSENT ? sm_err(err, -ENOENT, "calibrate: %s: no data", cc->data) : rc;
        goto out;
    }
    if ((rc = calib_fit_check(m, d, "calibrate", err)) < 0 ||
        (rc = calibrate_model(cc, m, d, &before, &after, &t, err)) < 0)
        goto out;
    model_set_operating_points(m, t);
    t = NULL;
    snprintf(fp, sizeof fp, "%s", model_fingerprint(m));
    if ((rc = model_save(m, cc->out, err)) < 0)
        goto out;
    print_points(cc, model_operating_points(m), &before, &after);
    if (strcmp(fp, model_fingerprint(m)) != 0) /* the tensors were never written to */
        rc = sm_err(err, -EIO, "calibrate: the fingerprint changed (%.16s -> %.16s)", fp,
                    model_fingerprint(m));
    else
        log_info("calibrate: wrote %s (threshold %.4f; fingerprint %.16s… unchanged, stored "
                 "embeddings stay valid)",
                 cc->out, (double)model_threshold(m), fp);
out:
    optable_free(t);
    model_free(m);
    dataset_free(d);
    return rc;
}
