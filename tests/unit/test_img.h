/*
 * test_img.h — private to the two halves of the test_img executable.
 *
 * test_img.c defines the byte buffer, the reference arithmetic from img.h and
 * the generators of well-formed PNG, JPEG and PNM files; test_img_hostile.c
 * patches their output into hostile files and rewrites the fixtures with
 * them. test_img_hostile.c in turn hands its tests to the test cases that
 * img_suite() in test_img.c makes, so there stays one suite and one main().
 * Every generator fails the running test (ck_assert) rather than return an
 * error, so they may only be called inside a test. Returned Bufs are the
 * caller's: free(b.p).
 */
#ifndef SM_TEST_IMG_H
#define SM_TEST_IMG_H

#include "siamese/img.h"

#include <check.h>
#include <png.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jpeglib.h>

/* ---- growable byte buffer ---- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} Buf;

void buf_put(Buf *b, const void *d, size_t n);

/* ---- the reference arithmetic, written out from img.h ---- */

unsigned ref_luma(unsigned r, unsigned g, unsigned b);
/* Deterministic scrambled sample in [0, maxval]. */
unsigned sample(int x, int y, int k, unsigned maxval);
/* img_decode() of the whole of b. */
int decode(const Buf *b, const ImgLimits *lim, ImgGray *g, char *err);

/* ---- PNG ---- */

typedef struct {
    int w, h, type, depth, interlace, level; /* level: zlib level, -1 = default */
    const uint16_t *s;                       /* w*h*channels samples (indices if palette) */
    const png_color *pal;
    int npal;
    const png_byte *trns;
    int ntrns;
    const png_color_16 *tcolor;
} PngSpec;

Buf png_make(const PngSpec *sp);

typedef struct {
    int type, depth, trns; /* trns: add a tRNS chunk */
} PngCase;

/* Every colour type and bit depth, with and without tRNS. */
extern const PngCase png_cases[];
/* The PNG for case c at w x h (at most 17 x 13) and the gray it must decode to. */
Buf png_case_make(const PngCase *c, int w, int h, int interlace, uint8_t *expect);

/* ---- JPEG ---- */

typedef struct {
    int w, h, comps;
    J_COLOR_SPACE in, store;
    int progressive, adobe; /* adobe: -1 = library default, else write_Adobe_marker */
    const jpeg_scan_info *scans;
    int nscans;
} JpegSpec;

enum { JW = 32, JH = 24 };

Buf jpeg_make(const JpegSpec *sp, const uint8_t *px);
/* A smooth sp->w x sp->h picture in px and the gray it must decode to. */
void jpeg_picture(const JpegSpec *sp, uint8_t *px, uint8_t *expect);
/* Baseline, progressive, gray, RGB, CMYK and YCCK, all JW x JH. */
extern const JpegSpec jpeg_kinds[];

/* ---- PGM / PPM ---- */

/* header followed by n bytes of data. */
Buf pnm(const char *header, const uint8_t *data, size_t n);

/* ---- from test_img_hostile.c, each appending to one of img_suite()'s cases ---- */

void test_img_hostile_add_png(TCase *tc);
void test_img_hostile_add_jpeg(TCase *tc);
void test_img_hostile_add_pnm(TCase *tc);
void test_img_fixtures_add(TCase *tc);
/* from test_img_budget.c: byte limits, the shared budget, probes, DCT scaling */
void test_img_budget_add(TCase *tc);
/* from test_img_rgb.c: 3-channel decoding and preparation (n_png, n_jpeg:
 * the sizes of png_cases and jpeg_kinds) */
void test_img_rgb_add(TCase *tc, int n_png, int n_jpeg);
/* from test_img_fast.c: the fast PNG path against libpng's */
void test_img_fast_add(TCase *tc);
/* The suite that `test_img --write-fixtures DIR` runs instead; dir is borrowed. */
Suite *test_img_fixtures_writer_suite(const char *dir);

#endif
