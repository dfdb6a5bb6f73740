/*
 * routes_input.c — what handlers take from a request: the body parsed into
 * fields with unknown ones refused, single and text fields, and images
 * decoded, prepared and embedded.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"
#include "siamese/common.h"

/* The fields a route takes, "a, b, subject" (into out, size bytes). */
static void field_list(const char *const *allowed, char *out, size_t size) {
    size_t n = 0;
    out[0] = 0;
    for (const char *const *a = allowed; *a && n < size; a++)
        n += (size_t)snprintf(out + n, size - n, "%s%s", n ? ", " : "", *a);
}

int form_parse(Server *srv, const HttpReq *req, const char *const *allowed, ReqForm **form,
               Reply *rep) {
    static const char *const image_fields[] = {"a", "b", "image", NULL};
    char err[SM_ERRMAX], list[256];
    ReqLimits lim = {.max_parts = STORE_ENROLL_MAX + 8,
                     .max_json_depth = srv->cfg->max_json_depth,
                     .max_json_values = STORE_ENROLL_MAX + 1024,
                     .max_header_line = REQ_DEFAULT_MAX_HEADER_LINE,
                     .max_text = STORE_METADATA_MAX,
                     .image_fields = image_fields,
                     .fields = allowed};
    int rc = req_parse(req->content_type, req->body, req->len, &lim, form, err);
    if (rc == -ENOENT)
        field_list(allowed, list, sizeof list);
    if (rc == -EPROTONOSUPPORT && !req->content_type)
        reply_error(rep, 415, "unsupported_media_type",
                    "no Content-Type: send multipart/form-data (curl -F image=@x.png) or JSON "
                    "(curl -H 'Content-Type: application/json' -d '{...}')");
    else if (rc == -EPROTONOSUPPORT)
        reply_error(rep, 415, "unsupported_media_type", "%s", err);
    else if (rc == -E2BIG)
        reply_error(rep, 413, "payload_too_large", "%s", err);
    else if (rc == -ENOENT)
        reply_error(rep, 400, "unknown_field", "%s; %s %s takes: %s", err, req->method, req->path,
                    list);
    else if (rc < 0)
        reply_error(rep, 400, "bad_request", "%s", err);
    return rc < 0 ? -1 : 0;
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

/* 1 if an image field is a short line of printable text without a file
 * name: curl's -F a=x.png, where -F a=@x.png was meant. */
static int looks_like_a_path(const ReqField *fl) {
    if (fl->filename || fl->len == 0 || fl->len > 200)
        return 0;
    for (size_t i = 0; i < fl->len; i++)
        if (fl->data[i] < 0x20 || fl->data[i] > 0x7e)
            return 0;
    return 1;
}

/* 422 invalid_image for the image ref names, with a hint for curl's slip. */
static void bad_image(Reply *rep, const ImageRef *ref, const ReqField *fl, const char *err) {
    if (looks_like_a_path(fl))
        reply_error(rep, 422, "invalid_image",
                    "%s #%d holds the text '%.*s', not an image: did you mean -F %s=@%.*s?",
                    ref->name, ref->idx + 1, (int)fl->len, (const char *)fl->data, ref->name,
                    (int)fl->len, (const char *)fl->data);
    else
        reply_error(rep, 422, "invalid_image", "%s #%d: %s", ref->name, ref->idx + 1, err);
}

/* Pixels any image may decode to whatever its size (128x128). */
#define IMG_FREE_PIXELS 16384

/* Reads every image's header before any is decoded: each may decode to at
 * most IMG_FREE_PIXELS + max_pixels_per_byte pixels per byte of its file (a
 * 4 KB all-black 2048x2048 PNG costs 50 ms of CPU), all together to
 * max_request_pixels (413 otherwise), and what a header alone shows to be
 * wrong is refused here too. 0 or -1 (reply). */
static int images_admit(Server *srv, const ReqForm *f, const ImageRef *refs, int n, Reply *rep) {
    const ModelArch *a = model_arch(srv->model);
    uint64_t total = 0, cap = (uint64_t)srv->cfg->max_request_pixels;
    for (int i = 0; i < n; i++) {
        const ReqField *fl = req_get(f, refs[i].name, refs[i].idx);
        char err[SM_ERRMAX];
        uint64_t px = 0;
        int rc = img_probe(fl->data, fl->len, &srv->img_limits, a->in_h, a->in_w, &px, err);
        if (rc == -E2BIG)
            reply_error(rep, 413, "image_too_large", "%s #%d: %s", refs[i].name, refs[i].idx + 1,
                        err);
        else if (rc < 0)
            bad_image(rep, &refs[i], fl, err);
        if (rc < 0)
            return -1;
        uint64_t ratio = (uint64_t)srv->cfg->max_pixels_per_byte;
        if (ratio && px > IMG_FREE_PIXELS + ratio * fl->len) {
            reply_error(rep, 413, "image_too_large",
                        "%s #%d: %" PRIu64 " pixels from %zu bytes: over %" PRIu64
                        " pixels a byte beyond the first %d (max_pixels_per_byte); such "
                        "images cost far more to decode than to send",
                        refs[i].name, refs[i].idx + 1, px, fl->len, ratio, IMG_FREE_PIXELS);
            return -1;
        }
        if ((total += px) > cap) {
            reply_error(rep, 413, "image_too_large",
                        "the images of this request would decode to more than %" PRIu64
                        " pixels in all (max_request_pixels); send them smaller",
                        cap);
            return -1;
        }
    }
    return 0;
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
    if (images_admit(srv, f, refs, n, rep) < 0) {
        free(x);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const ReqField *fl = req_get(f, refs[i].name, refs[i].idx);
        char err[SM_ERRMAX];
        if (http_client_gone()) {
            reply_error(rep, 499, "client_closed", "the client closed the connection");
            free(x);
            return -1;
        }
        int rc = img_load_mem_c(fl->data, fl->len, &srv->img_limits, a->in_h, a->in_w, a->in_c,
                                x + (size_t)i * D, err);
        if (rc < 0) {
            if (rc == -E2BIG)
                reply_error(rep, 413, "image_too_large", "%s #%d: %s", refs[i].name,
                            refs[i].idx + 1, err);
            else if (rc == -ENOMEM)
                reply_error(rep, 503, "out_of_memory", "the server is out of memory");
            else if (rc == -EBUSY)
                reply_error(rep, 503, "server_busy", "%s", err);
            else
                bad_image(rep, &refs[i], fl, err);
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
