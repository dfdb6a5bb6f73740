/*
 * network.c — the layer list: its spec, its plan (shapes, parameter
 * offsets), initialisation, and forward/backward over the whole list for
 * training (network_train.c) and inference (here).
 *
 * Specs come from the command line and from model files, so the parser and
 * the planner are strict: every number is range-checked, and a list that does
 * not chain (a kernel larger than its input, a conv after the flatten, an
 * activation too large) is refused with a line naming the layer.
 */
#include "siamese/network.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "network_int.h"
#include "siamese/common.h"
#include "siamese/layers.h"

static const struct {
    const char *name, *spec;
} presets[] = {
    {"mlp", "fc128,relu,drop0.1,fc128,relu,drop0.1,fc128,relu"},
    {"cnn", "conv32k5,relu,pool2,conv64k5,relu,pool2,fc256,relu,drop0.1,fc128"},
};

const char *net_preset_spec(const char *name) {
    for (size_t i = 0; i < SM_ARRAY_LEN(presets); i++)
        if (strcmp(name, presets[i].name) == 0)
            return presets[i].spec;
    return NULL;
}

/* Reads a decimal integer in [lo, hi] at *p, advancing it. */
static int read_int(const char **p, int lo, int hi, int *out) {
    char *end;
    if (**p < '0' || **p > '9')
        return -1;
    errno = 0;
    long v = strtol(*p, &end, 10);
    if (errno || v < lo || v > hi)
        return -1;
    *p = end;
    *out = (int)v;
    return 0;
}

/* One token (between commas, NUL-terminated) into *l. */
static int parse_layer(const char *t, NetLayer *l) {
    memset(l, 0, sizeof *l);
    const char *p = t;
    if (strcmp(t, "relu") == 0) {
        l->kind = NET_RELU;
        return 0;
    }
    if (strncmp(t, "drop", 4) == 0) {
        char *end;
        l->kind = NET_DROP;
        if (t[4] < '0' || t[4] > '9')
            return -1;
        l->drop = strtof(t + 4, &end);
        return *end == 0 && l->drop >= 0.0f && l->drop < 1.0f ? 0 : -1;
    }
    if (strncmp(t, "fc", 2) == 0) {
        p += 2, l->kind = NET_FC;
        return read_int(&p, 1, NET_MAX_WIDTH, &l->n) == 0 && *p == 0 ? 0 : -1;
    }
    if (strncmp(t, "pool", 4) == 0) {
        p += 4, l->kind = NET_POOL;
        return read_int(&p, 1, NET_MAX_KERNEL, &l->n) == 0 && *p == 0 ? 0 : -1;
    }
    if (strncmp(t, "conv", 4) != 0)
        return -1;
    p += 4, l->kind = NET_CONV, l->s = 1;
    if (read_int(&p, 1, NET_MAX_WIDTH, &l->n) < 0 || *p++ != 'k' ||
        read_int(&p, 1, NET_MAX_KERNEL, &l->k) < 0)
        return -1;
    if (*p == 's' && (++p, read_int(&p, 1, NET_MAX_KERNEL, &l->s) < 0))
        return -1;
    if (*p == 'p' && (++p, read_int(&p, 0, NET_MAX_KERNEL, &l->p) < 0))
        return -1;
    return *p == 0 ? 0 : -1;
}

static int check_order(const ModelArch *a, char *err);

int net_parse(const char *spec, int h, int w, int c, ModelArch *a, char *err) {
    const char *preset = net_preset_spec(spec);
    char buf[NET_MAX_SPEC];
    if (preset)
        spec = preset;
    if (strlen(spec) >= sizeof buf)
        return sm_err(err, -EINVAL, "arch: spec longer than %d characters", NET_MAX_SPEC - 1);
    memset(a, 0, sizeof *a);
    a->in_h = h, a->in_w = w, a->in_c = c;
    strcpy(buf, spec);
    int flattened = 0;
    char *t = buf;
    for (int i = 1;; i++) {
        char *comma = strchr(t, ',');
        if (comma)
            *comma = 0;
        NetLayer l;
        if (parse_layer(t, &l) < 0)
            return sm_err(
                err, -EINVAL,
                "arch: layer %d '%.40s' is not convNkK[sS][pP], poolK, fcN, relu or dropP "
                "(or a preset: mlp, cnn)",
                i, t);
        if (a->n_layers + 1 + (!flattened && l.kind == NET_FC) > NET_MAX_LAYERS)
            return sm_err(err, -EINVAL, "arch: more than %d layers", NET_MAX_LAYERS);
        if (l.kind == NET_FC && !flattened)
            a->layer[a->n_layers++] = (NetLayer){.kind = NET_FLATTEN}, flattened = 1;
        a->layer[a->n_layers++] = l;
        if (!comma)
            break;
        t = comma + 1;
    }
    if (h == 0 && w == 0 && c == 0)
        return check_order(a, err);
    NetPlan p;
    return net_plan(a, &p, err);
}

int net_parse_input(const char *s, int *h, int *w, int *c, char *err) {
    const char *p = s;
    if (read_int(&p, 1, 1024, h) < 0 || *p++ != 'x' || read_int(&p, 1, 1024, w) < 0 ||
        *p++ != 'x' || read_int(&p, 1, 3, c) < 0 || *p || *c == 2)
        return sm_err(err, -EINVAL, "input '%.40s' is not HxWxC (H, W 1..1024, C 1 or 3)", s);
    return 0;
}

int net_format(const ModelArch *a, char *buf, size_t size) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < a->n_layers; i++) {
        const NetLayer *l = &a->layer[i];
        char t[64];
        switch (l->kind) {
        case NET_CONV:
            snprintf(t, sizeof t, "conv%dk%d", l->n, l->k);
            if (l->s != 1)
                snprintf(t + strlen(t), sizeof t - strlen(t), "s%d", l->s);
            if (l->p)
                snprintf(t + strlen(t), sizeof t - strlen(t), "p%d", l->p);
            break;
        case NET_POOL:
            snprintf(t, sizeof t, "pool%d", l->n);
            break;
        case NET_FC:
            snprintf(t, sizeof t, "fc%d", l->n);
            break;
        case NET_RELU:
            snprintf(t, sizeof t, "relu");
            break;
        case NET_DROP: /* the shortest spelling that reads back the same */
            for (int digits = 6; digits <= 9; digits++) {
                snprintf(t, sizeof t, "drop%.*g", digits, l->drop);
                if (strtof(t + 4, NULL) == l->drop)
                    break;
            }
            break;
        case NET_FLATTEN:
            continue;
        }
        int n = snprintf(buf + len, size - len, "%s%s", len ? "," : "", t);
        if (n < 0 || (size_t)n >= size - len)
            return -ENOSPC;
        len += (size_t)n;
    }
    return (int)len;
}

const char *net_preset_of(const ModelArch *a) {
    char mine[NET_MAX_SPEC];
    if (net_format(a, mine, sizeof mine) < 0)
        return "custom";
    for (size_t i = 0; i < SM_ARRAY_LEN(presets); i++)
        if (strcmp(mine, presets[i].spec) == 0)
            return presets[i].name;
    return "custom";
}

/* Shape after layer l of input (c, h, w), or -1 with why when it does not fit. */
static int layer_shape(const NetLayer *l, int *c, int *h, int *w, const char **why) {
    switch (l->kind) {
    case NET_CONV:
        if (*h + 2 * l->p < l->k || *w + 2 * l->p < l->k)
            return *why = "its kernel is larger than its (padded) input", -1;
        *h = (*h + 2 * l->p - l->k) / l->s + 1, *w = (*w + 2 * l->p - l->k) / l->s + 1, *c = l->n;
        return 0;
    case NET_POOL:
        if (*h < l->n || *w < l->n)
            return *why = "its window is larger than its input", -1;
        *h /= l->n, *w /= l->n;
        return 0;
    case NET_FC:
        *c = l->n, *h = *w = 1;
        return 0;
    case NET_FLATTEN:
        *c = *c * *h * *w, *h = *w = 1;
        return 0;
    case NET_RELU:
    case NET_DROP:
        return 0;
    }
    return *why = "unknown layer kind", -1;
}

/* Order rules: spatial layers before the one flatten, which precedes the
 * first fc; at least one fc. */
static int check_order(const ModelArch *a, char *err) {
    int flat = -1, fc = 0;
    for (int i = 0; i < a->n_layers; i++) {
        NetKind k = a->layer[i].kind;
        if (k == NET_FLATTEN && flat >= 0)
            return sm_err(err, -EINVAL, "arch: two flattens");
        if (k == NET_FLATTEN)
            flat = i;
        if ((k == NET_CONV || k == NET_POOL) && flat >= 0)
            return sm_err(err, -EINVAL, "arch: layer %d: conv or pool after an fc", i + 1);
        if (k == NET_FC && flat < 0)
            return sm_err(err, -EINVAL, "arch: layer %d: fc without a flatten before it", i + 1);
        if (k == NET_DROP && !(a->layer[i].drop >= 0.0f && a->layer[i].drop < 1.0f))
            return sm_err(err, -EINVAL, "arch: layer %d: dropout rate out of [0,1)", i + 1);
        fc += k == NET_FC;
    }
    if (!fc)
        return sm_err(err, -EINVAL, "arch: no fc layer (the embedding is the last fc's output)");
    return 0;
}

int net_plan(const ModelArch *a, NetPlan *p, char *err) {
    memset(p, 0, sizeof *p);
    if (a->in_h < 1 || a->in_w < 1 || a->in_h > 1024 || a->in_w > 1024 ||
        (a->in_c != 1 && a->in_c != 3))
        return sm_err(err, -EINVAL,
                      "arch: input %dx%dx%d, want HxWxC with H, W in 1..1024, C 1 or 3", a->in_h,
                      a->in_w, a->in_c);
    if (a->n_layers < 1 || a->n_layers > NET_MAX_LAYERS)
        return sm_err(err, -EINVAL, "arch: %d layers, want 1..%d", a->n_layers, NET_MAX_LAYERS);
    int rc = check_order(a, err), c = a->in_c, h = a->in_h, w = a->in_w, index = 0;
    if (rc < 0)
        return rc;
    p->c[0] = c, p->h[0] = h, p->w[0] = w, p->in_dim = p->max_act = c * h * w;
    for (int i = 0; i < a->n_layers; i++) {
        const NetLayer *l = &a->layer[i];
        const char *why = NULL;
        int in_c = c, in_size = c * h * w;
        if (layer_shape(l, &c, &h, &w, &why) < 0)
            return sm_err(err, -EINVAL, "arch: layer %d does not fit: %s (%dx%dx%d)", i + 1, why,
                          p->h[i], p->w[i], p->c[i]);
        if ((double)c * h * w > NET_MAX_ACT)
            return sm_err(err, -EINVAL, "arch: layer %d output too large", i + 1);
        p->c[i + 1] = c, p->h[i + 1] = h, p->w[i + 1] = w;
        p->max_act = c * h * w > p->max_act ? c * h * w : p->max_act;
        p->torch_index[i] = index;
        index += !(i == 0 && l->kind == NET_FLATTEN); /* flat input: no nn.Flatten */
        size_t fan = l->kind == NET_CONV ? (size_t)in_c * l->k * l->k : (size_t)in_size;
        if (l->kind == NET_CONV || l->kind == NET_FC) {
            p->woff[i] = p->n_params;
            p->boff[i] = p->n_params + fan * (size_t)l->n;
            p->n_params = p->boff[i] + (size_t)l->n;
            if (p->n_params > (1u << 28))
                return sm_err(err, -EINVAL, "arch: more than %u parameters", 1u << 28);
        }
    }
    p->embed_dim = c * h * w;
    return 0;
}

int net_weight_spans(const ModelArch *a, const NetPlan *p, size_t span[][2]) {
    int n = 0;
    for (int i = 0; i < a->n_layers; i++)
        if (a->layer[i].kind == NET_CONV || a->layer[i].kind == NET_FC) {
            span[n][0] = p->woff[i], span[n][1] = p->boff[i];
            n++;
        }
    return n;
}

void net_init(const NetPlan *p, const ModelArch *a, float *params, Rng *rng) {
    for (int i = 0; i < a->n_layers; i++) {
        const NetLayer *l = &a->layer[i];
        if (l->kind != NET_CONV && l->kind != NET_FC)
            continue;
        size_t fan_in = (p->boff[i] - p->woff[i]) / (size_t)l->n;
        size_t rf = l->kind == NET_CONV ? (size_t)l->k * l->k : 1;
        /* Glorot uniform: U(-r, r), r = sqrt(6 / (fan_in + fan_out)). */
        float r = sqrtf(6.0f / (float)(fan_in + (size_t)l->n * rf));
        for (size_t j = p->woff[i]; j < p->boff[i]; j++)
            params[j] = (rng_uniform(rng) * 2.0f - 1.0f) * r;
        memset(params + p->boff[i], 0, (size_t)l->n * sizeof *params);
    }
}

void net_conv_to_hwc(float *dst, const float *src, int OC, int C, int K) {
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++)
            for (int k = 0; k < K * K; k++)
                dst[((size_t)o * K * K + k) * C + c] = src[((size_t)o * C + c) * K * K + k];
}

void net_conv_add_from_hwc(float *dst, const float *src, int OC, int C, int K) {
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++)
            for (int k = 0; k < K * K; k++)
                dst[((size_t)o * C + c) * K * K + k] += src[((size_t)o * K * K + k) * C + c];
}

void net_fast_copy(const ModelArch *a, const NetPlan *p, const float *params, float *fast) {
    memcpy(fast, params, p->n_params * sizeof *fast);
    for (int i = 0; i < a->n_layers; i++) {
        const NetLayer *l = &a->layer[i];
        const float *w = params + p->woff[i];
        float *t = fast + p->woff[i];
        if (l->kind == NET_CONV && p->c[i] > 1)
            net_conv_to_hwc(t, w, l->n, p->c[i], l->k);
        if (l->kind == NET_FC) {
            int in = p->c[i] * p->h[i] * p->w[i];
            for (int o = 0; o < l->n; o++)
                for (int c = 0; c < in; c++)
                    t[(size_t)c * l->n + o] = w[(size_t)o * in + c];
        }
    }
}

/* Scratch floats per row for inference: two activations and the patches. */
static size_t infer_row_floats(const ModelArch *a, const NetPlan *p, size_t *col) {
    *col = 0;
    for (int i = 0; i < a->n_layers; i++)
        if (a->layer[i].kind == NET_CONV) {
            size_t n = (size_t)p->h[i + 1] * p->w[i + 1] * a->layer[i].k * a->layer[i].k * p->c[i];
            *col = n > *col ? n : *col;
        }
    return 2 * (size_t)p->max_act + *col;
}

/* One layer of inference on R rows: returns where its output is (in, when
 * the layer works in place or is the identity). fast: the parameters in the
 * kernels' layout (net_fast_copy(); transposed: its dense weights are
 * usable, else only its convs are). */
static const float *infer_layer(const ModelArch *a, const NetPlan *p, int i, const float *params,
                                const float *fast, int transposed, const float *in, const float *x,
                                int R, float *next, float *col) {
    const NetLayer *l = &a->layer[i];
    const int C = p->c[i], H = p->h[i], W = p->w[i];
    const size_t n = (size_t)R * p->c[i + 1] * p->h[i + 1] * p->w[i + 1];
    const float *wt = params + p->woff[i], *b = params + p->boff[i];
    switch (l->kind) {
    case NET_CONV:
        if (C > 1)
            wt = fast + p->woff[i];
        conv2d_forward(next, col, in, wt, b, R, H, W, C, l->n, l->k, l->s, l->p);
        return next;
    case NET_POOL: /* a ReLU right before is applied here (they commute), in one pass */
        (i > 0 && a->layer[i - 1].kind == NET_RELU ? maxpool_relu_forward
                                                   : maxpool_forward)(next, in, R, H, W, C, l->n);
        return next;
    case NET_FC:
        if (R <= 4 && transposed)
            dense_forward_t(next, in, fast + p->woff[i], b, R, C * H * W, l->n);
        else
            dense_forward(next, in, wt, b, R, C * H * W, l->n);
        return next;
    case NET_RELU:
        if (i + 1 < a->n_layers && a->layer[i + 1].kind == NET_POOL)
            return in; /* the pool applies it */
        relu_forward(in == x ? next : (float *)in, in, n);
        return in == x ? next : in;
    case NET_FLATTEN:
        if (C == 1 || H * W == 1)
            return in;
        flatten_forward(next, in, R, H, W, C);
        return next;
    case NET_DROP:
        return in;
    }
    return in;
}

/* Whether inference needs a copy of the parameters in the kernels' layout. */
static int needs_fast_copy(const ModelArch *a, const NetPlan *p) {
    for (int i = 0; i < a->n_layers; i++)
        if (a->layer[i].kind == NET_CONV && p->c[i] > 1)
            return 1;
    return 0;
}

int net_infer(const ModelArch *a, const NetPlan *p, const float *params, const float *params_t,
              const float *x, int n, float *out) {
    size_t colmax, per_row = infer_row_floats(a, p, &colmax);
    size_t rows = (8u << 20) / sizeof(float) / per_row; /* scratch ~8 MB at most */
    rows = rows < 1 ? 1 : rows > 256 ? 256 : rows;
    rows = rows > (size_t)n ? (size_t)(n > 0 ? n : 1) : rows;
    float *buf = malloc(rows * per_row * sizeof *buf), *fast = NULL;
    int copy = !params_t && needs_fast_copy(a, p);
    if (copy)
        fast = malloc(p->n_params * sizeof *fast);
    if (!buf || (copy && !fast)) {
        free(buf), free(fast);
        return -ENOMEM;
    }
    if (copy)
        net_fast_copy(a, p, params, fast);
    const float *fp = params_t ? params_t : fast ? fast : params;
    float *act[2] = {buf, buf + rows * p->max_act}, *col = buf + 2 * rows * p->max_act;
    for (int s = 0; s < n; s += (int)rows) {
        int R = n - s < (int)rows ? n - s : (int)rows;
        const float *xs = x + (size_t)s * p->in_dim, *in = xs;
        for (int i = 0; i < a->n_layers; i++) {
            float *next = in == act[0] ? act[1] : act[0];
            in = infer_layer(a, p, i, params, fp, params_t != NULL, in, xs, R, next, col);
        }
        memcpy(out + (size_t)s * p->embed_dim, in, (size_t)R * p->embed_dim * sizeof *out);
    }
    free(buf);
    free(fast);
    return 0;
}
