/*
 * test_config.c — the settings table through all three sources: defaults,
 * config file syntax, a table of bad values per type (each rejected from the
 * file with its line number, from a flag and from the environment), good
 * values and their canonical text, precedence file < env < flags, modes,
 * cross-field rules, secrecy of API keys, the help text, and the shipped
 * config/siamesed.conf, which must set every key to exactly its default.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "siamese/common.h"
#include "siamese/config.h"
#include "siamese/layers.h"

#include "check_util.h"
#include "test_config.h"

#define KEY_A "0123456789abcdef"  /* 16 characters: the shortest key */
#define KEY_B "AZaz09._~+/=-xyzw" /* every allowed punctuation mark */

static char tmp_path[64];

/* Writes text to a fresh temporary file; returns its path (static). */
static const char *write_conf(const char *text, size_t len) {
    strcpy(tmp_path, "/tmp/test_config_XXXXXX");
    int fd = mkstemp(tmp_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return tmp_path;
}
#define CONF(text) write_conf(text, strlen(text))

/* config_parse over {"siamesed", args..., NULL} and a fake environment. */
static int parse(const char *const *args, const char *const *env, Config *c, ConfigMode *m,
                 char *err) {
    char *argv[64] = {"siamesed"};
    int argc = 1;
    for (; args && args[argc - 1]; argc++)
        argv[argc] = (char *)args[argc - 1];
    err[0] = 0;
    return config_parse(argc, argv, (char **)env, c, m, err);
}

const char *test_config_write(const char *text) {
    return write_conf(text, strlen(text));
}
int test_config_parse(const char *const *args, const char *const *env, Config *c, ConfigMode *m,
                      char *err) {
    return parse(args, env, c, m, err);
}

static void fmt(const Config *c, const char *key, char *buf) {
    ck_assert_int_eq(config_format(c, key, buf, 512), 0);
}

START_TEST(defaults) {
    Config c;
    ConfigMode m = CONFIG_MODE_HELP;
    char err[SM_ERRMAX];
    ck_assert_int_eq(parse(NULL, NULL, &c, &m, err), 0);
    ck_assert_int_eq(m, CONFIG_MODE_SERVE);
    ck_assert_str_eq(c.listen.host, "127.0.0.1");
    ck_assert_int_eq(c.listen.port, 8080);
    ck_assert_str_eq(c.model, "siamesed-data/model.safetensors");
    ck_assert_str_eq(c.db, "siamesed-data/siamesed.db");
    ck_assert_str_eq(c.data, "/usr/share/datasets/fashion-mnist");
    ck_assert_str_eq(c.test_data, "");
    ck_assert(c.train_if_missing);
    ck_assert_int_eq(c.threads, 0);
    ck_assert_uint_eq(c.max_body, 16u << 20);
    ck_assert_int_eq(c.max_image_width, 4096);
    ck_assert_int_eq(c.max_image_height, 4096);
    ck_assert_int_eq(c.max_image_pixels, 16777216);
    ck_assert_int_eq(c.max_connections, 1024);
    ck_assert_int_eq(c.max_per_ip, 64);
    ck_assert_int_eq(c.connection_timeout, 30);
    ck_assert_int_eq(c.max_json_depth, 32);
    ck_assert(c.keep_images);
    ck_assert_int_eq(c.n_api_keys, 0);
    ck_assert_ptr_null(c.api_keys);
    ck_assert_str_eq(c.tls_cert, "");
    ck_assert_str_eq(c.tls_key, "");
    ck_assert_int_eq(c.log_level, LOG_INFO);
    ck_assert_int_eq(c.conv_backend, CONV_AUTO);
    ck_assert_str_eq(c.blas_kernel, "auto");
    ck_assert_int_eq(c.identify_k, 5);
    ck_assert_int_eq(c.epochs, 20);
    ck_assert_int_eq(c.batch, 128);
    ck_assert_double_eq(c.lr, 0.001);
    ck_assert_int_eq(c.optimizer, CONFIG_OPT_RMSPROP);
    ck_assert_double_eq(c.margin, 1.0);
    ck_assert_int_eq(c.n_hidden, 3);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(c.hidden[i], 128);
    ck_assert_double_eq(c.dropout, 0.1);
    ck_assert_uint_eq(c.seed, 1);
    ck_assert_double_eq(c.val_fraction, 0.1);
    ck_assert_str_eq(c.out, "");
    ck_assert(!c.json);
    ck_assert_ptr_null(c.config_path);
    for (size_t i = 0; i < config_n_keys(); i++)
        ck_assert_int_eq(c.origin[i], CONFIG_SRC_DEFAULT);
    config_free(&c);
    ck_assert_ptr_null(c.model);
    config_free(&c); /* twice, and NULL, are harmless */
    config_free(NULL);
}
END_TEST

START_TEST(file_syntax) {
    const char *text = "# a comment\n"
                       "\n"
                       "   \t\n"
                       "  listen   0.0.0.0:9000   # trailing comment\n"
                       "model \"/srv/my models/a#b.safetensors\"\r\n"
                       "db\t\"quote\\\" and backslash\\\\\"\n"
                       "test_data \"\"\n"
                       "hidden \"64, 32\"\n"
                       "json on\n"
                       "threads 3"; /* no final newline */
    Config c;
    ConfigMode m;
    char err[SM_ERRMAX], buf[512];
    const char *path = CONF(text);
    ck_assert_msg(parse(ARGS("--config", path), NULL, &c, &m, err) == 0, "%s", err);
    ck_assert_str_eq(c.listen.host, "0.0.0.0");
    ck_assert_int_eq(c.listen.port, 9000);
    ck_assert_str_eq(c.model, "/srv/my models/a#b.safetensors");
    ck_assert_str_eq(c.db, "quote\" and backslash\\");
    ck_assert_str_eq(c.test_data, "");
    ck_assert_int_eq(c.n_hidden, 2);
    ck_assert_int_eq(c.hidden[0], 64);
    ck_assert_int_eq(c.hidden[1], 32);
    ck_assert(c.json);
    ck_assert_int_eq(c.threads, 3);
    ck_assert_str_eq(c.config_path, path);
    fmt(&c, "hidden", buf);
    ck_assert_str_eq(buf, "64,32");
    for (size_t i = 0; i < config_n_keys(); i++) {
        const char *k = config_key(i);
        int in_file = strstr(text, k) && strcmp(k, "data") != 0 && strcmp(k, "out") != 0;
        ck_assert_msg(c.origin[i] == (in_file ? CONFIG_SRC_FILE : CONFIG_SRC_DEFAULT), "%s", k);
    }
    config_free(&c);
    unlink(path);
}
END_TEST

/* Syntax errors, each at a known line with a known message. */
static const struct {
    const char *text;
    int line;
    const char *msg;
} syntax_bad[] = {
    {"\n\nlissten 127.0.0.1:80\n", 3, "unknown key 'lissten'"},
    {"listen 1.2.3.4:80\n# x\nlisten 1.2.3.4:81\n", 3,
     "duplicate key 'listen' (first set on line 1)"},
    {"threads\n", 1, "threads has no value"},
    {"threads # comment\n", 1, "threads has no value"},
    {"model \"abc\n", 1, "unterminated"},
    {"model \"a\\nb\"\n", 1, "unknown escape"},
    {"model a b\n", 1, "text after its value"},
    {"model \"a\" b\n", 1, "text after its value"},
    {"Listen 1.2.3.4:80\n", 1, "unknown key 'Listen'"},
    {"max-body 1M\n", 1, "unknown key 'max-body'"},
    {"listen=1.2.3.4:80\n", 1, "unknown key"},
    {"#\n#\n#\n#\nthreads x\n", 5, "threads: 'x' not an integer"},
};

START_TEST(file_syntax_errors) {
    for (size_t i = 0; i < sizeof syntax_bad / sizeof syntax_bad[0]; i++) {
        Config c;
        ConfigMode m;
        char err[SM_ERRMAX], want[128];
        const char *path = CONF(syntax_bad[i].text);
        ck_assert_int_lt(parse(ARGS("--config", path), NULL, &c, &m, err), 0);
        snprintf(want, sizeof want, "%s:%d: ", path, syntax_bad[i].line);
        ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "case %zu: '%s'", i, err);
        ck_assert_msg(strstr(err, syntax_bad[i].msg), "case %zu: '%s'", i, err);
        ck_assert_ptr_null(c.model); /* failure leaves nothing to free */
        unlink(path);
    }
}
END_TEST

START_TEST(file_errors) {
    Config c;
    ConfigMode m;
    char err[SM_ERRMAX];
    ck_assert_int_eq(parse(ARGS("--config", "/nonexistent/siamesed.conf"), NULL, &c, &m, err),
                     -ENOENT);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/siamesed.conf"));
    ck_assert_int_eq(parse(ARGS("--config", "/tmp"), NULL, &c, &m, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
    const char *path = write_conf("threads 1\n\0threads 2\n", 21);
    ck_assert_int_eq(parse(ARGS("--config", path), NULL, &c, &m, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "NUL byte"));
    unlink(path);
    size_t big = CONFIG_MAX_FILE + 1;
    char *text = malloc(big);
    memset(text, '#', big);
    path = write_conf(text, big);
    free(text);
    ck_assert_int_eq(parse(ARGS("--config", path), NULL, &c, &m, err), -EFBIG);
    unlink(path);
    ck_assert_int_lt(parse(ARGS("--config"), NULL, &c, &m, err), 0);
    ck_assert_ptr_nonnull(strstr(err, "--config needs a value"));
    path = CONF("threads 1\n");
    ck_assert_int_lt(parse(ARGS("--config", path, "--config", path), NULL, &c, &m, err), 0);
    ck_assert_ptr_nonnull(strstr(err, "--config given twice"));
    unlink(path);
}
END_TEST

/* Values every source must refuse. */
static const struct {
    const char *key, *value;
} bad_values[] = {
    {"listen", ""},
    {"listen", "abc"},
    {"listen", "1.2.3.4"},
    {"listen", "1.2.3.4:"},
    {"listen", "1.2.3.4:65536"},
    {"listen", "1.2.3.4:http"},
    {"listen", "::1:80"},
    {"listen", "[::1:80"},
    {"listen", "[zz]:80"},
    {"listen", "[]:80"},
    {"listen", "999.1.1.1:80"},
    {"listen", "-bad:80"},
    {"listen", "a..b:80"},
    {"listen", "a_b:80"},
    {"listen", "[1.2.3.4]:80"},
    {"model", ""},
    {"model", "a\tb"},
    {"db", ""},
    {"data", ""},
    {"test_data", "x\x7f"},
    {"train_if_missing", "maybe"},
    {"train_if_missing", ""},
    {"train_if_missing", "2"},
    {"threads", "-1"},
    {"threads", "257"},
    {"threads", "1.5"},
    {"threads", ""},
    {"threads", " 1"},
    {"threads", "1x"},
    {"threads", "+-1"},
    {"threads", "99999999999999999999"},
    {"max_body", "1023"},
    {"max_body", "1025M"},
    {"max_body", "2G"},
    {"max_body", "1T"},
    {"max_body", "abc"},
    {"max_body", "-1"},
    {"max_body", "16MB"},
    {"max_body", "M"},
    {"max_body", "99999999999999999999G"},
    {"max_body", "18014398509481984K"},
    {"max_image_width", "0"},
    {"max_image_width", "65536"},
    {"max_image_height", "0"},
    {"max_image_pixels", "0"},
    {"max_image_pixels", "268435457"},
    {"max_connections", "0"},
    {"max_connections", "100001"},
    {"max_per_ip", "-1"},
    {"max_per_ip", "100001"},
    {"connection_timeout", "0"},
    {"connection_timeout", "3601"},
    {"max_json_depth", "0"},
    {"max_json_depth", "1001"},
    {"keep_images", "yess"},
    {"api_keys", "short:read"},
    {"api_keys", KEY_A ":admin"},
    {"api_keys", KEY_A},
    {"api_keys", KEY_A "!:read"},
    {"api_keys", ","},
    {"api_keys", KEY_A ":read,"},
    {"api_keys", KEY_A ":read,," KEY_B ":read"},
    {"api_keys", ":read"},
    {"api_keys", KEY_A ":READ"},
    {"api_keys", KEY_A "::read"},
    {"tls_cert", "a\nb"},
    {"log_level", "loud"},
    {"log_level", "INFO"},
    {"log_level", ""},
    {"blas_kernel", ""},
    {"conv_backend", "cuda"},
    {"conv_backend", "BF16"},
    {"identify_k", "0"},
    {"identify_k", "1001"},
    {"epochs", "0"},
    {"epochs", "10001"},
    {"batch", "0"},
    {"batch", "65537"},
    {"lr", "0"},
    {"lr", "-1"},
    {"lr", "10.5"},
    {"lr", "nan"},
    {"lr", "inf"},
    {"lr", "0x10"},
    {"lr", "1e999"},
    {"lr", "1e"},
    {"lr", "."},
    {"lr", ""},
    {"lr", "1,5"},
    {"optimizer", "sgd"},
    {"optimizer", "Adam"},
    {"lr_schedule", "linear"},
    {"lr_schedule", "Cosine"},
    {"weight_decay", "-0.1"},
    {"weight_decay", "1.5"},
    {"ema", "1"},
    {"ema", "-0.5"},
    {"ema", "nan"},
    {"margin", "0"},
    {"margin", "100.1"},
    {"hidden", ""},
    {"hidden", "0"},
    {"hidden", "4097"},
    {"hidden", "1,2,3,4,5,6,7,8,9"},
    {"hidden", "1,,2"},
    {"hidden", "1,"},
    {"hidden", ",1"},
    {"hidden", "a"},
    {"hidden", "-1"},
    {"hidden", "1;2"},
    {"hidden", "1 2"},
    {"hidden", "99999999999999999999"},
    {"dropout", "1"},
    {"dropout", "-0.1"},
    {"dropout", "1.5"},
    {"seed", "-1"},
    {"seed", "18446744073709551616"},
    {"seed", "abc"},
    {"seed", ""},
    {"seed", "+1"},
    {"val_fraction", "0.51"},
    {"val_fraction", "-0.01"},
    {"val_fraction", "0"},
    {"out", "a\rb"},
    {"json", "yesno"},
};

START_TEST(bad_values_file_line) {
    for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
        const char *key = bad_values[i].key, *v = bad_values[i].value;
        if (strpbrk(v, "\n\r\""))
            continue; /* cannot be written on one file line */
        Config c;
        ConfigMode m;
        char text[256], err[SM_ERRMAX], want[128];
        snprintf(text, sizeof text, "# header\n\n%s\n%s \"%s\"\n",
                 strcmp(key, "epochs") ? "epochs 3" : "batch 3", key, v);
        const char *path = CONF(text);
        int rc = parse(ARGS("--config", path), NULL, &c, &m, err);
        ck_assert_msg(rc == -EINVAL || rc == -ERANGE, "%s '%s': rc %d", key, v, rc);
        snprintf(want, sizeof want, "%s:4: %s", path, key);
        ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s '%s': '%s'", key, v, err);
        unlink(path);
    }
}
END_TEST

START_TEST(bad_values_flag_env_set) {
    for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
        const char *key = bad_values[i].key, *v = bad_values[i].value;
        Config c;
        ConfigMode m;
        char flag[300], env[300], err[SM_ERRMAX], want[320];
        int n = snprintf(flag, sizeof flag, "--%s", key);
        for (char *p = flag; *p; p++)
            *p = *p == '_' ? '-' : *p;
        snprintf(want, sizeof want, "option %s: ", flag);
        snprintf(flag + n, sizeof flag - (size_t)n, "=%s", v);
        int rc = parse(ARGS(flag), NULL, &c, &m, err);
        ck_assert_msg(rc == -EINVAL || rc == -ERANGE, "%s: rc %d", flag, rc);
        ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s: '%s'", flag, err);

        n = snprintf(env, sizeof env, "SIAMESED_");
        for (const char *p = key; *p; p++)
            env[n++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        env[n] = 0;
        snprintf(want, sizeof want, "%s: ", env);
        snprintf(env + n, sizeof env - (size_t)n, "=%s", v);
        rc = parse(NULL, ARGS("HOME=/root", env), &c, &m, err);
        ck_assert_msg(rc == -EINVAL || rc == -ERANGE, "%s: rc %d", env, rc);
        ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s: '%s'", env, err);

        /* config_set refuses too and keeps the old value. */
        char before[512], after[512];
        ck_assert_int_eq(config_init(&c, err), 0);
        fmt(&c, key, before);
        rc = config_set(&c, key, v, err);
        ck_assert_msg(rc == -EINVAL || rc == -ERANGE, "set %s '%s': rc %d", key, v, rc);
        fmt(&c, key, after);
        ck_assert_str_eq(before, after);
        config_free(&c);
    }
}
END_TEST

/* Accepted values and the canonical text they format to. */
static const struct {
    const char *key, *value, *canonical;
} good_values[] = {
    {"listen", "[::1]:9000", "[::1]:9000"},
    {"listen", "localhost:1", "localhost:1"},
    {"listen", "0.0.0.0:65535", "0.0.0.0:65535"},
    {"listen", "my-host.example:80", "my-host.example:80"},
    {"listen", "[::]:80", "[::]:80"},
    {"listen", "127.0.0.1:0", "127.0.0.1:0"},
    {"listen", ":80", ":80"}, /* every interface */
    {"model", "a b/c#d", "a b/c#d"},
    {"test_data", "", ""},
    {"train_if_missing", "TRUE", "yes"},
    {"train_if_missing", "Off", "no"},
    {"train_if_missing", "1", "yes"},
    {"train_if_missing", "0", "no"},
    {"keep_images", "false", "no"},
    {"keep_images", "ON", "yes"},
    {"threads", "256", "256"},
    {"threads", "0", "0"},
    {"threads", "007", "7"},
    {"max_body", "1K", "1K"},
    {"max_body", "1024", "1K"},
    {"max_body", "1025", "1025"},
    {"max_body", "1g", "1G"},
    {"max_body", "1536K", "1536K"},
    {"max_body", "1024m", "1G"},
    {"max_image_pixels", "268435456", "268435456"},
    {"max_per_ip", "0", "0"},
    {"api_keys", "", ""},
    {"api_keys", " ", ""},
    {"api_keys", KEY_A ":read, " KEY_B ":write", "(2 keys redacted)"},
    {"log_level", "debug", "debug"},
    {"log_level", "error", "error"},
    {"blas_kernel", "SkylakeX", "SkylakeX"},
    {"conv_backend", "bf16", "bf16"},
    {"conv_backend", "im2col", "im2col"},
    {"identify_k", "1000", "1000"},
    {"lr", "1e-3", "0.001"},
    {"lr", "10", "10"},
    {"lr", "0.0001", "0.0001"},
    {"lr", "3.14159265358979", "3.14159265358979"},
    {"optimizer", "adam", "adam"},
    {"margin", "100", "100"},
    {"margin", "1e-9", "1e-09"},
    {"hidden", "64", "64"},
    {"hidden", " 1 , 4096 ,2 ", "1,4096,2"},
    {"hidden", "8,7,6,5,4,3,2,1", "8,7,6,5,4,3,2,1"},
    {"dropout", "0", "0"},
    {"dropout", "0.999", "0.999"},
    {"seed", "0", "0"},
    {"seed", "18446744073709551615", "18446744073709551615"},
    {"val_fraction", "0.5", "0.5"},
    {"val_fraction", "0.001", "0.001"},
    {"out", "--weird", "--weird"},
    {"json", "yes", "yes"},
};

START_TEST(good_values_round_trip) {
    for (size_t i = 0; i < sizeof good_values / sizeof good_values[0]; i++) {
        const char *key = good_values[i].key;
        Config c;
        char err[SM_ERRMAX], buf[512], again[512];
        ck_assert_int_eq(config_init(&c, err), 0);
        int rc = config_set(&c, key, good_values[i].value, err);
        ck_assert_msg(rc == 0, "%s '%s': %s", key, good_values[i].value, err);
        fmt(&c, key, buf);
        ck_assert_str_eq(buf, good_values[i].canonical);
        if (strcmp(key, "api_keys") != 0) { /* the canonical text reads back the same */
            ck_assert_int_eq(config_set(&c, key, buf, err), 0);
            fmt(&c, key, again);
            ck_assert_str_eq(again, buf);
        }
        ck_assert_int_eq(c.origin[0] == CONFIG_SRC_SET, strcmp(key, "listen") == 0);
        config_free(&c);
    }
}
END_TEST

START_TEST(typed_fields) {
    Config c;
    char err[SM_ERRMAX];
    ck_assert_int_eq(config_init(&c, err), 0);
    ck_assert_int_eq(config_set(&c, "listen", "[fe80::1]:443", err), 0);
    ck_assert_str_eq(c.listen.host, "fe80::1");
    ck_assert_int_eq(c.listen.port, 443);
    ck_assert_int_eq(config_set(&c, "max_body", "3M", err), 0);
    ck_assert_uint_eq(c.max_body, 3u << 20);
    ck_assert_int_eq(config_set(&c, "seed", "18446744073709551615", err), 0);
    ck_assert_uint_eq(c.seed, UINT64_MAX);
    ck_assert_int_eq(config_set(&c, "optimizer", "adam", err), 0);
    ck_assert_int_eq(c.optimizer, CONFIG_OPT_ADAM);
    ck_assert_int_eq(c.lr_schedule, CONFIG_LR_CONSTANT);
    ck_assert_int_eq(config_set(&c, "lr_schedule", "cosine", err), 0);
    ck_assert_int_eq(c.lr_schedule, CONFIG_LR_COSINE);
    ck_assert(c.weight_decay == 0 && c.ema == 0); /* off unless asked */
    ck_assert_int_eq(config_set(&c, "weight_decay", "0.05", err), 0);
    ck_assert_double_eq(c.weight_decay, 0.05);
    ck_assert_int_eq(config_set(&c, "ema", "0.999", err), 0);
    ck_assert_double_eq(c.ema, 0.999);
    const char *levels[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) { /* the enum's words follow LogLevel's order */
        LogLevel want;
        ck_assert_int_eq(log_parse_level(levels[i], &want), 0);
        ck_assert_int_eq(config_set(&c, "log_level", levels[i], err), 0);
        ck_assert_int_eq(c.log_level, want);
    }
    ck_assert_int_eq(config_set(&c, "api_keys", KEY_A ":read," KEY_B ":write", err), 0);
    ck_assert_int_eq(c.n_api_keys, 2);
    ck_assert_str_eq(c.api_keys[0].key, KEY_A);
    ck_assert_int_eq(c.api_keys[0].scope, CONFIG_SCOPE_READ);
    ck_assert_str_eq(c.api_keys[1].key, KEY_B);
    ck_assert_int_eq(c.api_keys[1].scope, CONFIG_SCOPE_WRITE);
    ck_assert_int_eq(config_set(&c, "api_keys", "", err), 0); /* replaces, frees the old */
    ck_assert_int_eq(c.n_api_keys, 0);
    ck_assert_ptr_null(c.api_keys);
    ck_assert_int_eq(config_set(&c, "hidden", "5,6", err), 0);
    ck_assert_int_eq(c.n_hidden, 2);
    ck_assert_int_eq(c.hidden[2], 0);
    ck_assert_int_eq(config_set(&c, "no_such_key", "1", err), -ENOENT);
    ck_assert_ptr_nonnull(strstr(err, "unknown key 'no_such_key'"));
    config_free(&c);
}
END_TEST

START_TEST(precedence) {
    Config c;
    ConfigMode m;
    char err[SM_ERRMAX];
    const char *path = CONF("threads 1\nepochs 2\nbatch 3\nlr 0.5\n");
    const char *const env[] = {"PATH=/usr/bin", "SIAMESED_EPOCHS=4", "SIAMESED_BATCH=5",
                               "SIAMESEDX=1",   "SM_SIAMESED_Y=2",   NULL};
    /* --config comes after a flag on purpose: the file is still read first. */
    ck_assert_msg(parse(ARGS("--batch", "6", "--config", path), env, &c, &m, err) == 0, "%s", err);
    ck_assert_int_eq(c.threads, 1);
    ck_assert_double_eq(c.lr, 0.5);
    ck_assert_int_eq(c.epochs, 4);
    ck_assert_int_eq(c.batch, 6);
    ck_assert_int_eq(c.identify_k, 5);
    const char *keys[] = {"threads", "lr", "epochs", "batch", "identify_k"};
    const ConfigSource want[] = {CONFIG_SRC_FILE, CONFIG_SRC_FILE, CONFIG_SRC_ENV, CONFIG_SRC_FLAG,
                                 CONFIG_SRC_DEFAULT};
    for (size_t k = 0; k < 5; k++)
        for (size_t i = 0; i < config_n_keys(); i++)
            if (strcmp(config_key(i), keys[k]) == 0)
                ck_assert_msg(c.origin[i] == want[k], "%s from %s", keys[k],
                              config_source_name((ConfigSource)c.origin[i]));
    config_free(&c);
    /* A bad value in a lower source is an error even if a higher one overrides it. */
    const char *const bad_env[] = {"SIAMESED_EPOCHS=0", NULL};
    ck_assert_int_eq(parse(ARGS("--epochs", "7"), bad_env, &c, &m, err), -ERANGE);
    unlink(path);
}
END_TEST

START_TEST(flag_syntax) {
    Config c;
    ConfigMode m;
    char err[SM_ERRMAX];
    ck_assert_int_eq(
        parse(ARGS("--threads", "4", "--max-body=2M", "--json", "--keep-images", "no",
                   "--train-if-missing=off", "--out=--weird", "--test-data=", "--hidden", "16,8"),
              NULL, &c, &m, err),
        0);
    ck_assert_int_eq(c.threads, 4);
    ck_assert_uint_eq(c.max_body, 2u << 20);
    ck_assert(c.json);
    ck_assert(!c.keep_images);
    ck_assert(!c.train_if_missing);
    ck_assert_str_eq(c.out, "--weird");
    ck_assert_str_eq(c.test_data, "");
    ck_assert_int_eq(c.n_hidden, 2);
    config_free(&c);
    /* A bare bool before another flag or a mode. */
    ck_assert_int_eq(parse(ARGS("--json", "--train"), NULL, &c, &m, err), 0);
    ck_assert(c.json);
    ck_assert_int_eq(m, CONFIG_MODE_TRAIN);
    config_free(&c);
    ck_assert_int_eq(parse(ARGS("--train", "--json"), NULL, &c, &m, err), 0);
    ck_assert(c.json);
    config_free(&c);

    const struct {
        const char *const *args;
        const char *msg;
    } bad[] = {
        {ARGS("--threads"), "option --threads needs a value"},
        {ARGS("--out", "--train"), "option --out needs a value"},
        {ARGS("--threads", "1", "--threads", "2"), "option --threads given twice"},
        {ARGS("--json", "--json=no"), "option --json given twice"},
        {ARGS("--json", "maybe"), "option --json: 'maybe' not a bool"},
        {ARGS("--lissten", "x"), "unknown option --lissten"},
        {ARGS("--max_body", "1M"), "unknown option --max_body (did you mean --max-body?)"},
        {ARGS("--MAX-BODY", "1M"), "unknown option --MAX-BODY"},
        {ARGS("-x"), "unexpected argument '-x'"},
        {ARGS("--"), "unexpected argument '--'"},
        {ARGS("serve"), "unexpected argument 'serve'"},
        {ARGS("--listen=", "--train"), "option --listen: '' not HOST:PORT"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_lt(parse(bad[i].args, NULL, &c, &m, err), 0);
        ck_assert_msg(strstr(err, bad[i].msg), "case %zu: '%s'", i, err);
        ck_assert_ptr_null(c.model);
    }
}
END_TEST

START_TEST(unknown_env) {
    Config c;
    ConfigMode m;
    char err[SM_ERRMAX];
    const char *const cases[][2] = {
        {"SIAMESED_LISSTEN=1", "unknown environment variable SIAMESED_LISSTEN"},
        {"SIAMESED_threads=1", "unknown environment variable SIAMESED_threads"},
        {"SIAMESED_MAX-BODY=1", "unknown environment variable SIAMESED_MAX-BODY"},
        {"SIAMESED_=1", "unknown environment variable SIAMESED_"},
        {"SIAMESED_API_KEY=supersecret", "unknown environment variable SIAMESED_API_KEY"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *const env[] = {cases[i][0], NULL};
        ck_assert_int_eq(parse(NULL, env, &c, &m, err), -EINVAL);
        /* the start: a "did you mean" may follow (test_config_hints.c) */
        ck_assert_msg(strncmp(err, cases[i][1], strlen(cases[i][1])) == 0, "'%s'", err);
        ck_assert_ptr_null(strstr(err, "supersecret"));
    }
    const char *const twice[] = {"SIAMESED_THREADS=1", "SIAMESED_THREADS=2", NULL};
    ck_assert_int_eq(parse(NULL, twice, &c, &m, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "SIAMESED_THREADS is set twice"));
    /* The BLAS module's variable is a table key. */
    const char *const blas[] = {"SIAMESED_BLAS_KERNEL=system", NULL};
    ck_assert_int_eq(parse(NULL, blas, &c, &m, err), 0);
    ck_assert_str_eq(c.blas_kernel, "system");
    config_free(&c);
}
END_TEST

START_TEST(secrets_stay_secret) {
    Config c;
    ConfigMode m;
    char err[SM_ERRMAX], buf[512];
    ck_assert_int_lt(parse(ARGS("--api-keys=supersecretvalue1234:admin"), NULL, &c, &m, err), 0);
    ck_assert_ptr_null(strstr(err, "supersecret"));
    ck_assert_ptr_nonnull(strstr(err, "scope must be read or write"));
    const char *const env[] = {"SIAMESED_API_KEYS=supersecret!:read", NULL};
    ck_assert_int_lt(parse(NULL, env, &c, &m, err), 0);
    ck_assert_ptr_null(strstr(err, "supersecret"));
    const char *path = CONF("api_keys supersecretvalue1234:read,tiny:write\n");
    ck_assert_int_lt(parse(ARGS("--config", path), NULL, &c, &m, err), 0);
    ck_assert_ptr_null(strstr(err, "supersecret"));
    ck_assert_ptr_nonnull(strstr(err, "item 2: key must be 16 to 256 characters"));
    unlink(path);

    ck_assert_int_eq(parse(ARGS("--api-keys", "supersecretvalue1234:read,"
                                              "anothersecretvalue12:write,"
                                              "thirdsecretvalue1234:write"),
                           NULL, &c, &m, err),
                     0);
    fmt(&c, "api_keys", buf);
    ck_assert_str_eq(buf, "(3 keys redacted)");
    char *json = NULL;
    ck_assert_int_eq(config_dump_json(&c, &json, err), 0);
    ck_assert_ptr_null(strstr(json, "secret"));
    cJSON *root = cJSON_Parse(json);
    ck_assert_ptr_nonnull(root);
    cJSON *keys = cJSON_GetObjectItemCaseSensitive(root, "api_keys");
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(keys, "read")->valueint, 1);
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(keys, "write")->valueint, 2);
    cJSON_Delete(root);
    free(json);
    config_free(&c);
}
END_TEST

START_TEST(modes) {
    const struct {
        const char *const *args;
        ConfigMode mode;
    } ok[] = {
        {NULL, CONFIG_MODE_SERVE},
        {ARGS("--train"), CONFIG_MODE_TRAIN},
        {ARGS("--eval"), CONFIG_MODE_EVAL},
        {ARGS("--reembed"), CONFIG_MODE_REEMBED},
        {ARGS("--help"), CONFIG_MODE_HELP},
        {ARGS("-h"), CONFIG_MODE_HELP},
        {ARGS("--version"), CONFIG_MODE_VERSION},
        {ARGS("--threads", "2", "--eval", "--epochs=3"), CONFIG_MODE_EVAL},
        /* help and version read no values, files or variables */
        {ARGS("--help", "--threads", "999", "--config", "/nonexistent"), CONFIG_MODE_HELP},
        {ARGS("--version", "--listen=bad"), CONFIG_MODE_VERSION},
    };
    const char *const bad_env[] = {"SIAMESED_THREADS=x", NULL};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        Config c;
        ConfigMode m = (ConfigMode)-1;
        char err[SM_ERRMAX];
        bool quiet = ok[i].mode == CONFIG_MODE_HELP || ok[i].mode == CONFIG_MODE_VERSION;
        ck_assert_msg(parse(ok[i].args, quiet ? bad_env : NULL, &c, &m, err) == 0, "case %zu: %s",
                      i, err);
        ck_assert_int_eq(m, ok[i].mode);
        ck_assert_str_eq(c.model, "siamesed-data/model.safetensors");
        config_free(&c);
    }
    const struct {
        const char *const *args;
        const char *msg;
    } bad[] = {
        {ARGS("--train", "--eval"), "--train and --eval: give at most one mode"},
        {ARGS("--help", "--version"), "--help and --version"},
        {ARGS("--train", "--train"), "--train and --train"},
        {ARGS("-h", "--reembed"), "-h and --reembed"},
        {ARGS("--train=yes"), "option --train takes no value"},
        {ARGS("--help", "--bogus"), "unknown option --bogus"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        Config c;
        ConfigMode m;
        char err[SM_ERRMAX];
        ck_assert_int_eq(parse(bad[i].args, NULL, &c, &m, err), -EINVAL);
        ck_assert_msg(strstr(err, bad[i].msg), "case %zu: '%s'", i, err);
    }
    ck_assert_str_eq(config_mode_name(CONFIG_MODE_REEMBED), "reembed");
    /* Every mode has its name (the table of modes is the only list). */
    ck_assert_str_eq(config_mode_name(CONFIG_MODE_SERVE), "serve");
    ck_assert_str_eq(config_mode_name(CONFIG_MODE_CALIBRATE), "calibrate");
    ck_assert_str_eq(config_mode_name(CONFIG_MODE_AUDIT), "audit");
    ck_assert_str_eq(config_mode_name((ConfigMode)99), "?");
    ck_assert_str_eq(config_source_name(CONFIG_SRC_ENV), "env");
}
END_TEST

START_TEST(cross_field) {
    Config c;
    ConfigMode m;
    char err[SM_ERRMAX];
    ck_assert_int_eq(parse(ARGS("--tls-cert", "c.pem"), NULL, &c, &m, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "tls_cert and tls_key must be set together"));
    const char *const env[] = {"SIAMESED_TLS_KEY=k.pem", NULL};
    ck_assert_int_eq(parse(NULL, env, &c, &m, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "tls_key set by env"));
    /* Merged from two sources, the pair is complete. */
    const char *path = CONF("tls_cert c.pem\n");
    ck_assert_int_eq(parse(ARGS("--config", path), env, &c, &m, err), 0);
    ck_assert_str_eq(c.tls_cert, "c.pem");
    ck_assert_str_eq(c.tls_key, "k.pem");
    config_free(&c);
    /* ... and a flag can empty one of them again. */
    ck_assert_int_eq(parse(ARGS("--config", path, "--tls-cert="), env, &c, &m, err), -EINVAL);
    unlink(path);
    ck_assert_int_eq(
        parse(ARGS("--api-keys", KEY_A ":read," KEY_B ":read," KEY_A ":write"), NULL, &c, &m, err),
        -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "entries 1 and 3 have the same key"));
    ck_assert_ptr_null(strstr(err, KEY_A));
    ck_assert_int_eq(config_init(&c, err), 0);
    ck_assert_int_eq(config_check(&c, err), 0);
    config_free(&c);
}
END_TEST

START_TEST(list_bounds) {
    /* 256 keys are fine, 257 are refused before anything is allocated for them. */
    size_t cap = 300 * 40;
    char *v = malloc(cap), err[SM_ERRMAX];
    Config c;
    ck_assert_int_eq(config_init(&c, err), 0);
    for (int n = 256; n <= 257; n++) {
        size_t len = 0;
        for (int i = 0; i < n; i++)
            len += (size_t)snprintf(v + len, cap - len, "%skey%016d:read", i ? "," : "", i);
        int rc = config_set(&c, "api_keys", v, err);
        ck_assert_int_eq(rc, n == 256 ? 0 : -ERANGE);
    }
    ck_assert_int_eq(c.n_api_keys, 256);
    ck_assert_int_eq(config_check(&c, err), 0);
    free(v);
    config_free(&c);
}
END_TEST

START_TEST(help_mentions_every_key) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    config_print_help(f);
    fclose(f);
    ck_assert_uint_gt(config_n_keys(), 30);
    ck_assert_ptr_null(config_key(config_n_keys()));
    for (size_t i = 0; i < config_n_keys(); i++) {
        char flag[64], env[64];
        const char *k = config_key(i);
        size_t n = 0;
        for (; k[n]; n++) {
            flag[n] = k[n] == '_' ? '-' : k[n];
            env[n] = (char)(k[n] >= 'a' && k[n] <= 'z' ? k[n] - 32 : k[n]);
        }
        flag[n] = env[n] = 0;
        char want_flag[80], want_env[80];
        snprintf(want_flag, sizeof want_flag, "  --%s ", flag);
        snprintf(want_env, sizeof want_env, "(SIAMESED_%s)", env);
        ck_assert_msg(strstr(text, want_flag), "help lacks %s", want_flag);
        ck_assert_msg(strstr(text, want_env), "help lacks %s", want_env);
    }
    const char *also[] = {"--train",
                          "--eval",
                          "--reembed",
                          "--help",
                          "--version",
                          "--config FILE",
                          "default 127.0.0.1:8080",
                          "(0, 10]",
                          "1K..1G",
                          "Precedence"};
    for (size_t i = 0; i < sizeof also / sizeof also[0]; i++)
        ck_assert_msg(strstr(text, also[i]), "help lacks %s", also[i]);
    free(text);
}
END_TEST

START_TEST(shipped_config_is_the_defaults) {
    const char *dir = getenv("SM_TEST_DATA");
    ck_assert_ptr_nonnull(dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/../../config/siamesed.conf", dir);
    Config file, def;
    ConfigMode m;
    char err[SM_ERRMAX], a[512], b[512];
    ck_assert_msg(parse(ARGS("--config", path), NULL, &file, &m, err) == 0, "%s", err);
    ck_assert_int_eq(config_init(&def, err), 0);
    for (size_t i = 0; i < config_n_keys(); i++) {
        const char *k = config_key(i);
        ck_assert_msg(file.origin[i] == CONFIG_SRC_FILE, "siamesed.conf does not set %s", k);
        fmt(&file, k, a);
        fmt(&def, k, b);
        ck_assert_msg(strcmp(a, b) == 0, "siamesed.conf: %s is '%s', default '%s'", k, a, b);
    }
    ck_assert_int_eq(memcmp(file.hidden, def.hidden, sizeof def.hidden), 0);
    config_free(&file);
    config_free(&def);
}
END_TEST

START_TEST(dump_and_log) {
    Config c;
    char err[SM_ERRMAX], *json = NULL;
    ck_assert_int_eq(config_init(&c, err), 0);
    ck_assert_int_eq(config_set(&c, "seed", "18446744073709551615", err), 0);
    ck_assert_int_eq(config_dump_json(&c, &json, err), 0);
    cJSON *root = cJSON_Parse(json);
    ck_assert_ptr_nonnull(root);
    ck_assert_int_eq(cJSON_GetArraySize(root), (int)config_n_keys());
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(root, "listen")->valuestring,
                     "127.0.0.1:8080");
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(root, "max_body")->valuedouble,
                        16777216.0);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "keep_images")));
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(root, "lr")->valuedouble, 0.001);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "hidden")), 3);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(root, "seed")->valuestring,
                     "18446744073709551615");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(root, "optimizer")->valuestring, "rmsprop");
    cJSON_Delete(root);
    free(json);
    char small[4];
    ck_assert_int_eq(config_format(&c, "model", small, sizeof small), -ENOSPC);
    ck_assert_str_eq(small, "sia");
    ck_assert_int_eq(config_format(&c, "nope", small, sizeof small), -ENOENT);
    log_set_level(LOG_ERROR); /* exercised for memory errors, not printed */
    config_log(&c);
    config_free(&c);
}
END_TEST

int main(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, file_syntax);
    tcase_add_test(tc, file_syntax_errors);
    tcase_add_test(tc, file_errors);
    tcase_add_test(tc, bad_values_file_line);
    tcase_add_test(tc, bad_values_flag_env_set);
    tcase_add_test(tc, good_values_round_trip);
    tcase_add_test(tc, typed_fields);
    tcase_add_test(tc, precedence);
    tcase_add_test(tc, flag_syntax);
    tcase_add_test(tc, unknown_env);
    tcase_add_test(tc, secrets_stay_secret);
    tcase_add_test(tc, modes);
    tcase_add_test(tc, cross_field);
    tcase_add_test(tc, list_bounds);
    tcase_add_test(tc, help_mentions_every_key);
    tcase_add_test(tc, shipped_config_is_the_defaults);
    tcase_add_test(tc, dump_and_log);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, tcase_config_hints());
    return check_run(s);
}
