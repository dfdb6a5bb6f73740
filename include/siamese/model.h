/*
 * model.h — a trained base network: its architecture (network.h), its one
 * parameter buffer, margin, threshold and training summary, and its file.
 * Both branches of a pair share it.
 *
 * On disk a model is a safetensors file (safetensors.h) whose tensors are the
 * PyTorch state_dict of the equivalent nn.Sequential ("0.weight", "0.bias",
 * "3.weight", ...) and whose metadata holds the layer list; the schema is
 * docs/model-format.md. Version-1 files (the MLP, tensors "dense.L.*") still
 * load; saving always writes the current version.
 */
#ifndef SIAMESE_MODEL_H
#define SIAMESE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "siamese/network.h"
#include "siamese/optable.h"

#define MODEL_FORMAT_VERSION 2
#define MODEL_MAX_WIDTH NET_MAX_WIDTH /* widest embedding: the last layer is an fc */
/* Validation ROC AUC below which a model learned nothing useful: the trainer
 * stops on it, the daemon warns and GET /model says so. */
#define MODEL_AUC_FLOOR 0.6
/* How images become model input; the image module implements exactly this.
 * C=1 models take gray pixels, C=3 models interleaved RGB. */
#define MODEL_PREPROCESS "gray-rec601,alpha-over-black,resize-area-or-bilinear,scale-1/255"
#define MODEL_PREPROCESS_RGB "rgb-hwc,alpha-over-black,resize-area-or-bilinear,scale-1/255"

typedef struct Model Model;

/* Validates arch (net_plan()): 0, or -EINVAL with err filled. */
int model_arch_check(const ModelArch *arch, char *err);

/* The preprocessing string of an input with c channels (static). */
const char *model_preprocess_of(int c);

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

/* Reads the state_dict of a PyTorch network (a safetensors file, e.g. as the
 * shared peer writes it) as a model of arch. Tensors are looked up as the
 * equivalent nn.Sequential names them ("0.weight"), with a module prefix
 * ("net.0.weight"), or split at the flatten ("f.0.weight" before it,
 * "g.0.weight" after it, numbered from 0 again); every shape must match and
 * no other tensor may be present. Margin 1, threshold 0.5, no fingerprint
 * until saved. *out freed with model_free(). */
int model_import(const char *path, const ModelArch *arch, Model **out, char *err);

const ModelArch *model_arch(const Model *m); /* borrowed, lives as long as m */
const NetPlan *model_plan(const Model *m);   /* borrowed: shapes, parameter offsets */
const char *model_arch_spec(const Model *m); /* borrowed: the canonical layer list */
int model_in_dim(const Model *m);            /* in_h * in_w * in_c */
int model_embed_dim(const Model *m);
size_t model_n_params(const Model *m);
/* Borrowed: the contiguous buffer, to change (a loaded model's transposed
 * inference copy is dropped, since it would go stale). */
float *model_params(Model *m);
const float *model_params_const(const Model *m);

float model_margin(const Model *m);
float model_threshold(const Model *m);
void model_set_margin(Model *m, float margin);
void model_set_threshold(Model *m, float threshold);
/* Training summary, a JSON object as text ("{}" if none). Borrowed. */
const char *model_training(const Model *m);
/* Copies json (must be a JSON object) as the training summary. */
int model_set_training(Model *m, const char *json, char *err);
/* The operating-point table (optable.h): the validation ROC behind the
 * threshold, or NULL when the model has none (trained before it existed,
 * imported with a fixed threshold). Borrowed, lives as long as m or until
 * the next model_set_operating_points(). */
const OpTable *model_operating_points(const Model *m);
/* Takes ownership of t (NULL removes the table). */
void model_set_operating_points(Model *m, OpTable *t);
/* SHA-256 hex of the tensor bytes as last saved or loaded; "" for a model
 * never saved. Borrowed. */
const char *model_fingerprint(const Model *m);
/* Path the model was loaded from or saved to ("" otherwise). Borrowed. */
const char *model_path(const Model *m);

/* Inference (no dropout): x (n, in_dim; HWC rows) -> out (n, embed_dim). Thread-safe on
 * a shared const model: scratch is allocated per call. -ENOMEM on failure. */
int model_embed(const Model *m, const float *x, int n, float *out);

/* Euclidean distance between two embeddings of width e, clamped as in training. */
float model_distance(const float *a, const float *b, int e);

#endif
