/*
 * test_network.c — the layer list: spec parsing (presets, every layer form,
 * one clear line for each kind of bad spec), its canonical spelling, the plan
 * (shapes, parameter count of the cnn preset = the PyTorch peer's, nn.Sequential
 * indices), and the whole network's backward against finite differences of
 * its forward, colour input and strided, padded convs included, with
 * inference equal to the training forward.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "siamese/blas.h"
#include "siamese/common.h"
#include "siamese/network.h"
#include "siamese/rng.h"

#include "check_util.h"

START_TEST(presets_and_forms_parse) {
    ModelArch a;
    NetPlan p;
    char err[SM_ERRMAX], buf[NET_MAX_SPEC];
    ck_assert_msg(net_parse("cnn", 28, 28, 1, &a, err) == 0, "%s", err);
    ck_assert_int_eq(net_plan(&a, &p, err), 0);
    /* conv 1->32 k5, conv 32->64 k5, fc 1024->256, fc 256->128, as the peer's Cnn */
    ck_assert_uint_eq(p.n_params,
                      32 * 25 + 32 + 64 * 32 * 25 + 64 + 1024 * 256 + 256 + 256 * 128 + 128);
    ck_assert_int_eq(p.embed_dim, 128);
    ck_assert_int_eq(p.in_dim, 784);
    ck_assert_int_eq(a.n_layers, 11); /* the implied flatten */
    ck_assert_int_eq(a.layer[6].kind, NET_FLATTEN);
    ck_assert_int_eq(p.c[7], 1024);
    const int idx[] = {0, 3, 7, 10}, at[] = {0, 3, 7, 10};
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(p.torch_index[at[i]], idx[i]);
    ck_assert_str_eq(net_preset_of(&a), "cnn");
    ck_assert_int_gt(net_format(&a, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, net_preset_spec("cnn"));
    ck_assert_int_eq(net_parse("mlp", 28, 28, 1, &a, err), 0);
    ck_assert_int_eq(net_plan(&a, &p, err), 0);
    ck_assert_str_eq(net_preset_of(&a), "mlp");
    const int mlp_idx[] = {0, 3, 6};
    for (int i = 0, k = 0; i < a.n_layers; i++)
        if (a.layer[i].kind == NET_FC)
            ck_assert_int_eq(p.torch_index[i], mlp_idx[k++]);
    /* every form, and its canonical spelling back */
    ck_assert_msg(
        net_parse("conv8k3s2p1,relu,pool3,conv4k1,fc10,drop0.25,fc3", 32, 30, 3, &a, err) == 0,
        "%s", err);
    ck_assert_int_eq(net_plan(&a, &p, err), 0);
    ck_assert(p.h[1] == 16 && p.w[1] == 15 && p.c[1] == 8);
    ck_assert(p.h[3] == 5 && p.w[3] == 5);
    ck_assert_int_eq(p.c[5], 100); /* 5x5x4 flattened */
    net_format(&a, buf, sizeof buf);
    ck_assert_str_eq(buf, "conv8k3s2p1,relu,pool3,conv4k1,fc10,drop0.25,fc3");
    ck_assert_str_eq(net_preset_of(&a), "custom");
    /* Without an input size only the spelling and the order are checked. */
    ck_assert_int_eq(net_parse("conv8k9,fc2", 0, 0, 0, &a, err), 0);
    ck_assert_int_eq(net_parse("conv8k9,fc2", 8, 8, 1, &a, err), -EINVAL);
    ck_assert_int_eq(net_parse("conv8k3,tanh", 0, 0, 0, &a, err), -EINVAL);
    ck_assert_int_eq(net_parse("fc8,conv3k1", 0, 0, 0, &a, err), -EINVAL);
}
END_TEST

/* The cnn preset's weights by hand: conv 1->32 k5, conv 32->64 k5, fc 1024->256,
 * fc 256->128, each followed by its bias, which the spans leave out. */
START_TEST(weight_spans_skip_the_biases) {
    ModelArch a;
    NetPlan p;
    char err[SM_ERRMAX];
    size_t span[NET_MAX_LAYERS][2];
    ck_assert_int_eq(net_parse("cnn", 28, 28, 1, &a, err), 0);
    ck_assert_int_eq(net_plan(&a, &p, err), 0);
    ck_assert_int_eq(net_weight_spans(&a, &p, span), 4);
    const size_t want[4][2] = {{0, 800},
                               {832, 832 + 51200},
                               {832 + 51264, 832 + 51264 + 262144},
                               {832 + 51264 + 262400, 832 + 51264 + 262400 + 32768}};
    size_t weights = 0;
    for (int i = 0; i < 4; i++) {
        ck_assert_uint_eq(span[i][0], want[i][0]);
        ck_assert_uint_eq(span[i][1], want[i][1]);
        weights += span[i][1] - span[i][0];
    }
    ck_assert_uint_eq(p.n_params - weights, 32 + 64 + 256 + 128); /* the biases */
    ck_assert_int_eq(net_parse("mlp", 28, 28, 1, &a, err), 0);
    ck_assert_int_eq(net_plan(&a, &p, err), 0);
    ck_assert_int_eq(net_weight_spans(&a, &p, span), 3);
    ck_assert(span[0][0] == 0 && span[0][1] == 784 * 128);
    ck_assert(span[2][0] == 784 * 128 + 128 + 128 * 128 + 128 && span[2][1] == p.n_params - 128);
}
END_TEST

START_TEST(bad_specs_are_one_clear_line) {
    static const struct {
        const char *spec, *says;
        int h, w, c;
    } cases[] = {
        {"", "layer 1 ''", 28, 28, 1},
        {"fc128,,relu", "layer 2 ''", 28, 28, 1},
        {"fc0", "layer 1 'fc0'", 28, 28, 1},
        {"fc5000", "layer 1", 28, 28, 1},
        {"conv32", "layer 1 'conv32'", 28, 28, 1},
        {"conv32k5x,fc2", "layer 1", 28, 28, 1},
        {"tanh,fc2", "layer 1 'tanh'", 28, 28, 1},
        {"drop1,fc2", "layer 1 'drop1'", 28, 28, 1},
        {"drop-0.1,fc2", "layer 1", 28, 28, 1},
        {"conv8k3", "no fc layer", 28, 28, 1},
        {"fc10,conv8k3", "conv or pool after an fc", 28, 28, 1},
        {"conv8k9,fc2", "does not fit", 8, 8, 1},
        {"pool9,fc2", "does not fit", 8, 8, 1},
        {"conv4096k15,conv4096k1,fc2", "too large", 1024, 1024, 1},
        {"fc2", "input", 28, 28, 2},
        {"fc2", "input", 0, 28, 1},
        {"relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,"
         "relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,fc2",
         "more than", 28, 28, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ModelArch a;
        char err[SM_ERRMAX] = "";
        int rc = net_parse(cases[i].spec, cases[i].h, cases[i].w, cases[i].c, &a, err);
        ck_assert_msg(rc == -EINVAL, "'%s' parsed", cases[i].spec);
        ck_assert_msg(strstr(err, cases[i].says) && !strchr(err, '\n'), "'%s': '%s'", cases[i].spec,
                      err);
    }
}
END_TEST

/* A small network over both input kinds: loss = sum(emb * r) through
 * net_train_*, checked against finite differences of net_infer(). */
static void network_fd(const char *spec, int h, int w, int c) {
    ModelArch a;
    NetPlan p;
    NetTrain *t = NULL;
    char err[SM_ERRMAX];
    ck_assert_msg(net_parse(spec, h, w, c, &a, err) == 0, "%s", err);
    ck_assert_int_eq(net_plan(&a, &p, err), 0);
    enum { R = 3 };
    Rng rng;
    rng_seed(&rng, 5);
    float *params = malloc(p.n_params * 4), *grad = calloc(p.n_params, 4);
    float *x = malloc((size_t)R * p.in_dim * 4), *r = malloc((size_t)R * p.embed_dim * 4);
    float *e = malloc((size_t)R * p.embed_dim * 4);
    net_init(&p, &a, params, &rng);
    for (size_t i = 0; i < p.n_params; i++)
        params[i] += 0.05f * (rng_uniform(&rng) - 0.5f); /* biases too */
    check_fill(&rng, x, (size_t)R * p.in_dim, 0, 1);
    check_fill(&rng, r, (size_t)R * p.embed_dim, -1, 1);
    ck_assert_int_eq(net_train_new(&a, &p, R, &t, err), 0);
    memcpy(net_train_input(t), x, (size_t)R * p.in_dim * 4);
    const float *emb = net_train_forward(t, params, R, &rng);
    ck_assert_int_eq(net_infer(&a, &p, params, NULL, x, R, e), 0);
    check_close(e, emb, (size_t)R * p.embed_dim, 1e-5, "infer vs train forward");
    float *fast = malloc(p.n_params * 4);
    net_fast_copy(&a, &p, params, fast);
    for (int n = 1; n <= R; n++) { /* the served model's copy, few rows */
        ck_assert_int_eq(net_infer(&a, &p, params, fast, x, n, e), 0);
        check_close(e, emb, (size_t)n * p.embed_dim, 1e-5, "infer with the fast copy");
    }
    net_train_backward(t, params, grad, r, R);
    const float step = 1e-2f;
    for (size_t i = 0; i < p.n_params; i += 1 + p.n_params / 300) {
        float keep = params[i];
        double up = 0, down = 0;
        params[i] = keep + step;
        net_infer(&a, &p, params, NULL, x, R, e);
        for (int k = 0; k < R * p.embed_dim; k++)
            up += (double)e[k] * r[k];
        params[i] = keep - step;
        net_infer(&a, &p, params, NULL, x, R, e);
        for (int k = 0; k < R * p.embed_dim; k++)
            down += (double)e[k] * r[k];
        params[i] = keep;
        double fd = (up - down) / (2 * step);
        ck_assert_msg(fabs(fd - grad[i]) < 5e-3 * fmax(1.0, fabs(fd)),
                      "%s: param %zu fd %g grad %g", spec, i, fd, grad[i]);
    }
    net_train_free(t);
    free(params), free(grad), free(x), free(r), free(e), free(fast);
}

START_TEST(network_gradients) {
    /* No ReLU or pool (kinks make finite differences unreliable) except where
     * the values stay away from them; pool is checked on its own in layers. */
    network_fd("conv4k3,conv3k3s2p1,fc5,fc3", 9, 8, 3);
    network_fd("conv4k3,fc6", 7, 7, 1);
    network_fd("fc6,drop0,fc4", 5, 4, 3);
    network_fd("conv2k1,fc3", 3, 3, 3);
}
END_TEST

START_TEST(training_forward_matches_inference_with_pools) {
    ModelArch a;
    NetPlan p;
    NetTrain *t = NULL;
    char err[SM_ERRMAX];
    ck_assert_int_eq(
        net_parse("conv6k3p1,relu,pool2,conv5k3,relu,pool2,fc7,relu,fc4", 13, 11, 3, &a, err), 0);
    ck_assert_int_eq(net_plan(&a, &p, err), 0);
    enum { R = 300 }; /* more than the 256 rows of one inference chunk */
    Rng rng;
    rng_seed(&rng, 9);
    float *params = malloc(p.n_params * 4), *x = malloc((size_t)R * p.in_dim * 4);
    float *e = malloc((size_t)R * p.embed_dim * 4);
    net_init(&p, &a, params, &rng);
    check_fill(&rng, x, (size_t)R * p.in_dim, 0, 1);
    ck_assert_int_eq(net_train_new(&a, &p, R, &t, err), 0);
    memcpy(net_train_input(t), x, (size_t)R * p.in_dim * 4);
    const float *emb = net_train_forward(t, params, R, &rng);
    ck_assert_int_eq(net_infer(&a, &p, params, NULL, x, R, e), 0);
    check_close(e, emb, (size_t)R * p.embed_dim, 1e-5, "pools: infer vs train");
    net_train_free(t);
    free(params), free(x), free(e);
}
END_TEST

int main(int argc, char **argv) {
    (void)argc;
    char err[256];
    if (blas_boot(argv, err) < 0)
        return 2;
    Suite *s = suite_create("network");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, presets_and_forms_parse);
    tcase_add_test(tc, bad_specs_are_one_clear_line);
    tcase_add_test(tc, weight_spans_skip_the_biases);
    tcase_add_test(tc, network_gradients);
    tcase_add_test(tc, training_forward_matches_inference_with_pools);
    suite_add_tcase(s, tc);
    return check_run(s);
}
