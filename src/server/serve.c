/* serve.c: the daemon lands with the next issue. */
#include "siamese/serve.h"

#include "siamese/common.h"

int serve_run(const Config *cfg, char *err) {
    (void)cfg;
    return sm_err(err, -ENOSYS, "serve: not built yet");
}

int serve_reembed(const Config *cfg, char *err) {
    (void)cfg;
    return sm_err(err, -ENOSYS, "reembed: not built yet");
}
