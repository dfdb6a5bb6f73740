/*
 * serve.h — the daemon's entry points, called by main() with the merged
 * settings: serve_run() loads the model, opens the store and answers HTTP
 * until SIGTERM/SIGINT; serve_reembed() rebuilds every stored embedding with
 * the configured model (after a model change) and exits.
 */
#ifndef SIAMESE_SERVE_H
#define SIAMESE_SERVE_H

#include <stdio.h>

#include "siamese/config.h"
#include "siamese/model.h"
#include "siamese/store.h"

/* Start-up checks that come before anything is loaded or trained (the
 * caller runs it first in serve mode): reads api_key_file, creating it with
 * a random key if missing and api_keys is empty (mode 0600; the key is logged
 * only then), and adds its key to cfg->api_keys; then refuses (-EPERM, err naming --api-keys) to
 * serve an address other than loopback with no key unless allow_anonymous;
 * finally refuses (-ENOENT) a missing model file when the database holds
 * samples, naming the model that made them (a mistyped --model must not
 * train a default model over them). */
int serve_prepare(Config *cfg, char *err);

/* Serves until SIGTERM/SIGINT; cfg as serve_prepare() left it. */
int serve_run(const Config *cfg, char *err);
int serve_reembed(const Config *cfg, char *err);
/* --enroll: every image of cfg->data (DIR/<subject>/<image>, or an IDX set:
 * subject = label) into the store, skipping files already enrolled (see
 * src/server/bulk.c). Progress on stderr. */
int serve_enroll(const Config *cfg, char *err);

/* `siamesed --info`: prints cfg->model's architecture, input, threshold,
 * recorded metrics, quality and fingerprint to f and, when cfg->db exists,
 * whether its samples were made by this model. -errno if the model does not
 * load. */
int serve_info(const Config *cfg, FILE *f, char *err);

/* The model's quality verdict: "ok", "below_floor" (validation ROC AUC under
 * MODEL_AUC_FLOOR) or "unmeasured" (no validation AUC recorded, as in an
 * imported model); *auc gets the AUC or NaN. Static string. */
const char *serve_model_quality(const Model *m, double *auc);

/* The message for a store (cfg->db) holding samples of models other than fp
 * (c: n counts from store_peek(), at least one of another model): both
 * fingerprints and `siamesed --reembed --model ... --db ...`, or, when some
 * of those samples kept no image, what the options are. Returns -ESTALE. */
int serve_mismatch(const Config *cfg, const char *fp, const StoreModelCount *c, int n, char *err);

#endif
