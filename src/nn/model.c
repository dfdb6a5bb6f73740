/*
 * model.c — the Model object: architecture, parameters in one buffer, the
 * settings that go with them, and inference through the network module.
 * Its file is model_file.c.
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

#include "model_int.h"
#include "siamese/network.h"

int model_arch_check(const ModelArch *a, char *err) {
    NetPlan p;
    return net_plan(a, &p, err);
}

const char *model_preprocess_of(int c) {
    return c == 3 ? MODEL_PREPROCESS_RGB : MODEL_PREPROCESS;
}

int model_alloc(const ModelArch *arch, Model **out, char *err) {
    Model *m = calloc(1, sizeof *m);
    if (!m)
        return sm_err(err, -ENOMEM, "model: out of memory");
    int rc = net_plan(arch, &m->plan, err);
    if (rc < 0) {
        free(m);
        return rc;
    }
    m->arch = *arch;
    if (net_format(arch, m->spec, sizeof m->spec) < 0) {
        free(m);
        return sm_err(err, -EINVAL, "model: layer list longer than %d characters", NET_MAX_SPEC);
    }
    size_t bytes = (m->plan.n_params * sizeof(float) + 63) & ~(size_t)63;
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
    Model *m;
    int rc = model_alloc(arch, &m, err);
    if (rc < 0)
        return rc;
    Rng rng;
    rng_seed(&rng, seed);
    net_init(&m->plan, &m->arch, m->params, &rng);
    *out = m;
    return 0;
}

void model_free(Model *m) {
    if (!m)
        return;
    free(m->params);
    free(m->fast);
    free(m->training);
    optable_free(m->ops);
    free(m->path);
    free(m);
}

const ModelArch *model_arch(const Model *m) {
    return &m->arch;
}
const NetPlan *model_plan(const Model *m) {
    return &m->plan;
}
const char *model_arch_spec(const Model *m) {
    return m->spec;
}
int model_in_dim(const Model *m) {
    return m->plan.in_dim;
}
int model_embed_dim(const Model *m) {
    return m->plan.embed_dim;
}
size_t model_n_params(const Model *m) {
    return m->plan.n_params;
}
float *model_params(Model *m) {
    /* Whoever may change the parameters makes the kernels' copy stale. */
    free(m->fast);
    m->fast = NULL;
    return m->params;
}
const float *model_params_const(const Model *m) {
    return m->params;
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

const OpTable *model_operating_points(const Model *m) {
    return m->ops;
}

void model_set_operating_points(Model *m, OpTable *t) {
    optable_free(m->ops);
    m->ops = t;
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

int model_set_path(Model *m, const char *path) {
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
    return net_infer(&m->arch, &m->plan, m->params, m->fast, x, n, out);
}

/* A loaded model serves inference of one or two images at a time, where the
 * kernels' layout (transposed dense weights: dense_forward_t()) is several
 * times faster; keep a copy. model_params() drops it, so it never goes stale. */
int model_make_fast(Model *m, char *err) {
    m->fast = malloc(m->plan.n_params * sizeof *m->fast);
    if (!m->fast)
        return sm_err(err, -ENOMEM, "model: out of memory");
    net_fast_copy(&m->arch, &m->plan, m->params, m->fast);
    return 0;
}
