/*
 * dataset.h — labelled image sets for training and evaluation.
 *
 * A dataset path is one of:
 *   - an IDX directory (MNIST layout): train-images-idx3-ubyte and
 *     train-labels-idx1-ubyte for the train split, t10k-images-idx3-ubyte and
 *     t10k-labels-idx1-ubyte for the test split, each raw or .gz;
 *   - an image directory: DIR/<class name>/<image>.{png,jpg,jpeg,pgm,ppm}; if DIR
 *     has a subdirectory "train" or "test" (or both), those are the splits
 *     (DIR/train/<class>/..., DIR/test/<class>/...; a missing one is SM_ABSENT,
 *     and any other folder beside them is an error, as it would be ignored);
 *     otherwise DIR is the train split and has no test split.
 * In class folders, files without an image extension are counted
 * (skipped_other) and ignored; hidden entries (".name") are ignored silently.
 * A class present in one split only is normal (open-set layouts): labels are
 * positions in the sorted union of both splits' folder names, so a class has
 * the same label, and the same name, in both.
 * Images are prepared by the image module into want_h x want_w floats in [0,1]
 * (IDX images included, so every path goes through one preparation).
 */
#ifndef SIAMESE_DATASET_H
#define SIAMESE_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "siamese/img.h"

#define DATASET_MAX_CLASSES 100000
#define DATASET_MAX_SAMPLES 10000000

typedef enum { DATASET_TRAIN, DATASET_TEST } DatasetSplit;

typedef struct {
    int n;    /* samples */
    int h, w; /* prepared image size */
    int c;    /* channels: 1 gray, 3 RGB (x rows are h*w*c floats, HWC) */
    float *x; /* n*h*w floats in [0,1], row per sample */
    int *y;   /* n labels in [0, n_classes) */
    int n_classes;
    char **class_names; /* n_classes NUL-terminated names: folder names; IDX: "0", "1", ...
                           (Fashion-MNIST's categories when the IDX folder's path contains
                           "fashion", case aside, and has at most 10 labels) */
    char **files;       /* n image paths (image directories; NULL for IDX and after
                           dataset_split_off()) */
    char *source;       /* the path it was read from */
    char *split_path;   /* where this split's images are: DIR/test, DIR, an IDX images file */
    int skipped_other;  /* files in class folders without an image extension */
    int skipped_bad;    /* image files that did not decode (DatasetLoad.skip_bad) */
} Dataset;              /* every pointer owned; free with dataset_free() */

typedef struct {
    int want_h, want_w;   /* prepared size; 0, 0: that of the first train image */
    const ImgLimits *lim; /* bounds each image; NULL: IMG_LIMITS_DEFAULT */
    int skip_bad;         /* an image that does not decode: warn, count, go on (else fail) */
    int channels;         /* 1 (or 0) gray, 3 RGB; IDX images are gray, replicated for 3 */
} DatasetLoad;

/* Loads split of the dataset at path as opt says (NULL: all defaults).
 * Returns 0, SM_ABSENT when the dataset has no such split (e.g. the test
 * split of a flat image directory), or a negative errno with err filled
 * (a file that does not decode names the file; with skip_bad it is skipped
 * and counted instead, unless no image is left). *out freed with
 * dataset_free(). */
int dataset_load_with(const char *path, DatasetSplit split, const DatasetLoad *opt, Dataset **out,
                      char *err);
/* dataset_load_with() with {want_h, want_w, lim} and skip_bad off. */
int dataset_load(const char *path, DatasetSplit split, int want_h, int want_w, const ImgLimits *lim,
                 Dataset **out, char *err);
void dataset_free(Dataset *d);

/* Samples per class: counts[c] for c < d->n_classes (the caller's array). */
void dataset_class_counts(const Dataset *d, int *counts);

/* Reads one IDX file (raw or gzip) of unsigned bytes: 1 dim (labels) or 3
 * dims (images). dims[] receives up to 3 sizes; *data (malloc'ed, caller
 * frees) the bytes. Rejects wrong magic, non-u8 types, a dimension count other
 * than 1 or 3, a declared size over max_bytes, and truncated or over-long data. */
int idx_read(const char *path, size_t max_bytes, int *ndim, int dims[3], uint8_t **data, char *err);
/* The same from memory (raw, not gzip). */
int idx_parse(const uint8_t *buf, size_t len, size_t max_bytes, int *ndim, int dims[3],
              uint8_t **data, char *err);

/* Splits off a validation set: for each class, the last ceil(frac * count)
 * samples (at least 2 when the class has >= 4, and at most count - 2 so that
 * both sides keep a class pairs_make() can use) move from d into *val, in
 * dataset order; a class with fewer than 4 samples stays whole in d. frac must
 * be in (0, 1) (-EINVAL otherwise). *val has d's classes and may hold no
 * samples. Deterministic; on failure d is unchanged. *val freed with
 * dataset_free(). */
int dataset_split_off(Dataset *d, double frac, Dataset **val, char *err);

#endif
