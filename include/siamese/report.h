/*
 * report.h — how training progress and results are shown: per-epoch lines, a
 * live bar for terminals, the human report table, and the JSON forms (the
 * --json report and the training summary stored in the model).
 */
#ifndef SIAMESE_REPORT_H
#define SIAMESE_REPORT_H

#include <stdio.h>

#include "siamese/train.h"

struct cJSON;

#define REPORT_SMALL_CLASS 10        /* fewer training images than this: warned */
#define REPORT_MIN_VAL_PAIRS 200     /* a threshold from fewer validation pairs: warned */
#define REPORT_MAX_ROWS 40           /* class rows printed; the rest are counted */
#define REPORT_MAX_JSON_CLASSES 1000 /* class rows kept in the model's summary */

/* The data of one training run, borrowed for the call. test and test_pairs
 * are NULL together when there is no test split; val shares train's classes. */
typedef struct {
    const Dataset *train, *val, *test;
    const PairsInfo *train_pairs, *val_pairs, *test_pairs;
} DataReport;

/* What training found, printed on f before it starts: each split's folder (or
 * IDX file), images and classes, images skipped (not images; unreadable under
 * --skip-bad-images), which split is the test split (or that there is none),
 * one row per class by name with its train / validation / test counts (the
 * first REPORT_MAX_ROWS), how each split is paired; then one "warning: " line
 * per problem: classes under REPORT_SMALL_CLASS images, a validation or test
 * split with too few negative pairs for TAR@FAR 1e-3 (see metrics.h) or too
 * few validation pairs for a stable threshold, skipped images. A class absent
 * from one split is no problem (open-set). Returns the number of warning
 * lines, or -ENOMEM. */
int report_data(FILE *f, const DataReport *r);

/* The same as JSON for the model's training summary: {"classes":[{"name",
 * "train","validation","test"}...] (at most REPORT_MAX_JSON_CLASSES),
 * "n_classes", "train_split", "test_split", "unseen_test_classes",
 * "skipped_not_images", "skipped_unreadable", "pairs", "images_in_pairs"}.
 * Caller frees with cJSON_Delete(); NULL on OOM. */
struct cJSON *report_data_json(const DataReport *r);

/* {"pairs":..,"accuracy":..,"accuracy_calibrated":..,"roc_auc":..,"eer":..,
 *  "tar_at_far_1e-2":..,"tar_at_far_1e-3":..}; caller frees with cJSON_Delete(). NULL on OOM. */
struct cJSON *report_metrics_json(const Metrics *m);

/* The training summary for the model file as JSON text (with data's
 * report_data_json() under "data" when data is not NULL, and history,
 * tc->epochs entries or NULL, as "history":{"loss":[..],"val_accuracy":[..]});
 * caller frees with free(). NULL on OOM. */
char *report_training_json(const TrainConfig *tc, const Dataset *train, const DataReport *data,
                           const TrainReport *rep, const TrainEpoch *history);

/* One line per epoch; tty: first clear the live bar. */
void report_epoch(FILE *f, int tty, int epoch, int epochs, double loss, double val_acc,
                  double pairs_per_s, double elapsed, double eta);
/* A carriage-return-refreshed bar (for terminals only). */
void report_bar(FILE *f, int epoch, int epochs, size_t done, size_t total, double loss);

#endif
