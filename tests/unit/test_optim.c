/*
 * test_optim.c — the vectorised optimisers against their double-precision
 * references over many steps, and against hand-computed first steps; weight
 * decay and the weights' moving average likewise.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siamese/optim.h"
#include "siamese/rng.h"

#include "check_util.h"

enum { N = 100003 }; /* odd: exercises the vector loops' tails */

static void run(int adam) {
    float *p1 = malloc(N * 4), *p2 = malloc(N * 4), *g = malloc(N * 4);
    float *m1 = calloc(N, 4), *m2 = calloc(N, 4), *v1 = calloc(N, 4), *v2 = calloc(N, 4);
    Rng rng;
    rng_seed(&rng, 5);
    for (int i = 0; i < N; i++)
        p1[i] = p2[i] = rng_uniform(&rng) - 0.5f;
    for (int t = 1; t <= 50; t++) {
        for (int i = 0; i < N; i++)
            g[i] = (rng_uniform(&rng) - 0.5f) * (i % 7 == 0 ? 1e-4f : 1.0f);
        if (adam) {
            adam_update(p1, g, m1, v1, N, 1e-3f, 0.9f, 0.999f, 1e-7f, t);
            adam_update_ref(p2, g, m2, v2, N, 1e-3f, 0.9f, 0.999f, 1e-7f, t);
        } else {
            rmsprop_update(p1, g, v1, N, 1e-3f, 0.9f, 1e-7f);
            rmsprop_update_ref(p2, g, v2, N, 1e-3f, 0.9f, 1e-7f);
        }
    }
    for (int i = 0; i < N; i++) {
        ck_assert_msg(fabsf(p1[i] - p2[i]) < 1e-5f, "p[%d] %.8g vs %.8g", i, p1[i], p2[i]);
        ck_assert_msg(fabsf(v1[i] - v2[i]) <= 1e-5f * fabsf(v2[i]) + 1e-12f, "v[%d]", i);
    }
    free(p1), free(p2), free(g), free(m1), free(m2), free(v1), free(v2);
}

START_TEST(rmsprop_matches_reference) {
    run(0);
}
END_TEST

START_TEST(adam_matches_reference) {
    run(1);
}
END_TEST

START_TEST(first_steps_by_hand) {
    /* RMSprop from v=0: v = 0.1 g^2, step = lr g / (sqrt(0.1) |g| + eps) ~ lr / sqrt(0.1). */
    float p = 1.0f, g = 2.0f, v = 0.0f;
    rmsprop_update(&p, &g, &v, 1, 1e-3f, 0.9f, 1e-7f);
    ck_assert_float_eq_tol(v, 0.4f, 1e-7f);
    ck_assert_float_eq_tol(p, 1.0f - 1e-3f * 2.0f / (sqrtf(0.4f) + 1e-7f), 1e-7f);
    /* Adam's bias correction makes the first step exactly lr * sign(g). */
    float q = 1.0f, m = 0.0f, w = 0.0f, h = -3.0f;
    adam_update(&q, &h, &m, &w, 1, 1e-2f, 0.9f, 0.999f, 1e-7f, 1);
    ck_assert_float_eq_tol(q, 1.01f, 1e-6f);
}
END_TEST

START_TEST(decay_and_average_match_reference) {
    float *p1 = malloc(N * 4), *p2 = malloc(N * 4), *a1 = malloc(N * 4), *a2 = malloc(N * 4);
    float *p0 = malloc(N * 4);
    Rng rng;
    rng_seed(&rng, 9);
    for (int i = 0; i < N; i++)
        p0[i] = p1[i] = p2[i] = rng_uniform(&rng) - 0.5f, a1[i] = a2[i] = 0.0f;
    for (int t = 1; t <= 50; t++) {
        decay_update(p1, N, 1e-3f * 0.05f);
        decay_update_ref(p2, N, 1e-3f * 0.05f);
        ema_update(a1, p1, N, ema_decay_at(0.999f, t));
        ema_update_ref(a2, p2, N, ema_decay_at(0.999f, t));
    }
    for (int i = 0; i < N; i++) {
        ck_assert_msg(fabsf(p1[i] - p2[i]) < 1e-6f, "p[%d] %.8g vs %.8g", i, p1[i], p2[i]);
        ck_assert_msg(fabsf(a1[i] - a2[i]) < 1e-6f, "a[%d] %.8g vs %.8g", i, a1[i], a2[i]);
        /* 50 decays of 5e-5: p shrinks by (1 - 5e-5)^50 (~2.5e-3, 50 roundings) */
        ck_assert_double_eq_tol(p2[i], p0[i] * pow(1.0 - 5e-5, 50), 2e-6);
    }
    free(p0), free(p1), free(p2), free(a1), free(a2);
}
END_TEST

START_TEST(decay_and_average_by_hand) {
    float p = 2.0f;
    decay_update(&p, 1, 0.1f); /* p - 0.1 p */
    ck_assert_float_eq_tol(p, 1.8f, 1e-7f);
    decay_update(&p, 1, 0.0f);
    ck_assert_float_eq(p, 1.8f);
    float a = 1.0f, q = 3.0f;
    ema_update(&a, &q, 1, 0.75f); /* 0.75 * 1 + 0.25 * 3 */
    ck_assert_float_eq_tol(a, 1.5f, 1e-7f);
    /* The decay warms up as (1+t)/(10+t), then stays at the one asked for. */
    ck_assert_float_eq_tol(ema_decay_at(0.999f, 1), 2.0f / 11.0f, 1e-7f);
    ck_assert_float_eq_tol(ema_decay_at(0.999f, 90), 0.91f, 1e-6f);
    ck_assert_float_eq_tol(ema_decay_at(0.999f, 8990), 0.999f, 1e-7f);
    ck_assert_float_eq_tol(ema_decay_at(0.999f, 100000), 0.999f, 1e-7f);
    ck_assert_float_eq_tol(ema_decay_at(0.5f, 1), 2.0f / 11.0f, 1e-7f);
    ck_assert_float_eq_tol(ema_decay_at(0.5f, 20), 0.5f, 1e-7f);
}
END_TEST

START_TEST(cosine_schedule_values) {
    /* lr (1 + cos(pi t / T)) / 2 over T = 1000 steps, by hand. */
    ck_assert_float_eq_tol(lr_cosine(1e-3f, 0, 1000), 1e-3f, 1e-9f);
    ck_assert_float_eq_tol(lr_cosine(1e-3f, 250, 1000), 1e-3f * 0.853553391f, 1e-9f);
    ck_assert_float_eq_tol(lr_cosine(1e-3f, 500, 1000), 5e-4f, 1e-9f);
    ck_assert_float_eq_tol(lr_cosine(1e-3f, 750, 1000), 1e-3f * 0.146446609f, 1e-9f);
    ck_assert_float_eq_tol(lr_cosine(1e-3f, 999, 1000), 1e-3f * 2.4674e-6f, 1e-11f);
    ck_assert_float_eq(lr_cosine(1e-3f, 1000, 1000), 0.0f);
    ck_assert_float_eq(lr_cosine(1e-3f, 5000, 1000), 0.0f);
    ck_assert_float_eq(lr_cosine(1e-3f, 0, 0), 1e-3f); /* no run to decay over */
    /* It only ever falls. */
    for (long t = 1; t <= 1000; t++)
        ck_assert(lr_cosine(1e-2f, t, 1000) <= lr_cosine(1e-2f, t - 1, 1000));
}
END_TEST

int main(void) {
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, rmsprop_matches_reference);
    tcase_add_test(tc, adam_matches_reference);
    tcase_add_test(tc, first_steps_by_hand);
    tcase_add_test(tc, cosine_schedule_values);
    tcase_add_test(tc, decay_and_average_match_reference);
    tcase_add_test(tc, decay_and_average_by_hand);
    suite_add_tcase(s, tc);
    int failed = check_run(s);
    return failed ? 1 : 0;
}
