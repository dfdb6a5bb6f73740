/*
 * dataset.c — loads a labelled image set (an IDX directory or a directory of
 * class folders) into one Dataset, and splits a validation set off it.
 *
 * Both layouts end the same way: every image goes through img_prepare() (via
 * img_load_file() for image files) into want_h x want_w floats, so the trainer
 * sees exactly what the daemon will see. Everything read here comes from disk
 * and is untrusted: counts are checked against DATASET_MAX_* and ImgLimits
 * before the float matrix is sized, and a bad file is an error naming it.
 *
 * Image directories are read in a fixed order (class folders, then files, each
 * sorted with strcmp) so that the same tree always yields the same labels and
 * sample order, whatever readdir() returns.
 */
#include "siamese/dataset.h"

#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "siamese/common.h"
#include "siamese/log.h"

/* The largest IDX payload accepted: Fashion-MNIST's train images are 47 MB. */
#define DATASET_IDX_MAX_BYTES ((size_t)1 << 30)
/* What img_load_file() reads at most; used when sniffing the first image. */
#define DATASET_IMG_MAX_FILE ((size_t)64 << 20)

/* Fashion-MNIST's categories by label (Xiao, Rasul & Vollgraf 2017). */
static const char *const fashion_names[10] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                              "Coat",        "Sandal",    "Shirt",    "Bag",
                                              "Sneaker",     "Ankle boot"};

static const char *const idx_names[2][2] = {
    {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"},
    {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"},
};

typedef struct {
    char **v;
    size_t n, cap;
} StrList;

static void strlist_free(StrList *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    *l = (StrList){0};
}

/* Appends s (owned by the list from now on, freed on failure too). */
static int strlist_take(StrList *l, char *s) {
    if (!s)
        return -ENOMEM;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            free(s);
            return -ENOMEM;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void strlist_sort_unique(StrList *l) {
    if (l->n == 0)
        return;
    qsort(l->v, l->n, sizeof *l->v, cmp_str);
    size_t k = 1;
    for (size_t i = 1; i < l->n; i++) {
        if (strcmp(l->v[i], l->v[k - 1]) == 0)
            free(l->v[i]);
        else
            l->v[k++] = l->v[i];
    }
    l->n = k;
}

static char *path_join(const char *a, const char *b) {
    char *p = NULL;
    return asprintf(&p, "%s/%s", a, b) < 0 ? NULL : p;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

void dataset_free(Dataset *d) {
    if (!d)
        return;
    if (d->class_names)
        for (int i = 0; i < d->n_classes; i++)
            free(d->class_names[i]);
    free(d->class_names);
    for (int i = 0; d->files && i < d->n; i++)
        free(d->files[i]);
    free(d->files);
    free(d->x);
    free(d->y);
    free(d->source);
    free(d->split_path);
    free(d);
}

/* A Dataset with room for n samples of h x w and n_classes (unnamed) classes.
 * The caller has already bounded n, h, w; the product is still checked. */
static int dataset_new(int n, int h, int w, int c, int n_classes, const char *source, Dataset **out,
                       char *err) {
    size_t cells;
    if (__builtin_mul_overflow((size_t)n, (size_t)h * (size_t)w * (size_t)c, &cells) ||
        cells > SIZE_MAX / sizeof(float))
        return sm_err(err, -EFBIG, "%s: %d images of %dx%d are too many", source, n, h, w);
    Dataset *d = calloc(1, sizeof *d);
    if (!d)
        return sm_err(err, -ENOMEM, "out of memory");
    d->n = n;
    d->h = h;
    d->w = w;
    d->c = c;
    d->n_classes = n_classes;
    d->x = malloc(cells ? cells * sizeof(float) : 1);
    d->y = malloc(n ? (size_t)n * sizeof(int) : 1);
    d->class_names = calloc(n_classes ? (size_t)n_classes : 1, sizeof(char *));
    d->source = strdup(source);
    if (!d->x || !d->y || !d->class_names || !d->source) {
        dataset_free(d);
        return sm_err(err, -ENOMEM, "%s: out of memory for %d images of %dx%d", source, n, h, w);
    }
    *out = d;
    return 0;
}

/* ---- IDX directories ------------------------------------------------------ */

/* Finds dir/NAME.gz or dir/NAME (in that order, like the reference script).
 * Returns 0 with *out malloc'ed, SM_ABSENT, or -ENOMEM. */
static int idx_find(const char *dir, const char *name, char **out) {
    char *p = NULL;
    if (asprintf(&p, "%s/%s.gz", dir, name) < 0)
        return -ENOMEM;
    if (!is_file(p)) {
        p[strlen(p) - 3] = 0;
        if (!is_file(p)) {
            free(p);
            return SM_ABSENT;
        }
    }
    *out = p;
    return 0;
}

static int idx_dir_detect(const char *dir) {
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < 2; k++) {
            char *p = NULL;
            if (idx_find(dir, idx_names[s][k], &p) == 0) {
                free(p);
                return 1;
            }
        }
    return 0;
}

/* Checks the two arrays against each other and the limits; returns n. */
static int idx_check_pair(const char *dir, int ind, const int idim[3], int lnd, const int ldim[3],
                          const ImgLimits *lim, char *err) {
    if (ind != 3)
        return sm_err(err, -EINVAL, "%s: the images file has %d dimensions, not 3", dir, ind);
    if (lnd != 1)
        return sm_err(err, -EINVAL, "%s: the labels file has %d dimensions, not 1", dir, lnd);
    if (idim[0] != ldim[0])
        return sm_err(err, -EINVAL, "%s: %d images but %d labels", dir, idim[0], ldim[0]);
    if (idim[0] > DATASET_MAX_SAMPLES)
        return sm_err(err, -EFBIG, "%s: %d samples, more than %d", dir, idim[0],
                      DATASET_MAX_SAMPLES);
    if (idim[1] > lim->max_height || idim[2] > lim->max_width ||
        (uint64_t)idim[1] * (uint64_t)idim[2] > lim->max_pixels)
        return sm_err(err, -E2BIG, "%s: %dx%d images exceed the image limits", dir, idim[1],
                      idim[2]);
    return idim[0];
}

static int dataset_load_idx(const char *dir, DatasetSplit split, int want_h, int want_w, int oc,
                            const ImgLimits *lim, Dataset **out, char *err) {
    char *ipath = NULL, *lpath = NULL;
    uint8_t *img = NULL, *lab = NULL;
    int idim[3], ldim[3], ind = 0, lnd = 0, rc;
    Dataset *d = NULL;
    int ri = idx_find(dir, idx_names[split][0], &ipath);
    int rl = idx_find(dir, idx_names[split][1], &lpath);
    if (ri < 0 || rl < 0) {
        rc = sm_err(err, -ENOMEM, "out of memory");
        goto out;
    }
    if (ri == SM_ABSENT && rl == SM_ABSENT) {
        rc = SM_ABSENT;
        goto out;
    }
    if (ri == SM_ABSENT || rl == SM_ABSENT) {
        rc = sm_err(err, -ENOENT, "%s: %s(.gz) is missing", dir,
                    idx_names[split][ri == SM_ABSENT ? 0 : 1]);
        goto out;
    }
    if ((rc = idx_read(ipath, DATASET_IDX_MAX_BYTES, &ind, idim, &img, err)) < 0 ||
        (rc = idx_read(lpath, DATASET_MAX_SAMPLES, &lnd, ldim, &lab, err)) < 0 ||
        (rc = idx_check_pair(dir, ind, idim, lnd, ldim, lim, err)) < 0)
        goto out;
    int n = idim[0], h = idim[1], w = idim[2], n_classes = 0;
    if (n == 0) {
        rc = sm_err(err, -EINVAL, "%s: the %s split is empty", dir, split ? "test" : "train");
        goto out;
    }
    for (int i = 0; i < n; i++)
        n_classes = lab[i] + 1 > n_classes ? lab[i] + 1 : n_classes;
    int oh = want_h ? want_h : h, ow = want_w ? want_w : w;
    if ((rc = dataset_new(n, oh, ow, oc, n_classes, dir, &d, err)) < 0)
        goto out;
    d->split_path = ipath;
    ipath = NULL;
    int fashion = n_classes <= 10 && strcasestr(dir, "fashion") != NULL;
    for (int c = 0; c < n_classes; c++)
        if (fashion ? !(d->class_names[c] = strdup(fashion_names[c]))
                    : asprintf(&d->class_names[c], "%d", c) < 0) {
            d->class_names[c] = NULL;
            rc = sm_err(err, -ENOMEM, "out of memory");
            goto out;
        }
    size_t px = (size_t)h * (size_t)w, opx = (size_t)oh * (size_t)ow * (size_t)oc;
    for (int i = 0; i < n; i++) {
        ImgGray g = {.w = w, .h = h, .c = 1, .px = img + (size_t)i * px};
        img_prepare_c(&g, oh, ow, oc, d->x + (size_t)i * opx);
        d->y[i] = lab[i];
    }
    *out = d;
    d = NULL;
    rc = 0;
out:
    dataset_free(d);
    free(img);
    free(lab);
    free(ipath);
    free(lpath);
    return rc;
}

/* ---- image directories ---------------------------------------------------- */

static int has_image_ext(const char *name) {
    static const char *const exts[] = {"png", "jpg", "jpeg", "pgm", "ppm"};
    const char *dot = strrchr(name, '.');
    if (!dot)
        return 0;
    for (size_t i = 0; i < SM_ARRAY_LEN(exts); i++)
        if (strcasecmp(dot + 1, exts[i]) == 0)
            return 1;
    return 0;
}

/* Appends to out the visible entries of dir that are directories (want_dirs)
 * or image files (!want_dirs), stopping with -EFBIG past limit entries. A
 * missing dir adds nothing. Names are appended unsorted. *other (may be NULL)
 * counts the visible regular files that are not images. */
static int list_dir(const char *dir, int want_dirs, size_t limit, StrList *out, int *other,
                    char *err) {
    DIR *dh = opendir(dir);
    if (!dh)
        return errno == ENOENT ? 0 : sm_err(err, -errno, "%s: %s", dir, strerror(errno));
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(dh)) != NULL) {
        struct stat st;
        if (e->d_name[0] == '.' || fstatat(dirfd(dh), e->d_name, &st, 0) < 0)
            continue;
        int ok = want_dirs ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode) && has_image_ext(e->d_name);
        if (!ok && other && S_ISREG(st.st_mode) && !has_image_ext(e->d_name))
            ++*other;
        if (!ok)
            continue;
        if (out->n >= limit) {
            rc = sm_err(err, -EFBIG, "%s: more than %zu %s", dir, limit,
                        want_dirs ? "classes" : "images");
            break;
        }
        if (strlist_take(out, strdup(e->d_name)) < 0) {
            rc = sm_err(err, -ENOMEM, "out of memory");
            break;
        }
    }
    closedir(dh);
    return rc;
}

/* The image files of one split: full paths in load order and their labels. */
typedef struct {
    StrList paths;
    int *labels;
} Samples;

/* Lists split_dir/<class>/<image> for every class in classes (a class folder
 * missing from this split contributes nothing); *other (may be NULL) counts
 * the files that are not images. */
static int samples_collect(const char *split_dir, const StrList *classes, Samples *s, int *other,
                           char *err) {
    int rc = 0;
    for (size_t c = 0; c < classes->n && rc == 0; c++) {
        StrList files = {0};
        char *cdir = path_join(split_dir, classes->v[c]);
        size_t before = s->paths.n;
        if (!cdir)
            rc = sm_err(err, -ENOMEM, "out of memory");
        else
            rc = list_dir(cdir, 0, DATASET_MAX_SAMPLES - before, &files, other, err);
        if (rc == 0 && files.n > 0) {
            qsort(files.v, files.n, sizeof *files.v, cmp_str);
            int *lab = realloc(s->labels, (before + files.n) * sizeof(int));
            if (!lab)
                rc = sm_err(err, -ENOMEM, "out of memory");
            else
                s->labels = lab;
        }
        for (size_t i = 0; rc == 0 && i < files.n; i++) {
            if (strlist_take(&s->paths, path_join(cdir, files.v[i])) < 0)
                rc = sm_err(err, -ENOMEM, "out of memory");
            else
                s->labels[s->paths.n - 1] = (int)c;
        }
        strlist_free(&files);
        free(cdir);
    }
    return rc;
}

/* Decodes one image file only to learn its size. */
static int image_size(const char *path, const ImgLimits *lim, int *h, int *w, char *err) {
    uint8_t *buf = NULL;
    size_t len = 0;
    ImgGray g = {0};
    char why[SM_ERRMAX] = "";
    int rc = sm_read_file(path, DATASET_IMG_MAX_FILE, &buf, &len, err);
    if (rc < 0)
        return rc;
    rc = img_decode(buf, len, lim, &g, why);
    free(buf);
    if (rc < 0)
        return sm_err(err, rc, "%s: %s", path, why);
    *h = g.h;
    *w = g.w;
    img_gray_free(&g);
    return 0;
}

/* Whether a failure to load one image may be skipped under skip_bad: any
 * but running out of memory. */
static int skippable(int rc) {
    return rc < 0 && rc != -ENOMEM;
}

/* The native size for want == 0: that of the first image of the train split
 * (the first that decodes, under skip_bad), so that both splits of one
 * dataset come out the same size. */
static int first_image_size(const char *train_dir, const StrList *classes, const DatasetLoad *opt,
                            int *h, int *w, char *err) {
    Samples s = {0};
    int rc = samples_collect(train_dir, classes, &s, NULL, err);
    if (rc == 0 && s.paths.n == 0)
        rc = sm_err(err, -ENOENT, "%s: no images", train_dir);
    for (size_t i = 0; rc == 0 && i < s.paths.n; i++) {
        rc = image_size(s.paths.v[i], opt->lim, h, w, err);
        if (rc == 0 || !opt->skip_bad || !skippable(rc))
            break;
        rc = i + 1 < s.paths.n ? 0 : sm_err(err, rc, "%s: no image decodes", train_dir);
    }
    strlist_free(&s.paths);
    free(s.labels);
    return rc;
}

/* Loads every listed file into d (already sized to match s). Under skip_bad
 * a file that does not load is logged, counted in d->skipped_bad and left
 * out, and d->n shrinks to the images kept. */
static int samples_load(const Samples *s, const DatasetLoad *opt, Dataset *d, char *err) {
    char why[SM_ERRMAX];
    size_t opx = (size_t)d->h * (size_t)d->w * (size_t)d->c, k = 0;
    for (size_t i = 0; i < s->paths.n; i++) {
        const char *p = s->paths.v[i];
        why[0] = 0;
        int rc = img_load_file_c(p, opt->lim, d->h, d->w, d->c, d->x + k * opx, why);
        int named = strncmp(why, p, strlen(p)) == 0;
        if (rc < 0 && opt->skip_bad && skippable(rc)) {
            log_warn("dataset: skipped %s%s%s", named ? "" : p, named ? "" : ": ", why);
            d->skipped_bad++;
            continue;
        }
        if (rc < 0)
            return named ? sm_err(err, rc, "%s", why) : sm_err(err, rc, "%s: %s", p, why);
        if (d->files && !(d->files[k] = strdup(p)))
            return sm_err(err, -ENOMEM, "out of memory");
        d->y[k++] = s->labels[i];
    }
    d->n = (int)k;
    if (k == 0)
        return sm_err(err, -EINVAL, "%s: none of its %zu images decodes", d->split_path,
                      s->paths.n);
    return 0;
}

/* The split folders of an image directory: DIR/train and DIR/test when either
 * exists (the other NULL if absent), else DIR itself as the train split. */
typedef struct {
    char *train, *test;
} Layout;

static void layout_free(Layout *l) {
    free(l->train);
    free(l->test);
    *l = (Layout){0};
}

/* With train/ or test/ present, any other folder beside them would be
 * silently ignored: refuse it instead. */
static int layout_check_top(const char *dir, char *err) {
    StrList top = {0};
    int rc = list_dir(dir, 1, DATASET_MAX_CLASSES, &top, NULL, err);
    for (size_t i = 0; rc == 0 && i < top.n; i++)
        if (strcmp(top.v[i], "train") != 0 && strcmp(top.v[i], "test") != 0)
            rc = sm_err(err, -EINVAL,
                        "%s: folder '%s' beside train/ or test/ would be ignored: class folders "
                        "go in %s/train/<class>/ and %s/test/<class>/",
                        dir, top.v[i], dir, dir);
    strlist_free(&top);
    return rc;
}

static int layout_find(const char *dir, Layout *l, char *err) {
    *l = (Layout){path_join(dir, "train"), path_join(dir, "test")};
    if (!l->train || !l->test) {
        layout_free(l);
        return sm_err(err, -ENOMEM, "out of memory");
    }
    int has_train = is_dir(l->train), has_test = is_dir(l->test), rc = 0;
    if (!has_train && !has_test) {
        layout_free(l);
        l->train = strdup(dir);
        return l->train ? 0 : sm_err(err, -ENOMEM, "out of memory");
    }
    if (!has_train)
        free(l->train), l->train = NULL;
    if (!has_test)
        free(l->test), l->test = NULL;
    if ((rc = layout_check_top(dir, err)) < 0)
        layout_free(l);
    return rc;
}

/* Labels are positions in the sorted union of both splits' class names, so a
 * class means the same label in train and test. */
static int layout_classes(const char *dir, const Layout *l, StrList *classes, char *err) {
    int rc = 0;
    if (l->train)
        rc = list_dir(l->train, 1, DATASET_MAX_CLASSES, classes, NULL, err);
    if (rc == 0 && l->test)
        rc = list_dir(l->test, 1, 2 * (size_t)DATASET_MAX_CLASSES, classes, NULL, err);
    if (rc < 0)
        return rc;
    strlist_sort_unique(classes);
    if (classes->n == 0)
        return sm_err(err, -ENOENT, "%s: no class folders (and no IDX files)", dir);
    if (classes->n > DATASET_MAX_CLASSES)
        return sm_err(err, -EFBIG, "%s: more than %d classes", dir, DATASET_MAX_CLASSES);
    return 0;
}

static int dataset_load_imgdir(const char *dir, DatasetSplit split, const DatasetLoad *opt,
                               Dataset **out, char *err) {
    StrList classes = {0};
    Samples s = {0};
    Dataset *d = NULL;
    Layout lay = {0};
    int rc = layout_find(dir, &lay, err), h = opt->want_h, w = opt->want_w, other = 0;
    if (rc < 0)
        goto out;
    const char *split_dir = split == DATASET_TEST ? lay.test : lay.train;
    if (!split_dir) {
        rc = SM_ABSENT;
        goto out;
    }
    if ((rc = layout_classes(dir, &lay, &classes, err)) < 0)
        goto out;
    if ((rc = samples_collect(split_dir, &classes, &s, &other, err)) < 0)
        goto out;
    if (s.paths.n == 0) {
        rc = sm_err(err, -ENOENT, "%s: no images (.png .jpg .jpeg .pgm .ppm)", split_dir);
        goto out;
    }
    if ((h == 0 || w == 0) &&
        (rc = first_image_size(lay.train ? lay.train : lay.test, &classes, opt, &h, &w, err)) < 0)
        goto out;
    h = opt->want_h ? opt->want_h : h;
    w = opt->want_w ? opt->want_w : w;
    if ((rc = dataset_new((int)s.paths.n, h, w, opt->channels == 3 ? 3 : 1, (int)classes.n, dir, &d,
                          err)) < 0)
        goto out;
    d->skipped_other = other;
    if (!(d->split_path = strdup(split_dir))) {
        rc = sm_err(err, -ENOMEM, "out of memory");
        goto out;
    }
    for (size_t c = 0; c < classes.n; c++) {
        d->class_names[c] = classes.v[c]; /* ownership moves to d */
        classes.v[c] = NULL;
    }
    if (!(d->files = calloc(s.paths.n, sizeof *d->files))) {
        rc = sm_err(err, -ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = samples_load(&s, opt, d, err)) < 0)
        goto out;
    *out = d;
    d = NULL;
out:
    dataset_free(d);
    strlist_free(&classes);
    strlist_free(&s.paths);
    free(s.labels);
    layout_free(&lay);
    return rc;
}

int dataset_load_with(const char *path, DatasetSplit split, const DatasetLoad *opt, Dataset **out,
                      char *err) {
    ImgLimits dflt = IMG_LIMITS_DEFAULT;
    DatasetLoad o = opt ? *opt : (DatasetLoad){0};
    struct stat st;
    if (!o.lim)
        o.lim = &dflt;
    if (split != DATASET_TRAIN && split != DATASET_TEST)
        return sm_err(err, -EINVAL, "bad dataset split %d", (int)split);
    if (o.want_h < 0 || o.want_w < 0 || o.want_h > o.lim->max_height || o.want_w > o.lim->max_width)
        return sm_err(err, -EINVAL, "bad prepared image size %dx%d", o.want_h, o.want_w);
    if (o.channels != 0 && o.channels != 1 && o.channels != 3)
        return sm_err(err, -EINVAL, "bad channel count %d (1 or 3)", o.channels);
    if (stat(path, &st) < 0)
        return sm_err(err, -errno, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return sm_err(err, -ENOTDIR, "%s: a dataset is a directory", path);
    if (idx_dir_detect(path))
        return dataset_load_idx(path, split, o.want_h, o.want_w, o.channels == 3 ? 3 : 1, o.lim,
                                out, err);
    return dataset_load_imgdir(path, split, &o, out, err);
}

int dataset_load(const char *path, DatasetSplit split, int want_h, int want_w, const ImgLimits *lim,
                 Dataset **out, char *err) {
    DatasetLoad o = {.want_h = want_h, .want_w = want_w, .lim = lim};
    return dataset_load_with(path, split, &o, out, err);
}

void dataset_class_counts(const Dataset *d, int *counts) {
    memset(counts, 0, (size_t)d->n_classes * sizeof *counts);
    for (int i = 0; i < d->n; i++) {
        assert(d->y[i] >= 0 && d->y[i] < d->n_classes);
        counts[d->y[i]]++;
    }
}
/* ---- validation split ----------------------------------------------------- */

/* How many of a class's count samples move to the validation set. */
static int split_count(int count, double frac) {
    if (count < 4)
        return 0;
    /* The small slack keeps 0.07 * 100 (= 7.000000000000001) from becoming 8. */
    int k = (int)ceil(frac * count - 1e-9);
    if (k < 2)
        k = 2;
    if (k > count - 2)
        k = count - 2;
    return k;
}

int dataset_split_off(Dataset *d, double frac, Dataset **val, char *err) {
    int *count = NULL, *seen = NULL, rc = 0;
    Dataset *v = NULL;
    if (!(frac > 0 && frac < 1))
        return sm_err(err, -EINVAL, "validation fraction %g is not in (0, 1)", frac);
    for (int i = 0; d->files && i < d->n; i++) /* the split keeps no file names */
        free(d->files[i]);
    free(d->files);
    d->files = NULL;
    count = calloc((size_t)d->n_classes + 1, sizeof(int));
    seen = calloc((size_t)d->n_classes + 1, sizeof(int));
    if (!count || !seen) {
        rc = sm_err(err, -ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < d->n; i++)
        count[d->y[i]]++;
    int nv = 0;
    for (int c = 0; c < d->n_classes; c++)
        nv += split_count(count[c], frac);
    if ((rc = dataset_new(nv, d->h, d->w, d->c, d->n_classes, d->source, &v, err)) < 0)
        goto out;
    if (d->split_path && !(v->split_path = strdup(d->split_path))) {
        rc = sm_err(err, -ENOMEM, "out of memory");
        goto out;
    }
    for (int c = 0; c < d->n_classes; c++)
        if (!(v->class_names[c] = strdup(d->class_names[c]))) {
            rc = sm_err(err, -ENOMEM, "out of memory");
            goto out;
        }
    /* Nothing can fail from here on, so d is either untouched or fully split. */
    size_t px = (size_t)d->h * (size_t)d->w * (size_t)d->c;
    int kept = 0, moved = 0;
    for (int i = 0; i < d->n; i++) {
        int c = d->y[i];
        int to_val = seen[c]++ >= count[c] - split_count(count[c], frac);
        Dataset *dst = to_val ? v : d;
        int j = to_val ? moved++ : kept++;
        memmove(dst->x + (size_t)j * px, d->x + (size_t)i * px, px * sizeof(float));
        dst->y[j] = c;
    }
    d->n = kept;
    *val = v;
    v = NULL;
out:
    dataset_free(v);
    free(count);
    free(seen);
    return rc;
}
