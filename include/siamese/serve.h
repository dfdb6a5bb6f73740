/*
 * serve.h — the daemon's entry points, called by main() with the merged
 * settings: serve_run() loads the model, opens the store and answers HTTP
 * until SIGTERM/SIGINT; serve_reembed() rebuilds every stored embedding with
 * the configured model (after a model change) and exits.
 */
#ifndef SIAMESE_SERVE_H
#define SIAMESE_SERVE_H

#include "siamese/config.h"

int serve_run(const Config *cfg, char *err);
int serve_reembed(const Config *cfg, char *err);

#endif
