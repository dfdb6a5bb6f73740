/*
 * test_img.c — unit tests for the image module (include/siamese/img.h): the
 * half about what must decode, and main() of the one test_img executable.
 *
 * Images are made here with libpng's and libjpeg's writers (and by hand for
 * PGM/PPM), with known samples, and the decoded gray is compared with the
 * header's arithmetic: exactly for lossless formats, within a tolerance for
 * JPEG. img_prepare() is checked on values worked out by hand.
 *
 * The other half, test_img_hostile.c, holds the hostile inputs, the committed
 * fixtures and their writer (`test_img --write-fixtures DIR`). It builds its
 * files with the generators here, declared in test_img.h, and adds its tests
 * to the test cases img_suite() makes, so each case runs as it always did.
 */
#include "test_img.h"

#include "siamese/common.h"
#include "siamese/img.h"

#include "check_util.h"

#include <check.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

/* ---- growable byte buffer ---- */

void buf_put(Buf *b, const void *d, size_t n) {
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

/* ---- the reference arithmetic, written out from img.h ---- */

unsigned ref_luma(unsigned r, unsigned g, unsigned b) {
    return (299 * r + 587 * g + 114 * b + 500) / 1000;
}
static unsigned ref_over(unsigned v, unsigned a) {
    return (v * a + 127) / 255;
}
static unsigned ref_to8(unsigned v, int depth) {
    return depth == 16 ? (v * 255 + 32767) / 65535 : v * 255 / ((1u << depth) - 1);
}

/* Deterministic scrambled sample in [0, maxval]. */
unsigned sample(int x, int y, int k, unsigned maxval) {
    uint32_t h = (uint32_t)x * 73856093u ^ (uint32_t)y * 19349663u ^ (uint32_t)k * 83492791u;
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    return h % (maxval + 1);
}

int decode(const Buf *b, const ImgLimits *lim, ImgGray *g, char *err) {
    return img_decode(b->p, b->len, lim, g, err);
}

/* ---- PNG writer ---- */

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

Buf png_make(const PngSpec *sp) {
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

/* ---- PNG: every colour type and bit depth, plain and interlaced ---- */

const PngCase png_cases[] = {
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
Buf png_case_make(const PngCase *c, int w, int h, int interlace, uint8_t *expect) {
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

/* ---- JPEG ---- */

Buf jpeg_make(const JpegSpec *sp, const uint8_t *px) {
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

/* Smooth pictures (JPEG at q100 keeps them within a few levels) in the
 * layout sp asks for, with the gray each must decode to. CMYK is stored
 * Adobe-inverted unless adobe == 0. */
void jpeg_picture(const JpegSpec *sp, uint8_t *px, uint8_t *expect) {
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

const JpegSpec jpeg_kinds[] = {
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

/* ---- PGM / PPM ---- */

Buf pnm(const char *header, const uint8_t *data, size_t n) {
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

/* ---- img_prepare ---- */

static void prep_check(const uint8_t *px, int w, int h, int ow, int oh, const double *want) {
    ImgGray g = {w, h, 1, (uint8_t *)px};
    float out[64];
    img_prepare(&g, oh, ow, out);
    for (int i = 0; i < ow * oh; i++)
        ck_assert_msg(fabs(out[i] - want[i] / 255.0) < 1e-6, "%dx%d->%dx%d [%d]: %f != %f", w, h,
                      ow, oh, i, out[i] * 255.0, want[i]);
}

START_TEST(prepare_known) {
    const uint8_t id[] = {0, 51, 255, 7, 128, 200};
    ImgGray g = {3, 2, 1, (uint8_t *)id};
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
    ImgGray g = {56, 56, 1, px};
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
    ImgGray g = {97, 61, 1, px};
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

/* The identity is every byte / 255.0f exactly, as the resizing path scales. */
START_TEST(prepare_identity_exact) {
    uint8_t px[256];
    float out[256];
    for (int i = 0; i < 256; i++)
        px[i] = (uint8_t)(255 - i);
    ImgGray g = {256, 1, 1, px};
    img_prepare(&g, 1, 256, out);
    for (int i = 0; i < 256; i++)
        ck_assert_msg(out[i] == (float)px[i] / 255.0f, "byte %u: %a", px[i], (double)out[i]);
}
END_TEST

/* The hostile tests come after each case's own, in the order they always ran. */
static Suite *img_suite(void) {
    Suite *s = suite_create("img");
    TCase *png = tcase_create("png");
    tcase_set_timeout(png, 120);
    tcase_add_loop_test(png, png_every_type_depth, 0, (int)SM_ARRAY_LEN(png_cases) * 8);
    tcase_add_test(png, png_known_values);
    test_img_hostile_add_png(png);
    suite_add_tcase(s, png);
    TCase *jpeg = tcase_create("jpeg");
    tcase_add_loop_test(jpeg, jpeg_kinds_decode, 0, (int)SM_ARRAY_LEN(jpeg_kinds));
    tcase_add_test(jpeg, jpeg_cmyk_known);
    test_img_hostile_add_jpeg(jpeg);
    suite_add_tcase(s, jpeg);
    TCase *other = tcase_create("pnm+sniff");
    tcase_add_test(other, pnm_good);
    test_img_hostile_add_pnm(other);
    suite_add_tcase(s, other);
    TCase *prep = tcase_create("prepare");
    tcase_add_test(prep, prepare_known);
    tcase_add_test(prep, prepare_identity_exact);
    tcase_add_test(prep, prepare_56_to_28);
    tcase_add_test(prep, prepare_properties);
    suite_add_tcase(s, prep);
    TCase *budget = tcase_create("budget");
    test_img_budget_add(budget);
    suite_add_tcase(s, budget);
    TCase *rgb = tcase_create("rgb");
    test_img_rgb_add(rgb, (int)SM_ARRAY_LEN(png_cases), (int)SM_ARRAY_LEN(jpeg_kinds));
    suite_add_tcase(s, rgb);
    TCase *fast = tcase_create("png_fast");
    test_img_fast_add(fast);
    suite_add_tcase(s, fast);
    TCase *fix = tcase_create("fixtures");
    test_img_fixtures_add(fix);
    suite_add_tcase(s, fix);
    return s;
}

int main(int argc, char **argv) {
    Suite *s = img_suite();
    if (argc == 3 && strcmp(argv[1], "--write-fixtures") == 0)
        s = test_img_fixtures_writer_suite(argv[2]);
    return check_run(s);
}
