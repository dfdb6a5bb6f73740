/*
 * test_dataset.c — the IDX reader (memory, raw and gzip files, every kind of
 * malformed header and payload), IDX and image-directory datasets written into
 * temporary directories, the real Fashion-MNIST, and dataset_split_off().
 */
#include <check.h>
#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "siamese/common.h"
#include "siamese/dataset.h"

#include "check_util.h"

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

/* ---- helpers --------------------------------------------------------------- */

static char *tmpdir_make(void) {
    char *d = strdup("/tmp/sm_test_dataset_XXXXXX");
    ck_assert_ptr_nonnull(d);
    ck_assert_ptr_nonnull(mkdtemp(d));
    return d;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f) {
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static void tmpdir_remove(char *d) {
    nftw(d, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(d);
}

static char *join(const char *a, const char *b) {
    char *p = NULL;
    ck_assert_int_ge(asprintf(&p, "%s/%s", a, b), 0);
    return p;
}

/* An IDX image in buf: magic with the given type byte and ndim, dims, data. */
static size_t idx_build(uint8_t *buf, uint8_t type, int ndim, const uint32_t *dims,
                        const uint8_t *data, size_t len) {
    size_t k = 0;
    buf[k++] = 0, buf[k++] = 0, buf[k++] = type, buf[k++] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++)
        for (int s = 24; s >= 0; s -= 8)
            buf[k++] = (uint8_t)(dims[i] >> s);
    memcpy(buf + k, data, len);
    return k + len;
}

static void write_raw(const char *path, const void *buf, size_t len) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static void write_gz(const char *path, const void *buf, size_t len) {
    gzFile f = gzopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    if (len)
        ck_assert_int_eq(gzwrite(f, buf, (unsigned)len), (int)len);
    ck_assert_int_eq(gzclose(f), Z_OK);
}

static void write_in(const char *dir, const char *name, const void *buf, size_t len, int gz) {
    char *p = join(dir, name);
    (gz ? write_gz : write_raw)(p, buf, len);
    free(p);
}

static void write_pgm(const char *path, int w, int h, const uint8_t *px) {
    char head[64];
    int n = snprintf(head, sizeof head, "P5\n%d %d\n255\n", w, h);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(head, 1, (size_t)n, f), (size_t)n);
    ck_assert_uint_eq(fwrite(px, 1, (size_t)(w * h), f), (size_t)(w * h));
    ck_assert_int_eq(fclose(f), 0);
}

static void mkdir_in(const char *dir, const char *name) {
    char *p = join(dir, name);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    free(p);
}

/* 2 images of 3x2 with distinct bytes, and 5 labels. */
static const uint8_t img_bytes[12] = {0, 1, 2, 127, 128, 255, 10, 20, 30, 40, 50, 60};
static const uint32_t img_dims[3] = {2, 3, 2};
static const uint8_t lab_bytes[5] = {3, 1, 4, 1, 5};
static const uint32_t lab_dims[1] = {5};

/* ---- idx_parse / idx_read --------------------------------------------------- */

START_TEST(idx_parse_valid) {
    uint8_t buf[64], *data = NULL;
    int ndim = 0, dims[3] = {-1, -1, -1};
    size_t len = idx_build(buf, 8, 3, img_dims, img_bytes, 12);
    ck_assert_uint_eq(len, 28);
    ck_assert_int_eq(idx_parse(buf, len, 1000, &ndim, dims, &data, NULL), 0);
    ck_assert_int_eq(ndim, 3);
    ck_assert_int_eq(dims[0], 2);
    ck_assert_int_eq(dims[1], 3);
    ck_assert_int_eq(dims[2], 2);
    ck_assert_mem_eq(data, img_bytes, 12);
    free(data);
    len = idx_build(buf, 8, 1, lab_dims, lab_bytes, 5);
    ck_assert_int_eq(idx_parse(buf, len, 5, &ndim, dims, &data, NULL), 0);
    ck_assert_int_eq(ndim, 1);
    ck_assert_int_eq(dims[0], 5);
    ck_assert_int_eq(dims[1], 0);
    ck_assert_mem_eq(data, lab_bytes, 5);
    free(data);
    /* Exactly at the cap is fine, one byte over is not. */
    ck_assert_int_eq(idx_parse(buf, len, 4, &ndim, dims, &data, NULL), -EFBIG);
}
END_TEST

/* Raw and gzip files, each with and without a .gz suffix: the content decides. */
START_TEST(idx_read_round_trip) {
    char *dir = tmpdir_make();
    uint8_t buf[64];
    size_t len = idx_build(buf, 8, 3, img_dims, img_bytes, 12);
    const char *names[] = {"raw", "raw.gz", "packed.gz", "packed"};
    for (int i = 0; i < 4; i++) {
        write_in(dir, names[i], buf, len, i >= 2);
        char *p = join(dir, names[i]), err[SM_ERRMAX] = "";
        uint8_t *data = NULL;
        int ndim = 0, dims[3];
        ck_assert_msg(idx_read(p, 12, &ndim, dims, &data, err) == 0, "%s: %s", names[i], err);
        ck_assert_int_eq(ndim, 3);
        ck_assert_int_eq(dims[0] * dims[1] * dims[2], 12);
        ck_assert_mem_eq(data, img_bytes, 12);
        free(data);
        free(p);
    }
    char *missing = join(dir, "nope"), err[SM_ERRMAX] = "";
    uint8_t *data = NULL;
    int ndim, dims[3];
    ck_assert_int_eq(idx_read(missing, 100, &ndim, dims, &data, err), -ENOENT);
    ck_assert_ptr_nonnull(strstr(err, "nope"));
    free(missing);
    tmpdir_remove(dir);
}
END_TEST

/* Runs buf through idx_parse, a raw file and a gzip file; all must fail with
 * the same code (and none may hand back data). */
static int reject_everywhere(const char *dir, const uint8_t *buf, size_t len, size_t max) {
    uint8_t *data = NULL;
    int ndim, dims[3];
    char err[SM_ERRMAX] = "";
    int rc = idx_parse(buf, len, max, &ndim, dims, &data, err);
    ck_assert_msg(rc < 0, "idx_parse accepted %zu bytes", len);
    ck_assert_ptr_null(data);
    ck_assert(strlen(err) > 0);
    for (int gz = 0; gz < 2; gz++) {
        char *p = join(dir, gz ? "bad.gz" : "bad");
        (gz ? write_gz : write_raw)(p, buf, len);
        err[0] = 0;
        int rc2 = idx_read(p, max, &ndim, dims, &data, err);
        ck_assert_msg(rc2 == rc, "idx_read(%s) gave %d, idx_parse %d (%s)", p, rc2, rc, err);
        ck_assert_ptr_null(data);
        ck_assert_ptr_nonnull(strstr(err, p));
        free(p);
    }
    return rc;
}

START_TEST(idx_bad_headers) {
    char *dir = tmpdir_make();
    uint8_t buf[64];
    size_t len = idx_build(buf, 8, 3, img_dims, img_bytes, 12);
    buf[0] = 1; /* wrong magic */
    ck_assert_int_eq(reject_everywhere(dir, buf, len, 100), -EINVAL);
    len = idx_build(buf, 0x09, 3, img_dims, img_bytes, 12); /* int8: not u8 */
    ck_assert_int_eq(reject_everywhere(dir, buf, len, 100), -EINVAL);
    len = idx_build(buf, 0x0D, 3, img_dims, img_bytes, 12); /* float */
    ck_assert_int_eq(reject_everywhere(dir, buf, len, 100), -EINVAL);
    const uint32_t d2[2] = {4, 3}, d4[4] = {1, 2, 3, 2};
    len = idx_build(buf, 8, 2, d2, img_bytes, 12);
    ck_assert_int_eq(reject_everywhere(dir, buf, len, 100), -EINVAL);
    len = idx_build(buf, 8, 4, d4, img_bytes, 12);
    ck_assert_int_eq(reject_everywhere(dir, buf, len, 100), -EINVAL);
    len = idx_build(buf, 8, 0, NULL, img_bytes, 0);
    ck_assert_int_eq(reject_everywhere(dir, buf, len, 100), -EINVAL);
    const uint32_t zero[3] = {2, 0, 2};
    len = idx_build(buf, 8, 3, zero, img_bytes, 0);
    ck_assert_int_eq(reject_everywhere(dir, buf, len, 100), -EINVAL);
    tmpdir_remove(dir);
}
END_TEST

START_TEST(idx_truncated_everywhere) {
    char *dir = tmpdir_make();
    uint8_t buf[64];
    size_t len = idx_build(buf, 8, 3, img_dims, img_bytes, 12);
    for (size_t cut = 0; cut < len; cut++)
        ck_assert_int_eq(reject_everywhere(dir, buf, cut, 100), -EINVAL);
    len = idx_build(buf, 8, 1, lab_dims, lab_bytes, 5);
    for (size_t cut = 0; cut < len; cut++)
        ck_assert_int_eq(reject_everywhere(dir, buf, cut, 100), -EINVAL);
    tmpdir_remove(dir);
}
END_TEST

/* A gzip file cut anywhere (header, deflate data, CRC trailer) is an error. */
START_TEST(idx_gzip_stream_cut) {
    char *dir = tmpdir_make();
    uint8_t buf[64], *gz = NULL, *data = NULL;
    size_t len = idx_build(buf, 8, 3, img_dims, img_bytes, 12), gzlen = 0;
    char *full = join(dir, "full.gz"), *cut = join(dir, "cut.gz"), err[SM_ERRMAX];
    write_gz(full, buf, len);
    ck_assert_int_eq(sm_read_file(full, 4096, &gz, &gzlen, NULL), 0);
    ck_assert_uint_gt(gzlen, 20);
    for (size_t k = 0; k < gzlen; k++) {
        int ndim, dims[3];
        write_raw(cut, gz, k);
        err[0] = 0;
        int rc = idx_read(cut, 100, &ndim, dims, &data, err);
        ck_assert_msg(rc < 0, "a gzip file cut at %zu of %zu bytes was accepted", k, gzlen);
        ck_assert_ptr_null(data);
    }
    gz[gzlen - 8] ^= 0x55; /* corrupt the CRC */
    write_raw(cut, gz, gzlen);
    int ndim, dims[3];
    ck_assert_int_lt(idx_read(cut, 100, &ndim, dims, &data, err), 0);
    ck_assert_ptr_null(data);
    free(gz);
    free(full);
    free(cut);
    tmpdir_remove(dir);
}
END_TEST

START_TEST(idx_trailing_bytes) {
    char *dir = tmpdir_make();
    uint8_t buf[64];
    size_t len = idx_build(buf, 8, 3, img_dims, img_bytes, 12);
    buf[len] = 0;
    ck_assert_int_eq(reject_everywhere(dir, buf, len + 1, 100), -EINVAL);
    len = idx_build(buf, 8, 1, lab_dims, lab_bytes, 5);
    memset(buf + len, 7, 10);
    ck_assert_int_eq(reject_everywhere(dir, buf, len + 10, 100), -EINVAL);
    tmpdir_remove(dir);
}
END_TEST

/* Declared sizes far beyond the cap are refused from the header alone: an
 * attempt to allocate them would come back -ENOMEM instead. */
START_TEST(idx_absurd_dims) {
    char *dir = tmpdir_make();
    uint8_t buf[64];
    const uint32_t huge[][3] = {
        {4000000000u, 4000000000u, 1},
        {0x7fffffffu, 0x7fffffffu, 0x7fffffffu}, /* product overflows 64 bits */
        {1000, 1000, 1000},                      /* 1e9: fits, but over the cap */
        {0xffffffffu, 1, 1},
    };
    for (size_t i = 0; i < SM_ARRAY_LEN(huge); i++) {
        size_t len = idx_build(buf, 8, 3, huge[i], img_bytes, 12);
        int rc = reject_everywhere(dir, buf, len, 1u << 20);
        ck_assert_msg(rc == -EFBIG || rc == -EINVAL, "case %zu gave %d", i, rc);
    }
    const uint32_t many[1] = {3000000000u};
    size_t len = idx_build(buf, 8, 1, many, lab_bytes, 5);
    ck_assert_int_eq(reject_everywhere(dir, buf, len, 1u << 20), -EFBIG);
    tmpdir_remove(dir);
}
END_TEST

/* The seed corpus in tests/data/idx: valid-* load, bad-* are refused. */
START_TEST(idx_seed_files) {
    const char *data = getenv("SM_TEST_DATA");
    ck_assert_msg(data != NULL, "SM_TEST_DATA is not set");
    char *dir = join(data, "idx");
    DIR *dh = opendir(dir);
    ck_assert_msg(dh != NULL, "%s: cannot open", dir);
    int valid = 0, bad = 0;
    struct dirent *e;
    while ((e = readdir(dh)) != NULL) {
        int is_valid = strncmp(e->d_name, "valid-", 6) == 0;
        if (!is_valid && strncmp(e->d_name, "bad-", 4) != 0)
            continue;
        char *p = join(dir, e->d_name), err[SM_ERRMAX] = "";
        uint8_t *bytes = NULL;
        int ndim = 0, dims[3];
        int rc = idx_read(p, 1u << 20, &ndim, dims, &bytes, err);
        if (is_valid) {
            ck_assert_msg(rc == 0, "%s: %s", e->d_name, err);
            ck_assert(ndim == 1 || ndim == 3);
            valid++;
        } else {
            ck_assert_msg(rc < 0, "%s was accepted", e->d_name);
            ck_assert_ptr_null(bytes);
            bad++;
        }
        free(bytes);
        free(p);
    }
    closedir(dh);
    free(dir);
    ck_assert_int_ge(valid, 4);
    ck_assert_int_ge(bad, 8);
}
END_TEST

/* ---- IDX datasets ------------------------------------------------------------ */

/* Writes SPLIT images (n of h x w, byte k = (k * 37) % 256) and labels. */
static void write_idx_split(const char *dir, const char *prefix, int n, int h, int w,
                            const uint8_t *labels, int n_labels, int gz) {
    size_t px = (size_t)n * (size_t)(h * w);
    uint8_t *bytes = malloc(px), *buf = malloc(px + 16), lbuf[64];
    for (size_t k = 0; k < px; k++)
        bytes[k] = (uint8_t)(k * 37 % 256);
    const uint32_t idims[3] = {(uint32_t)n, (uint32_t)h, (uint32_t)w},
                   ldims[1] = {(uint32_t)n_labels};
    char name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte%s", prefix, gz ? ".gz" : "");
    write_in(dir, name, buf, idx_build(buf, 8, 3, idims, bytes, px), gz);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte%s", prefix, gz ? ".gz" : "");
    write_in(dir, name, lbuf, idx_build(lbuf, 8, 1, ldims, labels, (size_t)n_labels), gz);
    free(bytes);
    free(buf);
}

START_TEST(idx_dataset) {
    char *dir = tmpdir_make(), err[SM_ERRMAX] = "";
    const uint8_t train_lab[5] = {0, 2, 1, 2, 0}, test_lab[3] = {4, 0, 1};
    write_idx_split(dir, "train", 5, 3, 4, train_lab, 5, 0);
    write_idx_split(dir, "t10k", 3, 3, 4, test_lab, 3, 1);
    Dataset *d = NULL;
    ck_assert_msg(dataset_load(dir, DATASET_TRAIN, 0, 0, NULL, &d, err) == 0, "%s", err);
    ck_assert_int_eq(d->n, 5);
    ck_assert_int_eq(d->h, 3);
    ck_assert_int_eq(d->w, 4);
    ck_assert_int_eq(d->n_classes, 3);
    ck_assert_str_eq(d->class_names[0], "0");
    ck_assert_str_eq(d->class_names[2], "2");
    ck_assert_str_eq(d->source, dir);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(d->y[i], train_lab[i]);
    for (size_t k = 0; k < 5 * 12; k++)
        ck_assert_float_eq(d->x[k], (float)(k * 37 % 256) / 255.0f);
    dataset_free(d);
    d = NULL;
    ck_assert_msg(dataset_load(dir, DATASET_TEST, 6, 8, NULL, &d, err) == 0, "%s", err);
    ck_assert_int_eq(d->n, 3);
    ck_assert_int_eq(d->h, 6);
    ck_assert_int_eq(d->w, 8);
    ck_assert_int_eq(d->n_classes, 5);
    ck_assert_str_eq(d->class_names[4], "4");
    ck_assert_int_eq(d->y[0], 4);
    for (size_t k = 0; k < 3 * 48; k++)
        ck_assert(d->x[k] >= 0.0f && d->x[k] <= 1.0f);
    dataset_free(d);
    tmpdir_remove(dir);
}
END_TEST

START_TEST(idx_dataset_errors) {
    char *dir = tmpdir_make(), err[SM_ERRMAX] = "";
    const uint8_t lab[5] = {0, 1, 1, 0, 1};
    write_idx_split(dir, "train", 5, 2, 2, lab, 4, 1); /* 5 images, 4 labels */
    Dataset *d = NULL;
    ck_assert_int_eq(dataset_load(dir, DATASET_TRAIN, 0, 0, NULL, &d, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "labels"));
    ck_assert_ptr_null(d);
    /* No t10k files at all: the split is absent, not an error. */
    ck_assert_int_eq(dataset_load(dir, DATASET_TEST, 0, 0, NULL, &d, err), SM_ABSENT);
    ck_assert_ptr_null(d);
    /* Only half of a split is an error. */
    uint8_t buf[64];
    write_in(dir, "t10k-labels-idx1-ubyte", buf, idx_build(buf, 8, 1, lab_dims, lab, 5), 0);
    ck_assert_int_eq(dataset_load(dir, DATASET_TEST, 0, 0, NULL, &d, err), -ENOENT);
    ck_assert_ptr_nonnull(strstr(err, "t10k-images"));
    /* A labels file in place of the images. */
    write_in(dir, "t10k-images-idx3-ubyte", buf, idx_build(buf, 8, 1, lab_dims, lab, 5), 0);
    ck_assert_int_eq(dataset_load(dir, DATASET_TEST, 0, 0, NULL, &d, err), -EINVAL);
    /* Not a directory, missing, bad sizes. */
    char *file = join(dir, "t10k-images-idx3-ubyte");
    ck_assert_int_eq(dataset_load(file, DATASET_TRAIN, 0, 0, NULL, &d, err), -ENOTDIR);
    ck_assert_int_eq(dataset_load("/nonexistent/x", DATASET_TRAIN, 0, 0, NULL, &d, err), -ENOENT);
    ck_assert_int_eq(dataset_load(dir, DATASET_TRAIN, -1, 0, NULL, &d, err), -EINVAL);
    ck_assert_ptr_null(d);
    free(file);
    tmpdir_remove(dir);
}
END_TEST

/* The real thing, installed by scripts/install-deps.sh: missing is a failure. */
START_TEST(fashion_mnist) {
    static const int first_train[8] = {9, 0, 0, 3, 0, 2, 7, 2};
    char err[SM_ERRMAX] = "";
    Dataset *d = NULL;
    ck_assert_msg(dataset_load(FASHION_DIR, DATASET_TRAIN, 0, 0, NULL, &d, err) == 0,
                  "%s (install dataset-fashion-mnist: scripts/install-deps.sh)", err);
    ck_assert_int_eq(d->n, 60000);
    ck_assert_int_eq(d->h, 28);
    ck_assert_int_eq(d->w, 28);
    ck_assert_int_eq(d->n_classes, 10);
    ck_assert_str_eq(d->class_names[9], "Ankle boot"); /* the path says fashion */
    ck_assert_str_eq(d->class_names[1], "Trouser");
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(d->y[i], first_train[i]);
    int count[10] = {0};
    for (int i = 0; i < d->n; i++)
        count[d->y[i]]++;
    for (int c = 0; c < 10; c++)
        ck_assert_int_eq(count[c], 6000);
    double sum = 0;
    for (int k = 0; k < 784; k++)
        sum += d->x[k];
    ck_assert_double_eq_tol(sum * 255.0, 76247.0, 0.01); /* from the raw bytes */
    ck_assert_float_eq(d->x[14 * 28 + 14], 217 / 255.0f);
    dataset_free(d);
    d = NULL;
    ck_assert_msg(dataset_load(FASHION_DIR, DATASET_TEST, 0, 0, NULL, &d, err) == 0, "%s", err);
    ck_assert_int_eq(d->n, 10000);
    ck_assert_int_eq(d->n_classes, 10);
    ck_assert_int_eq(d->y[0], 9);
    ck_assert_int_eq(d->y[1], 2);
    ck_assert_float_eq(d->x[14 * 28 + 14], 110 / 255.0f);
    dataset_free(d);
}
END_TEST

/* ---- image directories ------------------------------------------------------- */

static void pgm_in(const char *dir, const char *name, uint8_t seed) {
    uint8_t px[6];
    for (int i = 0; i < 6; i++)
        px[i] = (uint8_t)(seed + 40 * i);
    char *p = join(dir, name);
    write_pgm(p, 3, 2, px);
    free(p);
}

static void check_pgm_sample(const Dataset *d, int i, uint8_t seed) {
    for (int k = 0; k < 6; k++)
        ck_assert_float_eq(d->x[i * 6 + k], (float)(uint8_t)(seed + 40 * k) / 255.0f);
}

START_TEST(imgdir_splits) {
    char *dir = tmpdir_make(), err[SM_ERRMAX] = "";
    char *train = join(dir, "train"), *test = join(dir, "test");
    mkdir_in(dir, "train");
    mkdir_in(dir, "test");
    mkdir_in(train, "cat");
    mkdir_in(train, "ant");
    mkdir_in(train, ".git");
    mkdir_in(test, "bird");
    mkdir_in(test, "ant");
    char *cat = join(train, "cat"), *ant = join(train, "ant"), *git = join(train, ".git");
    char *tbird = join(test, "bird"), *tant = join(test, "ant");
    pgm_in(cat, "b.pgm", 1);
    pgm_in(cat, "a.PGM", 2);
    pgm_in(cat, ".hidden.pgm", 3);
    write_in(cat, "notes.txt", "hello", 5, 0);
    pgm_in(git, "x.pgm", 4);
    pgm_in(ant, "x.pgm", 5);
    pgm_in(tbird, "z.pgm", 6);
    pgm_in(tant, "y.pgm", 7);
    Dataset *d = NULL;
    ck_assert_msg(dataset_load(dir, DATASET_TRAIN, 0, 0, NULL, &d, err) == 0, "%s", err);
    ck_assert_int_eq(d->n_classes, 3); /* ant bird cat: the union, sorted */
    ck_assert_str_eq(d->class_names[0], "ant");
    ck_assert_str_eq(d->class_names[1], "bird");
    ck_assert_str_eq(d->class_names[2], "cat");
    ck_assert_int_eq(d->n, 3);
    ck_assert_int_eq(d->h, 2);
    ck_assert_int_eq(d->w, 3);
    ck_assert_int_eq(d->y[0], 0);
    ck_assert_int_eq(d->y[1], 2);
    ck_assert_int_eq(d->y[2], 2);
    ck_assert_int_eq(d->skipped_other, 1); /* cat/notes.txt */
    ck_assert_int_eq(d->skipped_bad, 0);
    ck_assert_str_eq(d->split_path, train);
    int counts[3];
    dataset_class_counts(d, counts);
    ck_assert_int_eq(counts[0], 1);
    ck_assert_int_eq(counts[1], 0); /* bird is a test-only class */
    ck_assert_int_eq(counts[2], 2);
    check_pgm_sample(d, 0, 5); /* ant/x */
    check_pgm_sample(d, 1, 2); /* cat/a.PGM sorts before cat/b.pgm */
    check_pgm_sample(d, 2, 1);
    dataset_free(d);
    d = NULL;
    ck_assert_msg(dataset_load(dir, DATASET_TEST, 0, 0, NULL, &d, err) == 0, "%s", err);
    ck_assert_int_eq(d->n_classes, 3);
    ck_assert_str_eq(d->class_names[2], "cat");
    ck_assert_int_eq(d->n, 2);
    ck_assert_int_eq(d->y[0], 0);
    ck_assert_int_eq(d->y[1], 1);
    ck_assert_str_eq(d->split_path, test);
    ck_assert_int_eq(d->skipped_other, 0);
    check_pgm_sample(d, 0, 7);
    check_pgm_sample(d, 1, 6);
    dataset_free(d);
    d = NULL;
    ck_assert_msg(dataset_load(dir, DATASET_TEST, 4, 6, NULL, &d, err) == 0, "%s", err);
    ck_assert_int_eq(d->h, 4);
    ck_assert_int_eq(d->w, 6);
    dataset_free(d);
    free(cat), free(ant), free(git), free(tbird), free(tant), free(train), free(test);
    tmpdir_remove(dir);
}
END_TEST

START_TEST(imgdir_flat) {
    char *dir = tmpdir_make(), err[SM_ERRMAX] = "";
    mkdir_in(dir, "one");
    mkdir_in(dir, "two");
    char *one = join(dir, "one"), *two = join(dir, "two");
    pgm_in(one, "1.pgm", 10);
    pgm_in(one, "2.jpeg.pgm", 11);
    pgm_in(two, "1.pgm", 12);
    Dataset *d = NULL;
    ck_assert_msg(dataset_load(dir, DATASET_TRAIN, 0, 0, NULL, &d, err) == 0, "%s", err);
    ck_assert_int_eq(d->n_classes, 2);
    ck_assert_str_eq(d->class_names[1], "two");
    ck_assert_int_eq(d->n, 3);
    ck_assert_int_eq(d->y[2], 1);
    ck_assert_str_eq(d->split_path, dir);
    check_pgm_sample(d, 1, 11);
    dataset_free(d);
    d = NULL;
    ck_assert_int_eq(dataset_load(dir, DATASET_TEST, 0, 0, NULL, &d, err), SM_ABSENT);
    ck_assert_ptr_null(d);
    free(one), free(two);
    tmpdir_remove(dir);
}
END_TEST

/* DIR/train without DIR/test: train/ is the train split, there is no test
 * split; a folder beside train/ is refused rather than silently ignored. */
START_TEST(imgdir_train_only) {
    char *dir = tmpdir_make(), err[SM_ERRMAX] = "";
    mkdir_in(dir, "train");
    char *tr = join(dir, "train");
    mkdir_in(tr, "a");
    mkdir_in(tr, "b");
    char *a = join(tr, "a"), *b = join(tr, "b");
    pgm_in(a, "1.pgm", 20);
    pgm_in(b, "1.pgm", 21);
    pgm_in(b, "2.pgm", 22);
    Dataset *d = NULL;
    ck_assert_msg(dataset_load(dir, DATASET_TRAIN, 0, 0, NULL, &d, err) == 0, "%s", err);
    ck_assert_int_eq(d->n_classes, 2);
    ck_assert_str_eq(d->class_names[0], "a");
    ck_assert_str_eq(d->class_names[1], "b");
    ck_assert_int_eq(d->n, 3);
    ck_assert_str_eq(d->split_path, tr);
    check_pgm_sample(d, 2, 22);
    dataset_free(d);
    d = NULL;
    ck_assert_int_eq(dataset_load(dir, DATASET_TEST, 0, 0, NULL, &d, err), SM_ABSENT);
    ck_assert_ptr_null(d);
    mkdir_in(dir, "stray");
    err[0] = 0;
    ck_assert_int_eq(dataset_load(dir, DATASET_TRAIN, 0, 0, NULL, &d, err), -EINVAL);
    ck_assert_msg(strstr(err, "'stray'") != NULL, "%s", err);
    ck_assert_ptr_null(d);
    free(a), free(b), free(tr);
    tmpdir_remove(dir);
}
END_TEST

/* skip_bad: an image that does not decode is counted and left out, the
 * others keep their labels; with none left it is still an error. */
START_TEST(imgdir_skip_bad) {
    char *dir = tmpdir_make(), err[SM_ERRMAX] = "";
    mkdir_in(dir, "x");
    mkdir_in(dir, "y");
    char *x = join(dir, "x"), *y = join(dir, "y");
    write_in(x, "0bad.png", "\x89PNG\r\n\x1a\nnot really", 19, 0);
    pgm_in(x, "1.pgm", 30);
    write_in(y, "a.jpg", "", 0, 0);
    pgm_in(y, "b.pgm", 31);
    write_in(y, "labels.csv", "b,y\n", 4, 0);
    Dataset *d = NULL;
    ck_assert_int_lt(dataset_load(dir, DATASET_TRAIN, 0, 0, NULL, &d, err), 0);
    ck_assert_ptr_null(d);
    DatasetLoad opt = {.skip_bad = 1};
    ck_assert_msg(dataset_load_with(dir, DATASET_TRAIN, &opt, &d, err) == 0, "%s", err);
    ck_assert_int_eq(d->n, 2);
    ck_assert_int_eq(d->skipped_bad, 2);
    ck_assert_int_eq(d->skipped_other, 1);
    ck_assert_int_eq(d->y[0], 0);
    ck_assert_int_eq(d->y[1], 1);
    check_pgm_sample(d, 0, 30);
    check_pgm_sample(d, 1, 31);
    dataset_free(d);
    d = NULL;
    char *p1 = join(x, "1.pgm"), *p2 = join(y, "b.pgm");
    ck_assert_int_eq(unlink(p1), 0);
    ck_assert_int_eq(unlink(p2), 0);
    err[0] = 0;
    ck_assert_int_lt(dataset_load_with(dir, DATASET_TRAIN, &opt, &d, err), 0);
    ck_assert(strlen(err) > 0);
    ck_assert_ptr_null(d);
    free(p1), free(p2), free(x), free(y);
    tmpdir_remove(dir);
}
END_TEST

START_TEST(imgdir_errors) {
    char *dir = tmpdir_make(), err[SM_ERRMAX] = "";
    Dataset *d = NULL;
    /* Empty: neither IDX files nor class folders. */
    ck_assert_int_eq(dataset_load(dir, DATASET_TRAIN, 0, 0, NULL, &d, err), -ENOENT);
    mkdir_in(dir, "c");
    char *c = join(dir, "c");
    ck_assert_int_eq(dataset_load(dir, DATASET_TRAIN, 0, 0, NULL, &d, err), -ENOENT);
    pgm_in(c, "a.pgm", 1);
    write_in(c, "broken.png", "\x89PNG\r\n\x1a\nnot really", 19, 0);
    err[0] = 0;
    int rc = dataset_load(dir, DATASET_TRAIN, 0, 0, NULL, &d, err);
    ck_assert_int_lt(rc, 0);
    ck_assert_msg(strstr(err, "broken.png") != NULL, "error does not name the file: %s", err);
    ck_assert_ptr_null(d);
    free(c);
    tmpdir_remove(dir);
}
END_TEST

/* ---- dataset_split_off ----------------------------------------------------- */

/* A dataset of n 1x2 samples whose labels are given; x = (i, -i). */
static Dataset *toy(const int *y, int n, int n_classes) {
    Dataset *d = calloc(1, sizeof *d);
    d->n = n, d->h = 1, d->w = 2, d->c = 1, d->n_classes = n_classes;
    d->x = malloc((size_t)n * 2 * sizeof(float));
    d->y = malloc((size_t)n * sizeof(int));
    d->class_names = calloc((size_t)n_classes, sizeof(char *));
    d->source = strdup("toy");
    for (int i = 0; i < n; i++) {
        d->x[2 * i] = (float)i, d->x[2 * i + 1] = (float)-i;
        d->y[i] = y[i];
    }
    for (int c = 0; c < n_classes; c++)
        ck_assert_int_ge(asprintf(&d->class_names[c], "c%d", c), 0);
    return d;
}

START_TEST(split_off) {
    /* class 0: 10 samples (20% -> 2), class 1: 3 (stays), class 2: 5 (1 -> at least 2). */
    const int mixed[18] = {0, 2, 0, 1, 0, 2, 0, 0, 1, 2, 0, 0, 2, 0, 1, 0, 2, 0};
    Dataset *d = toy(mixed, 18, 3), *v = NULL;
    char err[SM_ERRMAX] = "";
    ck_assert_int_eq(dataset_split_off(d, 0.2, &v, err), 0);
    /* Validation: the last 2 of class 0 (samples 15, 17) and of class 2 (12, 16),
     * in dataset order. */
    const int want_v[] = {12, 15, 16, 17};
    ck_assert_int_eq(v->n, 4);
    for (int j = 0; j < 4; j++) {
        ck_assert_float_eq(v->x[2 * j], (float)want_v[j]);
        ck_assert_float_eq(v->x[2 * j + 1], (float)-want_v[j]);
        ck_assert_int_eq(v->y[j], mixed[want_v[j]]);
    }
    ck_assert_int_eq(d->n, 14);
    for (int j = 0, i = 0; i < 18; i++) {
        if (i == 12 || i >= 15)
            continue;
        ck_assert_float_eq(d->x[2 * j], (float)i);
        ck_assert_int_eq(d->y[j], mixed[i]);
        j++;
    }
    ck_assert_int_eq(v->n_classes, 3);
    ck_assert_str_eq(v->class_names[1], "c1");
    ck_assert_int_eq(v->h * v->w, 2);
    dataset_free(v);
    dataset_free(d);
}
END_TEST

START_TEST(split_off_bounds) {
    int y[100];
    for (int i = 0; i < 30; i++)
        y[i] = i < 25 ? 0 : 1; /* 25 of class 0, 5 of class 1 */
    Dataset *d = toy(y, 30, 2), *v = NULL;
    /* 0.1 * 25 = 2.5 -> 3; 0.1 * 5 -> 2 (the minimum). */
    ck_assert_int_eq(dataset_split_off(d, 0.1, &v, NULL), 0);
    ck_assert_int_eq(v->n, 5);
    ck_assert_int_eq(d->n, 25);
    dataset_free(v);
    dataset_free(d);
    for (int i = 0; i < 100; i++)
        y[i] = 0;
    d = toy(y, 100, 1);
    /* 0.07 * 100 is 7.000000000000001 in binary: it must still be 7, not 8. */
    ck_assert_int_eq(dataset_split_off(d, 0.07, &v, NULL), 0);
    ck_assert_int_eq(v->n, 7);
    ck_assert_float_eq(v->x[0], 93.0f);
    dataset_free(v);
    /* 0.99 of the remaining 93 would leave none: capped so d keeps 2. */
    ck_assert_int_eq(dataset_split_off(d, 0.99, &v, NULL), 0);
    ck_assert_int_eq(v->n, 91);
    ck_assert_int_eq(d->n, 2);
    ck_assert_float_eq(d->x[2], 1.0f);
    dataset_free(v);
    char err[SM_ERRMAX] = "";
    v = NULL;
    ck_assert_int_eq(dataset_split_off(d, 0.0, &v, err), -EINVAL);
    ck_assert_int_eq(dataset_split_off(d, 1.0, &v, err), -EINVAL);
    ck_assert_int_eq(dataset_split_off(d, NAN, &v, err), -EINVAL);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(d->n, 2);
    /* Too small to split: an empty validation set with the same classes. */
    ck_assert_int_eq(dataset_split_off(d, 0.5, &v, NULL), 0);
    ck_assert_int_eq(v->n, 0);
    ck_assert_int_eq(v->n_classes, 1);
    ck_assert_int_eq(d->n, 2);
    dataset_free(v);
    dataset_free(d);
    dataset_free(NULL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("dataset");
    TCase *idx = tcase_create("idx");
    tcase_add_test(idx, idx_parse_valid);
    tcase_add_test(idx, idx_read_round_trip);
    tcase_add_test(idx, idx_bad_headers);
    tcase_add_test(idx, idx_truncated_everywhere);
    tcase_add_test(idx, idx_gzip_stream_cut);
    tcase_add_test(idx, idx_trailing_bytes);
    tcase_add_test(idx, idx_absurd_dims);
    tcase_add_test(idx, idx_seed_files);
    suite_add_tcase(s, idx);
    TCase *ds = tcase_create("dataset");
    tcase_set_timeout(ds, 120);
    tcase_add_test(ds, idx_dataset);
    tcase_add_test(ds, idx_dataset_errors);
    tcase_add_test(ds, fashion_mnist);
    tcase_add_test(ds, imgdir_splits);
    tcase_add_test(ds, imgdir_flat);
    tcase_add_test(ds, imgdir_train_only);
    tcase_add_test(ds, imgdir_skip_bad);
    tcase_add_test(ds, imgdir_errors);
    tcase_add_test(ds, split_off);
    tcase_add_test(ds, split_off_bounds);
    suite_add_tcase(s, ds);
    return check_run(s);
}
