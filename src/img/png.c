/*
 * png.c — PNG decoding with libpng, from memory, into 8-bit gray.
 *
 * libpng's transforms bring every colour type and bit depth to 8- or 16-bit
 * G, GA, RGB or RGBA (png_set_expand: palette to RGB, low-depth gray to 8
 * bits, tRNS to an alpha channel) and undo Adam7 interlacing; we then do the
 * 16-to-8 rounding, the luma and the alpha compositing ourselves so that PNG,
 * JPEG and PNM share exactly the arithmetic of img_internal.h (libpng's own
 * rgb_to_gray and strip_16 round differently).
 *
 * Defences, in the order they act: the IHDR is read by hand and checked
 * against the caller's limits before libpng even starts (clear -E2BIG
 * message), png_set_user_limits repeats that check inside libpng, every
 * ancillary chunk except tRNS is skipped unread (no zTXt/iTXt/iCCP inflation,
 * no gamma games), and chunk allocations are capped in case a later change
 * lets some through. The working memory (all rows of an interlaced file,
 * 16-bit samples included, plus the gray result) is reserved against the
 * byte limits before it is allocated. libpng reports errors by longjmp; locals that change
 * after setjmp are volatile and every path frees them.
 */
#include "img_internal.h"
#include "siamese/common.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PNG_CHUNK_CACHE_MAX 64

/* The memory source and the place libpng's error message lands. */
typedef struct {
    const uint8_t *buf;
    size_t len, pos;
    char msg[160];
} PngSrc;

static void png_src_read(png_structp png, png_bytep dst, size_t n) {
    PngSrc *s = png_get_io_ptr(png);
    if (n > s->len - s->pos)
        png_error(png, "truncated file");
    memcpy(dst, s->buf + s->pos, n);
    s->pos += n;
}

static void png_on_error(png_structp png, png_const_charp msg) {
    PngSrc *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* Warnings (bad ancillary CRCs, oversized chunks dropped, ...) leave a
 * decodable image; they are not the caller's business. */
static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

/* The PNG spec requires IHDR (13 bytes) right after the signature, so its
 * dimensions can be judged before libpng allocates anything. */
static int png_check_ihdr(const uint8_t *buf, size_t len, const ImgLimits *lim, char *err) {
    if (len < 8 + 8 + 13 + 4)
        return sm_err(err, -EINVAL, "png: truncated before the end of IHDR");
    if (img_be32(buf + 8) != 13 || memcmp(buf + 12, "IHDR", 4) != 0)
        return sm_err(err, -EINVAL, "png: first chunk is not a 13-byte IHDR");
    return img_check_dims("png", img_be32(buf + 16), img_be32(buf + 20), lim, err);
}

int img_probe_png(const uint8_t *buf, size_t len, const ImgLimits *lim, uint64_t *w, uint64_t *h,
                  char *err) {
    int rc = png_check_ihdr(buf, len, lim, err);
    if (rc == 0)
        *w = img_be32(buf + 16), *h = img_be32(buf + 20);
    return rc;
}

static void png_configure(png_structp png, PngSrc *src, const ImgLimits *lim) {
    png_set_read_fn(png, src, png_src_read);
    png_set_user_limits(png, (png_uint_32)lim->max_width, (png_uint_32)lim->max_height);
    png_set_chunk_cache_max(png, PNG_CHUNK_CACHE_MAX);
    png_set_chunk_malloc_max(png, PNG_CHUNK_MALLOC_MAX);
    /* A negative count means every chunk but IHDR, PLTE, tRNS, IDAT, IEND. */
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
}

/* One row of 8- or 16-bit G/GA/RGB/RGBA samples to gray: each sample to 8
 * bits first, then luma, then alpha over black. */
static void png_row_to_gray(const uint8_t *row, size_t w, int channels, int depth, uint8_t *dst) {
    if (channels == 1 && depth == 8) { /* already what we want */
        memcpy(dst, row, w);
        return;
    }
    for (size_t x = 0; x < w; x++) {
        unsigned s[4] = {0};
        for (int k = 0; k < channels; k++) {
            size_t i = x * (size_t)channels + (size_t)k;
            s[k] = depth == 16 ? img_16to8((unsigned)row[2 * i] << 8 | row[2 * i + 1]) : row[i];
        }
        unsigned v = channels <= 2 ? s[0] : img_luma(s[0], s[1], s[2]);
        if (channels == 2 || channels == 4)
            v = img_over_black(v, s[channels - 1]);
        dst[x] = (uint8_t)v;
    }
}

/* The same row to 8-bit RGB: gray replicated, alpha over black per channel. */
static void png_row_to_rgb(const uint8_t *row, size_t w, int channels, int depth, uint8_t *dst) {
    for (size_t x = 0; x < w; x++) {
        unsigned s[4] = {0};
        for (int k = 0; k < channels; k++) {
            size_t i = x * (size_t)channels + (size_t)k;
            s[k] = depth == 16 ? img_16to8((unsigned)row[2 * i] << 8 | row[2 * i + 1]) : row[i];
        }
        for (int k = 0; k < 3; k++) {
            unsigned v = channels <= 2 ? s[0] : s[k];
            if (channels == 2 || channels == 4)
                v = img_over_black(v, s[channels - 1]);
            dst[3 * x + (size_t)k] = (uint8_t)v;
        }
    }
}

void img_png_row_out(const uint8_t *row, size_t w, int channels, int depth, int oc, uint8_t *dst) {
    if (oc == 3)
        png_row_to_rgb(row, w, channels, depth, dst);
    else
        png_row_to_gray(row, w, channels, depth, dst);
}

int img_decode_png(const uint8_t *buf, size_t len, const ImgLimits *lim, int oc, ImgGray *out,
                   char *err) {
    int rc = png_check_ihdr(buf, len, lim, err);
    if (rc < 0)
        return rc;
    PngSrc src = {.buf = buf, .len = len};
    png_structp png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return sm_err(err, -ENOMEM, "png: out of memory");
    }
    uint8_t *volatile rows = NULL;
    uint8_t *volatile gray = NULL;
    volatile uint64_t reserved = 0;
    if (setjmp(png_jmpbuf(png))) {
        rc = sm_err(err, strstr(src.msg, "memory") ? -ENOMEM : -EINVAL, "png: %s", src.msg);
        goto out;
    }
    png_configure(png, &src, lim);
    png_read_info(png, info);
    size_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    rc = img_check_dims("png", w, h, lim, err);
    if (rc < 0)
        goto out;
    png_set_expand(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int channels = png_get_channels(png, info), depth = png_get_bit_depth(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (channels < 1 || channels > 4 || (depth != 8 && depth != 16) ||
        rowbytes != w * (size_t)channels * (size_t)(depth / 8)) {
        rc = sm_err(err, -EINVAL, "png: unexpected layout after expansion (%d channels, %d bits)",
                    channels, depth);
        goto out;
    }
    /* Adam7 fills rows over seven passes, so it needs the whole image; a
     * non-interlaced file needs only one row at a time. */
    size_t nrows = passes > 1 ? h : 1;
    uint64_t need = (uint64_t)nrows * rowbytes + (uint64_t)w * h * (uint64_t)oc;
    if ((rc = img_reserve(lim, "png", need, err)) < 0)
        goto out;
    reserved = need;
    rows = calloc(nrows, rowbytes);
    gray = malloc(w * h * (size_t)oc);
    if (!rows || !gray) {
        rc = sm_err(err, -ENOMEM, "png: out of memory for %zux%zu", w, h);
        goto out;
    }
    for (int pass = 0; pass < passes; pass++)
        for (size_t y = 0; y < h; y++) {
            uint8_t *row = rows + (passes > 1 ? y * rowbytes : 0);
            png_read_row(png, row, NULL);
            if (passes == 1)
                img_png_row_out(row, w, channels, depth, oc, gray + y * w * (size_t)oc);
        }
    for (size_t y = 0; passes > 1 && y < h; y++)
        img_png_row_out(rows + y * rowbytes, w, channels, depth, oc, gray + y * w * (size_t)oc);
    /* Reads through IEND: a file cut after its pixel data is still truncated. */
    png_read_end(png, NULL);
    *out = (ImgGray){(int)w, (int)h, oc, gray};
    gray = NULL;
out:
    free(rows);
    free(gray);
    png_destroy_read_struct(&png, &info, NULL);
    img_release(lim, reserved);
    return rc;
}

int img_png_libpng(const void *buf, size_t len, const ImgLimits *lim, int oc, ImgGray *out,
                   char *err) {
    ImgLimits def = IMG_LIMITS_DEFAULT;
    memset(out, 0, sizeof *out);
    if (oc != 1 && oc != 3)
        return sm_err(err, -EINVAL, "%d channels wanted, not 1 or 3", oc);
    return img_decode_png(buf, len, lim ? lim : &def, oc, out, err);
}
