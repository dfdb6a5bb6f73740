/*
 * layers.c — dense, ReLU, dropout, distance and contrastive loss, forward and
 * backward, each beside its naive reference where an optimised version exists.
 *
 * Matrix products go to OpenBLAS (blas.h). The element-wise loops matter as
 * much at these sizes (a 128-wide MLP spends as long in them as in sgemm if
 * they run scalar), so they are written as plain loops the compiler can
 * vectorise and are compiled for several ISAs (SM_CLONES), picked at load time.
 */
#include "siamese/layers.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "siamese/blas.h"
#include "siamese/simd.h"

/* Up to SMALL_ROWS rows (the daemon embeds one or two images at a time) the
 * product is a few dot products per weight row, and OpenBLAS's small-matrix
 * path spends more time in set-up than in arithmetic: dot each input row
 * with each weight row directly, in 16 lanes so that it vectorises. */
#define SMALL_ROWS 4

SM_CLONES static void dense_forward_row(float *restrict out, const float *restrict x,
                                        const float *restrict weight, const float *restrict bias,
                                        int C, int OC) {
    for (int o = 0; o < OC; o++) {
        const float *w = weight + (size_t)o * C;
        float acc[16] = {0}, s = bias[o];
        int c = 0;
        for (; c + 16 <= C; c += 16)
            for (int j = 0; j < 16; j++)
                acc[j] += x[c + j] * w[c + j];
        for (; c < C; c++)
            s += x[c] * w[c];
        for (int j = 0; j < 16; j++)
            s += acc[j];
        out[o] = s;
    }
}

void dense_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                   int C, int OC) {
    if (N <= SMALL_ROWS) {
        for (int n = 0; n < N; n++)
            dense_forward_row(out + (size_t)n * OC, inp + (size_t)n * C, weight, bias, C, OC);
        return;
    }
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof *out);
    blas_sgemm(0, 1, N, OC, C, 1.0f, inp, C, weight, C, 1.0f, out, OC);
}

typedef float v16 __attribute__((vector_size(64)));

/* Inputs are taken DENSE_CHUNK at a time: the indices where either row is
 * non-zero are listed first, so that the accumulation loop has no branch
 * (Fashion-MNIST-like images are half background, and a data-dependent
 * branch per input mispredicted more than the arithmetic cost). */
#define DENSE_CHUNK 512

/* C17 mode keeps a * b + c as two roundings; this loop is inference's only
 * use of it, so let it fuse: one FMA a step instead of a multiply and an add
 * on the chain (twice the speed with AVX-512; ~1 ulp from before, and closer
 * to the exact sum). Its clones all have FMA but the baseline one, so hosts
 * agree bit for bit unless they predate FMA (2013). Training's sums are
 * OpenBLAS's and unaffected. */
#if defined(__GNUC__) && !defined(__clang__)
#define SM_FP_CONTRACT __attribute__((optimize("fp-contract=fast")))
#else
#define SM_FP_CONTRACT
#endif

/* 64 outputs of two rows (x1 NULL: one) over the n inputs in idx, starting
 * from init0/init1 (the bias, or the sums of the previous chunk), kept in
 * vector registers so that each weight row is read once for both. Each sum
 * adds its terms in input order, as a plain loop would: skipping the zero
 * terms changes no bit. */
SM_CLONES_FMA SM_FP_CONTRACT static void
dense_t_block64(float *o0, float *o1, const float *init0, const float *init1,
                const float *restrict x0, const float *restrict x1, const int *restrict idx, int n,
                const float *restrict wt, int OC) {
    v16 a0[4], a1[4], w;
    memcpy(a0, init0, sizeof a0);
    memcpy(a1, init1, sizeof a1);
    for (int i = 0; i < n; i++) {
        const int c = idx[i];
        const float v0 = x0[c], v1 = x1 ? x1[c] : 0.0f;
        const float *row = wt + (size_t)c * OC;
        for (int k = 0; k < 4; k++) {
            memcpy(&w, row + 16 * k, sizeof w);
            a0[k] += v0 * w;
            a1[k] += v1 * w;
        }
    }
    memcpy(o0, a0, sizeof a0);
    if (x1)
        memcpy(o1, a1, sizeof a1);
}

/* The indices in [c0, c1) where x0 or x1 (NULL: none) is not zero, branch-free. */
static int nonzero_inputs(const float *x0, const float *x1, int c0, int c1, int *idx) {
    int n = 0;
    for (int c = c0; c < c1; c++) {
        idx[n] = c;
        n += x0[c] != 0.0f || (x1 && x1[c] != 0.0f);
    }
    return n;
}

/* Outputs past the last whole block of 64, one at a time. */
static void dense_t_tail(float *o, const float *x, const float *wt, const float *bias, int j, int C,
                         int OC) {
    for (; j < OC; j++) {
        float s = bias[j];
        for (int c = 0; c < C; c++)
            s += x[c] * wt[(size_t)c * OC + j];
        o[j] = s;
    }
}

void dense_forward_t(float *restrict out, const float *restrict inp, const float *restrict weight_t,
                     const float *restrict bias, int N, int C, int OC) {
    int idx[DENSE_CHUNK];
    for (int r = 0; r < N; r += 2) {
        float *o0 = out + (size_t)r * OC, *o1 = r + 1 < N ? o0 + OC : NULL;
        const float *x0 = inp + (size_t)r * C, *x1 = o1 ? x0 + C : NULL;
        int blocks = OC / 64 * 64;
        for (int c0 = 0; c0 < C; c0 += DENSE_CHUNK) {
            int c1 = C - c0 > DENSE_CHUNK ? c0 + DENSE_CHUNK : C;
            int n = nonzero_inputs(x0, x1, c0, c1, idx);
            for (int j = 0; j < blocks; j += 64) {
                const float *i0 = c0 ? o0 + j : bias + j, *i1 = c0 && o1 ? o1 + j : i0;
                dense_t_block64(o0 + j, o1 ? o1 + j : NULL, i0, i1, x0, x1, idx, n, weight_t + j,
                                OC);
            }
        }
        dense_t_tail(o0, x0, weight_t, bias, blocks, C, OC);
        if (o1)
            dense_t_tail(o1, x1, weight_t, bias, blocks, C, OC);
    }
}

void dense_forward_ref(float *out, const float *inp, const float *weight, const float *bias, int N,
                       int C, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double acc = bias[o];
            for (int c = 0; c < C; c++)
                acc += (double)inp[(size_t)n * C + c] * weight[(size_t)o * C + c];
            out[(size_t)n * OC + o] = (float)acc;
        }
}

SM_CLONES static void add_rows(float *acc, const float *rows, int N, int W) {
    for (int n = 0; n < N; n++) {
        const float *r = rows + (size_t)n * W;
        for (int i = 0; i < W; i++)
            acc[i] += r[i];
    }
}

void dense_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                    const float *weight, int N, int C, int OC) {
    if (dinp)
        blas_sgemm(0, 0, N, C, OC, 1.0f, dout, OC, weight, C, 0.0f, dinp, C);
    blas_sgemm(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    add_rows(dbias, dout, N, OC);
}

void dense_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int N, int C, int OC) {
    if (dinp)
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++) {
                double acc = 0;
                for (int o = 0; o < OC; o++)
                    acc += (double)dout[(size_t)n * OC + o] * weight[(size_t)o * C + c];
                dinp[(size_t)n * C + c] = (float)acc;
            }
    for (int o = 0; o < OC; o++) {
        for (int c = 0; c < C; c++) {
            double acc = 0;
            for (int n = 0; n < N; n++)
                acc += (double)dout[(size_t)n * OC + o] * inp[(size_t)n * C + c];
            dweight[(size_t)o * C + c] += (float)acc;
        }
        double acc = 0;
        for (int n = 0; n < N; n++)
            acc += dout[(size_t)n * OC + o];
        dbias[o] += (float)acc;
    }
}

SM_CLONES void relu_forward(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++)
        out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

SM_CLONES void relu_backward(float *dinp, const float *dout, const float *out, size_t n) {
    for (size_t i = 0; i < n; i++)
        dinp[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

/* mask (n): keep (1/(1-p)) where a 16-bit hash of (key, i) is >= cut, else 0.
 * A counter-based hash (murmur3's finaliser, a bijection on 32 bits) rather
 * than a sequential generator, so that the loop vectorises. */
SM_CLONES static void dropout_mask(float *mask, size_t n, uint32_t key, uint32_t cut, float keep) {
    for (size_t i = 0; i < n; i++) {
        uint32_t h = (uint32_t)i * 0x9e3779b1u + key;
        h ^= h >> 16;
        h *= 0x85ebca6bu;
        h ^= h >> 13;
        h *= 0xc2b2ae35u;
        h ^= h >> 16;
        mask[i] = (h >> 16) >= cut ? keep : 0.0f;
    }
}

void dropout_forward(float *out, float *mask, const float *inp, size_t n, float p, Rng *rng) {
    /* One draw per call keys the hash; p is quantised to 1/65536. */
    dropout_mask(mask, n, (uint32_t)(rng_next(rng) >> 32), (uint32_t)(p * 65536.0f),
                 1.0f / (1.0f - p));
    dropout_backward(out, inp, mask, n);
}

SM_CLONES void dropout_backward(float *dinp, const float *dout, const float *mask, size_t n) {
    for (size_t i = 0; i < n; i++)
        dinp[i] = dout[i] * mask[i];
}

void distance_forward(float *dist, const float *emb, int B, int E) {
    const float *a = emb, *b = emb + (size_t)B * E;
    for (int i = 0; i < B; i++) {
        float s = 0.0f;
        for (int e = 0; e < E; e++) {
            float d = a[(size_t)i * E + e] - b[(size_t)i * E + e];
            s += d * d;
        }
        dist[i] = sqrtf(s > SM_DIST_EPS ? s : SM_DIST_EPS);
    }
}

float contrastive_forward(const float *dist, const float *y, int B, float margin) {
    double total = 0;
    for (int i = 0; i < B; i++) {
        float hinge = margin - dist[i] > 0.0f ? margin - dist[i] : 0.0f;
        total += y[i] * dist[i] * dist[i] + (1.0f - y[i]) * hinge * hinge;
    }
    return (float)(total / B);
}

void contrastive_backward(float *demb, const float *emb, const float *dist, const float *y, int B,
                          int E, float margin, int n_mean) {
    assert(n_mean >= B && n_mean > 0);
    const float *a = emb, *b = emb + (size_t)B * E;
    float *da = demb, *db = demb + (size_t)B * E;
    for (int i = 0; i < B; i++) {
        float d = dist[i], hinge = margin - d > 0.0f ? margin - d : 0.0f;
        /* dL/dD, then dD/da = (a-b)/D; zero where the eps clamp holds D constant. */
        float g = (2.0f * y[i] * d - 2.0f * (1.0f - y[i]) * hinge) / (float)n_mean;
        float scale = d > sqrtf(SM_DIST_EPS) ? g / d : 0.0f;
        for (int e = 0; e < E; e++) {
            size_t k = (size_t)i * E + e;
            float v = scale * (a[k] - b[k]);
            da[k] = v;
            db[k] = -v;
        }
    }
}
