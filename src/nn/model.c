/*
 * model.c — the base network: parameters in one buffer, inference, and the
 * mapping between a Model and its safetensors file.
 *
 * Loading is strict because model files are untrusted input: every metadata
 * field is parsed and range-checked, every expected tensor must be present
 * with exactly the expected shape, and nothing else may be in the file.
 */
#include "siamese/model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siamese/common.h"
#include "siamese/layers.h"
#include "siamese/rng.h"
#include "siamese/safetensors.h"

#define MODEL_MAX_FILE (1024u << 20) /* 1 GiB: far above any sane MLP */
#define EMBED_CHUNK 256              /* rows per inference pass: bounded scratch */
#define SMALL_BATCH 4                /* up to this many rows, the transposed path */

struct Model {
    ModelArch arch;
    size_t n_params;
    size_t offset[MODEL_MAX_LAYERS]; /* float offset of each layer's weight */
    float *params;                   /* 64-byte aligned, n_params floats */
    float *wt;                       /* weights transposed, same offsets; NULL unless loaded */
    float margin, threshold;
    char *training; /* JSON object text */
    char fingerprint[65];
    char *path;
};

static int layer_in(const ModelArch *a, int l) {
    return l == 0 ? a->in_h * a->in_w : a->dims[l - 1];
}

int model_arch_check(const ModelArch *a, char *err) {
    if (a->in_h < 1 || a->in_w < 1 || a->in_h > 1024 || a->in_w > 1024 ||
        a->in_h * a->in_w > MODEL_MAX_WIDTH * 16)
        return sm_err(err, -EINVAL, "model: input %dx%d out of range", a->in_h, a->in_w);
    if (a->n_layers < 1 || a->n_layers > MODEL_MAX_LAYERS)
        return sm_err(err, -EINVAL, "model: %d layers, want 1..%d", a->n_layers, MODEL_MAX_LAYERS);
    for (int l = 0; l < a->n_layers; l++)
        if (a->dims[l] < 1 || a->dims[l] > MODEL_MAX_WIDTH)
            return sm_err(err, -EINVAL, "model: layer %d width %d, want 1..%d", l, a->dims[l],
                          MODEL_MAX_WIDTH);
    if (!(a->dropout >= 0.0f && a->dropout < 1.0f))
        return sm_err(err, -EINVAL, "model: dropout %g, want [0,1)", a->dropout);
    return 0;
}

/* Allocates a zeroed model of arch (already checked). */
static int model_alloc(const ModelArch *arch, Model **out, char *err) {
    Model *m = calloc(1, sizeof *m);
    if (!m)
        return sm_err(err, -ENOMEM, "model: out of memory");
    m->arch = *arch;
    for (int l = 0; l < arch->n_layers; l++) {
        m->offset[l] = m->n_params;
        m->n_params += (size_t)arch->dims[l] * layer_in(arch, l) + arch->dims[l];
    }
    size_t bytes = (m->n_params * sizeof(float) + 63) & ~(size_t)63;
    m->params = aligned_alloc(64, bytes);
    m->training = strdup("{}");
    m->path = strdup("");
    if (!m->params || !m->training || !m->path) {
        model_free(m);
        return sm_err(err, -ENOMEM, "model: out of memory");
    }
    memset(m->params, 0, bytes);
    m->margin = 1.0f;
    m->threshold = 0.5f;
    *out = m;
    return 0;
}

int model_create(const ModelArch *arch, uint64_t seed, Model **out, char *err) {
    int rc = model_arch_check(arch, err);
    if (rc < 0)
        return rc;
    Model *m;
    if ((rc = model_alloc(arch, &m, err)) < 0)
        return rc;
    Rng rng;
    rng_seed(&rng, seed);
    for (int l = 0; l < arch->n_layers; l++) {
        /* Glorot uniform: U(-r, r), r = sqrt(6 / (fan_in + fan_out)); biases stay 0. */
        int in = layer_in(arch, l), outw = arch->dims[l];
        float r = sqrtf(6.0f / (float)(in + outw));
        float *w = m->params + m->offset[l];
        for (size_t i = 0; i < (size_t)in * outw; i++)
            w[i] = (rng_uniform(&rng) * 2.0f - 1.0f) * r;
    }
    *out = m;
    return 0;
}

void model_free(Model *m) {
    if (!m)
        return;
    free(m->params);
    free(m->wt);
    free(m->training);
    free(m->path);
    free(m);
}

const ModelArch *model_arch(const Model *m) {
    return &m->arch;
}
int model_in_dim(const Model *m) {
    return m->arch.in_h * m->arch.in_w;
}
int model_embed_dim(const Model *m) {
    return m->arch.dims[m->arch.n_layers - 1];
}
size_t model_n_params(const Model *m) {
    return m->n_params;
}
float *model_params(Model *m) {
    /* Whoever may change the parameters makes the transposed copy stale. */
    free(m->wt);
    m->wt = NULL;
    return m->params;
}
const float *model_params_const(const Model *m) {
    return m->params;
}
size_t model_layer_offset(const Model *m, int layer) {
    return m->offset[layer];
}
float model_margin(const Model *m) {
    return m->margin;
}
float model_threshold(const Model *m) {
    return m->threshold;
}
void model_set_margin(Model *m, float margin) {
    m->margin = margin;
}
void model_set_threshold(Model *m, float threshold) {
    m->threshold = threshold;
}
const char *model_training(const Model *m) {
    return m->training;
}
const char *model_fingerprint(const Model *m) {
    return m->fingerprint;
}
const char *model_path(const Model *m) {
    return m->path;
}

int model_set_training(Model *m, const char *json, char *err) {
    cJSON *obj = cJSON_Parse(json);
    int ok = cJSON_IsObject(obj);
    cJSON_Delete(obj);
    if (!ok)
        return sm_err(err, -EINVAL, "model: training summary is not a JSON object");
    char *copy = strdup(json);
    if (!copy)
        return sm_err(err, -ENOMEM, "model: out of memory");
    free(m->training);
    m->training = copy;
    return 0;
}

static int set_path(Model *m, const char *path) {
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    free(m->path);
    m->path = copy;
    return 0;
}

float model_distance(const float *a, const float *b, int e) {
    float s = 0.0f;
    for (int i = 0; i < e; i++) {
        float d = a[i] - b[i];
        s += d * d;
    }
    return sqrtf(s > SM_DIST_EPS ? s : SM_DIST_EPS);
}

int model_embed(const Model *m, const float *x, int n, float *out) {
    const ModelArch *a = &m->arch;
    int maxw = 0;
    for (int l = 0; l < a->n_layers; l++)
        maxw = a->dims[l] > maxw ? a->dims[l] : maxw;
    int rows = n < EMBED_CHUNK ? n : EMBED_CHUNK;
    float *buf = malloc(2 * (size_t)rows * maxw * sizeof *buf);
    if (!buf && n > 0)
        return -ENOMEM;
    int E = model_embed_dim(m), D = model_in_dim(m);
    for (int s = 0; s < n; s += EMBED_CHUNK) {
        int r = n - s < EMBED_CHUNK ? n - s : EMBED_CHUNK;
        const float *in = x + (size_t)s * D;
        float *ping = buf, *pong = buf + (size_t)rows * maxw;
        for (int l = 0; l < a->n_layers; l++) {
            const float *w = m->params + m->offset[l];
            const float *b = w + (size_t)a->dims[l] * layer_in(a, l);
            float *dst = l == a->n_layers - 1 ? out + (size_t)s * E : ping;
            if (m->wt && r <= SMALL_BATCH)
                dense_forward_t(dst, in, m->wt + m->offset[l], b, r, layer_in(a, l), a->dims[l]);
            else
                dense_forward(dst, in, w, b, r, layer_in(a, l), a->dims[l]);
            relu_forward(dst, dst, (size_t)r * a->dims[l]);
            in = dst;
            float *t = ping;
            ping = pong;
            pong = t;
        }
    }
    free(buf);
    return 0;
}

/* ---- the model file ---------------------------------------------------- */

int model_save(Model *m, const char *path, char *err) {
    const ModelArch *a = &m->arch;
    char names[2 * MODEL_MAX_LAYERS][32], layers[16 * (MODEL_MAX_LAYERS + 1)];
    char num[8][32];
    StTensor t[2 * MODEL_MAX_LAYERS];
    int len = snprintf(layers, sizeof layers, "%d", model_in_dim(m));
    for (int l = 0; l < a->n_layers; l++) {
        len += snprintf(layers + len, sizeof layers - (size_t)len, ",%d", a->dims[l]);
        const float *w = m->params + m->offset[l];
        snprintf(names[2 * l], sizeof names[0], "dense.%d.weight", l);
        snprintf(names[2 * l + 1], sizeof names[0], "dense.%d.bias", l);
        t[2 * l] = (StTensor){names[2 * l], 2, {a->dims[l], layer_in(a, l)}, w};
        t[2 * l + 1] =
            (StTensor){names[2 * l + 1], 1, {a->dims[l]}, w + (size_t)a->dims[l] * layer_in(a, l)};
    }
    snprintf(num[0], sizeof num[0], "%d", MODEL_FORMAT_VERSION);
    snprintf(num[1], sizeof num[1], "%.9g", a->dropout);
    snprintf(num[2], sizeof num[2], "%d", a->in_h);
    snprintf(num[3], sizeof num[3], "%d", a->in_w);
    snprintf(num[4], sizeof num[4], "%d", model_embed_dim(m));
    snprintf(num[5], sizeof num[5], "%.9g", m->margin);
    snprintf(num[6], sizeof num[6], "%.9g", m->threshold);
    const StMeta meta[] = {
        {"format", "siamesed"},     {"format_version", num[0]},
        {"architecture", "mlp"},    {"layers", layers},
        {"activation", "relu"},     {"dropout", num[1]},
        {"input_height", num[2]},   {"input_width", num[3]},
        {"input_channels", "1"},    {"preprocess", MODEL_PREPROCESS},
        {"embedding_size", num[4]}, {"margin", num[5]},
        {"threshold", num[6]},      {"training", m->training},
    };
    char fp[65];
    int rc = st_write(path, t, 2 * a->n_layers, meta, (int)SM_ARRAY_LEN(meta), fp, err);
    if (rc < 0)
        return rc;
    memcpy(m->fingerprint, fp, sizeof fp);
    if (set_path(m, path) < 0)
        return sm_err(err, -ENOMEM, "model: out of memory");
    return 0;
}

/* Fetches metadata key as a string, failing with a message if absent. */
static int meta_str(const StFile *f, const char *key, const char **out, char *err) {
    *out = st_meta(f, key);
    if (!*out)
        return sm_err(err, -EINVAL, "model file: metadata '%s' is missing", key);
    return 0;
}

static int meta_int(const StFile *f, const char *key, long lo, long hi, int *out, char *err) {
    const char *s;
    int rc = meta_str(f, key, &s, err);
    if (rc < 0)
        return rc;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return sm_err(err, -EINVAL, "model file: metadata %s='%.40s' is not an integer in %ld..%ld",
                      key, s, lo, hi);
    *out = (int)v;
    return 0;
}

static int meta_float(const StFile *f, const char *key, float lo, float hi, float *out, char *err) {
    const char *s;
    int rc = meta_str(f, key, &s, err);
    if (rc < 0)
        return rc;
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return sm_err(err, -EINVAL, "model file: metadata %s='%.40s' is not a number in [%g,%g]",
                      key, s, lo, hi);
    *out = v;
    return 0;
}

static int meta_expect(const StFile *f, const char *key, const char *want, char *err) {
    const char *s;
    int rc = meta_str(f, key, &s, err);
    if (rc < 0)
        return rc;
    if (strcmp(s, want) != 0)
        return sm_err(err, -EINVAL, "model file: %s is '%.40s', this build reads '%s'", key, s,
                      want);
    return 0;
}

/* Parses "784,128,128,128" into arch (input width checked against h*w). */
static int parse_layers(const char *s, ModelArch *a, char *err) {
    int vals[MODEL_MAX_LAYERS + 1], n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 1 || v > MODEL_MAX_WIDTH * 16 || n == MODEL_MAX_LAYERS + 1 ||
            (*end && *end != ','))
            return sm_err(err, -EINVAL, "model file: bad layers '%.60s'", s);
        vals[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (n < 2 || vals[0] != a->in_h * a->in_w)
        return sm_err(err, -EINVAL, "model file: layers '%.60s' do not start with the %dx%d input",
                      s, a->in_h, a->in_w);
    a->n_layers = n - 1;
    for (int l = 0; l < a->n_layers; l++)
        a->dims[l] = vals[l + 1];
    return 0;
}

static int read_arch(const StFile *f, ModelArch *a, char *err) {
    int rc, channels, version, esize;
    const char *layers;
    memset(a, 0, sizeof *a);
    if ((rc = meta_expect(f, "format", "siamesed", err)) < 0 ||
        (rc = meta_int(f, "format_version", 0, 1000000, &version, err)) < 0)
        return rc;
    if (version != MODEL_FORMAT_VERSION)
        return sm_err(err, -EINVAL, "model file: format_version %d, this build reads %d", version,
                      MODEL_FORMAT_VERSION);
    if ((rc = meta_expect(f, "architecture", "mlp", err)) < 0 ||
        (rc = meta_expect(f, "activation", "relu", err)) < 0 ||
        (rc = meta_expect(f, "preprocess", MODEL_PREPROCESS, err)) < 0 ||
        (rc = meta_int(f, "input_height", 1, 1024, &a->in_h, err)) < 0 ||
        (rc = meta_int(f, "input_width", 1, 1024, &a->in_w, err)) < 0 ||
        (rc = meta_int(f, "input_channels", 1, 1, &channels, err)) < 0 ||
        (rc = meta_float(f, "dropout", 0.0f, 1.0f, &a->dropout, err)) < 0 ||
        (rc = meta_str(f, "layers", &layers, err)) < 0 || (rc = parse_layers(layers, a, err)) < 0 ||
        (rc = model_arch_check(a, err)) < 0 ||
        (rc = meta_int(f, "embedding_size", 1, MODEL_MAX_WIDTH, &esize, err)) < 0)
        return rc;
    if (esize != a->dims[a->n_layers - 1])
        return sm_err(err, -EINVAL, "model file: embedding_size %d but the last layer has %d",
                      esize, a->dims[a->n_layers - 1]);
    return 0;
}

/* The file must hold exactly the tensors of arch, with their shapes. This runs
 * before the model is allocated: the architecture comes from a few bytes of
 * metadata, and its parameters may only be allocated once the file has been
 * seen to hold them (so their size is bounded by the file's). */
static int check_tensors(const StFile *f, const ModelArch *a, char *err) {
    if (st_n_tensors(f) != 2 * a->n_layers)
        return sm_err(err, -EINVAL, "model file: %d tensors, the architecture has %d",
                      st_n_tensors(f), 2 * a->n_layers);
    for (int l = 0; l < a->n_layers; l++)
        for (int k = 0; k < 2; k++) {
            char name[32];
            snprintf(name, sizeof name, k ? "dense.%d.bias" : "dense.%d.weight", l);
            const StTensor *t = st_find(f, name);
            int64_t rows = a->dims[l], cols = layer_in(a, l);
            if (!t)
                return sm_err(err, -EINVAL, "model file: tensor '%s' is missing", name);
            if (t->ndim != 2 - k || t->shape[0] != rows || (!k && t->shape[1] != cols))
                return sm_err(err, -EINVAL, "model file: tensor '%s' has the wrong shape", name);
        }
    return 0;
}

/* Copies each tensor (check_tensors() passed), refusing non-finite values. */
static int read_tensors(const StFile *f, Model *m, char *err) {
    const ModelArch *a = &m->arch;
    for (int l = 0; l < a->n_layers; l++)
        for (int k = 0; k < 2; k++) {
            char name[32];
            snprintf(name, sizeof name, k ? "dense.%d.bias" : "dense.%d.weight", l);
            const StTensor *t = st_find(f, name);
            size_t rows = (size_t)a->dims[l], cols = (size_t)layer_in(a, l);
            size_t count = k ? rows : rows * cols;
            float *dst = m->params + m->offset[l] + (k ? rows * cols : 0);
            for (size_t i = 0; i < count; i++)
                if (!isfinite(t->data[i]))
                    return sm_err(err, -EINVAL, "model file: tensor '%s' holds a non-finite value",
                                  name);
            memcpy(dst, t->data, count * sizeof *dst);
        }
    return 0;
}

/* A loaded model serves inference of one or two images at a time, where the
 * transposed layout is several times faster (dense_forward_t()); keep a copy.
 * model_params() drops it, so it can never go stale. */
static int make_transposed(Model *m, char *err) {
    m->wt = malloc(m->n_params * sizeof *m->wt);
    if (!m->wt)
        return sm_err(err, -ENOMEM, "model: out of memory");
    for (int l = 0; l < m->arch.n_layers; l++) {
        int in = layer_in(&m->arch, l), outw = m->arch.dims[l];
        const float *w = m->params + m->offset[l];
        float *t = m->wt + m->offset[l];
        for (int o = 0; o < outw; o++)
            for (int c = 0; c < in; c++)
                t[(size_t)c * outw + o] = w[(size_t)o * in + c];
    }
    return 0;
}

int model_load(const char *path, Model **out, char *err) {
    StFile *f = NULL;
    Model *m = NULL;
    ModelArch arch;
    char sub[SM_ERRMAX];
    int rc = st_read(path, MODEL_MAX_FILE, &f, err); /* its messages name the path */
    if (rc < 0)
        goto out;
    if ((rc = read_arch(f, &arch, sub)) < 0 || (rc = check_tensors(f, &arch, sub)) < 0 ||
        (rc = model_alloc(&arch, &m, sub)) < 0 || (rc = read_tensors(f, m, sub)) < 0 ||
        (rc = meta_float(f, "margin", 1e-6f, 1e6f, &m->margin, sub)) < 0 ||
        (rc = meta_float(f, "threshold", 0.0f, 1e6f, &m->threshold, sub)) < 0 ||
        (rc = model_set_training(m, st_meta(f, "training") ? st_meta(f, "training") : "{}", sub)) <
            0) {
        sm_err(err, rc, "%s: %s", path, sub);
        goto out;
    }
    if ((rc = make_transposed(m, err)) < 0)
        goto out;
    snprintf(m->fingerprint, sizeof m->fingerprint, "%s", st_fingerprint(f));
    if (set_path(m, path) < 0) {
        rc = sm_err(err, -ENOMEM, "model: out of memory");
        goto out;
    }
    *out = m;
    m = NULL;
out:
    model_free(m);
    st_free(f);
    return rc;
}
