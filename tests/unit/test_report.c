/*
 * test_report.c — what the training summary says about the data: class names
 * and counts per split, which split is the test split, skipped files, the
 * pairing; warnings on small classes and on splits too small for their
 * figures, and none for a class absent from one split. Then the noise marks
 * of the final report and the data summary stored in the model.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siamese/report.h"

#include "check_util.h"

/* A dataset with these labels and class names (1x1 images). */
static Dataset *toy(const char *path, const int *y, int n, const char *const *names, int nc) {
    Dataset *d = calloc(1, sizeof *d);
    d->n = n, d->h = 1, d->w = 1, d->c = 1, d->n_classes = nc;
    d->x = calloc((size_t)n + 1, sizeof(float));
    d->y = malloc(((size_t)n + 1) * sizeof(int));
    memcpy(d->y, y, (size_t)n * sizeof(int));
    d->class_names = calloc((size_t)nc, sizeof(char *));
    for (int c = 0; c < nc; c++)
        d->class_names[c] = strdup(names[c]);
    d->source = strdup("/data/shoes");
    d->split_path = strdup(path);
    return d;
}

/* Labels: count[c] samples of class c, class by class. */
static int fill(int *y, const int *count, int nc) {
    int n = 0;
    for (int c = 0; c < nc; c++)
        for (int i = 0; i < count[c]; i++)
            y[n++] = c;
    return n;
}

static char *render(const DataReport *r, int *warnings) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    *warnings = report_data(f, r);
    fclose(f);
    return buf;
}

static int count_lines(const char *s, const char *prefix) {
    int n = 0;
    for (const char *p = s; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        n += strncmp(p, prefix, strlen(prefix)) == 0;
    return n;
}

static const char *const names[] = {"boot", "rare", "sandal", "sneaker"};

START_TEST(summary_names_and_counts) {
    /* One class list for both splits (one image directory): sneaker is a test
     * class only, boot and sandal are train classes only (open set). */
    int y[400];
    int tr_count[] = {120, 6, 150, 0}, va_count[] = {13, 2, 17, 0}, te_count[] = {0, 0, 0, 40};
    int n = fill(y, tr_count, 4);
    Dataset *train = toy("/data/shoes/train", y, n, names, 4);
    train->skipped_other = 3, train->skipped_bad = 2;
    n = fill(y, va_count, 4);
    Dataset *val = toy("/data/shoes/train", y, n, names, 4);
    n = fill(y, te_count, 4);
    Dataset *test = toy("/data/shoes/test", y, n, names, 4);
    PairsInfo pt = {.mode = PAIRS_ALL, .n = 552, .samples = 276, .used = 276, .keras_share = 0.07};
    PairsInfo pv = {.mode = PAIRS_KERAS, .n = 12000, .samples = 32, .used = 32, .keras_share = 1};
    PairsInfo pe = {.mode = PAIRS_KERAS, .n = 12000, .samples = 40, .used = 40, .keras_share = 1};
    DataReport r = {train, val, test, &pt, &pv, &pe};
    int w = 0;
    char *out = render(&r, &w);
    ck_assert_msg(strstr(out, "/data/shoes/train: 308 images, 3 classes") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "3 non-image files, 2 unreadable images") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "32 of them held out (per class) to calibrate the threshold, 276 to "
                              "train") != NULL,
                  "%s", out);
    ck_assert_msg(strstr(out, "test       /data/shoes/test: 40 images, 1 classes") != NULL, "%s",
                  out);
    ck_assert_msg(strstr(out, "1 of its classes are not in train") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "  boot                         120      13       0\n") != NULL, "%s",
                  out);
    ck_assert_msg(strstr(out, "  sneaker                        0       0      40\n") != NULL, "%s",
                  out);
    ck_assert_msg(strstr(out, "train: all (each image") != NULL, "%s", out);
    ck_assert_msg(
        strstr(out, "552 pairs, 276 of 276 images in pairs; the recipe's pairs would keep 7%") !=
            NULL,
        "%s", out);
    /* Warnings: the small class by name and the skipped images; no word about
     * boot, sandal or sneaker being absent from a split. */
    ck_assert_msg(strstr(out, "warning: small classes (fewer than 10 training images): 'rare' 8") !=
                      NULL,
                  "%s", out);
    ck_assert_msg(strstr(out, "warning: 2 images did not decode") != NULL, "%s", out);
    ck_assert_int_eq(count_lines(out, "warning: "), 2);
    ck_assert_int_eq(w, 2);
    ck_assert_ptr_null(strstr(out, "'sneaker'"));
    ck_assert_ptr_null(strstr(out, "'boot'"));
    free(out);

    /* A small validation set: its TAR figures and its threshold are warned about. */
    pv.n = 180;
    out = render(&r, &w);
    ck_assert_msg(strstr(out, "warning: validation has 90 negative pairs, too few for TAR@FAR 1e-3 "
                              "(needs 5000) and 1e-2 (needs 500)") != NULL,
                  "%s", out);
    ck_assert_msg(strstr(out, "calibrated on 180 validation pairs") != NULL, "%s", out);
    ck_assert_int_eq(w, 4);
    free(out);

    /* No test split: said so, no test column. */
    pv.n = 12000;
    DataReport nt = {train, val, NULL, &pt, &pv, NULL};
    out = render(&nt, &w);
    ck_assert_msg(strstr(out, "test       none") != NULL, "%s", out);
    ck_assert_ptr_null(strstr(out, "sneaker")); /* no test images: the row is left out */
    ck_assert_int_eq(w, 2);
    free(out);
    dataset_free(train), dataset_free(val), dataset_free(test);
}
END_TEST

/* --test-data: another dataset, its own class list, matched by name. */
START_TEST(test_classes_by_name) {
    const char *const tnames[] = {"sandal", "slipper"};
    int y[400], tr_count[] = {50, 50, 50, 50}, te_count[] = {30, 20};
    int n = fill(y, tr_count, 4);
    Dataset *train = toy("/a/train", y, n, names, 4);
    n = fill(y, te_count, 2);
    Dataset *test = toy("/b", y, n, tnames, 2);
    PairsInfo p = {.mode = PAIRS_KERAS, .n = 20000, .samples = 200, .used = 200, .keras_share = 1};
    DataReport r = {train, NULL, test, &p, &p, &p};
    int w = 0;
    char *out = render(&r, &w);
    ck_assert_msg(strstr(out, "  sandal                        50       0      30\n") != NULL, "%s",
                  out);
    ck_assert_msg(strstr(out, "  slipper                        0       0      20\n") != NULL, "%s",
                  out);
    ck_assert_msg(strstr(out, "1 of its classes are not in train") != NULL, "%s", out);
    ck_assert_int_eq(w, 0);
    free(out);
    cJSON *j = report_data_json(&r);
    ck_assert_ptr_nonnull(j);
    cJSON *cls = cJSON_GetObjectItem(j, "classes");
    ck_assert_int_eq(cJSON_GetArraySize(cls), 5);
    cJSON *last = cJSON_GetArrayItem(cls, 4);
    ck_assert_str_eq(cJSON_GetObjectItem(last, "name")->valuestring, "slipper");
    ck_assert_int_eq(cJSON_GetObjectItem(last, "test")->valueint, 20);
    ck_assert_int_eq(cJSON_GetObjectItem(j, "unseen_test_classes")->valueint, 1);
    ck_assert_int_eq(cJSON_GetObjectItem(j, "n_classes")->valueint, 5);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "pairs")->valuestring, "keras");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "test_split")->valuestring, "/b");
    cJSON_Delete(j);
    dataset_free(train), dataset_free(test);
}
END_TEST

/* Thousands of classes: the rows printed are capped and the rest counted. */
START_TEST(many_classes_capped) {
    enum { C = 300 };
    char *nm[C];
    int *y = malloc(2 * C * sizeof *y);
    for (int c = 0; c < C; c++) {
        ck_assert_int_ge(asprintf(&nm[c], "person%03d", c), 0);
        y[2 * c] = y[2 * c + 1] = c;
    }
    Dataset *train = toy("/p", y, 2 * C, (const char *const *)nm, C);
    PairsInfo p = {.mode = PAIRS_KERAS, .n = 600, .samples = 600, .used = 600, .keras_share = 1};
    DataReport r = {train, NULL, NULL, &p, &p, NULL};
    int w = 0;
    char *out = render(&r, &w);
    ck_assert_int_eq(count_lines(out, "  person"), REPORT_MAX_ROWS);
    ck_assert_msg(strstr(out, "... 260 more classes not listed") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "'person000' 2, 'person001' 2") != NULL, "%s", out);
    ck_assert_msg(strstr(out, " and 295 more;") != NULL, "%s", out);
    free(out);
    for (int c = 0; c < C; c++)
        free(nm[c]);
    free(y);
    dataset_free(train);
}
END_TEST

START_TEST(final_report_marks_noise) {
    TrainReport rep = {0};
    rep.threshold = 0.5f;
    rep.train = (Metrics){.pairs = 20000, .positives = 10000, .negatives = 10000, .accuracy = 0.9};
    rep.test = (Metrics){.pairs = 180, .positives = 90, .negatives = 90, .accuracy = 0.8};
    rep.train_pairs = (PairsInfo){.mode = PAIRS_ALL, .n = 20000};
    rep.test_pairs = (PairsInfo){.mode = PAIRS_KERAS, .n = 180};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    train_report_print(f, "m.safetensors", &rep, 0, 0);
    fclose(f);
    ck_assert_int_eq(count_lines(buf, "train "), 1);
    const char *train_row = strstr(buf, "\ntrain ");
    const char *test_row = strstr(buf, "\ntest ");
    ck_assert_ptr_nonnull(train_row);
    ck_assert_ptr_nonnull(test_row);
    ck_assert(memchr(train_row, '*', (size_t)(test_row - train_row)) == NULL);
    ck_assert_msg(strstr(test_row, "0.0000* ") && strstr(test_row, "0.0000*\n"), "%s", buf);
    ck_assert_msg(strstr(buf, "\n* noise: ") != NULL, "%s", buf);
    ck_assert_msg(strstr(buf, "pairs: train all, test keras\n") != NULL, "%s", buf);
    free(buf);
    buf = NULL;
    f = open_memstream(&buf, &len);
    train_report_print(f, "m.safetensors", &rep, 1, 0);
    fclose(f);
    cJSON *j = cJSON_Parse(buf);
    ck_assert_ptr_nonnull(j);
    cJSON *noise = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "test"), "noise");
    ck_assert_int_eq(cJSON_GetArraySize(noise), 2);
    ck_assert_int_eq(
        cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "train"), "noise")), 0);
    ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "test"), "negatives")->valueint,
                     90);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "pairs")->valuestring, "all");
    cJSON_Delete(j);
    free(buf);
}
END_TEST

int main(void) {
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("report");
    tcase_add_test(tc, summary_names_and_counts);
    tcase_add_test(tc, test_classes_by_name);
    tcase_add_test(tc, many_classes_capped);
    tcase_add_test(tc, final_report_marks_noise);
    suite_add_tcase(s, tc);
    return check_run(s);
}
