/*
 * optable.c — the operating-point table (optable.h): built from pair
 * distances, written as and parsed from the model's "operating_points"
 * metadata, and looked up by the daemon for far-derived thresholds and the
 * estimated rates of each verdict.
 *
 * The counts are exact integers (binary searches over the sorted distances
 * of each kind); rates are derived from them, so a stored table never
 * disagrees with itself.
 */
#include "siamese/optable.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siamese/common.h"

#define OPTABLE_EVEN 64     /* evenly spread thresholds */
#define OPTABLE_GROWTH 1.08 /* geometric step of the error counts past OPTABLE_EXACT */
#define OPTABLE_SOURCE_MAX 200

struct OpTable {
    int64_t positives, negatives;
    int n;
    float *thr;  /* n, strictly increasing */
    int64_t *fa; /* negatives with d < thr[i], non-decreasing */
    int64_t *fr; /* positives with d >= thr[i], non-increasing */
    char source[OPTABLE_SOURCE_MAX + 1];
};

static OpTable *table_alloc(int n) {
    OpTable *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->n = n;
    t->thr = malloc((size_t)n * sizeof *t->thr);
    t->fa = malloc((size_t)n * sizeof *t->fa);
    t->fr = malloc((size_t)n * sizeof *t->fr);
    if (!t->thr || !t->fa || !t->fr) {
        optable_free(t);
        return NULL;
    }
    return t;
}

void optable_free(OpTable *t) {
    if (!t)
        return;
    free(t->thr);
    free(t->fa);
    free(t->fr);
    free(t);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Elements of sorted (n) below v. */
static int64_t count_below(const float *sorted, int64_t n, float v) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (sorted[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Appends the count ranks of the grid: 0..OPTABLE_EXACT-1, then growing. */
static int ranks_of(int64_t n, int64_t *out) {
    int k = 0;
    for (double r = 0; r < (double)n; k++)
        out[k] = (int64_t)r, r = r < OPTABLE_EXACT ? r + 1 : ceil(r * OPTABLE_GROWTH);
    return k;
}

/* The candidate thresholds of the grid into cand (room for OPTABLE_MAX_POINTS
 * * 2); returns how many, sorted and distinct. */
static int candidates(const float *neg, int64_t nn, const float *pos, int64_t np, float *cand) {
    int64_t ranks[OPTABLE_MAX_POINTS];
    int c = 0;
    float hi = fmaxf(neg[nn - 1], pos[np - 1]);
    cand[c++] = 0.0f;
    cand[c++] = neg[0]; /* the largest threshold without a false accept */
    int k = ranks_of(nn, ranks);
    for (int i = 0; i < k; i++)
        cand[c++] = nextafterf(neg[ranks[i]], INFINITY); /* ranks[i] + 1 false accepts */
    k = ranks_of(np, ranks);
    for (int i = 0; i < k; i++)
        cand[c++] = nextafterf(pos[np - 1 - ranks[i]], INFINITY); /* ranks[i] false rejects */
    for (int i = 1; i <= OPTABLE_EVEN; i++)
        cand[c++] = hi * (float)i / OPTABLE_EVEN;
    cand[c++] = nextafterf(hi, INFINITY); /* accepts every pair */
    qsort(cand, (size_t)c, sizeof *cand, cmp_float);
    int d = 0;
    for (int i = 0; i < c; i++)
        if (d == 0 || cand[i] > cand[d - 1])
            cand[d++] = cand[i];
    return d;
}

/* Splits dist by label into sorted neg (nn) and pos (np); -EINVAL on a
 * non-finite distance. */
static int split_sorted(const float *dist, const float *y, size_t n, float *neg, int64_t *nn,
                        float *pos, int64_t *np, char *err) {
    *nn = *np = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(dist[i]) || dist[i] < 0)
            return sm_err(err, -EINVAL, "operating points: pair %zu has distance %g", i,
                          (double)dist[i]);
        if (y[i] > 0.5f)
            pos[(*np)++] = dist[i];
        else
            neg[(*nn)++] = dist[i];
    }
    qsort(neg, (size_t)*nn, sizeof *neg, cmp_float);
    qsort(pos, (size_t)*np, sizeof *pos, cmp_float);
    return 0;
}

int optable_build(const float *dist, const float *y, size_t n, const char *source, OpTable **out,
                  char *err) {
    float *neg = malloc((n + 1) * sizeof *neg), *pos = malloc((n + 1) * sizeof *pos);
    float *cand = malloc(2 * OPTABLE_MAX_POINTS * sizeof *cand);
    int64_t nn = 0, np = 0;
    int rc = neg && pos && cand ? 0 : sm_err(err, -ENOMEM, "operating points: out of memory");
    if (rc == 0)
        rc = split_sorted(dist, y, n, neg, &nn, pos, &np, err);
    if (rc == 0 && (nn == 0 || np == 0))
        rc = sm_err(err, -EINVAL,
                    "operating points need same and different pairs (%lld same, "
                    "%lld different)",
                    (long long)np, (long long)nn);
    if (rc < 0)
        goto out;
    int k = candidates(neg, nn, pos, np, cand);
    assert(k >= 2 && k <= 2 * OPTABLE_MAX_POINTS);
    if (k > OPTABLE_MAX_POINTS)
        k = OPTABLE_MAX_POINTS; /* unreachable below 2^40 pairs; keeps the low end */
    OpTable *t = table_alloc(k);
    if (!t) {
        rc = sm_err(err, -ENOMEM, "operating points: out of memory");
        goto out;
    }
    t->positives = np, t->negatives = nn;
    snprintf(t->source, sizeof t->source, "%s", source ? source : "");
    for (int i = 0; i < k; i++) {
        t->thr[i] = cand[i];
        t->fa[i] = count_below(neg, nn, cand[i]);
        t->fr[i] = np - count_below(pos, np, cand[i]);
    }
    *out = t;
out:
    free(neg);
    free(pos);
    free(cand);
    return rc;
}

OpTable *optable_dup(const OpTable *t) {
    OpTable *c = table_alloc(t->n);
    if (!c)
        return NULL;
    c->positives = t->positives, c->negatives = t->negatives;
    memcpy(c->source, t->source, sizeof c->source);
    memcpy(c->thr, t->thr, (size_t)t->n * sizeof *t->thr);
    memcpy(c->fa, t->fa, (size_t)t->n * sizeof *t->fa);
    memcpy(c->fr, t->fr, (size_t)t->n * sizeof *t->fr);
    return c;
}

char *optable_to_json(const OpTable *t) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "source", t->source);
    cJSON_AddNumberToObject(o, "positives", (double)t->positives);
    cJSON_AddNumberToObject(o, "negatives", (double)t->negatives);
    cJSON *thr = cJSON_AddArrayToObject(o, "threshold");
    cJSON *fa = cJSON_AddArrayToObject(o, "false_accepts");
    cJSON *fr = cJSON_AddArrayToObject(o, "false_rejects");
    for (int i = 0; i < t->n; i++) {
        char num[32];
        snprintf(num, sizeof num, "%.9g", (double)t->thr[i]);
        cJSON_AddItemToArray(thr, cJSON_CreateRaw(num)); /* exact float round trip */
        cJSON_AddItemToArray(fa, cJSON_CreateNumber((double)t->fa[i]));
        cJSON_AddItemToArray(fr, cJSON_CreateNumber((double)t->fr[i]));
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* A whole number in [0, hi] from item, or -1. */
static int64_t json_count(const cJSON *item, int64_t hi) {
    if (!cJSON_IsNumber(item))
        return -1;
    double v = item->valuedouble;
    if (!(v >= 0 && v <= (double)hi) || v != floor(v))
        return -1;
    return (int64_t)v;
}

/* The three arrays of o into t (sizes already checked to be t->n). */
static int parse_points(const cJSON *thr, const cJSON *fa, const cJSON *fr, OpTable *t, char *err) {
    for (int i = 0; i < t->n; i++) {
        const cJSON *a = cJSON_GetArrayItem(thr, i);
        double v = cJSON_IsNumber(a) ? a->valuedouble : -1;
        if (!(v >= 0 && v <= 1e6) || (i && (float)v <= t->thr[i - 1]))
            return sm_err(err, -EINVAL,
                          "operating_points: threshold %d is not increasing in "
                          "[0, 1e6]",
                          i);
        t->thr[i] = (float)v;
        t->fa[i] = json_count(cJSON_GetArrayItem(fa, i), t->negatives);
        t->fr[i] = json_count(cJSON_GetArrayItem(fr, i), t->positives);
        if (t->fa[i] < 0 || t->fr[i] < 0 ||
            (i && (t->fa[i] < t->fa[i - 1] || t->fr[i] > t->fr[i - 1])))
            return sm_err(err, -EINVAL,
                          "operating_points: point %d: counts out of range or "
                          "not monotone",
                          i);
    }
    return 0;
}

int optable_parse(const char *json, OpTable **out, char *err) {
    cJSON *o = cJSON_Parse(json);
    OpTable *t = NULL;
    int rc = 0;
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(o, "source");
    const cJSON *thr = cJSON_GetObjectItemCaseSensitive(o, "threshold");
    const cJSON *fa = cJSON_GetObjectItemCaseSensitive(o, "false_accepts");
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(o, "false_rejects");
    int64_t np = json_count(cJSON_GetObjectItemCaseSensitive(o, "positives"), INT64_C(1) << 40);
    int64_t nn = json_count(cJSON_GetObjectItemCaseSensitive(o, "negatives"), INT64_C(1) << 40);
    int n = cJSON_IsArray(thr) ? cJSON_GetArraySize(thr) : 0;
    if (!cJSON_IsObject(o) || !cJSON_IsString(src) ||
        strlen(src->valuestring) > OPTABLE_SOURCE_MAX || np < 1 || nn < 1 || n < 2 ||
        n > OPTABLE_MAX_POINTS || !cJSON_IsArray(fa) || !cJSON_IsArray(fr) ||
        cJSON_GetArraySize(fa) != n || cJSON_GetArraySize(fr) != n) {
        rc = sm_err(err, -EINVAL,
                    "operating_points: not a table (source, positives, negatives "
                    "and 2..%d thresholds with their counts)",
                    OPTABLE_MAX_POINTS);
        goto out;
    }
    if (!(t = table_alloc(n))) {
        rc = sm_err(err, -ENOMEM, "operating_points: out of memory");
        goto out;
    }
    t->positives = np, t->negatives = nn;
    snprintf(t->source, sizeof t->source, "%s", src->valuestring);
    if ((rc = parse_points(thr, fa, fr, t, err)) < 0)
        goto out;
    *out = t;
    t = NULL;
out:
    optable_free(t);
    cJSON_Delete(o);
    return rc;
}

int64_t optable_positives(const OpTable *t) {
    return t->positives;
}

int64_t optable_negatives(const OpTable *t) {
    return t->negatives;
}

int optable_points(const OpTable *t) {
    return t->n;
}

const char *optable_source(const OpTable *t) {
    return t->source;
}

double optable_min_far(const OpTable *t) {
    return 1.0 / (double)t->negatives;
}

int optable_threshold_at_far(const OpTable *t, double far, float *thr, double *far_at,
                             double *frr_at, char *err) {
    if (!(far > 0 && far <= 1))
        return sm_err(err, -EINVAL, "far must be a rate in (0, 1]");
    /* A rate is supported when at least one false accept stands behind it. */
    if (far * (double)t->negatives < 1.0 - 1e-9)
        return sm_err(err, -ERANGE,
                      "far %g is below what the %lld different pairs behind the operating points "
                      "can resolve; the smallest supported rate is %.3g (1/%lld)",
                      far, (long long)t->negatives, optable_min_far(t), (long long)t->negatives);
    int best = 0;
    for (int i = 0; i < t->n; i++)
        if ((double)t->fa[i] <= far * (double)t->negatives * (1 + 1e-12))
            best = i;
    *thr = t->thr[best];
    if (far_at)
        *far_at = (double)t->fa[best] / (double)t->negatives;
    if (frr_at)
        *frr_at = (double)t->fr[best] / (double)t->positives;
    return 0;
}

void optable_rates_at(const OpTable *t, float d, double *far, double *frr) {
    int i = 0;
    if (!(d >= t->thr[0])) { /* below every threshold (NaN too): nothing is this close */
        *far = 0, *frr = (double)t->fr[0] / (double)t->positives;
        return;
    }
    while (i + 1 < t->n && t->thr[i + 1] <= d)
        i++;
    double fa = (double)t->fa[i], fr = (double)t->fr[i];
    if (i + 1 < t->n) {
        /* Where the grid has a point at every pair (counts step by 0 or 1)
         * the count at t[i] is exact up to t[i + 1]; elsewhere interpolate. */
        double w = (d - t->thr[i]) / (double)(t->thr[i + 1] - t->thr[i]);
        if (t->fa[i + 1] - t->fa[i] > 1)
            fa += w * (double)(t->fa[i + 1] - t->fa[i]);
        if (t->fr[i] - t->fr[i + 1] > 1)
            fr += w * (double)(t->fr[i + 1] - t->fr[i]);
    } else {
        fa = (double)t->negatives, fr = 0; /* beyond the largest distance seen */
    }
    *far = fa / (double)t->negatives;
    *frr = fr / (double)t->positives;
}
