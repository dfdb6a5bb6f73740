/*
 * optable.h — a model's operating points: the validation ROC as a compact
 * table of thresholds with the false accepts and false rejects measured at
 * each, and the numbers of pairs behind them.
 *
 * A pair is accepted ("same") when its distance d < threshold t. At grid
 * point i: false_accepts[i] = negatives with d < t[i], false_rejects[i] =
 * positives with d >= t[i]; FAR = false_accepts / negatives, FRR =
 * false_rejects / positives. The grid holds every threshold where one of
 * the first OPTABLE_EXACT false accepts (or false rejects) appears, then
 * geometrically spaced counts, then an even spread over the distances, so
 * the rare-error end of the curve (where operating points are chosen) is
 * exact and the rest is within a few per cent.
 *
 * The smallest FAR the table can stand behind is 1 / negatives: a target
 * below it is refused (-ERANGE) rather than answered with a threshold that
 * rests on no data.
 *
 * In the model file the table is the metadata value "operating_points", a
 * JSON object (docs/model-format.md); optable_parse() validates it as the
 * untrusted input it is. A table is immutable once built: the daemon shares
 * one between threads without locks.
 */
#ifndef SIAMESE_OPTABLE_H
#define SIAMESE_OPTABLE_H

#include <stddef.h>
#include <stdint.h>

#define OPTABLE_MAX_POINTS 1024
#define OPTABLE_EXACT 32 /* counts 0..31 of each error kind get their own point */

typedef struct OpTable OpTable;

/* The table of n pair distances dist with labels y (1 same, 0 different);
 * source says where the pairs came from ("validation", "calibration: DIR";
 * copied, at most 200 bytes). No positives or no negatives, or a non-finite
 * distance, is -EINVAL with err filled. *out is freed with optable_free(). */
int optable_build(const float *dist, const float *y, size_t n, const char *source, OpTable **out,
                  char *err);
void optable_free(OpTable *t);

/* The table as the JSON text stored in the model (malloc'ed, the caller
 * frees it), or NULL when out of memory. */
char *optable_to_json(const OpTable *t);
/* Parses and validates the JSON text optable_to_json() writes: counts in
 * range, thresholds strictly increasing, rates monotone. -EINVAL with err. */
int optable_parse(const char *json, OpTable **out, char *err);
/* A copy (optable_free()), or NULL when out of memory. */
OpTable *optable_dup(const OpTable *t);

int64_t optable_positives(const OpTable *t);
int64_t optable_negatives(const OpTable *t);
int optable_points(const OpTable *t);
const char *optable_source(const OpTable *t); /* borrowed, lives as long as t */
/* 1 / negatives: the smallest false-accept rate the pairs can resolve. */
double optable_min_far(const OpTable *t);

/* The largest grid threshold whose measured FAR is at most far, with the
 * FAR and FRR measured there (*far_at, *frr_at; may be NULL). far below
 * optable_min_far() is -ERANGE, far outside (0, 1] or NaN -EINVAL; err
 * names the smallest rate supported. */
int optable_threshold_at_far(const OpTable *t, double far, float *thr, double *far_at,
                             double *frr_at, char *err);

/* The estimated rates at a measured distance d: those of a threshold placed
 * at d. *far is the share of different pairs closer than d ("1 in 1/far
 * different pairs is this close"), *frr the share of same pairs at d or
 * farther; linear between grid points, 0 and 1 beyond them. */
void optable_rates_at(const OpTable *t, float d, double *far, double *frr);

#endif
