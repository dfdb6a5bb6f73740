/*
 * interop_dump.c — writes what the numpy interop check needs: a model file
 * (seeded random weights, a non-trivial architecture) and siamesed's own
 * embedding of one image, one float per line.
 *
 * usage: interop_dump MODEL_OUT IMAGE EMBEDDING_OUT [ARCH]   (a 28x28x1 layer list)
 */
#include <stdio.h>

#include "siamese/blas.h"
#include "siamese/common.h"
#include "siamese/img.h"
#include "siamese/model.h"

int main(int argc, char **argv) {
    char err[SM_ERRMAX];
    if (argc < 4 || argc > 5 || blas_boot(argv, err) < 0) {
        fprintf(stderr, "usage: interop_dump MODEL_OUT IMAGE EMBEDDING_OUT [ARCH]\n");
        return 2;
    }
    ModelArch arch;
    Model *m = NULL;
    float x[784], e[MODEL_MAX_WIDTH];
    int rc = net_parse(argc == 5 ? argv[4] : "fc128,relu,drop0.1,fc96,relu,drop0.1,fc64,relu", 28,
                       28, 1, &arch, err);
    if (rc == 0)
        rc = model_create(&arch, 2024, &m, err);
    if (rc == 0) {
        /* Non-zero biases so the check covers them too. */
        float *p = model_params(m);
        const NetPlan *plan = model_plan(m);
        for (int l = 0; l < arch.n_layers; l++)
            if (arch.layer[l].kind == NET_CONV || arch.layer[l].kind == NET_FC)
                for (int i = 0; i < arch.layer[l].n; i++)
                    p[plan->boff[l] + (size_t)i] = 0.01f * (float)((i % 7) - 2);
        rc = model_save(m, argv[1], err);
    }
    if (rc == 0)
        rc = img_load_file(argv[2], NULL, 28, 28, x, err);
    if (rc == 0)
        rc = model_embed(m, x, 1, e) < 0 ? sm_err(err, -ENOMEM, "out of memory") : 0;
    FILE *f = rc == 0 ? fopen(argv[3], "w") : NULL;
    if (rc == 0 && !f)
        rc = sm_err(err, -EIO, "cannot write %s", argv[3]);
    for (int i = 0; f && i < model_embed_dim(m); i++)
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
