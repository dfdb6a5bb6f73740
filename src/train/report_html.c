/*
 * report_html.c — the HTML training report (report_html.h): gathers what the
 * charts need from the model and the charted split (every sample embedded
 * once, the pairs the metrics were computed on, their distances sorted), then
 * writes one self-contained page: inline CSS, inline SVG (report_svg.c), the
 * hardest pairs' images as PNG data URIs, no script, and a
 * Content-Security-Policy that lets the file fetch nothing at all.
 */
#include "siamese/report_html.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report_html_int.h"
#include "siamese/blas.h"
#include "siamese/common.h"
#include "siamese/report.h"

#define REPORT_PCA_POINTS 3000 /* embeddings in the projection (all, if fewer) */
#define REPORT_MISTAKES 16     /* pairs shown of each kind of error */

typedef struct {
    const ReportHtml *r;
    int E;
    float *emb;   /* data->n x E */
    Pair *pairs;  /* n, in train_eval_pairs() order */
    size_t n;     /* pairs */
    size_t *rank; /* pair indices by increasing distance */
    float *dist;  /* per pair, in pair order */
    float *d, *y; /* distances and labels in rank order */
} Gathered;

static void gathered_free(Gathered *g) {
    free(g->emb);
    free(g->pairs);
    free(g->rank);
    free(g->dist);
    free(g->d);
    free(g->y);
}

/* qsort_r order of pair indices by their distance (ctx): NaN last, ties by
 * index, so the order is the same on every run. */
static int by_distance(const void *a, const void *b, void *ctx) {
    const float *dist = ctx;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    float x = dist[i], y = dist[j];
    if (x < y || (!isnan(x) && isnan(y)))
        return -1;
    if (x > y || (isnan(x) && !isnan(y)))
        return 1;
    return (i > j) - (i < j);
}

static int gather(const ReportHtml *r, Gathered *g, char *err) {
    const Dataset *d = r->data;
    memset(g, 0, sizeof *g);
    g->r = r;
    const ModelArch *a = model_arch(r->model);
    if (d->h != a->in_h || d->w != a->in_w || a->in_c != 1)
        return sm_err(err, -EINVAL, "report: images are %dx%dx1, the model takes %dx%dx%d", d->h,
                      d->w, a->in_h, a->in_w, a->in_c);
    PairsInfo info;
    int rc = train_eval_pairs(d, r->pairs, r->seed, &g->pairs, &info, err);
    if (rc < 0)
        return rc;
    g->n = info.n, g->E = model_embed_dim(r->model);
    g->emb = malloc((size_t)d->n * g->E * sizeof *g->emb);
    g->rank = malloc(g->n * sizeof *g->rank);
    g->dist = malloc(g->n * sizeof *g->dist);
    g->d = malloc(g->n * sizeof *g->d);
    g->y = malloc(g->n * sizeof *g->y);
    if (!g->emb || !g->rank || !g->dist || !g->d || !g->y ||
        model_embed(r->model, d->x, d->n, g->emb) < 0)
        return sm_err(err, -ENOMEM, "report: out of memory");
    for (size_t i = 0; i < g->n; i++) {
        const Pair *p = &g->pairs[i];
        g->dist[i] =
            model_distance(g->emb + (size_t)p->a * g->E, g->emb + (size_t)p->b * g->E, g->E);
        g->rank[i] = i;
    }
    qsort_r(g->rank, g->n, sizeof *g->rank, by_distance, g->dist);
    for (size_t i = 0; i < g->n; i++)
        g->d[i] = g->dist[g->rank[i]], g->y[i] = g->pairs[g->rank[i]].y;
    return 0;
}

/* ---- images ---- */

static void png_sink(png_structp png, png_bytep data, size_t n) {
    sb_add(png_get_io_ptr(png), (const char *)data, n);
}

static void png_flush_none(png_structp png) {
    (void)png;
}

/* An h x w gray image (floats in [0,1]) as PNG bytes in out; 0 or -1. */
static int png_encode(const float *x, int h, int w, Sb *out) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *row = malloc((size_t)w);
    volatile int rc = -1;
    if (!png || !info || !row)
        goto out;
    if (setjmp(png_jmpbuf(png)))
        goto out;
    png_set_write_fn(png, out, png_sink, png_flush_none);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int i = 0; i < h; i++) {
        for (int j = 0; j < w; j++) {
            float v = x[(size_t)i * w + j];
            row[j] = (uint8_t)lrintf(255.0f * (v < 0 ? 0 : v > 1 ? 1 : v));
        }
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    rc = out->oom ? -1 : 0;
out:
    png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
    free(row);
    return rc;
}

static void base64(Sb *b, const unsigned char *p, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        char q[4] = {tab[v >> 18], tab[v >> 12 & 63], i + 1 < n ? tab[v >> 6 & 63] : '=',
                     i + 2 < n ? tab[v & 63] : '='};
        sb_add(b, q, 4);
    }
}

void report_sample_img(Sb *b, const Dataset *d, int i) {
    Sb png = {0};
    size_t hw = (size_t)d->h * d->w;
    const float *x = d->x + (size_t)i * hw * (d->c == 3 ? 3 : 1);
    float *gray = d->c == 3 ? malloc(hw * sizeof *gray) : NULL; /* colour: shown as its mean */
    for (size_t k = 0; gray && k < hw; k++)
        gray[k] = (x[3 * k] + x[3 * k + 1] + x[3 * k + 2]) / 3.0f;
    if ((d->c != 3 || gray) && png_encode(gray ? gray : x, d->h, d->w, &png) == 0) {
        sb_lit(b, "<img alt=\"\" src=\"data:image/png;base64,");
        base64(b, (const unsigned char *)png.s, png.len);
        sb_printf(b, "\" width=\"%d\" height=\"%d\">", d->w * 2, d->h * 2);
    } else {
        b->oom = 1;
    }
    free(gray);
    free(png.s);
}

/* One pair: both images, their classes and distance. */
static void pair_card(Sb *b, const Gathered *g, size_t pi) {
    const Dataset *d = g->r->data;
    const Pair *p = &g->pairs[pi];
    sb_printf(b, "<div class=\"pair-card\" data-distance=\"%.6f\">", g->dist[pi]);
    report_sample_img(b, d, p->a);
    report_sample_img(b, d, p->b);
    sb_printf(b, "<span>d = %.4f<br>", g->dist[pi]);
    sb_escape(b, d->class_names[d->y[p->a]]);
    sb_lit(b, " / ");
    sb_escape(b, d->class_names[d->y[p->b]]);
    sb_lit(b, "</span></div>\n");
}

static void section_mistakes(Sb *b, const Gathered *g, float thr) {
    int n = 0;
    sb_printf(b,
              "<section id=\"mistakes\"><h2>The hardest mistakes</h2>\n"
              "<h3>False accepts: different, yet closest (d &lt; %.4f)</h3>"
              "<div id=\"false-accepts\" class=\"cards\">\n",
              thr);
    for (size_t i = 0; i < g->n && n < REPORT_MISTAKES && g->d[i] < thr; i++)
        if (g->y[i] < 0.5f)
            pair_card(b, g, g->rank[i]), n++;
    if (!n)
        sb_lit(b, "<p>None.</p>");
    sb_printf(b,
              "</div>\n<h3>False rejects: the same, yet farthest (d &ge; %.4f)</h3>"
              "<div id=\"false-rejects\" class=\"cards\">\n",
              thr);
    n = 0;
    for (size_t i = g->n; i-- > 0 && n < REPORT_MISTAKES && !(g->d[i] < thr);)
        if (g->y[i] > 0.5f && !isnan(g->d[i]))
            pair_card(b, g, g->rank[i]), n++;
    if (!n)
        sb_lit(b, "<p>None.</p>");
    sb_lit(b, "</div></section>\n");
}

/* ---- the projection ---- */

/* The top eigenvector of the symmetric E x E matrix c by power iteration
 * (deterministic start), into v. */
static void top_eigenvector(const double *c, int E, double *v) {
    double *t = malloc((size_t)E * sizeof *t);
    if (!t)
        return;
    for (int i = 0; i < E; i++)
        v[i] = 1.0 + 0.01 * i;
    for (int it = 0; it < 300; it++) {
        double norm = 0;
        for (int i = 0; i < E; i++) {
            double s = 0;
            for (int j = 0; j < E; j++)
                s += c[(size_t)i * E + j] * v[j];
            t[i] = s, norm += s * s;
        }
        norm = sqrt(norm);
        if (!(norm > 0))
            break;
        for (int i = 0; i < E; i++)
            v[i] = t[i] / norm;
    }
    free(t);
}

/* k evenly spaced samples projected on the first two principal components:
 * xy (2k), label (k). 0 or -ENOMEM. */
static int pca(const Gathered *g, int k, float *xy, int *label) {
    const Dataset *d = g->r->data;
    int E = g->E;
    double *mean = calloc((size_t)E, sizeof *mean), *c = calloc((size_t)E * E, sizeof *c),
           *v = calloc(2 * (size_t)E, sizeof *v);
    int rc = mean && c && v ? 0 : -ENOMEM;
    for (int s = 0; rc == 0 && s < k; s++)
        for (int i = 0; i < E; i++)
            mean[i] += g->emb[(size_t)((int64_t)s * d->n / k) * E + i] / k;
    for (int s = 0; rc == 0 && s < k; s++) {
        const float *e = g->emb + (size_t)((int64_t)s * d->n / k) * E;
        for (int i = 0; i < E; i++)
            for (int j = 0; j < E; j++)
                c[(size_t)i * E + j] += (e[i] - mean[i]) * (e[j] - mean[j]);
    }
    for (int pc = 0; rc == 0 && pc < 2; pc++) {
        double *u = v + (size_t)pc * E, lambda = 0;
        top_eigenvector(c, E, u);
        for (int i = 0; i < E; i++)
            for (int j = 0; j < E; j++)
                lambda += u[i] * c[(size_t)i * E + j] * u[j];
        for (int i = 0; i < E; i++) /* deflate: the next one is orthogonal */
            for (int j = 0; j < E; j++)
                c[(size_t)i * E + j] -= lambda * u[i] * u[j];
    }
    for (int s = 0; rc == 0 && s < k; s++) {
        int idx = (int)((int64_t)s * d->n / k);
        const float *e = g->emb + (size_t)idx * E;
        double p0 = 0, p1 = 0;
        for (int i = 0; i < E; i++)
            p0 += (e[i] - mean[i]) * v[i], p1 += (e[i] - mean[i]) * v[E + i];
        xy[2 * s] = (float)p0, xy[2 * s + 1] = (float)p1, label[s] = d->y[idx];
    }
    free(mean);
    free(c);
    free(v);
    return rc;
}

static void section_projection(Sb *b, const Gathered *g) {
    const Dataset *d = g->r->data;
    int k = d->n < REPORT_PCA_POINTS ? d->n : REPORT_PCA_POINTS;
    float *xy = malloc(2 * (size_t)k * sizeof *xy);
    int *label = malloc((size_t)k * sizeof *label);
    sb_lit(b, "<section id=\"projection\"><h2>Where the embeddings lie</h2>\n");
    if (xy && label && pca(g, k, xy, label) == 0)
        svg_scatter(b, xy, label, k, d->class_names, d->n_classes);
    else
        b->oom = 1;
    sb_lit(b, "</section>\n");
    free(xy);
    free(label);
}

/* ---- history, metrics, settings ---- */

/* The numbers of a JSON array into a new array (*n of them); *n is -1 when
 * an entry is not a finite number (the summary comes from a model file). */
static double *numbers_of(const cJSON *a, int *n) {
    *n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : 0;
    double *v = malloc((size_t)(*n ? *n : 1) * sizeof *v);
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, a) {
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
            *n = -1;
        else if (v && i < *n)
            v[i++] = x->valuedouble;
    }
    return v;
}

static void section_history(Sb *b, const cJSON *training) {
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(training, "history");
    int nl, na;
    double *loss = numbers_of(cJSON_GetObjectItemCaseSensitive(h, "loss"), &nl);
    double *acc = numbers_of(cJSON_GetObjectItemCaseSensitive(h, "val_accuracy"), &na);
    sb_lit(b, "<section id=\"history\"><h2>Training</h2>\n");
    if (!loss || !acc)
        b->oom = 1;
    else if (nl > 0 && nl == na)
        svg_history(b, loss, acc, nl);
    else
        sb_lit(b, "<p>This model's file records no per-epoch history.</p>\n");
    sb_lit(b, "</section>\n");
    free(loss);
    free(acc);
}

/* One row per split, one column per metric: the text --json prints. */
static void section_metrics(Sb *b, const TrainReport *rep) {
    const struct {
        const char *name;
        const Metrics *m;
    } splits[] = {{"train", &rep->train}, {"validation", &rep->val}, {"test", &rep->test}};
    int header = 0;
    sb_lit(b, "<section id=\"metrics\"><h2>Metrics</h2>\n<table id=\"metrics-table\">");
    for (size_t s = 0; s < SM_ARRAY_LEN(splits); s++) {
        if (!splits[s].m->pairs)
            continue;
        cJSON *o = report_metrics_json(splits[s].m), *x;
        if (!o) {
            b->oom = 1;
            continue;
        }
        if (!header++) {
            sb_lit(b, "<tr><th>split</th>");
            cJSON_ArrayForEach(x, o) sb_printf(b, "<th>%s</th>", x->string);
            sb_lit(b, "</tr>\n");
        }
        sb_printf(b, "<tr data-split=\"%s\"><td>%s</td>", splits[s].name, splits[s].name);
        cJSON_ArrayForEach(x, o) {
            char *t = cJSON_PrintUnformatted(x);
            sb_lit(b, "<td>");
            sb_escape(b, t ? t : "?");
            sb_lit(b, "</td>");
            free(t);
        }
        sb_lit(b, "</tr>\n");
        cJSON_Delete(o);
    }
    sb_lit(b, "</table>\n<p>The same numbers as <code>--json</code>; accuracy at 0.5 and at the "
              "calibrated threshold, TAR at a false accept rate of 1e-2 and 1e-3.</p></section>\n");
}

static void row(Sb *b, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void row(Sb *b, const char *key, const char *fmt, ...) {
    char v[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    sb_lit(b, "<tr><th>");
    sb_escape(b, key);
    sb_lit(b, "</th><td>");
    sb_escape(b, v);
    sb_lit(b, "</td></tr>\n");
}

static void section_settings(Sb *b, const Gathered *g, const cJSON *training) {
    const ReportHtml *r = g->r;
    const Dataset *d = r->data;
    const ModelArch *a = model_arch(r->model);
    sb_lit(b, "<section id=\"settings\"><h2>Run settings</h2>\n<table id=\"settings-table\">\n");
    row(b, "written by", "siamesed %s", r->command);
    row(b, "model", "%s (fingerprint %.16s)", r->model_path, model_fingerprint(r->model));
    row(b, "architecture", "input %dx%dx%d: %s", a->in_h, a->in_w, a->in_c,
        model_arch_spec(r->model));
    row(b, "margin / threshold", "%g / %.6g (calibrated)", model_margin(r->model),
        model_threshold(r->model));
    row(b, "charted data", "%s, %s split: %d samples, %d classes, %zu pairs (%s)", d->source,
        r->split, d->n, d->n_classes, g->n, pairs_mode_name(r->pairs));
    row(b, "BLAS kernel (this run)", "%s", blas_kernel());
    if (r->with_throughput)
        row(b, "training throughput", "%.0f pairs/s", r->rep->pairs_per_s);
    const cJSON *x;
    cJSON_ArrayForEach(x, training) { /* the summary stored in the model, scalars only */
        char key[96];
        snprintf(key, sizeof key, "training: %.80s", x->string ? x->string : "?");
        if (cJSON_IsString(x))
            row(b, key, "%s", x->valuestring);
        else if (cJSON_IsNumber(x))
            row(b, key, "%.7g", x->valuedouble);
        else if (cJSON_IsBool(x))
            row(b, key, "%s", cJSON_IsTrue(x) ? "yes" : "no");
    }
    sb_lit(b, "</table></section>\n");
}

/* ---- the document ---- */

static const char style[] =
    "body{font:14px/1.45 system-ui,sans-serif;color:#1d1d1f;max-width:1180px;margin:0 auto;"
    "padding:0 16px 40px}h1{font-size:22px}"
    "h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}h3{font-size:14px}"
    "figure{display:inline-block;margin:0 12px 12px 0;vertical-align:top;width:560px;"
    "max-width:100%}"
    "svg.chart{width:100%;height:auto;background:#fff;border:1px solid #e3e3e3}"
    "figcaption{font-size:12px;color:#555}"
    "table{border-collapse:collapse;font-size:13px}"
    "th,td{padding:3px 10px;border-bottom:1px solid #e3e3e3;text-align:left}"
    ".cards{display:flex;flex-wrap:wrap;gap:8px}"
    ".pair-card{border:1px solid #ddd;padding:4px;font-size:11px;text-align:center;width:132px}"
    /* Any input size shows as two 56 px squares, 28x28 at twice its size. */
    ".pair-card img{width:56px;height:56px;object-fit:contain;image-rendering:pixelated;"
    "margin:1px}"
    ".pair-card span{display:block}code{background:#f2f2f2;padding:0 3px}";

static void document(Sb *b, const Gathered *g, const cJSON *training) {
    const ReportHtml *r = g->r;
    const TrainReport *rep = r->rep;
    const Metrics *m = rep->test.pairs ? &rep->test : &rep->train;
    SortedPairs sp = {g->d, g->y, g->n};
    sb_lit(b, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
              "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
              "img-src data:; style-src 'unsafe-inline'\">\n"
              "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
              "<link rel=\"icon\" href=\"data:,\">\n<title>siamesed report: ");
    sb_escape(b, r->model_path);
    sb_printf(b, "</title>\n<style>%s</style></head><body>\n<h1>siamesed report: ", style);
    sb_escape(b, r->model_path);
    sb_printf(b,
              "</h1>\n<p>Written by <code>siamesed %s</code>. Charts use the %s split's %zu "
              "pairs; the threshold is %.4f, calibrated on validation pairs.</p>\n",
              r->command, r->split, g->n, model_threshold(r->model));
    section_metrics(b, rep);
    section_history(b, training);
    sb_lit(b, "<section id=\"distances\"><h2>Distances</h2>\n");
    svg_distances(b, &sp, model_margin(r->model), model_threshold(r->model));
    svg_accuracy(b, &sp, model_threshold(r->model));
    sb_lit(b, "</section>\n<section id=\"roc\"><h2>Verification</h2>\n");
    svg_roc(b, &sp, m);
    sb_lit(b, "</section>\n");
    section_projection(b, g);
    section_mistakes(b, g, model_threshold(r->model));
    section_settings(b, g, training);
    sb_lit(b, "</body></html>\n");
}

int report_html_write(const char *path, const ReportHtml *r, char *err) {
    assert(r && r->model && r->data && r->rep && r->command && r->split);
    Gathered g;
    Sb b = {0};
    cJSON *training = cJSON_Parse(model_training(r->model));
    int rc = gather(r, &g, err);
    if (rc == 0) {
        document(&b, &g, training);
        rc = b.oom ? sm_err(err, -ENOMEM, "report: out of memory")
                   : sm_write_file_atomic(path, b.s, b.len, err);
    }
    free(b.s);
    cJSON_Delete(training);
    gathered_free(&g);
    return rc;
}
