/*
 * test_promstats.c — unit tests for the Prometheus counters and histograms.
 *
 * The rendered text is parsed back line by line, as a scraper would: every
 * sample belongs to a family announced by # HELP and # TYPE, counters match
 * what was observed, buckets are cumulative and monotone with +Inf equal to
 * _count, sums match. Eight threads observing at once must lose nothing.
 * Gauges with labels, special values and invalid names are checked too.
 */
#include "siamese/common.h"
#include "siamese/promstats.h"

#include "check_util.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const routes[] = {"verify", "enroll", "odd\"name\\x"};

/* The value of the sample whose name-and-labels part is exactly key; NAN
 * when there is no such line. Fails if it occurs twice. */
static double sample(const char *text, const char *key) {
    double v = NAN;
    int seen = 0;
    size_t klen = strlen(key);
    for (const char *l = text; *l;) {
        const char *nl = strchr(l, '\n');
        ck_assert_msg(nl != NULL, "text does not end in a newline");
        if (strncmp(l, key, klen) == 0 && l[klen] == ' ') {
            char *end;
            v = strtod(l + klen + 1, &end);
            ck_assert_ptr_eq(end, nl);
            seen++;
        }
        l = nl + 1;
    }
    ck_assert_msg(seen <= 1, "%s appears %d times", key, seen);
    return v;
}

/* Every line is a comment of the right form or "name{labels} value", every
 * sample's family was announced by # HELP then # TYPE, and no family is
 * announced twice. */
static void check_structure(const char *text, size_t len) {
    ck_assert_uint_eq(strlen(text), len);
    ck_assert(len > 0 && text[len - 1] == '\n');
    char family[128] = "", type[16] = "";
    char announced[64][128];
    int n_announced = 0;
    for (const char *l = text; *l;) {
        const char *nl = strchr(l, '\n');
        char line[512];
        size_t n = (size_t)(nl - l);
        ck_assert_uint_lt(n, sizeof line);
        memcpy(line, l, n);
        line[n] = 0;
        l = nl + 1;
        char name[128];
        if (strncmp(line, "# HELP ", 7) == 0) {
            ck_assert_int_eq(sscanf(line + 7, "%127s", family), 1);
            for (int i = 0; i < n_announced; i++)
                ck_assert_msg(strcmp(announced[i], family) != 0, "%s announced twice", family);
            ck_assert_int_lt(n_announced, 64);
            strcpy(announced[n_announced++], family);
            type[0] = 0;
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            ck_assert_int_eq(sscanf(line + 7, "%127s %15s", name, type), 2);
            ck_assert_str_eq(name, family);
            ck_assert(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                      strcmp(type, "histogram") == 0);
            continue;
        }
        ck_assert_msg(line[0] != '#', "stray comment: %s", line);
        ck_assert_msg(type[0], "sample before # TYPE: %s", line);
        ck_assert_int_eq(strncmp(line, "siamesed_", 9), 0);
        size_t fl = strlen(family);
        ck_assert_msg(strncmp(line, family, fl) == 0, "%s outside family %s", line, family);
        const char *rest = line + fl;
        if (strcmp(type, "histogram") == 0 && *rest == '_')
            rest += strspn(rest, "_bucketsumcon");
        ck_assert_msg(*rest == '{' || *rest == ' ', "bad sample name: %s", line);
        const char *sp = strrchr(line, ' ');
        char *end;
        strtod(sp + 1, &end);
        ck_assert_msg(*end == 0 && end > sp + 1, "bad value: %s", line);
    }
}

/* Checks route r's histogram: monotone buckets, +Inf == _count == want,
 * _sum == want_sum; returns the bucket counts through counts[]. */
/* The latency histograms of route, summed over every status code's series
 * (absent series count 0): cumulative, monotone, +Inf == _count == want. */
static double sum_codes(const char *text, const char *series, const char *route, const char *le) {
    static const int codes[] = {PROM_CODES};
    char key[256], code[16];
    double total = 0;
    for (size_t c = 0; c <= SM_ARRAY_LEN(codes); c++) {
        if (c < SM_ARRAY_LEN(codes))
            snprintf(code, sizeof code, "%d", codes[c]);
        else
            snprintf(code, sizeof code, "other");
        if (le)
            snprintf(key, sizeof key, "%s{route=\"%s\",code=\"%s\",le=\"%s\"}", series, route, code,
                     le);
        else
            snprintf(key, sizeof key, "%s{route=\"%s\",code=\"%s\"}", series, route, code);
        double v = sample(text, key);
        total += isnan(v) ? 0 : v;
    }
    return total;
}

static void check_histogram(const char *text, const char *route, double want, double want_sum,
                            double *counts) {
    static const double bounds[] = {PROM_BUCKETS};
    double prev = 0;
    for (size_t k = 0; k <= SM_ARRAY_LEN(bounds); k++) {
        char le[32];
        if (k < SM_ARRAY_LEN(bounds))
            snprintf(le, sizeof le, "%g", bounds[k]);
        else
            snprintf(le, sizeof le, "+Inf");
        double v = sum_codes(text, "siamesed_http_request_duration_seconds_bucket", route, le);
        ck_assert_msg(v >= prev, "route %s: bucket le=%s decreases", route, le);
        if (counts)
            counts[k] = v;
        prev = v;
    }
    ck_assert_double_eq(
        sum_codes(text, "siamesed_http_request_duration_seconds_count", route, NULL), prev);
    ck_assert_double_eq(prev, want);
    ck_assert_double_eq_tol(
        sum_codes(text, "siamesed_http_request_duration_seconds_sum", route, NULL), want_sum, 1e-9);
}

static char *render(const PromStats *p, const PromGauge *g, int n, size_t *len) {
    char *text = NULL;
    ck_assert_int_eq(promstats_render(p, g, n, &text, len), 0);
    ck_assert_ptr_nonnull(text);
    check_structure(text, *len);
    return text;
}

START_TEST(test_counts_and_buckets) {
    PromStats *p = promstats_new(routes, 3);
    ck_assert_ptr_nonnull(p);
    promstats_observe(p, 0, 200, 0.0003); /* le 0.0005 */
    promstats_observe(p, 0, 200, 0.0005); /* exactly on a bound: le 0.0005 */
    promstats_observe(p, 0, 404, 0.02);   /* le 0.025 */
    promstats_observe(p, 0, 499, 3.0);    /* +Inf only; code "other" */
    promstats_observe(p, 0, 503, -1.0);   /* counts as 0 */
    promstats_observe(p, 0, 200, NAN);    /* counts as 0 */
    promstats_observe(p, 2, 201, 0.3);
    size_t len;
    char *t = render(p, NULL, 0, &len);
    const char *V = "siamesed_http_requests_total{route=\"verify\",code=";
    char key[256];
    snprintf(key, sizeof key, "%s\"200\"}", V);
    ck_assert_double_eq(sample(t, key), 3);
    snprintf(key, sizeof key, "%s\"404\"}", V);
    ck_assert_double_eq(sample(t, key), 1);
    snprintf(key, sizeof key, "%s\"503\"}", V);
    ck_assert_double_eq(sample(t, key), 1);
    snprintf(key, sizeof key, "%s\"other\"}", V);
    ck_assert_double_eq(sample(t, key), 1);
    snprintf(key, sizeof key, "%s\"201\"}", V); /* never seen: not rendered */
    ck_assert(isnan(sample(t, key)));
    /* The escaped route name. */
    ck_assert_double_eq(
        sample(t, "siamesed_http_requests_total{route=\"odd\\\"name\\\\x\",code=\"201\"}"), 1);

    double c[16];
    check_histogram(t, "verify", 6, 0.0003 + 0.0005 + 0.02 + 3.0, c);
    ck_assert_double_eq(c[0], 4);  /* 0.0003, 0.0005, and the two that count as 0 */
    ck_assert_double_eq(c[4], 4);  /* le 0.01 */
    ck_assert_double_eq(c[5], 5);  /* le 0.025 */
    ck_assert_double_eq(c[11], 5); /* le 2.5 */
    ck_assert_double_eq(c[12], 6); /* +Inf */
    /* Latency is split by status code, and a cell never seen has no series. */
    ck_assert_double_eq(
        sample(t, "siamesed_http_request_duration_seconds_count{route=\"verify\",code=\"200\"}"),
        3);
    ck_assert_double_eq(
        sample(t, "siamesed_http_request_duration_seconds_count{route=\"verify\",code=\"404\"}"),
        1);
    ck_assert_ptr_null(strstr(t, "seconds_count{route=\"enroll\""));
    check_histogram(t, "enroll", 0, 0, NULL);
    check_histogram(t, "odd\\\"name\\\\x", 1, 0.3, c);
    ck_assert_double_eq(c[8], 0); /* le 0.25 */
    ck_assert_double_eq(c[9], 1); /* le 0.5 */
    free(t);
    promstats_free(p);
}
END_TEST

START_TEST(test_unknown_route) {
    PromStats *p = promstats_new(routes, 2);
    size_t len;
    char *t = render(p, NULL, 0, &len);
    ck_assert_ptr_null(strstr(t, "route=\"unknown\""));
    free(t);
    promstats_observe(p, 7, 200, 0.001);
    promstats_observe(p, -1, 999, 0.001);
    t = render(p, NULL, 0, &len);
    ck_assert_double_eq(sample(t, "siamesed_http_requests_total{route=\"unknown\",code=\"200\"}"),
                        1);
    ck_assert_double_eq(sample(t, "siamesed_http_requests_total{route=\"unknown\",code=\"other\"}"),
                        1);
    check_histogram(t, "unknown", 2, 0.002, NULL);
    free(t);
    promstats_free(p);
    promstats_observe(NULL, 0, 200, 1); /* harmless */
    promstats_free(NULL);
}
END_TEST

START_TEST(test_every_code) {
    static const int codes[] = {PROM_CODES};
    PromStats *p = promstats_new(routes, 1);
    for (size_t i = 0; i < SM_ARRAY_LEN(codes); i++)
        for (size_t k = 0; k <= i; k++)
            promstats_observe(p, 0, codes[i], 0.001);
    size_t len;
    char *t = render(p, NULL, 0, &len);
    for (size_t i = 0; i < SM_ARRAY_LEN(codes); i++) {
        char key[128];
        snprintf(key, sizeof key, "siamesed_http_requests_total{route=\"verify\",code=\"%d\"}",
                 codes[i]);
        ck_assert_double_eq(sample(t, key), (double)(i + 1));
    }
    free(t);
    promstats_free(p);
}
END_TEST

typedef struct {
    PromStats *p;
    int id;
} Worker;

enum { THREADS = 8, PER_THREAD = 20000 };

static void *observe_loop(void *arg) {
    Worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++)
        promstats_observe(w->p, i % 3, i % 2 ? 200 : 404, (i % 4) * 0.001);
    return NULL;
}

START_TEST(test_concurrent) {
    PromStats *p = promstats_new(routes, 3);
    pthread_t th[THREADS];
    Worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (Worker){p, i};
        ck_assert_int_eq(pthread_create(&th[i], NULL, observe_loop, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    /* Per route and code, and per route the latency sums, known exactly. */
    double n200[3] = {0}, n404[3] = {0}, sum[3] = {0}, le1ms[3] = {0};
    for (int i = 0; i < PER_THREAD; i++) {
        (i % 2 ? n200 : n404)[i % 3] += THREADS;
        sum[i % 3] += THREADS * ((i % 4) * 0.001);
        le1ms[i % 3] += (i % 4) <= 1 ? THREADS : 0;
    }
    size_t len;
    char *t = render(p, NULL, 0, &len);
    double total = 0;
    for (int r = 0; r < 2; r++) { /* the third name needs escaping; two suffice */
        char key[128];
        snprintf(key, sizeof key, "siamesed_http_requests_total{route=\"%s\",code=\"200\"}",
                 routes[r]);
        ck_assert_double_eq(sample(t, key), n200[r]);
        snprintf(key, sizeof key, "siamesed_http_requests_total{route=\"%s\",code=\"404\"}",
                 routes[r]);
        ck_assert_double_eq(sample(t, key), n404[r]);
        double c[16];
        check_histogram(t, routes[r], n200[r] + n404[r], sum[r], c);
        ck_assert_double_eq(c[1], le1ms[r]);
        total += n200[r] + n404[r];
    }
    check_histogram(t, "odd\\\"name\\\\x", THREADS * PER_THREAD - total, sum[2], NULL);
    free(t);
    promstats_free(p);
}
END_TEST

START_TEST(test_gauges) {
    const PromGauge g[] = {
        {"enrolled_subjects", "Subjects enrolled", 42, NULL, 0},
        {"model_info", "The served model\nwith a \\ in its help", 1,
         "fingerprint=\"abc123\",blas_kernel=\"openblas\"", 0},
        {"queue", "Per queue", 0.1, "q=\"a\"", 0},
        {"queue", NULL, -2.5e-7, "q=\"b \\\"quoted\\\" \\\\ \\n\"", 0},
        {"odd", "Specials", NAN, "", 0},
        {"odd_inf", "Specials", INFINITY, NULL, 0},
        {"odd_ninf", "Specials", -INFINITY, NULL, 0},
        {"big", "Large", 1e300, NULL, 0},
        {"store_commits_total", "Commits", 7, NULL, 1},
    };
    PromStats *p = promstats_new(routes, 1);
    size_t len;
    char *t = render(p, g, (int)SM_ARRAY_LEN(g), &len);
    ck_assert_double_eq(sample(t, "siamesed_enrolled_subjects"), 42);
    ck_assert_double_eq(
        sample(t, "siamesed_model_info{fingerprint=\"abc123\",blas_kernel=\"openblas\"}"), 1);
    ck_assert_ptr_nonnull(
        strstr(t, "# HELP siamesed_model_info The served model\\nwith a \\\\ in its help\n"));
    ck_assert_ptr_nonnull(strstr(t, "# TYPE siamesed_enrolled_subjects gauge\n"));
    ck_assert_double_eq(sample(t, "siamesed_queue{q=\"a\"}"), 0.1);
    ck_assert_double_eq(sample(t, "siamesed_queue{q=\"b \\\"quoted\\\" \\\\ \\n\"}"), -2.5e-7);
    ck_assert_ptr_nonnull(strstr(t, "\nsiamesed_odd NaN\n"));
    ck_assert_ptr_nonnull(strstr(t, "\nsiamesed_odd_inf +Inf\n"));
    ck_assert_ptr_nonnull(strstr(t, "\nsiamesed_odd_ninf -Inf\n"));
    ck_assert_ptr_nonnull(strstr(t, "\nsiamesed_queue{q=\"a\"} 0.1\n"));
    ck_assert_double_eq(sample(t, "siamesed_big"), 1e300);
    ck_assert_ptr_nonnull(strstr(t, "# TYPE siamesed_store_commits_total counter\n"));
    ck_assert_double_eq(sample(t, "siamesed_store_commits_total"), 7);
    free(t);
    /* Gauges alone, without a PromStats. */
    t = render(NULL, g, 1, &len);
    ck_assert_str_eq(t, "# HELP siamesed_enrolled_subjects Subjects enrolled\n"
                        "# TYPE siamesed_enrolled_subjects gauge\n"
                        "siamesed_enrolled_subjects 42\n");
    free(t);
    promstats_free(p);
}
END_TEST

START_TEST(test_gauge_rejects) {
    const PromGauge bad[][1] = {
        {{"", "h", 1, NULL, 0}},
        {{NULL, "h", 1, NULL, 0}},
        {{"9lives", "h", 1, NULL, 0}},
        {{"has space", "h", 1, NULL, 0}},
        {{"dash-name", "h", 1, NULL, 0}},
        {{"http_requests_total", "h", 1, NULL, 0}},
        {{"http_request_duration_seconds_bucket", "h", 1, NULL, 0}},
        {{"ok", "h", 1, "x", 0}},
        {{"ok", "h", 1, "x=1", 0}},
        {{"ok", "h", 1, "x=\"1\",", 0}},
        {{"ok", "h", 1, "x=\"1", 0}},
        {{"ok", "h", 1, "x=\"a\nb\"", 0}},
        {{"ok", "h", 1, "x=\"a\\tb\"", 0}},
        {{"ok", "h", 1, "9x=\"a\"", 0}},
        {{"ok", "h", 1, "x=\"a\"}", 0}},
        {{"ok", "h", 1, "x=\"a\",,y=\"b\"", 0}},
    };
    for (size_t i = 0; i < SM_ARRAY_LEN(bad); i++) {
        char *t = (char *)&t;
        size_t len = 7;
        ck_assert_msg(promstats_render(NULL, bad[i], 1, &t, &len) == -EINVAL, "case %zu", i);
        ck_assert_ptr_null(t);
    }
    const PromGauge split[] = {
        {"a", "h", 1, "x=\"1\"", 0}, {"b", "h", 1, NULL, 0}, {"a", "h", 1, "x=\"2\"", 0}};
    char *t;
    size_t len;
    ck_assert_int_eq(promstats_render(NULL, split, 3, &t, &len), -EINVAL);
    ck_assert_int_eq(promstats_render(NULL, NULL, 1, &t, &len), -EINVAL);
    ck_assert_int_eq(promstats_render(NULL, split, -1, &t, &len), -EINVAL);
    ck_assert_int_eq(promstats_render(NULL, NULL, 0, &t, &len), 0);
    ck_assert_str_eq(t, "");
    ck_assert_uint_eq(len, 0);
    free(t);
}
END_TEST

START_TEST(test_new_rejects) {
    const char *const with_null[] = {"a", NULL};
    ck_assert_ptr_null(promstats_new(routes, 0));
    ck_assert_ptr_null(promstats_new(NULL, 2));
    ck_assert_ptr_null(promstats_new(with_null, 2));
}
END_TEST

static Suite *promstats_suite(void) {
    Suite *s = suite_create("promstats");
    TCase *tc = tcase_create("render");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_counts_and_buckets);
    tcase_add_test(tc, test_unknown_route);
    tcase_add_test(tc, test_every_code);
    tcase_add_test(tc, test_concurrent);
    tcase_add_test(tc, test_gauges);
    tcase_add_test(tc, test_gauge_rejects);
    tcase_add_test(tc, test_new_rejects);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return check_run(promstats_suite());
}
