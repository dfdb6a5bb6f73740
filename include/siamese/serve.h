/*
 * serve.h — the daemon's entry points, called by main() with the merged
 * settings: serve_run() loads the model, opens the store and answers HTTP
 * until SIGTERM/SIGINT; serve_reembed() rebuilds every stored embedding with
 * the configured model (after a model change) and exits.
 */
#ifndef SIAMESE_SERVE_H
#define SIAMESE_SERVE_H

#include "siamese/config.h"

/* Start-up checks that come before anything is loaded or trained (the
 * caller runs it first in serve mode): reads api_key_file, creating it with
 * a random key if missing and api_keys is empty (mode 0600; the key is logged
 * only then), and adds its key to cfg->api_keys; then refuses (-EPERM, err naming --api-keys) to
 * serve an address other than loopback with no key unless allow_anonymous. */
int serve_prepare(Config *cfg, char *err);

/* Serves until SIGTERM/SIGINT; cfg as serve_prepare() left it. */
int serve_run(const Config *cfg, char *err);
int serve_reembed(const Config *cfg, char *err);

#endif
