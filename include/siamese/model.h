/*
 * model.h — the Siamese base network: an MLP of dense layers with ReLU after
 * every layer (the last included) and inverted dropout after every layer but
 * the last (training only). Both branches of a pair share it.
 *
 * Parameters live in one contiguous buffer laid out layer by layer as
 * weight (out,in) then bias (out) — the PyTorch nn.Linear layout — so the
 * optimiser is one loop and the file is a straight copy.
 *
 * On disk a model is a safetensors file (see safetensors.h) with tensors
 * "dense.L.weight" / "dense.L.bias" and string metadata:
 *   format=siamesed, format_version=1, architecture=mlp, layers="784,128,...",
 *   activation=relu, dropout, input_height, input_width, input_channels=1,
 *   preprocess, embedding_size, margin, threshold, training (a JSON object as
 *   text: dataset, epochs, seed, metrics...), fingerprint (SHA-256 hex of the
 *   tensor bytes).
 */
#ifndef SIAMESE_MODEL_H
#define SIAMESE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define MODEL_MAX_LAYERS 8
#define MODEL_MAX_WIDTH 4096
#define MODEL_FORMAT_VERSION 1
/* Validation ROC AUC below which a model learned nothing useful: the trainer
 * stops on it, the daemon warns and GET /model says so. */
#define MODEL_AUC_FLOOR 0.6
/* How images become model input; the image module implements exactly this. */
#define MODEL_PREPROCESS "gray-rec601,alpha-over-black,resize-area-or-bilinear,scale-1/255"

typedef struct {
    int in_h, in_w;             /* input image size; input width is in_h*in_w */
    int n_layers;               /* 1..MODEL_MAX_LAYERS */
    int dims[MODEL_MAX_LAYERS]; /* output width of each dense layer */
    float dropout;              /* [0,1): after every layer but the last */
} ModelArch;

typedef struct Model Model;

/* Validates arch (sizes in range) and returns 0 with err filled otherwise. */
int model_arch_check(const ModelArch *arch, char *err);

/* A new model with Glorot-uniform weights and zero biases drawn from seed.
 * *out is the caller's, freed with model_free(). */
int model_create(const ModelArch *arch, uint64_t seed, Model **out, char *err);
void model_free(Model *m);

/* Reads and validates a model file; rejects malformed, truncated, oversized or
 * inconsistent files with a one-line reason. *out is freed with model_free(). */
int model_load(const char *path, Model **out, char *err);
/* Writes the model atomically (temp file, fsync, rename); computes and records
 * the fingerprint. A failed save leaves any existing file at path untouched. */
int model_save(Model *m, const char *path, char *err);

const ModelArch *model_arch(const Model *m); /* borrowed, lives as long as m */
int model_in_dim(const Model *m);            /* in_h * in_w */
int model_embed_dim(const Model *m);         /* dims[n_layers-1] */
size_t model_n_params(const Model *m);
/* Borrowed: the contiguous buffer, to change (a loaded model's transposed
 * inference copy is dropped, since it would go stale). */
float *model_params(Model *m);
const float *model_params_const(const Model *m);
size_t model_layer_offset(const Model *m, int layer); /* float offset of weight L; bias follows */

float model_margin(const Model *m);
float model_threshold(const Model *m);
void model_set_margin(Model *m, float margin);
void model_set_threshold(Model *m, float threshold);
/* Training summary, a JSON object as text ("{}" if none). Borrowed. */
const char *model_training(const Model *m);
/* Copies json (must be a JSON object) as the training summary. */
int model_set_training(Model *m, const char *json, char *err);
/* SHA-256 hex of the tensor bytes as last saved or loaded; "" for a model
 * never saved. Borrowed. */
const char *model_fingerprint(const Model *m);
/* Path the model was loaded from or saved to ("" otherwise). Borrowed. */
const char *model_path(const Model *m);

/* Inference (no dropout): x (n, in_dim) -> out (n, embed_dim). Thread-safe on
 * a shared const model: scratch is allocated per call. -ENOMEM on failure. */
int model_embed(const Model *m, const float *x, int n, float *out);

/* Euclidean distance between two embeddings of width e, clamped as in training. */
float model_distance(const float *a, const float *b, int e);

#endif
