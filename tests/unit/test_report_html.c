/*
 * test_report_html.c — the HTML report (src/train/report_html.c,
 * report_svg.c) from a short real training run on a slice of Fashion-MNIST:
 * every chart is present, the loss chart has a point per epoch, the metrics
 * table prints exactly what --json prints, the hardest mistakes are the
 * right pairs in the right order (checked against distances computed here
 * through the public APIs), the page fetches nothing and stays small, and a
 * dataset the model cannot take is refused.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "siamese/common.h"
#include "siamese/report.h"
#include "siamese/report_html.h"

#include "check_util.h"

#define FMNIST "/usr/share/datasets/fashion-mnist"

static Dataset *train, *test;
static Model *model;
static TrainReport rep;
static char *html;
static size_t html_len;
static char path[256];

static Dataset *slice(DatasetSplit split, int n) {
    Dataset *d = NULL;
    char err[SM_ERRMAX];
    ck_assert_msg(dataset_load(FMNIST, split, 0, 0, NULL, &d, err) == 0, "%s", err);
    ck_assert_int_ge(d->n, n);
    d->n = n;
    return d;
}

/* Trains 2 epochs on 3000 samples and writes the report of 2500 test samples. */
static void setup(void) {
    char err[SM_ERRMAX];
    train = slice(DATASET_TRAIN, 3000), test = slice(DATASET_TEST, 2500);
    TrainConfig tc;
    train_config_default(&tc);
    tc.epochs = 2, tc.threads = 1, tc.data_name = "fmnist-slice";
    ck_assert_msg(train_run(&tc, train, test, &model, &rep, err) == 0, "%s", err);
    snprintf(path, sizeof path, "%s/report-%ld.html", P_tmpdir, (long)getpid());
    ReportHtml r = {"--train", model, "slice.safetensors", test, "test", tc.pairs, tc.seed,
                    &rep,      1};
    ck_assert_msg(report_html_write(path, &r, err) == 0, "%s", err);
    uint8_t *buf;
    ck_assert_msg(sm_read_file(path, 4 << 20, &buf, &html_len, err) == 0, "%s", err);
    html = (char *)buf;
}

static void teardown(void) {
    unlink(path);
    free(html);
    model_free(model);
    dataset_free(train);
    dataset_free(test);
}

/* The text of the element that starts at id="name" up to its closing tag. */
static char *element(const char *id, const char *close) {
    char key[64];
    snprintf(key, sizeof key, "id=\"%s\"", id);
    const char *a = strstr(html, key);
    ck_assert_msg(a, "no element %s", key);
    const char *b = strstr(a, close);
    ck_assert_ptr_nonnull(b);
    return strndup(a, (size_t)(b - a));
}

static int count(const char *s, const char *what) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

START_TEST(every_chart_is_there) {
    static const char *const ids[] = {"chart-loss",    "chart-val-acc", "chart-hist",
                                      "chart-roc",     "chart-acc",     "chart-pca",
                                      "roc-eer",       "metrics-table", "settings-table",
                                      "false-accepts", "false-rejects"};
    for (size_t i = 0; i < SM_ARRAY_LEN(ids); i++) {
        char key[64];
        snprintf(key, sizeof key, "id=\"%s\"", ids[i]);
        ck_assert_msg(strstr(html, key), "the report lacks %s", key);
    }
    ck_assert_int_eq(strncmp(html, "<!doctype html>", 15), 0);
    char *loss = element("chart-loss", "</svg>");
    ck_assert_int_eq(count(loss, "<circle"), 2); /* one point per epoch */
    free(loss);
    char *pca = element("chart-pca", "</svg>");
    ck_assert_int_eq(count(pca, "<circle"), 2500); /* every test sample: fewer than 3000 */
    free(pca);
    char *roc = element("chart-roc", "</svg>");
    ck_assert_int_eq(count(roc, "class=\"tar-at-far\""), 2);
    free(roc);
    char *hist = element("chart-hist", "</svg>");
    ck_assert_int_eq(count(hist, "class=\"marker\""), 2); /* threshold and margin */
    free(hist);
}
END_TEST

START_TEST(metrics_as_json_prints_them) {
    char *table = element("metrics-table", "</table>");
    const char *row = strstr(table, "<tr data-split=\"test\">");
    ck_assert_ptr_nonnull(row);
    cJSON *o = report_metrics_json(&rep.test), *x;
    const char *p = row;
    cJSON_ArrayForEach(x, o) {
        char *t = cJSON_PrintUnformatted(x), cell[256];
        int n = snprintf(cell, sizeof cell, "<td>");
        for (const char *c = t; *c && n < 200; c++) /* as HTML text: quotes escaped */
            n += snprintf(cell + n, sizeof cell - (size_t)n, "%s",
                          *c == '"' ? "&quot;" : (char[]){*c, 0});
        snprintf(cell + n, sizeof cell - (size_t)n, "</td>");
        ck_assert_msg((p = strstr(p, cell)), "test row lacks %s", cell);
        free(t);
    }
    ck_assert_ptr_nonnull(strstr(table, "<tr data-split=\"train\">"));
    ck_assert_ptr_nonnull(strstr(table, "<tr data-split=\"validation\">"));
    cJSON_Delete(o);
    free(table);
}
END_TEST

/* The distances printed in data-distance="..." attributes of s, in order. */
static int distances(const char *s, double *out, int max) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, "data-distance=\"")) && n < max; p++)
        out[n++] = strtod(p + 15, NULL);
    return n;
}

START_TEST(hardest_mistakes_are_the_right_pairs) {
    char err[SM_ERRMAX];
    Pair *p;
    PairsInfo info;
    ck_assert(train_eval_pairs(test, PAIRS_AUTO, 1, &p, &info, err) == 0);
    int E = model_embed_dim(model);
    float *emb = malloc((size_t)test->n * E * sizeof *emb), thr = model_threshold(model);
    ck_assert_int_eq(model_embed(model, test->x, test->n, emb), 0);
    int fa = 0, fr = 0;
    double min_fa = INFINITY, max_fr = -INFINITY;
    for (size_t i = 0; i < info.n; i++) {
        double d = model_distance(emb + (size_t)p[i].a * E, emb + (size_t)p[i].b * E, E);
        if (p[i].y < 0.5f && d < thr)
            fa++, min_fa = fmin(min_fa, d);
        if (p[i].y > 0.5f && d >= thr)
            fr++, max_fr = fmax(max_fr, d);
    }
    ck_assert_int_gt(fa, 16); /* a 2-epoch model makes plenty of both */
    ck_assert_int_gt(fr, 16);
    double v[64];
    char *a = element("false-accepts", "</div></section>");
    char *accepts = strndup(a, (size_t)(strstr(a, "id=\"false-rejects\"") - a));
    int n = distances(accepts, v, 64);
    ck_assert_int_eq(n, 16);
    ck_assert_double_eq_tol(v[0], min_fa, 2e-6);
    for (int i = 0; i < n; i++)
        ck_assert(v[i] < thr && (i == 0 || v[i] >= v[i - 1]));
    ck_assert_int_eq(count(accepts, "src=\"data:image/png;base64,iVBORw0KGgo"), 32);
    char *rejects = element("false-rejects", "</section>");
    n = distances(rejects, v, 64);
    ck_assert_int_eq(n, 16);
    ck_assert_double_eq_tol(v[0], max_fr, 2e-6);
    for (int i = 0; i < n; i++)
        ck_assert(v[i] >= thr - 1e-6 && (i == 0 || v[i] <= v[i - 1]));
    free(rejects);
    free(accepts);
    free(a);
    free(emb);
    free(p);
}
END_TEST

START_TEST(self_contained_and_small) {
    ck_assert_ptr_null(strstr(html, "<script"));
    ck_assert_ptr_null(strstr(html, "http:"));
    ck_assert_ptr_null(strstr(html, "https:"));
    ck_assert_ptr_null(strstr(html, "url("));
    ck_assert_ptr_nonnull(strstr(html, "content=\"default-src 'none'; img-src data:"));
    ck_assert_uint_lt(html_len, 2u << 20);
    ck_assert_ptr_nonnull(strstr(html, "<td>siamesed --train</td>"));
    ck_assert_ptr_nonnull(strstr(html, "pairs/s</td>"));
}
END_TEST

START_TEST(refuses_data_the_model_cannot_take) {
    char err[SM_ERRMAX];
    Dataset small = *test;
    small.w = 14; /* 28x14 images for a 28x28 model */
    ReportHtml r = {"--eval", model, "m", &small, "test", PAIRS_AUTO, 1, &rep, 0};
    char other[300];
    snprintf(other, sizeof other, "%s.bad", path);
    ck_assert_int_eq(report_html_write(other, &r, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "28x14x1"));
    ck_assert_int_ne(access(other, F_OK), 0);
}
END_TEST

START_TEST(a_history_that_is_not_numbers_is_not_drawn) {
    /* The summary comes from a model file: refuse to draw what is not a number. */
    char err[SM_ERRMAX], other[300];
    ck_assert_int_eq(model_set_training(model,
                                        "{\"history\":{\"loss\":[1,\"x\"],"
                                        "\"val_accuracy\":[0.5,0.6]},\"note\":\"<b>&\"}",
                                        err),
                     0);
    snprintf(other, sizeof other, "%s.hist", path);
    ReportHtml r = {"--eval", model, "m", test, "test", PAIRS_AUTO, 1, &rep, 0};
    ck_assert_int_eq(report_html_write(other, &r, err), 0);
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(sm_read_file(other, 4 << 20, &buf, &len, err), 0);
    ck_assert_ptr_null(strstr((char *)buf, "id=\"chart-loss\""));
    ck_assert_ptr_nonnull(strstr((char *)buf, "records no per-epoch history"));
    ck_assert_ptr_nonnull(strstr((char *)buf, "<td>&lt;b&gt;&amp;</td>")); /* escaped */
    free(buf);
    unlink(other);
}
END_TEST

int main(void) {
    Suite *s = suite_create("report_html");
    TCase *tc = tcase_create("report");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, every_chart_is_there);
    tcase_add_test(tc, metrics_as_json_prints_them);
    tcase_add_test(tc, hardest_mistakes_are_the_right_pairs);
    tcase_add_test(tc, self_contained_and_small);
    tcase_add_test(tc, refuses_data_the_model_cannot_take);
    tcase_add_test(tc, a_history_that_is_not_numbers_is_not_drawn);
    suite_add_tcase(s, tc);
    return check_run(s);
}
