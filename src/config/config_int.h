/*
 * config_int.h — private to the config module: what config_read.c (the
 * readers and --help) uses of the table that config.c owns.
 */
#ifndef SIAMESE_CONFIG_INT_H
#define SIAMESE_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "config_value.h"
#include "siamese/config.h"

/* The table, config_n_keys() entries (<= CONFIG_MAX_KEYS); an entry's index
 * (e - config_table) is its slot in Config.origin. */
extern const ConfigEntry *const config_table;

/* The entry named by the len bytes at name, or NULL. */
const ConfigEntry *config_find_key(const char *name, size_t len);
/* 1 if the len bytes at s spell key with '_' mapped to map and, when upper,
 * the letters upper-cased ("max-body", "MAX_BODY" for "max_body"). */
bool config_spelled(const char *key, const char *s, size_t len, bool upper, char map);
/* Sets e from text v and records src as its origin; on a bad value the error
 * reads "WHERE: 'value' reason" (secrets not echoed). */
int config_apply(Config *cfg, const ConfigEntry *e, const char *v, ConfigSource src,
                 const char *where, char *err);

/* How a name is spelled in a hint: key, --flag or SIAMESED_VARIABLE. */
typedef enum { HINT_KEY, HINT_FLAG, HINT_ENV } HintStyle;
/* out gets " (did you mean --listen?)" when a name is within a typo or two
 * of the n bytes at s, else "". */
void config_did_you_mean(const char *s, size_t n, HintStyle style, char *out, size_t size);

#endif
