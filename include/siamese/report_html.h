/*
 * report_html.h — the HTML training report: one self-contained file (inline
 * SVG charts written here, images as PNG data URIs, no script, nothing
 * fetched) that `siamesed --train --report FILE` and `--eval --report FILE`
 * write, for people who look at pictures rather than numbers:
 *   - loss and validation accuracy per epoch (the training summary's history);
 *   - distance histograms of the positive and negative pairs, with the margin
 *     and the threshold drawn; the ROC with AUC, EER and TAR@FAR 1e-2/1e-3;
 *     accuracy against threshold with 0.5 and the calibrated threshold;
 *   - a 2-D PCA projection of the embeddings, coloured by class;
 *   - the 16 most confident false accepts and false rejects, both images;
 *   - the metrics table (the numbers --json prints) and the run's settings.
 * Colours are the Okabe–Ito palette (safe for colour-blind readers), with two
 * more for the tenth and ninth class of a projection.
 */
#ifndef SIAMESE_REPORT_HTML_H
#define SIAMESE_REPORT_HTML_H

#include "siamese/dataset.h"
#include "siamese/model.h"
#include "siamese/pairs.h"
#include "siamese/train.h"

typedef struct {
    const char *command;    /* "--train" or "--eval": what wrote the report */
    const Model *model;     /* threshold, margin, architecture, training summary */
    const char *model_path; /* as the user named it */
    const Dataset *data;    /* the split charted (the test split, when there is one) */
    const char *split;      /* its name: "test" or "train" */
    PairsMode pairs;        /* the pairs of data train_eval_pairs() builds with */
    uint64_t seed;          /* ... this seed: the pairs the metrics were computed on */
    const TrainReport *rep; /* the metrics --json prints (val.pairs 0: none) */
    int with_throughput;    /* rep->pairs_per_s was measured (--train) */
} ReportHtml;

/* Writes the report to path (atomically: a temp file, then rename). Embeds
 * every sample of r->data once. 0, or a negative errno with err filled
 * (-EINVAL for data the model cannot take, -ENOMEM, or the write's error). */
int report_html_write(const char *path, const ReportHtml *r, char *err);

#endif
