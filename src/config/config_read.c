/*
 * config_read.c — the three readers of siamesed's settings (config file,
 * environment, command line, in rising precedence), the "did you mean" hints
 * for misspelt names, and --help. Each reader only locates a (key, text) pair
 * in the table of config.c and hands it to config_apply().
 */
#include "siamese/config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "config_value.h"
#include "siamese/common.h"

#define ENV_PREFIX "SIAMESED_"

/* ---- one key, from the program ---- */

int config_set(Config *cfg, const char *key, const char *value, char *err) {
    char kb[48];
    const ConfigEntry *e = config_find_key(key, strlen(key));
    if (!e) {
        char hint[80];
        config_did_you_mean(key, strlen(key), HINT_KEY, hint, sizeof hint);
        return sm_err(err, -ENOENT, "unknown key '%s'%s", config_shown(key, kb, sizeof kb), hint);
    }
    return config_apply(cfg, e, value, CONFIG_SRC_SET, e->name, err);
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
    const ConfigEntry *e = config_find_key(key, strlen(key));
    if (!e) {
        char hint[80];
        config_did_you_mean(key, strlen(key), HINT_KEY, hint, sizeof hint);
        return sm_err(err, -EINVAL, "%s: unknown key '%s'%s", at, config_shown(key, kb, sizeof kb),
                      hint);
    }
    if (first_line[e - config_table])
        return sm_err(err, -EINVAL, "%s: duplicate key '%s' (first set on line %d)", at, e->name,
                      first_line[e - config_table]);
    first_line[e - config_table] = lineno;
    int rc = file_value(s, &value, why);
    if (rc < 0)
        return sm_err(err, rc, "%s: %s %s", at, e->name, why);
    snprintf(where, sizeof where, "%s: %s", at, e->name);
    return config_apply(cfg, e, value, CONFIG_SRC_FILE, where, err);
}

int config_load_file(Config *cfg, const char *path, char *err) {
    uint8_t *buf = NULL;
    size_t len;
    int rc = sm_read_file(path, CONFIG_MAX_FILE, &buf, &len, err);
    if (rc < 0)
        return rc;
    int first_line[CONFIG_MAX_KEYS] = {0}, lineno = 0;
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
    int seen[CONFIG_MAX_KEYS] = {0};
    for (size_t i = 0; envp && envp[i]; i++) {
        const char *kv = envp[i], *eq = strchr(kv, '=');
        if (strncmp(kv, ENV_PREFIX, plen) != 0 || !eq)
            continue;
        const ConfigEntry *e = NULL;
        for (size_t j = 0; j < config_n_keys() && !e; j++)
            if (config_spelled(config_table[j].name, kv + plen, (size_t)(eq - kv) - plen, true,
                               '_'))
                e = &config_table[j];
        char name[80], shown[80], hint[80];
        snprintf(name, sizeof name, "%.*s", (int)(eq - kv), kv); /* never the value */
        config_did_you_mean(kv + plen, (size_t)(eq - kv) - plen, HINT_ENV, hint, sizeof hint);
        if (!e)
            return sm_err(err, -EINVAL, "unknown environment variable %s%s",
                          config_shown(name, shown, sizeof shown), hint);
        if (seen[e - config_table]++)
            return sm_err(err, -EINVAL, "environment variable %s is set twice", name);
        int rc = config_apply(cfg, e, eq + 1, CONFIG_SRC_ENV, name, err);
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
void config_did_you_mean(const char *s, size_t n, HintStyle style, char *out, size_t size) {
    char norm[64];
    const char *best = NULL;
    size_t best_d = SIZE_MAX, nm = SM_ARRAY_LEN(modes);
    *out = 0;
    if (n == 0 || n >= sizeof norm)
        return;
    for (size_t i = 0; i < n; i++)
        norm[i] = s[i] == '-' ? '_' : (char)tolower((unsigned char)s[i]);
    for (size_t i = 0; i < config_n_keys() + (style == HINT_FLAG ? nm + 1 : 0); i++) {
        const char *c = i < config_n_keys()        ? config_table[i].name
                        : i < config_n_keys() + nm ? modes[i - config_n_keys()].flag
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
    config_did_you_mean(w, strlen(w), HINT_FLAG, hint, sizeof hint);
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
    for (size_t j = 0; j < config_n_keys() && !a->e; j++)
        if (config_spelled(config_table[j].name, name, len, false, '-'))
            a->e = &config_table[j];
    a->kind = a->e ? ARG_SET : ARG_CONFIG;
    if (!a->e && !(len == 6 && memcmp(name, "config", 6) == 0)) {
        char hint[80];
        config_did_you_mean(name, len, HINT_FLAG, hint, sizeof hint);
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
    int seen[CONFIG_MAX_KEYS] = {0};
    for (int i = 1; i < argc;) {
        Arg a;
        char where[96];
        int rc = next_arg(argc, argv, &i, &a, err);
        if (rc < 0 || a.kind != ARG_SET)
            continue; /* the first pass already reported errors */
        snprintf(where, sizeof where, "option --%s", a.e->name);
        for (char *c = where; *c; c++)
            *c = *c == '_' ? '-' : *c;
        if (seen[a.e - config_table]++)
            return sm_err(err, -EINVAL, "%s given twice", where);
        rc = config_apply(cfg, a.e, a.value, CONFIG_SRC_FLAG, where, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* --info MODEL is --model MODEL; both at once would be ambiguous. */
static int set_info_model(Config *cfg, const char *path, char *err) {
    const ConfigEntry *e = config_find_key("model", 5);
    if (cfg->origin[e - config_table] == CONFIG_SRC_FLAG)
        return sm_err(err, -EINVAL, "--info %s and --model: name the model once", path);
    return config_apply(cfg, e, path, CONFIG_SRC_FLAG, "option --info", err);
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
    for (size_t i = 0; i < config_n_keys(); i++) {
        const ConfigEntry *e = &config_table[i];
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

const char *config_mode_name(ConfigMode mode) {
    if (mode == CONFIG_MODE_SERVE)
        return "serve";
    for (size_t m = 0; m < SM_ARRAY_LEN(modes); m++)
        if (modes[m].mode == mode)
            return modes[m].flag;
    return "?";
}
