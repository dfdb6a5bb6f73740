/*
 * fuzz_safetensors.c — fuzz target for the model file format: st_parse() on
 * arbitrary bytes and, when it accepts them, a walk over every tensor (each
 * float read, so AddressSanitizer sees any view that points outside its
 * block) and every lookup; then model_load() of the same bytes through an
 * in-memory file, which adds the model's own checks (metadata, layer
 * shapes, finite weights). Only accepted files reach model_load, so the
 * per-input file write costs nothing for the common, rejected input.
 *
 * Beyond crashes, the target checks safetensors.h's promises: documented
 * error codes with a message and no result on failure; on success tensors
 * with 0..ST_MAX_DIMS non-negative dimensions, 64-byte aligned data, sizes
 * that add up to at most the input, distinct names that st_find() returns,
 * and a 64-hex-digit fingerprint.
 */
#include "fuzz.h"
#include "siamese/common.h"
#include "siamese/model.h"
#include "siamese/safetensors.h"

#include <stdlib.h>
#include <string.h>

static void check_tensor(const StFile *f, int i, size_t input_len, uint64_t *total) {
    const StTensor *t = st_tensor(f, i);
    FUZZ_CHECK(t && t->name && t->name[0]);
    FUZZ_CHECK(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS);
    uint64_t count = 1;
    for (int d = 0; d < t->ndim; d++) {
        FUZZ_CHECK(t->shape[d] >= 0);
        FUZZ_CHECK(!__builtin_mul_overflow(count, (uint64_t)t->shape[d], &count));
    }
    FUZZ_CHECK(count <= input_len / sizeof(float));
    *total += count * sizeof(float);
    FUZZ_CHECK(((uintptr_t)t->data & 63) == 0);
    /* Reads every float; the sum itself is of no interest. */
    volatile float sink = 0.0f;
    for (uint64_t k = 0; k < count; k++)
        sink += t->data[k];
    (void)sink;
    FUZZ_CHECK(st_find(f, t->name) == t);
}

static void check_file(const StFile *f, size_t input_len) {
    int n = st_n_tensors(f);
    FUZZ_CHECK(n >= 0);
    FUZZ_CHECK(st_tensor(f, -1) == NULL && st_tensor(f, n) == NULL);
    uint64_t total = 0;
    for (int i = 0; i < n; i++)
        check_tensor(f, i, input_len, &total);
    FUZZ_CHECK(total <= input_len);
    const char *fp = st_fingerprint(f);
    FUZZ_CHECK(strlen(fp) == 64 && strspn(fp, "0123456789abcdef") == 64);
    FUZZ_CHECK(st_find(f, "__metadata__") == NULL);
    (void)st_meta(f, "fingerprint");
}

static void check_model(const uint8_t *data, size_t size) {
    Model *m = NULL;
    char err[SM_ERRMAX] = "";
    int rc = model_load(fuzz_memfile(data, size), &m, err);
    if (rc < 0) {
        FUZZ_CHECK(m == NULL && err[0] != 0);
        return;
    }
    FUZZ_CHECK(rc == 0 && m != NULL);
    const ModelArch *a = model_arch(m);
    FUZZ_CHECK(a->n_layers >= 1 && a->n_layers <= NET_MAX_LAYERS);
    FUZZ_CHECK(model_in_dim(m) == a->in_h * a->in_w * a->in_c);
    FUZZ_CHECK(model_embed_dim(m) >= 1);
    FUZZ_CHECK(strlen(model_fingerprint(m)) == 64);
    /* The layer list a file declares must survive a round trip through its
     * canonical spelling, and a small model must run. */
    ModelArch again;
    FUZZ_CHECK(net_parse(model_arch_spec(m), a->in_h, a->in_w, a->in_c, &again, err) == 0);
    FUZZ_CHECK(memcmp(&again, a, sizeof again) == 0);
    if (model_n_params(m) < (1u << 20) && model_in_dim(m) <= 4096) {
        float *x = calloc((size_t)model_in_dim(m), sizeof *x);
        float *e = malloc((size_t)model_embed_dim(m) * sizeof *e);
        FUZZ_CHECK(!x || !e || model_embed(m, x, 1, e) == 0);
        free(x), free(e);
    }
    model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char sentinel;
    StFile *f = (StFile *)(void *)&sentinel;
    char err[SM_ERRMAX] = "";
    int rc = st_parse(data, size, &f, err);
    if (rc < 0) {
        FUZZ_CHECK(rc == -EINVAL || rc == -EFBIG || rc == -ENOMEM || rc == -EBADMSG);
        FUZZ_CHECK(f == NULL && err[0] != 0);
        return 0;
    }
    FUZZ_CHECK(rc == 0 && f != NULL);
    check_file(f, size);
    st_free(f);
    check_model(data, size);
    return 0;
}
