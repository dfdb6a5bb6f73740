/*
 * test_img_budget.c — what a decode may cost: the per-image byte limit
 * (max_bytes) counted before allocation, the shared budget (ImgBudget) that
 * concurrent decodes draw on, the header-only img_probe(), and the DCT
 * scaling img_load_mem() applies to JPEGs much larger than the output. Part
 * of the test_img executable (its suite is in test_img.c).
 */
#include "test_img.h"

#include "siamese/common.h"
#include "siamese/img.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A w x h 16-bit RGBA PNG of zeros, interlaced or not. */
static Buf png_rgba16(int w, int h, int interlace) {
    uint16_t *s = calloc((size_t)w * h * 4, sizeof *s);
    ck_assert_ptr_nonnull(s);
    PngSpec sp = {.w = w,
                  .h = h,
                  .type = PNG_COLOR_TYPE_RGBA,
                  .depth = 16,
                  .interlace = interlace,
                  .level = -1,
                  .s = s};
    Buf b = png_make(&sp);
    free(s);
    return b;
}

/* A w x h CMYK JPEG (progressive or baseline) of a smooth picture. */
static Buf jpeg_cmyk(int w, int h, int progressive) {
    JpegSpec sp = {w, h, 4, JCS_CMYK, JCS_CMYK, progressive, -1, NULL, 0};
    uint8_t *px = malloc((size_t)w * h * 4), *expect = malloc((size_t)w * h);
    ck_assert(px && expect);
    jpeg_picture(&sp, px, expect);
    Buf b = jpeg_make(&sp, px);
    free(px), free(expect);
    return b;
}

/* 64x64 RGBA 16-bit: interlaced needs all rows at 8 bytes a pixel (32 KiB)
 * plus the gray result (4 KiB); one row at a time needs 4.5 KiB. */
START_TEST(png_bytes_counted_before_allocation) {
    Buf il = png_rgba16(64, 64, PNG_INTERLACE_ADAM7), flat = png_rgba16(64, 64, 0);
    ImgLimits lim = {4096, 4096, 1u << 24, 36000, NULL};
    ImgGray g;
    char err[SM_ERRMAX];
    ck_assert_int_eq(decode(&il, &lim, &g, err), -E2BIG);
    ck_assert_msg(strstr(err, "max_image_memory"), "%s", err);
    ck_assert_ptr_null(g.px);
    ck_assert_int_eq(decode(&flat, &lim, &g, err), 0);
    img_gray_free(&g);
    lim.max_bytes = 64 * 64 * 8 + 64 * 64;
    ck_assert_int_eq(decode(&il, &lim, &g, err), 0);
    ck_assert_int_eq(g.w, 64);
    img_gray_free(&g);
    free(il.p), free(flat.p);
}
END_TEST

/* A progressive 256x256 CMYK JPEG keeps 4 x 33 x 33 blocks of 128 bytes of
 * coefficients (557 KB); the baseline one streams. */
START_TEST(jpeg_coefficients_counted) {
    Buf prog = jpeg_cmyk(256, 256, 1), base = jpeg_cmyk(256, 256, 0);
    ImgLimits lim = {4096, 4096, 1u << 24, 400000, NULL};
    ImgGray g;
    char err[SM_ERRMAX];
    ck_assert_int_eq(decode(&prog, &lim, &g, err), -E2BIG);
    ck_assert_msg(strstr(err, "jpeg: decoding needs 1 MiB"), "%s", err);
    ck_assert_int_eq(decode(&base, &lim, &g, err), 0);
    img_gray_free(&g);
    lim.max_bytes = 0; /* no byte limit */
    ck_assert_int_eq(decode(&prog, &lim, &g, err), 0);
    img_gray_free(&g);
    free(prog.p), free(base.p);
}
END_TEST

START_TEST(shared_budget) {
    Buf base = jpeg_cmyk(256, 256, 0), il = png_rgba16(64, 64, PNG_INTERLACE_ADAM7);
    ImgBudget *small = img_budget_new(100000), *big = img_budget_new(4u << 20);
    ck_assert(small && big);
    ImgLimits lim = {4096, 4096, 1u << 24, 0, small};
    ImgGray g;
    char err[SM_ERRMAX];
    ck_assert_int_eq(decode(&base, &lim, &g, err), -EBUSY);
    ck_assert_msg(strstr(err, "decode_memory"), "%s", err);
    ck_assert_int_eq(decode(&il, &lim, &g, err), 0); /* 36 KiB fits */
    img_gray_free(&g);
    ck_assert_uint_eq(img_budget_used(small), 0);
    lim.budget = big;
    ck_assert_int_eq(decode(&base, &lim, &g, err), 0);
    ck_assert_uint_eq(img_budget_used(big), 0);
    img_gray_free(&g);
    /* A failed decode gives its reservation back too. */
    base.p[base.len - 200] ^= 0xff;
    base.len -= 100;
    ck_assert_int_lt(decode(&base, &lim, &g, err), 0);
    ck_assert_uint_eq(img_budget_used(big), 0);
    img_budget_free(small);
    img_budget_free(big);
    img_budget_free(NULL);
    free(base.p), free(il.p);
}
END_TEST

START_TEST(probe_reads_headers_only) {
    Buf png = png_rgba16(17, 13, 0), jpg = jpeg_cmyk(512, 384, 0);
    uint8_t raster[6] = {0};
    Buf pgm = pnm("P5 3 2 255\n", raster, 6);
    uint64_t px = 0;
    char err[SM_ERRMAX];
    ck_assert_int_eq(img_probe(png.p, png.len, NULL, 28, 28, &px, err), 0);
    ck_assert_uint_eq(px, 17 * 13);
    ck_assert_int_eq(img_probe(pgm.p, pgm.len, NULL, 28, 28, &px, err), 0);
    ck_assert_uint_eq(px, 6);
    /* 512x384 for 28x28: halved (256x192 >= 8 x 28 = 224? no: 192 < 224). */
    ck_assert_int_eq(img_probe(jpg.p, jpg.len, NULL, 28, 28, &px, err), 0);
    ck_assert_uint_eq(px, 512 * 384);
    /* For 24x24 (192 = 8 x 24) it is halved. */
    ck_assert_int_eq(img_probe(jpg.p, jpg.len, NULL, 24, 24, &px, err), 0);
    ck_assert_uint_eq(px, 256 * 192);
    ck_assert_int_eq(img_probe(jpg.p, jpg.len, NULL, 8, 8, &px, err), 0);
    ck_assert_uint_eq(px, 128 * 96);
    ck_assert_int_eq(img_probe(jpg.p, jpg.len, NULL, 1, 1, &px, err), 0);
    ck_assert_uint_eq(px, 64 * 48);
    ImgLimits lim = {500, 4096, 1u << 24, 0, NULL};
    ck_assert_int_eq(img_probe(jpg.p, jpg.len, &lim, 28, 28, &px, err), -E2BIG);
    ck_assert_int_eq(img_probe("nope", 4, NULL, 28, 28, &px, err), -EINVAL);
    free(png.p), free(jpg.p), free(pgm.p);
}
END_TEST

/* DCT scaling changes the route to 28x28, not the result: a smooth 1024x768
 * picture loads within 1.5/255 of decoding at full size and averaging. */
START_TEST(dct_scaling_matches_full_decode) {
    enum { W = 1024, H = 768, O = 28 };
    JpegSpec sp = {W, H, 1, JCS_GRAYSCALE, JCS_GRAYSCALE, 0, -1, NULL, 0};
    uint8_t *px = malloc((size_t)W * H), *expect = malloc((size_t)W * H);
    ck_assert(px && expect);
    jpeg_picture(&sp, px, expect);
    Buf b = jpeg_make(&sp, px);
    uint64_t n = 0;
    char err[SM_ERRMAX];
    ck_assert_int_eq(img_probe(b.p, b.len, NULL, O, O, &n, err), 0);
    ck_assert_uint_eq(n, (W / 2) * (H / 2)); /* a quarter would be 192 < 8 x 28 rows */
    float scaled[O * O], full[O * O];
    ck_assert_int_eq(img_load_mem(b.p, b.len, NULL, O, O, scaled, err), 0);
    ImgGray g;
    ck_assert_int_eq(img_decode(b.p, b.len, NULL, &g, err), 0);
    ck_assert_int_eq(g.w, W);
    img_prepare(&g, O, O, full);
    img_gray_free(&g);
    double worst = 0;
    for (int i = 0; i < O * O; i++)
        worst = fmax(worst, fabs(scaled[i] - full[i]));
    ck_assert_msg(worst < 1.5 / 255, "DCT-scaled load differs by %.4f", worst);
    free(px), free(expect), free(b.p);
}
END_TEST

void test_img_budget_add(TCase *tc) {
    tcase_add_test(tc, png_bytes_counted_before_allocation);
    tcase_add_test(tc, jpeg_coefficients_counted);
    tcase_add_test(tc, shared_budget);
    tcase_add_test(tc, probe_reads_headers_only);
    tcase_add_test(tc, dct_scaling_matches_full_decode);
}
