/*
 * test_daemon_bulk.c — `siamesed --enroll --data DIR`:
 *   - an image directory: each folder a subject; an image that does not
 *     decode fails the run (what came before it stays), and with
 *     --skip-bad-images a rerun skips it and everything already enrolled, so
 *     a third run enrolls nothing; the daemon then serves exactly those
 *     samples and identify finds them;
 *   - a folder name that is not a subject id is refused before anything is
 *     stored; a DIR with train/ and test/ enrolls its train split;
 *   - an IDX set: subject = label, resumable the same way.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon_harness.h"

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static void copy_img(const char *name, const char *dir, const char *as) {
    char path[600];
    Buf b = img_file(name);
    snprintf(path, sizeof path, "%s/%s", dir, as);
    write_file(path, b.p, b.len);
    buf_free(&b);
}

/* Runs --enroll of data into db (extra: one more flag pair or NULL); the
 * wait status; the log in log. */
static int bulk(const char *data, const char *db, const char *extra, const char *log) {
    const char *args[] = {
        "--enroll",           "--data", data, "--db", db, "--model", H.model_a, extra,
        extra ? "yes" : NULL, NULL};
    int st = tool_run(log, args);
    ck_assert_msg(!log_has_sanitizer_report(log), "sanitizer report from --enroll");
    return st;
}

static int64_t subject_total(int port, const char *subject) {
    char path[200];
    snprintf(path, sizeof path, "/subjects/%s", subject);
    Resp r = http_get(port, path);
    ASSERT_JSON(r, 200);
    int64_t n = (int64_t)jnum(r.json, "sample_count");
    resp_free(&r);
    return n;
}

START_TEST(image_dir_resumes) {
    char dir[320], data[400], db[400], sub[500], log[500];
    ck_assert_int_eq(scratch_dir("bulk", dir, sizeof dir), 0);
    snprintf(data, sizeof data, "%s/gallery", dir);
    snprintf(db, sizeof db, "%s/bulk.db", dir);
    mkdir(data, 0755);
    snprintf(sub, sizeof sub, "%s/alice", data);
    mkdir(sub, 0755);
    copy_img("fm0_c9.png", sub, "a.png");
    copy_img("fm2_c1.png", sub, "b.png");
    snprintf(sub, sizeof sub, "%s/bob", data);
    mkdir(sub, 0755);
    copy_img("fm3_c1.png", sub, "c.png");
    write_file(strcat(sub, "/d.png"), "not an image", 12);

    snprintf(log, sizeof log, "%s/run1.log", dir);
    int st = bulk(data, db, NULL, log);
    ck_assert_msg(!exited_ok(st) && file_has(log, "d.png"), "a bad image did not fail the run");
    snprintf(log, sizeof log, "%s/run2.log", dir);
    st = bulk(data, db, "--skip-bad-images", log);
    if (!exited_ok(st))
        log_dump(log);
    ck_assert(exited_ok(st));
    ck_assert_msg(file_has(log, "1 enrolled, 2 already there, 1 bad"), "second run: wrong counts");
    snprintf(log, sizeof log, "%s/run3.log", dir);
    ck_assert(exited_ok(bulk(data, db, "--skip-bad-images", log)));
    ck_assert_msg(file_has(log, "0 enrolled, 3 already there, 1 bad"), "third run: wrong counts");

    Daemon d;
    const char *args[] = {"--model", H.model_a, "--db", db, NULL};
    snprintf(log, sizeof log, "%s/daemon.log", dir);
    ck_assert_int_eq(daemon_start(&d, log, args), 0);
    ck_assert_int_eq(subject_total(d.port, "alice"), 2);
    ck_assert_int_eq(subject_total(d.port, "bob"), 1);
    Buf c = img_file("fm3_c1.png");
    Field f[] = {IMAGE("image", c), TEXT("k", "2")};
    Resp r = post_multipart(d.port, "/identify?exact=1", f, 2, NULL);
    ASSERT_JSON(r, 200);
    const cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "matches"), 0);
    ck_assert_str_eq(jstr(m, "subject"), "bob");
    ck_assert_double_eq_tol(jnum(m, "distance"), SAME_DISTANCE, 1e-6);
    resp_free(&r);
    buf_free(&c);
    ck_assert(exited_ok(daemon_stop(&d)));
}
END_TEST

/* DIR with train/ and test/ (the --train layout): the train split goes in. */
START_TEST(split_layout_enrolls_train) {
    char dir[320], data[400], db[400], sub[500], log[500];
    ck_assert_int_eq(scratch_dir("bulksplit", dir, sizeof dir), 0);
    snprintf(data, sizeof data, "%s/set", dir);
    snprintf(db, sizeof db, "%s/bulk.db", dir);
    mkdir(data, 0755);
    const char *const made[] = {"train", "train/carol", "test", "test/dave"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(sub, sizeof sub, "%s/%s", data, made[i]);
        mkdir(sub, 0755);
        if (i % 2)
            copy_img("fm0_c9.png", sub, "a.png");
    }
    snprintf(log, sizeof log, "%s/run.log", dir);
    ck_assert(exited_ok(bulk(data, db, NULL, log)));
    ck_assert_msg(file_has(log, "1 enrolled, 0 already there"), "split layout: wrong counts");
    Daemon d;
    const char *args[] = {"--model", H.model_a, "--db", db, NULL};
    snprintf(log, sizeof log, "%s/daemon.log", dir);
    ck_assert_int_eq(daemon_start(&d, log, args), 0);
    ck_assert_int_eq(subject_total(d.port, "carol"), 1);
    Resp r = http_get(d.port, "/subjects/dave");
    ck_assert_int_eq(r.status, 404);
    resp_free(&r);
    ck_assert(exited_ok(daemon_stop(&d)));
}
END_TEST

START_TEST(bad_folder_name_refused) {
    char dir[320], data[400], db[400], sub[500], log[500];
    ck_assert_int_eq(scratch_dir("bulkname", dir, sizeof dir), 0);
    snprintf(data, sizeof data, "%s/gallery", dir);
    snprintf(db, sizeof db, "%s/bulk.db", dir);
    mkdir(data, 0755);
    snprintf(sub, sizeof sub, "%s/no spaces", data);
    mkdir(sub, 0755);
    copy_img("fm0_c9.png", sub, "a.png");
    snprintf(log, sizeof log, "%s/run.log", dir);
    ck_assert(!exited_ok(bulk(data, db, NULL, log)));
    ck_assert(file_has(log, "no spaces"));
    struct stat stb;
    ck_assert_msg(stat(db, &stb) != 0, "the database was created anyway");
}
END_TEST

/* A big-endian IDX header of ndim dimensions. */
static size_t idx_header(uint8_t *b, int ndim, const int *dims) {
    b[0] = b[1] = 0, b[2] = 8, b[3] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++)
        for (int j = 0; j < 4; j++)
            b[4 + 4 * i + j] = (uint8_t)((unsigned)dims[i] >> (24 - 8 * j));
    return 4 + 4 * (size_t)ndim;
}

START_TEST(idx_subject_is_label) {
    enum { N = 5 };
    char dir[320], path[500], db[400], log[500];
    ck_assert_int_eq(scratch_dir("bulkidx", dir, sizeof dir), 0);
    snprintf(db, sizeof db, "%s/bulk.db", dir);
    static uint8_t img[16 + N * 28 * 28], lab[8 + N];
    const int idims[3] = {N, 28, 28}, ldims[1] = {N};
    size_t h = idx_header(img, 3, idims);
    for (size_t i = h; i < sizeof img; i++)
        img[i] = (uint8_t)(i * 37 % 251);
    size_t hl = idx_header(lab, 1, ldims);
    const uint8_t labels[N] = {3, 1, 3, 7, 1};
    memcpy(lab + hl, labels, N);
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
    write_file(path, img, sizeof img);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir);
    write_file(path, lab, sizeof lab);

    snprintf(log, sizeof log, "%s/run1.log", dir);
    ck_assert(exited_ok(bulk(dir, db, NULL, log)));
    ck_assert_msg(file_has(log, "5 enrolled, 0 already there"), "first IDX run: wrong counts");
    snprintf(log, sizeof log, "%s/run2.log", dir);
    ck_assert(exited_ok(bulk(dir, db, NULL, log)));
    ck_assert_msg(file_has(log, "0 enrolled, 5 already there"), "second IDX run: wrong counts");
    Daemon d;
    const char *args[] = {"--model", H.model_a, "--db", db, NULL};
    snprintf(log, sizeof log, "%s/daemon.log", dir);
    ck_assert_int_eq(daemon_start(&d, log, args), 0);
    ck_assert_int_eq(subject_total(d.port, "1"), 2);
    ck_assert_int_eq(subject_total(d.port, "3"), 2);
    ck_assert_int_eq(subject_total(d.port, "7"), 1);
    ck_assert(exited_ok(daemon_stop(&d)));
}
END_TEST

TCase *tcase_bulk(void) {
    TCase *tc = tcase_create("bulk");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, image_dir_resumes);
    tcase_add_test(tc, split_layout_enrolls_train);
    tcase_add_test(tc, bad_folder_name_refused);
    tcase_add_test(tc, idx_subject_is_label);
    return tc;
}
