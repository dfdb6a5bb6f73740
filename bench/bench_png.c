/*
 * bench_png.c — decode time per PNG for the decoders Debian offers, on the
 * files given (bench/http.sh sends two 28x28 gray PNGs):
 *   img_decode — as the daemon runs it: img_png_fast() for small plain files
 *             (one zlib inflate call), libpng for the rest,
 *   libpng  — img_png_libpng(): libpng + zlib, a row per inflate call,
 *   spng    — libspng to 8-bit gray (it inflates with zlib too),
 *   deflate — a minimal 8-bit-gray, non-interlaced decoder around
 *             libdeflate_zlib_decompress (chunk walk, IDAT gathered, the five
 *             filters undone): what a libdeflate path could cost at best.
 * Each round decodes every file ITERS times with each decoder in turn
 * (interleaved, so a noisy host hits all of them alike); the medians over
 * the rounds are printed in microseconds per image, with the load average.
 * Every decoder's pixels are compared with img_decode's once before timing.
 * Usage: bench_png [ROUNDS [ITERS]] FILE.png...
 */
#include "siamese/img.h"

#include <libdeflate.h>
#include <spng.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    uint8_t *buf;
    size_t len;
} File;

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int read_file(const char *path, File *f) {
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return -1;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    rewind(fp);
    f->buf = malloc((size_t)n);
    f->len = f->buf && fread(f->buf, 1, (size_t)n, fp) == (size_t)n ? (size_t)n : 0;
    fclose(fp);
    return f->len ? 0 : -1;
}

static int dec_libpng(const File *f, uint8_t **px, int *w, int *h) {
    ImgGray g;
    char err[256];
    if (img_decode(f->buf, f->len, NULL, &g, err) < 0)
        return -1;
    *px = g.px, *w = g.w, *h = g.h;
    return 0;
}

static int dec_libpng_only(const File *f, uint8_t **px, int *w, int *h) {
    ImgGray g;
    char err[256];
    if (img_png_libpng(f->buf, f->len, NULL, 1, &g, err) < 0)
        return -1;
    *px = g.px, *w = g.w, *h = g.h;
    return 0;
}

static int dec_spng(const File *f, uint8_t **px, int *w, int *h) {
    spng_ctx *c = spng_ctx_new(0);
    struct spng_ihdr ih;
    size_t n;
    int rc = -1;
    *px = NULL;
    if (!c || spng_set_png_buffer(c, f->buf, f->len) || spng_get_ihdr(c, &ih) ||
        spng_decoded_image_size(c, SPNG_FMT_G8, &n) || !(*px = malloc(n)) ||
        spng_decode_image(c, *px, n, SPNG_FMT_G8, 0))
        goto out;
    *w = (int)ih.width, *h = (int)ih.height;
    rc = 0;
out:
    if (rc < 0)
        free(*px);
    spng_ctx_free(c);
    return rc;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint8_t paeth(int a, int b, int c) {
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return (uint8_t)(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

/* Undoes one row's filter in place; prev is the previous unfiltered row (zeros first). */
static int unfilter(int type, uint8_t *r, const uint8_t *prev, size_t w) {
    for (size_t x = 0; x < w; x++) {
        int a = x ? r[x - 1] : 0, b = prev[x], c = x ? prev[x - 1] : 0;
        switch (type) {
        case 0:
            break;
        case 1:
            r[x] = (uint8_t)(r[x] + a);
            break;
        case 2:
            r[x] = (uint8_t)(r[x] + b);
            break;
        case 3:
            r[x] = (uint8_t)(r[x] + (a + b) / 2);
            break;
        case 4:
            r[x] = (uint8_t)(r[x] + paeth(a, b, c));
            break;
        default:
            return -1;
        }
    }
    return 0;
}

static int dec_deflate(const File *f, uint8_t **px, int *w, int *h) {
    static __thread struct libdeflate_decompressor *d;
    if (!d && !(d = libdeflate_alloc_decompressor()))
        return -1;
    const uint8_t *p = f->buf + 8, *end = f->buf + f->len;
    uint8_t idat[1 << 16];
    size_t ni = 0, W = 0, H = 0;
    while (end - p >= 12) {
        uint32_t n = be32(p);
        if (n > (size_t)(end - p) - 12)
            return -1;
        if (!memcmp(p + 4, "IHDR", 4)) {
            W = be32(p + 8), H = be32(p + 12);
            if (p[16] != 8 || p[17] != 0 || p[20] != 0 || W > 4096 || H > 4096)
                return -1; /* the prototype does 8-bit gray, non-interlaced only */
        } else if (!memcmp(p + 4, "IDAT", 4)) {
            if (n > sizeof idat - ni)
                return -1;
            memcpy(idat + ni, p + 8, n), ni += n;
        } else if (!memcmp(p + 4, "IEND", 4))
            break;
        p += 12 + n;
    }
    size_t raw = (W + 1) * H, got;
    uint8_t *buf = malloc(raw), *out = malloc(W && H ? W * H : 1);
    uint8_t *zero = calloc(W ? W : 1, 1);
    int rc = -1;
    if (!buf || !out || !zero ||
        libdeflate_zlib_decompress(d, idat, ni, buf, raw, &got) != LIBDEFLATE_SUCCESS || got != raw)
        goto out;
    for (size_t y = 0; y < H; y++) {
        uint8_t *r = out + y * W;
        memcpy(r, buf + y * (W + 1) + 1, W);
        if (unfilter(buf[y * (W + 1)], r, y ? r - W : zero, W) < 0)
            goto out;
    }
    *px = out, *w = (int)W, *h = (int)H;
    out = NULL;
    rc = 0;
out:
    free(buf);
    free(out);
    free(zero);
    return rc;
}

typedef struct {
    const char *name;
    int (*dec)(const File *, uint8_t **, int *, int *);
} Decoder;

static const Decoder decoders[] = {
    {"img_decode", dec_libpng},
    {"libpng+zlib", dec_libpng_only},
    {"libspng", dec_spng},
    {"libdeflate", dec_deflate},
};
enum { NDEC = sizeof decoders / sizeof decoders[0] };

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Every decoder must give libpng's pixels for every file. */
static int check_same(const File *fs, int nf) {
    for (int i = 0; i < nf; i++) {
        uint8_t *ref, *px;
        int rw, rh, w, h;
        if (dec_libpng(&fs[i], &ref, &rw, &rh) < 0)
            return fprintf(stderr, "file %d: libpng cannot decode it\n", i), -1;
        for (int k = 1; k < NDEC; k++) {
            if (decoders[k].dec(&fs[i], &px, &w, &h) < 0 || w != rw || h != rh ||
                memcmp(px, ref, (size_t)w * (size_t)h))
                return fprintf(stderr, "file %d: %s differs from libpng\n", i, decoders[k].name),
                       -1;
            free(px);
        }
        free(ref);
    }
    return 0;
}

int main(int argc, char **argv) {
    int a = 1, rounds = 9, iters = 2000;
    if (a < argc && atoi(argv[a]) > 0)
        rounds = atoi(argv[a++]);
    if (a < argc && atoi(argv[a]) > 0)
        iters = atoi(argv[a++]);
    int nf = argc - a;
    if (nf <= 0 || rounds > 99)
        return fprintf(stderr, "usage: bench_png [ROUNDS<100 [ITERS]] FILE.png...\n"), 2;
    File *fs = calloc((size_t)nf, sizeof *fs);
    if (!fs)
        return 1;
    for (int i = 0; i < nf; i++)
        if (read_file(argv[a + i], &fs[i]) < 0)
            return fprintf(stderr, "%s: cannot read\n", argv[a + i]), 1;
    if (check_same(fs, nf) < 0)
        return 1;
    double us[NDEC][100];
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < NDEC; k++) {
            double t0 = now_us();
            for (int it = 0; it < iters; it++)
                for (int i = 0; i < nf; i++) {
                    uint8_t *px;
                    int w, h;
                    if (decoders[k].dec(&fs[i], &px, &w, &h) < 0)
                        return fprintf(stderr, "%s failed\n", decoders[k].name), 1;
                    free(px);
                }
            us[k][r] = (now_us() - t0) / ((double)iters * nf);
        }
    double load[3] = {0};
    FILE *la = fopen("/proc/loadavg", "r");
    if (la && fscanf(la, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
        load[0] = -1;
    if (la)
        fclose(la);
    printf("%d files, %d rounds x %d decodes each, load average %.2f %.2f %.2f\n", nf, rounds,
           iters, load[0], load[1], load[2]);
    for (int k = 0; k < NDEC; k++) {
        double sorted[100];
        memcpy(sorted, us[k], sizeof sorted);
        qsort(sorted, (size_t)rounds, sizeof(double), cmp_d);
        printf("%-12s median %6.2f us/image  [", decoders[k].name, sorted[rounds / 2]);
        for (int r = 0; r < rounds; r++)
            printf(r ? " %.2f" : "%.2f", us[k][r]);
        printf("]\n");
    }
    return 0;
}
