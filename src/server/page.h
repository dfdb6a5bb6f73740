/*
 * page.h — private to src/server: the web page served at "/" (web/ in the
 * source tree), compiled into the binary by embed_assets.py, and the handler
 * that serves it (routes_page.c).
 */
#ifndef SIAMESE_PAGE_H
#define SIAMESE_PAGE_H

#include <stddef.h>

typedef struct {
    const char *path;         /* "/app.js": "/" + the file's name */
    const char *content_type; /* from the extension */
    size_t len;
    const char *data; /* len bytes (and a NUL after them) */
} PageAsset;

/* The generated table (page_assets.c), and its total size in bytes. */
extern const PageAsset page_assets[];
extern const int page_n_assets;
extern const size_t page_assets_bytes;

/* The asset at path ("/" is "/index.html"), or NULL. Borrowed, static. */
const PageAsset *page_find(const char *path);

/* The Content-Security-Policy sent with every asset: everything from this
 * origin only, no inline script or style, images also from blob: (the
 * previews of chosen files). */
extern const char page_csp[];

#endif
