/*
 * test_daemon_models.c — model files and the store they meet:
 *   - a mistyped --model over a database with samples trains nothing: it
 *     names the model that made them and leaves database and model alone;
 *   - --train without --out does not replace an existing model file unless
 *     --force;
 *   - the model/store mismatch names both fingerprints and the exact
 *     `siamesed --reembed --model ... --db ...`; without kept images it says
 *     what the options are instead;
 *   - `siamesed --info MODEL [--db DB]` prints the file's fingerprint,
 *     architecture, threshold and metrics, and whether the store matches;
 *     a file that is not a model is "not a safetensors file", or "a
 *     safetensors file, but not a siamesed model";
 *   - GET /model reports the quality verdict ("unmeasured" for a model with
 *     no recorded metrics).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon_harness.h"

/* A scratch dir, its database, and fingerprints of models A and B. */
typedef struct {
    char dir[320], db[400], fp_a[80], fp_b[80];
} Fixture;

/* Serves model on db briefly: enrolls one image (keep_images as given) when
 * enroll is set; returns the served fingerprint in fp. */
static void serve_once(const char *model, const char *db, const char *keep, int enroll, char *fp,
                       const char *log) {
    Daemon d;
    const char *args[] = {"--model", model, "--db", db, "--keep-images", keep, NULL};
    ck_assert_msg(daemon_start(&d, log, args) == 0, "daemon on %s did not start", model);
    snprintf(fp, 80, "%s", fingerprint(d.port));
    if (enroll) {
        Buf img = img_file("fm0_c9.png");
        Field f[] = {TEXT("subject", "m-1"), IMAGE("image", img)};
        Resp r = post_multipart(d.port, "/enroll", f, 2, NULL);
        ASSERT_JSON(r, 201);
        resp_free(&r);
        buf_free(&img);
    }
    ck_assert(exited_ok(daemon_stop(&d)));
}

/* A database with one sample made by model A (images kept or not). */
static void fixture(Fixture *x, const char *tag, const char *keep) {
    char log[400], other_db[400];
    ck_assert_int_eq(scratch_dir(tag, x->dir, sizeof x->dir), 0);
    snprintf(x->db, sizeof x->db, "%s/siamesed.db", x->dir);
    snprintf(other_db, sizeof other_db, "%s/b.db", x->dir);
    snprintf(log, sizeof log, "%s/a.log", x->dir);
    serve_once(H.model_a, x->db, keep, 1, x->fp_a, log);
    snprintf(log, sizeof log, "%s/b.log", x->dir);
    serve_once(H.model_b, other_db, "yes", 0, x->fp_b, log);
    ck_assert_str_ne(x->fp_a, x->fp_b);
}

/* Runs siamesed args; asserts exit 1; the log's path in log. */
static void run_fails(const Fixture *x, const char *name, const char *const *args, char *log) {
    snprintf(log, 400, "%s/%s.log", x->dir, name);
    int st = tool_run(log, args);
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 1))
        log_dump(log);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s: wait status 0x%x", name, st);
}

/* 1 when the two files have the same bytes. */
static int same_file(const char *a, const char *b) {
    Buf x, y;
    if (buf_read_file(a, &x) < 0)
        return 0;
    if (buf_read_file(b, &y) < 0)
        return buf_free(&x), 0;
    int same = x.len == y.len && memcmp(x.p, y.p, x.len) == 0;
    buf_free(&x);
    buf_free(&y);
    return same;
}

static void copy_file(const char *from, const char *to) {
    Buf b;
    ck_assert_int_eq(buf_read_file(from, &b), 0);
    FILE *f = fopen(to, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b.p, 1, b.len, f), b.len);
    ck_assert_int_eq(fclose(f), 0);
    buf_free(&b);
}

START_TEST(mistyped_model_trains_nothing) {
    Fixture x;
    char log[400], typo[400], nodata[400], before[400];
    fixture(&x, "models-typo", "yes");
    snprintf(before, sizeof before, "%s/before.db", x.dir);
    copy_file(x.db, before);
    snprintf(typo, sizeof typo, "%s/modle.safetensors", x.dir);
    snprintf(nodata, sizeof nodata, "%s/no-data", x.dir);
    /* train_if_missing is on: without the guard this would train over the store. */
    const char *args[] = {"--model", typo,       "--db",        x.db, "--data",
                          nodata,    "--listen", "127.0.0.1:0", NULL};
    run_fails(&x, "typo", args, log);
    char want[64];
    snprintf(want, sizeof want, "made by model %.12s", x.fp_a);
    ck_assert_msg(file_has(log, want), "the refusal does not name model %.12s", x.fp_a);
    ck_assert(file_has(log, "--info"));
    ck_assert_msg(access(typo, F_OK) != 0, "a model was written at the mistyped path");
    ck_assert_msg(same_file(x.db, before), "the database changed");
    ck_assert_msg(!file_has(log, "train:"), "training started");
}
END_TEST

START_TEST(train_does_not_overwrite_without_force) {
    Fixture x;
    char log[400], model[400], nodata[400];
    ck_assert_int_eq(scratch_dir("models-force", x.dir, sizeof x.dir), 0);
    snprintf(model, sizeof model, "%s/serving.safetensors", x.dir);
    snprintf(nodata, sizeof nodata, "%s/no-data", x.dir);
    copy_file(H.model_a, model);
    const char *args[] = {"--train", "--model", model, "--data", nodata, NULL};
    run_fails(&x, "noforce", args, log);
    ck_assert(file_has(log, "exists") && file_has(log, "--out") && file_has(log, "--force"));
    ck_assert(!file_has(log, "no training data")); /* refused before loading anything */
    ck_assert(same_file(model, H.model_a));
    /* With --force the run goes on (and fails here on the missing data). */
    const char *forced[] = {"--train", "--model", model, "--data", nodata, "--force", NULL};
    run_fails(&x, "force", forced, log);
    ck_assert(!file_has(log, "--force to replace"));
    ck_assert(same_file(model, H.model_a));
}
END_TEST

START_TEST(mismatch_names_both_and_the_fix) {
    Fixture x;
    char log[400], want[1200];
    fixture(&x, "models-mismatch", "yes");
    const char *args[] = {
        "--model", H.model_b, "--db", x.db, "--listen", "127.0.0.1:0", "--train-if-missing",
        "no",      NULL};
    run_fails(&x, "mismatch", args, log);
    snprintf(want, sizeof want, "made by model %.12s, not by %s (%.12s)", x.fp_a, H.model_b,
             x.fp_b);
    ck_assert_msg(file_has(log, want), "no '%s'", want);
    snprintf(want, sizeof want, "`siamesed --reembed --model %s --db %s`", H.model_b, x.db);
    ck_assert_msg(file_has(log, want), "no '%s'", want);
    /* Without kept images the options are named instead of a command that would fail. */
    Fixture y;
    fixture(&y, "models-noimg", "no");
    const char *args2[] = {
        "--model", H.model_b, "--db", y.db, "--listen", "127.0.0.1:0", "--train-if-missing",
        "no",      NULL};
    run_fails(&y, "mismatch-noimg", args2, log);
    ck_assert(file_has(log, "1 sample was made by model") &&
              file_has(log, "1 of them has no kept image"));
    ck_assert(file_has(log, "--info") && file_has(log, "new --db"));
    ck_assert(!file_has(log, "--reembed --model"));
}
END_TEST

/* Runs `siamesed --info ARGS` with stdout in the log; asserts exit 0. */
static void info_ok(const Fixture *x, const char *name, const char *const *args, char *log) {
    snprintf(log, 400, "%s/%s.log", x->dir, name);
    int st = tool_run(log, args);
    if (!exited_ok(st))
        log_dump(log);
    ck_assert_msg(exited_ok(st), "%s: wait status 0x%x", name, st);
}

START_TEST(info_describes_model_and_store) {
    Fixture x;
    char log[400], want[200];
    fixture(&x, "models-info", "yes");
    const char *a[] = {"--info", H.model_a, "--db", x.db, NULL};
    info_ok(&x, "info-a", a, log);
    snprintf(want, sizeof want, "fingerprint  %s\n", x.fp_a);
    ck_assert_msg(file_has(log, want), "no full fingerprint");
    ck_assert(file_has(log, "architecture fc128,relu,drop0.1,fc128,relu,drop0.1,fc128,relu (mlp)"));
    ck_assert(file_has(log, "input        28x28"));
    ck_assert(file_has(log, "threshold    0.5000"));
    ck_assert(file_has(log, "quality      unmeasured"));
    ck_assert(file_has(log, "operating    none recorded"));
    ck_assert(file_has(log, "matches (1 sample, all made by this model)"));
    const char *b[] = {"--info", H.model_b, "--db", x.db, NULL};
    info_ok(&x, "info-b", b, log);
    ck_assert(file_has(log, "does not match") && file_has(log, "--reembed --model"));
    /* Not a model: one line, exit 1, in words that say which kind of file it is not. */
    const char *bad[] = {"--info", x.db, NULL};
    run_fails(&x, "info-bad", bad, log);
    ck_assert(file_has(log, "siamesed.db: not a safetensors file ("));
    char foreign[600];
    snprintf(foreign, sizeof foreign, "%s/tests/data/safetensors/valid_nometa.st", H.srcroot);
    const char *other[] = {"--info", foreign, NULL};
    run_fails(&x, "info-foreign", other, log);
    ck_assert(file_has(log, "a safetensors file, but not a siamesed model"));
    const char *both[] = {"--info", H.model_a, "--model", H.model_b, NULL};
    run_fails(&x, "info-both", both, log);
    ck_assert(file_has(log, "name the model once"));
}
END_TEST

/* Serves a model whose recorded validation AUC is auc (NULL: none recorded);
 * asserts GET /model's quality and whether the start-up log warned. */
static void quality_is(const char *tag, const char *auc, const char *want, int warned) {
    char dir[320], db[400], log[400], model[400], training[128];
    Daemon d;
    ck_assert_int_eq(scratch_dir(tag, dir, sizeof dir), 0);
    snprintf(db, sizeof db, "%s/siamesed.db", dir);
    snprintf(log, sizeof log, "%s/run.log", dir);
    snprintf(model, sizeof model, "%s/model.safetensors", dir);
    snprintf(training, sizeof training, "{\"validation\":{\"roc_auc\":%s}}", auc ? auc : "0");
    ck_assert_int_eq(model_make_trained(model, 5, NULL, auc ? training : NULL), 0);
    const char *args[] = {"--model", model, "--db", db, NULL};
    ck_assert_int_eq(daemon_start(&d, log, args), 0);
    Resp r = http_get(d.port, "/model");
    ASSERT_JSON(r, 200);
    ck_assert_str_eq(jstr(r.json, "quality"), want);
    resp_free(&r);
    ck_assert(exited_ok(daemon_stop(&d)));
    ck_assert_int_eq(file_has(log, "below the floor 0.60"), warned);
}

START_TEST(model_route_reports_quality) {
    quality_is("models-q-none", NULL, "unmeasured", 0);
    quality_is("models-q-low", "0.52", "below_floor", 1);
    quality_is("models-q-edge", "0.6", "ok", 0);
    quality_is("models-q-good", "0.93", "ok", 0);
}
END_TEST

TCase *tcase_models(void) {
    TCase *tc = tcase_create("models");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, mistyped_model_trains_nothing);
    tcase_add_test(tc, train_does_not_overwrite_without_force);
    tcase_add_test(tc, mismatch_names_both_and_the_fix);
    tcase_add_test(tc, info_describes_model_and_store);
    tcase_add_test(tc, model_route_reports_quality);
    return tc;
}
