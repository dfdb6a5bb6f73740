/*
 * test_img_rgb.c — colour: every PNG case and JPEG kind decoded to 3
 * channels agrees with its gray decode (the luma of the RGB within the
 * rounding of alpha-before-luma, gray sources replicated exactly), PPM keeps
 * its samples, and preparation resizes each channel on its own, interleaved.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "siamese/common.h"
#include "siamese/img.h"
#include "test_img.h"

static int n_png_cases, n_jpeg_kinds;

/* gray and rgb (3 channels) decodes of one file agree. */
static void check_agree(const Buf *b, int gray_source, const char *what) {
    ImgGray g, c;
    char err[SM_ERRMAX];
    ck_assert_msg(img_decode_c(b->p, b->len, NULL, 1, &g, err) == 0, "%s: %s", what, err);
    ck_assert_msg(img_decode_c(b->p, b->len, NULL, 3, &c, err) == 0, "%s: %s", what, err);
    ck_assert(g.c == 1 && c.c == 3 && g.w == c.w && g.h == c.h);
    for (size_t i = 0; i < (size_t)g.w * g.h; i++) {
        const uint8_t *p = c.px + 3 * i;
        int l = (int)ref_luma(p[0], p[1], p[2]), d = l - g.px[i];
        if (gray_source)
            ck_assert_msg(p[0] == g.px[i] && p[1] == g.px[i] && p[2] == g.px[i],
                          "%s px %zu: %u,%u,%u vs gray %u", what, i, p[0], p[1], p[2], g.px[i]);
        else
            ck_assert_msg(d >= -1 && d <= 1, "%s px %zu: luma %d vs gray %u", what, i, l, g.px[i]);
    }
    img_gray_free(&g), img_gray_free(&c);
}

START_TEST(png_cases_agree) {
    for (int i = 0; i < n_png_cases; i++) {
        uint8_t expect[17 * 13];
        Buf b = png_case_make(&png_cases[i], 17, 13, i % 2, expect);
        int gray = png_cases[i].type == PNG_COLOR_TYPE_GRAY ||
                   png_cases[i].type == PNG_COLOR_TYPE_GRAY_ALPHA;
        check_agree(&b, gray, "png");
        free(b.p);
    }
}
END_TEST

START_TEST(jpeg_kinds_agree) {
    for (int i = 0; i < n_jpeg_kinds; i++) {
        uint8_t px[JW * JH * 4], expect[JW * JH];
        jpeg_picture(&jpeg_kinds[i], px, expect);
        Buf b = jpeg_make(&jpeg_kinds[i], px);
        check_agree(&b, jpeg_kinds[i].comps == 1, "jpeg");
        free(b.p);
    }
}
END_TEST

START_TEST(ppm_keeps_samples_and_prepares_per_channel) {
    const uint8_t rgb[] = {255, 0, 10, 0, 0, 255, 20, 40, 60, 90, 120, 150};
    Buf b = pnm("P6 2 2 255\n", rgb, sizeof rgb);
    ImgGray c;
    char err[SM_ERRMAX];
    ck_assert_int_eq(img_decode_c(b.p, b.len, NULL, 3, &c, err), 0);
    ck_assert(memcmp(c.px, rgb, sizeof rgb) == 0);
    float same[12], small[3], big[4 * 4 * 3];
    img_prepare(&c, 2, 2, same);
    for (int i = 0; i < 12; i++)
        ck_assert_float_eq_tol(same[i], rgb[i] / 255.0f, 1e-7f);
    img_prepare(&c, 1, 1, small); /* area average of each channel */
    for (int k = 0; k < 3; k++)
        ck_assert_float_eq_tol(
            small[k], (rgb[k] + rgb[3 + k] + rgb[6 + k] + rgb[9 + k]) / 4.0f / 255.0f, 1e-6f);
    /* Enlarging: each channel as its own gray image would be. */
    img_prepare(&c, 4, 4, big);
    for (int k = 0; k < 3; k++) {
        uint8_t chan[4] = {rgb[k], rgb[3 + k], rgb[6 + k], rgb[9 + k]};
        ImgGray g = {2, 2, 1, chan};
        float want[16];
        img_prepare(&g, 4, 4, want);
        for (int i = 0; i < 16; i++)
            ck_assert_float_eq_tol(big[3 * i + k], want[i], 1e-7f);
    }
    float via[12];
    ck_assert_int_eq(img_load_mem_c(b.p, b.len, NULL, 2, 2, 3, via, err), 0);
    ck_assert(memcmp(via, same, sizeof via) == 0);
    img_gray_free(&c);
    ck_assert_int_eq(img_decode_c(b.p, b.len, NULL, 2, &c, err), -EINVAL); /* 2 channels: no */
    /* A gray picture wanted in colour: replicated. */
    const uint8_t gray[] = {0, 51, 102, 255};
    Buf gb = pnm("P5 2 2 255\n", gray, sizeof gray);
    float rep[12];
    ck_assert_int_eq(img_load_mem_c(gb.p, gb.len, NULL, 2, 2, 3, rep, err), 0);
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 3; k++)
            ck_assert_float_eq_tol(rep[3 * i + k], gray[i] / 255.0f, 1e-7f);
    ImgGray g1 = {2, 2, 1, (uint8_t *)gray};
    float rep2[12];
    img_prepare_c(&g1, 2, 2, 3, rep2);
    ck_assert(memcmp(rep, rep2, sizeof rep) == 0);
    img_gray_free(&c);
    free(b.p), free(gb.p);
}
END_TEST

void test_img_rgb_add(TCase *tc, int n_png, int n_jpeg) {
    n_png_cases = n_png, n_jpeg_kinds = n_jpeg;
    tcase_add_test(tc, png_cases_agree);
    tcase_add_test(tc, jpeg_kinds_agree);
    tcase_add_test(tc, ppm_keeps_samples_and_prepares_per_channel);
}
