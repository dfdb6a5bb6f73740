/*
 * info.c — what siamesed says about a model and the store it meets:
 * `siamesed --info`, the quality verdict (validation AUC against
 * MODEL_AUC_FLOOR) that start-up logs and GET /model reports, and the one
 * message for a store whose samples another model made, which names both
 * fingerprints and the command that fixes it.
 */
#include <assert.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "siamese/common.h"
#include "siamese/optable.h"
#include "siamese/serve.h"
#include "siamese/store.h"

#define FP_SHOWN 12 /* fingerprint characters in one-line messages, as git abbreviates */
#define PEEK_MAX 8

const char *serve_model_quality(const Model *m, double *auc) {
    cJSON *t = cJSON_Parse(model_training(m));
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(t, "validation"), "roc_auc");
    *auc = cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : NAN;
    cJSON_Delete(t);
    if (isnan(*auc))
        return "unmeasured";
    return *auc < MODEL_AUC_FLOOR ? "below_floor" : "ok";
}

int serve_mismatch(const Config *cfg, const char *fp, const StoreModelCount *c, int n, char *err) {
    int64_t other = 0, images = 0;
    int first = -1, n_other = 0;
    for (int i = 0; i < n; i++)
        if (strcmp(c[i].fingerprint, fp) != 0) {
            other += c[i].samples, images += c[i].with_image, n_other++;
            first = first < 0 ? i : first;
        }
    assert(first >= 0 && "serve_mismatch() without a sample of another model");
    char models[64];
    snprintf(models, sizeof models, "%.*s%s", FP_SHOWN, c[first].fingerprint,
             n_other > 1 ? " and others" : "");
    const char *s = other == 1 ? " was" : "s were";
    /* A URI's ? and & need quoting in the command to copy. */
    const char *q = strpbrk(cfg->db, "?&;| ") && !strchr(cfg->db, '\'') ? "'" : "";
    if (images == other)
        return sm_err(err, -ESTALE,
                      "%s: %lld sample%s made by model %s, not by %s (%.*s): to convert them "
                      "run `siamesed --reembed --model %s --db %s%s%s`",
                      cfg->db, (long long)other, s, models, cfg->model, FP_SHOWN, fp, cfg->model, q,
                      cfg->db, q);
    return sm_err(err, -ESTALE,
                  "%s: %lld sample%s made by model %s, not by %s (%.*s), and %lld of them "
                  "%s no kept image, so `siamesed --reembed` cannot convert them: serve them "
                  "with the model that made them "
                  "(`siamesed --info FILE` shows a file's fingerprint), delete those subjects, "
                  "or use a new --db",
                  cfg->db, (long long)other, s, models, cfg->model, FP_SHOWN, fp,
                  (long long)(other - images), other - images == 1 ? "has" : "have");
}

static void print_metrics(FILE *f, const char *split, const cJSON *o) {
    const cJSON *auc = cJSON_GetObjectItem(o, "roc_auc"), *acc;
    acc = cJSON_GetObjectItem(o, "accuracy_calibrated");
    if (!cJSON_IsObject(o))
        return;
    fprintf(f, "  %-10s pairs %.0f", split, cJSON_GetNumberValue(cJSON_GetObjectItem(o, "pairs")));
    if (cJSON_IsNumber(acc))
        fprintf(f, "  accuracy %.4f", acc->valuedouble);
    if (cJSON_IsNumber(auc))
        fprintf(f, "  roc_auc %.4f", auc->valuedouble);
    fputc('\n', f);
}

static void print_training(FILE *f, const Model *m) {
    cJSON *t = cJSON_Parse(model_training(m));
    const cJSON *ds = cJSON_GetObjectItem(t, "dataset"), *ep = cJSON_GetObjectItem(t, "epochs");
    if (cJSON_IsString(ds))
        fprintf(f, "trained on   %s", ds->valuestring);
    if (cJSON_IsNumber(ep))
        fprintf(f, "%s%.0f epochs", cJSON_IsString(ds) ? ", " : "trained for  ", ep->valuedouble);
    if (cJSON_IsString(ds) || cJSON_IsNumber(ep))
        fputc('\n', f);
    if (!cJSON_IsObject(cJSON_GetObjectItem(t, "validation")))
        fprintf(f, "metrics      none recorded (an imported or hand-made model)\n");
    else
        fprintf(f, "metrics\n");
    print_metrics(f, "train", cJSON_GetObjectItem(t, "train"));
    print_metrics(f, "validation", cJSON_GetObjectItem(t, "validation"));
    print_metrics(f, "test", cJSON_GetObjectItem(t, "test"));
    cJSON_Delete(t);
}

/* The store line of --info: whether the samples in cfg->db are this model's. */
static void print_store(FILE *f, const Config *cfg, const char *fp) {
    StoreModelCount c[PEEK_MAX];
    int n = 0;
    char err[SM_ERRMAX];
    int rc = store_peek(cfg->db, c, PEEK_MAX, &n, err);
    int64_t total = 0, mine = 0;
    for (int i = 0; i < n; i++)
        total += c[i].samples, mine += strcmp(c[i].fingerprint, fp) == 0 ? c[i].samples : 0;
    if (rc == SM_ABSENT)
        fprintf(f, "store        %s does not exist yet\n", cfg->db);
    else if (rc < 0)
        fprintf(f, "store        cannot read it: %s\n", err);
    else if (mine == total)
        fprintf(f, "store        %s: matches (%lld sample%s, all made by this model)\n", cfg->db,
                (long long)total, total == 1 ? "" : "s");
    else if (serve_mismatch(cfg, fp, c, n, err) < 0)
        fprintf(f, "store        does not match: %s\n", err);
}

/* The operating points: the threshold's measured error rates, and the
 * thresholds for the usual false-accept targets the table can stand behind. */
static void print_operating_points(FILE *f, const Model *m) {
    const OpTable *t = model_operating_points(m);
    double far, frr;
    float thr;
    if (!t) {
        fprintf(f, "operating    none recorded (--far needs them)\n");
        return;
    }
    optable_rates_at(t, model_threshold(m), &far, &frr);
    fprintf(f, "operating    %lld+%lld pairs (%s); at the threshold FAR %.4g, FRR %.4g\n",
            (long long)optable_positives(t), (long long)optable_negatives(t), optable_source(t),
            far, frr);
    static const double targets[] = {1e-2, 1e-3, 1e-4};
    for (size_t i = 0; i < SM_ARRAY_LEN(targets); i++)
        if (optable_threshold_at_far(t, targets[i], &thr, &far, &frr, NULL) == 0)
            fprintf(f, "  far %-7g threshold %.4f (measured FAR %.4g, FRR %.4g)\n", targets[i], thr,
                    far, frr);
}

int serve_info(const Config *cfg, FILE *f, char *err) {
    Model *m = NULL;
    double auc;
    int rc = model_load(cfg->model, &m, err);
    if (rc < 0)
        return rc;
    const ModelArch *a = model_arch(m);
    fprintf(f, "model        %s\nfingerprint  %s\narchitecture %s (%s), %zu parameters\n",
            cfg->model, model_fingerprint(m), model_arch_spec(m), net_preset_of(a),
            model_n_params(m));
    fprintf(f, "input        %dx%d %s\nembedding    %d\n", a->in_h, a->in_w,
            a->in_c == 3 ? "RGB" : "gray", model_embed_dim(m));
    fprintf(f, "threshold    %.4f (margin %g)\n", model_threshold(m), model_margin(m));
    print_training(f, m);
    print_operating_points(f, m);
    const char *q = serve_model_quality(m, &auc);
    if (isnan(auc))
        fprintf(f, "quality      unmeasured (no validation AUC recorded)\n");
    else
        fprintf(f, "quality      %s (validation ROC AUC %.4f, floor %.2f)\n", q, auc,
                MODEL_AUC_FLOOR);
    print_store(f, cfg, model_fingerprint(m));
    model_free(m);
    return 0;
}
