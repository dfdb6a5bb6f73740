/*
 * idx.c — the IDX container of MNIST and Fashion-MNIST, unsigned-byte flavour.
 *
 * Layout: a big-endian u32 magic 0x000008NN (two zero bytes, type 0x08 = u8,
 * NN = number of dimensions), NN big-endian u32 sizes, then exactly the product
 * of the sizes in bytes. Only 1 dimension (labels) and 3 (images: n, h, w) are
 * accepted, because nothing else in siamesed reads IDX.
 *
 * Files are untrusted: the header is checked and the declared size compared
 * with the caller's cap before anything is allocated, and the payload must be
 * exactly as long as declared. idx_read() goes through zlib's gzFile, which
 * sniffs the gzip magic (1f 8b) itself and reads anything else as raw bytes, so
 * a compressed file without a .gz suffix (or a raw one with it) still loads.
 * idx_parse() is the in-memory twin, and the natural fuzz target.
 */
#include "siamese/dataset.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "siamese/common.h"

#define IDX_TYPE_U8 0x08
#define IDX_MAX_DIMS 3

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Checks the 4-byte magic and returns the dimension count in *ndim. */
static int idx_check_magic(const uint8_t m[4], int *ndim, char *err) {
    if (m[0] != 0 || m[1] != 0)
        return sm_err(err, -EINVAL, "not an IDX file (magic %02x%02x%02x%02x)", m[0], m[1], m[2],
                      m[3]);
    if (m[2] != IDX_TYPE_U8)
        return sm_err(err, -EINVAL, "IDX element type 0x%02x unsupported (only 0x08, u8)", m[2]);
    if (m[3] != 1 && m[3] != 3)
        return sm_err(err, -EINVAL, "IDX with %d dimensions unsupported (1 or 3)", m[3]);
    *ndim = m[3];
    return 0;
}

/* Decodes ndim big-endian sizes from p into dims[] and the payload size into
 * *total, refusing sizes that do not fit an int, zero-sized images, products
 * that overflow and payloads over max_bytes. */
static int idx_check_dims(const uint8_t *p, int ndim, size_t max_bytes, int dims[3], size_t *total,
                          char *err) {
    size_t t = 1;
    for (int i = 0; i < ndim; i++) {
        uint32_t d = be32(p + 4 * i);
        if (d > INT_MAX)
            return sm_err(err, -EFBIG, "IDX dimension %d is %u, too large", i, d);
        if (d == 0 && ndim == 3)
            return sm_err(err, -EINVAL, "IDX image file with a zero dimension");
        if (__builtin_mul_overflow(t, (size_t)d, &t))
            return sm_err(err, -EFBIG, "IDX declared size overflows");
        dims[i] = (int)d;
    }
    if (t > max_bytes)
        return sm_err(err, -EFBIG, "IDX declares %zu bytes, more than the %zu allowed", t,
                      max_bytes);
    *total = t;
    return 0;
}

int idx_parse(const uint8_t *buf, size_t len, size_t max_bytes, int *ndim, int dims[3],
              uint8_t **data, char *err) {
    int nd = 0, rc;
    size_t total = 0;
    if (len < 4)
        return sm_err(err, -EINVAL, "IDX truncated: %zu bytes, no header", len);
    if ((rc = idx_check_magic(buf, &nd, err)) < 0)
        return rc;
    size_t hdr = 4 + 4 * (size_t)nd;
    if (len < hdr)
        return sm_err(err, -EINVAL, "IDX truncated in its dimensions");
    if ((rc = idx_check_dims(buf + 4, nd, max_bytes, dims, &total, err)) < 0)
        return rc;
    if (len - hdr < total)
        return sm_err(err, -EINVAL, "IDX truncated: %zu of %zu data bytes", len - hdr, total);
    if (len - hdr > total)
        return sm_err(err, -EINVAL, "IDX has %zu bytes after its data", len - hdr - total);
    uint8_t *p = malloc(total ? total : 1);
    if (!p)
        return sm_err(err, -ENOMEM, "IDX: out of memory for %zu bytes", total);
    memcpy(p, buf + hdr, total);
    for (int i = nd; i < IDX_MAX_DIMS; i++)
        dims[i] = 0;
    *ndim = nd;
    *data = p;
    return 0;
}

/* Reads exactly len bytes from f. Returns 0, or -EINVAL when the stream ends
 * early or is corrupt (the message says which). */
static int gz_read_exact(gzFile f, void *buf, size_t len, char *err) {
    uint8_t *p = buf;
    while (len > 0) {
        unsigned chunk = len > (1u << 30) ? (1u << 30) : (unsigned)len;
        int r = gzread(f, p, chunk);
        if (r <= 0) {
            int zerr = Z_OK;
            const char *msg = gzerror(f, &zerr);
            if (r < 0 || zerr != Z_OK)
                return sm_err(err, zerr == Z_ERRNO ? -EIO : -EINVAL, "read failed: %s", msg);
            return sm_err(err, -EINVAL, "IDX truncated: %zu bytes missing", len);
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

/* After the payload the stream must end cleanly: no extra byte, and for gzip a
 * trailer whose CRC and length check out (zlib verifies them on this read). */
static int gz_expect_end(gzFile f, char *err) {
    uint8_t extra;
    int r = gzread(f, &extra, 1);
    int zerr = Z_OK;
    const char *msg = gzerror(f, &zerr);
    if (r < 0 || zerr != Z_OK)
        return sm_err(err, zerr == Z_ERRNO ? -EIO : -EINVAL, "read failed: %s", msg);
    if (r > 0)
        return sm_err(err, -EINVAL, "IDX has bytes after its data");
    return 0;
}

static int idx_read_stream(gzFile f, size_t max_bytes, int *ndim, int dims[3], uint8_t **data,
                           char *err) {
    uint8_t hdr[4 + 4 * IDX_MAX_DIMS], *p = NULL;
    int nd = 0, rc;
    size_t total = 0;
    if ((rc = gz_read_exact(f, hdr, 4, err)) < 0)
        return rc;
    if ((rc = idx_check_magic(hdr, &nd, err)) < 0)
        return rc;
    if ((rc = gz_read_exact(f, hdr + 4, 4 * (size_t)nd, err)) < 0)
        return rc;
    if ((rc = idx_check_dims(hdr + 4, nd, max_bytes, dims, &total, err)) < 0)
        return rc;
    p = malloc(total ? total : 1);
    if (!p)
        return sm_err(err, -ENOMEM, "out of memory for %zu bytes", total);
    if ((rc = gz_read_exact(f, p, total, err)) < 0 || (rc = gz_expect_end(f, err)) < 0)
        goto out;
    for (int i = nd; i < IDX_MAX_DIMS; i++)
        dims[i] = 0;
    *ndim = nd;
    *data = p;
    p = NULL;
out:
    free(p);
    return rc;
}

int idx_read(const char *path, size_t max_bytes, int *ndim, int dims[3], uint8_t **data,
             char *err) {
    char why[SM_ERRMAX] = "";
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return sm_err(err, errno ? -errno : -ENOMEM, "%s: cannot open: %s", path,
                      errno ? strerror(errno) : "out of memory");
    gzbuffer(f, 1u << 17); /* the 8 KiB default makes 47 MB of MNIST needlessly slow */
    int rc = idx_read_stream(f, max_bytes, ndim, dims, data, why);
    gzclose_r(f);
    if (rc < 0)
        return sm_err(err, rc, "%s: %s", path, why);
    return 0;
}
