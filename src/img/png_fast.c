/*
 * png_fast.c — small, plain PNGs in one inflate call.
 *
 * libpng inflates one row per call. A 28x28 gray row is 29 bytes, below the
 * 258 bytes zlib's fast loop needs, so every byte of such an image goes
 * through zlib's slow path and the two images of a /verify cost more to
 * decode than to embed. The files a verification service mostly sees are
 * small and plain: 8-bit gray, gray+alpha, RGB or RGBA, not interlaced. For
 * those this path walks the chunks (checking the CRC of every chunk libpng
 * would reject on a bad one), inflates all IDAT data with zlib into one
 * buffer, undoes the row filters and converts the rows with libpng's path's
 * own img_png_row_out(), so the pixels are the same by construction.
 *
 * It never rejects a file. Anything else (palette, tRNS, other depths,
 * interlace, more than IMG_PNG_FAST_MAX filtered bytes, an unknown critical
 * chunk, a bad CRC, a stream that ends early, late or with data after it or
 * declares a window smaller than the image, a budget that cannot spare the
 * bytes) is declined, and libpng decodes it or
 * reports the error exactly as it did before this path existed. What it
 * accepts is a subset of what libpng accepts: test_img_fast and fuzz_img
 * decode the same files both ways and compare.
 */
#include "img_internal.h"
#include "siamese/common.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct {
    const uint8_t *data; /* the chunk's data, len bytes */
    uint32_t len;
    char type[5];
} Chunk;

/* The chunk at *pos (advanced past it); 0, or -1 if it does not fit in the
 * file or its type is not four letters (libpng errors on both). */
static int chunk_next(const uint8_t *buf, size_t len, size_t *pos, Chunk *c) {
    if (len - *pos < 12)
        return -1;
    const uint8_t *p = buf + *pos;
    c->len = img_be32(p);
    if (c->len > len - *pos - 12)
        return -1;
    for (int i = 0; i < 4; i++) {
        uint8_t ch = p[4 + i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z')))
            return -1;
        c->type[i] = (char)ch;
    }
    c->type[4] = 0;
    c->data = p + 8;
    *pos += 12 + (size_t)c->len;
    return 0;
}

static int chunk_crc_ok(const Chunk *c) {
    uLong crc = crc32(crc32(0L, Z_NULL, 0), (const Bytef *)c->data - 4, c->len + 4);
    return (uint32_t)crc == img_be32(c->data + c->len);
}

/* Channels of an 8-bit colour type this path takes; 0 for any other. */
static int fast_channels(uint8_t type) {
    switch (type) {
    case 0:
        return 1;
    case 2:
        return 3;
    case 4:
        return 2;
    case 6:
        return 4;
    default:
        return 0;
    }
}

typedef struct {
    size_t w, h;
    int channels;
    size_t idat0, idat1; /* file offsets of the first IDAT and just past the last */
} Plan;

/* Walks the whole file to IEND; 1 with *pl when it is one this path takes. */
static int fast_plan(const uint8_t *buf, size_t len, const ImgLimits *lim, Plan *pl) {
    size_t pos = 8;
    Chunk c;
    if (len < 8 || memcmp(buf, IMG_PNG_MAGIC, 8) || chunk_next(buf, len, &pos, &c) < 0 ||
        strcmp(c.type, "IHDR") || c.len != 13 || !chunk_crc_ok(&c))
        return 0;
    const uint8_t *d = c.data;
    char err[SM_ERRMAX];
    pl->w = img_be32(d), pl->h = img_be32(d + 4);
    pl->channels = fast_channels(d[9]);
    if (d[8] != 8 || !pl->channels || d[10] || d[11] || d[12] ||
        img_check_dims("png", pl->w, pl->h, lim, err) < 0)
        return 0;
    size_t raw = (pl->w * (size_t)pl->channels + 1) * pl->h;
    if (raw > IMG_PNG_FAST_MAX)
        return 0;
    enum { BEFORE, IN, AFTER } idat = BEFORE;
    pl->idat0 = pl->idat1 = 0;
    for (;;) {
        size_t at = pos;
        if (chunk_next(buf, len, &pos, &c) < 0)
            return 0; /* truncated before IEND: libpng's error */
        if (c.len > PNG_CHUNK_MALLOC_MAX)
            return 0; /* libpng refuses longer ones (its IDAT limit is at least this) */
        if (!strcmp(c.type, "IDAT")) {
            if (idat == AFTER || !chunk_crc_ok(&c))
                return 0; /* an IDAT after other chunks followed one: libpng's error */
            if (idat == BEFORE)
                pl->idat0 = at;
            idat = IN, pl->idat1 = pos;
        } else if (!strcmp(c.type, "IEND")) {
            return idat != BEFORE && c.len == 0 && chunk_crc_ok(&c);
        } else {
            /* Critical chunks (PLTE, a second IHDR, unknown ones) and tRNS
             * are libpng's; other ancillary chunks it skips unread. */
            if (!(c.type[0] & 0x20) || !strcmp(c.type, "tRNS"))
                return 0;
            if (idat == IN)
                idat = AFTER;
        }
    }
}

/* Inflates every IDAT in [idat0, idat1) into out: 1 when the stream fills
 * out exactly and ends with the last byte of the last IDAT. */
static int fast_inflate(const uint8_t *buf, const Plan *pl, uint8_t *out, size_t n) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK)
        return 0;
    z.next_out = out;
    z.avail_out = (uInt)n;
    int ret = Z_OK, header = 0;
    size_t pos = pl->idat0;
    while (pos < pl->idat1 && ret == Z_OK) {
        Chunk c;
        chunk_next(buf, pl->idat1, &pos, &c); /* fast_plan walked these */
        /* libpng inflates a row at a time, so a match reaching further back
         * than the window the stream declares fails there; in one call
         * zlib checks matches against all the output instead. Agree with
         * libpng by taking only streams whose window covers the image. */
        if (!header && c.len) {
            int cinfo = c.data[0] >> 4; /* the window is 256 << cinfo bytes */
            header = 1;
            if (cinfo < 7 && ((size_t)256 << cinfo) < n)
                break;
        }
        z.next_in = (Bytef *)(uintptr_t)c.data;
        z.avail_in = c.len;
        ret = inflate(&z, pos == pl->idat1 ? Z_FINISH : Z_NO_FLUSH);
        if (ret == Z_BUF_ERROR && c.len == 0)
            ret = Z_OK; /* an empty IDAT gives zlib nothing to do */
        if (ret == Z_OK && z.avail_in)
            break; /* output full before the input: not an exact fit */
    }
    int ok = ret == Z_STREAM_END && z.avail_out == 0 && z.avail_in == 0 && pos == pl->idat1;
    inflateEnd(&z);
    return ok;
}

static uint8_t paeth(int a, int b, int c) {
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return (uint8_t)(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

/* Undoes filter type t of row (n bytes, bpp bytes a pixel) in place; prev
 * is the row above, unfiltered (zeros for the first). 0, or -1 for an
 * unknown type. */
static int unfilter(int t, uint8_t *row, const uint8_t *prev, size_t n, size_t bpp) {
    size_t i;
    switch (t) {
    case 0:
        return 0;
    case 1:
        for (i = bpp; i < n; i++)
            row[i] = (uint8_t)(row[i] + row[i - bpp]);
        return 0;
    case 2:
        for (i = 0; i < n; i++)
            row[i] = (uint8_t)(row[i] + prev[i]);
        return 0;
    case 3:
        for (i = 0; i < bpp; i++)
            row[i] = (uint8_t)(row[i] + (prev[i] >> 1));
        for (; i < n; i++)
            row[i] = (uint8_t)(row[i] + ((row[i - bpp] + prev[i]) >> 1));
        return 0;
    case 4:
        for (i = 0; i < bpp; i++)
            row[i] = (uint8_t)(row[i] + prev[i]);
        for (; i < n; i++)
            row[i] = (uint8_t)(row[i] + paeth(row[i - bpp], prev[i], prev[i - bpp]));
        return 0;
    default:
        return -1;
    }
}

int img_png_fast(const void *buf, size_t len, const ImgLimits *lim, int oc, ImgGray *out) {
    ImgLimits def = IMG_LIMITS_DEFAULT;
    Plan pl;
    if (!lim)
        lim = &def;
    if ((oc != 1 && oc != 3) || !buf || !fast_plan(buf, len, lim, &pl))
        return 0;
    size_t stride = pl.w * (size_t)pl.channels, raw = (stride + 1) * pl.h;
    size_t px = pl.w * pl.h * (size_t)oc;
    uint64_t need = raw + stride + px; /* filtered rows, a zero row, the result */
    char err[SM_ERRMAX];
    if (img_reserve(lim, "png", need, err) < 0)
        return 0;
    uint8_t *rows = malloc(raw + stride), *dst = malloc(px);
    int ok = rows && dst && fast_inflate(buf, &pl, rows, raw);
    const uint8_t *prev = rows + raw; /* the zero row above the first */
    if (ok)
        memset(rows + raw, 0, stride);
    for (size_t y = 0; ok && y < pl.h; y++) {
        uint8_t *row = rows + y * (stride + 1) + 1;
        if (!(ok = unfilter(row[-1], row, prev, stride, (size_t)pl.channels) == 0))
            break;
        img_png_row_out(row, pl.w, pl.channels, 8, oc, dst + y * pl.w * (size_t)oc);
        prev = row;
    }
    free(rows);
    img_release(lim, need);
    if (!ok) {
        free(dst);
        return 0;
    }
    *out = (ImgGray){(int)pl.w, (int)pl.h, oc, dst};
    return 1;
}
