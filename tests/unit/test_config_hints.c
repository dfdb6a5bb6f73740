/*
 * test_config_hints.c — the config module's newer corners, in the config
 * executable beside test_config.c:
 *   - unknown flags, file keys, environment variables and config_set() keys
 *     get "did you mean" the nearest table entry (a typo or two away), and
 *     nothing when no entry is near;
 *   - "--listen :PORT" is every interface (host "");
 *   - --info [MODEL] is a mode whose argument sets `model`;
 *   - config_add_api_key() checks a key as api_keys would and refuses a
 *     duplicate, never echoing the key.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "siamese/common.h"
#include "siamese/config.h"

#include "test_config.h"

static const struct {
    const char *arg, *want;
} flag_hints[] = {
    {"--lissten", "unknown option --lissten (did you mean --listen?)"},
    {"--max_body", "unknown option --max_body (did you mean --max-body?)"},
    {"--trian", "unknown option --trian (did you mean --train?)"},
    {"--ai-keys", "unknown option --ai-keys (did you mean --api-keys?)"},
    {"--confg", "unknown option --confg (did you mean --config?)"},
    {"--Threads", "unknown option --Threads (did you mean --threads?)"},
    {"--keep-imgaes", "unknown option --keep-imgaes (did you mean --keep-images?)"},
    {"--zzzzzz", "unknown option --zzzzzz"},
    {"--x", "unknown option --x"},
    {"--under_score_far_away", "unknown option --under_score_far_away (flags use '-')"},
};

START_TEST(flags_suggest) {
    Config c;
    ConfigMode m;
    char err[SM_ERRMAX];
    const char *arg = flag_hints[_i].arg;
    ck_assert_int_lt(test_config_parse(ARGS(arg, "1"), NULL, &c, &m, err), 0);
    ck_assert_str_eq(err, flag_hints[_i].want);
}
END_TEST

START_TEST(words_that_meant_flags) {
    Config c;
    ConfigMode m;
    char err[SM_ERRMAX];
    static const char *const cases[][2] = {
        {"train", "unexpected argument 'train' (did you mean --train?)"},
        {"-train", "unexpected argument '-train' (did you mean --train?)"},
        {"serve", "unexpected argument 'serve' (serving is the default: give no mode flag)"},
        {"model.safetensors",
         "unexpected argument 'model.safetensors' (settings are --name value)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ck_assert_int_lt(test_config_parse(ARGS(cases[i][0]), NULL, &c, &m, err), 0);
        ck_assert_str_eq(err, cases[i][1]);
    }
}
END_TEST

START_TEST(keys_and_env_suggest) {
    Config c;
    ConfigMode m;
    char err[SM_ERRMAX], want[SM_ERRMAX];
    const char *path = test_config_write("threds 2\n");
    ck_assert_int_lt(test_config_parse(ARGS("--config", path), NULL, &c, &m, err), 0);
    snprintf(want, sizeof want, "%s:1: unknown key 'threds' (did you mean threads?)", path);
    ck_assert_str_eq(err, want);
    unlink(path);
    const char *const env[] = {"SIAMESED_LISTN=1.2.3.4:5", NULL};
    ck_assert_int_lt(test_config_parse(ARGS("--eval"), env, &c, &m, err), 0);
    ck_assert_str_eq(err, "unknown environment variable SIAMESED_LISTN (did you mean "
                          "SIAMESED_LISTEN?)");
    ck_assert_int_eq(config_init(&c, err), 0);
    ck_assert_int_eq(config_set(&c, "marginn", "1", err), -ENOENT);
    ck_assert_str_eq(err, "unknown key 'marginn' (did you mean margin?)");
    ck_assert_int_eq(config_set(&c, "qqqqqqqq", "1", err), -ENOENT);
    ck_assert_str_eq(err, "unknown key 'qqqqqqqq'");
    config_free(&c);
}
END_TEST

START_TEST(listen_port_only_is_every_interface) {
    Config c;
    ConfigMode m;
    char err[SM_ERRMAX], buf[64];
    ck_assert_int_eq(test_config_parse(ARGS("--listen", ":9000"), NULL, &c, &m, err), 0);
    ck_assert_str_eq(c.listen.host, "");
    ck_assert_int_eq(c.listen.port, 9000);
    ck_assert_int_eq(config_format(&c, "listen", buf, sizeof buf), 0);
    ck_assert_str_eq(buf, ":9000");
    config_free(&c);
    ck_assert_int_lt(test_config_parse(ARGS("--listen", "9000"), NULL, &c, &m, err), 0);
    ck_assert_ptr_nonnull(strstr(err, ":PORT for every interface"));
}
END_TEST

START_TEST(info_mode) {
    Config c;
    ConfigMode m;
    char err[SM_ERRMAX];
    ck_assert_int_eq(
        test_config_parse(ARGS("--info", "m.safetensors", "--db", "x.db"), NULL, &c, &m, err), 0);
    ck_assert_int_eq(m, CONFIG_MODE_INFO);
    ck_assert_str_eq(c.model, "m.safetensors");
    ck_assert_str_eq(c.db, "x.db");
    ck_assert_str_eq(config_mode_name(m), "info");
    config_free(&c);
    ck_assert_int_eq(
        test_config_parse(ARGS("--info", "--model", "n.safetensors"), NULL, &c, &m, err), 0);
    ck_assert_str_eq(c.model, "n.safetensors");
    config_free(&c);
    ck_assert_int_lt(test_config_parse(ARGS("--info", "a", "--model", "b"), NULL, &c, &m, err), 0);
    ck_assert_str_eq(err, "--info a and --model: name the model once");
    ck_assert_int_lt(test_config_parse(ARGS("--info", "a", "--train"), NULL, &c, &m, err), 0);
}
END_TEST

START_TEST(add_api_key) {
    Config c;
    char err[SM_ERRMAX];
    ck_assert_int_eq(config_init(&c, err), 0);
    ck_assert_int_eq(config_set(&c, "api_keys", "0123456789abcdef:read", err), 0);
    ck_assert_int_eq(config_add_api_key(&c, "short", CONFIG_SCOPE_WRITE, "file k", err), -EINVAL);
    ck_assert_str_eq(err, "file k: key must be 16 to 256 characters");
    ck_assert_int_eq(config_add_api_key(&c, "0123456789abcdef", CONFIG_SCOPE_WRITE, "file k", err),
                     -EINVAL);
    ck_assert_ptr_null(strstr(err, "0123456789abcdef"));
    ck_assert_int_eq(c.n_api_keys, 1);
    ck_assert_int_eq(config_add_api_key(&c, "bad key with spaces!", CONFIG_SCOPE_WRITE, "k", err),
                     -EINVAL);
    ck_assert_int_eq(config_add_api_key(&c, "fedcba9876543210", CONFIG_SCOPE_WRITE, "k", err), 0);
    ck_assert_int_eq(c.n_api_keys, 2);
    ck_assert_str_eq(c.api_keys[1].key, "fedcba9876543210");
    ck_assert_int_eq(c.api_keys[1].scope, CONFIG_SCOPE_WRITE);
    ck_assert_int_eq(config_check(&c, err), 0);
    config_free(&c);
}
END_TEST

TCase *tcase_config_hints(void) {
    TCase *tc = tcase_create("hints");
    tcase_add_loop_test(tc, flags_suggest, 0, (int)(sizeof flag_hints / sizeof *flag_hints));
    tcase_add_test(tc, words_that_meant_flags);
    tcase_add_test(tc, keys_and_env_suggest);
    tcase_add_test(tc, listen_port_only_is_every_interface);
    tcase_add_test(tc, info_mode);
    tcase_add_test(tc, add_api_key);
    return tc;
}
