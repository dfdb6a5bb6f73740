/*
 * optim.c — RMSprop and Adam over one contiguous parameter buffer.
 *
 * The update loop touches every parameter once per step; scalar, it costs more
 * than all the matrix products of a step of the reference network, so it is a
 * plain loop the compiler vectorises (sqrt and divide included, thanks to
 * -fno-math-errno), cloned per ISA. Weight decay and the weights' moving
 * average are such loops too. The *_ref versions are the textbook
 * formulas in double precision, kept as the tests' yardstick.
 */
#include "siamese/optim.h"
#include "siamese/simd.h"

#include <math.h>

SM_CLONES void rmsprop_update(float *restrict p, const float *restrict g, float *restrict v,
                              size_t n, float lr, float rho, float eps) {
    const float one_minus_rho = 1.0f - rho;
    for (size_t i = 0; i < n; i++) {
        float vi = rho * v[i] + one_minus_rho * g[i] * g[i];
        v[i] = vi;
        p[i] -= lr * g[i] / (sqrtf(vi) + eps);
    }
}

void rmsprop_update_ref(float *p, const float *g, float *v, size_t n, float lr, float rho,
                        float eps) {
    for (size_t i = 0; i < n; i++) {
        v[i] = (float)(rho * (double)v[i] + (1.0 - rho) * (double)g[i] * g[i]);
        p[i] = (float)(p[i] - lr * (double)g[i] / (sqrt((double)v[i]) + eps));
    }
}

SM_CLONES void adam_update(float *restrict p, const float *restrict g, float *restrict m,
                           float *restrict v, size_t n, float lr, float b1, float b2, float eps,
                           int t) {
    const float c1 = 1.0f / (1.0f - powf(b1, (float)t));
    const float c2 = 1.0f / (1.0f - powf(b2, (float)t));
    for (size_t i = 0; i < n; i++) {
        float mi = b1 * m[i] + (1.0f - b1) * g[i];
        float vi = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        m[i] = mi;
        v[i] = vi;
        p[i] -= lr * (mi * c1) / (sqrtf(vi * c2) + eps);
    }
}

void adam_update_ref(float *p, const float *g, float *m, float *v, size_t n, float lr, float b1,
                     float b2, float eps, int t) {
    for (size_t i = 0; i < n; i++) {
        m[i] = (float)(b1 * (double)m[i] + (1.0 - b1) * g[i]);
        v[i] = (float)(b2 * (double)v[i] + (1.0 - b2) * (double)g[i] * g[i]);
        double mh = m[i] / (1.0 - pow(b1, t)), vh = v[i] / (1.0 - pow(b2, t));
        p[i] = (float)(p[i] - lr * mh / (sqrt(vh) + eps));
    }
}

SM_CLONES void decay_update(float *restrict p, size_t n, float lr_wd) {
    const float keep = 1.0f - lr_wd;
    for (size_t i = 0; i < n; i++)
        p[i] *= keep;
}

void decay_update_ref(float *p, size_t n, float lr_wd) {
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(p[i] - (double)lr_wd * p[i]);
}

SM_CLONES void ema_update(float *restrict a, const float *restrict p, size_t n, float d) {
    const float one_minus_d = 1.0f - d;
    for (size_t i = 0; i < n; i++)
        a[i] = d * a[i] + one_minus_d * p[i];
}

void ema_update_ref(float *a, const float *p, size_t n, float d) {
    for (size_t i = 0; i < n; i++)
        a[i] = (float)((double)d * a[i] + (1.0 - d) * (double)p[i]);
}

float ema_decay_at(float decay, long t) {
    float warm = (float)(1.0 + (double)t) / (float)(10.0 + (double)t);
    return warm < decay ? warm : decay;
}

float lr_cosine(float lr, long t, long total) {
    if (total < 1)
        return lr;
    if (t >= total)
        return 0.0f;
    return (float)(lr * 0.5 * (1.0 + cos(M_PI * (double)t / (double)total)));
}
