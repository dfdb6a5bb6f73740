/*
 * mkmodel.c — writes a model file with seeded random weights for the daemon
 * integration tests: the serving architecture (28x28 input, dense
 * 128,128,128), Glorot-uniform weights drawn from SEED, the default margin
 * and threshold. Two seeds give two models with different fingerprints, which
 * is what the model-change and --reembed tests need; no training involved, so
 * it runs in milliseconds. An optional third argument gives other layer
 * widths ("128,64": a 64-d embedding), for a model change that changes the
 * embedding size. A fourth, a JSON object, is recorded as the training
 * summary (a validation AUC, say).
 *
 * usage: mkmodel OUT SEED [WIDTHS [TRAINING]]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siamese/common.h"
#include "siamese/model.h"

/* "128,64" into arch's layer widths; -1 unless 1..MODEL_MAX_LAYERS numbers. */
static int parse_widths(const char *s, ModelArch *arch) {
    char *end;
    arch->n_layers = 0;
    do {
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > MODEL_MAX_WIDTH || arch->n_layers == MODEL_MAX_LAYERS)
            return -1;
        arch->dims[arch->n_layers++] = (int)v;
        s = end + (*end == ',');
    } while (*end == ',');
    return *end ? -1 : 0;
}

int main(int argc, char **argv) {
    char err[SM_ERRMAX] = "", *end = NULL;
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: mkmodel OUT SEED [WIDTHS [TRAINING]]\n");
        return 2;
    }
    errno = 0;
    unsigned long long seed = strtoull(argv[2], &end, 10);
    if (errno || !*argv[2] || *end) {
        fprintf(stderr, "mkmodel: SEED must be a decimal integer, not '%s'\n", argv[2]);
        return 2;
    }
    ModelArch arch = {28, 28, 3, {128, 128, 128}, 0.1f};
    if (argc >= 4 && parse_widths(argv[3], &arch) < 0) {
        fprintf(stderr, "mkmodel: WIDTHS must be like 128,64, not '%s'\n", argv[3]);
        return 2;
    }
    Model *m = NULL;
    int rc = model_create(&arch, (uint64_t)seed, &m, err);
    if (rc == 0 && argc == 5)
        rc = model_set_training(m, argv[4], err);
    if (rc == 0)
        rc = model_save(m, argv[1], err);
    model_free(m);
    if (rc < 0) {
        fprintf(stderr, "mkmodel: %s\n", err);
        return 1;
    }
    return 0;
}
