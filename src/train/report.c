/*
 * report.c — progress lines, the final report (a table for people, one JSON
 * object for scripts) and the training summary stored in the model file.
 * NaN metrics (e.g. AUC of a split with one kind of pair) print as null/"-".
 */
#include "siamese/report.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>

#include "siamese/blas.h"
#include "siamese/layers.h"

static void add_num(cJSON *o, const char *key, double v) {
    if (isfinite(v))
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

cJSON *report_metrics_json(const Metrics *m) {
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    add_num(o, "pairs", (double)m->pairs);
    add_num(o, "negatives", (double)m->negatives);
    add_num(o, "accuracy", m->accuracy);
    add_num(o, "accuracy_calibrated", m->accuracy_calibrated);
    add_num(o, "roc_auc", m->roc_auc);
    add_num(o, "eer", m->eer);
    add_num(o, "tar_at_far_1e-2", m->tar_at_far_1e2);
    add_num(o, "tar_at_far_1e-3", m->tar_at_far_1e3);
    /* Figures too few negatives support: named, so scripts can drop them. */
    cJSON *noise = cJSON_AddArrayToObject(o, "noise");
    if (m->pairs && !metrics_tar_reliable(m, 1e-2))
        cJSON_AddItemToArray(noise, cJSON_CreateString("tar_at_far_1e-2"));
    if (m->pairs && !metrics_tar_reliable(m, 1e-3))
        cJSON_AddItemToArray(noise, cJSON_CreateString("tar_at_far_1e-3"));
    return o;
}

/* {"loss":[..],"val_accuracy":[..]}, one number per epoch. */
static cJSON *history_json(const TrainEpoch *h, int n) {
    cJSON *o = cJSON_CreateObject(), *loss = cJSON_AddArrayToObject(o, "loss"),
          *acc = cJSON_AddArrayToObject(o, "val_accuracy");
    for (int e = 0; loss && acc && e < n; e++) {
        cJSON_AddItemToArray(loss, cJSON_CreateNumber(isfinite(h[e].loss) ? h[e].loss : 0));
        cJSON_AddItemToArray(acc, cJSON_CreateNumber(h[e].val_accuracy));
    }
    return o;
}

char *report_training_json(const TrainConfig *tc, const Dataset *train, const DataReport *data,
                           const TrainReport *rep, const TrainEpoch *history) {
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "dataset", tc->data_name ? tc->data_name : "");
    add_num(o, "samples", train->n);
    add_num(o, "epochs", tc->epochs);
    add_num(o, "batch", tc->batch);
    cJSON_AddStringToObject(o, "optimizer", tc->optimizer == OPT_ADAM ? "adam" : "rmsprop");
    add_num(o, "lr", tc->lr);
    cJSON_AddStringToObject(o, "lr_schedule", tc->lr_schedule == LR_COSINE ? "cosine" : "constant");
    add_num(o, "weight_decay", tc->weight_decay);
    add_num(o, "ema", tc->ema);
    add_num(o, "seed", (double)tc->seed);
    add_num(o, "threads", tc->threads);
    add_num(o, "val_fraction", tc->val_fraction);
    char spec[NET_MAX_SPEC] = "";
    net_format(&tc->arch, spec, sizeof spec);
    cJSON_AddStringToObject(o, "arch", spec);
    add_num(o, "augment_shift", tc->augment_shift);
    cJSON_AddBoolToObject(o, "augment_flip", tc->augment_flip);
    add_num(o, "augment_cutout", tc->augment_cutout);
    add_num(o, "final_loss", rep->final_loss);
    add_num(o, "pairs_per_s", rep->pairs_per_s);
    add_num(o, "seconds", rep->seconds);
    cJSON_AddStringToObject(o, "blas_kernel", blas_kernel());
    add_num(o, "threshold", rep->threshold);
    cJSON_AddItemToObject(o, "train", report_metrics_json(&rep->train));
    cJSON_AddItemToObject(o, "validation", report_metrics_json(&rep->val));
    if (rep->test.pairs)
        cJSON_AddItemToObject(o, "test", report_metrics_json(&rep->test));
    if (data)
        cJSON_AddItemToObject(o, "data", report_data_json(data));
    if (history)
        cJSON_AddItemToObject(
            o, "history", history_json(history, rep->epochs_run ? rep->epochs_run : tc->epochs));
    if (rep->epochs_run) {
        add_num(o, "epochs_run", rep->epochs_run);
        add_num(o, "best_epoch", rep->best_epoch);
        add_num(o, "patience", tc->patience);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

void report_epoch(FILE *f, int tty, int epoch, int epochs, double loss, double val_acc,
                  double pairs_per_s, double elapsed, double eta) {
    fprintf(f, "%sepoch %d/%d  loss %.4f  val_acc %.4f  %.0f pairs/s  elapsed %.1fs  eta %.1fs\n",
            tty ? "\r\033[K" : "", epoch, epochs, loss, val_acc, pairs_per_s, elapsed, eta);
    fflush(f);
}

void report_bar(FILE *f, int epoch, int epochs, size_t done, size_t total, double loss) {
    int width = 30, filled = (int)((double)done / (double)total * width);
    fprintf(f, "\r\033[Kepoch %d/%d [%.*s%*s] %3.0f%%  loss %.4f", epoch, epochs, filled,
            "==============================", width - filled, "",
            100.0 * (double)done / (double)total, loss);
    fflush(f);
}

/* Returns whether a TAR figure was marked as noise. */
static int print_row(FILE *f, const char *name, const Metrics *m) {
    int r2 = metrics_tar_reliable(m, 1e-2), r3 = metrics_tar_reliable(m, 1e-3);
    fprintf(f, "%-6s %8zu %9.4f %11.4f %8.4f %7.4f %10.4f%c %10.4f%c\n", name, m->pairs,
            m->accuracy, m->accuracy_calibrated, m->roc_auc, m->eer, m->tar_at_far_1e2,
            r2 ? ' ' : '*', m->tar_at_far_1e3, r3 ? ' ' : '*');
    return !r2 || !r3;
}

void train_report_print(FILE *f, const char *model_path, const TrainReport *rep, int json,
                        int with_throughput) {
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", model_path);
        add_num(o, "threshold", rep->threshold);
        cJSON_AddStringToObject(o, "blas_kernel", blas_kernel());
        cJSON_AddStringToObject(o, "conv_backend", conv2d_backend_name());
        if (with_throughput)
            add_num(o, "pairs_per_s", rep->pairs_per_s);
        cJSON_AddItemToObject(o, "train", report_metrics_json(&rep->train));
        if (rep->test.pairs)
            cJSON_AddItemToObject(o, "test", report_metrics_json(&rep->test));
        if (rep->train_pairs.n)
            cJSON_AddStringToObject(o, "pairs", pairs_mode_name(rep->train_pairs.mode));
        char *s = cJSON_PrintUnformatted(o);
        if (s)
            fprintf(f, "%s\n", s);
        free(s);
        cJSON_Delete(o);
        return;
    }
    fprintf(f, "model %s  threshold %.4f (calibrated)  blas %s", model_path, rep->threshold,
            blas_kernel());
    if (with_throughput)
        fprintf(f, "  %.0f pairs/s", rep->pairs_per_s);
    fprintf(f, "\n%-6s %8s %9s %11s %8s %7s %11s %11s\n", "split", "pairs", "acc@0.5", "acc@calib",
            "roc_auc", "eer", "tar@far1e-2", "tar@far1e-3");
    int marked = print_row(f, "train", &rep->train);
    if (rep->test.pairs)
        marked |= print_row(f, "test", &rep->test);
    if (marked)
        fprintf(f,
                "* noise: TAR at FAR f needs %d/f negative pairs or more (%d for 1e-3); with "
                "fewer it rests on a handful of them\n",
                METRICS_MIN_FALSE_ACCEPTS, (int)(METRICS_MIN_FALSE_ACCEPTS / 1e-3));
    if (rep->train_pairs.n)
        fprintf(f, "pairs: train %s, test %s\n", pairs_mode_name(rep->train_pairs.mode),
                rep->test.pairs ? pairs_mode_name(rep->test_pairs.mode) : "-");
}
