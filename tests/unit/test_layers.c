/*
 * test_layers.c — every layer's backward against central finite differences
 * of its forward, and every optimised kernel against its naive reference.
 * The loss edges (D -> 0, D >= margin, the eps clamp) are checked explicitly.
 * (sgemm itself is held to its reference in test_blas.c.)
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siamese/blas.h"
#include "siamese/layers.h"
#include "siamese/rng.h"

#include "check_util.h"
#include "test_layers.h"

static Rng rng;

static void fill(float *x, size_t n, float lo, float hi) {
    check_fill(&rng, x, n, lo, hi);
}

/* Dense: loss = sum(out * r); its gradients are dense_backward with dout = r. */
enum { N = 6, C = 7, OC = 5 };

static double dense_loss(const float *inp, const float *w, const float *b, const float *r) {
    float out[N * OC];
    dense_forward_ref(out, inp, w, b, N, C, OC);
    double s = 0;
    for (int i = 0; i < N * OC; i++)
        s += (double)out[i] * r[i];
    return s;
}

static void fd_check(float *x, size_t n, const float *grad, const float *inp, const float *w,
                     const float *b, const float *r, const char *what) {
    const float h = 1e-2f;
    for (size_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + h;
        double up = dense_loss(inp, w, b, r);
        x[i] = keep - h;
        double down = dense_loss(inp, w, b, r);
        x[i] = keep;
        double fd = (up - down) / (2 * h);
        ck_assert_msg(fabs(fd - grad[i]) < 2e-3 * fmax(1.0, fabs(fd)), "%s[%zu]: fd %.6g grad %.6g",
                      what, i, fd, grad[i]);
    }
}

START_TEST(dense_gradients) {
    float inp[N * C], w[OC * C], b[OC], r[N * OC], dinp[N * C], dw[OC * C], db[OC];
    fill(inp, N * C, -1, 1), fill(w, OC * C, -1, 1), fill(b, OC, -1, 1), fill(r, N * OC, -1, 1);
    memset(dw, 0, sizeof dw), memset(db, 0, sizeof db);
    dense_backward(dinp, dw, db, r, inp, w, N, C, OC);
    fd_check(inp, N * C, dinp, inp, w, b, r, "dinp");
    fd_check(w, OC * C, dw, inp, w, b, r, "dweight");
    fd_check(b, OC, db, inp, w, b, r, "dbias");
}
END_TEST

START_TEST(dense_matches_reference) {
    /* The trainer's real shapes plus odd ones; backward accumulates into gradients. */
    /* The trainer's real shapes, the daemon's (1-2 rows: the small-row path),
     * and odd ones on both sides of that path's cut (4 rows) and its lanes (16). */
    static const int shapes[][3] = {{256, 784, 128}, {256, 128, 128}, {3, 5, 2},  {1, 784, 128},
                                    {2, 784, 128},   {4, 33, 7},      {5, 33, 7}, {2, 16, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int n = shapes[s][0], c = shapes[s][1], oc = shapes[s][2];
        size_t ni = (size_t)n * c, nw = (size_t)oc * c, no = (size_t)n * oc;
        float *inp = malloc(ni * 4), *w = malloc(nw * 4), *b = malloc(oc * 4), *o1 = malloc(no * 4);
        float *o2 = malloc(no * 4), *di1 = malloc(ni * 4), *di2 = malloc(ni * 4);
        float *dw1 = malloc(nw * 4), *dw2 = malloc(nw * 4), *db1 = malloc(oc * 4),
              *db2 = malloc(oc * 4);
        fill(inp, ni, 0, 1), fill(w, nw, -0.1f, 0.1f), fill(b, oc, -1, 1), fill(o1, no, -1, 1);
        fill(dw1, nw, -1, 1), fill(db1, oc, -1, 1);
        memcpy(dw2, dw1, nw * 4), memcpy(db2, db1, oc * 4);
        dense_forward(o2, inp, w, b, n, c, oc);
        dense_forward_ref(o1, inp, w, b, n, c, oc);
        check_close(o2, o1, no, 1e-4, "forward");
        dense_backward(di2, dw2, db2, o1, inp, w, n, c, oc);
        dense_backward_ref(di1, dw1, db1, o1, inp, w, n, c, oc);
        check_close(di2, di1, ni, 1e-4, "dinp");
        check_close(dw2, dw1, nw, 1e-4, "dweight");
        check_close(db2, db1, oc, 1e-4, "dbias");
        free(inp), free(w), free(b), free(o1), free(o2), free(di1), free(di2);
        free(dw1), free(dw2), free(db1), free(db2);
    }
}
END_TEST

START_TEST(transposed_forward_matches_reference) {
    /* 784 and 1300 inputs span two and three chunks of non-zero lists; 100 and
     * 200 outputs end in a partial block. */
    static const int shapes[][3] = {{1, 784, 128}, {2, 784, 128},  {3, 128, 64},
                                    {2, 5, 3},     {2, 1300, 200}, {1, 1100, 100}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int n = shapes[s][0], c = shapes[s][1], oc = shapes[s][2];
        float *inp = malloc((size_t)n * c * 4), *w = malloc((size_t)oc * c * 4);
        float *wt = malloc((size_t)oc * c * 4), *b = malloc((size_t)oc * 4);
        float *o1 = malloc((size_t)n * oc * 4), *o2 = malloc((size_t)n * oc * 4);
        fill(inp, (size_t)n * c, -1, 1), fill(w, (size_t)oc * c, -0.1f, 0.1f), fill(b, oc, -1, 1);
        for (int i = 0; i < n * c; i += 3)
            inp[i] = 0.0f; /* the skipped zeros must not change the result */
        for (int o = 0; o < oc; o++)
            for (int k = 0; k < c; k++)
                wt[(size_t)k * oc + o] = w[(size_t)o * c + k];
        dense_forward_ref(o1, inp, w, b, n, c, oc);
        dense_forward_t(o2, inp, wt, b, n, c, oc);
        check_close(o2, o1, (size_t)n * oc, 1e-5, "forward_t");
        free(inp), free(w), free(wt), free(b), free(o1), free(o2);
    }
}
END_TEST

START_TEST(relu_forward_backward) {
    float x[] = {-2, -0.0f, 0, 1e-30f, 3}, y[5], g[5] = {1, 2, 3, 4, 5}, d[5];
    relu_forward(y, x, 5);
    float want[] = {0, 0, 0, 1e-30f, 3};
    check_close(y, want, 5, 0, "relu");
    relu_backward(d, g, y, 5);
    float wantd[] = {0, 0, 0, 4, 5};
    check_close(d, wantd, 5, 0, "relu'");
}
END_TEST

START_TEST(dropout_is_inverted_and_seeded) {
    enum { M = 100000 };
    float *x = malloc(M * 4), *y = malloc(M * 4), *mask = malloc(M * 4), *g = malloc(M * 4);
    for (int i = 0; i < M; i++)
        x[i] = 1.0f;
    Rng r1, r2;
    rng_seed(&r1, 7);
    dropout_forward(y, mask, x, M, 0.1f, &r1);
    double sum = 0;
    int zeros = 0;
    for (int i = 0; i < M; i++) {
        ck_assert(mask[i] == 0.0f || fabsf(mask[i] - 1.0f / 0.9f) < 1e-6f);
        ck_assert(y[i] == x[i] * mask[i]);
        zeros += mask[i] == 0.0f;
        sum += y[i];
    }
    ck_assert_msg(abs(zeros - M / 10) < 600, "dropped %d of %d", zeros, M);
    ck_assert_msg(fabs(sum / M - 1.0) < 0.01, "mean %.4f, inverted dropout keeps 1", sum / M);
    dropout_backward(g, x, mask, M);
    check_close(g, mask, M, 0, "dropout'");
    rng_seed(&r2, 7);
    dropout_forward(g, x, x, M, 0.1f, &r2);
    check_close(x, mask, M, 0, "same seed, same mask");
    free(x), free(y), free(mask), free(g);
}
END_TEST

/* Contrastive loss of emb, through distance_forward. */
static double pair_loss(const float *emb, const float *y, int B, int E, float margin) {
    float dist[8];
    distance_forward(dist, emb, B, E);
    return contrastive_forward(dist, y, B, margin);
}

static void loss_gradient(float *demb, const float *emb, const float *y, int B, int E, float m) {
    float dist[8];
    distance_forward(dist, emb, B, E);
    contrastive_backward(demb, emb, dist, y, B, E, m, B);
}

static void fd_loss_check(float *emb, const float *y, int B, int E, float margin, float h) {
    float demb[64];
    loss_gradient(demb, emb, y, B, E, margin);
    for (int i = 0; i < 2 * B * E; i++) {
        float keep = emb[i];
        emb[i] = keep + h;
        double up = pair_loss(emb, y, B, E, margin);
        emb[i] = keep - h;
        double down = pair_loss(emb, y, B, E, margin);
        emb[i] = keep;
        double fd = (up - down) / (2 * h);
        ck_assert_msg(fabs(fd - demb[i]) < 1e-2 * fmax(0.05, fabs(fd)),
                      "demb[%d]: fd %.6g grad %.6g", i, fd, demb[i]);
    }
}

START_TEST(contrastive_gradients_generic) {
    enum { B = 4, E = 3 };
    float emb[2 * B * E], y[B] = {1, 0, 1, 0};
    fill(emb, 2 * B * E, -0.3f, 0.3f);
    fd_loss_check(emb, y, B, E, 1.0f, 1e-3f);
    fd_loss_check(emb, y, B, E, 0.2f, 1e-3f); /* some negatives beyond the margin */
    /* Shares of a batch: pairs 0-1 and 2-3 apart, each over the batch's size,
     * give the whole batch's gradient. */
    float whole[2 * B * E], part[2 * B * E], dist[B], a[2 * 2 * E], b[2 * 2 * E];
    distance_forward(dist, emb, B, E);
    contrastive_backward(whole, emb, dist, y, B, E, 1.0f, B);
    for (int s = 0; s < 2; s++) { /* share s: its left rows, then its right rows */
        memcpy(a, emb + s * 2 * E, 2 * E * sizeof *a);
        memcpy(a + 2 * E, emb + (B + s * 2) * E, 2 * E * sizeof *a);
        contrastive_backward(b, a, dist + 2 * s, y + 2 * s, 2, E, 1.0f, B);
        memcpy(part + s * 2 * E, b, 2 * E * sizeof *b);
        memcpy(part + (B + s * 2) * E, b + 2 * E, 2 * E * sizeof *b);
    }
    check_close(part, whole, 2 * B * E, 1e-7f, "shares over the batch's size");
}
END_TEST

START_TEST(contrastive_values_and_edges) {
    /* Hand values: pair 0 same at D=0.5 -> 0.25; pair 1 different at D=0.5 -> 0.25;
     * pair 2 different at D=2 >= margin -> 0, gradient exactly 0. */
    float emb[] = {0, 0, 0, 0, 0, 0, 0.3f, 0.4f, 0.3f, 0.4f, 2, 0};
    float y[] = {1, 0, 0}, dist[3], demb[12];
    distance_forward(dist, emb, 3, 2);
    ck_assert_float_eq_tol(dist[0], 0.5f, 1e-6f);
    ck_assert_float_eq_tol(dist[2], 2.0f, 1e-6f);
    ck_assert_float_eq_tol(contrastive_forward(dist, y, 3, 1.0f), (0.25f + 0.25f) / 3, 1e-6f);
    contrastive_backward(demb, emb, dist, y, 3, 2, 1.0f, 3);
    ck_assert(demb[4] == 0.0f && demb[5] == 0.0f && demb[10] == 0.0f && demb[11] == 0.0f);
    /* Same pair, a: dL/da = (2 D / B) (a-b)/D = 2 (a-b) / B. */
    ck_assert_float_eq_tol(demb[0], 2.0f * (0 - 0.3f) / 3, 1e-6f);
    ck_assert_float_eq_tol(demb[6], -demb[0], 1e-7f);

    /* D -> 0: identical embeddings sit on the eps clamp: D = sqrt(1e-7), gradient 0. */
    float same[] = {0.5f, 0.5f, 0.5f, 0.5f}, y1[] = {1}, d1, g1[4];
    distance_forward(&d1, same, 1, 2);
    ck_assert_float_eq_tol(d1, sqrtf(1e-7f), 1e-9f);
    contrastive_backward(g1, same, &d1, y1, 1, 2, 1.0f, 1);
    for (int i = 0; i < 4; i++)
        ck_assert(g1[i] == 0.0f);
    /* Just above the clamp the gradient is finite and matches finite differences. */
    float tiny[] = {0.5f, 0.5f, 0.5005f, 0.5005f};
    fd_loss_check(tiny, y1, 1, 2, 1.0f, 1e-4f);
    float y0[] = {0};
    fd_loss_check(tiny, y0, 1, 2, 1.0f, 1e-4f);
    /* Just inside the margin the negative gradient is nonzero and pushes apart. */
    float near[] = {0, 0, 0.99f, 0}, g2[4];
    distance_forward(&d1, near, 1, 2);
    contrastive_backward(g2, near, &d1, y0, 1, 2, 1.0f, 1);
    ck_assert(g2[0] > 0.0f && g2[2] < 0.0f);
    fd_loss_check(near, y0, 1, 2, 1.0f, 1e-3f);
}
END_TEST

int main(int argc, char **argv) {
    (void)argc;
    char err[256];
    if (blas_boot(argv, err) < 0)
        return 2;
    rng_seed(&rng, 12345);
    Suite *s = suite_create("layers");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, dense_gradients);
    tcase_add_test(tc, dense_matches_reference);
    tcase_add_test(tc, transposed_forward_matches_reference);
    tcase_add_test(tc, relu_forward_backward);
    tcase_add_test(tc, dropout_is_inverted_and_seeded);
    tcase_add_test(tc, contrastive_gradients_generic);
    tcase_add_test(tc, contrastive_values_and_edges);
    add_conv_tests(tc);
    suite_add_tcase(s, tc);
    int failed = check_run(s);
    fprintf(stderr, "blas kernel: %s\n", blas_kernel());
    return failed ? 1 : 0;
}
