/*
 * fuzz_idx.c — fuzz target for IDX files (MNIST's container): idx_parse() on
 * the raw bytes, and idx_read() of the same bytes through an in-memory file,
 * the path a dataset file takes (zlib's gzFile, which inflates gzip and
 * passes anything else through, then the same header checks). For input
 * without the gzip magic the two readers must agree: same verdict, same
 * dimensions, same bytes.
 *
 * max_bytes is 1 MiB, so that a declared size is refused before anything
 * that large is allocated. Beyond crashes, the target checks dataset.h's
 * promises: documented error codes with a message and nothing returned on
 * failure; on success 1 or 3 dimensions (unused ones zero) whose product is
 * the payload, which idx_parse() returns byte for byte.
 */
#include "fuzz.h"
#include "siamese/common.h"
#include "siamese/dataset.h"

#include <stdlib.h>
#include <string.h>

#define FUZZ_IDX_MAX_BYTES ((size_t)1 << 20)

/* Checks a success and returns the payload size the dimensions declare. */
static size_t check_dims(int ndim, const int dims[3]) {
    FUZZ_CHECK(ndim == 1 || ndim == 3);
    size_t total = 1;
    for (int i = 0; i < 3; i++) {
        if (i >= ndim)
            FUZZ_CHECK(dims[i] == 0);
        else
            FUZZ_CHECK(dims[i] > 0 || (ndim == 1 && dims[i] == 0));
        if (i < ndim)
            total *= (size_t)dims[i];
    }
    FUZZ_CHECK(total <= FUZZ_IDX_MAX_BYTES);
    return total;
}

/* One reader's outcome, for comparing the two. */
typedef struct {
    int rc, ndim, dims[3];
    uint8_t *data;
    size_t total;
} IdxResult;

static void check_result(IdxResult *r, const char *err) {
    if (r->rc < 0) {
        FUZZ_CHECK(r->rc == -EINVAL || r->rc == -EFBIG || r->rc == -ENOMEM || r->rc == -EIO);
        FUZZ_CHECK(r->data == NULL && err[0] != 0);
        return;
    }
    FUZZ_CHECK(r->rc == 0 && r->data != NULL);
    r->total = check_dims(r->ndim, r->dims);
    /* Every byte of the payload is read, so a short buffer shows under ASan. */
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < r->total; i++)
        sink ^= r->data[i];
    (void)sink;
}

static IdxResult fuzz_parse(const uint8_t *data, size_t size) {
    IdxResult r = {.ndim = -1, .dims = {-1, -1, -1}};
    char err[SM_ERRMAX] = "";
    r.rc = idx_parse(data, size, FUZZ_IDX_MAX_BYTES, &r.ndim, r.dims, &r.data, err);
    check_result(&r, err);
    if (r.rc == 0) {
        size_t hdr = 4 + 4 * (size_t)r.ndim;
        FUZZ_CHECK(size == hdr + r.total);
        FUZZ_CHECK(r.total == 0 || memcmp(r.data, data + hdr, r.total) == 0);
    }
    return r;
}

static IdxResult fuzz_read(const uint8_t *data, size_t size) {
    IdxResult r = {.ndim = -1, .dims = {-1, -1, -1}};
    char err[SM_ERRMAX] = "";
    r.rc = idx_read(fuzz_memfile(data, size), FUZZ_IDX_MAX_BYTES, &r.ndim, r.dims, &r.data, err);
    check_result(&r, err);
    return r;
}

/* Raw input (no gzip magic) must get the same verdict and bytes from both readers. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    IdxResult p = fuzz_parse(data, size);
    IdxResult r = fuzz_read(data, size);
    if (!(size >= 2 && data[0] == 0x1f && data[1] == 0x8b)) {
        FUZZ_CHECK((p.rc == 0) == (r.rc == 0));
        if (p.rc == 0) {
            FUZZ_CHECK(p.ndim == r.ndim && memcmp(p.dims, r.dims, sizeof p.dims) == 0);
            FUZZ_CHECK(p.total == 0 || memcmp(p.data, r.data, p.total) == 0);
        }
    }
    free(p.data);
    free(r.data);
    return 0;
}
