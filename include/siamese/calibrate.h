/*
 * calibrate.h — operating points measured on labelled data, without
 * touching the weights: the table the trainer stores from its validation
 * pairs (calib_table_fill()), and `siamesed --calibrate`, which recomputes
 * the table and the threshold on the user's own data (calib_run()).
 *
 * Only the threshold and the operating-point table change; the fingerprint
 * covers the tensors alone, so embeddings a store holds stay valid.
 */
#ifndef SIAMESE_CALIBRATE_H
#define SIAMESE_CALIBRATE_H

#include <stdint.h>
#include <stdio.h>

#include "siamese/dataset.h"
#include "siamese/model.h"
#include "siamese/pairs.h"

typedef enum { CALIB_ACCURACY, CALIB_EER } CalibObjective;

typedef struct {
    const char *model; /* model file to read */
    const char *data;  /* labelled dataset (its train split, or a flat directory) */
    const char *out;   /* where the calibrated model goes (may equal model) */
    double far;        /* > 0: the threshold of this false-accept rate; 0: objective */
    CalibObjective objective;
    PairsMode pairs;
    uint64_t seed;
    const ImgLimits *lim;
    int skip_bad; /* as DatasetLoad.skip_bad */
    int json;     /* before/after as one JSON object */
    FILE *report; /* where before/after is printed (stdout) */
} CalibConfig;

/* 0 if d's images are what m takes, else -EINVAL naming both sizes; what
 * names the command ("calibrate", "audit"). */
int calib_fit_check(const Model *m, const Dataset *d, const char *what, char *err);

/* The embeddings of every sample of d: *emb (d->n * embed_dim floats) is the
 * caller's, freed with free(). -ENOMEM. */
int calib_embed(const Model *m, const Dataset *d, float **emb, char *err);

/* Builds the operating-point table of the n pairs p of d (distances from m)
 * and stores it in m, marked with source. For the trainer (its validation
 * pairs) and --import. -EINVAL when the pairs lack a kind. */
int calib_table_fill(Model *m, const Dataset *d, const Pair *p, size_t n, const char *source,
                     char *err);

/* --calibrate: loads cc->model and cc->data, builds the pairs (pairs_build,
 * cc->pairs, cc->seed), the table and the threshold (cc->far or the
 * objective), prints before/after (accuracy, FAR, FRR at the old and the new
 * threshold) and writes cc->out. Data with fewer than 2 usable classes, a
 * far the pairs cannot resolve, images that do not fit: -EINVAL / -ERANGE
 * with err filled, nothing written. */
int calib_run(const CalibConfig *cc, char *err);

#endif
