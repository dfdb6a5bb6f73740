/*
 * network_train.c — forward and backward over the layer list for training.
 *
 * The workspace holds, for up to max_rows images, the input, every layer's
 * output (ReLU works in place, a flatten of one channel is the identity, so
 * they share their input's buffer), dropout masks, conv
 * patches (kept from forward for the weight gradient, reused for the patch
 * gradient) and two gradient buffers used in turn. Conv weights with more than
 * one input channel are permuted to the kernels' (OC,K,K,C) each step and
 * their gradients permuted back, so the parameter buffer stays PyTorch's.
 * All of it is one allocation.
 */
#include <stdlib.h>
#include <string.h>

#include "network_int.h"
#include "siamese/common.h"
#include "siamese/layers.h"
#include "siamese/network.h"

struct NetTrain {
    const ModelArch *a;
    const NetPlan *p;
    int max_rows, first_param; /* the first layer with parameters */
    float *x;
    float *out[NET_MAX_LAYERS];  /* each layer's output (may alias its input) */
    float *mask[NET_MAX_LAYERS]; /* drop */
    float *col[NET_MAX_LAYERS];  /* conv */
    float *wperm, *gperm;        /* conv weights/gradients (OC,K,K,C), C > 1 */
    size_t poff[NET_MAX_LAYERS]; /* offset of layer l in wperm/gperm */
    size_t nperm;
    float *g[2];
    float *mem;
};

static size_t act_of(const NetPlan *p, int i) { /* floats per image after layer i */
    return (size_t)p->c[i + 1] * p->h[i + 1] * p->w[i + 1];
}

/* Layer i is a pool right after a ReLU (not the first layer, so in place on
 * the layer before): the pool applies it (maxpool_relu_*), the ReLU does
 * nothing, and the big pre-pool activation is read once instead of 3 times. */
static int pool_takes_relu(const ModelArch *a, int i) {
    return i > 1 && i < a->n_layers && a->layer[i].kind == NET_POOL &&
           a->layer[i - 1].kind == NET_RELU;
}

static int aliases(const NetTrain *t, int i) {
    const NetLayer *l = &t->a->layer[i];
    const NetPlan *p = t->p;
    return (l->kind == NET_RELU && i > 0) ||
           (l->kind == NET_FLATTEN && (p->c[i] == 1 || p->h[i] * p->w[i] == 1));
}

/* Floats each layer needs (for R rows), laid out by carve(); mem NULL counts. */
static size_t carve(NetTrain *t, float *mem) {
    const NetPlan *p = t->p;
    size_t R = (size_t)t->max_rows, at = 0;
#define TAKE(ptr, n)                                                                               \
    do {                                                                                           \
        if (mem)                                                                                   \
            ptr = mem + at;                                                                        \
        at += ((n) + 15) & ~(size_t)15;                                                            \
    } while (0)
    TAKE(t->x, R * p->in_dim);
    TAKE(t->g[0], R * p->max_act);
    TAKE(t->g[1], R * p->max_act);
    const float *prev = t->x;
    t->nperm = 0;
    for (int i = 0; i < t->a->n_layers; i++) {
        const NetLayer *l = &t->a->layer[i];
        size_t n = R * act_of(p, i);
        if (aliases(t, i)) {
            if (mem)
                t->out[i] = (float *)prev;
        } else
            TAKE(t->out[i], n);
        if (l->kind == NET_DROP)
            TAKE(t->mask[i], n);
        if (l->kind == NET_CONV)
            TAKE(t->col[i], R * p->h[i + 1] * p->w[i + 1] * l->k * l->k * p->c[i]);
        if (l->kind == NET_CONV && p->c[i] > 1)
            t->poff[i] = t->nperm, t->nperm += p->boff[i] - p->woff[i];
        prev = t->out[i];
    }
    TAKE(t->wperm, t->nperm);
    TAKE(t->gperm, t->nperm);
#undef TAKE
    return at;
}

int net_train_new(const ModelArch *a, const NetPlan *p, int max_rows, NetTrain **out, char *err) {
    NetTrain *t = calloc(1, sizeof *t);
    if (!t)
        return sm_err(err, -ENOMEM, "train: out of memory");
    t->a = a, t->p = p, t->max_rows = max_rows;
    for (t->first_param = 0; t->first_param < a->n_layers; t->first_param++)
        if (a->layer[t->first_param].kind == NET_CONV || a->layer[t->first_param].kind == NET_FC)
            break;
    size_t n = carve(t, NULL);
    t->mem = aligned_alloc(64, (n * sizeof(float) + 63) & ~(size_t)63);
    if (!t->mem) {
        free(t);
        return sm_err(err, -ENOMEM, "train: out of memory for %zu activations", n);
    }
    carve(t, t->mem);
    *out = t;
    return 0;
}

void net_train_free(NetTrain *t) {
    if (!t)
        return;
    free(t->mem);
    free(t);
}

float *net_train_input(NetTrain *t) {
    return t->x;
}

/* The conv weights of layer i in the kernels' layout. */
static const float *conv_weight(const NetTrain *t, const float *params, int i) {
    return t->p->c[i] > 1 ? t->wperm + t->poff[i] : params + t->p->woff[i];
}

const float *net_train_forward(NetTrain *t, const float *params, int R, Rng *rng) {
    const ModelArch *a = t->a;
    const NetPlan *p = t->p;
    const float *in = t->x;
    for (int i = 0; i < a->n_layers; i++) {
        const NetLayer *l = &a->layer[i];
        const int C = p->c[i], H = p->h[i], W = p->w[i];
        const float *w = params + p->woff[i], *b = params + p->boff[i];
        size_t n = (size_t)R * act_of(p, i);
        float *o = t->out[i];
        switch (l->kind) {
        case NET_CONV:
            if (C > 1)
                net_conv_to_hwc(t->wperm + t->poff[i], w, l->n, C, l->k);
            conv2d_forward(o, t->col[i], in, conv_weight(t, params, i), b, R, H, W, C, l->n, l->k,
                           l->s, l->p);
            break;
        case NET_POOL:
            (pool_takes_relu(a, i) ? maxpool_relu_forward : maxpool_forward)(o, in, R, H, W, C,
                                                                             l->n);
            break;
        case NET_FC:
            dense_forward(o, in, w, b, R, C * H * W, l->n);
            break;
        case NET_RELU:
            if (!pool_takes_relu(a, i + 1))
                relu_forward(o, in, n);
            break;
        case NET_DROP:
            dropout_forward(o, t->mask[i], in, n, l->drop, rng);
            break;
        case NET_FLATTEN:
            if (o != in)
                flatten_forward(o, in, R, H, W, C);
            break;
        }
        in = o;
    }
    return in;
}

/* Backward through layer i: the gradient of its output is in *g; afterwards
 * *g holds the gradient of its input (when need_in). */
static void backward_layer(NetTrain *t, int i, const float *params, float *grad, int R, float **g,
                           float **other, int need_in) {
    const NetLayer *l = &t->a->layer[i];
    const NetPlan *p = t->p;
    const int C = p->c[i], H = p->h[i], W = p->w[i];
    const float *in = i ? t->out[i - 1] : t->x;
    size_t n = (size_t)R * act_of(p, i);
    float *dw = grad + p->woff[i], *db = grad + p->boff[i], *dinp = need_in ? *other : NULL;
    switch (l->kind) {
    case NET_RELU:
        if (!pool_takes_relu(t->a, i + 1))
            relu_backward(*g, *g, t->out[i], n);
        return;
    case NET_DROP:
        dropout_backward(*g, *g, t->mask[i], n);
        return;
    case NET_FLATTEN:
        if (t->out[i] == in)
            return;
        flatten_backward(*other, *g, R, H, W, C);
        break;
    case NET_POOL:
        (pool_takes_relu(t->a, i) ? maxpool_relu_backward
                                  : maxpool_backward)(*other, *g, in, t->out[i], R, H, W, C, l->n);
        break;
    case NET_FC:
        dense_backward(dinp, dw, db, *g, in, params + p->woff[i], R, C * H * W, l->n);
        break;
    case NET_CONV:
        if (C > 1) {
            float *gp = t->gperm + t->poff[i];
            memset(gp, 0, (p->boff[i] - p->woff[i]) * sizeof *gp);
            conv2d_backward(dinp, gp, db, t->col[i], *g, in, t->wperm + t->poff[i], R, H, W, C,
                            l->n, l->k, l->s, l->p);
            net_conv_add_from_hwc(dw, gp, l->n, C, l->k);
        } else
            conv2d_backward(dinp, dw, db, t->col[i], *g, in, params + p->woff[i], R, H, W, C, l->n,
                            l->k, l->s, l->p);
        break;
    }
    float *swap = *g;
    *g = *other;
    *other = swap;
}

void net_train_backward(NetTrain *t, const float *params, float *grad, const float *demb, int R) {
    float *g = t->g[0], *other = t->g[1];
    memcpy(g, demb, (size_t)R * t->p->embed_dim * sizeof *g);
    for (int i = t->a->n_layers - 1; i >= t->first_param; i--)
        backward_layer(t, i, params, grad, R, &g, &other, i > t->first_param);
}
