/*
 * test_img_hostile.c — the image tests that hand img_decode() what it must
 * refuse, and the committed fixtures: the other half of test_img, whose
 * main() and suite are in test_img.c (generators shared via test_img.h).
 *
 * Hostile inputs are made by patching good files (a 100000x100000 IHDR
 * with a valid CRC, a 65000x65000 SOF, zTXt/iCCP bombs, cut files, too many
 * progressive scans), and by hand for PGM headers and unknown formats.
 *
 * The committed files in tests/data/img/ (seed corpus for fuzzing) come from
 * the same generators: `test_img --write-fixtures DIR` rewrites them, and the
 * fixtures test decodes each one with its expected outcome.
 */
#include "test_img.h"

#include "siamese/common.h"
#include "siamese/img.h"

#include <check.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* ---- patching PNG files ---- */

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
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

/* ---- PNG ---- */

START_TEST(png_truncated) {
    Buf b = png_base(20, 20, NULL, -1);
    const size_t cuts[] = {8, 20, 33, 50, b.len / 2, b.len - 12, b.len - 1};
    for (size_t i = 0; i < SM_ARRAY_LEN(cuts); i++) {
        ImgGray g = {1, 1, 1, NULL};
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
    ImgLimits lim = {16, 16, 63, 0, NULL};
    ck_assert_int_eq(decode(&b, &lim, &g, err), -E2BIG);
    ck_assert_ptr_nonnull(strstr(err, "63-pixel"));
    lim.max_pixels = 64;
    ck_assert_int_eq(decode(&b, &lim, &g, err), 0);
    img_gray_free(&g);
    lim = (ImgLimits){7, 16, 1000, 0, NULL};
    ck_assert_int_eq(decode(&b, &lim, &g, err), -E2BIG);
    lim = (ImgLimits){0, 16, 1000, 0, NULL};
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
    ImgLimits lim = {31, 100, 10000, 0, NULL};
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

/* ---- PGM / PPM and unknown formats ---- */

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

/* ---- what img_suite() in test_img.c adds to its test cases ---- */

void test_img_hostile_add_png(TCase *tc) {
    tcase_add_test(tc, png_truncated);
    tcase_add_test(tc, png_huge_dims);
    tcase_add_test(tc, png_corrupt);
    tcase_add_test(tc, png_chunk_bombs);
}

void test_img_hostile_add_jpeg(TCase *tc) {
    tcase_add_test(tc, jpeg_truncated);
    tcase_add_test(tc, jpeg_huge_dims);
    tcase_add_test(tc, jpeg_corrupt);
    tcase_add_test(tc, jpeg_scan_cap);
}

void test_img_hostile_add_pnm(TCase *tc) {
    tcase_add_test(tc, pnm_bad);
    tcase_add_test(tc, sniff_formats);
}

void test_img_fixtures_add(TCase *tc) {
    tcase_add_loop_test(tc, fixtures_decode, 0, (int)SM_ARRAY_LEN(fixtures));
    tcase_add_test(tc, fixtures_real);
}

/* The generators use ck_assert, which only works inside a running test. */
static const char *fixture_dir;

START_TEST(fixtures_write) {
    ck_assert_int_eq(write_fixtures(fixture_dir), 0);
}
END_TEST

Suite *test_img_fixtures_writer_suite(const char *dir) {
    fixture_dir = dir;
    Suite *s = suite_create("img-fixtures");
    TCase *tc = tcase_create("write");
    tcase_add_test(tc, fixtures_write);
    suite_add_tcase(s, tc);
    return s;
}
