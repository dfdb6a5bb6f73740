/*
 * test_daemon.c — the siamesed daemon end to end: the real binary, started on
 * a free loopback port with a seeded random model (mkmodel) and its own
 * database, driven over HTTP with libcurl, answers parsed with cJSON.
 *
 * usage: test_daemon SIAMESED MKMODEL SRCROOT   (meson passes all three)
 *
 * This file holds main(), the shared-daemon fixture and the route tests:
 * every route's status, Content-Type and JSON values (verify of an image with
 * itself is sqrt(1e-7); /verify equals the distance between the /embed
 * vectors; identify ranks the enrolled subject first; enroll, get and delete
 * keep the index in step). The other test cases are in test_daemon_list.c
 * (pagination, size limits, metrics), test_daemon_input.c (both body encodings, malformed
 * requests), test_daemon_access.c (API keys, the OpenAPI document) and
 * test_daemon_life.c (restarts, kill -9, concurrency, model change, signals,
 * TLS). Run one case with CK_RUN_CASE=routes|input|access|openapi|lifecycle.
 */
#include <check.h>
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon_harness.h"

int harness_failures;

void shared_start(Shared *s, const char *tag, const char *const *extra) {
    const char *args[40] = {"--model", H.model_a, "--db", s->db};
    int n = 4;
    char log[400];
    memset(s, 0, sizeof *s);
    if (scratch_dir(tag, s->dir, sizeof s->dir) < 0) {
        fprintf(stderr, "%s: cannot make a scratch directory\n", tag);
        harness_failures++;
        return;
    }
    snprintf(s->db, sizeof s->db, "%s/data/siamesed.db", s->dir);
    snprintf(log, sizeof log, "%s/daemon.log", s->dir);
    for (int i = 0; extra && extra[i] && n < 39; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    if (daemon_start(&s->d, log, args) < 0) {
        fprintf(stderr, "%s: the daemon did not start (wait status 0x%x)\n", tag, s->d.status);
        log_dump(log);
        s->d.port = 0;
        harness_failures++;
    }
}

void shared_stop(Shared *s) {
    if (!s->d.pid)
        return;
    int st = daemon_stop(&s->d);
    if (!exited_ok(st)) {
        fprintf(stderr, "%s: the daemon did not exit 0 on SIGTERM (wait status 0x%x)\n", s->dir,
                st);
        log_dump(s->d.log);
        harness_failures++;
    }
    if (log_has_sanitizer_report(s->d.log)) {
        fprintf(stderr, "%s: the daemon printed a sanitizer report\n", s->dir);
        log_dump(s->d.log);
        harness_failures++;
    }
}

/* ---- helpers the test files share (they assert) ---- */

void enroll(int port, const char *subject, const Buf *imgs, int n, const char *metadata,
            double *ids) {
    Field f[10] = {TEXT("subject", subject)};
    int k = 1;
    ck_assert_int_le(n, 8);
    for (int i = 0; i < n; i++)
        f[k++] = IMAGE("image", imgs[i]);
    if (metadata)
        f[k++] = JRAW("metadata", metadata);
    Resp r = post_multipart(port, "/enroll", f, k, NULL);
    ASSERT_JSON(r, 201);
    cJSON *samples = cJSON_GetObjectItem(r.json, "samples");
    ck_assert_int_eq(cJSON_GetArraySize(samples), n);
    for (int i = 0; ids && i < n; i++)
        ids[i] = jnum(cJSON_GetArrayItem(samples, i), "sample");
    resp_free(&r);
}

const char *fingerprint(int port) {
    static char fp[80];
    Resp r = http_get(port, "/model");
    ASSERT_JSON(r, 200);
    snprintf(fp, sizeof fp, "%s", jstr(r.json, "fingerprint"));
    resp_free(&r);
    return fp;
}

int is_iso_time(const char *s) {
    static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (!s || strlen(s) != sizeof pat - 1)
        return 0;
    for (size_t i = 0; pat[i]; i++)
        if (pat[i] == 'd' ? s[i] < '0' || s[i] > '9' : s[i] != pat[i])
            return 0;
    return 1;
}

/* ---- helpers of the route tests ---- */

static Shared S;
#define P (S.d.port)

static void routes_setup(void) {
    shared_start(&S, "routes", NULL);
}
static void routes_teardown(void) {
    shared_stop(&S);
}

/* The embedding of one image via /embed (caller frees with cJSON_Delete). */
static cJSON *embed_of(const Buf *img) {
    Field f[] = {IMAGE("image", *img)};
    Resp r = post_multipart(P, "/embed", f, 1, NULL);
    ASSERT_JSON(r, 200);
    cJSON *e = cJSON_Duplicate(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "embeddings"), 0), 1);
    resp_free(&r);
    ck_assert_int_eq(cJSON_GetArraySize(e), 128);
    return e;
}

/* /verify of a and b (threshold NULL: the model's); the reply. */
static Resp verify_ab(const Buf *a, const Buf *b, const char *threshold) {
    Field f[] = {IMAGE("a", *a), IMAGE("b", *b), TEXT("threshold", threshold)};
    return post_multipart(P, "/verify", f, threshold ? 3 : 2, NULL);
}

/* ---- /healthz, /model ---- */

START_TEST(healthz_and_model) {
    ck_assert_msg(P > 0, "the shared daemon did not start");
    Resp r = http_get(P, "/healthz");
    ASSERT_JSON(r, 200);
    ck_assert_str_eq(jstr(r.json, "status"), "ok");
    ck_assert(jnum(r.json, "uptime_s") >= 0);
    resp_free(&r);
    r = http(P, &(Req){.method = "HEAD", .path = "/healthz"});
    ASSERT_STATUS(r, 200);
    ck_assert_uint_eq(r.len, 0);
    resp_free(&r);

    r = http_get(P, "/model");
    ASSERT_JSON(r, 200);
    ck_assert_str_eq(jstr(r.json, "architecture"), "mlp");
    ck_assert_str_eq(jstr(r.json, "arch"), "fc128,relu,drop0.1,fc128,relu,drop0.1,fc128,relu");
    const cJSON *layers = cJSON_GetObjectItem(r.json, "layers"),
                *in = cJSON_GetObjectItem(r.json, "input");
    const char *want[] = {"fc128", "relu", "drop0.1", "fc128", "relu", "drop0.1", "fc128", "relu"};
    ck_assert_int_eq(cJSON_GetArraySize(layers), 8);
    for (int i = 0; i < 8; i++)
        ck_assert_str_eq(cJSON_GetArrayItem(layers, i)->valuestring, want[i]);
    ck_assert_double_eq(jnum(r.json, "parameters"), 784 * 128 + 128 + 2 * (128 * 128 + 128));
    ck_assert_double_eq(jnum(in, "height"), 28);
    ck_assert_double_eq(jnum(in, "width"), 28);
    ck_assert_double_eq(jnum(in, "channels"), 1);
    ck_assert_ptr_nonnull(jstr(in, "preprocess"));
    ck_assert_double_eq(jnum(r.json, "embedding_size"), 128);
    ck_assert_double_eq_tol(jnum(r.json, "threshold"), 0.5, 1e-9);
    ck_assert_double_eq_tol(jnum(r.json, "margin"), 1.0, 1e-9);
    ck_assert(cJSON_IsObject(cJSON_GetObjectItem(r.json, "training")));
    ck_assert_ptr_nonnull(jstr(r.json, "blas_kernel"));
    const char *fp = jstr(r.json, "fingerprint");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(strlen(fp), 64);
    ck_assert_uint_eq(strspn(fp, "0123456789abcdef"), 64);
    resp_free(&r);
}
END_TEST

/* ---- /verify with two images, /embed ---- */

START_TEST(verify_pair_matches_embed) {
    Buf fm0 = img_file("fm0_c9.png"), fm0p = img_file("fm0_c9.pgm"), fm2 = img_file("fm2_c1.png");
    Resp r = verify_ab(&fm0, &fm0, NULL);
    ASSERT_JSON(r, 200);
    ck_assert_double_eq_tol(jnum(r.json, "distance"), SAME_DISTANCE, 1e-6);
    ck_assert_str_eq(jstr(r.json, "verdict"), "same");
    ck_assert_double_eq_tol(jnum(r.json, "threshold"), 0.5, 1e-9);
    ck_assert_double_eq_tol(jnum(r.json, "margin"), 1.0, 1e-9);
    ck_assert_str_eq(jstr(r.json, "fingerprint"), fingerprint(P));
    resp_free(&r);

    /* The same picture as PNG and as PGM decodes to the same pixels. */
    r = verify_ab(&fm0, &fm0p, NULL);
    ASSERT_JSON(r, 200);
    ck_assert_double_eq_tol(jnum(r.json, "distance"), SAME_DISTANCE, 1e-6);
    resp_free(&r);

    cJSON *e0 = embed_of(&fm0), *e2 = embed_of(&fm2);
    double want = json_vec_distance(e0, e2);
    ck_assert_msg(want > 1e-3, "two different images embed alike (%g)", want);
    r = verify_ab(&fm0, &fm2, NULL);
    ASSERT_JSON(r, 200);
    double d = jnum(r.json, "distance");
    ck_assert_msg(fabs(d - want) < 1e-5, "verify %.9g, embed distance %.9g", d, want);
    ck_assert_str_eq(jstr(r.json, "verdict"), d < 0.5 ? "same" : "different");
    resp_free(&r);

    /* The threshold field decides the verdict and is echoed. */
    char thr[32];
    snprintf(thr, sizeof thr, "%.9g", d * 2);
    r = verify_ab(&fm0, &fm2, thr);
    ASSERT_JSON(r, 200);
    ck_assert_str_eq(jstr(r.json, "verdict"), "same");
    ck_assert_double_eq_tol(jnum(r.json, "threshold"), d * 2, 1e-6 * d);
    resp_free(&r);
    snprintf(thr, sizeof thr, "%.9g", d / 2);
    r = verify_ab(&fm0, &fm2, thr);
    ASSERT_JSON(r, 200);
    ck_assert_str_eq(jstr(r.json, "verdict"), "different");
    resp_free(&r);
    r = verify_ab(&fm0, &fm0, "0");
    ASSERT_JSON(r, 200);
    ck_assert_str_eq(jstr(r.json, "verdict"), "different");
    resp_free(&r);
    cJSON_Delete(e0);
    cJSON_Delete(e2);
    buf_free(&fm0), buf_free(&fm0p), buf_free(&fm2);
}
END_TEST

START_TEST(embed_many_formats) {
    static const char *const names[] = {"fm0_c9.png",
                                        "fm2_c1.png",
                                        "fm3_c1.png",
                                        "baseline.jpg",
                                        "progressive.jpg",
                                        "gray.jpg",
                                        "cmyk_adobe.jpg",
                                        "ycck.jpg",
                                        "palette_trns.png",
                                        "gray2_interlaced.png",
                                        "rgba16_interlaced.png",
                                        "rgb16.ppm",
                                        "fm0_c9.pgm",
                                        "png_ztxt_bomb.png",
                                        "png_iccp_bomb.png"};
    enum { N = sizeof names / sizeof *names };
    Buf img[N];
    Field f[N];
    for (int i = 0; i < N; i++) {
        img[i] = img_file(names[i]);
        f[i] = IMAGE("image", img[i]);
    }
    Resp r = post_multipart(P, "/embed", f, N, NULL);
    ASSERT_JSON(r, 200);
    const cJSON *list = cJSON_GetObjectItem(r.json, "embeddings");
    ck_assert_int_eq(cJSON_GetArraySize(list), N);
    ck_assert_double_eq(jnum(r.json, "embedding_size"), 128);
    ck_assert_str_eq(jstr(r.json, "fingerprint"), fingerprint(P));
    for (int i = 0; i < N; i++) {
        const cJSON *e = cJSON_GetArrayItem(list, i);
        ck_assert_int_eq(cJSON_GetArraySize(e), 128);
        double norm = 0;
        for (int j = 0; j < 128; j++) {
            double v = cJSON_GetArrayItem(e, j)->valuedouble;
            ck_assert_msg(isfinite(v) && v >= 0, "%s[%d] = %g (ReLU output)", names[i], j, v);
            norm += v * v;
        }
        ck_assert_msg(norm > 0, "%s: all-zero embedding", names[i]);
        /* In a batch or alone, an image embeds the same. */
        cJSON *alone = embed_of(&img[i]);
        double d = json_vec_distance(e, alone);
        ck_assert_msg(d < 1e-5, "%s: batch vs alone differ by %g", names[i], d);
        cJSON_Delete(alone);
    }
    /* fm0 as PNG (0) and as PGM (12) are one picture; fm0 and fm2 are not. */
    ck_assert(json_vec_distance(cJSON_GetArrayItem(list, 0), cJSON_GetArrayItem(list, 12)) < 1e-6);
    ck_assert(json_vec_distance(cJSON_GetArrayItem(list, 0), cJSON_GetArrayItem(list, 1)) > 1e-3);
    resp_free(&r);
    for (int i = 0; i < N; i++)
        buf_free(&img[i]);
}
END_TEST

/* ---- enroll, get, delete ---- */

static const cJSON *sample_ids(const Resp *r) {
    return cJSON_GetObjectItem(r->json, "samples");
}

START_TEST(enroll_get_delete) {
    Buf img[3] = {img_file("fm0_c9.png"), img_pgm(1, 28, 28), img_pgm(2, 30, 20)};
    Field f[] = {TEXT("subject", "life-1"), IMAGE("image", img[0]), IMAGE("image", img[1]),
                 JRAW("metadata", "{\"name\":\"Ann\",\"tags\":[\"x\",\"y\"],\"n\":3}")};
    Resp r = post_multipart(P, "/enroll", f, 4, NULL);
    ASSERT_JSON(r, 201);
    ck_assert_str_eq(jstr(r.json, "subject"), "life-1");
    ck_assert_double_eq(jnum(r.json, "sample_count"), 2);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r.json, "created")));
    ck_assert_str_eq(jstr(r.json, "fingerprint"), fingerprint(P));
    ck_assert_int_eq(cJSON_GetArraySize(sample_ids(&r)), 2);
    double id0 = jnum(cJSON_GetArrayItem(sample_ids(&r), 0), "sample");
    double id1 = jnum(cJSON_GetArrayItem(sample_ids(&r), 1), "sample");
    ck_assert(id0 >= 1 && id1 >= 1 && id0 != id1);
    resp_free(&r);

    Field g[] = {TEXT("subject", "life-1"), IMAGE("image", img[2])};
    r = post_multipart(P, "/enroll", g, 2, NULL);
    ASSERT_JSON(r, 201);
    ck_assert_double_eq(jnum(r.json, "sample_count"), 3);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r.json, "created")));
    double id2 = jnum(cJSON_GetArrayItem(sample_ids(&r), 0), "sample");
    ck_assert(id2 > id1 && id2 > id0);
    resp_free(&r);

    r = http_get(P, "/subjects/life-1");
    ASSERT_JSON(r, 200);
    ck_assert_str_eq(jstr(r.json, "subject"), "life-1");
    ck_assert_msg(is_iso_time(jstr(r.json, "created_at")), "created_at %s",
                  jstr(r.json, "created_at"));
    cJSON *meta = cJSON_Parse("{\"name\":\"Ann\",\"tags\":[\"x\",\"y\"],\"n\":3}");
    ck_assert_msg(cJSON_Compare(meta, cJSON_GetObjectItem(r.json, "metadata"), 1), "metadata %s",
                  r.body);
    cJSON_Delete(meta);
    ck_assert_double_eq(jnum(r.json, "sample_count"), 3);
    const cJSON *samples = cJSON_GetObjectItem(r.json, "samples");
    ck_assert_int_eq(cJSON_GetArraySize(samples), 3);
    double want[3] = {id0 < id1 ? id0 : id1, id0 < id1 ? id1 : id0, id2};
    for (int i = 0; i < 3; i++) {
        ck_assert_double_eq(jnum(cJSON_GetArrayItem(samples, i), "sample"), want[i]);
        ck_assert(is_iso_time(jstr(cJSON_GetArrayItem(samples, i), "created_at")));
    }
    resp_free(&r);

    /* New metadata replaces the old. */
    Field h[] = {TEXT("subject", "life-1"), IMAGE("image", img[0]), JRAW("metadata", "{\"v\":2}")};
    r = post_multipart(P, "/enroll", h, 3, NULL);
    ASSERT_JSON(r, 201);
    ck_assert_double_eq(jnum(r.json, "sample_count"), 4);
    double id3 = jnum(cJSON_GetArrayItem(sample_ids(&r), 0), "sample");
    resp_free(&r);
    r = http_get(P, "/subjects/life-1");
    ASSERT_JSON(r, 200);
    ck_assert_double_eq(jnum(cJSON_GetObjectItem(r.json, "metadata"), "v"), 2);
    ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "metadata"), "name"));
    resp_free(&r);

    /* One sample, then the subject. */
    char path[128];
    snprintf(path, sizeof path, "/subjects/life-1/samples/%.0f", id0);
    r = http_delete(P, path);
    ASSERT_JSON(r, 200);
    ck_assert_str_eq(jstr(r.json, "subject"), "life-1");
    ck_assert_double_eq(jnum(r.json, "sample"), id0);
    ck_assert_double_eq(jnum(r.json, "sample_count"), 3);
    resp_free(&r);
    r = http_delete(P, path);
    ASSERT_JSON(r, 404);
    ck_assert_str_eq(error_code(&r), "sample_not_found");
    resp_free(&r);
    /* Deleted samples leave the index: with both fm0 samples gone, the
     * nearest of life-1 to fm0 is one of the others. */
    Field v[] = {TEXT("subject", "life-1"), IMAGE("image", img[0])};
    r = post_multipart(P, "/verify", v, 2, NULL);
    ASSERT_JSON(r, 200);
    ck_assert_double_eq(jnum(r.json, "sample"), id3);
    resp_free(&r);
    snprintf(path, sizeof path, "/subjects/life-1/samples/%.0f", id3);
    r = http_delete(P, path);
    ASSERT_JSON(r, 200);
    resp_free(&r);
    r = post_multipart(P, "/verify", v, 2, NULL);
    ASSERT_JSON(r, 200);
    ck_assert(jnum(r.json, "sample") == id1 || jnum(r.json, "sample") == id2);
    ck_assert(jnum(r.json, "distance") > 1e-3);
    resp_free(&r);

    /* A sample id of another subject is not this subject's. */
    double other;
    enroll(P, "life-2", &img[1], 1, NULL, &other);
    snprintf(path, sizeof path, "/subjects/life-1/samples/%.0f", other);
    r = http_delete(P, path);
    ASSERT_JSON(r, 404);
    resp_free(&r);
    r = http_get(P, "/subjects/life-2");
    ASSERT_JSON(r, 200);
    ck_assert_double_eq(jnum(r.json, "sample_count"), 1);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r.json, "metadata")));
    resp_free(&r);

    r = http_delete(P, "/subjects/life-1");
    ASSERT_JSON(r, 200);
    ck_assert_str_eq(jstr(r.json, "subject"), "life-1");
    ck_assert_double_eq(jnum(r.json, "deleted_sample_count"), 2);
    resp_free(&r);
    /* Gone from identify too, however many matches are asked for. */
    Field q[] = {IMAGE("image", img[1]), TEXT("k", "1000")};
    r = post_multipart(P, "/identify", q, 2, NULL);
    ASSERT_JSON(r, 200);
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(r.json, "matches"))
        ck_assert_str_ne(jstr(m, "subject"), "life-1");
    resp_free(&r);
    r = http_get(P, "/subjects/life-1");
    ASSERT_JSON(r, 404);
    ck_assert_str_eq(error_code(&r), "subject_not_found");
    resp_free(&r);
    r = http_delete(P, "/subjects/life-1");
    ASSERT_JSON(r, 404);
    ck_assert_str_eq(error_code(&r), "subject_not_found");
    resp_free(&r);

    /* Enrolled again, it is new: one sample, no metadata, a fresh id. */
    double again;
    enroll(P, "life-1", &img[0], 1, NULL, &again);
    ck_assert(again > id3);
    r = http_get(P, "/subjects/life-1");
    ASSERT_JSON(r, 200);
    ck_assert_double_eq(jnum(r.json, "sample_count"), 1);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r.json, "metadata")));
    resp_free(&r);
    for (int i = 0; i < 3; i++)
        buf_free(&img[i]);
}
END_TEST

START_TEST(subject_id_alphabet) {
    char longest[129];
    memset(longest, 'z', 128);
    longest[128] = 0;
    const char *ids[] = {"a.B_c:d@e-9", "user@example.com", "0", longest, ".", "..", "-", "@:"};
    Buf img = img_pgm(3, 28, 28);
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        enroll(P, ids[i], &img, 1, NULL, NULL);
        char path[200];
        snprintf(path, sizeof path, "/subjects/%s", ids[i]);
        Resp r = http_get(P, path);
        ASSERT_JSON(r, 200);
        ck_assert_str_eq(jstr(r.json, "subject"), ids[i]);
        resp_free(&r);
    }
    /* Percent-escapes in the path are decoded before the id is read. */
    Resp r = http_get(P, "/subjects/user%40example.com");
    ASSERT_JSON(r, 200);
    ck_assert_str_eq(jstr(r.json, "subject"), "user@example.com");
    resp_free(&r);
    buf_free(&img);
}
END_TEST

/* ---- verify against a subject ---- */

START_TEST(verify_subject) {
    Buf fm0 = img_file("fm0_c9.png"), fm2 = img_file("fm2_c1.png"), other = img_pgm(5, 28, 28);
    double id0, id2, idx;
    enroll(P, "vs-1", &fm0, 1, NULL, &id0);
    Field f[] = {TEXT("subject", "vs-1"), IMAGE("image", fm0)};
    Resp r = post_multipart(P, "/verify", f, 2, NULL);
    ASSERT_JSON(r, 200);
    ck_assert_double_eq_tol(jnum(r.json, "distance"), SAME_DISTANCE, 1e-6);
    ck_assert_str_eq(jstr(r.json, "verdict"), "same");
    ck_assert_str_eq(jstr(r.json, "subject"), "vs-1");
    ck_assert_double_eq(jnum(r.json, "sample"), id0);
    ck_assert_str_eq(jstr(r.json, "fingerprint"), fingerprint(P));
    resp_free(&r);

    /* Against a subject is the same distance as against its image. */
    Resp pair = verify_ab(&fm0, &fm2, NULL);
    ASSERT_JSON(pair, 200);
    f[1] = IMAGE("image", fm2);
    r = post_multipart(P, "/verify", f, 2, NULL);
    ASSERT_JSON(r, 200);
    ck_assert_double_eq_tol(jnum(r.json, "distance"), jnum(pair.json, "distance"), 1e-5);
    ck_assert_double_eq(jnum(r.json, "sample"), id0);
    resp_free(&r);

    /* With a second sample, the nearest one answers. */
    enroll(P, "vs-1", &fm2, 1, NULL, &id2);
    r = post_multipart(P, "/verify", f, 2, NULL);
    ASSERT_JSON(r, 200);
    ck_assert_double_eq_tol(jnum(r.json, "distance"), SAME_DISTANCE, 1e-6);
    ck_assert_double_eq(jnum(r.json, "sample"), id2);
    resp_free(&r);

    /* A subject whose samples were all deleted: 409. */
    enroll(P, "vs-empty", &other, 1, NULL, &idx);
    char path[80];
    snprintf(path, sizeof path, "/subjects/vs-empty/samples/%.0f", idx);
    r = http_delete(P, path);
    ASSERT_JSON(r, 200);
    ck_assert_double_eq(jnum(r.json, "sample_count"), 0);
    resp_free(&r);
    r = http_get(P, "/subjects/vs-empty");
    ASSERT_JSON(r, 200);
    ck_assert_double_eq(jnum(r.json, "sample_count"), 0);
    resp_free(&r);
    Field e[] = {TEXT("subject", "vs-empty"), IMAGE("image", fm0)};
    r = post_multipart(P, "/verify", e, 2, NULL);
    ASSERT_JSON(r, 409);
    ck_assert_str_eq(error_code(&r), "subject_empty");
    resp_free(&r);
    Field u[] = {TEXT("subject", "vs-nobody"), IMAGE("image", fm0)};
    r = post_multipart(P, "/verify", u, 2, NULL);
    ASSERT_JSON(r, 404);
    ck_assert_str_eq(error_code(&r), "subject_not_found");
    resp_free(&r);
    resp_free(&pair);
    buf_free(&fm0), buf_free(&fm2), buf_free(&other);
}
END_TEST

/* ---- identify ---- */

/* /identify of img with k (NULL: the default); the reply. */
static Resp identify(const Buf *img, const char *k) {
    Field f[] = {IMAGE("image", *img), TEXT("k", k)};
    return post_multipart(P, "/identify", f, k ? 2 : 1, NULL);
}

START_TEST(identify_ranks_the_enrolled_subject_first) {
    /* Pictures no other test enrolls, so the nearest subject is known. */
    const char *subj[] = {"id-c", "id-a", "id-b"};
    Buf img[3] = {img_file("fm3_c1.png"), img_file("baseline.jpg"), img_file("rgb16.ppm")};
    for (int i = 0; i < 3; i++)
        enroll(P, subj[i], &img[i], 1, NULL, NULL);
    for (int i = 0; i < 3; i++) {
        Resp r = identify(&img[i], "3");
        ASSERT_JSON(r, 200);
        const cJSON *m = cJSON_GetObjectItem(r.json, "matches");
        ck_assert_int_eq(cJSON_GetArraySize(m), 3);
        ck_assert_str_eq(jstr(cJSON_GetArrayItem(m, 0), "subject"), subj[i]);
        ck_assert_double_eq_tol(jnum(cJSON_GetArrayItem(m, 0), "distance"), SAME_DISTANCE, 1e-6);
        ck_assert_str_eq(jstr(cJSON_GetArrayItem(m, 0), "verdict"), "same");
        ck_assert_double_eq_tol(jnum(r.json, "threshold"), 0.5, 1e-9);
        ck_assert_str_eq(jstr(r.json, "fingerprint"), fingerprint(P));
        double prev = 0;
        for (int j = 0; j < 3; j++) {
            const cJSON *x = cJSON_GetArrayItem(m, j);
            double d = jnum(x, "distance");
            ck_assert_msg(d >= prev, "matches not sorted: %s", r.body);
            prev = d;
            ck_assert_str_eq(jstr(x, "verdict"), d < 0.5 ? "same" : "different");
            ck_assert(jnum(x, "sample") >= 1);
            /* Each distance is what verify against that subject says. */
            Field v[] = {TEXT("subject", jstr(x, "subject")), IMAGE("image", img[i])};
            Resp vr = post_multipart(P, "/verify", v, 2, NULL);
            ASSERT_JSON(vr, 200);
            ck_assert_double_eq_tol(jnum(vr.json, "distance"), d, 1e-5);
            ck_assert_double_eq(jnum(vr.json, "sample"), jnum(x, "sample"));
            resp_free(&vr);
        }
        resp_free(&r);
    }
    Resp r = identify(&img[0], "1");
    ASSERT_JSON(r, 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "matches")), 1);
    resp_free(&r);
    /* A threshold of 0 makes every match "different", and is echoed. */
    Field t[] = {IMAGE("image", img[0]), TEXT("k", "2"), TEXT("threshold", "0")};
    r = post_multipart(P, "/identify", t, 3, NULL);
    ASSERT_JSON(r, 200);
    ck_assert_double_eq(jnum(r.json, "threshold"), 0);
    for (int j = 0; j < 2; j++)
        ck_assert_str_eq(
            jstr(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "matches"), j), "verdict"),
            "different");
    resp_free(&r);
    r = identify(&img[0], NULL); /* identify_k defaults to 5; there are more subjects */
    ASSERT_JSON(r, 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "matches")), 5);
    resp_free(&r);

    /* Equal distances are ordered by subject id. */
    Buf tie = img_file("gray2_interlaced.png");
    enroll(P, "tie-b", &tie, 1, NULL, NULL);
    enroll(P, "tie-a", &tie, 1, NULL, NULL);
    r = identify(&tie, "2");
    ASSERT_JSON(r, 200);
    const cJSON *m = cJSON_GetObjectItem(r.json, "matches");
    ck_assert_str_eq(jstr(cJSON_GetArrayItem(m, 0), "subject"), "tie-a");
    ck_assert_str_eq(jstr(cJSON_GetArrayItem(m, 1), "subject"), "tie-b");
    resp_free(&r);
    /* ?exact=1 scans the float embeddings (the same answer); other values are refused. */
    Field e[] = {IMAGE("image", tie), TEXT("k", "2")};
    r = post_multipart(P, "/identify?exact=1", e, 2, NULL);
    ASSERT_JSON(r, 200);
    m = cJSON_GetObjectItem(r.json, "matches");
    ck_assert_str_eq(jstr(cJSON_GetArrayItem(m, 0), "subject"), "tie-a");
    ck_assert_str_eq(jstr(cJSON_GetArrayItem(m, 1), "subject"), "tie-b");
    resp_free(&r);
    r = post_multipart(P, "/identify?exact=yes", e, 2, NULL);
    ASSERT_JSON(r, 400);
    ck_assert_str_eq(error_code(&r), "bad_request");
    resp_free(&r);
    buf_free(&tie);
    for (int i = 0; i < 3; i++)
        buf_free(&img[i]);
}
END_TEST

/* With no API keys configured, an Authorization header changes nothing. */
START_TEST(auth_off_ignores_keys) {
    Resp r =
        http(P, &(Req){.method = "GET", .path = "/model", .auth = "Bearer whatever-key-12345"});
    ASSERT_JSON(r, 200);
    resp_free(&r);
    r = http(P,
             &(Req){.method = "DELETE", .path = "/subjects/nobody-at-all", .auth = "Basic eDp5"});
    ASSERT_JSON(r, 404);
    ck_assert_str_eq(error_code(&r), "subject_not_found");
    resp_free(&r);
}
END_TEST

TCase *tcase_routes(void) {
    TCase *tc = tcase_create("routes");
    tcase_add_unchecked_fixture(tc, routes_setup, routes_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, healthz_and_model);
    tcase_add_test(tc, verify_pair_matches_embed);
    tcase_add_test(tc, embed_many_formats);
    tcase_add_test(tc, enroll_get_delete);
    tcase_add_test(tc, subject_id_alphabet);
    tcase_add_test(tc, verify_subject);
    tcase_add_test(tc, identify_ranks_the_enrolled_subject_first);
    tcase_add_test(tc, auth_off_ignores_keys);
    return tc;
}

/* ---- main ---- */

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: test_daemon SIAMESED MKMODEL SRCROOT\n");
        return 2;
    }
    /* Absolute paths: the tests never chdir, but a child must not depend on it. */
    static char bin[2][4096];
    if (!realpath(argv[1], bin[0]) || !realpath(argv[2], bin[1])) {
        fprintf(stderr, "test_daemon: cannot resolve %s or %s\n", argv[1], argv[2]);
        return 2;
    }
    H.siamesed = bin[0], H.mkmodel = bin[1], H.srcroot = argv[3];
    const char *tmp = getenv("TMPDIR");
    snprintf(H.root, sizeof H.root, "%s/siamesed-it.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int ok = mkdtemp(H.root) != NULL;
    snprintf(H.model_a, sizeof H.model_a, "%s/model-a.safetensors", H.root);
    snprintf(H.model_b, sizeof H.model_b, "%s/model-b.safetensors", H.root);
    if (!ok || model_make(H.model_a, 11, NULL) < 0 || model_make(H.model_b, 22, NULL) < 0) {
        fprintf(stderr, "test_daemon: cannot prepare %s and the models\n", H.root);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    Suite *s = suite_create("daemon");
    suite_add_tcase(s, tcase_routes());
    suite_add_tcase(s, tcase_listing());
    suite_add_tcase(s, tcase_input());
    suite_add_tcase(s, tcase_access());
    suite_add_tcase(s, tcase_openapi());
    suite_add_tcase(s, tcase_lifecycle());
    suite_add_tcase(s, tcase_safety());
    suite_add_tcase(s, tcase_security());
    suite_add_tcase(s, tcase_api());
    suite_add_tcase(s, tcase_models());
    suite_add_tcase(s, tcase_bulk());
    suite_add_tcase(s, tcase_scheduling());
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    if (failed || harness_failures) {
        fprintf(stderr, "test_daemon: %d failed tests, %d daemon failures; logs kept in %s\n",
                failed, harness_failures, H.root);
        return 1;
    }
    tree_remove(H.root);
    return 0;
}
