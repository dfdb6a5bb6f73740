/*
 * main.c — the siamesed command line: serve (default), --train, --eval,
 * --reembed, --enroll, --help, --version. It turns settings (config.h) into calls on
 * the modules and is the only place that exits: every failure arrives here as
 * a negative errno with a one-line message, printed as "siamesed: message".
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "siamese/audit.h"
#include "siamese/blas.h"
#include "siamese/calibrate.h"
#include "siamese/common.h"
#include "siamese/config.h"
#include "siamese/dataset.h"
#include "siamese/layers.h"
#include "siamese/log.h"
#include "siamese/model.h"
#include "siamese/report_html.h"
#include "siamese/serve.h"
#include "siamese/train.h"
#include "sm_build.h"

/* Training progress goes through the log (its format, --log-level): a
 * log_stream() opened in run(); stderr if that failed. */
static FILE *progress;

static ImgLimits limits_of(const Config *cfg) {
    return (ImgLimits){cfg->max_image_width, cfg->max_image_height, (uint64_t)cfg->max_image_pixels,
                       cfg->max_image_memory, NULL};
}

static DatasetLoad load_of(const Config *cfg, const ImgLimits *lim, int h, int w, int c) {
    return (DatasetLoad){
        .want_h = h, .want_w = w, .lim = lim, .skip_bad = cfg->skip_bad_images, .channels = c};
}

static PairsMode pairs_of(const Config *cfg) {
    return cfg->pairs == CONFIG_PAIRS_KERAS ? PAIRS_KERAS
           : cfg->pairs == CONFIG_PAIRS_ALL ? PAIRS_ALL
                                            : PAIRS_AUTO;
}

static int threads_of(const Config *cfg) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return cfg->threads > 0 ? cfg->threads : n > 0 ? (int)n : 1;
}

/* Fails early (before a long training run) if the model cannot be written. */
static int check_writable(const char *path, char *err) {
    char *copy = strdup(path), probe[4096];
    if (!copy)
        return sm_err(err, -ENOMEM, "out of memory");
    const char *dir = dirname(copy);
    int rc = sm_mkdirs(dir, err);
    if (rc == 0 && snprintf(probe, sizeof probe, "%s/.siamesed-probe.%ld", dir, (long)getpid()) <
                       (int)sizeof probe) {
        int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd < 0)
            rc = sm_err(err, -errno, "cannot write %s: %s", path, strerror(errno));
        else
            close(fd), unlink(probe);
    }
    free(copy);
    return rc;
}

/* Loads the test split: --test-data (its test split, or the whole of it), or
 * the test split of --data. *test stays NULL when there is none. */
static int load_test(const Config *cfg, int h, int w, int c, Dataset **test, char *err) {
    ImgLimits lim = limits_of(cfg);
    const char *path = *cfg->test_data ? cfg->test_data : cfg->data;
    DatasetLoad opt = load_of(cfg, &lim, h, w, c);
    int rc = dataset_load_with(path, DATASET_TEST, &opt, test, err);
    if (rc == SM_ABSENT && *cfg->test_data)
        rc = dataset_load_with(path, DATASET_TRAIN, &opt, test, err);
    return rc == SM_ABSENT ? 0 : rc;
}

/* The layer list of --arch, or else the MLP of --hidden and --dropout. */
static int arch_from(const Config *cfg, int h, int w, int c, ModelArch *a, char *err) {
    char spec[NET_MAX_SPEC] = "";
    size_t len = 0;
    if (*cfg->arch)
        return net_parse(cfg->arch, h, w, c, a, err);
    for (int l = 0; l < cfg->n_hidden; l++) {
        len += (size_t)snprintf(spec + len, sizeof spec - len, "%sfc%d,relu", l ? "," : "",
                                cfg->hidden[l]);
        if (l + 1 < cfg->n_hidden && cfg->dropout > 0)
            len += (size_t)snprintf(spec + len, sizeof spec - len, ",drop%.9g", cfg->dropout);
    }
    return net_parse(spec, h, w, c, a, err);
}

/* The model input: --input, or 0x0 (the data's own size) with C=1; an image
 * directory (no IDX files) defaults to 28x28x1 rather than its first file's size. */
static int input_of(const Config *cfg, const char *data, int *h, int *w, int *c, char *err) {
    char idx[4096];
    *h = *w = 0, *c = 1;
    if (*cfg->input)
        return net_parse_input(cfg->input, h, w, c, err);
    snprintf(idx, sizeof idx, "%s/train-images-idx3-ubyte", data);
    int is_idx = access(idx, F_OK) == 0;
    snprintf(idx, sizeof idx, "%s/train-images-idx3-ubyte.gz", data);
    if (!is_idx && access(idx, F_OK) != 0)
        *h = *w = 28;
    return 0;
}

static ConfigSource origin_of(const Config *cfg, const char *key) {
    for (size_t i = 0; config_key(i); i++)
        if (strcmp(config_key(i), key) == 0)
            return (ConfigSource)cfg->origin[i];
    return CONFIG_SRC_DEFAULT;
}

static int train_config_from(const Config *cfg, const Dataset *train, TrainConfig *tc, char *err) {
    train_config_default(tc);
    int rc = arch_from(cfg, train->h, train->w, train->c, &tc->arch, err);
    if (rc < 0)
        return rc;
    tc->epochs = cfg->epochs, tc->batch = cfg->batch, tc->lr = (float)cfg->lr;
    tc->optimizer = cfg->optimizer == CONFIG_OPT_ADAM ? OPT_ADAM : OPT_RMSPROP;
    tc->margin = (float)cfg->margin, tc->seed = cfg->seed, tc->threads = threads_of(cfg);
    tc->val_fraction = cfg->val_fraction, tc->data_name = cfg->data, tc->progress = progress;
    tc->pairs = pairs_of(cfg);
    tc->patience = cfg->patience, tc->force = cfg->force;
    tc->lr_schedule = cfg->lr_schedule == CONFIG_LR_COSINE ? LR_COSINE : LR_CONSTANT;
    tc->weight_decay = (float)cfg->weight_decay, tc->ema = (float)cfg->ema;
    /* A preset trains as it does best unless told otherwise (train_preset_defaults()). */
    TrainPreset pre = train_preset_defaults(net_preset_of(&tc->arch));
    if (pre.epochs && origin_of(cfg, "epochs") == CONFIG_SRC_DEFAULT)
        tc->epochs = pre.epochs;
    if (pre.lr > 0 && origin_of(cfg, "lr") == CONFIG_SRC_DEFAULT)
        tc->lr = pre.lr;
    if (pre.lr_schedule != LR_CONSTANT && origin_of(cfg, "lr_schedule") == CONFIG_SRC_DEFAULT)
        tc->lr_schedule = pre.lr_schedule;
    if (pre.weight_decay > 0 && origin_of(cfg, "weight_decay") == CONFIG_SRC_DEFAULT)
        tc->weight_decay = pre.weight_decay;
    if (pre.train_pairs != PAIRS_AUTO && origin_of(cfg, "pairs") == CONFIG_SRC_DEFAULT)
        tc->train_pairs = pre.train_pairs;
    if (pre.augment && origin_of(cfg, "augment") == CONFIG_SRC_DEFAULT)
        return train_parse_augment(pre.augment, tc, err);
    return train_parse_augment(cfg->augment, tc, err);
}

/* --report: the HTML report, charting the test split (the training data's
 * when there is none) with the pairs the metrics were computed on. */
static int write_report(const Config *cfg, const char *command, const Model *m, const char *path,
                        const Dataset *train, const Dataset *test, const TrainReport *rep,
                        int with_throughput, char *err) {
    if (!*cfg->report)
        return 0;
    double t0 = sm_now();
    ReportHtml r = {command,       m,         path, test ? test : train, test ? "test" : "train",
                    pairs_of(cfg), cfg->seed, rep,  with_throughput};
    int rc = report_html_write(cfg->report, &r, err);
    if (rc == 0)
        log_info("report: wrote %s in %.2f s", cfg->report, sm_now() - t0);
    return rc;
}

/* Trains a model on cfg->data and writes it to out; prints the report. */
static int cmd_train(const Config *cfg, const char *out, char *err) {
    Dataset *train = NULL, *test = NULL;
    Model *m = NULL;
    TrainConfig tc;
    TrainReport rep;
    ImgLimits lim = limits_of(cfg);
    int h, w, c, rc = input_of(cfg, cfg->data, &h, &w, &c, err);
    DatasetLoad opt = load_of(cfg, &lim, h, w, c);
    ModelArch spelled;
    TrainConfig early;
    /* Spelling mistakes fail now, not after the data is loaded. */
    if (rc == 0 && *cfg->arch)
        rc = net_parse(cfg->arch, 0, 0, 0, &spelled, err);
    if (rc == 0)
        rc = train_parse_augment(cfg->augment, &early, err);
    if (rc == 0)
        rc = check_writable(out, err);
    if (rc < 0 || (*cfg->report && (rc = check_writable(cfg->report, err)) < 0))
        goto out;
    log_info("train: loading %s", cfg->data);
    if ((rc = dataset_load_with(cfg->data, DATASET_TRAIN, &opt, &train, err)) != 0) {
        if (rc == SM_ABSENT)
            rc = sm_err(err, -ENOENT, "%s: no training data", cfg->data);
        goto out;
    }
    if ((rc = load_test(cfg, train->h, train->w, train->c, &test, err)) < 0 ||
        (rc = train_config_from(cfg, train, &tc, err)) < 0 ||
        (rc = train_run(&tc, train, test, &m, &rep, err)) < 0 || (rc = model_save(m, out, err)) < 0)
        goto out;
    log_info("train: wrote %s (fingerprint %.16s…)", out, model_fingerprint(m));
    train_report_print(stdout, out, &rep, cfg->json, 1);
    fflush(stdout); /* before serving, when this was the default model's training */
    rc = write_report(cfg, "--train", m, out, train, test, &rep, 1, err);
out:
    model_free(m);
    dataset_free(train);
    dataset_free(test);
    return rc;
}

/* --import: a PyTorch state_dict as a model of --arch, its threshold from
 * --threshold or calibrated on --data, written to --out. */
static int cmd_import(const Config *cfg, ConfigSource data_origin, char *err) {
    Model *m = NULL;
    Dataset *d = NULL;
    ModelArch arch;
    Metrics met;
    ImgLimits lim = limits_of(cfg);
    const char *out = *cfg->out ? cfg->out : cfg->model;
    int h = 28, w = 28, c = 1, calibrate = cfg->threshold == 0 && data_origin != CONFIG_SRC_DEFAULT;
    int rc = *cfg->input ? net_parse_input(cfg->input, &h, &w, &c, err) : 0;
    if (rc == 0 && !*cfg->arch)
        rc = sm_err(err, -EINVAL, "--import needs --arch (the network's layer list)");
    if (rc < 0 || (rc = net_parse(cfg->arch, h, w, c, &arch, err)) < 0 ||
        (rc = check_writable(out, err)) < 0 || (rc = model_import(cfg->import, &arch, &m, err)) < 0)
        goto out;
    model_set_margin(m, (float)cfg->margin);
    model_set_threshold(m, cfg->threshold > 0 ? (float)cfg->threshold : 0.5f);
    if (calibrate) {
        DatasetLoad opt = load_of(cfg, &lim, h, w, c);
        blas_set_threads(threads_of(cfg));
        if ((rc = dataset_load_with(cfg->data, DATASET_TRAIN, &opt, &d, err)) != 0 ||
            (rc = train_calibrate(m, d, pairs_of(cfg), cfg->seed, &met, err)) < 0) {
            rc = rc == SM_ABSENT ? sm_err(err, -ENOENT, "%s: no data", cfg->data) : rc;
            goto out;
        }
        log_info("import: threshold %.4f calibrated on %zu pairs of %s (accuracy %.4f)",
                 model_threshold(m), met.pairs, cfg->data, met.accuracy_calibrated);
    }
    if ((rc = model_save(m, out, err)) == 0)
        printf("imported %s as %s (%s, %zu parameters, threshold %.4f)\n", cfg->import, out,
               model_arch_spec(m), model_n_params(m), model_threshold(m));
out:
    model_free(m);
    dataset_free(d);
    return rc;
}

static int cmd_eval(const Config *cfg, char *err) {
    Model *m = NULL;
    Dataset *train = NULL, *test = NULL;
    TrainReport rep = {0};
    ImgLimits lim = limits_of(cfg);
    int rc = model_load(cfg->model, &m, err);
    if (rc < 0)
        goto out;
    const ModelArch *a = model_arch(m);
    rep.threshold = model_threshold(m);
    blas_set_threads(threads_of(cfg));
    DatasetLoad opt = load_of(cfg, &lim, a->in_h, a->in_w, a->in_c);
    rc = dataset_load_with(cfg->data, DATASET_TRAIN, &opt, &train, err);
    if (rc == SM_ABSENT)
        rc = sm_err(err, -ENOENT, "%s: no data", cfg->data);
    if (rc < 0 || (rc = load_test(cfg, a->in_h, a->in_w, a->in_c, &test, err)) < 0 ||
        (rc = train_evaluate(m, train, pairs_of(cfg), cfg->seed, &rep.train, &rep.train_pairs,
                             err)) < 0 ||
        (test && (rc = train_evaluate(m, test, pairs_of(cfg), cfg->seed, &rep.test, &rep.test_pairs,
                                      err)) < 0))
        goto out;
    train_report_print(stdout, cfg->model, &rep, cfg->json, 0);
    rc = write_report(cfg, "--eval", m, cfg->model, train, test, &rep, 0, err);
out:
    model_free(m);
    dataset_free(train);
    dataset_free(test);
    return rc;
}

/* --calibrate: threshold and operating points of `model` on `data`, to `out`. */
static int cmd_calibrate(const Config *cfg, char *err) {
    ImgLimits lim = limits_of(cfg);
    CalibConfig cc = {.model = cfg->model,
                      .data = cfg->data,
                      .out = *cfg->out ? cfg->out : cfg->model,
                      .far = cfg->far,
                      .objective = cfg->objective == 1 ? CALIB_EER : CALIB_ACCURACY,
                      .pairs = pairs_of(cfg),
                      .seed = cfg->seed,
                      .lim = &lim,
                      .skip_bad = cfg->skip_bad_images,
                      .json = cfg->json,
                      .report = stdout};
    blas_set_threads(threads_of(cfg));
    return calib_run(&cc, err);
}

/* --audit: the samples of `data` whose neighbours doubt their label. */
static int cmd_audit(const Config *cfg, char *err) {
    ImgLimits lim = limits_of(cfg);
    AuditConfig ac = {.model = cfg->model,
                      .data = cfg->data,
                      .top = cfg->top,
                      .json = cfg->json,
                      .report = cfg->report,
                      .lim = &lim,
                      .skip_bad = cfg->skip_bad_images,
                      .out = stdout};
    blas_set_threads(threads_of(cfg));
    return audit_run(&ac, err);
}

/* --train without --out writes to `model`, which a daemon may be serving:
 * replacing a model file that exists takes --force. */
static int train_target_check(const Config *cfg, char *err) {
    if (*cfg->out || cfg->force || access(cfg->model, F_OK) != 0)
        return 0;
    return sm_err(err, -EEXIST,
                  "%s exists (perhaps the model a daemon serves): write the new one elsewhere "
                  "with --out FILE, or pass --force to replace it",
                  cfg->model);
}

static void print_version(void) {
    printf("siamesed %s (OpenBLAS kernel %s)\n", SM_VERSION, blas_kernel());
}

static int run(int argc, char **argv, char **envp, char *err) {
    Config cfg;
    ConfigMode mode;
    int rc = config_parse(argc, argv, envp, &cfg, &mode, err);
    if (rc < 0)
        return rc;
    /* The kernel choice re-executes the process, so it happens once settings
     * are known and before any OpenBLAS work. */
    setenv("SIAMESED_BLAS_KERNEL", cfg.blas_kernel, 1);
    if ((rc = blas_boot(argv, err)) < 0)
        goto out;
    if (conv2d_set_backend((ConvBackend)cfg.conv_backend) < 0) {
        rc = sm_err(err, -ENOTSUP, "conv_backend %s: oneDNN%s is not available in this build",
                    conv2d_backend_name_of((ConvBackend)cfg.conv_backend),
                    cfg.conv_backend == CONV_ONEDNN_BF16 ? " (or its bf16 kernels on this CPU)"
                                                         : "");
        goto out;
    }
    log_set_level(cfg.log_level);
    if (!(progress = log_stream(LOG_INFO)))
        progress = stderr;
    switch (mode) {
    case CONFIG_MODE_HELP:
        config_print_help(stdout);
        break;
    case CONFIG_MODE_VERSION:
        print_version();
        break;
    case CONFIG_MODE_TRAIN:
        rc = train_target_check(&cfg, err);
        if (rc == 0)
            rc = cmd_train(&cfg, *cfg.out ? cfg.out : cfg.model, err);
        break;
    case CONFIG_MODE_INFO:
        rc = serve_info(&cfg, stdout, err);
        break;
    case CONFIG_MODE_EVAL:
        rc = cmd_eval(&cfg, err);
        break;
    case CONFIG_MODE_SERVE:
        if (*cfg.import) {
            rc = cmd_import(&cfg, origin_of(&cfg, "data"), err);
            break;
        }
        if ((rc = serve_prepare(&cfg, err)) < 0)
            break;
        if (cfg.train_if_missing && access(cfg.model, F_OK) != 0) {
            log_info("serve: no model at %s; training the default model on %s", cfg.model,
                     cfg.data);
            if ((rc = cmd_train(&cfg, cfg.model, err)) < 0)
                break;
        }
        rc = serve_run(&cfg, err);
        break;
    case CONFIG_MODE_REEMBED:
        rc = serve_reembed(&cfg, err);
        break;
    case CONFIG_MODE_ENROLL:
        rc = serve_enroll(&cfg, err);
        break;
    case CONFIG_MODE_CALIBRATE:
        rc = cmd_calibrate(&cfg, err);
        break;
    case CONFIG_MODE_AUDIT:
        rc = cmd_audit(&cfg, err);
        break;
    }
out:
    if (progress && progress != stderr)
        fclose(progress);
    progress = NULL;
    config_free(&cfg);
    return rc;
}

int main(int argc, char **argv, char **envp) {
    char err[SM_ERRMAX] = "";
    int rc = run(argc, argv, envp, err);
    if (rc < 0) {
        fprintf(stderr, "siamesed: %s\n", err[0] ? err : strerror(-rc));
        return 1;
    }
    return 0;
}
