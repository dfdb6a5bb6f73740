/*
 * routes_store.c — the routes that read or change what is enrolled (list,
 * get, delete a subject or one sample) and the ones about the daemon itself
 * (model, healthz, metrics).
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"
#include "siamese/blas.h"
#include "siamese/common.h"

/* The subject id (and sample id) of /subjects/{id}[/samples/{sample}]. */
static int path_ids(const RouteArgs *args, int64_t *sample, Reply *rep) {
    assert(args->id);
    if (!store_subject_id_valid(args->id)) {
        reply_bad_subject(rep);
        return -1;
    }
    long v = 0;
    if (sample && req_query_int(args->sample, 1, INT64_MAX, &v, NULL) != 0) {
        reply_error(rep, 400, "bad_request", "sample ids are positive integers");
        return -1;
    }
    if (sample)
        *sample = v;
    return 0;
}

void handle_subjects(Server *srv, const HttpReq *req, const RouteArgs *args, Reply *rep) {
    (void)args;
    const char *cursor = req->query(req->conn, "cursor");
    char next[STORE_CURSOR_SIZE], err[SM_ERRMAX], after[STORE_SUBJECT_MAX + 1];
    long limit = 100;
    if (req_query_int(req->query(req->conn, "limit"), 1, STORE_LIST_MAX, &limit, err) < 0) {
        reply_error(rep, 400, "bad_request", "limit must be an integer in 1..%d", STORE_LIST_MAX);
        return;
    }
    if (cursor && *cursor && store_cursor_decode(cursor, after, err) < 0) {
        reply_error(rep, 400, "bad_request", "%s", err);
        return;
    }
    StoreListItem *items = NULL;
    int n = 0;
    int rc = store_list(srv->store, cursor, (int)limit, &items, &n, next, err);
    if (rc < 0) {
        reply_internal(rep, rc, "list", err);
        return;
    }
    cJSON *o = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(o, "subjects");
    for (int i = 0; i < n; i++) {
        cJSON *s = cJSON_CreateObject();
        char when[32];
        iso_time(items[i].created_at, when);
        cJSON_AddStringToObject(s, "subject", items[i].id);
        cJSON_AddStringToObject(s, "created_at", when);
        cJSON_AddNumberToObject(s, "sample_count", (double)items[i].n_samples);
        cJSON_AddItemToArray(list, s);
    }
    if (*next)
        cJSON_AddStringToObject(o, "next_cursor", next);
    else
        cJSON_AddNullToObject(o, "next_cursor");
    free(items);
    reply_json(rep, 200, o);
}

static void subject_reply(const StoreSubject *s, Reply *rep) {
    cJSON *o = cJSON_CreateObject(), *list;
    char when[32];
    iso_time(s->created_at, when);
    cJSON_AddStringToObject(o, "subject", s->id);
    cJSON_AddStringToObject(o, "created_at", when);
    /* Verbatim, as enrolled: the store validated it as a JSON object. */
    if (s->metadata)
        cJSON_AddRawToObject(o, "metadata", s->metadata);
    else
        cJSON_AddNullToObject(o, "metadata");
    list = cJSON_AddArrayToObject(o, "samples");
    for (int64_t i = 0; i < s->n_samples; i++) {
        cJSON *x = cJSON_CreateObject();
        iso_time(s->samples[i].created_at, when);
        cJSON_AddNumberToObject(x, "sample", (double)s->samples[i].id);
        cJSON_AddStringToObject(x, "created_at", when);
        cJSON_AddItemToArray(list, x);
    }
    cJSON_AddNumberToObject(o, "sample_count", (double)s->total);
    if (s->more) {
        char next[24];
        snprintf(next, sizeof next, "%lld", (long long)s->samples[s->n_samples - 1].id);
        cJSON_AddStringToObject(o, "next_cursor", next);
    } else {
        cJSON_AddNullToObject(o, "next_cursor");
    }
    reply_json(rep, 200, o);
}

/* ?limit= (1..STORE_LIST_MAX, default 100) and ?cursor= (a next_cursor). */
static int page_of(const HttpReq *req, long *limit, long *after, Reply *rep) {
    const char *cursor = req->query(req->conn, "cursor");
    *limit = 100, *after = 0;
    if (req_query_int(req->query(req->conn, "limit"), 1, STORE_LIST_MAX, limit, NULL) < 0) {
        reply_error(rep, 400, "bad_request", "limit must be an integer in 1..%d", STORE_LIST_MAX);
        return -1;
    }
    if (cursor && *cursor && req_query_int(cursor, 1, INT64_MAX, after, NULL) < 0) {
        reply_error(rep, 400, "bad_request", "cursor is not a next_cursor of this route");
        return -1;
    }
    return 0;
}

void handle_subject_delete(Server *srv, const HttpReq *req, const RouteArgs *args, Reply *rep) {
    char err[SM_ERRMAX];
    int64_t removed = 0;
    (void)req;
    if (path_ids(args, NULL, rep) < 0)
        return;
    int rc = store_delete_subject(srv->store, args->id, &removed, err);
    if (rc == SM_ABSENT) {
        reply_error(rep, 404, "subject_not_found", "no subject '%s'", args->id);
    } else if (rc < 0) {
        reply_internal(rep, rc, "delete", err);
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "subject", args->id);
        cJSON_AddNumberToObject(o, "deleted_sample_count", (double)removed);
        reply_json(rep, 200, o);
    }
}

void handle_subject_get(Server *srv, const HttpReq *req, const RouteArgs *args, Reply *rep) {
    char err[SM_ERRMAX];
    StoreSubject *s = NULL;
    long limit, after;
    if (path_ids(args, NULL, rep) < 0 || page_of(req, &limit, &after, rep) < 0)
        return;
    int rc = store_get(srv->store, args->id, after, (int)limit, &s, err);
    if (rc == SM_ABSENT)
        reply_error(rep, 404, "subject_not_found", "no subject '%s'", args->id);
    else if (rc < 0)
        reply_internal(rep, rc, "get", err);
    else
        subject_reply(s, rep);
    store_subject_free(s);
}

void handle_sample_delete(Server *srv, const HttpReq *req, const RouteArgs *args, Reply *rep) {
    char err[SM_ERRMAX];
    const char *subject = args->id;
    int64_t sample = 0, remaining = 0;
    (void)req;
    if (path_ids(args, &sample, rep) < 0)
        return;
    int rc = store_delete_sample(srv->store, subject, sample, &remaining, err);
    if (rc == SM_ABSENT) {
        reply_error(rep, 404, "sample_not_found", "subject '%s' has no sample %lld", subject,
                    (long long)sample);
    } else if (rc < 0) {
        reply_internal(rep, rc, "delete", err);
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "subject", subject);
        cJSON_AddNumberToObject(o, "sample", (double)sample);
        cJSON_AddNumberToObject(o, "sample_count", (double)remaining);
        reply_json(rep, 200, o);
    }
}

/* Tidies the training summary j for the reply: every absolute path among
 * its strings (dataset, split directories) becomes its last component, so a
 * read key learns which dataset trained the model, not where the host keeps
 * its files; every fraction that is a float32 prints as its shortest form. */
static void strip_paths(cJSON *j, int depth) {
    if (!j || depth > 32)
        return;
    double v = j->valuedouble;
    if (cJSON_IsNumber(j) && isfinite(v) && v != floor(v) && (double)(float)v == v) {
        cJSON_SetNumberValue(j, json_f32((float)j->valuedouble));
        return;
    }
    if (cJSON_IsString(j) && j->valuestring[0] == '/') {
        char *s = j->valuestring, *end = s + strlen(s);
        while (end > s + 1 && end[-1] == '/')
            *--end = 0;
        char *base = strrchr(s, '/') + 1;
        memmove(s, base, strlen(base) + 1);
        return;
    }
    for (cJSON *c = j->child; c; c = c->next)
        strip_paths(c, depth + 1);
}

/* GET /model's view of the operating points: what they rest on, the rates
 * at the threshold in use, and the thresholds of the usual target rates. */
static cJSON *operating_points_summary(const Calib *c) {
    if (!c->ops)
        return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject(), *at, *by;
    double far, frr;
    cJSON_AddStringToObject(o, "source", optable_source(c->ops));
    cJSON_AddNumberToObject(o, "positives", (double)optable_positives(c->ops));
    cJSON_AddNumberToObject(o, "negatives", (double)optable_negatives(c->ops));
    cJSON_AddNumberToObject(o, "points", optable_points(c->ops));
    cJSON_AddNumberToObject(o, "min_far", optable_min_far(c->ops));
    optable_rates_at(c->ops, c->threshold, &far, &frr);
    at = cJSON_AddObjectToObject(o, "at_threshold");
    cJSON_AddNumberToObject(at, "far", far);
    cJSON_AddNumberToObject(at, "frr", frr);
    by = cJSON_AddArrayToObject(o, "by_far");
    static const double rates[] = {1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6};
    for (size_t i = 0; i < SM_ARRAY_LEN(rates); i++) {
        float thr;
        double fa, fr;
        if (optable_threshold_at_far(c->ops, rates[i], &thr, &fa, &fr, NULL) < 0)
            break;
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "far", rates[i]);
        json_add_f32(p, "threshold", thr);
        cJSON_AddNumberToObject(p, "frr", fr);
        cJSON_AddItemToArray(by, p);
    }
    return o;
}

void handle_admin_reload(Server *srv, const HttpReq *req, const RouteArgs *args, Reply *rep) {
    char err[SM_ERRMAX];
    (void)req, (void)args;
    int rc = serve_calib_reload(srv, err);
    if (rc == -ESTALE) {
        reply_error(rep, 409, "weights_changed", "%s", err);
        return;
    }
    if (rc < 0) {
        reply_error(rep, rc == -ENOMEM ? 503 : 422, "reload_failed", "%s", err);
        return;
    }
    const Calib *c = serve_calib(srv);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "reloaded", 1);
    json_add_f32(o, "threshold", c->threshold);
    cJSON_AddItemToObject(o, "operating_points", operating_points_summary(c));
    cJSON_AddStringToObject(o, "fingerprint", model_fingerprint(srv->model));
    reply_json(rep, 200, o);
}

void handle_model(Server *srv, const HttpReq *req, const RouteArgs *args, Reply *rep) {
    (void)args;
    const Model *m = srv->model;
    const ModelArch *a = model_arch(m);
    (void)req;
    cJSON *o = cJSON_CreateObject(), *in = cJSON_AddObjectToObject(o, "input");
    cJSON_AddStringToObject(o, "architecture", net_preset_of(a));
    cJSON_AddStringToObject(o, "arch", model_arch_spec(m));
    cJSON *layers = cJSON_AddArrayToObject(o, "layers");
    for (const char *l = model_arch_spec(m); *l;) {
        size_t n = strcspn(l, ",");
        char tok[64];
        snprintf(tok, sizeof tok, "%.*s", (int)(n < 63 ? n : 63), l);
        cJSON_AddItemToArray(layers, cJSON_CreateString(tok));
        l += n + (l[n] == ',');
    }
    cJSON_AddNumberToObject(o, "parameters", (double)model_n_params(m));
    cJSON_AddNumberToObject(in, "height", a->in_h);
    cJSON_AddNumberToObject(in, "width", a->in_w);
    cJSON_AddNumberToObject(in, "channels", a->in_c);
    cJSON_AddStringToObject(in, "preprocess", model_preprocess_of(a->in_c));
    cJSON_AddNumberToObject(o, "embedding_size", model_embed_dim(m));
    json_add_f32(o, "margin", model_margin(m));
    const Calib *c = serve_calib(srv);
    json_add_f32(o, "threshold", c->threshold);
    cJSON_AddItemToObject(o, "operating_points", operating_points_summary(c));
    cJSON *training = cJSON_Parse(model_training(m));
    strip_paths(training, 0);
    cJSON_AddItemToObject(o, "training", training ? training : cJSON_CreateObject());
    cJSON_AddStringToObject(o, "fingerprint", model_fingerprint(m));
    cJSON_AddStringToObject(o, "blas_kernel", blas_kernel());
    cJSON_AddStringToObject(o, "quality", srv->model_quality);
    reply_json(rep, 200, o);
}

void handle_healthz(Server *srv, const HttpReq *req, const RouteArgs *args, Reply *rep) {
    (void)args;
    (void)req;
    StoreStats st = {0};
    if (srv->store)
        store_stats(srv->store, &st);
    /* A balancer takes this node out while its index misses changes. */
    if (st.behind) {
        reply_error(rep, 503, "store_unavailable",
                    "the index is behind the database (%lld changes not applied)",
                    (long long)st.feed_lag);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddNumberToObject(o, "uptime_s", sm_now() - srv->started);
    reply_json(rep, 200, o);
}

void handle_metrics(Server *srv, const HttpReq *req, const RouteArgs *args, Reply *rep) {
    (void)args;
    int64_t subjects = 0, samples = 0;
    StoreStats st;
    char info[160];
    (void)req;
    store_counts(srv->store, &subjects, &samples);
    store_stats(srv->store, &st);
    snprintf(info, sizeof info, "fingerprint=\"%s\",blas_kernel=\"%s\"",
             model_fingerprint(srv->model), blas_kernel());
    const PromGauge gauges[] = {
        {"enrolled_subjects", "Subjects enrolled", (double)subjects, NULL, 0},
        {"enrolled_samples", "Samples enrolled", (double)samples, NULL, 0},
        {"store_commits_total", "Store transactions committed", (double)st.commits, NULL, 1},
        {"store_writes_total", "Store write operations", (double)st.writes, NULL, 1},
        {"store_behind", "1 while the index misses changes it cannot apply yet", st.behind, NULL,
         0},
        {"store_feed_lag_changes", "Changes notified but not yet applied (PostgreSQL)",
         (double)st.feed_lag, NULL, 0},
        {"model_info", "The served model", 1, info, 0},
        {"in_flight_requests", "Requests being handled", (double)atomic_load(&srv->in_flight), NULL,
         0},
    };
    char *text = NULL;
    size_t len = 0;
    int rc = promstats_render(srv->stats, gauges, (int)SM_ARRAY_LEN(gauges), &text, &len);
    if (rc < 0) {
        reply_internal(rep, rc, "metrics", "cannot render");
        return;
    }
    free(rep->body);
    rep->body = text;
    rep->len = len;
    rep->status = 200;
    rep->content_type = "text/plain; version=0.0.4";
}
