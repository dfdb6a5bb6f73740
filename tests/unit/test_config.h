/*
 * test_config.h — what the config executable's two files share (defined in
 * test_config.c): a temporary config file and config_parse() over an argument
 * list.
 */
#ifndef TEST_CONFIG_H
#define TEST_CONFIG_H

#include <check.h>

#include "siamese/config.h"

/* Writes text to a fresh temporary file; its path (static, reused). */
const char *test_config_write(const char *text);
/* config_parse over {"siamesed", args..., NULL} and a fake environment. */
int test_config_parse(const char *const *args, const char *const *env, Config *c, ConfigMode *m,
                      char *err);
#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

TCase *tcase_config_hints(void); /* test_config_hints.c */

#endif
