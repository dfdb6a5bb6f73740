/*
 * serve.c — the daemon's life: load the model, open the store, start HTTP,
 * wait for SIGTERM/SIGINT, finish the requests in flight, close everything;
 * SIGHUP reloads the calibration (threshold, operating points; calib_live.c).
 * Also --reembed, which rebuilds stored embeddings for a new model.
 *
 * SIGTERM and SIGINT are caught by a handler that writes the signal number to
 * a pipe the main thread waits on. A mask plus sigwait() would not do: threads
 * started before main() (OpenBLAS's pool) do not have the signals blocked and
 * would take the default action, killing the process mid-request. A second
 * signal during shutdown just writes to the pipe again.
 */
#include "siamese/serve.h"

#include <fcntl.h>
#include <libgen.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "server.h"
#include "siamese/blas.h"
#include "siamese/common.h"
#include "siamese/log.h"

#define STOP_GRACE_S 10.0

static int stop_pipe[2] = {-1, -1};

static void on_stop_signal(int sig) {
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t w = write(stop_pipe[1], &b, 1); /* fails only when a stop is already pending */
    (void)w;
    errno = saved;
}

/* Installs the handlers; SIGPIPE is ignored (a client that goes away is not
 * a reason to die). */
static int catch_signals(char *err) {
    if (stop_pipe[0] < 0 && pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return sm_err(err, -errno, "pipe: %s", strerror(errno));
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0 ||
        sigaction(SIGHUP, &sa, NULL) < 0)
        return sm_err(err, -errno, "sigaction: %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* Blocks until a stop signal arrives; returns its number. */
static int wait_stop(void) {
    struct pollfd pfd = {.fd = stop_pipe[0], .events = POLLIN};
    unsigned char b = 0;
    for (;;) {
        if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
            return SIGTERM;
        if (read(stop_pipe[0], &b, 1) == 1)
            return b;
    }
}

/* One process owns a SQLite database: the index in memory mirrors the rows
 * only if nobody else writes them (on PostgreSQL the change feed keeps many
 * daemons' indexes in step, so none is taken). An flock on "<db>.lock" (not on the database file
 * itself, whose POSIX locks SQLite owns) is released by the kernel however the
 * process ends. Returns the lock's descriptor (kept open for life) or -errno. */
static int lock_db(const char *db, char *err) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s.lock", db) >= (int)sizeof path)
        return sm_err(err, -ENAMETOOLONG, "%s: path too long", db);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return sm_err(err, -errno, "%s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return sm_err(err, -EBUSY, "%s is in use by another siamesed process", db);
        return sm_err(err, -e, "%s: lock: %s", path, strerror(e));
    }
    return fd;
}

/* A store holding another model's samples: which model, and what to do. */
static int stale_refusal(const Config *cfg, const Model *m, char *err) {
    StoreModelCount c[8];
    int n = 0;
    char why[SM_ERRMAX];
    if (store_peek(cfg->db, c, 8, &n, why) < 0 || n == 0)
        return -ESTALE; /* err keeps store_open()'s message */
    return serve_mismatch(cfg, model_fingerprint(m), c, n, err);
}

int serve_open_parts(const Config *cfg, Model **m, Store **st, int allow_stale, char *err) {
    int rc = model_load(cfg->model, m, err);
    if (rc < 0)
        return rc;
    rc = store_dir_make(cfg->db, err);
    if (rc < 0 || (!store_db_is_postgres(cfg->db) && (rc = lock_db(cfg->db, err)) < 0))
        return rc;
    StoreConfig sc = {.path = cfg->db,
                      .fingerprint = model_fingerprint(*m),
                      .dim = model_embed_dim(*m),
                      .keep_images = cfg->keep_images,
                      .max_bytes = (int64_t)cfg->max_db_size};
    rc = store_open(&sc, st, err);
    if (rc == STORE_STALE && !allow_stale)
        return stale_refusal(cfg, *m, err);
    return rc < 0 ? rc : 0;
}

static void log_start(const Server *srv, int port) {
    int64_t subjects, samples;
    store_counts(srv->store, &subjects, &samples);
    log_info("siamesed: model %s (fingerprint %s, %d-d embeddings, threshold %.4f)",
             model_path(srv->model), model_fingerprint(srv->model), model_embed_dim(srv->model),
             model_threshold(srv->model));
    log_info("siamesed: store %s: %lld subjects, %lld samples; blas %s; auth %s%s", srv->cfg->db,
             (long long)subjects, (long long)samples, blas_kernel(),
             srv->cfg->n_api_keys ? "on" : "off", *srv->cfg->tls_cert ? "; tls on" : "");
    const char *host = srv->cfg->listen.host;
    double auc;
    const char *q = serve_model_quality(srv->model, &auc);
    if (strcmp(q, "below_floor") == 0)
        log_warn("siamesed: model %s has a validation ROC AUC of %.3f, below the floor %.2f: it "
                 "barely tells pairs apart (retrain, e.g. with --arch cnn)",
                 model_path(srv->model), auc, MODEL_AUC_FLOOR);
    else if (strcmp(q, "unmeasured") == 0)
        log_info("siamesed: model %s records no validation metrics (unmeasured): check it with "
                 "`siamesed --eval` on your data",
                 model_path(srv->model));
    log_info("siamesed: listening on %s:%d%s", *host ? host : "*", port,
             *host ? "" : " (every interface)");
}

int serve_run(const Config *cfg, char *err) {
    Model *m = NULL;
    Store *store = NULL;
    Http *http = NULL;
    Server srv = {.cfg = cfg, .started = sm_now()};
    blas_set_threads(1); /* one request per worker thread; no nested pools */
    /* Blocks of 1 MiB and more (a batch /embed's scratch, large bodies) are
     * mapped and unmapped each time: glibc would otherwise raise the
     * threshold after the first free and keep such blocks in every worker's
     * arena. With the cnn model, five /embed of 100 images left RSS at 53 MB
     * instead of 29 (an mmap and its page faults cost ~1 ms per 8 MB). An
     * operator's own setting (GLIBC_TUNABLES, MALLOC_MMAP_THRESHOLD_) stays.
     * A failure is only a memory cost (and the rule under a sanitizer's
     * allocator, which has no such knob), so it is logged at debug. */
    const char *tun = getenv("GLIBC_TUNABLES");
    if (!getenv("MALLOC_MMAP_THRESHOLD_") && !(tun && strstr(tun, "mmap_threshold")) &&
        !mallopt(M_MMAP_THRESHOLD, 1 << 20))
        log_debug("mallopt(M_MMAP_THRESHOLD) refused: large buffers may stay in the heap");
    int rc = catch_signals(err);
    if (rc < 0 || (rc = serve_open_parts(cfg, &m, &store, 0, err)) < 0)
        goto out;
    srv.model = m, srv.store = store;
    if ((rc = serve_calib_init(&srv, err)) < 0)
        goto out;
    double auc;
    srv.model_quality = serve_model_quality(m, &auc);
    srv.img_limits = (ImgLimits){cfg->max_image_width, cfg->max_image_height,
                                 (uint64_t)cfg->max_image_pixels, cfg->max_image_memory, NULL};
    if ((rc = auth_new(cfg->api_keys, cfg->n_api_keys, &srv.auth, err)) < 0 ||
        (cfg->rate_limit > 0 && (rc = ratelimit_new(cfg->rate_limit, cfg->rate_burst,
                                                    cfg->n_api_keys, &srv.limits, err)) < 0))
        goto out;
    if (!(srv.stats = route_stats_new())) {
        rc = sm_err(err, -ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = http_start(&srv, &http, err)) < 0)
        goto out;
    log_start(&srv, http_port(http));
    if (cfg->log_level == LOG_DEBUG)
        config_log(cfg);
    int sig;
    while ((sig = wait_stop()) == SIGHUP) /* reload the calibration, keep serving */
        serve_calib_reload(&srv, err);
    log_info("siamesed: %s received, finishing requests in flight", strsignal(sig));
    http_stop(http, STOP_GRACE_S);
    log_info("siamesed: stopped");
out:
    store_close(store);
    auth_free(srv.auth);
    ratelimit_free(srv.limits);
    promstats_free(srv.stats);
    serve_calib_free(&srv);
    model_free(m);
    return rc;
}

typedef struct {
    const Model *m;
    ImgLimits lim;
} ReembedCtx;

static int reembed_one(void *ctx, const uint8_t *image, size_t len, const char *content_type,
                       float *out, char *err) {
    ReembedCtx *c = ctx;
    const ModelArch *a = model_arch(c->m);
    (void)content_type;
    float *x = malloc((size_t)model_in_dim(c->m) * sizeof *x);
    if (!x)
        return sm_err(err, -ENOMEM, "out of memory");
    int rc = img_load_mem_c(image, len, &c->lim, a->in_h, a->in_w, a->in_c, x, err);
    if (rc == 0 && model_embed(c->m, x, 1, out) < 0)
        rc = sm_err(err, -ENOMEM, "out of memory");
    free(x);
    return rc;
}

int serve_reembed(const Config *cfg, char *err) {
    Model *m = NULL;
    Store *store = NULL;
    int64_t done = 0;
    int rc = serve_open_parts(cfg, &m, &store, 1, err);
    if (rc == 0) {
        ReembedCtx ctx = {m,
                          {cfg->max_image_width, cfg->max_image_height,
                           (uint64_t)cfg->max_image_pixels, cfg->max_image_memory, NULL}};
        rc = store_reembed(store, reembed_one, &ctx, &done, err);
    }
    if (rc == 0)
        log_info("reembed: %lld samples now carry model %s", (long long)done, model_fingerprint(m));
    store_close(store);
    model_free(m);
    return rc;
}
