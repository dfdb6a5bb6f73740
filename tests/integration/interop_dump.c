/*
 * interop_dump.c — writes what the numpy interop check needs: a model file
 * (seeded random weights, a non-trivial architecture) and siamesed's own
 * embedding of one image, one float per line.
 *
 * usage: interop_dump MODEL_OUT IMAGE EMBEDDING_OUT
 */
#include <stdio.h>

#include "siamese/blas.h"
#include "siamese/common.h"
#include "siamese/img.h"
#include "siamese/model.h"

int main(int argc, char **argv) {
    char err[SM_ERRMAX];
    if (argc != 4 || blas_boot(argv, err) < 0) {
        fprintf(stderr, "usage: interop_dump MODEL_OUT IMAGE EMBEDDING_OUT\n");
        return 2;
    }
    const ModelArch arch = {28, 28, 3, {128, 96, 64}, 0.1f};
    Model *m = NULL;
    float x[784], e[64];
    int rc = model_create(&arch, 2024, &m, err);
    if (rc == 0) {
        /* Non-zero biases so the check covers them too. */
        float *p = model_params(m);
        for (int l = 0; l < arch.n_layers; l++) {
            float *b =
                p + model_layer_offset(m, l) + (size_t)arch.dims[l] * (l ? arch.dims[l - 1] : 784);
            for (int i = 0; i < arch.dims[l]; i++)
                b[i] = 0.01f * (float)((i % 7) - 2);
        }
        rc = model_save(m, argv[1], err);
    }
    if (rc == 0)
        rc = img_load_file(argv[2], NULL, 28, 28, x, err);
    if (rc == 0)
        rc = model_embed(m, x, 1, e) < 0 ? sm_err(err, -ENOMEM, "out of memory") : 0;
    FILE *f = rc == 0 ? fopen(argv[3], "w") : NULL;
    if (rc == 0 && !f)
        rc = sm_err(err, -EIO, "cannot write %s", argv[3]);
    for (int i = 0; f && i < 64; i++)
        fprintf(f, "%.9g\n", e[i]);
    if (f && fclose(f) != 0)
        rc = sm_err(err, -EIO, "cannot write %s", argv[3]);
    model_free(m);
    if (rc < 0) {
        fprintf(stderr, "interop_dump: %s\n", err);
        return 1;
    }
    return 0;
}
