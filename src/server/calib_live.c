/*
 * calib_live.c — the threshold and operating points the daemon decides
 * with, and their reload without a restart (SIGHUP, POST /admin/reload).
 *
 * A Calib is immutable once published. Requests read the current one with
 * one atomic load and use it to the end of the request; a reload builds a
 * new one from the model file and publishes it with one atomic store, so a
 * request in flight sees either the old or the new calibration, never a
 * mix. Retired ones are not freed until the daemon stops: a request may
 * still hold one, reloads are rare and each is a few kilobytes, so keeping
 * them is simpler and safer than reference counts on the hot path.
 *
 * The weights are never changed: a model file whose fingerprint differs
 * from the one being served is refused (its embeddings would not match the
 * store's; that takes a restart and --reembed).
 */
#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"
#include "siamese/common.h"
#include "siamese/log.h"

static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER; /* one reload at a time */

static Calib *calib_new(const Model *m, Calib *prev) {
    Calib *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->threshold = model_threshold(m);
    c->prev = prev;
    if (model_operating_points(m) && !(c->ops = optable_dup(model_operating_points(m)))) {
        free(c);
        return NULL;
    }
    return c;
}

int serve_calib_init(Server *srv, char *err) {
    Calib *c = calib_new(srv->model, NULL);
    if (!c)
        return sm_err(err, -ENOMEM, "out of memory");
    atomic_store(&srv->calib, c);
    return 0;
}

const Calib *serve_calib(Server *srv) {
    const Calib *c = atomic_load(&srv->calib);
    assert(c); /* published by serve_calib_init() before HTTP starts */
    return c;
}

void serve_calib_free(Server *srv) {
    Calib *c = atomic_exchange(&srv->calib, NULL);
    while (c) {
        Calib *prev = c->prev;
        optable_free(c->ops);
        free(c);
        c = prev;
    }
}

/* Loads the model file again and publishes its calibration; err says why not. */
static int reload_locked(Server *srv, char *err) {
    Model *m = NULL;
    int rc = model_load(srv->cfg->model, &m, err);
    if (rc < 0)
        return rc;
    if (strcmp(model_fingerprint(m), model_fingerprint(srv->model)) != 0) {
        rc = sm_err(err, -ESTALE,
                    "%s now holds other weights (fingerprint %.16s…, serving %.16s…): only the "
                    "calibration reloads; restart the daemon (and run --reembed) for new weights",
                    srv->cfg->model, model_fingerprint(m), model_fingerprint(srv->model));
        model_free(m);
        return rc;
    }
    Calib *c = calib_new(m, atomic_load(&srv->calib));
    model_free(m);
    if (!c)
        return sm_err(err, -ENOMEM, "out of memory");
    atomic_store(&srv->calib, c);
    log_info("siamesed: calibration reloaded from %s: threshold %.4f, %s", srv->cfg->model,
             (double)c->threshold, c->ops ? "with operating points" : "no operating points");
    return 0;
}

int serve_calib_reload(Server *srv, char *err) {
    pthread_mutex_lock(&reload_lock);
    int rc = reload_locked(srv, err);
    pthread_mutex_unlock(&reload_lock);
    if (rc < 0)
        log_warn("siamesed: calibration not reloaded: %s", err);
    return rc;
}
