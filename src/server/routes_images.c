/*
 * routes_images.c — the routes that take images: verify (two images, or an
 * image against an enrolled subject), enroll, embed and identify. Each
 * decodes its images with the image module the trainer uses, embeds them
 * with the shared read-only model, and answers JSON.
 */
#include <stdlib.h>
#include <string.h>

#include "routes.h"
#include "siamese/common.h"
#include "siamese/log.h"

static cJSON *verify_reply(Server *srv, float d, const Decision *dec) {
    cJSON *o = cJSON_CreateObject();
    if (!srv->cfg->verdict_only) /* without it, a client cannot steer an image by the distance */
        json_add_f32(o, "distance", d);
    decision_add(dec, o);
    json_add_f32(o, "margin", model_margin(srv->model));
    cJSON_AddStringToObject(o, "verdict", decision_verdict(dec, d));
    if (!srv->cfg->verdict_only) /* the rates tell the distance too */
        decision_add_rates(dec, d, o);
    cJSON_AddStringToObject(o, "fingerprint", model_fingerprint(srv->model));
    return o;
}

/* subject + image: distance to the subject's nearest enrolled sample. */
static void verify_subject(Server *srv, const ReqForm *f, const char *subject, const Decision *dec,
                           Reply *rep) {
    float q[MODEL_MAX_WIDTH];
    IndexHit hit;
    char err[SM_ERRMAX];
    if (!store_subject_id_valid(subject)) {
        reply_bad_subject(rep);
        return;
    }
    if (form_single(f, "image", 1, rep) < 0 || images_embed(srv, f, "image", 1, q, rep) < 0)
        return;
    int rc = store_verify(srv->store, subject, q, &hit, err);
    if (rc == SM_ABSENT) {
        reply_error(rep, 404, "subject_not_found", "no subject '%s'", subject);
    } else if (rc == STORE_EMPTY) {
        reply_error(rep, 409, "subject_empty", "subject '%s' has no samples", subject);
    } else if (rc < 0) {
        reply_internal(rep, rc, "verify", err);
    } else {
        cJSON *o = verify_reply(srv, hit.distance, dec);
        cJSON_AddStringToObject(o, "subject", subject);
        cJSON_AddNumberToObject(o, "sample", (double)hit.sample_id);
        reply_json(rep, 200, o);
    }
}

void handle_verify(Server *srv, const HttpReq *req, const RouteArgs *args, Reply *rep) {
    (void)args;
    static const char *const fields[] = {"a", "b", "subject", "image", "threshold", "far", NULL};
    ReqForm *f = NULL;
    const char *subject;
    Decision dec;
    float emb[2 * MODEL_MAX_WIDTH];
    if (form_parse(srv, req, fields, &f, rep) < 0)
        return;
    if (decision_of(srv, f, &dec, rep) < 0 || form_text(f, "subject", 0, &subject, rep) < 0)
        goto out;
    if (subject) {
        if (req_count(f, "a") || req_count(f, "b"))
            reply_error(rep, 400, "bad_request", "give either a and b, or subject and image");
        else
            verify_subject(srv, f, subject, &dec, rep);
        goto out;
    }
    if (req_count(f, "image")) {
        reply_error(rep, 400, "bad_request", "image goes with subject; two images are a and b");
        goto out;
    }
    static const ImageRef ab[] = {{"a", 0}, {"b", 0}};
    if (form_single(f, "a", 1, rep) < 0 || form_single(f, "b", 1, rep) < 0 ||
        images_embed_refs(srv, f, ab, 2, emb, rep) < 0)
        goto out;
    int E = model_embed_dim(srv->model);
    reply_json(rep, 200, verify_reply(srv, model_distance(emb, emb + E, E), &dec));
out:
    req_free(f);
}

/* Image count of a request that takes 1..STORE_ENROLL_MAX images; -1 with the reply. */
static int image_count(const ReqForm *f, Reply *rep) {
    int n = req_count(f, "image");
    if (n < 1 || n > STORE_ENROLL_MAX) {
        reply_error(rep, n ? 413 : 400, n ? "too_many_images" : "missing_field",
                    "give 1 to %d 'image' fields (got %d)", STORE_ENROLL_MAX, n);
        return -1;
    }
    return n;
}

/* Embeds the n "image" fields into *emb (malloc'ed, the caller frees it). */
static int embed_all(Server *srv, const ReqForm *f, int n, float **emb, Reply *rep) {
    if (!(*emb = malloc((size_t)n * model_embed_dim(srv->model) * sizeof **emb))) {
        reply_error(rep, 503, "out_of_memory", "the server is out of memory");
        return -1;
    }
    return images_embed(srv, f, "image", n, *emb, rep);
}

void handle_embed(Server *srv, const HttpReq *req, const RouteArgs *args, Reply *rep) {
    (void)args;
    static const char *const fields[] = {"image", NULL};
    ReqForm *f = NULL;
    float *emb = NULL;
    int n, E = model_embed_dim(srv->model);
    if (form_parse(srv, req, fields, &f, rep) < 0 || (n = image_count(f, rep)) < 0 ||
        embed_all(srv, f, n, &emb, rep) < 0)
        goto out;
    cJSON *o = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(o, "embeddings");
    for (int i = 0; i < n; i++) {
        cJSON *v = json_f32_array(emb + (size_t)i * E, E);
        if (!v || !cJSON_AddItemToArray(list, v)) {
            cJSON_Delete(v);
            cJSON_Delete(o);
            reply_error(rep, 503, "out_of_memory", "the server is out of memory");
            goto out;
        }
    }
    cJSON_AddNumberToObject(o, "embedding_size", E);
    cJSON_AddStringToObject(o, "fingerprint", model_fingerprint(srv->model));
    reply_json(rep, 200, o);
out:
    free(emb);
    req_free(f);
}

/* The metadata field: absent (NULL), or a JSON object within the limits. */
static int metadata_of(Server *srv, const ReqForm *f, const char **out, Reply *rep) {
    if (form_text(f, "metadata", 0, out, rep) <= 0)
        return *out || req_count(f, "metadata") == 0 ? 0 : -1;
    char err[SM_ERRMAX];
    int rc = req_json_object_check(*out, strlen(*out), srv->cfg->max_json_depth,
                                   REQ_DEFAULT_MAX_JSON_VALUES, err);
    if (rc < 0) {
        reply_error(rep, 400, "bad_request", "metadata must be a JSON object: %s", err);
        return -1;
    }
    return 0;
}

static const char *content_type_of(const ReqField *fl) {
    switch (img_sniff(fl->data, fl->len)) {
    case IMG_PNG:
        return "image/png";
    case IMG_JPEG:
        return "image/jpeg";
    case IMG_PNM:
        return "image/x-portable-anymap";
    default:
        return "application/octet-stream";
    }
}

static void enroll_reply(Server *srv, const char *subject, const int64_t *ids, int n,
                         const StoreEnrolled *res, Reply *rep) {
    cJSON *o = cJSON_CreateObject(), *list;
    cJSON_AddStringToObject(o, "subject", subject);
    list = cJSON_AddArrayToObject(o, "samples");
    for (int i = 0; i < n; i++) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddNumberToObject(s, "sample", (double)ids[i]);
        cJSON_AddItemToArray(list, s);
    }
    cJSON_AddNumberToObject(o, "sample_count", (double)res->total);
    cJSON_AddBoolToObject(o, "created", res->created);
    cJSON_AddStringToObject(o, "fingerprint", model_fingerprint(srv->model));
    reply_json(rep, 201, o);
}

void handle_enroll(Server *srv, const HttpReq *req, const RouteArgs *args, Reply *rep) {
    (void)args;
    static const char *const fields[] = {"subject", "image", "metadata", NULL};
    ReqForm *f = NULL;
    const char *subject, *metadata;
    float *emb = NULL;
    int64_t ids[STORE_ENROLL_MAX];
    StoreSampleIn in[STORE_ENROLL_MAX];
    int n, E = model_embed_dim(srv->model);
    if (form_parse(srv, req, fields, &f, rep) < 0 ||
        form_text(f, "subject", 1, &subject, rep) < 0 || metadata_of(srv, f, &metadata, rep) < 0 ||
        (n = image_count(f, rep)) < 0)
        goto out;
    if (!store_subject_id_valid(subject)) {
        reply_bad_subject(rep);
        goto out;
    }
    for (int i = 0; srv->cfg->keep_images && i < n; i++)
        if (req_get(f, "image", i)->len > STORE_IMAGE_MAX) {
            reply_error(rep, 413, "image_too_large", "image #%d: kept images are at most %u bytes",
                        i + 1, STORE_IMAGE_MAX);
            goto out;
        }
    if (embed_all(srv, f, n, &emb, rep) < 0)
        goto out;
    for (int i = 0; i < n; i++) {
        const ReqField *fl = req_get(f, "image", i);
        in[i] = srv->cfg->keep_images ? (StoreSampleIn){emb + (size_t)i * E, fl->data, fl->len,
                                                        content_type_of(fl), NULL}
                                      : (StoreSampleIn){emb + (size_t)i * E, NULL, 0, NULL, NULL};
    }
    char err[SM_ERRMAX];
    StoreEnrolled res;
    int rc = store_enroll(srv->store, subject, metadata, in, n, ids, &res, err);
    if (rc < 0)
        reply_internal(rep, rc, "enroll", err);
    else
        enroll_reply(srv, subject, ids, n, &res, rep);
out:
    free(emb);
    req_free(f);
}

/* The ranked matches, and the open-set answer: the best match's subject
 * when it is under the threshold, else null (someone not enrolled). */
static cJSON *identify_reply(Server *srv, const IndexHit *hits, int n, const Decision *dec) {
    cJSON *o = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(o, "matches");
    for (int i = 0; i < n; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "subject", hits[i].subject);
        if (!srv->cfg->verdict_only)
            json_add_f32(m, "distance", hits[i].distance);
        cJSON_AddStringToObject(m, "verdict", decision_verdict(dec, hits[i].distance));
        cJSON_AddNumberToObject(m, "sample", (double)hits[i].sample_id);
        if (!srv->cfg->verdict_only)
            decision_add_rates(dec, hits[i].distance, m);
        cJSON_AddItemToArray(list, m);
    }
    if (n > 0 && hits[0].distance < dec->threshold) /* hits are nearest first */
        cJSON_AddStringToObject(o, "identified", hits[0].subject);
    else
        cJSON_AddNullToObject(o, "identified");
    decision_add(dec, o);
    cJSON_AddStringToObject(o, "fingerprint", model_fingerprint(srv->model));
    return o;
}

void handle_identify(Server *srv, const HttpReq *req, const RouteArgs *args, Reply *rep) {
    (void)args;
    static const char *const fields[] = {"image", "k", "threshold", "far", NULL};
    ReqForm *f = NULL;
    const char *ktext;
    Decision dec;
    float q[MODEL_MAX_WIDTH];
    IndexHit *hits = NULL;
    long k = srv->cfg->identify_k, exact = 0;
    if (req_query_int(req->query(req->conn, "exact"), 0, 1, &exact, NULL) < 0) {
        reply_error(rep, 400, "bad_request", "exact must be 0 or 1");
        goto out;
    }
    if (form_parse(srv, req, fields, &f, rep) < 0 || decision_of(srv, f, &dec, rep) < 0 ||
        form_text(f, "k", 0, &ktext, rep) < 0 || form_single(f, "image", 1, rep) < 0)
        goto out;
    if (req_query_int(ktext, 1, 1000, &k, NULL) < 0) {
        reply_error(rep, 400, "bad_request", "k must be an integer in 1..1000");
        goto out;
    }
    if (images_embed(srv, f, "image", 1, q, rep) < 0)
        goto out;
    int n = 0;
    char err[SM_ERRMAX];
    if (!(hits = malloc((size_t)k * sizeof *hits))) {
        reply_error(rep, 503, "out_of_memory", "the server is out of memory");
        goto out;
    }
    int rc = store_identify_with(srv->store, q, (int)k, exact ? INDEX_EXACT : 0, hits, &n, err);
    if (rc < 0) {
        reply_internal(rep, rc, "identify", err);
        goto out;
    }
    reply_json(rep, 200, identify_reply(srv, hits, n, &dec));
out:
    free(hits);
    req_free(f);
}
