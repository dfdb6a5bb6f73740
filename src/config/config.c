/*
 * config.c — siamesed's settings: the table and what walks it (defaults,
 * setting one key, the cross-field check, formatting, the JSON dump and the
 * log listing). The readers (config file, environment, command line) and
 * --help live in config_read.c.
 *
 * The table is the single description of every setting: name, type, bounds,
 * default (as text, so defaults go through the same parser as user input and
 * a bad default fails loudly in config_init()), target field and help. The
 * readers only locate a (key, text) pair and call config_apply(); the value
 * types themselves live in config_value.c. Help, config_format(), the JSON
 * dump and the log listing walk the same table, so none of them can disagree
 * with what is parsed.
 */
#include "siamese/config.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "config_value.h"
#include "siamese/common.h"
#include "siamese/layers.h"
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
/* In ConvBackend's order (layers.h). */
_Static_assert(CONV_AUTO == 0 && CONV_IM2COL == 1 && CONV_ONEDNN == 2 && CONV_ONEDNN_BF16 == 3,
               "conv_words follows ConvBackend");
static const char *const conv_words[] = {"auto", "im2col", "onednn", "bf16", NULL};
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
    {"worker_slice", CT_INT, O(worker_slice), 0, "100", 0, 100000,
     .help = "scheduler slice the HTTP workers ask for, in microseconds (Linux 6.12 and later; "
             "0 = leave them as started)"},
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
    {"connection_memory", CT_SIZE, O(connection_memory), 0, "8K", 4096, 1048576,
     .help = "memory per connection for the request line, the headers and the reply's headers"},
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
    {"conv_backend", CT_ENUM, O(conv_backend), 0, "auto", .words = conv_words,
     .help =
         "convolutions: auto (oneDNN for training batches), im2col, onednn, or bf16 (oneDNN, bf16 "
         "inputs and weights, f32 accumulation; training speed)"},
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
    {"weight_decay", CT_FLOAT, O(weight_decay), 0, "0", 0, 1,
     .help = "decoupled weight decay (AdamW's): every step the conv and dense weights (not the "
             "biases) shrink by lr * weight_decay; 0 = off"},
    {"ema", CT_FLOAT, O(ema), 0, "0", 0, 1, .flags = CF_MAX_OPEN,
     .help = "decay of an exponential moving average of the weights (e.g. 0.999), which "
             "validation, calibration and the saved model use; 0 = off (the last weights)"},
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
             "horizontal flips), cutoutN (an NxN square zeroed, centred anywhere), or several "
             "(shift2,flip); empty = none"},
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
     .help = "pairs of every split: keras (the recipe's: every class cut to the smallest), all "
             "(every image anchors a positive and a negative pair, redrawn each epoch), or auto "
             "(keras unless it would leave more than 10% of the images out); unless it is given, "
             "the cnn preset trains on all and validates and tests on auto's"},
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

const ConfigEntry *const config_table = table;

/* ---- finding keys, applying values ---- */

const ConfigEntry *config_find_key(const char *name, size_t len) {
    for (size_t i = 0; i < N_KEYS; i++)
        if (strlen(table[i].name) == len && memcmp(table[i].name, name, len) == 0)
            return &table[i];
    return NULL;
}

/* Key "max_body" spelled as flag "max-body" (map = '-') or variable "MAX_BODY". */
bool config_spelled(const char *key, const char *s, size_t len, bool upper, char map) {
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
int config_apply(Config *cfg, const ConfigEntry *e, const char *v, ConfigSource src,
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
        int rc = config_apply(cfg, &table[i], table[i].def, CONFIG_SRC_DEFAULT, where, err);
        if (rc < 0) {
            config_free(cfg);
            return rc;
        }
    }
    return 0;
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

/* Where a setting came from, for cross-field messages. */
static const char *origin_of(const Config *cfg, const char *key) {
    const ConfigEntry *e = config_find_key(key, strlen(key));
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
    const ConfigEntry *e = config_find_key(key, strlen(key));
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

const char *config_source_name(ConfigSource src) {
    static const char *const names[] = {"default", "file", "env", "flag", "set"};
    return (unsigned)src < SM_ARRAY_LEN(names) ? names[src] : "?";
}