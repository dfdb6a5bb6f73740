/*
 * img.h — image decoding and preparation, shared unchanged by the trainer and
 * the daemon (train/serve skew is a bug).
 *
 * img_decode() turns PNG (every colour type and bit depth, interlaced), JPEG
 * (baseline, progressive; gray, RGB, CMYK/YCCK) and binary PGM/PPM (P5/P6,
 * maxval up to 65535) into 8-bit grayscale. Declared dimensions are checked
 * against limits BEFORE any pixel memory is allocated (decompression bombs).
 * Grayscale is Rec.601 luma, (299 R + 587 G + 114 B + 500) / 1000; alpha is
 * composited over black; 16-bit samples are rounded to 8 bits.
 * In that order: each sample to 8 bits first ((v * 255 + 32767) / 65535, or
 * round(v * 255 / maxval) for PGM/PPM), then luma, then (luma * a + 127) / 255.
 * Colour JPEGs are decoded to RGB and go through the same luma. CMYK JPEGs
 * with an Adobe APP14 marker are taken as inverted (R = C * K / 255), without
 * one as plain (R = (255 - C)(255 - K) / 255). Strictness: truncated or
 * corrupt entropy-coded JPEG data, a JPEG with more than 100 scans, a PNG
 * without IEND and a PGM/PPM whose raster is not exactly the declared size are
 * all -EINVAL. PNG ancillary chunks other than tRNS are skipped unread.
 *
 * img_prepare() resizes to the model's input (area average when shrinking,
 * bilinear when enlarging, a plain copy at equal size) and scales to [0,1]
 * by /255.
 */
#ifndef SIAMESE_IMG_H
#define SIAMESE_IMG_H

#include <stddef.h>
#include <stdint.h>

/* A process-wide budget of decoder working memory shared by concurrent
 * decodes (thread-safe; opaque). Each decode reserves what it will need
 * before allocating it and gives it back when done. */
typedef struct ImgBudget ImgBudget;
/* A budget of bytes (> 0); NULL when out of memory. Free with img_budget_free
 * once no decode uses it (NULL is fine). */
ImgBudget *img_budget_new(uint64_t bytes);
void img_budget_free(ImgBudget *b);
/* Bytes reserved right now (for tests and metrics). */
uint64_t img_budget_used(const ImgBudget *b);

typedef struct {
    int max_width;       /* default 4096 */
    int max_height;      /* default 4096 */
    uint64_t max_pixels; /* default 16 Mpx */
    /* Working memory one decode may use, in bytes, counted before it is
     * allocated (pixel rows, the whole image when interlaced or 16-bit, JPEG
     * coefficient buffers of progressive files); 0 = no byte limit. */
    uint64_t max_bytes;
    ImgBudget *budget; /* shared by concurrent decodes; NULL = none */
} ImgLimits;

#define IMG_LIMITS_DEFAULT ((ImgLimits){4096, 4096, 16u << 20, 64u << 20, NULL})

typedef struct {
    int w, h;
    int c;       /* channels: 1 gray, 3 RGB (interleaved) */
    uint8_t *px; /* w*h*c bytes, row-major; owned: img_gray_free() */
} ImgGray;

typedef enum { IMG_UNKNOWN = 0, IMG_PNG, IMG_JPEG, IMG_PNM } ImgFormat;

/* PNG has two decoders. img_decode() first offers a file to img_png_fast():
 * small, plain files (8-bit gray, gray+alpha, RGB or RGBA, not interlaced, no
 * palette or tRNS, at most IMG_PNG_FAST_MAX bytes once inflated) in one
 * inflate call. It returns 1 with out filled as img_decode_c() fills it, or
 * 0 with nothing allocated for any file it does not take: it never rejects
 * one. Every file it declines goes to libpng, img_png_libpng(), which
 * decodes every PNG and reports every error (same contract as img_decode_c,
 * for PNG only). Both are public for the tests and the benchmark that hold
 * them to the same pixels. lim may be NULL for the defaults. */
#define IMG_PNG_FAST_MAX ((size_t)256 << 10)
int img_png_fast(const void *buf, size_t len, const ImgLimits *lim, int channels, ImgGray *out);
int img_png_libpng(const void *buf, size_t len, const ImgLimits *lim, int channels, ImgGray *out,
                   char *err);

/* Sniffs the format from the first bytes. */
ImgFormat img_sniff(const void *buf, size_t len);

/* Decodes buf into out (out->px allocated; free with img_gray_free()).
 * Errors: -EINVAL malformed/unsupported/truncated, -E2BIG over the limits
 * (max_bytes included), -EBUSY when lim->budget cannot spare the bytes right
 * now, -ENOMEM. err says which. lim may be NULL for the defaults; limits that
 * are not positive (max_bytes aside) are -EINVAL. On failure *out is zeroed. */
int img_decode(const void *buf, size_t len, const ImgLimits *lim, ImgGray *out, char *err);

/* The pixels img_load_mem(buf, len, lim, out_h, out_w, ...) would decode,
 * read from the header alone (cheap, nothing decoded): width * height, or
 * less for a JPEG decoded with DCT scaling. 0 with *pixels set, or
 * img_decode()'s errors for what the header shows (format, limits). */
int img_probe(const void *buf, size_t len, const ImgLimits *lim, int out_h, int out_w,
              uint64_t *pixels, char *err);
void img_gray_free(ImgGray *g); /* frees px and zeroes g; NULL or empty is fine */
/* The same with channels 1 (gray, as img_decode()) or 3: 8-bit R, G, B with
 * the same conversions short of the luma (gray sources replicated, alpha over
 * black on each channel, CMYK to RGB as above). */
int img_decode_c(const void *buf, size_t len, const ImgLimits *lim, int channels, ImgGray *out,
                 char *err);

/* Resizes g to out_h x out_w and scales to [0,1] into out (out_h*out_w*g->c
 * floats, channels interleaved; each channel resized on its own).
 * Each axis on its own: area average (fractional box) when shrinking, bilinear
 * on pixel centres (align corners = false, edges clamped) when enlarging, the
 * identity at equal size. Allocates nothing; g must be non-empty and out_h,
 * out_w positive (asserted). */
void img_prepare(const ImgGray *g, int out_h, int out_w, float *out);

/* img_prepare() into out_c channels: g's own, or a gray g replicated to 3
 * (a gray picture as RGB); RGB to gray is not done here (asserted). */
void img_prepare_c(const ImgGray *g, int out_h, int out_w, int out_c, float *out);

/* Decode + prepare in one call, from memory. Output sizes that are not
 * positive are -EINVAL. A JPEG at least 8 times larger than the output on
 * both axes is decoded with libjpeg's DCT scaling (1/2, 1/4 or 1/8, keeping
 * at least 8 times the output size) before the area average: the trainer
 * and the daemon both load through here, so they see the same pixels. */
int img_load_mem(const void *buf, size_t len, const ImgLimits *lim, int out_h, int out_w,
                 float *out, char *err);
/* Decode + prepare in one call, from a file (size capped at 64 MiB). Errors of
 * sm_read_file() pass through unchanged (-ENOENT, -EFBIG past the cap, ...);
 * decoding errors are img_decode()'s, with the path prefixed to the message. */
int img_load_file(const char *path, const ImgLimits *lim, int out_h, int out_w, float *out,
                  char *err);
/* Both with out_c channels (1 gray, 3 RGB: img_decode_c()): out holds
 * out_h*out_w*out_c floats, channels interleaved. */
int img_load_mem_c(const void *buf, size_t len, const ImgLimits *lim, int out_h, int out_w,
                   int out_c, float *out, char *err);
int img_load_file_c(const char *path, const ImgLimits *lim, int out_h, int out_w, int out_c,
                    float *out, char *err);

#endif
