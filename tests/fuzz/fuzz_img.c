/*
 * fuzz_img.c — fuzz target for the image module: img_decode() on arbitrary
 * bytes (PNG, JPEG and PGM/PPM are told apart by their magic, so one target
 * reaches all three decoders), then img_prepare() of every decoded image to
 * the model's 28x28, to its own size and to a size derived from it that
 * enlarges or shrinks each axis.
 *
 * Limits are modest (2048x2048, 4 Mpx) so that a legal but large image does
 * not exhaust the fuzzer's memory; the limit checks themselves are exercised
 * all the same. Besides crashes and sanitizer reports, the target checks
 * what img.h promises: documented error codes with a message and a zeroed
 * result on failure, dimensions within the limits on success, and prepared
 * values in [0,1] (the identity exactly px/255). For PNG it also holds the
 * two decoders to each other: whatever img_png_fast() takes, libpng
 * (img_png_libpng()) decodes to the same pixels, in gray and in colour.
 */
#include "fuzz.h"
#include "siamese/common.h"
#include "siamese/img.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_IMG_SIDE 2048
#define FUZZ_IMG_PIXELS (4u << 20)
#define FUZZ_IMG_IDENTITY_MAX (256 * 256) /* larger images skip the identity check */

static void check_prepared(const float *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(isfinite(v[i]) && v[i] >= 0.0f && v[i] <= 1.0f);
}

static void prepare_all(const ImgGray *g) {
    float small[28 * 28];
    img_prepare(g, 28, 28, small);
    check_prepared(small, SM_ARRAY_LEN(small));

    /* 1..64 on each axis, unrelated to the input size: mixes enlarging and shrinking. */
    int oh = 1 + (g->h * 3 + g->w) % 64, ow = 1 + (g->w * 5 + g->h) % 64;
    float *mixed = malloc((size_t)oh * (size_t)ow * sizeof *mixed);
    FUZZ_CHECK(mixed);
    img_prepare(g, oh, ow, mixed);
    check_prepared(mixed, (size_t)oh * (size_t)ow);
    free(mixed);

    size_t n = (size_t)g->w * (size_t)g->h;
    if (n > FUZZ_IMG_IDENTITY_MAX)
        return;
    float *same = malloc(n * sizeof *same);
    FUZZ_CHECK(same);
    img_prepare(g, g->h, g->w, same);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(same[i] == g->px[i] / 255.0f);
    free(same);
}

static void check_png_paths(const uint8_t *data, size_t size, const ImgLimits *lim) {
    for (int oc = 1; oc <= 3; oc += 2) {
        ImgGray f, l;
        char err[SM_ERRMAX] = "";
        if (!img_png_fast(data, size, lim, oc, &f))
            continue;
        FUZZ_CHECK(img_png_libpng(data, size, lim, oc, &l, err) == 0);
        FUZZ_CHECK(f.w == l.w && f.h == l.h && f.c == oc && l.c == oc);
        FUZZ_CHECK(memcmp(f.px, l.px, (size_t)f.w * (size_t)f.h * (size_t)oc) == 0);
        img_gray_free(&f);
        img_gray_free(&l);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const ImgLimits lim = {FUZZ_IMG_SIDE, FUZZ_IMG_SIDE, FUZZ_IMG_PIXELS, 64u << 20, NULL};
    char err[SM_ERRMAX] = "";
    ImgGray g;
    if (img_sniff(data, size) == IMG_PNG)
        check_png_paths(data, size, &lim);
    int rc = img_decode(data, size, &lim, &g, err);
    if (rc < 0) {
        FUZZ_CHECK(rc == -EINVAL || rc == -E2BIG || rc == -ENOMEM);
        FUZZ_CHECK(err[0] != 0 && memchr(err, 0, sizeof err));
        FUZZ_CHECK(g.px == NULL && g.w == 0 && g.h == 0);
        return 0;
    }
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(img_sniff(data, size) != IMG_UNKNOWN);
    FUZZ_CHECK(g.px != NULL && g.w > 0 && g.h > 0);
    FUZZ_CHECK(g.w <= lim.max_width && g.h <= lim.max_height);
    FUZZ_CHECK((uint64_t)g.w * (uint64_t)g.h <= lim.max_pixels);
    /* The header-only probe agrees with what was decoded (full size). */
    uint64_t px = 0;
    FUZZ_CHECK(img_probe(data, size, &lim, g.h, g.w, &px, err) == 0);
    FUZZ_CHECK(px == (uint64_t)g.w * (uint64_t)g.h);
    prepare_all(&g);
    img_gray_free(&g);
    FUZZ_CHECK(g.px == NULL);
    return 0;
}
