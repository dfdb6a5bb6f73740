/*
 * model_int.h — the Model struct, shared by model.c (the object and
 * inference) and model_file.c (its safetensors file).
 */
#ifndef SIAMESE_MODEL_INT_H
#define SIAMESE_MODEL_INT_H

#include "siamese/model.h"
#include "siamese/optable.h"

struct Model {
    ModelArch arch;
    NetPlan plan;
    char spec[NET_MAX_SPEC];
    float *params; /* 64-byte aligned, plan.n_params floats */
    float *fast;   /* net_fast_copy() of params; NULL unless loaded */
    float margin, threshold;
    char *training; /* JSON object text */
    OpTable *ops;   /* operating points, or NULL */
    char fingerprint[65];
    char *path;
};

/* A zeroed model of arch (checked here). */
int model_alloc(const ModelArch *arch, Model **out, char *err);
/* Keeps the kernels' copy of the parameters (for serving). */
int model_make_fast(Model *m, char *err);
int model_set_path(Model *m, const char *path);

#endif
