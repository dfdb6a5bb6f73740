/*
 * test_layers_conv.c — convolution, max pooling and flatten: the batched
 * kernels against their plain-loop references over shapes with stride,
 * padding, odd sizes, 1×1 kernels and several channels, and the references'
 * backward against central finite differences of their forward.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siamese/layers.h"
#include "siamese/rng.h"

#include "check_util.h"
#include "test_layers.h"

static Rng crng;

typedef struct {
    int N, H, W, C, OC, K, S, P;
} ConvShape;

static const ConvShape shapes[] = {
    {2, 28, 28, 1, 32, 5, 1, 0},  /* the cnn preset's first layer */
    {3, 12, 12, 32, 64, 5, 1, 0}, /* its second */
    {2, 7, 9, 3, 4, 3, 2, 1},     /* odd sizes, stride and padding */
    {1, 5, 5, 2, 3, 1, 1, 0},     /* 1x1 */
    {2, 6, 5, 3, 2, 3, 3, 2},     /* padding wider than the stride leaves */
    {1, 4, 4, 1, 1, 4, 1, 0},     /* kernel = image: one output */
    {2, 3, 3, 2, 5, 2, 1, 1},
};

static int osz(int in, int K, int S, int P) {
    return (in + 2 * P - K) / S + 1;
}

static float *randf(size_t n, float lo, float hi) {
    float *x = malloc(n * sizeof *x);
    check_fill(&crng, x, n, lo, hi);
    return x;
}

static const struct {
    ConvBackend b;
    const char *name;
    double tol;
} backends[] = {
    {CONV_IM2COL, "im2col", 1e-4},
    {CONV_ONEDNN, "onednn", 1e-4},
    {CONV_ONEDNN_BF16, "onednn-bf16", 0.25},
};

/* conv2d_forward/backward with backend k against the references r (forward,
 * dinp, dweight and dbias accumulated into dw0/db0, then the same without
 * dinp) on shape c. */
static void check_backend(size_t k, ConvShape c, const float *x, const float *w, const float *b,
                          const float *g, const float *dw0, const float *db0, float *const r[6]) {
    int OH = osz(c.H, c.K, c.S, c.P), OW = osz(c.W, c.K, c.S, c.P);
    size_t ni = (size_t)c.N * c.H * c.W * c.C, nw = (size_t)c.OC * c.K * c.K * c.C;
    size_t no = (size_t)c.N * OH * OW * c.OC, ncol = (size_t)c.N * OH * OW * c.K * c.K * c.C;
    float *o = malloc(no * 4), *col = malloc(ncol * 4), *di = malloc(ni * 4);
    float *dw = malloc(nw * 4), *db = malloc(c.OC * 4);
    const double tol = backends[k].tol;
    char what[6][96];
    static const char *part[6] = {"forward", "dinp",        "dweight",
                                  "dbias",   "dw w/o dinp", "db w/o dinp"};
    for (int i = 0; i < 6; i++)
        snprintf(what[i], sizeof what[i], "%s conv %s %dx%dx%d k%d s%d p%d", backends[k].name,
                 part[i], c.H, c.W, c.C, c.K, c.S, c.P);
    memcpy(dw, dw0, nw * 4), memcpy(db, db0, c.OC * 4);
    conv2d_forward(o, col, x, w, b, c.N, c.H, c.W, c.C, c.OC, c.K, c.S, c.P);
    check_close(o, r[0], no, tol, what[0]);
    conv2d_backward(di, dw, db, col, g, x, w, c.N, c.H, c.W, c.C, c.OC, c.K, c.S, c.P);
    check_close(di, r[1], ni, tol, what[1]);
    check_close(dw, r[2], nw, tol, what[2]);
    check_close(db, r[3], c.OC, tol, what[3]);
    /* Without the input gradient (the first layer) the parameter ones are the same. */
    memcpy(dw, dw0, nw * 4), memcpy(db, db0, c.OC * 4);
    conv2d_backward(NULL, dw, db, col, g, x, w, c.N, c.H, c.W, c.C, c.OC, c.K, c.S, c.P);
    check_close(dw, r[4], nw, tol, what[4]);
    check_close(db, r[5], c.OC, tol, what[5]);
    free(o), free(col), free(di), free(dw), free(db);
}

/* Every backend built in against the references: im2col + sgemm always,
 * oneDNN in f32 and bf16 when built with it. bf16 rounds sources and weights
 * to 8 bits of mantissa (2^-9 relative each), so a sum of n products of unit
 * size is off by ~sqrt(n) 2^-8: 0.13 for the 1152 products of the first
 * layer's weight gradient here; a wrong layout is off by whole units. The cnn
 * preset's two layers must really go through oneDNN (its call count). */
START_TEST(conv_matches_reference) {
    int have[3];
    for (size_t k = 0; k < 3; k++) {
        have[k] = conv2d_set_backend(backends[k].b) == 0;
#ifdef SM_HAVE_DNNL
        ck_assert(have[k] || backends[k].b == CONV_ONEDNN_BF16);
#else
        ck_assert_int_eq(have[k], backends[k].b == CONV_IM2COL);
#endif
    }
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        ConvShape c = shapes[s];
        int OH = osz(c.H, c.K, c.S, c.P), OW = osz(c.W, c.K, c.S, c.P);
        size_t ni = (size_t)c.N * c.H * c.W * c.C, nw = (size_t)c.OC * c.K * c.K * c.C;
        size_t no = (size_t)c.N * OH * OW * c.OC;
        float *x = randf(ni, -1, 1), *w = randf(nw, -0.2f, 0.2f), *b = randf(c.OC, -1, 1);
        float *g = randf(no, -1, 1), *dw0 = randf(nw, -1, 1), *db0 = randf(c.OC, -1, 1);
        float *r[6] = {malloc(no * 4),   malloc(ni * 4), malloc(nw * 4),
                       malloc(c.OC * 4), malloc(nw * 4), malloc(c.OC * 4)};
        conv2d_forward_ref(r[0], x, w, b, c.N, c.H, c.W, c.C, c.OC, c.K, c.S, c.P);
        memcpy(r[2], dw0, nw * 4), memcpy(r[3], db0, c.OC * 4);
        conv2d_backward_ref(r[1], r[2], r[3], g, x, w, c.N, c.H, c.W, c.C, c.OC, c.K, c.S, c.P);
        memcpy(r[4], dw0, nw * 4), memcpy(r[5], db0, c.OC * 4);
        conv2d_backward_ref(NULL, r[4], r[5], g, x, w, c.N, c.H, c.W, c.C, c.OC, c.K, c.S, c.P);
        for (size_t k = 0; k < 3; k++) {
            if (!have[k])
                continue;
            ck_assert_int_eq(conv2d_set_backend(backends[k].b), 0);
            size_t before = conv2d_onednn_calls();
            check_backend(k, c, x, w, b, g, dw0, db0, r);
            size_t calls = conv2d_onednn_calls() - before;
            if (backends[k].b == CONV_IM2COL)
                ck_assert_uint_eq(calls, 0);
            else if (s < 2) /* forward + 2 backward */
                ck_assert_uint_eq(calls, 3);
        }
        free(x), free(w), free(b), free(g), free(dw0), free(db0);
        for (int i = 0; i < 6; i++)
            free(r[i]);
    }
    ck_assert_int_eq(conv2d_set_backend(CONV_AUTO), 0);
}
END_TEST

/* AUTO, the default: a training batch goes to oneDNN when built with it,
 * inference-sized calls (the daemon's) stay on im2col. */
START_TEST(conv_auto_sends_training_batches_to_onednn) {
    const int big = CONV_AUTO_MIN_N, small = 2;
    float *x = randf((size_t)big * 28 * 28, -1, 1), *w = randf(32 * 25, -0.2f, 0.2f);
    float *b = randf(32, -1, 1), *o = malloc((size_t)big * 24 * 24 * 32 * 4);
    float *col = malloc((size_t)big * 24 * 24 * 25 * 4),
          *r = malloc((size_t)big * 24 * 24 * 32 * 4);
    ck_assert_int_eq(conv2d_set_backend(CONV_AUTO), 0);
    size_t before = conv2d_onednn_calls();
    conv2d_forward(o, col, x, w, b, small, 28, 28, 1, 32, 5, 1, 0);
    ck_assert_uint_eq(conv2d_onednn_calls(), before);
    conv2d_forward(o, col, x, w, b, big, 28, 28, 1, 32, 5, 1, 0);
#ifdef SM_HAVE_DNNL
    ck_assert_uint_eq(conv2d_onednn_calls(), before + 1);
#else
    ck_assert_uint_eq(conv2d_onednn_calls(), before);
#endif
    conv2d_forward_ref(r, x, w, b, big, 28, 28, 1, 32, 5, 1, 0);
    check_close(o, r, (size_t)big * 24 * 24 * 32, 1e-4, "auto conv forward");
    free(x), free(w), free(b), free(o), free(col), free(r);
}
END_TEST

/* loss = sum(conv_ref(x) * r) */
static double conv_loss(const ConvShape *c, const float *x, const float *w, const float *b,
                        const float *r) {
    int OH = osz(c->H, c->K, c->S, c->P), OW = osz(c->W, c->K, c->S, c->P);
    size_t no = (size_t)c->N * OH * OW * c->OC;
    float *o = malloc(no * 4);
    conv2d_forward_ref(o, x, w, b, c->N, c->H, c->W, c->C, c->OC, c->K, c->S, c->P);
    double s = 0;
    for (size_t i = 0; i < no; i++)
        s += (double)o[i] * r[i];
    free(o);
    return s;
}

static void fd_conv(const ConvShape *c, float *v, size_t n, const float *grad, const float *x,
                    const float *w, const float *b, const float *r, const char *what) {
    const float h = 1e-2f;
    for (size_t i = 0; i < n; i++) {
        float keep = v[i];
        v[i] = keep + h;
        double up = conv_loss(c, x, w, b, r);
        v[i] = keep - h;
        double down = conv_loss(c, x, w, b, r);
        v[i] = keep;
        double fd = (up - down) / (2 * h);
        ck_assert_msg(fabs(fd - grad[i]) < 2e-3 * fmax(1.0, fabs(fd)), "%s[%zu]: fd %.6g grad %.6g",
                      what, i, fd, grad[i]);
    }
}

START_TEST(conv_gradients) {
    for (size_t s = 2; s < sizeof shapes / sizeof shapes[0]; s++) { /* the small ones */
        ConvShape c = shapes[s];
        int OH = osz(c.H, c.K, c.S, c.P), OW = osz(c.W, c.K, c.S, c.P);
        size_t ni = (size_t)c.N * c.H * c.W * c.C, nw = (size_t)c.OC * c.K * c.K * c.C;
        size_t no = (size_t)c.N * OH * OW * c.OC;
        float *x = randf(ni, -1, 1), *w = randf(nw, -1, 1), *b = randf(c.OC, -1, 1);
        float *r = randf(no, -1, 1), *dx = malloc(ni * 4), *dw = calloc(nw, 4),
              *db = calloc(c.OC, 4);
        conv2d_backward_ref(dx, dw, db, r, x, w, c.N, c.H, c.W, c.C, c.OC, c.K, c.S, c.P);
        fd_conv(&c, x, ni, dx, x, w, b, r, "dinp");
        fd_conv(&c, w, nw, dw, x, w, b, r, "dweight");
        fd_conv(&c, b, c.OC, db, x, w, b, r, "dbias");
        free(x), free(w), free(b), free(r), free(dx), free(dw), free(db);
    }
}
END_TEST

START_TEST(maxpool_matches_reference_and_gradients) {
    static const int ps[][5] = {
        {2, 24, 24, 32, 2}, {1, 7, 5, 3, 2}, {2, 9, 9, 2, 3}, {1, 3, 3, 1, 1}, {1, 5, 4, 4, 4}};
    for (size_t s = 0; s < sizeof ps / sizeof ps[0]; s++) {
        int N = ps[s][0], H = ps[s][1], W = ps[s][2], C = ps[s][3], K = ps[s][4];
        size_t ni = (size_t)N * H * W * C, no = (size_t)N * (H / K) * (W / K) * C;
        float *x = randf(ni, -1, 1), *o1 = malloc(no * 4), *o2 = malloc(no * 4);
        float *g = randf(no, -1, 1), *d1 = malloc(ni * 4), *d2 = randf(ni, 5, 6);
        maxpool_forward(o2, x, N, H, W, C, K);
        maxpool_forward_ref(o1, x, N, H, W, C, K);
        check_close(o2, o1, no, 0, "pool forward");
        maxpool_backward(d2, g, x, o2, N, H, W, C, K);
        maxpool_backward_ref(d1, g, x, N, H, W, C, K);
        check_close(d2, d1, ni, 0, "pool backward");
        /* Finite differences on distinct inputs (a permutation of an even
         * grid, spaced wider than two steps): a step moves only the maximum. */
        for (size_t i = 0; i < ni; i++)
            x[i] = (float)((i * 7919) % ni) / (float)ni * 2.0f - 1.0f;
        maxpool_backward_ref(d1, g, x, N, H, W, C, K);
        const float h = 0.25f / (float)ni;
        for (size_t i = 0; i < ni; i += 7) {
            float keep = x[i];
            double up = 0, down = 0;
            x[i] = keep + h;
            maxpool_forward_ref(o1, x, N, H, W, C, K);
            for (size_t j = 0; j < no; j++)
                up += (double)o1[j] * g[j];
            x[i] = keep - h;
            maxpool_forward_ref(o1, x, N, H, W, C, K);
            for (size_t j = 0; j < no; j++)
                down += (double)o1[j] * g[j];
            x[i] = keep;
            ck_assert_msg(fabs((up - down) / (2 * h) - d1[i]) < 1e-2, "pool fd at %zu", i);
        }
        free(x), free(o1), free(o2), free(g), free(d1), free(d2);
    }
}
END_TEST

START_TEST(maxpool_ties_take_the_first) {
    float x[8] = {0, 0, 0, 0, 5, 5, 5, 5}, o[2], g[2] = {1, 2}, d[8];
    /* A 2x4 image, two windows: x[0,1,4,5] and x[2,3,6,7]; the first maximum
     * scanning rows is x[4], then x[6] (as PyTorch's CPU kernel picks). */
    maxpool_forward(o, x, 1, 2, 4, 1, 2);
    ck_assert(o[0] == 5.0f && o[1] == 5.0f);
    maxpool_backward(d, g, x, o, 1, 2, 4, 1, 2);
    float want[8] = {0, 0, 0, 0, 1, 0, 2, 0};
    check_close(d, want, 8, 0, "tied pool gradient");
}
END_TEST

/* The fused ReLU + pool against relu_forward() then the pool references,
 * forward and backward (relu_backward() after maxpool_backward_ref() of the
 * ReLU'd input), on shapes with uncovered borders, >64 channels and inputs
 * with many exact zeros and all-negative windows (ties at 0). */
START_TEST(maxpool_relu_is_relu_then_pool) {
    static const int ps[][5] = {{2, 24, 24, 32, 2}, {1, 7, 5, 67, 2}, {2, 9, 9, 2, 3}};
    for (size_t s = 0; s < sizeof ps / sizeof ps[0]; s++) {
        int N = ps[s][0], H = ps[s][1], W = ps[s][2], C = ps[s][3], K = ps[s][4];
        size_t ni = (size_t)N * H * W * C, no = (size_t)N * (H / K) * (W / K) * C;
        float *x = randf(ni, -1, 0.5f), *r = malloc(ni * 4), *o1 = malloc(no * 4);
        float *o2 = malloc(no * 4), *g = randf(no, -1, 1), *d1 = malloc(ni * 4);
        float *d2 = randf(ni, 5, 6); /* garbage: every element must be written */
        for (size_t i = 0; i < ni; i += 5)
            x[i] = 0.0f;
        relu_forward(r, x, ni);
        maxpool_forward_ref(o1, r, N, H, W, C, K);
        maxpool_relu_forward(o2, x, N, H, W, C, K);
        check_close(o2, o1, no, 0, "relu+pool forward");
        maxpool_backward_ref(d1, g, r, N, H, W, C, K);
        relu_backward(d1, d1, r, ni);
        maxpool_relu_backward(d2, g, x, o2, N, H, W, C, K);
        check_close(d2, d1, ni, 0, "relu+pool backward");
        size_t nonzero = 0;
        for (size_t i = 0; i < ni; i++)
            nonzero += d2[i] != 0.0f;
        ck_assert_uint_gt(nonzero, no / 4); /* the positive windows got their gradient */
        free(x), free(r), free(o1), free(o2), free(g), free(d1), free(d2);
    }
}
END_TEST

START_TEST(flatten_is_chw_and_inverts) {
    enum { N = 2, H = 3, W = 2, C = 4, S = H * W * C };
    float x[N * S], y[N * S], back[N * S];
    for (int i = 0; i < N * S; i++)
        x[i] = (float)i;
    flatten_forward(y, x, N, H, W, C);
    /* out[n][c][h][w] = in[n][h][w][c] */
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++)
                    ck_assert(y[n * S + (c * H + h) * W + w] == x[n * S + (h * W + w) * C + c]);
    flatten_backward(back, y, N, H, W, C);
    ck_assert(memcmp(back, x, sizeof x) == 0);
}
END_TEST

void add_conv_tests(TCase *tc) {
    rng_seed(&crng, 777);
    tcase_add_test(tc, conv_matches_reference);
    tcase_add_test(tc, conv_auto_sends_training_batches_to_onednn);
    tcase_add_test(tc, conv_gradients);
    tcase_add_test(tc, maxpool_matches_reference_and_gradients);
    tcase_add_test(tc, maxpool_ties_take_the_first);
    tcase_add_test(tc, maxpool_relu_is_relu_then_pool);
    tcase_add_test(tc, flatten_is_chw_and_inverts);
}
