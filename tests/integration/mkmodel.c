/*
 * mkmodel.c — writes a model file with seeded random weights for the daemon
 * integration tests: the serving architecture (28x28 input, dense
 * 128,128,128), Glorot-uniform weights drawn from SEED, the default margin
 * and threshold. Two seeds give two models with different fingerprints, which
 * is what the model-change and --reembed tests need; no training involved, so
 * it runs in milliseconds.
 *
 * usage: mkmodel OUT SEED
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "siamese/common.h"
#include "siamese/model.h"

int main(int argc, char **argv) {
    char err[SM_ERRMAX] = "", *end = NULL;
    if (argc != 3) {
        fprintf(stderr, "usage: mkmodel OUT SEED\n");
        return 2;
    }
    errno = 0;
    unsigned long long seed = strtoull(argv[2], &end, 10);
    if (errno || !*argv[2] || *end) {
        fprintf(stderr, "mkmodel: SEED must be a decimal integer, not '%s'\n", argv[2]);
        return 2;
    }
    const ModelArch arch = {28, 28, 3, {128, 128, 128}, 0.1f};
    Model *m = NULL;
    int rc = model_create(&arch, (uint64_t)seed, &m, err);
    if (rc == 0)
        rc = model_save(m, argv[1], err);
    model_free(m);
    if (rc < 0) {
        fprintf(stderr, "mkmodel: %s\n", err);
        return 1;
    }
    return 0;
}
