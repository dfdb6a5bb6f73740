/*
 * report_data.c — what training found, said before it starts: where each split
 * came from, the classes by name with their counts, images used and skipped,
 * how each split is paired, and warnings on what will make the figures weak.
 *
 * Rows are the training classes in label order, then test classes the
 * training data does not have (matched by name, since --test-data may be
 * another dataset with its own labels). A class absent from one split is not
 * a problem: open-set layouts (unseen test classes) are the point of a
 * verification model. The same rows go into the model's training summary.
 */
#include "siamese/report.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Every class by name with its count in each split. */
typedef struct {
    const char *name;
    int train, val, test;
} ClassRow;

typedef struct {
    ClassRow *rows;
    int n;
    int unseen; /* test classes (with images) that training has none of */
} ClassTable;

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const ClassRow *)a)->name, ((const ClassRow *)b)->name);
}

/* Adds the test counts: by label when both share one class list, else by name. */
static int table_add_test(ClassTable *t, int n_train_rows, const Dataset *test) {
    int *cnt = calloc((size_t)test->n_classes + 1, sizeof *cnt);
    ClassRow *sorted = malloc(((size_t)n_train_rows + 1) * sizeof *sorted);
    if (!cnt || !sorted) {
        free(cnt);
        free(sorted);
        return -ENOMEM;
    }
    dataset_class_counts(test, cnt);
    memcpy(sorted, t->rows, (size_t)n_train_rows * sizeof *sorted);
    for (int i = 0; i < n_train_rows; i++)
        sorted[i].train = i; /* the row it came from */
    qsort(sorted, (size_t)n_train_rows, sizeof *sorted, cmp_name);
    for (int c = 0; c < test->n_classes; c++) {
        ClassRow key = {.name = test->class_names[c]};
        const ClassRow *hit =
            n_train_rows ? bsearch(&key, sorted, (size_t)n_train_rows, sizeof *sorted, cmp_name)
                         : NULL;
        ClassRow *row = hit ? &t->rows[hit->train] : NULL;
        if (!row && cnt[c] > 0) {
            row = &t->rows[t->n++];
            *row = (ClassRow){.name = test->class_names[c]};
        }
        if (row)
            row->test = cnt[c];
        if (cnt[c] > 0 && (!row || row->train + row->val == 0))
            t->unseen++;
    }
    free(cnt);
    free(sorted);
    return 0;
}

static void table_free(ClassTable *t) {
    free(t->rows);
    *t = (ClassTable){0};
}

static int table_make(const DataReport *r, ClassTable *t) {
    const Dataset *tr = r->train;
    size_t cap = (size_t)tr->n_classes + (r->test ? (size_t)r->test->n_classes : 0) + 1;
    int *ct = calloc((size_t)tr->n_classes + 1, sizeof *ct);
    int *cv = calloc((size_t)tr->n_classes + 1, sizeof *cv);
    *t = (ClassTable){.rows = calloc(cap, sizeof *t->rows)};
    int rc = ct && cv && t->rows ? 0 : -ENOMEM;
    if (rc == 0) {
        assert(!r->val || r->val->n_classes == tr->n_classes);
        dataset_class_counts(tr, ct);
        if (r->val)
            dataset_class_counts(r->val, cv);
        for (int c = 0; c < tr->n_classes; c++)
            t->rows[c] = (ClassRow){tr->class_names[c], ct[c], cv[c], 0};
        t->n = tr->n_classes;
        if (r->test)
            rc = table_add_test(t, tr->n_classes, r->test);
    }
    free(ct);
    free(cv);
    if (rc < 0)
        table_free(t);
    return rc;
}

static const char *plural(int n) {
    return n == 1 ? "" : "s";
}

/* images: those loaded from the split (train: with the validation ones). */
static void print_split(FILE *f, const char *role, const Dataset *d, int images, int classes) {
    fprintf(f, "  %-10s %s: %d images, %d classes", role, d->split_path ? d->split_path : d->source,
            images, classes);
    if (d->skipped_other || d->skipped_bad)
        fprintf(f, " (skipped: %d non-image file%s, %d unreadable image%s)", d->skipped_other,
                plural(d->skipped_other), d->skipped_bad, plural(d->skipped_bad));
    fputc('\n', f);
}

static int classes_with(const ClassTable *t, int which) {
    int k = 0;
    for (int i = 0; i < t->n; i++)
        k += which == 0 ? t->rows[i].train + t->rows[i].val > 0 : t->rows[i].test > 0;
    return k;
}

static void print_rows(FILE *f, const ClassTable *t, int with_test) {
    int shown = 0;
    fprintf(f, "  %-24s %7s %7s %7s\n", "class", "train", "val", with_test ? "test" : "");
    for (int i = 0; i < t->n && shown < REPORT_MAX_ROWS; i++) {
        const ClassRow *r = &t->rows[i];
        if (r->train + r->val + r->test == 0)
            continue;
        fprintf(f, "  %-24s %7d %7d", r->name, r->train, r->val);
        if (with_test)
            fprintf(f, " %7d", r->test);
        fputc('\n', f);
        shown++;
    }
    if (shown < classes_with(t, 0) + t->unseen)
        fprintf(f, "  ... %d more classes not listed (the model's summary has them all)\n",
                classes_with(t, 0) + t->unseen - shown);
}

static void print_pairs(FILE *f, const DataReport *r) {
    const PairsInfo *p = r->train_pairs;
    if (p->mode == PAIRS_ALL)
        fprintf(f,
                "  %-10s train: all (each image anchors one positive and one negative pair, "
                "redrawn each epoch):\n  %-10s %zu pairs, %d of %d images in pairs; the recipe's "
                "pairs would keep %.0f%%\n",
                "pairs", "", p->n, p->used, p->samples, 100 * p->keras_share);
    else
        fprintf(f, "  %-10s train: keras (the recipe's), %zu pairs, %d of %d images in pairs\n",
                "pairs", p->n, p->used, p->samples);
    fprintf(f, "  %-10s validation: %s, %zu pairs", "", pairs_mode_name(r->val_pairs->mode),
            r->val_pairs->n);
    if (r->test_pairs)
        fprintf(f, "; test: %s, %zu pairs", pairs_mode_name(r->test_pairs->mode), r->test_pairs->n);
    fputc('\n', f);
}

/* Warns about classes with fewer than REPORT_SMALL_CLASS training images
 * (naming a few). Returns 1 if it warned. */
static int warn_small(FILE *f, const ClassTable *t) {
    int n = 0;
    for (int i = 0; i < t->n; i++) {
        int c = t->rows[i].train + t->rows[i].val;
        if (c <= 0 || c >= REPORT_SMALL_CLASS)
            continue;
        if (n == 0)
            fprintf(f,
                    "warning: small classes (fewer than %d training images):", REPORT_SMALL_CLASS);
        if (n < 5)
            fprintf(f, "%s '%s' %d", n ? "," : "", t->rows[i].name, c);
        n++;
    }
    if (n > 5)
        fprintf(f, " and %d more", n - 5);
    if (n)
        fprintf(f, "; a class of 1 anchors no pair, and few images make weak pairs\n");
    return n > 0;
}

/* Figures a pair set of this size cannot support; returns warnings made. */
static int warn_pairs(FILE *f, const char *role, const PairsInfo *p) {
    int w = 0;
    size_t neg = p->n / 2;
    if (neg * 1e-3 < METRICS_MIN_FALSE_ACCEPTS) {
        int both = neg * 1e-2 < METRICS_MIN_FALSE_ACCEPTS;
        fprintf(f,
                "warning: %s has %zu negative pairs, too few for TAR@FAR 1e-3 (needs %d)%s: "
                "%s marked * as noise%s\n",
                role, neg, (int)(METRICS_MIN_FALSE_ACCEPTS / 1e-3),
                both ? " and 1e-2 (needs 500)" : "", both ? "both are" : "it is",
                strcmp(role, "validation") == 0 ? " in the model's summary" : "");
        w++;
    }
    if (strcmp(role, "validation") == 0 && p->n < REPORT_MIN_VAL_PAIRS) {
        fprintf(f,
                "warning: the threshold is calibrated on %zu validation pairs (fewer than %d): "
                "it may not hold on new data (raise --val-fraction or add images)\n",
                p->n, REPORT_MIN_VAL_PAIRS);
        w++;
    }
    return w;
}

int report_data(FILE *f, const DataReport *r) {
    ClassTable t;
    if (table_make(r, &t) < 0)
        return -ENOMEM;
    int warnings = 0;
    fprintf(f, "data: %s\n", r->train->source);
    int nval = r->val ? r->val->n : 0;
    print_split(f, "train", r->train, r->train->n + nval, classes_with(&t, 0));
    if (r->val)
        fprintf(f,
                "  %-10s %d of them held out (per class) to calibrate the threshold, %d to train\n",
                "validation", nval, r->train->n);
    if (r->test) {
        print_split(f, "test", r->test, r->test->n, classes_with(&t, 1));
        if (t.unseen)
            fprintf(f, "  %-10s %d of its classes are not in train (unseen classes)\n", "",
                    t.unseen);
    } else {
        fprintf(f, "  %-10s none (no test/ folder or test files; --test-data gives one)\n", "test");
    }
    print_rows(f, &t, r->test != NULL);
    print_pairs(f, r);
    warnings += warn_small(f, &t);
    warnings += warn_pairs(f, "validation", r->val_pairs);
    if (r->test_pairs)
        warnings += warn_pairs(f, "test", r->test_pairs);
    if (r->train->skipped_bad || (r->test && r->test->skipped_bad)) {
        int bad = r->train->skipped_bad + (r->test ? r->test->skipped_bad : 0);
        fprintf(f, "warning: %d image%s did not decode and %s skipped (--skip-bad-images)\n", bad,
                plural(bad), bad == 1 ? "was" : "were");
        warnings++;
    }
    fflush(f);
    table_free(&t);
    return warnings;
}

cJSON *report_data_json(const DataReport *r) {
    ClassTable t;
    if (table_make(r, &t) < 0)
        return NULL;
    cJSON *o = cJSON_CreateObject(), *cls = cJSON_CreateArray();
    cJSON_AddItemToObject(o, "classes", cls);
    int listed = 0;
    for (int i = 0; i < t.n && listed < REPORT_MAX_JSON_CLASSES; i++) {
        const ClassRow *c = &t.rows[i];
        if (c->train + c->val + c->test == 0)
            continue;
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "name", c->name);
        cJSON_AddNumberToObject(row, "train", c->train);
        cJSON_AddNumberToObject(row, "validation", c->val);
        if (r->test)
            cJSON_AddNumberToObject(row, "test", c->test);
        cJSON_AddItemToArray(cls, row);
        listed++;
    }
    cJSON_AddNumberToObject(o, "n_classes", classes_with(&t, 0) + t.unseen);
    cJSON_AddStringToObject(o, "train_split", r->train->split_path ? r->train->split_path : "");
    if (r->test)
        cJSON_AddStringToObject(o, "test_split", r->test->split_path ? r->test->split_path : "");
    cJSON_AddNumberToObject(o, "unseen_test_classes", t.unseen);
    cJSON_AddNumberToObject(o, "skipped_not_images", r->train->skipped_other);
    cJSON_AddNumberToObject(o, "skipped_unreadable", r->train->skipped_bad);
    cJSON_AddStringToObject(o, "pairs", pairs_mode_name(r->train_pairs->mode));
    cJSON_AddNumberToObject(o, "images_in_pairs", r->train_pairs->used);
    table_free(&t);
    return o;
}
