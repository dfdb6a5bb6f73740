/*
 * json_f32.c — floats as JSON text: the fewest significant digits (1..9)
 * that read back as the same float, the text printf's %.{p}g writes for
 * them. An embedding is 128 of them, and a /verify answer five.
 *
 * The exact path works in 127-bit integers: v = m x 2^e, the decimal
 * N x 10^q nearest v at p digits is rounded from that product exactly (to
 * nearest, ties to even, as printf rounds), and it reads back as v when it
 * lies inside v's rounding interval, whose ends count when m is even (strtof
 * rounds ties to even). No printf, no strtof: 0.1 us a number, 0.87 before. Values
 * whose products do not fit (beyond about 1e-20..1e20, subnormals) take
 * the older path below it, which rounds 17 printed digits and checks each
 * candidate with strtof. test_routes compares both with a printf reference.
 */
#include <assert.h>
#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"

/* ---- the older path, and the text format both use ---- */

/* A float's value to 17 significant digits: d[0] d[1..16] x 10^exp. */
typedef struct {
    char d[18]; /* NUL-terminated */
    int exp, neg;
} F32Digits;

static void f32_digits(float v, F32Digits *x) {
    char t[40]; /* "-d.dddddddddddddddde-XX" */
    snprintf(t, sizeof t, "%.16e", (double)v);
    const char *s = t + (x->neg = t[0] == '-');
    x->d[0] = s[0];
    memcpy(x->d + 1, s + 2, 16);
    x->d[17] = 0;
    x->exp = atoi(s + 19);
}

/* The first p digits of x rounded into r as printf rounds: to nearest, a
 * tie (5 then only zeros: 2^-12 = 0.000244140625 is one at 8 digits) to an
 * even last digit. Returns the exponent, one more when the rounding carried
 * out of the first digit. */
static int f32_round(const F32Digits *x, int p, char *r) {
    int e = x->exp, i = p - 1;
    memcpy(r, x->d, (size_t)p);
    int up = p < 17 && x->d[p] >= '5';
    if (up && x->d[p] == '5' && strspn(x->d + p + 1, "0") >= (size_t)(16 - p))
        up = (r[p - 1] - '0') % 2 == 1;
    if (up) {
        while (i >= 0 && r[i] == '9')
            r[i--] = '0';
        if (i >= 0)
            r[i]++;
        else
            r[0] = '1', e++; /* 9.99 -> 10.0: the rest are zeros already */
    }
    return e;
}

/* p digits r x 10^e as printf's %.{p}g writes them: fixed unless e < -4 or
 * e >= p, trailing zeros (and a bare point) dropped. */
static void f32_format(int neg, const char *r, int p, int e, char *o) {
    int n = p;
    while (n > 1 && r[n - 1] == '0')
        n--;
    if (neg)
        *o++ = '-';
    if (e < -4 || e >= p) {
        *o++ = r[0];
        if (n > 1)
            *o++ = '.', memcpy(o, r + 1, (size_t)n - 1), o += n - 1;
        int a = e < 0 ? -e : e;
        *o++ = 'e', *o++ = e < 0 ? '-' : '+';
        if (a >= 100)
            *o++ = (char)('0' + a / 100);
        *o++ = (char)('0' + a / 10 % 10), *o++ = (char)('0' + a % 10);
    } else if (e >= 0) {
        for (int i = 0; i <= e; i++)
            *o++ = i < n ? r[i] : '0';
        if (n > e + 1)
            *o++ = '.', memcpy(o, r + e + 1, (size_t)(n - e - 1)), o += n - e - 1;
    } else {
        *o++ = '0', *o++ = '.';
        for (int i = 0; i < -e - 1; i++)
            *o++ = '0';
        memcpy(o, r, (size_t)n), o += n;
    }
    *o = 0;
}

/* strtof(v to p significant digits) == v, with that text in buf. */
static int f32_digits_ok(float v, const F32Digits *x, int p, char buf[32]) {
    char r[17];
    int e = f32_round(x, p, r);
    f32_format(x->neg, r, p, e, buf);
    return strtof(buf, NULL) == v;
}

/* ---- the exact path ---- */

typedef unsigned __int128 u128;

static const uint64_t p10[20] = {1u,
                                 10u,
                                 100u,
                                 1000u,
                                 10000u,
                                 100000u,
                                 1000000u,
                                 10000000u,
                                 100000000u,
                                 1000000000u,
                                 10000000000u,
                                 100000000000u,
                                 1000000000000u,
                                 10000000000000u,
                                 100000000000000u,
                                 1000000000000000u,
                                 10000000000000000u,
                                 100000000000000000u,
                                 1000000000000000000u,
                                 10000000000000000000u};

static int bit_length(u128 x) {
    uint64_t hi = (uint64_t)(x >> 64), lo = (uint64_t)x;
    return hi ? 128 - __builtin_clzll(hi) : lo ? 64 - __builtin_clzll(lo) : 0;
}

/* x * 10^k * 2^s (k, s >= 0) into *out; -1 when it might not fit in 127
 * bits (the bit lengths are summed: a product a bit short of the limit is
 * refused too, and takes the older path). */
static int scale(u128 x, int k, int s, u128 *out) {
    if (k > 38)
        return -1;
    u128 p = k <= 19 ? p10[k] : (u128)p10[19] * p10[k - 19];
    if (bit_length(x) + bit_length(p) + s > 127)
        return -1;
    *out = (x * p) << s;
    return 0;
}

/* The sign of N x 10^q - X x 2^s, or 2 when a side does not fit. */
static int cmp_dec_bin(uint64_t n, int q, uint64_t x, int s) {
    u128 a, b;
    if (scale(n, q > 0 ? q : 0, s < 0 ? -s : 0, &a) < 0 ||
        scale(x, q < 0 ? -q : 0, s > 0 ? s : 0, &b) < 0)
        return 2;
    return (a > b) - (a < b);
}

/* m x 2^e / 10^q rounded to the nearest integer, a tie to even; -1 when it
 * does not fit. */
static int round_scaled(uint64_t m, int e, int q, uint64_t *n) {
    u128 num, den, quo, rem;
    if (scale(m, q < 0 ? -q : 0, e > 0 ? e : 0, &num) < 0 ||
        scale(1, q > 0 ? q : 0, e < 0 ? -e : 0, &den) < 0)
        return -1;
    if (q <= 0) { /* den is a power of two */
        int sh = e < 0 ? -e : 0;
        quo = num >> sh, rem = num & (den - 1);
    } else {
        quo = num / den, rem = num - quo * den;
    }
    if (2 * rem > den || (2 * rem == den && (quo & 1)))
        quo++;
    if (quo >> 63)
        return -1;
    *n = (uint64_t)quo;
    return 0;
}

typedef struct {
    uint64_t m;      /* a = m x 2^e, 2^23 <= m < 2^24 */
    int e, exp10;    /* 10^exp10 <= a < 10^(exp10 + 1) */
    uint64_t lo, hi; /* the rounding interval, in units of 2^(e-2) */
} F32Exact;

/* 1: the p-digit decimal nearest x's value reads back (text in buf; with
 * check 0 it is written unchecked); 0: it does not; -1: outside the
 * integers' range. */
static int exact_digits(const F32Exact *x, int neg, int p, int check, char buf[32]) {
    int q = x->exp10 - p + 1, even = (x->m & 1) == 0;
    uint64_t n;
    if (round_scaled(x->m, x->e, q, &n) < 0)
        return -1;
    if (check) {
        int c1 = cmp_dec_bin(n, q, x->lo, x->e - 2), c2 = cmp_dec_bin(n, q, x->hi, x->e - 2);
        if (c1 == 2 || c2 == 2)
            return -1;
        if (!((c1 > 0 || (c1 == 0 && even)) && (c2 < 0 || (c2 == 0 && even))))
            return 0;
    }
    int e10 = x->exp10;
    if (n == p10[p]) /* rounding carried: 9.96 at one digit is 1e+01 */
        n /= 10, e10++;
    char r[10];
    for (int i = p - 1; i >= 0; i--, n /= 10)
        r[i] = (char)('0' + n % 10);
    f32_format(neg, r, p, e10, buf);
    return 1;
}

/* json_f32_text by the exact path: 1, or 0 when v is outside its range. */
static int f32_text_exact(float v, char buf[32]) {
    float a = fabsf(v);
    if (a == 0) { /* a ReLU embedding is mostly zeros */
        strcpy(buf, signbit(v) ? "-0" : "0");
        return 1;
    }
    if (!(a > FLT_MIN)) /* subnormals and the smallest normal's lopsided interval */
        return 0;
    int bexp;
    float f = frexpf(a, &bexp);
    F32Exact x = {.m = (uint64_t)ldexpf(f, 24), .e = bexp - 24};
    x.lo = 4 * x.m - (x.m == (1u << 23) ? 1 : 2), x.hi = 4 * x.m + 2;
    x.exp10 = (int)floor(log10((double)a));
    int c = cmp_dec_bin(1, x.exp10, x.m, x.e); /* 10^exp10 against a */
    if (c == 2)
        return 0;
    if (c > 0)
        x.exp10--;
    else if ((c = cmp_dec_bin(1, x.exp10 + 1, x.m, x.e)) <= 0)
        x.exp10++;
    if (c == 2)
        return 0;
    /* Nine digits always read back, and when p do, p + 1 do (the nearest
     * (p+1)-digit decimal is no farther away) except perhaps in the lopsided
     * interval below a power of two, where every power of two and its
     * neighbours were checked against the printf reference: the same texts.
     * Most floats need eight or nine, so go down from eight until a length
     * fails. */
    int neg = signbit(v) != 0, ok = exact_digits(&x, neg, 8, 1, buf);
    if (ok <= 0)
        return ok == 0 && exact_digits(&x, neg, 9, 0, buf) == 1;
    for (int p = 7; p >= 1; p--) {
        char t[32];
        if ((ok = exact_digits(&x, neg, p, 1, t)) < 0)
            return 0;
        if (!ok)
            break;
        memcpy(buf, t, strlen(t) + 1);
    }
    return 1;
}

void json_f32_text(float v, char buf[32]) {
    if (!isfinite(v)) { /* what cJSON writes for them */
        memcpy(buf, "null", 5);
        return;
    }
    if (f32_text_exact(v, buf))
        return;
    /* One printf for 17 digits, then each candidate is rounded from them and
     * checked with strtof. Nine digits always read back, and when p digits
     * do, p + 1 do too (the nearest (p+1)-digit decimal is no farther from
     * v), so bisect: about four strtof calls. Where that rule or rounding
     * the 17 digits instead of v could fail (the lopsided interval below a
     * power of two, a tie hidden past the 17th digit) the result is a digit
     * longer, never wrong: every answer has been read back. */
    F32Digits x;
    f32_digits(v, &x);
    int lo = 1, hi = 9;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (f32_digits_ok(v, &x, mid, buf))
            hi = mid;
        else
            lo = mid + 1;
    }
    f32_digits_ok(v, &x, hi, buf);
}

double json_f32(float v) {
    char buf[32];
    json_f32_text(v, buf);
    return isfinite(v) ? strtod(buf, NULL) : (double)v;
}

cJSON *json_f32_array(const float *v, int n) {
    assert(n >= 0);
    /* The longest text is 15 bytes ("-1.17549435e-38"), a comma each. */
    char *t = malloc((size_t)n * 16 + 3), *o = t;
    if (!t)
        return NULL;
    *o++ = '[';
    for (int i = 0; i < n; i++) {
        char num[32]; /* json_f32_text's buffer, whatever is left of t */
        json_f32_text(v[i], num);
        size_t k = strlen(num);
        if (i)
            *o++ = ',';
        memcpy(o, num, k), o += k;
    }
    *o++ = ']', *o = 0;
    cJSON *a = cJSON_CreateRaw(t);
    free(t);
    return a;
}

cJSON *json_add_f32(cJSON *obj, const char *name, float v) {
    char buf[32];
    json_f32_text(v, buf);
    return cJSON_AddRawToObject(obj, name, buf);
}
