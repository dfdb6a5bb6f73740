/*
 * limits.c — what every decoder of the image module checks before it
 * allocates: declared dimensions against the caller's limits, working memory
 * against the per-image byte limit and the process-wide budget (reserved
 * before a decode, released after it), and the JPEG DCT scale that still
 * leaves 8x the output size. png.c, jpeg.c and decode.c all stand on it.
 */
#include "siamese/img.h"

#include "img_internal.h"
#include "siamese/common.h"

#include <assert.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>

int img_check_dims(const char *what, uint64_t w, uint64_t h, const ImgLimits *lim, char *err) {
    if (w == 0 || h == 0)
        return sm_err(err, -EINVAL, "%s: empty image (%" PRIu64 "x%" PRIu64 ")", what, w, h);
    if (w > (uint64_t)lim->max_width || h > (uint64_t)lim->max_height)
        return sm_err(err, -E2BIG, "%s: %" PRIu64 "x%" PRIu64 " exceeds the %dx%d limit", what, w,
                      h, lim->max_width, lim->max_height);
    /* Both factors are below INT_MAX here, so the product cannot wrap. */
    if (w * h > lim->max_pixels)
        return sm_err(err, -E2BIG,
                      "%s: %" PRIu64 "x%" PRIu64 " exceeds the %" PRIu64 "-pixel limit", what, w, h,
                      lim->max_pixels);
    return 0;
}

struct ImgBudget {
    uint64_t cap;
    _Atomic uint64_t used;
};

ImgBudget *img_budget_new(uint64_t bytes) {
    assert(bytes > 0);
    ImgBudget *b = calloc(1, sizeof *b);
    if (b)
        b->cap = bytes;
    return b;
}

void img_budget_free(ImgBudget *b) {
    if (b)
        assert(atomic_load(&b->used) == 0);
    free(b);
}

uint64_t img_budget_used(const ImgBudget *b) {
    return b ? atomic_load(&((ImgBudget *)b)->used) : 0;
}

int img_reserve(const ImgLimits *lim, const char *what, uint64_t bytes, char *err) {
    if (lim->max_bytes && bytes > lim->max_bytes)
        return sm_err(err, -E2BIG,
                      "%s: decoding needs %" PRIu64 " MiB of memory, over the %" PRIu64
                      " MiB limit (max_image_memory)",
                      what, (bytes + (1u << 20) - 1) >> 20, lim->max_bytes >> 20);
    ImgBudget *b = lim->budget;
    if (!b)
        return 0;
    uint64_t old = atomic_fetch_add(&b->used, bytes);
    if (old + bytes > b->cap) {
        atomic_fetch_sub(&b->used, bytes);
        return sm_err(err, -EBUSY,
                      "%s: the decoders' shared memory budget (%" PRIu64
                      " MiB, decode_memory) is in use; try again",
                      what, b->cap >> 20);
    }
    return 0;
}

void img_release(const ImgLimits *lim, uint64_t bytes) {
    if (lim->budget) {
        uint64_t old = atomic_fetch_sub(&lim->budget->used, bytes);
        assert(old >= bytes);
        (void)old;
    }
}

int img_jpeg_denom(uint64_t w, uint64_t h, int min_w, int min_h) {
    int d = 1;
    if (min_w <= 0 || min_h <= 0)
        return 1;
    while (d < 8 && (w + 2 * (uint64_t)d - 1) / (2 * (uint64_t)d) >= 8 * (uint64_t)min_w &&
           (h + 2 * (uint64_t)d - 1) / (2 * (uint64_t)d) >= 8 * (uint64_t)min_h)
        d *= 2;
    return d;
}
