/*
 * test_img.c — unit tests for the image module (include/siamese/img.h).
 *
 * Images are made here with libpng's and libjpeg's writers (and by hand for
 * PGM/PPM), with known samples, and the decoded gray is compared with the
 * header's arithmetic: exactly for lossless formats, within a tolerance for
 * JPEG. Hostile inputs are made by patching good files (a 100000x100000 IHDR
 * with a valid CRC, a 65000x65000 SOF, zTXt/iCCP bombs, cut files, too many
 * progressive scans). img_prepare() is checked on values worked out by hand.
 *
 * The committed files in tests/data/img/ (seed corpus for fuzzing) come from
 * the same generators: `test_img --write-fixtures DIR` rewrites them, and the
 * fixtures test decodes each one with its expected outcome.
 */
#include "siamese/common.h"
#include "siamese/img.h"

#include <check.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <jpeglib.h>

/* ---- growable byte buffer ---- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} Buf;

static void buf_put(Buf *b, const void *d, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void buf_puts(Buf *b, const char *s) {
    buf_put(b, s, strlen(s));
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---- the reference arithmetic, written out from img.h ---- */

static unsigned ref_luma(unsigned r, unsigned g, unsigned b) {
    return (299 * r + 587 * g + 114 * b + 500) / 1000;
}
static unsigned ref_over(unsigned v, unsigned a) {
    return (v * a + 127) / 255;
}
static unsigned ref_to8(unsigned v, int depth) {
    return depth == 16 ? (v * 255 + 32767) / 65535 : v * 255 / ((1u << depth) - 1);
}

/* Deterministic scrambled sample in [0, maxval]. */
static unsigned sample(int x, int y, int k, unsigned maxval) {
    uint32_t h = (uint32_t)x * 73856093u ^ (uint32_t)y * 19349663u ^ (uint32_t)k * 83492791u;
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    return h % (maxval + 1);
}

static int decode(const Buf *b, const ImgLimits *lim, ImgGray *g, char *err) {
    return img_decode(b->p, b->len, lim, g, err);
}

/* ---- PNG writer ---- */

typedef struct {
    int w, h, type, depth, interlace, level; /* level: zlib level, -1 = default */
    const uint16_t *s;                       /* w*h*channels samples (indices if palette) */
    const png_color *pal;
    int npal;
    const png_byte *trns;
    int ntrns;
    const png_color_16 *tcolor;
} PngSpec;

static int png_channels(int type) {
    switch (type) {
    case PNG_COLOR_TYPE_GRAY_ALPHA:
        return 2;
    case PNG_COLOR_TYPE_RGB:
        return 3;
    case PNG_COLOR_TYPE_RGBA:
        return 4;
    default:
        return 1;
    }
}

static void png_wr(png_structp p, png_bytep d, size_t n) {
    buf_put(png_get_io_ptr(p), d, n);
}
static void png_fl(png_structp p) {
    (void)p;
}

static Buf png_make(const PngSpec *sp) {
    Buf b = {0};
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(p);
    ck_assert(p && info);
    int ch = png_channels(sp->type), bps = sp->depth == 16 ? 2 : 1;
    size_t rowbytes = (size_t)sp->w * (size_t)(ch * bps);
    uint8_t *px = malloc(rowbytes * (size_t)sp->h);
    png_bytep *rows = malloc(sizeof *rows * (size_t)sp->h);
    ck_assert(px && rows);
    if (setjmp(png_jmpbuf(p)))
        ck_abort_msg("libpng writer failed");
    png_set_write_fn(p, &b, png_wr, png_fl);
    png_set_IHDR(p, info, (png_uint_32)sp->w, (png_uint_32)sp->h, sp->depth, sp->type,
                 sp->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (sp->pal)
        png_set_PLTE(p, info, sp->pal, sp->npal);
    if (sp->trns || sp->tcolor)
        png_set_tRNS(p, info, sp->trns, sp->ntrns, sp->tcolor);
    if (sp->level >= 0)
        png_set_compression_level(p, sp->level);
    if (sp->level == 0) /* raw rows visible in the file, for corrupting them */
        png_set_filter(p, PNG_FILTER_TYPE_BASE, PNG_FILTER_NONE);
    png_write_info(p, info);
    if (sp->depth < 8)
        png_set_packing(p);
    for (size_t i = 0; i < (size_t)sp->w * (size_t)sp->h * (size_t)ch; i++) {
        if (bps == 2) {
            px[2 * i] = (uint8_t)(sp->s[i] >> 8);
            px[2 * i + 1] = (uint8_t)sp->s[i];
        } else {
            px[i] = (uint8_t)sp->s[i];
        }
    }
    for (int y = 0; y < sp->h; y++)
        rows[y] = px + (size_t)y * rowbytes;
    png_write_image(p, rows);
    png_write_end(p, NULL);
    png_destroy_write_struct(&p, &info);
    free(px);
    free(rows);
    return b;
}

/* Recomputes the CRC of the chunk whose length field is at c. */
static void png_fix_crc(uint8_t *c) {
    uint32_t n = (uint32_t)c[0] << 24 | (uint32_t)c[1] << 16 | (uint32_t)c[2] << 8 | c[3];
    put_be32(c + 8 + n, (uint32_t)crc32(0, c + 4, 4 + n));
}

/* A copy of png with one chunk inserted right after IHDR (offset 33). */
static Buf png_insert(const Buf *png, const char *type, const uint8_t *data, size_t n) {
    Buf b = {0};
    uint8_t hdr[8], crc[4];
    put_be32(hdr, (uint32_t)n);
    memcpy(hdr + 4, type, 4);
    put_be32(crc, (uint32_t)crc32(crc32(0, hdr + 4, 4), data, (uInt)n));
    buf_put(&b, png->p, 33);
    buf_put(&b, hdr, 8);
    buf_put(&b, data, n);
    buf_put(&b, crc, 4);
    buf_put(&b, png->p + 33, png->len - 33);
    return b;
}

/* prefix followed by a zlib stream inflating to n zero bytes. */
static Buf zlib_zeros(const char *prefix, size_t prefix_len, size_t n) {
    Buf b = {0};
    buf_put(&b, prefix, prefix_len);
    z_stream z = {0};
    ck_assert_int_eq(deflateInit(&z, 9), Z_OK);
    static uint8_t zeros[1 << 16], outb[1 << 16];
    int flush = Z_NO_FLUSH;
    do {
        size_t chunk = n < sizeof zeros ? n : sizeof zeros;
        n -= chunk;
        flush = n == 0 ? Z_FINISH : Z_NO_FLUSH;
        z.next_in = zeros;
        z.avail_in = (uInt)chunk;
        do {
            z.next_out = outb;
            z.avail_out = sizeof outb;
            deflate(&z, flush);
            buf_put(&b, outb, sizeof outb - z.avail_out);
        } while (z.avail_out == 0);
    } while (flush != Z_FINISH);
    deflateEnd(&z);
    return b;
}

/* An 8-bit RGB PNG whose gray is known: the base image for hostile tests. */
static Buf png_base(int w, int h, uint8_t *expect, int level) {
    uint16_t *s = malloc(sizeof *s * (size_t)(w * h * 3));
    ck_assert_ptr_nonnull(s);
    for (int i = 0; i < w * h; i++) {
        for (int k = 0; k < 3; k++)
            s[3 * i + k] = (uint16_t)sample(i % w, i / w, k, 255);
        if (expect)
            expect[i] = (uint8_t)ref_luma(s[3 * i], s[3 * i + 1], s[3 * i + 2]);
    }
    Buf b = png_make(&(PngSpec){w, h, PNG_COLOR_TYPE_RGB, 8, 0, level, s, 0, 0, 0, 0, 0});
    free(s);
    return b;
}

/* ---- PNG: every colour type and bit depth, plain and interlaced ---- */

typedef struct {
    int type, depth, trns; /* trns: add a tRNS chunk */
} PngCase;

static const PngCase png_cases[] = {
    {PNG_COLOR_TYPE_GRAY, 1, 0},       {PNG_COLOR_TYPE_GRAY, 2, 0},
    {PNG_COLOR_TYPE_GRAY, 4, 0},       {PNG_COLOR_TYPE_GRAY, 8, 0},
    {PNG_COLOR_TYPE_GRAY, 16, 0},      {PNG_COLOR_TYPE_GRAY, 2, 1},
    {PNG_COLOR_TYPE_GRAY, 8, 1},       {PNG_COLOR_TYPE_GRAY, 16, 1},
    {PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0}, {PNG_COLOR_TYPE_GRAY_ALPHA, 16, 0},
    {PNG_COLOR_TYPE_RGB, 8, 0},        {PNG_COLOR_TYPE_RGB, 16, 0},
    {PNG_COLOR_TYPE_RGB, 8, 1},        {PNG_COLOR_TYPE_RGB, 16, 1},
    {PNG_COLOR_TYPE_RGBA, 8, 0},       {PNG_COLOR_TYPE_RGBA, 16, 0},
    {PNG_COLOR_TYPE_PALETTE, 1, 0},    {PNG_COLOR_TYPE_PALETTE, 2, 0},
    {PNG_COLOR_TYPE_PALETTE, 4, 0},    {PNG_COLOR_TYPE_PALETTE, 8, 0},
    {PNG_COLOR_TYPE_PALETTE, 4, 1},    {PNG_COLOR_TYPE_PALETTE, 8, 1},
};

/* Builds the PNG for case c at w x h and the gray it must decode to. */
static Buf png_case_make(const PngCase *c, int w, int h, int interlace, uint8_t *expect) {
    int ch = png_channels(c->type);
    unsigned maxval = (1u << c->depth) - 1;
    uint16_t *s = malloc(sizeof *s * (size_t)(w * h * ch));
    ck_assert_ptr_nonnull(s);
    png_color pal[256];
    png_byte trns[256];
    int npal = c->type == PNG_COLOR_TYPE_PALETTE ? (int)maxval + 1 : 0;
    for (int i = 0; i < npal; i++) {
        pal[i] = (png_color){(png_byte)sample(i, 1, 0, 255), (png_byte)sample(i, 1, 1, 255),
                             (png_byte)sample(i, 1, 2, 255)};
        trns[i] = (png_byte)(i % 3 == 0 ? 0 : sample(i, 2, 3, 255));
    }
    int ntrns = npal > 2 ? npal - 2 : npal; /* the last entries stay opaque */
    png_color_16 tc = {0};
    tc.gray = (png_uint_16)sample(5, 5, 0, maxval);
    tc.red = (png_uint_16)sample(5, 5, 1, maxval);
    tc.green = (png_uint_16)sample(5, 5, 2, maxval);
    tc.blue = (png_uint_16)sample(5, 5, 3, maxval);
    for (int i = 0; i < w * h; i++) {
        uint16_t *p = s + (size_t)i * (size_t)ch;
        for (int k = 0; k < ch; k++)
            p[k] = (uint16_t)sample(i % w, i / w, k, maxval);
        if (c->trns && i % 5 == 0 && c->type == PNG_COLOR_TYPE_GRAY)
            p[0] = tc.gray;
        if (c->trns && i % 5 == 0 && c->type == PNG_COLOR_TYPE_RGB) {
            p[0] = tc.red;
            p[1] = tc.green;
            p[2] = tc.blue;
        }
        unsigned v;
        switch (c->type) {
        case PNG_COLOR_TYPE_PALETTE:
            v = ref_luma(pal[p[0]].red, pal[p[0]].green, pal[p[0]].blue);
            if (c->trns && p[0] < ntrns)
                v = ref_over(v, trns[p[0]]);
            break;
        case PNG_COLOR_TYPE_GRAY:
            v = c->trns && p[0] == tc.gray ? 0 : ref_to8(p[0], c->depth);
            break;
        case PNG_COLOR_TYPE_GRAY_ALPHA:
            v = ref_over(ref_to8(p[0], c->depth), ref_to8(p[1], c->depth));
            break;
        default:
            v = ref_luma(ref_to8(p[0], c->depth), ref_to8(p[1], c->depth), ref_to8(p[2], c->depth));
            if (c->trns && p[0] == tc.red && p[1] == tc.green && p[2] == tc.blue)
                v = 0;
            if (ch == 4)
                v = ref_over(v, ref_to8(p[3], c->depth));
        }
        expect[i] = (uint8_t)v;
    }
    int pal_trns = c->trns && npal;
    PngSpec sp = {w,
                  h,
                  c->type,
                  c->depth,
                  interlace,
                  -1,
                  s,
                  npal ? pal : NULL,
                  npal,
                  pal_trns ? trns : NULL,
                  pal_trns ? ntrns : 0,
                  c->trns && !npal ? &tc : NULL};
    Buf b = png_make(&sp);
    free(s);
    return b;
}

START_TEST(png_every_type_depth) {
    static const int sizes[][2] = {{13, 11}, {1, 1}, {3, 2}, {9, 17}};
    const PngCase *c = &png_cases[_i / 8];
    int interlace = _i % 2, w = sizes[_i / 2 % 4][0], h = sizes[_i / 2 % 4][1];
    uint8_t expect[17 * 13];
    Buf b = png_case_make(c, w, h, interlace, expect);
    ImgGray g;
    char err[SM_ERRMAX] = "";
    int rc = decode(&b, NULL, &g, err);
    ck_assert_msg(rc == 0, "type %d depth %d interlace %d %dx%d: %s", c->type, c->depth, interlace,
                  w, h, err);
    ck_assert_int_eq(g.w, w);
    ck_assert_int_eq(g.h, h);
    for (int i = 0; i < w * h; i++)
        ck_assert_msg(g.px[i] == expect[i], "type %d depth %d trns %d interlace %d px %d: %u != %u",
                      c->type, c->depth, c->trns, interlace, i, g.px[i], expect[i]);
    img_gray_free(&g);
    ck_assert_ptr_null(g.px);
    free(b.p);
}
END_TEST

/* Hand-computed values, independent of the reference helpers above. */
START_TEST(png_known_values) {
    const uint16_t rgb[] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255};
    Buf b = png_make(&(PngSpec){4, 1, PNG_COLOR_TYPE_RGB, 8, 0, -1, rgb, 0, 0, 0, 0, 0});
    ImgGray g;
    ck_assert_int_eq(decode(&b, NULL, &g, NULL), 0);
    ck_assert_int_eq(g.px[0], 76);
    ck_assert_int_eq(g.px[1], 150);
    ck_assert_int_eq(g.px[2], 29);
    ck_assert_int_eq(g.px[3], 255);
    img_gray_free(&g);
    free(b.p);
    /* gray+alpha 16-bit: 65535 at alpha 32768 -> 255 * 128 / 255 = 128 */
    const uint16_t ga[] = {65535, 32768, 32896, 65535, 40000, 0};
    b = png_make(&(PngSpec){3, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 16, 1, -1, ga, 0, 0, 0, 0, 0});
    ck_assert_int_eq(decode(&b, NULL, &g, NULL), 0);
    ck_assert_int_eq(g.px[0], 128);
    ck_assert_int_eq(g.px[1], 128);
    ck_assert_int_eq(g.px[2], 0);
    img_gray_free(&g);
    free(b.p);
}
END_TEST

START_TEST(png_truncated) {
    Buf b = png_base(20, 20, NULL, -1);
    const size_t cuts[] = {8, 20, 33, 50, b.len / 2, b.len - 12, b.len - 1};
    for (size_t i = 0; i < SM_ARRAY_LEN(cuts); i++) {
        ImgGray g = {1, 1, NULL};
        char err[SM_ERRMAX] = "";
        int rc = img_decode(b.p, cuts[i], NULL, &g, err);
        ck_assert_msg(rc == -EINVAL, "cut at %zu: rc %d (%s)", cuts[i], rc, err);
        ck_assert_ptr_null(g.px);
        ck_assert_int_eq(g.w, 0);
        ck_assert(strncmp(err, "png: ", 5) == 0);
    }
    free(b.p);
}
END_TEST

static void set_ihdr(Buf *b, uint32_t w, uint32_t h) {
    put_be32(b->p + 16, w);
    put_be32(b->p + 20, h);
    png_fix_crc(b->p + 8);
}

START_TEST(png_huge_dims) {
    Buf b = png_base(8, 8, NULL, -1);
    ImgGray g;
    char err[SM_ERRMAX] = "";
    set_ihdr(&b, 100000, 100000);
    ck_assert_int_eq(decode(&b, NULL, &g, err), -E2BIG);
    ck_assert_str_eq(err, "png: 100000x100000 exceeds the 4096x4096 limit");
    set_ihdr(&b, 0x7fffffff, 1);
    ck_assert_int_eq(decode(&b, NULL, &g, err), -E2BIG);
    set_ihdr(&b, 4096, 4097);
    ck_assert_int_eq(decode(&b, NULL, &g, err), -E2BIG);
    set_ihdr(&b, 0, 8);
    ck_assert_int_eq(decode(&b, NULL, &g, err), -EINVAL);
    set_ihdr(&b, 8, 0);
    ck_assert_int_eq(decode(&b, NULL, &g, err), -EINVAL);
    /* Within width and height but over the pixel budget. */
    set_ihdr(&b, 8, 8);
    ImgLimits lim = {16, 16, 63};
    ck_assert_int_eq(decode(&b, &lim, &g, err), -E2BIG);
    ck_assert_ptr_nonnull(strstr(err, "63-pixel"));
    lim.max_pixels = 64;
    ck_assert_int_eq(decode(&b, &lim, &g, err), 0);
    img_gray_free(&g);
    lim = (ImgLimits){7, 16, 1000};
    ck_assert_int_eq(decode(&b, &lim, &g, err), -E2BIG);
    lim = (ImgLimits){0, 16, 1000};
    ck_assert_int_eq(decode(&b, &lim, &g, err), -EINVAL);
    free(b.p);
}
END_TEST

START_TEST(png_corrupt) {
    ImgGray g;
    char err[SM_ERRMAX];
    /* Stored (level 0) deflate blocks leave the raw rows visible. */
    Buf b = png_base(16, 4, NULL, 0);
    uint8_t *idat = memmem(b.p, b.len, "IDAT", 4);
    ck_assert_ptr_nonnull(idat);
    /* zlib header (2) + stored block header (5), then row 0's filter byte. */
    size_t filt = (size_t)(idat - b.p) + 4 + 2 + 5;
    ck_assert_int_eq(b.p[filt], 0);
    b.p[29] ^= 1; /* IHDR's CRC */
    ck_assert_int_eq(decode(&b, NULL, &g, err), -EINVAL);
    ck_assert_msg(strstr(err, "CRC"), "%s", err);
    b.p[29] ^= 1;
    ck_assert_int_eq(decode(&b, NULL, &g, err), 0);
    img_gray_free(&g);
    b.p[filt] = 9; /* no such filter */
    png_fix_crc(idat - 4);
    ck_assert_int_eq(decode(&b, NULL, &g, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "filter"));
    b.p[filt] = 0;
    idat[4] = 0x00; /* zlib compression method 0 */
    png_fix_crc(idat - 4);
    ck_assert_int_eq(decode(&b, NULL, &g, err), -EINVAL);
    b.p[1] = 'Q'; /* wrong magic */
    ck_assert_int_eq(img_sniff(b.p, b.len), IMG_UNKNOWN);
    ck_assert_int_eq(decode(&b, NULL, &g, err), -EINVAL);
    free(b.p);
    /* An unknown critical chunk, and an ancillary one declaring 2 GiB. */
    Buf base = png_base(8, 8, NULL, -1);
    b = png_insert(&base, "ABCD", (const uint8_t *)"x", 1);
    ck_assert_int_eq(decode(&b, NULL, &g, err), -EINVAL);
    free(b.p);
    b = png_insert(&base, "tEXt", (const uint8_t *)"a\0b", 3);
    put_be32(b.p + 33, 0x7ffffff0);
    ck_assert_int_eq(decode(&b, NULL, &g, err), -EINVAL);
    free(b.p);
    free(base.p);
}
END_TEST

/* zTXt and iCCP inflating to far more than the chunk cap: the image still
 * decodes, exactly, without the text or profile ever being inflated. */
START_TEST(png_chunk_bombs) {
    uint8_t expect[12 * 10];
    Buf base = png_base(12, 10, expect, -1);
    Buf ztxt = zlib_zeros("Comment\0\0", 9, (size_t)64 << 20);
    Buf iccp = zlib_zeros("icc\0\0", 5, (size_t)64 << 20);
    ck_assert_uint_lt(ztxt.len, 200000);
    const Buf *payload[] = {&ztxt, &iccp};
    const char *type[] = {"zTXt", "iCCP"};
    for (int i = 0; i < 2; i++) {
        Buf b = png_insert(&base, type[i], payload[i]->p, payload[i]->len);
        ImgGray g;
        char err[SM_ERRMAX] = "";
        double t0 = sm_now();
        ck_assert_msg(decode(&b, NULL, &g, err) == 0, "%s: %s", type[i], err);
        ck_assert_double_lt(sm_now() - t0, 2.0);
        ck_assert_mem_eq(g.px, expect, sizeof expect);
        img_gray_free(&g);
        free(b.p);
    }
    free(ztxt.p);
    free(iccp.p);
    free(base.p);
}
END_TEST

/* ---- JPEG ---- */

typedef struct {
    int w, h, comps;
    J_COLOR_SPACE in, store;
    int progressive, adobe; /* adobe: -1 = library default, else write_Adobe_marker */
    const jpeg_scan_info *scans;
    int nscans;
} JpegSpec;

static Buf jpeg_make(const JpegSpec *sp, const uint8_t *px) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    unsigned char *mem = NULL;
    unsigned long size = 0;
    jpeg_mem_dest(&c, &mem, &size);
    c.image_width = (JDIMENSION)sp->w;
    c.image_height = (JDIMENSION)sp->h;
    c.input_components = sp->comps;
    c.in_color_space = sp->in;
    jpeg_set_defaults(&c);
    jpeg_set_colorspace(&c, sp->store);
    jpeg_set_quality(&c, 100, TRUE);
    for (int i = 0; i < c.num_components; i++)
        c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
    if (sp->progressive)
        jpeg_simple_progression(&c);
    if (sp->scans) {
        c.scan_info = sp->scans;
        c.num_scans = sp->nscans;
    }
    if (sp->adobe >= 0)
        c.write_Adobe_marker = (boolean)sp->adobe;
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)c.next_scanline * (size_t)(sp->w * sp->comps));
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    Buf b = {0};
    buf_put(&b, mem, size);
    free(mem);
    return b;
}

enum { JW = 32, JH = 24 };

/* Smooth pictures (JPEG at q100 keeps them within a few levels) in the
 * layout sp asks for, with the gray each must decode to. CMYK is stored
 * Adobe-inverted unless adobe == 0. */
static void jpeg_picture(const JpegSpec *sp, uint8_t *px, uint8_t *expect) {
    for (int y = 0; y < sp->h; y++)
        for (int x = 0; x < sp->w; x++) {
            int i = y * sp->w + x;
            unsigned r = 40 + 4 * x, g = 60 + 3 * y, b = 200 - 2 * x - y;
            uint8_t *p = px + i * sp->comps;
            if (sp->comps == 1) {
                p[0] = (uint8_t)ref_luma(r, g, b);
                expect[i] = p[0];
            } else if (sp->comps == 3) {
                p[0] = (uint8_t)r, p[1] = (uint8_t)g, p[2] = (uint8_t)b;
                expect[i] = (uint8_t)ref_luma(r, g, b);
            } else {
                unsigned c = 255 - 3 * x, m = 200 + 2 * y, ye = 100 + 4 * x, k = 150 + 2 * x + y;
                p[0] = (uint8_t)c, p[1] = (uint8_t)m, p[2] = (uint8_t)ye, p[3] = (uint8_t)k;
                if (sp->adobe == 0)
                    c = 255 - c, m = 255 - m, ye = 255 - ye, k = 255 - k;
                expect[i] = (uint8_t)ref_luma(ref_over(c, k), ref_over(m, k), ref_over(ye, k));
            }
        }
}

static const JpegSpec jpeg_kinds[] = {
    {JW, JH, 3, JCS_RGB, JCS_YCbCr, 0, -1, NULL, 0}, /* baseline */
    {JW, JH, 3, JCS_RGB, JCS_YCbCr, 1, -1, NULL, 0}, /* progressive */
    {JW, JH, 1, JCS_GRAYSCALE, JCS_GRAYSCALE, 0, -1, NULL, 0},
    {JW, JH, 1, JCS_GRAYSCALE, JCS_GRAYSCALE, 1, -1, NULL, 0},
    {JW, JH, 3, JCS_RGB, JCS_RGB, 0, -1, NULL, 0},   /* RGB stored as RGB */
    {JW, JH, 4, JCS_CMYK, JCS_CMYK, 0, -1, NULL, 0}, /* Adobe inverted CMYK */
    {JW, JH, 4, JCS_CMYK, JCS_YCCK, 0, -1, NULL, 0}, /* YCCK */
    {JW, JH, 4, JCS_CMYK, JCS_CMYK, 1, -1, NULL, 0}, /* progressive CMYK */
    {JW, JH, 4, JCS_CMYK, JCS_CMYK, 0, 0, NULL, 0},  /* plain CMYK, no APP14 */
};

START_TEST(jpeg_kinds_decode) {
    const JpegSpec *sp = &jpeg_kinds[_i];
    uint8_t px[JW * JH * 4], expect[JW * JH];
    jpeg_picture(sp, px, expect);
    Buf b = jpeg_make(sp, px);
    ck_assert_int_eq(img_sniff(b.p, b.len), IMG_JPEG);
    ImgGray g;
    char err[SM_ERRMAX] = "";
    ck_assert_msg(decode(&b, NULL, &g, err) == 0, "kind %d: %s", _i, err);
    ck_assert_int_eq(g.w, JW);
    ck_assert_int_eq(g.h, JH);
    int worst = 0;
    double sum = 0;
    for (int i = 0; i < JW * JH; i++) {
        int d = abs((int)g.px[i] - (int)expect[i]);
        worst = d > worst ? d : worst;
        sum += d;
    }
    ck_assert_msg(worst <= 4 && sum / (JW * JH) < 1.0, "kind %d: worst %d mean %.2f", _i, worst,
                  sum / (JW * JH));
    img_gray_free(&g);
    free(b.p);
}
END_TEST

/* Flat CMYK patches have no coding loss to speak of: hand-checked values. */
START_TEST(jpeg_cmyk_known) {
    uint8_t px[16 * 16 * 4];
    const struct {
        uint8_t c, m, y, k;
        int adobe, gray;
    } cases[] = {{255, 255, 255, 128, -1, 128}, /* inverted: R = 255*128/255 */
                 {0, 0, 0, 127, 0, 128},        /* plain: (255)(128)/255 */
                 {255, 0, 0, 255, -1, 76},      /* inverted: pure red */
                 {0, 255, 255, 0, 0, 76}};
    for (size_t t = 0; t < SM_ARRAY_LEN(cases); t++) {
        for (int i = 0; i < 16 * 16; i++) {
            px[4 * i] = cases[t].c, px[4 * i + 1] = cases[t].m;
            px[4 * i + 2] = cases[t].y, px[4 * i + 3] = cases[t].k;
        }
        JpegSpec sp = {16, 16, 4, JCS_CMYK, JCS_CMYK, 0, cases[t].adobe, NULL, 0};
        Buf b = jpeg_make(&sp, px);
        ImgGray g;
        ck_assert_int_eq(decode(&b, NULL, &g, NULL), 0);
        for (int i = 0; i < 16 * 16; i++)
            ck_assert_msg(abs(g.px[i] - cases[t].gray) <= 1, "case %zu: %d", t, g.px[i]);
        img_gray_free(&g);
        free(b.p);
    }
}
END_TEST

static Buf jpeg_small(int progressive) {
    uint8_t px[JW * JH * 3], expect[JW * JH];
    JpegSpec sp = jpeg_kinds[progressive ? 1 : 0];
    jpeg_picture(&sp, px, expect);
    return jpeg_make(&sp, px);
}

START_TEST(jpeg_truncated) {
    for (int prog = 0; prog < 2; prog++) {
        Buf b = jpeg_small(prog);
        const size_t cuts[] = {3, 40, b.len / 3, b.len / 2, b.len * 9 / 10, b.len - 2};
        for (size_t i = 0; i < SM_ARRAY_LEN(cuts); i++) {
            ImgGray g = {0};
            char err[SM_ERRMAX] = "";
            int rc = img_decode(b.p, cuts[i], NULL, &g, err);
            ck_assert_msg(rc == -EINVAL, "prog %d cut %zu/%zu: rc %d", prog, cuts[i], b.len, rc);
            ck_assert_ptr_null(g.px);
            ck_assert(strncmp(err, "jpeg: ", 6) == 0);
        }
        free(b.p);
    }
}
END_TEST

/* Offset of the first SOFn marker's height field, or 0. */
static size_t jpeg_sof_dims(const Buf *b) {
    for (size_t i = 2; i + 9 < b->len; i++)
        if (b->p[i] == 0xff && (b->p[i + 1] == 0xc0 || b->p[i + 1] == 0xc2))
            return i + 5;
    return 0;
}

START_TEST(jpeg_huge_dims) {
    Buf b = jpeg_small(0);
    size_t at = jpeg_sof_dims(&b);
    ck_assert_uint_gt(at, 0);
    ImgGray g;
    char err[SM_ERRMAX] = "";
    b.p[at] = 65000 >> 8, b.p[at + 1] = 65000 & 0xff;
    b.p[at + 2] = 65000 >> 8, b.p[at + 3] = 65000 & 0xff;
    ck_assert_int_eq(decode(&b, NULL, &g, err), -E2BIG);
    ck_assert_str_eq(err, "jpeg: 65000x65000 exceeds the 4096x4096 limit");
    b.p[at] = 0, b.p[at + 1] = 0; /* zero height */
    ck_assert_int_eq(decode(&b, NULL, &g, err), -EINVAL);
    b.p[at] = 0, b.p[at + 1] = JH; /* restore, then a small limit */
    b.p[at + 2] = 0, b.p[at + 3] = JW;
    ImgLimits lim = {31, 100, 10000};
    ck_assert_int_eq(decode(&b, &lim, &g, err), -E2BIG);
    ck_assert_int_eq(decode(&b, NULL, &g, err), 0);
    img_gray_free(&g);
    b.p[1] = 0xd9; /* wrong magic */
    ck_assert_int_eq(decode(&b, NULL, &g, err), -EINVAL);
    free(b.p);
}
END_TEST

START_TEST(jpeg_corrupt) {
    Buf b = jpeg_small(0);
    ImgGray g;
    char err[SM_ERRMAX] = "";
    /* Garbage over the entropy-coded data, past the headers. */
    for (size_t i = b.len * 2 / 3; i < b.len * 2 / 3 + 40; i++)
        b.p[i] = 0xff;
    ck_assert_int_eq(decode(&b, NULL, &g, err), -EINVAL);
    free(b.p);
}
END_TEST

/* A gray progressive file with one scan per AC coefficient: 64 scans are
 * fine, 127 (each band sent in two successive-approximation passes) are
 * over the cap and must be refused before they all get decoded. */
static Buf jpeg_many_scans(int refine) {
    static jpeg_scan_info scans[127];
    int n = 0;
    scans[n++] = (jpeg_scan_info){1, {0}, 0, 0, 0, 0};
    for (int k = 1; k < 64; k++)
        scans[n++] = (jpeg_scan_info){1, {0}, k, k, 0, refine};
    for (int k = 1; refine && k < 64; k++)
        scans[n++] = (jpeg_scan_info){1, {0}, k, k, 1, 0};
    uint8_t px[JW * JH], expect[JW * JH];
    JpegSpec sp = {JW, JH, 1, JCS_GRAYSCALE, JCS_GRAYSCALE, 0, -1, scans, n};
    jpeg_picture(&sp, px, expect);
    return jpeg_make(&sp, px);
}

START_TEST(jpeg_scan_cap) {
    ImgGray g;
    char err[SM_ERRMAX] = "";
    Buf b = jpeg_many_scans(0);
    ck_assert_msg(decode(&b, NULL, &g, err) == 0, "%s", err);
    img_gray_free(&g);
    free(b.p);
    b = jpeg_many_scans(1);
    ck_assert_int_eq(decode(&b, NULL, &g, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "scans"));
    free(b.p);
}
END_TEST

/* ---- PGM / PPM ---- */

static Buf pnm(const char *header, const uint8_t *data, size_t n) {
    Buf b = {0};
    buf_puts(&b, header);
    buf_put(&b, data, n);
    return b;
}

static void pnm_expect(const Buf *b, int w, int h, const uint8_t *expect) {
    ImgGray g;
    char err[SM_ERRMAX] = "";
    ck_assert_msg(decode(b, NULL, &g, err) == 0, "%s", err);
    ck_assert_int_eq(g.w, w);
    ck_assert_int_eq(g.h, h);
    ck_assert_mem_eq(g.px, expect, (size_t)(w * h));
    img_gray_free(&g);
}

START_TEST(pnm_good) {
    const uint8_t p8[] = {0, 1, 127, 128, 254, 255};
    Buf b = pnm("P5\n# made by hand\n3 2\n# two rows\n255\n", p8, sizeof p8);
    pnm_expect(&b, 3, 2, p8);
    free(b.p);
    const uint8_t p15[] = {0, 15, 7, 8};
    const uint8_t e15[] = {0, 255, 119, 136};
    b = pnm("P5 4 1 15\t", p15, sizeof p15);
    pnm_expect(&b, 4, 1, e15);
    free(b.p);
    const uint8_t p16[] = {0, 0, 0xff, 0xff, 0x80, 0x80, 0x01, 0x01};
    const uint8_t e16[] = {0, 255, 128, 1};
    b = pnm("P5\r2#c\n2 65535\n", p16, sizeof p16);
    pnm_expect(&b, 2, 2, e16);
    free(b.p);
    const uint8_t p1k[] = {0, 0, 0x03, 0xe8, 0x01, 0xf4};
    const uint8_t e1k[] = {0, 255, 128};
    b = pnm("P5 3 1 1000\n", p1k, sizeof p1k);
    pnm_expect(&b, 3, 1, e1k);
    free(b.p);
    const uint8_t rgb[] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255};
    const uint8_t ergb[] = {76, 150, 29, 255};
    b = pnm("P6\n2 2\n255\n", rgb, sizeof rgb);
    pnm_expect(&b, 2, 2, ergb);
    free(b.p);
    uint8_t rgb16[4 * 6];
    for (int i = 0; i < 12; i++)
        rgb16[2 * i] = rgb16[2 * i + 1] = rgb[i];
    b = pnm("P6 4 1 65535\n", rgb16, sizeof rgb16);
    pnm_expect(&b, 4, 1, ergb);
    free(b.p);
}
END_TEST

START_TEST(pnm_bad) {
    const uint8_t d[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const struct {
        const char *hdr;
        size_t n;
        int rc;
    } cases[] = {
        {"P5 3 2 255\n", 5, -EINVAL},          /* truncated raster */
        {"P5 3 2 255\n", 7, -EINVAL},          /* one byte too many */
        {"P5 2 2 3\n", 4, -EINVAL},            /* samples above maxval */
        {"P5 2 2 0\n", 4, -EINVAL},            /* maxval 0 */
        {"P5 1 2 65536\n", 4, -EINVAL},        /* maxval too large */
        {"P5 0 2 255\n", 0, -EINVAL},          /* zero width */
        {"P5 100000 100000 255\n", 8, -E2BIG}, /* huge, tiny file */
        {"P5 99999999999999999999999 1 255\n", 8, -E2BIG},
        {"P6 4096 4097 255\n", 8, -E2BIG},
        {"P5 2 2 255", 0, -EINVAL},    /* no byte after maxval */
        {"P5 2 2 255x", 4, -EINVAL},   /* that byte not whitespace */
        {"P5 2x 2 255\n", 4, -EINVAL}, /* junk in a number */
        {"P5 2 -2 255\n", 4, -EINVAL},
        {"P5 2", 0, -EINVAL},            /* header cut short */
        {"P5 2 2#c\n255\n", 4, -EINVAL}, /* comment glued to a field is fine... */
        {"P2 2 2 255\n", 4, -EINVAL},    /* ASCII PGM: unsupported */
        {"P5\n# no end to this comment", 0, -EINVAL},
    };
    for (size_t i = 0; i < SM_ARRAY_LEN(cases); i++) {
        Buf b = pnm(cases[i].hdr, d, cases[i].n);
        ImgGray g = {0};
        char err[SM_ERRMAX] = "";
        int rc = decode(&b, NULL, &g, err);
        int want = cases[i].rc;
        if (i == 14) /* ...so this one decodes, and its data is 1..4 */
            want = 0;
        ck_assert_msg(rc == want, "case %zu '%s': rc %d (%s)", i, cases[i].hdr, rc, err);
        if (want == 0)
            ck_assert_int_eq(g.px[3], 4);
        else
            ck_assert_ptr_null(g.px);
        img_gray_free(&g);
        free(b.p);
    }
}
END_TEST

START_TEST(sniff_formats) {
    ck_assert_int_eq(img_sniff("\x89PNG\r\n\x1a\n", 8), IMG_PNG);
    ck_assert_int_eq(img_sniff("\x89PNG\r\n\x1a", 7), IMG_UNKNOWN);
    ck_assert_int_eq(img_sniff("\xff\xd8\xff\xe0", 4), IMG_JPEG);
    ck_assert_int_eq(img_sniff("\xff\xd8", 2), IMG_UNKNOWN);
    ck_assert_int_eq(img_sniff("P5\n", 3), IMG_PNM);
    ck_assert_int_eq(img_sniff("P6 ", 3), IMG_PNM);
    ck_assert_int_eq(img_sniff("P3 ", 3), IMG_UNKNOWN);
    ck_assert_int_eq(img_sniff("P5", 2), IMG_UNKNOWN);
    ck_assert_int_eq(img_sniff("GIF89a", 6), IMG_UNKNOWN);
    ck_assert_int_eq(img_sniff(NULL, 0), IMG_UNKNOWN);
    ImgGray g;
    char err[SM_ERRMAX] = "";
    ck_assert_int_eq(img_decode("", 0, NULL, &g, err), -EINVAL);
    ck_assert_int_eq(img_decode("GIF89a", 6, NULL, &g, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "unrecognised"));
    img_gray_free(NULL);
    img_gray_free(&g);
}
END_TEST

/* ---- img_prepare ---- */

static void prep_check(const uint8_t *px, int w, int h, int ow, int oh, const double *want) {
    ImgGray g = {w, h, (uint8_t *)px};
    float out[64];
    img_prepare(&g, oh, ow, out);
    for (int i = 0; i < ow * oh; i++)
        ck_assert_msg(fabs(out[i] - want[i] / 255.0) < 1e-6, "%dx%d->%dx%d [%d]: %f != %f", w, h,
                      ow, oh, i, out[i] * 255.0, want[i]);
}

START_TEST(prepare_known) {
    const uint8_t id[] = {0, 51, 255, 7, 128, 200};
    ImgGray g = {3, 2, (uint8_t *)id};
    float out[6];
    img_prepare(&g, 2, 3, out);
    for (int i = 0; i < 6; i++)
        ck_assert(out[i] == id[i] / 255.0f); /* identity is an exact copy */
    const uint8_t sq[] = {0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 255};
    prep_check(sq, 4, 4, 2, 2, (double[]){25, 45, 105, 151.25}); /* 2x2 means */
    prep_check((const uint8_t[]){0, 90, 180}, 3, 1, 2, 1, (double[]){30, 150});
    prep_check((const uint8_t[]){10, 20, 30, 40, 50}, 5, 1, 2, 1, (double[]){18, 42});
    prep_check((const uint8_t[]){0, 200}, 2, 1, 4, 1, (double[]){0, 50, 150, 200});
    prep_check((const uint8_t[]){77}, 1, 1, 3, 2, (double[]){77, 77, 77, 77, 77, 77});
    /* 2 rows x 4 cols -> 4 rows x 2 cols: pair means across, bilinear down. */
    const uint8_t mix[] = {0, 40, 80, 120, 200, 160, 120, 80};
    prep_check(mix, 4, 2, 2, 4, (double[]){20, 100, 60, 100, 140, 100, 180, 100});
    /* 2x2 -> 4x4 bilinear: separable weights (1,0) (.75,.25) (.25,.75) (0,1). */
    const uint8_t c[] = {0, 100, 200, 255};
    const double wt[4][2] = {{1, 0}, {.75, .25}, {.25, .75}, {0, 1}};
    double want[16];
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            want[y * 4 + x] = wt[y][0] * (wt[x][0] * c[0] + wt[x][1] * c[1]) +
                              wt[y][1] * (wt[x][0] * c[2] + wt[x][1] * c[3]);
    ck_assert(fabs(want[5] - 72.1875) < 1e-9);
    prep_check(c, 2, 2, 4, 4, want);
}
END_TEST

START_TEST(prepare_56_to_28) {
    uint8_t px[56 * 56];
    for (int i = 0; i < 56 * 56; i++)
        px[i] = (uint8_t)sample(i % 56, i / 56, 0, 255);
    ImgGray g = {56, 56, px};
    float out[28 * 28];
    img_prepare(&g, 28, 28, out);
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++) {
            const uint8_t *p = px + 2 * y * 56 + 2 * x;
            float want = (float)(p[0] + p[1] + p[56] + p[57]) / 4.0f / 255.0f;
            ck_assert_float_eq_tol(out[y * 28 + x], want, 1e-6f);
        }
}
END_TEST

/* Area averaging hands each input pixel out/in of weight in total, so the
 * mean survives any shrink; enlarging stays inside the input's range. */
START_TEST(prepare_properties) {
    static uint8_t px[97 * 61];
    double mean = 0;
    int lo = 255, hi = 0;
    for (int i = 0; i < 97 * 61; i++) {
        px[i] = (uint8_t)sample(i, 3, 1, 200) + 20;
        mean += px[i];
        lo = px[i] < lo ? px[i] : lo;
        hi = px[i] > hi ? px[i] : hi;
    }
    mean /= 97 * 61;
    ImgGray g = {97, 61, px};
    static float out[28 * 28], big[130 * 150];
    img_prepare(&g, 28, 28, out);
    double m = 0;
    for (int i = 0; i < 28 * 28; i++)
        m += out[i];
    ck_assert_double_eq_tol(m / (28 * 28) * 255.0, mean, 1e-3);
    img_prepare(&g, 150, 130, big); /* grow both axes */
    for (int i = 0; i < 130 * 150; i++)
        ck_assert(big[i] >= lo / 255.0f - 1e-6f && big[i] <= hi / 255.0f + 1e-6f);
    img_prepare(&g, 28, 150, big); /* mixed: grow x, shrink y */
    for (int i = 0; i < 150 * 28; i++)
        ck_assert(big[i] >= lo / 255.0f - 1e-6f && big[i] <= hi / 255.0f + 1e-6f);
    img_prepare(&g, 1, 1, out);
    ck_assert_double_eq_tol(out[0] * 255.0, mean, 1e-3);
}
END_TEST

/* ---- loaders and committed fixtures ---- */

static const char *data_dir(void) {
    const char *d = getenv("SM_TEST_DATA");
    return d ? d : "tests/data";
}

static void fixture_path(char *path, size_t n, const char *name) {
    snprintf(path, n, "%s/img/%s", data_dir(), name);
}

static const struct {
    const char *name;
    int rc, w, h;
} fixtures[] = {
    {"fm0_c9.png", 0, 28, 28},
    {"fm2_c1.png", 0, 28, 28},
    {"fm3_c1.png", 0, 28, 28},
    {"fm0_c9.pgm", 0, 28, 28},
    {"rgb16.ppm", 0, 13, 11},
    {"rgba16_interlaced.png", 0, 13, 11},
    {"palette_trns.png", 0, 13, 11},
    {"gray2_interlaced.png", 0, 13, 11},
    {"baseline.jpg", 0, JW, JH},
    {"progressive.jpg", 0, JW, JH},
    {"gray.jpg", 0, JW, JH},
    {"cmyk_adobe.jpg", 0, JW, JH},
    {"ycck.jpg", 0, JW, JH},
    {"png_ztxt_bomb.png", 0, 12, 10},
    {"png_iccp_bomb.png", 0, 12, 10},
    {"png_ihdr_huge.png", -E2BIG, 0, 0},
    {"png_truncated.png", -EINVAL, 0, 0},
    {"png_bad_filter.png", -EINVAL, 0, 0},
    {"jpeg_sof_huge.jpg", -E2BIG, 0, 0},
    {"jpeg_truncated.jpg", -EINVAL, 0, 0},
    {"jpeg_many_scans.jpg", -EINVAL, 0, 0},
    {"pgm_huge.pgm", -E2BIG, 0, 0},
    {"pgm_truncated.pgm", -EINVAL, 0, 0},
};

START_TEST(fixtures_decode) {
    char path[4096], err[SM_ERRMAX] = "";
    fixture_path(path, sizeof path, fixtures[_i].name);
    uint8_t *data = NULL;
    size_t len = 0;
    ck_assert_msg(sm_read_file(path, 1 << 20, &data, &len, err) == 0, "%s", err);
    ImgGray g;
    int rc = img_decode(data, len, NULL, &g, err);
    ck_assert_msg(rc == fixtures[_i].rc, "%s: rc %d (%s)", fixtures[_i].name, rc, err);
    ck_assert_int_eq(g.w, fixtures[_i].w);
    ck_assert_int_eq(g.h, fixtures[_i].h);
    img_gray_free(&g);
    free(data);
}
END_TEST

/* The real Fashion-MNIST samples against libpng's simplified API, and the
 * PGM copy against the PNG through img_load_file. */
START_TEST(fixtures_real) {
    char path[4096], err[SM_ERRMAX] = "";
    fixture_path(path, sizeof path, "fm0_c9.png");
    uint8_t *data = NULL;
    size_t len = 0;
    ck_assert_int_eq(sm_read_file(path, 1 << 20, &data, &len, err), 0);
    png_image ref = {.version = PNG_IMAGE_VERSION};
    ck_assert(png_image_begin_read_from_memory(&ref, data, len));
    ref.format = PNG_FORMAT_GRAY;
    uint8_t want[28 * 28];
    ck_assert_uint_eq(PNG_IMAGE_SIZE(ref), sizeof want);
    ck_assert(png_image_finish_read(&ref, NULL, want, 0, NULL));
    ImgGray g;
    ck_assert_int_eq(img_decode(data, len, NULL, &g, err), 0);
    ck_assert_mem_eq(g.px, want, sizeof want);
    img_gray_free(&g);
    float a[28 * 28], b[28 * 28], small[14 * 14];
    ck_assert_int_eq(img_load_mem(data, len, NULL, 28, 28, a, err), 0);
    for (int i = 0; i < 28 * 28; i++)
        ck_assert(a[i] == want[i] / 255.0f);
    fixture_path(path, sizeof path, "fm0_c9.pgm");
    ck_assert_int_eq(img_load_file(path, NULL, 28, 28, b, err), 0);
    ck_assert_mem_eq(a, b, sizeof a);
    ck_assert_int_eq(img_load_file(path, NULL, 14, 14, small, err), 0);
    ck_assert_float_eq_tol(small[0], (want[0] + want[1] + want[28] + want[29]) / 4.0f / 255.0f,
                           1e-6f);
    ck_assert_int_eq(img_load_mem(data, len, NULL, 0, 28, a, err), -EINVAL);
    fixture_path(path, sizeof path, "no-such-file.png");
    ck_assert_int_eq(img_load_file(path, NULL, 28, 28, a, err), -ENOENT);
    /* A sparse file just over the 64 MiB cap is refused before being read. */
    char tmp[] = "/tmp/test_img_XXXXXX";
    int fd = mkstemp(tmp);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, ((off_t)64 << 20) + 1), 0);
    close(fd);
    ck_assert_int_eq(img_load_file(tmp, NULL, 28, 28, a, err), -EFBIG);
    unlink(tmp);
    fixture_path(path, sizeof path, "png_ihdr_huge.png");
    ck_assert_int_eq(img_load_file(path, NULL, 28, 28, a, err), -E2BIG);
    ck_assert_ptr_nonnull(strstr(err, "png_ihdr_huge.png: png: 100000x100000"));
    free(data);
}
END_TEST

/* ---- fixture writer (test_img --write-fixtures DIR) ---- */

static int write_one(const char *dir, const char *name, const Buf *b) {
    char path[4096], err[SM_ERRMAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = sm_write_file_atomic(path, b->p, b->len, err);
    if (rc < 0)
        fprintf(stderr, "%s\n", err);
    return rc;
}

static int pgm_from_png(const char *dir, Buf *out) {
    char path[4096], err[SM_ERRMAX];
    snprintf(path, sizeof path, "%s/fm0_c9.png", dir);
    uint8_t *data = NULL;
    size_t len = 0;
    ImgGray g;
    if (sm_read_file(path, 1 << 20, &data, &len, err) < 0 ||
        img_decode(data, len, NULL, &g, err) < 0) {
        fprintf(stderr, "%s (copy the Fashion-MNIST samples in first)\n", err);
        free(data);
        return -1;
    }
    char hdr[64];
    snprintf(hdr, sizeof hdr, "P5\n# fm0_c9.png as PGM\n%d %d\n255\n", g.w, g.h);
    *out = pnm(hdr, g.px, (size_t)(g.w * g.h));
    img_gray_free(&g);
    free(data);
    return 0;
}

static int write_fixtures(const char *dir) {
    enum { N = 24 };
    Buf b[N] = {{0}};
    const char *names[N] = {0};
    int n = 0, rc = 0;
    uint8_t expect[JW * JH], px[JW * JH * 4]; /* JW * JH > 13 * 11 */
    if (pgm_from_png(dir, &b[n]) < 0)
        return 1;
    names[n++] = "fm0_c9.pgm";
    uint8_t rgb16[13 * 11 * 6];
    for (size_t i = 0; i < sizeof rgb16; i++)
        rgb16[i] = (uint8_t)sample((int)i, 7, 0, 255);
    b[n] = pnm("P6\n# 16-bit\n13 11\n65535\n", rgb16, sizeof rgb16), names[n++] = "rgb16.ppm";
    b[n] = png_case_make(&png_cases[15], 13, 11, 1, expect), names[n++] = "rgba16_interlaced.png";
    b[n] = png_case_make(&png_cases[21], 13, 11, 0, expect), names[n++] = "palette_trns.png";
    b[n] = png_case_make(&png_cases[5], 13, 11, 1, expect), names[n++] = "gray2_interlaced.png";
    const char *jn[] = {"baseline.jpg", "progressive.jpg", "gray.jpg", NULL,
                        NULL,           "cmyk_adobe.jpg",  "ycck.jpg"};
    for (size_t k = 0; k < SM_ARRAY_LEN(jn); k++)
        if (jn[k]) {
            jpeg_picture(&jpeg_kinds[k], px, expect);
            b[n] = jpeg_make(&jpeg_kinds[k], px), names[n++] = jn[k];
        }
    Buf base = png_base(12, 10, NULL, -1);
    Buf z = zlib_zeros("Comment\0\0", 9, (size_t)6 << 20);
    b[n] = png_insert(&base, "zTXt", z.p, z.len), names[n++] = "png_ztxt_bomb.png";
    free(z.p);
    z = zlib_zeros("icc\0\0", 5, (size_t)6 << 20);
    b[n] = png_insert(&base, "iCCP", z.p, z.len), names[n++] = "png_iccp_bomb.png";
    free(z.p);
    b[n] = png_base(12, 10, NULL, -1), set_ihdr(&b[n], 100000, 100000);
    names[n++] = "png_ihdr_huge.png";
    b[n] = png_base(12, 10, NULL, -1), b[n].len = b[n].len * 2 / 3;
    names[n++] = "png_truncated.png";
    b[n] = png_base(12, 10, NULL, 0);
    uint8_t *idat = memmem(b[n].p, b[n].len, "IDAT", 4);
    idat[4 + 2 + 5] = 9, png_fix_crc(idat - 4), names[n++] = "png_bad_filter.png";
    b[n] = jpeg_small(0);
    size_t at = jpeg_sof_dims(&b[n]);
    b[n].p[at] = b[n].p[at + 2] = 65000 >> 8, b[n].p[at + 1] = b[n].p[at + 3] = 65000 & 0xff;
    names[n++] = "jpeg_sof_huge.jpg";
    b[n] = jpeg_small(1), b[n].len /= 2, names[n++] = "jpeg_truncated.jpg";
    b[n] = jpeg_many_scans(1), names[n++] = "jpeg_many_scans.jpg";
    b[n] = pnm("P5\n100000 100000\n255\n", px, 16), names[n++] = "pgm_huge.pgm";
    b[n] = pnm("P5\n28 28\n255\n", px, 100), names[n++] = "pgm_truncated.pgm";
    for (int i = 0; i < n; i++) {
        if (rc == 0 && write_one(dir, names[i], &b[i]) < 0)
            rc = 1;
        free(b[i].p);
    }
    free(base.p);
    return rc;
}

static Suite *img_suite(void) {
    Suite *s = suite_create("img");
    TCase *png = tcase_create("png");
    tcase_set_timeout(png, 120);
    tcase_add_loop_test(png, png_every_type_depth, 0, (int)SM_ARRAY_LEN(png_cases) * 8);
    tcase_add_test(png, png_known_values);
    tcase_add_test(png, png_truncated);
    tcase_add_test(png, png_huge_dims);
    tcase_add_test(png, png_corrupt);
    tcase_add_test(png, png_chunk_bombs);
    suite_add_tcase(s, png);
    TCase *jpeg = tcase_create("jpeg");
    tcase_add_loop_test(jpeg, jpeg_kinds_decode, 0, (int)SM_ARRAY_LEN(jpeg_kinds));
    tcase_add_test(jpeg, jpeg_cmyk_known);
    tcase_add_test(jpeg, jpeg_truncated);
    tcase_add_test(jpeg, jpeg_huge_dims);
    tcase_add_test(jpeg, jpeg_corrupt);
    tcase_add_test(jpeg, jpeg_scan_cap);
    suite_add_tcase(s, jpeg);
    TCase *other = tcase_create("pnm+sniff");
    tcase_add_test(other, pnm_good);
    tcase_add_test(other, pnm_bad);
    tcase_add_test(other, sniff_formats);
    suite_add_tcase(s, other);
    TCase *prep = tcase_create("prepare");
    tcase_add_test(prep, prepare_known);
    tcase_add_test(prep, prepare_56_to_28);
    tcase_add_test(prep, prepare_properties);
    suite_add_tcase(s, prep);
    TCase *fix = tcase_create("fixtures");
    tcase_add_loop_test(fix, fixtures_decode, 0, (int)SM_ARRAY_LEN(fixtures));
    tcase_add_test(fix, fixtures_real);
    suite_add_tcase(s, fix);
    return s;
}

/* The generators use ck_assert, which only works inside a running test. */
static const char *fixture_dir;

START_TEST(fixtures_write) {
    ck_assert_int_eq(write_fixtures(fixture_dir), 0);
}
END_TEST

int main(int argc, char **argv) {
    Suite *s = img_suite();
    if (argc == 3 && strcmp(argv[1], "--write-fixtures") == 0) {
        fixture_dir = argv[2];
        s = suite_create("img-fixtures");
        TCase *tc = tcase_create("write");
        tcase_add_test(tc, fixtures_write);
        suite_add_tcase(s, tc);
    }
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
