/*
 * mkmodel.c — writes a model file with seeded random weights for the daemon
 * integration tests: the serving architecture (28x28 input, dense
 * 128,128,128), Glorot-uniform weights drawn from SEED, the default margin
 * and threshold. Two seeds give two models with different fingerprints, which
 * is what the model-change and --reembed tests need; no training involved, so
 * it runs in milliseconds. An optional third argument gives other layer
 * widths ("128,64": a 64-d embedding), for a model change that changes the
 * embedding size, or a layer list ("cnn", "conv8k3,relu,fc16": network.h). A
 * fourth, a JSON object, is recorded as the training summary (a validation
 * AUC, say).
 *
 * usage: mkmodel OUT SEED [WIDTHS|ARCH [TRAINING]]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siamese/common.h"
#include "siamese/model.h"

/* "128,64" (layer widths, each dense + ReLU, dropout 0.1 between) or a layer
 * list (network.h) into arch; -1 with err filled when it is neither. */
static int parse_arch(const char *s, ModelArch *arch, char *err) {
    char spec[NET_MAX_SPEC] = "";
    if (*s < '0' || *s > '9')
        return net_parse(s, 28, 28, 1, arch, err);
    size_t len = 0;
    for (const char *p = s; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > NET_MAX_WIDTH || (*end && *end != ',') ||
            len + 32 > sizeof spec)
            return sm_err(err, -EINVAL, "WIDTHS must be like 128,64, not '%s'", s);
        len += (size_t)snprintf(spec + len, sizeof spec - len, "%sfc%ld,relu", len ? "," : "", v);
        p = *end ? end + 1 : end;
        if (*p)
            len += (size_t)snprintf(spec + len, sizeof spec - len, ",drop0.1");
    }
    return net_parse(spec, 28, 28, 1, arch, err);
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
    ModelArch arch;
    if (parse_arch(argc >= 4 ? argv[3] : "mlp", &arch, err) < 0) {
        fprintf(stderr, "mkmodel: %s\n", err);
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
