/*
 * bulk.c — `siamesed --enroll --data DIR`: enrolls a labelled image set into
 * the store through store_enroll() (the same validation, writer and group
 * commit as POST /enroll), with a progress line (log_progress()) on a terminal.
 *
 * DIR is either
 *   - an image directory DIR/<subject>/<image>.{png,jpg,jpeg,pgm,ppm}: each
 *     folder is a subject (its name must be a valid subject id), each image a
 *     sample; when DIR has both train/ and test/ (the split layout --train
 *     reads), DIR/train is the one enrolled; or
 *   - an IDX directory (MNIST layout): train-images-idx3-ubyte and
 *     train-labels-idx1-ubyte (raw or .gz), the train split only; the subject
 *     of an image is its label in decimal ("0" ... "9"), the name its folder
 *     would have in an image directory, so both layouts of one data set give
 *     the same subjects.
 * Every sample records its source: the file's absolute path, with "#<i>" for
 * the i-th image of an IDX file. A run that was interrupted is resumed by
 * running it again: files whose source is stored are skipped (so are files
 * enrolled by an earlier run of another directory holding the same paths).
 * Images that do not decode fail the run, or with skip_bad_images are
 * skipped and counted. Samples go in batches of up to STORE_ENROLL_MAX of
 * one subject, each batch one durable store_enroll(); WORKERS threads each
 * load, embed and enroll a batch at a time, so decoding overlaps the commits
 * and their batches share transactions (group commit).
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server.h"
#include "siamese/common.h"
#include "siamese/dataset.h"
#include "siamese/log.h"
#include "siamese/serve.h"

#define BATCH STORE_ENROLL_MAX
#define IMG_FILE_MAX ((size_t)64 << 20)

typedef struct {
    char *subject; /* owned */
    char *source;  /* owned: absolute path, "#<i>" for IDX */
    int idx;       /* image number in the IDX file, -1 for an image file */
} Item;

typedef struct {
    Item *v;
    size_t n, cap;
    /* IDX: the images, n x h x w bytes */
    uint8_t *px;
    int h, w;
} Work;

static void work_free(Work *w) {
    for (size_t i = 0; i < w->n; i++) {
        free(w->v[i].subject);
        free(w->v[i].source);
    }
    free(w->v);
    free(w->px);
}

/* Appends an item taking subject and source (freed on failure too). */
static int work_add(Work *w, char *subject, char *source, int idx) {
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 1024;
        Item *v = realloc(w->v, cap * sizeof *v);
        if (!v) {
            free(subject);
            free(source);
            return -ENOMEM;
        }
        w->v = v, w->cap = cap;
    }
    if (!subject || !source) {
        free(subject);
        free(source);
        return -ENOMEM;
    }
    w->v[w->n++] = (Item){subject, source, idx};
    return 0;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names in dir (not starting with '.') that are directories
 * (want_dir) or regular files with an image extension. *names (n) owned. */
static int list_dir(const char *dir, int want_dir, char ***names, size_t *n, char *err) {
    static const char *const ext[] = {".png", ".jpg", ".jpeg", ".pgm", ".ppm"};
    DIR *d = opendir(dir);
    size_t cap = 0;
    *names = NULL, *n = 0;
    if (!d)
        return sm_err(err, -errno, "%s: %s", dir, strerror(errno));
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        char path[8192];
        struct stat st;
        if (e->d_name[0] == '.' ||
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path ||
            stat(path, &st) != 0 || (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)))
            continue;
        const char *dot = strrchr(e->d_name, '.');
        int ok = want_dir;
        for (size_t i = 0; !ok && dot && i < SM_ARRAY_LEN(ext); i++)
            ok = strcasecmp(dot, ext[i]) == 0;
        if (!ok)
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            char **v = realloc(*names, cap * sizeof *v);
            if (!v) {
                rc = -ENOMEM;
                break;
            }
            *names = v;
        }
        if (!((*names)[*n] = strdup(e->d_name)))
            rc = -ENOMEM;
        else
            (*n)++;
    }
    closedir(d);
    if (rc < 0)
        return sm_err(err, rc, "out of memory");
    if (*n)
        qsort(*names, *n, sizeof **names, cmp_name);
    return 0;
}

static void names_free(char **v, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int collect_images(const char *root, Work *w, char *err) {
    char **subs = NULL;
    size_t ns = 0;
    int rc = list_dir(root, 1, &subs, &ns, err);
    for (size_t s = 0; rc == 0 && s < ns; s++) {
        if (!store_subject_id_valid(subs[s])) {
            rc = sm_err(err, -EINVAL,
                        "%s/%s: a folder name is its subject id: 1 to %d characters from "
                        "[A-Za-z0-9._:@-]",
                        root, subs[s], STORE_SUBJECT_MAX);
            break;
        }
        char dir[8192], **files = NULL;
        size_t nf = 0;
        snprintf(dir, sizeof dir, "%s/%s", root, subs[s]);
        rc = list_dir(dir, 0, &files, &nf, err);
        for (size_t f = 0; rc == 0 && f < nf; f++) {
            char *src = NULL;
            if (asprintf(&src, "%s/%s", dir, files[f]) < 0)
                src = NULL;
            rc = work_add(w, strdup(subs[s]), src, -1);
            if (rc == 0 && strlen(src) > STORE_SOURCE_MAX)
                rc = sm_err(err, -ENAMETOOLONG, "%s: path longer than %d bytes", src,
                            STORE_SOURCE_MAX);
        }
        names_free(files, nf);
        if (rc == -ENOMEM)
            sm_err(err, rc, "out of memory");
    }
    names_free(subs, ns);
    if (rc == 0 && w->n == 0)
        rc = sm_err(err, -ENOENT, "%s: no images in DIR/<subject>/<image> folders", root);
    return rc;
}

/* The first of name, name.gz in root that exists (into path), or -ENOENT. */
static int find_idx(const char *root, const char *name, char *path, size_t size) {
    snprintf(path, size, "%s/%s", root, name);
    if (access(path, R_OK) == 0)
        return 0;
    snprintf(path, size, "%s/%s.gz", root, name);
    return access(path, R_OK) == 0 ? 0 : -ENOENT;
}

static int collect_idx(const char *root, const char *images, const char *labels, Work *w,
                       char *err) {
    int ndim = 0, dims[3], ldim = 0, ldims[3];
    uint8_t *lab = NULL;
    int rc = idx_read(images, (size_t)1 << 31, &ndim, dims, &w->px, err);
    if (rc == 0)
        rc = idx_read(labels, (size_t)1 << 28, &ldim, ldims, &lab, err);
    if (rc == 0 && (ndim != 3 || ldim != 1 || ldims[0] != dims[0]))
        rc = sm_err(err, -EINVAL, "%s: images and labels do not match", root);
    w->h = dims[1], w->w = dims[2];
    for (int i = 0; rc == 0 && i < dims[0]; i++) {
        char *subject = NULL, *src = NULL;
        if (asprintf(&subject, "%d", lab[i]) < 0)
            subject = NULL;
        if (asprintf(&src, "%s#%d", images, i) < 0)
            src = NULL;
        if ((rc = work_add(w, subject, src, i)) < 0)
            sm_err(err, rc, "out of memory");
    }
    free(lab);
    return rc;
}

static int is_dir_in(const char *root, const char *name) {
    char path[8192];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", root, name);
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* What DIR holds, as items in subject order. */
static int collect(const char *data, Work *w, char *err) {
    char *root = realpath(data, NULL), images[8192], labels[8192];
    if (!root)
        return sm_err(err, -errno, "%s: %s", data, strerror(errno));
    int rc;
    if (find_idx(root, "train-images-idx3-ubyte", images, sizeof images) == 0) {
        if (find_idx(root, "train-labels-idx1-ubyte", labels, sizeof labels) < 0)
            rc = sm_err(err, -ENOENT, "%s: train-images without train-labels", root);
        else
            rc = collect_idx(root, images, labels, w, err);
    } else if (is_dir_in(root, "train") && is_dir_in(root, "test")) {
        /* The split layout of --train: the train split, as for IDX. */
        snprintf(images, sizeof images, "%s/train", root);
        log_info("enroll: %s has train/ and test/: enrolling its train split", root);
        rc = collect_images(images, w, err);
    } else {
        rc = collect_images(root, w, err);
    }
    free(root);
    return rc;
}

static int cmp_item(const void *a, const void *b) {
    const Item *x = a, *y = b;
    int c = strcmp(x->subject, y->subject);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* ---- Progress ---- */

typedef struct {
    double t0, last;
    size_t total, seen, enrolled, skipped, bad;
    int tty;
} Progress;

static void progress_show(Progress *p, int final) {
    double now = sm_now(), dt = now - p->t0;
    if (!final && now - p->last < (p->tty ? 0.1 : 10.0))
        return;
    p->last = now;
    double rate = dt > 0 ? (double)p->enrolled / dt : 0;
    int pct = p->total ? (int)(100 * p->seen / p->total) : 100;
    if (p->tty) {
        static const char bar[] = "##############################";
        int fill = pct * 30 / 100;
        log_progress("enroll [%.*s%*s] %3d%% %zu/%zu  %.0f samples/s  %zu skipped  %zu bad", fill,
                     bar, 30 - fill, "", pct, p->seen, p->total, rate, p->skipped, p->bad);
        if (final)
            log_progress_end();
    } else if (!final) {
        log_info("enroll: %d%% (%zu of %zu), %.0f samples/s, %zu skipped, %zu bad", pct, p->seen,
                 p->total, rate, p->skipped, p->bad);
    }
}

/* ---- Workers ---- */

#define WORKERS 4 /* batches in flight: decoding overlaps the commits, which group */

typedef struct {
    const Config *cfg;
    const Model *m;
    Store *store;
    Work *w;
    ImgLimits lim;
    pthread_mutex_t mu; /* everything below */
    size_t next;        /* first item not yet claimed */
    Progress p;
    int rc; /* the first failure */
    char err[SM_ERRMAX];
} Shared;

typedef struct {
    Shared *sh;
    float *x, *emb; /* BATCH x in_dim, BATCH x embed_dim */
    uint8_t *bytes[BATCH];
    size_t len[BATCH];
    const char *ct[BATCH];
    const char *src[BATCH];
    size_t skipped, bad;
} Run;

static const char *content_type(const uint8_t *b, size_t len) {
    ImgFormat f = img_sniff(b, len);
    return f == IMG_PNG ? "image/png" : f == IMG_JPEG ? "image/jpeg" : "image/x-portable-anymap";
}

/* An IDX image as sample j (pixels from memory; kept as a PGM). */
static int load_idx(Run *r, const Item *it, int j, float *x, char *err) {
    const Work *w = r->sh->w;
    const ModelArch *a = model_arch(r->sh->m);
    const uint8_t *px = w->px + (size_t)it->idx * (size_t)w->h * (size_t)w->w;
    ImgGray g = {w->w, w->h, 1, (uint8_t *)px};
    img_prepare_c(&g, a->in_h, a->in_w, a->in_c, x);
    if (!r->sh->cfg->keep_images)
        return 0;
    char head[32];
    int hn = snprintf(head, sizeof head, "P5 %d %d 255\n", w->w, w->h);
    size_t n = (size_t)w->w * (size_t)w->h;
    if (!(r->bytes[j] = malloc((size_t)hn + n)))
        return sm_err(err, -ENOMEM, "out of memory");
    memcpy(r->bytes[j], head, (size_t)hn);
    memcpy(r->bytes[j] + hn, px, n);
    r->len[j] = (size_t)hn + n;
    r->ct[j] = "image/x-portable-graymap";
    return 0;
}

/* Reads and prepares item it as sample j of the batch. */
static int load_item(Run *r, const Item *it, int j, char *err) {
    const ModelArch *a = model_arch(r->sh->m);
    float *x = r->x + (size_t)j * (size_t)model_in_dim(r->sh->m);
    r->bytes[j] = NULL;
    if (it->idx >= 0)
        return load_idx(r, it, j, x, err);
    uint8_t *buf = NULL;
    size_t len = 0;
    int keep = r->sh->cfg->keep_images;
    int rc = sm_read_file(it->source, IMG_FILE_MAX, &buf, &len, err);
    if (rc == 0)
        rc = img_load_mem_c(buf, len, &r->sh->lim, a->in_h, a->in_w, a->in_c, x, err);
    if (rc == 0 && keep && len > STORE_IMAGE_MAX)
        rc = sm_err(err, -EFBIG, "%zu bytes, more than the %u a kept image may have", len,
                    STORE_IMAGE_MAX);
    if (rc == 0 && keep) {
        r->bytes[j] = buf, r->len[j] = len, r->ct[j] = content_type(buf, len);
        return 0;
    }
    free(buf);
    return rc;
}

/* Embeds and enrolls the n samples of the batch; frees its kept images. */
static int flush(Run *r, const char *subject, int n, char *err) {
    StoreSampleIn in[BATCH];
    int64_t ids[BATCH];
    int E = model_embed_dim(r->sh->m);
    int rc = n > 0 && model_embed(r->sh->m, r->x, n, r->emb) < 0
                 ? sm_err(err, -ENOMEM, "out of memory")
                 : 0;
    for (int j = 0; j < n; j++)
        in[j] =
            (StoreSampleIn){r->emb + (size_t)j * (size_t)E, r->bytes[j],
                            r->bytes[j] ? r->len[j] : 0, r->bytes[j] ? r->ct[j] : NULL, r->src[j]};
    if (rc == 0 && n > 0)
        rc = store_enroll(r->sh->store, subject, NULL, in, n, ids, NULL, err);
    for (int j = 0; j < n; j++) {
        free(r->bytes[j]);
        r->bytes[j] = NULL;
    }
    return rc;
}

/* Loads items [i0, i1) (one subject) not stored yet into the batch: *n. */
static int fill_batch(Run *r, size_t i0, size_t i1, int *n, char *err) {
    *n = 0;
    for (size_t i = i0; i < i1; i++) {
        const Item *it = &r->sh->w->v[i];
        int rc = store_source_known(r->sh->store, it->source, err);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            r->skipped++;
            continue;
        }
        char why[SM_ERRMAX];
        rc = load_item(r, it, *n, why);
        if (rc == -ENOMEM)
            return sm_err(err, rc, "out of memory");
        if (rc < 0 && !r->sh->cfg->skip_bad_images)
            return sm_err(err, rc, "%s: %s (skip_bad_images skips such files)", it->source, why);
        if (rc < 0) {
            log_warn("enroll: skipping %s: %s", it->source, why);
            r->bad++;
            continue;
        }
        r->src[(*n)++] = it->source;
    }
    return 0;
}

/* Claims the next run of at most BATCH items of one subject: [*i0, *i1).
 * 0 when there is none left or the run has failed. Holds sh->mu. */
static int claim(Shared *sh, size_t *i0, size_t *i1) {
    const Work *w = sh->w;
    if (sh->rc < 0 || sh->next >= w->n)
        return 0;
    *i0 = *i1 = sh->next;
    while (*i1 < w->n && *i1 - *i0 < BATCH && strcmp(w->v[*i1].subject, w->v[*i0].subject) == 0)
        (*i1)++;
    sh->next = *i1;
    return 1;
}

static void *worker(void *arg) {
    Run *r = arg;
    Shared *sh = r->sh;
    char err[SM_ERRMAX];
    size_t i0, i1;
    pthread_mutex_lock(&sh->mu);
    while (claim(sh, &i0, &i1)) {
        pthread_mutex_unlock(&sh->mu);
        int n = 0;
        r->skipped = r->bad = 0;
        int rc = fill_batch(r, i0, i1, &n, err);
        if (rc == 0)
            rc = flush(r, sh->w->v[i0].subject, n, err);
        for (int j = 0; rc < 0 && j < n; j++) { /* a failed fill leaves its kept images */
            free(r->bytes[j]);
            r->bytes[j] = NULL;
        }
        pthread_mutex_lock(&sh->mu);
        if (rc < 0 && sh->rc == 0) {
            sh->rc = rc;
            memcpy(sh->err, err, sizeof err);
        }
        if (rc == 0)
            sh->p.enrolled += (size_t)n;
        sh->p.skipped += r->skipped, sh->p.bad += r->bad, sh->p.seen += i1 - i0;
        progress_show(&sh->p, 0);
    }
    pthread_mutex_unlock(&sh->mu);
    return NULL;
}

/* Runs WORKERS workers (fewer if threads cannot start: at least this one). */
static int run_all(Shared *sh, char *err) {
    Run r[WORKERS] = {{0}};
    pthread_t th[WORKERS];
    int started = 0, rc = 0;
    for (int t = 0; t < WORKERS && rc == 0; t++) {
        r[t].sh = sh;
        r[t].x = malloc((size_t)BATCH * (size_t)model_in_dim(sh->m) * sizeof *r[t].x);
        r[t].emb = malloc((size_t)BATCH * (size_t)model_embed_dim(sh->m) * sizeof *r[t].emb);
        if (!r[t].x || !r[t].emb)
            rc = sm_err(err, -ENOMEM, "out of memory");
    }
    for (int t = 1; rc == 0 && t < WORKERS && pthread_create(&th[t], NULL, worker, &r[t]) == 0; t++)
        started = t;
    if (rc == 0)
        worker(&r[0]);
    for (int t = 1; t <= started; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < WORKERS; t++)
        free(r[t].x), free(r[t].emb);
    if (rc == 0 && sh->rc < 0)
        rc = sm_err(err, sh->rc, "%s", sh->err);
    return rc;
}

int serve_enroll(const Config *cfg, char *err) {
    Model *m = NULL;
    Store *store = NULL;
    Work w = {0};
    if (!*cfg->data)
        return sm_err(err, -EINVAL, "--enroll needs --data DIR (images in DIR/<subject>/, or IDX)");
    int rc = collect(cfg->data, &w, err);
    if (rc == 0) {
        qsort(w.v, w.n, sizeof *w.v, cmp_item);
        rc = serve_open_parts(cfg, &m, &store, 0, err);
    }
    Shared sh = {.cfg = cfg,
                 .m = m,
                 .store = store,
                 .w = &w,
                 .lim = {cfg->max_image_width, cfg->max_image_height,
                         (uint64_t)cfg->max_image_pixels, cfg->max_image_memory, NULL},
                 .p = {.t0 = sm_now(), .total = w.n, .tty = log_progress_shown()}};
    pthread_mutex_init(&sh.mu, NULL);
    if (rc == 0) {
        log_info("enroll: %zu images from %s into %s", w.n, cfg->data, cfg->db);
        rc = run_all(&sh, err);
        progress_show(&sh.p, 1);
    }
    if (rc == 0)
        log_info("enroll: %zu enrolled, %zu already there, %zu bad, in %.1f s", sh.p.enrolled,
                 sh.p.skipped, sh.p.bad, sm_now() - sh.p.t0);
    pthread_mutex_destroy(&sh.mu);
    store_close(store);
    model_free(m);
    work_free(&w);
    return rc;
}
