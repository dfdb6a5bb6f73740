/*
 * config_value.h — private to the config module (src/config).
 *
 * config.c holds the table of settings, config_read.c the readers that find
 * a (key, text) pair in a file, the environment or the command line;
 * config_value.c knows each value type: how its text is checked and stored
 * into the Config field an entry points at, how it is written back as text,
 * and how its bounds read in --help. An entry is plain data so the table stays one list.
 */
#ifndef SIAMESE_CONFIG_VALUE_H
#define SIAMESE_CONFIG_VALUE_H

#include <stddef.h>

#include "siamese/config.h"

typedef enum {
    CT_STRING,  /* char *; min..max = length; no control characters */
    CT_PATH,    /* the same, shown as PATH */
    CT_INT,     /* int in [min, max] */
    CT_U64,     /* uint64_t, any value */
    CT_SIZE,    /* size_t bytes in [min, max]; K/M/G suffixes */
    CT_FLOAT,   /* double in [min, max], ends open with CF_MIN_OPEN / CF_MAX_OPEN */
    CT_BOOL,    /* bool */
    CT_ENUM,    /* int-sized C enum; words[i] is value i */
    CT_ADDR,    /* ConfigAddr; port in [min, max] */
    CT_INTLIST, /* int[CONFIG_MAX_HIDDEN] + count at off_n; items in [min, max] */
    CT_KEYS,    /* ConfigApiKey * + count at off_n */
} ConfigType;

enum { CF_SECRET = 1, CF_MIN_OPEN = 2, CF_MAX_OPEN = 4 };

typedef struct {
    const char *name;
    ConfigType type;
    size_t off;               /* target field in Config */
    size_t off_n;             /* lists: their int count field */
    const char *def;          /* default, in config file syntax */
    double min, max;          /* value, item or port bounds; string length */
    int n_min, n_max;         /* lists: number of items */
    const char *const *words; /* enums: NULL-terminated */
    unsigned flags;
    const char *section; /* --help heading that starts at this entry */
    const char *help;
} ConfigEntry;

/* Text built into a fixed buffer: len counts what was asked for, so
 * len >= size means it was truncated (the buffer stays NUL-terminated). */
typedef struct {
    char *p;
    size_t size, len;
} ConfigOut;

void config_put(ConfigOut *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Checks text v against e and, only if it is valid, replaces the field (the
 * old value freed). Otherwise returns -EINVAL/-ERANGE/-ENOMEM with the reason,
 * without location, in why (SM_ERRMAX bytes); secrets are never echoed. */
int configval_set(Config *cfg, const ConfigEntry *e, const char *v, char *why);
/* Frees what the field owns (not the struct); leaves dangling pointers. */
void configval_free(Config *cfg, const ConfigEntry *e);
/* The value in canonical text (secrets redacted); tolerant of a hand-filled cfg. */
void configval_format(ConfigOut *o, const Config *cfg, const ConfigEntry *e);
/* The bounds for --help: "1..256", "(0, 10]", "1..8 items, each 1..4096". */
void configval_bounds(ConfigOut *o, const ConfigEntry *e);
/* 0 if key (klen bytes) is a valid API key: 16..256 characters of
 * [A-Za-z0-9._~+/=-]; -EINVAL with the reason (never the key) otherwise. */
int configval_key_check(const char *key, size_t klen, char *why);
/* A printable prefix of untrusted text (buf of size >= 8 bytes), for errors. */
const char *config_shown(const char *v, char *buf, size_t size);

#endif
