/*
 * routes.c — the URL table and the pieces every handler shares: parsing the
 * body into fields, rejecting unknown fields, turning images into embeddings,
 * mapping module errors to HTTP statuses, and building JSON replies.
 *
 * Error statuses, one rule each: a malformed request is 400, an image that
 * does not decode is 422, anything over a size or dimension limit is 413, an
 * unsupported body type 415, a missing subject 404, a full disk 507, a store
 * that cannot serve yet 503, and only our own failures are 500.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "routes.h"
#include "server.h"
#include "siamese/common.h"
#include "siamese/log.h"

const char *const route_names[ROUTE_COUNT] = {
    "verify", "enroll", "embed",   "identify", "subjects", "subject",
    "sample", "model",  "healthz", "metrics",  "other",
};

int route_split(const char *path, char *buf, size_t size, char *seg[4]) {
    if (path[0] != '/' || strlen(path) >= size)
        return -1;
    strcpy(buf, path + 1);
    int n = 0;
    for (char *p = buf; *p || n == 0;) {
        if (n == 4)
            return -1;
        seg[n++] = p;
        char *slash = strchr(p, '/');
        if (!slash)
            break;
        *slash = 0;
        p = slash + 1;
        if (!*p)
            return -1;
    }
    return seg[0][0] ? n : 0;
}

RouteId route_match(const char *method, const char *path, int *need_write, const char **allow) {
    static const struct {
        const char *path, *method;
        RouteId id;
        int write;
    } fixed[] = {
        {"verify", "POST", ROUTE_VERIFY, 0},    {"enroll", "POST", ROUTE_ENROLL, 1},
        {"embed", "POST", ROUTE_EMBED, 0},      {"identify", "POST", ROUTE_IDENTIFY, 0},
        {"subjects", "GET", ROUTE_SUBJECTS, 0}, {"model", "GET", ROUTE_MODEL, 0},
        {"healthz", "GET", ROUTE_HEALTHZ, 0},   {"metrics", "GET", ROUTE_METRICS, 0},
    };
    char buf[512], *seg[4];
    int n = route_split(path, buf, sizeof buf, seg);
    int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    *need_write = 0;
    *allow = NULL;
    if (n == 1)
        for (size_t i = 0; i < SM_ARRAY_LEN(fixed); i++)
            if (strcmp(seg[0], fixed[i].path) == 0) {
                *allow = fixed[i].method;
                if (strcmp(method, fixed[i].method) != 0 && !(get && (*allow)[0] == 'G'))
                    return ROUTE_OTHER;
                *need_write = fixed[i].write;
                return fixed[i].id;
            }
    if (n >= 2 && strcmp(seg[0], "subjects") == 0 &&
        (n == 2 || (n == 4 && !strcmp(seg[2], "samples")))) {
        *allow = n == 2 ? "GET, DELETE" : "DELETE";
        if (strcmp(method, "DELETE") == 0) {
            *need_write = 1;
            return n == 2 ? ROUTE_SUBJECT : ROUTE_SAMPLE;
        }
        return n == 2 && get ? ROUTE_SUBJECT : ROUTE_OTHER;
    }
    return ROUTE_OTHER;
}

void reply_error(Reply *rep, int status, const char *code, const char *fmt, ...) {
    char msg[SM_ERRMAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", msg);
    free(rep->body);
    rep->body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    rep->status = status;
    rep->len = rep->body ? strlen(rep->body) : 0;
    rep->content_type = "application/json";
}

void reply_bad_subject(Reply *rep) {
    reply_error(rep, 400, "invalid_subject", "subject ids are 1-%d characters of [A-Za-z0-9._:@-]",
                STORE_SUBJECT_MAX);
}

void reply_json(Reply *rep, int status, cJSON *obj) {
    char *s = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!s) {
        reply_error(rep, 503, "out_of_memory", "the server is out of memory");
        return;
    }
    free(rep->body);
    rep->body = s;
    rep->len = strlen(s);
    rep->status = status;
    rep->content_type = "application/json";
}

void reply_internal(Reply *rep, int rc, const char *what, const char *err) {
    switch (rc) {
    case -ENOSPC:
        reply_error(rep, 507, "insufficient_storage", "%s: %s", what, err);
        return;
    case -ESTALE:
        reply_error(rep, 503, "store_stale", "%s: %s", what, err);
        return;
    case -ENOMEM:
        reply_error(rep, 503, "out_of_memory", "%s: out of memory", what);
        return;
    default:
        /* Requests are validated before they reach a module, so anything else
         * (-EINVAL included: a row that fails validation) is our failure. */
        log_error("%s: %s (%d)", what, err, rc);
        reply_error(rep, 500, "internal", "%s failed", what);
    }
}

int form_parse(Server *srv, const HttpReq *req, const char *const *allowed, ReqForm **form,
               Reply *rep) {
    static const char *const image_fields[] = {"a", "b", "image", NULL};
    char err[SM_ERRMAX];
    ReqLimits lim = {.max_parts = STORE_ENROLL_MAX + 8,
                     .max_json_depth = srv->cfg->max_json_depth,
                     .max_json_values = STORE_ENROLL_MAX + 1024,
                     .max_header_line = REQ_DEFAULT_MAX_HEADER_LINE,
                     .max_text = STORE_METADATA_MAX,
                     .image_fields = image_fields};
    int rc = req_parse(req->content_type, req->body, req->len, &lim, form, err);
    if (rc == -EPROTONOSUPPORT)
        reply_error(rep, 415, "unsupported_media_type", "%s", err);
    else if (rc == -E2BIG)
        reply_error(rep, 413, "payload_too_large", "%s", err);
    else if (rc < 0)
        reply_error(rep, 400, "bad_request", "%s", err);
    if (rc < 0)
        return -1;
    for (int i = 0; i < req_n_fields(*form); i++) {
        const char *name = req_field(*form, i)->name;
        int known = 0;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(*a, name) == 0;
        if (!known) {
            reply_error(rep, 400, "unknown_field", "unknown field '%.64s'", name);
            req_free(*form);
            *form = NULL;
            return -1;
        }
    }
    return 0;
}

int form_single(const ReqForm *f, const char *name, int required, Reply *rep) {
    int n = req_count(f, name);
    if (n > 1) {
        reply_error(rep, 400, "bad_request", "field '%s' given %d times", name, n);
        return -1;
    }
    if (n == 0 && required) {
        reply_error(rep, 400, "missing_field", "field '%s' is required", name);
        return -1;
    }
    return n;
}

int form_text(const ReqForm *f, const char *name, int required, const char **out, Reply *rep) {
    *out = NULL;
    int n = form_single(f, name, required, rep);
    if (n <= 0)
        return n;
    if (!(*out = req_text(f, name))) {
        reply_error(rep, 400, "bad_request", "field '%s' is not text", name);
        return -1;
    }
    return 1;
}

int images_embed_refs(Server *srv, const ReqForm *f, const ImageRef *refs, int n, float *emb,
                      Reply *rep) {
    int D = model_in_dim(srv->model);
    const ModelArch *a = model_arch(srv->model);
    float *x = malloc((size_t)n * D * sizeof *x);
    if (!x) {
        reply_error(rep, 503, "out_of_memory", "the server is out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const ReqField *fl = req_get(f, refs[i].name, refs[i].idx);
        char err[SM_ERRMAX];
        int rc = img_load_mem(fl->data, fl->len, &srv->img_limits, a->in_h, a->in_w,
                              x + (size_t)i * D, err);
        if (rc < 0) {
            if (rc == -E2BIG)
                reply_error(rep, 413, "image_too_large", "%s #%d: %s", refs[i].name,
                            refs[i].idx + 1, err);
            else if (rc == -ENOMEM)
                reply_error(rep, 503, "out_of_memory", "the server is out of memory");
            else
                reply_error(rep, 422, "invalid_image", "%s #%d: %s", refs[i].name, refs[i].idx + 1,
                            err);
            free(x);
            return -1;
        }
    }
    /* One call for all: the model reads its weights once for two images. */
    int rc = model_embed(srv->model, x, n, emb);
    free(x);
    if (rc < 0)
        reply_error(rep, 503, "out_of_memory", "the server is out of memory");
    return rc < 0 ? -1 : 0;
}

int images_embed(Server *srv, const ReqForm *f, const char *name, int n, float *emb, Reply *rep) {
    ImageRef refs[STORE_ENROLL_MAX];
    if (n > STORE_ENROLL_MAX) {
        reply_error(rep, 413, "too_many_images", "at most %d images", STORE_ENROLL_MAX);
        return -1;
    }
    for (int i = 0; i < n; i++)
        refs[i] = (ImageRef){name, i};
    return images_embed_refs(srv, f, refs, n, emb, rep);
}

/* 1 if s is a plain decimal number: -?digits[.digits][e[+-]digits], as JSON
 * writes numbers (no spaces, hex, inf or nan, which strtod would accept). */
static int is_decimal(const char *s) {
    size_t i = s[0] == '-';
    size_t d = strspn(s + i, "0123456789");
    if (d == 0)
        return 0;
    i += d;
    if (s[i] == '.') {
        d = strspn(s + i + 1, "0123456789");
        if (d == 0)
            return 0;
        i += d + 1;
    }
    if (s[i] == 'e' || s[i] == 'E') {
        i += 1 + (s[i + 1] == '+' || s[i + 1] == '-');
        d = strspn(s + i, "0123456789");
        if (d == 0)
            return 0;
        i += d;
    }
    return s[i] == 0;
}

int parse_number(const char *s, double lo, double hi, double *out) {
    if (!s || strlen(s) > 32 || !is_decimal(s))
        return -1;
    double v = strtod(s, NULL);
    if (!isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

double json_f32(float v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.7g", v);
    return strtod(buf, NULL);
}

void iso_time(int64_t ms, char out[32]) {
    /* Years 1970..9999; the store validates rows, this keeps the format whole. */
    ms = ms < 0 ? 0 : ms > 253402300799999 ? 253402300799999 : ms;
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        memset(&tm, 0, sizeof tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

void route_handle(Server *srv, RouteId id, const HttpReq *req, Reply *rep) {
    switch (id) {
    case ROUTE_VERIFY:
        handle_verify(srv, req, rep);
        break;
    case ROUTE_ENROLL:
        handle_enroll(srv, req, rep);
        break;
    case ROUTE_EMBED:
        handle_embed(srv, req, rep);
        break;
    case ROUTE_IDENTIFY:
        handle_identify(srv, req, rep);
        break;
    case ROUTE_SUBJECTS:
        handle_subjects(srv, req, rep);
        break;
    case ROUTE_SUBJECT:
        handle_subject(srv, req, rep);
        break;
    case ROUTE_SAMPLE:
        handle_sample(srv, req, rep);
        break;
    case ROUTE_MODEL:
        handle_model(srv, req, rep);
        break;
    case ROUTE_HEALTHZ:
        handle_healthz(srv, req, rep);
        break;
    case ROUTE_METRICS:
        handle_metrics(srv, req, rep);
        break;
    default: {
        int need_write;
        const char *allow;
        route_match(req->method, req->path, &need_write, &allow);
        if (allow) {
            reply_error(rep, 405, "method_not_allowed", "%s is not allowed here; use %s",
                        req->method, allow);
            rep->allow = allow;
        } else {
            reply_error(rep, 404, "not_found", "no route %.100s", req->path);
        }
    }
    }
}
