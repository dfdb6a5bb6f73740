/*
 * config.h — siamesed's settings: one table, three sources, one struct.
 *
 * Every setting is one entry of a declarative table in config.c: its name,
 * type, bounds, default (as text, parsed like any other value) and the field
 * of the plain Config struct below that it fills. The same entry serves
 *   - the config file:  `max_body 16M`         (key "max_body")
 *   - the command line: `--max-body 16M` or `--max-body=16M`
 *   - the environment:  `SIAMESED_MAX_BODY=16M`
 * and generates the --help text. config/siamesed.conf documents every key and
 * sets each to its default; a unit test keeps it in step with the table.
 *
 * Precedence, lowest first:
 *     built-in defaults < config file (--config FILE) < environment < command line
 * Within one source a key may appear only once (a duplicate is an error).
 *
 * Config file: one "key value" per line; '#' starts a comment (at the start of
 * a line or after the value); blank lines are ignored. A value is one token,
 * or a double-quoted string (needed for empty values, spaces or '#'; \" and \\
 * are its only escapes). Relative paths are relative to the working directory,
 * not to the file. Unknown keys, duplicate keys and malformed or out-of-range
 * values are errors naming the file and line: "siamesed.conf:12: unknown key
 * 'lissten'". Unknown --flags and unknown SIAMESED_* environment variables
 * are errors too (SIAMESED_BLAS_KERNEL is the table key "blas_kernel": the
 * BLAS module reads that variable itself, before main() parses the rest).
 *
 * Types: string; path; int (min..max); size (bytes, optional K/M/G suffix,
 * powers of 1024); float (bounds open or closed); bool (yes/no, true/false,
 * on/off, 1/0, any case); enum (a fixed list of words); host:port (IPv4,
 * [IPv6] or a host name, then a port; ":port" alone is every interface,
 * host ""); lists, comma-separated: `hidden`
 * ("128,128,128") and `api_keys` ("KEY:read,KEY:write").
 *
 * Modes are not settings: the command line holds at most one of --train,
 * --eval, --reembed, --info [MODEL], --help (or -h), --version; none means
 * serve. `--info MODEL` is `--info --model MODEL`.
 */
#ifndef SIAMESE_CONFIG_H
#define SIAMESE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "siamese/log.h"

#define CONFIG_MAX_HIDDEN 8 /* fits a layer list (checked in config.c) */
#define CONFIG_MAX_API_KEYS 256
#define CONFIG_MAX_KEYS 64        /* room in Config.origin; the table is smaller */
#define CONFIG_MAX_FILE (1 << 20) /* a config file larger than this is refused */

typedef enum {
    CONFIG_MODE_SERVE,     /* no mode flag: run the HTTP daemon */
    CONFIG_MODE_TRAIN,     /* --train */
    CONFIG_MODE_EVAL,      /* --eval */
    CONFIG_MODE_REEMBED,   /* --reembed */
    CONFIG_MODE_HELP,      /* --help, -h */
    CONFIG_MODE_VERSION,   /* --version */
    CONFIG_MODE_INFO,      /* --info [MODEL]: MODEL sets `model` */
    CONFIG_MODE_ENROLL,    /* --enroll: the images of `data` into `db` */
    CONFIG_MODE_CALIBRATE, /* --calibrate: threshold and operating points on `data` */
    CONFIG_MODE_AUDIT,     /* --audit: samples of `data` whose label the neighbours doubt */
} ConfigMode;

typedef enum { CONFIG_OPT_RMSPROP, CONFIG_OPT_ADAM } ConfigOptimizer;
typedef enum { CONFIG_LR_CONSTANT, CONFIG_LR_COSINE } ConfigLrSchedule;
typedef enum {
    CONFIG_PAIRS_AUTO,
    CONFIG_PAIRS_KERAS,
    CONFIG_PAIRS_ALL
} ConfigPairs; /* pairs.h order */

typedef enum { CONFIG_SCOPE_READ, CONFIG_SCOPE_WRITE } ConfigScope;

/* Where a setting's current value came from (Config.origin). */
typedef enum {
    CONFIG_SRC_DEFAULT,
    CONFIG_SRC_FILE,
    CONFIG_SRC_ENV,
    CONFIG_SRC_FLAG,
    CONFIG_SRC_SET, /* config_set() */
} ConfigSource;

typedef struct {
    char *host; /* IPv4 text, IPv6 text without brackets, or a host name */
    int port;   /* 0..65535; 0 = any free port */
} ConfigAddr;

typedef struct {
    char *key;         /* 16..256 chars of [A-Za-z0-9._~+/=-]; a secret */
    ConfigScope scope; /* write also allows everything read allows */
} ConfigApiKey;

/* Plain data. Every pointer is owned by the struct: release with
 * config_free(). Strings are never NULL after a successful config_init() or
 * config_parse() (an unset optional path is ""). */
typedef struct {
    /* serving */
    ConfigAddr listen;
    char *model;           /* model file */
    char *db;              /* SQLite database */
    char *data;            /* dataset for --train/--eval and the default model */
    char *test_data;       /* test split; "" = the test split of `data` */
    bool train_if_missing; /* serve: train a default model if `model` is absent */
    int threads;           /* 0 = number of cores */
    int worker_slice;      /* us of CPU the HTTP workers ask for at a time; 0 = as started */
    size_t max_body;       /* bytes */
    int max_image_width, max_image_height, max_image_pixels;
    int max_connections;
    int max_per_ip;           /* 0 = unlimited */
    int connection_timeout;   /* seconds */
    size_t connection_memory; /* bytes per connection for its request head and reply head */
    int max_json_depth;
    bool keep_images;
    size_t max_db_size;     /* bytes; 0 = no limit */
    ConfigApiKey *api_keys; /* n_api_keys entries; NULL when 0 */
    int n_api_keys;
    char *api_key_file;       /* "" = none; serve creates it if missing */
    bool allow_anonymous;     /* serve keyless on a non-loopback address */
    char *tls_cert, *tls_key; /* both "" or both set */
    LogLevel log_level;
    char *blas_kernel;
    int conv_backend; /* a ConvBackend (layers.h): auto, im2col, onednn, bf16 */
    int identify_k;
    int max_request_pixels;     /* all images of one request together */
    int max_pixels_per_byte;    /* per image, beyond 128x128; 0 = off */
    size_t max_image_memory;    /* bytes, one decode */
    size_t decode_memory;       /* bytes, all concurrent decodes */
    size_t max_buffered_bodies; /* bytes, all connections */
    int request_timeout;        /* seconds to deliver a whole request */
    double rate_limit;          /* requests/s per key or address; 0 = off */
    int rate_burst;             /* token bucket size */
    bool verdict_only;          /* verify/identify without distances */
    /* training */
    int epochs, batch;
    double lr;
    ConfigOptimizer optimizer;
    ConfigLrSchedule lr_schedule;
    double weight_decay; /* decoupled, on the weights; 0 = off */
    double ema;          /* decay of the weights' moving average; 0 = off */
    double margin;
    char *arch;                    /* layer list or preset; "" = the MLP of hidden, dropout */
    char *input;                   /* "HxWxC" or "" (the data's size) */
    char *augment;                 /* "shiftN", "flip", "shiftN,flip" or "" */
    char *import;                  /* PyTorch state_dict to import, "" = none */
    double threshold;              /* --import: 0 = calibrate or 0.5 */
    int patience;                  /* --train: early stopping, 0 = off */
    int hidden[CONFIG_MAX_HIDDEN]; /* dense layer widths; the last is the embedding */
    int n_hidden;
    double dropout;
    uint64_t seed;
    double val_fraction;
    ConfigPairs pairs;
    bool skip_bad_images; /* dataset images that do not decode: skip and count */
    char *out;            /* --train output; "" = `model` */
    bool json;            /* print the final report as JSON on stdout */
    bool force;           /* --train may replace an existing `model` file */
    char *report;         /* --train/--eval: the HTML report's path; "" = none */
    double far;           /* --calibrate: target false-accept rate; 0 = `objective` */
    int objective;        /* --calibrate: 0 accuracy, 1 eer (CalibObjective order) */
    int top;              /* --audit: suspects listed */
    /* bookkeeping */
    char *config_path;                     /* the --config file, or NULL */
    unsigned char origin[CONFIG_MAX_KEYS]; /* ConfigSource of config_key(i) */
} Config;

/* Fills cfg with the built-in defaults. -ENOMEM (err filled) on failure, in
 * which case cfg holds nothing and config_free() on it is harmless. */
int config_init(Config *cfg, char *err);

/* The whole command line: defaults, then the --config file, then the SIAMESED_*
 * variables of envp (a NULL-terminated "NAME=value" array, e.g. main's third
 * argument or environ; NULL means none), then the --flags of argv[1..argc-1];
 * finally config_check(). *mode receives the mode. A bool flag alone means
 * yes (`--json`); it takes the next argument as its value unless that starts
 * with '-'. Other flags always take a value; one starting with "--" must be
 * written --name=VALUE. A flag given twice is an error. For --help and
 * --version the command line is still checked for unknown flags and
 * conflicting modes, but no file, variable or value is read: returns 0 with
 * defaults in cfg.
 * Returns 0, or a negative errno with err naming the culprit (file and line,
 * variable or flag). On failure cfg holds nothing (config_free() harmless);
 * on success release it with config_free(). */
int config_parse(int argc, char **argv, char **envp, Config *cfg, ConfigMode *mode, char *err);

/* Sets one key from its text form, as a file line would (origin
 * CONFIG_SRC_SET). -ENOENT for an unknown key, -EINVAL/-ERANGE for a bad
 * value; on failure the old value is kept. */
int config_set(Config *cfg, const char *key, const char *value, char *err);

/* Appends one API key (e.g. read from api_key_file) to cfg->api_keys after
 * checking it as an api_keys entry would be, and that it is not listed yet.
 * where names its source in messages, which never show the key. 0, or
 * -EINVAL/-ERANGE/-ENOMEM with err; on failure cfg is unchanged. */
int config_add_api_key(Config *cfg, const char *key, ConfigScope scope, const char *where,
                       char *err);

/* Applies a config file over cfg (origin CONFIG_SRC_FILE). On failure cfg may
 * hold the values of the lines before the bad one and is still valid. */
int config_load_file(Config *cfg, const char *path, char *err);

/* Applies the SIAMESED_* entries of envp over cfg (origin CONFIG_SRC_ENV);
 * other variables are ignored. NULL envp is an empty environment. */
int config_load_env(Config *cfg, char **envp, char *err);

/* Cross-field rules once every source is merged: tls_cert and tls_key both
 * set or both empty; no API key listed twice. -EINVAL with err, or 0. */
int config_check(const Config *cfg, char *err);

/* Frees owned strings and lists and zeroes cfg. NULL is fine. */
void config_free(Config *cfg);

/* Usage text generated from the table: modes, then every setting with its
 * flag, variable, bounds, default and help. */
void config_print_help(FILE *f);

/* The table's keys, for listings and tests: config_key(i) for i in
 * [0, config_n_keys()), NULL past the end. Static strings. */
size_t config_n_keys(void);
const char *config_key(size_t i);

/* Current value of key in its canonical text form (what the file syntax would
 * accept back; sizes with the largest exact suffix). Secrets are never
 * written: api_keys reads "" when empty and "(N keys redacted)" otherwise.
 * Returns 0, -ENOENT for an unknown key, -ENOSPC if buf (size bytes) is too
 * small (buf then holds a truncated NUL-terminated string). */
int config_format(const Config *cfg, const char *key, char *buf, size_t size);

/* One JSON object of the effective settings, secrets redacted (api_keys
 * becomes {"read": n, "write": m}), for logs and training reports. *out is
 * malloc'ed NUL-terminated text; caller frees with free(). */
int config_dump_json(const Config *cfg, char **out, char *err);

/* Logs every effective setting at info level ("config listen = ... (env)"),
 * secrets redacted. */
void config_log(const Config *cfg);

/* "serve", "train", "eval", "reembed", "help", "version", "info", "enroll"
 * (static). */
const char *config_mode_name(ConfigMode mode);
/* "default", "file", "env", "flag", "set" (static). */
const char *config_source_name(ConfigSource src);

#endif
