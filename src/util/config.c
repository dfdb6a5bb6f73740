/*
 * config.c — siamesed's settings: the table, the three readers, and the help
 * text and dumps generated from the table.
 *
 * The table is the single description of every setting: name, type, bounds,
 * default (as text, so defaults go through the same parser as user input and
 * a bad default fails loudly in config_init()), target field and help. The
 * readers — config file, environment, command line — only locate a (key,
 * text) pair and call apply(); the value types themselves live in
 * config_value.c. Help, config_format(), the JSON dump and the log listing
 * walk the same table, so none of them can disagree with what is parsed.
 */
#include "siamese/config.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "config_value.h"
#include "siamese/common.h"
#include "siamese/model.h"

_Static_assert(3 * CONFIG_MAX_HIDDEN + 1 <= NET_MAX_LAYERS, "hidden must fit a ModelArch");
/* Enum fields are written through an int pointer. */
_Static_assert(sizeof(LogLevel) == sizeof(int) && sizeof(ConfigOptimizer) == sizeof(int) &&
                   sizeof(ConfigPairs) == sizeof(int),
               "enum fields must be int-sized");

#define O(f) offsetof(Config, f)
#define PATH_MAXLEN 4095
#define VALUE_TEXT_MAX (PATH_MAXLEN + 64) /* room for any value but a long list */

static const char *const log_words[] = {"debug", "info", "warn", "error", NULL};
static const char *const opt_words[] = {"rmsprop", "adam", NULL};
static const char *const schedule_words[] = {"constant", "cosine", NULL};
static const char *const pairs_words[] = {"auto", "keras", "all", NULL};
static const char *const objective_words[] = {"accuracy", "eer", NULL};

static const ConfigEntry table[] = {
    {"listen", CT_ADDR, O(listen), 0, "127.0.0.1:8080", 0, 65535, .section = "Serving",
     .help = "address and port the HTTP server listens on (:PORT = every interface, which "
             "needs API keys or allow_anonymous); port 0 = any free port"},
    {"model", CT_PATH, O(model), 0, "siamesed-data/model.safetensors", 1, PATH_MAXLEN,
     .help = "model file the server loads and --train writes (unless `out` is set)"},
    {"db", CT_PATH, O(db), 0, "siamesed-data/siamesed.db", 1, PATH_MAXLEN,
     .help = "database of enrolled items: a SQLite file, or a postgresql:// URI (libpq; "
             "many daemons may share one; the password goes in ~/.pgpass)"},
    {"data", CT_PATH, O(data), 0, "/usr/share/datasets/fashion-mnist", 1, PATH_MAXLEN,
     .help = "dataset (IDX or image directory) for --train, --eval and the default model"},
    {"test_data", CT_PATH, O(test_data), 0, "", 0, PATH_MAXLEN,
     .help = "dataset whose test split is evaluated; empty = the test split of `data`"},
    {"train_if_missing", CT_BOOL, O(train_if_missing), 0, "yes",
     .help = "serve: train a default model from `data` first if `model` does not exist"},
    {"threads", CT_INT, O(threads), 0, "0", 0, 256,
     .help = "HTTP worker threads (0 = 4 per core) and training BLAS threads (0 = one per core)"},
    {"max_body", CT_SIZE, O(max_body), 0, "16M", 1024, 1073741824,
     .help = "largest request body accepted"},
    {"max_image_width", CT_INT, O(max_image_width), 0, "4096", 1, 65535,
     .help = "widest image accepted, in pixels"},
    {"max_image_height", CT_INT, O(max_image_height), 0, "4096", 1, 65535,
     .help = "tallest image accepted, in pixels"},
    {"max_image_pixels", CT_INT, O(max_image_pixels), 0, "16777216", 1, 268435456,
     .help = "largest width*height accepted (checked before decoding)"},
    {"max_connections", CT_INT, O(max_connections), 0, "1024", 1, 100000,
     .help = "concurrent connections"},
    {"max_per_ip", CT_INT, O(max_per_ip), 0, "64", 0, 100000,
     .help = "concurrent connections from one IP address; 0 = unlimited"},
    {"connection_timeout", CT_INT, O(connection_timeout), 0, "30", 1, 3600,
     .help = "seconds an idle connection is kept open"},
    {"max_json_depth", CT_INT, O(max_json_depth), 0, "32", 1, 1000,
     .help = "deepest nesting accepted in a JSON request body"},
    {"keep_images", CT_BOOL, O(keep_images), 0, "yes",
     .help = "store enrolled images in the database, not only their embeddings"},
    {"max_db_size", CT_SIZE, O(max_db_size), 0, "0", 0, 1099511627776.0,
     .help = "largest the database file may grow, its write-ahead log aside (0 = no limit); "
             "enroll answers 507 beyond it"},
    {"api_keys", CT_KEYS, O(api_keys), O(n_api_keys), "", 0, 0, 0, CONFIG_MAX_API_KEYS,
     .flags = CF_SECRET,
     .help = "comma-separated KEY:read or KEY:write entries (KEY: 16 to 256 characters of "
             "A-Z a-z 0-9 . _ ~ + / = -; write also allows reading); empty = no key needed"},
    {"api_key_file", CT_PATH, O(api_key_file), 0, "", 0, PATH_MAXLEN,
     .help = "file holding one write key, used beside api_keys; serve creates it with a random "
             "key (mode 0600, printed once in the log) if missing and api_keys is empty; "
             "empty = none"},
    {"allow_anonymous", CT_BOOL, O(allow_anonymous), 0, "no",
     .help = "serve without API keys on an address other than loopback (refused otherwise)"},
    {"tls_cert", CT_PATH, O(tls_cert), 0, "", 0, PATH_MAXLEN,
     .help = "PEM certificate chain for HTTPS, set with tls_key; empty = plain HTTP"},
    {"tls_key", CT_PATH, O(tls_key), 0, "", 0, PATH_MAXLEN, .help = "PEM private key of tls_cert"},
    {"log_level", CT_ENUM, O(log_level), 0, "info", .words = log_words,
     .help = "least severe messages logged"},
    {"blas_kernel", CT_STRING, O(blas_kernel), 0, "auto", 1, 64,
     .help = "OpenBLAS kernel: auto, system, or a core name such as Haswell"},
    {"identify_k", CT_INT, O(identify_k), 0, "5", 1, 1000,
     .help = "matches returned by identify when the request does not say"},
    {"max_request_pixels", CT_INT, O(max_request_pixels), 0, "4194304", 1, 268435456,
     .help = "pixels one request may decode in all images together (a JPEG counted at its "
             "DCT-scaled size), checked from the headers before any is decoded"},
    {"max_pixels_per_byte", CT_INT, O(max_pixels_per_byte), 0, "64", 0, 1000000,
     .help = "pixels an uploaded image may decode to per byte of its file, beyond the first "
             "128x128 (0 = no such limit); checked from its header"},
    {"max_image_memory", CT_SIZE, O(max_image_memory), 0, "64M", 1048576, 4294967296.0,
     .help = "working memory one image decode may use; larger decodes answer 413"},
    {"decode_memory", CT_SIZE, O(decode_memory), 0, "256M", 1048576, 68719476736.0,
     .help = "working memory all concurrent image decodes may use together; beyond it 503"},
    {"max_buffered_bodies", CT_SIZE, O(max_buffered_bodies), 0, "256M", 1048576, 68719476736.0,
     .help = "request body bytes buffered at once over all connections; beyond it 503"},
    {"request_timeout", CT_INT, O(request_timeout), 0, "60", 1, 3600,
     .help = "seconds a connection has, from its accept or its previous request, to deliver a "
             "whole request (TLS handshake, head and body), however it trickles"},
    {"rate_limit", CT_FLOAT, O(rate_limit), 0, "0", 0, 1e6,
     .help = "requests per second each API key (or, without keys, each client address) may "
             "make; 0 = no limit"},
    {"rate_burst", CT_INT, O(rate_burst), 0, "20", 1, 1000000,
     .help = "requests a key may make at once before rate_limit applies"},
    {"verdict_only", CT_BOOL, O(verdict_only), 0, "no",
     .help = "verify and identify answer verdicts without distances"},
    {"epochs", CT_INT, O(epochs), 0, "20", 1, 10000, .section = "Training",
     .help = "passes over the training pairs"},
    {"batch", CT_INT, O(batch), 0, "128", 1, 65536, .help = "pairs per training step"},
    {"lr", CT_FLOAT, O(lr), 0, "0.001", 0, 10, .flags = CF_MIN_OPEN, .help = "learning rate"},
    {"optimizer", CT_ENUM, O(optimizer), 0, "rmsprop", .words = opt_words, .help = "optimiser"},
    {"lr_schedule", CT_ENUM, O(lr_schedule), 0, "constant", .words = schedule_words,
     .help = "learning rate over the run: constant, or cosine (decays from lr to 0 at the end "
             "of the last epoch)"},
    {"margin", CT_FLOAT, O(margin), 0, "1", 0, 100, .flags = CF_MIN_OPEN,
     .help = "contrastive loss margin"},
    {"arch", CT_STRING, O(arch), 0, "", 0, NET_MAX_SPEC - 1,
     .help = "base network as a layer list (convNkK[sS][pP], poolK, fcN, relu, dropP) or a "
             "preset (mlp, cnn); empty = the MLP of `hidden` and `dropout`"},
    {"input", CT_STRING, O(input), 0, "", 0, 32,
     .help = "model input HxWxC (C 1 = gray, 3 = RGB); empty = an IDX set's own size, "
             "28x28x1 for an image directory"},
    {"augment", CT_STRING, O(augment), 0, "", 0, 32,
     .help = "training augmentation: shiftN (random shifts up to N pixels), flip (random "
             "horizontal flips), or both (shift2,flip); empty = none"},
    {"import", CT_PATH, O(import), 0, "", 0, PATH_MAXLEN,
     .help = "import this PyTorch state_dict (safetensors) as a model of `arch` and write it "
             "to `out`"},
    {"threshold", CT_FLOAT, O(threshold), 0, "0", 0, 1e6,
     .help = "--import: decision threshold; 0 = calibrate on `data` if given, else 0.5"},
    {"hidden", CT_INTLIST, O(hidden), O(n_hidden), "128,128,128", 1, NET_MAX_WIDTH, 1,
     CONFIG_MAX_HIDDEN, .help = "dense layer widths; the last is the embedding size"},
    {"dropout", CT_FLOAT, O(dropout), 0, "0.1", 0, 1, .flags = CF_MAX_OPEN,
     .help = "dropout rate after every layer but the last"},
    {"seed", CT_U64, O(seed), 0, "1", .help = "seed of weights, pairs and dropout"},
    {"val_fraction", CT_FLOAT, O(val_fraction), 0, "0.1", 0, 0.5, .flags = CF_MIN_OPEN,
     .help = "fraction of the training data held out to calibrate the threshold"},
    {"pairs", CT_ENUM, O(pairs), 0, "auto", .words = pairs_words,
     .help = "training pairs: keras (the recipe's: every class cut to the smallest), all (every "
             "image anchors a positive and a negative pair, redrawn each epoch), or auto (keras "
             "unless it would leave more than 10% of the images out)"},
    {"skip_bad_images", CT_BOOL, O(skip_bad_images), 0, "no",
     .help = "image directories: skip (and count) images that do not decode instead of stopping"},
    {"out", CT_PATH, O(out), 0, "", 0, PATH_MAXLEN,
     .help = "where --train writes the model; empty = `model`"},
    {"json", CT_BOOL, O(json), 0, "no", .help = "print the final report as JSON on stdout"},
    {"force", CT_BOOL, O(force), 0, "no",
     .help = "--train: replace an existing model file at `model` when `out` is empty, and "
             "write a model whose embeddings collapsed"},
    {"patience", CT_INT, O(patience), 0, "0", 0, 10000,
     .help = "--train: stop after this many epochs without a better validation ROC AUC and "
             "keep the best epoch's weights; 0 = train every epoch"},
    {"report", CT_PATH, O(report), 0, "", 0, PATH_MAXLEN,
     .help = "--train and --eval: also write a self-contained HTML report (charts, hardest "
             "mistakes, metrics) to this file; --audit: the suspects with their neighbours; "
             "empty = none"},
    {"far", CT_FLOAT, O(far), 0, "0", 0, 1,
     .help = "--calibrate: choose the threshold of this false-accept rate (e.g. 1e-3); 0 = "
             "by `objective`"},
    {"objective", CT_ENUM, O(objective), 0, "accuracy", .words = objective_words,
     .help = "--calibrate without `far`: the threshold of the best accuracy, or of the equal "
             "error rate (eer)"},
    {"top", CT_INT, O(top), 0, "20", 1, 1000000, .help = "--audit: how many suspects to list"},
};

#define N_KEYS SM_ARRAY_LEN(table)
_Static_assert(SM_ARRAY_LEN(table) <= CONFIG_MAX_KEYS, "Config.origin too small");

#define ENV_PREFIX "SIAMESED_"

/* ---- finding keys, applying values ---- */

typedef enum { HINT_KEY, HINT_FLAG, HINT_ENV } HintStyle;
static void did_you_mean(const char *s, size_t len, HintStyle style, char *out, size_t size);

static const ConfigEntry *find_key(const char *name, size_t len) {
    for (size_t i = 0; i < N_KEYS; i++)
        if (strlen(table[i].name) == len && memcmp(table[i].name, name, len) == 0)
            return &table[i];
    return NULL;
}

/* Key "max_body" spelled as flag "max-body" (map = '-') or variable "MAX_BODY". */
static bool spelled(const char *key, const char *s, size_t len, bool upper, char map) {
    if (strlen(key) != len)
        return false;
    for (size_t i = 0; i < len; i++) {
        char want = key[i] == '_' ? map : upper ? (char)toupper((unsigned char)key[i]) : key[i];
        if (s[i] != want)
            return false;
    }
    return true;
}

/* configval_set() with the error located: "WHERE: 'value' reason", where
 * WHERE names the source and the key ("siamesed.conf:12: threads",
 * "option --threads", "SIAMESED_THREADS"). */
static int apply(Config *cfg, const ConfigEntry *e, const char *v, ConfigSource src,
                 const char *where, char *err) {
    char why[SM_ERRMAX], vb[48];
    int rc = configval_set(cfg, e, v, why);
    if (rc < 0 && (e->flags & CF_SECRET))
        return sm_err(err, rc, "%s: %s", where, why);
    if (rc < 0)
        return sm_err(err, rc, "%s: '%s' %s", where, config_shown(v, vb, sizeof vb), why);
    cfg->origin[e - table] = (unsigned char)src;
    return 0;
}

int config_init(Config *cfg, char *err) {
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_KEYS; i++) {
        char where[64];
        snprintf(where, sizeof where, "built-in default of %s", table[i].name);
        int rc = apply(cfg, &table[i], table[i].def, CONFIG_SRC_DEFAULT, where, err);
        if (rc < 0) {
            config_free(cfg);
            return rc;
        }
    }
    return 0;
}

int config_set(Config *cfg, const char *key, const char *value, char *err) {
    char kb[48];
    const ConfigEntry *e = find_key(key, strlen(key));
    if (!e) {
        char hint[80];
        did_you_mean(key, strlen(key), HINT_KEY, hint, sizeof hint);
        return sm_err(err, -ENOENT, "unknown key '%s'%s", config_shown(key, kb, sizeof kb), hint);
    }
    return apply(cfg, e, value, CONFIG_SRC_SET, e->name, err);
}

int config_add_api_key(Config *cfg, const char *key, ConfigScope scope, const char *where,
                       char *err) {
    char why[SM_ERRMAX];
    if (configval_key_check(key, strlen(key), why) < 0)
        return sm_err(err, -EINVAL, "%s: %s", where, why);
    for (int i = 0; i < cfg->n_api_keys; i++)
        if (strcmp(cfg->api_keys[i].key, key) == 0)
            return sm_err(err, -EINVAL, "%s: the key is already listed in api_keys", where);
    if (cfg->n_api_keys >= CONFIG_MAX_API_KEYS)
        return sm_err(err, -ERANGE, "%s: api_keys already holds %d keys", where,
                      CONFIG_MAX_API_KEYS);
    ConfigApiKey *k = realloc(cfg->api_keys, (size_t)(cfg->n_api_keys + 1) * sizeof *k);
    if (!k)
        return sm_err(err, -ENOMEM, "out of memory");
    cfg->api_keys = k;
    if (!(k[cfg->n_api_keys].key = strdup(key)))
        return sm_err(err, -ENOMEM, "out of memory");
    k[cfg->n_api_keys++].scope = scope;
    return 0;
}

void config_free(Config *cfg) {
    if (!cfg)
        return;
    for (size_t i = 0; i < N_KEYS; i++)
        configval_free(cfg, &table[i]);
    free(cfg->config_path);
    memset(cfg, 0, sizeof *cfg);
}

/* ---- config file ---- */

/* Cuts the value out of the rest of a line (after the key), in place: one
 * bare token or a "quoted" string, then only blanks or a comment. */
static int file_value(char *s, char **value, char *why) {
    if (!*s || *s == '#')
        return sm_err(why, -EINVAL, "has no value (write \"\" for an empty one)");
    char *r = s, *w = s;
    if (*s == '"') {
        for (r++;; r++) {
            if (!*r)
                return sm_err(why, -EINVAL, "has an unterminated quoted value");
            if (*r == '"')
                break;
            if (*r == '\\' && r[1] != '"' && r[1] != '\\')
                return sm_err(why, -EINVAL,
                              "has an unknown escape in its value (only \\\" "
                              "and \\\\)");
            *w++ = *r == '\\' ? *++r : *r;
        }
        r++;
    } else {
        while (*r && !isspace((unsigned char)*r))
            r++;
        w = r;
    }
    while (isspace((unsigned char)*r))
        r++;
    if (*r && *r != '#')
        return sm_err(why, -EINVAL, "has text after its value (quote values with spaces)");
    *w = 0;
    *value = s;
    return 0;
}

/* One line: blank, comment, or "key value". at is "path:line"; first_line[]
 * records where each key was set in this file, to report duplicates. */
static int file_line(Config *cfg, const char *at, char *s, int lineno, int *first_line, char *err) {
    char why[SM_ERRMAX], kb[48], where[SM_ERRMAX + 64], *value = NULL;
    while (isspace((unsigned char)*s))
        s++;
    if (!*s || *s == '#')
        return 0;
    char *key = s;
    while (*s && !isspace((unsigned char)*s))
        s++;
    if (*s)
        *s++ = 0;
    while (isspace((unsigned char)*s))
        s++;
    const ConfigEntry *e = find_key(key, strlen(key));
    if (!e) {
        char hint[80];
        did_you_mean(key, strlen(key), HINT_KEY, hint, sizeof hint);
        return sm_err(err, -EINVAL, "%s: unknown key '%s'%s", at, config_shown(key, kb, sizeof kb),
                      hint);
    }
    if (first_line[e - table])
        return sm_err(err, -EINVAL, "%s: duplicate key '%s' (first set on line %d)", at, e->name,
                      first_line[e - table]);
    first_line[e - table] = lineno;
    int rc = file_value(s, &value, why);
    if (rc < 0)
        return sm_err(err, rc, "%s: %s %s", at, e->name, why);
    snprintf(where, sizeof where, "%s: %s", at, e->name);
    return apply(cfg, e, value, CONFIG_SRC_FILE, where, err);
}

int config_load_file(Config *cfg, const char *path, char *err) {
    uint8_t *buf = NULL;
    size_t len;
    int rc = sm_read_file(path, CONFIG_MAX_FILE, &buf, &len, err);
    if (rc < 0)
        return rc;
    int first_line[N_KEYS] = {0}, lineno = 0;
    char *p = (char *)buf, *end = p + len, at[SM_ERRMAX];
    if (memchr(buf, 0, len))
        rc = sm_err(err, -EINVAL, "%s: contains a NUL byte, not a config file", path);
    while (p < end && rc == 0) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl)
            *nl = 0;
        snprintf(at, sizeof at, "%s:%d", path, ++lineno);
        rc = file_line(cfg, at, p, lineno, first_line, err);
        p = nl ? nl + 1 : end;
    }
    free(buf);
    return rc;
}

/* ---- environment ---- */

int config_load_env(Config *cfg, char **envp, char *err) {
    const size_t plen = strlen(ENV_PREFIX);
    int seen[N_KEYS] = {0};
    for (size_t i = 0; envp && envp[i]; i++) {
        const char *kv = envp[i], *eq = strchr(kv, '=');
        if (strncmp(kv, ENV_PREFIX, plen) != 0 || !eq)
            continue;
        const ConfigEntry *e = NULL;
        for (size_t j = 0; j < N_KEYS && !e; j++)
            if (spelled(table[j].name, kv + plen, (size_t)(eq - kv) - plen, true, '_'))
                e = &table[j];
        char name[80], shown[80], hint[80];
        snprintf(name, sizeof name, "%.*s", (int)(eq - kv), kv); /* never the value */
        did_you_mean(kv + plen, (size_t)(eq - kv) - plen, HINT_ENV, hint, sizeof hint);
        if (!e)
            return sm_err(err, -EINVAL, "unknown environment variable %s%s",
                          config_shown(name, shown, sizeof shown), hint);
        if (seen[e - table]++)
            return sm_err(err, -EINVAL, "environment variable %s is set twice", name);
        int rc = apply(cfg, e, eq + 1, CONFIG_SRC_ENV, name, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- command line ---- */

typedef enum { ARG_MODE, ARG_CONFIG, ARG_SET } ArgKind;

typedef struct {
    ArgKind kind;
    ConfigMode mode;      /* ARG_MODE */
    const ConfigEntry *e; /* ARG_SET */
    const char *value;    /* ARG_CONFIG, ARG_SET */
} Arg;

static const struct {
    const char *flag;
    ConfigMode mode;
    const char *help;
} modes[] = {
    {"train", CONFIG_MODE_TRAIN, "train a model on `data`, save it to `out` (empty: `model`)"},
    {"eval", CONFIG_MODE_EVAL, "evaluate `model` on the test split (`test_data` or `data`)"},
    {"reembed", CONFIG_MODE_REEMBED, "recompute the embeddings stored in `db` with `model`"},
    {"enroll", CONFIG_MODE_ENROLL,
     "enroll every image of `data` (DIR/<subject>/<image>, or IDX: subject = label) into `db`;"
     " files already enrolled are skipped"},
    {"calibrate", CONFIG_MODE_CALIBRATE,
     "set `model`'s threshold and operating points on the labelled `data` (weights untouched), "
     "write it to `out` (empty: `model`)"},
    {"audit", CONFIG_MODE_AUDIT,
     "list the samples of `data` whose nearest neighbours under `model` disagree with their "
     "label (`top`, `json`, `report`)"},
    {"info", CONFIG_MODE_INFO,
     "[MODEL] describe a model file (default `model`) and, if `db` exists, whether it matches"},
    {"help", CONFIG_MODE_HELP, "print this help and exit"},
    {"version", CONFIG_MODE_VERSION, "print the version and exit"},
};

/* ---- "did you mean" ---- */

/* Optimal string alignment distance (edits, adjacent swaps counted as one)
 * between a (n bytes, at most 63) and b. */
static size_t edit_distance(const char *a, size_t n, const char *b) {
    size_t m = strlen(b), d[3][64];
    if (n > 63 || m > 63)
        return SIZE_MAX;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++) {
        size_t *row = d[i % 3], *up = d[(i - 1) % 3], *up2 = d[(i + 1) % 3];
        row[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t sub = up[j - 1] + (a[i - 1] != b[j - 1]), del = up[j] + 1, ins = row[j - 1] + 1;
            size_t best = sub < del ? sub : del;
            best = ins < best ? ins : best;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                up2[j - 2] + 1 < best)
                best = up2[j - 2] + 1;
            row[j] = best;
        }
    }
    return d[n % 3][m];
}

/* out gets " (did you mean --listen?)" (spelled for style) when one name of
 * the table (and, for flags, a mode or "config") is within a typo or two of
 * s (n bytes, case and '-'/'_' ignored); "" otherwise. */
static void did_you_mean(const char *s, size_t n, HintStyle style, char *out, size_t size) {
    char norm[64];
    const char *best = NULL;
    size_t best_d = SIZE_MAX, nm = SM_ARRAY_LEN(modes);
    *out = 0;
    if (n == 0 || n >= sizeof norm)
        return;
    for (size_t i = 0; i < n; i++)
        norm[i] = s[i] == '-' ? '_' : (char)tolower((unsigned char)s[i]);
    for (size_t i = 0; i < N_KEYS + (style == HINT_FLAG ? nm + 1 : 0); i++) {
        const char *c = i < N_KEYS        ? table[i].name
                        : i < N_KEYS + nm ? modes[i - N_KEYS].flag
                                          : "config";
        size_t d = edit_distance(norm, n, c);
        if (d < best_d)
            best_d = d, best = c;
    }
    if (!best || best_d > (n >= 6 ? 2u : 1u) || best_d >= n)
        return;
    int len = snprintf(out, size, " (did you mean %s",
                       style == HINT_FLAG  ? "--"
                       : style == HINT_ENV ? ENV_PREFIX
                                           : "");
    for (const char *c = best; *c && len > 0 && (size_t)len + 3 < size; c++)
        out[len++] = style == HINT_FLAG && *c == '_' ? '-'
                     : style == HINT_ENV             ? (char)toupper((unsigned char)*c)
                                                     : *c;
    if (len > 0 && (size_t)len + 3 < size)
        memcpy(out + len, "?)", 3);
    else
        *out = 0;
}

/* A word that is not a --flag: "train" meant --train, "serve" the default. */
static int unexpected_arg(const char *s, char *err) {
    char sb[48], hint[80];
    const char *w = s + strspn(s, "-");
    did_you_mean(w, strlen(w), HINT_FLAG, hint, sizeof hint);
    if (strcmp(w, "serve") == 0)
        snprintf(hint, sizeof hint, " (serving is the default: give no mode flag)");
    else if (!*hint)
        snprintf(hint, sizeof hint, " (settings are --name value)");
    return sm_err(err, -EINVAL, "unexpected argument '%s'%s", config_shown(s, sb, sizeof sb), hint);
}

/* Reads the flag at argv[*i] (and its value) into a, advancing *i past both. */
static int next_arg(int argc, char **argv, int *i, Arg *a, char *err) {
    const char *s = argv[(*i)++], *name = s + 2;
    char sb[48];
    if (strcmp(s, "-h") == 0)
        return a->kind = ARG_MODE, a->mode = CONFIG_MODE_HELP, 0;
    if (strncmp(s, "--", 2) != 0 || !*name)
        return unexpected_arg(s, err);
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    for (size_t m = 0; m < SM_ARRAY_LEN(modes); m++)
        if (strlen(modes[m].flag) == len && memcmp(modes[m].flag, name, len) == 0) {
            if (eq)
                return sm_err(err, -EINVAL, "option --%s takes no value", modes[m].flag);
            a->kind = ARG_MODE, a->mode = modes[m].mode, a->value = NULL;
            if (a->mode == CONFIG_MODE_INFO && *i < argc && argv[*i][0] != '-')
                a->value = argv[(*i)++]; /* --info MODEL */
            return 0;
        }
    a->e = NULL;
    for (size_t j = 0; j < N_KEYS && !a->e; j++)
        if (spelled(table[j].name, name, len, false, '-'))
            a->e = &table[j];
    a->kind = a->e ? ARG_SET : ARG_CONFIG;
    if (!a->e && !(len == 6 && memcmp(name, "config", 6) == 0)) {
        char hint[80];
        did_you_mean(name, len, HINT_FLAG, hint, sizeof hint);
        if (!*hint && memchr(name, '_', len))
            snprintf(hint, sizeof hint, " (flags use '-')");
        return sm_err(err, -EINVAL, "unknown option --%.*s%s", (int)len,
                      config_shown(name, sb, sizeof sb), hint);
    }
    const char *next = *i < argc ? argv[*i] : NULL;
    if (eq)
        a->value = eq + 1;
    else if (a->e && a->e->type == CT_BOOL)
        a->value = next && next[0] != '-' ? argv[(*i)++] : "yes";
    else if (!next || strncmp(next, "--", 2) == 0)
        return sm_err(err, -EINVAL,
                      "option --%.*s needs a value (--%.*s=VALUE if it starts "
                      "with --)",
                      (int)len, name, (int)len, name);
    else
        a->value = argv[(*i)++];
    return 0;
}

/* First pass: the mode and the --config file; every flag is recognised. */
static int scan_args(int argc, char **argv, ConfigMode *mode, const char **cpath,
                     const char **info_model, char *err) {
    const char *mode_arg = NULL;
    for (int i = 1; i < argc;) {
        const char *s = argv[i];
        Arg a;
        int rc = next_arg(argc, argv, &i, &a, err);
        if (rc < 0)
            return rc;
        if (a.kind == ARG_MODE && mode_arg)
            return sm_err(err, -EINVAL, "%s and %s: give at most one mode", mode_arg, s);
        if (a.kind == ARG_MODE)
            *mode = a.mode, mode_arg = s, *info_model = a.value;
        if (a.kind == ARG_CONFIG && *cpath)
            return sm_err(err, -EINVAL, "option --config given twice");
        if (a.kind == ARG_CONFIG)
            *cpath = a.value;
    }
    return 0;
}

/* Second pass: the settings, over what the file and environment gave. */
static int apply_args(Config *cfg, int argc, char **argv, char *err) {
    int seen[N_KEYS] = {0};
    for (int i = 1; i < argc;) {
        Arg a;
        char where[96];
        int rc = next_arg(argc, argv, &i, &a, err);
        if (rc < 0 || a.kind != ARG_SET)
            continue; /* the first pass already reported errors */
        snprintf(where, sizeof where, "option --%s", a.e->name);
        for (char *c = where; *c; c++)
            *c = *c == '_' ? '-' : *c;
        if (seen[a.e - table]++)
            return sm_err(err, -EINVAL, "%s given twice", where);
        rc = apply(cfg, a.e, a.value, CONFIG_SRC_FLAG, where, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* --info MODEL is --model MODEL; both at once would be ambiguous. */
static int set_info_model(Config *cfg, const char *path, char *err) {
    const ConfigEntry *e = find_key("model", 5);
    if (cfg->origin[e - table] == CONFIG_SRC_FLAG)
        return sm_err(err, -EINVAL, "--info %s and --model: name the model once", path);
    return apply(cfg, e, path, CONFIG_SRC_FLAG, "option --info", err);
}

int config_parse(int argc, char **argv, char **envp, Config *cfg, ConfigMode *mode, char *err) {
    const char *cpath = NULL, *info_model = NULL;
    ConfigMode m = CONFIG_MODE_SERVE;
    memset(cfg, 0, sizeof *cfg);
    *mode = m;
    int rc = scan_args(argc, argv, &m, &cpath, &info_model, err);
    if (rc == 0)
        rc = config_init(cfg, err);
    if (rc < 0)
        goto out;
    *mode = m;
    if (m == CONFIG_MODE_HELP || m == CONFIG_MODE_VERSION)
        return 0;
    if (cpath && !(cfg->config_path = strdup(cpath))) {
        rc = sm_err(err, -ENOMEM, "out of memory");
        goto out;
    }
    if (cpath && (rc = config_load_file(cfg, cpath, err)) < 0)
        goto out;
    if ((rc = config_load_env(cfg, envp, err)) < 0)
        goto out;
    if ((rc = apply_args(cfg, argc, argv, err)) < 0)
        goto out;
    if (info_model && (rc = set_info_model(cfg, info_model, err)) < 0)
        goto out;
    rc = config_check(cfg, err);
out:
    if (rc < 0)
        config_free(cfg);
    return rc;
}

/* Where a setting came from, for cross-field messages. */
static const char *origin_of(const Config *cfg, const char *key) {
    const ConfigEntry *e = find_key(key, strlen(key));
    return config_source_name((ConfigSource)cfg->origin[e - table]);
}

int config_check(const Config *cfg, char *err) {
    bool cert = cfg->tls_cert && cfg->tls_cert[0], key = cfg->tls_key && cfg->tls_key[0];
    if (cert != key)
        return sm_err(err, -EINVAL,
                      "tls_cert and tls_key must be set together (%s set by %s, %s empty)",
                      cert ? "tls_cert" : "tls_key", origin_of(cfg, cert ? "tls_cert" : "tls_key"),
                      cert ? "tls_key" : "tls_cert");
    for (int i = 0; i < cfg->n_api_keys; i++)
        for (int j = i + 1; j < cfg->n_api_keys; j++)
            if (strcmp(cfg->api_keys[i].key, cfg->api_keys[j].key) == 0)
                return sm_err(err, -EINVAL,
                              "api_keys (set by %s): entries %d and %d have the "
                              "same key",
                              origin_of(cfg, "api_keys"), i + 1, j + 1);
    return 0;
}

/* ---- output ---- */

int config_format(const Config *cfg, const char *key, char *buf, size_t size) {
    const ConfigEntry *e = find_key(key, strlen(key));
    if (!e)
        return -ENOENT;
    if (size == 0)
        return -ENOSPC;
    ConfigOut o = {buf, size, 0};
    configval_format(&o, cfg, e);
    return o.len < size ? 0 : -ENOSPC;
}

size_t config_n_keys(void) {
    return N_KEYS;
}
const char *config_key(size_t i) {
    return i < N_KEYS ? table[i].name : NULL;
}

static const char *const metavar[] = {
    [CT_STRING] = "TEXT",     [CT_PATH] = "PATH",          [CT_INT] = "N",
    [CT_U64] = "N",           [CT_SIZE] = "BYTES",         [CT_FLOAT] = "X",
    [CT_BOOL] = "[yes|no]",   [CT_ENUM] = "WORD",          [CT_ADDR] = "HOST:PORT",
    [CT_INTLIST] = "N,N,...", [CT_KEYS] = "KEY:SCOPE,...",
};

/* Prints text word-wrapped to 79 columns, each line indented by 6. */
static void print_wrapped(FILE *f, const char *text) {
    const int indent = 6, width = 79;
    int col = 0;
    while (*text) {
        int n = (int)strcspn(text, " ");
        if (col > indent && col + 1 + n > width)
            fputc('\n', f), col = 0;
        if (col == 0)
            col += fprintf(f, "%*s%.*s", indent, "", n, text);
        else
            col += fprintf(f, " %.*s", n, text);
        text += n;
        text += strspn(text, " ");
    }
    fputc('\n', f);
}

void config_print_help(FILE *f) {
    fprintf(f,
            "Usage: siamesed [--train|--eval|--reembed|--enroll|--info [MODEL]|--help|--version]\n"
            "                [--config FILE] [--SETTING VALUE]...\n\nModes (at most one; none "
            "serves HTTP):\n");
    for (size_t m = 0; m < SM_ARRAY_LEN(modes); m++) {
        char fl[32];
        snprintf(fl, sizeof fl, "%s--%s", modes[m].mode == CONFIG_MODE_HELP ? "-h, " : "",
                 modes[m].flag);
        fprintf(f, "  %-16s %s\n", fl, modes[m].help);
    }
    fprintf(f, "  --config FILE    read settings from FILE (see config/siamesed.conf)\n\n"
               "Each setting below is a flag (--max-body 16M or --max-body=16M), an\n"
               "environment variable (SIAMESED_MAX_BODY=16M) and a config file key\n"
               "(max_body 16M). Precedence: defaults < config file < environment <\n"
               "command line. A bool flag alone means yes.\n");
    for (size_t i = 0; i < N_KEYS; i++) {
        const ConfigEntry *e = &table[i];
        char bounds[160];
        ConfigOut b = {bounds, sizeof bounds, 0};
        configval_bounds(&b, e);
        if (e->section)
            fprintf(f, "\n%s:\n", e->section);
        fputs("  --", f);
        for (const char *c = e->name; *c; c++)
            fputc(*c == '_' ? '-' : *c, f);
        fprintf(f, " %s  (" ENV_PREFIX, e->type == CT_ENUM ? bounds : metavar[e->type]);
        for (const char *c = e->name; *c; c++)
            fputc(toupper((unsigned char)*c), f);
        fputs(")\n", f);
        print_wrapped(f, e->help);
        fprintf(f, "      %s%sdefault %s\n", e->type == CT_ENUM ? "" : bounds,
                e->type == CT_ENUM ? "" : "; ", e->def[0] ? e->def : "\"\"");
    }
}

static cJSON *json_value(const Config *cfg, const ConfigEntry *e) {
    const void *f = (const char *)cfg + e->off;
    int n = e->off_n ? *(const int *)((const char *)cfg + e->off_n) : 0;
    char buf[VALUE_TEXT_MAX];
    ConfigOut o = {buf, sizeof buf, 0};
    switch (e->type) {
    case CT_INT:
        return cJSON_CreateNumber(*(const int *)f);
    case CT_SIZE:
        return cJSON_CreateNumber((double)*(const size_t *)f);
    case CT_FLOAT:
        return cJSON_CreateNumber(*(const double *)f);
    case CT_BOOL:
        return cJSON_CreateBool(*(const bool *)f);
    case CT_U64:
        /* A JSON number is a double: beyond 2^53 the seed goes out as text. */
        if (*(const uint64_t *)f <= (1ull << 53))
            return cJSON_CreateNumber((double)*(const uint64_t *)f);
        break;
    case CT_INTLIST:
        return cJSON_CreateIntArray((const int *)f, n);
    case CT_KEYS: {
        const ConfigApiKey *keys = *(ConfigApiKey *const *)f;
        cJSON *k = cJSON_CreateObject();
        int w = 0;
        for (int i = 0; i < n; i++)
            w += keys[i].scope == CONFIG_SCOPE_WRITE;
        if (k &&
            (!cJSON_AddNumberToObject(k, "read", n - w) || !cJSON_AddNumberToObject(k, "write", w)))
            cJSON_Delete(k), k = NULL;
        return k;
    }
    default:
        break;
    }
    configval_format(&o, cfg, e);
    return cJSON_CreateString(buf);
}

int config_dump_json(const Config *cfg, char **out, char *err) {
    cJSON *root = cJSON_CreateObject();
    for (size_t i = 0; root && i < N_KEYS; i++) {
        cJSON *v = json_value(cfg, &table[i]);
        if (!v || !cJSON_AddItemToObject(root, table[i].name, v))
            cJSON_Delete(v), cJSON_Delete(root), root = NULL;
    }
    *out = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return *out ? 0 : sm_err(err, -ENOMEM, "config: out of memory for the JSON dump");
}

void config_log(const Config *cfg) {
    for (size_t i = 0; i < N_KEYS; i++) {
        char buf[VALUE_TEXT_MAX];
        ConfigOut o = {buf, sizeof buf, 0};
        configval_format(&o, cfg, &table[i]);
        log_info("config %s = %s (%s)", table[i].name, buf,
                 config_source_name((ConfigSource)cfg->origin[i]));
    }
}

const char *config_mode_name(ConfigMode mode) {
    static const char *const names[] = {"serve", "train",   "eval", "reembed",
                                        "help",  "version", "info", "enroll"};
    return (unsigned)mode < SM_ARRAY_LEN(names) ? names[mode] : "?";
}

const char *config_source_name(ConfigSource src) {
    static const char *const names[] = {"default", "file", "env", "flag", "set"};
    return (unsigned)src < SM_ARRAY_LEN(names) ? names[src] : "?";
}
