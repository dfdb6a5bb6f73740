/*
 * network.h — the base network as a list of layers, the one owner of its
 * topology: the architecture spec (parse and print), the shapes and the
 * parameter layout it implies, initialisation, and the forward (training and
 * inference) and backward passes over the whole list. The trainer and the
 * model file only see one parameter buffer and these functions.
 *
 * Spec: comma-separated layers mirroring a PyTorch nn.Sequential:
 *   convNkK[sS][pP]  N output channels, K×K kernel, stride S (1), zero padding P (0)
 *   poolK            max pool K×K, stride K (floor, as nn.MaxPool2d(K))
 *   fcN              dense, N outputs
 *   relu             max(x, 0)
 *   dropP            inverted dropout with rate P in [0,1), training only
 * A flatten is implied before the first fc; after it only fc, relu and drop
 * may follow. The last layer's output is the embedding. Presets:
 *   mlp = fc128,relu,drop0.1,fc128,relu,drop0.1,fc128,relu   (the Keras recipe)
 *   cnn = conv32k5,relu,pool2,conv64k5,relu,pool2,fc256,relu,drop0.1,fc128
 *
 * Layout. An input row is an H×W×C image, channels interleaved (HWC), as
 * decoded. Activations stay channels-last (NHWC) through the convolutions;
 * the flatten reorders each row to C×H×W, PyTorch's flatten order, so the
 * parameters are exactly the state_dict of the equivalent nn.Sequential fed
 * x.permute(0, 3, 1, 2): conv weight (OC, IC, KH, KW) then bias (OC), dense
 * weight (out, in) then bias (out), layer by layer in one buffer.
 */
#ifndef SIAMESE_NETWORK_H
#define SIAMESE_NETWORK_H

#include <stddef.h>
#include <stdint.h>

#include "siamese/rng.h"

#define NET_MAX_LAYERS 32
#define NET_MAX_SPEC 512      /* bytes of a spec string, NUL included */
#define NET_MAX_WIDTH 4096    /* fc outputs, conv channels */
#define NET_MAX_KERNEL 15     /* conv and pool kernel side */
#define NET_MAX_ACT (1 << 22) /* floats of one layer's output for one image */

typedef enum { NET_CONV, NET_POOL, NET_FC, NET_RELU, NET_DROP, NET_FLATTEN } NetKind;

typedef struct {
    NetKind kind;
    int n;       /* conv: output channels; fc: outputs; pool: kernel = stride */
    int k, s, p; /* conv: kernel, stride, padding */
    float drop;  /* drop: rate */
} NetLayer;

/* An architecture: the input and the layer list (the implied flatten
 * explicit, so layer[] is exactly what runs). Plain data. */
typedef struct {
    int in_h, in_w, in_c;
    int n_layers;
    NetLayer layer[NET_MAX_LAYERS];
} ModelArch;

/* What an architecture implies; filled by net_plan(). Plain data. */
typedef struct {
    int c[NET_MAX_LAYERS + 1], h[NET_MAX_LAYERS + 1],
        w[NET_MAX_LAYERS + 1];                         /* [0] input, [l+1] out of l */
    size_t woff[NET_MAX_LAYERS], boff[NET_MAX_LAYERS]; /* conv/fc: float offsets */
    int torch_index[NET_MAX_LAYERS];                   /* index in the equivalent nn.Sequential */
    size_t n_params;
    int in_dim, embed_dim, max_act; /* floats per image: input, output, widest layer */
} NetPlan;

/* Parses spec (or a preset name) for an h×w×c input into *a and checks that
 * it chains (net_plan()). On failure one line in err naming the culprit.
 * h, w, c all 0: only the spelling and the order rules, for a check before
 * the input size is known. */
int net_parse(const char *spec, int h, int w, int c, ModelArch *a, char *err);

/* Parses an input shape "HxWxC" (H, W in 1..1024, C 1 or 3). */
int net_parse_input(const char *s, int *h, int *w, int *c, char *err);

/* The canonical spec of a (implied flatten left out) into buf. Returns the
 * length, or -ENOSPC when it does not fit. */
int net_format(const ModelArch *a, char *buf, size_t size);

/* "mlp" or "cnn" when a's layers are that preset, else "custom" (static). */
const char *net_preset_of(const ModelArch *a);

/* The spec of a preset ("mlp", "cnn"), or NULL (static). */
const char *net_preset_spec(const char *name);

/* Validates a (sizes in range, layers chain, at least one fc or conv, the
 * output non-empty) and fills *p. -EINVAL with err otherwise. */
int net_plan(const ModelArch *a, NetPlan *p, char *err);

/* The weights of a's conv and fc layers, biases left out: span[i] = {begin,
 * end} float offsets into the parameter buffer, in layer order. Returns the
 * count (at most NET_MAX_LAYERS). For weight decay. */
int net_weight_spans(const ModelArch *a, const NetPlan *p, size_t span[][2]);

/* Glorot-uniform weights (fan in/out over the receptive field for convs,
 * as Keras does), zero biases; params (p->n_params) drawn from rng in layer
 * order. */
void net_init(const NetPlan *p, const ModelArch *a, float *params, Rng *rng);

/* fast (p->n_params) = params in the kernels' layout for inference: every
 * dense weight transposed (in, out), every conv weight with C > 1 as
 * (OC,K,K,C), the rest copied. */
void net_fast_copy(const ModelArch *a, const NetPlan *p, const float *params, float *fast);

/* Inference (no dropout): x (n, in_dim) -> out (n, embed_dim). params_t
 * (optional, NULL) is net_fast_copy() of params, kept by a served model. Scratch is allocated per
 * call (bounded), so a shared const network is thread-safe. 0 or -ENOMEM. */
int net_infer(const ModelArch *a, const NetPlan *p, const float *params, const float *params_t,
              const float *x, int n, float *out);

/* The training workspace: activations of up to max_rows images. */
typedef struct NetTrain NetTrain;

/* *out freed with net_train_free(). Borrows a and p until then. */
int net_train_new(const ModelArch *a, const NetPlan *p, int max_rows, NetTrain **out, char *err);
void net_train_free(NetTrain *t);

/* Borrowed: the (max_rows, in_dim) input the caller fills before forward. */
float *net_train_input(NetTrain *t);

/* Forward over the first R rows of the input, with dropout drawn from rng;
 * returns the borrowed (R, embed_dim) embeddings, valid until the next call. */
const float *net_train_forward(NetTrain *t, const float *params, int R, Rng *rng);

/* Backward of the last forward: demb (R, embed_dim) -> grad += d/dparams.
 * The input gradient of the first layer with parameters is not computed. */
void net_train_backward(NetTrain *t, const float *params, float *grad, const float *demb, int R);

#endif
