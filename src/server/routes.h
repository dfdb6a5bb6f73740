/*
 * routes.h — private to src/server: the route table's row, the handlers (one
 * per row, split over routes_images.c and routes_store.c) and the helpers
 * they share (replies in routes_reply.c, bodies and images in
 * routes_input.c). Every handler fills the Reply on every path; a helper that
 * returns -1 has already put the error reply in place.
 */
#ifndef SIAMESE_ROUTES_H
#define SIAMESE_ROUTES_H

#include <cjson/cJSON.h>

#include "server.h"

/* The path's variable segments, NUL-terminated, borrowed for the call. */
typedef struct {
    const char *id;     /* {id}, or NULL */
    const char *sample; /* {sample}, or NULL */
} RouteArgs;

typedef void RouteFn(Server *srv, const HttpReq *req, const RouteArgs *args, Reply *rep);

/* One row of the table in routes.c. */
struct Route {
    const char *method;  /* "GET" (also answers HEAD), "POST", "DELETE" */
    const char *pattern; /* "/subjects/{id}": {id} and {sample} match one segment */
    RouteScope scope;
    RouteFn *handle;
    const char *name;   /* metrics route label and access-log name */
    const char *params; /* query parameters it takes, space-separated; NULL none, "*" any */
};

RouteFn handle_verify, handle_enroll, handle_embed, handle_identify;
RouteFn handle_subjects, handle_subject_get, handle_subject_delete, handle_sample_delete;
RouteFn handle_model, handle_healthz, handle_metrics;
RouteFn handle_admin_reload;               /* routes_store.c */
RouteFn handle_page, handle_page_settings; /* routes_page.c */

/* The threshold a verify or identify decides with (routes_decide.c): the
 * request's "threshold", the one the operating points give its "far", or
 * the calibrated one; calib is the calibration read for this request. */
typedef struct {
    const Calib *calib;
    float threshold;
    double far; /* the requested false-accept rate; NaN when not asked by far */
} Decision;
/* Fills d from the form (fields "threshold", "far"): 0, or -1 with a 400. */
int decision_of(Server *srv, const ReqForm *f, Decision *d, Reply *rep);
/* Adds "threshold" (and "far" when asked by far) to o. */
void decision_add(const Decision *d, cJSON *o);
/* Adds "estimated_far" and "estimated_frr" at distance dist (with a table). */
void decision_add_rates(const Decision *d, float dist, cJSON *o);
/* "same" when dist < threshold, else "different" (static). */
const char *decision_verdict(const Decision *d, float dist);
/* 400 invalid_subject, naming the documented id alphabet. */
void reply_bad_subject(Reply *rep);
/* Replies with obj (consumed) as JSON. */
void reply_json(Reply *rep, int status, cJSON *obj);
/* Maps a module's negative errno to a status: -ENOSPC 507, -ESTALE 503,
 * -ENOTCONN and -ESHUTDOWN 503 store_unavailable (the database cannot be
 * reached or answers "retry later", or the store is closing),
 * -EINPROGRESS 503 store_outcome_unknown (a write that may or may not be
 * stored), -ENOMEM 503, others 500 (logged): input is validated before
 * modules see it. */
void reply_internal(Reply *rep, int rc, const char *what, const char *err);

/* Parses the body; any field not in allowed (NULL-terminated) is a 400.
 * 0 with *form set (free with req_free()), or -1 with the reply filled. */
int form_parse(Server *srv, const HttpReq *req, const char *const *allowed, ReqForm **form,
               Reply *rep);
/* How often name occurs, 0 or 1; -1 (reply filled) if more, or if absent
 * and required. */
int form_single(const ReqForm *f, const char *name, int required, Reply *rep);
/* form_single() for a text field; *out the text or NULL when absent. */
int form_text(const ReqForm *f, const char *name, int required, const char **out, Reply *rep);
/* One image of a form: the idx-th field called name. */
typedef struct {
    const char *name;
    int idx;
} ImageRef;

/* Decodes and prepares the n images refs names and embeds them, in one call,
 * into emb (n x embedding size). 0, or -1 with the reply filled (413/422/503). */
int images_embed_refs(Server *srv, const ReqForm *f, const ImageRef *refs, int n, float *emb,
                      Reply *rep);
/* images_embed_refs() of the first n images called name (n <= STORE_ENROLL_MAX). */
int images_embed(Server *srv, const ReqForm *f, const char *name, int n, float *emb, Reply *rep);

/* Strict decimal/float parse of untrusted text in [lo, hi]; 0 or -1. */
int parse_number(const char *s, double lo, double hi, double *out);
/* The shortest decimal (%g form, 1-9 significant digits) that strtof reads
 * back as v, so replies read 0.001 rather than 0.0010000000474974513; "null"
 * for NaN and infinities. buf holds 32 bytes. */
void json_f32_text(float v, char buf[32]);
/* That decimal as the nearest double (NaN and infinities unchanged). */
double json_f32(float v);
/* Adds v to obj as that decimal (a raw number: cJSON does not print it again
 * as a double); the new item (owned by obj), or NULL when out of memory. */
cJSON *json_add_f32(cJSON *obj, const char *name, float v);
/* The n floats of v as one raw JSON array of those decimals: one item for
 * an embedding rather than one per number (the caller owns it, or NULL when
 * out of memory). */
cJSON *json_f32_array(const float *v, int n);
/* Unix milliseconds as "2026-01-02T03:04:05.678Z". */
void iso_time(int64_t ms, char out[32]);

#endif
