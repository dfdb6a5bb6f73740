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

/* {"pairs":..,"accuracy":..,"accuracy_calibrated":..,"roc_auc":..,"eer":..,
 *  "tar_at_far_1e-2":..,"tar_at_far_1e-3":..}; caller frees with cJSON_Delete(). NULL on OOM. */
struct cJSON *report_metrics_json(const Metrics *m);

/* The training summary for the model file as JSON text; caller frees with free(). */
char *report_training_json(const TrainConfig *tc, const Dataset *train, const TrainReport *rep);

/* One line per epoch; tty: first clear the live bar. */
void report_epoch(FILE *f, int tty, int epoch, int epochs, double loss, double val_acc,
                  double pairs_per_s, double elapsed, double eta);
/* A carriage-return-refreshed bar (for terminals only). */
void report_bar(FILE *f, int epoch, int epochs, size_t done, size_t total, double loss);

#endif
