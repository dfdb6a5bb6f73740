/*
 * test_img_fast.c — the two PNG paths agree (img.h: img_png_fast() takes
 * small plain files, libpng everything). Files are written here chunk by
 * chunk, with the row filters chosen per row and filtered by a reference
 * encoder, so that every filter type, several IDAT chunks, empty ones,
 * ancillary chunks before and after the pixels and each kind of damage can
 * be put exactly where a test wants them. For every file the fast path
 * either decodes it to libpng's pixels (and, for gray, to the samples
 * written) or declines it, and then img_decode() answers what libpng answers.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "siamese/common.h"
#include "siamese/img.h"
#include "test_img.h"

typedef struct {
    int w, h, type, interlace; /* type: PNG colour type, 8-bit samples */
    const int *filters;        /* row y uses filters[y % nfilters]; NULL: all 0 */
    int nfilters;
    int idat_parts;             /* the zlib stream cut into this many IDAT chunks (0: 1) */
    int empty_idat;             /* an empty IDAT between the first two parts */
    const char *before, *after; /* a chunk type (empty data) before / after the IDATs */
    int split_by;               /* the `after` chunk sits between the IDAT parts instead */
    int bad_idat_crc, junk_after_stream, no_iend, short_stream;
    int repeat_rows;  /* rows of the lower half repeat the upper half's */
    int window_cinfo; /* > 0: the zlib header declares a 256 << (this - 1) byte window */
    int bad_signature;
} Spec;

static const int all_filters[] = {0, 1, 2, 3, 4};

static int type_channels(int type) {
    return type == 2 ? 3 : type == 4 ? 2 : type == 6 ? 4 : 1;
}

static void put32(Buf *b, uint32_t v) {
    uint8_t p[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    buf_put(b, p, 4);
}

static void chunk(Buf *b, const char *type, const uint8_t *data, size_t n, int bad_crc) {
    put32(b, (uint32_t)n);
    size_t at = b->len;
    buf_put(b, type, 4);
    if (n)
        buf_put(b, data, n);
    put32(b, (uint32_t)crc32(0, b->p + at, (uInt)(n + 4)) ^ (bad_crc ? 1u : 0u));
}

static uint8_t ref_paeth(int a, int b, int c) {
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return (uint8_t)(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

/* The PNG encoder's side of filter t for one row (n bytes, bpp a pixel). */
static void filter_row(int t, const uint8_t *row, const uint8_t *prev, size_t n, int bpp,
                       uint8_t *out) {
    for (size_t i = 0; i < n; i++) {
        int a = i >= (size_t)bpp ? row[i - bpp] : 0, b = prev[i];
        int c = i >= (size_t)bpp ? prev[i - bpp] : 0;
        int pred = t == 1 ? a : t == 2 ? b : t == 3 ? (a + b) / 2 : t == 4 ? ref_paeth(a, b, c) : 0;
        out[i] = (uint8_t)(row[i] - (t > 4 ? 0 : pred));
    }
}

/* The file of sp and, in samples, the w*h*channels samples it holds. */
static Buf build(const Spec *sp, uint8_t *samples) {
    int ch = type_channels(sp->type);
    size_t stride = (size_t)sp->w * (size_t)ch, raw = (stride + 1) * (size_t)sp->h;
    uint8_t *filtered = malloc(raw), *zero = calloc(stride + 1, 1);
    ck_assert(filtered && zero);
    for (size_t i = 0; i < stride * (size_t)sp->h; i++) {
        size_t y = i / stride, half = (size_t)sp->h / 2;
        if (sp->repeat_rows && y >= half)
            y -= half;
        samples[i] = (uint8_t)sample((int)(i % stride), (int)y, 0, 255);
    }
    for (int y = 0; y < sp->h; y++) {
        int t = sp->filters ? sp->filters[y % sp->nfilters] : 0;
        const uint8_t *row = samples + (size_t)y * stride, *prev = y ? row - stride : zero;
        filtered[(size_t)y * (stride + 1)] = (uint8_t)t;
        filter_row(t, row, prev, stride, ch, filtered + (size_t)y * (stride + 1) + 1);
    }
    uLongf zn = compressBound((uLong)raw) + 16;
    uint8_t *z = malloc(zn);
    ck_assert(z &&
              compress2(z, &zn, filtered, (uLong)(sp->short_stream ? raw - 1 : raw), 9) == Z_OK);
    if (sp->junk_after_stream)
        memcpy(z + zn, "junk", 4), zn += 4;
    if (sp->window_cinfo) { /* CM 8 and a smaller window; FLG keeps the header a multiple of 31 */
        z[0] = (uint8_t)((sp->window_cinfo - 1) << 4 | 8);
        z[1] = (uint8_t)((31 - (z[0] * 256u) % 31) % 31);
    }
    Buf b = {0};
    buf_put(&b, sp->bad_signature ? "\x89PNH\r\n\x1a\n" : "\x89PNG\r\n\x1a\n", 8);
    uint8_t ihdr[13] = {0, 0, 0, 0, 0, 0, 0, 0, 8, (uint8_t)sp->type, 0, 0, (uint8_t)sp->interlace};
    for (int i = 0; i < 4; i++)
        ihdr[i] = (uint8_t)(sp->w >> (24 - 8 * i)), ihdr[4 + i] = (uint8_t)(sp->h >> (24 - 8 * i));
    chunk(&b, "IHDR", ihdr, 13, 0);
    if (sp->type == 3) {
        uint8_t pal[256 * 3];
        for (int i = 0; i < 256 * 3; i++)
            pal[i] = (uint8_t)i;
        chunk(&b, "PLTE", pal, sizeof pal, 0);
    }
    if (sp->before)
        chunk(&b, sp->before, (const uint8_t *)"ab", 2, 0);
    int parts = sp->idat_parts > 1 ? sp->idat_parts : 1;
    for (int k = 0; k < parts; k++) {
        size_t a = zn * (size_t)k / (size_t)parts, e = zn * (size_t)(k + 1) / (size_t)parts;
        chunk(&b, "IDAT", z + a, e - a, sp->bad_idat_crc && k == parts - 1);
        if (k == 0 && sp->empty_idat)
            chunk(&b, "IDAT", NULL, 0, 0);
        if (k == 0 && sp->split_by && sp->after)
            chunk(&b, sp->after, (const uint8_t *)"cd", 2, 0);
    }
    if (sp->after && !sp->split_by)
        chunk(&b, sp->after, (const uint8_t *)"cd", 2, 0);
    if (!sp->no_iend)
        chunk(&b, "IEND", NULL, 0, 0);
    free(filtered), free(zero), free(z);
    return b;
}

/* img_decode() of b (1 or 3 channels) gives what libpng gives: rc and pixels. */
static void check_same_as_libpng(const Buf *b, int oc, const char *what) {
    ImgGray d, l;
    char e1[SM_ERRMAX] = "", e2[SM_ERRMAX] = "";
    int rd = img_decode_c(b->p, b->len, NULL, oc, &d, e1);
    int rl = img_png_libpng(b->p, b->len, NULL, oc, &l, e2);
    ck_assert_msg(rd == rl, "%s: img_decode %d (%s), libpng %d (%s)", what, rd, e1, rl, e2);
    ck_assert_msg(rd < 0 || (d.w == l.w && d.h == l.h && d.c == l.c &&
                             memcmp(d.px, l.px, (size_t)d.w * d.h * (size_t)oc) == 0),
                  "%s: pixels differ from libpng's", what);
    if (rd < 0)
        ck_assert_str_eq(e1, e2);
    img_gray_free(&d), img_gray_free(&l);
}

/* The fast path takes sp's file (1 and 3 channels), with libpng's pixels. */
static void check_taken(const Spec *sp, const char *what) {
    uint8_t *s = malloc((size_t)sp->w * sp->h * 4);
    ck_assert_ptr_nonnull(s);
    Buf b = build(sp, s);
    for (int oc = 1; oc <= 3; oc += 2) {
        ImgGray f;
        ck_assert_msg(img_png_fast(b.p, b.len, NULL, oc, &f) == 1, "%s (%d ch): declined", what,
                      oc);
        ck_assert(f.w == sp->w && f.h == sp->h && f.c == oc);
        if (sp->type == 0 && oc == 1) /* gray: the samples themselves */
            ck_assert_msg(memcmp(f.px, s, (size_t)sp->w * sp->h) == 0, "%s: samples", what);
        img_gray_free(&f);
        check_same_as_libpng(&b, oc, what);
    }
    free(s), free(b.p);
}

/* The fast path declines sp's file, and img_decode() still answers libpng's. */
static void check_declined(const Spec *sp, const char *what) {
    uint8_t *s = malloc((size_t)sp->w * sp->h * 4);
    ck_assert_ptr_nonnull(s);
    Buf b = build(sp, s);
    for (int oc = 1; oc <= 3; oc += 2) {
        ImgGray f = {0};
        ck_assert_msg(img_png_fast(b.p, b.len, NULL, oc, &f) == 0, "%s (%d ch): taken", what, oc);
        ck_assert(f.px == NULL);
    }
    check_same_as_libpng(&b, 1, what);
    check_same_as_libpng(&b, 3, what);
    free(s), free(b.p);
}

START_TEST(fast_takes_every_plain_type_and_filter) {
    static const int types[] = {0, 2, 4, 6};
    static const int sizes[][2] = {{1, 1}, {28, 28}, {13, 11}, {1, 9}, {200, 3}};
    static const int paeth[] = {4}, avg[] = {3}, up_sub[] = {2, 1};
    static const struct {
        const int *f;
        int n;
    } fs[] = {{NULL, 0}, {all_filters, 5}, {paeth, 1}, {avg, 1}, {up_sub, 2}};
    for (size_t t = 0; t < SM_ARRAY_LEN(types); t++)
        for (size_t z = 0; z < SM_ARRAY_LEN(sizes); z++)
            for (size_t k = 0; k < SM_ARRAY_LEN(fs); k++) {
                Spec sp = {.w = sizes[z][0],
                           .h = sizes[z][1],
                           .type = types[t],
                           .filters = fs[k].f,
                           .nfilters = fs[k].n};
                char what[64];
                snprintf(what, sizeof what, "type %d %dx%d filters %zu", types[t], sp.w, sp.h, k);
                check_taken(&sp, what);
            }
}
END_TEST

START_TEST(fast_takes_split_idat_and_ancillary_chunks) {
    Spec sp = {.w = 28, .h = 28, .type = 0, .filters = all_filters, .nfilters = 5};
    sp.idat_parts = 3;
    check_taken(&sp, "three IDATs");
    sp.empty_idat = 1;
    check_taken(&sp, "an empty IDAT among them");
    sp.before = "tEXt", sp.after = "zTXt";
    check_taken(&sp, "ancillary chunks before and after");
    sp.before = "gAMA", sp.after = "eXIf";
    check_taken(&sp, "chunks libpng knows but skips");
}
END_TEST

START_TEST(fast_declines_what_is_not_plain) {
    const Spec base = {.w = 28, .h = 28, .type = 0, .filters = all_filters, .nfilters = 5};
    Spec s;
    s = base, s.type = 3, check_declined(&s, "palette");
    s = base, s.after = "tRNS", check_declined(&s, "tRNS");
    s = base, s.interlace = 1, check_declined(&s, "interlaced");
    s = base, s.bad_idat_crc = 1, check_declined(&s, "bad IDAT CRC");
    s = base, s.junk_after_stream = 1, check_declined(&s, "data after the zlib stream");
    s = base, s.short_stream = 1, check_declined(&s, "a stream a byte short");
    s = base, s.no_iend = 1, check_declined(&s, "no IEND");
    s = base, s.idat_parts = 2, s.after = "tEXt", s.split_by = 1;
    check_declined(&s, "IDATs split by another chunk");
    s = base, s.before = "ABCD", check_declined(&s, "an unknown critical chunk");
    static const int bad_filter[] = {0, 5};
    s = base, s.filters = bad_filter, s.nfilters = 2, check_declined(&s, "filter type 5");
    s = base, s.w = 600, s.h = 500, check_declined(&s, "over IMG_PNG_FAST_MAX");
}
END_TEST

/* A stream may declare a window smaller than 32 KiB. libpng, a row per
 * inflate call, then refuses matches reaching further back than it; the
 * fast path takes such a stream only when the window covers the whole
 * image, and then no match can reach beyond it. */
START_TEST(fast_takes_a_small_window_only_when_it_covers_the_image) {
    Spec far = {.w = 28, .h = 28, .type = 0, .repeat_rows = 1, .window_cinfo = 1};
    uint8_t px[28 * 28];
    Buf b = build(&far, px); /* rows 14..27 repeat 0..13: matches 406 bytes back, window 256 */
    ImgGray f = {0}, g;
    char err[SM_ERRMAX] = "";
    ck_assert_int_eq(img_png_fast(b.p, b.len, NULL, 1, &f), 0);
    ck_assert_msg(img_decode(b.p, b.len, NULL, &g, err) == -EINVAL, "libpng took it: %s", err);
    ck_assert_msg(strstr(err, "too far back"), "%s", err);
    free(b.p);
    Spec near = {.w = 8, .h = 8, .type = 0, .repeat_rows = 1, .window_cinfo = 1};
    check_taken(&near, "a 256-byte window over a 72-byte image");
    Spec wide = far;
    wide.window_cinfo = 3; /* 1 KiB: the whole 812 bytes */
    check_taken(&wide, "a 1 KiB window over 812 bytes");
}
END_TEST

START_TEST(fast_needs_the_signature) {
    Spec sp = {.w = 5, .h = 5, .type = 0, .bad_signature = 1};
    uint8_t px[25];
    Buf b = build(&sp, px);
    ImgGray f = {0};
    ck_assert_int_eq(img_png_fast(b.p, b.len, NULL, 1, &f), 0);
    ck_assert_ptr_null(f.px);
    free(b.p);
}
END_TEST

/* A budget the fast path's whole buffers do not fit but libpng's rows do. */
START_TEST(fast_declines_when_the_budget_is_short) {
    Spec sp = {.w = 200, .h = 200, .type = 0, .filters = all_filters, .nfilters = 5};
    uint8_t *s = malloc(200 * 200);
    ck_assert_ptr_nonnull(s);
    Buf b = build(&sp, s);
    ImgLimits lim = IMG_LIMITS_DEFAULT;
    lim.max_bytes = 200 * 200 + 2 * 201; /* the result and a row, not the filtered image */
    ImgGray f = {0}, g;
    char err[SM_ERRMAX];
    ck_assert_int_eq(img_png_fast(b.p, b.len, &lim, 1, &f), 0);
    ck_assert_msg(img_decode(b.p, b.len, &lim, &g, err) == 0, "%s", err);
    ck_assert(memcmp(g.px, s, 200 * 200) == 0);
    img_gray_free(&g);
    lim.max_bytes = 0;
    ck_assert_int_eq(img_png_fast(b.p, b.len, &lim, 1, &f), 1);
    ck_assert(memcmp(f.px, s, 200 * 200) == 0);
    img_gray_free(&f);
    free(s), free(b.p);
}
END_TEST

void test_img_fast_add(TCase *tc) {
    tcase_add_test(tc, fast_takes_every_plain_type_and_filter);
    tcase_add_test(tc, fast_takes_split_idat_and_ancillary_chunks);
    tcase_add_test(tc, fast_declines_what_is_not_plain);
    tcase_add_test(tc, fast_declines_when_the_budget_is_short);
    tcase_add_test(tc, fast_takes_a_small_window_only_when_it_covers_the_image);
    tcase_add_test(tc, fast_needs_the_signature);
}
