/*
 * test_durability_files.c — corrupt, truncated and odd files at start-up.
 *
 * A database that is garbage, cut short, or has a b-tree page header
 * damaged, and a model file that is empty, truncated, garbage or a
 * directory: the daemon must refuse to start with a non-zero exit status and
 * ONE line "siamesed: <path>: ..." on stderr, never die of a signal (or
 * print a sanitizer report), and never write to the file it refused (its
 * bytes are compared before and after). For bytes flipped at seeded random
 * places, where damage may be undetectable (inside an image blob, say), the
 * daemon must either serve and stop cleanly or refuse the same way.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "prove_util.h"
#include "test_durability.h"

/* ---- helpers ---- */

typedef struct {
    const char *what;
    Buf bytes;
} Case;

/* Seeded garbage of n bytes after an optional prefix. */
static Buf garbage(uint64_t seed, const char *prefix, size_t n) {
    Rng rng = {seed};
    Buf b = {0};
    if (prefix)
        buf_add(&b, prefix, strlen(prefix) + 1); /* with its NUL, like SQLite's magic */
    while (b.len < n) {
        uint8_t byte = (uint8_t)(rng_next(&rng) >> 56);
        buf_add(&b, &byte, 1);
    }
    return b;
}

static Buf prefix_of(const Buf *src, size_t n) {
    Buf b = {0};
    buf_add(&b, src->p, n < src->len ? n : src->len);
    return b;
}

static Buf flipped(const Buf *src, size_t off) {
    Buf b = prefix_of(src, src->len);
    b.p[off] ^= 0xff;
    return b;
}

/* Starts a daemon on model with db (one of them the file under test, at
 * path, holding bytes). 0 when it served (then /healthz answered and it
 * stopped cleanly); 1 when it refused in one line naming path and left the
 * file's bytes as they were. */
static int try_start(Own *o, const char *model, const char *path, const Buf *bytes) {
    if (own_start(o, model, NULL) == 0) {
        Resp r = http_get(o->d.port, "/healthz");
        ASSERT_JSON(r, 200);
        resp_free(&r);
        own_stop_ok(o);
        return 0;
    }
    refused_in_one_line_ok(o, path);
    if (bytes) {
        Buf after;
        ck_assert_int_eq(buf_read_file(path, &after), 0);
        ck_assert_msg(after.len == bytes->len && memcmp(after.p, bytes->p, after.len) == 0,
                      "the refused start changed %s (%zu bytes, were %zu)", path, after.len,
                      bytes->len);
        buf_free(&after);
    }
    return 1;
}

/* A database the daemon wrote and closed: 30 subjects of two images. */
static Buf real_db(char *path, size_t size, int *page_size) {
    Own o;
    own_init_ok(&o, "dbsource");
    own_start_ok(&o, H.model_a, NULL);
    for (int i = 0; i < 30; i++) {
        char subject[32];
        snprintf(subject, sizeof subject, "src-%02d", i);
        Buf im[2] = {img_pgm(3000u + 2 * i, 28, 28), img_pgm(3001u + 2 * i, 28, 28)};
        Field f[] = {TEXT("subject", subject), IMAGE("image", im[0]), IMAGE("image", im[1])};
        Resp r = post_multipart(o.d.port, "/enroll", f, 3, NULL);
        ASSERT_JSON(r, 201);
        resp_free(&r);
        buf_free(&im[0]), buf_free(&im[1]);
    }
    own_stop_ok(&o);
    Buf b;
    ck_assert_int_eq(buf_read_file(o.db, &b), 0);
    ck_assert_msg(b.len > 16 && memcmp(b.p, "SQLite format 3", 16) == 0, "not a database");
    *page_size = b.p[16] << 8 | b.p[17];
    if (*page_size == 1)
        *page_size = 65536;
    ck_assert_int_eq(b.len % (size_t)*page_size, 0);
    snprintf(path, size, "%s", o.db);
    return b;
}

/* ---- databases ---- */

START_TEST(corrupt_databases_refused) {
    char src[400];
    int page;
    Buf good = real_db(src, sizeof src, &page);
    size_t size = good.len, pg = (size_t)page;
    Case cases[16];
    int n = 0;
    cases[n++] = (Case){"garbage", garbage(1, NULL, 65536)};
    cases[n++] = (Case){"garbage after the SQLite magic", garbage(2, "SQLite format 3", 65536)};
    cases[n++] = (Case){"the first 100 bytes", prefix_of(&good, 100)};
    cases[n++] = (Case){"the first page only", prefix_of(&good, pg)};
    cases[n++] = (Case){"cut in the middle of a page", prefix_of(&good, size / 2 / pg * pg + 1000)};
    cases[n++] = (Case){"the last page missing", prefix_of(&good, size - pg)};
    static const char *const tables[] = {"subjects", "samples", "samples_subject"};
    for (int i = 0; i < 3; i++) {
        char sql[120];
        snprintf(sql, sizeof sql, "SELECT rootpage FROM sqlite_master WHERE name = '%s'",
                 tables[i]);
        long long root = db_int(src, sql);
        ck_assert(root >= 2 && (size_t)root * pg <= size);
        /* The first byte of a b-tree page says what kind of page it is. */
        cases[n++] = (Case){tables[i], flipped(&good, (size_t)(root - 1) * pg)};
    }
    for (int i = 0; i < n; i++) {
        Own o;
        own_init_ok(&o, "baddb");
        ck_assert_int_eq(spit(o.db, cases[i].bytes.p, cases[i].bytes.len), 0);
        int refused = try_start(&o, H.model_a, o.db, &cases[i].bytes);
        ck_assert_msg(refused, "the daemon served a database that is %s%s", cases[i].what,
                      i >= n - 3 ? " (its root page flipped)" : "");
        Buf msg;
        buf_read_file(o.d.log, &msg);
        fprintf(stderr, "durability: database %s -> exit %d: %s", cases[i].what,
                WEXITSTATUS(o.d.status), (char *)msg.p);
        buf_free(&msg);
        buf_free(&cases[i].bytes);
    }
    buf_free(&good);
}
END_TEST

START_TEST(flipped_database_bytes) {
    char src[400];
    int page, served = 0, refused = 0;
    Buf good = real_db(src, sizeof src, &page);
    Rng rng = {0xf11bb17e5ull};
    for (int i = 0; i <= 24; i++) {
        /* 24 flips, then the file cut by one byte. */
        Buf bytes = i < 24 ? flipped(&good, (size_t)rng_range(&rng, 0, (int)good.len - 1))
                           : prefix_of(&good, good.len - 1);
        Own o;
        own_init_ok(&o, "flipdb");
        ck_assert_int_eq(spit(o.db, bytes.p, bytes.len), 0);
        if (try_start(&o, H.model_a, o.db, &bytes))
            refused++;
        else
            served++;
        buf_free(&bytes);
    }
    fprintf(stderr,
            "durability: 24 flipped bytes + a 1-byte truncation: %d served, %d refused "
            "cleanly, none crashed\n",
            served, refused);
    buf_free(&good);
}
END_TEST

/* ---- model files ---- */

static Buf model_bytes(size_t *header_len) {
    Buf m;
    ck_assert_int_eq(buf_read_file(H.model_a, &m), 0);
    ck_assert_uint_gt(m.len, 8);
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--)
        h = h << 8 | m.p[i];
    ck_assert(h > 0 && h < m.len - 8);
    *header_len = (size_t)h;
    return m;
}

START_TEST(corrupt_models_refused) {
    size_t hlen;
    Buf good = model_bytes(&hlen);
    Case cases[12];
    int n = 0;
    static const uint8_t bad_json[] = "\x19\0\0\0\0\0\0\0{\"not\": \"a model at all\"}";
    static const uint8_t past_end[] = "\x00\x10\0\0\0\0\0\0{\"a\":1}";
    cases[n++] = (Case){"empty", prefix_of(&good, 0)};
    cases[n++] = (Case){"4 bytes", prefix_of(&good, 4)};
    cases[n++] = (Case){"the header length only", prefix_of(&good, 8)};
    cases[n++] = (Case){"cut in the header", prefix_of(&good, 8 + hlen / 2)};
    cases[n++] = (Case){"cut in half", prefix_of(&good, good.len / 2)};
    cases[n++] = (Case){"one byte short", prefix_of(&good, good.len - 1)};
    cases[n++] = (Case){"garbage", garbage(3, NULL, 65536)};
    cases[n++] = (Case){"a JSON header that is not a model", {0}};
    buf_add(&cases[n - 1].bytes, bad_json, sizeof bad_json - 1);
    cases[n++] = (Case){"a header length past the end", {0}};
    buf_add(&cases[n - 1].bytes, past_end, sizeof past_end - 1);
    for (int i = 0; i < n; i++) {
        Own o;
        char path[460];
        own_init_ok(&o, "badmodel");
        snprintf(path, sizeof path, "%s/model.safetensors", o.dir);
        ck_assert_int_eq(spit(path, cases[i].bytes.p, cases[i].bytes.len), 0);
        ck_assert_msg(try_start(&o, path, path, &cases[i].bytes), "served a model file: %s",
                      cases[i].what);
        Buf msg;
        buf_read_file(o.d.log, &msg);
        fprintf(stderr, "durability: model %s -> exit %d: %s", cases[i].what,
                WEXITSTATUS(o.d.status), (char *)msg.p);
        buf_free(&msg);
        buf_free(&cases[i].bytes);
    }
    Own o;
    char dir[460];
    own_init_ok(&o, "dirmodel");
    snprintf(dir, sizeof dir, "%s/model.safetensors", o.dir);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    ck_assert_msg(try_start(&o, dir, dir, NULL), "served a directory as its model");
    buf_free(&good);
}
END_TEST

START_TEST(flipped_model_bytes) {
    size_t hlen;
    Buf good = model_bytes(&hlen);
    Rng rng = {0x30de1f11bull};
    int served = 0, refused = 0;
    for (int i = 0; i < 24; i++) {
        /* Two in three in the JSON header, where a flip means something. */
        size_t off = i % 3 ? (size_t)rng_range(&rng, 0, (int)(8 + hlen - 1))
                           : (size_t)rng_range(&rng, (int)(8 + hlen), (int)good.len - 1);
        Buf bytes = flipped(&good, off);
        Own o;
        char path[460];
        own_init_ok(&o, "flipmodel");
        snprintf(path, sizeof path, "%s/model.safetensors", o.dir);
        ck_assert_int_eq(spit(path, bytes.p, bytes.len), 0);
        if (try_start(&o, path, path, &bytes))
            refused++;
        else
            served++;
        buf_free(&bytes);
    }
    fprintf(stderr, "durability: 24 flipped model bytes: %d served, %d refused cleanly\n", served,
            refused);
    buf_free(&good);
}
END_TEST

TCase *tcase_files(void) {
    TCase *tc = tcase_create("files");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, corrupt_databases_refused);
    tcase_add_test(tc, flipped_database_bytes);
    tcase_add_test(tc, corrupt_models_refused);
    tcase_add_test(tc, flipped_model_bytes);
    return tc;
}
