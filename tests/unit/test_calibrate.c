/*
 * test_calibrate.c — unit tests for calibration (calibrate.h) and the
 * operating points in the model file: the table survives save and load, the
 * fingerprint covers the weights and not the threshold or the table;
 * calib_run() on a small image directory writes the threshold and table
 * and leaves the fingerprint alone; one class, an unresolvable far and
 * images that do not fit are refused with nothing written (and by the
 * audit); training stores the table of its validation pairs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_util.h"
#include "siamese/audit.h"
#include "siamese/calibrate.h"
#include "siamese/common.h"
#include "siamese/optable.h"
#include "siamese/train.h"

static char tmp[256];

static void mk_tmp(void) {
    snprintf(tmp, sizeof tmp, "/tmp/sm-calib-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static void rm_tmp(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    ck_assert_int_eq(system(cmd), 0);
}

/* A 28x28 gray PGM: class c is a bright band at rows 7c..7c+6, sample k
 * shifts its brightness a little. */
static void write_pgm(const char *path, int c, int k) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "P5\n28 28\n255\n");
    for (int r = 0; r < 28; r++)
        for (int x = 0; x < 28; x++)
            fputc(r / 7 == c ? 200 + 5 * k : (r * x + k) % 40, f);
    fclose(f);
}

/* DIR/<class>/<k>.pgm for classes 0..n_classes-1, per images each. */
static void write_dataset(const char *dir, int n_classes, int per) {
    char p[512];
    mkdir(dir, 0700);
    for (int c = 0; c < n_classes; c++) {
        snprintf(p, sizeof p, "%s/class%d", dir, c);
        mkdir(p, 0700);
        for (int k = 0; k < per; k++) {
            snprintf(p, sizeof p, "%s/class%d/%d.pgm", dir, c, k);
            write_pgm(p, c, k);
        }
    }
}

static Model *new_model(const char *input_spec, int c) {
    ModelArch a;
    Model *m = NULL;
    char err[SM_ERRMAX];
    ck_assert_int_eq(net_parse(input_spec, 28, 28, c, &a, err), 0);
    ck_assert_int_eq(model_create(&a, 7, &m, err), 0);
    return m;
}

START_TEST(test_model_keeps_table) {
    mk_tmp();
    char p1[300], p2[300], err[SM_ERRMAX];
    snprintf(p1, sizeof p1, "%s/a.safetensors", tmp);
    snprintf(p2, sizeof p2, "%s/b.safetensors", tmp);
    Model *m = new_model("mlp", 1), *l = NULL;
    ck_assert_ptr_null(model_operating_points(m));
    ck_assert_int_eq(model_save(m, p1, err), 0);
    char fp[65];
    snprintf(fp, sizeof fp, "%s", model_fingerprint(m));
    float d[4] = {0.1f, 0.9f, 0.2f, 1.3f}, y[4] = {1, 0, 1, 0};
    OpTable *t = NULL;
    ck_assert_int_eq(optable_build(d, y, 4, "validation", &t, err), 0);
    model_set_operating_points(m, t);
    model_set_threshold(m, 0.77f);
    ck_assert_int_eq(model_save(m, p2, err), 0);
    /* Same weights, another threshold and a table: the same fingerprint. */
    ck_assert_str_eq(model_fingerprint(m), fp);
    ck_assert_int_eq(model_load(p2, &l, err), 0);
    ck_assert_str_eq(model_fingerprint(l), fp);
    ck_assert_float_eq(model_threshold(l), 0.77f);
    const OpTable *lt = model_operating_points(l);
    ck_assert_ptr_nonnull(lt);
    ck_assert_int_eq(optable_negatives(lt), 2);
    ck_assert_int_eq(optable_points(lt), optable_points(model_operating_points(m)));
    model_free(l);
    /* A model file without the table still loads, with none. */
    ck_assert_int_eq(model_load(p1, &l, err), 0);
    ck_assert_ptr_null(model_operating_points(l));
    model_free(l);
    model_free(m);
    rm_tmp();
}
END_TEST

static CalibConfig config_of(const char *model, const char *data, const char *out) {
    return (CalibConfig){.model = model, .data = data, .out = out, .pairs = PAIRS_ALL, .seed = 3};
}

START_TEST(test_calibrate_run) {
    mk_tmp();
    char mp[300], out[300], data[300], err[SM_ERRMAX];
    snprintf(mp, sizeof mp, "%s/m.safetensors", tmp);
    snprintf(out, sizeof out, "%s/m2.safetensors", tmp);
    snprintf(data, sizeof data, "%s/data", tmp);
    write_dataset(data, 3, 6);
    Model *m = new_model("mlp", 1), *l = NULL;
    model_set_threshold(m, 1e5f); /* accepts everything: accuracy 0.5 before */
    ck_assert_int_eq(model_save(m, mp, err), 0);
    CalibConfig cc = config_of(mp, data, out);
    ck_assert_msg(calib_run(&cc, err) == 0, "%s", err);
    ck_assert_int_eq(model_load(out, &l, err), 0);
    ck_assert_str_eq(model_fingerprint(l), model_fingerprint(m));
    ck_assert_float_lt(model_threshold(l), 1e5f);
    const OpTable *t = model_operating_points(l);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(optable_positives(t), 18); /* PAIRS_ALL: one of each per image */
    ck_assert_int_eq(optable_negatives(t), 18);
    ck_assert_ptr_nonnull(strstr(optable_source(t), "calibration: "));
    model_free(l);
    /* A far the 18 different pairs resolve: its threshold is the table's. */
    cc.far = 1.0 / 9;
    ck_assert_msg(calib_run(&cc, err) == 0, "%s", err);
    ck_assert_int_eq(model_load(out, &l, err), 0);
    float want;
    ck_assert_int_eq(
        optable_threshold_at_far(model_operating_points(l), 1.0 / 9, &want, NULL, NULL, err), 0);
    ck_assert_float_eq(model_threshold(l), want);
    model_free(l);
    /* One they do not: refused, nothing written. */
    unlink(out);
    cc.far = 1e-3;
    ck_assert_int_eq(calib_run(&cc, err), -ERANGE);
    ck_assert_ptr_nonnull(strstr(err, "0.0556"));
    ck_assert_int_ne(access(out, F_OK), 0);
    model_free(m);
    rm_tmp();
}
END_TEST

START_TEST(test_calibrate_refuses) {
    mk_tmp();
    char mp[300], mp3[300], out[300], one[300], data[300], err[SM_ERRMAX];
    snprintf(mp, sizeof mp, "%s/m.safetensors", tmp);
    snprintf(mp3, sizeof mp3, "%s/rgb.safetensors", tmp);
    snprintf(out, sizeof out, "%s/out.safetensors", tmp);
    snprintf(one, sizeof one, "%s/one", tmp);
    snprintf(data, sizeof data, "%s/data", tmp);
    write_dataset(one, 1, 5);
    write_dataset(data, 2, 4);
    Model *m = new_model("mlp", 1), *rgb = new_model("mlp", 3);
    ck_assert_int_eq(model_save(m, mp, err), 0);
    ck_assert_int_eq(model_save(rgb, mp3, err), 0);
    CalibConfig cc = config_of(mp, one, out);
    ck_assert_int_eq(calib_run(&cc, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "at least 2 classes"));
    cc = config_of(mp3, data, out);
    ck_assert_int_eq(calib_run(&cc, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "the model takes 28x28x3"));
    ck_assert_int_ne(access(out, F_OK), 0);
    /* The audit refuses images the model does not take, the same way. */
    AuditConfig ac = {.model = mp3, .data = data, .top = 5, .out = stdout};
    ck_assert_int_eq(audit_run(&ac, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "the model takes 28x28x3"));
    model_free(m);
    model_free(rgb);
    rm_tmp();
}
END_TEST

/* Training stores the table of its validation pairs. */
START_TEST(test_training_fills_table) {
    mk_tmp();
    char data[300], err[SM_ERRMAX];
    snprintf(data, sizeof data, "%s/data", tmp);
    write_dataset(data, 3, 12);
    Dataset *d = NULL;
    Model *m = NULL;
    ck_assert_int_eq(dataset_load(data, DATASET_TRAIN, 28, 28, NULL, &d, err), 0);
    TrainConfig tc;
    TrainReport rep;
    train_config_default(&tc);
    tc.epochs = 1, tc.val_fraction = 0.25, tc.progress = NULL;
    ck_assert_msg(train_run(&tc, d, NULL, &m, &rep, err) == 0, "%s", err);
    const OpTable *t = model_operating_points(m);
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(optable_source(t), "validation");
    ck_assert_int_eq(optable_negatives(t), (int64_t)rep.val.negatives);
    ck_assert_int_eq(optable_positives(t), (int64_t)rep.val.positives);
    model_free(m);
    dataset_free(d);
    rm_tmp();
}
END_TEST

int main(void) {
    Suite *s = suite_create("calibrate");
    TCase *tc = tcase_create("calibrate");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_model_keeps_table);
    tcase_add_test(tc, test_calibrate_run);
    tcase_add_test(tc, test_calibrate_refuses);
    tcase_add_test(tc, test_training_fills_table);
    suite_add_tcase(s, tc);
    return check_run(s);
}
