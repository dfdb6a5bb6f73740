/*
 * fuzz_png.c — the two PNG decoders against each other, on files whose
 * CRCs are right. fuzz_img sees the bytes of whole files, and a mutation
 * almost always breaks a CRC, which both decoders refuse at once; here the
 * input describes the chunks and the target writes them with their CRCs, so
 * the fuzzer reaches the zlib streams, the filters and the chunk order.
 *
 * Input: 6 bytes of IHDR fields (width and height, each 1..64 from a byte;
 * bit depth, colour type, interlace, and a byte whose bit 0 asks for one
 * chunk CRC to be broken), then chunks until the input ends, each as a
 * 4-byte type, a 2-byte big-endian length and that many bytes of data (cut
 * at the end of the input). A type of "ZZZZ" instead compresses its data with
 * zlib into an IDAT, so that valid streams are one mutation away, and "ZZZa"
 * to "ZZZh" do the same with the zlib header declaring a window of 256 << 0..7
 * bytes (libpng refuses matches beyond it).
 *
 * Checked: whatever img_png_fast() takes, libpng decodes to the same pixels
 * (gray and colour), and img_decode() gives libpng's answer, error or not.
 */
#include "fuzz.h"
#include "siamese/common.h"
#include "siamese/img.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct {
    uint8_t *p;
    size_t len, cap;
} Out;

static void put(Out *o, const void *d, size_t n) {
    if (o->len + n > o->cap) {
        o->cap = (o->len + n) * 2 + 256;
        o->p = realloc(o->p, o->cap);
        FUZZ_CHECK(o->p);
    }
    memcpy(o->p + o->len, d, n);
    o->len += n;
}

static void put32(Out *o, uint32_t v) {
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(o, b, 4);
}

static void chunk(Out *o, const char *type, const uint8_t *d, size_t n, int bad_crc) {
    put32(o, (uint32_t)n);
    size_t at = o->len;
    put(o, type, 4);
    if (n)
        put(o, d, n);
    put32(o, (uint32_t)crc32(0, o->p + at, (uInt)(n + 4)) ^ (uint32_t)bad_crc);
}

static void same_answers(const uint8_t *buf, size_t len, int oc) {
    const ImgLimits lim = {256, 256, 1u << 16, 16u << 20, NULL};
    ImgGray f, l, d;
    char e1[SM_ERRMAX] = "", e2[SM_ERRMAX] = "";
    int rl = img_png_libpng(buf, len, &lim, oc, &l, e1);
    if (img_png_fast(buf, len, &lim, oc, &f)) {
        FUZZ_CHECK(rl == 0 && f.w == l.w && f.h == l.h && f.c == l.c);
        FUZZ_CHECK(memcmp(f.px, l.px, (size_t)f.w * (size_t)f.h * (size_t)oc) == 0);
        img_gray_free(&f);
    }
    int rd = img_decode_c(buf, len, &lim, oc, &d, e2);
    FUZZ_CHECK(rd == rl);
    FUZZ_CHECK(rd < 0 ? strcmp(e1, e2) == 0
                      : d.w == l.w && d.h == l.h &&
                            memcmp(d.px, l.px, (size_t)d.w * (size_t)d.h * (size_t)oc) == 0);
    img_gray_free(&l);
    img_gray_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 6)
        return 0;
    Out o = {0};
    put(&o, "\x89PNG\r\n\x1a\n", 8);
    uint8_t ihdr[13] = {0,       0,       0, (uint8_t)(1 + data[0] % 64),
                        0,       0,       0, (uint8_t)(1 + data[1] % 64),
                        data[2], data[3], 0, 0,
                        data[4]};
    int break_one = data[5] & 1, broken = 0;
    chunk(&o, "IHDR", ihdr, 13, 0);
    size_t pos = 6;
    while (size - pos >= 6) {
        char type[5] = {0};
        memcpy(type, data + pos, 4);
        size_t n = (size_t)data[pos + 4] << 8 | data[pos + 5];
        pos += 6;
        n = n < size - pos ? n : size - pos;
        int bad = break_one && !broken && (data[pos - 1] & 0x80) ? (broken = 1) : 0;
        if (!memcmp(type, "ZZZ", 3) && (type[3] == 'Z' || (type[3] >= 'a' && type[3] <= 'h'))) {
            uLongf zn = compressBound((uLong)n);
            uint8_t *z = malloc(zn + 1);
            FUZZ_CHECK(z && compress2(z, &zn, data + pos, (uLong)n, 6) == Z_OK);
            if (type[3] != 'Z') { /* another window; FLG keeps the header a multiple of 31 */
                z[0] = (uint8_t)((type[3] - 'a') << 4 | 8);
                z[1] = (uint8_t)((31 - (z[0] * 256u) % 31) % 31);
            }
            chunk(&o, "IDAT", z, zn, bad);
            free(z);
        } else {
            chunk(&o, type, data + pos, n, bad);
        }
        pos += n;
    }
    same_answers(o.p, o.len, 1);
    same_answers(o.p, o.len, 3);
    free(o.p);
    return 0;
}
