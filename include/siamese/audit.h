/*
 * audit.h — label audit: which samples of a labelled dataset does the
 * model's embedding place among other classes (likely labelling mistakes)?
 *
 * For each sample, its k exact nearest neighbours (Euclidean, itself
 * excluded) vote with weight 1 / (distance + AUDIT_EPS); the score is the
 * share of the vote that goes to other labels (0: every neighbour agrees,
 * 1: none does), and the suggested label is the other label with the most
 * weight. k grows with the classes (audit_k_for()): a network trained on
 * the noisy labels pulls a mislabelled sample toward its wrong class, so
 * its few nearest neighbours often agree with the wrong label while the
 * wider neighbourhood still holds its true class (bench/audit.sh: on
 * Fashion-MNIST with 2 % flipped, precision at N 0.37 with k = 10, 0.77 with
 * k = 200; weighting by distance changes little).
 */
#ifndef SIAMESE_AUDIT_H
#define SIAMESE_AUDIT_H

#include <stdio.h>

#include "siamese/dataset.h"
#include "siamese/model.h"

#define AUDIT_K_MIN 10
#define AUDIT_K_MAX 200
#define AUDIT_K_SHARE 30 /* k = median class size / 30, within [AUDIT_K_MIN, AUDIT_K_MAX] */
#define AUDIT_SHOWN 10   /* neighbours shown per suspect in the report */
#define AUDIT_EPS 1e-3f

typedef struct {
    float score;   /* in [0, 1]: the neighbours' vote against the label */
    int suggested; /* the label the neighbours favour other than the given one; the
                      given one when no neighbour has another */
    int *nn;       /* k neighbours, nearest first (slices of the caller's n x k arrays) */
    float *nd;     /* their distances */
} AuditRow;

/* The k for labels (n, in [0, n_classes)): median class size / AUDIT_K_SHARE
 * within [AUDIT_K_MIN, AUDIT_K_MAX], and below n. */
int audit_k_for(const int *labels, int n, int n_classes);

/* The rows (n, the caller's) of embeddings emb (n x E) with labels (n, in
 * [0, n_classes)), k neighbours each into nn and nd (n x k, the caller's;
 * rows point into them); AUDIT_K_MIN < n, 1 <= k < n, k <= AUDIT_K_MAX.
 * Blocked sgemm distances. -ENOMEM or -EINVAL with err. */
int audit_scores(const float *emb, int n, int E, const int *labels, int n_classes, int k,
                 AuditRow *rows, int *nn, float *nd, char *err);
/* The same with plain loops: the reference audit_scores() is tested against. */
int audit_scores_ref(const float *emb, int n, int E, const int *labels, int n_classes, int k,
                     AuditRow *rows, int *nn, float *nd, char *err);

/* The HTML report of the top suspects order[0..top) of d (rows per sample,
 * k neighbours each), each with its nearest AUDIT_SHOWN as thumbnails;
 * written atomically to path. */
int audit_html_write(const char *path, const char *model_path, const Dataset *d,
                     const AuditRow *rows, const int *order, int top, int k, char *err);

typedef struct {
    const char *model, *data;
    int top;            /* suspects listed */
    int json;           /* one JSON object instead of the table */
    const char *report; /* HTML report path (audit_html_write()); NULL or "": none */
    const ImgLimits *lim;
    int skip_bad;
    FILE *out; /* where the list goes (stdout) */
} AuditConfig;

/* --audit: embeds the train split of ac->data (a flat image directory is
 * one) with ac->model and lists the ac->top highest scores: file (or IDX
 * index), given label, suggested label, score, and the report. Images that do not fit the
 * model, AUDIT_K_MIN samples or fewer, or a single class: -EINVAL. */
int audit_run(const AuditConfig *ac, char *err);

#endif
