/*
 * img_internal.h — what the per-format decoders of src/img share and nothing
 * else sees: one entry point per format (called by img_decode() after it has
 * sniffed the format and validated the limits), the dimension check every
 * decoder runs before allocating pixels, and the sample arithmetic that makes
 * all formats agree on what "gray" means (see img.h).
 */
#ifndef SIAMESE_IMG_INTERNAL_H
#define SIAMESE_IMG_INTERNAL_H

#include "siamese/img.h"

#include <stdint.h>

/* Each decoder fills out (out->px malloc'ed, out->w/h set) and returns 0, or
 * returns a negative errno with a message prefixed by the format name and
 * leaves out untouched. lim is never NULL and its fields are positive.
 * min_w/min_h > 0 let the JPEG decoder scale down (img_jpeg_denom); 0 means
 * full size. oc is the output's channels: 1 (gray, as img.h defines it) or 3
 * (8-bit R, G, B interleaved: gray replicated, alpha over black per channel,
 * CMYK as for gray but before the luma). img_decode_png is libpng's decoder,
 * for every PNG; img_decode() offers a file to img_png_fast() first. */
int img_decode_png(const uint8_t *buf, size_t len, const ImgLimits *lim, int oc, ImgGray *out,
                   char *err);
int img_decode_jpeg(const uint8_t *buf, size_t len, const ImgLimits *lim, int min_w, int min_h,
                    int oc, ImgGray *out, char *err);
int img_decode_pnm(const uint8_t *buf, size_t len, const ImgLimits *lim, int oc, ImgGray *out,
                   char *err);

/* Bounds for chunks libpng would buffer whole; nothing we keep comes close. */
#define PNG_CHUNK_MALLOC_MAX (4u << 20)
/* One row of 8- or 16-bit G/GA/RGB/RGBA samples (channels 1..4, w pixels)
 * to oc (1 or 3) output channels as img.h defines them, into dst. Both PNG
 * paths (png.c, png_fast.c) convert their rows with it. */
void img_png_row_out(const uint8_t *row, size_t w, int channels, int depth, int oc, uint8_t *dst);
/* Header-only probes for img_probe(): the declared size, limits checked. */
int img_probe_png(const uint8_t *buf, size_t len, const ImgLimits *lim, uint64_t *w, uint64_t *h,
                  char *err);
int img_probe_jpeg(const uint8_t *buf, size_t len, const ImgLimits *lim, uint64_t *w, uint64_t *h,
                   char *err);
int img_probe_pnm(const uint8_t *buf, size_t len, const ImgLimits *lim, uint64_t *w, uint64_t *h,
                  char *err);

/* The DCT scaling denominator (1, 2, 4 or 8) for a w x h JPEG wanted at no
 * less than 8 * min_w x 8 * min_h: the largest that keeps both. */
int img_jpeg_denom(uint64_t w, uint64_t h, int min_w, int min_h);

/* Reserves bytes of working memory for one decode before it is allocated:
 * -E2BIG past lim->max_bytes, -EBUSY when lim->budget cannot spare them now
 * (messages name what and the limit), 0 otherwise; img_release() gives them
 * back (same lim, same bytes) on every path after a 0. */
int img_reserve(const ImgLimits *lim, const char *what, uint64_t bytes, char *err);
void img_release(const ImgLimits *lim, uint64_t bytes);

/* Checks declared dimensions against lim before any pixel memory exists:
 * -EINVAL for a zero dimension, -E2BIG past a limit, 0 otherwise. what names
 * the format in the message ("png: 100000x100000 exceeds the 4096x4096 limit"). */
int img_check_dims(const char *what, uint64_t w, uint64_t h, const ImgLimits *lim, char *err);

/* The 8 bytes every PNG file starts with. */
#define IMG_PNG_MAGIC "\x89PNG\r\n\x1a\n"
/* The big-endian 32-bit number at p (PNG's lengths, sizes and CRCs). */
static inline uint32_t img_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
/* Rec.601 luma of 8-bit R, G, B, rounded to nearest. */
static inline uint8_t img_luma(unsigned r, unsigned g, unsigned b) {
    return (uint8_t)((299u * r + 587u * g + 114u * b + 500u) / 1000u);
}

/* An 8-bit value v under 8-bit alpha a, composited over black, rounded. */
static inline uint8_t img_over_black(unsigned v, unsigned a) {
    return (uint8_t)((v * a + 127u) / 255u);
}

/* A 16-bit sample rounded to 8 bits: round(v * 255 / 65535). */
static inline uint8_t img_16to8(unsigned v) {
    return (uint8_t)((v * 255u + 32767u) / 65535u);
}

#endif
