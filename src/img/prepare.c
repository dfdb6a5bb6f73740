/*
 * prepare.c — resizing a decoded image (gray, or RGB with channels
 * interleaved, each resized on its own) to the model's input and scaling it
 * to [0,1]. The trainer and the daemon both come through here, so a
 * picture gives the same input vector in both.
 *
 * The resize is separable and each axis picks its own filter:
 *   - equal size: the identity;
 *   - shrinking: area averaging (a box filter with fractional coverage):
 *     output pixel i covers input span [i*in/out, (i+1)*in/out) and every
 *     input pixel weighs by how much of it lies in that span, so 56 -> 28 is
 *     the exact mean of pairs and 3 -> 2 weighs 2/3 and 1/3;
 *   - enlarging: bilinear on pixel centres (align corners = false): output i
 *     samples input position (i + 0.5) * in/out - 0.5, clamped to the edges.
 * Shrinking one axis while enlarging the other therefore just works.
 *
 * Weights are computed on the fly from integers rather than tabulated, so
 * img_prepare() allocates nothing and cannot fail. Coverage is counted in
 * units of 1/out of an input pixel, which keeps area weights exact.
 */
#include "siamese/img.h"
#include "siamese/simd.h"

#include <assert.h>

/* Inclusive range [first, last] of input pixels that output pixel i reads
 * along an axis of in -> out pixels. */
typedef struct {
    int first, last;
    double frac; /* bilinear only: weight of `last` */
} Taps;

static Taps axis_taps(int in, int out, int i) {
    Taps t = {i, i, 0.0};
    if (in > out) {
        /* Span [i*in, (i+1)*in) in units where an input pixel is out wide. */
        int64_t a = (int64_t)i * in, b = a + in;
        t.first = (int)(a / out);
        t.last = (int)((b - 1) / out);
    } else if (in < out) {
        double src = ((double)i + 0.5) * in / out - 0.5;
        if (src < 0)
            src = 0;
        t.first = (int)src;
        if (t.first >= in - 1) {
            t.first = t.last = in - 1;
        } else {
            t.last = t.first + 1;
            t.frac = src - t.first;
        }
    }
    return t;
}

/* Weight of input pixel k (first <= k <= last) in output pixel i. */
static double axis_weight(int in, int out, int i, const Taps *t, int k) {
    if (in > out) {
        int64_t a = (int64_t)i * in, b = a + in;
        int64_t lo = (int64_t)k * out, hi = lo + out;
        int64_t covered = (hi < b ? hi : b) - (lo > a ? lo : a);
        return (double)covered / (double)in;
    }
    if (t->first == t->last)
        return 1.0;
    return k == t->first ? 1.0 - t->frac : t->frac;
}

static void prepare_channel(const ImgGray *g, int c, int out_h, int out_w, float *out);

/* out[i] = px[i] / 255.0f: a vector division gives each lane the same
 * correctly rounded float as the scalar one (16 at a time with AVX-512, a
 * quarter of the time a table lookup per pixel took). */
SM_CLONES static void bytes_unit(const uint8_t *restrict px, float *restrict out, size_t n) {
    for (size_t i = 0; i < n; i++)
        out[i] = (float)px[i] / 255.0f;
}

void img_prepare(const ImgGray *g, int out_h, int out_w, float *out) {
    assert(g && g->px && g->w > 0 && g->h > 0 && (g->c == 1 || g->c == 3));
    assert(out && out_h > 0 && out_w > 0);
    const int in_w = g->w, in_h = g->h, C = g->c;
    if (in_w == out_w && in_h == out_h) {
        bytes_unit(g->px, out, (size_t)in_w * (size_t)in_h * (size_t)C);
        return;
    }
    for (int c = 0; c < C; c++)
        prepare_channel(g, c, out_h, out_w, out);
}

/* Channel c of g resized into every C-th float of out (interleaved). */
static void prepare_channel(const ImgGray *g, int c, int out_h, int out_w, float *out) {
    const int in_w = g->w, in_h = g->h, C = g->c;
    for (int y = 0; y < out_h; y++) {
        Taps ty = axis_taps(in_h, out_h, y);
        for (int x = 0; x < out_w; x++) {
            Taps tx = axis_taps(in_w, out_w, x);
            double acc = 0.0;
            for (int j = ty.first; j <= ty.last; j++) {
                const uint8_t *row = g->px + (size_t)j * (size_t)in_w * (size_t)C + (size_t)c;
                double line = 0.0;
                for (int i = tx.first; i <= tx.last; i++)
                    line += axis_weight(in_w, out_w, x, &tx, i) * row[(size_t)i * (size_t)C];
                acc += axis_weight(in_h, out_h, y, &ty, j) * line;
            }
            double v = acc / 255.0;
            out[((size_t)y * (size_t)out_w + (size_t)x) * (size_t)C + (size_t)c] =
                (float)(v < 0   ? 0
                        : v > 1 ? 1
                                : v);
        }
    }
}

void img_prepare_c(const ImgGray *g, int out_h, int out_w, int out_c, float *out) {
    assert(out_c == g->c || (g->c == 1 && out_c == 3));
    img_prepare(g, out_h, out_w, out);
    if (out_c == g->c)
        return;
    for (size_t i = (size_t)out_h * (size_t)out_w; i-- > 0;) /* backwards: in place */
        out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = out[i];
}
