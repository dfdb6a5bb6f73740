/*
 * test_layers_conv.c — convolution, max pooling and flatten: the batched
 * kernels against their plain-loop references over shapes with stride,
 * padding, odd sizes, 1×1 kernels and several channels, and the references'
 * backward against central finite differences of their forward.
 */
#include <check.h>
#include <math.h>
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

START_TEST(conv_matches_reference) {
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        ConvShape c = shapes[s];
        int OH = osz(c.H, c.K, c.S, c.P), OW = osz(c.W, c.K, c.S, c.P);
        size_t ni = (size_t)c.N * c.H * c.W * c.C, nw = (size_t)c.OC * c.K * c.K * c.C;
        size_t no = (size_t)c.N * OH * OW * c.OC, ncol = (size_t)c.N * OH * OW * c.K * c.K * c.C;
        float *x = randf(ni, -1, 1), *w = randf(nw, -0.2f, 0.2f), *b = randf(c.OC, -1, 1);
        float *o1 = malloc(no * 4), *o2 = malloc(no * 4), *col = malloc(ncol * 4);
        float *g = randf(no, -1, 1), *di1 = malloc(ni * 4), *di2 = malloc(ni * 4);
        float *dw1 = randf(nw, -1, 1), *dw2 = malloc(nw * 4), *db1 = randf(c.OC, -1, 1),
              *db2 = malloc(c.OC * 4);
        memcpy(dw2, dw1, nw * 4), memcpy(db2, db1, c.OC * 4);
        conv2d_forward(o2, col, x, w, b, c.N, c.H, c.W, c.C, c.OC, c.K, c.S, c.P);
        conv2d_forward_ref(o1, x, w, b, c.N, c.H, c.W, c.C, c.OC, c.K, c.S, c.P);
        check_close(o2, o1, no, 1e-4, "conv forward");
        conv2d_backward(di2, dw2, db2, col, g, w, c.N, c.H, c.W, c.C, c.OC, c.K, c.S, c.P);
        conv2d_backward_ref(di1, dw1, db1, g, x, w, c.N, c.H, c.W, c.C, c.OC, c.K, c.S, c.P);
        check_close(di2, di1, ni, 1e-4, "conv dinp");
        check_close(dw2, dw1, nw, 1e-4, "conv dweight (accumulated)");
        check_close(db2, db1, c.OC, 1e-4, "conv dbias (accumulated)");
        /* Without the input gradient (the first layer) the parameter ones are the same. */
        memcpy(dw2, dw1, nw * 4), memcpy(db2, db1, c.OC * 4);
        conv2d_forward(o2, col, x, w, b, c.N, c.H, c.W, c.C, c.OC, c.K, c.S, c.P);
        conv2d_backward(NULL, dw2, db2, col, g, w, c.N, c.H, c.W, c.C, c.OC, c.K, c.S, c.P);
        conv2d_backward_ref(NULL, dw1, db1, g, x, w, c.N, c.H, c.W, c.C, c.OC, c.K, c.S, c.P);
        check_close(dw2, dw1, nw, 1e-4, "conv dweight without dinp");
        check_close(db2, db1, c.OC, 1e-4, "conv dbias without dinp");
        free(x), free(w), free(b), free(o1), free(o2), free(col), free(g), free(di1), free(di2);
        free(dw1), free(dw2), free(db1), free(db2);
    }
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
        float *g = randf(no, -1, 1), *d1 = malloc(ni * 4), *d2 = malloc(ni * 4);
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
    tcase_add_test(tc, conv_gradients);
    tcase_add_test(tc, maxpool_matches_reference_and_gradients);
    tcase_add_test(tc, maxpool_ties_take_the_first);
    tcase_add_test(tc, flatten_is_chw_and_inverts);
}
