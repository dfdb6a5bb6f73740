/*
 * conv.c — convolution, max pooling and flatten on channels-last (NHWC)
 * images, forward and backward, each beside its plain-loop reference.
 *
 * The convolution is im2col + one sgemm over the whole batch: every output
 * position of every image is a row of patches (K*K*C values, the kernel's
 * order), so the product is (N*OH*OW, KKC) x (KKC, OC) — tall and regular,
 * the shape OpenBLAS runs near its peak with all its threads. Channels-last
 * makes each kernel tap a contiguous copy of C floats; the weights are
 * stored (OC,K,K,C) to match (network.c permutes from PyTorch's order).
 * Backward rebuilds the patches for the weight gradient, then overwrites them
 * with the patch gradient and scatters it back (col2im).
 *
 * When built with oneDNN, batches go to its JIT kernels instead (conv_dnnl.c,
 * about twice as fast here: bench/bench_dnnl); this path is the fallback and
 * what the daemon's one or two images take.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "conv_int.h"
#include "siamese/blas.h"
#include "siamese/layers.h"
#include "siamese/simd.h"

static int out_size(int in, int K, int S, int P) {
    return (in + 2 * P - K) / S + 1;
}

/* n floats from src to dst: the spans here are short (K*C: 5 for a first
 * 5x5 layer of one channel), where a loop beats a memcpy call. */
static inline void copy_span(float *restrict dst, const float *restrict src, int n) {
    for (int i = 0; i < n; i++)
        dst[i] = src[i];
}

/* One row of patches, for output (oh, ow) of img (H,W,C): K spans of K*C
 * floats, each contiguous in the input unless the kernel hangs off an edge. */
static void im2col_row(float *restrict dst, const float *restrict img, int H, int W, int C, int K,
                       int ih0, int iw0) {
    const int span = K * C;
    for (int kh = 0; kh < K; kh++, dst += span) {
        int ih = ih0 + kh;
        if (ih < 0 || ih >= H) {
            memset(dst, 0, (size_t)span * sizeof *dst);
        } else if (iw0 >= 0 && iw0 + K <= W) {
            copy_span(dst, img + ((size_t)ih * W + iw0) * C, span);
        } else {
            for (int kw = 0; kw < K; kw++) {
                int iw = iw0 + kw;
                if (iw < 0 || iw >= W)
                    memset(dst + kw * C, 0, (size_t)C * sizeof *dst);
                else
                    copy_span(dst + kw * C, img + ((size_t)ih * W + iw) * C, C);
            }
        }
    }
}

/* col (N*OH*OW, K*K*C) from inp (N,H,W,C); zero where the kernel is off the image. */
static void im2col(float *restrict col, const float *restrict inp, int N, int H, int W, int C,
                   int K, int S, int P) {
    const int OH = out_size(H, K, S, P), OW = out_size(W, K, S, P), KKC = K * K * C;
    float *dst = col;
    for (int n = 0; n < N; n++) {
        const float *img = inp + (size_t)n * H * W * C;
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++, dst += KKC)
                im2col_row(dst, img, H, W, C, K, oh * S - P, ow * S - P);
    }
}

SM_CLONES static void add_into(float *restrict dst, const float *restrict src, int n) {
    for (int i = 0; i < n; i++)
        dst[i] += src[i];
}

/* dinp (N,H,W,C) = the sum of col's patches back at their pixels. */
static void col2im(float *restrict dinp, const float *restrict col, int N, int H, int W, int C,
                   int K, int S, int P) {
    const int OH = out_size(H, K, S, P), OW = out_size(W, K, S, P);
    memset(dinp, 0, (size_t)N * H * W * C * sizeof *dinp);
    const float *src = col;
    for (int n = 0; n < N; n++) {
        float *img = dinp + (size_t)n * H * W * C;
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++)
                for (int kh = 0; kh < K; kh++) {
                    int ih = oh * S - P + kh;
                    for (int kw = 0; kw < K; kw++, src += C) {
                        int iw = ow * S - P + kw;
                        if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                            add_into(img + ((size_t)ih * W + iw) * C, src, C);
                    }
                }
    }
}

SM_CLONES static void sum_rows(float *restrict acc, const float *restrict rows, size_t n, int w) {
    for (size_t r = 0; r < n; r++)
        for (int i = 0; i < w; i++)
            acc[i] += rows[r * (size_t)w + i];
}

/* The backend conv2d_* use (conv2d_set_backend()). */
static _Atomic int backend = CONV_AUTO;

int conv2d_set_backend(ConvBackend b) {
    if (b == CONV_ONEDNN && !convd_available(0))
        return -ENOTSUP;
    if (b == CONV_ONEDNN_BF16 && !convd_available(1))
        return -ENOTSUP;
    backend = b;
    return 0;
}

static const char *const backend_names[] = {"auto", "im2col", "onednn", "bf16"};

const char *conv2d_backend_name_of(ConvBackend b) {
    return (unsigned)b < sizeof backend_names / sizeof backend_names[0] ? backend_names[b] : "?";
}

const char *conv2d_backend_name(void) {
    return backend_names[backend];
}

ConvBackend conv2d_backend(void) {
    return (ConvBackend)backend;
}

static _Atomic size_t dnnl_calls;

size_t conv2d_onednn_calls(void) {
    return dnnl_calls;
}

/* Whether this call goes to oneDNN first (*bf16 set), or straight to im2col:
 * AUTO leaves inference (the daemon) to im2col, which needs no plan. */
static int use_dnnl(int N, int *bf16) {
    int b = backend;
    *bf16 = b == CONV_ONEDNN_BF16;
    return b == CONV_ONEDNN || b == CONV_ONEDNN_BF16 || (b == CONV_AUTO && N >= CONV_AUTO_MIN_N);
}

void conv2d_forward(float *out, float *col, const float *inp, const float *weight,
                    const float *bias, int N, int H, int W, int C, int OC, int K, int S, int P) {
    const ConvShape sh = {N, H, W, C, OC, K, S, P};
    int bf16;
    if (use_dnnl(N, &bf16) && convd_forward(out, inp, weight, bias, &sh, bf16) == 0) {
        dnnl_calls++;
        return;
    }
    const size_t rows = (size_t)N * out_size(H, K, S, P) * out_size(W, K, S, P);
    const int KKC = K * K * C;
    im2col(col, inp, N, H, W, C, K, S, P);
    for (size_t r = 0; r < rows; r++)
        memcpy(out + r * OC, bias, (size_t)OC * sizeof *out);
    blas_sgemm(0, 1, (int)rows, OC, KKC, 1.0f, col, KKC, weight, KKC, 1.0f, out, OC);
}

void conv2d_backward(float *dinp, float *dweight, float *dbias, float *col, const float *dout,
                     const float *inp, const float *weight, int N, int H, int W, int C, int OC,
                     int K, int S, int P) {
    const ConvShape sh = {N, H, W, C, OC, K, S, P};
    int bf16;
    if (use_dnnl(N, &bf16) &&
        convd_backward(dinp, dweight, dbias, dout, inp, weight, &sh, bf16) == 0) {
        dnnl_calls++;
        return;
    }
    const size_t rows = (size_t)N * out_size(H, K, S, P) * out_size(W, K, S, P);
    const int KKC = K * K * C;
    im2col(col, inp, N, H, W, C, K, S, P); /* the forward may not have left it */
    blas_sgemm(1, 0, OC, KKC, (int)rows, 1.0f, dout, OC, col, KKC, 1.0f, dweight, KKC);
    sum_rows(dbias, dout, rows, OC);
    if (!dinp)
        return;
    blas_sgemm(0, 0, (int)rows, KKC, OC, 1.0f, dout, OC, weight, KKC, 0.0f, col, KKC);
    col2im(dinp, col, N, H, W, C, K, S, P);
}

/* The input value under tap (kh, kw, c) of output (n, oh, ow), 0 off the image. */
static float tap_at(const float *inp, int n, int oh, int ow, int kh, int kw, int c, int H, int W,
                    int C, int S, int P) {
    int ih = oh * S - P + kh, iw = ow * S - P + kw;
    if (ih < 0 || ih >= H || iw < 0 || iw >= W)
        return 0.0f;
    return inp[(((size_t)n * H + ih) * W + iw) * C + c];
}

void conv2d_forward_ref(float *out, const float *inp, const float *weight, const float *bias, int N,
                        int H, int W, int C, int OC, int K, int S, int P) {
    const int OH = out_size(H, K, S, P), OW = out_size(W, K, S, P);
    for (int n = 0; n < N; n++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++)
                for (int o = 0; o < OC; o++) {
                    double acc = bias[o];
                    for (int kh = 0; kh < K; kh++)
                        for (int kw = 0; kw < K; kw++)
                            for (int c = 0; c < C; c++)
                                acc += (double)tap_at(inp, n, oh, ow, kh, kw, c, H, W, C, S, P) *
                                       weight[(((size_t)o * K + kh) * K + kw) * C + c];
                    out[(((size_t)n * OH + oh) * OW + ow) * OC + o] = (float)acc;
                }
}

void conv2d_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, int N, int H, int W, int C, int OC,
                         int K, int S, int P) {
    const int OH = out_size(H, K, S, P), OW = out_size(W, K, S, P);
    if (dinp)
        memset(dinp, 0, (size_t)N * H * W * C * sizeof *dinp);
    for (int n = 0; n < N; n++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++)
                for (int o = 0; o < OC; o++) {
                    float g = dout[(((size_t)n * OH + oh) * OW + ow) * OC + o];
                    dbias[o] += g;
                    for (int kh = 0; kh < K; kh++)
                        for (int kw = 0; kw < K; kw++) {
                            int ih = oh * S - P + kh, iw = ow * S - P + kw;
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W)
                                continue;
                            for (int c = 0; c < C; c++) {
                                size_t wi = (((size_t)o * K + kh) * K + kw) * C + c;
                                size_t ii = (((size_t)n * H + ih) * W + iw) * C + c;
                                dweight[wi] += g * inp[ii];
                                if (dinp)
                                    dinp[ii] += g * weight[wi];
                            }
                        }
                }
}

/* 16 channels in one vector; comparisons give all-ones/zero lanes. The
 * compiler does not vectorise the pool loops by itself (the ternaries and the
 * running "not yet placed" gradient), so the C % 16 == 0 case is spelled out. */
typedef float v16f __attribute__((vector_size(64)));
typedef int v16i __attribute__((vector_size(64)));

/* Macros, not functions: passing 64-byte vectors changes the ABI by ISA. */
#define V16_LOAD(v, p) memcpy(&(v), (p), sizeof(v))
#define V16_SELECT(m, a, b) ((v16f)(((v16i)(a) & (m)) | ((v16i)(b) & ~(m)))) /* m ? a : b */

SM_CLONES static void pool_pixel16(float *restrict out, const float *restrict win, int W, int C,
                                   int K, int relu) {
    const v16f zero = {0};
    for (int c0 = 0; c0 < C; c0 += 16) {
        v16f m, v;
        V16_LOAD(m, win + c0);
        if (relu)
            m = V16_SELECT(m > zero, m, zero);
        for (int t = 1; t < K * K; t++) {
            V16_LOAD(v, win + ((size_t)(t / K) * W + (size_t)(t % K)) * C + c0);
            m = V16_SELECT(v > m, v, m);
        }
        memcpy(out + c0, &m, sizeof m);
    }
}

/* One output pixel's C channels: the maximum over a K×K window (and 0, relu). */
SM_CLONES static void pool_pixel(float *restrict out, const float *restrict win, int W, int C,
                                 int K, int relu) {
    if (C % 16 == 0) {
        pool_pixel16(out, win, W, C, K, relu);
        return;
    }
    for (int c = 0; c < C; c++)
        out[c] = relu && !(win[c] > 0.0f) ? 0.0f : win[c];
    for (int kh = 0; kh < K; kh++)
        for (int kw = 0; kw < K; kw++) {
            const float *v = win + ((size_t)kh * W + kw) * C;
            for (int c = 0; c < C; c++)
                out[c] = v[c] > out[c] ? v[c] : out[c];
        }
}

/* Images split over the thread pool (built with OpenMP: oneDNN's). */
#ifdef _OPENMP
#define OMP_IMAGES _Pragma("omp parallel for num_threads(blas_threads()) if (N >= 8)")
#else
#define OMP_IMAGES
#endif

static void pool_forward(float *out, const float *inp, int N, int H, int W, int C, int K,
                         int relu) {
    const int OH = H / K, OW = W / K;
    OMP_IMAGES
    for (int n = 0; n < N; n++) {
        const float *img = inp + (size_t)n * H * W * C;
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                float *o = out + (((size_t)n * OH + oh) * OW + ow) * C;
                pool_pixel(o, img + ((size_t)oh * K * W + (size_t)ow * K) * C, W, C, K, relu);
            }
    }
}

void maxpool_forward(float *out, const float *inp, int N, int H, int W, int C, int K) {
    pool_forward(out, inp, N, H, W, C, K, 0);
}

void maxpool_relu_forward(float *out, const float *inp, int N, int H, int W, int C, int K) {
    pool_forward(out, inp, N, H, W, C, K, 1);
}

void maxpool_forward_ref(float *out, const float *inp, int N, int H, int W, int C, int K) {
    const int OH = H / K, OW = W / K;
    for (int n = 0; n < N; n++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++)
                for (int c = 0; c < C; c++) {
                    float m = -INFINITY;
                    for (int kh = 0; kh < K; kh++)
                        for (int kw = 0; kw < K; kw++) {
                            float v =
                                inp[(((size_t)n * H + oh * K + kh) * W + ow * K + kw) * C + c];
                            m = v > m ? v : m;
                        }
                    out[(((size_t)n * OH + oh) * OW + ow) * C + c] = m;
                }
}

/* pool_back_pixel() for C % 16 == 0, 16 channels a vector. */
SM_CLONES static void pool_back_pixel16(float *restrict dwin, const float *restrict win,
                                        const float *restrict out, const float *restrict dout,
                                        int W, int C, int K, int relu) {
    const v16f zero = {0};
    for (int c0 = 0; c0 < C; c0 += 16) {
        v16f o, g, v;
        V16_LOAD(o, out + c0);
        V16_LOAD(g, dout + c0);
        if (relu)
            g = V16_SELECT(o > zero, g, zero);
        for (int t = 0; t < K * K; t++) {
            const size_t at = ((size_t)(t / K) * W + (size_t)(t % K)) * C + c0;
            V16_LOAD(v, win + at);
            const v16i hit = v == o;
            const v16f d = V16_SELECT(hit, g, zero);
            memcpy(dwin + at, &d, sizeof d);
            g = V16_SELECT(hit, zero, g);
        }
    }
}

/* One window's input gradient, every tap written: dout to the first tap
 * equal to out, 0 elsewhere (and everywhere where relu and out <= 0). */
SM_CLONES static void pool_back_pixel(float *restrict dwin, const float *restrict win,
                                      const float *restrict out, const float *restrict dout, int W,
                                      int C, int K, int relu) {
    if (C % 16 == 0) {
        pool_back_pixel16(dwin, win, out, dout, W, C, K, relu);
        return;
    }
    for (int c0 = 0; c0 < C; c0 += 64) {
        const int n = C - c0 < 64 ? C - c0 : 64;
        float g[64];
        for (int i = 0; i < n; i++)
            g[i] = relu && !(out[c0 + i] > 0.0f) ? 0.0f : dout[c0 + i];
        for (int kh = 0; kh < K; kh++)
            for (int kw = 0; kw < K; kw++) {
                const size_t at = ((size_t)kh * W + kw) * C + c0;
                const float *v = win + at;
                float *d = dwin + at;
                for (int i = 0; i < n; i++) {
                    const int hit = v[i] == out[c0 + i];
                    d[i] = hit ? g[i] : 0.0f;
                    g[i] = hit ? 0.0f : g[i];
                }
            }
    }
}

static void pool_backward(float *dinp, const float *dout, const float *inp, const float *out, int N,
                          int H, int W, int C, int K, int relu) {
    const int OH = H / K, OW = W / K;
    if (H % K || W % K) /* rows and columns no window covers */
        memset(dinp, 0, (size_t)N * H * W * C * sizeof *dinp);
    OMP_IMAGES
    for (int n = 0; n < N; n++) {
        const size_t img = (size_t)n * H * W * C;
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                const size_t o = (((size_t)n * OH + oh) * OW + ow) * C;
                const size_t win = img + ((size_t)oh * K * W + (size_t)ow * K) * C;
                pool_back_pixel(dinp + win, inp + win, out + o, dout + o, W, C, K, relu);
            }
    }
}

void maxpool_backward(float *dinp, const float *dout, const float *inp, const float *out, int N,
                      int H, int W, int C, int K) {
    pool_backward(dinp, dout, inp, out, N, H, W, C, K, 0);
}

void maxpool_relu_backward(float *dinp, const float *dout, const float *inp, const float *out,
                           int N, int H, int W, int C, int K) {
    pool_backward(dinp, dout, inp, out, N, H, W, C, K, 1);
}

void maxpool_backward_ref(float *dinp, const float *dout, const float *inp, int N, int H, int W,
                          int C, int K) {
    const int OH = H / K, OW = W / K;
    memset(dinp, 0, (size_t)N * H * W * C * sizeof *dinp);
    for (int n = 0; n < N; n++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++)
                for (int c = 0; c < C; c++) {
                    size_t best = 0;
                    float m = -INFINITY;
                    for (int kh = 0; kh < K; kh++)
                        for (int kw = 0; kw < K; kw++) {
                            size_t i = (((size_t)n * H + oh * K + kh) * W + ow * K + kw) * C + c;
                            if (inp[i] > m)
                                m = inp[i], best = i;
                        }
                    dinp[best] += dout[(((size_t)n * OH + oh) * OW + ow) * C + c];
                }
}

void flatten_forward(float *out, const float *inp, int N, int H, int W, int C) {
    const size_t img = (size_t)H * W * C, hw = (size_t)H * W;
    for (int n = 0; n < N; n++)
        for (size_t p = 0; p < hw; p++)
            for (int c = 0; c < C; c++)
                out[n * img + c * hw + p] = inp[n * img + p * C + c];
}

void flatten_backward(float *dinp, const float *dout, int N, int H, int W, int C) {
    const size_t img = (size_t)H * W * C, hw = (size_t)H * W;
    for (int n = 0; n < N; n++)
        for (size_t p = 0; p < hw; p++)
            for (int c = 0; c < C; c++)
                dinp[n * img + p * C + c] = dout[n * img + c * hw + p];
}
