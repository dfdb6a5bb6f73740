/*
 * fuzz_config.c — fuzz target for config files: config_load_file() over the
 * defaults, reading the input through an in-memory file (the module reads
 * only from a path, and a memfd costs no disk).
 *
 * A file that loads is then put through the rest of the module: the
 * cross-field check, the JSON dump, and a round trip of every setting (api
 * keys excepted, which are never written back): config_format() must give
 * text that config_set() accepts on a fresh config and that formats back to
 * the same text, as config.h promises ("what the file syntax would accept
 * back"). Beyond crashes, the target checks documented error codes with a
 * message naming the file.
 */
#include "fuzz.h"
#include "siamese/common.h"
#include "siamese/config.h"

#include <stdlib.h>
#include <string.h>

static void check_round_trip(const Config *cfg) {
    Config back;
    char err[SM_ERRMAX] = "", text[4096], again[4096];
    FUZZ_CHECK(config_init(&back, err) == 0);
    for (size_t i = 0; i < config_n_keys(); i++) {
        const char *key = config_key(i);
        if (strcmp(key, "api_keys") == 0)
            continue;
        FUZZ_CHECK(config_format(cfg, key, text, sizeof text) == 0);
        int rc = config_set(&back, key, text, err);
        if (rc < 0)
            fuzz_fail(__FILE__, __LINE__, err);
        FUZZ_CHECK(config_format(&back, key, again, sizeof again) == 0);
        FUZZ_CHECK(strcmp(text, again) == 0);
    }
    config_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Config cfg;
    char err[SM_ERRMAX] = "";
    FUZZ_CHECK(config_init(&cfg, err) == 0);
    const char *path = fuzz_memfile(data, size);
    int rc = config_load_file(&cfg, path, err);
    if (rc < 0) {
        FUZZ_CHECK(rc == -EINVAL || rc == -ERANGE || rc == -ENOMEM || rc == -EFBIG);
        FUZZ_CHECK(strncmp(err, path, strlen(path)) == 0);
        config_free(&cfg);
        return 0;
    }
    FUZZ_CHECK(rc == 0);
    if (config_check(&cfg, err) < 0)
        FUZZ_CHECK(err[0] != 0);
    char *json = NULL;
    FUZZ_CHECK(config_dump_json(&cfg, &json, err) == 0 && json != NULL);
    free(json);
    check_round_trip(&cfg);
    config_free(&cfg);
    return 0;
}
