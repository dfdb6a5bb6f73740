/*
 * check_util.h — what several unit tests share: running a suite (the exit
 * status says whether anything failed) and comparing float arrays with a
 * relative tolerance. Header-only; each test executable includes it once.
 */
#ifndef SIAMESE_CHECK_UTIL_H
#define SIAMESE_CHECK_UTIL_H

#include <check.h>
#include <math.h>
#include <stddef.h>

#include "siamese/rng.h"

/* Runs s and frees the runner: 0 when every check passed, 1 otherwise. */
static inline int check_run(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

/* x (n) uniform in [lo, hi) from r. */
static inline void check_fill(Rng *r, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * rng_uniform(r);
}

/* Every |a-b| within tol relative to max(1, |b|); what names the array. */
static inline void check_close(const float *a, const float *b, size_t n, double tol,
                               const char *what) {
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]), scale = fmax(1.0, fabs((double)b[i]));
        ck_assert_msg(d <= tol * scale, "%s[%zu]: %.7g vs %.7g", what, i, a[i], b[i]);
    }
}

#endif
