/*
 * report_html_int.h — private to the HTML report: a growing text buffer and
 * the SVG charts (report_svg.c) that report_html.c lays out.
 */
#ifndef SIAMESE_REPORT_HTML_INT_H
#define SIAMESE_REPORT_HTML_INT_H

#include <stddef.h>

#include "siamese/dataset.h"
#include "siamese/metrics.h"

/* Text that grows; after a failed allocation it stays as it was and oom is
 * set, so writers need not check every call. */
typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} Sb;

void sb_printf(Sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_add(Sb *b, const char *s, size_t n);
/* sb_add() of a string literal. */
#define sb_lit(b, lit) sb_add((b), "" lit, sizeof(lit) - 1)
/* s with & < > " ' escaped, for text and attribute values. */
void sb_escape(Sb *b, const char *s);

/* Sample i of d as an inline PNG <img> at twice its size (colour shown as
 * its mean); sets b->oom when it cannot. Also the audit report's thumbnails. */
void report_sample_img(Sb *b, const Dataset *d, int i);

/* Okabe–Ito, in the order charts use them; class colours cycle through it. */
extern const char *const report_palette[];
extern const int report_n_palette;

/* Pair distances and labels (1 same, 0 different), sorted by distance. */
typedef struct {
    const float *d, *y;
    size_t n;
} SortedPairs;

/* Loss and validation accuracy per epoch: two line charts side by side. */
void svg_history(Sb *b, const double *loss, const double *acc, int n);
/* Histograms of the positive and negative distances with margin and threshold lines. */
void svg_distances(Sb *b, const SortedPairs *p, float margin, float threshold);
/* ROC (FAR on a log axis) with AUC, the EER point and TAR@FAR 1e-2 / 1e-3. */
void svg_roc(Sb *b, const SortedPairs *p, const Metrics *m);
/* Accuracy against threshold, with 0.5 and the calibrated threshold marked. */
void svg_accuracy(Sb *b, const SortedPairs *p, float threshold);
/* Points xy (2k) coloured by label (k) with a legend of class names. */
void svg_scatter(Sb *b, const float *xy, const int *label, int k, char *const *names,
                 int n_classes);

#endif
