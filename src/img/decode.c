/*
 * decode.c — the front door of the image module: format sniffing, dispatch
 * to png.c / jpeg.c (the limits every decoder checks live in limits.c), the
 * binary PGM/PPM decoder (small enough to live here), and the one-call
 * loaders the trainer and the daemon use (decode, then img_prepare()).
 *
 * Everything that reaches img_decode() is untrusted: decoders read only inside
 * [buf, buf + len) and compare declared dimensions with the caller's limits
 * before they allocate a single pixel.
 */
#include "siamese/img.h"

#include "img_internal.h"
#include "siamese/common.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Larger files are refused by img_load_file() before being read. */
#define IMG_MAX_FILE_BYTES ((size_t)64 << 20)

static int pnm_is_space(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

ImgFormat img_sniff(const void *buf, size_t len) {
    const uint8_t *p = buf;
    if (!p)
        return IMG_UNKNOWN;
    if (len >= 8 && memcmp(p, IMG_PNG_MAGIC, 8) == 0)
        return IMG_PNG;
    if (len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
        return IMG_JPEG;
    if (len >= 3 && p[0] == 'P' && (p[1] == '5' || p[1] == '6') && pnm_is_space(p[2]))
        return IMG_PNM;
    return IMG_UNKNOWN;
}

void img_gray_free(ImgGray *g) {
    if (!g)
        return;
    free(g->px);
    memset(g, 0, sizeof *g);
}

/* The format of buf after the checks every entry point shares. */
static int decode_front(const void *buf, size_t len, const ImgLimits *lim, ImgFormat *fmt,
                        char *err) {
    if (lim->max_width <= 0 || lim->max_height <= 0 || lim->max_pixels == 0)
        return sm_err(err, -EINVAL, "image limits must be positive");
    if (!buf || len == 0)
        return sm_err(err, -EINVAL, "empty image");
    if ((*fmt = img_sniff(buf, len)) == IMG_UNKNOWN)
        return sm_err(err, -EINVAL,
                      "unrecognised image format (expected PNG, JPEG or binary PGM/PPM)");
    return 0;
}

static int decode_sized(const void *buf, size_t len, const ImgLimits *lim, int min_w, int min_h,
                        int oc, ImgGray *out, char *err) {
    assert(out);
    memset(out, 0, sizeof *out);
    ImgLimits def = IMG_LIMITS_DEFAULT;
    ImgFormat fmt = IMG_UNKNOWN;
    if (!lim)
        lim = &def;
    int rc = decode_front(buf, len, lim, &fmt, err);
    if (rc < 0)
        return rc;
    if (oc != 1 && oc != 3)
        return sm_err(err, -EINVAL, "%d channels wanted, not 1 or 3", oc);
    if (fmt == IMG_PNG) /* small plain files without libpng (img.h) */
        return img_png_fast(buf, len, lim, oc, out) ? 0
                                                    : img_decode_png(buf, len, lim, oc, out, err);
    if (fmt == IMG_JPEG)
        return img_decode_jpeg(buf, len, lim, min_w, min_h, oc, out, err);
    return img_decode_pnm(buf, len, lim, oc, out, err);
}

int img_decode(const void *buf, size_t len, const ImgLimits *lim, ImgGray *out, char *err) {
    return decode_sized(buf, len, lim, 0, 0, 1, out, err);
}

int img_decode_c(const void *buf, size_t len, const ImgLimits *lim, int channels, ImgGray *out,
                 char *err) {
    return decode_sized(buf, len, lim, 0, 0, channels, out, err);
}

int img_probe(const void *buf, size_t len, const ImgLimits *lim, int out_h, int out_w,
              uint64_t *pixels, char *err) {
    ImgLimits def = IMG_LIMITS_DEFAULT;
    ImgFormat fmt = IMG_UNKNOWN;
    uint64_t w = 0, h = 0;
    if (!lim)
        lim = &def;
    int rc = decode_front(buf, len, lim, &fmt, err);
    if (rc == 0 && fmt == IMG_PNG)
        rc = img_probe_png(buf, len, lim, &w, &h, err);
    else if (rc == 0 && fmt == IMG_JPEG)
        rc = img_probe_jpeg(buf, len, lim, &w, &h, err);
    else if (rc == 0)
        rc = img_probe_pnm(buf, len, lim, &w, &h, err);
    if (rc < 0)
        return rc;
    uint64_t d = fmt == IMG_JPEG ? (uint64_t)img_jpeg_denom(w, h, out_w, out_h) : 1;
    *pixels = ((w + d - 1) / d) * ((h + d - 1) / d);
    return 0;
}

int img_load_mem(const void *buf, size_t len, const ImgLimits *lim, int out_h, int out_w,
                 float *out, char *err) {
    return img_load_mem_c(buf, len, lim, out_h, out_w, 1, out, err);
}

int img_load_mem_c(const void *buf, size_t len, const ImgLimits *lim, int out_h, int out_w,
                   int out_c, float *out, char *err) {
    if (out_h <= 0 || out_w <= 0)
        return sm_err(err, -EINVAL, "output size %dx%d is not positive", out_w, out_h);
    ImgGray g;
    int rc = decode_sized(buf, len, lim, out_w, out_h, out_c, &g, err);
    if (rc < 0)
        return rc;
    img_prepare(&g, out_h, out_w, out);
    img_gray_free(&g);
    return 0;
}

int img_load_file(const char *path, const ImgLimits *lim, int out_h, int out_w, float *out,
                  char *err) {
    return img_load_file_c(path, lim, out_h, out_w, 1, out, err);
}

int img_load_file_c(const char *path, const ImgLimits *lim, int out_h, int out_w, int out_c,
                    float *out, char *err) {
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = sm_read_file(path, IMG_MAX_FILE_BYTES, &buf, &len, err);
    if (rc < 0)
        return rc;
    char why[SM_ERRMAX];
    rc = img_load_mem_c(buf, len, lim, out_h, out_w, out_c, out, why);
    if (rc < 0)
        sm_err(err, rc, "%s: %s", path, why);
    free(buf);
    return rc;
}

/* ---- binary PGM (P5) and PPM (P6) ---- */

typedef struct PnmCursor PnmCursor;
static int pnm_finish(const uint8_t *buf, size_t len, const PnmCursor *cur, uint64_t w, uint64_t h,
                      uint64_t maxval, int oc, ImgGray *out, char *err);

/* A cursor over the header; every read is bounds-checked against len. */
struct PnmCursor {
    const uint8_t *p;
    size_t len, pos;
};

/* Skips whitespace and '#' comments (which run to the end of the line).
 * Returns how many bytes were skipped. */
static size_t pnm_skip(PnmCursor *c) {
    size_t start = c->pos;
    while (c->pos < c->len) {
        if (pnm_is_space(c->p[c->pos])) {
            c->pos++;
        } else if (c->p[c->pos] == '#') {
            while (c->pos < c->len && c->p[c->pos] != '\n' && c->p[c->pos] != '\r')
                c->pos++;
        } else {
            break;
        }
    }
    return c->pos - start;
}

/* Reads one decimal header field that must be preceded by whitespace or a
 * comment. Values saturate just above UINT32_MAX so that absurd widths still
 * reach the limits check (and give -E2BIG) instead of wrapping. */
static int pnm_field(PnmCursor *c, const char *name, uint64_t *v, char *err) {
    size_t skipped = pnm_skip(c);
    if (c->pos >= c->len)
        return sm_err(err, -EINVAL, "pnm: truncated header (no %s)", name);
    if (skipped == 0)
        return sm_err(err, -EINVAL, "pnm: expected whitespace before the %s", name);
    if (c->p[c->pos] < '0' || c->p[c->pos] > '9')
        return sm_err(err, -EINVAL, "pnm: %s is not a decimal number", name);
    uint64_t x = 0;
    while (c->pos < c->len && c->p[c->pos] >= '0' && c->p[c->pos] <= '9') {
        x = x * 10 + (uint64_t)(c->p[c->pos++] - '0');
        if (x > UINT32_MAX)
            x = (uint64_t)UINT32_MAX + 1;
    }
    *v = x;
    return 0;
}

/* Reads the header up to and including the single whitespace byte that ends
 * it; on return c->pos is the first raster byte. */
static int pnm_header(PnmCursor *c, uint64_t *w, uint64_t *h, uint64_t *maxval, char *err) {
    c->pos = 2;
    int rc = pnm_field(c, "width", w, err);
    if (rc == 0)
        rc = pnm_field(c, "height", h, err);
    if (rc == 0)
        rc = pnm_field(c, "maxval", maxval, err);
    if (rc < 0)
        return rc;
    if (c->pos >= c->len || !pnm_is_space(c->p[c->pos]))
        return sm_err(err, -EINVAL, "pnm: maxval must be followed by one whitespace byte");
    c->pos++;
    if (*maxval < 1 || *maxval > 65535)
        return sm_err(err, -EINVAL, "pnm: maxval %" PRIu64 " is outside 1..65535", *maxval);
    return 0;
}

/* Converts the raster (already size-checked) to gray. Samples above maxval
 * are corrupt data, not something to clamp. */
static int pnm_convert(const uint8_t *raster, int channels, unsigned maxval, ImgGray *g,
                       char *err) {
    const int oc = g->c;
    size_t n = (size_t)g->w * (size_t)g->h;
    int wide = maxval > 255;
    unsigned half = maxval / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned s[3];
        for (int k = 0; k < channels; k++) {
            size_t at = i * (size_t)channels + (size_t)k;
            unsigned v = wide ? (unsigned)raster[2 * at] << 8 | raster[2 * at + 1] : raster[at];
            if (v > maxval)
                return sm_err(err, -EINVAL, "pnm: sample %u exceeds maxval %u", v, maxval);
            s[k] = (v * 255u + half) / maxval;
        }
        if (oc == 3)
            for (int k = 0; k < 3; k++)
                g->px[3 * i + (size_t)k] = (uint8_t)s[channels == 1 ? 0 : k];
        else
            g->px[i] = channels == 1 ? (uint8_t)s[0] : img_luma(s[0], s[1], s[2]);
    }
    return 0;
}

int img_probe_pnm(const uint8_t *buf, size_t len, const ImgLimits *lim, uint64_t *w, uint64_t *h,
                  char *err) {
    PnmCursor c = {buf, len, 0};
    uint64_t maxval;
    int rc = pnm_header(&c, w, h, &maxval, err);
    return rc < 0 ? rc : img_check_dims("pnm", *w, *h, lim, err);
}

int img_decode_pnm(const uint8_t *buf, size_t len, const ImgLimits *lim, int oc, ImgGray *out,
                   char *err) {
    PnmCursor c = {buf, len, 0};
    uint64_t w, h, maxval;
    int rc = pnm_header(&c, &w, &h, &maxval, err);
    if (rc < 0)
        return rc;
    rc = img_check_dims("pnm", w, h, lim, err);
    if (rc < 0 || (rc = img_reserve(lim, "pnm", w * h * (uint64_t)oc, err)) < 0)
        return rc;
    rc = pnm_finish(buf, len, &c, w, h, maxval, oc, out, err);
    img_release(lim, w * h * (uint64_t)oc);
    return rc;
}

/* The raster after the header: size-checked, converted into out. */
static int pnm_finish(const uint8_t *buf, size_t len, const PnmCursor *cur, uint64_t w, uint64_t h,
                      uint64_t maxval, int oc, ImgGray *out, char *err) {
    PnmCursor c = *cur;
    int rc;
    int channels = buf[1] == '6' ? 3 : 1;
    uint64_t need = w * h * (uint64_t)channels * (maxval > 255 ? 2u : 1u);
    uint64_t have = len - c.pos;
    if (have != need)
        return sm_err(err, -EINVAL,
                      "pnm: %" PRIu64 "x%" PRIu64 " needs %" PRIu64 " raster bytes, found %" PRIu64
                      "%s",
                      w, h, need, have, have < need ? " (truncated)" : "");
    ImgGray g = {(int)w, (int)h, oc, malloc((size_t)(w * h) * (size_t)oc)};
    if (!g.px)
        return sm_err(err, -ENOMEM, "pnm: out of memory for %" PRIu64 "x%" PRIu64, w, h);
    rc = pnm_convert(buf + c.pos, channels, (unsigned)maxval, &g, err);
    if (rc < 0) {
        img_gray_free(&g);
        return rc;
    }
    *out = g;
    return 0;
}
