/*
 * test_operating.c — operating points end to end, with the real binary:
 *   - `siamesed --calibrate` writes the threshold and the table, prints
 *     before/after, keeps the fingerprint; one class, or a far the data
 *     cannot resolve, fails with nothing written;
 *   - the daemon answers /verify and /identify by `far` (the table's
 *     threshold, both returned), refuses a far below 1/negatives naming the
 *     smallest rate, and a far that is not a rate; every verdict carries
 *     estimated FAR and FRR; GET /model summarises the table;
 *   - /identify's open-set answer: "identified" the subject under the
 *     threshold, null above it;
 *   - `siamesed --audit` lists files of an image directory; one class fails;
 *   - SIGHUP and POST /admin/reload swap in a recalibrated threshold while
 *     serving; a file with other weights is refused (409) and the
 *     calibration in use stays.
 */
#include <check.h>
#include <curl/curl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon_harness.h"

int harness_failures;

static char dir[320], data[400], one[400], model[400], served[400], db[400];

static void write_buf(const char *path, const Buf *b) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    ck_assert_uint_eq(fwrite(b->p, 1, b->len, f), b->len);
    ck_assert_int_eq(fclose(f), 0);
}

/* DIR/c<k>/<i>.pgm: n_classes folders of per images. */
static void write_dataset(const char *d, int n_classes, int per, uint32_t seed) {
    char p[600];
    mkdir(d, 0755);
    for (int c = 0; c < n_classes; c++) {
        snprintf(p, sizeof p, "%s/c%d", d, c);
        mkdir(p, 0755);
        for (int i = 0; i < per; i++) {
            snprintf(p, sizeof p, "%s/c%d/%d.pgm", d, c, i);
            Buf b = img_pgm(seed + (uint32_t)(100 * c + i), 28, 28);
            write_buf(p, &b);
            buf_free(&b);
        }
    }
}

/* --calibrate MODEL=model onto out with extra flags (NULL-terminated pairs). */
static int calibrate(const char *out, const char *data_dir, const char *k, const char *v,
                     const char *log) {
    const char *args[] = {"--calibrate", "--model", model, "--data", data_dir,
                          "--out",       out,       k,     v,        NULL};
    int st = tool_run(log, args);
    ck_assert_msg(!log_has_sanitizer_report(log), "sanitizer report from --calibrate");
    return st;
}

/* The scratch directory, the datasets and the model (in the first test:
 * ck_assert works only inside tests). */
static int setup_all(void) {
    if (scratch_dir("operating", dir, sizeof dir) < 0)
        return -1;
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(one, sizeof one, "%s/one", dir);
    snprintf(model, sizeof model, "%s/model.safetensors", dir);
    snprintf(served, sizeof served, "%s/served.safetensors", dir);
    snprintf(db, sizeof db, "%s/op.db", dir);
    write_dataset(data, 3, 8, 1000);
    write_dataset(one, 1, 6, 5000);
    return model_make(model, 11, NULL);
}

START_TEST(audit_cli) {
    char log[500];
    snprintf(log, sizeof log, "%s/audit.log", dir);
    char html[500];
    snprintf(html, sizeof html, "%s/audit.html", dir);
    const char *args[] = {"--audit", "--model", model,      "--data", data,
                          "--top",   "5",       "--report", html,     NULL};
    int st = tool_run(log, args);
    ck_assert_msg(!log_has_sanitizer_report(log), "sanitizer report from --audit");
    ck_assert(exited_ok(st));
    char want[500];
    snprintf(want, sizeof want, "%s/c", data); /* files, not indices, for an image directory */
    ck_assert(file_has(log, "suggested") && file_has(log, want) && file_has(log, ".pgm"));
    /* The report: 5 suspects, each with its image and its 10 neighbours'. */
    Buf b;
    ck_assert_int_eq(buf_read_file(html, &b), 0);
    int imgs = 0, cards = 0;
    for (const char *p = (const char *)b.p; (p = strstr(p, "<img")); p++)
        imgs++;
    for (const char *p = (const char *)b.p; (p = strstr(p, "class=\"suspect\"")); p++)
        cards++;
    ck_assert_int_eq(cards, 5);
    ck_assert_int_eq(imgs, 5 * 11);
    ck_assert_ptr_nonnull(strstr((const char *)b.p, want));
    buf_free(&b);
    snprintf(log, sizeof log, "%s/audit-one.log", dir);
    const char *one_args[] = {"--audit", "--model", model, "--data", one, NULL};
    ck_assert(!exited_ok(tool_run(log, one_args)));
    ck_assert(file_has(log, "at least 2 classes") || file_has(log, "more than 10 samples"));
}
END_TEST

START_TEST(calibrate_cli) {
    ck_assert_int_eq(setup_all(), 0);
    char log[500], out[500];
    snprintf(log, sizeof log, "%s/calibrate.log", dir);
    int st = calibrate(served, data, NULL, NULL, log);
    if (!exited_ok(st))
        log_dump(log);
    ck_assert(exited_ok(st));
    ck_assert(file_has(log, "before") && file_has(log, "after") && file_has(log, "unchanged"));
    /* A far below 1 / (21 different pairs): refused, nothing written. */
    snprintf(out, sizeof out, "%s/never.safetensors", dir);
    snprintf(log, sizeof log, "%s/calibrate-far.log", dir);
    st = calibrate(out, data, "--far", "1e-6", log);
    ck_assert(!exited_ok(st));
    ck_assert_msg(file_has(log, "smallest supported rate"), "no smallest rate in the message");
    ck_assert_int_ne(access(out, F_OK), 0);
    snprintf(log, sizeof log, "%s/calibrate-one.log", dir);
    st = calibrate(out, one, NULL, NULL, log);
    ck_assert(!exited_ok(st));
    ck_assert(file_has(log, "at least 2 classes"));
    ck_assert_int_ne(access(out, F_OK), 0);
}
END_TEST

static Daemon D;

static void start_served(void) {
    const char *args[] = {"--model", served, "--db", db, NULL};
    char log[500];
    snprintf(log, sizeof log, "%s/daemon.log", dir);
    ck_assert_msg(daemon_start(&D, log, args) == 0, "daemon did not start");
}

static cJSON *model_info(void) {
    Resp r = http_get(D.port, "/model");
    ASSERT_JSON(r, 200);
    cJSON *o = cJSON_Duplicate(r.json, 1);
    resp_free(&r);
    return o;
}

static Resp verify_by(const char *k, const char *v) {
    Buf a = img_pgm(5, 28, 28), b = img_pgm(6, 28, 28);
    Field f[] = {IMAGE("a", a), IMAGE("b", b), TEXT(k, v), TEXT("threshold", "0.5")};
    Resp r = post_multipart(D.port, "/verify", f, strcmp(k, "both") == 0 ? 4 : 3, NULL);
    buf_free(&a);
    buf_free(&b);
    return r;
}

START_TEST(far_on_verify) {
    start_served();
    cJSON *m = model_info();
    const cJSON *ops = cJSON_GetObjectItem(m, "operating_points");
    ck_assert_msg(cJSON_IsObject(ops), "GET /model has no operating points");
    double neg = jnum(ops, "negatives"), min_far = jnum(ops, "min_far");
    ck_assert_double_eq(neg, 21); /* the recipe's pairs: 3 classes of 8, 7 of each kind each */
    ck_assert_double_eq_tol(min_far, 1.0 / 21, 1e-12);
    ck_assert_ptr_nonnull(strstr(jstr(ops, "source"), "calibration"));
    cJSON_Delete(m);

    Resp r = verify_by("far", "0.1");
    ASSERT_JSON(r, 200);
    double thr = jnum(r.json, "threshold"), d = jnum(r.json, "distance");
    ck_assert_double_eq_tol(jnum(r.json, "far"), 0.1, 1e-12);
    ck_assert(isfinite(thr) && thr >= 0);
    ck_assert_str_eq(jstr(r.json, "verdict"), d < thr ? "same" : "different");
    double efar = jnum(r.json, "estimated_far"), efrr = jnum(r.json, "estimated_frr");
    ck_assert(efar >= 0 && efar <= 1 && efrr >= 0 && efrr <= 1);
    resp_free(&r);
    /* The threshold of a larger rate is at least as large. */
    r = verify_by("far", "0.9");
    ASSERT_JSON(r, 200);
    ck_assert_double_ge(jnum(r.json, "threshold"), thr);
    resp_free(&r);
    /* Too small a rate, not a rate, both fields. */
    r = verify_by("far", "1e-4");
    ASSERT_JSON(r, 400);
    ck_assert_str_eq(jstr(cJSON_GetObjectItem(r.json, "error"), "code"), "far_unsupported");
    ck_assert_ptr_nonnull(strstr(r.body, "smallest supported rate is 0.0476"));
    resp_free(&r);
    static const char *const bad[] = {"abc", "0", "-0.1", "1.5", "nan", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = verify_by("far", bad[i]);
        ck_assert_msg(r.status == 400, "far=%s: status %ld", bad[i], r.status);
        resp_free(&r);
    }
    r = verify_by("both", "0.1");
    ASSERT_JSON(r, 400);
    resp_free(&r);
    daemon_stop(&D);
}
END_TEST

static Resp identify_with(const char *k, const char *v) {
    Buf x = img_pgm(7, 28, 28);
    Field f[] = {IMAGE("image", x), TEXT(k, v)};
    Resp r = post_multipart(D.port, "/identify", f, k ? 2 : 1, NULL);
    buf_free(&x);
    return r;
}

START_TEST(identify_open_set) {
    start_served();
    Buf x = img_pgm(7, 28, 28);
    Field f[] = {TEXT("subject", "alice"), IMAGE("image", x)};
    Resp r = post_multipart(D.port, "/enroll", f, 2, NULL);
    ASSERT_JSON(r, 201);
    resp_free(&r);
    buf_free(&x);
    r = identify_with("threshold", "100");
    ASSERT_JSON(r, 200);
    ck_assert_str_eq(jstr(r.json, "identified"), "alice");
    resp_free(&r);
    r = identify_with("threshold", "0");
    ASSERT_JSON(r, 200);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r.json, "identified")));
    resp_free(&r);
    /* By far: the rate is echoed, and the match carries its estimates. */
    r = identify_with("far", "0.5");
    ASSERT_JSON(r, 200);
    ck_assert_double_eq_tol(jnum(r.json, "far"), 0.5, 1e-12);
    const cJSON *m0 = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "matches"), 0);
    ck_assert(isfinite(jnum(m0, "estimated_far")) && isfinite(jnum(m0, "estimated_frr")));
    int under = jnum(m0, "distance") < jnum(r.json, "threshold");
    ck_assert(under ? jstr(r.json, "identified") != NULL
                    : cJSON_IsNull(cJSON_GetObjectItem(r.json, "identified")));
    resp_free(&r);
    r = identify_with("far", "1e-5");
    ASSERT_JSON(r, 400);
    resp_free(&r);
    daemon_stop(&D);
}
END_TEST

/* GET /model's threshold. */
static double served_threshold(void) {
    cJSON *m = model_info();
    double t = jnum(m, "threshold");
    cJSON_Delete(m);
    return t;
}

START_TEST(reload_while_serving) {
    char log[500];
    start_served();
    double before = served_threshold();
    /* Recalibrate the served file for a high FAR: another threshold. */
    snprintf(log, sizeof log, "%s/recalibrate.log", dir);
    ck_assert(exited_ok(calibrate(served, data, "--far", "0.9", log)));
    ck_assert_double_eq(served_threshold(), before); /* not before a reload */
    ck_assert_int_eq(kill(D.pid, SIGHUP), 0);
    double after = before;
    for (int i = 0; i < 100 && after == before; i++) {
        usleep(50000);
        after = served_threshold();
    }
    ck_assert_msg(after > before, "SIGHUP did not reload (%g -> %g)", before, after);
    /* Back to the accuracy threshold, through the admin route. */
    ck_assert(exited_ok(calibrate(served, data, NULL, NULL, log)));
    Resp r = post_multipart(D.port, "/admin/reload", NULL, 0, NULL);
    ASSERT_JSON(r, 200);
    ck_assert_double_eq(jnum(r.json, "threshold"), before);
    resp_free(&r);
    ck_assert_double_eq(served_threshold(), before);
    /* Other weights at the path: refused, the calibration stays. */
    ck_assert_int_eq(model_make(served, 22, NULL), 0);
    r = post_multipart(D.port, "/admin/reload", NULL, 0, NULL);
    ASSERT_JSON(r, 409);
    ck_assert_str_eq(jstr(cJSON_GetObjectItem(r.json, "error"), "code"), "weights_changed");
    resp_free(&r);
    ck_assert_double_eq(served_threshold(), before);
    ck_assert_int_eq(kill(D.pid, SIGHUP), 0); /* logged, still serving */
    usleep(200000);
    ck_assert_double_eq(served_threshold(), before);
    ck_assert(exited_ok(daemon_stop(&D)));
}
END_TEST

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: test_operating SIAMESED MKMODEL SRCROOT\n");
        return 2;
    }
    static char bin[2][4096];
    if (!realpath(argv[1], bin[0]) || !realpath(argv[2], bin[1]))
        return 2;
    H.siamesed = bin[0], H.mkmodel = bin[1], H.srcroot = argv[3];
    const char *tmp = getenv("TMPDIR");
    snprintf(H.root, sizeof H.root, "%s/siamesed-op.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(H.root)) {
        fprintf(stderr, "test_operating: cannot prepare %s\n", H.root);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    Suite *s = suite_create("operating");
    TCase *tc = tcase_create("operating");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, calibrate_cli); /* writes `served`, which the others serve */
    tcase_add_test(tc, audit_cli);
    tcase_add_test(tc, far_on_verify);
    tcase_add_test(tc, identify_open_set);
    tcase_add_test(tc, reload_while_serving);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK); /* the tests run in order on one scratch dir */
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    if (failed || harness_failures) {
        fprintf(stderr, "test_operating: logs kept in %s\n", H.root);
        return 1;
    }
    tree_remove(H.root);
    return 0;
}
