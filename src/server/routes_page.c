/*
 * routes_page.c — the web page at "/": its static assets (compiled in from
 * web/, see page.h) and GET /page/settings, which tells the page whether the
 * daemon wants an API key before it makes a call that would be refused.
 *
 * The page and its assets are public (no key needed to load them): they hold
 * nothing but code; every API call the page makes carries the key the user
 * typed, and is checked like any other client's.
 */
#include <stdlib.h>
#include <string.h>

#include "page.h"
#include "routes.h"
#include "siamese/auth.h"

const char page_csp[] = "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; "
                        "style-src 'self'; connect-src 'self'; object-src 'none'; "
                        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const PageAsset *page_find(const char *path) {
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    for (int i = 0; i < page_n_assets; i++)
        if (strcmp(page_assets[i].path, path) == 0)
            return &page_assets[i];
    return NULL;
}

void handle_page(Server *srv, const HttpReq *req, const RouteArgs *args, Reply *rep) {
    (void)srv, (void)args;
    const PageAsset *a = page_find(req->path);
    if (!a) {
        reply_error(rep, 404, "not_found", "no route %.100s", req->path);
        return;
    }
    /* The reply owns its body; a copy of at most a few tens of KB. */
    char *body = malloc(a->len + 1);
    if (!body) {
        reply_error(rep, 503, "out_of_memory", "the server is out of memory");
        return;
    }
    memcpy(body, a->data, a->len + 1);
    free(rep->body);
    rep->body = body;
    rep->len = a->len;
    rep->status = 200;
    rep->content_type = a->content_type;
    rep->csp = page_csp;
}

void handle_page_settings(Server *srv, const HttpReq *req, const RouteArgs *args, Reply *rep) {
    (void)req, (void)args;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "auth_required", auth_n_keys(srv->auth) > 0);
    reply_json(rep, 200, o);
}
