/*
 * model_file.c — a Model as a safetensors file (docs/model-format.md), and
 * the import of a PyTorch state_dict.
 *
 * Loading is strict because model files are untrusted input: every metadata
 * field is parsed and range-checked, the layer list must chain, every
 * expected tensor must be present with exactly the expected shape, nothing
 * else may be in the file, and the shapes are checked before the parameters
 * are allocated (their size then is bounded by the file's).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_int.h"
#include "siamese/common.h"
#include "siamese/safetensors.h"

#define MODEL_MAX_FILE (1024u << 20) /* 1 GiB: far above any sane base network */

static int has_params(const NetLayer *l) {
    return l->kind == NET_CONV || l->kind == NET_FC;
}

/* The PyTorch shape of layer i's weight (bias when bias): ndim, shape. */
static int torch_shape(const ModelArch *a, const NetPlan *p, int i, int bias, int64_t shape[4]) {
    const NetLayer *l = &a->layer[i];
    shape[0] = l->n;
    if (bias)
        return 1;
    if (l->kind == NET_FC) {
        shape[1] = (int64_t)p->c[i] * p->h[i] * p->w[i];
        return 2;
    }
    shape[1] = p->c[i], shape[2] = shape[3] = l->k;
    return 4;
}

/* How tensor names are spelled: current files, version 1, or a PyTorch import. */
typedef enum { NAMES_V2, NAMES_V1, NAMES_IMPORT } NameScheme;

/* The tensor of layer i (ordinal: its rank among layers with parameters), or
 * NULL; name receives the (first) name looked for. */
static const StTensor *find_tensor(const StFile *f, const ModelArch *a, const NetPlan *p, int i,
                                   int ordinal, int bias, NameScheme names, char name[64]) {
    const char *suffix = bias ? "bias" : "weight";
    if (names == NAMES_V1) {
        snprintf(name, 64, "dense.%d.%s", ordinal, suffix);
        return st_find(f, name);
    }
    snprintf(name, 64, "%d.%s", p->torch_index[i], suffix);
    const StTensor *t = st_find(f, name);
    if (t || names == NAMES_V2)
        return t;
    /* An import also takes a module prefix (net.0.weight) and the shared
     * peer's split network: f = the layers before the flatten, g = after. */
    char alt[80];
    int flat = 0;
    while (a->layer[flat].kind != NET_FLATTEN)
        flat++;
    static const char *const prefixes[] = {"net", "model", "base", "features"};
    for (size_t k = 0; k < SM_ARRAY_LEN(prefixes); k++) {
        snprintf(alt, sizeof alt, "%s.%d.%s", prefixes[k], p->torch_index[i], suffix);
        if ((t = st_find(f, alt)))
            return t;
    }
    if (i < flat)
        snprintf(alt, sizeof alt, "f.%d.%s", p->torch_index[i], suffix);
    else
        snprintf(alt, sizeof alt, "g.%d.%s", i - flat - 1, suffix);
    return st_find(f, alt);
}

/* Every tensor of a present with its shape, and nothing else. */
static int check_tensors(const StFile *f, const ModelArch *a, const NetPlan *p, NameScheme names,
                         char *err) {
    int want = 0;
    for (int i = 0; i < a->n_layers; i++)
        want += 2 * has_params(&a->layer[i]);
    if (st_n_tensors(f) != want)
        return sm_err(err, -EINVAL, "%d tensors, the architecture has %d", st_n_tensors(f), want);
    for (int i = 0, ord = 0; i < a->n_layers; i++) {
        if (!has_params(&a->layer[i]))
            continue;
        for (int bias = 0; bias < 2; bias++) {
            char name[64];
            int64_t shape[4];
            int nd = torch_shape(a, p, i, bias, shape);
            const StTensor *t = find_tensor(f, a, p, i, ord, bias, names, name);
            if (!t)
                return sm_err(err, -EINVAL, "tensor '%s' (layer %d) is missing", name, i + 1);
            int ok = t->ndim == nd;
            for (int d = 0; ok && d < nd; d++)
                ok = t->shape[d] == shape[d];
            if (!ok)
                return sm_err(err, -EINVAL,
                              "tensor '%s' has the wrong shape for layer %d (want %lld x %lld%s)",
                              t->name, i + 1, (long long)shape[0],
                              (long long)(nd > 1 ? shape[1] : 1), nd == 4 ? " x K x K" : "");
        }
        ord++;
    }
    return 0;
}

/* Copies each tensor (check_tensors() passed), refusing non-finite values. */
static int read_tensors(const StFile *f, Model *m, NameScheme names, char *err) {
    const ModelArch *a = &m->arch;
    const NetPlan *p = &m->plan;
    for (int i = 0, ord = 0; i < a->n_layers; i++) {
        if (!has_params(&a->layer[i]))
            continue;
        for (int bias = 0; bias < 2; bias++) {
            char name[64];
            const StTensor *t = find_tensor(f, a, p, i, ord, bias, names, name);
            size_t lo = bias ? p->boff[i] : p->woff[i];
            size_t count = bias ? (size_t)a->layer[i].n : p->boff[i] - p->woff[i];
            for (size_t k = 0; k < count; k++)
                if (!isfinite(t->data[k]))
                    return sm_err(err, -EINVAL, "tensor '%s' holds a non-finite value", t->name);
            memcpy(m->params + lo, t->data, count * sizeof *m->params);
        }
        ord++;
    }
    return 0;
}

int model_save(Model *m, const char *path, char *err) {
    const ModelArch *a = &m->arch;
    const NetPlan *p = &m->plan;
    char names[2 * NET_MAX_LAYERS][32], num[8][32];
    StTensor t[2 * NET_MAX_LAYERS];
    int nt = 0;
    for (int i = 0; i < a->n_layers; i++) {
        if (!has_params(&a->layer[i]))
            continue;
        for (int bias = 0; bias < 2; bias++, nt++) {
            snprintf(names[nt], sizeof names[0], "%d.%s", p->torch_index[i],
                     bias ? "bias" : "weight");
            t[nt].name = names[nt];
            t[nt].ndim = torch_shape(a, p, i, bias, t[nt].shape);
            t[nt].data = m->params + (bias ? p->boff[i] : p->woff[i]);
        }
    }
    snprintf(num[0], sizeof num[0], "%d", MODEL_FORMAT_VERSION);
    snprintf(num[1], sizeof num[1], "%d", a->in_h);
    snprintf(num[2], sizeof num[2], "%d", a->in_w);
    snprintf(num[3], sizeof num[3], "%d", a->in_c);
    snprintf(num[4], sizeof num[4], "%d", p->embed_dim);
    snprintf(num[5], sizeof num[5], "%.9g", m->margin);
    snprintf(num[6], sizeof num[6], "%.9g", m->threshold);
    StMeta meta[] = {
        {"format", "siamesed"},
        {"format_version", num[0]},
        {"architecture", net_preset_of(a)},
        {"arch", m->spec},
        {"input_height", num[1]},
        {"input_width", num[2]},
        {"input_channels", num[3]},
        {"input_layout", "hwc"},
        {"preprocess", model_preprocess_of(a->in_c)},
        {"embedding_size", num[4]},
        {"margin", num[5]},
        {"threshold", num[6]},
        {"training", m->training},
        {"operating_points", NULL}, /* last: left out when there is no table */
    };
    char fp[65], *ops = m->ops ? optable_to_json(m->ops) : NULL;
    if (m->ops && !ops)
        return sm_err(err, -ENOMEM, "model: out of memory");
    meta[SM_ARRAY_LEN(meta) - 1].value = ops;
    int rc = st_write(path, t, nt, meta, (int)SM_ARRAY_LEN(meta) - !ops, fp, err);
    free(ops);
    if (rc < 0)
        return rc;
    memcpy(m->fingerprint, fp, sizeof fp);
    if (model_set_path(m, path) < 0)
        return sm_err(err, -ENOMEM, "model: out of memory");
    return 0;
}

/* Fetches metadata key as a string, failing with a message if absent. */
static int meta_str(const StFile *f, const char *key, const char **out, char *err) {
    *out = st_meta(f, key);
    if (!*out)
        return sm_err(err, -EINVAL, "metadata '%s' is missing", key);
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
        return sm_err(err, -EINVAL, "metadata %s='%.40s' is not an integer in %ld..%ld", key, s, lo,
                      hi);
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
        return sm_err(err, -EINVAL, "metadata %s='%.40s' is not a number in [%g,%g]", key, s, lo,
                      hi);
    *out = v;
    return 0;
}

static int meta_expect(const StFile *f, const char *key, const char *want, char *err) {
    const char *s;
    int rc = meta_str(f, key, &s, err);
    if (rc < 0)
        return rc;
    if (strcmp(s, want) != 0)
        return sm_err(err, -EINVAL, "%s is '%.40s', this build reads '%s'", key, s, want);
    return 0;
}

/* Version 1: "layers" = "784,128,128,128", ReLU after every dense layer and
 * dropout after all but the last; becomes the equivalent layer list. */
static int read_arch_v1(const StFile *f, int h, int w, ModelArch *a, char *err) {
    const char *layers;
    float dropout;
    int rc;
    if ((rc = meta_expect(f, "architecture", "mlp", err)) < 0 ||
        (rc = meta_expect(f, "activation", "relu", err)) < 0 ||
        (rc = meta_float(f, "dropout", 0.0f, 0.999f, &dropout, err)) < 0 ||
        (rc = meta_str(f, "layers", &layers, err)) < 0)
        return rc;
    char spec[NET_MAX_SPEC] = "", *end;
    size_t len = 0;
    errno = 0;
    long in = strtol(layers, &end, 10);
    if (errno || end == layers || *end != ',' || in != (long)h * w)
        return sm_err(err, -EINVAL, "layers '%.60s' do not start with the %dx%d input", layers, h,
                      w);
    for (const char *p = end + 1; *p;) {
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > NET_MAX_WIDTH || (*end && *end != ',') ||
            len + 40 > sizeof spec)
            return sm_err(err, -EINVAL, "bad layers '%.60s'", layers);
        len += (size_t)snprintf(spec + len, sizeof spec - len, "%sfc%ld,relu", len ? "," : "", v);
        p = *end ? end + 1 : end;
        if (*p && dropout > 0)
            len += (size_t)snprintf(spec + len, sizeof spec - len, ",drop%.9g", dropout);
    }
    return net_parse(spec, h, w, 1, a, err);
}

static int read_arch(const StFile *f, ModelArch *a, NameScheme *names, char *err) {
    int rc, version, esize, h, w, c;
    const char *spec, *format = st_meta(f, "format");
    if (!format || strcmp(format, "siamesed") != 0)
        return sm_err(err, -EINVAL,
                      "a safetensors file, but not a siamesed model (no format=siamesed in its "
                      "metadata; PyTorch weights are converted with --import)");
    if ((rc = meta_expect(f, "format", "siamesed", err)) < 0 ||
        (rc = meta_int(f, "format_version", 0, 1000000, &version, err)) < 0)
        return rc;
    if (version != 1 && version != MODEL_FORMAT_VERSION)
        return sm_err(err, -EINVAL, "format_version %d, this build reads 1 and %d", version,
                      MODEL_FORMAT_VERSION);
    if ((rc = meta_int(f, "input_height", 1, 1024, &h, err)) < 0 ||
        (rc = meta_int(f, "input_width", 1, 1024, &w, err)) < 0 ||
        (rc = meta_int(f, "input_channels", 1, version == 1 ? 1 : 3, &c, err)) < 0)
        return rc;
    if (c == 2)
        return sm_err(err, -EINVAL, "input_channels 2, want 1 or 3");
    *names = version == 1 ? NAMES_V1 : NAMES_V2;
    if (version == 1)
        rc = read_arch_v1(f, h, w, a, err);
    else if ((rc = meta_str(f, "arch", &spec, err)) == 0 &&
             (rc = meta_expect(f, "input_layout", "hwc", err)) == 0)
        rc = net_parse(spec, h, w, c, a, err);
    NetPlan p;
    if (rc < 0 || (rc = meta_expect(f, "preprocess", model_preprocess_of(c), err)) < 0 ||
        (rc = net_plan(a, &p, err)) < 0 ||
        (rc = meta_int(f, "embedding_size", 1, NET_MAX_ACT, &esize, err)) < 0)
        return rc;
    if (esize != p.embed_dim)
        return sm_err(err, -EINVAL, "embedding_size %d but the network's output has %d", esize,
                      p.embed_dim);
    return 0;
}

int model_load(const char *path, Model **out, char *err) {
    StFile *f = NULL;
    Model *m = NULL;
    ModelArch arch;
    NetPlan plan;
    NameScheme names = NAMES_V2;
    char sub[SM_ERRMAX];
    int rc = st_read(path, MODEL_MAX_FILE, &f, err); /* its messages name the path */
    if (rc < 0)
        goto out;
    if ((rc = read_arch(f, &arch, &names, sub)) < 0 || (rc = net_plan(&arch, &plan, sub)) < 0 ||
        (rc = check_tensors(f, &arch, &plan, names, sub)) < 0 ||
        (rc = model_alloc(&arch, &m, sub)) < 0 || (rc = read_tensors(f, m, names, sub)) < 0 ||
        (rc = meta_float(f, "margin", 1e-6f, 1e6f, &m->margin, sub)) < 0 ||
        (rc = meta_float(f, "threshold", 0.0f, 1e6f, &m->threshold, sub)) < 0 ||
        (rc = model_set_training(m, st_meta(f, "training") ? st_meta(f, "training") : "{}", sub)) <
            0 ||
        (st_meta(f, "operating_points") &&
         (rc = optable_parse(st_meta(f, "operating_points"), &m->ops, sub)) < 0)) {
        sm_err(err, rc, "%s: model file: %s", path, sub);
        goto out;
    }
    if ((rc = model_make_fast(m, err)) < 0)
        goto out;
    snprintf(m->fingerprint, sizeof m->fingerprint, "%s", st_fingerprint(f));
    if (model_set_path(m, path) < 0) {
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

int model_import(const char *path, const ModelArch *arch, Model **out, char *err) {
    StFile *f = NULL;
    Model *m = NULL;
    NetPlan plan;
    char sub[SM_ERRMAX];
    int rc = st_read(path, MODEL_MAX_FILE, &f, err);
    if (rc < 0)
        goto out;
    if ((rc = net_plan(arch, &plan, sub)) < 0 ||
        (rc = check_tensors(f, arch, &plan, NAMES_IMPORT, sub)) < 0 ||
        (rc = model_alloc(arch, &m, sub)) < 0 || (rc = read_tensors(f, m, NAMES_IMPORT, sub)) < 0) {
        sm_err(err, rc, "%s: import: %s", path, sub);
        goto out;
    }
    *out = m;
    m = NULL;
out:
    model_free(m);
    st_free(f);
    return rc;
}
