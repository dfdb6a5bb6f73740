/*
 * audit.h — label audit: which samples of a labelled dataset does the
 * model's embedding place among other classes (likely labelling mistakes)?
 *
 * For each sample, its AUDIT_K exact nearest neighbours (Euclidean, itself
 * excluded) vote with weight 1 / (distance + AUDIT_EPS); the score is the
 * share of the vote that goes to other labels (0: every neighbour agrees,
 * 1: none does), and the suggested label is the other label with the most
 * weight. Close neighbours count more than the tenth one, which a plain
 * majority vote cannot tell apart from the first.
 */
#ifndef SIAMESE_AUDIT_H
#define SIAMESE_AUDIT_H

#include <stdio.h>

#include "siamese/dataset.h"
#include "siamese/model.h"

#define AUDIT_K 10
#define AUDIT_EPS 1e-3f

typedef struct {
    float score;   /* in [0, 1]: the neighbours' vote against the label */
    int suggested; /* the label the neighbours favour other than the given one; the
                      given one when no neighbour has another */
    int nn[AUDIT_K];
    float nd[AUDIT_K]; /* nearest first */
} AuditRow;

/* The rows (n, the caller's) of embeddings emb (n x E) with labels (n, in
 * [0, n_classes)); n must exceed AUDIT_K. Blocked sgemm distances. -ENOMEM
 * or -EINVAL with err. */
int audit_scores(const float *emb, int n, int E, const int *labels, int n_classes, AuditRow *rows,
                 char *err);
/* The same with plain loops: the reference audit_scores() is tested against. */
int audit_scores_ref(const float *emb, int n, int E, const int *labels, int n_classes,
                     AuditRow *rows, char *err);

/* The HTML report of the top suspects order[0..top) of d (rows per sample),
 * each with its neighbours as thumbnails; written atomically to path. */
int audit_html_write(const char *path, const char *model_path, const Dataset *d,
                     const AuditRow *rows, const int *order, int top, char *err);

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
 * model, fewer than AUDIT_K + 1 samples or a single class: -EINVAL. */
int audit_run(const AuditConfig *ac, char *err);

#endif
