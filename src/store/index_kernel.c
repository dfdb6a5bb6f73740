/*
 * index_kernel.c — the arithmetic the index runs per row: the embedding check,
 * the f32 and int8 distance kernels (AVX-512 with a portable fallback, each
 * beside its plain *_ref loop) and the int8 encoder. Nothing here knows the
 * index's tables; index.c (encoding rows as they arrive) and index_scan.c
 * (the searches) both build on it.
 */
#include "index_int.h"

#include "siamese/simd.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX512 1
#include <immintrin.h>
#endif

int index_embedding_ok(const float *v, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(v[i]))
            return 0;
        s += v[i] * v[i];
    }
    return isfinite(s);
}

/* ---- Kernels ---- */

void index_dist_f32_ref(const float *x, size_t n, int dim, const float *q, float *out) {
    for (size_t i = 0; i < n; i++) {
        float s = 0;
        for (int j = 0; j < dim; j++) {
            float d = x[i * (size_t)dim + j] - q[j];
            s += d * d;
        }
        out[i] = s;
    }
}

void index_dist_i8_ref(const int8_t *c, size_t n, int dim, const float *scale, const float *qo,
                       float *out) {
    for (size_t i = 0; i < n; i++) {
        float s = 0;
        for (int j = 0; j < dim; j++) {
            float d = scale[j] * (float)c[i * (size_t)dim + j] - qo[j];
            s += d * d;
        }
        out[i] = s;
    }
}

/* Portable versions: 16 independent lanes per row so that they vectorise. */
SM_CLONES static void dist_f32_lanes(const float *x, size_t n, int dim, const float *q,
                                     float *out) {
    for (size_t i = 0; i < n; i++, x += dim) {
        float acc[16] = {0}, s = 0;
        int j = 0;
        for (; j + 16 <= dim; j += 16)
            for (int l = 0; l < 16; l++) {
                float d = x[j + l] - q[j + l];
                acc[l] += d * d;
            }
        for (; j < dim; j++)
            s += (x[j] - q[j]) * (x[j] - q[j]);
        for (int l = 0; l < 16; l++)
            s += acc[l];
        out[i] = s;
    }
}

SM_CLONES static void dist_i8_lanes(const int8_t *c, size_t n, int dim, const float *scale,
                                    const float *qo, float *out) {
    for (size_t i = 0; i < n; i++, c += dim) {
        float acc[16] = {0}, s = 0;
        int j = 0;
        for (; j + 16 <= dim; j += 16)
            for (int l = 0; l < 16; l++) {
                float d = scale[j + l] * (float)c[j + l] - qo[j + l];
                acc[l] += d * d;
            }
        for (; j < dim; j++) {
            float d = scale[j] * (float)c[j] - qo[j];
            s += d * d;
        }
        for (int l = 0; l < 16; l++)
            s += acc[l];
        out[i] = s;
    }
}

#ifdef HAVE_AVX512
#define AVX512 __attribute__((target("avx512f")))

/* v[r] -> lane r of the result holds the sum of v[r]'s 16 lanes: pairs of
 * vectors fold into one by 256-bit, then 128-bit, then 64- and 32-bit
 * halves, 15 adds for 16 rows instead of 16 full reductions. */
AVX512 static inline __m512 hsum16(const __m512 *v) {
    __m512 w[8], x[4], y[2];
    for (int i = 0; i < 8; i++)
        w[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    for (int i = 0; i < 4; i++) /* blocks: rows 4i .. 4i+3 */
        x[i] = _mm512_add_ps(_mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    for (int i = 0; i < 2; i++) /* block j: row 8i+j (2 lanes), row 8i+4+j (2 lanes) */
        y[i] = _mm512_add_ps(_mm512_shuffle_ps(x[2 * i], x[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(x[2 * i], x[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    /* block j: rows j, 4+j, 8+j, 12+j */
    __m512 z = _mm512_add_ps(_mm512_shuffle_ps(y[0], y[1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_ps(y[0], y[1], _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    return _mm512_permutexvar_ps(order, z);
}

/* Sum of squared differences of one row, as 16 lanes (dim % 16 == 0). */
AVX512 static inline __m512 row_f32(const float *x, const float *q, int dim) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int j = 0;
    for (; j + 32 <= dim; j += 32) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + j), _mm512_loadu_ps(q + j));
        __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(x + j + 16), _mm512_loadu_ps(q + j + 16));
        a0 = _mm512_fmadd_ps(d0, d0, a0);
        a1 = _mm512_fmadd_ps(d1, d1, a1);
    }
    if (j < dim) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + j), _mm512_loadu_ps(q + j));
        a0 = _mm512_fmadd_ps(d0, d0, a0);
    }
    return _mm512_add_ps(a0, a1);
}

AVX512 static inline __m512 row_i8(const int8_t *c, const float *scale, const float *qo, int dim) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int j = 0;
    for (; j + 32 <= dim; j += 32) {
        __m512 c0 =
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const void *)(c + j))));
        __m512 c1 =
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const void *)(c + j + 16))));
        __m512 d0 = _mm512_fmsub_ps(_mm512_loadu_ps(scale + j), c0, _mm512_loadu_ps(qo + j));
        __m512 d1 =
            _mm512_fmsub_ps(_mm512_loadu_ps(scale + j + 16), c1, _mm512_loadu_ps(qo + j + 16));
        a0 = _mm512_fmadd_ps(d0, d0, a0);
        a1 = _mm512_fmadd_ps(d1, d1, a1);
    }
    if (j < dim) {
        __m512 c0 =
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const void *)(c + j))));
        __m512 d0 = _mm512_fmsub_ps(_mm512_loadu_ps(scale + j), c0, _mm512_loadu_ps(qo + j));
        a0 = _mm512_fmadd_ps(d0, d0, a0);
    }
    return _mm512_add_ps(a0, a1);
}

AVX512 static void dist_f32_avx512(const float *x, size_t n, int dim, const float *q, float *out) {
    size_t i = 0;
    __m512 acc[16];
    for (; i + 16 <= n; i += 16) {
        for (int r = 0; r < 16; r++)
            acc[r] = row_f32(x + (i + r) * (size_t)dim, q, dim);
        _mm512_storeu_ps(out + i, hsum16(acc));
    }
    for (; i < n; i++)
        out[i] = _mm512_reduce_add_ps(row_f32(x + i * (size_t)dim, q, dim));
}

AVX512 static void dist_i8_avx512(const int8_t *c, size_t n, int dim, const float *scale,
                                  const float *qo, float *out) {
    size_t i = 0;
    __m512 acc[16];
    for (; i + 16 <= n; i += 16) {
        for (int r = 0; r < 16; r++)
            acc[r] = row_i8(c + (i + r) * (size_t)dim, scale, qo, dim);
        _mm512_storeu_ps(out + i, hsum16(acc));
    }
    for (; i < n; i++)
        out[i] = _mm512_reduce_add_ps(row_i8(c + i * (size_t)dim, scale, qo, dim));
}

AVX512 static int encode_avx512(const float *x, const float *off, const float *inv, int8_t *c,
                                int dim) {
    __mmask16 out = 0;
    const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    const __m512 lo_r = _mm512_set1_ps(-127.5f), hi_r = _mm512_set1_ps(127.5f);
    for (int j = 0; j < dim; j += 16) {
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + j), _mm512_loadu_ps(off + j)),
                                 _mm512_loadu_ps(inv + j));
        out |= _mm512_cmp_ps_mask(v, lo_r, _CMP_LT_OQ) | _mm512_cmp_ps_mask(v, hi_r, _CMP_GT_OQ);
        __m512i i = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(v, lo), hi));
        _mm_storeu_si128((void *)(c + j), _mm512_cvtsepi32_epi8(i));
    }
    return out != 0;
}

static int avx512_ok(int dim) {
    return dim % 16 == 0 && __builtin_cpu_supports("avx512f");
}
#endif

int index_encode_i8(const float *x, const float *off, const float *inv, int8_t *c, int dim) {
#ifdef HAVE_AVX512
    if (avx512_ok(dim))
        return encode_avx512(x, off, inv, c, dim);
#endif
    return index_encode_i8_ref(x, off, inv, c, dim);
}

int index_encode_i8_ref(const float *x, const float *off, const float *inv, int8_t *c, int dim) {
    int clamped = 0;
    for (int j = 0; j < dim; j++) {
        float v = (x[j] - off[j]) * inv[j];
        clamped |= v < -127.5f || v > 127.5f;
        v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
        c[j] = (int8_t)lrintf(v);
    }
    return clamped;
}

void index_dist_f32(const float *x, size_t n, int dim, const float *q, float *out) {
#ifdef HAVE_AVX512
    if (avx512_ok(dim)) {
        dist_f32_avx512(x, n, dim, q, out);
        return;
    }
#endif
    dist_f32_lanes(x, n, dim, q, out);
}

void index_dist_i8(const int8_t *c, size_t n, int dim, const float *scale, const float *qo,
                   float *out) {
#ifdef HAVE_AVX512
    if (avx512_ok(dim)) {
        dist_i8_avx512(c, n, dim, scale, qo, out);
        return;
    }
#endif
    dist_i8_lanes(c, n, dim, scale, qo, out);
}
