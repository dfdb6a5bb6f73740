/*
 * report_svg.c — the HTML report's charts, as inline SVG written by hand:
 * an axes frame (linear, or a log x axis for the ROC), polylines, marker
 * lines and points, in the Okabe–Ito palette. Every chart is one <figure>
 * holding one <svg id="chart-..."> and a caption that says what is drawn.
 * Numbers are printed with one decimal (pixels), so a chart of thousands of
 * points stays a few hundred KB.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report_html_int.h"

/* Okabe–Ito's eight, then two of Paul Tol's (grey, wine) so that ten classes
 * (Fashion-MNIST's) get ten colours. */
const char *const report_palette[] = {"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9",
                                      "#D55E00", "#F0E442", "#000000", "#999999", "#882255"};
const int report_n_palette = 10;

#define BLUE "#0072B2"
#define ORANGE "#E69F00"
#define GREEN "#009E73"
#define VERMILLION "#D55E00"
#define PURPLE "#CC79A7"

void sb_add(Sb *b, const char *s, size_t n) {
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p, b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void sb_printf(Sb *b, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        sb_add(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_add(b, big, (size_t)n);
    free(big);
}

void sb_escape(Sb *b, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&':
            sb_lit(b, "&amp;");
            break;
        case '<':
            sb_lit(b, "&lt;");
            break;
        case '>':
            sb_lit(b, "&gt;");
            break;
        case '"':
            sb_lit(b, "&quot;");
            break;
        case '\'':
            sb_lit(b, "&#39;");
            break;
        default:
            sb_add(b, s, 1);
        }
    }
}

/* ---- axes ---- */

enum { W = 560, H = 320, ML = 58, MR = 18, MT = 30, MB = 46 };

typedef struct {
    double x0, x1, y0, y1; /* data range; x0 > 0 when logx */
    int logx;
} Ax;

static double ax_x(const Ax *a, double x) {
    double t = a->logx ? (log10(fmax(x, a->x0)) - log10(a->x0)) / (log10(a->x1) - log10(a->x0))
                       : (x - a->x0) / (a->x1 - a->x0);
    return ML + (W - ML - MR) * fmin(fmax(t, 0), 1);
}

static double ax_y(const Ax *a, double y) {
    double t = (y - a->y0) / (a->y1 - a->y0);
    return H - MB - (H - MT - MB) * fmin(fmax(t, 0), 1);
}

/* A "nice" tick step giving about 5 ticks over span. */
static double tick_step(double span) {
    double raw = span / 5, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static void frame_begin(Sb *b, const char *id, const char *title, const Ax *a, const char *xlabel,
                        const char *ylabel) {
    sb_printf(b,
              "<figure><svg id=\"%s\" class=\"chart\" viewBox=\"0 0 %d %d\" role=\"img\" "
              "aria-label=\"%s\" font-size=\"11\">\n",
              id, W, H, title);
    sb_printf(b, "<text x=\"%d\" y=\"18\" font-size=\"13\" font-weight=\"600\">%s</text>\n", ML,
              title);
    sb_printf(b, "<g stroke=\"#999\"><line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>", ML, H - MB,
              W - MR, H - MB);
    sb_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/></g>\n", ML, MT, ML, H - MB);
    sb_lit(b, "<g fill=\"#444\">");
    if (a->logx) {
        for (double x = a->x0; x <= a->x1 * 1.0001; x *= 10)
            sb_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>", ax_x(a, x),
                      H - MB + 15, x);
    } else {
        double s = tick_step(a->x1 - a->x0);
        for (double x = ceil(a->x0 / s) * s; x <= a->x1 + s * 1e-6; x += s)
            sb_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>", ax_x(a, x),
                      H - MB + 15, fabs(x) < s * 1e-6 ? 0 : x);
    }
    double s = tick_step(a->y1 - a->y0);
    for (double y = ceil(a->y0 / s) * s; y <= a->y1 + s * 1e-6; y += s)
        sb_printf(b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>", ML - 5,
                  ax_y(a, y) + 4, fabs(y) < s * 1e-6 ? 0 : y);
    sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>", (ML + W - MR) / 2,
              H - 10, xlabel);
    sb_printf(b,
              "<text transform=\"translate(14 %d) rotate(-90)\" text-anchor=\"middle\">%s</text>",
              (MT + H - MB) / 2, ylabel);
    sb_lit(b, "</g>\n");
}

static void frame_end(Sb *b, const char *caption) {
    sb_printf(b, "</svg><figcaption>%s</figcaption></figure>\n", caption);
}

/* A vertical marker line at x with a label above the plot area. */
static void vline(Sb *b, const Ax *a, double x, const char *color, const char *dash,
                  const char *label, int row) {
    double px = ax_x(a, x);
    sb_printf(b,
              "<line class=\"marker\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" "
              "stroke-width=\"1.5\" stroke-dasharray=\"%s\"/>",
              px, px, MT + 4, H - MB, color, dash);
    sb_printf(b, "<text x=\"%.1f\" y=\"%d\" fill=\"%s\" text-anchor=\"%s\">%s</text>\n", px + 4,
              MT + 14 + 12 * row, color, px > W - 160 ? "end" : "start", label);
}

static void legend(Sb *b, int i, const char *color, const char *label) {
    int x = W - MR - 150, y = MT + 8 + 16 * i;
    sb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"10\" fill=\"%s\"/>", x, y, color);
    sb_printf(b, "<text x=\"%d\" y=\"%d\">%s</text>\n", x + 17, y + 9, label);
}

static void polyline_begin(Sb *b, const char *color, double width) {
    sb_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\" points=\"", color,
              width);
}

static void point(Sb *b, const Ax *a, double x, double y) {
    sb_printf(b, "%.1f,%.1f ", ax_x(a, x), ax_y(a, y));
}

static void polyline_end(Sb *b) {
    sb_lit(b, "\"/>\n");
}

/* ---- charts ---- */

static void line_chart(Sb *b, const char *id, const char *title, const double *v, int n,
                       const char *ylabel, const char *color, int unit_range) {
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++)
        lo = fmin(lo, v[i]), hi = fmax(hi, v[i]);
    Ax a = {1, n > 1 ? n : 2, unit_range ? fmax(0, floor(lo * 10) / 10) : 0, hi, 0};
    if (unit_range)
        a.y1 = fmin(1, ceil(hi * 10 + 1e-9) / 10);
    if (!(a.y1 > a.y0))
        a.y1 = a.y0 + 1;
    frame_begin(b, id, title, &a, "epoch", ylabel);
    polyline_begin(b, color, 2);
    for (int i = 0; i < n; i++)
        point(b, &a, i + 1, v[i]);
    polyline_end(b);
    for (int i = 0; i < n; i++)
        sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>", ax_x(&a, i + 1),
                  ax_y(&a, v[i]), color);
    frame_end(b, "");
}

void svg_history(Sb *b, const double *loss, const double *acc, int n) {
    sb_lit(b, "<div class=\"pair\">");
    line_chart(b, "chart-loss", "Training loss per epoch", loss, n, "contrastive loss", BLUE, 0);
    line_chart(b, "chart-val-acc", "Validation accuracy per epoch (at 0.5)", acc, n, "accuracy",
               GREEN, 1);
    sb_lit(b, "</div>\n");
}

/* The distance that a fraction q of the pairs do not exceed. */
static double quantile(const SortedPairs *p, double q) {
    size_t i = (size_t)(q * (double)(p->n - 1));
    return p->n ? p->d[i] : 1;
}

void svg_distances(Sb *b, const SortedPairs *p, float margin, float threshold) {
    enum { BINS = 60 };
    double top = fmax(fmax(margin, threshold) * 1.15, quantile(p, 0.995));
    double cnt[2][BINS] = {{0}}, tot[2] = {0}, peak = 0;
    for (size_t i = 0; i < p->n; i++) {
        int k = p->y[i] > 0.5f, bin = (int)(p->d[i] / top * BINS);
        cnt[k][bin < 0 ? 0 : bin >= BINS ? BINS - 1 : bin]++;
        tot[k]++;
    }
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < BINS; i++)
            peak = fmax(peak, cnt[k][i] /= tot[k] > 0 ? tot[k] : 1);
    Ax a = {0, top, 0, peak * 1.1 > 0 ? peak * 1.1 : 1, 0};
    frame_begin(b, "chart-hist", "Distances of test pairs", &a, "distance", "share of the pairs");
    const char *color[2] = {ORANGE, BLUE};
    for (int k = 0; k < 2; k++) {
        sb_printf(
            b, "<path class=\"%s\" fill=\"%s\" fill-opacity=\"0.45\" stroke=\"%s\" d=\"M%.1f,%.1f",
            k ? "positive" : "negative", color[k], color[k], ax_x(&a, 0), ax_y(&a, 0));
        for (int i = 0; i < BINS; i++)
            sb_printf(b, " L%.1f,%.1f L%.1f,%.1f", ax_x(&a, top * i / BINS), ax_y(&a, cnt[k][i]),
                      ax_x(&a, top * (i + 1) / BINS), ax_y(&a, cnt[k][i]));
        sb_printf(b, " L%.1f,%.1f Z\"/>\n", ax_x(&a, top), ax_y(&a, 0));
    }
    char lab[64];
    snprintf(lab, sizeof lab, "threshold %.3f", threshold);
    vline(b, &a, threshold, "#000000", "5 3", lab, 0);
    snprintf(lab, sizeof lab, "margin %.3g", margin);
    vline(b, &a, margin, VERMILLION, "2 2", lab, 1);
    legend(b, 2, BLUE, "same (positive pairs)");
    legend(b, 3, ORANGE, "different (negative)");
    frame_end(b, "Each histogram is scaled to its own pairs. Training pulls positive pairs toward "
                 "0 and pushes negative pairs out to the margin; pairs closer than the threshold "
                 "are judged the same.");
}

/* Walking the sorted distances, the threshold just above the i-th one
 * accepts the first i pairs: running counts give its FAR and TAR. */
void svg_roc(Sb *b, const SortedPairs *p, const Metrics *m) {
    double P = 0, N = 0;
    for (size_t i = 0; i < p->n; i++)
        *(p->y[i] > 0.5f ? &P : &N) += 1;
    Ax a = {1e-4, 1, 0, 1, 1};
    frame_begin(b, "chart-roc", "ROC of test pairs", &a, "false accept rate (log scale)",
                "true accept rate");
    polyline_begin(b, "#bbbbbb", 1); /* chance: TAR = FAR */
    for (double x = 1e-4; x <= 1.0001; x *= 1.2589)
        point(b, &a, x, x);
    polyline_end(b);
    polyline_begin(b, BLUE, 2);
    double tp = 0, fp = 0, last_far = -1, last_tar = -1;
    point(b, &a, a.x0, 0);
    for (size_t i = 0; i < p->n && P > 0 && N > 0; i++) {
        *(p->y[i] > 0.5f ? &tp : &fp) += 1;
        double far = fp / N, tar = tp / P;
        /* Every step where few negatives are accepted (the log axis shows them), else a few
         * hundred. */
        if (i + 1 == p->n || (far != last_far && far < 0.02) || fabs(far - last_far) > 0.004 ||
            fabs(tar - last_tar) > 0.004) {
            point(b, &a, far, tar);
            last_far = far, last_tar = tar;
        }
    }
    polyline_end(b);
    char lab[96];
    if (isfinite(m->eer)) {
        sb_printf(b, "<circle id=\"roc-eer\" cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"/>",
                  ax_x(&a, m->eer), ax_y(&a, 1 - m->eer), VERMILLION);
        sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\">EER %.4f</text>\n",
                  ax_x(&a, m->eer) + 8, ax_y(&a, 1 - m->eer) + 14, VERMILLION, m->eer);
    }
    const double fars[2] = {1e-2, 1e-3}, tars[2] = {m->tar_at_far_1e2, m->tar_at_far_1e3};
    for (int k = 0; k < 2; k++) {
        if (!isfinite(tars[k]))
            continue;
        double x = ax_x(&a, fars[k]), y = ax_y(&a, tars[k]);
        sb_printf(b,
                  "<path class=\"tar-at-far\" d=\"M%.1f,%.1f l6,6 l-6,6 l-6,-6 Z\" fill=\"%s\"/>",
                  x, y - 6, k ? PURPLE : GREEN);
        sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\">TAR@FAR %g: %.4f</text>\n", x + 8,
                  y - 8 - 14 * k, k ? PURPLE : GREEN, fars[k], tars[k]);
    }
    snprintf(lab, sizeof lab, "AUC %.4f", m->roc_auc);
    sb_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"13\">%s</text>\n", W - MR - 110, H - MB - 12,
              lab);
    frame_end(b, "A pair is accepted when its distance is under the threshold; each point is one "
                 "threshold. The grey curve is chance.");
}

void svg_accuracy(Sb *b, const SortedPairs *p, float threshold) {
    enum { STEPS = 240 };
    double top = fmax(threshold * 2, quantile(p, 0.995)), N = 0;
    for (size_t i = 0; i < p->n; i++)
        N += p->y[i] <= 0.5f;
    Ax a = {0, top, 0, 1, 0};
    frame_begin(b, "chart-acc", "Accuracy against threshold (test pairs)", &a, "threshold",
                "accuracy");
    polyline_begin(b, BLUE, 2);
    size_t i = 0;
    double tp = 0, fp = 0, at[2] = {NAN, NAN};
    const double marks[2] = {0.5, threshold};
    for (int s = 0; s <= STEPS; s++) {
        double t = top * s / STEPS;
        while (i < p->n && p->d[i] < t)
            *(p->y[i++] > 0.5f ? &tp : &fp) += 1;
        point(b, &a, t, p->n ? (tp + N - fp) / (double)p->n : 0);
    }
    polyline_end(b);
    for (int k = 0; k < 2; k++) { /* the exact accuracy at each marked threshold */
        tp = fp = 0;
        for (size_t j = 0; j < p->n && p->d[j] < marks[k]; j++)
            *(p->y[j] > 0.5f ? &tp : &fp) += 1;
        at[k] = p->n ? (tp + N - fp) / (double)p->n : NAN;
    }
    char lab[64];
    snprintf(lab, sizeof lab, "0.5: %.4f", at[0]);
    vline(b, &a, 0.5, "#000000", "5 3", lab, 0);
    snprintf(lab, sizeof lab, "calibrated %.3f: %.4f", threshold, at[1]);
    vline(b, &a, threshold, VERMILLION, "2 2", lab, 1);
    frame_end(b, "The share of test pairs judged right by each threshold. The calibrated "
                 "threshold was chosen on validation pairs, never on these.");
}

void svg_scatter(Sb *b, const float *xy, const int *label, int k, char *const *names,
                 int n_classes) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < k; i++) {
        x0 = fmin(x0, xy[2 * i]), x1 = fmax(x1, xy[2 * i]);
        y0 = fmin(y0, xy[2 * i + 1]), y1 = fmax(y1, xy[2 * i + 1]);
    }
    if (!(x1 > x0))
        x0 = -1, x1 = 1;
    if (!(y1 > y0))
        y0 = -1, y1 = 1;
    /* Room on the right for the legend. */
    Ax a = {x0, x1 + (x1 - x0) * 0.38, y0, y1, 0};
    frame_begin(b, "chart-pca", "Test embeddings, first two principal components", &a, "PC 1",
                "PC 2");
    for (int c = 0; c < n_classes; c++) {
        sb_printf(b, "<g class=\"class\" fill=\"%s\" fill-opacity=\"0.6\">",
                  report_palette[c % report_n_palette]);
        for (int i = 0; i < k; i++)
            if (label[i] == c)
                sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"1.8\"/>", ax_x(&a, xy[2 * i]),
                          ax_y(&a, xy[2 * i + 1]));
        sb_lit(b, "</g>\n");
    }
    for (int c = 0; c < n_classes && c < 14; c++) {
        Sb name = {0};
        sb_escape(&name, c == 13 && n_classes > 14 ? "…" : names[c]);
        legend(b, c, report_palette[c % report_n_palette], name.s ? name.s : "");
        free(name.s);
    }
    char cap[160];
    snprintf(cap, sizeof cap,
             "%d test embeddings projected on the two directions of largest variance%s.", k,
             n_classes > report_n_palette ? "; colours repeat after 10 classes" : "");
    frame_end(b, cap);
}
