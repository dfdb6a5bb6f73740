/*
 * test_train.c — the trainer end to end on a slice of Fashion-MNIST (from
 * Debian's dataset-fashion-mnist, installed by scripts/install-deps.sh): a
 * short run must learn (stated accuracy floors), the calibrated threshold must
 * come from validation pairs and be stored, and a fixed seed and thread count
 * must give bit-identical weights.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siamese/blas.h"
#include "siamese/dataset.h"
#include "siamese/network.h"
#include "siamese/rng.h"
#include "siamese/train.h"

#include "check_util.h"

#define FMNIST "/usr/share/datasets/fashion-mnist"

/* The first n samples of a split (n <= its size). */
static Dataset *slice(DatasetSplit split, int n) {
    Dataset *d = NULL;
    char err[256];
    ck_assert_msg(dataset_load(FMNIST, split, 0, 0, NULL, &d, err) == 0, "%s", err);
    ck_assert_int_ge(d->n, n);
    d->n = n;
    return d;
}

static TrainConfig quick_config(int epochs, uint64_t seed, int threads) {
    TrainConfig tc;
    train_config_default(&tc);
    tc.epochs = epochs, tc.seed = seed, tc.threads = threads, tc.data_name = "fmnist-slice";
    return tc;
}

/* train_run() that must succeed: the model (the caller frees it), rep filled. */
static Model *train_ok(const TrainConfig *tc, Dataset *train, const Dataset *test,
                       TrainReport *rep) {
    Model *m = NULL;
    char err[256];
    ck_assert_msg(train_run(tc, train, test, &m, rep, err) == 0, "%s", err);
    return m;
}

START_TEST(short_run_learns) {
    Dataset *train = slice(DATASET_TRAIN, 8000), *test = slice(DATASET_TEST, 2000);
    TrainConfig tc = quick_config(4, 1, 1);
    TrainReport rep;
    Model *m = train_ok(&tc, train, test, &rep);
    fprintf(stderr, "slice: test acc %.4f calibrated %.4f (thr %.3f) auc %.4f eer %.4f loss %.4f\n",
            rep.test.accuracy, rep.test.accuracy_calibrated, rep.threshold, rep.test.roc_auc,
            rep.test.eer, rep.final_loss);
    /* Untrained, the pair accuracy is about 0.5; the full recipe reaches ~0.91. */
    ck_assert_double_ge(rep.test.accuracy, 0.84);
    ck_assert_double_ge(rep.test.roc_auc, 0.90);
    ck_assert_double_le(rep.test.eer, 0.16);
    ck_assert_double_ge(rep.train.accuracy, rep.test.accuracy - 0.05);
    ck_assert(rep.final_loss > 0 && rep.final_loss < 0.12);
    /* Validation: ceil(10%) of each class's samples, held out of training. */
    ck_assert_int_ge(train->n, 7190);
    ck_assert_int_le(train->n, 7200);
    ck_assert(rep.val.pairs > 0 && rep.threshold > 0.2f && rep.threshold < 1.0f);
    ck_assert(model_threshold(m) == rep.threshold && model_margin(m) == 1.0f);
    ck_assert_ptr_nonnull(strstr(model_training(m), "\"dataset\":\"fmnist-slice\""));
    /* Metrics the model reproduces from its own file state. */
    Metrics again;
    PairsInfo info;
    char err[256];
    ck_assert_int_eq(train_evaluate(m, test, PAIRS_AUTO, 1, &again, &info, err), 0);
    ck_assert_double_eq_tol(again.accuracy, rep.test.accuracy, 1e-9);
    ck_assert_int_eq(info.mode, rep.test_pairs.mode);
    ck_assert_uint_eq(info.n, rep.test.pairs);
    model_free(m), dataset_free(train), dataset_free(test);
}
END_TEST

static Model *train_small_with(uint64_t seed, int threads, const char *optimizer,
                               LrSchedule schedule) {
    Dataset *train = slice(DATASET_TRAIN, 3000);
    TrainConfig tc = quick_config(1, seed, threads);
    tc.optimizer = strcmp(optimizer, "adam") == 0 ? OPT_ADAM : OPT_RMSPROP;
    tc.lr_schedule = schedule;
    TrainReport rep;
    Model *m = train_ok(&tc, train, NULL, &rep);
    ck_assert(isfinite(rep.final_loss) && rep.test.pairs == 0);
    dataset_free(train);
    return m;
}

/* One epoch on 3000 images with weight decay wd and a moving average of decay ema. */
static Model *train_small_reg(float wd, float ema) {
    Dataset *train = slice(DATASET_TRAIN, 3000);
    TrainConfig tc = quick_config(1, 7, 1);
    tc.weight_decay = wd, tc.ema = ema;
    TrainReport rep;
    Model *m = train_ok(&tc, train, NULL, &rep);
    fprintf(stderr, "wd %g ema %g: validation auc %.4f\n", wd, ema, rep.val.roc_auc);
    ck_assert(isfinite(rep.final_loss) && rep.val.roc_auc > 0.8); /* untrained: ~0.5 */
    dataset_free(train);
    return m;
}

static Model *train_small(uint64_t seed, int threads, const char *optimizer) {
    return train_small_with(seed, threads, optimizer, LR_CONSTANT);
}

static int same_weights(const Model *a, const Model *b) {
    return model_n_params(a) == model_n_params(b) &&
           memcmp(model_params_const(a), model_params_const(b), model_n_params(a) * 4) == 0;
}

/* A small CNN (no dropout) for one epoch on 600 images, with augmentation
 * spec aug, on threads threads. */
static Model *train_cnn_on(const char *aug, uint64_t seed, int threads) {
    Dataset *train = slice(DATASET_TRAIN, 600);
    TrainConfig tc = quick_config(1, seed, threads);
    char err[256];
    ck_assert_msg(net_parse("conv4k5,relu,pool2,conv6k3s2p1,relu,fc16", 28, 28, 1, &tc.arch, err) ==
                      0,
                  "%s", err);
    ck_assert_msg(train_parse_augment(aug, &tc, err) == 0, "%s", err);
    Model *m = NULL;
    TrainReport rep;
    ck_assert_msg(train_run(&tc, train, NULL, &m, &rep, err) == 0, "%s", err);
    ck_assert(isfinite(rep.final_loss));
    dataset_free(train);
    return m;
}

static Model *train_cnn(const char *aug, uint64_t seed) {
    return train_cnn_on(aug, seed, 1);
}

static int same_weights(const Model *a, const Model *b);

/* Mean |a - b| over the mean |a| of two models' parameters. */
static double relative_gap(const Model *a, const Model *b) {
    const float *x = model_params_const(a), *y = model_params_const(b);
    double diff = 0, size = 0;
    for (size_t i = 0; i < model_n_params(a); i++)
        diff += fabs((double)x[i] - y[i]), size += fabs((double)x[i]);
    return diff / size;
}

/* 2 or 3 threads split each step's pairs into shares (3: unequal ones) whose
 * gradients add up to the one thread's: the same training up to rounding.
 * Augmentation is drawn for the whole batch, so it must not move either; a
 * share's gradient lost, counted twice or computed on the wrong pairs moves
 * the weights by about as much as another seed does. */
START_TEST(data_parallel_steps_match_one_thread) {
    Model *one = train_cnn_on("shift1,flip", 3, 1), *other = train_cnn_on("shift1,flip", 4, 1);
    double seeds = relative_gap(one, other);
    for (int threads = 2; threads <= 3; threads++) {
        Model *m = train_cnn_on("shift1,flip", 3, threads),
              *again = train_cnn_on("shift1,flip", 3, threads);
        double gap = relative_gap(one, m);
        fprintf(stderr, "%d threads vs 1: relative gap %.2e (another seed: %.2e)\n", threads, gap,
                seeds);
        ck_assert_msg(same_weights(m, again), "%d threads: runs differ", threads);
        ck_assert_double_lt(gap, 1e-3);
        model_free(m), model_free(again);
    }
    ck_assert_double_gt(seeds, 0.05);
    model_free(one), model_free(other);
}
END_TEST

/* Labels that say nothing about the images: the validation AUC cannot leave
 * chance, the collapse the trainer must name (unless --force). */
START_TEST(collapse_is_refused_unless_forced) {
    Dataset *train = slice(DATASET_TRAIN, 800);
    Rng r;
    rng_seed(&r, 5);
    for (int i = train->n - 1; i > 0; i--) {
        int j = (int)rng_below(&r, (uint32_t)i + 1), t = train->y[i];
        train->y[i] = train->y[j], train->y[j] = t;
    }
    TrainConfig tc = quick_config(3, 1, 1);
    Model *m = NULL;
    TrainReport rep;
    char err[512] = "";
    int rc = train_run(&tc, train, NULL, &m, &rep, err);
    ck_assert_msg(rc == -EDOM && m == NULL, "rc %d: %s", rc, err);
    ck_assert_msg(strstr(err, "collapsed") && strstr(err, "--arch cnn") && !strchr(err, '\n'), "%s",
                  err);
    dataset_free(train);
    train = slice(DATASET_TRAIN, 800); /* split_off took the validation samples */
    for (int i = train->n - 1; i > 0; i--) {
        int j = (int)rng_below(&r, (uint32_t)i + 1), t = train->y[i];
        train->y[i] = train->y[j], train->y[j] = t;
    }
    tc.force = 1;
    ck_assert_msg(train_run(&tc, train, NULL, &m, &rep, err) == 0, "%s", err);
    ck_assert(m != NULL && rep.val.roc_auc < MODEL_AUC_FLOOR);
    model_free(m);
    dataset_free(train);
}
END_TEST

START_TEST(patience_keeps_the_best_epoch) {
    Dataset *train = slice(DATASET_TRAIN, 1500);
    TrainConfig tc = quick_config(5, 2, 1);
    tc.patience = 1;
    TrainReport rep;
    Model *m = train_ok(&tc, train, NULL, &rep);
    ck_assert(rep.epochs_run >= 1 && rep.epochs_run <= 5);
    ck_assert(rep.best_epoch >= 1 && rep.best_epoch <= rep.epochs_run);
    ck_assert(rep.epochs_run == 5 || rep.epochs_run - rep.best_epoch == 1);
    ck_assert(strstr(model_training(m), "\"best_epoch\"") != NULL);
    model_free(m);
    dataset_free(train);
}
END_TEST

START_TEST(cnn_augmentation_is_seeded) {
    Model *a = train_cnn("shift2,flip", 3), *b = train_cnn("shift2,flip", 3);
    Model *plain = train_cnn("", 3), *shift = train_cnn("shift1", 3),
          *other = train_cnn("shift2,flip", 4);
    ck_assert_msg(same_weights(a, b), "augmented runs with one seed differ");
    ck_assert(!same_weights(a, plain) && !same_weights(a, shift) && !same_weights(shift, plain));
    ck_assert(!same_weights(a, other));
    ck_assert_str_eq(model_arch_spec(a), "conv4k5,relu,pool2,conv6k3s2p1,relu,fc16");
    model_free(a), model_free(b), model_free(plain), model_free(shift), model_free(other);
    TrainConfig tc;
    char err[256];
    train_config_default(&tc);
    ck_assert_int_eq(train_parse_augment("flip,shift3", &tc, err), 0);
    ck_assert(tc.augment_flip == 1 && tc.augment_shift == 3);
    ck_assert_int_eq(train_parse_augment("cutout12,shift1", &tc, err), 0);
    ck_assert(tc.augment_cutout == 12 && tc.augment_shift == 1 && tc.augment_flip == 0);
    ck_assert_int_eq(train_parse_augment("", &tc, err), 0);
    ck_assert(tc.augment_flip == 0 && tc.augment_shift == 0 && tc.augment_cutout == 0);
    static const char *const bad[] = {"shift", "shift9",   "shift2x", "flop",      "flip,",
                                      ",flip", "shift-1",  "cutout",  "cutout65",  "cutout-2",
                                      "cut8",  "cutout8x", "shift1,", "cutout1,,", "cutout1e1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        ck_assert_msg(train_parse_augment(bad[i], &tc, err) == -EINVAL && strstr(err, "augment"),
                      "'%s' accepted", bad[i]);
    }
}
END_TEST

/* Cutout: seeded; a square of 64 covers every 28x28 image wherever its
 * centre falls, so both images of every pair are blank, the distances 0
 * and the gradients 0: the weights stay as initialised at any rate. */
START_TEST(cutout_is_seeded_and_cuts) {
    Model *a = train_cnn("cutout8", 3), *b = train_cnn("cutout8", 3), *plain = train_cnn("", 3);
    Model *both = train_cnn("shift1,cutout8", 3), *shift = train_cnn("shift1", 3);
    ck_assert_msg(same_weights(a, b), "cutout runs with one seed differ");
    ck_assert(!same_weights(a, plain) && !same_weights(both, shift) && !same_weights(a, both));
    model_free(a), model_free(b), model_free(plain), model_free(both), model_free(shift);
    Dataset *train = slice(DATASET_TRAIN, 600);
    TrainConfig tc = quick_config(1, 3, 1);
    char err[512];
    ck_assert_int_eq(train_parse_augment("cutout64", &tc, err), 0);
    tc.force = 1; /* the validation AUC is at chance */
    Model *m1 = NULL, *m2 = NULL;
    TrainReport rep;
    ck_assert_msg(train_run(&tc, train, NULL, &m1, &rep, err) == 0, "%s", err);
    /* every distance ~0: (margin - 0)^2 on the negatives, half of the pairs */
    ck_assert_float_eq_tol(rep.final_loss, 0.5f, 1e-3f);
    dataset_free(train);
    train = slice(DATASET_TRAIN, 600);
    tc.lr = 5e-3f;
    ck_assert_msg(train_run(&tc, train, NULL, &m2, &rep, err) == 0, "%s", err);
    ck_assert_msg(same_weights(m1, m2), "a blank image moved the weights");
    model_free(m1), model_free(m2);
    dataset_free(train);
}
END_TEST

START_TEST(fixed_seed_is_bit_identical) {
    const char *opt = _i ? "adam" : "rmsprop";
    for (int threads = 1; threads <= 2; threads++) {
        Model *a = train_small(7, threads, opt), *b = train_small(7, threads, opt);
        ck_assert_msg(same_weights(a, b), "%s, %d threads: runs differ", opt, threads);
        Model *c = train_small(8, threads, opt);
        ck_assert(!same_weights(a, c));
        model_free(a), model_free(b), model_free(c);
    }
}
END_TEST

START_TEST(cosine_schedule_is_used_and_recorded) {
    Model *a = train_small_with(7, 1, "rmsprop", LR_COSINE);
    Model *b = train_small_with(7, 1, "rmsprop", LR_COSINE);
    Model *flat = train_small_with(7, 1, "rmsprop", LR_CONSTANT);
    ck_assert_msg(same_weights(a, b), "cosine runs with one seed differ");
    ck_assert(!same_weights(a, flat));
    ck_assert_ptr_nonnull(strstr(model_training(a), "\"lr_schedule\":\"cosine\""));
    ck_assert_ptr_nonnull(strstr(model_training(flat), "\"lr_schedule\":\"constant\""));
    model_free(a), model_free(b), model_free(flat);
}
END_TEST

/* Sum of squares of the weights (biases left out) of m. */
static double weight_norm2(const Model *m) {
    size_t span[NET_MAX_LAYERS][2];
    int n = net_weight_spans(model_arch(m), model_plan(m), span);
    double s = 0;
    for (int i = 0; i < n; i++)
        for (size_t j = span[i][0]; j < span[i][1]; j++)
            s += (double)model_params_const(m)[j] * model_params_const(m)[j];
    return s;
}

START_TEST(weight_decay_shrinks_the_weights) {
    Model *plain = train_small_reg(0, 0), *wd = train_small_reg(0.5f, 0);
    ck_assert(!same_weights(plain, wd));
    /* ~40 steps of lr*wd = 5e-4: about 2% less weight, the updates alike */
    double r = weight_norm2(wd) / weight_norm2(plain);
    fprintf(stderr, "weight decay 0.5, one epoch: |w|^2 ratio %.4f\n", r);
    ck_assert_double_lt(r, 0.99);
    ck_assert_double_gt(r, 0.9);
    ck_assert_ptr_nonnull(strstr(model_training(wd), "\"weight_decay\":0.5"));
    ck_assert_ptr_nonnull(strstr(model_training(plain), "\"weight_decay\":0,"));
    model_free(plain), model_free(wd);
}
END_TEST

/* The average does not change how training goes: with a decay near 0 it is
 * the last weights; at 0.999 the model gets weights between the early and
 * the last ones, not the last ones. */
START_TEST(ema_gives_the_model_the_average) {
    Model *plain = train_small_reg(0, 0), *near0 = train_small_reg(0, 1e-6f);
    Model *avg = train_small_reg(0, 0.999f);
    const float *a = model_params_const(plain), *b = model_params_const(near0),
                *c = model_params_const(avg);
    double far = 0;
    for (size_t i = 0; i < model_n_params(plain); i++) {
        ck_assert_msg(fabsf(a[i] - b[i]) <= 1e-5f * fabsf(a[i]) + 1e-7f, "p[%zu] %g vs %g", i, a[i],
                      b[i]);
        far += fabs((double)a[i] - c[i]);
    }
    ck_assert_double_gt(far / (double)model_n_params(plain), 1e-5);
    ck_assert_ptr_nonnull(strstr(model_training(avg), "\"ema\":0.999"));
    ck_assert_ptr_nonnull(strstr(model_training(plain), "\"ema\":0,"));
    model_free(plain), model_free(near0), model_free(avg);
}
END_TEST

START_TEST(preset_defaults_leave_the_recipe_alone) {
    TrainPreset mlp = train_preset_defaults("mlp"), custom = train_preset_defaults("custom");
    ck_assert(mlp.epochs == 0 && mlp.augment == NULL && mlp.lr == 0 &&
              mlp.lr_schedule == LR_CONSTANT && mlp.train_pairs == PAIRS_AUTO);
    ck_assert(custom.epochs == 0 && custom.augment == NULL && custom.lr == 0 &&
              custom.lr_schedule == LR_CONSTANT && custom.train_pairs == PAIRS_AUTO);
    TrainPreset cnn = train_preset_defaults("cnn");
    ck_assert_int_eq(cnn.epochs, 24);
    ck_assert_int_eq(cnn.train_pairs, PAIRS_ALL);
    ck_assert_float_eq(cnn.weight_decay, 0.05f);
    ck_assert(mlp.weight_decay == 0 && custom.weight_decay == 0);
    ck_assert_str_eq(cnn.augment, "shift1");
    ck_assert_int_eq(cnn.lr_schedule, LR_COSINE);
    ck_assert(cnn.lr == 0); /* the recipe's 1e-3 */
}
END_TEST

START_TEST(bad_inputs_are_refused) {
    Dataset *train = slice(DATASET_TRAIN, 500);
    Model *m = NULL;
    TrainReport rep;
    char err[256];
    TrainConfig tc = quick_config(1, 1, 1);
    tc.arch.in_h = 32; /* the data is 28x28 */
    ck_assert_int_eq(train_run(&tc, train, NULL, &m, &rep, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "28x28"));
    tc = quick_config(1, 1, 1);
    tc.batch = 0;
    ck_assert_int_eq(train_run(&tc, train, NULL, &m, &rep, err), -EINVAL);
    /* Three samples per class: nothing can be held out for calibration. */
    train->n = 9;
    for (int i = 0; i < 9; i++)
        train->y[i] = i % 3;
    tc = quick_config(1, 1, 1);
    m = NULL;
    ck_assert_int_eq(train_run(&tc, train, NULL, &m, &rep, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "validation split"));
    train->n = 500;
    /* One usable class: no negative pairs can be made. */
    for (int i = 0; i < train->n; i++)
        train->y[i] = 0;
    tc = quick_config(1, 1, 1);
    m = NULL;
    ck_assert_int_eq(train_run(&tc, train, NULL, &m, &rep, err), -EINVAL);
    ck_assert_ptr_null(m);
    dataset_free(train);
}
END_TEST

/* Fashion-MNIST with class 0 cut to 8 samples: the recipe's pairs would keep
 * 8 of each class (the model at chance); every-image pairs, chosen
 * automatically and redrawn each epoch, keep them all and learn. */
START_TEST(imbalanced_uses_every_image) {
    Dataset *train = slice(DATASET_TRAIN, 3000), *test = slice(DATASET_TEST, 1000);
    size_t px = (size_t)train->h * (size_t)train->w;
    int k = 0, zeros = 0;
    for (int i = 0; i < train->n; i++) {
        if (train->y[i] == 0 && zeros++ >= 8)
            continue;
        memmove(train->x + (size_t)k * px, train->x + (size_t)i * px, px * sizeof(float));
        train->y[k++] = train->y[i];
    }
    train->n = k;
    TrainConfig tc = quick_config(3, 1, 1);
    TrainReport rep;
    Model *m = train_ok(&tc, train, test, &rep);
    ck_assert_int_eq(rep.train_pairs.mode, PAIRS_ALL);
    ck_assert_int_eq(rep.train_pairs.epoch, 2); /* redrawn for the third epoch */
    ck_assert_int_ge(rep.train_pairs.used, (int)(0.9 * train->n));
    ck_assert_uint_eq(rep.train.pairs, 2 * (size_t)train->n);
    ck_assert_double_lt(rep.train_pairs.keras_share, 0.1);
    fprintf(stderr, "imbalanced: test acc %.4f auc %.4f\n", rep.test.accuracy, rep.test.roc_auc);
    ck_assert_double_ge(rep.test.roc_auc, 0.85);
    model_free(m);
    dataset_free(train);
    dataset_free(test);
}
END_TEST

/* A preset's training pairs (the cnn's: every image, redrawn each epoch)
 * leave validation and test on the pairs option's (here the recipe's), so
 * its figures compare with the recipe's. */
START_TEST(train_pairs_leave_validation_and_test_alone) {
    Dataset *train = slice(DATASET_TRAIN, 1000), *test = slice(DATASET_TEST, 400);
    TrainConfig tc = quick_config(2, 1, 1);
    tc.pairs = PAIRS_KERAS, tc.train_pairs = PAIRS_ALL;
    TrainReport rep;
    Model *m = train_ok(&tc, train, test, &rep);
    ck_assert_int_eq(rep.train_pairs.mode, PAIRS_ALL);
    ck_assert_int_eq(rep.train_pairs.epoch, 1); /* redrawn for the second epoch */
    ck_assert_uint_eq(rep.train.pairs, 2 * (size_t)train->n);
    ck_assert_int_eq(rep.val_pairs.mode, PAIRS_KERAS);
    ck_assert_int_eq(rep.test_pairs.mode, PAIRS_KERAS);
    Pair *p = NULL;
    PairsInfo info;
    char err[256];
    ck_assert_int_eq(train_eval_pairs(test, PAIRS_KERAS, 1, &p, &info, err), 0);
    ck_assert_uint_eq(info.n, rep.test.pairs); /* what --eval would pair */
    free(p);
    model_free(m);
    dataset_free(train);
    dataset_free(test);
}
END_TEST

int main(int argc, char **argv) {
    (void)argc;
    char err[256];
    if (blas_boot(argv, err) < 0)
        return 2;
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, short_run_learns);
    tcase_add_loop_test(tc, fixed_seed_is_bit_identical, 0, 2);
    tcase_add_test(tc, bad_inputs_are_refused);
    tcase_add_test(tc, cosine_schedule_is_used_and_recorded);
    tcase_add_test(tc, preset_defaults_leave_the_recipe_alone);
    tcase_add_test(tc, weight_decay_shrinks_the_weights);
    tcase_add_test(tc, ema_gives_the_model_the_average);
    tcase_add_test(tc, cnn_augmentation_is_seeded);
    tcase_add_test(tc, data_parallel_steps_match_one_thread);
    tcase_add_test(tc, cutout_is_seeded_and_cuts);
    tcase_add_test(tc, collapse_is_refused_unless_forced);
    tcase_add_test(tc, patience_keeps_the_best_epoch);
    tcase_add_test(tc, imbalanced_uses_every_image);
    tcase_add_test(tc, train_pairs_leave_validation_and_test_alone);
    suite_add_tcase(s, tc);
    int failed = check_run(s);
    return failed ? 1 : 0;
}
