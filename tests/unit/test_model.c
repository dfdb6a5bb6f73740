/*
 * test_model.c — the model: Glorot initialisation, inference against the
 * naive layers, a bit-exact save/load round trip, and the loader's refusal
 * of files that are valid safetensors but not valid models.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "siamese/blas.h"
#include "siamese/layers.h"
#include "siamese/model.h"
#include "siamese/network.h"
#include "siamese/rng.h"
#include "siamese/safetensors.h"

#include "check_util.h"

static char dir[] = "/tmp/sm-test-model-XXXXXX";
#define REF_SPEC "fc128,relu,drop0.1,fc128,relu,drop0.1,fc64,relu"

static Model *new_model_of(const char *spec, int h, int w, int c, uint64_t seed) {
    Model *m = NULL;
    ModelArch a;
    char err[256];
    ck_assert_msg(net_parse(spec, h, w, c, &a, err) == 0, "%s", err);
    ck_assert_msg(model_create(&a, seed, &m, err) == 0, "%s", err);
    return m;
}

static Model *new_model(uint64_t seed) {
    return new_model_of(REF_SPEC, 28, 28, 1, seed);
}

/* Float offset of the weights of the l-th layer with parameters. */
static size_t model_layer_offset(const Model *m, int l) {
    const ModelArch *a = model_arch(m);
    for (int i = 0; i < a->n_layers; i++)
        if ((a->layer[i].kind == NET_FC || a->layer[i].kind == NET_CONV) && l-- == 0)
            return model_plan(m)->woff[i];
    ck_abort_msg("no layer %d", l);
    return 0;
}

static void path_of(char *buf, const char *name) {
    snprintf(buf, 512, "%s/%s", dir, name);
}

START_TEST(glorot_init) {
    Model *m = new_model(3);
    ck_assert_uint_eq(model_n_params(m), 784 * 128 + 128 + 128 * 128 + 128 + 128 * 64 + 64);
    const float *w = model_params_const(m);
    float r0 = sqrtf(6.0f / (784 + 128)), lo = 0, hi = 0;
    double sum = 0;
    for (int i = 0; i < 784 * 128; i++) {
        lo = fminf(lo, w[i]), hi = fmaxf(hi, w[i]), sum += w[i];
        ck_assert(fabsf(w[i]) <= r0);
    }
    ck_assert(lo < -0.95f * r0 && hi > 0.95f * r0); /* fills the range */
    ck_assert(fabs(sum / (784 * 128)) < 0.01 * r0); /* centred */
    for (int i = 0; i < 128; i++)
        ck_assert(w[784 * 128 + i] == 0.0f); /* zero biases */
    Model *same = new_model(3), *other = new_model(4);
    ck_assert(memcmp(w, model_params_const(same), model_n_params(m) * 4) == 0);
    ck_assert(memcmp(w, model_params_const(other), model_n_params(m) * 4) != 0);
    model_free(m), model_free(same), model_free(other);
}
END_TEST

START_TEST(embed_matches_naive_forward) {
    Model *m = new_model(9);
    enum { N = 300 }; /* more than one inference chunk */
    float *x = malloc(N * 784 * 4), *e = malloc(N * 64 * 4), *a = malloc(N * 128 * 4),
          *b = malloc(N * 128 * 4);
    Rng rng;
    rng_seed(&rng, 1);
    for (int i = 0; i < N * 784; i++)
        x[i] = rng_uniform(&rng);
    ck_assert_int_eq(model_embed(m, x, N, e), 0);
    const float *p = model_params_const(m);
    const int dims[] = {784, 128, 128, 64};
    const float *in = x;
    float *bufs[2] = {a, b};
    for (int l = 0; l < 3; l++) {
        const float *w = p + model_layer_offset(m, l);
        dense_forward_ref(bufs[l % 2], in, w, w + dims[l + 1] * dims[l], N, dims[l], dims[l + 1]);
        relu_forward(bufs[l % 2], bufs[l % 2], (size_t)N * dims[l + 1]);
        in = bufs[l % 2];
    }
    for (int i = 0; i < N * 64; i++)
        ck_assert_msg(fabsf(e[i] - in[i]) < 1e-4f, "emb[%d] %g vs %g", i, e[i], in[i]);
    ck_assert_float_eq_tol(model_distance(e, e, 64), sqrtf(1e-7f), 1e-9f);
    free(x), free(e), free(a), free(b);
    model_free(m);
}
END_TEST

START_TEST(save_load_round_trip) {
    char path[512], err[256];
    path_of(path, "m.safetensors");
    Model *m = new_model(11), *back = NULL;
    model_set_margin(m, 1.25f);
    model_set_threshold(m, 0.4375f);
    ck_assert_int_eq(model_set_training(m, "{\"dataset\":\"x\",\"epochs\":2}", err), 0);
    ck_assert_int_eq(model_set_training(m, "[1]", err), -EINVAL);
    ck_assert_msg(model_save(m, path, err) == 0, "%s", err);
    ck_assert_int_eq(strlen(model_fingerprint(m)), 64);
    ck_assert_msg(model_load(path, &back, err) == 0, "%s", err);
    ck_assert(memcmp(model_params_const(m), model_params_const(back), model_n_params(m) * 4) == 0);
    ck_assert(memcmp(model_arch(m), model_arch(back), sizeof(ModelArch)) == 0);
    ck_assert(model_margin(back) == 1.25f && model_threshold(back) == 0.4375f);
    ck_assert_str_eq(model_training(back), "{\"dataset\":\"x\",\"epochs\":2}");
    ck_assert_str_eq(model_fingerprint(back), model_fingerprint(m));
    ck_assert_str_eq(model_path(back), path);
    /* A loaded model embeds few rows through its transposed copy: same values. */
    float x[3 * 784], e1[3 * 64], e2[3 * 64];
    for (int i = 0; i < 3 * 784; i++)
        x[i] = (float)((i * 7919) % 1000) / 1000.0f * (i % 5 != 0);
    for (int n = 1; n <= 3; n++) {
        ck_assert_int_eq(model_embed(m, x, n, e1), 0);
        ck_assert_int_eq(model_embed(back, x, n, e2), 0);
        for (int i = 0; i < n * 64; i++)
            ck_assert_msg(fabsf(e1[i] - e2[i]) < 1e-5f, "n=%d emb[%d] %g vs %g", n, i, e1[i],
                          e2[i]);
    }
    float *p = model_params(back); /* drops the copy: changes must show */
    for (int i = 0; i < 784; i++)
        p[i] += 1.0f; /* unit 0 of layer 0 now fires for any non-negative image */
    ck_assert_int_eq(model_embed(back, x, 1, e2), 0);
    ck_assert_int_eq(model_embed(m, x, 1, e1), 0);
    int differs = 0;
    for (int i = 0; i < 64; i++)
        differs |= fabsf(e1[i] - e2[i]) > 1e-6f;
    ck_assert_msg(differs, "a changed weight did not change the embedding");
    model_free(m), model_free(back);
}
END_TEST

/* Writes a file with the reference model's tensors and metadata, with one
 * metadata key replaced (value NULL drops it) or one tensor dropped. */
static int write_variant(const char *path, const char *key, const char *value, int drop_tensor,
                         int nan_weight) {
    Model *m = new_model(2);
    float *p = model_params(m);
    if (nan_weight)
        p[5] = NAN;
    StTensor t[6];
    const char *names[] = {"dense.0.weight", "dense.0.bias",   "dense.1.weight",
                           "dense.1.bias",   "dense.2.weight", "dense.2.bias"};
    const int dims[] = {784, 128, 128, 64};
    int nt = 0;
    for (int l = 0; l < 3; l++) {
        const float *w = p + model_layer_offset(m, l);
        if (drop_tensor != 2 * l)
            t[nt++] = (StTensor){names[2 * l], 2, {dims[l + 1], dims[l]}, w};
        if (drop_tensor != 2 * l + 1)
            t[nt++] = (StTensor){names[2 * l + 1], 1, {dims[l + 1]}, w + dims[l + 1] * dims[l]};
    }
    StMeta meta[] = {{"format", "siamesed"},   {"format_version", "1"},
                     {"architecture", "mlp"},  {"layers", "784,128,128,64"},
                     {"activation", "relu"},   {"dropout", "0.1"},
                     {"input_height", "28"},   {"input_width", "28"},
                     {"input_channels", "1"},  {"preprocess", MODEL_PREPROCESS},
                     {"embedding_size", "64"}, {"margin", "1"},
                     {"threshold", "0.5"},     {"training", "{}"}};
    int nm = 0;
    StMeta out[16];
    for (size_t i = 0; i < sizeof meta / sizeof meta[0]; i++) {
        if (key && strcmp(meta[i].key, key) == 0) {
            if (value)
                out[nm++] = (StMeta){key, value};
        } else {
            out[nm++] = meta[i];
        }
    }
    char err[256];
    int rc = st_write(path, t, nt, out, nm, NULL, err);
    model_free(m);
    return rc;
}

START_TEST(loader_rejects_bad_models) {
    static const struct {
        const char *key, *value;
        int drop, nan;
    } cases[] = {
        {NULL, NULL, -1, 0}, /* control: loads */
        {"format", "other", -1, 0},
        {"format_version", "2", -1, 0},
        {"format_version", "1x", -1, 0},
        {"architecture", "cnn", -1, 0},
        {"layers", "784,128,128", -1, 0},
        {"layers", "100,128,128,64", -1, 0},
        {"layers", "784,,128,64", -1, 0},
        {"layers", "784,128,128,-64", -1, 0},
        {"input_height", "0", -1, 0},
        {"input_width", "99999999999", -1, 0},
        {"input_channels", "3", -1, 0},
        {"embedding_size", "128", -1, 0},
        {"margin", "nan", -1, 0},
        {"margin", "-1", -1, 0},
        {"threshold", "inf", -1, 0},
        {"dropout", "1", -1, 0},
        {"training", "[]", -1, 0},
        {"preprocess", "bgr", -1, 0},
        {"activation", "tanh", -1, 0},
        {"layers", NULL, -1, 0},
        {"margin", NULL, -1, 0},
        {NULL, NULL, 3, 0},
        {NULL, NULL, -1, 1},
    };
    char path[512], err[256];
    path_of(path, "bad.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_int_eq(
            write_variant(path, cases[i].key, cases[i].value, cases[i].drop, cases[i].nan), 0);
        Model *m = NULL;
        err[0] = 0;
        int rc = model_load(path, &m, err);
        if (i == 0) {
            ck_assert_msg(rc == 0, "control: %s", err);
            model_free(m);
            continue;
        }
        ck_assert_msg(rc < 0 && m == NULL, "case %zu (%s=%s) loaded", i,
                      cases[i].key ? cases[i].key : "-", cases[i].value ? cases[i].value : "-");
        ck_assert_msg(strstr(err, path) != NULL && strlen(err) > strlen(path) + 5,
                      "case %zu: message '%s'", i, err);
    }
    Model *m = NULL;
    ck_assert_int_lt(model_load("/nonexistent/model.safetensors", &m, err), 0);
    ck_assert_ptr_null(m);
}
END_TEST

/* This process's address space in bytes (VmSize), 0 if unknown. */
static size_t vm_size(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %zu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

/* A few bytes of metadata claiming a big architecture (here 416 MB of
 * parameters) over the reference model's tensors: the loader must refuse it
 * from the tensors the file holds before it allocates the parameters. With
 * the address space capped 256 MB above its current size, allocating first
 * fails with -ENOMEM (found by fuzzing: a 600-byte file made the loader
 * allocate 1.5 GB). */
START_TEST(loader_checks_tensors_before_allocating) {
    char path[512], err[256] = "";
    path_of(path, "bigarch.safetensors");
    ck_assert_int_eq(
        write_variant(path, "layers", "784,4096,4096,4096,4096,4096,4096,4096,64", -1, 0), 0);
    size_t now = vm_size();
    ck_assert_uint_gt(now, 0);
    struct rlimit old, cap;
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
    cap = old;
    if (old.rlim_cur == RLIM_INFINITY || old.rlim_cur > now + (256u << 20))
        cap.rlim_cur = now + (256u << 20);
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &cap), 0);
    Model *m = NULL;
    int rc = model_load(path, &m, err);
    setrlimit(RLIMIT_AS, &old);
    ck_assert_msg(rc == -EINVAL && m == NULL, "rc %d: %s", rc, err);
    ck_assert_msg(strstr(err, "6 tensors, the architecture has 16") != NULL, "%s", err);
}
END_TEST

START_TEST(failed_save_keeps_old_file) {
    char path[512], err[256];
    path_of(path, "keep.safetensors");
    Model *a = new_model(1), *b = NULL;
    ck_assert_int_eq(model_save(a, path, err), 0);
    ck_assert_int_lt(model_save(a, "/nonexistent-dir/x.safetensors", err), 0);
    ck_assert_int_eq(model_load(path, &b, err), 0);
    ck_assert_str_eq(model_fingerprint(a), model_fingerprint(b));
    model_free(a), model_free(b);
}
END_TEST

int main(int argc, char **argv) {
    (void)argc;
    char err[256];
    if (blas_boot(argv, err) < 0 || !mkdtemp(dir))
        return 2;
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, glorot_init);
    tcase_add_test(tc, embed_matches_naive_forward);
    tcase_add_test(tc, save_load_round_trip);
    tcase_add_test(tc, loader_rejects_bad_models);
    tcase_add_test(tc, loader_checks_tensors_before_allocating);
    tcase_add_test(tc, failed_save_keeps_old_file);
    suite_add_tcase(s, tc);
    int failed = check_run(s);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return failed ? 1 : 0;
}
