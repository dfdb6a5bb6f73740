/*
 * test_safetensors.c — unit tests for the safetensors reader and writer.
 *
 * Round trips compare every float bit for bit; the fingerprint is checked
 * against SHA-256 values computed independently (Python's hashlib). The
 * reader is fed every prefix of a valid file and a table of malformed
 * headers, each of which must be rejected with the documented code. The
 * writer is checked for refusing bad input without touching the target and
 * for replacing files whole. Seed files in tests/data/safetensors are read
 * too, so the fuzzing corpus stays meaningful.
 */
#include "siamese/common.h"
#include "siamese/safetensors.h"

#include "check_util.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static void tmpdir_setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sm_test_st_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

/* Number of entries in dir (not counting . and ..), -1 if it cannot be opened. */
static int dir_count(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void tmpdir_teardown(void) {
    DIR *d = opendir(tmpdir);
    if (!d)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d))) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(tmpdir);
}

static void tmp_path(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", tmpdir, name);
}

/* A file: 8-byte little-endian length of header, header, data_len bytes of fill. */
static uint8_t *make_file(const char *header, uint64_t declared_len, size_t data_len, uint8_t fill,
                          size_t *len) {
    size_t hlen = strlen(header);
    *len = 8 + hlen + data_len;
    uint8_t *buf = malloc(*len);
    ck_assert_ptr_nonnull(buf);
    for (int b = 0; b < 8; b++)
        buf[b] = (uint8_t)(declared_len >> (8 * b));
    memcpy(buf + 8, header, hlen);
    memset(buf + 8 + hlen, fill, data_len);
    return buf;
}

static void expect_reject(const uint8_t *buf, size_t len, int code, const char *needle) {
    char err[SM_ERRMAX] = "";
    StFile *f = (StFile *)&f; /* must be reset to NULL on failure */
    int rc = st_parse(buf, len, &f, err);
    ck_assert_msg(rc == code, "expected %d, got %d (%s)", code, rc, err);
    ck_assert_ptr_null(f);
    ck_assert_msg(strncmp(err, "safetensors: ", 13) == 0, "message '%s' lacks prefix", err);
    if (needle)
        ck_assert_msg(strstr(err, needle), "message '%s' lacks '%s'", err, needle);
}

/* ---- Hashing and round trips --------------------------------------------- */

START_TEST(test_sha256_known_vectors) {
    char hex[65];
    st_sha256_hex("abc", 3, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    st_sha256_hex(NULL, 0, hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
END_TEST

/* Floats chosen to catch any conversion: -0, a NaN payload, a denormal, infinity. */
static const uint32_t weight_bits[6] = {0x3f800000, 0x80000000, 0x7fc12345,
                                        0x00000001, 0x7f800000, 0xc0490fdb};
static const float bias_vals[3] = {0.5f, -1.25f, 3.0e-38f};
static const float scalar_val = 42.0f;

static void make_tensors(StTensor t[4], float *weight) {
    memcpy(weight, weight_bits, sizeof weight_bits);
    t[0] = (StTensor){.name = "dense.0.weight", .ndim = 2, .shape = {3, 2}, .data = weight};
    t[1] = (StTensor){.name = "dense.0.bias", .ndim = 1, .shape = {3}, .data = bias_vals};
    t[2] = (StTensor){.name = "scalar", .ndim = 0, .data = &scalar_val};
    t[3] = (StTensor){.name = "empty", .ndim = 2, .shape = {0, 5}, .data = NULL};
}

START_TEST(test_round_trip) {
    float weight[6];
    StTensor t[4];
    make_tensors(t, weight);
    const StMeta meta[3] = {{"format", "siamesed"},
                            {"training", "{\"epochs\": 3,\n \"note\": \"a \\\\ b\"}"},
                            {"unicode \xc3\xa9", "caf\xc3\xa9 \xe2\x9c\x93"}};
    char path[512], err[SM_ERRMAX] = "", hex[65] = "";
    tmp_path(path, sizeof path, "model.st");
    ck_assert_int_eq(st_write(path, t, 4, meta, 3, hex, err), 0);
    ck_assert_int_eq((int)strlen(hex), 64);

    StFile *f = NULL;
    ck_assert_msg(st_read(path, 1 << 20, &f, err) == 0, "%s", err);
    ck_assert_int_eq(st_n_tensors(f), 4);
    for (int i = 0; i < 4; i++) {
        const StTensor *r = st_tensor(f, i);
        ck_assert_str_eq(r->name, t[i].name);
        ck_assert_int_eq(r->ndim, t[i].ndim);
        int64_t n = 1;
        for (int d = 0; d < r->ndim; d++) {
            ck_assert_int_eq(r->shape[d], t[i].shape[d]);
            n *= r->shape[d];
        }
        ck_assert_uint_eq((uintptr_t)r->data % 64, 0);
        if (n > 0)
            ck_assert_mem_eq(r->data, t[i].data, (size_t)n * sizeof(float));
        ck_assert_ptr_eq(st_find(f, t[i].name), r);
    }
    ck_assert_ptr_null(st_tensor(f, 4));
    ck_assert_ptr_null(st_tensor(f, -1));
    ck_assert_ptr_null(st_find(f, "dense.0"));
    for (int i = 0; i < 3; i++)
        ck_assert_str_eq(st_meta(f, meta[i].key), meta[i].value);
    ck_assert_ptr_null(st_meta(f, "absent"));
    ck_assert_str_eq(st_meta(f, "fingerprint"), hex);
    ck_assert_str_eq(st_fingerprint(f), hex);

    /* The fingerprint is the SHA-256 of the tensor bytes in order. */
    uint8_t concat[sizeof weight_bits + sizeof bias_vals + sizeof scalar_val];
    memcpy(concat, weight_bits, sizeof weight_bits);
    memcpy(concat + sizeof weight_bits, bias_vals, sizeof bias_vals);
    memcpy(concat + sizeof weight_bits + sizeof bias_vals, &scalar_val, sizeof scalar_val);
    char expect[65];
    st_sha256_hex(concat, sizeof concat, expect);
    ck_assert_str_eq(hex, expect);
    st_free(f);
    st_free(NULL);
}
END_TEST

/* The exact bytes st_write produces, as any safetensors reader expects them. */
START_TEST(test_written_bytes) {
    const float vals[3] = {1.0f, 2.0f, 3.0f};
    const StTensor t = {.name = "x", .ndim = 1, .shape = {3}, .data = vals};
    char path[512], err[SM_ERRMAX], hex[65];
    tmp_path(path, sizeof path, "x.st");
    ck_assert_int_eq(st_write(path, &t, 1, NULL, 0, hex, err), 0);
    /* SHA-256 of the 12 little-endian bytes of 1,2,3 (computed with hashlib). */
    const char *sha = "8e628779e6a74ee0b36991c10158f63cafec7d340ad4e075592502c8708524dd";
    ck_assert_str_eq(hex, sha);

    uint8_t *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(sm_read_file(path, 4096, &buf, &len, err), 0);
    char json[256];
    snprintf(json, sizeof json,
             "{\"__metadata__\":{\"fingerprint\":\"%s\"},"
             "\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}",
             sha);
    size_t jlen = strlen(json), hlen = (jlen + 7) / 8 * 8;
    ck_assert_uint_eq(len, 8 + hlen + 12);
    uint64_t declared = 0;
    for (int b = 7; b >= 0; b--)
        declared = declared << 8 | buf[b];
    ck_assert_uint_eq(declared, hlen);
    ck_assert_mem_eq(buf + 8, json, jlen);
    for (size_t i = jlen; i < hlen; i++)
        ck_assert_int_eq(buf[8 + i], ' ');
    ck_assert_mem_eq(buf + 8 + hlen, vals, 12);
    free(buf);
}
END_TEST

/* Headers as other writers produce them: whitespace, metadata last or absent, no tensors. */
START_TEST(test_foreign_headers) {
    static const char *const headers[] = {
        "{\"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]},\n"
        " \"a\": {\"data_offsets\": [0, 4], \"shape\": [1], \"dtype\": \"F32\"},\r\n"
        " \"__metadata__\": {\"format\": \"pt\"}}   ",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]}}",
    };
    for (size_t i = 0; i < SM_ARRAY_LEN(headers); i++) {
        size_t len;
        uint8_t *buf = make_file(headers[i], strlen(headers[i]), 8, 0, &len);
        for (int k = 0; k < 8; k++)
            buf[len - 8 + k] = (uint8_t)k;
        char err[SM_ERRMAX] = "", expect[65];
        StFile *f = NULL;
        ck_assert_msg(st_parse(buf, len, &f, err) == 0, "header %zu: %s", i, err);
        ck_assert_int_eq(st_n_tensors(f), 2);
        st_sha256_hex(buf + len - 8, 8, expect);
        ck_assert_str_eq(st_fingerprint(f), expect);
        const StTensor *a = st_find(f, "a");
        ck_assert_ptr_nonnull(a);
        ck_assert_mem_eq(a->data, buf + len - 8, 4);
        ck_assert_ptr_null(st_meta(f, "fingerprint"));
        if (i == 0) {
            ck_assert_str_eq(st_tensor(f, 0)->name, "b");
            ck_assert_str_eq(st_meta(f, "format"), "pt");
            ck_assert_mem_eq(st_tensor(f, 0)->data, buf + len - 4, 4);
        }
        st_free(f);
        free(buf);
    }
    /* No tensors at all is a valid (empty) file. */
    size_t len;
    uint8_t *buf = make_file("{}      ", 8, 0, 0, &len);
    StFile *f = NULL;
    ck_assert_int_eq(st_parse(buf, len, &f, NULL), 0);
    ck_assert_int_eq(st_n_tensors(f), 0);
    ck_assert_str_eq(st_fingerprint(f),
                     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    st_free(f);
    free(buf);
}
END_TEST

/* ---- Malformed input ---------------------------------------------------- */

START_TEST(test_every_prefix_rejected) {
    float weight[6];
    StTensor t[4];
    make_tensors(t, weight);
    const StMeta meta = {"k", "v"};
    char path[512], err[SM_ERRMAX];
    tmp_path(path, sizeof path, "p.st");
    ck_assert_int_eq(st_write(path, t, 4, &meta, 1, NULL, err), 0);
    uint8_t *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(sm_read_file(path, 4096, &buf, &len, err), 0);
    StFile *f = NULL;
    ck_assert_int_eq(st_parse(buf, len, &f, err), 0);
    st_free(f);
    for (size_t n = 0; n < len; n++) {
        /* A copy of exactly n bytes, so ASan sees any read past the prefix. */
        uint8_t *prefix = malloc(n ? n : 1);
        memcpy(prefix, buf, n);
        expect_reject(prefix, n, -EINVAL, NULL);
        free(prefix);
    }
    free(buf);
}
END_TEST

static void expect_reject_prefix(uint64_t declared, size_t total, int code, const char *needle) {
    size_t len;
    uint8_t *buf = make_file("{}      ", declared, total > 16 ? total - 16 : 0, 0, &len);
    expect_reject(buf, len, code, needle);
    free(buf);
}

START_TEST(test_bad_length_prefix) {
    expect_reject((const uint8_t *)"\x08\0\0\0\0\0\0", 7, -EINVAL, "too short");
    expect_reject_prefix(0, 16, -EINVAL, "header length is 0");
    expect_reject_prefix(9, 16, -EINVAL, "past the end");
    expect_reject_prefix(1000, 16, -EINVAL, "past the end");
    expect_reject_prefix((uint64_t)ST_MAX_HEADER + 1, 16, -EFBIG, "exceeds");
    expect_reject_prefix(UINT64_MAX, 16, -EFBIG, "exceeds");
    expect_reject_prefix(1ull << 32, 16, -EFBIG, "exceeds");
    /* Declared shorter than the JSON: the rest becomes data, the JSON is cut. */
    expect_reject_prefix(1, 16, -EINVAL, "not valid JSON");
    /* A NUL inside the header would end cJSON's parse early if it were let through. */
    expect_reject((const uint8_t *)"\x08\0\0\0\0\0\0\0{}\0     ", 16, -EINVAL, "control character");
}
END_TEST

typedef struct {
    const char *what;
    const char *header;
    size_t data_len;
    int code;
    const char *needle;
} BadCase;

#define T1(shape, offs) "{\"a\":{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":" offs "}}"
#define ENTRY(name, shape, offs)                                                                   \
    "\"" name "\":{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":" offs "}"

static const BadCase bad_cases[] = {
    {"truncated JSON", "{\"a\":{\"dtype\":", 0, -EINVAL, "not valid JSON"},
    {"not JSON", "hello", 0, -EINVAL, "not valid JSON"},
    {"JSON array", "[1,2]", 0, -EINVAL, "not a JSON object"},
    {"JSON string", "\"x\"", 0, -EINVAL, "not a JSON object"},
    {"garbage after JSON", "{} x", 0, -EINVAL, "not valid JSON"},
    {"two objects", "{}{}", 0, -EINVAL, "not valid JSON"},
    {"control char", "{\"a\x01\":1}", 0, -EINVAL, "control character"},
    {"bad UTF-8", "{\"\xff\":1}", 0, -EINVAL, "UTF-8"},
    {"overlong UTF-8", "{\"\xc0\xaf\":1}", 0, -EINVAL, "UTF-8"},
    {"UTF-8 surrogate", "{\"\xed\xa0\x80\":1}", 0, -EINVAL, "UTF-8"},
    {"entry not object", "{\"a\":5}", 0, -EINVAL, "not an object"},
    {"missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -EINVAL,
     "missing 'dtype'"},
    {"missing offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, -EINVAL,
     "missing 'data_offsets'"},
    {"extra key", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
     -EINVAL, "unexpected key 'x'"},
    {"key in other case", "{\"a\":{\"DTYPE\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     -EINVAL, "unexpected key 'DTYPE'"},
    {"duplicate key in entry",
     "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     -EINVAL, "duplicate key 'dtype'"},
    {"dtype F16", "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, -EINVAL,
     "dtype 'F16' is not supported"},
    {"dtype F64", "{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, -EINVAL,
     "dtype 'F64'"},
    {"dtype not string", "{\"a\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -EINVAL,
     "dtype is not a string"},
    {"shape not array", T1("7", "[0,28]"), 28, -EINVAL, "shape is not an array"},
    {"negative shape", T1("[-1]", "[0,4]"), 4, -EINVAL, "shape entry 0"},
    {"fractional shape", T1("[1.5]", "[0,6]"), 6, -EINVAL, "shape entry 0"},
    {"string shape", T1("[\"1\"]", "[0,4]"), 4, -EINVAL, "shape entry 0"},
    {"huge shape", T1("[1e300]", "[0,4]"), 4, -EINVAL, "shape entry 0"},
    {"shape above 2^31", T1("[1,4294967296]", "[0,4]"), 4, -EINVAL, "shape entry 1"},
    {"overflowing shape", T1("[4294967296,4294967296]", "[0,0]"), 0, -EINVAL, "shape entry 0"},
    {"product overflow", T1("[2147483647,2147483647,2147483647]", "[0,4]"), 4, -EINVAL,
     "do not match shape [2147483647,2147483647,2147483647] F32"},
    {"too many dims", T1("[1,1,1,1,1]", "[0,4]"), 4, -EINVAL, "5 dimensions"},
    {"shape/offset mismatch", T1("[128,784]", "[0,100]"), 100, -EINVAL,
     "data_offsets [0,100] do not match shape [128,784] F32"},
    {"offsets reversed", T1("[1]", "[4,0]"), 4, -EINVAL, "do not match"},
    {"offsets one entry", T1("[1]", "[4]"), 4, -EINVAL, "not [begin,end]"},
    {"offsets three entries", T1("[1]", "[0,4,8]"), 8, -EINVAL, "not [begin,end]"},
    {"offset negative", T1("[1]", "[-4,0]"), 4, -EINVAL, "not [begin,end]"},
    {"offset fractional", T1("[1]", "[0.5,4.5]"), 8, -EINVAL, "not [begin,end]"},
    {"offsets past data", T1("[2]", "[0,8]"), 4, -EINVAL, "run past"},
    {"offset beyond 2^53", T1("[0]", "[18446744073709551616,18446744073709551616]"), 0, -EINVAL,
     "not [begin,end]"},
    {"overlap", "{" ENTRY("a", "[2]", "[0,8]") "," ENTRY("b", "[2]", "[4,12]") "}", 12, -EINVAL,
     "overlap"},
    {"same offsets", "{" ENTRY("a", "[1]", "[0,4]") "," ENTRY("b", "[1]", "[0,4]") "}", 4, -EINVAL,
     "overlap"},
    {"gap", "{" ENTRY("a", "[1]", "[0,4]") "," ENTRY("b", "[1]", "[8,12]") "}", 12, -EINVAL, "gap"},
    {"gap at start", T1("[1]", "[4,8]"), 8, -EINVAL, "gap"},
    {"trailing bytes", T1("[1]", "[0,4]"), 8, -EINVAL, "4 trailing bytes"},
    {"data but no tensors", "{}", 4, -EINVAL, "4 trailing bytes"},
    {"duplicate tensor", "{" ENTRY("a", "[1]", "[0,4]") "," ENTRY("a", "[1]", "[4,8]") "}", 8,
     -EINVAL, "duplicate tensor name 'a'"},
    {"empty tensor name", "{" ENTRY("", "[1]", "[0,4]") "}", 4, -EINVAL, "empty name"},
    {"metadata not object", "{\"__metadata__\":[\"a\"]}", 0, -EINVAL, "not an object"},
    {"non-string metadata", "{\"__metadata__\":{\"epochs\":3}}", 0, -EINVAL,
     "metadata 'epochs' is not a string"},
    {"null metadata", "{\"__metadata__\":{\"k\":null}}", 0, -EINVAL, "not a string"},
    {"duplicate metadata key", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, -EINVAL,
     "duplicate metadata key 'k'"},
    {"two metadata objects", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, -EINVAL,
     "duplicate key '__metadata__'"},
    {"bad fingerprint text", "{\"__metadata__\":{\"fingerprint\":\"00\"}}", 0, -EBADMSG,
     "fingerprint mismatch"},
};

START_TEST(test_malformed_table) {
    const BadCase *c = &bad_cases[_i];
    size_t hlen = strlen(c->header);
    size_t len = 8 + hlen + c->data_len;
    uint8_t *buf = malloc(len);
    for (int b = 0; b < 8; b++)
        buf[b] = (uint8_t)((uint64_t)hlen >> (8 * b));
    memcpy(buf + 8, c->header, hlen);
    memset(buf + 8 + hlen, 0x3f, c->data_len);
    char err[SM_ERRMAX] = "";
    StFile *f = NULL;
    int rc = st_parse(buf, len, &f, err);
    ck_assert_msg(rc == c->code, "%s: expected %d, got %d (%s)", c->what, c->code, rc, err);
    ck_assert_msg(strstr(err, c->needle), "%s: message '%s' lacks '%s'", c->what, err, c->needle);
    ck_assert_ptr_null(f);
    free(buf);
}
END_TEST

START_TEST(test_fingerprint_mismatch) {
    float weight[6];
    StTensor t[4];
    make_tensors(t, weight);
    char path[512], err[SM_ERRMAX];
    tmp_path(path, sizeof path, "fp.st");
    ck_assert_int_eq(st_write(path, t, 3, NULL, 0, NULL, err), 0);
    uint8_t *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(sm_read_file(path, 4096, &buf, &len, err), 0);
    /* Flip one bit in every data byte in turn: each is caught. */
    size_t data_start = len - (sizeof weight_bits + sizeof bias_vals + sizeof scalar_val);
    for (size_t i = data_start; i < len; i++) {
        buf[i] ^= 0x10;
        expect_reject(buf, len, -EBADMSG, "fingerprint mismatch: file is corrupt");
        buf[i] ^= 0x10;
    }
    StFile *f = NULL;
    ck_assert_int_eq(st_parse(buf, len, &f, err), 0);
    st_free(f);
    /* A corrupted stored fingerprint is caught too. */
    char *fp = memmem(buf, len, "\"fingerprint\":\"", 15);
    ck_assert_ptr_nonnull(fp);
    fp[15] = fp[15] == 'a' ? 'b' : 'a';
    expect_reject(buf, len, -EBADMSG, "fingerprint mismatch");
    ck_assert_int_eq(sm_write_file_atomic(path, buf, len, err), 0);
    ck_assert_int_eq(st_read(path, 4096, &f, err), -EBADMSG);
    ck_assert_ptr_null(f);
    ck_assert_msg(strncmp(err, path, strlen(path)) == 0, "message '%s' lacks the path", err);
    free(buf);
}
END_TEST

START_TEST(test_read_limits) {
    char path[512], err[SM_ERRMAX];
    StFile *f = NULL;
    tmp_path(path, sizeof path, "absent.st");
    ck_assert_int_eq(st_read(path, 4096, &f, err), -ENOENT);
    ck_assert_ptr_null(f);
    const float v[4] = {1, 2, 3, 4};
    const StTensor t = {.name = "v", .ndim = 1, .shape = {4}, .data = v};
    ck_assert_int_eq(st_write(path, &t, 1, NULL, 0, NULL, err), 0);
    ck_assert_int_eq(st_read(path, 64, &f, err), -EFBIG);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(st_read(path, 4096, &f, err), 0);
    st_free(f);
}
END_TEST

/* ---- Writer checks and atomicity ---------------------------------------- */

START_TEST(test_write_rejects) {
    const float v[2] = {1, 2};
    const StTensor ok = {.name = "a", .ndim = 1, .shape = {2}, .data = v};
    char path[512], err[SM_ERRMAX];
    tmp_path(path, sizeof path, "w.st");
    ck_assert_int_eq(st_write(path, &ok, 1, NULL, 0, NULL, err), 0);
    uint8_t *before = NULL, *after = NULL;
    size_t before_len = 0, after_len = 0;
    ck_assert_int_eq(sm_read_file(path, 4096, &before, &before_len, err), 0);

    const StTensor dup[2] = {ok, ok};
    StTensor reserved = ok, empty = ok, nameless = ok, dims5 = ok, dimsneg = ok, negative = ok,
             nodata = ok;
    reserved.name = "__metadata__";
    empty.name = "";
    nameless.name = NULL;
    dims5.ndim = 5;
    dimsneg.ndim = -1;
    negative.shape[0] = -2;
    nodata.data = NULL;
    const StMeta fp = {"fingerprint", "x"}, mdup[2] = {{"k", "1"}, {"k", "2"}}, mnull = {"k", NULL};
    const StTensor bad_utf8 = {.name = "\xc3(", .ndim = 1, .shape = {2}, .data = v};
    struct {
        const StTensor *t;
        int n;
        const StMeta *m;
        int nm;
        const char *needle;
    } cases[] = {
        {dup, 2, NULL, 0, "duplicate tensor name 'a'"},
        {&reserved, 1, NULL, 0, "reserved"},
        {&empty, 1, NULL, 0, "empty name"},
        {&nameless, 1, NULL, 0, "empty name"},
        {&dims5, 1, NULL, 0, "5 dimensions"},
        {&dimsneg, 1, NULL, 0, "-1 dimensions"},
        {&negative, 1, NULL, 0, "dimension 0 is -2"},
        {&nodata, 1, NULL, 0, "no data"},
        {&ok, 1, &fp, 1, "'fingerprint' is reserved"},
        {&ok, 1, mdup, 2, "duplicate metadata key 'k'"},
        {&ok, 1, &mnull, 1, "no key or value"},
        {&bad_utf8, 1, NULL, 0, "UTF-8"},
        {&ok, -1, NULL, 0, "bad tensor"},
        {NULL, 1, NULL, 0, "bad tensor"},
    };
    for (size_t i = 0; i < SM_ARRAY_LEN(cases); i++) {
        err[0] = 0;
        int rc = st_write(path, cases[i].t, cases[i].n, cases[i].m, cases[i].nm, NULL, err);
        ck_assert_msg(rc == -EINVAL, "case %zu: got %d (%s)", i, rc, err);
        ck_assert_msg(strstr(err, cases[i].needle), "case %zu: '%s' lacks '%s'", i, err,
                      cases[i].needle);
    }
    /* Nothing was written: the old file is intact and no temporary remains. */
    ck_assert_int_eq(sm_read_file(path, 4096, &after, &after_len, err), 0);
    ck_assert_uint_eq(after_len, before_len);
    ck_assert_mem_eq(after, before, before_len);
    ck_assert_int_eq(dir_count(tmpdir), 1);
    free(before);
    free(after);
}
END_TEST

START_TEST(test_write_missing_dir) {
    const float v[1] = {1};
    const StTensor t = {.name = "a", .ndim = 1, .shape = {1}, .data = v};
    char dir[512], path[600], err[SM_ERRMAX] = "";
    tmp_path(dir, sizeof dir, "no-such-dir");
    snprintf(path, sizeof path, "%s/model.st", dir);
    int rc = st_write(path, &t, 1, NULL, 0, NULL, err);
    ck_assert_int_eq(rc, -ENOENT);
    ck_assert_str_ne(err, "");
    struct stat st;
    ck_assert_int_eq(stat(dir, &st), -1);
    ck_assert_int_eq(dir_count(tmpdir), 0);
}
END_TEST

START_TEST(test_overwrite_replaces_whole) {
    enum { BIG = 4096 };
    float *big = malloc(BIG * sizeof *big);
    for (int i = 0; i < BIG; i++)
        big[i] = (float)i * 0.25f;
    const float small[2] = {-1, 1};
    const StTensor tb[2] = {{.name = "big", .ndim = 2, .shape = {64, 64}, .data = big},
                            {.name = "other", .ndim = 1, .shape = {BIG}, .data = big}};
    const StTensor ts = {.name = "small", .ndim = 1, .shape = {2}, .data = small};
    const StMeta mb = {"version", "big"};
    char path[512], err[SM_ERRMAX], hex_small[65];
    tmp_path(path, sizeof path, "m.st");
    ck_assert_int_eq(st_write(path, tb, 2, &mb, 1, NULL, err), 0);
    ck_assert_int_eq(st_write(path, &ts, 1, NULL, 0, hex_small, err), 0);

    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_lt(st.st_size, 512);
    ck_assert_int_eq(dir_count(tmpdir), 1);
    StFile *f = NULL;
    ck_assert_msg(st_read(path, 1 << 20, &f, err) == 0, "%s", err);
    ck_assert_int_eq(st_n_tensors(f), 1);
    ck_assert_str_eq(st_tensor(f, 0)->name, "small");
    ck_assert_mem_eq(st_tensor(f, 0)->data, small, sizeof small);
    ck_assert_ptr_null(st_meta(f, "version"));
    ck_assert_str_eq(st_fingerprint(f), hex_small);
    st_free(f);
    free(big);
}
END_TEST

/* ---- Seed files for fuzzing --------------------------------------------- */

START_TEST(test_seed_files) {
    static const struct {
        const char *file;
        int code;
    } seeds[] = {
        {"valid.st", 0},
        {"valid_nometa.st", 0},
        {"bad_dtype.st", -EINVAL},
        {"bad_overlap.st", -EINVAL},
        {"bad_truncated.st", -EINVAL},
        {"bad_fingerprint.st", -EBADMSG},
    };
    const char *data = getenv("SM_TEST_DATA");
    ck_assert_ptr_nonnull(data);
    for (size_t i = 0; i < SM_ARRAY_LEN(seeds); i++) {
        char path[1024], err[SM_ERRMAX] = "";
        snprintf(path, sizeof path, "%s/safetensors/%s", data, seeds[i].file);
        StFile *f = NULL;
        int rc = st_read(path, 1 << 20, &f, err);
        ck_assert_msg(rc == seeds[i].code, "%s: expected %d, got %d (%s)", seeds[i].file,
                      seeds[i].code, rc, err);
        if (rc == 0)
            ck_assert_int_gt(st_n_tensors(f), 0);
        st_free(f);
    }
}
END_TEST

static Suite *safetensors_suite(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("format");
    tcase_add_checked_fixture(tc, tmpdir_setup, tmpdir_teardown);
    tcase_add_test(tc, test_sha256_known_vectors);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_written_bytes);
    tcase_add_test(tc, test_foreign_headers);
    tcase_add_test(tc, test_every_prefix_rejected);
    tcase_add_test(tc, test_bad_length_prefix);
    tcase_add_loop_test(tc, test_malformed_table, 0, (int)SM_ARRAY_LEN(bad_cases));
    tcase_add_test(tc, test_fingerprint_mismatch);
    tcase_add_test(tc, test_read_limits);
    tcase_add_test(tc, test_write_rejects);
    tcase_add_test(tc, test_write_missing_dir);
    tcase_add_test(tc, test_overwrite_replaces_whole);
    tcase_add_test(tc, test_seed_files);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return check_run(safetensors_suite());
}
